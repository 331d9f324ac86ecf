"""Positioning profiles and the receiver state machine, statistically, with fixed seeds.

Ensembles of independent receivers on the same trajectory stand in for repeated drives. Tolerances are
stated per test; sigma estimates from n samples per axis have a relative standard error ~1/sqrt(2n).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
import pytest
import shapely

from v2x.impair import POSITIONING_PROFILES, STATE_NAMES, PositionFixes, PositioningModel, Zone
from v2x.impair import _positioning_profiles as pp

EXPECTED = {
    "rtk-fixed",
    "rtk-float",
    "ppp-b2b",
    "bdsbas-sf",
    "bdsbas-df",
    "spp-open-sky",
    "phone-gnss",
    "urban-canyon",
    "tunnel-outage",
    "5g-nr-pos",
    "fused-5g-bds-imu",
}
DR_PER_AXIS = 0.025 / math.sqrt(2.0)


def _run(
    model: PositioningModel,
    hz: float,
    seconds: float,
    xy_at: Callable[[float], tuple[float, float]] | None = None,
    speed: float = 0.0,
) -> list[tuple[float, PositionFixes]]:
    """Step ``model`` for ``seconds`` at ``hz``; ``xy_at(t)`` gives everyone's (x, y) (default origin)."""
    dt = 1.0 / hz
    out = []
    for k in range(1, round(seconds * hz) + 1):
        t = k * dt
        x, y = xy_at(t) if xy_at is not None else (0.0, 0.0)
        xy = np.tile([x, y], (model.n, 1))
        out.append((t, model.step(t, dt, xy, np.full(model.n, speed))))
    return out


def _model(profiles: Sequence[str], zones: Sequence[Zone] = (), seed: int = 1, **kw: bool) -> PositioningModel:
    return PositioningModel(profiles, zones, np.random.default_rng(seed), **kw)


def test_all_profiles_present_with_sources_and_assumptions() -> None:
    assert set(POSITIONING_PROFILES) == EXPECTED
    for profile in POSITIONING_PROFILES.values():
        assert profile.source and profile.parameters and profile.describe()
        assert profile.assumed <= set(profile.parameters)
    assert "(assumption)" in POSITIONING_PROFILES["rtk-float"].describe()


