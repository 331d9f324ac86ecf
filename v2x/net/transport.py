"""Transports: how the world and the agent host move bytes by topic. One protocol, two implementations.

``MqttTransport``: one aiomqtt connection to a real broker (the embedded amqtt, Mosquitto, EMQX, ...),
routed to handlers by topic filter, that reconnects. Loss and delay are never left to TCP: Nagle is
switched off (TCP_NODELAY), QoS 0 is used for the air traffic, and the emulator applies loss and delay
itself.

``LoopbackTransport``: an in-process stand-in for a broker and a connection (``LoopbackBroker``), with the
MQTT semantics the testbed relies on: topic filters with ``+`` and ``#``, retained messages (an empty
retained payload clears), per-subscriber order kept, delivery asynchronous (a handler never runs inside
``publish``). Behaviour tests run the world and the agents on it with no broker and no sockets.

Thin by design: they move bytes. Decoding, validation and counting happen in the world and the agent host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple, Protocol

import aiomqtt
import paho.mqtt.client as paho
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt import _packet as paho_packet
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers
from paho.mqtt.reasoncodes import ReasonCode

from v2x.logs import log_refusal
from v2x.net import limits, topics
from v2x.net.broker import BrokerAddress, tls_context

log = logging.getLogger("v2x.net.transport")


class _LostConnectionIsNoError(logging.Filter):
    """paho logs a lost connection at ERROR ("failed to receive on socket: [Errno 104] Connection reset by
    peer"), which the testbed's connections handle (they connect again, and a run resumes): said at WARNING on
    their logger (an outside stack's author read ERRORs in a run that had passed a broker restart)."""

    HANDLED = ("failed to receive on socket", "timeout on socket")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and str(record.msg).startswith(self.HANDLED):
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        return True


#: The logger of the testbed's own MQTT connections (aiomqtt's is "mqtt"; this one is its child).
MQTT_LOG = logging.getLogger("mqtt.v2x")
MQTT_LOG.addFilter(_LostConnectionIsNoError())


_SKIPPING = [False]  # while one of our connections decodes a PUBLISH (``_publish_properties_unread``)


class _PublishPropertiesUnread(Properties):
    """paho's MQTT 5 properties, but a PUBLISH's are skipped unread while one of the testbed's connections decodes
    it. Anyone may attach user properties to a message and the broker must pass them on: paho refused one
    holding U+FEFF (which MQTT allows) by dropping the connection, so one 40-byte message knocked out every
    connection of a run that heard it (left retained, every later run of the id), and it parses properties in
    quadratic time, so one message of 240 kB of them stalled a receiver for seconds (attack review 5). The
    testbed reads no property of a message it receives (it asks for no topic aliases), so they are passed over by
    their length. Other paho clients in the process (a test's, a user's) read them as paho does."""

    def unpack(self, buffer: bytes | bytearray) -> tuple[Properties, int]:
        if self.packetType != PacketTypes.PUBLISH or not _SKIPPING[0]:
            result: tuple[Properties, int] = super().unpack(buffer)  # type: ignore[no-untyped-call]
            return result
        self.clear()  # type: ignore[no-untyped-call]
        length, used = VariableByteIntegers.decode(buffer)  # type: ignore[no-untyped-call]
        return self, length + used


paho_packet.Properties = _PublishPropertiesUnread  # type: ignore[attr-defined]  # (paho's decode_publish builds it)


def _publish_properties_unread(client: aiomqtt.Client) -> None:
    """``client``'s received PUBLISHes are decoded with their properties skipped (``_PublishPropertiesUnread``):
    paho calls its ``_handle_publish`` on the event loop's thread, synchronously, so a flag around it is the
    connection's alone."""
    pc = client._client
    handle = pc._handle_publish

    def skipping() -> Any:
        _SKIPPING[0] = True
        try:
            return handle()
        finally:
            _SKIPPING[0] = False

    pc._handle_publish = skipping  # type: ignore[method-assign]


Handler = Callable[[str, bytes], None]
PENDING_PUBLISH_WARNING = 100_000  # publishes in flight on one connection before aiomqtt logs a warning
ConnectCallback = Callable[[], Awaitable[None]]


class LastWill(NamedTuple):
    """What the broker publishes, retained at QoS 1, when a connection drops without saying goodbye;
    ``expiry_s``: its MQTT 5 Message Expiry Interval (``Transport.publish``)."""

    topic: str
    payload: bytes
    expiry_s: int | None = None


class Transport(Protocol):
    """What the world and the agent host need of a message transport."""

    connected: asyncio.Event  # set while connected

    def route(self, topic_filter: str, handler: Handler) -> None:
        """Deliver messages matching ``topic_filter`` (MQTT wildcards) to ``handler``."""
        ...

    def on_connect(self, callback: ConnectCallback) -> None:
        """Run ``callback`` after every (re)connection and (re)subscription."""
        ...

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False, expiry_s: int | None = None
    ) -> None:
        """Publish, waiting until connected. ``expiry_s``: MQTT 5's Message Expiry Interval (the broker drops
        the message, a retained one too, after that long; a connection with MQTT 3.1.1 cannot say it)."""
        ...

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Connect, subscribe and dispatch until stopped or cancelled; ``ready`` is set once connected."""
        ...

    def stop(self) -> None:
        """Stop ``run`` (no reconnection attempts from now on)."""
        ...


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches an MQTT ``topic_filter``: ``+`` is one level, a final ``#`` any number
    of levels (zero included: ``a/#`` matches ``a``); wildcards do not match topics starting with ``$``."""
    if topic_filter == topic:
        return True
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    levels = topic.split("/")
    parts = topic_filter.split("/")
    for k, part in enumerate(parts):
        if part == "#":
            return k == len(parts) - 1
        if k >= len(levels) or (part != "+" and part != levels[k]):
            return False
    return len(parts) == len(levels)


class Routes:
    """Topic filters -> handlers, dispatched in registration order; a failing handler is logged and does
    not stop the others.

    Exact topics map straight to their routes (the agent host has one per actor, so matching every message
    against every filter would cost O(actors) per message); filters with wildcards are matched one by one.
    """

    def __init__(self, owner: str) -> None:
        self.owner = owner  # for the log
        self.routes: list[tuple[str, Handler]] = []
        self._exact: dict[str, list[int]] = {}  # topic -> route positions
        self._wildcard: list[int] = []

    def add(self, topic_filter: str, handler: Handler) -> None:
        """Route ``topic_filter`` to ``handler`` (after the routes already added)."""
        self.routes.append((topic_filter, handler))
        if "+" in topic_filter or "#" in topic_filter:
            self._wildcard.append(len(self.routes) - 1)
        else:
            self._exact.setdefault(topic_filter, []).append(len(self.routes) - 1)

    @property
    def filters(self) -> list[str]:
        """Every filter routed, in registration order."""
        return [f for f, _ in self.routes]

    def matches(self, topic: str) -> bool:
        """Whether any route matches ``topic``."""
        return topic in self._exact or any(topic_matches(self.routes[k][0], topic) for k in self._wildcard)

    def dispatch(self, topic: str, payload: bytes) -> None:
        """Call every handler whose filter matches ``topic``, in registration order."""
        hits = self._exact.get(topic, [])
        wild = [k for k in self._wildcard if topic_matches(self.routes[k][0], topic)]
        for k in sorted(hits + wild) if wild else hits:
            topic_filter, handler = self.routes[k]
            try:
                handler(topic, payload)
            except Exception:  # a handler bug must not take the connection down
                log.exception("%s: handler for %s failed on %s", self.owner, topic_filter, topic)


# Reconnection: the first retry after 0.1 s, doubling up to 1 s, so that a connection is back within about a
# second of the broker (a real-time run loses the ticks of an outage; a back-off of 0.2 s doubling to 5 s added up
# to 1.6 s to a 2 s one). One attempt a second per connection is no load on a broker.
RECONNECT_INITIAL_S = 0.1
RECONNECT_MAX_S = 1.0
# Brokers (host, port) that did not accept an MQTT 5 connection from this process: later connections to them
# speak MQTT 3.1.1 from the start instead of waiting for the attempt to fail again (``MqttTransport.run``).
MQTT311_BROKERS: set[tuple[str, int]] = set()


class MqttTransport:
    """One MQTT connection shared by any number of handlers in this process (a ``Transport``)."""

    def __init__(
        self,
        broker: BrokerAddress,
        client_id: str,
        *,
        reconnect_initial_s: float = RECONNECT_INITIAL_S,
        reconnect_max_s: float = RECONNECT_MAX_S,
        will: LastWill | None = None,
        max_packet_bytes: int | None = None,
    ) -> None:
        """``will``: this connection's Last Will (the world's STOP "world lost"). ``max_packet_bytes``: the
        largest MQTT packet this connection takes, sent to the broker as MQTT 5's Maximum Packet Size (None:
        ``limits.packet_limit`` of its routes at each connection; a route added while connected counts from
        the next one)."""
        self.broker = broker
        self.max_packet_bytes = max_packet_bytes
        self.client_id = client_id
        self.will = will
        self.routes = Routes(client_id)
        self._client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self._on_connect: list[ConnectCallback] = []
        self._callbacks: set[asyncio.Task[None]] = set()  # on_connect callbacks running
        self._reconnect_initial_s = reconnect_initial_s
        self._reconnect_max_s = reconnect_max_s
        self.connections = 0
        self.last_error = ""  # why the last connection attempt failed or the last connection ended
        # why the broker refused the last attempt in a way no retry mends (``refusal``), else None
        self.refused: str | None = None
        self.publish_timeout_s = 2.0
        self._stopping = False
        self.spoke_mqtt5 = False  # a connection with MQTT 5 succeeded (then no falling back to 3.1.1)
        self.ignored_retained = 0  # retained messages on actors' topics, not handed to the routes
        # who counts them (the world in its rejections, an agent host in its agent's): the topic
        self.on_retained: Callable[[str], None] | None = None

    def route(self, topic_filter: str, handler: Handler) -> None:
        """Deliver messages matching ``topic_filter`` to ``handler`` (subscribes now if connected)."""
        self.routes.add(topic_filter, handler)
        if self._client is not None and self.connected.is_set():
            task = asyncio.get_running_loop().create_task(self._subscribe(self._client, [topic_filter]))
            task.add_done_callback(_log_failure)

    def on_connect(self, callback: ConnectCallback) -> None:
        """Run ``callback`` after every (re)connection and re-subscription."""
        self._on_connect.append(callback)

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False, expiry_s: int | None = None
    ) -> None:
        """Publish, waiting through a reconnection if the broker is away (``expiry_s``: ``Transport.publish``).

        A QoS 0 message on a live connection goes straight to the connection's send queue (the same queue,
        in the same order, as through aiomqtt), without waiting until it is on the socket: for QoS 0 there
        is nothing to confirm, and that wait (a future, a timeout and a wake-up per message) was a large part
        of a lockstep tick's cost. Anything else, and any failure, takes aiomqtt's confirmed path."""
        client = self._client
        if qos == 0 and expiry_s is None and client is not None and self.connected.is_set():
            # Onto the socket now, as far as it takes it, not when the event loop next polls for writing: a CPU-bound
            # step after the publish (a fleet's FCW after its ack) would hold the message back. paho queues the
            # packet without asking aiomqtt for a writer (which it would add on the loop's next turn, maybe after
            # the connection closed), then writes; only what the socket does not take yet gets the writer.
            pc = client._client  # paho's; aiomqtt would only wait after it
            registered = pc._registered_write
            pc._registered_write = True
            try:
                info = pc.publish(topic, payload, 0, retain)
            finally:
                pc._registered_write = registered
            if info.rc == paho.MQTT_ERR_SUCCESS:
                pc.loop_write()
                return
            if pc.want_write():  # (not sent: anything queued before it still needs the writer)
                pc._call_socket_register_write()
        while not self._stopping:  # (stopped: dropped; a retry loop on a dead connection spun, deaf to SIGTERM)
            await self.connected.wait()
            client, generation = self._client, self.connections
            if client is None:
                await asyncio.sleep(0.01)
                continue
            v5 = client._client.protocol == paho.MQTTv5
            try:
                await client.publish(
                    topic,
                    payload,
                    qos=qos,
                    retain=retain,
                    properties=expiry_properties(PacketTypes.PUBLISH, expiry_s) if v5 else None,
                    timeout=self.publish_timeout_s,
                )
                return
            except aiomqtt.MqttError as exc:
                # Either this connection is gone (the run loop notices and reconnects: wait for the next one;
                # never clear `connected` here, a newer connection may already have set it), or it is alive and
                # the broker was slow to confirm (a QoS 1 PUBACK after more than publish_timeout_s: a busy
                # broker, a pause): no reconnection comes then, and waiting for one hung the world's STOP for
                # good (found by an attack review). So after publish_timeout_s it publishes again on this one.
                log.debug("%s: publish to %s failed (%s); trying again", self.client_id, topic, exc)
                loop = asyncio.get_running_loop()
                until = loop.time() + self.publish_timeout_s
                await asyncio.sleep(0.02)  # (at least once: the loop must run between two tries)
                while self.connections == generation and not self._stopping and loop.time() < until:
                    await asyncio.sleep(0.02)

    def _on_paho_message(self, paho_client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        if message.retain and topics.parse(message.topic) is not None:
            # Only a run's control topic is ever retained (START, STOP, the world's Last Will). A retained
            # message the broker hands over on an actor's topic as we subscribe was left there by someone else,
            # perhaps for a run of the same id to come (a forged TickInput(0) that makes every later run's
            # follower stand still): never ours to act on. (A retained publish made while we are subscribed
            # reaches us as a live one and is judged as such.)
            self.ignored_retained += 1
            if self.on_retained is not None:
                self.on_retained(message.topic)
            message_ = "%s: ignored a retained message on %s (only control is retained)"
            who = self.client_id
            log_refusal(log, self.ignored_retained, who, "retained messages", message_, who, message.topic)
            return
        self.routes.dispatch(message.topic, bytes(message.payload))

    async def _subscribe(self, client: aiomqtt.Client, filters: list[str]) -> None:
        for topic_filter in filters:
            granted = await client.subscribe(topic_filter, qos=0)
            # A refusal (SUBACK 0x80 and up: a broker's limit on filters, an ACL) leaves this client deaf to
            # the filter; said, naming it, so that the actor the world then finds silent has its cause in the log
            # (a diff review: the embedded broker's bounds on filters would have refused them unnoticed).
            codes = [int(g.value) if isinstance(g, ReasonCode) else int(g) for g in granted]
            if any(c >= 0x80 for c in codes):
                log.error(
                    "%s: the broker %s refused the subscription to %s (SUBACK %s): nothing on it reaches this client",
                    self.client_id,
                    self.broker,
                    topic_filter,
                    ", ".join(f"0x{c:02x}" for c in codes),
                )

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Connect, subscribe, dispatch; reconnect with back-off until cancelled."""
        delay = self._reconnect_initial_s
        closes = 0  # MQTT 5 CONNECTs in a row that the broker closed without a CONNACK
        while not self._stopping:
            v5 = self.mqtt5
            try:
                # MQTT 5's Maximum Packet Size: the broker drops a bigger message for this connection instead of
                # sending it (``v2x.net.limits``; paho would read it whole, in this event loop, before any check).
                most = self._packet_limit()
                client = mqtt_client(
                    self.broker,
                    self.client_id,
                    mqtt5=v5,
                    max_packet_bytes=most,
                    max_queued_outgoing_messages=0,
                    will=self._will(v5),
                )
                _writer_only_while_open(client)
                async with connection(client):
                    no_delay(client)
                    # Messages go from paho's reader straight to the routes (every handler is synchronous),
                    # not through aiomqtt's queue and iterator (two tasks and a wait per message); the loop
                    # below still ends on a disconnection.
                    client._client.on_message = self._on_paho_message
                    # aiomqtt warns above 10 publishes in flight; a tick legitimately has one per actor
                    # (the world's inputs, the host's transmissions and acks), so that warning is noise.
                    client.pending_calls_threshold = PENDING_PUBLISH_WARNING
                    self._client = client
                    self.spoke_mqtt5 = self.spoke_mqtt5 or v5
                    await self._subscribe(client, self.routes.filters)
                    self.connections += 1
                    if self.connections > 1:
                        log.warning("%s: reconnected to %s", self.client_id, self.broker.url)
                    self.connected.set()
                    delay, closes = self._reconnect_initial_s, 0
                    # As tasks, not awaited here: a callback publishes (the world's START again, an agent's Hello),
                    # and a publish on a connection that dropped meanwhile waits for the next one, which only this
                    # loop makes once it reads on (awaited, the run hung for good: attack review 5)
                    for callback in self._on_connect:
                        task = asyncio.ensure_future(callback())
                        self._callbacks.add(task)
                        task.add_done_callback(self._callbacks.discard)
                        task.add_done_callback(_log_failure)
                    if ready is not None:
                        ready.set()
                    async for message in client.messages:
                        payload = message.payload
                        data = payload if isinstance(payload, bytes | bytearray) else str(payload or "").encode()
                        self.routes.dispatch(str(message.topic), bytes(data))
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                self._client = None
                self.last_error = str(exc)
                self.refused = refusal(exc)
                if self._stopping:
                    return
                closes = closes + 1 if v5 and isinstance(exc, ClosedBeforeConnack) else 0
                if v5 and not self.spoke_mqtt5 and not_mqtt5(exc, closes):
                    if not isinstance(exc, ClosedBeforeConnack) or await self._closes_only_mqtt5():
                        # A broker that speaks only MQTT 3.1.1 (RabbitMQ before 3.13, amqtt) refuses an MQTT 5
                        # CONNECT, or closes the connection without a CONNACK: from now on this connection speaks
                        # 3.1.1, and the broker may send it messages of any size it accepts.
                        fall_back_to_mqtt311(self.broker, self.client_id, exc)
                        continue
                    closes = 0  # it closes every connection: waited out below as a broker that is away
                if closes == 1 and not self.spoke_mqtt5:
                    continue  # once more at once: a broker that does not speak MQTT 5 closes it again
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

    def _packet_limit(self) -> int:
        """The connection's MQTT 5 Maximum Packet Size: the one given, else what its routes carry."""
        return self.max_packet_bytes or limits.packet_limit(self.routes.filters)

    async def _closes_only_mqtt5(self) -> bool:
        """After MQTT 5 CONNECTs the broker closed unanswered: whether it is MQTT 5 it refuses, not connections.
        An MQTT 3.1.1 CONNECT must be answered, and an MQTT 5 one right after it closed again. A broker that
        closes every new connection (a Mosquitto at ``max_connections``, filled by someone's idle connections)
        closes the 3.1.1 one too: it is waited out as a broker that is away, where taking it for one without
        MQTT 5 would have removed the Maximum Packet Size for the whole process (attack review 4)."""
        try:
            async with connection(mqtt_client(self.broker, self.client_id, mqtt5=False, max_packet_bytes=0)):
                pass
        except aiomqtt.MqttError:
            return False
        try:
            async with connection(
                mqtt_client(self.broker, self.client_id, mqtt5=True, max_packet_bytes=self._packet_limit())
            ):
                pass
        except ClosedBeforeConnack:
            return True
        except aiomqtt.MqttError:
            return False
        return False  # it took MQTT 5 this time: the connection tries it again

    def _will(self, v5: bool) -> aiomqtt.Will | None:
        if self.will is None:
            return None
        properties = expiry_properties(PacketTypes.WILLMESSAGE, self.will.expiry_s) if v5 else None
        return aiomqtt.Will(self.will.topic, self.will.payload, qos=1, retain=True, properties=properties)

    @property
    def mqtt5(self) -> bool:
        """MQTT 5, with a Maximum Packet Size the broker heeds, unless the broker does not speak it (``run``)."""
        return speaks_mqtt5(self.broker)

    def stop(self) -> None:
        """Stop reconnecting; ``run`` ends when the connection does (publishes waiting for it are dropped)."""
        self._stopping = True
        for task in self._callbacks:
            task.cancel()


# How long a command waits for a broker to answer before it says so (v2x run, check and conformance: exit 3).
BROKER_WAIT_S = 10.0
# How long a run goes on without its broker, reconnecting, before it gives up (exit 3): a restarted broker is
# back within seconds; one that is gone held `v2x check` silent for 16 minutes (adopter review, session 19).
BROKER_LOST_S = 60.0


async def broker_lost(transport: Transport, url: str, within_s: float | None = None) -> str:
    """Return (a line saying so) once ``transport`` has been without its broker for ``within_s`` seconds on
    end (default :data:`BROKER_LOST_S`); never while it reconnects in time."""
    within_s = BROKER_LOST_S if within_s is None else within_s
    connected = transport.connected
    while True:
        await connected.wait()
        while connected.is_set():
            await asyncio.sleep(1.0)
        try:
            await asyncio.wait_for(connected.wait(), within_s)
        except TimeoutError:
            why = getattr(transport, "last_error", "")
            return f"lost the MQTT broker at {url}: no connection for {within_s:.0f} s" + (f" ({why})" if why else "")


# The CONNACK codes of a login the broker refuses: MQTT 3.1.1's 4 and 5, MQTT 5's 0x86 and 0x87.
_LOGIN_REFUSED = (4, 5, 0x86, 0x87)


def refusal(exc: aiomqtt.MqttError) -> str | None:
    """What a failed connection attempt says when retrying cannot mend it: the broker's TLS certificate is not
    one the client trusts (another CA than the one given, or no CA given: the system's do not know a run's), or
    the broker refused the login (a wrong or missing user name or password). None for any other failure (a
    broker away, restarting or busy), which a connection waits out."""
    if isinstance(exc, MqttConnectError):
        code = getattr(exc.rc, "value", exc.rc)
        if code in _LOGIN_REFUSED:
            return f"the broker refused the login ({exc})"
    if "CERTIFICATE_VERIFY_FAILED" in str(exc):  # (aiomqtt keeps only the text of the ssl error)
        return (
            "the broker's TLS certificate is not signed by a CA this client trusts (the one given with its login, "
            f"else the system's), or does not name the host dialled ({exc})"
        )
    return None


def cannot_reach(url: str, within_s: float, why: str = "") -> str:
    """The line every command prints when the broker at ``url`` did not answer within ``within_s`` (``why``:
    the connection's last error, if any)."""
    return f"cannot reach the MQTT broker at {url} within {within_s:.0f} s" + (f" ({why})" if why else "")


async def unreachable(broker: BrokerAddress, within_s: float) -> str | None:
    """None if an MQTT connection to ``broker`` succeeds within ``within_s`` seconds (retrying, as a run
    would: a broker that is still starting counts), else why the last attempt failed."""
    tp = MqttTransport(broker, f"v2x-probe-{os.urandom(4).hex()}")
    ready = asyncio.Event()
    task = asyncio.create_task(tp.run(ready))
    try:
        await asyncio.wait_for(ready.wait(), within_s)
        return None
    except TimeoutError:
        return tp.last_error or "no answer"
    finally:
        tp.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await task


class LoopbackBroker:
    """An in-process message bus standing in for an MQTT broker: the ``LoopbackTransport`` clients attached
    to it get every message published on a topic they route, and the retained messages of the filters they
    route. No sockets, no threads; one event loop."""

    url = "loopback"

    def __init__(self) -> None:
        self.clients: list[LoopbackTransport] = []
        self.retained: dict[str, bytes] = {}

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Queue ``payload`` to every attached client that routes ``topic``; ``retain``: keep it for later
        subscribers (an empty payload clears the retained message instead)."""
        if retain:
            if payload:
                self.retained[topic] = payload
            else:
                self.retained.pop(topic, None)
        for client in self.clients:
            if client.routes.matches(topic):
                client.deliver(topic, payload)

    def retained_for(self, topic_filter: str) -> list[tuple[str, bytes]]:
        """The retained messages whose topics match ``topic_filter``, oldest first."""
        return [(t, p) for t, p in self.retained.items() if topic_matches(topic_filter, t)]


class LoopbackTransport:
    """A ``Transport`` over a ``LoopbackBroker``: messages are queued to the subscriber and dispatched from
    its ``run`` loop (never inside ``publish``), in the order they were published."""

    def __init__(self, broker: LoopbackBroker, client_id: str) -> None:
        self.broker = broker
        self.client_id = client_id
        self.routes = Routes(client_id)
        self.connected = asyncio.Event()
        self._on_connect: list[ConnectCallback] = []
        self._queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        self._stopping = False

    def route(self, topic_filter: str, handler: Handler) -> None:
        """Deliver messages matching ``topic_filter`` to ``handler`` (and, if connected, its retained ones)."""
        self.routes.add(topic_filter, handler)
        if self.connected.is_set():
            for topic, payload in self.broker.retained_for(topic_filter):
                self.deliver(topic, payload)

    def on_connect(self, callback: ConnectCallback) -> None:
        """Run ``callback`` once connected."""
        self._on_connect.append(callback)

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False, expiry_s: int | None = None
    ) -> None:
        """Publish through the bus (once connected); ``qos`` and ``expiry_s`` are moot: nothing is lost
        in-process, and nothing outlives the process."""
        await self.connected.wait()
        self.broker.publish(topic, payload, retain=retain)

    def deliver(self, topic: str, payload: bytes) -> None:
        """Queue a message for this client's handlers (called by the bus)."""
        self._queue.put_nowait((topic, payload))

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Attach to the bus, receive the retained messages of the routes, then dispatch until stopped."""
        if self._stopping:
            return
        self.broker.clients.append(self)
        try:
            seen: set[str] = set()
            for topic_filter in self.routes.filters:
                for topic, payload in self.broker.retained_for(topic_filter):
                    if topic not in seen:
                        seen.add(topic)
                        self.deliver(topic, payload)
            self.connected.set()
            for callback in self._on_connect:
                await callback()
            if ready is not None:
                ready.set()
            while not self._stopping:
                item = await self._queue.get()
                if item is None:
                    break
                self.routes.dispatch(*item)
        finally:
            self.connected.clear()
            self.broker.clients.remove(self)

    def stop(self) -> None:
        """Stop dispatching and detach from the bus (messages still queued are dropped, like a disconnect)."""
        self._stopping = True
        self._queue.put_nowait(None)


def mqtt_client(
    broker: BrokerAddress, client_id: str, *, mqtt5: bool, max_packet_bytes: int, **more: Any
) -> aiomqtt.Client:
    """A client of ``broker`` as the testbed's connections make them (10 s keep-alive, 5 s timeout): MQTT 5
    with a Maximum Packet Size of ``max_packet_bytes`` (``mqtt5``), else MQTT 3.1.1; ``more``: aiomqtt's
    other options (a Last Will, ...)."""
    client = aiomqtt.Client(
        broker.host,
        broker.port,
        username=broker.username,
        password=broker.password,
        tls_context=tls_context(broker),
        identifier=client_id,
        keepalive=10,
        timeout=5.0,
        protocol=aiomqtt.ProtocolVersion.V5 if mqtt5 else aiomqtt.ProtocolVersion.V311,
        properties=connect_properties(max_packet_bytes) if mqtt5 else None,
        logger=MQTT_LOG,
        **more,
    )
    _closed_before_connack_fails_at_once(client)
    _publish_properties_unread(client)
    return client


#: How long a connection whose making was cancelled may take to finish, to be closed (``enter``).
CANCELLED_CONNECT_WAIT_S = 2.0


async def enter(client: aiomqtt.Client) -> None:
    """Connect ``client`` (``await client.__aenter__()``), closing the connection if the caller is cancelled
    while it is being made. aiomqtt makes the TCP connection in an executor thread, which, once connected,
    schedules the client's housekeeping task on the event loop; cancelled meanwhile (Ctrl-C, a run that ends,
    ``asyncio.run`` cancelling what is left), the socket stayed open and that task could be made after the loop
    had cancelled its tasks, so that the loop closed with it pending and the socket's close at garbage collection
    raised "Event loop is closed" (an unraisable exception; upstream empicano/aiomqtt#377). Here the connect
    is let finish, at most ``CANCELLED_CONNECT_WAIT_S`` (a broker that does not answer is given up on as
    before), and closed before the cancellation goes on."""
    entering = asyncio.ensure_future(client.__aenter__())
    try:
        await asyncio.shield(entering)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception, asyncio.CancelledError):  # (a Ctrl-C meanwhile still goes through)
            await asyncio.wait_for(asyncio.shield(entering), CANCELLED_CONNECT_WAIT_S)
            await asyncio.wait_for(client.__aexit__(None, None, None), CANCELLED_CONNECT_WAIT_S)
        raise


@contextlib.asynccontextmanager
async def connection(client: aiomqtt.Client) -> AsyncIterator[aiomqtt.Client]:
    """``async with client``, connected by :func:`enter`."""
    await enter(client)
    try:
        yield client
    except BaseException as exc:
        await client.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    await client.__aexit__(None, None, None)


class ClosedBeforeConnack(aiomqtt.MqttError):
    """The broker closed the connection after the client's CONNECT, without a CONNACK (RabbitMQ 3.10 so answers
    an MQTT 5 CONNECT)."""


def _closed_before_connack_fails_at_once(client: aiomqtt.Client) -> None:
    """A connection the broker closes before its CONNACK fails at once with ``ClosedBeforeConnack``: aiomqtt
    ignores a disconnection before the CONNACK and waited for its timeout (5 s), which read the same as a broker
    too slow to answer, and the two call for different things (``not_mqtt5``)."""
    pc = client._client
    theirs = pc.on_disconnect

    def on_disconnect(*args: Any) -> None:
        if not client._connected.done():
            client._connected.set_exception(
                ClosedBeforeConnack("the broker closed the connection after the CONNECT, without a CONNACK")
            )
        if theirs is not None:
            theirs(*args)

    pc.on_disconnect = on_disconnect


def connect_properties(max_packet_bytes: int) -> Properties:
    """An MQTT 5 CONNECT's properties: Maximum Packet Size ``max_packet_bytes`` (``v2x.net.limits``)."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.MaximumPacketSize = max_packet_bytes
    return properties


