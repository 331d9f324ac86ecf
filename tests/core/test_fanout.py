from __future__ import annotations

import math

import numpy as np
import pytest

from tests.core._doubles import FixedLink, LossyLink
from v2x.core import (
    ActorKind,
    Deliveries,
    LinkModel,
    SpatialGrid,
    WorldState,
    delivery_distances,
    fan_out_addressed,
    fan_out_broadcast,
)


def _line_world(xs: list[float]) -> WorldState:
    w = WorldState(capacity=2)
    for k in range(len(xs)):
        w.add(f"v{k}", ActorKind.CAR, 5.0, 2.0)
    w.set_state(np.arange(len(xs)), xs, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    return w


def _random_world(n: int, seed: int) -> WorldState:
    rng = np.random.default_rng(seed)
    w = WorldState()
    for k in range(n):
        w.add(f"v{k}", ActorKind.CAR, 5.0, 2.0)
    w.remove("v7")
    s = w.active_slots()
    w.set_state(s, rng.uniform(0, 1500, len(s)), rng.uniform(0, 800, len(s)), 0, 0, 0, 0, 0)
    return w


def test_doubles_satisfy_protocol() -> None:
    assert isinstance(FixedLink(), LinkModel)
    assert isinstance(LossyLink(), LinkModel)


def test_broadcast_range_self_exclusion_and_times() -> None:
    w = _line_world([0.0, 100.0, 300.0, 300.5, 50.0])
    link = FixedLink(max_range_m=300.0, delay_s=0.02)
    d = fan_out_broadcast(w, np.array([0, 3]), np.array([1.0, 1.5]), link, np.random.default_rng(0))
    # tx0 from x=0 reaches slots 1 (100 m), 2 (300 m, inclusive), 4 (50 m); not 3 (300.5 m).
    # tx1 from x=300.5 reaches 0 (300.5 m? no), 1 (200.5), 2 (0.5), 4 (250.5).
    got = list(zip(d.receiver.tolist(), d.tx_index.tolist(), d.delivery_time_s.tolist(), strict=True))
    assert got == [
        (1, 0, 1.02),
        (1, 1, 1.52),
        (2, 0, 1.02),
        (2, 1, 1.52),
        (4, 0, 1.02),
        (4, 1, 1.52),
    ]
    assert d.candidates == 6 and d.dropped == 0
    assert delivery_distances(w, np.array([0, 3]), d).tolist() == pytest.approx([100.0, 200.5, 300.0, 0.5, 50.0, 250.5])


def test_can_receive_and_inactive_receivers_excluded() -> None:
    w = _line_world([0.0, 10.0, 20.0, 30.0])
    w.remove("v2")
    mask = np.ones(w.capacity, dtype=bool)
    mask[3] = False
    d = fan_out_broadcast(w, np.array([0]), np.array([0.0]), FixedLink(), np.random.default_rng(0), can_receive=mask)
    assert d.receiver.tolist() == [1]


@pytest.mark.parametrize("cell", [25.0, 75.0, 400.0])
def test_broadcast_deterministic_and_grid_independent(cell: float) -> None:
    w = _random_world(400, seed=1)
    senders = w.active_slots()[::3]
    times = np.linspace(0.0, 0.09, len(senders))
    link = LossyLink(max_range_m=250.0)
    ref = fan_out_broadcast(w, senders, times, link, np.random.default_rng(42))
    got = fan_out_broadcast(w, senders, times, link, np.random.default_rng(42), grid=SpatialGrid.build(w, cell))
    for f in ("tx_index", "receiver", "delivery_time_s"):
        assert np.array_equal(getattr(ref, f), getattr(got, f))
    assert (ref.candidates, ref.dropped) == (got.candidates, got.dropped)
    assert ref.candidates == len(ref) + ref.dropped
    # Sorted by (receiver, time, tx).
    keys = list(zip(ref.receiver.tolist(), ref.delivery_time_s.tolist(), ref.tx_index.tolist(), strict=True))
    assert keys == sorted(keys)
    # Loss rises with distance: mean distance of delivered < mean distance of candidates in range.
    assert 0 < ref.dropped < ref.candidates
    assert np.all(delivery_distances(w, senders, ref) <= 250.0)
    other = fan_out_broadcast(w, senders, times, link, np.random.default_rng(43))
    assert not np.array_equal(other.receiver, ref.receiver) or not np.array_equal(
        other.delivery_time_s, ref.delivery_time_s
    )


def test_broadcast_loss_rate_matches_probability() -> None:
    w = _line_world([0.0] + [150.0] * 400)  # all receivers at 150 m: p = 0.5
    d = fan_out_broadcast(w, np.array([0]), np.array([0.0]), LossyLink(300.0), np.random.default_rng(5))
    assert d.candidates == 400
    assert 160 < len(d) < 240  # binomial(400, 0.5): 5 sigma band
    assert np.all(d.delivery_time_s > 0.0)


def test_broadcast_infinite_range_reaches_everyone() -> None:
    w = _line_world([0.0, 1e5, 2e6])
    d = fan_out_broadcast(w, np.array([1]), np.array([0.0]), FixedLink(math.inf), np.random.default_rng(0))
    assert d.receiver.tolist() == [0, 2]


def test_split_due_concat_and_bounds() -> None:
    w = _line_world([0.0, 10.0, 20.0])
    link = FixedLink(delay_s=0.05)
    d1 = fan_out_broadcast(w, np.array([0, 1]), np.array([0.0, 0.08]), link, np.random.default_rng(0))
    due, later = d1.split_due(0.1)
    assert due.delivery_time_s.max() <= 0.1 and later.delivery_time_s.min() > 0.1
    assert len(due) + len(later) == len(d1) == 4
    assert due.candidates == d1.candidates and later.candidates == 0
    both = Deliveries.concat(later, due)
    assert np.array_equal(both.receiver, d1.receiver) and np.array_equal(both.tx_index, d1.tx_index)
    rx, start, stop = d1.receiver_bounds()
    assert rx.tolist() == [0, 1, 2] and (stop - start).tolist() == [1, 1, 2]
    assert len(Deliveries.empty()) == 0 and len(Deliveries.concat()) == 0


def test_addressed_pairs_loss_and_order() -> None:
    w = _line_world([0.0, 100.0, 200.0, 400.0])
    w.remove("v3")
    link = FixedLink(max_range_m=math.inf, delay_s=0.03)
    d = fan_out_addressed(
        w,
        np.array([0, 1]),
        np.array([0.0, 0.01]),
        np.array([1, 0, 0, 1]),
        np.array([2, 2, 1, 3]),
        link,
        np.random.default_rng(0),
    )
    # (tx1 -> 3) dropped as inactive destination; not a candidate.
    assert d.candidates == 3
    assert list(zip(d.receiver.tolist(), d.tx_index.tolist(), strict=True)) == [(1, 0), (2, 0), (2, 1)]
    assert delivery_distances(w, np.array([0, 1]), d).tolist() == [100.0, 200.0, 100.0]
    assert d.delivery_time_s.tolist() == pytest.approx([0.03, 0.03, 0.04])


def test_addressed_deterministic_independent_of_pair_order() -> None:
    w = _random_world(50, seed=2)
    s = w.active_slots()
    txi = np.repeat(np.arange(5), 8)
    dst = np.concatenate([s[k * 8 + 1 : k * 8 + 9] for k in range(5)])
    link = LossyLink(math.inf)
    a = fan_out_addressed(w, s[:5], np.zeros(5), txi, dst, link, np.random.default_rng(9))
    perm = np.random.default_rng(1).permutation(len(txi))
    b = fan_out_addressed(w, s[:5], np.zeros(5), txi[perm], dst[perm], link, np.random.default_rng(9))
    assert np.array_equal(a.receiver, b.receiver) and np.array_equal(a.delivery_time_s, b.delivery_time_s)
    assert a.candidates == 40 and 0 < a.dropped < 40


def test_output_dtypes() -> None:
    """int32 indices and float64 times on every path (the compiled one is in test_fanout_compiled.py)."""
    w = _random_world(60, seed=3)
    s = w.active_slots()
    rng = np.random.default_rng(0)
    parts = [
        Deliveries.empty(),
        fan_out_broadcast(w, s[:10], np.zeros(10), LossyLink(max_range_m=400.0), rng),
        fan_out_addressed(w, s[:2], np.zeros(2), np.array([0, 1]), s[2:4], FixedLink(max_range_m=math.inf), rng),
    ]
    for d in parts:
        assert d.tx_index.dtype == np.int32 and d.receiver.dtype == np.int32
        assert d.delivery_time_s.dtype == np.float64
    assert len(parts[1]) > 0
