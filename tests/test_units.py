"""Tests for v2x.units: wire integer <-> SI conversions, time stamps, headings and the local frame."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import NamedTuple

import numpy as np
import pytest

from v2x import geodesy
from v2x import units as u
from v2x.geodesy import LocalFrame

# --------------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------------


def test_unavailable_constants() -> None:
    assert u.LAT_UNAVAILABLE == 900000001
    assert u.LON_UNAVAILABLE == 1800000001
    assert u.ELEVATION_UNAVAILABLE == -4096
    assert u.SPEED_UNAVAILABLE == 8191
    assert u.HEADING_UNAVAILABLE == 28800
    assert u.ACCEL_UNAVAILABLE == 2001
    assert u.VERT_ACCEL_UNAVAILABLE == -127
    assert u.STEERING_UNAVAILABLE == 127
    assert u.TIMEMARK_UNAVAILABLE == 36001
    assert u.SEMI_MAJOR_UNAVAILABLE == 255
    assert u.MSG_CNT_MODULO == 128


# --------------------------------------------------------------------------------------------------
# Scalar converters: one table drives round trip, limits, clamping and "unavailable"
# --------------------------------------------------------------------------------------------------

ToWire = Callable[[float | None], int]
FromWire = Callable[[int], float | None]


class Scalar(NamedTuple):
    name: str
    to_w: ToWire
    from_w: FromWire
    q: float  # SI value of one wire quantum
    lo: int  # lowest valid wire value
    hi: int  # highest valid wire value that is not "unavailable"
    na: int  # the unavailable sentinel


SCALARS = [
    Scalar("lat", u.lat_to_wire, u.lat_from_wire, 1e-7, -900000000, 900000000, 900000001),
    Scalar("elevation", u.elevation_to_wire, u.elevation_from_wire, 0.1, -4095, 61439, -4096),
    Scalar("speed", u.speed_to_wire, u.speed_from_wire, 0.02, 0, 8190, 8191),
    Scalar("accel", u.accel_to_wire, u.accel_from_wire, 0.01, -2000, 2000, 2001),
    Scalar("vert_accel", u.vert_accel_to_wire, u.vert_accel_from_wire, 0.02 * 9.80665, -126, 127, -127),
    Scalar("steering", u.steering_to_wire, u.steering_from_wire, 1.5, -126, 126, 127),
    Scalar("semi_major", u.semi_major_to_wire, u.semi_major_from_wire, 0.05, 0, 254, 255),
    Scalar("countdown", u.countdown_to_wire, u.countdown_from_wire, 0.1, 0, 36000, 36001),
]
SCALAR_IDS = [s.name for s in SCALARS]


@pytest.mark.parametrize("sc", SCALARS, ids=SCALAR_IDS)
def test_unavailable_round_trip(sc: Scalar) -> None:
    assert sc.to_w(None) == sc.na
    assert sc.to_w(math.nan) == sc.na
    assert sc.from_w(sc.na) is None


@pytest.mark.parametrize("sc", SCALARS, ids=SCALAR_IDS)
def test_limits_round_trip(sc: Scalar) -> None:
    for raw in (sc.lo, sc.lo + 1, 0 if sc.lo <= 0 <= sc.hi else sc.lo, sc.hi - 1, sc.hi):
        si = sc.from_w(raw)
        assert si is not None
        assert si == pytest.approx(raw * sc.q)
        assert sc.to_w(si) == raw


@pytest.mark.parametrize("sc", SCALARS, ids=SCALAR_IDS)
def test_clamping_never_yields_unavailable(sc: Scalar) -> None:
    assert sc.to_w(sc.hi * sc.q * 10 + 1.0) == sc.hi
    assert sc.to_w(math.inf) == sc.hi
    assert sc.to_w(sc.lo * sc.q * 10 - 1.0) == sc.lo
    assert sc.to_w(-math.inf) == sc.lo
    assert sc.to_w((sc.hi + 0.6) * sc.q) == sc.hi
    assert sc.to_w((sc.lo - 0.6) * sc.q) == sc.lo


@pytest.mark.parametrize("sc", [s for s in SCALARS if s.name != "semi_major"], ids=lambda s: s.name)
def test_quantisation_error_at_most_half_a_quantum(sc: Scalar) -> None:
    for si in np.linspace(sc.lo * sc.q, sc.hi * sc.q, 997):
        back = sc.from_w(sc.to_w(float(si)))
        assert back is not None
        assert abs(back - si) <= sc.q / 2 * (1 + 1e-9)


@pytest.mark.parametrize("sc", SCALARS, ids=SCALAR_IDS)
def test_from_wire_rejects_out_of_range(sc: Scalar) -> None:
    for raw in (sc.lo - 1, sc.hi + 1):
        if raw == sc.na:
            continue
        with pytest.raises(ValueError, match=r"outside"):
            sc.from_w(raw)
    with pytest.raises(ValueError):
        sc.from_w(sc.hi + 2 if sc.hi + 2 != sc.na else sc.hi + 3)


def test_known_values() -> None:
    assert u.lat_to_wire(29.6) == 296000000
    assert u.lon_to_wire(106.5) == 1065000000
    assert u.elevation_to_wire(250.04) == 2500
    assert u.speed_to_wire(13.89) == 694  # 50 km/h
    assert u.accel_to_wire(-3.4) == -340
    assert u.vert_accel_to_wire(9.80665) == 50
    assert u.steering_to_wire(-45.0) == -30
    assert u.semi_major_to_wire(1.5) == 30
    assert u.countdown_to_wire(12.34) == 123


def test_speed_negative_clamps_to_zero() -> None:
    assert u.speed_to_wire(-5.0) == 0


def test_semi_major_ge_12_7() -> None:
    assert u.semi_major_to_wire(12.69) == 254
    assert u.semi_major_to_wire(12.7) == 254
    assert u.semi_major_to_wire(500.0) == 254
    assert u.semi_major_from_wire(254) == pytest.approx(12.7)
    assert u.semi_major_to_wire(12.6) == 252


def test_semi_major_never_claims_better_than_the_truth() -> None:
    """RTK fixed (sigma 0.01275 m) was coded 0 (rounded to the nearest 0.05 m): a BSM claiming a perfect fix (an
    outside review). An accuracy is rounded up: never below the truth, less than a quantum above it."""
    assert u.semi_major_to_wire(0.01275) == 1
    assert u.semi_major_to_wire(0.0) == 0  # a perfect fix is the one 0
    assert u.semi_major_to_wire(0.051) == 2
    for quantum in range(254):  # a multiple of 0.05 m is that quantum, not the next (float division)
        assert u.semi_major_to_wire(quantum * 0.05) == quantum
    for si in np.linspace(0.0, 12.65, 9973):
        back = u.semi_major_from_wire(u.semi_major_to_wire(float(si)))
        assert back is not None and si - 1e-9 <= back < si + 0.05
    assert u.semi_major_to_wire(12.66) == 254  # above 12.65 m: ">= 12.7 m"


def test_elevation_limits_in_metres() -> None:
    assert u.elevation_to_wire(-409.5) == -4095
    assert u.elevation_to_wire(-409.6) == -4095  # would be -4096 = unavailable: clamped
    assert u.elevation_to_wire(6143.9) == 61439
    assert u.elevation_to_wire(9000.0) == 61439


def test_vert_accel_clamp_low_is_not_unavailable() -> None:
    assert u.vert_accel_to_wire(-3 * 9.80665) == -126
    assert u.vert_accel_to_wire(3 * 9.80665) == 127


# --------------------------------------------------------------------------------------------------
# Longitude wraps
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deg", "raw"),
    [
        (0.0, 0),
        (106.5, 1065000000),
        (180.0, 1800000000),
        (-180.0, 1800000000),
        (-179.9999999, -1799999999),
        (190.0, -1700000000),
        (-190.0, 1700000000),
        (540.0, 1800000000),
        (359.9999999, -1),
    ],
)
def test_lon_wraps_into_range(deg: float, raw: int) -> None:
    assert u.lon_to_wire(deg) == raw


def test_lon_unavailable_and_limits() -> None:
    assert u.lon_to_wire(None) == u.LON_UNAVAILABLE
    assert u.lon_to_wire(math.nan) == u.LON_UNAVAILABLE
    assert u.lon_to_wire(math.inf) == u.LON_UNAVAILABLE
    assert u.lon_from_wire(u.LON_UNAVAILABLE) is None
    for raw in (u.LON_MIN, u.LON_MAX, 0, 1065000000):
        assert u.lon_to_wire(u.lon_from_wire(raw)) == raw
    with pytest.raises(ValueError):
        u.lon_from_wire(-1800000000)
    with pytest.raises(ValueError):
        u.lon_from_wire(1800000002)


def test_lat_clamps() -> None:
    assert u.lat_to_wire(90.5) == 900000000
    assert u.lat_to_wire(-91.0) == -900000000


# --------------------------------------------------------------------------------------------------
# Heading
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deg", "raw"),
    [
        (0.0, 0),
        (90.0, 7200),
        (359.9875, 28799),
        (359.995, 0),  # rounds up to 360 -> wraps, never 28800
        (360.0, 0),
        (-0.0125, 28799),
        (-90.0, 21600),
        (720.5, 40),
    ],
)
def test_heading_wraps(deg: float, raw: int) -> None:
    assert u.heading_to_wire(deg) == raw


def test_heading_round_trip_and_unavailable() -> None:
    for raw in (0, 1, 14400, 28799):
        assert u.heading_to_wire(u.heading_from_wire(raw)) == raw
    assert u.heading_to_wire(None) == 28800
    assert u.heading_to_wire(math.inf) == 28800
    assert u.heading_from_wire(28800) is None
    with pytest.raises(ValueError):
        u.heading_from_wire(28801)
    with pytest.raises(ValueError):
        u.heading_from_wire(-1)


def test_accuracy_orientation() -> None:
    assert u.accuracy_orientation_to_wire(None) == 65535
    assert u.accuracy_orientation_from_wire(65535) is None
    assert u.accuracy_orientation_to_wire(90.0) == 16384
    assert u.accuracy_orientation_to_wire(359.999) == 0
    assert u.accuracy_orientation_to_wire(-90.0) == 49152
    assert u.accuracy_orientation_from_wire(16384) == pytest.approx(90.0)


# --------------------------------------------------------------------------------------------------
# Yaw rate (no unavailable value), sizes
# --------------------------------------------------------------------------------------------------


def test_yaw_rate() -> None:
    assert u.yaw_rate_to_wire(12.34) == 1234
    assert u.yaw_rate_to_wire(-0.016) == -2
    assert u.yaw_rate_to_wire(-1000.0) == -32767
    assert u.yaw_rate_to_wire(math.inf) == 32767
    for raw in (-32767, 0, 32767):
        assert u.yaw_rate_to_wire(u.yaw_rate_from_wire(raw)) == raw
    with pytest.raises(ValueError):
        u.yaw_rate_to_wire(math.nan)
    with pytest.raises(ValueError):
        u.yaw_rate_from_wire(32768)


def test_sizes() -> None:
    assert u.size_cm_to_wire(1.8) == 180
    assert u.size_cm_to_wire(4.5) == 450
    assert u.size_cm_to_wire(None) == 0
    assert u.size_cm_from_wire(0) is None
    assert u.size_cm_to_wire(0.001) == 1
    assert u.size_cm_to_wire(50.0) == 4095
    assert u.size_cm_to_wire(12.0, max_cm=u.VEHICLE_WIDTH_MAX) == 1023
    assert u.size_cm_from_wire(4095) == pytest.approx(40.95)
    assert u.height_to_wire(1.6) == 32
    assert u.height_to_wire(10.0) == 127
    assert u.height_to_wire(None) == 0
    assert u.height_from_wire(0) is None
    assert u.height_from_wire(127) == pytest.approx(6.35)
    with pytest.raises(ValueError):
        u.height_from_wire(128)
    with pytest.raises(ValueError):
        u.size_cm_from_wire(4096)


# --------------------------------------------------------------------------------------------------
# Position confidence
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("r95", "code"),
    [
        (None, 0),
        (math.nan, 0),
        (1000.0, 0),
        (500.0, 1),
        (200.1, 1),
        (200.0, 2),
        (1.5, 8),
        (1.0, 9),
        (0.3, 10),
        (0.05, 13),
        (0.011, 14),
        (0.01, 15),
        (0.0, 15),
    ],
)
def test_position_confidence_ladder(r95: float | None, code: int) -> None:
    assert u.position_confidence(r95) == code


def test_position_confidence_bounds() -> None:
    assert u.position_confidence_bound_m(0) is None
    for code in range(1, 16):
        bound = u.position_confidence_bound_m(code)
        assert bound is not None
        assert u.position_confidence(bound) == code
        assert u.position_confidence(bound * 1.01) == code - 1
    assert u.position_confidence_bound_m(1) == 500.0
    assert u.position_confidence_bound_m(15) == 0.01
    with pytest.raises(ValueError):
        u.position_confidence_bound_m(16)
    with pytest.raises(ValueError):
        u.position_confidence(-1.0)


# --------------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------------

EPOCH = datetime(2024, 3, 1, 8, 0, 0, tzinfo=UTC)


def test_array_conversions_are_the_scalar_ones() -> None:
    """The vectorised decoders (a fleet hears thousands of BSMs a tick) give, for every value on the wire, what the
    scalar ones give, the "unavailable"/"unknown" value replaced as the caller asks."""
    accel = np.arange(u.ACCEL_MIN, u.ACCEL_UNAVAILABLE + 1, dtype=np.int64)
    assert u.accel_from_wire_array(accel, 0.0).tolist() == [u.accel_from_wire(int(r)) or 0.0 for r in accel]
    size = np.arange(0, u.VEHICLE_LENGTH_MAX + 1, dtype=np.int64)
    assert u.size_cm_from_wire_array(size, 5.0).tolist() == [u.size_cm_from_wire(int(r)) or 5.0 for r in size]
    semi = np.arange(0, u.SEMI_MAJOR_UNAVAILABLE + 1, dtype=np.int64)
    got = u.semi_major_from_wire_array(semi)
    want = [u.semi_major_from_wire(int(r)) for r in semi]
    assert np.isnan(got[-1]) and want[-1] is None and got[:-1].tolist() == want[:-1]
    speed = np.arange(0, u.SPEED_MAX + 1, dtype=np.float64)
    assert (speed * u.SPEED_UNIT_MPS).tolist() == [u.speed_from_wire(int(r)) for r in speed]


def test_tick_times() -> None:
    """A tick's time in s is rounded to 1 ns, in us to the nearest us; for a tick of whole microseconds that is
    the nearest us of ``tick * tick_s`` itself (what the world's checks computed before ``tick_time_s``)."""
    assert u.tick_time_s(3, 0.1) == 0.3 and 3 * 0.1 != 0.3
    assert u.us_of(0.3) == 300_000 and u.s_of(300_000) == 0.3
    for tick_s in (0.1, 0.05, 0.02):
        ticks = range(0, 200_000, 7)
        assert [u.us_of(u.tick_time_s(k, tick_s)) for k in ticks] == [round(k * tick_s * 1e6) for k in ticks]


def test_no_wire_unit_is_written_outside_units() -> None:
    """The wire's units (0.02 m/s, 0.01 m/s^2, 0.01 m, 0.05 m, 0.0125 degree) are this module's constants and
    converters: a product with one of them written out elsewhere in the package is a second definition."""
    import re
    from pathlib import Path

    literal = re.compile(r"\*\s*0\.0(?:1|2|5|125)\b|\b0\.0(?:1|2|5|125)\s*\*")
    package = Path(u.__file__).parent
    found = [
        f"{path.relative_to(package)}:{n}: {line.strip()}"
        for path in sorted(package.rglob("*.py"))
        if path.name != "units.py" and not path.name.endswith("_pb2.py")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if literal.search(line)
    ]
    assert not found


def test_msg_cnt_wraps() -> None:
    assert [u.msg_cnt(n) for n in (0, 1, 127, 128, 129, 255, 256, -1)] == [0, 1, 127, 0, 1, 127, 0, 127]


def test_sec_mark() -> None:
    assert u.sec_mark(0.0, EPOCH) == 0
    assert u.sec_mark(1.2345, EPOCH) == 1234
    assert u.sec_mark(59.9999, EPOCH) == 59999
    assert u.sec_mark(60.0, EPOCH) == 0
    assert u.sec_mark(61.5, EPOCH) == 1500
    assert u.sec_mark(0.1 * 3, EPOCH) == 300  # 0.30000000000000004 s
    assert u.sec_mark(0.7 - 0.4, EPOCH) == 300  # 0.29999999999999993 s
    assert u.sec_mark(-0.5, EPOCH) == 59500
    epoch_mid_minute = datetime(2024, 3, 1, 8, 0, 42, 250000, tzinfo=UTC)
    assert u.sec_mark(0.5, epoch_mid_minute) == 42750


def test_epoch_naive_and_other_timezone() -> None:
    naive = EPOCH.replace(tzinfo=None)
    plus8 = EPOCH.astimezone(timezone(timedelta(hours=8)))  # Beijing time, same instant
    for t in (0.0, 12.3, 3599.9, 86400.0 * 100):
        expected = (u.sec_mark(t, EPOCH), u.minute_of_year(t, EPOCH), u.time_mark(t, EPOCH))
        assert (u.sec_mark(t, naive), u.minute_of_year(t, naive), u.time_mark(t, naive)) == expected
        assert (u.sec_mark(t, plus8), u.minute_of_year(t, plus8), u.time_mark(t, plus8)) == expected


def test_minute_of_year() -> None:
    jan1 = datetime(2024, 1, 1, tzinfo=UTC)
    assert u.minute_of_year(0.0, jan1) == 0
    assert u.minute_of_year(59.999, jan1) == 0
    assert u.minute_of_year(60.0, jan1) == 1
    # 2024 is a leap year: the last minute is 366 * 1440 - 1 = 527039.
    assert u.minute_of_year(0.0, datetime(2024, 12, 31, 23, 59, 30, tzinfo=UTC)) == 527039
    assert u.minute_of_year(30.0, datetime(2024, 12, 31, 23, 59, 30, tzinfo=UTC)) == 0
    assert u.minute_of_year(0.0, datetime(2023, 12, 31, 23, 59, tzinfo=UTC)) == 525599
    assert u.minute_of_year(0.0, EPOCH) == (31 + 29) * 1440 + 8 * 60


def test_time_mark() -> None:
    assert u.time_mark(0.0, EPOCH) == 0
    assert u.time_mark(0.09, EPOCH) == 0
    assert u.time_mark(0.1, EPOCH) == 1
    assert u.time_mark(0.1 * 3, EPOCH) == 3
    assert u.time_mark(3599.95, EPOCH) == 35999
    assert u.time_mark(3600.0, EPOCH) == 0
    assert u.time_mark(125.4, datetime(2024, 3, 1, 8, 30, tzinfo=UTC)) == 18000 + 1254


# --------------------------------------------------------------------------------------------------
# Heading conventions
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("compass", "yaw"),
    [(0.0, math.pi / 2), (90.0, 0.0), (180.0, -math.pi / 2), (270.0, -math.pi), (45.0, math.pi / 4)],
)
def test_compass_enu(compass: float, yaw: float) -> None:
    assert u.compass_deg_to_enu_yaw_rad(compass) == pytest.approx(yaw, abs=1e-12)
    assert u.enu_yaw_rad_to_compass_deg(yaw) == pytest.approx(compass, abs=1e-9)
    assert isinstance(u.compass_deg_to_enu_yaw_rad(compass), float)


