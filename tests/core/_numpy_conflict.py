"""Reference: the vectorised numpy conflict detection that preceded the compiled kernels.

Kept verbatim (broad phase: all pairs within twice the largest reach on a SpatialGrid) as an independent
oracle: tests check that ``v2x.core.detect_conflicts`` reports the same pairs with the same values.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from v2x.core import Conflicts, ConflictType, SpatialGrid, WorldState, default_cell_m

__all__ = ["detect_conflicts_numpy"]

F64 = NDArray[np.float64]
IntP = NDArray[np.intp]

PREFILTER_STEPS = 5  # sub-intervals of the horizon in the conservative CA pre-filter
SPEED_EPS_MPS = 1e-6  # below this an actor counts as standing; its box heading gives the direction
CONTACT_TOL_M = 1e-6  # slack in the separating-axis test when checking candidate contact times
# Classification bands on the angle between the two directions of travel:
#   < 30 deg same direction (REAR_END or LATERAL), > 150 deg HEAD_ON, otherwise CROSSING.
COS_SAME_DIRECTION = math.cos(math.radians(30.0))
COS_HEAD_ON = -COS_SAME_DIRECTION


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


def _time_to_path_length(s: F64, a: F64, ts: F64, dist: F64) -> F64:
    """First time with L(t) = dist (dist >= 0); inf if never reached."""
    with np.errstate(divide="ignore", invalid="ignore"):
        disc = s * s + 2.0 * a * dist
        t = 2.0 * dist / (s + np.sqrt(np.maximum(disc, 0.0)))
        t = np.where(disc < 0.0, np.inf, t)
        lmax = np.where(np.isfinite(ts), s * ts + 0.5 * a * ts * ts, np.inf)
        t = np.where(dist > lmax + 1e-12, np.inf, t)
        t = np.where(dist <= 0.0, 0.0, t)
        return np.where(np.isnan(t), np.inf, t)


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


def _ttc(mi: _Motion, mj: _Motion, cx: F64, cy: F64, ax: _Axes, horizon_s: float) -> F64:
    """Earliest t in [0, horizon] at which the boxes overlap, inf if none.

    Relative centre offset r(t) = c + d_j L_j(t) - d_i L_i(t) is piecewise quadratic (breakpoints at the
    stop times). The first overlap time is 0 or a time when some axis projection |u.r(t)| reaches
    rho_u; all such roots are candidates and the SAT is checked at each.
    """
    p = len(cx)
    hz = np.full(p, horizon_s)
    t1 = np.minimum(np.minimum(mi.ts, mj.ts), hz)
    t2 = np.minimum(np.maximum(mi.ts, mj.ts), hz)
    bounds = ((np.zeros(p), t1), (t1, t2), (t2, hz))
    lmax_i = _path_length(mi.s, mi.a, mi.ts, hz)
    lmax_j = _path_length(mj.s, mj.a, mj.ts, hz)
    cands: list[F64] = [np.zeros(p)]
    for k in range(4):
        ux, uy, rho = ax.ux[k], ax.uy[k], ax.rho[k]
        cu = cx * ux + cy * uy
        diu = mi.dx * ux + mi.dy * uy
        dju = mj.dx * ux + mj.dy * uy
        for lo, hi in bounds:
            mov_i = mi.ts >= hi
            mov_j = mj.ts >= hi
            a0 = cu + np.where(mov_j, 0.0, dju * lmax_j) - np.where(mov_i, 0.0, diu * lmax_i)
            b = np.where(mov_j, dju * mj.s, 0.0) - np.where(mov_i, diu * mi.s, 0.0)
            c2 = 0.5 * (np.where(mov_j, dju * mj.a, 0.0) - np.where(mov_i, diu * mi.a, 0.0))
            for sign in (1.0, -1.0):
                c0 = a0 - sign * rho
                for root in _quadratic_roots(c2, b, c0):
                    ok = (root >= lo - 1e-9) & (root <= hi + 1e-9)
                    cands.append(np.where(ok, np.clip(root, lo, hi), np.inf))
    times = np.stack(cands, axis=1)  # (p, m); most entries are inf (root outside its piece)
    pair, col = np.nonzero(np.isfinite(times))  # evaluate only the real candidates
    t_eval = times[pair, col]
    li = _path_length(mi.s[pair], mi.a[pair], mi.ts[pair], t_eval)
    lj = _path_length(mj.s[pair], mj.a[pair], mj.ts[pair], t_eval)
    rx = cx[pair] + mj.dx[pair] * lj - mi.dx[pair] * li
    ry = cy[pair] + mj.dy[pair] * lj - mi.dy[pair] * li
    sep = _separation(rx, ry, _take_axes(ax, pair))
    hit = sep <= CONTACT_TOL_M
    result: F64 = np.full(p, np.inf)
    np.minimum.at(result, pair[hit], t_eval[hit])
    return result


def _quadratic_roots(c2: F64, c1: F64, c0: F64) -> tuple[F64, F64]:
    """Real roots of c2 t^2 + c1 t + c0 = 0 (nan where absent); linear when c2 == 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        disc = c1 * c1 - 4.0 * c2 * c0
        sq = np.sqrt(np.where(disc >= 0.0, disc, np.nan))
        q = -0.5 * (c1 + np.where(c1 >= 0.0, sq, -sq))
        quad = c2 != 0.0
        r1 = np.where(quad, q / c2, -c0 / c1)
        r2 = np.where(quad, c0 / q, np.nan)
    return r1, r2


