"""The Day-2 messages of T/CSAE 157-2020 <-> SI: SSM (sensor sharing), PSM (personal safety), VIR (vehicle
intention and request), RSC (roadside coordination) and CLPMM (platooning management).

Units are converted only through ``v2x.units``; positions are local-frame metres (``LocalFrame``), times
simulation seconds. Every decoder checks the ranges of what it reads and raises ``ValueError`` for a value
outside them (a receiver rejects the message as ``out_of_range``); list lengths beyond the standard's
bounds are out of range too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from v2x import units
from v2x.geodesy import LocalFrame
from v2x.units import R95_PER_SIGMA, time_from_sec_mark
from v2x.wire import common_pb2, day1_pb2, day2_pb2, frame_pb2
from v2x.wire.bsm import VEHICLE_CLASS, RemoteState
from v2x.wire.envelope import temporary_id
from v2x.wire.rsm import PerceivedObject, participant_data, participant_state

# List bounds (T/CSAE 157-2020).
SSM_MAX_PARTICIPANTS = 512
SSM_MAX_OBSTACLES = 64
SSM_MAX_REGIONS = 8
POLYGON_POINTS = (3, 32)
PATH_HISTORY_MAX = 23
PLANNING_MAX = 16
VIR_MAX_REQUESTS = 8
RSC_MAX_VEHICLES = 16
CLPMM_MAX_MEMBERS = 32
REQ_ID_MAX = 255
REQ_PRIORITY_MAX = 7
LANE_ID_MAX = 255
OBSTACLE_TYPE_MAX = 10
PTC_ID_MAX = 65535
ID_OCTETS = 8

#: DriveBehavior (T/CSAE 157): bit n of the bit string = behaviour n.
DRIVE_BEHAVIOR = (
    "straight",
    "lane_change_left",
    "lane_change_right",
    "ramp_in",
    "ramp_out",
    "intersection_straight",
    "intersection_left",
    "intersection_right",
    "intersection_u_turn",
    "stop_and_go",
    "stop",
    "slow_down",
    "speed_up",
    "parking",
)
DRIVE_BEHAVIOR_BITS = len(DRIVE_BEHAVIOR)

EQUIPMENT_TYPE = {
    "unknown": day2_pb2.EQUIPMENT_UNKNOWN,
    "rsu": day2_pb2.EQUIPMENT_RSU,
    "obu": day2_pb2.EQUIPMENT_OBU,
    "vru": day2_pb2.EQUIPMENT_VRU,
}
EQUIPMENT_NAME: dict[int, str] = {v: k for k, v in EQUIPMENT_TYPE.items()}
# PSM PersonalDeviceUserType of an actor kind, and the RSM ParticipantType a receiver files it under.
PERSONAL_TYPE = {"pedestrian": day2_pb2.PERSONAL_PEDESTRIAN, "cyclist": day2_pb2.PERSONAL_PEDALCYCLIST}
PARTICIPANT_OF_PERSONAL: dict[int, int] = {
    day2_pb2.PERSONAL_UNAVAILABLE: day1_pb2.PARTICIPANT_PEDESTRIAN,
    day2_pb2.PERSONAL_PEDESTRIAN: day1_pb2.PARTICIPANT_PEDESTRIAN,
    day2_pb2.PERSONAL_PEDALCYCLIST: day1_pb2.PARTICIPANT_NON_MOTOR,
    day2_pb2.PERSONAL_ROADWORKER: day1_pb2.PARTICIPANT_PEDESTRIAN,
    day2_pb2.PERSONAL_ANIMAL: day1_pb2.PARTICIPANT_UNKNOWN,
}
KIND_OF_PARTICIPANT: dict[int, str] = {
    day1_pb2.PARTICIPANT_PEDESTRIAN: "pedestrian",
    day1_pb2.PARTICIPANT_NON_MOTOR: "cyclist",
}
REQ_TYPE = {
    "lane_change": day2_pb2.REQ_LANE_CHANGE,
    "clear_the_way": day2_pb2.REQ_CLEAR_THE_WAY,
    "signal_priority": day2_pb2.REQ_SIGNAL_PRIORITY,
    "sensor_sharing": day2_pb2.REQ_SENSOR_SHARING,
    "parking": day2_pb2.REQ_PARKING,
}
REQ_NAME: dict[int, str] = {v: k for k, v in REQ_TYPE.items()}
REQ_STATUS = {
    "request": day2_pb2.REQ_STATUS_REQUEST,
    "confirmed": day2_pb2.REQ_STATUS_CONFIRMED,
    "cancel": day2_pb2.REQ_STATUS_CANCEL,
    "complete": day2_pb2.REQ_STATUS_COMPLETE,
}
REQ_STATUS_NAME: dict[int, str] = {day2_pb2.REQ_STATUS_UNKNOWN: "unknown", **{v: k for k, v in REQ_STATUS.items()}}
PLATOON_ROLE = {
    "free": day2_pb2.ROLE_FREE,
    "leader": day2_pb2.ROLE_LEADER,
    "follower": day2_pb2.ROLE_FOLLOWER,
    "tail": day2_pb2.ROLE_TAIL,
}
PLATOON_ROLE_NAME: dict[int, str] = {v: k for k, v in PLATOON_ROLE.items()}
PLATOON_STATUS = {
    "unknown": day2_pb2.PLATOON_STATUS_UNKNOWN,
    "navigating": day2_pb2.PLATOON_STATUS_NAVIGATING,
    "joining": day2_pb2.PLATOON_STATUS_JOINING,
    "keeping": day2_pb2.PLATOON_STATUS_KEEPING,
    "leaving": day2_pb2.PLATOON_STATUS_LEAVING,
    "dissolving": day2_pb2.PLATOON_STATUS_DISSOLVING,
}
PLATOON_STATUS_NAME: dict[int, str] = {v: k for k, v in PLATOON_STATUS.items()}


# ------------------------------------------------------------------------------------------------------
# Shared pieces
# ------------------------------------------------------------------------------------------------------


def behaviors_to_wire(names: Sequence[str]) -> int:
    """DriveBehavior names -> the bit string (KeyError for a name not in DRIVE_BEHAVIOR)."""
    bits = 0
    for name in names:
        bits |= 1 << DRIVE_BEHAVIOR.index(name)
    return bits


def behaviors_from_wire(raw: int, name: str = "drive behaviour") -> frozenset[str]:
    """The DriveBehavior bit string -> names; a bit beyond the 14 defined raises ValueError."""
    bits = units.bit_string_from_wire(raw, DRIVE_BEHAVIOR_BITS, name)
    return frozenset(b for k, b in enumerate(DRIVE_BEHAVIOR) if bits & (1 << k))


def _count(items: Sequence[object] | object, most: int, name: str, least: int = 0) -> None:
    n = len(items)  # type: ignore[arg-type]
    if not least <= n <= most:
        raise ValueError(f"{name}: {n} items, outside {least}..{most}")


def _id(raw: bytes, name: str, *, optional: bool = False) -> bytes:
    if optional and not raw:
        return b""
    if len(raw) != ID_OCTETS:
        raise ValueError(f"{name}: {len(raw)} octets, not {ID_OCTETS}")
    return bytes(raw)


def _ref(pos: common_pb2.Position3D, name: str) -> tuple[int, int]:
    """A reference position's (lat, lon) in wire units, checked; unavailable is out of range here (the
    offsets would hang from nothing)."""
    lat, lon = units.lat_from_wire(pos.lat), units.lon_from_wire(pos.lon)
    if lat is None or lon is None:
        raise ValueError(f"{name}: reference position unavailable")
    units.elevation_from_wire(pos.elevation)
    return pos.lat, pos.lon


def _ref_pos(x: float, y: float, frame: LocalFrame) -> common_pb2.Position3D:
    lat, lon = frame.to_wire(x, y)
    return common_pb2.Position3D(lat=lat, lon=lon, elevation=units.elevation_to_wire(frame.h0_m))


@dataclass(frozen=True)
class PlannedPoint:
    """A point of a planned path or a path guidance (SI, local frame): where, and how long after the
    message's time the sender expects it (or advises it) to be there."""

    x: float
    y: float
    after_s: float | None
    speed_mps: float | None = None
    heading_deg: float | None = None  # compass


