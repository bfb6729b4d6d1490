"""Step 1 of a run, *resolve*: the whole configuration, once, before any work (docs/design.md "One pipeline").

Which methods and checks, the suite (model, dataset, device, precision, seed, batch size), every check's
parameters, the shard size, the method groups that share one pass, and the stages: the checks computed
together (those scoring shared maps of the same images) or alone, in board order. Everything after reads it.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..checks.params import check_parameters
from ..errors import UserError
from ..harness.group import group_by_shared_pass
from ..harness.suite import Suite
from ..plugins import Registry
from ..store.files import check_folder
from ..store.results import SPEED
from ..store.shards import check_shard_size, default_shard_size
from .options import EXECUTORS, RunOptions
from .session import lookup, open_suite


@dataclass
class Resolved:
    """A run's configuration, resolved once: every later step reads it and none decides it again."""

    options: RunOptions
    out: str
    methods: list[str]
    checks: list[str]
    suite: Suite
    params: dict[str, dict]  # every selected check's parameters, validated
    shard_size: int
    groups: list[list[str]]  # the selected methods, those sharing one pass per batch together
    stages: list[tuple[str, ...]]  # the checks in run order; a stage of several computes their maps once


def resolve(options: RunOptions, registry: Registry) -> Resolved:
    """The configuration of a run of ``options``; every mistake is a one-line UserError, before anything is written."""
    if options.executor not in EXECUTORS:
        raise UserError(f"unknown executor '{options.executor}' (use {' or '.join(EXECUTORS)})")
    if options.executor == "ray":  # refused before anything is loaded or printed
        require_ray()
    out = options.run_folder
    check_folder(out)
    methods, checks = select(options, registry)
    size = shard_size(options)
    suite = open_suite(options, registry)
    validate_data(registry, checks, suite)
    params = {name: check_parameters(registry.checks[name].obj, suite, options.check_params.get(name, {}))
              for name in checks}
    return Resolved(options=options, out=out, methods=methods, checks=checks, suite=suite, params=params,
                    shard_size=size, groups=group_by_shared_pass(methods, registry.method_objects(methods)),
                    stages=stages(registry, checks, params))


RAY_MISSING = "--executor ray needs Ray: pip install 'saliency-bench[ray]'"


def require_ray():
    """The ``ray`` module; without it a one-line user error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError(RAY_MISSING) from None
    return ray


def select(options: RunOptions, registry: Registry) -> tuple[list[str], list[str]]:
    """The selected methods and checks; unknown names, a check named like the speed records and parameters of an
    unselected check are user errors (all before anything is loaded)."""
    methods = registry.select_methods(options.methods or ["*"])
    checks = options.checks or list(registry.checks)
    for name in checks:
        lookup(registry.checks, "check", name)
        if name == SPEED:
            raise UserError(f"a check may not be called '{SPEED}': the run folder keeps speed records under that name")
    for name in options.check_params:
        if name not in checks:
            raise UserError(f"parameters given for check '{name}', which is not selected")
    return methods, checks


def shard_size(options: RunOptions) -> int:
    """The run's shard size: ``--shard-size`` (a multiple of the batch size) or the default for its batch size."""
    if options.shard_size is None:
        return default_shard_size(options.batch_size)
    return check_shard_size(options.shard_size, options.batch_size)


def validate_data(registry: Registry, checks: list[str], suite: Suite) -> None:
    """A check that scores maps against masks needs a dataset with masks, of the classes the model predicts."""
    for name in checks:
        if not registry.checks[name].obj.requires_masks:
            continue
        if not suite.dataset.has_masks:
            raise UserError(f"check '{name}' needs per-class masks; dataset '{suite.dataset.name}' has none")
        if list(suite.dataset.class_names) != suite.model.class_names:
            raise UserError(f"check '{name}' scores maps against the dataset's classes, but model "
                            f"'{suite.model.name}' predicts other classes than dataset '{suite.dataset.name}'")


def stages(registry: Registry, checks: list[str], params: dict[str, dict]) -> list[tuple[str, ...]]:
    """The checks in run order: those scoring shared maps of the same number of images form one stage, at the
    place of the first of them (shards must coincide); every other check is a stage of its own."""
    by_images: dict[int, list[str]] = {}
    for name in checks:
        if registry.checks[name].obj.shares_maps:
            by_images.setdefault(int(params[name]["images"]), []).append(name)
    result: list[tuple[str, ...]] = []
    for name in checks:
        together = by_images.get(int(params[name]["images"]), []) if registry.checks[name].obj.shares_maps else []
        if len(together) > 1:
            if together[0] == name:
                result.append(tuple(together))
        else:
            result.append((name,))
    return result
