"""The one backward pass every propagation method shares, and the channel reductions (docs/protocol.md)."""
from __future__ import annotations

import torch
from torch import nn


def network_of(model) -> nn.Module:
    """The ``nn.Module`` behind a ``saliency_bench.ModelWrapper`` (or the module itself)."""
    return getattr(model, "network", model)


def target_gradient(network: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """d f_t(x) / d x for each sample's target logit f_t (Simonyan et al. 2014), w.r.t. the input only.

    Uses ``torch.autograd.grad`` on ``sum_b logits[b, targets[b]]`` so no ``.grad`` lands on parameters;
    whatever backward rules are active at call time shape the result.
    """
    x = inputs.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = network(x)
        score = logits.gather(1, targets.to(logits.device).long().view(-1, 1)).sum()
        (gradient,) = torch.autograd.grad(score, x)
    return gradient


def chunked_target_gradient(
    network: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, max_batch: int
) -> torch.Tensor:
    """``target_gradient`` of a long expanded batch, at most ``max_batch`` images per pass (bounded memory)."""
    return torch.cat(
        [target_gradient(network, x, t) for x, t in zip(inputs.split(max_batch), targets.split(max_batch))]
    )


def max_abs_over_channels(attribution: torch.Tensor) -> torch.Tensor:
    """``max_c |A_c|``: the saliency-map reduction of Simonyan et al. 2014 ([B,C,H,W] -> [B,H,W])."""
    return attribution.abs().amax(dim=1)


def sum_over_channels(attribution: torch.Tensor) -> torch.Tensor:
    """``sum_c A_c``: the reduction of additive attributions (LRP, input x gradient, IG), sign kept."""
    return attribution.sum(dim=1)
