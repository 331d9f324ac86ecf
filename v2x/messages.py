"""The helper layer between protobuf messages (standard integer units) and SI domain values.

Everything that builds or reads a BSM, an RSM, an RSI, an Advisory, a MapData or a SPAT goes through here, and
converts units only through ``v2x.units``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from google.protobuf.message import DecodeError

from v2x import units
from v2x.signals import Approach, Interval
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
APP_BY_NAME = {
    "fcw": testbed_pb2.APP_FCW,
    "icw": testbed_pb2.APP_ICW,
    "rlvw": testbed_pb2.APP_RLVW,
    "glosa": testbed_pb2.APP_GLOSA,
    "vrucw": testbed_pb2.APP_VRUCW,
    "hlw": testbed_pb2.APP_HLW,
    "ebw": testbed_pb2.APP_EBW,
    "avw": testbed_pb2.APP_AVW,
    "clw": testbed_pb2.APP_CLW,
    "ivs": testbed_pb2.APP_IVS,
    "slw": testbed_pb2.APP_SLW,
    "evw": testbed_pb2.APP_EVW,
}
APP_NAME = {v: k for k, v in APP_BY_NAME.items()}
# The BSM's hardBraking event flag is set while the vehicle decelerates at 0.4 g or more: the figure of SAE
# J2945/1 (the BSM minimum performance requirements, hardBraking "deceleration greater than 0.4 g"); CSAE 53
# takes the flag from J2735 and gives no figure of its own.
HARD_BRAKING_MPS2 = 0.4 * units.G0
# VehicleEventFlags (CSAE 53 / SAE J2735) a vehicle sets, by the names scenario files use: ``hard_braking`` is
# set from the vehicle's own deceleration, the others by scripted events (docs/SCENARIOS.md).
VEHICLE_EVENT_BIT = {
    "hazard_lights": day1_pb2.EVENT_HAZARD_LIGHTS,
    "abs": day1_pb2.EVENT_ABS_ACTIVATED,
    "traction_control": day1_pb2.EVENT_TRACTION_CONTROL_LOSS,
    "stability_control": day1_pb2.EVENT_STABILITY_CONTROL_ACTIVATED,
    "hard_braking": day1_pb2.EVENT_HARD_BRAKING,
    "disabled": day1_pb2.EVENT_DISABLED_VEHICLE,
}
VEHICLE_EVENT_TEXT = {
    "hazard_lights": "hazard lights",
    "abs": "ABS activated",
    "traction_control": "traction control activated",
    "stability_control": "stability control activated",
    "hard_braking": "hard braking",
    "disabled": "disabled vehicle",
}
# The emergency vehicle's lights and siren (VehicleEmergencyExtensions lightsUse / sirenUse, CSAE 53 / SAE
# J2735), by the names scenario files use; not VehicleEventFlags: an emergency vehicle sends them in the BSM's
# emergency extension.
EMERGENCY_USE = ("emergency_lights", "siren")
EMERGENCY_USE_TEXT = {"emergency_lights": "emergency lights", "siren": "siren"}
FLAG_TEXT = {**VEHICLE_EVENT_TEXT, **EMERGENCY_USE_TEXT}  # every flag a warning can name
# ResponseType 1 emergency / 2 nonEmergency; SirenInUse and LightbarInUse 1 notInUse / 2 inUse.
RESPONSE_EMERGENCY, RESPONSE_NON_EMERGENCY = 1, 2
NOT_IN_USE, IN_USE = 1, 2
HAZARD_SIGNAL_LIGHT_BIT = 4  # ExteriorLights hazardSignalOn
# BrakeSystemStatus values (CSAE 53 / SAE J2735): pedal 1 off / 2 on; ABS, traction and stability control
# 1 off / 2 on (available, not intervening) / 3 engaged (intervening now).
BRAKE_OFF, BRAKE_ON, BRAKE_ENGAGED = 1, 2, 3
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
RSI_MAX_EVENTS = 8  # CSAE 53 RSI: up to 8 road traffic events (RTEData) per message
RSI_MAX_PATH_POINTS = 32  # CSAE 53 ReferencePath.activePath: PathPointList, 2..32 points
# GB/T 29100-2012 event codes (RTEData.eventType) the testbed names; any other code 0..65535 may be sent
# and is shown by number. Only codes we could check against a public reproduction of the GB/T 29100-2012
# table (the GbEventType list of an open OBU stack) are named here.
RTE_EVENT_TYPE_NAME = {
    407: "road ponding",
    408: "slippery road",
    707: "traffic congestion",
}
# RTEData.eventSource (CSAE 53 EventSource).
RTE_EVENT_SOURCE = {"unknown": 0, "police": 1, "government": 2, "meteorological": 3, "internet": 4, "detection": 5}
RTE_CONFIDENCE_MAX = 200  # CSAE 53 Confidence: 0..200 in 0.005
RSI_MAX_SIGNS = 16  # CSAE 53 RSI: up to 16 road traffic signs (RTSData) per message
# GB 5768.2-2009 signs (RTSData.signType, INTEGER 0..65535 "according to GB 5768.2") the testbed names. The
# CSAE 53 text we work from gives no numbering table for SignType, so these codes are the testbed's own:
# 1xx warning signs (警告标志), 2xx prohibitory signs (禁令标志); a deployment with its own table replaces
# them here. Any other code may be sent and is shown by number.
RTS_SIGN_TYPE_NAME = {
    101: "sharp curve",  # 急弯路
    102: "children",  # 注意儿童 (school zones)
    201: "speed limit",  # 限制速度 (the limit: RTSData.speed_limit)
}
SIGN_SPEED_LIMIT = 201


def parse_envelope(raw: bytes) -> tuple[testbed_pb2.Envelope, frame_pb2.MessageFrame] | None:
    """An Envelope and the MessageFrame inside it, or None if either is not valid protobuf. (Whether the
    frame holds a known message type, ``frame.WhichOneof("msg")``, is the caller's next check.)"""
    env = testbed_pb2.Envelope()
    frame = frame_pb2.MessageFrame()
    try:
        env.ParseFromString(raw)
        frame.ParseFromString(env.frame)
    except DecodeError:
        return None
    return env, frame


R95_PER_SIGMA = 2.448  # 95 % radius of a circular Gaussian in units of its per-axis sigma


def participant_type_of_class(vehicle_class: int) -> int:
    """The RSM ParticipantType of a BSM sender, from its BasicVehicleClass."""
    if vehicle_class == VEHICLE_CLASS["pedestrian"]:
        return day1_pb2.PARTICIPANT_PEDESTRIAN
    if vehicle_class == VEHICLE_CLASS["cyclist"]:
        return day1_pb2.PARTICIPANT_NON_MOTOR
    return day1_pb2.PARTICIPANT_MOTOR


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
    # Event flags set by the driver or the vehicle's systems (names of VEHICLE_EVENT_BIT, not hard_braking,
    # which encode_bsm sets from ``accel_mps2``; and for an emergency vehicle EMERGENCY_USE, which go in the
    # emergency extension).
    flags: frozenset[str] = frozenset()


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
    # VehicleEventFlags as decoded (bit n = VehicleEventFlag n), with the equivalent states of the brake
    # system status (ABS / traction / stability control engaged) and the exterior lights (hazard signal)
    # merged in: see :func:`decode_event_flags`.
    events: int
    # What kind of road user it is (ParticipantType), and for one heard of in an RSM: its ptcId there and
    # the sensor source (SourceType). A BSM sender has ``ptc_id`` None and source SOURCE_V2X.
    ptc_type: int = day1_pb2.PARTICIPANT_MOTOR
    ptc_id: int | None = None
    source: int = day1_pb2.SOURCE_V2X
    # An emergency vehicle's lights / siren in use (names of EMERGENCY_USE): see :func:`decode_emergency_use`.
    emergency_use: frozenset[str] = frozenset()

    def has(self, flag: str) -> bool:
        """Is the event flag ``flag`` (a name of VEHICLE_EVENT_BIT or EMERGENCY_USE) set?"""
        if flag in EMERGENCY_USE:
            return flag in self.emergency_use
        return bool(self.events & (1 << VEHICLE_EVENT_BIT[flag]))

    @property
    def hard_braking(self) -> bool:
        return self.has("hard_braking")

    @property
    def key(self) -> str:
        """Who it is, as an app names it in a warning: the BSM id (hex), or ``{rsm id hex}/{ptcId}``."""
        return self.temp_id.hex() if self.ptc_id is None else participant_key(self.temp_id, self.ptc_id)

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
    flags = set(own.flags) - {"hard_braking", *EMERGENCY_USE}
    if own.accel_mps2 <= -HARD_BRAKING_MPS2:
        flags.add("hard_braking")
    events = 0
    for name in flags:
        events |= 1 << VEHICLE_EVENT_BIT[name]
    lights = 1 << HAZARD_SIGNAL_LIGHT_BIT if "hazard_lights" in flags else 0

    def system(name: str) -> int:
        return BRAKE_ENGAGED if name in flags else BRAKE_ON

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
            pos=units.position_confidence(None if sigma is None else R95_PER_SIGMA * sigma),
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
        brakes=day1_pb2.BrakeSystemStatus(
            brake_pedal=BRAKE_ON if own.braking else BRAKE_OFF,
            abs=system("abs"),
            traction=system("traction_control"),
            scs=system("stability_control"),
        ),
        size=common_pb2.VehicleSize(
            width=units.size_cm_to_wire(own.width_m, max_cm=units.VEHICLE_WIDTH_MAX),
            length=units.size_cm_to_wire(own.length_m),
            height=units.height_to_wire(own.height_m),
        ),
        vehicle_class=VEHICLE_CLASS.get(own.kind, 0),
        safety_ext=day1_pb2.VehicleSafetyExtensions(events=events, path_prediction_radius=32767, lights=lights),
    )
    if own.kind == "emergency":
        # An emergency vehicle always says whether its lights and siren are in use; others leave the
        # extension out (all 0: notInUseOrNotEquipped / unavailable).
        lights_on, siren_on = "emergency_lights" in own.flags, "siren" in own.flags
        bsm.emergency_ext.CopyFrom(
            day1_pb2.VehicleEmergencyExtensions(
                response_type=RESPONSE_EMERGENCY if lights_on or siren_on else RESPONSE_NON_EMERGENCY,
                siren_use=IN_USE if siren_on else NOT_IN_USE,
                lights_use=IN_USE if lights_on else NOT_IN_USE,
            )
        )
    return frame_pb2.MessageFrame(bsm=bsm)


