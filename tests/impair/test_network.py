"""Network profiles: the delivery curve and delay percentiles match their parameters (fixed seeds).

Tolerances: binomial proportions within 4 standard errors; percentiles of 200 000 draws within 2 %.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import ndtr

from v2x.impair import (
    NETWORK_PROFILES,
    ConstantDelay,
    GammaDelay,
    HandoverGap,
    NetworkLink,
    NetworkProfile,
    RetryDelivery,
    ShadowedPathLossDelivery,
    network_link,
)
from v2x.impair._network import NEGLIGIBLE_DELIVERY, normal_cdf

EXPECTED = {
    "pc5-sidelink-los",
    "pc5-sidelink-dense",
    "pc5-sidelink-urban",
    "5g-uu-edge-sa",
    "5g-uu-nsa-public",
    "5g-mec-service",
    "cell-degraded",
    "wired-backhaul",
}
N_DRAWS = 200_000


def _binomial_ok(hits: int, n: int, p: float) -> bool:
    se = math.sqrt(max(p * (1.0 - p), 1e-12) / n)
    return abs(hits / n - p) <= 4.0 * se + 1e-9


def test_all_profiles_present_with_sources() -> None:
    assert set(NETWORK_PROFILES) == EXPECTED
    for profile in NETWORK_PROFILES.values():
        assert profile.source
        assert profile.parameters()


def test_unknown_profile_lists_valid_names() -> None:
    with pytest.raises(KeyError) as info:
        network_link("wifi-7")
    message = str(info.value)
    for name in EXPECTED:
        assert name in message


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_link_shapes_and_determinism(name: str) -> None:
    link = network_link(name)
    assert link.name == name
    distances = np.linspace(0.0, 1200.0, 61).reshape(61)
    p = link.delivery_probability(distances)
    assert p.shape == distances.shape and p.dtype == np.float64
    assert np.all((p >= 0.0) & (p <= 1.0))
    assert np.all(np.diff(p) <= 1e-12), "delivery must not improve with distance"
    a = link.sample_delay_s(np.random.default_rng(7), distances)
    b = link.sample_delay_s(np.random.default_rng(7), distances)
    assert a.shape == distances.shape and np.all(a > 0.0)
    np.testing.assert_array_equal(a, b)
    if NETWORK_PROFILES[name].kind == "sidelink":
        assert math.isfinite(link.max_range_m)
        assert link.delivery_probability(np.array([link.max_range_m + 1.0]))[0] == 0.0
    else:
        assert link.max_range_m == math.inf


@pytest.mark.parametrize(
    ("name", "p0", "d50", "s"),
    [("pc5-sidelink-los", 0.976, 451.0, 61.0), ("pc5-sidelink-dense", 0.997, 368.0, 98.0)],
)
def test_logistic_delivery_curve(name: str, p0: float, d50: float, s: float) -> None:
    link = network_link(name)
    d = np.array([0.0, 100.0, 250.0, d50, 500.0])
    expected = p0 / (1.0 + np.exp((d - d50) / s))
    np.testing.assert_allclose(link.delivery_probability(d), expected, rtol=1e-12)
    assert link.delivery_probability(np.array([d50]))[0] == pytest.approx(p0 / 2.0)
    # The empirical delivery ratio of Bernoulli draws (as the fan-out does) follows the curve.
    rng = np.random.default_rng(11)
    for di, pi in zip(d, expected, strict=True):
        delivered = rng.random(20_000) < link.delivery_probability(np.full(20_000, di))
        assert _binomial_ok(int(delivered.sum()), 20_000, float(pi))
    assert link.delivery_probability(np.array([link.max_range_m]))[0] == pytest.approx(NEGLIGIBLE_DELIVERY)


def test_normal_cdf_matches_scipy() -> None:
    x = np.linspace(-8.0, 8.0, 2001)
    np.testing.assert_allclose(normal_cdf(x), ndtr(x), atol=2e-7)


def test_urban_delivery_matches_monte_carlo_link_budget() -> None:
    """Draw LOS/NLOS, path loss and shadowing per packet and compare with the analytic probability."""
    model = NETWORK_PROFILES["pc5-sidelink-urban"].delivery
    assert isinstance(model, ShadowedPathLossDelivery)
    link = network_link("pc5-sidelink-urban")
    rng = np.random.default_rng(3)
    n = 40_000
    for d in (20.0, 100.0, 180.0, 250.0, 400.0):
        is_los = rng.random(n) < min(1.0, 1.05 * math.exp(-0.0114 * d))
        pl_los = 38.77 + 16.7 * math.log10(d) + 18.2 * math.log10(5.9) + rng.normal(0.0, 3.0, n)
        pl_nlos = 36.85 + 30.0 * math.log10(d) + 18.9 * math.log10(5.9) + rng.normal(0.0, 4.0, n)
        received = 21.5 - np.where(is_los, pl_los, pl_nlos)
        hits = int(np.count_nonzero(received >= -99.0))
        p = float(link.delivery_probability(np.array([d]))[0])
        assert _binomial_ok(hits, n, p), (d, hits / n, p)


@pytest.mark.parametrize(
    ("name", "direction", "min_ms", "mean_ms"),
    [
        ("5g-uu-nsa-public", "uplink", 8.0, 13.0),
        ("5g-uu-nsa-public", "downlink", 5.0, 8.0),
    ],
)
def test_gamma_delay_percentiles(name: str, direction: str, min_ms: float, mean_ms: float) -> None:
    link = NetworkLink(NETWORK_PROFILES[name], "downlink" if direction == "downlink" else "uplink")
    delays_ms = link.sample_delay_s(np.random.default_rng(5), np.zeros(N_DRAWS)) * 1e3
    assert delays_ms.min() >= min_ms
    assert delays_ms.mean() == pytest.approx(mean_ms, rel=0.01)
    for q in (0.5, 0.95, 0.99):
        expected = min_ms + (mean_ms - min_ms) * stats.gamma.ppf(q, 2.0, scale=2.0) / 4.0
        assert np.quantile(delays_ms, q) == pytest.approx(expected, rel=0.02)


def test_gamma_quantile_helper_matches_scipy() -> None:
    model = GammaDelay(4e-3, 7e-3)
    for q in (0.05, 0.5, 0.95, 0.999):
        expected = 4e-3 + 3e-3 * stats.gamma.ppf(q, 2.0, scale=2.0) / 4.0
        assert model.quantile(q) == pytest.approx(expected, rel=1e-9)
    assert model.quantile(0.95) == pytest.approx(11.1e-3, abs=0.1e-3)  # the brief's "p95 ~11 ms"


def test_edge_sa_delay_and_handover_gap() -> None:
    link = network_link("5g-uu-edge-sa")
    delays_ms = link.sample_delay_s(np.random.default_rng(9), np.zeros(N_DRAWS)) * 1e3
    assert delays_ms.min() >= 4.0
    # Base mean 7 ms plus the handover share: P(gap) * gap / 2 = (0.12 / 30) * 60 ms = 0.24 ms.
    assert delays_ms.mean() == pytest.approx(7.24, abs=0.05)
    assert np.median(delays_ms) == pytest.approx(4.0 + 3.0 * stats.gamma.ppf(0.5, 2.0, scale=2.0) / 4.0, rel=0.02)


def test_handover_gap_fraction_and_size() -> None:
    profile = NetworkProfile(
        name="test-handover",
        kind="cellular",
        summary="",
        delivery=RetryDelivery(),
        uplink_delay=ConstantDelay(1e-3),
        handover=HandoverGap(gap_s=0.1, mean_interval_s=0.5),
        source="test",
    )
    extra = NetworkLink(profile).sample_delay_s(np.random.default_rng(1), np.zeros(N_DRAWS)) - 1e-3
    hit = extra > 0.0
    assert _binomial_ok(int(hit.sum()), N_DRAWS, 0.2)
    assert extra.max() <= 0.1
    assert extra[hit].mean() == pytest.approx(0.05, rel=0.02)


def test_pc5_delay_is_mosaic_simple_random_delay() -> None:
    delays_ms = network_link("pc5-sidelink-los").sample_delay_s(np.random.default_rng(2), np.zeros(50_000)) * 1e3
    values, counts = np.unique(np.round(delays_ms, 9), return_counts=True)
    np.testing.assert_allclose(values, [0.4, 0.9, 1.4, 1.9, 2.4])
    for c in counts:
        assert _binomial_ok(int(c), 50_000, 0.2)


def test_cell_degraded_retries() -> None:
    link = network_link("cell-degraded")
    p = 1.0 - 0.8**3
    assert link.delivery_probability(np.array([10.0, 5000.0])) == pytest.approx([p, p])
    # Reference: MOSAIC's loop (attempt until success or 1 + 2 attempts), delay = attempts x U(50, 200) ms.
    rng = np.random.default_rng(4)
    attempts_ok = []
    for _ in range(N_DRAWS // 4):
        for attempt in (1, 2, 3):
            if rng.random() >= 0.8:
                attempts_ok.append(attempt)
                break
    reference_mean_ms = 125.0 * float(np.mean(attempts_ok))
    analytic_mean_ms = 125.0 * (0.2 * 1 + 0.16 * 2 + 0.128 * 3) / p
    assert reference_mean_ms == pytest.approx(analytic_mean_ms, rel=0.02)
    delays_ms = link.sample_delay_s(np.random.default_rng(8), np.zeros(N_DRAWS)) * 1e3
    assert delays_ms.mean() == pytest.approx(analytic_mean_ms, rel=0.01)
    assert delays_ms.min() >= 50.0 and delays_ms.max() <= 600.0


def test_mec_and_backhaul_bounds() -> None:
    # TARGET-X's 40-50 ms is end to end (vehicle -> MEC -> vehicle): each hop 20-25 ms, the two hops 40-50 ms
    up = network_link("5g-mec-service").sample_delay_s(np.random.default_rng(0), np.zeros(10_000))
    down = network_link("5g-mec-service", "downlink").sample_delay_s(np.random.default_rng(1), np.zeros(10_000))
    assert up.min() >= 0.020 and up.max() <= 0.025 and down.min() >= 0.020 and down.max() <= 0.025
    relayed = up + down
    assert relayed.min() >= 0.040 and relayed.max() <= 0.050 and relayed.mean() == pytest.approx(0.045, abs=2e-4)
    wired = network_link("wired-backhaul")
    assert np.all(wired.delivery_probability(np.array([0.0, 1e6])) == 1.0)
    backhaul = wired.sample_delay_s(np.random.default_rng(0), np.zeros(10_000))
    assert backhaul.min() >= 0.001 and backhaul.max() <= 0.002


def test_bad_direction_rejected() -> None:
    with pytest.raises(ValueError, match="direction"):
        network_link("5g-uu-edge-sa", "sideways")  # type: ignore[arg-type]
