"""sMPRT's denoised maps: the mean map over N noisy copies of the input (Hedström et al. 2023; Quantus SmoothMPRT).

``a_bar(x) = (1/N) sum_n a(x + eps_n)``, ``eps_n ~ N(0, s^2)`` per element for n < N - 1 and ``eps_{N-1} = 0`` (the last
copy is the clean input), ``s = magnitude * (max(x) - min(x))`` over each input's channels and pixels (Quantus's
``explain_smooth_batch``). The noise is standard normal in float64 from a CPU ``torch.Generator`` per image, seeded by
the run's seed, the image's index in the dataset and the model state, so neither the device, the batch nor the shard
changes it; ``x + s * eps`` is formed in float64 and cast back to the input's dtype, as Quantus adds float64 noise to
float32 inputs. The mean is accumulated in the maps' dtype as ``a_0 / N``, then ``+= a_n / N`` in order (Quantus).
"""
from __future__ import annotations

from typing import Sequence

import torch

from saliency_bench import noise

from .common import derived_seed


class InputNoise:
    """Standard normal noise for one batch of images in one model state: each image's own seeded CPU generator."""

    def __init__(self, seed: int, tag: int, index: torch.Tensor, key: Sequence[int], shape: Sequence[int]):
        self.generators = [torch.Generator().manual_seed(derived_seed(tag, seed, image, *key))
                           for image in index.tolist()]
        self.shape = tuple(shape)

    def draw(self, count: int) -> torch.Tensor:
        """``[count, B, *shape]`` float64 on the CPU: the next ``count`` draws of every image, in order."""
        rows = [torch.stack([torch.randn(self.shape, generator=g, dtype=torch.float64) for g in self.generators])
                for _ in range(count)]
        return torch.stack(rows) if rows else torch.zeros((0, len(self.generators), *self.shape), dtype=torch.float64)


def noise_scale(inputs: torch.Tensor, magnitude: float) -> torch.Tensor:
    """``[B, 1, 1, 1]`` noise std ``magnitude * (max - min)`` of each input, in its dtype (Quantus's convention)."""
    flat = inputs.flatten(1)
    return (magnitude * (flat.amax(1) - flat.amin(1))).view(-1, *([1] * (inputs.dim() - 1)))


def in_layout(batch: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``batch`` in ``like``'s memory layout (channels-last where the run prepares inputs so)."""
    if like.dim() == 4 and not like.is_contiguous() and like.is_contiguous(memory_format=torch.channels_last):
        return batch.contiguous(memory_format=torch.channels_last)
    return batch


def noisy_copies(inputs: torch.Tensor, scale: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
    """``[k * B, ...]``: ``inputs + scale * eps`` for each of the k draws ``[k, B, ...]`` (float64, cast back)."""
    eps = draws.to(inputs.device)
    noisy = inputs.double().unsqueeze(0) + eps * scale.double().unsqueeze(0)
    return in_layout(noisy.to(inputs.dtype).flatten(0, 1), inputs)


def sample_chunks(samples: int, images: int, batch_size: int) -> list[range]:
    """The samples ``0 .. N-1`` in calls of at most ``batch_size`` maps (at least one sample per call)."""
    per_call = max(1, batch_size // max(1, images))
    return [range(start, min(samples, start + per_call)) for start in range(0, samples, per_call)]


def chunk_inputs(inputs: torch.Tensor, scale: torch.Tensor, source: InputNoise, chunk: range,
                 samples: int) -> torch.Tensor:
    """The inputs of the samples in ``chunk``, sample-major: noisy copies, the last sample (``N - 1``) clean."""
    noisy = [noisy_copies(inputs, scale, source.draw(len([n for n in chunk if n < samples - 1])))]
    if chunk[-1] == samples - 1:
        noisy.append(inputs)
    return in_layout(torch.cat(noisy), inputs)


def smoothed_maps(group, suite, batch: dict, targets: torch.Tensor, model, params: dict, tag: int,
                  key: Sequence[int], streams) -> dict[str, torch.Tensor]:
    """``{method: sum_n a(x + s eps_n) / N}`` ``[B, H, W]`` on ``model`` in state ``key``; failed methods left out."""
    inputs, index, samples = batch["inputs"], batch["index"], int(params["samples"])
    source = InputNoise(int(suite.seed), tag, index, key, inputs.shape[1:])
    scale = noise_scale(inputs, float(params["noise_magnitude"]))
    sums: dict[str, torch.Tensor] = {}
    seen: dict[str, int] = {}
    for chunk in sample_chunks(samples, len(inputs), suite.batch_size):
        rows = chunk_inputs(inputs, scale, source, chunk, samples)
        seeds = sum((noise.map_seeds(suite.seed, index, targets, streams(n)) for n in chunk), ())
        found = group(rows, targets.repeat(len(chunk)), model=model, seeds=seeds)
        for name, maps in found.items():
            for part in maps.view(len(chunk), len(inputs), *maps.shape[1:]):
                sums[name] = part / samples if name not in sums else sums[name].add_(part / samples)
            seen[name] = seen.get(name, 0) + len(chunk)
    return {name: mean for name, mean in sums.items() if seen[name] == samples and name in group.active}
