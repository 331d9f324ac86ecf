"""Conflict detection: TTC (oriented boxes, CV / CA), PET at crossing paths, DRAC.

Formulas are documented in docs/CORE.md; the names below follow it. Per-actor motion is computed here
with numpy; the broad phase (swept boxes in a cell hash) and the per-pair narrow phase are compiled
kernels in ``_kernels``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from v2x.core._grid import SpatialGrid
from v2x.core._jit import kernel
from v2x.core._kernels import (
    conflict_arrays,
    conflict_order,
    conflicts_of_pairs,
    conflicts_swept,
    motion_kernel,
    pairs_kept,
)
from v2x.core._world import WorldState

__all__ = [
    "COS_HEAD_ON",
    "COS_SAME_DIRECTION",
    "SPEED_EPS_MPS",
    "VERTICAL_SEPARATION_M",
    "ConflictType",
    "Conflicts",
    "detect_conflicts",
    "max_reach_m",
    "overlapping_pairs",
]

F64 = NDArray[np.float64]
IntP = NDArray[np.intp]

_BOX_MARGIN_M = 1e-3  # swept boxes are padded by this (>> the 1e-6 m contact tolerance)
_TABLE_COLS = 10  # columns of the kernels' result table (see ``_kernels._put``)
# From this many result rows on (in a world not much larger), the rows are ordered by two counting sorts
# (``conflict_order``); below it, numpy's stable argsort (same order, no kernel to compile for small worlds).
_COUNTING_SORT_ROWS = 4096
#: ``detect_conflicts(touch_within_s=...)``'s allowance for rounding (m): far more than the contact tolerance
#: (1e-6 m) and a standing actor's speed (below SPEED_EPS_MPS it counts as 0) over any horizon.
TOUCH_SLACK_M = 0.5
SPEED_EPS_MPS = 1e-6  # below this an actor counts as standing; its box heading gives the direction
# Classification bands on the angle between the two directions of travel:
#   < 30 deg same direction (REAR_END or LATERAL), > 150 deg HEAD_ON, otherwise CROSSING.
COS_SAME_DIRECTION = math.cos(math.radians(30.0))
COS_HEAD_ON = -COS_SAME_DIRECTION
# Road users whose heights (``WorldState.z``, the road surface under each) differ by more than this are on
# different levels - a flyover and the road under it, two decks of a stacked interchange - and are never in
# conflict or in contact, whatever their footprints do. 4 m (ours): above the height of any vehicle the
# testbed models (a bus: 3.2 m) and below the height between a road and a deck over it (the clearance of
# China's urban road code, CJJ 37: 4.5 m over lanes for all motor vehicles, 3.5 m over lanes for cars only,
# plus the deck's own depth). A height that is unknown (nan: a BSM whose elevation is unavailable) keeps
# nobody apart.
VERTICAL_SEPARATION_M = 4.0


class ConflictType(IntEnum):
    REAR_END = 1
    CROSSING = 2
    HEAD_ON = 3
    LATERAL = 4


@dataclass(frozen=True, eq=False)
class Conflicts:
    """Pairs in conflict, as equal-length arrays sorted by (i, j).

    For REAR_END, ``i`` is the follower (striking actor) and ``j`` the leader. ``ttc_s`` is inf when no
    collision is predicted within the horizon; ``pet_s`` is nan unless CROSSING (inf if one actor never
    reaches the conflict area); ``drac_mps2`` is 0 when not closing; ``t_conflict_*_s`` are the times
    for each centre to reach the crossing point of the two paths (nan if none or already past, inf if
    the actor stops first).
    """

    i: IntP
    j: IntP
    kind: NDArray[np.int64]
    ttc_s: F64
    pet_s: F64
    drac_mps2: F64
    t_conflict_i_s: F64
    t_conflict_j_s: F64
    overlapping: NDArray[np.bool_]
    distance_m: F64

    def __len__(self) -> int:
        return len(self.i)

    def _where(self, keep: NDArray[np.bool_]) -> Conflicts:
        """The rows where ``keep`` is true, in the same order."""
        return Conflicts(*(getattr(self, f)[keep] for f in Conflicts.__dataclass_fields__))

    @staticmethod
    def empty() -> Conflicts:
        zi = np.zeros(0, dtype=np.intp)
        zf = np.zeros(0, dtype=np.float64)
        return Conflicts(
            zi,
            zi.copy(),
            np.zeros(0, np.int64),
            zf,
            zf.copy(),
            zf.copy(),
            zf.copy(),
            zf.copy(),
            np.zeros(0, np.bool_),
            zf.copy(),
        )


# -- per-actor motion -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Motion:
    """Straight-line motion along direction (dx, dy): path length L(t) = s*tau + a*tau^2/2, tau=min(t,ts)."""

    s: F64  # speed
    dx: F64
    dy: F64
    a: F64  # longitudinal acceleration (0 under CV)
    ts: F64  # stop time (inf if it never stops)
    hl: F64  # half length
    hw: F64  # half width
    cos_h: F64  # box axis
    sin_h: F64
    reach: F64  # path length covered within the horizon + circumradius


def _path_length(s: F64, a: F64, ts: F64, t: F64) -> F64:
    tau = np.minimum(t, ts)
    return s * tau + 0.5 * a * tau * tau


def _motion(world: WorldState, slots: IntP, model: str, horizon_s: float) -> _Motion:
    vx = world.vx[slots]
    vy = world.vy[slots]
    h = world.heading_rad[slots]
    s = np.hypot(vx, vy)
    moving = s > SPEED_EPS_MPS
    cos_h = np.cos(h)
    sin_h = np.sin(h)
    with np.errstate(divide="ignore", invalid="ignore"):
        dx = np.where(moving, vx / s, cos_h)
        dy = np.where(moving, vy / s, sin_h)
    s = np.where(moving, s, 0.0)
    a = world.ax[slots] * dx + world.ay[slots] * dy if model == "ca" else np.zeros_like(s)
    with np.errstate(divide="ignore", invalid="ignore"):
        ts = np.where(a < 0.0, s / -a, np.inf)
    hl = 0.5 * world.length_m[slots]
    hw = 0.5 * world.width_m[slots]
    travel = _path_length(s, a, ts, np.full_like(s, horizon_s))
    reach = np.maximum(travel, 0.0) + np.hypot(hl, hw)
    return _Motion(s, dx, dy, a, ts, hl, hw, cos_h, sin_h, reach)


def _take(m: _Motion, idx: IntP) -> _Motion:
    return _Motion(*(getattr(m, f)[idx] for f in _Motion.__dataclass_fields__))


# -- separating-axis machinery --------------------------------------------------------------------


@dataclass(frozen=True)
class _Axes:
    """The four box axes of a pair and, per axis, the projections needed by the SAT."""

    ux: tuple[F64, F64, F64, F64]
    uy: tuple[F64, F64, F64, F64]
    rho: tuple[F64, F64, F64, F64]  # sum of the two boxes' projected half extents


def _axes(mi: _Motion, mj: _Motion) -> _Axes:
    c = np.abs(mi.cos_h * mj.cos_h + mi.sin_h * mj.sin_h)  # |cos(h_j - h_i)|
    s = np.abs(mi.cos_h * mj.sin_h - mi.sin_h * mj.cos_h)  # |sin(h_j - h_i)|
    rho = (
        mi.hl + mj.hl * c + mj.hw * s,  # along e_i
        mi.hw + mj.hl * s + mj.hw * c,  # along n_i
        mj.hl + mi.hl * c + mi.hw * s,  # along e_j
        mj.hw + mi.hl * s + mi.hw * c,  # along n_j
    )
    ux = (mi.cos_h, -mi.sin_h, mj.cos_h, -mj.sin_h)
    uy = (mi.sin_h, mi.cos_h, mj.sin_h, mj.cos_h)
    return _Axes(ux, uy, rho)


def _separation(cx: F64, cy: F64, ax: _Axes) -> F64:
    """max over axes of (|projected centre offset| - rho): <= 0 iff the boxes overlap (touching counts)."""
    sep = np.abs(cx * ax.ux[0] + cy * ax.uy[0]) - ax.rho[0]
    for k in range(1, 4):
        np.maximum(sep, np.abs(cx * ax.ux[k] + cy * ax.uy[k]) - ax.rho[k], out=sep)
    return sep


def same_level(
    world: WorldState, i: IntP, j: IntP, t_i: F64 | None = None, t_j: F64 | None = None
) -> NDArray[np.bool_]:
    """For slot pairs: not kept apart by height, ``|z_i(t_i) - z_j(t_j)| <= VERTICAL_SEPARATION_M`` with each
    height carried on at its vertical speed to its time (``t_i``, ``t_j``: when the pair would meet; default
    now), or a height unknown. The one place the core separates levels: conflicts and overlaps both go
    through it."""
    zi = world.z[i] if t_i is None else world.z[i] + world.vz[i] * t_i
    zj = world.z[j] if t_j is None else world.z[j] + world.vz[j] * t_j
    return ~(np.abs(zi - zj) > VERTICAL_SEPARATION_M)


def _meeting_times(found: Conflicts, horizon_s: float) -> tuple[F64, F64]:
    """When each party of each conflict would be where they meet: at its own time to the crossing point
    for a CROSSING that has one, else at the TTC when it is finite, else now; within [0, horizon_s]."""
    cross = (
        (found.kind == ConflictType.CROSSING) & np.isfinite(found.t_conflict_i_s) & np.isfinite(found.t_conflict_j_s)
    )
    at_ttc = np.where(np.isfinite(found.ttc_s), found.ttc_s, 0.0)
    t_i = np.where(cross, found.t_conflict_i_s, at_ttc)
    t_j = np.where(cross, found.t_conflict_j_s, at_ttc)
    return np.clip(t_i, 0.0, horizon_s), np.clip(t_j, 0.0, horizon_s)


def boxes_overlap(world: WorldState, i: IntP, j: IntP) -> NDArray[np.bool_]:
    """Exact oriented-box intersection test for slot pairs, now."""
    mi = _box_only(world, i)
    mj = _box_only(world, j)
    cx = world.x[j] - world.x[i]
    cy = world.y[j] - world.y[i]
    return _separation(cx, cy, _axes(mi, mj)) <= 0.0


def _box_only(world: WorldState, slots: IntP) -> _Motion:
    h = world.heading_rad[slots]
    z = np.zeros(len(slots))
    hl = 0.5 * world.length_m[slots]
    hw = 0.5 * world.width_m[slots]
    return _Motion(z, z, z, z, z, hl, hw, np.cos(h), np.sin(h), np.hypot(hl, hw))


# -- public API -----------------------------------------------------------------------------------


def max_reach_m(world: WorldState, horizon_s: float, model: Literal["cv", "ca"] = "ca") -> float:
    """Largest per-actor reach (path length within the horizon plus circumradius) over active actors."""
    slots = world.active_slots()
    if len(slots) == 0:
        return 0.0
    return float(_motion(world, slots, model, horizon_s).reach.max())


def detect_conflicts(
    world: WorldState,
    *,
    horizon_s: float = 5.0,
    model: Literal["cv", "ca"] = "ca",
    grid: SpatialGrid | None = None,
    pairs: tuple[IntP, IntP] | None = None,
    max_pet_s: float = 2.0,
    touch_within_s: float | None = None,
) -> Conflicts:
    """Pairs of active actors in conflict within ``horizon_s``.

    With ``pairs`` given, exactly those directed (i, j) pairs are evaluated (the output may swap a
    pair so that ``i`` is the follower of a REAR_END). Otherwise every pair whose swept boxes (each
    footprint swept along its path over the horizon) overlap is a candidate (i < j); ``grid`` is
    accepted for compatibility and not needed. A pair is returned if its TTC is within the horizon, or
    it is a CROSSING where both centres reach the crossing point within the horizon and PET <=
    max_pet_s, or the footprints overlap now, and the two are on the same level where they would meet
    (``same_level``: heights, carried on at their vertical speeds to each one's time to the crossing point,
    else to the TTC, at most ``VERTICAL_SEPARATION_M`` apart). Sorted by (i, j).

    ``touch_within_s`` (with ``pairs`` only): evaluate only the pairs whose boxes could touch within that many
    seconds (``pairs_kept``, a bound on the same motion, one compiled pass; it drops only pairs that
    provably cannot), for a caller that wants only conflicts with a TTC at most that (FCW): each pair is
    evaluated on its own, so what is reported of the others is what it would be without it.
    """
    if model not in ("cv", "ca"):
        raise ValueError(f"model must be 'cv' or 'ca', got {model!r}")
    if not horizon_s > 0:
        raise ValueError("horizon_s must be positive")
    if touch_within_s is not None and pairs is None:
        raise ValueError("touch_within_s needs pairs")
    del grid  # the swept-box broad phase builds its own cell hash
    cap = world.capacity
    # Per-actor motion, indexed by slot (inactive slots hold garbage and are never gathered).
    hi = world.high_water
    circ = np.hypot(0.5 * world.length_m[:hi], 0.5 * world.width_m[:hi])
    ch = np.cos(world.heading_rad[:hi])
    sh = np.sin(world.heading_rad[:hi])
    speed = np.hypot(world.vx[:hi], world.vy[:hi])
    n = world.n_active
    s, dx, dy, a, ts, hl, hw, reach = kernel(motion_kernel, n)(
        world.vx[:hi], world.vy[:hi], world.ax[:hi], world.ay[:hi], world.length_m[:hi], world.width_m[:hi],
        speed, ch, sh, circ, model == "ca", float(horizon_s), SPEED_EPS_MPS,
    )  # fmt: skip
    motion = (world.x, world.y, s, dx, dy, a, ts, hl, hw, ch, sh, reach, circ)
    consts = (float(horizon_s), float(max_pet_s), COS_SAME_DIRECTION, COS_HEAD_ON)
    if pairs is not None:
        pi = np.asarray(pairs[0], dtype=np.intp)
        pj = np.asarray(pairs[1], dtype=np.intp)
        if pi.shape != pj.shape:
            raise ValueError("pairs arrays differ in length")
        pi, pj = pi.ravel(), pj.ravel()
        # The pairs of two distinct active actors (and with ``touch_within_s`` only those that could touch within
        # it), in their order, in one compiled pass.
        if len(pi) == 0:
            return Conflicts.empty()
        touch = touch_within_s is not None
        acc = np.hypot(world.ax[:hi], world.ay[:hi]) if touch else circ  # (not read without touch_within_s)
        oi, oj = np.empty(len(pi), dtype=np.intp), np.empty(len(pi), dtype=np.intp)
        kept = int(
            kernel(pairs_kept, n)(
                pi, pj, hi, world.active, touch, world.x, world.y, world.vx, world.vy, acc, circ,
                float(touch_within_s or 0.0), TOUCH_SLACK_M, oi, oj,
            )
        )  # fmt: skip
        pi, pj = oi[:kept], oj[:kept]
        if kept == 0:
            return Conflicts.empty()
        table = np.empty((len(pi), _TABLE_COLS))  # at most one row per pair
        rows = int(kernel(conflicts_of_pairs, n)(pi, pj, *motion, *consts, table))
    else:
        slots = world.active_slots()
        if len(slots) < 2:
            return Conflicts.empty()
        max_cells = max(1 << 16, 16 * len(slots))
        # Room for 2 rows per actor (the benchmark's dense urban traffic reports ~1); if that is too
        # little, the kernel still counts the rows and the same evaluation runs again with room for all.
        table = np.empty((max(64, 2 * len(slots)), _TABLE_COLS))
        rows = int(kernel(conflicts_swept, n)(slots, max_cells, _BOX_MARGIN_M, *motion, *consts, table)[0])
        if rows > len(table):
            table = np.empty((rows, _TABLE_COLS))
            kernel(conflicts_swept, n)(slots, max_cells, _BOX_MARGIN_M, *motion, *consts, table)
    if rows >= _COUNTING_SORT_ROWS and cap <= 4 * rows + 4096:
        order = kernel(conflict_order, n)(table, rows, cap)
    else:  # few rows (or few for the world): numpy's stable sort of i * capacity + j, the same order
        key = table[:rows, 0].astype(np.int64) * cap + table[:rows, 1].astype(np.int64)
        order = np.argsort(key, kind="stable").astype(np.intp)
    found = Conflicts(*kernel(conflict_arrays, n)(table, order))
    level = same_level(world, found.i, found.j, *_meeting_times(found, float(horizon_s)))
    return found if level.all() else found._where(level)


def overlapping_pairs(world: WorldState, grid: SpatialGrid | None = None) -> tuple[IntP, IntP]:
    """Unordered slot pairs (i < j) whose oriented-box footprints intersect now (touching counts), on the same
    level (``same_level``)."""
    slots = world.active_slots()
    if len(slots) < 2:
        z = np.zeros(0, dtype=np.intp)
        return z, z.copy()
    radius = 2.0 * float(np.hypot(world.length_m[slots], world.width_m[slots]).max()) / 2.0
    if grid is None:
        grid = SpatialGrid.build(world, max(radius, 1.0))
    pi, pj = grid.pairs_within(radius)
    hit = boxes_overlap(world, pi, pj) & same_level(world, pi, pj)
    pi, pj = pi[hit], pj[hit]
    order = np.argsort(pi.astype(np.int64) * world.capacity + pj, kind="stable")
    return pi[order], pj[order]
