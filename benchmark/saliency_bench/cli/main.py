"""The command line: parses, calls the library, prints. Every user error is one line on stderr, exit 2."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ..harness.allocator import keep_freed_memory
from ..errors import UserError

EXIT_OK, EXIT_FAILED, EXIT_USER = 0, 1, 2


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line and exit 2 (no usage dump)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        command = self.prog.removeprefix("saliency-bench").strip()  # main() prefixes "saliency-bench: error:"
        raise UserError(f"{command}: {message}" if command else message)


def _int_at_least(minimum: int, what: str):
    """An argparse type: an integer >= ``minimum``, else a one-line usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got '{text}'")
        return value

    return parse


_positive_int = _int_at_least(1, "positive")


def _finite_float(minimum: float, inclusive: bool, what: str):
    """An argparse type: a finite number above ``minimum`` (or equal, if ``inclusive``), else a one-line error."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        above = value >= minimum if inclusive else value > minimum
        if not (above and value != float("inf")):
            raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'")
        return value

    return parse


_positive_float = _finite_float(0.0, False, "a positive number of seconds")
_non_negative_float = _finite_float(0.0, True, "a finite number >= 0")
_non_negative_int = _int_at_least(0, "non-negative")


def _check_param(text: str) -> tuple[str, str, str]:
    check, dot, rest = text.partition(".")
    key, eq, value = rest.partition("=")
    if not (dot and eq and check and key):
        raise argparse.ArgumentTypeError(f"expected CHECK.KEY=VALUE, got '{text}'")
    return check, key, value


def _block_names(text: str) -> list[str]:
    """``--blocks a,b,c`` -> ``["a", "b", "c"]``; an empty list is a one-line usage error."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("--blocks needs module names, e.g. layer1,layer2,layer3,layer4")
    return names


def summarised_names(names) -> list[str]:
    """Names for a help text: plain names as they are, prefixed families (``torchvision:*``, ``timm:*``) as one
    entry with their count (`saliency-bench list` shows every one)."""
    plain, families = [], {}
    for name in names:
        prefix, colon, _ = name.partition(":")
        if colon:
            families[prefix] = families.get(prefix, 0) + 1
        else:
            plain.append(name)
    return plain + [f"{prefix}:<name> ({count})" for prefix, count in families.items()]


