"""The runner and result store: failures isolated, resume, configuration refused, atomic results."""
import json

import pytest
import torch

from saliency_bench import UserError
from saliency_bench.run.options import RunOptions
from saliency_bench.run.pipeline import run_benchmark
from saliency_bench.store.results import ResultStore


def _options(tmp_path, **kw):
    base = dict(model="fake_vgg", checks=["mean_map"], out=str(tmp_path / "out"), batch_size=4, progress=False)
    return RunOptions(**{**base, **kw})


@pytest.mark.parametrize("broken, reason", [
    ("raises", "raised RuntimeError: boom"),
    ("nan_map", "non-finite"),
    ("wrong_shape", "shape (4, 3, 32, 32)"),
])
def test_broken_method_fails_alone(fakes, tmp_path, broken, reason):
    report = run_benchmark(_options(tmp_path, methods=[broken, "edge", "random"]), log=lambda m: None)
    assert set(report.failures) == {broken}
    assert reason in report.failures[broken] and f"method '{broken}'" in report.failures[broken]
    store = report.store
    assert store.get(broken, "mean_map")["status"] == "failed"
    for good in ("edge", "random"):
        record = store.get(good, "mean_map")
        assert record["status"] == "ok" and record["metrics"]["mean"]["n"] == 12


def test_rerun_reuses_finished_results(fakes, tmp_path):
    first = run_benchmark(_options(tmp_path, methods=["edge", "random"]), log=lambda m: None)
    assert len(first.computed) == 2
    path = first.store.path("edge", "mean_map")
    before = path.stat().st_mtime_ns
    second = run_benchmark(_options(tmp_path, methods=["edge", "random"]), log=lambda m: None)
    assert second.computed == [] and len(second.reused) == 2
    assert path.stat().st_mtime_ns == before
    fresh = run_benchmark(_options(tmp_path, methods=["edge", "random"], fresh=True), log=lambda m: None)
    assert len(fresh.computed) == 2


def test_results_are_deterministic_and_seeded(fakes, tmp_path):
    a = run_benchmark(_options(tmp_path / "a", methods=["random"]), log=lambda m: None)
    b = run_benchmark(_options(tmp_path / "b", methods=["random"]), log=lambda m: None)
    c = run_benchmark(_options(tmp_path / "c", methods=["random"], seed=1), log=lambda m: None)
    value = lambda r: r.store.get("random", "mean_map")["metrics"]["mean"]["value"]  # noqa: E731
    assert value(a) == value(b) != value(c)


def test_other_configuration_is_refused(fakes, tmp_path):
    run_benchmark(_options(tmp_path, methods=["edge"]), log=lambda m: None)
    with pytest.raises(UserError, match="another configuration.*images"):
        run_benchmark(_options(tmp_path, methods=["edge"], limit=5), log=lambda m: None)
    with pytest.raises(UserError, match="seed"):
        run_benchmark(_options(tmp_path, methods=["edge"], seed=3), log=lambda m: None)


def test_other_check_parameters_are_refused(fakes, tmp_path):
    run_benchmark(_options(tmp_path, methods=["edge"]), log=lambda m: None)
    with pytest.raises(UserError, match="other mean_map parameters.*scale"):
        run_benchmark(_options(tmp_path, methods=["edge"], check_params={"mean_map": {"scale": "2"}}),
                      log=lambda m: None)


def test_unknown_check_parameter_is_refused(fakes, tmp_path):
    with pytest.raises(UserError, match="has no parameter 'nope'"):
        run_benchmark(_options(tmp_path, methods=["edge"], check_params={"mean_map": {"nope": "1"}}),
                      log=lambda m: None)


def test_unknown_names_are_user_errors(fakes, tmp_path):
    with pytest.raises(UserError, match="unknown method"):
        run_benchmark(_options(tmp_path, methods=["nope"]), log=lambda m: None)
    with pytest.raises(UserError, match="unknown check"):
        run_benchmark(_options(tmp_path, methods=["edge"], checks=["nope"]), log=lambda m: None)
    with pytest.raises(UserError, match="unknown model"):
        run_benchmark(_options(tmp_path, methods=["edge"], model="nope"), log=lambda m: None)
    with pytest.raises(UserError, match="unknown dataset"):
        run_benchmark(_options(tmp_path, methods=["edge"], dataset="nope"), log=lambda m: None)


