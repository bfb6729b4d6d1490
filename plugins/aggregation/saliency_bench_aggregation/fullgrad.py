"""FullGrad (Srinivas & Fleuret, NeurIPS 2019), in the order of the official idiap/fullgrad-saliency code.

Full-gradient decomposition: f(x) = sum(grad_x f * x) + sum over bias layers of sum(df/dz * b), where z
is the layer's OUTPUT and b its bias broadcast over it (exact for piecewise-linear nets: ReLU, max-pool,
no normalisation or with eval BatchNorm folded into an effective bias). The saliency map, as in the
official ``FullGrad.saliency``:

    cam = sum_c P(grad_x f * x) + sum over conv layers of up(sum_c P(df/dz * b))
    P(t) = |t|, minus its per-sample min over (C,H,W), divided by (its per-sample max + 1e-6)
    up  = bilinear upsampling to input size with align_corners=True (as the official code)

Channels are summed before upsampling here, after it in the official code: the same numbers, since
bilinear interpolation is linear in each channel. Bias terms of Linear layers on ``[B, features]`` enter the
decomposition but not the map (the official code keeps only 4-D terms). On token models (ViT) the per-token
Linear layers and the patch embedding are the spatial layers: their ``[B, N, D]`` terms enter the map through
``model.to_grid`` (prefix/class token dropped, patches on their grid), as every block activation does.
Batch norm in eval mode is affine, x w/sqrt(v+eps) + (b - m w/sqrt(v+eps)); the second term is its bias
(the paper's ResNet/VGG-BN treatment). LayerNorm is not affine in its input and has no bias term here;
biases used functionally inside ``nn.MultiheadAttention`` (no module call) are not seen.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .capture import Capture, forward_backward
from .formulas import upsample

# The denominator guard of the official ``FullGrad._postProcess``.
POSTPROCESS_EPS = 1e-6
BIAS_LAYERS = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)


def effective_bias(module: nn.Module) -> torch.Tensor | None:
    """The b of y = W x + b: the bias parameter, or for eval BatchNorm2d b - m w / sqrt(v + eps) (official extractor)."""
    if isinstance(module, nn.BatchNorm2d):
        if module.running_mean is None or module.running_var is None:
            return None
        weight = module.weight if module.weight is not None else torch.ones_like(module.running_mean)
        bias = module.bias if module.bias is not None else torch.zeros_like(module.running_mean)
        return (bias - module.running_mean * weight / torch.sqrt(module.running_var + module.eps)).detach()
    bias = getattr(module, "bias", None)
    return None if bias is None else bias.detach()


def bias_layers(network: nn.Module) -> dict[str, nn.Module]:
    """Every Conv2d, Linear and BatchNorm2d that has a bias, by name (the layers FullGrad reads)."""
    return {
        name: module
        for name, module in network.named_modules()
        if isinstance(module, BIAS_LAYERS) and effective_bias(module) is not None
    }


@dataclass
class FullGradDecomposition:
    """The pre-psi FullGrad terms: grad_x f * x ``[B,C,H,W]`` and, per bias-layer call, df/dz * b (layer output shape)."""

    target_logits: torch.Tensor
    input_term: torch.Tensor
    bias_terms: list[tuple[str, torch.Tensor]]
    # how a term becomes [B, C, h, w] (the model's ``to_grid``); None: 4-D terms only, as the official code
    to_grid: Callable[[torch.Tensor], torch.Tensor] | None = None

    def total(self) -> torch.Tensor:
        """Per-sample sum of every term ``[B]``; equals the target logit for piecewise-linear nets (completeness)."""
        total = self.input_term.flatten(start_dim=1).sum(dim=1)
        for _, term in self.bias_terms:
            total = total + term.flatten(start_dim=1).sum(dim=1)
        return total


def decomposition_from_capture(
    capture: Capture, layers: dict[str, nn.Module], to_grid: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> FullGradDecomposition:
    """Build the FullGrad terms from a pass that captured ``layers`` and the input gradient (``to_grid``: see the class)."""
    if capture.input_gradient is None:
        raise ValueError("FullGrad needs the input gradient; the pass was run without it")
    bias_terms = []
    for name, module in layers.items():
        bias = effective_bias(module)
        for grad in capture.gradients[name]:
            shape = [1] * grad.dim()
            shape[-1 if isinstance(module, nn.Linear) else 1] = bias.numel()  # Linear: features last (tokens [B,N,D])
            bias_terms.append((name, grad * bias.to(grad.dtype).view(shape)))
    return FullGradDecomposition(
        target_logits=capture.target_logits,
        input_term=capture.input_gradient * capture.inputs,
        bias_terms=bias_terms,
        to_grid=to_grid,
    )


def fullgrad_decomposition(network: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> FullGradDecomposition:
    """Full-gradient decomposition (Srinivas & Fleuret 2019, eq. 3) of each target logit, in one forward + backward."""
    layers = bias_layers(network)
    capture = forward_backward(network, inputs, targets, layers, input_gradient=True)
    return decomposition_from_capture(capture, layers)


def postprocess(term: torch.Tensor, eps: float = POSTPROCESS_EPS) -> torch.Tensor:
    """Official ``_postProcess``: psi = |.|, then per sample subtract the min and divide by (max + eps) over (C,H,W).

    Reduced over the non-batch dims in place of a flattened copy (channels-last terms cannot be flattened without
    one); max(|t| - min) is taken as max|t| - min, the same float (rounding is monotone), so the bits are the
    official order's.
    """
    magnitude = term.abs()
    dims = tuple(range(1, term.dim()))
    low, high = magnitude.amin(dims, keepdim=True), magnitude.amax(dims, keepdim=True)
    return magnitude.sub_(low).div_((high - low).add_(eps))


def spatial_terms(decomposition: FullGradDecomposition) -> list[torch.Tensor]:
    """The bias terms with a spatial layout ``[B,C,h,w]``: conv/BN outputs, and token terms through ``to_grid``."""
    terms = []
    for _, term in decomposition.bias_terms:
        if term.dim() == 4:  # conv (and BatchNorm2d) layers, as the official code
            terms.append(term)
        elif term.dim() == 3 and decomposition.to_grid is not None:  # per-token layers of a ViT
            terms.append(decomposition.to_grid(term))
    return terms


def fullgrad_map(decomposition: FullGradDecomposition) -> torch.Tensor:
    """FullGrad saliency ``[B,H,W]``: sum_c P(grad_x * x) + sum over spatial terms up(sum_c P(df/dz * b))."""
    size = tuple(decomposition.input_term.shape[-2:])
    cam = postprocess(decomposition.input_term).sum(dim=1)
    for term in spatial_terms(decomposition):
        cam = cam + upsample(postprocess(term).sum(dim=1), size, align_corners=True)
    return cam