def _planning_to_wire(
    points: Sequence[PlannedPoint], ref_lat: int, ref_lon: int, frame: LocalFrame
) -> list[day2_pb2.PlanningPoint]:
    out = []
    for p in points[:PLANNING_MAX]:
        dlat, dlon = frame.offset_to_wire(ref_lat, ref_lon, p.x, p.y)
        out.append(
            day2_pb2.PlanningPoint(
                pos=common_pb2.PositionOffsetLLV(offset_lat=dlat, offset_lon=dlon),
                time_offset=units.time_offset_to_wire(p.after_s),
                speed=units.speed_to_wire(p.speed_mps),
                heading=units.heading_to_wire(p.heading_deg),
            )
        )
    return out


def _planning_from_wire(
    points: Sequence[day2_pb2.PlanningPoint], ref_lat: int, ref_lon: int, frame: LocalFrame, name: str
) -> tuple[PlannedPoint, ...]:
    _count(points, PLANNING_MAX, name)
    out = []
    for p in points:
        x, y = frame.offset_from_wire(ref_lat, ref_lon, p.pos.offset_lat, p.pos.offset_lon)
        out.append(
            PlannedPoint(
                float(x),
                float(y),
                units.time_offset_from_wire(p.time_offset),
                units.speed_from_wire(p.speed),
                units.heading_from_wire(p.heading),
            )
        )
    return tuple(out)


