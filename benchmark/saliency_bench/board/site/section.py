"""One model's board as the site reads it: the files of a board folder, and a run folder's per-image store."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import UserError
from ...store.arrays import decode_array

BOARD, VALUES, SPEED = "leaderboard.json", "leaderboard-values.json", "leaderboard-speed.json"
COMMITTED_K, RUN_K = 3, 6  # images per check and side pictured: a committed board's site, a run folder's
COMMITTED_TILE = 64  # pixels per map tile in a committed board's site (a run folder's: the maps' own size)
PairedData = dict[str, dict[str, dict[str, np.ndarray]]]  # method -> check -> metric -> per-image data


@dataclass
class Section:
    """A model's board: its JSON, per-image values, speed, folder (figures) and optional rendered evidence."""

    model: str
    description: str
    board: dict
    values: PairedData
    speed: dict | None
    folder: Path
    store: dict = field(default_factory=dict)  # a run folder's raw per-image values: method -> check -> name -> array
    evidence: object = None  # an evidence.EvidenceSource: the site pictures the methods' maps (None: no pictures)
    k: int = COMMITTED_K  # images pictured per check and side (worst, best)
    tile: int | None = COMMITTED_TILE  # pixels per map tile (None: the maps' own size)
    title: str = ""  # how the site names the section (default: the model)
    pictured: Sequence[str] | None = None  # the methods whose maps are pictured (None: every method with maps)

    @property
    def label(self) -> str:
        """The section's name on the site."""
        return self.title or self.model


def _json(path: Path, what: str) -> dict:
    """The JSON object at ``path``; a one-line UserError if it is missing or not an object."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the {what} ({exc})") from None
    if not isinstance(document, dict):
        raise UserError(f"{path}: the {what} is not a JSON object")
    return document


def read_values(folder: Path, board: dict) -> PairedData:
    """The decoded per-image values beside a board ({} when there is none); refused if of another board."""
    path = folder / VALUES
    if not path.is_file():
        return {}
    document = _json(path, "per-image values")
    if document.get("config") != board.get("config") or document.get("checks") != board.get("checks"):
        raise UserError(f"{path} belongs to another board than {folder / BOARD}; write both with the same run")
    try:
        return {name: {check: {metric: decode_array(entry) for metric, entry in metrics.items()}
                       for check, metrics in by_check.items()} for name, by_check in document["methods"].items()}
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        raise UserError(f"{path}: malformed per-image values ({exc})") from None


def read_store(folder: Path, board: dict) -> dict:
    """A run folder's raw per-image values of every ok method and check on the board, shards in image order."""
    results, store = folder / "results", {}
    for check in board.get("checks", {}):
        for name in board.get("methods", {}):
            parts = []
            for path in sorted((results / check / name).glob("*.json")):
                record = json.loads(path.read_text())
                if record.get("status") != "ok" or record.get("config") != board.get("config"):
                    parts = []
                    break
                parts.append({key: decode_array(entry) for key, entry in record.get("values", {}).items()})
            if parts and all(sorted(p) == sorted(parts[0]) for p in parts):
                store.setdefault(name, {})[check] = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    return store


def derived_values(store: dict, board: dict, registry) -> PairedData:
    """The per-image data of each metric from a store's raw values (``Check.image_data``), as the sidecar holds."""
    data: PairedData = {}
    for name, by_check in store.items():
        for check_name, values in by_check.items():
            spec = getattr(registry, "checks", {}).get(check_name) if registry is not None else None
            if spec is not None and getattr(spec.obj, "statistics", None):
                found = spec.obj.image_data(values, board["checks"][check_name])
                data.setdefault(name, {})[check_name] = {metric: np.asarray(array, dtype=float)
                                                         for metric, array in found.items()
                                                         if metric in spec.obj.statistics}
    return data


def describe_model(name: str, registry) -> str:
    """The registered model's one-line description ('' when the model is not registered here)."""
    spec = getattr(registry, "models", {}).get(name) if registry is not None else None
    return str(getattr(spec.obj, "description", "")) if spec is not None else ""


def read_section(folder: str | Path, registry=None, title: str = "") -> Section:
    """The board in ``folder`` (leaderboard.json, -values.json, -speed.json, figures/; a run folder's results/)."""
    folder = Path(folder)
    board = _json(folder / BOARD, "board")
    if not isinstance(board.get("methods"), dict) or not isinstance(board.get("config"), dict):
        raise UserError(f"{folder / BOARD} is not a saliency-bench leaderboard.json")
    speed = _json(folder / SPEED, "speed figures").get("methods") if (folder / SPEED).is_file() else None
    model = str((board["config"].get("model") or {}).get("name", folder.name))
    store = read_store(folder, board) if (folder / "results").is_dir() else {}
    values = read_values(folder, board) or derived_values(store, board, registry)
    return Section(model=model, description=describe_model(model, registry), board=board,
                   values=values, speed=speed, folder=folder, store=store, title=title,
                   k=RUN_K if store else COMMITTED_K, tile=None if store else COMMITTED_TILE)
