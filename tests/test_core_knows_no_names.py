"""The core knows no check or method by name outside the module that defines it: the board, `check`, the verdicts,
the site and the harness read what the checks and methods declare (issue 24: every core module)."""
import ast
import re
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "benchmark" / "saliency_bench"
MODULES = sorted(str(path.relative_to(CORE)) for path in CORE.rglob("*.py"))
# The one module that names methods on purpose: the seed paper's published numbers, keyed by the method they are of.
DATA = {"checks/paper.py"}


def _registered_names() -> set[str]:
    from saliency_bench.plugins import make_plugin_manager

    registry = make_plugin_manager(allowlist=None).registry()
    return set(registry.methods) | set(registry.checks)


def _mentions(literal: str, name: str) -> bool:
    """Whether a string literal names ``name``: the whole literal, quoted or in backticks, or a distinctive word."""
    if literal == name or f"`{name}`" in literal or f"'{name}'" in literal or f'"{name}"' in literal:
        return True
    return bool(re.search(r"[_@]", name)) and re.search(rf"(?<![\w@]){re.escape(name)}(?![\w@])", literal) is not None


def _defined(tree: ast.AST) -> set[str]:
    """The names a module declares itself: ``name = "..."`` in a class body (a check's or a method's own name)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for statement in node.body:
                if isinstance(statement, ast.Assign) and any(
                        isinstance(t, ast.Name) and t.id == "name" for t in statement.targets) and isinstance(
                        statement.value, ast.Constant) and isinstance(statement.value.value, str):
                    found.add(statement.value.value)
    return found


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the module's, classes' and functions' docstring nodes (prose, not code)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


@pytest.fixture(scope="module")
def names() -> set[str]:
    found = _registered_names()
    assert {"pointing_game", "randomization", "gradcam", "random"} <= found  # the shipped plugins are installed
    return found


@pytest.mark.parametrize("module", MODULES)
def test_no_registered_name_outside_the_module_that_defines_it(module, names):
    if module in DATA:
        return
    tree = ast.parse((CORE / module).read_text())
    prose = _docstrings(tree)
    literals = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in prose]
    own = _defined(tree)
    found = sorted({name for literal in literals for name in names - own if _mentions(literal, name)})
    assert not found, f"{module} names {found}"


def test_the_probe_finds_a_name_where_there_is_one():
    assert _mentions("pointing_game", "pointing_game") and _mentions("scores like `edge`", "edge")
    assert _mentions("the gradcam@B5 row", "gradcam@B5") and not _mentions("randomisation", "random")
    tree = ast.parse('class A:\n    name = "mine"\n')
    assert _defined(tree) == {"mine"}
