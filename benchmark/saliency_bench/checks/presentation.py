"""What a check shows on the board: its summary columns and its verdict rules (the board knows no check by name).

A ``Column`` reads one number from a method's results (every check's, so a column may combine two checks, as
the restricted game's *gap* does); a ``Rule`` turns one such number into a verdict. Both read the recorded
result dicts (``{check: {"status", "metrics": {metric: {"value", "ci_low", "ci_high", ...}}}}``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

Results = Mapping[str, dict]
Reader = Callable[[Results], "dict | None"]


def read_metric(check: str, metric: str) -> Reader:
    """A reader of ``check``'s ``metric`` (its value and interval) where the check ran ``ok``, else None."""
    def read(results: Results) -> dict | None:
        result = results.get(check)
        if not result or result.get("status") != "ok":
            return None
        found = result.get("metrics", {}).get(metric)
        return found if isinstance(found, dict) and found.get("value") is not None else None

    read.__doc__ = f"{check}.{metric}"
    read.check, read.metric = check, metric  # what a paired comparison of the column resamples
    return read


def read_difference(first: Reader, second: Reader) -> Reader:
    """A reader of ``first - second`` (a value without an interval), None where either is undefined."""
    def read(results: Results) -> dict | None:
        a, b = first(results), second(results)
        return None if a is None or b is None else {"value": a["value"] - b["value"]}

    return read


@dataclass(frozen=True)
class Column:
    """A summary column: ``label``, where its value comes from, and which way is better (for ranks)."""

    key: str  # stable identifier ("pointing", "gap"), used by `check` for ranks and differences
    label: str  # header on the board
    source: str  # the check whose status decides "n/a" in the cell
    read: Reader
    better: str | None = None  # "higher" or "lower"
    signed: bool = False  # shown with a sign and no interval (a difference)

    def cell(self, results: Results) -> str:
        """The cell: value with its interval, "n/a" where the method has no defined map, "–" where undefined."""
        found = self.read(results)
        if found is None:
            return "n/a" if (results.get(self.source) or {}).get("status") == "n/a" else "–"
        if self.signed:
            return f"{found['value']:+.3f}"
        text = f"{found['value']:.3f}"
        if found.get("ci_low") is not None and found.get("ci_high") is not None:
            text += f" [{found['ci_low']:.2f}, {found['ci_high']:.2f}]"
        return text


@dataclass(frozen=True)
class Rule:
    """A verdict: pass if the value read ``pass_if`` ``value``; ``reason`` is printed on the board.

    ``beats_controls``: instead of a fixed threshold, the method's interval must lie beyond the best value of
    the board's controls (the ``control`` family): its lower end above it when higher is better.
    """

    key: str  # the verdict's name on the board and for `check --require`
    letter: str  # one letter in the summary's verdict column
    metric: str  # what is compared, in words
    read: Reader
    pass_if: str = ">="  # ">=" or "<="
    value: float | None = None
    reason: str = ""
    beats_controls: bool = False

    def threshold(self) -> dict:
        """The rule as the board's JSON records it."""
        return {"metric": self.metric, "pass_if": self.pass_if, "value": self.value}
