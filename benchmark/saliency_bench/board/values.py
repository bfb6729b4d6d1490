"""leaderboard-values.json: the per-image data behind every paired comparison with a board.

Beside leaderboard.json, for every method and per-image check on the board, the per-image data of each metric
(``Check.image_data``: what ``Check.statistics`` turns into the metric), encoded compactly (values.py). With it,
``compare`` and ``check`` pair a method with another, or a rerun with its recorded row, image by image from a
fresh clone. It belongs to one board:
it records the board's configuration and check parameters, and a file of another board is refused.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import UserError
from ..store.shards import ShardStore, stored_values
from ..store.files import json_text, parse_json, read_if_present, write_atomically
from ..store.results import DIGEST, record_digest
from ..store.arrays import decode_array, encode_array

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import Registry
    from ..store.results import ResultStore

FILE = "leaderboard-values.json"
SCHEMA = 1
MAX_BYTES = 1 << 30  # a values file larger than this (1 GiB) is refused unread
PairedData = dict[str, dict[str, dict[str, np.ndarray]]]  # method -> check -> metric -> per-image data


def sidecar_path(board_path: str | Path) -> Path:
    """Where the per-image values of the board at ``board_path`` are kept."""
    return Path(board_path).with_name(FILE)


def image_data(check, values: dict[str, np.ndarray], params: dict) -> dict[str, np.ndarray]:
    """``{metric: per-image data}`` of one method's values on ``check`` (what a paired comparison resamples)."""
    return {metric: np.asarray(data, dtype=float) for metric, data in check.image_data(values, params).items()
            if metric in check.statistics}


def collect(store: "ResultStore", registry: "Registry", board: dict, methods: Sequence[str]) -> PairedData:
    """The per-image data of every ``ok`` (method, per-image check) on ``board``, from the store's shards."""
    shards = ShardStore(store.root, store.config)
    data: PairedData = {}
    for check_name, params in board["checks"].items():
        check = registry.checks[check_name].obj if check_name in registry.checks else None
        if check is None or not check.per_image:
            continue
        for name in methods:
            if board["methods"].get(name, {}).get("results", {}).get(check_name, {}).get("status") != "ok":
                continue
            values = stored_values(shards, name, check_name, int(params["images"]), params, registry.provenance(name))
            if values is not None:
                data.setdefault(name, {})[check_name] = image_data(check, values, params)
    return data


def sidecar_text(board: dict, data: PairedData) -> str | None:
    """The text of the sidecar of ``board`` (digest included); None when there is no per-image data."""
    if not data:
        return None
    document = {"schema": SCHEMA, "config": board["config"], "checks": board["checks"],
                "methods": {name: {check: {metric: encode_array(array) for metric, array in metrics.items()}
                                   for check, metrics in by_check.items()} for name, by_check in data.items()}}
    document = json.loads(json.dumps(document, allow_nan=False))
    document[DIGEST] = record_digest(document)
    return json_text(document)


def write_sidecar(board: dict, data: PairedData, path: Path) -> bool:
    """Write the sidecar of ``board`` (False, and any older file removed, when there is no per-image data)."""
    text = sidecar_text(board, data)
    if text is None:
        path.unlink(missing_ok=True)  # never leave another board's values beside this one
        return False
    write_atomically(text, path)
    return True


def read_sidecar(board: dict, board_path: str | Path) -> PairedData | None:
    """The per-image data recorded beside the board at ``board_path``; None if there is none; UserError if it is
    unreadable, altered, or of another board."""
    path = sidecar_path(board_path)
    raw = read_if_present(path, "the board's per-image values", limit=MAX_BYTES)
    if raw is None:
        return None
    try:
        document = parse_json(raw)
    except ValueError as exc:
        raise UserError(f"{path}: not JSON ({exc}); restore it from the board's commit") from None
    if not isinstance(document, dict) or document.get(DIGEST) != record_digest(document):
        raise UserError(f"{path}: altered or not a saliency-bench per-image values file (digest mismatch); "
                        "restore it from the board's commit")
    if document.get("config") != board.get("config") or document.get("checks") != board.get("checks"):
        raise UserError(f"{path} belongs to another board (configuration or check parameters differ from "
                        f"{board_path}); write both with the same run")
    try:
        return {name: {check: {metric: decode_array(entry) for metric, entry in metrics.items()}
                       for check, metrics in by_check.items()} for name, by_check in document["methods"].items()}
    except (ValueError, AttributeError, TypeError) as exc:
        raise UserError(f"{path}: malformed per-image values ({exc})") from None
