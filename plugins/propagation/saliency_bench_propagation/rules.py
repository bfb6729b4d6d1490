"""Backward rules at ReLU modules (guided backprop, deconvnet, RectGrad), applied as context managers.

Inside ``relu_backward_rule(network, rule)`` every ``nn.ReLU`` keeps its forward value, but its backward pass
sends ``rule(a, R_out)`` straight to the ReLU's input (a = the ReLU's output activation, R_out = the signal
arriving from above), replacing the usual ``1(z > 0) R_out``. Hooks and in-place switches are undone on exit.

Per call, not per module: a module called several times in one forward (torchvision's Bottleneck calls its one
``self.relu`` three times) gets one autograd node per call, each holding that call's own activation, so every
call gets its own rule. A nonlinearity the rule cannot see (an activation module other than ``nn.ReLU``,
attention, or a functional ``F.relu``/``torch.relu``/``F.gelu`` called outside an ``nn.ReLU``) makes the method
undefined on the network: ``saliency_bench.NotApplicable`` with the reason, never a silent pass-through.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn

from saliency_bench import NotApplicable

from .hooks import forward_hooks, out_of_place
from .watch import OTHER_ACTIVATIONS, unseen_by_relu_rules, watching

ReLURule = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class _ReLUBackward(torch.autograd.Function):
    """Forward: the ReLU output unchanged. Backward: ``rule(a, R_out)`` to the ReLU's input, skipping ``1(z>0)``."""

    @staticmethod
    def forward(ctx, pre_activation, activation, rule):
        """Return the ReLU output as is; remember it (this call's own, in this call's node) for the rule."""
        ctx.save_for_backward(activation)
        ctx.rule = rule
        return activation.view_as(activation)

    @staticmethod
    def backward(ctx, relevance):
        """R_in = rule(a, R_out), routed to the pre-activation (nothing flows through the ReLU itself)."""
        (activation,) = ctx.saved_tensors
        return ctx.rule(activation, relevance), None, None


def guided(activation: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """Guided backprop (Springenberg et al. 2015): R_in = 1(a > 0) 1(R_out > 0) R_out."""
    # threshold_backward(g, a, 0) = where(a > 0, g, 0) in one fused pass (ReLU's own backward kernel)
    return torch.ops.aten.threshold_backward(relevance.clamp(min=0), activation, 0)


def deconvnet(activation: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """DeconvNet (Zeiler & Fergus 2014): R_in = 1(R_out > 0) R_out, ignoring the forward mask."""
    return relevance.clamp(min=0)


def above_percentile(values: torch.Tensor, q: float) -> torch.Tensor:
    """``values > tau``, tau = q-th percentile of each sample over all non-batch dims (numpy.percentile, linear).

    With position p = q/100 (n-1), low = floor(p), tau lies in [v_(low+1), v_(low+2)] (order statistics,
    1-based), and no value lies strictly between those two, so ``v > tau`` equals ``v > v_(low+1)`` whatever
    the interpolation fraction: one order statistic decides the mask (``topk``, 3x faster than ``kthvalue``).
    This is the exact-arithmetic mask; numpy or torch.quantile, rounding the interpolated tau, can land on
    v_(low+2) itself when the two are one ulp apart and then leave that value out.
    """
    flat = per_sample_rows(values)
    count = flat.shape[1]
    low = min(int(math.floor(q / 100.0 * (count - 1))), count - 1)
    keep = count - low
    if keep <= count // 2:
        cut = flat.topk(keep, dim=1, sorted=False).values.amin(dim=1)
    else:
        cut = flat.kthvalue(low + 1, dim=1).values
    return values > cut.view(-1, *([1] * (values.dim() - 1)))


def per_sample_rows(values: torch.Tensor) -> torch.Tensor:
    """``[B, n]``: each sample's values in memory order, a view where the layout allows (a channels-last tensor is
    read as NHWC instead of copied to NCHW; a percentile does not depend on the order)."""
    if values.dim() == 4 and not values.is_contiguous() and values.is_contiguous(memory_format=torch.channels_last):
        return values.permute(0, 2, 3, 1).reshape(values.shape[0], -1)
    return values.reshape(values.shape[0], -1)


def rectified(q: float = 98.0, tau: float | None = None, absolute: bool = False) -> ReLURule:
    """RectGrad (Kim et al. 2019): R_in = 1(a R_out > tau) R_out; tau = q-th percentile of a R_out per sample.

    ``absolute=True`` gives the seed paper's RectGrad_Mod: 1(|a R_out| > tau) R_out with tau the percentile
    of |a R_out|. A fixed ``tau`` replaces the percentile (tau = 0 gives guided backprop / the gradient).
    """

    def rule(activation: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
        importance = activation * relevance
        if absolute:
            importance.abs_()
        passes = importance > tau if tau is not None else above_percentile(importance, q)
        return torch.where(passes, relevance, 0.0)

    return rule


def unsupported_activations(network: nn.Module) -> None:
    """Raise NotApplicable when ``network`` holds an activation/attention module other than ``nn.ReLU`` (GELU, SiLU...)."""
    for name, module in network.named_modules():
        if isinstance(module, OTHER_ACTIVATIONS):
            raise NotApplicable(f"layer {name!r} is a {type(module).__name__}: the ReLU backward rule has no "
                                "definition for it")


def relu_modules(network: nn.Module) -> list[nn.ReLU]:
    """Every ``nn.ReLU`` module of ``network``; a clear error when there is none (functional ReLUs are invisible)."""
    relus = [module for module in network.modules() if isinstance(module, nn.ReLU)]
    if not relus:
        raise ValueError("the network has no torch.nn.ReLU modules: ReLU backward rules need ReLUs given as modules")
    return relus


@contextmanager
def relu_backward_rule(network: nn.Module, rule: ReLURule) -> Iterator[None]:
    """Within the block, every ``nn.ReLU`` call of ``network`` back-propagates ``rule(a, R_out)``; undone on exit.

    Raises NotApplicable (before the forward, or as soon as the forward makes the call) where a nonlinearity
    escapes the rule: see the module docstring.
    """
    unsupported_activations(network)
    relus = relu_modules(network)

    def hook(module, inputs, output):
        """Forward hook: wrap the ReLU output so that its backward is the rule."""
        return _ReLUBackward.apply(inputs[0], output, rule)

    with out_of_place(network), forward_hooks(relus, hook), watching(relus, unseen_by_relu_rules):
        yield
