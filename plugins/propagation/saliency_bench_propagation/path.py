"""Methods that average input gradients over many inputs: SmoothGrad (noise) and integrated gradients (path).

The expanded batch (samples x B images, the samples of all images together) goes through the network in
chunks of at most ``max_batch`` images, so memory stays bounded whatever the sample count. By default
(``max_batch=None``) a chunk is 32 inputs on a CPU, where larger batches run no faster per image (measured on
the default model: 2.0 ms per image at 32 and 64, 2.1 at 128), and 256 on a GPU, which needs large batches to
fill it (VGG-16 at 224 px keeps about 60 MB of activations per input: 15 GB per chunk).
"""
from __future__ import annotations

import numpy as np
import torch

from .gradients import chunked_target_gradient, network_of, sum_over_channels
from .methods import PropagationMethod
from .peers import captum_integrated_gradients, captum_noise_tunnel

CPU_CHUNK, GPU_CHUNK = 32, 256  # inputs per pass by default (module docstring)


def chunk_size(max_batch: int | None, device: torch.device) -> int:
    """Inputs per forward+backward pass: ``max_batch`` if set, else the device's default (module docstring)."""
    return int(max_batch) if max_batch is not None else (GPU_CHUNK if device.type == "cuda" else CPU_CHUNK)


QUADRATURES = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")


def quadrature(method: str, n_steps: int) -> tuple[list[float], list[float]]:
    """Nodes alpha_i in [0,1] and weights w_i of captum's approximation methods (same formulas, same values)."""
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n_steps)
        return (0.5 * (1 + nodes)).tolist(), (0.5 * weights).tolist()
    if method not in QUADRATURES:
        raise ValueError(f"unknown integration method {method!r}; choose one of {QUADRATURES}")
    if n_steps < 2:
        raise ValueError("Riemann rules need n_steps >= 2")
    weights = [1 / n_steps] * n_steps
    rule = method.split("_")[1]
    if rule == "trapezoid":
        weights[0] /= 2
        weights[-1] /= 2
        alphas = torch.linspace(0, 1, n_steps)
    elif rule == "left":
        alphas = torch.linspace(0, 1 - 1 / n_steps, n_steps)
    elif rule == "middle":
        alphas = torch.linspace(1 / (2 * n_steps), 1 - 1 / (2 * n_steps), n_steps)
    else:
        alphas = torch.linspace(1 / n_steps, 1, n_steps)
    return alphas.tolist(), weights


def noise_sigma(inputs: torch.Tensor, noise_level: float) -> torch.Tensor:
    """SmoothGrad's sigma per image, ``noise_level`` * (max - min) of that image (Smilkov et al. 2017), ``[B,1,1,1]``."""
    flat = inputs.flatten(1)
    return (noise_level * (flat.amax(dim=1) - flat.amin(dim=1))).view(-1, 1, 1, 1)


NOISE_LEVELS = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2)


@torch.no_grad()
@torch.no_grad()
def top1_kept(model, inputs: torch.Tensor, noise_level: float, n_samples: int = 16, seed: int = 0) -> float:
    """The fraction of noisy copies x + N(0, (level * range(x))^2) whose top-1 class is the clean input's."""
    network = network_of(model)
    clean = network(inputs).argmax(1)
    generator = torch.Generator(device=inputs.device).manual_seed(seed)
    sigma = noise_sigma(inputs, noise_level)
    kept = 0
    for _ in range(n_samples):
        noise = torch.randn(inputs.shape, generator=generator, device=inputs.device, dtype=inputs.dtype)
        kept += int((network(inputs + sigma * noise).argmax(1) == clean).sum())
    return kept / (n_samples * len(inputs))


def calibrate_noise_level(model, inputs: torch.Tensor, keep: float = 0.95, levels=NOISE_LEVELS, **options) -> float:
    """The largest SmoothGrad noise level of ``levels`` at which the top-1 class holds on >= ``keep`` of noisy copies.

    Smilkov et al. 2017 chose sigma (10-20% of the range on ImageNet) as the noise the model tolerates;
    a level at which the model's prediction changes averages gradients of other decisions. 0.0 if none holds.
    """
    holding = [level for level in sorted(levels) if top1_kept(model, inputs, level, **options) >= keep]
    return holding[-1] if holding else 0.0


_DIGEST_WEIGHTS: dict[tuple[int, str], torch.Tensor] = {}


def image_seeds(inputs: torch.Tensor, seed: int) -> list[int]:
    """One generator seed per image: ``seed`` and an exact integer digest of the image's float32 bits.

    The digest is sum_j bits_j * w_j modulo 2^64 with fixed odd weights w_j: integer arithmetic, so it is the same
    in any summation order and on any device, and one host transfer of B numbers per call.
    """
    bits = inputs.detach().float().flatten(1).contiguous().view(torch.int32).long()
    key = (bits.shape[1], str(bits.device))
    if key not in _DIGEST_WEIGHTS:
        generator = torch.Generator().manual_seed(0x5EED)
        weights = torch.randint(0, 2**31, (bits.shape[1],), generator=generator, dtype=torch.int64) * 2 + 1
        _DIGEST_WEIGHTS[key] = weights.to(bits.device)
    digests = (bits * _DIGEST_WEIGHTS[key]).sum(1).tolist()
    return [int(np.random.SeedSequence([int(seed), digest % 2**64]).generate_state(1, dtype=np.uint64)[0] >> 1)
            for digest in digests]


