"""The sanity-2023 check plugin (plugins/sanity-2023): data randomisation (Adebayo et al. 2018, sec. 4), eMPRT and
sMPRT (Hedström et al. 2023). Quantus 0.6.0 is the oracle of eMPRT and sMPRT (docs: /work/notes/quantus.md): it is
fed our model states (its layer generator patched), our maps (its explain function runs our method on the model it is
given) and, for sMPRT, our input noise (numpy's global generator seeded and replayed in Quantus's draw order)."""
from __future__ import annotations

import json
import sys
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import torch

from fakes import SquaresDataset, load_model
from saliency_bench import Cascade, Method, MethodGroup, ModelWrapper, Suite, randomized_copy
from saliency_bench.cli import main
from saliency_bench.controls import EdgeMap, RandomMap  # the controls, as fakes of a weight-blind map and of noise

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins" / "sanity-2023"))  # the source, whether or not the distribution is installed

from saliency_bench_sanity_2023 import plugin, smoothing  # noqa: E402
from saliency_bench_sanity_2023.complexity import histogram_counts, histogram_entropy, histogram_entropy_numpy  # noqa: E402
from saliency_bench_sanity_2023.data_randomization import DataRandomization  # noqa: E402
from saliency_bench_sanity_2023.emprt import EfficientMPRT  # noqa: E402
from saliency_bench_sanity_2023.smprt import SmoothMPRT  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
IMAGES = 6
CHECKS = ("data_randomization", "emprt", "smprt")


class InputXGradient(Method):
    """Deterministic and signed: the input times the gradient of the target logit, summed over channels."""

    name, family, positive = "input_x_gradient_test", "propagation", False

    def attribute(self, model, inputs, targets):
        x = inputs.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(x).gather(1, targets.view(-1, 1)).sum(), x)
        return (grad * x).sum(1).detach()


def suite_of(model: ModelWrapper, images: int = IMAGES, batch_size: int = IMAGES, seed: int = 0) -> Suite:
    return Suite(model=model, dataset=SquaresDataset(size=images), device=torch.device("cpu"), seed=seed,
                 batch_size=batch_size, progress=False)


def params_of(check, suite: Suite, **overrides) -> dict:
    return {**check.default_params(suite), "images": suite.num_images, **overrides}


def first_batch(suite: Suite) -> tuple[torch.Tensor, np.ndarray]:
    """The inputs of the suite's first batch and the model's top class of each (the checks' targets)."""
    inputs = next(iter(suite.batches()))["inputs"]
    with torch.no_grad():
        return inputs, suite.model(inputs).argmax(1).numpy()


def quantus_explain(method: Method, models: list[ModelWrapper]):
    """Quantus's explain function: ``method`` on the wrapper of the network Quantus hands over (ours, every state)."""
    wrappers = {id(model.network): model for model in models}

    def explain(model, inputs, targets, **kwargs):
        with torch.enable_grad():
            x = torch.as_tensor(np.asarray(inputs)).float()
            return method.attribute(wrappers[id(model)], x, torch.as_tensor(np.asarray(targets))).numpy()

    return explain


def patch_layers(monkeypatch, states, count: int) -> None:
    """Quantus's randomisation replaced by ours: its layer generator is ``states()``, our ``count`` model states
    ``(name, network)`` in our order (a cascade's copy changes in place between them, as Quantus's deepcopy does)."""
    from quantus.helpers.model.pytorch_model import PyTorchModel

    monkeypatch.setattr(PyTorchModel, "get_random_layer_generator", lambda self, order="", seed=0: states())
    monkeypatch.setattr(PyTorchModel, "random_layer_generator_length", property(lambda self: count))


# -- the complexity: torch against numpy --------------------------------------------------------------------------

