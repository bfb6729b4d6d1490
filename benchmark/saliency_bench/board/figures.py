"""PNG figures of the board: maps of each method for two classes of one image (paper Fig. 1/6).

The grid is drawn by a pure builder (``method_grid_plot``) that returns the Figure, so its layout can be checked
without a model; ``draw_method_grid`` computes the maps and saves the PNG. Each check draws its own figures.
"""
from __future__ import annotations

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

from ..checks.figure_style import DIVERGING, DPI, FONT, SEQUENTIAL, variant_groups, wrap_name  # noqa: E402
from ..errors import UserError  # noqa: E402
from ..harness.group import MethodGroup  # noqa: E402
from ..harness.suite import Suite  # noqa: E402
from ..run.options import RunOptions  # noqa: E402
from ..run.session import open_suite  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import Registry

COLUMNS = 8  # methods per band of the map grid


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


def _color_bar(fig: Figure, cax, cmap: str, signed: bool) -> None:
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
                _color_bar(fig, caxes[1 + 2 * i], cmap, signed)
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


def figure_command(args, log) -> int:
    """``saliency-bench figure``: the map grid of a family (or named methods) on one image, saved as a PNG."""
    from ..plugins import load_registry

    path = method_grid_figure(load_registry(log), args.output, family=args.family, methods=args.methods,
                              image=args.image, model=args.model, dataset=args.dataset, data_root=args.data_root,
                              weights=args.weights, device=args.device)
    log(f"figure: {path}")
    return 0


def method_grid_figure(registry: "Registry", output: str, family: str = "all", methods: Sequence[str] | None = None, image: int | None = None,
                       model: str | None = None, dataset: str | None = None, data_root: str | None = None,
                       weights: str | None = None, device: str = "auto") -> Path:
    """``saliency-bench figure``: the grid for a family (or named methods) on one image."""
    names = registry.select_methods(methods) if methods else [
        n for n, r in registry.methods.items() if family == "all" or r.obj.family == family
    ]
    if not names:
        raise UserError(f"no registered method of family '{family}'")
    from ..store.files import check_folder

    check_folder(Path(output).parent, "--output's folder")
    if Path(output).is_dir():
        raise UserError(f"--output {output} is a folder; name a PNG file")
    options = RunOptions(model=model, dataset=dataset, data_root=data_root, weights=weights, device=device,
                         progress=False)
    suite = open_suite(options, registry)
    return draw_method_grid(suite, registry, names, Path(output), image)
