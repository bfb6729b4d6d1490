"""One run, top to bottom: resolve, plan, execute, record, publish (docs/design.md "One pipeline")."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..plugins import Registry, load_registry
from ..errors import UserError
from ..store.files import remove_temporaries, stderr
from ..store.locking import hold_folders, release
from ..store.results import ResultStore
from ..store.shards import ShardStore
from .compute import TaskContext
from .options import RunOptions
from .plan import plan
from .record import Recorder, RunReport
from .resolve import Resolved, resolve
from .session import run_configuration

if TYPE_CHECKING:  # pragma: no cover
    from ..board.publish import Targets


def run_benchmark(options: RunOptions, registry: Registry | None = None,
                  log: Callable[[str], None] | None = None, command: str = "run") -> RunReport:
    """Run every selected (method, check) not already stored; store each result the moment it is done.

    ``command``: whose options the refusals suggest (``run``, or ``check``, which reruns through here).
    """
    from ..board.publish import board_targets, read_index

    log = log or stderr
    began = time.perf_counter()
    registry = registry if registry is not None else load_registry(log)
    resolved = resolve(options, registry)  # 1. resolve: the whole configuration, once
    targets = board_targets(resolved, registry) if options.board else None
    folders = hold_folders(folders_written(resolved, targets), options.wait, log)  # until publish ends
    try:
        remove_board_temporaries([lock for lock in folders if lock.what == "board folder"])
        if targets is not None:
            read_index(targets)  # under the lock of the top-level folder
        store = open_store(resolved, log, command)
        try:
            report = execute_and_publish(resolved, registry, store, targets, log, began, floor=command == "run")
        except BaseException:
            store.close()
            raise
    finally:
        release(folders)
    report.wall_seconds = time.perf_counter() - began
    return report


def folders_written(resolved: Resolved, targets: "Targets | None") -> list[tuple[Path, str, str | None]]:
    """Every folder the run writes, as ``hold_folders`` takes them: the run folder, and each board folder (the
    top-level one, ``.``, where a default run rewrites its section of ``leaderboard.md``)."""
    folders: list[tuple[Path, str, str | None]] = [(Path(resolved.out), "output folder", "--out")]
    if targets is not None:
        option = "--board-dir" if resolved.options.board_dir else None
        folders += [(Path(folder), "board folder", option) for folder in targets.folders]
        if targets.index is not None:
            folders.append((Path("."), "board folder", None))
    return folders


def remove_board_temporaries(locks: list) -> None:
    """Delete what killed runs left half-written beside the board files of the locked folders (the run folder's
    own are removed when its store opens)."""
    for lock in locks:
        for folder in (lock.folder, lock.folder / "figures"):
            try:
                remove_temporaries(folder, recursive=False)
            except OSError as exc:
                raise UserError(f"cannot clean {folder} of temporary files: {exc.strerror}") from None


def execute_and_publish(resolved: Resolved, registry: Registry, store: ResultStore, targets: "Targets | None",
                        log: Callable[[str], None], began: float, floor: bool = True) -> RunReport:
    """Steps 2 to 5 in the open store: plan, execute, record (and time), publish.

    ``floor``: time one forward+backward pass for the run's floor line when the speed step did not (``check``'s
    rerun states no floor, and skips the second it costs)."""
    from ..board.publish import publish

    options = resolved.options
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
    from .speed import measure_floor, measure_speed

    if options.speed:
        measure_speed(report, registry, options, log)
    if floor and report.floor_ms_per_image is None and report.passes:  # the floor the passes are weighed against
        report.floor_ms_per_image = measure_floor(report.suite.model, options)
    report.wall_seconds = time.perf_counter() - began  # the board's speed file records the run's compute time
    if targets is not None:
        publish(report, registry, targets, log)  # 5. publish
    return report


def open_store(resolved: Resolved, log: Callable[[str], None], command: str = "run") -> ResultStore:
    """The run folder's store, under this run's configuration (the suite, the weights' hash, package versions)."""
    options = resolved.options
    return ResultStore(Path(resolved.out), run_configuration(resolved.suite, options), fresh=options.fresh,
                       wait=options.wait, log=log, command=command)


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
