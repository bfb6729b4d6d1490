"""Blocks B1..Bn, the token layout and the cascade steps of a timm network, read from what timm exposes.

Rules, in this order (the reasoning is saliency-bench's own, ``saliency_bench/models/blocks.py``):

1. ViT-like (``blocks``, a sequence of layers each with a ``norm1``, whose ``norm1`` outputs tokens ``[B, N, D]``:
   ViT, DeiT, BEiT, EVA, CaiT, MLP-Mixer...): five evenly spaced layers ending with the last (``L`` layers,
   ``n = min(5, L)``, ``step = L // n``, B_k = layer ``L - 1 - step * (n - k)``), read at the layer's first
   LayerNorm ``blocks.{i}.norm1``: the tokens the layer works on. A layer's *output* would not do at the last
   layer: a class-token head reads the class token alone, so the patch tokens of the last output get no gradient.
2. a layout saliency-bench knows (VGG: the last ReLU before each max-pool; ResNet: ``maxpool, layer1..layer4``;
   a stage-based ``features`` Sequential: DenseNet): its own rule, so that ``timm:vgg16`` and ``vgg16``, or
   ``timm:resnet50`` and ``resnet50``, have the same blocks. timm's ``feature_info`` differs there: VGG's has a
   sixth level (the last max-pool) that would shift B1..B5 off the seed paper's blocks, ResNet's starts at
   ``act1`` (stride 2, before the stem's max-pool). Applied by the wrapper (``blocks=None``), in ``models.py``.
3. ``feature_info`` (timm's list of feature levels, ``{"module", "num_chs", "reduction"}`` each): where several
   consecutive levels share one reduction, the last of them (a stage hands its output on at the resolution it
   worked at); where every level has the same reduction (no pyramid), evenly spaced levels as in rule 1; then the
   last five levels (or all if fewer). ConvNeXt and Swin: ``stages.0..3`` / ``layers.0..3``; EfficientNet:
   ``blocks.0, blocks.1, blocks.2, blocks.4, blocks.6``.
4. none of these: saliency-bench's UserError asking for ``--blocks NAME[,NAME...]`` when blocks are used.

Block outputs are read with one forward pass (on the ``meta`` device: shapes only; a real no-grad pass of zeros
when the network cannot run there): every block must output ``[B, C, h, w]`` or tokens ``[B, N, D]``. Tokens
carry ``prefix_tokens`` before the square patch grid: timm's ``num_prefix_tokens`` (class, distillation and
register tokens) where the rest is a square, else 0 where ``N`` is (CaiT and XCiT add the class token after
their ``blocks``). Feature maps are channels-last where timm says so (``output_fmt == "NHWC"``: Swin, MambaOut).

Cascade steps (cascading randomisation, Adebayo et al. 2018) for rule 1, as saliency-bench does for
torchvision's ViT: the top-level modules with parameters called after the first layer (head, norms, CaiT's
class-attention layers), each layer of ``blocks``, all from the output down in execution order, then the root
``""`` (patch embedding, class token, position embedding). Every other network keeps saliency-bench's default
steps (``randomization_order=None``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from saliency_bench import evenly_spaced_layers as evenly_spaced
from saliency_bench import numbered_blocks as numbered
from saliency_bench import trace_modules

MAX_BLOCKS = 5
ROOT = ""


@dataclass(frozen=True)
class Layout:
    """What the wrapper is given: blocks (None: saliency-bench's rules), token layout, cascade steps (None: its)."""

    blocks: dict[str, str] | None
    rule: str | None = None  # "vit" (rule 1), "feature_info" (rule 3), None (no rule of this plugin)
    prefix_tokens: int = 0
    channels_last_blocks: bool = False
    randomization_order: list[str] | None = None


def layer_names(network: nn.Module) -> list[str]:
    """``blocks.0 .. blocks.{L-1}`` where ``blocks`` is a sequence of layers that each have a ``norm1``; else []."""
    blocks = getattr(network, "blocks", None)
    if not isinstance(blocks, (nn.Sequential, nn.ModuleList)) or len(blocks) == 0:
        return []
    if not all(isinstance(getattr(layer, "norm1", None), nn.Module) for layer in blocks):
        return []
    return [f"blocks.{name}" for name, _ in blocks.named_children()]


def feature_levels(network: nn.Module) -> list[dict]:
    """timm's ``feature_info`` as a list of ``{"module", "reduction", ...}`` (a list, or a ``FeatureInfo``)."""
    info = getattr(network, "feature_info", None)
    info = getattr(info, "info", info)  # FeatureInfo (features_only models) keeps its list in ``.info``
    if not isinstance(info, (list, tuple)):
        return []
    return [level for level in info if isinstance(level, dict) and isinstance(level.get("module"), str)]


def stage_outputs(levels: list[dict]) -> list[str]:
    """Rule 2: the last level of each run of one reduction (evenly spaced if all share one), the last five."""
    reductions = [level.get("reduction") for level in levels]
    names = [level["module"] for level in levels]
    if len(set(reductions)) == 1:
        return [names[i] for i in evenly_spaced(len(names))]
    outputs: list[str] = []
    for index, name in enumerate(names):
        if index and reductions[index] == reductions[index - 1]:
            outputs[-1] = name
        else:
            outputs.append(name)
    return outputs[-MAX_BLOCKS:]


def prefix_for(shapes: list[tuple], declared: int) -> int | None:
    """Tokens before the square patch grid, the same for every token output: ``declared``, else 0; None if neither."""
    tokens = [shape[1] for shape in shapes if len(shape) == 3]
    for prefix in dict.fromkeys((declared, 0)):
        if all(n > prefix and math.isqrt(n - prefix) ** 2 == n - prefix for n in tokens):
            return prefix
    return None


def readable(names: list[str], tr, declared: int) -> int | None:
    """The prefix if every block in ``names`` output a 3-d or 4-d tensor and tokens sit on a square grid, else None."""
    shapes = [tr.shapes.get(name) for name in names]
    if any(shape is None or len(shape) not in (3, 4) for shape in shapes):
        return None
    return prefix_for(shapes, declared)


def vit_cascade(network: nn.Module, layers: list[str], tr) -> list[str]:
    """Rule 1's cascade: top-level modules called after the first layer, each layer, top-down; then the root."""
    start = tr.first_call.get(layers[0], -1)
    top = [name for name, module in network.named_children()
           if name != "blocks" and any(True for _ in module.parameters())
           and tr.first_call.get(name, start + 1) > start]  # never called (a second head): a step of its own
    units = sorted(top + layers, key=lambda name: tr.first_call.get(name, -1), reverse=True)
    modules = dict(network.named_modules())
    taken: set[int] = set()
    order = []
    for name in units:
        fresh = [p for p in modules[name].parameters() if id(p) not in taken]
        if fresh:
            taken.update(id(p) for p in fresh)
            order.append(name)
    if any(id(p) not in taken for p in network.parameters()):
        order.append(ROOT)
    return order


def network_layout(network: nn.Module, side: int) -> Layout:
    """Blocks, token layout and cascade steps of ``network`` by the rules of the module docstring."""
    declared = int(getattr(network, "num_prefix_tokens", 0) or 0)
    channels_last = getattr(network, "output_fmt", None) == "NHWC"
    modules = dict(network.named_modules())
    layers = layer_names(network)
    norms = [f"{layers[i]}.norm1" for i in evenly_spaced(len(layers))] if layers else []
    stages = stage_outputs(feature_levels(network))
    levels = stages if all(name in modules for name in stages) else []  # a level naming no module: no rule 2
    top = [name for name, _ in network.named_children()]
    watched = list(dict.fromkeys(top + layers + norms + levels))
    try:
        tr = trace_modules(network, side, watched)
    except Exception:  # noqa: BLE001 - a network that does not run on zeros: saliency-bench's rules, or --blocks
        return Layout(blocks=None, prefix_tokens=declared, channels_last_blocks=channels_last)
    if norms and all(len(tr.shapes.get(name, ())) == 3 for name in norms):
        prefix = readable(norms, tr, declared)
        if prefix is not None:
            return Layout(numbered(norms), "vit", prefix, False, vit_cascade(network, layers, tr))
    if levels:
        prefix = readable(levels, tr, declared)
        if prefix is not None:
            return Layout(numbered(levels), "feature_info", prefix, channels_last)
    return Layout(blocks=None, prefix_tokens=declared, channels_last_blocks=channels_last)
