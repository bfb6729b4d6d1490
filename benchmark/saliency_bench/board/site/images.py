"""The site's raster images: maps as palette tiles in one sprite per method, input images, the board's figures.

Maps use the figures' colour maps (``figures.map_norm``: viridis 0..max for a map with no negative value, RdBu_r
over ±max|m| for a signed one), quantised to ``LEVELS`` steps each (32: banding shows only side by side), so a
sprite is an 8-bit palette PNG: exact colours for the overlays and a few KB per map even for noise. Inputs are
lossy WebP (no number is read off them); figures are re-encoded as 256-colour PNGs (text stays sharp, 40% of the
bytes).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw

from ...checks.figure_style import CONTROL_COLOR, DIVERGING, OKABE_ITO, SEQUENTIAL
from ..figures import map_norm

LEVELS = 32  # colour steps per colour map
COLUMNS = 8  # tiles per row of a sprite
INPUT_COLUMNS = 16  # input images per row of their sheet
SEQ, DIV = 0, LEVELS  # first palette index of each colour map
WHITE, BLACK, GREY, PEAK = 2 * LEVELS, 2 * LEVELS + 1, 2 * LEVELS + 2, 2 * LEVELS + 3  # overlay colours


def _rgb(hex_color: str) -> list[int]:
    return [int(hex_color[i:i + 2], 16) for i in (1, 3, 5)]


def palette() -> list[int]:
    """The sprites' palette: both colour maps in ``LEVELS`` steps, then white, black, grey and the peak's colour."""
    colors = []
    for name in (SEQUENTIAL, DIVERGING):
        table = colormaps[name](np.linspace(0.0, 1.0, LEVELS))[:, :3]
        colors += [int(round(c * 255)) for rgb in table for c in rgb]
    colors += [255, 255, 255, 0, 0, 0] + _rgb(CONTROL_COLOR) + _rgb(OKABE_ITO[4])
    return colors


def map_indices(m: np.ndarray) -> np.ndarray:
    """A map as palette indices under its own scale (``map_norm``); non-finite pixels grey."""
    m = np.asarray(m, dtype=float)
    cmap, low, high = map_norm(m)
    scaled = np.clip((np.nan_to_num(m) - low) / (high - low), 0.0, 1.0)
    index = np.rint(scaled * (LEVELS - 1)).astype(np.uint8) + (DIV if cmap == DIVERGING else SEQ)
    return np.where(np.isfinite(m), index, GREY).astype(np.uint8)


def outline(tile: np.ndarray, mask: np.ndarray) -> None:
    """Draw a mask's border on a tile in place: white on its edge pixels, black just outside (readable on any map)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return
    padded = np.pad(mask, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    grown = padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
    tile[grown & ~mask] = BLACK
    tile[mask & ~inner] = WHITE


def mark_peak(image: Image.Image, row: float, col: float, tolerance: float | None) -> None:
    """The peak as a small square in the peak colour, framed in black, and the pointing tolerance as a circle."""
    draw = ImageDraw.Draw(image)
    if tolerance:
        r = float(tolerance)
        draw.ellipse([col - r, row - r, col + r, row + r], outline=PEAK)
    row, col = int(round(row)), int(round(col))
    draw.rectangle([col - 2, row - 2, col + 2, row + 2], fill=PEAK, outline=BLACK)


def sprite(tiles: Sequence[Image.Image], size: int, columns: int = COLUMNS) -> Image.Image:
    """Tiles (palette images of ``size``) in rows of ``columns``, as one palette image."""
    rows = max(1, -(-len(tiles) // columns))
    sheet = Image.new("P", (size * min(columns, max(1, len(tiles))), size * rows), GREY)
    sheet.putpalette(palette())
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * size, (i // columns) * size))
    return sheet


def map_tile(m: np.ndarray, masks: Sequence[np.ndarray] = (), peak: tuple[float, float] | None = None,
             tolerance: float | None = None) -> Image.Image:
    """One map as a palette tile, with the outlines of ``masks`` and the ``peak`` marked."""
    index = map_indices(m)
    for mask in masks:
        outline(index, mask)
    tile = Image.fromarray(index, mode="P")
    tile.putpalette(palette())
    if peak is not None:
        mark_peak(tile, peak[0], peak[1], tolerance)
    return tile


def save_png(image: Image.Image, path: Path) -> Path:
    """Write a palette PNG (optimised)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "PNG", optimize=True)
    return path


def shrink(values: np.ndarray, size: int) -> np.ndarray:
    """A 2-D array resampled to ``size`` x ``size`` by area averaging (PIL's box filter on floats)."""
    image = Image.fromarray(np.asarray(values, dtype=np.float32), mode="F")
    return np.asarray(image.resize((size, size), Image.Resampling.BOX), dtype=float)


def input_sheet(pictures: np.ndarray, path: Path, size: int | None = None, columns: int = INPUT_COLUMNS,
                quality: int = 85) -> tuple[Path, int, int]:
    """Input images ``[n, 3, H, W]`` in [0, 1] (resized to ``size``) in rows of ``columns``, as one WebP; its size."""
    n, _, height, width = pictures.shape
    side = size or width
    rows = max(1, -(-n // columns))
    sheet = Image.new("RGB", (min(columns, max(1, n)) * side, rows * (size or height)), (128, 128, 128))
    for i, picture in enumerate(pictures):
        pixels = np.clip(np.rint(np.moveaxis(picture, 0, -1) * 255), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels, mode="RGB")
        if size:
            image = image.resize((size, size), Image.Resampling.BOX)
        sheet.paste(image, ((i % columns) * side, (i // columns) * (size or height)))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, "WEBP", quality=quality, method=6)
    return path, sheet.size[0], sheet.size[1]


def copy_figure(source: Path, target: Path) -> Path:
    """A board figure re-encoded as a 256-colour PNG (copied as it is when that is not smaller)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            target, "PNG", optimize=True)
    if target.stat().st_size >= source.stat().st_size:
        shutil.copyfile(source, target)
    return target
