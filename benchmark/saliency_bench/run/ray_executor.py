"""Step 3 of a run, *execute*, on Ray (``--executor ray``): the plan's tasks on a cluster, the local results.

The driver (the ``saliency-bench run`` process) submits each task of the plan as one Ray task (1 CPU, and 1 GPU
where the run uses CUDA unless ``--gpus-per-task`` says otherwise) and hands each outcome to the recorder as it
comes in; it neither plans nor merges. A worker process loads the plugins, model and dataset once (``_context``)
and keeps them for every task it runs; it refuses (a user error, one line on the driver) to compute under another
configuration than the driver's, such as other package versions, weights or plugin versions on another node. It
writes each shard itself (``compute.execute``, one atomic rename per file, no folder lock: the driver holds it); a
check run whole sends its records back.

Failures: a method or check that breaks fails its methods on that shard, as locally. A task whose worker process
dies is retried by Ray (``MAX_RETRIES`` times); when it still cannot finish its methods fail on that shard, with the
reason, and the run goes on (exit 1; a rerun computes that shard again). A user error raised on a worker cancels
the remaining tasks and stops the run with that one line; finished shards stay stored.

On a cluster of several machines, ``--out`` (and ``--weights``, ``--data-root``) must be the same shared path on
every node, and every node needs the same packages and plugins installed (docs/scaling-out.md).
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from ..errors import UserError, exception_line
from .resolve import RAY_MISSING, require_ray  # noqa: F401 - RAY_MISSING: the message tests read here

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import Registry
    from .compute import TaskContext
    from .options import RunOptions
    from .plan import Task

MAX_RETRIES = 3  # Ray reruns a task whose worker process died this many times before the task fails
TASK_FUNCTION = "saliency_bench_task"  # the remote function's name: a busy worker's process title is ray::<it>


# -- the worker side ------------------------------------------------------------------------------------------------

_CONTEXT: dict[str, "TaskContext"] = {}  # per worker process: the loaded context of the run it serves


def _context(spec: dict) -> "TaskContext":
    """The registry, suite, model guard and shard store of the spec's run, loaded once per worker process.

    Keyed by the canonical JSON of what determines them (the options, the plugin allowlist, the driver's
    configuration); a worker serving another run drops the previous one first (one model in memory at a time).
    """
    key = json.dumps({"options": asdict(spec["options"]), "plugins": spec["plugins"], "config": spec["config"]},
                     sort_keys=True, default=str)
    if key in _CONTEXT:
        return _CONTEXT[key]
    _CONTEXT.clear()
    from ..harness.allocator import keep_freed_memory
    from ..harness.isolation import ModelGuard
    from ..plugins import ALLOWLIST_ENV, make_plugin_manager, parse_allowlist
    from ..store.files import first_difference
    from ..store.shards import ShardStore
    from .compute import TaskContext
    from .session import open_suite, run_configuration

    keep_freed_memory()  # as the CLI does in the driver (speed only, never results)
    if spec["plugins"] is None:
        os.environ.pop(ALLOWLIST_ENV, None)
    else:
        os.environ[ALLOWLIST_ENV] = spec["plugins"]
    registry = make_plugin_manager(allowlist=parse_allowlist(spec["plugins"])).registry()
    options = spec["options"]
    suite = open_suite(options, registry)
    config = run_configuration(suite, options)  # a worker computes only under the driver's configuration
    if config != spec["config"]:
        raise UserError(f"the Ray worker on {_host()} would compute under another configuration than this run "
                        f"({first_difference(spec['config'], config)}); install the same packages, weights and data "
                        "on every node")
    context = TaskContext(registry=registry, suite=suite, params=spec["params"],
                          shards=ShardStore(spec["root"], spec["config"]), seed=options.seed,
                          timeout=options.method_timeout, guard=ModelGuard(suite.model.network))
    _CONTEXT[key] = context
    return context


def _host() -> str:
    import socket

    return socket.gethostname()


def _check_plugins(registry: "Registry", spec: dict) -> None:
    """The task's check and methods must be registered here by the same plugin versions as on the driver."""
    task = spec["task"]
    for check in task.checks:
        if check not in registry.checks:
            raise UserError(f"check '{check}' is not installed on the Ray worker on {_host()}; install the same "
                            "plugins on every node")
        registered = registry.checks[check]
        if [registered.distribution, registered.version] != spec["check_provenance"][check]:
            raise UserError(f"check '{check}' is {registered.distribution} {registered.version} on the Ray worker on "
                            f"{_host()}, {' '.join(map(str, spec['check_provenance'][check]))} here; install the same "
                            "plugins on every node")
    for name in task.names:
        if name not in registry.methods:
            raise UserError(f"method '{name}' is not installed on the Ray worker on {_host()}; install the same "
                            "plugins on every node (or set the same SALIENCY_BENCH_PLUGINS)")
        if registry.provenance(name) != spec["provenance"][name]:
            raise UserError(f"method '{name}' is {json.dumps(registry.provenance(name), sort_keys=True)} on the Ray "
                            f"worker on {_host()}, {json.dumps(spec['provenance'][name], sort_keys=True)} here; "
                            "install the same plugins on every node")


