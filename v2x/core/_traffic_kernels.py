"""The compiled traffic step (IDM car-following, MOBIL lane changes, ballistic update), in one module.

Like ``_kernels`` (whose docstring explains why): every compiled function of the traffic model lives in
this file, so numba's on-disk cache, which checks only the defining file's timestamp, never keeps stale
machine code for an inlined helper. Nothing here imports from ``_kernels``.

The formulas, the order of operations and every tie rule match ``_traffic_numpy`` exactly, so the two
implementations agree bit for bit (tests/core/test_traffic_numpy.py); docs/CORE.md, "Traffic model",
states the model.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from v2x.core._jit import jit, jit_inline

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
I8 = NDArray[np.int8]
B = NDArray[np.bool_]

B_MAX = 9.0  # m/s², the physical braking limit every acceleration is clamped to (SUMO's emergencyDecel)
# No lane changes in a lane's first metres: a follower still on a lane before the junction is not seen
# by MOBIL's safety check (followers are searched on the target lane only).
NO_CHANGE_M = 30.0

# Route choice at a junction: splitmix64 (Steele, Lea & Flood 2014) of (vehicle, lane), the same words
# in _traffic_numpy.
GAMMA = np.uint64(0x9E3779B97F4A7C15)
K_LANE = np.uint64(0xD1B54A32D192ED03)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)


@jit_inline
def _mix64(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@jit_inline
def next_lane(i: int, lane: int, succ_begin: I64, succ_lane: I64) -> int:
    """The successor lane vehicle ``i`` takes at the end of ``lane`` (-1: it leaves the network)."""
    b = succ_begin[lane]
    n = succ_begin[lane + 1] - b
    if n == 0:
        return -1
    if n == 1:
        return int(succ_lane[b])
    h = _mix64(np.uint64(i) * GAMMA + np.uint64(lane) * K_LANE)
    return int(succ_lane[b + np.int64(((h >> _S32) * np.uint64(n)) >> _S32)])  # Lemire's multiply-shift range


@jit_inline
def free_term(v: float, v0: float) -> float:
    """The IDM's free-road term 1 - (v/v0)^δ with δ = 4."""
    r = v / v0
    r2 = r * r
    return 1.0 - r2 * r2


@jit_inline
def desired_gap(v: float, t_gap: float, s0: float, inv_den: float, dv: float) -> float:
    """s* = s0 + max(0, v T + v Δv / (2 sqrt(a b))), with ``inv_den`` = 1 / (2 sqrt(a b))."""
    ss = v * t_gap + v * dv * inv_den
    ss = max(ss, 0.0)
    return s0 + ss


@jit_inline
def acc_of(a: float, free: float, ss: float, gap: float) -> float:
    """a [free - (s*/s)²], clamped to ``-B_MAX`` (no leader: gap inf gives the free-road acceleration)."""
    q = ss / gap
    acc = a * (free - q * q)
    return max(acc, -B_MAX)


@jit_inline
def line_gap(lane: int, s: float, v: float, b_safe: float, nl: int, lane_len: F64, stop_s: F64, red: B) -> float:
    """Distance to the first red stop line ahead that the vehicle can still stop for (own lane, then the
    next lane ``nl``), inf if none.

    A red line is a standing obstacle of zero length for a vehicle that can stop before it with at most
    ``b_safe`` (v² ≤ 2 b_safe g); one that cannot passes (the amber dilemma rule). The own lane's line is
    the nearer one, so when it holds the vehicle the next lane's line does not matter."""
    sl = float(stop_s[lane])
    if red[lane] and s <= sl:
        g = sl - s
        if v * v <= 2.0 * b_safe * g:
            return g
    if nl >= 0 and red[nl]:
        g = float((lane_len[lane] - s) + stop_s[nl])
        if v * v <= 2.0 * b_safe * g:
            return g
    return math.inf


