"""Which images show a method at its worst and its best on each check, from its stored per-image values alone.

Each check's per-image score is the per-image data of the metric its verdict reads (the headline where the verdict
reads a derived value): for the pointing games the share of an image's trial classes hit, for a similarity the
value (the mean over weight draws). The worst images are those on the bad side of the metric's direction
(``Check.better``); undefined values are never picked; ties go to the lower image index.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def scored_metric(check, result: Mapping) -> str | None:
    """The metric an image is ranked by on ``check``: the one its first verdict rule reads, else the headline."""
    for rule in getattr(check, "rules", ()):
        metric = getattr(rule.read, "metric", None)
        if getattr(rule.read, "check", None) == check.name and metric in check.statistics:
            return metric
    headline = result.get("headline")
    return headline if headline in check.statistics else None


def image_scores(data: np.ndarray) -> np.ndarray:
    """One score per image row: hits/trials of ``[n, 2, K]`` counts, the finite mean of ``[n, D]``, else the value."""
    data = np.asarray(data, dtype=float)
    if data.ndim == 3 and data.shape[1] == 2:
        hits, trials = data[:, 0].sum(1), data[:, 1].sum(1)
        return np.divide(hits, trials, out=np.full(len(data), np.nan), where=trials > 0)
    if data.ndim == 2:
        finite = np.isfinite(data)
        sums, counts = np.where(finite, data, 0.0).sum(1), finite.sum(1)
        return np.divide(sums, counts, out=np.full(len(data), np.nan), where=counts > 0)
    return data.reshape(len(data))


def extremes(scores: np.ndarray, k: int, worse: str) -> tuple[list[int], list[int]]:
    """Rows of the ``k`` worst and the ``k`` best finite scores (``worse``: 'lower' or 'higher' is worse)."""
    rows = np.flatnonzero(np.isfinite(scores))
    key = scores[rows] if worse == "lower" else -scores[rows]
    worst = [int(r) for r in rows[np.lexsort((rows, key))][:k]]
    best = [int(r) for r in rows[np.lexsort((rows, -key))] if int(r) not in worst][:k]
    return worst, best


def picks(checks: Sequence, board: dict, name: str, values: Mapping, k: int) -> dict[str, dict]:
    """Per check with per-image values: the metric, and the worst and best rows with their scores."""
    out = {}
    results = board["methods"][name].get("results", {})
    for check in checks:
        result = results.get(check.name) or {}
        metric = scored_metric(check, result) if result.get("status") == "ok" else None
        data = values.get(name, {}).get(check.name, {}).get(metric) if metric else None
        if data is None:
            continue
        scores = image_scores(data)
        worse = "lower" if check.better.get(metric) == "higher" else "higher"
        worst, best = extremes(scores, k, worse)
        out[check.name] = {"metric": metric, "worse": worse, "rows": len(scores),
                           "worst": [(r, float(scores[r])) for r in worst],
                           "best": [(r, float(scores[r])) for r in best]}
    return out