def _registered(kind: str) -> str:
    """The registered names of ``kind`` for help texts ("?" if plugins cannot be loaded now)."""
    try:
        from ..plugins import get_plugin_manager

        registry = get_plugin_manager().registry()
        if kind == "criteria":
            from ..board.verdicts import criteria

            return ", ".join(criteria([r.obj for r in registry.checks.values()]))
        return ", ".join(summarised_names(getattr(registry, kind))) or "none"
    except Exception:  # noqa: BLE001 - help must print even when a plugin is broken
        return "?"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="saliency-bench", description="Sanity checks for saliency methods (Khakzar et al. 2020).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    sub.add_parser("list", help="registered methods (with their provider), checks, models and datasets",
                   description="List registered methods with their provider, checks, models and datasets.")

    run = sub.add_parser("run", help="run methods through the sanity checks",
                         description="Run methods through the sanity checks; results are stored per (method, check) "
                                     "in --out and reused by the same command (resume).")
    _add_run_options(run)
    run.add_argument("--all", action="store_true", help="every registered method")
    run.add_argument("-m", "--method", dest="methods", nargs="+", action="extend", metavar="NAME",
                     help="method names or globs (gradcam*); see `saliency-bench list`")
    run.add_argument("--fresh", action="store_true",
                     help="delete the results stored in --out and recompute (asks first; --yes off a terminal)")
    run.add_argument("--yes", action="store_true", help="confirm --fresh without asking")
    run.add_argument("--wait", action="store_true",
                     help="if another run is using --out, wait for it to finish instead of refusing")
    run.add_argument("--method-timeout", type=_positive_float, default=None, metavar="SECONDS",
                     help="fail a method that runs longer than this on one image shard of a check (default: no limit); "
                          "a resumed run retries it")
    run.add_argument("--no-speed", action="store_true",
                     help="skip timing each method against the floor (the board's speed columns)")
    run.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="where the (method group, check, image shard) tasks run: here, or on Ray "
                          "(pip install 'saliency-bench[ray]'); the results are the same (default: local)")
    run.add_argument("--ray-address", default=None, metavar="ADDRESS",
                     help="with --executor ray: a running cluster (ray start --head; e.g. 10.0.0.1:6379 or auto); "
                          "default: start a local one on this machine")
    run.add_argument("--shard-size", type=_positive_int, default=None, metavar="N",
                     help="images per shard, the unit of work, storage and resume: a multiple of --batch-size "
                          "(default: 256 rounded up to whole batches); does not change results")
    run.add_argument("--gpus-per-task", type=_non_negative_float, default=None, metavar="G",
                     help="with --executor ray: GPUs each task asks for (default: 1 where the run uses CUDA, else 0)")
    run.add_argument("--board-dir", default=None, metavar="DIR",
                     help="also write leaderboard.md/json and figures here (default: '.' for the default `run --all` "
                          "only); refused if DIR holds a board of another configuration or with rows this run lacks")

    check = sub.add_parser(
        "check", help="check methods against a recorded leaderboard.json (recorded: regression; new: its row)",
        description="Rerun methods under a leaderboard's recorded configuration. A method on the board is compared "
                    "metric by metric (exit 1 if one moved in the bad direction beyond the band); a method not on "
                    "the board gets its row, ranks, verdicts and differences (exit 1 if it fails --require).")
    check.add_argument("methods", nargs="+", metavar="METHOD", help="method names or globs")
    check.add_argument("--against", required=True, metavar="LEADERBOARD_JSON", help="the recorded board")
    check.add_argument("--tolerance", type=_non_negative_float, default=None,
                       help="recorded methods: allowed absolute difference (default: the recorded 95%% interval "
                            "widened by 1e-3)")
    check.add_argument("--vs", nargs="+", action="extend", metavar="NAME", default=None,
                       help="new methods: recorded methods to compare with (default: the 2 nearest and the controls)")
    check.add_argument("--require", default=None, metavar="CRITERIA",
                       help="new methods: comma-separated verdicts that must pass, from the registered checks' "
                            f"rules ({_registered('criteria')}) (default: overall)")
    check.add_argument("--add", default=None, metavar="DIR",
                       help="write a board with the new methods' rows added into DIR (never over --against)")
    check.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    check.add_argument("--out", default=None, help="where to store the rerun (default: a temporary folder)")
    check.add_argument("--data-root", default=None, help="the dataset's folder, for a board of real data")
    check.add_argument("--weights", default=None, help="model weights file, for a board made with --weights")
    check.add_argument("--blocks", type=_block_names, default=None, metavar="NAME[,NAME...]",
                       help="module names as blocks B1..Bn, for a board made with --blocks")
    check.add_argument("--no-progress", action="store_true", help="no progress bars or progress lines")

    compare = sub.add_parser(
        "compare", help="paired differences of two methods recorded on a board (every metric, bootstrap interval)",
        description="The paired difference A - B of every metric of two methods on a board, from its per-image values "
                    "(leaderboard-values.json beside it): both ran on the same images, so the interval resamples "
                    "images jointly; 'excludes 0' says whether the difference is clear.")
    compare.add_argument("first", metavar="A", help="a method on the board")
    compare.add_argument("second", metavar="B", help="another method on the board")
    compare.add_argument("--against", default="leaderboard.json", metavar="LEADERBOARD_JSON",
                         help="the board (default: ./leaderboard.json, the committed one)")
    compare.add_argument("--json", action="store_true", help="machine-readable output")

    train = sub.add_parser("train", help="reproduce an embedded model's shipped weights",
                           description="Train an embedded model on the embedded dataset (reproduces its shipped "
                                       "weights and card).")
    train.add_argument("--model", default="tiny_vgg", help="tiny_vgg | tiny_resnet | tiny_vit (default: tiny_vgg)")
    train.add_argument("--out", default="runs/train", help="folder for MODEL.pt and MODEL.json (default: runs/train)")
    train.add_argument("--seed", type=_non_negative_int, default=0, help="default: 0")
    train.add_argument("--epochs", type=_positive_int, default=None, help="default: the shipped model's")
    train.add_argument("--n-train", type=_positive_int, default=None, help="training images per epoch (default: the shipped model's)")
    train.add_argument("--n-val", type=_positive_int, default=None, help="validation images (default: the shipped model's)")
    train.add_argument("--batch-size", type=_positive_int, default=None, help="default: the shipped model's")
    train.add_argument("--random-labels", action="store_true",
                       help="the data randomisation twin: the same recipe on a fixed training set whose labels are "
                            "permuted (writes MODEL_random_labels.pt and .json)")

    figure = sub.add_parser("figure", help="maps of every method of a family for two classes of one image",
                            description="Draw the maps of every method of a family for two classes of one image.")
    figure.add_argument("--family", choices=("aggregation", "propagation", "baseline", "all"), default="all",
                        help="default: all")
    figure.add_argument("-m", "--method", dest="methods", nargs="+", action="extend", metavar="NAME",
                        help="these methods instead of a family")
    figure.add_argument("--image", type=int, default=None, help="dataset index (default: first with 2+ classes)")
    figure.add_argument("--output", default="figures/maps.png", help="PNG path (default: figures/maps.png)")
    figure.add_argument("--model", default=None, help="default: tiny_vgg")
    figure.add_argument("--dataset", default=None, help="default: the model's")
    figure.add_argument("--data-root", default=None, help="the dataset's folder (real data)")
    figure.add_argument("--weights", default=None, help="model weights file (a state dict)")
    figure.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    bench = sub.add_parser("bench", help="milliseconds per image of each method and its ratio to the floor",
                           description="Time each method per image against the floor (one forward + backward).")
    bench.add_argument("-m", "--method", dest="methods", nargs="+", action="extend", metavar="NAME",
                       help="method names or globs (default: all)")
    bench.add_argument("--model", default=None, help="default: tiny_vgg")
    bench.add_argument("--weights", default=None, help="model weights file (a state dict)")
    bench.add_argument("--blocks", type=_block_names, default=None, metavar="NAME[,NAME...]",
                       help="module names as blocks B1..Bn (default: the architecture's rule)")
    bench.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    bench.add_argument("--batch-size", type=_positive_int, default=64, help="default: 64")
    bench.add_argument("--rounds", type=_positive_int, default=5,
                       help="interleaved timing rounds after one warm-up round; each figure is the median (default: 5)")
    bench.add_argument("--no-peers", action="store_true", help="skip captum / grad-cam / zennit")
    bench.add_argument("--json", action="store_true", help="machine-readable output")
    _add_precision_options(bench)
    return parser


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checks", nargs="+", action="extend", metavar="CHECK",
                        help=f"checks to run (default: all registered: {_registered('checks')})")
    parser.add_argument("--model", default=None, help=f"default: tiny_vgg (registered: {_registered('models')})")
    parser.add_argument("--dataset", default=None, help="default: the model's dataset "
                                                         f"(registered: {_registered('datasets')})")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto: cuda when present)")
    parser.add_argument("--limit", type=_positive_int, default=None,
                        help="number of images (default: the dataset's; shapes: 256)")
    parser.add_argument("--batch-size", type=_positive_int, default=32, help="default: 32")
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="seed of noise and bootstrap (default: 0)")
    parser.add_argument("--out", default=None,
                        help="results folder (default: runs/<model>-<dataset>, plus -n<limit>, -seed<seed>, "
                             "-data<data-seed>, -b<batch-size> where those differ from their defaults)")
    parser.add_argument("--data-root", default=None, help="the dataset's folder (real data)")
    parser.add_argument("--split", default=None, help="dataset split (default: the dataset's)")
    parser.add_argument("--data-seed", type=_non_negative_int, default=None,
                        help="draw another sample of a generated dataset (shapes); default: its seed 0")
    parser.add_argument("--weights", default=None, help="model weights file (a state dict)")
    parser.add_argument("--allow-download", action="store_true", help="let the model download its weights")
    parser.add_argument("--blocks", type=_block_names, default=None, metavar="NAME[,NAME...]",
                        help="module names to use as blocks B1..Bn, input to output (default: the architecture's "
                             "rule: VGG conv blocks, ResNet stem+layer1..4, ViT 5 encoder layers, stages)")
    parser.add_argument("--workers", type=_non_negative_int, default=0, help="DataLoader workers (default: 0)")
    parser.add_argument("--param", type=_check_param, action="append", default=[], metavar="CHECK.KEY=VALUE",
                        help="override a check parameter, e.g. pointing_game.tolerance=10 (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars or progress lines")
    _add_precision_options(parser)


