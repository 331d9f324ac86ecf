"""Vulnerable road user collision warning (T/CSAE 53 Day-1, V2P / V2I), on board. Sans-I/O: the host's
own state and the vulnerable road users it has heard of in; warnings out.

The logic, stated so that it can be checked (thresholds and their sources: v2x/apps/thresholds.py):

1. **Who.** Pedestrians and non-motor road users (cyclists): participants of those types in a roadside
   unit's RSM (its sensors saw them; they need no V2X device), or senders of a BSM with vehicleClass 82 /
   85 (an equipped VRU). Motor vehicles are FCW's and ICW's business.
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
   driver's to avoid).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

from v2x.apps.collision import Finding, Participant, accurate_enough, find_conflicts
from v2x.wire import day1_pb2
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
    host: Participant, vrus: Sequence[Participant], thresholds: Mapping[str, float]
) -> list[Finding]:
    """The VRUs the host should be warned about (``Finding.subject`` is the host, ``other`` the VRU)."""
    need = thresholds["vrucw_required_accuracy_m"]
    if not accurate_enough(host, need):
        return []
    min_speed = thresholds["vrucw_min_speed_mps"]
    host_fast = math.hypot(host.vx, host.vy) >= min_speed
    near = [
        v
        for v in vrus
        if accurate_enough(v, need)
        and math.hypot(v.x - host.x, v.y - host.y) <= thresholds["vrucw_max_distance_m"]
        and (host_fast or math.hypot(v.vx, v.vy) >= min_speed)
    ]
    if not near:
        return []
    found = find_conflicts(
        [host, *near], horizon_s=thresholds["horizon_s"], max_pet_s=thresholds["icw_max_pet_s"], subject=host.key
    )
    out = []
    for f in found:
        if f.ttc_s > thresholds["vrucw_ttc_s"]:
            continue
        if f.kind == "rear-end" and f.subject != host.key:
            continue  # the VRU is the follower
        if f.subject != host.key:  # the core put the VRU first: turn the finding round
            f_host = replace(
                f,
                subject=f.other,
                other=f.subject,
                t_conflict_subject_s=f.t_conflict_other_s,
                t_conflict_other_s=f.t_conflict_subject_s,
            )
            out.append(f_host)
        else:
            out.append(f)
    return out


__all__ = ["vru_participant", "vulnerable_road_user_collision"]
