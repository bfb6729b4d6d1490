"""The leaderboard: leaderboard.json (every number, interval, configuration) and leaderboard.md (tabulate)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from tabulate import tabulate

from .values import FILE as SIDECAR
from .values import collect, sidecar_text
from ..errors import UserError
from ..plugins import Registry
from ..methods import is_control
from ..store.files import json_text, plain, write_all
from ..store.results import SPEED, ResultStore
from .verdicts import OVERALL, columns_of, judge, ordered_checks, rules_of

SCHEMA = 1
BOARD_FILES = ("leaderboard.json", SIDECAR, "leaderboard.md", "leaderboard-speed.json")  # what a board folder holds

HOW_TO_READ_START = """\
**How to read this.** Each number is a mean with its 95% bootstrap interval in brackets (n = images or trials,
in the detailed tables)."""

HOW_TO_READ_END = """\
A method that "just draws the salient parts of the image" scores like an edge detector among the controls (the
`control` family, listed below). A verdict that compares maps with each other is a necessary condition only:
pure noise passes it. So the composite verdict, *overall*, passes a method only when every verdict passes,
including doing better than every control. *n/a*: the method has no defined map on this model
(the reason is in the details), neither a failure nor a number. Paper columns (beside VGG models) are the seed
paper's values on another model and dataset (named in their headers), shown for orientation only."""


def how_to_read(checks: Sequence) -> str:
    """The paragraph above the summary: the general reading, then each check's own (in board order)."""
    parts = [HOW_TO_READ_START] + [c.how_to_read for c in ordered_checks(checks) if c.how_to_read] + [HOW_TO_READ_END]
    return " ".join(parts)


def board_checks(board: dict, registry: Registry) -> list:
    """The registered check objects of the checks on ``board``, in board order (unregistered ones are left out)."""
    return ordered_checks(registry.checks[name].obj for name in board.get("checks", {}) if name in registry.checks)


def _fmt(metric: dict | None, digits: int = 3) -> str:
    if not metric or metric.get("value") is None:
        return "–"
    text = f"{metric['value']:.{digits}f}"
    if metric.get("ci_low") is not None and metric.get("ci_high") is not None:
        text += f" [{metric['ci_low']:.2f}, {metric['ci_high']:.2f}]"
    return text


def shows_paper(config: dict, registry: Registry) -> bool:
    """Whether the seed paper's values (VGG-16) go beside this board's rows: its model's ``paper_columns`` (an
    unregistered model: yes, as before models declared it)."""
    spec = registry.models.get((config.get("model") or {}).get("name"))
    return spec is None or bool(getattr(spec.obj, "paper_columns", True))


def build_board(store: ResultStore, registry: Registry, methods: Sequence[str], checks: Sequence[str]) -> dict:
    """Collect stored results of ``methods`` x ``checks`` into the leaderboard's JSON document."""
    check_objects = ordered_checks(registry.checks[c].obj for c in checks)
    board = {"schema": SCHEMA, "config": store.config, "thresholds": {}, "checks": {}, "methods": {}}
    papers = check_objects if shows_paper(store.config, registry) else []
    for name in methods:
        method = registry.methods[name]
        entry = {
            "family": method.obj.family, "positive": method.obj.positive, "layer": method.obj.layer,
            "distribution": method.distribution, "version": method.version, "status": "ok", "results": {},
        }
        settings = method.obj.setting_values() if hasattr(method.obj, "setting_values") else {}
        if settings:
            entry["settings"] = settings
        for check in checks:
            record = store.get(name, check)
            if record is None:
                continue
            board["checks"].setdefault(check, record.get("params", {}))
            if record.get("status") == "n/a":
                entry.setdefault("not_applicable", {})[check] = record.get("reason", "")
            elif record.get("status") != "ok":
                entry["status"] = "failed"
                entry.setdefault("errors", {})[check] = record.get("error", "")
            entry["results"][check] = {
                k: v for k, v in record.items() if k not in ("config", "params", "method", "check", "plugin")
            }
        for check, result in entry["results"].items():  # the dataset's own reference points (same for every method)
            reference = result.pop("dataset_reference", None)
            if reference is not None:
                board.setdefault("dataset_reference", {}).setdefault(check, reference)
        paper = {c.paper_key: c.paper[name] for c in papers if c.paper_key and name in c.paper}
        if paper:
            entry["paper"] = paper
        board["methods"][name] = entry
    board["thresholds"] = judge(board["methods"], check_objects)  # controls judged on this same board
    return plain(board)


