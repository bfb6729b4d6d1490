"""The per-block variants: one class per module here, each registered at blocks B1..B5 by the plugin.

A new variant is one file in this package with one class, in the shape of pytorch-grad-cam's ``BaseCAM``
(override ``get_cam_weights``); nothing else needs editing::

    # file: saliency_bench_aggregation/variants/squared_gradcam.py
    import torch

    from ..base import CAMMethod


    class SquaredGradCAM(CAMMethod):
        '''ReLU(sum_k w_k A^k) with w_k = mean_ij (df/dA^k_ij)^2.'''

        stem = "squared_gradcam"  # registered as squared_gradcam@B1 .. squared_gradcam@B5
        positive = False

        def weights(self, activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
            return grads.pow(2).mean(dim=(2, 3), keepdim=True)

It runs in the same forward and backward as every other aggregation method of the batch. A map that is not
ReLU(sum_k w_k A^k) overrides ``combine(weighted)`` (GradCAM_Pos) or the whole ``formula(activations, grads)``
of ``BlockMethod`` (GradMid); ``registered_at_last_block = True`` also registers the variant under its stem
alone at the model's last block (``gradcam``). :func:`variant_classes` finds the classes *defined* in this
package's modules, so a subclass that a third party defines (or imports) elsewhere is never registered here.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil

from ..base import BlockMethod


def classes_defined_in(module) -> list[type[BlockMethod]]:
    """The BlockMethod subclasses with a stem that ``module`` itself defines (not those it imports)."""
    return [
        cls for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BlockMethod) and cls.__module__ == module.__name__ and cls.stem
    ]


def check_declared(cls: type[BlockMethod]) -> None:
    """Raise TypeError unless a variant declares its own ``stem`` and ``positive`` (docs/writing-a-method.md)."""
    missing = [name for name in ("stem", "positive") if name not in vars(cls)]
    if missing:
        raise TypeError(f"variant {cls.__module__}.{cls.__qualname__} must declare {' and '.join(missing)} itself")


def variant_classes() -> list[type[BlockMethod]]:
    """Every variant class defined in a module of this package, in module order; TypeError for a stem used twice."""
    found: dict[str, type[BlockMethod]] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for cls in classes_defined_in(module):
            check_declared(cls)
            if cls.stem in found:
                first = found[cls.stem].__module__
                raise TypeError(f"variants {first} and {cls.__module__} share the stem {cls.stem!r}")
            found[cls.stem] = cls
    return list(found.values())
