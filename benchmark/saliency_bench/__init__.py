"""saliency-bench: the public API that plugins import (and nothing private beyond it)."""
from __future__ import annotations

from .harness import noise
from .checks.base import Check, MethodGroup
from .checks.presentation import Column, Rule, read_difference, read_metric
from .checks.params import BOOTSTRAP as BOOTSTRAP_PARAMS
from .checks.params import Param
from .checks.stats import bootstrap_params, finite_mean, summarize
from .datasets.base import Dataset, DatasetSpec
from .errors import MethodError, NotApplicable, UserError
from .hookspecs import hookimpl
from .models.loading import apply_state_dict, hookable, read_state_dict
from .methods import Method, validate_maps
from .models.base import ModelSpec
from .models.blocks import numbered as numbered_blocks
from .models.blocks import trace as trace_modules
from .models.blocks import vit_layer_indices as evenly_spaced_layers
from .models.wrapper import ModelWrapper, derive_blocks, derive_randomization_order
from .harness.suite import Suite

__version__ = "0.1.0"


class MethodPlugin:
    """A pluggy plugin that registers exactly one method: the target of one entry point."""

    def __init__(self, method: Method):
        self.method = method

    @hookimpl
    def register_methods(self, register):
        register(self.method)

    def __repr__(self) -> str:
        return f"<MethodPlugin {self.method.name!r}>"


def method_plugin(method: Method) -> MethodPlugin:
    """Wrap one method as a plugin object, so a distribution can declare one entry point per method."""
    return MethodPlugin(method)


__all__ = [
    "BOOTSTRAP_PARAMS",
    "Check",
    "Column",
    "Dataset",
    "DatasetSpec",
    "Method",
    "MethodError",
    "MethodGroup",
    "MethodPlugin",
    "ModelSpec",
    "ModelWrapper",
    "NotApplicable",
    "Param",
    "Rule",
    "Suite",
    "UserError",
    "apply_state_dict",
    "derive_blocks",
    "derive_randomization_order",
    "evenly_spaced_layers",
    "hookable",
    "hookimpl",
    "bootstrap_params",
    "finite_mean",
    "method_plugin",
    "noise",
    "numbered_blocks",
    "read_difference",
    "read_metric",
    "read_state_dict",
    "summarize",
    "trace_modules",
    "validate_maps",
]
