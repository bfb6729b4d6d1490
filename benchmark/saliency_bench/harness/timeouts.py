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


class MethodTimeout(BaseException):
    """A method ran past its time limit (a BaseException, so a plugin's ``except Exception`` cannot swallow it)."""


def _can_alarm() -> bool:
    """SIGALRM is ours to use: POSIX, the main thread, and no outer interval timer (pytest-timeout's, say) armed."""
    return (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
            and signal.getitimer(signal.ITIMER_REAL)[0] == 0)


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise MethodTimeout if the block runs longer than ``seconds`` (None: no limit; <= 0: already over).

    The elapsed time is also checked after the block, so a limit is kept even where no alarm could be used.
    """
    if seconds is None:
        yield
        return
    if seconds <= 0:
        raise MethodTimeout()
    started = time.perf_counter()
    if _can_alarm():

        def expire(signum, frame):
            raise MethodTimeout()

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            try:
                signal.setitimer(signal.ITIMER_REAL, 0)
            finally:  # restored even if the alarm fires on the way out
                signal.signal(signal.SIGALRM, previous)
    else:
        yield
    if time.perf_counter() - started > seconds:
        raise MethodTimeout()
