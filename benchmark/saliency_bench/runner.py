"""Runs selected methods through selected checks on one model and dataset, storing each result at once."""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from .checks.base import MethodGroup
from .config import package_versions, plain
from .errors import UserError, exception_line
from .isolation import ModelGuard
from .plugins import Registry, get_plugin_manager
from .store import SPEED, ResultStore
from .suite import Suite

DEFAULT_MODEL = "tiny_vgg"


@dataclass
class RunOptions:
    """Everything ``saliency-bench run`` accepts; ``None`` means the model's or dataset's default."""

    methods: list[str] | None = None
    checks: list[str] | None = None
    model: str | None = None
    dataset: str | None = None
    device: str = "auto"
    limit: int | None = None
    batch_size: int = 32
    seed: int = 0
    out: str = "runs/default"
    fresh: bool = False
    data_root: str | None = None
    split: str | None = None
    data_seed: int | None = None  # another sample of a generated dataset (recorded in the configuration)
    weights: str | None = None
    allow_download: bool = False
    num_workers: int = 0
    check_params: dict[str, dict] = field(default_factory=dict)
    wait: bool = False  # wait for another run holding --out instead of refusing
    method_timeout: float | None = None  # seconds per method and check; over it the method fails as timed out
    progress: bool = True
    speed: bool = False  # also time every method against the floor (stored beside, never in, the results)
    speed_batch_size: int = 64
    speed_rounds: int = 3


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


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise UserError(f"unknown device '{name}' (use auto, cpu or cuda)")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device '{name}' requested but no CUDA GPU is available")
    device = torch.device(name)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"device '{name}' does not exist ({torch.cuda.device_count()} CUDA device(s))")
    return device


def _lookup(table: dict, kind: str, name: str):
    if name not in table:
        raise UserError(f"unknown {kind} '{name}' (known: {', '.join(sorted(table)) or 'none'})")
    return table[name].obj


def open_model(options: RunOptions, registry: Registry):
    """Load the model the options name, on the requested device."""
    device = resolve_device(options.device)
    spec = _lookup(registry.models, "model", options.model or DEFAULT_MODEL)
    return spec.load(weights=options.weights, allow_download=options.allow_download).to(device)


def open_suite(options: RunOptions, registry: Registry) -> Suite:
    """Load the model and dataset the options name and put them on the device."""
    model_spec = _lookup(registry.models, "model", options.model or DEFAULT_MODEL)
    dataset_name = options.dataset or model_spec.default_dataset
    if dataset_name is None:
        raise UserError(f"model '{model_spec.name}' has no default dataset; pass --dataset")
    dataset_spec = _lookup(registry.datasets, "dataset", dataset_name)
    model = open_model(options, registry)
    seed = {} if options.data_seed is None else {"seed": options.data_seed}
    if seed and "seed" not in dataset_spec.options:
        raise UserError(f"dataset '{dataset_spec.name}' is read from files and takes no --data-seed")
    dataset = dataset_spec.load(model, root=options.data_root, split=options.split, **seed)
    limit = options.limit if options.limit is not None else getattr(dataset, "default_limit", None)
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}")
    return Suite(
        model=model, dataset=dataset, device=model.device, seed=options.seed, batch_size=options.batch_size,
        limit=limit, num_workers=options.num_workers, progress=options.progress,
    )


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
    from .checks.params import FALLBACK_SCHEMA, IMAGES, validate

    declared = getattr(check, "param_schema", None)
    schema = {"images": IMAGES, **declared} if declared else FALLBACK_SCHEMA
    params = dict(check.default_params(suite))
    params.setdefault("images", getattr(suite.dataset, "default_images", {}).get(check.name, suite.num_images))
    for key, value in overrides.items():
        if key not in params:
            raise UserError(f"check '{check.name}' has no parameter {key!r} (has: {', '.join(sorted(params))})")
        params[key] = _convert(check.name, key, params[key], value, schema.get(key))
    validate(check.name, params, schema, suite, first=list(overrides))
    params["images"] = min(int(params["images"]), suite.num_images)
    return plain(params)


