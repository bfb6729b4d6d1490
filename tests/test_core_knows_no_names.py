"""The board, `check` and the verdicts know no check or method by name: checks declare what the board shows."""
import ast
import re
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "benchmark" / "saliency_bench"
MODULES = ("board/leaderboard.py", "board/recheck.py", "board/verdicts.py", "board/candidate.py")


def _registered_names() -> set[str]:
    from saliency_bench.plugins import make_plugin_manager

    registry = make_plugin_manager(allowlist=None).registry()
    return set(registry.methods) | set(registry.checks)


def _mentions(literal: str, name: str) -> bool:
    """Whether a string literal names ``name``: the whole literal, quoted or in backticks, or a distinctive word."""
    if literal == name or f"`{name}`" in literal or f"'{name}'" in literal or f'"{name}"' in literal:
        return True
    return bool(re.search(r"[_@]", name)) and re.search(rf"(?<![\w@]){re.escape(name)}(?![\w@])", literal) is not None


@pytest.mark.parametrize("module", MODULES)
def test_no_registered_name_in_the_module(module):
    names = _registered_names()
    assert {"pointing_game", "randomization", "gradcam", "random"} <= names  # the shipped plugins are installed
    tree = ast.parse((CORE / module).read_text())
    literals = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    found = sorted({name for literal in literals for name in names if _mentions(literal, name)})
    assert not found, f"{module} names {found}"


def test_the_probe_finds_a_name_where_there_is_one():
    assert _mentions("pointing_game", "pointing_game") and _mentions("scores like `edge`", "edge")
    assert _mentions("the gradcam@B5 row", "gradcam@B5") and not _mentions("randomisation", "random")
