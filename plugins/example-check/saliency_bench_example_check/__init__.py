"""A complete, minimal saliency-bench check plugin: the deletion AUC (Petsiuk et al. 2018, RISE).

Written against the public API only (``from saliency_bench import ...``): a ``PerImageCheck`` subclass, its board
presentation (one ``Column``, one ``Rule``), and the plugin object its entry point names.
"""
from __future__ import annotations

from itertools import cycle
from pathlib import Path

import numpy as np
import torch

from saliency_bench import (BOOTSTRAP_PARAMS, Column, Param, PerImageCheck, Rule, finite_mean, hookimpl,
                            is_control, read_metric, summarize)

NAME = "deletion_auc"
METRIC = "deletion_auc"


def tie_break_orders(count: int, pixels: int, seed: int, first: int = 0) -> torch.Tensor:
    """``[count, pixels]`` seeded permutations of the pixel indices, one per image of the stream.

    Image ``first + i`` of the suite gets ``np.random.default_rng([seed, first + i]).permutation(pixels)``:
    the same whatever the batch size or the method, so equal saliency values (a constant map, a plateau) are
    deleted in a random but reproducible order rather than in raster order (top rows first).
    """
    return torch.from_numpy(np.stack([np.random.default_rng([seed, first + i]).permutation(pixels)
                                      for i in range(count)]))


def deletion_order(maps: torch.Tensor, tie_break: torch.Tensor) -> torch.Tensor:
    """``[B, H*W]`` pixel indices of ``maps`` ``[B,H,W]`` by decreasing saliency; ties in ``tie_break`` order."""
    tie_break = tie_break.to(maps.device)
    scores = maps.flatten(1).gather(1, tie_break)
    return tie_break.gather(1, torch.argsort(scores, dim=1, descending=True, stable=True))


