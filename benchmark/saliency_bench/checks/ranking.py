"""Average ranks of each row (``scipy.stats.rankdata(method="average")``): numpy on the CPU, torch on a GPU.

Tied values all get their average rank, so their order among themselves (sort stability) never matters and
both paths give exactly the same ranks. On the CPU numpy's sort (x86-simd-sort, AVX-512 where the CPU has it)
is several times faster than ``torch.sort``; on a GPU the torch path keeps the data on the device.
"""
from __future__ import annotations

import numpy as np
import torch


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 1..D of each row of ``values`` ``[N, D]``, ties given their average rank, float64 on its device."""
    if values.device.type == "cpu":
        return average_ranks_numpy(values)
    return average_ranks_torch(values)


def _sortable(values: torch.Tensor) -> np.ndarray:
    """The rows as a numpy array; half floats widened to float32 (exact: same order, same ties)."""
    values = values.detach()
    if values.dtype in (torch.float16, torch.bfloat16):  # numpy has no bfloat16 and sorts float16 slowly
        values = values.float()
    return values.numpy()


def _sort_keys(array: np.ndarray) -> np.ndarray:
    """Keys in the order of ``array``'s rows, but exact zeros of a nonnegative array made distinct and below all.

    Why: numpy's SIMD quicksort runs ~2x slower when one value fills half of a row, and HOG features of smooth
    maps and ReLU'd maps are mostly exact zeros. Zeros are the rows' least values here, so they stay first, in
    some order among themselves; as tied values they get their average rank whatever that order.
    """
    if array.dtype.kind != "f" or not array.min() >= 0:  # not: NaN fails the test too
        return array
    zero = array == 0
    if np.count_nonzero(zero) < array.size // 8:  # few zeros: the sort is not slowed, skip the copy
        return array
    below = np.arange(-array.shape[1], 0, dtype=array.dtype)  # one distinct negative key per column
    return np.where(zero, below, array)


def _packed_order(array: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Sort order and sorted keys of float32 rows by one sort of ``key << 32 | column`` (None if a row holds NaN).

    Why: sorting plain uint64 is ~2x faster than an argsort and distinct keys never slow the sort. The key is the
    float's bits made monotone (flip every bit of a negative, the sign bit of a positive; -0.0 made +0.0 first),
    so equal keys are equal values. NaN keys fall outside [key(-inf), key(+inf)]: torch ranks each NaN apart, last.
    """
    bits = (array + np.float32(0.0)).view(np.uint32)  # -0.0 + 0.0 = +0.0: one key for both zeros
    keys = bits ^ np.where(bits >> 31, np.uint32(0xFFFFFFFF), np.uint32(0x80000000))
    packed = keys.astype(np.uint64) << np.uint64(32)
    packed |= np.arange(array.shape[1], dtype=np.uint64)
    packed.sort(axis=1)
    ordered = packed >> np.uint64(32)
    if ordered[:, 0].min() < 0x007FFFFF or ordered[:, -1].max() > 0xFF800000:  # the keys of -inf and +inf
        return None
    return (packed & np.uint64(0xFFFFFFFF)).astype(np.int64), ordered


def _packed_order64(array: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Sort order and sorted values of float64 rows by one sort of ``top(key) << s | column``, and which rows need an
    exact argsort instead (None if the array holds NaN or is too wide).

    Why: HOG features are float64, and an argsort of them costs 3x a plain sort of uint64. The float's monotone key
    (as :func:`_packed_order`) keeps its top ``64 - s`` bits, ``s`` the bits of a column index. Values that differ
    there are ordered exactly; values that agree there are ordered by column, which is right only when they are
    equal: a row where two such neighbours differ (a relative difference below 2**(s-52)) is flagged and ranked
    by argsort, so the ranks are exact either way.
    """
    n, d = array.shape
    shift = max(1, int(d - 1).bit_length())
    if shift > 31 or np.isnan(array).any():
        return None
    signed = (array + 0.0).view(np.int64)  # -0.0 + 0.0 = +0.0: one key for both zeros
    flip = signed >> 63  # arithmetic shift: all ones for a negative, zeros for a positive
    flip |= np.int64(-(2**63))  # and the sign bit for both
    packed = (signed ^ flip).view(np.uint64)
    packed >>= np.uint64(shift)
    packed <<= np.uint64(shift)
    packed |= np.arange(d, dtype=np.uint64)
    packed.sort(axis=1)
    order = (packed & np.uint64((1 << shift) - 1)).view(np.int64)
    ordered = torch.gather(torch.from_numpy(array), 1, torch.from_numpy(order)).numpy()  # ~4x take_along_axis
    packed >>= np.uint64(shift)
    mixed = ((packed[:, 1:] == packed[:, :-1]) & (ordered[:, 1:] != ordered[:, :-1])).any(axis=1)
    return order, ordered, mixed


def run_average_ranks(ordered: np.ndarray) -> np.ndarray:
    """Average rank at each position of sorted rows ``[N, D]``, flat: ``(first + last) / 2 + 1`` for a run of ties.

    ``first`` and ``last`` are the run's 0-based positions in its row (scipy ``rankdata(method="average")``).
    """
    n, d = ordered.shape
    new = np.empty((n, d), dtype=bool)  # where a run of equal values begins; every row begins one
    new[:, 0] = True
    np.not_equal(ordered[:, 1:], ordered[:, :-1], out=new[:, 1:])  # NaN != NaN: each NaN is its own run, as torch
    starts = np.flatnonzero(new)  # flat positions of the runs' first elements (runs never cross rows)
    lengths = np.diff(starts, append=n * d)
    # (first + last) / 2 + 1 = start + (length + 1) / 2 in flat positions, less the row's offset: exact halves
    ranks = np.repeat(starts + (lengths + 1) * 0.5, lengths).reshape(n, d)
    ranks -= (np.arange(n) * d)[:, None]  # per element: cheaper than a division per run
    return ranks.reshape(-1)


def average_ranks_numpy(values: torch.Tensor) -> torch.Tensor:
    """:func:`average_ranks` of a CPU tensor by a numpy sort (packed keys or argsort) and run lengths of ties."""
    array = _sortable(values)
    n, d = array.shape
    if array.size == 0:
        return torch.zeros(n, d, dtype=torch.float64)
    packed = _packed_order(array) if array.dtype == np.float32 and d < 2**32 else None
    wide = _packed_order64(array) if array.dtype == np.float64 else None
    if packed is not None:
        order, ordered = torch.from_numpy(packed[0]), packed[1]
    elif wide is not None:
        order, ordered, mixed = wide
        if mixed.any():  # rows whose cut keys tie distinct values: an exact argsort for those rows
            rows = np.flatnonzero(mixed)
            order[rows] = np.argsort(array[rows], axis=1)
            ordered[rows] = np.take_along_axis(array[rows], order[rows], axis=1) + 0.0
        order = torch.from_numpy(order)
    else:
        order = torch.from_numpy(np.argsort(_sort_keys(array), axis=1))
        ordered = torch.gather(torch.from_numpy(array), 1, order).numpy()  # torch's gather: ~2x take_along_axis
    ranks = torch.from_numpy(run_average_ranks(ordered).reshape(n, d))
    # ranks[i, j] belongs to element order[i, j]: scatter back (each slot written once, so deterministic)
    return torch.empty(n, d, dtype=torch.float64).scatter_(1, order, ranks)


def average_ranks_torch(values: torch.Tensor) -> torch.Tensor:
    """:func:`average_ranks` on any device by ``torch.sort``; a run's first and last positions by cummax/cummin."""
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
