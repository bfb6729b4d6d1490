"""Seeded percentile bootstrap and the metric entries every check returns."""
from __future__ import annotations

import numpy as np
import pytest

from saliency_bench.checks.stats import bootstrap_ci, metric, resample_weights, rounded, summarize


def test_resample_weights_count_draws_and_are_seeded():
    weights = resample_weights(7, n_boot=50, seed=3)
    assert weights.shape == (50, 7) and (weights.sum(1) == 7).all()
    assert np.array_equal(weights, resample_weights(7, n_boot=50, seed=3))
    assert not np.array_equal(weights, resample_weights(7, n_boot=50, seed=4))


def test_ci_contains_the_mean_and_is_reproducible():
    values = np.random.default_rng(0).normal(2.0, 1.0, size=200)
    low, high = bootstrap_ci(values, seed=11)
    assert low < values.mean() < high
    assert (low, high) == bootstrap_ci(values, seed=11)
    assert (low, high) != bootstrap_ci(values, seed=12)
    # percentile CI of a mean: about 2 standard errors on each side
    assert high - low == pytest.approx(2 * 1.96 * values.std() / np.sqrt(len(values)), rel=0.2)


def test_a_wider_level_gives_a_wider_interval():
    values = np.random.default_rng(1).random(100)
    low90, high90 = bootstrap_ci(values, level=0.90)
    low99, high99 = bootstrap_ci(values, level=0.99)
    assert low99 < low90 < high90 < high99


def test_custom_statistic_receives_resample_counts():
    data = np.array([[1.0, 1.0], [0.0, 1.0], [1.0, 2.0], [0.0, 2.0]])  # hits, trials per image

    def ratio(rows, weights):
        """All hits / all trials of each resample."""
        return (weights @ rows[:, 0]) / (weights @ rows[:, 1])

    low, high = bootstrap_ci(data, ratio, seed=0)
    assert 0.0 <= low <= 2 / 6 <= high <= 1.0


def test_constant_values_give_a_degenerate_interval_and_empty_values_none():
    assert bootstrap_ci(np.full(5, 0.25)) == (0.25, 0.25)
    assert bootstrap_ci(np.zeros(0)) == (None, None)


def test_summarize_drops_and_counts_undefined_values():
    entry = summarize([0.2, np.nan, 0.4, np.nan, 0.6], seed=0)
    assert entry["value"] == pytest.approx(0.4) and entry["n"] == 3 and entry["dropped"] == 2
    assert entry["ci_low"] <= 0.4 <= entry["ci_high"]
    assert summarize([np.nan], seed=0) == {"value": None, "ci_low": None, "ci_high": None, "n": 0, "dropped": 1}


def test_metric_entries_are_plain_rounded_numbers():
    entry = metric(np.float64(1 / 3), (np.float32(0.1), 0.5), np.int64(4), trials=7, share=2 / 3)
    assert entry == {"value": 0.333333, "ci_low": 0.1, "ci_high": 0.5, "n": 4, "trials": 7, "share": 0.666667}
    assert [type(entry[key]) for key in ("value", "ci_low", "n")] == [float, float, int]
    assert rounded(float("nan")) is None
