"""Sensor data sharing collision warning (T/CSAE 157-2020 Day-2, SDS), on board. Sans-I/O: the host's own
state and the road users other stations' sensors detected (SSM participants); warnings out.

Another station - an RSU's camera and radar, or a vehicle's sensors - sees a road user the host cannot:
one without a V2X device, hidden behind a building or a truck. It shares what it detects as SSM; the host
runs the same collision check on those road users as on the ones it hears from directly.

The logic, stated so that it can be checked (thresholds and their sources: ``APPS`` below):

1. **Who.** Every participant of an SSM heard in the last ``max_age_s``, motor or not (a vulnerable road
   user counts with VRUCW's footprint margin, :func:`v2x.apps.vrucw.vru_participant`), except the host
   itself: the sensing station sees the host too. A participant is taken to be the host when its ``id`` is
   the host's temporary id (a station that matched it to the host's BSMs says so), or when its stated
   centre is within ``sds_self_match_m`` of where the host believed itself *at the time the participant
   states* (its own recent track, ``OnBoardView.host_track``, linearly interpolated; before the track,
   the host's present state taken back along its velocity). Comparing at the stated time, not both
   extrapolated to now, keeps a participant whose speed is off from reading as another car at the host's
   position. A motor participant is also the host when its stated centre lies where another car of the
   host's size would overlap the host (within a length along its heading and a width across: two cars there
   at one time are one car), which absorbs a timestamp a few hundred ms off at urban speeds.
2. **Gates.** The host's and the participant's reported 95 % position error must be within
   ``sds_required_accuracy_m``; the participant must be within ``sds_max_distance_m``.
3. **Conflict.** The core's conflict detection (constant acceleration over ``horizon_s``, oriented boxes)
   between the host and each participant. Warn when the time to collision is at most ``sds_ttc_s``; in a
   rear-end conflict only when the host is the follower. The participant goes straight along its heading, the
   host along its own route where that bends within its reach (as VRUCW's rule 4,
   :func:`v2x.apps.collision.host_conflicts`).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence

from v2x.apps.collision import Finding, host_conflicts
from v2x.apps.host import Participant
from v2x.apps.registry import AppSpec, Figure, OnBoardView, Raised, RouteAhead, RunsOn
from v2x.apps.vrucw import vru_participant
from v2x.units import accurate_enough
from v2x.wire import day1_pb2, testbed_pb2
from v2x.wire.bsm import RemoteState


def host_at(
    host: Participant, t_s: float, when_s: float, track: Sequence[tuple[float, float, float]]
) -> tuple[float, float]:
    """Where the host (``host`` at ``t_s``) believed itself at ``when_s``: on its ``track`` ((t, x, y), oldest first),
    linearly interpolated; outside it, ``host`` taken along its velocity."""
    if track and track[0][0] - 1e-9 <= when_s <= track[-1][0] + 1e-9:
        k = bisect.bisect_left(track, when_s, key=lambda p: p[0])
        t1, x1, y1 = track[min(k, len(track) - 1)]
        if k == 0 or t1 - when_s <= 1e-9:
            return x1, y1
        t0, x0, y0 = track[k - 1]
        f = (when_s - t0) / (t1 - t0)
        return x0 + f * (x1 - x0), y0 + f * (y1 - y0)
    return host.x + host.vx * (when_s - t_s), host.y + host.vy * (when_s - t_s)


def is_host(
    remote: RemoteState,
    host: Participant,
    t_s: float,
    thresholds: Mapping[str, float],
    track: Sequence[tuple[float, float, float]] = (),
    own_id: bytes = b"",
) -> bool:
    """Is the shared participant ``remote`` the host (rule 1): its id the host's, or its stated centre, at the time
    it states, within ``sds_self_match_m`` of the host's or (a motor vehicle) where another car of the host's size
    would overlap it?"""
    if own_id and remote.participant_id == own_id:
        return True
    hx, hy = host_at(host, t_s, remote.t_s, track)
    dx, dy = remote.x - hx, remote.y - hy
    if math.hypot(dx, dy) <= thresholds["sds_self_match_m"]:
        return True
    if remote.ptc_type != day1_pb2.PARTICIPANT_MOTOR:
        return False
    c, s = math.cos(host.heading_rad), math.sin(host.heading_rad)
    return abs(dx * c + dy * s) <= host.length_m and abs(dy * c - dx * s) <= host.width_m


def shared_participants(
    host: Participant,
    shared: Sequence[RemoteState],
    t_s: float,
    thresholds: Mapping[str, float],
    track: Sequence[tuple[float, float, float]] = (),
    own_id: bytes = b"",
) -> list[Participant]:
    """The shared road users SDS checks at ``t_s``: the host itself left out (``is_host``), VRUs with their
    margin."""
    out = []
    for remote in shared:
        if is_host(remote, host, t_s, thresholds, track, own_id):
            continue  # the sensing station sees the host too
        out.append(vru_participant(remote, t_s, thresholds) or Participant.from_remote(remote.key, remote, t_s))
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
        others = shared_participants(
            host, list(view.shared.values()), t_s, view.thresholds, view.host_track, view.own_id
        )
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

__all__ = ["APPS", "SensorDataSharingWarning", "host_at", "is_host", "shared_collision", "shared_participants"]
