"""Runs the CLI in a subprocess with the fake plugins registered (for interruption tests)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("SALIENCY_BENCH_PLUGINS", "")

from fakes import BrokenMethodsPlugin, FakePlugin  # noqa: E402

from saliency_bench.cli import main  # noqa: E402
from saliency_bench.plugins import get_plugin_manager  # noqa: E402

pm = get_plugin_manager()
pm.register(FakePlugin(), name="fakes")
pm.register(BrokenMethodsPlugin(), name="broken")
sys.exit(main(sys.argv[1:]))
