"""Left turn assist (T/CSAE 53 Day-1, V2V/V2I: BSM + MAP, and SPAT where signalised), on board. Sans-I/O: the
host's own state and route, the approaches from MAP, the lights from SPAT and the vehicles heard in BSMs in;
warnings out.

The situation: the host is about to turn left across the oncoming lanes of an intersection, and an
oncoming vehicle it may not see (hidden by a truck waiting to turn in the opposite left-turn lane) would
reach the host's path through the box at about the same time. The logic, stated so that it can be checked:

1. **Positioning.** Like the other apps, the host and each remote are used only if their 95 % horizontal
   error is within ``lta_required_accuracy_m`` (5 m in the T/CSAE 53 Day-1 table for LTA).
2. **Map matching** (MAP). The host is on an ingress lane of an intersection, before its stop line, within
   ``lta_max_distance_m`` of it (the RLVW matching, :func:`v2x.apps.rlvw.match`, with
   ``lta_match_margin_m``).
3. **Left-turn intent** (the host's own route). MAP says which movements a lane allows (its maneuvers, a
   shared straight-and-left lane both), not which one the host makes. The host knows its own route (what
   its navigation plans, what its turn signal says): the view's ``route_ahead``. The host turns left when
   its route's heading ``lta_turn_lookahead_m`` past the stop line is 45..135 degrees to the left of the
   ingress lane's direction at the stop line. Without a route the app cannot tell, and stays silent.
   **Protected left turn** (SPAT): when the host's left turn (MAP's left-turn connection of its lane; its
   lane's phase if MAP names none) shows protected green (6) when the host reaches its stop line, nothing
   may come the other way: no warning. Permissive green (5: the turn gives way to the oncoming traffic that
   has green too), yellow, red or no SPAT (an unsignalised crossing): the rules below decide.
4. **Oncoming.** A remote (BSM) whose heading is within 45 degrees of the opposite of the ingress lane's
   direction, within ``lta_max_distance_m`` of the host, whose path (a straight line along its heading:
   it goes straight on) crosses the host's path through the box ahead of both: the conflict point.
   A vehicle already past it, going the same way or crossing, never meets that test.
5. **Timing** (a PET-style gap test at the conflict point). ``t_host``, ``t_remote``: the times for the
   host's centre (along its route) and the remote's centre (along its heading) to reach the conflict
   point at their current speed and longitudinal acceleration (``rlvw.time_to_travel``; one that stops
   first never arrives). Warn when ``t_host <= lta_tti_s`` and ``|t_remote - t_host| < lta_gap_s``: the
   host would turn in front of the oncoming vehicle in a gap shorter than drivers accept, or while it is
   still passing.

The warning's ``other`` is the remote's BSM id; ``ttc_s`` is ``t_host``; its figure ``gap_s`` is
``t_remote - t_host`` (negative: the oncoming vehicle would get there first).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from shapely.geometry import LineString, Point

from v2x.apps.host import Host
from v2x.apps.registry import AppSpec, Bounds, Figure, OnBoardView, Raised, RouteAhead, RunsOn, route_points
from v2x.apps.rlvw import Match, match, time_to_travel
from v2x.units import accurate_enough, wrap_angle_rad
from v2x.wire import testbed_pb2
from v2x.wire.bsm import RemoteState
from v2x.wire.map_spat import GREEN, MANEUVER_BITS, Approach, Interval, light_at

LEFT_TURN_MIN_RAD = math.radians(45.0)  # a left turn: the route turns 45..135 degrees to the left
LEFT_TURN_MAX_RAD = math.radians(135.0)  # (beyond: a U-turn, which LTA does not cover)
ONCOMING_MAX_RAD = math.radians(45.0)  # oncoming: heading within 45 degrees of the opposite direction
CONFLICT = "left turn across path"  # NHTSA pre-crash typology: LTAP/OD (left turn across path, opposite direction)


@dataclass(frozen=True)
class LeftTurnConflict:
    other: str  # the remote's key (BSM id, hex)
    intersection: str
    point: tuple[float, float]  # the conflict point, local metres
    t_host_s: float
    t_remote_s: float

    @property
    def gap_s(self) -> float:
        return self.t_remote_s - self.t_host_s


def turning_left(m: Match, host: Host, route_ahead: RouteAhead, lookahead_m: float) -> bool:
    """Rule 3: does the host's route turn left through the intersection of the approach it is on?"""
    to_line = m.distance_m + host.length_m / 2  # the host's centre to the stop line, along the lane
    turn = wrap_angle_rad(route_ahead(to_line + lookahead_m)[2] - m.approach.direction_rad)
    return LEFT_TURN_MIN_RAD <= turn <= LEFT_TURN_MAX_RAD


