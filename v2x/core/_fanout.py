"""Who hears whom: per-transmission receiver sets with loss and delay from a link model."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from v2x.core._grid import SpatialGrid, bucket_points
from v2x.core._jit import compiled, compiles, kernel
from v2x.core._kernels import (
    RX_LIMIT,
    TX_BITS,
    broadcast_kernel,
    broadcast_kernel_ranged,
    canonical_kernel,
    latency_ms_kernel,
    pairs_delivery_kernel,
)
from v2x.core._world import WorldState

__all__ = [
    "ChannelTables",
    "Deliveries",
    "LinkModel",
    "LinkTables",
    "TabulatedLink",
    "default_cell_m",
    "deliver_pairs",
    "fan_out_addressed",
    "fan_out_broadcast",
]


@runtime_checkable
class LinkModel(Protocol):
    """A radio or wired link as the core sees it (implemented structurally, e.g. by v2x.impair)."""

    name: str
    max_range_m: float  # math.inf for cellular / wired

    def delivery_probability(self, distance_m: NDArray[np.float64]) -> NDArray[np.float64]: ...

    def sample_delay_s(self, rng: np.random.Generator, distance_m: NDArray[np.float64]) -> NDArray[np.float64]: ...


class LinkTables(Protocol):
    """A link described as data, so the compiled fan-out can draw loss and delay itself.

    - Delivery probability: ``pdr[k]`` at distance ``k * pdr_step_m``, linear in between, ``pdr[-1]``
      beyond the last knot.
    - Delay = base * multiplier + extra, three independent parts:
      base from the inverse CDF ``delay_quantiles_s`` (``delay_stepped`` False: values at
      q = k / (M - 1), linear in between; True: M equally likely values); multiplier
      ``delay_multipliers[j]`` with cumulative probabilities ``delay_multiplier_cdf`` (last = 1);
      extra: with probability ``extra_delay_probability`` a uniform delay in [0, ``extra_delay_max_s``).
    """

    @property
    def pdr_step_m(self) -> float: ...
    @property
    def pdr(self) -> NDArray[np.float64]: ...
    @property
    def delay_quantiles_s(self) -> NDArray[np.float64]: ...
    @property
    def delay_stepped(self) -> bool: ...
    @property
    def delay_multipliers(self) -> NDArray[np.float64]: ...
    @property
    def delay_multiplier_cdf(self) -> NDArray[np.float64]: ...
    @property
    def extra_delay_probability(self) -> float: ...
    @property
    def extra_delay_max_s(self) -> float: ...


@runtime_checkable
class TabulatedLink(LinkModel, Protocol):
    """A link that can also describe itself as tables (the fast, compiled fan-out path)."""

    def channel_tables(self) -> LinkTables: ...


def _ones() -> NDArray[np.float64]:
    return np.ones(1, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class ChannelTables:
    """A concrete :class:`LinkTables` (any object with these attributes will do)."""

    pdr_step_m: float
    pdr: NDArray[np.float64]
    delay_quantiles_s: NDArray[np.float64]
    delay_stepped: bool = False
    delay_multipliers: NDArray[np.float64] = field(default_factory=_ones)
    delay_multiplier_cdf: NDArray[np.float64] = field(default_factory=_ones)
    extra_delay_probability: float = 0.0
    extra_delay_max_s: float = 0.0


class _Tables(NamedTuple):
    """Validated, contiguous tables in the form the kernels take."""

    pdr: NDArray[np.float64]
    pdr_inv_step: float
    delay_q: NDArray[np.float64]
    stepped: bool
    mult: NDArray[np.float64]
    mult_cdf: NDArray[np.float64]
    extra_p: float
    extra_max: float


def _f64(a: object, what: str) -> NDArray[np.float64]:
    arr = np.ascontiguousarray(a, dtype=np.float64)
    if arr.ndim != 1 or len(arr) == 0 or not bool(np.isfinite(arr).all()):
        raise ValueError(f"link tables: {what} must be a non-empty 1-D array of finite numbers")
    return arr


def _checked_tables(t: LinkTables, name: str) -> _Tables:
    step = float(t.pdr_step_m)
    if not (step > 0 and math.isfinite(step)):
        raise ValueError(f"{name}: pdr_step_m must be positive and finite, got {step}")
    pdr = _f64(t.pdr, "pdr")
    if pdr.min() < 0 or pdr.max() > 1:
        raise ValueError(f"{name}: pdr outside [0, 1]")
    dq = _f64(t.delay_quantiles_s, "delay_quantiles_s")
    if dq.min() < 0 or bool(np.any(np.diff(dq) < 0)):
        raise ValueError(f"{name}: delay_quantiles_s must be non-negative and non-decreasing")
    mult = _f64(t.delay_multipliers, "delay_multipliers")
    cdf = _f64(t.delay_multiplier_cdf, "delay_multiplier_cdf")
    if mult.shape != cdf.shape or mult.min() < 0 or bool(np.any(np.diff(cdf) < 0)) or abs(cdf[-1] - 1) > 1e-9:
        raise ValueError(f"{name}: delay multipliers need non-negative values and a CDF ending at 1")
    extra_p = float(t.extra_delay_probability)
    extra_max = float(t.extra_delay_max_s)
    if not (0 <= extra_p <= 1 and 0 <= extra_max < math.inf):
        raise ValueError(f"{name}: extra delay probability must be in [0, 1] and its maximum finite")
    stepped = bool(t.delay_stepped)
    if len(pdr) == 1:
        pdr = np.repeat(pdr, 2)
    if len(dq) == 1 and not stepped:
        dq = np.repeat(dq, 2)
    cdf = cdf.copy()
    cdf[-1] = 1.0
    return _Tables(pdr, 1.0 / step, dq, stepped, mult, cdf, extra_p, extra_max)


class _LastTables(threading.local):
    """The last tables object validated (links hand out the same object every call) and its result."""

    source: object = None
    tables: _Tables | None = None


_LAST_TABLES = _LastTables()


def _tables_of(link: LinkModel) -> _Tables | None:
    """Validated tables of a TabulatedLink, None for other links (attribute check: a runtime Protocol
    isinstance costs tens of microseconds)."""
    channel_tables = getattr(link, "channel_tables", None)
    if channel_tables is None:
        return None
    t = channel_tables()
    if t is not _LAST_TABLES.source or _LAST_TABLES.tables is None:
        _LAST_TABLES.tables = _checked_tables(t, link.name)
        _LAST_TABLES.source = t
    return _LAST_TABLES.tables


Index = NDArray[np.signedinteger[Any]]

# Output columns of the fan-out: int32 indices and float64 delivery times (16 bytes per delivery;
# writing a million rows per tick is a sizeable part of the urban tick).
TX_DTYPE = np.int32
RX_DTYPE = np.int32
_SLOT_LIMIT = 1 << 31  # receiver slots must fit the int32 column


def _sorted_order(receiver: Index, time_s: NDArray[np.float64], tx_index: Index) -> NDArray[np.intp]:
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
    The fan-out functions return int32 ``tx_index`` and ``receiver`` and float64 ``delivery_time_s``;
    ``concat`` keeps numpy's promotion (e.g. a caller that offsets ``tx_index`` into int64 keeps int64).
    Distances are not carried (nothing on the hot path needs them): :func:`delivery_distances` computes
    them from the world state of the same tick.
    """

    tx_index: Index
    receiver: Index
    delivery_time_s: NDArray[np.float64]
    candidates: int = 0
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.receiver)

    @staticmethod
    def empty() -> Deliveries:
        return Deliveries(np.zeros(0, TX_DTYPE), np.zeros(0, RX_DTYPE), np.zeros(0, np.float64), 0, 0)

    @staticmethod
    def _sorted(
        tx_index: Index,
        receiver: Index,
        time_s: NDArray[np.float64],
        candidates: int,
        dropped: int,
        order: NDArray[np.intp] | None = None,
    ) -> Deliveries:
        if order is None:
            order = _sorted_order(receiver, time_s, tx_index)
        return Deliveries(tx_index[order], receiver[order], time_s[order], candidates, dropped)

    @staticmethod
    def concat(*parts: Deliveries) -> Deliveries:
        """Merge parts (re-sorted); counters add up. tx_index values are kept as they are."""
        if not parts:
            return Deliveries.empty()
        return Deliveries._sorted(
            np.concatenate([p.tx_index for p in parts]),
            np.concatenate([p.receiver for p in parts]),
            np.concatenate([p.delivery_time_s for p in parts]),
            sum(p.candidates for p in parts),
            sum(p.dropped for p in parts),
        )

    def take(self, mask_or_index: NDArray[np.bool_] | NDArray[np.intp] | slice) -> Deliveries:
        """Subset (order preserved), counters reset to 0; a slice takes views of the arrays."""
        return Deliveries(
            self.tx_index[mask_or_index],
            self.receiver[mask_or_index],
            self.delivery_time_s[mask_or_index],
            0,
            0,
        )

    def split_due(self, t_end_s: float) -> tuple[Deliveries, Deliveries]:
        """(due at or before t_end_s, later). Counters stay with the first part so sums stay right."""
        due = self.delivery_time_s <= t_end_s
        if due.all():  # the usual case (a tick is longer than the channel's latency): no copies
            return self, Deliveries.empty()
        first = self.take(due)
        first = Deliveries(first.tx_index, first.receiver, first.delivery_time_s, self.candidates, self.dropped)
        return first, self.take(~due)

    def receiver_bounds(self) -> tuple[Index, NDArray[np.intp], NDArray[np.intp]]:
        """(receivers, start, stop): row range of each distinct receiver, for one bundle per receiver."""
        n = len(self.receiver)
        if n == 0:
            z = np.zeros(0, dtype=np.intp)
            return self.receiver[:0], z, z.copy()
        first = np.empty(n, dtype=np.bool_)
        first[0] = True
        np.not_equal(self.receiver[1:], self.receiver[:-1], out=first[1:])
        start = np.flatnonzero(first).astype(np.intp)
        stop = np.append(start[1:], n).astype(np.intp)
        return self.receiver[start], start, stop


