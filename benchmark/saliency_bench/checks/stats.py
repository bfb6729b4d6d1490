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


def finite_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The mean of the finite ``values`` ``[n]`` under each resample's counts ``weights`` ``[B, n]`` (NaN if none)."""
    finite = np.isfinite(values)
    sums, counts = weights @ np.where(finite, values, 0.0), weights @ finite.astype(float)
    return np.divide(sums, counts, out=np.full(len(sums), np.nan), where=counts > 0)


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


def summarize(values, *, seed: int = 0, n_boot: int = 1000, level: float = 0.95, **extra) -> dict:
    """Mean of the finite per-image ``values`` with its bootstrap CI; NaNs (undefined) are dropped and counted."""
    values = np.asarray(values, dtype=float).ravel()
    finite = values[np.isfinite(values)]
    dropped = int(values.size - finite.size)
    if finite.size == 0:
        return metric(None, (None, None), 0, dropped=dropped, **extra)
    ci = bootstrap_ci(finite, n_boot=n_boot, level=level, seed=seed)
    return metric(float(finite.mean()), ci, finite.size, dropped=dropped, **extra)


def crossed_mean(data: np.ndarray, image_weights: np.ndarray, draw_weights: np.ndarray) -> np.ndarray:
    """Mean of the finite values of ``data`` ``[n, D]`` under image counts ``[B, n]`` and draw counts ``[B, D]``."""
    finite = np.isfinite(data)
    values = np.where(finite, data, 0.0)
    sums = np.einsum("bi,id,bd->b", image_weights, values, draw_weights)
    counts = np.einsum("bi,id,bd->b", image_weights, finite.astype(float), draw_weights)
    return np.divide(sums, counts, out=np.full(len(sums), np.nan), where=counts > 0)


def summarize_crossed(data, *, seed: int = 0, n_boot: int = 1000, level: float = 0.95, **extra) -> dict:
    """Mean of per-(image, draw) values ``[n, D]`` with a percentile CI that resamples images AND draws.

    A crossed bootstrap (images and weight draws resampled independently; Owen 2007, "The pigeonhole
    bootstrap"), so the interval covers the variation between random draws as well as between images.
    NaNs (undefined values) are left out and counted as ``dropped``; ``n`` counts images with a value.
    """
    data = np.asarray(data, dtype=float)
    data = data.reshape(len(data), data.shape[1] if data.ndim > 1 else 1)
    finite = np.isfinite(data)
    dropped, usable = int((~finite).sum()), int(finite.any(1).sum())
    if not finite.any():
        return metric(None, (None, None), 0, draws=data.shape[1], dropped=dropped, **extra)
    value = float(data[finite].mean())
    image_weights = resample_weights(len(data), n_boot, seed)
    draw_weights = resample_weights(data.shape[1], n_boot, seed + 1) if data.shape[1] > 1 else np.ones((n_boot, 1))
    stats = crossed_mean(data, image_weights, draw_weights)
    stats = stats[np.isfinite(stats)]
    tail = (1.0 - level) / 2.0
    ci = tuple(np.quantile(stats, [tail, 1.0 - tail])) if stats.size else (None, None)
    return metric(value, ci, usable, draws=data.shape[1], dropped=dropped, **extra)


def bootstrap_params(params: dict) -> dict:
    """The bootstrap keyword arguments (``n_boot``, ``level``, ``seed``) from a check's parameters."""
    return {"n_boot": int(params["bootstrap_samples"]), "level": float(params["ci_level"]), "seed": int(params["seed"])}
