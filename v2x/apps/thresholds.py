"""The defaults table for application thresholds: one source of truth, overridable per scenario file.

Sources: ../shared/brief/SCENARIOS.md ("Thresholds used by open implementations").
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

DEFAULTS: Mapping[str, float] = MappingProxyType(
    {
        # FCW: same lane ahead, TTC 3 s (Wanji OBU stack, VDS/src/GPSInterface/Common.c).
        "fcw_ttc_s": 3.0,
        # ICW: TTC 5 s to the conflict point (Wanji OBU stack; public ICW write-up).
        "icw_ttc_s": 5.0,
        # ICW: both reach the conflict point within this many seconds of each other (SUMO SSM PET 2 s).
        "icw_max_pet_s": 2.0,
        # How long a raised warning stays valid before it may be raised again for the same pair.
        "warning_validity_s": 3.0,
        # Position accuracy an app needs (T/CSAE 53 Day-1 table, read as the 95 % horizontal radius): a
        # party whose reported accuracy is worse is left out, so noise alone cannot raise a warning.
        "fcw_required_accuracy_m": 1.5,
        "icw_required_accuracy_m": 5.0,
        # RLVW (v2x/apps/rlvw.py). Time to the stop line at which a host that would arrive on red is warned:
        # our default, chosen so that a driver at 60 km/h who reacts in 1.5 s and brakes at 4 m/s^2 still
        # stops before the line (16.7 m/s x 4 s = 67 m >= 25 m + 35 m).
        "rlvw_tti_s": 4.0,
        # RLVW range (T/CSAE 53 Day-1 table: 150 m communication range for RLVW).
        "rlvw_max_distance_m": 150.0,
        # RLVW position accuracy requirement (T/CSAE 53 Day-1 table: 1.5 m).
        "rlvw_required_accuracy_m": 1.5,
        # Map matching: how far outside the lane strip the host's position may be, m.
        "rlvw_match_margin_m": 0.5,
        # GLOSA (v2x/apps/glosa.py). Range: T/CSAE 53 Day-1 table (150 m); minimum advised speed and speed-up
        # factor: SUMO's glosa device defaults (device.glosa.min-speed 5 m/s, max-speedfactor 1.1); margin:
        # ours, aim to reach the line this long after the switch to green; accuracy: T/CSAE 53 (1.5 m).
        "glosa_max_distance_m": 150.0,
        "glosa_min_speed_mps": 5.0,
        "glosa_max_speed_factor": 1.1,
        "glosa_margin_s": 1.0,
        "glosa_required_accuracy_m": 1.5,
        # VRUCW (v2x/apps/vrucw.py). TTC 2.14 s, the minimum speed (one of the two faster than 2.8 m/s, else
        # no check) and the VRU footprints (circles of radius 0.5 m pedestrian / 1.0 m non-motor; we use the
        # square around the circle): open-v2x/cerebrum scenario_algo/algo_lib/collision_warning.py
        # (ttc_threshold, _min_speed_for_checking, PedestrianDefaultRadius, NonMotorDefaultRadius).
        # Range and accuracy: T/CSAE 53 Day-1 table (VRUCW: 150 m, 5 m).
        "vrucw_ttc_s": 2.14,
        "vrucw_min_speed_mps": 2.8,
        "vrucw_pedestrian_radius_m": 0.5,
        "vrucw_non_motor_radius_m": 1.0,
        "vrucw_max_distance_m": 150.0,
        "vrucw_required_accuracy_m": 5.0,
        # HLW (v2x/apps/hlw.py). No open implementation we know gives HLW figures (SCENARIOS.md lists none;
        # Wanji's 50 m is for in-vehicle signage), so the warning time is ours: a driver who reacts in 1.5 s
        # and brakes at 4 m/s^2 from 100 km/h (27.8 m/s) needs 1.5 + 27.8 / (2 x 4) = 5.0 s to stop at the
        # hazard; 6 s leaves 1 s of margin. Range and accuracy: T/CSAE 53 Day-1 table (HLW: 300 m, 5 m).
        # Map matching margin outside the reference path's half-width: ours, as for RLVW.
        "hlw_tti_s": 6.0,
        "hlw_max_distance_m": 300.0,
        "hlw_required_accuracy_m": 5.0,
        "hlw_match_margin_m": 0.5,
        # V2V event warnings (v2x/apps/vehicle_events.py): EBW from the BSM event hardBraking, AVW from
        # hazardLights / disabledVehicle, CLW from ABS / traction / stability control activated. Range and
        # position accuracy: T/CSAE 53 Day-1 table (EBW 150 m and 1.5 m, AVW 150 m and 5 m, CLW 300 m and 5 m).
        # Time for the host to reach where the sender is now (a car braking hard, stalled or out of control
        # may stop there): ours, for EBW and AVW the HLW figure and reasoning (6 s; see hlw_tti_s); for CLW
        # 7 s, the same reasoning on a slippery road (a car losing control ahead says the host will find
        # little grip too): braking at 3 m/s^2 (wet snow, friction ~0.3) from 100 km/h after 1.5 s takes
        # 1.5 + 27.8 / (2 x 3) = 6.1 s, plus the margin rounded to 7 s. Lateral offset from the
        # host's heading line: EBW is a same-lane warning, half a 3.5 m lane (the usual Chinese urban lane
        # width); AVW and CLW also warn about a car in the next lane (1.5 lanes, 5.25 m: a stalled car on
        # the lane line or a car skidding across it is in the way); ours, for straight roads (no path history
        # is sent). AVW: hazard lights alone mark a vehicle as abnormal only when it is stopped or crawling, at
        # most 15 km/h (4.17 m/s; ours: the slowest level of open-v2x/cerebrum congestion_warning.py, 0-14
        # km/h); disabledVehicle always does. Same direction: headings within 45 degrees, as for HLW and RLVW.
        "ebw_tti_s": 6.0,
        "ebw_max_distance_m": 150.0,
        "ebw_required_accuracy_m": 1.5,
        "ebw_max_lateral_m": 1.75,
        "avw_tti_s": 6.0,
        "avw_max_distance_m": 150.0,
        "avw_required_accuracy_m": 5.0,
        "avw_max_lateral_m": 5.25,
        "avw_max_speed_mps": 4.17,
        "clw_tti_s": 7.0,
        "clw_max_distance_m": 300.0,
        "clw_required_accuracy_m": 5.0,
        "clw_max_lateral_m": 5.25,
        "v2v_event_max_heading_deg": 45.0,
        # EVW (v2x/apps/vehicle_events.py) from an emergency vehicle's lights / siren in use (BSM emergency
        # extension). Range 300 m and accuracy 5 m: T/CSAE 53 Day-1 table. The host is warned about an
        # emergency vehicle BEHIND it in the same direction, in its lane or the next (5.25 m, as AVW / CLW:
        # the emergency vehicle will pass through the host's lane or beside it), when the emergency vehicle
        # would reach where the host is now within 8 s (ours): the host has to get out of the way, and to do
        # so a driver needs to notice (1-1.5 s), look for a place and slow down or pull over: from 60 km/h at
        # 3 m/s^2, 16.7 / 3 = 5.6 s; 1.5 + 5.6 = 7.1 s, rounded up to 8 s. At 100 km/h that is 222 m, inside
        # the 300 m range. One ahead (driving away, or the host following it), oncoming or beside the host
        # is not warned about: a stopped one at an incident is AVW / HLW's business.
        "evw_tti_s": 8.0,
        "evw_max_distance_m": 300.0,
        "evw_required_accuracy_m": 5.0,
        "evw_max_lateral_m": 5.25,
        # IVS and SLW (v2x/apps/road_signs.py) on RSI road traffic signs. IVS shows a sign within 50 m of it
        # (Wanji OBU stack, VDS/src/GPSInterface/Common.c). SLW: ours. Look-ahead 150 m: a driver at 80 km/h
        # who reacts in 1 s and tracks the limit as the driver model does (v2x/apps/driver.py: 2 m/s^2 at
        # most, 2 s time constant) is down to about 41 km/h at the sign (scenarios/slw.yaml), inside the
        # 5 km/h tolerance; within the T/CSAE 53 SLW range, 300 m. Tolerance 5 km/h over the limit: ours
        # (a driver cannot hold a speedometer needle closer; nobody is warned for a needle's width). Accuracy: T/CSAE 53
        # (IVS and SLW: 5 m). Map matching margin as for HLW. A sign not heard for 3 s (three periods of the
        # 1 Hz sign rate) is forgotten (events, at 10 Hz, after max_age_s).
        "ivs_max_distance_m": 50.0,
        "ivs_required_accuracy_m": 5.0,
        "ivs_match_margin_m": 0.5,
        "slw_max_distance_m": 150.0,
        "slw_tolerance_kph": 5.0,
        "slw_required_accuracy_m": 5.0,
        "slw_match_margin_m": 0.5,
        "rsi_sign_max_age_s": 3.0,
        # Conflict prediction horizon, s.
        "horizon_s": 6.0,
        # Remote state older than this is dropped from the on-board / platform tables, s.
        "max_age_s": 1.0,
    }
)


def resolve(overrides: Mapping[str, float]) -> dict[str, float]:
    """Defaults with the scenario's overrides applied; unknown keys raise KeyError."""
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise KeyError(", ".join(unknown))
    return {**DEFAULTS, **overrides}
