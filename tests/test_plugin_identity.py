"""Plugin identity: a name and its provider; shipped plugins win collisions unless the allowlist names the other."""
import importlib.metadata
import sys
import types

import pytest
import torch

from fakes import MeanMap
from saliency_bench import Method, hookimpl
from saliency_bench import plugins
from saliency_bench.cli import main
from saliency_bench.plugins import SHIPPED_DISTRIBUTIONS, make_plugin_manager

MODULE = "sb_identity_plugins"
AGGREGATION = "saliency-bench-aggregation"
SHIPPED_ENTRY_POINT = "aggregation"  # the shipped distribution's one entry point registers all its methods


def _method(method_name: str) -> type:
    """A trivial Method class called ``method_name`` (a new class, so each provider's object is its own)."""

    def attribute(self, model, inputs, targets):
        return torch.ones(inputs.shape[0], *inputs.shape[2:])

    return type(f"M_{method_name}", (Method,), {"name": method_name, "family": "control", "positive": True,
                                                "attribute": attribute})


def _plugin(*method_names: str, checks=()) -> object:
    """A plugin object registering one new method per name (and the given check objects)."""
    methods = [_method(n)() for n in method_names]

    class Plugin:
        registered = methods

        @hookimpl
        def register_methods(self, register):
            for method in methods:
                register(method)

        @hookimpl
        def register_checks(self, register):
            for check in checks:
                register(check)

    return Plugin()


def _install(monkeypatch, entries):
    """Make importlib.metadata see ``entries`` [(dist, entry-point name, plugin object)] in our group."""
    module = types.ModuleType(MODULE)
    monkeypatch.setitem(sys.modules, MODULE, module)
    eps = []
    for i, (dist, name, plugin) in enumerate(entries):
        setattr(module, f"plugin_{i}", plugin)
        ep = importlib.metadata.EntryPoint(name=name, value=f"{MODULE}:plugin_{i}", group="saliency_bench")
        eps.append(ep._for(types.SimpleNamespace(name=dist, version="1.0")))
    real = importlib.metadata.entry_points

    def entry_points(**params):
        """Ours for the group ``saliency_bench``; any other lookup (triton's backends, on first import) as installed."""
        return eps if params.get("group") == "saliency_bench" else real(**params)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def _lines(registry, name: str) -> list[str]:
    """The load_errors lines about the method/check called ``name``."""
    return [e for e in registry.load_errors if f"'{name}'" in e]


def test_shipped_distributions():
    assert SHIPPED_DISTRIBUTIONS == {"saliency-bench", "saliency-bench-aggregation", "saliency-bench-propagation"}


def test_third_party_entry_point_named_like_a_shipped_one_keeps_the_shipped_method(monkeypatch):
    shipped, third = _plugin("gradcam", "fullgrad"), _plugin("gradcam")
    _install(monkeypatch, [("my-dist", "gradcam", third), (AGGREGATION, SHIPPED_ENTRY_POINT, shipped),
                           ("my-dist", "my_other", _plugin("my_other"))])
    registry = make_plugin_manager(allowlist=None).registry()
    kept = registry.methods["gradcam"]
    assert kept.obj is shipped.registered[0]
    assert (kept.distribution, kept.plugin) == (AGGREGATION, f"{AGGREGATION}:{SHIPPED_ENTRY_POINT}")
    assert registry.methods["my_other"].distribution == "my-dist"  # the third party's other methods load
    assert registry.methods["fullgrad"].distribution == AGGREGATION
    [line] = _lines(registry, "gradcam")
    assert "\n" not in line and AGGREGATION in line and "my-dist" in line
    assert "kept shipped saliency-bench-aggregation" in line and "SALIENCY_BENCH_PLUGINS='*,my-dist:gradcam'" in line


def test_method_name_collision_under_another_entry_point_name(monkeypatch):
    _install(monkeypatch, [(AGGREGATION, SHIPPED_ENTRY_POINT, _plugin("gradcam")),
                           ("my-dist", "better_cams", _plugin("gradcam", "better_cam", "random"))])
    registry = make_plugin_manager(allowlist=None).registry()  # used to raise DuplicateNameError
    assert registry.methods["gradcam"].distribution == AGGREGATION
    assert registry.methods["random"].distribution == "saliency-bench"  # the core's control is shipped too
    assert registry.methods["better_cam"].distribution == "my-dist"
    [line] = _lines(registry, "gradcam")
    assert f"plugin '{AGGREGATION}:{SHIPPED_ENTRY_POINT}'" in line and "plugin 'my-dist:better_cams'" in line
    [line] = _lines(registry, "random")
    assert "saliency_bench.controls" in line and "my-dist:better_cams" in line


