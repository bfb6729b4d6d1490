"""The aggregation methods as ``saliency_bench.Method`` objects sharing one pass per batch.

Each object carries what it computes: the block(s) it reads and its formula. The shared pass
(:mod:`.shared`) asks every object of a batch which blocks it reads, runs one forward and one backward
that capture them, then hands each object the captured tensors; it never decodes a method's name.

A CAM variant is one small class, the shape of pytorch-grad-cam's ``BaseCAM`` (override
``get_cam_weights``)::

    class SquaredGradCAM(CAMMethod):
        '''ReLU(sum_k w_k A^k) with w_k = mean_ij (df/dA^k_ij)^2.'''

        stem = "squared_gradcam"  # names "squared_gradcam@B3", or "squared_gradcam" for the last block

        def weights(self, activations, grads):
            return grads.pow(2).mean(dim=(2, 3), keepdim=True)

    SquaredGradCAM("B3")  # computed in the same pass as every other aggregation method of the batch

A formula that is not ReLU(sum_k w_k A^k) overrides :meth:`BlockMethod.formula` instead (GradMid), or
:meth:`CAMMethod.combine` (GradCAM_Pos's sum_k |w_k A^k|).
"""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Callable, ClassVar, Iterable, Iterator, Sequence

import torch

from saliency_bench import Method, ModelWrapper, NotApplicable

from . import formulas, peers
from .fullgrad import fullgrad_map
from .shared import compute_maps

if TYPE_CHECKING:  # pragma: no cover
    from .shared import SharedPass

Attribution = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class LastBlock:
    """A model's last block, whatever it is called: the block ``GradCAM()`` (``gradcam``) reads.

    ``declared`` is the block this stands for on the benchmark's 5-block VGG-like models, recorded as the
    method's ``layer``; on a model with fewer blocks the method reads that model's last one.
    """

    declared = "B5"

    def resolve(self, model: ModelWrapper) -> str:
        return list(model.block_names)[-1]

    def __repr__(self) -> str:
        return "LAST_BLOCK"


LAST_BLOCK = LastBlock()


def resolve_block(model: ModelWrapper, block: str | LastBlock) -> str:
    """The name of ``block`` on ``model`` (LAST_BLOCK -> its last block); ValueError where the model has no such block."""
    if isinstance(block, LastBlock):
        return block.resolve(model)
    if block not in model.block_names:
        raise ValueError(f"model '{model.name}' has no block {block}; it has {', '.join(model.block_names)}")
    return block


# Every aggregation method object alive in this process, by id: how a name handed to ``attribute_shared``
# (the harness passes names) finds its object. Weak: an object nobody holds drops out.
_LIVE: "weakref.WeakValueDictionary[int, AggregationMethod]" = weakref.WeakValueDictionary()


