"""Who hears whom: per-transmission receiver sets with loss and delay from a link model."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from v2x.core._grid import SpatialGrid
from v2x.core._world import WorldState

__all__ = [
    "Deliveries",
    "LinkModel",
    "default_cell_m",
    "fan_out_addressed",
    "fan_out_broadcast",
]


@runtime_checkable
class LinkModel(Protocol):
    """A radio or wired link as the core sees it (implemented structurally, e.g. by v2x.impair)."""

    name: str
    max_range_m: float  # math.inf for cellular / wired

    def delivery_probability(self, distance_m: NDArray[np.float64]) -> NDArray[np.float64]: ...

    def sample_delay_s(
        self, rng: np.random.Generator, distance_m: NDArray[np.float64]
    ) -> NDArray[np.float64]: ...


def _sorted_order(
    receiver: NDArray[np.intp], time_s: NDArray[np.float64], tx_index: NDArray[np.intp]
) -> NDArray[np.intp]:
    """Permutation sorting by (receiver, time, tx_index)."""
    n = len(receiver)
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    # Fast path: rank the times, then one argsort of the unique int64 key receiver * n + rank.
    # Two plain argsorts are ~5x faster than lexsort on a million rows. Exact ties in time need the
    # tx_index tie-break, so they take the general lexsort path.
    by_time = np.argsort(time_s)
    t_sorted = time_s[by_time]
    if n > 1 and bool(np.any(t_sorted[1:] == t_sorted[:-1])):
        return np.lexsort((tx_index, time_s, receiver)).astype(np.intp, copy=False)
    rank = np.empty(n, dtype=np.int64)
    rank[by_time] = np.arange(n, dtype=np.int64)
    return np.argsort(receiver.astype(np.int64) * n + rank).astype(np.intp, copy=False)


@dataclass(frozen=True, eq=False)
class Deliveries:
    """Deliveries of transmissions to receivers, sorted by (receiver, delivery_time_s, tx_index).

    ``tx_index`` indexes the transmission arrays passed to the fan-out call that produced it.
    ``candidates`` counts receivers in range (or addressed) before loss, ``dropped`` those lost.
    """

    tx_index: NDArray[np.intp]
    receiver: NDArray[np.intp]
    delivery_time_s: NDArray[np.float64]
    distance_m: NDArray[np.float64]
    candidates: int = 0
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.receiver)

    @staticmethod
    def empty() -> Deliveries:
        z = np.zeros(0, dtype=np.intp)
        f = np.zeros(0, dtype=np.float64)
        return Deliveries(z, z.copy(), f, f.copy(), 0, 0)

    @staticmethod
    def _sorted(
        tx_index: NDArray[np.intp],
        receiver: NDArray[np.intp],
        time_s: NDArray[np.float64],
        distance_m: NDArray[np.float64],
        candidates: int,
        dropped: int,
        order: NDArray[np.intp] | None = None,
    ) -> Deliveries:
        if order is None:
            order = _sorted_order(receiver, time_s, tx_index)
        return Deliveries(
            tx_index[order], receiver[order], time_s[order], distance_m[order], candidates, dropped
        )

    @staticmethod
    def concat(*parts: Deliveries) -> Deliveries:
        """Merge parts (re-sorted); counters add up. tx_index values are kept as they are."""
        if not parts:
            return Deliveries.empty()
        return Deliveries._sorted(
            np.concatenate([p.tx_index for p in parts]),
            np.concatenate([p.receiver for p in parts]),
            np.concatenate([p.delivery_time_s for p in parts]),
            np.concatenate([p.distance_m for p in parts]),
            sum(p.candidates for p in parts),
            sum(p.dropped for p in parts),
        )

    def take(self, mask_or_index: NDArray[np.bool_] | NDArray[np.intp]) -> Deliveries:
        """Subset (order preserved), counters reset to 0."""
        return Deliveries(
            self.tx_index[mask_or_index],
            self.receiver[mask_or_index],
            self.delivery_time_s[mask_or_index],
            self.distance_m[mask_or_index],
            0,
            0,
        )

    def split_due(self, t_end_s: float) -> tuple[Deliveries, Deliveries]:
        """(due at or before t_end_s, later). Counters stay with the first part so sums stay right."""
        due = self.delivery_time_s <= t_end_s
        first = self.take(due)
        first = Deliveries(
            first.tx_index, first.receiver, first.delivery_time_s, first.distance_m,
            self.candidates, self.dropped,
        )
        return first, self.take(~due)

    def receiver_bounds(self) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]]:
        """(receivers, start, stop): row range of each distinct receiver, for one bundle per receiver."""
        n = len(self.receiver)
        if n == 0:
            z = np.zeros(0, dtype=np.intp)
            return z, z.copy(), z.copy()
        first = np.empty(n, dtype=np.bool_)
        first[0] = True
        np.not_equal(self.receiver[1:], self.receiver[:-1], out=first[1:])
        start = np.flatnonzero(first).astype(np.intp)
        stop = np.append(start[1:], n).astype(np.intp)
        return self.receiver[start], start, stop


def default_cell_m(radius_m: float) -> float:
    """Cell size used when a fan-out or conflict query has to build its own grid."""
    return max(radius_m / 2.0, 10.0)


def _apply_link(
    tx_index: NDArray[np.intp],
    receiver: NDArray[np.intp],
    distance_m: NDArray[np.float64],
    tx_time_s: NDArray[np.float64],
    link: LinkModel,
    rng: np.random.Generator,
) -> Deliveries:
    """Loss then delay, drawn in the order given (callers pass (tx, receiver)-sorted pairs)."""
    candidates = len(receiver)
    if candidates == 0:
        return Deliveries.empty()
    p = np.asarray(link.delivery_probability(distance_m), dtype=np.float64)
    keep = rng.random(candidates) < p
    tx_k = tx_index[keep]
    rx_k = receiver[keep]
    d_k = distance_m[keep]
    delay = np.asarray(link.sample_delay_s(rng, d_k), dtype=np.float64)
    if delay.shape != d_k.shape:
        raise ValueError(f"{link.name}: sample_delay_s returned {delay.shape}, expected {d_k.shape}")
    t = tx_time_s[tx_k] + delay
    return Deliveries._sorted(tx_k, rx_k, t, d_k, candidates, candidates - len(rx_k))


def fan_out_broadcast(
    world: WorldState,
    sender_slots: NDArray[np.intp],
    tx_time_s: NDArray[np.float64],
    link: LinkModel,
    rng: np.random.Generator,
    *,
    grid: SpatialGrid | None = None,
    can_receive: NDArray[np.bool_] | None = None,
) -> Deliveries:
    """PC5-style broadcast: every active actor within ``link.max_range_m`` of the sender hears it.

    Each (transmission, receiver) candidate is kept with ``link.delivery_probability(d)`` and delayed
    by ``link.sample_delay_s``. Random draws happen in (tx index, receiver slot) order, so the result
    depends only on the inputs and the rng state, not on the grid. ``can_receive`` (indexed by slot)
    excludes receivers such as RSUs on another channel or powered-down units.
    """
    sender_slots = np.asarray(sender_slots, dtype=np.intp)
    tx_time_s = np.asarray(tx_time_s, dtype=np.float64)
    if sender_slots.shape != tx_time_s.shape:
        raise ValueError("sender_slots and tx_time_s must have the same shape")
    n_tx = len(sender_slots)
    if n_tx == 0 or world.n_active == 0:
        return Deliveries.empty()
    if not bool(world.active[sender_slots].all()):
        raise ValueError("a sender slot is not active")
    sx = world.x[sender_slots]
    sy = world.y[sender_slots]
    cap = world.capacity
    if math.isinf(link.max_range_m):
        rx_all = world.active_slots()
        tx = np.repeat(np.arange(n_tx, dtype=np.intp), len(rx_all))
        rx = np.tile(rx_all, n_tx)
    else:
        radius = float(link.max_range_m)
        if grid is None:
            grid = SpatialGrid.build(world, default_cell_m(radius))
        tx, member, _ = grid.query_points(sx, sy, radius)
        rx = grid.slots[member]
    keep = rx != sender_slots[tx]
    if can_receive is not None:
        keep &= can_receive[rx]
    tx = tx[keep]
    rx = rx[keep]
    # Canonical draw order: (tx index, receiver slot). One int64 key sort.
    key = np.sort(tx.astype(np.int64) * cap + rx)
    tx = (key // cap).astype(np.intp)
    rx = (key % cap).astype(np.intp)
    ddx = world.x[rx] - sx[tx]
    ddy = world.y[rx] - sy[tx]
    dist = np.sqrt(ddx * ddx + ddy * ddy)
    return _apply_link(tx, rx, dist, tx_time_s, link, rng)


def fan_out_addressed(
    world: WorldState,
    sender_slots: NDArray[np.intp],
    tx_time_s: NDArray[np.float64],
    tx_index_of_dest: NDArray[np.intp],
    dest_slots: NDArray[np.intp],
    link: LinkModel,
    rng: np.random.Generator,
) -> Deliveries:
    """Unicast / multicast (Uu, wired): explicit (transmission, destination) pairs.

    Loss and delay come from the link at the sender-destination distance. Pairs whose destination
    is not active are not candidates. Draws happen in (tx index, destination slot) order.
    """
    sender_slots = np.asarray(sender_slots, dtype=np.intp)
    tx_time_s = np.asarray(tx_time_s, dtype=np.float64)
    tx = np.asarray(tx_index_of_dest, dtype=np.intp)
    rx = np.asarray(dest_slots, dtype=np.intp)
    if tx.shape != rx.shape:
        raise ValueError("tx_index_of_dest and dest_slots must have the same shape")
    if len(rx) == 0:
        return Deliveries.empty()
    if tx.min() < 0 or tx.max() >= len(sender_slots):
        raise ValueError("tx_index_of_dest out of range")
    ok = (rx >= 0) & (rx < world.capacity)
    ok[ok] = world.active[rx[ok]]
    tx = tx[ok]
    rx = rx[ok]
    order = np.lexsort((rx, tx))
    tx = tx[order]
    rx = rx[order]
    s = sender_slots[tx]
    ddx = world.x[rx] - world.x[s]
    ddy = world.y[rx] - world.y[s]
    dist = np.sqrt(ddx * ddx + ddy * ddy)
    return _apply_link(tx, rx, dist, tx_time_s, link, rng)