def _polygon_from_wire(
    poly: day2_pb2.Polygon, ref_lat: int, ref_lon: int, frame: LocalFrame, name: str
) -> tuple[tuple[float, float], ...]:
    _count(poly.points, POLYGON_POINTS[1], name, POLYGON_POINTS[0])
    return tuple(
        tuple(map(float, frame.offset_from_wire(ref_lat, ref_lon, p.offset_lat, p.offset_lon)))  # type: ignore[misc]
        for p in poly.points
    )


def _polygon_to_wire(
    points: Sequence[tuple[float, float]], ref_lat: int, ref_lon: int, frame: LocalFrame
) -> day2_pb2.Polygon:
    out = []
    for x, y in points:
        dlat, dlon = frame.offset_to_wire(ref_lat, ref_lon, x, y)
        out.append(common_pb2.PositionOffsetLLV(offset_lat=dlat, offset_lon=dlon))
    return day2_pb2.Polygon(points=out)


# ------------------------------------------------------------------------------------------------------
# SSM: sensor sharing
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SharedObstacle:
    """An obstacle (not a road user) another station's sensors detected (SI, local frame)."""

    obs_id: int
    obs_type: int  # 0 unknown, 1 rockfall, ... 10 unknown fragments (docs/PROTOCOL.md)
    t_s: float
    x: float
    y: float
    length_m: float | None
    width_m: float | None
    sigma_major_m: float | None


@dataclass(frozen=True)
class SensorShare:
    """What an SSM says: who sensed (``equipment``: rsu, obu, vru, unknown), from where, what it covers,
    the road users (``participants``: remote states named ``{ssm id hex}/{ptcId}``, as RSM participants
    are) and the obstacles it detected."""

    sender_id: bytes
    equipment: str
    t_s: float
    sensor_x: float
    sensor_y: float
    regions: tuple[tuple[tuple[float, float], ...], ...]
    participants: tuple[RemoteState, ...]
    obstacles: tuple[SharedObstacle, ...]


