"""Process-level tuning for long batched runs on the CPU."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(threshold: int = 1 << 30) -> bool:
    """Ask glibc to keep freed blocks below ``threshold`` bytes in the heap.

    A compiled torch step allocates fresh megabyte-sized outputs every call; by default
    glibc returns such blocks to the OS and every step pays page faults to get them back
    (≈ 0.3 ms per step on a 64×64-loop sweep once other allocations interleave). Returns
    False (and changes nothing) where glibc's ``mallopt`` is unavailable.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, threshold) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, threshold) == 1
    except (OSError, AttributeError):
        ok = False
    if not ok:
        log.debug("mallopt unavailable; allocator left as is")
    return ok