def _add_precision_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", choices=("fp32", "tf32", "bf16"), default="fp32",
                        help="how method calls compute: fp32, tf32 (CUDA matmuls/convolutions), bf16 (autocast); "
                             "other than fp32 it is recorded in the configuration (default: fp32)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="NHWC memory layout for the network and its inputs, or not (--no-channels-last); default: "
                             "channels-last for a convolutional network on the CPU (about 1.4x faster there), the "
                             "standard layout elsewhere; recorded in the configuration when channels-last")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _check_output_folder(path: str | os.PathLike, option: str = "--out") -> None:
    """Refuse, before any work, an output folder that cannot be created or written; creates nothing.

    An existing file, a path under a file, a broken link, a read-only file system and a folder without
    write permission are one-line user errors naming the path and what to choose instead.
    """
    target = Path(path)
    try:
        if target.exists() and not target.is_dir():
            raise UserError(f"{option} {path} is an existing file, not a folder; choose a folder path (it is created)")
        existing = target.absolute()
        while not existing.exists() and not existing.is_symlink() and existing.parent != existing:
            existing = existing.parent  # the nearest existing ancestor: where the folder would be created
        if existing.is_symlink() and not existing.exists():
            raise UserError(f"{option} {path}: {existing} is a broken symbolic link; choose another {option}")
        if not existing.is_dir():
            raise UserError(f"{option} {path} lies under {existing}, which is a file, not a folder; "
                            f"choose another {option}")
    except OSError as exc:  # a folder on the way that may not be searched
        raise UserError(f"{option} {path} cannot be used: {exc.strerror or exc}; choose another {option}") from None
    try:
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows) or no permission to ask: the next test decides
        read_only = False
    if read_only:
        raise UserError(f"{option} {path} is on a read-only file system; choose a writable folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path} is not writable (no write permission on {existing}); "
                        "choose a writable folder")


