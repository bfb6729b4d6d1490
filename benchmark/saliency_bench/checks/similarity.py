"""Batched map similarities in torch: min-max, HOG, average ranks, Spearman and SSIM (skimage/scipy-compatible).

Every function takes a batch of maps ``[N,H,W]`` (or feature rows ``[N,D]``) and returns one value
per row. The constant-map rule, the same in every check and measure: a constant map (all zero, say, a
ReLU'd map of a class with no evidence, or a map that vanished after randomisation) shares no structure
with a non-constant one, so their similarity is 0; two constant maps have no structure to compare, so
their similarity is undefined (NaN, counted by the checks, never a number).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .params import hog_args
from .ranking import average_ranks  # public here too: ranks used to live in this module


def minmax(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-map min-max normalisation to [0,1], ``(m - min) / (max - min)``, and a mask of non-constant maps."""
    flat = maps.flatten(1).double()
    low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    valid = (high > low).squeeze(1)
    scale = torch.where(high > low, high - low, torch.ones_like(high))
    return ((flat - low) / scale).view(maps.shape), valid


def _gradients(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences without halving, zero on the border (skimage ``_hog_channel_gradient``)."""
    g_row = torch.empty_like(images)
    g_col = torch.empty_like(images)
    g_row[:, [0, -1], :] = 0.0
    g_col[:, :, [0, -1]] = 0.0
    torch.sub(images[:, 2:, :], images[:, :-2, :], out=g_row[:, 1:-1, :])  # written in place: no temporary
    torch.sub(images[:, :, 2:], images[:, :, :-2], out=g_col[:, :, 1:-1])
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
    if angle.device.type == "cpu":
        return _cell_histograms_counted(magnitude, bins, cell, orientations)
    return _cell_histograms_pooled(magnitude, bins, cell, orientations)


def _cell_histograms_counted(magnitude: torch.Tensor, bins: torch.Tensor, cell: int, orientations: int) -> torch.Tensor:
    """CPU: each pixel's magnitude summed into its (map, bin, cell) slot by one weighted ``np.bincount``, / cell^2.

    ``np.bincount`` adds the weights in pixel (row-major) order, the order ``avg_pool2d`` sums a window in, and
    the zeros the one-hot path adds change no sum; the result has the pooled path's layout too (the block sums
    downstream reduce in layout order): bit-identical to :func:`_cell_histograms_pooled`.
    """
    n, height, width = bins.shape
    rows, cols = height // cell, width // cell
    cell_of = (torch.arange(height) // cell)[:, None] * cols + torch.arange(width) // cell  # [H, W]
    map_of = torch.arange(n) * (orientations * rows * cols)  # [N]: the map's first slot
    slots = (map_of[:, None, None] + cell_of).add_(bins, alpha=rows * cols)  # [N, H, W] slot in [N, O, rows, cols]
    sums = np.bincount(slots.view(-1).numpy(), weights=magnitude.reshape(-1).numpy(),
                       minlength=n * orientations * rows * cols)
    return (torch.from_numpy(sums).view(n, orientations, rows, cols) / (cell * cell)).permute(0, 2, 3, 1)


def _cell_histograms_pooled(magnitude: torch.Tensor, bins: torch.Tensor, cell: int, orientations: int) -> torch.Tensor:
    """Any device: one-hot ``[N, O, H, W]`` magnitudes then ``avg_pool2d`` (deterministic on GPU: no atomics)."""
    chunk = max(1, 2**25 // (orientations * bins[0].numel()))  # one-hot memory bound (~256 MB in float64)
    parts = []
    for start in range(0, len(bins), chunk):
        mag, idx = magnitude[start : start + chunk], bins[start : start + chunk]
        one_hot = torch.zeros(len(mag), orientations, *mag.shape[1:], dtype=mag.dtype, device=mag.device)
        one_hot.scatter_(1, idx.unsqueeze(1), mag.unsqueeze(1))
        parts.append(F.avg_pool2d(one_hot, cell))
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
    # on the whole contiguous maps, then cropped to whole cells: vectorised atan2 and hypot may differ from their
    # scalar tails in the last bit, so the layout they see decides the bits (and the bits decide ties in HOG ranks)
    magnitude = torch.hypot(g_col, g_row)[:, : rows * cell, : cols * cell]
    angle = torch.atan2(g_row, g_col).rad2deg_().remainder_(180.0)[:, : rows * cell, : cols * cell].contiguous()
    histogram = _cell_histograms(magnitude, angle, cell, orientations)  # [N, rows, cols, O]
    blocks = histogram.unfold(1, block, 1).unfold(2, block, 1)  # [N, br, bc, O, block, block]
    blocks = blocks.permute(0, 1, 2, 4, 5, 3).reshape(n, rows - block + 1, cols - block + 1, -1)
    blocks = blocks / torch.sqrt((blocks**2).sum(-1, keepdim=True) + eps**2)
    blocks = blocks.clamp(max=0.2)
    blocks = blocks / torch.sqrt((blocks**2).sum(-1, keepdim=True) + eps**2)
    return blocks.reshape(n, -1)


class Ranked(NamedTuple):
    """Rows ready for rank correlation: centred average ranks, their norms, and which rows are constant."""

    centered: torch.Tensor  # [N, D] float64
    norm: torch.Tensor  # [N]
    constant: torch.Tensor  # [N] bool

    def rows(self, index) -> "Ranked":
        """The same for a subset (slice or index) of the rows."""
        return Ranked(self.centered[index], self.norm[index], self.constant[index])


def ranked(values: torch.Tensor, undefined: torch.Tensor | None = None) -> Ranked:
    """Average ranks of each row of ``values`` ``[N, D]``, centred; rows constant or flagged ``undefined`` are marked."""
    centered = average_ranks(values)
    centered -= centered.mean(1, keepdim=True)
    # centred ranks are multiples of 1/2, so sums of their products are exact in any summation order (rows below
    # ~3e5 values keep every partial sum under 2**51): vecdot gives the same norms and dot products as mul-and-sum
    norm = torch.sqrt(torch.linalg.vecdot(centered, centered))
    constant = norm == 0  # all ranks equal: one run of ties, i.e. min == max (a NaN is a run of its own)
    if undefined is not None:
        constant = constant | undefined
    return Ranked(centered, norm, constant)


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
    rho = torch.linalg.vecdot(a.centered, b.centered) / (a.norm * b.norm).clamp_min(torch.finfo(torch.float64).tiny)
    a_constant, b_constant = a.constant, b.constant
    if constant is not None:
        a_constant, b_constant = a_constant | constant[0], b_constant | constant[1]
    return constant_rule(rho, a_constant, b_constant)


def spearman(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each pair of maps or rows (as ``scipy.stats.spearmanr``); constant rule."""
    return rank_correlation(ranked(x.flatten(1)), ranked(y.flatten(1)), constant_pair(map_range(x), map_range(y)))


