"""The board's verdicts: every registered check's rules (checks/presentation.py), and the composite verdict.

Class sensitivity and randomisation are necessary conditions only: pure noise passes both. So the composite
(``overall``) verdict passes a method only when every rule of every check on the board passes and at least one
of them asks the method to do better than the controls and is decided (a board without such a rule, or without
controls, decides no composite verdict). A rule that no method of the board has a value for (its check is n/a on
this model for every method) is left out of the composite (``Rule.beats_controls``: the ``control`` family,
methods that explain nothing by construction).
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from ..methods import CONTROL, is_control

PASS, FAIL, UNDECIDED = "pass", "fail", "–"
OVERALL = "overall"
CONTROL_FAMILY = CONTROL  # the controls' family (methods.is_control also reads the older name)


def ordered_checks(checks: Iterable) -> list:
    """Check objects in their board order (``Check.order``, then name): the order of columns and verdicts."""
    return sorted(checks, key=lambda check: (getattr(check, "order", 100), check.name))


def rules_of(checks: Sequence) -> list:
    """Every verdict rule of ``checks``, in board order."""
    return [rule for check in ordered_checks(checks) for rule in getattr(check, "rules", ())]


def columns_of(checks: Sequence) -> list:
    """Every summary column of ``checks``, in board order."""
    return [column for check in ordered_checks(checks) for column in getattr(check, "columns", ())]


def criteria(checks: Sequence) -> list[str]:
    """What ``check --require`` accepts: every rule's key and ``overall``."""
    return [rule.key for rule in rules_of(checks)] + [OVERALL]


def control_bars(methods: Mapping[str, dict], rules: Sequence) -> dict[str, dict]:
    """For each ``beats_controls`` rule: the best value among the board's controls, and which control it is."""
    controls = sorted(name for name, entry in methods.items() if is_control(entry.get("family")))
    bars = {}
    for rule in rules:
        if not rule.beats_controls:
            continue
        best = None
        for name in controls:
            found = rule.read(methods[name].get("results", {}))
            higher = rule.pass_if != "<="
            if found is not None and (best is None or (found["value"] > best[0]) == higher):
                best = (float(found["value"]), name)
        if best is not None:
            side = "lower" if rule.pass_if != "<=" else "upper"
            bars[rule.key] = {"metric": rule.metric, "pass_if": ">" if rule.pass_if != "<=" else "<",
                              "value": best[0], "best_control": best[1], "controls": controls,
                              "compares": f"the {side} end of the interval of"}
    return bars


def thresholds(rules: Sequence, bars: Mapping[str, dict]) -> dict[str, dict]:
    """The rules as the board's JSON records them (a control rule with the control's value, when there is one)."""
    return {rule.key: bars[rule.key] if rule.beats_controls else rule.threshold()
            for rule in rules if not rule.beats_controls or rule.key in bars}


def _verdict(rule, results: Mapping, bars: Mapping[str, dict]) -> str:
    found = rule.read(results)
    if found is None:
        return UNDECIDED
    if rule.beats_controls:
        bar = bars.get(rule.key)
        if bar is None:
            return UNDECIDED
        if rule.pass_if != "<=":
            low = found.get("ci_low") if found.get("ci_low") is not None else found["value"]
            return PASS if low > bar["value"] else FAIL
        high = found.get("ci_high") if found.get("ci_high") is not None else found["value"]
        return PASS if high < bar["value"] else FAIL
    ok = found["value"] >= rule.value if rule.pass_if == ">=" else found["value"] <= rule.value
    return PASS if ok else FAIL


def undecidable(methods: Mapping[str, dict], rules: Sequence) -> frozenset[str]:
    """The rules no method of the board has a value for (a check n/a on this model for every method, such as data
    randomisation on a model without a random-label twin): the composite verdict leaves them out."""
    return frozenset(rule.key for rule in rules
                     if all(rule.read(entry.get("results", {})) is None for entry in methods.values()))


def verdicts(results: Mapping, rules: Sequence, bars: Mapping[str, dict],
             skip: frozenset[str] = frozenset()) -> dict[str, str]:
    """Each rule's verdict on one method's results, and the composite ``overall`` over the rules not in ``skip``."""
    out = {rule.key: _verdict(rule, results, bars) for rule in rules}
    parts = [out[rule.key] for rule in rules if rule.key not in skip]
    beats = [out[rule.key] for rule in rules if rule.beats_controls and rule.key not in skip]
    if FAIL in parts:
        out[OVERALL] = FAIL
    elif parts and all(p == PASS for p in parts) and PASS in beats:
        out[OVERALL] = PASS  # never without having beaten the controls: noise passes the necessary conditions
    else:
        out[OVERALL] = UNDECIDED
    return out


def judge(methods: Mapping[str, dict], checks: Sequence) -> dict[str, dict]:
    """Set ``verdicts`` on every entry of ``methods`` (controls judged on the same board); return the thresholds."""
    rules = rules_of(checks)
    bars = control_bars(methods, rules)
    skip = undecidable(methods, rules)
    for entry in methods.values():
        entry["verdicts"] = verdicts(entry.get("results", {}), rules, bars, skip)
    return thresholds(rules, bars)


def parse_criteria(text: str | None, checks: Sequence) -> list[str]:
    """``--require`` as a list of criteria (default: ``overall``); an unknown one is a ValueError naming the known."""
    if text is None:
        return [OVERALL]
    known = criteria(checks)
    chosen = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [c for c in chosen if c not in known]
    if unknown or not chosen:
        raise ValueError(f"unknown criterion '{unknown[0] if unknown else text}' (choose from: {', '.join(known)})")
    return chosen
