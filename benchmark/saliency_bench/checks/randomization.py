"""Cascading parameter randomisation (Adebayo et al. 2018) on a copy of the model, never the user's."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import UserError
from .base import Check, MethodGroup
from .class_sensitivity import hog_args, hog_params
from .similarity import hog_ranked, minmax, rank_correlation, ranked, ssim
from .stats import bootstrap_ci, bootstrap_params, metric, summarize

if TYPE_CHECKING:  # pragma: no cover
    from ..models.wrapper import ModelWrapper
    from ..suite import Suite

MEASURES = ("spearman_hog", "spearman_abs", "spearman_signed", "ssim")
SSIM_WINDOW = 7  # Adebayo et al. 2018 / skimage structural_similarity default


def random_parameters(model: "ModelWrapper", order: list[str], std: float, bias: float, seed: int) -> list[dict]:
    """Per layer in ``order``, ``{param_name: new value}``: weights ~ N(0, std), biases = ``bias``; drawn once, seeded.

    Drawn on the CPU from one ``torch.Generator`` in a fixed order, so every device gets the same values.
    """
    generator = torch.Generator().manual_seed(int(seed))
    layers = []
    for layer in order:
        new = {}
        for pname, param in model.module(layer).named_parameters(recurse=False):
            if pname == "bias":
                value = torch.full(param.shape, float(bias))
            else:
                value = torch.randn(param.shape, generator=generator) * float(std)
            new[pname] = value.to(device=param.device, dtype=param.dtype)
        layers.append(new)
    return layers


@torch.no_grad()
def restore_layers(copy: "ModelWrapper", original: "ModelWrapper", order: list[str]) -> None:
    """Copy the original parameters of every layer in ``order`` back into the model copy."""
    for layer in order:
        source = dict(original.module(layer).named_parameters(recurse=False))
        for pname, param in copy.module(layer).named_parameters(recurse=False):
            param.copy_(source[pname])


@torch.no_grad()
def randomize_layer(copy: "ModelWrapper", layer: str, values: dict) -> None:
    """Overwrite one layer of the copy with its pre-drawn random parameters."""
    for pname, param in copy.module(layer).named_parameters(recurse=False):
        param.copy_(values[pname])


class MapProfile:
    """What the four similarities of Adebayo et al. 2018 need from a batch of maps, computed once.

    The reference (original model) profile of a batch is reused for every randomisation step.
    """

    def __init__(self, maps: torch.Tensor, params: dict):
        self.hog = hog_ranked(maps, **hog_args(params))
        self.signed = ranked(maps.flatten(1))
        # on the CPU skip a second ranking when |map| = map; on a GPU ranking is cheaper than the host sync
        nonnegative = maps.device.type == "cpu" and bool((maps >= 0).all())
        self.abs = self.signed if nonnegative else ranked(maps.abs().flatten(1))
        self.normalised, self.valid = minmax(maps)

    def compare(self, other: "MapProfile", ssim_window: int) -> dict[str, torch.Tensor]:
        """Spearman on HOG, of |map| and of the signed map, and SSIM of min-max maps, per image (NaN if undefined).

        The values stay on the maps' device; the check moves a batch's whole cascade to the host at once.
        """
        return {
            "spearman_hog": rank_correlation(self.hog, other.hog),
            "spearman_abs": rank_correlation(self.abs, other.abs),
            "spearman_signed": rank_correlation(self.signed, other.signed),
            "ssim": ssim(self.normalised, other.normalised, 1.0, ssim_window).masked_fill(
                ~(self.valid & other.valid), float("nan")
            ),
        }


def layer_mean(data: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean over layers of the per-layer mean of finite values, for each row of image weights."""
    finite = np.isfinite(data)
    sums, counts = weights @ np.where(finite, data, 0.0), weights @ finite.astype(float)  # [rows, L]
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    layers = (counts > 0).sum(1)
    return np.divide(means.sum(1), layers, out=np.full(len(layers), np.nan), where=layers > 0)


