"""When each receiver last heard each sender: a table of times (a row per receiver, a column per sender), the
deliveries written into it and the (receiver, sender) pairs read out of it, for conflict detection on the pairs
(``detect_conflicts(pairs=...)``; the fleet agent's FCW, ``v2x.agents.fleet``). Compiled kernels in ``_kernels``:
a fleet hears hundreds of thousands of deliveries a tick, and its table has millions of cells.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from v2x.core._conflict import TOUCH_SLACK_M
from v2x.core._jit import kernel
from v2x.core._kernels import heard_touching, stamp_heard
from v2x.core._world import WorldState

__all__ = ["stamp_deliveries", "touching_pairs_heard"]


def touching_pairs_heard(
    world: WorldState,
    table: NDArray[np.int32],
    rows: NDArray[np.integer[Any]],
    cols: NDArray[np.integer[Any]],
    least: int,
    row_slots: NDArray[np.integer[Any]],
    col_slots: NDArray[np.integer[Any]],
    within_s: float,
    *,
    size_hint: int = 0,
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """The pairs of ``world``'s slots (``row_slots[i]``, ``col_slots[j]``) for the (i, j) with
    ``table[rows[i], cols[j]] >= least`` (``rows`` and ``cols`` index as numpy's do: negative from the end, out of
    range IndexError) whose boxes could touch within ``within_s``: the pairs
    ``detect_conflicts(world, pairs=..., touch_within_s=within_s)`` keeps of those, in row-major (i, j) order,
    in one compiled pass (no pair that cannot touch is ever written out: a fleet's vehicles hear hundreds of
    thousands of others a tick, and could touch a few thousand). ``row_slots``/``col_slots``: active slots, one
    per row and column (else ValueError)."""
    r = np.arange(table.shape[0], dtype=np.int64)[rows]
    c = np.arange(table.shape[1], dtype=np.int64)[cols]
    hi = world.high_water
    rs = np.ascontiguousarray(row_slots, dtype=np.int64)
    cs = np.ascontiguousarray(col_slots, dtype=np.int64)
    if rs.shape != r.shape or cs.shape != c.shape:
        raise ValueError("one slot per row and per column")
    for slots in (rs, cs):
        if len(slots) and (slots.min() < 0 or slots.max() >= hi or not bool(world.active[slots].all())):
            raise ValueError("a slot that is not active")
    table = np.ascontiguousarray(table, dtype=np.int32)
    # (``detect_conflicts``' own: the same arrays, so the same test as its ``pairs_kept``)
    circ = np.hypot(0.5 * world.length_m[:hi], 0.5 * world.width_m[:hi])
    acc = np.hypot(world.ax[:hi], world.ay[:hi])
    run = kernel(heard_touching, len(r))
    parts: list[tuple[NDArray[np.int64], NDArray[np.int64]]] = []
    start, size = 0, max(len(c), int(size_hint), 1024)
    while True:
        oi = np.empty(size, dtype=np.int64)
        oj = np.empty(size, dtype=np.int64)
        start, filled = run(
            table, r, c, int(least), start, rs, cs, world.x, world.y, world.vx, world.vy, acc, circ,
            float(within_s), TOUCH_SLACK_M, oi, oj,
        )  # fmt: skip
        parts.append((oi[:filled], oj[:filled]))
        if start >= len(r):
            break
        size *= 2  # (more than the last call's room: a row always fits)
    pi = parts[0][0] if len(parts) == 1 else np.concatenate([p for p, _ in parts])
    pj = parts[0][1] if len(parts) == 1 else np.concatenate([q for _, q in parts])
    return pi.astype(np.intp, copy=False), pj.astype(np.intp, copy=False)


def stamp_deliveries(
    table: NDArray[np.int32],
    counts: NDArray[np.integer[Any]],
    envelope: NDArray[np.integer[Any]],
    row_of: NDArray[np.int64],
    col_of: NDArray[np.int64],
    sender_of: NDArray[np.int64],
    receiver_of: NDArray[np.int64],
    value: int,
) -> None:
    """Write ``value`` (when) into ``table`` for each delivery: receiver ``v`` heard its ``counts[v]`` deliveries
    (envelope indices ``envelope``, in runs by receiver), into row ``row_of[v]`` and the column of the envelope's
    sender ``col_of[e]``; deliveries to a receiver without a row or of an envelope without a column (-1), and a
    receiver's own envelopes (``sender_of[e] == receiver_of[v]``), are left out. The same table as
    ``table[row_of[v], col_of[e]] = value`` over the deliveries kept."""
    if table.dtype != np.int32 or not table.flags.c_contiguous:
        raise ValueError("the table must be a C-contiguous int32 matrix")
    counts64: NDArray[np.int64] = np.asarray(counts, dtype=np.int64)
    envelope64: NDArray[np.int64] = np.asarray(envelope, dtype=np.int64)
    row_of, col_of = np.asarray(row_of, dtype=np.int64), np.asarray(col_of, dtype=np.int64)
    sender_of, receiver_of = np.asarray(sender_of, dtype=np.int64), np.asarray(receiver_of, dtype=np.int64)
    # (The kernel does not check its indices: every one is checked here, as numpy's indexing would.)
    fits = (
        len(counts64) == len(row_of) == len(receiver_of)
        and len(col_of) == len(sender_of)
        and int(counts64.sum()) == len(envelope64)
        and not (len(counts64) and int(counts64.min()) < 0)
        and not (len(envelope64) and (int(envelope64.min()) < 0 or int(envelope64.max()) >= len(col_of)))
        and not (len(row_of) and int(row_of.max()) >= table.shape[0])
        and not (len(col_of) and int(col_of.max()) >= table.shape[1])
    )
    if not fits:
        raise ValueError("deliveries that do not fit together or the table")
    kernel(stamp_heard, len(counts64))(table, counts64, envelope64, row_of, col_of, sender_of, receiver_of, int(value))
