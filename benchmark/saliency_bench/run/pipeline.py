"""One run, top to bottom: resolve, plan, execute, record, publish (docs/design.md "One pipeline")."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from ..plugins import Registry, load_registry
from ..store.files import stderr
from ..store.results import ResultStore
from ..store.shards import ShardStore
from .compute import TaskContext
from .options import RunOptions
from .plan import plan
from .record import Recorder, RunReport
from .resolve import Resolved, resolve
from .session import run_configuration


def run_benchmark(options: RunOptions, registry: Registry | None = None,
                  log: Callable[[str], None] | None = None) -> RunReport:
    """Run every selected (method, check) not already stored; store each result the moment it is done."""
    from ..board.publish import board_targets, publish

    log = log or stderr
    began = time.perf_counter()
    registry = registry if registry is not None else load_registry(log)
    resolved = resolve(options, registry)  # 1. resolve: the whole configuration, once
    targets = board_targets(resolved, registry) if options.board else None
    store = open_store(resolved, log)
    try:
        shards = ShardStore(store.root, store.config, log)
        todo = plan(resolved, registry, store, shards)  # 2. plan: every task, once
        report = RunReport(store=store, suite=resolved.suite, methods=resolved.methods, checks=resolved.checks,
                           options=options, shards=shards)
        context = TaskContext(registry=registry, suite=resolved.suite, params=resolved.params, shards=shards,
                              seed=options.seed, timeout=options.method_timeout, guard=guard_of(resolved))
        recorder = Recorder(report, registry, todo, context, resolved.shard_size, log)  # 4. record
        log(run_header(resolved, len(report.reused)))
        recorder.merge_complete()
        executor(resolved, store, todo.stored_shards, log).run(todo.tasks, context, recorder.done)  # 3. execute
        if options.speed:
            from .speed import measure_speed

            measure_speed(report, registry, options, log)
        if targets is not None:
            publish(report, registry, targets, log)  # 5. publish
    except BaseException:
        store.close()
        raise
    report.wall_seconds = time.perf_counter() - began
    return report


def open_store(resolved: Resolved, log: Callable[[str], None]) -> ResultStore:
    """The run folder's store, under this run's configuration (the suite, the weights' hash, package versions)."""
    options = resolved.options
    return ResultStore(Path(resolved.out), run_configuration(resolved.suite, options), fresh=options.fresh,
                       wait=options.wait, log=log)


def guard_of(resolved: Resolved):
    """The model's reference state, shared by every method group of the run (harness/isolation.py)."""
    from ..harness.isolation import ModelGuard

    return ModelGuard(resolved.suite.model.network)


def executor(resolved: Resolved, store: ResultStore, stored_shards: int, log: Callable[[str], None]):
    """The executor the options name: this process, or Ray (imported only when asked for)."""
    if resolved.options.executor == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(resolved.options, store.root, store.config, stored_shards, log)
    from .local import LocalExecutor

    return LocalExecutor()


def run_header(resolved: Resolved, reused: int) -> str:
    """The one line printed before the bars: model, dataset, images, methods, checks, device, output folder."""
    params, suite = resolved.params, resolved.suite
    counts = sorted({p["images"] for p in params.values()})
    images = f"{counts[-1]} images" if len(counts) <= 1 else (
        f"{counts[-1]} images (" + ", ".join(f"{c} {p['images']}" for c, p in params.items()
                                              if p["images"] != counts[-1]) + ")")
    total = len(resolved.methods) * len(resolved.checks)
    stored = f"; {reused} of {total} results already stored, reused" if reused else ""
    return (f"run: model {suite.model.name}, dataset {suite.dataset.name}, {images}, {len(resolved.methods)} method(s), "
            f"checks {', '.join(resolved.checks)}; device {suite.device}; results in {resolved.out}{stored}")