def expiry_properties(packet_type: int, expiry_s: int | None) -> Properties | None:
    """MQTT 5 properties with a Message Expiry Interval of ``expiry_s`` (None: none) for a PUBLISH or a Will."""
    if expiry_s is None:
        return None
    properties = Properties(packet_type)  # type: ignore[no-untyped-call]
    properties.MessageExpiryInterval = expiry_s
    return properties


def speaks_mqtt5(broker: BrokerAddress) -> bool:
    """Whether to connect to ``broker`` with MQTT 5: it may speak it, and it has not refused it from this
    process (``fall_back_to_mqtt311``)."""
    return broker.mqtt5 and (broker.host, broker.port) not in MQTT311_BROKERS


def fall_back_to_mqtt311(broker: BrokerAddress, client_id: str, exc: aiomqtt.MqttError) -> None:
    """Note that ``broker`` did not accept an MQTT 5 connection (``exc``): later ones speak MQTT 3.1.1."""
    MQTT311_BROKERS.add((broker.host, broker.port))
    # (WARNING: it removes the Maximum Packet Size; a slow broker read as this once did so for good: an attack
    # review. The embedded broker, which speaks 3.1.1 only and bounds packets itself, is never tried with MQTT 5
    # by the run's own connections.)
    log.warning(
        "%s: broker %s did not accept MQTT 5 (%s); connecting with MQTT 3.1.1, without a maximum packet size "
        '(docs/SECURITY.md "Oversized messages": set the broker\'s own message size limit)',
        client_id,
        broker.url,
        exc,
    )


