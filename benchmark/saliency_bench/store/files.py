"""Files of the output folders: atomic writes, strict JSON reads, one-line messages about what a file holds.

No link is followed below an output folder: a file is opened with ``O_NOFOLLOW`` (and ``O_NONBLOCK``, so a FIFO
never blocks), accepted only when ``fstat`` says it is a regular file, and read only up to a stated limit.
"""
from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import stat
import sys
from pathlib import Path
from typing import Iterable

from ..errors import UserError

TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")  # what _temporary names: .NAME.<12 hex>.tmp
RUN_RECORD_BYTES = 1 << 20  # run.json holds a configuration: a larger one is not a run record
_live: set[str] = set()  # the temporary files this process is writing (absolute paths)


class Unusable(Exception):
    """A file of an output folder that cannot be used as one: a link, not a regular file, too large, unreadable."""


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


def _kind_of(mode: int) -> str:
    """What a non-regular file is, in a word or two."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _check_folders(root: Path, path: Path) -> None:
    """The folders from ``root`` down to ``path`` must be real folders: a link is Unusable, a file a UserError."""
    folder = root
    for part in path.parent.relative_to(root).parts:
        folder = folder / part
        try:
            mode = os.lstat(folder).st_mode
        except FileNotFoundError:
            return  # the file is absent: open says so
        except OSError as exc:
            raise Unusable(f"{folder}: {exc.strerror}") from None
        if stat.S_ISLNK(mode):
            raise Unusable(f"{folder} is a symbolic link, never followed in an output folder")
        if not stat.S_ISDIR(mode):
            raise UserError(f"{folder} is a file where the output folder's folder of that name goes; "
                            "move it away or choose another --out")


def _read_open(fd: int, limit: int) -> bytes:
    """At most ``limit`` bytes of the open regular file ``fd``; a larger file is Unusable."""
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        raise Unusable("a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise Unusable(f"{_kind_of(info.st_mode)}, not a regular file")
    if info.st_size > limit:
        raise Unusable(f"{info.st_size} bytes, over the limit of {limit}")
    chunks, size = [], 0
    while size <= limit:
        chunk = os.read(fd, min(1 << 20, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    raise Unusable(f"over the limit of {limit} bytes")


def read_regular(path: Path, limit: int, root: Path | None = None) -> bytes | None:
    """The bytes of the regular file at ``path`` (None if there is none), following no link below ``root``.

    A link, a folder, a FIFO or a device, a file over ``limit`` bytes or one that cannot be read is ``Unusable``
    (its message says why); a file standing where a folder of ``root`` goes is a UserError.
    """
    if root is not None:
        _check_folders(Path(root), Path(path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Unusable("a symbolic link, never followed in an output folder") from None
        if exc.errno == errno.ENOTDIR:
            raise UserError(f"{path}: a file stands where one of its folders goes; move it away or choose "
                            "another --out") from None
        raise Unusable(f"{type(exc).__name__}: {exc.strerror}") from None
    try:
        return _read_open(fd, limit)
    except OSError as exc:
        raise Unusable(f"{type(exc).__name__}: {exc.strerror}") from None
    finally:
        os.close(fd)


def clear_way(root: Path, path: Path) -> None:
    """Make room for the file ``path`` below ``root``: a link where one of its folders goes is removed (never
    followed), and so is a folder where the file goes; a file where a folder goes is a UserError."""
    folder = Path(root)
    for part in Path(path).parent.relative_to(root).parts:
        folder = folder / part
        if folder.is_symlink():
            folder.unlink()
        elif folder.exists() and not folder.is_dir():
            raise UserError(f"{folder} is a file where the output folder's folder of that name goes; "
                            "move it away or choose another --out")
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)


def write_in_store(text: str, root: Path, path: Path) -> None:
    """Write a file of an output folder atomically, clearing its way; an OSError is a UserError naming the path."""
    try:
        clear_way(root, path)
        write_atomically(text, path)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; make {root} writable or choose another "
                        "--out") from None


def remove_temporaries(folder: Path, recursive: bool = True) -> list[Path]:
    """Delete the temporary files ``write_atomically`` left in ``folder`` (and, ``recursive``, below it, links
    never followed), as a run killed mid-write does; call it only under the folder's lock. The paths removed."""
    removed = []
    for top, subfolders, names in os.walk(folder):
        for name in names:
            path = Path(top) / name
            if (TEMPORARY.match(name) and stat.S_ISREG(os.lstat(path).st_mode)
                    and os.path.abspath(path) not in _live):
                path.unlink()
                removed.append(path)
        if not recursive:
            break
    return removed


def _temporary(path: Path) -> tuple[int, str]:
    """A new hidden file beside ``path``, created like any other file: mode 0666 less the umask (noted as this
    process's own until it is renamed or deleted, so ``remove_temporaries`` never takes it)."""
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        _live.add(os.path.abspath(tmp))
        return fd, str(tmp)


def _write_temporary(text: str, path: Path) -> str:
    """``text`` in a new temporary file beside ``path`` (its folder created), flushed to disk; its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary(path)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        _drop(tmp)
        raise
    return tmp


def _drop(tmp: str) -> None:
    """Delete a temporary file (if it is still there) and forget it."""
    Path(tmp).unlink(missing_ok=True)
    _live.discard(os.path.abspath(tmp))


def write_atomically(text: str, path: Path) -> None:
    """Write ``text`` through a temporary file in the same folder, fsync, and an atomic rename."""
    tmp = _write_temporary(text, path)
    try:
        os.replace(tmp, path)
    finally:
        _drop(tmp)


def write_all(files: dict[Path, str], remove: Iterable[Path] = ()) -> None:
    """Write every file of ``files`` or none: each path is checked first (a folder where a file goes is a
    UserError), every text is written to a temporary file beside its path, then all are renamed in place and the
    paths of ``remove`` deleted. A failure before the renames leaves every file as it was."""
    for path in [*files, *remove]:
        if path.is_dir() and not path.is_symlink():
            raise UserError(f"{path} is a folder where a board file goes; move it away or choose another folder")
    written: list[tuple[str, Path]] = []
    renaming = False
    try:
        for path, text in files.items():
            written.append((_write_temporary(text, path), path))
        renaming = True
        for tmp, path in written:
            os.replace(tmp, path)
        for path in remove:
            path.unlink(missing_ok=True)
    except OSError as exc:
        kept = "" if renaming else "; nothing of the board was replaced"
        raise UserError(f"cannot write {exc.filename or 'the board'}: {exc.strerror or exc}{kept}") from None
    finally:
        for tmp, _ in written:
            _drop(tmp)


def json_text(data: dict) -> str:
    """``data`` as the stable, sorted JSON text (no NaN) every JSON file of the package is written in."""
    return json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n"


def dump_json(data: dict, path: Path) -> None:
    """Write ``data`` as stable, sorted JSON (no NaN) atomically."""
    write_atomically(json_text(data), path)


def read_if_present(path: Path, what: str, advice: str = "", limit: int = RUN_RECORD_BYTES) -> bytes | None:
    """The bytes of the regular file at ``path`` (no link followed, at most ``limit`` bytes); None if there is none;
    a one-line UserError naming ``what`` (and ``advice``) if it cannot be read or is not such a file."""
    try:
        return read_regular(path, limit)
    except Unusable as exc:
        raise UserError(f"{path}: cannot read {what} ({exc}){advice}") from None


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
