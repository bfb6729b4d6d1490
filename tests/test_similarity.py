"""The batched torch similarities against their references: skimage HOG and SSIM, scipy Spearman."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import rankdata, spearmanr
from skimage.feature import hog as skimage_hog
from skimage.metrics import structural_similarity

from saliency_bench.checks import similarity
from saliency_bench.checks.similarity import MapProfile
from saliency_bench.checks.ranking import average_ranks_numpy, average_ranks_torch
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
    normalized, valid = minmax(maps)
    assert valid.tolist() == [False, True]
    assert normalized[1].min() == 0 and normalized[1].max() == 1
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


# The fast paths against the formulas they replaced: a tiny copy of the former implementation (torch sort with
# cummax/cummin ties, one-hot + avg_pool2d HOG histograms, five box means per SSIM, mul-and-sum correlations).


def reference_ranks(values: torch.Tensor) -> torch.Tensor:
    """Average ranks by torch.sort; a run's first and last positions by cummax/cummin."""
    ordered, order = values.sort(dim=1)
    position = torch.arange(values.shape[1], device=values.device).expand_as(order)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.where(starts, position, 0).cummax(1).values
    last = torch.where(ends, position, values.shape[1]).flip(1).cummin(1).values.flip(1)
    average = (first + last).double() / 2 + 1
    return torch.empty_like(average).scatter_(1, order, average)


def reference_hog(images: torch.Tensor, cell: int, block: int = 3, orientations: int = 9) -> torch.Tensor:
    """skimage HOG: zero-border central differences, one-hot magnitudes averaged per cell, L2-Hys blocks."""
    x = images.double()
    n, rows, cols = len(x), x.shape[1] // cell, x.shape[2] // cell
    g_row, g_col = torch.zeros_like(x), torch.zeros_like(x)
    g_row[:, 1:-1] = x[:, 2:] - x[:, :-2]
    g_col[:, :, 1:-1] = x[:, :, 2:] - x[:, :, :-2]
    magnitude = torch.hypot(g_col, g_row)[:, : rows * cell, : cols * cell]
    angle = torch.remainder(torch.rad2deg(torch.atan2(g_row, g_col)), 180.0)
    angle = angle[:, : rows * cell, : cols * cell].contiguous()
    edges = [float(torch.tensor(180.0 / orientations, dtype=torch.float32) * i) for i in range(1, orientations + 1)]
    bins = torch.bucketize(angle, torch.tensor(edges[:-1], dtype=torch.float64, device=x.device), right=True)
    one_hot = torch.zeros(n, orientations, rows * cell, cols * cell, dtype=torch.float64, device=x.device)
    one_hot.scatter_(1, bins.unsqueeze(1), magnitude.masked_fill(angle >= edges[-1], 0.0).unsqueeze(1))
    blocks = F.avg_pool2d(one_hot, cell).permute(0, 2, 3, 1).unfold(1, block, 1).unfold(2, block, 1)
    blocks = blocks.permute(0, 1, 2, 4, 5, 3).reshape(n, rows - block + 1, cols - block + 1, -1)
    blocks = blocks / torch.sqrt((blocks**2).sum(-1, keepdim=True) + 1e-5**2)
    blocks = blocks.clamp(max=0.2)
    return (blocks / torch.sqrt((blocks**2).sum(-1, keepdim=True) + 1e-5**2)).reshape(n, -1)


def reference_ssim(x: torch.Tensor, y: torch.Tensor, win: int = 7) -> torch.Tensor:
    """skimage SSIM with data_range 1: five box means by unfold sums, sample covariance."""
    mean = lambda t: t.unfold(-2, win, 1).sum(-1).unfold(-1, win, 1).sum(-1) / win**2  # noqa: E731
    ux, uy, norm = mean(x), mean(y), win**2 / (win**2 - 1.0)
    vx, vy, vxy = norm * (mean(x * x) - ux * ux), norm * (mean(y * y) - uy * uy), norm * (mean(x * y) - ux * uy)
    s = (2 * ux * uy + 1e-4) * (2 * vxy + 9e-4) / ((ux * ux + uy * uy + 1e-4) * (vx + vy + 9e-4))
    return s.flatten(1).mean(1)


