"""Signalised intersections of a scenario, sans-I/O: fixed-time signal controllers and the approach geometry
(ingress lane, stop line) that MAP describes.

Used by the roadside unit (MAP + SPAT), by the referee (who crossed a stop line on red) and by drivers' eyes.
On-board applications never read this module: they rebuild the same geometry and timing from MAP and SPAT
received over the air (``v2x.wire.map_spat.decode_map`` / ``decode_spat``).

A fixed-time plan serves its phases in order, each for green, then yellow, then an all-red clearance; a
phase is red whenever another phase is served. The cycle starts (phase 1 green) at ``-offset_s``."""

from __future__ import annotations

import itertools
import math

from v2x.scenario.model import IntersectionSpec, LaneSpec, Scenario, SignalSpec
from v2x.units import kph_to_mps
from v2x.wire.map_spat import GREEN, RED, YELLOW, Approach, Interval, light_at


class FixedTimeController:
    """A pre-timed signal plan (one ring, phases in sequence)."""

    def __init__(self, plan: SignalSpec) -> None:
        self.plan = plan
        self.cycle_s = plan.cycle_s
        self._green_start: dict[int, float] = {}
        start = 0.0
        for phase in plan.phases:
            self._green_start[phase.id] = start
            start += phase.green_s + phase.yellow_s + phase.all_red_s
        self._phase = {p.id: p for p in plan.phases}

    @property
    def phase_ids(self) -> list[int]:
        return [p.id for p in self.plan.phases]

    def timeline(self, phase_id: int, t_s: float, horizon_s: float | None = None) -> list[Interval]:
        """The phase's lights from the interval that contains ``t_s`` onwards, covering at least
        ``horizon_s`` (default: one cycle). Red intervals are merged across cycle boundaries."""
        horizon = self.cycle_s if horizon_s is None else horizon_s
        phase = self._phase[phase_id]
        c = self.cycle_s
        g0 = self._green_start[phase_id]
        # Cycle k starts at k*c - offset; this phase is green from there + g0.
        k = math.floor((t_s + self.plan.offset_s - g0) / c) - 1
        out: list[Interval] = []
        while True:
            g = k * c - self.plan.offset_s + g0
            pieces = [
                Interval(GREEN, g, g + phase.green_s),
                Interval(YELLOW, g + phase.green_s, g + phase.green_s + phase.yellow_s),
                Interval(RED, g + phase.green_s + phase.yellow_s, g + c),
            ]
            for iv in pieces:
                if iv.end_s - iv.start_s <= 0 or iv.end_s <= t_s + 1e-9:
                    continue
                if out and out[-1].light == iv.light and abs(out[-1].end_s - iv.start_s) < 1e-9:
                    out[-1] = Interval(iv.light, out[-1].start_s, iv.end_s)
                else:
                    out.append(iv)
            if out and out[-1].end_s >= t_s + horizon and len(out) >= 3:
                return out
            k += 1

    def light(self, phase_id: int, t_s: float) -> int:
        found = light_at(self.timeline(phase_id, t_s), t_s)
        assert found is not None
        return found


def node_id_of(scenario: Scenario, intersection_id: str) -> int:
    """IntersectionReferenceID.id: the intersection's position in the file, from 1."""
    for k, ix in enumerate(scenario.road.intersections, start=1):
        if ix.id == intersection_id:
            return k
    raise KeyError(intersection_id)


def ingress(lane: LaneSpec, ix: IntersectionSpec) -> list[tuple[float, float]] | None:
    """The lane's centre line up to where it first enters the intersection box (its stop line), or None if
    it never enters the box or starts inside it."""
    cx, cy = ix.center
    r = ix.radius_m
    pts = [tuple(p) for p in lane.centerline]
    if math.hypot(pts[0][0] - cx, pts[0][1] - cy) < r:
        return None  # starts inside the box
    # Walk the polyline to its first entry into the circle (exact; None if it never enters).
    out: list[tuple[float, float]] = [(float(pts[0][0]), float(pts[0][1]))]
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        dx, dy = x1 - x0, y1 - y0
        fx, fy = x0 - cx, y0 - cy
        a = dx * dx + dy * dy
        b = 2 * (fx * dx + fy * dy)
        c = fx * fx + fy * fy - r * r
        disc = b * b - 4 * a * c
        if a > 0 and disc >= 0:
            u = (-b - math.sqrt(disc)) / (2 * a)
            if 0 <= u <= 1:
                out.append((x0 + u * dx, y0 + u * dy))
                return out
        out.append((float(x1), float(y1)))
    return None


def approaches(scenario: Scenario, intersection_ids: list[str] | None = None) -> list[Approach]:
    """Every ingress lane of the given intersections (default all), in file order."""
    out: list[Approach] = []
    for ix in scenario.road.intersections:
        if intersection_ids is not None and ix.id not in intersection_ids:
            continue
        phase_of: dict[str, int] = {}
        if ix.signal is not None:
            for phase in ix.signal.phases:
                for lane_id in phase.lanes:
                    phase_of[lane_id] = phase.id
        for lane in scenario.road.lanes:
            pts = ingress(lane, ix)
            if pts is None:
                continue
            limit = None if lane.speed_limit_kph is None else kph_to_mps(lane.speed_limit_kph)
            out.append(
                Approach(
                    ix.id, node_id_of(scenario, ix.id), lane.id, pts, lane.width_m, phase_of.get(lane.id, 0), limit
                )
            )
    return out


def signal_heads(scenario: Scenario) -> list[tuple[Approach, FixedTimeController]]:
    """Every signalised approach with the controller of its intersection: the physical signal heads, which
    drivers see and the referee checks (one controller per intersection, shared by its approaches)."""
    controllers = {ix.id: FixedTimeController(ix.signal) for ix in scenario.road.intersections if ix.signal}
    return [
        (ap, controllers[ap.intersection])
        for ap in approaches(scenario)
        if ap.phase_id and ap.intersection in controllers
    ]


def crossed(approach: Approach, before: tuple[float, float], after: tuple[float, float]) -> bool:
    """Did a point moving from ``before`` to ``after`` cross the approach's stop line (the segment across
    the lane at the stop point) in the direction of travel?"""
    sx, sy = approach.stop_point
    h = approach.direction_rad
    ux, uy = math.cos(h), math.sin(h)
    along0 = (before[0] - sx) * ux + (before[1] - sy) * uy
    along1 = (after[0] - sx) * ux + (after[1] - sy) * uy
    if not (along0 < 0 <= along1):
        return False
    f = -along0 / (along1 - along0)
    px, py = before[0] + f * (after[0] - before[0]), before[1] + f * (after[1] - before[1])
    lateral = abs(-(px - sx) * uy + (py - sy) * ux)
    return lateral <= approach.width_m / 2
