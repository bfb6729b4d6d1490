"""Method groups: the methods computed together on each batch, validated and fault-isolated.

Methods declaring one ``shared_key`` form one group and share one pass per batch (``attribute_shared``, given the
group's method objects); every other method is a group of its own.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Mapping, Sequence

import torch

from ..errors import MethodError, NotApplicable, UserError, exception_line
from ..methods import Method, validate_maps
from .isolation import AttributeGuard, ModelGuard, TorchState
from .noise import seeded_rows
from .timeouts import MethodTimeout, time_limit

if TYPE_CHECKING:  # pragma: no cover
    from ..models.wrapper import ModelWrapper


def group_by_shared_pass(names: list[str], methods: Mapping[str, Method]) -> list[list[str]]:
    """Methods with the same ``shared_key`` run as one group (one pass per batch); others alone."""
    groups: dict[object, list[str]] = {}
    for name in names:
        key = methods[name].shared_key or ("alone", name)
        groups.setdefault(key, []).append(name)
    return list(groups.values())


class MethodGroup:
    """Methods computed together on each batch (those sharing ``shared_key`` share one pass).

    Calling the group returns ``{name: maps}`` for its active methods. A method that raises or
    returns an invalid map is recorded in ``failures`` and dropped from later calls, so one
    broken method never stops the others; one that raises ``NotApplicable`` is recorded in
    ``not_applicable`` (shown as "n/a", neither a failure nor a number) and dropped likewise.

    Isolation: every call gets the model in its reference state and must leave it so. After each
    call a ``ModelGuard`` names what changed (weights, buffers, hooks, flags), an ``AttributeGuard`` what changed
    of the wrapper, a ``TorchState`` what changed of torch's global state (settings, patched torch.nn classes and
    functions); the methods of that call fail with that reason and everything is put back, so the other methods'
    results are a clean run's. A method that raises ``SystemExit`` fails alone; KeyboardInterrupt stops the run.
    A check that changes a model on purpose between calls (randomisation) says so: ``accept_changes``.
    ``timeout`` (seconds, per method over the whole check) fails a method that runs longer.
    """

    def __init__(
        self, methods: Sequence[Method], model: "ModelWrapper", timeout: float | None = None,
        guard: ModelGuard | None = None,
    ):
        self.methods = {m.name: m for m in methods}
        self.model = model
        self.failures: dict[str, str] = {}
        self.not_applicable: dict[str, str] = {}
        self.timeout = timeout
        self.elapsed: dict[str, float] = {}
        self.passes = 0  # forward+backward passes per image computed, summed: the run's attribution floor counts them
        self.seconds = 0.0  # seconds spent inside the methods' calls (the rest of a check's time is its scoring)
        # ``guard``: the run's one reference of ``model`` (so no group takes a damaged model for clean)
        self.guards: dict[int, ModelGuard] = {id(model.network): guard} if guard is not None else {}

    @property
    def active(self) -> list[str]:
        return [name for name in self.methods if name not in self.failures and name not in self.not_applicable]

    def not_applicable_all(self, reason: str) -> None:
        """Mark every active method n/a on the running check with ``reason`` (a check that cannot run on this model)."""
        for name in self.active:
            self.not_applicable[name] = reason

    def guard(self, model: "ModelWrapper") -> ModelGuard:
        """The guard of ``model``'s network, made at its first use."""
        key = id(model.network)
        if key not in self.guards:
            self.guards[key] = ModelGuard(model.network)
        return self.guards[key]

    def accept_changes(self, model: "ModelWrapper") -> None:
        """The check itself changed ``model`` (re-initialised a layer): its current state is the new reference."""
        self.guard(model).refresh()

    def _fail(self, names: Sequence[str], reason: str) -> None:
        for name in names:
            self.failures[name] = f"method '{name}' failed: {reason}"

    def __call__(
        self, inputs: torch.Tensor, targets: torch.Tensor, model: "ModelWrapper | None" = None,
        seeds: Sequence[int] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Maps ``[B,H,W]`` of every active method for ``targets`` (optionally on another model).

        ``seeds``: one per row, naming the map asked for (``noise.map_seeds``); a method's ``noise.rand`` /
        ``noise.randn`` draw each row from its seed, so a map's noise does not depend on its batch.
        """
        model = model or self.model
        guard = self.guard(model)
        maps: dict[str, torch.Tensor] = {}
        pending = self.active
        while pending:
            leader = self.methods[pending[0]]
            key = leader.shared_key
            names = [n for n in pending if key is not None and self.methods[n].shared_key == key] or [leader.name]
            pending = [n for n in pending if n not in names]
            state, attributes = TorchState(guard.classes), AttributeGuard(model)
            out = self._compute(names, model, inputs, targets, seeds)
            if self._isolated(names, guard, state, attributes) and out is not None:
                self._collect(names, out, inputs, maps)
        return maps

    def _compute(self, names: list[str], model: "ModelWrapper", inputs: torch.Tensor, targets: torch.Tensor,
                 seeds: Sequence[int] | None) -> dict | None:
        """One call for ``names`` (a shared pass, or one method alone): its outputs, or None where it failed."""
        leader = self.methods[names[0]]
        budget = None if self.timeout is None else self.timeout - max(self.elapsed.get(n, 0.0) for n in names)
        started = time.perf_counter()
        try:
            with torch.enable_grad(), time_limit(budget), model.precision.active(inputs.device), \
                    seeded_rows(seeds):
                out = leader.attribute_shared(model, inputs, targets, [self.methods[name] for name in names]) \
                    if leader.shared_key else {leader.name: leader.attribute(model, inputs, targets)}
            if not model.precision.is_default:  # maps are compared in float32 whatever the compute precision
                out = {name: value.float() if torch.is_tensor(value) and value.is_floating_point() else value
                       for name, value in out.items()}
        except NotApplicable as exc:  # the reason alone: the traceback holds the method's frames and their tensors
            out = {name: NotApplicable(exc.reason) for name in names}
        except MethodTimeout:
            out = None
            self._fail(names, f"timed out (over {self.timeout:g} s on this check)")
        except (Exception, SystemExit) as exc:  # a plugin's bug (or its exit) must not stop the run
            out = None
            self._fail(names, f"raised {exception_line(exc)}")
        finally:
            took = time.perf_counter() - started
            for name in names:
                self.elapsed[name] = self.elapsed.get(name, 0.0) + took
            self.seconds += took
            self.passes += len(inputs) * (1 if leader.shared_key else max(1, int(getattr(leader, "passes", 1))))
        return out

    def _isolated(self, names: list[str], guard: ModelGuard, state: TorchState, attributes: AttributeGuard) -> bool:
        """Whether the call left the model, its wrapper and torch's global state alone; else its methods fail, named.

        Whatever changed is put back; a model that cannot be restored stops the run.
        """
        changed = [(prefix, watcher, watcher.changes()) for prefix, watcher in (
            ("changed the model: ", guard), ("changed the model wrapper: ", attributes),
            ("changed torch's global state: ", state))]
        reasons = [prefix + "; ".join(found) for prefix, _, found in changed if found]
        if not reasons:
            return True
        reason = "; ".join(reasons)
        try:
            for _, watcher, found in reversed(changed):  # torch's settings first: the model is restored under them
                if found:
                    watcher.restore()
        except Exception as exc:  # noqa: BLE001 - a model we cannot restore must stop the run
            raise UserError(f"method '{names[0]}' {reason}, and it could not be undone ({exception_line(exc)}); "
                            "leave that plugin out (SALIENCY_BENCH_PLUGINS) and rerun: finished results are kept"
                            ) from None
        self._fail([n for n in names if n not in self.failures], reason)
        return False

    def _collect(self, names: list[str], out: dict, inputs: torch.Tensor, maps: dict[str, torch.Tensor]) -> None:
        """Validate each method's map into ``maps``; a missing or invalid one fails, an undefined one is n/a."""
        for name in names:
            if isinstance(out.get(name), NotApplicable):  # a shared pass declares one of its maps undefined
                self.not_applicable[name] = out[name].reason
                continue
            try:
                if name not in out:
                    raise MethodError(name, "shared computation returned no map for it")
                maps[name] = validate_maps(name, out[name], inputs)
            except MethodError as exc:
                self.failures[name] = str(exc)
