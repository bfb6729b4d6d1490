"""An exclusive lock on an output folder (``<folder>/.lock``), so two runs never write one folder at once.

The lock is ``fcntl.flock`` on a file descriptor kept open, so the kernel releases it when the process ends,
however it ends. Within one process the lock is shared: a second store on the same folder (a resumed run in
the same interpreter, the leaderboard reading the results) joins it, and the folder is released when the last
holder closes. Another process is refused at once, or, with ``wait``, polls until the holder is gone.
"""
from __future__ import annotations

import fcntl
import os
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
    """The pid written in a lock file by the run holding it, or ``unknown``."""
    try:
        text = lock_file.read_text(errors="replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


def _open(lock_file: Path) -> int:
    """A descriptor on the lock file (created honouring the umask); an unusable folder is a user error."""
    try:
        return os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise UserError(f"cannot lock output folder {lock_file.parent}: {exc.strerror}") from None


def _take(key: str, lock_file: Path) -> bool:
    """Join this process's hold on ``key`` or take the flock without blocking; False if another process has it."""
    with _guard:
        entry = _held.get(key)
        if entry is not None and entry[2] == os.getpid():
            entry[1] += 1
            return True
        fd = _open(lock_file)
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
    """Hold ``<folder>/.lock`` until ``close()`` (or process exit); busy -> UserError, or wait with ``wait``."""

    def __init__(self, folder: str | os.PathLike, wait: bool = False, log: Callable[[str], None] | None = None):
        self.folder = Path(folder)
        self.file = self.folder / LOCK_NAME
        self.key = os.path.realpath(self.file)
        self.closed = True
        told = False
        while not _take(self.key, self.file):
            if not wait:
                raise UserError(self.busy_message())
            if not told and log is not None:
                log(f"waiting: output folder {self.folder} is in use by another run (pid {holder_pid(self.file)})")
                told = True
            time.sleep(POLL_SECONDS)
        self.closed = False

    def busy_message(self) -> str:
        """The one-line refusal when another process holds the folder."""
        return (f"output folder {self.folder} is in use by another run (pid {holder_pid(self.file)}); "
                "wait for it, use --wait, or choose another --out")

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
