"""A complete, minimal saliency-bench plugin: the L2 norm over channels of the input gradient."""
import torch

from saliency_bench import Method, hookimpl


class GradientL2(Method):
    """||df/dx||_2 over colour channels: Simonyan et al. 2014's gradient map with an L2 instead of a max."""

    name = "gradient_l2"
    family = "propagation"
    positive = False

    def attribute(self, model, inputs, targets):
        inputs = inputs.detach().requires_grad_(True)
        logits = model(inputs)
        score = logits.gather(1, targets.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(score, inputs)
        return grad.norm(dim=1)


class Plugin:
    """The object the entry point names: pluggy finds its ``register_methods`` hook."""

    @hookimpl
    def register_methods(self, register):
        register(GradientL2())


plugin = Plugin()
