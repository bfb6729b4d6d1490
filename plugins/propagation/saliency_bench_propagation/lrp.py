"""LRP rules for linear layers as forward hooks, computed with the gradient trick (Montavon et al. 2019).

The signal that flows backward is c with R = a * c at every layer input a (so R_in at the image is x * c).
For a linear layer z = W a + b whose upper relevance is R_out = z * g (g = the signal arriving at z), a rule
with proxy output p (p = z for LRP-0/epsilon, p = z+ for the z+ rule) gives

    R_in = a * d p / d a ^T (R_out / stab(p))    i.e.    c_in = (d p / d a)^T (z * g / stab(p)),

so the forward hook only has to return z whose backward multiplies g by z / stab(p) and sends it into p's
graph. ReLU then passes relevance through (its autograd backward 1(z>0) is exactly that in c-form) and
max-pooling routes it to the winner (its gradient), as in zennit's composites. The relevance starts at the
target logit: g = one-hot there, so R_out = f_t.

ResNets (zennit's ``ResNetCanonizer`` convention, without touching the weights):
- a BatchNorm that directly follows a Conv/Linear (consecutive leaves, as zennit's ``SequentialMergeBatchNorm``)
  is merged into it: the rule runs at the BatchNorm's output with the merged layer W' = W s, b' = (b - m) s + beta,
  s = gamma / sqrt(v + eps), and the conv itself passes the signal on (plain gradient);
- the residual sum z = out + identity of a torchvision Bottleneck/BasicBlock splits R_z in proportion to the two
  contributions (zennit ``Norm`` on its ``Sum``): c-form g -> g z / stab(z) at z. The block ends in
  y = relu(z), and where the ReLU passes y = z, so the rescale is applied to the block's output y.
Anything else the rules cannot see (another nonlinearity, attention, a sum of activations outside those blocks,
a BatchNorm not after a linear layer) raises ``saliency_bench.NotApplicable``.
"""
from __future__ import annotations

import weakref
from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from saliency_bench import NotApplicable

from .hooks import forward_hooks
from .watch import OTHER_ACTIVATIONS, unseen_by_lrp_rules, watching

LINEAR_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
AVERAGE_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
RELEVANCE_PASSING = (
    nn.ReLU,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.Flatten,
    nn.Identity,
)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
LayerRule = Callable[..., torch.Tensor]  # rule(module, inputs, output, weight=None, bias=None): a forward hook


def residual_blocks() -> tuple[type, ...]:
    """The residual blocks whose sum has a rule here: torchvision's ResNet Bottleneck and BasicBlock."""
    try:
        from torchvision.models.resnet import BasicBlock, Bottleneck
    except ImportError:  # pragma: no cover - torchvision is optional
        return ()
    return (Bottleneck, BasicBlock)


def epsilon_ratio(z: torch.Tensor, epsilon: float) -> torch.Tensor:
    """z / (z + eps sign z) with sign(0) = +1 (zennit's stabiliser), computed as |z| / (|z| + eps)."""
    magnitude = z.detach().abs()
    return magnitude.div_(magnitude + epsilon)


def zplus_ratio(z: torch.Tensor, zplus: torch.Tensor, stabilizer: float) -> torch.Tensor:
    """z / (z+ + stabilizer); z+ >= 0 by construction, so the sign-aware stabiliser is a plain + stabilizer."""
    denominator = zplus.detach() + stabilizer
    return torch.div(z.detach(), denominator, out=denominator)


class _RelevanceRatio(torch.autograd.Function):
    """Forward: the layer output z unchanged. Backward: g -> g * ratio, sent into the proxy p's graph only.

    z is marked dirty and returned as is (no copy, no view), so a following ``ReLU(inplace=True)`` still works.
    """

    @staticmethod
    def forward(ctx, output, proxy, ratio):
        """Return z itself, rebased onto this node; keep the precomputed ratio z / stab(p)."""
        ctx.mark_dirty(output)
        ctx.ratio = ratio
        return output

    @staticmethod
    def backward(ctx, grad):
        """c-form of R_in = a * dp/da^T (R_out / stab(p)): the gradient into p is g * z / stab(p); none into z.

        The ratio buffer is consumed in place (one backward per call, as ``target_gradient`` does).
        """
        ratio, ctx.ratio = ctx.ratio, None
        return None, ratio.mul_(grad), None


