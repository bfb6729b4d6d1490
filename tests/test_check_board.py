"""`check` against a board: direction-aware comparison, a new method's row, --require, --vs, --add; and the verdicts."""
import json

import pytest
import torch

from fakes import FakePlugin
from saliency_bench import Method, hookimpl
from saliency_bench.cli import main

CHECKS = ["pointing_game", "restricted_pointing_game", "class_sensitivity", "randomization"]


class NoiseCopy(Method):
    """Uniform noise under a new name: passes class sensitivity and randomisation, fails pointing."""

    name, family, positive = "noise_copy", "propagation", False

    def attribute(self, model, inputs, targets):
        batch, _, height, width = inputs.shape
        return torch.rand(batch, height, width, device=inputs.device)


class Candidates:
    @hookimpl
    def register_methods(self, register):
        register(NoiseCopy())


@pytest.fixture(scope="module")
def board_dir(tmp_path_factory):
    """A board of the two controls on the fake model (its run is shared by the module)."""
    from saliency_bench.plugins import get_plugin_manager

    pm = get_plugin_manager()
    pm.register(FakePlugin(), name="fakes-check")
    pm.register(Candidates(), name="candidates")
    out = tmp_path_factory.mktemp("board") / "a"
    try:
        assert main(["run", "-m", "edge", "random", "--model", "fake_vgg", "--checks", *CHECKS, "--out", str(out),
                     "--batch-size", "5", "--no-progress", "--no-speed"]) == 0
        yield out
    finally:
        pm.unregister(name="fakes-check")
        pm.unregister(name="candidates")


