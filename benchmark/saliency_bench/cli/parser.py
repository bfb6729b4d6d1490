"""The command line's grammar: every command, option, type and range (docs/command-line.md); imports no torch."""
from __future__ import annotations

import argparse
import math

from ..errors import UserError
from ..version import __version__

MAX_SEED = 2**32 - 1  # numpy's and torch's seeds: the run seed, the data seed and the training seed
MAX_IMAGES = 10**9
MAX_BATCH = 65_536
MAX_SECONDS = 10**7  # method timeout: about 16 weeks
MAX_PATH = 4096  # bytes of a path (Linux PATH_MAX); a name in it at most 255 (NAME_MAX)
DEVICES = "auto | cpu | cuda | cuda:N"
FAMILIES, PRECISIONS = ("aggregation", "propagation", "control", "all"), ("fp32", "tf32", "bf16")


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line and exit 2 (no usage dump)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        command = self.prog.removeprefix("saliency-bench").strip()  # main() prefixes "saliency-bench: error:"
        raise UserError(f"{command}: {message}" if command else message)


class SubParser(OneLineParser):
    """A command's parser: its help ends by saying where the registered names and every option are described."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, epilog="Registered methods, checks, models and datasets: `saliency-bench list`. "
                                       "Every option with its range: docs/command-line.md.", **kwargs)


def integer(minimum: int, maximum: int):
    """An argparse type: an integer in [minimum, maximum], written in digits, else a one-line usage error."""
    def parse(text: str) -> int:
        digits = text.strip().lstrip("+-")
        value = int(text) if digits.isascii() and digits.isdigit() and len(text) < 40 else None
        if value is None or not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"expected an integer in [{minimum}, {maximum}], got '{text[:40]}'")
        return value
    return parse


def number(minimum: float, maximum: float, above: bool = False):
    """An argparse type: a finite number in [minimum, maximum] (``above``: > minimum), else a one-line error."""
    def parse(text: str) -> float:
        value = float(text) if _is_float(text) else math.nan
        if not (value > minimum if above else value >= minimum) or not value <= maximum:
            low = "(" if above else "["
            raise argparse.ArgumentTypeError(f"expected a number in {low}{minimum:g}, {maximum:g}], got '{text[:40]}'")
        return value
    return parse


def _is_float(text: str) -> bool:
    try:
        return float(text) is not None
    except ValueError:
        return False


def name(text: str) -> str:
    """An argparse type: a non-empty name (a model, dataset, method or split)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a name, got an empty string")
    return text


def path(text: str) -> str:
    """An argparse type: a usable path: not empty, no NUL byte, at most MAX_PATH bytes and 255 bytes per name."""
    encoded = text.encode("utf-8", "surrogateescape")
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    if "\0" in text or len(encoded) > MAX_PATH or any(len(part) > 255 for part in encoded.split(b"/")):
        raise argparse.ArgumentTypeError(f"expected a path of at most {MAX_PATH} bytes (255 per name, no NUL byte), "
                                         f"got one of {len(encoded)} bytes")
    return text


def check_param(text: str) -> tuple[str, str, str]:
    """``CHECK.KEY=VALUE`` as (check, key, value)."""
    check, dot, rest = text.partition(".")
    key, eq, value = rest.partition("=")
    if not (dot and eq and check and key):
        raise argparse.ArgumentTypeError(f"expected CHECK.KEY=VALUE, got '{text[:60]}'")
    return check, key, value


def block_names(text: str) -> list[str]:
    """``--blocks a,b,c`` -> ``["a", "b", "c"]``; an empty list is a one-line usage error."""
    names = [item.strip() for item in text.split(",") if item.strip()]
    if not names:
        raise argparse.ArgumentTypeError("--blocks needs module names, e.g. layer1,layer2,layer3,layer4")
    return names


