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
    assert "baseline" in line and "saliency-bench" in line
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
    (["run", "-m", "edge", "--model", "fake_vgg", "--limit", "0"], "positive integer"),
    (["run", "-m", "edge", "--model", "fake_vgg", "--batch-size", "x"], "positive integer"),
    (["run", "-m", "edge", "--model", "fake_vgg", "--device", "tpu"], "unknown device"),
    (["run", "-m", "edge", "--model", "fake_vgg", "--param", "oops"], "CHECK.KEY=VALUE"),
    (["run", "-m", "edge", "--model", "fake_vgg", "--checks", "mean_map", "--param", "mean_map.x=1"],
     "has no parameter 'x'"),
    (["run", "--model", "fake_vgg"], "choose methods"),
    (["run", "-m", "edge", "--model", "fake_vgg", "--checks", "mean_map", "--param", "mean_map.scale=abc"],
     "expects float"),
    (["run", "-m", "edge", "--model", "fake_vgg", "--seed", "-1"], "non-negative"),
    (["run", "-m", "edge", "--model", "fake_vgg", "--workers", "-1"], "non-negative"),
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
