"""Peer implementations of a method (its versions in other libraries), as the method itself declares them.

The core knows no method and no peer library: a method's ``peers(model)`` (the method contract, methods.py)
yields ``(label, fn(inputs, targets))`` for each installed library implementing it with its own settings.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator

import torch

if TYPE_CHECKING:  # pragma: no cover
    from ..methods import Method
    from ..models.wrapper import ModelWrapper

Attribution = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def peer_implementations(method: "Method", model: "ModelWrapper") -> Iterator[tuple[str, Attribution]]:
    """``(label, fn(inputs, targets))`` for every peer ``method`` declares on ``model`` (none if it declares none).

    A method object that predates ``Method.peers`` (duck-typed, not a subclass) has none.
    """
    peers = getattr(method, "peers", None)
    if peers is not None:
        yield from peers(model)