@jit
def sort_vehicles(lane: I64, s: F64, order: I64, n_lanes: int, begin: I64) -> None:
    """Reorder ``order`` by (lane, s, index), off-network vehicles (lane < 0) last as lane ``n_lanes``.

    A stable counting sort by lane over the previous order, then an insertion sort by (s, index) inside
    each lane: O(N + lanes) when the previous order is nearly right, as it is from one tick to the next.
    ``begin`` (n_lanes + 2) receives each lane's first position."""
    n = lane.shape[0]
    begin[:] = 0
    for k in range(n):
        li = lane[order[k]]
        begin[(li if li >= 0 else n_lanes) + 1] += 1
    for j in range(n_lanes + 1):
        begin[j + 1] += begin[j]
    fill = begin[: n_lanes + 1].copy()
    new = np.empty(n, dtype=np.int64)
    for k in range(n):
        i = order[k]
        li = lane[i]
        key = li if li >= 0 else n_lanes
        new[fill[key]] = i
        fill[key] += 1
    for j in range(n_lanes + 1):
        lo = begin[j]
        for k in range(lo + 1, begin[j + 1]):
            i = new[k]
            si = s[i]
            m = k - 1
            while m >= lo:
                o = new[m]
                so = s[o]
                if so > si or (so == si and o > i):
                    new[m + 1] = o
                    m -= 1
                else:
                    break
            new[m + 1] = i
    order[:] = new


