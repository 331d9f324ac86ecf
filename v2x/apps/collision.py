"""Collision-warning applications (FCW on board, ICW on the edge/cloud platform) over the core's
conflict detection. Sans-I/O: remote states in, warnings out."""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray
from shapely.geometry import LineString

from v2x.apps.host import Participant
from v2x.apps.registry import (
    Addressed,
    AppSpec,
    Bounds,
    EdgeView,
    Figure,
    OnBoardView,
    Raised,
    RouteAhead,
    RunsOn,
    route_points,
)
from v2x.apps.rlvw import time_to_travel
from v2x.core import (
    SMALL_WORLD,
    SPEED_EPS_MPS,
    ActorKind,
    Conflicts,
    ConflictType,
    WorldState,
    always_compiled,
    detect_conflicts,
)
from v2x.units import accurate_enough, accurate_enough_array
from v2x.wire import day1_pb2, testbed_pb2
from v2x.wire.bsm import RemoteState

CONFLICT_NAME = {
    ConflictType.REAR_END: "rear-end",
    ConflictType.CROSSING: "crossing",
    ConflictType.HEAD_ON: "head-on",
    ConflictType.LATERAL: "lateral",
}


@dataclass(frozen=True)
class Finding:
    subject: str
    other: str
    kind: str
    ttc_s: float
    pet_s: float
    t_conflict_subject_s: float
    t_conflict_other_s: float


def _world(participants: Sequence[Participant]) -> WorldState:
    world = WorldState(capacity=max(4, len(participants)))
    arr = np.array(
        [
            (
                p.x,
                p.y,
                p.vx,
                p.vy,
                p.accel_mps2 * np.cos(p.heading_rad),
                p.accel_mps2 * np.sin(p.heading_rad),
                p.heading_rad,
                p.sigma_m,
                p.length_m,
                p.width_m,
            )
            for p in participants
        ],
        dtype=np.float64,
    ).reshape(-1, 10)
    z = np.array([np.nan if p.z_m is None else p.z_m for p in participants], dtype=np.float64)
    vz = np.array([p.vz_mps for p in participants], dtype=np.float64)
    slots = world.add_many([p.key for p in participants], ActorKind.CAR, arr[:, 8], arr[:, 9])
    world.set_state(
        slots,
        arr[:, 0],
        arr[:, 1],
        arr[:, 2],
        arr[:, 3],
        arr[:, 4],
        arr[:, 5],
        arr[:, 6],
        pos_sigma_m=arr[:, 7],
        z=z,
        vz=vz,
    )
    return world


def find_conflicts(
    participants: Sequence[Participant],
    *,
    horizon_s: float,
    max_pet_s: float,
    subject: str | None = None,
) -> list[Finding]:
    """Conflicts among ``participants``; with ``subject``, only those involving it (it as ``subject``). Road
    users on different levels (heights more than ``v2x.core.VERTICAL_SEPARATION_M`` apart: a flyover over
    the road) are never in conflict."""
    if len(participants) < 2:
        return []
    keys = [p.key for p in participants]
    host = None if subject is None else keys.index(subject)
    return _findings(_detect(participants, horizon_s, max_pet_s, host), keys)


def _detect(participants: Sequence[Participant], horizon_s: float, max_pet_s: float, host: int | None) -> Conflicts:
    """The core's conflicts among ``participants`` (slots in their order); with ``host``, only those of the
    participant at that index with each other."""
    world = _world(participants)
    if host is None:
        return detect_conflicts(world, horizon_s=horizon_s, max_pet_s=max_pet_s)
    others = np.array([k for k in range(len(participants)) if k != host], dtype=np.intp)
    pairs = (np.full(len(others), host, dtype=np.intp), others)
    return detect_conflicts(world, horizon_s=horizon_s, pairs=pairs, max_pet_s=max_pet_s)


def _findings(conflicts: Conflicts, keys: Sequence[str], rows: NDArray[np.bool_] | None = None) -> list[Finding]:
    """The rows of ``conflicts`` (those where ``rows`` is true; all without it) as findings of the road users
    ``keys`` (by slot)."""
    findings = []
    for k in range(len(conflicts)) if rows is None else np.flatnonzero(rows).tolist():
        i, j = int(conflicts.i[k]), int(conflicts.j[k])
        findings.append(
            Finding(
                subject=keys[i],
                other=keys[j],
                kind=CONFLICT_NAME.get(ConflictType(int(conflicts.kind[k])), "unknown"),
                ttc_s=float(conflicts.ttc_s[k]),
                pet_s=float(conflicts.pet_s[k]),
                t_conflict_subject_s=float(conflicts.t_conflict_i_s[k]),
                t_conflict_other_s=float(conflicts.t_conflict_j_s[k]),
            )
        )
    return findings


