"""RSM (T/CSAE 53 Road Side Message: the road users a roadside unit perceives) <-> SI."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from v2x import units
from v2x.geodesy import LocalFrame
from v2x.units import R95_PER_SIGMA, time_from_sec_mark
from v2x.wire import common_pb2, day1_pb2, frame_pb2
from v2x.wire.bsm import VEHICLE_CLASS, RemoteState
from v2x.wire.envelope import temporary_id

# RSM ParticipantType of an actor kind, and of a BSM's vehicleClass (pedestrian 82, bicycle 85: CSAE 53).
PARTICIPANT_TYPE = {
    "car": day1_pb2.PARTICIPANT_MOTOR,
    "truck": day1_pb2.PARTICIPANT_MOTOR,
    "bus": day1_pb2.PARTICIPANT_MOTOR,
    "emergency": day1_pb2.PARTICIPANT_MOTOR,
    "pedestrian": day1_pb2.PARTICIPANT_PEDESTRIAN,
    "cyclist": day1_pb2.PARTICIPANT_NON_MOTOR,
}
VRU_TYPES = frozenset({day1_pb2.PARTICIPANT_PEDESTRIAN, day1_pb2.PARTICIPANT_NON_MOTOR})
# RSM SourceType of a roadside sensor kind; several kinds fused together are "integrated".
SOURCE_OF_SENSOR = {
    "camera": day1_pb2.SOURCE_VIDEO,
    "radar": day1_pb2.SOURCE_MICROWAVE_RADAR,
    "lidar": day1_pb2.SOURCE_LIDAR,
    "integrated": day1_pb2.SOURCE_INTEGRATED,
}
RSM_MAX_PARTICIPANTS = 16  # CSAE 53 RSM: 1..16 participants per message


@dataclass(frozen=True)
class PerceivedObject:
    """A road user as a roadside unit's perception reports it (SI, local frame): one RSM participant."""

    ptc_id: int  # 0..65535, stable while the object is tracked
    kind: str  # actor kind: car, truck, bus, emergency, pedestrian, cyclist
    source: str  # camera, radar, lidar or integrated
    t_s: float  # the time the measurement refers to
    x: float
    y: float
    speed_mps: float
    heading_rad: float  # ENU yaw
    length_m: float
    width_m: float
    sigma_m: float  # 1-sigma position error per axis
    speed_sigma_mps: float | None = None  # 1-sigma velocity error per axis (SSM's speed confidence)


def participant_data(
    obj: PerceivedObject, *, ref_lat: int, ref_lon: int, frame: LocalFrame, epoch: datetime
) -> day1_pb2.ParticipantData:
    """One perceived object as ParticipantData (RSM, and SSM's detected participants): position as an
    offset from the reference position ``(ref_lat, ref_lon)`` (wire units), posConfidence from the 95 %
    radius 2.448 sigma, secMark of the measurement, speed, heading, size, type and source."""
    dlat, dlon = frame.offset_to_wire(ref_lat, ref_lon, obj.x, obj.y)
    return day1_pb2.ParticipantData(
        ptc_type=PARTICIPANT_TYPE.get(obj.kind, day1_pb2.PARTICIPANT_UNKNOWN),
        ptc_id=obj.ptc_id,
        source=SOURCE_OF_SENSOR.get(obj.source, day1_pb2.SOURCE_UNKNOWN),
        sec_mark=units.sec_mark(obj.t_s, epoch),
        pos=common_pb2.PositionOffsetLLV(offset_lat=dlat, offset_lon=dlon),
        pos_confidence=common_pb2.PositionConfidenceSet(
            pos=units.position_confidence(R95_PER_SIGMA * obj.sigma_m), elevation=0
        ),
        speed=units.speed_to_wire(obj.speed_mps),
        heading=units.heading_to_wire(units.enu_yaw_rad_to_compass_deg(obj.heading_rad)),
        accel_set=common_pb2.AccelerationSet4Way(
            long=units.accel_to_wire(None),
            lat=units.accel_to_wire(None),
            vert=units.vert_accel_to_wire(None),
            yaw=units.yaw_rate_to_wire(0.0),
        ),
        size=common_pb2.VehicleSize(
            width=units.size_cm_to_wire(obj.width_m, max_cm=units.VEHICLE_WIDTH_MAX),
            length=units.size_cm_to_wire(obj.length_m),
            height=0,
        ),
        vehicle_class=VEHICLE_CLASS.get(obj.kind, 0),
    )


