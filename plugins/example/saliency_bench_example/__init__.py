"""A complete, minimal saliency-bench plugin: the sign of the input gradient, summed over channels."""
import torch

from saliency_bench import Method, hookimpl


class GradientSign(Method):
    """sum_c sign(df/dx_c): a deliberately crude propagation method to copy from."""

    name = "gradient_sign"
    family = "propagation"
    positive = False

    def attribute(self, model, inputs, targets):
        inputs = inputs.detach().requires_grad_(True)
        logits = model(inputs)
        score = logits.gather(1, targets.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(score, inputs)
        return grad.sign().sum(dim=1)


class Plugin:
    """The object the entry point names: pluggy finds its ``register_methods`` hook."""

    @hookimpl
    def register_methods(self, register):
        register(GradientSign())


plugin = Plugin()
