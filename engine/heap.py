"""Keep a long-running process's memory tracking what is live, not its history.

glibc keeps freed blocks in its heap, which fragments and rarely shrinks: a long
segmentation would grow for hours without a leak. `trim_heap` hands the free pages back
(malloc_trim: the top of the heap and, since glibc 2.8, free pages inside it) and is called
once per band of tile rows. An earlier fix, a fixed mmap threshold, kept memory flat too,
but it sent every activation tensor to a fresh mmap and cost the model about 37 % of its
throughput (BENCHMARKS.md, Throughput); trimming costs nothing measurable.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # musl and others: nothing to trim
        return None


def trim_heap() -> bool:
    """Return free heap pages to the system; False where there is no glibc."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
