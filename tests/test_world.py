"""The world's shell on the loopback bus (no broker): it routes what arrives to its Simulation and gives
up, naming them, on actors that never join."""

from __future__ import annotations

import asyncio

import pytest

from v2x.net.clock import LockstepClock
from v2x.net.transport import LoopbackBroker, LoopbackTransport
from v2x.net.world import World
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.wire import testbed_pb2


async def test_the_world_routes_joins_to_its_simulation_and_names_who_never_joined() -> None:
    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    bus = LoopbackBroker()
    world_tp, agent_tp = LoopbackTransport(bus, "world"), LoopbackTransport(bus, "agent")
    world = World(
        sc, variant="v2x", seed=0, run_id="t", transport=world_tp, clock=LockstepClock(0.1), join_timeout_s=0.2
    )
    ready = asyncio.Event()
    tasks = [asyncio.create_task(world_tp.run(ready)), asyncio.create_task(agent_tp.run())]
    await ready.wait()
    await agent_tp.publish(
        "v2x/t/join/lead", testbed_pb2.Hello(actor_id="lead", kind="car", protocol_version=1).SerializeToString()
    )
    await agent_tp.publish(
        "v2x/t/join/cloud", testbed_pb2.Hello(actor_id="cloud", kind="platform", protocol_version=1).SerializeToString()
    )
    await agent_tp.publish("v2x/t/tx/no-such", b"")  # a syntactically valid id, not an actor
    await agent_tp.publish("v2x/t/ack/bad*id", b"")  # not a valid id: not even attributable
    with pytest.raises(RuntimeError, match=r"never joined within 0 s: \['follower', 'neighbour', 'rsu1'\]"):
        await world.run()
    assert world.sim.inbound.hellos == {"lead", "cloud"}
    assert world.sim.inbound.stats.rejected == {"unknown_sender": 1, "bad_topic": 1}
    for tp in (world_tp, agent_tp):
        tp.stop()
    await asyncio.gather(*tasks)
