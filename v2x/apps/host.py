"""The own vehicle and the road users around it as the applications see them (local frame, SI)."""

from __future__ import annotations

from dataclasses import dataclass

from v2x.wire.bsm import RemoteState


@dataclass(frozen=True)
class Host:
    """The own vehicle as an on-board app sees it: where it believes it is, how it moves."""

    x: float  # footprint centre, local metres
    y: float
    heading_rad: float
    speed_mps: float
    accel_mps2: float  # longitudinal
    length_m: float
    sigma_m: float  # per-axis 1-sigma of the position the host believes (inf if unknown)
    width_m: float = 2.0
    # The turn signal the driver has on ("left", "right", "" off): the lane change or overtake he announces
    # (BSW/LCW, DNPW read it).
    turn_signal: str = ""


@dataclass(frozen=True)
class Participant:
    """A road user as an application sees it at time t (local frame, SI): the input of conflict detection."""

    key: str
    x: float
    y: float
    vx: float
    vy: float
    accel_mps2: float
    heading_rad: float
    length_m: float
    width_m: float
    sigma_m: float
    # Height above the origin (the road surface under it), None if unknown: conflict detection keeps road
    # users on different levels apart (v2x.core VERTICAL_SEPARATION_M); unknown keeps nobody apart.
    z_m: float | None = None

    @staticmethod
    def from_remote(key: str, remote: RemoteState, t_s: float) -> Participant:
        x, y, vx, vy = remote.extrapolated(t_s)
        return Participant(
            key,
            x,
            y,
            vx,
            vy,
            remote.accel_mps2,
            remote.heading_rad,
            remote.length_m,
            remote.width_m,
            remote.sigma_major_m if remote.sigma_major_m is not None else float("inf"),
            remote.z_m,
        )


__all__ = ["Host", "Participant"]
