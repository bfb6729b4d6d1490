"""Files of the output folders: atomic writes, strict JSON reads, one-line messages about what a file holds."""
from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path

from ..errors import UserError


def stderr(message: str) -> None:
    """The default log of the library and the CLI: one line on stderr."""
    print(message, file=sys.stderr)


def json_kind(value: object) -> str:
    """The JSON type name of a parsed value (``null``, ``boolean``, ``number``, ``string``, ``array``, ``object``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    names = {dict: "object", list: "array", str: "string", int: "number", float: "number"}
    return names.get(type(value), type(value).__name__)


def plain(data: object) -> object:
    """The JSON round trip of ``data`` (tuples become lists), so recorded and fresh values compare equal."""
    return json.loads(json.dumps(data, sort_keys=True))


def first_difference(old: object, new: object, path: str = "") -> str:
    """A dotted path to the first place two configurations differ, for a refusal message."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return first_difference(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
    return f"{path or 'configuration'}: {json.dumps(old)} != {json.dumps(new)}"


def _reject_constant(name: str) -> None:
    """``json.loads`` hook: NaN and Infinity are never written, so never read."""
    raise ValueError(f"non-finite number {name}")


def parse_json(raw: bytes | str) -> object:
    """Strict JSON; ValueError (bad UTF-8, bad JSON, NaN, too deep) on anything else."""
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _temporary(path: Path) -> tuple[int, str]:
    """A new hidden file beside ``path``, created like any other file: mode 0666 less the umask."""
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), str(tmp)
        except FileExistsError:
            continue


def write_atomically(text: str, path: Path) -> None:
    """Write ``text`` through a temporary file in the same folder, fsync, and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary(path)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dump_json(data: dict, path: Path) -> None:
    """Write ``data`` as stable, sorted JSON (no NaN) atomically."""
    write_atomically(json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n", path)


def read_if_present(path: Path, what: str, advice: str = "") -> bytes | None:
    """The bytes of the file at ``path``; None if there is none; a one-line UserError naming ``what`` (and
    ``advice``) if it cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UserError(f"{path}: cannot read {what} ({exc.strerror}){advice}") from None


def check_folder(path: str | os.PathLike, option: str = "--out") -> None:
    """Refuse, before any work, an output folder that cannot be created or written; creates nothing.

    An existing file, a path under a file, a broken link, a read-only file system and a folder without
    write permission are one-line user errors naming the path and what to choose instead.
    """
    target = Path(path)
    try:
        if target.exists() and not target.is_dir():
            raise UserError(f"{option} {path} is an existing file, not a folder; choose a folder path (it is created)")
        existing = target.absolute()
        while not existing.exists() and not existing.is_symlink() and existing.parent != existing:
            existing = existing.parent  # the nearest existing ancestor: where the folder would be created
        if existing.is_symlink() and not existing.exists():
            raise UserError(f"{option} {path}: {existing} is a broken symbolic link; choose another {option}")
        if not existing.is_dir():
            raise UserError(f"{option} {path} lies under {existing}, which is a file, not a folder; "
                            f"choose another {option}")
    except OSError as exc:  # a folder on the way that may not be searched
        raise UserError(f"{option} {path} cannot be used: {exc.strerror or exc}; choose another {option}") from None
    _check_writable(existing, path, option)


def _check_writable(existing: Path, path: str | os.PathLike, option: str) -> None:
    """The nearest existing folder must be on a writable file system and writable by us."""
    try:
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows) or no permission to ask: the next test decides
        read_only = False
    if read_only:
        raise UserError(f"{option} {path} is on a read-only file system; choose a writable folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path} is not writable (no write permission on {existing}); "
                        "choose a writable folder")
