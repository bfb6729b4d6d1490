"""One task computed in this process, the same way by every executor (the local loop and a Ray worker).

``execute`` runs a task and writes each member's shard record of each of its checks atomically (a check run
whole returns its records instead); ``merge`` turns a method's complete set of shards into its (method, check)
result, a pure function of the merged per-image values, so any sharding and any order give the same bytes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

import torch

from ..errors import UserError, exception_line
from ..harness.group import MethodGroup
from ..store.arrays import check_rows, concatenate
from ..store.files import plain
from ..store.shards import ShardStore, shard_ranges

if TYPE_CHECKING:  # pragma: no cover
    from ..harness.isolation import ModelGuard
    from ..harness.suite import Suite
    from ..plugins import Registry
    from .plan import Task


@dataclass
class TaskContext:
    """What computing a task needs, loaded once per process: the run's registry, suite, parameters and shards."""

    registry: "Registry"
    suite: "Suite"
    params: dict[str, dict]
    shards: ShardStore
    seed: int
    timeout: float | None = None
    guard: "ModelGuard | None" = None


def execute(task: "Task", context: TaskContext, timings: dict[str, float] | None = None) -> dict:
    """Run one task here: ``{"statuses": {name: ok|n/a|failed}}`` (shards stored) or, for a check run whole,
    ``{"records": {name: record}}``; with ``"seconds"``. ``timings`` adds up the seconds of a shared pass's maps
    and of each check's scoring (checks/shared_maps.py)."""
    started, tally = time.perf_counter(), {"passes": 0, "method_seconds": 0.0}
    if not context.registry.checks[task.check].obj.per_image:
        outcome = {"records": compute_whole(task, context, tally)}
    else:
        outcome = {"statuses": compute_shard(task, context, timings, tally)}
    return {**outcome, **tally, "seconds": time.perf_counter() - started}


def _run_group(task: "Task", context: TaskContext, call: Callable, tally: dict | None = None) -> tuple[MethodGroup, dict]:
    """``call(shard suite, group)`` on the task's methods, seeded; a check that breaks fails the group's active
    methods (not the run): ``(group, what the call returned, or {})``. ``tally`` adds up the group's passes and the
    seconds inside its methods."""
    methods = [context.registry.methods[name].obj for name in task.names]
    group = MethodGroup(methods, context.suite.model, timeout=context.timeout, guard=context.guard)
    torch.manual_seed(context.seed)
    try:
        return group, call(replace(context.suite.shard(task.start, task.stop), progress_label=task.label), group)
    except UserError:
        raise
    except Exception as exc:  # a check that breaks on one group must not stop the others
        for name in group.active:
            group.failures[name] = f"check '{'+'.join(task.checks)}' raised {exception_line(exc)}"
        return group, {}
    finally:
        if tally is not None:
            tally["passes"] += group.passes
            tally["method_seconds"] += group.seconds


def compute_shard(task: "Task", context: TaskContext, timings: dict[str, float] | None = None,
                  tally: dict | None = None) -> dict[str, str]:
    """Store every member's shard of each of the task's checks (ok, n/a or failed); ``{name: status}`` (a member
    failed on any check is failed). A shard already stored (ok or n/a) by an earlier run is left as it is."""
    registry = context.registry
    checks = [(registry.checks[name].obj, context.params[name]) for name in task.checks]
    if checks[0][0].shares_maps:
        from ..checks.shared_maps import run_shared

        group, by_check = _run_group(task, context, lambda shard, group: run_shared(shard, group, checks, timings),
                                     tally)
    else:
        check, params = checks[0]
        group, values = _run_group(task, context, lambda shard, group: check.run_images(shard, group, params), tally)
        by_check = {task.check: values}
    statuses: dict[str, str] = {}
    for check_name in task.checks:
        for name in task.names:
            status = _store_shard(task, context, group, check_name, name, by_check.get(check_name, {}))
            if status is not None and statuses.get(name) != "failed":
                statuses[name] = status
    return statuses


def _store_shard(task: "Task", context: TaskContext, group: MethodGroup, check_name: str, name: str,
                 values: dict) -> str | None:
    """Store ``name``'s shard of ``check_name`` from the pass; its status, or None where an earlier run stored it."""
    params, meta = context.params[check_name], context.registry.provenance(name)
    stored = context.shards.get(name, check_name, task.start, task.stop, params, meta) if task.also else None
    if stored is not None and stored["status"] != "failed":
        return None  # stored by an earlier run that this pass's other checks needed again
    record, problem = {"plugin": meta}, None
    if name in group.not_applicable:
        record.update(status="n/a", reason=group.not_applicable[name])
    elif name not in group.failures and name in values and (problem := check_rows(values[name], task.stop - task.start)) is None:
        record.update(status="ok")
    else:
        record.update(status="failed", error=group.failures.get(name) or (
            f"check '{check_name}' returned unusable values: {problem}" if problem
            else f"check '{check_name}' returned no values"))
    context.shards.put(name, check_name, task.start, task.stop, record, params,
                       values[name] if record["status"] == "ok" else None)
    return record["status"]


def compute_whole(task: "Task", context: TaskContext, tally: dict | None = None) -> dict[str, dict]:
    """A check without per-image values, run whole on the task's images: ``{name: record}`` to store."""
    check, params = context.registry.checks[task.check].obj, context.params[task.check]
    group, results = _run_group(task, context, lambda shard, group: check.run(shard, group, params), tally)
    records = {}
    for name in task.names:
        meta = context.registry.provenance(name)
        if name in group.not_applicable:
            records[name] = {"status": "n/a", "reason": group.not_applicable[name], "plugin": meta}
            continue
        if name not in group.failures and name in results:
            try:
                records[name] = {"status": "ok", "plugin": meta, **plain(results[name])}
                continue
            except (TypeError, ValueError) as exc:  # a check returned something JSON cannot hold
                group.failures[name] = f"check '{task.check}' returned an unstorable result: {exc}"
        records[name] = {"status": "failed", "error": group.failures.get(name, f"check '{task.check}' returned no result"),
                         "plugin": meta}
    return records


def merge(name: str, check_name: str, context: TaskContext, shard_size: int) -> dict | None:
    """The (method, check) record from all of the method's shards, or None while one is missing.

    A failed shard fails the method (the first in image order gives the error) and an n/a one makes it n/a,
    whether or not the other shards are in; otherwise the check summarises the concatenated per-image values.
    """
    params, meta = context.params[check_name], context.registry.provenance(name)
    records = [context.shards.get(name, check_name, start, stop, params, meta)
               for start, stop in shard_ranges(params["images"], shard_size)]
    for status, key in (("failed", "error"), ("n/a", "reason")):  # known whatever shards are still missing
        for record in records:
            if record is not None and record["status"] == status:
                return {"status": status, key: record[key], "plugin": meta}
    if any(record is None for record in records):
        return None
    check = context.registry.checks[check_name].obj
    try:
        result = check.summarize(concatenate([record["values"] for record in records]), params, context.suite)
        return {"status": "ok", "plugin": meta, **plain(result)}
    except Exception as exc:  # noqa: BLE001 - a check whose summary breaks fails the method, not the run
        return {"status": "failed", "error": f"check '{check_name}' raised {exception_line(exc)} summarising",
                "plugin": meta}
