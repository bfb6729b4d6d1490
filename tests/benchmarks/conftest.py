"""Fixtures of the speed suite: every installed method, the default model, torchvision VGG-16.

With benchmarks disabled (the default test run) each benchmark runs once as a smoke test on small
inputs; ``pytest tests/benchmarks --benchmark-enable`` times them at the sizes the README reports.
"""
import pytest
import torch
import torchvision

from saliency_bench import ModelWrapper
from saliency_bench.harness.allocator import keep_freed_memory
from saliency_bench.harness.precision import Precision, default_channels_last
from saliency_bench.run.speed import bench_batch

from bench_registry import REGISTRY


def timing_enabled(config) -> bool:
    """True when pytest-benchmark times (``--benchmark-enable`` beats the ``--benchmark-disable`` in addopts)."""
    return bool(config.getoption("benchmark_enable")) or not config.getoption("benchmark_disable")


@pytest.fixture(scope="session", autouse=True)
def allocator(request):
    """Time under the allocator settings the CLI uses (saliency_bench.harness.allocator), only when timing."""
    if timing_enabled(request.config):
        keep_freed_memory()


@pytest.fixture(scope="session")
def registry():
    return REGISTRY


@pytest.fixture(scope="session")
def default_model():
    """The embedded model in the layout a run uses on the CPU (``precision.default_channels_last``)."""
    model = REGISTRY.models["tiny_vgg"].obj.load()
    return model.set_precision(Precision("fp32", default_channels_last(model.network, torch.device("cpu"))))


@pytest.fixture(scope="session")
def default_batch(default_model, request):
    size = 64 if timing_enabled(request.config) else 8
    return bench_batch(default_model, size, torch.device("cpu"))


@pytest.fixture(scope="session")
def vgg16(request):
    size = 224 if timing_enabled(request.config) else 64
    torch.manual_seed(0)
    net = torchvision.models.vgg16(weights=None)
    return ModelWrapper(net, name="vgg16", class_names=[str(i) for i in range(1000)], input_size=size)


@pytest.fixture(scope="session")
def vgg16_batch(vgg16, request):
    return bench_batch(vgg16, 8 if timing_enabled(request.config) else 2, torch.device("cpu"))
