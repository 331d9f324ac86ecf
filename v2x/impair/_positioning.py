"""The positioning model: one object advances every actor's receiver state and noise per tick.

Sans-I/O and vectorised: true positions and speeds in, :class:`PositionFixes` out. Every tick draws the
same number of random numbers whatever the states are, so the same seed gives the same trace, and runs
that differ only in their zones share their random numbers.

State machine per actor (numbers in :mod:`v2x.impair._positioning_profiles`, prose in docs/IMPAIRMENTS.md):

* tunnel zone: no GNSS and no corrections. Profiles with an IMU dead-reckon from their last fix
  ("dead-reckoning", error growing with distance travelled); spp-open-sky has no fix ("no-fix").
* urban-canyon zone (or the urban-canyon profile): every GNSS solution becomes "urban-canyon", with NLOS
  episodes ("nlos") that add a jump.
* correction-loss zone (or a tunnel): the RTK correction stream stops. RTK holds "rtk-float" accuracy
  until the corrections are ``RTK_CORRECTION_TIMEOUT_S`` old, then falls back to BDSBAS-DF ("sbas").
  When corrections return (or after a canyon) it is "rtk-float" for 2-5 s, then "rtk-fixed" again.
* PPP-B2b re-converges ("ppp-converging", then "ppp") after every GNSS outage.
* 5G NR positioning has a 1-3 m first-fix phase at start (cold) and after every outage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import shapely
from numpy.typing import NDArray

from v2x.impair import _positioning_profiles as pp
from v2x.impair._gauss_markov import GaussMarkov

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
ZoneKind = Literal["tunnel", "urban-canyon", "correction-loss"]
ZONE_KINDS: tuple[ZoneKind, ...] = ("tunnel", "urban-canyon", "correction-loss")


@dataclass(frozen=True)
class Zone:
    """A polygon (local ENU metres) where the sky or the correction link is impaired."""

    name: str
    kind: ZoneKind
    polygon: shapely.Polygon

    def __post_init__(self) -> None:
        if self.kind not in ZONE_KINDS:
            raise ValueError(f"zone {self.name!r}: kind must be one of {ZONE_KINDS}, got {self.kind!r}")
        if not isinstance(self.polygon, shapely.Polygon) or self.polygon.is_empty or not self.polygon.is_valid:
            raise ValueError(f"zone {self.name!r}: polygon must be a valid, non-empty shapely.Polygon")

    @classmethod
    def from_points(cls, name: str, kind: ZoneKind, points: Sequence[tuple[float, float]]) -> Zone:
        """A zone from its outline, as the scenario file lists it: (east, north) metres, >= 3 points."""
        if len(points) < 3:
            raise ValueError(f"zone {name!r}: a polygon needs at least 3 points, got {len(points)}")
        return cls(name, kind, shapely.Polygon(points))


@dataclass(frozen=True)
class PositionFixes:
    """What every actor's receiver reports for one tick.

    ``error_en`` (N, 2) is the east/north error in metres to ADD to the true position. ``sigma_major_m``
    and ``sigma_minor_m`` (N,) are the 1-sigma accuracy the receiver reports for its current state (the
    models are isotropic, so the two are equal). Where ``available`` is False (state "no-fix") there is no
    position: ``error_en`` is NaN and the sigmas are inf. ``state`` names each receiver's state
    (``STATE_NAMES``), made from the codes ``state_code`` when first asked for (the fleets' thousands of
    receivers are stepped every tick, and nothing reads their names).
    """

    error_en: FloatArray
    sigma_major_m: FloatArray
    sigma_minor_m: FloatArray
    state_code: NDArray[np.int64]
    available: NDArray[np.bool_]

    @cached_property
    def state(self) -> tuple[str, ...]:
        return tuple(STATE_NAMES[s] for s in self.state_code.tolist())


# State codes (index into STATE_NAMES).
RTK_FIXED, RTK_FLOAT, SBAS, SPP, PPP_CONVERGING, PPP, URBAN_CANYON, NLOS, DEAD_RECKONING, NO_FIX, NR, FUSED = range(12)
STATE_NAMES: tuple[str, ...] = (
    "rtk-fixed",
    "rtk-float",
    "sbas",
    "spp",
    "ppp-converging",
    "ppp",
    "urban-canyon",
    "nlos",
    "dead-reckoning",
    "no-fix",
    "5g-nr",
    "fused",
)
_OUTAGE_STATES = (DEAD_RECKONING, NO_FIX)

# Per-state GNSS error table (GM sigma, GM tau, white sigma); SBAS uses each actor's own sigma, PPP its
# convergence curve, NLOS adds its jump. Rows for non-GNSS states are placeholders (tau keeps GM stationary).
_GM_SIGMA = np.zeros(len(STATE_NAMES))
_GM_TAU = np.full(len(STATE_NAMES), 60.0)
_WHITE = np.zeros(len(STATE_NAMES))
for _code, _err in (
    (RTK_FIXED, pp.RTK_FIXED),
    (RTK_FLOAT, pp.RTK_FLOAT),
    (SBAS, pp.BDSBAS_DF),
    (SPP, pp.SPP),
    (PPP_CONVERGING, pp.PPP_B2B_CONVERGED),
    (PPP, pp.PPP_B2B_CONVERGED),
    (URBAN_CANYON, pp.URBAN_CANYON),
    (NLOS, pp.URBAN_CANYON),
):
    _GM_SIGMA[_code], _GM_TAU[_code], _WHITE[_code] = _err.gm_sigma_m, _err.gm_tau_s, _err.white_sigma_m

_FAMILIES: tuple[pp.Family, ...] = (
    "rtk-fixed",
    "rtk-float",
    "ppp",
    "sbas",
    "spp",
    "canyon",
    "dr-only",
    "5g-nr",
    "fused",
)
F_RTK_FIXED, F_RTK_FLOAT, F_PPP, F_SBAS, F_SPP, F_CANYON, F_DR_ONLY, F_NR, F_FUSED = range(len(_FAMILIES))
_NOMINAL_STATE = {
    F_RTK_FIXED: RTK_FIXED,
    F_RTK_FLOAT: RTK_FLOAT,
    F_PPP: PPP,
    F_SBAS: SBAS,
    F_SPP: SPP,
    F_CANYON: URBAN_CANYON,
    F_DR_ONLY: RTK_FIXED,  # the fix the outage starts from
    F_NR: NR,
    F_FUSED: FUSED,
}
_DR_PER_AXIS = pp.DR_ERROR_FRACTION / math.sqrt(2.0)

# Columns of the per-tick random draws (fixed layout: same number of draws every tick).
_N_NORMAL = 8  # gm east/north, white east/north, nr east/north, dr-rate east/north
_N_UNIFORM = 7  # nlos onset, nlos end, jump length, jump angle, refix/ppp duration, nr sigma, nr duration


class PositioningModel:
    """Receiver state and noise for N actors, advanced together once per tick.

    ``profiles[i]`` is actor i's positioning profile name (N = len(profiles), fixed for the run).
    ``zones`` are the scenario's tunnel / urban-canyon / correction-loss polygons. With ``cold_start``
    every receiver starts from scratch (PPP converging, 5G NR first fix, RTK re-fixing); by default they
    start in their converged steady state.
    """

    def __init__(
        self,
        profiles: Sequence[str],
        zones: Sequence[Zone],
        rng: np.random.Generator,
        *,
        cold_start: bool = False,
    ) -> None:
        self.profiles: tuple[str, ...] = tuple(profiles)
        resolved = [pp.positioning_profile(name) for name in self.profiles]
        self.zones: tuple[Zone, ...] = tuple(zones)
        for zone in self.zones:
            shapely.prepare(zone.polygon)
        self._rng = rng
        n = len(resolved)
        self.n = n
        self._family = np.array([_FAMILIES.index(p.family) for p in resolved], dtype=np.int64)
        self._has_dr = np.array([p.dead_reckoning for p in resolved], dtype=np.bool_)
        self._has_gnss = ~np.isin(self._family, (F_NR, F_DR_ONLY))
        self._has_nr = np.isin(self._family, (F_NR, F_FUSED))
        self._sbas_sigma = np.array(
            [pp.BDSBAS_SF.gm_sigma_m if p.name == "bdsbas-sf" else pp.BDSBAS_DF.gm_sigma_m for p in resolved]
        )
        spp = [pp.SPP_ERROR.get(p.name, pp.SPP) for p in resolved]  # the spp state's error, per profile
        self._spp_gm_sigma = np.array([e.gm_sigma_m for e in spp])
        self._spp_white = np.array([e.white_sigma_m for e in spp])
        nominal_sigma = np.array([p.nominal_sigma_m for p in resolved], dtype=np.float64)
        self._cold_start = cold_start

        # Dynamic state.
        self._gm = rng.standard_normal((n, 2))  # unit-variance GM, scaled by the state's sigma
        self._last_err = nominal_sigma[:, None] * rng.standard_normal((n, 2))
        self._last_sigma = nominal_sigma.copy()
        if cold_start:
            self._prev_state = np.full(n, NO_FIX, dtype=np.int64)
        else:
            self._prev_state = np.array([_NOMINAL_STATE[int(f)] for f in self._family], dtype=np.int64)
        self._corr_lost_since = np.full(n, np.nan)
        self._refix_until = np.full(n, np.nan)
        self._ppp_start = np.full(n, -np.inf)
        self._ppp_duration = np.full(n, pp.PPP_CONVERGENCE_S[0])
        self._nr_first_until = np.full(n, -np.inf)
        self._nr_first_sigma = np.full(n, pp.NR_SIGMA_M)
        self._nlos = np.zeros(n, dtype=np.bool_)
        self._jump = np.zeros((n, 2))
        self._dr_dist = np.zeros(n)
        self._dr_rate = np.zeros((n, 2))
        self._dr_err0 = np.zeros((n, 2))
        self._dr_sigma0 = np.zeros(n)

    def restart(self, rows: NDArray[np.intp]) -> None:
        """A new receiver in ``rows`` (a background vehicle taking a free slot): its state as at the model's
        start (converged, or from scratch with ``cold_start``), its Gauss-Markov state and last fix drawn
        afresh (4 normal draws per row, in row order)."""
        rows = np.asarray(rows, dtype=np.intp)
        if not len(rows):
            return
        draws = self._rng.standard_normal((len(rows), 4))
        nominal = np.array([pp.positioning_profile(self.profiles[int(r)]).nominal_sigma_m for r in rows.tolist()])
        self._gm[rows] = draws[:, 0:2]
        self._last_err[rows] = nominal[:, None] * draws[:, 2:4]
        self._last_sigma[rows] = nominal
        if self._cold_start:
            self._prev_state[rows] = NO_FIX
        else:
            self._prev_state[rows] = [_NOMINAL_STATE[int(f)] for f in self._family[rows]]
        self._corr_lost_since[rows] = np.nan
        self._refix_until[rows] = np.nan
        self._ppp_start[rows] = -np.inf
        self._ppp_duration[rows] = pp.PPP_CONVERGENCE_S[0]
        self._nr_first_until[rows] = -np.inf
        self._nr_first_sigma[rows] = pp.NR_SIGMA_M
        self._nlos[rows] = False
        self._jump[rows] = 0.0
        self._dr_dist[rows] = 0.0
        self._dr_rate[rows] = 0.0
        self._dr_err0[rows] = 0.0
        self._dr_sigma0[rows] = 0.0

    # ----------------------------------------------------------------------------------------------------

    def zone_masks(self, true_xy: FloatArray) -> dict[ZoneKind, BoolArray]:
        """Which actors are inside a zone of each kind (boundary counts as inside)."""
        x, y = true_xy[:, 0], true_xy[:, 1]
        masks: dict[ZoneKind, BoolArray] = {kind: np.zeros(self.n, dtype=np.bool_) for kind in ZONE_KINDS}
        for zone in self.zones:
            masks[zone.kind] |= np.asarray(shapely.intersects_xy(zone.polygon, x, y), dtype=np.bool_)
        return masks

    def step(self, t_s: float, dt_s: float, true_xy: FloatArray, speed_mps: FloatArray) -> PositionFixes:
        """Advance every actor by one tick ending at ``t_s`` (``dt_s`` long) and return their fixes."""
        n = self.n
        true_xy = np.asarray(true_xy, dtype=np.float64).reshape(n, 2)
        speed = np.asarray(speed_mps, dtype=np.float64).reshape(n)
        if dt_s < 0.0:
            raise ValueError(f"dt_s must be >= 0, got {dt_s}")
        rng = self._rng
        normal = rng.standard_normal((n, _N_NORMAL))
        uniform = rng.random((n, _N_UNIFORM))
        fam, prev = self._family, self._prev_state
        was_out = np.isin(prev, _OUTAGE_STATES)

        masks = self.zone_masks(true_xy)
        tunnel = masks["tunnel"] | (fam == F_DR_ONLY)
        canyon = masks["urban-canyon"] | (fam == F_CANYON)
        corr_ok = ~tunnel & ~masks["correction-loss"]

        # RTK correction age.
        newly_lost = ~corr_ok & np.isnan(self._corr_lost_since)
        self._corr_lost_since[newly_lost] = t_s
        self._corr_lost_since[corr_ok] = np.nan
        corr_age = t_s - self._corr_lost_since  # NaN while corrections arrive

        # NLOS episodes (exact per-tick probabilities of a Poisson onset / exponential end).
        in_canyon_gnss = self._has_gnss & canyon & ~tunnel
        ends = self._nlos & (uniform[:, 1] < -math.expm1(-dt_s / pp.NLOS_MEAN_DURATION_S))
        starts = ~self._nlos & (uniform[:, 0] < -math.expm1(-dt_s * pp.NLOS_RATE_PER_S))
        self._nlos = in_canyon_gnss & ((self._nlos & ~ends) | starts)
        jump_len = pp.NLOS_JUMP_M[0] + (pp.NLOS_JUMP_M[1] - pp.NLOS_JUMP_M[0]) * uniform[:, 2]
        jump_angle = 2.0 * math.pi * uniform[:, 3]
        new_jump = starts & self._nlos
        self._jump[new_jump] = np.column_stack((jump_len * np.cos(jump_angle), jump_len * np.sin(jump_angle)))[new_jump]

        # ---- GNSS solution state -------------------------------------------------------------------------
        gstate = np.full(n, NO_FIX, dtype=np.int64)
        gstate[in_canyon_gnss] = np.where(self._nlos, NLOS, URBAN_CANYON)[in_canyon_gnss]
        open_sky = self._has_gnss & ~canyon & ~tunnel

        is_rtk = open_sky & np.isin(fam, (F_RTK_FIXED, F_RTK_FLOAT))
        fixable = is_rtk & corr_ok
        start_refix = fixable & (fam == F_RTK_FIXED) & (prev != RTK_FIXED) & np.isnan(self._refix_until)
        self._refix_until[start_refix] = t_s + (
            pp.RTK_REFIX_S[0] + (pp.RTK_REFIX_S[1] - pp.RTK_REFIX_S[0]) * uniform[start_refix, 4]
        )
        fixed = fixable & (fam == F_RTK_FIXED) & ((prev == RTK_FIXED) | (t_s >= self._refix_until))
        self._refix_until[fixed | ~fixable] = np.nan
        gstate[fixable] = np.where(fixed, RTK_FIXED, RTK_FLOAT)[fixable]
        stale = is_rtk & ~corr_ok
        gstate[stale] = np.where(corr_age < pp.RTK_CORRECTION_TIMEOUT_S, RTK_FLOAT, SBAS)[stale]

        is_ppp = open_sky & (fam == F_PPP)
        restart = is_ppp & was_out
        self._ppp_start[restart] = t_s
        self._ppp_duration[restart] = (
            pp.PPP_CONVERGENCE_S[0] + (pp.PPP_CONVERGENCE_S[1] - pp.PPP_CONVERGENCE_S[0]) * uniform[restart, 4]
        )
        ppp_elapsed = t_s - self._ppp_start
        gstate[is_ppp] = np.where(ppp_elapsed < self._ppp_duration, PPP_CONVERGING, PPP)[is_ppp]
        gstate[open_sky & np.isin(fam, (F_SBAS, F_FUSED))] = SBAS
        gstate[open_sky & (fam == F_SPP)] = SPP

        # GNSS error: unit GM scaled by the state's sigma, plus white noise.
        self._gm = GaussMarkov.update(self._gm, dt_s, _GM_TAU[gstate][:, None], 1.0, normal[:, 0:2])
        g_gm_sigma = _GM_SIGMA[gstate]
        g_gm_sigma = np.where(gstate == SBAS, np.where(is_rtk, pp.BDSBAS_DF.gm_sigma_m, self._sbas_sigma), g_gm_sigma)
        ppp_excess = (pp.SPP.sigma_m - pp.PPP_B2B_CONVERGED.sigma_m) * np.exp(
            -pp.PPP_CONVERGENCE_E_FOLDS * np.maximum(ppp_elapsed, 0.0) / self._ppp_duration
        )
        g_gm_sigma = np.where(gstate == PPP_CONVERGING, pp.PPP_B2B_CONVERGED.sigma_m + ppp_excess, g_gm_sigma)
        g_gm_sigma = np.where(gstate == SPP, self._spp_gm_sigma, g_gm_sigma)
        g_white = np.where(gstate == SPP, self._spp_white, _WHITE[gstate])
        g_err = g_gm_sigma[:, None] * self._gm + g_white[:, None] * normal[:, 2:4]
        g_sigma = np.hypot(g_gm_sigma, g_white)
        g_err = np.where((gstate == NLOS)[:, None], g_err + self._jump, g_err)
        g_sigma = np.where(gstate == NLOS, pp.nlos_sigma_m(), g_sigma)

        # ---- 5G NR positioning ---------------------------------------------------------------------------
        nr_ok = self._has_nr & ~tunnel
        first_fix = nr_ok & was_out
        lo, hi = pp.NR_INITIAL_DURATION_S
        self._nr_first_until[first_fix] = t_s + lo + (hi - lo) * uniform[first_fix, 6]
        lo, hi = pp.NR_INITIAL_SIGMA_M
        self._nr_first_sigma[first_fix] = lo + (hi - lo) * uniform[first_fix, 5]
        nr_sigma = np.where(t_s < self._nr_first_until, self._nr_first_sigma, pp.NR_SIGMA_M)
        nr_err = nr_sigma[:, None] * normal[:, 4:6]

        # ---- Combine per family --------------------------------------------------------------------------
        state = gstate.copy()
        err = g_err
        sigma = g_sigma
        is_nr = nr_ok & (fam == F_NR)
        state[is_nr] = NR
        err = np.where(is_nr[:, None], nr_err, err)
        sigma = np.where(is_nr, nr_sigma, sigma)
        fused = nr_ok & (fam == F_FUSED)
        w_g = 1.0 / np.where(g_sigma > 0.0, g_sigma, np.inf) ** 2  # 0 where there is no GNSS solution
        w_n = 1.0 / nr_sigma**2
        f_err = (w_g[:, None] * g_err + w_n[:, None] * nr_err) / (w_g + w_n)[:, None]
        state[fused] = FUSED
        err = np.where(fused[:, None], f_err, err)
        sigma = np.where(fused, (w_g + w_n) ** -0.5, sigma)

        # ---- Outages: dead reckoning or no fix ------------------------------------------------------------
        dr = tunnel & self._has_dr
        state[dr] = DEAD_RECKONING
        state[tunnel & ~self._has_dr] = NO_FIX
        entering = dr & (prev != DEAD_RECKONING)
        self._dr_err0[entering] = self._last_err[entering]
        self._dr_sigma0[entering] = self._last_sigma[entering]
        self._dr_dist[entering] = 0.0
        self._dr_rate[entering] = _DR_PER_AXIS * normal[entering, 6:8]
        self._dr_dist[dr] += speed[dr] * dt_s
        dr_err = self._dr_err0 + self._dr_rate * self._dr_dist[:, None]
        dr_sigma = np.hypot(self._dr_sigma0, _DR_PER_AXIS * self._dr_dist)
        err = np.where(dr[:, None], dr_err, err)
        sigma = np.where(dr, dr_sigma, sigma)

        available = state != NO_FIX
        err = np.where(available[:, None], err, np.nan)
        sigma = np.where(available, sigma, np.inf)
        self._last_err[available] = err[available]
        self._last_sigma[available] = sigma[available]
        self._prev_state = state

        return PositionFixes(
            error_en=err,
            sigma_major_m=sigma,
            sigma_minor_m=sigma.copy(),
            state_code=state.copy(),  # (``_prev_state`` is the same array, which ``restart`` writes to)
            available=available,
        )
