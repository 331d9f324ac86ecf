"""Uniform grid (cell hash) over active actors, built once per tick and shared by all queries."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from v2x.core._jit import kernel
from v2x.core._kernels import counting_order, pairs_kernel, query_kernel, sort_runs
from v2x.core._world import WorldState

__all__ = ["SpatialGrid"]

_EMPTY_INTP: NDArray[np.intp] = np.zeros(0, dtype=np.intp)
_EMPTY_F64: NDArray[np.float64] = np.zeros(0, dtype=np.float64)

# A dense cell -> first-member table is used while it has at most this many cells (or 8 per member);
# beyond that (actors spread over a huge, mostly empty box) rows are found by binary search.
_DENSE_MIN_CELLS = 1 << 16
_DENSE_CELLS_PER_MEMBER = 8


class Buckets(NamedTuple):
    """Points bucketed into cells, row-major (key ``row * nx + column``), stable within a cell."""

    order: NDArray[np.intp]  # point indices sorted by cell
    cx0: int  # cell coordinates of the box corner
    cy0: int
    nx: int
    ny: int
    skey: NDArray[np.int64]  # sorted cell keys
    dense_begin: NDArray[np.int64] | None  # first position of every cell (+1), if dense

    def kernel_args(
        self, cell_m: float
    ) -> tuple[float, int, int, int, int, bool, NDArray[np.int64], NDArray[np.int64]]:
        """(cell_m, cx0, cy0, nx, ny, dense, begin, ukeys) as the compiled scans take them."""
        if self.dense_begin is not None:
            return cell_m, self.cx0, self.cy0, self.nx, self.ny, True, self.dense_begin, self.dense_begin
        n = len(self.skey)
        first = np.empty(n, dtype=np.bool_)
        first[:1] = True
        np.not_equal(self.skey[1:], self.skey[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        begin = np.append(starts, n).astype(np.int64)
        return cell_m, self.cx0, self.cy0, self.nx, self.ny, False, begin, self.skey[starts]


def bucket_points(
    x: NDArray[np.float64], y: NDArray[np.float64], cell_m: float, cell_w: float | None = None
) -> Buckets:
    """Bucket finite points (at least one) into cells ``cell_m`` tall and ``cell_w`` wide (square when
    ``cell_w`` is None)."""
    cx = np.floor(x / (cell_m if cell_w is None else cell_w)).astype(np.int64)
    cy = np.floor(y / cell_m).astype(np.int64)
    cx0 = int(cx.min())
    cy0 = int(cy.min())
    cx -= cx0
    cy -= cy0
    nx = int(cx.max()) + 1
    ny = int(cy.max()) + 1
    key = cy * nx + cx
    n_cells = nx * ny
    dense_begin: NDArray[np.int64] | None = None
    if n_cells <= max(_DENSE_MIN_CELLS, _DENSE_CELLS_PER_MEMBER * len(x)):
        order, dense_begin = kernel(counting_order, len(x))(key, n_cells)
    else:
        order = np.argsort(key, kind="stable").astype(np.intp)
    return Buckets(order, cx0, cy0, nx, ny, key[order], dense_begin)


class SpatialGrid:
    """Actors hashed into square cells of ``cell_m``; a snapshot of the world when built.

    Build it after the tick's ``set_state`` calls. Members are kept sorted by cell in row-major order
    (key ``row * nx + column``; by slot within a cell), so the cells of one grid row that a circle
    touches hold one contiguous run of members: a query with radius ``r`` scans ``~2r / cell_m + 1``
    runs, each bounded by the circle's chord in that row, then tests the exact distance. The scans are
    compiled kernels (numba); there is no Python loop over actors.
    """

    def __init__(
        self,
        cell_m: float,
        slots: NDArray[np.intp],
        xs: NDArray[np.float64],
        ys: NDArray[np.float64],
        cell_start: NDArray[np.intp],
        cell_count: NDArray[np.intp],
        cell_cx: NDArray[np.int64],
        cell_cy: NDArray[np.int64],
        origin: tuple[int, int],
        shape: tuple[int, int],
        capacity: int,
        dense_begin: NDArray[np.int64] | None = None,
    ) -> None:
        self.cell_m = cell_m
        self.slots = slots  # active slots sorted by cell (row-major), then slot
        self.xs = xs
        self.ys = ys
        self.cell_start = cell_start  # per occupied cell, in member order
        self.cell_count = cell_count
        self.cell_cx = cell_cx  # relative cell column of each occupied cell
        self.cell_cy = cell_cy  # relative cell row
        self._origin = origin
        self._shape = shape
        self._capacity = capacity
        nx, _ = shape
        self._ukeys = (cell_cy * nx + cell_cx).astype(np.int64)
        self._dense = dense_begin is not None
        if dense_begin is not None:
            self._begin = dense_begin
        else:
            self._begin = np.append(cell_start, len(slots)).astype(np.int64)
        # Row of every member (the pair scan starts there).
        self._row_of = np.repeat(cell_cy.astype(np.int64), cell_count)

    @classmethod
    def build(cls, world: WorldState, cell_m: float) -> SpatialGrid:
        if not cell_m > 0 or not math.isfinite(cell_m):
            raise ValueError(f"cell_m must be positive and finite, got {cell_m}")
        slots = world.active_slots()
        n = len(slots)
        if n == 0:
            empty_i64 = np.zeros(0, dtype=np.int64)
            return cls(
                cell_m,
                _EMPTY_INTP,
                _EMPTY_F64,
                _EMPTY_F64,
                _EMPTY_INTP,
                _EMPTY_INTP,
                empty_i64,
                empty_i64,
                (0, 0),
                (0, 0),
                world.capacity,
            )
        x = world.x[slots]
        y = world.y[slots]
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ValueError("non-finite position in an active slot")
        b = bucket_points(x, y, cell_m)
        order, skey, nx = b.order, b.skey, b.nx
        first = np.empty(n, dtype=np.bool_)
        first[0] = True
        np.not_equal(skey[1:], skey[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        counts = np.diff(np.append(starts, n))
        ukeys = skey[starts]
        return cls(
            cell_m,
            slots[order],
            x[order],
            y[order],
            starts.astype(np.intp),
            counts.astype(np.intp),
            ukeys % nx,
            ukeys // nx,
            (b.cx0, b.cy0),
            (nx, b.ny),
            world.capacity,
            b.dense_begin,
        )

    @property
    def n(self) -> int:
        return len(self.slots)

    @property
    def capacity(self) -> int:
        """Capacity of the world the grid was built from (slot space)."""
        return self._capacity

    def kernel_args(self) -> tuple[float, int, int, int, int, bool, NDArray[np.int64], NDArray[np.int64]]:
        """(cell_m, cx0, cy0, nx, ny, dense, begin, ukeys): what the compiled scans need."""
        cx0, cy0 = self._origin
        nx, ny = self._shape
        return self.cell_m, cx0, cy0, nx, ny, self._dense, self._begin, self._ukeys

    # -- public queries --------------------------------------------------------------------------

    def query_points(
        self, qx: NDArray[np.float64], qy: NDArray[np.float64], radius_m: float
    ) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
        """All (query index, member position, distance) with distance <= radius_m.

        Member positions index ``self.slots``. Order: by query, then member position (deterministic
        for a given grid; callers that need a canonical order sort).
        """
        qx = np.ascontiguousarray(qx, dtype=np.float64)
        qy = np.ascontiguousarray(qy, dtype=np.float64)
        if self.n == 0 or len(qx) == 0:
            return _EMPTY_INTP, _EMPTY_INTP, _EMPTY_F64
        return _count_then_fill(
            kernel(query_kernel, self.n), (self.xs, self.ys, qx, qy, float(radius_m), *self.kernel_args())
        )

    def member_pairs(self, radius_m: float) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
        """Unordered member-position pairs (a, b), a < b, within radius_m, each pair once."""
        if self.n < 2:
            return _EMPTY_INTP, _EMPTY_INTP, _EMPTY_F64
        return _count_then_fill(
            kernel(pairs_kernel, self.n), (self.xs, self.ys, self._row_of, float(radius_m), *self.kernel_args())
        )

    def pairs_within(self, radius_m: float) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Unordered slot pairs (i < j) of active actors at distance <= radius_m.

        Order is deterministic for a given grid but otherwise unspecified.
        """
        ma, mb, _ = self.member_pairs(radius_m)
        sa = self.slots[ma]
        sb = self.slots[mb]
        return np.minimum(sa, sb), np.maximum(sa, sb)

    def neighbours_of(self, slots: NDArray[np.intp], radius_m: float) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Directed (src, dst) slot pairs with dst != src within radius_m of src.

        ``slots`` must be active in the world the grid was built from. Sorted by (position of src in
        ``slots``, dst).
        """
        slots = np.asarray(slots, dtype=np.intp)
        pos = self.position_of(slots)
        q, member, _ = self.query_points(self.xs[pos], self.ys[pos], radius_m)
        dst = self.slots[member]
        keep = dst != slots[q]
        q, dst = q[keep], dst[keep]
        kernel(sort_runs, self.n)(q, dst)  # q is sorted already; sort dst within each query
        return slots[q], dst

    def position_of(self, slots: NDArray[np.intp]) -> NDArray[np.intp]:
        """Member position (index into ``self.slots``) of each slot; ValueError if not in the grid."""
        lut = np.full(self._capacity, -1, dtype=np.intp)
        lut[self.slots] = np.arange(self.n, dtype=np.intp)
        pos = lut[slots] if len(slots) else _EMPTY_INTP
        if len(pos) and pos.min() < 0:
            raise ValueError("slot not in the grid (inactive when the grid was built?)")
        return pos


def _count_then_fill(
    kernel: Callable[..., int], args: tuple[Any, ...]
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
    """Run a (first index, second index, distance) kernel twice: once to count the rows (fill=False),
    then into arrays of exactly that size (fill=True)."""
    total = int(kernel(*args, _EMPTY_INTP, _EMPTY_INTP, _EMPTY_F64, False))
    out = np.empty(total, dtype=np.intp), np.empty(total, dtype=np.intp), np.empty(total, dtype=np.float64)
    kernel(*args, *out, True)
    return out
