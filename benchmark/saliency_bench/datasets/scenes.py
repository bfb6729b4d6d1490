"""VOC-like scenes of synthetic shapes: co-occurring classes, overlap and nesting, box masks, distractors.

The layout copies the properties of PASCAL VOC07 that the pointing games depend on (Everingham et al.
2010): 1-4 objects, classes that co-occur in frequent pairs, objects that overlap, touch or sit on/inside
one another (a bottle on a table, a person on a horse), several instances of a class, ground truth as
boxes (a class's mask is the union of its instances' boxes), and salient class-agnostic clutter.
"""
from __future__ import annotations

import numpy as np

from .synthetic import (
    CLASS_NAMES, NOISE_STD, ShapesDataset, background, image_rng, object_color, shape_mask, shape_turn, unit_frame,
)

OBJECT_COUNTS = (1, 2, 3, 4)
OBJECT_COUNT_P = (0.25, 0.35, 0.25, 0.15)
# Each class has two frequent partners (VOC: person-horse, chair-diningtable, bottle-diningtable ...).
PARTNERS = {
    "circle": ("square", "cross"),
    "square": ("circle", "triangle"),
    "triangle": ("square", "diamond"),
    "cross": ("circle", "ring"),
    "ring": ("diamond", "cross"),
    "diamond": ("ring", "triangle"),
}
P_PARTNER = 0.5  # a further object's class is a partner of the object it relates to
P_REPEAT = 0.1  # a further object is another instance of that object's class
RELATIONS = ("apart", "overlap", "nest")
RELATION_P = (0.4, 0.35, 0.25)
ANCHOR_RADIUS = (0.16, 0.28)  # the first object, as a fraction of the image side (VOC boxes are large)
RADIUS = (0.10, 0.22)  # further objects placed apart or overlapping
NEST_SCALE = (0.38, 0.55)  # a nested object's radius relative to its host's
MIN_RADIUS = 0.08
OVERLAP_DISTANCE = (0.55, 0.95)  # centre distance of overlapping objects, as a fraction of the sum of radii
MIN_VISIBLE = 0.6  # every object keeps at least this fraction of its pixels visible (so it stays recognisable)
P_DISTRACTOR = 0.3
DISTRACTOR_RADIUS = (0.09, 0.14)
BOUND = 1.05  # every shape lies inside BOUND * radius of its centre
ATTEMPTS = 40


def class_index(name: str) -> int:
    """The index of a class name in CLASS_NAMES."""
    return CLASS_NAMES.index(name)


def draw_class(rng: np.random.Generator, related: int) -> int:
    """The class of a further object related to an object of class ``related``: repeat, partner or any class."""
    draw = rng.uniform()
    if draw < P_REPEAT:
        return related
    if draw < P_REPEAT + P_PARTNER:
        return class_index(PARTNERS[CLASS_NAMES[related]][int(rng.integers(2))])
    return int(rng.integers(len(CLASS_NAMES)))


def place_further(rng: np.random.Generator, size: int, relation: str, host: dict) -> dict:
    """Centre and radius (px) of a further object ``relation``-ed to ``host`` (not yet checked for visibility)."""
    if relation == "nest":
        radius = max(MIN_RADIUS * size, rng.uniform(*NEST_SCALE) * host["r"])
        angle, reach = rng.uniform(0, 2 * np.pi), rng.uniform(0.0, 0.45) * host["r"]
        return {"cx": host["cx"] + reach * np.cos(angle), "cy": host["cy"] + reach * np.sin(angle), "r": radius}
    radius = rng.uniform(*RADIUS) * size
    if relation == "overlap":
        angle = rng.uniform(0, 2 * np.pi)
        distance = rng.uniform(*OVERLAP_DISTANCE) * BOUND * (radius + host["r"])
        return {"cx": host["cx"] + distance * np.cos(angle), "cy": host["cy"] + distance * np.sin(angle), "r": radius}
    cx, cy = rng.uniform(BOUND * radius, size - BOUND * radius, size=2)
    return {"cx": cx, "cy": cy, "r": radius}


def fits(candidate: dict, objects: list[dict], relation: str, size: int) -> bool:
    """Inside the image (a shape may touch the border) and, for "apart", clear of every other object."""
    margin = 0.8 * candidate["r"]
    if not (margin <= candidate["cx"] <= size - margin and margin <= candidate["cy"] <= size - margin):
        return False
    if relation != "apart":
        return True
    return all(
        np.hypot(candidate["cx"] - o["cx"], candidate["cy"] - o["cy"]) >= BOUND * (candidate["r"] + o["r"]) + 1.0
        for o in objects
    )


def draw_order(objects: list[dict]) -> list[int]:
    """Objects are painted largest first, so a small object on a large one stays on top (stable for ties)."""
    return sorted(range(len(objects)), key=lambda i: -objects[i]["r"])


def visible_masks(shapes: list[np.ndarray], order: list[int]) -> list[np.ndarray]:
    """Each object's visible pixels: its shape minus the shapes painted after it."""
    visible = [mask.copy() for mask in shapes]
    for position, index in enumerate(order):
        for later in order[position + 1 :]:
            visible[index] &= ~shapes[later]
    return visible