# -- public API -----------------------------------------------------------------------------------


def max_reach_m(world: WorldState, horizon_s: float, model: Literal["cv", "ca"] = "ca") -> float:
    """Largest per-actor reach (path length within the horizon plus circumradius) over active actors."""
    slots = world.active_slots()
    if len(slots) == 0:
        return 0.0
    return float(_motion(world, slots, model, horizon_s).reach.max())


def _candidate_pairs(
    world: WorldState, motion_all: _Motion, slots: IntP, grid: SpatialGrid | None
) -> tuple[IntP, IntP]:
    if len(slots) < 2:
        z = np.zeros(0, dtype=np.intp)
        return z, z.copy()
    radius = 2.0 * float(motion_all.reach[slots].max())
    if grid is None:
        grid = SpatialGrid.build(world, default_cell_m(radius))
    return grid.pairs_within(radius)


def detect_conflicts_numpy(
    world: WorldState,
    *,
    horizon_s: float = 5.0,
    model: Literal["cv", "ca"] = "ca",
    grid: SpatialGrid | None = None,
    pairs: tuple[IntP, IntP] | None = None,
    max_pet_s: float = 2.0,
) -> Conflicts:
    """Pairs of active actors in conflict within ``horizon_s``.

    With ``pairs`` given, exactly those directed (i, j) pairs are evaluated (the output may swap a
    pair so that ``i`` is the follower of a REAR_END). Otherwise candidates come from the grid within
    twice the largest reach (path length over the horizon plus circumradius) and are pruned per pair.
    A pair is returned if its TTC is within the horizon, or it is a CROSSING where both centres reach
    the crossing point within the horizon and PET <= max_pet_s, or the footprints overlap now.
    """
    if model not in ("cv", "ca"):
        raise ValueError(f"model must be 'cv' or 'ca', got {model!r}")
    if not horizon_s > 0:
        raise ValueError("horizon_s must be positive")
    slots = world.active_slots()
    cap = world.capacity
    # Per-actor motion, indexed by slot (inactive slots hold garbage and are never gathered).
    motion_all = _motion(world, np.arange(world.high_water, dtype=np.intp), model, horizon_s)
    if pairs is None:
        pi, pj = _candidate_pairs(world, motion_all, slots, grid)
    else:
        pi = np.asarray(pairs[0], dtype=np.intp)
        pj = np.asarray(pairs[1], dtype=np.intp)
        if pi.shape != pj.shape:
            raise ValueError("pairs arrays differ in length")
        ok = (pi != pj) & (pi >= 0) & (pj >= 0) & (pi < world.high_water) & (pj < world.high_water)
        ok[ok] = world.active[pi[ok]] & world.active[pj[ok]]
        pi, pj = pi[ok], pj[ok]
    if len(pi) == 0:
        return Conflicts.empty()

    # --- broad per-pair pruning (cheap, conservative) ---
    cx = world.x[pj] - world.x[pi]
    cy = world.y[pj] - world.y[pi]
    dist = np.hypot(cx, cy)
    keep = dist <= motion_all.reach[pi] + motion_all.reach[pj]
    pi, pj, cx, cy, dist = pi[keep], pj[keep], cx[keep], cy[keep], dist[keep]
    mi = _take(motion_all, pi)
    mj = _take(motion_all, pj)
    vx = mj.dx * mj.s - mi.dx * mi.s
    vy = mj.dy * mj.s - mi.dy * mi.s
    v2 = vx * vx + vy * vy
    ri = np.hypot(mi.hl, mi.hw)
    rj = np.hypot(mj.hl, mj.hw)
    # Conservative: under CA each path length deviates from CV by at most |a| t^2 / 2, so on each
    # sub-interval [t0, t1] the circumcircles can only meet if the CV closest approach there is
    # within ri + rj + (|a_i| + |a_j|) t1^2 / 2.
    with np.errstate(divide="ignore", invalid="ignore"):
        t_free = np.where(v2 > 0.0, -(cx * vx + cy * vy) / v2, 0.0)
    acc = 0.5 * (np.abs(mi.a) + np.abs(mj.a))
    may_collide = np.zeros(len(pi), dtype=np.bool_)
    edges = np.linspace(0.0, horizon_s, PREFILTER_STEPS + 1) if model == "ca" else np.array([0.0, horizon_s])
    for t0, t1 in itertools.pairwise(edges):
        tstar = np.clip(t_free, t0, t1)
        dmin = np.hypot(cx + vx * tstar, cy + vy * tstar)
        may_collide |= dmin <= ri + rj + acc * (t1 * t1)

    cos_d = mi.dx * mj.dx + mi.dy * mj.dy
    cross_d = mi.dx * mj.dy - mi.dy * mj.dx  # sin of the angle from d_i to d_j
    crossing = (cos_d < COS_SAME_DIRECTION) & (cos_d > COS_HEAD_ON)
    with np.errstate(divide="ignore", invalid="ignore"):
        a_i = (cx * mj.dy - cy * mj.dx) / cross_d  # path distance of i to the crossing point
        a_j = (cx * mi.dy - cy * mi.dx) / cross_d
    a_i = np.where(crossing, a_i, np.nan)
    a_j = np.where(crossing, a_j, np.nan)
    travel_i = mi.reach - ri
    travel_j = mj.reach - rj
    may_cross = crossing & (a_i >= 0) & (a_j >= 0) & (a_i <= travel_i) & (a_j <= travel_j)

    sel = np.flatnonzero(may_collide | may_cross)
    if len(sel) == 0:
        return Conflicts.empty()
    pi, pj, cx, cy, dist = pi[sel], pj[sel], cx[sel], cy[sel], dist[sel]
    mi, mj = _take(mi, sel), _take(mj, sel)
    may_collide, crossing, cos_d = may_collide[sel], crossing[sel], cos_d[sel]
    cross_d, a_i, a_j = cross_d[sel], a_i[sel], a_j[sel]
    n = len(sel)

    # --- narrow phase: TTC with oriented boxes ---
    axes = _axes(mi, mj)
    sep0 = _separation(cx, cy, axes)
    overlapping = sep0 <= 0.0
    ttc = np.full(n, np.inf)
    idx = np.flatnonzero(may_collide & ~overlapping)
    if len(idx):
        ttc[idx] = _ttc(_take(mi, idx), _take(mj, idx), cx[idx], cy[idx], _take_axes(axes, idx), horizon_s)
    ttc[overlapping] = 0.0

    # --- crossing: times to the conflict point and area, PET ---
    sin_abs = np.abs(cross_d)
    cos_abs = np.abs(cos_d)
    with np.errstate(divide="ignore", invalid="ignore"):
        h_i = (mj.hw + mi.hw * cos_abs) / sin_abs  # half extent of the conflict area along path i
        h_j = (mi.hw + mj.hw * cos_abs) / sin_abs
    t_ci = np.where(a_i >= 0, _time_to_path_length(mi.s, mi.a, mi.ts, np.where(a_i >= 0, a_i, 0.0)), np.nan)
    t_cj = np.where(a_j >= 0, _time_to_path_length(mj.s, mj.a, mj.ts, np.where(a_j >= 0, a_j, 0.0)), np.nan)
    t_ci = np.where(crossing, t_ci, np.nan)
    t_cj = np.where(crossing, t_cj, np.nan)
    zero = np.zeros(n)
    safe_ai = np.where(crossing, a_i, 0.0)
    safe_aj = np.where(crossing, a_j, 0.0)
    in_i = _time_to_path_length(mi.s, mi.a, mi.ts, np.maximum(safe_ai - h_i - mi.hl, zero))
    out_i = _time_to_path_length(mi.s, mi.a, mi.ts, np.maximum(safe_ai + h_i + mi.hl, zero))
    in_j = _time_to_path_length(mj.s, mj.a, mj.ts, np.maximum(safe_aj - h_j - mj.hl, zero))
    out_j = _time_to_path_length(mj.s, mj.a, mj.ts, np.maximum(safe_aj + h_j + mj.hl, zero))
    i_first = (in_i < in_j) | ((in_i == in_j) & (out_i <= out_j))
    exit_first = np.where(i_first, out_i, out_j)
    enter_second = np.where(i_first, in_j, in_i)
    with np.errstate(invalid="ignore"):
        pet_raw = enter_second - exit_first  # inf - inf -> nan handled below
    pet = np.where(np.isnan(pet_raw), 0.0, np.maximum(pet_raw, 0.0))
    pet = np.where(np.isinf(enter_second), np.inf, pet)
    pet = np.where(crossing, pet, np.nan)
    pet_conflict = crossing & (t_ci >= 0) & (t_ci <= horizon_s) & (t_cj >= 0) & (t_cj <= horizon_s) & (pet <= max_pet_s)

    # --- classification ---
    kind = np.where(crossing, int(ConflictType.CROSSING), int(ConflictType.HEAD_ON)).astype(np.int64)
    same = cos_d >= COS_SAME_DIRECTION
    # Relative offset at contact (or now): which faces meet decides REAR_END vs LATERAL.
    t_ref = np.where(np.isfinite(ttc), ttc, 0.0)
    li = _path_length(mi.s, mi.a, mi.ts, t_ref)
    lj = _path_length(mj.s, mj.a, mj.ts, t_ref)
    rx = cx + mj.dx * lj - mi.dx * li
    ry = cy + mj.dy * lj - mi.dy * li
    mx = mi.dx + mj.dx
    my = mi.dy + mj.dy
    mn = np.hypot(mx, my)
    with np.errstate(divide="ignore", invalid="ignore"):
        mx, my = mx / mn, my / mn
    lon = rx * mx + ry * my
    lat = -rx * my + ry * mx
    rear = np.abs(lon) / (mi.hl + mj.hl) >= np.abs(lat) / (mi.hw + mj.hw)
    kind = np.where(same & rear, int(ConflictType.REAR_END), kind)
    kind = np.where(same & ~rear, int(ConflictType.LATERAL), kind)
    swap = same & rear & (lon < 0)  # j is behind i: make i the follower

    # --- DRAC ---
    drac = _drac_contact(mi, mj, cx, cy, axes, ttc, overlapping)
    cross_drac = _drac_crossing(
        np.where(i_first, mj.s, mi.s),
        np.where(i_first, safe_aj - h_j - mj.hl, safe_ai - h_i - mi.hl),
        exit_first,
        enter_second,
    )
    drac = np.where(crossing, cross_drac, drac)

    report = np.isfinite(ttc) | pet_conflict | overlapping
    r = np.flatnonzero(report)
    oi = np.where(swap, pj, pi)[r]
    oj = np.where(swap, pi, pj)[r]
    tci = np.where(swap, t_cj, t_ci)[r]
    tcj = np.where(swap, t_ci, t_cj)[r]
    order = np.argsort(oi.astype(np.int64) * cap + oj, kind="stable")
    return Conflicts(
        i=oi[order],
        j=oj[order],
        kind=kind[r][order],
        ttc_s=ttc[r][order],
        pet_s=pet[r][order],
        drac_mps2=drac[r][order],
        t_conflict_i_s=tci[order],
        t_conflict_j_s=tcj[order],
        overlapping=overlapping[r][order],
        distance_m=dist[r][order],
    )


