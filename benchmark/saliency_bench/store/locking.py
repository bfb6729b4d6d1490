"""An exclusive lock on an output folder (``<folder>/.lock``), so two runs never write one folder at once.

The lock is ``fcntl.flock`` on a file descriptor kept open, so the kernel releases it when the process ends,
however it ends. Within one process the lock is shared: a second store on the same folder (a resumed run in
the same interpreter, the leaderboard reading the results) joins it, and the folder is released when the last
holder closes. Another process is refused at once, or, with ``wait``, polls until the holder is gone. The lock
file is never opened through a link. A run locks every folder it writes (its run folder and its board folders,
``hold_folders``) in one sorted order, so two runs never wait for each other. Temporary folders named after
their process (``scratch_folder``) are removed once that process is gone.
"""
from __future__ import annotations

import errno
import fcntl
import os
import stat
import threading
import time
from pathlib import Path
from typing import Callable

from ..errors import UserError

LOCK_NAME = ".lock"
POLL_SECONDS = 0.1

_guard = threading.Lock()
_held: dict[str, list] = {}  # real path of a lock file -> [fd, holders in this process, pid that took it]


def holder_pid(lock_file: Path) -> str:
    """The pid written in a lock file by the run holding it, or ``unknown`` (no link followed, a few bytes read)."""
    try:
        fd = os.open(lock_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return "unknown"
    try:
        text = os.read(fd, 32).decode("ascii", "replace").strip() if stat.S_ISREG(os.fstat(fd).st_mode) else ""
    except OSError:
        text = ""
    finally:
        os.close(fd)
    return text if text.isdigit() else "unknown"


def _open(lock_file: Path, what: str) -> int:
    """A descriptor on the lock file (created honouring the umask, never through a link); a link, a file that is
    not a regular one or a folder that cannot be locked is a user error."""
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserError(f"cannot lock {what} {lock_file.parent}: {lock_file} is a symbolic link (never followed); "
                            "remove it") from None
        raise UserError(f"cannot lock {what} {lock_file.parent}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"cannot lock {what} {lock_file.parent}: {lock_file} is not a regular file; remove it")
    return fd


def _take(key: str, lock_file: Path, what: str) -> bool:
    """Join this process's hold on ``key`` or take the flock without blocking; False if another process has it."""
    with _guard:
        entry = _held.get(key)
        if entry is not None and entry[2] == os.getpid():
            entry[1] += 1
            return True
        fd = _open(lock_file, what)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held[key] = [fd, 1, os.getpid()]
        return True


def _release(key: str) -> None:
    """Drop one holder of ``key``; the last one in the process that took the lock unlocks and closes it."""
    with _guard:
        entry = _held.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _held[key]
        if entry[2] == os.getpid():  # a forked child never unlocks its parent's folder
            fcntl.flock(entry[0], fcntl.LOCK_UN)
            os.close(entry[0])


class FolderLock:
    """Hold ``<folder>/.lock`` until ``close()`` (or process exit); busy -> UserError, or wait with ``wait``.

    ``what`` names the folder and ``option`` the option that chooses another in the messages.
    """

    def __init__(self, folder: str | os.PathLike, wait: bool = False, log: Callable[[str], None] | None = None,
                 what: str = "output folder", option: str | None = "--out"):
        self.folder = Path(folder)
        self.file = self.folder / LOCK_NAME
        self.key = os.path.join(os.path.realpath(self.folder), LOCK_NAME)  # the folder resolved, never the file
        self.what, self.option = what, option
        self.closed = True
        told = False
        while not _take(self.key, self.file, what):
            if not wait:
                raise UserError(self.busy_message())
            if not told and log is not None:
                log(f"waiting: {what} {self.folder} is in use by another run (pid {holder_pid(self.file)})")
                told = True
            time.sleep(POLL_SECONDS)
        self.closed = False

    def busy_message(self) -> str:
        """The one-line refusal when another process holds the folder."""
        choose = f", or choose another {self.option}" if self.option else ""
        return (f"{self.what} {self.folder} is in use by another run (pid {holder_pid(self.file)}); "
                f"wait for it{', use --wait' if choose else ' or use --wait'}{choose}")

    def close(self) -> None:
        """Release this hold (idempotent)."""
        if not self.closed:
            self.closed = True
            _release(self.key)

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the kernel releases the lock with the process
            pass


def hold_folders(folders: list[tuple[Path, str, str | None]], wait: bool,
                 log: Callable[[str], None] | None) -> list[FolderLock]:
    """Lock every ``(folder, what, option)`` (each folder created), in one order for every process, so two runs
    waiting for each other's folders never wait forever; a refusal releases those already taken and removes the
    folders it created."""
    keyed, created = {}, []
    held: list[FolderLock] = []
    try:
        for folder, what, option in folders:
            created += _make(Path(folder), what)
            keyed.setdefault(os.path.realpath(folder), (folder, what, option))
        for key in sorted(keyed):
            folder, what, option = keyed[key]
            held.append(FolderLock(folder, wait=wait, log=log, what=what, option=option))
    except BaseException:
        release(held)
        for folder in reversed(created):  # nothing but our lock files in them yet
            try:
                (folder / LOCK_NAME).unlink(missing_ok=True)
                folder.rmdir()
            except OSError:
                pass
        raise
    return held


def _make(folder: Path, what: str) -> list[Path]:
    """Create ``folder`` and its missing parents; those created, outermost first."""
    missing = [parent for parent in [folder, *folder.parents] if not parent.exists()][::-1]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        for parent in reversed([p for p in missing if p.is_dir()]):  # what this call made before it failed
            parent.rmdir()
        raise UserError(f"cannot create {what} {folder}: {exc.strerror}") from None
    return missing


def release(locks: list[FolderLock]) -> None:
    """Close every lock of ``locks``."""
    for lock in locks:
        lock.close()


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_locked(folder: Path) -> bool:
    """Whether some process holds ``<folder>/.lock`` (a link or an unreadable file counts as held)."""
    try:
        fd = os.open(Path(folder) / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's own lock
    return False


def _abandoned(folder: Path, prefix: str) -> bool:
    """Whether ``folder`` is a scratch folder of ``prefix`` owned by this user whose process is gone and whose lock
    no one holds (a folder named without a pid, as older versions did, is never judged abandoned)."""
    pid = folder.name[len(prefix):].partition("-")[0]
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    return (pid.isdigit() and stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
            and int(pid) != os.getpid() and not pid_alive(int(pid)) and not is_locked(folder))


def scratch_folder(prefix: str) -> Path:
    """A new temporary folder ``<tmp>/<prefix><pid>-<random>``, once the folders of ``prefix`` left by processes
    that are gone (a ``kill -9``) are removed."""
    import shutil
    import tempfile

    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        if _abandoned(folder, prefix):
            shutil.rmtree(folder, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
