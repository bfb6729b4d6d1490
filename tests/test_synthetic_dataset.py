"""The synthetic shapes dataset: determinism, split streams, mask/label consistency, contract."""
from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pytest
import torch

from saliency_bench import Dataset, UserError
from saliency_bench.datasets import default_plugin
from saliency_bench.datasets.scenes import (
    MIN_VISIBLE, PARTNERS, SceneShapesDataset, draw_order, layout_objects, paint_distractor, place_distractor,
    visible_masks,
)
from saliency_bench.datasets.synthetic import CLASS_NAMES, ShapesDataset, image_rng, load_shapes


def digest(dataset: ShapesDataset, count: int) -> str:
    """SHA-256 over the image, label and mask bytes of the first ``count`` samples."""
    h = hashlib.sha256()
    for i in range(count):
        sample = dataset[i]
        for key in ("image", "labels", "masks"):
            h.update(sample[key].numpy().tobytes())
    return h.hexdigest()


def test_same_seed_gives_same_bytes():
    first = digest(ShapesDataset(48, "benchmark", 12, seed=3), 12)
    assert first == digest(ShapesDataset(48, "benchmark", 12, seed=3), 12)


def test_other_seed_gives_other_bytes():
    assert digest(ShapesDataset(48, "benchmark", 6, seed=0), 6) != digest(ShapesDataset(48, "benchmark", 6, seed=1), 6)


def test_splits_draw_from_different_streams():
    hashes = {split: digest(ShapesDataset(48, split, 6), 6) for split in ("train", "val", "benchmark")}
    assert len(set(hashes.values())) == 3
    assert digest(ShapesDataset(48, "test", 6), 6) == hashes["benchmark"]


def test_start_offsets_the_stream():
    shifted = ShapesDataset(48, "train", 4, start=2)
    plain = ShapesDataset(48, "train", 6)
    assert torch.equal(shifted[0]["image"], plain[2]["image"])


def test_samples_follow_the_dataset_contract():
    dataset = ShapesDataset(64, "val", 40)
    assert isinstance(dataset, Dataset) and len(dataset) == 40 and dataset.class_names == CLASS_NAMES
    counts = set()
    for i in range(len(dataset)):
        s = dataset[i]
        k = len(CLASS_NAMES)
        assert s["image"].dtype == torch.float32 and s["image"].shape == (3, 64, 64)
        assert 0.0 <= float(s["image"].min()) and float(s["image"].max()) <= 1.0
        assert s["labels"].dtype == torch.float32 and s["labels"].shape == (k,)
        assert s["masks"].dtype == torch.bool and s["masks"].shape == (k, 64, 64)
        assert torch.equal(s["labels"] > 0, s["masks"].flatten(1).any(1))
        assert torch.equal(s["trials"], s["labels"] > 0)
        assert int(s["masks"].sum(0).max()) <= 1, "objects overlap"
        assert s["index"] == i
        counts.add(int(s["labels"].sum()))
    assert counts == {1, 2, 3}


def test_objects_cover_a_visible_area():
    s = ShapesDataset(96, "benchmark", 1)[0]
    areas = s["masks"].flatten(1).sum(1)[s["labels"] > 0]
    assert bool((areas >= 40).all())


def test_loader_sizes_to_model_and_defaults_to_benchmark():
    class Model:
        input_size = 40

    dataset = load_shapes(Model(), split=None, count=3)
    assert dataset.split == "benchmark" and dataset[0]["image"].shape == (3, 40, 40)
    assert len(load_shapes(Model())) >= 1000


def test_unknown_split_and_option_are_user_errors():
    with pytest.raises(UserError, match="split"):
        load_shapes(None, split="training")
    with pytest.raises(UserError, match="color"):
        load_shapes(None, color="red")


def test_index_out_of_range_raises_index_error():
    with pytest.raises(IndexError):
        ShapesDataset(32, "val", 2)[2]


def test_plugin_registers_the_scene_default_and_the_disjoint_layout():
    specs = []
    default_plugin.register_datasets(specs.append)
    assert [s.name for s in specs] == ["shapes", "shapes_disjoint"] and all(s.has_masks for s in specs)
    assert isinstance(specs[0].load(None, count=2), SceneShapesDataset)
    assert type(specs[1].load(None, count=2)) is ShapesDataset


