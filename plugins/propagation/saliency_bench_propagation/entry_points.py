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
# 16 samples / 16 Gauss-Legendre nodes keep `run --all` within its CPU budget (see README)
smoothgrad = method_plugin(SmoothGrad(n_samples=16))
integrated_gradients = method_plugin(IntegratedGradients(n_steps=16))
lrp_0 = method_plugin(LRP0())
lrp_epsilon = method_plugin(LRPEpsilon())
lrp_gamma_inf = method_plugin(LRPGammaInf())
