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
# in _traffic_numpy. GAMMA, _M1, _M2 and _mix64 copy _kernels.py's (``mix64``) on purpose: numba's cache checks
# only the timestamp of the file that defines a kernel (docs/CORE.md), so each kernel file keeps what it inlines.
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
def next_lane(i: int | np.uint64, lane: int, succ_begin: I64, succ_lane: I64) -> int:
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
def next_lane_or_end(i: int, lane: int, succ_begin: I64, succ_lane: I64, end: int) -> int:
    """:func:`next_lane` without branches (for vectorised loops), ``end`` where it gives -1; needs
    ``succ_lane`` non-empty."""
    b = succ_begin[lane]
    n = succ_begin[lane + 1] - b
    h = _mix64(np.uint64(i) * GAMMA + np.uint64(lane) * K_LANE)
    pick = b + np.int64(((h >> _S32) * np.uint64(n)) >> _S32)
    nl = succ_lane[pick if n > 0 else 0]
    return nl if n > 0 else end


@jit_inline
def free_term(v: float, inv_v0: float) -> float:
    """The IDM's free-road term 1 - (v/v0)^δ with δ = 4, as 1 - (v · (1/v0))^4 (a product, not a quotient:
    the reciprocals are kept per vehicle and lane, ``Traffic.inv_v0``, ``LaneNetwork.inv_speed_limit``)."""
    r = v * inv_v0
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


# Workspace rows (``traffic._Workspace``), allocated once per Traffic and reused from tick to tick
# (allocating a dozen arrays per tick costs more than the step's arithmetic when the allocator hands
# freshly trimmed pages back). Rows of N floats, by sorted position k (S, V, LEN) or by vehicle index.
WF_S, WF_V, WF_LEN, WF_DV, WF_GLINE, WF_INV0, WF_FREE, WF_ACCC, WF_GAIN, WF_ACCS, WF_REAR = range(11)
N_WF = 11
# int rows of N: sort scratch (the previous order), then each vehicle's next lane as the red-line pass last
# computed it, kept from tick to tick: (lane << 32) | next lane (n_lanes: none), valid while the vehicle is
# on that lane (next_lane is a function of the vehicle and its lane only, for one network); the workspace
# starts it at -1 (no lane)
WI_OLD, WI_NEXT = range(2)
N_WI = 2
# rows of lanes + 2: each lane's first position; fill pointers (after the sort, negative for a lane whose
# positions or rear bumpers did not rise along it); the vehicles per lane, kept from tick to tick
# (sort_vehicles; -1 in a new workspace); each lane's front-most vehicle and its next lane as the leader pass
# last computed them, kept from tick to tick: (vehicle << 32) | (next lane + 1), -1 in a new workspace
WL_BEGIN, WL_FILL, WL_COUNT, WL_FRONT = range(4)
N_WL = 4


