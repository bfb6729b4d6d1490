"""What the three checks share: targets, seeded map streams, weight draws, n/a for a whole group, readers, summaries.

Everything here goes through the public API (``saliency_bench``) only.
"""
from __future__ import annotations

import numpy as np
import torch

from saliency_bench import Param, noise, randomized_copy, read_metric, summarize

# Each check's own tag in the seeds it derives from the run's seed (its maps' noise streams, its input noise).
TAGS = {"data_randomization": 2018_4, "emprt": 2023_1, "smprt": 2023_2}
UNCHANGED = 0  # the noise stream of maps of the unchanged model: the shared maps' stream (checks/shared_maps.py)
INITS = ("layer_std", "fixed")  # the randomisation check's weight initialisations (saliency_bench.randomized_copy)


def derived_seed(*parts: int) -> int:
    """A 63-bit seed from non-negative integers (``np.random.SeedSequence``): independent streams per tuple."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


def stream(check: str, *parts: int) -> int:
    """The noise stream of one of ``check``'s model states (``noise.map_seeds``'s ``stream``), never 0."""
    return derived_seed(TAGS[check], *parts) | 1


@torch.no_grad()
def top_classes(model, inputs: torch.Tensor) -> torch.Tensor:
    """``[B]`` the model's top (max-logit) class of each input."""
    return model(inputs).argmax(dim=1)


def maps_of(group, suite, inputs: torch.Tensor, index: torch.Tensor, targets: torch.Tensor, model,
            noise_stream: int) -> dict[str, torch.Tensor]:
    """The group's maps on ``model``, each row seeded by its map (run seed, image index, target, ``noise_stream``)."""
    seeds = noise.map_seeds(suite.seed, index, targets, noise_stream)
    return group(inputs, targets, model=model, seeds=seeds)


def all_not_applicable(group, reason: str) -> None:
    """Mark every active method of ``group`` n/a on this check, with ``reason`` (``MethodGroup.not_applicable_all``)."""
    group.not_applicable_all(reason)


def twin_of(model, kind: str):
    """The model's twin of ``kind`` (``ModelWrapper.twin``), or None where it has none."""
    twin = getattr(model, "twin", None)
    return None if twin is None else twin(kind)


def randomized_models(suite, params: dict) -> list:
    """One fully randomised copy of the model per weight draw: the randomisation cascade's final state."""
    return [randomized_copy(suite.model, int(params["seed"]), draw, init=str(params["init"]),
                            std=float(params["init_std"]), bias=float(params["init_bias"]))
            for draw in range(int(params["draws"]))]


def images_param(default: int) -> Param:
    """The ``images`` parameter with this check's own default (at most the run's images)."""
    return Param(int, lambda suite: min(default, suite.num_images), minimum=1,
                 maximum=lambda params, suite: suite.num_images, bound_note="the run's images, --limit",
                 help=f"images the check scores (default: {default}, at most the run's)")


def draw_params(draws: int) -> dict[str, Param]:
    """The weight draws of the fully randomised model, as the randomisation check declares them."""
    return {
        "draws": Param(int, draws, minimum=1, maximum=1000, help="independent weight draws per image"),
        "init": Param(str, INITS[0], choices=INITS, help="weights drawn at each tensor's trained scale, or fixed"),
        "init_std": Param(float, 0.01, minimum=0.0, min_inclusive=False, maximum=1e6,
                          help="the std of the fixed init (and of tensors without a trained scale)"),
        "init_bias": Param(float, 0.0, minimum=-1e6, maximum=1e6, help="the value biases are set to"),
    }


def boot(params: dict) -> dict:
    """The bootstrap keyword arguments of ``saliency_bench.summarize`` from a check's parameters."""
    return {"seed": int(params["seed"]), "n_boot": int(params["bootstrap_samples"]), "level": float(params["ci_level"])}


def per_image(values: np.ndarray) -> np.ndarray:
    """One value per image: the mean of the finite values over every axis after the first (NaN if none)."""
    values = np.asarray(values, dtype=float).reshape(len(values), -1)
    finite = np.isfinite(values)
    counts, sums = finite.sum(1), np.where(finite, values, 0.0).sum(1)
    return np.divide(sums, counts, out=np.full(len(values), np.nan), where=counts > 0)


def summaries(data: dict[str, np.ndarray], params: dict) -> dict[str, dict]:
    """``{metric: saliency_bench.summarize(per-image values)}``: mean and bootstrap interval over images."""
    return {metric: summarize(values, **boot(params)) for metric, values in data.items()}


def read_lower_end(check: str, metric: str):
    """A reader of the lower end of ``metric``'s interval (a verdict on the interval, not the mean)."""
    base = read_metric(check, metric)

    def read(results):
        """``{"value": ci_low}`` of the metric where the check ran ok and has an interval, else None."""
        found = base(results)
        return None if found is None or found.get("ci_low") is None else {"value": found["ci_low"]}

    read.__doc__ = f"{check}.{metric} (lower end of the interval)"
    read.check, read.metric = check, metric  # the per-image data it is read from (the site's picks and marks)
    return read


def concatenated(parts: list[np.ndarray], shape: tuple) -> np.ndarray:
    """The rows of ``parts`` stacked (an empty ``shape`` array if none)."""
    return np.concatenate(parts) if parts else np.zeros(shape)
