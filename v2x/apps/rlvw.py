"""Red light violation warning (T/CSAE 53 Day-1, V2I), on board. Sans-I/O: the host's own state, the
approaches from MAP and the signal timing from SPAT in; a warning or None out.

The logic, stated so that it can be checked:

1. **Map matching.** The host is on an approach if its position is within half the lane width plus
   ``rlvw_match_margin_m`` of the ingress centre line, it heads within 45 degrees of the lane's direction,
   and its front bumper has not yet reached the stop line. The closest such approach wins.
2. **Arrival.** ``d`` = distance along the lane from the front bumper to the stop line. The time to reach
   it, ``t_arr``, follows the host's current speed and longitudinal acceleration (constant); a host that
   is braking hard enough to stop before the line never arrives, and is not warned.
3. **Warn** when the approach is signalised, the SPAT timing of its phase covers the arrival time, the
   light at arrival is red, ``d <= rlvw_max_distance_m`` and ``t_arr <= rlvw_tti_s``.
4. Positioning: like FCW, the app stands down when the host's 95 % horizontal error exceeds
   ``rlvw_required_accuracy_m`` (1.5 m in the T/CSAE 53 table): a wrong lane match could warn for the
   wrong signal.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from shapely.geometry import LineString, Point

from v2x.apps.host import Host
from v2x.apps.registry import AppSpec, Figure, OnBoardView, Raised, RunsOn
from v2x.apps.rsi import MAX_HEADING_DIFF_RAD
from v2x.units import accurate_enough, wrap_angle_rad
from v2x.wire import testbed_pb2
from v2x.wire.map_spat import STOPPING_LIGHTS, Approach, Interval, light_at


@dataclass(frozen=True)
class Match:
    approach: Approach
    distance_m: float  # front bumper to the stop line, along the lane
    lateral_m: float


@dataclass(frozen=True)
class RedLightWarning:
    approach: Approach
    distance_m: float
    time_to_line_s: float
    light_at_arrival: int


def match(host: Host, approaches: Iterable[Approach], margin_m: float) -> Match | None:
    """The approach the host is driving on, before its stop line (rule 1), or None."""
    best: Match | None = None
    p = Point(host.x, host.y)
    for ap in approaches:
        reach = ap.width_m / 2 + margin_m
        xs, ys = [q[0] for q in ap.points], [q[1] for q in ap.points]
        if host.x < min(xs) - reach or host.x > max(xs) + reach or host.y < min(ys) - reach or host.y > max(ys) + reach:
            continue  # farther than that from the line's bounding box: farther from the line too
        line = LineString(ap.points)
        lateral = float(line.distance(p))
        if lateral > reach:
            continue
        along = float(line.project(p))
        # Direction of the segment the host projects onto.
        seg_dir = ap.direction_rad
        acc = 0.0
        for (x0, y0), (x1, y1) in itertools.pairwise(ap.points):
            seg = math.hypot(x1 - x0, y1 - y0)
            if along <= acc + seg:
                seg_dir = math.atan2(y1 - y0, x1 - x0)
                break
            acc += seg
        if abs(wrap_angle_rad(host.heading_rad - seg_dir)) > MAX_HEADING_DIFF_RAD:
            continue
        distance = float(line.length) - along - host.length_m / 2
        if distance < 0:
            continue
        if best is None or lateral < best.lateral_m:
            best = Match(ap, distance, lateral)
    return best


def time_to_travel(distance_m: float, speed_mps: float, accel_mps2: float) -> float:
    """Time to cover ``distance_m`` at constant acceleration from ``speed_mps``; inf if it stops first."""
    if distance_m <= 0:
        return 0.0
    v, a = speed_mps, accel_mps2
    if abs(a) < 1e-9:
        return distance_m / v if v > 0 else math.inf
    disc = v * v + 2 * a * distance_m
    if disc < 0:
        return math.inf  # braking: stops before the line
    return 2 * distance_m / (v + math.sqrt(disc))


def red_light_warning(
    host: Host,
    approaches: Iterable[Approach],
    signals: Mapping[tuple[int, int], list[Interval]],
    t_s: float,
    thresholds: Mapping[str, float],
) -> RedLightWarning | None:
    """Rules 1-4 of the module docstring. ``signals`` maps (MAP node id, phase id) to SPAT intervals."""
    if not accurate_enough(host.sigma_m, thresholds["rlvw_required_accuracy_m"]):
        return None
    m = match(host, approaches, thresholds["rlvw_match_margin_m"])
    if m is None or m.approach.phase_id == 0 or m.distance_m > thresholds["rlvw_max_distance_m"]:
        return None
    timeline = signals.get((m.approach.node_id, m.approach.phase_id))
    if not timeline:
        return None
    t_arr = time_to_travel(m.distance_m, host.speed_mps, host.accel_mps2)
    if not math.isfinite(t_arr) or t_arr > thresholds["rlvw_tti_s"]:
        return None
    light = light_at(timeline, t_s + t_arr)
    if light is None or light not in STOPPING_LIGHTS:
        return None
    return RedLightWarning(m.approach, m.distance_m, t_arr, light)


class RedLightViolationWarning:
    """RLVW on board (``other``: the intersection's id)."""

    def evaluate(self, view: OnBoardView, t_s: float) -> list[Raised]:
        if not (view.approaches and view.signals):
            return []
        w = red_light_warning(view.host, view.all_approaches, view.signals, t_s, view.thresholds)
        if w is None:
            return []
        return [Raised("rlvw", w.approach.intersection, ttc_s=w.time_to_line_s, figure=w.distance_m)]


APPS = (
    AppSpec(
        name="rlvw",
        code=testbed_pb2.APP_RLVW,
        title="red light violation warning",
        runs_on=RunsOn.VEHICLE,
        consumes=("map", "spat"),
        colour="#ff7f0e",
        figure=Figure("stop_line_m", "to the stop line", "m"),
        time_label="TTI",
        thresholds={
            # Time to the stop line at which a host that would arrive on red is warned: our default, chosen so
            # that a driver at 60 km/h who reacts in 1.5 s and brakes at 4 m/s^2 still stops before the line
            # (16.7 m/s x 4 s = 67 m >= 25 m + 35 m).
            "rlvw_tti_s": 4.0,
            # RLVW range (T/CSAE 53 Day-1 table: 150 m communication range for RLVW).
            "rlvw_max_distance_m": 150.0,
            # RLVW position accuracy requirement (T/CSAE 53 Day-1 table: 1.5 m).
            "rlvw_required_accuracy_m": 1.5,
            # Map matching: how far outside the lane strip the host's position may be, m (GLOSA uses it too).
            "rlvw_match_margin_m": 0.5,
        },
        onboard=lambda names: RedLightViolationWarning(),
    ),
)

__all__ = [
    "APPS",
    "Match",
    "RedLightViolationWarning",
    "RedLightWarning",
    "match",
    "red_light_warning",
    "time_to_travel",
]
