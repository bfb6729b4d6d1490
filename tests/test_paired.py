"""Paired statistics: hand-made differences, the board's values as statistics of its per-image data, `compare`,
and `check` pairing a rerun with its recorded per-image values (a small real regression caught, noise not)."""
import json
import shutil

import numpy as np
import pytest

from saliency_bench.board.values import FILE, read_sidecar, write_sidecar
from saliency_bench.checks.stats import finite_mean, weighted_mean
from saliency_bench.cli import main
from saliency_bench.board.paired import paired_difference, reading

from saliency_bench import plugins

from small_board import run_and_write, shipped_manager, shipped_registry


@pytest.fixture
def shipped(monkeypatch):
    """The command line sees the shipped methods (a fresh process-wide manager, restored after the test)."""
    monkeypatch.setattr(plugins, "_PM", shipped_manager())


def test_identical_data_differ_by_exactly_zero():
    data = np.random.default_rng(0).normal(size=50)
    entry = paired_difference(weighted_mean, data, data.copy(), n_boot=200)
    assert entry == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n": 50, "excludes_zero": False}
    assert reading(entry, "higher") == "no clear difference"


def test_a_shift_on_every_image_is_clear_however_noisy_the_images():
    """Images vary by +-10 but A is B + 0.01 on every image: unpaired intervals overlap, the paired one is exact."""
    b = np.random.default_rng(1).normal(scale=10.0, size=40)
    entry = paired_difference(weighted_mean, b + 0.01, b, n_boot=300)
    assert entry["excludes_zero"] and entry["ci_low"] == pytest.approx(0.01) and entry["ci_high"] == pytest.approx(0.01)
    assert reading(entry, "higher") == "better" and reading(entry, "lower") == "worse"
    assert reading(entry, None) == "differs"


def test_a_difference_of_mean_zero_is_not_clear():
    b = np.linspace(0.0, 1.0, 40)
    noise = np.where(np.arange(40) % 2 == 0, 0.05, -0.05)  # +-0.05, exactly mean zero
    entry = paired_difference(weighted_mean, b + noise, b, n_boot=500)
    assert entry["value"] == pytest.approx(0.0, abs=1e-12) and not entry["excludes_zero"]
    assert entry["ci_low"] < 0 < entry["ci_high"]


def test_undefined_images_are_left_out_on_each_side_and_mismatched_images_refused():
    a, b = np.array([1.0, np.nan, 3.0]), np.array([1.0, 2.0, 3.0])
    assert paired_difference(finite_mean, a, b, n_boot=50)["value"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="same images"):
        paired_difference(finite_mean, a, b[:2])


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    folder = tmp_path_factory.mktemp("paired")
    run_and_write(folder / "out", folder / "board")
    return folder / "board" / "leaderboard.json"


def test_every_metric_on_the_board_is_its_statistic_of_the_recorded_per_image_data(board):
    recorded = json.loads(board.read_text())
    data = read_sidecar(recorded, board)
    registry = shipped_registry()
    checked = 0
    for name, by_check in data.items():
        for check_name, metrics in by_check.items():
            check = registry.checks[check_name].obj
            for metric, statistic in check.statistics.items():
                value = statistic(metrics[metric], np.ones((1, len(metrics[metric]))))[0]
                assert round(float(value), 6) == recorded["methods"][name]["results"][check_name]["metrics"][metric]["value"]
                checked += 1
    assert checked == 2 * (2 + 2 + 2 + 8)  # 2 methods x the metrics of the 4 checks


def _compare(capsys, *argv):
    code = main(["compare", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_compare_prints_every_metric_paired(board, capsys, shipped):
    code, out, err = _compare(capsys, "gradient", "random", "--against", str(board))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert "gradient minus random" in lines[0] and "paired over the same images" in lines[0]
    pointing = next(line for line in lines if line.startswith("pointing_game") and "accuracy *" in line)
    assert pointing.split()[-2:] == ["yes", "better"]  # gradient localises, noise does not
    assert sum(line.startswith("randomization") for line in lines) == 8
    code, out, _ = _compare(capsys, "gradient", "gradient", "--against", str(board), "--json")
    rows = json.loads(out)
    assert code == 0 and all(row["value"] == 0.0 and not row["excludes_zero"] for row in rows)


def test_compare_refuses_a_missing_altered_or_foreign_values_file(board, capsys, shipped, tmp_path):
    copy = tmp_path / "leaderboard.json"
    shutil.copy(board, copy)
    code, _, err = _compare(capsys, "gradient", "random", "--against", str(copy))
    assert code == 2 and f"no {FILE} beside" in err and len(err.splitlines()) == 1
    sidecar = board.with_name(FILE)
    text = sidecar.read_text()
    (tmp_path / FILE).write_text(text.replace('"seed": 0', '"seed": 5', 1))
    code, _, err = _compare(capsys, "gradient", "random", "--against", str(copy))
    assert code == 2 and "digest mismatch" in err and len(err.splitlines()) == 1
    other = json.loads(board.read_text())
    other["config"]["seed"] = 5
    write_sidecar(other, read_sidecar(json.loads(board.read_text()), board), tmp_path / FILE)
    code, _, err = _compare(capsys, "gradient", "random", "--against", str(copy))
    assert code == 2 and "belongs to another board" in err
    code, _, err = _compare(capsys, "gradient", "nope", "--against", str(board))
    assert code == 2 and "'nope' is not on" in err


def _with_recorded(board, tmp_path, change):
    """A copy of the board whose recorded per-image data of gradient on class sensitivity went through ``change``."""
    recorded = json.loads(board.read_text())
    data = read_sidecar(recorded, board)
    data["gradient"]["class_sensitivity"]["spearman_hog"] = change(data["gradient"]["class_sensitivity"]["spearman_hog"])
    tmp_path.mkdir()
    copy = tmp_path / "leaderboard.json"
    shutil.copy(board, copy)
    write_sidecar(recorded, data, tmp_path / FILE)
    return copy


def _check_rows(capsys, against):
    code = main(["check", "gradient", "--against", str(against), "--no-progress"])
    out, _ = capsys.readouterr()
    rows = [line.split() for line in out.splitlines() if line.startswith("gradient ")]
    return code, {(row[1], row[2]): row for row in rows}


def test_check_pairs_a_rerun_with_its_recorded_values(board, capsys, shipped, tmp_path):
    code, rows = _check_rows(capsys, board)
    assert code == 0 and rows and all(row[-1] == "ok" and "paired" in row for row in rows.values())
    # recorded 0.004 lower (better) on every image: the rerun is a small regression; the unpaired band (the
    # recorded interval +-0.001) would not see it
    recorded = json.loads(board.read_text())["methods"]["gradient"]["results"]["class_sensitivity"]["metrics"]
    assert recorded["spearman_hog"]["ci_high"] - recorded["spearman_hog"]["ci_low"] > 0.02
    code, rows = _check_rows(capsys, _with_recorded(board, tmp_path / "shifted", lambda d: d - 0.004))
    assert code == 1 and rows[("class_sensitivity", "spearman_hog")][-1] == "regression"
    assert rows[("class_sensitivity", "spearman_raw")][-1] == "ok"
    # +-0.05 noise of mean zero on the recorded values: not a regression
    noise = lambda d: d + np.where(np.arange(len(d)) % 2 == 0, 0.05, -0.05)  # noqa: E731
    code, rows = _check_rows(capsys, _with_recorded(board, tmp_path / "noisy", noise))
    assert code == 0 and rows[("class_sensitivity", "spearman_hog")][-1] == "ok"
