"""Step 5 of a run, *publish*: the board files, and the policy of which boards a run may write (docs/design.md).

A run writes its board into its results folder (``--out``), into ``--board-dir`` when given, and, when it is a
default run of an embedded model (``saliency-bench run --all [--model NAME]`` with every other option at its
default), into that model's board folder (``.`` for tiny_vgg, ``boards/NAME`` for the others) and its section of
the top-level ``leaderboard.md``. A board folder that holds a board of another configuration, of other checks or
with rows this run lacks is never overwritten: refused before any work where it can be known then, and after the
run where only the run's configuration tells (the results stay stored).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from ..errors import UserError
from ..store.files import Unusable, check_folder, first_difference, parse_json, read_regular
from . import index as board_index
from .leaderboard import build_board, check_board_folder, write_leaderboard

BOARD_BYTES = 1 << 28  # a leaderboard.json larger than this (256 MiB) is not one a run wrote

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import Registry
    from ..run.options import RunOptions
    from ..run.record import RunReport
    from ..run.resolve import Resolved


@dataclass
class Targets:
    """Where a run's board goes besides its results folder, decided before any work."""

    folders: list[Path] = field(default_factory=list)  # --board-dir, or the default run's board folder
    index: str | None = None  # the default run: its model, whose section of ./leaderboard.md it replaces
    index_before: str = ""  # that file's text before the run wrote anything (the other sections are kept from it)


def embedded_models() -> list[str]:
    """The embedded models, in the board's order (tiny_vgg, the default, first)."""
    from ..models.default_plugin import EMBEDDED

    return list(EMBEDDED)


def is_default_run(options: "RunOptions") -> bool:
    """``run --all [--model EMBEDDED]`` with every other option at its default writes that model's board section."""
    from ..run.options import DEFAULT_BATCH_SIZE, RunOptions

    defaults = RunOptions()
    changed = [options.dataset, options.limit, options.check_params, options.out, options.checks, options.data_root,
               options.weights, options.blocks, options.split, options.data_seed is not None]
    return (options.methods is None and (options.model is None or options.model in embedded_models())
            and not any(changed) and options.seed == defaults.seed and options.batch_size == DEFAULT_BATCH_SIZE
            and options.speed and options.precision == defaults.precision and options.channels_last is None)


def default_board_folder(model: str | None) -> Path:
    """Where a default run writes its board: '.' for the default model, boards/NAME for another embedded one."""
    from ..run.options import DEFAULT_MODEL

    return board_index.board_folder(model or DEFAULT_MODEL, DEFAULT_MODEL)


def board_targets(resolved: "Resolved", registry: "Registry") -> Targets:
    """The board folders this run will write besides ``--out``; a folder it may not write is refused now."""
    from ..run.options import DEFAULT_MODEL

    options = resolved.options
    targets = Targets()
    if not (options.board_dir or is_default_run(options)):
        return targets
    folder = Path(options.board_dir) if options.board_dir else default_board_folder(options.model)
    if options.board_dir:
        check_folder(options.board_dir, "--board-dir")
    check_board_folder(folder)
    conflict = board_conflict(folder, resolved.methods, resolved.checks)
    if conflict:
        option = "--board-dir" if options.board_dir else f"the default run's board folder '{folder.as_posix()}'"
        raise UserError(f"{option}: {conflict}; choose another --board-dir (nothing was run or overwritten)")
    targets.folders.append(folder)
    if is_default_run(options):
        targets.index = options.model or DEFAULT_MODEL
    return targets


def read_index(targets: Targets) -> None:
    """Keep the top-level leaderboard.md as it is before the run writes anything (its other sections are kept from
    it); read once the run holds the top-level folder's lock, so no other run's section is lost."""
    index = Path("leaderboard.md")
    if targets.index is not None:
        targets.index_before = index.read_text() if index.is_file() else ""


