"""V2V event warnings (T/CSAE 53 Day-1, BSM event flags), on board: one mechanism for four applications.
Sans-I/O: the host's own state and the remote vehicles heard in BSMs in; warnings out.

| app | raised by the sender's | range, accuracy (T/CSAE 53) | time to reach | lateral |
|---|---|---|---|---|
| EBW emergency brake warning | hardBraking | 150 m, 1.5 m | 6 s | 1.75 m (its lane) |
| AVW abnormal vehicle warning | disabledVehicle; hazardLights while stopped or crawling | 150 m, 5 m | 6 s | 5.25 m |
| CLW control loss warning | ABSactivated, tractionControlLoss, stabilityControlActivated | 300 m, 5 m | 7 s | 5.25 m |
| EVW emergency vehicle warning | emergency ext.: lightsUse or sirenUse inUse | 300 m, 5 m | 8 s (it to us) | 5.25 m |

The flags come from ``RemoteState.events``, decoded once per transmission (``v2x.messages.decode_event_flags``
also reads the brake system status and the exterior lights). The logic, stated so that it can be checked
(thresholds and their sources: ``APPS`` below; ``{app}_...`` is the app's own figure):

1. **Flag.** The sender's latest BSM (not older than ``max_age_s``) carries one of the app's flags. For AVW,
   hazard lights count only while the sender moves at ``avw_max_speed_mps`` or slower (a car driving with
   its hazards on in a convoy is not abnormal); disabledVehicle counts at any speed. A flag cleared in the
   next BSM ends the warning.
2. **Accuracy.** The host's and the sender's reported 95 % position error are within
   ``{app}_required_accuracy_m`` (as FCW: noise alone must not raise a warning).
3. **Geometry**, on the host's heading line (straight roads: no path history is sent), with the sender
   extrapolated to now: **same direction** (headings within ``v2v_event_max_heading_deg``), **ahead**
   (the gap from the host's front bumper to the sender's rear bumper, along the heading, is positive: a car
   behind the host, beside it or already passed is left alone), **in the way** (the lateral offset of the
   sender's centre from the heading line is at most ``{app}_max_lateral_m``: the host's lane for EBW, that
   lane and the next for AVW and CLW) and **in range** (gap at most ``{app}_max_distance_m``).
4. **Time.** Warn when the host, at its speed and acceleration, would reach the sender's present position
   within ``{app}_tti_s``: the sender is treated as if it stopped where it is now (a car braking hard, stalled
   or out of control may). A host that stands, or is braking to a stop short of it, is not warned.

EVW looks the other way: rules 1 and 2 as above (lights or siren in use, from the BSM's emergency extension),
then **behind** instead of ahead (the gap from the sender's front bumper to the host's rear bumper, along the
host's heading, is positive), same direction, in the way (lateral offset at most ``evw_max_lateral_m``) and in
range (``evw_max_distance_m``), and **time**: the emergency vehicle, at its speed, would reach the host's
present position within ``evw_tti_s`` (the host may slow down or stop to let it through, so its own speed is
not counted on). An emergency vehicle standing still is not warned about. The driver yields as to any
warning (v2x/apps/driver.py rule 1: brakes to a stop; no lane change in the model).

A sender carrying the flags of several apps raises each of the host's apps that it concerns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from v2x.apps.host import Host
from v2x.apps.registry import AppSpec, Figure, OnBoardView, Raised, RunsOn
from v2x.apps.rlvw import time_to_travel
from v2x.units import accurate_enough, wrap_angle_rad
from v2x.wire import testbed_pb2
from v2x.wire.bsm import FLAG_TEXT, RemoteState

EVENT_APPS = ("ebw", "avw", "clw", "evw")
# The event flags (v2x.messages.VEHICLE_EVENT_BIT and EMERGENCY_USE names) each app warns about.
APP_FLAGS: Mapping[str, tuple[str, ...]] = {
    "ebw": ("hard_braking",),
    "avw": ("disabled", "hazard_lights"),
    "clw": ("abs", "traction_control", "stability_control"),
    "evw": ("emergency_lights", "siren"),
}
BEHIND_APPS = ("evw",)  # apps about a sender behind the host (the others: ahead of it)


@dataclass(frozen=True)
class EventWarning:
    app: str  # ebw, avw, clw or evw
    key: str  # the sender as the app names it: its BSM id (hex)
    flags: tuple[str, ...]  # the flags that raised it, in APP_FLAGS order
    gap_m: float  # host front bumper to the sender's rear bumper, along the host's heading (EVW: the
    # sender's front bumper to the host's rear bumper)
    lateral_m: float  # the sender's centre from the host's heading line (left positive)
    time_to_reach_s: float

    @property
    def description(self) -> str:
        return ", ".join(FLAG_TEXT[f] for f in self.flags)


@dataclass(frozen=True)
class Placement:
    """Where a remote vehicle is relative to the host (rule 3)."""

    gap_m: float
    lateral_m: float
    heading_diff_rad: float


def placement(host: Host, remote: RemoteState, t_s: float) -> Placement:
    """The sender extrapolated to ``t_s`` in the host's frame: bumper-to-bumper gap along the host's
    heading, lateral offset of its centre (left positive) and the difference of the headings."""
    x, y, _, _ = remote.extrapolated(t_s)
    ux, uy = math.cos(host.heading_rad), math.sin(host.heading_rad)
    dx, dy = x - host.x, y - host.y
    along = dx * ux + dy * uy
    return Placement(
        along - (host.length_m + remote.length_m) / 2,
        dy * ux - dx * uy,
        wrap_angle_rad(remote.heading_rad - host.heading_rad),
    )


def active_flags(app: str, remote: RemoteState, thresholds: Mapping[str, float]) -> tuple[str, ...]:
    """Rule 1: the sender's flags that concern ``app``."""
    flags = [f for f in APP_FLAGS[app] if remote.has(f)]
    if app == "avw" and "hazard_lights" in flags and remote.speed_mps > thresholds["avw_max_speed_mps"]:
        flags.remove("hazard_lights")
    return tuple(flags)


