"""The per-block aggregation formulas, batched, on activations A and gradients g = df/dA ``[B,K,h,w]``.

Notation of DESIGN.md "Methods": f = target logit, A^k = channel k of a block's activation,
g^k = df/dA^k, w_k = the channel weight of a CAM method. Every function returns low-resolution maps
``[B,h,w]``; :func:`upsample` brings them to input size. No per-image loops, no NumPy.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# GradCAM++ denominator guard: the value pytorch_grad_cam.GradCAMPlusPlus uses (grad_cam_plusplus.py).
GRADCAMPP_EPS = 1e-6
# Smallest value range min-max normalisation divides by, so a constant map becomes all zeros, not NaN.
MINMAX_EPS = 1e-12

SPATIAL = (2, 3)


def gradcam_weights(grads: torch.Tensor) -> torch.Tensor:
    """GradCAM channel weights w_k = mean_ij g^k_ij (Selvaraju et al. 2017, eq. 1), shaped ``[B,K,1,1]``."""
    return grads.mean(dim=SPATIAL, keepdim=True)


def gradcam(activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """GradCAM: ReLU(sum_k w_k A^k) with w_k = mean_ij g^k_ij (Selvaraju et al. 2017, eq. 2)."""
    return torch.relu((gradcam_weights(grads) * activations).sum(dim=1))


def gradcam_pos(activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """GradCAM_Pos: sum_k |w_k A^k|, GradCAM with positive aggregation (Khakzar et al. 2020)."""
    return (gradcam_weights(grads) * activations).abs().sum(dim=1)


def gradcampp_weights(activations: torch.Tensor, grads: torch.Tensor, eps: float = GRADCAMPP_EPS) -> torch.Tensor:
    """GradCAM++ weights w_k = sum_ij alpha_ij ReLU(g_ij), alpha = g^2 / (2 g^2 + sum_ab A_ab g^3 + eps), 0 where g = 0.

    Chattopadhay et al. 2018, eq. 19 with exp(S) = identity, as pytorch_grad_cam.GradCAMPlusPlus computes
    it (the same eps; sum_ab A_ab is the spatial sum of each channel). Returns ``[B,K,1,1]``.
    """
    grads_2 = grads.pow(2)
    grads_3 = grads_2 * grads
    activation_sums = activations.sum(dim=SPATIAL, keepdim=True)
    alpha = grads_2 / (2 * grads_2 + activation_sums * grads_3 + eps)
    alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
    return (alpha * torch.relu(grads)).sum(dim=SPATIAL, keepdim=True)


def gradcampp(activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """GradCAM++: ReLU(sum_k w_k A^k) with the GradCAM++ weights of :func:`gradcampp_weights`."""
    return torch.relu((gradcampp_weights(activations, grads) * activations).sum(dim=1))


def gradmid(activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """GradMid: sum_k |g^k|, the block's gradients positively aggregated (Khakzar et al. 2020)."""
    del activations  # the formula reads gradients only
    return grads.abs().sum(dim=1)


BLOCK_FORMULAS = {
    "gradcam": gradcam,
    "gradcam_pos": gradcam_pos,
    "gradcampp": gradcampp,
    "gradmid": gradmid,
}


def upsample(maps: torch.Tensor, size: tuple[int, int], align_corners: bool = False) -> torch.Tensor:
    """up(): bilinear interpolation of ``[B,h,w]`` maps to ``size`` (DESIGN.md notation)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=align_corners).squeeze(1)


def minmax(maps: torch.Tensor, eps: float = MINMAX_EPS) -> torch.Tensor:
    """mm(): per-sample min-max of ``[B,...]`` maps to [0,1]; a range below ``eps`` divides by ``eps``."""
    flat = maps.flatten(start_dim=1)
    shape = (-1,) + (1,) * (maps.dim() - 1)
    low = flat.min(dim=1).values.view(shape)
    high = flat.max(dim=1).values.view(shape)
    return (maps - low) / (high - low).clamp_min(eps)
