"""Every compiled kernel of the core, in one module.

numba's on-disk cache checks only the timestamp of the file that defines a function, so a kernel that
inlines a helper from another file would keep stale machine code after that helper changes. Keeping all
compiled code here avoids that; ``_grid``, ``_fanout`` and ``_conflict`` hold the Python API around it.

Conventions: indices are int64 (``intp``), positions float64; outputs are written into arrays the
caller allocates (numpy asks the OS for transparent huge pages on big arrays, which makes first touch
several times cheaper than numba's own allocations). Kernels that produce an output of unknown size are
resumable: they stop before a receiver whose rows would not fit and report where to continue.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from v2x.core._jit import jit, jit_inline

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
IntP = NDArray[np.intp]

# -- counter-based random numbers -------------------------------------------------------------------
# splitmix64 (Steele, Lea & Flood 2014): state = seed + k * GAMMA, output = mix64(state). Indexing the
# stream by a counter built from (transmission, receiver, draw) gives every draw its own uniform,
# independent of the order in which candidates are enumerated.

GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_TWO_M53 = 1.0 / 9007199254740992.0

# counter = tx << 34 | receiver << 2 | draw (tx < 2^30, receiver slot < 2^32)
TX_BITS = 30
RX_LIMIT = 1 << 32
_SHIFT_TX = np.uint64(34)
_SHIFT_RX = np.uint64(2)
_DRAW_LOSS = np.uint64(0)
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
def _finish_receiver(
    r: int,
    k: int,
    ltx: IntP,
    ld: F64,
    lt: F64,
    lb: I64,
    hist: I64,
    tx_time: F64,
    seed: np.uint64,
    dq: F64,
    stepped: bool,
    mult: F64,
    mult_cdf: F64,
    extra_p: float,
    extra_max: float,
    out_tx: IntP,
    out_rx: IntP,
    out_t: F64,
    out_d: F64,
    pos: int,
) -> None:
    """Delay draws for the ``k`` kept deliveries to receiver ``r`` (tx ``ltx``, distance ``ld``), then
    write them to ``out[pos:pos + k]`` sorted by (delivery time, tx index).

    Delay = base * multiplier + extra (see LinkTables), one counter draw each. The sort is a bucket sort
    on time (2k buckets between the segment's earliest and latest delivery) followed by an insertion
    pass that fixes the order inside buckets and breaks exact ties by tx index.
    """
    rbits = np.uint64(r) << _SHIFT_RX
    for j in range(k):  # vectorised: one hash per delivery
        lt[j] = uniform01(seed, ((np.uint64(ltx[j]) << _SHIFT_TX) | rbits) + _DRAW_BASE)
    m = len(dq)
    n_mult = len(mult)
    for j in range(k):
        u = lt[j]
        if stepped:
            kq = min(int(u * m), m - 1)
            base = dq[kq]
        else:
            pq = u * (m - 1)
            kq = min(int(pq), m - 2)
            base = dq[kq] + (pq - kq) * (dq[kq + 1] - dq[kq])
        jm = 0
        extra = 0.0
        if n_mult > 1 or extra_p > 0.0:
            ctr = (np.uint64(ltx[j]) << _SHIFT_TX) | rbits
            if n_mult > 1:
                u_mult = uniform01(seed, ctr + _DRAW_MULT)
                while jm < n_mult - 1 and u_mult >= mult_cdf[jm]:
                    jm += 1
            if extra_p > 0.0:
                u_extra = uniform01(seed, ctr + _DRAW_EXTRA)
                if u_extra < extra_p:
                    extra = (u_extra / extra_p) * extra_max  # given u < p, u / p is uniform in [0, 1)
        lt[j] = tx_time[ltx[j]] + (base * mult[jm] + extra)
    for j in range(k):
        out_rx[pos + j] = r
    if k <= 16:
        for j in range(k):
            tp = lt[j]
            xp = ltx[j]
            dp = ld[j]
            q = pos + j
            while q > pos and (out_t[q - 1] > tp or (out_t[q - 1] == tp and out_tx[q - 1] > xp)):
                out_t[q] = out_t[q - 1]
                out_tx[q] = out_tx[q - 1]
                out_d[q] = out_d[q - 1]
                q -= 1
            out_t[q] = tp
            out_tx[q] = xp
            out_d[q] = dp
        return
    tmin = lt[0]
    tmax = lt[0]
    for j in range(1, k):
        tmin = min(tmin, lt[j])
        tmax = max(tmax, lt[j])
    nbk = 2 * k
    span = tmax - tmin
    scale = (nbk - 1) / span if span > 0.0 else 0.0
    for b in range(nbk + 1):
        hist[b] = 0
    for j in range(k):
        b = min(int((lt[j] - tmin) * scale), nbk - 1)
        lb[j] = b
        hist[b + 1] += 1
    for b in range(nbk):
        hist[b + 1] += hist[b]
    for j in range(k):
        b = lb[j]
        p = pos + hist[b]
        hist[b] += 1
        out_t[p] = lt[j]
        out_tx[p] = ltx[j]
        out_d[p] = ld[j]
    for i in range(pos + 1, pos + k):
        tp = out_t[i]
        if out_t[i - 1] < tp:
            continue
        xp = out_tx[i]
        dp = out_d[i]
        q = i
        while q > pos and (out_t[q - 1] > tp or (out_t[q - 1] == tp and out_tx[q - 1] > xp)):
            out_t[q] = out_t[q - 1]
            out_tx[q] = out_tx[q - 1]
            out_d[q] = out_d[q - 1]
            q -= 1
        out_t[q] = tp
        out_tx[q] = xp
        out_d[q] = dp


@jit_inline
def _pdr_at(d: float, pdr: F64, inv_step: float) -> float:
    pos = d * inv_step
    last = len(pdr) - 1
    if not pos < last:  # also nan
        return float(pdr[last])
    k = int(pos)
    return float(pdr[k] + (pos - k) * (pdr[k + 1] - pdr[k]))


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
    out_tx: IntP,
    out_rx: IntP,
    out_t: F64,
    out_d: F64,
    i0: int,
    pos0: int,
) -> tuple[int, int, int]:
    """Receiver-major broadcast over a grid of the transmissions (members ``mtx``, their senders
    ``msender``, positions ``txs, tys``). For each receiver in ``rx_slots[i0:]``: scan the grid rows
    within ``radius``, draw loss per candidate, draw delays for the kept ones, write them sorted.

    Returns (next receiver index, rows written, candidates counted); stops early (next < len) when the
    next receiver's rows would not fit the output arrays.
    """
    r2 = radius * radius
    everyone = math.isinf(radius)
    n = len(txs)
    cd2 = np.empty(n, dtype=np.float64)
    cdist = np.empty(n, dtype=np.float64)
    cu = np.empty(n, dtype=np.float64)
    ltx = np.empty(n, dtype=np.intp)
    ld = np.empty(n, dtype=np.float64)
    lt = np.empty(n, dtype=np.float64)
    lb = np.empty(n, dtype=np.int64)
    hist = np.empty(2 * n + 2, dtype=np.int64)
    last = len(pdr) - 1
    lastf = float(last)
    pos = pos0
    candidates = 0
    for i in range(i0, len(rx_slots)):
        r = rx_slots[i]
        x = wx[r]
        y = wy[r]
        rbits = np.uint64(r) << _SHIFT_RX
        if everyone:
            row_lo, row_hi = 0, 0
        else:
            row_lo = max(floor_index(y - radius, cell_m, cy0, ny), 0)
            row_hi = min(floor_index(y + radius, cell_m, cy0, ny), ny - 1)
        k = 0
        cands = 0
        for row in range(row_lo, row_hi + 1):
            if everyone:
                start, stop = 0, n
            else:
                lo, hi = row_span(x, y, radius, row, cell_m, cx0, cy0, nx)
                if lo > hi:
                    continue
                start, stop = cell_range(dense, begin, ukeys, row * nx + lo, row * nx + hi)
            xr = txs[start:stop]
            yr = tys[start:stop]
            tr = mtx[start:stop]
            sr = msender[start:stop]
            cnt = stop - start
            for j in range(cnt):  # vectorised: distance and the loss uniform of every member
                ddx = xr[j] - x
                ddy = yr[j] - y
                d2 = ddx * ddx + ddy * ddy
                cd2[j] = d2
                cdist[j] = math.sqrt(d2)
                cu[j] = uniform01(seed, (np.uint64(tr[j]) << _SHIFT_TX) | rbits)
            for j in range(cnt):
                inr = ((cd2[j] <= r2) | everyone) & (sr[j] != r)
                cands += inr
                d = cdist[j]
                pp = d * pdr_inv_step
                if pp < lastf:
                    kk = int(pp)
                    p = pdr[kk] + (pp - kk) * (pdr[kk + 1] - pdr[kk])
                else:
                    p = pdr[last]
                ltx[k] = tr[j]
                ld[k] = d
                k += inr & (cu[j] < p)
        if pos + k > len(out_tx):
            return i, pos, candidates
        _finish_receiver(
            r, k, ltx, ld, lt, lb, hist, tx_time, seed, dq, stepped, mult, mult_cdf, extra_p, extra_max,
            out_tx, out_rx, out_t, out_d, pos,
        )  # fmt: skip
        pos += k
        candidates += cands
    return len(rx_slots), pos, candidates


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
    out_tx: IntP,
    out_rx: IntP,
    out_t: F64,
    out_d: F64,
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
    ld = np.empty(n, dtype=np.float64)
    lt = np.empty(n, dtype=np.float64)
    lb = np.empty(n, dtype=np.int64)
    hist = np.empty(2 * n + 2, dtype=np.int64)
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
                ld[k] = d
                k += 1
        _finish_receiver(
            r, k, ltx, ld, lt, lb, hist, tx_time, seed, dq, stepped, mult, mult_cdf, extra_p, extra_max,
            out_tx, out_rx, out_t, out_d, pos,
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
) -> tuple[IntP, IntP]:
    """Candidate (tx, receiver) pairs in the canonical (tx index, receiver slot) order (generic path)."""
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
                if not (ddx * ddx + ddy * ddy <= r2 or everyone):
                    continue
                rx = mslots[m]
                if rx == me or (use_mask and not rx_mask[rx]):
                    continue
                out_tx[k] = tx
                out_rx[k] = rx
                k += 1
        out_rx[first:k] = np.sort(out_rx[first:k])
    return out_tx[:k], out_rx[:k]
