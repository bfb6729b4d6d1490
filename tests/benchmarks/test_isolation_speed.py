"""What the model guard costs per method call (verify after the call) against the floor (forward + backward)."""
import pytest
import torch

from saliency_bench.harness.isolation import ModelGuard
from saliency_bench.run.speed import floor_pass


@pytest.mark.benchmark(group="isolation")
def test_guard_changes_default_model(benchmark, default_model):
    guard = ModelGuard(default_model.network)
    assert benchmark(guard.changes) == []


@pytest.mark.benchmark(group="isolation")
def test_guard_changes_vgg16(benchmark, vgg16):
    guard = ModelGuard(vgg16.network)
    assert benchmark(guard.changes) == []


@pytest.mark.benchmark(group="isolation")
def test_floor_default_model(benchmark, default_model, default_batch):
    inputs, targets = default_batch
    benchmark(floor_pass, default_model, inputs, targets)