def host_conflicts(
    host: Participant,
    near: Sequence[Participant],
    thresholds: Mapping[str, float],
    ttc_s: float,
    route_ahead: RouteAhead | None = None,
) -> list[Finding]:
    """The conflicts of ``host`` with ``near`` whose TTC is at most ``ttc_s``, each with the host as
    ``subject``; a rear-end conflict only when the host is the follower (someone running into the host's
    back is not the host's to avoid). The on-board apps on other road users (SDS, VRUCW) share it.

    With ``route_ahead`` (the host's own route, ``OnBoardView.route_ahead``) the host is predicted along its
    route where that bends within the distance it covers in ``ttc_s`` (``host_route_pieces``: a turn at a
    crossing); ``near`` as before, each straight along its heading. A straight route (or none) leaves the host
    on the straight line along its heading, as without it."""
    if not near:
        return []
    pieces = None if route_ahead is None else host_route_pieces(host, route_ahead, _reach_m(host, ttc_s))
    if pieces is not None:
        return _along_route(host, near, thresholds, ttc_s, pieces)
    found = find_conflicts(
        [host, *near], horizon_s=thresholds["horizon_s"], max_pet_s=thresholds["icw_max_pet_s"], subject=host.key
    )
    return _of_host(found, host.key, ttc_s)


def _of_host(found: Sequence[Finding], host: str, ttc_s: float) -> list[Finding]:
    """``host_conflicts``' verdict on the core's findings ``found`` between the host (key ``host``) and others."""
    out = []
    for f in found:
        if f.ttc_s > ttc_s or (f.kind == "rear-end" and f.subject != host):
            continue
        if f.subject == host:
            out.append(f)
        else:  # the core put the other first: turn the finding round
            out.append(
                replace(
                    f,
                    subject=f.other,
                    other=f.subject,
                    t_conflict_subject_s=f.t_conflict_other_s,
                    t_conflict_other_s=f.t_conflict_subject_s,
                )
            )
    return out


#: How far the host's route may stray from a straight line before ``host_conflicts`` follows the route (m): a
#: route within it of the line along its own heading over the host's reach is straight (the host stays on its
#: heading line, as without a route), and a bending one is followed in straight pieces (its points every
#: ``ROUTE_STEP_M``, Douglas-Peucker) that stay within it of the route. Ours: a tenth of the VRU footprint's
#: 1 m side; a 30 m stretch of a 1 km radius curve is within it, a turn at a crossing is not.
ROUTE_TOLERANCE_M = 0.1


@dataclass(frozen=True)
class RoutePiece:
    """A straight piece of the host's route ahead: where it starts (local metres, shifted so that the first
    piece starts at the host's believed centre), its direction, and its distance from the host along the route."""

    x: float
    y: float
    heading_rad: float
    from_m: float


def host_route_pieces(host: Participant, route_ahead: RouteAhead, length_m: float) -> list[RoutePiece] | None:
    """The host's route from its centre to ``length_m`` ahead (sampled by ``route_points``) as straight pieces
    within ``ROUTE_TOLERANCE_M`` of it, moved to start at the host's believed centre; None when the route runs
    straight over that length (within ``ROUTE_TOLERANCE_M`` of the line along its heading at the host)."""
    pts = np.array(route_points(route_ahead, 0.0, length_m), dtype=np.float64)
    heading = route_ahead(0.0)[2]
    rel = pts - pts[0]
    if float(np.abs(rel[:, 1] * math.cos(heading) - rel[:, 0] * math.sin(heading)).max()) <= ROUTE_TOLERANCE_M:
        return None
    corners = np.asarray(LineString(pts).simplify(ROUTE_TOLERANCE_M, preserve_topology=False).coords)
    corners = corners - corners[0] + (host.x, host.y)
    seg = np.diff(corners, axis=0)
    lengths = np.hypot(seg[:, 0], seg[:, 1])
    starts = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    return [
        RoutePiece(float(corners[k, 0]), float(corners[k, 1]), math.atan2(seg[k, 1], seg[k, 0]), float(starts[k]))
        for k in range(len(seg))
        if lengths[k] > 0.0
    ]