def encode_rsm(
    objects: list[PerceivedObject],
    *,
    actor_id: str,
    ref_x: float,
    ref_y: float,
    frame: LocalFrame,
    epoch: datetime,
    msg_count: int,
) -> frame_pb2.MessageFrame:
    """An RSM from ``actor_id`` (its id: :func:`temporary_id`) with refPos at ``(ref_x, ref_y)`` (the RSU)
    and one ParticipantData per object (at most 16): position as an offset from refPos, posConfidence from
    the 95 % radius 2.448 sigma, secMark of the measurement, speed, heading, size, type and source."""
    if not 1 <= len(objects) <= RSM_MAX_PARTICIPANTS:
        raise ValueError(f"an RSM carries 1..{RSM_MAX_PARTICIPANTS} participants, got {len(objects)}")
    ref_lat, ref_lon = frame.to_wire(ref_x, ref_y)
    participants = [
        participant_data(obj, ref_lat=ref_lat, ref_lon=ref_lon, frame=frame, epoch=epoch) for obj in objects
    ]
    rsm = day1_pb2.RSM(
        msg_cnt=units.msg_cnt(msg_count),
        id=temporary_id(actor_id),
        ref_pos=common_pb2.Position3D(lat=ref_lat, lon=ref_lon, elevation=units.elevation_to_wire(frame.h0_m)),
        participants=participants,
    )
    return frame_pb2.MessageFrame(rsm=rsm)


def decode_rsm(rsm: day1_pb2.RSM, *, now_s: float, frame: LocalFrame, epoch: datetime) -> list[RemoteState]:
    """The participants of an RSM as remote states (``temp_id`` = the RSM's id, ``ptc_id`` set); those
    without a speed or heading are left out. ``sigma_major_m`` is the posConfidence bound / 2.448 (None
    when unavailable)."""
    out = []
    for p in rsm.participants:
        state = participant_state(p, bytes(rsm.id), rsm.ref_pos, now_s=now_s, frame=frame, epoch=epoch)
        if state is not None:
            out.append(state)
    return out


def participant_state(
    p: day1_pb2.ParticipantData,
    sender_id: bytes,
    ref_pos: common_pb2.Position3D,
    *,
    now_s: float,
    frame: LocalFrame,
    epoch: datetime,
) -> RemoteState | None:
    """One ParticipantData (of an RSM or an SSM from ``sender_id``, offsets from ``ref_pos``) as a remote
    state (``temp_id`` = the sender's id, ``ptc_id`` set); None without a speed or heading."""
    speed = units.speed_from_wire(p.speed)
    heading = units.heading_from_wire(p.heading)
    if speed is None or heading is None:
        return None
    x, y = frame.offset_from_wire(ref_pos.lat, ref_pos.lon, p.pos.offset_lat, p.pos.offset_lon)
    bound = units.position_confidence_bound_m(p.pos_confidence.pos)
    return RemoteState(
        temp_id=sender_id,
        t_s=time_from_sec_mark(p.sec_mark, now_s, epoch),
        x=float(x),
        y=float(y),
        speed_mps=speed,
        heading_rad=units.compass_deg_to_enu_yaw_rad(heading),
        accel_mps2=units.accel_from_wire(p.accel_set.long) or 0.0,
        length_m=units.size_cm_from_wire(p.size.length) or 0.5,
        width_m=units.size_cm_from_wire(p.size.width) or 0.5,
        sigma_major_m=None if bound is None else bound / R95_PER_SIGMA,
        kind_class=p.vehicle_class,
        events=0,
        ptc_type=int(p.ptc_type),
        ptc_id=p.ptc_id,
        source=int(p.source),
        participant_id=bytes(p.id) if len(p.id) == 8 else b"",
    )
