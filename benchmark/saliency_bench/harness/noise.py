"""Seeded noise per map: a map's random draws depend on which map it is, never on the batch it was computed in.

The harness computes each (image, target) map once and shares it between checks, in batches whose
composition depends on the checks selected and on the shard size. A method that draws noise from torch's
global generator would then draw different noise for the same map under another schedule. The harness
therefore names every row of a method call with a seed, derived from the run's seed, the image's index in
the dataset, the target class and a *stream* (0 for the unchanged model; a randomisation step has its own),
and a method draws its noise through :func:`rand` / :func:`randn`: row ``b`` comes from a generator seeded
with row ``b``'s seed. Outside the harness (a method called directly) they draw from torch's global
generator, as ``torch.rand`` does.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, Sequence

import numpy as np
import torch

_ROW_SEEDS: ContextVar[tuple[int, ...] | None] = ContextVar("saliency_bench_row_seeds", default=None)


def map_seeds(seed: int, images: torch.Tensor | Sequence[int], targets: torch.Tensor | Sequence[int],
              stream: int = 0) -> tuple[int, ...]:
    """One 63-bit seed per (image index, target class) of a run seeded ``seed``, in ``stream`` (independent streams)."""
    images = images.tolist() if torch.is_tensor(images) else list(images)
    targets = targets.tolist() if torch.is_tensor(targets) else list(targets)
    if len(images) != len(targets):
        raise ValueError(f"{len(images)} image indices for {len(targets)} targets")
    return tuple(int(np.random.SeedSequence([int(seed), int(stream), int(image), int(target)])
                     .generate_state(1, dtype=np.uint64)[0] >> 1) for image, target in zip(images, targets))


@contextmanager
def seeded_rows(seeds: Sequence[int] | None) -> Iterator[None]:
    """Within the block, :func:`rand` and :func:`randn` draw row ``b`` from a generator seeded with ``seeds[b]``."""
    token = _ROW_SEEDS.set(None if seeds is None else tuple(int(s) for s in seeds))
    try:
        yield
    finally:
        _ROW_SEEDS.reset(token)


def row_seeds() -> tuple[int, ...] | None:
    """The seeds of the rows of the current method call (None outside the harness)."""
    return _ROW_SEEDS.get()


def _draw(sampler, shape: Sequence[int], device, dtype) -> torch.Tensor:
    seeds = row_seeds()
    if seeds is None:
        return sampler(tuple(shape), device=device, dtype=dtype)
    if len(seeds) != shape[0]:
        raise ValueError(f"noise for {shape[0]} rows asked in a call of {len(seeds)} maps")
    rows = []
    for seed in seeds:
        generator = torch.Generator(device=device).manual_seed(seed)
        rows.append(sampler(tuple(shape[1:]), generator=generator, device=device, dtype=dtype))
    return torch.stack(rows) if rows else torch.empty(tuple(shape), device=device, dtype=dtype)


def rand(shape: Sequence[int], device=None, dtype=torch.float32) -> torch.Tensor:
    """Uniform [0, 1) noise of ``shape`` (rows first), each row from its map's seed (module docstring)."""
    return _draw(torch.rand, shape, device, dtype)


def randn(shape: Sequence[int], device=None, dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise of ``shape`` (rows first), each row from its map's seed (module docstring)."""
    return _draw(torch.randn, shape, device, dtype)
