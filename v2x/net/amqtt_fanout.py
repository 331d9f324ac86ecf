"""The embedded broker's delivery: an amqtt ``Broker`` that hands each message to its subscribers at once.

amqtt (0.12) puts every message it receives on one broadcast queue, and a loop starts a new task for each
message it takes off that queue, waiting on it together with its shutdown signal; the message is then
delivered to each subscriber in a task of its own. In a lockstep run, where every actor sends a TickInput's
answer and receives the next TickInput every tick, that queue, task and wait per message were a visible
share of the run's time. ``FanOutBroker`` does the same work when the message arrives, in the task that
read it: the same matching, the same checks, and still one delivery task per subscriber (a subscriber
that reads slowly holds up only its own deliveries). Messages from one client keep their order, as MQTT
requires. Two differences from amqtt, both as Mosquitto behaves: a client whose subscriptions overlap gets
each message once (at the highest of their QoS), not once per matching filter; and which filters match a
topic is found in a tree of the subscribed filters (``_FilterTree``, as Mosquitto keeps them), at a cost that
does not grow with the filters that do not match, and kept per topic while the subscriptions stay the same.

What a client may leave in the run's own process is bounded: its subscriptions (``MAX_FILTERS_PER_CLIENT``,
``MAX_FILTERS`` in all, each at most ``MAX_FILTER_BYTES`` and ``MAX_FILTER_LEVELS``; beyond them a filter gets
the SUBACK failure code 0x80), and a QoS 2 message is passed on when it arrives and only its packet id kept until
the PUBREL (``_Handler``; at most ``MAX_UNRELEASED`` of them, beyond which the client is disconnected).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from amqtt.adapters import ReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import AMQTTError
from amqtt.mqtt.constants import QOS_1, QOS_2
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.pubcomp import PubcompPacket
from amqtt.mqtt.pubrec import PubrecPacket
from amqtt.session import INCOMING, Session

from v2x.argtypes import SCENARIO_MAX_ACTORS
from v2x.logs import log_refusal
from v2x.net import limits, topics
from v2x.wire.protocol import MAX_CONTROL_BYTES, MAX_HELLO_BYTES

log = logging.getLogger("v2x.net.broker")
MATCH_CACHE_TOPICS = 100_000  # topics whose matching filters are kept (then the cache starts again)
CONNECT_WAIT_S = 10.0  # a new connection's CONNECT must come within this (MQTT leaves it to the server)
# Subscriptions. A run subscribes a few filters per connection, except the connection of the run's built-in agents:
# one per actor, plus one (a run's filter is at most 4 levels and about 145 bytes: v2x/{run}/{kind}/{actor}).
# one client's filters (beyond them: SUBACK failure 0x80): 5,000, what a scenario of the most actors needs
MAX_FILTERS_PER_CLIENT = SCENARIO_MAX_ACTORS + 1
MAX_FILTERS = 20_000  # the subscriptions of all clients together
MAX_FILTER_BYTES = 256  # one filter's length
MAX_FILTER_LEVELS = 8  # one filter's levels
# QoS 2 messages a client has sent and not released (PUBREL): only their packet ids are kept (``_Handler``)
MAX_UNRELEASED = 1_000
SUBACK_FAILURE = 0x80


class _FilterTree:
    """Subscribed filters by level, as Mosquitto keeps them: a topic's matching filters are found by walking its
    levels (with ``+`` and ``#`` beside each), so that filters that do not match cost nothing. amqtt matched every
    filter against each message: after each subscription change the broker's cache of matches started again, so
    that one client with 50,000 wildcard filters and another subscribing and unsubscribing one filter made every
    message cost 50,000 matches (an attack review: lockstep fcw 126 s instead of 3.2 s, real time FAIL).

    A node is a dict: level -> node, and ``None`` -> the filter that ends there. ``steps`` counts the nodes
    visited, for the tests."""

    def __init__(self) -> None:
        self.root: dict[str | None, Any] = {}
        self.steps = 0

    def add(self, topic_filter: str) -> None:
        node = self.root
        for level in topic_filter.split("/"):
            node = node.setdefault(level, {})
        node[None] = topic_filter

    def remove(self, topic_filter: str) -> None:
        path = [self.root]
        levels = topic_filter.split("/")
        for level in levels:
            child = path[-1].get(level)
            if child is None:
                return
            path.append(child)
        path[-1].pop(None, None)
        for depth in range(len(levels), 0, -1):  # nodes left with nothing below them go
            if path[depth]:
                break
            del path[depth - 1][levels[depth - 1]]

    def clear(self) -> None:
        self.root = {}

    def match(self, topic: str) -> list[str]:
        """The filters that match ``topic``, as amqtt's ``Broker._matches`` says: ``+`` is one level, ``#`` the
        rest (the parent level too: ``a/#`` matches ``a``), and a topic starting with ``$`` matches no filter that
        starts with a wildcard."""
        levels = topic.split("/")
        found: list[str] = []
        dollar = topic.startswith("$")
        todo = [(self.root, 0)]
        steps = 0
        while todo:
            node, depth = todo.pop()
            steps += 1
            first = depth == 0 and dollar
            rest = node.get("#")
            if rest is not None and None in rest and not first:
                found.append(rest[None])
            if depth == len(levels):
                if None in node:
                    found.append(node[None])
                continue
            level = levels[depth]
            child = node.get(level) if level not in ("+", "#") else None  # (a Will's topic may hold them)
            if child is not None:
                todo.append((child, depth + 1))
            child = node.get("+")
            if child is not None and not first:
                todo.append((child, depth + 1))
        self.steps += steps
        return found


class _Snapshots(dict[str, Any]):
    """amqtt's table of subscriptions, iterated over a copy of its keys and items: amqtt loops over it with
    an ``await`` inside (the retained messages for a new connection), and a subscription made meanwhile
    raised "dictionary changed size during iteration" and dropped the connecting client. ``version`` counts
    the changes of its filters (amqtt adds a filter, deletes one, or clears it), for the cache of which filters
    match a topic; ``tree`` holds its filters by level (``_FilterTree``)."""

    version = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tree = _FilterTree()
        for key in self:
            self.tree.add(key)

    def __iter__(self) -> Iterator[str]:
        return iter(list(super().keys()))

    def __repr__(self) -> str:
        # amqtt logs repr(table) at DEBUG after every SUBSCRIBE, made whether logged or not: the whole table (with
        # every session's repr) for each subscription a client makes
        return f"<{len(self)} subscribed filters>"

    def items(self) -> Any:
        return list(super().items())

    def __setitem__(self, key: str, value: Any) -> None:
        self.version += 1
        if key not in self:
            self.tree.add(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.version += 1
        super().__delitem__(key)
        self.tree.remove(key)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            self.version += 1
            self.tree.remove(key)
        return super().pop(key, *default)

    def clear(self) -> None:
        self.version += 1
        super().clear()
        self.tree.clear()


class FanOutBroker(Broker):  # type: ignore[misc]  # amqtt has no type hints
    """An amqtt broker whose ``_broadcast_message`` delivers now instead of queueing (see the module), whose
    subscription table survives a change while it is iterated (``_Snapshots``), and that retains only on a
    run's control and claim topics (``retain_message``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._subscriptions = _Snapshots(self._subscriptions)  # type: ignore[has-type]
        self._matching: dict[str | None, list[str]] = {}  # topic -> the filters that match it, at:
        self._matching_version = -1  # the subscription table's version they were found for
        self._client_filters: dict[str, set[str]] = {}  # client id -> its subscribed filters
        self.filters = 0  # the subscriptions of all clients together (what ``MAX_FILTERS`` bounds)
        self.oversized = 0  # packets refused for their size (their senders disconnected), ``_BoundedReader``
        self.not_retained = 0  # retained messages not kept: not on a control or claim topic, or over MAX_RETAINED_BYTES
        self.refused_filters = 0  # subscriptions refused (SUBACK 0x80) for the bounds on filters
        self.unreleased_over = 0  # clients disconnected for more than MAX_UNRELEASED unreleased QoS 2 messages

    def unreleased(self) -> int:
        """The QoS 2 messages clients have sent and not yet released, together (only their packet ids are kept)."""
        return sum(len(_unreleased(session)) for session, _ in list(self._sessions.values()))

    def _filters_for(self, topic: str | None) -> list[str]:
        """The subscribed filters that match ``topic``: from the tree of filters (``_FilterTree``), kept per topic
        while the filters stay the same (the run's topics are few and the filters change only as clients come
        and go). amqtt matched every filter against every message, so that clients subscribing many wildcard
        filters made each message cost that many matches in the run's own process (an attack review); the cache
        alone was undone by a client subscribing and unsubscribing in a loop (another)."""
        table = self._subscriptions
        if self._matching_version != table.version:
            self._matching.clear()
            self._matching_version = table.version
        found = self._matching.get(topic)
        if found is None:
            found = table.tree.match(topic) if topic is not None else []
            if len(self._matching) >= MATCH_CACHE_TOPICS:
                self._matching.clear()
            self._matching[topic] = found
        return found

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        """amqtt's handler of a new connection, with a connection the client breaks off counted as closed: a
        client refused at log-in that resets its TLS connection, or sends more after closing it, made amqtt's
        ``writer.close()`` raise ``ConnectionResetError`` or ``ssl.SSLError`` (both ``OSError``) out of this
        callback, which asyncio logged as an unhandled exception with a traceback in the middle of the run's
        output (amqtt has let the connection go by then). Likewise for a connection still open when the broker
        shuts down.

        Every packet's size is checked before its body is read (``_BoundedReader``)."""
        try:
            # (amqtt's stream_connected, with the reader bounded: ``_BoundedReader``)
            await self._client_connected(
                listener_name, _BoundedReader(reader, writer, self), StreamWriterAdapter(writer)
            )
        except OSError as exc:
            log.info("embedded broker: a client's connection broke off: %r", exc)
        except asyncio.CancelledError:
            # The broker shuts down with this connection still open (a client that never sent CONNECT, say):
            # ended here, quietly. A cancelled task here made asyncio's stream callback log an ERROR with a
            # 38-line traceback per such connection at the end of the run (an attack review left 5, then
            # 9,752 of them). Nothing waits on this task but that callback.
            log.debug("embedded broker: a connection still open at shutdown was closed")

    async def _initialize_client_session(
        self, reader: Any, writer: Any, remote_address: str, remote_port: int
    ) -> tuple[Any, Session]:
        """amqtt's wait for a new connection's CONNECT, bounded by ``CONNECT_WAIT_S``: amqtt waited for ever, so
        that connections that never say CONNECT (an attack review opened 9,752) held a file descriptor each
        until the process ran out of them and no agent could reconnect."""
        try:
            async with asyncio.timeout(CONNECT_WAIT_S):
                found: tuple[Any, Session] = await super()._initialize_client_session(
                    reader, writer, remote_address, remote_port
                )
                handler = found[0]
                if type(handler) is BrokerProtocolHandler:  # (amqtt makes it; it has no state of its own to add)
                    handler.__class__ = _Handler
                    handler.v2x_broker = self
                return found
        except TimeoutError:
            log.debug("embedded broker: no CONNECT from %s:%s within %g s", remote_address, remote_port, CONNECT_WAIT_S)
            with contextlib.suppress(Exception):
                await writer.close()
            raise AMQTTError(f"no CONNECT within {CONNECT_WAIT_S:g} s") from None

    async def add_subscription(self, subscription: tuple[str, int], session: Session) -> int:
        """amqtt's subscription, within the bounds on filters: a filter longer than ``MAX_FILTER_BYTES`` or of more
        than ``MAX_FILTER_LEVELS`` levels, or beyond ``MAX_FILTERS_PER_CLIENT`` for its client or ``MAX_FILTERS`` in
        all, gets the SUBACK failure code 0x80 (the client stays connected). amqtt took any number: one connection
        subscribed 1,000,000 filters and failed a real-time run (an attack review)."""
        topic_filter = subscription[0]
        client = str(session.client_id)
        mine = self._client_filters.get(client)
        if mine is not None and topic_filter in mine:  # (subscribed again: nothing is added; amqtt keeps the first QoS)
            code: int = await super().add_subscription(subscription, session)
            return code
        why = ""
        if len(topic_filter.encode()) > MAX_FILTER_BYTES or topic_filter.count("/") >= MAX_FILTER_LEVELS:
            why = f"longer than {MAX_FILTER_BYTES} bytes or {MAX_FILTER_LEVELS} levels"
        elif mine is not None and len(mine) >= MAX_FILTERS_PER_CLIENT:
            why = f"its client has {MAX_FILTERS_PER_CLIENT} filters"
        elif self.filters >= MAX_FILTERS:
            why = f"the broker has {MAX_FILTERS} subscriptions"
        if why:
            self.refused_filters += 1
            log_refusal(
                log, self.refused_filters, "embedded broker", "subscriptions refused",
                "embedded broker: refused a subscription of %s to %r: %s",
                client[:100], topic_filter[:100], why,
            )  # fmt: skip
            return SUBACK_FAILURE
        code = await super().add_subscription(subscription, session)
        if any(s.client_id == session.client_id for s, _ in self._subscriptions.get(topic_filter, ())):
            self._client_filters.setdefault(client, set()).add(topic_filter)
            self.filters += 1
        return code

    def _del_subscription(self, a_filter: str, session: Session) -> int:
        """amqtt's unsubscription, which also drops a filter nobody subscribes any more (amqtt kept it, an empty
        list in the table: a client subscribing and unsubscribing new filters grew the table for ever)."""
        deleted: int = super()._del_subscription(a_filter, session)
        mine = self._client_filters.get(str(session.client_id))
        if mine is not None and a_filter in mine:
            mine.discard(a_filter)
            self.filters -= 1
            if not mine:
                del self._client_filters[str(session.client_id)]
        if a_filter in self._subscriptions and not self._subscriptions[a_filter]:
            del self._subscriptions[a_filter]
        return deleted

    async def _del_all_subscriptions(self, session: Session) -> None:
        """A client's subscriptions, all deleted (amqtt went through every client's filters to find them)."""
        for topic_filter in list(self._client_filters.get(str(session.client_id), ())):
            self._del_subscription(topic_filter, session)

    async def _handle_message_delivery(self, client_session: Session, handler: Any, wait_deliver: Any) -> bool:
        """amqtt's, and then the message lets go of its payload (each delivery and the retained message have their
        own reference): amqtt's loop keeps the last message a client sent until it sends another (as ``_Handler``'s
        reading loop kept the packet)."""
        try:
            passed: bool = await super()._handle_message_delivery(client_session, handler, wait_deliver)
            return passed
        finally:
            message = wait_deliver.result() if wait_deliver.done() and not wait_deliver.cancelled() else None
            if message is not None:
                message.data = b""

    async def retain_message(
        self, source_session: Session | None, topic_name: str | None, data: bytes | bytearray | None, qos: Any = None
    ) -> None:
        """Keep a retained message only on a run's control and claim topics, the only ones the testbed retains
        (START, STOP, the world's Last Will; ``World.claim``); anywhere else nothing is kept (and what is there is
        cleared as MQTT says): every retained message lives in the run's own process (attack review 5). A
        non-empty one elsewhere is still delivered to the subscribers of the moment, as any message."""
        kept = sum(len(m.data or b"") for t, m in self._retained_messages.items() if t != topic_name)
        if data and (
            topic_name is None
            or topics.kind_of(topic_name) not in ("control", "claim")
            or kept + len(data) > MAX_RETAINED_BYTES  # (100 of 4 MiB on other run ids' control topics: 500 MB)
        ):
            self.not_retained += 1
            log_refusal(
                log, self.not_retained, "embedded broker", "retained messages not kept",
                "embedded broker: a retained message on %s, not a run's control or claim topic or over the broker's "
                f"{MAX_RETAINED_BYTES} bytes of them: not kept",
                str(topic_name)[:200],
            )  # fmt: skip
            return
        await super().retain_message(source_session, topic_name, data, qos)

    async def _broadcast_message(
        self,
        session: Session | None,
        topic: str | None,
        data: bytes | bytearray | None,
        force_qos: int | None = None,
    ) -> None:
        running = self._tasks_queue
        while running and running[0].done():  # what amqtt's broadcast loop does before each message
            task = running.popleft()
            if not task.cancelled() and task.exception() is not None:
                log.warning("embedded broker: a delivery failed: %r", task.exception())
        broadcast: dict[str, Any] = {"session": session, "topic": topic, "data": data}
        if force_qos is not None:
            broadcast["qos"] = force_qos
        # Each subscribed client once, at the highest QoS of its matching subscriptions, as Mosquitto does
        # (amqtt delivered once per matching filter: a client subscribed to ten overlapping wildcards got every
        # message ten times, ten delivery tasks each, in the run's own process; an attack review). A snapshot:
        # a subscription made while a check below waits must not break this loop.
        targets: dict[int, tuple[Session, int]] = {}
        for topic_filter in self._filters_for(topic):
            for target, sub_qos in list(self._subscriptions.get(topic_filter, ())):
                qos = sub_qos if force_qos is None else force_qos
                seen = targets.get(id(target))
                if seen is None or qos > seen[1]:
                    targets[id(target)] = (target, qos)
        for target, qos in targets.values():
            if not await self._topic_filtering(target, topic=topic, action=Action.RECEIVE):
                continue
            connected = target.transitions.state == "connected"
            if not connected and not target.clean_session and qos in (QOS_1, QOS_2) and not target.is_anonymous:
                await self._retain_broadcast_message(broadcast, qos, target)
                continue
            if not connected:
                continue
            handler = self._get_handler(target)
            if handler:
                running.append(asyncio.ensure_future(handler.mqtt_publish(topic, data, qos, retain=False)))


def _unreleased(session: Session) -> set[int]:
    """The packet ids of the QoS 2 messages ``session``'s client has sent and not yet released (PUBREL)."""
    ids: set[int] | None = getattr(session, "v2x_unreleased", None)
    if ids is None:
        ids = set()
        session.v2x_unreleased = ids
    return ids


class _Handler(BrokerProtocolHandler):  # type: ignore[misc]  # amqtt has no type hints
    """amqtt's handler of a client's packets, taking a QoS 2 message as MQTT's "method B" does: passed on when it
    arrives, only its packet id kept until the client's PUBREL (a PUBLISH again with that id before it is not
    passed on again). amqtt kept the whole message until the PUBREL, for ever: a client that never sent one kept
    16 messages of 64 MiB on a fleet's topic in the run's own process, +1 GB (an attack review). At most
    ``MAX_UNRELEASED`` ids per client: one more and it is disconnected."""

    v2x_broker: FanOutBroker | None = None

    async def _handle_qos2_message_flow(self, app_message: Any) -> None:
        session = self.session
        if app_message.direction != INCOMING or session is None or app_message.packet_id is None:
            await super()._handle_qos2_message_flow(app_message)
            return
        unreleased = _unreleased(session)
        packet_id = app_message.packet_id
        if packet_id not in unreleased:
            if len(unreleased) >= MAX_UNRELEASED:
                broker = self.v2x_broker
                count = 1
                if broker is not None:
                    broker.unreleased_over += 1
                    count = broker.unreleased_over
                log_refusal(
                    log, count, "embedded broker", "clients with too many unreleased QoS 2 messages",
                    "embedded broker: %s sent more than %d QoS 2 messages without releasing them (PUBREL): "
                    "disconnected",
                    str(session.client_id)[:100], MAX_UNRELEASED,
                )  # fmt: skip
                await self.handle_connection_closed()
                return
            unreleased.add(packet_id)
            await session.delivered_message_queue.put(app_message)
        await self._send_packet(PubrecPacket.build(packet_id))

    async def handle_publish(self, publish_packet: Any) -> None:
        """amqtt's, and then the packet lets go of its payload (the message taken on has its own reference): amqtt's
        loop that reads the connection keeps the last packet it read until the next one comes, so that each idle
        connection kept the last message it sent, 64 MiB on a fleet's topic, in the run's own process."""
        try:
            await super().handle_publish(publish_packet)
        finally:
            if publish_packet.payload is not None:
                publish_packet.payload.data = b""

    async def handle_disconnect(self, disconnect: Any) -> None:
        session = self.session
        if session is not None and session.clean_session:  # (a clean session's state ends with its connection)
            _unreleased(session).clear()
        await super().handle_disconnect(disconnect)

    async def handle_pubrel(self, pubrel: Any) -> None:
        if self.session is not None:
            _unreleased(self.session).discard(pubrel.packet_id)
        await self._send_packet(PubcompPacket.build(pubrel.packet_id))


PUBLISH, CONNECT = 3, 1  # MQTT packet types
# All retained messages the embedded broker keeps, together (a run's START is a few kB; attack review 6)
MAX_RETAINED_BYTES = 64 * 1024 * 1024
CONNACK_BAD_VERSION = bytes((0x20, 2, 0, 1))  # CONNACK: unacceptable protocol version (MQTT 3.1.1)


class _BoundedReader(ReaderAdapter):  # type: ignore[misc]  # amqtt has no type hints
    """A connection's bytes as amqtt reads them, with every packet's size checked when its fixed header is read
    and, for a PUBLISH, its topic: a PUBLISH bigger than its topic carries (``limits.payload_limit`` plus
    ``limits.PACKET_HEADROOM``) or any other packet bigger than a START is refused before its body is read. amqtt
    read every packet whole (up to MQTT's 256 MB) and then delivered it; in the run's own process that stalled
    the run for seconds (an attack review). A refused packet ends the connection: this reader gives amqtt no
    more bytes (amqtt then closes it as a client that went away), and the broker counts it (``oversized``)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, broker: FanOutBroker) -> None:
        self._reader = reader
        self._writer = writer
        self._broker = broker
        self._head = bytearray()  # the fixed header read so far
        self._left = 0  # bytes of the current packet's body not yet handed to amqtt (0: a fixed header is next)
        self._type = 0
        self._checked = False
        self._pending = b""  # body bytes read ahead to learn a PUBLISH's topic
        self._closed = False

    async def read(self, n: int = -1) -> bytes:
        if self._closed:
            return b""
        if n < 0:
            return await self._reader.read(n)
        try:
            if self._left == 0:  # the fixed header: amqtt reads it a byte at a time
                data = await self._reader.readexactly(n)
                self._header(data)
                return data
            if not self._checked and not await self._check():
                return b""
            data = self._pending[:n]
            self._pending = self._pending[n:]
            if len(data) < n:
                data += await self._reader.readexactly(n - len(data))
        except asyncio.IncompleteReadError as exc:
            return exc.partial
        self._left -= len(data)
        if self._left <= 0:
            self._left, self._checked = 0, False
        return data

    def feed_eof(self) -> None:
        self._reader.feed_eof()

    def _header(self, data: bytes) -> None:
        self._head += data
        if len(self._head) < 2 or self._head[-1] & 0x80:
            if len(self._head) > 5:  # (amqtt refuses a remaining length of more than 4 bytes itself)
                self._head.clear()
            return
        self._type = self._head[0] >> 4
        self._left = sum((b & 0x7F) << (7 * k) for k, b in enumerate(self._head[1:]))
        self._head.clear()
        self._checked = self._left == 0

    async def _check(self) -> bool:
        """Whether the packet now starting may be read; reads a PUBLISH's topic ahead to know its limit."""
        self._checked = True
        topic = ""
        limit = MAX_CONTROL_BYTES
        if self._type == PUBLISH and self._left >= 2:
            size = await self._reader.readexactly(2)
            length = int.from_bytes(size, "big")
            name = await self._reader.readexactly(min(length, self._left - 2))
            self._pending = size + name
            topic = name.decode("utf-8", "replace")
            # a topic that is none of a run's: a Hello's size (it took 64 MiB, and the broker kept every retained
            # one in the run's own process: 16 of 32 MiB made it 600 MB, attack review 5)
            limit = limits.payload_limit(topic) if topics.kind_of(topic) is not None else MAX_HELLO_BYTES
        elif self._type == CONNECT and self._left >= 7:
            self._pending = await self._reader.readexactly(7)  # protocol name ("MQTT") and level
            if self._pending[6] not in (3, 4):  # MQTT 5 (or anything else): refused at once, as amqtt would
                # amqtt answers an MQTT 5 CONNECT only once it has read it as a 3.1.1 one; one with properties
                # (a Maximum Packet Size) it misread and waited for bytes that never came, and the client gave up
                # after its timeout (5 s for ours) before connecting with MQTT 3.1.1.
                self._closed = True
                self._writer.write(CONNACK_BAD_VERSION)
                self._writer.close()
                return False
        if self._left <= limit + limits.PACKET_HEADROOM:
            return True
        self._closed = True
        self._broker.oversized += 1
        log_refusal(
            log,
            self._broker.oversized,
            "embedded broker",
            "oversized packets",
            "embedded broker: refused a %s of %d bytes%s (at most %d): the sender is disconnected",
            "PUBLISH" if self._type == PUBLISH else f"packet of type {self._type}",
            self._left,
            f" on {topic!r}" if topic else "",
            limit + limits.PACKET_HEADROOM,
        )
        self._reader.feed_eof()
        self._writer.transport.abort()  # (the rest of the packet is never read: the sender is cut off at once)
        return False
