"""Every compiled kernel of the core, in one module.

numba's on-disk cache checks only the timestamp of the file that defines a function, so a kernel that
inlines a helper from another file would keep stale machine code after that helper changes. Keeping all
compiled code here avoids that; ``_grid``, ``_fanout`` and ``_conflict`` hold the Python API around it.

Conventions: indices are int64 (``intp``), positions float64 (the fan-out's output index columns are
int32); outputs are written into arrays the caller allocates (numpy asks the
OS for transparent huge pages on big arrays, which makes first touch several times cheaper than numba's
own allocations). Kernels that produce an output of unknown size are resumable: they stop before a
receiver whose rows would not fit and report where to continue.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from v2x.core._jit import jit, jit_inline

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
I32 = NDArray[np.int32]
U8 = NDArray[np.uint8]
U64 = NDArray[np.uint64]
IntP = NDArray[np.intp]

# -- counter-based random numbers -------------------------------------------------------------------
# splitmix64 (Steele, Lea & Flood 2014): state = seed + k * GAMMA, output = mix64(state). Indexing the
# stream by a counter built from (transmission, receiver, draw) gives every draw its own uniform,
# independent of the order in which candidates are enumerated.
# _traffic_kernels.py has its own copy of these words and of mix64 (``_mix64``), on purpose: numba's cache checks
# only the timestamp of the file that defines a kernel (docs/CORE.md), so each kernel file keeps what it inlines.

GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_TWO_M53 = 1.0 / 9007199254740992.0

# counter = tx << 34 | receiver << 2 | draw (tx < 2^30, receiver slot < 2^32; draw 0, the loss, adds nothing)
TX_BITS = 30
RX_LIMIT = 1 << 32
_SHIFT_TX = np.uint64(34)
_SHIFT_RX = np.uint64(2)
_DRAW_BASE = np.uint64(1)
_DRAW_MULT = np.uint64(2)
_DRAW_EXTRA = np.uint64(3)


@jit_inline
def mix64(z: np.uint64) -> np.uint64:
    """splitmix64 output function (a bijection of 64-bit words with full avalanche)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@jit_inline
def uniform01(seed: np.uint64, counter: np.uint64) -> float:
    """Uniform in [0, 1) with 53 random bits: element ``counter`` of the splitmix64 stream ``seed``."""
    h = mix64(seed + counter * GAMMA)
    return float(np.int64(h >> _S11)) * _TWO_M53  # 53 bits fit an int64: native int -> float


@jit_inline
def draw_counter(tx: int, rx: int) -> np.uint64:
    return (np.uint64(tx) << _SHIFT_TX) | (np.uint64(rx) << _SHIFT_RX)


# -- uniform grid ----------------------------------------------------------------------------------


@jit
def counting_order(key: I64, n_keys: int) -> tuple[IntP, I64]:
    """Stable order of ``key`` (values in [0, n_keys)) and the dense first-position table (n_keys + 1)."""
    begin = np.zeros(n_keys + 1, dtype=np.int64)
    for k in key:
        begin[k + 1] += 1
    for c in range(n_keys):
        begin[c + 1] += begin[c]
    head = begin[:-1].copy()
    order = np.empty(len(key), dtype=np.intp)
    for m in range(len(key)):
        k = key[m]
        order[head[k]] = m
        head[k] += 1
    return order, begin


@jit_inline
def cell_range(dense: bool, begin: I64, ukeys: I64, key_lo: int, key_hi: int) -> tuple[int, int]:
    """Member positions [start, stop) of the cells with keys key_lo..key_hi (inclusive).

    Dense: ``begin`` has one entry per cell (+1). Sparse: ``ukeys`` are the occupied keys (sorted) and
    ``begin`` their first positions (+1); two binary searches.
    """
    if dense:
        return begin[key_lo], begin[key_hi + 1]
    a = np.searchsorted(ukeys, key_lo)
    b = np.searchsorted(ukeys, key_hi, side="right")
    return begin[a], begin[b]


@jit_inline
def floor_index(v: float, cell_m: float, origin: int, n: int) -> int:
    """floor(v / cell_m) - origin, clamped to [-1, n] (so huge or infinite v cannot overflow)."""
    f = np.floor(v / cell_m) - origin
    if f < -1.0:
        return -1
    if f > n:
        return n
    return int(f)


@jit_inline
def row_span(
    qx: float, qy: float, radius: float, row: int, cell_m: float, cx0: int, cy0: int, nx: int
) -> tuple[int, int]:
    """Relative cell columns [lo, hi] of grid row ``row`` that can hold a point within ``radius`` of
    (qx, qy); lo > hi when none. Conservative by a relative 1e-9 slack; callers test the exact distance."""
    band_lo = (row + cy0) * cell_m
    band_hi = band_lo + cell_m
    eps = 1e-9 * (abs(qy) + abs(qx) + radius + cell_m)
    dy = max(band_lo - qy, qy - band_hi, 0.0) - eps
    dy = max(dy, 0.0)
    if dy > radius:
        return 1, 0
    w = math.sqrt(radius * radius - dy * dy) + eps
    lo = max(floor_index(qx - w, cell_m, cx0, nx), 0)
    hi = min(floor_index(qx + w, cell_m, cx0, nx), nx - 1)
    return lo, hi


@jit_inline
def row_span_rect(
    qx: float, qy: float, radius: float, row: int, cell_h: float, cell_w: float, cx0: int, cy0: int, nx: int
) -> tuple[int, int]:
    """:func:`row_span` for cells ``cell_w`` wide and ``cell_h`` tall."""
    band_lo = (row + cy0) * cell_h
    band_hi = band_lo + cell_h
    eps = 1e-9 * (abs(qy) + abs(qx) + radius + cell_h + cell_w)
    dy = max(band_lo - qy, qy - band_hi, 0.0) - eps
    dy = max(dy, 0.0)
    if dy > radius:
        return 1, 0
    w = math.sqrt(radius * radius - dy * dy) + eps
    lo = max(floor_index(qx - w, cell_w, cx0, nx), 0)
    hi = min(floor_index(qx + w, cell_w, cx0, nx), nx - 1)
    return lo, hi


@jit
def query_kernel(
    xs: F64,
    ys: F64,
    qx: F64,
    qy: F64,
    radius: float,
    cell_m: float,
    cx0: int,
    cy0: int,
    nx: int,
    ny: int,
    dense: bool,
    begin: I64,
    ukeys: I64,
    out_q: IntP,
    out_m: IntP,
    out_d: F64,
    fill: bool,
) -> int:
    """Count (fill=False) or write (fill=True) all (query, member, distance) with distance <= radius."""
    r2 = radius * radius
    everyone = math.isinf(radius)
    k = 0
    for q in range(len(qx)):
        x = qx[q]
        y = qy[q]
        if everyone:
            row_lo, row_hi = 0, 0
        else:
            row_lo = max(floor_index(y - radius, cell_m, cy0, ny), 0)
            row_hi = min(floor_index(y + radius, cell_m, cy0, ny), ny - 1)
        for row in range(row_lo, row_hi + 1):
            if everyone:
                start, stop = 0, len(xs)
            else:
                lo, hi = row_span(x, y, radius, row, cell_m, cx0, cy0, nx)
                if lo > hi:
                    continue
                start, stop = cell_range(dense, begin, ukeys, row * nx + lo, row * nx + hi)
            for m in range(start, stop):
                ddx = xs[m] - x
                ddy = ys[m] - y
                d2 = ddx * ddx + ddy * ddy
                if d2 <= r2 or everyone:
                    if fill:
                        out_q[k] = q
                        out_m[k] = m
                        out_d[k] = math.sqrt(d2)
                    k += 1
    return k


@jit
def pairs_kernel(
    xs: F64,
    ys: F64,
    row_of: I64,
    radius: float,
    cell_m: float,
    cx0: int,
    cy0: int,
    nx: int,
    ny: int,
    dense: bool,
    begin: I64,
    ukeys: I64,
    out_a: IntP,
    out_b: IntP,
    out_d: F64,
    fill: bool,
) -> int:
    """Member pairs a < b within radius: each member scans its own row (members after it) and the rows
    above it. Members are in row-major cell order, so every member of a later row comes after ``a``."""
    r2 = radius * radius
    everyone = math.isinf(radius)
    k = 0
    for a in range(len(xs)):
        x = xs[a]
        y = ys[a]
        row_hi = ny - 1 if everyone else min(floor_index(y + radius, cell_m, cy0, ny), ny - 1)
        for row in range(row_of[a], row_hi + 1):
            if everyone:
                lo, hi = 0, nx - 1
            else:
                lo, hi = row_span(x, y, radius, row, cell_m, cx0, cy0, nx)
                if lo > hi:
                    continue
            start, stop = cell_range(dense, begin, ukeys, row * nx + lo, row * nx + hi)
            for b in range(max(start, a + 1), stop):
                ddx = xs[b] - x
                ddy = ys[b] - y
                d2 = ddx * ddx + ddy * ddy
                if d2 <= r2 or everyone:
                    if fill:
                        out_a[k] = a
                        out_b[k] = b
                        out_d[k] = math.sqrt(d2)
                    k += 1
    return k


@jit
def sort_runs(run_key: IntP, vals: IntP) -> None:
    """In place: sort ``vals`` within each run of equal ``run_key`` (insertion sort; runs are short)."""
    n = len(run_key)
    start = 0
    while start < n:
        stop = start + 1
        while stop < n and run_key[stop] == run_key[start]:
            stop += 1
        for i in range(start + 1, stop):
            v = vals[i]
            j = i - 1
            while j >= start and vals[j] > v:
                vals[j + 1] = vals[j]
                j -= 1
            vals[j + 1] = v
        start = stop


# -- fan-out -----------------------------------------------------------------------------------------


@jit_inline
def _time_range(tx_time: F64, dq: F64, mult: F64, extra_max: float) -> tuple[float, float]:
    """Earliest send and 1 / (latest usual delivery - earliest send) over a call (bucket sort range)."""
    t_lo = math.inf
    t_hi = -math.inf
    for t in tx_time:
        t_lo = min(t_lo, t)
        t_hi = max(t_hi, t)
    # the 99th percentile of the base delay: a long tail would only empty the upper buckets (later
    # deliveries are clamped into the last bucket; the insertion pass keeps the order exact)
    span = t_hi + dq[min(int(0.99 * len(dq)), len(dq) - 1)] * mult.max() + extra_max - t_lo
    return t_lo, (1.0 / span if span > 0.0 else 0.0)


