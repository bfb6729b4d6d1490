"""saliency-bench-aggregation: GradCAM, GradCAM_Pos, GradCAM++, GradMid per block, their cumulative sums, FullGrad."""
from __future__ import annotations

from .base import AggregationMethod, BlockMethod, CAMMethod
from .blocks import LAST_BLOCK, LastBlock
from .capture import forward_backward
from .cumulative import CumulativeGradCAM, CumulativeGradMid, CumulativeMethod
from .fullgrad import FullGradDecomposition, fullgrad_decomposition, fullgrad_map
from .fullgrad_method import FullGrad
from .shared import SharedPass, compute_maps
from .variants.gradcam import GradCAM
from .variants.gradcam_pos import GradCAMPos
from .variants.gradcampp import GradCAMPlusPlus
from .variants.gradmid import GradMid

__version__ = "0.3.0"

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
