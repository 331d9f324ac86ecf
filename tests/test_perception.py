"""RSM / SSM against the world's truth (v2x.sim.perception): data age at delivery, gross errors per sender, the
expectations that read them, ``v2x conformance`` of a roadside unit; SDS telling the host among the shared
participants (M1); the built-in SSM's detected regions (M4)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from pydantic import ValidationError

from v2x.apps.host import Participant
from v2x.apps.sds import is_host, shared_participants
from v2x.apps.thresholds import DEFAULTS
from v2x.geodesy import LocalFrame
from v2x.run.conformance import perception_check
from v2x.run.results import check
from v2x.scenario.model import MetricExpectation
from v2x.scenario.sensors import COVERAGE_POINTS, coverage_polygon, in_view, resolve
from v2x.sim.channel import Transmission
from v2x.sim.perception import PerceptionCheck, participant_errors, stated_participants
from v2x.wire import day1_pb2, testbed_pb2
from v2x.wire.bsm import RemoteState
from v2x.wire.envelope import temporary_id
from v2x.wire.rsm import PerceivedObject, encode_rsm

GEO = LocalFrame(29.5, 106.5, 0.0)
EPOCH = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def _rsm(t_s: float, x: float, y: float, speed: float, kind: str = "car") -> bytes:
    obj = PerceivedObject(3, kind, "radar", t_s, x, y, speed, math.pi / 2, 4.5, 1.8, 0.5, 0.1)
    frame = encode_rsm([obj], actor_id="rsu1", ref_x=9.0, ref_y=9.0, frame=GEO, epoch=EPOCH, msg_count=0)
    return frame.SerializeToString()


def _tx(frame: bytes, tick: int, link: testbed_pb2.LinkKind.ValueType = testbed_pb2.LINK_PC5) -> Transmission:
    tx_s = tick * 0.1
    env = testbed_pb2.Envelope(sender_id="rsu1", seq=tick + 1, tick=tick, tx_time_us=round(tx_s * 1e6), link=link)
    env.frame = frame
    return Transmission(tick, 0, tick + 1, tx_s, link, (), env.SerializeToString(), "rsm")


def _check(truth_x: float = 1.75, truth_y: float = -20.0, speed: float = 8.33) -> PerceptionCheck:
    check = PerceptionCheck(GEO, EPOCH, 0.1, lambda slot: "rsu1")
    for k in range(11):  # a car driving north at `speed`, at (truth_x, truth_y) at t = 1.0
        t = k * 0.1
        y = np.array([truth_y - speed * (1.0 - t)])
        check.note_truth(t, ["car"], np.array([truth_x]), y, np.array([0.0]), np.array([speed]))
    return check


@pytest.mark.parametrize(
    ("fault", "stated_t", "x", "speed", "errors"),
    [
        ("none", 0.9, 1.75, 8.33, []),
        ("100 ms early stamp: within the noise", 0.9, 1.75, 8.33, []),
        ("position x100 (cm for m)", 0.9, 175.0, 8.33, ["position"]),
        ("km/h for m/s", 0.9, 1.75, 30.0, ["speed"]),
        ("3 s old", -2.1, 1.75, 8.33, ["stale"]),
        ("in the future", 1.2, 1.75, 8.33, ["future"]),
    ],
)
def test_gross_errors_against_the_truth_at_the_stated_time(
    fault: str, stated_t: float, x: float, speed: float, errors: list[str]
) -> None:
    check = _check()
    # measured at 0.9 s (the car then at y = -20.833), sent at 1.0 s
    frame = _rsm(stated_t, x, -20.0 - 8.33 * 0.1, speed)
    (p,) = stated_participants(_parse(frame), 1.0, GEO, EPOCH)
    assert p.t_s == pytest.approx(stated_t, abs=1e-3)
    assert participant_errors(p, 1.0, check._truth_at(p.t_s)) == errors, fault


def _parse(frame: bytes):  # type: ignore[no-untyped-def]
    from v2x.wire import frame_pb2

    return frame_pb2.MessageFrame.FromString(frame)


def test_a_participant_of_the_wrong_type_is_a_position_error() -> None:
    check = _check()
    (p,) = stated_participants(_parse(_rsm(0.9, 1.75, -20.833, 8.33, kind="pedestrian")), 1.0, GEO, EPOCH)
    assert participant_errors(p, 1.0, check._truth_at(0.9)) == ["position"]


def test_data_age_is_delivery_minus_the_stated_time_and_the_wired_copy_counts_once() -> None:
    check = _check()
    frame = _rsm(0.9, 1.75, -20.833, 8.33)
    pc5, wired = _tx(frame, 10), _tx(frame, 10, testbed_pb2.LINK_WIRED)
    check.fanned_out([pc5], np.array([0, 0]), np.array([1.0014, 1.0024]))
    check.fanned_out([wired], np.array([0]), np.array([1.001]))
    m = check.metrics()
    assert m["perception_errors"] == {"rsu1": {"participants": 1, "position": 0, "speed": 0, "future": 0, "stale": 0}}
    age = m["data_age_ms_by_message"]["rsm"]
    assert age["p50"] == pytest.approx(101.4) and age["max"] == pytest.approx(102.4)
    # a stale one: its data age says how old, and it is counted per sender
    check.fanned_out([_tx(_rsm(-2.0, 1.75, -20.833, 8.33), 10)], np.array([0]), np.array([1.002]))
    m = check.metrics()
    assert m["perception_errors"]["rsu1"]["stale"] == 1
    assert m["data_age_ms_by_message"]["rsm"]["max"] == pytest.approx(3002.0)


def test_no_perception_message_no_metrics() -> None:
    assert PerceptionCheck(GEO, EPOCH, 0.1, str).metrics() == {}


def _metrics(errors: int) -> dict[str, dict[str, object]]:
    return {
        "v2x": {
            "data_age_ms_by_message": {"ssm": {"p50": 101.4, "p95": 102.4, "p99": 102.4, "max": 102.4}},
            "perception_errors": {
                "rsu1": {"participants": 185, "position": 0, "speed": errors, "future": 0, "stale": 0}
            },
        }
    }


def test_expectations_on_data_age_and_perception_errors() -> None:
    age = MetricExpectation(name="age", type="metric", metric="data_age_ms_p99", message="ssm", max=200)
    errors = MetricExpectation(name="errors", type="metric", metric="perception_errors", max=0)
    assert check(age, [], _metrics(0)) == (
        True,
        "data_age_ms_p99 of SSM = 102.4 (expected <= 200)",
    )
    assert check(errors, [], _metrics(0))[0]
    ok, detail = check(errors, [], _metrics(3))
    assert not ok and detail == "perception_errors = 3 (expected <= 0)"
    ok, detail = check(errors, [], {"v2x": {}})
    assert not ok and "not measured" in detail
    with pytest.raises(ValidationError, match="needs 'message'"):
        MetricExpectation(name="x", type="metric", metric="data_age_ms_p99", max=200)
    with pytest.raises(ValidationError, match="needs 'message'"):
        MetricExpectation(name="x", type="metric", metric="data_age_ms_p99", message="bsm", max=200)


def test_conformance_perception_check_of_an_rsu() -> None:
    problems, detail, nothing = perception_check(_metrics(0)["v2x"], "rsu1")
    assert problems == [] and nothing == "" and "185 participant(s) agree" in detail and "102.4 ms" in detail
    problems, _, _ = perception_check(_metrics(113)["v2x"], "rsu1")
    assert problems == ["113 of 185 participant(s): speed more than 3 m/s off the road user's (km/h for m/s?)"]
    assert perception_check({}, "rsu1")[2] == "no RSM or SSM came"
    assert perception_check(None, "rsu1")[2] == "the run did not complete"


def test_conformance_takes_an_rsu_and_still_refuses_a_platform(capsys: pytest.CaptureFixture[str]) -> None:
    from v2x.cli import main

    code = main(["conformance", "--actor", "edge", "--scenario", "icw-perception", "--broker", "mqtt://127.0.0.1:1"])
    assert code == 2
    assert "no road user or RSU 'edge' (it has ['car_a', 'car_b', 'car_c', 'rsu_x1'])" in capsys.readouterr().err


# -- M1: SDS tells the host among the shared participants ----------------------------------------------------


def _shared(x: float, y: float, t_s: float, speed: float = 8.33, pid: bytes = b"") -> RemoteState:
    return RemoteState(
        temp_id=temporary_id("rsu1"),
        t_s=t_s,
        x=x,
        y=y,
        speed_mps=speed,
        heading_rad=math.pi / 2,
        accel_mps2=0.0,
        length_m=4.5,
        width_m=1.8,
        sigma_major_m=0.2,
        kind_class=10,
        events=0,
        ptc_type=day1_pb2.PARTICIPANT_MOTOR,
        ptc_id=3,
        participant_id=pid,
    )


HOST = Participant("host", 1.75, -20.0, 0.0, 8.33, 0.0, math.pi / 2, 4.5, 1.8, 0.02)
TRACK = [(0.5 + 0.1 * k, 1.75, -20.0 - 8.33 * (0.5 - 0.1 * k)) for k in range(6)]  # 0.5 .. 1.0 s


@pytest.mark.parametrize(
    ("case", "shared"),
    [
        # the host as a station saw it at 0.9 s, stamped right
        ("right", _shared(1.75, -20.833, 0.9)),
        # the same, its speed in km/h: extrapolated to now it is 2.2 m ahead (a crossing at TTC 0 before)
        ("km/h", _shared(1.75, -20.833, 0.9, speed=30.0)),
        # stamped 300 ms early: its centre is 2.5 m ahead of where the host was at the stated time
        ("stale 0.3 s", _shared(1.75, -20.833, 0.6)),
        # far off, but matched to the host's BSMs by the station (ParticipantData.id)
        ("id", _shared(40.0, 40.0, 0.9, pid=temporary_id("car_a"))),
    ],
)
def test_sds_knows_the_host_by_its_track_and_its_id(case: str, shared: RemoteState) -> None:
    assert is_host(shared, HOST, 1.0, DEFAULTS, TRACK, temporary_id("car_a")), case
    assert shared_participants(HOST, [shared], 1.0, DEFAULTS, TRACK, temporary_id("car_a")) == [], case


def test_sds_does_not_take_a_car_in_the_next_lane_or_a_crossing_one_for_the_host() -> None:
    beside = _shared(1.75 - 3.5, -20.833, 0.9)  # the next lane, level with the host
    crossing = _shared(1.75 + 6.0, -17.0, 0.9)
    other_id = _shared(1.75 - 3.5, -20.833, 0.9, pid=temporary_id("car_b"))
    for s in (beside, crossing, other_id):
        assert not is_host(s, HOST, 1.0, DEFAULTS, TRACK, temporary_id("car_a"))
    # before the track begins, the host is taken back along its velocity
    assert is_host(_shared(1.75, -20.0 - 8.33 * 0.8, 0.2), HOST, 1.0, DEFAULTS, TRACK)


# -- M4: the built-in SSM's detected regions ----------------------------------------------------------------------


def test_coverage_polygon_is_the_sensors_field_of_view() -> None:
    from v2x.scenario.model import SensorSpec

    radar = resolve(SensorSpec(kind="radar", heading_deg=0.0))
    poly = coverage_polygon(9.0, 9.0, radar)
    assert len(poly) == COVERAGE_POINTS and poly[0] == (9.0, 9.0)
    xs, ys = np.array([p[0] for p in poly[1:]]), np.array([p[1] for p in poly[1:]])
    assert np.allclose(np.hypot(xs - 9.0, ys - 9.0), radar.range_m)
    inside, _ = in_view(9.0, 9.0, radar, xs + (9.0 - xs) * 1e-6, ys + (9.0 - ys) * 1e-6)
    assert inside.all()  # the arc's points (a hair inside) are in view
    lidar = coverage_polygon(0.0, 0.0, resolve(SensorSpec(kind="lidar", heading_deg=0.0)))
    assert len(lidar) == COVERAGE_POINTS and (0.0, 0.0) not in lidar


def test_the_built_in_ssm_carries_its_sensors_coverage() -> None:
    from tests.test_sds import SDS
    from v2x.agents.roadside import RoadsideUnit
    from v2x.run.runner import build_agents, environment
    from v2x.scenario import load_scenario
    from v2x.wire.day2 import decode_ssm

    sc = load_scenario(SDS)
    env = environment(sc)
    rsu = next(a for a in build_agents(sc, env) if isinstance(a, RoadsideUnit))
    spec = sc.actor(rsu.actor_id)
    assert len(rsu.regions) == len(spec.sensors) >= 1
    obj = PerceivedObject(3, "car", "radar", 0.0, -19.0, -1.75, 8.33, 0.0, 4.5, 1.8, 0.5, 0.1)
    tx = rsu._ssm(0.1, [obj])
    share = decode_ssm(tx.frame.ssm, now_s=0.1, frame=env.frame, epoch=env.epoch)
    assert len(share.regions) == len(spec.sensors)
    for got, want in zip(share.regions, rsu.regions, strict=True):
        assert np.allclose(np.array(got), np.array(want), atol=0.05)
