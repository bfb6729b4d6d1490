"""Peer implementations (captum, grad-cam, zennit) of our methods, where installed, for side-by-side timing."""
from __future__ import annotations

import importlib.util
from typing import Callable, Iterator

import torch

from .models.wrapper import ModelWrapper

Attribution = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _captum(name: str, model: ModelWrapper, method: object = None) -> Iterator[tuple[str, Attribution]]:
    import captum.attr as ca

    net = model.network
    last = model.blocks[list(model.blocks)[-1]]
    simple = {"gradient": ca.Saliency, "guided_backprop": ca.GuidedBackprop, "deconvnet": ca.Deconvolution,
              "input_x_gradient": ca.InputXGradient}
    if name in simple:
        algo = simple[name](net)
        yield f"captum {simple[name].__name__}", lambda x, t: algo.attribute(x, target=t)
    elif name == "integrated_gradients":
        algo = ca.IntegratedGradients(net)
        steps = int(getattr(method, "n_steps", 32))  # the same number of nodes as the registered method
        rule = getattr(method, "method", "gausslegendre")
        yield f"captum IntegratedGradients ({steps} steps)", lambda x, t: algo.attribute(
            x, target=t, n_steps=steps, method=rule, internal_batch_size=x.shape[0])
    elif name in ("gradcam", "gradcam@B5"):
        algo = ca.LayerGradCam(net, last)

        def gradcam(x, t):
            """LayerGradCam at the block, then up-sampled to the input as every map here is (captum's own helper)."""
            cam = algo.attribute(x, target=t, relu_attributions=True)
            return ca.LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), "bilinear")

        yield "captum LayerGradCam", gradcam


def _gradcam_lib(name: str, model: ModelWrapper, method: object = None) -> Iterator[tuple[str, Attribution]]:
    from pytorch_grad_cam import FullGrad, GradCAM, GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    last = model.blocks[list(model.blocks)[-1]]
    kinds = {"gradcam": GradCAM, "gradcam@B5": GradCAM, "gradcampp@B5": GradCAMPlusPlus, "fullgrad": FullGrad}
    if name not in kinds:
        return
    cls = kinds[name]
    layers = [] if cls is FullGrad else [last]

    def run(x, t, cls=cls, layers=layers):
        with cls(model=model.network, target_layers=layers) as cam:
            return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in t])

    yield f"grad-cam {cls.__name__}", run


def _zennit(name: str, model: ModelWrapper, method: object = None) -> Iterator[tuple[str, Attribution]]:
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonPlusFlat, LayerMapComposite
    from zennit.rules import Epsilon, Pass, ZPlus
    from zennit.types import Activation, Convolution, Linear

    rules = {
        "lrp_0": [(Activation, Pass()), (Convolution, Epsilon(1e-9)), (Linear, Epsilon(1e-9))],
        "lrp_epsilon": [(Activation, Pass()), (Convolution, Epsilon(0.25)), (Linear, Epsilon(0.25))],
        "lrp_gamma_inf": [(Activation, Pass()), (Convolution, ZPlus()), (Linear, ZPlus())],
    }
    if name not in rules:
        return
    composites = [("zennit " + name.replace("lrp_", "LRP-"), lambda: LayerMapComposite(layer_map=rules[name]))]
    if name == "lrp_0":
        composites.append(("zennit EpsilonPlusFlat", EpsilonPlusFlat))

    for label, make in composites:
        def run(x, t, make=make):
            outputs = torch.eye(model.num_classes, device=x.device)[t]
            with Gradient(model=model.network, composite=make()) as attributor:
                return attributor(x, outputs)[1]

        yield label, run


def peer_implementations(name: str, model: ModelWrapper, method: object = None) -> Iterator[tuple[str, Attribution]]:
    """``(label, fn(inputs, targets))`` for every installed peer implementing method ``name`` (settings of ``method``)."""
    for module, source in (("captum", _captum), ("pytorch_grad_cam", _gradcam_lib), ("zennit", _zennit)):
        if _have(module):
            yield from source(name, model, method)
