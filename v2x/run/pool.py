"""The process pool of ``v2x check --jobs`` and ``v2x sweep --jobs``: its workers go with the command.

SIGTERM to the command (what ``docker stop`` and CI runners send) killed the command and left its workers
running, adopted by init, for minutes; SIGINT made it wait for the runs in progress (adopter review,
session 19). Now a worker ignores SIGINT (Ctrl-C reaches the whole process group: the command decides),
takes SIGTERM's default, and on Linux gets SIGTERM when the command's process ends, however it ends
(``PR_SET_PDEATHSIG``); the command terminates its workers when it is interrupted (:func:`kill`)."""

from __future__ import annotations

import ctypes
import signal
import sys
from concurrent.futures import ProcessPoolExecutor

_PR_SET_PDEATHSIG = 1


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def job_pool(jobs: int) -> ProcessPoolExecutor:
    """A pool of ``jobs`` worker processes that go with the command (see the module's docstring)."""
    return ProcessPoolExecutor(max_workers=jobs, initializer=_worker_init)


def kill(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's workers, their runs in progress with them, and drop what was queued."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
