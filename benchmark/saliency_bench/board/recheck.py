"""``saliency-bench check``: rerun methods under a leaderboard's recorded configuration and compare.

A method recorded on the board is compared metric by metric: paired with its recorded per-image values where
the board ships them (a regression is a paired interval wholly on the bad side of 0), else against the recorded
interval (a regression is a move in the bad direction beyond the band); a method that is not on the board is judged as a candidate (``candidate.py``): its row,
ranks, verdicts and differences, and ``--add DIR`` writes a board with its row added, never over ``--against``.
"""
from __future__ import annotations

import copy
import json
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from tabulate import tabulate

from . import candidate
from .values import FILE as SIDECAR
from .values import image_data, read_sidecar, sidecar_text
from ..checks.stats import bootstrap_params
from ..errors import UserError
from .paired import paired_difference, reading
from ..plugins import Registry, get_plugin_manager
from ..run.options import RunOptions
from ..run.pipeline import run_benchmark
from ..store.files import parse_json
from ..store.locking import scratch_folder
from ..store.shards import ShardStore, stored_values
from .leaderboard import SCHEMA
from .verdicts import judge, ordered_checks, parse_criteria


BOARD_BYTES = 256 * 2**20  # a board of every timm model on many checks stays far below this


def read_board(path: str | Path) -> dict:
    """A leaderboard.json whose shape ``check`` relies on, or a one-line UserError naming the file and the field.

    Everything ``run_regression_check`` reads is checked here, before any method is rerun.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"--against {path} is a directory; pass the leaderboard.json file in it")
    if not path.is_file():
        raise UserError(f"leaderboard file not found: {path}")
    try:
        if path.stat().st_size > BOARD_BYTES:
            raise UserError(f"{path}: {path.stat().st_size} bytes, larger than a board can be ({BOARD_BYTES})")
        board = parse_json(path.read_bytes())
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({str(exc)[:80]})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(board, dict) or "config" not in board or "methods" not in board:
        raise UserError(f"{path}: not a saliency-bench leaderboard.json")
    if not isinstance(board.get("schema", SCHEMA), int) or board.get("schema", SCHEMA) > SCHEMA:
        raise UserError(f"{path}: a board of schema {str(board.get('schema'))[:20]}, newer than this saliency-bench "
                        f"reads ({SCHEMA}); upgrade saliency-bench")
    problem = board_problem(board)
    if problem is not None:
        raise UserError(f"{path}: not a usable saliency-bench leaderboard.json ({problem}); "
                        "pass one written by `saliency-bench run`")
    return board


def _kind(value: object) -> str:
    """The JSON type name of a value, for the refusal message."""
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "object"}.get(
        type(value), type(value).__name__)


def _is_int(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_number_or_null(value: object) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def board_problem(board: dict) -> str | None:
    """The first field of a leaderboard.json that ``check`` cannot use, worded as "FIELD must be ..., got ..."."""
    config = board.get("config")
    if not isinstance(config, dict):
        return f"config must be an object, got {_kind(config)}"
    for part in ("model", "dataset"):
        entry = config.get(part)
        if not isinstance(entry, dict):
            return f"config.{part} must be an object, got {_kind(entry)}"
        if not isinstance(entry.get("name"), str) or not entry["name"]:
            return f"config.{part}.name must be a name, got {_kind(entry.get('name'))}"
    dataset = config["dataset"]
    if dataset.get("split") is not None and not isinstance(dataset["split"], str):
        return f"config.dataset.split must be a string or null, got {_kind(dataset['split'])}"
    if dataset.get("seed") is not None and not _is_int(dataset["seed"], 0):
        return f"config.dataset.seed must be an integer >= 0 or null, got {dataset['seed']!r}"
    for key, minimum in (("images", 1), ("seed", 0), ("batch_size", 1)):
        if key not in config:
            return f"config.{key} is missing"
        if not _is_int(config[key], minimum):
            return f"config.{key} must be an integer >= {minimum}, got {config[key]!r}"
    if config.get("weights_sha256") is not None and not isinstance(config["weights_sha256"], str):
        return f"config.weights_sha256 must be a string or null, got {_kind(config['weights_sha256'])}"
    checks = board.get("checks", {})
    if not isinstance(checks, dict):
        return f"checks must be an object of check parameters, got {_kind(checks)}"
    for check, params in checks.items():
        if not isinstance(params, dict):
            return f"checks.{check} must be an object of parameters, got {_kind(params)}"
    methods = board["methods"]
    if not isinstance(methods, dict):
        return f"methods must be an object keyed by method name, got {_kind(methods)}"
    for name, entry in methods.items():
        results = entry.get("results") if isinstance(entry, dict) else None
        if not isinstance(results, dict):
            where = f"methods.{name}" if not isinstance(entry, dict) else f"methods.{name}.results"
            return f"{where} must be an object, got {_kind(entry if not isinstance(entry, dict) else results)}"
        for check, result in results.items():
            if not isinstance(result, dict):
                return f"methods.{name}.results.{check} must be an object, got {_kind(result)}"
            if result.get("status") != "ok":
                continue
            metrics = result.get("metrics", {})
            if not isinstance(metrics, dict):
                return f"methods.{name}.results.{check}.metrics must be an object, got {_kind(metrics)}"
            for metric, recorded in metrics.items():
                if not isinstance(recorded, dict):
                    return f"methods.{name}.results.{check}.metrics.{metric} must be an object, got {_kind(recorded)}"
                for field in ("value", "ci_low", "ci_high"):
                    if not _is_number_or_null(recorded.get(field)):
                        return (f"methods.{name}.results.{check}.metrics.{metric}.{field} must be a number or null, "
                                f"got {_kind(recorded.get(field))}")
    return None


# The default band's margin beyond the recorded interval: float32 kernels differ between processors of the
# same kind (the measured largest difference of a rerun on another machine was 2.3e-4), so no such
# difference is a regression. README "Determinism" states the promise.
MACHINE_TOLERANCE = 1e-3


GOOD = ("ok", "improved")  # row verdicts that let `check` exit 0


def _compare(old: float, new: float, recorded: dict, tolerance: float | None, better: str | None) -> tuple[str, str]:
    """(verdict, allowed band) of one metric: only a move in the bad direction beyond the band is a regression.

    The band is ``±tolerance`` when given, else the recorded interval widened by ``MACHINE_TOLERANCE``, else
    ``±MACHINE_TOLERANCE``. A move in the good direction beyond it is ``improved``; a metric whose check
    declares no direction (``Check.better``) is ``changed`` when it moves beyond the band either way.
    """
    if tolerance is not None:
        low, high, allowed = old - tolerance, old + tolerance, f"±{tolerance:g}"
    elif recorded.get("ci_low") is not None and recorded.get("ci_high") is not None:
        low, high = recorded["ci_low"] - MACHINE_TOLERANCE, recorded["ci_high"] + MACHINE_TOLERANCE
        allowed = f"[{low:.4f}, {high:.4f}]"
    else:
        low, high, allowed = old - MACHINE_TOLERANCE, old + MACHINE_TOLERANCE, f"±{MACHINE_TOLERANCE:g}"
    if low <= new <= high:
        return "ok", allowed
    worse = (new < low) if better == "higher" else (new > high) if better == "lower" else None
    if worse is None:
        return "changed", allowed
    return ("regression" if worse else "improved"), allowed + f" ({better} is better)"


def _status_row(method: str, check: str, old: dict | None, new: dict | None) -> dict | None:
    """The one row of a (method, check) whose status is not ``ok`` on both sides; None when both are ``ok``."""
    was = (old or {}).get("status", "missing")
    now = (new or {}).get("status", "missing")
    if was == "ok" and now == "ok":
        return None
    if was == now == "n/a":
        verdict = "ok"
    elif now == "ok":
        verdict = "improved"  # a failure or an n/a that now has a number
    elif now == "n/a":
        verdict = "regression" if was == "ok" else "failed"
    else:
        verdict = "failed"
    reason = (new or {}).get("error") or (new or {}).get("reason") or ""
    return {"method": method, "check": check, "metric": f"(status {was} -> {now})", "old": None, "new": None,
            "diff": None, "allowed": reason[:60], "verdict": verdict}


def _metric_rows(method: str, check: str, old: dict, new: dict | None, tolerance: float | None,
                 better: dict[str, str] | None = None) -> list[dict]:
    """One row per recorded metric: old, new, difference, allowed band and a direction-aware verdict."""
    if old.get("status") != "ok" or not new or new.get("status") != "ok":
        row = _status_row(method, check, old, new)
        if old.get("status") != "ok" or row["verdict"] != "failed":
            return [row]
    rows = []
    for metric, recorded in old.get("metrics", {}).items():
        old_value = recorded.get("value")
        current = (new or {}).get("metrics", {}).get(metric, {}) if new and new.get("status") == "ok" else None
        new_value = current.get("value") if current else None
        row = {"method": method, "check": check, "metric": metric, "old": old_value, "new": new_value}
        if current is None:
            row.update(diff=None, allowed="", verdict="failed" if new else "missing")
        elif old_value is None or new_value is None:
            same = old_value is None and new_value is None
            row.update(diff=None, allowed="both undefined", verdict="ok" if same else "changed")
        else:
            verdict, allowed = _compare(old_value, new_value, recorded, tolerance, (better or {}).get(metric))
            row.update(diff=new_value - old_value, allowed=allowed, verdict=verdict)
        rows.append(row)
    return rows


def _paired_rows(method: str, check, old: dict, new: dict, new_data: dict, old_data: dict, params: dict,
                 tolerance: float | None) -> list[dict]:
    """One row per recorded metric, the rerun paired with the recorded per-image data where both have it.

    A paired metric is a regression only when its paired interval lies wholly on the bad side of 0 (and the
    difference exceeds ``tolerance``, when given): image-to-image noise shared by both runs cancels, so a
    small real change is caught and a rerun's noise is not. Other metrics fall back to the band of ``_compare``.
    """
    rows = []
    for row in _metric_rows(method, check.name, old, new, tolerance, check.better):
        metric = row["metric"]
        statistic = check.statistics.get(metric)
        if statistic is None or metric not in new_data or metric not in old_data or row["new"] is None:
            rows.append(row)
            continue
        paired = paired_difference(statistic, new_data[metric], old_data[metric], **bootstrap_params(params))
        if paired["value"] is None or paired["ci_low"] is None:
            rows.append(row)
            continue
        read_as = reading(paired, check.better.get(metric))
        small = tolerance is not None and abs(paired["value"]) <= tolerance
        verdict = ("ok" if read_as == "no clear difference" or small else
                   {"worse": "regression", "better": "improved", "differs": "changed"}[read_as])
        allowed = f"paired [{paired['ci_low']:+.4f}, {paired['ci_high']:+.4f}]"
        rows.append({**row, "diff": paired["value"], "allowed": allowed + (f", ±{tolerance:g}" if tolerance else ""),
                     "verdict": verdict})
    return rows


def recorded_params_note(against: str | Path, board: dict, store, names: Sequence[str]) -> list[str]:
    """One line per check parameter the board does not record (an older board): replayed with today's default."""
    notes = []
    for check, recorded in board.get("checks", {}).items():
        for name in names:
            record = store.get(name, check)
            if record is None:
                continue
            for key, value in record.get("params", {}).items():
                if key not in recorded:
                    notes.append(f"note: {against} records no {check}.{key} (older board); replayed with "
                                 f"today's default {value!r}")
            break
    return notes


