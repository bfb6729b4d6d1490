"""The distribution's one entry point (group ``saliency_bench``): registers every aggregation method.

Each variant of :mod:`.variants` at blocks B1..B5 (and under its stem alone at the last block where it says
so: ``gradcam``), the cumulative sums and FullGrad. The objects are built once, when the plugin loads: every
registry made in this process hands the run these very objects.
"""
from __future__ import annotations

from saliency_bench import hookimpl

from .base import AggregationMethod
from .cumulative import CumulativeGradCAM, CumulativeGradMid
from .fullgrad_method import FullGrad
from .variants import variant_classes

BLOCKS = ("B1", "B2", "B3", "B4", "B5")  # the blocks of the benchmark's VGG-like models (ModelWrapper.block_names)


def shipped_methods() -> list[AggregationMethod]:
    """Every method of this distribution, ordered by name: the variants per block, the cumulative sums, FullGrad."""
    variants = variant_classes()
    methods: list[AggregationMethod] = [cls(block) for cls in variants for block in BLOCKS]
    methods += [cls() for cls in variants if cls.registered_at_last_block]
    methods += [CumulativeGradCAM(), CumulativeGradMid(), FullGrad()]
    return sorted(methods, key=lambda method: method.name)


METHODS = tuple(shipped_methods())


@hookimpl
def register_methods(register) -> None:
    """Register every method of this distribution (docs/writing-a-method.md)."""
    for method in METHODS:
        register(method)