def _registry():
    """The registry of every loaded plugin; its load errors and name collisions are printed in every command."""
    from ..plugins import get_plugin_manager

    registry = get_plugin_manager().registry()
    for error in registry.load_errors:
        _stderr(f"warning: {error}")
    return registry


def cmd_list(args) -> int:
    from .listing import format_listing

    print(format_listing(_registry()))
    return EXIT_OK


def default_out(args) -> str:
    """``runs/<model>-<dataset>``, suffixed by each setting that changes the results (so runs never collide)."""
    name = f"runs/{args.model or 'tiny_vgg'}-{args.dataset or 'default'}"
    for flag, value, default in (("n", args.limit, None), ("seed", args.seed, 0), ("data", args.data_seed, None),
                                 ("b", args.batch_size, 32)):
        if value != default:
            name += f"-{flag}{value}"
    other = [args.weights, args.split, args.data_root, sorted(args.param)]
    if args.blocks:  # only when given, so that the folders of earlier runs keep their names
        other.append(args.blocks)
    if args.precision != "fp32" or args.channels_last is not None:
        name += f"-{args.precision}" + {True: "-nhwc", False: "-nchw", None: ""}[args.channels_last]
    if any(other):  # weights, split, data root, check parameters: named by a short digest of their values
        import hashlib

        name += "-cfg" + hashlib.sha256(repr(other).encode()).hexdigest()[:8]
    return name


