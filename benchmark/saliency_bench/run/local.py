"""Step 3 of a run, *execute*, here: the plan's tasks in order, in this process (the default executor)."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

from .compute import TaskContext, execute
from .plan import Task


class LocalExecutor:
    """Runs every task in this process, in the plan's order; a member that failed on a shard is not run on its
    group's later shards (its result fails anyway). Times a shared pass's maps and each check's scoring apart."""

    def run(self, tasks: Sequence[Task], context: TaskContext, done: Callable[[Task, dict], dict[str, str]]) -> None:
        given_up: dict[tuple[int, int], set[str]] = {}
        for task in tasks:
            dropped = given_up.setdefault((task.stage, task.group), set())
            task = replace(task, names=tuple(name for name in task.names if name not in dropped))
            if not task.names:
                done(task, {})
                continue
            timings = {} if len(task.checks) > 1 or context.registry.checks[task.check].obj.shares_maps else None
            outcome = execute(task, context, timings)
            statuses = done(task, {**outcome, "timings": timings} if timings else outcome)
            dropped.update(name for name, status in statuses.items() if status == "failed")
