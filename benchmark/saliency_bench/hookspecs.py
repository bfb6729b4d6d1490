"""Pluggy markers and hook specifications of saliency-bench (and nothing else)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pluggy

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .checks.base import Check
    from .datasets.base import DatasetSpec
    from .methods import Method
    from .models.base import ModelSpec

PROJECT = "saliency_bench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_methods(register: Callable[["Method"], None]) -> None:
    """Call ``register(method)`` for every saliency method (a ``saliency_bench.Method``) this plugin provides."""


@hookspec
def register_checks(register: Callable[["Check"], None]) -> None:
    """Call ``register(check)`` for every sanity check (a ``saliency_bench.Check``) this plugin provides."""


@hookspec
def register_models(register: Callable[["ModelSpec"], None]) -> None:
    """Call ``register(spec)`` for every model (a ``saliency_bench.ModelSpec`` that loads a ``ModelWrapper``)."""


@hookspec
def register_datasets(register: Callable[["DatasetSpec"], None]) -> None:
    """Call ``register(spec)`` for every dataset (a ``saliency_bench.DatasetSpec`` that opens a ``Dataset``)."""
