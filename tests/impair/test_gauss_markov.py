"""The exact Gauss-Markov update: stationary sigma and correlation time do not depend on the rate.

Ensembles of 20 000 independent processes, fixed seeds. Tolerances: sigma within 3 %, autocorrelation
at lag tau within 0.03 of e^-1 (standard error ~0.007).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from v2x.impair import GaussMarkov

N = 20_000


@pytest.mark.parametrize("hz", [1, 10, 50])
def test_stationary_sigma_and_lag_tau_correlation_independent_of_rate(hz: int) -> None:
    sigma, tau = 0.82, 2.0
    gm = GaussMarkov(sigma, tau, np.random.default_rng(100 + hz), (N,))
    start = gm.value.copy()
    for _ in range(round(tau * hz)):
        gm.step(1.0 / hz)
    assert np.std(gm.value) == pytest.approx(sigma, rel=0.03)
    assert np.corrcoef(start, gm.value)[0, 1] == pytest.approx(math.exp(-1.0), abs=0.03)


@pytest.mark.parametrize("hz", [1, 10, 50])
def test_reaches_the_same_stationary_sigma_from_zero(hz: int) -> None:
    gm = GaussMarkov(2.0, 0.5, np.random.default_rng(hz), (N,), stationary_start=False)
    for _ in range(5 * hz):  # 10 tau
        gm.step(1.0 / hz)
    assert np.std(gm.value) == pytest.approx(2.0, rel=0.03)


def test_update_is_the_exact_formula() -> None:
    b, dt, tau, sigma, w = 1.5, 0.1, 60.0, 0.8, -0.3
    expected = math.exp(-dt / tau) * b + sigma * math.sqrt(1.0 - math.exp(-2.0 * dt / tau)) * w
    assert float(GaussMarkov.update(b, dt, tau, sigma, w)) == pytest.approx(expected, rel=1e-12)


def test_euler_form_would_depend_on_rate() -> None:
    """Contrast: PX4's ``b += (rw - b/tau) dt`` style update gives a rate-dependent sigma; ours does not."""
    rng = np.random.default_rng(0)
    sigmas = []
    for hz in (5, 50):
        dt, b = 1.0 / hz, np.zeros(5_000)
        for _ in range(hz * 60):
            b += (rng.standard_normal(b.size) - b / 1.0) * dt
        sigmas.append(float(np.std(b)))
    assert sigmas[0] > 2.5 * sigmas[1]


def test_per_element_parameters_and_validation() -> None:
    gm = GaussMarkov(np.array([1.0, 10.0]), np.array([1.0, 100.0]), np.random.default_rng(1), (5000, 2))
    for _ in range(50):
        gm.step(0.1)
    np.testing.assert_allclose(np.std(gm.value, axis=0), [1.0, 10.0], rtol=0.05)
    with pytest.raises(ValueError):
        GaussMarkov(1.0, 0.0, np.random.default_rng(1), (3,))
    with pytest.raises(ValueError):
        gm.step(-0.1)