@jit_inline
def _finish_receiver(
    r: int,
    k: int,
    ltx: IntP,
    lt: F64,
    lb: I64,
    perm: I64,
    hist: I64,
    tx_time: F64,
    t_lo: float,
    t_inv_span: float,
    seed: np.uint64,
    dq: F64,
    stepped: bool,
    mult: F64,
    mult_cdf: F64,
    extra_p: float,
    extra_max: float,
    out_tx: I32,
    out_rx: I32,
    out_t: F64,
    pos: int,
) -> None:
    """Delay draws for the ``k`` kept deliveries to receiver ``r`` (tx ``ltx``), then
    write them to ``out[pos:pos + k]`` sorted by (delivery time, tx index).

    Delay = base * multiplier + extra (see LinkTables), one counter draw each. The sort is a bucket sort
    on time: 2k buckets over [t_lo, t_lo + 1 / t_inv_span] (the call's earliest send to its latest
    possible delivery), a counting scatter of indices, then an insertion pass that fixes the order
    inside buckets and breaks exact ties by tx index.
    """
    if stepped and k > 16:
        # A stepped delay takes a few values, so deliveries of transmissions sent at the same time tie
        # exactly (a fleet's BSMs all leave at the tick: some 50 ties per delay step and receiver), and the
        # insertion pass below would order each tie by tx index one move at a time. Putting ``ltx`` in tx
        # order first (a counting sort on tx >> shift, k to 2k keys, then a short insertion pass) makes
        # the stable bucket scatter leave every tie in order already. Same output either way.
        n_keys = len(tx_time)
        shift = 0
        while (n_keys >> shift) > 2 * k:
            shift += 1
        n_keys = (n_keys >> shift) + 1
        for kc in range(n_keys + 1):
            hist[kc] = 0
        for j in range(k):
            hist[(ltx[j] >> shift) + 1] += 1
        for kc in range(n_keys):
            hist[kc + 1] += hist[kc]
        for j in range(k):
            kc = ltx[j] >> shift
            perm[hist[kc]] = ltx[j]
            hist[kc] += 1
        for js in range(k):
            tx_js = perm[js]
            at = np.intp(js)  # k may be a uint64 (broadcast_kernel): at - 1 must stay an integer
            while at > 0 and ltx[at - 1] > tx_js:
                ltx[at] = ltx[at - 1]
                at -= 1
            ltx[at] = tx_js
    rbits = np.uint64(r) << _SHIFT_RX
    for j in range(k):  # vectorised: one hash per delivery
        lt[j] = uniform01(seed, ((np.uint64(ltx[j]) << _SHIFT_TX) | rbits) + _DRAW_BASE)
    m = len(dq)
    n_mult = len(mult)
    nbk = 2 * k
    scale = nbk * t_inv_span
    for b in range(nbk + 1):
        hist[b] = 0
    # split so that all but the table gathers and the histogram vectorise
    if stepped:
        for j in range(k):
            lb[j] = min(int(lt[j] * m), m - 1)
            lt[j] = 0.0
    else:
        for j in range(k):
            pq = lt[j] * (m - 1)
            kq = min(int(pq), m - 2)
            lb[j] = kq
            lt[j] = pq - kq
    for j in range(k):  # gathers: base delay and send time
        kq = lb[j]
        lo = dq[kq]
        base = lo if stepped else lo + lt[j] * (dq[kq + 1] - lo)
        lt[j] = tx_time[ltx[j]] + base * mult[0] if n_mult == 1 and extra_p <= 0.0 else base
    if n_mult > 1 or extra_p > 0.0:
        for j in range(k):
            ctr = (np.uint64(ltx[j]) << _SHIFT_TX) | rbits
            jm = 0
            if n_mult > 1:
                u_mult = uniform01(seed, ctr + _DRAW_MULT)
                while jm < n_mult - 1 and u_mult >= mult_cdf[jm]:
                    jm += 1
            extra = 0.0
            if extra_p > 0.0:
                u_extra = uniform01(seed, ctr + _DRAW_EXTRA)
                if u_extra < extra_p:
                    extra = (u_extra / extra_p) * extra_max  # given u < p, u / p is uniform in [0, 1)
            lt[j] = tx_time[ltx[j]] + (lt[j] * mult[jm] + extra)
    for j in range(k):  # vectorised: bucket of each delivery time
        lb[j] = min(max(int((lt[j] - t_lo) * scale), 0), nbk - 1)
    for j in range(k):
        hist[lb[j] + 1] += 1
    for b in range(nbk):
        hist[b + 1] += hist[b]
    for j in range(k):
        b = lb[j]
        perm[hist[b]] = j
        hist[b] += 1
    ot = out_t[pos : pos + k]  # views of this receiver's rows: indices from 0
    otx = out_tx[pos : pos + k]
    orx = out_rx[pos : pos + k]
    for q in range(k):
        j = perm[q]
        ot[q] = lt[j]
        otx[q] = ltx[j]
        orx[q] = r
    for q in range(1, k):
        tp = ot[q]
        if ot[q - 1] < tp:
            continue
        xp = otx[q]
        p = q
        while p > 0 and (ot[p - 1] > tp or (ot[p - 1] == tp and otx[p - 1] > xp)):
            ot[p] = ot[p - 1]
            otx[p] = otx[p - 1]
            p -= 1
        ot[p] = tp
        otx[p] = xp


@jit_inline
def _pdr_at(d: float, pdr: F64, inv_step: float) -> float:
    pos = d * inv_step
    last = len(pdr) - 1
    if not pos < last:  # also nan
        return float(pdr[last])
    k = int(pos)
    return float(pdr[k] + (pos - k) * (pdr[k + 1] - pdr[k]))


@jit_inline
def _broadcast(
    txs: F64,
    tys: F64,
    mtx: IntP,
    msender: IntP,
    cell_m: float,
    cx0: int,
    cy0: int,
    nx: int,
    ny: int,
    dense: bool,
    begin: I64,
    ukeys: I64,
    cell_w: float,
    rx_slots: IntP,
    wx: F64,
    wy: F64,
    tx_time: F64,
    radius: float,
    slot_r2: F64,
    ranged: bool,
    tables: tuple[F64, float, F64, bool, F64, F64, float, float],
    seed: np.uint64,
    out_tx: I32,
    out_rx: I32,
    out_t: F64,
    i0: int,
    pos0: int,
) -> tuple[int, int, int]:
    """The body of :func:`broadcast_kernel` and :func:`broadcast_kernel_ranged` (``ranged`` is a constant
    in each, so the compiled kernel without ranges has no trace of them; the link's tables come as one tuple:
    CPython passes a call of more than 30 arguments as ``*args``, which numba cannot inline)."""
    pdr, pdr_inv_step, dq, stepped, mult, mult_cdf, extra_p, extra_max = tables
    r2 = radius * radius
    everyone = math.isinf(radius)
    n = len(txs)
    mr2 = np.empty(n if ranged else 0, dtype=np.float64)  # the sender's own range squared, per member
    if ranged:
        for m in range(n):
            mr2[m] = slot_r2[msender[m]]
    cd2 = np.empty(n, dtype=np.float64)
    cdist = np.empty(n, dtype=np.float64)
    cu = np.empty(n, dtype=np.float64)
    cidx = np.empty(n, dtype=np.int64)
    cfrac = np.empty(n, dtype=np.float64)
    cp = np.empty(n, dtype=np.float64)
    cinr = np.empty(n, dtype=np.bool_)
    ltx = np.empty(n, dtype=np.intp)
    lt = np.empty(n, dtype=np.float64)
    lb = np.empty(n, dtype=np.int64)
    perm = np.empty(n, dtype=np.int64)
    hist = np.empty(2 * n + 2, dtype=np.int64)
    t_lo, t_inv_span = _time_range(tx_time, dq, mult, extra_max)
    last = len(pdr) - 1
    lastf = float(last)
    p_last = pdr[last]
    pos = pos0
    candidates = 0
    for i in range(i0, len(rx_slots)):
        r = rx_slots[i]
        x = wx[r]
        y = wy[r]
        rbits = np.uint64(r) << _SHIFT_RX
        rr2 = r2  # the pair's range squared: the link's, or the receiver's own if shorter
        if ranged:
            rr2 = min(r2, slot_r2[r])
        if everyone:
            row_lo, row_hi = 0, 0
        else:
            row_lo = max(floor_index(y - radius, cell_m, cy0, ny), 0)
            row_hi = min(floor_index(y + radius, cell_m, cy0, ny), ny - 1)
        k = np.uint64(0)
        cands = 0
        for row in range(row_lo, row_hi + 1):
            if everyone:
                start, stop = 0, n
            else:
                lo, hi = row_span_rect(x, y, radius, row, cell_m, cell_w, cx0, cy0, nx)
                if lo > hi:
                    continue
                start, stop = cell_range(dense, begin, ukeys, row * nx + lo, row * nx + hi)
            # Runs are short (~40 members), so the vector loops below would spend much of their time in
            # their scalar remainders: round the run up to a multiple of 8 members (past its end, within
            # the arrays) and mask the extra ones out.
            run = stop - start
            cnt = min((run + 7) & ~7, n - start)
            xr = txs[start : start + cnt]
            yr = tys[start : start + cnt]
            tr = mtx[start : start + cnt]
            sr = msender[start : start + cnt]
            for j in range(cnt):  # vectorised: distance and the loss uniform of every member
                ddx = xr[j] - x
                ddy = yr[j] - y
                d2 = ddx * ddx + ddy * ddy
                cd2[j] = d2
                cdist[j] = math.sqrt(d2)
                cu[j] = uniform01(seed, (np.uint64(tr[j]) << _SHIFT_TX) | rbits)
            # The candidate work is split so that everything but the table gather vectorises.
            for j in range(cnt):  # vectorised: in range (rr2 is inf for an infinite range), table position
                pp = cdist[j] * pdr_inv_step
                ppc = min(pp, lastf - 1.0)
                kj = np.int64(ppc)
                cidx[j] = kj
                cfrac[j] = pp - kj
                cinr[j] = (cd2[j] <= rr2) & (sr[j] != r) & (j < run)
            if ranged:  # vectorised: within the sender's own range too
                mr = mr2[start : start + cnt]
                for j in range(cnt):
                    cinr[j] = cinr[j] & (cd2[j] <= mr[j])
            for j in range(cnt):  # the gather (LLVM keeps it scalar on this CPU model)
                kj = cidx[j]
                cp[j] = pdr[kj] + cfrac[j] * (pdr[kj + 1] - pdr[kj])
            for j in range(cnt):  # vectorised: loss decision (beyond the last knot the table is flat)
                pp = cdist[j] * pdr_inv_step
                p = p_last if pp >= lastf else cp[j]
                cands += cinr[j]
                cinr[j] = cinr[j] & (cu[j] < p)
            for j in range(cnt):  # branch-free compaction
                ltx[k] = tr[j]
                k += np.uint64(cinr[j])
        kept = int(k)
        if pos + kept > len(out_tx):
            return i, pos, candidates
        _finish_receiver(
            r, kept, ltx, lt, lb, perm, hist, tx_time, t_lo, t_inv_span, seed, dq, stepped, mult, mult_cdf,
            extra_p, extra_max, out_tx, out_rx, out_t, pos,
        )  # fmt: skip
        pos += kept
        candidates += cands
    return len(rx_slots), pos, candidates


