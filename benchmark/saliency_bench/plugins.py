"""The plugin manager: default plugins, entry points (group ``saliency_bench``), allowlist, registry."""
from __future__ import annotations

import fnmatch
import importlib
import importlib.metadata
import os
import re
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

# The distributions this project ships: their names win a collision unless the allowlist names the other plugin.
SHIPPED_DISTRIBUTIONS = frozenset({"saliency-bench", "saliency-bench-aggregation", "saliency-bench-propagation"})

KINDS = ("methods", "checks", "models", "datasets")

# How strongly a plugin holds the names it registers: the highest standing wins a collision, a tie leaves all out.
THIRD_PARTY, SHIPPED, EXPLICIT = 0, 1, 2


@dataclass(frozen=True)
class Registered:
    """Something a plugin registered, with where it came from (for ``saliency-bench list``)."""

    obj: Any
    plugin: str
    distribution: str | None = None
    version: str | None = None


@dataclass
class Registry:
    """Every registered method, check, model and dataset by name, and one-line warnings in ``load_errors``.

    ``load_errors`` holds plugins that failed to load (or changed torch's global state at import), name collisions
    and how each was resolved, and allowlist items that matched nothing; the CLI prints each as ``warning: ...``.
    ``notes`` says that an empty allowlist loaded no plugin: added to the error of a name no plugin provides.
    """

    methods: dict[str, Registered] = field(default_factory=dict)
    checks: dict[str, Registered] = field(default_factory=dict)
    models: dict[str, Registered] = field(default_factory=dict)
    datasets: dict[str, Registered] = field(default_factory=dict)
    load_errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # how the plugins were chosen, where it is a surprise (one line)

    def provenance(self, name: str) -> dict:
        """The distribution and version that provide method ``name``, and its settings: a stored result is reused
        only under the same."""
        registered = self.methods[name]
        meta = {"distribution": registered.distribution, "version": registered.version}
        settings = registered.obj.setting_values() if hasattr(registered.obj, "setting_values") else {}
        return {**meta, "settings": settings} if settings else meta

    def method_objects(self, names: Iterable[str]) -> dict[str, Any]:
        """``{name: method object}`` of the registered methods ``names``."""
        return {name: self.methods[name].obj for name in names}

    def select_methods(self, patterns: Iterable[str]) -> list[str]:
        """Method names matching each name or glob (``gradcam*``), in registry order; unknown -> UserError."""
        chosen: list[str] = []
        for pattern in patterns:
            matches = [n for n in self.methods if fnmatch.fnmatchcase(n, pattern)]
            if not matches:
                known = ", ".join(sorted(self.methods)) or "none"
                raise UserError(f"unknown method '{pattern}' (known: {known})" + "".join(f"; {n}" for n in self.notes))
            chosen += [m for m in matches if m not in chosen]
        return chosen


def parse_allowlist(value: str | None) -> list[str] | None:
    """``None`` (variable unset) loads every plugin; otherwise comma-separated items; empty loads none.

    A plain item is an entry-point or distribution name (globs allowed) and selects the entry points it matches.
    A provider-qualified item ``DIST:ENTRYPOINT`` (no glob) selects that one entry point and also lets it win a
    name collision, even over a shipped plugin (the shipped one is then left out, with a notice). Like any item
    it restricts loading to what the list selects, so ``my-dist:gradcam`` alone loads only that entry point
    (besides the core's defaults); write ``*,my-dist:gradcam`` to load everything and override one name.
    """
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