def hog_ranked(maps: torch.Tensor, cell: int, block: int = 3, orientations: int = 9) -> Ranked:
    """Ranked HOG features of min-max normalised maps (Adebayo et al. 2018); constant maps are undefined."""
    normalized, valid = minmax(maps)
    return ranked(hog(normalized, cell, block, orientations), undefined=~valid)


def hog_spearman(a: torch.Tensor, b: torch.Tensor, cell: int, block: int = 3, orientations: int = 9) -> torch.Tensor:
    """Spearman between HOG features of min-max normalised maps (Adebayo et al. 2018; Rebuffi et al. 2020)."""
    both = hog_ranked(torch.cat([a, b]), cell, block, orientations)
    constant = constant_pair(map_range(a), map_range(b))
    return rank_correlation(both.rows(slice(0, len(a))), both.rows(slice(len(a), None)), constant)


def box_mean(images: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over every ``size x size`` window inside ``[N, H, W]`` (valid positions only, separable sums)."""
    columns = images.unfold(-2, size, 1).sum(-1)  # vertical window sums [N, H', W]
    # torch sums a window fast along dim -2 (vectorised over the last dim), slowly along the last one (4x here):
    # the horizontal sums run on the transposed rows too, and the result stays a transposed view (no copy back)
    return columns.mT.contiguous().unfold(-2, size, 1).sum(-1).div_(size * size).mT


class SsimStats(NamedTuple):
    """What SSIM needs of one batch of maps alone, computed once and reused in every pair it is part of."""

    image: torch.Tensor  # x, [N, H, W] float64
    mean: torch.Tensor  # window means mu_x
    mean_square: torch.Tensor  # mu_x^2
    variance: torch.Tensor  # sample variance in each window, cov_norm * (mean(x^2) - mu_x^2)
    win_size: int


def _cov_norm(win_size: int) -> float:
    """skimage's sample-covariance factor ``n / (n - 1)`` for an ``n``-pixel window."""
    return win_size**2 / (win_size**2 - 1.0)


def ssim_stats(x: torch.Tensor, win_size: int = 7) -> SsimStats:
    """Window means and sample variances of each map, as ``skimage.metrics.structural_similarity`` (uniform window)."""
    x = x.double()
    if min(x.shape[-2:]) < win_size:
        raise ValueError(f"maps of {tuple(x.shape[-2:])} px are smaller than the SSIM window {win_size}")
    mean = box_mean(x, win_size)
    mean_square = mean * mean
    return SsimStats(x, mean, mean_square, _cov_norm(win_size) * (box_mean(x * x, win_size) - mean_square), win_size)


def ssim_of_stats(
    a: SsimStats, b: SsimStats, data_range: float = 1.0, k1: float = 0.01, k2: float = 0.03
) -> torch.Tensor:
    """Mean SSIM per map pair from both sides' :func:`ssim_stats`; only the window means of ``x * y`` are new."""
    if a.win_size != b.win_size:
        raise ValueError(f"SSIM statistics of windows {a.win_size} and {b.win_size} cannot be compared")
    product = a.mean * b.mean
    cov_norm, c1, c2 = _cov_norm(a.win_size), (k1 * data_range) ** 2, (k2 * data_range) ** 2
    # in place on fresh temporaries (30% faster: these arrays outgrow the cache), yet the formula of ssim() before
    # the statistics were cached, term for term: (2 mu_x mu_y + c1)(2 cov + c2) / ((mu_x^2 + mu_y^2 + c1)(vx + vy + c2))
    covariance = box_mean(a.image * b.image, a.win_size).sub_(product).mul_(cov_norm)
    numerator = product.mul_(2).add_(c1).mul_(covariance.mul_(2).add_(c2))
    denominator = torch.add(a.mean_square, b.mean_square).add_(c1).mul_(torch.add(a.variance, b.variance).add_(c2))
    return numerator.div_(denominator).mean((-2, -1))


def ssim(
    x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, win_size: int = 7, k1: float = 0.01, k2: float = 0.03
) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004) per map pair, as ``skimage.metrics.structural_similarity`` defaults.

    Uniform ``win_size`` window (separable box filter), sample covariance, mean over the pixels at
    least ``win_size // 2`` from the border (skimage crops those, so its reflect padding never matters).
    """
    return ssim_of_stats(ssim_stats(x, win_size), ssim_stats(y, win_size), data_range, k1, k2)


def ssim_minmax(a: torch.Tensor, b: torch.Tensor, win_size: int = 7) -> torch.Tensor:
    """SSIM of min-max normalised maps with data_range 1 (Adebayo et al. 2018); constant maps: :func:`constant_rule`."""
    (a_norm, a_valid), (b_norm, b_valid) = minmax(a), minmax(b)
    a_constant, b_constant = constant_pair(map_range(a), map_range(b))
    return constant_rule(ssim(a_norm, b_norm, 1.0, win_size), ~a_valid | a_constant, ~b_valid | b_constant)


class MapProfile:
    """What the four similarities of Adebayo et al. 2018 need from a batch of maps, computed once.

    The reference (original model) profile of a batch is reused for every randomisation step, its SSIM window
    statistics included (computed at the first comparison, per window size).
    """

    def __init__(self, maps: torch.Tensor, params: dict):
        self.normalized, self.valid = minmax(maps)  # valid = not exactly constant
        self.range = map_range(maps)
        self.hog = ranked(hog(self.normalized, **hog_args(params)), undefined=~self.valid)  # = hog_ranked(maps)
        self.signed = ranked(maps.flatten(1))
        # on the CPU skip a second ranking when |map| = map; on a GPU ranking is cheaper than the host sync
        nonnegative = maps.device.type == "cpu" and bool((maps >= 0).all())
        self.abs = self.signed if nonnegative else ranked(maps.abs().flatten(1))
        self._ssim: dict[int, SsimStats] = {}

    def ssim_stats(self, window: int) -> SsimStats:
        """The SSIM statistics of the min-max maps for ``window`` (similarity.ssim_stats), computed once."""
        if window not in self._ssim:
            self._ssim[window] = ssim_stats(self.normalized, window)
        return self._ssim[window]

    def compare(self, other: "MapProfile", ssim_window: int) -> dict[str, torch.Tensor]:
        """Spearman on HOG, of |map| and of the signed map, and SSIM of min-max maps, per image (NaN if undefined).

        The values stay on the maps' device; the check moves a batch's whole cascade to the host at once.
        """
        constant = self.constant_against(other)
        return {
            "spearman_hog": rank_correlation(self.hog, other.hog, constant),
            "spearman_abs": rank_correlation(self.abs, other.abs, constant),
            "spearman_signed": rank_correlation(self.signed, other.signed, constant),
            "ssim": constant_rule(ssim_of_stats(self.ssim_stats(ssim_window), other.ssim_stats(ssim_window), 1.0),
                                  ~self.valid | constant[0], ~other.valid | constant[1]),
        }

    def constant_against(self, other: "MapProfile") -> tuple[torch.Tensor, torch.Tensor]:
        """Which maps of each pair are constant (similarity.constant_pair)."""
        return constant_pair(self.range, other.range)


def map_similarities(reference: torch.Tensor, maps: torch.Tensor, params: dict) -> dict[str, torch.Tensor]:
    """Adebayo et al. 2018's four similarities of each map ``[B,H,W]`` with its reference, per image: Spearman on HOG,
    Spearman of |map| and of the signed map, SSIM of the min-max maps (the constant-map rule applied); ``params``
    holds ``hog_cell``, ``hog_block``, ``hog_orientations`` and ``ssim_window`` (``SIMILARITY`` declares them)."""
    return MapProfile(reference, params).compare(MapProfile(maps, params), int(params["ssim_window"]))