@jit
def sort_vehicles(
    lane: I64,
    s: F64,
    v: F64,
    length: F64,
    order: I64,
    n_lanes: int,
    begin: I64,
    fill: I64,
    count: I64,
    old: I64,
    sk: F64,
    vk: F64,
    lenk: F64,
) -> bool:
    """Reorder ``order`` by (lane, s, index), off-network vehicles (lane < 0) last as lane ``n_lanes``,
    and gather ``s``, ``v`` and ``length`` into ``sk``, ``vk`` and ``lenk`` in that order.

    A stable counting sort by lane over the previous order, then an insertion sort by (s, index) inside
    each lane that the scatter found out of order: O(N + lanes) when the previous order is nearly right,
    as it is from one tick to the next. ``begin`` (n_lanes + 2) receives each lane's first position;
    ``fill`` (n_lanes + 1) is negative afterwards for a lane whose positions or rear bumpers (s - length)
    did not rise along it in the previous order (so for every lane with overlapping boxes, which the
    leader pass walks); ``old`` (N) is scratch. ``count`` (n_lanes + 2) is kept from tick to tick:
    the number of vehicles per lane (off the network at ``n_lanes``) and, at ``n_lanes + 1``, N when the
    counts are known (the step updates them as it moves vehicles). Known counts skip the counting pass;
    a caller who moved vehicles between ticks makes some lane overflow its room in the scatter (the counts
    sum to N), which falls back to counting. The previous order keeps a lane's vehicles together, so the
    fill pointer is carried in a register along a run of one lane (a counter in memory would chain every
    element through a store and a load). Gathering speeds and lengths here, in the one pass that reads
    each vehicle's row, leaves the leader pass nothing to read by vehicle index. Returns False, with
    ``order`` untouched, if a vehicle is on a lane >= ``n_lanes``."""
    n = lane.shape[0]
    for k in range(n):
        old[k] = order[k]
    known = count[n_lanes + 1] == n
    for _attempt in range(2):  # the second only when the kept counts were wrong
        if not known:  # count the vehicles per lane, in registers along the runs of one lane
            count[: n_lanes + 2] = 0
            prev = -1
            run = 0
            off_net = False
            for k in range(n):
                li = lane[np.uint64(old[k])]
                off_net |= li >= n_lanes
                key = li if li >= 0 else n_lanes
                key = min(key, n_lanes)
                if key != prev:
                    if prev >= 0:
                        count[prev] += run
                    prev = key
                    run = 0
                run += 1
            if prev >= 0:
                count[prev] += run
            if off_net:
                count[n_lanes + 1] = -1
                return False
            count[n_lanes + 1] = n
        total = 0
        for j in range(n_lanes + 1):
            begin[j] = total
            fill[j] = total
            total += count[j]
        begin[n_lanes + 1] = total
        if total != n:  # kept counts that do not add up (not expected: the step only moves counts between lanes)
            known = False
            continue
        # scatter; a lane whose positions do not rise along it is marked (fill[j] < 0 after the pass: its
        # end, negated and minus one); a lane with more vehicles than counted stops the pass
        prev = -1
        p = 0
        end = 0
        s_last = 0.0
        r_last = 0.0
        bad = False
        over = False
        off_net = False
        for k in range(n):
            o = old[k]
            iu = np.uint64(o)
            li = lane[iu]
            off_net |= li >= n_lanes
            key = li if li >= 0 else n_lanes
            key = min(key, n_lanes)
            if key != prev:
                if prev >= 0:
                    fill[prev] = -p - 1 if bad else p
                prev = key
                p = fill[key]
                if p < 0:  # the lane was marked by an earlier run
                    p = -p - 1
                    bad = True
                else:
                    bad = False
                end = begin[key + 1]
                s_last = sk[np.uint64(p - 1)] if p > begin[key] else -math.inf
                r_last = s_last - lenk[np.uint64(p - 1)] if p > begin[key] else -math.inf
            if p >= end:
                over = True
                break
            pu = np.uint64(p)
            si = s[iu]
            leni = length[iu]
            order[pu] = o
            sk[pu] = si
            vk[pu] = v[iu]
            lenk[pu] = leni
            ri = si - leni
            bad |= (not s_last < si) | (ri < r_last)
            s_last = si
            r_last = ri
            p += 1
        if off_net or over:
            for k in range(n):
                order[k] = old[k]
            if off_net:
                count[n_lanes + 1] = -1
                return False
            known = False
            continue
        if prev >= 0:
            fill[prev] = -p - 1 if bad else p
        break
    for j in range(n_lanes + 1):
        if fill[j] >= 0:
            continue
        lo = begin[j]
        for k in range(lo + 1, begin[j + 1]):
            if sk[k - 1] < sk[k]:  # in order already (the common case)
                continue
            i = order[k]
            si = sk[k]
            vi = vk[k]
            leni = lenk[k]
            m = k - 1
            while m >= lo:
                o = order[m]
                so = sk[m]
                if so > si or (so == si and o > i):
                    order[m + 1] = o
                    sk[m + 1] = so
                    vk[m + 1] = vk[m]
                    lenk[m + 1] = lenk[m]
                    m -= 1
                else:
                    break
            order[m + 1] = i
            sk[m + 1] = si
            vk[m + 1] = vi
            lenk[m + 1] = leni
    return True


