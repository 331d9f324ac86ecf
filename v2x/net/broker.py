"""Broker addresses and the embedded broker.

``embedded`` starts an in-process amqtt broker on a free loopback port (nothing to install beyond the Python
package); ``mqtt://host:port`` uses any external MQTT broker (Mosquitto, EMQX, ...).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

log = logging.getLogger("v2x.net.broker")


class BrokerURLError(ValueError):
    pass


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://[user:pass@]host[:port]`` (port 1883 by default)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp"):
        raise BrokerURLError(f"broker URL {url!r}: expected 'embedded' or mqtt://host:port")
    if not parts.hostname:
        raise BrokerURLError(f"broker URL {url!r}: no host")
    try:
        port = parts.port or 1883
    except ValueError as exc:
        raise BrokerURLError(f"broker URL {url!r}: {exc}") from exc
    return BrokerAddress(parts.hostname, port, parts.username, parts.password)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def embedded_broker(host: str = "127.0.0.1", port: int | None = None) -> AsyncIterator[BrokerAddress]:
    """Run an amqtt broker in this event loop for the duration of the context."""
    from amqtt.broker import Broker

    port = port or free_port(host)
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 0}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    # amqtt logs every connection at INFO; keep our logs readable.
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)
    broker = Broker(config)
    await broker.start()
    log.info("embedded MQTT broker listening on %s:%d", host, port)
    try:
        yield BrokerAddress(host, port)
    finally:
        await broker.shutdown()


@contextlib.asynccontextmanager
async def broker_for(spec: str) -> AsyncIterator[BrokerAddress]:
    """``embedded`` -> an in-process broker for the context; otherwise the parsed URL."""
    if spec == "embedded":
        async with embedded_broker() as address:
            yield address
    else:
        yield parse_broker_url(spec)
