"""The core's modules import one another in one direction only, and the core names no method.

The graph is read from the source with ``ast``: every ``import`` statement counts, at module level, inside
functions (lazy imports) and under ``if TYPE_CHECKING``. ``from X import name`` is an import of the module
``X.name`` where that is a module, else of ``X``; a package stands for its ``__init__``, so a package importing
its submodule ``x.y`` imports ``x.y``. The parent packages Python runs before a submodule are not counted: every
module would otherwise import ``saliency_bench/__init__``, which re-exports the public API.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import saliency_bench
from saliency_bench.plugins import make_plugin_manager

PACKAGE = Path(saliency_bench.__file__).parent
ROOT = PACKAGE.name  # "saliency_bench"


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """``{dotted module name: file}`` of every module of the package (``__init__`` as the package's name)."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that module ``name`` (file ``path``) imports anywhere in its source."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] + (node.module.split(".") if node.module else [])
                source = ".".join(base)
            else:
                source = node.module or ""
            for alias in node.names:
                found.add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source)
    return {module for module in found if module in known and module != name}


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """``{module: modules it imports}`` over the package's own modules."""
    modules = module_files(package)
    return {name: imported_modules(name, path, set(modules)) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle ``[a, b, ..., a]`` of ``graph``, or None (depth-first search; modules visited in sorted order)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert len(graph) > 40 and all(name.startswith(ROOT) for name in graph)
    assert "saliency_bench.store.files" in graph["saliency_bench.checks.params"]  # lazy, inside check_parameters
    assert "saliency_bench.checks.base" in graph["saliency_bench"]  # under TYPE_CHECKING in the package
    assert "saliency_bench.hookspecs" in graph["saliency_bench.plugins"]  # from . import module
    assert "saliency_bench.version" in graph["saliency_bench.plugins"]  # from .version import __version__
    assert "saliency_bench.models.wrapper" in graph["saliency_bench.harness.suite"]
    assert "saliency_bench.harness.suite" in graph["saliency_bench.checks.base"]  # under TYPE_CHECKING


def test_find_cycle_reports_the_modules_of_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]


def test_the_core_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def string_literals(path: Path) -> set[str]:
    """Every string constant of a module: literals, f-string parts and docstrings."""
    tree = ast.parse(path.read_text(), str(path))
    return {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def names_method(literal: str, name: str) -> bool:
    """Whether ``literal`` names method ``name``: all of it, quoted or in backticks, or (for a name no prose word
    could be, with ``_`` or ``@``) as a whole word; "gradient" in a sentence about gradients is prose."""
    if literal == name or any(f"{quote}{name}{quote}" in literal for quote in "`'\""):
        return True
    return bool(re.search(r"[_@]", name)) and re.search(rf"(?<![\w@]){re.escape(name)}(?![\w@])", literal) is not None


def test_names_method_finds_a_name_where_there_is_one():
    assert names_method("gradient", "gradient") and names_method("probe 'gradient' first", "gradient")
    assert names_method("captum LRP for lrp_0", "lrp_0") and names_method("the gradcam@B5 row", "gradcam@B5")
    assert not names_method("one forward and one backward to the gradient", "gradient")
    assert not names_method("gradcam@B50", "gradcam@B5")


@pytest.mark.parametrize("module", ["run/peers.py", "run/speed.py"])
def test_peers_and_speed_name_no_registered_method(module):
    names = set(make_plugin_manager(allowlist=None).registry().methods)
    assert {"gradient", "gradcam", "lrp_epsilon"} <= names  # the shipped plugins' entry points are installed
    literals = string_literals(PACKAGE / module)
    named = sorted({name for name in names for literal in literals if names_method(literal, name)})
    assert not named, f"{module} names methods {named}"
