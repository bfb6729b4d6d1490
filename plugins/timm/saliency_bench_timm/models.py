"""Loading ``timm:<name>``: timm builds the network, saliency-bench's safe loader reads ``--weights``.

Weights, in this order:

1. ``weights=PATH``: a state dict of the timm model (``torch.save(model.state_dict(), PATH)``), read with
   ``torch.load(weights_only=True)``; its classifier's rows set the number of classes (a checkpoint fine-tuned on
   10 classes loads as a 10-class model); any other mismatch is a one-line UserError;
2. ``allow_download=True``: timm's default pretrained weights (``timm.create_model(name, pretrained=True)``,
   downloaded into timm's / Hugging Face's cache);
3. otherwise random weights, timm's own initialisation drawn from seed 0 (the same network on every load;
   the caller's random state is left untouched). Nothing is downloaded.

Input size, mean and std come from the model's ``pretrained_cfg`` (``timm.data.resolve_data_config``; the square
side is ``input_size[-1]``); classes are named ``class_0 .. class_{K-1}``; heads are single-label (softmax).
Activations are made non-inplace (so that methods may hook any of them) and the network is in eval mode.
Blocks, token layout and cascade steps: ``layout.py``.

Options: ``img_size`` (an input side for models that take one, such as ViTs: ``timm.create_model(name,
img_size=...)``) and ``class_names`` (the head's classes, in order). Each also takes the text a command line
would pass (``img_size="96"``, ``class_names="circle,square,triangle"``), so that a timm model can be scored
against a dataset's classes, such as the embedded data's. Weights from a file or a download must give finite
logits on a fixed small batch. The wrapper records timm's version (``describe()["packages"]``): results
computed under another timm are not reused.

timm is imported when a model loads, never to register the names (``model_names``: ``names.py``).
"""
from __future__ import annotations

import importlib.metadata

import torch
from torch import nn

from saliency_bench import ModelWrapper, UserError, apply_state_dict, hookable, read_state_dict

from .layout import Layout, network_layout
from .names import MODEL_NAMES, TIMM_VERSION

PREFIX = "timm:"
SEED = 0  # random weights: timm's initialisation drawn from this seed
OPTIONS = {
    "img_size": "input side for models that take one (ViTs: timm.create_model(name, img_size=...)); e.g. 96",
    "class_names": "the head's class names, in order, comma-separated (default: class_0 .. class_{K-1})",
}


def first_line(error: BaseException, limit: int = 160) -> str:
    """The first non-empty line of an exception's message (or its type name), cut to ``limit`` characters."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def installed_timm() -> str | None:
    """The installed timm's version from its metadata (nothing is imported), None if timm is not installed."""
    try:
        return importlib.metadata.version("timm")
    except importlib.metadata.PackageNotFoundError:
        return None


def live_model_names() -> list[str]:
    """timm's own list, ``timm.list_models()`` (names without pretrained tags; imports timm, about 0.7 s)."""
    import timm

    return list(timm.list_models())


def model_names() -> list[str]:
    """Every timm architecture (``timm.list_models()``): the names recorded in ``names.py`` under the timm they
    were recorded for (no import of timm), timm's own list under any other version."""
    if installed_timm() == TIMM_VERSION:
        return list(MODEL_NAMES)
    return live_model_names()


def classifier_rows(arch: str, state: dict[str, torch.Tensor]) -> int | None:
    """The number of classes of the state dict's classifier (timm's ``pretrained_cfg["classifier"]``), if any."""
    from timm.models import get_pretrained_cfg_value

    try:
        classifier = get_pretrained_cfg_value(arch, "classifier")
    except Exception:  # noqa: BLE001 - an architecture without a pretrained config
        return None
    first = classifier[0] if isinstance(classifier, (tuple, list)) and classifier else classifier
    weight = state.get(f"{first}.weight") if isinstance(first, str) else None
    return int(weight.shape[0]) if isinstance(weight, torch.Tensor) and weight.dim() >= 1 else None


def create(name: str, arch: str, pretrained: bool, **kwargs) -> nn.Module:
    """``timm.create_model(arch, pretrained=..., **kwargs)`` on the CPU; a failure is a one-line UserError."""
    import timm

    try:
        with torch.device("cpu"):
            return timm.create_model(arch, pretrained=pretrained, **kwargs)
    except TypeError as error:
        given = ", ".join(f"{key}={value!r}" for key, value in kwargs.items() if key != "num_classes")
        raise UserError(f"model '{name}': timm cannot build {arch} with {given or 'these settings'}: "
                        f"{first_line(error)}") from None
    except Exception as error:  # noqa: BLE001 - a download or a configuration refused by timm
        raise UserError(f"model '{name}': timm cannot build {arch}: {first_line(error)}") from None


