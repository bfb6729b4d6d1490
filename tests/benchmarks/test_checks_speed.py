"""Per-check overhead: HOG + correlations for a batch of maps, the bootstrap, the cascade's re-initialisation."""
import numpy as np
import pytest
import torch

from saliency_bench.checks.cascade import random_parameters, randomize_layer, restore_layers
from saliency_bench.checks.similarity import hog_spearman, spearman, ssim_minmax
from saliency_bench.checks.stats import bootstrap_ci
from saliency_bench import MethodGroup
from saliency_bench.checks.randomization import cascade_step


@pytest.fixture(scope="module")
def maps():
    generator = torch.Generator().manual_seed(0)
    return torch.rand(64, 96, 96, generator=generator), torch.rand(64, 96, 96, generator=generator)


@pytest.mark.benchmark(group="check-overhead")
def test_hog_spearman_batch(benchmark, maps):
    values = benchmark(hog_spearman, *maps, cell=7)
    assert values.shape == (64,)


@pytest.mark.benchmark(group="check-overhead")
def test_spearman_and_ssim_batch(benchmark, maps):
    def both():
        return spearman(maps[0].flatten(1), maps[1].flatten(1)), ssim_minmax(*maps)

    rho, similarity = benchmark(both)
    assert rho.shape == (64,) and similarity.shape == (64,)


@pytest.mark.benchmark(group="check-overhead")
def test_bootstrap_1000(benchmark):
    values = np.random.default_rng(0).random(1000)
    low, high = benchmark(bootstrap_ci, values, n_boot=1000, seed=0)
    assert low < values.mean() < high


@pytest.mark.benchmark(group="check-overhead")
def test_randomization_reinit_cascade(benchmark, default_model):
    order = default_model.randomization_order
    values = random_parameters(default_model, order, 0.01, 0.0, seed=0)
    twin = default_model.copy()

    def cascade():
        restore_layers(twin, default_model, order)
        for layer, layer_values in zip(order, values):
            randomize_layer(twin, layer, layer_values)

    benchmark(cascade)
    first = twin.module(order[-1])
    assert not torch.equal(first.weight, default_model.module(order[-1]).weight)


@pytest.mark.benchmark(group="default-model")
def test_randomization_step_per_attribution(benchmark, registry, default_model, default_batch):
    """One cascade step as the check runs it: gradient maps of the model copy plus all four similarities."""
    name = "gradient" if "gradient" in registry.methods else sorted(registry.methods)[0]
    group = MethodGroup([registry.methods[name].obj], default_model)
    benchmark(cascade_step(default_model, group, *default_batch))
    assert not group.failures
