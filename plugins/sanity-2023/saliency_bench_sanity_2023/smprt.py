"""sMPRT, smooth model parameter randomisation (Hedström et al. 2023, "Sanity Checks Revisited").

MPRT on denoised maps: each map is the mean over N copies of the input, N - 1 of them with Gaussian noise of std
``noise_magnitude * (max - min)`` of the input and the last one clean (Quantus's SmoothMPRT; ``smoothing.py``). Per
image and the trained model's top class, the denoised map of the trained model is compared with the denoised map of
the randomised model by Spearman correlation of the absolute maps (Quantus: abs=True, normalise=True; normalising
divides by a positive scalar, which no rank correlation sees), the headline, and by the randomisation check's other
similarities (``saliency_bench.map_similarities``), which cost nothing beside the N maps. Each model state has its own
input noise, as in Quantus.

Defaults, and why. The paper's protocol visits every cascade step bottom up (as Binder et al., CVPR 2023, ask of
randomisation tests): N x (steps + 1) maps per image, 50 x 12 = 600 on tiny_vgg, against 2 for data randomisation and 4
for eMPRT. The three checks of this plugin together may add at most 40% to the board's run (37 methods, 550 s on the
2-core reference machine: 220 s). Measured on tiny_vgg on the CPU, a model state of all 37 methods costs 0.64 of a
randomisation-check step, about 0.11 s per image there, so the paper's protocol would cost 65 s per image and even its
final state alone, at N = 50, 11 s per image. The defaults therefore keep the paper's N = 50 and noise magnitude 0.1,
compare only the final, fully randomised state (the bottom-up cascade's last step: every learned weight redrawn, the
randomisation check's final state, ``saliency_bench.randomized_copy``, one weight draw), and score 12 images: about
130 s, beside data randomisation (64 images, about 16 s) and eMPRT (64 images, 3 draws, about 30 s): 176 s in all,
32% of the run (plugins/sanity-2023/README.md). ``--param smprt.states=cascade`` runs the paper's whole bottom-up
cascade (``order``, ``images``, ``draws`` and ``samples`` give the rest of the protocol); its final state's values equal
the default's, bit for bit.
"""
from __future__ import annotations

import numpy as np
import torch

from saliency_bench import (BOOTSTRAP_PARAMS, SIMILARITY_PARAMS, Cascade, Column, Param, PerImageCheck, Rule,
                            finite_mean, map_similarities, read_metric)

from .common import TAGS, concatenated, draw_params, images_param, per_image, randomized_models, stream, summaries, \
    top_classes
from .smoothing import smoothed_maps

NAME = "smprt"
MEASURES = ("spearman_abs", "spearman_hog", "spearman_signed", "ssim")
STATES = ("final", "cascade")  # the fully randomised state only, or every step of the cascade
ORDERS = ("bottom_up", "top_down")
IMAGES = 12  # 2 x 50 maps per image and method: see the module docstring and the README's budget
REFERENCE = (0, 0)  # the model-state key of the trained model's denoised maps (draw 0, step 0)


def randomizations(suite, params: dict) -> list:
    """Per weight draw the fully randomised model (``states=final``) or the cascade walked on one shared copy."""
    if params["states"] == "final":
        return randomized_models(suite, params)
    copy = suite.model.copy()
    return [Cascade(suite.model, copy, list(params["layers"]), {**params, "mode": "cascading"}, draw)
            for draw in range(int(params["draws"]))]


def model_states(group, randomization, layers: int):
    """``(step, model)``: how many of the ``layers`` cascade steps are randomised, and the model in that state."""
    if not isinstance(randomization, Cascade):
        yield layers, randomization  # fully randomised: the cascade's last step
        return
    for step, _ in enumerate(randomization.states(group), start=1):
        yield step, randomization.copy


