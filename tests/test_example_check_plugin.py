"""The example check plugin (plugins/example-check): the deletion AUC against a hand computation, its registration
and parameter refusal, and the real entry-point path (pip install, run with a board, `check`, pip uninstall)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from installing import pip, renamed_copy
from fakes import SIZE, FakePlugin, SquaresDataset, load_model
from saliency_bench import Method, MethodGroup, Suite
from saliency_bench.cli import main

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "plugins" / "example-check"
DRIVER = str(Path(__file__).with_name("cli_driver.py"))
sys.path.insert(0, str(PLUGIN))  # the unit tests import the plugin's source; the install test installs a copy

from saliency_bench_example_check import DeletionAUC, plugin  # noqa: E402

PIXELS = SIZE * SIZE
ORDER = np.random.default_rng(7).permutation(PIXELS)  # a fixed deletion order, most salient pixel first
STEPS = 5  # 1024 pixels in 5 steps: the deleted fractions are floor(k * 1024 / 5) / 1024, not k / 5


class FixedOrder(Method):
    """The same map for every image and class: pixel ORDER[j] has saliency PIXELS - j (all distinct)."""

    name, family, positive = "fixed_order", "propagation", False

    def attribute(self, model, inputs, targets):
        scores = torch.empty(PIXELS)
        scores[torch.from_numpy(ORDER)] = torch.arange(PIXELS, 0, -1, dtype=torch.float32)
        return scores.view(1, SIZE, SIZE).expand(len(inputs), -1, -1).clone().to(inputs.device)


class ReversedOrder(FixedOrder):
    """The negative of FixedOrder's map: the same pixels deleted in the opposite order."""

    name = "reversed_order"

    def attribute(self, model, inputs, targets):
        return -super().attribute(model, inputs, targets)


class Constant(Method):
    """All zero: every pixel ties, so the check's seeded tie-break alone orders the deletion."""

    name, family, positive = "constant", "control", False

    def attribute(self, model, inputs, targets):
        return torch.zeros(len(inputs), SIZE, SIZE, device=inputs.device)


def hand_curve(model, image: torch.Tensor, order: np.ndarray, steps: int) -> tuple[list[float], list[float]]:
    """(fractions, probabilities) of one image [3,H,W] in [0,1], written out pixel by pixel: the definition."""
    x = model.normalize(image[None])
    with torch.no_grad():
        target = int(model(x).argmax(1))
        mean_color = x[0].reshape(3, -1).mean(dim=1)
        fractions, probabilities = [], []
        for k in range(steps + 1):
            count = (k * PIXELS) // steps
            deleted = x[0].reshape(3, PIXELS).clone()
            deleted[:, torch.from_numpy(order[:count])] = mean_color[:, None]
            probabilities.append(float(torch.softmax(model(deleted.view(1, 3, SIZE, SIZE)), 1)[0, target]))
            fractions.append(count / PIXELS)
    return fractions, probabilities


def hand_auc(fractions: list[float], probabilities: list[float]) -> float:
    return sum((probabilities[k] + probabilities[k - 1]) / 2 * (fractions[k] - fractions[k - 1])
               for k in range(1, len(fractions)))


def run_check(methods, seed: int = 0, **overrides) -> dict:
    model, dataset = load_model(), SquaresDataset()
    suite = Suite(model=model, dataset=dataset, device=torch.device("cpu"), seed=seed, batch_size=5, progress=False)
    check = DeletionAUC()
    params = {**check.default_params(suite), "images": len(dataset), **overrides}
    return check.run(suite, MethodGroup(methods, model), params)


def test_deletion_auc_is_the_hand_computed_area(one_thread):
    model, dataset = load_model(), SquaresDataset()
    assert DeletionAUC().default_params(Suite(model, dataset, torch.device("cpu"), seed=3))["steps"] == 8
    results = run_check([FixedOrder(), ReversedOrder(), Constant()], steps=STEPS)
    assert run_check([FixedOrder(), ReversedOrder(), Constant()], steps=STEPS) == results  # deterministic

    images = [dataset[i]["image"] for i in range(len(dataset))]
    cases = {"fixed_order": [ORDER] * len(images), "reversed_order": [ORDER[::-1].copy()] * len(images),
             # ties follow the documented seeded order: image i of the stream uses default_rng([seed, i])
             "constant": [np.random.default_rng([0, i]).permutation(PIXELS) for i in range(len(images))]}
    for name, orders in cases.items():
        curves = [hand_curve(model, image, order, STEPS) for image, order in zip(images, orders)]
        expected = np.mean([hand_auc(*curve) for curve in curves])
        found = results[name]["metrics"]["deletion_auc"]
        assert found["n"] == len(images) and found["dropped"] == 0
        assert found["value"] == pytest.approx(expected, abs=2e-6), name
        assert found["ci_low"] <= found["value"] <= found["ci_high"]
        assert results[name]["headline"] == "deletion_auc"
        assert results[name]["curve"]["fraction"] == pytest.approx(curves[0][0], abs=1e-6)
        assert results[name]["curve"]["probability"] == pytest.approx(np.mean([c[1] for c in curves], axis=0),
                                                                      abs=2e-6)
    fixed, reverse = (results[n] for n in ("fixed_order", "reversed_order"))
    # the negative map deletes in the opposite order: another area, but the same end points (intact, all deleted)
    assert abs(fixed["metrics"]["deletion_auc"]["value"] - reverse["metrics"]["deletion_auc"]["value"]) > 1e-5
    assert fixed["curve"]["probability"][0] == reverse["curve"]["probability"][0]
    assert fixed["curve"]["probability"][-1] == pytest.approx(reverse["curve"]["probability"][-1], abs=1e-6)
    # the seed moves the tie-break (and the bootstrap draws): a map without ties keeps its value
    reseeded = run_check([FixedOrder(), Constant()], seed=1, steps=STEPS)
    assert reseeded["fixed_order"]["metrics"]["deletion_auc"]["value"] == fixed["metrics"]["deletion_auc"]["value"]
    constant = results["constant"]["metrics"]["deletion_auc"]["value"]
    assert reseeded["constant"]["metrics"]["deletion_auc"]["value"] != constant


