"""The helper layer between protobuf messages (standard integer units) and SI domain values.

Everything that builds or reads a BSM, an Advisory or a MapData goes through here, and converts units
only through ``v2x.units``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime

from v2x import units
from v2x.units import LocalFrame
from v2x.wire import common_pb2, day1_pb2, frame_pb2, testbed_pb2

# BasicVehicleClass values (CSAE 53 / SAE J2735).
VEHICLE_CLASS = {
    "car": 10,
    "truck": 20,
    "bus": 23,
    "emergency": 60,
    "pedestrian": 82,
    "cyclist": 85,
}
APP_BY_NAME = {"fcw": testbed_pb2.APP_FCW, "icw": testbed_pb2.APP_ICW}
APP_NAME = {v: k for k, v in APP_BY_NAME.items()}
HARD_BRAKING_MPS2 = 4.0  # deceleration above which the BSM event flag hardBraking is set (assumption)


def temporary_id(actor_id: str) -> bytes:
    """The 8-octet BSM id of an actor: the first 8 bytes of SHA-256 of its actor id (stable per run)."""
    return hashlib.sha256(actor_id.encode()).digest()[:8]


@dataclass(frozen=True)
class OwnState:
    """What a vehicle knows about itself when it builds a BSM (SI, local frame)."""

    x: float
    y: float
    speed_mps: float
    heading_rad: float  # ENU yaw
    accel_mps2: float
    length_m: float
    width_m: float
    height_m: float
    kind: str
    sigma_major_m: float | None
    sigma_minor_m: float | None
    braking: bool


@dataclass(frozen=True)
class RemoteState:
    """A road user as known from a received BSM, in SI units in the local frame."""

    temp_id: bytes
    t_s: float  # generation time reconstructed from secMark
    x: float
    y: float
    speed_mps: float
    heading_rad: float
    accel_mps2: float
    length_m: float
    width_m: float
    sigma_major_m: float | None
    kind_class: int
    hard_braking: bool

    def extrapolated(self, t_s: float) -> tuple[float, float, float, float]:
        """(x, y, vx, vy) at ``t_s`` under constant acceleration along the heading (no reversing)."""
        dt = max(0.0, t_s - self.t_s)
        a = self.accel_mps2
        v0 = self.speed_mps
        if a < 0 and v0 + a * dt < 0:
            dt_stop = v0 / -a
            dist = v0 * dt_stop / 2
            v = 0.0
        else:
            dist = v0 * dt + 0.5 * a * dt * dt
            v = v0 + a * dt
        c, s = math.cos(self.heading_rad), math.sin(self.heading_rad)
        return self.x + dist * c, self.y + dist * s, v * c, v * s


def encode_bsm(
    own: OwnState, *, actor_id: str, t_s: float, msg_count: int, frame: LocalFrame, epoch: datetime
) -> frame_pb2.MessageFrame:
    lat, lon, _ = frame.to_geodetic(own.x, own.y)
    events = 0
    if own.accel_mps2 <= -HARD_BRAKING_MPS2:
        events |= 1 << day1_pb2.EVENT_HARD_BRAKING
    sigma = own.sigma_major_m
    bsm = day1_pb2.BSM(
        msg_cnt=units.msg_cnt(msg_count),
        id=temporary_id(actor_id),
        sec_mark=units.sec_mark(t_s, epoch),
        pos=common_pb2.Position3D(
            lat=units.lat_to_wire(lat),
            lon=units.lon_to_wire(lon),
            elevation=units.elevation_to_wire(frame.h0_m),
        ),
        accuracy=common_pb2.PositionalAccuracy(
            semi_major=units.semi_major_to_wire(sigma),
            semi_minor=units.semi_major_to_wire(own.sigma_minor_m),
            orientation=units.accuracy_orientation_to_wire(None),
        ),
        pos_confidence=common_pb2.PositionConfidenceSet(
            pos=units.position_confidence(None if sigma is None else 2.448 * sigma),
            elevation=0,
        ),
        trans_state=2,
        speed=units.speed_to_wire(own.speed_mps),
        heading=units.heading_to_wire(units.enu_yaw_rad_to_compass_deg(own.heading_rad)),
        angle=units.steering_to_wire(None),
        accel_set=common_pb2.AccelerationSet4Way(
            long=units.accel_to_wire(own.accel_mps2),
            lat=units.accel_to_wire(0.0),
            vert=units.vert_accel_to_wire(None),
            yaw=units.yaw_rate_to_wire(0.0),
        ),
        brakes=day1_pb2.BrakeSystemStatus(brake_pedal=2 if own.braking else 1),
        size=common_pb2.VehicleSize(
            width=units.size_cm_to_wire(own.width_m, max_cm=units.VEHICLE_WIDTH_MAX),
            length=units.size_cm_to_wire(own.length_m),
            height=units.height_to_wire(own.height_m),
        ),
        vehicle_class=VEHICLE_CLASS.get(own.kind, 0),
        safety_ext=day1_pb2.VehicleSafetyExtensions(events=events, path_prediction_radius=32767),
    )
    return frame_pb2.MessageFrame(bsm=bsm)


def time_from_sec_mark(sec_mark: int, now_s: float, epoch: datetime) -> float:
    """Generation time of a message stamped ``sec_mark``, taken as the latest such time not after now."""
    now_mark = units.sec_mark(now_s, epoch)
    age_ms = (now_mark - sec_mark) % 60000
    return now_s - age_ms / 1000.0


def decode_bsm(bsm: day1_pb2.BSM, *, now_s: float, frame: LocalFrame, epoch: datetime) -> RemoteState | None:
    """A BSM in SI units, or None if it lacks a position, speed or heading."""
    lat = units.lat_from_wire(bsm.pos.lat)
    lon = units.lon_from_wire(bsm.pos.lon)
    speed = units.speed_from_wire(bsm.speed)
    heading = units.heading_from_wire(bsm.heading)
    if lat is None or lon is None or speed is None or heading is None:
        return None
    x, y, _ = frame.to_local(lat, lon, frame.h0_m)
    accel = units.accel_from_wire(bsm.accel_set.long) or 0.0
    return RemoteState(
        temp_id=bytes(bsm.id),
        t_s=time_from_sec_mark(bsm.sec_mark, now_s, epoch),
        x=float(x),
        y=float(y),
        speed_mps=speed,
        heading_rad=units.compass_deg_to_enu_yaw_rad(heading),
        accel_mps2=accel,
        length_m=units.size_cm_from_wire(bsm.size.length) or 5.0,
        width_m=units.size_cm_from_wire(bsm.size.width) or 2.0,
        sigma_major_m=units.semi_major_from_wire(bsm.accuracy.semi_major),
        kind_class=bsm.vehicle_class,
        hard_braking=bool(bsm.safety_ext.events & (1 << day1_pb2.EVENT_HARD_BRAKING)),
    )


def encode_map(
    lanes: list[tuple[str, list[tuple[float, float]], float, float | None]],
    *,
    node_id: int,
    name: str,
    frame: LocalFrame,
    t_s: float,
    epoch: datetime,
    msg_count: int,
) -> frame_pb2.MessageFrame:
    """A MapData with one node at the frame origin and one link per lane (id, centreline, width, limit)."""
    ref_lat = units.lat_to_wire(frame.lat0_deg)
    ref_lon = units.lon_to_wire(frame.lon0_deg)
    links = []
    for k, (lane_name, points, width_m, limit_mps) in enumerate(lanes, start=1):
        limits = (
            [] if limit_mps is None else [day1_pb2.RegulatorySpeedLimit(type=5, speed=units.speed_to_wire(limit_mps))]
        )
        offsets = []
        for x, y in points:
            lat, lon = frame.to_wire(x, y)
            offsets.append(common_pb2.PositionOffsetLLV(offset_lat=lat - ref_lat, offset_lon=lon - ref_lon))
        lane = day1_pb2.Lane(lane_id=k, lane_width=units.size_cm_to_wire(width_m), speed_limits=limits, points=offsets)
        links.append(day1_pb2.Link(upstream_node_id=node_id, name=lane_name, lanes=[lane]))
    node = day1_pb2.Node(
        name=name,
        id=node_id,
        ref_pos=common_pb2.Position3D(lat=ref_lat, lon=ref_lon, elevation=units.elevation_to_wire(frame.h0_m)),
        in_links=links,
    )
    return frame_pb2.MessageFrame(
        map=day1_pb2.MapData(msg_cnt=units.msg_cnt(msg_count), timestamp=units.minute_of_year(t_s, epoch), nodes=[node])
    )
