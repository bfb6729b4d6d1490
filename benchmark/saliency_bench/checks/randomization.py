"""Cascading parameter randomisation (Adebayo et al. 2018) on a copy of the model, never the user's.

The cascade (checks/cascade.py) goes top down (from the logits, the default) or bottom up (Binder et al. 2023), and
cumulatively (the default) or one layer at a time (``independent``, Adebayo et al. 2018 section 3).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import UserError
from .base import PerImageCheck
from .cascade import INITS, MODES, ORDERS, Cascade
from .params import BOOTSTRAP, MAX_COUNT, SIMILARITY, Param, hog_params
from .presentation import Column, Rule, read_metric
from .similarity import MapProfile
from .stats import bootstrap_params, crossed_mean, summarize_crossed

if TYPE_CHECKING:  # pragma: no cover
    from ..harness.group import MethodGroup
    from ..harness.suite import Suite
    from ..models.wrapper import ModelWrapper

MEASURES = ("spearman_hog", "spearman_abs", "spearman_signed", "ssim")
SSIM_WINDOW = 7  # Adebayo et al. 2018 / skimage structural_similarity default


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


def visited_layers(params: dict) -> list[str]:
    """The cascade's steps in the order the check visits them (the curve's x axis)."""
    layers = list(params["layers"])
    return layers[::-1] if params.get("order") == "bottom_up" else layers


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
    costly = True  # every method once per cascade step and weight draw
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
        "layers": Param(list, lambda suite: list(suite.model.randomization_order), settable=False,
                        help="the cascade's steps, from the logits down (the model's randomisation order)"),
        "order": Param(str, ORDERS[0], choices=ORDERS, help="visit the steps from the logits down, or from the input up"),
        "mode": Param(str, MODES[0], choices=MODES,
                      help="cascading: the steps accumulate; independent: one step randomised at a time"),
        "init": Param(str, "layer_std", choices=INITS, help="weights drawn at each tensor's trained scale, or fixed"),
        "init_std": Param(float, 0.01, minimum=0.0, min_inclusive=False, maximum=1e6,
                          help="the std of the fixed init (and of tensors without a trained scale)"),
        "init_bias": Param(float, 0.0, minimum=-1e6, maximum=1e6, help="the value biases are set to"),
        "draws": Param(int, 3, minimum=1, maximum=MAX_COUNT, help="independent weight draws per image"),
        **SIMILARITY,
        **BOOTSTRAP,
    }

    def picture(self, view, image, row, score, worst):
        """The top class's map of the trained model and of the fully randomised one (weight draw 1)."""
        top = int(np.argmax(view.logits(image)))
        draws = row.shape[-1] if np.ndim(row) else 1
        return {"caption": f"spearman_hog_final {score:.3f} (mean of {draws} draws; class {view.names([top])})",
                "tiles": [view.tile(view.ask(image, top), "trained"),
                          view.tile(view.ask(image, top, other=True), "randomised (draw 1)")]}

    def picture_model(self, suite: "Suite", params: dict):
        """The fully randomised model (the cascade's final state, weight draw 1), pictured beside the trained one."""
        from .cascade import randomized_copy

        return randomized_copy(suite.model, int(params["seed"]), 0, init=str(params["init"]),
                               std=float(params["init_std"]), bias=float(params["init_bias"]))

    @staticmethod
    def upgrade_params(recorded: dict) -> dict:
        """A board recorded before ``order`` named the direction held the steps' list there: now ``layers``."""
        if isinstance(recorded.get("order"), list):
            recorded = {**recorded, "layers": recorded["order"], "order": ORDERS[0], "mode": MODES[0]}
        return recorded

    def run_images(self, suite: "Suite", group: "MethodGroup", params: dict) -> dict[str, dict[str, np.ndarray]]:
        """Stream the suite once; per batch and weight draw walk the cascade on one copy of the model.

        Per image, ``[draws, steps]`` values of every measure and whether the map vanished at that step. Memory: the
        user's model, one copy, and each draw's random values (drawn once, no copy per step).
        """
        layers = list(params["layers"])
        missing = [layer for layer in layers if layer not in dict(suite.model.network.named_modules())]
        if missing or not layers:
            raise UserError(f"randomization layers name no layer or unknown layers {missing} of model '{suite.model.name}'")
        copy = suite.model.copy()
        cascades = [Cascade(suite.model, copy, layers, params, draw) for draw in range(int(params["draws"]))]
        values = {name: {m: [] for m in (*MEASURES, "vanished")} for name in group.active}
        for batch in suite.batches(desc=self.name):
            for name, found in self._batch(suite, group, params, batch, cascades).items():
                for key, array in found.items():  # [B, D, L], moved to the host once per batch
                    values[name][key].append(array)
        shape = (0, len(cascades), len(layers))
        return {name: {key: np.concatenate(parts) if parts else np.zeros(shape, dtype=bool if key == "vanished" else float)
                       for key, parts in values[name].items()}
                for name in group.active if name in values}

    @staticmethod
    def _batch(suite: "Suite", group: "MethodGroup", params: dict, batch: dict, cascades: list[Cascade]) -> dict:
        """``{method: {measure or "vanished": [B, draws, steps]}}`` of one batch, for the methods that never failed."""
        inputs = batch["inputs"]
        with torch.no_grad():
            targets = suite.model(inputs).argmax(1)
        reference = {name: MapProfile(maps, params) for name, maps in group(inputs, targets, model=suite.model).items()}
        per_draw: dict[str, list[dict]] = {name: [] for name in reference}
        for cascade in cascades:
            steps = {name: {m: [] for m in (*MEASURES, "vanished")} for name in reference}
            for _ in cascade.states(group):
                for name, maps in group(inputs, targets, model=cascade.copy).items():
                    profile = MapProfile(maps, params)
                    for measure, value in reference[name].compare(profile, int(params["ssim_window"])).items():
                        steps[name][measure].append(value)
                    was_constant, now_constant = reference[name].constant_against(profile)
                    steps[name]["vanished"].append(now_constant & ~was_constant)
            for name, found in steps.items():
                if len(found["vanished"]) == len(cascade.steps):  # the method did not fail during this draw
                    per_draw[name].append({key: torch.stack(value, dim=1) for key, value in found.items()})
        return {name: {key: torch.stack([draw[key] for draw in draws], dim=1).cpu().numpy() for key in draws[0]}
                for name, draws in per_draw.items()
                if name in group.active and len(draws) == len(cascades)}

    def summarize(self, values: dict[str, np.ndarray], params: dict, suite: "Suite") -> dict:
        """The curves and their summaries from the per-image values of every image."""
        return self.result({measure: [values[measure]] for measure in MEASURES}, [values["vanished"]],
                           visited_layers(params), int(params["draws"]), bootstrap_params(params))

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
