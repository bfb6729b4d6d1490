"""Runs selected methods through selected checks on one model and dataset, storing each result at once."""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from ..checks.base import MethodGroup
from .configuration import package_versions, plain
from ..datasets.base import Dataset
from ..errors import UserError, exception_line
from ..harness.groups import group_by_shared_pass
from ..harness.isolation import ModelGuard
from ..plugins import Registry, get_plugin_manager
from .session import DEFAULT_MODEL, RunOptions, lookup, open_model, open_suite, resolve_device
from . import speed
from ..store.shards import ShardStore, shard_ranges
from ..store.results import SPEED, ResultStore
from .record import file_sha256, merge_result, shard_size, store_result
from .tasks import Task, compute, compute_whole, map_sharing, plan, plan_shared, provenance
from ..harness.suite import Suite

# re-exported: the CLI, regression and tests reach these through the runner
__all__ = [
    "DEFAULT_MODEL", "RunOptions", "RunReport", "check_parameters", "group_by_shared_pass", "measure_speed",
    "open_model", "open_suite", "progress_label", "resolve_device", "run_benchmark", "run_header",
]


@dataclass
class RunReport:
    """What a run did: the store it wrote, failures, and seconds per check (timings stay out of results)."""

    store: ResultStore
    suite: Suite
    methods: list[str]
    checks: list[str]
    failures: dict[str, str] = field(default_factory=dict)
    not_applicable: dict[str, set[str]] = field(default_factory=dict)  # method -> checks where it is n/a
    seconds: dict[str, float] = field(default_factory=dict)
    computed: list[tuple[str, str]] = field(default_factory=list)
    reused: list[tuple[str, str]] = field(default_factory=list)
    options: RunOptions = field(default_factory=RunOptions)
    shards: ShardStore | None = None  # the per-image shard records beside the results


def _convert(check: str, key: str, default: object, value: object, spec=None) -> object:
    """A command-line override as the type of the parameter's default; a bad value is a user error.

    A float parameter is never NaN or infinite ("nan", "inf" and "1e999" parse as floats, but no check can use
    them); ``spec`` (the parameter's ``Param``, if the check declares one) words the refusal.
    """
    def finite(number: object) -> object:
        if isinstance(number, float) and not math.isfinite(number):
            what = spec.describe() if spec is not None and spec.type is float else "a finite number"
            raise UserError(f"parameter {check}.{key} must be {what}, got {number}")
        return number

    if type(value) is type(default) or (isinstance(default, float) and type(value) is int):
        return finite(value)  # already typed (a recorded configuration replayed by `check`)
    if isinstance(default, (list, dict)) or (spec is not None and not spec.settable):
        raise UserError(f"parameter {check}.{key} is a {type(default).__name__} and cannot be set from the command line")
    if isinstance(default, bool):
        if str(value).lower() not in ("true", "false", "1", "0"):
            raise UserError(f"parameter {check}.{key} expects true or false, got {value!r}")
        return str(value).lower() in ("true", "1")
    if isinstance(default, (int, float)):
        try:
            converted = type(default)(value)
        except (ValueError, TypeError, OverflowError):
            raise UserError(f"parameter {check}.{key} expects {type(default).__name__}, got {value!r}") from None
        return finite(converted)
    return value