def board_conflict(folder: str | Path, methods: Sequence[str], checks: Sequence[str],
                   config: dict | None = None) -> str | None:
    """Why writing a board of ``methods`` x ``checks`` (under ``config``) into ``folder`` would destroy another.

    Allowed: no board there, or one of the same configuration (package versions aside) whose rows are all among
    ``methods`` and whose checks are all among ``checks`` (a rerun, or the same board with rows or checks added).
    ``config=None`` skips that part.
    """
    path = Path(folder) / "leaderboard.json"
    if not path.exists() and not path.is_symlink():
        return None
    try:
        raw = read_regular(path, BOARD_BYTES)  # no link followed, no FIFO waited on
        existing = parse_json(raw) if raw is not None else None
    except (Unusable, ValueError) as exc:
        return f"{path} exists and is not a readable leaderboard.json ({exc})"
    if not isinstance(existing, dict) or not isinstance(existing.get("methods"), dict):
        return f"{path} exists and is not a saliency-bench leaderboard.json"
    lost = sorted(set(existing["methods"]) - set(methods))
    if lost:
        shown = ", ".join(lost[:3]) + (", ..." if len(lost) > 3 else "")
        return f"{path} holds {len(lost)} row(s) this run does not compute ({shown})"
    dropped = sorted(set(existing.get("checks") or {}) - set(checks))
    if dropped:
        return f"{path} holds check(s) this run does not compute ({', '.join(dropped)})"
    if config is not None and isinstance(existing.get("config"), dict):
        old = {k: v for k, v in existing["config"].items() if k != "versions"}
        new = {k: v for k, v in config.items() if k != "versions"}
        if old != new:
            return f"{path} is a board of another configuration ({first_difference(old, new)})"
    return None


def publish(report: "RunReport", registry: "Registry", targets: Targets, log: Callable[[str], None]) -> None:
    """Write the run's board into ``--out`` (unless an earlier, larger run's board is there) and every target."""
    config = report.store.config
    for folder in targets.folders:  # the configuration is known now: refuse a board of another one before writing
        conflict = board_conflict(folder, report.methods, report.checks, config)
        if conflict:
            raise UserError(f"board not written: {conflict}; the results are kept in {report.store.root}: rerun with "
                            "another --board-dir to write it")
    out = Path(report.store.root)
    out_conflict = board_conflict(out, report.methods, report.checks, config)
    if out_conflict:  # the results are stored; only the folder's board view of an earlier, larger run is kept
        log(f"note: board in {out} not rewritten: {out_conflict}; pass --board-dir DIR for this run's board")
    folders = ([] if out_conflict else [out]) + [f for f in targets.folders if f.resolve() != out.resolve()]
    for folder in folders:  # every folder checked before any is written
        check_board_folder(folder)
    for folder in folders:
        report.board = write_leaderboard(report.store, registry, folder, methods=report.methods,
                                         checks=report.checks, suite=report.suite, speed=report.options.speed,
                                         written=report.written, run_timing=run_timing(report))
    if targets.index is not None:
        update_index(targets, registry, report.written)
    if report.board is None:  # no folder took a board: the summary is still computed from the stored results
        report.board = build_board(report.store, registry, report.methods, report.checks)


def run_timing(report: "RunReport") -> dict | None:
    """The run's own time against its floor, for leaderboard-speed.json (issue 27: every run states its floor)."""
    from ..run.speed import describe_device

    if report.floor_seconds is None:
        return None
    return {"wall_s": round(report.wall_seconds, 3), "floor_s": round(report.floor_seconds, 3),
            "passes": report.passes, "floor_ms_per_image": round(report.floor_ms_per_image, 4),
            "method_s": round(report.method_seconds, 3),
            "scoring_s": round(max(0.0, report.task_seconds - report.method_seconds), 3),
            "device": describe_device(report.suite.device), "resumed": bool(report.reused)}


def update_index(targets: Targets, registry: "Registry", written: list[Path]) -> None:
    """Splice the default run's fresh board into the top-level leaderboard.md as its model's section."""
    name, folder = targets.index, default_board_folder(targets.index)
    sections = board_index.read_sections(targets.index_before)
    spec = registry.models.get(name)
    standalone = (folder / "leaderboard.md").read_text()
    sections[name] = board_index.as_section(standalone, name, spec.obj.description if spec else "", folder)
    index = board_index.write_index(Path("."), sections, embedded_models())
    if index not in written:
        written.append(index)