def _path_through_box(m: Match, host: Host, route_ahead: RouteAhead, lookahead_m: float) -> tuple[float, LineString]:
    """The host's route from its stop line to ``lookahead_m`` past it, and the distance of its first point
    from the host's centre."""
    start = m.distance_m + host.length_m / 2
    return start, LineString(route_points(route_ahead, start, lookahead_m))


def _conflict_point(path: LineString, ray: LineString) -> tuple[float, float] | None:
    """Where the remote's path first crosses the host's (first along the host's path), or None."""
    hit = path.intersection(ray)
    if hit.is_empty:
        return None
    points = [Point(c) for g in getattr(hit, "geoms", [hit]) for c in g.coords]
    best = min(points, key=lambda p: float(path.project(p)))
    return float(best.x), float(best.y)


def protected_left(approach: Approach, signals: Mapping[tuple[int, int], list[Interval]], t_s: float) -> bool:
    """Rule 3's signal: does SPAT show the approach's left turn protected green at ``t_s``?"""
    left = approach.connection(MANEUVER_BITS["left"])
    phase = left.phase_id if left is not None else approach.phase_id
    timeline = signals.get((approach.node_id, phase)) if phase else None
    return timeline is not None and light_at(timeline, t_s) == GREEN


def left_turn_conflicts(
    host: Host,
    route_ahead: RouteAhead | None,
    approaches: Iterable[Approach],
    remotes: Iterable[RemoteState],
    t_s: float,
    thresholds: Mapping[str, float],
    signals: Mapping[tuple[int, int], list[Interval]] | None = None,
) -> list[LeftTurnConflict]:
    """Rules 1-5 of the module docstring, for every remote; the conflicts that call for a warning
    (``signals``: SPAT's lights by (node id, phase id), as ``OnBoardView.signals``)."""
    signals = signals or {}
    need = thresholds["lta_required_accuracy_m"]
    if route_ahead is None or not accurate_enough(host.sigma_m, need):
        return []
    m = match(host, approaches, thresholds["lta_match_margin_m"])
    if m is None or m.distance_m > thresholds["lta_max_distance_m"]:
        return []
    lookahead = thresholds["lta_turn_lookahead_m"]
    if not turning_left(m, host, route_ahead, lookahead):
        return []
    t_host_max = thresholds["lta_tti_s"]
    t_line = time_to_travel(m.distance_m, host.speed_mps, host.accel_mps2)
    if t_line > t_host_max:
        return []  # not even at the stop line within the time: nothing to compute yet
    if protected_left(m.approach, signals, t_s + t_line):
        return []
    to_box, path = _path_through_box(m, host, route_ahead, lookahead)
    opposite = m.approach.direction_rad + math.pi
    reach = thresholds["lta_max_distance_m"]
    out = []
    for r in remotes:
        if not accurate_enough(r.sigma_major_m, need):
            continue
        if abs(wrap_angle_rad(r.heading_rad - opposite)) > ONCOMING_MAX_RAD:
            continue
        x, y, vx, vy = r.extrapolated(t_s)
        if math.hypot(x - host.x, y - host.y) > reach:
            continue
        c, s = math.cos(r.heading_rad), math.sin(r.heading_rad)
        ray = LineString([(x, y), (x + (reach + lookahead) * c, y + (reach + lookahead) * s)])
        point = _conflict_point(path, ray)
        if point is None:
            continue
        t_host = time_to_travel(to_box + float(path.project(Point(point))), host.speed_mps, host.accel_mps2)
        if not math.isfinite(t_host) or t_host > t_host_max:
            continue
        t_remote = time_to_travel(math.hypot(point[0] - x, point[1] - y), math.hypot(vx, vy), r.accel_mps2)
        if not math.isfinite(t_remote) or abs(t_remote - t_host) >= thresholds["lta_gap_s"]:
            continue
        out.append(LeftTurnConflict(r.key, m.approach.intersection, point, t_host, t_remote))
    return out


