"""Method names <-> what they compute: ``gradcam@B3``, ``gradcam`` (last block), ``cumulative_*``, ``fullgrad``."""
from __future__ import annotations

from dataclasses import dataclass

from .formulas import BLOCK_FORMULAS

LAST_BLOCK = "last"  # ``gradcam`` reads the model's last block (B5 on 5-block VGG-like models)
CUMULATIVE = {"cumulative_gradcam": "gradcam_pos", "cumulative_gradmid": "gradmid"}
ALIASES = {"gradcam": ("gradcam", LAST_BLOCK)}


@dataclass(frozen=True)
class MapRequest:
    """What one method name asks of the shared pass: a formula, at a block, or summed over all blocks."""

    formula: str  # a key of BLOCK_FORMULAS, or "fullgrad"
    block: str | None = None  # "B3", LAST_BLOCK, or None (cumulative, fullgrad)
    cumulative: bool = False


def block_method_name(formula: str, block: str) -> str:
    """``formula@block``, e.g. ``gradcam_pos@B3``."""
    return f"{formula}@{block}"


def parse_name(name: str) -> MapRequest:
    """The MapRequest a method name stands for; ValueError for a name this plugin does not define."""
    if name == "fullgrad":
        return MapRequest("fullgrad")
    if name in CUMULATIVE:
        return MapRequest(CUMULATIVE[name], cumulative=True)
    if name in ALIASES:
        formula, block = ALIASES[name]
        return MapRequest(formula, block)
    formula, at, block = name.partition("@")
    if at and block and formula in BLOCK_FORMULAS:
        return MapRequest(formula, block)
    raise ValueError(f"{name!r} is not an aggregation method name")