@jit
def traffic_step(
    lane_len: F64,
    limit: F64,
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
    v0: F64,
    t_gap: F64,
    s0: F64,
    a: F64,
    b: F64,
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
    """One tick for every vehicle: sort, leaders, IDM, MOBIL, ballistic update. Writes the state in place
    and ``acc`` (applied acceleration), ``leader``/``gap`` (before lane changes), ``change`` (+1 left,
    -1 right, 0).

    Works on copies gathered into (lane, s) order, so that a vehicle's leader and follower on its lane
    are its neighbours in memory and the IDM and integration loops are contiguous; results are
    scattered back by vehicle index at the end."""
    n = lane.shape[0]
    n_lanes = lane_len.shape[0]
    begin = np.empty(n_lanes + 2, dtype=np.int64)
    sort_vehicles(lane, s, order, n_lanes, begin)
    m = begin[n_lanes]  # vehicles on the network; below, arrays are indexed by sorted position k

    # gather into sorted order: neighbours on a lane are then adjacent and the loops below are contiguous
    ln = np.empty(m, dtype=np.int64)
    sk = np.empty(m, dtype=np.float64)
    vk = np.empty(m, dtype=np.float64)
    lenk = np.empty(m, dtype=np.float64)
    v0k = np.empty(m, dtype=np.float64)  # desired speed capped by the lane's limit
    tk = np.empty(m, dtype=np.float64)
    s0k = np.empty(m, dtype=np.float64)
    ak = np.empty(m, dtype=np.float64)
    bk = np.empty(m, dtype=np.float64)
    bsk = np.empty(m, dtype=np.float64)
    pk = np.empty(m, dtype=np.float64)
    athk = np.empty(m, dtype=np.float64)
    nxk = np.empty(m, dtype=np.int64)  # the lane taken at the end of the own lane
    for k in range(m):
        i = order[k]
        li = lane[i]
        ln[k] = li
        sk[k] = s[i]
        vk[k] = v[i]
        lenk[k] = length[i]
        v0k[k] = min(v0[i], limit[li])
        tk[k] = t_gap[i]
        s0k[k] = s0[i]
        ak[k] = a[i]
        bk[k] = b[i]
        bsk[k] = b_safe[i]
        pk[k] = politeness[i]
        athk[k] = a_th[i]
        nxk[k] = next_lane(i, li, succ_begin, succ_lane)

    # leaders: the next position on the same lane, else the first vehicle on the next lane
    ldk = np.empty(m, dtype=np.int64)
    gk = np.empty(m, dtype=np.float64)
    dvk = np.empty(m, dtype=np.float64)
    for k in range(m - 1):
        same = ln[k + 1] == ln[k]
        ldk[k] = k + 1 if same else -1
        gk[k] = sk[k + 1] - lenk[k + 1] - sk[k] if same else math.inf
        dvk[k] = vk[k] - vk[k + 1] if same else 0.0
    if m > 0:
        ldk[m - 1] = -1
        gk[m - 1] = math.inf
        dvk[m - 1] = 0.0
    for li in range(n_lanes):
        if begin[li] == begin[li + 1]:
            continue
        k = begin[li + 1] - 1
        nl = nxk[k]
        if nl >= 0 and begin[nl] < begin[nl + 1]:
            f = begin[nl]
            if f != k:
                ldk[k] = f
                gk[k] = (lane_len[li] - sk[k]) + sk[f] - lenk[f]
                dvk[k] = vk[k] - vk[f]

    # IDM towards the vehicle leader (branch-free, contiguous: vectorised)
    invd = np.empty(m, dtype=np.float64)  # 1 / (2 sqrt(a b))
    fr = np.empty(m, dtype=np.float64)  # free-road term on the own lane
    accc = np.empty(m, dtype=np.float64)  # acceleration towards the vehicle leader only
    gain = np.empty(m, dtype=np.float64)  # free-road acceleration minus accc: bounds MOBIL's incentive
    ssl = np.empty(m, dtype=np.float64)  # s* towards a standing obstacle
    for k in range(m):
        d = 1.0 / (2.0 * math.sqrt(ak[k] * bk[k]))
        invd[k] = d
        f_ = free_term(vk[k], v0k[k])
        fr[k] = f_
        ac = acc_of(ak[k], f_, desired_gap(vk[k], tk[k], s0k[k], d, dvk[k]), gk[k])
        accc[k] = ac
        gain[k] = max(ak[k] * f_, -B_MAX) - ac
        ssl[k] = desired_gap(vk[k], tk[k], s0k[k], d, vk[k])
    # red stop lines: the line_gap rule, branch-free over per-lane red-line positions (nan: none or green;
    # g >= 0 iff s <= line, exactly, since float subtraction keeps the sign)
    red_at = np.empty(n_lanes + 1, dtype=np.float64)
    for li in range(n_lanes):
        red_at[li] = stop_s[li] if red[li] else math.nan
    red_at[n_lanes] = math.nan  # "no next lane" (nxk = -1) reads this entry
    accs = np.empty(m, dtype=np.float64)
    for k in range(m):
        li = ln[k]
        nl = nxk[k]
        vv = vk[k] * vk[k]
        g_own = red_at[li] - sk[k]
        g_next = (lane_len[li] - sk[k]) + red_at[nl if nl >= 0 else n_lanes]
        two_b = 2.0 * bsk[k]
        own = g_own >= 0.0 and vv <= two_b * g_own
        gl = g_own if own else (g_next if vv <= two_b * g_next else math.inf)
        accs[k] = min(accc[k], acc_of(ak[k], fr[k], ssl[k], gl))

    # MOBIL: left on even ticks, right on odd ones (decided on the state before any change)
    chk = np.zeros(m, dtype=np.int8)
    newacc = np.empty(m, dtype=np.float64)
    go_left = tick % 2 == 0
    cur = -1  # the lane whose block the loop is in
    ptr = 0  # first position on the neighbour lane t with s >= the current vehicle's (s rises along a block)
    for k in range(m):
        li = ln[k]
        t = left[li] if go_left else right[li]
        if li != cur:
            cur = li
            ptr = begin[t] if t >= 0 else 0
        si = sk[k]
        if t < 0 or si < NO_CHANGE_M:
            continue
        vi = vk[k]
        frt = fr[k]
        if limit[t] != limit[li]:
            v0t = min(v0[order[k]], limit[t])
            if v0t != v0k[k]:
                frt = free_term(vi, v0t)
        kp = k - 1
        pi = pk[k]
        ath = athk[k]
        a_c = accs[k]
        end_t = begin[t + 1]
        while ptr < end_t and sk[ptr] < si:
            ptr += 1
        ins = ptr
        # Upper bound of the incentive: a~_c <= the free-road acceleration on t, a~_n - a_n <= the new
        # follower's gain, a~_o - a_o <= the old follower's gain. Every step is monotone in floating
        # point too, so skipping when the bound fails changes no decision (for p >= 0).
        g_n_max = gain[ins - 1] if ins > begin[t] else 0.0
        g_o_max = gain[kp] if kp >= begin[li] else 0.0
        if pi >= 0.0 and not (max(ak[k] * frt, -B_MAX) - a_c) + pi * (g_n_max + g_o_max) > ath:
            continue
        # new leader (on t, else the first vehicle on the lane after t)
        g_new = math.inf
        dv_new = 0.0
        nt = -2  # not looked up yet
        if ins < end_t:
            g_new = sk[ins] - lenk[ins] - si
            dv_new = vi - vk[ins]
            if not g_new > 0.0:
                continue
        else:
            nt = next_lane(order[k], t, succ_begin, succ_lane)
            if nt >= 0 and begin[nt] < begin[nt + 1]:
                f = begin[nt]
                if f != k:
                    g_new = (lane_len[t] - si) + sk[f] - lenk[f]
                    dv_new = vi - vk[f]
        at = acc_of(ak[k], frt, desired_gap(vi, tk[k], s0k[k], invd[k], dv_new), g_new)
        # the same bound with a~_c towards the new leader (a~_c = min of it and the red-line term)
        if pi >= 0.0 and not (at - a_c) + pi * (g_n_max + g_o_max) > ath:
            continue
        if nt == -2:
            nt = next_lane(order[k], t, succ_begin, succ_lane)
        al = acc_of(ak[k], frt, ssl[k], line_gap(t, si, vi, bsk[k], nt, lane_len, stop_s, red))
        at = min(at, al)
        if pi >= 0.0 and not (at - a_c) + pi * (g_n_max + g_o_max) > ath:
            continue
        # new follower
        d_n = 0.0
        if ins > begin[t]:
            fo = ins - 1
            g_f = si - lenk[k] - sk[fo]
            if not g_f > 0.0:
                continue
            an_new = acc_of(ak[fo], fr[fo], desired_gap(vk[fo], tk[fo], s0k[fo], invd[fo], vk[fo] - vi), g_f)
            if an_new < -bsk[k]:
                continue
            d_n = an_new - accc[fo]
        # old follower
        d_o = 0.0
        if kp >= begin[li]:
            ld = ldk[k]
            dv_o = vk[kp] - vk[ld] if ld >= 0 else 0.0
            g_o = (gk[k] + si) - sk[kp]
            ao_new = acc_of(ak[kp], fr[kp], desired_gap(vk[kp], tk[kp], s0k[kp], invd[kp], dv_o), g_o)
            d_o = ao_new - accc[kp]
        incentive = (at - a_c) + pi * (d_n + d_o)
        if incentive > ath:
            chk[k] = 1 if go_left else -1
            newacc[k] = at

    # lane changes, then the ballistic update (Treiber & Kanagaraj 2015) without negative speeds, in
    # sorted order (branch-free: vectorised); then scattered back, crossing junctions at the lane end
    for k in range(m):
        c = chk[k]
        ai = newacc[k] if c != 0 else accs[k]
        accs[k] = ai
        vi = vk[k]
        vn = vi + ai * dt
        stop = vn < 0.0
        ds = -(vi * vi) / (2.0 * ai) if stop else vi * dt + 0.5 * ai * dt * dt
        vk[k] = 0.0 if stop else vn
        sk[k] = sk[k] + ds
    for k in range(m):
        i = order[k]
        ld = ldk[k]
        leader[i] = order[ld] if ld >= 0 else -1
        gap[i] = gk[k]
        c = chk[k]
        change[i] = c
        acc[i] = accs[k]
        v[i] = vk[k]
        li = ln[k]
        if c != 0:
            li = left[li] if c > 0 else right[li]
        si = sk[k]
        while li >= 0 and si > lane_len[li]:
            si = si - lane_len[li]
            li = next_lane(i, li, succ_begin, succ_lane)
        s[i] = si
        lane[i] = li
    for k in range(m, n):
        i = order[k]
        acc[i] = 0.0
        leader[i] = -1
        gap[i] = math.inf
        change[i] = 0
