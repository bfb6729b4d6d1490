"""Progress of long loops: a tqdm bar on a terminal, periodic plain lines elsewhere (CI logs: no carriage returns)."""
from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TextIO, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
PLAIN_INTERVAL = 30.0  # seconds between two plain progress lines of one loop


def progress(iterable: Iterable[T], total: int, desc: str, enabled: bool = True,
             stream: TextIO | None = None) -> Iterable[T]:
    """``iterable`` with progress on ``stream`` (stderr): a bar on a terminal, else plain lines; nothing if disabled."""
    stream = stream or sys.stderr
    if not enabled:
        return iterable
    if stream.isatty():
        # tqdm gets an iterator, never the iterable: given a DataLoader, tqdm.auto creates a second DataLoader
        # iterator, which draws a base seed from torch's global generator and shifts every seeded draw after it
        # (the `random` control's noise), so a run on a terminal would compute other numbers than one in a log
        return tqdm(iter(iterable), desc=desc, total=total, leave=False, file=stream)
    return plain_lines(iterable, total, desc, stream)


def plain_lines(iterable: Iterable[T], total: int, desc: str, stream: TextIO,
                interval: float = PLAIN_INTERVAL) -> Iterator[T]:
    """Yield from ``iterable``, printing ``desc: done/total batches (seconds)`` every ``interval`` s and at the end."""
    start = last = time.monotonic()
    done = 0
    for item in iterable:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= interval or done == total:
            print(f"{desc}: {done}/{total} batches ({now - start:.0f}s)", file=stream, flush=True)
            last = now
