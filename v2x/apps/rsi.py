"""Where an RSI item (a road traffic event or sign) lies from the host, the geometry the RSI apps share
(HLW, IVS, SLW). Sans-I/O.

An item with reference paths applies to a host on one of them: within the path's half-width plus a
matching margin of its centre line, heading within 45 degrees of the path's direction where it is. The
distance is measured along that path from the host's front bumper to the item's projection on it:
positive ahead, negative once the front bumper is past it. Several matching paths: the one where the
item is nearest ahead (or, all passed, least far behind) wins. An item without reference paths applies in
every direction: the distance is the straight line from the front bumper, when the item lies within 45
degrees of the host's heading (else None: it is not on the host's way).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from shapely.geometry import LineString, Point

from v2x.apps.host import Host
from v2x.units import wrap_angle_rad
from v2x.wire.rsi import ReferencePath

MAX_HEADING_DIFF_RAD = math.radians(45.0)  # a host on a path or lane heads within this of it (RSI, RLVW, TJW)


def direction_at(points: tuple[tuple[float, float], ...], along: float) -> float:
    """ENU direction of the path segment at arc length ``along`` (the last one beyond the end)."""
    acc = 0.0
    direction = 0.0
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        seg = math.hypot(x1 - x0, y1 - y0)
        if seg <= 0:
            continue
        direction = math.atan2(y1 - y0, x1 - x0)
        if along <= acc + seg:
            break
        acc += seg
    return direction


def along_path(host: Host, x: float, y: float, path: ReferencePath, margin_m: float) -> float | None:
    """Signed distance along ``path`` from the host's front bumper to the projection of ``(x, y)``
    (positive ahead), or None if the host is not on the path or heads the other way."""
    line = LineString(path.points)
    p = Point(host.x, host.y)
    if float(line.distance(p)) > path.radius_m + margin_m:
        return None
    s_host = float(line.project(p))
    if abs(wrap_angle_rad(host.heading_rad - direction_at(path.points, s_host))) > MAX_HEADING_DIFF_RAD:
        return None
    return float(line.project(Point(x, y))) - (s_host + host.length_m / 2)


def straight_ahead(host: Host, x: float, y: float) -> float | None:
    """Straight-line distance from the host's front bumper to ``(x, y)`` if it lies within 45 degrees of
    the heading (the centre-to-point bearing), else None."""
    dx, dy = x - host.x, y - host.y
    centre = math.hypot(dx, dy)
    if centre > 1e-6 and abs(wrap_angle_rad(math.atan2(dy, dx) - host.heading_rad)) > MAX_HEADING_DIFF_RAD:
        return None
    return centre - host.length_m / 2


def item_distance(
    host: Host, x: float, y: float, paths: Sequence[ReferencePath], margin_m: float, *, ahead_of: float = 0.0
) -> float | None:
    """The module docstring's distance to an item at ``(x, y)`` with ``paths``; with several matching
    paths, the smallest distance that is at least ``ahead_of`` (an event zone's far edge: -radius), else
    the largest."""
    if not paths:
        return straight_ahead(host, x, y)
    found = [d for path in paths if (d := along_path(host, x, y, path, margin_m)) is not None]
    if not found:
        return None
    ahead = [d for d in found if d >= ahead_of]
    return min(ahead) if ahead else max(found)


__all__ = ["MAX_HEADING_DIFF_RAD", "along_path", "direction_at", "item_distance", "straight_ahead"]
