"""The compiled broadcast (links with tables): exact draws, ordering, counters, edge cases.

An independent numpy re-implementation of the documented counter-based draws (splitmix64 indexed by
(tx index, receiver slot, draw)) is the oracle: the kernel must reproduce it bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.core._doubles import FixedLink, TableLink
from v2x.core import ActorKind, Deliveries, SpatialGrid, TabulatedLink, WorldState, _fanout, fan_out_broadcast
from v2x.core._fanout import deliver_pairs

U64 = np.uint64
GAMMA = U64(0x9E3779B97F4A7C15)


def _uniform(seed: np.uint64, counter: np.ndarray) -> np.ndarray:
    """splitmix64: element ``counter`` of the stream ``seed``, top 53 bits as a uniform in [0, 1)."""
    with np.errstate(over="ignore"):
        z = seed + counter * GAMMA
        z = (z ^ (z >> U64(30))) * U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> U64(27))) * U64(0x94D049BB133111EB)
        z = z ^ (z >> U64(31))
    return (z >> U64(11)).astype(np.float64) * 2.0**-53


def _oracle(
    w: WorldState,
    senders: np.ndarray,
    times: np.ndarray,
    link: TableLink,
    seed: np.uint64,
    mask: np.ndarray | None,
    range_m: np.ndarray | None = None,
) -> Deliveries:
    """Brute force over all (tx, receiver) pairs with the documented draws, sorted by (rx, t, tx);
    ``range_m``: each slot's own range (inf: none), a pair beyond the sender's or the receiver's is no
    candidate."""
    t = link.tables
    rx_all = w.active_slots()
    if mask is not None:
        rx_all = rx_all[mask[rx_all]]
    tx_grid, rx_grid = np.meshgrid(np.arange(len(senders)), rx_all, indexing="ij")
    tx, rx = tx_grid.ravel(), rx_grid.ravel()
    s = senders[tx]
    ddx = w.x[s] - w.x[rx]
    ddy = w.y[s] - w.y[rx]
    d2 = ddx * ddx + ddy * ddy
    ok = (rx != s) & ((d2 <= link.max_range_m**2) | math.isinf(link.max_range_m))
    if range_m is not None:
        ok &= (d2 <= range_m[s] * range_m[s]) & (d2 <= range_m[rx] * range_m[rx])
    tx, rx, d = tx[ok], rx[ok], np.sqrt(d2[ok])
    ctr = (tx.astype(np.uint64) << U64(34)) | (rx.astype(np.uint64) << U64(2))
    knots = np.arange(len(t.pdr)) * t.pdr_step_m
    keep = _uniform(seed, ctr) < np.interp(d, knots, t.pdr)
    tx, rx, d, ctr = tx[keep], rx[keep], d[keep], ctr[keep]
    u = _uniform(seed, ctr + U64(1))
    dq = np.asarray(t.delay_quantiles_s)
    m = len(dq)
    if t.delay_stepped:
        base = dq[np.minimum((u * m).astype(np.int64), m - 1)]
    else:
        pos = u * (m - 1)
        k = np.minimum(pos.astype(np.int64), m - 2)
        base = dq[k] + (pos - k) * (dq[k + 1] - dq[k])
    mult = np.asarray(t.delay_multipliers)[
        np.searchsorted(t.delay_multiplier_cdf, _uniform(seed, ctr + U64(2)), "right")
    ]
    if len(t.delay_multipliers) == 1:
        mult = np.full(len(u), t.delay_multipliers[0])
    ue = _uniform(seed, ctr + U64(3))
    extra = np.where(
        ue < t.extra_delay_probability, ue / max(t.extra_delay_probability, 1e-300) * t.extra_delay_max_s, 0.0
    )
    time = times[tx] + (base * mult + extra)
    order = np.lexsort((tx, time, rx))
    n = int(ok.sum())
    return Deliveries(tx[order].astype(np.int32), rx[order].astype(np.int32), time[order], n, n - len(order))


def _world(n: int, seed: int, extent: float = 900.0) -> WorldState:
    rng = np.random.default_rng(seed)
    w = WorldState(capacity=8)
    for k in range(n):
        w.add(f"v{k}", ActorKind.CAR, 5.0, 2.0)
    for k in rng.choice(n, n // 10, replace=False):
        w.remove(f"v{k}")
    s = w.active_slots()
    w.set_state(s, rng.uniform(0, extent, len(s)), rng.uniform(0, extent / 2, len(s)), 0, 0, 0, 0, 0)
    return w


def _seed_of(rng_seed: int) -> np.uint64:
    return _fanout._link_seed(np.random.default_rng(rng_seed))


def _assert_same(a: Deliveries, b: Deliveries) -> None:
    for f in ("tx_index", "receiver", "delivery_time_s"):
        assert getattr(a, f).dtype == getattr(b, f).dtype, f
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert (a.candidates, a.dropped) == (b.candidates, b.dropped)


LINKS = {
    "linear": TableLink(),
    "stepped": TableLink(delay_quantiles_s=(0.0004, 0.0009, 0.0014, 0.0019, 0.0024), stepped=True),
    "retry+handover": TableLink(
        delay_quantiles_s=(0.05, 0.2),
        multipliers=(1.0, 2.0, 3.0),
        multiplier_cdf=(0.7, 0.95, 1.0),
        extra_p=0.2,
        extra_max_s=0.12,
    ),
}


@pytest.mark.parametrize("name", list(LINKS))
def test_compiled_broadcast_matches_the_documented_draws(name: str) -> None:
    link = LINKS[name]
    assert isinstance(link, TabulatedLink)
    w = _world(600, seed=4)
    senders = np.concatenate([w.active_slots()[::2], w.active_slots()[:5]])  # some slots send twice
    times = np.random.default_rng(0).uniform(0.0, 0.1, len(senders))
    times[3] = times[4]  # a tie in send time
    got = fan_out_broadcast(w, senders, times, link, np.random.default_rng(7))
    _assert_same(got, _oracle(w, senders, times, link, _seed_of(7), None))
    assert 0 < got.dropped < got.candidates


def test_same_seed_same_output_whatever_the_grid_other_seed_differs() -> None:
    w = _world(500, seed=2)
    senders = w.active_slots()
    times = np.linspace(0.0, 0.09, len(senders))
    link = LINKS["linear"]
    ref = fan_out_broadcast(w, senders, times, link, np.random.default_rng(42))
    for cell in (7.0, 75.0, 2000.0):
        grid = SpatialGrid.build(w, cell)
        _assert_same(ref, fan_out_broadcast(w, senders, times, link, np.random.default_rng(42), grid=grid))
    other = fan_out_broadcast(w, senders, times, link, np.random.default_rng(43))
    assert not np.array_equal(other.delivery_time_s, ref.delivery_time_s)
    keys = list(zip(ref.receiver.tolist(), ref.delivery_time_s.tolist(), ref.tx_index.tolist(), strict=True))
    assert keys == sorted(keys)


def test_can_receive_infinite_range_and_equal_times() -> None:
    w = _world(300, seed=5, extent=5000.0)
    senders = w.active_slots()[:40]
    times = np.zeros(len(senders))  # every send at the same instant: ties broken by tx index
    mask = np.ones(w.capacity, dtype=np.bool_)
    mask[w.active_slots()[::3]] = False
    for link in (TableLink(max_range_m=math.inf, delay_quantiles_s=(0.01, 0.01)), TableLink(max_range_m=800.0)):
        got = fan_out_broadcast(w, senders, times, link, np.random.default_rng(3), can_receive=mask)
        _assert_same(got, _oracle(w, senders, times, link, _seed_of(3), mask))
        assert not np.any(np.isin(got.receiver, w.active_slots()[::3]))


def test_output_growth_resumes_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    w = _world(400, seed=6)
    senders = w.active_slots()
    times = np.random.default_rng(1).uniform(0, 0.1, len(senders))
    link = LINKS["linear"]
    ref = fan_out_broadcast(w, senders, times, link, np.random.default_rng(9))
    monkeypatch.setattr(_fanout._OutputSize, "guess", lambda self, floor: 5)  # force many resumes
    _assert_same(ref, fan_out_broadcast(w, senders, times, link, np.random.default_rng(9)))


def test_deliver_pairs_equals_broadcast_on_the_same_candidates() -> None:
    w = _world(500, seed=8)
    senders = w.active_slots()[::2]
    times = np.random.default_rng(2).uniform(0, 0.1, len(senders))
    link = LINKS["retry+handover"]
    ref = fan_out_broadcast(w, senders, times, link, np.random.default_rng(5))
    grid = SpatialGrid.build(w, 50.0)
    q, member, _ = grid.query_points(w.x[senders], w.y[senders], link.max_range_m)
    rx = grid.slots[member]
    keep = rx != senders[q]
    perm = np.random.default_rng(0).permutation(int(keep.sum()))
    got = deliver_pairs(w, senders, times, q[keep][perm], rx[keep][perm], link, np.random.default_rng(5))
    _assert_same(ref, got)


def test_bad_tables_are_rejected() -> None:
    w = _world(20, seed=1)
    s = w.active_slots()
    bad = TableLink()
    bad.tables = type(bad.tables)(1.0, np.array([0.5, 1.5]), np.array([0.0, 0.01]))
    with pytest.raises(ValueError, match="pdr"):
        fan_out_broadcast(w, s, np.zeros(len(s)), bad, np.random.default_rng(0))
    bad.tables = type(bad.tables)(1.0, np.array([0.5, 0.5]), np.array([0.02, 0.01]))
    with pytest.raises(ValueError, match="delay_quantiles_s"):
        fan_out_broadcast(w, s, np.zeros(len(s)), bad, np.random.default_rng(0))


def test_generic_links_still_use_the_callables() -> None:
    w = _world(50, seed=3)
    s = w.active_slots()
    d = fan_out_broadcast(w, s, np.zeros(len(s)), FixedLink(delay_s=0.03), np.random.default_rng(0))
    assert np.all(d.delivery_time_s == 0.03) and d.dropped == 0


@pytest.mark.parametrize("cells", [(7.0, 7.0), (150.0, 3.0), (40.0, 400.0), (2000.0, 2000.0)])
def test_compiled_output_independent_of_the_transmission_grid(
    monkeypatch: pytest.MonkeyPatch, cells: tuple[float, float]
) -> None:
    """The kernel's own grid of the transmissions (cells h tall, w wide) changes nothing."""
    w = _world(500, seed=8)
    senders = w.active_slots()
    times = np.random.default_rng(2).uniform(0, 0.1, len(senders))
    link = LINKS["linear"]
    ref = fan_out_broadcast(w, senders, times, link, np.random.default_rng(5))
    monkeypatch.setattr(_fanout, "_fan_cell_m", lambda radius: cells)
    _assert_same(ref, fan_out_broadcast(w, senders, times, link, np.random.default_rng(5)))
    _assert_same(ref, _oracle(w, senders, times, link, _seed_of(5), None))


