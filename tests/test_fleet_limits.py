"""How big a fleet's input may be: a FleetInput grows with the deliveries to the fleet's vehicles (3.7 MB for
2,000 vehicles each hearing ~180 others), so the fleet takes far more than an individual agent's 4 MB; over
its limit the fleet rejects it (counted), and the world refuses to send one (a run error naming the fleet)
instead of retransmitting an input the fleet will never take."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.sim.test_background import _scenario
from tests.sim.test_fleet import _fleet_agent
from v2x.net import fleet as net_fleet
from v2x.net import world as net_world
from v2x.net.fleet import FleetHost
from v2x.net.transport import LoopbackBroker, LoopbackTransport
from v2x.run.runner import RunError, run_scenario
from v2x.sim.simulation import Simulation
from v2x.wire import testbed_pb2
from v2x.wire.protocol import MAX_FLEET_INPUT_BYTES, MAX_INPUT_BYTES


def _host(tmp_path: Path) -> FleetHost:
    sim = Simulation(_scenario(tmp_path, prefill=True), variant="v2x", seed=0)
    transport = LoopbackTransport(LoopbackBroker(), "fleet")
    return FleetHost(transport, "run1", _fleet_agent(sim), n_ticks=sim.n_ticks)


def test_a_fleet_takes_an_input_bigger_than_an_agents_and_rejects_one_over_its_limit(tmp_path: Path) -> None:
    host = _host(tmp_path)
    big = testbed_pb2.FleetInput(
        run_id="run1", tick=0, tick_us=100_000, envelopes=[b"\x00" * 1000] * (MAX_INPUT_BYTES // 1000 + 10)
    )
    payload = big.SerializeToString()
    assert MAX_INPUT_BYTES < len(payload) < MAX_FLEET_INPUT_BYTES
    assert host._decode(payload) is not None
    assert not host.rejected
    assert host._decode(payload + b"\x00" * (MAX_FLEET_INPUT_BYTES - len(payload) + 1)) is None
    assert host.rejected == {"oversized": 1}


def test_the_world_stops_the_run_naming_the_fleet_whose_input_is_over_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the limit lowered to a few kB (instead of building a scenario of tens of thousands of vehicles),
    the world refuses to publish the fleet's input once it outgrows it: a run error saying what to do."""
    monkeypatch.setattr(net_world, "MAX_FLEET_INPUT_BYTES", 1024)
    monkeypatch.setattr(net_fleet, "MAX_FLEET_INPUT_BYTES", 1024)
    sc = _scenario(tmp_path, prefill=True)
    with pytest.raises(
        RunError, match=r"fleet-0's input for tick \d+ is [\d,]+ bytes, over the 1,024 a fleet takes: .*\(--workers N\)"
    ):
        asyncio.run(run_scenario(sc, seed=0, broker="loopback", variants=["v2x"]))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("length_m", 0.0),
        ("length_m", float("nan")),
        ("width_m", -float("inf")),
        ("width_m", 1e9),
        ("x_m", float("nan")),
        ("speed_mps", float("inf")),
        ("sigma_major_m", -1.0),
    ],
)
def test_a_fleet_rejects_vehicles_with_numbers_out_of_range_and_keeps_serving(
    tmp_path: Path, field: str, value: float
) -> None:
    """A FleetInput whose vehicle has a length of 0 or NaN made the fleet's FCW raise and ended the run with
    exit 3 (found by an attack test): such an input is now rejected as malformed and counted, read from the
    bytes (the compiled pass) or from the fields, and the world's own inputs still pass."""
    from v2x.agents.fleet import bad_vehicle_numbers
    from v2x.core._jit import always_compiled

    host = _host(tmp_path)
    good = testbed_pb2.FleetInput(run_id="run1", tick=0, tick_us=100_000)
    for k in range(40):  # more than SMALL_WORLD: the compiled pass reads them
        good.vehicles.append(
            testbed_pb2.FleetVehicle(
                vehicle_id=f"bg-0-{k}", kind="car", x_m=10.0 * k, speed_mps=12.0, vx_mps=12.0, length_m=4.6,
                width_m=1.8, sigma_major_m=0.02 * (k % 2), sigma_minor_m=0.02 * (k % 2),
            )
        )  # fmt: skip
    good.delivery_counts = bytes(4 * len(good.vehicles))
    assert bad_vehicle_numbers(good) is None and host._decode(good.SerializeToString()) is not None
    bad = testbed_pb2.FleetInput()
    bad.CopyFrom(good)
    setattr(bad.vehicles[1], field, value)
    payload = bad.SerializeToString()
    with always_compiled():
        said = bad_vehicle_numbers(bad, payload)
    assert said is not None and repr(bad.vehicles[1].vehicle_id) in said
    assert bad_vehicle_numbers(bad) == said  # from the fields, as for a small fleet
    assert host._decode(payload) is None
    assert host.rejected == {"malformed": 1}