@jit
def broadcast_kernel(
    txs: F64,
    tys: F64,
    mtx: IntP,
    msender: IntP,
    cell_m: float,
    cx0: int,
    cy0: int,
    nx: int,
    ny: int,
    dense: bool,
    begin: I64,
    ukeys: I64,
    cell_w: float,
    rx_slots: IntP,
    wx: F64,
    wy: F64,
    tx_time: F64,
    radius: float,
    pdr: F64,
    pdr_inv_step: float,
    dq: F64,
    stepped: bool,
    mult: F64,
    mult_cdf: F64,
    extra_p: float,
    extra_max: float,
    seed: np.uint64,
    out_tx: I32,
    out_rx: I32,
    out_t: F64,
    i0: int,
    pos0: int,
) -> tuple[int, int, int]:
    """Receiver-major broadcast over a grid of the transmissions (members ``mtx``, their senders
    ``msender``, positions ``txs, tys``; cells ``cell_w`` wide and ``cell_m`` tall). For each receiver in
    ``rx_slots[i0:]``: scan the grid rows within ``radius``, draw loss per candidate, draw delays for the
    kept ones, write them sorted.

    Returns (next receiver index, rows written, candidates counted); stops early (next < len) when the
    next receiver's rows would not fit the output arrays.
    """
    return _broadcast(
        txs, tys, mtx, msender, cell_m, cx0, cy0, nx, ny, dense, begin, ukeys, cell_w, rx_slots, wx, wy, tx_time,
        radius, np.empty(0, dtype=np.float64), False,
        (pdr, pdr_inv_step, dq, stepped, mult, mult_cdf, extra_p, extra_max), seed, out_tx, out_rx, out_t, i0, pos0,
    )  # fmt: skip


@jit
def broadcast_kernel_ranged(
    txs: F64,
    tys: F64,
    mtx: IntP,
    msender: IntP,
    cell_m: float,
    cx0: int,
    cy0: int,
    nx: int,
    ny: int,
    dense: bool,
    begin: I64,
    ukeys: I64,
    cell_w: float,
    rx_slots: IntP,
    wx: F64,
    wy: F64,
    tx_time: F64,
    radius: float,
    slot_r2: F64,
    pdr: F64,
    pdr_inv_step: float,
    dq: F64,
    stepped: bool,
    mult: F64,
    mult_cdf: F64,
    extra_p: float,
    extra_max: float,
    seed: np.uint64,
    out_tx: I32,
    out_rx: I32,
    out_t: F64,
    i0: int,
    pos0: int,
) -> tuple[int, int, int]:
    """:func:`broadcast_kernel` where actors have ranges of their own: ``slot_r2`` holds, per slot, the square of
    the actor's own range (inf: none), and a pair is a candidate only within the sender's and the receiver's
    (besides ``radius``)."""
    return _broadcast(
        txs, tys, mtx, msender, cell_m, cx0, cy0, nx, ny, dense, begin, ukeys, cell_w, rx_slots, wx, wy, tx_time,
        radius, slot_r2, True, (pdr, pdr_inv_step, dq, stepped, mult, mult_cdf, extra_p, extra_max), seed, out_tx,
        out_rx, out_t, i0, pos0,
    )  # fmt: skip


@jit
def pairs_delivery_kernel(
    wx: F64,
    wy: F64,
    sender: IntP,
    tx_time: F64,
    pair_tx: IntP,
    pair_rx: IntP,
    capacity: int,
    pdr: F64,
    pdr_inv_step: float,
    dq: F64,
    stepped: bool,
    mult: F64,
    mult_cdf: F64,
    extra_p: float,
    extra_max: float,
    seed: np.uint64,
    out_tx: I32,
    out_rx: I32,
    out_t: F64,
) -> int:
    """The draws and ordering of ``broadcast_kernel`` for given unique (tx, receiver) pairs."""
    begin = np.zeros(capacity + 1, dtype=np.int64)
    for e in range(len(pair_rx)):
        begin[pair_rx[e] + 1] += 1
    for r in range(capacity):
        begin[r + 1] += begin[r]
    head = begin[:-1].copy()
    by_rx = np.empty(len(pair_tx), dtype=np.intp)
    for e in range(len(pair_tx)):
        r = pair_rx[e]
        by_rx[head[r]] = pair_tx[e]
        head[r] += 1
    n = len(sender)
    ltx = np.empty(n, dtype=np.intp)
    lt = np.empty(n, dtype=np.float64)
    lb = np.empty(n, dtype=np.int64)
    perm = np.empty(n, dtype=np.int64)
    hist = np.empty(2 * n + 2, dtype=np.int64)
    t_lo, t_inv_span = _time_range(tx_time, dq, mult, extra_max)
    pos = 0
    for r in range(capacity):
        x = wx[r]
        y = wy[r]
        k = 0
        for e in range(begin[r], begin[r + 1]):
            tx = by_rx[e]
            s = sender[tx]
            ddx = wx[s] - x
            ddy = wy[s] - y
            d = math.sqrt(ddx * ddx + ddy * ddy)
            if uniform01(seed, draw_counter(tx, r)) < _pdr_at(d, pdr, pdr_inv_step):
                ltx[k] = tx
                k += 1
        _finish_receiver(
            r, k, ltx, lt, lb, perm, hist, tx_time, t_lo, t_inv_span, seed, dq, stepped, mult, mult_cdf,
            extra_p, extra_max, out_tx, out_rx, out_t, pos,
        )  # fmt: skip
        pos += k
    return pos


@jit
def canonical_kernel(
    xs: F64,
    ys: F64,
    mslots: IntP,
    cell_m: float,
    cx0: int,
    cy0: int,
    nx: int,
    ny: int,
    dense: bool,
    begin: I64,
    ukeys: I64,
    sender: IntP,
    sx: F64,
    sy: F64,
    radius: float,
    rx_mask: NDArray[np.bool_],
    use_mask: bool,
    slot_r2: F64,
    ranged: bool,
) -> tuple[IntP, IntP]:
    """Candidate (tx, receiver) pairs in the canonical (tx index, receiver slot) order (generic path).
    ``ranged``: as in :func:`broadcast_kernel`, a pair also lies within the sender's and the receiver's own
    range (``slot_r2``, squared, inf: none)."""
    r2 = radius * radius
    everyone = math.isinf(radius)
    n = len(xs)
    out_tx = np.empty(max(1024, 16 * len(sender)), dtype=np.intp)
    out_rx = np.empty(len(out_tx), dtype=np.intp)
    k = 0
    for tx in range(len(sender)):
        me = sender[tx]
        x = sx[tx]
        y = sy[tx]
        s2 = slot_r2[me] if ranged else r2
        first = k
        if everyone:
            row_lo, row_hi = 0, 0
        else:
            row_lo = max(floor_index(y - radius, cell_m, cy0, ny), 0)
            row_hi = min(floor_index(y + radius, cell_m, cy0, ny), ny - 1)
        for row in range(row_lo, row_hi + 1):
            if everyone:
                start, stop = 0, n
            else:
                lo, hi = row_span(x, y, radius, row, cell_m, cx0, cy0, nx)
                if lo > hi:
                    continue
                start, stop = cell_range(dense, begin, ukeys, row * nx + lo, row * nx + hi)
            if k + (stop - start) > len(out_tx):
                grown = max(2 * len(out_tx), k + (stop - start))
                new_tx = np.empty(grown, dtype=np.intp)
                new_rx = np.empty(grown, dtype=np.intp)
                new_tx[:k] = out_tx[:k]
                new_rx[:k] = out_rx[:k]
                out_tx = new_tx
                out_rx = new_rx
            for m in range(start, stop):
                ddx = xs[m] - x
                ddy = ys[m] - y
                d2 = ddx * ddx + ddy * ddy
                if not (d2 <= r2 or everyone):
                    continue
                rx = mslots[m]
                if rx == me or (use_mask and not rx_mask[rx]):
                    continue
                if ranged and not (d2 <= s2 and d2 <= slot_r2[rx]):
                    continue
                out_tx[k] = tx
                out_rx[k] = rx
                k += 1
        out_rx[first:k] = np.sort(out_rx[first:k])
    return out_tx[:k], out_rx[:k]


# -- conflict detection ------------------------------------------------------------------------------
# Scalar ports of the formulas in docs/CORE.md ("Conflict detection"), one pair at a time. Per-actor
# motion arrays are indexed by slot: s (speed), dx, dy (direction of travel), a (longitudinal
# acceleration), ts (stop time), hl, hw (half length, half width), ch, sh (box axis), reach. The pair
# code gets each actor's values as a tuple of floats (``Actor``), not the arrays: an array handed to
# inlined code inside a loop with this much control flow keeps an atomic incref / decref per pair.

CONTACT_TOL_M = 1e-6  # slack in the separating-axis test at candidate contact times
PRUNE_SLACK_M = 1e-4  # extra margin of the conservative pruning tests (rounding)
N_SUB = 8  # sub-intervals of the horizon in the separating-axis pruning (bisection depth 3: fixed)
REAR_END = 1
CROSSING = 2
HEAD_ON = 3
LATERAL = 4


