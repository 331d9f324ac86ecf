"""Units: the one place that converts between SI values and the integer units of T/CSAE 53 on the wire.

Everything in the project that builds or reads a wire message converts through this module. It holds:

* the "unavailable" sentinels and ranges of the data elements (``*_UNAVAILABLE``, ``*_MIN``, ``*_MAX``);
* the units themselves (``*_UNIT_*``), for code that converts arrays of values already checked;
* scalar converters ``x_to_wire(si) -> int`` and ``x_from_wire(int) -> float | None`` (and ``x_from_wire_array``
  where an element has an "unavailable" value and arrays are converted);
* time stamps (DSecond, MinuteOfTheYear, TimeMark) from simulation time, a tick's time (``tick_time_s``) and
  whole microseconds (``us_of``, ``s_of``), as the wire's ``*_us`` fields carry times;
* heading conventions (compass degrees vs. ENU yaw);
* the accuracy conventions (``R95_PER_SIGMA``) and speed conversions (``kph_to_mps``).

Geodesy (:class:`~v2x.geodesy.LocalFrame`) is in ``v2x.geodesy``.

Conventions shared by all scalar converters
-------------------------------------------
* ``None`` means "unavailable" in both directions: ``x_to_wire(None)`` returns the element's
  unavailable sentinel and ``x_from_wire(sentinel)`` returns ``None``. A NaN input is treated like ``None``.
  (Exception: :func:`yaw_rate_to_wire`, whose data element has no unavailable value.)
* Rounding is to the nearest quantum (ties to even, as :func:`round`).
* An SI value outside the element's range (including +/-inf) is clamped to the largest (or smallest)
  valid wire value that is *not* the unavailable sentinel; clamping never produces "unavailable".
* ``x_from_wire`` raises :class:`ValueError` for an integer outside the element's range: a message that
  carries one is malformed and must not be silently reinterpreted.

Simulation time ``t_s`` is seconds (float) since the scenario epoch, a :class:`~datetime.datetime` in UTC.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Final, overload

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

__all__ = [
    "ACCEL_MAX",
    "ACCEL_MIN",
    "ACCEL_UNAVAILABLE",
    "ACCEL_UNIT_MPS2",
    "BRAKE_STATUS_MAX",
    "CONFIDENCE_MAX",
    "COUNTDOWN_MAX",
    "DISTANCE_CM_MAX",
    "ELEVATION_MAX",
    "ELEVATION_MIN",
    "ELEVATION_UNAVAILABLE",
    "EMERGENCY_RESPONSE_TYPE_MAX",
    "EXTERIOR_LIGHTS_BITS",
    "G0",
    "HEADING_CONFIDENCE_BOUNDS_DEG",
    "HEADING_UNAVAILABLE",
    "HEADING_UNIT_DEG",
    "LANE_HALF_WIDTH_M",
    "LATLON_UNIT_DEG",
    "LAT_MAX",
    "LAT_MIN",
    "LAT_UNAVAILABLE",
    "LIGHTBAR_IN_USE_MAX",
    "LON_MAX",
    "LON_MIN",
    "LON_UNAVAILABLE",
    "MINUTE_OF_YEAR_UNAVAILABLE",
    "MPS_PER_KPH",
    "MSG_CNT_MODULO",
    "ORIENTATION_UNAVAILABLE",
    "OVERALL_RADIUS_MAX",
    "POSITION_CONFIDENCE_BOUNDS_M",
    "R95_PER_SIGMA",
    "RADIUS_MAX",
    "SECMARK_MAX",
    "SECMARK_UNAVAILABLE",
    "SEMI_MAJOR_GE_12_7_M",
    "SEMI_MAJOR_UNAVAILABLE",
    "SEMI_MAJOR_UNIT_M",
    "SIREN_IN_USE_MAX",
    "SIZE_UNIT_M",
    "SPEED_CONFIDENCE_BOUNDS_MPS",
    "SPEED_MAX",
    "SPEED_UNAVAILABLE",
    "SPEED_UNIT_MPS",
    "STEERING_MAX",
    "STEERING_MIN",
    "STEERING_UNAVAILABLE",
    "TIMEMARK_UNAVAILABLE",
    "TIME_OFFSET_MAX",
    "VEHICLE_EVENT_FLAGS_BITS",
    "VEHICLE_HEIGHT_MAX",
    "VEHICLE_LENGTH_MAX",
    "VEHICLE_WIDTH_MAX",
    "VERT_ACCEL_MAX",
    "VERT_ACCEL_MIN",
    "VERT_ACCEL_UNAVAILABLE",
    "YAW_RATE_MAX",
    "YAW_RATE_MIN",
    "accel_from_wire",
    "accel_from_wire_array",
    "accel_to_wire",
    "accuracy_orientation_from_wire",
    "accuracy_orientation_to_wire",
    "accurate_enough",
    "accurate_enough_array",
    "bit_string_from_wire",
    "brake_status_from_wire",
    "check_sec_mark",
    "code_from_wire",
    "compass_deg_to_enu_yaw_rad",
    "confidence_from_wire",
    "confidence_to_wire",
    "countdown_from_wire",
    "countdown_to_wire",
    "distance_cm_from_wire",
    "distance_cm_to_wire",
    "elevation_from_wire",
    "elevation_to_wire",
    "emergency_use_from_wire",
    "enu_yaw_rad_to_compass_deg",
    "heading_confidence",
    "heading_confidence_bound_deg",
    "heading_from_wire",
    "heading_to_wire",
    "height_from_wire",
    "height_to_wire",
    "kph_to_mps",
    "lat_from_wire",
    "lat_to_wire",
    "lon_from_wire",
    "lon_to_wire",
    "minute_of_year",
    "mps_to_kph",
    "msg_cnt",
    "overall_radius_from_wire",
    "overall_radius_to_wire",
    "position_confidence",
    "position_confidence_bound_m",
    "radius_from_wire",
    "radius_to_wire",
    "s_of",
    "sec_mark",
    "semi_major_from_wire",
    "semi_major_from_wire_array",
    "semi_major_to_wire",
    "size_cm_from_wire",
    "size_cm_from_wire_array",
    "size_cm_to_wire",
    "speed_confidence",
    "speed_confidence_bound_mps",
    "speed_from_wire",
    "speed_to_wire",
    "start_of_minute_of_year",
    "steering_from_wire",
    "steering_to_wire",
    "tick_time_s",
    "time_from_sec_mark",
    "time_mark",
    "time_offset_from_wire",
    "time_offset_to_wire",
    "us_of",
    "vert_accel_from_wire",
    "vert_accel_to_wire",
    "wrap_angle_rad",
    "yaw_rate_from_wire",
    "yaw_rate_to_wire",
]

# --------------------------------------------------------------------------------------------------
# Ranges and "unavailable" sentinels (T/CSAE 53 DF/DE definitions)
# --------------------------------------------------------------------------------------------------

LAT_UNAVAILABLE: Final = 900_000_001
LAT_MIN: Final = -900_000_000
LAT_MAX: Final = 900_000_000
LON_UNAVAILABLE: Final = 1_800_000_001
LON_MIN: Final = -1_799_999_999
LON_MAX: Final = 1_800_000_000
LATLON_UNIT_DEG: Final = 1e-7

ELEVATION_UNAVAILABLE: Final = -4096
ELEVATION_MIN: Final = -4095
ELEVATION_MAX: Final = 61439

SPEED_UNAVAILABLE: Final = 8191
SPEED_MAX: Final = 8190
SPEED_UNIT_MPS: Final = 0.02

HEADING_UNAVAILABLE: Final = 28800
HEADING_UNIT_DEG: Final = 0.0125

ACCEL_UNAVAILABLE: Final = 2001
ACCEL_MIN: Final = -2000
ACCEL_MAX: Final = 2000
ACCEL_UNIT_MPS2: Final = 0.01

#: Standard gravity, the "g" of VerticalAcceleration.
G0: Final = 9.80665
VERT_ACCEL_UNAVAILABLE: Final = -127
VERT_ACCEL_MIN: Final = -126
VERT_ACCEL_MAX: Final = 127

YAW_RATE_MIN: Final = -32767
YAW_RATE_MAX: Final = 32767

STEERING_UNAVAILABLE: Final = 127
STEERING_MIN: Final = -126
STEERING_MAX: Final = 126

SEMI_MAJOR_UNAVAILABLE: Final = 255
SEMI_MAJOR_UNIT_M: Final = 0.05  # (and the semi-minor axis)
#: SemiMajorAxisAccuracy value meaning ">= 12.7 m".
SEMI_MAJOR_GE_12_7_M: Final = 254
#: SemiMajorAxisOrientation: 0..65534 in units of 360/65536 degree (0.0054932479), 65535 unavailable.
ORIENTATION_UNAVAILABLE: Final = 65535

#: VehicleWidth 0..1023 cm, VehicleLength 0..4095 cm, VehicleHeight 0..127 in 5 cm.
VEHICLE_WIDTH_MAX: Final = 1023
VEHICLE_LENGTH_MAX: Final = 4095
VEHICLE_HEIGHT_MAX: Final = 127
SIZE_UNIT_M: Final = 0.01  # VehicleWidth, VehicleLength

#: Radius (RSI event radius, ReferencePath pathRadius): 0..1024 in 0.1 m (102.4 m); no unavailable value.
RADIUS_MAX: Final = 1024

SECMARK_UNAVAILABLE: Final = 65535
SECMARK_MAX: Final = 59_999  # milliseconds within a minute; a receiver refuses the rest (time_from_sec_mark)
MINUTE_OF_YEAR_UNAVAILABLE: Final = 527040
TIMEMARK_UNAVAILABLE: Final = 36001
#: Largest relative TimeMark used for SPAT countdowns (0.1 s units, one hour).
COUNTDOWN_MAX: Final = 36000

MSG_CNT_MODULO: Final = 128

#: Bit strings of the BSM: VehicleEventFlags (13 bits, CSAE 53 / SAE J2735) and ExteriorLights (9 bits).
VEHICLE_EVENT_FLAGS_BITS: Final = 13
EXTERIOR_LIGHTS_BITS: Final = 9
#: BrakeSystemStatus brake pedal / ABS / traction / stability control status: 0..3 (0 unavailable).
BRAKE_STATUS_MAX: Final = 3
#: VehicleEmergencyExtensions (CSAE 53 / SAE J2735): ResponseType 0..6 (0 notInUseOrNotEquipped, 1 emergency,
#: 2 nonEmergency, 3 pursuit, 4 stationary, 5 slowMoving, 6 stopAndGoMovement), SirenInUse 0..3 (0 unavailable,
#: 1 notInUse, 2 inUse, 3 reserved), LightbarInUse 0..7 (0 unavailable, 1 notInUse, 2 inUse, 3..7 other lights).
EMERGENCY_RESPONSE_TYPE_MAX: Final = 6
SIREN_IN_USE_MAX: Final = 3
LIGHTBAR_IN_USE_MAX: Final = 7

#: Day-2 (T/CSAE 157) elements: Confidence 0..200 in 0.5 %; TimeOffset 1..65535 in 10 ms (0: not given);
#: a PSM's overall radius 1..200 in 0.1 m (0: unknown; a testbed reading, 20 m covers a group).
CONFIDENCE_MAX: Final = 200
TIME_OFFSET_MAX: Final = 65535
OVERALL_RADIUS_MAX: Final = 200
DISTANCE_CM_MAX: Final = 65535  # a CLPMM gap distance, 1 cm
#: SpeedConfidence / HeadingConfidence code -> bound (code 0 = unavailable), as in T/CSAE 53.
SPEED_CONFIDENCE_BOUNDS_MPS: Final[tuple[float, ...]] = (100.0, 10.0, 5.0, 1.0, 0.1, 0.05, 0.01)
HEADING_CONFIDENCE_BOUNDS_DEG: Final[tuple[float, ...]] = (10.0, 5.0, 1.0, 0.1, 0.05, 0.01, 0.0125)

R95_PER_SIGMA: Final = 2.448  # 95 % radius of a circular Gaussian in units of its per-axis sigma

#: PositionConfidence code -> 95 % bound in metres (code 0 = unavailable). Same ladder for elevation.
POSITION_CONFIDENCE_BOUNDS_M: Final[tuple[float, ...]] = (
    500.0, 200.0, 100.0, 50.0, 20.0, 10.0, 5.0, 2.0, 1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01,
)  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Generic helpers
# --------------------------------------------------------------------------------------------------


def _quantise(value: float, unit: float, lo: int, hi: int) -> int:
    """``round(value / unit)`` clamped to ``[lo, hi]``; safe for +/-inf."""
    x = value / unit
    if x >= hi:
        return hi
    if x <= lo:
        return lo
    return min(hi, max(lo, round(x)))


def _check(raw: int, lo: int, hi: int, name: str) -> None:
    if not lo <= raw <= hi:
        raise ValueError(f"{name} wire value {raw} outside {lo}..{hi}")


def _scalar_to_wire(value: float | None, unit: float, lo: int, hi: int, unavailable: int) -> int:
    if value is None or math.isnan(value):
        return unavailable
    return _quantise(value, unit, lo, hi)


def _scalar_from_wire(raw: int, unit: float, lo: int, hi: int, unavailable: int, *, name: str) -> float | None:
    if raw == unavailable:
        return None
    _check(raw, lo, hi, name)
    return raw * unit


# --------------------------------------------------------------------------------------------------
# Position
# --------------------------------------------------------------------------------------------------


def lat_to_wire(deg: float | None) -> int:
    """Latitude in degrees -> 1e-7 degree. Clamped to -90..90 degrees (-900000000..900000000)."""
    return _scalar_to_wire(deg, LATLON_UNIT_DEG, LAT_MIN, LAT_MAX, LAT_UNAVAILABLE)


def lat_from_wire(raw: int) -> float | None:
    """1e-7 degree -> latitude in degrees; ``None`` for 900000001."""
    return _scalar_from_wire(raw, LATLON_UNIT_DEG, LAT_MIN, LAT_MAX, LAT_UNAVAILABLE, name="latitude")


def _wrap_lon_deg(deg: float) -> float:
    """Longitude into (-180, 180]."""
    wrapped = math.fmod(deg, 360.0)
    if wrapped > 180.0:
        wrapped -= 360.0
    elif wrapped <= -180.0:
        wrapped += 360.0
    return wrapped


def lon_to_wire(deg: float | None) -> int:
    """Longitude in degrees -> 1e-7 degree.

    Longitude is periodic, so instead of being clamped it is wrapped into (-180, 180] degrees
    (wire -1799999999..1800000000; a value that rounds to -1800000000 becomes 1800000000, the same
    meridian). +/-inf cannot be wrapped and is treated as unavailable.
    """
    if deg is None or not math.isfinite(deg):
        return LON_UNAVAILABLE
    raw = round(_wrap_lon_deg(deg) / LATLON_UNIT_DEG)
    if raw < LON_MIN:
        raw += 3_600_000_000
    return min(raw, LON_MAX)


def lon_from_wire(raw: int) -> float | None:
    """1e-7 degree -> longitude in degrees; ``None`` for 1800000001."""
    return _scalar_from_wire(raw, LATLON_UNIT_DEG, LON_MIN, LON_MAX, LON_UNAVAILABLE, name="longitude")


def elevation_to_wire(m: float | None) -> int:
    """Elevation in metres -> 0.1 m, clamped to -409.5..6143.9 m (-4095..61439; -4096 is unavailable)."""
    return _scalar_to_wire(m, 0.1, ELEVATION_MIN, ELEVATION_MAX, ELEVATION_UNAVAILABLE)


def elevation_from_wire(raw: int) -> float | None:
    """0.1 m -> metres; ``None`` for -4096."""
    return _scalar_from_wire(raw, 0.1, ELEVATION_MIN, ELEVATION_MAX, ELEVATION_UNAVAILABLE, name="elevation")


# --------------------------------------------------------------------------------------------------
# Motion
# --------------------------------------------------------------------------------------------------


def speed_to_wire(mps: float | None) -> int:
    """Speed in m/s -> 0.02 m/s, clamped to 0..163.8 m/s (0..8190; 8191 is unavailable).

    Negative speeds clamp to 0 (Speed is a magnitude; direction of travel is TransmissionState).
    """
    return _scalar_to_wire(mps, SPEED_UNIT_MPS, 0, SPEED_MAX, SPEED_UNAVAILABLE)


def speed_from_wire(raw: int) -> float | None:
    """0.02 m/s -> m/s; ``None`` for 8191."""
    return _scalar_from_wire(raw, SPEED_UNIT_MPS, 0, SPEED_MAX, SPEED_UNAVAILABLE, name="speed")


def heading_to_wire(deg_cw_from_north: float | None) -> int:
    """Compass heading in degrees (clockwise from north) -> 0.0125 degree, 0..28799.

    Any finite input is first normalised into [0, 360); a value that rounds up to 360 degrees wraps to 0,
    so 28800 (unavailable) is never produced from a number. +/-inf is treated as unavailable.
    """
    if deg_cw_from_north is None or not math.isfinite(deg_cw_from_north):
        return HEADING_UNAVAILABLE
    return round((deg_cw_from_north % 360.0) / HEADING_UNIT_DEG) % HEADING_UNAVAILABLE


def heading_from_wire(raw: int) -> float | None:
    """0.0125 degree -> compass degrees in [0, 360); ``None`` for 28800."""
    return _scalar_from_wire(raw, HEADING_UNIT_DEG, 0, HEADING_UNAVAILABLE - 1, HEADING_UNAVAILABLE, name="heading")


def accel_to_wire(mps2: float | None) -> int:
    """Longitudinal / lateral acceleration in m/s^2 -> 0.01 m/s^2, clamped to +/-20 m/s^2 (+/-2000)."""
    return _scalar_to_wire(mps2, ACCEL_UNIT_MPS2, ACCEL_MIN, ACCEL_MAX, ACCEL_UNAVAILABLE)


def accel_from_wire(raw: int) -> float | None:
    """0.01 m/s^2 -> m/s^2; ``None`` for 2001."""
    return _scalar_from_wire(raw, ACCEL_UNIT_MPS2, ACCEL_MIN, ACCEL_MAX, ACCEL_UNAVAILABLE, name="acceleration")


def accel_from_wire_array(raw: IntArray, unavailable: float) -> FloatArray:
    """:func:`accel_from_wire` of each of ``raw`` (in range: not checked), ``unavailable`` where it says 2001."""
    return np.where(raw == ACCEL_UNAVAILABLE, unavailable, raw * ACCEL_UNIT_MPS2)


def vert_accel_to_wire(mps2: float | None) -> int:
    """Vertical acceleration in m/s^2 -> 0.02 g (g = 9.80665), clamped to -126..127 (-127 is unavailable)."""
    return _scalar_to_wire(mps2, 0.02 * G0, VERT_ACCEL_MIN, VERT_ACCEL_MAX, VERT_ACCEL_UNAVAILABLE)


def vert_accel_from_wire(raw: int) -> float | None:
    """0.02 g -> m/s^2; ``None`` for -127."""
    return _scalar_from_wire(
        raw, 0.02 * G0, VERT_ACCEL_MIN, VERT_ACCEL_MAX, VERT_ACCEL_UNAVAILABLE, name="vertical acceleration"
    )


def yaw_rate_to_wire(deg_s: float) -> int:
    """Yaw rate in degree/s (positive = clockwise seen from above, as in J2735/CSAE) -> 0.01 degree/s.

    Clamped to +/-327.67 degree/s. The YawRate element has no "unavailable" value, so ``None`` is not
    accepted; NaN raises :class:`ValueError`.
    """
    if math.isnan(deg_s):
        raise ValueError("yaw rate has no unavailable value on the wire")
    return _quantise(deg_s, 0.01, YAW_RATE_MIN, YAW_RATE_MAX)


def yaw_rate_from_wire(raw: int) -> float:
    """0.01 degree/s -> degree/s."""
    _check(raw, YAW_RATE_MIN, YAW_RATE_MAX, "yaw rate")
    return raw * 0.01


def steering_to_wire(deg: float | None) -> int:
    """Steering wheel angle in degrees -> 1.5 degree, clamped to +/-189 degrees (+/-126; 127 unavailable)."""
    return _scalar_to_wire(deg, 1.5, STEERING_MIN, STEERING_MAX, STEERING_UNAVAILABLE)


def steering_from_wire(raw: int) -> float | None:
    """1.5 degree -> degrees; ``None`` for 127."""
    return _scalar_from_wire(raw, 1.5, STEERING_MIN, STEERING_MAX, STEERING_UNAVAILABLE, name="steering angle")


# --------------------------------------------------------------------------------------------------
# Accuracy and confidence
# --------------------------------------------------------------------------------------------------


def semi_major_to_wire(m: float | None) -> int:
    """Semi-major (or semi-minor) axis of the accuracy ellipse in metres -> 0.05 m, rounded up.

    An accuracy must never claim better than the truth, so the axis is rounded up to the next 0.05 m
    (0.01275 m, RTK fixed, is 1: 0.05 m, not 0: a perfect fix); a value within 1e-9 of a quantum (a multiple of
    0.05 m that float division put a hair above it) is that quantum. 0..253 are quanta; anything above 12.65 m
    is coded 254 (">= 12.7 m"); 255 is unavailable. Negative values clamp to 0.
    """
    if m is None or math.isnan(m):
        return SEMI_MAJOR_UNAVAILABLE
    x = m / SEMI_MAJOR_UNIT_M
    if x >= SEMI_MAJOR_GE_12_7_M:
        return SEMI_MAJOR_GE_12_7_M
    if x <= 0:  # (-inf too)
        return 0
    return math.ceil(x - 1e-9)


def semi_major_from_wire(raw: int) -> float | None:
    """0.05 m -> metres; 254 gives 12.7 (a lower bound), 255 gives ``None``."""
    return _scalar_from_wire(
        raw, SEMI_MAJOR_UNIT_M, 0, SEMI_MAJOR_GE_12_7_M, SEMI_MAJOR_UNAVAILABLE, name="semi-major axis"
    )


def semi_major_from_wire_array(raw: IntArray) -> FloatArray:
    """:func:`semi_major_from_wire` of each of ``raw`` (in range: not checked), NaN where it says 255."""
    return np.where(raw == SEMI_MAJOR_UNAVAILABLE, np.nan, raw * SEMI_MAJOR_UNIT_M)


_ORIENTATION_UNIT_DEG: Final = 360.0 / 65536.0


def accuracy_orientation_to_wire(deg_cw_from_north: float | None) -> int:
    """Orientation of the semi-major axis (degrees clockwise from north) -> 360/65536 degree, 0..65534.

    Normalised into [0, 360); a value that would round to 65535 (unavailable) or above wraps to 0.
    """
    if deg_cw_from_north is None or not math.isfinite(deg_cw_from_north):
        return ORIENTATION_UNAVAILABLE
    raw = round((deg_cw_from_north % 360.0) / _ORIENTATION_UNIT_DEG)
    return 0 if raw >= ORIENTATION_UNAVAILABLE else raw


def accuracy_orientation_from_wire(raw: int) -> float | None:
    """360/65536 degree -> degrees; ``None`` for 65535."""
    return _scalar_from_wire(
        raw, _ORIENTATION_UNIT_DEG, 0, ORIENTATION_UNAVAILABLE - 1, ORIENTATION_UNAVAILABLE, name="orientation"
    )


def position_confidence(r95_m: float | None) -> int:
    """95 % horizontal (or vertical) error bound in metres -> PositionConfidence code.

    Returns the code of the smallest bound that still contains ``r95_m`` (so the reported confidence is
    never better than the truth): 15 (a1cm) for r95 <= 0.01 m, ... 1 (a500m) for r95 <= 500 m, and
    0 (unavailable) for ``None``, NaN or r95 > 500 m. Negative values raise :class:`ValueError`.
    """
    if r95_m is None or math.isnan(r95_m):
        return 0
    if r95_m < 0:
        raise ValueError(f"negative error bound {r95_m}")
    for code in range(len(POSITION_CONFIDENCE_BOUNDS_M), 0, -1):
        if r95_m <= POSITION_CONFIDENCE_BOUNDS_M[code - 1]:
            return code
    return 0


def position_confidence_bound_m(code: int) -> float | None:
    """PositionConfidence code -> its 95 % bound in metres; ``None`` for 0 (unavailable)."""
    _check(code, 0, len(POSITION_CONFIDENCE_BOUNDS_M), "position confidence")
    return None if code == 0 else POSITION_CONFIDENCE_BOUNDS_M[code - 1]


# --------------------------------------------------------------------------------------------------
# Size
# --------------------------------------------------------------------------------------------------


def size_cm_to_wire(m: float | None, max_cm: int = VEHICLE_LENGTH_MAX) -> int:
    """Width / length in metres -> 1 cm, clamped to 1..``max_cm``.

    Use ``max_cm=VEHICLE_WIDTH_MAX`` (1023) for VehicleWidth; the default 4095 is VehicleLength. The
    standard has no "unavailable" size; 0 (the proto3 default, never a real size) stands for unknown,
    so ``None`` -> 0 and a tiny positive size is coded 1 cm.
    """
    if m is None or math.isnan(m):
        return 0
    return _quantise(m, SIZE_UNIT_M, 1, max_cm)


def size_cm_from_wire(raw: int) -> float | None:
    """1 cm -> metres; ``None`` for 0 (unknown)."""
    _check(raw, 0, VEHICLE_LENGTH_MAX, "size")
    return None if raw == 0 else raw * SIZE_UNIT_M


def size_cm_from_wire_array(raw: IntArray, unknown: float) -> FloatArray:
    """:func:`size_cm_from_wire` of each of ``raw`` (in range: not checked), ``unknown`` where it says 0."""
    return np.where(raw == 0, unknown, raw * SIZE_UNIT_M)


def height_to_wire(m: float | None) -> int:
    """Vehicle height in metres -> 5 cm, clamped to 1..127 (6.35 m); ``None`` -> 0 (unknown)."""
    if m is None or math.isnan(m):
        return 0
    return _quantise(m, 0.05, 1, VEHICLE_HEIGHT_MAX)


def height_from_wire(raw: int) -> float | None:
    """5 cm -> metres; ``None`` for 0 (unknown)."""
    _check(raw, 0, VEHICLE_HEIGHT_MAX, "height")
    return None if raw == 0 else raw * 0.05


def radius_to_wire(m: float | None) -> int:
    """A radius in metres (RSI eventRadius, ReferencePath pathRadius) -> 0.1 m, clamped to 0..1024; the
    element has no "unavailable" value: ``None`` -> 0 (not given)."""
    if m is None or math.isnan(m):
        return 0
    return _quantise(m, 0.1, 0, RADIUS_MAX)


def radius_from_wire(raw: int) -> float:
    """0.1 m -> metres (0 means not given; the caller decides what that implies)."""
    _check(raw, 0, RADIUS_MAX, "radius")
    return raw * 0.1


def bit_string_from_wire(raw: int, bits: int, name: str) -> int:
    """A BIT STRING of ``bits`` bits carried as an integer (bit n = named bit n); a set bit beyond the
    string's size raises ValueError."""
    _check(raw, 0, (1 << bits) - 1, name)
    return raw


