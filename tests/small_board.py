"""A small real board (tiny_vgg on the embedded data, a few images) for the shard and paired-statistics tests."""
from __future__ import annotations

from pathlib import Path

from saliency_bench.run.options import RunOptions
from saliency_bench.run.pipeline import run_benchmark

SHIPPED = "saliency-bench-aggregation,saliency-bench-propagation"  # the shipped methods, no third party

METHODS = ["gradient", "random"]  # deterministic, and a control drawing seeded noise per image
PARAMS = {"randomization": {"images": 8, "draws": 2}}


def options(out: Path, **overrides) -> RunOptions:
    """24 images in batches of 8 (randomisation: 8 images, 2 draws), every check, no progress, no timing."""
    base = dict(methods=list(METHODS), limit=24, batch_size=8, out=str(out), progress=False,
                check_params={k: dict(v) for k, v in PARAMS.items()})
    return RunOptions(**{**base, **overrides})


def shipped_manager():
    """A fresh plugin manager with the shipped methods (the test session's own loads no plugin distribution)."""
    from saliency_bench.plugins import make_plugin_manager

    return make_plugin_manager(allowlist=SHIPPED.split(","))


def shipped_registry():
    """The registry of the shipped methods."""
    return shipped_manager().registry()


def run(out: Path, log=lambda message: None, **overrides):
    """The small run into ``out`` (store closed); the report."""
    report = run_benchmark(options(out, **overrides), registry=shipped_registry(), log=log)
    report.store.close()
    return report


def run_and_write(out: Path, board: Path | None = None, **overrides):
    """Run, write the board (leaderboard.json and leaderboard-values.json) to ``board`` (default ``out``); the report."""
    from saliency_bench.board.leaderboard import write_leaderboard

    registry = shipped_registry()
    report = run_benchmark(options(out, **overrides), registry=registry, log=lambda message: None)
    write_leaderboard(report.store, registry, board or out, methods=report.methods, checks=report.checks,
                      suite=report.suite)
    report.store.close()
    return report
