"""``build_site(sections, out_dir)``: the static site of one or more model boards, readable from ``file://``.

Layout of ``out_dir``: ``index.html``, ``method.html``, ``compare.html`` and their scripts and style (static/,
copied as they are); ``data/site.js`` (every model's index); ``data/<model>/<method>.js`` (a method page's
details) and ``data/<model>/pairs.js`` (every pair's paired differences); ``img/<model>/`` (the board's figures,
the methods' map sprites and the input images). Data are scripts that register themselves on ``window``,
because a page opened from ``file://`` cannot fetch JSON.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Callable, Sequence

from ...checks.figure_style import CONTROL_COLOR, OKABE_ITO
from ...plugins import get_plugin_manager
from ..leaderboard import board_checks
from .details import method_detail
from .pairs import oriented, pairs_document
from .rows import model_index, slug
from .section import Section

STATIC = Path(__file__).with_name("static")
PAGES = ("index.html", "method.html", "compare.html", "site.css", "site.js", "index.js", "method.js", "compare.js")


def plain(value):
    """``value`` with non-finite floats as None and numpy scalars as Python numbers (JSON without NaN)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_script(path: Path, variable: str, key: str | None, value) -> Path:
    """A data script: ``window.VARIABLE = value`` or, with ``key``, ``window.VARIABLE[key] = value``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(plain(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False).replace("</", "<\\/")
    if key is None:
        path.write_text(f"window.{variable} = {text};\n", encoding="utf-8")
    else:
        path.write_text(f"window.{variable} = window.{variable} || {{}};\nwindow.{variable}[{json.dumps(key)}] = "
                        f"{text};\n", encoding="utf-8")
    return path


def section_keys(sections: Sequence[Section]) -> list[str]:
    """A unique file-safe key per section: its label, numbered where two share one."""
    keys: list[str] = []
    for section in sections:
        base = slug(section.label)
        key, n = base, 2
        while key in keys:
            key, n = f"{base}-{n}", n + 1
        keys.append(key)
    return keys


def pair_lookup(document: dict | None) -> Callable:
    """``pair(A, B, check, metric)``: compare's difference A - B from the pairs document (None where unpaired)."""
    index = {(row["check"], row["metric"]): i for i, row in enumerate((document or {}).get("rows", []))}

    def pair(first: str, second: str, check: str, metric: str) -> dict | None:
        """The difference ``first - second`` of one metric, as ``paired_difference`` returns it."""
        rows = oriented(document, first, second) if document is not None and (check, metric) in index else None
        triple = None if rows is None else rows[index[(check, metric)]]
        if triple is None:
            return None
        low, high = triple[1], triple[2]
        excludes = low is not None and high is not None and (low > 0 or high < 0)
        return {"value": triple[0], "ci_low": low, "ci_high": high, "excludes_zero": excludes}

    return pair


def copy_figures(section: Section, out: Path, written: list[Path]) -> dict[str, str]:
    """The board's figures, re-encoded into ``out``; ``{stem: path relative to the site}``."""
    from .images import copy_figure

    figures = {}
    for source in sorted((section.folder / "figures").glob("*.png")):
        target = copy_figure(source, out / source.name)
        written.append(target)
        figures[source.stem] = target.relative_to(out.parent.parent).as_posix()
    return figures


def pictures(section: Section, out: Path, checks: Sequence, log: Callable[[str], None], written: list[Path]):
    """The methods' map sprites and the input sheet (torch only here, and only when the section has a source)."""
    if section.evidence is None:
        return None
    from .evidence import render

    rendered = render(section, section.evidence, out, checks, k=section.k, tile=section.tile, log=log)
    written += sorted(p for p in out.glob("*") if p.suffix in (".png", ".webp") and p not in written)
    return rendered


def build_model(section: Section, key: str, out: Path, registry, log: Callable[[str], None],
                written: list[Path]) -> dict:
    """One model's data scripts and images; its entry of ``data/site.js``."""
    checks = board_checks(section.board, registry)
    model = model_index(section, key, checks)
    document = pairs_document(checks, section.board, section.values) if section.values else None
    if document is not None:
        written.append(write_script(out / "data" / key / "pairs.js", "SALIENCY_PAIRS", key, document))
    model["pairs"] = document is not None
    images = out / "img" / key
    model["figures"] = copy_figures(section, images, written)
    rendered = pictures(section, images, checks, log, written)
    model["inputs"] = None if rendered is None or rendered["inputs"] is None else f"img/{key}/{rendered['inputs']}"
    model["input_columns"] = None if rendered is None else rendered["input_columns"]
    model["input_sheet"] = None if rendered is None else rendered["input_sheet"]
    pair = pair_lookup(document)
    for row in model["methods"]:
        detail = method_detail(section, row["name"], checks, pair)
        evidence = None if rendered is None else rendered["methods"].get(row["name"])
        if evidence is not None:
            evidence["sprite"] = f"img/{key}/{evidence['sprite']}"
        detail["evidence"] = evidence
        row["pictures"] = evidence is not None
        written.append(write_script(out / "data" / key / f"{row['slug']}.js", "SALIENCY_DETAILS",
                                    f"{key}/{row['name']}", detail))
    return model


def palette_document() -> dict:
    """The figures' colour-blind palette (Okabe & Ito) and the controls' grey, for the pages' curves."""
    return {"lines": list(OKABE_ITO), "control": CONTROL_COLOR}


def build_site(sections: Sequence[Section], out_dir: str | Path, registry=None,
               log: Callable[[str], None] = lambda message: None) -> list[Path]:
    """Write the site of ``sections`` (one per model board) into ``out_dir``; every file written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    registry = registry if registry is not None else get_plugin_manager().registry()
    written: list[Path] = []
    for name in PAGES:
        shutil.copyfile(STATIC / name, out / name)
        written.append(out / name)
    models = [build_model(section, key, out, registry, log, written)
              for section, key in zip(sections, section_keys(sections))]
    site = {"generator": "saliency-bench site", "palette": palette_document(), "models": models}
    written.append(write_script(out / "data" / "site.js", "SALIENCY_SITE", None, site))
    return written


def site_bytes(out_dir: str | Path) -> int:
    """The site's size on disk: the sum of its files' sizes."""
    return sum(p.stat().st_size for p in Path(out_dir).rglob("*") if p.is_file())
