"""Each map computed once: per batch, the union of the (image, class) maps that the selected checks ask for.

A check that only reads maps of the unchanged model declares, per batch, which (image, class) maps it needs
(``Check.map_targets``) and scores maps it is given (``Check.score_maps``). ``run_shared`` streams the suite
once for several such checks: it computes the union of their targets in chunks of ``suite.batch_size`` maps,
in (image, class) order, each row seeded by its map (``noise.map_seeds``), and hands every check the same maps.
A map depends only on (model, image, class): one check run alone (``Check.run_images``) gives the same bytes
as the same check sharing its maps with others, which ``tests/test_shared_maps.py`` holds.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from ..harness.noise import map_seeds

if TYPE_CHECKING:  # pragma: no cover
    from ..harness.suite import Suite
# checks.base imports this module (``Check.run_images``), so ``Check`` and ``MethodGroup`` are named, not imported

STREAM = 0  # the noise stream of maps of the unchanged model (cascading randomisation uses others)


class BatchMaps:
    """The maps of one batch: per method ``[P, H, W]`` for its P (image, class) pairs, looked up by pair."""

    def __init__(self, slots: torch.Tensor, maps: dict[str, torch.Tensor]):
        self.slots = slots  # [B, K] long: the row of each computed pair in ``maps[name]``, -1 elsewhere
        self.maps = maps

    @property
    def names(self) -> list[str]:
        """The methods whose maps are all here (a method that failed on this batch is not)."""
        return list(self.maps)

    def of(self, name: str, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """``[n, H, W]``: method ``name``'s maps of the given (image row, class) pairs, which must have been asked for."""
        rows = self.slots[images, classes]
        if bool((rows < 0).any()):
            raise KeyError("a map that no check asked for (Check.map_targets) was looked up")
        return self.maps[name][rows]


def batch_logits(suite: "Suite", batch: dict) -> torch.Tensor:
    """The model's logits ``[B, K]`` of a batch, computed once and kept in the batch for every check of the pass."""
    if "logits" not in batch:
        with torch.no_grad():
            batch["logits"] = suite.model(batch["inputs"])
    return batch["logits"]


def compute_maps(suite: "Suite", group, batch: dict, needed: torch.Tensor) -> BatchMaps:
    """Every active method's maps (of the ``MethodGroup``) of the ``needed`` [B, K] (image, class) pairs, in chunks of
    ``suite.batch_size``."""
    images, classes = needed.nonzero(as_tuple=True)  # row-major: image order, then class order
    slots = torch.full(needed.shape, -1, dtype=torch.long, device=needed.device)
    slots[images, classes] = torch.arange(len(images), device=needed.device)
    parts: dict[str, list[torch.Tensor]] = {}
    chunks = 0
    for start in range(0, len(images), suite.batch_size):
        img, cls = images[start : start + suite.batch_size], classes[start : start + suite.batch_size]
        chunks += 1
        out = group(batch["inputs"][img], cls, seeds=map_seeds(suite.seed, batch["index"][img], cls, STREAM))
        for name, maps in out.items():
            parts.setdefault(name, []).append(maps)
    height, width = batch["inputs"].shape[-2:]
    empty = torch.zeros((0, height, width), device=needed.device)
    complete = {name: (torch.cat(parts[name]) if chunks else empty) for name in group.active
                if chunks == 0 or len(parts.get(name, ())) == chunks}
    return BatchMaps(slots, complete)


SHARED_MAPS = "shared maps"  # the key of the maps' own seconds in ``run_shared``'s timings


def run_shared(suite: "Suite", group, checks: Sequence[tuple[object, dict]],
               timings: dict[str, float] | None = None) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """``{check: {method: {name: array}}}`` of every check's per-image values, its maps computed once for all of them.

    ``group``: a ``MethodGroup``; ``checks``: ``(Check, parameters)`` pairs.

    Per batch: the union of the checks' ``map_targets``, computed once; then each check's ``score_maps``. A method
    that fails (or is n/a) on any batch is left out of every check's values, as in a check run alone. ``timings``
    adds up the seconds of the maps (``SHARED_MAPS``: reading data, targets, maps) and of each check's scoring.
    """
    timings = {} if timings is None else timings
    rows: dict[str, dict[str, dict[str, list[np.ndarray]]]] = {check.name: {} for check, _ in checks}
    clock = time.perf_counter()
    for batch in suite.batches(desc="+".join(check.name for check, _ in checks)):
        needed = torch.zeros(batch["inputs"].shape[0], suite.model.num_classes, dtype=torch.bool,
                             device=batch["inputs"].device)
        for check, params in checks:
            needed |= check.map_targets(suite, batch, params)
        maps = compute_maps(suite, group, batch, needed)
        clock = _lap(timings, SHARED_MAPS, clock)
        for check, params in checks:
            for name, values in check.score_maps(suite, batch, maps, params).items():
                for key, value in values.items():
                    rows[check.name].setdefault(name, {}).setdefault(key, []).append(value)
            clock = _lap(timings, check.name, clock)
    return {check.name: {name: {key: np.concatenate(parts) for key, parts in rows[check.name][name].items()}
                         for name in group.active if name in rows[check.name]}
            for check, _ in checks}


def _lap(timings: dict[str, float], key: str, since: float) -> float:
    """Add the seconds since ``since`` to ``timings[key]``; the time now."""
    now = time.perf_counter()
    timings[key] = timings.get(key, 0.0) + now - since
    return now

