"""The four sanity checks on a tiny model and hand-placed masks, with answers known by construction."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from saliency_bench import Dataset, Method, MethodGroup, ModelWrapper, Suite
from saliency_bench.checks.class_sensitivity import ClassSensitivity
from saliency_bench.checks.default_plugin import register_checks
from saliency_bench.checks.pointing import PointingGame, RestrictedPointingGame
from saliency_bench.checks.randomization import CascadingRandomization

SIZE, SQUARE = 32, 6
CLASSES = ["alpha", "beta", "gamma"]
# (row, col) of the top-left corner of each class's square, per image; image 4 has one class only.
LAYOUT = [
    {0: (4, 4), 1: (18, 18)},
    {1: (5, 20), 2: (20, 5)},
    {0: (6, 16), 2: (20, 20)},
    {0: (4, 4), 1: (4, 20), 2: (20, 12)},
    {1: (12, 12)},
    {0: (10, 10), 2: (22, 4)},
]
MULTI = [i for i, objects in enumerate(LAYOUT) if len(objects) >= 2]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class SquaresDataset(Dataset):
    """Channel k of each image is the mask of class k, so fake methods can read the masks from their inputs."""

    name = "squares"
    class_names = CLASSES

    def __len__(self) -> int:
        return len(LAYOUT)

    def __getitem__(self, index: int) -> dict:
        """One hand-placed sample."""
        masks = torch.zeros(len(CLASSES), SIZE, SIZE, dtype=torch.bool)
        for k, (row, col) in LAYOUT[index].items():
            masks[k, row : row + SQUARE, col : col + SQUARE] = True
        labels = masks.flatten(1).any(1).float()
        return {"image": masks.float(), "labels": labels, "masks": masks, "trials": labels > 0, "index": index}


class TinyVGG(nn.Module):
    """Three conv blocks and a linear head: a VGG-like network at 32 px."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, len(CLASSES)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, 3]."""
        return self.head(self.features(x))


def make_model() -> ModelWrapper:
    """A seeded tiny model wrapped for the checks."""
    torch.manual_seed(0)
    return ModelWrapper(TinyVGG(), name="tiny", class_names=CLASSES, input_size=SIZE)


def make_suite() -> Suite:
    """Six images in two batches of at most four, on the CPU, seed 0."""
    return Suite(make_model(), SquaresDataset(), device=torch.device("cpu"), seed=0, batch_size=4, progress=False)


@pytest.fixture
def suite() -> Suite:
    """A fresh suite per test."""
    return make_suite()


def images_of(model: ModelWrapper, inputs: torch.Tensor) -> torch.Tensor:
    """The [0,1] images behind normalised inputs."""
    return model.denormalize(inputs.detach())


def peak_maps(masks: torch.Tensor, dy: int = 0, dx: int = 0) -> torch.Tensor:
    """Maps that are 1 at the top-left mask pixel shifted by (dy, dx), 0 elsewhere (the far corner for an empty mask)."""
    maps = torch.zeros(masks.shape, dtype=torch.float32)
    present = masks.flatten(1).any(1)
    rows = masks.any(2).float().argmax(1) + dy
    cols = masks.any(1).float().argmax(1) + dx
    idx = torch.nonzero(present).squeeze(1)
    maps[idx, rows[idx], cols[idx]] = 1.0
    maps[~present, -1, -1] = 1.0
    return maps


class PeakAtTarget(Method):
    """Peaks at the target class's mask corner, shifted by (dy, dx)."""

    family = "control"

    def __init__(self, dy: int = 0, dx: int = 0, name: str = "peak"):
        self.dy, self.dx, self.name = dy, dx, name

    def attribute(self, model, inputs, targets):
        masks = images_of(model, inputs)[torch.arange(len(targets)), targets] > 0.5
        return peak_maps(masks, self.dy, self.dx)


class PeakAtAlpha(Method):
    """Class-insensitive: always peaks at the class-0 object, whatever the target (corner pixel if absent)."""

    name, family = "alpha_only", "control"

    def attribute(self, model, inputs, targets):
        masks = images_of(model, inputs)[:, 0] > 0.5
        maps = peak_maps(masks)
        maps[~masks.flatten(1).any(1), -1, -1] = 1.0
        return maps


