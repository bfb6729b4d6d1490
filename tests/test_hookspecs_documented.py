"""Every hook specification is documented in the README and exercised by a real plugin and by a test plugin
(datasette's documentation meta-test, applied to the hooks)."""
from pathlib import Path

import pytest

from saliency_bench import hookspecs
from saliency_bench.plugins import make_plugin_manager

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted(name for name, obj in vars(hookspecs).items() if hasattr(obj, f"{hookspecs.PROJECT}_spec"))


def test_the_four_hooks_are_found():
    assert SPECS == ["register_checks", "register_datasets", "register_methods", "register_models"]


@pytest.mark.parametrize("hook", SPECS)
def test_hook_is_documented_implemented_and_tested(hook):
    assert f"`{hook}`" in (ROOT / "README.md").read_text(), f"README does not document {hook}"
    impls = getattr(make_plugin_manager(entry_points=False).hook, hook).get_hookimpls()
    assert impls, f"no registered plugin implements {hook}"
    tests = [p for p in (ROOT / "tests").glob("*.py") if f"def {hook}(" in p.read_text() and p.name != Path(__file__).name]
    assert tests, f"no test plugin implements {hook}"
