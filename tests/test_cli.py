"""The command line: list, run, exit codes, one-line user errors, interruption and resume."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from saliency_bench.cli import main

DRIVER = str(Path(__file__).with_name("cli_driver.py"))


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    err = "\n".join(l for l in err.splitlines() if not l.startswith("warning: plugin 'saliency_bench."))
    return code, out, err


def test_list_shows_methods_with_family_and_provider(fakes, capsys):
    code, out, _ = _run(capsys, "list")
    assert code == 0
    line = next(l for l in out.splitlines() if l.startswith("random "))
    assert "control" in line and "saliency-bench" in line
    assert "mean_map" in out and "fake_vgg" in out and "squares" in out


def test_run_writes_results_and_board(fakes, capsys, tmp_path):
    out_dir = tmp_path / "o"
    code, _, err = _run(capsys, "run", "-m", "edge", "rand*", "--model", "fake_vgg", "--checks", "mean_map",
                        "--out", str(out_dir), "--no-progress")
    assert code == 0, err
    assert (out_dir / "results" / "mean_map" / "edge.json").exists()
    board = json.loads((out_dir / "leaderboard.json").read_text())
    assert set(board["methods"]) == {"edge", "random"}
    assert "done in" in err


def test_run_with_failing_method_exits_1_after_the_others(fakes, capsys, tmp_path):
    code, _, err = _run(capsys, "run", "-m", "raises", "edge", "--model", "fake_vgg", "--checks", "mean_map",
                        "--out", str(tmp_path / "o"), "--no-progress")
    assert code == 1
    assert "FAILED raises" in err
    board = json.loads((tmp_path / "o" / "leaderboard.json").read_text())
    assert board["methods"]["raises"]["status"] == "failed"
    assert board["methods"]["edge"]["status"] == "ok"


@pytest.mark.parametrize("argv, message", [
    (["run", "-m", "nope", "--model", "fake_vgg"], "unknown method 'nope'"),
    (["run", "-m", "edge", "--model", "fake_vgg", "--checks", "nope"], "unknown check 'nope'"),
    (["run", "-m", "edge", "--model", "nope"], "unknown model 'nope'"),
    (["run", "-m", "edge", "--model", "fake_vgg", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["run", "-m", "edge", "--model", "fake_vgg", "--limit", "0"], "--limit: expected an integer in [1, 1000000000], got '0'"),
    (["run", "-m", "edge", "--model", "fake_vgg", "--batch-size", "x"], "--batch-size: expected an integer in [1, 65536], got 'x'"),
    (["run", "-m", "edge", "--model", "fake_vgg", "--device", "tpu"], "unknown device"),
    (["run", "-m", "edge", "--model", "fake_vgg", "--param", "oops"], "CHECK.KEY=VALUE"),
    (["run", "-m", "edge", "--model", "fake_vgg", "--checks", "mean_map", "--param", "mean_map.x=1"],
     "has no parameter 'x'"),
    (["run", "--model", "fake_vgg"], "choose methods"),
    (["run", "-m", "edge", "--model", "fake_vgg", "--checks", "mean_map", "--param", "mean_map.scale=abc"],
     "parameter mean_map.scale must be a finite number, got 'abc'"),
    (["run", "-m", "edge", "--model", "fake_vgg", "--seed", "-1"], "--seed: expected an integer in [0, 4294967295], got '-1'"),
    (["run", "-m", "edge", "--model", "fake_vgg", "--workers", "-1"], "--workers: expected an integer in [0, 256], got '-1'"),
    (["run", "-m", "edge", "--model", "fake_vgg", "--weights", "/no/such/weights.pt"], "/no/such/weights.pt"),
    (["frobnicate"], "invalid choice"),
    (["check", "edge", "--against", "/no/such/leaderboard.json"], "/no/such/leaderboard.json"),
])
def test_user_errors_are_one_line_exit_2(fakes, capsys, tmp_path, argv, message):
    if "--out" not in argv and argv[0] == "run":
        argv = argv + ["--out", str(tmp_path / "o")]
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert message in err and "Traceback" not in err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU exists, so cuda is not an error")
def test_cuda_without_gpu_is_a_user_error(fakes, capsys, tmp_path):
    code, _, err = _run(capsys, "run", "-m", "edge", "--model", "fake_vgg", "--device", "cuda",
                        "--out", str(tmp_path / "o"))
    assert code == 2 and "no CUDA GPU" in err


def test_resume_with_other_configuration_is_refused(fakes, capsys, tmp_path):
    argv = ["run", "-m", "edge", "--model", "fake_vgg", "--checks", "mean_map", "--out", str(tmp_path / "o"),
            "--no-progress"]
    assert _run(capsys, *argv)[0] == 0
    code, _, err = _run(capsys, *argv, "--seed", "5")
    assert code == 2 and "another configuration" in err and len(err.strip().splitlines()) == 1


def _results(folder: Path) -> dict:
    return {
        p.relative_to(folder / "results").as_posix(): json.loads(p.read_text())
        for p in sorted((folder / "results").glob("*/*.json"))
    }


def test_interrupted_run_resumes_without_recomputing(tmp_path):
    """Kill the process mid-run; the rerun reuses finished results and ends equal to an uninterrupted run."""
    env = {**os.environ, "SALIENCY_BENCH_PLUGINS": "", "TQDM_DISABLE": "1"}
    out = tmp_path / "interrupted"
    argv = [sys.executable, DRIVER, "run", "-m", "edge", "slow", "random", "--model", "fake_vgg",
            "--checks", "mean_map", "--batch-size", "2", "--no-progress", "--no-speed", "--out", str(out)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    edge = out / "results" / "mean_map" / "edge.json"
    deadline = time.time() + 120
    while not edge.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert edge.exists(), "the run never stored its first result"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "results" / "mean_map" / "random.json").exists(), "killed too late to test resume"
    finished = edge.stat().st_mtime_ns
    rerun = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 reused" in rerun.stderr
    assert edge.stat().st_mtime_ns == finished
    clean = tmp_path / "clean"
    argv_clean = argv[:-1] + [str(clean)]
    assert subprocess.run(argv_clean, env=env, capture_output=True, timeout=300).returncode == 0
    resumed, uninterrupted = _results(out), _results(clean)
    assert set(resumed) == {"mean_map/edge.json", "mean_map/slow.json", "mean_map/random.json"}
    assert resumed == uninterrupted


# -- issue 13.4: every user error exits 2 with one line naming the problem and the fix --------------------------------

def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    for needle in needles:
        assert needle in err, err


@pytest.fixture
def no_work(monkeypatch):
    """Fail loudly (exit 1, "internal error") if the command gets as far as loading a model or rerunning anything."""
    import saliency_bench.board.recheck
    import saliency_bench.run.resolve

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the user error was found")

    monkeypatch.setattr(saliency_bench.run.resolve, "open_suite", refuse)
    monkeypatch.setattr(saliency_bench.board.recheck, "run_benchmark", refuse)


@pytest.mark.parametrize("where, needle", [
    ("file", "is an existing file, not a folder"),
    ("file/sub", "which is a file, not a folder"),
    ("file/sub/deeper", "which is a file, not a folder"),
])
def test_out_that_is_or_lies_under_a_file_is_refused_first(fakes, capsys, tmp_path, no_work, where, needle):
    (tmp_path / "file").write_text("keep me")
    out = tmp_path / where
    code, _, err = _run(capsys, "run", "-m", "edge", "--model", "fake_vgg", "--out", str(out), "--no-progress")
    _one_line_error(code, err, f"--out {out}", needle, "choose")
    assert (tmp_path / "file").read_text() == "keep me"
    code, _, err = _run(capsys, "check", "edge", "--against", str(tmp_path / "none.json"), "--out", str(out))
    _one_line_error(code, err, f"--out {out}", needle)


def test_out_on_a_read_only_file_system_is_refused_first(fakes, capsys, tmp_path, monkeypatch, no_work):
    real = os.statvfs

    class ReadOnly:
        def __init__(self, path):
            self.f_flag = real(path).f_flag | os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", ReadOnly)
    code, _, err = _run(capsys, "run", "-m", "edge", "--model", "fake_vgg", "--out", str(tmp_path / "o"))
    _one_line_error(code, err, "read-only file system", "choose a writable folder")
    assert not (tmp_path / "o").exists()


def test_out_without_write_permission_is_refused_first(fakes, capsys, tmp_path, monkeypatch, no_work):
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # root may write anywhere: pretend otherwise
    code, _, err = _run(capsys, "run", "-m", "edge", "--model", "fake_vgg", "--out", str(tmp_path / "o"))
    _one_line_error(code, err, "is not writable", "choose a writable folder")


@pytest.mark.parametrize("param, message", [
    ("pointing_game.tolerance=nan", "parameter pointing_game.tolerance must be a finite number >= 0, got nan"),
    ("pointing_game.tolerance=-5", "parameter pointing_game.tolerance must be a finite number >= 0, got -5.0"),
    ("pointing_game.seed=-3", "parameter pointing_game.seed must be an integer in [0, 4294967295], got -3"),
    ("pointing_game.tie_rule=foo", "must be one of plateau_centre, first_index, got 'foo'"),
    ("randomization.init_std=nan", "parameter randomization.init_std must be a finite number in (0, 1e+06], got nan"),
    ("randomization.ssim_window=8", "parameter randomization.ssim_window must be an odd integer >= 3, got 8"),
    ("randomization.draws=0", "parameter randomization.draws must be an integer in [1, 1000000], got 0"),
    ("randomization.init=xavier", "parameter randomization.init must be one of layer_std, fixed, got 'xavier'"),
    ("class_sensitivity.hog_cell=0", "parameter class_sensitivity.hog_cell must be an integer >= 1, got 0"),
    ("class_sensitivity.hog_cell=40",
     "hog_cell must be an integer in [1, 10] (HOG blocks of 3 cells must fit the 32 px"),
    ("class_sensitivity.ci_level=1.5", "parameter class_sensitivity.ci_level must be a finite number in (0, 1)"),
    ("class_sensitivity.bootstrap_samples=0", "bootstrap_samples must be an integer in [1, 1000000], got 0"),
    ("class_sensitivity.images=0", "parameter class_sensitivity.images must be an integer >= 1, got 0"),
    ("mean_map.scale=inf", "parameter mean_map.scale must be a finite number, got inf"),
])
def test_check_parameters_a_check_cannot_use_exit_2_before_any_work(fakes, capsys, tmp_path, param, message):
    check = param.split(".")[0]
    code, _, err = _run(capsys, "run", "-m", "edge", "--model", "fake_vgg", "--checks", check, "--param", param,
                        "--out", str(tmp_path / "o"), "--no-progress", "--no-speed")
    _one_line_error(code, err, message)
    assert not (tmp_path / "o" / "results").exists()


def _board(**changes) -> dict:
    board = {
        "config": {"model": {"name": "fake_vgg"}, "dataset": {"name": "squares"}, "images": 2, "seed": 0,
                   "batch_size": 32, "weights_sha256": None},
        "checks": {"mean_map": {"scale": 1.0, "images": 2}},
        "methods": {"edge": {"results": {"mean_map": {"status": "ok", "metrics": {"mean": {"value": 0.5, "n": 2}}}}}},
    }
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = board
        for parent in parents:
            target = target[parent]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
    return board


@pytest.mark.parametrize("changes, needle", [
    ({"config__images": KeyError}, "config.images is missing"),
    ({"config": [1, 2]}, "config must be an object, got list"),
    ({"config__seed": "0"}, "config.seed must be an integer >= 0, got '0'"),
    ({"config__model": "fake_vgg"}, "config.model must be an object, got string"),
    ({"config__dataset__split": 3}, "config.dataset.split must be a string or null"),
    ({"methods": ["edge"]}, "methods must be an object keyed by method name, got list"),
    ({"methods__edge": "ok"}, "methods.edge must be an object, got string"),
    ({"methods__edge__results__mean_map__metrics__mean__value": "high"},
     "methods.edge.results.mean_map.metrics.mean.value must be a number or null, got string"),
    ({"checks": [1]}, "checks must be an object of check parameters, got list"),
])
def test_board_of_the_wrong_shape_is_refused_before_rerunning(fakes, capsys, tmp_path, no_work, changes, needle):
    path = tmp_path / "leaderboard.json"
    path.write_text(json.dumps(_board(**changes)))
    code, _, err = _run(capsys, "check", "edge", "--against", str(path), "--no-progress")
    _one_line_error(code, err, str(path), needle, "pass one written by `saliency-bench run`")


def test_boards_written_by_run_pass_the_shape_check(fakes, capsys, tmp_path):
    from saliency_bench.board.recheck import board_problem

    shipped = Path(__file__).parents[1] / "leaderboard.json"
    if shipped.exists():
        assert board_problem(json.loads(shipped.read_text())) is None
    out = tmp_path / "o"
    assert _run(capsys, "run", "-m", "edge", "--model", "fake_vgg", "--checks", "mean_map", "--limit", "2",
                "--out", str(out), "--no-progress", "--no-speed")[0] == 0
    code, printed, err = _run(capsys, "check", "edge", "--against", str(out / "leaderboard.json"), "--no-progress")
    assert code == 0, err
    assert "1 of 1 metrics hold" in printed


def test_check_against_a_directory_says_so(capsys, tmp_path):
    code, _, err = _run(capsys, "check", "edge", "--against", str(tmp_path))
    _one_line_error(code, err, "is a directory; pass the leaderboard.json file in it")


def _tiny_run(out: Path, *extra: str) -> list[str]:
    return ["run", "-m", "edge", "--checks", "class_sensitivity", "--limit", "1", "--out", str(out),
            "--no-progress", "--no-speed", *extra]


def test_tiny_vgg_weights_errors_name_the_weights_file(capsys, tmp_path):
    code, _, err = _run(capsys, *_tiny_run(tmp_path / "o", "--weights", str(tmp_path / "missing.pt")))
    _one_line_error(code, err, f"weights file {tmp_path / 'missing.pt'} is missing", "--weights path")
    assert "model card" not in err
    (tmp_path / "folder.pt").mkdir()
    code, _, err = _run(capsys, *_tiny_run(tmp_path / "o", "--weights", str(tmp_path / "folder.pt")))
    _one_line_error(code, err, "is a directory, expected a file")
    assert "does not exist" not in err


def _with_card(tmp_path: Path, name: str, **card_changes) -> Path:
    """``tmp_path/name.pt`` as it is (or the shipped weights) beside a card matching its bytes, changed as asked."""
    from saliency_bench.models.tiny_vgg import CARD_FILE, WEIGHTS_FILE, sha256_of

    path = tmp_path / f"{name}.pt"
    if not path.exists():
        path.write_bytes(WEIGHTS_FILE.read_bytes())
    card = {**json.loads(CARD_FILE.read_text()), "sha256": sha256_of(path)}
    for key, value in card_changes.items():
        if value is KeyError:
            del card[key]
        else:
            card[key] = value
    path.with_suffix(".json").write_text(json.dumps(card))
    return path


@pytest.mark.parametrize("changes, needle", [
    ({"class_names": KeyError}, "class_names is missing"),
    ({"class_names": "circle square"}, "class_names must be a non-empty list of class names"),
    ({"class_names": []}, "class_names must be a non-empty list of class names"),
    ({"input_size": "96"}, "input_size must be an integer >= 32"),
    ({"architecture": {"widths": [16, "a"]}}, "architecture.widths and architecture.convs_per_block must be lists"),
    ({"std": [0.25, 0.25]}, "std must be a list of 3 numbers"),
    ({"sha256": KeyError}, "sha256 (of the weights file) is missing"),
])
def test_tiny_vgg_card_without_or_with_wrong_fields(capsys, tmp_path, changes, needle):
    weights = _with_card(tmp_path, "custom", **changes)
    code, _, err = _run(capsys, *_tiny_run(tmp_path / "o", "--weights", str(weights)))
    _one_line_error(code, err, f"model card {weights.with_suffix('.json')} is invalid", needle, "saliency-bench train")


def test_bare_tensor_as_weights_is_a_user_error(capsys, tmp_path):
    import torch

    torch.save(torch.ones(3), tmp_path / "tensor.pt")
    weights = _with_card(tmp_path, "tensor")
    code, _, err = _run(capsys, *_tiny_run(tmp_path / "o", "--weights", str(weights)))
    _one_line_error(code, err, "holds a Tensor, not a state dict of tensors", "model.state_dict()")


@pytest.mark.parametrize("model", ["tiny_vgg", "vgg16"])
def test_legacy_pickle_is_refused_quietly_without_suggesting_unsafe_loading(capsys, tmp_path, model):
    import pickle
    import warnings

    with open(tmp_path / "legacy.pt", "wb") as handle:
        pickle.dump({"features.0.weight": [1.0, 2.0]}, handle, protocol=4)  # torch warns about this protocol
    weights = _with_card(tmp_path, "legacy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = _run(capsys, *_tiny_run(tmp_path / "o", "--model", model, "--weights", str(weights)))
    _one_line_error(code, err, f"weights file {weights} is not a readable state dict of plain tensors",
                    "(refused: only weights_only loading is allowed)")
    assert "weights_only=False" not in err and "weights_only` set to `False" not in err
    assert not [w for w in caught if issubclass(w.category, UserWarning)], [str(w.message) for w in caught]


def test_shipped_weights_given_explicitly_are_the_same_configuration(capsys, tmp_path):
    from saliency_bench.models.tiny_vgg import WEIGHTS_FILE, sha256_of

    out = tmp_path / "o"
    code, _, err = _run(capsys, *_tiny_run(out))
    assert code == 0, err
    assert json.loads((out / "run.json").read_text())["config"]["weights_sha256"] == sha256_of(WEIGHTS_FILE)
    code, _, err = _run(capsys, *_tiny_run(out, "--weights", str(WEIGHTS_FILE)))
    assert code == 0, err  # was: "holds results of another configuration (weights_sha256: null != ...)"
    assert "1 reused" in err
    board = json.loads((out / "leaderboard.json").read_text())
    board["config"]["weights_sha256"] = None  # a board written before the digest of the default weights was kept
    (tmp_path / "old.json").write_text(json.dumps(board))
    code, printed, err = _run(capsys, "check", "edge", "--against", str(tmp_path / "old.json"), "--no-progress")
    assert code == 0, err
    assert "metrics hold" in printed
