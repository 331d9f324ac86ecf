"""MAP (intersection geometry) and SPAT (signal phase and timing) <-> SI, and the decoded forms apps read:
an ingress lane (``Approach``) and a light timeline (``Interval``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from v2x import units
from v2x.geodesy import LocalFrame
from v2x.units import time_from_sec_mark
from v2x.wire import common_pb2, day1_pb2, frame_pb2

GREEN = day1_pb2.LIGHT_PROTECTED_GREEN
PERMISSIVE_GREEN = day1_pb2.LIGHT_PERMISSIVE_GREEN
YELLOW = day1_pb2.LIGHT_YELLOW
RED = day1_pb2.LIGHT_RED
LIGHT_NAME: dict[int, str] = {
    day1_pb2.LIGHT_UNAVAILABLE: "unavailable",
    day1_pb2.LIGHT_DARK: "dark",
    day1_pb2.LIGHT_FLASHING_RED: "flashing-red",
    RED: "red",
    day1_pb2.LIGHT_FLASHING_GREEN: "flashing-green",
    PERMISSIVE_GREEN: "permissive-green",
    GREEN: "protected-green",
    YELLOW: "yellow",
    day1_pb2.LIGHT_FLASHING_YELLOW: "flashing-yellow",
}
STOPPING_LIGHTS = frozenset({RED, day1_pb2.LIGHT_FLASHING_RED})
GREEN_LIGHTS = frozenset({GREEN, PERMISSIVE_GREEN})
# AllowedManeuvers bits (Lane.maneuvers): bit 0 straight, 1 left, 2 right, 3 U-turn.
MANEUVER_BITS: dict[str, int] = {"straight": 1, "left": 2, "right": 4, "u_turn": 8}


@dataclass(frozen=True)
class Interval:
    """One light shown from ``start_s`` to ``end_s`` (absolute simulation seconds)."""

    light: int
    start_s: float
    end_s: float


def light_at(timeline: list[Interval], t_s: float) -> int | None:
    """The light a timeline shows at ``t_s``, or None if the timeline does not reach that far."""
    for iv in timeline:
        if iv.start_s - 1e-9 <= t_s < iv.end_s - 1e-9:
            return iv.light
    return None


@dataclass(frozen=True)
class Connection:
    """One movement from an ingress lane (MAP ``connectsTo``): its maneuver (one ``MANEUVER_BITS`` bit, 0 if
    unknown), the signal phase (signal group) that gives it green (0: unsignalised) and the egress lane, as
    its MAP node id and lane id there (0, 0: not in any MAP)."""

    maneuver: int
    phase_id: int
    node_id: int = 0
    lane_id: int = 0


@dataclass(frozen=True)
class Approach:
    """An ingress lane of an intersection, up to its stop line."""

    intersection: str
    node_id: int
    lane: str
    points: list[tuple[float, float]]  # centre line, in the direction of travel, ending at the stop line
    width_m: float
    phase_id: int  # 0 if the intersection has no signal or no phase controls this lane
    speed_limit_mps: float | None = None
    maneuvers: int = 0  # AllowedManeuvers (MANEUVER_BITS), 0 if not known
    connections: tuple[Connection, ...] = ()  # one per maneuver bit, in bit order

    def connection(self, maneuver: int) -> Connection | None:
        """The movement of this maneuver bit, or None if the lane does not allow it (or MAP does not say)."""
        return next((c for c in self.connections if c.maneuver == maneuver), None)

    @property
    def stop_point(self) -> tuple[float, float]:
        return self.points[-1]

    @property
    def direction_rad(self) -> float:
        (x0, y0), (x1, y1) = self.points[-2], self.points[-1]
        return math.atan2(y1 - y0, x1 - x0)


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
    points run in the direction of travel and end at the stop line; ``maneuvers`` its allowed movements and
    one ``connectsTo`` per movement, in maneuver bit order: the signal phase that gives it green (absent
    when unsignalised) and the egress lane (when that is an ingress lane of a MAP node downstream)."""
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
            if ap.connections:
                connects = [
                    day1_pb2.Connection(
                        remote_intersection_id=c.node_id, connecting_lane_id=c.lane_id, phase_id=c.phase_id
                    )
                    for c in ap.connections
                ]
            else:
                connects = [day1_pb2.Connection(phase_id=ap.phase_id)] if ap.phase_id else []
            lane = day1_pb2.Lane(
                lane_id=k,
                lane_width=units.size_cm_to_wire(ap.width_m),
                maneuvers=ap.maneuvers,
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
                bits = [b for b in MANEUVER_BITS.values() if lane.maneuvers & b]
                # one connectsTo per maneuver bit, in bit order (docs/PROTOCOL.md "MAP and SPAT"); else unknown
                moves = bits if len(bits) == len(lane.connects_to) else [0] * len(lane.connects_to)
                connections = tuple(
                    Connection(b, c.phase_id, c.remote_intersection_id, c.connecting_lane_id)
                    for b, c in zip(moves, lane.connects_to, strict=True)
                )
                out.append(
                    Approach(
                        node.name,
                        node.id,
                        link.name,
                        [(float(x), float(y)) for x, y in pts],
                        units.size_cm_from_wire(lane.lane_width) or 3.5,
                        phase,
                        limit,
                        lane.maneuvers,
                        connections,
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
