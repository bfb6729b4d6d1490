"""The entry point's plugin (``sanity_2023``): registers data randomisation, eMPRT and sMPRT."""
from __future__ import annotations

from saliency_bench import hookimpl

from .data_randomization import DataRandomization
from .emprt import EfficientMPRT
from .smprt import SmoothMPRT


@hookimpl
def register_checks(register):
    """Register the three checks (Adebayo et al. 2018, section 4; Hedström et al. 2023)."""
    for check in (DataRandomization(), EfficientMPRT(), SmoothMPRT()):
        register(check)