def _take_axes(ax: _Axes, idx: IntP) -> _Axes:
    return _Axes(
        tuple(u[idx] for u in ax.ux),  # type: ignore[arg-type]
        tuple(u[idx] for u in ax.uy),  # type: ignore[arg-type]
        tuple(r[idx] for r in ax.rho),  # type: ignore[arg-type]
    )


def _drac_contact(
    mi: _Motion, mj: _Motion, cx: F64, cy: F64, ax: _Axes, ttc: F64, overlapping: NDArray[np.bool_]
) -> F64:
    """v_c^2 / (2 gap) on the contact axis: the SAT axis whose gap is largest now (for overlapping
    pairs: the axis of least penetration). v_c is the closing speed along it at current speeds."""
    vx = mj.dx * mj.s - mi.dx * mi.s
    vy = mj.dy * mj.s - mi.dy * mi.s
    n = len(cx)
    best_gap = np.full(n, -np.inf)
    best_vc = np.zeros(n)
    for k in range(4):
        cu = cx * ax.ux[k] + cy * ax.uy[k]
        gap = np.abs(cu) - ax.rho[k]
        vu = vx * ax.ux[k] + vy * ax.uy[k]
        vc = -np.sign(cu) * vu
        better = gap > best_gap
        best_gap = np.where(better, gap, best_gap)
        best_vc = np.where(better, vc, best_vc)
    closing = (best_vc > 0) & (np.isfinite(ttc) | overlapping)
    with np.errstate(divide="ignore", invalid="ignore"):
        drac = np.where(best_gap > 0, best_vc * best_vc / (2.0 * best_gap), np.inf)
    return np.where(closing, drac, 0.0)


