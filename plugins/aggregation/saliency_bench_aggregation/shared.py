"""Every requested aggregation map of a batch from ONE forward and ONE backward pass.

The pass asks each method object what to capture (``blocks_read(model)``: the blocks it reads, all of
them for a cumulative method; ``needs_fullgrad_terms``: every bias layer plus the input gradient), runs
one capture of their union, then lets each object compute its map from it (``compute(shared)``).
Low-resolution block maps are computed once per (formula, block) and reused: ``cumulative_gradcam``
reuses ``gradcam_pos@Bn``. Nothing here reads a method's name except to key the result, and nothing here
knows a method class: a member is anything with the attributes of :class:`PassMember` (a per-block
formula those of :class:`BlockFormula`).
"""
from __future__ import annotations

from typing import Protocol, Sequence

import torch

from saliency_bench import ModelWrapper, NotApplicable

from .capture import Capture, forward_backward
from .formulas import patches_unreached, spatially_constant_flag, upsample
from .fullgrad import FullGradDecomposition, bias_layers, decomposition_from_capture


class BlockFormula(Protocol):
    """What :meth:`SharedPass.block_map` reads of a per-block method: its stem, settings and formula."""

    stem: str
    undefined_where_gradient_is_constant: bool

    def setting_values(self) -> dict: ...

    def formula(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor: ...


class PassMember(Protocol):
    """What :func:`compute_maps` reads of a method: its name, what to capture, and how its map follows."""

    name: str
    needs_fullgrad_terms: bool

    def blocks_read(self, model: ModelWrapper) -> tuple[str, ...]: ...

    def compute(self, shared: "SharedPass") -> torch.Tensor: ...


class SharedPass:
    """What one capture gives the methods of a batch: block maps (each computed at most once), FullGrad terms."""

    def __init__(self, model: ModelWrapper, capture: Capture, size: tuple[int, int], layers: dict):
        self.model = model
        self.capture = capture
        self.size = size
        self.layers = layers
        self.cache: dict[tuple, torch.Tensor | str] = {}  # a block map, or why it is undefined
        self.decomposition: FullGradDecomposition | None = None
        self.constant: dict[str, bool] | None = None  # per captured block: df/dA constant in space

    def gradient_constant(self, block: str) -> bool:
        """Whether df/dA is constant in space at ``block`` (``formulas.spatially_constant``); tested for every
        captured block at once on first use, so a batch costs one host synchronisation, not one per block."""
        if self.constant is None:
            names = self.model.block_names
            captured = [b for b, name in names.items() if len(self.capture.gradients.get(name, [])) == 1]
            flags = [spatially_constant_flag(self.model.to_grid(self.capture.single(names[b])[1])) for b in captured]
            self.constant = dict(zip(captured, torch.stack(flags).tolist())) if flags else {}
        return self.constant[block]

    def upsample(self, maps: torch.Tensor) -> torch.Tensor:
        """up(): block maps ``[B,h,w]`` to input size."""
        return upsample(maps, self.size)

    def block_map(self, method: BlockFormula, block: str) -> torch.Tensor:
        """``method``'s formula at ``block`` ``[B,h,w]``, A and df/dA read through ``model.to_grid``; NotApplicable
        where it is undefined.

        Objects that compute alike (same class, same settings) share one entry, whatever their own block.
        """
        key = (type(method), repr(method.setting_values()), block)
        if key not in self.cache:
            raw_activations, raw_grads = self.capture.single(self.model.block_names[block])
            activations, grads = self.model.to_grid(raw_activations), self.model.to_grid(raw_grads)
            if patches_unreached(raw_grads, self.model.prefix_tokens):
                self.cache[key] = (
                    f"{method.stem} at {block} is undefined on '{self.model.name}': only the prefix (class) token of "
                    "this block reaches the output, df/dA is zero on every patch token"
                )
            elif method.undefined_where_gradient_is_constant and self.gradient_constant(block):
                self.cache[key] = (
                    f"{method.stem} at {block} is undefined on '{self.model.name}': df/dA is constant in space there "
                    "(global-average-pool head), so the map would show the pool's routing, not the gradient"
                )
            else:
                self.cache[key] = method.formula(activations, grads)
        value = self.cache[key]
        if isinstance(value, str):  # the reason is kept, never a raised exception: its traceback holds this pass's
            raise NotApplicable(value)  # frames, a reference cycle that kept every capture alive until a full gc
        return value

    def defined(self, method: BlockFormula, block: str) -> bool:
        """Whether ``method``'s formula has a map at ``block`` (see :meth:`block_map`)."""
        try:
            self.block_map(method, block)
        except NotApplicable:
            return False
        return True

    def fullgrad_decomposition(self) -> FullGradDecomposition:
        """The FullGrad terms of the batch (the pass captured them because a method asked)."""
        if self.decomposition is None:
            self.decomposition = decomposition_from_capture(self.capture, self.layers, self.model.to_grid)
        return self.decomposition


def compute_maps(
    model: ModelWrapper, inputs: torch.Tensor, targets: torch.Tensor, methods: Sequence[PassMember]
) -> dict[str, torch.Tensor | NotApplicable]:
    """``{method.name: maps [B,H,W]}`` for every aggregation method object, from one forward + one backward.

    A map that is undefined on ``model`` is the NotApplicable saying why (the harness shows n/a); any other
    error (a missing block, a target out of range) propagates, the model left as it was.
    """
    needed = set()
    for method in methods:
        needed.update(method.blocks_read(model))
    blocks = [block for block in model.block_names if block in needed]
    modules = {model.block_names[block]: model.module(model.block_names[block]) for block in blocks}
    wants_fullgrad = any(method.needs_fullgrad_terms for method in methods)
    layers = bias_layers(model.network) if wants_fullgrad else {}
    modules.update(layers)
    capture = forward_backward(model.network, inputs, targets, modules, input_gradient=wants_fullgrad)

    shared = SharedPass(model, capture, tuple(inputs.shape[-2:]), layers)
    maps: dict[str, torch.Tensor | NotApplicable] = {}
    for method in methods:
        try:
            maps[method.name] = method.compute(shared)
        except NotApplicable as reason:  # without its traceback, which holds the capture's frames
            maps[method.name] = NotApplicable(reason.reason)
    return maps