def test_store_writes_atomically_and_records_configuration(tmp_path):
    store = ResultStore(tmp_path, {"seed": 0})
    store.put("m", "c", {"status": "ok", "metrics": {}}, {"p": 1})
    record = json.loads(store.path("m", "c").read_text())
    assert record["config"] == {"seed": 0} and record["params"] == {"p": 1}
    assert not list(tmp_path.rglob("*.tmp"))
    assert store.get("m", "c", {"p": 1})["status"] == "ok"


def test_group_shares_one_call_per_batch(fakes, tmp_path):
    from saliency_bench import Method

    calls = []

    class Shared(Method):
        family, positive, shared_key = "control", False, "test.shared"

        def __init__(self, name):
            self.name = name

        def attribute_shared(self, model, inputs, targets, methods):
            calls.append(tuple(methods))
            return {m.name: torch.ones(inputs.shape[0], *inputs.shape[2:]) for m in methods}

    from saliency_bench import hookimpl

    registered = [Shared("s1"), Shared("s2")]

    class Plugin:
        @hookimpl
        def register_methods(self, register):
            for method in registered:
                register(method)

    fakes.register(Plugin(), name="shared")
    try:
        run_benchmark(_options(tmp_path, methods=["s*"]), log=lambda m: None)
    finally:
        fakes.unregister(name="shared")
    assert len(calls) == 3  # 12 images / batch 4: one call per batch for both
    assert all(len(call) == 2 and all(a is b for a, b in zip(call, registered)) for call in calls)  # the objects


def test_a_new_plugin_version_is_recomputed(fakes, tmp_path):
    from dataclasses import replace

    registry = fakes.registry()
    run_benchmark(_options(tmp_path, methods=["edge"]), registry=registry, log=lambda m: None)
    assert run_benchmark(_options(tmp_path, methods=["edge"]), registry=registry, log=lambda m: None).computed == []
    registry.methods["edge"] = replace(registry.methods["edge"], version="9.9")
    again = run_benchmark(_options(tmp_path, methods=["edge"]), registry=registry, log=lambda m: None)
    assert again.computed == [("edge", "mean_map")]
    assert again.store.get("edge", "mean_map")["plugin"]["version"] == "9.9"


def test_bad_parameters_are_refused_before_fresh_deletes_anything(fakes, tmp_path):
    first = run_benchmark(_options(tmp_path, methods=["edge"]), log=lambda m: None)
    path = first.store.path("edge", "mean_map")
    with pytest.raises(UserError, match="mean_map.scale must be a finite number"):
        run_benchmark(_options(tmp_path, methods=["edge"], fresh=True, check_params={"mean_map": {"scale": "x"}}),
                      log=lambda m: None)
    assert path.exists()


def test_not_applicable_is_stored_reused_and_shown_as_na_not_failed(fakes, tmp_path):
    from saliency_bench.board.leaderboard import build_board, render_markdown

    options = _options(tmp_path, methods=["undefined", "edge"])
    report = run_benchmark(options, log=lambda m: None)
    assert report.failures == {}
    record = report.store.get("undefined", "mean_map")
    assert record["status"] == "n/a" and record["reason"] == "undefined on this model by construction"
    again = run_benchmark(options, log=lambda m: None)
    assert ("undefined", "mean_map") in again.reused and again.computed == []
    board = build_board(report.store, fakes.registry(), ["undefined", "edge"], ["mean_map"])
    entry = board["methods"]["undefined"]
    assert entry["status"] == "ok" and entry["not_applicable"] == {"mean_map": record["reason"]}
    assert "n/a: undefined on this model by construction" in render_markdown(board, [fakes.registry().checks["mean_map"].obj])


def test_data_seed_draws_another_sample_and_is_recorded(tmp_path):
    from saliency_bench.plugins import get_plugin_manager

    registry = get_plugin_manager().registry()
    base = dict(methods=["edge"], checks=["class_sensitivity"], limit=4, batch_size=4, progress=False)
    default = run_benchmark(RunOptions(out=str(tmp_path / "a"), **base), registry=registry, log=lambda m: None)
    other = run_benchmark(RunOptions(out=str(tmp_path / "b"), data_seed=7, **base), registry=registry,
                          log=lambda m: None)
    assert default.store.config["dataset"]["seed"] == 0 and other.store.config["dataset"]["seed"] == 7
    assert not torch.equal(default.suite.dataset[0]["image"], other.suite.dataset[0]["image"])


def test_data_seed_is_refused_by_datasets_read_from_files(fakes, tmp_path):
    with pytest.raises(UserError, match="takes no --data-seed"):
        run_benchmark(_options(tmp_path, methods=["edge"], data_seed=3), log=lambda m: None)
