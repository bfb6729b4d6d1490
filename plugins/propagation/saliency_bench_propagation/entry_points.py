"""One plugin object per method: the targets of this distribution's ``saliency_bench`` entry points."""
from saliency_bench import method_plugin

from .methods import (
    Deconvnet,
    Gradient,
    GuidedBackprop,
    InputXGradient,
    LRP0,
    LRPEpsilon,
    LRPGammaInf,
    RectGrad,
    RectGradMod,
)
from .path import IntegratedGradients, SmoothGrad

gradient = method_plugin(Gradient())
guided_backprop = method_plugin(GuidedBackprop())
deconvnet = method_plugin(Deconvnet())
rectgrad = method_plugin(RectGrad())
rectgrad_mod = method_plugin(RectGradMod())
input_x_gradient = method_plugin(InputXGradient())
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
smoothgrad = method_plugin(SmoothGrad(n_samples=16, noise_level=SMOOTHGRAD_NOISE_LEVEL,
                                      noise_levels=SMOOTHGRAD_NOISE_LEVELS))
integrated_gradients = method_plugin(IntegratedGradients(n_steps=16))
lrp_0 = method_plugin(LRP0())
lrp_epsilon = method_plugin(LRPEpsilon())
lrp_gamma_inf = method_plugin(LRPGammaInf())
