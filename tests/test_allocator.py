"""The allocator tuning respects the user's own malloc settings and works on glibc Linux."""
import subprocess
import sys

import pytest

from saliency_bench.harness.allocator import keep_freed_memory, user_chose_allocator


@pytest.mark.parametrize("environ", [
    {"SALIENCY_BENCH_ALLOCATOR": "system"},
    {"MALLOC_MMAP_THRESHOLD_": "65536"},
    {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"},
    {"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"},
])
def test_user_choice_is_left_alone(environ):
    assert user_chose_allocator(environ)
    assert keep_freed_memory(environ) is False


def test_default_environment_is_tuned_on_glibc():
    assert not user_chose_allocator({"PATH": "/usr/bin"})
    glibc = sys.platform.startswith("linux") and "glibc" in " ".join(__import__("platform").libc_ver()).lower()
    # run in a child so the test process keeps its own allocator settings
    code = "from saliency_bench.harness.allocator import keep_freed_memory; print(keep_freed_memory({}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == str(glibc)
