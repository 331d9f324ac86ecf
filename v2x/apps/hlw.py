"""Hazardous location warning (T/CSAE 53 Day-1, V2I: RSI road traffic events), on board. Sans-I/O: the
host's own state and the road events heard in RSI in; warnings out.

The logic, stated so that it can be checked (thresholds and their sources: v2x/apps/thresholds.py):

1. **Active.** An event counts only inside its time window (``RoadEvent.active``) and while the RSU keeps
   announcing it (the vehicle forgets an event not heard for ``max_age_s``).
2. **On the host's way.** With reference paths, the host must be on one of them: within the path's
   half-width plus ``hlw_match_margin_m`` of its centre line, heading within 45 degrees of the path's
   direction where it is. The distance to the hazard is measured along that path, from the host's front
   bumper to the near edge of the hazard zone (the event's projection on the path minus ``radius_m``;
   0 inside the zone). A host whose front bumper is past the far edge has passed the hazard. An event
   without reference paths applies in every direction: the distance is the straight line from the front
   bumper to the zone's edge, and the hazard is ahead when its centre lies within 45 degrees of the host's
   heading. Several matching paths: the nearest hazard distance wins.
3. **Warn** when the hazard is ahead, ``distance <= hlw_max_distance_m`` and the time to reach the zone at
   the current speed and longitudinal acceleration, ``t <= hlw_tti_s``. A host that stands still, or
   brakes hard enough to stop short of the zone, never arrives and is not warned.
4. Positioning: the app stands down when the host's 95 % horizontal error exceeds
   ``hlw_required_accuracy_m`` (5 m in the T/CSAE 53 table), as FCW and RLVW do.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

from shapely.geometry import LineString, Point

from v2x.apps.rlvw import Host, time_to_travel
from v2x.messages import R95_PER_SIGMA, ReferencePath, RoadEvent

MAX_HEADING_DIFF_RAD = math.radians(45.0)


@dataclass(frozen=True)
class HazardWarning:
    key: str  # the event as the app names it: {rsi id hex}/rte{rteId}
    event: RoadEvent
    distance_m: float  # front bumper to the near edge of the hazard zone (0 inside it)
    time_to_hazard_s: float


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def _direction_at(points: tuple[tuple[float, float], ...], along: float) -> float:
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


def _along_path(host: Host, event: RoadEvent, path: ReferencePath, margin_m: float) -> float | None:
    """Rule 2 on one reference path: the distance to the hazard zone along it, or None if the host is not
    on the path, heads the other way, or has passed the hazard."""
    line = LineString(path.points)
    p = Point(host.x, host.y)
    if float(line.distance(p)) > path.radius_m + margin_m:
        return None
    s_host = float(line.project(p))
    if abs(_wrap(host.heading_rad - _direction_at(path.points, s_host))) > MAX_HEADING_DIFF_RAD:
        return None
    s_front = s_host + host.length_m / 2
    s_event = float(line.project(Point(event.x, event.y)))
    if s_front > s_event + event.radius_m:
        return None  # passed
    return max(0.0, s_event - event.radius_m - s_front)


def _straight_line(host: Host, event: RoadEvent) -> float | None:
    """Rule 2 for an event without reference paths: the distance to the zone's edge if it lies ahead."""
    dx, dy = event.x - host.x, event.y - host.y
    centre = math.hypot(dx, dy)
    if centre > 1e-6 and abs(_wrap(math.atan2(dy, dx) - host.heading_rad)) > MAX_HEADING_DIFF_RAD:
        return None
    return max(0.0, centre - event.radius_m - host.length_m / 2)


def hazard_distance(host: Host, event: RoadEvent, margin_m: float) -> float | None:
    """Distance from the host's front bumper to the event's hazard zone on its way (rule 2), or None."""
    if not event.paths:
        return _straight_line(host, event)
    found = [d for path in event.paths if (d := _along_path(host, event, path, margin_m)) is not None]
    return min(found) if found else None


def hazardous_location_warnings(
    host: Host, events: Mapping[str, RoadEvent], t_s: float, thresholds: Mapping[str, float]
) -> list[HazardWarning]:
    """Rules 1-4 of the module docstring, for every event heard (keyed as the app names them)."""
    if not (math.isfinite(host.sigma_m) and R95_PER_SIGMA * host.sigma_m <= thresholds["hlw_required_accuracy_m"]):
        return []
    out = []
    for key, event in sorted(events.items()):
        if not event.active(t_s):
            continue
        d = hazard_distance(host, event, thresholds["hlw_match_margin_m"])
        if d is None or d > thresholds["hlw_max_distance_m"]:
            continue
        t_arr = time_to_travel(d, host.speed_mps, host.accel_mps2) if d > 0 else 0.0
        if d == 0 and host.speed_mps <= 0:
            continue  # standing in the zone: nothing to warn about now
        if not math.isfinite(t_arr) or t_arr > thresholds["hlw_tti_s"]:
            continue
        out.append(HazardWarning(key, event, d, t_arr))
    return out


__all__ = ["HazardWarning", "hazard_distance", "hazardous_location_warnings"]
