"""What a client may leave in the embedded broker, which runs in the run's own process (attack review 9):
unreleased QoS 2 messages (amqtt kept each until its PUBREL, for ever: 16 of 64 MiB on a fleet's topic made
the run +1 GB) and subscriptions (one client with 50,000 wildcard filters and another subscribing and
unsubscribing one made every message cost 50,000 matches: lockstep fcw 126 s instead of 3.2 s). See
``v2x.net.amqtt_fanout`` and docs/SECURITY.md "Loading the embedded broker"."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import pytest
from amqtt.broker import Broker

from v2x.net import amqtt_fanout, topics
from v2x.net.amqtt_fanout import FanOutBroker, _FilterTree
from v2x.net.broker import BrokerAddress, free_port
from v2x.run.runner import run_variant
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR

FCW = load_scenario(SCENARIO_DIR / "fcw.yaml")


@contextlib.asynccontextmanager
async def _broker() -> AsyncIterator[tuple[FanOutBroker, BrokerAddress]]:
    """The embedded broker as ``v2x.net.broker.embedded_broker`` makes it, with the broker itself at hand."""
    port = free_port("127.0.0.1")
    broker = FanOutBroker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}", "max_connections": 0}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
    )
    await broker.start()
    try:
        yield broker, BrokerAddress("127.0.0.1", port, mqtt5=False)
    finally:
        await broker.shutdown()


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(b: bytes) -> bytes:
    return len(b).to_bytes(2, "big") + b


async def _raw_client(address: BrokerAddress) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that speaks MQTT 3.1.1 by hand (keep-alive 0), as the review's script did."""
    reader, writer = await asyncio.open_connection(address.host, address.port)
    body = _str(b"MQTT") + bytes([4, 0x02]) + (0).to_bytes(2, "big") + _str(f"hoard-{uuid.uuid4().hex[:8]}".encode())
    writer.write(bytes([0x10]) + _remaining_length(len(body)) + body)
    await writer.drain()
    assert (await reader.readexactly(4))[3] == 0  # CONNACK accepted
    return reader, writer


def _qos2_publish(topic: str, packet_id: int, payload: bytes) -> bytes:
    head = _str(topic.encode()) + packet_id.to_bytes(2, "big")
    return bytes([0x34]) + _remaining_length(len(head) + len(payload)) + head + payload


async def _messages(client: aiomqtt.Client, seconds: float) -> list[aiomqtt.Message]:
    got: list[aiomqtt.Message] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            async for message in client.messages:
                got.append(message)
    return got


def test_the_filter_tree_matches_as_amqtt_does() -> None:
    """The tree finds exactly the filters amqtt's own match (``Broker._matches``) finds, ``+``, ``#``, empty levels
    and ``$`` topics included, also after filters are removed; and it leaves no node behind them."""

    class _Quiet:
        class logger:
            @staticmethod
            def debug(*_: Any) -> None:
                pass

    rng = random.Random(7)
    levels = ["a", "b", "", "$x", "v2x"]
    for _ in range(200):
        tree = _FilterTree()
        filters = set()
        for _ in range(30):
            parts = [rng.choice([*levels, "+", "+"]) for _ in range(rng.randint(1, 4))]
            filters.add("/".join(parts + (["#"] if rng.random() < 0.3 else [])))
        for f in filters:
            tree.add(f)
        gone = set(rng.sample(sorted(filters), 10))
        for f in gone:
            tree.remove(f)
        filters -= gone
        for _ in range(30):
            topic = "/".join(rng.choice(levels) for _ in range(rng.randint(1, 4)))
            expected = sorted(f for f in filters if Broker._matches(_Quiet(), topic, f))
            assert sorted(tree.match(topic)) == expected, topic
        for f in filters:
            tree.remove(f)
        assert tree.root == {}


