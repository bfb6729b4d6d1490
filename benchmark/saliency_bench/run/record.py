"""Recording a run's results: the run's shard size, a (method, check) result merged from its shards, and storing
a result with its note in the run's report. Shared by every executor (runner.py, ray_executor.py)."""
from __future__ import annotations

from typing import Callable

from ..errors import UserError
from .session import RunOptions
from ..store.shards import check_shard_size, default_shard_size
from .tasks import merge


def file_sha256(path: str) -> str:
    """SHA-256 of a weights file (results depend on its bytes, not on its path); missing -> user error."""
    import hashlib

    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise UserError(f"weights file {path}: {exc.strerror}") from None


def shard_size(options: RunOptions) -> int:
    """The run's shard size: ``--shard-size`` (a multiple of the batch size) or the default for its batch size."""
    if options.shard_size is None:
        return default_shard_size(options.batch_size)
    return check_shard_size(options.shard_size, options.batch_size)


def merge_result(report, registry, check_name: str, params: dict, name: str,
                 log: Callable[[str], None]) -> bool:
    """Store ``name``'s result on a per-image check once its shards are all in; False while one is missing."""
    record = merge(name, check_name, params["images"], shard_size(report.options), params, report.shards, registry,
                   report.suite)
    if record is None:
        return False
    store_result(report, check_name, params, name, record, log)
    return True


def store_result(report, check_name: str, params: dict, name: str, record: dict,
                 log: Callable[[str], None]) -> None:
    """Store one (method, check) record (ok, n/a or failed) and note it in ``report``."""
    if record["status"] == "n/a":
        report.not_applicable.setdefault(name, set()).add(check_name)
    elif record["status"] == "failed":
        report.failures[name] = record["error"]
        log(f"FAILED {name} on {check_name}: {record['error']}")
    report.store.put(name, check_name, record, params)
    report.computed.append((name, check_name))
