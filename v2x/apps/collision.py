"""Collision-warning applications (FCW on board, ICW on the edge/cloud platform) over the core's
conflict detection. Sans-I/O: remote states in, warnings out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from v2x.core import ActorKind, ConflictType, WorldState, detect_conflicts
from v2x.units import R95_PER_SIGMA
from v2x.wire.bsm import RemoteState

CONFLICT_NAME = {
    ConflictType.REAR_END: "rear-end",
    ConflictType.CROSSING: "crossing",
    ConflictType.HEAD_ON: "head-on",
    ConflictType.LATERAL: "lateral",
}


@dataclass(frozen=True)
class Participant:
    """A road user as an application sees it at time t (local frame, SI)."""

    key: str
    x: float
    y: float
    vx: float
    vy: float
    accel_mps2: float
    heading_rad: float
    length_m: float
    width_m: float
    sigma_m: float

    @staticmethod
    def from_remote(key: str, remote: RemoteState, t_s: float) -> Participant:
        x, y, vx, vy = remote.extrapolated(t_s)
        return Participant(
            key,
            x,
            y,
            vx,
            vy,
            remote.accel_mps2,
            remote.heading_rad,
            remote.length_m,
            remote.width_m,
            remote.sigma_major_m if remote.sigma_major_m is not None else float("inf"),
        )


def accurate_enough(p: Participant, required_r95_m: float) -> bool:
    """Is the party's reported position good enough for an app that needs ``required_r95_m``?"""
    return bool(np.isfinite(p.sigma_m)) and R95_PER_SIGMA * p.sigma_m <= required_r95_m


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
    slots = world.add_many([p.key for p in participants], ActorKind.CAR, arr[:, 8], arr[:, 9])
    world.set_state(
        slots, arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4], arr[:, 5], arr[:, 6], pos_sigma_m=arr[:, 7]
    )
    return world


def find_conflicts(
    participants: Sequence[Participant],
    *,
    horizon_s: float,
    max_pet_s: float,
    subject: str | None = None,
) -> list[Finding]:
    """Conflicts among ``participants``; with ``subject``, only those involving it (it as ``subject``)."""
    if len(participants) < 2:
        return []
    world = _world(participants)
    keys = [p.key for p in participants]
    if subject is not None:
        host = keys.index(subject)
        others = np.array([k for k in range(len(keys)) if k != host], dtype=np.intp)
        pairs = (np.full(len(others), host, dtype=np.intp), others)
        conflicts = detect_conflicts(world, horizon_s=horizon_s, pairs=pairs, max_pet_s=max_pet_s)
    else:
        conflicts = detect_conflicts(world, horizon_s=horizon_s, max_pet_s=max_pet_s)
    findings = []
    for k in range(len(conflicts)):
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


def forward_collision(
    host: Participant, remotes: Sequence[Participant], thresholds: Mapping[str, float]
) -> list[Finding]:
    """FCW: a rear-end conflict in which the host is the follower and TTC is below the threshold.
    Parties whose reported accuracy is worse than FCW needs are ignored (no warnings from noise)."""
    need = thresholds["fcw_required_accuracy_m"]
    if not accurate_enough(host, need):
        return []
    remotes = [r for r in remotes if accurate_enough(r, need)]
    found = find_conflicts(
        [host, *remotes], horizon_s=thresholds["horizon_s"], max_pet_s=thresholds["icw_max_pet_s"], subject=host.key
    )
    # The core orders a rear-end pair follower first: keep only those where the host is the follower.
    return [f for f in found if f.kind == "rear-end" and f.subject == host.key and f.ttc_s <= thresholds["fcw_ttc_s"]]


def intersection_collision(participants: Sequence[Participant], thresholds: Mapping[str, float]) -> list[Finding]:
    """ICW: crossing conflicts whose both parties reach the conflict point within the ICW TTC.
    Parties whose reported accuracy is worse than ICW needs are ignored."""
    participants = [p for p in participants if accurate_enough(p, thresholds["icw_required_accuracy_m"])]
    found = find_conflicts(participants, horizon_s=thresholds["horizon_s"], max_pet_s=thresholds["icw_max_pet_s"])
    out = []
    for f in found:
        if f.kind != "crossing":
            continue
        t_first = min(f.t_conflict_subject_s, f.t_conflict_other_s)
        if t_first <= thresholds["icw_ttc_s"]:
            out.append(f)
    return out
