"""Signal controllers, MAP + SPAT on the wire, and the on-board RLVW app, without a broker."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from tests._agents import rtk_gnss
from v2x.agents.base import Heard, TickContext
from v2x.agents.roadside import RoadsideUnit
from v2x.agents.vehicle import VehicleAgent
from v2x.apps.host import Host
from v2x.apps.rlvw import match, red_light_warning, time_to_travel
from v2x.apps.thresholds import DEFAULTS
from v2x.run.runner import build_agents, environment
from v2x.scenario import ScenarioError, load_scenario, signals
from v2x.scenario.loader import SCENARIO_DIR
from v2x.scenario.model import IntersectionSpec, LaneSpec, SignalSpec
from v2x.scenario.signals import FixedTimeController, approaches, crossed
from v2x.wire import testbed_pb2
from v2x.wire.map_spat import (
    GREEN,
    RED,
    YELLOW,
    Approach,
    Interval,
    MapNode,
    SignalState,
    decode_map,
    decode_spat,
    encode_map,
    encode_spat,
    light_at,
)

RLVW = SCENARIO_DIR / "rlvw.yaml"
STOP_X = -math.sqrt(12.0**2 - 1.75**2)  # where lane eb (y = -1.75) enters the 12 m box


def _plan(offset: float = 0.0) -> SignalSpec:
    return SignalSpec.model_validate(
        {
            "offset_s": offset,
            "phases": [
                {"id": 1, "lanes": ["eb"], "green_s": 20, "yellow_s": 3, "all_red_s": 2},
                {"id": 2, "lanes": ["nb"], "green_s": 15, "yellow_s": 3, "all_red_s": 5},
            ],
        }
    )


# -- the controller ---------------------------------------------------------------------------------
def test_fixed_time_plan_lights_over_a_cycle() -> None:
    ctl = FixedTimeController(_plan())
    assert ctl.cycle_s == 48.0
    expected_1 = [(0, GREEN), (19.9, GREEN), (20, YELLOW), (22.9, YELLOW), (23, RED), (47.9, RED), (48, GREEN)]
    for t, light in expected_1:
        assert ctl.light(1, t) == light, t
    # phase 2 starts after phase 1's green, yellow and all-red: green 25-40, yellow 40-43, red 43-73
    expected_2 = [(0, RED), (24.9, RED), (25, GREEN), (39.9, GREEN), (40, YELLOW), (43, RED), (72.9, RED), (73, GREEN)]
    for t, light in expected_2:
        assert ctl.light(2, t) == light, t


def test_offset_shifts_the_cycle_and_red_merges_across_cycles() -> None:
    ctl = FixedTimeController(_plan(offset=15.0))  # at t = 0 the cycle is 15 s in
    assert ctl.light(1, 0.0) == GREEN and ctl.light(1, 5.0) == YELLOW and ctl.light(1, 8.0) == RED
    timeline = ctl.timeline(1, 0.0)
    assert timeline[:3] == [Interval(GREEN, -15.0, 5.0), Interval(YELLOW, 5.0, 8.0), Interval(RED, 8.0, 33.0)]
    # phase 2 is red from 43 s into one cycle to 25 s into the next: one interval, -20 s to 10 s here
    assert ctl.timeline(2, 0.0)[0] == Interval(RED, -20.0, 10.0)
    assert light_at(timeline, 1000.0) is None  # beyond what the timeline covers: unknown, not guessed


# -- geometry -----------------------------------------------------------------------------------------
def test_stop_lines_are_where_lanes_enter_the_box_and_crossing_is_directional() -> None:
    sc = load_scenario(RLVW)
    aps = {a.lane: a for a in approaches(sc)}
    assert set(aps) == {"eb", "wb", "nb", "sb"}
    eb = aps["eb"]
    assert eb.stop_point == pytest.approx((STOP_X, -1.75))
    assert eb.phase_id == 1 and aps["nb"].phase_id == 2
    assert crossed(eb, (STOP_X - 0.5, -1.75), (STOP_X + 0.5, -1.75))
    assert not crossed(eb, (STOP_X + 0.5, -1.75), (STOP_X - 0.5, -1.75))  # backwards
    assert not crossed(eb, (STOP_X - 0.5, 1.75), (STOP_X + 0.5, 1.75))  # the other lane
    assert not crossed(eb, (STOP_X - 1.0, -1.75), (STOP_X - 0.1, -1.75))  # not there yet


def test_a_lane_through_a_street_grid_is_an_approach_of_each_crossroads_from_the_one_before() -> None:
    sc = load_scenario(SCENARIO_DIR / "urban-grid.yaml")
    aps = approaches(sc)
    eb = {a.intersection: a for a in aps if a.lane == "eb_m"}
    assert set(eb) == {"x_w", "x_c", "x_e"}
    assert eb["x_w"].points[0] == (-300.0, -1.75)  # from the lane's start
    for ix, before in (("x_c", -100.0), ("x_e", 0.0)):  # from where it leaves the 12 m box before
        assert eb[ix].points[0] == pytest.approx((before - STOP_X, -1.75))
        assert eb[ix].stop_point == pytest.approx((before + 100.0 + STOP_X, -1.75))
    wb = {a.intersection: a for a in aps if a.lane == "wb_m"}
    assert wb["x_w"].points[0] == pytest.approx((STOP_X, 1.75))  # westbound: from x_c's west side
    assert wb["x_w"].stop_point == pytest.approx((-100.0 - STOP_X, 1.75))

    def car(x: float, y: float, heading_rad: float) -> Host:
        args = {"x": x, "y": y, "heading_rad": heading_rad, "speed_mps": 10.0, "accel_mps2": 0.0}
        args.update(length_m=5.0, width_m=2.0, sigma_m=0.1)
        return Host(**args)  # type: ignore[arg-type]

    # Map matching (RLVW, GLOSA, the driver's eyes) picks the crossroads ahead, whichever way one drives.
    m = match(car(-50.0, -1.75, 0.0), aps, 0.5)
    assert m is not None and (m.approach.intersection, m.approach.lane) == ("x_c", "eb_m")
    assert m.distance_m == pytest.approx(STOP_X + 50.0 - 2.5)
    m = match(car(-50.0, 1.75, math.pi), aps, 0.5)
    assert m is not None and (m.approach.intersection, m.approach.lane) == ("x_w", "wb_m")
    assert match(car(0.0, -1.75, 0.0), aps, 0.5) is None  # inside a box: on no approach


def _street_grid(tmp_path: Path, n: int) -> Path:
    """An n x n grid of signalised crossroads 100 m apart, each street one lane each way through all of them."""
    half, lanes, boxes = (n + 1) * 50.0, [], []
    for k in range(n):
        c = (k - (n - 1) / 2) * 100.0
        for lane_id, line in (
            (f"eb{k}", [[-half, c - 1.75], [half, c - 1.75]]),
            (f"wb{k}", [[half, c + 1.75], [-half, c + 1.75]]),
            (f"nb{k}", [[c + 1.75, -half], [c + 1.75, half]]),
            (f"sb{k}", [[c - 1.75, half], [c - 1.75, -half]]),
        ):
            lanes.append({"id": lane_id, "centerline": line, "width_m": 3.5})
    for i in range(n):
        for j in range(n):
            phases = [
                {"id": 1, "lanes": [f"eb{j}", f"wb{j}"], "green_s": 20, "yellow_s": 3, "all_red_s": 2},
                {"id": 2, "lanes": [f"nb{i}", f"sb{i}"], "green_s": 20, "yellow_s": 3, "all_red_s": 2},
            ]
            center = [(i - (n - 1) / 2) * 100.0, (j - (n - 1) / 2) * 100.0]
            boxes.append({"id": f"x{i}_{j}", "center": center, "radius_m": 12, "signal": {"phases": phases}})
    doc = {
        "id": "grid",
        "name": "street grid",
        "origin": {"lat_deg": 30.0, "lon_deg": 104.0, "alt_m": 0.0},
        "duration_s": 2.0,
        "road": {"lanes": lanes, "intersections": boxes},
        "actors": [{"id": "rsu1", "kind": "rsu", "position": [0, 0]}],
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_a_street_grids_approaches_work_out_each_lane_at_each_crossroads_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # diffreview26: naming each movement's egress asked every crossroads for every lane's approach afresh
    # (crossroads^2 x lanes^2): a 10 x 10 grid's approaches took 18 s. Counted rather than timed.
    sc = load_scenario(_street_grid(tmp_path, 4))
    asked: list[tuple[str, str]] = []
    real = signals.approach_points

    def counted(lane: LaneSpec, ix: IntersectionSpec, others: Sequence[IntersectionSpec] = ()) -> object:
        asked.append((lane.id, ix.id))
        return real(lane, ix, others)

    monkeypatch.setattr(signals, "approach_points", counted)
    aps = approaches(sc)
    assert len(aps) == 16 * 4 and len(asked) == len(set(asked)) == 16 * 4
    # Each egress is named where it enters the next crossroads: eb0 leaves x1_0 for x2_0 (node 2 * 4 + 1),
    # where it is the first of the lanes (eb0, wb0, nb2, sb2).
    eb = next(a for a in aps if a.intersection == "x1_0" and a.lane == "eb0")
    assert [(c.node_id, c.lane_id) for c in eb.connections] == [(9, 1)]
    # A roadside unit serving one crossroads asks only about its 4 lanes, and each of them at most at the
    # 3 other crossroads it enters.
    asked.clear()
    approaches(sc, ["x1_1"])
    assert len(asked) == len(set(asked)) <= 4 + 4 * 3


# -- MAP and SPAT on the wire ---------------------------------------------------------------------------
def test_map_round_trip_keeps_geometry_phase_and_limit() -> None:
    sc = load_scenario(RLVW)
    env = environment(sc)
    aps = approaches(sc)
    frame = encode_map([MapNode(1, "x1", 0.0, 0.0, aps)], frame=env.frame, t_s=3.0, epoch=env.epoch, msg_count=3)
    back = decode_map(frame.map, frame=env.frame)
    assert [(a.lane, a.node_id, a.intersection, a.phase_id) for a in back] == [
        (a.lane, 1, "x1", a.phase_id) for a in aps
    ]
    for got, sent in zip(back, aps, strict=True):
        assert got.width_m == pytest.approx(sent.width_m)
        assert got.speed_limit_mps == pytest.approx(50 / 3.6, abs=0.02)
        for (gx, gy), (sx, sy) in zip(got.points, sent.points, strict=True):
            assert math.hypot(gx - sx, gy - sy) < 0.02  # 1e-7 degree is ~1 cm


def test_spat_round_trip_gives_absolute_intervals_even_when_received_late() -> None:
    sc = load_scenario(RLVW)
    env = environment(sc)
    ctl = FixedTimeController(_plan(offset=15.0))
    t = 6.3
    state = SignalState(1, "x1", {p: ctl.timeline(p, t) for p in ctl.phase_ids})
    frame = encode_spat([state], t_s=t, epoch=env.epoch, msg_count=0, name="rsu")
    ps = frame.spat.intersections[0].phases[0].phase_states
    # phase 1 at 6.3 s: yellow now (ends in 1.7 s), then red from 1.7 s to 26.7 s, then green
    assert [p.light for p in ps] == [YELLOW, RED, GREEN]
    assert ps[0].timing.start_time == 0 and ps[0].timing.likely_end_time == 17
    assert ps[1].timing.start_time == 17 and ps[1].timing.likely_end_time == 267
    for delay in (0.0, 0.25):  # decoded 250 ms later: the countdown is relative to the message's timestamp
        [back] = decode_spat(frame.spat, now_s=t + delay, epoch=env.epoch)
        got = back.phases[1]
        assert [iv.light for iv in got[:3]] == [YELLOW, RED, GREEN]
        assert got[0].end_s == pytest.approx(8.0, abs=0.051)
        assert got[1].start_s == pytest.approx(8.0, abs=0.051) and got[1].end_s == pytest.approx(33.0, abs=0.051)


# -- the RLVW app -------------------------------------------------------------------------------------
def _eb() -> Approach:
    return Approach("x1", 1, "eb", [(-300.0, -1.75), (STOP_X, -1.75)], 3.5, 1)


def _host(front_to_line: float, v: float = 14.0, a: float = 0.0, **kw: float) -> Host:
    centre_x = STOP_X - front_to_line - 2.5
    args = {"x": centre_x, "y": -1.75, "heading_rad": 0.0, "speed_mps": v, "accel_mps2": a, "length_m": 5.0}
    args["sigma_m"] = 0.05
    args["width_m"] = 2.0
    args.update(kw)
    return Host(**args)  # type: ignore[arg-type]  # every field a float but turn_signal (left at "")


SIGNALS_RED_AT_10 = {(1, 1): [Interval(YELLOW, 5.0, 8.0), Interval(RED, 8.0, 33.0), Interval(GREEN, 33.0, 53.0)]}


def test_time_to_travel_exact_cases() -> None:
    assert time_to_travel(56.0, 14.0, 0.0) == pytest.approx(4.0)
    assert time_to_travel(0.0, 14.0, 0.0) == 0.0
    assert time_to_travel(24.0, 10.0, 2.0) == pytest.approx(2.0)  # 10 t + t^2 = 24 -> t = 2
    assert time_to_travel(30.0, 10.0, -2.0) == math.inf  # stops after 25 m
    assert time_to_travel(24.0, 10.0, -2.0) == pytest.approx(4.0)  # 10 t - t^2 = 24 -> t = 4
    assert time_to_travel(10.0, 0.0, 0.0) == math.inf


def test_rlvw_warns_when_the_light_is_red_at_arrival_within_the_tti() -> None:
    # t = 6: 56 m at 14 m/s -> arrives at t = 10, 2 s into red; TTI 4 s = the threshold
    w = red_light_warning(_host(56.0), [_eb()], SIGNALS_RED_AT_10, 6.0, DEFAULTS)
    assert w is not None
    assert w.distance_m == pytest.approx(56.0) and w.time_to_line_s == pytest.approx(4.0) and w.light_at_arrival == RED


@pytest.mark.parametrize(
    ("why", "host", "t"),
    [
        ("beyond the 150 m range", _host(151.0, v=40.0), 6.0),  # 3.8 s away, red at arrival
        ("before the TTI", _host(57.0), 6.0),  # 4.07 s away
        ("braking to a stop before the line", _host(40.0, a=-3.0), 6.0),  # stops in 32.7 m
        ("already past the line", _host(-3.0), 6.0),
        ("position not good enough", _host(56.0, sigma_m=1.0), 6.0),
        ("crosses on yellow", _host(14.0), 6.0),  # arrives at 7.0 s, yellow until 8 s
        ("opposite direction", _host(56.0, heading_rad=math.pi), 6.0),
        ("other lane", _host(56.0, y=1.75), 6.0),
    ],
)
def test_rlvw_stays_silent(why: str, host: Host, t: float) -> None:
    assert red_light_warning(host, [_eb()], SIGNALS_RED_AT_10, t, DEFAULTS) is None, why


def test_rlvw_unknown_timing_or_unsignalised_lane_is_silent() -> None:
    assert red_light_warning(_host(56.0), [_eb()], {}, 6.0, DEFAULTS) is None
    unsignalised = Approach("x1", 1, "eb", _eb().points, 3.5, 0)
    assert red_light_warning(_host(56.0), [unsignalised], SIGNALS_RED_AT_10, 6.0, DEFAULTS) is None
    green = {(1, 1): [Interval(GREEN, 0.0, 20.0)]}
    assert red_light_warning(_host(56.0), [_eb()], green, 6.0, DEFAULTS) is None


def test_map_matching_picks_the_closest_lane_with_the_right_heading() -> None:
    wb = Approach("x1", 1, "wb", [(300.0, 1.75), (-STOP_X, 1.75)], 3.5, 1)
    m = match(_host(20.0, y=-1.0), [wb, _eb()], 0.5)
    assert m is not None and m.approach.lane == "eb" and m.distance_m == pytest.approx(20.0)


# -- the agents: RSU -> SPAT/MAP -> vehicle, by hand ------------------------------------------------------
def _agents() -> tuple[RoadsideUnit, VehicleAgent]:
    sc = load_scenario(RLVW)
    env = environment(sc)
    agents = {a.actor_id: a for a in build_agents(sc, env)}
    rsu, car = agents["rsu_x1"], agents["car_a"]
    assert isinstance(rsu, RoadsideUnit) and isinstance(car, VehicleAgent)
    return rsu, car


def _drive(rsu: RoadsideUnit, car: VehicleAgent, until_s: float) -> list[testbed_pb2.Advisory]:
    """Step both, delivering everything the RSU sends in a tick to the car in the next tick."""
    warnings: list[testbed_pb2.Advisory] = []
    heard: tuple[Heard, ...] = ()
    for tick in range(round(until_s / 0.1) + 1):
        t = round(tick * 0.1, 9)
        sent = rsu.step(TickContext(tick, t, 0.1, rtk_gnss(), ()))
        warnings += car.step(TickContext(tick, t, 0.1, rtk_gnss(), heard)).events
        heard = tuple(Heard(rsu.actor_id, tx.link, t + 0.002, t, tx.frame) for tx in sent.transmissions)
    return warnings


def test_rsu_sends_map_each_second_and_spat_each_tick() -> None:
    rsu, _ = _agents()
    kinds = [
        [tx.frame.WhichOneof("msg") for tx in rsu.step(TickContext(k, k * 0.1, 0.1, rtk_gnss(), ())).transmissions]
        for k in range(12)
    ]
    assert kinds[0] == ["map", "spat"] and kinds[1] == ["spat"] and kinds[10] == ["map", "spat"]
    assert sum(k.count("spat") for k in kinds) == 12


def test_vehicle_warns_from_what_spat_says_not_from_the_scenario() -> None:
    rsu, car = _agents()
    warnings = _drive(rsu, car, 7.0)
    assert [w.app for w in warnings] == [testbed_pb2.APP_RLVW]
    assert 5.9 <= warnings[0].raised_at_s <= 6.2 and warnings[0].other_id == "x1"
    # The same drive with an RSU whose controller shows phase 1 green for longer: no warning. The car only
    # knows the light through SPAT.
    rsu2, car2 = _agents()
    _, ctl = rsu2.controllers[1]
    rsu2.controllers[1] = ("x1", FixedTimeController(ctl.plan.model_copy(update={"offset_s": 0.0})))
    assert _drive(rsu2, car2, 7.0) == []


# -- the scenario file -------------------------------------------------------------------------------------
def _bad(tmp_path: Path, old: str, new: str) -> dict[str, str]:
    path = tmp_path / "bad.yaml"
    text = RLVW.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(path) in str(info.value)
    return dict(info.value.problems)


def test_signal_plan_errors_name_the_field(tmp_path: Path) -> None:
    p = _bad(tmp_path, "lanes: [nb, sb]", "lanes: [nb, zz]")
    assert "zz" in p["road.intersections[0].signal.phases[1].lanes[1]"]
    p = _bad(tmp_path, "lanes: [nb, sb]", "lanes: [nb, eb]")
    assert "two phases" in p["road.intersections[0].signal.phases[1].lanes[1]"]
    p = _bad(tmp_path, "{id: 2, lanes", "{id: 1, lanes")
    assert "used twice" in p["road.intersections[0].signal.phases[1].id"]
    p = _bad(tmp_path, "intersections: [x1]", "intersections: [x9]")
    assert "x9" in p["actors[2].intersections[0]"]
    p = _bad(
        tmp_path, "green_s: 20, yellow_s: 3, all_red_s: 2}\n          - {id: 2", "green_s: -1}\n          - {id: 2"
    )
    assert "greater than 0" in p["road.intersections[0].signal.phases[0].green_s"]


def test_a_phase_lane_that_never_reaches_the_box_is_rejected(tmp_path: Path) -> None:
    far = "- {id: far, centerline: [[-300, 50], [300, 50]], width_m: 3.5}\n  intersections:"
    text = (
        RLVW.read_text().replace("  intersections:", "    " + far, 1).replace("lanes: [nb, sb]", "lanes: [nb, sb, far]")
    )
    path = tmp_path / "far.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    problems = dict(info.value.problems)
    assert "does not" in problems["road.intersections[0].signal.phases[1].lanes[2]"]


def test_an_rlvw_or_glosa_expectation_names_the_intersection(tmp_path: Path) -> None:
    old = "target: car_a, window_s: [5.5, 6.5]"
    path = tmp_path / "named.yaml"
    path.write_text(RLVW.read_text().replace(old, "target: car_a, other: x1, window_s: [5.5, 6.5]", 1))
    assert load_scenario(path).expectations[0].other == "x1"  # type: ignore[union-attr]
    p = _bad(tmp_path, old, "target: car_a, other: x9, window_s: [5.5, 6.5]")
    assert "x9" in p["expectations[0].other"]
