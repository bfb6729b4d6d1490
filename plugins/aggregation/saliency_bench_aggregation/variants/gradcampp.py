"""GradCAM++ (Chattopadhay et al. 2018)."""
from __future__ import annotations

from typing import Iterator

import torch

from saliency_bench import ModelWrapper

from .. import formulas, peers
from ..base import CAMMethod
from ..peers import Attribution


class GradCAMPlusPlus(CAMMethod):
    """GradCAM++: ReLU(sum_k w_k A^k), w_k = sum_ij alpha_ij ReLU(g_ij) (Chattopadhay et al. 2018)."""

    stem = "gradcampp"
    positive = True

    def weights(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """w_k = sum_ij alpha_ij ReLU(g_ij) (Chattopadhay et al. 2018, eq. 19)."""
        return formulas.gradcampp_weights(activations, grads)

    def peers(self, model: ModelWrapper) -> Iterator[tuple[str, Attribution]]:
        """grad-cam's GradCAMPlusPlus at the model's last block."""
        block = self.peer_block(model)
        if block is not None:
            yield from peers.grad_cam_library(model, "GradCAMPlusPlus", [model.blocks[block]])