class LeftTurnAssist:
    """LTA on board (``other``: the oncoming vehicle's BSM id, hex, which the world resolves to an actor)."""

    def evaluate(self, view: OnBoardView, t_s: float) -> Sequence[Raised]:
        if not (view.remotes and view.approaches):
            return []
        found = left_turn_conflicts(
            view.host, view.route_ahead, view.all_approaches, view.remotes.values(), t_s, view.thresholds, view.signals
        )
        return [Raised("lta", f.other, ttc_s=f.t_host_s, figure=f.gap_s, conflict_type=CONFLICT) for f in found]


APPS = (
    AppSpec(
        name="lta",
        code=testbed_pb2.APP_LTA,
        title="left turn assist",
        runs_on=RunsOn.VEHICLE,
        consumes=("bsm", "map", "spat"),
        colour="#00897b",
        figure=Figure("gap_s", "time gap", "s"),
        time_label="TTI",
        thresholds={
            # Position accuracy LTA needs (T/CSAE 53 Day-1 table: 5 m, read as the 95 % horizontal radius, as
            # for the other apps): a party whose reported accuracy is worse is left out.
            "lta_required_accuracy_m": 5.0,
            # LTA communication range (T/CSAE 53 Day-1 table: 150 m): the farthest oncoming vehicle considered,
            # and the farthest from its stop line a host is assisted.
            "lta_max_distance_m": 150.0,
            # The gap a left-turning driver needs before an oncoming vehicle: the HCM's base critical headway
            # for a major-street left turn, 4.1 s (Highway Capacity Manual, 6th ed., Exhibit 20-11; 2010 ed.,
            # Exhibit 19-10). Applying it both ways (an oncoming vehicle that arrives up to 4.1 s before the
            # host is still passing or has only just passed) is our assumption: one figure, on the safe side.
            "lta_gap_s": 4.1,
            # How long before the host reaches the conflict point it is warned: our assumption, ICW's 5 s time
            # to the conflict point (icw_ttc_s). A turning host at 25 km/h that reacts in 1 s and brakes at
            # 5 m/s^2 needs 7 m + 5 m: it stops before its stop line when the conflict point lies 15 m
            # beyond it (35 m = 5 s x 7 m/s away).
            "lta_tti_s": 5.0,
            # How far past its stop line the host's route is read to tell a left turn (rule 3): our assumption,
            # the far side of a crossing of two-lane roads (a quarter turn in a 12 m-radius box is 22 m long).
            "lta_turn_lookahead_m": 30.0,
            # Map matching: how far outside the lane strip the host's position may be, m (as rlvw_match_margin_m).
            "lta_match_margin_m": 0.5,
        },
        # Bounds where the rule by unit (v2x.apps.thresholds.UNIT_BOUNDS) does not fit: the route is sampled
        # every ROUTE_STEP_M (registry) of the lookahead for each host at each tick, so at most a wide box's far side.
        threshold_bounds={"lta_turn_lookahead_m": Bounds(0.0, 100.0, above_low=True)},
        onboard=lambda names: LeftTurnAssist(),
    ),
)

__all__ = [
    "APPS",
    "CONFLICT",
    "LeftTurnAssist",
    "LeftTurnConflict",
    "left_turn_conflicts",
    "protected_left",
    "turning_left",
]
