"""Tiny VGG: the embedded default network (5 conv blocks, ReLU, max-pool, no batch norm) and its loader."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..errors import UserError
from ..loading import first_line, read_state_dict, weights_file
from .wrapper import ModelWrapper

NAME = "tiny_vgg"
WEIGHTS_DIR = Path(__file__).parent / "weights"
WEIGHTS_FILE = WEIGHTS_DIR / "tiny_vgg.pt"
CARD_FILE = WEIGHTS_DIR / "tiny_vgg.json"

INPUT_SIZE = 96
WIDTHS = (16, 32, 64, 64, 128)
CONVS_PER_BLOCK = (1, 1, 2, 3, 3)
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


class TinyVGG(nn.Module):
    """VGG-style classifier (Simonyan & Zisserman 2015): conv3x3+ReLU blocks, max-pool after each, GAP + linear head."""

    def __init__(
        self,
        num_classes: int,
        widths: Sequence[int] = WIDTHS,
        convs_per_block: Sequence[int] = CONVS_PER_BLOCK,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width, convs in zip(widths, convs_per_block):
            for _ in range(convs):
                layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                channels = width
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal convolutions (He et al. 2015), zero biases, small normal classifier."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, K]`` = linear(global-average-pool(features(inputs)))."""
        return self.classifier(torch.flatten(self.pool(self.features(inputs)), 1))


def sha256_of(path: Path) -> str:
    """Hex SHA-256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_card(card_path: Path = CARD_FILE) -> dict:
    """The weights card (sha256, classes, architecture, recipe, figures) written by ``training.train``."""
    try:
        card = json.loads(Path(card_path).read_text())
    except FileNotFoundError:
        if Path(card_path) != CARD_FILE:
            raise UserError(f"model card {card_path} is missing: tiny_vgg weights need the card that "
                            "`saliency-bench train` writes beside them") from None
        raise UserError(f"model card {card_path} is missing; run `saliency-bench train` to rebuild it") from None
    except (OSError, ValueError) as error:
        raise UserError(f"model card {card_path} is unreadable: {first_line(error)}") from None
    problem = card_problem(card)
    if problem is not None:
        raise UserError(f"model card {card_path} is invalid: {problem}; "
                        "rebuild it with `saliency-bench train` (it writes the card beside the weights)")
    return card


def _positive_ints(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(item, int) and not isinstance(item, bool) and item > 0 for item in value)


def _finite_numbers(value: object, count: int) -> bool:
    return isinstance(value, list) and len(value) == count and all(
        isinstance(item, (int, float)) and not isinstance(item, bool) and math.isfinite(item) for item in value)


def card_problem(card: object) -> str | None:
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
    widths, convs = arch.get("widths", list(WIDTHS)), arch.get("convs_per_block", list(CONVS_PER_BLOCK))
    if not _positive_ints(widths) or not _positive_ints(convs):
        return "architecture.widths and architecture.convs_per_block must be lists of positive integers"
    if len(widths) != len(convs):
        return "architecture.widths and architecture.convs_per_block must have one entry per block"
    size = card.get("input_size")
    if size is None:
        return "input_size is missing"
    if isinstance(size, bool) or not isinstance(size, int) or size < 2 ** len(widths):
        return f"input_size must be an integer >= {2 ** len(widths)} (one halving per block), got {size!r}"
    for key in ("mean", "std"):
        if key in card and not _finite_numbers(card[key], 3):
            return f"{key} must be a list of 3 numbers (one per colour channel)"
    if "std" in card and not all(value > 0 for value in card["std"]):
        return "std must be positive"
    return None


def build_wrapper(network: TinyVGG, card: dict) -> ModelWrapper:
    """Wrap a TinyVGG with the classes, input size and normalisation recorded in its card."""
    return ModelWrapper(
        network,
        name=NAME,
        class_names=card["class_names"],
        input_size=card["input_size"],
        mean=card.get("mean", MEAN),
        std=card.get("std", STD),
    )


def load_tiny_vgg(weights: str | Path | None = None, allow_download: bool = False, **options) -> ModelWrapper:
    """Load the shipped (or given) weights after checking their SHA-256 against the card beside them."""
    weights_path = Path(weights) if weights is not None else WEIGHTS_FILE
    weights_file(weights_path, missing="is missing; " + (
        "run `saliency-bench train` to rebuild it" if weights is None else "check the --weights path"))
    card = read_card(weights_path.with_suffix(".json"))
    digest = sha256_of(weights_path)
    if digest != card["sha256"]:
        raise UserError(f"weights file {weights_path} is corrupt: sha256 {digest[:12]}... does not match its card")
    state = read_state_dict(weights_path)
    arch = card.get("architecture", {})
    network = TinyVGG(
        num_classes=len(card["class_names"]),
        widths=arch.get("widths", WIDTHS),
        convs_per_block=arch.get("convs_per_block", CONVS_PER_BLOCK),
    )
    try:
        network.load_state_dict(state)
    except (RuntimeError, KeyError) as error:
        first = str(error).splitlines()[0]
        raise UserError(f"weights file {weights_path} does not fit the architecture in its card: {first}") from None
    wrapper = build_wrapper(network, card)
    wrapper.weights_sha256 = digest
    return wrapper
