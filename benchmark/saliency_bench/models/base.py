"""The model registration record: a name and a loader returning a ModelWrapper."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from .wrapper import ModelWrapper


@dataclass(frozen=True)
class ModelSpec:
    """A model plugin: ``load(weights=None, allow_download=False, **options) -> ModelWrapper``."""

    name: str
    load: Callable[..., "ModelWrapper"]
    description: str = ""
    default_dataset: str | None = None
    options: dict = field(default_factory=dict)
    paper_columns: bool = False  # show the seed paper's values (VGG-16) beside this model's rows: VGG models only
