"""FullGrad (Srinivas & Fleuret 2019) as an aggregation method: its map from the shared pass's bias terms."""
from __future__ import annotations

from typing import Iterator

import torch

from saliency_bench import ModelWrapper

from . import peers
from .base import AggregationMethod
from .fullgrad import fullgrad_map
from .peers import Attribution
from .shared import SharedPass


class FullGrad(AggregationMethod):
    """FullGrad: |grad_x*x| + sum over conv layers of |df/dz * b|, each min-max normalised (Srinivas & Fleuret 2019)."""

    name = "fullgrad"
    positive = True
    needs_fullgrad_terms = True

    def compute(self, shared: SharedPass) -> torch.Tensor:
        """The official ``FullGrad.saliency`` map of the pass's decomposition (Srinivas & Fleuret 2019, eq. 6)."""
        return fullgrad_map(shared.fullgrad_decomposition())

    def peers(self, model: ModelWrapper) -> Iterator[tuple[str, Attribution]]:
        """grad-cam's FullGrad (it min-max normalises every channel, unlike the official code this follows)."""
        yield from peers.grad_cam_library(model, "FullGrad", [])
