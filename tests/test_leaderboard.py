"""Leaderboard determinism, its contents, and the `check` regression command (pass, regression, user error)."""
import json

import pytest

from fakes import FakePlugin
from saliency_bench.cli import main

CHECKS = ["pointing_game", "restricted_pointing_game", "class_sensitivity", "randomization"]


@pytest.fixture(scope="module")
def fakes():
    from saliency_bench.plugins import get_plugin_manager

    pm = get_plugin_manager()
    pm.register(FakePlugin(), name="fakes")
    try:
        yield pm
    finally:
        pm.unregister(name="fakes")


def _run(tmp_path, name, *extra):
    out = tmp_path / name
    code = main(["run", "-m", "edge", "random", "--model", "fake_vgg", "--checks", *CHECKS, "--out", str(out),
                 "--batch-size", "5", "--no-progress", *extra])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def board_dir(fakes, tmp_path_factory):
    """One run shared by the tests that only read or copy its board."""
    return _run(tmp_path_factory.mktemp("board"), "a")


def test_two_runs_give_byte_identical_json(fakes, board_dir, tmp_path):
    first, second = board_dir, _run(tmp_path, "b")
    assert (first / "leaderboard.json").read_bytes() == (second / "leaderboard.json").read_bytes()
    board = json.loads((first / "leaderboard.json").read_text())
    edge = board["methods"]["edge"]["results"]
    assert edge["class_sensitivity"]["metrics"]["spearman_hog"]["value"] == pytest.approx(1.0)
    assert edge["randomization"]["metrics"]["spearman_hog_final"]["value"] == pytest.approx(1.0)
    assert board["methods"]["random"]["results"]["class_sensitivity"]["metrics"]["spearman_hog"]["value"] < 0.3
    for check in CHECKS:
        assert check in board["checks"] and board["checks"][check]["seed"] == 0


def test_speed_columns_are_in_the_markdown_and_kept_out_of_the_json(fakes, board_dir, tmp_path):
    text = (board_dir / "leaderboard.md").read_text()
    assert "| ms/img" in text and "× floor" in text and "forward plus one backward" in text
    speed = json.loads((board_dir / "leaderboard-speed.json").read_text())["methods"]
    assert set(speed) == {"edge", "random"} and all(row["ratio_to_floor"] > 0 for row in speed.values())
    assert "ms_per_image" not in (board_dir / "leaderboard.json").read_text()
    quiet = _run(tmp_path, "quiet", "--no-speed")
    assert "ms/img" not in (quiet / "leaderboard.md").read_text()
    assert not (quiet / "leaderboard-speed.json").exists()
    assert (quiet / "leaderboard.json").read_bytes() == (board_dir / "leaderboard.json").read_bytes()
    (quiet / "leaderboard-speed.json").write_text("{}")  # an older run's figures must not outlive their board
    _run(tmp_path, "quiet", "--no-speed")
    assert not (quiet / "leaderboard-speed.json").exists()


def test_markdown_has_summary_thresholds_reference_and_figures(board_dir):
    out = board_dir
    text = (out / "leaderboard.md").read_text()
    assert "## Summary" in text and "How to read this" in text and "pass if spearman_hog <= 0.5" in text
    assert "VGG-16/VOC07" not in text  # the controls have no paper values: no empty paper columns (test_board_index)
    assert "figures/randomization.png" in text and (out / "figures" / "randomization.png").exists()
    assert (out / "figures" / "maps_control.png").exists()


