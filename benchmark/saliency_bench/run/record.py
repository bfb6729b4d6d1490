"""Step 4 of a run, *record*: what each finished task produced goes into the run folder (docs/design.md).

Per-image shards are written by whoever computed them (``compute.execute``: here, or on a Ray worker); the
recorder stores a check run whole, the failure of a task an executor could not run, and each (method, check)
result once the last task of its group and check is in. It keeps the run's report: computed, reused, failed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..harness.suite import Suite
from ..plugins import Registry
from ..store.results import ResultStore
from ..store.shards import ShardStore
from .compute import TaskContext, merge
from .options import RunOptions
from .plan import Plan, Task


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
    board: dict | None = None  # the board of the run's results (publish)
    written: list = field(default_factory=list)  # the board files the run wrote (publish)
    wall_seconds: float = 0.0
    passes: int = 0  # forward+backward passes per image the methods computed (SmoothGrad's 16 count 16)
    method_seconds: float = 0.0  # seconds inside the methods' calls; the tasks' other seconds are the checks' scoring
    task_seconds: float = 0.0
    floor_ms_per_image: float | None = None  # one forward + backward, timed in this process (run/speed.py)

    @property
    def floor_seconds(self) -> float | None:
        """The attribution floor: the passes the run computed x the forward+backward time of one image."""
        return None if self.floor_ms_per_image is None else self.passes * self.floor_ms_per_image / 1000.0


class Recorder:
    """Takes each finished task (``done``), stores what it produced, and merges results as groups complete."""

    def __init__(self, report: RunReport, registry: Registry, plan: Plan, context: TaskContext, shard_size: int,
                 log: Callable[[str], None]):
        self.report, self.registry, self.plan, self.context, self.log = report, registry, plan, context, log
        self.shard_size = shard_size
        self.open = {key: 0 for key in plan.members}  # tasks not yet in, per (check, group)
        for task in plan.tasks:
            for check in task.checks:
                self.open[(check, task.group)] += 1
        report.reused += plan.reused
        for name, checks in plan.not_applicable.items():
            report.not_applicable.setdefault(name, set()).update(checks)

    def merge_complete(self) -> None:
        """Merge every (check, group) that has no task (all its shards were stored before this run)."""
        for key, count in self.open.items():
            if count == 0:
                self._merge(*key)

    def done(self, task: Task, outcome: dict) -> dict[str, str]:
        """Record one finished task: ``outcome`` from ``compute.execute``, or ``{"error"}`` where the executor
        could not run it; merge each (check, group) whose last task this was. The members' statuses."""
        self._time(task, outcome)
        whole = task.check in self.plan.whole
        if "error" in outcome:
            self._fail(task, outcome["error"], whole)
        for name, record in outcome.get("records", {}).items():
            self.store(task.check, name, record)
        for check in task.checks:
            self.open[(check, task.group)] -= 1
            if self.open[(check, task.group)] == 0 and not whole:
                self._merge(check, task.group)
        return outcome.get("statuses", {})

    def _time(self, task: Task, outcome: dict) -> None:
        """Seconds per check (a shared pass's maps and scoring apart where the executor measured them), passes."""
        self.report.passes += int(outcome.get("passes", 0))
        self.report.method_seconds += float(outcome.get("method_seconds", 0.0))
        self.report.task_seconds += float(outcome.get("seconds", 0.0))
        for key, seconds in outcome.get("timings", {"+".join(task.checks): outcome.get("seconds", 0.0)}).items():
            self.report.seconds[key] = self.report.seconds.get(key, 0.0) + seconds

    def _fail(self, task: Task, error: str, whole: bool) -> None:
        """Every member of a task the executor could not run fails on its shard (or, run whole, on the check)."""
        for name in task.names:
            record = {"status": "failed", "error": error, "plugin": self.registry.provenance(name)}
            if whole:
                self.store(task.check, name, record)
                continue
            for check in task.checks:
                params = self.context.params[check]
                stored = self.context.shards.get(name, check, task.start, task.stop, params, record["plugin"])
                if stored is None or stored["status"] == "failed":
                    self.context.shards.put(name, check, task.start, task.stop, record, params)

    def _merge(self, check: str, group: int) -> None:
        """Store the result of each member of ``group`` on the per-image ``check`` whose shards are all in."""
        if check in self.plan.whole:
            return
        for name in self.plan.members[(check, group)]:
            record = merge(name, check, self.context, self.shard_size)
            if record is not None:
                self.store(check, name, record)

    def store(self, check: str, name: str, record: dict) -> None:
        """Store one (method, check) record (ok, n/a or failed) and note it in the report."""
        if record["status"] == "n/a":
            self.report.not_applicable.setdefault(name, set()).add(check)
        elif record["status"] == "failed":
            self.report.failures[name] = record["error"]
            self.log(f"FAILED {name} on {check}: {record['error']}")
        self.report.store.put(name, check, record, self.context.params[check])
        self.report.computed.append((name, check))
