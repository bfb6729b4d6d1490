"""Default plugin: registers the tiny VGG trained on synthetic shapes ("tiny_vgg"), the embedded default."""
from __future__ import annotations

from ..hookspecs import hookimpl
from .base import ModelSpec
from .tiny_vgg import load_tiny_vgg


@hookimpl
def register_models(register):
    """Register ``tiny_vgg``: 5-block VGG-style CNN, weights shipped in the package, SHA-256 checked."""
    register(
        ModelSpec(
            name="tiny_vgg",
            load=load_tiny_vgg,
            description="VGG-style 5-block CNN (no batch norm, GAP head) trained on 'shapes'; shipped weights",
            default_dataset="shapes",
        )
    )