@pytest.mark.broker
async def test_unreleased_qos2_messages_are_passed_on_and_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that sends QoS 2 messages and never releases them (PUBREL) leaves only their packet ids in the
    broker: each message reaches its subscriber when it arrives, once (a PUBLISH again with the same id is not
    passed on again), and one more than MAX_UNRELEASED ends the connection. A client that completes the flow
    (aiomqtt, PUBREL on PUBREC) publishes at QoS 2 as before and leaves nothing."""
    monkeypatch.setattr(amqtt_fanout, "MAX_UNRELEASED", 8)
    topic = topics.fleet_input("other-run", "f0")
    payload = bytes(1024 * 1024)
    async with _broker() as (broker, address), aiomqtt.Client(address.host, address.port, identifier="sub") as sub:
        await sub.subscribe(topic, qos=2)
        reader, writer = await _raw_client(address)
        for packet_id in range(1, 9):
            writer.write(_qos2_publish(topic, packet_id, payload))
        writer.write(_qos2_publish(topic, 8, payload))  # (a resend of the last one, before its PUBREL)
        await writer.drain()
        async with asyncio.timeout(5):
            pubrecs = await reader.readexactly(9 * 4)
        assert pubrecs == b"".join(bytes([0x50, 2, 0, k]) for k in (*range(1, 9), 8))
        got = await _messages(sub, 1.0)
        assert len(got) == 8 and all(len(bytes(m.payload)) == len(payload) for m in got)
        held = [s for s, _ in broker._sessions.values() if str(s.client_id).startswith("hoard-")]
        assert len(held) == 1 and not held[0].inflight_in  # no message kept (amqtt kept all 8: 8 MiB)
        assert broker.unreleased() == 8
        writer.write(_qos2_publish(topic, 9, payload))  # one more: disconnected
        await writer.drain()
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()
        assert broker.unreleased_over == 1 and broker.unreleased() == 0
        async with aiomqtt.Client(address.host, address.port, identifier="pub") as pub:
            for k in range(20):  # more than MAX_UNRELEASED, each released
                await pub.publish(topic, f"{k}".encode(), qos=2)
            assert broker.unreleased() == 0
        got = await _messages(sub, 1.0)
        assert [m.payload for m in got] == [f"{k}".encode() for k in range(20)]


@pytest.mark.broker
@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_an_idle_connection_keeps_nothing_of_the_last_message_it_sent(qos: int) -> None:
    """amqtt kept the last message each connection sent (its reading loop's last packet, its delivery loop's
    last message) until the next one: 8 idle connections after one 2 MiB message each held 16 MiB (of 64 MiB
    each on a fleet's topic, any run id). What the broker's process holds is measured by tracemalloc."""
    size, n = 2 * 1024 * 1024, 8
    async with _broker() as (_, address):
        tracemalloc.start()
        try:
            connections = []
            for _ in range(n):
                _, writer = await _raw_client(address)
                head = _str(topics.fleet_input("other-run", "f0").encode()) + (b"\x00\x01" if qos else b"")
                writer.write(bytes([0x30 | qos << 1]) + _remaining_length(len(head) + size) + head + bytes(size))
                await writer.drain()
                connections.append(writer)
            await asyncio.sleep(1.0)
            gc.collect()
            held, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        for writer in connections:
            writer.close()
    assert peak >= size  # (each was read)
    assert held < size, held  # (before: n * size)


@pytest.mark.broker
async def test_filters_beyond_the_bounds_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client's filters beyond MAX_FILTERS_PER_CLIENT, any beyond MAX_FILTERS in all, and a filter longer than
    MAX_FILTER_BYTES or MAX_FILTER_LEVELS get the SUBACK failure code; unsubscribing frees them, and a filter
    nobody subscribes any more leaves the broker's table (amqtt kept it, an empty entry)."""
    monkeypatch.setattr(amqtt_fanout, "MAX_FILTERS_PER_CLIENT", 50)
    monkeypatch.setattr(amqtt_fanout, "MAX_FILTERS", 80)
    async with _broker() as (broker, address):
        async with (
            aiomqtt.Client(address.host, address.port, identifier="a") as a,
            aiomqtt.Client(address.host, address.port, identifier="b") as b,
        ):
            codes = await a.subscribe([(f"zz/{k}/+/x", 0) for k in range(60)])
            assert list(codes) == [0] * 50 + [0x80] * 10
            assert list(await a.subscribe("zz/0/+/x")) == [0]  # (subscribed again)
            codes = await b.subscribe([(f"yy/{k}", 0) for k in range(40)])
            assert list(codes) == [0] * 30 + [0x80] * 10
            assert broker.filters == 80 and broker.refused_filters == 20
            await a.unsubscribe([f"zz/{k}/+/x" for k in range(10)])
            codes = await b.subscribe([("yy/more", 0), ("x/" + "y" * 300, 0), ("/".join("l" * 9), 0)])
            assert list(codes) == [0, 0x80, 0x80]
            assert "zz/0/+/x" not in broker._subscriptions
        async with asyncio.timeout(5):  # (amqtt drops a closed clean session's subscriptions within a second)
            while broker.filters:
                await asyncio.sleep(0.1)
        assert broker._subscriptions == {} and broker._subscriptions.tree.root == {}


@pytest.mark.broker
async def test_a_transport_says_which_subscription_the_broker_refused(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A diff review: the run's own connections ignored the SUBACK, so a filter refused by the bounds above
    left an agent deaf with nothing in the log; the transport now names it."""
    from v2x.net.transport import MqttTransport

    monkeypatch.setattr(amqtt_fanout, "MAX_FILTERS_PER_CLIENT", 2)
    caplog.set_level("ERROR", logger="v2x.net.transport")
    async with _broker() as (_, address):
        transport = MqttTransport(address, "agents-test")
        async with aiomqtt.Client(address.host, address.port, identifier="agents-test") as client:
            await transport._subscribe(client, ["v2x/r/in/a", "v2x/r/in/b", "v2x/r/in/c"])
    refused = [r.getMessage() for r in caplog.records if "refused the subscription" in r.getMessage()]
    assert len(refused) == 1 and "v2x/r/in/c (SUBACK 0x80)" in refused[0], refused


@pytest.mark.broker
async def test_subscription_churn_does_not_make_a_message_match_every_filter() -> None:
    """One client with 2,000 wildcard filters and another subscribing and unsubscribing a filter between the
    messages of a third: each message visits a handful of the tree's nodes, not the 2,000 filters (amqtt's
    cache of matches started again at each change, and then matched every filter)."""
    async with _broker() as (broker, address):
        topic = topics.tick_input("r1", "lead")
        async with (
            aiomqtt.Client(address.host, address.port, identifier="many") as many,
            aiomqtt.Client(address.host, address.port, identifier="churn") as churn,
            aiomqtt.Client(address.host, address.port, identifier="sub") as sub,
            aiomqtt.Client(address.host, address.port, identifier="pub") as pub,
        ):
            await many.subscribe([(f"zz/{k}/+/x", 0) for k in range(2000)])
            await sub.subscribe(topic)
            tree = broker._subscriptions.tree
            version, steps = broker._subscriptions.version, tree.steps
            for k in range(100):
                await churn.subscribe("churn/x")
                await churn.unsubscribe("churn/x")
                await pub.publish(topic, f"{k}".encode(), qos=1)
            got = await _messages(sub, 1.0)
            assert len(got) == 100
            assert broker._subscriptions.version - version >= 200  # (the cache did start again every time)
            assert tree.steps - steps <= 100 * 10, tree.steps - steps  # (before: >= 2,000 matches a message)
            assert "churn/x" not in broker._subscriptions
            # (amqtt logs repr(table) after every SUBSCRIBE, made whether logged or not: 2,000 filters each time)
            assert len(repr(broker._subscriptions)) < 100


@pytest.mark.broker
async def test_a_run_beside_a_qos2_hoarder_and_a_client_at_its_filter_bound_keeps_its_outcome(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """fcw beside a client holding unreleased QoS 2 messages of 1 MiB on a fleet's topic until it is
    disconnected, and one subscribed to its bound of wildcard filters (one more refused): the run's outcome and
    counts are the clean run's."""
    monkeypatch.setattr(amqtt_fanout, "MAX_UNRELEASED", 16)
    monkeypatch.setattr(amqtt_fanout, "MAX_FILTERS_PER_CLIENT", 2000)
    async with _broker() as (broker, address):
        clean = await run_variant(FCW, "v2x", seed=3, broker=address, run_id="load-clean")
        async with aiomqtt.Client(address.host, address.port, identifier="many") as many:
            codes = await many.subscribe([(f"v2x/+/{k}/#", 0) for k in range(2001)])
            assert list(codes)[-2:] == [0, 0x80]
            reader, writer = await _raw_client(address)
            task = asyncio.create_task(run_variant(FCW, "v2x", seed=3, broker=address, run_id="load-attacked"))
            for packet_id in range(1, 18):
                writer.write(_qos2_publish(topics.fleet_input("load-attacked", "f0"), packet_id, bytes(1024 * 1024)))
                await writer.drain()
            async with asyncio.timeout(10):
                while await reader.read(65536):  # PUBRECs, until the broker closes the connection
                    pass
            writer.close()
            attacked = await asyncio.wait_for(task, 60)
        assert broker.unreleased_over == 1 and broker.refused_filters == 1
    assert attacked.events == clean.events
    assert attacked.metrics["rejected"] == clean.metrics["rejected"]
    for key in ("messages", "delivery_ratio"):
        assert attacked.metrics[key] == clean.metrics[key]
