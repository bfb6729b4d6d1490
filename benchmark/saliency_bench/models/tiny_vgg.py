"""Tiny VGG: the embedded default network (5 conv blocks, ReLU, max-pool, no batch norm) and its loader."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from . import embedded
from .embedded import WEIGHTS_DIR, EmbeddedModel, load_embedded, positive_int, sha256_of  # noqa: F401 - API
from .wrapper import ModelWrapper

NAME = "tiny_vgg"
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


def architecture_problem(arch: dict, size: object) -> str | None:
    """A VGG card's architecture: one width and one conv count per block, an input halved once per block."""
    widths, convs = arch.get("widths"), arch.get("convs_per_block")
    if not _positive_ints(widths) or not _positive_ints(convs):
        return "architecture.widths and architecture.convs_per_block must be lists of positive integers"
    if len(widths) != len(convs):
        return "architecture.widths and architecture.convs_per_block must have one entry per block"
    if isinstance(size, bool) or not isinstance(size, int) or size < 2 ** len(widths):
        return f"input_size must be an integer >= {2 ** len(widths)} (one halving per block), got {size!r}"
    return None


def _positive_ints(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(positive_int(item) for item in value)


def build(arch: dict, num_classes: int, input_size: int | None = None) -> TinyVGG:
    """The TinyVGG a card's architecture describes (any input size: global average pooling)."""
    return TinyVGG(num_classes=num_classes, widths=arch["widths"], convs_per_block=arch["convs_per_block"])


MODEL = EmbeddedModel(
    name=NAME,
    description="VGG-style 5-block CNN (no batch norm, GAP head) trained on 'shapes'; shipped weights",
    build=build,
    architecture={"widths": list(WIDTHS), "convs_per_block": list(CONVS_PER_BLOCK),
                  "head": "global average pool + linear"},
    architecture_problem=architecture_problem,
    input_size=INPUT_SIZE, mean=MEAN, std=STD,
    recipe={"epochs": 14, "batch_size": 32, "lr": 1e-3, "optimizer": "Adam"},
    twins=("random_labels",),  # `saliency-bench train --random-labels` reproduces it (its card says how far it memorised)
)


def read_card(card_path: Path = CARD_FILE) -> dict:
    """The tiny_vgg weights card (embedded.read_card)."""
    return embedded.read_card(card_path, MODEL)


def card_problem(card: object) -> str | None:
    """What a tiny_vgg card lacks or holds of the wrong type (embedded.card_problem)."""
    return embedded.card_problem(card, MODEL)


def load_tiny_vgg(weights: str | Path | None = None, allow_download: bool = False, **options) -> ModelWrapper:
    """Load the shipped (or given) weights after checking their SHA-256 against the card beside them."""
    return load_embedded(MODEL, weights, allow_download, **options)
