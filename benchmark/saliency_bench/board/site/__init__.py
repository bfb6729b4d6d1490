"""The board as a static web site (``saliency-bench site``): pages, data and images, readable from ``file://``."""
from __future__ import annotations

from .build import build_site
from .section import Section, read_section

__all__ = ["Section", "build_site", "read_section"]
