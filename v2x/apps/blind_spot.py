"""Blind spot warning (BSW) and lane change warning (LCW) on board (T/CSAE 53 Day-1, V2V: BSM at 10 Hz,
100 ms, position accuracy 1.5 m, range 150 m). One object evaluates both. Sans-I/O: the host's own state
(with its turn signal) and the vehicles heard in BSMs in; advisories out.

The logic, stated so that it can be checked (thresholds and their sources: ``APPS`` below):

1. **Accuracy.** The host's and the sender's reported 95 % position error are within
   ``bsw_required_accuracy_m`` / ``lcw_required_accuracy_m`` (noise alone must not raise a warning; a lane
   is 3.5 m wide).
2. **Same direction, the next lane.** On the host's heading line (straight roads: no path history is sent),
   with the sender extrapolated to now: headings within ``v2v_event_max_heading_deg``; the sender's box
   reaches into the band beside the host from ``bsw_zone_inner_m`` to ``bsw_zone_outer_m`` outside the
   host's side, on the left or on the right (a car two lanes over does not: 3.5 m lanes put its near side
   5 m from the host's side).
3. **The blind zone** along the host: from ``bsw_zone_behind_m`` behind its rear bumper to the driver's
   eyes, taken ``EYE_FROM_FRONT_M`` behind its front bumper. A sender with any part of its box in the zone
   (in the band of rule 2) is **in the blind spot**: BSW informs the driver (severity info: a mark in the
   mirror, the driver does not react).
4. **LCW.** While the host's turn signal is on (the lane change its driver announces), a sender on that
   side, in the band of rule 2, warns (severity warning) when it is in the blind spot (rule 3) or **closing
   from behind**: the gap from its front bumper to the host's rear bumper, along the heading, is at most
   ``lcw_max_distance_m`` and it would close it, at the two speeds now, within ``lcw_ttc_s``. A car far
   behind, or not faster than the host, is left alone. The driver abandons the lane change
   (v2x/apps/driver.py, ``Reaction.ABORT_MANOEUVRE``).

BSW and LCW name the sender by its BSM id; ``conflict_type`` says the side (``left``/``right``) and, for
LCW, ``in the blind spot`` or ``closing from behind``; the figure is that bumper gap behind the host
(``gap_m``, 0 when the sender is already alongside), ``ttc_s`` the time to close it (0 alongside).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from v2x.apps.host import Host
from v2x.apps.registry import AppSpec, Figure, OnBoardView, Raised, Reaction, RunsOn
from v2x.apps.vehicle_events import placement
from v2x.units import accurate_enough
from v2x.wire import testbed_pb2
from v2x.wire.bsm import RemoteState

LANE_APPS = ("bsw", "lcw")
# The driver's eyes (and the door mirrors) behind the front bumper: the blind zone's front edge (ISO 17387
# puts it at the eyellipse; about 2 m back on a car: ours, a common value).
EYE_FROM_FRONT_M = 2.0


@dataclass(frozen=True)
class SideVehicle:
    """A sender in the lane beside the host (rule 2), where it is relative to the host."""

    key: str  # its BSM id (hex)
    side: str  # "left" or "right" of the host
    lateral_m: float  # its centre from the host's heading line (left positive)
    gap_m: float  # its front bumper to the host's rear bumper, along the heading (<= 0: alongside or ahead)
    closing_mps: float  # how fast it closes that gap (its speed along the host's heading less the host's)
    in_zone: bool  # rule 3

    @property
    def time_to_close_s(self) -> float:
        """Time to close the gap at the two speeds now: 0 alongside, inf when it is not closing."""
        if self.gap_m <= 0:
            return 0.0
        return self.gap_m / self.closing_mps if self.closing_mps > 0 else math.inf


def side_vehicles(
    host: Host, remotes: Iterable[RemoteState], t_s: float, thresholds: Mapping[str, float], need_r95_m: float
) -> list[SideVehicle]:
    """Rules 1-3: the senders in the lane beside the host (either side), in key order."""
    if not accurate_enough(host.sigma_m, need_r95_m):
        return []
    max_heading = math.radians(thresholds["v2v_event_max_heading_deg"])
    inner, outer = thresholds["bsw_zone_inner_m"], thresholds["bsw_zone_outer_m"]
    out = []
    for remote in sorted(remotes, key=lambda r: r.key):
        if not accurate_enough(remote.sigma_major_m, need_r95_m):
            continue
        where = placement(host, remote, t_s)
        if abs(where.heading_diff_rad) > max_heading:
            continue
        near = abs(where.lateral_m) - (remote.width_m + host.width_m) / 2  # host side to its near side
        if not (near < outer and near + remote.width_m > inner):
            continue
        along = where.gap_m + (host.length_m + remote.length_m) / 2  # centre to centre
        front, rear = along + remote.length_m / 2, along - remote.length_m / 2
        host_rear = -host.length_m / 2
        in_zone = front > host_rear - thresholds["bsw_zone_behind_m"] and rear < host.length_m / 2 - EYE_FROM_FRONT_M
        closing = remote.speed_mps * math.cos(where.heading_diff_rad) - host.speed_mps
        side = "left" if where.lateral_m > 0 else "right"
        out.append(SideVehicle(remote.key, side, where.lateral_m, host_rear - front, closing, in_zone))
    return out


def lane_change_warnings(
    host: Host, remotes: Iterable[RemoteState], t_s: float, thresholds: Mapping[str, float]
) -> list[SideVehicle]:
    """Rule 4: the senders LCW warns about (none while the host's turn signal is off)."""
    if host.turn_signal not in ("left", "right"):
        return []
    found = side_vehicles(host, remotes, t_s, thresholds, thresholds["lcw_required_accuracy_m"])
    return [
        sv
        for sv in found
        if sv.side == host.turn_signal
        and (
            sv.in_zone
            or (0 < sv.gap_m <= thresholds["lcw_max_distance_m"] and sv.time_to_close_s <= thresholds["lcw_ttc_s"])
        )
    ]


class BlindSpotWarnings:
    """BSW and LCW on board, one object for the ones a vehicle runs (``apps``): BSW first, then LCW, each
    sender in key order. ``other``: the sender's BSM id (hex); the world resolves it to an actor id."""

    def __init__(self, apps: Sequence[str]) -> None:
        self.apps = [app for app in LANE_APPS if app in apps]

    def evaluate(self, view: OnBoardView, t_s: float) -> list[Raised]:
        if not (self.apps and view.remotes):
            return []
        out = []
        remotes = list(view.remotes.values())
        if "bsw" in self.apps:
            for sv in side_vehicles(
                view.host, remotes, t_s, view.thresholds, view.thresholds["bsw_required_accuracy_m"]
            ):
                if sv.in_zone:
                    out.append(
                        Raised(
                            "bsw", sv.key, ttc_s=0.0, figure=max(sv.gap_m, 0.0), conflict_type=f"{sv.side} blind spot"
                        )
                    )
        if "lcw" in self.apps:
            for sv in lane_change_warnings(view.host, remotes, t_s, view.thresholds):
                what = "in the blind spot" if sv.in_zone else "closing from behind"
                out.append(
                    Raised(
                        "lcw",
                        sv.key,
                        ttc_s=sv.time_to_close_s,
                        figure=max(sv.gap_m, 0.0),
                        conflict_type=f"{sv.side}, {what}",
                    )
                )
        return out


# Range and position accuracy: T/CSAE 53 Day-1 table (BSW/LCW 150 m, 1.5 m). The blind zone: ISO 17387
# (lane change decision aid systems), as reproduced in secondary sources: from 0.5 m to 3.0 m outside the
# widest part of the host's body, and from the driver's eyes back to 3.0 m behind its rear bumper. The
# Wanji OBU stack (VDS/src/GPSInterface/Common.c, LCW_Blind_Spot_ToMirror) has the same 0.5 m offset; its
# 60 degree / 8 m zone (LCW_Blind_Spot_Angle / _Width, commented out there, with no geometry given) is not
# used: 8 m of width would take in the lane after next. With 3.5 m lanes a 2 m car in the next lane has its
# near side 1.5 m from the host's; two lanes over, 5 m. Same direction: headings within 45 degrees
# (v2v_event_max_heading_deg, declared with EBW). LCW: a car closing from behind that would reach the host's
# rear bumper within 3 s is in conflict with a lane change (ours: a lane change takes about 3 s, open-v2x
# cerebrum cooperative_lane_change, the brief's Day-2 table; a car that closes sooner is beside the host by
# the time it is in the lane).
_GAP = Figure("gap_m", "gap", "m")
APPS = (
    AppSpec(
        name="bsw",
        code=testbed_pb2.APP_BSW,
        title="blind spot warning",
        runs_on=RunsOn.VEHICLE,
        consumes=("bsm",),
        colour="#e377c2",
        severity=testbed_pb2.SEVERITY_INFO,  # a mark in the mirror: informs, the driver does not react
        figure=_GAP,
        thresholds={
            "bsw_zone_inner_m": 0.5,
            "bsw_zone_outer_m": 3.0,
            "bsw_zone_behind_m": 3.0,
            "bsw_required_accuracy_m": 1.5,
        },
        onboard=BlindSpotWarnings,
        family="blind_spot",
    ),
    AppSpec(
        name="lcw",
        code=testbed_pb2.APP_LCW,
        title="lane change warning",
        runs_on=RunsOn.VEHICLE,
        consumes=("bsm",),
        colour="#a6761d",
        reaction=Reaction.ABORT_MANOEUVRE,
        figure=_GAP,
        thresholds={
            "lcw_ttc_s": 3.0,
            "lcw_max_distance_m": 150.0,
            "lcw_required_accuracy_m": 1.5,
        },
        onboard=BlindSpotWarnings,
        family="blind_spot",
    ),
)

__all__ = [
    "APPS",
    "EYE_FROM_FRONT_M",
    "LANE_APPS",
    "BlindSpotWarnings",
    "SideVehicle",
    "lane_change_warnings",
    "side_vehicles",
]