def encode_ssm(
    objects: Sequence[PerceivedObject],
    *,
    actor_id: str,
    equipment: str,
    sensor_x: float,
    sensor_y: float,
    t_s: float,
    frame: LocalFrame,
    epoch: datetime,
    msg_count: int,
    regions: Sequence[Sequence[tuple[float, float]]] = (),
) -> frame_pb2.MessageFrame:
    """An SSM from ``actor_id`` (its id: :func:`temporary_id`) with the sensor position at ``(sensor_x,
    sensor_y)``: one DetectedParticipant per object (ParticipantData as in an RSM, with the speed confidence
    from the object's velocity error at 95 %, heading confidence unavailable, type confidence 100 %: the
    sensor model classifies perfectly) and the detected regions' polygons."""
    _count(objects, SSM_MAX_PARTICIPANTS, "participants")
    _count(regions, SSM_MAX_REGIONS, "detected regions")
    ref_lat, ref_lon = frame.to_wire(sensor_x, sensor_y)
    participants = [
        day2_pb2.DetectedParticipant(
            ptc=participant_data(obj, ref_lat=ref_lat, ref_lon=ref_lon, frame=frame, epoch=epoch),
            type_confidence=units.confidence_to_wire(1.0),
            speed_confidence=units.speed_confidence(
                None if obj.speed_sigma_mps is None else R95_PER_SIGMA * obj.speed_sigma_mps
            ),
            heading_confidence=units.heading_confidence(None),
        )
        for obj in objects
    ]
    ssm = day2_pb2.SSM(
        msg_cnt=units.msg_cnt(msg_count),
        id=temporary_id(actor_id),
        equipment_type=EQUIPMENT_TYPE[equipment],
        sec_mark=units.sec_mark(t_s, epoch),
        sensor_pos=common_pb2.Position3D(lat=ref_lat, lon=ref_lon, elevation=units.elevation_to_wire(frame.h0_m)),
        detected_region=[_polygon_to_wire(r, ref_lat, ref_lon, frame) for r in regions],
        participants=participants,
    )
    return frame_pb2.MessageFrame(ssm=ssm)


def decode_ssm(ssm: day2_pb2.SSM, *, now_s: float, frame: LocalFrame, epoch: datetime) -> SensorShare:
    """An SSM in SI units. Participants without a speed or heading are left out (as in an RSM); every
    range is checked (ValueError)."""
    sender = _id(ssm.id, "ssm id")
    equipment = EQUIPMENT_NAME.get(units.code_from_wire(ssm.equipment_type, len(EQUIPMENT_TYPE) - 1, "equipmentType"))
    ref_lat, ref_lon = _ref(ssm.sensor_pos, "ssm sensorPos")
    _count(ssm.detected_region, SSM_MAX_REGIONS, "detected regions")
    _count(ssm.participants, SSM_MAX_PARTICIPANTS, "participants")
    _count(ssm.obstacles, SSM_MAX_OBSTACLES, "obstacles")
    regions = tuple(_polygon_from_wire(r, ref_lat, ref_lon, frame, "detected region") for r in ssm.detected_region)
    sensor_x, sensor_y = frame.offset_from_wire(ref_lat, ref_lon, 0, 0)
    participants = []
    for d in ssm.participants:
        p = d.ptc
        units.code_from_wire(p.ptc_type, day1_pb2.PARTICIPANT_RSU, "ptcType")
        units.code_from_wire(p.source, day1_pb2.SOURCE_INTEGRATED, "source")
        units.code_from_wire(p.ptc_id, PTC_ID_MAX, "ptcId")
        units.confidence_from_wire(d.type_confidence)
        units.speed_confidence_bound_mps(d.speed_confidence)
        units.heading_confidence_bound_deg(d.heading_confidence)
        _count(d.tracking, PATH_HISTORY_MAX, "tracking")
        _count(d.planning, PLANNING_MAX, "planning")
        if d.HasField("polygon"):
            _polygon_from_wire(d.polygon, ref_lat, ref_lon, frame, "participant polygon")
        state = participant_state(p, sender, ssm.sensor_pos, now_s=now_s, frame=frame, epoch=epoch)
        if state is not None:
            participants.append(state)
    obstacles = []
    for o in ssm.obstacles:
        units.code_from_wire(o.obs_type, OBSTACLE_TYPE_MAX, "obsType")
        units.confidence_from_wire(o.obs_type_confidence)
        units.code_from_wire(o.obs_id, PTC_ID_MAX, "obsId")
        units.code_from_wire(o.source, day1_pb2.SOURCE_INTEGRATED, "source")
        units.speed_from_wire(o.speed)
        units.heading_from_wire(o.heading)
        units.height_from_wire(o.size.height)
        x, y = frame.offset_from_wire(ref_lat, ref_lon, o.pos.offset_lat, o.pos.offset_lon)
        bound = units.position_confidence_bound_m(o.pos_confidence.pos)
        obstacles.append(
            SharedObstacle(
                obs_id=o.obs_id,
                obs_type=o.obs_type,
                t_s=time_from_sec_mark(o.sec_mark, now_s, epoch),
                x=float(x),
                y=float(y),
                length_m=units.size_cm_from_wire(o.size.length),
                width_m=units.size_cm_from_wire(o.size.width),
                sigma_major_m=None if bound is None else bound / R95_PER_SIGMA,
            )
        )
    return SensorShare(
        sender_id=sender,
        equipment=equipment or "unknown",
        t_s=time_from_sec_mark(ssm.sec_mark, now_s, epoch),
        sensor_x=float(sensor_x),
        sensor_y=float(sensor_y),
        regions=regions,
        participants=tuple(participants),
        obstacles=tuple(obstacles),
    )


