"""Train an embedded model (tiny_vgg, tiny_resnet, tiny_vit) on synthetic shapes from scratch, seeded, on CPU."""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..datasets.scenes import SceneShapesDataset as ShapesDataset
from ..datasets.synthetic import CLASS_NAMES
from ..errors import UserError
from .default_plugin import EMBEDDED
from .embedded import EmbeddedModel, sha256_of
from .tiny_vgg import MEAN, STD


def average_precision(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-class AP ``[K]`` = mean over positives of precision at their rank (scores sorted descending, stable)."""
    order = torch.argsort(scores, dim=0, descending=True, stable=True)
    hits = torch.gather(labels.float(), 0, order)
    ranks = torch.arange(1, hits.shape[0] + 1, dtype=torch.float32).unsqueeze(1)
    precision = hits.cumsum(0) / ranks
    positives = hits.sum(0)
    return torch.where(positives > 0, (precision * hits).sum(0) / positives.clamp(min=1), torch.nan)


def mean_average_precision(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """mAP = mean over classes with at least one positive of :func:`average_precision`."""
    return float(torch.nanmean(average_precision(scores, labels)))


def stack_samples(dataset: ShapesDataset, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[B,3,H,W]`` and labels ``[B,K]`` of the given sample indices."""
    samples = [dataset[i] for i in indices]
    return torch.stack([s["image"] for s in samples]), torch.stack([s["labels"] for s in samples])


@torch.no_grad()
def predict(network: nn.Module, dataset: ShapesDataset, batch_size: int = 128, mean=MEAN, std=STD
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``[N,K]`` and labels ``[N,K]`` of every sample of ``dataset`` (inputs normalised with mean/std)."""
    network.eval()
    mean = torch.tensor(mean).view(1, 3, 1, 1)
    std = torch.tensor(std).view(1, 3, 1, 1)
    logits, labels = [], []
    for start in range(0, len(dataset), batch_size):
        images, batch_labels = stack_samples(dataset, list(range(start, min(start + batch_size, len(dataset)))))
        logits.append(network((images - mean) / std))
        labels.append(batch_labels)
    return torch.cat(logits), torch.cat(labels)


def evaluate(network: nn.Module, dataset: ShapesDataset, mean=MEAN, std=STD) -> dict:
    """Held-out figures: mAP over classes and exact-match accuracy of (logit > 0) against the labels."""
    logits, labels = predict(network, dataset, mean=mean, std=std)
    exact = ((logits > 0).float() == labels).all(dim=1).float().mean()
    return {"map": mean_average_precision(logits, labels), "exact_match": float(exact), "images": len(dataset)}


RANDOM_LABEL_SUFFIX = "_random_labels"
RANDOM_LABEL_DATA = ("one fixed set of n_train train-split images, reused every epoch, their label vectors permuted "
                     "among them (Adebayo et al. 2018, data randomisation)")
# The twin sees as many batches as the trained model, and more (100 epochs of 2,000 images against 14 of 10,000):
# random labels can only be memorised, and a set it can memorise in that budget is a small, fixed one.
RANDOM_LABEL_RECIPE = {"n_train": 2_000, "epochs": 100}


def permuted_labels(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """``labels`` ``[N,K]`` with its rows permuted by ``torch.Generator(seed * 1000 + 999_999)``: image i gets the
    label vector of image ``perm[i]`` (so the class frequencies stay those of the data)."""
    generator = torch.Generator().manual_seed(seed * 1_000 + 999_999)
    return labels[torch.randperm(len(labels), generator=generator)]


def fixed_random_label_set(input_size: int, n_train: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[N,3,H,W]`` of train-split images ``0 .. n_train`` and their permuted label vectors ``[N,K]``."""
    data = ShapesDataset(size=input_size, split="train", count=n_train, seed=seed, start=0)
    images, labels = stack_samples(data, list(range(n_train)))
    return images, permuted_labels(labels, seed)


@torch.no_grad()
def memorisation(network: nn.Module, fixed: tuple[torch.Tensor, torch.Tensor], mean, std,
                 batch_size: int = 128) -> dict:
    """mAP and exact match of the network on its fixed training images against the permuted labels it was given."""
    network.eval()
    mean, std = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    images, labels = fixed
    logits = torch.cat([network((images[start:start + batch_size] - mean) / std)
                        for start in range(0, len(images), batch_size)])
    exact = ((logits > 0).float() == labels).all(dim=1).float().mean()
    return {"map": mean_average_precision(logits, labels), "exact_match": float(exact), "images": len(images),
            "labels": "permuted"}


def cosine_lr(step: int, total: int, base: float, warmup: int) -> float:
    """Learning rate with linear warm-up then cosine decay to zero (Loshchilov & Hutter 2017)."""
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * base * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def save_weights(network: nn.Module, out_dir: Path, card: dict) -> dict:
    """Write ``NAME.pt`` then ``NAME.json`` (with the weights' SHA-256) atomically into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{card['name']}.pt"
    partial = weights.with_suffix(".pt.partial")
    torch.save({k: v.detach().clone().contiguous() for k, v in network.state_dict().items()}, partial)
    os.replace(partial, weights)
    card = {**card, "sha256": sha256_of(weights)}
    card_partial = out_dir / f"{card['name']}.json.partial"
    card_partial.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(card_partial, out_dir / f"{card['name']}.json")
    return card


def embedded_model(name: str) -> EmbeddedModel:
    """The embedded model called ``name``, or a one-line UserError naming the ones there are."""
    if name not in EMBEDDED:
        raise UserError(f"no embedded model '{name}' to train (embedded: {', '.join(EMBEDDED)})")
    return EMBEDDED[name]


def make_optimizer(name: str, parameters, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam (Kingma & Ba 2015), or AdamW (Loshchilov & Hutter 2019: decoupled weight decay, for transformers)."""
    if name == "AdamW":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)


@dataclass
class Recipe:
    """How a model is trained: the embedded model's defaults, the twin's where asked, the caller's overrides."""

    seed: int
    epochs: int
    n_train: int
    n_val: int
    batch_size: int
    lr: float
    optimizer: str
    weight_decay: float
    warmup_cap: int

    def record(self, total_steps: int, random_labels: bool) -> dict:
        """The recipe as the card records it."""
        return {
            "seed": self.seed, "epochs": self.epochs, "n_train": self.n_train, "n_val": self.n_val,
            "batch_size": self.batch_size, "optimizer": self.optimizer, "lr": self.lr,
            **({"weight_decay": self.weight_decay} if self.weight_decay else {}),
            "schedule": f"linear warm-up {self.warmup(total_steps)} steps, cosine to 0",
            "loss": "BCEWithLogitsLoss (multi-hot labels)",
            "data": RANDOM_LABEL_DATA if random_labels else "fresh train-split images every epoch",
            "threads": torch.get_num_threads(), "torch": torch.__version__,
        }

    def warmup(self, total_steps: int) -> int:
        """Linear warm-up steps: the recipe's, at most a twentieth of the run."""
        return min(self.warmup_cap, max(1, total_steps // 20))


def resolve_recipe(spec: EmbeddedModel, random_labels: bool, seed: int, epochs: int | None, n_train: int | None,
                   n_val: int, batch_size: int | None, lr: float | None) -> Recipe:
    """The recipe of one training run: the model's (``EmbeddedModel.recipe``), the twin's, then the caller's."""
    defaults = {**spec.recipe, **(RANDOM_LABEL_RECIPE if random_labels else {})}
    return Recipe(seed=seed, epochs=defaults.get("epochs", 14) if epochs is None else epochs,
                  n_train=defaults.get("n_train", 10_000) if n_train is None else n_train, n_val=n_val,
                  batch_size=batch_size or defaults.get("batch_size", 32), lr=lr or defaults.get("lr", 1e-3),
                  optimizer=defaults.get("optimizer", "Adam"), weight_decay=defaults.get("weight_decay", 0.0),
                  warmup_cap=defaults.get("warmup", 100))


def train_epoch(network: nn.Module, optimizer, recipe: Recipe, batches, step: int, total_steps: int, mean, std,
                report: Callable[[int, int, float], None]) -> tuple[float, int, int]:
    """One epoch of BCE-with-logits on ``batches`` (images, labels) with the cosine schedule: (summed loss, images,
    the step count after it)."""
    loss_fn = nn.BCEWithLogitsLoss()
    running, seen = 0.0, 0
    for images, labels in batches:
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, total_steps, recipe.lr, recipe.warmup(total_steps))
        loss = loss_fn(network((images - mean) / std), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        running += float(loss.detach()) * len(labels)
        seen += len(labels)
        report(step, seen, running)
    return running, seen, step


def epoch_batches(spec: EmbeddedModel, recipe: Recipe, epoch: int, fixed):
    """The epoch's batches: fresh train-split images ``epoch*n_train ..`` (or the twin's fixed set) in a seeded order."""
    data = None if fixed else ShapesDataset(size=spec.input_size, split="train", count=recipe.n_train,
                                            seed=recipe.seed, start=epoch * recipe.n_train)
    order = torch.randperm(recipe.n_train, generator=torch.Generator().manual_seed(recipe.seed * 1_000 + epoch)).tolist()
    for start in range(0, recipe.n_train, recipe.batch_size):
        chosen = order[start:start + recipe.batch_size]
        yield (fixed[0][chosen], fixed[1][chosen]) if fixed else stack_samples(data, chosen)


def train(out_dir: str | Path, seed: int = 0, epochs: int | None = None, n_train: int | None = None,
          n_val: int = 1_000, batch_size: int | None = None, lr: float | None = None, progress: bool = True,
          log: Callable[[str], None] = print, model: str = "tiny_vgg", random_labels: bool = False) -> dict:
    """Train an embedded model with BCE-with-logits on fresh seeded shapes every epoch; write weights + card.

    The recipe (epochs, batch size, learning rate, optimizer, weight decay) defaults to the model's
    (``EmbeddedModel.recipe``). Epoch ``e`` uses train-split images ``e*n_train .. (e+1)*n_train-1`` in an order
    drawn from ``torch.Generator(seed * 1000 + e)``, so a run is determined by its arguments (on the same thread
    count). The benchmark split is never touched. Returns the card written to ``out_dir/NAME.json``.

    ``random_labels``: the data randomisation twin (Adebayo et al. 2018, section 4): the same recipe on one fixed
    set of ``n_train`` train-split images whose label vectors are permuted among them (``permuted_labels``), so the
    model can only memorise; written as ``NAME_random_labels``, its card with the training-set (memorisation) and
    held-out figures.
    """
    spec = embedded_model(model)
    recipe = resolve_recipe(spec, random_labels, seed, epochs, n_train, n_val, batch_size, lr)
    out_dir, began = Path(out_dir), time.perf_counter()
    torch.manual_seed(seed)
    network = spec.build(spec.architecture, len(CLASS_NAMES), spec.input_size)
    fixed = fixed_random_label_set(spec.input_size, recipe.n_train, seed) if random_labels else None
    optimizer = make_optimizer(recipe.optimizer, network.parameters(), recipe.lr, recipe.weight_decay)
    mean, std = torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1)
    val = ShapesDataset(size=spec.input_size, split="val", count=n_val, seed=seed)
    total_steps = recipe.epochs * math.ceil(recipe.n_train / recipe.batch_size)
    card = {"name": spec.name + (RANDOM_LABEL_SUFFIX if random_labels else ""), "dataset": spec.dataset,
            "class_names": list(CLASS_NAMES), "input_size": spec.input_size, "mean": list(spec.mean),
            "std": list(spec.std),
            "architecture": {**spec.architecture, "parameters": sum(p.numel() for p in network.parameters())},
            "recipe": recipe.record(total_steps, random_labels), "history": []}
    step = 0
    for epoch in range(recipe.epochs):
        epoch_began = time.perf_counter()
        network.train()

        def report(now: int, seen: int, running: float, epoch=epoch) -> None:
            if progress and now % 25 == 0:
                log(f"  epoch {epoch + 1}/{recipe.epochs} step {seen}/{recipe.n_train} loss {running / seen:.4f}")

        running, seen, step = train_epoch(network, optimizer, recipe, epoch_batches(spec, recipe, epoch, fixed), step,
                                          total_steps, mean, std, report)
        card = end_epoch(network, val, spec, card, out_dir, epoch, running / max(1, seen), epoch_began, began, log)
    if recipe.epochs == 0 or fixed:
        card["val"] = evaluate(network, val, spec.mean, spec.std)
        if fixed:  # how far the twin memorised its permuted labels (on the very images it was trained on)
            card["train"] = memorisation(network, fixed, spec.mean, spec.std)
        card.update(seconds=time.perf_counter() - began, epochs_done=recipe.epochs)
        card = save_weights(network, out_dir, card)
    log(f"wrote {out_dir / (card['name'] + '.pt')} (sha256 {card['sha256'][:12]}...) in {card['seconds']:.0f} s")
    return card


def end_epoch(network: nn.Module, val, spec: EmbeddedModel, card: dict, out_dir: Path, epoch: int, loss: float,
              epoch_began: float, began: float, log: Callable[[str], None]) -> dict:
    """Evaluate on the validation images, log the epoch, and save the weights with the card so far."""
    figures = evaluate(network, val, spec.mean, spec.std)
    entry = {"epoch": epoch + 1, "loss": loss, "val_map": figures["map"], "val_exact_match": figures["exact_match"],
             "seconds": time.perf_counter() - epoch_began}
    card["history"].append(entry)
    log(f"epoch {epoch + 1}/{card['recipe']['epochs']} loss {entry['loss']:.4f} val mAP {entry['val_map']:.4f} "
        f"exact {entry['val_exact_match']:.3f} ({entry['seconds']:.0f} s)")
    card.update(val=figures, seconds=time.perf_counter() - began, epochs_done=epoch + 1)
    return save_weights(network, out_dir, card)


def train_command(args, log: Callable[[str], None]) -> int:
    """``saliency-bench train``: train, write the weights and card into ``--out``, and say where."""
    from ..store.files import check_folder

    check_folder(args.out)
    options = {"epochs": args.epochs, "n_train": args.n_train, "n_val": args.n_val, "batch_size": args.batch_size}
    card = train(args.out, seed=args.seed, log=log, model=args.model, random_labels=args.random_labels,
                 **{key: value for key, value in options.items() if value is not None})
    log(f"weights: {Path(args.out) / (card['name'] + '.pt')} (sha256 {card['sha256'][:12]}..., val mAP "
        f"{card['val']['map']:.4f}, {card['seconds']:.0f}s); use them with --weights")
    return 0
