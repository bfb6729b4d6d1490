"""eMPRT's complexity: the discrete entropy of a map's histogram (Hedström et al. 2023; Quantus ``discrete_entropy``).

``H(a) = -sum_k p_k ln p_k``, ``p_k`` the share of the map's values in bin ``k`` of ``bins`` equal-width bins over the
map's own ``[min, max]`` (the last bin closed), natural log, empty bins contributing 0. ``histogram_entropy`` computes
it batched in torch on any device; ``histogram_entropy_numpy`` is ``np.histogram`` + ``scipy.stats.entropy`` exactly as
Quantus calls them, kept as the test oracle. The torch path reproduces ``np.histogram``'s binning step by step in the
map's own dtype (edges from ``np.linspace`` in that dtype, the index estimate, its one-step corrections), so the bin
counts are identical and the entropies agree to float64 rounding (the tests hold 1e-12).
"""
from __future__ import annotations

import numpy as np
import torch

BINS = 100  # Quantus's default n_bins


def outer_edges(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row ``(min, max)`` in its dtype; a constant row widened to ``(v - 0.5, v + 0.5)`` (``np.histogram``)."""
    low, high = flat.amin(1), flat.amax(1)
    same = low == high
    return torch.where(same, low - 0.5, low), torch.where(same, high + 0.5, high)


def linspace_edges(low: torch.Tensor, high: torch.Tensor, bins: int) -> torch.Tensor:
    """``[B, bins + 1]`` edges as ``np.linspace(low, high, bins + 1)`` computes them in the dtype of ``low``."""
    step = (high - low) / bins  # numpy: y = arange * step, then y += start, then y[-1] = stop (two roundings)
    edges = torch.arange(bins + 1, dtype=low.dtype, device=low.device)[None, :] * step[:, None]
    edges = edges + low[:, None]
    edges[:, -1] = high
    return edges


def bin_indices(flat: torch.Tensor, bins: int) -> torch.Tensor:
    """``[B, P]`` bin of every value, as ``np.histogram`` assigns it: estimate, then one-step corrections at edges."""
    low, high = outer_edges(flat)
    edges = linspace_edges(low, high, bins)
    estimate = (flat - low[:, None]) / (high - low)[:, None] * bins  # in the map's dtype, as numpy
    index = estimate.to(torch.int64)
    index = index - (index == bins).long()
    index = index - (flat < edges.gather(1, index)).long()
    above = (flat >= edges.gather(1, index + 1)) & (index != bins - 1)
    return index + above.long()


def histogram_counts(maps: torch.Tensor, bins: int = BINS) -> torch.Tensor:
    """``[B, bins]`` counts of each map's values (``[B, ...]``) in ``bins`` equal-width bins over its own range."""
    flat = maps.flatten(1)
    if not flat.is_floating_point():
        flat = flat.double()
    index = bin_indices(flat, bins) + torch.arange(len(flat), device=flat.device)[:, None] * bins
    return torch.bincount(index.flatten(), minlength=len(flat) * bins).view(len(flat), bins)


def entropy_of_counts(counts: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of each row of counts, in float64: ``scipy.stats.entropy(pk=counts)``."""
    p = counts.double() / counts.sum(1, keepdim=True).double()
    terms = torch.where(p > 0, -p * torch.log(torch.where(p > 0, p, torch.ones_like(p))), torch.zeros_like(p))
    return terms.sum(1)


def histogram_entropy(maps: torch.Tensor, bins: int = BINS) -> torch.Tensor:
    """``[B]`` float64 discrete entropy of each map's ``bins``-bin histogram (Quantus ``discrete_entropy``), batched."""
    return entropy_of_counts(histogram_counts(maps, bins))


def histogram_entropy_numpy(maps: np.ndarray, bins: int = BINS) -> np.ndarray:
    """The oracle: ``scipy.stats.entropy(np.histogram(a, bins=bins)[0])`` per map, as Quantus's ``discrete_entropy``."""
    import scipy.stats

    return np.array([scipy.stats.entropy(pk=np.histogram(a, bins=bins)[0]) for a in np.asarray(maps)], dtype=float)
