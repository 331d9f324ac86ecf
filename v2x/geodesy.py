"""Geodesy: :class:`LocalFrame`, an exact WGS84 geodetic <-> ECEF <-> local east-north-up (ENU) transform.

The testbed's world is a local ENU plane around each scenario's origin; every latitude and longitude on the
wire is converted through a :class:`LocalFrame`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final, overload

import numpy as np
from numpy.typing import NDArray

from v2x.units import LAT_MAX, LAT_MIN, LATLON_UNIT_DEG, LON_MAX, LON_MIN

FloatArray = NDArray[np.float64]

# WGS84 ellipsoid
WGS84_A: Final = 6_378_137.0
WGS84_F: Final = 1.0 / 298.257223563
_B: Final = WGS84_A * (1.0 - WGS84_F)
_E2: Final = WGS84_F * (2.0 - WGS84_F)  # first eccentricity squared
_EP2: Final = _E2 / (1.0 - _E2)  # second eccentricity squared


# --------------------------------------------------------------------------------------------------
# Local frame
# --------------------------------------------------------------------------------------------------


def _geodetic_to_ecef(
    lat_rad: FloatArray, lon_rad: FloatArray, h_m: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    sin_lat = np.sin(lat_rad)
    cos_lat = np.cos(lat_rad)
    n = WGS84_A / np.sqrt(1.0 - _E2 * sin_lat * sin_lat)
    x = (n + h_m) * cos_lat * np.cos(lon_rad)
    y = (n + h_m) * cos_lat * np.sin(lon_rad)
    z = (n * (1.0 - _E2) + h_m) * sin_lat
    return x, y, z


def _ecef_to_geodetic(x: FloatArray, y: FloatArray, z: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Closed-form ECEF -> geodetic (Heikkinen 1982, as given by Zhu 1993); sub-millimetre for any point
    more than a few km from the Earth's centre. Returns radians, radians, metres."""
    a2 = WGS84_A * WGS84_A
    b2 = _B * _B
    e4 = _E2 * _E2
    p2 = x * x + y * y
    p = np.sqrt(p2)
    z2 = z * z
    f = 54.0 * b2 * z2
    g = p2 + (1.0 - _E2) * z2 - _E2 * (a2 - b2)
    c = e4 * f * p2 / (g * g * g)
    s = np.cbrt(1.0 + c + np.sqrt(c * c + 2.0 * c))
    k = s + 1.0 + 1.0 / s
    big_p = f / (3.0 * k * k * g * g)
    q = np.sqrt(1.0 + 2.0 * e4 * big_p)
    r0 = -big_p * _E2 * p / (1.0 + q) + np.sqrt(
        np.maximum(
            0.5 * a2 * (1.0 + 1.0 / q) - big_p * (1.0 - _E2) * z2 / (q * (1.0 + q)) - 0.5 * big_p * p2,
            0.0,
        )
    )
    t = p - _E2 * r0
    u = np.sqrt(t * t + z2)
    v = np.sqrt(t * t + (1.0 - _E2) * z2)
    z0 = b2 * z / (WGS84_A * v)
    h = u * (1.0 - b2 / (WGS84_A * v))
    lat = np.arctan2(z + _EP2 * z0, p)
    lon = np.arctan2(y, x)
    return lat, lon, h


def _as_array(v: float | FloatArray) -> FloatArray:
    return np.asarray(v, dtype=np.float64)


def _all_scalar(*values: Any) -> bool:
    return all(np.ndim(v) == 0 for v in values)


