"""What a backward rule cannot see: torch calls made outside the modules the rules are attached to.

A rule attached to modules (a forward hook on ``nn.ReLU``, on Conv/Linear) never sees a functional call
(``F.relu``, ``torch.relu``, ``x.relu()``, ``F.gelu``, ``out + identity``) made directly in a parent's
``forward``. :func:`watching` runs a ``torch.overrides.TorchFunctionMode`` during the pass that sees every
torch call and the modules it runs in; a call ``judge`` objects to, made outside every ``covered``
module's forward (and its hooks), raises ``saliency_bench.NotApplicable`` at once (the forward stops).
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Callable, Iterable, Iterator

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from saliency_bench import NotApplicable

# torch calls (by ``__name__``) that are nonlinear activations or attention: what no ReLU rule covers
NONLINEAR_CALLS = frozenset({
    "gelu", "silu", "silu_", "mish", "hardswish", "hardswish_", "hardsigmoid", "sigmoid", "sigmoid_", "tanh",
    "tanh_", "elu", "elu_", "selu", "selu_", "celu", "celu_", "leaky_relu", "leaky_relu_", "prelu", "rrelu",
    "softplus", "relu6", "hardtanh", "hardtanh_", "threshold", "threshold_", "softmax", "_softmax",
    "log_softmax", "glu", "logsigmoid", "scaled_dot_product_attention", "multi_head_attention_forward",
})
RELU_CALLS = frozenset({"relu", "relu_"})
# binary torch calls that combine two activations: a residual sum, a gate, an attention product
COMBINING_CALLS = frozenset({"add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "matmul", "bmm", "einsum"})

# every activation (and attention) module of torch.nn except ReLU itself: modules no ReLU/LRP rule here defines
OTHER_ACTIVATIONS = tuple(
    cls for cls in (getattr(nn.modules.activation, name) for name in nn.modules.activation.__all__)
    if isinstance(cls, type) and issubclass(cls, nn.Module) and not issubclass(cls, nn.ReLU)
)

Judge = Callable[[str, tuple], "str | None"]


def activations_in(args: tuple) -> int:
    """How many tensors among ``args`` carry an autograd history (computed from the input, not parameters)."""
    return sum(1 for arg in args if isinstance(arg, torch.Tensor) and arg.grad_fn is not None)


class _Watch(TorchFunctionMode):
    """Raise NotApplicable for a call ``judge`` names a reason for, made while no covered module is running."""

    def __init__(self, judge: Judge):
        super().__init__()
        self.judge = judge
        self.depth = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        """Judge the call (outside covered modules only), then run it unchanged."""
        if self.depth == 0:
            reason = self.judge(getattr(func, "__name__", ""), args)
            if reason is not None:
                raise NotApplicable(reason)
        return func(*args, **(kwargs or {}))


@contextmanager
def watching(covered: Iterable[nn.Module], judge: Judge) -> Iterator[None]:
    """Within the block, torch calls outside the ``covered`` modules' forwards are judged (module docstring).

    Enter it after the rules' own hooks are registered: its closing hook runs after theirs, so the rules'
    computations count as inside their module.
    """
    watch = _Watch(judge)

    def enter(module, inputs):
        watch.depth += 1

    def leave(module, inputs, output):
        watch.depth -= 1

    with ExitStack() as stack:
        for module in set(covered):
            stack.callback(module.register_forward_pre_hook(enter).remove)
            stack.callback(module.register_forward_hook(leave).remove)
        stack.enter_context(watch)
        yield


def unseen_by_relu_rules(name: str, args: tuple) -> str | None:
    """Why a call outside every ``nn.ReLU`` escapes the ReLU rules: a functional ReLU or another nonlinearity."""
    if name in RELU_CALLS:
        return (f"a functional ReLU (torch {name}) runs outside any torch.nn.ReLU module: the ReLU rule cannot "
                "be applied to it")
    if name in NONLINEAR_CALLS:
        return f"the network applies {name}, a nonlinearity the ReLU rule has no definition for"
    return None


def unseen_by_lrp_rules(name: str, args: tuple) -> str | None:
    """Why a call outside the LRP-covered modules escapes LRP: a nonlinearity or a product/sum of activations."""
    if name in NONLINEAR_CALLS:
        return f"the network applies {name} (a nonlinearity or attention) that LRP here has no rule for"
    if name in COMBINING_CALLS and activations_in(args) >= 2:
        return (f"the network combines two activations with torch {name} outside any module LRP has a rule for "
                "(a residual sum, gate or attention product)")
    return None
