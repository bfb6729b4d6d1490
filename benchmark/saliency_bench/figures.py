"""PNG figures: maps of each method for two classes of one image (paper Fig. 1/6), randomisation curves (Fig. 4)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .checks.base import MethodGroup  # noqa: E402
from .errors import UserError  # noqa: E402
from .plugins import Registry, get_plugin_manager  # noqa: E402
from .suite import Suite  # noqa: E402

COLUMNS = 8


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


def _display(m: torch.Tensor) -> torch.Tensor:
    """Per-map min-max for display only (the checks never see this)."""
    m = m.float().cpu()
    return (m - m.min()) / (m.max() - m.min()).clamp_min(1e-12)


def draw_method_grid(suite: Suite, registry: Registry, methods: Sequence[str], output: Path, index: int | None = None) -> Path:
    """Maps of ``methods`` for the two top-scoring present classes of one image, bands of 8 methods."""
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
    names = [n for n in methods if n in maps]
    bands = max(1, -(-len(names) // COLUMNS))
    cols = min(COLUMNS, max(1, len(names))) + 1
    fig, axes = plt.subplots(2 * bands, cols, figsize=(1.6 * cols, 3.4 * bands), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    picture = sample["image"].permute(1, 2, 0).clamp(0, 1).numpy()
    for band in range(bands):
        for row, cls in enumerate(classes.tolist()):
            ax = axes[2 * band + row, 0]
            ax.imshow(picture)
            ax.set_title(suite.model.class_names[cls], fontsize=8)
        for col, name in enumerate(names[band * COLUMNS:(band + 1) * COLUMNS], start=1):
            for row in range(len(classes)):
                ax = axes[2 * band + row, col]
                ax.imshow(_display(maps[name][row]).numpy(), cmap="jet")
                if row == 0:
                    ax.set_title(name, fontsize=7)
    fig.suptitle(f"{suite.model.name} / {suite.dataset.name} image {index}: maps for two classes", fontsize=9)
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=80)
    plt.close(fig)
    return output


def draw_randomization_curves(board: dict, output: Path) -> Path | None:
    """Spearman-on-HOG after each cascading randomisation step, one line per method, a panel per family."""
    families: dict[str, list[tuple[str, list]]] = {}
    layers: list[str] = []
    for name, entry in board["methods"].items():
        result = entry["results"].get("randomization") or {}
        curve = result.get("curve") if result.get("status") == "ok" else None
        if not curve:
            continue
        layers = curve["layers"]
        values = [point.get("value") if isinstance(point, dict) else point for point in curve["spearman_hog"]]
        families.setdefault(entry["family"], []).append((name, values))
    if not families:
        return None
    fig, axes = plt.subplots(1, len(families), figsize=(5.5 * len(families), 4), squeeze=False, sharey=True)
    for ax, (family, lines) in zip(axes[0], sorted(families.items())):
        for name, values in lines:
            ax.plot(range(len(values)), [float("nan") if v is None else v for v in values], marker=".", label=name)
        ax.set_title(family)
        ax.set_xticks(range(len(layers)))
        ax.set_xticklabels(layers, rotation=70, fontsize=6)
        ax.set_xlabel("layers re-initialised (cumulative, from the logits)")
        ax.set_ylim(-0.2, 1.05)
        ax.axhline(0, color="grey", lw=0.5)
        ax.legend(fontsize=5, ncol=2)
    axes[0][0].set_ylabel("Spearman on HOG vs. trained model")
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=90)
    plt.close(fig)
    return output


def method_grid_figure(output: str, family: str = "all", methods: Sequence[str] | None = None, image: int | None = None,
                       model: str | None = None, dataset: str | None = None, data_root: str | None = None,
                       weights: str | None = None, device: str = "auto") -> Path:
    """``saliency-bench figure``: the grid for a family (or named methods) on one image."""
    from .runner import RunOptions, open_suite

    registry = get_plugin_manager().registry()
    names = registry.select_methods(methods) if methods else [
        n for n, r in registry.methods.items() if family == "all" or r.obj.family == family
    ]
    if not names:
        raise UserError(f"no registered method of family '{family}'")
    options = RunOptions(model=model, dataset=dataset, data_root=data_root, weights=weights, device=device,
                         progress=False)
    suite = open_suite(options, registry)
    return draw_method_grid(suite, registry, names, Path(output), image)
