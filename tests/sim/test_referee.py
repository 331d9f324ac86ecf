"""The referee alone, on hand-placed truths: collisions (and the road users they bring to rest), red-light
violations at stop lines, stops and passages of speed gates (rlvw's crossing: phase 1 (eb/wb) green until
5 s, yellow until 8 s, red until 35 s; phase 2 (nb/sb) green 10-30 s; stop lines 11.87 m before the centre;
queue-crash's three cars in one eastbound lane along y = 0)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from v2x.core import SpatialGrid, WorldState
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.scenario.model import Scenario, SpeedExpectation
from v2x.sim.actors import world_state
from v2x.sim.referee import Referee

STOP_X = -11.871710070583731  # eb stop line (car_a drives east along y = -1.75)


def _scenario() -> Scenario:
    sc = load_scenario(SCENARIO_DIR / "rlvw.yaml")
    gates = [
        SpeedExpectation(name="g", type="speed", actor="car_b", at=(1.75, 50.0), max_mps=20.0),
        SpeedExpectation(name="far", type="speed", actor="car_b", at=(20.0, 60.0), max_mps=20.0),  # 18 m aside
    ]
    return sc.model_copy(update={"expectations": gates})


def _referee(variant: str = "v2x") -> tuple[Referee, WorldState]:
    sc = _scenario()
    w = world_state(sc)
    return Referee(w, sc, variant), w


def _put(w: WorldState, actor: str, x: float, y: float, heading_rad: float, speed: float) -> None:
    s = np.array([w.slot_of(actor)], dtype=np.intp)
    v = (speed * math.cos(heading_rad), speed * math.sin(heading_rad))
    z = np.zeros(1)
    w.set_state(s, np.array([x]), np.array([y]), np.array([v[0]]), np.array([v[1]]), z, z, np.array([heading_rad]))


def _grid(w: WorldState) -> SpatialGrid:
    return SpatialGrid.build(w, 50.0)


def test_a_collision_is_recorded_once_per_pair_with_the_relative_speed() -> None:
    ref, w = _referee("baseline")
    _put(w, "car_a", -1.0, -1.75, 0.0, 12.0)
    _put(w, "car_b", 1.75, -2.0, math.pi / 2, 5.0)  # footprints overlap
    [event] = ref.collisions(3.0, _grid(w))
    assert event == {
        "t_s": 3.0,
        "type": "collision",
        "variant": "baseline",
        "actors": ["car_a", "car_b"],
        "relative_speed_mps": 13.0,  # hypot(12, 5)
    }
    assert ref.collisions(3.1, _grid(w)) == []  # still overlapping: the same collision


def _queue() -> tuple[Referee, WorldState]:
    sc = load_scenario(SCENARIO_DIR / "queue-crash.yaml")
    w = world_state(sc)
    return Referee(w, sc, "baseline"), w


def _state(w: WorldState, actor: str) -> tuple[float, ...]:
    s = w.slot_of(actor)
    return tuple(round(float(v), 6) for v in (w.x[s], w.y[s], w.vx[s], w.vy[s], w.ax[s], w.ay[s], w.heading_rad[s]))


def test_colliding_road_users_come_to_rest_where_they_touched_whatever_is_reported_later() -> None:
    ref, w = _queue()
    _put(w, "lead", 100.0, 0.0, 0.0, 2.0)
    _put(w, "middle", 95.5, 0.0, 0.0, 15.0)  # boxes (5 m long) overlap by 0.5 m
    _put(w, "last", 50.0, 0.0, 0.0, 15.0)
    [hit] = ref.collisions(6.0, _grid(w))
    assert (hit["actors"], hit["relative_speed_mps"]) == (["lead", "middle"], 13.0)  # from the speeds before
    assert _state(w, "lead") == (100.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # at rest at once, where it touched
    assert _state(w, "middle") == (95.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert _state(w, "last")[2] == 15.0  # not in it: untouched
    # their agents report them moving on (through each other): the world keeps them where they came to rest
    _put(w, "lead", 101.0, 0.0, 0.0, 1.0)
    _put(w, "middle", 97.0, 0.5, 0.3, 15.0)
    ref.hold(6.1)
    assert _state(w, "lead") == (100.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert _state(w, "middle") == (95.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert ref.collisions(6.1, _grid(w)) == []  # still touching: the same collision, not a new one
    # the stop of each is recorded where it came to rest, in the tick of the collision
    ref2, w2 = _queue()
    for k, (lead_x, middle_x) in enumerate([(90.0, 80.0), (100.0, 95.5)]):
        _put(w2, "lead", lead_x, 0.0, 0.0, 2.0)
        _put(w2, "middle", middle_x, 0.0, 0.0, 15.0)
        _put(w2, "last", 10.0, 0.0, 0.0, 0.0)
        events = ref2.step(5.9 + k / 10, _grid(w2))
    assert [(e["type"], e.get("actor"), e.get("x_m")) for e in events] == [
        ("collision", None, None),
        ("stop", "lead", 100.0),
        ("stop", "middle", 95.5),
    ]


def test_every_new_contact_is_a_collision_in_order_a_road_user_running_into_a_wreck_too() -> None:
    ref, w = _queue()
    _put(w, "lead", 100.0, 0.0, 0.0, 0.0)
    _put(w, "middle", 96.0, 0.0, 0.0, 15.0)
    _put(w, "last", 80.0, 0.0, 0.0, 16.0)
    first = ref.collisions(6.0, _grid(w))
    _put(w, "last", 89.0, 0.0, 0.0, 16.0)  # 2 m short of the wreck's back (middle: 93.5 .. 98.5)
    ref.hold(6.1)
    assert ref.collisions(6.1, _grid(w)) == []
    _put(w, "last", 91.2, 0.0, 0.0, 16.0)  # 0.2 m into the middle car's back (the lead is 3.8 m further on)
    ref.hold(6.2)
    second = ref.collisions(6.2, _grid(w))
    assert [(e["t_s"], e["actors"], e["relative_speed_mps"]) for e in first + second] == [
        (6.0, ["lead", "middle"], 15.0),
        (6.2, ["last", "middle"], 16.0),  # the wreck stands still: the relative speed is the last car's
    ]
    assert _state(w, "last")[:3] == (91.2, 0.0, 0.0)  # it comes to rest in turn
    _put(w, "last", 96.0, 0.0, 0.0, 16.0)  # its agent drives on, through both wrecks
    ref.hold(6.3)
    assert ref.collisions(6.3, _grid(w)) == [] and _state(w, "last")[0] == 91.2


def test_several_new_contacts_in_one_tick_are_recorded_in_actor_id_order() -> None:
    ref, w = _queue()
    _put(w, "lead", 100.0, 0.0, 0.0, 0.0)
    _put(w, "middle", 96.0, 0.0, 0.0, 10.0)
    _put(w, "last", 92.0, 0.0, 0.0, 12.0)  # touches the middle car (and, 8 m behind, not the lead)
    assert [e["actors"] for e in ref.collisions(1.0, _grid(w))] == [["last", "middle"], ["lead", "middle"]]
    assert [_state(w, a)[2] for a in ("lead", "middle", "last")] == [0.0, 0.0, 0.0]


def test_an_rsu_overlapping_a_car_is_no_collision() -> None:
    ref, w = _referee()
    rsu = w.slot_of("rsu_x1")
    _put(w, "car_a", float(w.x[rsu]), float(w.y[rsu]), 0.0, 10.0)
    assert ref.collisions(1.0, _grid(w)) == []


def test_crossing_the_stop_line_on_red_is_a_violation_and_on_green_is_not() -> None:
    ref, w = _referee()
    half = float(w.length_m[w.slot_of("car_a")]) / 2
    _put(w, "car_b", 1.75, -100.0, math.pi / 2, 0.0)  # far from its line
    _put(w, "car_a", STOP_X - half - 1.0, -1.75, 0.0, 13.9)  # front bumper 1 m before the line
    assert ref.red_lights(8.9) == []  # first sight: nothing to compare with
    _put(w, "car_a", STOP_X - half + 0.39, -1.75, 0.0, 13.9)  # front 0.39 m past it, at 9.0 s (red since 8 s)
    assert ref.red_lights(9.0) == [
        {
            "t_s": 9.0,
            "type": "violation",
            "variant": "v2x",
            "kind": "red_light",
            "actor": "car_a",
            "intersection": "x1",
            "lane": "eb",
            "speed_mps": 13.9,
        }
    ]
    assert ref.red_lights(9.1) == []  # already past
    # car B crosses its (nb) line at 10.5 s on its fresh green: no violation
    half_b = float(w.length_m[w.slot_of("car_b")]) / 2
    _put(w, "car_b", 1.75, STOP_X - half_b - 0.5, math.pi / 2, 13.9)
    assert ref.red_lights(10.4) == []
    _put(w, "car_b", 1.75, STOP_X - half_b + 0.5, math.pi / 2, 13.9)
    assert ref.red_lights(10.5) == []


def test_crossing_on_green_before_the_yellow_is_not_a_violation() -> None:
    ref, w = _referee()
    half = float(w.length_m[w.slot_of("car_a")]) / 2
    _put(w, "car_a", STOP_X - half - 1.0, -1.75, 0.0, 13.9)
    ref.red_lights(3.9)
    _put(w, "car_a", STOP_X - half + 0.4, -1.75, 0.0, 13.9)
    assert ref.red_lights(4.0) == []


def test_a_stop_needs_moving_first_and_is_recorded_once_per_standstill() -> None:
    ref, w = _referee()
    _put(w, "car_b", 1.75, -100.0, math.pi / 2, 0.0)
    speeds = [0.0, 5.0, 0.05, 0.05, 0.5, 0.0, 2.0, 0.09]  # a stop at 0.2 s; 0.5 m/s is no restart; again at 0.7 s
    stops = []
    for k, v in enumerate(speeds):
        _put(w, "car_a", -50.0 + k, -1.75, 0.0, v)
        stops += ref.stops(k / 10)
    assert stops == [
        {"t_s": 0.2, "type": "stop", "variant": "v2x", "actor": "car_a", "x_m": -48.0, "y_m": -1.75},
        {"t_s": 0.7, "type": "stop", "variant": "v2x", "actor": "car_a", "x_m": -43.0, "y_m": -1.75},
    ]


def test_a_speed_gate_records_the_speed_as_the_centre_passes_within_10_m_sideways() -> None:
    ref, w = _referee()
    _put(w, "car_a", -100.0, -1.75, 0.0, 0.0)
    passages = []
    for k, y in enumerate([48.0, 49.5, 50.5, 52.0, 70.0]):
        _put(w, "car_b", 1.75, y, math.pi / 2, 13.0 + k)
        passages += ref.passages(k / 10)
    # the gate at (1.75, 50) is passed between 0.1 s and 0.2 s (recorded at 0.2 s, 15 m/s); the one at
    # (20, 60) is 18.25 m aside when car B passes its line: not passed
    assert passages == [
        {"t_s": 0.2, "type": "passage", "variant": "v2x", "actor": "car_b", "at": [1.75, 50.0], "speed_mps": 15.0}
    ]


def test_step_runs_collisions_red_lights_stops_and_passages_in_that_order() -> None:
    ref, w = _referee()
    half = float(w.length_m[w.slot_of("car_a")]) / 2
    _put(w, "car_a", STOP_X - half - 1.0, -1.75, 0.0, 13.9)
    _put(w, "car_b", 1.75, 48.0, math.pi / 2, 13.0)
    assert ref.step(8.9, _grid(w)) == []
    _put(w, "car_a", STOP_X - half + 0.5, -1.75, 0.0, 0.0)
    _put(w, "car_b", 1.75, 51.0, math.pi / 2, 13.0)
    types = [e["type"] for e in ref.step(9.0, _grid(w))]
    assert types == ["violation", "stop", "passage"]
    assert ref.step(9.1, _grid(w)) == []
    assert pytest.approx(ref.gates[(w.slot_of("car_b"), (20.0, 60.0))]) == 9.0  # still watching the far gate


def test_the_gap_is_measured_along_the_followers_heading_inside_the_window_only() -> None:
    """A diff review: the `gap` measurement was tested only through whole runs. By hand, on a heading of 30
    degrees: the window's edges count, ticks outside it do not, a time gap needs the follower to move at
    GAP_MIN_SPEED_MPS or more, and an actor that never moves has no time gap (None)."""
    from v2x.scenario.model import GapExpectation
    from v2x.sim.referee import GAP_MIN_SPEED_MPS

    sc = load_scenario(SCENARIO_DIR / "queue-crash.yaml")
    gaps = [
        GapExpectation(name=a, type="gap", actor=a, other="lead", window_s=(2, 4), measure="smallest_m", min=1)
        for a in ("middle", "last")
    ]
    sc = sc.model_copy(update={"expectations": gaps})
    w = world_state(sc)
    ref = Referee(w, sc, "v2x")
    half = (float(w.length_m[w.slot_of("lead")]) + float(w.length_m[w.slot_of("middle")])) / 2
    assert float(w.length_m[w.slot_of("last")]) == float(w.length_m[w.slot_of("middle")])
    h = math.radians(30)
    c, s = math.cos(h), math.sin(h)

    def place(actor: str, along: float, aside: float, speed: float) -> None:
        _put(w, actor, along * c - aside * s, along * s + aside * c, h, speed)

    place("lead", 100.0, 1.0, 10.0)  # 1 m aside: the gap is along the follower's heading, not straight across
    place("last", 0.0, 0.0, 0.0)  # never moves
    for t, along, speed in [
        (1.99, 99.0, 10.0),  # before the window: a gap of almost nothing, not counted
        (2.0, 80.0, 10.0),  # the window's first edge counts
        (3.0, 90.0, GAP_MIN_SPEED_MPS / 2),  # too slow for a time gap; its gap counts
        (4.0, 70.0, 20.0),  # the last edge counts
        (4.01, 99.0, 20.0),  # after the window
    ]:
        place("middle", along, 0.0, speed)
        ref.gap_extremes(t)
    middle, last = ref.gap_report()
    assert middle == {
        "actor": "middle",
        "other": "lead",
        "window_s": [2.0, 4.0],
        "smallest_m": round(10 - half, 3),
        "largest_m": round(30 - half, 3),
        "smallest_s": round(min((20 - half) / 10, (30 - half) / 20), 3),
        "largest_s": round(max((20 - half) / 10, (30 - half) / 20), 3),
    }
    assert last["smallest_m"] == last["largest_m"] == round(100 - half, 3)
    assert last["smallest_s"] is None and last["largest_s"] is None  # it never moved
