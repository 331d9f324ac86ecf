"""Do not pass warning (DNPW) on board (T/CSAE 53 Day-1, V2V: BSM at 10 Hz, 100 ms, position accuracy
1.5 m, range 300 m). Sans-I/O: the host's own state (with its turn signal) and its route ahead, and the
vehicles heard in BSMs in; warnings out.

The host's driver announces an overtake with his turn signal towards the oncoming lane (``PASSING_SIDE``:
left, for right-hand traffic). The logic, stated so that it can be checked (thresholds and their sources:
``APPS`` below):

1. **Intent.** The host's turn signal is on, on ``PASSING_SIDE``; otherwise nothing is raised.
2. **Accuracy.** The host's and the sender's reported 95 % position error are within
   ``dnpw_required_accuracy_m``.
3. **The passing zone** is the road ahead of the host along its own route (``OnBoardView.route_ahead``,
   sampled every ``ROUTE_STEP_M``; on its heading line when the route is not known), out to
   ``dnpw_max_distance_m``: a mountain road's bends are followed, not cut. A sender, extrapolated to now,
   is **in** it when it is within ``dnpw_max_lateral_m`` of that path (the host's lane and the oncoming one)
   and ahead of the host (the gap between the bumpers along the path is positive: one that has already
   passed the host is not), and **oncoming** when its heading is within ``v2v_event_max_heading_deg`` of
   the opposite of the path's there.
4. **Time.** Warn when the two would meet within ``dnpw_ttc_s``: the gap along the path over the sum of
   the two speeds (the closing speed if neither changes its speed), as open-v2x cerebrum does. An oncoming
   car farther off than that leaves time to pass.

The driver abandons the overtake (v2x/apps/driver.py, ``Reaction.ABORT_MANOEUVRE``): he steers back behind
the vehicle he meant to pass and drops back to its speed. ``other`` is the oncoming sender's BSM id, the
figure the gap (``gap_m``), ``ttc_s`` the time to meet.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from v2x.apps.host import Host
from v2x.apps.registry import AppSpec, Figure, OnBoardView, Raised, Reaction, RouteAhead, RunsOn
from v2x.units import accurate_enough, wrap_angle_rad
from v2x.wire import testbed_pb2
from v2x.wire.bsm import RemoteState

PASSING_SIDE = "left"  # right-hand traffic (China): one overtakes in the oncoming lane, on the left
ROUTE_STEP_M = 5.0  # the route ahead is followed in chords this long (a 50 m radius bend: 6 cm off the arc)


@dataclass(frozen=True)
class OncomingVehicle:
    key: str  # its BSM id (hex)
    gap_m: float  # bumper to bumper, along the host's path
    lateral_m: float  # its centre from the host's path (left positive)
    time_to_meet_s: float


def passing_path(host: Host, route_ahead: RouteAhead | None, length_m: float) -> np.ndarray:
    """Points of the host's path ahead of its centre, out to ``length_m`` (its heading line without a route)."""
    d = np.arange(0.0, length_m + ROUTE_STEP_M, ROUTE_STEP_M)
    if route_ahead is None:
        return np.column_stack((host.x + d * math.cos(host.heading_rad), host.y + d * math.sin(host.heading_rad)))
    return np.array([route_ahead(float(k))[:2] for k in d], dtype=np.float64)


