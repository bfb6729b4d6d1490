"""Every run states its floor (issue 27.1): the passes its methods computed x one forward+backward timed in the
same process, beside the wall time; leaderboard-speed.json records them as run.wall_s and run.floor_s."""
import json

import torch

from saliency_bench import Method, hookimpl
from saliency_bench.cli import main


class ThreePasses(Method):
    """A method that declares three forward+backward passes per map (as SmoothGrad declares its samples)."""

    name, family, positive, passes = "three_passes", "control", False, 3

    def attribute(self, model, inputs, targets):
        return inputs.detach().abs().sum(1)


class Plugin:
    @hookimpl
    def register_methods(self, register):
        register(ThreePasses())


def test_the_run_counts_its_passes_and_states_its_floor(fakes, tmp_path, capsys):
    fakes.register(Plugin(), name="three-passes")
    try:
        code = main(["run", "-m", "edge", "three_passes", "--model", "fake_vgg", "--checks", "mean_map", "--out",
                     str(tmp_path / "out"), "--no-progress"])
    finally:
        fakes.unregister(name="three-passes")
    err = capsys.readouterr().err
    assert code == 0, err
    run = json.loads((tmp_path / "out" / "leaderboard-speed.json").read_text())["run"]
    images = 12  # the fake dataset: one call per batch, every image once per method
    assert run["passes"] == images * (1 + 3)
    assert abs(run["floor_s"] - run["passes"] * run["floor_ms_per_image"] / 1000) < 1e-3
    assert run["wall_s"] > 0 and run["method_s"] > 0 and run["scoring_s"] >= 0
    line = next(line for line in err.splitlines() if line.startswith("floor: "))
    assert f"{images * 4} image passes" in line and "x the floor" in line


def test_a_shared_pass_counts_once_per_image(fakes):
    from saliency_bench.harness.group import MethodGroup

    calls = []

    class Shared(Method):
        family, positive, shared_key, passes = "control", False, "test.one_pass", 5

        def __init__(self, name):
            self.name = name

        def attribute_shared(self, model, inputs, targets, methods):
            calls.append(len(methods))
            return {m.name: inputs.detach().sum(1) for m in methods}

    from fakes import load_model

    model = load_model()
    group = MethodGroup([Shared("a"), Shared("b")], model)
    group(torch.rand(4, 3, 32, 32), torch.zeros(4, dtype=torch.long))
    assert calls == [2] and group.passes == 4  # one pass for the whole group, whatever each member declares


def test_smoothgrad_and_integrated_gradients_declare_one_pass_per_sample_or_step():
    from saliency_bench_propagation.path import IntegratedGradients, SmoothGrad

    assert (SmoothGrad(n_samples=7).passes, IntegratedGradients(n_steps=5).passes) == (7, 5)


def test_only_run_times_the_floor_check_reruns_without_it(fakes, tmp_path, monkeypatch):
    """``check``'s rerun prints no floor line, so it does not spend a second timing one; ``run`` does."""
    from saliency_bench.run import options as run_options
    from saliency_bench.run import pipeline, speed

    timed = []
    monkeypatch.setattr(speed, "measure_floor", lambda *args, **kwargs: timed.append(1) or 2.0)
    for command in ("check", "run"):
        options = run_options.RunOptions(methods=["edge"], model="fake_vgg", checks=["mean_map"], speed=False,
                                         out=str(tmp_path / command), progress=False)
        report = pipeline.run_benchmark(options, log=lambda message: None, command=command)
        assert report.passes > 0
        assert (report.floor_ms_per_image is None) == (command == "check")
    assert timed == [1]