def vehicle_event_warnings(
    host: Host,
    remotes: Iterable[RemoteState],
    t_s: float,
    thresholds: Mapping[str, float],
    apps: Sequence[str] = EVENT_APPS,
) -> list[EventWarning]:
    """Rules 1-4 of the module docstring, for the host's ``apps`` among ebw, avw, clw and evw."""
    max_heading = math.radians(thresholds["v2v_event_max_heading_deg"])
    out = []
    for remote in sorted(remotes, key=lambda r: r.key):
        where: Placement | None = None
        for app in (a for a in EVENT_APPS if a in apps):
            flags = active_flags(app, remote, thresholds)
            if not flags:
                continue
            need = thresholds[f"{app}_required_accuracy_m"]
            if not (accurate_enough(host.sigma_m, need) and accurate_enough(remote.sigma_major_m, need)):
                continue
            where = where or placement(host, remote, t_s)
            behind = app in BEHIND_APPS
            # EVW: the sender behind, front bumper to the host's rear bumper (placement's gap is measured
            # ahead; minus it and both lengths the other way round is the same bumpers' gap).
            gap = -where.gap_m - host.length_m - remote.length_m if behind else where.gap_m
            if (
                abs(where.heading_diff_rad) > max_heading
                or gap <= 0
                or abs(where.lateral_m) > thresholds[f"{app}_max_lateral_m"]
                or gap > thresholds[f"{app}_max_distance_m"]
            ):
                continue
            if behind:
                t_reach = gap / remote.speed_mps if remote.speed_mps > 0 else math.inf
            else:
                t_reach = time_to_travel(gap, host.speed_mps, host.accel_mps2)
            if not math.isfinite(t_reach) or t_reach > thresholds[f"{app}_tti_s"]:
                continue
            out.append(EventWarning(app, remote.key, flags, gap, where.lateral_m, t_reach))
    return out


class VehicleEventWarnings:
    """EBW, AVW, CLW and EVW on board, one object for the ones a vehicle runs (``apps``): sender by sender
    (in key order), each sender's apps in EVENT_APPS order. ``other``: the sender's BSM id (hex); the world
    resolves it to an actor id."""

    def __init__(self, apps: Sequence[str]) -> None:
        self.apps = [app for app in EVENT_APPS if app in apps]

    def evaluate(self, view: OnBoardView, t_s: float) -> list[Raised]:
        if not (self.apps and view.remotes):
            return []
        return [
            Raised(ew.app, ew.key, ttc_s=ew.time_to_reach_s, figure=ew.gap_m, conflict_type=ew.description)
            for ew in vehicle_event_warnings(view.host, view.remotes.values(), t_s, view.thresholds, self.apps)
        ]


