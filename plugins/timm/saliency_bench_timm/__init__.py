"""saliency-bench-timm: every timm classification model as a saliency-bench model, ``timm:<name>``.

The module is the plugin (entry point ``timm`` in the group ``saliency_bench``): its ``register_models`` hook
registers one ``ModelSpec`` per name of ``timm.list_models()``, loaded lazily (nothing is built until a run
names the model). Random weights (seed 0) unless ``--weights PATH``; ``--allow-download`` fetches timm's
pretrained weights. Loading: ``models.py``; blocks, token layout and cascade steps: ``layout.py``.
"""
from __future__ import annotations

from functools import partial

from saliency_bench import ModelSpec, hookimpl

from .models import OPTIONS, PREFIX, load_timm, model_names

__version__ = "0.1.0"
DESCRIPTION = ("timm {arch}: random weights (seed 0) unless --weights PATH (a state dict); --allow-download "
               "fetches timm's pretrained weights")


@hookimpl
def register_models(register):
    """Register ``timm:<name>`` for every timm architecture (``timm.list_models()``)."""
    for arch in model_names():
        register(
            ModelSpec(
                name=f"{PREFIX}{arch}",
                load=partial(load_timm, f"{PREFIX}{arch}", arch),
                description=DESCRIPTION.format(arch=arch),
                default_dataset="imagefolder",
                options=dict(OPTIONS),
            )
        )


__all__ = ["PREFIX", "load_timm", "register_models"]