@pytest.mark.parametrize(("n_actors", "n_tx"), [(600, 40), (600, 540), (600, 5000), (30, 400)])
def test_stepped_delays_with_every_send_at_one_instant(n_actors: int, n_tx: int) -> None:
    """A fleet's BSMs all leave at the tick and a stepped delay takes five values: each receiver's deliveries
    tie in time by the dozen, broken by tx index (the kernel puts them in tx order before its time sort;
    fewer and more transmissions than receivers, slots sending many times; 30 actors: the interpreted way)."""
    link = LINKS["stepped"]
    w = _world(n_actors, seed=8, extent=400.0)
    senders = np.random.default_rng(n_tx).choice(w.active_slots(), n_tx)
    times = np.full(n_tx, 2.5)
    got = fan_out_broadcast(w, senders, times, link, np.random.default_rng(11))
    _assert_same(got, _oracle(w, senders, times, link, _seed_of(11), None))
    _, start, stop = got.receiver_bounds()
    assert int((stop - start).max()) > 16  # receivers with enough deliveries to be put in tx order
    assert len(np.unique(got.delivery_time_s)) <= 5 < len(got)
    tx, rx = np.nonzero(
        np.hypot(w.x[senders][:, None] - w.x[None, :], w.y[senders][:, None] - w.y[None, :]) <= link.max_range_m
    )
    keep = w.active[rx] & (rx != senders[tx])
    pairs = deliver_pairs(w, senders, times, tx[keep], rx[keep], link, np.random.default_rng(11))
    _assert_same(pairs, got)