def _reach_m(host: Participant, t_s: float) -> float:
    """How far the host's centre travels in ``t_s`` at its speed and acceleration (stopping at rest)."""
    v, a = math.hypot(host.vx, host.vy), host.accel_mps2
    if a < 0.0 and v + a * t_s < 0.0:
        return v * v / (-2.0 * a)
    return v * t_s + 0.5 * a * t_s * t_s


def carried(p: Participant, dt_s: float) -> Participant:
    """``p`` ``dt_s`` seconds on, moved as the core's conflict detection moves it (docs/CORE.md "Motion models":
    straight along its velocity, or its heading when standing, at constant acceleration, stopping at rest; its
    height at its vertical rate)."""
    speed = math.hypot(p.vx, p.vy)
    ch, sh = math.cos(p.heading_rad), math.sin(p.heading_rad)
    ux, uy = (p.vx / speed, p.vy / speed) if speed > SPEED_EPS_MPS else (ch, sh)
    s = speed if speed > SPEED_EPS_MPS else 0.0
    a = p.accel_mps2 * (ch * ux + sh * uy)
    tau = min(dt_s, s / -a) if a < 0.0 else dt_s
    d, v = s * tau + 0.5 * a * tau * tau, s + a * tau
    z = None if p.z_m is None else p.z_m + p.vz_mps * dt_s
    return replace(p, x=p.x + d * ux, y=p.y + d * uy, vx=v * ux, vy=v * uy, z_m=z)


def _along_route(
    host: Participant,
    near: Sequence[Participant],
    thresholds: Mapping[str, float],
    ttc_s: float,
    pieces: Sequence[RoutePiece],
) -> list[Finding]:
    """``host_conflicts`` with the host on its route: on each piece in turn, the core's conflict detection
    between the host on that piece (from the time it reaches the piece, ``rlvw.time_to_travel`` as LTA's, to the
    time it leaves it) and ``near`` carried on to that time (``carried``); a road user's finding is the first
    piece's contact, its times counted from now."""
    speed = math.hypot(host.vx, host.vy)
    first: dict[str, Finding] = {}
    for k, piece in enumerate(pieces):
        t_in = time_to_travel(piece.from_m, speed, host.accel_mps2)
        if not t_in < ttc_s:
            break  # the host does not reach this piece within the TTC (or stops before it)
        t_out = time_to_travel(pieces[k + 1].from_m, speed, host.accel_mps2) if k + 1 < len(pieces) else math.inf
        others = [carried(p, t_in) for p in near if p.key not in first]
        if not others:
            break
        v = max(0.0, speed + host.accel_mps2 * t_in)
        c, s = math.cos(piece.heading_rad), math.sin(piece.heading_rad)
        z = None if host.z_m is None else host.z_m + host.vz_mps * t_in
        on_piece = replace(host, x=piece.x, y=piece.y, vx=v * c, vy=v * s, heading_rad=piece.heading_rad, z_m=z)
        within = min(t_out, ttc_s) - t_in
        found = find_conflicts(
            [on_piece, *others], horizon_s=within, max_pet_s=thresholds["icw_max_pet_s"], subject=host.key
        )
        for f in _of_host(found, host.key, within):
            first[f.other] = replace(
                f,
                ttc_s=f.ttc_s + t_in,
                t_conflict_subject_s=f.t_conflict_subject_s + t_in,
                t_conflict_other_s=f.t_conflict_other_s + t_in,
            )
    return list(first.values())


def fcw_gate(sigma_m: NDArray[np.float64], thresholds: Mapping[str, float]) -> NDArray[np.bool_]:
    """FCW's accuracy gate on each party whose reported per-axis 1-sigma is in ``sigma_m`` (NaN or inf: unknown,
    refused): one whose accuracy is worse than ``fcw_required_accuracy_m`` is left out, so that noise alone cannot
    raise a warning. The one gate of both FCWs: a vehicle's (``ForwardCollisionWarning``, its host and remotes) and
    a fleet's (v2x.agents.fleet, all its vehicles and the senders they heard at once)."""
    return accurate_enough_array(sigma_m, thresholds["fcw_required_accuracy_m"])