def _project(path: np.ndarray, x: float, y: float) -> tuple[float, float, float]:
    """(distance along ``path`` to the nearest point, signed offset from it (left positive), path heading there)."""
    a, seg = path[:-1], np.diff(path, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    seg_len = np.where(seg_len > 0, seg_len, 1e-12)
    wx, wy = x - a[:, 0], y - a[:, 1]
    u = np.clip((wx * seg[:, 0] + wy * seg[:, 1]) / (seg_len * seg_len), 0.0, 1.0)
    dist = np.hypot(wx - u * seg[:, 0], wy - u * seg[:, 1])
    k = int(np.argmin(dist))
    along = float(np.sum(seg_len[:k]) + u[k] * seg_len[k])
    side = 1.0 if seg[k, 0] * wy[k] - seg[k, 1] * wx[k] >= 0 else -1.0
    return along, side * float(dist[k]), math.atan2(float(seg[k, 1]), float(seg[k, 0]))


def do_not_pass_warnings(
    host: Host,
    remotes: Iterable[RemoteState],
    t_s: float,
    thresholds: Mapping[str, float],
    route_ahead: RouteAhead | None = None,
) -> list[OncomingVehicle]:
    """Rules 1-4 of the module docstring: the oncoming senders that make the overtake unsafe, in key order."""
    need = thresholds["dnpw_required_accuracy_m"]
    if host.turn_signal != PASSING_SIDE or not accurate_enough(host.sigma_m, need):
        return []
    candidates = [r for r in sorted(remotes, key=lambda r: r.key) if accurate_enough(r.sigma_major_m, need)]
    if not candidates:
        return []
    reach = thresholds["dnpw_max_distance_m"]
    path = passing_path(host, route_ahead, reach + 20.0)
    opposite = math.pi - math.radians(thresholds["v2v_event_max_heading_deg"])
    out = []
    for remote in candidates:
        x, y, _, _ = remote.extrapolated(t_s)
        along, lateral, path_yaw = _project(path, x, y)
        gap = along - (host.length_m + remote.length_m) / 2
        if abs(wrap_angle_rad(remote.heading_rad - path_yaw)) < opposite:
            continue
        if abs(lateral) > thresholds["dnpw_max_lateral_m"] or not 0 < gap <= reach:
            continue
        closing = host.speed_mps + remote.speed_mps
        t_meet = gap / closing if closing > 0 else math.inf
        if t_meet <= thresholds["dnpw_ttc_s"]:
            out.append(OncomingVehicle(remote.key, gap, lateral, t_meet))
    return out


class DoNotPassWarning:
    """DNPW on board: ``other`` is the oncoming sender's BSM id (hex); the world resolves it to an actor id."""

    def evaluate(self, view: OnBoardView, t_s: float) -> list[Raised]:
        if not view.remotes or view.host.turn_signal != PASSING_SIDE:
            return []
        return [
            Raised("dnpw", ov.key, ttc_s=ov.time_to_meet_s, figure=ov.gap_m, conflict_type="oncoming")
            for ov in do_not_pass_warnings(view.host, view.remotes.values(), t_s, view.thresholds, view.route_ahead)
        ]


# Time needed to pass: 9 s (open-v2x cerebrum scenario_algo/algo_lib/do_not_pass_warning.py, OvertakingTime
# 9000 ms; its TTC is the distance over the sum of the two speeds, as here). Range 300 m and accuracy 1.5 m:
# T/CSAE 53 Day-1 table. The passing zone's width: the host's lane and the next (5.25 m from the host's path,
# 1.5 lanes of 3.5 m, as AVW / CLW; ours). Oncoming: headings within 45 degrees of opposite
# (v2v_event_max_heading_deg, declared with EBW).
APPS = (
    AppSpec(
        name="dnpw",
        code=testbed_pb2.APP_DNPW,
        title="do not pass warning",
        runs_on=RunsOn.VEHICLE,
        consumes=("bsm",),
        colour="#1b9e77",
        reaction=Reaction.ABORT_MANOEUVRE,
        figure=Figure("gap_m", "gap", "m"),
        thresholds={
            "dnpw_ttc_s": 9.0,
            "dnpw_max_distance_m": 300.0,
            "dnpw_required_accuracy_m": 1.5,
            "dnpw_max_lateral_m": 5.25,
        },
        onboard=lambda names: DoNotPassWarning(),
    ),
)

__all__ = [
    "APPS",
    "PASSING_SIDE",
    "ROUTE_STEP_M",
    "DoNotPassWarning",
    "OncomingVehicle",
    "do_not_pass_warnings",
    "passing_path",
]
