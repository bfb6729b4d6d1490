"""torchvision VGG-16 loader: weights file, hub cache, download gate, heads, TorchRay layout, bad files.

State dicts are written with stride-0 (expanded) tensors, so a 138M-parameter file is a few kB on disk.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import vgg11

from saliency_bench import UserError
from saliency_bench.models.loading import read_state_dict
from saliency_bench.models import vgg16 as vgg16_module
from saliency_bench.models.vgg16 import HUB_FILE, build_vgg16, load_vgg16


def light_state_dict(network: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict for ``network`` (may live on ``meta``): one random value per output unit, expanded."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, reference in network.state_dict().items():
        shape = tuple(reference.shape)
        values = torch.randn(shape[0], generator=generator) * 0.01
        state[key] = values.view(shape[0], *[1] * (len(shape) - 1)).expand(shape)
    return state


def assert_loaded(wrapper, state) -> None:
    """Every parameter equals the state dict entry of the same name, on the CPU, trainable."""
    parameters = dict(wrapper.network.named_parameters())
    assert parameters.keys() == state.keys()
    for key, value in state.items():
        assert parameters[key].device.type == "cpu" and parameters[key].requires_grad
        assert torch.equal(parameters[key], value), key


@pytest.fixture(scope="module")
def imagenet_state():
    """A light 1000-class state dict shared by the module's tests."""
    return light_state_dict(build_vgg16(1000))


@pytest.fixture()
def empty_torch_home(tmp_path, monkeypatch):
    """An empty TORCH_HOME (no hub cache) and a download function that fails the test if called."""
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))

    def refuse():
        """Stand-in for the download: must never run here."""
        raise AssertionError("downloaded without allow_download")

    monkeypatch.setattr(vgg16_module, "download_imagenet_state_dict", refuse)
    return home


def test_loads_a_state_dict_file(tmp_path, imagenet_state, empty_torch_home):
    path = tmp_path / "vgg16.pth"
    torch.save(imagenet_state, path)
    wrapper = load_vgg16(weights=path)
    assert_loaded(wrapper, imagenet_state)
    assert wrapper.input_size == 224 and wrapper.num_classes == 1000 and wrapper.multilabel is False
    assert wrapper.class_names[0] == "tench"
    assert wrapper.mean == (0.485, 0.456, 0.406) and wrapper.std == (0.229, 0.224, 0.225)
    assert wrapper.block_names["B5"] == "features.29" and wrapper.block_names["B1"] == "features.3"
    assert wrapper.randomization_order[0] == "classifier.6" and wrapper.randomization_order[-1] == "features.0"
    assert not any(getattr(m, "inplace", False) for m in wrapper.network.modules())
    logits = wrapper(torch.rand(1, 3, 32, 32))
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()


def test_hub_cache_is_used_without_download(imagenet_state, empty_torch_home):
    checkpoints = empty_torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(imagenet_state, checkpoints / HUB_FILE)
    assert_loaded(load_vgg16(), imagenet_state)


def test_no_weights_is_a_one_line_error(empty_torch_home):
    with pytest.raises(UserError, match="--weights PATH.*--allow-download") as error:
        load_vgg16()
    assert "\n" not in str(error.value) and HUB_FILE in str(error.value)


def test_download_only_when_allowed(imagenet_state, empty_torch_home, monkeypatch):
    calls = []
    monkeypatch.setattr(vgg16_module, "download_imagenet_state_dict", lambda: calls.append(1) or imagenet_state)
    with pytest.raises(UserError):
        load_vgg16(allow_download=False)
    assert calls == []
    assert_loaded(load_vgg16(allow_download=True), imagenet_state)
    assert calls == [1]


def test_voc_head(tmp_path, imagenet_state, empty_torch_home):
    voc_state = light_state_dict(build_vgg16(20), seed=1)
    torch.save(voc_state, tmp_path / "voc.pth")
    wrapper = load_vgg16(weights=tmp_path / "voc.pth", head="voc")
    assert wrapper.class_names[:2] == ["aeroplane", "bicycle"] and wrapper.num_classes == 20
    assert wrapper.multilabel is True
    assert_loaded(wrapper, voc_state)
    torch.save(imagenet_state, tmp_path / "imagenet.pth")
    wrong_head = r"imagenet\.pth holds a 1000-class classifier\.6.*load it with head 'imagenet'"
    with pytest.raises(UserError, match=wrong_head):
        load_vgg16(weights=tmp_path / "imagenet.pth", head="voc")
    with pytest.raises(UserError, match=r"head 'voc' needs --weights"):
        load_vgg16(head="voc", allow_download=True)