def group_by_shared_pass(names: list[str], registry: Registry) -> list[list[str]]:
    """Methods with the same ``shared_key`` run as one group (one pass per batch); others alone."""
    groups: dict[object, list[str]] = {}
    for name in names:
        key = registry.methods[name].obj.shared_key or ("alone", name)
        groups.setdefault(key, []).append(name)
    return list(groups.values())


def _provenance(registry: Registry, name: str) -> dict:
    """The distribution and version that provide a method (a result is reused only under the same)."""
    registered = registry.methods[name]
    provenance = {"distribution": registered.distribution, "version": registered.version}
    settings = registered.obj.setting_values() if hasattr(registered.obj, "setting_values") else {}
    return {**provenance, "settings": settings} if settings else provenance


def file_sha256(path: str) -> str:
    """SHA-256 of a weights file (results depend on its bytes, not on its path); missing -> user error."""
    import hashlib

    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise UserError(f"weights file {path}: {exc.strerror}") from None


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


def run_benchmark(
    options: RunOptions, registry: Registry | None = None, log: Callable[[str], None] | None = None
) -> RunReport:
    """Run every selected (method, check) not already stored; store each result the moment it is done."""
    log = log or (lambda message: print(message, file=sys.stderr))
    if registry is None:  # a caller that passes its registry has reported its load errors itself (the CLI does)
        registry = get_plugin_manager().registry()
        for error in registry.load_errors:
            log(f"warning: {error}")
    methods = registry.select_methods(options.methods or ["*"])
    checks = options.checks or list(registry.checks)
    for name in checks:
        _lookup(registry.checks, "check", name)
        if name == SPEED:
            raise UserError(f"a check may not be called '{SPEED}': the run folder keeps speed records under that name")
    for name in options.check_params:
        if name not in checks:
            raise UserError(f"parameters given for check '{name}', which is not selected")
    suite = open_suite(options, registry)
    for name in checks:
        if registry.checks[name].obj.requires_masks and not suite.dataset.has_masks:
            raise UserError(f"check '{name}' needs per-class masks; dataset '{suite.dataset.name}' has none")
        if registry.checks[name].obj.requires_masks and list(suite.dataset.class_names) != suite.model.class_names:
            raise UserError(f"check '{name}' scores maps against the dataset's classes, but model "
                            f"'{suite.model.name}' predicts other classes than dataset '{suite.dataset.name}'")
    params_by_check = {
        name: check_parameters(registry.checks[name].obj, suite, options.check_params.get(name, {})) for name in checks
    }
    weights = getattr(suite.model, "weights_sha256", None) or (file_sha256(options.weights) if options.weights else None)
    config = plain({**suite.describe(), "weights_sha256": weights, "versions": package_versions()})
    store = ResultStore(Path(options.out), config, fresh=options.fresh, wait=options.wait, log=log)
    report = RunReport(store=store, suite=suite, methods=methods, checks=checks)
    guard = ModelGuard(suite.model.network)  # the model's reference state, shared by every group of the run
    pending_by_check = {}
    for check_name in checks:
        pending = []
        for name in methods:
            stored = store.get(name, check_name, params_by_check[check_name])
            if stored is not None and stored.get("status") in ("ok", "n/a") and stored.get("plugin") == _provenance(registry, name):
                report.reused.append((name, check_name))
                if stored["status"] == "n/a":
                    report.not_applicable.setdefault(name, set()).add(check_name)
            else:
                pending.append(name)
        pending_by_check[check_name] = pending
    log(run_header(suite, methods, checks, params_by_check, options, len(report.reused)))
    for check_name in checks:
        check = registry.checks[check_name].obj
        params = params_by_check[check_name]
        check_suite = replace(suite, limit=params["images"])
        started = time.perf_counter()
        pending = pending_by_check[check_name]
        groups = group_by_shared_pass(pending, registry)
        done = 0
        for names in groups:
            group = MethodGroup([registry.methods[n].obj for n in names], suite.model, timeout=options.method_timeout,
                                guard=guard)
            label = progress_label(done, names, len(pending))
            done += len(names)
            torch.manual_seed(options.seed)
            try:
                results = check.run(replace(check_suite, progress_label=label), group, params)
            except UserError:
                raise
            except Exception as exc:  # a check that breaks on one group must not stop the others
                reason = f"check '{check_name}' raised {exception_line(exc)}"
                results = {}
                for name in group.active:
                    group.failures[name] = reason
            for name in names:
                meta = _provenance(registry, name)
                record = None
                if name in group.not_applicable:
                    record = {"status": "n/a", "reason": group.not_applicable[name], "plugin": meta}
                    report.not_applicable.setdefault(name, set()).add(check_name)
                elif name not in group.failures and name in results:
                    try:
                        record = {"status": "ok", "plugin": meta, **plain(results[name])}
                    except (TypeError, ValueError) as exc:  # a check returned something JSON cannot hold
                        group.failures[name] = f"check '{check_name}' returned an unstorable result: {exc}"
                if record is None:
                    error = group.failures.get(name, f"check '{check_name}' returned no result")
                    store.put(name, check_name, {"status": "failed", "error": error, "plugin": meta}, params)
                    report.failures[name] = error
                    log(f"FAILED {name} on {check_name}: {error}")
                else:
                    store.put(name, check_name, record, params)
                report.computed.append((name, check_name))
        report.seconds[check_name] = time.perf_counter() - started
    if options.speed:
        started = time.perf_counter()
        measure_speed(report, registry, options, log)
        report.seconds[SPEED] = time.perf_counter() - started
    return report


