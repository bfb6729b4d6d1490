"""The speed measurement: interleaved rounds, failures isolated, groups, peers, the bench command and run's step."""
import json
from types import SimpleNamespace

import pytest
import torch

from fakes import MeanMap, load_model
from saliency_bench import Method, UserError, hookimpl
from saliency_bench.cli import main
from saliency_bench.run.peers import peer_implementations
from saliency_bench.run.options import RunOptions
from saliency_bench.run.pipeline import run_benchmark
from saliency_bench.run.speed import Candidate, interleaved_medians, measure, variant_groups


def test_rounds_are_interleaved_and_a_failing_candidate_is_reported_alone():
    calls = []

    def broken():
        calls.append("broken")
        raise RuntimeError("boom")

    candidates = [Candidate("a", "method", lambda: calls.append("a")), Candidate("broken", "method", broken),
                  Candidate("b", "method", lambda: calls.append("b")),
                  Candidate("invalid", "method", lambda: None, check=lambda: "returned NaN")]
    seconds = interleaved_medians(candidates, torch.device("cpu"), rounds=3)
    # one warm-up call each, then a, b alternate round by round; the broken one is never timed again
    assert calls == ["a", "broken", "b"] + ["a", "b"] * 3
    assert seconds["broken"] == "RuntimeError: boom" and seconds["invalid"] == "returned NaN"
    assert isinstance(seconds["a"], float) and seconds["a"] >= 0


def test_a_candidate_failing_after_the_warm_up_gets_its_error_not_a_time():
    calls = {"raises": 0, "drops": 0}

    def raises_later():
        calls["raises"] += 1
        if calls["raises"] == 3:
            raise RuntimeError("third call")

    def fails_later():
        calls["drops"] += 1

    candidates = [Candidate("raises", "method", raises_later), Candidate("ok", "method", lambda: None),
                  Candidate("drops", "method", fails_later,
                            check=lambda: "method failed" if calls["drops"] > 1 else None)]
    seconds = interleaved_medians(candidates, torch.device("cpu"), rounds=4)
    assert seconds["raises"] == "RuntimeError: third call" and calls["raises"] == 3  # not timed again
    assert seconds["drops"] == "method failed"  # its group dropped it after the warm-up: checked again at the end
    assert isinstance(seconds["ok"], float)


class Cam(Method):
    """A block method of a shared pass (its name says nothing to the grouping)."""

    shared_key = "pass"

    def __init__(self, name, layer):
        self.name, self.layer = name, layer


class Mid(Cam):
    """Another class of the same shared pass."""


class Full(Method):
    shared_key = "pass"

    def __init__(self, name):
        self.name = name


def test_variant_groups_are_the_shared_passes_and_the_layer_variants_of_one_class_within_them():
    methods = [Cam("x1", "B1"), Cam("y", "B2"), Cam("x3", "B3"), Mid("mid@B1", "B1"), Full("full"), Method()]
    methods[-1].name = "alone"
    registry = SimpleNamespace(methods={m.name: SimpleNamespace(obj=m) for m in methods})
    groups = variant_groups([m.name for m in methods], registry)
    assert groups == {"Cam at 3 layers (3 together)": ["x1", "y", "x3"],
                      "pass (all 5 together)": ["x1", "y", "x3", "mid@B1", "full"]}
    # a shared pass that is one class's variants only is timed once; a method alone is never a group
    assert variant_groups(["x1", "y", "alone"], registry) == {"pass (all 2 together)": ["x1", "y"]}


def test_measure_gives_ratios_to_the_floor_and_isolates_broken_methods(fakes):
    registry = fakes.registry()
    model = load_model()
    result = measure(registry, ["edge", "random", "raises"], model, batch_size=4, rounds=2, peers=False)
    rows = {row["name"]: row for row in result["rows"]}
    assert result["floor_ms_per_image"] > 0 and result["batch_size"] == 4 and result["rounds"] == 2
    for name in ("edge", "random"):
        assert rows[name]["ms_per_image"] > 0 and rows[name]["ratio_to_floor"] > 0 and "error" not in rows[name]
    assert "boom" in rows["raises"]["error"] and "ms_per_image" not in rows["raises"]
    step = rows["randomization step (floor + 4 similarities)"]  # on the floor's map, whatever methods are timed
    assert step["kind"] == "check" and step["of"] == "floor" and step["ms_per_image"] > 0


