"""The board's verdicts: a threshold per check, localisation beyond the controls, and the composite verdict.

Class sensitivity and randomisation are necessary conditions only: pure noise (the `random` control) passes
both. So the composite (``overall``) verdict also asks that the map localise (pointing above the threshold,
the restricted gap above its threshold) and localise better than every control does (the lower end of the
method's pointing interval above the best control's pointing accuracy).
"""
from __future__ import annotations

from typing import Mapping

PASS, FAIL, UNDECIDED = "pass", "fail", "–"

# Verdict thresholds, stated in both board files. Class sensitivity and randomisation: lower similarity is better.
THRESHOLDS = {
    "pointing_game": {"metric": "accuracy", "pass_if": ">=", "value": 0.5},
    "restricted_gap": {"metric": "pointing - restricted", "pass_if": ">=", "value": 0.05},
    "class_sensitivity": {"metric": "spearman_hog", "pass_if": "<=", "value": 0.5},
    "randomization": {"metric": "spearman_hog_final", "pass_if": "<=", "value": 0.5},
}
LOCALISATION = "localisation"
OVERALL = "overall"
CRITERIA = (*THRESHOLDS, LOCALISATION, OVERALL)  # what `check --require` accepts
CONTROL_FAMILY = "baseline"  # methods that explain nothing by construction (random, edge): the floor to beat

# The board's headline numbers, the way each improves, and where each comes from (check, metric).
HEADLINES = {
    "pointing": ("higher", "pointing_game", "accuracy"),
    "restricted": ("lower", "restricted_pointing_game", "accuracy"),
    "gap": ("higher", None, None),  # pointing - restricted
    "class_sensitivity": ("lower", "class_sensitivity", "spearman_hog"),
    "randomization": ("lower", "randomization", "spearman_hog_final"),
}


def metric(results: Mapping, check: str, name: str) -> dict | None:
    """The recorded metric ``name`` of ``check`` if the check ran ``ok``, else None."""
    result = results.get(check)
    if not result or result.get("status") != "ok":
        return None
    found = result.get("metrics", {}).get(name)
    return found if isinstance(found, dict) and found.get("value") is not None else None


def headline_values(results: Mapping) -> dict[str, float | None]:
    """``{headline: value}`` (None where undefined) of one method's results."""
    values = {}
    for key, (_, check, name) in HEADLINES.items():
        if check is not None:
            found = metric(results, check, name)
            values[key] = None if found is None else float(found["value"])
    pointing, restricted = values["pointing"], values["restricted"]
    values["gap"] = None if pointing is None or restricted is None else pointing - restricted
    return values


def control_bar(methods: Mapping[str, dict]) -> dict | None:
    """The best pointing accuracy of the board's controls and which control it is (None without controls)."""
    best = None
    for name, entry in methods.items():
        if entry.get("family") != CONTROL_FAMILY:
            continue
        found = metric(entry.get("results", {}), "pointing_game", "accuracy")
        if found is not None and (best is None or found["value"] > best["value"]):
            best = {"value": float(found["value"]), "control": name}
    if best is None:
        return None
    controls = sorted(n for n, e in methods.items() if e.get("family") == CONTROL_FAMILY)
    return {"metric": "lower end of the pointing interval", "pass_if": ">", "value": best["value"],
            "best_control": best["control"], "controls": controls}


def _passes(value: float | None, rule: Mapping) -> str:
    if value is None:
        return UNDECIDED
    ok = value >= rule["value"] if rule["pass_if"] == ">=" else value <= rule["value"]
    return PASS if ok else FAIL


def verdicts(results: Mapping, bar: Mapping | None) -> dict[str, str]:
    """Each check's verdict, localisation beyond the controls (``bar``), and the composite ``overall``."""
    values = headline_values(results)
    out = {
        "pointing_game": _passes(values["pointing"], THRESHOLDS["pointing_game"]),
        "restricted_gap": _passes(values["gap"], THRESHOLDS["restricted_gap"]),
        "class_sensitivity": _passes(values["class_sensitivity"], THRESHOLDS["class_sensitivity"]),
        "randomization": _passes(values["randomization"], THRESHOLDS["randomization"]),
    }
    pointing = metric(results, "pointing_game", "accuracy")
    if pointing is None or bar is None:
        out[LOCALISATION] = UNDECIDED
    else:
        low = pointing.get("ci_low") if pointing.get("ci_low") is not None else pointing["value"]
        out[LOCALISATION] = PASS if low > bar["value"] else FAIL
    parts = list(out.values())
    out[OVERALL] = FAIL if FAIL in parts else PASS if all(p == PASS for p in parts) else UNDECIDED
    return out


def parse_criteria(text: str | None) -> list[str]:
    """``--require`` as a list of criteria (default: ``overall``); an unknown one is a ValueError naming the known."""
    if text is None:
        return [OVERALL]
    chosen = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [c for c in chosen if c not in CRITERIA]
    if unknown or not chosen:
        raise ValueError(f"unknown criterion '{unknown[0] if unknown else text}' (choose from: {', '.join(CRITERIA)})")
    return chosen
