"""The plugin manager: every hook, duplicates, import failures, the allowlist, default plugins."""
import importlib.metadata
import sys
import types

import pytest
import torch

from fakes import CLASSES, MeanMap, SquaresDataset, load_model
from saliency_bench import Check, DatasetSpec, Method, ModelSpec, hookimpl
from saliency_bench.plugins import make_plugin_manager, parse_allowlist


class Ones(Method):
    """All-ones maps."""

    name, family, positive = "ones", "control", True

    def attribute(self, model, inputs, targets):
        return torch.ones(inputs.shape[0], *inputs.shape[2:])


def test_register_methods_hook(pm):
    class Plugin:
        @hookimpl
        def register_methods(self, register):
            register(Ones())

    pm.register(Plugin(), name="ones-plugin")
    try:
        registry = pm.registry()
        assert isinstance(registry.methods["ones"].obj, Ones)
        assert registry.methods["ones"].plugin == "ones-plugin"
    finally:
        pm.unregister(name="ones-plugin")
    assert "ones" not in pm.registry().methods


def test_register_checks_hook(pm):
    class Plugin:
        @hookimpl
        def register_checks(self, register):
            register(MeanMap())

    pm.register(Plugin(), name="check-plugin")
    try:
        assert isinstance(pm.registry().checks["mean_map"].obj, Check)
    finally:
        pm.unregister(name="check-plugin")
    assert "mean_map" not in pm.registry().checks


def test_register_models_and_datasets_hooks(pm):
    class Plugin:
        @hookimpl
        def register_models(self, register):
            register(ModelSpec("fake_vgg", load_model))

        @hookimpl
        def register_datasets(self, register):
            register(DatasetSpec("squares", lambda model, **o: SquaresDataset()))

    pm.register(Plugin(), name="data-plugin")
    try:
        registry = pm.registry()
        model = registry.models["fake_vgg"].obj.load()
        assert model.class_names == CLASSES
        assert len(registry.datasets["squares"].obj.load(model)) == 12
    finally:
        pm.unregister(name="data-plugin")
    assert "fake_vgg" not in pm.registry().models


def test_controls_are_default_plugins(pm):
    registry = pm.registry()
    assert registry.methods["random"].distribution == "saliency-bench"
    assert registry.methods["edge"].obj.family == "control"


def test_duplicate_names_leave_both_out_naming_both_plugins(pm):
    class First:
        @hookimpl
        def register_methods(self, register):
            register(Ones())

    class Second:
        @hookimpl
        def register_methods(self, register):
            register(Ones())

    pm.register(First(), name="first-plugin")
    pm.register(Second(), name="second-plugin")
    try:
        registry = pm.registry()  # no longer raises: the collision is reported and everything else loads
        assert "ones" not in registry.methods and "random" in registry.methods
        [line] = [e for e in registry.load_errors if "'ones'" in e]
        assert "first-plugin" in line and "second-plugin" in line and "left out both" in line
    finally:
        pm.unregister(name="first-plugin")
        pm.unregister(name="second-plugin")


def test_invalid_declaration_is_reported(pm):
    class Bad(Method):
        name, family, positive = "bad_family", "magic", True

    class Plugin:
        @hookimpl
        def register_methods(self, register):
            register(Bad())

    pm.register(Plugin(), name="bad-plugin")
    try:
        registry = pm.registry()
        assert "bad_family" not in registry.methods
        assert any("bad-plugin" in e and "family" in e for e in registry.load_errors)
    finally:
        pm.unregister(name="bad-plugin")


def _fake_entry_points(monkeypatch, entries):
    """Make importlib.metadata see ``entries`` [(name, 'module:attr')] in our group."""
    dist = types.SimpleNamespace(name="fake-dist", version="9.9")
    eps = []
    for name, value in entries:
        ep = importlib.metadata.EntryPoint(name=name, value=value, group="saliency_bench")
        ep = ep._for(dist) if hasattr(ep, "_for") else ep
        eps.append(ep)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: eps if group == "saliency_bench" else [])


def test_plugin_that_fails_to_import_is_reported_and_others_load(monkeypatch):
    good = types.ModuleType("sb_good_plugin")

    @hookimpl
    def register_methods(register):
        register(Ones())

    good.register_methods = register_methods
    monkeypatch.setitem(sys.modules, "sb_good_plugin", good)
    _fake_entry_points(monkeypatch, [("broken", "sb_no_such_module_xyz"), ("ones", "sb_good_plugin")])
    pm = make_plugin_manager(allowlist=None)
    registry = pm.registry()
    assert "ones" in registry.methods
    assert registry.methods["ones"].distribution == "fake-dist"
    assert any(e.startswith("plugin 'broken'") and "ModuleNotFoundError" in e for e in registry.load_errors)


def test_allowlist_restricts_external_plugins(monkeypatch):
    good = types.ModuleType("sb_good_plugin2")

    @hookimpl
    def register_methods(register):
        register(Ones())

    good.register_methods = register_methods
    monkeypatch.setitem(sys.modules, "sb_good_plugin2", good)
    _fake_entry_points(monkeypatch, [("ones", "sb_good_plugin2")])
    assert "ones" in make_plugin_manager(allowlist=["ones"]).registry().methods
    assert "ones" in make_plugin_manager(allowlist=["fake-*"]).registry().methods  # by distribution
    assert "ones" in make_plugin_manager(allowlist=["fake-dist:ones"]).registry().methods  # provider-qualified
    assert "ones" not in make_plugin_manager(allowlist=["other-dist:ones"]).registry().methods
    assert "ones" not in make_plugin_manager(allowlist=["other"]).registry().methods
    monkeypatch.setenv("SALIENCY_BENCH_PLUGINS", "")
    registry = make_plugin_manager().registry()
    assert "ones" not in registry.methods and "random" in registry.methods  # defaults still load
    monkeypatch.setenv("SALIENCY_BENCH_PLUGINS", "ones")
    assert "ones" in make_plugin_manager().registry().methods


def test_parse_allowlist():
    assert parse_allowlist(None) is None
    assert parse_allowlist("") == []
    assert parse_allowlist(" a, b ,") == ["a", "b"]
    assert parse_allowlist("*,my-dist:gradcam") == ["*", "my-dist:gradcam"]


def test_select_methods_by_glob(pm):
    registry = pm.registry()
    assert registry.select_methods(["rand*"]) == ["random"]
    with pytest.raises(Exception, match="unknown method 'nope'"):
        registry.select_methods(["nope"])
