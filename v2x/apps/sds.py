"""Sensor data sharing collision warning (T/CSAE 157-2020 Day-2, SDS), on board. Sans-I/O: the host's own
state and the road users other stations' sensors detected (SSM participants); warnings out.

Another station - an RSU's camera and radar, or a vehicle's sensors - sees a road user the host cannot:
one without a V2X device, hidden behind a building or a truck. It shares what it detects as SSM; the host
runs the same collision check on those road users as on the ones it hears from directly.

The logic, stated so that it can be checked (thresholds and their sources: ``APPS`` below):

1. **Who.** Every participant of an SSM heard in the last ``max_age_s``, motor or not (a vulnerable road
   user counts with VRUCW's footprint margin, :func:`v2x.apps.vrucw.vru_participant`), except the host
   itself: the sensing station sees the host too, so a participant whose reported centre is within
   ``sds_self_match_m`` of the host's believed centre is taken to be the host.
2. **Gates.** The host's and the participant's reported 95 % position error must be within
   ``sds_required_accuracy_m``; the participant must be within ``sds_max_distance_m``.
3. **Conflict.** The core's conflict detection (constant acceleration over ``horizon_s``, oriented boxes)
   between the host and each participant. Warn when the time to collision is at most ``sds_ttc_s``; in a
   rear-end conflict only when the host is the follower. The participant goes straight along its heading, the
   host along its own route where that bends within its reach (as VRUCW's rule 4,
   :func:`v2x.apps.collision.host_conflicts`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from v2x.apps.collision import Finding, host_conflicts
from v2x.apps.host import Participant
from v2x.apps.registry import AppSpec, Figure, OnBoardView, Raised, RouteAhead, RunsOn
from v2x.apps.vrucw import vru_participant
from v2x.units import accurate_enough
from v2x.wire import testbed_pb2
from v2x.wire.bsm import RemoteState


def shared_participants(
    host: Participant, shared: Sequence[RemoteState], t_s: float, thresholds: Mapping[str, float]
) -> list[Participant]:
    """The shared road users SDS checks at ``t_s``: the host itself left out, VRUs with their margin."""
    out = []
    for remote in shared:
        p = vru_participant(remote, t_s, thresholds) or Participant.from_remote(remote.key, remote, t_s)
        if math.hypot(p.x - host.x, p.y - host.y) <= thresholds["sds_self_match_m"]:
            continue  # the sensing station sees the host too
        out.append(p)
    return out


def shared_collision(
    host: Participant,
    others: Sequence[Participant],
    thresholds: Mapping[str, float],
    route_ahead: RouteAhead | None = None,
) -> list[Finding]:
    """The shared road users the host should be warned about (``Finding.subject`` is the host); the host
    predicted along ``route_ahead``, its own route, where that bends (rule 3)."""
    need = thresholds["sds_required_accuracy_m"]
    if not accurate_enough(host.sigma_m, need):
        return []
    near = [
        p
        for p in others
        if accurate_enough(p.sigma_m, need)
        and math.hypot(p.x - host.x, p.y - host.y) <= thresholds["sds_max_distance_m"]
    ]
    return host_conflicts(host, near, thresholds, thresholds["sds_ttc_s"], route_ahead)


class SensorDataSharingWarning:
    """SDS on board, over the road users heard in SSMs (``other``: {ssm id hex}/{ptcId}; the world resolves
    it to the actor)."""

    def evaluate(self, view: OnBoardView, t_s: float) -> list[Raised]:
        if not view.shared:
            return []
        host = view.host_party
        others = shared_participants(host, list(view.shared.values()), t_s, view.thresholds)
        return [
            Raised("sds", f.other, ttc_s=f.ttc_s, figure=0.0 if math.isnan(f.pet_s) else f.pet_s, conflict_type=f.kind)
            for f in shared_collision(host, others, view.thresholds, view.route_ahead)
        ]


APPS = (
    AppSpec(
        name="sds",
        code=testbed_pb2.APP_SDS,
        title="sensor data sharing collision warning",
        runs_on=RunsOn.VEHICLE,
        consumes=("ssm",),
        colour="#0b6e4f",
        figure=Figure("pet_s", "PET", "s"),
        # TTC 2.14 s: open-v2x/cerebrum scenario_algo/algo_lib/collision_warning.py (ttc_threshold), the
        # collision warning cerebrum runs on shared perception as on V2V. Range 150 m and accuracy 5 m: the
        # T/CSAE 53 Day-1 figures of ICW and VRUCW (T/CSAE 157 gives SDS no figures of its own). The self
        # match, 3 m: assumption (another road user's centre cannot be within 3 m of a car's centre without
        # the boxes overlapping, and the roadside sensors' error is 0.1-0.5 m).
        thresholds={
            "sds_ttc_s": 2.14,
            "sds_max_distance_m": 150.0,
            "sds_required_accuracy_m": 5.0,
            "sds_self_match_m": 3.0,
        },
        onboard=lambda names: SensorDataSharingWarning(),
    ),
)

__all__ = ["APPS", "SensorDataSharingWarning", "shared_collision", "shared_participants"]