def delivery_distances(world: WorldState, sender_slots: NDArray[np.intp], d: Deliveries) -> NDArray[np.float64]:
    """Sender-receiver distance (m) of each delivery, from the world's current positions: the distances
    the fan-out used when called in the same tick (before the world moves), e.g. for PRR-by-distance."""
    s = np.asarray(sender_slots, dtype=np.intp)[d.tx_index]
    ddx = world.x[d.receiver] - world.x[s]
    ddy = world.y[d.receiver] - world.y[s]
    dist: NDArray[np.float64] = np.sqrt(ddx * ddx + ddy * ddy)
    return dist


def latencies_ms(
    d: Deliveries, tx_time_s: NDArray[np.float64], out: NDArray[np.float64], n_actors: int
) -> NDArray[np.float64]:
    """Each delivery's latency in ms, (its delivery time - its transmission's time in ``tx_time_s``) * 1e3, written
    into ``out`` (``len(d)`` values) and returned. A world of more than ``SMALL_WORLD`` actors (``n_actors``) whose
    deliveries have the fan-out's int32 ``tx_index`` runs ``latency_ms_kernel`` (one pass over them: a channel
    store of some 4 MB a tick at 2,000 vehicles); any other numpy's gather, subtraction and multiplication, the
    same IEEE operations, so the same values."""
    if (
        compiles(n_actors)
        and d.tx_index.dtype == np.int32
        and d.delivery_time_s.dtype == np.float64
        and out.flags.c_contiguous
    ):  # (contiguous arrays, the one signature the warm-up compiles)
        c = np.ascontiguousarray
        compiled(latency_ms_kernel)(c(d.delivery_time_s), c(tx_time_s, dtype=np.float64), c(d.tx_index), out)
        return out
    np.subtract(d.delivery_time_s, tx_time_s[d.tx_index], out=out)
    out *= 1e3
    return out


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
    return Deliveries._sorted(tx_k.astype(TX_DTYPE), rx_k.astype(RX_DTYPE), t, candidates, candidates - len(rx_k))


