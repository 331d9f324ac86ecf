"""Positioning profiles (5G + Beidou): the numbers, their sources, and which of them are assumptions.

This module is the one place the numbers live; :mod:`v2x.impair._positioning` reads them from here and
``v2x impair list`` prints them. All sigmas are per horizontal axis (east, north), 1 sigma. For a circular
Gaussian sigma = CEP / 1.177 = R68 / 1.510 = R95 / 2.448.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

# --------------------------------------------------------------------------------------------------------
# Error of one solution state: first-order Gauss-Markov bias + white noise, per axis.
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SolutionError:
    """Per-axis error of a GNSS solution state: GM bias (sigma, tau) plus white noise."""

    gm_sigma_m: float
    gm_tau_s: float
    white_sigma_m: float

    @property
    def sigma_m(self) -> float:
        """Total stationary 1-sigma per axis."""
        return math.hypot(self.gm_sigma_m, self.white_sigma_m)


# RTK fixed: u-blox ZED-F9P integration manual, 0.01 m + 1 ppm CEP -> 0.0085 m + 0.85 ppm sigma.
RTK_FIXED_SIGMA_M = 0.0085
RTK_FIXED_PPM = 0.85
RTK_BASELINE_M = 5_000.0  # assumption: 5 km to the (virtual) reference station
RTK_FIXED = SolutionError(0.0, 60.0, RTK_FIXED_SIGMA_M + RTK_FIXED_PPM * 1e-6 * RTK_BASELINE_M)
# RTK float: 0.1-0.3 m is unverified; 0.16 m GM (tau 30 s) + 0.12 m white = 0.20 m total (assumption).
RTK_FLOAT = SolutionError(0.16, 30.0, 0.12)
# u-blox: corrections older than CFG-NAVSPG-CONSTR_DGNSSTO (default 60 s) are dropped.
RTK_CORRECTION_TIMEOUT_S = 60.0
RTK_REFIX_S = (2.0, 5.0)  # assumption: "re-fix within a few s", uniform per episode
# Yang et al., featured services and performance of BDS-3 (better than 3 m / 2 m at 95 %).
BDSBAS_SF = SolutionError(1.23, 60.0, 0.0)
BDSBAS_DF = SolutionError(0.82, 60.0, 0.0)
# Yang et al.; BDS-3 global spec (10 m 95 %): 2.2 m GM bias + 1.1 m white, ~2.46 m total.
SPP = SolutionError(2.2, 60.0, 1.1)
# A smartphone's GNSS, open sky: "GPS-enabled smartphones are typically accurate to within a 4.9 m (16 ft.)
# radius under open sky" (gps.gov, GPS Accuracy; from van Diggelen & Enge, ION GNSS+ 2015): R95 4.9 m ->
# sigma 2.0 m per axis. The split into a GM bias (1.8 m, tau 60 s, as SPP) and white noise (0.87 m) is an
# assumption, as is the lack of an IMU fallback (no fix in a tunnel).
PHONE = SolutionError(1.8, 60.0, 0.87)
PHONE_R95_M = 4.9
# BDS-3 PPP-B2b vehicle assessment: 95 % horizontal 23.5 cm (BDS) / 18.6 cm (BDS+GPS).
PPP_B2B_CONVERGED = SolutionError(0.096, 60.0, 0.0)
PPP_B2B_CONVERGED_BDS_GPS_SIGMA_M = 0.076  # documented, not used: the profile is BDS only
PPP_CONVERGENCE_S = (600.0, 1020.0)  # 10-17 min; uniform per convergence episode (assumption)
PPP_CONVERGENCE_E_FOLDS = 5.0  # assumption: the excess over the converged sigma is e^-5 at the end
# Urban canyon (Hong Kong NLOS study; Sensors 18(11):3830 survey): ~7 m; tau 20 s is an assumption.
URBAN_CANYON = SolutionError(7.0, 20.0, 0.0)
NLOS_RATE_PER_S = 1.0 / 30.0  # assumption: one NLOS episode every 30 s on average
NLOS_MEAN_DURATION_S = 5.0  # assumption: exponentially distributed episode length ("NLOS tau")
NLOS_JUMP_M = (10.0, 100.0)  # assumption: jump length uniform 10-100 m ("up to 100 m"), random direction
# Dead reckoning: vendor figure, error ~2.5 % of distance travelled (taken as horizontal RMS).
DR_ERROR_FRACTION = 0.025
# 5G NR positioning, 3GPP TS 22.261 7.3.2.3: 1-3 m for 10-30 s after the first fix, then 0.3 m.
NR_INITIAL_SIGMA_M = (1.0, 3.0)  # uniform per first fix (assumption on the distribution)
NR_INITIAL_DURATION_S = (10.0, 30.0)  # uniform per first fix (assumption on the distribution)
NR_SIGMA_M = 0.3


def nlos_sigma_m() -> float:
    """Per-axis RMS error in the NLOS state: canyon GM plus a jump uniform in length, random in direction."""
    lo, hi = NLOS_JUMP_M
    mean_sq_jump = (hi**3 - lo**3) / (3.0 * (hi - lo))
    return math.sqrt(URBAN_CANYON.sigma_m**2 + mean_sq_jump / 2.0)


def fused_sigma_m(*sigmas: float) -> float:
    """Inverse-variance combination: (sum sigma_i^-2)^-1/2."""
    return float(sum(s**-2 for s in sigmas) ** -0.5)


# --------------------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------------------

Family = Literal["rtk-fixed", "rtk-float", "ppp", "sbas", "spp", "canyon", "dr-only", "5g-nr", "fused"]


@dataclass(frozen=True)
class PositioningProfile:
    """A named receiver profile an actor can use.

    ``parameters`` maps a name (unit in the name) to its value; names listed in ``assumed`` are our own
    choices rather than sourced figures. ``notes`` states the modelling assumptions in words.
    """

    name: str
    family: Family
    summary: str
    parameters: Mapping[str, float | str]
    source: str
    assumed: frozenset[str] = frozenset()
    notes: tuple[str, ...] = field(default_factory=tuple)
    dead_reckoning: bool = True
    nominal_sigma_m: float = 0.0

    def describe(self) -> str:
        parts = []
        for key, value in self.parameters.items():
            text = f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
            parts.append(text + (" (assumption)" if key in self.assumed else ""))
        return ", ".join(parts)


_TUNNEL_NOTE = "in a tunnel: dead reckoning from the last fix, error sigma grows by 2.5 %/sqrt(2) of distance per axis"

_PROFILES: tuple[PositioningProfile, ...] = (
    PositioningProfile(
        name="rtk-fixed",
        family="rtk-fixed",
        summary="RTK with fixed ambiguities; falls back to BDSBAS-DF after the correction timeout",
        parameters={
            "sigma_m": RTK_FIXED.sigma_m,
            "sigma_base_m": RTK_FIXED_SIGMA_M,
            "ppm": RTK_FIXED_PPM,
            "baseline_m": RTK_BASELINE_M,
            "correction_timeout_s": RTK_CORRECTION_TIMEOUT_S,
            "refix_min_s": RTK_REFIX_S[0],
            "refix_max_s": RTK_REFIX_S[1],
            "fallback": "bdsbas-df",
        },
        assumed=frozenset({"baseline_m", "refix_min_s", "refix_max_s"}),
        source="u-blox ZED-F9P integration manual (0.01 m + 1 ppm CEP); u-blox note on CFG-NAVSPG-CONSTR_DGNSSTO",
        notes=(
            "white noise while fixed",
            "corrections lost (correction-loss zone or tunnel): rtk-float accuracy while the last corrections"
            " are younger than the timeout, then bdsbas-df",
            "corrections back: rtk-float for 2-5 s, then fixed; also after an urban canyon",
            _TUNNEL_NOTE,
        ),
        nominal_sigma_m=RTK_FIXED.sigma_m,
    ),
    PositioningProfile(
        name="rtk-float",
        family="rtk-float",
        summary="RTK that keeps float ambiguities (long baseline, partial sky)",
        parameters={
            "sigma_m": RTK_FLOAT.sigma_m,
            "gm_sigma_m": RTK_FLOAT.gm_sigma_m,
            "gm_tau_s": RTK_FLOAT.gm_tau_s,
            "white_sigma_m": RTK_FLOAT.white_sigma_m,
            "correction_timeout_s": RTK_CORRECTION_TIMEOUT_S,
            "fallback": "bdsbas-df",
        },
        assumed=frozenset({"sigma_m", "gm_sigma_m", "gm_tau_s", "white_sigma_m"}),
        source="0.1-0.3 m float accuracy is unverified: the 0.2 m used here is an assumption",
        notes=("correction loss as rtk-fixed", _TUNNEL_NOTE),
        nominal_sigma_m=RTK_FLOAT.sigma_m,
    ),
    PositioningProfile(
        name="ppp-b2b",
        family="ppp",
        summary="BDS-3 PPP-B2b: GM error converging exponentially from SPP level over 10-17 min",
        parameters={
            "sigma_m": PPP_B2B_CONVERGED.sigma_m,
            "gm_tau_s": PPP_B2B_CONVERGED.gm_tau_s,
            "start_sigma_m": SPP.sigma_m,
            "convergence_min_s": PPP_CONVERGENCE_S[0],
            "convergence_max_s": PPP_CONVERGENCE_S[1],
            "convergence_e_folds": PPP_CONVERGENCE_E_FOLDS,
        },
        assumed=frozenset({"convergence_e_folds"}),
        source=(
            "BDS-3 PPP-B2b vehicle assessment (95 % horizontal 23.5 cm BDS / 18.6 cm BDS+GPS, convergence"
            " 10-17 min); Yang et al. for the SPP start"
        ),
        notes=(
            "sigma(t) = 0.096 + (2.46 - 0.096) exp(-5 t / T), T uniform 10-17 min per episode; state"
            " ppp-converging until T, then ppp",
            "starts converged unless cold_start; re-converges after every GNSS outage (tunnel)",
            "B2b corrections come from BDS GEO satellites: a correction-loss zone does not affect them",
            _TUNNEL_NOTE,
        ),
        nominal_sigma_m=PPP_B2B_CONVERGED.sigma_m,
    ),
    PositioningProfile(
        name="bdsbas-sf",
        family="sbas",
        summary="single-frequency BDSBAS",
        parameters={"sigma_m": BDSBAS_SF.gm_sigma_m, "gm_tau_s": BDSBAS_SF.gm_tau_s},
        source="Yang et al., featured services and performance of BDS-3 (BDSBAS SF better than 3 m 95 %)",
        notes=("BDSBAS corrections come from GEO satellites: lost only with the sky (tunnel)", _TUNNEL_NOTE),
        nominal_sigma_m=BDSBAS_SF.sigma_m,
    ),
    PositioningProfile(
        name="bdsbas-df",
        family="sbas",
        summary="dual-frequency multi-constellation BDSBAS",
        parameters={"sigma_m": BDSBAS_DF.gm_sigma_m, "gm_tau_s": BDSBAS_DF.gm_tau_s},
        source="Yang et al., featured services and performance of BDS-3 (BDSBAS DFMC better than 2 m 95 %)",
        notes=("BDSBAS corrections come from GEO satellites: lost only with the sky (tunnel)", _TUNNEL_NOTE),
        nominal_sigma_m=BDSBAS_DF.sigma_m,
    ),
    PositioningProfile(
        name="spp-open-sky",
        family="spp",
        summary="standalone BDS single point positioning, open sky, no IMU",
        parameters={
            "sigma_m": SPP.sigma_m,
            "gm_sigma_m": SPP.gm_sigma_m,
            "gm_tau_s": SPP.gm_tau_s,
            "white_sigma_m": SPP.white_sigma_m,
            "spec_r95_m": 10.0,
        },
        source="Yang et al.; BDS-3 open service spec (10 m 95 %)",
        notes=("no IMU (assumption): no fix at all in a tunnel",),
        dead_reckoning=False,
        nominal_sigma_m=SPP.sigma_m,
    ),
    PositioningProfile(
        name="phone-gnss",
        family="spp",
        summary="a smartphone's GNSS (single point positioning), open sky, no IMU fallback",
        parameters={
            "sigma_m": PHONE.sigma_m,
            "gm_sigma_m": PHONE.gm_sigma_m,
            "gm_tau_s": PHONE.gm_tau_s,
            "white_sigma_m": PHONE.white_sigma_m,
            "r95_m": PHONE_R95_M,
        },
        assumed=frozenset({"gm_sigma_m", "gm_tau_s", "white_sigma_m"}),
        source="gps.gov GPS Accuracy (smartphones: 4.9 m radius, open sky; van Diggelen & Enge, ION GNSS+ 2015)",
        notes=("no IMU fallback (assumption): no fix at all in a tunnel", "the bias/white split is an assumption"),
        dead_reckoning=False,
        nominal_sigma_m=PHONE.sigma_m,
    ),
    PositioningProfile(
        name="urban-canyon",
        family="canyon",
        summary="GNSS in a street canyon everywhere: GM error plus NLOS jumps",
        parameters={
            "sigma_m": URBAN_CANYON.gm_sigma_m,
            "gm_tau_s": URBAN_CANYON.gm_tau_s,
            "nlos_rate_per_s": NLOS_RATE_PER_S,
            "nlos_mean_duration_s": NLOS_MEAN_DURATION_S,
            "nlos_jump_min_m": NLOS_JUMP_M[0],
            "nlos_jump_max_m": NLOS_JUMP_M[1],
            "nlos_sigma_m": nlos_sigma_m(),
        },
        assumed=frozenset(
            {"gm_tau_s", "nlos_rate_per_s", "nlos_mean_duration_s", "nlos_jump_min_m", "nlos_jump_max_m"}
        ),
        source="Hong Kong NLOS study (~7 m, jumps up to 100 m); Sensors 18(11):3830 survey",
        notes=(
            "the same model applies to every GNSS receiver inside an urban-canyon zone",
            "NLOS episodes: Poisson onsets, exponential durations, state nlos while one lasts; the reported"
            " sigma in nlos is the per-axis RMS of canyon error plus jump",
            _TUNNEL_NOTE,
        ),
        nominal_sigma_m=URBAN_CANYON.sigma_m,
    ),
    PositioningProfile(
        name="tunnel-outage",
        family="dr-only",
        summary="no GNSS at all: dead reckoning from an RTK-fixed fix at the start",
        parameters={
            "dr_error_fraction": DR_ERROR_FRACTION,
            "start_sigma_m": RTK_FIXED.sigma_m,
        },
        assumed=frozenset({"start_sigma_m"}),
        source="vendor dead-reckoning figure (~2.5 % of distance travelled); u-blox; PPP-B2b test",
        notes=(
            "2.5 % read as horizontal RMS: per-axis sigma = sqrt(s0^2 + (0.025 d / sqrt 2)^2), d distance"
            " travelled since the last fix; the drift rate is drawn once per outage",
            "a stationary receiver's error does not grow (use `impair sample --speed`)",
            "tunnel zones give every other profile this behaviour; on exit RTK re-fixes in 2-5 s and PPP"
            " re-converges in 10-17 min",
        ),
        nominal_sigma_m=RTK_FIXED.sigma_m,
    ),
    PositioningProfile(
        name="5g-nr-pos",
        family="5g-nr",
        summary="3GPP 5G NR positioning",
        parameters={
            "first_fix_sigma_min_m": NR_INITIAL_SIGMA_M[0],
            "first_fix_sigma_max_m": NR_INITIAL_SIGMA_M[1],
            "first_fix_min_s": NR_INITIAL_DURATION_S[0],
            "first_fix_max_s": NR_INITIAL_DURATION_S[1],
            "sigma_m": NR_SIGMA_M,
        },
        source="3GPP TS 22.261 section 7.3.2.3 (1-3 m for 10-30 s after the first fix, then 0.3 m)",
        notes=(
            "white noise; sigma and duration of the first-fix phase drawn uniformly per first fix",
            "starts past the first-fix phase unless cold_start",
            "assumption: no NR positioning in a tunnel; a new first fix after it; urban canyons do not affect it",
            _TUNNEL_NOTE,
        ),
        nominal_sigma_m=NR_SIGMA_M,
    ),
    PositioningProfile(
        name="fused-5g-bds-imu",
        family="fused",
        summary="inverse-variance fusion of BDSBAS-DF GNSS and 5G NR, IMU dead reckoning through gaps",
        parameters={
            "gnss_sigma_m": BDSBAS_DF.sigma_m,
            "nr_sigma_m": NR_SIGMA_M,
            "sigma_m": fused_sigma_m(BDSBAS_DF.sigma_m, NR_SIGMA_M),
            "gnss": "bdsbas-df",
        },
        assumed=frozenset({"gnss"}),
        source="3GPP TS 22.261 7.3.2.1 (GNSS, Beidou named, + 3GPP + IMU fusion); sources as the parts",
        notes=(
            "sigma_f = (sum sigma_i^-2)^-1/2 over the available sources; the fused error is the same"
            " weighted sum of the sources' errors, so sigma_f is honest",
            "the GNSS part follows bdsbas-df and the urban-canyon model in canyon zones",
            _TUNNEL_NOTE,
        ),
        nominal_sigma_m=fused_sigma_m(BDSBAS_DF.sigma_m, NR_SIGMA_M),
    ),
)

POSITIONING_PROFILES: Mapping[str, PositioningProfile] = MappingProxyType({p.name: p for p in _PROFILES})


#: The error of the single point positioning state per profile of the "spp" family.
SPP_ERROR: Mapping[str, SolutionError] = MappingProxyType({"spp-open-sky": SPP, "phone-gnss": PHONE})


def positioning_profile(name: str) -> PositioningProfile:
    """The profile called ``name``; KeyError listing the valid names otherwise."""
    try:
        return POSITIONING_PROFILES[name]
    except KeyError:
        valid = ", ".join(POSITIONING_PROFILES)
        raise KeyError(f"unknown positioning profile {name!r}; valid: {valid}") from None
