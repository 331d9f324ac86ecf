"""The surrogate safety expectations (``min_gap``, ``max_decel``, ``stays_on_route``): the loader refuses their
mistakes naming the file, the field and what was expected; the geometry they measure with, on hand-computed
cases; one short run in which each of them passes and fails with a precise detail; and the case that asked
for them: the example outside stack drives straight on through hlw's bend, and ``stays_on_route`` says so."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_outside_client import Clients, unique_prefix
from v2x.net.broker import BrokerAddress
from v2x.run.results import check
from v2x.run.runner import run_scenario
from v2x.scenario import Scenario, ScenarioError, load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.scenario.model import MaxDecelExpectation, MinGapExpectation, StaysOnRouteExpectation
from v2x.sim.actors import world_state
from v2x.sim.safety import SafetyMeasures, box_gap, extended, route_offset

FCW = (SCENARIO_DIR / "fcw.yaml").read_text()
LAST = "  - {name: warned driver keeps 2 m to the lead, type: min_gap, actors: [follower, lead], min_m: 2.0}\n"
NEW = len(load_scenario(SCENARIO_DIR / "fcw.yaml").expectations)  # the index of the expectation _with adds


def _with(expectation: str) -> str:
    """scenarios/fcw.yaml with one more expectation (its index: ``NEW``)."""
    assert FCW.endswith(LAST)
    return FCW + f"  - {expectation}\n"


def _problems(text: str, tmp_path: Path) -> list[tuple[str, str]]:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(path) in str(info.value)
    return info.value.problems


# (case, the expectation, the field path named, words in what was expected)
MISTAKES = [
    ("min_gap without min_m", "{name: g, type: min_gap, actors: [follower, lead]}", "expectations[6].min_m", "missing"),
    (
        "min_gap negative",
        "{name: g, type: min_gap, actors: [follower, lead], min_m: -1}",
        "expectations[6].min_m",
        "greater than or equal to 0",
    ),
    (
        "min_gap one actor twice",
        "{name: g, type: min_gap, actors: [lead, lead], min_m: 1}",
        "expectations[6]",
        "two different actors; got 'lead' twice",
    ),
    (
        "min_gap unknown actor",
        "{name: g, type: min_gap, actors: [follower, leed], min_m: 1}",
        "expectations[6].actors[1]",
        "an actor id ['lead', 'follower', 'neighbour', 'rsu1', 'cloud']; got 'leed'",
    ),
    (
        "min_gap with an rsu",
        "{name: g, type: min_gap, actors: [follower, rsu1], min_m: 1}",
        "expectations[6].actors[1]",
        "a road user (car, truck, bus, emergency, pedestrian, cyclist); got 'rsu1', an rsu",
    ),
    ("max_decel without a bound", "{name: d, type: max_decel, actor: lead}", "expectations[6].max_mps2", "missing"),
    (
        "max_decel negative",
        "{name: d, type: max_decel, actor: lead, max_mps2: -3}",
        "expectations[6].max_mps2",
        "greater than 0",
    ),
    (
        "max_decel of the platform",
        "{name: d, type: max_decel, actor: cloud, max_mps2: 3}",
        "expectations[6].actor",
        "got 'cloud', a platform",
    ),
    (
        "stays_on_route negative",
        "{name: r, type: stays_on_route, actor: lead, max_offset_m: -1}",
        "expectations[6].max_offset_m",
        "greater than 0",
    ),
    (
        "stays_on_route unknown actor",
        "{name: r, type: stays_on_route, actor: folower}",
        "expectations[6].actor",
        "got 'folower': did you mean 'follower'?",
    ),
    (
        "stays_on_route unknown field",
        "{name: r, type: stays_on_route, actor: lead, max_m: 1}",
        "expectations[6].max_m",
        "unknown field",
    ),
    # a `gap` (the referee's, along the actor's heading) about an rsu or with min > max loaded (a diff review)
    (
        "gap about an rsu",
        "{name: g, type: gap, actor: follower, other: rsu1, window_s: [1, 5], measure: smallest_m, min: 1}",
        "expectations[6].other",
        "a road user (car, truck, bus, emergency, pedestrian, cyclist); got 'rsu1', an rsu",
    ),
    (
        "gap of the platform",
        "{name: g, type: gap, actor: cloud, other: lead, window_s: [1, 5], measure: smallest_s, max: 3}",
        "expectations[6].actor",
        "got 'cloud', a platform",
    ),
    (
        "gap min above max",
        "{name: g, type: gap, actor: follower, other: lead, window_s: [1, 5], measure: smallest_m, min: 1, max: 0.5}",
        "expectations[6]",
        "'min' <= 'max'; got min 1, max 0.5",
    ),
    # (an older type: its problems named "expectations[6].travel_time.end_at" until the tags came from the schema)
    (
        "travel_time without end_at",
        "{name: t, type: travel_time, actor: lead, start_at: [0, 0], max_s: 5}",
        "expectations[6].end_at",
        "required field is missing",
    ),
]


@pytest.mark.parametrize(("case", "expectation", "field", "words"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_a_mistake_is_refused_naming_the_field(
    case: str, expectation: str, field: str, words: str, tmp_path: Path
) -> None:
    problems = _problems(_with(expectation), tmp_path)
    field = field.replace("expectations[6]", f"expectations[{NEW}]")
    assert any(loc == field and words in msg for loc, msg in problems), problems


def test_stays_on_route_needs_a_route(tmp_path: Path) -> None:
    """An external actor may have neither lane nor path: it then has no route to stay on."""
    text = _with("{name: r, type: stays_on_route, actor: lead}").replace(
        "    lane: eb1\n    start_m: 130\n", "    external: true\n", 1
    )
    text = text.replace("    events:\n      - {at_s: 6.0, action: brake, rate_mps2: 6.0, until_speed_mps: 0}\n", "", 1)
    assert _problems(text, tmp_path) == [
        (
            f"expectations[{NEW}].actor",
            "a road user with a route ('lane' or 'path' in its actor entry); 'lead' has neither",
        )
    ]


def test_the_defaults_load(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(_with("{name: r, type: stays_on_route, actor: lead}"))
    exp = load_scenario(path).expectations[NEW]
    assert isinstance(exp, StaysOnRouteExpectation) and exp.max_offset_m == 1.75 and exp.variant == "v2x"


def test_the_gap_between_two_boxes_by_hand() -> None:
    """Two 4 x 2 m boxes: nose to tail 3 m apart; side by side 1.5 m apart; corner to corner along a
    diagonal; overlapping (0); one turned 90 degrees in front of the other."""
    gap, at = box_gap((0, 0, 0, 4, 2), (7, 0, 0, 4, 2))  # ends at x = 2 and x = 5
    assert gap == pytest.approx(3.0) and at[0] == pytest.approx(3.5)
    assert box_gap((0, 0, 0, 4, 2), (1, 3.5, 0, 4, 2))[0] == pytest.approx(1.5)  # edges at y = 1 and 2.5
    assert box_gap((0, 0, 0, 4, 2), (7, 5, 0, 4, 2))[0] == pytest.approx(math.hypot(3, 3))  # (2, 1) to (5, 4)
    assert box_gap((0, 0, 0, 4, 2), (3, 0.5, 0.3, 4, 2))[0] == 0.0
    # turned 90 degrees: its long side across, its near edge at x = 10 - 1
    assert box_gap((0, 0, 0, 4, 2), (10, 0, math.pi / 2, 4, 2))[0] == pytest.approx(7.0)
    # the same pair with both turned by 30 degrees about the origin: the gap does not change
    c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
    assert box_gap((0, 0, math.pi / 6, 4, 2), (7 * c, 7 * s, math.pi / 6, 4, 2))[0] == pytest.approx(3.0)


def test_the_offset_from_a_route_by_hand() -> None:
    """An L-shaped route (east 100 m, then north): the distance to it, and beyond its ends along the straight
    continuation (a built-in agent drives on past the end)."""
    line = extended([(0, 0), (100, 0), (100, 100)])
    assert route_offset(line, 50, 2.5) == pytest.approx(2.5)
    assert route_offset(line, 150, 50) == pytest.approx(50.0)  # straight on through the bend: 50 m off
    assert route_offset(line, 103, 300) == pytest.approx(3.0)  # beyond the end, 3 m beside its continuation
    assert route_offset(line, -400, -1) == pytest.approx(1.0)  # before the start
    assert extended([(0, 0), (0, 0), (10, 0), (10, 0)]).coords[0] == (-1e6, 0)  # repeated points are skipped


def test_the_checks_read_the_measures_and_say_what_they_found() -> None:
    metrics: dict[str, dict[str, Any]] = {
        "v2x": {
            "min_gap": [{"actors": ["a", "b"], "gap_m": 0.0, "t_s": 3.2, "at": [10.0, 1.0]}],
            "max_decel": [{"actor": "a", "decel_mps2": 7.25, "t_s": 4.0, "at": [12.0, 0.0]}],
            "route_offset": [{"actor": "a", "offset_m": 1.75, "t_s": 5.0, "at": [1.0, 1.75]}],
        }
    }
    touched = MinGapExpectation(name="g", type="min_gap", actors=("b", "a"), min_m=0)
    assert check(touched, [], metrics) == (
        False,
        "smallest gap a - b 0.00 m at t=3.20 s at (10.0, 1.0); expected >= 0 m (their boxes touched)",
    )
    other = MinGapExpectation(name="g", type="min_gap", actors=("a", "c"), min_m=0)
    assert check(other, [], metrics) == (False, "gap between a and c not measured in variant v2x")
    decel = MaxDecelExpectation(name="d", type="max_decel", actor="a", max_mps2=7.25)
    assert check(decel, [], metrics) == (
        True,
        "a's strongest deceleration 7.25 m/s^2 at t=4.00 s at (12.0, 0.0); expected <= 7.25 m/s^2",
    )
    route = StaysOnRouteExpectation(name="r", type="stays_on_route", actor="a")  # 1.75 m: at the bound passes
    assert check(route, [], metrics)[0] is True
    baseline = StaysOnRouteExpectation(name="r", type="stays_on_route", actor="a", variant="baseline")
    assert check(baseline, [], metrics) == (False, "route offset of a not measured in variant baseline")


def test_the_cheap_bound_never_exceeds_the_gap_and_the_worst_is_as_measured_every_tick(tmp_path: Path) -> None:
    """A diff review: shapely's gap and nearest points cost some 64 us a pair a tick. `step` now skips a tick whose
    cheap lower bound (centres less half diagonals) cannot make a new smallest, and finds the nearest points
    only for a new smallest: on random poses the bound is never above the gap, and the worst `step` keeps
    (value, time, place) is the one box_gap at every tick gives."""
    import random

    from v2x.sim.safety import Worst, gap_at_least

    path = tmp_path / "safety.yaml"
    path.write_text(SCENARIO)
    sc = load_scenario(path)
    world = world_state(sc)
    safety = SafetyMeasures(world, sc, "v2x")
    lead, passer = world.slot_of("lead"), world.slot_of("passer")
    rng = random.Random(24)
    brute = Worst()
    for tick in range(400):
        poses = [(rng.uniform(0, 60), rng.uniform(-5, 5), rng.uniform(-4, 4)) for _ in range(2)]
        (xa, ya, ha), (xb, yb, hb) = poses
        world.set_state([lead, passer], [xa, xb], [ya, yb], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [ha, hb])
        a, b = safety._box(lead), safety._box(passer)
        gap, at = box_gap(a, b)
        assert gap_at_least(a, b) <= gap + 1e-9
        brute.offer(gap, tick / 10, at, lower=True)
        safety.step(tick / 10, None, frozenset())
    [measured] = safety.metrics()["min_gap"]
    assert measured == {"actors": ["lead", "passer"], **brute.as_dict("gap_m")}
    assert brute.t_s is not None and brute.t_s > 1.0  # (a new smallest after the first ticks: the skip was tried)


def test_deceleration_over_a_late_report_and_not_at_a_crash(tmp_path: Path) -> None:
    """Per tick from the speeds: 10 -> 9.7 m/s in 0.1 s is 3 m/s^2. A report that missed a tick (the world kept
    the old state) counts over the 0.2 s to the next one applied (3 m/s^2, not 6); the stop of a wreck is not
    counted."""
    path = tmp_path / "safety.yaml"
    path.write_text(SCENARIO)
    sc = load_scenario(path)
    world = world_state(sc)
    safety = SafetyMeasures(world, sc, "v2x")
    lead = world.slot_of("lead")

    def at(t: float, speed: float, applied: set[str] | None = None, wrecks: frozenset[int] = frozenset()) -> None:
        world.set_state([lead], [10 * t], [0.0], [speed], [0.0], [0.0], [0.0], [0.0])
        safety.step(t, applied, wrecks)

    at(0.0, 10.0)
    at(0.1, 9.7)  # 3 m/s^2
    at(0.2, 9.7, applied=set())  # late: the old state kept
    at(0.3, 9.1, applied={"lead"})  # 0.6 m/s over 0.2 s: 3 m/s^2
    assert safety.metrics()["max_decel"][0] == {"actor": "lead", "decel_mps2": 3.0, "t_s": 0.1, "at": [1.0, 0.0]}
    at(0.4, 8.5)  # 6 m/s^2
    wreck = frozenset({lead})
    at(0.5, 0.0, wrecks=wreck)  # a crash: held at rest from this tick on
    at(0.6, 0.0, wrecks=wreck)
    assert safety.metrics()["max_decel"][0] == {"actor": "lead", "decel_mps2": 6.0, "t_s": 0.4, "at": [4.0, 0.0]}


SCENARIO = """\
id: safety-measures
name: Safety measures
origin: {lat_deg: 29.7215, lon_deg: 106.6310}
duration_s: 8.0
variants: [v2x]
road:
  lanes:
    - {id: eb1, centerline: [[0, 0], [300, 0]], width_m: 3.5}
    - {id: eb2, centerline: [[0, 3.5], [300, 3.5]], width_m: 3.5}