def fcw_rows(found: Conflicts, hosts: int, thresholds: Mapping[str, float]) -> NDArray[np.bool_]:
    """FCW's verdict on each conflict of ``found``, found among hosts (the slots below ``hosts``) and remotes (the
    others): a rear-end conflict in which the host is the follower (the core puts the follower first, as ``i``;
    someone running into the host's back is not the host's to avoid) and the TTC at most ``fcw_ttc_s`` (a TTC that
    is not a number is none). The one verdict of both FCWs: a vehicle's (``forward_collision``, one host) and a
    fleet's (v2x.agents.fleet, all its vehicles in one ``detect_conflicts``)."""
    rows: NDArray[np.bool_] = (
        (found.kind == int(ConflictType.REAR_END))
        & (found.i < hosts)
        & (found.j >= hosts)
        & (found.ttc_s <= thresholds["fcw_ttc_s"])
    )
    return rows


def forward_collision(
    host: Participant, remotes: Sequence[Participant], thresholds: Mapping[str, float]
) -> list[Finding]:
    """FCW: a rear-end conflict in which the host is the follower and TTC is below the threshold (``fcw_rows``).
    Parties whose reported accuracy is worse than FCW needs are ignored (``fcw_gate``: no warnings from noise)."""
    passes = fcw_gate(np.array([host.sigma_m, *(r.sigma_m for r in remotes)], dtype=np.float64), thresholds)
    if not passes[0]:
        return []
    return _following(host, list(itertools.compress(remotes, passes[1:].tolist())), thresholds)


def _following(host: Participant, remotes: Sequence[Participant], thresholds: Mapping[str, float]) -> list[Finding]:
    """``forward_collision`` of a host and remotes that passed FCW's accuracy gate."""
    if not remotes:
        return []
    parties = [host, *remotes]
    found = _detect(parties, thresholds["horizon_s"], thresholds["icw_max_pet_s"], 0)
    return _findings(found, [p.key for p in parties], fcw_rows(found, 1, thresholds))


#: ``may_touch``'s allowance for rounding (m): far more than the conflict detection's contact tolerance (1e-6 m)
#: and its pruning slack, far less than any gap that matters.
MAY_TOUCH_SLACK_M = 0.5


def may_touch(host: Participant, remotes: Sequence[RemoteState], t_s: float, horizon_s: float) -> list[bool]:
    """Per remote: could its box touch the host's within ``horizon_s`` of ``t_s`` as the core's conflict detection
    predicts the two (``Participant.from_remote``: the remote carried on from its BSM to ``t_s``; then each
    along a straight line at constant acceleration, stopping at rest)? False only where they provably cannot, so
    a rear-end conflict with TTC <= ``horizon_s`` (FCW's: a TTC is the first contact) needs True. One numpy pass.

    The bound: with r the centres' offset and u = v_remote - v_host, the boxes touch only if |r(tau)| <=
    c_h + c_r (circumradii) for some tau <= H. Each velocity changes by at most |a| tau (speed clamped at 0,
    direction fixed), so |r(tau)| >= |r(0)| - |u(0)| H - (|a_h| + |a_r|) H^2 / 2. The remote's state at ``t_s``
    lies within D = v0 dt + |a_r| dt^2 / 2 of its BSM's position and |a_r| dt of its BSM's velocity (dt its age),
    so contact needs |r_BSM| - D <= c_h + c_r + (|u_BSM| + |a_r| dt) H + (|a_h| + |a_r|) H^2 / 2 (``out_of_reach``).
    A remote with a value that is not a number is kept (the exact test decides)."""
    if not remotes:
        return []
    rows = [(r.x, r.y, r.speed_mps, r.heading_rad, r.accel_mps2, r.t_s, r.length_m, r.width_m) for r in remotes]
    # (np.fromiter of the values in a row: the same array as np.array of the rows, made in half the time)
    cols = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.float64, count=8 * len(rows)).reshape(-1, 8)
    x, y, v0, heading, a, t_r, length, width = cols.T
    a = np.abs(a)
    dt = np.maximum(0.0, t_s - t_r)
    drift = np.abs(v0) * dt + 0.5 * a * dt * dt
    ux = v0 * np.cos(heading) - host.vx
    uy = v0 * np.sin(heading) - host.vy
    circ = math.hypot(0.5 * host.length_m, 0.5 * host.width_m) + np.hypot(0.5 * length, 0.5 * width)
    gap = np.hypot(x - host.x, y - host.y) - drift
    far = out_of_reach(gap, np.hypot(ux, uy) + a * dt, abs(host.accel_mps2) + a, circ, horizon_s)
    near: list[bool] = (~far).tolist()
    return near


