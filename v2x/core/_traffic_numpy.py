"""The traffic step in plain numpy: the benchmark's baseline and the compiled step's test oracle.

Same model, same order of floating-point operations and same tie rules as ``_traffic_kernels``, written
as whole-array operations (``np.lexsort`` for the (lane, s) order, ``np.searchsorted`` on a complex
key for the target-lane search, a loop only over repeated junction crossings). The two agree bit for bit.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from v2x.core._traffic_kernels import _M1, _M2, B_MAX, GAMMA, K_LANE, NO_CHANGE_M

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
I8 = NDArray[np.int8]
B = NDArray[np.bool_]


def next_lane(i: I64, lane: I64, succ_begin: I64, succ_lane: I64) -> I64:
    """Vectorised ``_traffic_kernels.next_lane`` (``lane`` >= 0)."""
    b = succ_begin[lane]
    n = succ_begin[lane + 1] - b
    z = i.astype(np.uint64) * GAMMA + lane.astype(np.uint64) * K_LANE
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    z = z ^ (z >> np.uint64(31))
    pick = (((z >> np.uint64(32)) * n.astype(np.uint64)) >> np.uint64(32)).astype(np.int64)
    out = np.full(len(i), -1, dtype=np.int64)
    has = n > 0
    out[has] = succ_lane[b[has] + pick[has]]
    return out


def free_term(v: F64, inv_v0: F64) -> F64:
    r = v * inv_v0
    r2 = r * r
    out: F64 = 1.0 - r2 * r2
    return out


def desired_gap(v: F64, t_gap: F64, s0: F64, inv_den: F64, dv: F64) -> F64:
    out: F64 = s0 + np.maximum(v * t_gap + v * dv * inv_den, 0.0)
    return out


def acc_of(a: F64, free: F64, ss: F64, gap: F64) -> F64:
    q = ss / gap
    out: F64 = np.maximum(a * (free - q * q), -B_MAX)
    return out


def idm(v: F64, v0: F64, t_gap: F64, s0: F64, a: F64, b: F64, gap: F64, dv: F64) -> F64:
    """Vectorised IDM acceleration as the step computes it: δ = 4, clamped to ``-B_MAX`` (no leader: gap
    inf, dv 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_v0 = 1.0 / v0
        inv_den = 1.0 / (2.0 * np.sqrt(a * b))
    return acc_of(a, free_term(v, inv_v0), desired_gap(v, t_gap, s0, inv_den, dv), gap)


def line_gap(lane: I64, s: F64, v: F64, b_safe: F64, nl: I64, lane_len: F64, stop_s: F64, red: B) -> F64:
    out = np.full(len(lane), np.inf)
    sl = stop_s[lane]
    g = sl - s
    own = red[lane] & (s <= sl) & (v * v <= 2.0 * b_safe * g)
    out[own] = g[own]
    nxt = (nl >= 0) & ~own
    nxt[nxt] = red[nl[nxt]]
    g = np.full(len(lane), np.nan)
    g[nxt] = (lane_len[lane[nxt]] - s[nxt]) + stop_s[nl[nxt]]
    nxt &= v * v <= 2.0 * b_safe * g
    out[nxt] = g[nxt]
    return out


def traffic_step(
    lane_len: F64,
    inv_limit: F64,
    succ_begin: I64,
    succ_lane: I64,
    left: I64,
    right: I64,
    stop_s: F64,
    red: B,
    lane: I64,
    s: F64,
    v: F64,
    length: F64,
    inv_v0: F64,
    t_gap: F64,
    s0: F64,
    a: F64,
    inv_den: F64,
    politeness: F64,
    a_th: F64,
    b_safe: F64,
    order: I64,
    dt: float,
    tick: int,
    acc: F64,
    leader: I64,
    gap: F64,
    change: I8,
) -> None:
    """Same arguments and effects as ``_traffic_kernels.traffic_step``."""
    n = len(lane)
    n_lanes = len(lane_len)
    key = np.where(lane >= 0, lane, n_lanes)
    idx = np.arange(n, dtype=np.int64)
    order[:] = np.lexsort((idx, s, key))
    key_sorted = key[order]
    begin = np.searchsorted(key_sorted, np.arange(n_lanes + 2)).astype(np.int64)
    pos = np.empty(n, dtype=np.int64)
    pos[order] = idx
    m = int(begin[n_lanes])
    veh = order[:m]  # on the network, in (lane, s) order
    li = lane[veh]
    si = s[veh]
    vi = v[veh]

    # leaders
    ld = np.full(m, -1, dtype=np.int64)
    g = np.full(m, np.inf)
    same = np.zeros(m, dtype=bool)
    same[:-1] = key_sorted[1:m] == li[:-1]
    ld[:-1][same[:-1]] = veh[1:][same[:-1]]
    g[same] = s[ld[same]] - length[ld[same]] - si[same]
    nxt = next_lane(veh, li, succ_begin, succ_lane)
    cross = np.flatnonzero(~same)
    nl = nxt[cross]
    ok = nl >= 0
    ok[ok] = begin[nl[ok]] < begin[nl[ok] + 1]
    cross, nl = cross[ok], nl[ok]
    f = order[begin[nl]]
    ok = f != veh[cross]
    cross, nl, f = cross[ok], nl[ok], f[ok]
    ld[cross] = f
    g[cross] = (lane_len[li[cross]] - si[cross]) + s[f] - length[f]
    # Overlapping boxes: the leader is the vehicle ahead whose rear bumper is nearest (ties: the nearer
    # front). ``rear``: each position's immediate leader's rear in its own lane's s; where it does not rise
    # along a lane (rare: wrecks, a story road user standing inside a box), that lane is walked backwards
    # as the compiled step walks every lane.
    rear = np.full(m, np.inf)
    rear[same] = s[ld[same]] - length[ld[same]]
    rear[cross] = lane_len[li[cross]] + (s[f] - length[f])
    falls = np.flatnonzero(same[:-1] & (rear[1:] < rear[:-1]))
    for lane_id in np.unique(li[falls]).tolist():
        lo, hi = int(begin[lane_id]), int(begin[lane_id + 1])
        r = float(rear[hi - 1])
        for k in range(hi - 2, lo - 1, -1):
            if r < rear[k]:
                ld[k] = ld[k + 1]
                g[k] = r - si[k]
            else:
                r = float(rear[k])
            rear[k] = r  # now the nearest rear ahead (where the rears rise, the leader's already)
    has = ld >= 0
    dv = np.zeros(m)
    dv[has] = vi[has] - v[ld[has]]
    av = a[veh]
    free = np.empty(n)
    free[veh] = free_term(vi, np.maximum(inv_v0[veh], inv_limit[li]))
    ac = acc_of(av, free[veh], desired_gap(vi, t_gap[veh], s0[veh], inv_den[veh], dv), g)
    acc_car = np.empty(n)
    acc_car[veh] = ac
    ss_line = np.empty(n)
    ss_line[veh] = desired_gap(vi, t_gap[veh], s0[veh], inv_den[veh], vi)
    al = acc_of(av, free[veh], ss_line[veh], line_gap(li, si, vi, b_safe[veh], nxt, lane_len, stop_s, red))
    acc[:] = 0.0
    leader[:] = -1
    gap[:] = np.inf
    acc[veh] = np.minimum(ac, al)
    leader[veh] = ld
    gap[veh] = g

    # MOBIL
    change[:] = 0
    go_left = tick % 2 == 0
    tl = (left if go_left else right)[li]
    c = np.flatnonzero((tl >= 0) & (si >= NO_CHANGE_M))
    i_c = veh[c]
    t = tl[c]
    sc = si[c]
    vc = vi[c]
    ckey = key_sorted.astype(np.float64) + 1j * s[order]
    ins = np.searchsorted(ckey, t.astype(np.float64) + 1j * sc, side="left").astype(np.int64)
    # new leader
    g_new = np.full(len(c), np.inf)
    dv_new = np.zeros(len(c))
    in_t = ins < begin[t + 1]
    at_ins = np.minimum(ins, n - 1)[in_t]
    nlv = order[at_ins]
    # (the nearest rear bumper at or ahead of the insertion point: overlapping boxes, as in the leader pass)
    r_own = s[nlv] - length[nlv]
    sw = rear[at_ins] < r_own
    g_new[in_t] = np.where(sw, rear[at_ins] - sc[in_t], r_own - sc[in_t])
    dv_new[in_t] = vc[in_t] - v[np.where(sw, ld[at_ins], nlv)]
    valid = ~in_t | (g_new > 0.0)
    nt_all = next_lane(i_c, t, succ_begin, succ_lane)
    rest = np.flatnonzero(~in_t)
    nt = nt_all[rest]
    ok = nt >= 0
    ok[ok] = begin[nt[ok]] < begin[nt[ok] + 1]
    rest, nt = rest[ok], nt[ok]
    f = order[begin[nt]]
    ok = f != i_c[rest]
    rest, f, pf = rest[ok], f[ok], begin[nt][ok]
    sw = rear[pf] < s[f] - length[f]
    g_new[rest] = np.where(
        sw, (lane_len[t[rest]] - sc[rest]) + rear[pf], (lane_len[t[rest]] - sc[rest]) + s[f] - length[f]
    )
    dv_new[rest] = vc[rest] - v[np.where(sw, ld[pf], f)]
    fr = free_term(vc, np.maximum(inv_v0[i_c], inv_limit[t]))
    at = acc_of(a[i_c], fr, desired_gap(vc, t_gap[i_c], s0[i_c], inv_den[i_c], dv_new), g_new)
    al = acc_of(a[i_c], fr, ss_line[i_c], line_gap(t, sc, vc, b_safe[i_c], nt_all, lane_len, stop_s, red))
    at = np.minimum(at, al)
    # new follower
    d_n = np.zeros(len(c))
    hf = ins > begin[t]
    fo = order[ins[hf] - 1]
    g_f = sc[hf] - length[i_c[hf]] - s[fo]
    an_new = acc_of(a[fo], free[fo], desired_gap(v[fo], t_gap[fo], s0[fo], inv_den[fo], v[fo] - vc[hf]), g_f)
    valid[hf] &= (g_f > 0.0) & ~(an_new < -b_safe[i_c[hf]])
    d_n[hf] = an_new - acc_car[fo]
    # old follower
    d_o = np.zeros(len(c))
    kp = pos[i_c] - 1
    ho = kp >= begin[li[c]]
    o = order[kp[ho]]
    ldo = leader[i_c[ho]]
    dv_o = np.zeros(len(o))
    hl = ldo >= 0
    dv_o[hl] = v[o[hl]] - v[ldo[hl]]
    g_o = (gap[i_c[ho]] + sc[ho]) - s[o]
    ao_new = acc_of(a[o], free[o], desired_gap(v[o], t_gap[o], s0[o], inv_den[o], dv_o), g_o)
    d_o[ho] = ao_new - acc_car[o]
    incentive = (at - acc[i_c]) + politeness[i_c] * (d_n + d_o)
    go = valid & (incentive > a_th[i_c])
    movers = i_c[go]
    change[movers] = 1 if go_left else -1
    lane[movers] = t[go]
    acc[movers] = at[go]

    # ballistic update, then junctions
    ai = acc[veh]
    vn = vi + ai * dt
    stop = vn < 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ds = np.where(stop, -(vi * vi) / (2.0 * ai), vi * dt + 0.5 * ai * dt * dt)
    v[veh] = np.where(stop, 0.0, vn)
    s[veh] = si + ds
    moving = veh
    while len(moving):
        lm = lane[moving]
        on = lm >= 0
        moving = moving[on]
        lm = lm[on]
        over = s[moving] > lane_len[lm]
        moving = moving[over]
        lm = lm[over]
        s[moving] = s[moving] - lane_len[lm]
        lane[moving] = next_lane(moving, lm, succ_begin, succ_lane)
