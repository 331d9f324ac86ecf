"""HLW without a broker: RSI on the wire (standard units, round trip, out-of-range values), the RSU's
broadcast of its active road events, the on-board app's hand-computed cases, the vehicle and the world
naming the event, and the scenario file's new fields; the shipped scenario end to end at the end."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests._agents import offline_sim, tick_ctx
from v2x.agents.base import Heard
from v2x.agents.roadside import RoadsideUnit
from v2x.agents.vehicle import VehicleAgent
from v2x.apps.hlw import hazard_distance, hazardous_location_warnings
from v2x.apps.host import Host
from v2x.apps.thresholds import DEFAULTS
from v2x.cli import main
from v2x.geodesy import LocalFrame
from v2x.run.runner import build_agents, environment
from v2x.scenario import ScenarioError, load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.units import MINUTE_OF_YEAR_UNAVAILABLE
from v2x.wire import day1_pb2, frame_pb2, testbed_pb2
from v2x.wire.envelope import temporary_id
from v2x.wire.rsi import RTE_CONFIDENCE_MAX, ReferencePath, RoadEvent, decode_rsi, encode_rsi, road_event_key

HLW = SCENARIO_DIR / "hlw.yaml"
FRAME = LocalFrame(29.6005, 106.7420, 320.0)
EPOCH = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
# MinuteOfTheYear of the epoch: 1 Jan - 1 May 2026 is 31 + 28 + 31 + 30 = 120 days, then 8 hours.
MOY_0 = 120 * 1440 + 8 * 60


# -- RSI on the wire ----------------------------------------------------------------------------------
def _events() -> list[RoadEvent]:
    eb = ReferencePath(((-500.0, -1.75), (0.0, -1.75), (100.0, 98.25), (100.0, 600.0)), 1.75)
    return [
        RoadEvent(1, 408, 100.0, 155.0, 15.0, (eb,), 0.0, 1800.0, priority=6, source=2),
        RoadEvent(2, 707, -40.0, 1.75, 102.4, (), 30.0, 90.0, confidence=0.5),  # no paths: every direction
        RoadEvent(300, 407, 10.0, 10.0, 0.05, (), None, None),  # open-ended; rteId wraps into 0..255
    ]


def test_rsi_carries_events_in_the_standard_units_as_offsets_from_the_rsu() -> None:
    rsu_x, rsu_y = 70.0, 90.0
    msg = encode_rsi(
        _events(), actor_id="rsu_bend", ref_x=rsu_x, ref_y=rsu_y, frame=FRAME, t_s=30.0, epoch=EPOCH, msg_count=130
    )
    rsi = msg.rsi
    assert rsi.msg_cnt == 2 and rsi.id == temporary_id("rsu_bend") and rsi.moy == MOY_0
    assert (rsi.ref_pos.lat, rsi.ref_pos.lon) == FRAME.to_wire(rsu_x, rsu_y)
    spill, jam, ponding = rsi.rtes
    assert (spill.rte_id, spill.event_type, spill.event_source, spill.priority) == (1, 408, 2, 6)
    assert spill.event_radius == 150  # 15 m in 0.1 m
    assert (spill.start_time, spill.end_time) == (MOY_0, MOY_0 + 30)
    assert spill.event_confidence == RTE_CONFIDENCE_MAX  # not given: certain
    lat, lon = FRAME.to_wire(100.0, 155.0)
    assert (spill.event_pos.offset_lat, spill.event_pos.offset_lon) == (lat - rsi.ref_pos.lat, lon - rsi.ref_pos.lon)
    [path] = spill.reference_paths
    assert path.path_radius == 18  # 1.75 m -> 17.5 -> 18 (0.1 m, ties to even)
    assert len(path.active_path) == 4
    assert (jam.event_radius, len(jam.reference_paths), jam.event_confidence) == (1024, 0, 100)
    assert (jam.start_time, jam.end_time) == (MOY_0, MOY_0 + 2)  # 30 s floored, 90 s ceiled to the minute
    assert ponding.rte_id == 300 % 256 and ponding.event_radius == 0  # 5 cm rounds to 0 (not given)
    assert (ponding.start_time, ponding.end_time) == (MOY_0, MINUTE_OF_YEAR_UNAVAILABLE)


def test_rsi_decodes_back_within_the_wire_quanta_and_is_stable_on_a_second_round_trip() -> None:
    kw = {"actor_id": "rsu_bend", "ref_x": 70.0, "ref_y": 90.0, "frame": FRAME, "epoch": EPOCH, "msg_count": 0}
    first = encode_rsi(_events(), t_s=30.0, **kw)  # type: ignore[arg-type]
    info = decode_rsi(first.rsi, now_s=45.0, frame=FRAME, epoch=EPOCH)
    assert info.rsi_id == temporary_id("rsu_bend")
    spill, jam, ponding = info.events
    assert (spill.x, spill.y) == pytest.approx((100.0, 155.0), abs=0.02)
    assert spill.radius_m == pytest.approx(15.0) and spill.paths[0].radius_m == pytest.approx(1.8)
    for got, want in zip(spill.paths[0].points, _events()[0].paths[0].points, strict=True):
        assert got == pytest.approx(want, abs=0.02)
    assert (spill.start_s, spill.end_s) == pytest.approx((0.0, 1800.0))
    assert (spill.event_type, spill.priority, spill.source, spill.confidence) == (408, 6, 2, 1.0)
    assert (jam.start_s, jam.end_s) == pytest.approx((0.0, 120.0))
    assert jam.confidence == 0.5 and jam.paths == ()
    assert ponding.end_s is None and ponding.radius_m == 0.0
    assert info.key(spill) == road_event_key(temporary_id("rsu_bend"), 1) == f"{temporary_id('rsu_bend').hex()}/rte1"
    # what a receiver decoded encodes to the same wire values again
    again = encode_rsi(list(info.events), t_s=30.0, **kw)  # type: ignore[arg-type]
    assert again.SerializeToString() == first.SerializeToString()


def test_rsi_out_of_range_values_are_rejected_and_counted() -> None:
    msg = encode_rsi(_events()[:1], actor_id="r", ref_x=0, ref_y=0, frame=FRAME, t_s=0.0, epoch=EPOCH, msg_count=0)
    for field, value in (("event_radius", 1025), ("priority", 8), ("event_confidence", 201), ("start_time", 527041)):
        bad = frame_pb2.MessageFrame()
        bad.CopyFrom(msg)
        setattr(bad.rsi.rtes[0], field, value)
        with pytest.raises(ValueError):
            decode_rsi(bad.rsi, now_s=0.0, frame=FRAME, epoch=EPOCH)
    car = _vehicles()["car_a"]
    bad.rsi.rtes[0].event_radius = 5000
    car.step(tick_ctx(0, (Heard("rsu_bend", testbed_pb2.LINK_PC5, 0.0, 0.0, bad),)))
    assert car.rejected == {"out_of_range": 1} and car.road_events == {}
    with pytest.raises(ValueError):
        encode_rsi([], actor_id="r", ref_x=0, ref_y=0, frame=FRAME, t_s=0.0, epoch=EPOCH, msg_count=0)


def test_environment_decodes_one_transmission_once_for_all_receivers() -> None:
    sc = load_scenario(HLW)
    env = environment(sc)
    msg = encode_rsi(
        _events(), actor_id="rsu_bend", ref_x=70, ref_y=90, frame=env.frame, t_s=0.0, epoch=env.epoch, msg_count=0
    )
    heard = Heard("rsu_bend", testbed_pb2.LINK_PC5, 0.1, 0.0, msg)
    a, b = env.rsi(heard, 0.1), env.rsi(heard, 0.1)
    assert a is b and len(heard.memo) == 1


# -- the roadside unit ------------------------------------------------------------------------------
def _scenario(tmp_path: Path, old: str, new: str) -> Path:
    text = HLW.read_text()
    assert old in text
    path = tmp_path / "hlw-variant.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_rsu_broadcasts_rsi_at_10_hz_only_inside_the_events_time_window(tmp_path: Path) -> None:
    sc = load_scenario(_scenario(tmp_path, "active_s: [0, 1800]", "active_s: [1.0, 2.0]"))
    rsu = next(a for a in build_agents(sc, environment(sc)) if isinstance(a, RoadsideUnit))
    sent = []
    for tick in range(31):
        res = rsu.step(tick_ctx(tick))
        rsis = [tx for tx in res.transmissions if tx.frame.WhichOneof("msg") == "rsi"]
        assert all(tx.link == testbed_pb2.LINK_PC5 for tx in rsis)
        sent += [tick] * len(rsis)
    assert sent == list(range(10, 20))  # t = 1.0 .. 1.9 s, one per tick
    rte = _rtes_of(rsu, 15)[0]
    assert (rte.event_type, rte.event_radius, rte.priority, rte.event_source) == (408, 150, 6, 2)
    assert [len(p.active_path) for p in rte.reference_paths] == [19]  # the eb lane's centre line
    assert rte.reference_paths[0].path_radius == 18


def _rtes_of(rsu: RoadsideUnit, tick: int) -> list[day1_pb2.RTEData]:
    rsu._next_rsi_s = tick * 0.1  # due now
    res = rsu.step(tick_ctx(tick))
    return [rte for tx in res.transmissions if tx.frame.WhichOneof("msg") == "rsi" for rte in tx.frame.rsi.rtes]


# -- the on-board app: hand-computed cases ----------------------------------------------------------
# A straight eastbound reference path along y = 0, half-width 1.75 m; the hazard at x = 100, radius 10 m:
# the zone runs from x = 90 to x = 110. The host is a 5 m car, so its front bumper is 2.5 m ahead of x.
EAST = ReferencePath(((-500.0, 0.0), (500.0, 0.0)), 1.75)
EVENT = RoadEvent(1, 408, 100.0, 0.0, 10.0, (EAST,), 0.0, 600.0)


def _host(
    x: float, y: float = 0.0, heading_deg: float = 0.0, v: float = 20.0, a: float = 0.0, sigma: float = 0.02
) -> Host:
    return Host(x, y, math.radians(heading_deg), v, a, 5.0, sigma)


def _warn(host: Host, event: RoadEvent = EVENT, t: float = 5.0) -> list[tuple[float, float]]:
    return [(w.distance_m, w.time_to_hazard_s) for w in hazardous_location_warnings(host, {"k": event}, t, DEFAULTS)]


def test_warns_when_approaching_within_the_warning_time() -> None:
    # front at 2.5, zone from 90: 87.5 m at 20 m/s = 4.375 s <= 6 s
    assert _warn(_host(0.0)) == [pytest.approx((87.5, 4.375))]
    # front at -47.5: 137.5 m = 6.875 s > 6 s: not yet
    assert _warn(_host(-50.0)) == []
    # accelerating at 2 m/s^2 from x = -50: 137.5 = 20 t + t^2 -> t = 5.81 s: warned
    assert _warn(_host(-50.0, a=2.0)) == [pytest.approx((137.5, -10 + math.sqrt(100 + 137.5)))]
    # inside the zone, still short of its far edge (front at 107.5 < 110): 0 m, 0 s
    assert _warn(_host(105.0)) == [(0.0, 0.0)]


def test_silent_when_moving_away_or_after_passing_the_hazard() -> None:
    assert _warn(_host(108.0)) == []  # front at 110.5: past the far edge
    assert _warn(_host(150.0)) == []
    assert _warn(_host(150.0, heading_deg=180.0)) == []  # past it and turned round: wrong way on the path
    assert _warn(_host(0.0, heading_deg=180.0)) == []  # before it, but driving away (west)


def test_silent_for_traffic_in_the_other_direction() -> None:
    # the westbound lane 3.5 m north, driving west towards the hazard: off the eastbound path (3.5 > 1.75 + 0.5)
    assert _warn(_host(180.0, y=3.5, heading_deg=180.0)) == []
    # within the path's strip (2.2 <= 2.25) the direction decides
    assert _warn(_host(50.0, y=2.2)) == [pytest.approx((37.5, 1.875))]
    assert _warn(_host(150.0, y=2.2, heading_deg=180.0)) == []
    assert _warn(_host(50.0, y=2.3)) == []  # 2.3 m off: not on the path


def test_silent_outside_the_time_window() -> None:
    windowed = RoadEvent(1, 408, 100.0, 0.0, 10.0, (EAST,), 10.0, 20.0)
    assert _warn(_host(0.0), windowed, t=9.9) == []
    assert _warn(_host(0.0), windowed, t=10.0) == [pytest.approx((87.5, 4.375))]
    assert _warn(_host(0.0), windowed, t=19.9) != []
    assert _warn(_host(0.0), windowed, t=20.0) == []  # end exclusive


def test_silent_beyond_the_warning_distance_and_when_it_will_stop_short() -> None:
    # 60 m/s at x = -250: 337.5 m > 300 m, although 5.6 s <= 6 s
    assert _warn(_host(-250.0, v=60.0)) == []
    assert _warn(_host(-195.0, v=60.0)) == [pytest.approx((282.5, 282.5 / 60))]
    # braking at 4 m/s^2 from 20 m/s stops in 50 m < 87.5 m: never arrives
    assert _warn(_host(0.0, a=-4.0)) == []
    assert _warn(_host(0.0, v=0.0)) == []  # standing
    assert _warn(_host(105.0, v=0.0)) == []  # standing in the zone


def test_silent_when_the_host_position_is_too_poor() -> None:
    assert _warn(_host(0.0, sigma=2.0)) == [pytest.approx((87.5, 4.375))]  # 95 %: 4.9 m <= 5 m
    assert _warn(_host(0.0, sigma=2.1)) == []  # 5.1 m
    assert _warn(_host(0.0, sigma=math.inf)) == []


def test_distance_runs_along_a_bent_reference_path() -> None:
    bent = ReferencePath(((0.0, 0.0), (100.0, 0.0), (100.0, 100.0)), 1.75)
    event = RoadEvent(1, 408, 100.0, 50.0, 10.0, (bent,))
    # host at x = 50 heading east: 47.5 m to the corner + 40 m to the zone = 87.5 m (straight line: 70.7)
    assert hazard_distance(_host(50.0), event, 0.5) == pytest.approx(87.5)
    # on the second leg, heading north, front 2.5 m past (100, 20): 17.5 m
    assert hazard_distance(_host(100.0, y=20.0, heading_deg=90.0), event, 0.5) == pytest.approx(17.5)
    assert hazard_distance(_host(100.0, y=20.0, heading_deg=0.0), event, 0.5) is None  # across the leg


def test_an_event_without_paths_applies_ahead_in_every_direction() -> None:
    anywhere = RoadEvent(1, 407, 100.0, 20.0, 10.0, ())
    d = math.hypot(100.0, 20.0) - 10.0 - 2.5
    assert _warn(_host(0.0), anywhere) == [pytest.approx((d, d / 20.0))]  # 11.3 degrees off the heading
    assert _warn(_host(0.0, heading_deg=90.0), anywhere) == []  # 78.7 degrees off: not ahead
    assert _warn(_host(200.0, y=20.0, heading_deg=180.0), anywhere) == [pytest.approx((87.5, 4.375))]


# -- the vehicle and the world ----------------------------------------------------------------------
def _vehicles() -> dict[str, VehicleAgent]:
    sc = load_scenario(HLW)
    return {a.actor_id: a for a in build_agents(sc, environment(sc)) if isinstance(a, VehicleAgent)}


def test_the_vehicle_warns_from_rsi_once_and_the_driver_brakes_and_others_are_left_alone() -> None:
    sc = load_scenario(HLW)
    env = environment(sc)
    rsu = next(a for a in build_agents(sc, env) if isinstance(a, RoadsideUnit))
    cars = _vehicles()
    events: dict[str, list[testbed_pb2.Advisory]] = {name: [] for name in cars}
    for tick in range(80):
        rsi = [tx.frame for tx in rsu.step(tick_ctx(tick)).transmissions if tx.frame.WhichOneof("msg") == "rsi"]
        heard = tuple(Heard("rsu_bend", testbed_pb2.LINK_PC5, tick * 0.1, tick * 0.1, f) for f in rsi)
        for name, car in cars.items():
            events[name] += car.step(tick_ctx(tick, heard)).events
    # car A's front reaches 100 m before the zone (s = 698.77 - 100) at t = 5.77 s: first tick 5.8 s
    [adv] = events["car_a"]
    assert adv.app == testbed_pb2.APP_HLW and adv.other_id == road_event_key(temporary_id("rsu_bend"), 1)
    assert adv.raised_at_s == pytest.approx(5.8) and adv.figure_name == "hazard_m"
    assert adv.figure == pytest.approx(99.6, abs=0.05) and adv.ttc_s <= DEFAULTS["hlw_tti_s"]
    assert adv.conflict_type == "slippery road (408)"
    driver = cars["car_a"].driver
    assert driver is not None and driver.brake_at_s == pytest.approx(6.8) and driver.cause == "hlw"
    assert events["car_b"] == events["car_d"] == events["stalled"] == []
    assert cars["stalled"].road_events == {}  # no OBU: hears nothing


def test_the_world_names_the_warning_after_the_scenarios_road_event() -> None:
    sc = load_scenario(HLW)
    sim = offline_sim(sc)
    assert sim.names.resolve(road_event_key(temporary_id("rsu_bend"), 1)) == "spill"
    assert sim.names.resolve(road_event_key(temporary_id("rsu_bend"), 2)) == road_event_key(temporary_id("rsu_bend"), 2)
    assert not sim.channel.pc5_receivers[sim.world.slot_of("stalled")]


# -- scenario files ---------------------------------------------------------------------------------
def _problems(tmp_path: Path, old: str, new: str) -> dict[str, str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(_scenario(tmp_path, old, new))
    assert str(tmp_path) in str(info.value)
    return dict(info.value.problems)


def test_road_event_fields_are_checked_with_their_paths(tmp_path: Path) -> None:
    where = "actors[4].road_events[0]"
    assert "102.4" in _problems(tmp_path, "radius_m: 15", "radius_m: 150")[f"{where}.radius_m"]
    assert "65535" in _problems(tmp_path, "type: 408 ", "type: 70000 ")[f"{where}.type"]
    both = _problems(tmp_path, "lanes: [eb]", "lanes: [eb]\n        path: [[100, 0], [100, 200]]")
    assert "not both" in both[where]
    window = _problems(tmp_path, "active_s: [0, 1800]", "active_s: [30, 10]")
    assert "start < end" in window[f"{where}.active_s"]
    assert "'nb'" in _problems(tmp_path, "lanes: [eb]", "lanes: [nb]")[f"{where}.lanes[0]"]
    off = _problems(tmp_path, "position: [100, 155]", "position: [140, 155]")[f"{where}.position"]
    assert "16.75 m" in off and "40.0 m from lane 'eb'" in off
    assert "actor" in _problems(tmp_path, "- id: spill", "- id: stalled")[f"{where}.id"]
    assert "police" in _problems(tmp_path, "source: government", "source: radio")[f"{where}.source"]
    other = _problems(tmp_path, "other: spill", "other: oil")["expectations[0].other"]
    assert "'spill'" in other and "'oil'" in other
    moved = "    road_events:\n      - {id: ice, type: 408, position: [0, 0], radius_m: 5}\n"
    assert (
        "only an rsu" in _problems(tmp_path, "    apps: [hlw]\n", f"    apps: [hlw]\n{moved}")["actors[0].road_events"]
    )
    many = "".join(f"      - {{id: e{k}, type: 408, position: [100, 155], radius_m: 5}}\n" for k in range(8))
    assert (
        "at most 8" in _problems(tmp_path, "    road_events:\n", f"    road_events:\n{many}")["actors[4].road_events"]
    )


def test_a_malformed_hlw_file_exits_2_naming_file_field_and_expectation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _scenario(tmp_path, "radius_m: 15", "radius_m: fifteen")
    out = tmp_path / "out"
    assert main(["run", "hlw", str(bad), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: actors[4] (rsu_bend).road_events[0].radius_m:" in err and "'fifteen'" in err
    assert not out.exists(), "nothing may run when any scenario file is invalid"


def test_the_shipped_scenario_is_in_the_catalogue() -> None:
    sc = load_scenario(HLW)
    rsu = sc.actor("rsu_bend")
    assert [ev.id for ev in rsu.road_events] == ["spill"] and "hlw" in sc.actor("car_a").apps


# -- end to end -------------------------------------------------------------------------------------
@pytest.mark.broker
async def test_hlw_run_rsi_in_the_metrics_warning_stop_and_baseline_crash() -> None:
    """(Same seed, same outcome, also across brokers: tests/test_e2e.py, parametrised with hlw.)"""
    from v2x.run.runner import run_scenario

    sc = load_scenario(HLW)
    a = await run_scenario(sc, seed=7, broker="embedded")
    assert a["passed"], [e for e in a["expectations"] if not e["passed"]]
    v2x = a["metrics"]["v2x"]
    assert set(v2x["latency_ms_by_message"]) == {"bsm", "rsi"}
    warnings = [e for e in a["events"] if e["type"] == "warning"]
    assert [(e["target"], e["other"], e["app"], e["conflict"]) for e in warnings] == [
        ("car_a", "spill", "hlw", "slippery road (408)")
    ]
    [stop] = [e for e in a["events"] if e["type"] == "stop" and e["variant"] == "v2x"]
    assert stop["actor"] == "car_a" and stop["y_m"] < 140 - 2.5  # front bumper short of the zone (y = 140)
    collisions = [e for e in a["events"] if e["type"] == "collision"]
    assert [(e["variant"], e["actors"]) for e in collisions] == [("baseline", ["car_a", "stalled"])]
