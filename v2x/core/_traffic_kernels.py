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
    -1 right, 0)."""
    n = lane.shape[0]
    n_lanes = lane_len.shape[0]
    begin = np.empty(n_lanes + 2, dtype=np.int64)
    sort_vehicles(lane, s, order, n_lanes, begin)
    s_k = np.empty(n, dtype=np.float64)  # s in sorted order
    acc_car = np.empty(n, dtype=np.float64)  # IDM towards the vehicle leader only
    inv_den = np.empty(n, dtype=np.float64)  # 1 / (2 sqrt(a b))
    free = np.empty(n, dtype=np.float64)  # free-road term on the own lane
    ss_line = np.empty(n, dtype=np.float64)  # s* towards a standing obstacle
    nxt = np.empty(n, dtype=np.int64)  # the lane each vehicle takes at the end of its lane
    # gain[i]: the most any change of leader could raise i's acceleration (free road minus acc_car),
    # which bounds MOBIL's incentive from above (see the MOBIL loop)
    gain = np.empty(n, dtype=np.float64)

    # leaders and IDM (vehicle leader, then red stop lines)
    for k in range(begin[n_lanes]):
        i = order[k]
        li = lane[i]
        si = s[i]
        s_k[k] = si
        vi = v[i]
        ai = a[i]
        di = 1.0 / (2.0 * math.sqrt(ai * b[i]))
        inv_den[i] = di
        nl = next_lane(i, li, succ_begin, succ_lane)
        nxt[i] = nl
        ld = -1
        g = math.inf
        if k + 1 < begin[li + 1]:
            ld = order[k + 1]
            g = s[ld] - length[ld] - si
        elif nl >= 0 and begin[nl] < begin[nl + 1]:
            f = order[begin[nl]]
            if f != i:
                ld = f
                g = (lane_len[li] - si) + s[f] - length[f]
        dv = vi - v[ld] if ld >= 0 else 0.0
        fr = free_term(vi, min(v0[i], limit[li]))
        free[i] = fr
        ac = acc_of(ai, fr, desired_gap(vi, t_gap[i], s0[i], di, dv), g)
        acc_car[i] = ac
        gain[i] = max(ai * fr, -B_MAX) - ac
        ssl = desired_gap(vi, t_gap[i], s0[i], di, vi)
        ss_line[i] = ssl
        al = acc_of(ai, fr, ssl, line_gap(li, si, vi, b_safe[i], nl, lane_len, stop_s, red))
        acc[i] = min(ac, al)
        leader[i] = ld
        gap[i] = g
    for k in range(begin[n_lanes], n):
        i = order[k]
        acc[i] = 0.0
        leader[i] = -1
        gap[i] = math.inf

    # MOBIL: left on even ticks, right on odd ones (decided on the state before any change)
    change[:] = 0
    new_acc = np.empty(n, dtype=np.float64)
    go_left = tick % 2 == 0
    cur = -1  # the lane whose block the loop is in
    ptr = 0  # first position on the neighbour lane t with s >= the current vehicle's (s rises along a block)
    for k in range(begin[n_lanes]):
        i = order[k]
        li = lane[i]
        t = left[li] if go_left else right[li]
        if li != cur:
            cur = li
            ptr = begin[t] if t >= 0 else 0
        si = s_k[k]
        if t < 0 or si < NO_CHANGE_M:
            continue
        vi = v[i]
        v0t = min(v0[i], limit[t])
        fr = free[i] if v0t == min(v0[i], limit[li]) else free_term(vi, v0t)
        kp = k - 1
        pi = politeness[i]
        leni = length[i]
        end_t = begin[t + 1]
        while ptr < end_t and s_k[ptr] < si:
            ptr += 1
        ins = ptr
        # Upper bound of the incentive: a~_c <= the free-road acceleration on t, a~_n - a_n <= the new
        # follower's gain, a~_o - a_o <= the old follower's gain. Every step is monotone in floating
        # point too, so skipping when the bound fails changes no decision (for p >= 0).
        g_n_max = gain[order[ins - 1]] if ins > begin[t] else 0.0
        g_o_max = gain[order[kp]] if kp >= begin[li] else 0.0
        if pi >= 0.0 and not (max(a[i] * fr, -B_MAX) - acc[i]) + pi * (g_n_max + g_o_max) > a_th[i]:
            continue
        # new leader (on t, else the first vehicle on the lane after t)
        g_new = math.inf
        dv_new = 0.0
        nt = -2  # not looked up yet
        if ins < end_t:
            nl_v = order[ins]
            g_new = s_k[ins] - length[nl_v] - si
            dv_new = vi - v[nl_v]
            if not g_new > 0.0:
                continue
        else:
            nt = next_lane(i, t, succ_begin, succ_lane)
            if nt >= 0 and begin[nt] < begin[nt + 1]:
                f = order[begin[nt]]
                if f != i:
                    g_new = (lane_len[t] - si) + s[f] - length[f]
                    dv_new = vi - v[f]
        at = acc_of(a[i], fr, desired_gap(vi, t_gap[i], s0[i], inv_den[i], dv_new), g_new)
        # the same bound with a~_c towards the new leader (a~_c = min of it and the red-line term)
        if pi >= 0.0 and not (at - acc[i]) + pi * (g_n_max + g_o_max) > a_th[i]:
            continue
        if nt == -2:
            nt = next_lane(i, t, succ_begin, succ_lane)
        al = acc_of(a[i], fr, ss_line[i], line_gap(t, si, vi, b_safe[i], nt, lane_len, stop_s, red))
        at = min(at, al)
        if pi >= 0.0 and not (at - acc[i]) + pi * (g_n_max + g_o_max) > a_th[i]:
            continue
        # new follower
        d_n = 0.0
        if ins > begin[t]:
            fo = order[ins - 1]
            g_f = si - leni - s_k[ins - 1]
            if not g_f > 0.0:
                continue
            an_new = acc_of(a[fo], free[fo], desired_gap(v[fo], t_gap[fo], s0[fo], inv_den[fo], v[fo] - vi), g_f)
            if an_new < -b_safe[i]:
                continue
            d_n = an_new - acc_car[fo]
        # old follower
        d_o = 0.0
        if kp >= begin[li]:
            o = order[kp]
            ld = leader[i]
            dv_o = v[o] - v[ld] if ld >= 0 else 0.0
            g_o = (gap[i] + si) - s[o]
            ao_new = acc_of(a[o], free[o], desired_gap(v[o], t_gap[o], s0[o], inv_den[o], dv_o), g_o)
            d_o = ao_new - acc_car[o]
        incentive = (at - acc[i]) + pi * (d_n + d_o)
        if incentive > a_th[i]:
            change[i] = 1 if go_left else -1
            new_acc[i] = at

    # lane changes, then the ballistic update (Treiber & Kanagaraj 2015) without negative speeds;
    # junctions are crossed at the lane end
    for k in range(begin[n_lanes]):
        i = order[k]
        if change[i] != 0:
            lane[i] = left[lane[i]] if change[i] > 0 else right[lane[i]]
            acc[i] = new_acc[i]
        ai = acc[i]
        vi = v[i]
        vn = vi + ai * dt
        if vn < 0.0:
            ds = -(vi * vi) / (2.0 * ai)
            vn = 0.0
        else:
            ds = vi * dt + 0.5 * ai * dt * dt
        v[i] = vn
        si = s[i] + ds
        li = lane[i]
        while li >= 0 and si > lane_len[li]:
            si = si - lane_len[li]
            li = next_lane(i, li, succ_begin, succ_lane)
        s[i] = si
        lane[i] = li