def out_of_reach(
    gap: NDArray[np.float64],
    closing: NDArray[np.float64],
    accel: NDArray[np.float64],
    circ: NDArray[np.float64],
    horizon_s: float,
) -> NDArray[np.bool_]:
    """Per pair of road users: can their boxes provably not touch within ``horizon_s``, moving as the core's
    conflict detection moves them (each along a straight line at constant acceleration, stopping at rest)?
    ``gap``: the distance between their centres now (at least); ``closing``: |v_j - v_i| now (at most);
    ``accel``: |a_i| + |a_j| (at most); ``circ``: the sum of their circumradii. Each velocity changes by at most
    |a| tau in tau, so the centres stay at least gap - closing H - accel H^2 / 2 apart until H, and boxes touch
    only within c_i + c_j (plus ``MAY_TOUCH_SLACK_M`` for rounding; a standing actor's speed below the core's
    1e-6 m/s counts as 0 there, far within it). False where a value is not a number: the exact test decides."""
    reach = circ + closing * horizon_s + 0.5 * accel * horizon_s * horizon_s + MAY_TOUCH_SLACK_M
    far: NDArray[np.bool_] = gap > reach
    return far


def intersection_collision(participants: Sequence[Participant], thresholds: Mapping[str, float]) -> list[Finding]:
    """ICW: crossing conflicts (PET within ``icw_max_pet_s``) whose first party reaches the conflict point
    within the ICW TTC; ``IntersectionCollisionWarning`` warns each party once its own time to the point is
    within it. Only motor vehicles take part, as either party (T/CSAE 53's ICW is vehicle to vehicle; a
    pedestrian's or cyclist's conflicts with a vehicle are VRUCW's, on board: until session 23 the platform warned
    a car about a pedestrian 84 m from the junction, the car stopped and its VRUCW never fired, a domain review).
    Parties whose reported accuracy is worse than ICW needs are ignored."""
    need = thresholds["icw_required_accuracy_m"]
    participants = [
        p for p in participants if p.ptc_type == day1_pb2.PARTICIPANT_MOTOR and accurate_enough(p.sigma_m, need)
    ]
    found = find_conflicts(participants, horizon_s=thresholds["horizon_s"], max_pet_s=thresholds["icw_max_pet_s"])
    out = []
    for f in found:
        if f.kind != "crossing":
            continue
        t_first = min(f.t_conflict_subject_s, f.t_conflict_other_s)
        if t_first <= thresholds["icw_ttc_s"]:
            out.append(f)
    return out


def fcw_gated(view: OnBoardView) -> list[RemoteState]:
    """FCW's accuracy gate (``fcw_gate``) on board: the remotes heard whose stated accuracy passes it (none when
    nothing was heard, or when the host's own accuracy fails it: then it raises nothing). FCW and CFW both go
    through it."""
    if not view.remotes:
        return []
    heard = list(view.remotes.values())
    sigma = [view.host_party.sigma_m, *(math.nan if r.sigma_major_m is None else r.sigma_major_m for r in heard)]
    passes = fcw_gate(np.array(sigma, dtype=np.float64), view.thresholds).tolist()
    if not passes[0]:
        return []
    return list(itertools.compress(heard, passes[1:]))


class ForwardCollisionWarning:
    """FCW on board: the host against every vehicle heard in a BSM (``other``: its temporary id, hex, which
    the world resolves to an actor id)."""

    def evaluate(self, view: OnBoardView, t_s: float) -> list[Raised]:
        # FCW's accuracy gate (``forward_collision``'s) on the host and every sender: the background's BSMs,
        # accuracy unknown, are most of what a vehicle in traffic hears.
        gated = fcw_gated(view)
        if not gated:
            return []
        # Only those that could come into contact with the host within FCW's TTC (``may_touch``): the others
        # cannot raise a warning, and a vehicle in traffic hears hundreds of them at every delivery instant.
        horizon = min(view.thresholds["fcw_ttc_s"], view.thresholds["horizon_s"])
        near = may_touch(view.host_party, gated, t_s, horizon)
        remotes = [Participant.from_remote(r.temp_id.hex(), r, t_s) for r, ok in zip(gated, near, strict=True) if ok]
        # The core's kernels as they would run on the host and every gated remote (``v2x.core.kernel``: compiled
        # beyond SMALL_WORLD actors): the same code path as without the filter, not the interpreter's on the few
        # it keeps.
        with always_compiled() if 1 + len(gated) > SMALL_WORLD else contextlib.nullcontext():
            found = _following(view.host_party, remotes, view.thresholds)
        return [Raised("fcw", f.other, ttc_s=f.ttc_s, conflict_type=f.kind) for f in found]


