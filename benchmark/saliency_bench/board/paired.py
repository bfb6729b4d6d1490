"""Paired differences: two methods (or a rerun and its recorded row) scored on the same images.

The difference of a metric between A and B is ``statistic(A) - statistic(B)`` on the same images; its
interval is a percentile bootstrap that resamples images jointly for both (the paired bootstrap, Efron &
Tibshirani 1993, ch. 13), so the variation between images, shared by A and B, cancels and a small real
difference is told from noise where the unpaired intervals of the board overlap.
"""
from __future__ import annotations

import numpy as np

from ..checks.stats import Statistic, resample_weights, rounded


def paired_difference(statistic: Statistic, data_a: np.ndarray, data_b: np.ndarray, *, n_boot: int = 1000,
                      level: float = 0.95, seed: int = 0) -> dict:
    """``{"value", "ci_low", "ci_high", "n", "excludes_zero"}`` of ``statistic(data_a) - statistic(data_b)``.

    ``data_a`` and ``data_b`` hold one row per image, the same images in the same order. Resamples where
    either statistic is undefined are left out; an undefined difference has no interval.
    """
    data_a, data_b = np.asarray(data_a, dtype=float), np.asarray(data_b, dtype=float)
    if len(data_a) != len(data_b):
        raise ValueError(f"paired values need the same images: {len(data_a)} rows against {len(data_b)}")
    n = len(data_a)
    entry = {"value": None, "ci_low": None, "ci_high": None, "n": n, "excludes_zero": False}
    if n == 0:
        return entry
    everyone = np.ones((1, n))
    value = float(statistic(data_a, everyone)[0] - statistic(data_b, everyone)[0])
    weights = resample_weights(n, n_boot, seed)
    differences = statistic(data_a, weights) - statistic(data_b, weights)
    differences = differences[np.isfinite(differences)]
    entry["value"] = rounded(value)
    if differences.size and np.isfinite(value):
        tail = (1.0 - level) / 2.0
        low, high = np.quantile(differences, [tail, 1.0 - tail])
        entry.update(ci_low=rounded(low), ci_high=rounded(high))
        entry["excludes_zero"] = bool(entry["ci_low"] > 0 or entry["ci_high"] < 0)
    return entry


def reading(entry: dict, better: str | None) -> str:
    """How to read a paired difference A - B: ``better`` / ``worse`` (for A) when its interval excludes 0 on that
    side of the metric's direction, ``differs`` without a direction, else ``no clear difference``."""
    if not entry["excludes_zero"]:
        return "no clear difference"
    if better not in ("higher", "lower"):
        return "differs"
    return "better" if (entry["value"] > 0) == (better == "higher") else "worse"