SEED, IMAGES, BATCH = integer(0, MAX_SEED), integer(1, MAX_IMAGES), integer(1, MAX_BATCH)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command."""
    parser = OneLineParser(prog="saliency-bench", description="Sanity checks for saliency methods (Khakzar et al. "
                           "2020). Every command's options: docs/command-line.md.")
    parser.add_argument("--version", action="version", version=f"saliency-bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=SubParser)
    sub.add_parser("list", help="registered methods (with their provider), checks, models and datasets")
    _run(sub.add_parser("run", help="run methods through the sanity checks (stored results are reused)"))
    _check(sub.add_parser("check", help="rerun methods under a recorded board: compare a recorded one, rank a new one"))
    compare = sub.add_parser("compare", help="paired differences of two methods on a board (bootstrap over images)")
    compare.add_argument("first", metavar="A", type=name, help="a method on the board")
    compare.add_argument("second", metavar="B", type=name, help="another method on the board")
    compare.add_argument("--against", type=path, default="leaderboard.json", metavar="BOARD", help="leaderboard.json")
    compare.add_argument("--json", action="store_true", help="machine-readable output")
    _train(sub.add_parser("train", help="reproduce an embedded model's shipped weights and card"))
    _figure(sub.add_parser("figure", help="maps of every method of a family for two classes of one image"))
    _bench(sub.add_parser("bench", help="milliseconds per image of each method and its ratio to the floor"))
    site = sub.add_parser("site", help="the board as a static web site (works from file://)")
    site.add_argument("--out", type=path, default="site", help="folder of the site (default: site)")
    site.add_argument("--run", type=path, default=None, metavar="DIR", help="also a run folder's board and evidence")
    return parser


def _model_options(parser: argparse.ArgumentParser, weights: bool = True) -> None:
    parser.add_argument("--model", type=name, default=None, help="default: tiny_vgg (see `saliency-bench list`)")
    parser.add_argument("--device", type=name, default="auto", help=f"{DEVICES} (default: auto: cuda when present)")
    if weights:
        parser.add_argument("--weights", type=path, default=None, help="model weights file (a state dict)")


def _data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", type=name, default=None, help="default: the model's")
    parser.add_argument("--data-root", type=path, default=None, help="the dataset's folder (real data)")


def _run(run: argparse.ArgumentParser) -> None:
    run.add_argument("--all", action="store_true", help="every registered method")
    run.add_argument("-m", "--method", dest="methods", nargs="+", action="extend", type=name, metavar="NAME",
                     help="method names or globs (gradcam*)")
    run.add_argument("--checks", nargs="+", action="extend", type=name, metavar="CHECK", help="default: every check")
    _model_options(run)
    _data_options(run)
    run.add_argument("--split", type=name, default=None, help="dataset split (default: the dataset's)")
    run.add_argument("--limit", type=IMAGES, help="number of images (default: the dataset's; shapes: 256)")
    run.add_argument("--batch-size", type=BATCH, default=32, help="default: 32")
    run.add_argument("--seed", type=SEED, default=0, help="seed of noise and bootstrap (default: 0)")
    run.add_argument("--data-seed", type=SEED, default=None, help="another sample of a generated dataset")
    run.add_argument("--out", type=path, default=None, help="results folder (default: runs/<model>-<dataset>[-...])")
    run.add_argument("--board-dir", type=path, default=None, metavar="DIR", help="also write the board here")
    run.add_argument("--site", action="store_true", help="then rebuild site/ as `saliency-bench site` (minutes)")
    run.add_argument("--fresh", action="store_true", help="delete the results stored in --out first (asks; --yes)")
    run.add_argument("--yes", action="store_true", help="confirm --fresh without asking")
    run.add_argument("--wait", action="store_true", help="wait for another run using --out instead of refusing")
    run.add_argument("--allow-download", action="store_true", help="let the model download its weights")
    run.add_argument("--blocks", type=block_names, metavar="NAME[,NAME...]", help="modules read as blocks B1..Bn")
    run.add_argument("--workers", type=integer(0, 256), default=0, help="DataLoader workers (default: 0)")
    run.add_argument("--param", type=check_param, action="append", default=[], metavar="CHECK.KEY=VALUE",
                     help="set a check parameter (repeatable); each check's parameters: docs/command-line.md")
    run.add_argument("--method-timeout", type=number(0, MAX_SECONDS, True), metavar="S", help="per method and shard")
    run.add_argument("--no-speed", action="store_true", help="skip timing each method against the floor")
    run.add_argument("--no-progress", action="store_true", help="no progress bars or progress lines")
    run.add_argument("--executor", choices=("local", "ray"), default="local", help="here, or on Ray (default: local)")
    run.add_argument("--ray-address", type=name, default=None, metavar="ADDRESS", help="a running Ray cluster")
    run.add_argument("--shard-size", type=IMAGES, metavar="N", help="images per shard, a multiple of --batch-size")
    run.add_argument("--gpus-per-task", type=number(0, 64), metavar="G", help="with --executor ray: GPUs per task")
    _precision_options(run)


def _check(check: argparse.ArgumentParser) -> None:
    check.add_argument("methods", nargs="+", type=name, metavar="METHOD", help="method names or globs")
    check.add_argument("--against", type=path, required=True, metavar="LEADERBOARD_JSON", help="the recorded board")
    check.add_argument("--tolerance", type=number(0, 1e6), help="allowed difference (default: the recorded interval)")
    check.add_argument("--vs", nargs="+", action="extend", type=name, metavar="NAME", help="recorded ones to compare")
    check.add_argument("--require", type=name, metavar="CRITERIA", help="verdicts a new method must pass")
    check.add_argument("--add", type=path, default=None, metavar="DIR", help="write the board with the new rows here")
    check.add_argument("--site", action="store_true", help="with --add: then rebuild site/ with that board too")
    check.add_argument("--out", type=path, default=None, help="keep the rerun here (default: a temporary folder)")
    check.add_argument("--device", type=name, default="auto", help=f"{DEVICES} (default: auto)")
    check.add_argument("--data-root", type=path, default=None, help="the dataset's folder, for a board of real data")
    check.add_argument("--weights", type=path, default=None, help="model weights, for a board made with --weights")
    check.add_argument("--blocks", type=block_names, metavar="NAME[,NAME...]", help="for a board made with --blocks")
    check.add_argument("--no-progress", action="store_true", help="no progress bars or progress lines")


def _train(train: argparse.ArgumentParser) -> None:
    train.add_argument("--model", type=name, default="tiny_vgg", help="tiny_vgg | tiny_resnet | tiny_vit")
    train.add_argument("--out", type=path, default="runs/train", help="folder for MODEL.pt and MODEL.json")
    train.add_argument("--seed", type=SEED, default=0, help="default: 0")
    train.add_argument("--epochs", type=integer(0, 10_000), default=None, help="default: the shipped model's")
    train.add_argument("--n-train", type=IMAGES, default=None, help="training images per epoch (default: the card's)")
    train.add_argument("--n-val", type=IMAGES, default=None, help="validation images (default: the card's)")
    train.add_argument("--batch-size", type=BATCH, default=None, help="default: the shipped model's")
    train.add_argument("--random-labels", action="store_true", help="the data randomisation twin (permuted labels)")


def _figure(figure: argparse.ArgumentParser) -> None:
    figure.add_argument("--family", choices=FAMILIES, default="all", help="the methods of a family (default: all)")
    figure.add_argument("-m", "--method", dest="methods", nargs="+", action="extend", type=name, help="or these")
    figure.add_argument("--image", type=integer(0, MAX_IMAGES), default=None, help="dataset index")
    figure.add_argument("--output", type=path, default="figures/maps.png", help="PNG path")
    _model_options(figure)
    _data_options(figure)


def _bench(bench: argparse.ArgumentParser) -> None:
    bench.add_argument("-m", "--method", dest="methods", nargs="+", action="extend", type=name, help="default: all")
    _model_options(bench)
    bench.add_argument("--blocks", type=block_names, default=None, metavar="NAME[,NAME...]", help="blocks B1..Bn")
    bench.add_argument("--batch-size", type=BATCH, default=64, help="default: 64")
    bench.add_argument("--rounds", type=integer(1, 1000), default=5, help="timing rounds after a warm-up (default: 5)")
    bench.add_argument("--no-peers", action="store_true", help="skip captum / grad-cam / zennit")
    bench.add_argument("--json", action="store_true", help="machine-readable output")
    _precision_options(bench)


def _precision_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="how method calls compute")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="NHWC layout, or not; default: channels-last for a convolutional network on the CPU")
