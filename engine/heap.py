"""Keep a long-running process's memory tracking what is live, not its history.

glibc raises its mmap threshold each time a large block is freed, after which big arrays
(tiles, probability chunks) come from the heap, which fragments and rarely shrinks: a long
segmentation then grows for hours without a leak. Fixing the threshold sends every large
array to mmap, returned to the system as soon as it is freed. Measured with scripts/bench.py:
without it, peak RSS grows with raster size; with it, it stays flat.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD_BYTES = 256 * 1024
_done = False


def release_large_frees() -> bool:
    """Fix glibc's mmap threshold (once per process); False where there is no glibc."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: nothing to tune
        return False
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    if not _done:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused; heap left as it is")
    return _done