# Range and position accuracy: T/CSAE 53 Day-1 table (EBW 150 m and 1.5 m, AVW 150 m and 5 m, CLW 300 m and
# 5 m). Time for the host to reach where the sender is now (a car braking hard, stalled or out of control may
# stop there): ours, for EBW and AVW the HLW figure and reasoning (6 s; see hlw_tti_s); for CLW 7 s, the same
# reasoning on a slippery road (a car losing control ahead says the host will find little grip too): braking
# at 3 m/s^2 (wet snow, friction ~0.3) from 100 km/h after 1.5 s takes 1.5 + 27.8 / (2 x 3) = 6.1 s, plus the
# margin rounded to 7 s. Lateral offset from the host's heading line: EBW is a same-lane warning, half a
# 3.5 m lane (the usual Chinese urban lane width); AVW and CLW also warn about a car in the next lane (1.5
# lanes, 5.25 m: a stalled car on the lane line or a car skidding across it is in the way); ours, for straight
# roads (no path history is sent). AVW: hazard lights alone mark a vehicle as abnormal only when it is
# stopped or crawling, at most 15 km/h (4.17 m/s; ours: the slowest level of open-v2x/cerebrum
# congestion_warning.py, 0-14 km/h); disabledVehicle always does. Same direction: headings within 45
# degrees, as for HLW and RLVW (v2v_event_max_heading_deg, declared with EBW, applies to all four).
#
# EVW from an emergency vehicle's lights / siren in use (BSM emergency extension). Range 300 m and accuracy
# 5 m: T/CSAE 53 Day-1 table. The host is warned about an emergency vehicle BEHIND it in the same direction,
# in its lane or the next (5.25 m, as AVW / CLW: the emergency vehicle will pass through the host's lane or
# beside it), when the emergency vehicle would reach where the host is now within 8 s (ours): the host has
# to get out of the way, and to do so a driver needs to notice (1-1.5 s), look for a place and slow down or
# pull over: from 60 km/h at 3 m/s^2, 16.7 / 3 = 5.6 s; 1.5 + 5.6 = 7.1 s, rounded up to 8 s. At 100 km/h
# that is 222 m, inside the 300 m range. One ahead (driving away, or the host following it), oncoming or
# beside the host is not warned about: a stopped one at an incident is AVW / HLW's business.
_GAP = Figure("gap_m", "gap", "m")
APPS = (
    AppSpec(
        name="ebw",
        code=testbed_pb2.APP_EBW,
        title="emergency brake warning",
        runs_on=RunsOn.VEHICLE,
        consumes=("bsm",),
        colour="#e6550d",
        figure=_GAP,
        time_label="TTI",
        thresholds={
            "ebw_tti_s": 6.0,
            "ebw_max_distance_m": 150.0,
            "ebw_required_accuracy_m": 1.5,
            "ebw_max_lateral_m": 1.75,
            "v2v_event_max_heading_deg": 45.0,
        },
        onboard=VehicleEventWarnings,
        family="vehicle_events",
    ),
    AppSpec(
        name="avw",
        code=testbed_pb2.APP_AVW,
        title="abnormal vehicle warning",
        runs_on=RunsOn.VEHICLE,
        consumes=("bsm",),
        colour="#7f3b08",
        figure=_GAP,
        time_label="TTI",
        thresholds={
            "avw_tti_s": 6.0,
            "avw_max_distance_m": 150.0,
            "avw_required_accuracy_m": 5.0,
            "avw_max_lateral_m": 5.25,
            "avw_max_speed_mps": 4.17,
        },
        onboard=VehicleEventWarnings,
        family="vehicle_events",
    ),
    AppSpec(
        name="clw",
        code=testbed_pb2.APP_CLW,
        title="control loss warning",
        runs_on=RunsOn.VEHICLE,
        consumes=("bsm",),
        colour="#17a2b8",
        figure=_GAP,
        time_label="TTI",
        thresholds={
            "clw_tti_s": 7.0,
            "clw_max_distance_m": 300.0,
            "clw_required_accuracy_m": 5.0,
            "clw_max_lateral_m": 5.25,
        },
        onboard=VehicleEventWarnings,
        family="vehicle_events",
    ),
    AppSpec(
        name="evw",
        code=testbed_pb2.APP_EVW,
        title="emergency vehicle warning",
        runs_on=RunsOn.VEHICLE,
        consumes=("bsm",),
        colour="#3b4cc0",
        figure=_GAP,
        time_label="TTI",
        thresholds={
            "evw_tti_s": 8.0,
            "evw_max_distance_m": 300.0,
            "evw_required_accuracy_m": 5.0,
            "evw_max_lateral_m": 5.25,
        },
        onboard=VehicleEventWarnings,
        family="vehicle_events",
    ),
)

__all__ = [
    "APPS",
    "APP_FLAGS",
    "BEHIND_APPS",
    "EVENT_APPS",
    "EventWarning",
    "VehicleEventWarnings",
    "active_flags",
    "placement",
    "vehicle_event_warnings",
]
