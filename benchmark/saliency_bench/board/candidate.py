"""A method that is not on a board, judged against it: its row, ranks, verdicts and distance to recorded methods.

Differences are paired where the board ships its per-image values (leaderboard-values.json): both methods ran
on the same images, so the difference's interval is a paired bootstrap over images (paired.py). A column
without per-image values (or a board without the file) gets the unpaired approximation from the two recorded
intervals (sqrt of the summed squared half-widths), and says so.
"""
from __future__ import annotations

import functools
import math
from typing import Callable, Mapping, Sequence

from tabulate import tabulate

from .paired import reading
from ..methods import is_control
from .verdicts import PASS, columns_of, control_bars, rules_of, undecidable, verdicts

NEIGHBORS = 2  # recorded methods nearest to the candidate shown by default, besides the controls


def rank(value: float | None, others: Sequence[float], better: str) -> int | None:
    """1 + the number of recorded values strictly better than ``value`` (ties share the better rank)."""
    if value is None:
        return None
    return 1 + sum((o > value) if better == "higher" else (o < value) for o in others)


def headline_values(results: Mapping, columns: Sequence) -> dict[str, float | None]:
    """``{column key: value}`` (None where undefined) of one method's results."""
    values = {}
    for column in columns:
        found = column.read(results)
        values[column.key] = None if found is None else float(found["value"])
    return values


def recorded_values(board: Mapping, columns: Sequence) -> dict[str, dict[str, float | None]]:
    """``{method: {column key: value}}`` of every recorded method."""
    return {name: headline_values(entry.get("results", {}), columns) for name, entry in board["methods"].items()}


def nearest(values: Mapping[str, float | None], board: Mapping, columns: Sequence, k: int = NEIGHBORS) -> list[str]:
    """The ``k`` recorded non-control methods closest to ``values`` (Euclidean over the columns both define)."""
    distances = []
    for name, other in recorded_values(board, columns).items():
        if is_control(board["methods"][name].get("family")):
            continue
        shared = [key for key in values if values.get(key) is not None and other.get(key) is not None]
        if shared:
            distances.append((math.sqrt(sum((values[key] - other[key]) ** 2 for key in shared)), name))
    return [name for _, name in sorted(distances)[:k]]


def _half_width(found: dict | None) -> float | None:
    if found is None or found.get("ci_low") is None or found.get("ci_high") is None:
        return None
    return (found["ci_high"] - found["ci_low"]) / 2


Pair = Callable[[str, str], "dict | None"]  # (check, metric) -> paired difference (paired.paired_difference)


def differences(results: Mapping, other: Mapping, columns: Sequence, pair: Pair | None = None) -> list[dict]:
    """Candidate minus ``other`` on each column with an interval: value, interval (paired where ``pair`` gives one,
    else approximate), reading."""
    rows = []
    for column in columns:
        if column.signed:
            continue
        mine, theirs = column.read(results), column.read(other)
        if mine is None or theirs is None:
            rows.append({"label": column.label, "diff": None, "low": None, "high": None, "reading": "undefined"})
            continue
        source = (getattr(column.read, "check", None), getattr(column.read, "metric", None))
        paired = pair(*source) if pair is not None and None not in source else None
        if paired is not None and paired["value"] is not None:
            rows.append({"label": column.label, "diff": paired["value"], "low": paired["ci_low"],
                         "high": paired["ci_high"], "reading": reading(paired, column.better), "paired": True})
            continue
        diff = mine["value"] - theirs["value"]
        widths = [_half_width(mine), _half_width(theirs)]
        half = math.sqrt(sum(w * w for w in widths)) if None not in widths else None
        low, high = (diff - half, diff + half) if half is not None else (None, None)
        unpaired = {"value": diff, "excludes_zero": low is not None and not low <= 0 <= high}
        rows.append({"label": column.label, "diff": diff, "low": low, "high": high,
                     "reading": reading(unpaired, column.better), "paired": False})
    return rows


