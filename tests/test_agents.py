"""Agents without a broker: sans-I/O steps, fed by hand."""

from __future__ import annotations

import math

import pytest

from v2x.agents.base import Heard, TickContext
from v2x.agents.vehicle import VehicleAgent
from v2x.messages import decode_bsm, temporary_id
from v2x.runner import build_agents, environment
from v2x.scenario import load_scenario, route_for
from v2x.scenario.loader import SCENARIO_DIR
from v2x.wire import testbed_pb2


def _gnss() -> testbed_pb2.GnssReading:
    return testbed_pb2.GnssReading(available=True, sigma_major_m=0.02, sigma_minor_m=0.02, state="rtk-fixed")


def _ctx(tick: int, dt: float, heard: tuple[Heard, ...] = ()) -> TickContext:
    return TickContext(tick=tick, t_s=round(tick * dt, 9), dt_s=dt, gnss=_gnss(), heard=heard)


def _fcw_vehicles() -> dict[str, VehicleAgent]:
    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    env = environment(sc)
    return {a.actor_id: a for a in build_agents(sc, env) if isinstance(a, VehicleAgent)}


def test_scripted_brake_stops_at_the_kinematic_distance() -> None:
    lead = _fcw_vehicles()["lead"]
    dt = 0.1
    for tick in range(0, 141):
        lead.step(_ctx(tick, dt))
    v0, a, t_brake = 16.67, 6.0, 6.0
    expected = 130 + v0 * t_brake + v0 * v0 / (2 * a)
    assert lead.v == 0.0
    assert lead.s == pytest.approx(expected, abs=0.02)


def test_bsm_carries_position_speed_heading_in_wire_units_and_decodes_back() -> None:
    lead = _fcw_vehicles()["lead"]
    res = lead.step(_ctx(0, 0.1))
    pc5 = [t for t in res.transmissions if t.link == testbed_pb2.LINK_PC5]
    assert len(pc5) == 1
    bsm = pc5[0].frame.bsm
    assert bsm.speed == round(16.67 / 0.02)
    assert bsm.heading == 7200  # due east = 90 degrees = 7200 x 0.0125
    assert bytes(bsm.id) == temporary_id("lead")
    remote = decode_bsm(bsm, now_s=0.0, frame=lead.env.frame, epoch=lead.env.epoch)
    assert remote is not None
    assert remote.x == pytest.approx(130.0, abs=0.02) and remote.y == pytest.approx(0.0, abs=0.02)
    assert remote.heading_rad == pytest.approx(0.0, abs=1e-4)


def test_fcw_app_warns_on_a_braking_lead_and_the_driver_brakes_after_the_reaction_time() -> None:
    cars = _fcw_vehicles()
    lead, follower, neighbour = cars["lead"], cars["follower"], cars["neighbour"]
    dt = 0.1
    first_warning: dict[str, float] = {}
    inbox: dict[str, list[Heard]] = {k: [] for k in cars}
    for tick in range(0, 100):
        t = round(tick * dt, 9)
        outputs = {}
        for name, car in cars.items():
            res = car.step(_ctx(tick, dt, tuple(inbox[name])))
            outputs[name] = res
            if res.events:
                first_warning.setdefault(name, t)
        inbox = {k: [] for k in cars}
        for sender, res in outputs.items():  # ideal channel: every BSM heard next tick
            for tx in res.transmissions:
                if tx.link == testbed_pb2.LINK_PC5:
                    for receiver in cars:
                        if receiver != sender:
                            inbox[receiver].append(Heard(sender, tx.link, t + 0.002, t, tx.frame))
    assert "neighbour" not in first_warning
    assert 6.0 < first_warning["follower"] <= 6.3
    assert follower.driver is not None and follower.driver.brake_at_s == pytest.approx(first_warning["follower"] + 1.0)
    assert follower.v == 0.0 and lead.v == 0.0
    gap = lead.s - follower.s - (lead.length_m + follower.length_m) / 2
    assert gap > 0, "the warned driver stops short of the lead"
    assert neighbour.v == pytest.approx(16.67)


def test_route_follows_a_polyline_and_continues_past_its_end() -> None:
    sc = load_scenario(SCENARIO_DIR / "icw.yaml")
    route = route_for(sc, sc.actor("car_b"))
    assert route is not None
    pose = route.pose(200.0)
    assert (pose.x, pose.y) == pytest.approx((1.75, 0.0))
    assert pose.heading_rad == pytest.approx(math.pi / 2)
    beyond = route.pose(route.length + 10)
    assert beyond.y == pytest.approx(210.0)


def test_an_out_of_range_message_is_rejected_and_counted_not_raised() -> None:
    """A well-formed BSM whose speed is outside the standard's range (8191 = unavailable is the top) must
    not stop the receiver: it is counted as out_of_range and the next message is still read."""
    vehicles = _fcw_vehicles()
    follower, lead = vehicles["follower"], vehicles["lead"]
    good = lead.step(_ctx(0, 0.1)).transmissions[0].frame
    broken = type(good)()
    broken.CopyFrom(good)
    broken.bsm.speed = 9000
    heard = (
        Heard("lead", testbed_pb2.LINK_PC5, 0.1, 0.0, broken),
        Heard("lead", testbed_pb2.LINK_PC5, 0.1, 0.0, good),
    )
    follower.step(_ctx(0, 0.1))
    follower.step(_ctx(1, 0.1, heard))
    assert follower.rejected == {"out_of_range": 1}
    assert temporary_id("lead") in follower.remotes  # the good one was taken
