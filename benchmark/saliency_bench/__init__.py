"""saliency-bench: the public API that plugins import (and nothing private beyond it).

Every name is imported on first use (PEP 562), so that ``import saliency_bench`` (and the command line's
``--help``) loads no torch; ``from saliency_bench import Method`` works as any import does.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .version import __version__  # noqa: F401

_EXPORTS = {  # public name -> (module, attribute); a module itself where the attribute is None
    "BOOTSTRAP_PARAMS": ("checks.params", "BOOTSTRAP"),
    "Cascade": ("checks.cascade", "Cascade"),
    "Check": ("checks.base", "Check"),
    "Column": ("checks.presentation", "Column"),
    "Dataset": ("datasets.base", "Dataset"),
    "DatasetSpec": ("datasets.base", "DatasetSpec"),
    "Method": ("methods", "Method"),
    "MethodError": ("errors", "MethodError"),
    "MethodGroup": ("harness.group", "MethodGroup"),
    "MethodPlugin": ("plugins", "MethodPlugin"),
    "ModelSpec": ("models.base", "ModelSpec"),
    "ModelWrapper": ("models.wrapper", "ModelWrapper"),
    "SIMILARITY_PARAMS": ("checks.params", "SIMILARITY"),
    "NotApplicable": ("errors", "NotApplicable"),
    "Param": ("checks.params", "Param"),
    "PerImageCheck": ("checks.base", "PerImageCheck"),
    "Rule": ("checks.presentation", "Rule"),
    "SharedMapsCheck": ("checks.base", "SharedMapsCheck"),
    "Suite": ("harness.suite", "Suite"),
    "UserError": ("errors", "UserError"),
    "apply_state_dict": ("models.loading", "apply_state_dict"),
    "bootstrap_params": ("checks.stats", "bootstrap_params"),
    "derive_blocks": ("models.wrapper", "derive_blocks"),
    "derive_randomization_order": ("models.wrapper", "derive_randomization_order"),
    "evenly_spaced_layers": ("models.blocks", "vit_layer_indices"),
    "finite_mean": ("checks.stats", "finite_mean"),
    "hookable": ("models.loading", "hookable"),
    "hookimpl": ("hookspecs", "hookimpl"),
    "is_control": ("methods", "is_control"),
    "map_similarities": ("checks.similarity", "map_similarities"),
    "method_plugin": ("plugins", "method_plugin"),
    "noise": ("harness.noise", None),
    "numbered_blocks": ("models.blocks", "numbered"),
    "read_difference": ("checks.presentation", "read_difference"),
    "read_metric": ("checks.presentation", "read_metric"),
    "randomized_copy": ("checks.cascade", "randomized_copy"),
    "read_state_dict": ("models.loading", "read_state_dict"),
    "summarize": ("checks.stats", "summarize"),
    "trace_modules": ("models.blocks", "trace"),
    "validate_maps": ("methods", "validate_maps"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """The public name ``name``, imported from its module on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'saliency_bench' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = importlib.import_module(f"{__name__}.{module}")
    value = value if attribute is None else getattr(value, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # pragma: no cover - what static analysis sees
    from .checks.base import Check, PerImageCheck, SharedMapsCheck  # noqa: F401
    from .checks.cascade import Cascade, randomized_copy  # noqa: F401
    from .checks.params import SIMILARITY as SIMILARITY_PARAMS  # noqa: F401
    from .checks.similarity import map_similarities  # noqa: F401
    from .checks.params import BOOTSTRAP as BOOTSTRAP_PARAMS  # noqa: F401
    from .checks.params import Param  # noqa: F401
    from .checks.presentation import Column, Rule, read_difference, read_metric  # noqa: F401
    from .checks.stats import bootstrap_params, finite_mean, summarize  # noqa: F401
    from .datasets.base import Dataset, DatasetSpec  # noqa: F401
    from .errors import MethodError, NotApplicable, UserError  # noqa: F401
    from .harness import noise  # noqa: F401
    from .harness.group import MethodGroup  # noqa: F401
    from .harness.suite import Suite  # noqa: F401
    from .hookspecs import hookimpl  # noqa: F401
    from .methods import Method, is_control, validate_maps  # noqa: F401
    from .models.base import ModelSpec  # noqa: F401
    from .models.blocks import numbered as numbered_blocks  # noqa: F401
    from .models.blocks import trace as trace_modules  # noqa: F401
    from .models.blocks import vit_layer_indices as evenly_spaced_layers  # noqa: F401
    from .models.loading import apply_state_dict, hookable, read_state_dict  # noqa: F401
    from .models.wrapper import ModelWrapper, derive_blocks, derive_randomization_order  # noqa: F401
    from .plugins import MethodPlugin, method_plugin  # noqa: F401
