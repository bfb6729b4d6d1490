"""Model wrapper: blocks B1..B5 and the randomisation order, derived on torchvision VGG-11/16."""
import pytest
import torch
import torchvision

from fakes import tiny_vgg
from saliency_bench import ModelWrapper, derive_blocks


@pytest.fixture(scope="module")
def vgg16():
    return torchvision.models.vgg16(weights=None)


def test_vgg16_blocks_are_last_relu_of_each_block(vgg16):
    wrapper = ModelWrapper(vgg16, name="vgg16", class_names=[str(i) for i in range(1000)], input_size=224)
    assert wrapper.block_names == {
        "B1": "features.3", "B2": "features.8", "B3": "features.15", "B4": "features.22", "B5": "features.29"
    }
    assert all(isinstance(m, torch.nn.ReLU) for m in wrapper.blocks.values())


def test_vgg16_randomization_order_starts_at_logits(vgg16):
    wrapper = ModelWrapper(vgg16, name="vgg16", class_names=["x"], input_size=224)
    order = wrapper.randomization_order
    assert order[:3] == ["classifier.6", "classifier.3", "classifier.0"]
    assert order[-1] == "features.0"
    assert len(order) == 16  # 13 conv + 3 linear


def test_vgg11_blocks_and_order():
    net = torchvision.models.vgg11(weights=None)
    wrapper = ModelWrapper(net, name="vgg11", class_names=["x"], input_size=224)
    assert wrapper.block_names == {
        "B1": "features.1", "B2": "features.4", "B3": "features.9", "B4": "features.14", "B5": "features.19"
    }
    assert len(wrapper.randomization_order) == 11 and wrapper.randomization_order[0] == "classifier.6"


def test_block_outputs_are_the_activation_before_each_pool():
    net = tiny_vgg()
    wrapper = ModelWrapper(net, name="t", class_names=["a", "b", "c"], input_size=32)
    seen = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, b=b: seen.__setitem__(b, o.shape)) for b, m in wrapper.blocks.items()]
    try:
        wrapper(torch.rand(1, 3, 32, 32))
    finally:
        for h in hooks:
            h.remove()
    assert [seen[f"B{i}"][-1] for i in range(1, 6)] == [32, 16, 8, 4, 2]


def test_no_blocks_is_an_error():
    with pytest.raises(ValueError, match="no ReLU/max-pool blocks"):
        derive_blocks(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3)))


def test_copy_is_independent():
    wrapper = ModelWrapper(tiny_vgg(), name="t", class_names=["a", "b", "c"], input_size=32)
    twin = wrapper.copy()
    with torch.no_grad():
        twin.module("classifier").weight.zero_()
    assert wrapper.module("classifier").weight.abs().sum() > 0
    assert twin.block_names == wrapper.block_names


def test_normalize_roundtrip():
    wrapper = ModelWrapper(tiny_vgg(), name="t", class_names=["a"], input_size=32)
    images = torch.rand(2, 3, 32, 32)
    assert torch.allclose(wrapper.denormalize(wrapper.normalize(images)), images, atol=1e-6)