def reference_rho(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of the average ranks of each pair of rows (no constant rule)."""
    a, b = reference_ranks(x), reference_ranks(y)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / torch.sqrt((a * a).sum(1) * (b * b).sum(1))


NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=NO_CUDA)]


def realistic_maps(seed: int, n: int = 6, size: int = 42) -> dict[str, torch.Tensor]:
    """Maps as methods make them: up-sampled (plateaus), ReLU'd (mostly exact zeros), quantised (ties), signed with
    exact and negative zeros, noise, a batch with constant and near-constant maps among normal ones."""
    g = torch.Generator().manual_seed(seed)
    smooth = F.interpolate(torch.rand(n, 1, 6, 6, generator=g), size=size, mode="bilinear", align_corners=False)[:, 0]
    relu = F.interpolate(torch.randn(n, 1, 7, 7, generator=g), size=size, mode="bilinear").clamp_min(0)[:, 0]
    signed = torch.randn(n, size, size, generator=g)
    signed[:, ::3] = 0.0
    signed[:, 1::5] = -0.0
    mixed = torch.rand(n, size, size, generator=g)
    mixed[0], mixed[1] = 0.0, 0.25  # constant maps
    mixed[2] = 0.0
    mixed[2, 5:9, 7] = 1e-9  # a residue below float resolution of its partner
    return {"smooth": smooth, "relu": relu, "quantised": torch.round(torch.rand(n, size, size, generator=g) * 4) / 4,
            "signed": signed, "noise": torch.rand(n, size, size, generator=g, dtype=torch.float64), "mixed": mixed}


@pytest.mark.parametrize("seed", [0, 1])
def test_numpy_and_torch_ranks_equal_the_reference_and_scipy_exactly(seed):
    for kind, maps in realistic_maps(seed).items():
        rows = maps.flatten(1)
        for values in (rows, rows.double(), hog(minmax(maps)[0], 6), rows.to(torch.bfloat16), rows.half()):
            expected = reference_ranks(values)
            np.testing.assert_array_equal(expected.numpy(), rankdata(values.double().numpy(), axis=1), err_msg=kind)
            for ours in (average_ranks(values), average_ranks_numpy(values), average_ranks_torch(values)):
                assert ours.dtype == torch.float64 and torch.equal(ours, expected), kind


def test_ranks_of_rows_with_nan_infinities_and_a_single_or_no_column():
    values = torch.tensor([[0.0, float("nan"), 1.0, float("nan"), -0.0], [float("inf"), 2.0, float("-inf"), 2.0, 0.0]])
    for rows in (values, values[:, :1], values[:, :0], values[:0]):
        assert torch.equal(average_ranks_numpy(rows), reference_ranks(rows))
        assert torch.equal(average_ranks_torch(rows), reference_ranks(rows))


@pytest.mark.parametrize("shape, cell, block",
                         [((42, 42), 6, 3), ((37, 45), 4, 3), ((64, 48), 5, 2), ((30, 30), 3, 1), ((31, 11), 3, 3)])
def test_hog_cpu_histograms_are_bit_identical_to_the_pooled_path_and_the_reference(shape, cell, block, monkeypatch):
    maps = torch.cat([minmax(F.interpolate(m[:, None], size=shape, mode="bilinear"))[0][:, 0]
                      for m in realistic_maps(2).values()])
    fast = hog(maps, cell, block)
    assert torch.equal(fast, reference_hog(maps, cell, block))
    monkeypatch.setattr(similarity, "_cell_histograms_counted", similarity._cell_histograms_pooled)  # as on a GPU
    assert torch.equal(hog(maps, cell, block), fast)


def close_with_nans(ours: torch.Tensor, expected: torch.Tensor, atol: float = 1e-12) -> float:
    """The largest absolute difference, asserting it is within ``atol`` and that NaNs sit in the same places."""
    assert torch.equal(ours.isnan(), expected.isnan())
    difference = float((ours - expected).nan_to_num().abs().max())
    assert difference <= atol
    return difference


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", [0, 1])
def test_spearman_hog_spearman_and_ssim_match_the_reference_formulas(seed, device):
    maps = {kind: m.to(device) for kind, m in realistic_maps(seed).items()}
    for kind, a in maps.items():
        b = a.flip(0) * 0.5 + 0.5 * maps["smooth"].to(a.dtype)  # a different partner for every map
        constant = similarity.constant_pair(similarity.map_range(a), similarity.map_range(b))
        (a_norm, a_valid), (b_norm, b_valid) = minmax(a), minmax(b)
        expected = similarity.constant_rule(reference_rho(a.flatten(1), b.flatten(1)), *constant)
        close_with_nans(spearman(a, b), expected)
        expected = reference_rho(reference_hog(a_norm, 6), reference_hog(b_norm, 6))
        expected = similarity.constant_rule(expected, constant[0] | ~a_valid, constant[1] | ~b_valid)
        close_with_nans(hog_spearman(a, b, cell=6), expected)
        close_with_nans(ssim(a_norm, b_norm), reference_ssim(a_norm, b_norm))
        expected = similarity.constant_rule(reference_ssim(a_norm, b_norm), constant[0] | ~a_valid,
                                            constant[1] | ~b_valid)
        close_with_nans(ssim_minmax(a, b), expected)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", [0, 1])
def test_map_profile_compare_matches_the_reference_formulas_and_caches_ssim_statistics(seed, device):
    params = {"hog_cell": 6, "hog_block": 3, "hog_orientations": 9}
    for kind, maps in realistic_maps(seed).items():
        maps = maps.to(device)
        original = MapProfile(maps, params)
        for step in (maps.flip(0), maps.flip(1) * 2 - 0.1, torch.zeros_like(maps)):
            values = original.compare(MapProfile(step, params), 7)
            constant = similarity.constant_pair(similarity.map_range(maps), similarity.map_range(step))
            (a, a_valid), (b, b_valid) = minmax(maps), minmax(step)
            expected = {
                "spearman_hog": similarity.constant_rule(reference_rho(reference_hog(a, 6), reference_hog(b, 6)),
                                                         constant[0] | ~a_valid, constant[1] | ~b_valid),
                "spearman_abs": reference_rho(maps.abs().flatten(1), step.abs().flatten(1)),
                "spearman_signed": reference_rho(maps.flatten(1), step.flatten(1)),
                "ssim": similarity.constant_rule(reference_ssim(a, b), ~a_valid | constant[0], ~b_valid | constant[1]),
            }
            for measure in ("spearman_abs", "spearman_signed"):
                expected[measure] = similarity.constant_rule(expected[measure], *constant)
            assert values.keys() == expected.keys()
            for measure, value in values.items():
                close_with_nans(value, expected[measure])
        assert list(original._ssim) == [7]  # the reference's window statistics, computed once


@NO_CUDA
def test_on_cuda_ranks_equal_the_cpu_ranks_and_hog_and_profiles_repeat_bit_for_bit():
    params = {"hog_cell": 6, "hog_block": 3, "hog_orientations": 9}
    for kind, maps in realistic_maps(3).items():
        gpu = maps.cuda()
        features = hog(minmax(gpu)[0], 6)
        assert torch.equal(features, hog(minmax(gpu)[0], 6)), kind  # the pooled histograms: no atomics
        torch.testing.assert_close(features.cpu(), hog(minmax(maps)[0], 6), rtol=0, atol=1e-12)
        for rows in (gpu.flatten(1), features):  # ranks depend on the values alone, whatever the device
            assert torch.equal(average_ranks(rows).cpu(), average_ranks_numpy(rows.cpu())), kind
        first, again = (MapProfile(gpu, params).compare(MapProfile(gpu.flip(1), params), 7) for _ in range(2))
        for measure, value in first.items():
            assert torch.equal(value.isnan(), again[measure].isnan()), (kind, measure)
            assert torch.equal(value.nan_to_num(), again[measure].nan_to_num()), (kind, measure)


def test_float64_ranks_where_neighbours_differ_in_the_last_bits_only():
    """The float64 path sorts keys cut to their top bits: rows where two distinct values share the cut key (one ulp
    apart) must be ranked exactly all the same (by argsort), and rows without such pairs by the packed sort."""
    from saliency_bench.checks.ranking import _packed_order64

    g = torch.Generator().manual_seed(3)
    close = torch.rand(6, 4000, dtype=torch.float64, generator=g)
    close[:, 1::2] = torch.nextafter(close[:, ::2], torch.tensor(2.0, dtype=torch.float64))  # one ulp above
    close[:, 7], close[:, 9] = -0.0, 0.0
    close[0, 11], close[1, 12] = float("-inf"), float("inf")
    close[2, :100] = -close[2, :100]
    plain = torch.randn(6, 4000, dtype=torch.float64, generator=g)
    plain[:, ::5] = 0.0
    for rows, mixed in ((close, True), (plain, False)):
        assert bool(_packed_order64(rows.numpy())[2].all()) is mixed and bool(_packed_order64(rows.numpy())[2].any()) is mixed
        np.testing.assert_array_equal(average_ranks_numpy(rows).numpy(), rankdata(rows.numpy(), axis=1))
    assert _packed_order64(torch.tensor([[1.0, float("nan")]], dtype=torch.float64).numpy()) is None