def test_histogram_entropy_is_numpys_histogram_and_scipys_entropy():
    rng = np.random.default_rng(0)
    cases = [rng.normal(size=(8, 32, 32)).astype(np.float32),
             (rng.random((8, 32, 32)) ** 8).astype(np.float32),  # skewed: most values in the first bins
             np.round(rng.normal(size=(8, 32, 32)), 1).astype(np.float32),  # ties on and near the edges
             np.maximum(rng.normal(size=(8, 32, 32)), 0).astype(np.float32),  # a ReLU'd map: a spike at 0
             np.zeros((2, 16, 16), dtype=np.float32),  # constant: one bin, entropy 0
             rng.normal(size=(4, 24, 24))]  # float64 maps bin in float64
    for maps in cases:
        expected_counts = np.stack([np.histogram(m, bins=100)[0] for m in maps])
        assert np.array_equal(histogram_counts(torch.from_numpy(maps)).numpy(), expected_counts)
        found = histogram_entropy(torch.from_numpy(maps)).numpy()
        np.testing.assert_allclose(found, histogram_entropy_numpy(maps), rtol=0, atol=1e-12)
    assert histogram_entropy(torch.zeros(1, 8, 8)).item() == 0.0
    # 100 equally filled bins: ln 100; another bin count is a parameter
    uniform = torch.arange(10_000, dtype=torch.float32).view(1, 100, 100)
    assert histogram_entropy(uniform).item() == pytest.approx(np.log(100), abs=1e-12)
    assert histogram_entropy(uniform, bins=10).item() == pytest.approx(np.log(10), abs=1e-12)


# -- oracles: Quantus 0.6.0 on the same inputs, maps and model states ----------------------------------------------

@pytest.mark.parametrize("method", [InputXGradient(), EdgeMap()], ids=lambda m: m.name)
def test_emprt_is_quantus_efficient_mprt_plus_one(monkeypatch, method):
    import quantus

    model = load_model()
    suite = suite_of(model)
    check = EfficientMPRT()
    params = params_of(check, suite, draws=1)  # Quantus randomises once
    ours = check.run_images(suite, MethodGroup([method], model), params)[method.name]
    ratio = check.image_data(ours, params)["ratio"]

    randomized = randomized_copy(model, params["seed"], 0)  # the check's draw 0: the cascade's final state
    patch_layers(monkeypatch, lambda: iter([("final", randomized.network)]), 1)
    x, y = first_batch(suite)
    metric = quantus.EfficientMPRT(disable_warnings=True, display_progressbar=False)
    theirs = np.array(metric(model=model.network, x_batch=x.numpy(), y_batch=y, a_batch=None, channel_first=True,
                             explain_func=quantus_explain(method, [model, randomized]), device="cpu"))
    assert np.all(np.isfinite(theirs)) and len(theirs) == IMAGES
    np.testing.assert_allclose(ratio - 1.0, theirs, rtol=0, atol=1e-12)  # Quantus: (H_rand - H_orig) / H_orig
    np.testing.assert_allclose(ours["entropy_original"], metric.explanation_scores_by_layer["orig"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours["entropy_randomized"][:, 0], metric.explanation_scores_by_layer["final"],
                               rtol=0, atol=1e-12)


class ReplayedNoise:
    """Our input noise replaced by Quantus's: numpy's global draws, block by block in Quantus's order (model state)."""

    blocks: list[np.ndarray] = []  # [N - 1, B, C, H, W] per block: reference, original model, then each layer
    block_of: dict[int, int] = {}  # our model state (randomised cascade steps) -> its block

    def __init__(self, seed, tag, index, key, shape):
        draw, step = key
        assert draw == 0
        self.rows = self.blocks[self.block_of[step]][:, index.numpy()]
        self.used = 0

    def draw(self, count: int) -> torch.Tensor:
        found = torch.from_numpy(self.rows[self.used : self.used + count])
        self.used += count
        return found


@pytest.mark.parametrize("states", ["final", "cascade"])
def test_smprt_is_quantus_smooth_mprt(monkeypatch, states):
    import quantus

    samples, seed = 4, 1234
    model = load_model()
    suite = suite_of(model, images=4, batch_size=4)  # one sample per call, as Quantus: the same batches, bit for bit
    check, method = SmoothMPRT(), InputXGradient()
    params = params_of(check, suite, samples=samples, states=states)
    layers = list(params["layers"])
    x, y = first_batch(suite)
    np.random.seed(seed)  # Quantus's draws, in its order: the reference, the original model, then each layer
    visited = [len(layers)] if states == "final" else range(1, len(layers) + 1)  # skip_layers: the last one only
    ReplayedNoise.blocks = [np.stack([np.random.randn(*x.shape) for _ in range(samples - 1)])
                            for _ in range(2 + len(visited))]
    ReplayedNoise.block_of = {0: 0, **{step: 2 + i for i, step in enumerate(visited)}}
    monkeypatch.setattr(smoothing, "InputNoise", ReplayedNoise)
    ours = check.run_images(suite, MethodGroup([method], model), params)[method.name]["spearman_abs"][:, 0]

    if states == "final":
        final = randomized_copy(model, params["seed"], 0)
        names, kept = ["final"], [final]
        patch_layers(monkeypatch, lambda: iter([("final", final.network)]), 1)
    else:  # our bottom-up cascade, one copy walked step by step
        copy = model.copy()
        cascade = Cascade(model, copy, layers, {**params, "mode": "cascading"}, 0)
        names, kept = cascade.visited, [copy]
        patch_layers(monkeypatch, lambda: ((layer, copy.network) for layer in cascade.states(MethodGroup([], copy))),
                     len(names))
    monkeypatch.setattr(quantus, "explain", quantus_explain(method, [model, *kept]))  # SmoothMPRT calls it, not explain_func
    metric = quantus.SmoothMPRT(nr_samples=samples, noise_magnitude=0.1, skip_layers=states == "final",
                                disable_warnings=True, display_progressbar=False)
    np.random.seed(seed)
    theirs = metric(model=model.network, x_batch=x.numpy(), y_batch=y, a_batch=None, channel_first=True,
                    explain_func=quantus_explain(method, [model, *kept]), device="cpu")
    assert list(theirs) == ["original", *names]
    expected = np.array([theirs[name] for name in names]).T
    assert expected.shape == ours.shape and np.all(np.isfinite(expected))
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)


