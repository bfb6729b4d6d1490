"""Every pair's paired differences, exactly as ``saliency-bench compare`` computes them, from one pass per method.

``compare A B`` resamples images with ``resample_weights(n, n_boot, seed)`` of the check's parameters and takes
the quantiles of ``statistic(A, weights) - statistic(B, weights)``. The weights do not depend on the methods, so
each method's bootstrap distribution of each statistic is computed once (``distributions``) and every pair is a
subtraction and two quantiles of those (``difference``): the same operations on the same numbers, so the same
bytes as ``compare`` (tests/test_site.py holds it). B - A is stored only where it is not exactly -(A - B).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ...checks.stats import bootstrap_params, resample_weights, rounded
from ..paired import reading
from ..verdicts import ordered_checks

NOT_PAIRED = "not paired (no per-image values)"


def metric_rows(checks: Sequence, board: dict) -> list[dict]:
    """One row per (check on the board, metric of its ``statistics``), in board order, with its direction."""
    return [{"check": check.name, "metric": metric, "better": check.better.get(metric),
             "statistic": check.statistics[metric]}
            for check in ordered_checks(checks) if check.name in board.get("checks", {}) for metric in check.statistics]


def headlines(board: dict) -> dict[str, dict[str, str]]:
    """Per method, the headline metric of each check it has a result of (``compare`` marks A's, else B's)."""
    return {name: {check: result["headline"] for check, result in entry.get("results", {}).items()
                   if result.get("headline")} for name, entry in board["methods"].items()}


def distributions(rows: Sequence[dict], board: dict, data: Mapping) -> dict:
    """Per row, per method with per-image data: ``(n, value, bootstrap statistics [B])`` of its statistic."""
    out: dict[int, dict[str, tuple]] = {}
    weights: dict[tuple, np.ndarray] = {}
    for index, row in enumerate(rows):
        boot = bootstrap_params(board["checks"][row["check"]])
        out[index] = {}
        for name in board["methods"]:
            values = data.get(name, {}).get(row["check"], {}).get(row["metric"])
            if values is None:
                continue
            values = np.asarray(values, dtype=float)
            n = len(values)
            key = (n, boot["n_boot"], boot["seed"])
            if key not in weights:
                weights[key] = resample_weights(n, boot["n_boot"], boot["seed"])
            full = row["statistic"](values, np.ones((1, n)))[0] if n else None
            out[index][name] = (n, full, row["statistic"](values, weights[key]) if n else None, boot["level"])
    return out


def difference(first: tuple, second: tuple, bounds: tuple | None = None) -> dict:
    """``paired_difference`` from two precomputed ``(n, value, bootstrap statistics, level)`` (and its ``bounds``)."""
    n, full_a, boot_a, level = first
    entry = {"value": None, "ci_low": None, "ci_high": None, "n": n, "excludes_zero": False}
    if n == 0:
        return entry
    value = float(full_a - second[1])
    entry["value"] = rounded(value)
    if bounds is None:
        differences = boot_a - second[2]
        differences = differences[np.isfinite(differences)]
        if differences.size and np.isfinite(value):
            tail = (1.0 - level) / 2.0
            bounds = np.quantile(differences, [tail, 1.0 - tail])
    if bounds is not None and np.isfinite(value):
        entry.update(ci_low=rounded(bounds[0]), ci_high=rounded(bounds[1]))
        entry["excludes_zero"] = bool(entry["ci_low"] > 0 or entry["ci_high"] < 0)
    return entry


def all_bounds(entries: Mapping[str, tuple]) -> dict[tuple[str, str], tuple]:
    """Difference quantiles of every ordered pair of one row with all-finite differences, vectorised per method."""
    # the same numbers as one np.quantile per pair (tests/test_site.py compares every pair with compare's)
    names = [name for name, entry in entries.items() if entry[0] > 0]
    out: dict[tuple[str, str], tuple] = {}
    for i, a in enumerate(names):
        others = [b for b in names[i + 1:] if entries[b][0] == entries[a][0]]
        if not others:
            continue
        differences = entries[a][2][None, :] - np.stack([entries[b][2] for b in others])
        finite = np.isfinite(differences).all(1)
        if not finite.any():
            continue
        tail = (1.0 - entries[a][3]) / 2.0
        forward = np.quantile(differences[finite], [tail, 1.0 - tail], axis=1)
        backward = np.quantile(-differences[finite], [tail, 1.0 - tail], axis=1)
        for j, b in enumerate(b for b, ok in zip(others, finite) if ok):
            out[(a, b)], out[(b, a)] = (forward[0, j], forward[1, j]), (backward[0, j], backward[1, j])
    return out


def pair_row(row: dict, first: tuple | None, second: tuple | None, headline: str | None = None,
             bounds: tuple | None = None) -> dict:
    """``compare``'s row of one (check, metric) for A = ``first``, B = ``second`` (None: no per-image values)."""
    base = {"check": row["check"], "metric": row["metric"], "headline": headline == row["metric"]}
    if first is None or second is None or first[0] != second[0]:
        return {**base, "a": None, "b": None, "value": None, "ci_low": None, "ci_high": None,
                "excludes_zero": False, "reading": NOT_PAIRED}
    entry = difference(first, second, bounds)
    a, b = (None if first[1] is None else float(first[1])), (None if second[1] is None else float(second[1]))
    return {**base, "a": a, "b": b, **entry, "reading": reading(entry, row["better"])}


