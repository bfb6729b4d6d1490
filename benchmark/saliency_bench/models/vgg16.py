"""torchvision VGG-16 (Simonyan & Zisserman 2015) with weights from a local file or the torch hub cache.

Nothing is downloaded unless ``allow_download=True``. Weights are looked up in this order:

1. ``weights=PATH``: a state dict read with ``torch.load(weights_only=True)``;
2. head ``imagenet`` only: torchvision's file in the hub cache, ``torch.hub.get_dir()/checkpoints/vgg16-397923af.pth``;
3. head ``imagenet`` and ``allow_download=True``: torchvision's ``VGG16_Weights.IMAGENET1K_V1`` (into that cache).

``head="voc"`` builds a 20-output multi-label last layer (``classifier.6``); its weights must come from a file,
for instance TorchRay's ``vgg16_voc`` checkpoint (the pointing-game model of Zhang et al. 2018). A state dict in
that Caffe-converted layout (``classifier.2/4`` instead of ``classifier.3/6``, BGR first convolution) is
recognised and converted as TorchRay's ``_load_caffe_vgg16`` does; the model then uses Caffe's input
normalisation (RGB in 0..255 minus the ImageNet pixel mean) and ``ceil_mode`` max-pooling.

Input size 224. ReLUs are made non-inplace so that methods may hook any activation. torchvision is imported only
when the network is built or its ImageNet weights are needed (``IMAGENET_WEIGHTS`` is resolved on first access).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..classes import VOC_CLASSES
from ..errors import UserError
from .loading import apply_state_dict, check_finite_logits, read_state_dict
from .wrapper import ModelWrapper

NAME = "vgg16"
INPUT_SIZE = 224
HEADS = {"imagenet": 1000, "voc": len(VOC_CLASSES)}
LAST_LAYER = "classifier.6"
IMAGENET_WEIGHTS_NAME = "VGG16_Weights.IMAGENET1K_V1"  # IMAGENET_WEIGHTS, resolved on first access
HUB_FILE = "vgg16-397923af.pth"  # the last component of IMAGENET_WEIGHTS.url (tests/test_cli_startup.py checks it)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN = (123.68 / 255, 116.779 / 255, 103.939 / 255)  # RGB order of Caffe's BGR pixel mean
CAFFE_STD = (1 / 255, 1 / 255, 1 / 255)  # Caffe networks take pixel values in 0..255
TORCHRAY_RENAMES = {"classifier.2.": "classifier.3.", "classifier.4.": "classifier.6."}


def imagenet_weights():
    """torchvision's ``VGG16_Weights.IMAGENET1K_V1`` (imports torchvision)."""
    from torchvision.models import get_weight

    return get_weight(IMAGENET_WEIGHTS_NAME)


def __getattr__(name: str):
    """``IMAGENET_WEIGHTS`` resolved (torchvision imported) on first access only, then kept as a module attribute."""
    if name == "IMAGENET_WEIGHTS":
        globals()["IMAGENET_WEIGHTS"] = value = imagenet_weights()
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_vgg16(num_classes: int) -> nn.Module:
    """An uninitialised torchvision VGG-16 on the ``meta`` device (no 528 MB random init), non-inplace ReLUs."""
    from torchvision.models import vgg16

    with torch.device("meta"):
        network = vgg16(weights=None, num_classes=num_classes)
    for module in network.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return network


def hub_checkpoint() -> Path:
    """Where torchvision caches the ImageNet VGG-16 weights: ``<torch hub dir>/checkpoints/vgg16-397923af.pth``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / HUB_FILE


def download_imagenet_state_dict() -> dict[str, torch.Tensor]:
    """Fetch torchvision's ImageNet VGG-16 weights (only ever called with ``allow_download=True``)."""
    return imagenet_weights().get_state_dict(progress=True, check_hash=True)


def is_torchray_layout(state: dict[str, torch.Tensor]) -> bool:
    """True for TorchRay's Caffe-converted VGG-16 state dicts (no dropout slots: ``classifier.4`` is the last layer)."""
    return f"{LAST_LAYER}.weight" not in state and "classifier.4.weight" in state


def from_torchray_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """TorchRay ``_load_caffe_vgg16``: rename the classifier slots, BGR -> RGB first conv, flatten FC weights."""
    converted = {}
    for key, value in state.items():
        for old, new in TORCHRAY_RENAMES.items():
            if key.startswith(old):
                key = new + key[len(old):]
        if key == "features.0.weight":
            value = value[:, [2, 1, 0], :, :]
        elif key.startswith("classifier.") and key.endswith(".weight"):
            value = value.reshape(value.shape[0], -1)
        converted[key] = value
    return converted


def find_state_dict(weights, allow_download: bool, head: str) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict to load and where it came from (file, hub cache or download), in the documented order."""
    if weights is not None:
        return read_state_dict(weights), str(weights)
    if head != "imagenet":
        raise UserError(
            f"model '{NAME}' head '{head}' needs --weights PATH (a state dict with a {HEADS[head]}-class "
            f"{LAST_LAYER}, e.g. TorchRay's vgg16_voc); there is nothing to download for it"
        )
    cached = hub_checkpoint()
    if cached.is_file():
        return read_state_dict(cached), str(cached)
    if allow_download:
        return download_imagenet_state_dict(), imagenet_weights().url
    raise UserError(
        f"no weights for model '{NAME}': pass --weights PATH, "
        f"put {HUB_FILE} in {cached.parent}, or pass --allow-download"
    )


def check_head(state: dict[str, torch.Tensor], head: str, source: str) -> None:
    """A state dict whose last layer has the wrong number of classes for ``head`` is a clear user error."""
    last = state.get(f"{LAST_LAYER}.weight")
    if last is not None and last.shape[0] != HEADS[head]:
        other = [name for name, count in HEADS.items() if count == last.shape[0]]
        hint = f"; load it with head '{other[0]}'" if other else ""
        raise UserError(
            f"weights file {source} holds a {last.shape[0]}-class {LAST_LAYER}, "
            f"head '{head}' needs {HEADS[head]} classes{hint}"
        )


def load_vgg16(weights=None, allow_download: bool = False, head: str = "imagenet", **options) -> ModelWrapper:
    """torchvision VGG-16 with the ``imagenet`` (1000 classes, softmax) or ``voc`` (20 classes, multi-label) head."""
    if options:
        raise UserError(f"model '{NAME}' has no option(s) {', '.join(sorted(options))} (has: head)")
    if head not in HEADS:
        raise UserError(f"model '{NAME}': unknown head {head!r} (use {' or '.join(HEADS)})")
    state, source = find_state_dict(weights, allow_download, head)
    caffe = is_torchray_layout(state)
    if caffe:
        state = from_torchray_layout(state)
    check_head(state, head, source)
    network = apply_state_dict(build_vgg16(HEADS[head]), state, source)
    if caffe:
        for module in network.modules():
            if isinstance(module, nn.MaxPool2d):
                module.ceil_mode = True
    class_names = imagenet_weights().meta["categories"] if head == "imagenet" else VOC_CLASSES
    wrapper = ModelWrapper(
        network,
        name=NAME if head == "imagenet" else f"{NAME}_{head}",
        class_names=class_names,
        input_size=INPUT_SIZE,
        mean=CAFFE_MEAN if caffe else IMAGENET_MEAN,
        std=CAFFE_STD if caffe else IMAGENET_STD,
        multilabel=head == "voc",
    )
    check_finite_logits(wrapper, source)
    return wrapper