def deletion_counts(pixels: int, steps: int) -> list[int]:
    """Pixels deleted after each of ``steps`` equal steps: ``floor(k * pixels / steps)`` for k = 0 .. steps."""
    return [k * pixels // steps for k in range(steps + 1)]


@torch.no_grad()
def deletion_curves(model, inputs: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor, steps: int,
                    tie_break: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, steps + 1]`` softmax probabilities of ``targets`` as the most salient pixels are deleted.

    Column k is the probability after deleting the ``deletion_counts(H*W, steps)[k]`` most salient pixels of
    each image: those pixels (all channels) are replaced by the image's mean colour, the per-channel mean of
    ``inputs`` over all its pixels (the mean of the normalised input is the normalised mean colour, so this is
    the same baseline in image space). Column 0 is the intact image (``start`` if given: saves a forward).
    Each later column is one forward of the whole batch.
    """
    batch, _, height, width = inputs.shape
    pixels = height * width
    order = deletion_order(maps, tie_break)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(pixels, device=order.device).expand(batch, -1))
    rank = rank.view(batch, 1, height, width)
    baseline = inputs.mean(dim=(2, 3), keepdim=True)
    columns = []
    for k, count in enumerate(deletion_counts(pixels, steps)):
        if k == 0 and start is not None:
            columns.append(start)
            continue
        deleted = torch.where(rank < count, baseline, inputs)
        columns.append(torch.softmax(model(deleted), dim=1).gather(1, targets.view(-1, 1)).squeeze(1))
    return torch.stack(columns, dim=1)


def deletion_fractions(suite, steps: int) -> np.ndarray:
    """The deleted fraction after each step, ``floor(k * H * W / steps) / (H * W)``, at the model's input size."""
    pixels = int(suite.model.input_size) ** 2
    return np.asarray(deletion_counts(pixels, steps), dtype=float) / pixels


def normalized_auc(fractions: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Trapezoid area under each row of ``probabilities`` ``[n, K+1]`` over ``fractions`` (0 .. 1): in [0, 1]."""
    widths = np.diff(fractions)
    return ((probabilities[:, 1:] + probabilities[:, :-1]) / 2.0 * widths).sum(axis=1)


class DeletionAUC(PerImageCheck):
    """Deletion AUC (Petsiuk et al. 2018, "RISE"): lower = better.

    For each image, the top (max-logit) class, and each method's map for that class: the pixels are deleted
    in order of decreasing saliency (ties in a seeded random order, ``tie_break_orders``) in ``steps`` equal
    steps. The baseline: a deleted pixel takes the image's own mean colour (the per-channel mean over all
    its pixels, computed on the normalised input, which is the normalised mean colour). RISE's reference code
    sets deleted pixels to zero in the normalised input, i.e. to the training set's mean colour; the image's
    own mean keeps its average brightness and colour, so the curve does not also measure the model's response
    to a shift of the whole image's colour (which matters on data far from that mean, such as synthetic
    scenes). After each step one forward gives the softmax probability of the class; the value per image is
    the trapezoid area under that curve over the deleted fractions 0 .. 1 (so in [0, 1]). A map that finds
    the pixels the prediction needs makes the probability fall early: a small area. The headline is the mean
    over images with a bootstrap interval; ``curve`` holds the mean probability after each step.
    """

    name = NAME
    description = ("Deletion AUC (Petsiuk et al. 2018): top-class probability as the map's top pixels are replaced "
                   "by the image's mean colour; lower = better")
    requires_masks = False  # needs no masks: any dataset, any model
    better = {METRIC: "lower"}
    order = 50  # after the four built-in checks (10-40) on the board
    columns = (Column("deletion", "deletion AUC", NAME, read_metric(NAME, METRIC), better="lower"),)
    rules = (Rule(key="deletion", letter="D", metric="deletion AUC", read=read_metric(NAME, METRIC),
                  pass_if="<=", beats_controls=True,
                  reason="deleting the map's top pixels must hurt the prediction more than deleting the controls' "
                         "top pixels"),)
    how_to_read = ("*Deletion AUC* (Petsiuk et al. 2018) is the area under the top class's softmax probability as "
                   "the map's most salient pixels are replaced by the image's mean colour, in equal steps from none "
                   "to all (lower = the map found the pixels the prediction needs). It starts at the intact image's "
                   "probability and ends at a uniform image's, whatever the map: compare methods, not values.")
    combine = "mean over images of the area under each image's deletion curve"

    # Every parameter once, with its default, type and range: a bad --param value is refused before any check runs.
    parameters = {"steps": Param(int, 8, minimum=1, maximum=1024, help="deletion steps (a forward of the batch each)"),
                  **BOOTSTRAP_PARAMS}

    def run_images(self, suite, group, params: dict) -> dict[str, dict[str, np.ndarray]]:
        """Stream the suite once (one group call per batch, then ``steps`` forwards per method): per image the
        deletion curve ``[steps + 1]`` and the area under it."""
        steps, seed = params["steps"], int(params["seed"])
        curves: dict[str, list[np.ndarray]] = {name: [] for name in group.active}
        for batch in suite.batches(desc=self.name):
            inputs = batch["inputs"]
            batch_size, _, height, width = inputs.shape
            with torch.no_grad():
                logits = suite.model(inputs)
            targets = logits.argmax(dim=1)
            start = torch.softmax(logits, dim=1).gather(1, targets.view(-1, 1)).squeeze(1)
            # ties ordered by the image's index in the dataset: the same whichever shard the image is in
            tie_break = tie_break_orders(batch_size, height * width, seed, first=int(batch["index"][0]))
            for name, maps in group(inputs, targets).items():
                curve = deletion_curves(suite.model, inputs, maps, targets, steps, tie_break, start)
                curves[name].append(curve.double().cpu().numpy())
        fractions = deletion_fractions(suite, steps)
        results = {}
        for name in group.active:
            found = np.concatenate(curves[name]) if curves[name] else np.zeros((0, steps + 1))
            results[name] = {"curve": found, METRIC: normalized_auc(fractions, found) if len(found) else np.zeros(0)}
        return results

    def summarize(self, values: dict[str, np.ndarray], params: dict, suite) -> dict:
        """The mean area with its bootstrap interval over images, and the mean curve (for the figure)."""
        boot = {"seed": int(params["seed"]), "n_boot": int(params["bootstrap_samples"]),
                "level": float(params["ci_level"])}
        found, fractions = values["curve"], deletion_fractions(suite, params["steps"])
        return {
            "metrics": {METRIC: summarize(values[METRIC], **boot)},
            "headline": METRIC,
            "curve": {"fraction": [round(float(f), 6) for f in fractions],
                      "probability": [round(float(p), 6) for p in found.mean(axis=0)] if len(found) else []},
        }

    statistics = {METRIC: finite_mean}  # the headline as a function of per-image areas: `compare` pairs it

    def image_data(self, values: dict[str, np.ndarray], params: dict) -> dict[str, np.ndarray]:
        """The area under each image's deletion curve."""
        return {METRIC: values[METRIC]}

    def draw_figures(self, board: dict, folder) -> list[str]:
        """The mean deletion curve of every method on the board (controls grey and dashed): figures/deletion_auc.png."""
        rows = [(name, entry) for name, entry in sorted(board.get("methods", {}).items())
                if (entry.get("results", {}).get(self.name) or {}).get("status") == "ok"
                and entry["results"][self.name].get("curve", {}).get("probability")]
        if not rows:
            return []
        from matplotlib.figure import Figure  # no pyplot: no backend or global state touched

        figure = Figure(figsize=(7.5, 3.8), dpi=100, layout="constrained")
        axes = figure.add_subplot()
        colors = cycle(("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"))
        markers = cycle(("o", "s", "^", "D", "v", "P", "X", "*"))
        dashes = cycle(((0, (6, 2)), (0, (1, 1.5)), (0, (3, 1, 1, 1))))
        for name, entry in rows:
            result = entry["results"][self.name]
            value = result["metrics"][METRIC].get("value")
            control = is_control(entry.get("family"))  # the controls: grey, dashed
            axes.plot(result["curve"]["fraction"], result["curve"]["probability"], marker=next(markers), markersize=4,
                      color="#777777" if control else next(colors), linestyle=next(dashes) if control else "-",
                      label=f"{name} ({'–' if value is None else f'{value:.3f}'})")
        axes.set_xlim(0.0, 1.0)
        axes.set_ylim(0.0, 1.02)
        axes.set_xlabel("fraction of pixels deleted, most salient first")
        axes.set_ylabel("mean probability of the top class")
        axes.set_title("Deletion curves (area under each = deletion AUC, lower = better)")
        axes.legend(title="method (deletion AUC)", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                    ncol=1 + len(rows) // 20)
        path = Path(folder) / "figures" / "deletion_auc.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path)
        return ["figures/deletion_auc.png"]


class Plugin:
    """The object the entry point names: pluggy finds its ``register_checks`` hook."""

    @hookimpl
    def register_checks(self, register):
        register(DeletionAUC())


plugin = Plugin()
