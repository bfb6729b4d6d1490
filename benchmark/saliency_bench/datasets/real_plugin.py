"""Default plugin registering the real-data datasets: PASCAL VOC 2007 and an ImageNet-style image folder."""
from __future__ import annotations

from ..hookspecs import hookimpl
from .base import DatasetSpec
from .imagefolder import load_imagefolder
from .voc2007 import load_voc2007


@hookimpl
def register_datasets(register):
    """Register ``voc2007`` (box masks, pointing games) and ``imagefolder`` (no masks)."""
    register(
        DatasetSpec(
            name="voc2007",
            load=load_voc2007,
            description="PASCAL VOC 2007 from a local VOCdevkit (--data-root); box masks; split test by default",
            has_masks=True,
            options={"multiclass_only": "keep only images with two or more classes (default false)"},
        )
    )
    register(
        DatasetSpec(
            name="imagefolder",
            load=load_imagefolder,
            description="ImageNet-style folder root/<class>/<image> (--data-root); no masks",
            has_masks=False,
            options={
                "class_index": "JSON file mapping folder names to class indices (imagenet_class_index.json form)",
                "order": "round_robin (default: classes interleaved) or sorted",
            },
        )
    )
