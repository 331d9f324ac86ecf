"""Surrogate safety measures, sans-I/O: what the ``min_gap``, ``max_decel`` and ``stays_on_route``
expectations ask about, measured on the ground truth tick by tick (docs/SCENARIOS.md, "Expectations").

Only the pairs and actors that an expectation of the variant names are measured, so a run without such an
expectation pays nothing and its metrics stay as they were. Each measure keeps its worst value over the
variant, with the time and place it happened (the first tick, if several tie):

* ``min_gap``: per pair, the smallest distance between the two oriented boxes (their footprints: centre,
  heading, length and width, as the referee's collision test has them), 0 when they touch or overlap. A tick
  where the two are kept apart by height (a bridge: more than ``VERTICAL_SEPARATION_M`` between them, as for
  collisions) is not counted.
* ``max_decel``: per actor, the largest loss of speed per second between two of its reported states
  (``(speed before - speed now) / time between them``: per tick in a run whose reports are in time; a late
  report's state counts over the time since the last one applied, so that the world's keeping the old state
  for a tick does not double the next tick's figure). Not the reported acceleration, which an outside stack
  may leave at zero. From the tick a road user collides on (the referee holds it at rest) its speed is not
  counted: the stop of a crash is the crash, which ``no_collision`` judges.
* ``route_offset``: per actor, the largest distance from its centre to its route (its lane's centre line or
  its path, continued straight beyond its ends, as a built-in agent drives past them).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from shapely.geometry import LineString, Point, Polygon
from shapely.ops import nearest_points

from v2x.core import VERTICAL_SEPARATION_M, WorldState
from v2x.scenario.geometry import route_for
from v2x.scenario.model import (
    MaxDecelExpectation,
    MinGapExpectation,
    Scenario,
    StaysOnRouteExpectation,
)

# How far a route is continued straight beyond each end for the offset (farther than any road: MAX_EXTENT_M).
ROUTE_EXTENSION_M = 1e6

DIGITS = 3  # the measures are kept and reported to this many decimals (mm, mm/s^2)

Box = tuple[float, float, float, float, float]  # centre x, y (m), heading (rad, ENU yaw), length, width (m)


def box_polygon(box: Box) -> Polygon:
    """The footprint of ``box`` as a polygon: its four corners."""
    x, y, heading, length, width = box
    c, s = math.cos(heading), math.sin(heading)
    hl, hw = length / 2, width / 2
    corners = [
        (x + a * hl * c - b * hw * s, y + a * hl * s + b * hw * c) for a, b in ((1, 1), (-1, 1), (-1, -1), (1, -1))
    ]
    return Polygon(corners)


def box_gap(a: Box, b: Box) -> tuple[float, tuple[float, float]]:
    """The exact distance between two oriented boxes (0 when they touch or overlap) and the point halfway
    between their nearest points (where they come closest)."""
    pa, pb = box_polygon(a), box_polygon(b)
    return float(pa.distance(pb)), _halfway(pa, pb)


def _halfway(pa: Polygon, pb: Polygon) -> tuple[float, float]:
    """The point halfway between the nearest points of two polygons."""
    qa, qb = nearest_points(pa, pb)
    return (qa.x + qb.x) / 2, (qa.y + qb.y) / 2


def gap_at_least(a: Box, b: Box) -> float:
    """A lower bound of :func:`box_gap`, cheap: the distance between the centres less each box's half
    diagonal (no point of a box is further from its centre)."""
    return math.hypot(b[0] - a[0], b[1] - a[1]) - math.hypot(a[3], a[4]) / 2 - math.hypot(b[3], b[4]) / 2


def extended(points: list[tuple[float, float]], by_m: float = ROUTE_EXTENSION_M) -> LineString:
    """The polyline ``points`` continued straight for ``by_m`` beyond each end (along its first and last
    segments of non-zero length)."""
    pts = [(float(x), float(y)) for x, y in points]
    head = next(((pts[k], pts[k + 1]) for k in range(len(pts) - 1) if pts[k] != pts[k + 1]), None)
    tail = next(((pts[k - 1], pts[k]) for k in range(len(pts) - 1, 0, -1) if pts[k - 1] != pts[k]), None)
    if head is None or tail is None:
        raise ValueError("route has zero length")

    def beyond(p: tuple[float, float], q: tuple[float, float]) -> tuple[float, float]:
        d = math.hypot(q[0] - p[0], q[1] - p[1])
        return (q[0] + (q[0] - p[0]) / d * by_m, q[1] + (q[1] - p[1]) / d * by_m)

    return LineString([beyond(head[1], head[0]), *pts, beyond(*tail)])


def route_offset(line: LineString, x: float, y: float) -> float:
    """The distance from ``(x, y)`` to ``line``."""
    return float(line.distance(Point(x, y)))


@dataclass
class Worst:
    """The worst value of a measure so far, and when and where (None: never measured)."""

    value: float | None = None
    t_s: float | None = None
    at: tuple[float, float] | None = None

    def offer(self, value: float, t: float, at: tuple[float, float], *, lower: bool) -> None:
        """Keep ``value`` if it is worse (``lower``: smaller is worse) than the worst so far, both to
        ``DIGITS`` decimals (as reported): the first tick of a worst value is kept, not one where rounding
        noise made it a hair worse."""
        if self.worse(value, lower=lower):
            self.value, self.t_s, self.at = round(value, DIGITS), t, at

    def worse(self, value: float, *, lower: bool) -> bool:
        """Whether :meth:`offer` would keep ``value``."""
        value = round(value, DIGITS)
        return self.value is None or (value < self.value if lower else value > self.value)

    def as_dict(self, key: str) -> dict[str, Any]:
        return {
            key: self.value,
            "t_s": None if self.t_s is None else round(self.t_s, 3),
            "at": None if self.at is None else [round(self.at[0], 2), round(self.at[1], 2)],
        }


class SafetyMeasures:
    """The surrogate safety measures of one run of ``scenario``'s ``variant`` over ``world``."""

    def __init__(self, world: WorldState, scenario: Scenario, variant: str) -> None:
        self.world = world
        self.gaps: dict[tuple[str, str], Worst] = {}
        self.decels: dict[str, Worst] = {}
        self.routes: dict[str, tuple[LineString, Worst]] = {}
        for e in scenario.expectations:
            if e.variant != variant:
                continue
            if isinstance(e, MinGapExpectation):
                a, b = sorted(e.actors)
                self.gaps.setdefault((a, b), Worst())
            elif isinstance(e, MaxDecelExpectation):
                self.decels.setdefault(e.actor, Worst())
            elif isinstance(e, StaysOnRouteExpectation) and e.actor not in self.routes:
                route = route_for(scenario, scenario.actor(e.actor))
                if route is None:  # (the loader refuses it)
                    raise ValueError(f"{e.actor} has no route (neither 'lane' nor 'path')")
                self.routes[e.actor] = (extended(list(route.line.coords)), Worst())
        self._last: dict[str, tuple[float, float]] = {}  # per max_decel actor: (time, speed) of its last state

    def __bool__(self) -> bool:
        return bool(self.gaps or self.decels or self.routes)

    def _box(self, s: int) -> Box:
        w = self.world
        return (float(w.x[s]), float(w.y[s]), float(w.heading_rad[s]), float(w.length_m[s]), float(w.width_m[s]))

    def step(self, t: float, applied: Collection[str] | None, wrecks: Collection[int]) -> None:
        """Measure at time ``t``, after the tick's truths are applied and the referee has run. ``applied``:
        the actors whose reported state was applied this tick (None: all); ``wrecks``: the slots of the road
        users at rest after a collision."""
        w = self.world
        for (a, b), worst in self.gaps.items():
            sa, sb = w.slot_of(a), w.slot_of(b)
            if abs(float(w.z[sa]) - float(w.z[sb])) > VERTICAL_SEPARATION_M:
                continue  # kept apart by height (an unknown height, NaN, is never apart)
            box_a, box_b = self._box(sa), self._box(sb)
            if worst.value is not None and gap_at_least(box_a, box_b) >= worst.value + 10.0**-DIGITS:
                continue  # not a new smallest, whatever the exact gap (a diff review: shapely every tick)
            pa, pb = box_polygon(box_a), box_polygon(box_b)
            gap = float(pa.distance(pb))
            if worst.worse(gap, lower=True):  # where they come closest: only for a new smallest
                worst.offer(gap, t, _halfway(pa, pb), lower=True)
        for actor, worst in self.decels.items():
            s = w.slot_of(actor)
            if s in wrecks:
                continue
            if applied is not None and actor not in applied and actor in self._last:
                continue  # the world kept its old state: measured over the time to its next report
            speed = math.hypot(float(w.vx[s]), float(w.vy[s]))
            last = self._last.get(actor)
            self._last[actor] = (t, speed)
            if last is None or t <= last[0]:
                continue
            decel = (last[1] - speed) / (t - last[0])
            if round(decel, DIGITS) > 0:
                worst.offer(decel, t, (float(w.x[s]), float(w.y[s])), lower=False)
        for actor, (line, worst) in self.routes.items():
            s = w.slot_of(actor)
            x, y = float(w.x[s]), float(w.y[s])
            worst.offer(route_offset(line, x, y), t, (x, y), lower=False)

    def metrics(self) -> dict[str, list[dict[str, Any]]]:
        """The metrics of the measures asked for (``min_gap``, ``max_decel``, ``route_offset``; docs/RESULTS.md),
        each a list in id order; none of the keys when nothing asked."""
        out: dict[str, list[dict[str, Any]]] = {}
        if self.gaps:
            out["min_gap"] = [{"actors": [a, b], **w.as_dict("gap_m")} for (a, b), w in sorted(self.gaps.items())]
        if self.decels:
            out["max_decel"] = [{"actor": a, **w.as_dict("decel_mps2")} for a, w in sorted(self.decels.items())]
        if self.routes:
            out["route_offset"] = [{"actor": a, **w.as_dict("offset_m")} for a, (_, w) in sorted(self.routes.items())]
        return out
