"""Other libraries' implementations of this plugin's methods (captum, zennit), timed beside them by ``bench``.

Each method's ``peers(model)`` (the ``saliency_bench.Method`` contract) yields from here ``(label, fn(inputs,
targets))`` with the method's own settings. A library is imported only when a peer is built, and one that is
not installed yields nothing (``importlib.util.find_spec``): neither is a dependency of this plugin.
"""
from __future__ import annotations

import importlib.util
from typing import Callable, Iterator

import torch

Attribution = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Peers = Iterator[tuple[str, Attribution]]


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    return importlib.util.find_spec(module) is not None


def captum_attribution(model, algorithm: str) -> Peers:
    """``captum.attr.<algorithm>`` (Saliency, GuidedBackprop, Deconvolution, InputXGradient) on the model's network."""
    if not installed("captum"):
        return
    import captum.attr as ca

    algo = getattr(ca, algorithm)(model.network)
    yield f"captum {algorithm}", lambda x, t: algo.attribute(x, target=t)


def captum_integrated_gradients(model, n_steps: int, rule: str) -> Peers:
    """captum's IntegratedGradients with the method's number of nodes and quadrature rule, in one batch per call."""
    if not installed("captum"):
        return
    import captum.attr as ca

    algo = ca.IntegratedGradients(model.network)
    steps = int(n_steps)
    yield f"captum IntegratedGradients ({steps} steps)", lambda x, t: algo.attribute(
        x, target=t, n_steps=steps, method=rule, internal_batch_size=x.shape[0])


def captum_noise_tunnel(model, n_samples: int, noise_level: float) -> Peers:
    """captum's NoiseTunnel(Saliency) SmoothGrad with the method's sample count, all samples in one batch per call.

    captum takes one standard deviation for the whole batch; the peer uses the batch's mean of this plugin's
    per-image sigma (timing is what it is for; the values are not compared).
    """
    if not installed("captum"):
        return
    import captum.attr as ca

    algo = ca.NoiseTunnel(ca.Saliency(model.network))
    samples = int(n_samples)

    def attribute(x, t):
        flat = x.detach().flatten(1)
        sigma = float((noise_level * (flat.amax(1) - flat.amin(1))).mean())
        return algo.attribute(x, nt_type="smoothgrad", nt_samples=samples, stdevs=sigma, target=t,
                              nt_samples_batch_size=samples)

    yield f"captum NoiseTunnel smoothgrad ({samples} samples)", attribute


def zennit_layer_rule(model, label: str, layer_rule: Callable[[object], object]) -> Peers:
    """zennit with one rule at every Convolution and Linear layer and Pass at activations (this plugin's LRP).

    ``layer_rule(zennit.rules)`` makes the rule (``lambda rules: rules.Epsilon(0.25)``), so the method names its
    own rule and setting without importing zennit.
    """
    if not installed("zennit"):
        return
    import zennit.rules
    from zennit.composites import LayerMapComposite
    from zennit.types import Activation, Convolution, Linear

    layer_map = [(Activation, zennit.rules.Pass()), (Convolution, layer_rule(zennit.rules)),
                 (Linear, layer_rule(zennit.rules))]
    yield label, _zennit_attribution(model, lambda: LayerMapComposite(layer_map=layer_map))


def zennit_epsilon_plus_flat(model) -> Peers:
    """zennit's EpsilonPlusFlat composite (its recommended LRP for VGG-like networks), as a further LRP peer."""
    if not installed("zennit"):
        return
    from zennit.composites import EpsilonPlusFlat

    yield "zennit EpsilonPlusFlat", _zennit_attribution(model, EpsilonPlusFlat)


def _zennit_attribution(model, make_composite: Callable[[], object]) -> Attribution:
    """``fn(inputs, targets)``: zennit's Gradient attributor under a fresh composite, relevance from the target."""
    from zennit.attribution import Gradient

    def run(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        outputs = torch.eye(model.num_classes, device=x.device)[t]
        with Gradient(model=model.network, composite=make_composite()) as attributor:
            return attributor(x, outputs)[1]

    return run
