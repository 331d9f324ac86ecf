"""The roadside unit: broadcasts MAP at 1 Hz and, for signalised intersections, SPAT at 10 Hz from its
fixed-time signal controllers over PC5; broadcasts RSI with its active road traffic events (10 Hz) and
road traffic signs (1 Hz; both in one RSI when both are due), among the events the queues it finds on the
lanes it watches (TJW: traffic congestion at the queue's tail, v2x/apps/tjw.py, from the BSMs it hears and
what its sensors see, looked at again once a second);
broadcasts RSM (or, with ``shares_as: ssm``, the Day-2 SSM) with what its roadside sensors detect (every
sensor frame, 10 Hz by default); and sends
the BSMs it hears and its RSMs (SSMs) to the edge/cloud platform over the wired backhaul.

Signal priority (T/CSAE 157 VIR signalPriority, docs/SCENARIOS.md "svp"): the RSU runs the signal controllers of its
intersections. A VIR signal priority request for one of them (node id, phase id; the arrival time is the time of its
planned path's point nearest the phase's stop line) from a vehicle whose BSM declares an eligible class (emergency 60-69
or bus) that its kind in the scenario agrees with (emergency, bus) is served by the controller
(``FixedTimeController.request``, within the svp limits of the thresholds): the plan changes (reported to the world in
the RSU's truth, so that the signal heads show it, and in SPAT from then on) and the RSU answers over PC5 with an RSC
addressed to the vehicle: time window = the granted green at the stop line, recommended speed = the speed that reaches
the line when the window opens, suggestion = the movement asked for. One decision per (vehicle, request id); while it
stands the RSC is repeated with each VIR. A request from any other vehicle, or one the controller refuses, gets no RSC
(silence) and changes nothing; so does a request while another vehicle's grant at the same intersection still stands."""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Sequence

from v2x.agents.base import Agent, Environment, Heard, TickContext, TickResult, Transmission
from v2x.agents.platform import associate
from v2x.apps.host import Participant
from v2x.apps.tjw import detect_queue, queue_event
from v2x.scenario.model import ActorSpec, RsiItemSpec, Scenario
from v2x.scenario.sensors import coverage_polygon, resolve
from v2x.scenario.signals import (
    PriorityDecision,
    PriorityLimits,
    approaches,
    controller,
    node_id_of,
    served,
    warp_to_wire,
)
from v2x.units import compass_deg_to_enu_yaw_rad, enu_yaw_rad_to_compass_deg, kph_to_mps, s_of
from v2x.wire import day1_pb2, testbed_pb2
from v2x.wire.bsm import EMERGENCY_CLASSES, TRANSIT_CLASSES, RemoteState
from v2x.wire.day2 import (
    SSM_MAX_PARTICIPANTS,
    SSM_MAX_REGIONS,
    Coordination,
    Intention,
    VehicleRequest,
    encode_rsc,
    encode_ssm,
)
from v2x.wire.envelope import temporary_id
from v2x.wire.map_spat import MapNode, SignalState, encode_map, encode_spat
from v2x.wire.protocol import MAX_TX_PER_TICK
from v2x.wire.rsi import RTE_EVENT_SOURCE, ReferencePath, RoadEvent, RoadSign, encode_rsi
from v2x.wire.rsm import PARTICIPANT_TYPE, RSM_MAX_PARTICIPANTS, VRU_TYPES, PerceivedObject, encode_rsm

log = logging.getLogger(__name__)

MAP_PERIOD_S = 1.0  # T/CSAE 53: MAP at 1 Hz
SPAT_PERIOD_S = 0.1  # T/CSAE 53 Day-1 table: RLVW / GLOSA need SPAT at up to 10 Hz
RSI_PERIOD_S = 0.1  # T/CSAE 53 Day-1 table: HLW needs RSI events at 10 Hz
RTS_PERIOD_S = 1.0  # T/CSAE 53 Day-1 table: IVS and SLW need RSI signs at 1 Hz
HEADING_FROM_VELOCITY_MPS = 0.5  # below this fused speed the heading is the sensors' reported one
# Vehicle classes (BSM BasicVehicleClass) the RSU grants signal priority to: emergency vehicles (60-69) and
# transit (50-58: buses, BRT, ...).
PRIORITY_CLASSES = frozenset({*EMERGENCY_CLASSES, *TRANSIT_CLASSES})
SENSOR_KIND_NAME = {
    testbed_pb2.SENSOR_CAMERA: "camera",
    testbed_pb2.SENSOR_RADAR: "radar",
    testbed_pb2.SENSOR_LIDAR: "lidar",
}