def test_compass_enu_arrays_and_wrap() -> None:
    compass = np.linspace(0.0, 359.9, 3600)
    yaw = u.compass_deg_to_enu_yaw_rad(compass)
    assert yaw.shape == compass.shape
    assert np.all((yaw >= -math.pi) & (yaw < math.pi))
    back = u.enu_yaw_rad_to_compass_deg(yaw)
    assert np.allclose(back, compass, atol=1e-9)
    assert u.enu_yaw_rad_to_compass_deg(math.pi / 2 + 4 * math.pi) == pytest.approx(0.0, abs=1e-9)
    assert u.enu_yaw_rad_to_compass_deg(-1e-17 + math.pi / 2) < 360.0
    assert u.compass_deg_to_enu_yaw_rad(-90.0) == pytest.approx(-math.pi)


# --------------------------------------------------------------------------------------------------
# LocalFrame
# --------------------------------------------------------------------------------------------------

CHONGQING = LocalFrame(29.6, 106.5, 250.0)

ORIGINS = [
    pytest.param((29.6, 106.5, 250.0), id="chongqing"),
    pytest.param((31.2, 121.5, 4.0), id="shanghai"),
    pytest.param((0.0, 0.0, 0.0), id="null-island"),
    pytest.param((89.95, 30.0, 0.0), id="near-north-pole"),
    pytest.param((90.0, 0.0, 0.0), id="north-pole"),
    pytest.param((-89.99, -120.0, 2800.0), id="near-south-pole"),
    pytest.param((-16.5, 179.99, 0.0), id="antimeridian-east"),
    pytest.param((65.0, -179.999, 10.0), id="antimeridian-west"),
]


