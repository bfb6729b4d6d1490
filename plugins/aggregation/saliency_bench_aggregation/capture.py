"""One forward and one backward pass that records chosen modules' outputs and df/d(output).

f = sum_b logit[b, targets[b]]: in eval mode the samples of a batch are independent, so the gradient
of that sum w.r.t. a captured output holds, per sample, the gradient of that sample's target logit.
Gradients come from ``torch.autograd.grad`` (no ``.grad`` is left on parameters, nothing needs the
parameters' ``requires_grad``); when the input gradient is not asked for, autograd only runs the
graph above the lowest captured module, so the backward stops there.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Iterator, Mapping

import torch
from torch import nn


@dataclass
class Capture:
    """What one pass recorded: logits, the input and its gradient, and per module outputs/gradients.

    ``outputs[name]`` and ``gradients[name]`` are lists with one entry per call of that module
    during the forward (one for a module used once). All tensors are detached.
    """

    logits: torch.Tensor
    target_logits: torch.Tensor
    inputs: torch.Tensor
    input_gradient: torch.Tensor | None
    outputs: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    gradients: dict[str, list[torch.Tensor]] = field(default_factory=dict)

    def single(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The (activation, gradient) of a module called exactly once in the forward."""
        calls = len(self.outputs.get(name, []))
        if calls != 1:
            raise ValueError(f"module {name!r} ran {calls} times in one forward pass; expected exactly once")
        return self.outputs[name][0], self.gradients[name][0]


def _record_output(store: list[torch.Tensor], module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    """Forward hook: keep the module's output and hand a clone downstream, so in-place ops cannot alter it."""
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"{type(module).__name__} returned {type(output).__name__}; only tensor outputs can be captured")
    store.append(output)
    return output.clone()


@contextmanager
def captured_outputs(modules: Mapping[str, nn.Module]) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Record the outputs of ``modules`` while the block runs; the hooks are removed on exit, also on error.

    The hook returns a clone of each recorded output: with ``ReLU(inplace=True)`` after a conv (torchvision
    VGG) the recorded conv output would otherwise be overwritten and its autograd history rebased.
    """
    store: dict[str, list[torch.Tensor]] = {name: [] for name in modules}
    handles = []
    try:
        for name, module in modules.items():
            handles.append(module.register_forward_hook(partial(_record_output, store[name])))
        yield store
    finally:
        for handle in handles:
            handle.remove()


def check_targets(targets: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Return ``targets`` as a long ``[B]`` tensor on the logits' device; raise ValueError when out of range."""
    targets = torch.as_tensor(targets).to(device=logits.device, dtype=torch.long).reshape(-1)
    batch, classes = logits.shape
    if targets.numel() != batch:
        raise ValueError(f"got {targets.numel()} targets for a batch of {batch}")
    if bool(((targets < 0) | (targets >= classes)).any()):
        raise ValueError(f"targets {targets.tolist()} out of range for {classes} classes")
    return targets


def forward_backward(
    network: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    modules: Mapping[str, nn.Module],
    input_gradient: bool = False,
) -> Capture:
    """One forward and one backward of f = sum_b logit[b, targets[b]], capturing ``modules``' outputs and df/d(output)."""
    x = inputs.detach().requires_grad_(True)
    with torch.enable_grad():
        with captured_outputs(modules) as outputs:
            logits = network(x)
            target_logits = logits.gather(1, check_targets(targets, logits).unsqueeze(1)).squeeze(1)
            recorded = [(name, tensor) for name, tensors in outputs.items() for tensor in tensors]
            wrt = [tensor for _, tensor in recorded] + ([x] if input_gradient else [])
            grads = torch.autograd.grad(target_logits.sum(), wrt, allow_unused=True, materialize_grads=True) if wrt else ()
    gradients: dict[str, list[torch.Tensor]] = {name: [] for name in outputs}
    for (name, _), grad in zip(recorded, grads):
        gradients[name].append(grad.detach())
    return Capture(
        logits=logits.detach(),
        target_logits=target_logits.detach(),
        inputs=x.detach(),
        input_gradient=grads[-1].detach() if input_gradient else None,
        outputs={name: [t.detach() for t in tensors] for name, tensors in outputs.items()},
        gradients=gradients,
    )