def test_torchray_caffe_layout_is_converted(tmp_path, empty_torch_home):
    state = light_state_dict(build_vgg16(20), seed=2)
    state["features.0.weight"] = torch.randn(64, 3, 3, 3)  # distinct per input channel, to see the BGR flip
    renames = {"classifier.3.": "classifier.2.", "classifier.6.": "classifier.4."}
    caffe = {}
    for key, value in state.items():
        for new, old in renames.items():
            key = key.replace(new, old)
        caffe[key] = value
    caffe["features.0.weight"] = state["features.0.weight"][:, [2, 1, 0]]
    caffe["classifier.0.weight"] = state["classifier.0.weight"].reshape(4096, 512, 7, 7)
    torch.save(caffe, tmp_path / "vgg16_voc-caffe.pth.tar")
    wrapper = load_vgg16(weights=tmp_path / "vgg16_voc-caffe.pth.tar", head="voc")
    assert_loaded(wrapper, state)
    assert wrapper.std == pytest.approx((1 / 255,) * 3) and wrapper.mean[0] == pytest.approx(123.68 / 255)
    assert all(m.ceil_mode for m in wrapper.network.modules() if isinstance(m, nn.MaxPool2d))


def test_wrong_architecture_names_file_and_first_mismatch(tmp_path, empty_torch_home):
    with torch.device("meta"):
        small = vgg11()
    torch.save(light_state_dict(small), tmp_path / "vgg11.pth")
    with pytest.raises(UserError, match=r"vgg11\.pth does not fit the architecture: missing key 'features\.2\.weight'"):
        load_vgg16(weights=tmp_path / "vgg11.pth")


def test_shape_mismatch_and_unexpected_key(tmp_path, imagenet_state, empty_torch_home):
    bad = dict(imagenet_state, **{"features.0.weight": torch.zeros(64, 1, 3, 3)})
    torch.save(bad, tmp_path / "gray.pth")
    with pytest.raises(UserError, match=r"gray\.pth .*'features\.0\.weight' has shape \[64, 1, 3, 3\]"):
        load_vgg16(weights=tmp_path / "gray.pth")
    extra = dict(imagenet_state, **{"features.1.weight": torch.zeros(1)})
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(UserError, match=r"extra\.pth .*unexpected key 'features\.1\.weight'"):
        load_vgg16(weights=tmp_path / "extra.pth")


@pytest.mark.parametrize("content", [b"", b"garbage bytes", "pickled-module"])
def test_corrupt_or_unsafe_file_names_the_file(tmp_path, content, empty_torch_home):
    path = tmp_path / "broken.pth"
    if content == "pickled-module":
        torch.save(nn.Linear(2, 2), path)  # refused by weights_only=True
    else:
        path.write_bytes(content)
    with pytest.raises(UserError, match=r"broken\.pth is not a readable state dict") as error:
        load_vgg16(weights=path)
    assert "\n" not in str(error.value)


def test_missing_weights_file(tmp_path, empty_torch_home):
    with pytest.raises(UserError, match=r"absent\.pth does not exist"):
        load_vgg16(weights=tmp_path / "absent.pth")


def test_checkpoint_wrappers_are_unwrapped(tmp_path):
    state = {"0.weight": torch.ones(2, 2), "0.bias": torch.zeros(2)}
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, tmp_path / "ckpt.pth")
    loaded = read_state_dict(tmp_path / "ckpt.pth")
    assert loaded.keys() == state.keys() and torch.equal(loaded["0.weight"], state["0.weight"])
    torch.save({"weight": torch.ones(1), "note": "text"}, tmp_path / "mixed.pth")
    with pytest.raises(UserError, match=r"mixed\.pth: entry 'note' is str, not a tensor"):
        read_state_dict(tmp_path / "mixed.pth")


def test_unknown_option_or_head(empty_torch_home):
    with pytest.raises(UserError, match="no option"):
        load_vgg16(pretrained=True)
    with pytest.raises(UserError, match="unknown head"):
        load_vgg16(head="coco")
