"""The shape of the core (issue 24): a few top-level modules, short functions, a thin command line."""
import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "benchmark" / "saliency_bench"
MAX_TOP_LEVEL_MODULES = 12
MAX_FUNCTION_LINES = 60
MAX_CLI_LINES = 300


def long_functions(path: Path, limit: int = MAX_FUNCTION_LINES, root: Path = CORE) -> list[str]:
    """``module:function (lines)`` of every function or method longer than ``limit`` lines, decorators excluded."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            if lines > limit:
                found.append(f"{path.relative_to(root)}:{node.name} ({lines} lines)")
    return found


def test_the_top_level_keeps_at_most_twelve_modules():
    modules = sorted(path.name for path in CORE.glob("*.py"))
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, modules


def test_no_function_of_the_core_is_longer_than_sixty_lines():
    found = [entry for path in sorted(CORE.rglob("*.py")) for entry in long_functions(path)]
    assert not found, found


def test_the_command_line_is_parsing_and_dispatch_only():
    lines = sum(len(path.read_text().splitlines()) for path in (CORE / "cli").glob("*.py"))
    assert lines <= MAX_CLI_LINES, lines


def test_the_probe_finds_a_long_function(tmp_path):
    module = tmp_path / "probe.py"
    module.write_text("def f():\n" + "    x = 1\n" * 61 + "\n\ndef g():\n    return 1\n")
    assert long_functions(module, root=tmp_path) == ["probe.py:f (62 lines)"]