class IntersectionCollisionWarning:
    """ICW on the platform: each party of a crossing conflict is warned about the other once its own time to
    the conflict point is within the ICW TTC (``icw_ttc_s``), with that time and the PET (0 when unknown). (Until
    session 20 both parties were warned as soon as the first was within it, the second with a time to the point
    beyond the threshold: a domain review.)"""

    def evaluate(self, view: EdgeView, t_s: float) -> list[Addressed]:
        if len(view.participants) < 2:
            return []
        out = []
        for f in intersection_collision(view.participants, view.thresholds):
            pet = 0.0 if math.isnan(f.pet_s) else f.pet_s
            for target, other, t_own in (
                (f.subject, f.other, f.t_conflict_subject_s),
                (f.other, f.subject, f.t_conflict_other_s),
            ):
                if not t_own <= view.thresholds["icw_ttc_s"]:
                    continue
                out.append(Addressed(target, Raised("icw", other, ttc_s=t_own, figure=pet, conflict_type=f.kind)))
        return out


APPS: tuple[AppSpec, ...] = (
    AppSpec(
        name="fcw",
        code=testbed_pb2.APP_FCW,
        title="forward collision warning",
        runs_on=RunsOn.VEHICLE,
        consumes=("bsm",),
        colour="#d62728",
        thresholds={
            # FCW: same lane ahead, TTC 3 s (Wanji OBU stack, VDS/src/GPSInterface/Common.c).
            "fcw_ttc_s": 3.0,
            # Position accuracy an app needs (T/CSAE 53 Day-1 table, read as the 95 % horizontal radius): a
            # party whose reported accuracy is worse is left out, so noise alone cannot raise a warning.
            "fcw_required_accuracy_m": 1.5,
        },
        onboard=lambda names: ForwardCollisionWarning(),
    ),
    AppSpec(
        name="icw",
        code=testbed_pb2.APP_ICW,
        title="intersection collision warning",
        runs_on=RunsOn.EDGE,
        consumes=("bsm", "rsm"),
        colour="#9467bd",
        figure=Figure("pet_s", "PET", "s"),
        thresholds={
            # ICW: TTC 5 s to the conflict point (Wanji OBU stack; public ICW write-up).
            "icw_ttc_s": 5.0,
            # ICW: both reach the conflict point within this many seconds of each other (SUMO SSM PET 2 s).
            # FCW and VRUCW use it too, as the conflict detection's PET bound.
            "icw_max_pet_s": 2.0,
            # Accuracy: T/CSAE 53 Day-1 table (see fcw_required_accuracy_m).
            "icw_required_accuracy_m": 5.0,
        },
        edge=IntersectionCollisionWarning,
    ),
)


# -- CFW: close-following warning ------------------------------------------------------------------------------
#
# The Wanji OBU stack (xuanxuanblingbling/OBU, BSM_Algorithm.c ``V2V_FCW_Section``) judges each remote vehicle
# ahead in the host's lane in turn: TTC under ``FCW_TTC_threshold_value`` (3 s) is FCW, of high priority; else a
# hard-braking remote is EBW; else a time headway THW under ``FCW_THW_threshold_value`` (1 s) is ``CVF_Warning``
# ("following too close", medium priority). Its THW (``FG_GetTHW``) is the bumper-to-bumper gap over the host's
# speed, and it judges nothing while the host is at or below ``isDanger_hv_speed_low``, 3 m/s
# (``IsDangerPossible``). CFW is that third branch, an app of its own beside FCW (ours: the reference's EBW branch
# is our EBW app, which a vehicle runs or not on its own).


