"""The synthetic shapes dataset: determinism, split streams, mask/label consistency, contract."""
from __future__ import annotations

import hashlib

import pytest
import torch

from saliency_bench import Dataset, UserError
from saliency_bench.datasets import default_plugin
from saliency_bench.datasets.synthetic import CLASS_NAMES, ShapesDataset, load_shapes


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
    with pytest.raises(UserError, match="colour"):
        load_shapes(None, colour="red")


def test_index_out_of_range_raises_index_error():
    with pytest.raises(IndexError):
        ShapesDataset(32, "val", 2)[2]


def test_plugin_registers_shapes():
    specs = []
    default_plugin.register_datasets(specs.append)
    assert [s.name for s in specs] == ["shapes"] and specs[0].has_masks
