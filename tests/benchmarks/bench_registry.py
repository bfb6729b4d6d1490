"""Every installed method (entry points included, whatever SALIENCY_BENCH_PLUGINS says) for the speed suite."""
from saliency_bench.plugins import make_plugin_manager

REGISTRY = make_plugin_manager(allowlist=None).registry()
METHODS = list(REGISTRY.methods)
