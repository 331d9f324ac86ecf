"""'truth in motion' in every run (v2x.sim.motion): the world judges each outside stack's reported truths from one
tick to the next by the rules of ``v2x conformance``'s check of that name, records an ``implausible_motion``
event and fails the run's "truth in motion". An AD team's planner reported 13.89 m/s, then 0 one tick later at
the stop line, and the run's verdicts passed (docs/PROTOCOL.md "Truth")."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests._agents import offline_sim
from tests._mosquitto import Mosquitto
from tests.test_sdk import _ack, fcw_with_external
from v2x.run.results import build_result
from v2x.scenario import load_scenario
from v2x.sdk import VehicleState
from v2x.sim.motion import (
    CONFORMANCE,
    IN_RUNS,
    IN_RUNS_VRU,
    MAX_SPEED_CHANGE_MPS2,
    motion_problems,
    reach_m,
    truth_problem,
)
from v2x.sim.simulation import MAX_MOTION_EVENTS
from v2x.wire import testbed_pb2

V = 16.67  # fcw's start speed, m/s
BUILT_IN = ("cloud", "lead", "neighbour", "rsu1")  # fcw's actors besides the follower


def _truth(x: float, v: float, heading_deg: float = 90.0) -> testbed_pb2.TruthState:
    return testbed_pb2.TruthState(x_m=x, vx_mps=v, speed_mps=v, heading_deg=heading_deg)


def test_runs_judge_headings_loosely_and_not_a_vrus() -> None:
    """A diff review: conformance's 2 degrees between velocity and heading failed whole runs of stacks that
    report a centre-of-gravity velocity (slipping a few degrees in a turn) or back up. Runs judge only what no
    vehicle can do (30 degrees, a reverse allowed); a pedestrian's heading (its body's) is not judged at all."""
    import math

    def slip(deg: float, v: float = 5.0) -> testbed_pb2.TruthState:  # velocity ``deg`` off a heading of 90
        a = math.radians(90.0 + deg)
        return testbed_pb2.TruthState(vx_mps=v * math.sin(a), vy_mps=v * math.cos(a), speed_mps=v, heading_deg=90.0)

    assert truth_problem(slip(5.0), CONFORMANCE).startswith("(vx, vy) points to 95.0 deg")
    assert truth_problem(slip(5.0), IN_RUNS) == ""
    assert truth_problem(slip(180.0), CONFORMANCE) != "" and truth_problem(slip(180.0), IN_RUNS) == ""  # reversing
    assert truth_problem(slip(45.0), IN_RUNS).startswith("(vx, vy) points to 135.0 deg")  # no vehicle slides so
    assert truth_problem(slip(90.0), IN_RUNS_VRU) == ""  # a pedestrian steps sideways
    # a course 20 degrees off the heading: conformance says so, a run does not; 60 degrees, both
    for deg, in_runs in ((20.0, True), (60.0, False)):
        a = math.radians(90.0 + deg)
        after = _truth(0.0, V)
        after.x_m, after.y_m = V * 0.1 * math.sin(a), V * 0.1 * math.cos(a)
        assert motion_problems(_truth(0.0, V), after, 0.1, rules=CONFORMANCE) != []
        assert (motion_problems(_truth(0.0, V), after, 0.1, rules=IN_RUNS) == []) is in_runs
        assert motion_problems(_truth(0.0, V), after, 0.1, rules=IN_RUNS_VRU) == []
    # the speed and the distance moved are judged for everyone
    assert motion_problems(_truth(0.0, V), _truth(0.8335, 0.0), 0.1, rules=IN_RUNS_VRU) != []


def test_the_rules_name_the_figures() -> None:
    """One truth against itself, two against each other: position against speeds, speed change against the
    acceleration bound (over the ticks between two truths further apart), course against heading."""
    assert truth_problem(_truth(0.0, V)) == ""
    assert truth_problem(testbed_pb2.TruthState(vx_mps=V, speed_mps=0.0)) == "|(vx, vy)| 16.67 m/s, speed_mps 0.00"
    # 16.67 m/s to 0 in a tick, having moved on at speed: both rules
    assert motion_problems(_truth(0.0, V), _truth(1.667, 0.0), 0.1) == [
        "moved 1.67 m where its speeds say 0.83 m",
        "speed 16.67 -> 0.00 m/s in 0.10 s (166.7 m/s^2; at most 15)",
    ]
    # ... having moved as the mean speed says: the stop itself is impossible
    assert motion_problems(_truth(0.0, V), _truth(0.8335, 0.0), 0.1) == [
        "speed 16.67 -> 0.00 m/s in 0.10 s (166.7 m/s^2; at most 15)"
    ]
    assert motion_problems(_truth(0.0, V), _truth(0.8335, 0.0), 0.1, ticks=2) == [  # two ticks: the stop alone
        "speed 16.67 -> 0.00 m/s in 0.20 s (83.4 m/s^2; at most 15)"
    ]
    slow = V - 2.0  # 10 m/s^2 over two ticks
    assert motion_problems(_truth(0.0, V), _truth(0.5 * (V + slow) * 0.2, slow), 0.1, ticks=2) == []
    hard = V - 9.0 * 0.1  # an emergency stop at 9 m/s^2
    assert motion_problems(_truth(0.0, V), _truth(0.5 * (V + hard) * 0.1, hard), 0.1) == []
    edge = V - MAX_SPEED_CHANGE_MPS2 * 0.1
    assert motion_problems(_truth(0.0, V), _truth(0.5 * (V + edge) * 0.1, edge), 0.1) == []
    sideways = testbed_pb2.TruthState(y_m=1.667, vx_mps=V, speed_mps=V, heading_deg=90.0)
    assert motion_problems(_truth(0.0, V), sideways, 0.1) == ["moved towards 0.0 deg, heading 90.0"]


def _at(x: float, v: float, z: float) -> testbed_pb2.TruthState:
    tr = _truth(x, v)
    tr.z_m = z
    return tr


def test_across_a_gap_the_distance_is_bounded_and_the_height_always(tmp_path: Path) -> None:
    """Attack review 11: across ticks without a truth only the speed change was judged, so the next truth could
    land 500 m on; and the height was never judged (0 -> 999 m in a tick put a car above every collision and
    every min_gap). Across k ticks the distance moved is at most what the two speeds allow with the speed-change
    bound (``reach_m``); the height changes by at most MAX_GRADE of the distance moved, plus 5 cm."""
    assert reach_m(V, V, 0.2) == pytest.approx(V * 0.2 + MAX_SPEED_CHANGE_MPS2 * 0.04 / 4)
    assert reach_m(0.0, MAX_SPEED_CHANGE_MPS2 * 0.2, 0.2) == pytest.approx(MAX_SPEED_CHANGE_MPS2 * 0.04 / 2)
    assert motion_problems(_truth(0.0, V), _truth(500.0, V), 0.1, ticks=2) == [
        "moved 500.00 m in 0.20 s where its speeds say at most 3.48 m (with at most 15 m/s^2)"
    ]
    # an honest stack whose tick closed without it: at speed, or braking at 9 m/s^2, over 2 and 5 ticks
    for k in (2, 5):
        assert motion_problems(_truth(0.0, V), _truth(V * 0.1 * k, V), 0.1, ticks=k) == []
        after = V - 0.9 * k
        assert motion_problems(_truth(0.0, V), _truth(0.5 * (V + after) * 0.1 * k, after), 0.1, ticks=k) == []
    # the height: a jump, on the level and across a gap; a ramp at the steepest grade a lane may have passes
    assert motion_problems(_at(0.0, V, 0.0), _at(V * 0.1, V, 999.0), 0.1) == [
        f"height 0.00 -> 999.00 m over {V * 0.1:.2f} m (a grade of at most 30%)"
    ]
    assert motion_problems(_at(0.0, 0.0, 0.0), _at(0.0, 0.0, 3.0), 0.1, ticks=3) != []  # standing, lifted
    assert motion_problems(_at(0.0, V, 0.0), _at(V * 0.1, V, 0.3 * V * 0.1), 0.1) == []
    assert motion_problems(_at(0.0, V, 0.0), _at(V * 0.2, V, 0.3 * V * 0.2), 0.1, ticks=2) == []
    assert motion_problems(_at(0.0, 0.0, 0.0), _at(0.0, 0.0, 0.04), 0.1) == []  # within the tolerance


def test_a_road_users_ack_without_a_truth_is_refused(tmp_path: Path) -> None:
    """Attack review 11: an outside stack's Ack without a truth switched the position check off for the next
    truth. A road user's Ack must carry its truth: without it, ``out_of_range`` naming why, and the tick waits
    for a proper one (the built-in agents and the SDK's vehicles always send it)."""
    sc = load_scenario(fcw_with_external(tmp_path, "follower"))
    sim = offline_sim(sc)
    sim.begin(0)
    for actor in BUILT_IN:
        sim.receive("ack", actor, _ack(actor, 0, {"lead": 200.0, "neighbour": 110.0}.get(actor, 0.0)))
    sim.receive("ack", "follower", testbed_pb2.Ack(actor_id="follower", tick=0).SerializeToString())
    assert sim.inbound.stats.rejected == {"out_of_range": 1}
    assert sim.missing() == ["follower"]
    assert "a road user's Ack must carry its truth" in " ".join(sim.missing_why())
    sim.receive(
        "ack", "follower", testbed_pb2.Ack(actor_id="follower", tick=0, truth=_truth(100.0, V)).SerializeToString()
    )
    assert sim.missing() == []


def _run(tmp_path: Path, follower: Mapping[int, testbed_pb2.TruthState | None], n_ticks: int) -> dict[str, Any]:
    """fcw in the world alone with the follower external: its truths by tick (None or absent: no report, the
    tick closes without it), the built-in actors' bare truths; the result document."""
    sc = load_scenario(fcw_with_external(tmp_path, "follower"))
    sim = offline_sim(sc)
    for tick in range(n_ticks):
        sim.begin(tick)
        for actor in BUILT_IN:
            x = {"lead": 200.0, "neighbour": 110.0}.get(actor, 0.0)
            sim.receive("ack", actor, _ack(actor, tick, x))
        tr = follower.get(tick)
        if tr is not None:
            ack = testbed_pb2.Ack(actor_id="follower", tick=tick, truth=tr)
            sim.receive("ack", "follower", ack.SerializeToString())
        sim.step()
    report = sim.report(0.0)
    return build_result(sc, 0, report.events, {"v2x": {**report.metrics, "ticks": n_ticks}}, {})


def _motion(result: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    events = [e for e in result["events"] if e["type"] == "implausible_motion"]
    return events, [e for e in result["expectations"] if e["name"] == "truth in motion"]


def test_an_impossible_stop_fails_the_run_and_a_hard_braking_with_a_missed_tick_does_not(tmp_path: Path) -> None:
    """At 16.67 m/s, then 0 in the next tick at the place it had reached at speed: an implausible_motion event
    naming the tick and the figures, the run fails "truth in motion". Braking at 9 m/s^2 to a stop, with a tick
    the stack missed on the way (the world keeps its truth before: only the speed change over two ticks is
    judged), passes, as does standing still after."""
    plausible: dict[int, testbed_pb2.TruthState | None] = {}
    x, v = 100.0, V
    for tick in range(40):
        plausible[tick] = None if tick == 12 else _truth(x, v)
        if tick >= 10:  # braking at 9 m/s^2 from t = 1.0 s (to rest in 1.85 s)
            dv = min(v, 0.9)
            x, v = x + 0.5 * (v + v - dv) * 0.1, v - dv
        else:
            x += v * 0.1
    result = _run(tmp_path, plausible, 40)
    assert _motion(result) == ([], []), _motion(result)
    assert "implausible_motion_by_actor" not in result["metrics"]["v2x"]  # a plausible run's metrics as they were

    impossible = {tick: _truth(100.0 + min(tick, 15) * V * 0.1, V if tick < 15 else 0.0) for tick in range(30)}
    result = _run(tmp_path, impossible, 30)
    events, checks = _motion(result)
    assert events == [
        {
            "t_s": 1.5,
            "type": "implausible_motion",
            "variant": "v2x",
            "actor": "follower",
            "tick": 15,
            "problem": "tick 14 -> 15: moved 1.67 m where its speeds say 0.83 m; "
            "tick 14 -> 15: speed 16.67 -> 0.00 m/s in 0.10 s (166.7 m/s^2; at most 15)",
        }
    ]
    assert result["metrics"]["v2x"]["implausible_motion_by_actor"] == {"follower": 1}
    [check] = checks
    assert not check["passed"] and not result["passed"]
    assert check["detail"].startswith(
        "follower: 1 tick(s) whose reported truth moves as no vehicle can; the first, at 1.5 s: tick 14 -> 15: moved"
    ), check["detail"]


def test_a_stack_in_km_h_is_counted_every_tick_and_named_in_a_few_events(tmp_path: Path) -> None:
    """Speed in km/h and position in metres: every tick breaks the rules; each is counted, the first
    MAX_MOTION_EVENTS are events (the result stays small)."""
    result = _run(tmp_path, {tick: _truth(100.0 + tick * V * 0.1, V * 3.6) for tick in range(30)}, 30)
    events, [check] = _motion(result)
    assert len(events) == MAX_MOTION_EVENTS and result["metrics"]["v2x"]["implausible_motion_by_actor"] == {
        "follower": 29
    }
    assert "follower: 29 tick(s)" in check["detail"] and "moved 1.67 m where its speeds say 6.00 m" in check["detail"]


def test_a_wreck_held_by_the_world_raises_no_alarm_whatever_its_stack_reports(tmp_path: Path) -> None:
    """The follower runs into the lead standing at 130 m at 16.67 m/s; from the tick of the collision the
    world holds it where it touched: its stack's stop within a tick (what docs/PROTOCOL.md "Collisions" asks),
    or its driving on, is not judged."""
    for drive_on in (False, True):
        follower = {}
        for tick in range(30):
            # at tick 15 (125.005 m) its box overlaps the lead's at 130 m; told so at tick 16, it stands where it
            # was at tick 15 from then on (or drives on)
            told = tick > 15 and not drive_on
            follower[tick] = _truth(100.0 + (15 if told else tick) * V * 0.1, 0.0 if told else V)
        sc = load_scenario(fcw_with_external(tmp_path, "follower"))
        sim = offline_sim(sc)
        for tick in range(30):
            sim.begin(tick)
            for actor in BUILT_IN:
                sim.receive("ack", actor, _ack(actor, tick, {"lead": 130.0, "neighbour": 110.0}.get(actor, 0.0)))
            ack = testbed_pb2.Ack(actor_id="follower", tick=tick, truth=follower[tick])
            sim.receive("ack", "follower", ack.SerializeToString())
            sim.step()
        report = sim.report(0.0)
        assert [e["t_s"] for e in report.events if e["type"] == "collision"] == [1.5]
        assert not [e for e in report.events if e["type"] == "implausible_motion"]
        assert "implausible_motion_by_actor" not in report.metrics


# ---- An outside stack on the SDK against a real Mosquitto -----------------------------------------------------


@pytest.mark.broker
@pytest.mark.parametrize("stop", ["brakes", "impossible"])
async def test_an_sdk_stack_that_stops_within_a_tick_fails_v2x_run(
    mosquitto: Mosquitto, tmp_path: Path, stop: str
) -> None:
    """fcw's follower driven from outside on ``v2x.sdk`` for 3 s: from tick 15 it brakes at 6 m/s^2 (the run has
    no "truth in motion"), or reports speed 0 having moved on at 16.67 m/s (an implausible_motion event at tick
    15, and the run fails "truth in motion")."""
    from v2x.run.runner import run_scenario
    from v2x.sdk import Stack

    sc = load_scenario(fcw_with_external(tmp_path, "follower", duration_s=3.0))
    prefix = f"motion-{stop}-{uuid.uuid4().hex[:6]}"

    async def drive() -> None:
        async with Stack(mosquitto.address.url, run_id=f"{prefix}-v2x", actor_id="follower", software="test") as stack:
            run = await stack.start(timeout_s=30)
            state = VehicleState.at_start(run.me)
            async for tick in stack.ticks(tick_timeout_s=15):
                if tick.n > 0:
                    state = state.advanced(sc.tick_s, -6.0 if stop == "brakes" and tick.n > 15 else None)
                if stop == "impossible" and tick.n >= 15:  # where it got to at speed, at a standstill
                    state = VehicleState(state.x_m, state.y_m, 0.0, state.heading_deg, 0.0, state.lane)
                await stack.ack(tick, state)

    result, _ = await asyncio.gather(
        run_scenario(sc, broker=mosquitto.address.url, run_id=prefix, variants=["v2x"], join_timeout_s=60), drive()
    )
    events, checks = _motion(result)
    if stop == "brakes":
        assert (events, checks) == ([], [])
        return
    assert [(e["actor"], e["tick"], e["t_s"]) for e in events] == [("follower", 15, 1.5)]
    assert events[0]["problem"].startswith("tick 14 -> 15: moved 1.67 m where its speeds say 0.83 m"), events
    [check] = checks
    assert not check["passed"] and not result["passed"] and "follower: 1 tick(s)" in check["detail"]


def test_the_sdk_refuses_a_road_users_ack_without_its_truth_at_once() -> None:
    """Attack review 11: the world refuses a road user's Ack without a truth (it switched the position check of
    "truth in motion" off for a tick); the SDK says so at once instead of sending an Ack every re-send refuses."""
    from v2x.sdk import Stack

    stack = Stack("mqtt://127.0.0.1:1", run_id="r-v2x", actor_id="follower", kind="car")
    with pytest.raises(ValueError, match="must carry its truth"):
        asyncio.run(stack.ack(None, None))  # type: ignore[arg-type]  # (refused before the tick is looked at)