@jit
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
    invd: F64,
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
    wf: F64,
    wi: I64,
    wl: I64,
) -> bool:
    """One tick for every vehicle: sort, leaders, IDM, MOBIL, ballistic update. Writes the state in place
    and ``acc`` (applied acceleration), ``leader``/``gap`` (before lane changes), ``change`` (+1 left,
    -1 right, 0). ``wf`` (N_WF x N), ``wi`` (N_WI x N) and ``wl`` (N_WL x (lanes + 2)) are the
    workspace: scratch of any content, but for row ``WI_NEXT`` of ``wi`` and rows ``WL_COUNT`` and
    ``WL_FRONT`` of ``wl``, kept from tick to tick (each vehicle's next lane, the vehicles per lane, each
    lane's front-most vehicle and its next lane; -1 in a new workspace). Returns False, having changed
    nothing, if a vehicle is on a lane the network does not have.

    Only what needs the neighbours runs in (lane, s) order: the sort gathers positions, speeds and
    lengths, so that a vehicle's leader and follower on its lane are its neighbours in memory; the leader
    pass reads only those and writes each vehicle's gap and speed difference by vehicle index. The rest
    runs over the vehicles by index on the state arrays themselves: the red-line rule and the capped
    desired speed (one pass without branches, over lanes as small tables), then the IDM and the ballistic
    update (contiguous, branch-free: vectorised); MOBIL walks the sorted order and reads the rest through
    ``order``, recomputing the few terms it needs beyond its first bound, and makes the lane changes it
    decides (lane and kept lane counts: the junction pass after the update reads no change flags).
    Indices read from ``order`` (and sorted positions in the hot loops) index as unsigned integers:
    numba then drops the negative-index wrap-around it adds to every signed index (a shift, a mask and
    an add, plus reloads of the array's length under register pressure), -10 % of the step. The
    reciprocals the IDM needs (``inv_limit``, ``inv_v0``, ``invd`` = 1 / (2 sqrt(a b))) come derived with
    the network and the vehicles: a division and a square root per vehicle and tick were a sixth of the
    step (the vector divider is the IDM loop's bottleneck). No per-tick allocation but one lane-sized
    array."""
    n = lane.shape[0]
    n_lanes = lane_len.shape[0]
    begin = wl[WL_BEGIN]
    fill = wl[WL_FILL]
    front = wl[WL_FRONT]
    sk = wf[WF_S]
    vk = wf[WF_V]
    lenk = wf[WF_LEN]
    count = wl[WL_COUNT]
    if not sort_vehicles(lane, s, v, length, order, n_lanes, begin, fill, count, wi[WI_OLD], sk, vk, lenk):
        return False
    # by vehicle index:
    dvv = wf[WF_DV]  # speed difference to the leader
    gline = wf[WF_GLINE]  # distance to the red stop line the vehicle stops for (inf: none)
    inv0c = wf[WF_INV0]  # 1 / the desired speed capped by the lane's limit: max(1/v0, 1/limit)
    fr = wf[WF_FREE]  # free-road term on the own lane
    accc = wf[WF_ACCC]  # acceleration towards the vehicle leader only
    gain = wf[WF_GAIN]  # free-road acceleration minus accc: bounds MOBIL's incentive
    accs = wf[WF_ACCS]  # acceleration with red lines (before lane changes)
    rk = wf[WF_REAR]  # by sorted position: the nearest rear bumper ahead (the leader's), in the lane's s

    # red stop lines per lane (nan: none or green); "no next lane" reads the extra entry
    red_at = np.empty(n_lanes + 1, dtype=np.float64)
    for li in range(n_lanes):
        red_at[li] = stop_s[li] if red[li] else math.nan
    red_at[n_lanes] = math.nan

    # leaders: the next position on the same lane, else (the front-most vehicle) the first vehicle on the
    # next lane. One flat pass over the sorted positions takes the next position for every vehicle (no
    # loop per lane, whose exits the predictor cannot foresee) and its rear as the nearest rear ahead, then
    # a pass over the lanes sets the front-most vehicle of each (its next lane kept per lane from tick to
    # tick: hashed again only when another vehicle is in front) and walks the lane backwards for a nearer
    # rear bumper further ahead only where the sort saw the rears not rise (overlapping boxes).
    n_on = begin[n_lanes]
    for kk in range(n_on - 1):
        ku = np.uint64(kk)
        ku1 = np.uint64(kk + 1)
        iu = np.uint64(order[ku])
        leader[iu] = order[ku1]
        r1 = sk[ku1] - lenk[ku1]
        rk[ku] = r1
        gap[iu] = r1 - sk[ku]
        dvv[iu] = vk[ku] - vk[ku1]
    for li in range(n_lanes):
        lo = begin[li]
        hi = begin[li + 1]
        if lo == hi:
            continue
        k = hi - 1
        i = order[k]
        ld = -1
        g = math.inf
        dv = 0.0
        rear = math.inf  # the nearest rear bumper ahead of position k, in this lane's s
        key = front[li]
        if (key >> 32) == i:  # the same front-most vehicle as last tick: its next lane is kept
            nl = (key & 0xFFFFFFFF) - 1
        else:
            nl = next_lane(i, li, succ_begin, succ_lane)
            front[li] = (i << 32) | (nl + 1)
        if nl >= 0 and begin[nl] < begin[nl + 1]:
            f = begin[nl]
            if f != k:
                ld = order[f]
                g = (lane_len[li] - sk[k]) + sk[f] - lenk[f]
                dv = vk[k] - vk[f]
                rear = lane_len[li] + (sk[f] - lenk[f])
        leader[i] = ld
        gap[i] = g
        dvv[i] = dv
        rk[np.uint64(k)] = rear
        if fill[li] >= 0 and not rear < sk[k] - lenk[k]:
            # the rears rise along the lane (the sort saw them in this order), so the flat pass above wrote
            # every rk, and the next lane's first rear is not nearer: the walk below would change nothing
            continue
        # Overlapping boxes (a collision's wrecks, a story road user standing inside one): the next front
        # bumper need not be the nearest rear bumper. The leader is the vehicle ahead whose rear is nearest
        # (ties: the nearer front), found backwards along the lane; where the boxes do not overlap, the
        # rears rise along the lane and this changes nothing.
        for k in range(hi - 2, lo - 1, -1):
            ku1 = np.uint64(k + 1)
            r1 = sk[ku1] - lenk[ku1]
            if rear < r1:
                iu = np.uint64(order[np.uint64(k)])
                ld = leader[np.uint64(order[ku1])]
                leader[iu] = ld
                gap[iu] = rear - sk[np.uint64(k)]
                dvv[iu] = vk[np.uint64(k)] - v[ld]
            else:
                rear = r1
            rk[np.uint64(k)] = rear
    # by vehicle index: the desired speed and the red-line rule (line_gap, over the per-lane red-line
    # positions; g >= 0 iff s <= line, exactly, since float subtraction keeps the sign). Without branches:
    # the next lane's line is looked up for every vehicle (a green or missing line reads nan, which no
    # comparison passes: inf, as line_gap gives) and the own line's verdict is a select, where a branch
    # on it (it follows the vehicle's signal, in an order the predictor cannot learn) cost more than the
    # successor hash; off-network vehicles compute with lane 0 and are set below.
    has_succ = succ_lane.shape[0] > 0
    nxt = wi[WI_NEXT]
    for i in range(n):
        li = max(lane[i], 0)
        lu = np.uint64(li)
        inv0c[i] = max(inv_v0[i], inv_limit[lu])
        vi = v[i]
        si = s[i]
        vv = vi * vi
        two_b = 2.0 * b_safe[i]
        g_own = red_at[lu] - si
        g_next = math.inf
        if has_succ:
            key = nxt[i]
            if (key >> 32) != li:  # the vehicle changed lanes (a handful per tick): hash again
                key = (li << 32) | next_lane_or_end(i, li, succ_begin, succ_lane, n_lanes)
                nxt[i] = key
            g_next = (lane_len[lu] - si) + red_at[np.uint64(key & 0xFFFFFFFF)]
        held = (g_own >= 0.0) & (vv <= two_b * g_own)
        g_n = g_next if vv <= two_b * g_next else math.inf
        gline[i] = g_own if held else g_n
    for k in range(begin[n_lanes], n):  # off the network (sorted last)
        i = order[k]
        leader[i] = -1
        gap[i] = math.inf
        dvv[i] = 0.0
        gline[i] = math.inf
        inv0c[i] = inv_v0[i]

    # IDM towards the vehicle leader and towards the red line, by vehicle index: contiguous arithmetic,
    # vectorised (off-network vehicles compute too and are reset below)
    for i in range(n):
        vi = v[i]
        ai = a[i]
        ti = t_gap[i]
        s0i = s0[i]
        d = invd[i]
        f_ = free_term(vi, inv0c[i])
        fr[i] = f_
        ac = acc_of(ai, f_, desired_gap(vi, ti, s0i, d, dvv[i]), gap[i])
        accc[i] = ac
        gain[i] = max(ai * f_, -B_MAX) - ac
        accs[i] = min(ac, acc_of(ai, f_, desired_gap(vi, ti, s0i, d, vi), gline[i]))

    # MOBIL: left on even ticks, right on odd ones (decided on the state before any change, which MOBIL
    # reads from the sorted rows and the by-index rows of the passes above, never from ``lane``); a change
    # writes change[i], its acceleration into accs[i], the new lane and the kept lane counts
    change[:] = 0
    go_left = tick % 2 == 0
    for li in range(n_lanes):
        t = left[li] if go_left else right[li]
        if t < 0:
            continue
        lo_t = begin[t]
        end_t = begin[t + 1]
        lo = begin[li]
        same_limit = inv_limit[t] == inv_limit[li]
        ptr = lo_t  # first position on lane t with s >= the current vehicle's (s rises along a block)
        for k in range(lo, begin[li + 1]):
            ku = np.uint64(k)
            si = sk[ku]
            if si < NO_CHANGE_M:
                continue
            while ptr < end_t and sk[np.uint64(ptr)] < si:
                ptr += 1
            ins = ptr
            # the gaps to the new leader and follower must be positive (read from the sorted rows: cheaper
            # than the bound below, and they fail for a third of the candidates); the new leader is the
            # nearest rear bumper at or ahead of the insertion point (overlapping boxes: the leader pass)
            if ins < end_t:
                iu = np.uint64(ins)
                g_new = min(sk[iu] - lenk[iu], rk[iu]) - si
                if not g_new > 0.0:
                    continue
            kp = k - 1
            fo = ins - 1
            if ins > lo_t:
                g_f = si - lenk[ku] - sk[np.uint64(fo)]
                if not g_f > 0.0:
                    continue
            i = np.uint64(order[ku])
            vi = vk[ku]
            frt = fr[i]
            if not same_limit:
                iv0 = inv_v0[i]
                it = max(iv0, inv_limit[t])
                if it != max(iv0, inv_limit[li]):
                    frt = free_term(vi, it)
            pi = politeness[i]
            ath = a_th[i]
            a_c = accs[i]
            ak = a[i]
            # Upper bound of the incentive: a~_c <= the free-road acceleration on t, a~_n - a_n <= the new
            # follower's gain, a~_o - a_o <= the old follower's gain. Every step is monotone in floating
            # point too, so skipping when the bound fails changes no decision (for p >= 0).
            g_n_max = gain[np.uint64(order[fo])] if ins > lo_t else 0.0
            g_o_max = gain[np.uint64(order[kp])] if kp >= lo else 0.0
            if pi >= 0.0 and not (max(ak * frt, -B_MAX) - a_c) + pi * (g_n_max + g_o_max) > ath:
                continue
            # new leader (on t, else the first vehicle on the lane after t)
            g_new = math.inf
            dv_new = 0.0
            nt = -2  # not looked up yet
            if ins < end_t:
                iu = np.uint64(ins)
                if rk[iu] < sk[iu] - lenk[iu]:
                    g_new = rk[iu] - si
                    dv_new = vi - v[leader[np.uint64(order[iu])]]
                else:
                    g_new = sk[iu] - lenk[iu] - si
                    dv_new = vi - vk[iu]
            else:
                nt = next_lane(i, t, succ_begin, succ_lane)
                if nt >= 0 and begin[nt] < begin[nt + 1]:
                    f = begin[nt]
                    if f != k:
                        fu = np.uint64(f)
                        if rk[fu] < sk[fu] - lenk[fu]:
                            g_new = (lane_len[t] - si) + rk[fu]
                            dv_new = vi - v[leader[np.uint64(order[fu])]]
                        else:
                            g_new = (lane_len[t] - si) + sk[f] - lenk[f]
                            dv_new = vi - vk[f]
            ti = t_gap[i]
            s0i = s0[i]
            d = invd[i]
            at = acc_of(ak, frt, desired_gap(vi, ti, s0i, d, dv_new), g_new)
            # the same bound with a~_c towards the new leader (a~_c = min of it and the red-line term)
            if pi >= 0.0 and not (at - a_c) + pi * (g_n_max + g_o_max) > ath:
                continue
            if nt == -2:
                nt = next_lane(i, t, succ_begin, succ_lane)
            al = acc_of(
                ak, frt, desired_gap(vi, ti, s0i, d, vi), line_gap(t, si, vi, b_safe[i], nt, lane_len, stop_s, red)
            )
            at = min(at, al)
            if pi >= 0.0 and not (at - a_c) + pi * (g_n_max + g_o_max) > ath:
                continue
            # new follower
            d_n = 0.0
            if ins > lo_t:
                io = np.uint64(order[fo])
                an_new = acc_of(a[io], fr[io], desired_gap(vk[fo], t_gap[io], s0[io], invd[io], vk[fo] - vi), g_f)
                if an_new < -b_safe[i]:
                    continue
                d_n = an_new - accc[io]
            # old follower
            d_o = 0.0
            if kp >= lo:
                ip = np.uint64(order[kp])
                ld = leader[i]
                dv_o = vk[kp] - v[ld] if ld >= 0 else 0.0
                g_o = (gap[i] + si) - sk[kp]
                ao_new = acc_of(a[ip], fr[ip], desired_gap(vk[kp], t_gap[ip], s0[ip], invd[ip], dv_o), g_o)
                d_o = ao_new - accc[ip]
            incentive = (at - a_c) + pi * (d_n + d_o)
            if incentive > ath:
                change[i] = 1 if go_left else -1
                accs[i] = at
                lane[i] = t
                count[li] -= 1
                count[t] += 1

    # the ballistic update (Treiber & Kanagaraj 2015) without negative speeds, by vehicle index
    # (branch-free: vectorised); then junctions at the lane end (MOBIL has made the lane changes)
    for i in range(n):
        on = lane[i] >= 0
        ai = accs[i] if on else 0.0
        acc[i] = ai
        vi = v[i]
        vn = vi + ai * dt
        stop = vn < 0.0
        ds = -(vi * vi) / (2.0 * ai) if stop else vi * dt + 0.5 * ai * dt * dt
        v[i] = vi if not on else (0.0 if stop else vn)
        s[i] = s[i] if not on else s[i] + ds
    for i in range(n):
        li = lane[i]
        if li < 0:
            continue
        si = s[i]
        if si > lane_len[li]:
            count[li] -= 1
            while li >= 0 and si > lane_len[li]:
                si = si - lane_len[li]
                li = next_lane(i, li, succ_begin, succ_lane)
            s[i] = si
            lane[i] = li
            count[li if li >= 0 else n_lanes] += 1
    return True
