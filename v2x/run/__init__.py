"""Running scenarios: the runner, fleet workers, results, reports, recordings and the live view.

This module itself is light (the command line reads it for its defaults); the parts import what they need.
"""

from __future__ import annotations

import os

#: ``--workers`` in real time when not given: one fleet process per core, up to this many (the world takes a core
#: of its own; more fleets than cores only contend)
REALTIME_MAX_WORKERS = 4


def default_workers(mode: str, broker: str) -> int:
    """``--workers`` when not given. Lockstep: 1, the fleets in the world's process (the outcome is the same for
    any N). Real time: one fleet process per core this process may run on, at most ``REALTIME_MAX_WORKERS``, so
    that the fleets' hearing and on-board apps do not share the world's core and make its ticks late
    (docs/ARCHITECTURE.md "Real time"); 1 on the loopback bus, which does not leave the process. A run without
    equipped background vehicles starts no fleet process whatever N is."""
    if mode != "realtime" or broker == "loopback":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, REALTIME_MAX_WORKERS))