# -- hand-made cases ----------------------------------------------------------------------------------------------

def stand_in_twin(model: ModelWrapper, kind: str) -> ModelWrapper | None:
    """A stand-in for a random-label twin: the same architecture with other weights (the real one is trained)."""
    return randomized_copy(model, 7) if kind == "random_labels" else None


def judged(check, results: dict) -> dict[str, str]:
    """Each method's verdict on ``check``'s one rule (the board's verdicts)."""
    from saliency_bench.board.verdicts import verdicts

    return {name: verdicts({check.name: {"status": "ok", **result}}, check.rules, {})[check.rules[0].key]
            for name, result in results.items()}


def test_a_weight_blind_map_scores_one_and_noise_scores_near_zero():
    model = load_model()
    model.twin = lambda kind: stand_in_twin(model, kind)
    suite = suite_of(model)
    methods = [EdgeMap(), RandomMap(), InputXGradient()]

    data = DataRandomization()
    similar = data.run(suite, MethodGroup(methods, model), params_of(data, suite))
    for measure in ("spearman_hog", "spearman_abs", "spearman_signed", "ssim"):  # the edge map ignores the model
        assert similar["edge"]["metrics"][measure] | {"dropped": 0} == {
            "value": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n": IMAGES, "dropped": 0}
    assert abs(similar["random"]["metrics"]["spearman_hog"]["value"]) < 0.2  # independent noise per model state
    assert similar["input_x_gradient_test"]["metrics"]["spearman_hog"]["value"] < 0.9  # the twin's weights count
    assert judged(data, similar) | {"input_x_gradient_test": "?"} == {
        "edge": "fail", "random": "pass", "input_x_gradient_test": "?"}

    emprt = EfficientMPRT()
    params = params_of(emprt, suite, draws=2)
    values = emprt.run_images(suite, MethodGroup(methods, model), params)
    ratio = {name: emprt.image_data(found, params)["ratio"] for name, found in values.items()}
    assert np.array_equal(ratio["edge"], np.ones(IMAGES))  # the same map before and after: exactly 1, every image
    assert np.all(np.abs(ratio["random"] - 1.0) < 0.05)  # noise is already as complex as a map gets
    assert values["input_x_gradient_test"]["entropy_randomized"].shape == (IMAGES, 2)
    results = {name: emprt.summarize(found, params, suite) for name, found in values.items()}
    assert results["edge"]["metrics"]["ratio"]["ci_low"] == 1.0 and judged(emprt, results)["edge"] == "fail"
    assert judged(emprt, results)["random"] == "fail"


def test_the_emprt_rule_passes_only_an_interval_above_one():
    emprt = EfficientMPRT()
    result = {"metrics": {"ratio": {"value": 1.3, "ci_low": 1.0, "ci_high": 1.6}}}
    assert judged(emprt, {"at_one": result}) == {"at_one": "fail"}
    result["metrics"]["ratio"]["ci_low"] = 1.000001  # recorded to 6 decimals: the smallest value above 1
    assert judged(emprt, {"above": result}) == {"above": "pass"}


def test_a_model_without_a_random_label_twin_is_na_for_every_method():
    model = load_model()
    model.twin = lambda kind: None
    suite = suite_of(model, images=2, batch_size=2)
    group = MethodGroup([EdgeMap(), InputXGradient()], model)
    check = DataRandomization()
    assert check.run_images(suite, group, params_of(check, suite)) == {}
    assert set(group.not_applicable) == {"edge", "input_x_gradient_test"} and group.active == []
    assert "has no random-label twin" in group.not_applicable["edge"]


def test_smprt_final_state_is_the_cascades_last_step_and_noise_follows_the_image():
    model = load_model()
    check, method = SmoothMPRT(), InputXGradient()
    suite = suite_of(model, images=4, batch_size=4)
    final = check.run_images(suite, MethodGroup([method], model), params_of(check, suite, samples=3))
    cascade = check.run_images(suite, MethodGroup([method], model),
                               params_of(check, suite, samples=3, states="cascade"))
    for measure in ("spearman_abs", "spearman_hog", "ssim"):  # bottom up, the last step is the fully randomised model
        assert np.array_equal(final[method.name][measure][..., 0], cascade[method.name][measure][..., -1])
    assert cascade[method.name]["spearman_abs"].shape == (4, 1, len(model.randomization_order))
    # each image's noise comes from its own generator: the same draws in any batch
    whole = smoothing.InputNoise(0, 1, torch.arange(4), (0, 6), (3, 8, 8)).draw(2)
    alone = smoothing.InputNoise(0, 1, torch.tensor([2]), (0, 6), (3, 8, 8)).draw(2)
    assert torch.equal(whole[:, 2:3], alone)
    assert not torch.equal(whole, smoothing.InputNoise(0, 1, torch.arange(4), (0, 5), (3, 8, 8)).draw(2))


# -- the plugin, its declarations and the command line ------------------------------------------------------------

def test_one_entry_point_registers_three_declared_checks(pm):
    (found,) = [ep for ep in entry_points(group="saliency_bench") if ep.name == "sanity_2023"]
    assert found.value == "saliency_bench_sanity_2023.plugin" and found.load() is plugin
    pm.register(plugin, name="sanity-2023-test")
    try:
        checks = {name: pm.registry().checks[name].obj for name in CHECKS}
    finally:
        pm.unregister(name="sanity-2023-test")
    assert [checks[name].order for name in CHECKS] == [50, 60, 70]
    assert [rule.letter for name in CHECKS for rule in checks[name].rules] == ["Y", "E", "S"]
    for check in checks.values():
        assert all(spec.help for spec in check.parameters.values()) and "images" in check.parameters
        assert set(check.statistics) <= set(check.better) and check.columns and check.how_to_read
    assert "Binder" in checks["smprt"].how_to_read and "Adebayo" in checks["data_randomization"].how_to_read


def test_bad_parameters_are_refused_before_anything_runs(fakes, tmp_path, capsys):
    fakes.register(plugin, name="sanity-2023-test")
    try:
        for param, message in [("smprt.samples=0", "parameter smprt.samples must be an integer in [1, 1000], got 0"),
                               ("emprt.images=20", "parameter emprt.images must be an integer in [1, 12]"),
                               ("smprt.states=all", "parameter smprt.states must be one of final, cascade"),
                               ("emprt.init=xavier", "parameter emprt.init must be one of layer_std, fixed")]:
            code = main(["run", "-m", "edge", "--model", "fake_vgg", "--checks", param.split(".")[0], "--no-progress",
                         "--no-speed", "--out", str(tmp_path / "out"), "--param", param])
            assert code == 2 and message in capsys.readouterr().err, param
    finally:
        fakes.unregister(name="sanity-2023-test")


def board_of(folder: Path) -> dict:
    return json.loads((folder / "leaderboard.json").read_text())


def test_a_tiny_board_through_the_command_line(tmp_path, monkeypatch, capsys):
    from saliency_bench.plugins import make_plugin_manager

    manager = make_plugin_manager(allowlist=["saliency-bench-propagation"])  # the `gradient` method
    manager.register(plugin, name="sanity-2023-test")
    monkeypatch.setattr("saliency_bench.plugins._PM", manager)
    monkeypatch.setattr(ModelWrapper, "twin", stand_in_twin, raising=False)
    common = ["-m", "gradient", "edge", "random", "--limit", "8", "--batch-size", "4", "--no-progress", "--no-speed",
              "--param", "smprt.samples=4"]
    out = tmp_path / "board"
    assert main(["run", *common, "--checks", "pointing_game", *CHECKS, "--out", str(out)]) == 0
    board, markdown = board_of(out), (out / "leaderboard.md").read_text()
    assert all(label in markdown for label in ("| data rand. ", "| eMPRT ", "| sMPRT ", "figures/emprt.png"))
    assert (out / "figures" / "emprt.png").stat().st_size > 0
    assert board["checks"]["smprt"]["samples"] == 4 and board["checks"]["emprt"]["images"] == 8
    verdicts = {name: entry["verdicts"] for name, entry in board["methods"].items()}
    # noise passes both randomisation tests that compare maps, and fails the composite verdict through the controls
    assert (verdicts["random"]["data_randomization"], verdicts["random"]["smprt"]) == ("pass", "pass")
    assert verdicts["random"]["overall"] == "fail"
    assert (verdicts["edge"]["data_randomization"], verdicts["edge"]["emprt"]) == ("fail", "fail")  # weight-blind
    values = json.loads((out / "leaderboard-values.json").read_text())  # per-image data: `compare` pairs them
    assert "ratio" in json.dumps(values) and "spearman_abs_final" in json.dumps(values)
    capsys.readouterr()
    assert main(["compare", "gradient", "edge", "--against", str(out / "leaderboard.json")]) == 0
    compared = capsys.readouterr().out
    assert all(f"{check} " in compared for check in CHECKS)

    sharded = tmp_path / "sharded"  # two image shards of 4 instead of one of 8: the same numbers
    assert main(["run", *common, "--checks", *CHECKS, "--shard-size", "4", "--out", str(sharded)]) == 0
    for name, entry in board_of(sharded)["methods"].items():
        for check in CHECKS:
            assert entry["results"][check] == board["methods"][name]["results"][check], (name, check)
