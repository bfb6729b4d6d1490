"""Train an embedded model (tiny_vgg, tiny_resnet, tiny_vit) on synthetic shapes from scratch, seeded, on CPU."""
from __future__ import annotations

import json
import math
import os
import time
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


def train(
    out_dir: str | Path,
    seed: int = 0,
    epochs: int | None = None,
    n_train: int | None = None,
    n_val: int = 1_000,
    batch_size: int | None = None,
    lr: float | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    model: str = "tiny_vgg",
    random_labels: bool = False,
) -> dict:
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
    defaults = {**spec.recipe, **(RANDOM_LABEL_RECIPE if random_labels else {})}
    epochs = defaults.get("epochs", 14) if epochs is None else epochs
    n_train = defaults.get("n_train", 10_000) if n_train is None else n_train
    batch_size = batch_size or defaults.get("batch_size", 32)
    lr = lr or defaults.get("lr", 1e-3)
    optimizer_name, weight_decay = defaults.get("optimizer", "Adam"), defaults.get("weight_decay", 0.0)
    out_dir = Path(out_dir)
    began = time.perf_counter()
    torch.manual_seed(seed)
    network = spec.build(spec.architecture, len(CLASS_NAMES), spec.input_size)
    fixed = fixed_random_label_set(spec.input_size, n_train, seed) if random_labels else None
    optimizer = make_optimizer(optimizer_name, network.parameters(), lr, weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    val = ShapesDataset(size=spec.input_size, split="val", count=n_val, seed=seed)
    steps_per_epoch = math.ceil(n_train / batch_size)
    total_steps = epochs * steps_per_epoch
    warmup = min(defaults.get("warmup", 100), max(1, total_steps // 20))
    recipe = {
        "seed": seed, "epochs": epochs, "n_train": n_train, "n_val": n_val, "batch_size": batch_size,
        "optimizer": optimizer_name, "lr": lr, **({"weight_decay": weight_decay} if weight_decay else {}),
        "schedule": f"linear warm-up {warmup} steps, cosine to 0",
        "loss": "BCEWithLogitsLoss (multi-hot labels)",
        "data": RANDOM_LABEL_DATA if random_labels else "fresh train-split images every epoch",
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    }
    card = {
        "name": spec.name + (RANDOM_LABEL_SUFFIX if random_labels else ""), "dataset": spec.dataset, "class_names": list(CLASS_NAMES), "input_size": spec.input_size,
        "mean": list(spec.mean), "std": list(spec.std),
        "architecture": {**spec.architecture, "parameters": sum(p.numel() for p in network.parameters())},
        "recipe": recipe, "history": [],
    }
    step = 0
    for epoch in range(epochs):
        epoch_began = time.perf_counter()
        network.train()
        data = None if fixed else ShapesDataset(size=spec.input_size, split="train", count=n_train, seed=seed,
                                                start=epoch * n_train)
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed * 1_000 + epoch)).tolist()
        running, seen = 0.0, 0
        for batch_start in range(0, n_train, batch_size):
            chosen = order[batch_start:batch_start + batch_size]
            images, labels = (fixed[0][chosen], fixed[1][chosen]) if fixed else stack_samples(data, chosen)
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(step, total_steps, lr, warmup)
            loss = loss_fn(network((images - mean) / std), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            running += float(loss.detach()) * len(labels)
            seen += len(labels)
            if progress and step % 25 == 0:
                log(f"  epoch {epoch + 1}/{epochs} step {seen}/{n_train} loss {running / seen:.4f}")
        figures = evaluate(network, val, spec.mean, spec.std)
        entry = {"epoch": epoch + 1, "loss": running / max(1, seen), "val_map": figures["map"],
                 "val_exact_match": figures["exact_match"], "seconds": time.perf_counter() - epoch_began}
        card["history"].append(entry)
        log(f"epoch {epoch + 1}/{epochs} loss {entry['loss']:.4f} val mAP {entry['val_map']:.4f} "
            f"exact {entry['val_exact_match']:.3f} ({entry['seconds']:.0f} s)")
        card["val"] = figures
        card["seconds"] = time.perf_counter() - began
        card["epochs_done"] = epoch + 1
        card = save_weights(network, out_dir, card)
    if epochs == 0 or fixed:
        card["val"] = evaluate(network, val, spec.mean, spec.std)
        if fixed:  # how far the twin memorised its permuted labels (on the very images it was trained on)
            card["train"] = memorisation(network, fixed, spec.mean, spec.std)
        card["seconds"] = time.perf_counter() - began
        card["epochs_done"] = epochs
        card = save_weights(network, out_dir, card)
    log(f"wrote {out_dir / (card['name'] + '.pt')} (sha256 {card['sha256'][:12]}...) in {card['seconds']:.0f} s")
    return card


def train_command(out: str, *, model: str, seed: int, epochs: int | None, n_train: int | None, n_val: int | None,
                  batch_size: int | None, random_labels: bool, log: Callable[[str], None]) -> str:
    """``saliency-bench train``: train, write the weights and card into ``out``; the line that says where."""
    from ..store.files import check_folder

    check_folder(out)
    options = {"epochs": epochs, "n_train": n_train, "n_val": n_val, "batch_size": batch_size}
    card = train(out, seed=seed, log=log, model=model, random_labels=random_labels,
                 **{key: value for key, value in options.items() if value is not None})
    return (f"weights: {Path(out) / (card['name'] + '.pt')} (sha256 {card['sha256'][:12]}..., val mAP "
            f"{card['val']['map']:.4f}, {card['seconds']:.0f}s); use them with --weights")
