"""Test setup: keep installed third-party plugins out of the run (tests opt in explicitly)."""
import os

os.environ.setdefault("SALIENCY_BENCH_PLUGINS", "")
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP contention on a shared machine (restored after the module)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def pm():
    """The process-wide plugin manager (register fakes on it; unregister them in a finally)."""
    from saliency_bench.plugins import get_plugin_manager

    return get_plugin_manager()


@pytest.fixture
def fakes(pm):
    """The fake model, dataset and check, plus the broken methods, registered for one test."""
    from fakes import fake_plugins_registered

    with fake_plugins_registered(pm) as registered:
        yield registered
