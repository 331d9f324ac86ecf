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

import math
from collections.abc import Mapping
from dataclasses import dataclass

from v2x.apps.rlvw import Host, time_to_travel
from v2x.apps.rsi import item_distance
from v2x.units import R95_PER_SIGMA
from v2x.wire.rsi import RoadEvent


@dataclass(frozen=True)
class HazardWarning:
    key: str  # the event as the app names it: {rsi id hex}/rte{rteId}
    event: RoadEvent
    distance_m: float  # front bumper to the near edge of the hazard zone (0 inside it)
    time_to_hazard_s: float


def hazard_distance(host: Host, event: RoadEvent, margin_m: float) -> float | None:
    """Distance from the host's front bumper to the event's hazard zone on its way (rule 2), or None."""
    d = item_distance(host, event.x, event.y, event.paths, margin_m, ahead_of=-event.radius_m)
    if d is None or (event.paths and d < -event.radius_m):
        return None  # not on the host's way, or passed
    return max(0.0, d - event.radius_m)


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
