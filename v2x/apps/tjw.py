"""Traffic jam warning (T/CSAE 53 Day-1, V2I: RSI road traffic events, 1 Hz, 500 ms, 5 m, 150 m). Two halves,
both sans-I/O: the roadside unit's queue detection (:func:`detect_queue`, :func:`queue_event`; the RSU agent
runs it, v2x/agents/roadside.py) and the on-board warning (:class:`TrafficJamWarning`).

**Where the jam is found: at the RSU.** The RSU hears the queue's BSMs over PC5 directly and sees the
unequipped vehicles with its own sensors, and it is the one that broadcasts the RSI: detecting there needs no
backhaul or Uu round trip (tunnels often have neither), and a tunnel's RSUs (mounted along the tube) each
watch their own stretch. An edge that merges several RSUs' views could find longer queues; that is not built.

The RSU's rules, stated so that they can be checked (thresholds and their sources: ``APPS`` below):

1. **Who it knows.** Every road user it heard a BSM from (over PC5, fresher than ``max_age_s``) and every
   object its sensors detect that is none of them (the platform's association gate,
   v2x/agents/platform.py), each once. A BSM whose 95 % position error exceeds ``tjw_required_accuracy_m``
   cannot be placed in a lane and is left out.
2. **In the lane.** A road user is on the watched lane when its centre is within the lane's half-width plus
   ``tjw_match_margin_m`` of the centre line and its heading within 45 degrees of the lane's direction there;
   its place is its arc length along the centre line.
3. **A queue** is a run of road users on the lane, each slower than ``tjw_queue_speed_kph``, ordered along
   the lane, with no more than ``tjw_queue_max_gap_m`` between the centres of neighbours, counting at least
   ``tjw_queue_min_vehicles``. Several queues: the one farthest upstream (the tail approaching traffic meets
   first). Its **tail** is the rear bumper of its last vehicle, its **head** the front bumper of its first.
4. **The event** (GB/T 29100 707, traffic congestion) is at the tail, on the lane's centre line, radius 0;
   its reference path is the lane's centre line from ``tjw_path_upstream_m`` before the tail (where
   approaching traffic is told) to the head (so the path's end tells the queue's extent); source
   "detection". The RSU looks again every ``tjw_update_period_s``: the event follows the tail, and it is
   withdrawn (no longer sent; receivers forget it after ``max_age_s``) when no queue is found.

The on-board rules:

1. **Active and heard**, as for HLW (v2x/apps/hlw.py): inside its time window, heard within ``max_age_s``.
   Only congestion events (707) count; HLW leaves them to TJW.
2. **On the host's way.** The distance from the host's front bumper to the tail, along the reference path
   (v2x/apps/rsi.py, as HLW, IVS and SLW measure it; the host must be on the path, heading its way). A host
   past the tail (in the queue, or beyond it) or off the path is not warned.
3. **Warn** when ``0 <= distance <= tjw_max_distance_m`` and the time to reach the tail at the current speed
   and acceleration is at most ``tjw_tti_s``; a host that stands or will stop short is not warned.
4. **Positioning**: the app stands down when the host's 95 % horizontal error exceeds
   ``tjw_required_accuracy_m``. In a tunnel a receiver dead-reckons and its reported error grows by 2.5 % of
   the distance driven (docs/IMPAIRMENTS.md): from an RTK fix at the portal the 5 m gate holds for about
   115 m into the tube, so a tail deeper than about 115 m + the warning distance is not warned about.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shapely.geometry import LineString, Point

from v2x.apps.host import Host, Participant
from v2x.apps.registry import AppSpec, Bounds, Figure, OnBoardView, Raised, RunsOn
from v2x.apps.rlvw import time_to_travel
from v2x.apps.rsi import MAX_HEADING_DIFF_RAD, direction_at, item_distance
from v2x.units import accurate_enough, kph_to_mps, wrap_angle_rad
from v2x.wire import testbed_pb2
from v2x.wire.rsi import RSI_MAX_PATH_POINTS, RTE_TRAFFIC_CONGESTION, ReferencePath, RoadEvent


@dataclass(frozen=True)
class Queue:
    """A queue found on a lane: arc lengths along its centre line and who is in it."""

    tail_s: float  # the last vehicle's rear bumper
    head_s: float  # the first vehicle's front bumper
    members: tuple[str, ...]  # keys, from the tail to the head
    mean_speed_mps: float

    @property
    def length_m(self) -> float:
        return self.head_s - self.tail_s


def _on_lane(p: Participant, line: LineString, lane: ReferencePath, margin_m: float) -> float | None:
    """Rule 2: the road user's arc length along the lane, or None if it is not on it."""
    where = Point(p.x, p.y)
    if float(line.distance(where)) > lane.radius_m + margin_m:
        return None
    s = float(line.project(where))
    if abs(wrap_angle_rad(p.heading_rad - direction_at(lane.points, s))) > MAX_HEADING_DIFF_RAD:
        return None
    return s


