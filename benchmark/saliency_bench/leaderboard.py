"""The leaderboard: leaderboard.json (every number, interval, configuration) and leaderboard.md (tabulate)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from tabulate import tabulate

from .config import plain
from .plugins import Registry
from .reference import PAPER
from .store import SPEED, ResultStore, dump_json
from .verdicts import LOCALISATION, OVERALL, THRESHOLDS, control_bar, verdicts

SCHEMA = 1

HOW_TO_READ = """\
**How to read this.** Each number is a mean over images with its 95% bootstrap interval in brackets
(n = images or trials, in the detailed tables). *Pointing* is the pointing-game accuracy (higher = the map's
peak lies on the right object; the peak of a flat maximum is the maximal pixel nearest the plateau's centre).
*Restricted* scores one map per image, for the top class, against every class present: if it is close to
*pointing* (small *gap*), the maps for different classes point at the same place, i.e. the method is not
class-sensitive; its header gives the dataset's reference points (below). *Class sens.* is the Spearman
correlation between HOG features of the maps for the top and the bottom class (lower = more class-sensitive).
*Rand.* is the similarity between the map of the trained model and the map after cascading re-initialisation of
its layers from the logits down (each layer redrawn at its trained weight scale, several draws; the interval covers
images and draws): the mean over the cascade and the final step (lower = the map depends on the learned weights).
A constant map (all zero, say) against a non-constant one scores 0 in every similarity (no shared structure: a
map that vanishes after randomisation has changed completely); two constant maps are undefined and counted in the
details. A method that "just draws the salient parts of the image" scores like the `edge` control: high
similarity everywhere. Class sensitivity and randomisation are necessary conditions only: pure noise (the `random`
control) passes both. So the composite verdict, *overall*, passes only a method that also localises: pointing and
restricted gap above their thresholds, and pointing better than every control (the lower end of its interval
above the best control's accuracy, *L*). *n/a*: the method has no defined map on this model (the
reason is in the details), neither a failure nor a number. Paper columns are the seed paper's values on **VGG-16 /
PASCAL VOC07 (pointing) and ImageNet (class sensitivity)**, shown for orientation only: a different model and
dataset."""


def _metric(result: dict | None, name: str) -> dict | None:
    if not result or result.get("status") != "ok":
        return None
    return result.get("metrics", {}).get(name)


def _cell(result: dict | None, name: str) -> str:
    """A summary cell: the metric with its interval, "n/a" where the method has no defined map, else "–"."""
    if result and result.get("status") == "n/a":
        return "n/a"
    return _fmt(_metric(result, name))


def _fmt(metric: dict | None, digits: int = 3) -> str:
    if not metric or metric.get("value") is None:
        return "–"
    text = f"{metric['value']:.{digits}f}"
    if metric.get("ci_low") is not None and metric.get("ci_high") is not None:
        text += f" [{metric['ci_low']:.2f}, {metric['ci_high']:.2f}]"
    return text


def build_board(store: ResultStore, registry: Registry, methods: Sequence[str], checks: Sequence[str]) -> dict:
    """Collect stored results of ``methods`` x ``checks`` into the leaderboard's JSON document."""
    board = {"schema": SCHEMA, "config": store.config, "thresholds": THRESHOLDS, "checks": {}, "methods": {}}
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
        if name in PAPER:
            entry["paper"] = dict(zip(("pointing", "restricted", "class_sensitivity"), PAPER[name]))
        board["methods"][name] = entry
    bar = control_bar(board["methods"])  # localisation is judged against the controls on this board
    if bar is not None:
        board["thresholds"] = {**THRESHOLDS, LOCALISATION: bar}
    for entry in board["methods"].values():
        entry["verdicts"] = verdicts(entry["results"], bar)
    return plain(board)


VERDICT_LETTERS = (("P", "pointing_game"), ("G", "restricted_gap"), ("C", "class_sensitivity"),
                   ("R", "randomization"), ("L", LOCALISATION))


def _paper(entry: dict, key: str, scale: float = 1.0) -> str:
    value = entry.get("paper", {}).get(key)
    return "" if value is None else f"{value * scale:.2f}"


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


def summary_rows(board: dict, speed: dict[str, dict] | None = None) -> list[list[str]]:
    """One row per method for the summary table (with speed cells when ``speed`` is given)."""
    rows = []
    for name, entry in board["methods"].items():
        res = entry["results"]
        pointing = _metric(res.get("pointing_game"), "accuracy")
        restricted = _metric(res.get("restricted_pointing_game"), "accuracy")
        gap = (
            f"{pointing['value'] - restricted['value']:+.3f}"
            if pointing and restricted and pointing.get("value") is not None and restricted.get("value") is not None
            else "–"
        )
        v = entry["verdicts"]
        verdict = " ".join(
            f"{label}:{'✓' if v.get(key) == 'pass' else '✗' if v.get(key) == 'fail' else '–'}"
            for label, key in VERDICT_LETTERS
        )
        rows.append([
            f"`{name}`" + (" (failed)" if entry["status"] == "failed" else ""),
            entry["family"], "yes" if entry["positive"] else "no",
            _cell(res.get("pointing_game"), "accuracy"), _cell(res.get("restricted_pointing_game"), "accuracy"), gap,
            _cell(res.get("class_sensitivity"), "spearman_hog"),
            _cell(res.get("randomization"), "spearman_hog_mean"),
            _cell(res.get("randomization"), "spearman_hog_final"),
            verdict, {"pass": "**pass**", "fail": "fail"}.get(v.get(OVERALL), "–"),
            *_speed_cells(speed, name),
            "/".join(filter(None, [_paper(entry, "pointing", 0.01), _paper(entry, "restricted", 0.01)])),
            _paper(entry, "class_sensitivity"),
        ])
    return rows


def detail_tables(board: dict) -> list[str]:
    """One table per check: every metric with its interval and sample size."""
    parts = []
    for check in board["checks"]:
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


def reference_note(references: dict) -> str:
    """The sentence giving each pointing game's reference points, computed from the dataset's masks alone."""
    parts = []
    for check, points in references.items():
        named = ", ".join(f"{name.replace('_', ' ')} {_fmt(metric)}" for name, metric in points.items())
        parts.append(f"*{check}*: {named}")
    return ("**Dataset reference points** (from the masks and the model's top class alone, no map): "
            + "; ".join(parts) + ". A class-blind map that always finds the top class's object scores the "
            "*top object oracle*; no map can beat the *best single point*. A *restricted* value near the oracle "
            "is what class-insensitivity looks like on this dataset.")


def _threshold_text(key: str, rule: dict) -> str:
    """One verdict rule in words, e.g. ``pointing_game: pass if accuracy >= 0.5``."""
    value = f"{rule['value']:.3f}" if key == LOCALISATION else f"{rule['value']}"
    text = f"{key}: pass if {rule['metric']} {rule['pass_if']} {value}"
    if key == LOCALISATION:
        text += f" (the pointing accuracy of `{rule['best_control']}`, the best control)"
    return text


def render_markdown(board: dict, figures: Sequence[str] = (), speed: dict[str, dict] | None = None) -> str:
    """The leaderboard.md text; ``speed`` adds the ms/img and × floor columns."""
    config = board["config"]
    model, dataset = config.get("model", {}), config.get("dataset", {})
    thresholds = "; ".join(_threshold_text(key, rule) for key, rule in board["thresholds"].items())
    oracle = board.get("dataset_reference", {}).get("restricted_pointing_game", {})
    restricted = "restricted" + (
        f" (oracle {oracle['top_object_oracle']['value']:.2f}, best point {oracle['best_single_point']['value']:.2f})"
        if oracle.get("top_object_oracle", {}).get("value") is not None
        and oracle.get("best_single_point", {}).get("value") is not None else ""
    )
    headers = ["method", "family", "positive", "pointing", restricted, "gap", "class sens.", "rand. mean",
               "rand. final", "verdicts", "overall", *(["ms/img", "× floor"] if speed is not None else []),
               "paper P/R (VGG-16/VOC07)", "paper class sens. (VGG-16/ImageNet)"]
    lines = [
        "# saliency-bench leaderboard",
        "",
        "Written by `saliency-bench run`; do not edit by hand.",
        "",
        f"Model `{model.get('name')}` ({model.get('input_size')} px), dataset `{dataset.get('name')}`, "
        f"{config.get('images')} images, seed {config.get('seed')}; versions: "
        + ", ".join(f"{k} {v}" for k, v in sorted(config.get("versions", {}).items())) + ".",
        "",
        HOW_TO_READ,
        "",
        "Verdicts (P pointing, G restricted gap, C class sensitivity, R randomisation, L localisation beyond the "
        f"controls): {thresholds}. *overall* passes when all five pass.",
        "",
        *([speed_note(speed), ""] if speed else []),
        *([reference_note(board["dataset_reference"]), ""] if board.get("dataset_reference") else []),
        "## Summary",
        "",
        tabulate(summary_rows(board, speed), headers=headers, tablefmt="github", disable_numparse=True),
        "",
    ]
    if figures:
        lines += ["## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures] + [""]
    lines += ["## Details", ""]
    settings = [f"`{name}` " + ", ".join(f"{k}={v}" for k, v in entry["settings"].items())
                for name, entry in board["methods"].items() if entry.get("settings")]
    if settings:
        lines += ["Method settings: " + "; ".join(settings) + ".", ""]
    lines += [t + "\n" for t in detail_tables(board)]
    return "\n".join(lines)


def draw_figures(board: dict, registry: Registry, folder: Path, suite=None) -> list[str]:
    """Maps per family for one image (needs the suite) and randomisation curves; paths relative to folder."""
    from .figures import draw_method_grid, draw_randomization_curves

    written = []
    if suite is not None:
        families: dict[str, list[str]] = {}
        for name, entry in board["methods"].items():
            if entry["status"] == "ok":
                families.setdefault(entry["family"], []).append(name)
        for family, names in sorted(families.items()):
            draw_method_grid(suite, registry, names, folder / "figures" / f"maps_{family}.png")
            written.append(f"figures/maps_{family}.png")
    if draw_randomization_curves(board, folder / "figures" / "randomization.png"):
        written.append("figures/randomization.png")
    return written


def board_conflict(folder: str | os.PathLike, methods: Sequence[str], checks: Sequence[str],
                   config: dict | None = None) -> str | None:
    """Why writing a board of ``methods`` x ``checks`` (under ``config``) into ``folder`` would destroy another.

    Allowed: no board there, or one of the same configuration (package versions aside) and checks whose rows
    are all among ``methods`` (a rerun, or the same board with rows added). ``config=None`` skips that part.
    """
    from .store import _first_difference

    path = Path(folder) / "leaderboard.json"
    if not path.exists():
        return None
    try:
        existing = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return f"{path} exists and is not a readable leaderboard.json"
    if not isinstance(existing, dict) or not isinstance(existing.get("methods"), dict):
        return f"{path} exists and is not a saliency-bench leaderboard.json"
    lost = sorted(set(existing["methods"]) - set(methods))
    if lost:
        shown = ", ".join(lost[:3]) + (", ..." if len(lost) > 3 else "")
        return f"{path} holds {len(lost)} row(s) this run does not compute ({shown})"
    recorded = sorted(existing.get("checks") or {})
    if recorded and recorded != sorted(checks):
        return f"{path} is a board of other checks ({', '.join(recorded)})"
    if config is not None and isinstance(existing.get("config"), dict):
        old = {k: v for k, v in existing["config"].items() if k != "versions"}
        new = {k: v for k, v in config.items() if k != "versions"}
        if old != new:
            return f"{path} is a board of another configuration ({_first_difference(old, new)})"
    return None


def write_leaderboard(
    store: ResultStore, registry: Registry, folder: Path, methods: Sequence[str], checks: Sequence[str], suite=None,
    speed: bool = False, written: list[Path] | None = None,
) -> dict:
    """Write leaderboard.json, leaderboard.md, the figures and (with ``speed``) leaderboard-speed.json; return the board.

    leaderboard.json holds only what the seeded run determines; speed figures go to their own file.
    """
    board = build_board(store, registry, methods, checks)  # from validated records only (ResultStore.get)
    folder = Path(folder)
    timings = (speed_records(store, methods) if speed else None) or None  # none timed: no columns, no file
    figures = draw_figures(board, registry, folder, suite)
    markdown = render_markdown(board, figures, timings)  # rendered before either file is replaced
    dump_json(board, folder / "leaderboard.json")
    write_text_atomically(markdown, folder / "leaderboard.md")
    speed_file = folder / "leaderboard-speed.json"
    if timings is not None:
        dump_json({"schema": SCHEMA, "model": board["config"].get("model", {}).get("name"), "methods": timings},
                  speed_file)
    else:
        speed_file.unlink(missing_ok=True)  # never leave figures of an older run beside this board
    if written is not None:
        written += [folder / "leaderboard.md", folder / "leaderboard.json"]
        written += [speed_file] if timings is not None else []
        written += [folder / f for f in figures]
    return board


def write_text_atomically(text: str, path: Path) -> None:
    """Write ``text`` through a temporary file in the same folder and an atomic rename."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)
