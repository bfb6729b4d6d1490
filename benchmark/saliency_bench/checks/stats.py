"""Seeded percentile-bootstrap confidence intervals over images, and the metric dicts every check returns."""
from __future__ import annotations

from typing import Callable

import numpy as np

DIGITS = 6
Statistic = Callable[[np.ndarray, np.ndarray], np.ndarray]


def rounded(value: float | None) -> float | None:
    """A plain float rounded to 6 decimals (deterministic JSON), or None for an undefined value."""
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), DIGITS)


def resample_weights(n: int, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """``[n_boot, n]`` counts of how often each of ``n`` rows is drawn, from ONE seeded ``(n_boot, n)`` index matrix."""
    indices = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    offsets = np.arange(n_boot)[:, None] * n
    return np.bincount((indices + offsets).ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The mean of ``values`` ``[n]`` under each resample's counts ``weights`` ``[n_boot, n]``."""
    return weights @ values / weights.sum(axis=1)


def bootstrap_ci(
    values: np.ndarray,
    statistic: Statistic | None = None,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float | None, float | None]:
    """Percentile bootstrap CI (Efron & Tibshirani 1993) of ``statistic(values, weights)`` over images.

    ``values`` has one row per image (per-image values ``[n]`` or per-image rows ``[n, ...]``);
    ``statistic`` maps them and the resample counts ``[n_boot, n]`` to ``[n_boot]`` statistics
    (default: the mean). Resamples whose statistic is undefined (NaN) are left out.
    """
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return None, None
    weights = resample_weights(len(values), n_boot, seed)
    stats = (statistic or weighted_mean)(values, weights)
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return None, None
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return rounded(low), rounded(high)


def metric(value: float | None, ci: tuple[float | None, float | None], n: int, **extra) -> dict:
    """One metric entry: ``{"value", "ci_low", "ci_high", "n", **extra}`` with plain rounded numbers."""
    entry = {"value": rounded(value), "ci_low": rounded(ci[0]), "ci_high": rounded(ci[1]), "n": int(n)}
    entry.update({key: (rounded(val) if isinstance(val, float) else val) for key, val in extra.items()})
    return entry


def summarize(values, *, seed: int = 0, n_boot: int = 1000, level: float = 0.95) -> dict:
    """Mean of the finite per-image ``values`` with its bootstrap CI; NaNs (undefined) are dropped and counted."""
    values = np.asarray(values, dtype=float).ravel()
    finite = values[np.isfinite(values)]
    dropped = int(values.size - finite.size)
    if finite.size == 0:
        return metric(None, (None, None), 0, dropped=dropped)
    ci = bootstrap_ci(finite, n_boot=n_boot, level=level, seed=seed)
    return metric(float(finite.mean()), ci, finite.size, dropped=dropped)


def bootstrap_params(params: dict) -> dict:
    """The bootstrap keyword arguments (``n_boot``, ``level``, ``seed``) from a check's parameters."""
    return {"n_boot": int(params["bootstrap_samples"]), "level": float(params["ci_level"]), "seed": int(params["seed"])}
