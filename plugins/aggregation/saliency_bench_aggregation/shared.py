"""Every requested aggregation map of a batch from ONE forward and ONE backward pass.

The pass captures the outputs of the blocks the names need (all blocks for a cumulative method) and,
when ``fullgrad`` is asked for, of every bias layer plus the input gradient. Low-resolution block maps
are computed once and reused (``cumulative_gradcam`` reuses ``gradcam_pos@Bn``).
"""
from __future__ import annotations

from typing import Sequence

import torch

from saliency_bench import ModelWrapper, NotApplicable

from .capture import Capture, forward_backward
from .formulas import BLOCK_FORMULAS, minmax, spatially_constant, upsample
from .fullgrad import bias_layers, decomposition_from_capture, fullgrad_map
from .names import LAST_BLOCK, MapRequest, parse_name


# Formulas that read only the gradient's magnitude: undefined where the gradient is constant in space.
GRADIENT_ONLY = ("gradmid",)


def resolve_block(model: ModelWrapper, block: str) -> str:
    """The block name ``block`` stands for on ``model`` (LAST_BLOCK -> its last block); ValueError if missing."""
    blocks = list(model.block_names)
    if block == LAST_BLOCK:
        return blocks[-1]
    if block not in model.block_names:
        raise ValueError(f"model '{model.name}' has no block {block}; it has {', '.join(blocks)}")
    return block


def blocks_needed(model: ModelWrapper, requests: Sequence[MapRequest]) -> list[str]:
    """The blocks whose activations and gradients the requests read, in model order."""
    needed = set()
    for request in requests:
        if request.cumulative:
            needed.update(model.block_names)
        elif request.block is not None:
            needed.add(resolve_block(model, request.block))
    return [block for block in model.block_names if block in needed]


class BlockMaps:
    """Low-resolution maps ``[B,h,w]`` of each (formula, block) from one capture, computed at most once."""

    def __init__(self, model: ModelWrapper, capture: Capture):
        self.model = model
        self.capture = capture
        self.cache: dict[tuple[str, str], torch.Tensor] = {}

    def __call__(self, formula: str, block: str) -> torch.Tensor:
        """The block map of ``formula`` (a key of BLOCK_FORMULAS) at ``block``; NotApplicable where it is undefined."""
        key = (formula, block)
        if key not in self.cache:
            activations, grads = self.capture.single(self.model.block_names[block])
            if formula in GRADIENT_ONLY and spatially_constant(grads):
                self.cache[key] = NotApplicable(
                    f"{formula} at {block} is undefined on '{self.model.name}': df/dA is constant in space there "
                    "(global-average-pool head), so the map would show the pool's routing, not the gradient"
                )
            else:
                self.cache[key] = BLOCK_FORMULAS[formula](activations, grads)
        value = self.cache[key]
        if isinstance(value, NotApplicable):
            raise value
        return value

    def defined(self, formula: str, block: str) -> bool:
        """Whether ``formula`` has a map at ``block`` (see ``__call__``)."""
        try:
            self(formula, block)
        except NotApplicable:
            return False
        return True


def compute_maps(
    model: ModelWrapper, inputs: torch.Tensor, targets: torch.Tensor, names: Sequence[str]
) -> dict[str, torch.Tensor]:
    """``{name: maps [B,H,W]}`` for every aggregation method in ``names``, from one forward + one backward."""
    requests = {name: parse_name(name) for name in names}
    blocks = blocks_needed(model, list(requests.values()))
    modules = {model.block_names[block]: model.module(model.block_names[block]) for block in blocks}
    wants_fullgrad = any(request.formula == "fullgrad" for request in requests.values())
    layers = bias_layers(model.network) if wants_fullgrad else {}
    modules.update(layers)
    capture = forward_backward(model.network, inputs, targets, modules, input_gradient=wants_fullgrad)

    size = tuple(inputs.shape[-2:])
    block_maps = BlockMaps(model, capture)
    maps: dict[str, torch.Tensor | NotApplicable] = {}
    for name, request in requests.items():
        try:
            if request.formula == "fullgrad":
                maps[name] = fullgrad_map(decomposition_from_capture(capture, layers))
            elif request.cumulative:  # the sum over the blocks where the formula is defined
                blocks = [b for b in model.block_names if block_maps.defined(request.formula, b)]
                if not blocks:
                    raise NotApplicable(f"{request.formula} is defined at no block of '{model.name}'")
                maps[name] = sum(upsample(minmax(block_maps(request.formula, block)), size) for block in blocks)
            else:
                maps[name] = upsample(block_maps(request.formula, resolve_block(model, request.block)), size)
        except NotApplicable as reason:
            maps[name] = reason
    return maps
