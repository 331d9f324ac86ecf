"""RSI (T/CSAE 53 Road Side Information: road traffic events and signs) <-> SI."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from v2x import units
from v2x.geodesy import LocalFrame
from v2x.wire import common_pb2, day1_pb2, frame_pb2
from v2x.wire.envelope import temporary_id

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
RTE_TRAFFIC_CONGESTION = 707  # what TJW announces and warns about (v2x/apps/tjw.py); HLW leaves it alone
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
            text += f" {units.mps_to_kph(self.speed_limit_mps):.0f} km/h"
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
