"""NetworkLink.channel_tables: the same link model as data, for the core's compiled fan-out."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from v2x.core import ActorKind, LinkModel, TabulatedLink, WorldState, delivery_distances, fan_out_broadcast
from v2x.impair import NETWORK_PROFILES, GammaDelay, network_link
from v2x.impair._network import TABLE_KNOTS, ChannelTables, NetworkLink


class _CallablesOnly:
    """The same link without its tables: forces the core's generic (callable) fan-out path."""

    def __init__(self, link: NetworkLink) -> None:
        self.name = link.name
        self.max_range_m = link.max_range_m
        self._link = link

    def delivery_probability(self, distance_m: NDArray[np.float64]) -> NDArray[np.float64]:
        return self._link.delivery_probability(distance_m)

    def sample_delay_s(self, rng: np.random.Generator, distance_m: NDArray[np.float64]) -> NDArray[np.float64]:
        return self._link.sample_delay_s(rng, distance_m)


@pytest.mark.parametrize("name", list(NETWORK_PROFILES))
def test_every_profile_exports_valid_tables(name: str) -> None:
    link = network_link(name)
    assert isinstance(link, TabulatedLink)
    t = link.channel_tables()
    assert isinstance(t, ChannelTables)
    assert link.channel_tables() is t  # cached
    assert t.pdr_step_m > 0 and np.all((t.pdr >= 0) & (t.pdr <= 1))
    assert np.all(np.diff(t.delay_quantiles_s) >= 0) and t.delay_quantiles_s[0] >= 0
    assert t.delay_multipliers.shape == t.delay_multiplier_cdf.shape
    assert t.delay_multiplier_cdf[-1] == pytest.approx(1.0)
    assert 0 <= t.extra_delay_probability <= 1


@pytest.mark.parametrize("name", ["pc5-sidelink-los", "pc5-sidelink-dense", "pc5-sidelink-urban"])
def test_pdr_table_matches_the_model(name: str) -> None:
    link = network_link(name)
    t = link.channel_tables()
    assert len(t.pdr) == TABLE_KNOTS
    assert t.pdr_step_m * (TABLE_KNOTS - 1) == pytest.approx(link.max_range_m)
    d = np.random.default_rng(0).uniform(0.0, link.max_range_m, 2000)
    table = np.interp(d, np.arange(len(t.pdr)) * t.pdr_step_m, t.pdr)
    assert np.max(np.abs(table - link.delivery_probability(d))) < 1e-4


def test_delay_tables_are_exact_where_the_model_is_simple() -> None:
    pc5 = network_link("pc5-sidelink-los").channel_tables()  # MOSAIC SimpleRandomDelay, 5 steps
    assert pc5.delay_stepped
    assert pc5.delay_quantiles_s.tolist() == pytest.approx([0.4e-3, 0.9e-3, 1.4e-3, 1.9e-3, 2.4e-3])
    mec = network_link("5g-mec-service").channel_tables()  # continuous uniform 20-25 ms per hop
    assert not mec.delay_stepped and mec.delay_quantiles_s.tolist() == pytest.approx([0.020, 0.025])
    degraded = network_link("cell-degraded").channel_tables()  # 3 attempts, attempt k given delivery
    q = 0.8
    w = np.array([1.0, q, q * q]) * (1 - q)
    assert degraded.delay_multipliers.tolist() == [1.0, 2.0, 3.0]
    assert degraded.delay_multiplier_cdf == pytest.approx(np.cumsum(w) / w.sum())
    assert degraded.pdr.tolist() == pytest.approx([1 - q**3] * 2)
    edge = network_link("5g-uu-edge-sa").channel_tables()  # 120 ms handover gap every 30 s
    assert edge.extra_delay_probability == pytest.approx(0.120 / 30.0)
    assert edge.extra_delay_max_s == pytest.approx(0.120)


def test_gamma_quantiles_match_the_model() -> None:
    model = GammaDelay(4e-3, 7e-3)
    t = network_link("5g-uu-edge-sa").channel_tables()
    knots = len(t.delay_quantiles_s) - 1
    for k in (0, 409, 2048, 3891, 4091):  # exact at the knots q = k / (n - 1)
        assert t.delay_quantiles_s[k] == pytest.approx(model.quantile(k / knots), rel=1e-9, abs=1e-12)
    for q in (0.1234, 0.5, 0.95, 0.999):  # linear in between: small error, largest in the steep tail
        got = np.interp(q, np.linspace(0, 1, knots + 1), t.delay_quantiles_s)
        assert got == pytest.approx(model.quantile(q), rel=1e-3)


def _ring_world(n: int, radius_m: float) -> WorldState:
    """One sender at the origin, receivers spread uniformly over distance 0..radius."""
    w = WorldState(capacity=n + 1)
    for k in range(n + 1):
        w.add(f"v{k}", ActorKind.CAR, 5.0, 2.0)
    rng = np.random.default_rng(11)
    d = np.concatenate([[0.0], rng.uniform(1.0, radius_m, n)])
    phi = rng.uniform(0, 2 * math.pi, n + 1)
    w.set_state(np.arange(n + 1), d * np.cos(phi), d * np.sin(phi), 0, 0, 0, 0, 0)
    return w


@pytest.mark.parametrize("name", ["pc5-sidelink-urban", "pc5-sidelink-dense", "cell-degraded", "5g-uu-edge-sa"])
def test_compiled_and_generic_fan_out_draw_the_same_distributions(name: str) -> None:
    link = network_link(name)
    radius = link.max_range_m if math.isfinite(link.max_range_m) else 1000.0
    w = _ring_world(4000, radius)
    senders = np.zeros(25, dtype=np.intp)  # 25 transmissions from the same actor: 100k candidates
    times = np.zeros(25)
    generic: LinkModel = _CallablesOnly(link)
    a = fan_out_broadcast(w, senders, times, link, np.random.default_rng(1))
    b = fan_out_broadcast(w, senders, times, generic, np.random.default_rng(2))
    assert a.candidates == b.candidates == 25 * 4000
    # delivered counts: binomial-ish, 5 sigma
    sigma = math.sqrt(a.candidates * 0.25)
    assert abs(len(a) - len(b)) < 5 * sigma * math.sqrt(2)
    # delay distributions: two-sample Kolmogorov-Smirnov distance
    da = np.sort(a.delivery_time_s)
    db = np.sort(b.delivery_time_s)
    grid = np.union1d(da, db)
    ks = np.max(np.abs(np.searchsorted(da, grid, "right") / len(da) - np.searchsorted(db, grid, "right") / len(db)))
    n_eff = len(da) * len(db) / (len(da) + len(db))
    assert ks < 1.95 / math.sqrt(n_eff)  # alpha = 0.001
    # delivery against distance: mean delivered distance agrees
    mean_a = np.mean(delivery_distances(w, senders, a))
    assert mean_a == pytest.approx(np.mean(delivery_distances(w, senders, b)), rel=0.02)
