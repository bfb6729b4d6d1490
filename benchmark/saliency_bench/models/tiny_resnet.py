"""Tiny ResNet: an embedded residual network with batch norm (He et al. 2016), laid out as torchvision's ResNet.

The attribute names (``conv1, bn1, relu, maxpool, layer1..layer4, avgpool, fc``) and the residual blocks
(torchvision's ``BasicBlock``) are torchvision's, so the ResNet rules apply unchanged: blocks B1 = ``maxpool``,
B2..B5 = ``layer1..layer4`` (``blocks.py``), one rule per call of a block's re-entrant ReLU, LRP's residual split,
FullGrad's batch-norm biases. Only the widths and the stem are small: a 3x3 stride-1 stem then a 2x2 max-pool, so
a 96 px input gives feature maps of 48, 48, 24, 12 and 6 pixels at B1..B5 (tiny_vgg's B5 is 6 px too).
torchvision is imported when a network is built, not with this module (listing the models needs no torchvision).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .embedded import EmbeddedModel, load_embedded, positive_int
from .wrapper import ModelWrapper

NAME = "tiny_resnet"
WIDTHS = (16, 32, 64, 128)  # layer1..layer4
BLOCKS_PER_LAYER = (1, 1, 1, 1)


class TinyResNet(nn.Module):
    """ResNet (He et al. 2016) with torchvision's layout: stem conv3x3+BN+ReLU, max-pool, four stages of
    BasicBlocks (stride 1, 2, 2, 2), global average pool, linear head."""

    def __init__(self, num_classes: int, widths=WIDTHS, blocks_per_layer=BLOCKS_PER_LAYER):
        from torchvision.models.resnet import BasicBlock

        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=False)
        self.maxpool = nn.MaxPool2d(kernel_size=2, stride=2)
        channels = widths[0]
        for index, (width, count) in enumerate(zip(widths, blocks_per_layer)):
            stride = 1 if index == 0 else 2
            layer = []
            for block in range(count):
                downsample = None
                if block == 0 and (stride != 1 or channels != width):
                    downsample = nn.Sequential(nn.Conv2d(channels, width, 1, stride=stride, bias=False),
                                               nn.BatchNorm2d(width))
                layer.append(BasicBlock(channels, width, stride=stride if block == 0 else 1, downsample=downsample))
                channels = width
            setattr(self, f"layer{index + 1}", nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torchvision's ResNet initialisation: Kaiming-normal convolutions, BN weight 1 and bias 0, each block's last
        BN weight 0 (Goyal et al. 2017, ``zero_init_residual``) so every block starts as the identity."""
        from torchvision.models.resnet import BasicBlock

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, BasicBlock):
                nn.init.zeros_(module.bn2.weight)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, K]`` = fc(avgpool(layer4(...layer1(maxpool(relu(bn1(conv1(inputs))))))))."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(inputs))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def __getattr__(name: str):
    """``BasicBlock`` (torchvision's residual block, as this module once imported it), imported on first access."""
    if name == "BasicBlock":
        from torchvision.models.resnet import BasicBlock

        return BasicBlock
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def architecture_problem(arch: dict, size: object) -> str | None:
    """A tiny_resnet card: four stage widths and block counts, an input halved four times (stem pool, 3 strides)."""
    widths, blocks = arch.get("widths"), arch.get("blocks_per_layer")
    if not (isinstance(widths, list) and len(widths) == 4 and all(positive_int(w) for w in widths)):
        return "architecture.widths must be a list of 4 positive integers (layer1..layer4)"
    if not (isinstance(blocks, list) and len(blocks) == 4 and all(positive_int(b) for b in blocks)):
        return "architecture.blocks_per_layer must be a list of 4 positive integers (layer1..layer4)"
    if isinstance(size, bool) or not isinstance(size, int) or size < 16:
        return f"input_size must be an integer >= 16 (four halvings), got {size!r}"
    return None


def build(arch: dict, num_classes: int, input_size: int | None = None) -> TinyResNet:
    """The TinyResNet a card's architecture describes (any input size: global average pooling)."""
    return TinyResNet(num_classes, widths=tuple(arch["widths"]), blocks_per_layer=tuple(arch["blocks_per_layer"]))


MODEL = EmbeddedModel(
    name=NAME,
    description="ResNet with batch norm (torchvision BasicBlocks, 4 stages) trained on 'shapes'; shipped weights",
    build=build,
    architecture={"widths": list(WIDTHS), "blocks_per_layer": list(BLOCKS_PER_LAYER),
                  "head": "global average pool + linear"},
    architecture_problem=architecture_problem,
    recipe={"epochs": 14, "batch_size": 32, "lr": 1e-3, "optimizer": "Adam"},
)


def load_tiny_resnet(weights: str | Path | None = None, allow_download: bool = False, **options) -> ModelWrapper:
    """Load the shipped (or given) tiny_resnet weights after checking their SHA-256 against their card."""
    return load_embedded(MODEL, weights, allow_download, **options)
