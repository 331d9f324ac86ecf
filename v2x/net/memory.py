"""Keep freed memory in the process (glibc): the world allocates and frees arrays of megabytes every tick
(the fan-out's deliveries, their latencies, the fleets' delivery arrays). By default glibc maps each block
of more than 128 KiB to its own pages and unmaps it when freed, so every tick touches fresh pages again:
one page fault per 4 KiB, microseconds each on a virtual machine (some 1,000 per 4 MB array, milliseconds
per tick at 2,000 vehicles). ``retain_freed_memory`` has blocks up to ``MMAP_THRESHOLD`` taken from the heap
and the heap's free top kept up to ``TRIM_THRESHOLD``, so the next tick reuses pages already mapped.
Nothing else changes (not a value, not an order); elsewhere than glibc it does nothing."""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger("v2x.net.memory")

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's own ceiling for its dynamic threshold (64-bit)
TRIM_THRESHOLD = 512 * 1024 * 1024

_done: list[bool] = []  # once set: [True]


def retain_freed_memory() -> bool:
    """Set glibc's thresholds once per process; whether they are set (False without glibc's ``mallopt``)."""
    if _done:
        return True
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the symbols the process has loaded: libc's among them
    except (OSError, AttributeError, TypeError):
        log.debug("no mallopt (not glibc): freed memory is returned as the allocator decides")
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD):
        _done.append(True)
    return bool(_done)
