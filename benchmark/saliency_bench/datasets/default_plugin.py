"""Default plugin: registers the synthetic datasets, ``shapes`` (VOC-like scenes, the default) and ``shapes_disjoint``."""
from __future__ import annotations

from functools import partial

from ..hookspecs import hookimpl
from .base import DatasetSpec
from .scenes import SceneShapesDataset
from .synthetic import DEFAULT_COUNTS, ShapesDataset, load_shapes


@hookimpl
def register_datasets(register):
    """Register ``shapes`` (the embedded default) and ``shapes_disjoint`` (the first, disjoint layout)."""
    register(
        DatasetSpec(
            name="shapes",
            load=partial(load_shapes, dataset_class=SceneShapesDataset),
            description=(
                "synthetic VOC-like scenes (6 classes, 1-4 objects that co-occur, overlap and nest, box masks, "
                f"striped distractors), seeded; splits train/val/benchmark, {DEFAULT_COUNTS['benchmark']} benchmark images"
            ),
            has_masks=True,
            options={"count": None, "seed": 0},
        )
    )
    register(
        DatasetSpec(
            name="shapes_disjoint",
            load=partial(load_shapes, dataset_class=ShapesDataset),
            description="synthetic shapes, the first layout (1-3 disjoint objects, tight shape masks), seeded",
            has_masks=True,
            options={"count": None, "seed": 0},
        )
    )
