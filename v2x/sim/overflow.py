"""Cutting an input that would not fit: what each receiver hears in a tick, shared fairly among its senders.

A receiver's ``TickInput`` carries every delivery due to it, and a host takes one of at most ``MAX_INPUT_BYTES``
(4 MiB). Each actor may send 64 envelopes of 16 KiB a tick (1 MiB to every receiver in range), so five of them
fill an input. When one must be cut, the senders that sent the receiver the most bytes lose deliveries first:
the budget is shared max-min fairly (``fair_cut``). A sender whose deliveries fit in its share keeps all of
them; each of the others keeps its earliest deliveries up to the share and loses the rest. So an honest sender
of a BSM a tick is never cut while the share is at least its BSM, however much the others send and however
they stamp their times (attack review 12: the cut used to take the latest deliveries of all, and five
flooders stamped a tick early pushed the lead's BSMs out of the follower's input: no warning, a collision).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

# An input's deliveries are its fields 6 (the envelopes, each a length-delimited bytes) and 7 (the delivery
# times, packed sint64): what one delivery adds is its envelope's tag, length and bytes, and its time's zigzag
# varint; the packed field's own tag and length (at most 1 + 4 bytes for 4 MiB) once.
PACKED_HEAD_BYTES = 5


def varint_bytes(n: int) -> int:
    """The bytes of ``n`` (>= 0) as a protobuf varint."""
    return max(1, (n.bit_length() + 6) // 7)


def delivery_bytes(envelope: bytes, rx_time_us: int) -> int:
    """What one delivery (``envelope`` at ``rx_time_us``, >= 0) adds to a serialised ``TickInput``."""
    return 1 + varint_bytes(len(envelope)) + len(envelope) + varint_bytes(2 * rx_time_us)


@dataclass(frozen=True)
class Cut:
    """``fair_cut``'s answer: per delivery, whether it is kept; each sender's bytes; the share (bytes) of each
    sender that lost some (None when nothing had to go)."""

    keep: list[bool]
    sent: Counter[Hashable]
    share: int | None


def fair_cut(costs: Sequence[int], senders: Sequence[Hashable], budget: int) -> Cut:
    """Which of the deliveries (``costs`` bytes each, from ``senders``, in delivery order) to keep within ``budget``
    bytes: all of them if they fit; else the max-min fair share ``L`` of the budget (the largest such that the
    senders' bytes, each capped at ``L``, fit), each sender that sent at most ``L`` keeping every delivery and
    each other one its deliveries in order until the next would take it past ``L`` (its latest ones go)."""
    sent: Counter[Hashable] = Counter()
    for c, s in zip(costs, senders, strict=True):
        sent[s] += c
    if sum(sent.values()) <= budget:
        return Cut([True] * len(costs), sent, None)
    share = max_min_share(sorted(sent.values()), budget)
    used: Counter[Hashable] = Counter()
    full: set[Hashable] = set()  # senders that lost a delivery: their later ones go too
    keep = []
    for c, s in zip(costs, senders, strict=True):
        ok = sent[s] <= share or (s not in full and used[s] + c <= share)
        if ok:
            used[s] += c
        else:
            full.add(s)
        keep.append(ok)
    return Cut(keep, sent, share)


def max_min_share(totals: Sequence[int], budget: int) -> int:
    """The largest whole ``L`` (bytes) such that the ``totals`` (sorted, ascending), each capped at ``L``, sum to at
    most ``budget``; for ``totals`` that fit, their largest."""
    left = budget
    for i, t in enumerate(totals):
        share = left // (len(totals) - i)
        if t > share:
            return max(share, 0)
        left -= t
    return totals[-1] if totals else 0
