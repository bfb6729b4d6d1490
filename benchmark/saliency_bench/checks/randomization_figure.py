"""The randomisation check's figure: Spearman-on-HOG curves along the cascade, in small multiples (paper Fig. 4)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .figure_style import CONTROL_COLOR, CONTROL_FAMILY, CONTROL_STYLES, DPI, FONT, line_style, variant_groups  # noqa: E402

MAX_LINES = 7  # method curves per panel (the controls come on top)
LEGACY = (CONTROL_FAMILY, "baseline")  # the controls' family, and its name on boards written earlier


def randomization_curves(board: dict, check: str) -> tuple[list[str], dict[str, list[tuple[str, list]]]]:
    """(layers, {family: [(method, values)]}) of the methods whose randomisation check has a curve."""
    families: dict[str, list[tuple[str, list]]] = {}
    layers: list[str] = []
    for name, entry in board["methods"].items():
        result = entry["results"].get(check) or {}
        curve = result.get("curve") if result.get("status") == "ok" else None
        if not curve:
            continue
        layers = curve["layers"]
        values = [point.get("value") if isinstance(point, dict) else point for point in curve["spearman_hog"]]
        families.setdefault(entry["family"], []).append((name, [math.nan if v is None else float(v) for v in values]))
    return layers, families


def randomization_panels(families: Mapping[str, list]) -> list[tuple[str, list]]:
    """(title, lines) per panel: each family, split by ``variant_groups``; the controls get panels only alone."""
    panels: list[tuple[str, list]] = []
    for family in sorted(families):
        if family in LEGACY and len(families) > 1:
            continue
        lines = dict(families[family])
        groups = variant_groups(list(lines), MAX_LINES)
        for i, (base, names) in enumerate(groups):
            if base:
                title = f"{family}: {base} variants"
            elif len(groups) == 1:
                title = family
            elif any(b for b, _ in groups):
                title = f"{family}: other methods"
            else:
                title = f"{family} ({i + 1} of {len(groups)})"
            panels.append((title, [(n, lines[n]) for n in names]))
    return panels


def _curve_label(name: str, values: list, earlier: list[tuple[str, list]], tolerance: float = 0.005) -> str:
    """``name``, flagged when its curve coincides with an earlier one of the panel (which it then hides)."""
    for other, theirs in earlier:
        a, b = np.asarray(values, dtype=float), np.asarray(theirs, dtype=float)
        if a.shape == b.shape and np.array_equal(np.isnan(a), np.isnan(b)):
            gap = np.abs(a - b)[~np.isnan(a)]
            if gap.size and gap.max() <= tolerance:
                return f"{name} ({'=' if gap.max() == 0 else '≈'} {other})"
    return name


def randomization_plot(board: dict, check: str) -> Figure | None:
    """Small multiples of Spearman-on-HOG after each cascading randomisation step, ≤ ``MAX_LINES`` per panel,
    the controls (family ``control``) as thin grey lines in every panel; None if no curve."""
    layers, families = randomization_curves(board, check)
    if not families:
        return None
    panels = randomization_panels(families)
    controls = [line for family in LEGACY for line in families.get(family, [])] if len(families) > 1 else []
    values = [v for lines in families.values() for _, vs in lines for v in vs if not math.isnan(v)]
    bottom = min(-0.05, min(values, default=0.0) - 0.05)
    ncols = min(4, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    legend_rows = max(math.ceil((len(lines) + len(controls)) / 2) for _, lines in panels)
    legend_height = 0.2 * legend_rows + 0.1
    with plt.rc_context(FONT):
        fig = plt.figure(figsize=(3.3 * ncols + 0.5, (2.6 + legend_height) * nrows + 1.2), dpi=DPI,
                         layout="constrained")
        grid = fig.add_gridspec(2 * nrows, ncols, height_ratios=[2.6, legend_height] * nrows)
        first = None
        for k, (title, lines) in enumerate(panels):
            r, c = divmod(k, ncols)
            ax = fig.add_subplot(grid[2 * r, c], sharey=first)
            first = first or ax
            x = range(len(layers))
            ax.axhline(0, color="#cccccc", lw=0.6, zorder=0)
            for j, (name, vs) in enumerate(controls):
                ax.plot(x, vs[:len(layers)], color=CONTROL_COLOR, lw=1.0, label=f"{name} (control)",
                        linestyle=CONTROL_STYLES[j % len(CONTROL_STYLES)], zorder=2, gid=f"control:{name}")
            for j, (name, vs) in enumerate(lines):
                ax.plot(x, vs[:len(layers)], label=_curve_label(name, vs, lines[:j]), lw=1.3, markersize=4,
                        zorder=3 + j, gid=f"method:{name}", **line_style(j))
            ax.set_title(title)
            ax.set_xticks(list(x), [layer or "(the rest)" for layer in layers], rotation=90)  # "": the root module
            ax.set_ylim(bottom, 1.05)
            ax.grid(axis="y", color="#eeeeee", lw=0.6)
            holder = fig.add_subplot(grid[2 * r + 1, c])
            holder.set_axis_off()
            handles, labels = ax.get_legend_handles_labels()
            order = list(range(len(controls), len(handles))) + list(range(len(controls)))  # methods first
            holder.legend([handles[i] for i in order], [labels[i] for i in order], loc="upper center", ncols=2,
                          frameon=False, handlelength=3.2, borderaxespad=0.0, columnspacing=1.0)
        fig.suptitle("Cascading randomisation: maps of the re-initialised vs the trained model")
        fig.supxlabel("layers re-initialised cumulatively from the logits (left: classifier only; right: all layers)")
        fig.supylabel("Spearman on HOG vs trained model")
    return fig


def draw_randomization_curves(board: dict, output: Path, check: str) -> Path | None:
    """Save ``randomization_plot(board, check)`` to ``output``; None (nothing written) if the board has no curve."""
    fig = randomization_plot(board, check)
    if fig is None:
        return None
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=DPI)
    plt.close(fig)
    return output
