"""Pointing game (Zhang et al. 2018; TorchRay) and restricted pointing game (Khakzar et al. 2020)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import UserError
from .base import SharedMapsCheck
from .shared_maps import batch_logits
from .paper import PAPER
from .params import BOOTSTRAP, TOLERANCE_PARAM, Param
from .presentation import Column, Rule, read_difference, read_metric
from .stats import bootstrap_ci, bootstrap_params, metric

if TYPE_CHECKING:  # pragma: no cover
    from ..harness.suite import Suite


TIE_RULES = ("plateau_centre", "first_index")


def first_index_points(maps: torch.Tensor) -> torch.Tensor:
    """``[N, 2]`` (row, col) of each map's maximum, the first flat index on ties (TorchRay's argmax; for comparison)."""
    flat = maps.flatten(1).argmax(1)
    width = maps.shape[-1]
    return torch.stack([flat // width, flat % width], dim=1)


def peak_points(maps: torch.Tensor, rule: str = TIE_RULES[0]) -> torch.Tensor:
    """Each map's peak under a tie rule of TIE_RULES."""
    if rule == "first_index":
        return first_index_points(maps)
    if rule != "plateau_centre":
        raise UserError(f"pointing tie_rule must be one of {', '.join(TIE_RULES)}, got {rule!r}")
    return argmax_points(maps)


