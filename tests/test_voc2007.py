"""PASCAL VOC 2007 loader on a tiny generated VOCdevkit: masks, labels, trials, subsets, errors, streaming."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from saliency_bench import UserError
from saliency_bench.datasets.voc2007 import VOC_CLASSES, load_voc2007, scaled_span
from voc_fixtures import make_voc_tree

SIZE = 50  # 100 px images scale by exactly 1/2, the 200 px wide one by 1/4
MODEL = SimpleNamespace(input_size=SIZE)
C = {name: i for i, name in enumerate(VOC_CLASSES)}


def rect_mask(*rects) -> torch.Tensor:
    """A ``[SIZE, SIZE]`` mask with the given ``(y0, y1, x0, x1)`` half-open rectangles set (worked out by hand)."""
    mask = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    for y0, y1, x0, x1 in rects:
        mask[y0:y1, x0:x1] = True
    return mask


@pytest.fixture()
def devkit(tmp_path):
    """The tiny VOCdevkit of voc_fixtures."""
    return make_voc_tree(tmp_path)


def test_masks_are_scaled_box_unions_with_difficult_boxes(devkit):
    dataset = load_voc2007(MODEL, root=devkit)
    first, second, third = dataset[0], dataset[1], dataset[2]
    # 000001: dog (11,21)-(40,60) -> x 5..19, y 10..29; person (51,1)-(100,50) plus difficult (1,81)-(20,100)
    assert torch.equal(first["masks"][C["dog"]], rect_mask((10, 30, 5, 20)))
    assert torch.equal(first["masks"][C["person"]], rect_mask((0, 25, 25, 50), (40, 50, 0, 10)))
    assert first["masks"].sum(dim=(1, 2)).nonzero().flatten().tolist() == sorted([C["dog"], C["person"]])
    # 000002: cat (21,21)-(80,80) -> 10..39 both ways
    assert torch.equal(second["masks"][C["cat"]], rect_mask((10, 40, 10, 40)))
    # 000003 is 200x100: x scales by 1/4, y by 1/2; bottle (151,51)-(200,100) -> x from floor(37.5) = 37
    assert torch.equal(third["masks"][C["car"]], rect_mask((0, 25, 0, 25)))
    assert torch.equal(third["masks"][C["bottle"]], rect_mask((25, 50, 37, 50)))


def test_labels_trials_and_multiclass_membership(devkit):
    dataset = load_voc2007(MODEL, root=devkit)
    samples = [dataset[i] for i in range(len(dataset))]
    labeled = [set(s["labels"].nonzero().flatten().tolist()) for s in samples]
    trials = [set(s["trials"].nonzero().flatten().tolist()) for s in samples]
    assert labeled == [{C["dog"], C["person"]}, {C["cat"]}, {C["car"], C["bottle"]}]
    # bottle's only box is difficult: labelled but not a trial (TorchRay)
    assert trials == [{C["dog"], C["person"]}, {C["cat"]}, {C["car"]}]
    assert dataset.multiclass_indices() == [0, 2]
    assert [s["index"] for s in samples] == [0, 1, 2]
    assert all(s["labels"].dtype == torch.float32 and s["labels"].shape == (20,) for s in samples)
    assert all(s["masks"].shape == (20, SIZE, SIZE) and s["trials"].dtype == torch.bool for s in samples)


def test_images_are_resized_to_the_model_input(devkit):
    dataset = load_voc2007(MODEL, root=devkit)
    image = dataset[2]["image"]  # 200x100 solid (40, 40, 200)
    assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.float32
    expected = torch.tensor([40, 40, 200]).view(3, 1, 1) / 255
    assert torch.allclose(image, expected.expand_as(image), atol=0.03)


def test_multiclass_only_and_split_selection(devkit):
    subset = load_voc2007(MODEL, root=devkit, multiclass_only="true")
    assert subset.image_ids == ["000001", "000003"]
    assert subset.multiclass_indices() == [0, 1]
    assert torch.equal(subset[1]["masks"], load_voc2007(MODEL, root=devkit)[2]["masks"])
    trainval = load_voc2007(MODEL, root=devkit, split="trainval")
    assert trainval.image_ids == ["000004"]
    assert set(trainval[0]["labels"].nonzero().flatten().tolist()) == {C["horse"], C["person"]}


@pytest.mark.parametrize("level", ["parent", "devkit", "voc2007"])
def test_root_may_be_parent_devkit_or_voc2007(devkit, level):
    root = {"parent": devkit.parent, "devkit": devkit, "voc2007": devkit / "VOC2007"}[level]
    assert load_voc2007(MODEL, root=root).image_ids == ["000001", "000002", "000003"]


def test_scaled_span_never_loses_a_box_and_clamps():
    assert scaled_span(12, 12, 100, 50) == (5, 6)  # a 1-px box keeps one resized pixel
    assert scaled_span(1, 500, 500, 224) == (0, 224)
    assert scaled_span(90, 120, 100, 50) == (44, 50)  # xmax past the border is clamped


def test_missing_root_and_split_file(devkit, tmp_path):
    with pytest.raises(UserError, match="--data-root"):
        load_voc2007(MODEL, root=None)
    with pytest.raises(UserError, match="no VOC2007 folder"):
        load_voc2007(MODEL, root=devkit / "VOC2007" / "JPEGImages")
    with pytest.raises(UserError, match="is not a folder"):
        load_voc2007(MODEL, root=tmp_path / "nowhere")
    with pytest.raises(UserError, match=r"ImageSets/Main/val\.txt"):
        load_voc2007(MODEL, root=devkit, split="val")


def test_bad_annotations_name_the_file(devkit):
    annotations = devkit / "VOC2007" / "Annotations"
    (annotations / "000002.xml").write_text("<annotation><object><name>cat</name>")
    with pytest.raises(UserError, match=r"000002\.xml is not valid XML") as error:
        load_voc2007(MODEL, root=devkit)
    assert "\n" not in str(error.value)
    (annotations / "000002.xml").write_text("<annotation><object><name>unicorn</name></object></annotation>")
    with pytest.raises(UserError, match=r"000002\.xml: unknown VOC class 'unicorn'"):
        load_voc2007(MODEL, root=devkit)
    (annotations / "000002.xml").unlink()
    with pytest.raises(UserError, match=r"000002\.xml does not exist"):
        load_voc2007(MODEL, root=devkit)


def test_unreadable_image_names_the_file(devkit):
    dataset = load_voc2007(MODEL, root=devkit)
    (devkit / "VOC2007" / "JPEGImages" / "000002.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match=r"cannot read image .*000002\.jpg") as error:
        dataset[1]
    assert "\n" not in str(error.value)
    (devkit / "VOC2007" / "JPEGImages" / "000002.jpg").unlink()
    with pytest.raises(UserError, match=r"image .*000002\.jpg does not exist"):
        dataset[1]


def test_unknown_option_is_a_user_error(devkit):
    with pytest.raises(UserError, match="no option"):
        load_voc2007(MODEL, root=devkit, color="blue")
    with pytest.raises(UserError, match="not a boolean"):
        load_voc2007(MODEL, root=devkit, multiclass_only="maybe")


def test_streams_through_dataloader_workers(devkit):
    """Lazy samples stream through worker processes; a worker's unreadable image still surfaces as UserError."""
    dataset = load_voc2007(MODEL, root=devkit)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=1)
    batches = list(loader)
    assert [b["masks"].shape for b in batches] == [(2, 20, SIZE, SIZE), (1, 20, SIZE, SIZE)]
    assert torch.equal(batches[1]["masks"][0], dataset[2]["masks"])
    (devkit / "VOC2007" / "JPEGImages" / "000003.jpg").write_bytes(b"")
    with pytest.raises(UserError, match=r"000003\.jpg"):
        list(torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=1))
