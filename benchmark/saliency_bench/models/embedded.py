"""Embedded models: a network trained on the embedded data, its weights shipped with the card that checks them.

Each embedded model (``tiny_vgg``, ``tiny_resnet``, ``tiny_vit``) is an :class:`EmbeddedModel`: how to build the
network from its card's ``architecture``, the training recipe's defaults, and the shipped ``NAME.pt`` / ``NAME.json``
in ``models/weights``. The card records the classes, input size, normalisation, architecture, recipe, history and
the weights' SHA-256; loading refuses weights whose digest differs from their card's (``training.train`` writes both).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable

from torch import nn

from ..errors import UserError
from .loading import check_finite_logits, check_state_dict, first_line, hookable, read_state_dict, weights_file
from .blocks import token_layout
from .wrapper import ModelWrapper

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped in the package: ``build(architecture, num_classes, input_size)`` and the card's defaults."""

    name: str
    description: str
    build: Callable[[dict, int, int], nn.Module]
    architecture: dict  # the default architecture, as the card records it
    architecture_problem: Callable[[dict, int], "str | None"]  # (architecture, input_size) -> what is wrong, or None
    input_size: int = 96
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.25, 0.25, 0.25)
    recipe: dict = field(default_factory=dict)  # training defaults: epochs, batch_size, lr, optimizer, weight_decay
    twins: tuple[str, ...] = ()  # kinds of twin shipped as NAME_KIND.pt (random_labels: trained on permuted labels)
    dataset: str = "shapes"

    @property
    def weights_file(self) -> Path:
        return WEIGHTS_DIR / f"{self.name}.pt"

    @property
    def card_file(self) -> Path:
        return WEIGHTS_DIR / f"{self.name}.json"


def sha256_of(path: Path) -> str:
    """Hex SHA-256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def finite_numbers(value: object, count: int) -> bool:
    """A list of ``count`` finite numbers (booleans excluded)."""
    return isinstance(value, list) and len(value) == count and all(
        isinstance(item, (int, float)) and not isinstance(item, bool) and math.isfinite(item) for item in value)


def positive_int(value: object) -> bool:
    """An integer > 0 (booleans excluded)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def card_problem(card: object, model: EmbeddedModel) -> str | None:
    """What a weights card lacks or holds of the wrong type (the loader reads every one of these fields)."""
    if not isinstance(card, dict):
        return f"expected a JSON object, got {type(card).__name__}"
    names = card.get("class_names")
    if names is None:
        return "class_names is missing"
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        return "class_names must be a non-empty list of class names"
    if len(set(names)) != len(names):
        return "class_names holds a name twice"
    if not isinstance(card.get("sha256"), str):
        return "sha256 (of the weights file) is missing" if "sha256" not in card else "sha256 must be a hex string"
    arch = card.get("architecture", {})
    if not isinstance(arch, dict):
        return "architecture must be an object"
    size = card.get("input_size")
    if size is None:
        return "input_size is missing"
    problem = model.architecture_problem({**model.architecture, **arch}, size)
    if problem is not None:
        return problem
    for key in ("mean", "std"):
        if key in card and not finite_numbers(card[key], 3):
            return f"{key} must be a list of 3 numbers (one per colour channel)"
    if "std" in card and not all(value > 0 for value in card["std"]):
        return "std must be positive"
    return None


def read_card(card_path: Path, model: EmbeddedModel) -> dict:
    """The weights card (sha256, classes, architecture, recipe, figures) written by ``training.train``."""
    try:
        card = json.loads(Path(card_path).read_text())
    except FileNotFoundError:
        if Path(card_path) != model.card_file:
            raise UserError(f"model card {card_path} is missing: {model.name} weights need the card that "
                            "`saliency-bench train` writes beside them") from None
        raise UserError(f"model card {card_path} is missing; run `saliency-bench train --model {model.name}` "
                        "to rebuild it") from None
    except (OSError, ValueError) as error:
        raise UserError(f"model card {card_path} is unreadable: {first_line(error)}") from None
    problem = card_problem(card, model)
    if problem is not None:
        raise UserError(f"model card {card_path} is invalid: {problem}; "
                        "rebuild it with `saliency-bench train` (it writes the card beside the weights)")
    return card


def build_wrapper(network: nn.Module, card: dict, model: EmbeddedModel) -> ModelWrapper:
    """Wrap a network with the classes, input size and normalisation recorded in its card."""
    layout = token_layout(network)
    return ModelWrapper(
        network,
        name=model.name,
        class_names=card["class_names"],
        input_size=card["input_size"],
        mean=card.get("mean", model.mean),
        std=card.get("std", model.std),
        prefix_tokens=layout.prefix_tokens,
    )


def load_embedded(model: EmbeddedModel, weights: str | Path | None = None, allow_download: bool = False,
                  **options) -> ModelWrapper:
    """Load the shipped (or given) weights of ``model`` after checking their SHA-256 against the card beside them."""
    if options:
        raise UserError(f"model '{model.name}' has no option(s) {', '.join(sorted(options))}")
    weights_path = Path(weights) if weights is not None else model.weights_file
    weights_file(weights_path, missing="is missing; " + (
        f"run `saliency-bench train --model {model.name}` to rebuild it" if weights is None
        else "check the --weights path"))
    card = read_card(weights_path.with_suffix(".json"), model)
    digest = sha256_of(weights_path)
    if digest != card["sha256"]:
        raise UserError(f"weights file {weights_path} is corrupt: sha256 {digest[:12]}... does not match its card")
    state = read_state_dict(weights_path)
    network = model.build({**model.architecture, **card.get("architecture", {})}, len(card["class_names"]),
                          card["input_size"])
    check_state_dict(network, state, weights_path, what="the architecture in its card")  # first problem named
    try:
        network.load_state_dict(state)
    except (RuntimeError, KeyError) as error:  # anything the check above does not foresee: still one line
        reason = " ".join(str(error).split())  # torch's message in one line: its first says only "Error(s) in"
        raise UserError(f"weights file {weights_path} does not fit the architecture in its card: "
                        f"{reason[:300]}") from None
    wrapper = build_wrapper(hookable(network), card, model)  # torchvision's BasicBlock uses an inplace ReLU
    check_finite_logits(wrapper, weights_path)
    wrapper.weights_sha256 = digest
    shipped = weights is None or (model.weights_file.is_file() and digest == sha256_of(model.weights_file))
    if shipped:  # a twin belongs to the shipped weights (named or not): given other weights, the model has none
        for kind in model.twins:
            twin_file = WEIGHTS_DIR / f"{model.name}_{kind}.pt"
            if twin_file.is_file():
                wrapper.add_twin(kind, partial(load_embedded, replace(model, twins=()), twin_file), sha256_of(twin_file))
    return wrapper