def time_from_sec_mark(sec_mark: int, now_s: float, epoch: datetime) -> float:
    """Generation time of a message stamped ``sec_mark``, taken as the latest such time not after now."""
    now_mark = units.sec_mark(now_s, epoch)
    age_ms = (now_mark - sec_mark) % 60000
    return now_s - age_ms / 1000.0


def decode_event_flags(bsm: day1_pb2.BSM) -> int:
    """The BSM's VehicleEventFlags, with the same facts said elsewhere in the BSM merged in: ABS, traction
    or stability control ``engaged`` in the brake system status sets abs / traction_control /
    stability_control, and the hazard signal among the exterior lights sets hazard_lights. A bit string or
    status outside its range raises ValueError (the receiver rejects the BSM as out_of_range)."""
    events = units.bit_string_from_wire(bsm.safety_ext.events, units.VEHICLE_EVENT_FLAGS_BITS, "events")
    lights = units.bit_string_from_wire(bsm.safety_ext.lights, units.EXTERIOR_LIGHTS_BITS, "lights")
    if lights & (1 << HAZARD_SIGNAL_LIGHT_BIT):
        events |= 1 << VEHICLE_EVENT_BIT["hazard_lights"]
    units.brake_status_from_wire(bsm.brakes.brake_pedal, "brakePedal")
    for name, raw in (
        ("abs", bsm.brakes.abs),
        ("traction_control", bsm.brakes.traction),
        ("stability_control", bsm.brakes.scs),
    ):
        if units.brake_status_from_wire(raw, name) == BRAKE_ENGAGED:
            events |= 1 << VEHICLE_EVENT_BIT[name]
    return events


