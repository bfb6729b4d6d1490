"""saliency-bench-aggregation: GradCAM, GradCAM_Pos, GradCAM++, GradMid per block, their cumulative sums, FullGrad."""
from __future__ import annotations

from .capture import forward_backward
from .fullgrad import FullGradDecomposition, fullgrad_decomposition, fullgrad_map
from .methods import (
    AggregationMethod,
    BlockMethod,
    CumulativeGradCAM,
    CumulativeGradMid,
    FullGrad,
    GradCAM,
    GradCAMPlusPlus,
    GradCAMPos,
    GradMid,
)
from .shared import compute_maps

__version__ = "0.1.0"

__all__ = [
    "AggregationMethod",
    "BlockMethod",
    "CumulativeGradCAM",
    "CumulativeGradMid",
    "FullGrad",
    "FullGradDecomposition",
    "GradCAM",
    "GradCAMPlusPlus",
    "GradCAMPos",
    "GradMid",
    "compute_maps",
    "forward_backward",
    "fullgrad_decomposition",
    "fullgrad_map",
]
