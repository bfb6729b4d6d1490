"""torchvision classification models: ``resnet50``, ``vit_b_16`` and ``torchvision:<name>`` for every other one.

Nothing is downloaded unless ``allow_download=True``. Weights are looked up in this order (as for ``vgg16``):

1. ``weights=PATH``: a state dict read with ``torch.load(weights_only=True)``;
2. torchvision's file in the hub cache, ``<torch.hub.get_dir()>/checkpoints/<file name of the weights URL>``;
3. ``allow_download=True``: torchvision downloads that file (into that cache).

``resnet50`` uses ``ResNet50_Weights.IMAGENET1K_V1`` (He et al. 2016, the weights the saliency literature uses;
``torchvision:resnet50`` takes torchvision's DEFAULT, IMAGENET1K_V2), ``vit_b_16`` ``ViT_B_16_Weights.IMAGENET1K_V1``
(Dosovitskiy et al. 2021), ``torchvision:<name>`` the model's DEFAULT weights. Input size, mean and std come from
the weights' evaluation transforms (224 px, ImageNet mean/std for the two named models), class names from their
meta; heads are single-label (softmax). The network is built on the ``meta`` device (no random init) and takes
the file's tensors; activations are made non-inplace so that methods may hook any of them; eval mode.

torchvision is imported only when a network is built or weights are resolved (importing it costs about 2 s: it
pulls ``torch._dynamo``), never to list the models: the names come from ``CLASSIFICATION_MODELS``, recorded for
torchvision ``TORCHVISION_VERSION`` (``tests/test_cli_startup.py`` fails when they differ from the installed
torchvision's; under another torchvision version the names are read from torchvision itself). ``NAMED`` (the
weights enum of each named model) is resolved on first access.
"""
from __future__ import annotations

from pathlib import Path

import importlib.metadata

import torch
from torch import nn

from ..errors import UserError
from .loading import apply_state_dict, check_finite_logits, hookable, read_state_dict
from .blocks import token_layout
from .wrapper import ModelWrapper

PREFIX = "torchvision:"
NAMED_WEIGHTS = {  # registered name: (torchvision architecture, weights enum member's name, its crop size)
    "resnet50": ("resnet50", "ResNet50_Weights.IMAGENET1K_V1", 224),
    "vit_b_16": ("vit_b_16", "ViT_B_16_Weights.IMAGENET1K_V1", 224),
}
AUX_HEADS = {"inception_v3": ("AuxLogits",), "googlenet": ("aux1", "aux2")}  # trained with, evaluated without
TORCHVISION_VERSION = "0.29.1"  # the torchvision whose classification models CLASSIFICATION_MODELS lists
CLASSIFICATION_MODELS = (  # sorted(torchvision.models.list_models(module=torchvision.models)) of that version
    "alexnet", "convnext_base", "convnext_large", "convnext_small", "convnext_tiny", "densenet121", "densenet161",
    "densenet169", "densenet201", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
    "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7", "efficientnet_v2_l",
    "efficientnet_v2_m", "efficientnet_v2_s", "googlenet", "inception_v3", "maxvit_t", "mnasnet0_5", "mnasnet0_75",
    "mnasnet1_0", "mnasnet1_3", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "regnet_x_16gf",
    "regnet_x_1_6gf", "regnet_x_32gf", "regnet_x_3_2gf", "regnet_x_400mf", "regnet_x_800mf", "regnet_x_8gf",
    "regnet_y_128gf", "regnet_y_16gf", "regnet_y_1_6gf", "regnet_y_32gf", "regnet_y_3_2gf", "regnet_y_400mf",
    "regnet_y_800mf", "regnet_y_8gf", "resnet101", "resnet152", "resnet18", "resnet34", "resnet50",
    "resnext101_32x8d", "resnext101_64x4d", "resnext50_32x4d", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5", "shufflenet_v2_x2_0", "squeezenet1_0", "squeezenet1_1", "swin_b", "swin_s", "swin_t",
    "swin_v2_b", "swin_v2_s", "swin_v2_t", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19",
    "vgg19_bn", "vit_b_16", "vit_b_32", "vit_h_14", "vit_l_16", "vit_l_32", "wide_resnet101_2", "wide_resnet50_2",
)


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution`` (its metadata: nothing is imported), None if it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def live_classification_models() -> list[str]:
    """torchvision's own list: ``sorted(torchvision.models.list_models(module=torchvision.models))`` (imports it)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def classification_models() -> list[str]:
    """Every torchvision classification model name, sorted: ``CLASSIFICATION_MODELS`` under the torchvision it was
    recorded for (no import of torchvision), torchvision's own list under any other version."""
    if installed_version("torchvision") == TORCHVISION_VERSION:
        return list(CLASSIFICATION_MODELS)
    return live_classification_models()


