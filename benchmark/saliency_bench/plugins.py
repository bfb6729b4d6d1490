"""The plugin manager: default plugins, entry points (group ``saliency_bench``), allowlist, registry."""
from __future__ import annotations

import fnmatch
import importlib
import importlib.metadata
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

import pluggy

from . import hookspecs
from .errors import UserError, exception_line
from .methods import check_method_declaration

ENTRY_POINT_GROUP = "saliency_bench"
ALLOWLIST_ENV = "SALIENCY_BENCH_PLUGINS"

DEFAULT_PLUGINS = (
    "saliency_bench.controls",
    "saliency_bench.checks.default_plugin",
    "saliency_bench.models.default_plugin",
    "saliency_bench.models.real_plugin",
    "saliency_bench.datasets.default_plugin",
    "saliency_bench.datasets.real_plugin",
)

KINDS = ("methods", "checks", "models", "datasets")


class DuplicateNameError(UserError):
    """Two plugins registered the same method, check, model or dataset name."""


@dataclass(frozen=True)
class Registered:
    """Something a plugin registered, with where it came from (for ``saliency-bench list``)."""

    obj: Any
    plugin: str
    distribution: str | None = None
    version: str | None = None


@dataclass
class Registry:
    """Every registered method, check, model and dataset by name, and the plugins that failed to load."""

    methods: dict[str, Registered] = field(default_factory=dict)
    checks: dict[str, Registered] = field(default_factory=dict)
    models: dict[str, Registered] = field(default_factory=dict)
    datasets: dict[str, Registered] = field(default_factory=dict)
    load_errors: list[str] = field(default_factory=list)

    def select_methods(self, patterns: Iterable[str]) -> list[str]:
        """Method names matching each name or glob (``gradcam*``), in registry order; unknown -> UserError."""
        chosen: list[str] = []
        for pattern in patterns:
            matches = [n for n in self.methods if fnmatch.fnmatchcase(n, pattern)]
            if not matches:
                known = ", ".join(sorted(self.methods)) or "none"
                raise UserError(f"unknown method '{pattern}' (known: {known})")
            chosen += [m for m in matches if m not in chosen]
        return chosen


def parse_allowlist(value: str | None) -> list[str] | None:
    """``None`` (variable unset) loads every plugin; otherwise comma-separated names/globs; empty loads none."""
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


def _allowed(entry_point: importlib.metadata.EntryPoint, allowlist: list[str] | None) -> bool:
    """An entry point loads if its name or its distribution's name matches the allowlist."""
    if allowlist is None:
        return True
    dist = entry_point.dist.name if entry_point.dist else ""
    return any(fnmatch.fnmatchcase(entry_point.name, p) or fnmatch.fnmatchcase(dist, p) for p in allowlist)


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus a record of each plugin's distribution and of plugins that failed to load."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.load_errors: list[str] = []
        self.distributions: dict[str, tuple[str, str]] = {}

    def load_default_plugins(self) -> None:
        """Register the core's own plugins (controls, checks, models, datasets) like any other."""
        for module_name in DEFAULT_PLUGINS:
            try:
                self.register(importlib.import_module(module_name), name=module_name)
            except Exception as exc:  # a broken default plugin is reported like any other
                reason = exception_line(exc)
                self.load_errors.append(f"plugin '{module_name}' failed to load: {reason}")

    def load_entry_points(self, allowlist: list[str] | None) -> None:
        """Load every allowed entry point; a plugin that fails to import is reported and skipped."""
        entry_points = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
        for ep in entry_points:
            if not _allowed(ep, allowlist) or self.has_plugin(ep.name):
                continue
            dist = (ep.dist.name, ep.dist.version) if ep.dist else ("?", "?")
            try:
                plugin = ep.load()
                self.register(plugin, name=ep.name)
            except Exception as exc:  # report by name with the reason, keep loading the rest
                reason = exception_line(exc)
                self.load_errors.append(f"plugin '{ep.name}' from {dist[0]} failed to load: {reason}")
                continue
            self.distributions[ep.name] = dist

    def registry(self) -> Registry:
        """Call every register_* hook, plugin by plugin, recording provenance and rejecting duplicates."""
        registry = Registry(load_errors=list(self.load_errors))
        for kind in KINDS:
            table: dict[str, Registered] = getattr(registry, kind)
            caller = getattr(self.hook, f"register_{kind}")
            for impl in caller.get_hookimpls():  # registration order
                plugin_name = impl.plugin_name
                dist, version = self.distributions.get(plugin_name, ("saliency-bench", _core_version()))

                def register(obj: Any, _plugin=plugin_name, _dist=dist, _version=version, _table=table) -> None:
                    if kind == "methods":
                        check_method_declaration(obj)
                    name = obj.name
                    if name in _table:
                        raise DuplicateNameError(
                            f"{kind[:-1]} '{name}' registered twice: by plugin '{_table[name].plugin}' "
                            f"and by plugin '{_plugin}'"
                        )
                    _table[name] = Registered(obj, _plugin, _dist, _version)

                try:
                    impl.function(register)
                except DuplicateNameError:
                    raise
                except Exception as exc:
                    reason = exception_line(exc)
                    registry.load_errors.append(f"plugin '{plugin_name}' failed in register_{kind}: {reason}")
        return registry


def _core_version() -> str:
    from . import __version__

    return __version__


def make_plugin_manager(entry_points: bool = True, allowlist: list[str] | None | str = "env") -> PluginManager:
    """A fresh manager with the default plugins and (allowed) entry points loaded."""
    pm = PluginManager()
    pm.load_default_plugins()
    if entry_points:
        if allowlist == "env":
            allowlist = parse_allowlist(os.environ.get(ALLOWLIST_ENV))
        pm.load_entry_points(allowlist)  # type: ignore[arg-type]
    return pm


_PM: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide manager (tests register fake plugins on it and unregister them in ``finally``)."""
    global _PM
    if _PM is None:
        _PM = make_plugin_manager()
    return _PM