def normalize_distribution(name: str) -> str:
    """A distribution name as PEP 503 compares it (``Saliency_Bench`` -> ``saliency-bench``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_shipped(distribution: str | None) -> bool:
    """Whether a distribution is one this project ships (the core, aggregation or propagation)."""
    return distribution is not None and normalize_distribution(distribution) in SHIPPED_DISTRIBUTIONS


def _qualified(item: str) -> tuple[str, str] | None:
    """``DIST:ENTRYPOINT`` -> (normalised DIST, ENTRYPOINT); a plain name or glob -> None."""
    dist, sep, name = item.partition(":")
    return (normalize_distribution(dist.strip()), name.strip()) if sep else None


def _dist_name(entry_point: importlib.metadata.EntryPoint) -> str:
    """The name of the distribution an entry point comes from, ``?`` when unknown."""
    return entry_point.dist.name if entry_point.dist else "?"


def _selects(item: str, entry_point: importlib.metadata.EntryPoint) -> bool:
    """One allowlist item selects an entry point: ``DIST:EP`` exactly, a plain item its name or distribution."""
    qualified = _qualified(item)
    if qualified:
        return qualified == (normalize_distribution(_dist_name(entry_point)), entry_point.name)
    return fnmatch.fnmatchcase(entry_point.name, item) or fnmatch.fnmatchcase(_dist_name(entry_point), item)


def _allowed(entry_point: importlib.metadata.EntryPoint, allowlist: list[str] | None) -> bool:
    """An entry point loads if some allowlist item selects it (every one loads without an allowlist)."""
    return allowlist is None or any(_selects(item, entry_point) for item in allowlist)


def _explicit(entry_point: importlib.metadata.EntryPoint, allowlist: list[str] | None) -> bool:
    """Whether a provider-qualified allowlist item (``DIST:EP``) names this entry point."""
    return any(_qualified(item) and _selects(item, entry_point) for item in allowlist or ())


def unmatched_allowlist_items(entry_points: list, allowlist: list[str] | None) -> list[str]:
    """One line per allowlist item that selects no installed entry point."""
    installed = ", ".join(sorted({_dist_name(ep) for ep in entry_points})) or "none"
    return [
        f"{ALLOWLIST_ENV}: '{item}' matched no installed plugin (installed: {installed})"
        for item in allowlist or ()
        if not any(_selects(item, ep) for ep in entry_points)
    ]


def plugin_name(entry_point: importlib.metadata.EntryPoint) -> str:
    """The provider-qualified name an entry point's plugin is registered under: ``DIST:ENTRYPOINT``."""
    return f"{_dist_name(entry_point)}:{entry_point.name}"


