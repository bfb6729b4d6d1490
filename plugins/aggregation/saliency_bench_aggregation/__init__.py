"""saliency-bench-aggregation: GradCAM, GradCAM_Pos, GradCAM++, GradMid per block, their cumulative sums, FullGrad."""
from __future__ import annotations

from .capture import forward_backward
from .fullgrad import FullGradDecomposition, fullgrad_decomposition, fullgrad_map
from .methods import (
    LAST_BLOCK,
    AggregationMethod,
    BlockMethod,
    CAMMethod,
    CumulativeGradCAM,
    CumulativeGradMid,
    CumulativeMethod,
    FullGrad,
    GradCAM,
    GradCAMPlusPlus,
    GradCAMPos,
    GradMid,
    LastBlock,
)
from .shared import SharedPass, compute_maps

__version__ = "0.1.0"

__all__ = [
    "LAST_BLOCK",
    "AggregationMethod",
    "BlockMethod",
    "CAMMethod",
    "CumulativeGradCAM",
    "CumulativeGradMid",
    "CumulativeMethod",
    "FullGrad",
    "FullGradDecomposition",
    "GradCAM",
    "GradCAMPlusPlus",
    "GradCAMPos",
    "GradMid",
    "LastBlock",
    "SharedPass",
    "compute_maps",
    "forward_backward",
    "fullgrad_decomposition",
    "fullgrad_map",
]
