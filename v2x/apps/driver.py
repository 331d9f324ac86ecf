"""Driver model: a warning is noticed after a reaction time, then the driver brakes to a stop."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Driver:
    reaction_s: float
    brake_mps2: float
    brake_at_s: float | None = None
    cause: str = ""

    def on_warning(self, t_s: float, cause: str) -> None:
        """Take note of a warning raised at ``t_s``; the first one decides when braking starts."""
        if self.brake_at_s is None:
            self.brake_at_s = t_s + self.reaction_s
            self.cause = cause

    def command(self, t_s: float) -> float | None:
        """The driver's deceleration command (negative m/s^2) once braking has started, else None."""
        if self.brake_at_s is not None and t_s >= self.brake_at_s - 1e-9:
            return -self.brake_mps2
        return None
