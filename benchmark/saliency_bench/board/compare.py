"""``saliency-bench compare A B``: the paired difference of every metric of two methods recorded on one board."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from tabulate import tabulate

from .values import FILE, read_sidecar
from ..checks.stats import bootstrap_params
from ..errors import UserError
from .paired import paired_difference, reading
from ..plugins import Registry
from .recheck import read_board
from .verdicts import ordered_checks

PerCheck = Mapping[str, Mapping[str, np.ndarray]]  # check -> metric -> per-image data


def pair_rows(checks: Sequence, params: Mapping[str, dict], data_a: PerCheck, data_b: PerCheck,
              headlines: Mapping[str, str] = {}) -> list[dict]:
    """One row per (check, metric) of ``statistics``: both values, the paired difference A - B and its reading."""
    rows = []
    for check in ordered_checks(checks):
        for metric, statistic in check.statistics.items():
            a, b = data_a.get(check.name, {}).get(metric), data_b.get(check.name, {}).get(metric)
            row = {"check": check.name, "metric": metric, "headline": headlines.get(check.name) == metric}
            if a is None or b is None or len(a) != len(b):
                rows.append({**row, "a": None, "b": None, "value": None, "ci_low": None, "ci_high": None,
                             "excludes_zero": False, "reading": "not paired (no per-image values)"})
                continue
            everyone = np.ones((1, len(a)))
            difference = paired_difference(statistic, a, b, **bootstrap_params(params[check.name]))
            rows.append({**row, "a": float(statistic(a, everyone)[0]), "b": float(statistic(b, everyone)[0]),
                         **difference, "reading": reading(difference, check.better.get(metric))})
    return rows


def compare_command(args, log) -> int:
    """``saliency-bench compare A B``: print the paired rows (a table, or JSON)."""
    from ..plugins import load_registry

    rows = compare_recorded(args.against, args.first, args.second, load_registry(log))
    print(format_pairs(rows, args.first, args.second, args.against, as_json=args.json))
    return 0


def compare_recorded(against: str | Path, first: str, second: str, registry: Registry) -> list[dict]:
    """The paired rows of ``first`` - ``second`` from the board at ``against`` and its per-image values."""
    board = read_board(against)
    for name in (first, second):
        if name not in board["methods"]:
            raise UserError(f"'{name}' is not on {against} (recorded: {', '.join(sorted(board['methods']))})")
    data = read_sidecar(board, against)
    if data is None:
        raise UserError(f"no {FILE} beside {against}: it holds the per-image values that pairing needs; "
                        "write the board again with this version (saliency-bench run)")
    checks = [registry.checks[name].obj for name in board.get("checks", {}) if name in registry.checks]
    if not any(check.statistics for check in checks):
        raise UserError(f"no check on {against} defines per-image statistics here (install its plugin)")
    headlines = {}
    for check in board.get("checks", {}):
        for name in (first, second):
            headline = board["methods"][name].get("results", {}).get(check, {}).get("headline")
            if headline:
                headlines.setdefault(check, headline)
    return pair_rows(checks, board["checks"], data.get(first, {}), data.get(second, {}), headlines)


def format_pairs(rows: Sequence[dict], first: str, second: str, against: str | Path, as_json: bool = False) -> str:
    """What ``compare`` prints: a table (headline metrics marked *, values, difference, interval and reading), or
    the rows as JSON."""
    if as_json:
        import json

        return json.dumps(rows, indent=1)
    def num(value, sign=False):
        return "–" if value is None else (f"{value:+.4f}" if sign else f"{value:.4f}")

    table = [[row["check"], row["metric"] + (" *" if row["headline"] else ""), num(row["a"]), num(row["b"]),
              num(row["value"], sign=True),
              "" if row["ci_low"] is None else f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]",
              "yes" if row["excludes_zero"] else "no", row["reading"]] for row in rows]
    level = {row.get("n") for row in rows if row.get("n") is not None}
    header = (f"{first} minus {second} on {against}, paired over the same images (percentile bootstrap interval over images at "
              f"the board's ci_level; * = the check's headline; reading for {first}):")
    return "\n".join([header, tabulate(table, headers=["check", "metric", first, second, "difference", "interval",
                                                       "excludes 0", "reading"], disable_numparse=True)]
                     + ([] if level else ["no metric could be paired"]))