def detect_queue(
    road_users: Sequence[Participant], lane: ReferencePath, thresholds: Mapping[str, float]
) -> Queue | None:
    """The RSU's rules 1 (the accuracy gate) to 3: the queue farthest upstream on ``lane``, or None."""
    line = LineString(lane.points)
    slow_mps = kph_to_mps(thresholds["tjw_queue_speed_kph"])
    slow: list[tuple[float, Participant, float]] = []
    for p in road_users:
        if not accurate_enough(p.sigma_m, thresholds["tjw_required_accuracy_m"]):
            continue
        speed = math.hypot(p.vx, p.vy)
        if speed >= slow_mps:
            continue
        s = _on_lane(p, line, lane, thresholds["tjw_match_margin_m"])
        if s is not None:
            slow.append((s, p, speed))
    slow.sort(key=lambda m: (m[0], m[1].key))
    runs: list[list[tuple[float, Participant, float]]] = []
    for m in slow:
        if runs and m[0] - runs[-1][-1][0] <= thresholds["tjw_queue_max_gap_m"]:
            runs[-1].append(m)
        else:
            runs.append([m])
    for run in runs:  # upstream first
        if len(run) >= thresholds["tjw_queue_min_vehicles"]:
            return Queue(
                tail_s=run[0][0] - run[0][1].length_m / 2,
                head_s=run[-1][0] + run[-1][1].length_m / 2,
                members=tuple(m[1].key for m in run),
                mean_speed_mps=sum(m[2] for m in run) / len(run),
            )
    return None


def _clip(points: Sequence[tuple[float, float]], s0: float, s1: float) -> tuple[tuple[float, float], ...]:
    """The part of the polyline ``points`` between arc lengths ``s0`` < ``s1`` (clamped to the line)."""
    line = LineString(points)
    s0, s1 = max(0.0, s0), min(float(line.length), s1)
    out = [line.interpolate(s0).coords[0]]
    acc = 0.0
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        acc += math.hypot(x1 - x0, y1 - y0)
        if s0 < acc < s1:
            out.append((x1, y1))
    out.append(line.interpolate(s1).coords[0])
    return tuple((float(x), float(y)) for x, y in out)


def queue_event(
    queue: Queue,
    lane: ReferencePath,
    *,
    rte_id: int,
    since_s: float,
    priority: int,
    thresholds: Mapping[str, float],
) -> RoadEvent:
    """The RSU's rule 4: the RSI road traffic event announcing ``queue`` on ``lane``."""
    line = LineString(lane.points)
    tail = line.interpolate(max(0.0, queue.tail_s)).coords[0]
    path = _clip(lane.points, queue.tail_s - thresholds["tjw_path_upstream_m"], max(queue.head_s, queue.tail_s + 0.1))
    if len(path) > RSI_MAX_PATH_POINTS:  # keep the ends: where traffic is told, and the head
        path = (*path[: RSI_MAX_PATH_POINTS - 1], path[-1])
    return RoadEvent(
        rte_id=rte_id,
        event_type=RTE_TRAFFIC_CONGESTION,
        x=float(tail[0]),
        y=float(tail[1]),
        radius_m=0.0,
        paths=(ReferencePath(path, lane.radius_m),),
        start_s=since_s,
        priority=priority,
    )


@dataclass(frozen=True)
class JamWarning:
    key: str  # the event as the app names it: {rsi id hex}/rte{rteId}
    event: RoadEvent
    distance_m: float  # front bumper to the queue's tail, along the reference path
    time_to_tail_s: float


