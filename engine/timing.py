"""Seconds spent per pipeline stage, so a benchmark can say where the wall time goes.

The reader thread adds to "read" while the main thread adds to "model", "blend", "wait"
(for the reader) and "vectorise"; "read" overlaps the others, the rest add up to about the
wall time.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

STAGES = ("read", "wait", "model", "blend", "vectorise")


class StageTimes:
    def __init__(self) -> None:
        self._seconds = dict.fromkeys(STAGES, 0.0)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self._seconds[stage] = self._seconds.get(stage, 0.0) + elapsed

    def as_dict(self) -> dict[str, float]:
        with self._lock:
            return dict(self._seconds)
