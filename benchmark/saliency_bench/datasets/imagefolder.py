"""A folder of classified images in the ImageNet / torchvision ImageFolder layout: ``root/<class>/<image>``.

For class sensitivity and parameter randomisation (no masks). Conventions:

- class index: the position of the folder name in the sorted folder names (torchvision ``ImageFolder``), or
  a JSON mapping file (option ``class_index=PATH``) in either the standard ``imagenet_class_index.json``
  form ``{"0": ["n01440764", "tench"], ...}`` or a plain ``{"n01440764": 0, ...}``;
- images: the shorter side resized (bilinear, anti-aliased) to ``round(S * 256 / 224)`` then a centre crop of
  ``S x S`` (``S = model.input_size``: 256 then 224, the standard ImageNet evaluation transform);
- order: round-robin over classes (the first image of every class, then the second, ...; as TorchRay's
  ``limiter``), so ``--limit N`` samples the classes evenly; option ``order="sorted"`` keeps class order;
- ``split``: when given, images are read from ``root/<split>/`` (e.g. ``root=ILSVRC2012, split=val``);
- ``masks`` are all False with shape ``[K, 1, 1]`` (broadcastable; ``has_masks`` is False, so no check reads
  them, and a full ``[1000, S, S]`` bool per image would cost 50 MB).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import UserError
from ..models.loading import first_line, read_rgb_image
from .base import Dataset

NAME = "imagefolder"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
ORDERS = ("round_robin", "sorted")
RESIZE_RATIO = 256 / 224  # resize-then-crop ratio of the standard ImageNet evaluation transform


def class_folders(root: Path) -> list[str]:
    """Sorted names of the visible sub-folders of ``root``."""
    return sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))


def read_class_index(path: str | Path) -> tuple[dict[str, int], list[str]]:
    """``(folder -> index, class names)`` from a JSON mapping in the imagenet_class_index or plain form."""
    path = Path(path).expanduser()
    try:
        mapping = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"class index file {path} does not exist") from None
    except (OSError, ValueError) as error:
        raise UserError(f"class index file {path} is not valid JSON: {first_line(error)}") from None
    if not isinstance(mapping, dict) or not mapping:
        raise UserError(f"class index file {path} must hold a non-empty JSON object")
    try:
        if all(isinstance(value, list) and value for value in mapping.values()):
            entries = {str(value[0]): (int(key), str(value[-1])) for key, value in mapping.items()}
        elif all(isinstance(value, int) and not isinstance(value, bool) for value in mapping.values()):
            entries = {str(folder): (index, str(folder)) for folder, index in mapping.items()}
        else:
            raise ValueError("mixed value types")
    except ValueError:
        raise UserError(
            f"class index file {path}: expected {{\"0\": [\"n01440764\", \"tench\"], ...}} or {{\"n01440764\": 0, ...}}"
        ) from None
    if min(index for index, _ in entries.values()) < 0:
        raise UserError(f"class index file {path} holds a negative class index")
    names = [f"class_{i}" for i in range(max(index for index, _ in entries.values()) + 1)]
    for index, name in entries.values():
        names[index] = name
    return {folder: index for folder, (index, _) in entries.items()}, names


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively, known extensions, case-insensitive), sorted by path."""
    return sorted(
        path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
    )


def interleave(per_class: list[list[tuple[Path, int]]]) -> list[tuple[Path, int]]:
    """Round-robin merge: the first sample of every class, then every second one, and so on."""
    longest = max((len(samples) for samples in per_class), default=0)
    return [samples[rank] for rank in range(longest) for samples in per_class if rank < len(samples)]


class ImageFolderDataset(Dataset):
    """Lazy image folder: file paths listed once at load, images read in ``__getitem__``."""

    name = NAME
    has_masks = False

    def __init__(
        self,
        root: str | Path | None,
        size: int,
        split: str | None = None,
        class_index: str | Path | None = None,
        order: str = "round_robin",
    ):
        if root is None:
            raise UserError(f"dataset '{NAME}' needs --data-root: a folder of class folders of images")
        folder = Path(root).expanduser()
        if split:
            folder = folder / split
        if not folder.is_dir():
            raise UserError(f"dataset '{NAME}': data folder {folder} does not exist")
        if order not in ORDERS:
            raise UserError(f"dataset '{NAME}': unknown order {order!r} (use {' or '.join(ORDERS)})")
        folders = class_folders(folder)
        if not folders:
            raise UserError(f"dataset '{NAME}': {folder} holds no class folders (expected {folder}/<class>/<image>)")
        if class_index is None:
            index_of, names = {name: i for i, name in enumerate(folders)}, list(folders)
        else:
            index_of, names = read_class_index(class_index)
            unknown = [name for name in folders if name not in index_of]
            if unknown:
                missing = folder / unknown[0]
                raise UserError(f"dataset '{NAME}': folder {missing} is not in class index file {class_index}")
        per_class = [[(path, index_of[name]) for path in list_images(folder / name)] for name in folders]
        self.samples = interleave(per_class) if order == "round_robin" else [s for group in per_class for s in group]
        if not self.samples:
            raise UserError(f"dataset '{NAME}': no images ({', '.join(IMAGE_EXTENSIONS)}) under {folder}")
        self.folder = folder
        self.class_names = names
        self.size = int(size)
        self.resize_to = round(self.size * RESIZE_RATIO)
        self.split = split
        self.order = order
        self.class_index = str(class_index) if class_index is not None else None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        """Image (shorter side to ``S*256/224``, centre crop ``S``), one-hot label, empty masks, index."""
        import torchvision.transforms.functional as TF  # on use: importing torchvision costs ~2 s at start-up

        path, label = self.samples[index]
        image = read_rgb_image(path)
        image = TF.resize(image, self.resize_to, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        image = TF.center_crop(image, [self.size, self.size])
        labels = torch.zeros(len(self.class_names), dtype=torch.float32)
        labels[label] = 1.0
        return {
            "image": TF.to_tensor(image),
            "labels": labels,
            "masks": torch.zeros(len(self.class_names), 1, 1, dtype=torch.bool),
            "trials": labels > 0,
            "index": index,
        }

    def describe(self) -> dict:
        """Fingerprint: name, size, split, order, class index file, input size and the resize convention."""
        return {
            **super().describe(),
            "split": self.split,
            "order": self.order,
            "class_index": self.class_index,
            "image_size": self.size,
            "resize": f"shorter-side-{self.resize_to}-center-crop-{self.size}",
        }


def load_imagefolder(model, root=None, split: str | None = None, class_index=None, order="round_robin", **options):
    """Open the image folder under ``root`` (optionally ``root/<split>``) at ``model.input_size``."""
    if options:
        raise UserError(f"dataset '{NAME}' has no option(s) {', '.join(sorted(options))} (has: class_index, order)")
    return ImageFolderDataset(root, size=model.input_size, split=split, class_index=class_index, order=order)
