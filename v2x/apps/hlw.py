"""Hazardous location warning (T/CSAE 53 Day-1, V2I: RSI road traffic events), on board. Sans-I/O: the
host's own state and the road events heard in RSI in; warnings out.

The logic, stated so that it can be checked (thresholds and their sources: ``APPS`` below):

1. **Active.** An event counts only inside its time window (``RoadEvent.active``) and while the RSU keeps
   announcing it (the vehicle forgets an event not heard for ``max_age_s``). Traffic congestion (707) is
   left to TJW (v2x/apps/tjw.py), which warns about the queue's tail.
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

from v2x.apps.host import Host
from v2x.apps.registry import AppSpec, Figure, OnBoardView, Raised, RunsOn
from v2x.apps.rlvw import time_to_travel
from v2x.apps.rsi import item_distance
from v2x.units import accurate_enough
from v2x.wire import testbed_pb2
from v2x.wire.rsi import RTE_TRAFFIC_CONGESTION, RoadEvent


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
    if not accurate_enough(host.sigma_m, thresholds["hlw_required_accuracy_m"]):
        return []
    out = []
    for key, event in sorted(events.items()):
        if not event.active(t_s) or event.event_type == RTE_TRAFFIC_CONGESTION:
            continue  # a queue's tail is TJW's (v2x/apps/tjw.py)
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


class HazardousLocationWarning:
    """HLW on board (``other``: {rsi id hex}/rte{rteId}; the world resolves it to the scenario's road event
    id)."""

    def evaluate(self, view: OnBoardView, t_s: float) -> list[Raised]:
        if not view.heard_events:
            return []
        return [
            Raised(
                "hlw",
                hw.key,
                ttc_s=hw.time_to_hazard_s,
                figure=hw.distance_m,
                conflict_type=hw.event.type_name,
            )
            for hw in hazardous_location_warnings(view.host, view.road_events, t_s, view.thresholds)
        ]


APPS = (
    AppSpec(
        name="hlw",
        code=testbed_pb2.APP_HLW,
        title="hazardous location warning",
        runs_on=RunsOn.VEHICLE,
        consumes=("rsi",),
        colour="#bcbd22",
        figure=Figure("hazard_m", "to the hazard", "m"),
        time_label="TTI",
        # No open implementation we know gives HLW figures (SCENARIOS.md lists none; Wanji's 50 m is for
        # in-vehicle signage), so the warning time is ours: a driver who reacts in 1.5 s and brakes at 4 m/s^2
        # from 100 km/h (27.8 m/s) needs 1.5 + 27.8 / (2 x 4) = 5.0 s to stop at the hazard; 6 s leaves 1 s of
        # margin. Range and accuracy: T/CSAE 53 Day-1 table (HLW: 300 m, 5 m). Map matching margin outside
        # the reference path's half-width: ours, as for RLVW.
        thresholds={
            "hlw_tti_s": 6.0,
            "hlw_max_distance_m": 300.0,
            "hlw_required_accuracy_m": 5.0,
            "hlw_match_margin_m": 0.5,
        },
        onboard=lambda names: HazardousLocationWarning(),
    ),
)

__all__ = ["APPS", "HazardWarning", "HazardousLocationWarning", "hazard_distance", "hazardous_location_warnings"]