# ------------------------------------------------------------------------------------------------------
# PSM: personal safety message
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonalState:
    """What a personal device (a pedestrian's or cyclist's phone) knows of its user (SI, local frame)."""

    kind: str  # pedestrian or cyclist
    x: float
    y: float
    speed_mps: float
    heading_rad: float  # ENU yaw
    accel_mps2: float
    radius_m: float  # the user's footprint radius
    sigma_major_m: float | None
    sigma_minor_m: float | None


def encode_psm(
    own: PersonalState, *, actor_id: str, t_s: float, msg_count: int, frame: LocalFrame, epoch: datetime
) -> frame_pb2.MessageFrame:
    """A PSM from ``actor_id``'s device (its id: :func:`temporary_id`)."""
    lat, lon, _ = frame.to_geodetic(own.x, own.y)
    sigma = own.sigma_major_m
    psm = day2_pb2.PSM(
        msg_cnt=units.msg_cnt(msg_count),
        id=temporary_id(actor_id),
        sec_mark=units.sec_mark(t_s, epoch),
        user_type=PERSONAL_TYPE.get(own.kind, day2_pb2.PERSONAL_UNAVAILABLE),
        pos=common_pb2.Position3D(
            lat=units.lat_to_wire(lat), lon=units.lon_to_wire(lon), elevation=units.elevation_to_wire(frame.h0_m)
        ),
        accuracy=common_pb2.PositionalAccuracy(
            semi_major=units.semi_major_to_wire(sigma),
            semi_minor=units.semi_major_to_wire(own.sigma_minor_m),
            orientation=units.accuracy_orientation_to_wire(None),
        ),
        pos_confidence=common_pb2.PositionConfidenceSet(
            pos=units.position_confidence(None if sigma is None else R95_PER_SIGMA * sigma), elevation=0
        ),
        speed=units.speed_to_wire(own.speed_mps),
        heading=units.heading_to_wire(units.enu_yaw_rad_to_compass_deg(own.heading_rad)),
        accel_set=common_pb2.AccelerationSet4Way(
            long=units.accel_to_wire(own.accel_mps2),
            lat=units.accel_to_wire(None),
            vert=units.vert_accel_to_wire(None),
            yaw=units.yaw_rate_to_wire(0.0),
        ),
        overall_radius=units.overall_radius_to_wire(own.radius_m),
    )
    return frame_pb2.MessageFrame(psm=psm)