def check_parameters(check, suite: Suite, overrides: dict) -> dict:
    """The check's defaults for this suite, updated by the user's overrides; unknown keys are refused.

    Every value is then validated against the check's ``param_schema`` (checks/params.py) plus ``images``,
    before anything runs or is stored; a check without a schema gets its types converted and the shared
    keys (images, ci_level, bootstrap_samples) checked, as before.
    """
    from ..checks.params import FALLBACK_SCHEMA, IMAGES, validate

    declared = getattr(check, "param_schema", None)
    schema = {"images": IMAGES, **declared} if declared else FALLBACK_SCHEMA
    params = dict(check.default_params(suite))
    # Dataset.images_per_check (the dataset contract); a duck-typed dataset (no Dataset subclass) gets its default
    asked = getattr(suite.dataset, "images_per_check", Dataset.images_per_check)
    params.setdefault("images", asked.get(check.name, suite.num_images))
    for key, value in overrides.items():
        if key not in params:
            raise UserError(f"check '{check.name}' has no parameter {key!r} (has: {', '.join(sorted(params))})")
        params[key] = _convert(check.name, key, params[key], value, schema.get(key))
    validate(check.name, params, schema, suite, first=list(overrides))
    params["images"] = min(int(params["images"]), suite.num_images)
    return plain(params)


def progress_label(done: int, names: list[str], total: int) -> str:
    """What a bar names: the methods it computes, counted among the check's pending methods."""
    first, last = done + 1, done + len(names)
    span = f"method {first}" if first == last else f"methods {first}-{last}"
    shared = f" +{len(names) - 1} in one shared pass" if len(names) > 1 else ""
    return f"{span} of {total}: {names[0]}{shared}"


def run_header(suite: Suite, methods: list[str], checks: list[str], params: dict[str, dict], options: RunOptions,
               reused: int) -> str:
    """The one line printed before the bars: model, dataset, images, methods, checks, device, output folder."""
    counts = sorted({p["images"] for p in params.values()})
    images = f"{counts[-1]} images" if len(counts) <= 1 else (
        f"{counts[-1]} images (" + ", ".join(f"{c} {p['images']}" for c, p in params.items()
                                              if p["images"] != counts[-1]) + ")")
    stored = f"; {reused} of {len(methods) * len(checks)} results already stored, reused" if reused else ""
    return (f"run: model {suite.model.name}, dataset {suite.dataset.name}, {images}, {len(methods)} method(s), "
            f"checks {', '.join(checks)}; device {suite.device}; results in {options.out}{stored}")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def run_benchmark(
    options: RunOptions, registry: Registry | None = None, log: Callable[[str], None] | None = None
) -> RunReport:
    """Run every selected (method, check) not already stored; store each result the moment it is done."""
    log = log or _stderr
    if options.executor == "ray":  # refused before anything is loaded or printed
        from .ray_executor import require_ray

        require_ray()
    if registry is None:  # a caller that passes its registry has reported its load errors itself (the CLI does)
        registry = get_plugin_manager().registry()
        for error in registry.load_errors:
            log(f"warning: {error}")
    methods, checks = validate_selection(options, registry)
    suite = open_suite(options, registry)
    validate_data(registry, checks, suite)
    params_by_check = {
        name: check_parameters(registry.checks[name].obj, suite, options.check_params.get(name, {})) for name in checks
    }
    shard_size(options)  # a bad --shard-size is refused before anything runs
    store = open_store(options, suite, log)
    report = RunReport(store=store, suite=suite, methods=methods, checks=checks, options=options,
                       shards=ShardStore(store.root, store.config, log))
    guard = ModelGuard(suite.model.network)  # the model's reference state, shared by every group of the run
    pending_by_check = {name: stored_or_pending(report, registry, name, params_by_check[name]) for name in checks}
    log(run_header(suite, methods, checks, params_by_check, options, len(report.reused)))
    if options.executor == "ray":
        from .ray_executor import run_on_ray  # Ray is an optional extra, imported only when asked for

        run_on_ray(report, registry, params_by_check, pending_by_check, log)
    else:
        sharing = map_sharing(registry, checks, params_by_check)
        for check_name in checks:
            together = next((names for names in sharing if check_name in names), None)
            if together is not None:
                if together[0] == check_name:  # run once, when the first of them comes
                    run_shared_checks(report, registry, together, params_by_check, pending_by_check, options, guard, log)
                continue
            started = time.perf_counter()
            run_check(report, registry, check_name, params_by_check[check_name], pending_by_check[check_name],
                      options, guard, log)
            report.seconds[check_name] = time.perf_counter() - started
    if options.speed:
        started = time.perf_counter()
        measure_speed(report, registry, options, log)
        report.seconds[SPEED] = time.perf_counter() - started
    return report


