"""Other libraries' implementations of the aggregation methods (captum, pytorch-grad-cam), for ``Method.peers``.

Each adapter yields ``(label, fn(inputs, targets) -> maps)`` and nothing when its library is not installed;
the library is imported only when the adapter runs. ``saliency-bench bench`` times them beside the method.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from saliency_bench import ModelWrapper

Attribution = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def installed(module: str) -> bool:
    """Whether ``module`` (a top-level package) can be imported."""
    return importlib.util.find_spec(module) is not None


def captum_layer_gradcam(model: ModelWrapper, block: str) -> Iterator[tuple[str, Attribution]]:
    """captum's LayerGradCam at ``block`` (relu_attributions), up-sampled to the input with captum's own helper."""
    if not installed("captum"):
        return
    import captum.attr as ca

    algo = ca.LayerGradCam(model.network, model.blocks[block])

    def gradcam(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """LayerGradCam at the block, then up-sampled to the input as every map here is (captum's own helper)."""
        cam = algo.attribute(x, target=t, relu_attributions=True)
        return ca.LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), "bilinear")

    yield "captum LayerGradCam", gradcam


def grad_cam_library(model: ModelWrapper, kind: str, layers: Sequence[nn.Module]) -> Iterator[tuple[str, Attribution]]:
    """pytorch-grad-cam's class ``kind`` (GradCAM, GradCAMPlusPlus, FullGrad) on ``layers``, one ClassifierOutputTarget per image."""
    if not installed("pytorch_grad_cam"):
        return
    cls = getattr(importlib.import_module("pytorch_grad_cam"), kind)
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layers = list(layers)

    def run(x: torch.Tensor, t: torch.Tensor):
        with cls(model=model.network, target_layers=layers) as cam:
            return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in t])

    yield f"grad-cam {cls.__name__}", run