class PeakInCorner(Method):
    """Peaks at the bottom-right pixel, far from every mask."""

    name, family = "corner", "control"

    def attribute(self, model, inputs, targets):
        maps = torch.zeros(len(inputs), SIZE, SIZE)
        maps[:, -1, -1] = 1.0
        return maps


class SizeSpy(PeakAtTarget):
    """Records the batch size of every call."""

    def __init__(self):
        super().__init__(name="size_spy")
        self.sizes: list[int] = []

    def attribute(self, model, inputs, targets):
        self.sizes.append(len(inputs))
        return super().attribute(model, inputs, targets)


def sobel(images: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude summed over channels: model-independent, class-independent."""
    kernel = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
    weight = torch.stack([kernel, kernel.T]).unsqueeze(1).repeat(3, 1, 1, 1)
    grads = F.conv2d(images, weight, padding=1, groups=3).view(len(images), 3, 2, *images.shape[-2:])
    return grads.pow(2).sum(2).sqrt().sum(1)


class Edge(Method):
    """Sobel edges of the image: ignores the model and the target."""

    name, family = "edge", "control"

    def attribute(self, model, inputs, targets):
        return sobel(images_of(model, inputs))


class Noise(Method):
    """Seeded uniform noise, a fresh draw at every call."""

    name, family = "noise", "control"

    def __init__(self):
        self.generator = torch.Generator().manual_seed(1)

    def attribute(self, model, inputs, targets):
        return torch.rand(len(inputs), SIZE, SIZE, generator=self.generator)


class Constant(Method):
    """A constant map: every correlation is undefined."""

    name, family = "constant", "control"

    def attribute(self, model, inputs, targets):
        return torch.zeros(len(inputs), SIZE, SIZE)


class ConstantWhereBeta(Edge):
    """Constant maps for images containing class 1, edge maps elsewhere."""

    name = "constant_where_beta"

    def attribute(self, model, inputs, targets):
        maps = super().attribute(model, inputs, targets)
        beta = images_of(model, inputs)[:, 1].flatten(1).amax(1) > 0.5
        return torch.where(beta.view(-1, 1, 1), torch.zeros_like(maps), maps)


class Gradient(Method):
    """Input gradient, max of |.| over channels (Simonyan et al. 2014): depends on every parameter."""

    name, family = "gradient", "propagation"

    def attribute(self, model, inputs, targets):
        inputs = inputs.detach().requires_grad_(True)
        score = model(inputs).gather(1, targets.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(score, inputs)
        return grad.abs().amax(1)


class Broken(Method):
    """Raises on every call."""

    name, family = "broken", "control"

    def attribute(self, model, inputs, targets):
        raise RuntimeError("boom")


def run(check, suite: Suite, methods, **overrides) -> dict:
    """Run one check on a fresh group with the default parameters updated by ``overrides``."""
    params = {**check.default_params(suite), **overrides}
    return check.run(suite, MethodGroup(methods, suite.model), params)


def value(result: dict, name: str) -> float | None:
    """The value of one metric of a result."""
    return result["metrics"][name]["value"]


# -- registration and parameters -------------------------------------------------------------


def test_default_plugin_registers_the_four_checks():
    checks = []
    register_checks(checks.append)
    assert [c.name for c in checks] == ["pointing_game", "restricted_pointing_game", "class_sensitivity", "randomization"]
    assert [c.requires_masks for c in checks] == [True, True, False, False]


def test_default_params_scale_with_the_input_size(suite):
    pointing = PointingGame().default_params(suite)
    assert pointing["tolerance"] == pytest.approx(15 * 32 / 224, abs=1e-6)
    assert (pointing["bootstrap_samples"], pointing["ci_level"], pointing["seed"]) == (1000, 0.95, 0)
    assert ClassSensitivity().default_params(suite)["hog_cell"] == 2  # round(16 * 32/224) = round(2.29)
    randomization = CascadingRandomization().default_params(suite)
    assert randomization["layers"] == suite.model.randomization_order == ["head.2", "features.6", "features.3", "features.0"]
    assert (randomization["init_std"], randomization["init_bias"]) == (0.01, 0.0)


# -- pointing games --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dy, dx, tolerance, expected",
    [
        (0, 0, None, 1.0),  # inside the mask
        (0, -2, None, 1.0),  # 2 px outside, default tolerance 2.14 px
        (0, -3, None, 0.0),  # 3 px outside
        (0, -2, 2.0, 1.0),  # exactly at the tolerance edge counts as inside
        (0, -3, 2.0, 0.0),  # one pixel beyond it does not
        (-2, -2, 2.9, 1.0),  # Euclidean: sqrt(8) = 2.83 px
        (-2, -2, 2.8, 0.0),
    ],
)
def test_pointing_game_tolerance(suite, dy, dx, tolerance, expected):
    overrides = {} if tolerance is None else {"tolerance": tolerance}
    result = run(PointingGame(), suite, [PeakAtTarget(dy, dx)], **overrides)["peak"]
    assert value(result, "accuracy") == expected
    assert value(result, "overall_accuracy") == expected


def test_pointing_game_counts_multi_class_images_and_trials(suite):
    result = run(PointingGame(), suite, [PeakAtTarget()])["peak"]
    trials = sum(len(LAYOUT[i]) for i in MULTI)
    assert result["metrics"]["accuracy"]["n"] == len(MULTI) == 5
    assert result["metrics"]["accuracy"]["trials"] == trials == 11
    per_class = {CLASSES[k]: sum(k in LAYOUT[i] for i in MULTI) for k in range(3)}
    assert result["per_class"] == {name: {"hits": t, "trials": t} for name, t in per_class.items()}
    assert result["headline"] == "accuracy"


def test_pointing_game_peak_far_from_every_mask_scores_zero(suite):
    result = run(PointingGame(), suite, [PeakInCorner()])["corner"]
    assert value(result, "accuracy") == 0.0
    assert result["metrics"]["accuracy"]["ci_high"] == 0.0


def test_accuracy_is_the_mean_over_classes_not_over_trials(suite):
    result = run(PointingGame(), suite, [PeakAtAlpha()])["alpha_only"]
    alpha_trials = sum(0 in LAYOUT[i] for i in MULTI)
    assert value(result, "accuracy") == pytest.approx(1 / 3, abs=1e-6)  # classes: 1, 0, 0
    assert value(result, "overall_accuracy") == pytest.approx(alpha_trials / 11, abs=1e-6)
    assert result["per_class"]["alpha"] == {"hits": alpha_trials, "trials": alpha_trials}
    assert result["per_class"]["beta"]["hits"] == 0


class NoTrialsInImageFive(SquaresDataset):
    """Image 5 keeps its labels but none of its classes counts as a trial (like VOC's difficult objects)."""

    def __getitem__(self, index: int) -> dict:
        sample = super().__getitem__(index)
        if index == 5:
            sample["trials"] = torch.zeros_like(sample["trials"])
        return sample


def test_images_without_trials_are_left_out(suite):
    suite.dataset = NoTrialsInImageFive()  # the second batch then holds no trial at all
    for check in (PointingGame(), RestrictedPointingGame()):
        result = run(check, suite, [PeakAtAlpha()])["alpha_only"]
        assert result["metrics"]["accuracy"]["n"] == len(MULTI) - 1
        assert result["metrics"]["accuracy"]["trials"] == 11 - len(LAYOUT[5])
        assert result["per_class"]["alpha"] == {"hits": 3, "trials": 3}


def test_pointing_game_without_qualifying_images_reports_no_value(suite):
    result = run(PointingGame(), suite, [PeakAtTarget()], min_classes=4)["peak"]
    assert result["metrics"]["accuracy"] == {"value": None, "ci_low": None, "ci_high": None, "n": 0, "trials": 0}
    assert result["per_class"] == {}


def test_pointing_game_calls_methods_in_chunks_of_the_batch_size(suite):
    spy = SizeSpy()
    run(PointingGame(), suite, [spy])
    assert max(spy.sizes) <= suite.batch_size
    assert sum(spy.sizes) == 11  # one map per trial


def test_restricted_game_equals_original_for_a_class_insensitive_method(suite):
    original = run(PointingGame(), suite, [PeakAtAlpha()])["alpha_only"]
    restricted = run(RestrictedPointingGame(), suite, [PeakAtAlpha()])["alpha_only"]
    assert restricted["metrics"] == original["metrics"]


def test_restricted_game_scores_the_max_logit_map_against_every_class(suite):
    restricted = run(RestrictedPointingGame(), suite, [PeakAtTarget()])["peak"]
    data = SquaresDataset()
    hits, trials = np.zeros(3), np.zeros(3)
    for i in MULTI:
        image = data[i]["image"].unsqueeze(0)
        with torch.no_grad():
            top = int(suite.model(suite.model.normalize(image)).argmax())
        for k in LAYOUT[i]:
            trials[k] += 1
            hits[k] += k == top  # the single map points at the top class's object only
    assert value(restricted, "accuracy") == pytest.approx(float(np.mean(hits / trials)), abs=1e-6)
    assert value(restricted, "overall_accuracy") == pytest.approx(hits.sum() / trials.sum(), abs=1e-6)
    assert value(restricted, "overall_accuracy") < 1.0  # one map cannot point at two objects


def test_pointing_game_confidence_interval_brackets_the_value(suite):
    result = run(PointingGame(), suite, [PeakAtAlpha()])["alpha_only"]
    for entry in result["metrics"].values():
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    overall = result["metrics"]["overall_accuracy"]  # varies with the resample (the class mean stays 1/3 mostly)
    assert overall["ci_low"] < overall["value"] < overall["ci_high"]


# -- class sensitivity -----------------------------------------------------------------------


def test_identical_maps_for_max_and_min_class_have_similarity_one(suite):
    result = run(ClassSensitivity(), suite, [Edge()])["edge"]
    for name in ("spearman_hog", "spearman_raw"):
        assert value(result, name) == pytest.approx(1.0, abs=1e-6)
        assert (result["metrics"][name]["n"], result["metrics"][name]["dropped"]) == (len(LAYOUT), 0)
    assert result["headline"] == "spearman_hog"


def test_independent_noise_maps_have_similarity_near_zero(suite):
    result = run(ClassSensitivity(), suite, [Noise()])["noise"]
    assert abs(value(result, "spearman_hog")) < 0.1
    assert abs(value(result, "spearman_raw")) < 0.1


def test_two_constant_maps_are_undefined_dropped_and_counted(suite):
    results = run(ClassSensitivity(), suite, [Constant(), ConstantWhereBeta()])
    for name in ("spearman_hog", "spearman_raw"):
        entry = results["constant"]["metrics"][name]
        assert entry == {"value": None, "ci_low": None, "ci_high": None, "n": 0, "dropped": len(LAYOUT),
                         "one_constant": 0}
        partial = results["constant_where_beta"]["metrics"][name]
        with_beta = sum(1 in objects for objects in LAYOUT)
        assert (partial["n"], partial["dropped"]) == (len(LAYOUT) - with_beta, with_beta)
        assert partial["value"] == pytest.approx(1.0, abs=1e-6)


class ZeroForBottomClass(Edge):
    """Edge maps for every target but the min-logit class, whose map is all zero (a ReLU'd GradCAM's usual case)."""

    name = "zero_for_bottom"

    def attribute(self, model, inputs, targets):
        with torch.no_grad():
            bottom = model(inputs).argmin(1)
        maps = super().attribute(model, inputs, targets)
        return torch.where((targets == bottom).view(-1, 1, 1), torch.zeros_like(maps), maps)


def test_one_constant_map_scores_zero_and_keeps_every_image(suite):
    """The constant-map rule: the old behaviour dropped these images (n = 0); now each counts with similarity 0."""
    result = run(ClassSensitivity(), suite, [ZeroForBottomClass()])["zero_for_bottom"]
    for name in ("spearman_hog", "spearman_raw"):
        entry = result["metrics"][name]
        assert (entry["value"], entry["n"], entry["dropped"], entry["one_constant"]) == (0.0, len(LAYOUT), 0, len(LAYOUT))


def test_a_failing_method_is_left_out_and_the_others_go_on(suite):
    group = MethodGroup([Broken(), Edge()], suite.model)
    results = ClassSensitivity().run(suite, group, ClassSensitivity().default_params(suite))
    assert set(results) == {"edge"}
    assert "broken" in group.failures


# -- cascading randomisation -----------------------------------------------------------------


def test_model_independent_method_stays_identical_at_every_step(suite):
    result = run(CascadingRandomization(), suite, [Edge()])["edge"]
    assert result["curve"]["layers"] == suite.model.randomization_order
    for measure in ("spearman_hog", "spearman_abs", "spearman_signed", "ssim"):
        curve = result["curve"][measure]
        assert len(curve) == 4
        assert all(step["value"] == pytest.approx(1.0, abs=1e-6) and step["n"] == len(LAYOUT) for step in curve)
        assert value(result, f"{measure}_mean") == pytest.approx(1.0, abs=1e-6)
        assert value(result, f"{measure}_final") == pytest.approx(1.0, abs=1e-6)
    assert result["headline"] == "spearman_hog_mean"


def test_random_noise_is_unrelated_to_the_original_map(suite):
    result = run(CascadingRandomization(), suite, [Noise()])["noise"]
    for measure in ("spearman_hog", "spearman_abs", "spearman_signed", "ssim"):
        assert abs(value(result, f"{measure}_mean")) < 0.1


@pytest.fixture(scope="module")
def gradient_run() -> dict:
    """One randomisation run of a model-dependent method, with the user's model before and after."""
    suite = make_suite()
    before = {k: v.clone() for k, v in suite.model.network.state_dict().items()}
    flags = [p.requires_grad for p in suite.model.network.parameters()]
    result = run(CascadingRandomization(), suite, [Gradient()])
    return {"suite": suite, "before": before, "flags": flags, "result": result}


def test_randomization_leaves_the_users_model_untouched(gradient_run):
    model = gradient_run["suite"].model
    before, after = gradient_run["before"], model.network.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert gradient_run["flags"] == [p.requires_grad for p in model.network.parameters()]


class CascadeSpy(Edge):
    """Records, at every call, which layers of the model it is given differ from the original ones."""

    name = "cascade_spy"

    def __init__(self, original: ModelWrapper):
        self.original = {k: v.clone() for k, v in original.network.state_dict().items()}
        self.calls: list[list[str]] = []
        self.zero_biases: list[bool] = []

    def attribute(self, model, inputs, targets):
        state = model.network.state_dict()
        changed = [k.rsplit(".", 1)[0] for k in self.original if k.endswith("weight") and not torch.equal(state[k], self.original[k])]
        self.calls.append(changed)
        self.zero_biases.append(all(bool((state[f"{layer}.bias"] == 0).all()) for layer in changed))
        return super().attribute(model, inputs, targets)


def test_layers_are_randomized_cumulatively_from_the_top(suite):
    spy = CascadeSpy(suite.model)
    run(CascadingRandomization(), suite, [spy])
    order = suite.model.randomization_order
    draws = CascadingRandomization().default_params(suite)["draws"]
    cascade = [set(order[: step + 1]) for step in range(len(order))]
    expected = [set()] + cascade * draws  # the original map, then each draw's cascade restarted from the original
    assert [set(c) for c in spy.calls] == expected * 2  # two batches
    assert all(spy.zero_biases)


def test_randomization_is_deterministic_and_model_dependent(gradient_run):
    first = gradient_run["result"]
    assert run(CascadingRandomization(), make_suite(), [Gradient()]) == first
    curve = first["gradient"]["curve"]["spearman_hog"]
    assert all(math.isfinite(step["value"]) for step in curve)
    assert first["gradient"]["metrics"]["spearman_hog_final"]["value"] < 0.99


def test_another_seed_draws_other_random_layers(gradient_run):
    other = run(CascadingRandomization(), make_suite(), [Gradient()], seed=1)
    first = gradient_run["result"]["gradient"]["curve"]["spearman_signed"]
    assert other["gradient"]["curve"]["spearman_signed"] != first


def test_results_are_plain_json(suite):
    import json

    for check in (PointingGame(), ClassSensitivity(), CascadingRandomization()):
        result = run(check, suite, [Edge()])
        assert json.loads(json.dumps(result)) == result
