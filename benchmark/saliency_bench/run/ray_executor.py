"""``--executor ray``: the run's (method group, check, image shard) tasks on a Ray cluster, same results as local.

The driver (the ``saliency-bench run`` process) plans the tasks exactly as the local executor does
(``tasks.plan``: shards already stored are never recomputed), submits each as one Ray task (1 CPU, and 1 GPU
where the run uses CUDA unless ``--gpus-per-task`` says otherwise), and only schedules and merges: as soon as
every task of one (check, method group) is in, it stores the members' (method, check) results
(``recording.merge_result``), so an interrupted run resumes from its stored shards and results.

A worker process loads the plugins, model and dataset once (``_context``) and keeps them for every task it
runs; it refuses (a user error, one line on the driver) to compute under another configuration than the
driver's, such as other package versions, weights or plugin versions on another node. It writes each shard itself
(``tasks.compute``, one atomic rename per file, no folder lock: the driver holds it); a check without per-image
values (``check.per_image`` false) runs whole and its records go back to the driver, which stores them.

Failures: a method or check that breaks fails its methods on that shard, as locally (``tasks.compute``). A
task whose worker process dies is retried by Ray (``MAX_RETRIES`` times); when it still cannot finish (the
worker keeps dying, the node is lost, an unexpected error) its methods are stored as failed on that shard,
with the reason, and the run goes on (exit 1; a rerun computes that shard again). A user error raised on a
worker (bad parameters, unreadable data, another configuration) cancels the remaining tasks and stops the run
with that one line; finished shards stay stored.

On a cluster of several machines, ``--out`` (and ``--weights``, ``--data-root``) must be the same shared
path on every node, and every node needs the same packages and plugins installed.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import UserError, exception_line

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import Registry
    from .tasks import Task

MAX_RETRIES = 3  # Ray reruns a task whose worker process died this many times before the task fails
RAY_MISSING = "--executor ray needs Ray: pip install 'saliency-bench[ray]'"
TASK_FUNCTION = "saliency_bench_task"  # the remote function's name: a busy worker's process title is ray::<it>


# -- the worker side ------------------------------------------------------------------------------------------------

_CONTEXT: dict[str, dict] = {}  # per worker process: the loaded registry, suite and guard of the run it serves


def _context(spec: dict) -> dict:
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
    from .configuration import package_versions, plain
    from ..harness.isolation import ModelGuard
    from ..plugins import ALLOWLIST_ENV, make_plugin_manager, parse_allowlist
    from .record import file_sha256
    from .session import open_suite
    from ..store.shards import ShardStore

    keep_freed_memory()  # as the CLI does in the driver (speed only, never results)
    if spec["plugins"] is None:
        os.environ.pop(ALLOWLIST_ENV, None)
    else:
        os.environ[ALLOWLIST_ENV] = spec["plugins"]
    registry = make_plugin_manager(allowlist=parse_allowlist(spec["plugins"])).registry()
    options = spec["options"]
    suite = open_suite(options, registry)
    # the configuration as runner.open_store records it: a worker computes only under the driver's
    weights = getattr(suite.model, "weights_sha256", None) or (file_sha256(options.weights) if options.weights else None)
    config = plain({**suite.describe(), "weights_sha256": weights, "versions": package_versions()})
    if config != spec["config"]:
        from ..store.results import _first_difference

        raise UserError(f"the Ray worker on {_host()} would compute under another configuration than this run "
                        f"({_first_difference(spec['config'], config)}); install the same packages, weights and data "
                        "on every node")
    context = {"registry": registry, "suite": suite, "guard": ModelGuard(suite.model.network),
               "shards": ShardStore(spec["root"], spec["config"])}
    _CONTEXT[key] = context
    return context


def _host() -> str:
    import socket

    return socket.gethostname()


def _check_plugins(registry: "Registry", spec: dict) -> None:
    """The task's check and methods must be registered here by the same plugin versions as on the driver."""
    from .tasks import provenance

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
        if provenance(registry, name) != spec["provenance"][name]:
            raise UserError(f"method '{name}' is {json.dumps(provenance(registry, name), sort_keys=True)} on the Ray "
                            f"worker on {_host()}, {json.dumps(spec['provenance'][name], sort_keys=True)} here; "
                            "install the same plugins on every node")