@jit
def path_length(s: float, a: float, ts: float, t: float) -> float:
    tau = min(t, ts)
    return s * tau + 0.5 * a * tau * tau


@jit
def motion_kernel(
    vx: F64,
    vy: F64,
    ax: F64,
    ay: F64,
    length: F64,
    width: F64,
    speed: F64,
    ch: F64,
    sh: F64,
    circ: F64,
    ca: bool,
    horizon: float,
    speed_eps: float,
) -> tuple[F64, F64, F64, F64, F64, F64, F64, F64]:
    """Per-actor motion (s, dx, dy, a, ts, hl, hw, reach) as in docs/CORE.md "Motion models". The
    transcendental parts (speed = hypot(vx, vy), cos/sin of the heading, circ = hypot(hl, hw)) come
    from numpy, so every value is bit-for-bit what the numpy formulas give."""
    n = len(vx)
    s = np.empty(n)
    dx = np.empty(n)
    dy = np.empty(n)
    a = np.empty(n)
    ts = np.empty(n)
    hl = np.empty(n)
    hw = np.empty(n)
    reach = np.empty(n)
    for k in range(n):
        sp = speed[k]
        moving = sp > speed_eps
        dxk = vx[k] / sp if moving else ch[k]
        dyk = vy[k] / sp if moving else sh[k]
        sk = sp if moving else 0.0
        ak = ax[k] * dxk + ay[k] * dyk if ca else 0.0
        tsk = sk / -ak if ak < 0.0 else math.inf
        s[k] = sk
        dx[k] = dxk
        dy[k] = dyk
        a[k] = ak
        ts[k] = tsk
        hl[k] = 0.5 * length[k]
        hw[k] = 0.5 * width[k]
        reach[k] = max(path_length(sk, ak, tsk, horizon), 0.0) + circ[k]
    return s, dx, dy, a, ts, hl, hw, reach


@jit
def time_to_path_length(s: float, a: float, ts: float, dist: float) -> float:
    """First time with L(t) = dist; inf if never reached; 0 if dist <= 0."""
    disc = s * s + 2.0 * a * dist
    t = 2.0 * dist / (s + math.sqrt(max(disc, 0.0)))
    if disc < 0.0:
        t = math.inf
    lmax = s * ts + 0.5 * a * ts * ts if math.isfinite(ts) else math.inf
    if dist > lmax + 1e-12:
        t = math.inf
    if dist <= 0.0:
        t = 0.0
    if math.isnan(t):
        t = math.inf
    return t


@jit
def _np_max(a: float, b: float) -> float:
    """np.maximum for scalars: nan if either is nan."""
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return a if a >= b else b


@jit
def _sign(v: float) -> float:
    if v > 0.0:
        return 1.0
    if v < 0.0:
        return -1.0
    return v  # 0.0, -0.0 or nan, as np.sign


@jit
def _speed_at(s: float, a: float, ts: float, t: float) -> float:
    return s + a * min(t, ts)


@jit
def _separated_lin(
    cu: float,
    diu: float,
    dju: float,
    rho: float,
    li0: float,
    vi0: float,
    abs_ai: float,
    lj0: float,
    vj0: float,
    abs_aj: float,
    tau: float,
) -> bool:
    """Axis projection over [t0, t0 + tau] stays outside [-rho, rho]: each path linearised at t0 (path
    length, speed) with the CA remainder |L(t) - L(t0) - v0 (t - t0)| <= |a| (t - t0)^2 / 2, which also
    holds across a stop."""
    base = cu + dju * lj0 - diu * li0
    step = (dju * vj0 - diu * vi0) * tau
    err = 0.5 * (abs(dju) * abs_aj + abs(diu) * abs_ai) * tau * tau
    lim = rho + CONTACT_TOL_M + PRUNE_SLACK_M
    return base + min(step, 0.0) - err > lim or base + max(step, 0.0) + err < -lim


@jit
def _live_leaves(
    si: float,
    ai: float,
    tsi: float,
    sj: float,
    aj: float,
    tsj: float,
    horizon: float,
    cu_a: float,
    di_a: float,
    dj_a: float,
    rho_a: float,
    cu_b: float,
    di_b: float,
    dj_b: float,
    rho_b: float,
    cu_c: float,
    di_c: float,
    dj_c: float,
    rho_c: float,
    cu_d: float,
    di_d: float,
    dj_d: float,
    rho_d: float,
) -> int:
    """Bit k set: sub-interval k of the horizon (N_SUB = 8 equal parts) is not proven contact-free.

    Bisection from the two halves of [0, H]: a node is dropped when some axis separates the boxes on it
    (linearised bound); its halves are tested otherwise, down to the eighths. Sub-interval edges are
    k * (horizon / N_SUB), bit for bit np.linspace(0, horizon, N_SUB + 1) (k * step + 0.0, and
    N_SUB * step == horizon exactly since N_SUB is a power of two)."""
    live = 0
    sub_w = horizon / N_SUB
    abs_ai = abs(ai)
    abs_aj = abs(aj)
    # DFS stack of nodes packed 5 bits each (depth << 3 | index); at most 4 entries are pending. Start
    # from the two halves of the horizon (the swept boxes already did the coarse work).
    stack = ((1 << 3 | 1) << 5) | (1 << 3 | 0)
    pending = 2
    while pending > 0:
        pending -= 1
        node = stack & 31
        stack >>= 5
        d = node >> 3
        k = node & 7
        width = 8 >> d  # leaves covered
        lo_leaf = k * width
        t0 = lo_leaf * sub_w
        tau = (lo_leaf + width) * sub_w - t0
        li0 = path_length(si, ai, tsi, t0)
        lj0 = path_length(sj, aj, tsj, t0)
        vi0 = _speed_at(si, ai, tsi, t0)
        vj0 = _speed_at(sj, aj, tsj, t0)
        if (
            _separated_lin(cu_a, di_a, dj_a, rho_a, li0, vi0, abs_ai, lj0, vj0, abs_aj, tau)
            or _separated_lin(cu_b, di_b, dj_b, rho_b, li0, vi0, abs_ai, lj0, vj0, abs_aj, tau)
            or _separated_lin(cu_c, di_c, dj_c, rho_c, li0, vi0, abs_ai, lj0, vj0, abs_aj, tau)
            or _separated_lin(cu_d, di_d, dj_d, rho_d, li0, vi0, abs_ai, lj0, vj0, abs_aj, tau)
        ):
            continue
        if d == 3:
            live |= 1 << k
            continue
        stack = (stack << 10) | (((d + 1) << 3 | (2 * k + 1)) << 5) | ((d + 1) << 3 | (2 * k))
        pending += 2
    return live


@jit
def _contact_at(
    t: float,
    si: float,
    ai: float,
    tsi: float,
    sj: float,
    aj: float,
    tsj: float,
    sat: tuple[
        float,
        float,
        float,
        float,
        float,
        float,
        float,
        float,
        float,
        float,
        float,
        float,
        float,
        float,
        float,
        float,
        float,
        float,
    ],
) -> bool:
    """The full SAT at time t (tolerance CONTACT_TOL_M). ``sat``: (cx, cy, dxi, dyi, dxj, dyj) then
    (ux, uy, rho) of the four axes."""
    cx, cy, dxi, dyi, dxj, dyj, ux0, uy0, rho0, ux1, uy1, rho1, ux2, uy2, rho2, ux3, uy3, rho3 = sat
    li = path_length(si, ai, tsi, t)
    lj = path_length(sj, aj, tsj, t)
    rx = cx + dxj * lj - dxi * li
    ry = cy + dyj * lj - dyi * li
    sep = abs(rx * ux0 + ry * uy0) - rho0
    sep = _np_max(sep, abs(rx * ux1 + ry * uy1) - rho1)
    sep = _np_max(sep, abs(rx * ux2 + ry * uy2) - rho2)
    sep = _np_max(sep, abs(rx * ux3 + ry * uy3) - rho3)
    return sep <= CONTACT_TOL_M


# One actor's motion: (x, y, s, dx, dy, a, ts, hl, hw, ch, sh, reach, circ).
Actor = tuple[float, float, float, float, float, float, float, float, float, float, float, float, float]


