"""Road geometry from a scenario: lanes as shapely LineStrings, routes that map arc length to pose."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from shapely.geometry import LineString, Point, Polygon

from v2x.scenario.model import ActorSpec, PhantomSpec, Scenario


@dataclass(frozen=True)
class Pose:
    x: float
    y: float
    heading_rad: float  # ENU yaw, counter-clockwise from east


class Route:
    """A polyline followed by arc length ``s``; beyond its end it continues straight."""

    def __init__(self, points: list[tuple[float, float]]) -> None:
        self.line = LineString(points)
        if self.line.length <= 0:
            raise ValueError("route has zero length")
        xy = np.asarray(points, dtype=np.float64)
        seg = np.diff(xy, axis=0)
        self._seg_len = np.hypot(seg[:, 0], seg[:, 1])
        self._cum = np.concatenate([[0.0], np.cumsum(self._seg_len)])
        self._xy = xy
        self._yaw = np.arctan2(seg[:, 1], seg[:, 0])

    @property
    def length(self) -> float:
        return float(self._cum[-1])

    def pose(self, s: float) -> Pose:
        i = int(np.searchsorted(self._cum, s, side="right") - 1)
        i = min(max(i, 0), len(self._seg_len) - 1)
        while self._seg_len[i] == 0 and i > 0:
            i -= 1
        frac = s - self._cum[i]
        yaw = float(self._yaw[i])
        x = float(self._xy[i, 0] + frac * math.cos(yaw))
        y = float(self._xy[i, 1] + frac * math.sin(yaw))
        return Pose(x, y, yaw)


def route_for(scenario: Scenario, actor: ActorSpec | PhantomSpec) -> Route | None:
    if actor.path is not None:
        return Route(list(actor.path))
    if actor.lane is not None:
        for lane in scenario.road.lanes:
            if lane.id == actor.lane:
                return Route(list(lane.centerline))
    return None


def lane_of(scenario: Scenario, x: float, y: float) -> str:
    """The lane whose strip contains the point, or '' (used only for reporting)."""
    point = Point(x, y)
    for lane in scenario.road.lanes:
        if LineString(lane.centerline).distance(point) <= lane.width_m / 2:
            return lane.id
    return ""


def polygon(points: list[tuple[float, float]]) -> Polygon:
    return Polygon(points)
