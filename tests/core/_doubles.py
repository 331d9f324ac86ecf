"""Small LinkModel test doubles (the real profiles live in v2x.impair)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray


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
