"""In-vehicle signage (IVS) and speed limit warning (SLW), T/CSAE 53 Day-1 V2I apps on RSI road traffic
signs (RTSData, 1 Hz), on board. Sans-I/O: the host's own state and the signs heard in RSI in; sign
displays and warnings out.

The logic, stated so that it can be checked (thresholds and their sources: v2x/apps/thresholds.py):

1. **Active.** A sign counts only inside its time window (``RoadSign.active``) and while the RSU keeps
   announcing it (the vehicle forgets a sign not heard for ``rsi_sign_max_age_s``: three 1 Hz periods).
2. **On the host's way.** As for HLW (v2x/apps/rsi.py): with reference paths the host must be on one of
   them (half-width + the app's match margin), heading within 45 degrees of the path; the distance is
   along the path from the front bumper to the sign's projection, negative once the front bumper has
   passed it. Without reference paths the straight-line distance counts if the sign lies within 45
   degrees of the heading.
3. **IVS** shows a sign when it is ahead, ``0 <= distance <= ivs_max_distance_m`` (50 m, the Wanji OBU
   stack). The vehicle shows each sign once (it keeps the keys it has shown); a host past the sign, going
   the other way, or farther away is shown nothing.
4. **SLW** reads a sign with a speed limit (a speed-limit sign's figure, ``speed_limit_mps``). The limit
   applies from the sign on, along its reference path. The host is warned when it is over the limit by
   more than the tolerance, ``speed > limit + slw_tolerance_kph``, and either approaches the sign
   (``0 <= distance <= slw_max_distance_m``) or is inside the limited stretch (past the sign and still on
   its reference path; a sign without paths only counts ahead). A host at or under limit + tolerance is
   not warned.
5. Positioning: each app stands down when the host's 95 % horizontal error exceeds its
   ``*_required_accuracy_m`` (5 m in the T/CSAE 53 table), as HLW does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from v2x.apps.rlvw import Host
from v2x.apps.rsi import item_distance
from v2x.units import R95_PER_SIGMA
from v2x.wire.rsi import RoadSign

KPH = 1 / 3.6


@dataclass(frozen=True)
class SignDisplay:
    key: str  # the sign as the app names it: {rsi id hex}/rts{rtsId}
    sign: RoadSign
    distance_m: float  # front bumper to the sign, along the reference path
    time_to_sign_s: float  # at the current speed (0 standing)


@dataclass(frozen=True)
class SpeedLimitWarning:
    key: str
    sign: RoadSign
    distance_m: float  # front bumper to the sign (negative: inside the limited stretch)
    limit_mps: float
    excess_mps: float  # host speed - limit


def time_to_sign(distance_m: float, speed_mps: float) -> float:
    """Time to reach a sign ``distance_m`` ahead at the current speed; 0 when standing or past it."""
    return distance_m / speed_mps if distance_m > 0 and speed_mps > 0 else 0.0


def _accurate(host: Host, required_m: float) -> bool:
    return math.isfinite(host.sigma_m) and R95_PER_SIGMA * host.sigma_m <= required_m


def in_vehicle_signage(
    host: Host, signs: Mapping[str, RoadSign], t_s: float, thresholds: Mapping[str, float]
) -> list[SignDisplay]:
    """Rules 1-3 and 5: every sign heard (keyed as the app names them) to show now."""
    if not _accurate(host, thresholds["ivs_required_accuracy_m"]):
        return []
    out = []
    for key, sign in sorted(signs.items()):
        if not sign.active(t_s):
            continue
        d = item_distance(host, sign.x, sign.y, sign.paths, thresholds["ivs_match_margin_m"])
        if d is None or not 0.0 <= d <= thresholds["ivs_max_distance_m"]:
            continue
        out.append(SignDisplay(key, sign, d, time_to_sign(d, host.speed_mps)))
    return out


def speed_limit_warnings(
    host: Host, signs: Mapping[str, RoadSign], t_s: float, thresholds: Mapping[str, float]
) -> list[SpeedLimitWarning]:
    """Rules 1, 2, 4 and 5: a warning per speed-limit sign the host is breaking or about to break."""
    if not _accurate(host, thresholds["slw_required_accuracy_m"]):
        return []
    tolerance = thresholds["slw_tolerance_kph"] * KPH
    out = []
    for key, sign in sorted(signs.items()):
        limit = sign.speed_limit_mps
        if limit is None or not sign.active(t_s) or host.speed_mps <= limit + tolerance:
            continue
        d = item_distance(host, sign.x, sign.y, sign.paths, thresholds["slw_match_margin_m"])
        if d is None or d > thresholds["slw_max_distance_m"] or (d < 0 and not sign.paths):
            continue
        out.append(SpeedLimitWarning(key, sign, d, limit, host.speed_mps - limit))
    return out


__all__ = ["SignDisplay", "SpeedLimitWarning", "in_vehicle_signage", "speed_limit_warnings", "time_to_sign"]
