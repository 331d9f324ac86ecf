"""Roadside sensor figures (camera, radar, lidar): each kind's defaults with their sources, and a scenario
sensor's figures with the defaults filled in. The sensing model that uses them is ``v2x.sim.sensing``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import Polygon
from shapely.ops import unary_union

from v2x.scenario.geometry import polygon
from v2x.scenario.model import Scenario, SensorSpec

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class SensorParams:
    """A sensor's figures with every default resolved."""

    kind: str
    heading_deg: float
    range_m: float
    fov_deg: float
    sigma_m: float
    speed_sigma_mps: float
    detection_probability: float
    period_s: float


# Defaults per kind. **Assumption** marks our own choices; docs/IMPAIRMENTS.md gives the reasoning.
SENSOR_DEFAULTS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        # Traffic camera with a tracker. Range 80 m, 90 deg lens, 0.5 m, 0.3 m/s, 95 %: assumptions, inside the
        # 1.5 m localisation threshold of the Mcity field test of roadside perception (arXiv 2401.12392),
        # where the image-based systems localised worse than the LiDAR one; 0.3 m/s ~ a 2 km/h 95 % speed
        # error (VALU3S radar-camera traffic surveillance requirement).
        "camera": MappingProxyType(
            {
                "range_m": 80.0,
                "fov_deg": 90.0,
                "sigma_m": 0.5,
                "speed_sigma_mps": 0.3,
                "detection_probability": 0.95,
                "period_s": 0.1,
            }
        ),
        # 77/79 GHz traffic radar: Doppler speed is good (0.1 m/s), azimuth is not (0.5 m at range), and
        # pedestrians are weak reflectors (VALU3S asks radar to track "weak objects such as cyclists"):
        # 150 m, 30 deg, 0.5 m, 0.1 m/s, 90 % are assumptions.
        "radar": MappingProxyType(
            {
                "range_m": 150.0,
                "fov_deg": 30.0,
                "sigma_m": 0.5,
                "speed_sigma_mps": 0.1,
                "detection_probability": 0.9,
                "period_s": 0.1,
            }
        ),
        # Spinning roadside LiDAR: effective range 50-60 m (Tian, UNR dissertation 2021, roadside LiDAR data);
        # 360 deg, 10 Hz; best localisation of the three (Mcity, arXiv 2401.12392): 0.1 m, 0.2 m/s, 98 % are
        # assumptions.
        "lidar": MappingProxyType(
            {
                "range_m": 60.0,
                "fov_deg": 360.0,
                "sigma_m": 0.1,
                "speed_sigma_mps": 0.2,
                "detection_probability": 0.98,
                "period_s": 0.1,
            }
        ),
    }
)


def resolve(spec: SensorSpec) -> SensorParams:
    """The sensor's figures: those the scenario gives, the kind's defaults for the rest."""
    d = SENSOR_DEFAULTS[spec.kind]

    def pick(name: str) -> float:
        value: float | None = getattr(spec, name)
        return float(d[name]) if value is None else float(value)

    return SensorParams(
        kind=spec.kind,
        heading_deg=spec.heading_deg,
        range_m=pick("range_m"),
        fov_deg=pick("fov_deg"),
        sigma_m=pick("sigma_m"),
        speed_sigma_mps=pick("speed_sigma_mps"),
        detection_probability=pick("detection_probability"),
        period_s=pick("period_s"),
    )


def in_view(
    sensor_x: float, sensor_y: float, params: SensorParams, x: F64, y: F64, obstacles: Polygon | None = None
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """(visible, occluded) masks: inside range and field of view with a clear line of sight, and inside
    range and field of view but hidden behind an obstacle."""
    dx = x - sensor_x
    dy = y - sensor_y
    dist = np.hypot(dx, dy)
    bearing = np.degrees(np.arctan2(dx, dy))  # compass: clockwise from north
    off = (bearing - params.heading_deg + 180.0) % 360.0 - 180.0
    covered = (dist <= params.range_m) & ((np.abs(off) <= params.fov_deg / 2) | (params.fov_deg >= 360.0))
    hidden = np.zeros(len(x), dtype=np.bool_)
    if obstacles is not None and not obstacles.is_empty and covered.any():
        idx = np.flatnonzero(covered)
        coords = np.empty((len(idx), 2, 2))
        coords[:, 0, 0] = sensor_x
        coords[:, 0, 1] = sensor_y
        coords[:, 1, 0] = x[idx]
        coords[:, 1, 1] = y[idx]
        hidden[idx] = shapely.intersects(shapely.linestrings(coords), obstacles)
    return covered & ~hidden, covered & hidden


COVERAGE_POINTS = 32  # an SSM DetectedRegion polygon has 3..32 points (T/CSAE 157)


def coverage_polygon(x: float, y: float, params: SensorParams) -> list[tuple[float, float]]:
    """The area a sensor at ``(x, y)`` covers (range and field of view; occlusion not taken out), as a polygon
    of at most ``COVERAGE_POINTS`` points: a circle for a 360 deg sensor, else the sensor's position and its
    arc, clockwise (compass) from the left edge of its view."""
    if params.fov_deg >= 360.0:
        arc = [k * 360.0 / COVERAGE_POINTS for k in range(COVERAGE_POINTS)]
        apex: list[tuple[float, float]] = []
    else:
        n = COVERAGE_POINTS - 1
        arc = [params.heading_deg - params.fov_deg / 2 + k * params.fov_deg / (n - 1) for k in range(n)]
        apex = [(x, y)]
    r = params.range_m
    return apex + [(x + r * math.sin(math.radians(b)), y + r * math.cos(math.radians(b))) for b in arc]


@dataclass(frozen=True)
class RoadsideCoverage:
    """Where one RSU's sensors look: what the edge platform knows of its roadside units' installation (their
    positions, sensors and the static obstacles), for the misbehaviour check against their perception."""

    rsu_id: str
    x: float
    y: float
    sensors: tuple[SensorParams, ...]
    obstacles: Polygon | None

    def covers(self, x: float, y: float, margin_m: float) -> bool:
        """Does one of the sensors see the point (x, y) and every point ``margin_m`` east, west, north and
        south of it (well inside its range and field of view, with a clear line of sight)?"""
        px = np.array([x, x + margin_m, x - margin_m, x, x])
        py = np.array([y, y, y, y + margin_m, y - margin_m])
        return any(bool(in_view(self.x, self.y, p, px, py, self.obstacles)[0].all()) for p in self.sensors)


def roadside_coverage(scenario: Scenario) -> tuple[RoadsideCoverage, ...]:
    """The coverage of every RSU with sensors, in id order."""
    obstacles: Polygon | None = (
        unary_union([polygon(list(o.polygon)) for o in scenario.obstacles]) if scenario.obstacles else None
    )
    if obstacles is not None:
        shapely.prepare(obstacles)
    return tuple(
        RoadsideCoverage(
            a.id, float(a.position[0]), float(a.position[1]), tuple(resolve(s) for s in a.sensors), obstacles
        )
        for a in sorted(scenario.actors, key=lambda a: a.id)
        if a.kind == "rsu" and a.sensors and a.position is not None
    )