def image_noise(inputs: torch.Tensor, n_samples: int, seed: int) -> torch.Tensor:
    """``[n_samples, B, C, H, W]`` standard normal noise, image ``b``'s from a generator seeded by its content."""
    rows = [torch.randn((n_samples, *inputs.shape[1:]), generator=torch.Generator(device=inputs.device).manual_seed(s),
                        device=inputs.device, dtype=inputs.dtype) for s in image_seeds(inputs, seed)]
    return torch.stack(rows, dim=1) if rows else inputs.new_zeros((n_samples, *inputs.shape))


class SmoothGrad(PropagationMethod):
    """SmoothGrad (Smilkov et al. 2017): mean gradient over n noisy copies; map = max over channels of |.|.

    Noise N(0, sigma^2) with sigma = ``noise_level`` * (max - min) of each input image (0.15 by default; a model
    named in ``noise_levels`` gets its own level there, calibrated for it: ``calibrate_noise_level``),
    ``n_samples`` = 25 copies per image, drawn from a ``torch.Generator`` seeded with ``seed`` and the image's
    content (``image_seeds``): the same image gets the same noise in any batch, for any target and any model,
    so a map is a function of (model, image, target) alone. The raw gradients are averaged, then reduced.
    """

    name = "smoothgrad"
    settings = ("noise_level", "noise_levels", "n_samples", "seed")

    def __init__(self, n_samples: int = 25, noise_level: float = 0.15, seed: int = 0, max_batch: int | None = None,
                 noise_levels: dict[str, float] | None = None):
        if n_samples < 1 or (max_batch is not None and max_batch < 1):
            raise ValueError("n_samples and max_batch must be >= 1")
        self.n_samples = int(n_samples)
        self.passes = self.n_samples  # one forward+backward per noisy copy: the run's floor counts them
        self.noise_level = float(noise_level)
        self.noise_levels = {name: float(level) for name, level in sorted((noise_levels or {}).items())}
        self.seed = int(seed)
        self.max_batch = max_batch

    def level_for(self, model) -> float:
        """The noise level used on ``model``: its own in ``noise_levels`` (by model name), else ``noise_level``."""
        return self.noise_levels.get(getattr(model, "name", None), self.noise_level)

    def input_attribution(self, model, inputs, targets):
        """(1/n) sum_i df_t/dx (x + eps_i), eps_i ~ N(0, sigma^2), sigma per sample."""
        x = inputs.detach()
        sigma = noise_sigma(x, self.level_for(model))
        noisy = (x + sigma * image_noise(x, self.n_samples, self.seed)).flatten(0, 1)
        grads = chunked_target_gradient(network_of(model), noisy, targets.repeat(self.n_samples),
                                        chunk_size(self.max_batch, x.device))
        return grads.view(self.n_samples, *x.shape).mean(dim=0)

    def peers(self, model):
        """captum's NoiseTunnel SmoothGrad with the same number of samples."""
        return captum_noise_tunnel(model, self.n_samples, self.level_for(model))


class IntegratedGradients(PropagationMethod):
    """Integrated gradients (Sundararajan et al. 2017), zero baseline; map = sum over channels (completeness).

    IG = x * sum_i w_i df_t/dx(alpha_i x) with captum's quadrature (``method`` "gausslegendre" by default,
    or "riemann_left/right/middle/trapezoid"), ``n_steps`` = 32 nodes.
    """

    name = "integrated_gradients"
    reduction = staticmethod(sum_over_channels)
    settings = ("n_steps", "method")

    def __init__(self, n_steps: int = 32, method: str = "gausslegendre", max_batch: int | None = None):
        if n_steps < 1 or (max_batch is not None and max_batch < 1):
            raise ValueError("n_steps and max_batch must be >= 1")
        self.n_steps = int(n_steps)
        self.passes = self.n_steps  # one forward+backward per point of the path: the run's floor counts them
        self.method = method
        self.max_batch = max_batch
        self.alphas, self.weights = quadrature(method, self.n_steps)

    def input_attribution(self, model, inputs, targets):
        """(x - 0) * sum_i w_i grad f_t(0 + alpha_i (x - 0))."""
        x = inputs.detach()
        shape = (-1,) + (1,) * x.dim()
        alphas = torch.tensor(self.alphas, dtype=x.dtype, device=x.device).view(shape)
        weights = torch.tensor(self.weights, dtype=x.dtype, device=x.device).view(shape)
        path = (alphas * x).flatten(0, 1)
        grads = chunked_target_gradient(network_of(model), path, targets.repeat(self.n_steps),
                                        chunk_size(self.max_batch, x.device))
        return x * (weights * grads.view(self.n_steps, *x.shape)).sum(dim=0)


    def peers(self, model):
        """captum's IntegratedGradients with the same nodes (``n_steps``) and rule (``method``)."""
        return captum_integrated_gradients(model, self.n_steps, self.method)
