"""The batched torch similarities against their references: skimage HOG and SSIM, scipy Spearman."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import rankdata, spearmanr
from skimage.feature import hog as skimage_hog
from skimage.metrics import structural_similarity

from saliency_bench.checks.similarity import average_ranks, hog, hog_spearman, minmax, spearman, ssim, ssim_minmax


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def sample_maps(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Noise, a quantised (tied, flat-region) map, a filled square and a smooth blob."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    square = np.zeros(shape)
    square[shape[0] // 4 : shape[0] // 2, shape[1] // 5 : shape[1] // 2] = 1.0
    blob = np.exp(-((rows - shape[0] / 3) ** 2 + (cols - shape[1] / 2) ** 2) / 40.0)
    return np.stack([rng.random(shape), np.round(rng.random(shape) * 3) / 3, square, blob])


@pytest.mark.parametrize("shape, cell, block", [((32, 32), 2, 3), ((37, 45), 4, 3), ((64, 48), 5, 2), ((30, 30), 3, 1)])
def test_hog_matches_skimage(shape, cell, block):
    maps = sample_maps(shape)
    ours = hog(torch.from_numpy(maps), cell, block).numpy()
    reference = np.stack(
        [skimage_hog(m, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(block, block)) for m in maps]
    )
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_hog_of_a_constant_map_is_zero_and_too_small_maps_are_refused():
    assert torch.count_nonzero(hog(torch.full((1, 16, 16), 0.3), 2)) == 0
    with pytest.raises(ValueError, match="too small"):
        hog(torch.zeros(1, 8, 8), 4, 3)


def test_average_ranks_match_scipy_with_ties():
    values = np.random.default_rng(1).integers(0, 5, size=(3, 50)).astype(float)
    np.testing.assert_array_equal(average_ranks(torch.from_numpy(values)).numpy(), rankdata(values, axis=1))


def test_spearman_matches_scipy_with_and_without_ties():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.random((3, 300)), rng.integers(0, 4, (3, 300))])
    y = np.concatenate([x[:3] ** 3 + 0.5 * rng.random((3, 300)), rng.integers(0, 6, (3, 300))])
    ours = spearman(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    reference = np.array([spearmanr(a, b).statistic for a, b in zip(x, y)])
    np.testing.assert_allclose(ours, reference, atol=1e-10)


def test_constant_rule_one_constant_row_scores_zero_two_are_undefined():
    """The constant-map rule: constant vs non-constant shares no structure (0); constant vs constant is undefined."""
    x = torch.stack([torch.zeros(10), torch.arange(10.0), torch.zeros(10), torch.full((10,), 3.0)])
    y = torch.stack([torch.arange(10.0), torch.arange(10.0), torch.full((10,), 5.0), torch.zeros(10)])
    rho = spearman(x, y)
    assert rho[0] == 0.0 and rho[1] == pytest.approx(1.0)
    assert torch.isnan(rho[2]) and torch.isnan(rho[3])


def test_spearman_of_maps_is_invariant_to_monotone_rescaling():
    maps = torch.rand(4, 16, 16, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(spearman(maps, 3 * maps.pow(2) + 1), torch.ones(4, dtype=torch.float64))


@pytest.mark.parametrize("shape", [(32, 32), (20, 29)])
def test_ssim_matches_skimage(shape):
    a = sample_maps(shape, seed=4)
    b = np.clip(0.7 * a + 0.3 * sample_maps(shape, seed=5)[::-1], 0, 1)
    ours = ssim(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    reference = np.array([structural_similarity(p, q, data_range=1.0) for p, q in zip(a, b)])
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_minmax_flags_constant_maps_and_the_constant_rule_applies_to_hog_and_ssim():
    noise = torch.rand(16, 16, generator=torch.Generator().manual_seed(6))
    maps = torch.stack([torch.full((16, 16), 2.0), noise])
    normalised, valid = minmax(maps)
    assert valid.tolist() == [False, True]
    assert normalised[1].min() == 0 and normalised[1].max() == 1
    for measure in (lambda a, b: hog_spearman(a, b, cell=2), ssim_minmax):
        same = measure(maps, maps)
        assert torch.isnan(same[0]) and same[1] == pytest.approx(1.0)  # two constant maps: undefined
        crossed = measure(maps, maps.flip(0))
        assert crossed.tolist() == [0.0, 0.0]  # one constant map: no shared structure


def test_hog_spearman_ignores_offset_and_scale_of_a_map():
    maps = torch.from_numpy(sample_maps((32, 32), seed=7))
    assert torch.allclose(hog_spearman(maps, 5 * maps - 2, cell=4), torch.ones(4, dtype=torch.float64))


def test_a_map_below_float_resolution_of_its_partner_is_constant():
    """A ReLU'd CAM of an absent class: exact zeros on the CPU, 1e-9 residues on a GPU: the same empty map."""
    partner = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(8))
    residue = torch.zeros(2, 16, 16)
    residue[0, 3, 4] = 1e-9
    residue[1, 3:5, 4:9] = 1e-9 * torch.arange(10.0).view(2, 5)
    for measure in (spearman, lambda a, b: hog_spearman(a, b, cell=2), ssim_minmax):
        assert measure(residue, partner).tolist() == [0.0, 0.0]
        assert measure(torch.zeros(2, 16, 16), partner).tolist() == [0.0, 0.0]
    small = partner * 1e-4  # tiny but resolved: compared as a map
    assert spearman(small, partner).tolist() == pytest.approx([1.0, 1.0])