def box_of(mask: np.ndarray) -> np.ndarray:
    """The axis-aligned bounding box of a boolean mask, as a filled boolean mask (empty for an empty mask)."""
    box = np.zeros_like(mask)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if len(rows) and len(cols):
        box[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = True
    return box


def star_mask(u: np.ndarray, v: np.ndarray, turn: float, points: int = 5, inner: float = 0.45) -> np.ndarray:
    """Inside test of a ``points``-pointed star of outer radius 1 and inner radius ``inner`` (polar form)."""
    radius = np.hypot(u, v)
    angle = np.mod(np.arctan2(v, u) - turn, 2 * np.pi / points) - np.pi / points  # in [-pi/p, pi/p)
    # the boundary between an outer tip (angle 0) and an inner vertex (angle pi/p) is a straight edge
    tip, valley = np.array([1.0, 0.0]), inner * np.array([np.cos(np.pi / points), np.sin(np.pi / points)])
    normal = np.array([valley[1] - tip[1], tip[0] - valley[0]])
    normal /= np.linalg.norm(normal)
    x, y = radius * np.cos(np.abs(angle)), radius * np.sin(np.abs(angle))
    return (x - tip[0]) * normal[0] + (y - tip[1]) * normal[1] <= 0


def layout_objects(rng: np.random.Generator, size: int) -> list[dict]:
    """1-4 objects ``{kind, cx, cy, r, turn, shape}``; each further one relates to an earlier one (apart/overlap/nest).

    A candidate is redrawn (up to ATTEMPTS times, then left out) when it leaves the image, or when after
    painting some object would keep less than MIN_VISIBLE of its pixels.
    """
    count = int(rng.choice(OBJECT_COUNTS, p=OBJECT_COUNT_P))

    def with_shape(obj: dict) -> dict:
        return {**obj, "shape": shape_mask(obj["kind"], *unit_frame(size, obj["cx"], obj["cy"], obj["r"]), obj["turn"])}

    kind = int(rng.integers(len(CLASS_NAMES)))
    radius = rng.uniform(*ANCHOR_RADIUS) * size
    cx, cy = rng.uniform(BOUND * radius, size - BOUND * radius, size=2)
    objects = [with_shape({"kind": kind, "cx": cx, "cy": cy, "r": radius, "turn": shape_turn(rng, kind)})]
    for _ in range(count - 1):
        for _attempt in range(ATTEMPTS):
            host = objects[int(rng.integers(len(objects)))]
            relation = RELATIONS[int(rng.choice(len(RELATIONS), p=RELATION_P))]
            kind = draw_class(rng, host["kind"])
            candidate = place_further(rng, size, relation, host)
            if not fits(candidate, objects, relation, size):
                continue
            candidate = with_shape({"kind": kind, **candidate, "turn": shape_turn(rng, kind)})
            trial = objects + [candidate]
            shapes = [o["shape"] for o in trial]
            visible = visible_masks(shapes, draw_order(trial))
            if all(v.sum() >= MIN_VISIBLE * max(1, s.sum()) for v, s in zip(visible, shapes)):
                objects = trial
                break
    return objects


def place_distractor(rng: np.random.Generator, size: int, objects: list[dict]) -> dict | None:
    """A striped star clear of every object's shape (its bounding circle may cross their boxes), or None."""
    for _attempt in range(ATTEMPTS):
        radius = rng.uniform(*DISTRACTOR_RADIUS) * size
        cx, cy = rng.uniform(radius, size - radius, size=2)
        if all(np.hypot(cx - o["cx"], cy - o["cy"]) >= BOUND * o["r"] + radius + 1.0 for o in objects):
            return {"cx": cx, "cy": cy, "r": radius, "turn": rng.uniform(0, 2 * np.pi),
                    "stripe_angle": rng.uniform(0, np.pi), "stripe_period": rng.uniform(3.0, 5.0)}
    return None


def paint_distractor(image: np.ndarray, distractor: dict) -> None:
    """Paint black-and-white stripes inside a star: salient (strong edges) and belonging to no class."""
    size = image.shape[-1]
    pixel = np.arange(size, dtype=np.float32) + 0.5
    inside = star_mask(*unit_frame(size, distractor["cx"], distractor["cy"], distractor["r"]), distractor["turn"])
    across = np.cos(distractor["stripe_angle"]) * pixel[None, :] + np.sin(distractor["stripe_angle"]) * pixel[:, None]
    stripes = (np.floor(across / distractor["stripe_period"]) % 2).astype(np.float32)
    image[:, inside] = np.where(stripes[inside] > 0, 0.95, 0.05)[None, :]


def render_scene(split: str, seed: int, index: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image ``[3,S,S]`` in [0,1], multi-hot labels ``[K]`` and per-class box masks ``[K,S,S]`` of one scene.

    A class's mask is the union of the bounding boxes of its instances' visible pixels (VOC boxes).
    """
    rng = image_rng(split, seed, index)
    objects = layout_objects(rng, size)
    bg_color = rng.uniform(0.15, 0.85, size=3)
    image = background(rng, size, bg_color)
    order = draw_order(objects)
    visible = visible_masks([o["shape"] for o in objects], order)
    colors: list[np.ndarray] = []
    for index_ in order:
        color = object_color(rng, bg_color, avoid=colors)
        colors.append(color)
        shade = 1.0 + 0.1 * rng.uniform(-1.0, 1.0)
        image[:, objects[index_]["shape"]] = (color * shade)[:, None]
    if rng.uniform() < P_DISTRACTOR:
        distractor = place_distractor(rng, size, objects)
        if distractor is not None:
            paint_distractor(image, distractor)
    image += NOISE_STD * rng.standard_normal(image.shape, dtype=np.float32)
    masks = np.zeros((len(CLASS_NAMES), size, size), dtype=bool)
    for obj, seen in zip(objects, visible):
        masks[obj["kind"]] |= box_of(seen)
    labels = masks.any(axis=(1, 2)).astype(np.float32)
    return np.clip(image, 0.0, 1.0, out=image), labels, masks


class SceneShapesDataset(ShapesDataset):
    """The embedded default: VOC-like scenes of shapes with box masks (module docstring); rendered lazily, seeded."""

    name = "shapes"

    @staticmethod
    def render(split: str, seed: int, index: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return render_scene(split, seed, index, size)
