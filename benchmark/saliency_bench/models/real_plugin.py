"""Default plugin registering torchvision models: VGG-16 (``vgg16``, ``vgg16_voc``), ``resnet50``, ``vit_b_16`` and
``torchvision:<name>`` for every torchvision classification model.

Registering imports no torchvision (``torchvision_models``: recorded names, weights resolved when a model loads)."""
from __future__ import annotations

from functools import partial

from ..hookspecs import hookimpl
from .base import ModelSpec
from .torchvision_models import NAMED_WEIGHTS, PREFIX, classification_models, load_torchvision
from .vgg16 import load_vgg16


@hookimpl
def register_models(register):
    """Register ``vgg16`` (head option: imagenet | voc), ``vgg16_voc``, ``resnet50``, ``vit_b_16``, torchvision:*."""
    register(
        ModelSpec(
            name="vgg16",
            load=load_vgg16,
            description="torchvision VGG-16, 224 px; weights from --weights, the torch hub cache or --allow-download",
            default_dataset="imagefolder",
            options={"head": "imagenet (1000 classes, default) or voc (20 classes, needs --weights)"},
            paper_columns=True,
        )
    )
    register(
        ModelSpec(
            name="vgg16_voc",
            load=partial(load_vgg16, head="voc"),
            description="torchvision VGG-16 with a 20-class VOC head from --weights (e.g. TorchRay's vgg16_voc)",
            default_dataset="voc2007",
            paper_columns=True,
        )
    )
    for name, (arch, weights, crop_size) in NAMED_WEIGHTS.items():
        register(
            ModelSpec(
                name=name,
                load=partial(load_torchvision, name, arch, weights),
                description=f"torchvision {arch} ({weights}), {crop_size} px; weights from "
                            "--weights, the torch hub cache or --allow-download",
                default_dataset="imagefolder",
            )
        )
    for arch in classification_models():
        register(
            ModelSpec(
                name=f"{PREFIX}{arch}",
                load=partial(load_torchvision, f"{PREFIX}{arch}", arch),
                description=f"torchvision {arch} with its DEFAULT weights; from --weights, the torch hub cache or "
                            "--allow-download",
                default_dataset="imagefolder",
                paper_columns=arch.startswith("vgg"),
            )
        )
