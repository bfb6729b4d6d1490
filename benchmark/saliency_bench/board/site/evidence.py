"""Where a method fails, image by image: its maps on the images where each check scores it worst and best.

The only module of the site that touches maps (tensors): the harness hands it an ``EvidenceSource`` (wiring.py
makes one from a suite), whose ``maps_for(method, images, classes)`` returns ``[n, H, W]`` maps of the trained
model and ``other_maps_for`` those of the model a check pictures beside it (``Check.picture_model``: the fully
randomised model of the randomisation check, weight draw 1). Which images is decided from the
stored per-image values (selection.py); this module only pictures them:

- pointing game: the asked class's map with its peak (the check's tie rule), the tolerance circle and the class's
  mask outlined; worst images show the missed classes, best ones the hit classes (at most 2 maps an image);
- restricted pointing game: the top class's map, its peak, and the masks of every class present;
- class sensitivity: the maps of the top and the bottom class;
- randomisation: the map of the trained model and of the fully randomised one (draw 0).

What the committed site holds (the issue's budget: 15 MB for three models of 37 methods): k = 3 worst and 3 best
images per check, maps shrunk to 64 px tiles (area average; peak, tolerance and masks scaled with them) in 32
colour levels, one palette PNG sprite per method and model (grid and evidence, about 45 tiles: 10-125 KB, noise
maps cost most) and one WebP sheet per model of the input images used. Measured on the committed boards: 10.5 MB
in all (pictures 5.5 MB, figures 2.2 MB, data scripts 2.8 MB, pages 54 KB). A run folder's site (``read_section``
of a folder with ``results/``) adds k = 6 and the maps at their own size (no size budget), each randomisation
image's own Spearman-on-HOG curve along the cascade (from the store's per-step values), and which
class-sensitivity images had one constant map (scored 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from . import images as pictures
from ...checks.pointing import peak_points
from .rows import unique_slugs
from .section import Section
from .selection import picks

GRID_IMAGES = 3  # images of the method's map grid (two classes each)


@dataclass
class EvidenceSource:
    """What picturing needs from the harness: images, masks, labels, logits and the methods' maps."""

    class_names: Sequence[str]
    images: Callable[[Sequence[int]], Any]  # [n, 3, H, W] in [0, 1]
    masks: Callable[[Sequence[int]], Any]  # [n, K, H, W] bool
    labels: Callable[[int], tuple]  # (labels [n, K], trials [n, K]) of images 0 .. n-1
    logits: Callable[[Sequence[int]], Any]  # [n, K]
    maps_for: Callable[[str, Sequence[int], Sequence[int]], Any]  # [n, H, W] of the trained model
    other_maps_for: Callable[[str, str, Sequence[int], Sequence[int]], Any] | None = None  # (check, method, ...)


def as_numpy(value) -> np.ndarray:
    """A tensor or array as a numpy array on the host."""
    return value.detach().float().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)


class Requests:
    """The maps one method's pictures need, asked for in one call per model (the trained one; each check's other)."""

    def __init__(self):
        self.asked: dict[str | None, list[tuple[int, int]]] = {}
        self.maps: dict[str | None, np.ndarray] = {}

    def ask(self, image: int, cls: int, model: str | None = None) -> tuple[str | None, int]:
        """Reserve the map of (image, class) of the trained model, or of the other model of check ``model``."""
        self.asked.setdefault(model, []).append((int(image), int(cls)))
        return model, len(self.asked[model]) - 1

    def fetch(self, source: EvidenceSource, method: str) -> None:
        """Compute every reserved map."""
        for model, pairs in self.asked.items():
            if not pairs or (model is not None and source.other_maps_for is None):
                continue
            images, classes = [p[0] for p in pairs], [p[1] for p in pairs]
            found = source.maps_for(method, images, classes) if model is None else \
                source.other_maps_for(model, method, images, classes)
            self.maps[model] = as_numpy(found)

    def get(self, handle: tuple[bool, int]) -> np.ndarray | None:
        """A reserved map (None where the source has no randomised model)."""
        found = self.maps.get(handle[0])
        return None if found is None else found[handle[1]]