def saliency_bench_task(spec: dict) -> dict:
    """Run one task in this worker process: ``{"statuses"|"records", "seconds", "pid"}``, or ``{"user_error"}`` /
    ``{"error"}`` (one line each; a plain dict travels back whatever exception types the plugins use)."""
    from .tasks import compute, compute_whole

    started = time.perf_counter()
    task, options = spec["task"], spec["options"]
    try:
        context = _context(spec)
        registry = context["registry"]
        _check_plugins(registry, spec)
        suite, kwargs = context["suite"], {"seed": options.seed, "timeout": options.method_timeout,
                                           "guard": context["guard"]}
        if spec["whole"]:
            result = {"records": compute_whole(task, suite, registry, spec["params"][task.check], **kwargs)}
        else:
            result = {"statuses": compute(task, suite, registry, spec["params"], context["shards"], **kwargs)}
    except UserError as exc:
        return {"user_error": str(exc).splitlines()[0] if str(exc) else "UserError", "pid": os.getpid()}
    except Exception as exc:  # noqa: BLE001 - reported on the driver: the task's methods fail on this shard
        return {"error": f"{exception_line(exc)} (Ray worker on {_host()})", "pid": os.getpid()}
    return {**result, "seconds": time.perf_counter() - started, "pid": os.getpid()}


# -- the driver side ------------------------------------------------------------------------------------------------

