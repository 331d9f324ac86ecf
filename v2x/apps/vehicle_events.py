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
(thresholds and their sources: v2x/apps/thresholds.py; ``{app}_...`` is the app's own figure):

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

from v2x.apps.rlvw import Host, time_to_travel
from v2x.units import R95_PER_SIGMA
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


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def _accurate(sigma_m: float | None, required_r95_m: float) -> bool:
    return sigma_m is not None and math.isfinite(sigma_m) and R95_PER_SIGMA * sigma_m <= required_r95_m


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
        _wrap(remote.heading_rad - host.heading_rad),
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
            if not (_accurate(host.sigma_m, need) and _accurate(remote.sigma_major_m, need)):
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


__all__ = [
    "APP_FLAGS",
    "BEHIND_APPS",
    "EVENT_APPS",
    "EventWarning",
    "active_flags",
    "placement",
    "vehicle_event_warnings",
]
