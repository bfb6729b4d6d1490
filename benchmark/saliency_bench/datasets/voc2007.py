"""PASCAL VOC 2007 (Everingham et al. 2010) in its standard VOCdevkit layout, boxes turned into per-class masks.

Layout read (never downloaded)::

    VOCdevkit/VOC2007/ImageSets/Main/<split>.txt   one image id per line
    VOCdevkit/VOC2007/Annotations/<id>.xml         standard VOC XML (object/name, difficult, bndbox)
    VOCdevkit/VOC2007/JPEGImages/<id>.jpg

``root`` may be the ``VOC2007`` folder itself, the ``VOCdevkit`` folder, or a folder holding ``VOCdevkit``.

Conventions (TorchRay's pointing game, Fong et al. 2019, adapted to square batches):

- the image is resized to ``S x S`` (``S = model.input_size``) with a plain bilinear resize (anti-aliased,
  aspect ratio not kept, no crop); TorchRay instead keeps the aspect ratio and scores at the original
  resolution, but a batch needs one fixed size and a crop would cut objects out of their masks;
- a VOC box ``(xmin, ymin, xmax, ymax)`` is 1-based and inclusive, i.e. pixels ``[xmin-1, xmax)``; after
  scaling by ``S/W`` and ``S/H`` it covers every resized pixel it overlaps:
  ``[floor((xmin-1) S/W), ceil(xmax S/W))`` (exact integer arithmetic, never empty for a valid box);
- a class's mask is the union of all its boxes, difficult ones included (TorchRay ``voc_as_mask``);
- ``labels``: the class has any box; ``trials``: the class has at least one non-difficult box
  (TorchRay skips a class whose boxes are all difficult);
- the multi-class subset (Zhang et al. 2018) = images with two or more distinct labelled classes:
  ``multiclass_indices()``; option ``multiclass_only=True`` keeps only those images.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import torch

from ..classes import VOC_CLASSES
from ..errors import UserError
from ..models.loading import first_line, read_rgb_image
from .base import Dataset

NAME = "voc2007"
CLASS_INDEX = {name: index for index, name in enumerate(VOC_CLASSES)}
DEFAULT_SPLIT = "test"
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class Box:
    """One annotated object: class index, 1-based inclusive pixel box, difficult flag."""

    label: int
    xmin: int
    ymin: int
    xmax: int
    ymax: int
    difficult: bool


def find_voc2007(root: str | Path | None) -> Path:
    """The ``VOC2007`` folder under ``root`` (itself, ``root/VOC2007`` or ``root/VOCdevkit/VOC2007``)."""
    if root is None:
        raise UserError(f"dataset '{NAME}' needs --data-root: a VOCdevkit folder (or its VOC2007 folder)")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"dataset '{NAME}': data root {root} is not a folder")
    for candidate in (root, root / "VOC2007", root / "VOCdevkit" / "VOC2007"):
        if (candidate / "ImageSets" / "Main").is_dir():
            return candidate
    raise UserError(
        f"dataset '{NAME}': no VOC2007 folder under {root} "
        "(looked for ImageSets/Main in it, in VOC2007/ and in VOCdevkit/VOC2007/)"
    )


def read_split(voc: Path, split: str) -> list[str]:
    """Image ids listed in ``ImageSets/Main/<split>.txt`` (blank lines skipped)."""
    path = voc / "ImageSets" / "Main" / f"{split}.txt"
    if not path.is_file():
        raise UserError(f"dataset '{NAME}': split file {path} does not exist (splits: test, trainval, train, val)")
    ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise UserError(f"dataset '{NAME}': split file {path} lists no images")
    return ids


def _int_field(element: ET.Element, tag: str, path: Path) -> int:
    """The integer text of ``element/tag`` (VOC coordinates are integers; floats are rounded)."""
    text = element.findtext(tag)
    try:
        return int(round(float(text)))
    except (TypeError, ValueError):
        raise UserError(f"annotation {path}: <{tag}> is missing or not a number") from None


def parse_annotation(path: Path) -> list[Box]:
    """The objects of one VOC annotation XML, parsed with ``xml.etree`` (no torchvision dependency)."""
    try:
        tree = ET.parse(path)
    except FileNotFoundError:
        raise UserError(f"annotation {path} does not exist") from None
    except (ET.ParseError, OSError) as error:
        raise UserError(f"annotation {path} is not valid XML: {first_line(error)}") from None
    boxes = []
    for obj in tree.getroot().findall("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in CLASS_INDEX:
            raise UserError(f"annotation {path}: unknown VOC class {name!r}")
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise UserError(f"annotation {path}: object {name!r} has no <bndbox>")
        difficult = (obj.findtext("difficult") or "0").strip() not in ("", "0")
        coords = [_int_field(bndbox, tag, path) for tag in ("xmin", "ymin", "xmax", "ymax")]
        boxes.append(Box(CLASS_INDEX[name], *coords, difficult=difficult))
    return boxes


def scaled_span(low: int, high: int, size: int, target: int) -> tuple[int, int]:
    """Resized pixel range ``[start, stop)`` touched by the 1-based inclusive pixels ``low..high`` of ``size``."""
    low, high = max(low, 1), min(high, size)
    start = (low - 1) * target // size  # floor((low-1) * target / size)
    stop = -((-high * target) // size)  # ceil(high * target / size)
    return start, max(start, stop)


def boxes_to_masks(boxes: list[Box], width: int, height: int, size: int) -> torch.Tensor:
    """Per-class masks ``[20, size, size]``: union of each class's boxes, scaled from ``width x height``."""
    masks = torch.zeros(len(VOC_CLASSES), size, size, dtype=torch.bool)
    for box in boxes:
        x0, x1 = scaled_span(box.xmin, box.xmax, width, size)
        y0, y1 = scaled_span(box.ymin, box.ymax, height, size)
        masks[box.label, y0:y1, x0:x1] = True
    return masks


