"""``saliency-bench check``: rerun methods under a leaderboard's recorded configuration and compare."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from tabulate import tabulate

from .errors import UserError
from .plugins import get_plugin_manager
from .runner import RunOptions, run_benchmark


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
        board = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(board, dict) or "config" not in board or "methods" not in board:
        raise UserError(f"{path}: not a saliency-bench leaderboard.json")
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


def _metric_rows(method: str, check: str, old: dict, new: dict | None, tolerance: float | None) -> list[dict]:
    """One row per recorded metric: old, new, difference, allowed band and verdict."""
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
            row.update(diff=None, allowed="both undefined", verdict="ok" if same else "regression")
        else:
            diff = new_value - old_value
            if tolerance is not None:
                ok, allowed = abs(diff) <= tolerance, f"±{tolerance:g}"
            elif recorded.get("ci_low") is not None and recorded.get("ci_high") is not None:
                low, high = recorded["ci_low"] - MACHINE_TOLERANCE, recorded["ci_high"] + MACHINE_TOLERANCE
                ok = low <= new_value <= high
                allowed = f"[{low:.4f}, {high:.4f}]"
            else:
                ok, allowed = abs(diff) <= MACHINE_TOLERANCE, f"±{MACHINE_TOLERANCE:g}"
            row.update(diff=diff, allowed=allowed, verdict="ok" if ok else "regression")
        rows.append(row)
    return rows


def run_regression_check(
    against: str | Path, methods: Sequence[str], tolerance: float | None = None, device: str = "auto",
    out: str | None = None, data_root: str | None = None, weights: str | None = None, progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[dict]:
    """Rerun ``methods`` with the board's model, dataset, image count, seed and check parameters."""
    board = read_board(against)
    registry = get_plugin_manager().registry()
    names = registry.select_methods(methods)
    missing = [n for n in names if n not in board["methods"]]
    if missing:
        raise UserError(f"method '{missing[0]}' is not on the leaderboard {against}")
    config = board["config"]
    checks = list(board.get("checks", {}))
    if not checks:
        raise UserError(f"{against} records no check results to compare with")
    options = RunOptions(
        methods=names, checks=checks, model=config["model"]["name"], dataset=config["dataset"]["name"],
        split=config["dataset"].get("split"), data_seed=config["dataset"].get("seed"), device=device, limit=config["images"], seed=config["seed"],
        batch_size=config["batch_size"],
        out=out or tempfile.mkdtemp(prefix="saliency-bench-check-"), fresh=out is None, data_root=data_root,
        weights=weights, check_params={c: p for c, p in board["checks"].items()}, progress=progress,
    )
    report = run_benchmark(options, registry=registry, log=log)
    here = report.store.config
    for key in ("model", "dataset", "images", "seed", "batch_size", "weights_sha256"):
        if key == "weights_sha256" and config.get(key) is None and weights is None:
            continue  # boards written before the digest of a model's own weights was recorded: the same default
        if here.get(key) != config.get(key):
            raise UserError(f"configuration not reproducible here: recorded {key} {config.get(key)} != {here.get(key)}")
    rows = []
    for name in names:
        for check in checks:
            old = board["methods"][name]["results"].get(check)
            if old is None or old.get("status") != "ok":
                continue
            rows += _metric_rows(name, check, old, report.store.get(name, check), tolerance)
    return rows


def format_comparison(rows: list[dict]) -> str:
    """The table ``saliency-bench check`` prints."""
    def num(value):
        return "–" if value is None else f"{value:.4f}"

    table = [[r["method"], r["check"], r["metric"], num(r["old"]), num(r["new"]),
              "–" if r["diff"] is None else f"{r['diff']:+.4f}", r["allowed"], r["verdict"]] for r in rows]
    bad = sum(r["verdict"] != "ok" for r in rows)
    summary = f"{len(rows) - bad} of {len(rows)} metrics hold" + (f"; {bad} regression(s)" if bad else "")
    return tabulate(table, headers=["method", "check", "metric", "old", "new", "diff", "allowed", "verdict"],
                    disable_numparse=True) + "\n" + summary