@jit
def conflict_pair(
    i: int,
    j: int,
    act_i: Actor,
    act_j: Actor,
    horizon: float,
    max_pet: float,
    cos_same: float,
    cos_head_on: float,
) -> tuple[bool, int, int, int, float, float, float, float, float, bool, float]:
    """Evaluate the directed pair (i, j) with motions act_i, act_j. Returns (report, out_i, out_j, kind, ttc, pet, drac,
    t_conflict_out_i, t_conflict_out_j, overlapping, distance); out_i/out_j are swapped for a REAR_END
    where j is the follower."""
    nope = (False, i, j, 0, math.inf, math.nan, 0.0, math.nan, math.nan, False, 0.0)
    xi, yi, si, dxi, dyi, ai, tsi, hli, hwi, cih, sih, reach_i, circ_i = act_i
    xj, yj, sj, dxj, dyj, aj, tsj, hlj, hwj, cjh, sjh, reach_j, circ_j = act_j
    cx = xj - xi
    cy = yj - yi
    rr = reach_i + reach_j + PRUNE_SLACK_M
    if not cx * cx + cy * cy <= rr * rr * (1.0 + 1e-12):
        return nope

    # separating axes: e_i, n_i, e_j, n_j
    cc = abs(cih * cjh + sih * sjh)
    ss = abs(cih * sjh - sih * cjh)
    rho0 = hli + hlj * cc + hwj * ss
    rho1 = hwi + hlj * ss + hwj * cc
    rho2 = hlj + hli * cc + hwi * ss
    rho3 = hwj + hli * ss + hwi * cc
    ux0, ux1, ux2, ux3 = cih, -sih, cjh, -sjh
    uy0, uy1, uy2, uy3 = sih, cih, sjh, cjh
    cu0 = cx * ux0 + cy * uy0
    cu1 = cx * ux1 + cy * uy1
    cu2 = cx * ux2 + cy * uy2
    cu3 = cx * ux3 + cy * uy3
    di0 = dxi * ux0 + dyi * uy0
    di1 = dxi * ux1 + dyi * uy1
    di2 = dxi * ux2 + dyi * uy2
    di3 = dxi * ux3 + dyi * uy3
    dj0 = dxj * ux0 + dyj * uy0
    dj1 = dxj * ux1 + dyj * uy1
    dj2 = dxj * ux2 + dyj * uy2
    dj3 = dxj * ux3 + dyj * uy3
    lmax_i = path_length(si, ai, tsi, horizon)
    lmax_j = path_length(sj, aj, tsj, horizon)
    cos_d = dxi * dxj + dyi * dyj
    crossing = cos_d < cos_same and cos_d > cos_head_on
    cross_d = dxi * dyj - dyi * dxj
    ai_c = math.nan
    aj_c = math.nan
    may_cross = False
    if crossing:
        ai_c = (cx * dyj - cy * dxj) / cross_d  # path distance of i to the crossing point
        aj_c = (cx * dyi - cy * dxi) / cross_d
        travel_i = reach_i - circ_i
        travel_j = reach_j - circ_j
        tol_i = 1e-9 * (1.0 + travel_i) + PRUNE_SLACK_M
        tol_j = 1e-9 * (1.0 + travel_j) + PRUNE_SLACK_M
        may_cross = ai_c >= 0.0 and aj_c >= 0.0 and ai_c <= travel_i + tol_i and aj_c <= travel_j + tol_j
    sep0 = abs(cu0) - rho0
    sep0 = _np_max(sep0, abs(cu1) - rho1)
    sep0 = _np_max(sep0, abs(cu2) - rho2)
    sep0 = _np_max(sep0, abs(cu3) - rho3)
    overlapping = sep0 <= 0.0
    live = 0  # bit k: sub-interval k may hold a contact (conservative pruning, see _live_leaves)
    if not overlapping:
        live = _live_leaves(
            si, ai, tsi, sj, aj, tsj, horizon,
            cu1, di1, dj1, rho1, cu3, di3, dj3, rho3, cu0, di0, dj0, rho0, cu2, di2, dj2, rho2,
        )  # fmt: skip
    if not (overlapping or live or may_cross):
        return nope

    # --- TTC: earliest root of u.r(t) = +-rho on each motion piece, checked with the full SAT ---
    ttc = math.inf
    if overlapping:
        ttc = 0.0
    elif live:
        t1 = min(tsi, tsj, horizon)
        t2 = min(max(tsi, tsj), horizon)
        sub_w = horizon / N_SUB
        # Candidate times in the order (t = 0; axis, piece, sign, root): the coefficients of a piece and
        # the discriminant of a sign are computed once for the roots that share them.
        sat = (cx, cy, dxi, dyi, dxj, dyj, ux0, uy0, rho0, ux1, uy1, rho1, ux2, uy2, rho2, ux3, uy3, rho3)
        if live & 1 and _contact_at(0.0, si, ai, tsi, sj, aj, tsj, sat):
            ttc = 0.0
        for axis in range(4):
            if axis == 0:
                cu, diu, dju, rho = cu0, di0, dj0, rho0
            elif axis == 1:
                cu, diu, dju, rho = cu1, di1, dj1, rho1
            elif axis == 2:
                cu, diu, dju, rho = cu2, di2, dj2, rho2
            else:
                cu, diu, dju, rho = cu3, di3, dj3, rho3
            # roots of both signs, reused by the next piece when its coefficients are the same (no stop
            # in between: typically the pieces [H, H] after a first piece [0, H])
            r00 = r01 = r10 = r11 = math.nan
            prev_i = prev_j = False
            have = False
            for piece in range(3):
                if piece == 0:
                    lo, hi = 0.0, t1
                elif piece == 1:
                    lo, hi = t1, t2
                else:
                    lo, hi = t2, horizon
                if lo - 1e-9 >= ttc:
                    continue
                mov_i = tsi >= hi
                mov_j = tsj >= hi
                if not (have and mov_i == prev_i and mov_j == prev_j):
                    have = True
                    prev_i = mov_i
                    prev_j = mov_j
                    a0 = cu + (0.0 if mov_j else dju * lmax_j) - (0.0 if mov_i else diu * lmax_i)
                    b = (dju * sj if mov_j else 0.0) - (diu * si if mov_i else 0.0)
                    c2 = 0.5 * ((dju * aj if mov_j else 0.0) - (diu * ai if mov_i else 0.0))
                    for sign_k in range(2):
                        c0 = a0 - (1.0 if sign_k == 0 else -1.0) * rho
                        # roots of c2 t^2 + b t + c0 (numerically stable form; linear when c2 == 0)
                        if c2 != 0.0:
                            disc = b * b - 4.0 * c2 * c0
                            sq = math.sqrt(disc) if disc >= 0.0 else math.nan
                            q = -0.5 * (b + (sq if b >= 0.0 else -sq))
                            root0 = q / c2
                            root1 = c0 / q
                        else:
                            root0 = -c0 / b
                            root1 = math.nan  # no second root (never inside a piece)
                        if sign_k == 0:
                            r00, r01 = root0, root1
                        else:
                            r10, r11 = root0, root1
                for root_k in range(4):
                    if root_k == 0:
                        root = r00
                    elif root_k == 1:
                        root = r01
                    elif root_k == 2:
                        root = r10
                    else:
                        root = r11
                    if not (root >= lo - 1e-9 and root <= hi + 1e-9):
                        continue
                    t = min(max(root, lo), hi)
                    if t >= ttc:
                        continue
                    # skip times inside sub-intervals proven separated
                    kf = int(t / sub_w)
                    ok = False
                    for kk in range(max(kf - 1, 0), min(kf + 2, N_SUB)):
                        if live & (1 << kk) and t >= kk * sub_w - 1e-9 and t <= (kk + 1) * sub_w + 1e-9:
                            ok = True
                    if ok and _contact_at(t, si, ai, tsi, sj, aj, tsj, sat):
                        ttc = min(ttc, t)

    # --- crossing: times to the crossing point and the conflict area, PET ---
    pet = math.nan
    t_ci = math.nan
    t_cj = math.nan
    pet_conflict = False
    cross_drac = 0.0
    if crossing:
        if ai_c >= 0.0:
            t_ci = time_to_path_length(si, ai, tsi, ai_c)
        if aj_c >= 0.0:
            t_cj = time_to_path_length(sj, aj, tsj, aj_c)
        times_ok = t_ci >= 0.0 and t_ci <= horizon and t_cj >= 0.0 and t_cj <= horizon
        if times_ok or overlapping or math.isfinite(ttc):  # otherwise not reported: PET not needed
            sin_abs = abs(cross_d)
            cos_abs = abs(cos_d)
            h_i = (hwj + hwi * cos_abs) / sin_abs  # half extent of the conflict area along path i
            h_j = (hwi + hwj * cos_abs) / sin_abs
            in_i = time_to_path_length(si, ai, tsi, max(ai_c - h_i - hli, 0.0))
            out_i = time_to_path_length(si, ai, tsi, max(ai_c + h_i + hli, 0.0))
            in_j = time_to_path_length(sj, aj, tsj, max(aj_c - h_j - hlj, 0.0))
            out_j = time_to_path_length(sj, aj, tsj, max(aj_c + h_j + hlj, 0.0))
            i_first = in_i < in_j or (in_i == in_j and out_i <= out_j)
            exit_first = out_i if i_first else out_j
            enter_second = in_j if i_first else in_i
            pet_raw = enter_second - exit_first
            pet = 0.0 if math.isnan(pet_raw) else max(pet_raw, 0.0)
            if math.isinf(enter_second):
                pet = math.inf
            pet_conflict = times_ok and pet <= max_pet
            # DRAC for the second actor: enter no earlier than the first leaves
            s2 = sj if i_first else si
            dist2 = (aj_c - h_j - hlj) if i_first else (ai_c - h_i - hli)
            t_exit = exit_first
            arrive_late = 2.0 * (s2 * t_exit - dist2) / (t_exit * t_exit)
            stop = s2 * s2 / (2.0 * dist2)
            need_stop = (not math.isfinite(t_exit)) or (arrive_late * t_exit > s2)
            drac_c = stop if need_stop else arrive_late
            if dist2 <= 0.0:
                drac_c = math.inf
            cross_drac = 0.0 if (enter_second >= exit_first or s2 <= 0.0) else _np_max(drac_c, 0.0)

    if not (math.isfinite(ttc) or pet_conflict or overlapping):
        return nope

    # --- classification ---
    kind = CROSSING if crossing else HEAD_ON
    swap = False
    if cos_d >= cos_same:
        t_ref = ttc if math.isfinite(ttc) else 0.0
        li = path_length(si, ai, tsi, t_ref)
        lj = path_length(sj, aj, tsj, t_ref)
        rx = cx + dxj * lj - dxi * li
        ry = cy + dyj * lj - dyi * li
        mx = dxi + dxj
        my = dyi + dyj
        mn = math.hypot(mx, my)
        mx, my = mx / mn, my / mn
        lon = rx * mx + ry * my
        lat = -rx * my + ry * mx
        rear = abs(lon) / (hli + hlj) >= abs(lat) / (hwi + hwj)
        kind = REAR_END if rear else LATERAL
        swap = rear and lon < 0.0

    # --- DRAC ---
    if crossing:
        drac = cross_drac
    else:
        vx = dxj * sj - dxi * si
        vy = dyj * sj - dyi * si
        best_gap = -math.inf
        best_vc = 0.0
        for k in range(4):
            if k == 0:
                cu, ux, uy, rho = cu0, ux0, uy0, rho0
            elif k == 1:
                cu, ux, uy, rho = cu1, ux1, uy1, rho1
            elif k == 2:
                cu, ux, uy, rho = cu2, ux2, uy2, rho2
            else:
                cu, ux, uy, rho = cu3, ux3, uy3, rho3
            gap = abs(cu) - rho
            vc = -_sign(cu) * (vx * ux + vy * uy)
            if gap > best_gap:
                best_gap = gap
                best_vc = vc
        closing = best_vc > 0.0 and (math.isfinite(ttc) or overlapping)
        drac = best_vc * best_vc / (2.0 * best_gap) if best_gap > 0.0 else math.inf
        if not closing:
            drac = 0.0
    dist = math.hypot(cx, cy)
    if swap:
        return (True, j, i, kind, ttc, pet, drac, t_cj, t_ci, overlapping, dist)
    return (True, i, j, kind, ttc, pet, drac, t_ci, t_cj, overlapping, dist)


