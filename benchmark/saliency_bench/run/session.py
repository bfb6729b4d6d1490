"""What a command opens before it runs anything: the options naming a model and dataset, the device, the suite.

Below the runner and the figures (both open suites here); it imports neither.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from ..datasets.base import Dataset
from ..errors import UserError
from ..harness.precision import Precision, default_channels_last
from ..harness.suite import Suite

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import Registry

DEFAULT_MODEL = "tiny_vgg"


@dataclass
class RunOptions:
    """Everything ``saliency-bench run`` accepts; ``None`` means the model's or dataset's default.

    ``open_model`` / ``open_suite`` read the model, dataset and data fields; the runner reads the rest.
    """

    methods: list[str] | None = None
    checks: list[str] | None = None
    model: str | None = None
    dataset: str | None = None
    device: str = "auto"
    limit: int | None = None
    batch_size: int = 32
    seed: int = 0
    out: str = "runs/default"
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
    speed_batch_size: int = 64
    speed_rounds: int = 3
    precision: str = "fp32"  # fp32 | tf32 | bf16 (precision.py); other than fp32 it is part of the configuration
    channels_last: bool | None = None  # None: precision.default_channels_last (the model and device decide)
    executor: str = "local"  # local | ray (ray_executor.py): where the (group, check, shard) tasks run
    ray_address: str | None = None  # a running Ray cluster (None: start a local one)
    shard_size: int | None = None  # images per shard (a multiple of batch_size); None: shards.default_shard_size
    gpus_per_task: float | None = None  # Ray: GPUs a task asks for (None: 1 where the run uses CUDA, else 0)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise UserError(f"unknown device '{name}' (use auto, cpu or cuda)")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device '{name}' requested but no CUDA GPU is available")
    device = torch.device(name)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"device '{name}' does not exist ({torch.cuda.device_count()} CUDA device(s))")
    return device


def lookup(table: dict, kind: str, name: str):
    """The registered object ``name`` of ``table`` (the registry's models, datasets or checks); unknown: user error."""
    if name not in table:
        raise UserError(f"unknown {kind} '{name}' (known: {', '.join(sorted(table)) or 'none'})")
    return table[name].obj


def open_model(options: RunOptions, registry: Registry):
    """Load the model the options name, on the requested device, with the blocks ``--blocks`` names (if any)."""
    device = resolve_device(options.device)
    spec = lookup(registry.models, "model", options.model or DEFAULT_MODEL)
    model = spec.load(weights=options.weights, allow_download=options.allow_download)
    if options.blocks:
        model.set_blocks(options.blocks)
    model.block_names  # noqa: B018 - a network without a block rule fails here, asking for --blocks
    model = model.to(device)
    channels_last = options.channels_last if options.channels_last is not None else default_channels_last(
        model.network, device)
    try:
        precision = Precision(options.precision, channels_last)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return model.set_precision(precision) if not precision.is_default else model


def open_suite(options: RunOptions, registry: Registry) -> Suite:
    """Load the model and dataset the options name and put them on the device."""
    model_spec = lookup(registry.models, "model", options.model or DEFAULT_MODEL)
    dataset_name = options.dataset or model_spec.default_dataset
    if dataset_name is None:
        raise UserError(f"model '{model_spec.name}' has no default dataset; pass --dataset")
    dataset_spec = lookup(registry.datasets, "dataset", dataset_name)
    model = open_model(options, registry)
    seed = {} if options.data_seed is None else {"seed": options.data_seed}
    if seed and "seed" not in dataset_spec.options:
        raise UserError(f"dataset '{dataset_spec.name}' is read from files and takes no --data-seed")
    dataset = dataset_spec.load(model, root=options.data_root, split=options.split, **seed)
    # Dataset.default_limit (the dataset contract); a duck-typed dataset (no Dataset subclass) gets its default
    limit = options.limit if options.limit is not None else getattr(dataset, "default_limit", Dataset.default_limit)
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}")
    return Suite(
        model=model, dataset=dataset, device=model.device, seed=options.seed, batch_size=options.batch_size,
        limit=limit, num_workers=options.num_workers, progress=options.progress,
    )
