"""VRUCW without a broker: RSM on the wire, the roadside sensor model, the RSU's fusion, unequipped road
users, the on-board app's hand cases, and the scenario file's new fields; one run of the shipped scenario
on the embedded broker at the end."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from shapely.geometry import Polygon

from tests._agents import offline_sim, route_ahead, tick_ctx
from v2x.agents.base import Heard, TickContext
from v2x.agents.roadside import RoadsideUnit, fuse
from v2x.agents.vehicle import VehicleAgent
from v2x.apps.host import Participant
from v2x.apps.thresholds import DEFAULTS
from v2x.apps.vrucw import vru_participant, vulnerable_road_user_collision
from v2x.geodesy import LocalFrame
from v2x.run.results import check
from v2x.run.runner import build_agents, environment
from v2x.scenario import ScenarioError, load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.scenario.model import MetricExpectation, NoWarningExpectation, SensorSpec
from v2x.sim.sensing import SENSOR_DEFAULTS, RoadsideSensing, Targets, in_view, resolve
from v2x.units import compass_deg_to_enu_yaw_rad
from v2x.wire import day1_pb2, frame_pb2, testbed_pb2
from v2x.wire.bsm import RemoteState
from v2x.wire.envelope import parse_participant_key, participant_key, temporary_id
from v2x.wire.rsm import PerceivedObject, decode_rsm, encode_rsm

VRUCW = SCENARIO_DIR / "vrucw.yaml"
TURN = Path(__file__).parent / "scenarios" / "vrucw-turn.yaml"  # a pilot-zone review's turning car, trimmed
FRAME = LocalFrame(29.5410, 106.4560, 260.0)
EPOCH = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


# -- RSM on the wire ----------------------------------------------------------------------------------
def _objects() -> list[PerceivedObject]:
    return [
        PerceivedObject(7, "pedestrian", "camera", 12.3, 0.0, -4.2, 1.4, math.pi / 2, 0.5, 0.5, 0.5),
        PerceivedObject(3, "car", "integrated", 12.3, -31.0, -1.75, 11.11, 0.0, 5.0, 2.0, 0.3),
        PerceivedObject(9, "cyclist", "lidar", 12.2, 20.0, 5.0, 4.5, math.pi, 1.8, 0.6, 0.1),
    ]


def test_rsm_carries_participants_in_the_standard_units_as_offsets_from_the_rsu() -> None:
    rsu_x, rsu_y = 6.0, 8.0
    frame = encode_rsm(_objects(), actor_id="rsu1", ref_x=rsu_x, ref_y=rsu_y, frame=FRAME, epoch=EPOCH, msg_count=130)
    rsm = frame.rsm
    assert rsm.msg_cnt == 130 % 128
    assert bytes(rsm.id) == temporary_id("rsu1")
    assert (rsm.ref_pos.lat, rsm.ref_pos.lon) == FRAME.to_wire(rsu_x, rsu_y)
    ped, car, bike = rsm.participants
    assert ped.ptc_type == day1_pb2.PARTICIPANT_PEDESTRIAN and ped.source == day1_pb2.SOURCE_VIDEO
    assert car.ptc_type == day1_pb2.PARTICIPANT_MOTOR and car.source == day1_pb2.SOURCE_INTEGRATED
    assert bike.ptc_type == day1_pb2.PARTICIPANT_NON_MOTOR and bike.source == day1_pb2.SOURCE_LIDAR
    assert ped.ptc_id == 7
    assert ped.speed == 70  # 1.4 m/s in 0.02 m/s
    assert ped.heading == 0  # north: 0 x 0.0125 degree
    assert car.heading == 7200  # east: 90 degree
    assert bike.heading == 21600  # west: 270 degree
    assert (ped.size.length, ped.size.width) == (50, 50) and (car.size.length, car.size.width) == (500, 200)
    # the offset is in 1e-7 degree from refPos: 12.2 m south and 6 m west of the RSU
    dlat, dlon = FRAME.offset_to_wire(rsm.ref_pos.lat, rsm.ref_pos.lon, 0.0, -4.2)
    assert (ped.pos.offset_lat, ped.pos.offset_lon) == (dlat, dlon)
    assert -1_200 < ped.pos.offset_lat < -1_000 and -700 < ped.pos.offset_lon < -500
    # posConfidence: the smallest bound >= 2.448 sigma: 1.22 m -> a2m (8), 0.73 m -> a1m (9), 0.24 m -> a50cm
    assert [p.pos_confidence.pos for p in rsm.participants] == [8, 9, 10]
    assert ped.sec_mark == 12_300 and bike.sec_mark == 12_200
    assert ped.accel_set.long == 2001  # unavailable


def test_rsm_decodes_back_to_remote_states_within_the_wire_quanta() -> None:
    frame = encode_rsm(_objects(), actor_id="rsu1", ref_x=6.0, ref_y=8.0, frame=FRAME, epoch=EPOCH, msg_count=0)
    wire = frame_pb2.MessageFrame.FromString(frame.SerializeToString())
    remotes = decode_rsm(wire.rsm, now_s=12.4, frame=FRAME, epoch=EPOCH)
    assert len(remotes) == 3
    for obj, r in zip(_objects(), remotes, strict=True):
        assert (r.x, r.y) == pytest.approx((obj.x, obj.y), abs=0.02)  # 1e-7 degree is ~1.1 cm
        assert r.speed_mps == pytest.approx(obj.speed_mps, abs=0.01 + 1e-9)  # half a quantum
        assert math.cos(r.heading_rad - obj.heading_rad) == pytest.approx(1.0, abs=1e-6)
        assert (r.length_m, r.width_m) == pytest.approx((obj.length_m, obj.width_m))
        assert r.t_s == pytest.approx(obj.t_s)
        assert r.accel_mps2 == 0.0
        assert r.ptc_id == obj.ptc_id and r.temp_id == temporary_id("rsu1")
        assert r.key == participant_key(temporary_id("rsu1"), obj.ptc_id)
        assert parse_participant_key(r.key) == (temporary_id("rsu1"), obj.ptc_id)
    # the receiver's error bound is the confidence ladder's bound, i.e. never better than what was sent
    assert [r.sigma_major_m for r in remotes] == pytest.approx([2.0 / 2.448, 1.0 / 2.448, 0.5 / 2.448])
    assert [r.ptc_type for r in remotes] == [
        day1_pb2.PARTICIPANT_PEDESTRIAN,
        day1_pb2.PARTICIPANT_MOTOR,
        day1_pb2.PARTICIPANT_NON_MOTOR,
    ]


def test_rsm_takes_one_to_sixteen_participants_and_skips_those_without_speed() -> None:
    obj = _objects()[0]
    with pytest.raises(ValueError, match=r"1\.\.16"):
        encode_rsm([], actor_id="r", ref_x=0, ref_y=0, frame=FRAME, epoch=EPOCH, msg_count=0)
    with pytest.raises(ValueError, match=r"1\.\.16"):
        encode_rsm([obj] * 17, actor_id="r", ref_x=0, ref_y=0, frame=FRAME, epoch=EPOCH, msg_count=0)
    frame = encode_rsm([obj, obj], actor_id="r", ref_x=0, ref_y=0, frame=FRAME, epoch=EPOCH, msg_count=0)
    frame.rsm.participants[1].speed = 8191  # unavailable
    assert len(decode_rsm(frame.rsm, now_s=12.4, frame=FRAME, epoch=EPOCH)) == 1
    assert parse_participant_key("00ff") is None and parse_participant_key("zz/3") is None


# -- the sensor model ---------------------------------------------------------------------------------
def _camera(**kw: float) -> SensorSpec:
    return SensorSpec.model_validate({"kind": "camera", "heading_deg": 90.0, **kw})


def test_defaults_fill_what_the_scenario_leaves_out() -> None:
    p = resolve(_camera(range_m=40.0))
    assert p.range_m == 40.0 and p.fov_deg == SENSOR_DEFAULTS["camera"]["fov_deg"]
    assert p.sigma_m == SENSOR_DEFAULTS["camera"]["sigma_m"] and p.heading_deg == 90.0
    assert set(SENSOR_DEFAULTS) == {"camera", "radar", "lidar"}


def test_field_of_view_range_and_occlusion() -> None:
    p = resolve(_camera(range_m=50.0, fov_deg=60.0))  # looks east from the origin, +-30 degree
    x = np.array([10.0, 49.0, 51.0, 10.0, 10.0, -10.0, 20.0])
    y = np.array([0.0, 0.0, 0.0, 5.0, 6.0, 0.0, 0.0])  # 5/10 is 26.6 deg off, 6/10 is 31.0 deg off
    visible, hidden = in_view(0.0, 0.0, p, x, y)
    assert visible.tolist() == [True, True, False, True, False, False, True]
    assert not hidden.any()
    wall = Polygon([(14, -1), (16, -1), (16, 1), (14, 1)])  # between the sensor and (20, 0) only
    visible, hidden = in_view(0.0, 0.0, p, x, y, wall)
    assert visible.tolist() == [True, False, False, True, False, False, False]
    assert hidden.tolist() == [False, True, False, False, False, False, True]  # (51, 0) is out of range anyway
    lidar = resolve(SensorSpec(kind="lidar"))
    visible, _ = in_view(0.0, 0.0, lidar, np.array([-30.0, 0.0, 59.0]), np.array([0.0, -30.0, 0.0]))
    assert visible.all()  # 360 degree


def _targets(n: int = 1, x: float = 20.0) -> Targets:
    z = np.zeros(n)
    return Targets(
        object_id=np.arange(1, n + 1, dtype=np.int64),
        kind=["pedestrian"] * n,
        x=np.full(n, x),
        y=z.copy(),
        vx=z.copy(),
        vy=np.full(n, 1.4),
        heading_rad=np.full(n, math.pi / 2),
        length_m=np.full(n, 0.5),
        width_m=np.full(n, 0.5),
    )


def _frames(seed: int, n_frames: int, spec: SensorSpec, targets: Targets) -> list[list[tuple[int, float, float]]]:
    sensing = RoadsideSensing([("rsu", (0.0, 0.0), [spec])], [], np.random.default_rng(seed))
    return [[(d.object_id, d.x, d.y) for d in sensing.step(k * 0.1, targets).get("rsu", [])] for k in range(n_frames)]


def test_detection_probability_and_error_statistics() -> None:
    spec = _camera(detection_probability=0.7, sigma_m=0.4, speed_sigma_mps=0.2)
    sensing = RoadsideSensing([("rsu", (0.0, 0.0), [spec])], [], np.random.default_rng(11))
    n = 4000
    found = [d for k in range(n) for d in sensing.step(k * 0.1, _targets()).get("rsu", [])]
    share = len(found) / n
    assert share == pytest.approx(0.7, abs=4 * math.sqrt(0.7 * 0.3 / n))
    ex = np.array([d.x - 20.0 for d in found])
    ey = np.array([d.y for d in found])
    evy = np.array([d.vy - 1.4 for d in found])
    assert abs(ex.mean()) < 0.03 and abs(ey.mean()) < 0.03
    assert ex.std() == pytest.approx(0.4, rel=0.05) and ey.std() == pytest.approx(0.4, rel=0.05)
    assert evy.std() == pytest.approx(0.2, rel=0.05)
    # the heading is that of the measured velocity (walking north), the reported sigmas are the sensor's
    assert np.mean([abs(d.heading_deg - 180.0) > 90 for d in found]) > 0.99
    assert {(d.sigma_m, d.speed_sigma_mps, d.sensor, d.sensor_kind) for d in found} == {(0.4, 0.2, "rsu/0", "camera")}
    c = sensing.counts["rsu/0"]
    assert (c.frames, c.in_view, c.detected, c.occluded) == (n, n, len(found), 0)


def test_same_seed_same_detections_other_seed_differs_and_geometry_does_not_shift_the_draws() -> None:
    spec = _camera(detection_probability=0.8)
    a = _frames(5, 50, spec, _targets(3))
    assert a == _frames(5, 50, spec, _targets(3))
    assert a != _frames(6, 50, spec, _targets(3))
    # every frame draws for every road user: moving object 2 out of range changes nothing for 1 and 3
    far = _targets(3)
    far.x[1] = 500.0
    b = _frames(5, 50, spec, far)
    assert [[d for d in f if d[0] != 2] for f in a] == b
    assert any(d[0] == 2 for f in a for d in f)


def test_a_sensor_frames_at_its_period() -> None:
    spec = _camera(period_s=0.3, detection_probability=1.0)
    sensing = RoadsideSensing([("rsu", (0.0, 0.0), [spec])], [], np.random.default_rng(0))
    ticks = [k for k in range(10) if sensing.step(round(k * 0.1, 9), _targets()).get("rsu")]
    assert ticks == [0, 3, 6, 9]


# -- the roadside unit's fusion and RSM -----------------------------------------------------------------
def _det(object_id: int, kind: int, sigma: float, x: float, object_kind: str = "pedestrian") -> testbed_pb2.Detection:
    return testbed_pb2.Detection(
        object_id=object_id,
        sensor="rsu1/0",
        sensor_kind=kind,  # type: ignore[arg-type]
        object_kind=object_kind,
        time_us=3_000_000,
        x_m=x,
        y_m=-4.0,
        vx_mps=0.0,
        vy_mps=1.4,
        heading_deg=0.0,
        length_m=0.5,
        width_m=0.5,
        sigma_m=sigma,
        speed_sigma_mps=0.3,
    )


def test_fusion_weights_by_inverse_variance_and_marks_mixed_sources_integrated() -> None:
    camera = _det(4, testbed_pb2.SENSOR_CAMERA, 0.5, 1.0)
    radar = _det(4, testbed_pb2.SENSOR_RADAR, 0.25, 0.0)
    other = _det(9, testbed_pb2.SENSOR_CAMERA, 0.5, 30.0)
    fused = {o.ptc_id: o for o in fuse([camera, radar, other])}
    assert set(fused) == {4, 9}
    one = fused[4]
    assert one.source == "integrated" and fused[9].source == "camera"
    assert one.x == pytest.approx((1.0 / 0.25 + 0.0 / 0.0625) / (1 / 0.25 + 1 / 0.0625))
    assert one.sigma_m == pytest.approx((0.5**-2 + 0.25**-2) ** -0.5)
    assert one.speed_mps == pytest.approx(1.4) and one.heading_rad == pytest.approx(math.pi / 2)
    assert one.t_s == pytest.approx(3.0)


def test_rsu_sends_rsm_over_pc5_vrus_first_and_splits_above_sixteen() -> None:
    sc = load_scenario(VRUCW)
    env = environment(sc)
    rsu = next(a for a in build_agents(sc, env) if isinstance(a, RoadsideUnit))
    dets = [_det(k, testbed_pb2.SENSOR_CAMERA, 0.5, float(k), "car") for k in range(1, 19)]
    dets.append(_det(40, testbed_pb2.SENSOR_CAMERA, 0.5, 60.0))  # the farthest, but a pedestrian
    gnss = testbed_pb2.GnssReading()
    res = rsu.step(TickContext(tick=31, t_s=3.1, dt_s=0.1, gnss=gnss, heard=(), detections=tuple(dets)))
    rsms = [tx for tx in res.transmissions if tx.frame.WhichOneof("msg") == "rsm"]
    assert [tx.link for tx in rsms] == [testbed_pb2.LINK_PC5] * 2
    assert [len(tx.frame.rsm.participants) for tx in rsms] == [16, 3]
    assert rsms[0].frame.rsm.participants[0].ptc_id == 40
    assert [tx.frame.rsm.msg_cnt for tx in rsms] == [0, 1]
    quiet = rsu.step(TickContext(tick=32, t_s=3.2, dt_s=0.1, gnss=gnss, heard=()))
    assert not [tx for tx in quiet.transmissions if tx.frame.WhichOneof("msg") == "rsm"]


# -- unequipped road users --------------------------------------------------------------------------
def _vehicles() -> dict[str, VehicleAgent]:
    sc = load_scenario(VRUCW)
    return {a.actor_id: a for a in build_agents(sc, environment(sc)) if isinstance(a, VehicleAgent)}


def test_an_unequipped_pedestrian_walks_but_transmits_and_hears_nothing() -> None:
    cars = _vehicles()
    ped, car = cars["ped"], cars["car_a"]
    bsm = car.step(tick_ctx(0)).transmissions[0].frame
    warning = frame_pb2.MessageFrame(advisory=testbed_pb2.Advisory(app=testbed_pb2.APP_VRUCW, target_id="ped"))
    for tick in range(11):
        heard = (
            Heard("car_a", testbed_pb2.LINK_PC5, 0.0, 0.0, bsm),
            Heard("x", testbed_pb2.LINK_UU, 0.0, 0.0, warning),
        )
        res = ped.step(tick_ctx(tick, heard))
        assert res.transmissions == [] and res.events == []
    assert ped.remotes == {} and ped.s == pytest.approx(1.4)
    assert res.truth is not None and res.truth.y_m == pytest.approx(-9 + 1.4)


def test_the_world_hears_nothing_from_an_unequipped_actor_and_delivers_nothing_to_it() -> None:
    sc = load_scenario(VRUCW)
    sim = offline_sim(sc)
    assert not sim.channel.pc5_receivers[sim.world.slot_of("ped")]
    assert sim.channel.pc5_receivers[sim.world.slot_of("car_a")]
    sim.begin(0)
    env = testbed_pb2.Envelope(
        sender_id="ped",
        seq=1,
        tick=0,
        link=testbed_pb2.LINK_PC5,
        frame=frame_pb2.MessageFrame(advisory=testbed_pb2.Advisory()).SerializeToString(),
    )
    sim.receive("tx", "ped", env.SerializeToString())
    assert sim.inbound.stats.rejected == {"unequipped_sender": 1} and not sim.inbound.received
    # warnings about RSM participants name the actor: ptcId = the world's object id = slot + 1
    ped_slot = sim.world.slot_of("ped")
    assert sim.names.resolve(participant_key(temporary_id("rsu1"), ped_slot + 1)) == "ped"
    assert sim.names.resolve(temporary_id("car_b").hex()) == "car_b"
    assert sim.names.resolve("rsu1/x") == "rsu1/x"


def test_the_world_gives_the_rsu_what_its_sensors_see_and_the_bus_hides_the_waiting_passenger() -> None:
    sc = load_scenario(VRUCW)
    sim = offline_sim(sc, "baseline")
    w = sim.world
    for actor, (x, y, heading) in {
        "car_a": (-40.0, -1.75, 0.0),
        "car_b": (30.0, 1.75, math.pi),
        "ped": (0.0, -6.0, math.pi / 2),
        "ped_b": (-25.0, 6.5, 0.0),
        "ped_c": (-8.0, -7.5, 0.0),
    }.items():
        s = w.slot_of(actor)
        w.x[s], w.y[s], w.heading_rad[s] = x, y, heading
    seen: dict[str, int] = {}
    for k in range(20):
        sim.sensors.step(k * 0.1)
        for d in sim.sensors.detections["rsu1"]:
            name = w.id_of(d.object_id - 1)
            seen[name] = seen.get(name, 0) + 1
    assert set(sim.sensors.detections) == {"rsu1"}
    assert "ped_c" not in seen and "car_b" not in seen  # behind the bus; behind the cameras
    assert seen["ped"] >= 15 and seen["car_a"] >= 15 and seen["ped_b"] >= 15
    assert sim.sensors.roadside is not None and sim.sensors.roadside.counts["rsu1/0"].occluded == 20


# -- the on-board app -------------------------------------------------------------------------------
def _host(speed: float = 11.11, x: float = -25.0, sigma: float = 0.02) -> Participant:
    return Participant("host", x, -1.75, speed, 0.0, 0.0, 0.0, 5.0, 2.0, sigma)


def _ped(
    x: float = 0.0, y: float = -4.5, speed: float = 1.4, heading_deg: float = 0.0, bound_m: float = 1.0, t: float = 0.0
) -> Participant:
    remote = RemoteState(
        temp_id=temporary_id("rsu1"),
        t_s=t,
        x=x,
        y=y,
        speed_mps=speed,
        heading_rad=compass_deg_to_enu_yaw_rad(heading_deg),
        accel_mps2=0.0,
        length_m=0.5,
        width_m=0.5,
        sigma_major_m=bound_m / 2.448,
        kind_class=0,
        events=0,
        ptc_type=day1_pb2.PARTICIPANT_PEDESTRIAN,
        ptc_id=7,
        source=day1_pb2.SOURCE_VIDEO,
    )
    p = vru_participant(remote, t, DEFAULTS)
    assert p is not None
    return p


def test_warns_of_a_pedestrian_stepping_into_the_path() -> None:
    # the host's front reaches the crosswalk in ~2 s, as the pedestrian (1 m square) enters its lane
    found = vulnerable_road_user_collision(_host(), [_ped()], DEFAULTS)
    assert len(found) == 1
    f = found[0]
    assert f.subject == "host" and f.other == participant_key(temporary_id("rsu1"), 7)
    assert f.kind == "crossing" and 1.5 < f.ttc_s <= DEFAULTS["vrucw_ttc_s"]


def test_silent_when_not_yet_within_the_ttc_threshold() -> None:
    assert vulnerable_road_user_collision(_host(x=-40.0), [_ped(y=-6.5)], DEFAULTS) == []


def test_silent_when_the_pedestrian_walks_away_from_the_lane() -> None:
    assert vulnerable_road_user_collision(_host(), [_ped(heading_deg=180.0)], DEFAULTS) == []
    assert vulnerable_road_user_collision(_host(), [_ped(y=-8.0, speed=0.0)], DEFAULTS) == []  # waiting


def test_silent_beyond_range_and_when_both_are_slow() -> None:
    assert vulnerable_road_user_collision(_host(), [_ped()], {**DEFAULTS, "vrucw_max_distance_m": 20.0}) == []
    # a car creeping at 2 m/s towards a pedestrian: both below 2.8 m/s (cerebrum), no check
    slow = _host(speed=2.0, x=-4.2)
    assert vulnerable_road_user_collision(slow, [_ped(y=-3.2)], DEFAULTS) == []
    assert vulnerable_road_user_collision(slow, [_ped(y=-3.2)], {**DEFAULTS, "vrucw_min_speed_mps": 1.0}) != []


def test_silent_when_either_position_is_too_poor() -> None:
    assert vulnerable_road_user_collision(_host(), [_ped(bound_m=5.0)], DEFAULTS) != []  # a5m is good enough
    assert vulnerable_road_user_collision(_host(), [_ped(bound_m=10.0)], DEFAULTS) == []  # a10m is not
    assert vulnerable_road_user_collision(_host(sigma=3.0), [_ped()], DEFAULTS) == []  # 7.3 m > 5 m
    assert vulnerable_road_user_collision(_host(sigma=math.inf), [_ped()], DEFAULTS) == []


def test_footprint_margin_and_who_counts_as_vulnerable() -> None:
    p = _ped()
    assert (p.length_m, p.width_m) == (1.0, 1.0)  # cerebrum's 0.5 m radius
    remote = RemoteState(
        temporary_id("car"), 0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 5.0, 2.0, 0.1, 10, False, day1_pb2.PARTICIPANT_MOTOR
    )
    assert vru_participant(remote, 0.0, DEFAULTS) is None  # cars are FCW's and ICW's business
    bike = RemoteState(
        temporary_id("bike"), 0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 1.8, 0.6, 0.1, 85, False, day1_pb2.PARTICIPANT_NON_MOTOR
    )
    b = vru_participant(bike, 0.0, DEFAULTS)
    assert b is not None and (b.length_m, b.width_m) == (2.0, 2.0) and b.key == temporary_id("bike").hex()


def test_rear_end_only_when_the_host_follows() -> None:
    def bike(x: float, speed: float) -> Participant:
        r = RemoteState(
            temporary_id("bike"), 0.0, x, -1.75, speed, 0.0, 0.0, 1.8, 0.6, 0.05, 85, False, 2
        )  # ptc_type 2 = non-motor
        p = vru_participant(r, 0.0, DEFAULTS)
        assert p is not None
        return p

    ahead = vulnerable_road_user_collision(_host(x=0.0), [bike(18.0, 4.0)], DEFAULTS)  # closing at 7 m/s
    assert [f.kind for f in ahead] == ["rear-end"]
    assert vulnerable_road_user_collision(_host(x=0.0, speed=4.0), [bike(-12.0, 11.0)], DEFAULTS) == []


# A car turning left (south, then east) through a sharp corner at the origin, at 6 m/s; a pedestrian (1 m
# square) walks north at 1.4 m/s across its exit at x = 10, from y = -3. From 5 m before the corner the car is
# on its exit after 5/6 s and its front (centre + 2.5 m) meets the pedestrian's near side (x = 9.5) at
# 5/6 + 7/6 = 2.0 s, when the pedestrian is at y = -0.2 (within the car's width): the same TTC as for a car
# driving straight east from (-5, 0). On its heading line (south) the turning car never meets him.
TURN_LEFT = [(0.0, 50.0), (0.0, 0.0), (50.0, 0.0)]


def _turning(y: float = 5.0, speed: float = 6.0) -> Participant:
    return Participant("host", 0.0, y, 0.0, -speed, 0.0, -math.pi / 2, 5.0, 2.0, 0.02)


def test_a_turning_host_is_predicted_along_its_route_as_early_as_a_straight_one() -> None:
    ped = _ped(x=10.0, y=-3.0)
    host = _turning()
    assert vulnerable_road_user_collision(host, [ped], DEFAULTS) == []  # on its heading line: no conflict
    (turning,) = vulnerable_road_user_collision(host, [ped], DEFAULTS, route_ahead(TURN_LEFT, host.x, host.y))
    straight = Participant("host", -5.0, 0.0, 6.0, 0.0, 0.0, 0.0, 5.0, 2.0, 0.02)
    (ahead,) = vulnerable_road_user_collision(straight, [ped], DEFAULTS)
    assert ahead.ttc_s == pytest.approx(2.0, abs=1e-6)
    # the route is sampled every metre: a sharp corner is cut by at most 0.3 m (0.05 s at 6 m/s), to the safe side
    assert ahead.ttc_s - 0.05 <= turning.ttc_s <= ahead.ttc_s + 1e-6 and turning.other == ped.key
    assert turning.kind == "crossing" and turning.subject == "host"
    # not yet within vrucw_ttc_s 1.5 m earlier (TTC 2.25 s), and nothing once the pedestrian has crossed
    early = _turning(y=6.5)
    assert vulnerable_road_user_collision(early, [ped], DEFAULTS, route_ahead(TURN_LEFT, early.x, early.y)) == []
    crossed = _ped(x=10.0, y=1.2)
    assert vulnerable_road_user_collision(host, [crossed], DEFAULTS, route_ahead(TURN_LEFT, host.x, host.y)) == []
    # a host braking at 6 m/s^2 stops 3 m on, before its corner: it never reaches its exit
    braking = replace(host, accel_mps2=-6.0)
    assert vulnerable_road_user_collision(braking, [ped], DEFAULTS, route_ahead(TURN_LEFT, host.x, host.y)) == []


def test_a_straight_route_or_a_bend_beyond_reach_changes_nothing() -> None:
    host, ped = _host(), _ped()
    straight = route_ahead([(-100.0, -1.75), (100.0, -1.75)], host.x, host.y)
    assert vulnerable_road_user_collision(host, [ped], DEFAULTS, straight) == vulnerable_road_user_collision(
        host, [ped], DEFAULTS
    )
    # a turn 40 m ahead, beyond the 11.11 m/s x 2.14 s = 23.8 m the host covers within the TTC
    later = route_ahead([(-100.0, -1.75), (15.0, -1.75), (15.0, 100.0)], host.x, host.y)
    assert vulnerable_road_user_collision(host, [ped], DEFAULTS, later) == vulnerable_road_user_collision(
        host, [ped], DEFAULTS
    )


def test_the_vehicle_warns_from_rsm_and_the_driver_brakes() -> None:
    car = _vehicles()["car_a"]
    frame = encode_rsm(
        [PerceivedObject(3, "pedestrian", "camera", 3.0, 0.0, -4.5, 1.4, math.pi / 2, 0.5, 0.5, 0.5)],
        actor_id="rsu1",
        ref_x=6.0,
        ref_y=8.0,
        frame=car.env.frame,
        epoch=car.env.epoch,
        msg_count=0,
    )
    events = []
    for tick in range(32):  # at t = 3.1 s car A's front is 23.4 m before the crosswalk: TTC 2.06 s
        heard = (Heard("rsu1", testbed_pb2.LINK_PC5, 3.1, 3.1, frame),) if tick == 31 else ()
        events += car.step(tick_ctx(tick, heard)).events
    assert len(events) == 1
    adv = events[0]
    assert adv.app == testbed_pb2.APP_VRUCW and adv.other_id == participant_key(temporary_id("rsu1"), 3)
    assert adv.conflict_type == "crossing" and adv.ttc_s <= DEFAULTS["vrucw_ttc_s"]
    assert car.driver is not None and car.driver.brake_at_s == pytest.approx(4.1)


# -- scenario files and expectations ----------------------------------------------------------------
def _problems(tmp_path: Path, old: str, new: str) -> dict[str, str]:
    text = VRUCW.read_text()
    assert old in text
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return dict(info.value.problems)


def test_scenario_checks_for_the_new_fields(tmp_path: Path) -> None:
    assert (
        "no apps"
        in _problems(tmp_path, "    apps: [vrucw]\n", "    apps: [vrucw]\n    equipped: false\n")["actors[0].apps"]
    )
    assert (
        "rsu"
        in _problems(tmp_path, "    range_m: 300\n", "    range_m: 300\n    equipped: false\n")["actors[5].equipped"]
    )
    assert (
        "tick"
        in _problems(tmp_path, "heading_deg: 225}", "heading_deg: 225, period_s: 0.05}")[
            "actors[5].sensors[0].period_s"
        ]
    )
    moved = "    sensors:\n      - {kind: camera, heading_deg: 225}   # looks south-west over the crosswalk"
    assert (
        "only an rsu"
        in _problems(tmp_path, "    apps: [vrucw]\n", f"    apps: [vrucw]\n{moved}\n")["actors[0].sensors"]
    )
    flat = _problems(tmp_path, "[-1.5, -3.5], [-13.5, -3.5]]", "[-1.5, -6.05], [-13.5, -6.05]]")
    assert "positive area" in flat["obstacles[0].polygon"]
    unknown = _problems(tmp_path, "kind: radar,", "kind: sonar,")
    assert "actors[5].sensors[1].kind" in unknown
    metric = _problems(tmp_path, "metric: latency_ms_p99, message: rsm", "metric: delivery_ratio, message: rsm")
    assert any("latency" in v for v in metric.values())


def test_no_warning_about_a_named_other_and_latency_of_one_message_type() -> None:
    events = [{"t_s": 3.0, "type": "warning", "variant": "v2x", "target": "car_a", "other": "ped", "app": "vrucw"}]
    about_ped_b = NoWarningExpectation(name="n", type="no_warning", target="car_a", other="ped_b")
    about_ped = NoWarningExpectation(name="n", type="no_warning", target="car_a", other="ped")
    assert check(about_ped_b, events, {})[0] and not check(about_ped, events, {})[0]
    metrics = {"v2x": {"latency_ms": {"p99": 150.0}, "latency_ms_by_message": {"rsm": {"p99": 2.4}}}}
    rsm = MetricExpectation(name="m", type="metric", metric="latency_ms_p99", message="rsm", max=100)
    assert check(rsm, metrics=metrics, events=[]) == (True, "latency_ms_p99 of RSM = 2.4 (expected <= 100)")
    spat = MetricExpectation(name="m", type="metric", metric="latency_ms_p99", message="spat", max=100)
    assert check(spat, metrics=metrics, events=[]) == (False, "latency_ms_p99 of SPAT not measured in variant v2x")


def test_delivery_ratio_of_one_link() -> None:
    """Newcomer review 5: 18 scenarios named "PC5 delivery ratio" a ratio over every link (a degraded Uu failed
    it); a metric expectation's `link` now holds one link's ratio, all links together without it."""
    metrics = {"v2x": {"delivery_ratio": 0.85, "delivery_ratio_by_link": {"pc5": 0.97, "uu": 0.5}}}
    pc5 = MetricExpectation(name="m", type="metric", metric="delivery_ratio", link="pc5", min=0.9)
    assert check(pc5, metrics=metrics, events=[]) == (True, "delivery_ratio of PC5 = 0.97 (expected >= 0.9)")
    every = MetricExpectation(name="m", type="metric", metric="delivery_ratio", min=0.9)
    assert check(every, metrics=metrics, events=[]) == (False, "delivery_ratio = 0.85 (expected >= 0.9)")
    wired = MetricExpectation(name="m", type="metric", metric="delivery_ratio", link="wired", min=0.9)
    assert check(wired, metrics=metrics, events=[]) == (False, "delivery_ratio of WIRED not measured in variant v2x")
    with pytest.raises(ValueError, match="'link' applies to delivery_ratio only"):
        MetricExpectation(name="m", type="metric", metric="latency_ms_p99", link="pc5", max=100)


# -- end to end -------------------------------------------------------------------------------------
@pytest.mark.broker
async def test_vrucw_run_rsm_latency_and_sensing_in_the_metrics() -> None:
    from v2x.run.runner import run_scenario

    result = await run_scenario(load_scenario(VRUCW), seed=3, broker="embedded")
    assert result["passed"], [e for e in result["expectations"] if not e["passed"]]
    v2x = result["metrics"]["v2x"]
    assert set(v2x["latency_ms_by_message"]) == {"bsm", "rsm"}
    assert v2x["latency_ms_by_message"]["rsm"]["p99"] <= 100
    camera, radar = v2x["sensing"]["rsu1/0"], v2x["sensing"]["rsu1/1"]
    assert camera["frames"] == radar["frames"] == 121  # 10 Hz over 12 s, ticks 0..120
    assert camera["occluded"] == camera["frames"]  # the passenger behind the bus, every frame
    assert 0.85 < camera["detected"] / camera["in_view"] <= 1.0
    warnings = [e for e in result["events"] if e["type"] == "warning"]
    assert {(e["target"], e["other"], e["app"]) for e in warnings} == {("car_a", "ped", "vrucw")}
    assert not [e for e in result["events"] if e["type"] == "positioning" and e["actor"].startswith("ped")]


async def test_a_car_turning_into_a_crosswalk_is_warned_as_early_as_one_driving_straight(tmp_path: Path) -> None:
    from v2x.run.runner import run_scenario

    turning = await run_scenario(load_scenario(TURN), seed=0, broker="loopback")
    assert turning["passed"], [e for e in turning["expectations"] if not e["passed"]]
    # the same car, speed and pedestrian, driving straight east along eb_t: as far from the crosswalk (x = 20)
    # at t = 0 as the turning car along its path (69.1 m: 129.1 m to (16, -1.75), less its 60 m start)
    path = "path: [[-1.75, 120], [-1.75, 16], [16, -1.75], [120, -1.75]]\n    start_m: 60"
    assert path in TURN.read_text()
    text = TURN.read_text().replace(path, "lane: eb_t\n    start_m: 146.9")
    (tmp_path / "straight.yaml").write_text(text.replace("id: vrucw-turn", "id: vrucw-straight"))
    straight_scenario = load_scenario(tmp_path / "straight.yaml")
    straight = await run_scenario(straight_scenario, seed=0, broker="loopback", variants=["v2x"])
    assert straight["passed"], [e for e in straight["expectations"] if not e["passed"]]

    def first_warning(result: dict[str, Any]) -> dict[str, Any]:
        return next(e for e in result["events"] if e["type"] == "warning" and e["variant"] == "v2x")

    turn, ahead = first_warning(turning), first_warning(straight)
    assert (turn["target"], turn["other"], turn["app"]) == ("car_c", "ped", "vrucw")
    # on its heading line the turning car was warned at TTC 1.73 s here (1.38 s in the review's run), under its
    # driver's 1 s reaction plus braking, and hit the pedestrian at 6.2 m/s; along its route as the straight one
    assert turn["ttc_s"] >= 2.0 and abs(turn["ttc_s"] - ahead["ttc_s"]) <= 0.15
    assert turn["t_s"] <= ahead["t_s"] + 0.2
    assert not [e for e in turning["events"] if e["type"] == "collision" and e["variant"] == "v2x"]
