"""Check parameters declared in one place: each check's ``param_schema`` maps every key to a ``Param``.

The runner converts a ``--param CHECK.KEY=VALUE`` to the type of the default, then ``validate`` refuses
what the check cannot use (a NaN tolerance, an even SSIM window, an unknown tie rule...) with one line
naming the parameter, what it must be and what it got, before anything runs or is stored. A bound may
depend on the model (``maximum=lambda params, suite: ...``): those are checked once the fixed ranges hold.
Checks without a schema (third-party plugins) keep the runner's former checks: type conversion (no NaN or
infinite floats) and the ranges of the shared keys (images, bootstrap_samples, ci_level), in FALLBACK_SCHEMA.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Union

from ..errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from ..harness.suite import Suite

Bound = Union[float, int, Callable[[dict, "Suite"], float], None]
TYPE_WORDS = {int: "an integer", float: "a finite number", str: "a string", bool: "true or false", list: "a list"}


@dataclass(frozen=True)
class Param:
    """What one check parameter may be.

    ``type``: int, float, str, bool or list (a float accepts an int; bool is never an int). ``minimum`` /
    ``maximum`` with ``*_inclusive`` flags; a callable bound ``(params, suite) -> number`` is derived from
    the model (its reason in ``bound_note``, formatted with ``input_size``). ``finite``: refuse NaN and
    infinities (floats). ``odd``: an odd integer. ``choices``: the allowed values. ``settable``: False for
    values that cannot come from the command line (lists).
    """

    type: type
    minimum: Bound = None
    maximum: Bound = None
    min_inclusive: bool = True
    max_inclusive: bool = True
    finite: bool = True
    odd: bool = False
    choices: tuple | None = None
    settable: bool = True
    bound_note: str = ""

    def describe(self, minimum: Bound = None, maximum: Bound = None) -> str:
        """The requirement in words: "a finite number >= 0", "an odd integer in [3, 95]", "one of a, b"."""
        if self.choices is not None:
            return "one of " + ", ".join(str(choice) for choice in self.choices)
        minimum = self.minimum if minimum is None and not callable(self.minimum) else minimum
        maximum = self.maximum if maximum is None and not callable(self.maximum) else maximum
        words = TYPE_WORDS.get(self.type, f"a {self.type.__name__}")
        if self.type is float and not self.finite:
            words = "a number"
        if self.odd:
            words = "an odd integer"
        if minimum is not None and maximum is not None:
            low, high = "[" if self.min_inclusive else "(", "]" if self.max_inclusive else ")"
            return f"{words} in {low}{_number(minimum)}, {_number(maximum)}{high}"
        if minimum is not None:
            return f"{words} {'>=' if self.min_inclusive else '>'} {_number(minimum)}"
        if maximum is not None:
            return f"{words} {'<=' if self.max_inclusive else '<'} {_number(maximum)}"
        return words

    def accepts(self, value: object, minimum: Bound = None, maximum: Bound = None) -> bool:
        """Whether ``value`` meets the type, finiteness, parity, choices and the given (or fixed) bounds."""
        if self.choices is not None:
            return isinstance(value, self.type) and value in self.choices
        if self.type is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return False
            if self.finite and not math.isfinite(value):
                return False
        elif self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                return False
        elif not isinstance(value, self.type):
            return False
        if self.odd and value % 2 != 1:
            return False
        minimum = self.minimum if minimum is None and not callable(self.minimum) else minimum
        maximum = self.maximum if maximum is None and not callable(self.maximum) else maximum
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if minimum is not None and not (value >= minimum if self.min_inclusive else value > minimum):
                return False
            if maximum is not None and not (value <= maximum if self.max_inclusive else value < maximum):
                return False
        return True


def _number(value: float) -> str:
    """A bound as written: ``0``, ``0.5``, ``135.8``."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _shown(value: object) -> str:
    """The offending value as the user typed it: ``nan``, ``-5.0``, ``'xavier'``."""
    return repr(value) if isinstance(value, str) else str(value)


def validate(check_name: str, params: Mapping, schema: Mapping[str, Param], suite: "Suite | None" = None,
             first: Iterable[str] = ()) -> None:
    """Raise a one-line UserError for the first parameter in ``params`` that its ``schema`` entry refuses.

    Keys without an entry are not checked. Fixed ranges are checked first for every key, so a model-derived
    bound (given a ``suite``) may rely on the other parameters being valid. Keys in ``first`` (those the user
    set) are checked before the others, so that of two parameters that do not fit together (HOG cell and
    block) the one the user changed is named.
    """
    first = [key for key in first if key in schema]
    order = first + [key for key in schema if key not in first]
    for key in order:
        spec = schema[key]
        if key in params and not spec.accepts(params[key]):
            raise UserError(f"parameter {check_name}.{key} must be {spec.describe()}, got {_shown(params[key])}")
    if suite is None:
        return
    refusals = []
    for key in order:
        spec = schema[key]
        if key not in params or not (callable(spec.minimum) or callable(spec.maximum)):
            continue
        low = spec.minimum(params, suite) if callable(spec.minimum) else spec.minimum
        high = spec.maximum(params, suite) if callable(spec.maximum) else spec.maximum
        if not spec.accepts(params[key], low, high):
            note = spec.bound_note.format_map({**params, "input_size": suite.model.input_size})
            refusals.append((low is not None and high is not None and low > high,
                             f"parameter {check_name}.{key} must be {spec.describe(low, high)}"
                             f"{f' ({note})' if note else ''}, got {_shown(params[key])}"))
    if refusals:  # a refusal whose allowed range is empty says nothing useful: prefer another
        raise UserError(next((text for empty, text in refusals if not empty), refusals[0][1]))


# Shared by every built-in check (the runner adds ``images``; the bootstrap keys are in each schema).
IMAGES = Param(int, minimum=1)
BOOTSTRAP = {
    "bootstrap_samples": Param(int, minimum=1),
    "ci_level": Param(float, minimum=0.0, maximum=1.0, min_inclusive=False, max_inclusive=False),
    "seed": Param(int, minimum=0),  # numpy's generators take no negative seed
}
HOG = {
    "hog_cell": Param(int, minimum=1, maximum=lambda params, suite: suite.model.input_size // params["hog_block"],
                      bound_note="HOG blocks of {hog_block} cells must fit the {input_size} px maps"),
    "hog_block": Param(int, minimum=1, maximum=lambda params, suite: suite.model.input_size // params["hog_cell"],
                       bound_note="HOG blocks of cells of {hog_cell} px must fit the {input_size} px maps"),
    "hog_orientations": Param(int, minimum=1),
}


def _largest_odd_at_most(limit: int) -> int:
    return limit if limit % 2 else limit - 1


SSIM_WINDOW_PARAM = Param(int, minimum=3, odd=True,
                          maximum=lambda params, suite: _largest_odd_at_most(suite.model.input_size),
                          bound_note="the SSIM window must fit the {input_size} px maps")
TOLERANCE_PARAM = Param(float, minimum=0.0,
                        maximum=lambda params, suite: round(math.sqrt(2) * suite.model.input_size, 3),
                        bound_note="the diagonal of the {input_size} px maps, beyond which every point is a hit")

# A check without a schema (a third-party plugin): only the keys the runner has always checked, leniently typed.
FALLBACK_SCHEMA = {
    "images": Param(float, minimum=1),
    "bootstrap_samples": Param(float, minimum=1),
    "ci_level": BOOTSTRAP["ci_level"],
}
