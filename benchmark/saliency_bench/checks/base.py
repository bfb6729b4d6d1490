"""The check contract, and MethodGroup: the methods a check runs together, validated and fault-isolated."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from ..errors import MethodError, NotApplicable, UserError, exception_line
from ..harness.isolation import ModelGuard
from ..harness.timeouts import MethodTimeout, time_limit
from ..methods import GroupNames, Method, validate_maps
from ..harness.noise import seeded_rows
from .stats import Statistic

if TYPE_CHECKING:  # pragma: no cover
    from ..models.wrapper import ModelWrapper
    from ..harness.suite import Suite


class Check:
    """A sanity check. ``run`` streams the suite's batches once for a whole MethodGroup.

    It returns ``{method_name: result}`` for every method still active in the group at the end,
    where ``result`` is JSON-able: ``{"metrics": {metric: {"value", "ci_low", "ci_high", "n", ...}},
    "headline": metric, ...extra}``.
    """

    name: str = ""
    requires_masks: bool = False
    description: str = ""
    # Which way each metric improves: "higher" or "lower". `check` calls only a change in the bad direction a
    # regression; a metric missing here has no direction, so any change beyond the tolerance counts against it.
    better: dict[str, str] = {}
    # What the board shows of the check (checks/presentation.py): its place among the checks, its summary
    # columns, its verdict rules, a paragraph on how to read it, and the seed paper's values where it has them
    # ({method: value} under the key ``paper_key`` of a method's row, shown scaled by ``paper_scale``).
    order: int = 100
    columns: tuple = ()
    rules: tuple = ()
    how_to_read: str = ""
    combine: str = "mean over images"  # how its per-image values make the headline (stated on the board)
    paper: dict = {}
    paper_key: str = ""
    paper_label: str = ""
    paper_scale: float = 1.0
    references_note: str = ""  # how to read the dataset reference points the check reports, if any
    # Per metric, ``statistic(data, weights [B, n]) -> [B]``: the metric as a function of its per-image data
    # (``image_data``) under image counts; all-ones weights give the metric's value. Paired differences between
    # methods resample images through it (paired.py); the board's per-image values file holds the data.
    statistics: dict[str, Statistic] = {}

    def draw_figures(self, board: dict, folder) -> list[str]:
        """Figures of this check drawn from the board alone, as paths relative to ``folder`` (default: none)."""
        return []

    def default_params(self, suite: "Suite") -> dict:
        """Parameters derived from the model and dataset (recorded with every result)."""
        return {}

    # The per-image contract. A check that implements ``run_images`` and ``summarize`` is run per image shard (by
    # any executor), stored image by image, merged, and compared image by image (``statistics``); its
    # ``run`` is then their composition. A check that implements only ``run`` runs whole, in one task.

    def run_images(self, suite: "Suite", group: "MethodGroup", params: dict) -> dict[str, dict[str, np.ndarray]]:
        """``{method: {name: array}}`` for every method active at the end: arrays with one row per image of the
        suite (``suite.num_images``, in order); the values each result is computed from, nothing else.

        A check of the shared-map contract (below) need not implement it: it is its maps' pass run alone.
        """
        if self.shares_maps:
            from .shared_maps import run_shared

            return run_shared(suite, group, [(self, params)])[self.name]
        raise NotImplementedError

    # The shared-map contract (optional, with ``summarize``). A check whose only model calls are maps of the unchanged
    # model, for (image, class) pairs it can name per batch, declares them and scores maps it is given; the harness
    # then computes each map once per method for every such check of a run (checks/shared_maps.py).

    def map_targets(self, suite: "Suite", batch: dict, params: dict) -> torch.Tensor:
        """``[B, K]`` bool: the (image, class) maps of the unchanged model this check scores on ``batch``."""
        raise NotImplementedError

    def score_maps(self, suite: "Suite", batch: dict, maps, params: dict) -> dict[str, dict[str, np.ndarray]]:
        """``{method: {name: array with a row per image of the batch}}`` for every method of ``maps.names``
        (``shared_maps.BatchMaps``: ``maps.of(name, images, classes)`` gives the asked-for maps)."""
        raise NotImplementedError

    @property
    def shares_maps(self) -> bool:
        """Whether the check implements the shared-map contract (its maps can be computed with other checks')."""
        return type(self).map_targets is not Check.map_targets

    def summarize(self, values: dict[str, np.ndarray], params: dict, suite: "Suite") -> dict:
        """One method's result from its per-image values over all the run's images (the merged shards)."""
        raise NotImplementedError

    def image_data(self, values: dict[str, np.ndarray], params: dict) -> dict[str, np.ndarray]:
        """Per metric of ``statistics``, the per-image data (one row per image) that the metric is the statistic of."""
        return {}

    @property
    def per_image(self) -> bool:
        """Whether the check implements the per-image contract (and so can be sharded and paired)."""
        return type(self).run_images is not Check.run_images or self.shares_maps

    def run(self, suite: "Suite", group: "MethodGroup", params: dict) -> dict[str, dict]:
        """Every active method's result on the suite's images (per-image checks: ``summarize`` of ``run_images``)."""
        if not self.per_image:
            raise NotImplementedError
        return {name: self.summarize(values, params, suite)
                for name, values in self.run_images(suite, group, params).items()}


class MethodGroup:
    """Methods computed together on each batch (those sharing ``shared_key`` share one pass).

    Calling the group returns ``{name: maps}`` for its active methods. A method that raises or
    returns an invalid map is recorded in ``failures`` and dropped from later calls, so one
    broken method never stops the others; one that raises ``NotApplicable`` is recorded in
    ``not_applicable`` (shown as "n/a", neither a failure nor a number) and dropped likewise.

    Isolation: every call gets the model in its reference state and must leave it so. After each
    call a ``ModelGuard`` names what changed (weights, buffers, hooks, flags); the methods of that call
    fail with that reason and the model is restored, so the other methods' results are a clean run's.
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
        # ``guard``: the run's one reference of ``model`` (so no group takes a damaged model for clean)
        self.guards: dict[int, ModelGuard] = {id(model.network): guard} if guard is not None else {}

    @property
    def active(self) -> list[str]:
        return [name for name in self.methods if name not in self.failures and name not in self.not_applicable]

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
            budget = None if self.timeout is None else self.timeout - max(self.elapsed.get(n, 0.0) for n in names)
            started = time.perf_counter()
            try:
                with torch.enable_grad(), time_limit(budget), model.precision.active(inputs.device), \
                        seeded_rows(seeds):
                    out = leader.attribute_shared(model, inputs, targets, GroupNames(
                        [self.methods[name] for name in names])) if key else {
                        leader.name: leader.attribute(model, inputs, targets)
                    }
                if not model.precision.is_default:  # maps are compared in float32 whatever the compute precision
                    out = {name: value.float() if torch.is_tensor(value) and value.is_floating_point() else value
                           for name, value in out.items()}
            except NotApplicable as exc:
                out = {name: exc for name in names}
            except MethodTimeout:
                out = None
                self._fail(names, f"timed out (over {self.timeout:g} s on this check)")
            except Exception as exc:  # a plugin's bug must not stop the run
                out = None
                self._fail(names, f"raised {exception_line(exc)}")
            finally:
                for name in names:
                    self.elapsed[name] = self.elapsed.get(name, 0.0) + time.perf_counter() - started
            changed = guard.changes()
            if changed:
                reason = "changed the model: " + "; ".join(changed)
                try:
                    guard.restore()
                except Exception as exc:  # noqa: BLE001 - a model we cannot restore must stop the run
                    raise UserError(f"method '{names[0]}' {reason}, and the model could not be restored "
                                    f"({exception_line(exc)}); leave that plugin out (SALIENCY_BENCH_PLUGINS) and "
                                    "rerun: finished results are kept") from None
                self._fail([n for n in names if n not in self.failures], reason)
                continue
            if out is None:
                continue
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
        return maps