def decode_emergency_use(bsm: day1_pb2.BSM) -> frozenset[str]:
    """The emergency extension's lights and siren in use (``emergency_lights``, ``siren``). Values out of
    range raise ValueError (the BSM is rejected as out_of_range); a response type, the other lightbar states
    (yellow caution lights, arrow signs, ...) and an absent extension mean neither."""
    ext = bsm.emergency_ext
    units.emergency_use_from_wire(ext.response_type, units.EMERGENCY_RESPONSE_TYPE_MAX, "responseType")
    siren = units.emergency_use_from_wire(ext.siren_use, units.SIREN_IN_USE_MAX, "sirenUse")
    lights = units.emergency_use_from_wire(ext.lights_use, units.LIGHTBAR_IN_USE_MAX, "lightsUse")
    return frozenset(name for name, raw in (("emergency_lights", lights), ("siren", siren)) if raw == IN_USE)


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
        events=decode_event_flags(bsm),
        ptc_type=participant_type_of_class(bsm.vehicle_class),
        emergency_use=decode_emergency_use(bsm),
    )


def participant_key(rsm_id: bytes, ptc_id: int) -> str:
    """How a participant heard of in an RSM is named: the RSM's id (hex) and its ptcId."""
    return f"{rsm_id.hex()}/{ptc_id}"


