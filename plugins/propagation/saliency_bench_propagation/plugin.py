"""The distribution's one entry point (group ``saliency_bench``): registers every propagation method.

The objects are built once, when the plugin loads, with the settings below: every registry made in this
process hands the run these very objects.
"""
from __future__ import annotations

from saliency_bench import Method, hookimpl

from .methods import (
    LRP0,
    Deconvnet,
    Gradient,
    GuidedBackprop,
    InputXGradient,
    LRPEpsilon,
    LRPGammaInf,
    RectGrad,
    RectGradMod,
)
from .path import IntegratedGradients, SmoothGrad

# 16 samples / 16 Gauss-Legendre nodes keep `run --all` within its CPU budget (see README).
# SmoothGrad's noise level is calibrated per embedded model: the largest level of NOISE_LEVELS at which the
# model's top-1 class holds on >= 95% of noisy copies of 256 validation images (calibrate_noise_level, 16 copies,
# seed 0): tiny_vgg 0.03 (0.9658 kept; 0.8845 at 0.04), tiny_resnet 0.01 (0.9871; 0.9382 at 0.02), tiny_vit 0.01
# (0.9734; 0.9438 at 0.02). A level at which the prediction changes averages the gradients of other decisions: at
# 0.03 tiny_resnet kept its top-1 class on 58% of copies and SmoothGrad's pointing accuracy fell below the edge
# control's. Other models get tiny_vgg's 0.03 (Smilkov et al.'s 0.15 is calibrated for ImageNet models): register
# SmoothGrad(noise_levels={name: calibrate_noise_level(model, inputs)}) for another model.
SMOOTHGRAD_NOISE_LEVEL = 0.03
SMOOTHGRAD_NOISE_LEVELS = {"tiny_vgg": 0.03, "tiny_resnet": 0.01, "tiny_vit": 0.01}
SMOOTHGRAD_SAMPLES = 16
INTEGRATED_GRADIENTS_STEPS = 16


def shipped_methods() -> list[Method]:
    """Every method of this distribution with its registered settings, in the order of the plugin README's table."""
    return [
        Gradient(),
        GuidedBackprop(),
        Deconvnet(),
        RectGrad(),
        RectGradMod(),
        SmoothGrad(n_samples=SMOOTHGRAD_SAMPLES, noise_level=SMOOTHGRAD_NOISE_LEVEL,
                   noise_levels=SMOOTHGRAD_NOISE_LEVELS),
        InputXGradient(),
        IntegratedGradients(n_steps=INTEGRATED_GRADIENTS_STEPS),
        LRP0(),
        LRPEpsilon(),
        LRPGammaInf(),
    ]


METHODS = tuple(sorted(shipped_methods(), key=lambda method: method.name))


@hookimpl
def register_methods(register) -> None:
    """Register every method of this distribution (docs/writing-a-method.md)."""
    for method in METHODS:
        register(method)