def require_ray():
    """The ``ray`` module; without it a one-line user error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError(RAY_MISSING) from None
    return ray


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


def run_on_ray(report, registry: "Registry", params_by_check: dict[str, dict],
               pending_by_check: dict[str, list[str]], log: Callable[[str], None]) -> None:
    """Compute the run's pending (method, check) results on Ray; store shards, results and seconds as locally.

    Nothing left to compute (every shard stored by an interrupted run, say): the results are merged here and
    no cluster is started or joined.
    """
    ray = require_ray()
    driver = _Driver(ray, report, registry, params_by_check, pending_by_check, log)
    if not driver.tasks:
        driver.log("ray: nothing to compute" + (f"; {driver.stored} shard(s) already stored" if driver.stored else ""))
        driver.merge_complete()
        report.seconds.update(driver.seconds)
        return
    where = _connect(ray, report.options.ray_address)
    try:
        driver.run(where)
    finally:
        ray.shutdown()  # stops the local cluster this process started; disconnects from a remote one


class _Driver:
    """Plans, submits, collects and merges one run's tasks."""

    def __init__(self, ray, report, registry: "Registry", params_by_check: dict[str, dict],
                 pending_by_check: dict[str, list[str]], log: Callable[[str], None]):
        self.ray, self.report, self.registry, self.log = ray, report, registry, log
        self.params_by_check, self.pending_by_check = params_by_check, pending_by_check
        options = report.options
        self.gpus = options.gpus_per_task if options.gpus_per_task is not None else (
            1 if report.suite.device.type == "cuda" else 0)
        # what every worker opens: these options on a device of the run's kind (Ray picks the GPU: CUDA_VISIBLE_DEVICES)
        self.options = replace(options, progress=False, executor="local", speed=False, fresh=False, wait=False,
                               device=report.suite.device.type,
                               weights=_absolute(options.weights), data_root=_absolute(options.data_root))
        self.seconds: dict[str, float] = {}  # summed task seconds per check (per set of checks sharing their maps)
        self.pids: set[int] = set()
        self._plan()

    def _plan(self) -> None:
        """The tasks (as the local executor has them), each (check, group)'s members, and the shards already stored."""
        from ..harness.groups import group_by_shared_pass
        from .record import shard_size
        from ..store.shards import shard_ranges
        from .tasks import Task, map_sharing, plan, plan_shared

        report, registry = self.report, self.registry
        size = shard_size(report.options)
        self.tasks: list[Task] = []
        self.groups: dict[tuple[str, int], list[str]] = {}
        self.stored = 0  # (method, shard) pairs of the pending methods found stored (ok or n/a): not recomputed
        sharing = map_sharing(registry, list(self.pending_by_check), self.params_by_check)
        for together in sharing:  # one pass per (group, shard) computes the maps of all of them (as locally)
            pending = [name for name in report.methods
                       if any(name in self.pending_by_check[check] for check in together)]
            groups = group_by_shared_pass(pending, registry)
            for check_name in together:
                for index, names in enumerate(groups):
                    self.groups[(check_name, index)] = [name for name in names if name in self.pending_by_check[check_name]]
            images = self.params_by_check[together[0]]["images"]
            self.tasks += plan_shared(together, groups, images, size, self.params_by_check, report.shards, registry)
            self.stored += sum(self._is_stored(name, check, start, stop) for check in together
                               for name in self.pending_by_check[check] for start, stop in shard_ranges(images, size))
        for check_name, pending in self.pending_by_check.items():
            if any(check_name in together for together in sharing):
                continue
            params = self.params_by_check[check_name]
            groups = group_by_shared_pass(pending, registry)
            for index, names in enumerate(groups):
                self.groups[(check_name, index)] = names
            if registry.checks[check_name].obj.per_image:
                planned = plan(check_name, groups, params["images"], size, params, report.shards, registry)
                self.stored += sum(map(len, groups)) * len(shard_ranges(params["images"], size)) - sum(
                    len(task.names) for task in planned)
            else:
                planned = [Task(check_name, tuple(names), 0, params["images"], index) for index, names in enumerate(groups)]
            self.tasks += planned
        self.open = {key: 0 for key in self.groups}  # tasks not yet in, per (check, group)
        for task in self.tasks:
            for check_name in task.checks:
                self.open[(check_name, task.group)] += 1

    def _is_stored(self, name: str, check: str, start: int, stop: int) -> bool:
        """Whether the shard of (method, check, images) is stored ok or n/a (kept; never recomputed or overwritten)."""
        from .tasks import provenance

        record = self.report.shards.get(name, check, start, stop, self.params_by_check[check],
                                        provenance(self.registry, name))
        return record is not None and record["status"] != "failed"

    def merge_complete(self) -> None:
        """Merge every (check, group) that has no task left (all its shards were stored before this run)."""
        for key, count in self.open.items():
            if count == 0:
                self._merge(*key)

    def run(self, where: str) -> None:
        self._check_resources(where)
        self.log(f"ray: {len(self.tasks)} task(s) on {where}; each asks for 1 CPU, {self.gpus:g} GPU(s)"
                 + (f"; {self.stored} shard(s) already stored, not recomputed" if self.stored else ""))
        started = time.perf_counter()
        self.merge_complete()
        self._collect(self._submit())
        for check_name, seconds in self.seconds.items():
            self.report.seconds[check_name] = seconds
        self.log(f"ray: {len(self.tasks)} task(s) done in {time.perf_counter() - started:.1f}s on {len(self.pids)} "
                 f"worker process(es), {sum(self.seconds.values()):.1f}s of task time")

    def _check_resources(self, where: str) -> None:
        """A task asking for more GPUs than the cluster has would wait forever: refused here (local) or said (remote)."""
        if not self.tasks or not self.gpus:
            return
        gpus = self.ray.cluster_resources().get("GPU", 0)
        if gpus >= self.gpus:
            return
        message = (f"the tasks ask for {self.gpus:g} GPU(s) each but {where} has {gpus:g}; pass --gpus-per-task 0 "
                   "or --device cpu")
        if self.report.options.ray_address is None:
            raise UserError(message)
        self.log(f"warning: {message} (the tasks wait until a node with a GPU joins)")

    def _spec(self, task: "Task") -> dict:
        from ..plugins import ALLOWLIST_ENV
        from .tasks import provenance

        checks = {name: self.registry.checks[name] for name in task.checks}
        return {"options": self.options, "task": task, "params": {name: self.params_by_check[name] for name in checks},
                "root": str(Path(self.report.store.root).absolute()), "config": self.report.store.config,
                "plugins": os.environ.get(ALLOWLIST_ENV), "whole": not checks[task.check].obj.per_image,
                "check_provenance": {name: [check.distribution, check.version] for name, check in checks.items()},
                "provenance": {name: provenance(self.registry, name) for name in task.names}}

    def _submit(self) -> dict:
        remote = self.ray.remote(saliency_bench_task).options(
            num_cpus=1, num_gpus=self.gpus, max_retries=MAX_RETRIES, retry_exceptions=False)
        return {remote.remote(self._spec(task)): task for task in self.tasks}

    def _collect(self, waiting: dict) -> None:
        """Take each task's outcome as it finishes; merge a (check, group) once its last task is in."""
        ray = self.ray
        done = 0
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
                done += 1
                self._finish(task, outcome)
                if self.report.options.progress:
                    took = f", {outcome['seconds']:.1f}s" if "seconds" in outcome else ", failed"
                    self.log(f"ray: {done} of {len(self.tasks)} tasks done ({'+'.join(task.checks)}: {', '.join(task.names)}, "
                             f"images {task.start}-{task.stop - 1}{took})")
        finally:
            for ref in waiting:  # a user error or an interrupt: nothing more is computed (finished shards stay)
                try:
                    ray.cancel(ref)
                except Exception:  # noqa: BLE001 - already finished or gone; shutdown ends the rest
                    pass

    def _finish(self, task: "Task", outcome: dict) -> None:
        """Store what a finished task produced (or its failure), and merge its group once complete."""
        from .record import store_result
        from .tasks import provenance

        params = self.params_by_check[task.check]
        if "pid" in outcome:
            self.pids.add(outcome["pid"])
        label = "+".join(task.checks)  # a shared pass's seconds are those of its checks together
        self.seconds[label] = self.seconds.get(label, 0.0) + outcome.get("seconds", 0.0)
        whole = not self.registry.checks[task.check].obj.per_image
        if "error" in outcome:
            for name in task.names:
                record = {"status": "failed", "error": outcome["error"], "plugin": provenance(self.registry, name)}
                if whole:
                    store_result(self.report, task.check, params, name, record, self.log)
                    continue
                for check_name in task.checks:
                    if not self._is_stored(name, check_name, task.start, task.stop):
                        self.report.shards.put(name, check_name, task.start, task.stop, record,
                                               self.params_by_check[check_name])
        elif whole:
            for name, record in outcome["records"].items():
                store_result(self.report, task.check, params, name, record, self.log)
        for check_name in task.checks:
            key = (check_name, task.group)
            self.open[key] -= 1
            if self.open[key] == 0 and not whole:
                self._merge(*key)

    def _merge(self, check_name: str, group: int) -> None:
        from .record import merge_result

        if not self.registry.checks[check_name].obj.per_image:
            return
        for name in self.groups[(check_name, group)]:
            merge_result(self.report, self.registry, check_name, self.params_by_check[check_name], name, self.log)


def _absolute(path: str | None) -> str | None:
    """A path as the driver sees it, absolute (a worker need not share the driver's working directory)."""
    return None if path is None else str(Path(path).absolute())


def _ray_error_line(exc: BaseException) -> str:
    """One line for a Ray error (their messages run over many lines)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
