"""The per-block aggregation formulas, batched, on activations A and gradients g = df/dA ``[B,K,h,w]``.

Notation of docs/protocol.md and the plugin README ("Methods"): f = target logit, A^k = channel k of a
block's activation, g^k = df/dA^k, w_k = the channel weight of a CAM method. The method classes (``base.py``,
``variants/``) combine these into their block maps ``[B,h,w]``; :func:`upsample` brings them to input size.
No per-image loops, no NumPy.
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


def gradcampp_weights(activations: torch.Tensor, grads: torch.Tensor, eps: float = GRADCAMPP_EPS) -> torch.Tensor:
    """GradCAM++ weights w_k = sum_ij alpha_ij ReLU(g_ij), alpha = g^2 / (2 g^2 + sum_ab A_ab g^3 + eps).

    Chattopadhay et al. 2018, eq. 19 with exp(S) = identity, as pytorch_grad_cam.GradCAMPlusPlus computes
    it (the same eps; sum_ab A_ab is the spatial sum of each channel). Returns ``[B,K,1,1]``.

    Only cells with g > 0 enter the sum (ReLU(g) = 0 elsewhere), and only there is alpha taken: where g < 0 the
    denominator can round to exactly 0 (sum A |g|^3 = 2 g^2 + eps), and alpha * ReLU(g) = inf * 0 would make the
    channel weight NaN, whether it does depending on the last bit of g (so a shared pass and a lone call whose
    backward rounds differently would disagree). Where A >= 0 (a block read after a ReLU) the denominator at
    g > 0 is at least eps: the weights are finite for every finite A and g.
    """
    grads_2 = grads.pow(2)
    grads_3 = grads_2 * grads
    activation_sums = activations.sum(dim=SPATIAL, keepdim=True)
    alpha = grads_2 / (2 * grads_2 + activation_sums * grads_3 + eps)
    return torch.where(grads > 0, alpha * grads, torch.zeros_like(alpha)).sum(dim=SPATIAL, keepdim=True)


def gradmid(activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """GradMid: sum_k |df/dz^k| = sum_k |g^k| 1(A^k > 0), the gradient at the conv pre-activation (Khakzar et al. 2020).

    Read at the block's ReLU output A (before its max-pool), df/dA of a window whose activations are all
    zero is routed by the pool's backward to the window's first cell, a lattice that depends on neither
    class nor model; the ReLU's own backward, 1(A > 0), is what removes it: df/dz = df/dA 1(A > 0).
    """
    return (grads.abs() * (activations > 0)).sum(dim=1)


def spatially_constant(grads: torch.Tensor, rtol: float = 1e-5) -> bool:
    """True when, in every sample and channel, the non-zero |df/dA| values are all equal: no spatial information.

    This is the gradient at the last block of a model whose head is global average pooling (then a
    linear layer): df/dA^k = w_k / (h w) at every cell the pool routes to, whatever the class's evidence.
    An all-zero gradient (a vanished signal, as after randomisation) is a map of zeros, not this case; nor
    is a block whose pool has a single window (one non-zero cell per channel: nothing to be constant).
    """
    return bool(spatially_constant_flag(grads, rtol))


def spatially_constant_flag(grads: torch.Tensor, rtol: float = 1e-5) -> torch.Tensor:
    """:func:`spatially_constant` as a 0-d bool tensor on the gradient's device (no host synchronisation on a GPU).

    On the CPU the first sample is tested alone first: "every sample constant" is false when it is not, which is
    the answer at every block but one before a global-average-pool head, for 1/B of the work (a host
    synchronisation costs nothing there). The full test runs otherwise, so the answer is the same either way.
    """
    if grads.device.type == "cpu" and len(grads) > 1 and not bool(_constant_per_sample(grads[:1], rtol)[1].all()):
        return torch.tensor(False)
    repeated, constant = _constant_per_sample(grads, rtol)
    return repeated.any() & constant.all()


def _constant_per_sample(grads: torch.Tensor, rtol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample and channel: more than one non-zero |df/dA| cell, and all non-zero |df/dA| equal within ``rtol``.

    Reduced over the spatial dims in place of a flattened copy (a channels-last gradient cannot be flattened
    without one).
    """
    spatial = tuple(range(2, grads.dim()))
    magnitude = grads.abs()
    nonzero = magnitude > 0
    high = magnitude.amax(spatial)
    low = magnitude.masked_fill_(~nonzero, float("inf")).amin(spatial)
    repeated = nonzero.sum(spatial) > 1  # one non-zero cell per channel proves nothing
    return repeated, (high == 0) | (high - low <= rtol * high)


def patches_unreached(grads: torch.Tensor, prefix_tokens: int) -> bool:
    """True for token gradients ``[B,N,D]`` that are zero on every patch token but not on the prefix (class) token.

    A ViT's last encoder block: the head reads only the class token, so df/dA of the patch tokens is
    structurally zero there (no attention after it mixes them in) and a CAM on the patch grid is empty.
    """
    if grads.dim() != 3 or prefix_tokens < 1:
        return False
    return not bool(grads[:, prefix_tokens:].any()) and bool(grads[:, :prefix_tokens].any())


def upsample(maps: torch.Tensor, size: tuple[int, int], align_corners: bool = False) -> torch.Tensor:
    """up(): bilinear interpolation of ``[B,h,w]`` maps to ``size`` (docs/protocol.md notation)."""
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