@dataclass
class Context:
    """One model's shared facts: labels, trials and logits of the board's images, masks, the tiles' size."""

    source: EvidenceSource
    labels: np.ndarray
    trials: np.ndarray
    scores: np.ndarray  # the model's logits of every image of the board
    board: dict
    tile_size: int | None = None  # pixels per tile side (None: the maps' own size)
    requests: "Requests | None" = None  # the maps the method being pictured needs
    check: str | None = None  # the check whose images are being pictured

    def logits(self, image: int) -> np.ndarray:
        """The model's logits of one image."""
        return self.scores[image]

    def mask(self, image: int) -> np.ndarray:
        """``[K, H, W]`` class masks of one image."""
        return as_numpy(self.source.masks([image]))[0].astype(bool)

    def names(self, classes) -> str:
        """Class names, comma-separated."""
        return ", ".join(self.source.class_names[int(c)] for c in classes)

    def ask(self, image: int, cls: int, other: bool = False) -> tuple[str | None, int]:
        """Reserve the map of (image, class) of the trained model (or of the check's other model); its handle."""
        return self.requests.ask(image, cls, self.check if other else None)

    @staticmethod
    def tile(handle, label: str, masks=(), marked: bool = False) -> dict:
        """A map still to be drawn: its handle, label, outlined masks and whether its peak is marked."""
        return tile_spec(handle, label, masks, marked)


def peak(m: np.ndarray, params: dict) -> tuple[int, int]:
    """The map's peak under the pointing game's tie rule."""
    point = peak_points(torch.as_tensor(m, dtype=torch.float32)[None], params.get("tie_rule", "plateau_centre"))
    return int(point[0, 0]), int(point[0, 1])


def tile_spec(handle, label: str, masks=(), marked: bool = False) -> dict:
    """A map still to be drawn: its request handle, label, outlined masks and whether its peak is marked."""
    return {"handle": handle, "label": label, "masks": list(masks), "peak": marked}


def store_extras(section: Section, name: str, check: str, row: int) -> dict:
    """What a run folder's store adds to an image: its cascade curve, or that one of its two maps was constant."""
    values = section.store.get(name, {}).get(check, {})
    extra = {}
    if "spearman_hog" in values and np.ndim(values["spearman_hog"]) == 3:
        steps = np.asarray(values["spearman_hog"][row], dtype=float)  # [draws, layers]
        finite = np.isfinite(steps)
        counts, sums = finite.sum(0), np.where(finite, steps, 0.0).sum(0)
        extra["curve"] = [round(float(s / c), 4) if c else None for s, c in zip(sums, counts)]
    if "one_constant" in values and bool(values["one_constant"][row]):
        extra["note"] = "one of the two maps is constant (scored 0)"
    return extra


def plan_checks(ctx: Context, section: Section, name: str, checks: Sequence, k: int) -> list[dict]:
    """Per check that pictures its images (``Check.picture``): the worst and the best ``k`` images of the method."""
    planned = []
    by_name = {check.name: check for check in checks}
    for check_name, chosen in picks(checks, section.board, name, section.values, k).items():
        check, params = by_name[check_name], section.board["checks"][check_name]
        data = section.values[name][check_name][chosen["metric"]]
        images = check.picture_rows(params, ctx.labels, ctx.trials, chosen["rows"])
        if images is None or len(images) != chosen["rows"]:
            continue
        entry = {"check": check_name, "metric": chosen["metric"], "worse": chosen["worse"], "worst": [], "best": []}
        for side in ("worst", "best"):
            for row, score in chosen[side]:
                image = int(images[row])
                ctx.check = check_name
                item = check.picture(ctx, image, np.asarray(data[row]), score, side == "worst")
                if item is not None:
                    entry[side].append({"image": image, "score": round(score, 4), **item,
                                        **store_extras(section, name, check_name, row)})
        if entry["worst"] or entry["best"]:
            planned.append(entry)
    return planned


def grid_images(ctx: Context, count: int = GRID_IMAGES) -> list[int]:
    """The first images with two or more classes (the figures' choice), the same for every method."""
    many = np.flatnonzero((ctx.labels > 0).sum(1) >= 2)
    return [int(i) for i in (many if len(many) else np.arange(len(ctx.labels)))[:count]]


def two_classes(ctx: Context, image: int) -> list[int]:
    """The two top-scoring classes present in the image, completed by the top-scoring others (figures.two_classes)."""
    order = [int(c) for c in np.argsort(-ctx.logits(image), kind="stable")]
    present = [c for c in order if ctx.labels[image][c] > 0]
    return (present + [c for c in order if c not in present])[:2]


def plan_grid(ctx: Context, req: Requests) -> list[dict]:
    """The method's map grid: two classes of each grid image."""
    return [{"image": image, "caption": f"image {image}",
             "tiles": [tile_spec(req.ask(image, c), ctx.names([c])) for c in two_classes(ctx, image)]}
            for image in grid_images(ctx)]


