"""Synthetic shapes: drawing primitives, and the first layout (1-3 disjoint shapes, tight masks: ``shapes_disjoint``)."""
from __future__ import annotations


import numpy as np
import torch

from ..errors import UserError
from .base import Dataset

CLASS_NAMES = ("circle", "square", "triangle", "cross", "ring", "diamond")

# Every split draws from its own seed stream; the benchmark stream is never used for training.
SPLIT_STREAMS = {"train": 101, "val": 202, "test": 303, "benchmark": 303}
DEFAULT_COUNTS = {"train": 10_000, "val": 1_000, "test": 10_000, "benchmark": 10_000}

RADIUS_RANGE = (0.10, 0.16)  # object radius as a fraction of the image side
GAP = 0.04  # minimum free space between two objects' bounding circles, as a fraction of the side
BOUND = 1.05  # every shape lies inside BOUND * radius of its centre
MIN_CONTRAST = 0.35  # minimum RGB distance between an object's colour and the background colour
NOISE_STD = 0.04
TEXTURE_AMPLITUDE = 0.08


def split_stream(split: str) -> int:
    """The seed-stream tag of a split ("train", "val", "test"/"benchmark")."""
    try:
        return SPLIT_STREAMS[split]
    except KeyError:
        raise UserError(f"unknown split {split!r} for dataset 'shapes'; use one of {sorted(SPLIT_STREAMS)}") from None


def image_rng(split: str, seed: int, index: int) -> np.random.Generator:
    """A PCG64 generator for one image, seeded by (split stream, seed, index): same inputs, same bytes."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([split_stream(split), int(seed), int(index)])))


def unit_frame(size: int, cx: float, cy: float, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre offsets from (cx, cy) in units of ``radius``: u across ``[1,S]``, v up ``[S,1]`` (y grows down)."""
    pixel = np.arange(size, dtype=np.float32) + 0.5
    return (pixel[None, :] - cx) / radius, (cy - pixel[:, None]) / radius


def shape_mask(kind: int, u: np.ndarray, v: np.ndarray, turn: float) -> np.ndarray:
    """Inside test of one shape in its unit frame (u, v = pixel offsets / radius, before rotation by ``turn``)."""
    cos, sin = np.cos(turn), np.sin(turn)
    a, b = cos * u + sin * v, -sin * u + cos * v
    name = CLASS_NAMES[kind]
    if name == "circle":
        return a * a + b * b <= 1.0
    if name == "ring":
        r2 = a * a + b * b
        return (r2 <= 1.0) & (r2 >= 0.55**2)
    if name == "square":
        return np.maximum(np.abs(a), np.abs(b)) <= 0.72
    if name == "diamond":
        return np.abs(a) / 0.6 + np.abs(b) <= 1.0
    if name == "cross":
        return ((np.abs(a) <= 0.3) & (np.abs(b) <= 0.95)) | ((np.abs(b) <= 0.3) & (np.abs(a) <= 0.95))
    if name == "triangle":
        angles = np.array([np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3])
        return np.all(a[..., None] * np.cos(angles) + b[..., None] * np.sin(angles) <= 0.5, axis=-1)
    raise ValueError(f"unknown shape {kind}")


def shape_turn(rng: np.random.Generator, kind: int) -> float:
    """Rotation (rad): any angle for the triangle, +-15 degrees for the rest (a square never becomes a diamond)."""
    if CLASS_NAMES[kind] == "triangle":
        return float(rng.uniform(0, 2 * np.pi))
    return float(rng.uniform(-np.pi / 12, np.pi / 12))


def place_objects(rng: np.random.Generator, size: int, count: int) -> list[tuple[float, float, float]]:
    """Centres and radii (px) of up to ``count`` objects whose bounding circles keep a gap (rejection sampling)."""
    placed: list[tuple[float, float, float]] = []
    for _ in range(count):
        for _attempt in range(60):
            radius = rng.uniform(*RADIUS_RANGE) * size
            margin = BOUND * radius + 1.0
            cx, cy = rng.uniform(margin, size - margin, size=2)
            if all(np.hypot(cx - x, cy - y) >= BOUND * (radius + r) + GAP * size for x, y, r in placed):
                placed.append((cx, cy, radius))
                break
    return placed


