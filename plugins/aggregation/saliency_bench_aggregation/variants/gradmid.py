"""GradMid (Khakzar et al. 2020): the gradient at a block's conv pre-activation, positively aggregated."""
from __future__ import annotations

import torch

from .. import formulas
from ..base import BlockMethod


class GradMid(BlockMethod):
    """GradMid: sum_k |df/dz^k| at a block's conv pre-activation, gradients positively aggregated (Khakzar et al. 2020)."""

    stem = "gradmid"
    positive = True
    undefined_where_gradient_is_constant = True

    def formula(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """sum_k |df/dA^k| 1(A^k > 0) (Khakzar et al. 2020)."""
        return formulas.gradmid(activations, grads)