def traffic_jam_warnings(
    host: Host, events: Mapping[str, RoadEvent], t_s: float, thresholds: Mapping[str, float]
) -> list[JamWarning]:
    """The on-board rules 1-4, for every event heard (keyed as the app names them)."""
    if not accurate_enough(host.sigma_m, thresholds["tjw_required_accuracy_m"]):
        return []
    out = []
    for key, event in sorted(events.items()):
        if event.event_type != RTE_TRAFFIC_CONGESTION or not event.active(t_s):
            continue
        d = item_distance(host, event.x, event.y, event.paths, thresholds["tjw_match_margin_m"])
        if d is None or not 0.0 <= d <= thresholds["tjw_max_distance_m"]:
            continue
        t_arr = time_to_travel(d, host.speed_mps, host.accel_mps2)
        if host.speed_mps <= 0 or not math.isfinite(t_arr) or t_arr > thresholds["tjw_tti_s"]:
            continue
        out.append(JamWarning(key, event, d, t_arr))
    return out


class TrafficJamWarning:
    """TJW on board (``other``: {rsi id hex}/rte{rteId}; the world resolves it to the RSU's congestion watch
    id in the scenario)."""

    def evaluate(self, view: OnBoardView, t_s: float) -> list[Raised]:
        if not view.heard_events:
            return []
        return [
            Raised("tjw", w.key, ttc_s=w.time_to_tail_s, figure=w.distance_m, conflict_type=w.event.type_name)
            for w in traffic_jam_warnings(view.host, view.road_events, t_s, view.thresholds)
        ]


APPS = (
    AppSpec(
        name="tjw",
        code=testbed_pb2.APP_TJW,
        title="traffic jam warning",
        runs_on=RunsOn.VEHICLE,
        consumes=("rsi",),
        colour="#8e44ad",
        figure=Figure("queue_m", "to the queue's tail", "m"),
        time_label="TTI",
        thresholds={
            # The queue (RSU). open-v2x cerebrum scenario_algo/algo_lib/congestion_warning.py rates a lane
            # congested when it holds at least 10 vehicles and their mean speed is under 30 km/h (levels
            # 25-30 / 15-24 / 0-14 km/h, which we do not report: the RSI event says "jam"); we ask each
            # member to be under 30 km/h, so that a queue's tail is where the slow traffic starts. ETSI names
            # the same situation DENM cause code 1 trafficCondition
            # (sub-cause 5 trafficStationary; cause 27 dangerousEndOfQueue for its tail), ETSI TS 102 894-2.
            "tjw_queue_speed_kph": 30.0,
            "tjw_queue_min_vehicles": 10.0,
            # Ours: at jam density (a car every ~7.5 m) 30 m between two known vehicles leaves room for up to
            # three unseen (unequipped, undetected) ones; a wider gap is two queues.
            "tjw_queue_max_gap_m": 30.0,
            # T/CSAE 53 Day-1 table: TJW at 1 Hz (500 ms); the RSU looks again once a second (it repeats the
            # event with its other RSI events at 10 Hz).
            "tjw_update_period_s": 1.0,
            # Ours: the reference path starts 300 m before the tail, twice the warning range (the T/CSAE 53
            # TJW range, 150 m), so that a host with a longer warning distance is still on it.
            "tjw_path_upstream_m": 300.0,
            # The warning (on board). Time: as HLW (1.5 s reaction + 27.8 m/s / (2 x 4 m/s^2) = 5 s to stop
            # from 100 km/h, + 1 s margin). Range and accuracy: T/CSAE 53 Day-1 table (TJW: 150 m, 5 m).
            # Map matching margin outside the lane's half-width: ours, as for HLW.
            "tjw_tti_s": 6.0,
            "tjw_max_distance_m": 150.0,
            "tjw_required_accuracy_m": 5.0,
            "tjw_match_margin_m": 0.5,
        },
        # Bounds where the rule by unit (v2x.apps.thresholds.UNIT_BOUNDS) does not fit: a period > 0 (at most
        # a minute), a count of vehicles.
        threshold_bounds={
            "tjw_update_period_s": Bounds(0.0, 60.0, above_low=True),
            "tjw_queue_min_vehicles": Bounds(1.0, 1000.0),
        },
        onboard=lambda names: TrafficJamWarning(),
    ),
)

__all__ = ["APPS", "JamWarning", "Queue", "TrafficJamWarning", "detect_queue", "queue_event", "traffic_jam_warnings"]
