"""Peak memory of a run does not grow with the number of images (streamed batches, per-image scalars only)."""
import os
import subprocess
import sys

SCRIPT = """
import resource, sys
from saliency_bench.cli import main
code = main(sys.argv[1:])
print("MAXRSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, code)
"""


def _peak_kib(tmp_path, images: int) -> int:
    # glibc keeps freed small blocks in its heap, so ru_maxrss also grows with heap fragmentation; serving
    # allocations above 64 KiB by mmap (returned on free) makes it measure what the run really keeps
    env = {**os.environ, "SALIENCY_BENCH_PLUGINS": "", "TQDM_DISABLE": "1", "MALLOC_MMAP_THRESHOLD_": "65536"}
    argv = [sys.executable, "-c", SCRIPT, "run", "-m", "edge", "--checks", "class_sensitivity", "pointing_game",
            "--limit", str(images), "--batch-size", "16", "--out", str(tmp_path / f"run{images}"), "--no-progress"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    line = next(l for l in done.stdout.splitlines() if l.startswith("MAXRSS"))
    _, peak, code = line.split()
    assert code == "0", done.stderr
    return int(peak)


def test_peak_memory_does_not_grow_with_images(tmp_path):
    small, large = _peak_kib(tmp_path, 32), _peak_kib(tmp_path, 512)
    # 16x the images; a run that kept maps or images would grow by >= 512 * 96 * 96 * 4 B (18 MiB) per copy
    assert large - small < 12 * 1024, (small, large)
