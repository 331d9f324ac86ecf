"""The process pool of ``v2x check --jobs`` and ``v2x sweep --jobs``: its workers go with the command.

SIGTERM to the command (what ``docker stop`` and CI runners send) killed the command and left its workers
running, adopted by init, for minutes; SIGINT made it wait for the runs in progress (adopter review,
session 19). Now a worker ignores SIGINT (Ctrl-C reaches the whole process group: the command decides),
takes SIGTERM's default, and on Linux gets SIGTERM when the command's process ends, however it ends
(``PR_SET_PDEATHSIG``); the command terminates its workers when it is interrupted (:func:`job_pool`)."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import InvalidStateError, ProcessPoolExecutor

_PR_SET_PDEATHSIG = 1


def go_with_parent() -> None:
    """In a worker process: ignore SIGINT (the command decides), take SIGTERM's default, and on Linux get
    SIGTERM when the parent process ends, however it ends. Also the fleet worker processes of ``v2x run
    --workers N`` (``v2x.run.workers``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@contextlib.contextmanager
def job_pool(jobs: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``jobs`` worker processes that go with the command (see the module's docstring): shut down
    when the block ends; if it ends by an exception (a run that failed, SIGINT, SIGTERM), its workers are
    terminated, their runs in progress with them, and what was queued is dropped."""
    pool = ProcessPoolExecutor(max_workers=jobs, initializer=go_with_parent)
    try:
        yield pool
    except BaseException:
        # The pool's manager thread fails every future of a pool whose workers died, and on Python 3.11 raises
        # InvalidStateError for one already cancelled (``Executor.map`` cancels what it had not handed out when
        # the loop over it ends): a traceback after "interrupted". Python 3.12 ignores it there; so does this.
        manager = getattr(pool, "_executor_manager_thread", None)
        previous = threading.excepthook

        def quiet(args: threading.ExceptHookArgs) -> None:
            if not (args.thread is manager and args.exc_type is InvalidStateError):
                previous(args)

        threading.excepthook = quiet
        try:
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)  # (short: its workers are gone, the queue dropped)
        finally:
            threading.excepthook = previous
        raise
    pool.shutdown()
