"""Tiny VGG: the embedded default network (5 conv blocks, ReLU, max-pool, no batch norm) and its loader."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..errors import UserError
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
        return json.loads(Path(card_path).read_text())
    except FileNotFoundError:
        raise UserError(f"model card {card_path} is missing; run `saliency-bench train` to rebuild it") from None
    except (OSError, ValueError) as error:
        raise UserError(f"model card {card_path} is unreadable: {error}") from None


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
    card = read_card(weights_path.with_suffix(".json"))
    if not weights_path.is_file():
        raise UserError(f"weights file {weights_path} is missing; run `saliency-bench train` to rebuild it")
    digest = sha256_of(weights_path)
    if digest != card.get("sha256"):
        raise UserError(f"weights file {weights_path} is corrupt: sha256 {digest[:12]}... does not match its card")
    try:
        state = torch.load(weights_path, weights_only=True, map_location="cpu")
    except Exception as error:  # noqa: BLE001 - any unpickling failure is a bad file
        raise UserError(f"weights file {weights_path} cannot be loaded: {type(error).__name__}") from None
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
