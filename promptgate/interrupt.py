"""A cancelled CI job (SIGTERM) unwinds like Ctrl-C, so the cache keeps every answer received.

Python's default SIGTERM action ends the process on the spot: no `finally` runs, and the
cache's unflushed answers are lost. As KeyboardInterrupt, asyncio cancels the in-flight calls,
the runner flushes the cache, and the command exits 3 (an interrupted gate is never a pass).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"terminated by signal {signum}")


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within this block, SIGTERM raises KeyboardInterrupt in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; its owner decides
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