def _reference_paths(item: RsiItemSpec, scenario: Scenario) -> tuple[ReferencePath, ...]:
    """An RSI item's reference paths: the named lanes' centre lines (half a lane wide) or the explicit path."""
    lanes = {lane.id: lane for lane in scenario.road.lanes}
    paths = [
        ReferencePath(tuple(lanes[lane_id].centerline), lanes[lane_id].width_m / 2) for lane_id in item.lanes or []
    ]
    if item.path is not None:
        paths.append(ReferencePath(tuple(item.path), item.path_radius_m))
    return tuple(paths)


def road_events(spec: ActorSpec, scenario: Scenario) -> list[RoadEvent]:
    """The RSU's road traffic events from its scenario entry (``rte_id`` = position in the list, from 1)."""
    out = []
    for k, ev in enumerate(spec.road_events, start=1):
        out.append(
            RoadEvent(
                rte_id=k,
                event_type=ev.type,
                x=ev.position[0],
                y=ev.position[1],
                radius_m=ev.radius_m,
                paths=_reference_paths(ev, scenario),
                start_s=ev.active_s[0] if ev.active_s else None,
                end_s=ev.active_s[1] if ev.active_s else None,
                priority=ev.priority,
                source=RTE_EVENT_SOURCE[ev.source],
            )
        )
    return out


def road_signs(spec: ActorSpec, scenario: Scenario) -> list[RoadSign]:
    """The RSU's road traffic signs from its scenario entry (``rts_id`` = position in the list, from 1)."""
    return [
        RoadSign(
            rts_id=k,
            sign_type=sign.type,
            x=sign.position[0],
            y=sign.position[1],
            paths=_reference_paths(sign, scenario),
            start_s=sign.active_s[0] if sign.active_s else None,
            end_s=sign.active_s[1] if sign.active_s else None,
            priority=sign.priority,
            speed_limit_mps=None if sign.speed_limit_kph is None else kph_to_mps(sign.speed_limit_kph),
        )
        for k, sign in enumerate(spec.road_signs, start=1)
    ]


def fuse(detections: Sequence[testbed_pb2.Detection]) -> list[PerceivedObject]:
    """The RSU's object list from one tick's detections: one object per ``object_id``. Several sensors'
    detections of one object are combined by inverse-variance weighting, sigma = (sum sigma_i^-2)^-1/2
    (position and velocity alike), and the source becomes "integrated" when the sensors differ in kind."""
    by_object: dict[int, list[testbed_pb2.Detection]] = defaultdict(list)
    for d in detections:
        by_object[d.object_id].append(d)
    out = []
    for object_id, ds in sorted(by_object.items()):
        w = [max(d.sigma_m, 1e-3) ** -2 for d in ds]
        wv = [max(d.speed_sigma_mps, 1e-3) ** -2 for d in ds]
        x = sum(wi * d.x_m for wi, d in zip(w, ds, strict=True)) / sum(w)
        y = sum(wi * d.y_m for wi, d in zip(w, ds, strict=True)) / sum(w)
        vx = sum(wi * d.vx_mps for wi, d in zip(wv, ds, strict=True)) / sum(wv)
        vy = sum(wi * d.vy_mps for wi, d in zip(wv, ds, strict=True)) / sum(wv)
        speed = math.hypot(vx, vy)
        best = min(ds, key=lambda d: d.sigma_m)
        yaw = math.atan2(vy, vx) if speed >= HEADING_FROM_VELOCITY_MPS else compass_deg_to_enu_yaw_rad(best.heading_deg)
        kinds = {SENSOR_KIND_NAME.get(d.sensor_kind, "unknown") for d in ds}
        out.append(
            PerceivedObject(
                ptc_id=object_id % 65536,
                kind=best.object_kind,
                source=kinds.pop() if len(kinds) == 1 else "integrated",
                t_s=s_of(max(d.time_us for d in ds)),
                x=x,
                y=y,
                speed_mps=speed,
                heading_rad=yaw,
                length_m=best.length_m,
                width_m=best.width_m,
                sigma_m=sum(w) ** -0.5,
                speed_sigma_mps=sum(wv) ** -0.5,
            )
        )
    return out


