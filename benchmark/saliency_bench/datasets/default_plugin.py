"""Default plugin: registers the synthetic shapes dataset ("shapes"), the embedded default."""
from __future__ import annotations

from ..hookspecs import hookimpl
from .base import DatasetSpec
from .synthetic import DEFAULT_COUNTS, load_shapes


@hookimpl
def register_datasets(register):
    """Register ``shapes``: seeded synthetic multi-object images with per-class masks (DESIGN.md)."""
    register(
        DatasetSpec(
            name="shapes",
            load=load_shapes,
            description=(
                "synthetic shapes (6 classes, 1-3 objects, per-class masks), seeded; "
                f"splits train/val/benchmark, {DEFAULT_COUNTS['benchmark']} benchmark images"
            ),
            has_masks=True,
            options={"count": None, "seed": 0},
        )
    )