def draw(spec: dict, req: Requests, params: dict, size: int | None) -> Any:
    """The palette tile of one planned map at ``size`` pixels (None: its own; None when the map is not available)."""
    # the peak is found on the map itself; then the map, its masks, the peak and the tolerance are scaled
    m = req.get(spec["handle"])
    if m is None:
        return None
    where = peak(m, params) if spec["peak"] else None
    scale = 1.0 if size is None else size / m.shape[-1]
    if scale != 1.0:
        masks = [pictures.shrink(mask.astype(float), size) > 0.25 for mask in spec["masks"]]
        m = pictures.shrink(m, size)
        where = None if where is None else ((where[0] + 0.5) * scale - 0.5, (where[1] + 0.5) * scale - 0.5)
    else:
        masks = spec["masks"]
    tolerance = float(params.get("tolerance", 0)) * scale if spec["peak"] else None
    return pictures.map_tile(m, masks, where, tolerance)


def realise(items: list[dict], req: Requests, params: dict, tiles: list, size: int | None) -> None:
    """Draw the planned maps of ``items`` into ``tiles``; each tile spec becomes ``{"tile", "label"}``."""
    for item in items:
        drawn = []
        for spec in item["tiles"]:
            tile = draw(spec, req, params, size)
            if tile is not None:
                tiles.append(tile)
                drawn.append({"tile": len(tiles) - 1, "label": spec["label"]})
        item["tiles"] = drawn


def render_method(ctx: Context, section: Section, name: str, checks: Sequence, k: int, out: Path, file: str) -> dict:
    """One method's pictures: its sprite written under ``out``, and the items that point into it."""
    req = ctx.requests = Requests()
    grid, planned = plan_grid(ctx, req), plan_checks(ctx, section, name, checks, k)
    req.fetch(ctx.source, name)
    tiles: list = []
    realise(grid, req, {}, tiles, ctx.tile_size)  # the grid marks no peak: no check's parameters
    for entry in planned:
        check_params = section.board["checks"][entry["check"]]
        realise(entry["worst"] + entry["best"], req, check_params, tiles, ctx.tile_size)
    size = ctx.tile_size or (int(next(iter(req.maps.values())).shape[-1]) if req.maps else 0)
    sheet = pictures.sprite(tiles, size)
    path = pictures.save_png(sheet, out / f"{file}.png")
    return {"sprite": path.name, "tile": size, "columns": pictures.COLUMNS, "sheet": list(sheet.size), "grid": grid,
            "checks": planned, "k": k}


def render(section: Section, source: EvidenceSource, out: Path, checks: Sequence, k: int = 3, tile: int | None = None,
           log: Callable[[str], None] = lambda message: None) -> dict:
    """Every ok method's pictures of one board into ``out`` (sprites and the input sheet); what the pages read."""
    images = int(section.board["config"].get("images") or 0)
    labels, trials = (as_numpy(a) for a in source.labels(images))
    scores = as_numpy(source.logits(list(range(images))))
    ctx = Context(source=source, labels=labels, trials=trials, scores=scores, board=section.board, tile_size=tile)
    methods, files = {}, unique_slugs(list(section.board["methods"]))
    for name, entry in section.board["methods"].items():
        if section.pictured is not None and name not in section.pictured:
            continue
        if entry.get("status") == "ok" and len(entry.get("not_applicable", {})) < len(entry.get("results", {})):
            log(f"site: maps of {name} on {section.model}")
            try:
                methods[name] = render_method(ctx, section, name, checks, k, out, files[name])
            except Exception as exc:  # noqa: BLE001 - one method without pictures must not stop the site
                log(f"site: no pictures of {name} on {section.model}: {type(exc).__name__}: {exc}")
    used = sorted({item["image"] for method in methods.values() for item in all_items(method)})
    sheet = pictures.input_sheet(as_numpy(source.images(used)), out / "inputs.webp", tile) if used else None
    position = {image: i for i, image in enumerate(used)}
    for method in methods.values():
        for item in all_items(method):
            item["input"] = position[item["image"]]
    return {"inputs": None if sheet is None else sheet[0].name, "input_sheet": None if sheet is None else sheet[1:],
            "input_columns": pictures.INPUT_COLUMNS, "methods": methods}


def all_items(method: dict) -> list[dict]:
    """Every pictured image of a method's evidence: the grid's and each check's worst and best."""
    return method["grid"] + [item for entry in method["checks"] for item in entry["worst"] + entry["best"]]
