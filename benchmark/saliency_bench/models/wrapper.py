"""ModelWrapper: a network plus its blocks B1..B5, randomisation order, classes and normalisation."""
from __future__ import annotations

import copy
import math
import types
from typing import Mapping, Sequence

import torch
from torch import nn

from ..errors import UserError
from ..harness.precision import FP32, Precision
from .blocks import cascade_order, chosen_blocks, derive_blocks, resolve_blocks  # noqa: F401 - derive_blocks: API


def derive_randomization_order(network: nn.Module, input_size: int | None = None) -> list[str]:
    """Cascade steps from the output layer back to the input in execution order (Adebayo 2018; blocks.cascade_order)."""
    return cascade_order(network, input_size)


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
        prefix_tokens: int = 0,
        channels_last_blocks: bool = False,
    ):
        self.network = network.eval()
        self.name = name
        self.class_names = list(class_names)
        self.input_size = int(input_size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self._block_names: dict[str, str] = {}
        self._block_error: UserError | None = None  # no block rule for this network: raised on use, --blocks fixes it
        if blocks is None:
            try:
                blocks = resolve_blocks(network, self.input_size)
            except UserError as error:
                self._block_error = UserError(f"model '{name}': {error}")
                blocks = {}
        self._block_names = dict(blocks)
        self.randomization_order: list[str] = list(
            randomization_order or derive_randomization_order(network, self.input_size))
        self.multilabel = multilabel
        self.prefix_tokens = int(prefix_tokens)  # tokens before the patch grid in a block's [B, N, D] output (class token)
        self.channels_last_blocks = bool(channels_last_blocks)  # 4-d block outputs are [B, h, w, C] (Swin)
        self.weights_sha256: str | None = None  # set by loaders that know the bytes the weights came from
        self.packages: dict[str, str] = {}  # {distribution: version} the network comes from (timm), recorded
        self.precision: Precision = FP32  # how method calls compute (``set_precision``)
        self.twins: dict[str, tuple] = {}  # {kind: (load, weights sha256)}: this model trained otherwise (``twin``)
        modules = dict(network.named_modules())
        for block, module_name in self._block_names.items():
            if module_name not in modules:
                raise ValueError(f"model '{name}': block {block} names missing module {module_name!r}")

    # -- blocks -------------------------------------------------------------------------------
    @property
    def block_names(self) -> Mapping[str, str]:
        """``{"B1": module_name, ...}``, read-only, so that no method renames a block under its neighbours.

        A network without a block rule (and no ``--blocks``) raises its UserError. Set blocks with ``set_blocks``.
        """
        if self._block_error is not None:
            raise self._block_error
        return types.MappingProxyType(self._block_names)

    @block_names.setter
    def block_names(self, blocks: Mapping[str, str]) -> None:
        self._block_names = dict(blocks)
        self._block_error = None

    def set_blocks(self, names: Sequence[str]) -> "ModelWrapper":
        """Use the modules ``names`` (``--blocks``) as B1..Bn, in the order given (blocks.chosen_blocks)."""
        self.block_names = chosen_blocks(self.network, list(names))
        return self

    # -- what methods use ---------------------------------------------------------------------
    @property
    def blocks(self) -> dict[str, nn.Module]:
        """``{"B1": module, ...}``: the module whose output is each block's activation."""
        modules = dict(self.network.named_modules())
        return {block: modules[name] for block, name in self.block_names.items()}

    def to_grid(self, activation: torch.Tensor) -> torch.Tensor:
        """A block's activation as ``[B, C, h, w]``: a feature map as it is (permuted from ``[B, h, w, C]`` where
        ``channels_last_blocks``, Swin); tokens ``[B, N, D]`` without the first ``prefix_tokens`` (the class token),
        the rest laid out on their square patch grid (grad-cam's ``reshape_transform`` for ViTs). Applied alike to an
        activation and to its gradient."""
        if activation.dim() == 4:
            return activation.permute(0, 3, 1, 2) if self.channels_last_blocks else activation
        if activation.dim() != 3:
            raise ValueError(f"a block output of shape {tuple(activation.shape)} is neither [B, C, h, w] nor [B, N, D]")
        patches = activation[:, self.prefix_tokens:]
        side = math.isqrt(patches.shape[1])
        if side * side != patches.shape[1]:
            raise ValueError(f"{patches.shape[1]} tokens after {self.prefix_tokens} prefix token(s) are not a square grid")
        return patches.transpose(1, 2).reshape(len(patches), patches.shape[2], side, side)

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

    def non_finite_logits(self, images: int = 2) -> int:
        """How many logits are NaN or inf on a fixed batch of random images (seed 0; the global generator untouched)."""
        pixels = torch.rand(images, 3, self.input_size, self.input_size, generator=torch.Generator().manual_seed(0))
        device = next((p.device for p in self.network.parameters()), torch.device("cpu"))
        with torch.no_grad():
            logits = self(self.normalize(pixels.to(device)))
        return int((~torch.isfinite(logits)).sum())

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

    def add_twin(self, kind: str, load, sha256: str) -> None:
        """Declare a twin of ``kind`` (``load() -> ModelWrapper``): the same architecture trained otherwise, for the
        data randomisation test (Adebayo et al. 2018: ``random_labels``, trained on permuted labels)."""
        self.twins[kind] = (load, sha256)

    def twin(self, kind: str) -> "ModelWrapper | None":
        """This model's twin of ``kind`` on this model's device and precision, loaded once; None if it has none."""
        if kind not in self.twins:
            return None
        load, sha256 = self.twins[kind]
        cached = getattr(self, "_loaded_twins", {}).get((kind, str(self.device), repr(self.precision)))
        if cached is None:
            cached = load().to(self.device)
            cached = cached if self.precision.is_default else cached.set_precision(self.precision)
            self.__dict__.setdefault("_loaded_twins", {})[(kind, str(self.device), repr(self.precision))] = cached
        return cached

    def copy(self) -> "ModelWrapper":
        """A deep copy (for randomisation: never touch the user's model)."""
        twin = copy.copy(self)
        twin.network = copy.deepcopy(self.network)
        twin._block_names = dict(self._block_names)
        twin.randomization_order = list(self.randomization_order)
        twin.packages = dict(self.packages)
        return twin

    def describe(self) -> dict:
        """The configuration this model contributes to a result's fingerprint."""
        described = {
            "name": self.name,
            "input_size": self.input_size,
            "num_classes": self.num_classes,
            "blocks": dict(self.block_names),
        }
        if self.weights_sha256:
            described["weights_sha256"] = self.weights_sha256
        if self.twins:  # the data randomisation test compares with these weights: recorded like the model's own
            described["twins"] = {kind: sha256 for kind, (_, sha256) in sorted(self.twins.items())}
        if self.packages:  # results depend on the package that builds the network: a new version, a new result
            described["packages"] = dict(self.packages)
        if not self.precision.is_default:
            described["precision"] = self.precision.describe()
        return described