def random_network(name: str, arch: str, **kwargs) -> nn.Module:
    """timm's initialisation from seed ``SEED``, without touching the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return create(name, arch, pretrained=False, **kwargs)


def prepare(network: nn.Module) -> nn.Module:
    """Make every activation (and timm's in-place layer scales) non-inplace, so they may be hooked; eval mode."""
    return hookable(network).eval()


def check_options(name: str, options: dict) -> tuple[int | None, list[str] | None]:
    """``img_size`` and ``class_names`` from ``options`` (values or their command-line text); others: a UserError."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise UserError(f"model '{name}' has no option(s) {', '.join(unknown)} (options: {', '.join(OPTIONS)})")
    img_size, class_names = options.get("img_size"), options.get("class_names")
    if isinstance(img_size, str) and img_size.strip().isdecimal():  # "96" from a command line
        img_size = int(img_size)
    if img_size is not None and (isinstance(img_size, bool) or not isinstance(img_size, int) or img_size < 1):
        raise UserError(f"model '{name}': img_size must be a positive integer, got {img_size!r}")
    if class_names is not None:
        if isinstance(class_names, str):  # "circle,square,triangle" from a command line
            class_names = class_names.split(",")
        class_names = [str(c).strip() for c in class_names]
        if not class_names or not all(class_names) or len(set(class_names)) != len(class_names):
            raise UserError(f"model '{name}': class_names must be a non-empty list of distinct names")
    return img_size, class_names


def build(name: str, arch: str, weights, allow_download: bool, img_size: int | None,
          class_names: list[str] | None) -> nn.Module:
    """The network with its weights: ``weights`` (a state dict file), timm's pretrained ones, or random (seed 0)."""
    kwargs = {} if img_size is None else {"img_size": img_size}
    if weights is not None:
        state = read_state_dict(weights)
        rows = classifier_rows(arch, state)
        if class_names is not None and rows is not None and rows != len(class_names):
            raise UserError(f"weights file {weights}: its classifier has {rows} classes, class_names names "
                            f"{len(class_names)}")
        if rows is not None:
            kwargs["num_classes"] = rows
        elif class_names is not None:
            kwargs["num_classes"] = len(class_names)
        return apply_state_dict(random_network(name, arch, **kwargs), state, weights)
    if class_names is not None:
        kwargs["num_classes"] = len(class_names)
    if allow_download:
        return create(name, arch, pretrained=True, **kwargs)
    return random_network(name, arch, **kwargs)


def load_timm(name: str, arch: str, weights=None, allow_download: bool = False, **options) -> ModelWrapper:
    """timm model ``arch`` registered as ``name`` (``timm:<arch>``), wrapped for saliency-bench."""
    from timm.data import resolve_data_config

    img_size, class_names = check_options(name, options)
    network = prepare(build(name, arch, weights, allow_download, img_size, class_names))
    config = resolve_data_config({}, model=network)
    side = int(img_size or config["input_size"][-1])
    classes = int(getattr(network, "num_classes", 0) or 0)
    if class_names is None:
        class_names = [f"class_{i}" for i in range(classes)]
    elif classes and classes != len(class_names):
        raise UserError(f"model '{name}' has {classes} classes, class_names names {len(class_names)}")
    wrapper = wrap(network, network_layout(network, side), name=name, class_names=class_names, input_size=side,
                   mean=config["mean"], std=config["std"])
    wrapper.packages = {"timm": timm_version()}
    if weights is not None or allow_download:  # weights from outside: they must give finite logits
        bad = wrapper.non_finite_logits()
        if bad:
            source = f"weights file {weights}" if weights is not None else f"timm's pretrained weights of {arch}"
            raise UserError(f"model '{name}': {bad} of its logits on a fixed test batch are NaN or inf with {source} "
                            "(the weights overflow in the forward pass)")
    return wrapper


def timm_version() -> str:
    """The installed timm's version (recorded in the configuration of every result)."""
    import timm

    return str(timm.__version__)


def wrap(network: nn.Module, layout: Layout, **settings) -> ModelWrapper:
    """The wrapper with blocks by ``layout.py``'s rules: the ViT rule, else saliency-bench's own rules (VGG,
    ResNet, stages in ``features``), else timm's ``feature_info``, else none (its UserError asks for --blocks)."""
    common = dict(settings, randomization_order=layout.randomization_order, multilabel=False,
                  prefix_tokens=layout.prefix_tokens, channels_last_blocks=layout.channels_last_blocks)
    if layout.rule == "vit":
        return ModelWrapper(network, blocks=layout.blocks, **common)
    try:
        wrapper = ModelWrapper(network, blocks=None, **common)  # saliency-bench's rules, where one fits
    except Exception:  # noqa: BLE001 - a saliency-bench rule that could not trace this network
        if layout.blocks is None:
            raise
        return ModelWrapper(network, blocks=layout.blocks, **common)
    try:
        wrapper.block_names  # noqa: B018 - raises the wrapper's UserError where no rule of saliency-bench fits
    except UserError:
        if layout.blocks is not None:
            wrapper.block_names = layout.blocks  # else the UserError asking for --blocks stays, raised on use
    return wrapper