def background(rng: np.random.Generator, size: int, color: np.ndarray) -> np.ndarray:
    """A textured background: base colour + two random colour gratings sin(2pi(fx x + fy y) + phase), ``[3,S,S]``."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    image = np.empty((3, size, size), dtype=np.float32)
    image[:] = color.astype(np.float32)[:, None, None]
    for _ in range(2):
        freq = rng.uniform(1.0, 6.0, size=2) * rng.choice([-1.0, 1.0], size=2)
        phase = rng.uniform(0, 2 * np.pi)
        tint = (TEXTURE_AMPLITUDE * rng.uniform(-1.0, 1.0, size=3)).astype(np.float32)
        across = 2 * np.pi * freq[0] * coords
        down = 2 * np.pi * freq[1] * coords + phase
        # sin(a + b) = sin a cos b + cos a sin b: two outer products instead of S*S sines.
        wave = np.outer(np.cos(down), np.sin(across)) + np.outer(np.sin(down), np.cos(across))
        image += tint[:, None, None] * wave.astype(np.float32)[None]
    return image


def object_color(
    rng: np.random.Generator, background_color: np.ndarray, avoid: list[np.ndarray] | None = None
) -> np.ndarray:
    """A random RGB colour at least MIN_CONTRAST away from the background colour (and from ``avoid``'s colours)."""
    others = [background_color, *(avoid or [])]
    color = rng.uniform(0.0, 1.0, size=3)
    for _ in range(50):
        if all(np.linalg.norm(color - other) >= MIN_CONTRAST for other in others):
            break
        color = rng.uniform(0.0, 1.0, size=3)
    return color.astype(np.float32)


def render(split: str, seed: int, index: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image ``[3,S,S]`` float32 in [0,1], multi-hot labels ``[K]`` and masks ``[K,S,S]`` of one sample."""
    rng = image_rng(split, seed, index)
    num_classes = len(CLASS_NAMES)
    count = int(rng.integers(1, 4))
    kinds = rng.permutation(num_classes)[:count]
    bg_color = rng.uniform(0.15, 0.85, size=3)
    image = background(rng, size, bg_color)
    masks = np.zeros((num_classes, size, size), dtype=bool)
    for kind, (cx, cy, radius) in zip(kinds, place_objects(rng, size, count)):
        masks[kind] = shape_mask(int(kind), *unit_frame(size, cx, cy, radius), shape_turn(rng, int(kind)))
        color = object_color(rng, bg_color)
        shade = 1.0 + 0.1 * rng.uniform(-1.0, 1.0)
        image[:, masks[kind]] = (color * shade)[:, None]
    image += NOISE_STD * rng.standard_normal(image.shape, dtype=np.float32)
    labels = masks.any(axis=(1, 2)).astype(np.float32)
    return np.clip(image, 0.0, 1.0, out=image), labels, masks


class ShapesDataset(Dataset):
    """Seeded synthetic shapes, disjoint with tight masks; sample ``i`` is rendered lazily from (split, seed, i).

    Subclasses change the layout by overriding :meth:`render` (``scenes.SceneShapesDataset``, the default).
    """

    # What `saliency-bench run` uses when --limit / --param CHECK.images are not given: sized so that
    # `run --all` fits in minutes on 2 CPU cores (README, "Performance").
    default_limit = 256
    images_for_costly_checks = 64

    name = "shapes_disjoint"
    class_names = CLASS_NAMES
    has_masks = True

    def __init__(
        self, size: int = 96, split: str = "benchmark", count: int | None = None, seed: int = 0, start: int = 0
    ):
        split_stream(split)
        self.size = int(size)
        self.split = split
        self.count = DEFAULT_COUNTS[split] if count is None else int(count)
        self.seed = int(seed)
        self.start = int(start)
        if self.size < 16 or self.count < 0:
            raise UserError(f"dataset '{self.name}' needs size >= 16 and count >= 0 (got size={size}, count={count})")

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict:
        """The dataset contract's dict: image, labels, masks, trials, index (datasets/base.py)."""
        if not 0 <= index < self.count:
            raise IndexError(index)
        image, labels, masks = self.render(self.split, self.seed, self.start + index, self.size)
        labels_t = torch.from_numpy(labels)
        return {
            "image": torch.from_numpy(image),
            "labels": labels_t,
            "masks": torch.from_numpy(masks),
            "trials": labels_t > 0,
            "index": index,
        }

    @staticmethod
    def render(split: str, seed: int, index: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Image, labels and masks of one sample (this layout: :func:`render`)."""
        return render(split, seed, index, size)

    def describe(self) -> dict:
        """Fingerprint: name, size, split, seed and image size."""
        extra = {"split": self.split, "seed": self.seed, "start": self.start, "image_size": self.size}
        return {**super().describe(), **extra}


def load_shapes(
    model=None, root=None, split: str | None = None, count: int | None = None, seed: int = 0,
    dataset_class: type[ShapesDataset] = ShapesDataset, **options
) -> ShapesDataset:
    """DatasetSpec loader: a split (default "benchmark") of ``dataset_class`` rendered at ``model.input_size``."""
    size = int(options.pop("size", getattr(model, "input_size", 96)))
    if options:
        raise UserError(f"dataset '{dataset_class.name}' got unknown options: {', '.join(sorted(options))}")
    if root is not None:
        raise UserError(f"dataset '{dataset_class.name}' is generated and reads no files; leave out --data-root")
    return dataset_class(size=size, split=split or "benchmark", count=count, seed=seed)