@jit_inline
def _put(out: F64, r: int, res: tuple[bool, int, int, int, float, float, float, float, float, bool, float]) -> None:
    """Write one reported pair into row r of the (rows, 10) result table. The callers pass a table they
    do not reassign in their loop (a growing table would be a loop-carried array: refcounted per pair)."""
    n = np.uint64(r)
    out[n, 0] = res[1]
    out[n, 1] = res[2]
    out[n, 2] = res[3]
    out[n, 3] = res[4]
    out[n, 4] = res[5]
    out[n, 5] = res[6]
    out[n, 6] = res[7]
    out[n, 7] = res[8]
    out[n, 8] = 1.0 if res[9] else 0.0
    out[n, 9] = res[10]


@jit
def conflicts_of_pairs(
    pi: IntP,
    pj: IntP,
    x: F64,
    y: F64,
    s: F64,
    dx: F64,
    dy: F64,
    a: F64,
    ts: F64,
    hl: F64,
    hw: F64,
    ch: F64,
    sh: F64,
    reach: F64,
    circ: F64,
    horizon: float,
    max_pet: float,
    cos_same: float,
    cos_head_on: float,
    out: F64,
) -> int:
    """Evaluate the given directed pairs (slots >= 0) into ``out`` (see ``_put``; at least len(pi) rows);
    returns the row count."""
    n = 0
    for e in range(len(pi)):
        p = np.uint64(pi[e])  # slots are >= 0: unsigned indices skip numba's negative-index handling
        q = np.uint64(pj[e])
        act_i = (x[p], y[p], s[p], dx[p], dy[p], a[p], ts[p], hl[p], hw[p], ch[p], sh[p], reach[p], circ[p])
        act_j = (x[q], y[q], s[q], dx[q], dy[q], a[q], ts[q], hl[q], hw[q], ch[q], sh[q], reach[q], circ[q])
        res = conflict_pair(pi[e], pj[e], act_i, act_j, horizon, max_pet, cos_same, cos_head_on)
        if res[0]:
            _put(out, n, res)
            n += 1
    return n


@jit
def conflicts_swept(
    slots: IntP,
    max_cells: int,
    box_margin: float,
    x: F64,
    y: F64,
    s: F64,
    dx: F64,
    dy: F64,
    a: F64,
    ts: F64,
    hl: F64,
    hw: F64,
    ch: F64,
    sh: F64,
    reach: F64,
    circ: F64,
    horizon: float,
    max_pet: float,
    cos_same: float,
    cos_head_on: float,
    out: F64,
) -> tuple[int, int]:
    """Swept-box broad phase, then ``conflict_pair`` on every candidate (i < j by slot).

    Each actor's footprint keeps its heading, so its sweep over the horizon has the exact axis-aligned
    box: the path segment widened by the footprint's own half extents (plus ``box_margin`` and a
    relative 1e-9 for rounding). Boxes are entered in every cell they cover (cell: the mean longer box
    side, at least 10 m, doubled until the grid has at most ``max_cells`` cells). Two actors are
    candidates when their boxes overlap; the pair is taken in the one cell that holds the lower-left
    corner of the overlap. Reported pairs go into ``out`` (see ``_put``) as long as it has room; returns
    (rows, candidate pairs): rows > len(out) means the table was too small (nothing else differs).
    """
    n = len(slots)
    lox = np.empty(n)
    loy = np.empty(n)
    hix = np.empty(n)
    hiy = np.empty(n)
    side_sum = 0.0
    for m in range(n):
        k = slots[m]
        travel = reach[k] - circ[k]
        x0 = x[k]
        y0 = y[k]
        x1 = x0 + dx[k] * travel
        y1 = y0 + dy[k] * travel
        c = abs(ch[k])
        sn = abs(sh[k])
        pad = box_margin + 1e-9 * (abs(x0) + abs(y0) + travel)
        ex = hl[k] * c + hw[k] * sn + pad
        ey = hl[k] * sn + hw[k] * c + pad
        lox[m] = min(x0, x1) - ex
        loy[m] = min(y0, y1) - ey
        hix[m] = max(x0, x1) + ex
        hiy[m] = max(y0, y1) + ey
        side_sum += max(hix[m] - lox[m], hiy[m] - loy[m])
    cell_m = max(side_sum / max(n, 1), 10.0)
    if n < 2:
        return 0, 0
    c = cell_m
    while True:
        inv = 1.0 / c
        gx0 = np.floor(lox.min() * inv)
        gy0 = np.floor(loy.min() * inv)
        nx = int(np.floor(hix.max() * inv) - gx0) + 1
        ny = int(np.floor(hiy.max() * inv) - gy0) + 1
        if nx * ny <= max_cells:
            break
        c *= 2.0
    cx_lo = np.empty(n, dtype=np.int64)
    cx_hi = np.empty(n, dtype=np.int64)
    cy_lo = np.empty(n, dtype=np.int64)
    cy_hi = np.empty(n, dtype=np.int64)
    begin = np.zeros(nx * ny + 1, dtype=np.int64)
    for m in range(n):
        cx_lo[m] = int(np.floor(lox[m] * inv) - gx0)
        cx_hi[m] = int(np.floor(hix[m] * inv) - gx0)
        cy_lo[m] = int(np.floor(loy[m] * inv) - gy0)
        cy_hi[m] = int(np.floor(hiy[m] * inv) - gy0)
        for gy in range(cy_lo[m], cy_hi[m] + 1):
            for gx in range(cx_lo[m], cx_hi[m] + 1):
                begin[gy * nx + gx + 1] += 1
    for k in range(nx * ny):
        begin[k + 1] += begin[k]
    head = begin[:-1].copy()
    n_entries = begin[nx * ny]
    entry = np.empty(n_entries, dtype=np.int64)
    ebox = np.empty((n_entries, 4))  # the member's box and lower-left cell, next to its entry
    ecell = np.empty((n_entries, 2), dtype=np.int64)
    for m in range(n):
        for gy in range(cy_lo[m], cy_hi[m] + 1):
            for gx in range(cx_lo[m], cx_hi[m] + 1):
                key = gy * nx + gx
                h = head[key]
                entry[h] = m
                ebox[h, 0] = lox[m]
                ebox[h, 1] = loy[m]
                ebox[h, 2] = hix[m]
                ebox[h, 3] = hiy[m]
                ecell[h, 0] = cx_lo[m]
                ecell[h, 1] = cy_lo[m]
                head[key] = h + 1
    fill = 1
    for k in range(nx * ny):
        fill = max(fill, begin[k + 1] - begin[k])
    buf = np.empty(fill, dtype=np.int64)
    own = begin[:-1].copy()  # per cell: the entry of the member being scanned (entries ascend)
    rows = 0
    candidates = 0
    for m in range(n):
        lox_m, loy_m, hix_m, hiy_m = lox[m], loy[m], hix[m], hiy[m]
        cxl_m, cyl_m = cx_lo[m], cy_lo[m]
        i = slots[m]
        p = np.uint64(i)
        act_i = (x[p], y[p], s[p], dx[p], dy[p], a[p], ts[p], hl[p], hw[p], ch[p], sh[p], reach[p], circ[p])
        for gy in range(cy_lo[m], cy_hi[m] + 1):
            for gx in range(cx_lo[m], cx_hi[m] + 1):
                key = gy * nx + gx
                e0 = own[key] + 1  # the entries after m's own are the members o > m
                own[key] = e0
                nb = 0
                for e in range(e0, begin[key + 1]):
                    ue = np.uint64(e)
                    miss = (
                        (ebox[ue, 0] > hix_m)
                        | (lox_m > ebox[ue, 2])
                        | (ebox[ue, 1] > hiy_m)
                        | (loy_m > ebox[ue, 3])
                        | (max(cxl_m, ecell[ue, 0]) != gx)  # counted in the cell of the overlap's lower-left corner
                        | (max(cyl_m, ecell[ue, 1]) != gy)
                    )
                    buf[nb] = entry[ue]  # branch-free: kept only if it passed
                    nb += 0 if miss else 1
                for b in range(nb):
                    candidates += 1
                    j = slots[np.uint64(buf[b])]
                    q = np.uint64(j)
                    act_j = (x[q], y[q], s[q], dx[q], dy[q], a[q], ts[q], hl[q], hw[q], ch[q], sh[q], reach[q], circ[q])
                    res = conflict_pair(i, j, act_i, act_j, horizon, max_pet, cos_same, cos_head_on)
                    if res[0]:
                        if rows < out.shape[0]:
                            _put(out, rows, res)
                        rows += 1
    return rows, candidates


@jit
def conflict_order(table: F64, rows: int, capacity: int) -> IntP:
    """Row order of the result table sorted by (i, j), stable (equal pairs keep their row order): two stable
    counting sorts (by j, then by i), O(rows + capacity). For few rows in a large world the caller sorts
    the keys i * capacity + j with numpy's stable sort instead (same order)."""
    ik = np.empty(rows, dtype=np.int64)
    jk = np.empty(rows, dtype=np.int64)
    for r in range(rows):
        ik[r] = np.int64(table[r, 0])
        jk[r] = np.int64(table[r, 1])
    by_j, _ = counting_order(jk, capacity)
    by_i, _ = counting_order(ik[by_j], capacity)
    return by_j[by_i]


@jit
def conflict_arrays(table: F64, order: IntP) -> tuple[IntP, IntP, I64, F64, F64, F64, F64, F64, NDArray[np.bool_], F64]:
    """Result table rows in ``order`` -> the Conflicts columns."""
    rows = len(order)
    oi = np.empty(rows, dtype=np.intp)
    oj = np.empty(rows, dtype=np.intp)
    kind = np.empty(rows, dtype=np.int64)
    cols = np.empty((7, rows), dtype=np.float64)
    ovl = np.empty(rows, dtype=np.bool_)
    for q in range(rows):
        r = order[q]
        oi[q] = np.intp(table[r, 0])
        oj[q] = np.intp(table[r, 1])
        kind[q] = np.int64(table[r, 2])
        cols[0, q] = table[r, 3]
        cols[1, q] = table[r, 4]
        cols[2, q] = table[r, 5]
        cols[3, q] = table[r, 6]
        cols[4, q] = table[r, 7]
        ovl[q] = table[r, 8] != 0.0
        cols[5, q] = table[r, 9]
    return oi, oj, kind, cols[0], cols[1], cols[2], cols[3], cols[4], ovl, cols[5]


