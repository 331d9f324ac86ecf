"""SDS (sensor data sharing collision warning) and VRUCW on PSM: the apps' hand-computed cases, the RSU that
shares as SSM, the loader's checks, the scenarios on the loopback bus."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests._agents import route_ahead, tick_ctx
from v2x.agents.base import Heard
from v2x.agents.roadside import RoadsideUnit
from v2x.agents.vehicle import VehicleAgent
from v2x.apps.host import Participant
from v2x.apps.sds import shared_collision, shared_participants
from v2x.apps.thresholds import DEFAULTS
from v2x.run.runner import build_agents, environment
from v2x.scenario import ScenarioError, load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.wire import day1_pb2, testbed_pb2
from v2x.wire.bsm import RemoteState
from v2x.wire.day2 import PersonalState, encode_psm
from v2x.wire.envelope import participant_key, temporary_id

SDS = SCENARIO_DIR / "sds.yaml"
VRU_PSM = SCENARIO_DIR / "vru-psm.yaml"


def _host(y: float = -30.0, speed: float = 8.33, sigma: float = 0.02) -> Participant:
    return Participant("host", 1.75, y, 0.0, speed, 0.0, math.pi / 2, 5.0, 2.0, sigma)


def _shared(
    x: float, y: float, speed: float = 8.33, heading: float = 0.0, ptc_id: int = 3, bound: float = 1.0
) -> RemoteState:
    return RemoteState(
        temp_id=temporary_id("rsu1"),
        t_s=0.0,
        x=x,
        y=y,
        speed_mps=speed,
        heading_rad=heading,
        accel_mps2=0.0,
        length_m=5.0,
        width_m=2.0,
        sigma_major_m=bound / 2.448,
        kind_class=10,
        events=0,
        ptc_type=day1_pb2.PARTICIPANT_MOTOR,
        ptc_id=ptc_id,
        source=day1_pb2.SOURCE_MICROWAVE_RADAR,
    )


def test_warns_of_a_crossing_car_within_the_ttc_threshold_only() -> None:
    # Both 8.33 m/s towards the crossing centre (1.75, -1.75): A's front meets C's near side after
    # (28.25 - 2.5 - 1.0) / 8.33 = 2.97 s from y = -30 (silent); from y = -24, after 2.25 s ... -> 2.0 s.
    far = shared_participants(_host(-30.0), [_shared(-26.5, -1.75)], 0.0, DEFAULTS)
    assert shared_collision(_host(-30.0), far, DEFAULTS) == []
    near_host = _host(-22.5)
    near = shared_participants(near_host, [_shared(-19.0, -1.75)], 0.0, DEFAULTS)
    (f,) = shared_collision(near_host, near, DEFAULTS)
    assert f.other == participant_key(temporary_id("rsu1"), 3) and f.kind == "crossing"
    assert f.ttc_s <= DEFAULTS["sds_ttc_s"]


def test_a_turning_host_is_predicted_along_its_route() -> None:
    # The host turns left (south, then east) through a sharp corner at the origin at 6 m/s, 5 m before it; a
    # shared car drives north at 3 m/s across its exit at x = 10 from y = -8. The host is on its exit after 5/6 s
    # and its front meets the car's side (x = 9) at 5/6 + 6.5 / 6 = 1.92 s, with the car's front past y = -1:
    # within sds_ttc_s. On its heading line (south) the host never meets it.
    host = Participant("host", 0.0, 5.0, 0.0, -6.0, 0.0, -math.pi / 2, 5.0, 2.0, 0.02)
    others = shared_participants(host, [_shared(10.0, -8.0, speed=3.0, heading=math.pi / 2)], 0.0, DEFAULTS)
    assert shared_collision(host, others, DEFAULTS) == []
    route = route_ahead([(0.0, 50.0), (0.0, 0.0), (50.0, 0.0)], host.x, host.y)
    (f,) = shared_collision(host, others, DEFAULTS, route)
    assert f.other == participant_key(temporary_id("rsu1"), 3) and f.kind == "crossing"
    assert 1.92 - 0.05 <= f.ttc_s <= 1.92 + 0.01  # a sharp corner is cut by at most 0.3 m


def test_the_host_itself_in_the_ssm_is_left_out() -> None:
    host = _host(-22.5)
    me = _shared(1.75 + 0.4, -22.5 - 0.3, heading=math.pi / 2, ptc_id=1)  # the sensor's view of the host
    assert shared_participants(host, [me], 0.0, DEFAULTS) == []
    other = _shared(1.75, -22.5 + 8.0, speed=0.0, heading=math.pi / 2, ptc_id=2)  # stopped 8 m ahead
    assert [p.key for p in shared_participants(host, [me, other], 0.0, DEFAULTS)] == [other.key]


def test_silent_when_a_position_is_too_poor_or_out_of_range() -> None:
    host = _host(-22.5)
    poor = shared_participants(host, [_shared(-19.0, -1.75, bound=10.0)], 0.0, DEFAULTS)
    assert shared_collision(host, poor, DEFAULTS) == []
    assert (
        shared_collision(
            _host(-22.5, sigma=5.0), shared_participants(host, [_shared(-19.0, -1.75)], 0.0, DEFAULTS), DEFAULTS
        )
        == []
    )
    thresholds = {**DEFAULTS, "sds_max_distance_m": 20.0}
    assert shared_collision(host, shared_participants(host, [_shared(-19.0, -1.75)], 0.0, thresholds), thresholds) == []


def _agents(path: Path) -> dict[str, object]:
    sc = load_scenario(path)
    return {a.actor_id: a for a in build_agents(sc, environment(sc))}


def test_the_rsu_shares_its_detections_as_one_ssm() -> None:
    rsu = _agents(SDS)["rsu1"]
    assert isinstance(rsu, RoadsideUnit)
    det = [
        testbed_pb2.Detection(
            object_id=k, sensor="rsu1/0", sensor_kind=testbed_pb2.SENSOR_RADAR, object_kind=kind, time_us=1_000_000,
            x_m=x, y_m=-1.75, vx_mps=8.0, sigma_m=0.5, speed_sigma_mps=0.1, length_m=5.0, width_m=2.0,
        )
        for k, (kind, x) in enumerate([("car", -40.0), ("pedestrian", -60.0)], start=1)
    ]  # fmt: skip
    out = rsu.step(tick_ctx(10, detections=tuple(det))).transmissions
    assert [t.frame.WhichOneof("msg") for t in out] == ["ssm"] and out[0].link == testbed_pb2.LINK_PC5
    ssm = out[0].frame.ssm
    assert [d.ptc.ptc_id for d in ssm.participants] == [2, 1]  # the VRU first, as in the RSM
    assert ssm.equipment_type == 1 and ssm.id == temporary_id("rsu1")


def test_the_car_warns_from_psm_through_vrucw_and_a_phone_sends_psm_not_bsm() -> None:
    agents = _agents(VRU_PSM)
    car, cyclist = agents["car_a"], agents["cyclist"]
    assert isinstance(car, VehicleAgent) and isinstance(cyclist, VehicleAgent)
    assert [t.frame.WhichOneof("msg") for t in cyclist.step(tick_ctx(0)).transmissions] == ["psm"]
    # At t = 2.9 s the cyclist (5 m/s north) is at y = -12.25 and car A's front 23.3 m before the crossing.
    psm = encode_psm(
        PersonalState("cyclist", 0.0, -12.25, 5.0, math.pi / 2, 0.0, 0.9, 0.5, 0.5),
        actor_id="cyclist",
        t_s=2.9,
        msg_count=0,
        frame=car.env.frame,
        epoch=car.env.epoch,
    )
    events = []
    for tick in range(30):
        heard = (Heard("cyclist", testbed_pb2.LINK_PC5, 2.9, 2.9, psm),) if tick == 29 else ()
        events += car.step(tick_ctx(tick, heard)).events
    assert [(e.app, e.other_id) for e in events] == [(testbed_pb2.APP_VRUCW, temporary_id("cyclist").hex())]
    assert events[0].ttc_s <= DEFAULTS["vrucw_ttc_s"]


def _problems(tmp_path: Path, source: Path, old: str, new: str) -> dict[str, str]:
    text = source.read_text()
    assert old in text
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return dict(info.value.problems)


def test_loader_checks_the_new_fields(tmp_path: Path) -> None:
    assert (
        "rsu with sensors"
        in _problems(tmp_path, SDS, "    apps: [sds]\n", "    apps: [sds]\n    shares_as: ssm\n")["actors[0].shares_as"]
    )
    car_phone = _problems(tmp_path, SDS, "    apps: [sds]\n", "    apps: [sds]\n    device: phone\n")
    assert any("pedestrian or cyclist" in v for v in car_phone.values())
    unequipped = _problems(tmp_path, VRU_PSM, "    device: phone\n", "    device: phone\n    equipped: false\n")
    assert "no device" in unequipped["actors[2].device"]


async def test_sds_runs_on_the_loopback_bus() -> None:
    from v2x.run.runner import run_scenario

    result = await run_scenario(load_scenario(SDS), seed=0, broker="loopback")
    assert result["passed"], [e for e in result["expectations"] if not e["passed"]]
    warnings = {(e["target"], e["other"], e["app"]) for e in result["events"] if e["type"] == "warning"}
    assert warnings == {("car_a", "car_c", "sds")}
    assert set(result["metrics"]["v2x"]["latency_ms_by_message"]) == {"bsm", "ssm"}


def test_sds_every_warning_its_window_accepts_stops_short_of_the_hidden_car() -> None:
    # The scenario's kinematics by hand (scenarios/sds.yaml says why): A north on nb, C east on eb, both straight.
    # C must already be across A's path when A's front reaches C's lane, so that the TTC counts down to A's own
    # arrival; and a warning at the window's end must still stop A's front >= 1 m before C's lane. The earlier
    # telling (C the later one, window [2.4, 3.4] s) failed both: a warning at 3.0 s crashed at 8.4 m/s.
    sc = load_scenario(SDS)
    a, c = sc.actor("car_a"), sc.actor("car_c")
    lanes = {lane.id: lane.centerline for lane in sc.road.lanes}
    assert a.lane is not None and c.lane is not None
    (ax, ay0), (cx0, cy) = lanes[a.lane][0], lanes[c.lane][0]
    assert lanes[a.lane][1][0] == ax and lanes[c.lane][1][1] == cy  # straight, along the axes
    (a_len, a_wid, _), (c_len, c_wid, _) = a.box_m, c.box_m
    a_in = (cy - c_wid / 2 - a_len / 2 - (ay0 + a.start_m)) / a.speed_mps  # A's front at C's lane
    c_in = (ax - a_wid / 2 - c_len / 2 - (cx0 + c.start_m)) / c.speed_mps  # C's front at A's lane
    c_out = (ax + a_wid / 2 + c_len / 2 - (cx0 + c.start_m)) / c.speed_mps  # C's rear past it
    assert c_in + 0.3 <= a_in <= c_out - 0.3  # C across A's path, with 0.3 s (2.5 m) to spare either way
    (window,) = [e.window_s for e in sc.expectations if e.type == "warning" and e.other == "car_c"]
    assert window is not None
    v, driver = a.speed_mps, a.driver
    assert driver is not None
    stop_front = ay0 + a.start_m + v * (window[1] + driver.reaction_s) + v * v / (2 * driver.brake_mps2) + a_len / 2
    assert cy - c_wid / 2 - stop_front >= 1.0
