"""What ``saliency-bench run`` says around a run: the ``--fresh`` question, and the summary after it."""
from __future__ import annotations

import sys
from typing import Callable

from ..errors import UserError
from .record import RunReport


def run_command(args, log: Callable[[str], None]) -> int:
    """``saliency-bench run``: the run, then its summary; exit 1 when a method failed."""
    from ..plugins import load_registry
    from .options import options_from_arguments
    from .pipeline import run_benchmark

    options = options_from_arguments(args)
    if args.fresh:
        confirm_fresh(options.run_folder, args.yes)
    registry = load_registry(log)
    report = run_benchmark(options, registry=registry, log=log)
    for line in summary_lines(report):
        log(line)
    if args.site:
        from ..board.site.command import boards_written, site_after

        log(site_after(boards_written(report.written), registry, log))
    return 1 if report.failures else 0


def confirm_fresh(out: str, yes: bool) -> None:
    """``--fresh`` deletes stored results: say how many, and ask on a terminal (``--yes`` elsewhere)."""
    from ..store.results import count_results

    count = count_results(out)
    if count == 0 or yes:
        return
    question = f"--fresh deletes the {count} result(s) stored in {out}"
    if not sys.stdin.isatty():
        raise UserError(f"{question}; add --yes to confirm (or choose another --out to keep them)")
    answer = input(f"{question}; delete them? [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise UserError(f"nothing deleted; choose another --out to start a new run beside {out}")


def summary_lines(report: RunReport) -> list[str]:
    """The end of a run: time per check, what was written, which methods pass overall, which fail and why."""
    from ..store.results import count_results

    per_check = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in report.seconds.items())
    if report.options.executor == "ray":  # summed over the workers' tasks: may exceed the wall time
        per_check = f"task time summed over Ray workers: {per_check}"
    out = report.store.root
    lines = [f"done in {report.wall_seconds:.1f}s on {report.suite.device} ({per_check}); "
             f"{len(report.computed)} results computed, {len(report.reused)} reused", *floor_lines(report),
             f"wrote: {out}/results ({count_results(out)} result files)"
             + "".join(f", {path}" for path in report.written)]
    return lines + (verdict_lines(report.board, report.failures) if report.board is not None else [])


def floor_lines(report: RunReport) -> list[str]:
    """Where the run's time went against its floor: the passes it computed x one forward+backward, the methods'
    own time, the checks' scoring (what is left of the tasks' time)."""
    floor = report.floor_seconds
    if floor is None or not report.passes:
        return []
    scoring = max(0.0, report.task_seconds - report.method_seconds)
    return [f"floor: {report.passes} image passes x {report.floor_ms_per_image:.2f} ms = {floor:.1f}s of attribution "
            f"(wall {report.wall_seconds:.1f}s = {report.wall_seconds / floor:.2f}x the floor); methods "
            f"{report.method_seconds:.1f}s, checks' scoring {scoring:.1f}s"]


def verdict_lines(board: dict, failures: dict[str, str]) -> list[str]:
    """Which methods pass overall, which fail (with the failing verdicts), which are undecided, which failed to run."""
    by_verdict: dict[str, list[str]] = {}
    for name, entry in board["methods"].items():
        if entry["status"] != "failed":
            by_verdict.setdefault(entry.get("verdicts", {}).get("overall", "–"), []).append(name)

    def failing(name: str) -> str:
        verdicts = board["methods"][name].get("verdicts", {})
        return f"{name} ({', '.join(k for k, v in verdicts.items() if v == 'fail' and k != 'overall')})"

    failed = [failing(name) for name in by_verdict.get("fail", [])]
    lines = [f"pass overall ({len(by_verdict.get('pass', []))}): {', '.join(by_verdict.get('pass', [])) or 'none'}",
             f"fail overall ({len(failed)}), with the failing verdicts: {'; '.join(failed) or 'none'}"]
    if by_verdict.get("–"):
        lines.append(f"undecided (n/a or a check not run) ({len(by_verdict['–'])}): {', '.join(by_verdict['–'])}")
    return lines + [f"FAILED {name}: {error}" for name, error in sorted(failures.items())]