def brake_status_from_wire(raw: int, name: str) -> int:
    """A BrakeSystemStatus element (brake pedal, ABS, traction, stability control): 0..3."""
    _check(raw, 0, BRAKE_STATUS_MAX, name)
    return raw


def emergency_use_from_wire(raw: int, max_raw: int, name: str) -> int:
    """An element of VehicleEmergencyExtensions (responseType, sirenUse, lightsUse) checked against its
    range, ``0..max_raw`` (EMERGENCY_RESPONSE_TYPE_MAX, SIREN_IN_USE_MAX, LIGHTBAR_IN_USE_MAX)."""
    _check(raw, 0, max_raw, name)
    return raw


def code_from_wire(raw: int, max_raw: int, name: str) -> int:
    """An enumerated element (a code table's value, an id) checked against its range ``0..max_raw``."""
    _check(raw, 0, max_raw, name)
    return raw


# --------------------------------------------------------------------------------------------------
# Day-2 elements (T/CSAE 157): confidences, time offsets, a personal device's radius
# --------------------------------------------------------------------------------------------------


def confidence_to_wire(fraction: float | None) -> int:
    """A probability 0..1 -> Confidence in 0.5 % (0..200), clamped; ``None`` -> 0."""
    if fraction is None or math.isnan(fraction):
        return 0
    return _quantise(fraction, 0.005, 0, CONFIDENCE_MAX)


