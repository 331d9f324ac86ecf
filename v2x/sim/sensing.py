"""Roadside sensors (camera, radar, lidar), sans-I/O: the true state of every road user in, what each
roadside unit's sensors detect out. The world runs it, because only the world knows the truth, and hands
each RSU its detections in the next ``TickInput``; the RSU turns them into RSM.

The model, stated so that it can be checked (figures and sources: ``v2x.scenario.sensors.SENSOR_DEFAULTS`` and
docs/IMPAIRMENTS.md, "Roadside sensors"):

1. **Field of view.** A sensor sits at its RSU's position and looks along ``heading_deg`` (compass). It
   can see an object whose footprint centre is within ``range_m`` and within ``fov_deg / 2`` of that
   heading, and whose line of sight - the segment from the sensor to the centre - crosses no obstacle
   polygon of the scenario (2-D: an obstacle hides what is behind it at every height; partial occlusion is
   not modelled).
2. **Frames.** A sensor produces a frame every ``period_s``, at the first tick at or after it is due.
3. **Detection.** In a frame, each object in view is detected with ``detection_probability``,
   independently of other frames and objects (misses are not correlated in time).
4. **Error.** A detection carries the true position plus white Gaussian error of ``sigma_m`` per axis and
   the true velocity plus white Gaussian error of ``speed_sigma_mps`` per axis: the error of a tracker's
   output, uncorrelated between frames. Its heading is that of the measured velocity, or the true
   footprint heading when the measured speed is below ``HEADING_FROM_VELOCITY_MPS``. Size and class are
   the true ones (classification is perfect).
5. **Draws.** Every frame draws one uniform and four normals per road user, in view or not, in the same
   order: the same seed gives the same detections, and scenarios that differ only in geometry share
   their noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import Polygon
from shapely.ops import unary_union

from v2x.scenario.model import SensorSpec
from v2x.scenario.sensors import SENSOR_DEFAULTS, SensorParams, in_view, resolve
from v2x.units import enu_yaw_rad_to_compass_deg

F64 = NDArray[np.float64]

HEADING_FROM_VELOCITY_MPS = 0.5  # below this measured speed the heading is the footprint's, not the velocity's


@dataclass(frozen=True)
class Detection:
    """One object one sensor detected in one frame (local metres, SI; the error is already in it)."""

    object_id: int
    sensor: str  # "{rsu id}/{index}"
    sensor_kind: str
    object_kind: str
    t_s: float  # the time the measurement refers to
    x: float
    y: float
    vx: float
    vy: float
    heading_deg: float  # compass
    length_m: float
    width_m: float
    sigma_m: float
    speed_sigma_mps: float


@dataclass(frozen=True)
class Targets:
    """The road users a frame can see, as arrays (one row per road user)."""

    object_id: NDArray[np.int64]
    kind: Sequence[str]
    x: F64
    y: F64
    vx: F64
    vy: F64
    heading_rad: F64  # ENU yaw of the footprint
    length_m: F64
    width_m: F64

    def __len__(self) -> int:
        return len(self.object_id)


@dataclass
class SensorCounts:
    """What one sensor did over a run."""

    frames: int = 0
    in_view: int = 0  # object-frames inside range and field of view with a clear line of sight
    occluded: int = 0  # object-frames inside range and field of view, hidden by an obstacle
    detected: int = 0


@dataclass
class _Sensor:
    rsu_id: str
    index: int
    x: float
    y: float
    params: SensorParams
    next_due_s: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.rsu_id}/{self.index}"


class RoadsideSensing:
    """Every roadside sensor of a scenario. ``step`` once per tick with the road users' true states."""

    def __init__(
        self,
        rsus: Sequence[tuple[str, tuple[float, float], Sequence[SensorSpec]]],
        obstacles: Sequence[Polygon],
        rng: np.random.Generator,
    ) -> None:
        self.sensors = [
            _Sensor(rsu_id, k, float(pos[0]), float(pos[1]), resolve(spec))
            for rsu_id, pos, specs in sorted(rsus, key=lambda r: r[0])
            for k, spec in enumerate(specs)
        ]
        self.obstacles: Polygon | None = unary_union(list(obstacles)) if obstacles else None
        if self.obstacles is not None:
            shapely.prepare(self.obstacles)
        self.rng = rng
        self.counts = {s.name: SensorCounts() for s in self.sensors}

    def step(self, t_s: float, targets: Targets) -> dict[str, list[Detection]]:
        """The detections of every sensor with a frame due at ``t_s``, by RSU id (sensors in file order)."""
        out: dict[str, list[Detection]] = {}
        n = len(targets)
        for sensor in self.sensors:
            if t_s + 1e-9 < sensor.next_due_s:
                continue
            while sensor.next_due_s <= t_s + 1e-9:
                sensor.next_due_s += sensor.params.period_s
            p = sensor.params
            u = self.rng.random(n)
            e = self.rng.standard_normal((n, 4))
            visible, hidden = in_view(sensor.x, sensor.y, p, targets.x, targets.y, self.obstacles)
            detected = visible & (u < p.detection_probability)
            counts = self.counts[sensor.name]
            counts.frames += 1
            counts.in_view += int(visible.sum())
            counts.occluded += int(hidden.sum())
            counts.detected += int(detected.sum())
            found = out.setdefault(sensor.rsu_id, [])
            for k in np.flatnonzero(detected).tolist():
                vx = float(targets.vx[k] + p.speed_sigma_mps * e[k, 2])
                vy = float(targets.vy[k] + p.speed_sigma_mps * e[k, 3])
                yaw = math.atan2(vy, vx) if math.hypot(vx, vy) >= HEADING_FROM_VELOCITY_MPS else targets.heading_rad[k]
                found.append(
                    Detection(
                        object_id=int(targets.object_id[k]),
                        sensor=sensor.name,
                        sensor_kind=p.kind,
                        object_kind=targets.kind[k],
                        t_s=t_s,
                        x=float(targets.x[k] + p.sigma_m * e[k, 0]),
                        y=float(targets.y[k] + p.sigma_m * e[k, 1]),
                        vx=vx,
                        vy=vy,
                        heading_deg=float(enu_yaw_rad_to_compass_deg(float(yaw))),
                        length_m=float(targets.length_m[k]),
                        width_m=float(targets.width_m[k]),
                        sigma_m=p.sigma_m,
                        speed_sigma_mps=p.speed_sigma_mps,
                    )
                )
        return out


__all__ = [
    "SENSOR_DEFAULTS",
    "Detection",
    "RoadsideSensing",
    "SensorCounts",
    "SensorParams",
    "Targets",
    "in_view",
    "resolve",
]