def parse_participant_key(key: str) -> tuple[bytes, int] | None:
    """Inverse of :func:`participant_key`; None if ``key`` is not one."""
    head, sep, tail = key.partition("/")
    if not sep or not tail.isdigit():
        return None
    try:
        return bytes.fromhex(head), int(tail)
    except ValueError:
        return None


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
    participants = []
    for obj in objects:
        dlat, dlon = frame.offset_to_wire(ref_lat, ref_lon, obj.x, obj.y)
        participants.append(
            day1_pb2.ParticipantData(
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
        )
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
        speed = units.speed_from_wire(p.speed)
        heading = units.heading_from_wire(p.heading)
        if speed is None or heading is None:
            continue
        x, y = frame.offset_from_wire(rsm.ref_pos.lat, rsm.ref_pos.lon, p.pos.offset_lat, p.pos.offset_lon)
        bound = units.position_confidence_bound_m(p.pos_confidence.pos)
        out.append(
            RemoteState(
                temp_id=bytes(rsm.id),
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
            )
        )
    return out


@dataclass(frozen=True)
class MapNode:
    """An intersection as MAP describes it: reference point and ingress lanes."""

    node_id: int
    name: str
    x: float
    y: float
    approaches: list[Approach]


def encode_map(
    nodes: list[MapNode], *, frame: LocalFrame, t_s: float, epoch: datetime, msg_count: int
) -> frame_pb2.MessageFrame:
    """A MapData with one node per intersection (refPos at its centre) and one link per ingress lane, whose
    points run in the direction of travel and end at the stop line; ``connectsTo.phaseId`` names the
    signal phase that controls it (absent when unsignalised)."""
    out = []
    for node in nodes:
        ref_lat, ref_lon = frame.to_wire(node.x, node.y)
        links = []
        for k, ap in enumerate(node.approaches, start=1):
            limits = (
                []
                if ap.speed_limit_mps is None
                else [day1_pb2.RegulatorySpeedLimit(type=5, speed=units.speed_to_wire(ap.speed_limit_mps))]
            )
            offsets = []
            for x, y in ap.points:
                dlat, dlon = frame.offset_to_wire(ref_lat, ref_lon, x, y)
                offsets.append(common_pb2.PositionOffsetLLV(offset_lat=dlat, offset_lon=dlon))
            connects = [day1_pb2.Connection(phase_id=ap.phase_id)] if ap.phase_id else []
            lane = day1_pb2.Lane(
                lane_id=k,
                lane_width=units.size_cm_to_wire(ap.width_m),
                maneuvers=1,  # straight
                connects_to=connects,
                speed_limits=limits,
                points=offsets,
            )
            links.append(day1_pb2.Link(name=ap.lane, speed_limits=limits, lanes=[lane]))
        out.append(
            day1_pb2.Node(
                name=node.name,
                id=node.node_id,
                ref_pos=common_pb2.Position3D(lat=ref_lat, lon=ref_lon, elevation=units.elevation_to_wire(frame.h0_m)),
                in_links=links,
            )
        )
    return frame_pb2.MessageFrame(
        map=day1_pb2.MapData(msg_cnt=units.msg_cnt(msg_count), timestamp=units.minute_of_year(t_s, epoch), nodes=out)
    )


def decode_map(msg: day1_pb2.MapData, *, frame: LocalFrame) -> list[Approach]:
    """The ingress lanes a MAP describes, in local metres (lanes with fewer than two points are skipped)."""
    out = []
    for node in msg.nodes:
        for link in node.in_links:
            for lane in link.lanes:
                if len(lane.points) < 2:
                    continue
                pts = [
                    frame.offset_from_wire(node.ref_pos.lat, node.ref_pos.lon, p.offset_lat, p.offset_lon)
                    for p in lane.points
                ]
                limit = next((units.speed_from_wire(sl.speed) for sl in lane.speed_limits if sl.type == 5), None)
                phase = next((c.phase_id for c in lane.connects_to if c.phase_id), 0)
                out.append(
                    Approach(
                        node.name,
                        node.id,
                        link.name,
                        [(float(x), float(y)) for x, y in pts],
                        units.size_cm_from_wire(lane.lane_width) or 3.5,
                        phase,
                        limit,
                    )
                )
    return out


@dataclass(frozen=True)
class SignalState:
    """What a SPAT says of one intersection: per phase, the lights ahead as absolute intervals."""

    node_id: int
    name: str
    phases: dict[int, list[Interval]]


def _countdown(seconds: float) -> int:
    return units.countdown_to_wire(max(0.0, seconds))


def encode_spat(
    states: list[SignalState], *, t_s: float, epoch: datetime, msg_count: int, name: str
) -> frame_pb2.MessageFrame:
    """A SPAT at ``t_s``. Per phase, one PhaseState per light in the order they come: the current one
    (startTime 0) and those after it, with TimeCountingDown counted from the message's timestamp
    (CSAE 53: startTime / likelyEndTime / nextStartTime are times from now, 0.1 s). A fixed-time plan
    knows its future, so minEndTime = maxEndTime = likelyEndTime and timeConfidence is 100 %."""
    moy = units.minute_of_year(t_s, epoch)
    stamp = units.sec_mark(t_s, epoch)
    intersections = []
    for st in states:
        phases = []
        for phase_id, timeline in sorted(st.phases.items()):
            pstates = []
            seen: set[int] = set()
            for k, iv in enumerate(timeline):
                if iv.light in seen:
                    continue
                seen.add(iv.light)
                end = _countdown(iv.end_s - t_s)
                timing = day1_pb2.TimeCountingDown(
                    start_time=_countdown(iv.start_s - t_s),
                    min_end_time=end,
                    max_end_time=end,
                    likely_end_time=end,
                    time_confidence=200,
                )
                again = next((nx for nx in timeline[k + 1 :] if nx.light == iv.light), None)
                if again is not None:
                    timing.next_start_time = _countdown(again.start_s - t_s)
                    timing.next_duration = _countdown(again.end_s - again.start_s)
                pstates.append(day1_pb2.PhaseState(light=iv.light, timing=timing))  # type: ignore[arg-type]
            phases.append(day1_pb2.Phase(id=phase_id, phase_states=pstates))
        intersections.append(
            day1_pb2.IntersectionState(intersection_id=st.node_id, moy=moy, time_stamp=stamp, phases=phases)
        )
    return frame_pb2.MessageFrame(
        spat=day1_pb2.SPAT(
            msg_cnt=units.msg_cnt(msg_count), moy=moy, time_stamp=stamp, name=name, intersections=intersections
        )
    )


def decode_spat(msg: day1_pb2.SPAT, *, now_s: float, epoch: datetime) -> list[SignalState]:
    """The intervals a SPAT announces, in absolute simulation time (its timestamp is taken as the latest
    such time not after ``now_s``). Unavailable countdowns are left out."""
    out = []
    for ix in msg.intersections:
        t0 = time_from_sec_mark(ix.time_stamp, now_s, epoch)
        phases: dict[int, list[Interval]] = {}
        for phase in ix.phases:
            ivs: list[Interval] = []
            for ps in phase.phase_states:
                c = ps.timing
                start = units.countdown_from_wire(c.start_time)
                end = units.countdown_from_wire(c.likely_end_time)
                if start is None or end is None:
                    continue
                ivs.append(Interval(int(ps.light), t0 + start, t0 + end))
                # proto3 scalars: 0 = not sent (a next start "now" would be the current state itself).
                nxt = units.countdown_from_wire(c.next_start_time) if c.next_start_time else None
                dur = units.countdown_from_wire(c.next_duration) if c.next_duration else None
                if nxt is not None and dur is not None and nxt > 0:
                    ivs.append(Interval(int(ps.light), t0 + nxt, t0 + nxt + dur))
            phases[phase.id] = sorted(ivs, key=lambda iv: iv.start_s)
        out.append(SignalState(ix.intersection_id, msg.name, phases))
    return out


# --- RSI: road traffic events and signs ----------------------------------------------------------


@dataclass(frozen=True)
class ReferencePath:
    """The stretch of road an RSI event applies to (CSAE 53 ReferencePath): a centre line in the direction
    of travel (local metres) and the half-width ``radius_m`` around it."""

    points: tuple[tuple[float, float], ...]
    radius_m: float


@dataclass(frozen=True)
class RoadEvent:
    """One road traffic event (CSAE 53 RTEData) in SI units in the local frame.

    ``start_s`` / ``end_s`` are simulation times (None: open-ended). On the wire they are MinuteOfTheYear,
    so after a round trip they are whole minutes: the start of the minute the event starts in, and the
    first minute boundary at or after its end. ``paths`` empty means the event applies whatever the
    direction (receivers then judge "ahead" from their heading)."""

    rte_id: int  # 0..255, set by the RSU
    event_type: int  # GB/T 29100-2012 code, 0..65535
    x: float
    y: float
    radius_m: float
    paths: tuple[ReferencePath, ...] = ()
    start_s: float | None = None
    end_s: float | None = None
    priority: int = 0  # 0..7, higher is more urgent
    source: int = RTE_EVENT_SOURCE["detection"]
    confidence: float | None = None  # 0..1

    def active(self, t_s: float) -> bool:
        """Inside the event's time window at ``t_s`` (start inclusive, end exclusive)."""
        return (self.start_s is None or t_s >= self.start_s) and (self.end_s is None or t_s < self.end_s)

    @property
    def type_name(self) -> str:
        name = RTE_EVENT_TYPE_NAME.get(self.event_type)
        return f"{name} ({self.event_type})" if name else f"event type {self.event_type}"


@dataclass(frozen=True)
class RoadSign:
    """One road traffic sign (CSAE 53 RTSData) in SI units in the local frame: a GB 5768.2 sign at
    ``(x, y)`` (where it stands) for the traffic on its reference ``paths`` (empty: every direction), with
    the figure of a speed-limit sign in ``speed_limit_mps``. Times as for :class:`RoadEvent`."""

    rts_id: int  # 0..255, set by the RSU
    sign_type: int  # GB 5768.2 code, 0..65535 (RTS_SIGN_TYPE_NAME)
    x: float
    y: float
    paths: tuple[ReferencePath, ...] = ()
    start_s: float | None = None
    end_s: float | None = None
    priority: int = 0  # 0..7
    speed_limit_mps: float | None = None

    def active(self, t_s: float) -> bool:
        """Inside the sign's time window at ``t_s`` (start inclusive, end exclusive)."""
        return (self.start_s is None or t_s >= self.start_s) and (self.end_s is None or t_s < self.end_s)

    @property
    def type_name(self) -> str:
        name = RTS_SIGN_TYPE_NAME.get(self.sign_type)
        text = f"{name} ({self.sign_type})" if name else f"sign type {self.sign_type}"
        if self.speed_limit_mps is not None:
            text += f" {self.speed_limit_mps * 3.6:.0f} km/h"
        return text


@dataclass(frozen=True)
class RoadSideInfo:
    """A decoded RSI: the sender's id, its road traffic events and its road traffic signs."""

    rsi_id: bytes
    events: tuple[RoadEvent, ...]
    signs: tuple[RoadSign, ...] = ()

    def key(self, event: RoadEvent) -> str:
        return road_event_key(self.rsi_id, event.rte_id)

    def sign_key(self, sign: RoadSign) -> str:
        return road_sign_key(self.rsi_id, sign.rts_id)


def road_event_key(rsi_id: bytes, rte_id: int) -> str:
    """How an app names an RSI event in a warning: ``{rsi id hex}/rte{rteId}``."""
    return f"{rsi_id.hex()}/rte{rte_id}"


def road_sign_key(rsi_id: bytes, rts_id: int) -> str:
    """How an app names an RSI sign in a warning: ``{rsi id hex}/rts{rtsId}``."""
    return f"{rsi_id.hex()}/rts{rts_id}"


def _minute_ceil(t_s: float, epoch: datetime) -> int:
    """MinuteOfTheYear of the first minute boundary at or after ``t_s``."""
    moy = units.minute_of_year(t_s, epoch)
    on_boundary = units.minute_of_year(t_s - 1e-6, epoch) != moy
    return moy if on_boundary else (moy + 1) % units.MINUTE_OF_YEAR_UNAVAILABLE


def _paths_to_wire(
    paths: tuple[ReferencePath, ...], frame: LocalFrame, ref_lat: int, ref_lon: int
) -> list[day1_pb2.ReferencePath]:
    out = []
    for path in paths:
        if not 2 <= len(path.points) <= RSI_MAX_PATH_POINTS:
            raise ValueError(f"a reference path has 2..{RSI_MAX_PATH_POINTS} points, got {len(path.points)}")
        offsets = []
        for px, py in path.points:
            plat, plon = frame.offset_to_wire(ref_lat, ref_lon, px, py)
            offsets.append(common_pb2.PositionOffsetLLV(offset_lat=plat, offset_lon=plon))
        out.append(day1_pb2.ReferencePath(active_path=offsets, path_radius=units.radius_to_wire(path.radius_m)))
    return out


def _window_to_wire(start_s: float | None, end_s: float | None, t_s: float, epoch: datetime) -> tuple[int, int]:
    """RSITimeDetails as MinuteOfTheYear: start floored (now when not given), end ceiled (527040: none)."""
    start = units.minute_of_year(start_s if start_s is not None else t_s, epoch)
    end = _minute_ceil(end_s, epoch) if end_s is not None else units.MINUTE_OF_YEAR_UNAVAILABLE
    return start, end


def encode_rsi(
    events: list[RoadEvent],
    *,
    actor_id: str,
    ref_x: float,
    ref_y: float,
    frame: LocalFrame,
    t_s: float,
    epoch: datetime,
    msg_count: int,
    signs: Sequence[RoadSign] = (),
) -> frame_pb2.MessageFrame:
    """An RSI from ``actor_id`` (id: :func:`temporary_id`) with refPos at ``(ref_x, ref_y)`` (the RSU),
    one RTEData per event (at most 8) and one RTSData per sign (at most 16; at least one of either):
    eventPos / signPos and the reference paths' points as offsets from refPos (1e-7 degree), eventRadius
    and pathRadius in 0.1 m, timeDetails as MinuteOfTheYear (start floored, end ceiled to the minute; 527040
    when open-ended), priority 0..7, eventConfidence in 0.005 (200 when not given), a sign's speed limit
    in 0.02 m/s (0: none)."""
    if len(events) > RSI_MAX_EVENTS or len(signs) > RSI_MAX_SIGNS or (not events and not signs):
        raise ValueError(
            f"an RSI carries 0..{RSI_MAX_EVENTS} road traffic events and 0..{RSI_MAX_SIGNS} signs, at least one; "
            f"got {len(events)} and {len(signs)}"
        )
    ref_lat, ref_lon = frame.to_wire(ref_x, ref_y)
    rtes = []
    for ev in events:
        dlat, dlon = frame.offset_to_wire(ref_lat, ref_lon, ev.x, ev.y)
        paths = _paths_to_wire(ev.paths, frame, ref_lat, ref_lon)
        start, end = _window_to_wire(ev.start_s, ev.end_s, t_s, epoch)
        confidence = RTE_CONFIDENCE_MAX if ev.confidence is None else round(min(max(ev.confidence, 0.0), 1.0) * 200)
        rtes.append(
            day1_pb2.RTEData(
                rte_id=ev.rte_id % 256,
                event_type=min(max(ev.event_type, 0), 65535),
                event_source=ev.source,
                event_pos=common_pb2.PositionOffsetLLV(offset_lat=dlat, offset_lon=dlon),
                event_radius=units.radius_to_wire(ev.radius_m),
                start_time=start,
                end_time=end,
                priority=min(max(ev.priority, 0), 7),
                reference_paths=paths,
                event_confidence=confidence,
            )
        )
    rtss = []
    for sign in signs:
        dlat, dlon = frame.offset_to_wire(ref_lat, ref_lon, sign.x, sign.y)
        start, end = _window_to_wire(sign.start_s, sign.end_s, t_s, epoch)
        limit = sign.speed_limit_mps
        rtss.append(
            day1_pb2.RTSData(
                rts_id=sign.rts_id % 256,
                sign_type=min(max(sign.sign_type, 0), 65535),
                sign_pos=common_pb2.PositionOffsetLLV(offset_lat=dlat, offset_lon=dlon),
                start_time=start,
                end_time=end,
                priority=min(max(sign.priority, 0), 7),
                reference_paths=_paths_to_wire(sign.paths, frame, ref_lat, ref_lon),
                speed_limit=0 if limit is None else max(1, units.speed_to_wire(limit)),
            )
        )
    rsi = day1_pb2.RSI(
        msg_cnt=units.msg_cnt(msg_count),
        moy=units.minute_of_year(t_s, epoch),
        id=temporary_id(actor_id),
        ref_pos=common_pb2.Position3D(lat=ref_lat, lon=ref_lon, elevation=units.elevation_to_wire(frame.h0_m)),
        rtes=rtes,
        rtss=rtss,
    )
    return frame_pb2.MessageFrame(rsi=rsi)


def _wire_range(value: int, hi: int, name: str) -> int:
    if not 0 <= value <= hi:
        raise ValueError(f"{name} wire value {value} outside 0..{hi}")
    return value


def _paths_from_wire(
    rsi: day1_pb2.RSI, paths: Sequence[day1_pb2.ReferencePath], frame: LocalFrame
) -> tuple[ReferencePath, ...]:
    out = []
    for path in paths:
        if not 2 <= len(path.active_path) <= RSI_MAX_PATH_POINTS:
            raise ValueError(f"a reference path has 2..{RSI_MAX_PATH_POINTS} points, got {len(path.active_path)}")
        pts = tuple(
            (float(px), float(py))
            for px, py in (
                frame.offset_from_wire(rsi.ref_pos.lat, rsi.ref_pos.lon, p.offset_lat, p.offset_lon)
                for p in path.active_path
            )
        )
        out.append(ReferencePath(pts, units.radius_from_wire(path.path_radius)))
    return tuple(out)


def decode_rsi(rsi: day1_pb2.RSI, *, now_s: float, frame: LocalFrame, epoch: datetime) -> RoadSideInfo:
    """The road traffic events and signs of an RSI in local SI units. Times become simulation times (the
    occurrence of each MinuteOfTheYear nearest to ``now_s``). A value outside its element's range raises
    ValueError (the receiver rejects the message as ``out_of_range``)."""
    if len(rsi.rtes) > RSI_MAX_EVENTS:
        raise ValueError(f"an RSI carries at most {RSI_MAX_EVENTS} road traffic events, got {len(rsi.rtes)}")
    if len(rsi.rtss) > RSI_MAX_SIGNS:
        raise ValueError(f"an RSI carries at most {RSI_MAX_SIGNS} road traffic signs, got {len(rsi.rtss)}")
    events = []
    for rte in rsi.rtes:
        ref_lat, ref_lon = rsi.ref_pos.lat, rsi.ref_pos.lon
        x, y = frame.offset_from_wire(ref_lat, ref_lon, rte.event_pos.offset_lat, rte.event_pos.offset_lon)
        confidence = _wire_range(rte.event_confidence, RTE_CONFIDENCE_MAX, "eventConfidence")
        paths = _paths_from_wire(rsi, rte.reference_paths, frame)
        events.append(
            RoadEvent(
                rte_id=_wire_range(rte.rte_id, 255, "rteId"),
                event_type=_wire_range(rte.event_type, 65535, "eventType"),
                x=float(x),
                y=float(y),
                radius_m=units.radius_from_wire(rte.event_radius),
                paths=paths,
                start_s=units.start_of_minute_of_year(rte.start_time, now_s, epoch),
                end_s=units.start_of_minute_of_year(rte.end_time, now_s, epoch),
                priority=_wire_range(rte.priority, 7, "priority"),
                source=_wire_range(rte.event_source, 5, "eventSource"),
                confidence=confidence / RTE_CONFIDENCE_MAX,
            )
        )
    signs = []
    for rts in rsi.rtss:
        x, y = frame.offset_from_wire(
            rsi.ref_pos.lat, rsi.ref_pos.lon, rts.sign_pos.offset_lat, rts.sign_pos.offset_lon
        )
        limit = None if rts.speed_limit == 0 else units.speed_from_wire(rts.speed_limit)
        signs.append(
            RoadSign(
                rts_id=_wire_range(rts.rts_id, 255, "rtsId"),
                sign_type=_wire_range(rts.sign_type, 65535, "signType"),
                x=float(x),
                y=float(y),
                paths=_paths_from_wire(rsi, rts.reference_paths, frame),
                start_s=units.start_of_minute_of_year(rts.start_time, now_s, epoch),
                end_s=units.start_of_minute_of_year(rts.end_time, now_s, epoch),
                priority=_wire_range(rts.priority, 7, "priority"),
                speed_limit_mps=limit,
            )
        )
    return RoadSideInfo(bytes(rsi.id), tuple(events), tuple(signs))
