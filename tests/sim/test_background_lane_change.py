"""Background lane changes (road.lanes[i].left/right, v2x/sim/background.py): the loader's checks of the
neighbours, and MOBIL in the world: a car behind a slow truck changes to the free lane beside (the
incentive hand-computed from the IDM), sideways over LANE_CHANGE_DURATION_S, and does not when that lane is
full."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from v2x.core import ActorKind
from v2x.core.traffic import CLASS_PARAMS, idm_acceleration
from v2x.scenario import load_scenario
from v2x.scenario.loader import ScenarioError
from v2x.scenario.model import LANE_CHANGE_DURATION_S, Scenario
from v2x.sim.actors import world_state
from v2x.sim.background import Arrivals, Background, background_capacity

CAR = CLASS_PARAMS[ActorKind.CAR]
TRUCK = CLASS_PARAMS[ActorKind.TRUCK]

TEXT = """\
id: lanes
name: lanes
origin: {lat_deg: 29.5, lon_deg: 106.5}
duration_s: 30
tick_s: 0.1
road:
  lanes:
    - {id: a, centerline: [[0, 0], [1000, 0]], speed_limit_kph: 60, left: b}
    - {id: b, centerline: [[0, 3.5], [1000, 3.5]], speed_limit_kph: 60}
    - {id: c, centerline: [[0, 7.0], [1000, 7.0]], speed_limit_kph: 60}
    - {id: d, centerline: [[500, -500], [500, 500]], speed_limit_kph: 60}
flows:
  - {lane: a, vehicles_per_hour: 1, speed_kph: {mean: 50, sd: 5}, mix: {car: 1.0}, penetration: 0, prefill: false}
  - {lane: b, vehicles_per_hour: 1, speed_kph: {mean: 50, sd: 5}, mix: {car: 1.0}, penetration: 0, prefill: false}
actors:
  - {id: rsu1, kind: rsu, position: [500, -10]}