def _paper(entry: dict, check) -> str:
    value = entry.get("paper", {}).get(check.paper_key)
    return "" if value is None else f"{value * check.paper_scale:.2f}"


def speed_records(store: ResultStore, methods: Sequence[str]) -> dict[str, dict]:
    """``{method: speed record}`` of the methods the run timed successfully (see ``runner.measure_speed``)."""
    records = {}
    for name in methods:
        record = store.get(name, SPEED)
        if record is not None and record.get("status") == "ok":
            records[name] = {k: record[k] for k in ("device", "floor_ms_per_image", "ms_per_image", "ratio_to_floor")}
    return records


def speed_note(speed: dict[str, dict]) -> str:
    """The sentence above the summary saying where, how and on what the speed columns were measured."""
    devices = sorted({record["device"] for record in speed.values()})
    floors = sorted({round(record["floor_ms_per_image"], 2) for record in speed.values()})
    floor = f"{floors[0]:.2f} ms/image" if len(floors) == 1 else f"{floors[0]:.2f}-{floors[-1]:.2f} ms/image (resumed runs)"
    return (f"*ms/img* and *× floor*: milliseconds per image to attribute a batch of 64, and the ratio to the floor "
            f"(one forward plus one backward to the input, {floor}) timed in the same process, median of interleaved "
            f"rounds, on **{', '.join(devices)}**. They depend on the machine, so they are kept in "
            "`leaderboard-speed.json`, not in `leaderboard.json`; `saliency-bench bench` times peers beside them.")


def _speed_cells(speed: dict[str, dict] | None, name: str) -> list[str]:
    """The ms/img and × floor cells of one method ("–" where it was not timed; none without speed)."""
    if speed is None:
        return []
    record = speed.get(name)
    if record is None:
        return ["–", "–"]
    return [f"{record['ms_per_image']:.2f}", f"{record['ratio_to_floor']:.2f}x"]


def _verdict_text(entry: dict, rules: Sequence) -> str:
    """``P:✓ L:✓ G:✗ ...``: each rule's letter and verdict."""
    marks = {"pass": "✓", "fail": "✗"}
    return " ".join(f"{rule.letter}:{marks.get(entry['verdicts'].get(rule.key), '–')}" for rule in rules)


def summary_rows(board: dict, checks: Sequence, speed: dict[str, dict] | None = None) -> list[list[str]]:
    """One row per method for the summary table: each check's columns, verdicts, speed, paper values."""
    columns, rules = columns_of(checks), rules_of(checks)
    papers = paper_checks(board, checks)
    rows = []
    for name, entry in board["methods"].items():
        rows.append([
            f"`{name}`" + (" (failed)" if entry["status"] == "failed" else ""),
            entry["family"], "yes" if entry["positive"] else "no",
            *[column.cell(entry["results"]) for column in columns],
            _verdict_text(entry, rules), {"pass": "**pass**", "fail": "fail"}.get(entry["verdicts"].get(OVERALL), "–"),
            *_speed_cells(speed, name),
            *[_paper(entry, check) for check in papers],
        ])
    return rows


def paper_checks(board: dict, checks: Sequence) -> list:
    """The checks whose paper column the board shows: those with a paper value on some row (none beside a model
    whose ``paper_columns`` is off, see ``shows_paper``)."""
    return [c for c in ordered_checks(checks)
            if c.paper_key and any(c.paper_key in entry.get("paper", {}) for entry in board["methods"].values())]


def summary_headers(checks: Sequence, speed: bool, board: dict) -> list[str]:
    """The summary table's headers, matching ``summary_rows``."""
    papers = paper_checks(board, checks)
    return ["method", "family", "positive", *[column.label for column in columns_of(checks)], "verdicts", "overall",
            *(["ms/img", "× floor"] if speed else []), *[check.paper_label for check in papers]]


