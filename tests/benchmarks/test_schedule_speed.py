"""The run's schedule: maps shared by the three map checks vs each check alone; SmoothGrad/IG chunking vs captum.

``pytest tests/benchmarks --benchmark-enable -k "schedule or costly"`` times them at the README's sizes (32 images
of the embedded data; 64 images for the costly families); the default test run smoke-tests them on 8.
"""
import pytest
import torch

from saliency_bench import MethodGroup, Suite
from saliency_bench.checks.shared_maps import run_shared

from bench_registry import REGISTRY
from conftest import timing_enabled

MAP_CHECKS = ("pointing_game", "restricted_pointing_game", "class_sensitivity")


@pytest.fixture(scope="module")
def map_checks(default_model, request):
    """A suite of the embedded data (32 images when timing) and the three map checks with their run parameters."""
    from saliency_bench.checks.params import check_parameters

    dataset_spec = REGISTRY.datasets[REGISTRY.models["tiny_vgg"].obj.default_dataset]
    size = 32 if timing_enabled(request.config) else 8
    suite = Suite(model=default_model, dataset=dataset_spec.obj.load(default_model), device=torch.device("cpu"),
                  batch_size=size, limit=size, progress=False)
    checks = [(REGISTRY.checks[name].obj, None) for name in MAP_CHECKS]
    return suite, [(check, check_parameters(check, suite, {})) for check, _ in checks]


def _gradient_group(model):
    return MethodGroup([REGISTRY.methods["gradient"].obj], model)


@pytest.mark.benchmark(group="schedule")
def test_map_checks_each_alone(benchmark, map_checks):
    """The per-check schedule: each check computes its own maps (the top class's three times)."""
    suite, checks = map_checks

    def alone():
        return {check.name: check.run_images(suite, _gradient_group(suite.model), params) for check, params in checks}

    values = benchmark(alone)
    assert all("gradient" in values[name] for name in MAP_CHECKS)


@pytest.mark.benchmark(group="schedule")
def test_map_checks_sharing_their_maps(benchmark, map_checks):
    """The run's schedule: the union of the three checks' maps, each computed once."""
    suite, checks = map_checks
    values = benchmark(lambda: run_shared(suite, _gradient_group(suite.model), checks))
    assert all("gradient" in values[name] for name in MAP_CHECKS)


@pytest.fixture(scope="module")
def costly_batch(default_model, request):
    from saliency_bench.run.speed import bench_batch

    return bench_batch(default_model, 64 if timing_enabled(request.config) else 4, torch.device("cpu"))


def _costly(name, **settings):
    """The registered method with other settings (chunk size), as its own object."""
    registered = REGISTRY.methods[name].obj
    kind = type(registered)
    if name == "smoothgrad":
        return kind(n_samples=registered.n_samples, noise_level=registered.noise_level, seed=registered.seed, **settings)
    return kind(n_steps=registered.n_steps, method=registered.method, **settings)


@pytest.mark.benchmark(group="costly-families")
@pytest.mark.parametrize("name", ["smoothgrad", "integrated_gradients"])
@pytest.mark.parametrize("chunk", ["default", "one batch"])
def test_costly_family_chunking(benchmark, default_model, costly_batch, name, chunk):
    """16 samples (nodes) per image, all images' samples in chunks of 32 inputs (the CPU default) or in one batch."""
    inputs, targets = costly_batch
    samples = REGISTRY.methods[name].obj.n_samples if name == "smoothgrad" else REGISTRY.methods[name].obj.n_steps
    method = _costly(name, max_batch=None if chunk == "default" else samples * len(inputs))
    maps = benchmark(method.attribute, default_model, inputs, targets)
    assert maps.shape == (len(inputs), *inputs.shape[-2:]) and torch.isfinite(maps).all()


@pytest.mark.benchmark(group="costly-families")
@pytest.mark.parametrize("name", ["smoothgrad", "integrated_gradients"])
def test_costly_family_captum(benchmark, default_model, costly_batch, name):
    """captum's NoiseTunnel(Saliency) / IntegratedGradients at the same sample count, all samples in one batch."""
    pytest.importorskip("captum")
    peers = dict(REGISTRY.methods[name].obj.peers(default_model))
    assert len(peers) == 1
    attribution = benchmark(next(iter(peers.values())), *costly_batch)
    assert attribution.shape == costly_batch[0].shape
