"""Broker addresses and the embedded broker.

``embedded`` starts an in-process amqtt broker on a free loopback port (nothing to install beyond the Python
package); ``mqtt://host:port`` uses any external MQTT broker (Mosquitto, EMQX, ...), ``mqtts://host:port``
the same over TLS. With ``--secure`` the embedded broker checks user names, passwords and per-user topic
grants (``v2x.net.amqtt_acl``) and listens with TLS (docs/SECURITY.md).
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from v2x.net.topics import Grants

log = logging.getLogger("v2x.net.broker")


class BrokerURLError(ValueError):
    pass


@dataclass(frozen=True)
class BrokerAddress:
    """Where a broker is and how to log in: ``tls`` connects with TLS, checking the broker's certificate
    against ``ca_pem`` (PEM text of the CA; None: the system's CAs). ``url`` never shows the credentials.
    ``mqtt5``: connect with MQTT 5 (and its Maximum Packet Size); False for the embedded amqtt broker, which
    speaks MQTT 3.1.1 only and checks sizes itself (``v2x.net.amqtt_fanout``)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_pem: str | None = field(default=None, repr=False)
    mqtt5: bool = True

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def login(self, username: str, password: str) -> BrokerAddress:
        """This broker with other credentials."""
        return replace(self, username=username, password=password)


# The password of a URL's user info: from the ':' after the user name to the last '@' (greedy, so that a password
# with an unencoded '/', '@' or '#' in it is hidden whole), whatever the scheme's separator looks like (a mistyped
# "mqtt:/", "mqtt:" or "mqtt//" printed the password whole: attack review 4); with no password, the user name
# may be hidden instead (more rather than less).
_PASSWORD = re.compile(r"^(?P<head>(?:[A-Za-z][A-Za-z0-9+.-]*:)?/*[^:@]*:).*@", re.DOTALL)


def redacted_url(url: str) -> str:
    """``url`` as messages may show it: its password, if any, replaced by ``***`` (``mqtt://ci:***@host``).
    Works on text that is no valid URL too (a password with a '/' in it), hiding more rather than less."""
    return _PASSWORD.sub(r"\g<head>***@", url, count=1)


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://[user:pass@]host[:port]`` (port 1883 by default) or ``mqtts://...`` (TLS, port 8883); a '/',
    '?', '#', '@' or '%' in the user name or password is percent-encoded (``%2F`` for '/'). Anything else
    raises ``BrokerURLError``, whose message never shows the password."""
    shown = redacted_url(url)
    try:
        parts = urlsplit(url)
    except ValueError:  # (an unclosed '[': the message of urllib's ValueError is no help, and had a traceback)
        raise BrokerURLError(
            f"broker URL {shown!r} is not a valid URL (an IPv6 address goes in brackets: mqtt://[::1]:1883)"
        ) from None
    if parts.scheme not in ("mqtt", "tcp", "mqtts", "ssl"):
        raise BrokerURLError(f"broker URL {shown!r}: expected 'embedded', mqtt://host:port or mqtts://host:port")
    if "@" in url.partition("://")[2] and "@" not in parts.netloc:
        # a '/', '?' or '#' in the password ended the host part early: what urllib takes for the host and port
        # is then the user name and a part of the password
        raise BrokerURLError(
            f"broker URL {shown!r}: a '/', '?', '#', '@' or '%' in the user name or password must be "
            "percent-encoded (%2F for '/', %3F '?', %23 '#', %40 '@', %25 '%')"
        )
    if not parts.hostname:
        raise BrokerURLError(f"broker URL {shown!r}: no host")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        given = parts.port
    except ValueError:  # (urllib's message quotes the port, which may be a part of the password)
        given = -1
    if given is not None and not 1 <= given <= 65535:  # (port 0 went to 1883 silently: attack review 4)
        raise BrokerURLError(f"broker URL {shown!r}: the port is not a number from 1 to 65535")
    port = given if given is not None else 8883 if tls else 1883
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return BrokerAddress(parts.hostname, port, user, password, tls=tls)


def tls_context(broker: BrokerAddress) -> ssl.SSLContext | None:
    """The TLS context of a client of ``broker`` (None without TLS): the broker's certificate must be
    signed by ``broker.ca_pem`` (or, without it, by a CA the system trusts) and name ``broker.host``."""
    if not broker.tls:
        return None
    context = ssl.create_default_context(cadata=broker.ca_pem) if broker.ca_pem else ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (from which outgoing connections get their local ports;
    32768 where the kernel does not say)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` ("": every interface) for a broker to listen on, picked at random below the
    kernel's ephemeral range: an outgoing connection is never given it as its local port in the moments before
    the broker binds it (or while a broker restarts on it), which a port the kernel picks from that range
    risks (a RabbitMQ node of the tests failed to start so). The kernel's pick if none is free there."""
    low = ephemeral_low()
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        picked: int = s.getsockname()[1]
        return picked


@dataclass(frozen=True)
class EmbeddedSecurity:
    """What a secure embedded broker enforces: ``passwords`` (user name -> password; nobody else may
    connect), ``grants`` (user name -> the topics it may write and read; ``v2x.net.topics.Grants``), and
    TLS with ``cert_file`` and ``key_file`` (PEM files; None: plain TCP) signed by the CA ``ca_pem``."""

    passwords: dict[str, str]
    grants: dict[str, Grants]
    cert_file: str | None = None
    key_file: str | None = None
    ca_pem: str | None = None


class _NoRefusalNoise(logging.Filter):
    """amqtt logs an ERROR and a WARNING for a connection that closes before its CONNECT is read: what every
    MQTT 5 client (an outside stack on the SDK) does here once, refused at once so that it falls back to
    MQTT 3.1.1 (``v2x.net.amqtt_fanout``); a port scan does the same. Not the run's news."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not (text.startswith("No data from ") or text == "Failed to initialize client session: No more data")


def _quiet_refusals(logger: logging.Logger) -> None:
    if not any(isinstance(f, _NoRefusalNoise) for f in logger.filters):
        logger.addFilter(_NoRefusalNoise())


@contextlib.asynccontextmanager
async def embedded_broker(
    host: str = "127.0.0.1", port: int | None = None, security: EmbeddedSecurity | None = None
) -> AsyncIterator[BrokerAddress]:
    """Run an amqtt broker in this event loop for the duration of the context (``security``: with log-in,
    per-user topic grants and, given a certificate, TLS)."""
    from v2x.net.amqtt_fanout import FanOutBroker

    port = port or free_port(host)
    listener: dict[str, Any] = {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 0}
    plugins: dict[str, Any] = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
    tls = False
    if security is not None and security.cert_file and security.key_file:
        listener.update(ssl=True, certfile=security.cert_file, keyfile=security.key_file)
        tls = True
    config = {"listeners": {"default": listener}, "plugins": plugins}
    # amqtt logs every connection at INFO; keep our logs readable.
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)
    _quiet_refusals(logging.getLogger("amqtt.broker"))
    if security is None:
        broker = FanOutBroker(config)
    else:
        from v2x.net.amqtt_acl import SecureBroker

        config["plugins"] = {}  # no anonymous log-in: SecureBroker checks every user and topic itself
        broker = SecureBroker(config, security.passwords, security.grants)
    await broker.start()
    log.info("embedded MQTT broker listening on %s:%d", host, port)
    try:
        yield BrokerAddress(host, port, tls=tls, ca_pem=security.ca_pem if security and tls else None, mqtt5=False)
    finally:
        await broker.shutdown()


@contextlib.asynccontextmanager
async def broker_for(spec: str, security: EmbeddedSecurity | None = None) -> AsyncIterator[BrokerAddress]:
    """``embedded`` -> an in-process broker for the context (``security``: what it enforces); otherwise the
    parsed URL."""
    if spec == "embedded":
        async with embedded_broker(security=security) as address:
            yield address
    else:
        yield parse_broker_url(spec)