def argmax_points(maps: torch.Tensor) -> torch.Tensor:
    """``[N, 2]`` (row, col) of each map's peak: of the pixels holding the maximum, the one nearest their centroid.

    A maximum is often a plateau (bilinear up-sampling copies border cells; ReLU'd maps are flat), and
    taking its first flat index lands on its top-left edge, often the image's. The plateau's centre is
    what a reader sees as the peak; the point is always a maximal pixel (also for a non-convex plateau),
    a constant map points at the image centre, and a unique maximum is itself (Zhang et al. 2018).
    Ties in distance go to the first flat index.
    """
    flat = maps.flatten(1)
    height, width = maps.shape[-2:]
    maximal = flat == flat.amax(1, keepdim=True)
    rows = torch.arange(height, device=maps.device, dtype=torch.float64).repeat_interleave(width)
    cols = torch.arange(width, device=maps.device, dtype=torch.float64).repeat(height)
    weight = maximal.double()
    count = weight.sum(1, keepdim=True)
    center_row, center_col = (weight * rows).sum(1, keepdim=True) / count, (weight * cols).sum(1, keepdim=True) / count
    distance = ((rows - center_row) ** 2 + (cols - center_col) ** 2).masked_fill(~maximal, float("inf"))
    index = distance.argmin(1)
    return torch.stack([index // width, index % width], dim=1)


def hits_within(points: torch.Tensor, masks: torch.Tensor, tolerance: float) -> torch.Tensor:
    """``[N]`` bool: the Euclidean distance from ``points[i]`` to the nearest pixel of ``masks[i]`` is <= tolerance.

    Exactly the distance transform of each mask read at the point (no disk approximation);
    an empty mask is a miss.
    """
    height, width = masks.shape[-2:]
    rows = torch.arange(height, device=masks.device, dtype=torch.float64)
    cols = torch.arange(width, device=masks.device, dtype=torch.float64)
    points = points.to(torch.float64)
    squared = (rows.view(1, -1, 1) - points[:, 0].view(-1, 1, 1)) ** 2 + (
        cols.view(1, 1, -1) - points[:, 1].view(-1, 1, 1)
    ) ** 2
    nearest = squared.masked_fill(~masks.bool(), float("inf")).flatten(1).amin(1)
    return nearest <= float(tolerance) ** 2


def class_mean_accuracy(data: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-class hits/trials averaged over classes with trials (TorchRay), for each row of image weights."""
    hit_counts, trial_counts = weights @ data[:, 0], weights @ data[:, 1]  # [rows, K]
    present = trial_counts > 0
    accuracy = np.divide(hit_counts, trial_counts, out=np.zeros_like(hit_counts), where=present)
    classes = present.sum(1)
    return np.divide(accuracy.sum(1), classes, out=np.full(len(classes), np.nan), where=classes > 0)


def overall_accuracy(data: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """All hits / all trials, for each row of image weights."""
    hit_counts, trial_counts = weights @ data[:, 0].sum(1), weights @ data[:, 1].sum(1)
    return np.divide(hit_counts, trial_counts, out=np.full(len(hit_counts), np.nan), where=trial_counts > 0)


def pointing_metrics(hits: np.ndarray, trials: np.ndarray, class_names: list[str], params: dict) -> dict:
    """The pointing result: both accuracies with image-bootstrap CIs, n images, trials, per-class counts."""
    data = np.stack([hits, trials], axis=1).astype(float)  # [n_images, 2, K]
    n_images, n_trials = len(hits), int(trials.sum())
    everyone = np.ones((1, n_images))
    boot = bootstrap_params(params)
    metrics = {
        name: metric(
            float(statistic(data, everyone)[0]) if n_images else None,
            bootstrap_ci(data, statistic, **boot),
            n_images,
            trials=n_trials,
        )
        for name, statistic in (("accuracy", class_mean_accuracy), ("overall_accuracy", overall_accuracy))
    }
    hit_sums, trial_sums = hits.sum(0), trials.sum(0)
    per_class = {
        class_names[k]: {"hits": int(hit_sums[k]), "trials": int(trial_sums[k])} for k in np.flatnonzero(trial_sums)
    }
    return {"metrics": metrics, "headline": "accuracy", "per_class": per_class}


class _PointingBase(SharedMapsCheck):
    """Shared protocol: multi-class images, tolerance scaled with the input size, per-image hit/trial counts."""

    requires_masks = True
    parameters = {
        "tolerance": TOLERANCE_PARAM,
        "tie_rule": Param(str, TIE_RULES[0], choices=TIE_RULES, help="which pixel of a flat maximum is the peak"),
        "min_classes": Param(int, 2, minimum=1, maximum=10_000, help="the classes an image needs to be scored"),
        **BOOTSTRAP,
    }

    def game_trials(self, batch: dict, params: dict) -> torch.Tensor:
        """``[B, K]`` bool: the trial classes of the images the game scores (>= ``min_classes`` classes, a trial)."""
        trials = batch["trials"].bool()
        keep = ((batch["labels"] > 0).sum(1) >= int(params["min_classes"])) & trials.any(1)
        return trials & keep[:, None]

    def score_maps(self, suite: "Suite", batch: dict, maps, params: dict) -> dict[str, dict[str, np.ndarray]]:
        """Per image ``hits`` and ``trials`` ``[B, K]`` and each reference pointer's hits (all false for an image the
        game does not score)."""
        trials = self.game_trials(batch, params)
        shared = {"trials": trials.cpu().numpy()}
        shared.update({f"reference.{name}": hits.cpu().numpy()
                       for name, hits in self.reference_points(suite, batch, trials, params).items()})
        return {name: {"hits": hits.cpu().numpy(), **shared}
                for name, hits in self.score_batch(suite, batch, maps, trials, params).items()}

    @staticmethod
    def _class_names(suite: "Suite") -> list[str]:
        return list(getattr(suite.dataset, "class_names", None) or suite.model.class_names)

    def summarize(self, values: dict[str, np.ndarray], params: dict, suite: "Suite") -> dict:
        """Both accuracies over the counted images (those with a trial), and the dataset's reference points."""
        counted = values["trials"].any(1)
        trials, class_names = values["trials"][counted], self._class_names(suite)
        result = pointing_metrics(values["hits"][counted], trials, class_names, params)
        reference = {name: pointing_metrics(values[f"reference.{name}"][counted], trials, class_names,
                                            params)["metrics"]["accuracy"] for name in self.references}
        if reference:
            result["dataset_reference"] = reference
        return result

    statistics = {"accuracy": class_mean_accuracy, "overall_accuracy": overall_accuracy}

    def image_data(self, values: dict[str, np.ndarray], params: dict) -> dict[str, np.ndarray]:
        """Hits and trials ``[n, 2, K]`` of the counted images, for both accuracies."""
        counted = values["trials"].any(1)
        data = np.stack([values["hits"][counted], values["trials"][counted]], axis=1).astype(float)
        return {"accuracy": data, "overall_accuracy": data}

    references: tuple[str, ...] = ()  # the dataset's own reference scores this game reports beside every method

    def picture_rows(self, params: dict, labels, trials, rows: int):
        """The game scores the images with ``min_classes`` classes and a trial: its rows are those images."""
        images = int(params["images"])
        keep = ((np.asarray(labels[:images]) > 0).sum(1) >= int(params["min_classes"])) & \
            np.asarray(trials[:images], dtype=bool).any(1)
        return np.flatnonzero(keep)

    def reference_points(self, suite: "Suite", batch: dict, trials: torch.Tensor, params: dict) -> dict[str, torch.Tensor]:
        """``{reference: hits [B, K] bool}`` of the pointers named in ``references`` (none by default)."""
        return {}

    def score_batch(self, suite: "Suite", batch: dict, maps, trials: torch.Tensor, params: dict) -> dict[str, torch.Tensor]:
        """``{name: hits [B, K] bool}`` of every method of ``maps`` on the batch's ``trials``."""
        raise NotImplementedError


class PointingGame(_PointingBase):
    """Pointing game: a map per present class; a hit if its argmax is within the tolerance of that class's mask."""

    name = "pointing_game"
    better = {"accuracy": "higher", "overall_accuracy": "higher"}
    order = 10
    columns = (Column("pointing", "pointing", name, read_metric(name, "accuracy"), better="higher"),)
    rules = (
        Rule("pointing_game", "P", "accuracy", read_metric(name, "accuracy"), ">=", 0.5,
             reason="the map's peak lands on the asked class's object more often than not"),
        Rule("localisation", "L", "the pointing accuracy", read_metric(name, "accuracy"),
             beats_controls=True,
             reason="a map must localise better than maps that explain nothing (the controls): class sensitivity "
                    "and randomisation alone are passed by noise"),
    )
    how_to_read = ("*Pointing* is the pointing-game accuracy (higher = the map's peak lies on the right object; the "
                   "peak of a flat maximum is the maximal pixel nearest the plateau's centre).")
    combine = "hits / trials per class, averaged over classes; bootstrap over images"
    paper = {method: values[0] for method, values in PAPER.items()}
    paper_key, paper_label, paper_scale = "pointing", "paper P (VGG-16/VOC07)", 0.01
    description = "Pointing game (Zhang et al. 2018): per-class maps, hit if the argmax lies within tolerance of the mask"

    def map_targets(self, suite, batch, params):
        """A map per trial class of every scored image."""
        return self.game_trials(batch, params)

    def picture(self, view, image, row, score, worst):
        """The missed (worst) or hit (best) classes' maps, each with its peak, the tolerance and the class's mask."""
        hits, trials = np.asarray(row[0]) > 0, np.asarray(row[1]) > 0
        masks = view.mask(image)
        shown = np.flatnonzero(trials & (~hits if worst else hits))[:2]
        tiles = [view.tile(view.ask(image, c), f"{view.names([c])}: {'miss' if worst else 'hit'}", [masks[c]], True)
                 for c in shown]
        return {"caption": f"hit {int(hits.sum())} of {int(trials.sum())} classes ({view.names(np.flatnonzero(trials))})",
                "tiles": tiles}

    def score_batch(self, suite, batch, maps, trials, params):
        """Each trial map's peak tested against its own class's mask."""
        images, classes = trials.nonzero(as_tuple=True)
        masks = batch["masks"][images, classes]
        hits = {}
        for name in maps.names:
            out = torch.zeros_like(trials)
            out[images, classes] = hits_within(peak_points(maps.of(name, images, classes), params["tie_rule"]), masks,
                                               float(params["tolerance"]))
            hits[name] = out
        return hits


def within_tolerance(masks: torch.Tensor, tolerance: float) -> torch.Tensor:
    """``[B, K, H, W]`` bool: the pixels within ``tolerance`` (Euclidean) of a pixel of each mask (a disk dilation)."""
    reach = int(np.floor(tolerance))
    offsets = torch.arange(-reach, reach + 1, device=masks.device, dtype=torch.float64)
    disk = ((offsets.view(-1, 1) ** 2 + offsets.view(1, -1) ** 2) <= float(tolerance) ** 2).to(torch.float32)
    batch, classes, height, width = masks.shape
    flat = masks.reshape(batch * classes, 1, height, width).to(torch.float32)
    dilated = torch.nn.functional.conv2d(flat, disk.view(1, 1, *disk.shape), padding=reach)
    return (dilated > 0.5).view(batch, classes, height, width)


class RestrictedPointingGame(_PointingBase):
    """Restricted pointing game: one map per image, for the max-logit class, scored against every present class."""

    name = "restricted_pointing_game"
    # Lower is better: at a fixed pointing accuracy, a lower restricted one is a larger gap (class-sensitive maps).
    better = {"accuracy": "lower", "overall_accuracy": "lower"}
    order = 20
    columns = (
        Column("restricted", "restricted", name, read_metric(name, "accuracy"), better="lower"),
        Column("gap", "gap", name, read_difference(read_metric(PointingGame.name, "accuracy"),
                                                   read_metric(name, "accuracy")), better="higher", signed=True),
    )
    rules = (Rule("restricted_gap", "G", "pointing - restricted",
                  read_difference(read_metric(PointingGame.name, "accuracy"), read_metric(name, "accuracy")),
                  ">=", 0.05, reason="the top class's map must miss the other classes' objects"),)
    how_to_read = ("*Restricted* scores one map per image, for the top class, against every class present: if it is "
                   "close to *pointing* (small *gap*), the maps for different classes point at the same place, i.e. "
                   "the method is not class-sensitive; the dataset's reference points (below) say what a class-blind "
                   "pointer scores.")
    combine = PointingGame.combine
    references_note = ("A class-blind map that always finds the top class's object scores the *top object oracle*; "
                       "no map can beat the *best single point*. A *restricted* value near the oracle is what "
                       "class-insensitivity looks like on this dataset.")
    paper = {method: values[1] for method, values in PAPER.items()}
    paper_key, paper_label, paper_scale = "restricted", "paper R (VGG-16/VOC07)", 0.01
    description = "Restricted pointing game (Khakzar et al. 2020): the max-logit map scored against every present class"
    references = ("top_object_oracle", "best_single_point")

    def picture(self, view, image, row, score, worst):
        """The top class's map with its peak, and the masks of every class present."""
        hits, trials = np.asarray(row[0]) > 0, np.asarray(row[1]) > 0
        top = int(np.argmax(view.logits(image)))
        masks = view.mask(image)
        tile = view.tile(view.ask(image, top), f"top class: {view.names([top])}",
                         [masks[c] for c in np.flatnonzero(trials)], True)
        return {"caption": f"the top class's map hits {int(hits.sum())} of {int(trials.sum())} classes present "
                           f"({view.names(np.flatnonzero(hits)) or 'none'})", "tiles": [tile]}

    def map_targets(self, suite, batch, params):
        """The max-logit class's map of every scored image."""
        rows = self.game_trials(batch, params).any(1).nonzero(as_tuple=True)[0]
        needed = torch.zeros_like(batch["trials"], dtype=torch.bool)
        needed[rows, batch_logits(suite, batch).argmax(1)[rows]] = True
        return needed

    def reference_points(self, suite, batch, trials, params):
        """What the masks alone allow a class-blind pointer: the dataset's reference points for this game.

        ``top_object_oracle`` points at the centre of the max-logit class's mask, a miss where that class is
        absent (a perfect, class-blind "most salient object" pointer: what guided backprop at its best does);
        ``best_single_point`` is the point that lies within the tolerance of the most present classes' masks,
        the ceiling of any single point per image. Both use the game's tie rule and tolerance.
        """
        targets = batch_logits(suite, batch).argmax(1)
        masks = batch["masks"].bool() & trials[:, :, None, None]
        near = within_tolerance(masks, float(params["tolerance"]))  # [B, K, H, W]
        rows = torch.arange(len(targets), device=targets.device)
        oracle = peak_points(masks[rows, targets].to(torch.float32), params["tie_rule"])
        best = peak_points(near.sum(1).to(torch.float32), params["tie_rule"])
        top_present = masks[rows, targets].flatten(1).any(1, keepdim=True)  # else the oracle has nothing to point at
        return {
            "top_object_oracle": near[rows, :, oracle[:, 0], oracle[:, 1]] & trials & top_present,
            "best_single_point": near[rows, :, best[:, 0], best[:, 1]] & trials,
        }

    def score_batch(self, suite, batch, maps, trials, params):
        """The max-logit map's peak of each scored image tested against the mask of every trial class."""
        rows = trials.any(1).nonzero(as_tuple=True)[0]
        top = batch_logits(suite, batch).argmax(1)[rows]
        images, classes = trials.nonzero(as_tuple=True)
        masks = batch["masks"][images, classes]
        hits = {}
        for name in maps.names:
            points = torch.zeros((len(trials), 2), dtype=torch.long, device=trials.device)
            points[rows] = peak_points(maps.of(name, rows, top), params["tie_rule"])
            out = torch.zeros_like(trials)
            out[images, classes] = hits_within(points[images], masks, float(params["tolerance"]))
            hits[name] = out
        return hits