actors:
  - id: lead
    kind: car
    lane: eb1
    start_m: 30
    speed_mps: 10
    events:
      - {at_s: 1.0, action: brake, rate_mps2: 6.0, until_speed_mps: 0}
  - id: passer
    kind: car
    lane: eb2
    start_m: 10
    speed_mps: 10
    events:
      - {at_s: 5.0, action: lane_change, lane: eb1, signal_s: 0, duration_s: 2.0}
expectations:
  - {name: gap kept, type: min_gap, actors: [passer, lead], min_m: 1.0}
  - {name: gap too small, type: min_gap, actors: [lead, passer], min_m: 2}
  - {name: lead brakes gently enough, type: max_decel, actor: lead, max_mps2: 6.5}
  - {name: lead brakes too hard, type: max_decel, actor: lead, max_mps2: 5}
  - {name: passer never brakes, type: max_decel, actor: passer, max_mps2: 0.5}
  - {name: lead in its lane, type: stays_on_route, actor: lead}
  - {name: passer leaves its lane, type: stays_on_route, actor: passer}
"""


async def test_a_short_run_measures_each_and_each_passes_and_fails(tmp_path: Path) -> None:
    """Two cars at 10 m/s: the lead brakes at 6 m/s^2 from t = 1 s to a stop; the passer, in the next lane
    (centre lines 3.5 m apart, cars 2 m wide: 1.5 m between their sides), passes it and at t = 5 s changes
    over into the lead's lane in 2 s, 3.5 m off its own route from t = 7 s on. The lead's box is at 48.3 m
    at rest (30 + 10 + 100 / 12); the passer's (10 + 10 t) comes alongside it, within 5 m, at t = 3.4 s."""
    path = tmp_path / "safety.yaml"
    path.write_text(SCENARIO)
    result = await run_scenario(load_scenario(path), seed=0, broker="loopback")
    got = {e["name"]: (e["passed"], e["detail"]) for e in result["expectations"]}
    gap = "smallest gap lead - passer 1.50 m at t=3.40 s at (46.5, 1.8)"
    lead = "lead's strongest deceleration 6.00 m/s^2 at t=1.10 s at (41.0, 0.0)"
    assert got == {
        "gap kept": (True, gap + "; expected >= 1 m"),
        "gap too small": (False, gap + "; expected >= 2 m"),
        "lead brakes gently enough": (True, lead + "; expected <= 6.5 m/s^2"),
        "lead brakes too hard": (False, lead + "; expected <= 5 m/s^2"),
        "passer never brakes": (True, "passer never slowed down; expected <= 0.5 m/s^2"),
        "lead in its lane": (
            True,
            "lead's largest offset from its route 0.00 m at t=0.00 s at (30.0, 0.0); expected <= 1.75 m",
        ),
        "passer leaves its lane": (
            False,
            "passer's largest offset from its route 3.50 m at t=7.00 s at (80.0, 0.0); expected <= 1.75 m",
        ),
    }
    m = result["metrics"]["v2x"]
    assert m["min_gap"] == [{"actors": ["lead", "passer"], "gap_m": 1.5, "t_s": 3.4, "at": [46.5, 1.75]}]
    assert [d["actor"] for d in m["max_decel"]] == ["lead", "passer"]
    assert [r["actor"] for r in m["route_offset"]] == ["lead", "passer"]


