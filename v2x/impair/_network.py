"""Network impairment profiles: packet delivery against distance and one-way delay distributions.

Sans-I/O: numpy arrays in, numpy arrays out. The emulator's fan-out stage draws the Bernoulli delivery
itself from :meth:`NetworkLink.delivery_probability` and delays each delivered copy by
:meth:`NetworkLink.sample_delay_s`; loss and delay are never left to TCP (MQTT over TCP would turn loss
into retransmission, and Nagle adds ~40 ms, mosquitto#433).

Every number carries its source in the profile's ``source``; numbers that are our own choices are listed
in ``assumptions``. See docs/IMPAIRMENTS.md for the full table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

Direction = Literal["uplink", "downlink"]
LinkKind = Literal["sidelink", "cellular", "wired"]

#: Delivery probability below which a receiver counts as out of range (sets ``max_range_m``).
NEGLIGIBLE_DELIVERY = 1e-3

_MS = 1e-3


# --------------------------------------------------------------------------------------------------------
# Delay models (one-way, seconds)
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConstantDelay:
    """The same delay for every packet."""

    delay_s: float

    def sample(self, rng: np.random.Generator, n: int) -> FloatArray:
        return np.full(n, self.delay_s, dtype=np.float64)

    def quantile(self, q: float) -> float:
        return self.delay_s

    def mean(self) -> float:
        return self.delay_s

    def describe(self) -> str:
        return f"constant {self.delay_s / _MS:g} ms"


@dataclass(frozen=True)
class UniformDelay:
    """Uniform between ``min_s`` and ``max_s``; with ``steps`` it is MOSAIC's SimpleRandomDelay, which picks
    one of ``steps`` equally spaced values including both ends (0.4-2.4 ms in 5 steps: 0.4, 0.9, ... 2.4)."""

    min_s: float
    max_s: float
    steps: int | None = None

    def sample(self, rng: np.random.Generator, n: int) -> FloatArray:
        if self.steps is None:
            return rng.uniform(self.min_s, self.max_s, n)
        k = rng.integers(0, self.steps, n)
        return self.min_s + (self.max_s - self.min_s) * k / max(self.steps - 1, 1)

    def quantile(self, q: float) -> float:
        if self.steps is None:
            return self.min_s + q * (self.max_s - self.min_s)
        k = min(math.ceil(q * self.steps) - 1, self.steps - 1)
        return self.min_s + (self.max_s - self.min_s) * max(k, 0) / max(self.steps - 1, 1)

    def mean(self) -> float:
        return 0.5 * (self.min_s + self.max_s)

    def describe(self) -> str:
        text = f"uniform {self.min_s / _MS:g}-{self.max_s / _MS:g} ms"
        return text + (f" in {self.steps} steps" if self.steps else "")


@dataclass(frozen=True)
class GammaDelay:
    """MOSAIC's GammaRandomDelay: ``min + (mean - min) * Gamma(shape 2, scale 2) / 4``.

    Gamma(2, 2) has mean 4, so the delay has the stated mean; its 95th percentile is
    ``min + 2.372 (mean - min)`` (4 / 7 ms gives ~11.1 ms).
    """

    min_s: float
    mean_s: float

    def sample(self, rng: np.random.Generator, n: int) -> FloatArray:
        return self.min_s + (self.mean_s - self.min_s) * rng.gamma(2.0, 2.0, n) / 4.0

    def quantile(self, q: float) -> float:
        # Gamma(2, scale 1) has CDF 1 - exp(-x) (1 + x); invert it by bisection.
        lo, hi = 0.0, 100.0
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if 1.0 - math.exp(-mid) * (1.0 + mid) < q:
                lo = mid
            else:
                hi = mid
        return self.min_s + (self.mean_s - self.min_s) * (2.0 * hi) / 4.0

    def mean(self) -> float:
        return self.mean_s

    def describe(self) -> str:
        return f"gamma min {self.min_s / _MS:g} ms mean {self.mean_s / _MS:g} ms"


DelayModel = ConstantDelay | UniformDelay | GammaDelay


def normal_cdf(x: FloatArray) -> FloatArray:
    """Standard normal CDF, vectorised (Abramowitz & Stegun 7.1.26 erf, absolute error < 1e-7)."""
    z = np.abs(np.asarray(x, dtype=np.float64)) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    return np.asarray(0.5 * (1.0 + np.sign(x) * erf), dtype=np.float64)


# --------------------------------------------------------------------------------------------------------
# Delivery models
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogisticDelivery:
    """Bernoulli delivery with ``PDR(d) = p0 / (1 + exp((d - d50) / s))``."""

    p0: float
    d50_m: float
    scale_m: float
    fitted_to_m: float

    def probability(self, distance_m: FloatArray) -> FloatArray:
        z = np.clip((distance_m - self.d50_m) / self.scale_m, -700.0, 700.0)
        return self.p0 / (1.0 + np.exp(z))

    def range_m(self) -> float:
        # Solve p0 / (1 + exp((d - d50)/s)) = NEGLIGIBLE_DELIVERY.
        return self.d50_m + self.scale_m * math.log(self.p0 / NEGLIGIBLE_DELIVERY - 1.0)

    def describe(self) -> str:
        return (
            f"PDR(d) = {self.p0:g} / (1 + exp((d - {self.d50_m:g} m) / {self.scale_m:g} m)),"
            f" fitted to {self.fitted_to_m:g} m"
        )


@dataclass(frozen=True)
class PathLoss:
    """Log-distance path loss ``a + b log10(d_m) + c log10(f_GHz)`` dB with lognormal shadowing sigma dB."""

    a_db: float
    b_db: float
    c_db: float
    shadowing_sigma_db: float

    def median_db(self, distance_m: FloatArray, freq_ghz: float) -> FloatArray:
        return self.a_db + self.b_db * np.log10(distance_m) + self.c_db * math.log10(freq_ghz)


@dataclass(frozen=True)
class ShadowedPathLossDelivery:
    """TR 37.885 V2V urban path loss with lognormal shadowing, compared with the receiver sensitivity.

    A packet is delivered when ``tx - PL(d) - X >= sensitivity`` with ``X ~ N(0, sigma)``, so
    ``P = Phi((tx - sensitivity - PL_median(d)) / sigma)``, independently per packet. LOS or NLOS is mixed
    with the TR 37.885 urban LOS probability ``min(1, a exp(-b d))``; here it stands in for both building
    and vehicle blockage because the emulator has no building geometry (an assumption).
    """

    tx_power_dbm: float
    sensitivity_dbm: float
    freq_ghz: float
    los: PathLoss
    nlos: PathLoss
    los_prob_a: float
    los_prob_b_per_m: float
    min_distance_m: float = 3.0

    def los_probability(self, distance_m: FloatArray) -> FloatArray:
        return np.minimum(1.0, self.los_prob_a * np.exp(-self.los_prob_b_per_m * distance_m))

    def probability_given(self, distance_m: FloatArray, los: bool) -> FloatArray:
        d = np.maximum(distance_m, self.min_distance_m)
        model = self.los if los else self.nlos
        margin = self.tx_power_dbm - self.sensitivity_dbm - model.median_db(d, self.freq_ghz)
        return normal_cdf(margin / model.shadowing_sigma_db)

    def probability(self, distance_m: FloatArray) -> FloatArray:
        p_los = self.los_probability(distance_m)
        return p_los * self.probability_given(distance_m, True) + (1.0 - p_los) * self.probability_given(
            distance_m, False
        )

    def range_m(self) -> float:
        lo, hi = self.min_distance_m, 100_000.0
        for _ in range(100):  # bisection on a decreasing function
            mid = 0.5 * (lo + hi)
            if float(self.probability(np.array([mid]))[0]) > NEGLIGIBLE_DELIVERY:
                lo = mid
            else:
                hi = mid
        return hi

    def describe(self) -> str:
        return (
            f"TR 37.885 urban: LOS {self.los.a_db:g} + {self.los.b_db:g} log10 d + {self.los.c_db:g} log10 f"
            f" (sigma {self.los.shadowing_sigma_db:g} dB), NLOS {self.nlos.a_db:g} + {self.nlos.b_db:g}"
            f" log10 d + {self.nlos.c_db:g} log10 f (sigma {self.nlos.shadowing_sigma_db:g} dB),"
            f" f {self.freq_ghz:g} GHz, tx {self.tx_power_dbm:g} dBm, sensitivity {self.sensitivity_dbm:g} dBm,"
            f" P(LOS) = min(1, {self.los_prob_a:g} exp(-{self.los_prob_b_per_m:g} d))"
        )


@dataclass(frozen=True)
class RetryDelivery:
    """MOSAIC's retransmission model: each attempt is lost with ``loss_probability``; up to ``max_retries``
    retries; the packet arrives after ``attempts x delay``. Distance does not matter (cellular)."""

    loss_probability: float = 0.0
    max_retries: int = 0

    def probability(self, distance_m: FloatArray) -> FloatArray:
        p = 1.0 - self.loss_probability ** (self.max_retries + 1)
        return np.full(np.shape(distance_m), p, dtype=np.float64)

    def range_m(self) -> float:
        return math.inf

    def attempts_given_delivered(self, rng: np.random.Generator, n: int) -> NDArray[np.int64]:
        """Attempt number of the successful transmission, conditional on delivery (truncated geometric)."""
        if self.max_retries == 0 or self.loss_probability == 0.0:
            return np.ones(n, dtype=np.int64)
        q = self.loss_probability
        k = np.arange(1, self.max_retries + 2)
        weights = q ** (k - 1) * (1.0 - q)
        cdf = np.cumsum(weights) / weights.sum()
        return np.asarray(k[np.searchsorted(cdf, rng.random(n), side="right")], dtype=np.int64)

    def describe(self) -> str:
        if self.loss_probability == 0.0:
            return "no loss"
        return (
            f"loss {self.loss_probability:g} per attempt, {self.max_retries} retries"
            f" (delivery {1.0 - self.loss_probability ** (self.max_retries + 1):.3f})"
        )


DeliveryModel = LogisticDelivery | ShadowedPathLossDelivery | RetryDelivery


@dataclass(frozen=True)
class HandoverGap:
    """Handover interruption: packets sent during the ``gap_s`` are buffered and leave when it ends.

    Modelled per packet, without state: a packet falls into a gap with probability
    ``gap_s / mean_interval_s`` (the fraction of time a UE spends in handover) and then waits a uniform
    part of the gap. Independent UEs sharing one link object therefore do not hand over in lockstep.
    """

    gap_s: float
    mean_interval_s: float

    def describe(self) -> str:
        return f"{self.gap_s / _MS:g} ms gap per handover, one handover every {self.mean_interval_s:g} s"


# --------------------------------------------------------------------------------------------------------
# Profiles and links
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkProfile:
    """A named network impairment profile. ``downlink_delay`` None means the same as ``uplink_delay``."""

    name: str
    kind: LinkKind
    summary: str
    delivery: DeliveryModel
    uplink_delay: DelayModel
    source: str
    downlink_delay: DelayModel | None = None
    handover: HandoverGap | None = None
    assumptions: tuple[str, ...] = field(default_factory=tuple)

    def delay(self, direction: Direction) -> DelayModel:
        if direction == "downlink" and self.downlink_delay is not None:
            return self.downlink_delay
        return self.uplink_delay

    def parameters(self) -> dict[str, str]:
        """Human-readable parameter table (``v2x impair list``)."""
        out = {"delivery": self.delivery.describe()}
        if self.downlink_delay is None:
            out["delay"] = self.uplink_delay.describe()
        else:
            out["uplink delay"] = self.uplink_delay.describe()
            out["downlink delay"] = self.downlink_delay.describe()
        if self.handover is not None:
            out["handover"] = self.handover.describe()
        return out


#: Knots of the tables that ``NetworkLink.channel_tables`` exports (delivery probability over distance,
#: delay inverse CDF).
TABLE_KNOTS = 4097
#: Last knot of a tabulated unbounded delay (gamma): the inverse CDF at this quantile.
TABLE_TOP_QUANTILE = 1.0 - 1e-9


@dataclass(frozen=True, eq=False)
class ChannelTables:
    """A link as data, for the core's compiled fan-out (structurally ``v2x.core.LinkTables``).

    Delivery probability ``pdr[k]`` at ``k * pdr_step_m``, linear in between, ``pdr[-1]`` beyond. Delay
    = base * multiplier + extra: base from the inverse CDF ``delay_quantiles_s`` (``delay_stepped``:
    equally likely values, else knots at q = k / (n - 1) with linear interpolation), multiplier
    ``delay_multipliers[j]`` with cumulative probabilities ``delay_multiplier_cdf``, and with probability
    ``extra_delay_probability`` an extra uniform delay in [0, ``extra_delay_max_s``).
    """

    pdr_step_m: float
    pdr: FloatArray
    delay_quantiles_s: FloatArray
    delay_stepped: bool
    delay_multipliers: FloatArray
    delay_multiplier_cdf: FloatArray
    extra_delay_probability: float
    extra_delay_max_s: float


def _delay_quantiles(model: DelayModel) -> tuple[FloatArray, bool]:
    """Inverse CDF of a delay model: (values, stepped). Exact except for the gamma, which is tabulated
    at ``TABLE_KNOTS`` quantiles up to ``TABLE_TOP_QUANTILE``."""
    if isinstance(model, ConstantDelay):
        return np.array([model.delay_s, model.delay_s]), False
    if isinstance(model, UniformDelay):
        if model.steps is None:
            return np.array([model.min_s, model.max_s]), False
        k = np.arange(model.steps)
        return model.min_s + (model.max_s - model.min_s) * k / max(model.steps - 1, 1), True
    q = np.linspace(0.0, 1.0, TABLE_KNOTS)
    q[-1] = TABLE_TOP_QUANTILE
    # Gamma(2, scale 1) has CDF 1 - exp(-x) (1 + x); invert all knots at once by bisection.
    lo = np.zeros_like(q)
    hi = np.full_like(q, 100.0)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        below = 1.0 - np.exp(-mid) * (1.0 + mid) < q
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return model.min_s + (model.mean_s - model.min_s) * (2.0 * hi) / 4.0, False


class NetworkLink:
    """One profile in one direction, as the fan-out sees it (structurally the core's link protocol).

    ``direction`` matters only for cellular profiles: "uplink" for a vehicle or RSU sending to the
    network, "downlink" for the network (cloud, MEC) sending to a vehicle. Stateless: every call draws from
    the generator it is given, so the same seed gives the same draws.
    """

    def __init__(self, profile: NetworkProfile, direction: Direction = "uplink") -> None:
        self.profile = profile
        self.name = profile.name
        self.direction: Direction = direction
        self.max_range_m: float = profile.delivery.range_m()
        self._delay = profile.delay(direction)
        self._tables: ChannelTables | None = None

    def __repr__(self) -> str:
        return f"NetworkLink({self.name!r}, direction={self.direction!r})"

    def delivery_probability(self, distance_m: FloatArray) -> FloatArray:
        """Probability that one packet reaches a receiver at each distance (0 beyond ``max_range_m``)."""
        d = np.asarray(distance_m, dtype=np.float64)
        p = self.profile.delivery.probability(d)
        return np.where(d > self.max_range_m, 0.0, p)

    def sample_delay_s(self, rng: np.random.Generator, distance_m: FloatArray) -> FloatArray:
        """One-way delay in seconds for each delivered packet (one element per receiver)."""
        n = int(np.size(distance_m))
        delay = self._delay.sample(rng, n)
        delivery = self.profile.delivery
        if isinstance(delivery, RetryDelivery) and delivery.max_retries > 0:
            delay = delay * delivery.attempts_given_delivered(rng, n)
        ho = self.profile.handover
        if ho is not None:
            hit = rng.random(n) < ho.gap_s / ho.mean_interval_s
            delay = delay + np.where(hit, rng.uniform(0.0, ho.gap_s, n), 0.0)
        return np.asarray(delay.reshape(np.shape(distance_m)), dtype=np.float64)

    def channel_tables(self) -> ChannelTables:
        """This link as tables for the compiled fan-out (built once, then cached).

        The same model as :meth:`delivery_probability` and :meth:`sample_delay_s`: delivery probability at
        ``TABLE_KNOTS`` distances from 0 to ``max_range_m`` (constant for cellular links), the delay's
        inverse CDF, the retransmission attempt (a multiplier of the delay, given delivery) and the
        handover gap (an extra uniform delay with probability ``gap / mean interval``).
        """
        if self._tables is not None:
            return self._tables
        if math.isinf(self.max_range_m):
            step = 1.0
            pdr = np.asarray(self.profile.delivery.probability(np.zeros(2)), dtype=np.float64)
        else:
            step = self.max_range_m / (TABLE_KNOTS - 1)
            pdr = self.delivery_probability(np.arange(TABLE_KNOTS, dtype=np.float64) * step)
        quantiles, stepped = _delay_quantiles(self._delay)
        mult = np.ones(1)
        mult_cdf = np.ones(1)
        delivery = self.profile.delivery
        if isinstance(delivery, RetryDelivery) and delivery.max_retries > 0 and delivery.loss_probability > 0.0:
            k = np.arange(1, delivery.max_retries + 2)
            weights = delivery.loss_probability ** (k - 1) * (1.0 - delivery.loss_probability)
            mult = k.astype(np.float64)
            mult_cdf = np.cumsum(weights) / weights.sum()
        ho = self.profile.handover
        extra_p = 0.0 if ho is None else ho.gap_s / ho.mean_interval_s
        extra_max = 0.0 if ho is None else ho.gap_s
        self._tables = ChannelTables(step, pdr, quantiles, stepped, mult, mult_cdf, extra_p, extra_max)
        return self._tables


_PC5_DELAY = UniformDelay(0.4 * _MS, 2.4 * _MS, steps=5)
_PC5_DELAY_SOURCE = "delay: Eclipse MOSAIC SNS default singlehopDelay (SimpleRandomDelay 0.4-2.4 ms, 5 steps)"
_PDR_SOURCE = (
    "fit of p0 / (1 + exp((d - d50)/s)) to the msepulcre/C-V2X analytical PDR of LTE-V2X mode 4"
    " (WINNER+ B1, 10 Hz, 190 B, 20 dBm)"
)
_RANGE_ASSUMPTION = f"extrapolated beyond 500 m; max_range_m is where PDR < {NEGLIGIBLE_DELIVERY:g}"

_PROFILES: tuple[NetworkProfile, ...] = (
    NetworkProfile(
        name="pc5-sidelink-los",
        kind="sidelink",
        summary="C-V2X PC5 sidelink, line of sight, 100 veh/km",
        delivery=LogisticDelivery(p0=0.976, d50_m=451.0, scale_m=61.0, fitted_to_m=500.0),
        uplink_delay=_PC5_DELAY,
        source=f"{_PDR_SOURCE} at 100 veh/km; {_PC5_DELAY_SOURCE}",
        assumptions=(_RANGE_ASSUMPTION,),
    ),
    NetworkProfile(
        name="pc5-sidelink-dense",
        kind="sidelink",
        summary="C-V2X PC5 sidelink, dense traffic, 300 veh/km",
        delivery=LogisticDelivery(p0=0.997, d50_m=368.0, scale_m=98.0, fitted_to_m=500.0),
        uplink_delay=_PC5_DELAY,
        source=f"{_PDR_SOURCE} at 300 veh/km; {_PC5_DELAY_SOURCE}",
        assumptions=(_RANGE_ASSUMPTION,),
    ),
    NetworkProfile(
        name="pc5-sidelink-urban",
        kind="sidelink",
        summary="C-V2X PC5 sidelink in a street grid: TR 37.885 path loss with shadowing",
        delivery=ShadowedPathLossDelivery(
            tx_power_dbm=21.5,
            sensitivity_dbm=-99.0,
            freq_ghz=5.9,
            los=PathLoss(38.77, 16.7, 18.2, 3.0),
            nlos=PathLoss(36.85, 30.0, 18.9, 4.0),
            los_prob_a=1.05,
            los_prob_b_per_m=0.0114,
        ),
        uplink_delay=_PC5_DELAY,
        source=(
            "3GPP TR 37.885 V2V urban path loss and LOS probability (Table 6.2-1) as in the ns-3"
            " ThreeGppV2vUrban models; 21.5 dBm / -99 dBm as in the CARLA V2X sensor; " + _PC5_DELAY_SOURCE
        ),
        assumptions=(
            "LOS/NLOS mixed by the distance-only urban LOS probability instead of building geometry",
            "shadowing drawn independently per packet (no spatial correlation)",
            "carrier 5.9 GHz; distances below 3 m clamped to 3 m",
        ),
    ),
    NetworkProfile(
        name="5g-uu-edge-sa",
        kind="cellular",
        summary="5G standalone Uu to an edge server, one way",
        delivery=RetryDelivery(),
        uplink_delay=GammaDelay(4.0 * _MS, 7.0 * _MS),
        handover=HandoverGap(gap_s=0.120, mean_interval_s=30.0),
        source=(
            "5G SA campus measurements (min 4 / mean 7 ms one way, p95 ~11 ms) with MOSAIC GammaRandomDelay;"
            " 120 ms handover interruption from 5GCroCo"
        ),
        assumptions=(
            "no packet loss (radio retransmissions are inside the delay)",
            "one handover every 30 s per UE on average (about 500 m cells at 60 km/h)",
            "packets during a handover are buffered, not lost",
            "same distribution uplink and downlink",
        ),
    ),
    NetworkProfile(
        name="5g-uu-nsa-public",
        kind="cellular",
        summary="5G non-standalone public network, one way",
        delivery=RetryDelivery(),
        uplink_delay=GammaDelay(8.0 * _MS, 13.0 * _MS),
        downlink_delay=GammaDelay(5.0 * _MS, 8.0 * _MS),
        source="Rohde & Schwarz public 5G NSA network analysis (uplink min 8 / mean 13 ms, downlink 5 / 8 ms)",
        assumptions=("gamma shape from MOSAIC GammaRandomDelay", "no packet loss", "no handover gap modelled"),
    ),
    NetworkProfile(
        name="5g-mec-service",
        kind="cellular",
        summary="V2X application served from MEC: half the end-to-end application latency per hop",
        delivery=RetryDelivery(),
        # TARGET-X's 40-50 ms is the service latency of a V2X message between applications, vehicle -> MEC
        # -> vehicle (read as end to end, docs/IMPAIRMENTS.md): each hop (up, down) gets half of it
        uplink_delay=UniformDelay(20.0 * _MS, 25.0 * _MS),
        source="TARGET-X MEC V2X measurements (application-level latency 40-50 ms, end to end)",
        assumptions=(
            "the 40-50 ms read as end to end (vehicle -> MEC -> vehicle), split equally: 20-25 ms per hop",
            "uniform between 20 and 25 ms",
            "no packet loss",
            "same both directions",
        ),
    ),
    NetworkProfile(
        name="cell-degraded",
        kind="cellular",
        summary="congested or poor cell coverage: long random delay, heavy loss with retries",
        delivery=RetryDelivery(loss_probability=0.8, max_retries=2),
        uplink_delay=UniformDelay(50.0 * _MS, 200.0 * _MS),
        source=(
            "Eclipse MOSAIC Tiergarten scenario cell config (uplink 50-200 ms, lossProbability 0.8,"
            " maxRetries 2); MOSAIC delivers after attempts x delay"
        ),
        assumptions=("continuous uniform delay (MOSAIC uses steps)", "downlink same as uplink"),
    ),
    NetworkProfile(
        name="wired-backhaul",
        kind="wired",
        summary="RSU <-> cloud fibre backhaul",
        delivery=RetryDelivery(),
        uplink_delay=UniformDelay(1.0 * _MS, 2.0 * _MS),
        source="assumption (no measured source)",
        assumptions=("uniform 1-2 ms one way, no loss: a typical metro fibre backhaul",),
    ),
)

NETWORK_PROFILES: Mapping[str, NetworkProfile] = MappingProxyType({p.name: p for p in _PROFILES})


def network_profile(name: str) -> NetworkProfile:
    """The profile called ``name``; KeyError listing the valid names otherwise."""
    try:
        return NETWORK_PROFILES[name]
    except KeyError:
        valid = ", ".join(NETWORK_PROFILES)
        raise KeyError(f"unknown network profile {name!r}; valid: {valid}") from None


def network_link(name: str, direction: Direction = "uplink") -> NetworkLink:
    """The link model for profile ``name`` (see :class:`NetworkLink` for ``direction``)."""
    if direction not in ("uplink", "downlink"):
        raise ValueError(f"direction must be 'uplink' or 'downlink', not {direction!r}")
    return NetworkLink(network_profile(name), direction)
