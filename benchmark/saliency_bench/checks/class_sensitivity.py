"""Class sensitivity (Rebuffi et al. 2020, as in Khakzar et al. 2020): maps of the max- vs the min-logit class."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from .base import SharedMapsCheck
from .paper import PAPER
from .params import BOOTSTRAP, HOG, hog_args
from .presentation import Column, Rule, read_metric
from .shared_maps import batch_logits
from .similarity import constant_pair, hog_spearman, map_range, spearman
from .stats import bootstrap_params, finite_mean, summarize

if TYPE_CHECKING:  # pragma: no cover
    from ..models.wrapper import ModelWrapper
    from ..harness.suite import Suite


KEYS = ("spearman_hog", "spearman_raw", "one_constant")  # the per-image values of the check


class ClassSensitivity(SharedMapsCheck):
    """Similarity of the maps for the max- and min-logit classes; lower = more class-sensitive.

    Constant maps follow the rule of ``similarity.py``: against a non-constant map the similarity is 0
    (counted as ``one_constant``), two constant maps are undefined (counted as ``dropped``); so every
    method's mean is over the same images unless both of its maps are constant.
    """

    name = "class_sensitivity"
    requires_masks = False
    better = {"spearman_hog": "lower", "spearman_raw": "lower"}
    order = 30
    columns = (Column("class_sensitivity", "class sens.", "class_sensitivity",
                      read_metric("class_sensitivity", "spearman_hog"), better="lower"),)
    rules = (Rule("class_sensitivity", "C", "spearman_hog", read_metric("class_sensitivity", "spearman_hog"), "<=", 0.5,
                  reason="the maps of the top and the bottom class must differ"),)
    how_to_read = ("*Class sens.* is the Spearman correlation between HOG features of the maps for the top and the "
                   "bottom class (lower = more class-sensitive). A constant map (all zero, say) against a non-constant "
                   "one scores 0 in every similarity (no shared structure); two constant maps are undefined and "
                   "counted in the details.")
    paper = {method: values[2] for method, values in PAPER.items()}
    paper_key, paper_label = "class_sensitivity", "paper C (VGG-16/ImageNet)"
    description = "Class sensitivity (Rebuffi et al. 2020): Spearman on HOG between max- and min-logit class maps"
    parameters = {**HOG, **BOOTSTRAP}

    def picture(self, view, image, row, score, worst):
        """The maps of the top and the bottom class."""
        logits = view.logits(image)
        top, bottom = int(np.argmax(logits)), int(np.argmin(logits))
        return {"caption": f"spearman_hog {score:.3f}",
                "tiles": [view.tile(view.ask(image, top), f"top: {view.names([top])}"),
                          view.tile(view.ask(image, bottom), f"bottom: {view.names([bottom])}")]}

    def map_targets(self, suite: "Suite", batch: dict, params: dict) -> torch.Tensor:
        """The maps of the max- and the min-logit class of every image."""
        logits = batch_logits(suite, batch)
        rows = torch.arange(len(logits), device=logits.device)
        needed = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
        needed[rows, logits.argmax(1)] = True
        needed[rows, logits.argmin(1)] = True
        return needed

    def score_maps(self, suite: "Suite", batch: dict, maps, params: dict) -> dict[str, dict[str, np.ndarray]]:
        """Per image both Spearman correlations of the top and bottom maps (NaN if undefined) and whether exactly one
        of the two maps is constant."""
        logits = batch_logits(suite, batch)
        rows = torch.arange(len(logits), device=logits.device)
        values = {}
        for name in maps.names:
            top, bottom = maps.of(name, rows, logits.argmax(1)), maps.of(name, rows, logits.argmin(1))
            top_constant, bottom_constant = constant_pair(map_range(top), map_range(bottom))
            computed = {"spearman_hog": hog_spearman(top, bottom, **hog_args(params)),
                        "spearman_raw": spearman(top, bottom), "one_constant": top_constant ^ bottom_constant}
            values[name] = {key: computed[key].cpu().numpy() for key in KEYS}
        return values

    def summarize(self, values: dict[str, np.ndarray], params: dict, suite: "Suite") -> dict:
        """Mean of each Spearman correlation over the images where it is defined, with its bootstrap CI."""
        boot = bootstrap_params(params)
        one_constant = int(values["one_constant"].sum())  # scored 0 by the constant-map rule (similarity.py)
        return {
            "metrics": {
                "spearman_hog": summarize(values["spearman_hog"], **boot, one_constant=one_constant),
                "spearman_raw": summarize(values["spearman_raw"], **boot, one_constant=one_constant),
            },
            "headline": "spearman_hog",
        }

    statistics = {"spearman_hog": finite_mean, "spearman_raw": finite_mean}

    def image_data(self, values: dict[str, np.ndarray], params: dict) -> dict[str, np.ndarray]:
        """Each Spearman correlation per image (NaN where undefined)."""
        return {key: values[key].astype(float) for key in self.statistics}
