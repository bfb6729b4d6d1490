"""The check contract, in three explicit kinds (docs/writing-a-check.md).

- ``Check``: a check run whole on a method group (``run``): one task, no per-image values.
- ``PerImageCheck``: ``run_images`` gives per-image values and ``summarize`` turns them into a result; the harness
  shards its images, stores each shard, merges, and pairs methods image by image (``statistics``).
- ``SharedMapsCheck``: a per-image check whose only model calls are maps of the unchanged model: it names the
  (image, class) maps it needs per batch (``map_targets``) and scores maps it is given (``score_maps``); the
  harness computes each map once for every such check of a run (checks/shared_maps.py).

Every kind declares its parameters once (``parameters``: ``Param`` with default, type and range) and what the
board shows (columns, verdict rules, how to read it, its figures).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from .params import Param, default_values
from .stats import Statistic

if TYPE_CHECKING:  # pragma: no cover
    from ..harness.group import MethodGroup
    from ..harness.suite import Suite


class Check:
    """A sanity check run whole: ``run`` streams the suite's batches once for a whole ``MethodGroup``.

    It returns ``{method_name: result}`` for every method still active in the group at the end, where ``result``
    is JSON-able: ``{"metrics": {metric: {"value", "ci_low", "ci_high", "n", ...}}, "headline": metric, ...}``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    requires_masks: ClassVar[bool] = False
    # Runs every method many times per image (once per cascade step and weight draw, say): the dataset may give it
    # fewer images by default (``Dataset.images_for_costly_checks``).
    costly: ClassVar[bool] = False
    per_image: ClassVar[bool] = False  # PerImageCheck: sharded, stored image by image, paired
    shares_maps: ClassVar[bool] = False  # SharedMapsCheck: its maps computed once with other such checks'
    # Every parameter with its default (a value, or ``suite -> value``), type and range (checks/params.py); the
    # harness adds ``images``. A bad --param value is refused before anything runs.
    parameters: ClassVar[dict[str, Param]] = {}
    # Which way each metric improves: "higher" or "lower". `check` calls only a change in the bad direction a
    # regression; a metric missing here has no direction, so any change beyond the tolerance counts against it.
    better: ClassVar[dict[str, str]] = {}
    # What the board shows (checks/presentation.py): its place among the checks, its summary columns, its verdict
    # rules, a paragraph on how to read it, and the seed paper's values where it has them ({method: value} under
    # ``paper_key`` of a method's row, shown scaled by ``paper_scale``).
    order: ClassVar[int] = 100
    columns: ClassVar[tuple] = ()
    rules: ClassVar[tuple] = ()
    how_to_read: ClassVar[str] = ""
    combine: ClassVar[str] = "mean over images"  # how its per-image values make the headline (stated on the board)
    paper: ClassVar[dict] = {}
    paper_key: ClassVar[str] = ""
    paper_label: ClassVar[str] = ""
    paper_scale: ClassVar[float] = 1.0
    references_note: ClassVar[str] = ""  # how to read the dataset reference points the check reports, if any

    @staticmethod
    def upgrade_params(recorded: dict) -> dict:
        """Parameters recorded by an earlier version of the check, in today's names (a board replayed by ``check``)."""
        return recorded

    def default_params(self, suite: "Suite") -> dict:
        """Every declared parameter's default for this suite (recorded with every result)."""
        return default_values(self.parameters, suite)

    def run(self, suite: "Suite", group: "MethodGroup", params: dict) -> dict[str, dict]:
        """Every active method's result on the suite's images."""
        raise NotImplementedError

    def draw_figures(self, board: dict, folder) -> list[str]:
        """Figures of this check drawn from the board alone, as paths relative to ``folder`` (default: none)."""
        return []

    def picture(self, view, image: int, row, score: float, worst: bool) -> dict | None:
        """How the board's site shows one of the images where a method does worst or best on this check (default:
        not pictured): ``{"caption", "tiles"}``, each tile ``view.tile(view.ask(image, class), label, masks, peak)``.
        ``view`` (board/site/evidence.py) also gives ``logits(image)``, ``mask(image)`` and ``names(classes)``;
        ``row`` is the image's per-image data of the metric its verdict reads."""
        return None

    def picture_model(self, suite: "Suite", params: dict):
        """The model whose maps ``picture`` shows beside the trained one's (``view.ask(..., other=True)``; default
        none): the randomisation check's fully randomised model, say."""
        return None

    def picture_rows(self, params: dict, labels, trials, rows: int):
        """The dataset index of each of the check's per-image rows (default: rows are images 0 .. rows-1)."""
        import numpy

        return numpy.arange(rows)


class PerImageCheck(Check):
    """A check whose result is a function of per-image values: sharded, stored image by image, merged, paired."""

    per_image = True
    # Per metric, ``statistic(data, weights [B, n]) -> [B]``: the metric as a function of its per-image data
    # (``image_data``) under image counts; all-ones weights give the metric's value. Paired differences between
    # methods resample images through it (board/paired.py); the board's values file holds the data.
    statistics: ClassVar[dict[str, Statistic]] = {}

    def run_images(self, suite: "Suite", group: "MethodGroup", params: dict) -> dict[str, dict[str, np.ndarray]]:
        """``{method: {name: array}}`` for every method active at the end: arrays with one row per image of the
        suite (``suite.num_images``, in order); the values each result is computed from, nothing else."""
        raise NotImplementedError

    def summarize(self, values: dict[str, np.ndarray], params: dict, suite: "Suite") -> dict:
        """One method's result from its per-image values over all the run's images (the merged shards)."""
        raise NotImplementedError

    def image_data(self, values: dict[str, np.ndarray], params: dict) -> dict[str, np.ndarray]:
        """Per metric of ``statistics``, the per-image data (one row per image) that the metric is the statistic of."""
        return {}

    def run(self, suite: "Suite", group: "MethodGroup", params: dict) -> dict[str, dict]:
        """``summarize`` of ``run_images``: every active method's result on the suite's images."""
        return {name: self.summarize(values, params, suite)
                for name, values in self.run_images(suite, group, params).items()}


class SharedMapsCheck(PerImageCheck):
    """A per-image check that only scores maps of the unchanged model, each computed once for all such checks."""

    shares_maps = True

    def map_targets(self, suite: "Suite", batch: dict, params: dict) -> torch.Tensor:
        """``[B, K]`` bool: the (image, class) maps of the unchanged model this check scores on ``batch``."""
        raise NotImplementedError

    def score_maps(self, suite: "Suite", batch: dict, maps, params: dict) -> dict[str, dict[str, np.ndarray]]:
        """``{method: {name: array with a row per image of the batch}}`` for every method of ``maps.names``
        (``shared_maps.BatchMaps``: ``maps.of(name, images, classes)`` gives the asked-for maps)."""
        raise NotImplementedError

    def run_images(self, suite: "Suite", group: "MethodGroup", params: dict) -> dict[str, dict[str, np.ndarray]]:
        """Its maps' pass run alone (checks/shared_maps.py)."""
        from .shared_maps import run_shared

        return run_shared(suite, group, [(self, params)])[self.name]