def evaluate(board: Mapping, name: str, entry: Mapping, checks: Sequence, vs: Sequence[str] | None = None,
             pair: Callable[[str, str, str], "dict | None"] | None = None) -> dict:
    """The candidate's row as it would stand on ``board``: values, ranks, verdicts, differences from others.

    ``pair(other, check, metric)``: the paired difference candidate - ``other``, or None where it cannot be paired.
    """
    columns, rules = columns_of(checks), rules_of(checks)
    results = entry.get("results", {})
    values = headline_values(results, columns)
    recorded = recorded_values(board, columns)
    ranks = {}
    for column in columns:
        others = [v[column.key] for v in recorded.values() if v.get(column.key) is not None]
        place = rank(values.get(column.key), others, column.better) if column.better else None
        ranks[column.key] = None if place is None else {"rank": place, "of": len(others) + 1}
    controls = sorted(n for n, e in board["methods"].items() if is_control(e.get("family")))
    compared = list(vs) if vs else nearest(values, board, columns) + controls
    return {
        "method": name, "distribution": entry.get("distribution"), "version": entry.get("version"),
        "status": entry.get("status"), "errors": entry.get("errors", {}), "not_applicable": entry.get("not_applicable", {}),
        "columns": [(c.key, c.label, c.better, c.signed) for c in columns],
        "values": values, "ranks": ranks, "verdicts": verdicts(results, rules, control_bars(board["methods"], rules),
                                                               undecidable(board["methods"], rules)),
        "differences": {other: differences(results, board["methods"][other].get("results", {}), columns,
                                           None if pair is None else functools.partial(pair, other))
                        for other in compared},
        "chosen_by": "--vs" if vs else f"the {NEIGHBORS} nearest recorded methods and the controls",
    }


def passes(report: Mapping, required: Sequence[str]) -> bool:
    """Whether every required criterion's verdict is ``pass`` (a failed run never passes)."""
    return report["status"] == "ok" and all(report["verdicts"].get(c) == PASS for c in required)


def format_candidate(report: Mapping, required: Sequence[str], board_label: str) -> str:
    """What ``check`` prints for a method that is not on the board."""
    def num(value, sign=False):
        return "–" if value is None else (f"{value:+.3f}" if sign else f"{value:.3f}")

    lines = [f"{report['method']} ({report['distribution']} {report['version']}): not on {board_label}; "
             "its row as it would stand there:"]
    if report["errors"]:
        lines += [f"  failed on {check}: {error}" for check, error in report["errors"].items()]
    if report["not_applicable"]:
        lines += [f"  n/a on {check}: {reason}" for check, reason in report["not_applicable"].items()]
    table = []
    for key, label, better, signed in report["columns"]:
        place = report["ranks"].get(key)
        table.append([label, num(report["values"].get(key), sign=signed), f"{better} is better" if better else "",
                      "–" if place is None else f"{place['rank']} of {place['of']}"])
    lines.append(tabulate(table, headers=["column", "value", "", "rank"], disable_numparse=True))
    verdict_text = ", ".join(f"{key} {value}" for key, value in report["verdicts"].items())
    lines.append(f"verdicts: {verdict_text}")
    defined = [row for rows in report["differences"].values() for row in rows if row["diff"] is not None]
    paired = [row["paired"] for row in defined]
    mixed = any(paired) and not all(paired)
    how = ("95% interval: paired over the same images where marked *, else unpaired from the recorded intervals"
           if mixed else "paired 95% bootstrap interval over the same images" if paired and all(paired)
           else "unpaired, approximate 95% interval from the two recorded intervals")
    diff_rows = []
    for other, rows in report["differences"].items():
        for row in rows:
            interval = "" if row["low"] is None else f"[{row['low']:+.3f}, {row['high']:+.3f}]"
            interval += "*" if mixed and row.get("paired") else ""
            diff_rows.append([other, row["label"], num(row["diff"], sign=True), interval, row["reading"]])
    lines.append(f"difference from {report['chosen_by']} (candidate minus recorded; {how}):")
    lines.append(tabulate(diff_rows, headers=["vs", "column", "diff", "interval", "reading"], disable_numparse=True))
    ok = passes(report, required)
    lines.append(f"{report['method']}: {'PASSES' if ok else 'FAILS'} the required criteria ({', '.join(required)})"
                 + ("" if ok else ": " + ", ".join(c for c in required if report["verdicts"].get(c) != PASS
                                                   or report["status"] != "ok")))
    return "\n".join(lines)