def close_following(
    host: Participant, remotes: Sequence[Participant], thresholds: Mapping[str, float]
) -> list[tuple[Finding, float]]:
    """CFW: each remote ahead of the host on its path (FCW's selection: a rear-end conflict in which the host
    follows, ``fcw_rows``, found by the core's conflict detection) whose time headway, the gap between the host's
    front and the remote's rear over the host's speed, is at most ``cfw_thw_s`` (as FCW takes a TTC at most
    ``fcw_ttc_s``), while the host is faster than ``cfw_min_speed_mps`` and FCW does not warn of that remote (TTC
    within ``fcw_ttc_s``); with its headway. Parties that failed FCW's accuracy gate (``fcw_gate``) must be left
    out by the caller.

    The headway is the core's TTC of the host at its speed (its acceleration left out) against the remotes held
    where they are: the time it takes to cover the gap, on the same path as FCW's (the boxes' first contact
    along the host's heading, front meeting rear)."""
    thw = thresholds["cfw_thw_s"]
    speed = math.hypot(host.vx, host.vy)
    if not remotes or not thw > 0.0 or not speed > thresholds["cfw_min_speed_mps"]:
        return []
    # Only remotes whose centres the host's box could reach within the headway (``out_of_reach``: closing at
    # the host's speed, nobody accelerating) can be that close: one numpy pass over all of them.
    xy = np.array([(r.x, r.y, math.hypot(0.5 * r.length_m, 0.5 * r.width_m)) for r in remotes], dtype=np.float64)
    circ = math.hypot(0.5 * host.length_m, 0.5 * host.width_m) + xy[:, 2]
    gap = np.hypot(xy[:, 0] - host.x, xy[:, 1] - host.y)
    near = ~out_of_reach(gap, np.full(len(remotes), speed), np.zeros(len(remotes)), circ, thw)
    candidates = list(itertools.compress(remotes, near.tolist()))
    if not candidates:
        return []
    held = [replace(r, vx=0.0, vy=0.0, accel_mps2=0.0, vz_mps=0.0) for r in candidates]
    parties = [replace(host, accel_mps2=0.0), *held]
    found = _detect(parties, thw, thresholds["icw_max_pet_s"], 0)
    # FCW's verdict with the headway for its TTC: against remotes held still, the host's TTC is its headway.
    close = _findings(found, [p.key for p in parties], fcw_rows(found, 1, {"fcw_ttc_s": thw}))
    if not close:
        return []
    by_key = {r.key: r for r in candidates}
    fcw = {f.other for f in _following(host, [by_key[f.other] for f in close], thresholds)}
    return [(f, f.ttc_s) for f in close if f.other not in fcw]


class CloseFollowingWarning:
    """CFW on board: the host against every vehicle heard in a BSM, through FCW's accuracy gate (``fcw_gate``);
    ``close_following`` judges them (``other``: the remote's temporary id, hex)."""

    def evaluate(self, view: OnBoardView, t_s: float) -> list[Raised]:
        gated = fcw_gated(view)
        if not gated:
            return []
        remotes = [Participant.from_remote(r.temp_id.hex(), r, t_s) for r in gated]
        with always_compiled() if 1 + len(remotes) > SMALL_WORLD else contextlib.nullcontext():
            found = close_following(view.host_party, remotes, view.thresholds)
        return [Raised("cfw", f.other, figure=thw, conflict_type=f.kind) for f, thw in found]


CFW = AppSpec(
    name="cfw",
    code=testbed_pb2.APP_CFW,
    title="close-following warning",
    runs_on=RunsOn.VEHICLE,
    consumes=("bsm",),
    colour="#fdae6b",
    # The reference's medium priority, below FCW's high one: an advisory, which the built-in driver does not brake
    # for (a warning's reaction, braking to a stop, is no remedy for a short headway).
    severity=testbed_pb2.SEVERITY_ADVISORY,
    figure=Figure("headway_s", "time headway", "s"),
    thresholds={
        # CFW: time headway (bumper gap / host speed) under 1 s (Wanji OBU stack: FCW_THW_threshold_value, set
        # in InitV2VParameter, Common.c, beside FCW's 3 s TTC; V2V_FCW_Section raises it as its own
        # close-following warning, CVF_Warning, when FCW does not warn).
        "cfw_thw_s": 1.0,
        # The host must be faster than this: the Wanji OBU stack judges no V2V danger at or below 3 m/s
        # (isDanger_hv_speed_low, IsDangerPossible), which keeps queues and creeping traffic quiet.
        "cfw_min_speed_mps": 3.0,
    },
    # The headway is the core's prediction horizon here: a tighter bound than the unit rule's 3600 s.
    threshold_bounds={"cfw_thw_s": Bounds(0.0, 10.0)},
    onboard=lambda names: CloseFollowingWarning(),
)

APPS = (*APPS, CFW)
