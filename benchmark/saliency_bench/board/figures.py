"""PNG figures: maps of each method for two classes of one image (paper Fig. 1/6), randomisation curves (Fig. 4).

Both figures are drawn by pure builders (``method_grid_plot``, ``randomization_plot``) that return the Figure, so
their layout can be checked without a model; ``draw_*`` compute the inputs and save the PNG.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..checks.base import MethodGroup  # noqa: E402
from ..errors import UserError  # noqa: E402
from ..run.session import RunOptions, open_suite  # noqa: E402
from ..harness.suite import Suite  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import Registry

COLUMNS = 8  # methods per band of the map grid
MAX_LINES = 7  # method curves per randomisation panel (the controls come on top)
CONTROL_FAMILY = "baseline"  # its methods (random, edge) are the reference lines of every panel
DPI = 100
# Okabe & Ito (2008), colour-blind safe; yellow last (weak on white).
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
CONTROL_COLOUR = "#777777"
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


# ----------------------------------------------------------------------------------------------- method grid


def map_norm(m) -> tuple[str, float, float]:
    """(colour map, vmin, vmax) of one map: sequential 0..max if no value is negative, else diverging ±max|m|."""
    m = np.asarray(m, dtype=float)
    finite = m[np.isfinite(m)]
    if finite.size == 0:
        return SEQUENTIAL, 0.0, 1.0
    if finite.min() >= 0:
        top = float(finite.max())
        return SEQUENTIAL, 0.0, top if top > 0 else 1.0
    bound = float(np.abs(finite).max())
    return DIVERGING, -bound, bound


def _colour_bar(fig: Figure, cax, cmap: str, signed: bool) -> None:
    norm = Normalize(-1.0, 1.0) if signed else Normalize(0.0, 1.0)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax, orientation="horizontal")
    if signed:
        bar.set_ticks([-1, 0, 1], labels=["−max|m|", "0", "+max|m|"])
        bar.set_label("signed map: negative · 0 · positive")
    else:
        bar.set_ticks([0, 1], labels=["0", "max"])
        bar.set_label("non-negative map: 0 · max")


def method_grid_plot(picture: np.ndarray, class_names: Sequence[str], maps: Mapping[str, Sequence],
                     title: str) -> Figure:
    """The grid: a band of two rows (one per class) per group of methods, the input on the left of each row.

    ``maps[name][row]`` is the 2-D map of ``name`` for class ``class_names[row]``. Each map has its own scale
    (see ``map_norm``); the colour bars at the bottom explain both colour maps.
    """
    bands = variant_groups(list(maps), COLUMNS) or [("", [])]
    rows = len(class_names)
    cols = max(len(names) for _, names in bands) + 1
    cell = 1.25  # inches per map
    used = {map_norm(m)[0] for ms in maps.values() for m in ms}
    band_height = rows * cell + 0.45  # the maps and their (up to two-line) titles
    bar_height = 0.6 if used else 0.05
    with plt.rc_context(FONT):
        width = max(5.4, cell * cols + 0.5)
        fig = plt.figure(figsize=(width, band_height * len(bands) + bar_height + 0.6),
                         dpi=DPI, layout="constrained")
        parts = fig.subfigures(len(bands) + 1, 1, height_ratios=[band_height] * len(bands) + [bar_height])
        for part, (_, names) in zip(parts, bands):
            axes = part.subplots(rows, cols, squeeze=False)
            for row, class_name in enumerate(class_names):
                ax = axes[row, 0]
                ax.imshow(picture)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_ylabel(f"class: {class_name}")
                if row == 0:
                    ax.set_title("input")
                for col in range(1, cols):
                    ax = axes[row, col]
                    if col > len(names):
                        ax.set_axis_off()
                        continue
                    ax.set_xticks([])
                    ax.set_yticks([])
                    for spine in ax.spines.values():  # a frame: 0 is white on the diverging map
                        spine.set(color="#b0b0b0", linewidth=0.6)
                    name = names[col - 1]
                    m = np.asarray(maps[name][row], dtype=float)
                    cmap, vmin, vmax = map_norm(m)
                    ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
                    if row == 0:
                        ax.set_title(wrap_name(name), linespacing=1.15)
        kinds = [(k, k == DIVERGING) for k in (SEQUENTIAL, DIVERGING) if k in used]
        if kinds:
            bar, gap = 2.2, 0.9  # inches: each colour bar keeps its size whatever the figure's width
            pad = max(0.1, (width - len(kinds) * bar - (len(kinds) - 1) * gap) / 2)
            ratios = [pad] + [bar, gap] * (len(kinds) - 1) + [bar, pad]
            caxes = parts[-1].subplots(1, len(ratios), width_ratios=ratios)
            for i, cax in enumerate(caxes):
                if i % 2 == 0:
                    cax.set_axis_off()
            for i, (cmap, signed) in enumerate(kinds):
                _colour_bar(fig, caxes[1 + 2 * i], cmap, signed)
        fig.suptitle(title)
    return fig


def pick_image(suite: Suite, index: int | None, search: int = 200) -> int:
    """The requested index, or the first image with two or more classes (else the first image)."""
    if index is not None:
        if not 0 <= index < len(suite.dataset):
            raise UserError(f"--image {index} is outside the dataset (0..{len(suite.dataset) - 1})")
        return index
    for i in range(min(search, len(suite.dataset))):
        if int((suite.dataset[i]["labels"] > 0).sum()) >= 2:
            return i
    return 0


def two_classes(labels: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """The two top-scoring classes present in the image, completed by the top-scoring others if fewer."""
    present = torch.nonzero(labels.to(logits.device) > 0).flatten()
    ranked = present[logits[present].argsort(descending=True)]
    others = [c for c in logits.argsort(descending=True).tolist() if c not in set(ranked.tolist())]
    return torch.tensor((ranked.tolist() + others)[:2], device=logits.device)


def draw_method_grid(suite: Suite, registry: Registry, methods: Sequence[str], output: Path, index: int | None = None) -> Path:
    """Maps of ``methods`` for the two top-scoring present classes of one image (see ``method_grid_plot``)."""
    index = pick_image(suite, index)
    sample = suite.dataset[index]
    images = sample["image"].unsqueeze(0).to(suite.device)
    inputs = suite.model.normalize(images)
    with torch.no_grad():
        logits = suite.model(inputs)[0]
    classes = two_classes(sample["labels"], logits)
    torch.manual_seed(suite.seed)
    group = MethodGroup([registry.methods[n].obj for n in methods], suite.model)
    maps = group(inputs.repeat(len(classes), 1, 1, 1), classes)
    shown = {n: [maps[n][row].detach().float().cpu().numpy() for row in range(len(classes))]
             for n in methods if n in maps}
    picture = sample["image"].permute(1, 2, 0).clamp(0, 1).numpy()
    class_names = [suite.model.class_names[c] for c in classes.tolist()]
    title = (f"{suite.model.name} / {suite.dataset.name} image {index}: maps for two classes (rows)\n"
             f"each map scaled by its own max |value|")
    fig = method_grid_plot(picture, class_names, shown, title)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=DPI)
    plt.close(fig)
    return output


# ----------------------------------------------------------------------------------- randomisation curves


def randomization_curves(board: dict) -> tuple[list[str], dict[str, list[tuple[str, list]]]]:
    """(layers, {family: [(method, values)]}) of the methods whose randomisation check has a curve."""
    families: dict[str, list[tuple[str, list]]] = {}
    layers: list[str] = []
    for name, entry in board["methods"].items():
        result = entry["results"].get("randomization") or {}
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
        if family == CONTROL_FAMILY and len(families) > 1:
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


def randomization_plot(board: dict) -> Figure | None:
    """Small multiples of Spearman-on-HOG after each cascading randomisation step, ≤ ``MAX_LINES`` per panel,
    the controls (family ``baseline``) as thin grey lines in every panel; None if no curve."""
    layers, families = randomization_curves(board)
    if not families:
        return None
    panels = randomization_panels(families)
    controls = families.get(CONTROL_FAMILY, []) if len(families) > 1 else []
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
                ax.plot(x, vs[:len(layers)], color=CONTROL_COLOUR, lw=1.0, label=f"{name} (control)",
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


def draw_randomization_curves(board: dict, output: Path) -> Path | None:
    """Save ``randomization_plot(board)`` to ``output``; None (nothing written) if the board has no curve."""
    fig = randomization_plot(board)
    if fig is None:
        return None
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=DPI)
    plt.close(fig)
    return output


def method_grid_figure(registry: "Registry", output: str, family: str = "all", methods: Sequence[str] | None = None, image: int | None = None,
                       model: str | None = None, dataset: str | None = None, data_root: str | None = None,
                       weights: str | None = None, device: str = "auto") -> Path:
    """``saliency-bench figure``: the grid for a family (or named methods) on one image."""
    names = registry.select_methods(methods) if methods else [
        n for n, r in registry.methods.items() if family == "all" or r.obj.family == family
    ]
    if not names:
        raise UserError(f"no registered method of family '{family}'")
    options = RunOptions(model=model, dataset=dataset, data_root=data_root, weights=weights, device=device,
                         progress=False)
    suite = open_suite(options, registry)
    return draw_method_grid(suite, registry, names, Path(output), image)