@jit_inline
def could_touch(
    p: np.uint64 | int,
    q: np.uint64 | int,
    x: F64,
    y: F64,
    vx: F64,
    vy: F64,
    acc: F64,
    circ: F64,
    within: float,
    slack: float,
) -> bool:
    """Could the boxes of slots ``p`` and ``q`` touch within ``within`` s (``pairs_kept``' test; a value that is
    not a number: True)?"""
    cx = x[q] - x[p]
    cy = y[q] - y[p]
    ux = vx[q] - vx[p]
    uy = vy[q] - vy[p]
    reach = circ[p] + circ[q] + math.sqrt(ux * ux + uy * uy) * within + 0.5 * (acc[p] + acc[q]) * within * within
    reach += slack
    return not (cx * cx + cy * cy > reach * reach)


@jit
def pairs_kept(
    pi: IntP,
    pj: IntP,
    hi: int,
    active: NDArray[np.bool_],
    touch: bool,
    x: F64,
    y: F64,
    vx: F64,
    vy: F64,
    acc: F64,
    circ: F64,
    within: float,
    slack: float,
    oi: IntP,
    oj: IntP,
) -> int:
    """The directed pairs (``pi[e]``, ``pj[e]``) of two distinct active slots below ``hi``, in order, written to
    ``oi``/``oj`` (as long as ``pi``); returns how many. With ``touch``, only those whose boxes could touch within
    ``within`` s, each moving along a straight line with its acceleration's component along it (at most ``acc``,
    |a|), stopping at rest: their velocities change by at most |a| tau each, so the centres stay at least
    |r| - |v_j - v_i| H - (|a_i| + |a_j|) H^2 / 2 apart, and boxes touch only within their circumradii's sum;
    ``slack`` m more for rounding. A value that is not a number keeps the pair (the comparison is False)."""
    w = 0
    for e in range(len(pi)):
        a = pi[e]
        b = pj[e]
        if a == b or a < 0 or b < 0 or a >= hi or b >= hi:
            continue
        p = np.uint64(a)
        q = np.uint64(b)
        if not (active[p] and active[q]):
            continue
        if touch and not could_touch(p, q, x, y, vx, vy, acc, circ, within, slack):
            continue
        oi[w] = a
        oj[w] = b
        w += 1
    return w


# -- when each receiver last heard each sender (the fleet's FCW pairs) -----------------------------


@jit
def heard_touching(
    table: I32,
    rows: I64,
    cols: I64,
    least: int,
    start: int,
    row_slot: I64,
    col_slot: I64,
    x: F64,
    y: F64,
    vx: F64,
    vy: F64,
    acc: F64,
    circ: F64,
    within: float,
    slack: float,
    oi: I64,
    oj: I64,
) -> tuple[int, int]:
    """From row ``start`` of ``rows`` on, the (i, j) with ``table[rows[i], cols[j]] >= least`` in row-major order
    whose slots ``row_slot[i]`` and ``col_slot[j]`` could touch within ``within`` s (``could_touch``, ``pairs_kept``'
    test), written as those slots to ``oi``/``oj``. Stops before a row that might not fit (one needs up to
    ``len(cols)`` places): returns the next row to do (``len(rows)``: done) and how many pairs were written."""
    m = len(cols)
    cap = len(oi)
    hits = np.empty(m, dtype=np.uint8)
    w = 0
    i = start
    while i < len(rows):
        if w + m > cap:
            break
        row = table[rows[i]]
        for j in range(m):  # (a loop without a branch, which LLVM vectorises; then the few hits)
            hits[j] = row[cols[j]] >= least
        p = row_slot[i]
        for j in range(m):
            if hits[j]:
                q = col_slot[j]
                if could_touch(p, q, x, y, vx, vy, acc, circ, within, slack):
                    oi[w] = p
                    oj[w] = q
                    w += 1
        i += 1
    return i, w


@jit
def stamp_heard(
    table: I32, counts: I64, envelope: I64, row_of: I64, col_of: I64, sender_of: I64, receiver_of: I64, value: int
) -> None:
    """Per delivery (receiver ``v``: the deliveries come in runs of ``counts[v]``, envelope ``e``): set
    ``table[row_of[v], col_of[e]] = value`` where both are >= 0 and the envelope's sender (``sender_of[e]``) is not
    the receiver (``receiver_of[v]``)."""
    d = 0
    for v in range(len(counts)):
        r = row_of[v]
        me = receiver_of[v]
        end = d + counts[v]
        if r >= 0:
            for k in range(d, end):
                e = envelope[k]
                c = col_of[e]
                if c >= 0 and sender_of[e] != me:
                    table[r, c] = value
        d = end


@jit
def latency_ms_kernel(delivery_time_s: F64, tx_time_s: F64, tx_index: I32, out: F64) -> None:
    """Each delivery's latency in ms, ``(delivery_time_s[e] - tx_time_s[tx_index[e]]) * 1e3``, into ``out``: what
    numpy's gather, subtraction and multiplication give (the same two IEEE operations per element), in one pass
    over the deliveries instead of three and without the gathered temporary."""
    for e in range(len(out)):
        out[e] = (delivery_time_s[e] - tx_time_s[tx_index[e]]) * 1e3


# -- protobuf wire format: fields of messages of one known layout, in columns (the fleet's BSM envelopes) -------
# What a field may be, in a layout (``scan_fields``): absent from it (0: the message is not scanned), or one of
# these. A varint of a 32-bit field must be below 2**32 (protobuf would cut it down); any varint has at most 9
# bytes (its value fits int64).
# (Copied in v2x.wire.scan, tested equal in tests/test_scan.py: the wire layer is below core, and by numba's cache
# rule a kernel's constants live in its own file.)
SCAN_UINT32 = 1  # a varint, its value
SCAN_SINT32 = 2  # a zigzag varint, its signed value
SCAN_VARINT = 3  # a varint as it is on the wire, below 2**63 (a 64-bit integer, an enum)
SCAN_BYTES = 4  # length-delimited: where it starts in the buffer, and its length (two columns)
SCAN_ASCII = 5  # a string whose bytes are all ASCII (else not scanned: protobuf checks UTF-8): as SCAN_BYTES
SCAN_MESSAGE = 6  # a message of the layout's row ``subs[m, f]``; its column, if any, is 1 when present
SCAN_DEPTH = 8  # how deep messages may nest


@jit_inline
def _scan_varint(buf: NDArray[np.uint8], p: int, end: int) -> tuple[np.int64, int]:
    """The varint at ``p`` (before ``end``) and where the next field starts; -1 there: truncated, or more than 9
    bytes long."""
    value = np.int64(0)
    shift = np.int64(0)
    for _ in range(9):
        if p >= end:
            return value, -1
        b = np.int64(buf[p])
        p += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, p
        shift += 7
    return value, -1


@jit_inline
def _scan_one(
    buf: NDArray[np.uint8], start: int, end: int, kinds: NDArray[np.int8], subs: I64, cols: I64, out: I64,
    msg: I64, stop: I64, last: I64,
) -> bool:  # fmt: skip
    """``scan_fields`` of the message in ``buf[start:end]``: False where it leaves the layout."""
    top = kinds.shape[1] - 1
    depth = 0
    msg[0] = 0
    stop[0] = end
    last[0] = 0
    p = start
    while True:
        if p == stop[depth]:
            if depth == 0:
                return True
            depth -= 1
            continue
        before = p
        tag, p = _scan_varint(buf, p, stop[depth])
        if p < 0 or (p - before > 1 and buf[p - 1] == 0):  # (a tag written longer than it needs)
            return False
        f = tag >> 3
        wire = tag & 7
        if f <= last[depth] or f > top:  # out of field order (or repeated), or no field of the layout
            return False
        last[depth] = f
        m = msg[depth]
        kind = kinds[m, f]
        col = cols[m, f]
        if SCAN_UINT32 <= kind <= SCAN_VARINT:  # (the varints' codes, then the length-delimited ones')
            if wire != 0:
                return False
            v, p = _scan_varint(buf, p, stop[depth])
            if p < 0:
                return False
            if kind != SCAN_VARINT:
                if v >= np.int64(1) << 32:
                    return False
                if kind == SCAN_SINT32:
                    v = (v >> 1) ^ -(v & 1)
            if col >= 0:
                out[col] = v
        elif SCAN_BYTES <= kind <= SCAN_MESSAGE:
            if wire != 2:
                return False
            size, p = _scan_varint(buf, p, stop[depth])
            if p < 0 or size > stop[depth] - p:
                return False
            if kind == SCAN_MESSAGE:
                if depth + 1 >= len(msg):
                    return False
                depth += 1
                msg[depth] = subs[m, f]
                stop[depth] = p + size
                last[depth] = 0
                if col >= 0:
                    out[col] = 1
            else:
                if kind == SCAN_ASCII:
                    for q in range(p, p + size):
                        if buf[q] >= 0x80:
                            return False
                if col >= 0:
                    out[col] = p
                    out[col + 1] = size
                p += int(size)
        else:
            return False


@jit
def scan_fields(
    buf: NDArray[np.uint8], starts: I64, ends: I64, kinds: NDArray[np.int8], subs: I64, cols: I64, out: I64,
    ok: NDArray[np.bool_],
) -> None:  # fmt: skip
    """Per message ``buf[starts[e]:ends[e]]`` of a layout (``kinds``, ``subs``, ``cols``: per message row ``m`` of
    the layout, row 0 the outermost, and field number ``f``, what the field is, ``SCAN_*``, the row of its message,
    and its column in ``out``, -1: none), write its fields' values into the row ``out[e]`` (zeros: protobuf's
    defaults) and set ``ok[e]``; False where the message leaves the layout: a field it does not have or of
    another wire type, fields out of field-number order or repeated, a value out of its field's range, an ASCII
    string with another byte, truncated or malformed bytes (``out[e]`` then holds anything)."""
    msg = np.zeros(SCAN_DEPTH, dtype=np.int64)
    stop = np.zeros(SCAN_DEPTH, dtype=np.int64)
    last = np.zeros(SCAN_DEPTH, dtype=np.int64)
    for e in range(len(starts)):
        ok[e] = _scan_one(buf, starts[e], ends[e], kinds, subs, cols, out[e], msg, stop, last)


