"""Keep a long run's memory flat: large buffers go straight back to the OS.

Decoded frames are big (a 720p BGR frame is 2.7 MB) and are allocated on reader threads and
freed on others. glibc's malloc serves allocations above its mmap threshold with ``mmap`` and
returns them with ``munmap``, but raises that threshold to the size of every such block freed
(up to 32 MB): after the first frame is freed, frames come from the per-thread heaps, whose
holes are not given back, and the process grows. Measured with ``benchmarks.live_streams``' four
720p30 cameras: RSS grew 23% in 10 minutes (891 -> 1100 MiB) with glibc's default and stayed
within 4% (766 -> 797 MiB) with the threshold fixed at 128 KiB.

``steady_malloc()`` fixes the threshold (``mallopt(M_MMAP_THRESHOLD)``, which also turns the
dynamic adjustment off) unless the user set ``MALLOC_MMAP_THRESHOLD_`` themselves; a no-op off
glibc (other allocators, macOS, Windows).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys

M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter number (malloc.h)."""

MMAP_THRESHOLD_BYTES = 128 * 1024
"""glibc's own initial threshold, kept fixed."""

_done = False


def steady_malloc() -> bool:
    """Fix glibc's mmap threshold once per process; True when it was set now or before."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1:
            _done = True
    return _done


__all__ = ["MMAP_THRESHOLD_BYTES", "steady_malloc"]