# How many MQTT 5 CONNECTs in a row the broker must close without a CONNACK before it is taken for one that does
# not speak MQTT 5 (a broker shutting down may close one).
CLOSES_TO_FALL_BACK = 2


def not_mqtt5(exc: aiomqtt.MqttError, closes: int = CLOSES_TO_FALL_BACK) -> bool:
    """Whether a failed MQTT 5 connection attempt says the broker does not speak MQTT 5: it refused the protocol
    version (reason 132, or 3.1.1's return code 1), or it closed the connection right after the CONNECT, without
    a CONNACK (``ClosedBeforeConnack``; RabbitMQ 3.10 does), ``closes`` times in a row (``CLOSES_TO_FALL_BACK``).
    Not a timeout: a broker that is slow to answer (paused, flooded) does speak MQTT 5, and taking it for one that
    does not removed the Maximum Packet Size for the whole process (an attack review); nor a broker that is down
    (connection refused: an OSError)."""
    if isinstance(exc, ClosedBeforeConnack):
        return closes >= CLOSES_TO_FALL_BACK
    if isinstance(exc, aiomqtt.MqttCodeError) and getattr(exc.rc, "value", exc.rc) in (1, 132):
        return True
    return "protocol" in str(exc).lower()


def no_delay(client: aiomqtt.Client) -> None:
    """Switch Nagle off (TCP_NODELAY) on ``client``'s connection, once it is connected: a small publish goes out
    at once instead of waiting for the broker's ACK of the one before (up to 40 ms on Linux, the delayed ACK). Every
    connection of the testbed's does this, the SDK's too (until session 24 the SDK's did not: an AD team's review
    found its stacks' lockstep runs several times slower than the built-in ones)."""
    sock = client._client.socket()  # paho's socket; aiomqtt exposes no setter for TCP options
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _writer_only_while_open(client: aiomqtt.Client) -> None:
    """aiomqtt's handler of paho's "register write", which adds the socket's writer on the event loop's next
    turn, but not for a socket that has closed in between (it is no longer paho's): aiomqtt added it anyway,
    and the loop logged "Exception in callback ... add_writer(7, ...)" (KeyError, then OSError: bad file
    descriptor) with a traceback at the end of some real-time runs, when the run's last publish left bytes
    unsent and the connection closed before the next turn (found by a newcomer review). A closed socket's
    number may also be reused by then, which would have put the writer on someone else's socket."""
    pc = client._client
    loop = asyncio.get_running_loop()

    def write() -> None:  # aiomqtt's: a failed write is a broken connection
        try:
            pc.loop_write()
        except Exception as exc:  # whatever paho raises ends this connection
            if not client._disconnected.done():
                client._disconnected.set_exception(exc)

    def register_write(_pc: paho.Client, _userdata: object, sock: paho.SocketLike) -> None:
        def add() -> None:
            if pc.socket() is sock and sock.fileno() >= 0:
                loop.add_writer(sock.fileno(), write)

        loop.call_soon_threadsafe(add)  # paho may call it from aiomqtt's connect thread

    pc.on_socket_register_write = register_write


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("subscription failed: %s", task.exception())
