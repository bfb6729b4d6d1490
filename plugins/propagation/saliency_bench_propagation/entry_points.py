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
smoothgrad = method_plugin(SmoothGrad())
integrated_gradients = method_plugin(IntegratedGradients())
lrp_0 = method_plugin(LRP0())
lrp_epsilon = method_plugin(LRPEpsilon())
lrp_gamma_inf = method_plugin(LRPGammaInf())