def rescale_backward(output: torch.Tensor, proxy: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """Return z whose backward sends ``g * ratio`` into ``proxy`` (z is copied first if it is a view)."""
    if output._base is not None:
        output = output.clone()
    return _RelevanceRatio.apply(output, proxy, ratio)


def residual_sum_rule(stabilizer: float) -> LayerRule:
    """The residual sum z = out + identity, R split in proportion to the two (zennit ``Norm`` on its ``Sum``).

    Hooked on the block's output y = relu(z): c-form g -> g y / stab(y), equal to g z / stab(z) wherever the
    ReLU passes. The output is copied first: the block's in-place ReLU saved y for its own backward.
    """

    def rule(module, inputs, output):
        """Forward hook on a torchvision Bottleneck/BasicBlock."""
        output = output.clone()
        return rescale_backward(output, output, epsilon_ratio(output, stabilizer))

    return rule


def epsilon_rule(epsilon: float) -> LayerRule:
    """LRP-epsilon (Bach et al. 2015): R_in = a * W^T (R_out / (z + eps sign z)); eps -> 0 is LRP-0."""

    def rule(module, inputs, output, weight=None, bias=None):
        """Forward hook: the layer's own output is the proxy (a merged BatchNorm's output included)."""
        return rescale_backward(output, output, epsilon_ratio(output, epsilon))

    return rule


def _layer_forward(module: nn.Module, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The layer's forward with replaced parameters (same stride, padding, groups, padding mode)."""
    if isinstance(module, nn.Linear):
        return F.linear(x, weight, bias)
    return module._conv_forward(x, weight, bias)


class SignTracker:
    """The tensors of one forward pass that are >= 0 by construction, so z+ needs no look at the data.

    A ReLU output is non-negative, and max/average pooling, dropout, flatten and identity keep it so. Anything
    else (the image, a Linear/Conv output, the result of a functional op) is unknown. Knowing it from the
    modules instead of testing ``x.amin() < 0`` saves a host sync per layer on a GPU.
    """

    def __init__(self):
        # weak: a marked tensor is freed as soon as autograd lets go of it (and its id can then not be mistaken)
        self._known: weakref.WeakValueDictionary[int, torch.Tensor] = weakref.WeakValueDictionary()

    def is_nonnegative(self, tensor: torch.Tensor) -> bool:
        """True when ``tensor`` came out of a ReLU (through sign-keeping layers only) in this pass."""
        return self._known.get(id(tensor)) is tensor

    def mark(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        """Forward hook on a module whose output is a ReLU's (a torchvision ResNet block ends in one)."""
        self._known[id(output)] = output

    def hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        """Forward hook: mark a ReLU's output, and a sign-keeping layer's output when its input was marked."""
        if isinstance(module, nn.ReLU) or (inputs and self.is_nonnegative(inputs[0])):
            self._known[id(output)] = output


def positive_contributions(
    module: nn.Module, x: torch.Tensor, nonnegative: bool, weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """z+ = W+ x+ + W- x- + b+: every positive contribution to z (zennit ZPlus / AlphaBeta(1, 0)).

    For inputs known to be non-negative (after a ReLU) this is the classic z+ = W+ x + b+; otherwise (the
    normalised image at the first layer) both terms run as one layer call on channel-stacked [x+, x-] and
    [W+, W-] (groups = 1), which is exact whatever the signs. ``weight``/``bias`` replace the layer's own (a
    merged BatchNorm).
    """
    if weight is None:
        weight, bias = module.weight, module.bias
    weight = weight.detach()
    bias = bias.detach().clamp(min=0) if bias is not None else None
    if nonnegative:
        return _layer_forward(module, x, weight.clamp(min=0), bias)
    if getattr(module, "groups", 1) != 1:
        return _layer_forward(module, x.clamp(min=0), weight.clamp(min=0), bias) + _layer_forward(
            module, x.clamp(max=0), weight.clamp(max=0), None
        )
    channel = -1 if isinstance(module, nn.Linear) else 1
    stacked_input = torch.cat([x.clamp(min=0), x.clamp(max=0)], dim=channel)
    stacked_weight = torch.cat([weight.clamp(min=0), weight.clamp(max=0)], dim=1)
    return _layer_forward(module, stacked_input, stacked_weight, bias)


def zplus_rule(stabilizer: float, signs: SignTracker | None = None) -> LayerRule:
    """LRP z+ = alpha1-beta0 = gamma -> infinity (Montavon et al. 2017; excitation backprop, Zhang et al. 2018):

    R_in = x+ * W+^T (R_out / z+) + x- * W-^T (R_out / z+), z+ = W+ x+ + W- x- + b+. ``signs`` tells which
    layer inputs are non-negative by construction; the others are tested.
    """

    def rule(module, inputs, output, weight=None, bias=None):
        """Forward hook: the proxy is the positive-contribution forward z+ (with ``weight``/``bias`` if given).

        Only an input the modules do not vouch for (the image; the result of a functional op such as
        torchvision VGG's ``torch.flatten``) is looked at, a host sync on a GPU; ReLU outputs are not.
        """
        x = inputs[0]
        known = signs is not None and signs.is_nonnegative(x)
        proxy = positive_contributions(module, x, nonnegative=known or not bool(x.detach().amin() < 0),
                                       weight=weight, bias=bias)
        return rescale_backward(output, proxy, zplus_ratio(output, proxy, stabilizer))

    return rule


def leaves(network: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules without children, depth-first in registration order (zennit's ``collect_leaves``)."""
    return [(name, module) for name, module in network.named_modules() if not any(True for _ in module.children())]


def merged_batch_norms(network: nn.Module) -> dict[nn.Module, nn.Module]:
    """``{batch_norm: linear}`` for every BatchNorm whose preceding leaf is a Conv/Linear (zennit's pairing)."""
    pairs = {}
    previous = None
    for _, module in leaves(network):
        if isinstance(module, BATCH_NORMS) and isinstance(previous, LINEAR_LAYERS):
            pairs[module] = previous
        previous = module
    return pairs


def merged_parameters(linear: nn.Module, norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """W' = W s, b' = (b - m) s + beta, s = gamma / sqrt(v + eps): eval BatchNorm folded into its layer."""
    scale = norm.running_var.add(norm.eps).rsqrt()
    if norm.weight is not None:
        scale = scale * norm.weight
    weight = linear.weight.detach() * scale.view(-1, *([1] * (linear.weight.dim() - 1)))
    bias = linear.bias.detach() if linear.bias is not None else torch.zeros_like(norm.running_mean)
    bias = (bias - norm.running_mean) * scale
    if norm.bias is not None:
        bias = bias + norm.bias
    return weight.detach(), bias.detach()


def check_supported(network: nn.Module) -> None:
    """Raise NotApplicable for leaf modules the c-form rules do not cover (GELU, attention, a lone BatchNorm...)."""
    known = LINEAR_LAYERS + AVERAGE_POOLS + RELEVANCE_PASSING
    merged = merged_batch_norms(network)
    unknown: dict[str, str] = {}  # type name -> first layer of that type
    for name, module in leaves(network):
        if isinstance(module, BATCH_NORMS) and module not in merged:
            raise NotApplicable(f"LRP: BatchNorm {name!r} does not follow a Conv/Linear layer, so it cannot be merged")
        if isinstance(module, BATCH_NORMS) and (module.training or module.running_mean is None):
            raise NotApplicable(f"LRP: BatchNorm {name!r} is not in eval mode with running statistics")
        if not isinstance(module, known + BATCH_NORMS):
            unknown.setdefault(type(module).__name__, name)
    for name, module in network.named_modules():  # attention holds children (out_proj) but runs them functionally
        if isinstance(module, OTHER_ACTIVATIONS):
            unknown.setdefault(type(module).__name__, name)
    if unknown:
        listed = ", ".join(f"{kind} ({name!r})" for kind, name in unknown.items())
        raise NotApplicable(f"LRP has no rule here for {listed}; supported: Linear/Conv (+BatchNorm), ReLU, "
                            "max/avg pooling, Dropout, Flatten, Identity, torchvision ResNet blocks")


class MergedRule:
    """The rule of a Conv/Linear + BatchNorm pair, applied at the BatchNorm's output with the merged parameters."""

    def __init__(self, pairs: dict[nn.Module, nn.Module], rule: LayerRule):
        self.pairs = pairs
        self.rule = rule
        self.inputs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id(linear output) -> (output, input), per call

    def record(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        """Forward hook on a paired linear layer: remember this call's input under its output (no rule here)."""
        self.inputs[id(output)] = (output, inputs[0])

    def apply(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        """Forward hook on the BatchNorm: the pair's rule, proxy built from the linear layer's input."""
        recorded = self.inputs.pop(id(inputs[0]), None)
        if recorded is None or recorded[0] is not inputs[0]:
            raise NotApplicable("LRP: a BatchNorm's input is not the output of the layer before it; cannot merge them")
        linear = self.pairs[module]
        weight, bias = merged_parameters(linear, module)
        return self.rule(linear, (recorded[1],), output, weight=weight, bias=bias)


@contextmanager
def lrp_rules(
    network: nn.Module, make_rule: Callable[[SignTracker], LayerRule], pool_stabilizer: float = 1e-9
) -> Iterator[None]:
    """Within the block, every Linear/Conv layer (merged with its BatchNorm) back-propagates ``make_rule(signs)``,
    every average pool and residual sum LRP-0 with ``pool_stabilizer``.

    Average pools are fixed positive averages and residual sums split in proportion to their inputs, so both use
    LRP-0 with a tiny stabiliser under every rule (zennit's ``Norm``). ``signs`` follows which tensors are ReLU
    outputs during the pass. In-place ReLUs stay in place (the hooked outputs are rebased, not viewed). Calls the
    rules cannot see raise NotApplicable (``watch.py``). The hooks are removed on exit, also on error.
    """
    check_supported(network)
    layers = [module for module in network.modules() if isinstance(module, LINEAR_LAYERS)]
    if not layers:
        raise ValueError("LRP: the network has no Linear/Conv layers")
    pairs = merged_batch_norms(network)
    paired = set(pairs.values())
    pools = [module for module in network.modules() if isinstance(module, AVERAGE_POOLS)]
    passing = [module for module in network.modules() if isinstance(module, RELEVANCE_PASSING)]
    blocks = [module for module in network.modules() if isinstance(module, residual_blocks())]
    signs = SignTracker()
    rule = make_rule(signs)
    merged = MergedRule(pairs, rule)
    covered = [module for _, module in leaves(network)] + blocks
    with ExitStack() as stack:
        stack.enter_context(forward_hooks([m for m in layers if m not in paired], rule))
        stack.enter_context(forward_hooks(list(paired), merged.record))
        stack.enter_context(forward_hooks(list(pairs), merged.apply))
        stack.enter_context(forward_hooks(pools, epsilon_rule(pool_stabilizer)))
        stack.enter_context(forward_hooks(blocks, residual_sum_rule(pool_stabilizer)))
        stack.enter_context(forward_hooks(pools + passing, signs.hook))  # after the pool rule: marks its output
        stack.enter_context(forward_hooks(blocks, signs.mark))
        stack.enter_context(watching(covered, unseen_by_lrp_rules))
        yield
