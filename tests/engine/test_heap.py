"""keep_heap: freed blocks stay in the heap for the next tile instead of being faulted in
again (the page faults that cost the pipeline ~10 % at batch 1 on CPU)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHURN = """
import ctypes, resource, sys
from saymap.engine.heap import keep_heap, trim_heap
if sys.argv[1] == "keep":
    assert keep_heap()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def one_tile():  # 48 blocks of 1 MiB, written, then all freed: a forward pass's activations
    blocks = [libc.malloc(1 << 20) for _ in range(48)]
    for b in blocks:
        ctypes.memset(b, 1, 1 << 20)
    for b in reversed(blocks):
        libc.free(b)
one_tile()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    one_tile()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

# One tile's blocks freed into the kept heap, then trimmed: resident memory before and after.
TRIM = """
import ctypes, os
from saymap.engine.heap import keep_heap, trim_heap
assert keep_heap()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
page = os.sysconf("SC_PAGE_SIZE")
def resident() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
blocks = [libc.malloc(1 << 20) for _ in range(48)]
for b in blocks:
    ctypes.memset(b, 1, 1 << 20)
for b in reversed(blocks):
    libc.free(b)
before = resident()
trimmed = trim_heap()
print(trimmed, before - resident())
"""


def faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_kept_heap_reuses_freed_blocks_instead_of_faulting_them_in_again() -> None:
    default, kept = faults("default"), faults("keep")
    pages = 5 * 48 * 256  # every 4 KiB page of five tiles
    assert default > pages // 2, f"glibc's default should refault the freed top ({default})"
    assert kept < pages // 20, f"the kept heap still faulted {kept} pages"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_trim_hands_the_kept_heap_back_to_the_system() -> None:
    """What keep_heap holds on to, trim_heap returns: the 48 MiB freed stay resident until
    the trim, which says it released memory and shrinks the process by most of them."""
    out = subprocess.run([sys.executable, "-c", TRIM], capture_output=True, text=True, check=True)
    trimmed, released = out.stdout.split()
    assert trimmed == "True"
    assert int(released) > 40 << 20, f"the trim released only {int(released) >> 20} MiB"
