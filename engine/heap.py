"""Keep a long-running process's memory tracking what is live, not its history, without
making the model pay for it.

Two glibc settings decide both. Left to itself, glibc hands the top of the heap back to
the system whenever enough of it is free, and sends large blocks to fresh mmaps; a forward
pass frees and reallocates tens of MB of activations, so each tile faulted its memory in
again (about 20 k page faults, 80 MB, per 512 px tile of `tiny`; 10 % of the pipeline's
time at batch 1). `keep_heap` raises both thresholds once per process, so activations are
reused in place, and `trim_heap` hands the free pages back (malloc_trim: the top of the heap
and, since glibc 2.8, free pages inside it) once per band of tile rows, so a long
segmentation stays flat without a leak. The trainer keeps the heap too (a CPU step of
`tiny-cpu` faulted about 70 k pages, 280 MB). An earlier fix, a low fixed mmap threshold, kept
memory flat too, but sent every activation to a fresh mmap and cost the model 37 %.
Measurements: BENCHMARKS.md, Throughput and Memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from typing import Any

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's ceiling for it on 64-bit systems
# glibc trims by itself only past this much free top; trim_heap does the rest.
TRIM_THRESHOLD_BYTES = 256 << 20


@functools.cache
def _libc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 (musl and others lack them)
    except (OSError, AttributeError):
        return None
    return libc


@functools.cache
def keep_heap() -> bool:
    """Let freed activations stay in the heap for the next tile (once per process); False
    where there is no glibc or it refused."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )


def trim_heap() -> bool:
    """Return free heap pages to the system; False where there is no glibc."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