def pair_rows(rows: Sequence[dict], table: dict, first: str, second: str, marked: dict) -> list[dict]:
    """Every row of ``compare first second`` from the distributions; ``marked``: ``headlines(board)``."""
    def headline(check: str) -> str | None:
        """A's headline of the check, else B's (as ``compare`` marks it)."""
        return marked.get(first, {}).get(check) or marked.get(second, {}).get(check)

    return [pair_row(row, table[i].get(first), table[i].get(second), headline(row["check"]))
            for i, row in enumerate(rows)]


def _triple(entry: dict) -> list | None:
    """``[value, ci_low, ci_high]`` of a difference (None where undefined)."""
    return None if entry["value"] is None else [entry["value"], entry["ci_low"], entry["ci_high"]]


def pairs_document(checks: Sequence, board: dict, data: Mapping) -> dict:
    """The compare page's data: rows, each method's values, and every unordered pair's differences."""
    rows = metric_rows(checks, board)
    table = distributions(rows, board, data)
    methods = list(board["methods"])
    values = {name: [[None if table[i].get(name) is None or table[i][name][1] is None else float(table[i][name][1]),
                      None if table[i].get(name) is None else table[i][name][0]] for i in range(len(rows))]
              for name in methods}
    bounds = [all_bounds(table[k]) for k in range(len(rows))]
    pairs, reverse = {}, {}
    for i, a in enumerate(methods):
        for b in methods[i + 1:]:
            forward = [pair_row(row, table[k].get(a), table[k].get(b), None, bounds[k].get((a, b)))
                       for k, row in enumerate(rows)]
            backward = [pair_row(row, table[k].get(b), table[k].get(a), None, bounds[k].get((b, a)))
                        for k, row in enumerate(rows)]
            pairs[f"{a}|{b}"] = [_triple(entry) for entry in forward]
            exact = [_triple(entry) for entry in backward]
            if exact != [_negated(t) for t in pairs[f"{a}|{b}"]]:
                reverse[f"{b}|{a}"] = exact
    return {"rows": [{k: row[k] for k in ("check", "metric", "better")} for row in rows], "methods": methods,
            "headlines": headlines(board), "values": values, "pairs": pairs, "reverse": reverse,
            "level": {row["check"]: float(board["checks"][row["check"]]["ci_level"]) for row in rows}}


def _negated(triple: list | None) -> list | None:
    """-(A - B) as B - A: the value negated, the interval's ends negated and swapped."""
    if triple is None:
        return None
    value, low, high = triple
    return [-value if value else value, None if high is None else -high, None if low is None else -low]


def oriented(document: dict, first: str, second: str) -> list | None:
    """The ``[value, low, high]`` rows of ``first - second``: stored, stored exactly for this order, or negated."""
    key = f"{first}|{second}"
    if first == second and first in document["values"]:  # A - A: zero wherever A's value is defined
        return [None if value is None else [0.0, 0.0, 0.0] for value, _ in document["values"][first]]
    if key in document["reverse"]:
        return document["reverse"][key]
    if key in document["pairs"]:
        return document["pairs"][key]
    stored = document["pairs"].get(f"{second}|{first}")
    return None if stored is None else [_negated(t) for t in stored]
