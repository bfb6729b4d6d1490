"""The look shared by every figure: the colour-blind palette, line styles, fonts, name wrapping, panel groups."""
from __future__ import annotations

import math
import re
from typing import Sequence

MAX_LINES = 7  # method curves per randomisation panel (the controls come on top)
CONTROL_FAMILY = "control"  # the controls: the reference lines of every panel (methods.CONTROL)
DPI = 100
# Okabe & Ito (2008), colour-blind safe; yellow last (weak on white).
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
CONTROL_COLOR = "#777777"
CONTROL_STYLES = ((0, (6, 2)), (0, (1, 1.5)), (0, (3, 1, 1, 1)), "-")
SEQUENTIAL = "viridis"  # maps with no negative value: 0 .. max
DIVERGING = "RdBu_r"  # signed maps: -max|m| .. 0 .. +max|m|
FONT = {"font.size": 8, "axes.titlesize": 8.5, "axes.labelsize": 8, "xtick.labelsize": 7.5,
        "ytick.labelsize": 7.5, "legend.fontsize": 7.5, "figure.titlesize": 10, "figure.labelsize": 9}


def line_style(i: int) -> dict:
    """Colour, marker and dash of the i-th line of a panel: the first 8 differ in all three (greyscale-safe)."""
    return {"color": OKABE_ITO[i % len(OKABE_ITO)], "marker": MARKERS[i % len(MARKERS)],
            "linestyle": LINESTYLES[i % len(LINESTYLES)]}


def wrap_name(name: str, width: int = 13) -> str:
    """``name`` on lines of at most ``width`` characters where it can, broken after '_' or before '@'."""
    parts = [p for p in re.split(r"(?<=_)|(?=@)", name) if p]
    lines = [""]
    for part in parts:
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append(part)
        else:
            lines[-1] += part
    return "\n".join(lines)


def _even_chunks(items: list, limit: int) -> list[list]:
    count = max(1, math.ceil(len(items) / limit))
    size, extra = divmod(len(items), count)
    chunks, start = [], 0
    for i in range(count):
        end = start + size + (i < extra)
        chunks.append(items[start:end])
        start = end
    return chunks


def variant_groups(names: Sequence[str], limit: int) -> list[tuple[str, list[str]]]:
    """``names`` split into groups of at most ``limit``: the variants of one base name (the part before '@',
    e.g. gradcam, gradcam@B1 .. gradcam@B5) stay together; bases with a single member are pooled; a group over
    the limit is split evenly. Returns (label, names): the base name, or "" for a pool of single methods."""
    bases: dict[str, list[str]] = {}
    for name in names:
        bases.setdefault(name.split("@", 1)[0], []).append(name)
    groups: list[tuple[str, list[str]]] = []
    for base, members in bases.items():
        if len(members) > 1:
            groups += [(base, chunk) for chunk in _even_chunks(members, limit)]
    singles = [members[0] for members in bases.values() if len(members) == 1]
    if singles:
        groups += [("", chunk) for chunk in _even_chunks(singles, limit)]
    return groups