def decode_psm(psm: day2_pb2.PSM, *, now_s: float, frame: LocalFrame, epoch: datetime) -> RemoteState | None:
    """A PSM as a remote road user (ParticipantType pedestrian or non-motor, source v2x, its footprint the
    square around its overall radius), or None if it lacks a position, speed or heading."""
    sender = _id(psm.id, "psm id")
    user = units.code_from_wire(psm.user_type, day2_pb2.PERSONAL_ANIMAL, "userType")
    _count(psm.path_history, PATH_HISTORY_MAX, "pathHistory")
    _count(psm.path_planning, PLANNING_MAX, "pathPlanning")
    lat = units.lat_from_wire(psm.pos.lat)
    lon = units.lon_from_wire(psm.pos.lon)
    speed = units.speed_from_wire(psm.speed)
    heading = units.heading_from_wire(psm.heading)
    units.position_confidence_bound_m(psm.pos_confidence.pos)
    radius = units.overall_radius_from_wire(psm.overall_radius)
    sigma = units.semi_major_from_wire(psm.accuracy.semi_major)
    accel = units.accel_from_wire(psm.accel_set.long) or 0.0
    if lat is None or lon is None or speed is None or heading is None:
        return None
    x, y, _ = frame.to_local(lat, lon, frame.h0_m)
    side = 2 * radius if radius is not None else 0.5
    ptc_type = PARTICIPANT_OF_PERSONAL[user]
    kind = KIND_OF_PARTICIPANT.get(ptc_type, "")
    return RemoteState(
        temp_id=sender,
        t_s=time_from_sec_mark(psm.sec_mark, now_s, epoch),
        x=float(x),
        y=float(y),
        speed_mps=speed,
        heading_rad=units.compass_deg_to_enu_yaw_rad(heading),
        accel_mps2=accel,
        length_m=side,
        width_m=side,
        sigma_major_m=sigma,
        kind_class=VEHICLE_CLASS.get(kind, 0),
        events=0,
        ptc_type=ptc_type,
    )


# ------------------------------------------------------------------------------------------------------
# VIR: vehicle intention and request
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VehicleRequest:
    """One request of a VIR (SI)."""

    req_id: int
    type: str  # a name of REQ_TYPE
    status: str = "request"  # a name of REQ_STATUS
    priority: int = 0
    target_vehicle: bytes = b""  # 8 octets or empty
    target_rsu: bytes = b""
    target_lane: int = 0
    intersection_id: int = 0
    phase_id: int = 0
    life_time_s: float | None = None


@dataclass(frozen=True)
class Intention:
    """What a VIR says: the sender's position, current behaviour, planned path and requests."""

    sender_id: bytes
    t_s: float
    x: float
    y: float
    behaviors: frozenset[str]
    path: tuple[PlannedPoint, ...]
    requests: tuple[VehicleRequest, ...]


def encode_vir(
    intention: Intention, *, t_s: float, msg_count: int, frame: LocalFrame, epoch: datetime
) -> frame_pb2.MessageFrame:
    """A VIR (``intention.sender_id``: the sender's temporary id; ``intention.t_s`` is ignored: ``t_s``)."""
    _count(intention.requests, VIR_MAX_REQUESTS, "requests")
    ref = _ref_pos(intention.x, intention.y, frame)
    vir = day2_pb2.VIR(
        msg_cnt=units.msg_cnt(msg_count),
        id=intention.sender_id,
        sec_mark=units.sec_mark(t_s, epoch),
        ref_pos=ref,
        current_behavior=behaviors_to_wire(sorted(intention.behaviors)),
        path=_planning_to_wire(intention.path, ref.lat, ref.lon, frame),
        requests=[
            day2_pb2.Request(
                req_id=r.req_id,
                status=REQ_STATUS[r.status],
                req_priority=r.priority,
                target_vehicle=r.target_vehicle,
                target_rsu=r.target_rsu,
                type=REQ_TYPE[r.type],
                target_lane=r.target_lane,
                intersection_id=r.intersection_id,
                phase_id=r.phase_id,
                life_time=units.time_offset_to_wire(r.life_time_s),
            )
            for r in intention.requests
        ],
    )
    return frame_pb2.MessageFrame(vir=vir)