class ChannelSum(Method):
    def attribute(self, model, inputs, targets):
        return inputs.sum(1)


class WithPeer(ChannelSum):
    name = "with_peer"

    def peers(self, model):
        yield "lib Twice", lambda x, t: 2 * x.sum(1)
        yield "lib Broken", lambda x, t: (_ for _ in ()).throw(RuntimeError("peer broke"))


class PeersFail(ChannelSum):
    name = "peers_fail"

    def peers(self, model):
        raise ImportError("lib half-installed")


def test_peers_are_what_each_method_declares_and_none_by_default():
    model = load_model()
    assert list(peer_implementations(Method(), model)) == []  # the contract's default
    assert list(peer_implementations(SimpleNamespace(name="duck"), model)) == []  # a duck-typed method without
    labels = [label for label, _ in peer_implementations(WithPeer(), model)]
    assert labels == ["lib Twice", "lib Broken"]


def test_measure_times_each_declared_peer_and_reports_broken_ones():
    registry = SimpleNamespace(methods={m.name: SimpleNamespace(obj=m) for m in (WithPeer(), PeersFail())})
    result = measure(registry, ["with_peer", "peers_fail"], load_model(), batch_size=2, rounds=1, extras=False)
    rows = {(row["name"], row["of"]): row for row in result["rows"] if row["kind"] == "peer"}
    assert rows[("lib Twice", "with_peer")]["ms_per_image"] > 0
    assert "peer broke" in rows[("lib Broken", "with_peer")]["error"]
    assert "lib half-installed" in rows[("peers of peers_fail", "peers_fail")]["error"]


class BackwardPeer(ChannelSum):
    """A method whose peer calls backward() on the network (as grad-cam's does), leaving .grad on the weights."""

    name = "backward_peer"

    def peers(self, model):
        def run(x, t):
            model.network(x).gather(1, t.view(-1, 1)).sum().backward()
            return x.sum(1)

        yield "lib Backward", run


class GradientMap(ChannelSum):
    name = "gradient_map"

    def attribute(self, model, inputs, targets):
        inputs = inputs.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(inputs).gather(1, targets.view(-1, 1)).sum(), inputs)
        return grad.abs().sum(1)


def test_a_peer_that_leaves_gradients_does_not_fail_the_next_method():
    registry = SimpleNamespace(methods={m.name: SimpleNamespace(obj=m) for m in (BackwardPeer(), GradientMap())})
    model = load_model()
    result = measure(registry, ["backward_peer", "gradient_map"], model, batch_size=2, rounds=2, extras=False)
    assert all("error" not in row for row in result["rows"]), result["rows"]
    assert all(p.grad is None for p in model.network.parameters())