def detail_tables(board: dict, checks: Sequence = ()) -> list[str]:
    """One table per check (in board order, then any other recorded check): every metric with interval and n."""
    parts = []
    ordered = [c.name for c in ordered_checks(checks) if c.name in board["checks"]]
    for check in ordered + [name for name in board["checks"] if name not in ordered]:
        metric_names: list[str] = []
        for entry in board["methods"].values():
            for metric in (entry["results"].get(check) or {}).get("metrics", {}):
                if metric not in metric_names:
                    metric_names.append(metric)
        rows = []
        for name, entry in board["methods"].items():
            result = entry["results"].get(check)
            if result is None:
                continue
            if result.get("status") == "n/a":
                rows.append([f"`{name}`"] + ["n/a: " + result.get("reason", "")[:100]] + [""] * (len(metric_names) - 1))
                continue
            if result.get("status") != "ok":
                rows.append([f"`{name}`"] + ["failed: " + result.get("error", "")[:80]] + [""] * (len(metric_names) - 1))
                continue
            cells = []
            for metric in metric_names:
                m = result["metrics"].get(metric)
                cell = _fmt(m) + (f" n={m['n']}" if m and "n" in m else "")
                if m and m.get("draws", 1) > 1:
                    cell += f" x{m['draws']} draws"
                if m and m.get("dropped"):
                    cell += f" ({m['dropped']} undefined dropped)"
                if m and m.get("one_constant"):
                    cell += f" ({m['one_constant']} with one constant map, scored 0)"
                if m and m.get("vanished"):
                    cell += f" ({m['vanished']} of {m.get('maps', '?')} randomised maps vanished, scored 0)"
                cells.append(cell)
            rows.append([f"`{name}`"] + cells)
        params = ", ".join(f"{k}={v}" for k, v in board["checks"][check].items() if not isinstance(v, (list, dict)))
        parts.append(f"### {check}\n\nParameters: {params}\n\n" + tabulate(rows, headers=["method"] + metric_names,
                                                                           tablefmt="github"))
    return parts


def reference_note(references: dict, checks: Sequence) -> str:
    """Each check's dataset reference points (computed from the data alone, no map), with the check's reading."""
    readings = {c.name: c.references_note for c in checks}
    parts = []
    for check, points in references.items():
        named = ", ".join(f"{name.replace('_', ' ')} {_fmt(metric)}" for name, metric in points.items())
        parts.append(f"*{check}*: {named}" + (f". {readings[check]}" if readings.get(check) else ""))
    return "**Dataset reference points** (from the data and the model's prediction alone, no map): " + "; ".join(parts)


def verdict_note(board: dict, checks: Sequence) -> str:
    """The sentence stating every verdict rule (letter, threshold or control, reason)."""
    parts = []
    for rule in rules_of(checks):
        recorded = board["thresholds"].get(rule.key)
        if recorded is None:
            parts.append(f"{rule.letter} {rule.key}: undecided (no control on this board)")
            continue
        if rule.beats_controls:
            text = (f"{rule.letter} {rule.key}: pass if {recorded['compares']} {rule.metric} {recorded['pass_if']} "
                    f"{recorded['value']:.3f}, the value of `{recorded['best_control']}`, the best control")
        else:
            text = f"{rule.letter} {rule.key}: pass if {rule.metric} {rule.pass_if} {rule.value}"
        parts.append(text + (f" ({rule.reason})" if rule.reason else ""))
    return "Verdicts: " + "; ".join(parts) + ". *overall* passes when every verdict passes."


def controls_note(board: dict, registry: Registry | None) -> str:
    """The controls on this board, each with its one-line description."""
    names = [n for n, e in board["methods"].items() if is_control(e.get("family"))]
    described = []
    for name in names:
        method = registry.methods.get(name) if registry is not None else None
        described.append(f"`{name}`" + (f" ({method.obj.describe()})" if method is not None else ""))
    return "**Controls** (the `control` family, methods that explain nothing by construction): " + "; ".join(
        described) + "." if described else ""


