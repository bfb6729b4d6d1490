"""The harness side of the pictures: an ``EvidenceSource`` from a board's model, dataset and registered methods."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .evidence import EvidenceSource
from ...checks.shared_maps import STREAM
from ...harness.group import MethodGroup
from ...harness.noise import map_seeds
from ...run.options import RunOptions
from ...run.session import open_suite


def suite_for(board: dict, registry, device: str = "auto"):
    """The suite a default-configured board was made on (its model's shipped weights; None if they differ)."""
    config = board["config"]
    dataset = config.get("dataset", {})
    spec = getattr(registry.datasets.get(dataset.get("name")), "obj", None)
    seed = dataset.get("seed") if spec is not None and "seed" in spec.options else None
    options = RunOptions(model=config["model"]["name"], dataset=dataset.get("name"), split=dataset.get("split"),
                         data_seed=seed, seed=int(config.get("seed", 0)), batch_size=int(config.get("batch_size", 32)),
                         limit=config.get("images"), device=device, progress=False)
    suite = open_suite(options, registry)
    if suite.describe()["model"].get("weights_sha256") != config["model"].get("weights_sha256"):
        return None
    return suite


def _samples(suite, indices: Sequence[int], key: str) -> torch.Tensor:
    """One field of the given dataset samples, stacked."""
    return torch.stack([torch.as_tensor(suite.dataset[int(i)][key]) for i in indices])


def _maps(suite, registry, method: str, model, images: Sequence[int], classes: Sequence[int], seeded: bool):
    """``[n, H, W]`` maps of ``method`` on ``model`` (the suite's by default), in batches of the suite's size."""
    group = MethodGroup([registry.methods[method].obj], suite.model)
    parts = []
    for start in range(0, len(images), suite.batch_size):
        img, cls = list(images[start:start + suite.batch_size]), list(classes[start:start + suite.batch_size])
        inputs = suite.model.normalize(_samples(suite, img, "image").to(suite.device))
        torch.manual_seed(suite.seed)
        seeds = map_seeds(suite.seed, img, cls, STREAM) if seeded else None
        out = group(inputs, torch.tensor(cls, device=suite.device), model=model, seeds=seeds)
        if method not in out:
            reason = {**group.failures, **group.not_applicable}.get(method, "no map")
            raise ValueError(reason)
        parts.append(out[method].detach().float().cpu())
    return torch.cat(parts)


def other_models(suite, registry, board: dict):
    """``other(check)``: the model a check pictures beside the trained one (``Check.picture_model``), made once."""
    made: dict[str, object] = {}

    def other(check: str):
        if check not in made:
            found = registry.checks.get(check)
            made[check] = None if found is None else found.obj.picture_model(suite, board["checks"][check])
        if made[check] is None:
            raise ValueError(f"check '{check}' pictures no other model")
        return made[check]

    return other


def evidence_source(board: dict, registry, device: str = "auto") -> EvidenceSource | None:
    """The pictures' source for a board (None where its model's weights are not the ones shipped here)."""
    suite = suite_for(board, registry, device)
    if suite is None:
        return None
    other = other_models(suite, registry, board)

    def logits(indices):
        """The model's logits of the given images."""
        with torch.no_grad():
            return suite.model(suite.model.normalize(_samples(suite, indices, "image").to(suite.device))).cpu()

    def labels(n):
        """Labels and trial classes of images 0 .. n-1."""
        samples = [suite.dataset[i] for i in range(n)]
        labels = torch.stack([torch.as_tensor(s["labels"]) for s in samples])
        trials = torch.stack([torch.as_tensor(s["trials"]) if "trials" in s else torch.as_tensor(s["labels"]) > 0
                              for s in samples])
        return labels.numpy(), trials.numpy()

    return EvidenceSource(
        class_names=list(getattr(suite.dataset, "class_names", None) or suite.model.class_names),
        images=lambda indices: _samples(suite, indices, "image").numpy(),
        masks=lambda indices: _samples(suite, indices, "masks").numpy().astype(np.bool_),
        labels=labels, logits=logits,
        maps_for=lambda method, images, classes: _maps(suite, registry, method, None, images, classes, True),
        other_maps_for=lambda check, method, images, classes: _maps(suite, registry, method, other(check), images,
                                                                     classes, False),
    )
