"""Context managers that change a network only for the duration of one method call (try/finally)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

from torch import nn


@contextmanager
def out_of_place(network: nn.Module) -> Iterator[None]:
    """Set ``inplace=False`` on every in-place module (ReLU, Dropout, ...) for the block; restore it afterwards.

    Backward rules need the layer input and output as distinct tensors; ``ReLU(inplace=True)`` (torchvision
    VGG) overwrites its input, so the rules run on the out-of-place twin of the same computation.
    """
    switched = [module for module in network.modules() if getattr(module, "inplace", None) is True]
    for module in switched:
        module.inplace = False
    try:
        yield
    finally:
        for module in switched:
            module.inplace = True


@contextmanager
def forward_hooks(modules: Iterable[nn.Module], hook: Callable) -> Iterator[None]:
    """Register ``hook`` as a forward hook on every module for the block; remove every handle afterwards."""
    handles = []
    try:
        for module in modules:
            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()
