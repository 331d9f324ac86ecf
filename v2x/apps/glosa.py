"""Green light optimal speed advisory (T/CSAE 53 Day-1, V2I), on board. Sans-I/O: the host's state, the
approaches from MAP and the signal timing from SPAT in; an advised speed or None out.

SUMO's method (docs: Simulation/GLOSA; MSDevice_GLOSA), with the host on a signalised approach (map
matching as in RLVW) within ``glosa_max_distance_m`` of its stop line, ``d`` metres away at speed ``v``:

- **Slow down.** If at ``v`` it would reach the line before the light next turns green (it is red or will
  be), advise the speed that reaches the line ``glosa_margin_s`` after the switch: ``d / (t_green - t +
  margin)``, if that is at least ``glosa_min_speed_mps``; otherwise no advice (the host will have to stop).
- **Speed up.** If the light is green but at ``v`` it would arrive after the green ends, advise
  ``glosa_max_speed_factor`` x the lane's speed limit (from MAP) if that arrives within the green.
- Otherwise (it arrives on green at ``v``) there is nothing to advise.

Like RLVW it stands down when the host's 95 % position error exceeds ``glosa_required_accuracy_m``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from v2x.apps.host import Host
from v2x.apps.registry import AppSpec, Bounds, Figure, OnBoardView, Raised, Reaction, RunsOn
from v2x.apps.rlvw import match
from v2x.units import accurate_enough
from v2x.wire import testbed_pb2
from v2x.wire.map_spat import GREEN_LIGHTS, Approach, Interval, light_at


@dataclass(frozen=True)
class SpeedAdvice:
    approach: Approach
    speed_mps: float
    distance_m: float
    reason: str  # "slow-down" | "speed-up"
    green_at_s: float  # the green the advice aims for starts (slow-down) or ends (speed-up) then


def _next_green(timeline: list[Interval], t_s: float) -> Interval | None:
    return next((iv for iv in timeline if iv.light in GREEN_LIGHTS and iv.end_s > t_s), None)


def speed_advice(
    host: Host,
    approaches: Iterable[Approach],
    signals: Mapping[tuple[int, int], list[Interval]],
    t_s: float,
    thresholds: Mapping[str, float],
) -> SpeedAdvice | None:
    if not accurate_enough(host.sigma_m, thresholds["glosa_required_accuracy_m"]):
        return None
    m = match(host, approaches, thresholds["rlvw_match_margin_m"])
    if m is None or m.approach.phase_id == 0 or m.distance_m > thresholds["glosa_max_distance_m"]:
        return None
    timeline = signals.get((m.approach.node_id, m.approach.phase_id))
    if not timeline or host.speed_mps < 0.5:
        return None
    d, v = m.distance_m, host.speed_mps
    arrival = t_s + d / v
    green = _next_green(timeline, t_s)
    if green is None:
        return None
    now = light_at(timeline, t_s)
    if now in GREEN_LIGHTS and arrival <= green.end_s:
        return None  # arrives on this green
    if now in GREEN_LIGHTS:
        v_max = thresholds["glosa_max_speed_factor"] * (m.approach.speed_limit_mps or v)
        if v_max > v and t_s + d / v_max <= green.end_s:
            return SpeedAdvice(m.approach, v_max, d, "speed-up", green.end_s)
        return None
    if arrival >= green.start_s:
        return None  # arrives after the switch anyway (and before its end, or the next cycle is not known)
    advised = d / (green.start_s - t_s + thresholds["glosa_margin_s"])
    if advised < thresholds["glosa_min_speed_mps"]:
        return None
    return SpeedAdvice(m.approach, advised, d, "slow-down", green.start_s)


class GreenLightSpeedAdvisory:
    """GLOSA on board (``other``: the intersection's id); the driver follows the advised speed
    (Reaction.SPEED_ADVICE)."""

    def evaluate(self, view: OnBoardView, t_s: float) -> list[Raised]:
        if not (view.approaches and view.signals):
            return []
        advice = speed_advice(view.host, view.all_approaches, view.signals, t_s, view.thresholds)
        if advice is None:
            return []
        return [Raised("glosa", advice.approach.intersection, figure=advice.speed_mps, conflict_type=advice.reason)]


APPS = (
    AppSpec(
        name="glosa",
        code=testbed_pb2.APP_GLOSA,
        title="green light optimal speed advisory",
        runs_on=RunsOn.VEHICLE,
        consumes=("map", "spat"),
        colour="#2ca02c",
        reaction=Reaction.SPEED_ADVICE,
        severity=testbed_pb2.SEVERITY_ADVISORY,
        figure=Figure("advised_speed_mps", "advised", "m/s"),
        # Range: T/CSAE 53 Day-1 table (150 m); minimum advised speed and speed-up factor: SUMO's glosa device
        # defaults (device.glosa.min-speed 5 m/s, max-speedfactor 1.1); margin: ours, aim to reach the line
        # this long after the switch to green; accuracy: T/CSAE 53 (1.5 m). Map matching: rlvw_match_margin_m.
        thresholds={
            "glosa_max_distance_m": 150.0,
            "glosa_min_speed_mps": 5.0,
            "glosa_max_speed_factor": 1.1,
            "glosa_margin_s": 1.0,
            "glosa_required_accuracy_m": 1.5,
        },
        # Bounds where the rule by unit (v2x.apps.thresholds.UNIT_BOUNDS) does not fit: a factor of the limit, > 0.
        threshold_bounds={"glosa_max_speed_factor": Bounds(0.0, 2.0, above_low=True)},
        onboard=lambda names: GreenLightSpeedAdvisory(),
    ),
)

__all__ = ["APPS", "GreenLightSpeedAdvisory", "SpeedAdvice", "speed_advice"]
