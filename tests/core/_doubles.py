"""Small LinkModel test doubles (the real profiles live in v2x.impair)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from v2x.core import ChannelTables


class FixedLink:
    """Every receiver in range gets the packet after a fixed delay."""

    def __init__(self, max_range_m: float = 300.0, delay_s: float = 0.01, name: str = "fixed") -> None:
        self.name = name
        self.max_range_m = max_range_m
        self.delay_s = delay_s

    def delivery_probability(self, distance_m: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.ones_like(distance_m)

    def sample_delay_s(self, rng: np.random.Generator, distance_m: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.full_like(distance_m, self.delay_s)


class LossyLink:
    """Delivery probability falls linearly with distance; exponential delay (uses the rng)."""

    def __init__(self, max_range_m: float = 300.0, mean_delay_s: float = 0.005) -> None:
        self.name = "lossy"
        self.max_range_m = max_range_m
        self.mean_delay_s = mean_delay_s

    def delivery_probability(self, distance_m: NDArray[np.float64]) -> NDArray[np.float64]:
        if math.isinf(self.max_range_m):
            return np.full_like(distance_m, 0.9)
        return np.clip(1.0 - distance_m / self.max_range_m, 0.0, 1.0)

    def sample_delay_s(self, rng: np.random.Generator, distance_m: NDArray[np.float64]) -> NDArray[np.float64]:
        return rng.exponential(self.mean_delay_s, size=distance_m.shape)


class TableLink:
    """A link described by tables (the compiled fan-out path), with matching callables.

    Delivery probability falls linearly from 1 at 0 m to 0 at ``max_range_m`` (two knots, exact);
    delay is ``base * multiplier + extra`` from the given tables.
    """

    def __init__(
        self,
        max_range_m: float = 300.0,
        delay_quantiles_s: tuple[float, ...] = (0.001, 0.009),
        stepped: bool = False,
        multipliers: tuple[float, ...] = (1.0,),
        multiplier_cdf: tuple[float, ...] = (1.0,),
        extra_p: float = 0.0,
        extra_max_s: float = 0.0,
        constant_pdr: float | None = None,
    ) -> None:
        self.name = "table"
        self.max_range_m = max_range_m
        if constant_pdr is not None or math.isinf(max_range_m):
            pdr = np.full(2, 0.9 if constant_pdr is None else constant_pdr)
            step = 1.0
        else:
            pdr = np.array([1.0, 0.0])
            step = max_range_m
        self.tables = ChannelTables(
            step,
            pdr,
            np.asarray(delay_quantiles_s, dtype=np.float64),
            stepped,
            np.asarray(multipliers, dtype=np.float64),
            np.asarray(multiplier_cdf, dtype=np.float64),
            extra_p,
            extra_max_s,
        )

    def channel_tables(self) -> ChannelTables:
        return self.tables

    def delivery_probability(self, distance_m: NDArray[np.float64]) -> NDArray[np.float64]:
        t = self.tables
        return np.interp(distance_m, np.arange(len(t.pdr)) * t.pdr_step_m, t.pdr)

    def sample_delay_s(self, rng: np.random.Generator, distance_m: NDArray[np.float64]) -> NDArray[np.float64]:
        raise NotImplementedError("the compiled path draws the delays itself")
