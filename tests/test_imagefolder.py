"""Image-folder loader on a tiny generated tree: class indices, mapping files, resize+crop, order, errors."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from saliency_bench import UserError
from saliency_bench.datasets.imagefolder import load_imagefolder
from voc_fixtures import folder_color, make_image_folder

SIZE = 28  # shorter side resized to round(28 * 256 / 224) = 32, then a 28 px centre crop
MODEL = SimpleNamespace(input_size=SIZE)
RED, BLUE = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])


def color(rank: int) -> torch.Tensor:
    """The middle colour of the ``rank``-th written image, in [0,1]."""
    return torch.tensor(folder_color(rank), dtype=torch.float32) / 255


def label_of(sample) -> int:
    """The class index of a one-hot sample."""
    return int(sample["labels"].argmax())


@pytest.fixture()
def root(tmp_path):
    """The tiny image folder of voc_fixtures, with its imagenet_class_index.json beside it."""
    return make_image_folder(tmp_path, with_index=True)


def test_sorted_folder_indices_and_round_robin_order(root):
    dataset = load_imagefolder(MODEL, root=root)
    assert dataset.class_names == ["n01440764", "n01443537"]
    samples = [dataset[i] for i in range(len(dataset))]
    # round robin: first image of each class, then the second of each (a, c, b, d)
    assert [label_of(s) for s in samples] == [0, 1, 0, 1]
    centers = [s["image"][:, SIZE // 2, SIZE // 2] for s in samples]
    for center, rank in zip(centers, [0, 2, 1, 3]):
        assert torch.allclose(center, color(rank), atol=0.03)
    ordered = load_imagefolder(MODEL, root=root, order="sorted")
    assert [label_of(ordered[i]) for i in range(4)] == [0, 0, 1, 1]


def test_imagenet_class_index_file(root):
    dataset = load_imagefolder(MODEL, root=root, class_index=root.parent / "imagenet_class_index.json")
    assert dataset.class_names == ["tench", "goldfish", "great_white_shark"]
    assert [dataset[i]["labels"].tolist() for i in range(2)] == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def test_plain_folder_to_index_mapping(root, tmp_path):
    mapping = tmp_path / "plain.json"
    mapping.write_text(json.dumps({"n01440764": 5, "n01443537": 2}))
    dataset = load_imagefolder(MODEL, root=root, class_index=str(mapping))
    assert len(dataset.class_names) == 6
    assert dataset.class_names[2] == "n01443537" and dataset.class_names[5] == "n01440764"
    assert dataset.class_names[0] == "class_0"
    assert [label_of(dataset[i]) for i in range(4)] == [5, 2, 5, 2]


def test_shorter_side_resize_then_center_crop(root):
    dataset = load_imagefolder(MODEL, root=root, order="sorted")
    landscape, portrait = dataset[0]["image"], dataset[1]["image"]  # 80x60 and 60x80, 8 px red/blue side bands
    assert landscape.shape == portrait.shape == (3, SIZE, SIZE)
    # landscape: 80x60 -> 42x32, the crop keeps columns 7..34 and drops both bands
    assert torch.allclose(landscape, color(0).view(3, 1, 1).expand_as(landscape), atol=0.03)
    # portrait: 60x80 -> 32x42, the crop keeps columns 2..29, inside both bands
    assert torch.allclose(portrait[:, :, 0], RED.view(3, 1).expand(3, SIZE), atol=0.03)
    assert torch.allclose(portrait[:, :, -1], BLUE.view(3, 1).expand(3, SIZE), atol=0.03)
    assert torch.allclose(portrait[:, SIZE // 2, SIZE // 2], color(1), atol=0.03)


def test_no_masks_and_collates(root):
    dataset = load_imagefolder(MODEL, root=root, class_index=root.parent / "imagenet_class_index.json")
    assert dataset.has_masks is False
    sample = dataset[0]
    assert sample["masks"].shape == (3, 1, 1) and not sample["masks"].any()
    assert torch.equal(sample["trials"], sample["labels"] > 0)
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    assert batch["image"].shape == (4, 3, SIZE, SIZE) and batch["labels"].shape == (4, 3)
    assert batch["index"].tolist() == [0, 1, 2, 3]


def test_split_subfolder(root, tmp_path):
    assert len(load_imagefolder(MODEL, root=tmp_path, split="images")) == 4
    with pytest.raises(UserError, match=r"val does not exist"):
        load_imagefolder(MODEL, root=tmp_path, split="val")


def test_missing_or_empty_root(tmp_path):
    with pytest.raises(UserError, match="--data-root"):
        load_imagefolder(MODEL, root=None)
    with pytest.raises(UserError, match="nowhere does not exist"):
        load_imagefolder(MODEL, root=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no class folders"):
        load_imagefolder(MODEL, root=tmp_path / "empty")
    (tmp_path / "empty" / "cls").mkdir()
    with pytest.raises(UserError, match="no images"):
        load_imagefolder(MODEL, root=tmp_path / "empty")


def test_bad_mapping_files_name_the_file(root, tmp_path):
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"n01440764": 0}))
    with pytest.raises(UserError, match=r"n01443537 is not in class index file .*partial\.json"):
        load_imagefolder(MODEL, root=root, class_index=partial)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(UserError, match=r"broken\.json is not valid JSON"):
        load_imagefolder(MODEL, root=root, class_index=broken)
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"n01440764": "zero"}))
    with pytest.raises(UserError, match=r"odd\.json: expected"):
        load_imagefolder(MODEL, root=root, class_index=odd)
    with pytest.raises(UserError, match=r"absent\.json does not exist"):
        load_imagefolder(MODEL, root=root, class_index=tmp_path / "absent.json")


def test_unreadable_image_names_the_file(root):
    (root / "n01443537" / "c.png").write_bytes(b"\x89PNG broken")
    dataset = load_imagefolder(MODEL, root=root, order="sorted")
    with pytest.raises(UserError, match=r"cannot read image .*c\.png") as error:
        dataset[2]
    assert "\n" not in str(error.value)


def test_unknown_option_or_order(root):
    with pytest.raises(UserError, match="no option"):
        load_imagefolder(MODEL, root=root, shuffle=True)
    with pytest.raises(UserError, match="unknown order"):
        load_imagefolder(MODEL, root=root, order="random")
