"""Oversized messages on a run's topics (an attack review: two 250 MB publishes on a run's in/ topics stalled a
real-time run and changed its verdict). Mosquitto drops them for the run's connections (MQTT 5 Maximum Packet
Size, ``v2x.net.limits``); the embedded broker refuses them before it reads them and disconnects the sender
(``v2x.net.amqtt_fanout``). Either way the run never reads them: no rejection is counted, and the outcome is
the clean run's."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import replace

import aiomqtt
import pytest

from tests._mosquitto import Mosquitto
from v2x.net import topics
from v2x.net.broker import BrokerAddress
from v2x.net.transport import MqttTransport
from v2x.run.runner import run_variant
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.sim.simulation import WorldReport
from v2x.wire import testbed_pb2

pytestmark = pytest.mark.broker

FCW = load_scenario(SCENARIO_DIR / "fcw.yaml")
BIG = 20 * 1024 * 1024  # above every limit of the topics below (4 MiB for a TickInput, 64 KiB for an Ack)


async def _run_with_big_messages(broker: BrokerAddress, run_id: str) -> WorldReport:
    task = asyncio.create_task(run_variant(FCW, "v2x", seed=3, broker=broker, run_id=run_id))
    async with aiomqtt.Client(broker.host, broker.port, identifier=f"watch-{run_id}") as watcher:
        await watcher.subscribe(topics.tick_input(run_id, "follower"))
        async for message in watcher.messages:
            if str(message.topic) != topics.tick_input(run_id, "follower"):
                continue
            if testbed_pb2.TickInput.FromString(bytes(message.payload)).tick >= 3:
                break
    for topic in (
        topics.tick_input(run_id, "follower"),
        topics.tick_input(run_id, "lead"),
        topics.ack(run_id, "follower"),
        topics.ack(run_id, "lead"),
    ):
        # a connection each: the embedded broker disconnects the sender of an oversized message
        with contextlib.suppress(aiomqtt.MqttError):
            async with aiomqtt.Client(
                broker.host, broker.port, identifier=f"big-{uuid.uuid4().hex[:8]}", timeout=1
            ) as client:
                await client.publish(topic, bytes(BIG), qos=0, timeout=2)
                await asyncio.sleep(0.3)  # (for the broker to take it before this connection closes)
    return await asyncio.wait_for(task, 60)


def _same_as_clean(attacked: WorldReport, clean: WorldReport) -> None:
    assert attacked.events == clean.events
    assert attacked.metrics["rejected"] == clean.metrics["rejected"]
    # (before the limits, each agent counted an ``oversized`` input and the world a rejected Ack)
    assert attacked.metrics["rejected_by_agents"] == clean.metrics["rejected_by_agents"] == {}
    for key in ("messages", "delivery_ratio"):
        assert attacked.metrics[key] == clean.metrics[key]


async def test_oversized_messages_never_reach_a_run_on_mosquitto(mosquitto: Mosquitto) -> None:
    clean = await run_variant(FCW, "v2x", seed=3, broker=mosquitto.address, run_id="big-clean-mosq")
    attacked = await _run_with_big_messages(mosquitto.address, "big-mosq")
    _same_as_clean(attacked, clean)


async def test_oversized_messages_never_reach_a_run_on_the_embedded_broker(embedded: BrokerAddress) -> None:
    clean = await run_variant(FCW, "v2x", seed=3, broker=embedded, run_id="big-clean-emb")
    attacked = await _run_with_big_messages(embedded, "big-emb")
    _same_as_clean(attacked, clean)


async def _connect(address: BrokerAddress) -> tuple[MqttTransport, float]:
    tp = MqttTransport(address, f"probe-{uuid.uuid4().hex[:8]}")
    tp.route(topics.tick_input("big-probe", "a"), lambda topic, payload: None)
    ready = asyncio.Event()
    start = time.monotonic()
    task = asyncio.create_task(tp.run(ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        return tp, time.monotonic() - start
    finally:
        tp.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await task


async def test_connections_speak_mqtt5_to_mosquitto_and_fall_back_at_once_on_the_embedded_broker(
    mosquitto: Mosquitto, embedded: BrokerAddress
) -> None:
    """Mosquitto takes MQTT 5 (and so the Maximum Packet Size); amqtt speaks 3.1.1 only: a client that tries
    MQTT 5 on it (an outside stack's SDK given its URL) is refused at once and connects with 3.1.1 (amqtt itself
    misread such a CONNECT and the client waited 5 s for its timeout)."""
    tp, _ = await _connect(mosquitto.address)
    assert tp.spoke_mqtt5
    tp, took = await _connect(replace(embedded, mqtt5=True))
    assert not tp.spoke_mqtt5 and not tp.mqtt5
    assert took < 2.0


async def _relay(
    broker_port: int, *, hold_first_s: float = 0.0, close_mqtt5: bool = False, close_first: int = 0
) -> asyncio.Server:
    """A TCP relay in front of a broker: ``hold_first_s``: the first connection's bytes (its CONNECT) wait that
    long before they go on (a broker slow to answer once: paused, flooded); ``close_mqtt5``: a connection whose
    CONNECT is MQTT 5 is closed at once, unanswered, as RabbitMQ 3.10 does; ``close_first``: the first that many
    connections are closed after their CONNECT, whatever its version (a Mosquitto at ``max_connections``).
    Nothing else is altered."""
    connections = [0]

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        connections[0] += 1
        if connections[0] == 1 and hold_first_s:
            await asyncio.sleep(hold_first_s)
        first = await cr.read(65536)
        at = first.find(b"\x00\x04MQTT")
        if (close_mqtt5 and at >= 0 and first[at + 6 : at + 7] == b"\x05") or connections[0] <= close_first:
            cw.close()
            return
        br, bw = await asyncio.open_connection("127.0.0.1", broker_port)
        bw.write(first)
        await asyncio.gather(pipe(cr, bw), pipe(br, cw))

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def _delivered(
    address: BrokerAddress, relay: asyncio.Server, publisher: BrokerAddress
) -> tuple[bool, float, list[int]]:
    """Connect an MqttTransport through ``relay`` (routing an ack topic); then publish 30 MB and 5 bytes on that
    topic from ``publisher``: whether the transport spoke MQTT 5, how long it took to connect, and the sizes of
    what reached it."""
    port = relay.sockets[0].getsockname()[1]
    run_id = f"slow-{uuid.uuid4().hex[:8]}"
    tp = MqttTransport(replace(address, port=port), f"probe-{run_id}")
    got: list[int] = []
    small = asyncio.Event()

    def on_ack(topic: str, payload: bytes) -> None:
        got.append(len(payload))
        if len(payload) == 5:
            small.set()

    tp.route(topics.ack(run_id, "follower"), on_ack)
    ready = asyncio.Event()
    start = time.monotonic()
    task = asyncio.create_task(tp.run(ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        took = time.monotonic() - start
        async with aiomqtt.Client(publisher.host, publisher.port, identifier=f"big-{run_id}") as client:
            await client.publish(topics.ack(run_id, "follower"), bytes(30 * 1024 * 1024), qos=1, timeout=20)
            await client.publish(topics.ack(run_id, "follower"), b"small", qos=1)
        await asyncio.wait_for(small.wait(), 20)
        return tp.spoke_mqtt5, took, got
    finally:
        tp.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await task
        relay.close()


async def test_a_broker_slow_to_answer_once_still_gets_mqtt5(mosquitto: Mosquitto) -> None:
    """Attack review 3's #7: Mosquitto paused for 7 s while a run connected; the MQTT 5 attempt timed out, was
    taken for a broker that does not speak MQTT 5, and the whole process went on with 3.1.1, without a Maximum
    Packet Size (a 30 MB publish on an ack topic then reached the world). A timeout is no refusal: the connection
    tries MQTT 5 again, and the broker drops the 30 MB message for it."""
    relay = await _relay(mosquitto.port, hold_first_s=6.0)  # longer than a CONNECT's 5 s timeout
    spoke_mqtt5, took, got = await _delivered(mosquitto.address, relay, mosquitto.address)
    assert spoke_mqtt5 and got == [5] and took > 5


async def test_a_broker_that_closes_an_mqtt5_connect_gets_mqtt311_at_once(mosquitto: Mosquitto) -> None:
    """A broker that closes the connection right after an MQTT 5 CONNECT (RabbitMQ 3.10; tests/test_broker_cluster.py
    has the real one) is taken for one without MQTT 5 after the second such close, without waiting for a timeout
    (aiomqtt waited 5 s for a CONNACK on a closed connection); then only the broker's own limit bounds messages."""
    relay = await _relay(mosquitto.port, close_mqtt5=True)
    spoke_mqtt5, took, got = await _delivered(mosquitto.address, relay, mosquitto.address)
    assert not spoke_mqtt5 and got == [30 * 1024 * 1024, 5]
    assert took < 2.0


async def test_a_broker_that_closes_every_connection_for_a_while_still_gets_mqtt5(mosquitto: Mosquitto) -> None:
    """Attack review 4 (noted, not verified then): a broker that closes every new connection for a while (a
    Mosquitto at ``max_connections``, filled by someone's idle connections) closed two MQTT 5 CONNECTs in a row,
    which read as a broker without MQTT 5, and the process fell back to 3.1.1 without a Maximum Packet Size.
    Before falling back, the connection now asks whether 3.1.1 is answered and MQTT 5 is closed right after: here
    both are closed, so it waits the broker out and connects with MQTT 5 once it takes connections again, and
    the broker drops the 30 MB message for it."""
    relay = await _relay(mosquitto.port, close_first=4)
    spoke_mqtt5, _, got = await _delivered(mosquitto.address, relay, mosquitto.address)
    assert spoke_mqtt5 and got == [5]