def confidence_from_wire(raw: int) -> float:
    """Confidence 0.5 % -> a probability 0..1."""
    _check(raw, 0, CONFIDENCE_MAX, "confidence")
    return raw * 0.005


def _ladder_code(bound: float | None, ladder: tuple[float, ...]) -> int:
    """The code of the smallest bound of ``ladder`` (descending, code = index + 1) that still contains
    ``bound``; 0 (unavailable) for None, NaN or a bound beyond the ladder's first."""
    if bound is None or math.isnan(bound):
        return 0
    for code in range(len(ladder), 0, -1):
        if abs(bound) <= ladder[code - 1]:
            return code
    return 0


def speed_confidence(bound_mps: float | None) -> int:
    """A 95 % speed error bound (m/s) -> SpeedConfidence code (0 unavailable, 1 100 m/s ... 7 0.01 m/s)."""
    return _ladder_code(bound_mps, SPEED_CONFIDENCE_BOUNDS_MPS)


def speed_confidence_bound_mps(code: int) -> float | None:
    """SpeedConfidence code -> its bound in m/s; ``None`` for 0 (unavailable)."""
    _check(code, 0, len(SPEED_CONFIDENCE_BOUNDS_MPS), "speed confidence")
    return None if code == 0 else SPEED_CONFIDENCE_BOUNDS_MPS[code - 1]


