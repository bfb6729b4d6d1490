"""Batched map similarities in torch: min-max, HOG, average ranks, Spearman and SSIM (skimage/scipy-compatible).

Every function takes a batch of maps ``[N,H,W]`` (or feature rows ``[N,D]``) and returns one value
per row. The constant-map rule, the same in every check and measure: a constant map (all zero, say, a
ReLU'd map of a class with no evidence, or a map that vanished after randomisation) shares no structure
with a non-constant one, so their similarity is 0; two constant maps have no structure to compare, so
their similarity is undefined (NaN, counted by the checks, never a number).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


def minmax(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-map min-max normalisation to [0,1], ``(m - min) / (max - min)``, and a mask of non-constant maps."""
    flat = maps.flatten(1).double()
    low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    valid = (high > low).squeeze(1)
    scale = torch.where(high > low, high - low, torch.ones_like(high))
    return ((flat - low) / scale).view(maps.shape), valid


def _gradients(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences without halving, zero on the border (skimage ``_hog_channel_gradient``)."""
    g_row = torch.zeros_like(images)
    g_col = torch.zeros_like(images)
    g_row[:, 1:-1, :] = images[:, 2:, :] - images[:, :-2, :]
    g_col[:, :, 1:-1] = images[:, :, 2:] - images[:, :, :-2]
    return g_row, g_col


def _bin_edges(orientations: int) -> tuple[torch.Tensor, float]:
    """Inner orientation-bin edges and the top edge in degrees, rounded through float32 as skimage's Cython code."""
    width = torch.tensor(180.0 / orientations, dtype=torch.float32)
    edges = [float(width * i) for i in range(1, orientations + 1)]
    return torch.tensor(edges[:-1], dtype=torch.float64), edges[-1]


def _cell_histograms(magnitude: torch.Tensor, angle: torch.Tensor, cell: int, orientations: int) -> torch.Tensor:
    """Mean magnitude per (cell, orientation bin) ``[N, rows, cols, O]``: hard binning, as skimage ``hog_histograms``."""
    inner, top = _bin_edges(orientations)
    bins = torch.bucketize(angle, inner.to(angle.device), right=True)  # bin i holds edge_i <= angle < edge_i+1
    magnitude = magnitude.masked_fill(angle >= top, 0.0)  # skimage drops angles that round up to 180
    chunk = max(1, 2**25 // (orientations * angle[0].numel()))  # one-hot memory bound (~256 MB in float64)
    parts = []
    for start in range(0, len(angle), chunk):
        mag, idx = magnitude[start : start + chunk], bins[start : start + chunk]
        one_hot = torch.zeros(len(mag), orientations, *mag.shape[1:], dtype=mag.dtype, device=mag.device)
        one_hot.scatter_(1, idx.unsqueeze(1), mag.unsqueeze(1))
        parts.append(F.avg_pool2d(one_hot, cell))  # deterministic on GPU too (no atomics)
    return torch.cat(parts).permute(0, 2, 3, 1)


def hog(images: torch.Tensor, cell: int, block: int = 3, orientations: int = 9, eps: float = 1e-5) -> torch.Tensor:
    """HOG features ``[N, D]`` (Dalal & Triggs 2005) matching ``skimage.feature.hog`` with L2-Hys block norm.

    Unsigned orientation in [0,180) binned by hard assignment, cell histograms = mean gradient
    magnitude per bin, blocks of ``block x block`` cells with stride one cell, L2-Hys (clip 0.2).
    Feature order (block_row, block_col, cell_row, cell_col, orientation) as skimage.
    """
    images = images.double()
    n, height, width = images.shape
    rows, cols = height // cell, width // cell
    if rows < block or cols < block:
        raise ValueError(f"maps of {height}x{width} px are too small for HOG blocks of {block}x{block} cells of {cell} px")
    g_row, g_col = _gradients(images)
    magnitude = torch.hypot(g_col, g_row)[:, : rows * cell, : cols * cell]
    angle = torch.remainder(torch.rad2deg(torch.atan2(g_row, g_col)), 180.0)[:, : rows * cell, : cols * cell].contiguous()
    histogram = _cell_histograms(magnitude, angle, cell, orientations)  # [N, rows, cols, O]
    blocks = histogram.unfold(1, block, 1).unfold(2, block, 1)  # [N, br, bc, O, block, block]
    blocks = blocks.permute(0, 1, 2, 4, 5, 3).reshape(n, rows - block + 1, cols - block + 1, -1)
    blocks = blocks / torch.sqrt((blocks**2).sum(-1, keepdim=True) + eps**2)
    blocks = blocks.clamp(max=0.2)
    blocks = blocks / torch.sqrt((blocks**2).sum(-1, keepdim=True) + eps**2)
    return blocks.reshape(n, -1)


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 1..D of each row, ties given their average rank (``scipy.stats.rankdata(method="average")``)."""
    # ties all get their average rank, so their order among themselves (stability) does not matter
    ordered, order = values.sort(dim=1)
    size = values.shape[1]
    position = torch.arange(size, device=values.device).expand_as(order)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.where(starts, position, torch.zeros_like(position)).cummax(1).values
    last = torch.where(ends, position, torch.full_like(position, size)).flip(1).cummin(1).values.flip(1)
    average = (first + last).double() / 2.0 + 1.0
    return torch.empty_like(average).scatter_(1, order, average)


class Ranked(NamedTuple):
    """Rows ready for rank correlation: centred average ranks, their norms, and which rows are constant."""

    centred: torch.Tensor  # [N, D] float64
    norm: torch.Tensor  # [N]
    constant: torch.Tensor  # [N] bool

    def rows(self, index) -> "Ranked":
        """The same for a subset (slice or index) of the rows."""
        return Ranked(self.centred[index], self.norm[index], self.constant[index])


def ranked(values: torch.Tensor, undefined: torch.Tensor | None = None) -> Ranked:
    """Average ranks of each row of ``values`` ``[N, D]``, centred; rows constant or flagged ``undefined`` are marked."""
    ranks = average_ranks(values)
    centred = ranks - ranks.mean(1, keepdim=True)
    constant = values.amin(1) == values.amax(1)
    if undefined is not None:
        constant = constant | undefined
    return Ranked(centred, torch.sqrt((centred * centred).sum(1)), constant)


# A map is constant when its value range is at most this fraction of the larger range of the pair compared:
# below float32 resolution relative to its partner it has no structure (a ReLU'd CAM of an absent class holds
# exact zeros on the CPU and residues of 1e-9 on a GPU; both are the same empty map).
CONSTANT_RTOL = 1e-6


def map_range(maps: torch.Tensor) -> torch.Tensor:
    """``max - min`` of each map or row, in float64."""
    flat = maps.flatten(1).double()
    return flat.amax(1) - flat.amin(1)


def constant_pair(range_a: torch.Tensor, range_b: torch.Tensor, rtol: float = CONSTANT_RTOL):
    """Which maps of each pair are constant: range <= rtol x the pair's larger range (both, if both ranges are 0)."""
    scale = torch.maximum(range_a, range_b)
    return range_a <= rtol * scale, range_b <= rtol * scale


def constant_rule(values: torch.Tensor, a_constant: torch.Tensor, b_constant: torch.Tensor) -> torch.Tensor:
    """The constant-map rule (module docstring): 0 where exactly one side is constant, NaN where both are."""
    values = values.masked_fill(a_constant ^ b_constant, 0.0)
    return values.masked_fill(a_constant & b_constant, float("nan"))


def rank_correlation(a: Ranked, b: Ranked, constant: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Spearman's rho = Pearson correlation of the ranks, per row; constant rows follow :func:`constant_rule`.

    ``constant`` adds the maps' own constancy (:func:`constant_pair`) to that of the ranked rows.
    """
    rho = (a.centred * b.centred).sum(1) / (a.norm * b.norm).clamp_min(torch.finfo(torch.float64).tiny)
    a_constant, b_constant = a.constant, b.constant
    if constant is not None:
        a_constant, b_constant = a_constant | constant[0], b_constant | constant[1]
    return constant_rule(rho, a_constant, b_constant)


def spearman(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each pair of maps or rows (as ``scipy.stats.spearmanr``); constant rule."""
    return rank_correlation(ranked(x.flatten(1)), ranked(y.flatten(1)), constant_pair(map_range(x), map_range(y)))


def hog_ranked(maps: torch.Tensor, cell: int, block: int = 3, orientations: int = 9) -> Ranked:
    """Ranked HOG features of min-max normalised maps (Adebayo et al. 2018); constant maps are undefined."""
    normalised, valid = minmax(maps)
    return ranked(hog(normalised, cell, block, orientations), undefined=~valid)


def hog_spearman(a: torch.Tensor, b: torch.Tensor, cell: int, block: int = 3, orientations: int = 9) -> torch.Tensor:
    """Spearman between HOG features of min-max normalised maps (Adebayo et al. 2018; Rebuffi et al. 2020)."""
    both = hog_ranked(torch.cat([a, b]), cell, block, orientations)
    constant = constant_pair(map_range(a), map_range(b))
    return rank_correlation(both.rows(slice(0, len(a))), both.rows(slice(len(a), None)), constant)


def box_mean(images: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over every ``size x size`` window inside ``[N, H, W]`` (valid positions only, separable sums)."""
    return images.unfold(-2, size, 1).sum(-1).unfold(-1, size, 1).sum(-1) / (size * size)


def ssim(
    x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, win_size: int = 7, k1: float = 0.01, k2: float = 0.03
) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004) per map pair, as ``skimage.metrics.structural_similarity`` defaults.

    Uniform ``win_size`` window (separable box filter), sample covariance, mean over the pixels at
    least ``win_size // 2`` from the border (skimage crops those, so its reflect padding never matters).
    """
    x, y = x.double(), y.double()
    if min(x.shape[-2:]) < win_size:
        raise ValueError(f"maps of {tuple(x.shape[-2:])} px are smaller than the SSIM window {win_size}")
    mean = lambda t: box_mean(t, win_size)  # noqa: E731
    ux, uy = mean(x), mean(y)
    cov_norm = win_size**2 / (win_size**2 - 1.0)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def ssim_minmax(a: torch.Tensor, b: torch.Tensor, win_size: int = 7) -> torch.Tensor:
    """SSIM of min-max normalised maps with data_range 1 (Adebayo et al. 2018); constant maps: :func:`constant_rule`."""
    (a_norm, a_valid), (b_norm, b_valid) = minmax(a), minmax(b)
    a_constant, b_constant = constant_pair(map_range(a), map_range(b))
    return constant_rule(ssim(a_norm, b_norm, 1.0, win_size), ~a_valid | a_constant, ~b_valid | b_constant)