def _run_options(args):
    from ..run.runner import RunOptions

    params: dict[str, dict] = {}
    for check, key, value in args.param:
        params.setdefault(check, {})[key] = value
    if not args.all and not args.methods:
        raise UserError("run: choose methods with -m NAME... or --all")
    out = args.out or default_out(args)
    return RunOptions(
        methods=None if args.all else args.methods, checks=args.checks, model=args.model, dataset=args.dataset,
        device=args.device, limit=args.limit, batch_size=args.batch_size, seed=args.seed, out=out,
        fresh=args.fresh, data_root=args.data_root, split=args.split, data_seed=args.data_seed, weights=args.weights,
        allow_download=args.allow_download, blocks=args.blocks, num_workers=args.workers, check_params=params,
        progress=not args.no_progress, speed=not args.no_speed, method_timeout=args.method_timeout, wait=args.wait,
        precision=args.precision, channels_last=args.channels_last, executor=args.executor,
        ray_address=args.ray_address, shard_size=args.shard_size, gpus_per_task=args.gpus_per_task,
    )


def _embedded_models() -> list[str]:
    """The embedded models, in the board's order (tiny_vgg, the default, first)."""
    from ..models.default_plugin import EMBEDDED

    return list(EMBEDDED)


def _is_default_run(args) -> bool:
    """``run --all [--model EMBEDDED]`` with default parameters writes that model's section of the top-level board."""
    return bool(args.all) and (args.model is None or args.model in _embedded_models()) and not any(
        [args.dataset, args.limit, args.param, args.out, args.checks, args.data_root, args.weights,
         args.blocks, args.split, args.data_seed is not None]
    ) and args.seed == 0 and args.batch_size == 32 and not args.no_speed and args.precision == "fp32" and \
        args.channels_last is None  # the committed board: float32 in the default layout, with speed figures


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


def _selected(args, registry) -> tuple[list[str], list[str]]:
    """The methods and checks a run will compute (for refusing a --board-dir before any work)."""
    methods = registry.select_methods(args.methods or ["*"]) if not args.all else list(registry.methods)
    return methods, list(args.checks or registry.checks)


def _default_board_folder(args) -> Path:
    """Where a default run writes its board: '.' for the default model, boards/NAME for another embedded one."""
    from ..board.index import board_folder
    from ..run.session import DEFAULT_MODEL

    return board_folder(args.model or DEFAULT_MODEL, DEFAULT_MODEL)


def update_board_index(args, registry, before: str, written: list[Path]) -> None:
    """Splice the default run's fresh board into the top-level leaderboard.md as its model's section; ``before``
    is that file's text before the run wrote anything (the other models' sections are kept from it)."""
    from ..board.index import as_section, read_sections, write_index
    from ..run.session import DEFAULT_MODEL

    name, folder, root = args.model or DEFAULT_MODEL, _default_board_folder(args), Path(".")
    sections = read_sections(before)
    spec = registry.models.get(name)
    standalone = (folder / "leaderboard.md").read_text()
    sections[name] = as_section(standalone, name, spec.obj.description if spec else "", folder)
    index = write_index(root, sections, _embedded_models())
    if index not in written:
        written.append(index)


