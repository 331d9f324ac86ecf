"""A real Mosquitto broker for the tests (the session fixture in conftest.py starts one)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable
from pathlib import Path

from v2x.net.broker import BrokerAddress, free_port

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


def mosquitto_binary() -> str:
    """Mosquitto's path; without it the test fails under CI (``.ci/run`` installs it: a CI that went green with
    the Mosquitto tests skipped would prove nothing) and is skipped elsewhere."""
    import os

    import pytest

    if MOSQUITTO is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed; .ci/run installs it (apt-get install mosquitto)")
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); Mosquitto tests skipped")
    return MOSQUITTO


DOCKER_DIR = Path(__file__).resolve().parents[1] / "docker"


def mosquitto_conf(port: int) -> str:
    """docker/mosquitto.conf (the settings we ship, set_tcp_nodelay among them) on a loopback port."""
    text = (DOCKER_DIR / "mosquitto.conf").read_text()
    if "listener 1883\n" not in text:
        raise RuntimeError("docker/mosquitto.conf must have the line 'listener 1883'")
    return text.replace("listener 1883\n", f"listener {port} 127.0.0.1\n")


class Mosquitto:
    """A real Mosquitto broker process on a loopback port; can be restarted on the same port.

    ``conf(port)``: the configuration to run (default: docker/mosquitto.conf on that port), e.g. the
    mosquitto.conf of ``v2x secure init``."""

    def __init__(self, binary: str, conf: Callable[[int], str] | None = None) -> None:
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="v2x-mosquitto-")
        weakref.finalize(self, shutil.rmtree, self.dir, True)  # (each run of the suite left its folders in /tmp)
        self.conf = Path(self.dir) / "mosquitto.conf"
        self.conf.write_text((conf or mosquitto_conf)(self.port))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> BrokerAddress:
        return BrokerAddress("127.0.0.1", self.port)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError as exc:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(f"mosquitto exited: {err}") from exc
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None