def saliency_bench_task(spec: dict) -> dict:
    """Run one task in this worker process: ``{"statuses"|"records", "seconds", "pid"}``, or ``{"user_error"}`` /
    ``{"error"}`` (one line each; a plain dict travels back whatever exception types the plugins use)."""
    from .compute import execute

    try:
        context = _context(spec)
        _check_plugins(context.registry, spec)
        outcome = execute(spec["task"], replace(context, params=spec["params"]))
    except UserError as exc:
        return {"user_error": str(exc).splitlines()[0] if str(exc) else "UserError", "pid": os.getpid()}
    except Exception as exc:  # noqa: BLE001 - reported on the driver: the task's methods fail on this shard
        return {"error": f"{exception_line(exc)} (Ray worker on {_host()})", "pid": os.getpid()}
    return {**outcome, "pid": os.getpid()}



# -- the driver side ------------------------------------------------------------------------------------------------

def _connect(ray, address: str | None) -> str:
    """Start a local cluster (no address) or connect to ``address``; a one-line user error if that fails.

    Without an address the cluster is this machine's own, started here, with every CPU, no dashboard and
    quiet logs; ``--ray-address auto`` connects to the cluster that ``ray start`` left on this machine (or RAY_ADDRESS).
    """
    import logging

    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        with _stderr_silenced():  # Ray's C++ core logs each retry to connect on stderr; the failure is one line below
            if address:
                ray.init(address=address, **quiet)
                where = f"the Ray cluster at {address}"
            else:
                ray.init(address="local", num_cpus=os.cpu_count() or 1, **quiet)
                where = "a local Ray cluster"
    except Exception as exc:  # noqa: BLE001 - ConnectionError, a version mismatch, a refused start
        if not address:
            raise UserError(f"starting a local Ray cluster failed: {exception_line(exc)}") from None
        hint = ("; if the cluster uses token authentication (`ray start` does by default), set RAY_AUTH_MODE=token "
                "here, with the cluster's token in RAY_AUTH_TOKEN or ~/.ray/auth_token" if "RAY_AUTH_MODE" not in os.environ
                else "")
        raise UserError(f"--ray-address {address}: {exception_line(exc)}{hint}") from None
    resources = ray.cluster_resources()
    return f"{where} of {resources.get('CPU', 0):g} CPU(s), {resources.get('GPU', 0):g} GPU(s)"


@contextmanager
def _stderr_silenced():
    """File descriptor 2 goes to a discarded temporary file meanwhile (Python's and native code's writes alike)."""
    import sys
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