def heading_confidence(bound_deg: float | None) -> int:
    """A 95 % heading error bound (degrees) -> HeadingConfidence code (0 unavailable, 1 10 deg ... 7
    0.0125 deg)."""
    return _ladder_code(bound_deg, HEADING_CONFIDENCE_BOUNDS_DEG)


def heading_confidence_bound_deg(code: int) -> float | None:
    """HeadingConfidence code -> its bound in degrees; ``None`` for 0 (unavailable)."""
    _check(code, 0, len(HEADING_CONFIDENCE_BOUNDS_DEG), "heading confidence")
    return None if code == 0 else HEADING_CONFIDENCE_BOUNDS_DEG[code - 1]


def time_offset_to_wire(seconds: float | None) -> int:
    """A time after a message's secMark, in seconds -> TimeOffset in 10 ms, clamped to 1..65535; ``None``
    -> 0 (not given)."""
    if seconds is None or math.isnan(seconds):
        return 0
    return _quantise(seconds, 0.01, 1, TIME_OFFSET_MAX)


def time_offset_from_wire(raw: int) -> float | None:
    """TimeOffset 10 ms -> seconds; ``None`` for 0 (not given)."""
    _check(raw, 0, TIME_OFFSET_MAX, "time offset")
    return None if raw == 0 else raw * 0.01


