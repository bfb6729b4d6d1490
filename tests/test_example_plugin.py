"""The example plugin through the real entry-point path: pip install, list, run, pip uninstall."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from installing import pip, renamed_copy

DRIVER = str(Path(__file__).with_name("cli_driver.py"))


def _copy_example(tmp_path: Path) -> Path:
    """The example distribution under a new name, so an installed original cannot interfere."""
    return renamed_copy(ROOT / "plugins" / "example", tmp_path, "saliency-bench-example", "saliency_bench_example")


def test_install_list_run_uninstall(tmp_path):
    source = _copy_example(tmp_path)
    env = {**os.environ, "SALIENCY_BENCH_PLUGINS": "saliency-bench-example-copy", "TQDM_DISABLE": "1"}
    cli = [sys.executable, "-m", "saliency_bench"]
    installed = pip("install", "--no-deps", "--no-build-isolation", str(source))
    assert installed.returncode == 0, installed.stderr
    try:
        listing = subprocess.run(cli + ["list"], env=env, capture_output=True, text=True, timeout=120)
        line = next(l for l in listing.stdout.splitlines() if l.startswith("gradient_l2 "))
        assert "propagation" in line and "saliency-bench-example-copy 0.1.0" in line
        run = subprocess.run(
            [sys.executable, DRIVER, "run", "-m", "gradient_l2", "--model", "fake_vgg", "--checks", "mean_map",
             "--out", str(tmp_path / "out"), "--no-progress"],
            env=env, capture_output=True, text=True, timeout=300,
        )
        assert run.returncode == 0, run.stderr
        assert (tmp_path / "out" / "results" / "mean_map" / "gradient_l2.json").exists()
    finally:
        removed = pip("uninstall", "-y", "saliency-bench-example-copy")
    assert removed.returncode == 0, removed.stderr
    listing = subprocess.run(cli + ["list"], env=env, capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0
    assert not any(l.startswith("gradient_l2 ") for l in listing.stdout.splitlines())