def _provider(registered: Registered) -> str:
    """Who registered something, for messages: ``my-dist (plugin 'my-dist:gradcam')``, ``shipped`` if it is."""
    shipped = "shipped " if is_shipped(registered.distribution) else ""
    return f"{shipped}{registered.distribution} (plugin '{registered.plugin}')"


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus a record of each plugin's distribution and of plugins that failed to load."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.load_errors: list[str] = []
        self.notes: list[str] = []
        self.distributions: dict[str, tuple[str, str]] = {}
        self.explicit: set[str] = set()

    def load_default_plugins(self) -> None:
        """Register the core's own plugins (controls, checks, models, datasets) like any other."""
        for module_name in DEFAULT_PLUGINS:
            try:
                self.register(importlib.import_module(module_name), name=module_name)
            except Exception as exc:  # a broken default plugin is reported like any other
                reason = exception_line(exc)
                self.load_errors.append(f"plugin '{module_name}' failed to load: {reason}")

    def load_entry_points(self, allowlist: list[str] | None) -> None:
        """Load every allowed entry point as plugin ``DIST:ENTRYPOINT``; one that fails is reported and skipped."""
        entry_points = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
                              key=lambda e: (e.name, _dist_name(e)))
        self.load_errors += unmatched_allowlist_items(entry_points, allowlist)
        if allowlist == [] and entry_points:  # set but empty: a note, said where a missing plugin shows
            installed = ", ".join(sorted({_dist_name(ep) for ep in entry_points}))
            self.notes.append(f"{ALLOWLIST_ENV} is set but empty: no plugin loaded (installed: {installed}); "
                              "unset it to load every installed plugin, or name those to load")
        for ep in entry_points:
            name = plugin_name(ep)
            if _allowed(ep, allowlist) and not self.has_plugin(name):
                self._load_entry_point(ep, name, _explicit(ep, allowlist))

    def _load_entry_point(self, ep: importlib.metadata.EntryPoint, name: str, explicit: bool) -> None:
        """Load and register one entry point, recording its distribution; a failure is reported and skipped.

        An import that changed torch's global state (the default dtype, say) is reported too, the state restored and
        the plugin left out: it would change what every other plugin's methods compute.
        """
        from .harness.isolation import TorchState

        dist = (ep.dist.name, ep.dist.version) if ep.dist else ("?", "?")
        state, failure = TorchState(every_module_class=True), None
        try:
            plugin = ep.load()
        except (Exception, SystemExit) as exc:  # report by name with the reason, keep loading the rest
            failure = f"failed to load: {exception_line(exc)}"
        changed = state.changes()
        if changed:
            state.restore()
            failure = f"changed torch's global state at import ({', '.join(changed)}); left out"
        if failure is not None:
            self.load_errors.append(f"plugin '{ep.name}' from {dist[0]} {failure}")
            return
        try:
            self.register(plugin, name=name)
        except Exception as exc:  # report by name with the reason, keep loading the rest
            self.load_errors.append(f"plugin '{ep.name}' from {dist[0]} failed to load: {exception_line(exc)}")
            return
        self.distributions[name] = dist
        if explicit:
            self.explicit.add(name)

    def standing(self, registered: Registered) -> int:
        """EXPLICIT if the allowlist names its plugin ``DIST:EP``, else SHIPPED or THIRD_PARTY by distribution."""
        if registered.plugin in self.explicit:
            return EXPLICIT
        return SHIPPED if is_shipped(registered.distribution) else THIRD_PARTY

    def registry(self) -> Registry:
        """Call every register_* hook, plugin by plugin, recording provenance and resolving name collisions."""
        registry = Registry(load_errors=list(self.load_errors), notes=list(self.notes))
        for kind in KINDS:
            table: dict[str, Registered] = getattr(registry, kind)
            for name, candidates in self._candidates(kind, registry.load_errors).items():
                winner, message = self._resolve(kind[:-1], name, candidates)
                if winner is not None:
                    table[name] = winner
                if message:
                    registry.load_errors.append(message)
        return registry

    def _candidates(self, kind: str, errors: list[str]) -> dict[str, list[Registered]]:
        """Everything each plugin registers of one kind, by name, in registration order (once per plugin).

        A plugin whose hook changed torch's global state is reported, the state restored and what it registered
        left out.
        """
        from .harness.isolation import TorchState

        found: dict[str, list[Registered]] = {}
        for impl in getattr(self.hook, f"register_{kind}").get_hookimpls():  # registration order
            plugin = impl.plugin_name
            dist, version = self.distributions.get(plugin, ("saliency-bench", _core_version()))

            def register(obj: Any, _plugin=plugin, _dist=dist, _version=version) -> None:
                if kind == "methods":
                    check_method_declaration(obj)
                others = found.setdefault(obj.name, [])
                if any(r.plugin == _plugin for r in others):
                    errors.append(f"{kind[:-1]} '{obj.name}' registered twice by plugin '{_plugin}' "
                                  f"({_dist}); kept the first")
                    return
                others.append(Registered(obj, _plugin, _dist, _version))

            state = TorchState()
            try:
                impl.function(register)
            except (Exception, SystemExit) as exc:
                errors.append(f"plugin '{plugin}' failed in register_{kind}: {exception_line(exc)}")
            changed = state.changes()
            if changed:  # put back, and nothing of this plugin's is kept
                state.restore()
                _drop(found, plugin)
                errors.append(f"plugin '{plugin}' changed torch's global state in register_{kind} "
                              f"({', '.join(changed)}); left out")
        return found

    def _resolve(self, kind: str, name: str, candidates: list[Registered]) -> tuple[Registered | None, str | None]:
        """The one candidate of highest standing and a one-line notice; a tie at the top leaves all out."""
        if len(candidates) == 1:
            return candidates[0], None
        top = max(self.standing(r) for r in candidates)
        best = [r for r in candidates if self.standing(r) == top]
        if len(best) > 1:
            return None, _tie_message(kind, name, candidates, top)
        winner = best[0]
        losers = ", ".join(_provider(r) for r in candidates if r is not winner)
        if top == EXPLICIT:
            return winner, f"{kind} '{name}': using {_provider(winner)} as {ALLOWLIST_ENV} asks; left out {losers}"
        other = next(r.plugin for r in candidates if r is not winner)
        return winner, (f"{kind} '{name}': kept {_provider(winner)}, left out {losers}; to use '{other}' instead, "
                        f"add it to {ALLOWLIST_ENV} (e.g. {ALLOWLIST_ENV}='*,{other}')")


