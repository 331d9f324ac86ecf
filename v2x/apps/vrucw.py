"""Vulnerable road user collision warning (T/CSAE 53 Day-1, V2P / V2I), on board. Sans-I/O: the host's
own state and the vulnerable road users it has heard of in; warnings out.

The logic, stated so that it can be checked (thresholds and their sources: ``APPS`` below):

1. **Who.** Pedestrians and non-motor road users (cyclists): participants of those types in a roadside
   unit's RSM (its sensors saw them; they need no V2X device), senders of a BSM with vehicleClass 82 /
   85 (an equipped VRU), or senders of a PSM (a pedestrian's or cyclist's phone, T/CSAE 157 Day-2).
   Motor vehicles are FCW's and ICW's business.
2. **Gates.** The host's and the VRU's reported 95 % position error must be within
   ``vrucw_required_accuracy_m`` (5 m in the T/CSAE 53 table; an RSM participant's error is its
   posConfidence bound); the VRU must be within ``vrucw_max_distance_m``; and, as in open-v2x/cerebrum, at
   least one of the two must move at ``vrucw_min_speed_mps`` or faster (a car creeping past a waiting
   pedestrian is left alone).
3. **Footprint.** A VRU counts as the square around cerebrum's circle - side 2 x
   ``vrucw_pedestrian_radius_m`` for a pedestrian, 2 x ``vrucw_non_motor_radius_m`` for a cyclist - or its
   reported size if that is larger: a safety margin around a small, agile road user.
4. **Conflict.** The core's conflict detection (constant acceleration over ``horizon_s``, oriented boxes)
   between the host and each VRU. Warn when the time to collision is at most ``vrucw_ttc_s``; in a rear-end
   conflict only when the host is the follower (a cyclist running into the host's back is not the host
   driver's to avoid). The VRU goes straight along its heading; the host too, unless its own route (the
   view's ``route_ahead``, what LTA reads its turn from) bends within the distance it covers in
   ``vrucw_ttc_s``: then it is predicted along the route, piece by straight piece
   (:func:`v2x.apps.collision.host_conflicts`). A car turning into a crosswalk is warned as early as one
   driving straight at it (a pilot-zone review: on its heading line, the turning car was warned at TTC
   1.38 s instead of 2.1 s, under the driver's reaction time, and hit the pedestrian).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

from v2x.apps.collision import Finding, host_conflicts
from v2x.apps.host import Participant
from v2x.apps.registry import AppSpec, OnBoardView, Raised, RouteAhead, RunsOn
from v2x.units import accurate_enough
from v2x.wire import day1_pb2, testbed_pb2
from v2x.wire.bsm import RemoteState


def vru_participant(remote: RemoteState, t_s: float, thresholds: Mapping[str, float]) -> Participant | None:
    """A remote road user as VRUCW sees it at ``t_s``, with its footprint grown to the VRU margin; None if
    it is not a vulnerable road user."""
    if remote.ptc_type == day1_pb2.PARTICIPANT_PEDESTRIAN:
        side = 2 * thresholds["vrucw_pedestrian_radius_m"]
    elif remote.ptc_type == day1_pb2.PARTICIPANT_NON_MOTOR:
        side = 2 * thresholds["vrucw_non_motor_radius_m"]
    else:
        return None
    p = Participant.from_remote(remote.key, remote, t_s)
    return replace(p, length_m=max(p.length_m, side), width_m=max(p.width_m, side))


def vulnerable_road_user_collision(
    host: Participant,
    vrus: Sequence[Participant],
    thresholds: Mapping[str, float],
    route_ahead: RouteAhead | None = None,
) -> list[Finding]:
    """The VRUs the host should be warned about (``Finding.subject`` is the host, ``other`` the VRU); the host
    predicted along ``route_ahead``, its own route, where that bends (rule 4)."""
    need = thresholds["vrucw_required_accuracy_m"]
    if not accurate_enough(host.sigma_m, need):
        return []
    min_speed = thresholds["vrucw_min_speed_mps"]
    host_fast = math.hypot(host.vx, host.vy) >= min_speed
    near = [
        v
        for v in vrus
        if accurate_enough(v.sigma_m, need)
        and math.hypot(v.x - host.x, v.y - host.y) <= thresholds["vrucw_max_distance_m"]
        and (host_fast or math.hypot(v.vx, v.vy) >= min_speed)
    ]
    return host_conflicts(host, near, thresholds, thresholds["vrucw_ttc_s"], route_ahead)


class VulnerableRoadUserCollisionWarning:
    """VRUCW on board, over the VRUs heard in RSMs, BSMs and PSMs (``other``: the BSM or PSM id, hex, or
    {rsm id hex}/{ptcId}; the world resolves it)."""

    def evaluate(self, view: OnBoardView, t_s: float) -> list[Raised]:
        if not (view.perceived or view.remotes or view.personal):
            return []
        vrus = [
            p
            for r in (*view.perceived.values(), *view.remotes.values(), *view.personal.values())
            if (p := vru_participant(r, t_s, view.thresholds)) is not None
        ]
        return [
            Raised("vrucw", f.other, ttc_s=f.ttc_s, conflict_type=f.kind)
            for f in vulnerable_road_user_collision(view.host_party, vrus, view.thresholds, view.route_ahead)
        ]


APPS = (
    AppSpec(
        name="vrucw",
        code=testbed_pb2.APP_VRUCW,
        title="vulnerable road user collision warning",
        runs_on=RunsOn.VEHICLE,
        consumes=("bsm", "rsm", "psm"),
        colour="#8c564b",
        # TTC 2.14 s, the minimum speed (one of the two faster than 2.8 m/s, else no check) and the VRU
        # footprints (circles of radius 0.5 m pedestrian / 1.0 m non-motor; we use the square around the
        # circle): open-v2x/cerebrum scenario_algo/algo_lib/collision_warning.py (ttc_threshold,
        # _min_speed_for_checking, PedestrianDefaultRadius, NonMotorDefaultRadius). Range and accuracy:
        # T/CSAE 53 Day-1 table (VRUCW: 150 m, 5 m). Cerebrum's other conflict indices, PSD (a_max 3.4 m/s^2,
        # psd_max_dece) and FMRD (its default for vehicle-VRU pairs), are alternatives to TTC there, not extra
        # criteria: not implemented (docs/SCENARIOS.md, "Thresholds").
        thresholds={
            "vrucw_ttc_s": 2.14,
            "vrucw_min_speed_mps": 2.8,
            "vrucw_pedestrian_radius_m": 0.5,
            "vrucw_non_motor_radius_m": 1.0,
            "vrucw_max_distance_m": 150.0,
            "vrucw_required_accuracy_m": 5.0,
        },
        onboard=lambda names: VulnerableRoadUserCollisionWarning(),
    ),
)

__all__ = ["APPS", "VulnerableRoadUserCollisionWarning", "vru_participant", "vulnerable_road_user_collision"]