class AggregationMethod(Method):
    """Base of the aggregation family: every member computes its maps through one shared pass.

    A member says what the pass must capture (:meth:`blocks_read`, :attr:`needs_fullgrad_terms`) and how
    its map follows from the capture (:meth:`compute`).
    """

    family = "aggregation"
    shared_key: ClassVar[str | None] = "aggregation.single_pass"
    needs_fullgrad_terms: ClassVar[bool] = False  # every bias layer's df/dz and the input gradient

    def __new__(cls, *args, **kwargs):
        method = super().__new__(cls)
        _LIVE[id(method)] = method
        return method

    def blocks_read(self, model: ModelWrapper) -> tuple[str, ...]:
        """The blocks whose activations and gradients :meth:`compute` reads on ``model``."""
        return ()

    def compute(self, shared: "SharedPass") -> torch.Tensor:
        """This method's maps ``[B,H,W]`` from the pass's capture; raise NotApplicable where undefined."""
        raise NotImplementedError

    def computes_like(self, other: object) -> bool:
        """Whether ``other`` gives the same maps as this object: same class, same block, same settings."""
        return (
            type(other) is type(self)
            and getattr(other, "block", None) == getattr(self, "block", None)
            and other.setting_values() == self.setting_values()
        )

    def attribute(self, model: ModelWrapper, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """This method's maps ``[B,H,W]`` (one forward + one backward)."""
        maps = compute_maps(model, inputs, targets, [self])[self.name]
        if isinstance(maps, NotApplicable):
            raise maps
        return maps

    def attribute_shared(
        self, model: ModelWrapper, inputs: torch.Tensor, targets: torch.Tensor, names: Sequence["str | AggregationMethod"]
    ) -> dict[str, torch.Tensor]:
        """``{name: maps}`` for every aggregation method in ``names`` from a single forward + backward.

        ``names`` are method objects or the names of live ones; the harness passes its ``GroupNames``, whose
        ``methods`` are the run's own objects and are used as they are: see :meth:`members`.
        """
        group = getattr(names, "methods", None)
        if group is not None:  # the harness's group: its registered objects, never another live one of that name
            return compute_maps(model, inputs, targets, [group[name] for name in names])
        return compute_maps(model, inputs, targets, self.members(names))

    def members(self, names: Iterable["str | AggregationMethod"]) -> list["AggregationMethod"]:
        """The method objects ``names`` stand for: an object stands for itself, this object for its own name,
        another name for the live object(s) of this shared pass that carry it (compared whole, never parsed).

        ValueError for a name no live object carries, or carried by objects that compute different maps.
        """
        live = [m for m in list(_LIVE.values()) if m.shared_key == self.shared_key]
        found = []
        for item in names:
            if isinstance(item, AggregationMethod):
                found.append(item)
                continue
            if item == self.name:
                found.append(self)
                continue
            candidates = [m for m in live if m.name == item]
            if not candidates:
                raise ValueError(f"{item!r} names no aggregation method object of this process")
            if not all(candidates[0].computes_like(other) for other in candidates[1:]):
                kinds = sorted({f"{type(m).__module__}.{type(m).__qualname__}" for m in candidates})
                raise ValueError(f"several aggregation methods named {item!r} compute different maps ({', '.join(kinds)})"
                                 "; give them distinct names")
            found.append(candidates[0])
        return found


class BlockMethod(AggregationMethod):
    """A map read at one block from its activation A and df/dA: override :meth:`formula`.

    ``BlockMethod("B3")`` is named ``stem@B3``; ``BlockMethod()`` reads the model's last block
    (:data:`LAST_BLOCK`) and is named ``stem``, its ``layer`` the block that is on 5-block VGG-like models (B5).
    """

    stem: ClassVar[str] = ""  # the name's stem: "gradcam" -> "gradcam@B3"
    # True for a formula that reads only the gradient's magnitude: n/a where df/dA is constant in space
    undefined_where_gradient_is_constant: ClassVar[bool] = False

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
        return (resolve_block(model, self.block),)

    def compute(self, shared: "SharedPass") -> torch.Tensor:
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
        """The map from the weighted activations w_k A^k ``[B,K,h,w]``: ReLU(sum_k w_k A^k)."""
        return torch.relu(weighted.sum(dim=1))

    def formula(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return self.combine(self.weights(activations, grads) * activations)


class GradCAM(CAMMethod):
    """GradCAM: ReLU(sum_k w_k A^k), w_k = mean_ij df/dA^k_ij, upsampled bilinearly (Selvaraju et al. 2017)."""

    stem = "gradcam"
    positive = False

    def weights(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return formulas.gradcam_weights(grads)

    def peers(self, model: ModelWrapper) -> Iterator[tuple[str, Attribution]]:
        """captum's LayerGradCam and grad-cam's GradCAM at the model's last block."""
        block = self.peer_block(model)
        if block is not None:
            yield from peers.captum_layer_gradcam(model, block)
            yield from peers.grad_cam_library(model, "GradCAM", [model.blocks[block]])


class GradCAMPos(CAMMethod):
    """GradCAM_Pos: sum_k |w_k A^k|, GradCAM with positive aggregation (Khakzar et al. 2020)."""

    stem = "gradcam_pos"
    positive = True

    def weights(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return formulas.gradcam_weights(grads)

    def combine(self, weighted: torch.Tensor) -> torch.Tensor:
        return weighted.abs().sum(dim=1)


class GradCAMPlusPlus(CAMMethod):
    """GradCAM++: ReLU(sum_k w_k A^k), w_k = sum_ij alpha_ij ReLU(g_ij) (Chattopadhay et al. 2018)."""

    stem = "gradcampp"
    positive = True

    def weights(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return formulas.gradcampp_weights(activations, grads)

    def peers(self, model: ModelWrapper) -> Iterator[tuple[str, Attribution]]:
        """grad-cam's GradCAMPlusPlus at the model's last block."""
        block = self.peer_block(model)
        if block is not None:
            yield from peers.grad_cam_library(model, "GradCAMPlusPlus", [model.blocks[block]])


class GradMid(BlockMethod):
    """GradMid: sum_k |df/dz^k| at a block's conv pre-activation, gradients positively aggregated (Khakzar et al. 2020)."""

    stem = "gradmid"
    positive = True
    undefined_where_gradient_is_constant = True

    def formula(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return formulas.gradmid(activations, grads)


class CumulativeMethod(AggregationMethod):
    """sum over the blocks where ``part`` is defined of up(mm(part@Bn)): every block, from the same pass."""

    part: ClassVar[BlockMethod]

    def blocks_read(self, model: ModelWrapper) -> tuple[str, ...]:
        return tuple(model.block_names)

    def compute(self, shared: "SharedPass") -> torch.Tensor:
        blocks = [block for block in shared.model.block_names if shared.defined(self.part, block)]
        if not blocks:
            raise NotApplicable(f"{self.part.stem} is defined at no block of '{shared.model.name}'")
        return sum(shared.upsample(formulas.minmax(shared.block_map(self.part, block))) for block in blocks)


class CumulativeGradCAM(CumulativeMethod):
    """CumulativeGradCAM: sum over blocks of up(mm(gradcam_pos@Bn)) (Khakzar et al. 2020)."""

    name = "cumulative_gradcam"
    positive = True
    part = GradCAMPos()


class CumulativeGradMid(CumulativeMethod):
    """CumulativeGradMid: sum over the blocks where GradMid is defined of up(mm(gradmid@Bn)) (Khakzar et al. 2020)."""

    name = "cumulative_gradmid"
    positive = True
    part = GradMid()


class FullGrad(AggregationMethod):
    """FullGrad: |grad_x*x| + sum over conv layers of |df/dz * b|, each min-max normalised (Srinivas & Fleuret 2019)."""

    name = "fullgrad"
    positive = True
    needs_fullgrad_terms = True

    def compute(self, shared: "SharedPass") -> torch.Tensor:
        return fullgrad_map(shared.fullgrad_decomposition())

    def peers(self, model: ModelWrapper) -> Iterator[tuple[str, Attribution]]:
        """grad-cam's FullGrad (it min-max normalises every channel, unlike the official code this follows)."""
        yield from peers.grad_cam_library(model, "FullGrad", [])


__all__ = [
    "LAST_BLOCK",
    "AggregationMethod",
    "BlockMethod",
    "CAMMethod",
    "CumulativeGradCAM",
    "CumulativeGradMid",
    "CumulativeMethod",
    "FullGrad",
    "GradCAM",
    "GradCAMPlusPlus",
    "GradCAMPos",
    "GradMid",
    "LastBlock",
    "resolve_block",
]
