"""The radio and network channel, sans-I/O: a tick's transmissions in, deliveries per receiver out.

Which link model a transmission gets:

* ``LINK_PC5``: sidelink broadcast, fanned out by ``v2x.core.fan_out_broadcast`` to every equipped actor
  in range (``can_receive``; the platform has no radio), with the scenario's ``network.pc5`` profile; an
  RSU with a declared ``range_m`` reaches and hears no one farther than that (``range_m``);
* ``LINK_UU``: addressed (``dest_ids``) through the cellular network: a road user's or RSU's message goes
  up (the ``network.uu`` profile's uplink), the platform's comes down (its downlink);
* ``LINK_WIRED``: addressed over the ``network.wired`` backhaul.

Every fan-out draws from one generator (``rng``) in a fixed order: PC5, Uu up, Uu down, wired, and within
each in (sender slot, seq) order. A delivery is pending until its delivery time; ``due`` hands out, per
receiver, the payloads whose time has come (for that tick's ``TickInput``). The channel also keeps the
message counters and latencies that the run's metrics report.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from v2x.core import (
    Deliveries,
    SpatialGrid,
    WorldState,
    default_cell_m,
    fan_out_addressed,
    fan_out_broadcast,
    latencies_ms,
)
from v2x.impair import network_link
from v2x.scenario.model import NetworkSpec
from v2x.units import us_of
from v2x.wire import testbed_pb2

LINK_NAME = {testbed_pb2.LINK_PC5: "pc5", testbed_pb2.LINK_UU: "uu", testbed_pb2.LINK_WIRED: "wired"}


@dataclass(slots=True)
class Transmission:
    """One envelope an actor transmitted, as the world accepted it (``raw`` is forwarded unchanged)."""

    tick: int
    sender_slot: int
    seq: int
    tx_time_s: float
    link: int  # testbed_pb2.Link
    dest_ids: tuple[str, ...]  # addressed links (Uu, wired): the receivers; PC5: empty
    raw: bytes
    msg: str = ""  # the MessageFrame's message type (bsm, rsm, spat, ...)


class LatencyHistogram:
    """Latencies (ms) counted in bins of about 0.1 % of their value: every ``LatencyColumn`` counts its values in
    one as they come, and its percentiles are read from it once the column has too many to keep each one
    (``LatencyColumn.EXACT_MAX``). A bin is a prefix of the value's float64 bits: its exponent and the top
    :data:`MANTISSA_BITS` bits of its mantissa (the bits of a non-negative double rise with its value), so a bin
    spans 2^-10 of the values in it; bins below 2^-20 ms and above 2^20 ms are clamped into the end ones. The
    count and the maximum are exact; a percentile is interpolated between the order statistics as
    ``np.percentile`` does, each read as its bin's middle, so it is within half a bin (0.05 %) of the exact
    one, plus the clamping at the ends (not reached by any modelled channel). Fixed memory: 41 k counters."""

    MANTISSA_BITS = 10
    _SHIFT = 52 - MANTISSA_BITS
    _LO = int(np.float64(2.0**-20).view(np.int64)) >> _SHIFT
    _HI = int(np.float64(2.0**20).view(np.int64)) >> _SHIFT
    RELATIVE_ERROR = 2.0**-MANTISSA_BITS / 2  # half a bin, relative to the value
    __slots__ = ("counts", "max")

    def __init__(self) -> None:
        self.counts = np.zeros(self._HI - self._LO + 1, dtype=np.int64)
        self.max = -np.inf

    def add(self, ms: NDArray[np.float64]) -> None:
        """Count ``ms`` (finite, non-negative: delays)."""
        if not len(ms):
            return
        keys = np.right_shift(np.ascontiguousarray(ms, dtype=np.float64).view(np.int64), self._SHIFT)
        np.clip(keys, self._LO, self._HI, out=keys)
        keys -= self._LO
        np.add.at(self.counts, keys, 1)  # (numpy's fast path: about 1 ns a value, no array of the bins' size)
        self.max = max(self.max, float(ms.max()))

    def remove(self, ms: Sequence[float]) -> None:
        """Uncount ``ms``, values counted before (the maximum stays: a bin's values are not kept)."""
        if not len(ms):
            return
        keys = np.right_shift(np.asarray(ms, dtype=np.float64).view(np.int64), self._SHIFT)
        np.clip(keys, self._LO, self._HI, out=keys)
        keys -= self._LO
        np.subtract.at(self.counts, keys, 1)

    def merged(self, other: LatencyHistogram) -> LatencyHistogram:
        out = LatencyHistogram()
        out.counts = self.counts + other.counts
        out.max = max(self.max, other.max)
        return out

    def __len__(self) -> int:
        return int(self.counts.sum())

    def percentiles(self, qs: Sequence[float]) -> list[float]:
        """The ``qs`` percentiles (0-100) as ``np.percentile`` interpolates them, each order statistic read as its
        bin's middle (at most the maximum); q = 100 is the exact maximum."""
        n = len(self)
        cum = np.cumsum(self.counts)
        edges = (np.arange(len(self.counts) + 1, dtype=np.int64) + self._LO) << self._SHIFT
        bounds = edges.view(np.float64)
        middle = np.minimum((bounds[:-1] + bounds[1:]) / 2, self.max)
        out = []
        for q in qs:
            if q >= 100.0:
                out.append(self.max)
                continue
            h = (n - 1) * q / 100.0
            lo = int(np.floor(h))
            hi = min(lo + 1, n - 1)
            a, b = middle[np.searchsorted(cum, [lo, hi], side="right")]
            out.append(float(a + (h - lo) * (b - a)))
        return out


class LatencyColumn:
    """One group's latencies (ms) in arrival order, in float64 blocks filled one after the other: no list of
    small per-tick chunks to concatenate and no copy while the run grows (the blocks double up to
    ``BLOCK`` values, 32 MB, then stay at that size; a block's unwritten tail costs address space, not
    memory). They are also counted in a :class:`LatencyHistogram` as they come (``hist``, about 1 ns a value).
    Past ``EXACT_MAX`` values (128 MB; a run of 2,000 equipped vehicles hears some 540,000 BSMs a tick, so 31
    ticks of it) the kept values are dropped (``kept`` False) and the histogram alone holds them: memory stays
    fixed however long the run, and the switch costs nothing (counting the 16 million kept values then would
    take a tick's time)."""

    BLOCK = 1 << 22
    EXACT_MAX = 1 << 24
    __slots__ = ("_blocks", "_count", "_pending", "_used", "hist", "kept")

    def __init__(self) -> None:
        self._blocks: list[NDArray[np.float64]] = []
        self._used = 0  # values in the last block
        self._count = 0  # values so far
        self._pending: NDArray[np.float64] | None = None  # the room handed out last, not counted in ``hist`` yet
        self.hist = LatencyHistogram()
        self.kept = True  # every value is kept (in ``_blocks``) as well as counted

    def extend(self, n: int) -> NDArray[np.float64]:
        """Room for ``n`` more values: the view the caller fills (before the column's next call)."""
        self._settle()
        self._count += n
        if self.kept and self._count > self.EXACT_MAX:
            self.kept, self._blocks, self._used = False, [], 0
        if not self.kept:  # one room, reused tick after tick
            if not self._blocks or len(self._blocks[0]) < n:
                self._blocks = [np.empty(n + n // 8, dtype=np.float64)]
            room = self._blocks[0][:n]
        else:
            if not self._blocks or self._used + n > len(self._blocks[-1]):
                last = len(self._blocks[-1]) if self._blocks else 0
                if self._blocks:  # the full block keeps only what was written
                    self._blocks[-1] = self._blocks[-1][: self._used]
                self._blocks.append(np.empty(max(n, min(2 * last, self.BLOCK), 1024), dtype=np.float64))
                self._used = 0
            room = self._blocks[-1][self._used : self._used + n]
            self._used += n
        self._pending = room
        return room

    def _settle(self) -> None:
        """Count the room handed out last (it has been filled) in the histogram."""
        if self._pending is not None:
            self.hist.add(self._pending)
            self._pending = None

    def histogram(self) -> LatencyHistogram:
        """Every value so far, counted."""
        self._settle()
        return self.hist

    def parts(self) -> list[NDArray[np.float64]]:
        """The values so far, block by block (views); only while they are kept."""
        if not self.kept:
            raise ValueError(f"{self._count:,} latencies are counted in a histogram, not kept")
        if not self._blocks:
            return []
        return [*self._blocks[:-1], self._blocks[-1][: self._used]]


@dataclass
class ChannelStats:
    """What the channel counted over a run: messages per link name (pc5, uu, wired) and latencies in ms
    (all, per channel pc5/uu-up/uu-down/wired, per message type). The latencies are kept once, one
    :class:`LatencyColumn` per (channel, message type) (``add_latencies``, ``latency_room``); a view of one
    block is that block, one of several concatenates them (percentiles do not depend on the order).

    A delivery the world cut from an input it could not send whole (``Channel.withdraw``) was counted as
    delivered when it was fanned out: it is taken back out of ``delivered`` into ``cut``, and its latency is
    kept in ``withdrawn`` and left out of every view (``joined``, ``counted``)."""

    sent: Counter[str] = field(default_factory=Counter)
    delivered: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    candidates: Counter[str] = field(default_factory=Counter)
    cut: Counter[str] = field(default_factory=Counter)
    latency_groups: dict[tuple[str, str], LatencyColumn] = field(default_factory=lambda: defaultdict(LatencyColumn))
    withdrawn: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))

    def add_latencies(self, channel: str, message: str, ms: NDArray[np.float64]) -> None:
        self.latency_groups[(channel, message)].extend(len(ms))[:] = ms

    def latency_room(self, channel: str, message: str, n: int) -> NDArray[np.float64]:
        """Room for ``n`` more latencies of (``channel``, ``message``): the caller writes them there."""
        return self.latency_groups[(channel, message)].extend(n)

    @property
    def binned(self) -> bool:
        """Some group has too many latencies to keep each one: its percentiles come from a histogram."""
        return not all(c.kept for c in self.latency_groups.values())

    def counted(self, keys: Sequence[tuple[str, str]]) -> LatencyHistogram | None:
        """The latencies of the groups ``keys`` in one histogram if any of them has too many to keep (its
        column no longer ``kept``), else None: they are kept, and ``joined`` gives them."""
        columns = [self.latency_groups[key] for key in keys if key in self.latency_groups]
        if all(c.kept for c in columns):
            return None
        out = LatencyHistogram()
        for c in columns:
            out = out.merged(c.histogram())
        out.remove([ms for key in keys for ms in self.withdrawn.get(key, ())])
        return out

    def joined(self, keys: Sequence[tuple[str, str]]) -> tuple[NDArray[np.float64], bool]:
        """The latencies of the groups ``keys`` (in that order), and whether that array is a fresh one the
        caller may reorder (several blocks concatenated) rather than a view of the one block there is. Only
        while they are kept (``counted`` gives None)."""
        parts = [part for key in keys if key in self.latency_groups for part in self.latency_groups[key].parts()]
        gone = [ms for key in keys for ms in self.withdrawn.get(key, ())]
        if gone:
            return _without(np.concatenate(parts), gone), True
        if len(parts) == 1:
            return parts[0], False
        return (np.concatenate(parts) if parts else np.zeros(0)), True

    def views(self) -> tuple[list[tuple[str, str]], dict[str, list[tuple[str, str]]], dict[str, list[tuple[str, str]]]]:
        """The groups of each view: all, per channel, per message type (names sorted)."""
        keys = list(self.latency_groups)
        by_channel = {c: [key for key in keys if key[0] == c] for c in sorted({key[0] for key in keys})}
        by_message = {m: [key for key in keys if key[1] == m] for m in sorted({key[1] for key in keys})}
        return keys, by_channel, by_message

    @property
    def latencies_ms(self) -> NDArray[np.float64]:
        return _own(self.joined(self.views()[0]))

    @property
    def latencies_by_channel(self) -> dict[str, NDArray[np.float64]]:
        return {c: _own(self.joined(keys)) for c, keys in self.views()[1].items()}

    @property
    def latencies_by_message(self) -> dict[str, NDArray[np.float64]]:
        return {m: _own(self.joined(keys)) for m, keys in self.views()[2].items()}


def _without(values: NDArray[np.float64], gone: Sequence[float]) -> NDArray[np.float64]:
    """``values`` (sorted) less one occurrence of each of ``gone``, values among them: each is found by its exact
    float (a withdrawn latency is computed with the same IEEE operations as when it was counted; were one not
    there, the value where it would sort goes in its place)."""
    ordered = np.sort(values)
    if not len(ordered):
        return ordered
    g = np.sort(np.asarray(gone, dtype=np.float64))
    # the k-th of several equal withdrawn values takes the k-th equal value: the first one's place + k
    at = np.searchsorted(ordered, g, side="left") + (np.arange(len(g)) - np.searchsorted(g, g, side="left"))
    keep = np.ones(len(ordered), dtype=np.bool_)
    keep[np.clip(at, 0, len(ordered) - 1)] = False
    return ordered[keep]


def _own(joined: tuple[NDArray[np.float64], bool]) -> NDArray[np.float64]:
    values, fresh = joined
    return values if fresh else values.copy()


class Scratch:
    """A reusable array per name for a tick's temporaries of some 4 MB (one value per delivery): taken afresh
    each tick, such an array is fresh memory, page-faulted in as it is written; kept, it is written in place.
    ``room(name, n, dtype)`` is a view of ``n`` values of the array ``name`` (grown by an eighth when too small),
    valid until the next ``room`` of that name: for what is consumed before then, never for what is kept."""

    __slots__ = ("_arrays",)

    def __init__(self) -> None:
        self._arrays: dict[str, NDArray[Any]] = {}

    def room(self, name: str, n: int, dtype: DTypeLike) -> NDArray[Any]:
        array = self._arrays.get(name)
        if array is None or len(array) < n or array.dtype != dtype:
            array = self._arrays[name] = np.empty(n + n // 8, dtype=dtype)
        return array[:n]


@dataclass
class Received:
    """What one receiver is handed at a tick: the envelopes (raw bytes) and their delivery times in us; and per
    delivery, its transmission and exact delivery time (s), to tell who sent it and to ``Channel.withdraw`` it."""

    envelopes: list[bytes] = field(default_factory=list)
    rx_time_us: list[int] = field(default_factory=list)
    sent: list[Transmission] = field(default_factory=list)
    delivery_s: list[float] = field(default_factory=list)


@dataclass
class Bulk:
    """Deliveries handed over as arrays (``Channel.due_split``): the distinct payloads, and per delivery the
    payload's index (``payload``: uint16 when there are at most 65,536 payloads, else uint32), the receiver's
    slot and the delivery time (``deliveries``, in the fan-out's order: by receiver slot, delivery time,
    transmission; its arrays may be views of the channel's)."""

    payloads: list[bytes]
    payload: NDArray[np.unsignedinteger[Any]]
    deliveries: Deliveries

    @property
    def receiver(self) -> NDArray[np.signedinteger[Any]]:
        return self.deliveries.receiver


class Channel:
    """The channel stage of one run over ``world`` (positions are read from it at each ``transmit``)."""

    def __init__(
        self,
        world: WorldState,
        network: NetworkSpec,
        *,
        rng: np.random.Generator,
        pc5_receivers: NDArray[np.bool_],
        platform_slots: set[int],
        enabled: bool = True,
        pc5_range_m: NDArray[np.float64] | None = None,
    ) -> None:
        """``pc5_receivers``: per slot, whether it has a PC5 radio (equipped and not the platform);
        ``platform_slots``: the slots whose Uu messages take the downlink; ``enabled`` false: the
        baseline (no V2X equipment), where nothing is heard and nothing is drawn; ``pc5_range_m``: per slot,
        the PC5 coverage of its own (an RSU's ``range_m``; inf: none), None when no actor has one."""
        self.world = world
        self.rng = rng
        self.pc5_receivers = pc5_receivers
        self.pc5_range_m = pc5_range_m
        self.platform_slots = platform_slots
        self.enabled = enabled
        self.links = {
            testbed_pb2.LINK_PC5: network_link(network.pc5),
            testbed_pb2.LINK_UU: network_link(network.uu),
            testbed_pb2.LINK_WIRED: network_link(network.wired),
        }
        # Uu runs both ways with different delays in some profiles: the platform sends on the downlink.
        self.uu_downlink = network_link(network.uu, "downlink")
        pc5_range = self.links[testbed_pb2.LINK_PC5].max_range_m
        self.cell_m = default_cell_m(pc5_range if np.isfinite(pc5_range) else 1000.0)
        self.pending = Deliveries.empty()
        self.payloads: dict[int, Transmission] = {}  # global tx index -> transmission
        self._next_tx_index = 0
        self.stats = ChannelStats()
        self._scratch = Scratch()  # due_split's temporaries
        # Told of each group of transmissions with a message kind in ``watched`` once fanned out: (the group, each
        # delivery's index into it, its delivery time) (``v2x.sim.perception``: the RSM / SSM data age)
        self.watched: frozenset[str] = frozenset()
        self.on_fanned_out: Callable[[list[Transmission], NDArray[Any], NDArray[np.float64]], None] | None = None

    def transmit(self, batch: list[Transmission], grid: SpatialGrid) -> None:
        """Fan out one tick's transmissions (in (sender slot, seq) order) over their links; the deliveries
        become pending. ``grid`` indexes the world's current positions."""
        if not batch or not self.enabled:
            return  # baseline: no V2X equipment, nothing is heard
        parts = []
        channels = [
            (testbed_pb2.LINK_PC5, self.links[testbed_pb2.LINK_PC5], "pc5"),
            (testbed_pb2.LINK_UU, self.links[testbed_pb2.LINK_UU], "uu-up"),  # from anyone but the platform
            (testbed_pb2.LINK_UU, self.uu_downlink, "uu-down"),  # from the platform
            (testbed_pb2.LINK_WIRED, self.links[testbed_pb2.LINK_WIRED], "wired"),
        ]
        st = self.stats
        by_channel = self._by_channel(batch)
        for link, model, channel in channels:
            recs = by_channel[channel]
            if not recs:
                continue
            name = LINK_NAME[link]
            base = self._next_tx_index
            self._next_tx_index += len(recs)
            self.payloads.update(zip(range(base, base + len(recs)), recs, strict=True))
            senders = np.array([r.sender_slot for r in recs], dtype=np.intp)
            tx_time = np.array([r.tx_time_s for r in recs], dtype=np.float64)
            st.sent[name] += len(recs)
            if link == testbed_pb2.LINK_PC5:
                d = fan_out_broadcast(
                    self.world,
                    senders,
                    tx_time,
                    model,
                    self.rng,
                    grid=grid,
                    can_receive=self.pc5_receivers,
                    range_m=self.pc5_range_m,
                )
            else:
                tx_of_dest = np.array([k for k, r in enumerate(recs) for _ in r.dest_ids], dtype=np.intp)
                dests = np.array([self.world.slot_of(d) for r in recs for d in r.dest_ids], dtype=np.intp)
                d = fan_out_addressed(self.world, senders, tx_time, tx_of_dest, dests, model, self.rng)
            st.candidates[name] += d.candidates
            st.dropped[name] += d.dropped
            st.delivered[name] += len(d)
            kinds = [r.msg or "unknown" for r in recs]
            if self.on_fanned_out is not None and not self.watched.isdisjoint(kinds):
                self.on_fanned_out(recs, d.tx_index, d.delivery_time_s)
            if len(set(kinds)) == 1:  # written straight into the group's column (ms)
                latencies_ms(d, tx_time, st.latency_room(channel, kinds[0], len(d)), self.world.n_active)
            else:
                lat = d.delivery_time_s - tx_time[d.tx_index]
                lat *= 1e3
                code = np.array([sorted(set(kinds)).index(m) for m in kinds], dtype=np.intp)[d.tx_index]
                for c, m in enumerate(sorted(set(kinds))):
                    st.add_latencies(channel, m, lat[code == c])
            # To the global index, in place in the fan-out's own int32 column while the indices fit it (they
            # reach 2^31 after some 10^6 ticks of 2,000 transmissions), else into int64.
            if self._next_tx_index < 1 << 31:
                np.add(d.tx_index, base, out=d.tx_index)
            else:
                d = dataclasses.replace(d, tx_index=np.add(d.tx_index, base, dtype=np.int64))
            parts.append(d)
        if len(parts) == 1 and not len(self.pending):  # already in order (the fan-out sorts): no second sort
            self.pending = parts[0]
        else:
            self.pending = Deliveries.concat(self.pending, *parts)

    def due(self, t_s: float) -> dict[int, Received]:
        """Take the deliveries due by ``t_s`` (1 ns of slack for rounding), per receiver slot, in the
        order the fan-out produced them; the rest stay pending."""
        return self.due_split(t_s, None)[0]

    def due_split(self, t_s: float, bulk: NDArray[np.bool_] | None) -> tuple[dict[int, Received], Bulk]:
        """``due``, except that the deliveries to the slots ``bulk`` marks are handed over as arrays (in the
        fan-out's order: by receiver slot, delivery time, transmission), each payload once (a fleet's
        receivers: hundreds of deliveries each per tick; the payloads in transmission order)."""
        due, self.pending = self.pending.split_due(t_s + 1e-9)
        by_receiver: dict[int, Received] = defaultdict(Received)
        # The deliveries are sorted by receiver: when ``bulk`` marks every slot from some slot on (the
        # background vehicles come after the actors), theirs are the tail of the arrays, taken as views.
        if bulk is None:
            single, part = due, due.take(slice(0, 0))
        elif (tail := _tail_from(bulk)) is not None:
            first = int(np.searchsorted(due.receiver, due.receiver.dtype.type(tail))) if len(due) else 0
            single = due.take(slice(0, first))
            part = due.take(slice(first, None))
        else:
            in_bulk = bulk[due.receiver] if len(due) else np.zeros(0, dtype=np.bool_)
            single, part = due.take(~in_bulk), due.take(in_bulk)
        for tx, rx, when in zip(
            single.tx_index.tolist(), single.receiver.tolist(), single.delivery_time_s.tolist(), strict=True
        ):
            got = by_receiver[rx]
            sent = self.payloads[tx]
            got.envelopes.append(sent.raw)
            got.rx_time_us.append(us_of(when))
            got.sent.append(sent)
            got.delivery_s.append(when)
        bulk_out = Bulk(payloads=[], payload=np.zeros(0, dtype=np.uint16), deliveries=part)
        if len(part):
            # Each payload once, in transmission order (tx_index ascending), without sorting the deliveries:
            # the indices of one tick span a few thousand values.
            low = int(part.tx_index.min())
            span = int(part.tx_index.max()) - low + 1
            # The offsets in one pass, in uint16 when they fit it: the indices and ``low`` wrap modulo 2^16 in
            # the cast, and so does their difference, which is below ``span``, so exact.
            narrow = np.uint16 if span <= 1 << 16 else np.int64
            offset = np.subtract(part.tx_index, np.int64(low), dtype=narrow, casting="unsafe")
            heard = np.zeros(span, dtype=np.bool_)
            # (numpy scatters with intp indices twice as fast as with narrow ones: the offsets again, in intp)
            at = np.subtract(
                part.tx_index, part.tx_index.dtype.type(low), out=self._scratch.room("at", len(part), np.intp)
            )
            heard[at] = True
            kept = np.flatnonzero(heard)
            index = np.uint16 if len(kept) <= 1 << 16 else np.uint32
            bulk_out.payloads = [self.payloads[i + low].raw for i in kept.tolist()]
            if len(kept) == span and offset.dtype == index:  # every transmission heard: its rank is its offset
                bulk_out.payload = offset
            else:
                rank: NDArray[np.unsignedinteger[Any]] = np.zeros(span, dtype=index)
                rank[kept] = np.arange(len(kept), dtype=index)
                bulk_out.payload = np.take(rank, offset)  # (``rank[offset]``; np.take gathers it twice as fast)
        if len(self.pending):
            live = np.unique(self.pending.tx_index).tolist()
            self.payloads = {i: self.payloads[i] for i in live}
        else:
            self.payloads = {}
        return dict(by_receiver), bulk_out

    @property
    def in_flight(self) -> int:
        """Deliveries still pending."""
        return len(self.pending)

    def _by_channel(self, batch: Iterable[Transmission]) -> dict[str, list[Transmission]]:
        """``batch`` per channel, the key of its latencies: ``pc5``, ``uu-up`` (from anyone but the platform),
        ``uu-down`` (from the platform), ``wired`` (another link: in none), each in batch order. The one place
        that decides a transmission's channel, for ``transmit`` and ``withdraw`` (a withdrawn latency must leave
        the group it was counted in: diff review 26); in one pass, inline (thousands a tick: a call per
        transmission took 9 times as long)."""
        out: dict[str, list[Transmission]] = {"pc5": [], "uu-up": [], "uu-down": [], "wired": []}
        pc5, uu, wired, platforms = (
            testbed_pb2.LINK_PC5,
            testbed_pb2.LINK_UU,
            testbed_pb2.LINK_WIRED,
            self.platform_slots,
        )
        for r in batch:
            if r.link == pc5:
                out["pc5"].append(r)
            elif r.link == uu:
                out["uu-down" if r.sender_slot in platforms else "uu-up"].append(r)
            elif r.link == wired:
                out["wired"].append(r)
        return out

    def channel_of(self, sent: Transmission) -> str | None:
        """The channel that carries ``sent`` (``_by_channel``), or None."""
        return next((channel for channel, recs in self._by_channel((sent,)).items() if recs), None)

    def withdraw(self, sent: Transmission, delivery_s: float) -> None:
        """A delivery ``due`` handed over (of ``sent``, at ``delivery_s``) that never reached its receiver: the
        world cut it from the receiver's input. Counted as ``cut`` instead of delivered, its latency left out."""
        channel = self.channel_of(sent)
        assert channel is not None  # (it was delivered)
        name = channel.removesuffix("-up").removesuffix("-down")  # (its link's: pc5, uu, wired)
        self.stats.delivered[name] -= 1
        self.stats.cut[name] += 1
        # (as ``latencies_ms`` computes it: the same two IEEE operations)
        self.stats.withdrawn[(channel, sent.msg or "unknown")].append((delivery_s - sent.tx_time_s) * 1e3)


def _tail_from(bulk: NDArray[np.bool_]) -> int | None:
    """The slot from which ``bulk`` marks every slot and before which none (None: it does not have that
    shape)."""
    unmarked = np.flatnonzero(~bulk)
    start = int(unmarked[-1]) + 1 if len(unmarked) else 0
    return start if not bulk[:start].any() else None