def curve_metrics(data: np.ndarray, boot: dict) -> dict:
    """``{"mean", "final", "curve"}`` for one measure's per-image, per-layer values ``[n, L]`` (NaN = undefined).

    The mean over layers counts as ``n`` the images with at least one finite value, as ``dropped``
    the images with none, and as ``dropped_values`` every undefined (image, layer) value.
    """
    curve = [summarize(data[:, step], **boot) for step in range(data.shape[1])]
    usable = data[np.isfinite(data).any(1)]
    value = float(layer_mean(usable, np.ones((1, len(usable))))[0]) if len(usable) else None
    mean = metric(
        value,
        bootstrap_ci(usable, layer_mean, **boot),
        len(usable),
        dropped=int(len(data) - len(usable)),
        dropped_values=int((~np.isfinite(data)).sum()),
    )
    return {"mean": mean, "final": curve[-1], "curve": curve}


def cascade_step(model: "ModelWrapper", group: MethodGroup, inputs: torch.Tensor, targets: torch.Tensor):
    """A callable doing one cascade step as the check does: maps on a model copy plus all four similarities."""
    params = hog_params(model)
    copy = model.copy()
    reference: dict[str, MapProfile] = {}

    def step() -> None:
        if not reference:  # the original model's profiles, once (in a timer's warm-up round, where errors are caught)
            reference.update({name: MapProfile(maps, params) for name, maps in group(inputs, targets).items()})
        for name, maps in group(inputs, targets, model=copy).items():
            reference[name].compare(MapProfile(maps, params), SSIM_WINDOW)

    return step


class CascadingRandomization(Check):
    """Similarity of each map with the original model's map as layers are re-initialised from the top down."""

    name = "randomization"
    requires_masks = False
    description = "Cascading parameter randomisation (Adebayo et al. 2018): similarity to the original map per layer"

    def default_params(self, suite: "Suite") -> dict:
        """The model's randomisation order, N(0, 0.01) weights, zero biases, HOG/SSIM settings, bootstrap."""
        return {
            "order": list(suite.model.randomization_order),
            "init_std": 0.01,
            "init_bias": 0.0,
            **hog_params(suite.model),
            "ssim_window": SSIM_WINDOW,
            "bootstrap_samples": 1000,
            "ci_level": 0.95,
            "seed": int(suite.seed),
        }

    def run(self, suite: "Suite", group: MethodGroup, params: dict) -> dict[str, dict]:
        """Stream the suite once; per batch restore the copy, then randomise it cumulatively, layer by layer.

        Memory: the user's model, one copy, and the random values drawn once (no copy per step).
        """
        original = suite.model
        order = list(params["order"])
        missing = [layer for layer in order if layer not in dict(original.network.named_modules())]
        if missing or not order:
            raise UserError(f"randomization order names no layer or unknown layers {missing} of model '{original.name}'")
        copy = original.copy()
        random_layers = random_parameters(copy, order, float(params["init_std"]), float(params["init_bias"]), params["seed"])
        values = {name: {m: [] for m in MEASURES} for name in group.active}
        for batch in suite.batches(desc=self.name):
            inputs = batch["inputs"]
            with torch.no_grad():
                targets = original(inputs).argmax(1)
            reference = {name: MapProfile(maps, params) for name, maps in group(inputs, targets, model=original).items()}
            restore_layers(copy, original, order)
            steps = {name: {m: [] for m in MEASURES} for name in reference}
            for layer, layer_values in zip(order, random_layers):
                randomize_layer(copy, layer, layer_values)
                for name, maps in group(inputs, targets, model=copy).items():
                    compared = reference[name].compare(MapProfile(maps, params), int(params["ssim_window"]))
                    for measure, value in compared.items():
                        steps[name][measure].append(value)
            for name in group.active:
                if name in values and name in steps:
                    for measure in MEASURES:
                        values[name][measure].append(torch.stack(steps[name][measure], dim=1).cpu().numpy())
        boot = bootstrap_params(params)
        return {name: self.result(values[name], order, boot) for name in group.active}

    @staticmethod
    def result(values: dict[str, list[np.ndarray]], order: list[str], boot: dict) -> dict:
        """Metrics ``<measure>_mean`` / ``<measure>_final`` and the per-layer curve of every measure."""
        metrics, curve = {}, {"layers": list(order)}
        for measure in MEASURES:
            data = np.concatenate(values[measure]) if values[measure] else np.zeros((0, len(order)))
            summary = curve_metrics(data, boot)
            metrics[f"{measure}_mean"] = summary["mean"]
            metrics[f"{measure}_final"] = summary["final"]
            curve[measure] = summary["curve"]
        return {"metrics": metrics, "headline": "spearman_hog_mean", "curve": curve}