def board_folders(args, registry) -> list[Path]:
    """Where the run writes a board besides --out: --board-dir, or '.' for the default run; refused if unsafe."""
    from ..board.leaderboard import board_conflict

    if not (args.board_dir or _is_default_run(args)):
        return []
    folder = Path(args.board_dir) if args.board_dir else _default_board_folder(args)
    option = "--board-dir" if args.board_dir else f"the default run's board folder '{folder.as_posix()}'"
    if args.board_dir:
        _check_output_folder(args.board_dir, "--board-dir")
    conflict = board_conflict(folder, *_selected(args, registry))
    if conflict:
        raise UserError(f"{option}: {conflict}; choose another --board-dir (nothing was run or overwritten)")
    return [folder]


def digest(board: dict, report) -> list[str]:
    """The end-of-run summary: which methods pass overall, which fail, which failed to run and why."""
    by_verdict: dict[str, list[str]] = {}
    for name, entry in board["methods"].items():
        if entry["status"] == "failed":
            continue
        by_verdict.setdefault(entry.get("verdicts", {}).get("overall", "–"), []).append(name)
    def failing(name: str) -> str:
        verdicts = board["methods"][name].get("verdicts", {})
        return f"{name} ({', '.join(k for k, v in verdicts.items() if v == 'fail' and k != 'overall')})"

    failed = [failing(name) for name in by_verdict.get("fail", [])]
    lines = [f"pass overall ({len(by_verdict.get('pass', []))}): {', '.join(by_verdict.get('pass', [])) or 'none'}",
             f"fail overall ({len(failed)}), with the failing verdicts: {'; '.join(failed) or 'none'}"]
    if by_verdict.get("–"):
        lines.append(f"undecided (n/a or a check not run) ({len(by_verdict['–'])}): {', '.join(by_verdict['–'])}")
    for name, error in sorted(report.failures.items()):
        lines.append(f"FAILED {name}: {error}")
    return lines


def cmd_run(args) -> int:
    from ..board.leaderboard import board_conflict, write_leaderboard
    from ..run.runner import run_benchmark
    from ..store.results import count_results

    options = _run_options(args)
    _check_output_folder(options.out)
    registry = _registry()
    folders = board_folders(args, registry)
    if args.fresh:
        confirm_fresh(options.out, args.yes)
    started = time.perf_counter()
    report = run_benchmark(options, registry=registry, log=_stderr)
    for folder in folders:  # the configuration is known now: refuse a board of another one before writing
        conflict = board_conflict(folder, report.methods, report.checks, report.store.config)
        if conflict:
            raise UserError(f"board not written: {conflict}; the results are kept in {options.out}: rerun with "
                            "another --board-dir to write it")
    written: list[Path] = []
    out_conflict = board_conflict(options.out, report.methods, report.checks, report.store.config)
    if out_conflict:  # the results are stored; only the folder's board view of an earlier, larger run is kept
        _stderr(f"note: board in {options.out} not rewritten: {out_conflict}; pass --board-dir DIR for this run's board")
    board = None
    index = Path("leaderboard.md")
    index_before = index.read_text() if _is_default_run(args) and index.is_file() else ""
    for folder in ([] if out_conflict else [Path(options.out)]) + folders:
        board = write_leaderboard(report.store, registry, folder, methods=report.methods, checks=report.checks,
                                  suite=report.suite, speed=options.speed, written=written)
    if _is_default_run(args):
        update_board_index(args, registry, index_before, written)
    if board is None:  # no folder took a board: the digest is still computed from the stored results
        from ..board.leaderboard import build_board

        board = build_board(report.store, registry, report.methods, report.checks)
    total = time.perf_counter() - started
    per_check = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in report.seconds.items())
    if options.executor == "ray":  # summed over the workers' tasks: may exceed the wall time
        per_check = f"task time summed over Ray workers: {per_check}"
    _stderr(f"done in {total:.1f}s on {report.suite.device} ({per_check}); "
            f"{len(report.computed)} results computed, {len(report.reused)} reused")
    _stderr(f"wrote: {options.out}/results ({count_results(options.out)} result files), "
            + ", ".join(str(path) for path in written))
    for line in digest(board, report):
        _stderr(line)
    if report.failures:
        return EXIT_FAILED
    return EXIT_OK


