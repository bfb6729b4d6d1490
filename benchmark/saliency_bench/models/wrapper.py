"""ModelWrapper: a network plus its blocks B1..B5, randomisation order, classes and normalisation."""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn

from ..precision import FP32, Precision


def derive_blocks(features: nn.Module, prefix: str = "features") -> dict[str, str]:
    """Name B1..Bn the last ReLU before each max-pool of a VGG-like ``features`` sequence (DESIGN.md)."""
    blocks: dict[str, str] = {}
    last_relu: str | None = None
    for name, module in features.named_children():
        if isinstance(module, nn.ReLU):
            last_relu = name
        elif isinstance(module, (nn.MaxPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d)):
            if last_relu is None:
                raise ValueError(f"pooling layer {prefix}.{name} has no ReLU before it")
            blocks[f"B{len(blocks) + 1}"] = f"{prefix}.{last_relu}" if prefix else last_relu
            last_relu = None
    if not blocks:
        raise ValueError(f"no ReLU/max-pool blocks found in {prefix!r}")
    return blocks


def derive_randomization_order(network: nn.Module) -> list[str]:
    """Every module holding parameters of its own, from the output layer back to the first (Adebayo 2018)."""
    names = [name for name, module in network.named_modules() if any(True for _ in module.parameters(recurse=False))]
    return names[::-1]


class ModelWrapper:
    """What methods and checks see of a model: network, blocks, layers in randomisation order, classes."""

    def __init__(
        self,
        network: nn.Module,
        *,
        name: str,
        class_names: Sequence[str],
        input_size: int,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        blocks: dict[str, str] | None = None,
        randomization_order: Sequence[str] | None = None,
        multilabel: bool = True,
    ):
        self.network = network.eval()
        self.name = name
        self.class_names = list(class_names)
        self.input_size = int(input_size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if blocks is None:
            features = getattr(network, "features", None)
            if features is None:
                raise ValueError(f"model '{name}': no `features` sequence; pass blocks= explicitly")
            blocks = derive_blocks(features)
        self.block_names: dict[str, str] = dict(blocks)
        self.randomization_order: list[str] = list(randomization_order or derive_randomization_order(network))
        self.multilabel = multilabel
        self.weights_sha256: str | None = None  # set by loaders that know the bytes the weights came from
        self.precision: Precision = FP32  # how method calls compute (``set_precision``)
        modules = dict(network.named_modules())
        for block, module_name in self.block_names.items():
            if module_name not in modules:
                raise ValueError(f"model '{name}': block {block} names missing module {module_name!r}")

    # -- what methods use ---------------------------------------------------------------------
    @property
    def blocks(self) -> dict[str, nn.Module]:
        """``{"B1": module, ...}``: the module whose output is each block's activation."""
        modules = dict(self.network.named_modules())
        return {block: modules[name] for block, name in self.block_names.items()}

    def module(self, name: str) -> nn.Module:
        """The submodule called ``name`` in ``network.named_modules()``."""
        return dict(self.network.named_modules())[name]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` of normalised inputs."""
        return self.network(inputs)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0,1] ``[B,3,H,W]`` -> network inputs."""
        mean = torch.tensor(self.mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        return self.precision.prepare_inputs((images - mean) / std)

    def denormalize(self, inputs: torch.Tensor) -> torch.Tensor:
        """Network inputs -> images in [0,1]."""
        mean = torch.tensor(self.mean, device=inputs.device, dtype=inputs.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=inputs.device, dtype=inputs.dtype).view(1, -1, 1, 1)
        return inputs * std + mean

    # -- what the harness uses ----------------------------------------------------------------
    def to(self, device: torch.device | str) -> "ModelWrapper":
        self.network.to(device)
        return self

    def set_precision(self, precision: Precision) -> "ModelWrapper":
        """Compute method calls at ``precision`` (bfloat16 autocast, TF32, channels-last); recorded in ``describe``."""
        self.precision = precision
        precision.prepare_network(self.network)
        return self

    def copy(self) -> "ModelWrapper":
        """A deep copy (for randomisation: never touch the user's model)."""
        twin = copy.copy(self)
        twin.network = copy.deepcopy(self.network)
        twin.block_names = dict(self.block_names)
        twin.randomization_order = list(self.randomization_order)
        return twin

    def describe(self) -> dict:
        """The configuration this model contributes to a result's fingerprint."""
        described = {
            "name": self.name,
            "input_size": self.input_size,
            "num_classes": self.num_classes,
            "blocks": self.block_names,
        }
        if self.weights_sha256:
            described["weights_sha256"] = self.weights_sha256
        if not self.precision.is_default:
            described["precision"] = self.precision.describe()
        return described