def test_check_passes_on_unchanged_methods(board_dir, tmp_path, capsys):
    out = board_dir
    capsys.readouterr()
    code = main(["check", "edge", "random", "--against", str(out / "leaderboard.json"), "--out",
                 str(tmp_path / "rerun"), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "regression" not in printed.split("\n")[-2] and "metrics hold" in printed


def test_check_flags_a_regression(board_dir, tmp_path, capsys):
    path = tmp_path / "leaderboard.json"
    path.write_text((board_dir / "leaderboard.json").read_text())
    board = json.loads(path.read_text())
    metric = board["methods"]["edge"]["results"]["class_sensitivity"]["metrics"]["spearman_hog"]
    metric.update(value=0.5, ci_low=0.45, ci_high=0.55)
    path.write_text(json.dumps(board))
    capsys.readouterr()
    code = main(["check", "edge", "--against", str(path), "--out", str(tmp_path / "rerun"), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 1
    row = next(l for l in printed.splitlines() if "spearman_hog " in l and "class_sensitivity" in l)
    assert "regression" in row and "0.5000" in row
    assert main(["check", "edge", "--against", str(path), "--tolerance", "0.51", "--out",
                 str(tmp_path / "rerun2"), "--no-progress"]) == 0


@pytest.mark.parametrize("methods, message", [(["nope"], "unknown method"), (["raises"], "unknown method")])
def test_check_user_errors(board_dir, capsys, methods, message):
    out = board_dir
    capsys.readouterr()
    code = main(["check", *methods, "--against", str(out / "leaderboard.json")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_check_judges_a_method_not_on_the_board_as_a_new_one(board_dir, pm, capsys):
    """Not a user error any more: the method gets its row as it would stand on the board (test_check_board.py)."""
    from fakes import BrokenMethodsPlugin

    pm.register(BrokenMethodsPlugin(), name="broken")
    try:
        capsys.readouterr()
        code = main(["check", "undefined", "--against", str(board_dir / "leaderboard.json"), "--no-progress"])
    finally:
        pm.unregister(name="broken")
    printed = capsys.readouterr().out
    assert code == 1 and "not on" in printed and "n/a on pointing_game" in printed


def test_check_refuses_an_invalid_file(fakes, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["check", "edge", "--against", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_check_into_a_named_folder_keeps_its_results(board_dir, tmp_path, capsys):
    """``check --out DIR`` resumes like ``run``; it never wipes a folder the user named."""
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    assert main(["check", "edge", "--against", str(board_dir / "leaderboard.json"), "--out", str(keep),
                 "--no-progress"]) == 0
    first = sorted(p.stat().st_mtime_ns for p in (keep / "results").rglob("*.json"))
    assert main(["check", "edge", "--against", str(board_dir / "leaderboard.json"), "--out", str(keep),
                 "--no-progress"]) == 0
    assert sorted(p.stat().st_mtime_ns for p in (keep / "results").rglob("*.json")) == first
    assert (keep / "notes.txt").read_text() == "mine"


def test_a_cross_machine_float_difference_is_never_a_regression():
    """The largest difference measured between two machines of the same kind (2.3e-4) passes the default band,
    also on a degenerate interval (a model-independent control's [1, 1]); 5e-3 beyond it does not."""
    from saliency_bench.board.recheck import MACHINE_TOLERANCE, _metric_rows

    recorded = {"status": "ok", "metrics": {"m": {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n": 4},
                                            "bare": {"value": 0.5, "n": 4}}}
    drifted = {"status": "ok", "metrics": {"m": {"value": 1.0 - 2.3e-4}, "bare": {"value": 0.5 + 2.3e-4}}}
    assert MACHINE_TOLERANCE >= 4 * 2.3e-4
    assert [r["verdict"] for r in _metric_rows("x", "c", recorded, drifted, None)] == ["ok", "ok"]
    broken = {"status": "ok", "metrics": {"m": {"value": 1.0 - 5e-3}, "bare": {"value": 0.5 + 5e-3}}}
    better = {"m": "higher", "bare": "lower"}  # both moved the bad way
    assert [r["verdict"] for r in _metric_rows("x", "c", recorded, broken, None, better)] == ["regression", "regression"]
    assert [r["verdict"] for r in _metric_rows("x", "c", recorded, broken, None)] == ["changed", "changed"]
