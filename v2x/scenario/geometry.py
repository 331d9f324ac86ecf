"""Road geometry from a scenario: lanes as shapely LineStrings, routes that map arc length to pose."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from shapely.geometry import LineString, Point, Polygon

from v2x.scenario.model import ActorSpec, LaneSpec, PhantomSpec, Scenario


@dataclass(frozen=True)
class Pose:
    x: float
    y: float
    heading_rad: float  # ENU yaw, counter-clockwise from east
    z: float = 0.0  # height above the origin (the road surface under the footprint centre), metres
    grade: float = 0.0  # rise over run in the direction of travel (dz/ds: 0.1 is a 10 % climb, -0.1 downhill)


class Route:
    """A polyline followed by arc length ``s``; beyond its end it continues straight. With ``elevation``
    (one height per point, LaneSpec.elevation_m) its height is linear between points and held at the first
    and last point's height beyond the ends; ``s`` is measured in the horizontal plane."""

    def __init__(self, points: list[tuple[float, float]], elevation: list[float] | None = None) -> None:
        self.line = LineString(points)
        if self.line.length <= 0:
            raise ValueError("route has zero length")
        xy = np.asarray(points, dtype=np.float64)
        seg = np.diff(xy, axis=0)
        self._seg_len = np.hypot(seg[:, 0], seg[:, 1])
        self._cum = np.concatenate([[0.0], np.cumsum(self._seg_len)])
        self._xy = xy
        self._yaw = np.arctan2(seg[:, 1], seg[:, 0])
        self._z: NDArray[np.float64] | None = None
        self._grade: NDArray[np.float64] | None = None
        if elevation is not None and any(z != 0.0 for z in elevation):
            if len(elevation) != len(points):
                raise ValueError("one height per route point")
            self._z = np.asarray(elevation, dtype=np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                self._grade = np.where(self._seg_len > 0, np.diff(self._z) / self._seg_len, 0.0)

    @property
    def length(self) -> float:
        return float(self._cum[-1])

    def pose(self, s: float) -> Pose:
        i = int(np.searchsorted(self._cum, s, side="right") - 1)
        i = min(max(i, 0), len(self._seg_len) - 1)
        while self._seg_len[i] == 0 and i > 0:  # (a repeated point: the segment before; the SDK's Route agrees)
            i -= 1
        while self._seg_len[i] == 0:  # (a repeated first point, before the start: none before)
            i += 1
        frac = s - self._cum[i]
        yaw = float(self._yaw[i])
        x = float(self._xy[i, 0] + frac * math.cos(yaw))
        y = float(self._xy[i, 1] + frac * math.sin(yaw))
        if self._z is None or self._grade is None:
            return Pose(x, y, yaw)
        if s < 0.0:
            return Pose(x, y, yaw, float(self._z[0]), 0.0)
        if s >= self._cum[-1]:
            return Pose(x, y, yaw, float(self._z[-1]), 0.0)
        grade = float(self._grade[i])
        return Pose(x, y, yaw, float(self._z[i] + frac * grade), grade)

    def offset_to(self, s: float, other: Route) -> float:
        """The signed sideways distance (left positive) from this line's point at ``s`` to the nearest point of
        ``other``, along this line's left normal there (a lane beside it: its distance, centre to centre)."""
        p = self.pose(s)
        q = other.line.interpolate(other.line.project(Point(p.x, p.y)))
        return float((q.x - p.x) * -math.sin(p.heading_rad) + (q.y - p.y) * math.cos(p.heading_rad))


def shifted(pose: Pose, offset_m: float, offset_rate_mps: float, speed_mps: float) -> Pose:
    """``pose`` moved ``offset_m`` to the left (negative: right) of its line, heading turned by the sideways
    motion: ``offset_rate_mps`` sideways at ``speed_mps`` along the line."""
    if offset_m == 0.0 and offset_rate_mps == 0.0:
        return pose
    c, s = math.cos(pose.heading_rad), math.sin(pose.heading_rad)
    yaw = pose.heading_rad + (math.atan2(offset_rate_mps, speed_mps) if speed_mps > 0.1 else 0.0)
    return Pose(pose.x - offset_m * s, pose.y + offset_m * c, yaw, pose.z, pose.grade)


def smoothstep5(u: float) -> tuple[float, float]:
    """The quintic 0 -> 1 over ``u`` in [0, 1] with zero slope and curvature at both ends, and its slope
    (d/du): the sideways profile of a lane change (no jerk in the lateral acceleration at its ends)."""
    u = min(max(u, 0.0), 1.0)
    return u * u * u * (10.0 - 15.0 * u + 6.0 * u * u), 30.0 * u * u * (1.0 - u) * (1.0 - u)


def lane_routes(scenario: Scenario, ids: set[str]) -> dict[str, Route]:
    """The centre lines of the lanes ``ids`` as routes."""
    return {lane.id: lane_route(lane) for lane in scenario.road.lanes if lane.id in ids}


def lane_route(lane: LaneSpec) -> Route:
    """A lane's centre line as a route, with its elevation profile."""
    return Route(list(lane.centerline), lane.elevation_m)


def route_for(scenario: Scenario, actor: ActorSpec | PhantomSpec) -> Route | None:
    if actor.path is not None:
        return Route(list(actor.path))
    if actor.lane is not None:
        for lane in scenario.road.lanes:
            if lane.id == actor.lane:
                return lane_route(lane)
    return None


def polygon(points: list[tuple[float, float]]) -> Polygon:
    return Polygon(points)