# -- compiled fan-out ----------------------------------------------------------------------------------


def _link_seed(rng: np.random.Generator) -> np.uint64:
    """One 64-bit word from the caller's generator keys every draw of one fan-out call."""
    return np.uint64(rng.integers(0, np.iinfo(np.uint64).max, dtype=np.uint64, endpoint=True))


class _OutputSize(threading.local):
    """Size of the last result: the next output is allocated at that plus 1/16 (ticks look alike)."""

    last = 0

    def guess(self, floor: int) -> int:
        return max(floor, self.last + self.last // 16, 1024)


_OUTPUT_SIZE = _OutputSize()


def _fan_cell_m(radius: float) -> tuple[float, float]:
    """Cells of the transmission grid (height, width): half the range tall (5 grid rows per receiver;
    lower rows scan fewer members outside the range but pay the per-row set-up more often) and an eighth
    of the range wide (a row's run then ends closer to the circle; narrower cells cost nothing per row)."""
    h = default_cell_m(radius)
    return h, max(h / 4.0, 1.0)


def _compiled_broadcast(
    world: WorldState,
    sender_slots: NDArray[np.intp],
    tx_time_s: NDArray[np.float64],
    rx_slots: NDArray[np.intp],
    radius: float,
    slot_r2: NDArray[np.float64] | None,
    tables: _Tables,
    seed: np.uint64,
) -> Deliveries:
    sx = world.x[sender_slots]
    sy = world.y[sender_slots]
    if math.isinf(radius):
        mtx = np.arange(len(sender_slots), dtype=np.intp)
        z = np.zeros(2, dtype=np.int64)
        gargs: tuple[float, int, int, int, int, bool, NDArray[np.int64], NDArray[np.int64]] = (
            1.0, 0, 0, 1, 1, True, z, z,
        )  # fmt: skip
        cell_w = 1.0
    else:
        cell_h, cell_w = _fan_cell_m(radius)
        b = bucket_points(sx, sy, cell_h, cell_w)
        mtx = b.order
        gargs = b.kernel_args(cell_h)
    txs = np.ascontiguousarray(sx[mtx])
    tys = np.ascontiguousarray(sy[mtx])
    msender = np.ascontiguousarray(sender_slots[mtx])
    cap = _OUTPUT_SIZE.guess(len(rx_slots))
    out = _output(cap)
    i = pos = candidates = 0
    while True:
        if slot_r2 is None:  # no actor has a range of its own: the kernel that reads none (the usual path)
            i, pos, added = kernel(broadcast_kernel, world.n_active)(
                txs, tys, mtx, msender, *gargs, cell_w, rx_slots, world.x, world.y, tx_time_s, radius, *tables,
                seed, *out, i, pos,
            )  # fmt: skip
        else:
            i, pos, added = kernel(broadcast_kernel_ranged, world.n_active)(
                txs, tys, mtx, msender, *gargs, cell_w, rx_slots, world.x, world.y, tx_time_s, radius, slot_r2,
                *tables, seed, *out, i, pos,
            )  # fmt: skip
        i, pos, candidates = int(i), int(pos), candidates + int(added)
        if i == len(rx_slots):
            break
        bigger = _output(2 * len(out[0]))
        for k in range(3):
            bigger[k][:pos] = out[k][:pos]
        out = bigger
    _OUTPUT_SIZE.last = pos
    return Deliveries(out[0][:pos], out[1][:pos], out[2][:pos], candidates, candidates - pos)


#: What the generic path's scan gets for ``slot_r2`` when no actor has a range of its own (not read).
_NO_RANGE: NDArray[np.float64] = np.full(1, np.inf)


def _slot_r2(range_m: NDArray[np.float64] | None, world: WorldState) -> NDArray[np.float64] | None:
    """Per slot, the square of the actor's own range, or None when ``range_m`` gives none (no finite value)."""
    if range_m is None:
        return None
    r = np.ascontiguousarray(range_m, dtype=np.float64)
    if r.ndim != 1 or len(r) < world.high_water:
        raise ValueError("range_m must be a 1-D array covering every slot in use")
    if not bool((r > 0).all()):
        raise ValueError("range_m must be positive (inf: no range of its own)")
    if bool(np.isinf(r).all()):
        return None
    return r * r


def _output(n: int) -> tuple[NDArray[np.int32], NDArray[np.int32], NDArray[np.float64]]:
    return np.empty(n, TX_DTYPE), np.empty(n, RX_DTYPE), np.empty(n, np.float64)


def fan_out_broadcast(
    world: WorldState,
    sender_slots: NDArray[np.intp],
    tx_time_s: NDArray[np.float64],
    link: LinkModel,
    rng: np.random.Generator,
    *,
    grid: SpatialGrid | None = None,
    can_receive: NDArray[np.bool_] | None = None,
    range_m: NDArray[np.float64] | None = None,
) -> Deliveries:
    """PC5-style broadcast: every active actor within ``link.max_range_m`` of the sender hears it.

    Each (transmission, receiver) candidate is kept with the link's delivery probability at distance
    ``d`` and delayed by the link's delay. ``can_receive`` (indexed by slot) excludes receivers such as
    RSUs on another channel or powered-down units. ``range_m`` (indexed by slot, positive; inf: none) is
    each actor's own coverage, such as an RSU's declared range: a pair is a candidate only within
    min(link range, sender's range, receiver's range), so a pair beyond it is neither drawn nor counted
    in ``candidates``. The result depends only on the inputs and the rng state, never on the grid.

    Links that provide ``channel_tables()`` (:class:`TabulatedLink`) take the compiled path: one 64-bit
    seed is taken from ``rng`` and every draw is a counter-based function of (seed, tx index, receiver
    slot); ``grid`` is not needed (the kernel hashes the transmissions itself). Other links are called as
    before: candidates in (tx index, receiver slot) order, one ``rng`` uniform each for loss, then
    ``link.sample_delay_s`` on the kept ones in that order.
    """
    sender_slots = np.ascontiguousarray(sender_slots, dtype=np.intp)
    tx_time_s = np.ascontiguousarray(tx_time_s, dtype=np.float64)
    if sender_slots.shape != tx_time_s.shape:
        raise ValueError("sender_slots and tx_time_s must have the same shape")
    n_tx = len(sender_slots)
    if n_tx == 0 or world.n_active == 0:
        return Deliveries.empty()
    if not bool(world.active[sender_slots].all()):
        raise ValueError("a sender slot is not active")
    if can_receive is not None:
        can_receive = np.ascontiguousarray(can_receive, dtype=np.bool_)
        if len(can_receive) < world.high_water:
            raise ValueError("can_receive must cover every slot in use")
    slot_r2 = _slot_r2(range_m, world)
    radius = float(link.max_range_m)
    tables = _tables_of(link)
    if tables is not None:
        if n_tx >= 1 << TX_BITS or world.capacity >= min(RX_LIMIT, _SLOT_LIMIT):
            raise ValueError("too many transmissions or slots for the counter-based draws")
        rx_slots = world.active_slots()
        if can_receive is not None:
            rx_slots = rx_slots[can_receive[rx_slots]]
        return _compiled_broadcast(world, sender_slots, tx_time_s, rx_slots, radius, slot_r2, tables, _link_seed(rng))
    sx = world.x[sender_slots]
    sy = world.y[sender_slots]
    if math.isinf(radius):
        slots = world.active_slots()
        z = np.zeros(2, dtype=np.int64)
        xs, ys, mslots = world.x[slots], world.y[slots], slots
        gargs: tuple[float, int, int, int, int, bool, NDArray[np.int64], NDArray[np.int64]] = (
            1.0, 0, 0, 1, 1, True, z, z,
        )  # fmt: skip
    else:
        if grid is None:
            grid = SpatialGrid.build(world, default_cell_m(radius))
        xs, ys, mslots, gargs = grid.xs, grid.ys, grid.slots, grid.kernel_args()
    mask = can_receive if can_receive is not None else np.ones(1, dtype=np.bool_)
    tx, rx = kernel(canonical_kernel, world.n_active)(
        xs, ys, mslots, *gargs, sender_slots, sx, sy, radius, mask, can_receive is not None,
        _NO_RANGE if slot_r2 is None else slot_r2, slot_r2 is not None,
    )  # fmt: skip
    ddx = world.x[rx] - sx[tx]
    ddy = world.y[rx] - sy[tx]
    return _apply_link(tx, rx, np.sqrt(ddx * ddx + ddy * ddy), tx_time_s, link, rng)


def deliver_pairs(
    world: WorldState,
    sender_slots: NDArray[np.intp],
    tx_time_s: NDArray[np.float64],
    tx_index: NDArray[np.intp],
    receiver: NDArray[np.intp],
    link: TabulatedLink,
    rng: np.random.Generator,
) -> Deliveries:
    """Loss, delay and ordering for candidate (tx index, receiver slot) pairs found by another broad
    phase, with exactly the draws of :func:`fan_out_broadcast` on a tabulated link: the same candidates
    and rng state give the same deliveries. Pairs must be unique; their order does not matter. (Actors'
    own ranges, ``fan_out_broadcast``'s ``range_m``, are the broad phase's to apply: every pair given is a
    candidate.)
    """
    sender_slots = np.ascontiguousarray(sender_slots, dtype=np.intp)
    tx_time_s = np.ascontiguousarray(tx_time_s, dtype=np.float64)
    tx = np.ascontiguousarray(tx_index, dtype=np.intp)
    rx = np.ascontiguousarray(receiver, dtype=np.intp)
    tables = _tables_of(link)
    if tables is None:
        raise TypeError(f"{link.name}: deliver_pairs needs a link with channel_tables()")
    n = len(tx)
    out = _output(n)
    pos = kernel(pairs_delivery_kernel, world.n_active)(
        world.x, world.y, sender_slots, tx_time_s, tx, rx, world.capacity, *tables, _link_seed(rng), *out
    )
    pos = int(pos)
    return Deliveries(out[0][:pos], out[1][:pos], out[2][:pos], n, n - pos)


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
