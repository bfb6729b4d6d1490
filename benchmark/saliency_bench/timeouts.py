"""A wall-clock limit on a method call: SIGALRM raises ``MethodTimeout`` inside the call (main thread, POSIX).

Python delivers the signal between bytecodes, so a hung Python loop or a ``sleep`` is interrupted at once and
a long native kernel when it returns. Off the main thread (or without SIGALRM) the limit is checked after the
call instead: the call is not interrupted, but it is still failed as timed out.
"""
from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from typing import Iterator


class MethodTimeout(Exception):
    """A method ran past its time limit."""


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise MethodTimeout if the block runs longer than ``seconds`` (None: no limit; <= 0: already over)."""
    if seconds is None:
        yield
        return
    if seconds <= 0:
        raise MethodTimeout()
    if not _can_alarm():
        started = time.perf_counter()
        yield
        if time.perf_counter() - started > seconds:
            raise MethodTimeout()
        return

    def expire(signum, frame):
        raise MethodTimeout()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
