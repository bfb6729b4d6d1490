"""Tiny on-disk datasets for tests: a VOCdevkit tree and an ImageNet-style image folder (reusable helpers)."""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

# id -> (width, height, colour, objects); object = (class name, (xmin, ymin, xmax, ymax) 1-based inclusive, difficult)
VOC_IMAGES = {
    # two classes; person has one difficult and one normal box -> mask is the union of both
    "000001": (100, 100, (200, 40, 40), [
        ("dog", (11, 21, 40, 60), False),
        ("person", (51, 1, 100, 50), False),
        ("person", (1, 81, 20, 100), True),
    ]),
    # a single class: labelled, a trial, not in the multi-class subset
    "000002": (100, 100, (40, 200, 40), [
        ("cat", (21, 21, 80, 80), False),
    ]),
    # landscape 200x100; bottle only has a difficult box: labelled (multi-class) but not a trial
    "000003": (200, 100, (40, 40, 200), [
        ("car", (1, 1, 100, 50), False),
        ("bottle", (151, 51, 200, 100), True),
    ]),
    # only in trainval
    "000004": (100, 100, (120, 120, 120), [
        ("horse", (1, 1, 50, 50), False),
        ("person", (51, 51, 100, 100), False),
    ]),
}
VOC_SPLITS = {"test": ["000001", "000002", "000003"], "trainval": ["000004"]}

# class folder -> [(file name, (width, height))]; each image: a middle colour with thin side bands
FOLDER_IMAGES = {
    "n01440764": [("a.JPEG", (80, 60)), ("b.png", (60, 80))],
    "n01443537": [("c.png", (80, 60)), ("d.jpg", (64, 64))],
}
IMAGENET_INDEX = {"0": ["n01440764", "tench"], "1": ["n01443537", "goldfish"], "2": ["n01484850", "great_white_shark"]}


def annotation_xml(image_id: str, width: int, height: int, objects) -> str:
    """A standard VOC annotation document."""
    parts = [
        f"<annotation><folder>VOC2007</folder><filename>{image_id}.jpg</filename>",
        f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size><segmented>0</segmented>",
    ]
    for name, (xmin, ymin, xmax, ymax), difficult in objects:
        parts.append(
            f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
            f"<difficult>{int(difficult)}</difficult><bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin>"
            f"<xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"
        )
    parts.append("</annotation>")
    return "\n".join(parts)


def make_voc_tree(tmp_path: Path) -> Path:
    """Write ``tmp_path/VOCdevkit/VOC2007`` with VOC_IMAGES and VOC_SPLITS; return the VOCdevkit folder."""
    devkit = Path(tmp_path) / "VOCdevkit"
    voc = devkit / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    for image_id, (width, height, color, objects) in VOC_IMAGES.items():
        Image.new("RGB", (width, height), color).save(voc / "JPEGImages" / f"{image_id}.jpg", quality=95)
        (voc / "Annotations" / f"{image_id}.xml").write_text(annotation_xml(image_id, width, height, objects))
    for split, ids in VOC_SPLITS.items():
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return devkit


def banded_image(width: int, height: int, middle, band: int = 8) -> Image.Image:
    """``middle`` colour with a red band on the left and a blue band on the right, ``band`` px wide."""
    image = Image.new("RGB", (width, height), middle)
    image.paste((255, 0, 0), (0, 0, band, height))
    image.paste((0, 0, 255), (width - band, 0, width, height))
    return image


def folder_color(index: int) -> tuple[int, int, int]:
    """A distinct middle colour for the ``index``-th image written by ``make_image_folder`` (sorted order)."""
    return (40 + 50 * index, 160, 90)


def make_image_folder(tmp_path: Path, with_index: bool = False) -> Path:
    """Write ``tmp_path/images/<class>/<file>`` (2 classes x 2 images); with ``with_index`` also
    ``tmp_path/imagenet_class_index.json``. Return the image root."""
    root = Path(tmp_path) / "images"
    rank = 0
    for folder, files in FOLDER_IMAGES.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name, (width, height) in files:
            image = banded_image(width, height, folder_color(rank))
            fmt = "JPEG" if name.lower().endswith((".jpg", ".jpeg")) else "PNG"
            image.save(root / folder / name, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
            rank += 1
    if with_index:
        (Path(tmp_path) / "imagenet_class_index.json").write_text(json.dumps(IMAGENET_INDEX))
    return root
