"""The control methods `random` and `edge`, a default plugin: they calibrate what the checks can tell."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .harness import noise
from .hookspecs import hookimpl
from .methods import Method


class RandomMap(Method):
    """Uniform noise, drawn per map from the harness's seed of that map (``noise.rand``): explains nothing.

    Each (image, target, model state) gets its own draw, so the control's maps for two classes, or for a
    randomised model, are independent noise, and a map is the same whichever batch or check asked for it.
    """

    name = "random"
    family = "control"
    positive = False

    def attribute(self, model, inputs, targets):
        batch, _, height, width = inputs.shape
        return noise.rand((batch, height, width), device=inputs.device, dtype=torch.float32)


class EdgeMap(Method):
    """Sobel gradient magnitude of the grey image: ignores model and class, so it must look fully insensitive."""

    name = "edge"
    family = "control"
    positive = True

    def attribute(self, model, inputs, targets):
        grey = model.denormalize(inputs.detach()).mean(dim=1, keepdim=True)
        kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=inputs.device)
        kernels = torch.stack([kx, kx.t()]).unsqueeze(1).to(grey.dtype)
        grads = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernels)
        return grads.pow(2).sum(dim=1).sqrt()


@hookimpl
def register_methods(register):
    register(RandomMap())
    register(EdgeMap())