def cmd_check(args) -> int:
    from ..board.recheck import check_against_board, format_outcome

    if args.out is not None:
        _check_output_folder(args.out)
    if args.add is not None:
        _check_output_folder(args.add, "--add")
    outcome = check_against_board(
        args.against, args.methods, tolerance=args.tolerance, vs=args.vs, require=args.require, add=args.add,
        device=args.device, out=args.out, data_root=args.data_root, weights=args.weights, blocks=args.blocks,
        progress=not args.no_progress, log=_stderr, registry=_registry(),
    )
    for note in outcome.notes:
        _stderr(note)
    print(format_outcome(outcome, args.against))
    return EXIT_OK if outcome.ok else EXIT_FAILED


def cmd_compare(args) -> int:
    import json

    from ..board.compare import compare_recorded, format_pairs

    rows = compare_recorded(args.against, args.first, args.second, _registry())
    print(json.dumps(rows, indent=1) if args.json else format_pairs(rows, args.first, args.second, args.against))
    return EXIT_OK


def cmd_train(args) -> int:
    from ..models.training import train

    options = {"epochs": args.epochs, "n_train": args.n_train, "n_val": args.n_val, "batch_size": args.batch_size}
    card = train(args.out, seed=args.seed, log=_stderr, model=args.model, random_labels=args.random_labels,
                 **{k: v for k, v in options.items() if v})
    _stderr(f"weights: {Path(args.out) / (card['name'] + '.pt')} (sha256 {card['sha256'][:12]}..., "
            f"val mAP {card['val']['map']:.4f}, {card['seconds']:.0f}s); use them with --weights")
    return EXIT_OK


def cmd_figure(args) -> int:
    from ..board.figures import method_grid_figure

    path = method_grid_figure(
        _registry(), args.output, family=args.family, methods=args.methods, image=args.image, model=args.model,
        dataset=args.dataset, data_root=args.data_root, weights=args.weights, device=args.device,
    )
    _stderr(f"figure: {path}")
    return EXIT_OK


def cmd_bench(args) -> int:
    import json

    from ..run.runner import RunOptions, open_model
    from ..run.speed import format_speed, measure

    registry = _registry()
    names = registry.select_methods(args.methods or ["*"])
    model = open_model(RunOptions(model=args.model, weights=args.weights, blocks=args.blocks, device=args.device,
                                  precision=args.precision, channels_last=args.channels_last), registry)
    result = measure(registry, names, model, batch_size=args.batch_size, rounds=args.rounds,
                     peers=not args.no_peers)
    print(json.dumps(result, indent=1) if args.json else format_speed(result))
    return EXIT_OK


COMMANDS = {"list": cmd_list, "run": cmd_run, "check": cmd_check, "compare": cmd_compare, "train": cmd_train, "figure": cmd_figure, "bench": cmd_bench}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``saliency-bench`` console script."""
    try:
        args = build_parser().parse_args(argv)
        keep_freed_memory()
        return COMMANDS[args.command](args)
    except UserError as exc:
        text = _user_error_cause(exc) or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        _stderr(f"saliency-bench: error: {text}")
        return EXIT_USER
    except KeyboardInterrupt:
        _stderr("saliency-bench: interrupted; finished results are kept, rerun the same command to resume")
        return 130
    except Exception as exc:
        if os.environ.get("SALIENCY_BENCH_DEBUG"):
            raise
        cause = _user_error_cause(exc)
        if cause is not None:
            _stderr(f"saliency-bench: error: {cause}")
            return EXIT_USER
        _stderr(f"saliency-bench: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                " (set SALIENCY_BENCH_DEBUG=1 for the traceback)")
        return EXIT_FAILED


def _user_error_cause(exc: BaseException) -> str | None:
    """A UserError raised inside a DataLoader worker arrives re-wrapped; recover its one line."""
    text = str(exc)
    marker = "UserError: "
    if "DataLoader worker" in text and marker in text:
        return text.rsplit(marker, 1)[1].strip().splitlines()[0]
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
