"""Does a road user's reported truth (``Ack.truth``) move as a vehicle can, from one tick to the next? Sans-I/O.

The rules of "truth in motion", which both ``v2x conformance`` (on what a stack sent) and every run's world
(``v2x.sim.simulation``, on the truths it applies) judge by (docs/PROTOCOL.md "Truth"):

* one truth: ``|(vx, vy)|`` agrees with ``speed_mps`` within ``SPEED_TOLERANCE_MPS``, and (faster than 1 m/s)
  ``(vx, vy)`` points along ``heading_deg`` within ``VELOCITY_HEADING_DEG``;
* two truths of consecutive ticks: the distance moved agrees with what the two speeds say (the mean speed times
  the tick: exact for a constant acceleration) within ``MOTION_TOLERANCE_M`` plus 10 %; the speed changed by no
  more than ``MAX_SPEED_CHANGE_MPS2`` allows over the tick (plus ``SPEED_TOLERANCE_MPS``); the course moved points along
  the mean heading within ``MOTION_HEADING_DEG`` (both speeds above 1 m/s);
* two truths further apart (a real-time stack that answered only the newest input, moving by the time since the
  tick it answered before): the speed change over the ticks between them, and the distance moved at most what a
  vehicle going from the one speed to the other within ``MAX_SPEED_CHANGE_MPS2`` can cover in that time
  (``reach_m``; plus ``MOTION_TOLERANCE_M`` and 10 %): one Ack without a truth, then a truth 500 m on, passed
  (attack review 11);
* the height: ``|dz|`` at most ``MAX_GRADE`` of the distance moved (consecutive ticks; across a gap, of
  ``reach_m``) plus ``HEIGHT_TOLERANCE_M``: a truth that rose 999 m in a tick left every collision and
  ``min_gap`` behind (attack review 11).

A planner that reported 13.89 m/s, then 0 at the stop line one tick later (a stop no vehicle makes: 139 m/s^2)
passed every verdict of its run: the world trusted the truth (an AD team's review).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from v2x.scenario.model import MAX_GRADE

# Physical range of an acceleration a vehicle's truth may report, m/s^2 (``v2x.sim.inbound`` refuses an Ack
# whose truth says more: a forgery or a bug, never a vehicle).
MAX_ACCEL_MPS2 = 100.0
# How fast a road vehicle's speed may change from one tick's truth to the next, m/s^2: 1.5 g, beyond what tyres
# on dry asphalt give (friction coefficient about 0.8-1.0: at most some 10 m/s^2 of braking; the traffic model
# and SUMO's emergency braking stop at 9). A planner's stop at 100 m/s^2 passed the looser bound of the Ack.
MAX_SPEED_CHANGE_MPS2 = 15.0
SPEED_TOLERANCE_MPS = 0.1  # |(vx, vy)| against speed_mps; added to the speed change allowed
VELOCITY_HEADING_DEG = 2.0  # (vx, vy)'s direction against heading_deg (faster than MOVING_MPS)
MOTION_TOLERANCE_M = 0.05  # the distance moved against the speeds' (plus 10 % of it)
MOTION_HEADING_DEG = 10.0  # the course moved against the mean heading (both speeds above MOVING_MPS)
MOVING_MPS = 1.0  # below this, a heading says little about the direction of motion
HEIGHT_TOLERANCE_M = 0.05  # the height change against MAX_GRADE of the distance moved


@dataclass(frozen=True)
class Rules:
    """How strictly the headings are judged. ``CONFORMANCE`` (``v2x conformance``: a checklist for a stack's
    developer) holds a stack to what docs/PROTOCOL.md asks; ``IN_RUNS`` (every run's world, where one broken tick
    fails the run) judges only what no vehicle can do: a velocity within ``velocity_heading_deg`` of the heading
    or of its reverse (``reversing``: a stack may back up; a centre-of-gravity velocity slips a few degrees off
    the heading in a turn), and the course moved likewise; ``headings`` False (a pedestrian's or cyclist's
    heading is its body's: it may step sideways or turn on the spot) judges neither."""

    velocity_heading_deg: float = VELOCITY_HEADING_DEG
    course_heading_deg: float = MOTION_HEADING_DEG
    reversing: bool = False
    headings: bool = True


CONFORMANCE = Rules()
IN_RUNS = Rules(velocity_heading_deg=30.0, course_heading_deg=30.0, reversing=True)
IN_RUNS_VRU = Rules(headings=False)


def _off(direction_deg: float, heading_deg: float, rules: Rules, tolerance_deg: float) -> bool:
    """Whether ``direction_deg`` is more than ``tolerance_deg`` off ``heading_deg`` (and off its reverse, when
    ``rules.reversing``)."""
    off = abs(wrap_deg(direction_deg - heading_deg))
    return (min(off, 180.0 - off) if rules.reversing else off) > tolerance_deg


class Truth(Protocol):
    """What the rules read of a ``testbed_pb2.TruthState``."""

    @property
    def x_m(self) -> float: ...
    @property
    def y_m(self) -> float: ...
    @property
    def vx_mps(self) -> float: ...
    @property
    def vy_mps(self) -> float: ...
    @property
    def z_m(self) -> float: ...
    @property
    def speed_mps(self) -> float: ...
    @property
    def heading_deg(self) -> float: ...


def wrap_deg(deg: float) -> float:
    """``deg`` wrapped to [-180, 180)."""
    return (deg + 180.0) % 360.0 - 180.0


def truth_problem(tr: Truth, rules: Rules = CONFORMANCE) -> str:
    """What one truth says against itself, or "": its velocity against its speed and heading."""
    v = math.hypot(tr.vx_mps, tr.vy_mps)
    if abs(v - tr.speed_mps) > SPEED_TOLERANCE_MPS:
        return f"|(vx, vy)| {v:.2f} m/s, speed_mps {tr.speed_mps:.2f}"
    points = math.degrees(math.atan2(tr.vx_mps, tr.vy_mps))
    if rules.headings and v > MOVING_MPS and _off(points, tr.heading_deg, rules, rules.velocity_heading_deg):
        return f"(vx, vy) points to {points % 360:.1f} deg, heading_deg {tr.heading_deg:.1f}"
    return ""


def reach_m(v0: float, v1: float, dt: float) -> float:
    """The farthest a vehicle can go in ``dt`` seconds from speed ``v0`` to speed ``v1`` with its speed changing
    by at most ``MAX_SPEED_CHANGE_MPS2``: speeding up at the bound, then slowing down at it to ``v1``. The area under
    that speed profile is ``(v0 + v1) / 2 * dt + A * dt^2 / 4 - (v1 - v0)^2 / (4 A)`` (``A`` the bound; both speeds
    equal: ``v * dt`` plus a triangle of base ``dt`` and height ``A * dt / 2``). A speed change beyond the bound
    (judged on its own) is taken as reachable: the bound is then the mean speed times ``dt``."""
    a = MAX_SPEED_CHANGE_MPS2
    dv = min(abs(v1 - v0), a * dt)
    return 0.5 * (v0 + v1) * dt + a * dt * dt / 4.0 - dv * dv / (4.0 * a)


def motion_problems(
    before: Truth, after: Truth, tick_s: float, ticks: int = 1, rules: Rules = CONFORMANCE
) -> list[str]:
    """What two truths ``ticks`` ticks of ``tick_s`` apart say against each other ([] when they agree): the
    distance and course moved against their speeds and headings (across a gap: the distance at most ``reach_m``),
    the height change against ``MAX_GRADE`` of the distance, and the speed change against ``MAX_SPEED_CHANGE_MPS2``."""
    problems = []
    dt = ticks * tick_s
    dx, dy = after.x_m - before.x_m, after.y_m - before.y_m
    moved = math.hypot(dx, dy)
    if ticks == 1:
        said = 0.5 * (before.speed_mps + after.speed_mps) * tick_s
        if abs(moved - said) > MOTION_TOLERANCE_M + 0.1 * said:
            problems.append(f"moved {moved:.2f} m where its speeds say {said:.2f} m")
        elif rules.headings and min(before.speed_mps, after.speed_mps) > MOVING_MPS:
            course = math.degrees(math.atan2(dx, dy))
            mean = before.heading_deg + 0.5 * wrap_deg(after.heading_deg - before.heading_deg)
            if _off(course, mean, rules, rules.course_heading_deg):
                problems.append(f"moved towards {course % 360:.1f} deg, heading {mean % 360:.1f}")
        run = max(moved, said)
    else:
        reach = reach_m(before.speed_mps, after.speed_mps, dt)
        if moved > MOTION_TOLERANCE_M + 1.1 * reach:
            problems.append(
                f"moved {moved:.2f} m in {dt:.2f} s where its speeds say at most {reach:.2f} m "
                f"(with at most {MAX_SPEED_CHANGE_MPS2:g} m/s^2)"
            )
        run = max(moved, reach)
    dz = after.z_m - before.z_m
    if abs(dz) > MAX_GRADE * run + HEIGHT_TOLERANCE_M:
        problems.append(
            f"height {before.z_m:.2f} -> {after.z_m:.2f} m over {run:.2f} m (a grade of at most {MAX_GRADE:.0%})"
        )
    change = after.speed_mps - before.speed_mps
    if abs(change) > MAX_SPEED_CHANGE_MPS2 * dt + SPEED_TOLERANCE_MPS:
        problems.append(
            f"speed {before.speed_mps:.2f} -> {after.speed_mps:.2f} m/s in {dt:.2f} s "
            f"({abs(change) / dt:.1f} m/s^2; at most {MAX_SPEED_CHANGE_MPS2:g})"
        )
    return problems
