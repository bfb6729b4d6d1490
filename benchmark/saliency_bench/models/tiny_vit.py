"""Tiny ViT: an embedded vision transformer (Dosovitskiy et al. 2021), torchvision's ``VisionTransformer`` made small.

Patch embedding by a convolutional stem (three 3x3 stride-2 conv + batch norm + ReLU layers, then a 1x1 projection:
Xiao et al. 2021, "Early convolutions help transformers see better", torchvision's ``conv_stem_configs``; a 12x12
grid of 8x8-pixel patches at 96 px), a class token, learned position embeddings, pre-norm encoder layers with
multi-head self-attention and a GELU MLP, a linear head on the class token. The stem is there because a plain
linear patchify trained from scratch on 10,000 fresh images per epoch learned slowly on 2 CPU cores (held-out mAP
0.41, 0.43, 0.46 after its first three epochs, against 0.35, 0.48, 0.69 for tiny_vgg); ``conv_stem: []`` in a card
gives the plain patchify.
It is torchvision's class, so the ViT rules apply unchanged: blocks B1..B5 read at evenly spaced layers' ``ln_1``
(``blocks.py``), tokens laid on the patch grid without the class token, every parameter in the cascade (attention
``in_proj``, ``pos_embedding``, ``class_token``), and guided backprop / LRP declared n/a through GELU and attention.
torchvision is imported when a network is built, not with this module (listing the models needs no torchvision):
``TinyViT``, a subclass of torchvision's class, is created on first access (``tiny_vit_class``).
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from .embedded import EmbeddedModel, load_embedded, positive_int
from .wrapper import ModelWrapper

NAME = "tiny_vit"
INPUT_SIZE = 96
ARCHITECTURE = {"patch_size": 8, "num_layers": 6, "num_heads": 4, "hidden_dim": 96, "mlp_dim": 192}
CONV_STEM = [24, 48, 96]  # output channels of the stem's stride-2 convolutions: 2**3 = the patch size


def architecture_problem(arch: dict, size: object) -> str | None:
    """A tiny_vit card: positive patch size, layers, heads, widths; heads divide the width; patches tile the input."""
    for key in ARCHITECTURE:
        if not positive_int(arch.get(key)):
            return f"architecture.{key} must be a positive integer"
    if arch["hidden_dim"] % arch["num_heads"]:
        return "architecture.hidden_dim must be a multiple of architecture.num_heads"
    stem = arch.get("conv_stem", [])
    if not (isinstance(stem, list) and all(positive_int(c) for c in stem)):
        return "architecture.conv_stem must be a list of positive integers (channels of stride-2 convolutions)"
    if stem and 2 ** len(stem) != arch["patch_size"]:
        return f"architecture.conv_stem's {len(stem)} stride-2 convolutions give patches of {2 ** len(stem)} pixels, " \
               f"not the patch size {arch['patch_size']}"
    if isinstance(size, bool) or not isinstance(size, int) or size < arch["patch_size"] or size % arch["patch_size"]:
        return f"input_size must be a multiple of the patch size {arch['patch_size']}, got {size!r}"
    return None


def tiny_vit_class() -> type:
    """``TinyViT``: torchvision's VisionTransformer with the card's size (``image_size`` is the model's input size).
    Created once, on first use (it imports torchvision); pickled by reference as ``tiny_vit.TinyViT``."""
    cached = globals().get("TinyViT")
    if cached is not None:
        return cached
    from torchvision.models import VisionTransformer

    class TinyViT(VisionTransformer):
        """torchvision's VisionTransformer with the card's size (``image_size`` is the model's input size)."""

    TinyViT.__module__, TinyViT.__qualname__ = __name__, "TinyViT"
    globals()["TinyViT"] = TinyViT
    return TinyViT


def __getattr__(name: str):
    """``TinyViT`` created (torchvision imported) on first access only, then kept as a module attribute."""
    if name == "TinyViT":
        return tiny_vit_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build(arch: dict, num_classes: int, input_size: int = INPUT_SIZE) -> TinyViT:
    """The TinyViT a card's architecture describes, for square inputs of ``input_size``."""
    from torchvision.models.vision_transformer import ConvStemConfig

    stem = [ConvStemConfig(out_channels=c, kernel_size=3, stride=2, norm_layer=nn.BatchNorm2d,
                           activation_layer=nn.ReLU) for c in arch.get("conv_stem", [])]
    return tiny_vit_class()(image_size=input_size, num_classes=num_classes, conv_stem_configs=stem or None,
                            **{key: arch[key] for key in ARCHITECTURE})


MODEL = EmbeddedModel(
    name=NAME,
    description="vision transformer (convolutional stem, 8 px patches, 6 encoder layers, class token; torchvision "
                "ViT) trained on 'shapes'; shipped weights",
    build=build,
    architecture={**ARCHITECTURE, "conv_stem": CONV_STEM, "head": "linear on the class token"},
    architecture_problem=architecture_problem,
    input_size=INPUT_SIZE,
    recipe={"epochs": 20, "batch_size": 32, "lr": 5e-4, "optimizer": "AdamW", "weight_decay": 0.05, "warmup": 500},
)


def load_tiny_vit(weights: str | Path | None = None, allow_download: bool = False, **options) -> ModelWrapper:
    """Load the shipped (or given) tiny_vit weights after checking their SHA-256 against their card."""
    return load_embedded(MODEL, weights, allow_download, **options)

