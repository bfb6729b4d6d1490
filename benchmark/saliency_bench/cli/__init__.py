"""The command line: parses, calls the library, prints. Every user error is one line on stderr, exit 2."""
from __future__ import annotations

import os
import sys

from ..errors import UserError
from .parser import build_parser

EXIT_OK, EXIT_FAILED, EXIT_USER = 0, 1, 2


def stderr(message: str) -> None:
    print(message, file=sys.stderr)


def registry():
    """The registry of every loaded plugin; its load errors and name collisions are printed in every command."""
    from ..plugins import load_registry

    return load_registry(stderr)


def run_options(args):
    """``saliency-bench run``'s arguments as RunOptions; conflicting options are refused here."""
    from ..run.options import RunOptions

    if args.all == bool(args.methods):
        raise UserError("run: choose methods with -m NAME... or --all" if not args.all else
                        "run: --all and -m exclude each other (choose one)")
    if args.executor != "ray" and (args.ray_address is not None or args.gpus_per_task is not None):
        raise UserError(f"run: {'--ray-address' if args.ray_address is not None else '--gpus-per-task'} needs "
                        "--executor ray")
    params: dict[str, dict] = {}
    for check, key, value in args.param:
        params.setdefault(check, {})[key] = value
    return RunOptions(
        methods=None if args.all else args.methods, checks=args.checks, model=args.model, dataset=args.dataset,
        device=args.device, limit=args.limit, batch_size=args.batch_size, seed=args.seed, out=args.out,
        fresh=args.fresh, data_root=args.data_root, split=args.split, data_seed=args.data_seed, weights=args.weights,
        allow_download=args.allow_download, blocks=args.blocks, num_workers=args.workers, check_params=params,
        progress=not args.no_progress, speed=not args.no_speed, method_timeout=args.method_timeout, wait=args.wait,
        precision=args.precision, channels_last=args.channels_last, executor=args.executor,
        ray_address=args.ray_address, shard_size=args.shard_size, gpus_per_task=args.gpus_per_task,
        board=True, board_dir=args.board_dir)


def cmd_list(args) -> int:
    from .listing import format_listing

    print(format_listing(registry()))
    return EXIT_OK


def cmd_run(args) -> int:
    options = run_options(args)  # conflicting options are refused before anything heavy is imported
    from ..run.pipeline import run_benchmark
    from ..run.summary import confirm_fresh, summary_lines

    if args.fresh:
        confirm_fresh(options.run_folder, args.yes)
    report = run_benchmark(options, registry=registry(), log=stderr)
    for line in summary_lines(report):
        stderr(line)
    return EXIT_FAILED if report.failures else EXIT_OK


def cmd_check(args) -> int:
    from ..board.recheck import check_against_board, format_outcome

    outcome = check_against_board(
        args.against, args.methods, tolerance=args.tolerance, vs=args.vs, require=args.require, add=args.add,
        device=args.device, out=args.out, data_root=args.data_root, weights=args.weights, blocks=args.blocks,
        progress=not args.no_progress, log=stderr, registry=registry())
    for note in outcome.notes:
        stderr(note)
    print(format_outcome(outcome, args.against))
    return EXIT_OK if outcome.ok else EXIT_FAILED


def cmd_compare(args) -> int:
    from ..board.compare import compare_recorded, format_pairs

    rows = compare_recorded(args.against, args.first, args.second, registry())
    print(format_pairs(rows, args.first, args.second, args.against, as_json=args.json))
    return EXIT_OK


def cmd_train(args) -> int:
    from ..models.training import train_command

    stderr(train_command(args.out, model=args.model, seed=args.seed, epochs=args.epochs, n_train=args.n_train,
                         n_val=args.n_val, batch_size=args.batch_size, random_labels=args.random_labels, log=stderr))
    return EXIT_OK


def cmd_figure(args) -> int:
    from ..board.figures import method_grid_figure

    path = method_grid_figure(registry(), args.output, family=args.family, methods=args.methods, image=args.image,
                              model=args.model, dataset=args.dataset, data_root=args.data_root, weights=args.weights,
                              device=args.device)
    stderr(f"figure: {path}")
    return EXIT_OK


def cmd_bench(args) -> int:
    from ..run.speed import bench_command

    print(bench_command(registry(), args.methods, model=args.model, weights=args.weights, blocks=args.blocks,
                        device=args.device, batch_size=args.batch_size, rounds=args.rounds, peers=not args.no_peers,
                        precision=args.precision, channels_last=args.channels_last, as_json=args.json))
    return EXIT_OK


def cmd_site(args) -> int:
    from ..board.site.command import site_command

    stderr(site_command(args.out, run=args.run, registry=registry(), log=stderr))
    return EXIT_OK


COMMANDS = {"list": cmd_list, "run": cmd_run, "check": cmd_check, "compare": cmd_compare, "train": cmd_train,
            "figure": cmd_figure, "bench": cmd_bench, "site": cmd_site}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``saliency-bench`` console script."""
    try:
        args = build_parser().parse_args(argv)
        if args.command != "list":
            from ..harness.allocator import keep_freed_memory

            keep_freed_memory()
        return COMMANDS[args.command](args)
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