def test_same_rule_for_checks(monkeypatch):
    pointing = type("Pointing", (type(MeanMap()),), {"name": "pointing_game"})()
    _install(monkeypatch, [("my-dist", "checks", _plugin(checks=[pointing, MeanMap()]))])
    registry = make_plugin_manager(allowlist=None).registry()
    assert registry.checks["pointing_game"].distribution == "saliency-bench"
    assert registry.checks["mean_map"].distribution == "my-dist"
    [line] = _lines(registry, "pointing_game")
    assert line.startswith("check 'pointing_game': kept shipped saliency-bench") and "my-dist:checks" in line


def test_provider_qualified_allowlist_item_lets_the_third_party_win(monkeypatch):
    shipped, third = _plugin("gradcam", "fullgrad"), _plugin("gradcam")
    _install(monkeypatch, [(AGGREGATION, SHIPPED_ENTRY_POINT, shipped), ("my-dist", "gradcam", third)])
    monkeypatch.setenv("SALIENCY_BENCH_PLUGINS", "*,my-dist:gradcam")
    registry = make_plugin_manager().registry()
    assert registry.methods["gradcam"].obj is third.registered[0]
    assert registry.methods["gradcam"].plugin == "my-dist:gradcam"
    assert "fullgrad" in registry.methods
    [line] = _lines(registry, "gradcam")
    assert "\n" not in line and "using my-dist (plugin 'my-dist:gradcam') as SALIENCY_BENCH_PLUGINS asks" in line
    assert f"left out shipped {AGGREGATION}" in line
    alone = make_plugin_manager(allowlist=["my-dist:gradcam"]).registry()  # restricts loading like any item
    assert alone.methods["gradcam"].obj is third.registered[0] and "fullgrad" not in alone.methods
    assert make_plugin_manager(allowlist=["*"]).registry().methods["gradcam"].obj is shipped.registered[0]


def test_two_third_party_plugins_with_one_name_are_both_left_out(monkeypatch, capsys):
    _install(monkeypatch, [("a-dist", "twin", _plugin("twin")), ("b-dist", "twin", _plugin("twin")),
                           ("a-dist", "solo", _plugin("solo"))])
    pm = make_plugin_manager(allowlist=None)
    registry = pm.registry()  # used to raise DuplicateNameError (exit 2 for every command)
    assert "twin" not in registry.methods and "solo" in registry.methods and "random" in registry.methods
    [line] = _lines(registry, "twin")
    assert "a-dist (plugin 'a-dist:twin')" in line and "b-dist (plugin 'b-dist:twin')" in line
    assert "left out both" in line
    monkeypatch.setattr(plugins, "_PM", pm)  # restored after the test
    assert main(["list"]) == 0
    out, err = capsys.readouterr()
    assert "warning: method 'twin'" in err
    solo = next(l for l in out.splitlines() if l.startswith("solo "))
    assert "a-dist 1.0" in solo
    monkeypatch.setenv("SALIENCY_BENCH_PLUGINS", "*,b-dist:twin")  # the user may choose one
    assert make_plugin_manager().registry().methods["twin"].distribution == "b-dist"


def test_same_plugin_registering_one_name_twice_keeps_the_first(monkeypatch):
    plugin = _plugin("echo", "echo")
    _install(monkeypatch, [("a-dist", "echo", plugin)])
    registry = make_plugin_manager(allowlist=None).registry()
    assert registry.methods["echo"].obj is plugin.registered[0]
    assert _lines(registry, "echo") == [
        "method 'echo' registered twice by plugin 'a-dist:echo' (a-dist); kept the first"]


@pytest.mark.parametrize("item", ["nope", "my-dist:nope", "other-dist:solo"])
def test_allowlist_item_that_matches_nothing_is_reported(monkeypatch, item):
    _install(monkeypatch, [("a-dist", "solo", _plugin("solo")), ("b-dist", "duo", _plugin("duo"))])
    registry = make_plugin_manager(allowlist=["a-dist", item]).registry()
    assert "solo" in registry.methods and "duo" not in registry.methods
    assert registry.load_errors == [
        f"SALIENCY_BENCH_PLUGINS: '{item}' matched no installed plugin (installed: a-dist, b-dist)"]
