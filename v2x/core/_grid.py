"""Uniform grid (cell hash) over active actors, built once per tick and shared by all queries."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from v2x.core._world import WorldState

__all__ = ["SpatialGrid"]

_EMPTY_INTP: NDArray[np.intp] = np.zeros(0, dtype=np.intp)
_EMPTY_F64: NDArray[np.float64] = np.zeros(0, dtype=np.float64)


def _expand(
    a: NDArray[np.intp], b_start: NDArray[np.intp], b_count: NDArray[np.intp]
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """For each k, emit (a[k], b_start[k] + m) for m in range(b_count[k]); vectorised."""
    total = int(b_count.sum())
    if total == 0:
        return _EMPTY_INTP, _EMPTY_INTP
    a_rep = np.repeat(a, b_count)
    # member index = b_start[k] + (running position - offset of k)
    shift = b_start - (np.cumsum(b_count) - b_count)
    member = np.arange(total, dtype=np.intp) + np.repeat(shift, b_count)
    return a_rep, member


class SpatialGrid:
    """Actors hashed into square cells of ``cell_m``; a snapshot of the world when built.

    Build it after the tick's ``set_state`` calls. Members are kept sorted by cell (and by slot within
    a cell), so every query is a handful of vectorised gathers with deterministic output order.
    Queries with radius ``r`` visit ``ceil(r / cell_m)`` rings of cells, skipping cells that cannot
    hold a point within ``r``.
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
    ) -> None:
        self.cell_m = cell_m
        self.slots = slots  # active slots sorted by cell, then slot
        self.xs = xs
        self.ys = ys
        self.cell_start = cell_start
        self.cell_count = cell_count
        self.cell_cx = cell_cx  # relative cell column of each occupied cell
        self.cell_cy = cell_cy
        self._origin = origin
        self._shape = shape
        self._capacity = capacity
        nx, ny = shape
        n_cells = nx * ny
        # Dense cell -> occupied-cell lookup when it is small, otherwise binary search.
        self._keys = cell_cx * ny + cell_cy
        self._dense: NDArray[np.intp] | None = None
        if n_cells <= max(1 << 16, 8 * max(len(slots), 1)):
            dense = np.full(n_cells, -1, dtype=np.intp)
            dense[self._keys] = np.arange(len(cell_start), dtype=np.intp)
            self._dense = dense

    @classmethod
    def build(cls, world: WorldState, cell_m: float) -> SpatialGrid:
        if not cell_m > 0 or not math.isfinite(cell_m):
            raise ValueError(f"cell_m must be positive and finite, got {cell_m}")
        slots = world.active_slots()
        n = len(slots)
        if n == 0:
            empty_i64 = np.zeros(0, dtype=np.int64)
            return cls(cell_m, _EMPTY_INTP, _EMPTY_F64, _EMPTY_F64, _EMPTY_INTP, _EMPTY_INTP,
                       empty_i64, empty_i64, (0, 0), (0, 0), world.capacity)
        x = world.x[slots]
        y = world.y[slots]
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ValueError("non-finite position in an active slot")
        cx = np.floor(x / cell_m).astype(np.int64)
        cy = np.floor(y / cell_m).astype(np.int64)
        cx0 = int(cx.min())
        cy0 = int(cy.min())
        cx -= cx0
        cy -= cy0
        nx = int(cx.max()) + 1
        ny = int(cy.max()) + 1
        key = cx * ny + cy
        order = np.argsort(key, kind="stable")
        skey = key[order]
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
            ukeys // ny,
            ukeys % ny,
            (cx0, cy0),
            (nx, ny),
            world.capacity,
        )

    @property
    def n(self) -> int:
        return len(self.slots)

    # -- internals -------------------------------------------------------------------------------

    def _offsets(self, radius_m: float, half: bool) -> list[tuple[int, int]]:
        reach = math.ceil(radius_m / self.cell_m)
        out: list[tuple[int, int]] = []
        for dx in range(-reach, reach + 1):
            for dy in range(-reach, reach + 1):
                if half and (dx < 0 or (dx == 0 and dy < 0)):
                    continue
                gx = max(abs(dx) - 1, 0) * self.cell_m
                gy = max(abs(dy) - 1, 0) * self.cell_m
                if gx * gx + gy * gy <= radius_m * radius_m:
                    out.append((dx, dy))
        return out

    def _lookup(self, cx: NDArray[np.int64], cy: NDArray[np.int64]) -> NDArray[np.intp]:
        """Occupied-cell index for relative cell coordinates, -1 where empty or outside."""
        nx, ny = self._shape
        inside = (cx >= 0) & (cx < nx) & (cy >= 0) & (cy < ny)
        key = np.where(inside, cx * ny + cy, 0)
        if self._dense is not None:
            idx = self._dense[key]
        else:
            pos = np.searchsorted(self._keys, key)
            pos = np.minimum(pos, len(self._keys) - 1)
            idx = np.where(self._keys[pos] == key, pos, -1)
        return np.where(inside, idx, -1).astype(np.intp, copy=False)

    def query_points(
        self, qx: NDArray[np.float64], qy: NDArray[np.float64], radius_m: float
    ) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
        """All (query index, member position, distance) with distance <= radius_m.

        Member positions index ``self.slots``. Order: by neighbour offset, then query, then member
        (deterministic for a given grid, but callers that need a canonical order sort).
        """
        if self.n == 0 or len(qx) == 0:
            return _EMPTY_INTP, _EMPTY_INTP, _EMPTY_F64
        cx0, cy0 = self._origin
        qcx = np.floor(qx / self.cell_m).astype(np.int64) - cx0
        qcy = np.floor(qy / self.cell_m).astype(np.int64) - cy0
        q_parts: list[NDArray[np.intp]] = []
        c_parts: list[NDArray[np.intp]] = []
        q_all = np.arange(len(qx), dtype=np.intp)
        for dx, dy in self._offsets(radius_m, half=False):
            cell = self._lookup(qcx + dx, qcy + dy)
            hit = cell >= 0
            q_parts.append(q_all[hit])
            c_parts.append(cell[hit])
        q_cell = np.concatenate(q_parts)
        cells = np.concatenate(c_parts)
        q, member = _expand(q_cell, self.cell_start[cells], self.cell_count[cells])
        ddx = self.xs[member] - qx[q]
        ddy = self.ys[member] - qy[q]
        d2 = ddx * ddx + ddy * ddy
        keep = d2 <= radius_m * radius_m
        return q[keep], member[keep], np.sqrt(d2[keep])

    def member_pairs(
        self, radius_m: float
    ) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
        """Unordered member-position pairs (a, b), a != b, within radius_m, each pair once.

        Every member queries the half neighbourhood of its cell (cells at a lexicographically larger
        offset, plus the members after it in its own cell), so no pair is produced twice and no
        integer division is needed in the expansion.
        """
        n = self.n
        if n < 2:
            return _EMPTY_INTP, _EMPTY_INTP, _EMPTY_F64
        n_cells = len(self.cell_start)
        cell_of_member = np.repeat(np.arange(n_cells, dtype=np.intp), self.cell_count)
        members = np.arange(n, dtype=np.intp)
        cell_end = (self.cell_start + self.cell_count)[cell_of_member]
        a_parts: list[NDArray[np.intp]] = [members]
        start_parts: list[NDArray[np.intp]] = [members + 1]
        count_parts: list[NDArray[np.intp]] = [cell_end - members - 1]
        for dx, dy in self._offsets(radius_m, half=True):
            if dx == 0 and dy == 0:
                continue
            nb = self._lookup(self.cell_cx + dx, self.cell_cy + dy)
            hit = nb >= 0
            if not bool(hit.any()):
                continue
            nb_m = nb[cell_of_member]
            sel = nb_m >= 0
            a_parts.append(members[sel])
            start_parts.append(self.cell_start[nb_m[sel]])
            count_parts.append(self.cell_count[nb_m[sel]])
        ma, mb = _expand(np.concatenate(a_parts), np.concatenate(start_parts), np.concatenate(count_parts))
        if len(ma) == 0:
            return _EMPTY_INTP, _EMPTY_INTP, _EMPTY_F64
        ddx = self.xs[mb] - self.xs[ma]
        ddy = self.ys[mb] - self.ys[ma]
        d2 = ddx * ddx + ddy * ddy
        keep = d2 <= radius_m * radius_m
        return ma[keep], mb[keep], np.sqrt(d2[keep])

    # -- public queries --------------------------------------------------------------------------

    def pairs_within(self, radius_m: float) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Unordered slot pairs (i < j) of active actors at distance <= radius_m.

        Order is deterministic for a given grid but otherwise unspecified.
        """
        ma, mb, _ = self.member_pairs(radius_m)
        sa = self.slots[ma]
        sb = self.slots[mb]
        return np.minimum(sa, sb), np.maximum(sa, sb)

    def neighbours_of(
        self, slots: NDArray[np.intp], radius_m: float
    ) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Directed (src, dst) slot pairs with dst != src within radius_m of src.

        ``slots`` must be active in the world the grid was built from. Sorted by (position of src in
        ``slots``, dst).
        """
        slots = np.asarray(slots, dtype=np.intp)
        pos = self.position_of(slots)
        q, member, _ = self.query_points(self.xs[pos], self.ys[pos], radius_m)
        dst = self.slots[member]
        src = slots[q]
        keep = dst != src
        q, dst, src = q[keep], dst[keep], src[keep]
        order = np.argsort(q.astype(np.int64) * self._capacity + dst, kind="stable")
        return src[order], dst[order]

    def position_of(self, slots: NDArray[np.intp]) -> NDArray[np.intp]:
        """Member position (index into ``self.slots``) of each slot; ValueError if not in the grid."""
        lut = np.full(self._capacity, -1, dtype=np.intp)
        lut[self.slots] = np.arange(self.n, dtype=np.intp)
        pos = lut[slots] if len(slots) else _EMPTY_INTP
        if len(pos) and pos.min() < 0:
            raise ValueError("slot not in the grid (inactive when the grid was built?)")
        return pos
