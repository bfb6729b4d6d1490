"""Default plugin registering torchvision VGG-16: ImageNet head (``vgg16``) and VOC head (``vgg16_voc``)."""
from __future__ import annotations

from functools import partial

from ..hookspecs import hookimpl
from .base import ModelSpec
from .vgg16 import load_vgg16


@hookimpl
def register_models(register):
    """Register ``vgg16`` (head option: imagenet | voc) and ``vgg16_voc`` (the same with head voc)."""
    register(
        ModelSpec(
            name="vgg16",
            load=load_vgg16,
            description="torchvision VGG-16, 224 px; weights from --weights, the torch hub cache or --allow-download",
            default_dataset="imagefolder",
            options={"head": "imagenet (1000 classes, default) or voc (20 classes, needs --weights)"},
        )
    )
    register(
        ModelSpec(
            name="vgg16_voc",
            load=partial(load_vgg16, head="voc"),
            description="torchvision VGG-16 with a 20-class VOC head from --weights (e.g. TorchRay's vgg16_voc)",
            default_dataset="voc2007",
        )
    )