def distance_cm_to_wire(m: float | None) -> int:
    """A distance in metres (a platoon gap) -> 1 cm, clamped to 1..65535 (655.35 m); ``None`` -> 0 (not
    applicable)."""
    if m is None or math.isnan(m):
        return 0
    return _quantise(m, 0.01, 1, DISTANCE_CM_MAX)


def distance_cm_from_wire(raw: int) -> float | None:
    """1 cm -> metres; ``None`` for 0 (not applicable)."""
    _check(raw, 0, DISTANCE_CM_MAX, "distance")
    return None if raw == 0 else raw * 0.01


def overall_radius_to_wire(m: float | None) -> int:
    """A personal device user's footprint radius in metres -> 0.1 m, clamped to 1..200; ``None`` -> 0."""
    if m is None or math.isnan(m):
        return 0
    return _quantise(m, 0.1, 1, OVERALL_RADIUS_MAX)


def overall_radius_from_wire(raw: int) -> float | None:
    """0.1 m -> metres; ``None`` for 0 (unknown)."""
    _check(raw, 0, OVERALL_RADIUS_MAX, "overall radius")
    return None if raw == 0 else raw * 0.1


# --------------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------------

_UNIX_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def tick_time_s(tick: int, tick_s: float) -> float:
    """The simulated time of ``tick`` in s, rounded to 1 ns (so that 3 x 0.1 is 0.3): the time of a tick
    everywhere (the simulation, the clocks, the world's checks of what is sent)."""
    return round(tick * tick_s, 9)