def render_markdown(board: dict, checks: Sequence, figures: Sequence[str] = (), speed: dict[str, dict] | None = None,
                    registry: Registry | None = None) -> str:
    """The leaderboard.md text from the board and its check objects; ``speed`` adds the ms/img and × floor columns."""
    config = board["config"]
    model, dataset = config.get("model", {}), config.get("dataset", {})
    checks = ordered_checks(checks)
    combine = "; ".join(f"*{c.name}*: {c.combine}" for c in checks)
    controls = controls_note(board, registry)
    lines = [
        "# saliency-bench leaderboard",
        "",
        "Written by `saliency-bench run`; do not edit by hand.",
        "",
        f"Model `{model.get('name')}` ({model.get('input_size')} px), dataset `{dataset.get('name')}`, "
        f"{config.get('images')} images, seed {config.get('seed')}; versions: "
        + ", ".join(f"{k} {v}" for k, v in sorted(config.get("versions", {}).items())) + ".",
        "",
        how_to_read(checks),
        "",
        verdict_note(board, checks),
        "",
        f"How each headline combines its per-image values: {combine}.",
        "",
        *([controls, ""] if controls else []),
        *([speed_note(speed), ""] if speed else []),
        *([reference_note(board["dataset_reference"], checks), ""] if board.get("dataset_reference") else []),
        "## Summary",
        "",
        tabulate(summary_rows(board, checks, speed), headers=summary_headers(checks, speed is not None, board),
                 tablefmt="github", disable_numparse=True),
        "",
    ]
    if figures:
        lines += ["## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures] + [""]
    lines += ["## Details", ""]
    settings = [f"`{name}` " + ", ".join(f"{k}={v}" for k, v in entry["settings"].items())
                for name, entry in board["methods"].items() if entry.get("settings")]
    if settings:
        lines += ["Method settings: " + "; ".join(settings) + ".", ""]
    lines += [t + "\n" for t in detail_tables(board, checks)]
    return "\n".join(lines)


def draw_figures(board: dict, registry: Registry, folder: Path, suite=None) -> list[str]:
    """Maps per family for one image (needs the suite), then each check's own figures; paths relative to folder."""
    from .figures import draw_method_grid

    written = []
    if suite is not None:
        families: dict[str, list[str]] = {}
        for name, entry in board["methods"].items():
            if entry["status"] == "ok":
                families.setdefault(entry["family"], []).append(name)
        for family, names in sorted(families.items()):
            draw_method_grid(suite, registry, names, folder / "figures" / f"maps_{family}.png")
            written.append(f"figures/maps_{family}.png")
    for check in board_checks(board, registry):
        written += check.draw_figures(board, folder)
    return written


def check_board_folder(folder: Path) -> None:
    """Refuse, before anything is drawn or written, a board folder where a file of the board cannot go (one line)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"board folder {folder} is a file; move it away or choose another folder")
    for name in BOARD_FILES:
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            raise UserError(f"{path} is a folder where a board file goes; move it away (nothing of the board "
                            "was written)")
    figures = folder / "figures"
    if figures.exists() and not figures.is_dir():
        raise UserError(f"{figures} is a file where the board's figures go; move it away (nothing of the board "
                        "was written)")


def _figures(board: dict, registry: Registry, folder: Path, suite) -> list[str]:
    """``draw_figures``, a file that cannot be written a one-line UserError."""
    try:
        return draw_figures(board, registry, folder, suite)
    except OSError as exc:
        raise UserError(f"cannot draw the board's figures into {folder}: {exc.strerror or exc} "
                        f"({exc.filename}); nothing else of the board was written") from None


def write_leaderboard(
    store: ResultStore, registry: Registry, folder: Path, methods: Sequence[str], checks: Sequence[str], suite=None,
    speed: bool = False, written: list[Path] | None = None, run_timing: dict | None = None,
) -> dict:
    """Write leaderboard.json, leaderboard-values.json (the per-image data, for paired comparisons), leaderboard.md,
    the figures and (with ``speed``) leaderboard-speed.json, with ``run_timing`` (the run's wall time and floor)
    under ``run``; return the board.

    leaderboard.json holds only what the seeded run determines; speed figures go to their own file. Everything is
    rendered and every path checked before a file is replaced, and the files are replaced all or none.
    """
    folder = Path(folder)
    check_board_folder(folder)
    board = build_board(store, registry, methods, checks)  # from validated records only (ResultStore.get)
    timings = (speed_records(store, methods) if speed else None) or None  # none timed: no columns, no file
    figures = _figures(board, registry, folder, suite)
    files = {folder / "leaderboard.json": json_text(board),
             folder / "leaderboard.md": render_markdown(board, board_checks(board, registry), figures, timings,
                                                        registry)}
    values = sidecar_text(board, collect(store, registry, board, methods))
    speed_file = folder / "leaderboard-speed.json"
    if values is not None:
        files[folder / SIDECAR] = values
    if timings is not None:
        files[speed_file] = json_text({"schema": SCHEMA, "model": board["config"].get("model", {}).get("name"),
                                       "methods": timings, **({"run": run_timing} if run_timing else {})})
    # never leave the values or the timings of an older board beside this one
    write_all(files, remove=[path for path in (folder / SIDECAR, speed_file) if path not in files])
    if written is not None:
        written += [folder / "leaderboard.md", folder / "leaderboard.json"]
        written += [folder / SIDECAR] if values is not None else []
        written += [speed_file] if timings is not None else []
        written += [folder / f for f in figures]
    return board