def _drac_crossing(s2: F64, dist2: F64, exit_first: F64, enter_second: F64) -> F64:
    """Deceleration for the second actor (speed s2, dist2 to the conflict area) to enter no earlier
    than the first leaves: 2 (s2 T - D) / T^2, or s2^2 / (2 D) if it has to stop. 0 if PET >= 0."""
    t_exit = exit_first
    with np.errstate(divide="ignore", invalid="ignore"):
        arrive_late = 2.0 * (s2 * t_exit - dist2) / (t_exit * t_exit)
        stop = s2 * s2 / (2.0 * dist2)
        need_stop = ~np.isfinite(t_exit) | (arrive_late * t_exit > s2)
        drac = np.where(need_stop, stop, arrive_late)
        drac = np.where(dist2 <= 0.0, np.inf, drac)
    return np.where((enter_second >= exit_first) | (s2 <= 0.0), 0.0, np.maximum(drac, 0.0))


def overlapping_pairs(world: WorldState, grid: SpatialGrid | None = None) -> tuple[IntP, IntP]:
    """Unordered slot pairs (i < j) whose oriented-box footprints intersect now (touching counts)."""
    slots = world.active_slots()
    if len(slots) < 2:
        z = np.zeros(0, dtype=np.intp)
        return z, z.copy()
    radius = 2.0 * float(np.hypot(world.length_m[slots], world.width_m[slots]).max()) / 2.0
    if grid is None:
        grid = SpatialGrid.build(world, max(radius, 1.0))
    pi, pj = grid.pairs_within(radius)
    hit = boxes_overlap(world, pi, pj)
    pi, pj = pi[hit], pj[hit]
    order = np.argsort(pi.astype(np.int64) * world.capacity + pj, kind="stable")
    return pi[order], pj[order]
