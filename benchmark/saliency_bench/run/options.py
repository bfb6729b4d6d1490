"""What a run is asked for: ``RunOptions`` (every option of ``saliency-bench run``), each default set here once."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

DEFAULT_MODEL = "tiny_vgg"
DEFAULT_BATCH_SIZE = 32  # images per batch of a run (fixes the draws of seeded noise: part of the configuration)
SPEED_BATCH_SIZE = 64  # images per timed batch (the board's speed columns and `saliency-bench bench`)
SPEED_ROUNDS = 3  # interleaved timing rounds of a run's speed step
BENCH_ROUNDS = 5  # interleaved timing rounds of `saliency-bench bench`
EXECUTORS = ("local", "ray")


@dataclass
class RunOptions:
    """Everything ``saliency-bench run`` accepts; ``None`` means the model's or dataset's default.

    ``out=None`` is the default folder (``default_out``); ``board`` writes the board files (``board/publish.py``:
    into ``out``, ``board_dir`` and, for the default run, the top-level board).
    """

    methods: list[str] | None = None
    checks: list[str] | None = None
    model: str | None = None
    dataset: str | None = None
    device: str = "auto"
    limit: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    seed: int = 0
    out: str | None = None
    fresh: bool = False
    data_root: str | None = None
    split: str | None = None
    data_seed: int | None = None  # another sample of a generated dataset (recorded in the configuration)
    weights: str | None = None
    allow_download: bool = False
    blocks: list[str] | None = None  # module names to use as B1..Bn (--blocks); None: the architecture's rule
    num_workers: int = 0
    check_params: dict[str, dict] = field(default_factory=dict)
    wait: bool = False  # wait for another run holding --out instead of refusing
    method_timeout: float | None = None  # seconds per method and check shard; over it the method fails as timed out
    progress: bool = True
    speed: bool = False  # also time every method against the floor (stored beside, never in, the results)
    speed_batch_size: int = SPEED_BATCH_SIZE
    speed_rounds: int = SPEED_ROUNDS
    precision: str = "fp32"  # fp32 | tf32 | bf16 (harness/precision.py); other than fp32 it is configuration
    channels_last: bool | None = None  # None: precision.default_channels_last (the model and device decide)
    executor: str = "local"  # local | ray: where the (group, check, shard) tasks run
    ray_address: str | None = None  # a running Ray cluster (None: start a local one)
    shard_size: int | None = None  # images per shard (a multiple of batch_size); None: shards.default_shard_size
    gpus_per_task: float | None = None  # Ray: GPUs a task asks for (None: 1 where the run uses CUDA, else 0)
    board: bool = False  # write the board files when the run is done (the CLI's `run` does)
    board_dir: str | None = None  # also write the board here (--board-dir)

    @property
    def run_folder(self) -> str:
        """``out``, or the default folder of these options."""
        return self.out if self.out is not None else default_out(self)


def refuse_conflicts(args) -> None:
    """Options of a command that exclude each other, refused from the parsed arguments alone (no torch imported)."""
    from ..errors import UserError

    if args.command == "run":
        options_from_arguments(args)
    elif args.command == "check" and args.site and args.add is None:
        raise UserError("--site writes the web board of the board --add writes: add --add DIR (or run "
                        "`saliency-bench site` to rebuild the committed one)")


def options_from_arguments(args) -> RunOptions:
    """``saliency-bench run``'s parsed arguments as RunOptions; conflicting options are refused here."""
    from ..errors import UserError

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


def default_out(options: RunOptions) -> str:
    """``runs/<model>-<dataset>``, suffixed by each setting that changes the results (so runs never collide)."""
    name = f"runs/{options.model or DEFAULT_MODEL}-{options.dataset or 'default'}"
    for flag, value, default in (("n", options.limit, None), ("seed", options.seed, 0), ("data", options.data_seed, None),
                                 ("b", options.batch_size, DEFAULT_BATCH_SIZE)):
        if value != default:
            name += f"-{flag}{value}"
    params = sorted((check, key, value) for check, values in options.check_params.items() for key, value in values.items())
    other: list = [options.weights, options.split, options.data_root, params]
    if options.blocks:  # only when given, so that the folders of earlier runs keep their names
        other.append(options.blocks)
    if options.precision != "fp32" or options.channels_last is not None:
        name += f"-{options.precision}" + {True: "-nhwc", False: "-nchw", None: ""}[options.channels_last]
    if any(other):  # weights, split, data root, check parameters: named by a short digest of their values
        name += "-cfg" + hashlib.sha256(repr(other).encode()).hexdigest()[:8]
    return name