def validate_selection(options: RunOptions, registry: Registry) -> tuple[list[str], list[str]]:
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


def open_store(options: RunOptions, suite: Suite, log: Callable[[str], None]) -> ResultStore:
    """The run folder's store, under this run's configuration (the suite, the weights' hash, package versions)."""
    weights = getattr(suite.model, "weights_sha256", None) or (file_sha256(options.weights) if options.weights else None)
    config = plain({**suite.describe(), "weights_sha256": weights, "versions": package_versions()})
    return ResultStore(Path(options.out), config, fresh=options.fresh, wait=options.wait, log=log)


def stored_or_pending(report: RunReport, registry: Registry, check_name: str, params: dict) -> list[str]:
    """The methods still to compute on a check; stored ``ok`` and ``n/a`` results of the same plugin are reused
    (recorded in ``report``), failed ones are computed again."""
    pending = []
    for name in report.methods:
        stored = report.store.get(name, check_name, params)
        if stored is not None and stored.get("status") in ("ok", "n/a") and stored.get("plugin") == provenance(registry, name):
            report.reused.append((name, check_name))
            if stored["status"] == "n/a":
                report.not_applicable.setdefault(name, set()).add(check_name)
        else:
            pending.append(name)
    return pending


def run_check(
    report: RunReport, registry: Registry, check_name: str, params: dict, pending: list[str], options: RunOptions,
    guard: ModelGuard, log: Callable[[str], None],
) -> None:
    """Run one check on its pending methods here, a shared-pass group at a time and, for a per-image check, an
    image shard at a time: each shard is stored as it is done, each method's result once its shards are all in.

    A method that fails on a shard is not run on the check's later shards (its result is failed anyway).
    """
    check = registry.checks[check_name].obj
    groups = group_by_shared_pass(pending, registry)
    size = shard_size(options)
    ranges = len(shard_ranges(params["images"], size))
    tasks = plan(check_name, groups, params["images"], size, params, report.shards, registry) if check.per_image else [
        Task(check_name, tuple(names), 0, params["images"], index) for index, names in enumerate(groups)]

    def run_task(task: Task, where: str) -> dict[str, str]:
        suite = replace(report.suite, progress_label=where)
        if not check.per_image:
            for name, record in compute_whole(task, suite, registry, params, seed=options.seed,
                                              timeout=options.method_timeout, guard=guard).items():
                store_result(report, check_name, params, name, record, log)
            return {}
        return compute(task, suite, registry, {check_name: params}, report.shards, seed=options.seed,
                       timeout=options.method_timeout, guard=guard)

    for names in run_groups(groups, tasks, len(pending), ranges if check.per_image else 1, run_task):
        if check.per_image:
            for name in names:
                merge_result(report, registry, check_name, params, name, log)


def run_groups(groups: list[list[str]], tasks: list[Task], pending: int, ranges: int,
               run_task: Callable[[Task, str], dict[str, str]]):
    """Run each method group's tasks in image order, labelled for the progress bars, and yield the group's names once
    its tasks are done; a member that failed on a shard is not run on the group's later shards."""
    done = 0
    for index, names in enumerate(groups):
        label = progress_label(done, names, pending)
        done += len(names)
        given_up: set[str] = set()
        for task in (task for task in tasks if task.group == index):
            task = replace(task, names=tuple(name for name in task.names if name not in given_up))
            if task.names:
                where = f"{label}, images {task.start}-{task.stop - 1}" if ranges > 1 else label
                given_up |= {name for name, status in run_task(task, where).items() if status == "failed"}
        yield names