# -- the fleet agent's transmit (v2x.core._fleet_wire): its vehicles read, their BSMs' envelopes written --------
# The protobuf keys (field number << 3 | wire type) of the fields bsm_envelopes writes: varints (wire type 0)
# and the lengths of nested messages (wire type 2). The static pieces (v2x.wire.bsm_bytes.BsmStatics) hold the
# rest. Values are int64, 0 <= v < 2**63 (varints of sint32 fields come zigzag-encoded).
_KEY_SEQ = 0x10  # Envelope.seq (2)
_KEY_FRAME = 0x3A  # Envelope.frame (7)
_KEY_BSM = 0x0A  # MessageFrame.bsm (1)
_KEY_CNT = 0x08  # BSM.msg_cnt (1)
_KEY_MARK = 0x18  # BSM.sec_mark (3)
_KEY_POS = 0x22  # BSM.pos (4)
_KEY_LAT = 0x08  # Position3D.lat (1)
_KEY_LON = 0x10  # Position3D.lon (2)
_KEY_SPEED = 0x40  # BSM.speed (8)
_KEY_HEADING = 0x48  # BSM.heading (9)
_KEY_ACCEL = 0x5A  # BSM.accel_set (11)
_KEY_LONG = 0x08  # AccelerationSet4Way.long (1)
_KEY_BRAKES = 0x62  # BSM.brakes (12)
_KEY_PEDAL = 0x08  # BrakeSystemStatus.brake_pedal (1)
_KEY_EXT = 0x7A  # BSM.safety_ext (15)
_KEY_EVENTS = 0x08  # VehicleSafetyExtensions.events (1)
_ONE_BITS = 0x3FF0000000000000  # the bits of the double 1.0


@jit_inline
def _varint_size(v: int) -> int:
    """The bytes of the varint of ``v`` (0 <= v < 2**63)."""
    n = 1
    while v >= 128:
        v >>= 7
        n += 1
    return n


@jit_inline
def _field_size(v: int) -> int:
    """The bytes of a varint field of value ``v`` (key and varint; none at 0, protobuf's default, left out)."""
    return 0 if v == 0 else 1 + _varint_size(v)


@jit_inline
def _put_varint(out: U8, at: int, v: int) -> int:
    while v >= 128:
        out[at] = (v & 127) | 128
        v >>= 7
        at += 1
    out[at] = v
    return at + 1


@jit_inline
def _put_field(out: U8, at: int, key: int, v: int) -> int:
    """A varint field (``_field_size``); the position after it."""
    if v == 0:
        return at
    out[at] = key
    return _put_varint(out, at + 1, v)


@jit_inline
def _put_message(out: U8, at: int, key: int, size: int) -> int:
    """The start of a nested message of ``size`` bytes: its key and its length (written even when 0)."""
    out[at] = key
    return _put_varint(out, at + 1, size)


@jit_inline
def _put_bytes(out: U8, at: int, src: U8, start: int, size: int) -> int:
    out[at : at + size] = src[start : start + size]
    return at + size


@jit
def bsm_envelopes(blob: U8, meta: I32, values: I64, middle: U8, out: U8, ends: I64) -> None:
    """Write each vehicle's envelope of its refreshed BSM into ``out`` (room enough), one after the other, and
    where each ends into ``ends``. Vehicle ``k``: its static pieces, ``meta[k, :7]`` bytes each, follow those of
    the vehicles before it in ``blob``; ``meta[k, 7:]``: how many bytes of pieces 2, 5 and 6 are the position's
    elevation, the brake status's fields after the pedal and the safety extension's fields after the events;
    ``values[k]``: seq, msg_cnt, sec_mark, latitude, longitude (zigzag), speed, heading, longitudinal acceleration
    (zigzag), brake pedal, event flags; ``middle``: the envelope's tick, time and link fields. The pieces in the
    order protobuf writes the fields (by number; see v2x.wire.bsm_bytes)."""
    src = 0
    at = 0
    for k in range(len(meta)):
        seq, cnt, mark, lat, lon = values[k, 0], values[k, 1], values[k, 2], values[k, 3], values[k, 4]
        speed, heading, long, pedal, events = values[k, 5], values[k, 6], values[k, 7], values[k, 8], values[k, 9]
        s0, s1, s2, s3, s4, s5, s6 = meta[k, 0], meta[k, 1], meta[k, 2], meta[k, 3], meta[k, 4], meta[k, 5], meta[k, 6]
        pos = _field_size(lat) + _field_size(lon) + meta[k, 7]
        accel = _field_size(long) + s4
        brakes = _field_size(pedal) + meta[k, 8]
        ext = _field_size(events) + meta[k, 9]
        bsm = (
            _field_size(cnt) + s1 + _field_size(mark) + 1 + _varint_size(pos) + _field_size(lat) + _field_size(lon)
            + s2 + _field_size(speed) + _field_size(heading) + s3 + 1 + _varint_size(accel) + _field_size(long) + s4
            + 1 + _varint_size(brakes) + _field_size(pedal) + s5 + 1 + _varint_size(ext) + _field_size(events) + s6
        )  # fmt: skip
        frame = 1 + _varint_size(bsm) + bsm
        at = _put_bytes(out, at, blob, src, s0)  # Envelope.sender_id
        src += s0
        at = _put_field(out, at, _KEY_SEQ, seq)
        at = _put_bytes(out, at, middle, 0, len(middle))  # Envelope.tick, tx_time_us, link
        at = _put_message(out, at, _KEY_FRAME, frame)
        at = _put_message(out, at, _KEY_BSM, bsm)
        at = _put_field(out, at, _KEY_CNT, cnt)
        at = _put_bytes(out, at, blob, src, s1)  # BSM.id
        src += s1
        at = _put_field(out, at, _KEY_MARK, mark)
        at = _put_message(out, at, _KEY_POS, pos)
        at = _put_field(out, at, _KEY_LAT, lat)
        at = _put_field(out, at, _KEY_LON, lon)
        at = _put_bytes(out, at, blob, src, s2)  # Position3D.elevation; BSM.accuracy, pos_confidence, trans_state
        src += s2
        at = _put_field(out, at, _KEY_SPEED, speed)
        at = _put_field(out, at, _KEY_HEADING, heading)
        at = _put_bytes(out, at, blob, src, s3)  # BSM.angle
        src += s3
        at = _put_message(out, at, _KEY_ACCEL, accel)
        at = _put_field(out, at, _KEY_LONG, long)
        at = _put_bytes(out, at, blob, src, s4)  # AccelerationSet4Way.lat, vert, yaw
        src += s4
        at = _put_message(out, at, _KEY_BRAKES, brakes)
        at = _put_field(out, at, _KEY_PEDAL, pedal)
        at = _put_bytes(out, at, blob, src, s5)  # BrakeSystemStatus's other fields; BSM.size, vehicle_class
        src += s5
        at = _put_message(out, at, _KEY_EXT, ext)
        at = _put_field(out, at, _KEY_EVENTS, events)
        at = _put_bytes(out, at, blob, src, s6)  # VehicleSafetyExtensions's other fields; BSM.emergency_ext
        src += s6
        ends[k] = at


@jit_inline
def _get_varint(buf: U8, at: int) -> tuple[int, int]:
    """The varint at ``at`` (its low 63 bits) and the position after it; -1 for a varint that runs past the end."""
    v = 0
    shift = 0
    while at < len(buf):
        b = int(buf[at])
        at += 1
        if shift < 63:
            v |= (b & 127) << shift
        shift += 7
        if b < 128:
            return v, at
    return 0, -1


@jit_inline
def _skip_field(buf: U8, at: int, wire_type: int, end: int) -> int:
    """The position after a field's value of ``wire_type`` at ``at`` (ending by ``end``); -1: not one to skip."""
    if wire_type == 0:
        _v, at = _get_varint(buf, at)
    elif wire_type == 1:
        at += 8
    elif wire_type == 2:
        size, at = _get_varint(buf, at)
        if at >= 0:
            at += size
    elif wire_type == 5:
        at += 4
    else:  # (a group: not in a FleetInput)
        return -1
    return at if 0 <= at <= end else -1


@jit
def fleet_vehicle_fields(buf: U8, bits: U64) -> int:
    """Scan the bytes of a FleetInput for its ``vehicles`` (field 6): per vehicle ``k``, into ``bits[k, f - 3]`` the
    8 bytes (little-endian) of its 64-bit field ``f`` (3..2 + bits.shape[1] - 1; 0 where absent; a field given
    twice: the last, as protobuf reads it), and into its last column those of 1.0 where its field 18
    (``wrecked``) is set (``bits`` viewed as float64 are the values); other fields skipped. Returns how many
    vehicles, or -1 when the bytes are not what the caller can read this way (a truncated field, a group, more
    vehicles than ``bits`` has rows)."""
    at = 0
    k = 0
    last = bits.shape[1] - 1
    while at < len(buf):
        key, at = _get_varint(buf, at)
        if at < 0:
            return -1
        if key == (6 << 3) | 2:
            size, at = _get_varint(buf, at)
            if at < 0 or at + size > len(buf) or k >= len(bits):
                return -1
            end = at + size
            for j in range(last + 1):
                bits[k, j] = 0
            while at < end:
                key, at = _get_varint(buf, at)
                if at < 0:
                    return -1
                field, wire_type = key >> 3, key & 7
                if wire_type == 1 and 3 <= field < 3 + last and at + 8 <= end:
                    v = 0
                    for i in range(8):
                        v |= int(buf[at + i]) << (8 * i)
                    bits[k, field - 3] = v
                elif wire_type == 0 and field == 18:
                    flag, _after = _get_varint(buf, at)
                    bits[k, last] = _ONE_BITS if flag != 0 else 0
                at = _skip_field(buf, at, wire_type, end)
                if at < 0:
                    return -1
            k += 1
        else:
            at = _skip_field(buf, at, key & 7, len(buf))
            if at < 0:
                return -1
    return k