class RayExecutor:
    """Submits the plan's tasks to Ray and hands each outcome to ``done`` as it finishes (in any order)."""

    def __init__(self, options: "RunOptions", root: str | Path, config: dict, stored_shards: int,
                 log: Callable[[str], None]):
        self.log, self.config, self.stored = log, config, stored_shards
        self.root = str(Path(root).absolute())
        self.address, self.progress = options.ray_address, options.progress
        self.gpus_per_task = options.gpus_per_task
        # what every worker opens: these options on a device of the run's kind (Ray picks the GPU: CUDA_VISIBLE_DEVICES)
        self.options = replace(options, progress=False, executor="local", speed=False, fresh=False, wait=False,
                               board=False, board_dir=None, weights=_absolute(options.weights),
                               data_root=_absolute(options.data_root))

    def run(self, tasks: Sequence["Task"], context: "TaskContext", done: Callable[["Task", dict], dict]) -> None:
        """Every task on the cluster; nothing to compute: no cluster is started or joined."""
        stored = f"; {self.stored} shard(s) already stored" if self.stored else ""
        if not tasks:
            self.log("ray: nothing to compute" + stored)
            return
        ray = require_ray()
        gpus = self.gpus_per_task if self.gpus_per_task is not None else (
            1 if context.suite.device.type == "cuda" else 0)
        self.options = replace(self.options, device=context.suite.device.type)
        where = _connect(ray, self.address)
        try:
            self._check_resources(ray, where, gpus)
            self.log(f"ray: {len(tasks)} task(s) on {where}; each asks for 1 CPU, {gpus:g} GPU(s)"
                     + (f"{stored}, not recomputed" if stored else ""))
            started, pids = time.perf_counter(), set()
            remote = ray.remote(saliency_bench_task).options(
                num_cpus=1, num_gpus=gpus, max_retries=MAX_RETRIES, retry_exceptions=False)
            waiting = {remote.remote(self._spec(task, context)): task for task in tasks}
            seconds = self._collect(ray, waiting, len(tasks), done, pids)
            self.log(f"ray: {len(tasks)} task(s) done in {time.perf_counter() - started:.1f}s on {len(pids)} "
                     f"worker process(es), {seconds:.1f}s of task time")
        finally:
            ray.shutdown()  # stops the local cluster this process started; disconnects from a remote one

    def _check_resources(self, ray, where: str, gpus: float) -> None:
        """A task asking for more GPUs than the cluster has would wait forever: refused here (local) or said (remote)."""
        if not gpus:
            return
        available = ray.cluster_resources().get("GPU", 0)
        if available >= gpus:
            return
        message = (f"the tasks ask for {gpus:g} GPU(s) each but {where} has {available:g}; pass --gpus-per-task 0 "
                   "or --device cpu")
        if self.address is None:
            raise UserError(message)
        self.log(f"warning: {message} (the tasks wait until a node with a GPU joins)")

    def _spec(self, task: "Task", context: "TaskContext") -> dict:
        from ..plugins import ALLOWLIST_ENV

        registry = context.registry
        checks = {name: registry.checks[name] for name in task.checks}
        return {"options": self.options, "task": task, "params": {name: context.params[name] for name in checks},
                "root": self.root, "config": self.config, "plugins": os.environ.get(ALLOWLIST_ENV),
                "check_provenance": {name: [check.distribution, check.version] for name, check in checks.items()},
                "provenance": {name: registry.provenance(name) for name in task.names}}

    def _collect(self, ray, waiting: dict, total: int, done: Callable, pids: set) -> float:
        """Take each task's outcome as it finishes and hand it to ``done``; the task seconds, summed."""
        finished, seconds = 0, 0.0
        try:
            while waiting:
                ready, _ = ray.wait(list(waiting), num_returns=1)
                task = waiting.pop(ready[0])
                try:
                    outcome = ray.get(ready[0])
                except ray.exceptions.RayError as exc:  # the worker kept dying, the node was lost, ...
                    outcome = {"error": f"Ray could not run the task ({_ray_error_line(exc)})"}
                if "user_error" in outcome:
                    raise UserError(outcome["user_error"])
                finished += 1
                pids.update([outcome["pid"]] if "pid" in outcome else [])
                seconds += outcome.get("seconds", 0.0)
                done(task, outcome)
                if self.progress:
                    took = f", {outcome['seconds']:.1f}s" if "seconds" in outcome else ", failed"
                    self.log(f"ray: {finished} of {total} tasks done ({'+'.join(task.checks)}: {', '.join(task.names)}, "
                             f"images {task.start}-{task.stop - 1}{took})")
        finally:
            for ref in waiting:  # a user error or an interrupt: nothing more is computed (finished shards stay)
                try:
                    ray.cancel(ref)
                except Exception:  # noqa: BLE001 - already finished or gone; shutdown ends the rest
                    pass
        return seconds


def _absolute(path: str | None) -> str | None:
    """A path as the driver sees it, absolute (a worker need not share the driver's working directory)."""
    return None if path is None else str(Path(path).absolute())


def _ray_error_line(exc: BaseException) -> str:
    """One line for a Ray error (their messages run over many lines)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