def _grid(extent: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    axis = np.array([-extent, -1.0, 0.0, 0.3, extent])
    e, n, up = np.meshgrid(axis, axis, np.array([-50.0, 0.0, 120.0]), indexing="ij")
    return e.astype(np.float64), n.astype(np.float64), up.astype(np.float64)


def test_origin_maps_to_zero() -> None:
    assert CHONGQING.to_local(29.6, 106.5, 250.0) == pytest.approx((0.0, 0.0, 0.0), abs=1e-6)
    lat, lon, h = CHONGQING.to_geodetic(0.0, 0.0)
    assert (lat, lon, h) == pytest.approx((29.6, 106.5, 250.0), abs=1e-9)
    assert all(isinstance(v, float) for v in (lat, lon, h))


@pytest.mark.parametrize("origin", ORIGINS)
@pytest.mark.parametrize("extent", [0.0, 10_000.0])
def test_enu_round_trip_within_1mm(origin: tuple[float, float, float], extent: float) -> None:
    frame = LocalFrame(*origin)
    e, n, up = _grid(extent)
    lat, lon, h = frame.to_geodetic(e, n, up)
    assert np.all((lon > -180.0) & (lon <= 180.0))
    e2, n2, up2 = frame.to_local(lat, lon, h)
    assert np.max(np.abs(e2 - e)) < 1e-3
    assert np.max(np.abs(n2 - n)) < 1e-3
    assert np.max(np.abs(up2 - up)) < 1e-3


@pytest.mark.parametrize("origin", ORIGINS)
def test_plane_round_trip_without_height(origin: tuple[float, float, float]) -> None:
    frame = LocalFrame(*origin)
    e, n, _ = _grid(10_000.0)
    lat, lon, _h = frame.to_geodetic(e, n)
    e2, n2, up2 = frame.to_local(lat, lon)
    assert np.max(np.abs(e2 - e)) < 1e-3
    assert np.max(np.abs(n2 - n)) < 1e-3
    assert np.all(up2 == 0.0)


def test_geodetic_ecef_round_trip_everywhere() -> None:
    lat = np.linspace(-90.0, 90.0, 721)
    lon = np.linspace(-179.75, 180.0, 721)
    frame = LocalFrame(0.0, 0.0)
    for h in (-400.0, 0.0, 8848.0, 30_000.0):
        e, n, up = frame.to_local(lat, lon, h)
        lat2, lon2, h2 = frame.to_geodetic(e, n, up)
        assert np.max(np.abs(lat2 - lat)) < 1e-9
        assert np.max(np.abs(h2 - h)) < 1e-4
        inner = np.abs(lat) < 89.9  # longitude is undefined at the poles
        dlon = (lon2 - lon + 180.0) % 360.0 - 180.0
        assert np.max(np.abs(dlon[inner])) < 1e-9


def test_ten_km_east_curvature() -> None:
    lat, lon, h = CHONGQING.to_geodetic(10_000.0, 0.0)
    # The tangent plane is ~ d^2 / (2 R) above the ellipsoid: 7.85 m at 10 km.
    assert h - 250.0 == pytest.approx(10_000.0**2 / (2 * 6_378_137.0), rel=0.02)
    assert lat < 29.6  # a straight line east on a tangent plane drifts south of the parallel
    assert lon == pytest.approx(106.5 + 10_000.0 / (111_320.0 * math.cos(math.radians(29.6))), abs=1e-3)


def test_known_distances() -> None:
    # 1e-5 degree of latitude at 29.6 N is the meridian arc M * dphi, M = a(1-e2)/(1-e2 sin^2)^1.5.
    e2 = geodesy.WGS84_F * (2 - geodesy.WGS84_F)
    s = math.sin(math.radians(29.6))
    m = geodesy.WGS84_A * (1 - e2) / (1 - e2 * s * s) ** 1.5
    n = geodesy.WGS84_A / math.sqrt(1 - e2 * s * s)
    _, north, _ = CHONGQING.to_local(29.6 + 1e-5, 106.5, 250.0)
    assert north == pytest.approx(m * math.radians(1e-5) * (1 + 250.0 / m), abs=1e-6)
    assert north == pytest.approx(1.108, abs=0.001)
    east, _, _ = CHONGQING.to_local(29.6, 106.5 + 1e-5, 250.0)
    assert east == pytest.approx((n + 250.0) * math.cos(math.radians(29.6)) * math.radians(1e-5), abs=1e-6)
    assert east == pytest.approx(0.968, abs=0.001)
    # One wire quantum (1e-7 degree) of latitude is about 1.1 cm.
    e_a, n_a = CHONGQING.from_wire(296000000, 1065000000)
    e_b, n_b = CHONGQING.from_wire(296000001, 1065000000)
    assert n_b - n_a == pytest.approx(0.01108, abs=1e-4)
    assert e_b - e_a == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("origin", ORIGINS)
def test_wire_round_trip_within_quantum(origin: tuple[float, float, float]) -> None:
    frame = LocalFrame(*origin)
    rng = np.random.default_rng(7)
    e = rng.uniform(-10_000.0, 10_000.0, 500)
    n = rng.uniform(-10_000.0, 10_000.0, 500)
    lat_i, lon_i = frame.to_wire(e, n)
    assert lat_i.dtype == np.int64
    assert np.all((lat_i >= u.LAT_MIN) & (lat_i <= u.LAT_MAX))
    assert np.all((lon_i >= u.LON_MIN) & (lon_i <= u.LON_MAX))
    e2, n2 = frame.from_wire(lat_i, lon_i)
    # Half a quantum of latitude is 5.5 mm; of longitude 5.5 mm * cos(lat) (much less near a pole).
    assert np.max(np.hypot(e2 - e, n2 - n)) < 0.008
    # Wire -> local -> wire is exact.
    lat_j, lon_j = frame.to_wire(e2, n2)
    assert np.array_equal(lat_i, lat_j)
    assert np.array_equal(lon_i, lon_j)


def test_wire_scalar_types_and_values() -> None:
    lat_i, lon_i = CHONGQING.to_wire(0.0, 0.0)
    assert (lat_i, lon_i) == (296000000, 1065000000)
    assert type(lat_i) is int
    assert type(lon_i) is int
    e, n = CHONGQING.from_wire(lat_i, lon_i)
    assert type(e) is float
    assert (e, n) == pytest.approx((0.0, 0.0), abs=1e-9)


def test_wire_antimeridian_crossing() -> None:
    frame = LocalFrame(-16.5, 179.99)
    _, lon_w = frame.to_wire(0.0, 0.0)
    _, lon_e = frame.to_wire(5_000.0, 0.0)
    assert lon_w == 1799900000
    assert lon_e < -1799000000
    dlat, dlon = frame.offset_to_wire(*frame.to_wire(0.0, 0.0), 5_000.0, 0.0)
    assert 0 < dlon < 1_000_000
    assert frame.offset_from_wire(*frame.to_wire(0.0, 0.0), dlat, dlon) == pytest.approx((5_000.0, 0.0), abs=0.01)


def test_from_wire_rejects_unavailable() -> None:
    with pytest.raises(ValueError):
        CHONGQING.from_wire(u.LAT_UNAVAILABLE, 1065000000)
    with pytest.raises(ValueError):
        CHONGQING.from_wire(296000000, u.LON_UNAVAILABLE)
    with pytest.raises(ValueError):
        CHONGQING.from_wire(np.array([296000000, u.LAT_UNAVAILABLE]), np.array([1065000000, 1065000000]))


def test_offsets_for_rsm() -> None:
    rsu_e, rsu_n = 30.0, -12.0
    ref_lat, ref_lon = CHONGQING.to_wire(rsu_e, rsu_n)
    dlat, dlon = CHONGQING.offset_to_wire(ref_lat, ref_lon, rsu_e + 10.0, rsu_n + 20.0)
    assert dlat == pytest.approx(20.0 / 0.01108, abs=2)
    assert dlon == pytest.approx(10.0 / 0.00968, abs=2)
    e, n = CHONGQING.offset_from_wire(ref_lat, ref_lon, dlat, dlon)
    assert (e, n) == pytest.approx((rsu_e + 10.0, rsu_n + 20.0), abs=0.01)
    assert CHONGQING.offset_to_wire(ref_lat, ref_lon, rsu_e, rsu_n) == (0, 0)
    e_arr = np.array([rsu_e, rsu_e + 10.0])
    dlat_a, dlon_a = CHONGQING.offset_to_wire(ref_lat, ref_lon, e_arr, np.array([rsu_n, rsu_n + 20.0]))
    assert list(dlat_a) == [0, dlat]
    assert list(dlon_a) == [0, dlon]


def test_frame_is_frozen_and_validates() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        CHONGQING.lat0_deg = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        LocalFrame(91.0, 0.0)
    with pytest.raises(ValueError):
        LocalFrame(0.0, math.nan)
    assert LocalFrame(29.6, 106.5, 250.0) == CHONGQING
    assert hash(LocalFrame(29.6, 106.5, 250.0)) == hash(CHONGQING)


def test_broadcasting_mixed_shapes() -> None:
    e = np.linspace(-100.0, 100.0, 7)
    lat, lon, h = CHONGQING.to_geodetic(e, 0.0)
    assert lat.shape == lon.shape == h.shape == (7,)
    e2, n2, up2 = CHONGQING.to_local(lat, lon, h)
    assert np.allclose(e2, e, atol=1e-6)
    assert np.allclose(n2, 0.0, atol=1e-6)
    assert np.allclose(up2, 0.0, atol=1e-6)


def test_a_sec_mark_outside_the_minute_is_refused() -> None:
    # DSecond 60000..65534 is reserved and 65535 unavailable: it was read modulo 60000 (65535 as 5.535 s into
    # the minute, an outside review of a C++ stack); a receiver cannot place such a message in time
    assert u.time_from_sec_mark(59999, 60.0, EPOCH) == 60.0 - 0.001
    for mark in (60000, 65535, -1):
        with pytest.raises(ValueError, match="DSecond wire value"):
            u.time_from_sec_mark(mark, 60.0, EPOCH)


def test_the_array_accuracy_gate_is_the_scalar_one() -> None:
    """``accurate_enough_array`` (FCW's gate, on board and in a fleet) says what ``accurate_enough`` says, NaN
    standing for None; at the boundary too (1.5 m r95 is 1.5 / R95_PER_SIGMA per axis)."""
    edge = 1.5 / u.R95_PER_SIGMA
    values = [None, math.inf, -math.inf, 0.0, 0.02, edge, math.nextafter(edge, 0.0), math.nextafter(edge, 9.0), 5.0]
    got = u.accurate_enough_array(np.array([math.nan if v is None else v for v in values]), 1.5).tolist()
    assert got == [u.accurate_enough(v, 1.5) for v in values]
    assert got == [False, False, False, True, True, True, True, False, False]


def test_an_rtk_fixed_bsm_claims_0_05_m_not_a_perfect_fix() -> None:
    """A BSM of an rtk-fixed receiver (sigma 0.01275 m) decoded with semi_major = semi_minor = 0, a perfect fix
    (a pilot-zone review); decoded, its accuracy is now 0.05 m, at least the truth, with the confidence (a5cm)."""
    from v2x.impair import positioning_profile
    from v2x.wire.bsm import OwnState, decode_bsm, encode_bsm

    sigma = float(positioning_profile("rtk-fixed").parameters["sigma_m"])
    assert 0 < sigma < 0.025  # (rounded to nearest, this was 0)
    frame, epoch = LocalFrame(29.6, 106.5, 250.0), datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    own = OwnState(x=10.0, y=-3.5, speed_mps=13.89, heading_rad=0.0, accel_mps2=0.0, length_m=4.5, width_m=1.8,
                   height_m=1.5, kind="car", sigma_major_m=sigma, sigma_minor_m=sigma, braking=False)  # fmt: skip
    bsm = encode_bsm(own, actor_id="a", t_s=1.0, msg_count=10, frame=frame, epoch=epoch).bsm
    assert (bsm.accuracy.semi_major, bsm.accuracy.semi_minor) == (1, 1)
    assert bsm.pos_confidence.pos == 13  # a5cm: 2.448 sigma = 0.031 m
    remote = decode_bsm(bsm, now_s=1.0, frame=frame, epoch=epoch)
    assert remote is not None and remote.sigma_major_m is not None
    assert remote.sigma_major_m == pytest.approx(0.05) and remote.sigma_major_m >= sigma