def test_generated_datasets_refuse_a_data_root():
    with pytest.raises(UserError, match="data-root"):
        load_shapes(None, root="/data/voc")


# -- the VOC-like scene layout (the default "shapes") -----------------------------------------------


@pytest.fixture(scope="module")
def scenes():
    data = SceneShapesDataset(96, "benchmark", 300)
    return [data[i] for i in range(len(data))]


def test_scenes_are_seeded_and_follow_the_contract(scenes):
    again = SceneShapesDataset(96, "benchmark", 3)
    for i in range(3):
        assert torch.equal(again[i]["image"], scenes[i]["image"]) and torch.equal(again[i]["masks"], scenes[i]["masks"])
    assert digest(SceneShapesDataset(48, "benchmark", 4, seed=1), 4) != digest(SceneShapesDataset(48, "benchmark", 4), 4)
    for s in scenes:
        assert s["image"].shape == (3, 96, 96) and s["masks"].shape == (6, 96, 96)
        assert torch.equal(s["labels"] > 0, s["masks"].flatten(1).any(1))


def test_scene_masks_are_boxes(scenes):
    """A class with one instance has its bounding box as mask (VOC boxes); more instances, a union of boxes."""
    single = 0
    for index, s in enumerate(scenes[:100]):
        kinds = Counter(o["kind"] for o in layout_objects(image_rng("benchmark", 0, index), 96))  # render's layout
        for kind, count in kinds.items():
            mask = s["masks"][kind]
            rows, cols = torch.nonzero(mask, as_tuple=True)
            box = torch.zeros_like(mask)
            box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
            assert bool((mask <= box).all())
            if count == 1:
                single += 1
                assert torch.equal(mask, box)
    assert single > 100


def test_scenes_have_the_voc_properties_the_pointing_games_depend_on(scenes):
    """Co-occurring classes, overlapping or nested boxes, 1-4 objects (the numbers are what the layout gives,
    checked loosely so a change of layout is a decision, not an accident)."""
    classes = np.array([int(s["labels"].sum()) for s in scenes])
    multi = [s for s in scenes if s["labels"].sum() >= 2]
    overlapping = [bool((s["masks"][s["labels"] > 0].sum(0) >= 2).any()) for s in multi]
    nested = 0
    for s in multi:
        present = s["masks"][s["labels"] > 0]
        nested += any(bool((a <= b).all()) for i, a in enumerate(present) for j, b in enumerate(present) if i != j)
    assert set(classes.tolist()) <= {1, 2, 3, 4} and 0.5 <= (classes >= 2).mean() <= 0.85
    assert np.mean(overlapping) >= 0.6 and nested >= 0.1 * len(multi)


def test_every_object_stays_mostly_visible_and_partners_cooccur():
    pairs = Counter()
    for index in range(200):
        objects = layout_objects(image_rng("benchmark", 0, index), 96)
        shapes = [o["shape"] for o in objects]
        for seen, shape in zip(visible_masks(shapes, draw_order(objects)), shapes):
            assert seen.sum() >= MIN_VISIBLE * shape.sum()
        kinds = sorted({CLASS_NAMES[o["kind"]] for o in objects})
        pairs.update((a, b) for i, a in enumerate(kinds) for b in kinds[i + 1 :])
    partner_pairs = {tuple(sorted((a, b))) for a, partners in PARTNERS.items() for b in partners}
    share = sum(n for pair, n in pairs.items() if pair in partner_pairs) / sum(pairs.values())
    assert share > len(partner_pairs) / 15  # partners co-occur more often than the 6 of 15 pairs would by chance


def test_the_distractor_is_salient_and_belongs_to_no_class():
    rng = image_rng("benchmark", 0, 0)
    objects = layout_objects(rng, 96)
    distractor = place_distractor(np.random.default_rng(3), 96, [])
    image = np.full((3, 96, 96), 0.5, dtype=np.float32)
    paint_distractor(image, distractor)
    painted = (image != 0.5).any(0)
    assert painted.sum() > 50 and np.allclose(np.unique(image[:, painted]), [0.05, 0.95])  # black/white stripes
    clear = place_distractor(np.random.default_rng(4), 96, objects)
    if clear is not None:
        canvas = np.full((3, 96, 96), 0.5, dtype=np.float32)
        paint_distractor(canvas, clear)
        assert not ((canvas != 0.5).any(0) & np.any([o["shape"] for o in objects], axis=0)).any()
