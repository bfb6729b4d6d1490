"""The embedded default model: architecture, shipped weights, SHA-256 check, held-out accuracy."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from saliency_bench import ModelWrapper, UserError
from saliency_bench.datasets.scenes import SceneShapesDataset
from saliency_bench.datasets.synthetic import CLASS_NAMES
from saliency_bench.models import default_plugin
from saliency_bench.models.tiny_vgg import CARD_FILE, WEIGHTS_FILE, TinyVGG, load_tiny_vgg, sha256_of
from saliency_bench.models.training import mean_average_precision, predict


@pytest.fixture(scope="module")
def shipped() -> ModelWrapper:
    return load_tiny_vgg()


def test_architecture_has_five_blocks_and_output_layer_first():
    wrapper = ModelWrapper(TinyVGG(num_classes=6), name="t", class_names=CLASS_NAMES, input_size=96)
    assert list(wrapper.block_names) == ["B1", "B2", "B3", "B4", "B5"]
    assert all(isinstance(block, torch.nn.ReLU) for block in wrapper.blocks.values())
    assert wrapper.randomization_order[0] == "classifier"
    assert wrapper.randomization_order[-1] == "features.0"
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in wrapper.network.modules())


def test_last_block_is_input_over_16():
    network = TinyVGG(num_classes=6).eval()
    seen = {}

    def record(module, inputs, output):
        seen["shape"] = output.shape

    handle = network.features[-2].register_forward_hook(record)
    try:
        logits = network(torch.zeros(2, 3, 96, 96))
    finally:
        handle.remove()
    assert logits.shape == (2, 6) and seen["shape"][-2:] == (6, 6)


def test_shipped_weights_match_their_card(shipped):
    card = json.loads(CARD_FILE.read_text())
    assert sha256_of(WEIGHTS_FILE) == card["sha256"]
    assert WEIGHTS_FILE.stat().st_size < 5_000_000
    assert shipped.name == "tiny_vgg" and shipped.class_names == list(CLASS_NAMES)
    assert shipped.input_size == card["input_size"] and list(shipped.mean) == card["mean"]


def test_shipped_weights_reach_held_out_map(shipped):
    dataset = SceneShapesDataset(shipped.input_size, "benchmark", 300)
    logits, labels = predict(shipped.network, dataset)
    assert mean_average_precision(logits, labels) >= 0.97  # the model card's requirement (README)


def copy_weights(tmp_path):
    shutil.copy(WEIGHTS_FILE, tmp_path / "tiny_vgg.pt")
    shutil.copy(CARD_FILE, tmp_path / "tiny_vgg.json")
    return tmp_path / "tiny_vgg.pt"


def test_corrupt_weights_raise_user_error_naming_the_file(tmp_path):
    path = copy_weights(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="tiny_vgg.pt") as info:
        load_tiny_vgg(path)
    assert "corrupt" in str(info.value) and "\n" not in str(info.value)


def test_missing_weights_raise_user_error_naming_the_file(tmp_path):
    path = copy_weights(tmp_path)
    path.unlink()
    with pytest.raises(UserError, match="tiny_vgg.pt") as info:
        load_tiny_vgg(path)
    assert "missing" in str(info.value) and "\n" not in str(info.value)


def test_missing_card_raises_user_error_naming_it(tmp_path):
    path = copy_weights(tmp_path)
    (tmp_path / "tiny_vgg.json").unlink()
    with pytest.raises(UserError, match="tiny_vgg.json"):
        load_tiny_vgg(path)


def test_plugin_registers_tiny_vgg_with_shapes_default():
    specs = []
    default_plugin.register_models(specs.append)
    assert [(s.name, s.default_dataset) for s in specs] == [
        ("tiny_vgg", "shapes"), ("tiny_resnet", "shapes"), ("tiny_vit", "shapes")]
    assert [s.paper_columns for s in specs] == [True, False, False]  # the paper's VGG-16 columns: VGG only
