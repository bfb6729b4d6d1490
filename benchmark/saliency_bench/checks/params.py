"""Check parameters, declared once: ``Param`` holds a parameter's default, type and range (docs/writing-a-check.md).

A check's ``parameters`` maps every key to a ``Param``; the harness adds ``images``. ``check_parameters`` takes the
defaults for the run's suite, applies the user's ``--param CHECK.KEY=VALUE`` (converted to the parameter's type),
and refuses what the check cannot use (a NaN tolerance, an even SSIM window, an unknown tie rule, more images
than the run has...) with one line naming the parameter, what it must be and what it got, before anything runs
or is stored. A default or a bound may depend on the model (``suite -> value``; ``(params, suite) -> bound``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Union

from ..errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from ..harness.suite import Suite
    from ..models.wrapper import ModelWrapper

Bound = Union[float, int, Callable[[dict, "Suite"], float], None]
TYPE_WORDS = {int: "an integer", float: "a finite number", str: "a string", bool: "true or false", list: "a list"}
MAX_COUNT = 10**6  # bootstrap samples, draws, steps: beyond this a run would not end


@dataclass(frozen=True)
class Param:
    """One check parameter: its ``default`` (a value, or ``suite -> value`` for one derived from the model) and
    what it may be.

    ``type``: int, float, str, bool or list (a float accepts an int; bool is never an int). ``minimum`` /
    ``maximum`` with ``*_inclusive`` flags; a callable bound ``(params, suite) -> number`` is derived from
    the model (its reason in ``bound_note``, formatted with ``input_size``). ``finite``: refuse NaN and
    infinities (floats). ``odd``: an odd integer. ``choices``: the allowed values. ``settable``: False for
    values that cannot come from the command line (lists). ``help``: one line for the documentation.
    """

    type: type
    default: object = None
    minimum: Bound = None
    maximum: Bound = None
    min_inclusive: bool = True
    max_inclusive: bool = True
    finite: bool = True
    odd: bool = False
    choices: tuple | None = None
    settable: bool = True
    bound_note: str = ""
    help: str = ""

    def default_for(self, suite: "Suite") -> object:
        """The default on ``suite`` (a derived default is computed from it)."""
        return self.default(suite) if callable(self.default) else self.default

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
        if not self._typed(value):
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

    def _typed(self, value: object) -> bool:
        """Whether ``value`` has the parameter's type (an int is a float; a bool is never a number)."""
        if self.type is float:
            return (not isinstance(value, bool) and isinstance(value, (int, float))
                    and (not self.finite or math.isfinite(value)))
        if self.type is int:
            return not isinstance(value, bool) and isinstance(value, int)
        return isinstance(value, self.type)

    def convert(self, check: str, key: str, value: object) -> object:
        """A ``--param`` value (a string) as the parameter's type; a value already typed (a recorded configuration
        replayed by ``check``) as it is; a bad value is a one-line UserError."""
        if self._typed(value) or (self.type is float and isinstance(value, float)):
            return value
        if not self.settable or self.type in (list, dict):
            raise UserError(f"parameter {check}.{key} is a {self.type.__name__} and cannot be set from the command line")
        if not isinstance(value, str):
            raise UserError(f"parameter {check}.{key} must be {self.describe()}, got {_shown(value)}")
        if self.type is bool:
            if value.lower() not in ("true", "false", "1", "0"):
                raise UserError(f"parameter {check}.{key} expects true or false, got {value!r}")
            return value.lower() in ("true", "1")
        if self.type in (int, float):
            try:
                return self.type(value) if len(value) < 40 else self.type("x")
            except (ValueError, OverflowError):
                raise UserError(f"parameter {check}.{key} must be {self.describe()}, got {value[:40]!r}") from None
        return value


