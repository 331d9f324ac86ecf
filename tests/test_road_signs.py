"""RSI road traffic signs without a broker (IVS and SLW): RTSData on the wire (standard units, the speed
limit, round trip, out-of-range values), the RSU's 1 Hz signs beside its 10 Hz events, the apps'
hand-computed cases, the driver's speed cap, the vehicle and the world naming the sign, the `speed`
expectation and the scenario files' fields; the shipped scenarios end to end at the end."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests._agents import offline_sim, tick_ctx
from v2x.agents.base import Heard
from v2x.agents.roadside import RoadsideUnit
from v2x.agents.vehicle import VehicleAgent
from v2x.apps.driver import Driver
from v2x.apps.host import Host, Participant
from v2x.apps.registry import OnBoardView, app_spec
from v2x.apps.road_signs import SpeedLimitWarningApp, in_vehicle_signage, lane_limit_warning, speed_limit_warnings
from v2x.apps.thresholds import DEFAULTS
from v2x.cli import main
from v2x.geodesy import LocalFrame
from v2x.run.results import check
from v2x.run.runner import build_agents, environment
from v2x.scenario import ScenarioError, load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.scenario.model import SpeedExpectation
from v2x.units import MINUTE_OF_YEAR_UNAVAILABLE
from v2x.wire import frame_pb2, testbed_pb2
from v2x.wire.envelope import temporary_id
from v2x.wire.map_spat import Approach
from v2x.wire.rsi import ReferencePath, RoadEvent, RoadSign, decode_rsi, encode_rsi, road_sign_key

IVS = SCENARIO_DIR / "ivs.yaml"
SLW = SCENARIO_DIR / "slw.yaml"
SLW_MAP = SCENARIO_DIR / "slw-map.yaml"
HLW = SCENARIO_DIR / "hlw.yaml"
FRAME = LocalFrame(29.7150, 106.6300, 280.0)
EPOCH = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
MOY_0 = 120 * 1440 + 8 * 60  # MinuteOfTheYear of the epoch (see tests/test_hlw.py)
EB = ReferencePath(((300.0, -1.75), (900.0, -1.75)), 1.75)
LIMIT_40 = RoadSign(1, 201, 500.0, -5.0, (EB,), speed_limit_mps=40 / 3.6)
CHILDREN = RoadSign(2, 102, 500.0, -5.0, (EB,), 0.0, 90.0, priority=3)


# -- RTSData on the wire ------------------------------------------------------------------------------
def test_rsi_carries_signs_in_the_standard_units_next_to_events() -> None:
    event = RoadEvent(1, 408, 450.0, -1.75, 15.0, (EB,))
    msg = encode_rsi(
        [event],
        signs=[LIMIT_40, CHILDREN],
        actor_id="rsu",
        ref_x=510,
        ref_y=-10,
        frame=FRAME,
        t_s=0,
        epoch=EPOCH,
        msg_count=0,
    )
    rsi = msg.rsi
    assert len(rsi.rtes) == 1
    limit, children = rsi.rtss
    assert (limit.rts_id, limit.sign_type, limit.priority) == (1, 201, 0)
    assert limit.speed_limit == 556  # 11.111 m/s in 0.02 m/s
    assert (limit.start_time, limit.end_time) == (MOY_0, MINUTE_OF_YEAR_UNAVAILABLE)
    lat, lon = FRAME.to_wire(500.0, -5.0)
    assert (limit.sign_pos.offset_lat, limit.sign_pos.offset_lon) == (lat - rsi.ref_pos.lat, lon - rsi.ref_pos.lon)
    [path] = limit.reference_paths
    assert path.path_radius == 18 and len(path.active_path) == 2
    assert (children.sign_type, children.speed_limit, children.priority) == (102, 0, 3)  # 0: no figure
    assert (children.start_time, children.end_time) == (MOY_0, MOY_0 + 2)
    # signs alone make an RSI too
    only = encode_rsi(
        [], signs=[CHILDREN], actor_id="rsu", ref_x=0, ref_y=0, frame=FRAME, t_s=0, epoch=EPOCH, msg_count=0
    )
    assert len(only.rsi.rtes) == 0 and len(only.rsi.rtss) == 1


def test_signs_decode_back_within_the_wire_quanta_and_are_stable_on_a_second_round_trip() -> None:
    kw: dict[str, Any] = {"actor_id": "rsu", "ref_x": 510.0, "ref_y": -10.0, "frame": FRAME, "epoch": EPOCH}
    first = encode_rsi([], signs=[LIMIT_40, CHILDREN], t_s=0.0, msg_count=0, **kw)
    info = decode_rsi(first.rsi, now_s=10.0, frame=FRAME, epoch=EPOCH)
    limit, children = info.signs
    assert (limit.x, limit.y) == pytest.approx((500.0, -5.0), abs=0.02)
    assert limit.speed_limit_mps == pytest.approx(11.12) and children.speed_limit_mps is None
    for got, want in zip(limit.paths[0].points, EB.points, strict=True):
        assert got == pytest.approx(want, abs=0.02)
    assert (children.start_s, children.end_s) == pytest.approx((0.0, 120.0))
    assert limit.type_name == "speed limit (201) 40 km/h" and children.type_name == "children (102)"
    assert info.sign_key(limit) == road_sign_key(temporary_id("rsu"), 1) == f"{temporary_id('rsu').hex()}/rts1"
    again = encode_rsi([], signs=list(info.signs), t_s=0.0, msg_count=0, **kw)
    assert again.SerializeToString() == first.SerializeToString()


def test_sign_values_out_of_range_are_rejected() -> None:
    msg = encode_rsi(
        [], signs=[LIMIT_40], actor_id="r", ref_x=0, ref_y=0, frame=FRAME, t_s=0.0, epoch=EPOCH, msg_count=0
    )
    for field, value in (("sign_type", 70000), ("speed_limit", 8192), ("priority", 8), ("rts_id", 256)):
        bad = frame_pb2.MessageFrame()
        bad.CopyFrom(msg)
        setattr(bad.rsi.rtss[0], field, value)
        with pytest.raises(ValueError):
            decode_rsi(bad.rsi, now_s=0.0, frame=FRAME, epoch=EPOCH)
    with pytest.raises(ValueError, match="16 signs"):
        encode_rsi(
            [], signs=[CHILDREN] * 17, actor_id="r", ref_x=0, ref_y=0, frame=FRAME, t_s=0, epoch=EPOCH, msg_count=0
        )
    with pytest.raises(ValueError, match="at least one"):
        encode_rsi([], actor_id="r", ref_x=0, ref_y=0, frame=FRAME, t_s=0, epoch=EPOCH, msg_count=0)


# -- the roadside unit --------------------------------------------------------------------------------


def _rsis(rsu: RoadsideUnit, ticks: int) -> list[tuple[int, frame_pb2.MessageFrame]]:
    out = []
    for tick in range(ticks):
        out += [
            (tick, tx.frame) for tx in rsu.step(tick_ctx(tick)).transmissions if tx.frame.WhichOneof("msg") == "rsi"
        ]
    return out


def test_rsu_sends_signs_at_1_hz() -> None:
    sc = load_scenario(SLW)
    rsu = next(a for a in build_agents(sc, environment(sc)) if isinstance(a, RoadsideUnit))
    sent = _rsis(rsu, 31)
    assert [tick for tick, _ in sent] == [0, 10, 20, 30]
    assert all(len(f.rsi.rtss) == 1 and len(f.rsi.rtes) == 0 for _, f in sent)


def test_rsu_with_events_and_signs_sends_events_at_10_hz_and_adds_the_signs_every_second(tmp_path: Path) -> None:
    sign = (
        "        source: government\n    road_signs:\n      - {id: curve, type: 101, position: [60, 12], lanes: [eb]}\n"
    )
    path = tmp_path / "hlw-sign.yaml"
    text = HLW.read_text()
    assert "        source: government     # registered by the road operator\n" in text
    path.write_text(text.replace("        source: government     # registered by the road operator\n", sign))
    sc = load_scenario(path)
    rsu = next(a for a in build_agents(sc, environment(sc)) if isinstance(a, RoadsideUnit))
    sent = _rsis(rsu, 21)
    assert [tick for tick, _ in sent] == list(range(21))  # one RSI per tick
    assert all(len(f.rsi.rtes) == 1 for _, f in sent)
    assert [tick for tick, f in sent if f.rsi.rtss] == [0, 10, 20]


# -- the apps: hand-computed cases ----------------------------------------------------------------------
def _host(x: float, speed: float = 22.22, *, y: float = -1.75, heading_deg: float = 0.0, sigma: float = 0.02) -> Host:
    return Host(x, y, math.radians(heading_deg), speed, 0.0, 5.0, sigma)


def _shown(host: Host, sign: RoadSign = CHILDREN, t: float = 1.0) -> list[float]:
    return [s.distance_m for s in in_vehicle_signage(host, {"k": sign}, t, DEFAULTS)]


def _slw(host: Host, sign: RoadSign = LIMIT_40) -> list[tuple[float, float]]:
    return [(w.distance_m, w.excess_mps) for w in speed_limit_warnings(host, {"k": sign}, 1.0, DEFAULTS)]


def test_ivs_shows_a_sign_ahead_within_50_m_only() -> None:
    assert _shown(_host(450.0)) == [pytest.approx(47.5)]  # front bumper 452.5 -> sign 500
    assert _shown(_host(497.5)) == [pytest.approx(0.0)]  # at the sign
    assert _shown(_host(440.0)) == []  # 57.5 m: beyond the warning distance
    assert _shown(_host(499.0)) == []  # front bumper 1.5 m past the sign
    assert _shown(_host(450.0, heading_deg=180.0)) == []  # the other direction on the same line
    assert _shown(_host(450.0, y=1.75, heading_deg=180.0)) == []  # the oncoming lane: not on the path
    assert _shown(_host(450.0, sigma=3.0)) == []  # 95 % error 7.3 m > 5 m
    assert _shown(_host(450.0), t=100.0) == []  # outside the sign's window [0, 90)
    anywhere = RoadSign(3, 101, 500.0, -5.0)  # no reference path: straight line, if ahead
    assert _shown(_host(450.0), anywhere) == [pytest.approx(math.hypot(50.0, 3.25) - 2.5)]
    assert _shown(_host(450.0, heading_deg=90.0), anywhere) == []


def test_slw_warns_over_the_limit_plus_tolerance_before_and_inside_the_limited_stretch() -> None:
    limit = 40 / 3.6
    assert _slw(_host(400.0)) == [pytest.approx((97.5, 22.22 - limit))]  # approaching, 80 km/h
    assert _slw(_host(400.0, speed=limit + 5 / 3.6 - 0.01)) == []  # over the limit, within the 5 km/h tolerance
    assert _slw(_host(400.0, speed=limit + 5 / 3.6 + 0.01)) != []
    assert _slw(_host(400.0, speed=limit - 1.0)) == []  # under the limit
    assert _slw(_host(340.0)) == []  # 157.5 m before the sign: beyond 150 m
    assert _slw(_host(600.0, speed=20.0)) == [pytest.approx((-102.5, 20.0 - limit))]  # inside the stretch
    assert _slw(_host(950.0)) == []  # beyond the end of the limited stretch
    assert _slw(_host(400.0, heading_deg=180.0)) == []  # the other direction
    assert _slw(_host(400.0), CHILDREN) == []  # a sign without a speed limit
    anywhere = RoadSign(4, 201, 500.0, -5.0, speed_limit_mps=limit)  # no path: only ahead counts
    assert len(_slw(_host(400.0), anywhere)) == 1 and _slw(_host(600.0), anywhere) == []


# SLW from MAP: an eastbound approach to x1 at 40 km/h, stop line at x = 488 (rule 5, hand-computed)
APPROACH_40 = Approach("x1", 1, "eb", [(300.0, -1.75), (488.0, -1.75)], 3.5, 1, 40 / 3.6)


def _lane(host: Host, signs: tuple[float, ...] = (), approach: Approach = APPROACH_40) -> tuple[float, float] | None:
    w = lane_limit_warning(host, [approach], DEFAULTS, signs)
    return None if w is None else (w.distance_m, w.excess_mps)


def test_slw_warns_over_the_map_lane_limit_plus_tolerance_on_the_lane_only() -> None:
    limit = 40 / 3.6
    assert _lane(_host(400.0)) == pytest.approx((85.5, 22.22 - limit))  # front bumper 402.5 -> stop line 488
    assert _lane(_host(400.0, speed=limit + 5 / 3.6 - 0.01)) is None  # within the 5 km/h tolerance
    assert _lane(_host(400.0, speed=limit + 5 / 3.6 + 0.01)) is not None
    assert _lane(_host(400.0, y=-1.75 + 1.75 + 0.49)) is not None  # within half the width + the 0.5 m margin
    assert _lane(_host(400.0, y=-1.75 + 1.75 + 0.51)) is None  # off the lane
    assert _lane(_host(400.0, heading_deg=180.0)) is None  # the other direction on the same line
    assert _lane(_host(290.0)) is None  # before the lane begins (10 m: more than the 2.25 m reach)
    assert _lane(_host(487.0)) is None  # front bumper past the stop line: off the approach
    assert _lane(_host(400.0, sigma=3.0)) is None  # 95 % error 7.3 m > 5 m
    unlimited = Approach("x1", 1, "eb", APPROACH_40.points, 3.5, 1, None)
    assert _lane(_host(400.0), approach=unlimited) is None  # a MAP lane without a speed limit


def test_where_a_sign_and_the_map_lane_both_limit_the_host_the_lower_limit_wins() -> None:
    host = _host(400.0)  # 80 km/h on the 40 km/h lane
    assert _lane(host, (30 / 3.6,)) is None  # a 30 km/h sign warning covers the lane's 40
    assert _lane(host, (40 / 3.6,)) is None  # so does one at the lane's limit
    assert _lane(host, (60 / 3.6,)) is not None  # a 60 km/h sign does not lift the lane's 40
    party = Participant("host", host.x, host.y, 0.0, host.speed_mps, 0.0, host.heading_rad, 5.0, 2.0, host.sigma_m)
    view = OnBoardView(
        host=host,
        host_party=party,
        remotes={},
        perceived={},
        heard_events={},
        heard_signs={},
        approaches={1: [APPROACH_40]},
        signals={},
        thresholds=DEFAULTS,
    )
    # MAP alone: one warning, named after the intersection, the lane's limit as its figure, inside the stretch
    [raised] = SpeedLimitWarningApp().evaluate(view, 1.0)
    assert (raised.app, raised.other, raised.ttc_s) == ("slw", "x1", 0.0)
    assert raised.figure == pytest.approx(40 / 3.6) and raised.conflict_type == "MAP lane eb, 80 km/h"
    assert app_spec("slw").consumes == ("rsi", "map")
    # a 30 km/h sign 97.5 m ahead on the same road as well: only the sign's warning
    sign_30 = RoadSign(5, 201, 500.0, -5.0, (EB,), speed_limit_mps=30 / 3.6)
    both = SpeedLimitWarningApp().evaluate(replace(view, heard_signs={"k": (sign_30, 0.5)}), 1.0)
    assert [(r.other, round(r.figure * 3.6)) for r in both] == [("k", 30)]
    # a 60 km/h sign instead: both, the driver keeps to the lower (Driver.target_speed)
    sign_60 = RoadSign(6, 201, 500.0, -5.0, (EB,), speed_limit_mps=60 / 3.6)
    both = SpeedLimitWarningApp().evaluate(replace(view, heard_signs={"k": (sign_60, 0.5)}), 1.0)
    assert [(r.other, round(r.figure * 3.6)) for r in both] == [("k", 60), ("x1", 40)]
    # nothing heard: nothing raised
    assert SpeedLimitWarningApp().evaluate(replace(view, approaches={}), 1.0) == []


# -- the driver, the vehicle and the world --------------------------------------------------------------
def test_a_speed_cap_applies_after_the_reaction_time_and_the_lowest_wins() -> None:
    d = Driver(reaction_s=1.0, brake_mps2=4.0)
    d.on_speed_cap(2.0, 11.1)
    assert d.target_speed(2.9, 22.2) == 22.2 and d.target_speed(3.0, 22.2) == 11.1
    d.on_speed_cap(4.0, 8.3)
    assert d.target_speed(4.5, 22.2) == 11.1 and d.target_speed(5.0, 22.2) == 8.3
    d.on_speed_cap(6.0, 15.0)
    assert d.target_speed(9.0, 22.2) == 8.3 and d.brake_at_s is None  # never an emergency stop


def test_the_vehicle_shows_the_sign_once_and_the_driver_slows_others_see_nothing() -> None:
    sc = load_scenario(IVS)
    env = environment(sc)
    agents = build_agents(sc, env)
    rsu = next(a for a in agents if isinstance(a, RoadsideUnit))
    cars = {a.actor_id: a for a in agents if isinstance(a, VehicleAgent)}
    events: dict[str, list[testbed_pb2.Advisory]] = {name: [] for name in cars}
    for tick in range(120):
        rsi = [tx.frame for tx in rsu.step(tick_ctx(tick)).transmissions if tx.frame.WhichOneof("msg") == "rsi"]
        heard = tuple(Heard("rsu_school", testbed_pb2.LINK_PC5, tick * 0.1, tick * 0.1, f) for f in rsi)
        for name, car in cars.items():
            events[name] += car.step(tick_ctx(tick, heard)).events
    # car A's front bumper (centre 60 + 2.5 at t = 0, 13.89 m/s) is 50 m from the sign at t = 6.2995 s
    [adv] = events["car_a"]
    assert adv.app == testbed_pb2.APP_IVS and adv.severity == testbed_pb2.SEVERITY_INFO
    assert adv.other_id == road_sign_key(temporary_id("rsu_school"), 1) and adv.figure_name == "sign_m"
    assert adv.raised_at_s == pytest.approx(6.3) and adv.figure == pytest.approx(49.99, abs=0.01)
    assert adv.conflict_type == "children (102)"
    driver = cars["car_a"].driver
    assert driver is not None and driver.brake_at_s is None
    assert driver.target_speed(7.3, 13.89) == pytest.approx(8.33) and cars["car_a"].v < 9.5
    assert events["car_b"] == events["car_d"] == events["truck"] == []


def test_the_world_names_the_sign_after_the_scenario() -> None:
    sc = load_scenario(IVS)
    sim = offline_sim(sc)
    assert sim.names.resolve(road_sign_key(temporary_id("rsu_school"), 1)) == "children_sign"


# -- the speed expectation --------------------------------------------------------------------------------
def test_the_speed_expectation_reads_the_passage_at_its_point() -> None:
    exp = SpeedExpectation(name="n", type="speed", actor="car_a", at=(280.0, -1.75), max_mps=8.9)
    passage = {"t_s": 20.1, "type": "passage", "variant": "v2x", "actor": "car_a", "at": [280.0, -1.75]}
    ok, detail = check(exp, [{**passage, "speed_mps": 8.34}], {})
    assert ok and "8.34 m/s (30.0 km/h)" in detail and "<= 8.9" in detail
    assert not check(exp, [{**passage, "speed_mps": 13.89}], {})[0]
    assert check(exp, [{**passage, "speed_mps": 8.34, "at": [300.0, -1.75]}], {}) == (
        False,
        "car_a did not pass (280, -1.75)",
    )


# -- scenario files ---------------------------------------------------------------------------------------
def _problems(tmp_path: Path, old: str, new: str, base: Path = SLW) -> dict[str, str]:
    text = base.read_text()
    assert old in text
    path = tmp_path / "variant.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(path) in str(info.value)
    return dict(info.value.problems)


def test_road_sign_fields_are_checked_with_their_paths(tmp_path: Path) -> None:
    where = "actors[3].road_signs[0]"
    assert "speed_limit_kph" in _problems(tmp_path, "        speed_limit_kph: 40\n", "")[where]
    assert "65535" in _problems(tmp_path, "type: 201 ", "type: 70000 ")[f"{where}.type"]
    off = _problems(tmp_path, "position: [500, -5]", "position: [500, -30]")[f"{where}.position"]
    assert "11.75 m" in off and "28.2 m from path" in off
    assert "actor" in _problems(tmp_path, "- id: limit_40", "- id: car_a")[f"{where}.id"]
    assert "'nb'" in _problems(tmp_path, "path: [[300, -1.75], [900, -1.75]]", "lanes: [nb]")[f"{where}.lanes[0]"]
    path = "        path: [[300, -1.75], [900, -1.75]]\n"
    twice = _problems(tmp_path, path, path + "      - {id: limit_40, type: 101, position: [500, -5]}\n")
    assert "used twice" in twice["actors[3].road_signs[1].id"]
    signs = "".join(f"      - {{id: s{k}, type: 101, position: [500, -5]}}\n" for k in range(16))
    many = _problems(tmp_path, "    road_signs:\n", f"    road_signs:\n{signs}")
    assert "at most 16" in many["actors[3].road_signs"]
    moved = "    road_signs:\n      - {id: sign, type: 101, position: [0, 0]}\n"
    on_car = _problems(tmp_path, "    apps: [slw]\n", f"    apps: [slw]\n{moved}")
    assert "only an rsu" in on_car["actors[0].road_signs"]
    bounds = _problems(tmp_path, "max_mps: 12.5", "at_m: 3")
    assert any(k.startswith("expectations[3]") for k in bounds)
    other = _problems(tmp_path, "other: limit_40", "other: limit_50")["expectations[0].other"]
    assert "'limit_40'" in other


def test_a_malformed_sign_file_exits_2_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "ivs-bad.yaml"
    bad.write_text(IVS.read_text().replace("type: 102 ", "type: children ", 1))
    out = tmp_path / "out"
    assert main(["run", "ivs", str(bad), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: actors[4] (rsu_school).road_signs[0].type:" in err and "'children'" in err
    assert not out.exists()


def test_the_shipped_scenarios_are_in_the_catalogue() -> None:
    ivs, slw = load_scenario(IVS), load_scenario(SLW)
    assert [s.id for s in ivs.actor("rsu_school").road_signs] == ["children_sign"] and "ivs" in ivs.actor("car_a").apps
    assert [s.speed_limit_kph for s in slw.actor("rsu_village").road_signs] == [40] and "slw" in slw.actor("car_a").apps
    by_map = load_scenario(SLW_MAP)  # SLW from MAP alone: an RSU serving x1, whose lanes have a limit, and no sign
    rsu = by_map.actor("rsu_x1")
    assert rsu.intersections == ["x1"] and not rsu.road_signs and "slw" in by_map.actor("car_a").apps
    assert {lane.speed_limit_kph for lane in by_map.road.lanes} == {40}


# -- end to end -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("scenario", [IVS, SLW, SLW_MAP])
async def test_ivs_and_slw_pass_for_seeds_1_to_3(scenario: Path, seed: int) -> None:
    """On the loopback bus (the same outcome as over a broker, tests/test_e2e.py; seed 0 of each runs
    there on Mosquitto, against its golden record)."""
    from v2x.run.runner import run_scenario

    result = await run_scenario(load_scenario(scenario), seed=seed, broker="loopback")
    assert result["passed"], [e for e in result["expectations"] if not e["passed"]]
    assert ("map" if scenario == SLW_MAP else "rsi") in result["metrics"]["v2x"]["latency_ms_by_message"]
