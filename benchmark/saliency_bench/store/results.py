"""Result store: one JSON file per (method, check), written atomically, keyed by a configuration.

Every record carries a digest of its content and is checked against its schema when read: a malformed,
unreadable or hand-edited record, a link, a FIFO or a file over ``MAX_RECORD_BYTES`` is reported in one line and
recomputed. The output folder is locked (``locking.FolderLock``) for the lifetime of the store, so two runs never
write one folder at once; under the lock, the temporary files of killed writes are removed when it opens. A folder
that cannot be written, or a file where one of its folders goes, is a one-line UserError naming the path.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from pathlib import Path
from typing import Callable

from ..errors import UserError
from .files import dump_json  # noqa: F401 (re-exported: the tests and older callers import it from here)
from .files import (Unusable, first_difference, json_kind, json_text, parse_json, read_if_present, read_regular,
                    remove_temporaries, stderr, write_in_store)
from .locking import FolderLock

RUN_FILE = "run.json"
SPEED = "speed"  # the name speed records are kept under, beside the checks' results (never a check)
DIGEST = "digest"
STATUSES = ("ok", "failed", "n/a")
SPEED_NUMBERS = ("floor_ms_per_image", "ms_per_image", "ratio_to_floor")
UNUSABLE = object()  # what _read returns for a file that is absent or unreadable (JSON null is a value)
MAX_RECORD_BYTES = 1 << 24  # a result record holds metrics, never per-image values: a larger file is unusable
START_OVER = {  # per command, how to start a folder of another configuration over ({count}: results stored)
    "run": "delete its {count} stored result(s) with --fresh --yes",
    "check": "leave --out out: check then reruns in a temporary folder",
}


def canonical(record: dict) -> str:
    """The record as compact, key-sorted, ASCII JSON: the text its digest is taken of."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def record_digest(record: dict) -> str:
    """SHA-256 of the canonical JSON of ``record`` without its digest key."""
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != DIGEST}).encode()).hexdigest()


def _show(name: object) -> str:
    """A key or value quoted on one short line."""
    text = json.dumps(name)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_number(value: object, null: bool = True) -> bool:
    """A finite JSON number (not a boolean), or null where allowed."""
    if value is None:
        return null
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)  # an int of any size is finite (and may overflow a float)


def _metric_problem(name: str, entry: object) -> str | None:
    """What is wrong with one metric entry ``{"value", "n", "ci_low"?, "ci_high"?}``, or None."""
    if not isinstance(entry, dict):
        return f"metric {_show(name)} is a {json_kind(entry)}, not an object"
    if "value" not in entry or not _is_number(entry["value"]):
        return f"metric {_show(name)} has no number or null 'value'"
    for key in ("ci_low", "ci_high"):
        if key in entry and not _is_number(entry[key]):
            return f"metric {_show(name)} has a {json_kind(entry[key])} '{key}'"
    n = entry.get("n")
    if not (isinstance(n, int) and not isinstance(n, bool) and n >= 0):
        return f"metric {_show(name)} has no count 'n'"
    return None


def _ok_problem(record: dict, check: str) -> str | None:
    """What is wrong with an "ok" record: metrics of a check, or the timings of a speed record."""
    if check == SPEED:
        if not isinstance(record.get("device"), str):
            return "no 'device' string"
        bad = [key for key in SPEED_NUMBERS if not _is_number(record.get(key), null=False)]
        return f"no number '{bad[0]}'" if bad else None
    metrics = record.get("metrics")
    if not isinstance(metrics, dict):
        return f"'metrics' is a {json_kind(metrics)}, not an object"
    for name, entry in metrics.items():
        problem = _metric_problem(name, entry)
        if problem:
            return problem
    return None


def record_problem(record: object, method: str, check: str) -> str | None:
    """What makes ``record`` unusable as the result of ``method`` on ``check`` (short, one line), or None."""
    if not isinstance(record, dict):
        return f"a JSON {json_kind(record)}, not an object"
    status = record.get("status")
    if status not in STATUSES:
        return f"status {_show(status)} is not one of {', '.join(STATUSES)}"
    for key in ("config", "params"):
        if not isinstance(record.get(key), dict):
            return f"'{key}' is a {json_kind(record.get(key))}, not an object"
    if "plugin" in record and not isinstance(record["plugin"], dict):
        return f"'plugin' is a {json_kind(record['plugin'])}, not an object"
    if record.get("method") != method or record.get("check") != check:
        return f"recorded for {_show(record.get('method'))} on {_show(record.get('check'))}"
    if status == "failed" and not isinstance(record.get("error"), str):
        return "a failed record without an 'error' string"
    if status == "n/a" and not isinstance(record.get("reason"), str):
        return "an n/a record without a 'reason' string"
    if status == "ok":
        return _ok_problem(record, check)
    return None


