"""The cumulative methods (Khakzar et al. 2020): a per-block map min-max normalised and summed over blocks."""
from __future__ import annotations

from typing import ClassVar

import torch

from saliency_bench import ModelWrapper, NotApplicable

from . import formulas
from .base import AggregationMethod, BlockMethod
from .shared import SharedPass
from .variants.gradcam_pos import GradCAMPos
from .variants.gradmid import GradMid


class CumulativeMethod(AggregationMethod):
    """sum over the blocks where ``part`` is defined of up(mm(part@Bn)): every block, from the same pass."""

    part: ClassVar[BlockMethod]

    def blocks_read(self, model: ModelWrapper) -> tuple[str, ...]:
        """Every block of ``model``."""
        return tuple(model.block_names)

    def compute(self, shared: SharedPass) -> torch.Tensor:
        """sum_n up(mm(part@Bn)) over the blocks where ``part`` is defined (Khakzar et al. 2020)."""
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
