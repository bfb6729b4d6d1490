"""The code a reader copies from the README and docs/ cannot drift (issue 24.7).

- A block that says ``# file: PATH`` on its first line is an excerpt: the rest of the block is in that file, verbatim.
- Every other ``python`` block compiles, and every ``toml`` block parses.
- Every ``bash`` line is a command the project knows: ``saliency-bench`` lines parse with the command line's own
  parser (so an option that is renamed or gets another range breaks the doc), paths given to ``pip install -e``
  exist, and the cheap commands (``list``, ``compare``, ``--help``, ``--version``) are run here and must exit 0.
- The README's test command is exactly what ``.ci/run`` runs.
Blocks marked ``text`` are output or need real data, weights, a GPU or a cluster, and are not run.
"""
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from saliency_bench.cli.parser import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
CHEAP = ({"list"}, {"compare"})


def blocks(language: str) -> list[tuple[str, str]]:
    """``(page:line, code)`` of every fenced block of ``language`` in the README and docs/."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            if match.group(1) == language:
                line = text[:match.start()].count("\n") + 1
                found.append((f"{page.relative_to(ROOT)}:{line}", match.group(2)))
    return found


def commands(code: str) -> list[list[str]]:
    """The shell commands of a bash block: continuation lines joined, comments and ``&&`` chains split."""
    joined = re.sub(r"\\\n\s*", " ", code)
    found = []
    for line in joined.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("command -v chromium"):  # the browser line: Debian's packages, nothing else
            assert "apt-get install -y -qq chromium chromium-driver" in line, line
            continue
        for part in re.split(r"\s*(?:&&|;)\s*", line):
            words = shlex.split(part)
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value before the command
                words.pop(0)
            if words and words[0] in ("/usr/bin/time", "time", "sudo", "$(command"):
                words.pop(0)
                while words and words[0] in ("-v", "-f", "-o"):  # time's own options (-f and -o take a value)
                    words = words[2:] if words[0] in ("-f", "-o") else words[1:]
            if words:
                found.append(words)
    return found


def test_every_page_has_code_and_the_probe_reads_it():
    assert len(blocks("bash")) >= 10 and len(blocks("python")) >= 3
    assert commands("A=1 saliency-bench run --all \\\n  --limit 4 && pip install -e . # note") == [
        ["saliency-bench", "run", "--all", "--limit", "4"], ["pip", "install", "-e", "."]]
    assert commands("/usr/bin/time -v saliency-bench list\n/usr/bin/time -f '%e s' saliency-bench list") == [
        ["saliency-bench", "list"], ["saliency-bench", "list"]]


@pytest.mark.parametrize("where, code", [b for b in blocks("python") + blocks("toml") if b[1].startswith("# file: ")],
                         ids=lambda value: value if ":" in str(value)[:40] and "\n" not in str(value) else "")
def test_an_excerpt_is_in_its_file_verbatim(where, code):
    first, _, rest = code.partition("\n")
    source = ROOT / first.removeprefix("# file: ").strip()
    assert source.is_file(), f"{where}: {source} does not exist"
    assert rest.strip("\n") in source.read_text(), f"{where}: the excerpt is not in {source} as written"


@pytest.mark.parametrize("where, code", [b for b in blocks("python") if not b[1].startswith("# file: ")],
                         ids=lambda value: value if "\n" not in str(value) else "")
def test_python_blocks_compile(where, code):
    compile(code, where, "exec")


def test_toml_blocks_parse():
    for where, code in blocks("toml"):
        tomllib.loads(code.partition("\n")[2] if code.startswith("# file: ") else code)  # an excerpt parses too


def _bash_commands() -> list[tuple[str, list[str]]]:
    return [(where, words) for where, code in blocks("bash") for words in commands(code)]


@pytest.mark.parametrize("where, words", _bash_commands(), ids=lambda value: value if isinstance(value, str) else "")
def test_every_command_in_the_docs_is_one_the_project_knows(where, words):
    program = words[0]
    if program == "saliency-bench":
        try:
            build_parser().parse_args(words[1:])
        except SystemExit as exit:  # --help and --version exit 0 when they parse
            assert exit.code == 0, f"{where}: {' '.join(words)}"
    elif program == "pip":
        for index, word in enumerate(words):
            if word == "-e" and not words[index + 1].startswith(("'", '"', ".[")) and "[" not in words[index + 1]:
                assert (ROOT / words[index + 1]).exists(), f"{where}: pip install -e {words[index + 1]}: no such path"
    else:
        allowed = {"python3.11", ".", "pytest", "cmp", "ray", "apt-get", "git", "cd", "mkdir", "cp", "export"}
        assert program in allowed, f"{where}: unknown program {program!r} in the docs"


@pytest.mark.parametrize("where, words", [(w, c) for w, c in _bash_commands() if c[0] == "saliency-bench" and (
    c[1:2] in (["list"], ["compare"]) or c[1:] in (["--help"], ["--version"]) or "--help" in c)],
    ids=lambda value: value if isinstance(value, str) else "")
def test_the_cheap_commands_in_the_docs_run(where, words):
    done = subprocess.run([sys.executable, "-m", "saliency_bench", *words[1:]], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"{where}: {' '.join(words)}\n{done.stderr[-2000:]}"


def test_the_readmes_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_commands = [code.strip() for _, code in blocks("bash") if code.strip().endswith("&& pytest")]
    assert len(test_commands) >= 1 and all(command in ci for command in test_commands), test_commands
    assert any(command in readme for command in test_commands)