def parse_bool(value, option: str) -> bool:
    """A boolean option given as a bool or as text (``true/false``, ``1/0``, ``yes/no``, ``on/off``)."""
    if not isinstance(value, str):
        return bool(value)
    word = value.strip().lower()
    if word not in TRUE_WORDS + FALSE_WORDS:
        raise UserError(f"dataset '{NAME}': option {option}={value!r} is not a boolean (use true or false)")
    return word in TRUE_WORDS


class VOC2007Dataset(Dataset):
    """Lazy VOC 2007 dataset: annotations parsed once at load, images read in ``__getitem__``."""

    name = NAME
    class_names = VOC_CLASSES
    has_masks = True

    def __init__(self, root: str | Path | None, size: int, split: str = DEFAULT_SPLIT, multiclass_only: bool = False):
        self.voc = find_voc2007(root)
        self.size = int(size)
        self.split = split
        self.multiclass_only = multiclass_only
        ids = read_split(self.voc, split)
        annotations = {image_id: parse_annotation(self.voc / "Annotations" / f"{image_id}.xml") for image_id in ids}
        if multiclass_only:
            ids = [image_id for image_id in ids if len({box.label for box in annotations[image_id]}) >= 2]
            if not ids:
                raise UserError(f"dataset '{NAME}': split {split!r} has no image with two or more classes")
        self.image_ids = ids
        self.boxes = [annotations[image_id] for image_id in ids]
        self.labels = torch.zeros(len(ids), len(VOC_CLASSES), dtype=torch.bool)
        self.trials = torch.zeros(len(ids), len(VOC_CLASSES), dtype=torch.bool)
        for row, boxes in enumerate(self.boxes):
            for box in boxes:
                self.labels[row, box.label] = True
                self.trials[row, box.label] |= not box.difficult

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_path(self, index: int) -> Path:
        """``JPEGImages/<id>.jpg`` of sample ``index``."""
        return self.voc / "JPEGImages" / f"{self.image_ids[index]}.jpg"

    def multiclass_indices(self) -> list[int]:
        """Indices of images with two or more distinct classes: the multi-class subset (Zhang et al. 2018)."""
        return torch.nonzero(self.labels.sum(dim=1) >= 2).flatten().tolist()

    def __getitem__(self, index: int) -> dict:
        """Image resized to ``S x S`` in [0,1], multi-hot labels, box masks scaled alike, trials, index."""
        import torchvision.transforms.functional as TF  # on use: importing torchvision costs ~2 s at start-up

        image = read_rgb_image(self.image_path(index))
        width, height = image.size
        resized = TF.resize(image, [self.size, self.size], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        return {
            "image": TF.to_tensor(resized),
            "labels": self.labels[index].float(),
            "masks": boxes_to_masks(self.boxes[index], width, height, self.size),
            "trials": self.trials[index].clone(),
            "index": index,
        }

    def describe(self) -> dict:
        """Fingerprint: name, size, split, subset, input size and the resize convention."""
        return {
            **super().describe(),
            "split": self.split,
            "multiclass_only": self.multiclass_only,
            "image_size": self.size,
            "resize": "square-bilinear",
        }


def load_voc2007(model, root=None, split: str | None = None, multiclass_only=False, **options) -> VOC2007Dataset:
    """Open VOC 2007 ``split`` (default ``test``) under ``root`` at ``model.input_size``."""
    if options:
        raise UserError(f"dataset '{NAME}' has no option(s) {', '.join(sorted(options))} (has: multiclass_only)")
    return VOC2007Dataset(
        root,
        size=model.input_size,
        split=split or DEFAULT_SPLIT,
        multiclass_only=parse_bool(multiclass_only, "multiclass_only"),
    )