def _remove(path: Path) -> None:
    """Delete a file, a link (never its target) or a folder."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def start_over(command: str, out_dir: str | os.PathLike) -> str:
    """How ``command`` starts a folder over, for a refusal: `` (or ...)``."""
    return f" (or {START_OVER.get(command, START_OVER['run']).format(count=count_results(out_dir))})"


def read_run_config(run_file: Path, command: str = "run") -> dict | None:
    """The configuration recorded in ``run.json``, None if absent; anything else there is a UserError."""
    if run_file.is_dir():
        raise UserError(f"{run_file} is a folder, not a run record; move it away or choose another --out")
    raw = read_if_present(run_file, "the run record", "; choose another --out")
    if raw is None:
        return None
    try:
        data = parse_json(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise UserError(f"{run_file}: not a saliency-bench run record (a JSON object with a 'config' object); "
                        f"choose another --out{start_over(command, run_file.parent)}")
    return data["config"]


def count_results(out_dir: str | os.PathLike) -> int:
    """How many result files ``out_dir`` holds (what ``--fresh`` would delete)."""
    return sum(1 for _ in Path(out_dir).glob("results/*/*.json"))


class ResultStore:
    """``out_dir/results/<check>/<method>.json`` (per-image shards beside, in ``<method>/``: shards.py); refuses to mix configurations unless ``fresh``.

    ``wait``: block while another run holds the folder instead of refusing. ``log``: where one-line warnings
    about unusable records go (stderr by default). ``close()`` releases the folder (so does process exit).
    """

    def __init__(self, out_dir: str | os.PathLike, config: dict, fresh: bool = False, *, wait: bool = False,
                 log: Callable[[str], None] | None = None, command: str = "run"):
        self.root = Path(out_dir)
        self.config = config
        self.log = log or stderr
        self.command = command  # whose options the refusals suggest: `run`'s or `check`'s
        self._make_root()
        self.lock = FolderLock(self.root, wait=wait, log=self.log)
        try:
            self._open(fresh)
        except BaseException:
            self.lock.close()
            raise

    def _make_root(self) -> None:
        """Create the output folder; a file there, or a folder that cannot be made, is a user error."""
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"output folder {self.root} is a file; choose another --out")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create output folder {self.root}: {exc.strerror}") from None

    def _open(self, fresh: bool) -> None:
        """Check (or, with ``fresh``, wipe) what the folder holds, remove what killed runs left half-written, then
        record this run's configuration."""
        run_file = self.root / RUN_FILE
        results = self.root / "results"
        if results.is_symlink():
            raise UserError(f"{results} is a symbolic link, never followed in an output folder; move it away or "
                            "choose another --out")
        if results.exists() and not results.is_dir():
            raise UserError(f"{results} is a file, not the results folder; move it away or choose another --out")
        if fresh:
            if run_file.is_dir():
                raise UserError(f"{run_file} is a folder, not a run record; move it away or choose another --out")
            self._wipe(results)
        else:
            recorded = read_run_config(run_file, self.command)
            if recorded is not None and recorded != self.config:
                raise UserError(
                    f"{self.root} holds results of another configuration "
                    f"({first_difference(recorded, self.config)}); choose another --out to keep them"
                    f"{start_over(self.command, self.root)}"
                )
        try:
            remove_temporaries(self.root)  # under the lock: no live run owns them
        except OSError as exc:
            raise UserError(f"cannot clean {self.root} of temporary files: {exc.strerror}; choose another --out") from None
        write_in_store(json_text({"config": self.config}), self.root, run_file)

    @staticmethod
    def _wipe(results: Path) -> None:
        """Delete every stored result and image shard (``--fresh``), folders standing in place of result files
        and links standing in place of folders included; no link is followed."""
        if not results.is_dir():
            return
        for check in results.iterdir():
            if check.is_symlink():
                check.unlink()
            elif check.is_dir():
                for entry in check.iterdir():
                    if entry.suffix == ".json" or entry.is_symlink():
                        _remove(entry)
                    elif entry.is_dir():
                        for shard in entry.glob("*.json"):
                            _remove(shard)

    def close(self) -> None:
        """Release the output folder to other runs (idempotent; the store can still be read)."""
        self.lock.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def path(self, method: str, check: str) -> Path:
        """Where the result of ``method`` on ``check`` is kept."""
        return self.root / "results" / check / f"{method}.json"

    def _warn(self, path: Path, what: str, detail: str) -> None:
        """Report an unusable record in one line (it is recomputed)."""
        self.log(" ".join(f"warning: {path}: {what} record ({detail}); recomputing".splitlines()))

    def _read(self, path: Path) -> object:
        """The parsed file at ``path``; ``UNUSABLE`` if absent or unusable (then reported)."""
        try:
            raw = read_regular(path, MAX_RECORD_BYTES, self.root)
        except Unusable as exc:
            self._warn(path, "unreadable", str(exc))
            return UNUSABLE
        if raw is None:
            return UNUSABLE
        try:
            return parse_json(raw)
        except ValueError as exc:
            self._warn(path, "unreadable", f"not JSON: {exc}")
            return UNUSABLE

    def _load(self, method: str, check: str) -> dict | None:
        """The stored record of ``method`` on ``check`` if it is well formed and its digest matches, else None."""
        path = self.path(method, check)
        record = self._read(path)
        if record is UNUSABLE:
            return None
        problem = record_problem(record, method, check)
        if problem is None and not isinstance(record.get(DIGEST), str):
            problem = "no digest: written by an older version or by hand"
        if problem:
            self._warn(path, "malformed", problem)
            return None
        if record[DIGEST] != record_digest(record):
            self._warn(path, "tampered", "digest mismatch")
            return None
        return {k: v for k, v in record.items() if k != DIGEST}

    def get(self, method: str, check: str, params: dict | None = None) -> dict | None:
        """The finished result of ``method`` on ``check``, or None; other check parameters are refused."""
        record = self._load(method, check)
        if record is None or record["config"] != self.config:
            return None
        if params is not None and record["params"] != params:
            raise UserError(
                f"{self.path(method, check)} was computed with other {check} parameters "
                f"({first_difference(record['params'], params)}); choose another --out to keep it"
                f"{start_over(self.command, self.root)}"
            )
        return record

    def put(self, method: str, check: str, record: dict, params: dict | None = None) -> None:
        """Write one result the moment it is computed, with the configuration, check parameters and digest."""
        data = {**record, "method": method, "check": check, "config": self.config, "params": params or {}}
        data = json.loads(json.dumps(data, allow_nan=False))  # as it will read back: the digest must match then
        data[DIGEST] = record_digest(data)
        write_in_store(json_text(data), self.root, self.path(method, check))
