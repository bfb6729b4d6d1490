"""GradCAM_Pos (Khakzar et al. 2020): GradCAM with positive aggregation."""
from __future__ import annotations

import torch

from .. import formulas
from ..base import CAMMethod


class GradCAMPos(CAMMethod):
    """GradCAM_Pos: sum_k |w_k A^k|, GradCAM with positive aggregation (Khakzar et al. 2020)."""

    stem = "gradcam_pos"
    positive = True

    def weights(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """w_k = mean_ij df/dA^k_ij, GradCAM's (Selvaraju et al. 2017, eq. 1)."""
        return formulas.gradcam_weights(grads)

    def combine(self, weighted: torch.Tensor) -> torch.Tensor:
        """sum_k |w_k A^k| (Khakzar et al. 2020)."""
        return weighted.abs().sum(dim=1)
