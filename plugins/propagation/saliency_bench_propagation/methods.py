"""Single-pass propagation methods: one forward and one (rule-modified) backward per batch."""
from __future__ import annotations

import torch
from saliency_bench import Method

from . import rules
from .gradients import max_abs_over_channels, network_of, sum_over_channels, target_gradient
from .lrp import epsilon_rule, lrp_rules, zplus_rule
from .peers import captum_attribution, zennit_epsilon_plus_flat, zennit_layer_rule


class PropagationMethod(Method):
    """Base: ``attribute`` = ``reduce(input_attribution)``; subclasses give the un-reduced ``[B,C,H,W]`` map."""

    family = "propagation"
    positive = False
    reduction = staticmethod(max_abs_over_channels)

    def input_attribution(self, model, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The attribution ``[B,C,H,W]`` at the (normalised) input, before the channel reduction."""
        raise NotImplementedError

    def attribute(self, model, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Maps ``[B,H,W]``: the method's channel reduction of ``input_attribution``."""
        return self.reduction(self.input_attribution(model, inputs, targets)).detach()


class Gradient(PropagationMethod):
    """Gradient (Simonyan et al. 2014): df_t/dx by plain backprop; map = max over channels of |.|."""

    name = "gradient"

    def input_attribution(self, model, inputs, targets):
        """df_t/dx."""
        return target_gradient(network_of(model), inputs, targets)

    def peers(self, model):
        """captum's Saliency."""
        return captum_attribution(model, "Saliency")


class ReLURuleMethod(PropagationMethod):
    """A gradient whose backward pass at every ``nn.ReLU`` follows ``relu_rule()``; max over channels of |.|."""

    def relu_rule(self) -> rules.ReLURule:
        """The rule R_in = rule(a, R_out) applied at each ReLU during this method's call only."""
        raise NotImplementedError

    def input_attribution(self, model, inputs, targets):
        """The modified gradient at the input, rules active only inside this call."""
        network = network_of(model)
        with rules.relu_backward_rule(network, self.relu_rule()):
            return target_gradient(network, inputs, targets)


class GuidedBackprop(ReLURuleMethod):
    """Guided backprop (Springenberg et al. 2015): R_in = 1(a>0) 1(R_out>0) R_out at ReLUs; max over channels of |.|."""

    name = "guided_backprop"
    positive = True

    def relu_rule(self):
        """1(a > 0) 1(R_out > 0) R_out."""
        return rules.guided

    def peers(self, model):
        """captum's GuidedBackprop."""
        return captum_attribution(model, "GuidedBackprop")


class Deconvnet(ReLURuleMethod):
    """DeconvNet (Zeiler & Fergus 2014): R_in = 1(R_out>0) R_out at ReLUs; max over channels of |.|.

    ``positive=True``: like guided backprop it only propagates the positive part of the signal at every ReLU.
    """

    name = "deconvnet"
    positive = True

    def relu_rule(self):
        """1(R_out > 0) R_out."""
        return rules.deconvnet

    def peers(self, model):
        """captum's Deconvolution."""
        return captum_attribution(model, "Deconvolution")


class RectGrad(ReLURuleMethod):
    """RectGrad (Kim et al. 2019): R_in = 1(a R_out > tau) R_out at ReLUs, tau = q-th pct; max over channels of |.|.

    ``q`` is the percentile of ``a * R_out`` over each sample's layer (all C,H,W; linear interpolation);
    ``tau`` (optional) fixes the threshold instead (tau = 0 gives guided backprop exactly).
    """

    name = "rectgrad"
    positive = True
    absolute = False
    settings = ("q", "tau")

    def __init__(self, q: float = 98.0, tau: float | None = None):
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile q must lie in [0, 100], got {q}")
        self.q = float(q)
        self.tau = tau

    def relu_rule(self):
        """1(a R_out > tau) R_out (or |a R_out| for the modified variant)."""
        return rules.rectified(self.q, self.tau, absolute=self.absolute)


class RectGradMod(RectGrad):
    """RectGrad_Mod (Khakzar et al. 2020): R_in = 1(|a R_out| > tau) R_out at ReLUs; max over channels of |.|.

    tau = q-th percentile of ``|a R_out|`` per sample and layer; tau = 0 gives the plain gradient exactly.
    """

    name = "rectgrad_mod"
    positive = False
    absolute = True


class InputXGradient(PropagationMethod):
    """Input x gradient (Shrikumar et al. 2016): x * df_t/dx; map = sum over channels (additive attribution)."""

    name = "input_x_gradient"
    reduction = staticmethod(sum_over_channels)

    def input_attribution(self, model, inputs, targets):
        """x * df_t/dx."""
        return inputs.detach() * target_gradient(network_of(model), inputs, targets)

    def peers(self, model):
        """captum's InputXGradient."""
        return captum_attribution(model, "InputXGradient")


class LRPMethod(PropagationMethod):
    """LRP with one rule at every Linear/Conv layer (the first one included); map = sum over channels.

    Relevance starts at the target logit (R = f_t), passes ReLUs, goes to the max-pool winner; see ``lrp.py``.
    """

    settings = ("stabilizer",)

    reduction = staticmethod(sum_over_channels)
    pool_stabilizer = 1e-9

    def layer_rule(self, signs):
        """The forward hook implementing this method's rule at each Linear/Conv layer (``signs``: a SignTracker)."""
        raise NotImplementedError

    def input_attribution(self, model, inputs, targets):
        """R = x * c at the input, c the rule-modified gradient (rules active only inside this call)."""
        network = network_of(model)
        with lrp_rules(network, self.layer_rule, self.pool_stabilizer):
            signal = target_gradient(network, inputs, targets)
        return inputs.detach() * signal


class LRP0(LRPMethod):
    """LRP-0 (Bach et al. 2015): R_in = a W^T (R_out / z) at every layer, stabiliser 1e-9; sum over channels."""

    name = "lrp_0"

    def __init__(self, stabilizer: float = 1e-9):
        self.stabilizer = float(stabilizer)

    def layer_rule(self, signs):
        """Epsilon rule with a vanishing epsilon."""
        return epsilon_rule(self.stabilizer)

    def peers(self, model):
        """zennit with Epsilon(stabiliser) at every layer, and zennit's EpsilonPlusFlat composite."""
        yield from zennit_layer_rule(model, "zennit LRP-0", lambda zennit_rules: zennit_rules.Epsilon(self.stabilizer))
        yield from zennit_epsilon_plus_flat(model)


class LRPEpsilon(LRPMethod):
    """LRP-epsilon (Bach et al. 2015): R_in = a W^T (R_out / (z + eps sign z)), eps = 0.25; sum over channels."""

    name = "lrp_epsilon"
    settings = ("epsilon",)

    def __init__(self, epsilon: float = 0.25):
        self.epsilon = float(epsilon)

    def layer_rule(self, signs):
        """Epsilon rule."""
        return epsilon_rule(self.epsilon)

    def peers(self, model):
        """zennit with Epsilon(epsilon) at every layer."""
        return zennit_layer_rule(model, "zennit LRP-epsilon", lambda zennit_rules: zennit_rules.Epsilon(self.epsilon))


class LRPGammaInf(LRPMethod):
    """LRP-gamma=inf = z+ = alpha1-beta0 (excitation backprop) at every layer; sum over channels.

    R_in = x+ W+^T (R_out / z+) + x- W-^T (R_out / z+), z+ = W+ x+ + W- x- + b+ (zennit ``ZPlus``); on hidden
    layers (x >= 0) this is the classic z+ rule, at the first layer it also handles negative normalised pixels.
    """

    name = "lrp_gamma_inf"
    positive = True

    def __init__(self, stabilizer: float = 1e-9):
        self.stabilizer = float(stabilizer)

    def layer_rule(self, signs):
        """z+ rule; ReLU outputs take the classic W+ x form."""
        return zplus_rule(self.stabilizer, signs)

    def peers(self, model):
        """zennit with ZPlus (its own stabiliser) at every layer."""
        return zennit_layer_rule(model, "zennit LRP-gamma_inf", lambda zennit_rules: zennit_rules.ZPlus())
