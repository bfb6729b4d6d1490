"""Cascading parameter randomisation (Adebayo et al. 2018) on a copy of the model, never the user's."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import UserError
from .base import PerImageCheck
from .class_sensitivity import hog_args, hog_params
from .params import BOOTSTRAP, HOG, MAX_COUNT, SSIM_WINDOW_PARAM, Param
from .presentation import Column, Rule, read_metric
from .similarity import (SsimStats, constant_pair, constant_rule, hog, map_range, minmax, rank_correlation, ranked,
                         ssim_of_stats, ssim_stats)
from .stats import bootstrap_params, crossed_mean, summarize_crossed

if TYPE_CHECKING:  # pragma: no cover
    from ..harness.group import MethodGroup
    from ..harness.suite import Suite
    from ..models.wrapper import ModelWrapper

MEASURES = ("spearman_hog", "spearman_abs", "spearman_signed", "ssim")
SSIM_WINDOW = 7  # Adebayo et al. 2018 / skimage structural_similarity default


INITS = ("layer_std", "fixed")


def draw_seed(seed: int, draw: int) -> int:
    """The generator seed of weight draw ``draw`` of a run seeded ``seed`` (independent streams per draw)."""
    return int(np.random.SeedSequence([int(seed), int(draw)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def is_bias(name: str) -> bool:
    """A bias by name: the leaf is ``bias`` or ends in ``_bias`` (``nn.MultiheadAttention.in_proj_bias``)."""
    leaf = name.rsplit(".", 1)[-1]
    return leaf == "bias" or leaf.endswith("_bias")


def step_parameters(model: "ModelWrapper", order: list[str]) -> list[list[tuple[str, torch.nn.Parameter]]]:
    """Per cascade step, ``(name in the step's module, parameter)`` of its subtree that no earlier step took."""
    from ..models.blocks import subtree_parameters

    taken: set[int] = set()
    return [subtree_parameters(model.module(layer), taken) for layer in order]


def weight_scale(param: torch.Tensor, init: str, std: float) -> float:
    """``layer_std``: the std of the tensor's trained values; ``fixed``, one element or a std of 0/NaN: ``std``."""
    if init != "layer_std" or param.numel() <= 1:
        return float(std)
    trained = float(param.detach().cpu().double().std())  # on the CPU: the same scale whatever the device
    return trained if math.isfinite(trained) and trained > 0 else float(std)


def random_parameters(
    model: "ModelWrapper", order: list[str], std: float, bias: float, seed: int, init: str = "fixed", draw: int = 0
) -> list[dict]:
    """Per cascade step in ``order``, ``{param_name: new value}`` for every parameter of the step's module subtree
    that no earlier step took: weights ~ N(0, s^2), biases = ``bias``; seeded per draw.

    ``init="layer_std"``: s = the standard deviation of the tensor's own trained values, so the re-initialised
    tensor keeps the scale the network was trained at (Adebayo et al. 2018 re-draw from the training
    initialiser; the trained scale is what this harness can know of any model). ``init="fixed"``: s = ``std``.
    A tensor of one element or whose trained values are all equal (std 0, e.g. a LayerNorm weight still at its
    initial ones) is drawn with s = ``std`` too. Biases are parameters whose name is ``bias`` or ends in ``_bias``
    (attention ``in_proj_bias``); every other parameter, normalisation scales, class token and position embedding
    included, is a weight. Buffers (batch-norm running statistics) are left as trained.
    Drawn on the CPU from one ``torch.Generator`` in a fixed order (steps, then parameters in definition order),
    so every device gets the same values.
    """
    if init not in INITS:
        raise UserError(f"randomization init must be one of {', '.join(INITS)}, got {init!r}")
    generator = torch.Generator().manual_seed(draw_seed(seed, draw))
    layers = []
    for params in step_parameters(model, order):
        new = {}
        for pname, param in params:
            if is_bias(pname):
                value = torch.full(param.shape, float(bias))
            else:
                value = torch.randn(param.shape, generator=generator) * weight_scale(param, init, std)
            new[pname] = value.to(device=param.device, dtype=param.dtype)
        layers.append(new)
    return layers


@torch.no_grad()
def restore_layers(copy: "ModelWrapper", original: "ModelWrapper", order: list[str]) -> None:
    """Copy the original parameters of every cascade step in ``order`` (their module subtrees) back into the copy."""
    for layer, params in zip(order, step_parameters(copy, order)):
        source = dict(original.module(layer).named_parameters())
        for pname, param in params:
            param.copy_(source[pname])


@torch.no_grad()
def randomize_layer(copy: "ModelWrapper", layer: str, values: dict) -> None:
    """Overwrite one cascade step of the copy (the parameters named in ``values``) with its pre-drawn values."""
    params = dict(copy.module(layer).named_parameters())
    for pname, value in values.items():
        params[pname].copy_(value)


class MapProfile:
    """What the four similarities of Adebayo et al. 2018 need from a batch of maps, computed once.

    The reference (original model) profile of a batch is reused for every randomisation step, its SSIM window
    statistics included (computed at the first comparison, per window size).
    """

    def __init__(self, maps: torch.Tensor, params: dict):
        self.normalised, self.valid = minmax(maps)  # valid = not exactly constant
        self.range = map_range(maps)
        self.hog = ranked(hog(self.normalised, **hog_args(params)), undefined=~self.valid)  # = hog_ranked(maps)
        self.signed = ranked(maps.flatten(1))
        # on the CPU skip a second ranking when |map| = map; on a GPU ranking is cheaper than the host sync
        nonnegative = maps.device.type == "cpu" and bool((maps >= 0).all())
        self.abs = self.signed if nonnegative else ranked(maps.abs().flatten(1))
        self._ssim: dict[int, SsimStats] = {}

    def ssim_stats(self, window: int) -> SsimStats:
        """The SSIM statistics of the min-max maps for ``window`` (similarity.ssim_stats), computed once."""
        if window not in self._ssim:
            self._ssim[window] = ssim_stats(self.normalised, window)
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


def layer_mean(data: np.ndarray) -> np.ndarray:
    """Per (image, draw) the mean over the cascade's steps of the finite values ``[n, D, L] -> [n, D]`` (NaN if none)."""
    finite = np.isfinite(data)
    counts = finite.sum(-1)
    sums = np.where(finite, data, 0.0).sum(-1)
    return np.divide(sums, counts, out=np.full(counts.shape, np.nan), where=counts > 0)


def draw_mean(data: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The mean of the finite per-(image, draw) values ``[n, D]`` under image counts ``[B, n]`` (draws all kept)."""
    return crossed_mean(data, weights, np.ones((len(weights), data.shape[1])))


def curve_metrics(data: np.ndarray, vanished: np.ndarray, boot: dict) -> dict:
    """``{"mean", "final", "curve"}`` of one measure's values ``[n, D, L]`` (images, weight draws, cascade steps).

    Each entry has a crossed image-and-draw bootstrap CI; ``vanished`` counts, of the ``maps`` randomised maps
    it summarises ((image, draw) pairs at a step; (image, draw, step) for the mean), those that became constant
    (scored 0 by the constant-map rule); ``dropped`` counts the undefined values.
    """
    curve = [summarize_crossed(data[..., step], **boot, vanished=int(vanished[..., step].sum()),
                               maps=int(vanished[..., step].size)) for step in range(data.shape[-1])]
    mean = summarize_crossed(layer_mean(data), **boot, vanished=int(vanished.sum()), maps=int(vanished.size))
    return {"mean": mean, "final": curve[-1], "curve": curve}


def cascade_step(model: "ModelWrapper", group: "MethodGroup", inputs: torch.Tensor, targets: torch.Tensor):
    """A callable doing one cascade step as the check does: maps on a model copy plus all four similarities.

    Public, for timing (``saliency-bench bench``, speed.py; tests/benchmarks): ``step()`` computes ``group``'s
    maps of ``inputs`` for ``targets`` on a copy of ``model`` and compares each with the original model's map
    (computed at the first call and kept) by Spearman on HOG, of |map| and of the signed map, and SSIM, with the
    check's default HOG parameters and SSIM window. ``model`` itself is never changed; the copy is not
    re-initialised, as the cost of a step does not depend on the weights' values. Failures land in ``group``.
    """
    params = hog_params(model)
    copy = model.copy()
    reference: dict[str, MapProfile] = {}

    def step() -> None:
        if not reference:  # the original model's profiles, once (in a timer's warm-up round, where errors are caught)
            reference.update({name: MapProfile(maps, params) for name, maps in group(inputs, targets).items()})
        for name, maps in group(inputs, targets, model=copy).items():
            reference[name].compare(MapProfile(maps, params), SSIM_WINDOW)

    return step


class CascadingRandomization(PerImageCheck):
    """Similarity of each map with the original model's map as layers are re-initialised from the top down."""

    name = "randomization"
    requires_masks = False
    better = {f"{measure}_{step}": "lower" for measure in ("spearman_hog", "spearman_abs", "spearman_signed", "ssim")
              for step in ("mean", "final")}
    order = 40
    columns = (
        Column("randomization_mean", "rand. mean", "randomization", read_metric("randomization", "spearman_hog_mean"),
               better="lower"),
        Column("randomization", "rand. final", "randomization", read_metric("randomization", "spearman_hog_final"),
               better="lower"),
    )
    rules = (Rule("randomization", "R", "spearman_hog_final", read_metric("randomization", "spearman_hog_final"), "<=",
                  0.5, reason="the map must change when every learned weight is destroyed"),)
    how_to_read = ("*Rand.* is the similarity between the map of the trained model and the map after cascading "
                   "re-initialisation of its layers from the logits down (each layer redrawn at its trained weight "
                   "scale, several draws; the interval covers images and draws): the mean over the cascade and the "
                   "final step (lower = the map depends on the learned weights); a map that vanishes after "
                   "randomisation scores 0 (it has changed completely).")
    combine = "mean over images and draws; crossed bootstrap over images and draws"

    def draw_figures(self, board: dict, folder) -> list[str]:
        """Spearman-on-HOG curves along the cascade, a panel per group of methods (figures/randomization.png)."""
        from pathlib import Path

        from .randomization_figure import draw_randomization_curves

        return ["figures/randomization.png"] if draw_randomization_curves(
            board, Path(folder) / "figures" / "randomization.png", self.name) else []

    description = "Cascading parameter randomisation (Adebayo et al. 2018): similarity to the original map per layer"
    parameters = {
        "order": Param(list, lambda suite: list(suite.model.randomization_order), settable=False,
                       help="the cascade's steps, from the logits down (the model's randomisation order)"),
        "init": Param(str, "layer_std", choices=INITS, help="weights drawn at each tensor's trained scale, or fixed"),
        "init_std": Param(float, 0.01, minimum=0.0, min_inclusive=False, maximum=1e6,
                          help="the std of the fixed init (and of tensors without a trained scale)"),
        "init_bias": Param(float, 0.0, minimum=-1e6, maximum=1e6, help="the value biases are set to"),
        "draws": Param(int, 3, minimum=1, maximum=MAX_COUNT, help="independent weight draws per image"),
        **HOG,
        "ssim_window": SSIM_WINDOW_PARAM,
        **BOOTSTRAP,
    }

    def run_images(self, suite: "Suite", group: "MethodGroup", params: dict) -> dict[str, dict[str, np.ndarray]]:
        """Stream the suite once; per batch and weight draw restore the copy, then randomise it layer by layer.

        Per image, ``[draws, layers]`` values of every measure and whether the map vanished at that step.

        Memory: the user's model, one copy, and each draw's random values (drawn once, no copy per step).
        """
        original = suite.model
        order = list(params["order"])
        missing = [layer for layer in order if layer not in dict(original.network.named_modules())]
        if missing or not order:
            raise UserError(f"randomization order names no layer or unknown layers {missing} of model '{original.name}'")
        draws = int(params["draws"])
        if draws < 1:
            raise UserError("parameter randomization.draws must be at least 1")
        copy = original.copy()
        random_draws = [
            random_parameters(copy, order, float(params["init_std"]), float(params["init_bias"]), params["seed"],
                              init=str(params["init"]), draw=draw)
            for draw in range(draws)
        ]
        values = {name: {m: [] for m in MEASURES} for name in group.active}
        vanished = {name: [] for name in group.active}
        for batch in suite.batches(desc=self.name):
            inputs = batch["inputs"]
            with torch.no_grad():
                targets = original(inputs).argmax(1)
            reference = {name: MapProfile(maps, params) for name, maps in group(inputs, targets, model=original).items()}
            steps = {name: {m: [] for m in MEASURES} for name in reference}  # per draw, then per layer
            gone = {name: [] for name in reference}
            for random_layers in random_draws:
                restore_layers(copy, original, order)
                group.accept_changes(copy)
                draw_steps = {name: {m: [] for m in MEASURES} for name in reference}
                draw_gone = {name: [] for name in reference}
                for layer, layer_values in zip(order, random_layers):
                    randomize_layer(copy, layer, layer_values)
                    group.accept_changes(copy)  # the check's own change; a method's change is caught
                    for name, maps in group(inputs, targets, model=copy).items():
                        profile = MapProfile(maps, params)
                        compared = reference[name].compare(profile, int(params["ssim_window"]))
                        for measure, value in compared.items():
                            draw_steps[name][measure].append(value)
                        original_constant, now_constant = reference[name].constant_against(profile)
                        draw_gone[name].append(now_constant & ~original_constant)
                for name in draw_steps:
                    if len(draw_gone[name]) == len(order):  # the method did not fail during this draw
                        for measure in MEASURES:
                            steps[name][measure].append(torch.stack(draw_steps[name][measure], dim=1))
                        gone[name].append(torch.stack(draw_gone[name], dim=1))
            for name in group.active:
                if name in values and len(gone.get(name, [])) == draws:
                    for measure in MEASURES:  # [B, D, L], moved to the host once per batch
                        values[name][measure].append(torch.stack(steps[name][measure], dim=1).cpu().numpy())
                    vanished[name].append(torch.stack(gone[name], dim=1).cpu().numpy())
        shape = (0, draws, len(order))
        return {name: {**{measure: np.concatenate(values[name][measure]) if values[name][measure] else np.zeros(shape)
                          for measure in MEASURES},
                       "vanished": np.concatenate(vanished[name]) if vanished[name] else np.zeros(shape, dtype=bool)}
                for name in group.active}

    def summarize(self, values: dict[str, np.ndarray], params: dict, suite: "Suite") -> dict:
        """The curves and their summaries from the per-image values of every image."""
        return self.result({measure: [values[measure]] for measure in MEASURES}, [values["vanished"]],
                           list(params["order"]), int(params["draws"]), bootstrap_params(params))

    statistics = {f"{measure}_{step}": draw_mean for measure in MEASURES for step in ("mean", "final")}

    def image_data(self, values: dict[str, np.ndarray], params: dict) -> dict[str, np.ndarray]:
        """Per measure, per (image, draw) ``[n, D]`` the mean over the cascade and the final step."""
        data = {}
        for measure in MEASURES:
            steps = values[measure].astype(float)
            data[f"{measure}_mean"], data[f"{measure}_final"] = layer_mean(steps), steps[..., -1]
        return data

    @staticmethod
    def result(values: dict[str, list[np.ndarray]], vanished: list[np.ndarray], order: list[str], draws: int,
               boot: dict) -> dict:
        """Metrics ``<measure>_mean`` / ``<measure>_final`` and the per-layer curve of every measure."""
        metrics, curve = {}, {"layers": list(order)}
        gone = np.concatenate(vanished) if vanished else np.zeros((0, draws, len(order)), dtype=bool)
        for measure in MEASURES:
            data = np.concatenate(values[measure]) if values[measure] else np.zeros((0, draws, len(order)))
            summary = curve_metrics(data, gone, boot)
            metrics[f"{measure}_mean"] = summary["mean"]
            metrics[f"{measure}_final"] = summary["final"]
            curve[measure] = summary["curve"]
        return {"metrics": metrics, "headline": "spearman_hog_mean", "curve": curve}