def format_comparison(rows: list[dict]) -> str:
    """The table ``saliency-bench check`` prints for methods recorded on the board."""
    def num(value):
        return "–" if value is None else f"{value:.4f}"

    table = [[r["method"], r["check"], r["metric"], num(r["old"]), num(r["new"]),
              "–" if r["diff"] is None else f"{r['diff']:+.4f}", r["allowed"], r["verdict"]] for r in rows]
    bad = sum(r["verdict"] not in GOOD for r in rows)
    better = sum(r["verdict"] == "improved" for r in rows)
    summary = f"{len(rows) - bad} of {len(rows)} metrics hold"
    summary += f" ({better} improved)" if better else ""
    summary += f"; {bad} regression(s)" if bad else ""
    return tabulate(table, headers=["method", "check", "metric", "old", "new", "diff", "allowed", "verdict"],
                    disable_numparse=True) + "\n" + summary


@dataclass
class CheckOutcome:
    """What ``check`` found: rows of recorded methods, reports of candidates, notes, and the board it added to."""

    rows: list[dict] = field(default_factory=list)
    candidates: list[dict] = field(default_factory=list)
    required: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    added: list[Path] = field(default_factory=list)  # the files --add wrote

    @property
    def ok(self) -> bool:
        """No recorded metric regressed and every candidate passes the required criteria."""
        return (all(r["verdict"] in GOOD for r in self.rows)
                and all(candidate.passes(c, self.required) for c in self.candidates))


