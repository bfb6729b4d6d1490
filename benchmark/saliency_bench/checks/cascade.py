"""The randomisation cascade (Adebayo et al. 2018): which parameters each step redraws, and the model states it
passes through, top down or bottom up, cumulatively (cascading) or one step at a time (independent).

Every step's values are drawn once per weight draw, in the canonical top-down order, so a step gets the same values
whatever the order or mode it is visited in (the bottom-up cascade ends in the top-down cascade's final state).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch

from ..errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from ..harness.group import MethodGroup
    from ..models.wrapper import ModelWrapper

ORDERS = ("top_down", "bottom_up")  # top_down: from the logits to the input (Adebayo et al.); bottom_up: the reverse
MODES = ("cascading", "independent")  # cascading: steps accumulate; independent: one step randomised at a time
INITS = ("layer_std", "fixed")


def draw_seed(seed: int, draw: int) -> int:
    """The generator seed of weight draw ``draw`` of a run seeded ``seed`` (independent streams per draw)."""
    return int(np.random.SeedSequence([int(seed), int(draw)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def is_bias(name: str) -> bool:
    """A bias by name: the leaf is ``bias`` or ends in ``_bias`` (``nn.MultiheadAttention.in_proj_bias``)."""
    leaf = name.rsplit(".", 1)[-1]
    return leaf == "bias" or leaf.endswith("_bias")


def step_parameters(model: "ModelWrapper", order: list[str]) -> list[list[tuple[str, torch.nn.Parameter]]]:
    """Per cascade step, ``(name in the step's module, parameter)`` of its subtree that no earlier step took."""
    from ..models.blocks import subtree_parameters

    taken: set[int] = set()
    return [subtree_parameters(model.module(layer), taken) for layer in order]


def weight_scale(param: torch.Tensor, init: str, std: float) -> float:
    """``layer_std``: the std of the tensor's trained values; ``fixed``, one element or a std of 0/NaN: ``std``."""
    if init != "layer_std" or param.numel() <= 1:
        return float(std)
    trained = float(param.detach().cpu().double().std())  # on the CPU: the same scale whatever the device
    return trained if math.isfinite(trained) and trained > 0 else float(std)


def random_parameters(
    model: "ModelWrapper", order: list[str], std: float, bias: float, seed: int, init: str = "fixed", draw: int = 0
) -> list[dict]:
    """Per cascade step in ``order``, ``{param_name: new value}`` for every parameter of the step's module subtree
    that no earlier step took: weights ~ N(0, s^2), biases = ``bias``; seeded per draw.

    ``init="layer_std"``: s = the standard deviation of the tensor's own trained values, so the re-initialised
    tensor keeps the scale the network was trained at (Adebayo et al. 2018 re-draw from the training
    initialiser; the trained scale is what this harness can know of any model). ``init="fixed"``: s = ``std``.
    A tensor of one element or whose trained values are all equal (std 0, e.g. a LayerNorm weight still at its
    initial ones) is drawn with s = ``std`` too. Biases are parameters whose name is ``bias`` or ends in ``_bias``
    (attention ``in_proj_bias``); every other parameter, normalisation scales, class token and position embedding
    included, is a weight. Buffers (batch-norm running statistics) are left as trained.
    Drawn on the CPU from one ``torch.Generator`` in a fixed order (steps, then parameters in definition order),
    so every device gets the same values.
    """
    if init not in INITS:
        raise UserError(f"randomization init must be one of {', '.join(INITS)}, got {init!r}")
    generator = torch.Generator().manual_seed(draw_seed(seed, draw))
    layers = []
    for params in step_parameters(model, order):
        new = {}
        for pname, param in params:
            if is_bias(pname):
                value = torch.full(param.shape, float(bias))
            else:
                value = torch.randn(param.shape, generator=generator) * weight_scale(param, init, std)
            new[pname] = value.to(device=param.device, dtype=param.dtype)
        layers.append(new)
    return layers


@torch.no_grad()
def restore_layers(copy: "ModelWrapper", original: "ModelWrapper", order: list[str]) -> None:
    """Copy the original parameters of every cascade step in ``order`` (their module subtrees) back into the copy."""
    for layer, params in zip(order, step_parameters(copy, order)):
        source = dict(original.module(layer).named_parameters())
        for pname, param in params:
            param.copy_(source[pname])


@torch.no_grad()
def randomize_layer(copy: "ModelWrapper", layer: str, values: dict) -> None:
    """Overwrite one cascade step of the copy (the parameters named in ``values``) with its pre-drawn values."""
    params = dict(copy.module(layer).named_parameters())
    for pname, value in values.items():
        params[pname].copy_(value)


@torch.no_grad()
def restore_values(copy: "ModelWrapper", original: "ModelWrapper", layer: str, names) -> None:
    """Put the original values of the parameters ``names`` of step ``layer`` back into the copy."""
    params, source = dict(copy.module(layer).named_parameters()), dict(original.module(layer).named_parameters())
    for pname in names:
        params[pname].copy_(source[pname])


class Cascade:
    """One weight draw of the cascade over ``layers`` (top-down order) on a copy of ``original``: ``states(group)``
    leaves the copy in each step's state in turn and yields the step's layer."""

    def __init__(self, original: "ModelWrapper", copy: "ModelWrapper", layers: list[str], params: dict, draw: int):
        if params.get("order", ORDERS[0]) not in ORDERS or params.get("mode", MODES[0]) not in MODES:
            raise UserError(f"randomization order must be one of {', '.join(ORDERS)} and mode one of {', '.join(MODES)}")
        self.original, self.copy, self.layers = original, copy, list(layers)
        self.independent = params.get("mode", MODES[0]) == "independent"
        values = random_parameters(copy, self.layers, float(params["init_std"]), float(params["init_bias"]),
                                   params["seed"], init=str(params["init"]), draw=draw)
        self.steps = list(zip(self.layers, values))
        if params.get("order", ORDERS[0]) == "bottom_up":
            self.steps.reverse()

    @property
    def visited(self) -> list[str]:
        """The steps' layers in the order the cascade visits them (the curve's x axis)."""
        return [layer for layer, _ in self.steps]

    def states(self, group: "MethodGroup") -> Iterator[str]:
        """Restore the copy, then per step: (independent: put the previous step back,) redraw this step's parameters;
        each change is the check's own (``group.accept_changes``), so a method's change is still caught."""
        restore_layers(self.copy, self.original, self.layers)
        group.accept_changes(self.copy)
        previous = None
        for layer, values in self.steps:
            if self.independent and previous is not None:
                restore_values(self.copy, self.original, previous[0], previous[1])
            randomize_layer(self.copy, layer, values)
            group.accept_changes(self.copy)
            previous = (layer, list(values))
            yield layer


def randomized_copy(model: "ModelWrapper", seed: int, draw: int = 0, init: str = "layer_std", std: float = 0.01,
                    bias: float = 0.0) -> "ModelWrapper":
    """A copy of ``model`` with every parameter redrawn as the cascade's final state (Adebayo et al. 2018's fully
    randomised model): the model's randomisation order, weights at each tensor's trained scale, biases ``bias``."""
    copy = model.copy()
    layers = list(model.randomization_order)
    for layer, values in zip(layers, random_parameters(copy, layers, std, bias, seed, init=init, draw=draw)):
        randomize_layer(copy, layer, values)
    return copy