def test_unknown_profile_and_bad_zone() -> None:
    with pytest.raises(KeyError, match="rtk-fixed"):
        _model(["rtk-fixd"])
    with pytest.raises(ValueError, match="kind"):
        Zone("z", "bridge", shapely.box(0, 0, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="polygon"):
        Zone("z", "tunnel", shapely.Polygon())
    with pytest.raises(ValueError, match="polygon"):
        Zone.from_points("bow-tie", "tunnel", [(0, 0), (1, 1), (1, 0), (0, 1)])
    with pytest.raises(ValueError, match="3 points"):
        Zone.from_points("line", "tunnel", [(0, 0), (1, 1)])
    zone = Zone.from_points("t", "tunnel", [(0, 0), (10, 0), (10, 5), (0, 5)])
    assert zone.polygon.area == pytest.approx(50.0)


def test_same_seed_same_trace_and_shapes() -> None:
    names = sorted(EXPECTED)
    zones = [Zone("t", "tunnel", shapely.box(50, -5, 150, 5))]
    runs = [_run(_model(names, zones, seed), 10, 30, lambda t: (10.0 * t, 0.0), 10.0) for seed in (7, 7, 8)]
    for (_, a), (_, b) in zip(runs[0], runs[1], strict=True):
        np.testing.assert_array_equal(a.error_en, b.error_en)
        np.testing.assert_array_equal(a.sigma_major_m, b.sigma_major_m)
        assert a.state == b.state
    assert not np.array_equal(runs[0][-1][1].error_en, runs[2][-1][1].error_en)
    fix = runs[0][-1][1]
    assert fix.error_en.shape == (len(names), 2)
    assert fix.sigma_major_m.shape == fix.sigma_minor_m.shape == fix.available.shape == (len(names),)
    assert set(fix.state) <= set(STATE_NAMES)


# ---- correlated noise matches the profile at every rate --------------------------------------------------


@pytest.mark.parametrize("hz", [1, 10, 50])
def test_profile_sigma_and_autocorrelation_at_tau_independent_of_rate(hz: int) -> None:
    """bdsbas-df (GM 0.82 m, tau 60 s), spp-open-sky (GM 2.2 m + white 1.1 m, tau 60 s), phone-gnss (GM
    1.8 m + white 0.87 m, tau 60 s: the spp state with the profile's own error) and rtk-float (GM 0.16 m,
    tau 30 s + white 0.12 m): sigma within 4 %, correlation at lag tau within 0.05 of gm^2 e^-1 / sigma^2
    (4000 samples per profile, standard error ~0.015)."""
    per = 2000
    cases = {"bdsbas-df": pp.BDSBAS_DF, "spp-open-sky": pp.SPP, "phone-gnss": pp.PHONE, "rtk-float": pp.RTK_FLOAT}
    names = [name for name in cases for _ in range(per)]
    trace = _run(_model(names, seed=hz), hz, 60.0 + 1.0 / hz)
    start = trace[0][1].error_en
    for i, (name, err) in enumerate(cases.items()):
        rows = slice(i * per, (i + 1) * per)
        k = round(err.gm_tau_s * hz)
        later = trace[k][1].error_en
        assert np.std(later[rows]) == pytest.approx(err.sigma_m, rel=0.04), name
        assert trace[k][1].sigma_major_m[rows] == pytest.approx(err.sigma_m)
        rho = np.corrcoef(start[rows].ravel(), later[rows].ravel())[0, 1]
        assert rho == pytest.approx(err.gm_sigma_m**2 * math.exp(-1.0) / err.sigma_m**2, abs=0.05), name


# ---- RTK: fallback at the timeout, recovery when corrections return --------------------------------------


def test_rtk_falls_back_at_timeout_and_refixes() -> None:
    zones = [Zone("no-ntrip", "correction-loss", shapely.box(-10, -10, 10, 10))]
    n, hz = 200, 10
    model = _model(["rtk-fixed"] * n, zones, seed=3)
    # Outside until t = 10 s, inside the correction-loss zone until t = 100 s, then outside again.
    trace = _run(model, hz, 130.0, lambda t: (0.0, 0.0) if 10.0 <= t < 100.0 else (100.0, 0.0))
    states = {round(t, 1): set(f.state) for t, f in trace}
    assert states[9.9] == {"rtk-fixed"}
    assert states[10.0] == {"rtk-float"}  # corrections ageing
    assert states[69.9] == {"rtk-float"}
    assert states[70.0] == {"sbas"}  # 60 s after the last correction
    assert states[99.9] == {"sbas"}
    assert states[100.0] == {"rtk-float"}  # corrections back, re-fixing
    refix = []
    for i in range(n):
        first = next(t for t, f in trace if t >= 100.0 and f.state[i] == "rtk-fixed")
        refix.append(first - 100.0)
    assert min(refix) >= 2.0 - 1e-9 and max(refix) <= 5.0 + 0.1 + 1e-9
    assert np.mean(refix) == pytest.approx(3.5, abs=0.25)
    assert states[106.0] == {"rtk-fixed"}
    sigma = {round(t, 1): f.sigma_major_m[0] for t, f in trace}
    assert sigma[5.0] == pytest.approx(pp.RTK_FIXED.sigma_m)
    assert sigma[50.0] == pytest.approx(pp.RTK_FLOAT.sigma_m)
    assert sigma[80.0] == pytest.approx(pp.BDSBAS_DF.sigma_m)
    assert sigma[120.0] == pytest.approx(pp.RTK_FIXED.sigma_m)


def test_short_tunnel_rtk_refixes_without_fallback() -> None:
    zones = [Zone("tunnel", "tunnel", shapely.box(100, -10, 400, 10))]
    model = _model(["rtk-fixed"] * 50, zones, seed=4)
    trace = _run(model, 10, 40.0, lambda t: (20.0 * t, 0.0), speed=20.0)
    seen = [set(f.state) for _, f in trace]
    assert {"dead-reckoning"} in seen and not any("sbas" in s for s in seen)
    assert seen[-1] == {"rtk-fixed"}  # exit at 20 s, re-fixed within 5 s


# ---- tunnel: dead reckoning, honest and growing sigma, recovery ------------------------------------------


def test_tunnel_dead_reckoning_error_grows_with_distance_and_sigma_is_honest() -> None:
    n, v = 4000, 20.0
    zones = [Zone("tunnel", "tunnel", shapely.box(200, -10, 1200, 10))]  # 1000 m: t = 10 s .. 60 s
    model = _model(["bdsbas-df"] * n, zones, seed=5)
    trace = dict((round(t, 1), f) for t, f in _run(model, 10, 75.0, lambda t: (v * t, 0.0), speed=v))
    entry_sigma = pp.BDSBAS_DF.sigma_m
    for t in (20.0, 40.0, 59.9):
        fix = trace[t]
        assert set(fix.state) == {"dead-reckoning"} and fix.available.all()
        travelled = v * t - 200.0 + v * 0.1  # the tick that crossed the boundary counts in full
        expected = math.hypot(entry_sigma, DR_PER_AXIS * travelled)
        assert fix.sigma_major_m[0] == pytest.approx(expected, rel=0.02)
        # The reported sigma tracks the actual spread (4 %).
        assert np.std(fix.error_en) == pytest.approx(fix.sigma_major_m[0], rel=0.04)
    assert trace[59.9].sigma_major_m[0] > 20.0 * entry_sigma
    # Horizontal RMS error after 1 km is ~2.5 % of the distance (entry error aside).
    rms = float(np.sqrt(np.mean(np.sum(trace[59.9].error_en ** 2, axis=1))))
    assert rms == pytest.approx(math.hypot(math.sqrt(2) * entry_sigma, 0.025 * 1000.0), rel=0.04)
    after = trace[70.0]
    assert set(after.state) == {"sbas"}
    assert after.sigma_major_m[0] == pytest.approx(entry_sigma)
    assert np.std(after.error_en) == pytest.approx(entry_sigma, rel=0.04)


def test_no_imu_has_no_fix_in_tunnel() -> None:
    zones = [Zone("tunnel", "tunnel", shapely.box(-1, -1, 1, 1))]
    trace = _run(_model(["spp-open-sky", "bdsbas-df"], zones), 1, 20, lambda t: (0.0, 0.0) if t < 10 else (5.0, 0))
    inside, outside = trace[5][1], trace[15][1]
    assert inside.state == ("no-fix", "dead-reckoning")
    assert list(inside.available) == [False, True]
    assert np.isnan(inside.error_en[0]).all() and math.isinf(inside.sigma_major_m[0])
    assert outside.state == ("spp", "sbas") and outside.available.all()


def test_tunnel_outage_profile_is_dead_reckoning_everywhere() -> None:
    trace = _run(_model(["tunnel-outage"] * 2000, seed=6), 1, 50, lambda t: (10.0 * t, 0.0), speed=10.0)
    fix = trace[-1][1]
    assert set(fix.state) == {"dead-reckoning"}
    expected = math.hypot(pp.RTK_FIXED.sigma_m, DR_PER_AXIS * 500.0)
    assert fix.sigma_major_m[0] == pytest.approx(expected, rel=1e-9)
    assert np.std(fix.error_en) == pytest.approx(expected, rel=0.05)
    # Stationary: dead reckoning does not grow.
    still = _run(_model(["tunnel-outage"], seed=6), 1, 50)
    assert still[-1][1].sigma_major_m[0] == pytest.approx(pp.RTK_FIXED.sigma_m)


# ---- PPP re-convergence -----------------------------------------------------------------------------------


def test_ppp_reconverges_after_a_tunnel() -> None:
    n = 1000
    zones = [Zone("tunnel", "tunnel", shapely.box(-1, -1, 1, 1))]
    model = _model(["ppp-b2b"] * n, zones, seed=7)
    trace = _run(model, 1, 1100, lambda t: (0.0, 0.0) if 10 <= t < 20 else (50.0, 0.0))
    by_t = {round(t): f for t, f in trace}
    assert set(by_t[5].state) == {"ppp"} and by_t[5].sigma_major_m[0] == pytest.approx(0.096)
    assert set(by_t[20].state) == {"ppp-converging"}
    assert by_t[20].sigma_major_m[0] == pytest.approx(pp.SPP.sigma_m, rel=1e-6)
    assert np.std(by_t[20].error_en) == pytest.approx(pp.SPP.sigma_m, rel=0.05)
    assert np.std(by_t[200].error_en) == pytest.approx(by_t[200].sigma_major_m.mean(), rel=0.05)
    converged_after = [next(t for t, f in trace if t >= 20 and f.state[i] == "ppp") - 20.0 for i in range(n)]
    assert min(converged_after) >= 600.0 and max(converged_after) <= 1021.0
    assert set(by_t[1100].state) == {"ppp"}
    assert np.std(by_t[1100].error_en) == pytest.approx(0.096, rel=0.1)


def test_cold_start_ppp_and_5g_first_fix() -> None:
    trace = _run(_model(["ppp-b2b", "5g-nr-pos"] * 500, seed=8, cold_start=True), 1, 40)
    first = trace[0][1]
    assert set(first.state[0::2]) == {"ppp-converging"}
    nr_sigma = first.sigma_major_m[1::2]
    assert nr_sigma.min() >= 1.0 and nr_sigma.max() <= 3.0
    assert np.std(first.error_en[1::2] / nr_sigma[:, None]) == pytest.approx(1.0, rel=0.05)
    assert np.all(trace[-1][1].sigma_major_m[1::2] == pytest.approx(pp.NR_SIGMA_M))
    at_15 = trace[14][1].sigma_major_m[1::2]
    # First fix at t = 1 s, phase U(10, 30) s long: at t = 15 s, P(still in it) = P(U > 14) = 0.8.
    assert np.mean(at_15 > 0.3) == pytest.approx(0.8, abs=0.06)


# ---- urban canyon and NLOS -------------------------------------------------------------------------------


@pytest.mark.parametrize("hz", [1, 10])
def test_nlos_fraction_independent_of_rate(hz: int) -> None:
    trace = _run(_model(["urban-canyon"] * 1000, seed=9 + hz), hz, 300)
    in_nlos = np.array([[s == "nlos" for s in f.state] for _, f in trace])
    expected = (pp.NLOS_MEAN_DURATION_S * pp.NLOS_RATE_PER_S) / (1.0 + pp.NLOS_MEAN_DURATION_S * pp.NLOS_RATE_PER_S)
    assert in_nlos[int(30 * hz) :].mean() == pytest.approx(expected, abs=0.02)


def test_canyon_zone_degrades_every_gnss_profile_and_rtk_refixes_after() -> None:
    zones = [Zone("canyon", "urban-canyon", shapely.box(-1, -1, 1, 1))]
    names = ["rtk-fixed", "bdsbas-df", "5g-nr-pos", "fused-5g-bds-imu"]
    trace = _run(_model(names * 200, zones, seed=10), 10, 40, lambda t: (0.0, 0.0) if t < 20 else (9.0, 0.0))
    inside = trace[100][1]
    states = {name: set(inside.state[i :: len(names)]) for i, name in enumerate(names)}
    assert states["rtk-fixed"] <= {"urban-canyon", "nlos"} and states["bdsbas-df"] <= {"urban-canyon", "nlos"}
    assert states["5g-nr-pos"] == {"5g-nr"} and states["fused-5g-bds-imu"] == {"fused"}
    assert set(trace[200][1].state[0 :: len(names)]) == {"rtk-float"}
    assert set(trace[-1][1].state[0 :: len(names)]) == {"rtk-fixed"}


# ---- the reported sigma tracks the true error, state by state --------------------------------------------


def test_reported_sigma_tracks_true_error_in_every_state() -> None:
    """Drive every profile through a correction-loss stretch, a tunnel and a canyon; for each state the
    RMS of error / reported sigma per axis must be 1 within 8 % (snapshots 5 s apart, >= 2000 samples)."""
    names = sorted(EXPECTED) * 150
    zones = [
        Zone("ntrip-gap", "correction-loss", shapely.box(500, -10, 2000, 10)),
        Zone("tunnel", "tunnel", shapely.box(2500, -10, 3500, 10)),
        Zone("canyon", "urban-canyon", shapely.box(4000, -10, 5500, 10)),
    ]
    model = _model(names, zones, seed=11)
    z_by_state: dict[str, list[float]] = defaultdict(list)
    for k, (t, fix) in enumerate(_run(model, 2, 320, lambda t: (20.0 * t, 0.0), speed=20.0)):
        if k % 10:
            continue
        z = fix.error_en / fix.sigma_major_m[:, None]
        for i, s in enumerate(fix.state):
            if fix.available[i]:
                z_by_state[s].extend(z[i])
        assert t == pytest.approx((k + 1) / 2)
    checked = 0
    for state, values in z_by_state.items():
        if len(values) < 2000:
            continue
        checked += 1
        assert math.sqrt(np.mean(np.square(values))) == pytest.approx(1.0, abs=0.08), state
    assert checked >= 8


def test_fused_sigma_is_inverse_variance_combination() -> None:
    fix = _run(_model(["fused-5g-bds-imu"] * 4000, seed=12), 10, 5)[-1][1]
    expected = (pp.BDSBAS_DF.sigma_m**-2 + pp.NR_SIGMA_M**-2) ** -0.5
    assert set(fix.state) == {"fused"}
    assert fix.sigma_major_m[0] == pytest.approx(expected)
    assert np.std(fix.error_en) == pytest.approx(expected, rel=0.04)