def measure_speed(report: RunReport, registry: Registry, options: RunOptions, log: Callable[[str], None]) -> None:
    """Time every method not yet timed here (ms per image, ratio to the floor of the same process); store each row.

    Speed records live in the run folder beside the results (``results/speed/``) and feed leaderboard.md,
    never leaderboard.json: they depend on the machine, the results do not. A row is reused only from the
    same device and timing parameters. Timing never fails the run: its errors are logged and stored.
    """
    from .speed import describe_device, measure

    model = report.suite.model
    params = {"batch_size": options.speed_batch_size, "rounds": options.speed_rounds}
    device = describe_device(model.device)
    pending = []
    for name in report.methods:
        if name in report.failures or report.not_applicable.get(name):  # failed (hung, changed the model) or n/a
            continue
        stored = report.store.get(name, SPEED)
        if (stored is not None and stored.get("status") == "ok" and stored.get("params") == params
                and stored.get("device") == device and stored.get("plugin") == _provenance(registry, name)):
            report.reused.append((name, SPEED))
        else:
            pending.append(name)
    if not pending:
        return
    log(f"speed: timing {len(pending)} method(s) against the forward+backward floor "
        f"(batch {options.speed_batch_size}, {options.speed_rounds} rounds)")
    torch.manual_seed(options.seed)
    try:
        result = measure(registry, pending, model, batch_size=options.speed_batch_size,
                         rounds=options.speed_rounds, peers=False, seed=options.seed, extras=False)
    except Exception as exc:  # out of memory at batch 64, a broken floor: the board is written without speed
        log(f"speed: not measured ({exception_line(exc)}); the board has no speed figures for these methods")
        return
    for row in result["rows"]:
        meta = _provenance(registry, row["name"])
        if "error" in row:
            record = {"status": "failed", "error": row["error"], "plugin": meta}
        else:
            record = {"status": "ok", "plugin": meta, "device": result["device"],
                      "floor_ms_per_image": result["floor_ms_per_image"],
                      "ms_per_image": row["ms_per_image"], "ratio_to_floor": row["ratio_to_floor"]}
        report.store.put(row["name"], SPEED, record, params)
        report.computed.append((row["name"], SPEED))
