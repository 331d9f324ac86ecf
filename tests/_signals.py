"""A command of the CLI run as its own process and stopped by a signal, as a user's Ctrl-C or a CI runner's
cancel does (tests of the exit code and of what the command says)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def _handles_sigterm(pid: int) -> bool:
    """Whether process ``pid`` has a handler of its own for SIGTERM (Linux: ``SigCgt`` in /proc/PID/status). The
    command sets its SIGINT and SIGTERM handlers together once Python has imported it; on a loaded machine that
    took more than the 3 s some tests wait, and a signal before it ended the process as the default action does
    (-15, not 143), or raised KeyboardInterrupt in an import: not what these tests are about."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True  # (no /proc: do not wait for it)
    caught = next((line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), "0")
    return bool(int(caught, 16) >> (signal.SIGTERM - 1) & 1)


def interrupted(args: list[str], log: Path, sig: signal.Signals, ready: Callable[[str], bool]) -> tuple[int, str]:
    """Run ``v2x ARGS`` (stdout and stderr into ``log``), send ``sig`` once the command handles signals and
    ``ready(what it wrote)`` (at most 120 s), and return its exit code (within 60 s; killed otherwise) and what it
    wrote."""
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "v2x", *args], stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while not (_handles_sigterm(proc.pid) and ready(log.read_text())) and time.monotonic() < deadline:
                time.sleep(0.1)
            proc.send_signal(sig)
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return code, log.read_text()
