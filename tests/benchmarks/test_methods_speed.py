"""Time of each method for one batch beside the floor (one forward + one backward to the input)."""
import pytest

from saliency_bench import MethodGroup
from saliency_bench.run.speed import floor_pass, variant_groups

from bench_registry import METHODS, REGISTRY


def _shared_groups():
    """Every block family of a shared pass (gradcam@B1..B5) and each whole shared group, as `bench` times them."""
    return variant_groups(METHODS, REGISTRY)


# GradMid is undefined at the last block under a global-average-pool head (tiny_vgg's), defined under VGG-16's.
UNDEFINED = {"tiny_vgg": {"gradmid@B5"}, "vgg16": set()}


def _attribute(registry, names, model, batch):
    group = MethodGroup([registry.methods[n].obj for n in names], model)
    inputs, targets = batch
    maps = group(inputs, targets)
    assert not group.failures, group.failures
    assert set(group.not_applicable) == UNDEFINED[model.name] & set(names)
    assert set(maps) == set(names) - set(group.not_applicable)
    return maps


@pytest.mark.benchmark(group="default-model")
def test_floor_default(benchmark, default_model, default_batch):
    grad = benchmark(floor_pass, default_model, *default_batch)
    assert grad.shape == default_batch[0].shape


@pytest.mark.benchmark(group="default-model")
@pytest.mark.parametrize("name", METHODS)
def test_method_default(benchmark, registry, default_model, default_batch, name):
    benchmark(_attribute, registry, [name], default_model, default_batch)


@pytest.mark.benchmark(group="default-model")
@pytest.mark.parametrize("key", sorted(_shared_groups()))
def test_shared_group_default(benchmark, registry, default_model, default_batch, key):
    benchmark(_attribute, registry, _shared_groups()[key], default_model, default_batch)


@pytest.mark.benchmark(group="vgg16")
def test_floor_vgg16(benchmark, vgg16, vgg16_batch):
    grad = benchmark(floor_pass, vgg16, *vgg16_batch)
    assert grad.shape == vgg16_batch[0].shape


@pytest.mark.benchmark(group="vgg16")
@pytest.mark.parametrize("name", METHODS)
def test_method_vgg16(benchmark, registry, vgg16, vgg16_batch, name):
    benchmark(_attribute, registry, [name], vgg16, vgg16_batch)