@dataclass(frozen=True)
class LocalFrame:
    """A local east-north-up (ENU) Cartesian frame tangent to the WGS84 ellipsoid at an origin.

    Conversions are exact (geodetic <-> ECEF <-> ENU, closed form both ways) and numpy-vectorised: the
    methods accept floats or arrays (broadcast together) and return floats for all-scalar input, arrays
    otherwise. Longitudes come back in (-180, 180].

    The emulator's world is the plane ``up = 0``: :meth:`to_geodetic` defaults to it, and
    :meth:`to_local` without a height returns the point of that plane with the given latitude and
    longitude, so ``to_local(*to_geodetic(e, n)[:2])`` gives back ``(e, n, 0)``. (The plane rises above
    the ellipsoid with distance: about 7.8 m at 10 km.)
    """

    lat0_deg: float
    lon0_deg: float
    h0_m: float = 0.0
    _origin_ecef: tuple[float, float, float] = field(init=False, repr=False, compare=False)
    _rot: NDArray[np.float64] = field(init=False, repr=False, compare=False)
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (-90.0 <= self.lat0_deg <= 90.0 and math.isfinite(self.lon0_deg) and math.isfinite(self.h0_m)):
            raise ValueError(f"invalid frame origin {self.lat0_deg}, {self.lon0_deg}, {self.h0_m}")
        lat = math.radians(self.lat0_deg)
        lon = math.radians(self.lon0_deg)
        x0, y0, z0 = _geodetic_to_ecef(_as_array(lat), _as_array(lon), _as_array(self.h0_m))
        sl, cl, so, co = math.sin(lat), math.cos(lat), math.sin(lon), math.cos(lon)
        # Rows: unit vectors east, north, up in ECEF.
        rot = np.array(
            [
                [-so, co, 0.0],
                [-sl * co, -sl * so, cl],
                [cl * co, cl * so, sl],
            ]
        )
        rot.setflags(write=False)
        object.__setattr__(self, "_origin_ecef", (float(x0), float(y0), float(z0)))
        object.__setattr__(self, "_rot", rot)
        object.__setattr__(self, "_hash", hash((self.lat0_deg, self.lon0_deg, self.h0_m)))

    def __hash__(self) -> int:
        # The hash the dataclass would compute (of the compared fields), computed once: a frame is part of the
        # key of every decoded message in a receiver's memo (``Heard.decoded``), hundreds of lookups a tick.
        return self._hash

    # -- ECEF <-> ENU ------------------------------------------------------------------------------

    def _enu_to_ecef(self, e: FloatArray, n: FloatArray, u: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        r = self._rot
        x0, y0, z0 = self._origin_ecef
        x = x0 + r[0, 0] * e + r[1, 0] * n + r[2, 0] * u
        y = y0 + r[0, 1] * e + r[1, 1] * n + r[2, 1] * u
        z = z0 + r[0, 2] * e + r[1, 2] * n + r[2, 2] * u
        return x, y, z

    def _ecef_to_enu(self, x: FloatArray, y: FloatArray, z: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        r = self._rot
        x0, y0, z0 = self._origin_ecef
        dx, dy, dz = x - x0, y - y0, z - z0
        e = r[0, 0] * dx + r[0, 1] * dy + r[0, 2] * dz
        n = r[1, 0] * dx + r[1, 1] * dy + r[1, 2] * dz
        u = r[2, 0] * dx + r[2, 1] * dy + r[2, 2] * dz
        return e, n, u

    # -- public API --------------------------------------------------------------------------------

    @overload
    def to_geodetic(self, east_m: float, north_m: float, up_m: float = 0.0) -> tuple[float, float, float]: ...
    @overload
    def to_geodetic(
        self, east_m: FloatArray, north_m: FloatArray | float, up_m: FloatArray | float = 0.0
    ) -> tuple[FloatArray, FloatArray, FloatArray]: ...
    def to_geodetic(
        self, east_m: float | FloatArray, north_m: float | FloatArray, up_m: float | FloatArray = 0.0
    ) -> tuple[float, float, float] | tuple[FloatArray, FloatArray, FloatArray]:
        """Local ENU metres -> (latitude degrees, longitude degrees in (-180, 180], ellipsoidal height m)."""
        x, y, z = self._enu_to_ecef(_as_array(east_m), _as_array(north_m), _as_array(up_m))
        lat, lon, h = _ecef_to_geodetic(x, y, z)
        lat_deg, lon_deg = np.degrees(lat), np.degrees(lon)
        lon_deg = np.where(lon_deg <= -180.0, lon_deg + 360.0, lon_deg)
        if _all_scalar(east_m, north_m, up_m):
            return float(lat_deg), float(lon_deg), float(h)
        return lat_deg, lon_deg, h

    @overload
    def to_local(self, lat_deg: float, lon_deg: float, h_m: float | None = None) -> tuple[float, float, float]: ...
    @overload
    def to_local(
        self, lat_deg: FloatArray, lon_deg: FloatArray | float, h_m: FloatArray | float | None = None
    ) -> tuple[FloatArray, FloatArray, FloatArray]: ...
    def to_local(
        self,
        lat_deg: float | FloatArray,
        lon_deg: float | FloatArray,
        h_m: float | FloatArray | None = None,
    ) -> tuple[float, float, float] | tuple[FloatArray, FloatArray, FloatArray]:
        """(latitude, longitude degrees, ellipsoidal height m) -> local ENU metres.

        With ``h_m=None`` the height is unknown and the point is placed on the local plane ``up = 0``
        (the intersection of the ellipsoid normal through (lat, lon) with that plane), so ``up`` is 0.
        """
        lat = np.radians(_as_array(lat_deg))
        lon = np.radians(_as_array(lon_deg))
        if h_m is None:
            x, y, z = _geodetic_to_ecef(lat, lon, np.zeros_like(lat))
            e, n, u = self._ecef_to_enu(x, y, z)
            # ECEF(lat, lon, h) = ECEF(lat, lon, 0) + h * normal, so up(h) is linear in h.
            cos_lat = np.cos(lat)
            nx, ny, nz = cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)
            r = self._rot
            h = -u / (r[2, 0] * nx + r[2, 1] * ny + r[2, 2] * nz)
            e = e + h * (r[0, 0] * nx + r[0, 1] * ny + r[0, 2] * nz)
            n = n + h * (r[1, 0] * nx + r[1, 1] * ny + r[1, 2] * nz)
            u = np.zeros_like(e)
        else:
            x, y, z = _geodetic_to_ecef(lat, lon, _as_array(h_m))
            e, n, u = self._ecef_to_enu(x, y, z)
        if _all_scalar(lat_deg, lon_deg, 0.0 if h_m is None else h_m):
            return float(e), float(n), float(u)
        return e, n, u

    @overload
    def to_wire(self, east_m: float, north_m: float) -> tuple[int, int]: ...
    @overload
    def to_wire(
        self, east_m: FloatArray, north_m: FloatArray | float
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]: ...
    def to_wire(
        self, east_m: float | FloatArray, north_m: float | FloatArray
    ) -> tuple[int, int] | tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Point of the plane ``up = 0`` -> (lat, lon) in 1e-7 degree (the height is dropped)."""
        lat_deg, lon_deg, _ = self.to_geodetic(_as_array(east_m), _as_array(north_m))
        lat = np.rint(lat_deg / LATLON_UNIT_DEG).astype(np.int64)
        lon = np.rint(lon_deg / LATLON_UNIT_DEG).astype(np.int64)
        lon = np.where(lon < LON_MIN, lon + 3_600_000_000, lon)
        if _all_scalar(east_m, north_m):
            return int(lat), int(lon)
        return lat, lon

    @overload
    def from_wire(self, lat_int: int, lon_int: int) -> tuple[float, float]: ...
    @overload
    def from_wire(
        self, lat_int: NDArray[np.integer[Any]], lon_int: NDArray[np.integer[Any]] | int
    ) -> tuple[FloatArray, FloatArray]: ...
    def from_wire(
        self, lat_int: int | NDArray[np.integer[Any]], lon_int: int | NDArray[np.integer[Any]]
    ) -> tuple[float, float] | tuple[FloatArray, FloatArray]:
        """(lat, lon) in 1e-7 degree -> (east, north) on the plane ``up = 0``.

        Raises :class:`ValueError` for the unavailable values or anything out of range.
        """
        lat_a = np.asarray(lat_int, dtype=np.int64)
        lon_a = np.asarray(lon_int, dtype=np.int64)
        if np.any((lat_a < LAT_MIN) | (lat_a > LAT_MAX)) or np.any((lon_a < LON_MIN) | (lon_a > LON_MAX)):
            raise ValueError("latitude/longitude unavailable or out of range")
        e, n, _ = self.to_local(
            (lat_a * LATLON_UNIT_DEG).astype(np.float64), (lon_a * LATLON_UNIT_DEG).astype(np.float64)
        )
        if _all_scalar(lat_int, lon_int):
            return float(e), float(n)
        return e, n

    @overload
    def offset_to_wire(self, ref_lat_int: int, ref_lon_int: int, east_m: float, north_m: float) -> tuple[int, int]: ...
    @overload
    def offset_to_wire(
        self, ref_lat_int: int, ref_lon_int: int, east_m: FloatArray, north_m: FloatArray | float
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]: ...
    def offset_to_wire(
        self, ref_lat_int: int, ref_lon_int: int, east_m: float | FloatArray, north_m: float | FloatArray
    ) -> tuple[int, int] | tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Position offset (PositionOffsetLLV, 1e-7 degree) of the point at local ``(east_m, north_m)``
        from a reference position ``(ref_lat_int, ref_lon_int)`` given in wire units (e.g. an RSM's refPos).

        ``east_m, north_m`` are frame coordinates of the point itself, not a displacement from the
        reference. The longitude offset is wrapped across the antimeridian.
        """
        lat, lon = self.to_wire(_as_array(east_m), _as_array(north_m))
        dlat = lat - ref_lat_int
        dlon = (lon - ref_lon_int + 1_800_000_000) % 3_600_000_000 - 1_800_000_000
        if _all_scalar(east_m, north_m):
            return int(dlat), int(dlon)
        return dlat, dlon

    def offset_from_wire(self, ref_lat_int: int, ref_lon_int: int, dlat: int, dlon: int) -> tuple[float, float]:
        """Inverse of :meth:`offset_to_wire` for one point: frame ``(east, north)`` of refPos + offset."""
        lon = (ref_lon_int + dlon + 1_800_000_000) % 3_600_000_000 - 1_800_000_000
        if lon < LON_MIN:
            lon += 3_600_000_000
        return self.from_wire(ref_lat_int + dlat, lon)


__all__ = ["WGS84_A", "WGS84_F", "LocalFrame"]