class RoadsideUnit(Agent):
    def __init__(self, spec: ActorSpec, scenario: Scenario, env: Environment) -> None:
        super().__init__(spec.id, spec.kind, env)
        assert spec.position is not None
        self.x, self.y = spec.position
        serves = served(scenario, spec)
        aps = approaches(scenario, [ix.id for ix in serves])
        self._nodes = [
            MapNode(
                node_id_of(scenario, ix.id),
                ix.id,
                ix.center[0],
                ix.center[1],
                [a for a in aps if a.intersection == ix.id],
            )
            for ix in serves
        ]
        self._nodes = [n for n in self._nodes if n.approaches]
        self.controllers = {
            node_id_of(scenario, ix.id): (ix.id, controller(scenario, ix)) for ix in serves if ix.signal is not None
        }
        self._approaches = [a for a in aps if a.phase_id]
        self.own_id = temporary_id(spec.id)
        # vehicle class by BSM temporary id (the last BSM heard); None: a priority class its sender's kind is not
        self._classes: dict[bytes, int | None] = {}
        self._said_class: set[str] = set()
        # Signal priority decisions by (vehicle, request id), with the node id they were for.
        self.decisions: dict[tuple[bytes, int], tuple[int, PriorityDecision]] = {}
        self._rsc_count = 0
        self._map_count = 0
        self._spat_count = 0
        self._rsm_count = 0
        self.road_events = road_events(spec, scenario)
        self._rsi_count = 0
        self._next_rsi_s = 0.0
        self.road_signs = road_signs(spec, scenario)
        self._next_rts_s = 0.0
        self._next_map_s = 0.0
        self._next_spat_s = 0.0
        self.relayed = 0
        # BSMs heard but not relayed are counted in ``rejected`` (the Ack's, so metrics.rejected_by_agents, when
        # there are any; they were counted where nothing reported them: diff review 25): ``relay_over_budget``,
        # over the envelopes an actor may send in a tick; ``relay_repeated``, a sender's older ones in the tick.
        self._said_repeated: set[str] = set()
        self._said_dropped = False
        self.shares_as = spec.shares_as  # rsm (Day-1) or ssm (Day-2): how it broadcasts what it detects
        self._ssm_count = 0
        # The SSM's detectedRegion: the area each of its sensors covers (T/CSAE 157), up to SSM_MAX_REGIONS
        self.regions = [coverage_polygon(self.x, self.y, resolve(s)) for s in spec.sensors][:SSM_MAX_REGIONS]
        # Queue detection (TJW): the lanes watched, each with the rteId of its event (after the road events),
        # what the RSU knows of the road users (BSM senders by key, its sensors' objects by ptcId), and the
        # events of the queues found at the last look, by rteId.
        lanes = {lane.id: lane for lane in scenario.road.lanes}
        self.watches = [
            (
                watch,
                ReferencePath(tuple(lanes[watch.lane].centerline), lanes[watch.lane].width_m / 2),
                len(self.road_events) + k,
            )
            for k, watch in enumerate(spec.congestion, start=1)
        ]
        self.bsm_senders: dict[str, RemoteState] = {}
        self.sensed: dict[int, PerceivedObject] = {}
        self.queue_events: dict[int, RoadEvent] = {}
        self._next_tjw_s = 0.0

    def signal_states(self, t_s: float) -> list[SignalState]:
        return [
            SignalState(node_id, name, {p: ctl.timeline(p, t_s) for p in ctl.signal_groups})
            for node_id, (name, ctl) in sorted(self.controllers.items())
        ]

    def step(self, ctx: TickContext) -> TickResult:
        result = TickResult()
        platform = self.env.platform_id
        relays = (
            [h for h in ctx.heard if h.link == testbed_pb2.LINK_PC5 and h.frame.WhichOneof("msg") == "bsm"]
            if platform
            else []
        )
        warps: list[testbed_pb2.SignalWarp] = []
        if self.controllers:
            self.receive(ctx.heard, lambda heard: self._on_heard(heard, ctx.t_s, result, warps))
        if self._nodes and ctx.t_s + 1e-9 >= self._next_map_s:
            self._next_map_s += MAP_PERIOD_S
            frame = encode_map(
                self._nodes, frame=self.env.frame, t_s=ctx.t_s, epoch=self.env.epoch, msg_count=self._map_count
            )
            self._map_count += 1
            result.transmissions.append(Transmission(testbed_pb2.LINK_PC5, frame))
        if self.controllers and ctx.t_s + 1e-9 >= self._next_spat_s:
            self._next_spat_s += SPAT_PERIOD_S
            frame = encode_spat(
                self.signal_states(ctx.t_s),
                t_s=ctx.t_s,
                epoch=self.env.epoch,
                msg_count=self._spat_count,
                name=self.actor_id,
            )
            self._spat_count += 1
            result.transmissions.append(Transmission(testbed_pb2.LINK_PC5, frame))
        objects = fuse(ctx.detections) if ctx.detections else []
        if self.watches:
            self._watch(ctx, objects)
        events: list[RoadEvent] = []
        signs: list[RoadSign] = []
        if (self.road_events or self.watches) and ctx.t_s + 1e-9 >= self._next_rsi_s:
            self._next_rsi_s += RSI_PERIOD_S
            events = [ev for ev in self.road_events if ev.active(ctx.t_s)]
            events += [self.queue_events[k] for k in sorted(self.queue_events)]
        if self.road_signs and ctx.t_s + 1e-9 >= self._next_rts_s:
            self._next_rts_s += RTS_PERIOD_S
            signs = [sign for sign in self.road_signs if sign.active(ctx.t_s)]
        if events or signs:  # an event or sign is announced only inside its time window
            frame = encode_rsi(
                events,
                actor_id=self.actor_id,
                ref_x=self.x,
                ref_y=self.y,
                frame=self.env.frame,
                t_s=ctx.t_s,
                epoch=self.env.epoch,
                msg_count=self._rsi_count,
                signs=signs,
            )
            self._rsi_count += 1
            result.transmissions.append(Transmission(testbed_pb2.LINK_PC5, frame))
        if objects and self.shares_as == "ssm":
            ssm = self._ssm(ctx.t_s, objects)
            result.transmissions.append(ssm)
            if platform:
                result.transmissions.append(Transmission(testbed_pb2.LINK_WIRED, ssm.frame, (platform,)))
        elif objects:
            rsm = self._rsm(objects)
            result.transmissions.extend(rsm)
            if platform:  # the edge fuses every RSU's perception with the BSMs (v2x.agents.platform)
                result.transmissions += [Transmission(testbed_pb2.LINK_WIRED, tx.frame, (platform,)) for tx in rsm]
        if (
            relays and platform
        ):  # the BSMs heard over PC5 go to the platform over the backhaul first, as many as may be sent
            relays = self._within_budget(relays, MAX_TX_PER_TICK - len(result.transmissions), ctx.t_s)
            result.transmissions[:0] = [Transmission(testbed_pb2.LINK_WIRED, h.frame, (platform,)) for h in relays]
            self.relayed += len(relays)
        result.truth = testbed_pb2.TruthState(
            x_m=self.x, y_m=self.y, heading_deg=enu_yaw_rad_to_compass_deg(0.0), signal_warps=warps
        )
        return result

    def _within_budget(self, relays: list[Heard], budget: int, t: float) -> list[Heard]:
        """The BSMs to relay to the platform this tick: one a sender (:meth:`_one_per_sender`), then all of
        them, in the order heard, when they fit in what the RSU may still send in the tick (``MAX_TX_PER_TICK``
        envelopes an actor, its own messages first); else the ``budget`` nearest to the RSU (ties: the order
        heard), still in the order heard. More than some 60 equipped vehicles in range asked for more envelopes
        than the world takes from one actor, and the world refused the RSU's whole report tick after tick (a
        claims review, session 24)."""
        relays = self._one_per_sender(relays, t)
        if len(relays) <= budget:
            return relays
        budget = max(budget, 0)

        def distance(k: int) -> tuple[float, int]:
            remote = self.env.bsm(relays[k], t)
            return (math.inf if remote is None else math.hypot(remote.x - self.x, remote.y - self.y)), k

        keep = sorted(sorted(range(len(relays)), key=distance)[:budget])
        self.rejected["relay_over_budget"] += len(relays) - budget
        if not self._said_dropped:
            self._said_dropped = True
            log.warning(
                "%s t=%.1f s: heard %d BSMs, relays the %d nearest to the platform (at most %d envelopes a tick); "
                "more such ticks are counted, not logged",
                self.actor_id,
                t,
                len(relays),
                budget,
                MAX_TX_PER_TICK,
            )
        return [relays[k] for k in keep]

    def _one_per_sender(self, relays: list[Heard], t: float) -> list[Heard]:
        """Of the BSMs one sender (the envelope's, which the world checks) was heard sending in the tick, the
        newest (the last heard), in the order heard. A BSM is a 10 Hz message: two outside cars sending 64 BSMs a
        tick each that claimed the RSU's own position took every relay the budget left, the RSU relayed only
        theirs, and the edge never heard the car it warned about (attack review 11). The BSMs left out are
        counted in ``rejected["relay_repeated"]``; each sender that sent several in a tick is logged once."""
        last = {h.sender_id: k for k, h in enumerate(relays)}
        if len(last) == len(relays):
            return relays
        self.rejected["relay_repeated"] += len(relays) - len(last)
        counts = Counter(h.sender_id for h in relays)
        for sender, n in sorted(counts.items()):
            if n > 1 and sender not in self._said_repeated:
                self._said_repeated.add(sender)
                log.warning(
                    "%s t=%.1f s: heard %d BSMs from %s in one tick, relays the newest (one a sender a tick); "
                    "more are counted, not logged",
                    self.actor_id,
                    t,
                    n,
                    sender,
                )
        return [relays[k] for k in sorted(last.values())]

    # -- signal priority ----------------------------------------------------------------------------
    def _on_heard(self, heard: Heard, t: float, result: TickResult, warps: list[testbed_pb2.SignalWarp]) -> None:
        which = heard.frame.WhichOneof("msg")
        if which == "bsm":
            remote = self.env.bsm(heard, t)
            if remote is not None:
                eligible = self._kind_agrees(heard.sender_id, remote.kind_class, t)
                self._classes[remote.temp_id] = remote.kind_class if eligible else None
        elif which == "vir":
            intention = self.env.vir(heard, t)
            items = []
            for request in intention.requests:
                coordination = self._serve(intention, request, t, warps)
                if coordination is not None:
                    items.append(coordination)
            if items:
                frame = encode_rsc(
                    items,
                    actor_id=self.actor_id,
                    ref_x=self.x,
                    ref_y=self.y,
                    t_s=t,
                    msg_count=self._rsc_count,
                    frame=self.env.frame,
                    epoch=self.env.epoch,
                )
                self._rsc_count += 1
                result.transmissions.append(Transmission(testbed_pb2.LINK_PC5, frame))

    def _kind_agrees(self, sender: str, kind_class: int, t: float) -> bool:
        """Whether the priority class a BSM declares (emergency, transit) is its sender's kind in the scenario
        (``emergency``, ``bus``): a ``car`` whose BSM said "emergency" was granted priority, and the real
        ambulance was then refused (attack review 11). A sender the scenario does not name (a fleet's background
        vehicle, which asks no priority) is not eligible. A class that asks nothing is not checked."""
        if kind_class not in PRIORITY_CLASSES:
            return True
        kind = self.env.kinds.get(sender)
        if kind == ("emergency" if kind_class in EMERGENCY_CLASSES else "bus"):
            return True
        if sender not in self._said_class:
            self._said_class.add(sender)
            log.warning(
                "%s t=%.1f s: %s's BSM declares vehicle class %d, but its kind is %s: no signal priority for it",
                self.actor_id,
                t,
                sender,
                kind_class,
                kind or "not the scenario's",
            )
        return False

    def _limits(self) -> PriorityLimits:
        th = self.env.thresholds
        return PriorityLimits(
            max_extension_s=th["svp_max_extension_s"],
            max_early_green_s=th["svp_max_early_green_s"],
            min_green_s=th["svp_min_green_s"],
            clear_s=th["svp_clear_s"],
            green_lead_s=th["svp_green_lead_s"],
        )

    def _serve(
        self, intention: Intention, request: VehicleRequest, t: float, warps: list[testbed_pb2.SignalWarp]
    ) -> Coordination | None:
        """One signal priority request (see the module docstring): the RSC item that answers it, or None."""
        if request.type != "signal_priority" or request.status != "request":
            return None
        if request.target_rsu and request.target_rsu != self.own_id:
            return None
        if request.intersection_id not in self.controllers:
            return None
        key = (intention.sender_id, request.req_id)
        known = self.decisions.get(key)
        if known is None:
            if self._classes.get(intention.sender_id) not in PRIORITY_CLASSES:
                return None  # no priority for vehicles that are not eligible (their BSM's class and their kind)
            arrival = self._arrival(intention, request)
            if arrival is None or self._busy(request.intersection_id, intention.sender_id, t):
                return None
            _, ctl = self.controllers[request.intersection_id]
            if request.phase_id not in ctl.groups:
                return None
            decision = ctl.request(request.phase_id, arrival, t, t + self.env.tick_s, self._limits())
            self.decisions[key] = (request.intersection_id, decision)
            warps.extend(warp_to_wire(w) for w in decision.warps)
            known = self.decisions[key]
        decision = known[1]
        if decision.green is None or decision.green.end_s <= t:
            return None
        start, end = decision.green.start_s, decision.green.end_s
        path = intention.path
        to_line = None
        if path and path[0].after_s is not None:
            d = math.hypot(path[0].x - intention.x, path[0].y - intention.y)
            to_line = d / max(start - t, 0.1) if start > t else path[0].speed_mps
        return Coordination(
            vehicle_id=intention.sender_id,
            behaviors=intention.behaviors,
            life_time_s=end - t,
            window_s=(max(start - t, 0.01), end - t),
            speed_mps=to_line,
            req_id=request.req_id,
        )

    def _arrival(self, intention: Intention, request: VehicleRequest) -> float | None:
        """The arrival time at the phase's stop line: the time of the planned point nearest it (within half
        a lane width plus 2 m), or None."""
        best: tuple[float, float] | None = None
        for ap in self._approaches:
            if ap.node_id != request.intersection_id or ap.phase_id != request.phase_id:
                continue
            sx, sy = ap.stop_point
            for p in intention.path:
                d = math.hypot(p.x - sx, p.y - sy)
                if p.after_s is not None and d <= ap.width_m / 2 + 2.0 and (best is None or d < best[0]):
                    best = (d, intention.t_s + p.after_s)
        return None if best is None else best[1]

    def _busy(self, node_id: int, sender: bytes, t: float) -> bool:
        """Another vehicle's grant at this intersection still stands (its green has not ended)."""
        return any(
            node == node_id and who != sender and d.green is not None and d.warps and d.green.end_s > t
            for (who, _), (node, d) in self.decisions.items()
        )

    def _ssm(self, t_s: float, fused: Sequence[PerceivedObject]) -> Transmission:
        """One SSM over PC5 (equipment type rsu, the sensor position = the RSU's) with every fused object
        (up to 512), in the RSM's order: vulnerable road users first, then by distance from the RSU."""
        objects = sorted(
            fused,
            key=lambda o: (
                PARTICIPANT_TYPE.get(o.kind, day1_pb2.PARTICIPANT_UNKNOWN) not in VRU_TYPES,
                math.hypot(o.x - self.x, o.y - self.y),
                o.ptc_id,
            ),
        )[:SSM_MAX_PARTICIPANTS]
        frame = encode_ssm(
            objects,
            actor_id=self.actor_id,
            equipment="rsu",
            sensor_x=self.x,
            sensor_y=self.y,
            t_s=max((o.t_s for o in objects), default=t_s),
            frame=self.env.frame,
            epoch=self.env.epoch,
            msg_count=self._ssm_count,
            regions=self.regions,
        )
        self._ssm_count += 1
        return Transmission(testbed_pb2.LINK_PC5, frame)

    def _watch(self, ctx: TickContext, objects: Sequence[PerceivedObject]) -> None:
        """Queue detection (TJW, v2x/apps/tjw.py): keep what the RSU knows of the road users, and every
        ``tjw_update_period_s`` look for a queue on each watched lane and announce or withdraw its event."""
        t = ctx.t_s

        def heard_bsm(heard: Heard) -> None:
            if heard.link == testbed_pb2.LINK_PC5 and heard.frame.WhichOneof("msg") == "bsm":
                remote = self.env.bsm(heard, t)
                known = self.bsm_senders.get(remote.key) if remote is not None else None
                if remote is not None and (known is None or remote.t_s >= known.t_s):
                    self.bsm_senders[remote.key] = remote

        self.receive(ctx.heard, heard_bsm)
        for obj in objects:
            self.sensed[obj.ptc_id] = obj
        thresholds = self.env.thresholds
        max_age = thresholds["max_age_s"]
        self.bsm_senders = {k: r for k, r in self.bsm_senders.items() if t - r.t_s <= max_age}
        self.sensed = {k: o for k, o in self.sensed.items() if t - o.t_s <= max_age}
        if t + 1e-9 < self._next_tjw_s:
            return
        self._next_tjw_s += thresholds["tjw_update_period_s"]
        senders = [Participant.from_remote(k, r, t) for k, r in sorted(self.bsm_senders.items())]
        seen = [
            Participant(
                f"ptc{o.ptc_id}",
                o.x,
                o.y,
                o.speed_mps * math.cos(o.heading_rad),
                o.speed_mps * math.sin(o.heading_rad),
                0.0,
                o.heading_rad,
                o.length_m,
                o.width_m,
                o.sigma_m,
            )
            for _, o in sorted(self.sensed.items())
        ]
        road_users = senders + associate(senders, seen)
        for watch, lane, rte_id in self.watches:
            queue = detect_queue(road_users, lane, thresholds)
            if queue is None:
                self.queue_events.pop(rte_id, None)
                continue
            before = self.queue_events.get(rte_id)
            since = before.start_s if before is not None and before.start_s is not None else t
            self.queue_events[rte_id] = queue_event(
                queue, lane, rte_id=rte_id, since_s=since, priority=watch.priority, thresholds=thresholds
            )

    def _rsm(self, objects: Sequence[PerceivedObject]) -> list[Transmission]:
        """RSM over PC5 with the fused objects, vulnerable road users first, then by distance from the RSU;
        more than 16 objects take several messages."""
        objects = list(objects)
        objects.sort(
            key=lambda o: (
                PARTICIPANT_TYPE.get(o.kind, day1_pb2.PARTICIPANT_UNKNOWN) not in VRU_TYPES,
                math.hypot(o.x - self.x, o.y - self.y),
                o.ptc_id,
            )
        )
        out = []
        for k in range(0, len(objects), RSM_MAX_PARTICIPANTS):
            frame = encode_rsm(
                objects[k : k + RSM_MAX_PARTICIPANTS],
                actor_id=self.actor_id,
                ref_x=self.x,
                ref_y=self.y,
                frame=self.env.frame,
                epoch=self.env.epoch,
                msg_count=self._rsm_count,
            )
            self._rsm_count += 1
            out.append(Transmission(testbed_pb2.LINK_PC5, frame))
        return out
