"""The aggregation methods as ``saliency_bench.Method`` objects sharing one pass per batch."""
from __future__ import annotations

from typing import ClassVar, Sequence

import torch

from saliency_bench import Method, ModelWrapper, NotApplicable

from .names import block_method_name
from .shared import compute_maps

# The block ``gradcam`` (LAST_BLOCK) declares: the last block of the 5-block VGG-like models.
LAST_BLOCK_LAYER = "B5"


class AggregationMethod(Method):
    """Base of the aggregation family: every member computes its maps through one shared pass."""

    family = "aggregation"
    shared_key: ClassVar[str | None] = "aggregation.single_pass"

    def attribute(self, model: ModelWrapper, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """This method's maps ``[B,H,W]`` (one forward + one backward)."""
        maps = self.attribute_shared(model, inputs, targets, [self.name])[self.name]
        if isinstance(maps, NotApplicable):
            raise maps
        return maps

    def attribute_shared(
        self, model: ModelWrapper, inputs: torch.Tensor, targets: torch.Tensor, names: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """``{name: maps}`` for every aggregation method in ``names`` from a single forward + backward."""
        return compute_maps(model, inputs, targets, names)


class BlockMethod(AggregationMethod):
    """A formula read at one block: ``formula@B3``; ``block=None`` gives the bare name on the last block."""

    formula: ClassVar[str] = ""

    def __init__(self, block: str | None = None):
        if block is None:
            self.name = self.formula
            self.layer = LAST_BLOCK_LAYER
        else:
            self.name = block_method_name(self.formula, block)
            self.layer = block


class GradCAM(BlockMethod):
    """GradCAM: ReLU(sum_k w_k A^k), w_k = mean_ij df/dA^k_ij, upsampled bilinearly (Selvaraju et al. 2017)."""

    formula = "gradcam"
    positive = False


class GradCAMPos(BlockMethod):
    """GradCAM_Pos: sum_k |w_k A^k|, GradCAM with positive aggregation (Khakzar et al. 2020)."""

    formula = "gradcam_pos"
    positive = True


class GradCAMPlusPlus(BlockMethod):
    """GradCAM++: ReLU(sum_k w_k A^k), w_k = sum_ij alpha_ij ReLU(g_ij) (Chattopadhay et al. 2018)."""

    formula = "gradcampp"
    positive = True


class GradMid(BlockMethod):
    """GradMid: sum_k |df/dz^k| at a block's conv pre-activation, gradients positively aggregated (Khakzar et al. 2020)."""

    formula = "gradmid"
    positive = True


class CumulativeGradCAM(AggregationMethod):
    """CumulativeGradCAM: sum over blocks of up(mm(gradcam_pos@Bn)) (Khakzar et al. 2020)."""

    name = "cumulative_gradcam"
    positive = True


class CumulativeGradMid(AggregationMethod):
    """CumulativeGradMid: sum over the blocks where GradMid is defined of up(mm(gradmid@Bn)) (Khakzar et al. 2020)."""

    name = "cumulative_gradmid"
    positive = True


class FullGrad(AggregationMethod):
    """FullGrad: |grad_x*x| + sum over conv layers of |df/dz * b|, each min-max normalised (Srinivas & Fleuret 2019)."""

    name = "fullgrad"
    positive = True


__all__ = [
    "AggregationMethod",
    "BlockMethod",
    "CumulativeGradCAM",
    "CumulativeGradMid",
    "FullGrad",
    "GradCAM",
    "GradCAMPlusPlus",
    "GradCAMPos",
    "GradMid",
]
