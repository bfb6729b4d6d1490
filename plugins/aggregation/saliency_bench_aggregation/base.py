"""The base classes of the aggregation methods: every member computes its maps through one shared pass.

A member says what the pass must capture (:meth:`AggregationMethod.blocks_read`,
:attr:`AggregationMethod.needs_fullgrad_terms`) and how its map follows from the capture
(:meth:`AggregationMethod.compute`); the pass (:mod:`.shared`) never reads a method's name but to key its
result. A per-block method overrides :meth:`BlockMethod.formula`, a class activation map only
:meth:`CAMMethod.weights` (pytorch-grad-cam's ``get_cam_weights``); the shipped ones are in :mod:`.variants`.
"""
from __future__ import annotations

from typing import ClassVar, Sequence

import torch

from saliency_bench import Method, ModelWrapper, NotApplicable

from .blocks import LAST_BLOCK, LastBlock, resolve_block
from .shared import SharedPass, compute_maps


class AggregationMethod(Method):
    """Base of the aggregation family (Khakzar et al. 2020): maps from one forward and one backward per batch."""

    family = "aggregation"
    shared_key: ClassVar[str | None] = "aggregation.single_pass"
    needs_fullgrad_terms: ClassVar[bool] = False  # every bias layer's df/dz and the input gradient

    def blocks_read(self, model: ModelWrapper) -> tuple[str, ...]:
        """The blocks whose activations and gradients :meth:`compute` reads on ``model``."""
        return ()

    def compute(self, shared: SharedPass) -> torch.Tensor:
        """This method's maps ``[B,H,W]`` from the pass's capture; raise NotApplicable where undefined."""
        raise NotImplementedError

    def attribute(self, model: ModelWrapper, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """This method's maps ``[B,H,W]`` (one forward + one backward)."""
        maps = compute_maps(model, inputs, targets, [self])[self.name]
        if isinstance(maps, NotApplicable):
            raise maps
        return maps

    def attribute_shared(
        self, model: ModelWrapper, inputs: torch.Tensor, targets: torch.Tensor, methods: Sequence["AggregationMethod"]
    ) -> dict[str, torch.Tensor | NotApplicable]:
        """``{method.name: maps}`` for every method object in ``methods`` from one forward + one backward
        (the contract of docs/writing-a-method.md, "Methods that share one pass")."""
        return compute_maps(model, inputs, targets, methods)


class BlockMethod(AggregationMethod):
    """A map read at one block from its activation A and df/dA: override :meth:`formula`.

    ``BlockMethod("B3")`` is named ``stem@B3``; ``BlockMethod()`` reads the model's last block
    (:data:`LAST_BLOCK`) and is named ``stem``, its ``layer`` the block that is on 5-block VGG-like models (B5).
    """

    stem: ClassVar[str] = ""  # the name's stem: "gradcam" -> "gradcam@B3"
    # True for a formula that reads only the gradient's magnitude: n/a where df/dA is constant in space
    undefined_where_gradient_is_constant: ClassVar[bool] = False
    # True: the plugin also registers the variant under its stem alone, at the model's last block (``gradcam``)
    registered_at_last_block: ClassVar[bool] = False

    def __init__(self, block: str | LastBlock | None = None):
        if not self.stem:
            raise TypeError(f"{type(self).__name__} must set `stem`, the stem of its names")
        self.block = LAST_BLOCK if block is None else block
        if isinstance(self.block, LastBlock):
            self.name = self.stem
            self.layer = self.block.declared
        else:
            self.name = f"{self.stem}@{self.block}"
            self.layer = self.block

    def formula(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """The block map ``[B,h,w]`` from activations and gradients ``[B,K,h,w]`` (batched, no loops)."""
        raise NotImplementedError

    def blocks_read(self, model: ModelWrapper) -> tuple[str, ...]:
        """The one block this method reads."""
        return (resolve_block(model, self.block),)

    def compute(self, shared: SharedPass) -> torch.Tensor:
        """up(formula(A, df/dA)) at this method's block."""
        return shared.upsample(shared.block_map(self, resolve_block(shared.model, self.block)))

    def peer_block(self, model: ModelWrapper) -> str | None:
        """The block peers are timed at: this method's, where it is the model's last block (else None: no peers)."""
        try:
            block = resolve_block(model, self.block)
        except ValueError:
            return None
        return block if block == LAST_BLOCK.resolve(model) else None


class CAMMethod(BlockMethod):
    """A class activation map ReLU(sum_k w_k A^k): override :meth:`weights` (as pytorch-grad-cam's ``get_cam_weights``)."""

    def weights(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """The channel weights w_k ``[B,K,1,1]``."""
        raise NotImplementedError

    def combine(self, weighted: torch.Tensor) -> torch.Tensor:
        """The map from the weighted activations w_k A^k ``[B,K,h,w]``: ReLU(sum_k w_k A^k) (Selvaraju et al. 2017)."""
        return torch.relu(weighted.sum(dim=1))

    def formula(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """combine(w_k A^k), the CAM of Zhou et al. 2016 generalised by Selvaraju et al. 2017."""
        return self.combine(self.weights(activations, grads) * activations)
