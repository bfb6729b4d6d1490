"""The dataset contract: samples with an image in [0,1], multi-hot labels and per-class masks."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import torch

if TYPE_CHECKING:  # pragma: no cover
    from ..models.wrapper import ModelWrapper


class Dataset(torch.utils.data.Dataset):
    """A benchmark dataset; ``__getitem__(i)`` returns a dict with

    - ``image``: float32 ``[3,H,W]`` in [0,1], already at the model's input size;
    - ``labels``: float32 ``[K]`` multi-hot over ``class_names``;
    - ``masks``: bool ``[K,H,W]`` per-class ground truth (all False for absent classes;
      all False everywhere when ``has_masks`` is False);
    - ``trials``: bool ``[K]``, the classes that count as pointing-game trials (default: labels > 0;
      VOC drops classes whose boxes are all difficult);
    - ``index``: int, the sample's position.
    """

    name: str = ""
    class_names: Sequence[str] = ()
    has_masks: bool = True
    # How many images `saliency-bench run` takes when --limit is not given (None: all of them). A generated
    # dataset can be unbounded in principle; this is the size its results are meant to be read at.
    default_limit: int | None = None
    # Fewer images for the costly checks (``Check.costly``: those that run every method many times per image, once
    # per cascade step and weight draw, say) when --param CHECK.images is not given. A check's cost per image
    # differs by orders of magnitude, and only the dataset knows how many of its images keep such a check's
    # intervals useful at a bearable run time. None: every image of the run (``suite.num_images``), as every
    # other check takes.
    images_for_costly_checks: int | None = None

    def describe(self) -> dict:
        """The configuration this dataset contributes to a result's fingerprint."""
        return {"name": self.name, "size": len(self), "has_masks": self.has_masks}


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset plugin: ``load(model, root=None, split=None, **options) -> Dataset``."""

    name: str
    load: Callable[..., Dataset]
    description: str = ""
    has_masks: bool = True
    options: dict = field(default_factory=dict)
