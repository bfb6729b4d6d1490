"""GradCAM (Selvaraju et al. 2017), also registered under its stem alone at the model's last block."""
from __future__ import annotations

from typing import Iterator

import torch

from saliency_bench import ModelWrapper

from .. import formulas, peers
from ..base import CAMMethod
from ..peers import Attribution


class GradCAM(CAMMethod):
    """GradCAM: ReLU(sum_k w_k A^k), w_k = mean_ij df/dA^k_ij, upsampled bilinearly (Selvaraju et al. 2017)."""

    stem = "gradcam"
    positive = False
    registered_at_last_block = True

    def weights(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """w_k = mean_ij df/dA^k_ij (Selvaraju et al. 2017, eq. 1)."""
        return formulas.gradcam_weights(grads)

    def peers(self, model: ModelWrapper) -> Iterator[tuple[str, Attribution]]:
        """captum's LayerGradCam and grad-cam's GradCAM at the model's last block."""
        block = self.peer_block(model)
        if block is not None:
            yield from peers.captum_layer_gradcam(model, block)
            yield from peers.grad_cam_library(model, "GradCAM", [model.blocks[block]])
