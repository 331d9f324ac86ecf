"""The MQTT transport: one aiomqtt connection, routed to handlers by topic filter, that reconnects.

Thin by design: it moves bytes. Decoding, validation and counting happen in the world and the agent host.
Loss and delay are never left to TCP: Nagle is switched off (TCP_NODELAY), QoS 0 is used for the air
traffic, and the emulator applies loss and delay itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable

import aiomqtt

from v2x.net.broker import BrokerAddress

log = logging.getLogger("v2x.net.transport")

Handler = Callable[[str, bytes], None]
PENDING_PUBLISH_WARNING = 100_000  # publishes in flight on one connection before aiomqtt logs a warning
ConnectCallback = Callable[[], Awaitable[None]]


class Transport:
    """One MQTT connection shared by any number of handlers in this process."""

    def __init__(
        self,
        broker: BrokerAddress,
        client_id: str,
        *,
        reconnect_initial_s: float = 0.2,
        reconnect_max_s: float = 5.0,
    ) -> None:
        self.broker = broker
        self.client_id = client_id
        self._routes: list[tuple[str, Handler]] = []
        # Dispatch index: exact topics map straight to their routes (the agent host has one per actor, so
        # matching every message against every filter would cost O(actors) per message); filters with
        # wildcards are matched one by one. Values are route positions, to call in registration order.
        self._exact: dict[str, list[int]] = {}
        self._wildcard: list[int] = []
        self._client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self._on_connect: list[ConnectCallback] = []
        self._reconnect_initial_s = reconnect_initial_s
        self._reconnect_max_s = reconnect_max_s
        self.connections = 0
        self.publish_timeout_s = 2.0
        self._stopping = False

    def route(self, topic_filter: str, handler: Handler) -> None:
        """Deliver messages matching ``topic_filter`` to ``handler`` (subscribes now if connected)."""
        self._routes.append((topic_filter, handler))
        if "+" in topic_filter or "#" in topic_filter:
            self._wildcard.append(len(self._routes) - 1)
        else:
            self._exact.setdefault(topic_filter, []).append(len(self._routes) - 1)
        if self._client is not None and self.connected.is_set():
            task = asyncio.get_running_loop().create_task(self._subscribe(self._client, [topic_filter]))
            task.add_done_callback(_log_failure)

    def on_connect(self, callback: ConnectCallback) -> None:
        """Run ``callback`` after every (re)connection and re-subscription."""
        self._on_connect.append(callback)

    async def publish(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
        """Publish, waiting through a reconnection if the broker is away."""
        while True:
            await self.connected.wait()
            client, generation = self._client, self.connections
            if client is None:
                await asyncio.sleep(0.01)
                continue
            try:
                await client.publish(topic, payload, qos=qos, retain=retain, timeout=self.publish_timeout_s)
                return
            except aiomqtt.MqttError as exc:
                # This connection is gone; the run loop notices and reconnects. Wait for the next one
                # (never clear `connected` here: a newer connection may already have set it).
                log.debug("%s: publish to %s failed (%s); waiting for reconnect", self.client_id, topic, exc)
                while self.connections == generation and not self._stopping:
                    await asyncio.sleep(0.02)

    async def _subscribe(self, client: aiomqtt.Client, filters: list[str]) -> None:
        for topic_filter in filters:
            await client.subscribe(topic_filter, qos=0)

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Connect, subscribe, dispatch; reconnect with back-off until cancelled."""
        delay = self._reconnect_initial_s
        while not self._stopping:
            try:
                async with aiomqtt.Client(
                    self.broker.host,
                    self.broker.port,
                    username=self.broker.username,
                    password=self.broker.password,
                    identifier=f"{self.client_id}",
                    keepalive=10,
                    timeout=5.0,
                    max_queued_outgoing_messages=0,
                ) as client:
                    _no_delay(client)
                    # aiomqtt warns above 10 publishes in flight; a tick legitimately has one per actor
                    # (the world's inputs, the host's transmissions and acks), so that warning is noise.
                    client.pending_calls_threshold = PENDING_PUBLISH_WARNING
                    self._client = client
                    await self._subscribe(client, [f for f, _ in self._routes])
                    self.connections += 1
                    if self.connections > 1:
                        log.warning("%s: reconnected to %s", self.client_id, self.broker.url)
                    self.connected.set()
                    delay = self._reconnect_initial_s
                    for callback in self._on_connect:
                        await callback()
                    if ready is not None:
                        ready.set()
                    async for message in client.messages:
                        self._dispatch(str(message.topic), message)
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                self._client = None
                if self._stopping:
                    return
                log.warning(
                    "%s: broker %s unavailable (%s); retrying in %.1f s",
                    self.client_id,
                    self.broker.url,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._reconnect_max_s)
        self.connected.clear()

    def _dispatch(self, topic: str, message: aiomqtt.Message) -> None:
        payload = message.payload
        data = payload if isinstance(payload, bytes | bytearray) else str(payload or "").encode()
        hits = self._exact.get(topic, [])
        wild = [k for k in self._wildcard if message.topic.matches(self._routes[k][0])]
        for k in sorted(hits + wild) if wild else hits:
            topic_filter, handler = self._routes[k]
            try:
                handler(topic, bytes(data))
            except Exception:  # a handler bug must not take the connection down
                log.exception("%s: handler for %s failed on %s", self.client_id, topic_filter, topic)

    def stop(self) -> None:
        self._stopping = True


def _no_delay(client: aiomqtt.Client) -> None:
    sock = client._client.socket()  # paho's socket; aiomqtt exposes no setter for TCP options
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("subscription failed: %s", task.exception())
