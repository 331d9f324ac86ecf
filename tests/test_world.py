"""The world's channel stage, driven directly (no broker): which link model each transmission gets."""

from __future__ import annotations

import numpy as np
import pytest

from v2x.core import SpatialGrid
from v2x.net.broker import BrokerAddress
from v2x.net.clock import LockstepClock
from v2x.net.transport import Transport
from v2x.net.world import World, _Received
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.wire import testbed_pb2


def _world(uu: str) -> World:
    sc = load_scenario(SCENARIO_DIR / "icw.yaml")
    sc = sc.model_copy(update={"network": sc.network.model_copy(update={"uu": uu}), "variants": ["v2x"]})
    tp = Transport(BrokerAddress("127.0.0.1", 1), "unused")  # never connected: the channel is sans-I/O
    return World(sc, variant="v2x", seed=1, run_id="t", transport=tp, clock=LockstepClock(sc.tick_s))


def test_uu_uplink_and_downlink_draw_from_their_own_delay_models() -> None:
    world = _world("5g-uu-nsa-public")  # uplink 8 ms + gamma (mean 13 ms); downlink 5 ms + gamma (mean 8 ms)
    edge, car = world.world.slot_of("edge"), world.world.slot_of("car_a")
    n = 400
    for k in range(n):
        world.received[(car, k)] = _Received(0, car, k, 0.0, testbed_pb2.LINK_UU, ("edge",), b"")
        world.received[(edge, k)] = _Received(0, edge, k, 0.0, testbed_pb2.LINK_UU, ("car_a",), b"")
    world._channel(0, SpatialGrid.build(world.world, world.cell_m))
    up = np.array(world.latencies_by_channel["uu-up"])
    down = np.array(world.latencies_by_channel["uu-down"])
    assert len(up) == len(down) == n
    assert up.min() >= 8.0 and down.min() >= 5.0 and down.min() < 8.0
    assert up.mean() == pytest.approx(13.0, rel=0.1) and down.mean() == pytest.approx(8.0, rel=0.1)
    assert world.sent["uu"] == 2 * n