ON_ROUTE = {"name": "car A keeps to its lane", "type": "stays_on_route", "actor": "car_a"}


def _hlw_on_route(external: bool) -> Scenario:
    """scenarios/hlw.yaml, v2x variant, with ``stays_on_route`` for car A (driven from outside if ``external``)."""
    doc = yaml.safe_load((SCENARIO_DIR / "hlw.yaml").read_text(encoding="utf-8"))
    doc["expectations"].append(ON_ROUTE)
    if external:
        car_a = next(a for a in doc["actors"] if a["id"] == "car_a")
        car_a["external"] = True
        del car_a["driver"]
    return Scenario.model_validate(doc)


@pytest.fixture
def clients(tmp_path: Path) -> Iterator[Clients]:
    c = Clients(tmp_path)
    yield c
    c.stop_all()


async def test_the_built_in_car_keeps_to_hlws_bend() -> None:
    result = await run_scenario(_hlw_on_route(external=False), seed=0, broker="loopback", variants=["v2x"])
    [found] = [e for e in result["expectations"] if e["name"] == ON_ROUTE["name"]]
    assert found["passed"], found
    assert result["metrics"]["v2x"]["route_offset"][0]["offset_m"] < 0.01


@pytest.mark.broker
async def test_the_outside_example_drives_straight_through_hlws_bend_and_fails(
    embedded: BrokerAddress, clients: Clients
) -> None:
    """examples/outside_vehicle.py follows a straight line from where START puts it (the start of the bend,
    along its first chord, 2.8 degrees north of east): stays_on_route fails. 16 s at 16.67 m/s from (0, -1.75)
    end near (266, 11), some 180 m from the eastbound lane's bend and its turn north, at the run's end."""
    prefix = unique_prefix("hlw-route")
    clients.start(embedded, f"{prefix}-v2x", "--actor", "car_a")
    result = await run_scenario(_hlw_on_route(external=True), broker=embedded.url, run_id=prefix, variants=["v2x"])
    await asyncio.to_thread(clients.wait, f"{prefix}-v2x")
    [found] = [e for e in result["expectations"] if e["name"] == ON_ROUTE["name"]]
    offset = result["metrics"]["v2x"]["route_offset"][0]
    assert not found["passed"] and 150 < offset["offset_m"] < 200 and offset["t_s"] == 16.0, (found, offset)
    assert found["detail"].startswith(f"car_a's largest offset from its route {offset['offset_m']:.2f} m at t=")
    assert found["detail"].endswith("; expected <= 1.75 m")


def test_the_safety_expectations_per_scenario_are_bounded(tmp_path: Path) -> None:
    """Attack review 11: every pair of 120 actors as a ``min_gap`` (7,140 pairs in 471 kB) made a run 3.1 times
    slower; nothing bounded them. At most MAX_SAFETY_EXPECTATIONS of the per-tick measures per scenario."""
    from v2x.scenario.model import MAX_SAFETY_EXPECTATIONS

    one = "{name: g%d, type: min_gap, actors: [follower, lead], min_m: 1}"
    within = FCW + "".join(f"  - {one % k}\n" for k in range(MAX_SAFETY_EXPECTATIONS - 1))  # fcw has one
    path = tmp_path / "within.yaml"
    path.write_text(within)
    assert len(load_scenario(path).expectations) == NEW + MAX_SAFETY_EXPECTATIONS - 1
    assert _problems(within + f"  - {one % 999}\n", tmp_path) == [
        (
            "expectations",
            f"at most {MAX_SAFETY_EXPECTATIONS} expectations of types min_gap, max_decel, stays_on_route, gap (each "
            f"is measured at every tick); got {MAX_SAFETY_EXPECTATIONS + 1}",
        )
    ]
