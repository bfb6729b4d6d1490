"""The speed measurement: interleaved rounds, failures isolated, groups, peers, the bench command and run's step."""
import json
from types import SimpleNamespace

import pytest
import torch

from fakes import MeanMap, load_model
from saliency_bench import UserError, hookimpl
from saliency_bench.cli import main
from saliency_bench.peers import peer_implementations
from saliency_bench.runner import RunOptions, run_benchmark
from saliency_bench.speed import Candidate, interleaved_medians, measure, variant_groups


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


def test_variant_groups_time_each_family_of_blocks_and_each_shared_group():
    def method(key):
        return SimpleNamespace(obj=SimpleNamespace(shared_key=key))

    registry = SimpleNamespace(methods={
        **{f"cam@B{i}": method("pass") for i in range(1, 4)}, "mid@B1": method("pass"), "full": method("pass"),
        "alone": method(None),
    })
    groups = variant_groups(["cam@B1", "cam@B2", "cam@B3", "mid@B1", "full", "alone"], registry)
    assert groups == {"cam@* (3 blocks together)": ["cam@B1", "cam@B2", "cam@B3"],
                      "pass (all 5 together)": ["cam@B1", "cam@B2", "cam@B3", "mid@B1", "full"]}


def test_measure_gives_ratios_to_the_floor_and_isolates_broken_methods(fakes):
    registry = fakes.registry()
    model = load_model()
    result = measure(registry, ["edge", "random", "raises"], model, batch_size=4, rounds=2, peers=False)
    rows = {row["name"]: row for row in result["rows"]}
    assert result["floor_ms_per_image"] > 0 and result["batch_size"] == 4 and result["rounds"] == 2
    for name in ("edge", "random"):
        assert rows[name]["ms_per_image"] > 0 and rows[name]["ratio_to_floor"] > 0 and "error" not in rows[name]
    assert "boom" in rows["raises"]["error"] and "ms_per_image" not in rows["raises"]
    assert rows["randomization step (edge + 4 similarities)"]["kind"] == "check"


def test_peers_compute_maps_of_the_same_method_on_the_same_batch():
    model = load_model()
    inputs, targets = torch.rand(2, 3, 32, 32), torch.tensor([0, 2])
    labels = []
    for name in ("gradient", "gradcam", "fullgrad", "lrp_0"):
        for label, fn in peer_implementations(name, model):
            out = torch.as_tensor(fn(inputs, targets))
            assert out.shape[0] == 2 and out.shape[-2:] == (32, 32), label
            labels.append(label)
    assert {"captum Saliency", "captum LayerGradCam", "grad-cam FullGrad", "zennit LRP-0"} <= set(labels)


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
    import saliency_bench.speed as speed

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
