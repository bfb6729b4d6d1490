"""Result store: one JSON file per (method, check), written atomically, keyed by a configuration."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .errors import UserError

RUN_FILE = "run.json"
SPEED = "speed"  # the name speed records are kept under, beside the checks' results (never a check)


def dump_json(data: dict, path: Path) -> None:
    """Write ``data`` as stable, sorted JSON through a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True, allow_nan=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _first_difference(old: object, new: object, path: str = "") -> str:
    """A dotted path to the first place two configurations differ, for the refusal message."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
    return f"{path or 'configuration'}: {json.dumps(old)} != {json.dumps(new)}"


class ResultStore:
    """``out_dir/results/<check>/<method>.json``; refuses to mix configurations unless ``fresh``."""

    def __init__(self, out_dir: str | os.PathLike, config: dict, fresh: bool = False):
        self.root = Path(out_dir)
        self.config = config
        run_file = self.root / RUN_FILE
        if fresh and (self.root / "results").exists():
            for old in (self.root / "results").glob("*/*.json"):
                old.unlink()
        elif run_file.exists():
            try:
                recorded = json.loads(run_file.read_text())["config"]
            except (ValueError, KeyError, OSError) as exc:
                raise UserError(f"{run_file}: unreadable run record ({type(exc).__name__}); use --fresh") from None
            if recorded != config:
                raise UserError(
                    f"{self.root} holds results of another configuration ({_first_difference(recorded, config)}); "
                    "rerun with --fresh or choose another --out"
                )
        dump_json({"config": config}, run_file)

    def path(self, method: str, check: str) -> Path:
        return self.root / "results" / check / f"{method}.json"

    def get(self, method: str, check: str, params: dict | None = None) -> dict | None:
        """The finished result of ``method`` on ``check``, or None; other check parameters are refused."""
        path = self.path(method, check)
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
        except ValueError:
            return None  # a torn file cannot happen with atomic writes, but never trust it
        if record.get("config") != self.config:
            return None
        if params is not None and record.get("params") != params:
            raise UserError(
                f"{path} was computed with other {check} parameters "
                f"({_first_difference(record.get('params'), params)}); rerun with --fresh or choose another --out"
            )
        return record

    def put(self, method: str, check: str, record: dict, params: dict | None = None) -> None:
        """Write one result the moment it is computed, with the configuration and check parameters."""
        data = {**record, "method": method, "check": check, "config": self.config, "params": params or {}}
        dump_json(data, self.path(method, check))