def resolve_weights(weights):
    """A weights enum member from its name (``"ResNet50_Weights.IMAGENET1K_V1"``); an enum member is returned as is."""
    if isinstance(weights, str):
        from torchvision.models import get_weight

        return get_weight(weights)
    return weights


def named_models() -> dict:
    """``NAMED``: registered name -> (torchvision architecture, weights enum member); imports torchvision."""
    return {name: (arch, resolve_weights(weights)) for name, (arch, weights, _) in NAMED_WEIGHTS.items()}


def __getattr__(name: str):
    """``NAMED`` resolved (torchvision imported) on first access only, then kept as a module attribute."""
    if name == "NAMED":
        globals()["NAMED"] = value = named_models()
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def default_weights(arch: str):
    """The DEFAULT weights enum member of torchvision model ``arch``."""
    import torchvision

    return torchvision.models.get_model_weights(arch).DEFAULT


def hub_file(weights) -> str:
    """The file name torchvision caches ``weights`` under: the last component of its URL."""
    return weights.url.rsplit("/", 1)[-1]


def hub_checkpoint(weights) -> Path:
    """Where torchvision caches ``weights``: ``<torch hub dir>/checkpoints/<file name of the URL>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / hub_file(weights)


def download_state_dict(weights) -> dict[str, torch.Tensor]:
    """Fetch torchvision's weights (only ever called with ``allow_download=True``), hash-checked."""
    return weights.get_state_dict(progress=True, check_hash=True)


def find_state_dict(name: str, weights, path, allow_download: bool) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict to load and where it came from: ``--weights``, the hub cache, or a download, in that order."""
    if path is not None:
        return read_state_dict(path), str(path)
    cached = hub_checkpoint(weights)
    if cached.is_file():
        return read_state_dict(cached), str(cached)
    if allow_download:
        return download_state_dict(weights), weights.url
    raise UserError(f"no weights for model '{name}': pass --weights PATH, put {hub_file(weights)} in {cached.parent}, "
                    "or pass --allow-download")


def builder_kwargs(arch: str, weights) -> dict:
    """The arguments torchvision's builder sets itself when given ``weights`` (``_ovewrite_named_param``)."""
    kwargs = {"num_classes": len(weights.meta["categories"])}
    if arch.startswith("vit_"):
        kwargs["image_size"] = weights.meta["min_size"][0]
    elif arch.startswith("maxvit"):
        kwargs["input_size"] = weights.meta["min_size"]
    if arch in AUX_HEADS:
        kwargs.update(transform_input=True, aux_logits=True, init_weights=False)
    return kwargs


def build_network(arch: str, weights, device: str = "meta") -> nn.Module:
    """torchvision model ``arch`` shaped for ``weights``, built on ``device`` (``meta``: no random init)."""
    import torchvision

    with torch.device(device):
        return torchvision.models.get_model(arch, weights=None, **builder_kwargs(arch, weights))


def on_meta(network: nn.Module) -> bool:
    """Whether a tensor (a buffer outside the state dict) is still on the ``meta`` device after loading."""
    return any(t.is_meta for t in list(network.parameters()) + list(network.buffers()))


def prepare(network: nn.Module, arch: str) -> nn.Module:
    """Drop training-only auxiliary heads, make every activation non-inplace (hookable), eval mode."""
    if arch in AUX_HEADS:
        network.aux_logits = False
        for head in AUX_HEADS[arch]:
            setattr(network, head, None)
    return hookable(network).eval()


def load_torchvision(name: str, arch: str, weights_enum=None, weights=None, allow_download: bool = False,
                     **options) -> ModelWrapper:
    """torchvision model ``arch`` registered as ``name``, with ``weights_enum``'s classes, input size and mean/std
    (``weights_enum``: an enum member, its name such as ``"ResNet50_Weights.IMAGENET1K_V1"``, or None: DEFAULT)."""
    if options:
        raise UserError(f"model '{name}' has no option(s) {', '.join(sorted(options))}")
    weights_enum = resolve_weights(weights_enum) or default_weights(arch)
    state, source = find_state_dict(name, weights_enum, weights, allow_download)
    try:
        network = apply_state_dict(build_network(arch, weights_enum), state, source)
    except NotImplementedError:  # a builder computing with tensors (RegNet's widths) cannot run on meta
        network = None
    if network is None or on_meta(network):  # or a non-persistent buffer: build for real (random init), then load
        network = apply_state_dict(build_network(arch, weights_enum, "cpu"), state, source)
    network = prepare(network, arch)
    transforms = weights_enum.transforms()
    layout = token_layout(network)
    wrapper = ModelWrapper(
        network, name=name, class_names=weights_enum.meta["categories"], input_size=transforms.crop_size[0],
        mean=transforms.mean, std=transforms.std, multilabel=False, prefix_tokens=layout.prefix_tokens,
        channels_last_blocks=layout.channels_last_blocks,
    )
    check_finite_logits(wrapper, source)
    return wrapper