def decode_vir(vir: day2_pb2.VIR, *, now_s: float, frame: LocalFrame, epoch: datetime) -> Intention:
    """A VIR in SI units; every range is checked (ValueError)."""
    sender = _id(vir.id, "vir id")
    ref_lat, ref_lon = _ref(vir.ref_pos, "vir refPos")
    _count(vir.requests, VIR_MAX_REQUESTS, "requests")
    x, y = frame.offset_from_wire(ref_lat, ref_lon, 0, 0)
    requests = []
    for r in vir.requests:
        kind = REQ_NAME.get(r.type)
        if kind is None:
            raise ValueError(f"request type {r.type} outside 1..{len(REQ_TYPE)}")
        requests.append(
            VehicleRequest(
                req_id=units.code_from_wire(r.req_id, REQ_ID_MAX, "reqId"),
                type=kind,
                status=REQ_STATUS_NAME[units.code_from_wire(r.status, len(REQ_STATUS), "status")],
                priority=units.code_from_wire(r.req_priority, REQ_PRIORITY_MAX, "reqPriority"),
                target_vehicle=_id(r.target_vehicle, "targetVehicle", optional=True),
                target_rsu=_id(r.target_rsu, "targetRsu", optional=True),
                target_lane=units.code_from_wire(r.target_lane, LANE_ID_MAX, "targetLane"),
                intersection_id=units.code_from_wire(r.intersection_id, 65535, "intersectionId"),
                phase_id=units.code_from_wire(r.phase_id, 255, "phaseId"),
                life_time_s=units.time_offset_from_wire(r.life_time),
            )
        )
    return Intention(
        sender_id=sender,
        t_s=time_from_sec_mark(vir.sec_mark, now_s, epoch),
        x=float(x),
        y=float(y),
        behaviors=behaviors_from_wire(vir.current_behavior),
        path=_planning_from_wire(vir.path, ref_lat, ref_lon, frame, "path"),
        requests=tuple(requests),
    )


# ------------------------------------------------------------------------------------------------------
# RSC: roadside coordination
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coordination:
    """One vehicle's drive suggestion in an RSC (SI): what to do, for how long, along which path, when."""

    vehicle_id: bytes  # the vehicle's temporary id
    behaviors: frozenset[str]
    life_time_s: float | None = None
    path: tuple[PlannedPoint, ...] = ()
    window_s: tuple[float | None, float | None] = (None, None)  # after the RSC's time
    speed_mps: float | None = None
    target_lane: int = 0
    req_id: int = 0


def encode_rsc(
    items: Sequence[Coordination],
    *,
    actor_id: str,
    ref_x: float,
    ref_y: float,
    t_s: float,
    msg_count: int,
    frame: LocalFrame,
    epoch: datetime,
) -> frame_pb2.MessageFrame:
    """An RSC from ``actor_id`` (an RSU or the edge platform) for up to 16 vehicles."""
    _count(items, RSC_MAX_VEHICLES, "coordinates")
    ref = _ref_pos(ref_x, ref_y, frame)
    rsc = day2_pb2.RSC(
        msg_cnt=units.msg_cnt(msg_count),
        id=temporary_id(actor_id),
        sec_mark=units.sec_mark(t_s, epoch),
        ref_pos=ref,
        coordinates=[
            day2_pb2.VehicleCoordination(
                veh_id=c.vehicle_id,
                drive_suggestion=day2_pb2.DriveSuggestion(
                    suggestion=behaviors_to_wire(sorted(c.behaviors)),
                    life_time=units.time_offset_to_wire(c.life_time_s),
                ),
                path_guidance=_planning_to_wire(c.path, ref.lat, ref.lon, frame),
                time_window_start=units.time_offset_to_wire(c.window_s[0]),
                time_window_end=units.time_offset_to_wire(c.window_s[1]),
                recommended_speed=units.speed_to_wire(c.speed_mps),
                target_lane=c.target_lane,
                req_id=c.req_id,
            )
            for c in items
        ],
    )
    return frame_pb2.MessageFrame(rsc=rsc)


def decode_rsc(rsc: day2_pb2.RSC, *, frame: LocalFrame) -> tuple[bytes, tuple[Coordination, ...]]:
    """An RSC in SI units: (the sender's id, the vehicles' suggestions); every range is checked."""
    sender = _id(rsc.id, "rsc id")
    ref_lat, ref_lon = _ref(rsc.ref_pos, "rsc refPos")
    _count(rsc.coordinates, RSC_MAX_VEHICLES, "coordinates")
    out = []
    for c in rsc.coordinates:
        out.append(
            Coordination(
                vehicle_id=_id(c.veh_id, "vehId"),
                behaviors=behaviors_from_wire(c.drive_suggestion.suggestion, "suggestion"),
                life_time_s=units.time_offset_from_wire(c.drive_suggestion.life_time),
                path=_planning_from_wire(c.path_guidance, ref_lat, ref_lon, frame, "pathGuidance"),
                window_s=(
                    units.time_offset_from_wire(c.time_window_start),
                    units.time_offset_from_wire(c.time_window_end),
                ),
                speed_mps=units.speed_from_wire(c.recommended_speed),
                target_lane=units.code_from_wire(c.target_lane, LANE_ID_MAX, "targetLane"),
                req_id=units.code_from_wire(c.req_id, REQ_ID_MAX, "reqId"),
            )
        )
    return sender, tuple(out)


