"""Default plugin: registers the embedded models trained on synthetic shapes (tiny_vgg, the default; tiny_resnet;
tiny_vit), weights shipped in the package and SHA-256 checked."""
from __future__ import annotations

from functools import partial

from ..hookspecs import hookimpl
from .base import ModelSpec
from .embedded import load_embedded
from .tiny_resnet import MODEL as TINY_RESNET
from .tiny_vgg import MODEL as TINY_VGG
from .tiny_vgg import load_tiny_vgg
from .tiny_vit import MODEL as TINY_VIT

EMBEDDED = {model.name: model for model in (TINY_VGG, TINY_RESNET, TINY_VIT)}  # board order: tiny_vgg first


@hookimpl
def register_models(register):
    """Register ``tiny_vgg`` (the default), ``tiny_resnet`` and ``tiny_vit``: weights shipped, SHA-256 checked."""
    for model in EMBEDDED.values():
        load = load_tiny_vgg if model is TINY_VGG else partial(load_embedded, model)
        register(ModelSpec(name=model.name, load=load, description=model.description,
                           default_dataset=model.dataset, paper_columns=model is TINY_VGG))