def _number(value: float) -> str:
    """A bound as written: ``0``, ``0.5``, ``135.8``."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _shown(value: object) -> str:
    """The offending value as the user typed it: ``nan``, ``-5.0``, ``'xavier'``."""
    return repr(value) if isinstance(value, str) else str(value)


def default_values(parameters: Mapping[str, Param], suite: "Suite") -> dict:
    """``{key: default}`` of every declared parameter on ``suite``."""
    return {key: spec.default_for(suite) for key, spec in parameters.items()}


# The ``images`` every check has: at most the run's images (``--limit``), by default the dataset's choice.
IMAGES = Param(int, minimum=1, maximum=lambda params, suite: suite.num_images, bound_note="the run's images, --limit",
               help="images the check scores (default: the dataset's choice for the check, at most the run's)")


def check_parameters(check, suite: "Suite", overrides: Mapping[str, object]) -> dict:
    """The check's parameters on ``suite``: its defaults, the user's overrides (converted, validated), ``images``.

    An unknown key, a value of the wrong type or out of its range is a one-line UserError before anything runs.
    ``images`` defaults to the run's images, or for a costly check (``Check.costly``) to the dataset's choice
    (``Dataset.images_for_costly_checks``), capped at the run's.
    """
    from ..store.files import plain

    schema = {"images": IMAGES, **check.parameters}
    overrides = check.upgrade_params(dict(overrides))  # a board recorded by an earlier version, replayed by `check`
    params = dict(check.default_params(suite))
    costly = getattr(suite.dataset, "images_for_costly_checks", None) if getattr(check, "costly", False) else None
    params.setdefault("images", min(int(costly or suite.num_images), suite.num_images))
    for key, value in overrides.items():
        if key not in schema:
            raise UserError(f"check '{check.name}' has no parameter {key!r} (has: {', '.join(sorted(schema))})")
        params[key] = schema[key].convert(check.name, key, value)
    validate(check.name, params, schema, suite, first=list(overrides))
    return plain(params)


def validate(check_name: str, params: Mapping, schema: Mapping[str, Param], suite: "Suite | None" = None,
             first: Iterable[str] = ()) -> None:
    """Raise a one-line UserError for the first parameter in ``params`` that its ``schema`` entry refuses.

    Fixed ranges are checked first for every key, so a model-derived bound (given a ``suite``) may rely on the
    other parameters being valid. Keys in ``first`` (those the user set) are checked before the others, so that
    of two parameters that do not fit together (HOG cell and block) the one the user changed is named.
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


# Shared by the built-in checks (and public, for plugins: ``saliency_bench.BOOTSTRAP_PARAMS``).
BOOTSTRAP = {
    "bootstrap_samples": Param(int, 1000, minimum=1, maximum=MAX_COUNT, help="bootstrap resamples of the images"),
    "ci_level": Param(float, 0.95, minimum=0.0, maximum=1.0, min_inclusive=False, max_inclusive=False,
                      help="the level of every confidence interval"),
    "seed": Param(int, lambda suite: int(suite.seed), minimum=0, maximum=2**32 - 1,  # numpy takes no negative seed
                  help="the bootstrap's seed (default: the run's)"),
}


def hog_cell(input_size: int) -> int:
    """HOG cell of 16 px at 224 px (Adebayo et al. 2018), scaled with the input size, at least 2 px."""
    return max(2, int(round(16.0 * input_size / 224.0)))


def hog_params(model: "ModelWrapper") -> dict:
    """The HOG parameters recorded with a result (skimage ``hog`` defaults apart from the scaled cell)."""
    return {"hog_cell": hog_cell(model.input_size), "hog_block": 3, "hog_orientations": 9}


def hog_args(params: dict) -> dict:
    """Keyword arguments of ``hog_spearman`` from a check's parameters."""
    return {"cell": int(params["hog_cell"]), "block": int(params["hog_block"]), "orientations": int(params["hog_orientations"])}


HOG = {
    "hog_cell": Param(int, lambda suite: hog_cell(suite.model.input_size), minimum=1,
                      maximum=lambda params, suite: suite.model.input_size // params["hog_block"],
                      bound_note="HOG blocks of {hog_block} cells must fit the {input_size} px maps",
                      help="HOG cell in pixels: 16 px at 224 px, scaled with the input size"),
    "hog_block": Param(int, 3, minimum=1, maximum=lambda params, suite: suite.model.input_size // params["hog_cell"],
                       bound_note="HOG blocks of cells of {hog_cell} px must fit the {input_size} px maps",
                       help="HOG block in cells (skimage's default)"),
    "hog_orientations": Param(int, 9, minimum=1, maximum=360, help="HOG orientation bins (skimage's default)"),
}


def _largest_odd_at_most(limit: int) -> int:
    return limit if limit % 2 else limit - 1


SSIM_WINDOW_PARAM = Param(int, 7, minimum=3, odd=True,
                          maximum=lambda params, suite: _largest_odd_at_most(suite.model.input_size),
                          bound_note="the SSIM window must fit the {input_size} px maps",
                          help="SSIM window (skimage's default, as Adebayo et al. 2018)")
# What the four similarities of the randomisation checks read (``similarity.map_similarities``).
SIMILARITY = {**HOG, "ssim_window": SSIM_WINDOW_PARAM}

TOLERANCE_PARAM = Param(float, lambda suite: round(15.0 * suite.model.input_size / 224.0, 6), minimum=0.0,
                        maximum=lambda params, suite: round(math.sqrt(2) * suite.model.input_size, 3),
                        bound_note="the diagonal of the {input_size} px maps, beyond which every point is a hit",
                        help="pixels from the mask that still count as a hit: 15 px at 224 px (TorchRay), scaled")