# ------------------------------------------------------------------------------------------------------
# CLPMM: platooning management
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatoonInfo:
    """What a CLPMM says (SI): the platoon, the sender's role and status, the gap it keeps, the platoon's
    speed and (from the leader) its members in order, as (temporary id, role)."""

    sender_id: bytes
    platoon_id: bytes
    role: str  # free, leader, follower, tail
    status: str  # unknown, navigating, joining, keeping, leaving, dissolving
    gap_s: float | None = None
    gap_m: float | None = None
    target_speed_mps: float | None = None
    members: tuple[tuple[bytes, str], ...] = ()


def encode_clpmm(info: PlatoonInfo, *, t_s: float, msg_count: int, epoch: datetime) -> frame_pb2.MessageFrame:
    """A CLPMM (``info.sender_id``: the sender's temporary id)."""
    _count(info.members, CLPMM_MAX_MEMBERS, "members")
    msg = day2_pb2.CLPMM(
        msg_cnt=units.msg_cnt(msg_count),
        id=info.sender_id,
        sec_mark=units.sec_mark(t_s, epoch),
        platoon_id=info.platoon_id,
        role=PLATOON_ROLE[info.role],
        status=PLATOON_STATUS[info.status],
        lead_gap=units.time_offset_to_wire(info.gap_s),
        lead_distance=units.distance_cm_to_wire(info.gap_m),
        target_speed=units.speed_to_wire(info.target_speed_mps),
        members=[
            day2_pb2.PlatoonMember(id=mid, position=k, role=PLATOON_ROLE[role])
            for k, (mid, role) in enumerate(info.members, start=1)
        ],
    )
    return frame_pb2.MessageFrame(clpmm=msg)


def decode_clpmm(msg: day2_pb2.CLPMM) -> PlatoonInfo:
    """A CLPMM in SI units; every range is checked (members' positions must be 1, 2, ... in order)."""
    sender = _id(msg.id, "clpmm id")
    platoon = _id(msg.platoon_id, "platoonId", optional=True)
    role = PLATOON_ROLE_NAME[units.code_from_wire(msg.role, len(PLATOON_ROLE) - 1, "role")]
    status = PLATOON_STATUS_NAME[units.code_from_wire(msg.status, len(PLATOON_STATUS) - 1, "status")]
    _count(msg.members, CLPMM_MAX_MEMBERS, "members")
    members = []
    for k, m in enumerate(msg.members, start=1):
        if m.position != k:
            raise ValueError(f"members[{k - 1}].position {m.position}, expected {k}")
        mrole = PLATOON_ROLE_NAME[units.code_from_wire(m.role, len(PLATOON_ROLE) - 1, "member role")]
        members.append((_id(m.id, "member id"), mrole))
    return PlatoonInfo(
        sender_id=sender,
        platoon_id=platoon,
        role=role,
        status=status,
        gap_s=units.time_offset_from_wire(msg.lead_gap),
        gap_m=units.distance_cm_from_wire(msg.lead_distance),
        target_speed_mps=units.speed_from_wire(msg.target_speed),
        members=tuple(members),
    )


__all__ = [
    "DRIVE_BEHAVIOR",
    "EQUIPMENT_TYPE",
    "PERSONAL_TYPE",
    "PLATOON_ROLE",
    "PLATOON_STATUS",
    "REQ_STATUS",
    "REQ_TYPE",
    "Coordination",
    "Intention",
    "PersonalState",
    "PlannedPoint",
    "PlatoonInfo",
    "SensorShare",
    "SharedObstacle",
    "VehicleRequest",
    "behaviors_from_wire",
    "behaviors_to_wire",
    "decode_clpmm",
    "decode_psm",
    "decode_rsc",
    "decode_ssm",
    "decode_vir",
    "encode_clpmm",
    "encode_psm",
    "encode_rsc",
    "encode_ssm",
    "encode_vir",
]
