"""BSM (T/CSAE 53 Basic Safety Message) <-> SI: the sender's own state out, a remote vehicle's state in.

Units are converted only through ``v2x.units``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from v2x import units
from v2x.geodesy import LocalFrame
from v2x.units import R95_PER_SIGMA, time_from_sec_mark
from v2x.wire import common_pb2, day1_pb2, frame_pb2
from v2x.wire.envelope import participant_key, temporary_id

# BasicVehicleClass values (CSAE 53 / SAE J2735), each the "type unknown" code of its group: 10 passenger
# vehicle, 25 truck (20 is a light truck), 50 transit (50-58: buses, BRT, ...), 60 emergency (60-69), 82
# pedestrian, 85 bicycle (the otherTraveler group 80-86). (Until session 20 trucks sent 20 and buses 23, a value
# the table does not define: a domain review.)
VEHICLE_CLASS = {
    "car": 10,
    "truck": 25,
    "bus": 50,
    "emergency": 60,
    "pedestrian": 82,
    "cyclist": 85,
}
TRANSIT_CLASSES = range(50, 59)  # transit: buses, BRT, school buses, paratransit
EMERGENCY_CLASSES = range(60, 70)
# otherTraveler: 80 unknown, 81 other, 82 pedestrian, 83 visually and 84 physically disabled, 86 vulnerable
# roadworker: a person on foot; 85 bicycle
ON_FOOT_CLASSES = frozenset({80, 81, 82, 83, 84, 86})
# The BSM's hardBraking event flag is set while the vehicle decelerates at 0.4 g or more: the figure of SAE
# J2945/1 (the BSM minimum performance requirements, hardBraking "deceleration greater than 0.4 g"); CSAE 53
# takes the flag from J2735 and gives no figure of its own.
HARD_BRAKING_MPS2 = 0.4 * units.G0
# What a receiver takes for a remote vehicle whose BSM gives no size (VehicleSize 0: unknown): a car's.
UNKNOWN_LENGTH_M = 5.0
UNKNOWN_WIDTH_M = 2.0
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
# ExteriorLights leftTurnSignalOn / rightTurnSignalOn (CSAE 53 / SAE J2735): what the driver's turn signal
# announces (a lane change, an overtake, a turn), by the names OwnState.turn_signal / RemoteState.turn_signal use.
TURN_SIGNAL_LIGHT_BIT = {"left": 2, "right": 3}
# BrakeSystemStatus values (CSAE 53 / SAE J2735): pedal 1 off / 2 on; ABS, traction and stability control
# 1 off / 2 on (available, not intervening) / 3 engaged (intervening now).
BRAKE_OFF, BRAKE_ON, BRAKE_ENGAGED = 1, 2, 3


def participant_type_of_class(vehicle_class: int) -> int:
    """The RSM ParticipantType of a BSM sender, from its BasicVehicleClass (a person on foot of any
    otherTraveler class is a pedestrian: a roadworker too)."""
    if vehicle_class in ON_FOOT_CLASSES:
        return day1_pb2.PARTICIPANT_PEDESTRIAN
    if vehicle_class == VEHICLE_CLASS["cyclist"]:
        return day1_pb2.PARTICIPANT_NON_MOTOR
    return day1_pb2.PARTICIPANT_MOTOR


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
    # The turn signal the driver has on: "left", "right" or "" (off); ExteriorLights bit 2 / 3.
    turn_signal: str = ""
    # Height above the frame's origin (local "up", m): the elevation sent is the origin's height plus it.
    z: float = 0.0


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
    # Its turn signal from the exterior lights: "left", "right" or "" (off, unknown, or both on: hazards).
    turn_signal: str = ""
    # Height above the frame's origin from the BSM's elevation (m); None: unavailable (or not a BSM). Its rate
    # (m/s, up positive) is no BSM field: a receiver estimates it from successive BSMs (v2x.apps.host).
    z_m: float | None = None
    z_rate_mps: float = 0.0
    # An RSM / SSM participant's ``id``: the temporary id of the BSM sender the sensing station matched it to
    # (8 octets; empty: not matched, or not a participant). A receiver that finds its own id there is that road user.
    participant_id: bytes = b""

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
    if own.turn_signal:
        lights |= 1 << TURN_SIGNAL_LIGHT_BIT[own.turn_signal]

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
            elevation=units.elevation_to_wire(frame.h0_m + own.z),
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


def motion_columns(
    lat_deg: NDArray[np.float64], lon_deg: NDArray[np.float64], speed_mps: NDArray[np.float64],
    compass_deg: NDArray[np.float64], accel_mps2: NDArray[np.float64],
) -> NDArray[np.int64] | None:  # fmt: skip
    """``units.lat_to_wire``, ``lon_to_wire``, ``speed_to_wire``, ``heading_to_wire`` and ``accel_to_wire`` of
    many vehicles at once, as five rows (lat, lon, speed, heading, acceleration; a column per vehicle): the same
    integers (the same float operations; ``np.rint`` rounds half to even as ``round`` does; tested). None when
    a value is not finite: convert those one by one."""
    values = (lat_deg, lon_deg, speed_mps, compass_deg, accel_mps2)
    if not all(np.isfinite(v).all() for v in values):
        return None

    def quantise(v: NDArray[np.float64], unit: float, lo: int, hi: int) -> NDArray[np.float64]:
        return np.clip(np.rint(v / unit), lo, hi)

    lat = quantise(lat_deg, units.LATLON_UNIT_DEG, units.LAT_MIN, units.LAT_MAX)
    wrapped = np.fmod(lon_deg, 360.0)
    wrapped = np.where(wrapped > 180.0, wrapped - 360.0, np.where(wrapped <= -180.0, wrapped + 360.0, wrapped))
    lon = np.rint(wrapped / units.LATLON_UNIT_DEG)
    lon = np.minimum(np.where(lon < units.LON_MIN, lon + 3_600_000_000, lon), units.LON_MAX)
    speed = quantise(speed_mps, 0.02, 0, units.SPEED_MAX)
    heading = np.rint((compass_deg % 360.0) / units.HEADING_UNIT_DEG) % units.HEADING_UNAVAILABLE
    accel = quantise(accel_mps2, 0.01, units.ACCEL_MIN, units.ACCEL_MAX)
    return np.array([lat, lon, speed, heading, accel]).astype(np.int64)


def motion_to_wire(
    lat_deg: NDArray[np.float64], lon_deg: NDArray[np.float64], speed_mps: NDArray[np.float64],
    compass_deg: NDArray[np.float64], accel_mps2: NDArray[np.float64],
) -> list[tuple[int, int, int, int, int]] | None:  # fmt: skip
    """:func:`motion_columns` per vehicle: (lat, lon, speed, heading, acceleration)."""
    columns = motion_columns(lat_deg, lon_deg, speed_mps, compass_deg, accel_mps2)
    return None if columns is None else list(zip(*columns.tolist(), strict=True))


def refresh_bsm(
    msg: frame_pb2.MessageFrame,
    *,
    lat_deg: float,
    lon_deg: float,
    speed_mps: float,
    heading_rad: float,
    accel_mps2: float,
    msg_count: int,
    sec_mark: int,
    compass_deg: float | None = None,
    wire: tuple[int, int, int, int, int] | None = None,
) -> None:
    """Bring a BSM that :func:`encode_bsm` made for a vehicle with no flags and no turn signal (as the world
    makes them for background traffic) up to date in place: position (``lat_deg``/``lon_deg``: the frame's
    ``to_geodetic`` of the vehicle's x, y, computed for many at once), speed, heading, acceleration (and with
    it the brake pedal and the hardBraking flag), counter and secMark. The result is byte for byte what
    ``encode_bsm`` would give for the same state (tested); it saves rebuilding the message each tick.
    ``compass_deg``: ``units.enu_yaw_rad_to_compass_deg(heading_rad)`` when already computed (for many at once);
    ``wire``: position, speed, heading and acceleration already converted (``motion_to_wire``)."""
    bsm = msg.bsm
    bsm.msg_cnt = units.msg_cnt(msg_count)
    bsm.sec_mark = sec_mark
    if wire is None:
        deg = units.enu_yaw_rad_to_compass_deg(heading_rad) if compass_deg is None else compass_deg
        wire = (
            units.lat_to_wire(lat_deg),
            units.lon_to_wire(lon_deg),
            units.speed_to_wire(speed_mps),
            units.heading_to_wire(deg),
            units.accel_to_wire(accel_mps2),
        )
    bsm.pos.lat, bsm.pos.lon, bsm.speed, bsm.heading, bsm.accel_set.long = wire
    bsm.brakes.brake_pedal = BRAKE_ON if accel_mps2 < 0 else BRAKE_OFF
    hard = accel_mps2 <= -HARD_BRAKING_MPS2
    bsm.safety_ext.events = 1 << VEHICLE_EVENT_BIT["hard_braking"] if hard else 0


def refresh_bsms(
    msgs: Sequence[frame_pb2.MessageFrame],
    wire: Sequence[tuple[int, int, int, int, int]],
    accel_mps2: Sequence[float],
    msg_counts: Sequence[int],
    sec_mark: int,
) -> None:
    """:func:`refresh_bsm` of many BSMs whose position, speed, heading and acceleration are already converted
    (``motion_to_wire``), all stamped ``sec_mark``: the same fields set to the same values."""
    hard = 1 << VEHICLE_EVENT_BIT["hard_braking"]
    for msg, values, accel, count in zip(msgs, wire, accel_mps2, msg_counts, strict=True):
        bsm = msg.bsm
        bsm.msg_cnt = units.msg_cnt(count)
        bsm.sec_mark = sec_mark
        pos = bsm.pos
        pos.lat, pos.lon, bsm.speed, bsm.heading, bsm.accel_set.long = values
        bsm.brakes.brake_pedal = BRAKE_ON if accel < 0 else BRAKE_OFF
        bsm.safety_ext.events = hard if accel <= -HARD_BRAKING_MPS2 else 0


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


def decode_turn_signal(bsm: day1_pb2.BSM) -> str:
    """The turn signal among the exterior lights: "left", "right", or "" when neither or both are on (both
    blinking is what hazard lights look like). Lights above 9 bits raise ValueError (out_of_range)."""
    lights = units.bit_string_from_wire(bsm.safety_ext.lights, units.EXTERIOR_LIGHTS_BITS, "lights")
    on = [side for side, bit in TURN_SIGNAL_LIGHT_BIT.items() if lights & (1 << bit)]
    return on[0] if len(on) == 1 else ""


def decode_emergency_use(bsm: day1_pb2.BSM) -> frozenset[str]:
    """The emergency extension's lights and siren in use (``emergency_lights``, ``siren``). Values out of
    range raise ValueError (the BSM is rejected as out_of_range); a response type, the other lightbar states
    (yellow caution lights, arrow signs, ...) and an absent extension mean neither."""
    if not bsm.HasField("emergency_ext"):  # absent: every value 0, in range, neither in use
        return frozenset()
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
    t_s = time_from_sec_mark(bsm.sec_mark, now_s, epoch)
    return _remote(bsm, float(x), float(y), speed, units.compass_deg_to_enu_yaw_rad(heading), t_s, frame)


def check_bsm(bsm: day1_pb2.BSM) -> bool:
    """What :func:`decode_bsm` checks, without converting the position: False when it would give None (no
    position, speed or heading), ValueError when it would raise (a value out of range), else True. For a
    receiver that needs only the time and accuracy of BSMs it will not act on (a fleet: FCW's accuracy gate)."""
    fields = (
        units.lat_from_wire(bsm.pos.lat),
        units.lon_from_wire(bsm.pos.lon),
        units.speed_from_wire(bsm.speed),
        units.heading_from_wire(bsm.heading),
    )
    if any(f is None for f in fields):
        return False
    units.check_sec_mark(bsm.sec_mark)  # (what ``time_from_sec_mark`` refuses in a decode)
    units.accel_from_wire(bsm.accel_set.long)
    units.elevation_from_wire(bsm.pos.elevation)
    units.size_cm_from_wire(bsm.size.length)
    units.size_cm_from_wire(bsm.size.width)
    units.semi_major_from_wire(bsm.accuracy.semi_major)
    decode_event_flags(bsm)
    decode_emergency_use(bsm)
    decode_turn_signal(bsm)
    return True


# The ranges ``check_bsm`` accepts, field by field (``_BSM_FIELDS``): inclusive bounds of the raw values, the
# "unavailable" values of the optional ones included (they decode to None), those of position, speed and
# heading excluded (check_bsm says False for them). An absent emergency extension reads as zeros: in range.
_BSM_LO = np.array(
    [units.LAT_MIN, units.LON_MIN, 0, 0, units.ACCEL_MIN, units.ELEVATION_UNAVAILABLE, 0, 0, 0, 0, 0, 0, 0, 0, 0,
     0, 0, 0], dtype=np.int64,
)  # fmt: skip
_BSM_HI = np.array(
    [units.LAT_MAX, units.LON_MAX, units.SPEED_MAX, units.HEADING_UNAVAILABLE - 1, units.ACCEL_UNAVAILABLE,
     units.ELEVATION_MAX, units.VEHICLE_LENGTH_MAX, units.VEHICLE_LENGTH_MAX, units.SEMI_MAJOR_UNAVAILABLE,
     (1 << units.VEHICLE_EVENT_FLAGS_BITS) - 1, (1 << units.EXTERIOR_LIGHTS_BITS) - 1, units.BRAKE_STATUS_MAX,
     units.BRAKE_STATUS_MAX, units.BRAKE_STATUS_MAX, units.BRAKE_STATUS_MAX, units.EMERGENCY_RESPONSE_TYPE_MAX,
     units.SIREN_IN_USE_MAX, units.LIGHTBAR_IN_USE_MAX], dtype=np.int64,
)  # fmt: skip


def _bsm_fields(b: day1_pb2.BSM) -> tuple[int, ...]:
    """The raw values ``check_bsm`` checks, in the order of ``_BSM_LO`` / ``_BSM_HI``."""
    pos, brakes, ext, emergency = b.pos, b.brakes, b.safety_ext, b.emergency_ext
    return (
        pos.lat, pos.lon, b.speed, b.heading, b.accel_set.long, pos.elevation, b.size.length, b.size.width,
        b.accuracy.semi_major, ext.events, ext.lights, brakes.brake_pedal, brakes.abs, brakes.traction, brakes.scs,
        emergency.response_type, emergency.siren_use, emergency.lights_use,
    )  # fmt: skip


def in_check_ranges(raw: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Per row of raw values in the order of ``_bsm_fields`` (the columns ``v2x.wire.scan.BSM_FIELDS`` names):
    True where every one is within the ranges ``check_bsm`` accepts, so that it would return True (and
    ``decode_bsm`` give a RemoteState); False: ask ``check_bsm``."""
    ok: NDArray[np.bool_] = np.asarray(((raw >= _BSM_LO) & (raw <= _BSM_HI)).all(axis=1))
    return ok


def passes_check(bsm: day1_pb2.BSM) -> bool:
    """:func:`check_bsm`, a ValueError counted as False."""
    try:
        return check_bsm(bsm)
    except ValueError:
        return False


# The raw position, speed and heading a BSM with all three available and in range has (``decode_bsms``).
_PLACED_LO = np.array([units.LAT_MIN, units.LON_MIN, 0, 0], dtype=np.int64)
_PLACED_HI = np.array([units.LAT_MAX, units.LON_MAX, units.SPEED_MAX, units.HEADING_UNAVAILABLE - 1], dtype=np.int64)

SenderKey = tuple[bytes, int, int, int, int, int, int, int, int, int, int, int]


def _sender_key(bsm: day1_pb2.BSM) -> SenderKey | None:
    """Every field ``_remote`` decodes other than the motion (position, speed, heading, acceleration) and time, as
    on the wire: what a sender's BSMs repeat tick after tick. None for a BSM with the emergency extension (decoded
    in full every time)."""
    if bsm.HasField("emergency_ext"):
        return None
    size, ext, brakes = bsm.size, bsm.safety_ext, bsm.brakes
    return (
        bsm.id, size.length, size.width, bsm.accuracy.semi_major, bsm.vehicle_class, ext.events, ext.lights,
        brakes.brake_pedal, brakes.abs, brakes.traction, brakes.scs, bsm.pos.elevation,
    )  # fmt: skip


def decode_bsms(
    bsms: Sequence[day1_pb2.BSM],
    *,
    now_s: float,
    frame: LocalFrame,
    epoch: datetime,
    memo: dict[SenderKey, dict[str, object]] | None = None,
) -> list[RemoteState | None]:
    """:func:`decode_bsm` of many BSMs at once, the same values (the positions go through the frame in one
    vectorised call: a fleet decodes a thousand BSMs a tick). A value out of range raises ValueError, as
    ``decode_bsm`` does.

    ``memo`` (kept by the caller from call to call, for one ``frame``): per value of the fields a BSM's decoding
    takes from other than its motion (``_sender_key``: its id, size, accuracy, class, flags, brakes, elevation),
    the decoding of a BSM that had them; a BSM with the same values gets the same fields without converting
    them again, and its motion and time as converted here (a sender's BSMs differ tick after tick only in
    those). The same RemoteState either way; a value out of range is never remembered (it raised)."""
    raw = np.array([(b.pos.lat, b.pos.lon, b.speed, b.heading) for b in bsms], dtype=np.int64).reshape(-1, 4)
    wire: list[tuple[day1_pb2.BSM, float] | None]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    compass: NDArray[np.float64]
    if ((raw >= _PLACED_LO) & (raw <= _PLACED_HI)).all():
        # Every one with a position, speed and heading in range (the usual case): the scalar conversions' products
        # (``units.lat_from_wire`` & co.: the raw value times the unit), on all of them at once.
        values = raw.astype(np.float64)  # (exact: |raw| < 2**53, as Python's int * float converts it)
        lat, lon = values[:, 0] * units.LATLON_UNIT_DEG, values[:, 1] * units.LATLON_UNIT_DEG
        wire = list(zip(bsms, (values[:, 2] * units.SPEED_UNIT_MPS).tolist(), strict=True))
        compass = values[:, 3] * units.HEADING_UNIT_DEG
    else:  # one by one: which are unavailable (None), which out of range (ValueError)
        wire, lats, lons, headings = [], [], [], []
        for bsm in bsms:
            la = units.lat_from_wire(bsm.pos.lat)
            lo = units.lon_from_wire(bsm.pos.lon)
            speed = units.speed_from_wire(bsm.speed)
            heading = units.heading_from_wire(bsm.heading)
            if la is None or lo is None or speed is None or heading is None:
                wire.append(None)
                continue
            wire.append((bsm, speed))
            lats.append(la)
            lons.append(lo)
            headings.append(heading)
        lat = np.array(lats, dtype=np.float64)
        lon = np.array(lons, dtype=np.float64)
        compass = np.array(headings, dtype=np.float64)
    placed = [w for w in wire if w is not None]
    if not placed:
        return [None] * len(wire)
    xs, ys, _ = frame.to_local(lat, lon, frame.h0_m)
    # The same numpy operations as the scalar conversions, on all of them at once (the same values).
    yaws = units.compass_deg_to_enu_yaw_rad(compass)
    now_mark = units.sec_mark(now_s, epoch)
    marks = np.array([w[0].sec_mark for w in placed], dtype=np.int64)
    if not ((marks >= 0) & (marks <= units.SECMARK_MAX)).all():  # (as ``time_from_sec_mark`` refuses it)
        raise ValueError(f"DSecond wire value outside 0..{units.SECMARK_MAX}")
    ages_ms = (now_mark - marks) % 60000
    times = (now_s - ages_ms / 1000.0).tolist()
    out: list[RemoteState | None] = []
    k = 0
    new = object.__new__
    for w in wire:
        if w is None:
            out.append(None)
            continue
        bsm, speed = w
        key = None if memo is None else _sender_key(bsm)
        known = None if memo is None or key is None else memo.get(key)
        if known is None:
            remote = _remote(bsm, float(xs[k]), float(ys[k]), speed, float(yaws[k]), times[k], frame)
            if memo is not None and key is not None:
                memo[key] = dict(remote.__dict__)
        else:
            # The known fields with this BSM's motion and time, without a frozen dataclass's __setattr__ per field.
            accel = units.accel_from_wire(bsm.accel_set.long) or 0.0
            remote = new(RemoteState)
            fields = remote.__dict__
            fields.update(known)
            fields.update(
                t_s=times[k],
                x=float(xs[k]),
                y=float(ys[k]),
                speed_mps=speed,
                heading_rad=float(yaws[k]),
                accel_mps2=accel,
            )
        out.append(remote)
        k += 1
    return out


def _remote(
    bsm: day1_pb2.BSM, x: float, y: float, speed: float, yaw: float, t_s: float, frame: LocalFrame
) -> RemoteState:
    """The rest of a BSM in SI units, its position (``x``, ``y``), speed, ENU yaw and time already converted."""
    accel = units.accel_from_wire(bsm.accel_set.long) or 0.0
    elevation = units.elevation_from_wire(bsm.pos.elevation)
    return RemoteState(
        temp_id=bytes(bsm.id),
        t_s=t_s,
        x=x,
        y=y,
        speed_mps=speed,
        heading_rad=yaw,
        accel_mps2=accel,
        length_m=units.size_cm_from_wire(bsm.size.length) or UNKNOWN_LENGTH_M,
        width_m=units.size_cm_from_wire(bsm.size.width) or UNKNOWN_WIDTH_M,
        sigma_major_m=units.semi_major_from_wire(bsm.accuracy.semi_major),
        kind_class=bsm.vehicle_class,
        events=decode_event_flags(bsm),
        ptc_type=participant_type_of_class(bsm.vehicle_class),
        emergency_use=decode_emergency_use(bsm),
        turn_signal=decode_turn_signal(bsm),
        z_m=None if elevation is None else elevation - frame.h0_m,
    )
