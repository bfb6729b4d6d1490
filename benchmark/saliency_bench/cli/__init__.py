"""The command line: parses, calls the library, prints. Every user error is one line on stderr, exit 2."""
from __future__ import annotations

import importlib
import os
import sys

from ..errors import UserError
from .parser import build_parser

EXIT_OK, EXIT_FAILED, EXIT_USER = 0, 1, 2
# command -> (module, function): each takes the parsed arguments and the log, and returns the exit code. Imported
# only when its command runs, so that --help, --version and usage errors load no torch.
COMMANDS = {
    "list": ("saliency_bench.plugins", "list_command"),
    "run": ("saliency_bench.run.summary", "run_command"),
    "check": ("saliency_bench.board.recheck", "check_command"),
    "compare": ("saliency_bench.board.compare", "compare_command"),
    "train": ("saliency_bench.models.training", "train_command"),
    "figure": ("saliency_bench.board.figures", "figure_command"),
    "bench": ("saliency_bench.run.speed", "bench_command"),
    "site": ("saliency_bench.board.site.command", "command"),
}


def stderr(message: str) -> None:
    """One line on stderr: where every command says what it did."""
    print(message, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``saliency-bench`` console script."""
    try:
        args = build_parser().parse_args(argv)
        from ..run.options import refuse_conflicts

        refuse_conflicts(args)  # conflicting options are refused before anything heavy is imported
        if args.command != "list":
            from ..harness.allocator import keep_freed_memory

            keep_freed_memory()
        module, function = COMMANDS[args.command]
        return getattr(importlib.import_module(module), function)(args, stderr)
    except UserError as exc:
        stderr(f"saliency-bench: error: {worker_error(exc) or one_line(exc)}")
        return EXIT_USER
    except KeyboardInterrupt:
        stderr("saliency-bench: interrupted; finished results are kept, rerun the same command to resume")
        return 130
    except Exception as exc:
        if os.environ.get("SALIENCY_BENCH_DEBUG"):
            raise
        return internal_error(exc)


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name if it has none)."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def worker_error(exc: BaseException) -> str | None:
    """A UserError raised inside a DataLoader worker arrives re-wrapped with the worker's traceback: its own line."""
    text, marker = str(exc), "UserError: "
    if "DataLoader worker" in text and marker in text:
        return text.rsplit(marker, 1)[1].strip().splitlines()[0]
    return None


def internal_error(exc: Exception) -> int:
    """A UserError that a worker wrapped in another type: its one line, exit 2; anything else: exit 1."""
    cause = worker_error(exc)
    if cause is not None:
        stderr(f"saliency-bench: error: {cause}")
        return EXIT_USER
    stderr(f"saliency-bench: internal error: {type(exc).__name__}: {one_line(exc) if str(exc) else ''}"
           " (set SALIENCY_BENCH_DEBUG=1 for the traceback)")
    return EXIT_FAILED
