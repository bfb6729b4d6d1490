"""What a command opens before it runs anything: the device, the model, the suite; the configuration they make."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..datasets.base import Dataset
from ..errors import UserError
from ..harness.precision import Precision, default_channels_last
from ..harness.suite import Suite
from .options import DEFAULT_MODEL, RunOptions

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import Registry


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


def summarized_names(names) -> list[str]:
    """Names for a message: plain ones as they are, each prefixed family (``timm:*``) once, with its count."""
    plain, families = [], {}
    for name in names:
        prefix, colon, _ = name.partition(":")
        if colon:
            families[prefix] = families.get(prefix, 0) + 1
        else:
            plain.append(name)
    return plain + [f"{prefix}:<name> ({count})" for prefix, count in families.items()]


def lookup(table: dict, kind: str, name: str):
    """The registered object ``name`` of ``table`` (the registry's models, datasets or checks); unknown: user error."""
    if name not in table:
        raise UserError(f"unknown {kind} '{name}' (known: {', '.join(summarized_names(sorted(table))) or 'none'}; "
                        "every one: saliency-bench list)")
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
    if options.limit is not None and options.limit > len(dataset):
        raise UserError(f"--limit {options.limit}: dataset '{dataset.name}' has {len(dataset)} images; "
                        f"choose at most {len(dataset)}")
    return Suite(
        model=model, dataset=dataset, device=model.device, seed=options.seed, batch_size=options.batch_size,
        limit=limit, num_workers=options.num_workers, progress=options.progress,
    )


def run_configuration(suite: Suite, options: RunOptions) -> dict:
    """What results depend on, recorded in the run folder and every result: the suite, the weights' SHA-256 and
    the package versions (a Ray worker computes only under its driver's)."""
    from ..models.loading import file_sha256
    from ..store.files import plain
    from .versions import package_versions

    weights = getattr(suite.model, "weights_sha256", None) or (file_sha256(options.weights) if options.weights else None)
    return plain({**suite.describe(), "weights_sha256": weights, "versions": package_versions()})