def _drop(found: dict[str, list[Registered]], plugin: str) -> None:
    """Remove everything ``plugin`` registered from ``found`` (and the names only it registered)."""
    for name in list(found):
        found[name] = [r for r in found[name] if r.plugin != plugin]
        if not found[name]:
            del found[name]


def _tie_message(kind: str, name: str, candidates: list[Registered], top: int) -> str:
    """One line naming every provider of a name no single plugin may keep."""
    providers = " and ".join(_provider(r) for r in candidates)
    left_out = "both" if len(candidates) == 2 else f"all {len(candidates)}"
    hint = "" if top == EXPLICIT else f"; to keep one, add its DIST:ENTRYPOINT to {ALLOWLIST_ENV}"
    return f"{kind} '{name}' is registered by {providers}; left out {left_out}{hint}"


def _core_version() -> str:
    from .version import __version__

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
    """The process-wide manager (tests register fakes on it and unregister them in ``finally``)."""
    global _PM
    if _PM is None:
        _PM = make_plugin_manager()
    return _PM


def load_registry(log) -> Registry:
    """The process-wide registry; each plugin load error and name collision is said on one line through ``log``."""
    registry = get_plugin_manager().registry()
    for error in registry.load_errors:
        log(f"warning: {error}")
    return registry


class MethodPlugin:
    """A pluggy plugin that registers exactly one method: for a distribution that declares one entry point per
    method (one entry point may as well register many: ``register_methods(register)`` calls ``register`` often)."""

    def __init__(self, method):
        self.method = method

    @hookspecs.hookimpl
    def register_methods(self, register):
        register(self.method)

    def __repr__(self) -> str:
        return f"<MethodPlugin {self.method.name!r}>"


def method_plugin(method) -> MethodPlugin:
    """Wrap one method as a plugin object, the target of one entry point."""
    return MethodPlugin(method)


def list_command(args, log) -> int:
    """``saliency-bench list``: the four tables of registered methods, checks, models and datasets."""
    registry = load_registry(log)
    for note in registry.notes:  # an empty allowlist: the listing says why no plugin's name is on it
        log(f"note: {note}")
    print(format_listing(registry))
    return 0


def format_listing(registry: Registry) -> str:
    """Four tables (methods, checks, models, datasets) in plain text."""
    from tabulate import tabulate

    methods = [
        [name, r.obj.family, "yes" if r.obj.positive else "no", r.obj.layer or "", f"{r.distribution} {r.version}"]
        for name, r in registry.methods.items()
    ]
    parts = ["Methods", tabulate(methods, headers=["name", "family", "positive", "layer", "provided by"])]
    for title, table in (("Checks", registry.checks), ("Models", registry.models), ("Datasets", registry.datasets)):
        rows = [[name, _describe(r.obj), f"{r.distribution} {r.version}"] for name, r in table.items()]
        parts += ["", title, tabulate(rows, headers=["name", "description", "provided by"])]
    return "\n".join(parts)


def _describe(obj) -> str:
    text = getattr(obj, "description", "") or (type(obj).__doc__ or "")
    return text.strip().splitlines()[0] if text.strip() else ""
