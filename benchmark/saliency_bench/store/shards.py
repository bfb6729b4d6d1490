"""Image shards: the unit of work and of storage below a (method, check) result.

A shard is a range of image indices ``[start, stop)`` aligned to the batch size, so the batches, and the
seeded noise drawn per batch (``Suite.batches``), are the same whichever shards a run is split into. Each
method's per-image values on a shard are kept in ``results/<check>/<method>/<start>-<stop>.json``, written
atomically by whoever computed it (the run, or a Ray worker) with its configuration, check parameters,
plugin, image range and digest. A torn file (unreadable, cut short, digest mismatch, arrays that declare more than a shard of its images can
hold) or a foreign one (another method, check, range, configuration or parameters) is refused in one line and
recomputed; so is anything but a regular file of at most ``MAX_SHARD_BYTES`` (a link is never followed).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Callable

from ..errors import UserError
from .files import Unusable, json_text, parse_json, read_regular, stderr, write_in_store
from .results import DIGEST, STATUSES, UNUSABLE, record_digest
from .arrays import ImageValues, decode_values, encode_values

DEFAULT_SHARD_IMAGES = 256  # images per shard unless --shard-size says otherwise (rounded up to whole batches)
MAX_SHARD_BYTES = 1 << 28  # a shard file larger than this (256 MiB) is unusable: recomputed, never read


def default_shard_size(batch_size: int) -> int:
    """The smallest multiple of the batch size holding ``DEFAULT_SHARD_IMAGES`` images."""
    return batch_size * math.ceil(DEFAULT_SHARD_IMAGES / batch_size)


def check_shard_size(shard_size: int, batch_size: int) -> int:
    """``shard_size`` if it is a positive multiple of the batch size; otherwise a user error saying why."""
    if shard_size < 1 or shard_size % batch_size:
        raise UserError(f"--shard-size must be a positive multiple of the batch size ({batch_size}), got {shard_size}: "
                        "shards of whole batches draw the same seeded noise however a run is split")
    return shard_size


def shard_ranges(images: int, shard_size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering images ``0 .. images`` in shards of ``shard_size`` (the last may be short)."""
    return [(start, min(start + shard_size, images)) for start in range(0, images, shard_size)]


def shard_name(start: int, stop: int) -> str:
    """The file name of a shard: its image range, zero-padded so names sort in image order."""
    return f"{start:09d}-{stop:09d}.json"


class ShardStore:
    """Per-image shard records under ``root/results``; needs no lock (every write is one atomic rename)."""

    def __init__(self, root: str | os.PathLike, config: dict, log: Callable[[str], None] | None = None):
        self.root = Path(root)
        self.config = config
        self.log = log or stderr

    def path(self, method: str, check: str, start: int, stop: int) -> Path:
        """Where ``method``'s values on images ``[start, stop)`` of ``check`` are kept."""
        return self.root / "results" / check / method / shard_name(start, stop)

    def put(self, method: str, check: str, start: int, stop: int, record: dict, params: dict,
            values: ImageValues | None = None) -> None:
        """Write one shard record (``status``, ``plugin``, ``error``/``reason``) with its encoded values, atomically."""
        data = {**record, "method": method, "check": check, "config": self.config, "params": params,
                "shard": {"start": int(start), "stop": int(stop)}}
        if values is not None:
            data["values"] = encode_values(values)
        data = json.loads(json.dumps(data, allow_nan=False))
        data[DIGEST] = record_digest(data)
        write_in_store(json_text(data), self.root, self.path(method, check, start, stop))

    def get(self, method: str, check: str, start: int, stop: int, params: dict, plugin: dict) -> dict | None:
        """The shard's record with decoded ``values``, if it is whole and of this run; else None (reported if unusable).

        A record of another plugin version is outdated, not foreign: it is recomputed without a warning.
        """
        path = self.path(method, check, start, stop)
        record = self._read(path)
        if record is UNUSABLE:
            return None
        problem, kind = self._problem(record, method, check, start, stop, params)
        if problem is None and record.get("plugin") != plugin:
            return None
        if problem is None and record["status"] == "ok":
            try:
                record = {**record, "values": decode_values(record.get("values"), rows=stop - start)}
            except ValueError as exc:
                problem, kind = str(exc), "torn"
        if problem:
            self.log(" ".join(f"warning: {path}: {kind} shard ({problem}); recomputing".splitlines()))
            return None
        return record

    def _read(self, path: Path) -> object:
        """The parsed shard file, ``UNUSABLE`` if absent; unusable or not JSON is a torn shard (reported)."""
        try:
            raw = read_regular(path, MAX_SHARD_BYTES, self.root)
        except Unusable as exc:
            self.log(" ".join(f"warning: {path}: unreadable shard ({exc}); recomputing".splitlines()))
            return UNUSABLE
        if raw is None:
            return UNUSABLE
        try:
            return parse_json(raw)
        except ValueError as exc:
            self.log(" ".join(f"warning: {path}: torn shard (not JSON: {exc}); recomputing".splitlines()))
            return UNUSABLE

    def _problem(self, record: object, method: str, check: str, start: int, stop: int,
                 params: dict) -> tuple[str | None, str]:
        """What makes ``record`` unusable here and whether the shard is ``torn`` or ``foreign``; (None, "") if usable."""
        if not isinstance(record, dict):
            return "not a JSON object", "torn"
        if not isinstance(record.get(DIGEST), str) or record[DIGEST] != record_digest(record):
            return "digest mismatch", "torn"
        if record.get("status") not in STATUSES:
            return f"status {str(record.get('status'))[:20]!r}", "torn"
        if record.get("method") != method or record.get("check") != check:
            return f"recorded for {str(record.get('method'))[:40]!r} on {str(record.get('check'))[:40]!r}", "foreign"
        if record.get("shard") != {"start": start, "stop": stop}:
            return f"holds images {str(record.get('shard'))[:60]}, not [{start}, {stop})", "foreign"
        if record.get("config") != self.config:
            return "computed under another configuration", "foreign"
        if record.get("params") != params:
            return "computed with other check parameters", "foreign"
        if record["status"] == "failed" and not isinstance(record.get("error"), str):
            return "a failed shard without an 'error' string", "torn"
        if record["status"] == "n/a" and not isinstance(record.get("reason"), str):
            return "an n/a shard without a 'reason' string", "torn"
        return None, ""


def _range_of(path: Path) -> tuple[int, int] | None:
    """The image range a shard file's name states, or None for another file."""
    start, _, stop = path.stem.partition("-")
    if not (start.isdigit() and stop.isdigit()) or path.suffix != ".json":
        return None
    return int(start), int(stop)


def stored_values(shards: ShardStore, method: str, check: str, images: int, params: dict,
                  plugin: dict) -> ImageValues | None:
    """``method``'s per-image values on images ``0 .. images`` of ``check`` from whatever usable ``ok`` shards tile
    them (per-image values do not depend on the sharding, so any tiling gives the same arrays); None if none does."""
    from .arrays import concatenate

    folder = shards.root / "results" / check / method
    starts: dict[int, list[int]] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        found = _range_of(path)
        if found and 0 <= found[0] < found[1] <= images:
            starts.setdefault(found[0], []).append(found[1])
    parts, position = [], 0
    while position < images:
        for stop in sorted(starts.get(position, []), reverse=True):  # the longest usable shard first
            record = shards.get(method, check, position, stop, params, plugin)
            if record is not None and record["status"] == "ok":
                parts.append(record["values"])
                position = stop
                break
        else:
            return None
    return concatenate(parts) if parts else None
