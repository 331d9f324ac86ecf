"""A command of the CLI run as its own process and stopped by a signal, as a user's Ctrl-C or a CI runner's
cancel does (tests of the exit code and of what the command says)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def interrupted(args: list[str], log: Path, sig: signal.Signals, ready: Callable[[str], bool]) -> tuple[int, str]:
    """Run ``v2x ARGS`` (stdout and stderr into ``log``), send ``sig`` once ``ready(what it wrote)`` (at most
    120 s), and return its exit code (within 60 s; killed otherwise) and what it wrote."""
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "v2x", *args], stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while not ready(log.read_text()) and time.monotonic() < deadline:
                time.sleep(0.1)
            proc.send_signal(sig)
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return code, log.read_text()