def run_shared_checks(
    report: RunReport, registry: Registry, check_names: list[str], params_by_check: dict[str, dict],
    pending_by_check: dict[str, list[str]], options: RunOptions, guard: ModelGuard, log: Callable[[str], None],
) -> None:
    """Run checks that share maps here, one pass per (method group, image shard) for all of them (each map computed
    once); store each check's shards as they are done and each (method, check) result once its shards are all in.

    ``report.seconds`` gets the maps' seconds (``shared maps``) and each check's own scoring seconds.
    """
    from ..checks.shared_maps import SHARED_MAPS

    pending = [name for name in report.methods if any(name in pending_by_check[check] for check in check_names)]
    groups = group_by_shared_pass(pending, registry)
    size, images = shard_size(options), params_by_check[check_names[0]]["images"]
    ranges = len(shard_ranges(images, size))
    tasks = plan_shared(check_names, groups, images, size, params_by_check, report.shards, registry)
    timings = {SHARED_MAPS: 0.0, **{check: 0.0 for check in check_names}}

    def run_task(task: Task, where: str) -> dict[str, str]:
        return compute(task, replace(report.suite, progress_label=where), registry, params_by_check, report.shards,
                       seed=options.seed, timeout=options.method_timeout, guard=guard, timings=timings)

    for names in run_groups(groups, tasks, len(pending), ranges, run_task):
        for check in check_names:
            for name in names:
                if name in pending_by_check[check]:
                    merge_result(report, registry, check, params_by_check[check], name, log)
    report.seconds.update(timings)


def measure_speed(report: RunReport, registry: Registry, options: RunOptions, log: Callable[[str], None]) -> None:
    """Time every method not yet timed here (ms per image, ratio to the floor of the same process); store each row.

    Speed records live in the run folder beside the results (``results/speed/``) and feed leaderboard.md,
    never leaderboard.json: they depend on the machine, the results do not. A row is reused only from the
    same device and timing parameters. Timing never fails the run: its errors are logged and stored.
    """
    model = report.suite.model
    params = {"batch_size": options.speed_batch_size, "rounds": options.speed_rounds}
    pending = untimed(report, registry, params, speed.describe_device(model.device))
    if not pending:
        return
    log(f"speed: timing {len(pending)} method(s) against the forward+backward floor "
        f"(batch {options.speed_batch_size}, {options.speed_rounds} rounds)")
    torch.manual_seed(options.seed)
    try:
        result = speed.measure(registry, pending, model, batch_size=options.speed_batch_size,
                               rounds=options.speed_rounds, peers=False, seed=options.seed, extras=False)
    except Exception as exc:  # out of memory at batch 64, a broken floor: the board is written without speed
        log(f"speed: not measured ({exception_line(exc)}); the board has no speed figures for these methods")
        return
    for row in result["rows"]:
        meta = provenance(registry, row["name"])
        if "error" in row:
            record = {"status": "failed", "error": row["error"], "plugin": meta}
        else:
            record = {"status": "ok", "plugin": meta, "device": result["device"],
                      "floor_ms_per_image": result["floor_ms_per_image"],
                      "ms_per_image": row["ms_per_image"], "ratio_to_floor": row["ratio_to_floor"]}
        report.store.put(row["name"], SPEED, record, params)
        report.computed.append((row["name"], SPEED))


def untimed(report: RunReport, registry: Registry, params: dict, device: str) -> list[str]:
    """The methods to time: not failed, not n/a anywhere, and with no ``ok`` speed record of this device, timing
    parameters and plugin (those are reused, noted in ``report``)."""
    pending = []
    for name in report.methods:
        if name in report.failures or report.not_applicable.get(name):  # failed (hung, changed the model) or n/a
            continue
        stored = report.store.get(name, SPEED)
        if (stored is not None and stored.get("status") == "ok" and stored.get("params") == params
                and stored.get("device") == device and stored.get("plugin") == provenance(registry, name)):
            report.reused.append((name, SPEED))
        else:
            pending.append(name)
    return pending