def us_of(t_s: float) -> int:
    """Seconds -> whole microseconds (nearest, ties to even), as the wire's ``*_us`` fields carry times."""
    return round(t_s * 1e6)


def s_of(us: int) -> float:
    """Microseconds (a wire ``*_us`` field) -> seconds."""
    return us / 1e6


def _utc(epoch: datetime) -> datetime:
    """A naive epoch is taken to be UTC."""
    return epoch.replace(tzinfo=UTC) if epoch.tzinfo is None else epoch.astimezone(UTC)


def _unix_us(t_s: float, epoch: datetime) -> int:
    """Microseconds since 1970-01-01 UTC of simulation time ``t_s`` (rounded to 1 us, so float noise
    such as 0.1 * 3 does not lose a millisecond)."""
    return (_utc(epoch) - _UNIX_EPOCH) // timedelta(microseconds=1) + us_of(t_s)


def sec_mark(t_s: float, epoch: datetime) -> int:
    """DSecond: milliseconds within the current UTC minute, 0..59999 (65535 = unavailable, never
    returned; leap seconds are not modelled)."""
    return (_unix_us(t_s, epoch) // 1000) % 60_000


def check_sec_mark(mark: int) -> None:
    """``ValueError`` for a DSecond outside 0..59999 (60000..65534 reserved, 65535 unavailable: a message
    without its time cannot be placed in time; it was read modulo 60000, 65535 as 5.535 s into the minute)."""
    _check(mark, 0, SECMARK_MAX, "DSecond")


def time_from_sec_mark(mark: int, now_s: float, epoch: datetime, ahead_s: float = 0.0) -> float:
    """Generation time of a message stamped ``mark`` (DSecond), taken as the latest such time not after now, or
    the time after now if that is less than ``ahead_s`` ahead (a stamp in the future: ``v2x.sim.perception``).
    Raises ``ValueError`` for a mark outside 0..59999 (``check_sec_mark``)."""
    check_sec_mark(mark)
    now_mark = sec_mark(now_s, epoch)
    age_ms = (now_mark - mark) % 60000
    if age_ms > 60000 - ahead_s * 1000.0:
        age_ms -= 60000
    return now_s - age_ms / 1000.0


def minute_of_year(t_s: float, epoch: datetime) -> int:
    """MinuteOfTheYear: whole minutes since 1 January 00:00 UTC of the current year, 0..527039."""
    now = _UNIX_EPOCH + timedelta(microseconds=_unix_us(t_s, epoch))
    return (now - datetime(now.year, 1, 1, tzinfo=UTC)) // timedelta(minutes=1)


def start_of_minute_of_year(moy: int, now_s: float, epoch: datetime) -> float | None:
    """Simulation time at which MinuteOfTheYear ``moy`` begins, taking the occurrence nearest to ``now_s``
    (within half a year either way); ``None`` for 527040 (unavailable). Raises ``ValueError`` outside
    0..527040."""
    if moy == MINUTE_OF_YEAR_UNAVAILABLE:
        return None
    _check(moy, 0, MINUTE_OF_YEAR_UNAVAILABLE - 1, "MinuteOfTheYear")
    minute_start = now_s - sec_mark(now_s, epoch) / 1000.0 - (_unix_us(now_s, epoch) % 1000) / 1e6
    delta = moy - minute_of_year(now_s, epoch)
    half = MINUTE_OF_YEAR_UNAVAILABLE // 2
    delta = (delta + half) % MINUTE_OF_YEAR_UNAVAILABLE - half
    return minute_start + 60.0 * delta


def time_mark(t_s: float, epoch: datetime) -> int:
    """TimeMark: tenths of a second within the current UTC hour, 0..35999 (36001 = unavailable)."""
    return (_unix_us(t_s, epoch) // 100_000) % 36_000


def countdown_to_wire(seconds: float | None) -> int:
    """A relative time (SPAT TimeCountingDown: time until a phase starts / ends) -> 0.1 s, clamped to
    0..36000 (one hour); ``None`` -> 36001."""
    return _scalar_to_wire(seconds, 0.1, 0, COUNTDOWN_MAX, TIMEMARK_UNAVAILABLE)


def countdown_from_wire(raw: int) -> float | None:
    """0.1 s -> seconds; ``None`` for 36001."""
    return _scalar_from_wire(raw, 0.1, 0, COUNTDOWN_MAX, TIMEMARK_UNAVAILABLE, name="countdown")


def msg_cnt(n: int) -> int:
    """Message counter: ``n`` wrapped into 0..127."""
    return n % MSG_CNT_MODULO


# --------------------------------------------------------------------------------------------------
# Heading conventions
# --------------------------------------------------------------------------------------------------


@overload
def compass_deg_to_enu_yaw_rad(deg: float) -> float: ...
@overload
def compass_deg_to_enu_yaw_rad(deg: FloatArray) -> FloatArray: ...
def compass_deg_to_enu_yaw_rad(deg: float | FloatArray) -> float | FloatArray:
    """Compass heading (degrees clockwise from north) -> ENU yaw (radians counter-clockwise from east),
    in [-pi, pi)."""
    yaw = np.radians(90.0 - np.asarray(deg, dtype=np.float64))
    wrapped: FloatArray = (yaw + np.pi) % (2.0 * np.pi) - np.pi
    return float(wrapped) if np.ndim(deg) == 0 else wrapped


@overload
def enu_yaw_rad_to_compass_deg(rad: float) -> float: ...
@overload
def enu_yaw_rad_to_compass_deg(rad: FloatArray) -> FloatArray: ...
def enu_yaw_rad_to_compass_deg(rad: float | FloatArray) -> float | FloatArray:
    """ENU yaw (radians counter-clockwise from east) -> compass heading in degrees [0, 360)."""
    deg: FloatArray = (90.0 - np.degrees(np.asarray(rad, dtype=np.float64))) % 360.0
    deg = np.where(deg >= 360.0, 0.0, deg)  # -tiny % 360 can round to 360.0
    return float(deg) if np.ndim(rad) == 0 else deg


def wrap_angle_rad(rad: float) -> float:
    """An angle in radians wrapped into [-pi, pi): ``(rad + pi) % 2pi - pi``."""
    return (rad + math.pi) % (2 * math.pi) - math.pi


# --------------------------------------------------------------------------------------------------
# Speed and accuracy conventions
# --------------------------------------------------------------------------------------------------

#: Half a 3.5 m lane: what counts as in a lane (an actor's centre within it of the lane's centre line), for
#: the radar's lane ahead, the platoon's cut-in and ``stays_on_route``'s default bound (one figure, one name).
LANE_HALF_WIDTH_M: Final = 1.75

#: The km/h -> m/s factor, 1 / 3.6. ``x * MPS_PER_KPH`` is not always bit-equal to ``kph_to_mps(x)``
#: (``x / 3.6``): code that has always multiplied keeps multiplying.
MPS_PER_KPH: Final = 1 / 3.6


def kph_to_mps(kph: float) -> float:
    """km/h -> m/s, ``kph / 3.6``."""
    return kph / 3.6


def mps_to_kph(mps: float) -> float:
    """m/s -> km/h, ``mps * 3.6``."""
    return mps * 3.6


def accurate_enough(sigma_m: float | None, required_r95_m: float) -> bool:
    """The position-accuracy gate of the applications: is a position with per-axis 1-sigma ``sigma_m``
    (None or inf: unknown) good enough for an app that needs its 95 % horizontal radius within
    ``required_r95_m`` (the T/CSAE 53 Day-1 table's accuracy, read as a 95 % radius)?"""
    return sigma_m is not None and math.isfinite(sigma_m) and R95_PER_SIGMA * sigma_m <= required_r95_m


def accurate_enough_array(sigma_m: NDArray[np.float64], required_r95_m: float) -> NDArray[np.bool_]:
    """``accurate_enough`` of each 1-sigma in ``sigma_m`` (NaN or inf: unknown), with the same operations: the
    gate of the apps that judge many parties at once (FCW's, on board and in a fleet)."""
    ok: NDArray[np.bool_] = np.isfinite(sigma_m) & (R95_PER_SIGMA * sigma_m <= required_r95_m)
    return ok
