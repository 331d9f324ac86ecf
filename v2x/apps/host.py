"""The own vehicle and the road users around it as the applications see them (local frame, SI)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from v2x.wire import day1_pb2
from v2x.wire.bsm import RemoteState

# The weight of each new BSM in a receiver's estimate of a sender's vertical rate (an exponential filter at
# 10 Hz: 90 % of a change within 1 s; the BSM's 0.1 m elevation steps make each raw rate uncertain by about
# 0.4 m/s, the filter by about 0.14 m/s). Ours.
VERTICAL_RATE_GAIN = 0.2


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
    # Height above the origin (the road surface under it), None if unknown, and its rate (m/s, up positive):
    # conflict detection keeps road users on different levels where they would meet apart (v2x.core
    # VERTICAL_SEPARATION_M); an unknown height keeps nobody apart.
    z_m: float | None = None
    vz_mps: float = 0.0
    # What kind of road user it is (RSM ParticipantType: a BSM sender's from its vehicle class, an RSM object's as
    # perceived): ICW is between motor vehicles only (T/CSAE 53), a pedestrian's or cyclist's conflicts are VRUCW's.
    ptc_type: int = day1_pb2.PARTICIPANT_MOTOR

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
            remote.z_rate_mps,
            remote.ptc_type,
        )


def with_vertical_rate(new: RemoteState, old: RemoteState | None) -> RemoteState:
    """``new`` (a sender's latest BSM) with the vertical rate a receiver estimates from the heights of the BSMs
    it heard from the same sender (``old``: the one before), smoothed by ``VERTICAL_RATE_GAIN``; 0 at the
    first one, and kept when ``new`` is no later than ``old`` (a copy relayed again)."""
    if new.z_m is None or old is None or old.z_m is None:
        return new
    dt = new.t_s - old.t_s
    if dt <= 0.0:
        return replace(new, z_rate_mps=old.z_rate_mps) if old.z_rate_mps else new
    raw = (new.z_m - old.z_m) / dt
    if raw == 0.0 and old.z_rate_mps == 0.0:
        return new  # level (every flat road): nothing to estimate
    return replace(new, z_rate_mps=old.z_rate_mps + VERTICAL_RATE_GAIN * (raw - old.z_rate_mps))


__all__ = ["VERTICAL_RATE_GAIN", "Host", "Participant", "with_vertical_rate"]