def _check(capsys, *argv):
    code = main(["check", *argv, "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_new_method_gets_its_row_ranks_verdicts_and_differences(board_dir, tmp_path, capsys):
    before = (board_dir / "leaderboard.json").read_bytes()
    code, out, err = _check(capsys, "noise_copy", "--against", str(board_dir / "leaderboard.json"),
                            "--out", str(tmp_path / "rerun"))
    assert code == 1, err  # noise fails the default requirement (overall: it does not localise)
    assert "noise_copy" in out and "not on" in out and "rank" in out and " of 3" in out
    assert "localisation fail" in out and "overall fail" in out
    assert "FAILS the required criteria (overall)" in out
    diff_rows = [line for line in out.splitlines() if line.startswith(("edge ", "random "))]
    assert {line.split()[0] for line in diff_rows} == {"edge", "random"}  # the controls by default
    assert (board_dir / "leaderboard.json").read_bytes() == before


def test_require_chooses_the_criteria_of_the_exit_code(board_dir, tmp_path, capsys):
    board = str(board_dir / "leaderboard.json")
    keep = str(tmp_path / "rerun")
    code, out, _ = _check(capsys, "noise_copy", "--against", board, "--out", keep,
                          "--require", "class_sensitivity,randomization")
    assert code == 0 and "PASSES the required criteria (class_sensitivity, randomization)" in out
    code, out, _ = _check(capsys, "noise_copy", "--against", board, "--out", keep, "--require", "pointing_game")
    assert code == 1 and "FAILS" in out
    code, _, err = _check(capsys, "noise_copy", "--against", board, "--require", "beauty")
    assert code == 2 and "unknown criterion 'beauty'" in err and len(err.strip().splitlines()) == 1


def test_vs_names_the_recorded_methods_to_compare_with(board_dir, tmp_path, capsys):
    board = str(board_dir / "leaderboard.json")
    code, out, _ = _check(capsys, "noise_copy", "--against", board, "--out", str(tmp_path / "r"), "--vs", "random")
    diff_rows = [line for line in out.splitlines() if line.startswith(("edge ", "random "))]
    assert diff_rows and all(line.startswith("random ") for line in diff_rows)
    code, _, err = _check(capsys, "noise_copy", "--against", board, "--vs", "gradcam")
    assert code == 2 and "--vs gradcam: not on" in err


def test_add_writes_a_new_board_elsewhere_and_never_over_the_recorded_one(board_dir, tmp_path, capsys):
    board = board_dir / "leaderboard.json"
    before = board.read_bytes(), (board_dir / "leaderboard.md").read_bytes()
    code, _, err = _check(capsys, "noise_copy", "--against", str(board), "--add", str(board_dir))
    assert code == 2 and "would overwrite" in err
    added = tmp_path / "added"
    code, out, _ = _check(capsys, "noise_copy", "--against", str(board), "--add", str(added),
                          "--out", str(tmp_path / "r"))
    assert code == 1 and str(added / "leaderboard.md") in out
    new = json.loads((added / "leaderboard.json").read_text())
    assert set(new["methods"]) == {"edge", "random", "noise_copy"}
    assert new["methods"]["noise_copy"]["verdicts"]["overall"] == "fail"
    assert "`noise_copy`" in (added / "leaderboard.md").read_text()
    assert (added / "figures" / "maps_added.png").exists()
    assert (board.read_bytes(), (board_dir / "leaderboard.md").read_bytes()) == before


def test_an_improvement_is_reported_as_one_and_passes(board_dir, tmp_path, capsys):
    """Class sensitivity recorded at 0.9 and measured near 0 (lower is better): improved, exit 0."""
    path = tmp_path / "leaderboard.json"
    board = json.loads((board_dir / "leaderboard.json").read_text())
    board["methods"]["random"]["results"]["class_sensitivity"]["metrics"]["spearman_hog"].update(
        value=0.9, ci_low=0.85, ci_high=0.95)
    path.write_text(json.dumps(board))
    code, out, _ = _check(capsys, "random", "--against", str(path), "--out", str(tmp_path / "r"))
    assert code == 0, out
    row = next(l for l in out.splitlines() if "class_sensitivity" in l and "spearman_hog " in l)
    assert "improved" in row and "lower is better" in row
    assert "improved)" in out.splitlines()[-1]


def test_a_recorded_n_a_that_becomes_a_number_is_an_improvement_and_the_reverse_a_regression():
    from saliency_bench.board.recheck import _metric_rows

    number = {"status": "ok", "metrics": {"accuracy": {"value": 0.8, "ci_low": 0.7, "ci_high": 0.9}}}
    undefined = {"status": "n/a", "reason": "GAP head"}
    assert [r["verdict"] for r in _metric_rows("m", "c", undefined, number, None)] == ["improved"]
    assert [r["verdict"] for r in _metric_rows("m", "c", number, undefined, None)] == ["regression"]
    assert [r["verdict"] for r in _metric_rows("m", "c", undefined, undefined, None)] == ["ok"]
    failed = {"status": "failed", "error": "raised"}
    assert [r["verdict"] for r in _metric_rows("m", "c", failed, number, None)] == ["improved"]
    assert [r["verdict"] for r in _metric_rows("m", "c", number, failed, None)] == ["failed"]


@pytest.mark.parametrize("better, new, verdict", [
    ("higher", 0.95, "improved"), ("higher", 0.60, "regression"), ("lower", 0.95, "regression"),
    ("lower", 0.60, "improved"), (None, 0.95, "changed"), ("higher", 0.805, "ok"),
])
def test_only_a_move_in_the_bad_direction_is_a_regression(better, new, verdict):
    from saliency_bench.board.recheck import _metric_rows

    old = {"status": "ok", "metrics": {"m": {"value": 0.8, "ci_low": 0.75, "ci_high": 0.85}}}
    now = {"status": "ok", "metrics": {"m": {"value": new}}}
    [row] = _metric_rows("x", "c", old, now, None, {"m": better} if better else {})
    assert row["verdict"] == verdict


def _results(pointing, restricted, sensitivity, randomization, low=None):
    def m(value, ci_low=None):
        return {"value": value, "ci_low": ci_low if ci_low is not None else value - 0.02, "ci_high": value + 0.02}
    return {
        "pointing_game": {"status": "ok", "metrics": {"accuracy": m(pointing, low)}},
        "restricted_pointing_game": {"status": "ok", "metrics": {"accuracy": m(restricted)}},
        "class_sensitivity": {"status": "ok", "metrics": {"spearman_hog": m(sensitivity)}},
        "randomization": {"status": "ok", "metrics": {"spearman_hog_final": m(randomization)}},
    }


def _builtin_checks():
    from saliency_bench.checks.class_sensitivity import ClassSensitivity
    from saliency_bench.checks.pointing import PointingGame, RestrictedPointingGame
    from saliency_bench.checks.randomization import CascadingRandomization

    return [CascadingRandomization(), ClassSensitivity(), RestrictedPointingGame(), PointingGame()]


def test_a_board_written_when_the_controls_family_was_baseline_is_judged_alike():
    """Boards committed before the controls' family was named ``control`` say ``baseline``: same bars, verdicts."""
    from saliency_bench.board.verdicts import control_bars, rules_of, verdicts

    rules = rules_of(_builtin_checks())
    for family in ("control", "baseline"):
        board = {"random": {"family": family, "results": _results(0.18, 0.19, 0.02, 0.02)},
                 "edge": {"family": family, "results": _results(0.48, 0.48, 1.0, 1.0)}}
        bars = control_bars(board, rules)
        assert bars["localisation"]["value"] == 0.48 and bars["localisation"]["controls"] == ["edge", "random"]
        assert verdicts(_results(0.9, 0.6, 0.3, 0.1), rules, bars)["overall"] == "pass"


def test_noise_passes_the_necessary_conditions_but_not_the_composite_verdict():
    from saliency_bench.board.verdicts import control_bars, rules_of, verdicts

    rules = rules_of(_builtin_checks())
    assert [r.letter for r in rules] == ["P", "L", "G", "C", "R"]  # board order, whatever the registration order
    board = {"random": {"family": "control", "results": _results(0.18, 0.19, 0.02, 0.02)},
             "edge": {"family": "control", "results": _results(0.48, 0.48, 1.0, 1.0)}}
    bars = control_bars(board, rules)
    assert bars["localisation"]["value"] == 0.48 and bars["localisation"]["best_control"] == "edge"
    noise = verdicts(board["random"]["results"], rules, bars)
    assert noise["class_sensitivity"] == noise["randomization"] == "pass"
    assert noise["pointing_game"] == "fail" and noise["overall"] == "fail"
    sound = verdicts(_results(0.9, 0.6, 0.3, 0.1), rules, bars)
    assert set(sound.values()) == {"pass"}
    barely = verdicts(_results(0.52, 0.40, 0.3, 0.1, low=0.47), rules, bars)  # above 0.5; its interval reaches edge
    assert barely["pointing_game"] == "pass" and barely["localisation"] == "fail" and barely["overall"] == "fail"
    undefined = verdicts({"pointing_game": {"status": "n/a"}}, rules, bars)
    assert undefined["overall"] == "–"
    assert verdicts(_results(0.9, 0.6, 0.3, 0.1), rules, {})["localisation"] == "–"  # no controls: undecided


def test_ranks_share_ties_and_follow_the_direction():
    from saliency_bench.board.candidate import rank

    assert rank(0.9, [0.95, 0.9, 0.5], "higher") == 2
    assert rank(0.9, [0.95, 0.9, 0.5], "lower") == 2  # only 0.5 is better; the tie shares
    assert rank(0.96, [0.95, 0.9, 0.5], "lower") == 4
    assert rank(None, [0.1], "lower") is None


def test_nearest_neighbors_leave_out_the_controls():
    from saliency_bench.board.candidate import nearest
    from saliency_bench.board.verdicts import columns_of

    board = {"methods": {
        "edge": {"family": "control", "results": _results(0.9, 0.6, 0.3, 0.1)},
        "a": {"family": "propagation", "results": _results(0.9, 0.6, 0.3, 0.12)},
        "b": {"family": "propagation", "results": _results(0.5, 0.5, 0.9, 0.9)},
        "c": {"family": "propagation", "results": _results(0.85, 0.6, 0.35, 0.1)},
    }}
    values = {"pointing": 0.9, "gap": 0.3, "class_sensitivity": 0.3, "randomization": 0.1}
    assert nearest(values, board, columns_of(_builtin_checks()), k=2) == ["a", "c"]


def test_without_a_rule_against_the_controls_the_composite_verdict_is_undecided():
    """A board of the similarity checks only: noise passes both necessary conditions, but never 'overall'."""
    from saliency_bench.checks.class_sensitivity import ClassSensitivity
    from saliency_bench.checks.randomization import CascadingRandomization
    from saliency_bench.board.verdicts import judge

    methods = {"random": {"family": "control", "results": _results(0.18, 0.19, 0.02, 0.02)},
               "noise": {"family": "propagation", "results": _results(0.18, 0.19, 0.02, 0.02)}}
    judge(methods, [ClassSensitivity(), CascadingRandomization()])
    assert methods["noise"]["verdicts"] == {"class_sensitivity": "pass", "randomization": "pass", "overall": "–"}


def test_add_refuses_to_replace_a_board_of_another_configuration_and_lists_its_files(board_dir, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    foreign = json.loads((board_dir / "leaderboard.json").read_text())
    foreign["config"]["images"] = 3
    (other / "leaderboard.json").write_text(json.dumps(foreign))
    code, _, err = _check(capsys, "noise_copy", "--against", str(board_dir / "leaderboard.json"), "--add", str(other))
    assert code == 2 and "another configuration" in err
    added = tmp_path / "added"
    code, out, _ = _check(capsys, "noise_copy", "--against", str(board_dir / "leaderboard.json"), "--add", str(added))
    listed = out.splitlines()[-1]
    assert "leaderboard.json" in listed and "figures/maps_added.png" in listed
    code, _, _ = _check(capsys, "noise_copy", "--against", str(board_dir / "leaderboard.json"), "--add", str(added))
    assert code == 1  # its own earlier output (the same board plus the same row) may be replaced


def test_a_check_without_out_leaves_no_temporary_folder(board_dir, tmp_path, capsys, monkeypatch):
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    code, _, _ = _check(capsys, "random", "--against", str(board_dir / "leaderboard.json"))
    assert code == 0 and list(scratch.iterdir()) == []


class FirstBlockEnergy(Method):
    """The mean |activation| of block B1, upsampled: a map that depends on which modules the blocks are."""

    name, family, positive = "b1_energy", "aggregation", True

    def attribute(self, model, inputs, targets):
        seen = {}
        hook = model.blocks["B1"].register_forward_hook(lambda module, args, out: seen.setdefault("B1", out))
        try:
            with torch.no_grad():
                model(inputs)
        finally:
            hook.remove()
        energy = seen["B1"].abs().mean(dim=1, keepdim=True)
        return torch.nn.functional.interpolate(energy, size=inputs.shape[2:], mode="nearest")[:, 0]


class BlockMethods:
    @hookimpl
    def register_methods(self, register):
        register(FirstBlockEnergy())


def test_check_reuses_the_blocks_a_board_was_run_with(board_dir, pm, tmp_path, capsys, monkeypatch):
    """A board run with --blocks (not the model's rule) checks clean without --blocks: the rerun uses its blocks."""
    from saliency_bench.board import recheck as regression

    chosen = {"B1": "features.0", "B2": "features.6"}  # conv outputs; the rule reads ReLUs features.1, .4, ...
    pm.register(BlockMethods(), name="block-methods")  # board_dir keeps the fake model and dataset registered
    try:
        out = tmp_path / "board"
        assert main(["run", "-m", "b1_energy", "--model", "fake_vgg", "--checks", "pointing_game", "--limit", "4",
                     "--batch-size", "4", "--blocks", ",".join(chosen.values()), "--out", str(out),
                     "--no-progress", "--no-speed"]) == 0
        board = out / "leaderboard.json"
        assert json.loads(board.read_text())["config"]["model"]["blocks"] == chosen
        reruns = []
        run_benchmark = regression.run_benchmark

        def spy(options, **kwargs):
            report = run_benchmark(options, **kwargs)
            reruns.append((options.blocks, report.store.config["model"]["blocks"]))
            return report

        monkeypatch.setattr(regression, "run_benchmark", spy)
        code, table, err = _check(capsys, "b1_energy", "--against", str(board))
        assert code == 0, err
        assert "b1_energy" in table and "regression" not in table
        assert "note: blocks features.0,features.6 as recorded on" in err
        assert reruns == [(list(chosen.values()), chosen)]
        code, _, err = _check(capsys, "b1_energy", "--against", str(board), "--blocks", "features.1,features.4")
        assert code == 2 and "configuration not reproducible here" in err  # the user's --blocks still wins
        assert reruns[-1][0] == ["features.1", "features.4"] and "as recorded on" not in err
    finally:
        pm.unregister(name="block-methods")


def test_a_board_of_the_rules_blocks_reruns_without_blocks(board_dir, tmp_path, capsys, monkeypatch):
    """Blocks recorded by the model's own rule: the rerun passes no --blocks (its configuration as before)."""
    from saliency_bench.board import recheck as regression

    seen = []
    run_benchmark = regression.run_benchmark
    monkeypatch.setattr(regression, "run_benchmark", lambda options, **kw: seen.append(options.blocks) or
                        run_benchmark(options, **kw))
    code, _, err = _check(capsys, "random", "--against", str(board_dir / "leaderboard.json"))
    assert code == 0 and seen == [None] and "as recorded on" not in err


def test_a_check_that_no_method_of_the_board_has_a_value_for_is_left_out_of_the_composite():
    """Data randomisation on a model without a random-label twin: n/a for every method, so it decides nothing."""
    from saliency_bench.board.verdicts import judge, undecidable, rules_of

    checks = _builtin_checks()
    methods = {"random": {"family": "control", "results": _results(0.18, 0.19, 0.02, 0.02)},
               "edge": {"family": "control", "results": _results(0.48, 0.48, 1.0, 1.0)},
               "sound": {"family": "propagation", "results": _results(0.9, 0.6, 0.3, 0.1)}}
    for entry in methods.values():  # every method n/a on class sensitivity
        entry["results"]["class_sensitivity"] = {"status": "n/a", "reason": "no second class"}
    assert undecidable(methods, rules_of(checks)) == {"class_sensitivity"}
    judge(methods, checks)
    assert methods["sound"]["verdicts"]["class_sensitivity"] == "–" and methods["sound"]["verdicts"]["overall"] == "pass"
    methods["sound"]["results"]["class_sensitivity"] = _results(0.9, 0.6, 0.9, 0.1)["class_sensitivity"]  # one has it
    judge(methods, checks)
    assert methods["sound"]["verdicts"]["overall"] == "fail" and methods["edge"]["verdicts"]["overall"] == "fail"