def _split(board: dict, registry: Registry, names: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """(recorded, candidates, notes): a name on the board from another provider is a different method."""
    recorded, candidates, notes = [], [], []
    for name in names:
        entry = board["methods"].get(name)
        installed = registry.methods[name].distribution
        if entry is None:
            candidates.append(name)
        elif entry.get("distribution") not in (None, installed):
            notes.append(f"note: '{name}' on the board comes from {entry.get('distribution')}, the installed one from "
                         f"{installed}: judged as a new method, not compared with the recorded row")
            candidates.append(name)
        else:
            recorded.append(name)
    return recorded, candidates, notes


def _add_target(add: str | Path, against: str | Path, board: dict, candidates: Sequence[str],
                clashes: Sequence[str]) -> Path:
    """The ``--add`` folder, refused when it would overwrite ``--against``, hold two rows of one name, or replace
    a board that is not this board plus candidates (``publish.board_conflict``)."""
    from .publish import board_conflict

    target = Path(add)
    if (target / "leaderboard.json").resolve() == Path(against).resolve():
        raise UserError(f"--add {add} would overwrite {against} in place; name another folder for the new board")
    if clashes:
        raise UserError(f"--add: '{clashes[0]}' is on the board from another provider; rename the method to add it")
    conflict = board_conflict(target, [*board["methods"], *candidates], list(board.get("checks", {})), board["config"])
    if conflict:
        raise UserError(f"--add: {conflict}; name another folder for the new board")
    return target


class RerunData:
    """The per-image data of the methods ``check`` reran, from the rerun's shards (board_values.image_data)."""

    def __init__(self, report, registry: Registry, board: dict):
        self.shards = ShardStore(report.store.root, report.store.config)
        self.registry, self.board = registry, board

    def data(self, name: str, check: str) -> dict | None:
        """``{metric: per-image data}`` of ``name`` on ``check``, or None (not a per-image check, or not ok)."""
        check_object, params = self.registry.checks[check].obj, self.board["checks"][check]
        if not check_object.per_image:
            return None
        values = stored_values(self.shards, name, check, int(params["images"]), params, self.registry.provenance(name))
        return None if values is None else image_data(check_object, values, params)

    def all_data(self, name: str) -> dict:
        """``{check: {metric: data}}`` of ``name`` on every per-image check of the board."""
        found = {check: self.data(name, check) for check in self.board["checks"]}
        return {check: data for check, data in found.items() if data}

    def pairing(self, name: str, recorded: dict):
        """``pair(other, check, metric)``: the paired difference ``name`` - ``other`` (None where not pairable)."""
        def pair(other: str, check: str, metric: str) -> dict | None:
            mine, theirs = self.data(name, check), recorded.get(other, {}).get(check)
            statistic = self.registry.checks[check].obj.statistics.get(metric)
            if not mine or not theirs or statistic is None or metric not in mine or metric not in theirs:
                return None
            return paired_difference(statistic, mine[metric], theirs[metric],
                                     **bootstrap_params(self.board["checks"][check]))

        return pair


def write_added_board(board: dict, entries: dict[str, dict], folder: Path, registry: Registry, suite, names,
                      checks: Sequence, recorded_data: dict | None = None, added_data: dict | None = None) -> list[Path]:
    """``board`` with the candidates' rows added, as leaderboard.json/.md (and the per-image values beside, when the
    board has them) and figures in ``folder``; the board's files replaced all or none."""
    from .figures import draw_method_grid
    from ..store.files import json_text, write_all
    from .leaderboard import check_board_folder, render_markdown

    check_board_folder(folder)
    merged = copy.deepcopy(board)
    merged["methods"].update(copy.deepcopy(entries))
    merged["methods"] = dict(sorted(merged["methods"].items()))
    merged["thresholds"] = judge(merged["methods"], checks)
    folder.mkdir(parents=True, exist_ok=True)
    figures = []
    for check in checks:
        figures += check.draw_figures(merged, folder)
    drawable = [n for n in names if entries[n]["status"] == "ok"]
    if drawable:
        draw_method_grid(suite, registry, drawable, folder / "figures" / "maps_added.png")
        figures.append("figures/maps_added.png")
    files = {folder / "leaderboard.json": json_text(merged),
             folder / "leaderboard.md": render_markdown(merged, checks, figures, registry=registry)}
    values = {**(recorded_data or {}), **{n: d for n, d in (added_data or {}).items() if d}} if recorded_data else {}
    text = sidecar_text(merged, values)  # none: an older board's stays unpaired
    if text is not None:
        files[folder / SIDECAR] = text
    stale = [folder / "leaderboard-speed.json"] + ([] if text is not None else [folder / SIDECAR])
    write_all(files, remove=stale)  # no timings (or values) of another board beside this one
    return [folder / "leaderboard.md", folder / "leaderboard.json", *([folder / SIDECAR] if text is not None else []),
            *(folder / f for f in figures)]


SCRATCH_PREFIX = "saliency-bench-check-"  # <tmp>/saliency-bench-check-<pid>-<random>: a rerun kept nowhere


@contextmanager
def rerun_folder(out: str | None):
    """``out``, or a temporary folder named after this process, deleted afterwards; the ones of processes that
    are gone (killed before they could delete theirs) are removed first."""
    if out is not None:
        yield out
        return
    scratch = scratch_folder(SCRATCH_PREFIX)
    try:
        yield str(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _board_checks(board: dict, against: str | Path, registry: Registry, require: str | None,
                  vs: Sequence[str] | None) -> tuple[list, list[str]]:
    """The board's check objects (each must be registered here) and the ``--require`` criteria; a ``--vs`` method
    not on the board is a UserError."""
    missing = [c for c in board.get("checks", {}) if c not in registry.checks]
    if missing:
        raise UserError(f"{against} records check '{missing[0]}', which is not registered here (install its plugin)")
    check_objects = ordered_checks(registry.checks[c].obj for c in board.get("checks", {}))
    try:
        required = parse_criteria(require, check_objects)
    except ValueError as exc:
        raise UserError(f"--require: {exc}") from None
    for other in vs or ():
        if other not in board["methods"]:
            raise UserError(f"--vs {other}: not on {against} (recorded: {', '.join(sorted(board['methods']))})")
    return check_objects, required


def check_against_board(
    against: str | Path, methods: Sequence[str], tolerance: float | None = None, vs: Sequence[str] | None = None,
    require: str | None = None, add: str | Path | None = None, device: str = "auto", out: str | None = None,
    data_root: str | None = None, weights: str | None = None, progress: bool = True,
    log: Callable[[str], None] | None = None, registry: Registry | None = None, blocks: Sequence[str] | None = None,
) -> CheckOutcome:
    """Rerun ``methods`` with the board's model, dataset, images, seed and check parameters; compare or judge."""
    from ..store.files import check_folder

    for folder, option in ((out, "--out"), (add, "--add")):
        if folder is not None:
            check_folder(folder, option)
    board = read_board(against)
    registry = registry or get_plugin_manager().registry()
    names = registry.select_methods(methods)
    check_objects, required = _board_checks(board, against, registry, require, vs)
    recorded, candidates, notes = _split(board, registry, names)
    target = None
    if add is not None:
        target = _add_target(add, against, board, candidates, [n for n in candidates if n in board["methods"]])
    checks = list(board.get("checks", {}))
    if not checks:
        raise UserError(f"{against} records no check results to compare with")
    recorded_data = read_sidecar(board, against)  # the board's per-image values (None: an older board)
    if not blocks:  # the user's --blocks wins; else the board's own, where it was run with --blocks
        blocks = recorded_blocks(board, registry, weights)
        if blocks:
            notes = notes + [f"note: blocks {','.join(blocks)} as recorded on {against} (its run's --blocks)"]
    with rerun_folder(out) as folder:
        report = rerun_under_board(board, names, checks, registry, out=folder, fresh=out is None,
                                   device=device, data_root=data_root, weights=weights, progress=progress, log=log,
                                   blocks=blocks)
        try:
            outcome = CheckOutcome(required=required,
                                   notes=notes + recorded_params_note(against, board, report.store, names))
            rerun = RerunData(report, registry, board)
            outcome.rows = recorded_rows(board, recorded, checks, report.store, rerun, recorded_data, tolerance)
            if recorded_data is None:
                outcome.notes.append(f"note: no {SIDECAR} beside {against}: differences are unpaired, from the "
                                     "recorded intervals")
            if candidates:
                from .leaderboard import build_board

                entries = build_board(report.store, registry, candidates, checks)["methods"]
                outcome.candidates = [
                    candidate.evaluate(board, name, entries[name], check_objects, vs,
                                       pair=rerun.pairing(name, recorded_data) if recorded_data else None)
                    for name in candidates]
                if target is not None:
                    added = {name: rerun.all_data(name) for name in candidates}
                    outcome.added = write_added_board(board, entries, target, registry, report.suite, candidates,
                                                      check_objects, recorded_data, added)
            return outcome
        finally:
            report.store.close()


def recorded_rows(board: dict, recorded: Sequence[str], checks: Sequence[str], store, rerun: RerunData,
                  recorded_data: dict | None, tolerance: float | None) -> list[dict]:
    """The comparison rows of every method recorded on the board: paired with its recorded per-image values where
    both runs have them, else against the recorded interval."""
    rows = []
    for name in recorded:
        for check in checks:
            old = board["methods"][name]["results"].get(check)
            if old is None:
                continue
            check_object = rerun.registry.checks[check].obj
            new = store.get(name, check)
            old_data = (recorded_data or {}).get(name, {}).get(check)
            new_data = rerun.data(name, check) if old_data else None
            if old_data and new_data:
                rows += _paired_rows(name, check_object, old, new, new_data, old_data, board["checks"][check],
                                     tolerance)
            else:
                rows += _metric_rows(name, check, old, new, tolerance, check_object.better)
    return rows


def recorded_blocks(board: dict, registry: Registry, weights: str | None = None) -> list[str] | None:
    """The board's block module names (``config.model.blocks``, B1 first) where they differ from the model's own
    rule, i.e. the board was run with ``--blocks``: the rerun's ``--blocks``. None where the board records the
    rule's blocks (the rerun passes no ``--blocks``, as before) or none at all.

    The model's rule is read off the model itself, loaded here on the CPU with the rerun's ``weights``.
    """
    from ..run.session import lookup

    model_config = board["config"]["model"]
    recorded = model_config.get("blocks")
    if not isinstance(recorded, dict) or not recorded or not all(isinstance(n, str) for n in recorded.values()):
        return None  # nothing usable recorded: the rerun's own configuration check reports any difference
    spec = lookup(registry.models, "model", model_config["name"])
    model = spec.load(weights=weights, allow_download=False)
    try:
        rule = model.block_names
    except UserError:  # no block rule for this network: its board was necessarily run with --blocks
        rule = None
    del model
    return None if rule == recorded else list(recorded.values())


def rerun_under_board(board: dict, names: Sequence[str], checks: Sequence[str], registry: Registry, *, out: str,
                      fresh: bool, device: str, data_root: str | None, weights: str | None, progress: bool,
                      log: Callable[[str], None] | None, blocks: Sequence[str] | None = None):
    """Run ``names`` x ``checks`` with the board's model, dataset, images, seed, batch size, precision and check
    parameters; a configuration this machine cannot reproduce is a UserError."""
    config = board["config"]
    precision = config["model"].get("precision", {})
    options = RunOptions(
        methods=list(names), checks=list(checks), model=config["model"]["name"], dataset=config["dataset"]["name"],
        split=config["dataset"].get("split"), data_seed=config["dataset"].get("seed"), device=device,
        limit=config["images"], seed=config["seed"], batch_size=config["batch_size"], out=out, fresh=fresh,
        data_root=data_root, weights=weights, check_params={c: p for c, p in board["checks"].items()},
        blocks=list(blocks) if blocks else None,
        progress=progress, precision=precision.get("mode", "fp32"),
        channels_last=bool(precision.get("channels_last", False)),
    )
    report = run_benchmark(options, registry=registry, log=log, command="check")
    here = report.store.config
    for key in ("model", "dataset", "images", "seed", "batch_size", "weights_sha256"):
        if key == "weights_sha256" and config.get(key) is None and weights is None:
            continue  # boards written before the digest of a model's own weights was recorded: the same default
        if here.get(key) != config.get(key):
            report.store.close()
            raise UserError(f"configuration not reproducible here: recorded {key} {config.get(key)} != {here.get(key)}")
    return report


def format_outcome(outcome: CheckOutcome, against: str | Path) -> str:
    """Everything ``check`` prints on stdout: the comparison table, then each candidate's report."""
    parts = [format_comparison(outcome.rows)] if outcome.rows else []
    parts += [candidate.format_candidate(report, outcome.required, str(against)) for report in outcome.candidates]
    if outcome.added:
        parts.append("board with the new row(s): " + ", ".join(str(path) for path in outcome.added))
    return "\n\n".join(parts)


def check_command(args, log) -> int:
    """``saliency-bench check``: rerun methods under a board's configuration, print the outcome; exit 1 on a
    regression or a new method that fails ``--require``."""
    from ..plugins import load_registry

    registry = load_registry(log)
    outcome = check_against_board(
        args.against, args.methods, tolerance=args.tolerance, vs=args.vs, require=args.require, add=args.add,
        device=args.device, out=args.out, data_root=args.data_root, weights=args.weights, blocks=args.blocks,
        progress=not args.no_progress, log=log, registry=registry)
    for note in outcome.notes:
        log(note)
    print(format_outcome(outcome, args.against))
    if args.site:
        from .site.command import boards_written, site_after

        log(site_after(boards_written(outcome.added), registry, log))
    return 0 if outcome.ok else 1
