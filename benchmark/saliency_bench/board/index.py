"""The top-level leaderboard.md: one section per embedded model, each replaced only by that model's own default run.

``saliency-bench run --all`` writes tiny_vgg's board into ``.`` and ``run --all --model NAME`` another embedded
model's into ``boards/NAME/``; each then splices its board, headings one level down and figure links made relative
to the top, between its two markers in ``./leaderboard.md``, and keeps every other model's section as it was.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Sequence

TITLE = "# saliency-bench leaderboard"
START = "<!-- board {name}: written by saliency-bench run --all --model {name} -->"
END = "<!-- end of board {name} -->"
_START = re.compile(r"^<!-- board (\S+): written by .* -->$")
_MODEL_LINE = re.compile(r"^Model `([^`]+)`")


def board_folder(name: str, default: str) -> Path:
    """Where a default run of embedded model ``name`` writes its board: ``.`` for the default model, else
    ``boards/NAME``."""
    return Path(".") if name == default else Path("boards") / name


def as_section(markdown: str, name: str, description: str, folder: Path) -> str:
    """A board's standalone leaderboard.md as a section: no title, headings one level down, links from the top."""
    prefix = "" if folder == Path(".") else f"{folder.as_posix()}/"
    lines = markdown.splitlines()
    body = [line for line in lines if line != TITLE and not line.startswith("Written by `saliency-bench run`")]
    while body and not body[0].strip():
        body.pop(0)
    body = ["#" + line if line.startswith("#") else line for line in body]
    body = [line.replace("](figures/", f"]({prefix}figures/") for line in body]
    heading = f"## `{name}`" + (f": {description}" if description else "")
    standalone = f"Standalone: [{prefix}leaderboard.md]({prefix}leaderboard.md). " if prefix else ""
    return "\n".join([heading, "", standalone + f"Written by `saliency-bench run --all --model {name}`.", "",
                      *body]).rstrip() + "\n"


def read_sections(text: str) -> dict[str, str]:
    """``{model: section}`` of an index; a leaderboard.md written before sections existed is one model's section."""
    sections: dict[str, str] = {}
    current: str | None = None
    kept: list[str] = []
    for line in text.splitlines():
        started = _START.match(line)
        if started:
            current, kept = started.group(1), []
        elif current is not None and line == END.format(name=current):
            sections[current] = "\n".join(kept).rstrip() + "\n"
            current = None
        elif current is not None:
            kept.append(line)
    if not sections and text.startswith(TITLE):  # an older single-model board: keep it as its model's section
        model = next((m.group(1) for m in map(_MODEL_LINE.match, text.splitlines()) if m), None)
        if model is not None:
            sections[model] = as_section(text, model, "", Path("."))
    return sections


def render_index(sections: Mapping[str, str], order: Sequence[str]) -> str:
    """The top-level leaderboard.md: title, contents, then each model's section between its markers."""
    names = [name for name in order if name in sections] + sorted(set(sections) - set(order))
    contents = ", ".join(f"`{name}`" for name in names)
    lines = [TITLE, "", "Written by `saliency-bench run --all --model NAME`, one section per embedded model "
             f"({contents}); do not edit by hand. Each section is that model's whole board; the seed paper's "
             "columns appear beside VGG models only.", ""]
    for name in names:
        lines += [START.format(name=name), sections[name].rstrip(), END.format(name=name), ""]
    return "\n".join(lines)


def write_index(root: Path, sections: Mapping[str, str], order: Sequence[str]) -> Path:
    """Write ``root/leaderboard.md`` from ``sections`` atomically; return its path."""
    from ..store.files import write_atomically

    path = Path(root) / "leaderboard.md"
    write_atomically(render_index(sections, order), path)
    return path
