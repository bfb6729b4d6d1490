"""The index's data for one model: its columns, rules, notes and one row per method, cells as on leaderboard.md."""
from __future__ import annotations

import re
from typing import Sequence

from ..leaderboard import how_to_read, paper_checks, reference_note, speed_note, verdict_note
from ...methods import is_control
from ..verdicts import OVERALL, columns_of, rules_of
from .section import Section


def slug(name: str) -> str:
    """A file name for a method or model: letters, digits, '-' and '_' kept, every other run of characters one '_'."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "_"


def unique_slugs(names: Sequence[str]) -> dict[str, str]:
    """A distinct file name per method (``slug``, numbered where two would meet)."""
    out: dict[str, str] = {}
    for name in names:
        base = slug(name)
        key, n = base, 2
        while key in out.values():
            key, n = f"{base}-{n}", n + 1
        out[name] = key
    return out


def _source(read) -> tuple[str | None, str | None]:
    """The (check, metric) a reader reads (None for a derived value such as the gap)."""
    return getattr(read, "check", None), getattr(read, "metric", None)


def marks(column, rules: Sequence, thresholds: dict) -> list[dict]:
    """The thresholds drawn on a column's interval bars: each rule reading the same metric, at its recorded value."""
    found = []
    for rule in rules:
        recorded = thresholds.get(rule.key)
        if recorded is not None and _source(rule.read) == _source(column.read) and None not in _source(column.read):
            found.append({"letter": rule.letter, "value": float(recorded["value"]), "key": rule.key})
    return found


def column_specs(checks: Sequence, board: dict) -> list[dict]:
    """Each summary column: key, header, direction, whether signed, and the rule thresholds on it."""
    rules = rules_of(checks)
    return [{"key": c.key, "label": c.label, "better": c.better, "signed": c.signed,
             "marks": marks(c, rules, board.get("thresholds", {}))} for c in columns_of(checks)]


def cell(column, results: dict) -> dict:
    """One cell: leaderboard.md's text, and the value and interval for sorting and the bar."""
    found = column.read(results)
    text = column.cell(results)
    if found is None:
        return {"t": text}
    return {"t": text, "v": found.get("value"), "lo": found.get("ci_low"), "hi": found.get("ci_high")}


def speed_cell(section: Section, name: str) -> dict | None:
    """ms/img and × floor of one method, as on the board (None where it was not timed)."""
    record = (section.speed or {}).get(name)
    if record is None:
        return None
    return {"ms": record["ms_per_image"], "ratio": record["ratio_to_floor"],
            "t": [f"{record['ms_per_image']:.2f}", f"{record['ratio_to_floor']:.2f}x"]}


def method_row(section: Section, name: str, checks: Sequence, papers: Sequence, file: str) -> dict:
    """One method's row of the index (``file``: the name of its files on the site)."""
    entry = section.board["methods"][name]
    results = entry.get("results", {})
    verdicts = entry.get("verdicts", {})
    return {
        "name": name, "slug": file, "family": entry.get("family"), "positive": bool(entry.get("positive")),
        "layer": entry.get("layer"), "status": entry.get("status"), "overall": verdicts.get(OVERALL, "–"),
        "verdicts": {rule.key: verdicts.get(rule.key, "–") for rule in rules_of(checks)},
        "cells": [cell(column, results) for column in columns_of(checks)],
        "paper": [paper_text(entry, check) for check in papers],
        "speed": speed_cell(section, name),
        "control": is_control(entry.get("family")),
        "na": sorted(entry.get("not_applicable", {})), "failed": sorted(entry.get("errors", {})),
    }


def paper_text(entry: dict, check) -> str:
    """The seed paper's value of a method on one check, scaled as on the board ('' where it has none)."""
    value = entry.get("paper", {}).get(check.paper_key)
    return "" if value is None else f"{value * check.paper_scale:.2f}"


def config_line(board: dict) -> str:
    """Model, dataset, images, seed and versions, as the board's heading states them."""
    config = board["config"]
    model, dataset = config.get("model", {}), config.get("dataset", {})
    versions = ", ".join(f"{k} {v}" for k, v in sorted(config.get("versions", {}).items()))
    return (f"Model `{model.get('name')}` ({model.get('input_size')} px), dataset `{dataset.get('name')}`, "
            f"{config.get('images')} images, seed {config.get('seed')}; versions: {versions}.")


def model_index(section: Section, key: str, checks: Sequence) -> dict:
    """Everything the index and the other pages need of one model, without per-method details."""
    board = section.board
    papers = paper_checks(board, checks)
    records = section.speed or {}
    notes = {"read": how_to_read(checks), "verdicts": verdict_note(board, checks), "config": config_line(board),
             "speed": speed_note(records) if records else "",
             "references": reference_note(board["dataset_reference"], checks) if board.get("dataset_reference") else ""}
    return {
        "key": key, "model": section.model, "title": section.label, "description": section.description,
        "columns": column_specs(checks, board),
        "rules": [{"key": r.key, "letter": r.letter, "metric": r.metric, "reason": r.reason} for r in rules_of(checks)],
        "paper": [check.paper_label for check in papers], "speed": bool(records), "notes": notes,
        "families": sorted({entry.get("family") for entry in board["methods"].values()}),
        "methods": [method_row(section, name, checks, papers, file) for name, file in
                    unique_slugs(list(board["methods"])).items()],
    }