def test_bench_command_prints_a_table_and_json(fakes, capsys):
    assert main(["bench", "-m", "edge", "random", "--model", "fake_vgg", "--no-peers", "--batch-size", "4",
                 "--rounds", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {row["name"] for row in result["rows"] if row["kind"] == "method"} == {"edge", "random"}
    assert main(["bench", "-m", "edge", "--model", "fake_vgg", "--no-peers", "--batch-size", "4", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "floor (forward + backward to the input)" in out and "vs floor" in out and "edge" in out


def test_run_stores_speed_beside_the_results_and_reuses_it(fakes, tmp_path):
    options = RunOptions(methods=["edge", "random", "raises"], model="fake_vgg", checks=["mean_map"], batch_size=4,
                         out=str(tmp_path / "out"), progress=False, speed=True, speed_batch_size=4, speed_rounds=1)
    first = run_benchmark(options, log=lambda m: None)
    edge = first.store.get("edge", "speed")
    assert edge["status"] == "ok" and edge["ms_per_image"] > 0 and edge["floor_ms_per_image"] > 0
    assert edge["device"].startswith("cpu")
    assert first.store.get("raises", "speed") is None  # failed a check: never timed (a hung one would hang it)
    assert set(first.failures) == {"raises"}  # the speed step adds no failure of its own
    second = run_benchmark(options, log=lambda m: None)
    assert {("edge", "speed"), ("random", "speed")} <= set(second.reused)
    assert ("raises", "mean_map") in second.computed  # a failed result is retried ...
    assert ("raises", "speed") not in second.computed  # ... and, failing again, still not timed


class SpeedCheckPlugin:
    """Registers a check whose name collides with the store's speed records."""

    @hookimpl
    def register_checks(self, register):
        check = MeanMap()
        check.name = "speed"
        register(check)


def test_speed_is_timed_again_on_another_device_or_with_other_parameters(fakes, tmp_path):
    options = RunOptions(methods=["edge"], model="fake_vgg", checks=["mean_map"], batch_size=4, out=str(tmp_path),
                         progress=False, speed=True, speed_batch_size=4, speed_rounds=1)
    first = run_benchmark(options, log=lambda m: None)
    path = first.store.path("edge", "speed")
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "device": "cuda (some GPU)"}))
    assert ("edge", "speed") in run_benchmark(options, log=lambda m: None).computed
    options.speed_rounds = 2  # other timing parameters: timed again, never a refusal that would need --fresh
    again = run_benchmark(options, log=lambda m: None)
    assert ("edge", "speed") in again.computed and ("edge", "mean_map") in again.reused


def test_a_speed_step_that_breaks_leaves_the_results_and_the_board(fakes, tmp_path, monkeypatch, capsys):
    import saliency_bench.run.speed as speed

    monkeypatch.setattr(speed, "measure", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("CUDA out of memory")))
    out = tmp_path / "out"
    code = main(["run", "-m", "edge", "--model", "fake_vgg", "--checks", "mean_map", "--batch-size", "4",
                 "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0 and "speed: not measured (RuntimeError: CUDA out of memory)" in err
    assert (out / "leaderboard.json").exists() and "ms/img" not in (out / "leaderboard.md").read_text()
    assert not (out / "leaderboard-speed.json").exists()


def test_run_refuses_a_check_named_like_the_speed_records(fakes, tmp_path):
    fakes.register(SpeedCheckPlugin(), name="speed-check")
    try:
        with pytest.raises(UserError, match="may not be called 'speed'"):
            run_benchmark(RunOptions(methods=["edge"], model="fake_vgg", checks=["speed"], out=str(tmp_path)),
                          log=lambda m: None)
    finally:
        fakes.unregister(name="speed-check")


def test_a_model_whose_floor_pass_fails_is_a_user_error(fakes):
    model = load_model()

    def broken_forward(inputs):
        raise RuntimeError("no forward today")

    model.network.forward = broken_forward
    with pytest.raises(UserError, match="floor pass failed .*no forward today"):
        measure(fakes.registry(), ["edge"], model, batch_size=2, rounds=1, peers=False)


def test_a_method_n_a_on_one_check_only_is_still_timed_and_one_n_a_everywhere_is_not():
    """Data randomisation is n/a for every method of a model without a twin: that says nothing of the methods."""
    from saliency_bench.run.speed import untimed

    store = SimpleNamespace(get=lambda name, check: None)
    report = SimpleNamespace(methods=["gradient", "gradmid@B5", "broken"], checks=["pointing_game", "data_rand"],
                             failures={"broken": "boom"}, reused=[], store=store,
                             not_applicable={"gradient": {"data_rand"}, "gradmid@B5": {"pointing_game", "data_rand"}})
    registry = SimpleNamespace(provenance=lambda name: "dist 1.0")
    assert untimed(report, registry, {"batch_size": 64, "rounds": 3}, "cpu") == ["gradient"]


def test_the_bench_table_says_n_a_for_an_undefined_method_and_error_for_a_failed_one():
    from saliency_bench.run.speed import format_speed

    table = format_speed({"rows": [{"name": "gradmid@B5", "kind": "method", "error": "n/a: undefined at B5"},
                                   {"name": "broken", "kind": "method", "error": "raised ValueError: bad"}],
                          "model": "m", "batch_size": 64, "device": "cpu", "floor_ms_per_image": 2.0, "rounds": 3})
    undefined = next(line for line in table.splitlines() if line.startswith("gradmid@B5"))
    failed = next(line for line in table.splitlines() if line.startswith("broken"))
    assert undefined.split()[2:4] == ["n/a", "undefined"] and "error" not in undefined
    assert failed.split()[2:4] == ["error", "raised"]
