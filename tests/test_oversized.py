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
