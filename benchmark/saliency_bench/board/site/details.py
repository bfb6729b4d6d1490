"""A method page's data: per check every metric and verdict with its reason, the curve, paper, speed, peers."""
from __future__ import annotations

from typing import Callable, Sequence

from ..candidate import NEIGHBORS, differences, nearest
from ...methods import is_control
from ..verdicts import columns_of, rules_of
from .rows import paper_text, speed_cell
from .section import Section

SYMBOLS = {">=": "≥", "<=": "≤", ">": ">", "<": "<"}
Pair = Callable[[str, str, str, str], "dict | None"]  # (A, B, check, metric) -> compare's difference A - B


def interval_text(metric: dict | None, digits: int = 3) -> str:
    """``0.896 [0.87, 0.92]`` as on leaderboard.md ('–' where undefined)."""
    if not metric or metric.get("value") is None:
        return "–"
    text = f"{metric['value']:.{digits}f}"
    if metric.get("ci_low") is not None and metric.get("ci_high") is not None:
        text += f" [{metric['ci_low']:.2f}, {metric['ci_high']:.2f}]"
    return text


def metric_notes(metric: dict) -> str:
    """The counts leaderboard.md's details print beside a value: draws, undefined, constant and vanished maps."""
    notes = []
    if metric.get("draws", 1) > 1:
        notes.append(f"×{metric['draws']} draws")
    if metric.get("trials"):
        notes.append(f"{metric['trials']} trials")
    if metric.get("dropped"):
        notes.append(f"{metric['dropped']} undefined dropped")
    if metric.get("one_constant"):
        notes.append(f"{metric['one_constant']} with one constant map, scored 0")
    if metric.get("vanished"):
        notes.append(f"{metric['vanished']} of {metric.get('maps', '?')} randomised maps vanished, scored 0")
    return "; ".join(notes)


def verdict_line(rule, entry: dict, thresholds: dict) -> dict:
    """One rule's verdict on the method, with the measured value, the threshold and the reason."""
    verdict = entry.get("verdicts", {}).get(rule.key, "–")
    found = rule.read(entry.get("results", {}))
    recorded = thresholds.get(rule.key)
    if recorded is None:
        test = "undecided: no control on this board"
    elif rule.beats_controls:
        test = (f"{recorded['compares']} {rule.metric} {SYMBOLS[recorded['pass_if']]} {recorded['value']:.3f} "
                f"(`{recorded['best_control']}`, the best control)")
    else:
        test = f"{rule.metric} {SYMBOLS[rule.pass_if]} {rule.value}"
    measured = interval_text(found) if found is not None and "ci_low" in found else (
        "–" if found is None else f"{found['value']:+.3f}" if " - " in rule.metric else f"{found['value']:.3f}")
    return {"key": rule.key, "letter": rule.letter, "verdict": verdict, "test": "pass if " + test,
            "measured": measured, "reason": rule.reason}


def check_detail(check, section: Section, name: str) -> dict:
    """One check on the method page: parameters, status, every metric with interval and n, and its verdicts."""
    entry = section.board["methods"][name]
    result = entry.get("results", {}).get(check.name) or {}
    params = section.board["checks"].get(check.name, {})
    metrics = [{"name": metric, "text": interval_text(found), "n": found.get("n"), "notes": metric_notes(found),
                "headline": metric == result.get("headline"), "better": check.better.get(metric)}
               for metric, found in (result.get("metrics") or {}).items()]
    return {
        "name": check.name, "description": check.description, "read": check.how_to_read, "combine": check.combine,
        "params": {k: v for k, v in params.items() if not isinstance(v, (list, dict))},
        "status": result.get("status", "not run"), "reason": result.get("reason") or result.get("error") or "",
        "metrics": metrics, "per_class": result.get("per_class"),
        "verdicts": [verdict_line(rule, entry, section.board.get("thresholds", {})) for rule in check.rules],
    }


def curve_of(entry: dict) -> dict | None:
    """``{measure: [[value, low, high], ...]}`` of a randomisation curve (None without one)."""
    for result in entry.get("results", {}).values():
        curve = result.get("curve") if result.get("status") == "ok" else None
        if curve:
            return {measure: [[p.get("value"), p.get("ci_low"), p.get("ci_high")] for p in points]
                    for measure, points in curve.items() if measure != "layers"}
    return None


def curves(section: Section, name: str) -> dict | None:
    """The method's cascading-randomisation curves and the controls' (None if the method has none)."""
    methods = section.board["methods"]
    mine = curve_of(methods[name])
    if mine is None:
        return None
    layers = next(r["curve"]["layers"] for r in methods[name]["results"].values() if r.get("curve"))
    controls = {other: curve_of(entry) for other, entry in methods.items()
                if is_control(entry.get("family")) and other != name and curve_of(entry)}
    return {"layers": layers, "method": mine, "controls": controls}


def papers(section: Section, name: str, checks: Sequence) -> list[dict]:
    """The seed paper's value of the method per check, beside this board's headline of the same check."""
    entry = section.board["methods"][name]
    out = []
    for check in checks:
        text = paper_text(entry, check)
        if not text:
            continue
        result = entry.get("results", {}).get(check.name, {})
        found = (result.get("metrics") or {}).get(result.get("headline") or "")
        out.append({"label": check.paper_label, "paper": text, "check": check.name, "board": interval_text(found)})
    return out


def peer_rows(section: Section, name: str, checks: Sequence, pair: Pair) -> list[dict]:
    """Its 2 nearest methods on the board and the controls, with the paired differences `check` prints."""
    methods, columns = section.board["methods"], columns_of(checks)
    results = methods[name].get("results", {})
    values = {c.key: (None if c.read(results) is None else float(c.read(results)["value"])) for c in columns}
    others = {other: entry for other, entry in methods.items() if other != name}
    near = nearest(values, {"methods": others}, columns, NEIGHBORS)
    controls = sorted(o for o, e in others.items() if is_control(e.get("family")))
    return [{"name": other, "why": "control" if other in controls else "nearest on the board's columns",
             "rows": differences(results, methods[other].get("results", {}), columns,
                                 lambda check, metric, other=other: pair(name, other, check, metric))}
            for other in near + controls]


def method_detail(section: Section, name: str, checks: Sequence, pair: Pair) -> dict:
    """Everything the method page shows of ``name`` except its images."""
    entry = section.board["methods"][name]
    config = section.board["config"]
    return {
        "name": name, "family": entry.get("family"), "positive": entry.get("positive"), "layer": entry.get("layer"),
        "distribution": entry.get("distribution"), "version": entry.get("version"), "status": entry.get("status"),
        "settings": entry.get("settings", {}), "errors": entry.get("errors", {}),
        "not_applicable": entry.get("not_applicable", {}),
        "checks": [check_detail(check, section, name) for check in checks if check.name in section.board["checks"]],
        "curves": curves(section, name), "paper": papers(section, name, checks),
        "speed": speed_cell(section, name), "timing": {k: v for k, v in (section.speed or {}).get(name, {}).items()
                                                        if k in ("device", "floor_ms_per_image")},
        "peers": peer_rows(section, name, checks, pair),
        "provenance": {key: config.get(key) for key in ("model", "dataset", "images", "seed", "batch_size",
                                                         "weights_sha256", "versions")},
        "rules": [rule.key for rule in rules_of(checks)],
    }