class SmoothMPRT(PerImageCheck):
    """sMPRT (Hedström et al. 2023): similarity of denoised maps before and after randomisation; lower = better."""

    name = NAME
    description = ("sMPRT (Hedström et al. 2023): Spearman of |map| averaged over 50 noisy inputs, trained vs fully "
                   "randomised model; lower = better (12 images, final state only by default)")
    requires_masks = False
    better = {f"{measure}_final": "lower" for measure in MEASURES}
    order = 70
    columns = (Column(NAME, "sMPRT", NAME, read_metric(NAME, "spearman_abs_final"), better="lower"),)
    rules = (Rule(NAME, "S", "spearman_abs_final", read_metric(NAME, "spearman_abs_final"), "<=", 0.5,
                  reason="the denoised map must change when every learned weight is destroyed"),)
    how_to_read = ("*sMPRT* (Hedström et al. 2023) is MPRT on maps averaged over 50 noisy copies of the input "
                   "(noise std 0.1 x the input's range): the Spearman correlation of the absolute averaged maps of the "
                   "trained and the fully randomised model (lower = the map depends on the learned weights). Averaging removes "
                   "the noise that lets a noisy map pass MPRT by chance; the final state is bottom-up randomisation's "
                   "end, which avoids the top-down critique of Binder et al. (CVPR 2023). 12 images by default.")
    combine = "mean over images (and weight draws) of the final state's Spearman of |averaged maps|"
    parameters = {
        "images": images_param(IMAGES),
        "samples": Param(int, 50, minimum=1, maximum=1000,
                         help="noisy copies N per map, the last one clean (paper: 50)"),
        "noise_magnitude": Param(float, 0.1, minimum=0.0, maximum=1e6,
                                 help="noise std as a fraction of each input's max - min (paper: 0.1)"),
        "states": Param(str, STATES[0], choices=STATES,
                        help="final: the fully randomised model only; cascade: every step (the paper's protocol)"),
        "order": Param(str, ORDERS[0], choices=ORDERS, help="the cascade's direction (paper: bottom_up)"),
        "layers": Param(list, lambda suite: list(suite.model.randomization_order), settable=False,
                        help="the cascade's steps, from the logits down (the model's randomisation order)"),
        **draw_params(1), **SIMILARITY_PARAMS, **BOOTSTRAP_PARAMS,
    }
    statistics = {f"{measure}_final": finite_mean for measure in MEASURES}

    def run_images(self, suite, group, params: dict) -> dict[str, dict[str, np.ndarray]]:
        """Per image ``[draws, steps]`` values of every measure (steps: 1, or the cascade's)."""
        models = randomizations(suite, params)
        rows: dict[str, dict[str, list[np.ndarray]]] = {name: {m: [] for m in MEASURES} for name in group.active}
        for batch in suite.batches(desc=self.name):
            for name, found in self.batch_values(suite, group, params, batch, models).items():
                for measure in MEASURES:
                    rows[name][measure].append(found[measure])
        shape = (0, int(params["draws"]), self.steps(params))
        return {name: {m: concatenated(rows[name][m], shape) for m in MEASURES} for name in group.active}

    @staticmethod
    def steps(params: dict) -> int:
        """Model states compared per draw: 1 (final) or the cascade's steps."""
        return 1 if params["states"] == "final" else len(params["layers"])

    @staticmethod
    def batch_values(suite, group, params: dict, batch: dict, models: list) -> dict[str, dict[str, np.ndarray]]:
        """``{method: {measure: [B, draws, steps]}}`` of one batch, for the methods with every map."""
        targets = top_classes(suite.model, batch["inputs"])
        tag = TAGS[NAME]

        def smooth(model, key):
            """The denoised maps of ``model`` in state ``key`` (smoothing.smoothed_maps)."""
            return smoothed_maps(group, suite, batch, targets, model, params, tag, key,
                                 lambda n: stream(NAME, *key, n))

        reference = smooth(suite.model, REFERENCE)
        per_draw: dict[str, list[dict[str, torch.Tensor]]] = {name: [] for name in reference}
        for draw in range(int(params["draws"])):
            steps: dict[str, dict[str, list]] = {name: {m: [] for m in MEASURES} for name in reference}
            for step, model in model_states(group, models[draw], len(params["layers"])):
                for name, maps in smooth(model, (draw, step)).items():
                    for measure, value in map_similarities(reference[name], maps, params).items():
                        steps[name][measure].append(value)
            for name, found in steps.items():
                if len(found[MEASURES[0]]) == SmoothMPRT.steps(params):
                    per_draw[name].append({m: torch.stack(found[m], 1) for m in MEASURES})
        return {name: {m: torch.stack([d[m] for d in draws], 1).double().cpu().numpy() for m in MEASURES}
                for name, draws in per_draw.items() if name in group.active and len(draws) == int(params["draws"])}

    def image_data(self, values: dict[str, np.ndarray], params: dict) -> dict[str, np.ndarray]:
        """Per measure and image the final state's value, averaged over weight draws."""
        return {f"{m}_final": per_image(np.asarray(values[m], dtype=float)[..., -1]) for m in MEASURES}

    def summarize(self, values: dict[str, np.ndarray], params: dict, suite) -> dict:
        """Final-state means with bootstrap intervals; with ``states=cascade`` the curve of means along the steps."""
        result = {"metrics": summaries(self.image_data(values, params), params), "headline": "spearman_abs_final"}
        if params["states"] == "cascade":
            layers = list(params["layers"])
            visited = layers[::-1] if params["order"] == "bottom_up" else layers
            curve = {m: [summaries({"v": per_image(np.asarray(values[m], dtype=float)[..., s])}, params)["v"]
                         for s in range(len(visited))] for m in MEASURES}
            result["curve"] = {"layers": visited, **curve}
        return result