"""


def _load(tmp_path: Path, text: str) -> Scenario:
    path = tmp_path / "lanes.yaml"
    path.write_text(text)
    return load_scenario(path)


def _problems(tmp_path: Path, old: str, new: str) -> dict[str, str]:
    assert old in TEXT
    with pytest.raises(ScenarioError) as info:
        _load(tmp_path, TEXT.replace(old, new))
    return dict(info.value.problems)


# -- the format ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("new", "where", "words"),
    [
        ("left: z}", "road.lanes[0].left", "one of the road's lanes"),
        ("left: a}", "road.lanes[0].left", "not the lane itself"),
        (
            "right: b}",
            "road.lanes[0].right",
            "is 3.5 m to the left at 0 m along, 1.75-5.25 m to the right",
        ),  # b: a's left
        ("left: c}", "road.lanes[0].left", "7.0 m to the left"),  # two lanes over
        ("left: d}", "road.lanes[0].left", "a lane parallel"),  # crossing
    ],
)
def test_bad_neighbours_are_named(tmp_path: Path, new: str, where: str, words: str) -> None:
    problems = _problems(tmp_path, "left: b}", new)
    assert where in problems, problems
    assert words in problems[where]


def test_a_neighbour_of_another_length_and_two_left_neighbours_are_refused(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "[[0, 3.5], [1000, 3.5]]", "[[0, 3.5], [990, 3.5]]")
    assert "990.0 m long" in problems["road.lanes[0].left"]
    text = TEXT.replace("[[0, 7.0], [1000, 7.0]], speed_limit_kph: 60}", "[[0, 3.4], [1000, 3.4]], right: a}")
    with pytest.raises(ScenarioError) as info:
        _load(tmp_path, text)
    assert "two left neighbours" in dict(info.value.problems)["road.lanes[2].right"]


def test_declared_neighbours_reach_the_traffic_model_both_ways(tmp_path: Path) -> None:
    sc = _load(tmp_path, TEXT)
    bg = _background(sc, [])
    net = bg.geo.network
    assert net.left.tolist() == [1, -1, -1, -1] and net.right.tolist() == [-1, 0, -1, -1]
    plain = _load(tmp_path, TEXT.replace(", left: b}", "}"))
    assert not _background(plain, []).geo.lane_changes
    # result.json's metrics.<variant>.background.lane_changes: counted where lanes have neighbours only
    assert bg.stats.as_dict()["lane_changes"] == 0
    assert "lane_changes" not in _background(plain, []).stats.as_dict()


# -- in the world ----------------------------------------------------------------------------------------
def _background(sc: Scenario, per_flow: list[list[tuple[str, float, float]]]) -> Background:
    """Background traffic of ``sc`` alone, its flows replaced by vehicles (kind, s, desired speed) standing
    at t = 0 where given."""
    world = world_state(sc, extra=background_capacity(sc))
    bg = Background(sc, world, rng=np.random.default_rng(0), heads=())
    for f, vehicles in enumerate(per_flow):
        n = len(vehicles)
        bg.arrivals[f] = Arrivals(
            np.zeros(n),
            [k for k, _, _ in vehicles],
            np.array([v for _, _, v in vehicles]),
            np.zeros(n, dtype=np.bool_),
            np.array([s for _, s, _ in vehicles]),
        )
    for f in range(len(per_flow), len(bg.arrivals)):
        bg.arrivals[f] = Arrivals(np.zeros(0), [], np.zeros(0), np.zeros(0, dtype=np.bool_), np.zeros(0))
    return bg


def _drive(bg: Background, seconds: float, keep: str = "") -> list[tuple[int, int, float, float, float, float, float]]:
    """Run; per tick the car's (lane, s, v) and the truck's s before the step, and the car's world (y,
    heading) after it. Vehicles whose id starts with ``keep`` never change lanes."""
    out = []
    car, truck = "bg-0-1", "bg-0-0"
    for tick in range(round(seconds / 0.1) + 1):
        rows = {bg.id_of_row[r]: r for r in np.flatnonzero(bg.slot_of_row >= 0).tolist()}
        before = None
        if car in rows:
            r = rows[car]
            tr = bg.traffic
            before = (int(tr.lane[r]), float(tr.s_m[r]), float(tr.v_mps[r]), float(tr.s_m[rows[truck]]))
        bg.step(tick, tick * 0.1, {})
        if keep:
            for r in np.flatnonzero(bg.slot_of_row >= 0).tolist():
                if bg.id_of_row[r].startswith(keep):
                    bg.traffic.a_threshold_mps2[r] = math.inf
        if before is not None:
            slot = bg.world.slot_of(car)
            out.append((tick, *before, float(bg.world.y[slot]), float(bg.world.heading_rad[slot])))
    return out


def _car_truck() -> list[tuple[str, float, float]]:
    return [("truck", 150.0, 3.0), ("car", 60.0, 15.0)]  # the truck (row of arrival 0), the car (1)


def test_a_car_behind_a_slow_truck_changes_to_the_free_lane_beside(tmp_path: Path) -> None:
    bg = _background(_load(tmp_path, TEXT), [_car_truck()])
    trace = _drive(bg, 12.0)
    changed = [k for k in range(1, len(trace)) if trace[k][1] != trace[k - 1][1]]
    assert len(changed) == 1 and trace[changed[0]][1] == 1  # once, to b (the state after the change tick)
    assert bg.stats.lane_changes == 1
    tick, lane, s, v, s_truck, _, _ = trace[changed[0] - 1]  # the state before the change
    assert lane == 0 and tick % 2 == 0  # left changes on even ticks
    # MOBIL by hand: no follower on either lane, so the incentive is the car's own gain; b is empty.
    behind = float(
        idm_acceleration(v, 15.0, CAR.t_gap_s, CAR.s0_m, CAR.a_mps2, CAR.b_mps2, s_truck - TRUCK.length_m - s, v - 3.0)
    )
    free = float(idm_acceleration(v, 15.0, CAR.t_gap_s, CAR.s0_m, CAR.a_mps2, CAR.b_mps2))
    assert free - behind > CAR.a_threshold_mps2
    assert behind < -1.0  # closing at 12 m/s on the truck 77 m ahead: it brakes in lane a
    # ... and the world sees it move over in LANE_CHANGE_DURATION_S, smoothly, heading to the left
    ys = [y for *_, y, _ in trace[changed[0] :]]
    assert ys[0] == pytest.approx(0.0, abs=0.05)
    n = round(LANE_CHANGE_DURATION_S / 0.1)
    assert ys[n] == pytest.approx(3.5, abs=1e-9) and ys[-1] == pytest.approx(3.5, abs=1e-9)
    assert np.all(np.diff(ys[: n + 1]) >= 0) and np.max(np.diff(ys[: n + 1])) < 0.3
    headings = [h for *_, h in trace[changed[0] : changed[0] + n + 1]]
    assert max(headings) > 0.02 and headings[-1] == pytest.approx(0.0, abs=1e-12)
    # it then passes the truck
    assert trace[-1][2] > trace[-1][4]


def test_no_change_when_the_lane_beside_has_no_room(tmp_path: Path) -> None:
    # A queue in b, standing 2 m bumper to bumper from 22 to 400 m (kept there: no change of its own)
    queue = [("car", 400.0 - k * 7.0, 0.01) for k in range(55)]
    bg = _background(_load(tmp_path, TEXT), [_car_truck(), queue])
    trace = _drive(bg, 20.0, keep="bg-1-")
    assert {lane for _, lane, *_ in trace} == {0}
    assert bg.stats.lane_changes == 0
    assert all(abs(y) < 1e-9 for *_, y, _ in trace)
    _, _, s, v, s_truck, _, _ = trace[-1]
    assert s < s_truck - TRUCK.length_m and v == pytest.approx(3.0, abs=0.3)  # it follows the truck
    gap = s_truck - TRUCK.length_m - s
    assert gap > CAR.s0_m and math.isfinite(gap)


def test_the_lane_changes_metric_expectation(tmp_path: Path) -> None:
    from v2x.run.results import check

    text = TEXT + "expectations:\n  - {name: lc, type: metric, metric: background_lane_changes, min: 2}\n"
    exp = _load(tmp_path, text).expectations[0]
    assert check(exp, [], {"v2x": {"background": {"lane_changes": 3}}}) == (
        True,
        "background_lane_changes = 3 (expected >= 2)",
    )
    assert check(exp, [], {"v2x": {"background": {"lane_changes": 1}}})[0] is False
    # no lanes with neighbours: not measured
    assert check(exp, [], {"v2x": {"background": {}}}) == (False, "background_lane_changes not measured in variant v2x")


async def test_the_breakdown_story_needs_the_lane_changes(tmp_path: Path) -> None:
    # The shipped scenario without V2X: the background vehicles ahead of car A change lanes around the
    # broken-down car, so car A runs into it. Without the lanes' neighbours (no lane changes) they queue
    # behind it and car A runs into the queue's tail instead: the baseline's expectation fails. And car B
    # stops behind the wreck only because its driver is attentive.
    from v2x.run.runner import run_scenario
    from v2x.scenario.loader import SCENARIO_DIR

    text = (SCENARIO_DIR / "breakdown.yaml").read_text()
    assert text.count(", left: eb1}") == 1
    crashes = {}
    for name, body in (("with", text), ("without", text.replace(", left: eb1}", "}"))):
        result = await run_scenario(_load(tmp_path, body), broker="loopback", variants=["baseline"])
        crashes[name] = [e["actors"] for e in result["events"] if e["type"] == "collision"]
        lane_changes = result["metrics"]["baseline"]["background"].get("lane_changes")
        assert (lane_changes is not None and lane_changes >= 5) == (name == "with")
    assert sorted(crashes["with"][0]) == ["broken", "car_a"]
    first = crashes["without"][0]
    assert "car_a" in first and next(a for a in first if a != "car_a").startswith("bg-1-")
    assert not any("broken" in c and "car_a" in c for c in crashes["without"])
    # Car B's attentive driver follows the traffic and stops behind the wreck; a distracted one runs into it.
    assert not any("car_b" in c for c in crashes["with"])
    assert text.count(", attentive: true}") == 1
    result = await run_scenario(
        _load(tmp_path, text.replace(", attentive: true}", "}")), broker="loopback", variants=["baseline"]
    )
    assert ["car_a", "car_b"] in [sorted(e["actors"]) for e in result["events"] if e["type"] == "collision"]


def test_a_neighbour_longer_on_a_bend_is_told_how_much_and_what_to_do(tmp_path: Path) -> None:
    """A newcomer review: parallel lanes on a 250 m bend were refused as "970.9 m long, 967.2 m expected" with no
    word on why or what to do (ending the outer lane earlier worked). The message says both."""
    from v2x.scenario.geometry import Route
    from v2x.scenario.loader import _not_beside

    inner = Route([(0.0, 0.0), (100.0, 0.0), (200.0, 100.0)])  # a 45 deg turn to the left
    outer = Route([(0.0, -3.5), (101.45, -3.5), (202.47, 97.53)])  # 3.5 m to its right: longer
    why = _not_beside(inner, 3.5, outer, 3.5, "right")
    assert "m expected (within 1.0 m: the traffic model's side-by-side lanes share the distance along them)" in why
    assert "on a bend the outer of two lanes 3.5 m apart is about 2.7 m longer here" in why, why


def test_a_neighbour_on_the_other_side_is_told_so_even_when_its_length_differs_too() -> None:
    """Newcomer review 5: a lane's `left` naming a lane on its right, which was also shorter, was refused for
    its length only; where it lies is the likelier mistake and is said first."""
    from v2x.scenario.geometry import Route
    from v2x.scenario.loader import _not_beside

    lane = Route([(0.0, 0.0), (500.0, 0.0)])
    right_and_shorter = Route([(0.0, -3.5), (480.0, -3.5)])
    assert _not_beside(lane, 3.5, right_and_shorter, 3.5, "left").startswith("is 3.5 m to the right at 0 m along")
    assert "m long, 500.0 m expected" in _not_beside(lane, 3.5, right_and_shorter, 3.5, "right")
