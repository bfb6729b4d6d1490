"""Blocks B1..Bn and cascade steps per architecture: the one place that knows how networks are laid out.

Blocks are the modules whose outputs aggregation methods (Grad-CAM family, FullGrad) read, from the input (B1)
to the output (Bn); Khakzar et al. 2020 use VGG-16's five conv blocks. The rule per architecture:

- VGG (a ``features`` Sequential of plain layers with ReLU and pooling; also AlexNet): the last ReLU before each
  pooling layer, i.e. the activation each conv block hands on (Simonyan & Zisserman 2015).
- ResNet (torchvision ``conv1/bn1/relu/maxpool/layer1..layer4``; ResNeXt, Wide ResNet): B1 = the stem's output
  (``maxpool``, stride 4), B2..B5 = ``layer1``..``layer4`` (strides 4, 8, 16, 32): timm's ``feature_info``
  levels of ResNet agree (its level 0, ``act1`` at stride 2, is not a block here: it has the stem's 64 channels
  before pooling, and ``maxpool`` is what ``layer1`` reads).
- ViT (torchvision ``VisionTransformer``: ``encoder.layers.encoder_layer_i``): no pyramid, every layer sees the
  same patch grid, so B1..B5 are five evenly spaced encoder layers ending with the last: with ``L`` layers and
  ``n = min(5, L)``, ``step = L // n`` and B_k = layer ``L - 1 - step * (n - k)`` (0-based; ViT-B/16, 12 layers:
  3, 5, 7, 9, 11; ViT-L, 24 layers: 7, 11, 15, 19, 23), read at the layer's first LayerNorm (``ln_1``): the
  normalised tokens the layer attends over, grad-cam's ``blocks[-1].norm1`` for ViTs. A layer's *output* would not
  do at the last layer: the head reads the class token alone, so the patch tokens of the last output get no
  gradient and every CAM there is undefined. Their outputs are tokens ``[B, 1 + h*w, D]``: the wrapper gets
  ``prefix_tokens=1`` and ``to_grid`` drops the class token and lays the rest on the ``h x w`` grid.
- stage-based models (``features`` is a Sequential of stages: ConvNeXt, Swin, EfficientNet, MobileNet, DenseNet,
  SqueezeNet): the output of the last child of ``features`` at each spatial resolution (a stage hands its
  output on at the resolution it worked at; the next child downsamples), the last five of them (or all if
  fewer). torchvision's Swin stages output ``[B, h, w, C]`` (channels last): the wrapper gets
  ``channels_last_blocks=True`` and ``to_grid`` permutes them to ``[B, C, h, w]``.
- anything else (RegNet, MNASNet, ShuffleNet, Inception, GoogLeNet, MaxViT, a custom network): a UserError
  asking for ``--blocks NAME[,NAME...]``; user-chosen module names become B1..Bn in the order given.

Cascade steps (cascading randomisation, Adebayo et al. 2018) are whole architectural units, randomised from the
output down in execution order (a forward pass with hooks: modules called first are lowest, not definition
order): ResNet: ``fc``, each residual block (``layer4.2`` ... ``layer1.0``), then what remains (the stem, as the
root module ``""``); ViT: ``heads``, ``encoder.ln``, each encoder layer from the last, then what remains
(``encoder.pos_embedding``, ``conv_proj``, ``class_token``: the root ``""``); stage-based models (as above): the
head (each top-level child holding parameters that runs after ``features``: ``classifier``; Swin's ``head`` then
``norm``), each child of ``features`` from the last to the first (the stages or blocks as torchvision groups them:
ConvNeXt/Swin stages and their downsampling layers, EfficientNet stages, MobileNet inverted-residual blocks,
DenseNet dense blocks and transitions, SqueezeNet fire modules), then what remains (the root ``""``, only if it
holds parameters), because one step per parameterised leaf module would give 70-240 steps (ConvNeXt-T 100,
DenseNet-121 242), each costing a full attribution per image, and a step would be a single LayerNorm or 1x1 conv
rather than an architectural unit; grouped, the torchvision stage models take 9-20 steps; every other network
(VGG included, unchanged): each module holding parameters of its own, then the root if parameters are left. A
step re-initialises the parameters of its module subtree that no earlier step took, so every parameter of the
model is re-initialised exactly once by the end of the cascade.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from itertools import chain

import torch
from torch import nn

from ..errors import UserError

PLAIN_LAYERS = (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d,
                nn.BatchNorm2d, nn.Dropout, nn.Identity)
POOLS = (nn.MaxPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d)
MAX_BLOCKS = 5
DEFAULT_TRACE_SIZE = 224
ROOT = ""  # the cascade step "what remains": the root module's name in ``named_modules()``


def derive_blocks(features: nn.Module, prefix: str = "features") -> dict[str, str]:
    """Name B1..Bn the last ReLU before each max-pool of a VGG-like ``features`` sequence (docs/models-and-data.md, "Blocks per architecture")."""
    blocks: dict[str, str] = {}
    last_relu: str | None = None
    for name, module in features.named_children():
        if isinstance(module, nn.ReLU):
            last_relu = name
        elif isinstance(module, POOLS):
            if last_relu is None:
                raise ValueError(f"pooling layer {prefix}.{name} has no ReLU before it")
            blocks[f"B{len(blocks) + 1}"] = f"{prefix}.{last_relu}" if prefix else last_relu
            last_relu = None
    if not blocks:
        raise ValueError(f"no ReLU/max-pool blocks found in {prefix!r}")
    return blocks


# -- architecture recognition (duck-typed on torchvision's attribute names) -------------------------------------
def is_resnet(network: nn.Module) -> bool:
    """torchvision ResNet layout: ``conv1, bn1, relu, maxpool, layer1..layer4, fc``."""
    return all(hasattr(network, name) for name in ("conv1", "maxpool", "layer1", "layer2", "layer3", "layer4", "fc"))


def is_vit(network: nn.Module) -> bool:
    """torchvision VisionTransformer layout: ``class_token``, ``conv_proj``, ``encoder.layers``, ``heads``."""
    encoder = getattr(network, "encoder", None)
    return hasattr(network, "class_token") and isinstance(getattr(encoder, "layers", None), nn.Sequential)


def is_vgg(network: nn.Module) -> bool:
    """A ``features`` Sequential of plain layers only (conv, ReLU, pooling, batch norm): VGG, AlexNet."""
    features = getattr(network, "features", None)
    return isinstance(features, nn.Sequential) and all(isinstance(m, PLAIN_LAYERS) for m in features.children())


def is_staged(network: nn.Module) -> bool:
    """A ``features`` Sequential holding composite children (stages): ConvNeXt, Swin, EfficientNet, MobileNet..."""
    features = getattr(network, "features", None)
    return isinstance(features, nn.Sequential) and len(features) > 0 and not is_vgg(network)


def is_channels_last(network: nn.Module) -> bool:
    """torchvision's Swin Transformer: its stages output ``[B, h, w, C]`` (Liu et al. 2021, torchvision layout).

    A network can only be torchvision's Swin once torchvision is imported: without it the answer is no, and
    asking costs no import (torchvision takes about 2 s to import; the embedded VGG never needs it).
    """
    if "torchvision" not in sys.modules:
        return False
    from torchvision.models import SwinTransformer

    return isinstance(network, SwinTransformer)


@dataclass(frozen=True)
class TokenLayout:
    """How block outputs are laid out: ``prefix_tokens`` before the patch grid, channels-last feature maps."""

    prefix_tokens: int = 0
    channels_last_blocks: bool = False


def token_layout(network: nn.Module) -> TokenLayout:
    """ViT: one class token before the patch tokens; Swin: channels-last stage outputs; else plain ``[B,C,h,w]``."""
    return TokenLayout(prefix_tokens=1 if is_vit(network) else 0, channels_last_blocks=is_channels_last(network))


# -- one forward pass with hooks ---------------------------------------------------------------------------------
@dataclass
class Trace:
    """What one forward pass shows: the index of each module's first call, and each module's first output shape."""

    first_call: dict[str, int]
    shapes: dict[str, tuple]


def trace_size(network: nn.Module, input_size: int | None) -> int:
    """The input side of the tracing pass: the model's, a ViT's ``image_size``, else 224."""
    if input_size:
        return int(input_size)
    return int(getattr(network, "image_size", DEFAULT_TRACE_SIZE) or DEFAULT_TRACE_SIZE)


def trace(network: nn.Module, input_size: int | None = None, names: list[str] | None = None) -> Trace:
    """Hook every module (or the modules ``names``): pre-hook: call order, hook: output shape, through one forward
    pass of zeros ``[1, 3, side, side]``.

    A small network in eval mode gets one real no-grad pass on its own device; a larger one (or one in training
    mode) runs on the ``meta`` device (shapes only, no compute, no memory) via ``torch.func.functional_call``, and
    a network that cannot run on ``meta`` gets the real pass too. Public as
    ``saliency_bench.trace_modules`` (model plugins read their networks' layout with it).
    """
    first_call: dict[str, int] = {}
    shapes: dict[str, tuple] = {}
    handles = []

    def pre_hook(name):
        def hook(module, args):
            first_call.setdefault(name, len(first_call))
        return hook

    def out_hook(name):
        def hook(module, args, output):
            if isinstance(output, torch.Tensor) and name not in shapes:
                shapes[name] = tuple(output.shape)
        return hook

    modules = dict(network.named_modules())
    for name in modules if names is None else names:
        handles.append(modules[name].register_forward_pre_hook(pre_hook(name)))
        handles.append(modules[name].register_forward_hook(out_hook(name)))
    side = trace_size(network, input_size)
    first = next(chain(network.parameters(), network.buffers()), None)
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    device = first.device if first is not None else torch.device("cpu")
    try:
        with torch.no_grad():
            if _cheap_to_run(network):
                network(torch.zeros(1, 3, side, side, device=device, dtype=dtype))
                return Trace(first_call, shapes)
            try:
                _meta_pass(network, side, dtype)
            except Exception:  # noqa: BLE001 - an operator without a meta kernel: trace for real
                first_call.clear()
                shapes.clear()
                network(torch.zeros(1, 3, side, side, device=device, dtype=dtype))
    finally:
        for handle in handles:
            handle.remove()
    return Trace(first_call, shapes)


# Below this many parameters one real pass of a single image costs less than the meta pass's first use, whose
# ``torch.func.functional_call`` imports torch._dynamo, sympy and triton (about 2 s on 2 cores): the embedded
# models trace for real.
REAL_TRACE_MAX_PARAMETERS = 5_000_000


def _cheap_to_run(network: nn.Module) -> bool:
    """A small network in eval mode (a real pass then changes no batch-norm statistics): trace it for real."""
    small = sum(p.numel() for p in network.parameters()) <= REAL_TRACE_MAX_PARAMETERS
    return small and not any(module.training for module in network.modules())


def _meta_pass(network: nn.Module, side: int, dtype: torch.dtype) -> None:
    """``network`` called with its parameters and buffers swapped for ``meta`` tensors of the same shapes."""
    from torch.func import functional_call

    tensors = {name: torch.empty_like(tensor, device="meta")
               for name, tensor in chain(network.named_parameters(), network.named_buffers())}
    functional_call(network, tensors, (torch.zeros(1, 3, side, side, device="meta", dtype=dtype),))


# -- blocks ------------------------------------------------------------------------------------------------------
def vit_layer_indices(layers: int, count: int = MAX_BLOCKS) -> list[int]:
    """``n = min(count, L)`` evenly spaced layers ending with the last: ``L - 1 - (L // n) * (n - 1 - k)`` (public as
    ``saliency_bench.evenly_spaced_layers``)."""
    n = min(count, layers)
    step = layers // n
    return [layers - 1 - step * (n - 1 - k) for k in range(n)]


def numbered(names: list[str]) -> dict[str, str]:
    """``{"B1": names[0], ...}``."""
    return {f"B{i + 1}": name for i, name in enumerate(names)}


def staged_blocks(network: nn.Module, input_size: int | None = None) -> dict[str, str]:
    """The last child of ``features`` at each spatial resolution (stage outputs), the last five (traced shapes)."""
    shapes = trace(network, input_size).shapes
    channels_last = is_channels_last(network)
    outputs: list[str] = []
    resolution = None
    for child, _ in network.features.named_children():
        name = f"features.{child}"
        shape = shapes.get(name)
        if shape is None or len(shape) != 4:
            continue
        here = tuple(shape[1:3]) if channels_last else tuple(shape[2:4])
        if outputs and here == resolution:
            outputs[-1] = name  # same resolution: a later child of the same stage
        else:
            outputs.append(name)
        resolution = here
    if not outputs:
        raise UserError("no feature-map stage found in `features`; pass --blocks NAME[,NAME...]")
    return numbered(outputs[-MAX_BLOCKS:])


def resolve_blocks(network: nn.Module, input_size: int | None = None) -> dict[str, str]:
    """``{"B1": module_name, ...}`` by the architecture's rule (module docstring); unknown layout: UserError."""
    if is_vgg(network):
        return derive_blocks(network.features)
    if is_resnet(network):
        return numbered(["maxpool", "layer1", "layer2", "layer3", "layer4"])
    if is_vit(network):
        layers = [f"encoder.layers.{name}" for name, _ in network.encoder.layers.named_children()]
        return numbered([f"{layers[i]}.ln_1" for i in vit_layer_indices(len(layers))])
    if is_staged(network):
        return staged_blocks(network, input_size)
    raise UserError(f"no block rule for a {type(network).__name__} (known: VGG, ResNet, ViT, stage-based "
                    "`features`); pass --blocks NAME[,NAME...] (module names, input to output)")


def chosen_blocks(network: nn.Module, names: list[str]) -> dict[str, str]:
    """User-chosen module names (``--blocks``) as B1..Bn in the order given; an unknown name is a UserError."""
    names = [name.strip() for name in names if name.strip()]
    if not names:
        raise UserError("--blocks needs at least one module name")
    modules = dict(network.named_modules())
    for name in names:
        if name not in modules:
            known = [n for n in modules if n][:6]
            raise UserError(f"--blocks: no module {name!r} in this model (e.g. {', '.join(known)}, ...)")
    return numbered(names)


# -- cascade steps -----------------------------------------------------------------------------------------------
def cascade_units(network: nn.Module, calls: dict[str, int] | None = None) -> list[str]:
    """The modules that are one cascade step each, before ordering (module docstring); the root not included.

    ``calls`` (first-call index per module name, from ``trace``) tells a stage-based model's head (its top-level
    children called after ``features``) from what runs before; without it, definition order stands in.
    """
    if is_resnet(network):
        blocks = [f"layer{i}.{name}" for i in range(1, 5) for name, _ in getattr(network, f"layer{i}").named_children()]
        return ["fc", *blocks]
    if is_vit(network):
        layers = [f"encoder.layers.{name}" for name, _ in network.encoder.layers.named_children()]
        return [name for name in ("heads", "encoder.ln") if hasattr_module(network, name)] + layers
    if is_staged(network):
        return staged_units(network, calls)
    return [name for name, module in network.named_modules()
            if name and any(True for _ in module.parameters(recurse=False))]


def staged_units(network: nn.Module, calls: dict[str, int] | None = None) -> list[str]:
    """Stage-based models: the parameterised top-level children run after ``features`` (the head), each child of
    ``features`` (a stage or block as torchvision groups them); anything else is left to the root step."""
    if calls is None:
        calls = {name: index for index, (name, _) in enumerate(network.named_modules())}
    start = calls.get("features", -1)
    head = [name for name, module in network.named_children()
            if name != "features" and calls.get(name, -1) > start and any(True for _ in module.parameters())]
    return head + [f"features.{name}" for name, _ in network.features.named_children()]


def hasattr_module(network: nn.Module, name: str) -> bool:
    """Whether ``name`` is a submodule of ``network``."""
    return name in dict(network.named_modules())


def subtree_parameters(module: nn.Module, taken: set[int]) -> list[tuple[str, nn.Parameter]]:
    """``module``'s parameters (recursive, definition order) that are not in ``taken`` (ids); marks them taken."""
    free = []
    for name, param in module.named_parameters():
        if id(param) not in taken:
            taken.add(id(param))
            free.append((name, param))
    return free


def cascade_order(network: nn.Module, input_size: int | None = None) -> list[str]:
    """Cascade steps top-down: units by decreasing first call in one forward pass, then the root if params remain.

    Units never called come after those called (their parameters cannot change the output); steps that would
    take no parameter are dropped. A network that cannot run on zeros of ``input_size`` keeps definition order.
    """
    try:
        calls = trace(network, input_size).first_call
    except Exception:  # noqa: BLE001 - e.g. a network taking other inputs: definition order stands in
        calls = {name: index for index, (name, _) in enumerate(network.named_modules())}
    units = cascade_units(network, calls)
    ranked = sorted(units, key=lambda name: calls.get(name, -1), reverse=True)
    modules = dict(network.named_modules())
    taken: set[int] = set()
    order = [name for name in ranked if subtree_parameters(modules[name], taken)]
    if subtree_parameters(network, taken):
        order.append(ROOT)
    return order
