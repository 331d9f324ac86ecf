"""A real clustered MQTT broker for the tests: RabbitMQ nodes (Debian's rabbitmq-server, its MQTT plugin)
joined into one cluster on localhost, each with its own MQTT port.

A message published on one node reaches subscribers on every node (RabbitMQ routes MQTT topics through a
cluster-wide topic exchange), as with the EMQX cluster docs/ARCHITECTURE.md describes. RabbitMQ 3.10 (Debian
12) speaks MQTT 3.1.1, which is what the testbed's clients use.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from v2x.net.broker import BrokerAddress, free_port

SBIN = Path("/usr/lib/rabbitmq/bin")
RABBITMQ = str(SBIN / "rabbitmq-server") if (SBIN / "rabbitmq-server").exists() else None


def _listen_port(taken: set[int]) -> int:
    """A port for a node to listen on (every interface: ``free_port``, below the ephemeral range), not in
    ``taken`` (then added to it)."""
    while True:
        port = free_port("")
        if port not in taken:
            taken.add(port)
            return port


class RabbitCluster:
    """``n`` RabbitMQ nodes with the MQTT plugin, the second and later joined to the first. Started with
    :meth:`start`, stopped (every node process and its group) with :meth:`stop`."""

    def __init__(self, n: int = 2) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="v2x-rabbitmq-"))
        tag = f"v2x{os.getpid()}x{self.dir.name[-6:].replace('_', '')}"
        self.names = [f"{tag}n{k}@localhost" for k in range(n)]
        taken: set[int] = set()
        self.ports = [_listen_port(taken) for _ in range(n)]  # MQTT
        self._amqp = [_listen_port(taken) for _ in range(n)]
        self._dist = [_listen_port(taken) for _ in range(n)]
        self.procs: list[subprocess.Popen[bytes]] = []
        (self.dir / ".erlang.cookie").write_text(f"V2XTESTBED{tag.upper()}")
        (self.dir / ".erlang.cookie").chmod(0o400)
        (self.dir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")

    def address(self, k: int) -> BrokerAddress:
        return BrokerAddress("127.0.0.1", self.ports[k])

    def _env(self, k: int) -> dict[str, str]:
        node = self.dir / f"node{k}"
        return {
            **os.environ,
            "HOME": str(self.dir),  # the Erlang cookie, shared by the nodes and rabbitmqctl
            "RABBITMQ_NODENAME": self.names[k],
            "RABBITMQ_NODE_PORT": str(self._amqp[k]),
            "RABBITMQ_DIST_PORT": str(self._dist[k]),
            "RABBITMQ_MNESIA_BASE": str(node / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(node / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(node / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(node / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(node / "pid"),
        }

    def _ctl(self, k: int, *args: str, timeout_s: float = 60.0) -> None:
        subprocess.run(
            [str(SBIN / "rabbitmqctl"), "-n", self.names[k], *args],
            env=self._env(k),
            check=True,
            capture_output=True,
            timeout=timeout_s,
        )

    def start(self) -> None:
        assert RABBITMQ is not None
        for k in range(len(self.names)):
            node = self.dir / f"node{k}"
            node.mkdir()
            (node / "rabbitmq.conf").write_text(
                f"listeners.tcp.default = {self._amqp[k]}\nmqtt.listeners.tcp.default = {self.ports[k]}\n"
                "mqtt.allow_anonymous = true\nloopback_users = none\n"
            )
            with (node / "server.log").open("wb") as out:  # the node keeps its own copy of the file
                self.procs.append(
                    subprocess.Popen(
                        [RABBITMQ], env=self._env(k), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )
        deadline = time.monotonic() + 90
        for k in range(len(self.names)):
            while True:  # await_startup fails at once while the node has not registered with epmd yet
                try:
                    self._ctl(k, "await_startup", "--timeout", "60", timeout_s=70)
                    break
                except subprocess.CalledProcessError as exc:
                    if time.monotonic() > deadline or self.procs[k].poll() is not None:
                        raise RuntimeError(
                            f"RabbitMQ node {self.names[k]} did not start: {self.log(k)[-2000:]}"
                        ) from exc
                    time.sleep(0.5)
        for k in range(1, len(self.names)):
            self._ctl(k, "stop_app")
            self._ctl(k, "join_cluster", self.names[0])
            self._ctl(k, "start_app")
        for k, port in enumerate(self.ports):
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError as exc:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"RabbitMQ node {self.names[k]} has no MQTT listener") from exc
                    time.sleep(0.2)

    def log(self, k: int) -> str:
        path = self.dir / f"node{k}" / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs = []
        shutil.rmtree(self.dir, ignore_errors=True)
