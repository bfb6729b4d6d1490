"""saliency-bench-propagation: propagation saliency methods (gradient, guided backprop, RectGrad, LRP, ...).

Each method is a ``saliency_bench.Method``; the distribution's one entry point in the ``saliency_bench`` group,
``plugin.py``, registers them all. Backward rules act only during a method's own call (``hooks.py``, ``rules.py``,
``lrp.py``) and leave the model exactly as they found it.
"""
from .methods import (
    Deconvnet,
    Gradient,
    GuidedBackprop,
    InputXGradient,
    LRP0,
    LRPEpsilon,
    LRPGammaInf,
    PropagationMethod,
    RectGrad,
    RectGradMod,
)
from .path import IntegratedGradients, SmoothGrad

__version__ = "0.3.0"

__all__ = [
    "Deconvnet",
    "Gradient",
    "GuidedBackprop",
    "InputXGradient",
    "IntegratedGradients",
    "LRP0",
    "LRPEpsilon",
    "LRPGammaInf",
    "PropagationMethod",
    "RectGrad",
    "RectGradMod",
    "SmoothGrad",
]
