"""eMPRT, efficient model parameter randomisation (Hedström et al. 2023, "Sanity Checks Revisited").

Per image, the trained model's top class and each method's map for it, on the trained model and on the fully
randomised model (``saliency_bench.randomized_copy``: the randomisation check's final state, every learned weight
redrawn at its trained scale, biases 0; weight draw d seeded from the run's seed as the randomisation check's draw d,
so both checks randomise to the same weights). The complexity of a map is Quantus's default: the discrete entropy of
its 100-bin histogram (natural log; ``complexity.py``). The value per image is the ratio
``H(a_rand) / H(a_orig)`` averaged over the weight draws (3, as the randomisation check: its three final states);
Quantus's EfficientMPRT score is ``(H(a_rand) - H(a_orig)) / H(a_orig)``, the ratio minus 1 (``rise``).
A ratio above 1 means randomising the weights made the map more complex: it depends on them. A map of constant value
on the trained model has no complexity to compare with (H = 0): that image is undefined (dropped and counted).
Cost: 1 + draws = 4 maps per image and method; 64 images by default, as the randomisation check.
"""
from __future__ import annotations

import numpy as np
import torch

from saliency_bench import BOOTSTRAP_PARAMS, Column, Param, PerImageCheck, Rule, finite_mean, read_metric

from .common import (UNCHANGED, concatenated, draw_params, images_param, maps_of, per_image, randomized_models,
                     read_lower_end, stream, summaries, top_classes)
from .complexity import BINS, histogram_entropy

NAME = "emprt"
IMAGES = 64
# Recorded numbers have 6 decimals (saliency_bench.summarize), so "the interval's lower end above 1" is ">= 1 + 1e-6".
ABOVE_ONE = 1.000001


def entropy_ratio(original: np.ndarray, randomized: np.ndarray) -> np.ndarray:
    """``[n, D]`` ratio ``H_rand / H_orig`` per image and draw; NaN where ``H_orig`` is 0 (a constant map)."""
    original = np.asarray(original, dtype=float).reshape(-1, 1)
    randomized = np.asarray(randomized, dtype=float).reshape(len(original), -1)
    return np.divide(randomized, original, out=np.full(randomized.shape, np.nan), where=original > 0)


class EfficientMPRT(PerImageCheck):
    """eMPRT (Hedström et al. 2023): complexity of the map after full randomisation over before; higher = better."""

    name = NAME
    description = ("eMPRT (Hedström et al. 2023): entropy of the map's 100-bin histogram on the fully randomised "
                   "model over on the trained model; higher = better (64 images, 3 weight draws)")
    requires_masks = False
    better = {"ratio": "higher", "rise": "higher"}
    order = 60
    columns = (Column(NAME, "eMPRT", NAME, read_metric(NAME, "ratio"), better="higher"),)
    rules = (Rule(NAME, "E", "the lower end of the eMPRT ratio's interval", read_lower_end(NAME, "ratio"), ">=",
                  ABOVE_ONE, reason="randomising every weight must make the map more complex (interval above 1)"),)
    how_to_read = ("*eMPRT* (Hedström et al. 2023) is the ratio of a map's complexity (entropy of its 100-bin "
                   "histogram) on the fully randomised model to that on the trained model, per image, averaged: "
                   "above 1 means the map became more disordered when every learned weight was destroyed (higher = "
                   "the map depends on the weights; a map that ignores the model scores exactly 1). Noise is already "
                   "as complex as a map can be, so the `random` control cannot rise either; eMPRT avoids comparing "
                   "maps by similarity, the step that Binder et al. (CVPR 2023) show misleads for top-down "
                   "randomisation.")
    combine = "mean over images of H(randomised map) / H(trained map), each averaged over the weight draws"
    parameters = {"images": images_param(IMAGES),
                  "bins": Param(int, BINS, minimum=1, maximum=100_000,
                                help="histogram bins of the entropy (Quantus: 100)"),
                  **draw_params(3), **BOOTSTRAP_PARAMS}
    statistics = {"ratio": finite_mean, "rise": finite_mean}

    def run_images(self, suite, group, params: dict) -> dict[str, dict[str, np.ndarray]]:
        """Per image the entropy of the trained model's map ``[n]`` and of each randomised model's ``[n, draws]``."""
        models = randomized_models(suite, params)
        rows: dict[str, dict[str, list[np.ndarray]]] = {n: {"original": [], "randomized": []} for n in group.active}
        for batch in suite.batches(desc=self.name):
            for name, (original, randomized) in self.batch_entropies(suite, group, params, batch, models).items():
                rows[name]["original"].append(original)
                rows[name]["randomized"].append(randomized)
        draws = len(models)
        return {name: {"entropy_original": concatenated(rows[name]["original"], (0,)),
                       "entropy_randomized": concatenated(rows[name]["randomized"], (0, draws))}
                for name in group.active}

    @staticmethod
    def batch_entropies(suite, group, params: dict, batch: dict, models: list) -> dict[str, tuple]:
        """``{method: (H_orig [B], H_rand [B, draws])}`` of one batch, for the methods with every map."""
        inputs, index, bins = batch["inputs"], batch["index"], int(params["bins"])
        targets = top_classes(suite.model, inputs)
        original = {name: histogram_entropy(maps, bins)
                    for name, maps in maps_of(group, suite, inputs, index, targets, suite.model, UNCHANGED).items()}
        randomized: dict[str, list[torch.Tensor]] = {name: [] for name in original}
        for draw, model in enumerate(models):
            for name, maps in maps_of(group, suite, inputs, index, targets, model, stream(NAME, draw)).items():
                if name in randomized:
                    randomized[name].append(histogram_entropy(maps, bins))
        return {name: (original[name].cpu().numpy(), torch.stack(found, 1).cpu().numpy())
                for name, found in randomized.items() if len(found) == len(models)}

    def image_data(self, values: dict[str, np.ndarray], params: dict) -> dict[str, np.ndarray]:
        """Per image the ratio (and the rise, the ratio - 1, Quantus's score) averaged over weight draws."""
        ratio = per_image(entropy_ratio(values["entropy_original"], values["entropy_randomized"]))
        return {"ratio": ratio, "rise": ratio - 1.0}

    def summarize(self, values: dict[str, np.ndarray], params: dict, suite) -> dict:
        """The mean ratio (headline) and rise over images with bootstrap intervals; the mean entropies (figure)."""
        data = {**self.image_data(values, params), "entropy_original": values["entropy_original"],
                "entropy_randomized": per_image(values["entropy_randomized"])}
        return {"metrics": summaries(data, params), "headline": "ratio"}

    def draw_figures(self, board: dict, folder) -> list[str]:
        """Each method's mean entropy before and after randomisation, sorted by ratio (figures/emprt.png)."""
        from pathlib import Path

        from .figures import draw_emprt

        return ["figures/emprt.png"] if draw_emprt(board, Path(folder) / "figures" / "emprt.png", self.name) else []