def test_plugin_registers_the_check_and_refuses_bad_steps(pm, tmp_path, capsys, one_thread):
    pm.register(FakePlugin(), name="fakes")
    pm.register(plugin, name="example-check")
    try:
        registered = pm.registry().checks["deletion_auc"]
        assert isinstance(registered.obj, DeletionAUC) and registered.obj.better == {"deletion_auc": "lower"}
        (rule,), (column,) = registered.obj.rules, registered.obj.columns
        assert (rule.key, rule.letter, rule.pass_if, rule.beats_controls) == ("deletion", "D", "<=", True)
        assert (column.key, column.label, column.better) == ("deletion", "deletion AUC", "lower")
        capsys.readouterr()
        code = main(["run", "-m", "edge", "--model", "fake_vgg", "--checks", "deletion_auc", "--out",
                     str(tmp_path / "out"), "--no-progress", "--no-speed", "--param", "deletion_auc.steps=0"])
        assert code == 2
        assert "parameter deletion_auc.steps must be an integer in [1, 1024], got 0" in capsys.readouterr().err
    finally:
        pm.unregister(name="example-check")
        pm.unregister(name="fakes")


def _copy_plugin(tmp_path: Path) -> Path:
    """The plugin under a new distribution and package name, so an installed original cannot interfere."""
    return renamed_copy(PLUGIN, tmp_path, "saliency-bench-example-check", "saliency_bench_example_check")


def test_install_run_board_check_uninstall(tmp_path):
    source = _copy_plugin(tmp_path)
    env = {**os.environ, "SALIENCY_BENCH_PLUGINS": "saliency-bench-example-check-copy", "TQDM_DISABLE": "1"}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, DRIVER, *args], env=env, capture_output=True, text=True, timeout=300)

    installed = pip("install", "--no-deps", "--no-build-isolation", str(source))
    assert installed.returncode == 0, installed.stderr
    try:
        listing = cli("list")
        line = next(l for l in listing.stdout.splitlines() if l.startswith("deletion_auc "))
        assert "saliency-bench-example-check-copy 0.1.0" in line
        board_dir = tmp_path / "board"
        run = cli("run", "-m", "edge", "random", "--model", "fake_vgg", "--checks", "pointing_game", "deletion_auc",
                  "--out", str(tmp_path / "out"), "--batch-size", "5", "--no-progress", "--no-speed",
                  "--board-dir", str(board_dir))
        assert run.returncode == 0, run.stderr
        markdown = (board_dir / "leaderboard.md").read_text()
        assert "deletion AUC" in markdown and "D:" in markdown and "figures/deletion_auc.png" in markdown
        assert (board_dir / "figures" / "deletion_auc.png").exists()
        board = json.loads((board_dir / "leaderboard.json").read_text())
        assert board["checks"]["deletion_auc"]["steps"] == 8
        for name, entry in board["methods"].items():
            found = entry["results"]["deletion_auc"]["metrics"]["deletion_auc"]
            assert all(isinstance(found[key], float) for key in ("value", "ci_low", "ci_high")), name
            assert "deletion" in entry["verdicts"]

        against = board_dir / "leaderboard.json"
        same = cli("check", "edge", "--against", str(against), "--no-progress")
        assert same.returncode == 0, same.stdout + same.stderr
        assert any("deletion_auc" in l and l.split()[-1] == "ok" for l in same.stdout.splitlines()), same.stdout

        recorded = board["methods"]["edge"]["results"]["deletion_auc"]["metrics"]["deletion_auc"]
        for key in ("value", "ci_low", "ci_high"):
            recorded[key] -= 0.5  # recorded far better (lower) than the method really is
        edited = tmp_path / "edited" / "leaderboard.json"
        edited.parent.mkdir()
        edited.write_text(json.dumps(board))
        worse = cli("check", "edge", "--against", str(edited), "--no-progress")
        assert worse.returncode == 1, worse.stdout + worse.stderr
        rows = [l for l in worse.stdout.splitlines() if l.startswith("edge") and "deletion_auc" in l]
        assert len(rows) == 1 and rows[0].split()[-1] == "regression", worse.stdout
        assert "(lower is better)" in rows[0]
    finally:
        removed = pip("uninstall", "-y", "saliency-bench-example-check-copy")
    assert removed.returncode == 0, removed.stderr
