"""Data randomisation test (Adebayo et al. 2018, section 4): the map of the trained model against the map of its twin.

The twin has the trained model's architecture and training recipe but learned from permuted labels
(``saliency-bench train --random-labels``; ``ModelWrapper.twin("random_labels")``), so it can only have memorised
them. For each image and the trained model's top class, both models' maps for that class are compared with the
randomisation check's four similarities (``saliency_bench.map_similarities``: Spearman on HOG, the headline; Spearman
of |map| and of the signed map; SSIM; a map constant on one side scores 0). A low similarity means the map depends
on what the model learned from the labels. A model without a random-label twin is n/a for every method.
"""
from __future__ import annotations

import numpy as np

from saliency_bench import (BOOTSTRAP_PARAMS, SIMILARITY_PARAMS, Column, PerImageCheck, Rule, finite_mean,
                            map_similarities, read_metric)

from .common import (UNCHANGED, all_not_applicable, concatenated, images_param, maps_of, stream, summaries,
                     top_classes, twin_of)

NAME = "data_randomization"
TWIN = "random_labels"
MEASURES = ("spearman_hog", "spearman_abs", "spearman_signed", "ssim")
IMAGES = 64  # as many as the randomisation check: 2 maps per image and method (trained, twin)


class DataRandomization(PerImageCheck):
    """Similarity of each map with the map of the random-label twin (Adebayo et al. 2018, section 4): lower = better."""

    name = NAME
    description = ("Data randomisation (Adebayo et al. 2018, sec. 4): similarity of the map to the map of a twin "
                   "trained on permuted labels, for the trained model's top class; lower = better")
    requires_masks = False
    better = {measure: "lower" for measure in MEASURES}
    order = 50  # after the four built-in checks (10-40)
    columns = (Column(NAME, "data rand.", NAME, read_metric(NAME, "spearman_hog"), better="lower"),)
    rules = (Rule(NAME, "Y", "spearman_hog", read_metric(NAME, "spearman_hog"), "<=", 0.5,
                  reason="the map must change when the model learned from permuted labels"),)
    how_to_read = ("*Data rand.* (Adebayo et al. 2018, section 4) is the Spearman correlation of HOG features between "
                   "the map of the trained model and the map of its twin, the same architecture trained with the same "
                   "recipe on permuted labels, for the trained model's top class (lower = the map depends on what the "
                   "model learned from the labels; an edge detector scores 1). *n/a*: the model has no such twin.")
    combine = "mean over images"
    parameters = {"images": images_param(IMAGES), **SIMILARITY_PARAMS, **BOOTSTRAP_PARAMS}
    statistics = {measure: finite_mean for measure in MEASURES}

    def run_images(self, suite, group, params: dict) -> dict[str, dict[str, np.ndarray]]:
        """Per image the four similarities of the trained model's map and the twin's, for the top class."""
        twin = twin_of(suite.model, TWIN)
        if twin is None:
            all_not_applicable(group, f"model '{suite.model.name}' has no random-label twin (a model of its "
                                      "architecture trained on permuted labels: saliency-bench train --random-labels)")
            return {}
        rows: dict[str, dict[str, list[np.ndarray]]] = {name: {m: [] for m in MEASURES} for name in group.active}
        for batch in suite.batches(desc=self.name):
            for name, found in self.batch_similarities(suite, group, params, batch, twin).items():
                for measure in MEASURES:
                    rows[name][measure].append(found[measure])
        return {name: {m: concatenated(rows[name][m], (0,)) for m in MEASURES} for name in group.active}

    @staticmethod
    def batch_similarities(suite, group, params: dict, batch: dict, twin) -> dict[str, dict[str, np.ndarray]]:
        """``{method: {measure: [B]}}`` of one batch for the methods with both maps."""
        inputs, index = batch["inputs"], batch["index"]
        targets = top_classes(suite.model, inputs)
        trained = maps_of(group, suite, inputs, index, targets, suite.model, UNCHANGED)
        twins = maps_of(group, suite, inputs, index, targets, twin, stream(NAME, 1))
        return {name: {m: v.double().cpu().numpy() for m, v in map_similarities(trained[name], maps, params).items()}
                for name, maps in twins.items() if name in trained}

    def summarize(self, values: dict[str, np.ndarray], params: dict, suite) -> dict:
        """The mean of each similarity over images with its bootstrap interval; the headline Spearman on HOG."""
        return {"metrics": summaries({m: values[m] for m in MEASURES}, params), "headline": "spearman_hog"}

    def image_data(self, values: dict[str, np.ndarray], params: dict) -> dict[str, np.ndarray]:
        """Each similarity per image."""
        return {m: np.asarray(values[m], dtype=float) for m in MEASURES}
