"""Actors' own ranges (an RSU's declared coverage: ``fan_out_broadcast(range_m=...)``): a pair is a candidate
only within min(link range, sender's range, receiver's range), on both paths, compiled and interpreted alike;
a pair beyond it is neither drawn nor counted."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest

from tests.core._doubles import FixedLink, LossyLink, TableLink
from tests.core.test_fanout_compiled import _assert_same, _oracle, _seed_of, _world
from v2x.core import SMALL_WORLD, ActorKind, Deliveries, LinkModel, WorldState, always_compiled, fan_out_broadcast

INF = math.inf


def _rsu_world() -> tuple[WorldState, np.ndarray]:
    """Slot 0: an RSU at x = 0 with a range of 100 m; slots 1, 2, 3: cars at 90, 110 and 250 m (no range)."""
    w = WorldState(capacity=4)
    w.add("rsu", ActorKind.RSU, 1.0, 1.0)
    for name in ("near", "far", "farther"):
        w.add(name, ActorKind.CAR, 5.0, 2.0)
    w.set_state(np.arange(4), [0.0, 90.0, 110.0, 250.0], 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    return w, np.array([100.0, INF, INF, INF])


# links whose every candidate is delivered: the generic path (callables) and the tabulated one (pdr 1)
SURE_LINKS: dict[str, LinkModel] = {
    "generic": FixedLink(max_range_m=300.0, delay_s=0.01),
    "tabulated": TableLink(max_range_m=300.0, constant_pdr=1.0, delay_quantiles_s=(0.01, 0.01)),
}


def _pairs(d: Deliveries, senders: np.ndarray) -> list[tuple[int, int]]:
    return sorted(zip(senders[d.tx_index].tolist(), d.receiver.tolist(), strict=True))


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("name", list(SURE_LINKS))
def test_an_rsu_reaches_and_hears_only_within_its_range(name: str, compiled: bool) -> None:
    w, rng_m = _rsu_world()
    link = SURE_LINKS[name]
    senders = np.arange(4)
    times = np.zeros(4)
    with always_compiled() if compiled else contextlib.nullcontext():
        got = fan_out_broadcast(w, senders, times, link, np.random.default_rng(0), range_m=rng_m)
        before = fan_out_broadcast(w, senders, times, link, np.random.default_rng(0))
    # the RSU (0) reaches the car at 90 m, not the one at 110 m; it hears the car at 90 m, not the one at 110 m;
    # the cars hear each other over the link's 300 m as before (250 - 90 = 160 m, 250 - 110 = 140 m)
    assert _pairs(got, senders) == [(0, 1), (1, 0), (1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2)]
    assert got.candidates == 8 and got.dropped == 0  # the out-of-range pairs are not candidates
    # without ranges, the link's 300 m: the RSU also reaches (and hears) the cars at 110 and 250 m
    assert _pairs(before, senders) == sorted([*_pairs(got, senders), (0, 2), (0, 3), (2, 0), (3, 0)])
    assert before.candidates == 12


def test_the_range_is_inclusive_and_the_shorter_of_two_applies() -> None:
    """A pair at exactly the range is a candidate (as the link's own range); two ranged actors: the shorter."""
    w, _ = _rsu_world()
    link = SURE_LINKS["tabulated"]
    senders = np.arange(4)
    both = np.array([100.0, 20.0, 110.0, INF])
    got = fan_out_broadcast(w, senders, np.zeros(4), link, np.random.default_rng(0), range_m=both)
    # 1-2: exactly 20 m, slot 1's range: in; 0-1: 90 m, beyond slot 1's 20 m; 0-2: 110 m, beyond the RSU's 100 m
    # (though within slot 2's 110 m); 2-3: 140 m, beyond slot 2's 110 m; 1-3 and 0-3 beyond too
    assert _pairs(got, senders) == [(1, 2), (2, 1)]
    exact = np.array([110.0, INF, INF, INF])
    got = fan_out_broadcast(w, senders, np.zeros(4), link, np.random.default_rng(0), range_m=exact)
    assert (0, 2) in _pairs(got, senders) and (2, 0) in _pairs(got, senders)
    assert (0, 3) not in _pairs(got, senders)


def test_delivery_stats_count_only_the_candidates_in_range() -> None:
    """On a lossy link the ranged fan-out is the unranged one less the pairs out of range: the same draws for
    the others (counter-based), and candidates / dropped counted over the pairs in range only."""
    w = _world(400, seed=3, extent=600.0)
    slots = w.active_slots()
    rng_m = np.full(w.capacity, INF)
    rng_m[slots[:8]] = 100.0  # eight "RSUs"
    link = TableLink(max_range_m=300.0)  # pdr falls linearly from 1 at 0 m to 0 at 300 m
    senders = slots[::2]
    times = np.random.default_rng(1).uniform(0, 0.1, len(senders))
    full = fan_out_broadcast(w, senders, times, link, np.random.default_rng(4))
    got = fan_out_broadcast(w, senders, times, link, np.random.default_rng(4), range_m=rng_m)
    s = senders[full.tx_index]
    d2 = (w.x[s] - w.x[full.receiver]) ** 2 + (w.y[s] - w.y[full.receiver]) ** 2
    inside = (d2 <= rng_m[s] ** 2) & (d2 <= rng_m[full.receiver] ** 2)
    assert int((~inside).sum()) > 0  # some deliveries were to or from an RSU beyond its range
    kept = full.take(inside)
    for f in ("tx_index", "receiver", "delivery_time_s"):
        np.testing.assert_array_equal(getattr(got, f), getattr(kept, f), err_msg=f)
    # candidates: every pair within the link's range, less those beyond an RSU's range
    tx, rx = np.meshgrid(np.arange(len(senders)), slots, indexing="ij")
    s, r = senders[tx.ravel()], rx.ravel()
    d2 = (w.x[s] - w.x[r]) ** 2 + (w.y[s] - w.y[r]) ** 2
    link_ok = (s != r) & (d2 <= 300.0**2)
    in_range = link_ok & (d2 <= rng_m[s] ** 2) & (d2 <= rng_m[r] ** 2)
    assert full.candidates == int(link_ok.sum())
    assert got.candidates == int(in_range.sum()) < full.candidates
    assert got.dropped == got.candidates - len(got) > 0


@pytest.mark.parametrize("name", list(SURE_LINKS))
def test_no_range_is_the_old_behaviour(name: str) -> None:
    """No finite range (all inf) or ranges beyond the link's: exactly the fan-out without ``range_m``."""
    link = LossyLink(max_range_m=250.0) if name == "generic" else TableLink(max_range_m=250.0)
    w = _world(300, seed=9, extent=700.0)
    senders = w.active_slots()[::3]
    times = np.linspace(0.0, 0.09, len(senders))
    ref = fan_out_broadcast(w, senders, times, link, np.random.default_rng(8))
    wide = np.full(w.capacity, INF)
    wide[w.active_slots()[:10]] = 900.0
    for rng_m in (np.full(w.capacity, INF), wide):
        _assert_same(ref, fan_out_broadcast(w, senders, times, link, np.random.default_rng(8), range_m=rng_m))


def test_generic_path_candidates_are_the_pairs_in_range() -> None:
    """The generic path (callables, its own candidate scan) applies the ranges too: with a link that loses
    nothing, the deliveries are exactly the pairs within every range."""
    w = _world(300, seed=5, extent=700.0)
    slots = w.active_slots()
    rng_m = np.full(w.capacity, INF)
    rng_m[slots[::7]] = np.random.default_rng(0).uniform(30.0, 200.0, len(slots[::7]))
    senders = slots[::2]
    d = fan_out_broadcast(w, senders, np.zeros(len(senders)), FixedLink(250.0), np.random.default_rng(0), range_m=rng_m)
    tx, rx = np.meshgrid(np.arange(len(senders)), slots, indexing="ij")
    s, r = senders[tx.ravel()], rx.ravel()
    d2 = (w.x[s] - w.x[r]) ** 2 + (w.y[s] - w.y[r]) ** 2
    ok = (s != r) & (d2 <= 250.0**2) & (d2 <= rng_m[s] ** 2) & (d2 <= rng_m[r] ** 2)
    assert sorted(zip(d.tx_index.tolist(), d.receiver.tolist(), strict=True)) == sorted(
        zip(tx.ravel()[ok].tolist(), r[ok].tolist(), strict=True)
    )
    assert d.candidates == len(d) == int(ok.sum())


@pytest.mark.parametrize(("n_actors", "link_range"), [(600, 300.0), (30, 300.0), (600, INF), (30, INF)])
def test_compiled_and_interpreted_agree_with_the_oracle_with_ranges(n_actors: int, link_range: float) -> None:
    """The kernel with ranges, run the default way (a world of 30 actors: interpreted) and compiled,
    reproduces the documented draws over the pairs in range bit for bit; with ``can_receive`` too."""
    link = TableLink(
        max_range_m=link_range, delay_quantiles_s=(0.05, 0.2), multipliers=(1.0, 2.0), multiplier_cdf=(0.8, 1.0)
    )
    w = _world(n_actors, seed=12, extent=800.0)
    slots = w.active_slots()
    rng_m = np.full(w.capacity, INF)
    ranged = slots[:: max(len(slots) // 12, 1)]
    rng_m[ranged] = np.random.default_rng(2).uniform(40.0, 400.0, len(ranged))
    mask = np.ones(w.capacity, dtype=np.bool_)
    mask[slots[1::5]] = False
    senders = np.concatenate([slots, ranged])  # the ranged slots send twice
    times = np.random.default_rng(3).uniform(0.0, 0.1, len(senders))
    oracle = _oracle(w, senders, times, link, _seed_of(6), mask, rng_m)
    assert 0 < oracle.dropped < oracle.candidates
    default_way = fan_out_broadcast(w, senders, times, link, np.random.default_rng(6), can_receive=mask, range_m=rng_m)
    with always_compiled():
        compiled_way = fan_out_broadcast(
            w, senders, times, link, np.random.default_rng(6), can_receive=mask, range_m=rng_m
        )
    _assert_same(compiled_way, oracle)
    _assert_same(default_way, oracle)
    if n_actors <= SMALL_WORLD:  # (the default way of a small world is the interpreted one)
        unranged = fan_out_broadcast(w, senders, times, link, np.random.default_rng(6), can_receive=mask)
        assert unranged.candidates > oracle.candidates


def test_bad_ranges_are_refused() -> None:
    w, rng_m = _rsu_world()
    link = SURE_LINKS["tabulated"]
    for bad, match in ((rng_m[:2], "covering every slot"), (np.array([0.0, INF, INF, INF]), "positive"),
                       (np.array([np.nan, INF, INF, INF]), "positive")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            fan_out_broadcast(w, np.arange(4), np.zeros(4), link, np.random.default_rng(0), range_m=bad)
