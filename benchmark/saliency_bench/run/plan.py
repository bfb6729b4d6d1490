"""Step 2 of a run, *plan*: every task once (docs/design.md "One pipeline").

A task is (method group, check or checks computing shared maps together, image shard): the unit of work and of
storage, the same for every executor. Results already stored are reused, shards already stored are never
recomputed; the plan lists what is left, in run order, and for each (check, group) the methods whose results
it will merge once the group's last task of that check is in.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..plugins import Registry
from ..store.results import ResultStore
from ..store.shards import ShardStore, shard_ranges, stored_values
from .resolve import Resolved


@dataclass(frozen=True)
class Task:
    """Compute ``names`` of one method group on images ``start .. stop`` for ``check`` (and ``also``, the checks of
    its stage still missing there: each map computed once for all of them)."""

    check: str
    names: tuple[str, ...]
    start: int
    stop: int
    group: int  # the index of the method group in its stage
    also: tuple[str, ...] = ()
    stage: int = 0  # the index of its stage (Resolved.stages)
    label: str = ""  # what a progress bar names: the methods and, where a check has several shards, the images

    @property
    def checks(self) -> tuple[str, ...]:
        """Every check the task computes, its own first."""
        return (self.check, *self.also)


@dataclass
class Plan:
    """What a run still has to compute, and what it reuses."""

    tasks: list[Task] = field(default_factory=list)
    members: dict[tuple[str, int], list[str]] = field(default_factory=dict)  # (check, group) -> methods to merge
    whole: set[str] = field(default_factory=set)  # the checks run whole (no per-image values, no shards)
    reused: list[tuple[str, str]] = field(default_factory=list)  # (method, check) results already stored
    not_applicable: dict[str, set[str]] = field(default_factory=dict)  # method -> checks stored as n/a
    stored_shards: int = 0  # (method, check, shard) records already stored, kept as they are


def plan(resolved: Resolved, registry: Registry, store: ResultStore, shards: ShardStore) -> Plan:
    """The tasks of the run, stage by stage, group by group, in image order."""
    result = Plan()
    pending = {check: _pending(resolved, registry, store, shards, check, result) for check in resolved.checks}
    for stage, checks in enumerate(resolved.stages):
        waiting = {name for check in checks for name in pending[check]}
        groups = [[name for name in group if name in waiting] for group in resolved.groups]
        groups = [group for group in groups if group]
        for index, names in enumerate(groups):
            for check in checks:
                result.members[(check, index)] = [name for name in names if name in pending[check]]
        if registry.checks[checks[0]].obj.per_image:
            _plan_shards(resolved, registry, shards, checks, stage, groups, result)
        else:
            result.whole.add(checks[0])
            result.tasks += [Task(checks[0], tuple(names), 0, resolved.params[checks[0]]["images"], index, (), stage,
                                  progress_label(sum(map(len, groups[:index])), names, len(waiting)))
                             for index, names in enumerate(groups)]
    return result


def _pending(resolved: Resolved, registry: Registry, store: ResultStore, shards: ShardStore, check: str,
             result: Plan) -> list[str]:
    """The methods still to compute on ``check``; stored ``ok`` and ``n/a`` results of the same plugin are reused
    (noted in ``result``) while the image shards they were merged from are intact; failed ones are computed again."""
    pending = []
    per_image = registry.checks[check].obj.per_image
    for name in resolved.methods:
        stored = store.get(name, check, resolved.params[check])
        if (stored is not None and stored.get("status") in ("ok", "n/a") and stored.get("plugin") == registry.provenance(name)
                and (not per_image or stored["status"] == "n/a" or _values_intact(resolved, registry, shards, check, name))):
            result.reused.append((name, check))
            if stored["status"] == "n/a":
                result.not_applicable.setdefault(name, set()).add(check)
        else:
            pending.append(name)
    return pending


def _plan_shards(resolved: Resolved, registry: Registry, shards: ShardStore, checks: tuple[str, ...], stage: int,
                 groups: list[list[str]], result: Plan) -> None:
    """Per group and shard one task for the checks of the stage with a member still missing there, computing the
    members missing on any of them; a shard stored ``ok`` or ``n/a`` is kept, a failed one is computed again."""
    images = resolved.params[checks[0]]["images"]
    ranges = shard_ranges(images, resolved.shard_size)
    waiting = sum(map(len, groups))
    for index, names in enumerate(groups):
        label = progress_label(sum(map(len, groups[:index])), names, waiting)
        for start, stop in ranges:
            missing = {}
            for check in checks:
                members = result.members[(check, index)]
                missing[check] = [name for name in members if _needs(shards.get(
                    name, check, start, stop, resolved.params[check], registry.provenance(name)))]
                result.stored_shards += len(members) - len(missing[check])
            todo = [check for check in checks if missing[check]]
            if todo:
                names_now = tuple(name for name in names if any(name in missing[check] for check in todo))
                where = f"{label}, images {start}-{stop - 1}" if len(ranges) > 1 else label
                result.tasks.append(Task(todo[0], names_now, start, stop, index, tuple(todo[1:]), stage, where))


def _values_intact(resolved: Resolved, registry: Registry, shards: ShardStore, check: str, name: str) -> bool:
    """Whether usable ``ok`` shards (of any tiling) hold a stored result's per-image values: the board's values file
    is read from them, so a missing or damaged shard makes the result pending again, and the shard is recomputed."""
    params = resolved.params[check]
    return stored_values(shards, name, check, int(params["images"]), params, registry.provenance(name)) is not None


def _needs(record: dict | None) -> bool:
    """A shard is (re)computed when absent, unusable or failed; ok and n/a shards are kept."""
    return record is None or record["status"] == "failed"


def progress_label(done: int, names: list[str], total: int) -> str:
    """What a bar names: the methods it computes, counted among the stage's pending methods."""
    first, last = done + 1, done + len(names)
    span = f"method {first}" if first == last else f"methods {first}-{last}"
    shared = f" +{len(names) - 1} in one shared pass" if len(names) > 1 else ""
    return f"{span} of {total}: {names[0]}{shared}"
