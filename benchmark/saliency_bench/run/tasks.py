"""The unit of work: (method group, check, image shard), computed the same way by every executor.

``plan`` lists the tasks a run still needs (shards already stored are never recomputed); ``compute`` runs one
in the current process and writes each method's shard record atomically; ``merge`` turns a method's complete
set of shards into its (method, check) result, a pure function of the merged per-image values, so any
sharding and any order give the same bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch

from ..checks.base import MethodGroup
from .configuration import plain
from ..errors import UserError, exception_line
from ..store.shards import ShardStore, shard_ranges
from ..store.arrays import check_rows, concatenate

if TYPE_CHECKING:  # pragma: no cover
    from ..harness.isolation import ModelGuard
    from ..plugins import Registry
    from ..harness.suite import Suite


@dataclass(frozen=True)
class Task:
    """Compute ``names`` (one shared-pass group, or the part of it still missing) on images ``start .. stop``.

    ``also``: further checks of the shared-map contract computed in the same pass (each map once for all of them).
    """

    check: str
    names: tuple[str, ...]
    start: int
    stop: int
    group: int  # the index of the method group among the check's groups (for merging and progress)
    also: tuple[str, ...] = ()

    @property
    def checks(self) -> tuple[str, ...]:
        """Every check the task computes, its own first."""
        return (self.check, *self.also)


def provenance(registry: "Registry", name: str) -> dict:
    """The distribution and version that provide a method (a result is reused only under the same)."""
    registered = registry.methods[name]
    meta = {"distribution": registered.distribution, "version": registered.version}
    settings = registered.obj.setting_values() if hasattr(registered.obj, "setting_values") else {}
    return {**meta, "settings": settings} if settings else meta


def plan(check: str, groups: list[list[str]], images: int, shard_size: int, params: dict, shards: ShardStore,
         registry: "Registry") -> list[Task]:
    """The tasks of one check: per group and shard, the members whose shard is not stored yet or failed (in image
    order)."""
    tasks = []
    for index, names in enumerate(groups):
        for start, stop in shard_ranges(images, shard_size):
            missing = tuple(name for name in names if _needs(shards.get(name, check, start, stop, params,
                                                                         provenance(registry, name))))
            if missing:
                tasks.append(Task(check, missing, start, stop, index))
    return tasks


def map_sharing(registry: "Registry", checks: list[str], params_by_check: dict[str, dict]) -> list[list[str]]:
    """The selected checks that compute their maps together: those of the shared-map contract, by number of images
    (shards must coincide), where two or more come together."""
    by_images: dict[int, list[str]] = {}
    for name in checks:
        if registry.checks[name].obj.shares_maps:
            by_images.setdefault(int(params_by_check[name]["images"]), []).append(name)
    return [names for names in by_images.values() if len(names) > 1]


def plan_shared(checks: list[str], groups: list[list[str]], images: int, shard_size: int,
                params_by_check: dict[str, dict], shards: ShardStore, registry: "Registry") -> list[Task]:
    """The tasks of checks that share maps (same images): per group and shard one pass for the checks with a member
    still missing, computing the members missing on any of them (in image order)."""
    tasks = []
    for index, names in enumerate(groups):
        for start, stop in shard_ranges(images, shard_size):
            missing = {check: {name for name in names if _needs(shards.get(
                name, check, start, stop, params_by_check[check], provenance(registry, name)))} for check in checks}
            todo = [check for check in checks if missing[check]]
            if todo:
                members = tuple(name for name in names if any(name in missing[check] for check in todo))
                tasks.append(Task(todo[0], members, start, stop, index, also=tuple(todo[1:])))
    return tasks


def _needs(record: dict | None) -> bool:
    """A shard is (re)computed when absent, unusable or failed; ok and n/a shards are kept."""
    return record is None or record["status"] == "failed"


def _run_group(task: Task, suite: "Suite", registry: "Registry", call: Callable, params: dict, *, seed: int,
               timeout: float | None, guard: "ModelGuard | None") -> tuple[MethodGroup, dict]:
    """``call(shard suite, group, params)`` on the task's methods, seeded; a check that breaks fails the group's
    active methods (not the run): ``(group, what the call returned, or {})``."""
    group = MethodGroup([registry.methods[name].obj for name in task.names], suite.model, timeout=timeout, guard=guard)
    torch.manual_seed(seed)
    try:
        return group, call(suite.shard(task.start, task.stop), group, params)
    except UserError:
        raise
    except Exception as exc:  # a check that breaks on one group must not stop the others
        for name in group.active:
            group.failures[name] = f"check '{'+'.join(task.checks)}' raised {exception_line(exc)}"
        return group, {}


def compute(task: Task, suite: "Suite", registry: "Registry", params: dict[str, dict], shards: ShardStore, *,
            seed: int, timeout: float | None = None, guard: "ModelGuard | None" = None,
            timings: dict[str, float] | None = None) -> dict[str, str]:
    """Run one task here and store every member's shard of each of its checks (ok, n/a or failed); ``{name: status}``
    (a member failed on any check is failed). ``params``: each check's parameters, by name.

    A check or method that breaks fails the task's methods on this shard, never the run; a ``UserError``
    (bad parameters, unreadable data) stops the run. A shard already stored (ok or n/a) is left as it is.
    ``timings`` adds up the seconds spent (checks/shared_maps.run_shared says how a shared pass splits them).
    """
    if registry.checks[task.check].obj.shares_maps:
        from ..checks.shared_maps import run_shared

        checks = [(registry.checks[name].obj, params[name]) for name in task.checks]
        call = lambda shard, group, _: run_shared(shard, group, checks, timings=timings)  # noqa: E731
        group, by_check = _run_group(task, suite, registry, call, None, seed=seed, timeout=timeout, guard=guard)
    else:
        check = registry.checks[task.check].obj
        group, values = _run_group(task, suite, registry, check.run_images, params[task.check], seed=seed,
                                   timeout=timeout, guard=guard)
        by_check = {task.check: values}
    rows = task.stop - task.start
    statuses: dict[str, str] = {}
    for check_name in task.checks:
        values = by_check.get(check_name, {})
        for name in task.names:
            meta = provenance(registry, name)
            if task.also and not _needs(shards.get(name, check_name, task.start, task.stop, params[check_name], meta)):
                continue  # stored by an earlier run that this pass's other checks needed again
            record, problem = {"plugin": meta}, None
            if name in group.not_applicable:
                record.update(status="n/a", reason=group.not_applicable[name])
            elif name not in group.failures and name in values and (problem := check_rows(values[name], rows)) is None:
                record.update(status="ok")
            else:
                record.update(status="failed", error=group.failures.get(name) or (
                    f"check '{check_name}' returned unusable values: {problem}" if problem
                    else f"check '{check_name}' returned no values"))
            shards.put(name, check_name, task.start, task.stop, record, params[check_name],
                       values[name] if record["status"] == "ok" else None)
            if statuses.get(name) != "failed":
                statuses[name] = record["status"]
    return statuses


def compute_whole(task: Task, suite: "Suite", registry: "Registry", params: dict, *, seed: int,
                  timeout: float | None = None, guard: "ModelGuard | None" = None) -> dict[str, dict]:
    """A check without per-image values, run whole on the task's images: ``{name: record}`` to store (ok/n/a/failed)."""
    check = registry.checks[task.check].obj
    group, results = _run_group(task, suite, registry, check.run, params, seed=seed, timeout=timeout, guard=guard)
    records = {}
    for name in task.names:
        meta = provenance(registry, name)
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


def merge(name: str, check_name: str, images: int, shard_size: int, params: dict, shards: ShardStore,
          registry: "Registry", suite: "Suite", log: Callable[[str], None] | None = None) -> dict | None:
    """The (method, check) record from all of the method's shards, or None while one is missing.

    A failed shard fails the method (the first in image order gives the error) and an n/a one makes it n/a,
    whether or not the other shards are in; otherwise the check summarises the concatenated per-image values.
    """
    meta = provenance(registry, name)
    records = [shards.get(name, check_name, start, stop, params, meta) for start, stop in shard_ranges(images, shard_size)]
    for status, key in (("failed", "error"), ("n/a", "reason")):  # known whatever shards are still missing
        for record in records:
            if record is not None and record["status"] == status:
                return {"status": status, key: record[key], "plugin": meta}
    if any(record is None for record in records):
        return None
    check = registry.checks[check_name].obj
    try:
        result = check.summarize(concatenate([record["values"] for record in records]), params, suite)
        return {"status": "ok", "plugin": meta, **plain(result)}
    except Exception as exc:  # noqa: BLE001 - a check whose summary breaks fails the method, not the run
        return {"status": "failed", "error": f"check '{check_name}' raised {exception_line(exc)} summarising",
                "plugin": meta}
