"""One run of one variant of a scenario, sans-I/O: the world's ground truth and everything it does with it.

Bytes in, bytes and events out; no networking, no clock, no asyncio. ``v2x.net.world.World`` is the shell
that moves the bytes over MQTT and waits; a test can drive a ``Simulation`` directly.

One tick ``n``:

1. ``begin(n)`` opens the tick and returns each actor's serialized ``TickInput``: the deliveries the
   channel has due by the tick's time, the actor's GNSS reading and (an RSU) its roadside detections;
2. the agents answer: ``receive("tx", actor, envelope)`` for each transmission and ``receive("ack",
   actor, ack)`` once, which validate and count (``reported`` turns true once all have reported;
   ``missing()`` names those who have not);
3. ``step()`` closes the tick: it applies the truths the acks report to the world state (except for road
   users at rest after a collision: the referee holds them where they touched), records their warnings,
   runs the referee, fans the tick's transmissions out over the channel and reads the sensors
   for the next tick. It returns the events it recorded.

``report(wall_s)`` gives the run's events (in ``event_order``) and its metrics.

Three generators, seeded from (seed, variant): the channel's (``rng_net``), the positioning model's
(``rng_pos``) and the roadside sensors' (``rng_sense``); each is drawn from in a fixed order, so a run's
outcome depends on the scenario, variant and seed only. A fourth, the background flows' (``rng_flows``,
``v2x.sim.background``), is seeded from the seed alone: both variants see the same background traffic. A
fifth, seeded from (seed, variant) as well, draws the readings of the fleets' vehicles whose flow names a
``positioning`` profile (``v2x.sim.sensors.BackgroundPositioning``); it exists only then, so the others'
draws, and every run without such a flow, stay as they were.

Background traffic (the scenario's ``flows``, or SUMO's with a ``sumo`` block) is moved by the world
itself, in ``step`` right after the reported truths are applied (``v2x.sim.background``,
``v2x.sim.sumo``): its vehicles are road users in the world's slots after the actors', seen by the
referee, the channel and the roadside sensors. In the V2X variant the equipped ones are hosted by a
fleet agent (``fleet_ids``): ``begin`` also makes its ``FleetInput`` (``fleet_inputs``: the vehicles'
truth and what they heard), ``receive_fleet`` takes its ``FleetAck`` (their BSMs, their warnings; checked
in ``v2x.sim.inbound``), and a tick is reported only once it has answered.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from v2x.apps.registry import time_label
from v2x.core import SpatialGrid
from v2x.geodesy import LocalFrame
from v2x.scenario.geometry import route_for
from v2x.scenario.model import ROAD_USER_KINDS, VRU_KINDS, Scenario
from v2x.scenario.signals import announced_nodes, signal_controllers, warp_from_wire, warp_to_wire
from v2x.sim.actors import pc5_coverage, road_user_slots, unequipped_ids, world_state
from v2x.sim.background import Background, BackgroundTraffic, background_capacity
from v2x.sim.channel import Bulk, Channel, Received, Scratch, Transmission
from v2x.sim.events import event_order
from v2x.sim.inbound import Inbound
from v2x.sim.metrics import run_metrics
from v2x.sim.motion import IN_RUNS, IN_RUNS_VRU, motion_problems, truth_problem
from v2x.sim.names import Names
from v2x.sim.overflow import PACKED_HEAD_BYTES, delivery_bytes, fair_cut
from v2x.sim.perception import PERCEPTION_MESSAGES, PerceptionCheck
from v2x.sim.referee import Referee
from v2x.sim.safety import SafetyMeasures
from v2x.sim.sensors import BackgroundPositioning, Sensors
from v2x.units import compass_deg_to_enu_yaw_rad, enu_yaw_rad_to_compass_deg, tick_time_s, us_of
from v2x.wire import testbed_pb2
from v2x.wire.fleet import I32, add_vehicles, serialize_with_deliveries, vehicle_bodies, vehicle_head
from v2x.wire.protocol import MAX_INPUT_BYTES, PROTOCOL_VERSION
from v2x.wire.security import EnvelopeSecurity
from v2x.wire.tables import APP_NAME
from v2x.wire.tick_input import FINITE_PARTS, shared_input_problem, tick_input_problem

log = logging.getLogger("v2x.sim")

# An actor's warnings recorded in one variant's run; more are refused as too_many_warnings. Apps raise again at
# most every few seconds per (app, other road user): 10,000 is 50 others re-raised every 3 s for 10 minutes. An
# attack review's stack reported 220 new ones per tick and made a 92 MB result.json (739 MB in the world).
MAX_WARNINGS_PER_ACTOR = 10_000
# The implausible_motion events recorded per actor and variant (every such tick is counted in the metrics): a
# stack that sends km/h breaks the rules in every tick, and one event names what is wrong.
MAX_MOTION_EVENTS = 10

Event = dict[str, Any]


@dataclass
class WorldReport:
    """What a finished run leaves behind: the outcome (events) and the metrics; ``reconnects``: how many times
    the run's connections to the broker were made again (a broker restart; set by ``v2x.run.runner``);
    ``outside_stacks``: each actor driven from outside (``external: true``), by the software its Hello named
    (escaped and bounded: ``Inbound.software_of``). Not part of the outcome."""

    events: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    reconnects: int = 0
    outside_stacks: dict[str, str] = field(default_factory=dict)


def warning_event(variant: str, target: str, other: str, adv: testbed_pb2.Advisory) -> Event:
    """The event for a warning (or advisory) that ``target``'s app raised about ``other`` (already resolved
    to the scenario's name)."""
    event: Event = {
        "t_s": round(adv.raised_at_s, 3),
        "type": "warning",
        "variant": variant,
        "app": APP_NAME.get(adv.app, str(adv.app)),
        "target": target,
        "other": other,
        "source": adv.source_id,
        "conflict": adv.conflict_type,
        "ttc_s": round(adv.ttc_s, 3),
    }
    if adv.figure_name and adv.figure_name not in event:  # (the world admits only the apps' figure names)
        event[adv.figure_name] = round(adv.figure, 3)
    return event


class Simulation:
    """The world of one run of ``scenario``'s ``variant`` with ``seed`` (``run_id`` goes into the
    ``TickInput`` and ``Control`` messages; ``security``: a secure run's envelope verifier, see
    ``v2x.sim.inbound``; ``fleets``: how many fleet agents share the equipped background vehicles, one per
    worker process of ``v2x run --workers``)."""

    # The fleets may send a tick's warnings with the next tick's FleetAck (``FleetInput.warnings_next_tick``,
    # see ``_fleet_inputs``); the outcome is the same either way (tests/test_workers.py turns it off).
    fleet_warnings_next_tick = True

    def __init__(
        self,
        scenario: Scenario,
        *,
        variant: str,
        seed: int,
        run_id: str = "",
        token: str = "",
        security: EnvelopeSecurity | None = None,
        fleets: int = 1,
    ) -> None:
        self.scenario = scenario
        self.variant = variant
        self.run_id = run_id
        self.token = token  # Control.token: START and STOP of this run carry it (docs/SECURITY.md)
        self.n_ticks = scenario.n_ticks
        self.tick_s = scenario.tick_s
        self.tick_us = us_of(scenario.tick_s)
        variant_no = 0 if variant == "v2x" else 1
        rng_net = np.random.default_rng([seed, variant_no, 1])
        rng_pos = np.random.default_rng([seed, variant_no, 2])
        rng_sense = np.random.default_rng([seed, variant_no, 3])
        # The flows' arrivals: the same in both variants (2 stands for "either variant").
        rng_flows = np.random.default_rng([seed, 2, 4])

        # Slots in id order so that the layout, and every draw that depends on it, is deterministic.
        self.actor_ids = sorted(a.id for a in scenario.actors)
        self.world = world_state(scenario, extra=background_capacity(scenario))
        w = self.world
        unequipped = unequipped_ids(scenario)
        pc5_receivers = np.zeros(w.capacity, dtype=np.bool_)
        for a in scenario.actors:
            if a.kind != "platform" and a.equipped:
                pc5_receivers[w.slot_of(a.id)] = True
        platform_slots = {w.slot_of(a.id) for a in scenario.actors if a.kind == "platform"}
        self.channel = Channel(
            w,
            scenario.network,
            rng=rng_net,
            pc5_receivers=pc5_receivers,
            platform_slots=platform_slots,
            enabled=variant == "v2x",
            pc5_range_m=pc5_coverage(scenario, w),
        )
        road_users = road_user_slots(scenario, w)
        self.sensors = Sensors(
            w, scenario, variant, road_users=road_users, unequipped=unequipped, rng_pos=rng_pos, rng_sense=rng_sense
        )
        self.referee = Referee(w, scenario, variant)
        self.safety = SafetyMeasures(w, scenario, variant)  # only what min_gap / max_decel / stays_on_route ask
        self.names = Names(scenario, w)
        self.background: BackgroundTraffic | None = None
        if scenario.flows:
            self.background = Background(scenario, w, rng=rng_flows, heads=self.referee.stop_lines)
        elif scenario.sumo is not None:  # SUMO moves it (v2x.sim.sumo)
            from v2x.sim.sumo import SumoBackground

            self.background = SumoBackground(scenario, w, seed=seed)
        if self.background is not None:
            self.sensors.background = self.background.present_with_kinds
        self.inbound = Inbound(
            self.actor_ids,
            slot_of={a: w.slot_of(a) for a in self.actor_ids},
            unequipped=unequipped,
            tick_s=self.tick_s,
            kind_of={a.id: a.kind for a in scenario.actors},
            run_end_s=self.time_of(self.n_ticks) + self.tick_s,
            security=security,
            may_warp=signal_controllers(scenario),
            external=[a.id for a in scenario.actors if a.external],
            may_announce=announced_nodes(scenario),
        )
        # The fleets (v2x.agents.fleet) hosting the equipped background vehicles: ``fleets`` of them (one per
        # worker) in the V2X variant of a scenario whose flows have any; each reports once per tick (FleetAck)
        # like an actor.
        self.fleet_ids: list[str] = fleet_ids_for(scenario, variant, fleets)
        self.inbound.fleet_ids = set(self.fleet_ids)
        self._members: dict[str, dict[str, int]] = {}  # per fleet, the vehicles it hosts at this tick: id -> slot
        self._members_before: dict[str, dict[str, int]] = {}  # and at the tick before (its warnings may come now)
        self._fleet_assigned: dict[str, int] = {}  # equipped vehicle -> the number of its fleet
        self._vehicle_heads: dict[str, bytes] = {}  # equipped vehicle -> its FleetVehicle's strings on the wire
        # The slots whose deliveries go into FleetInputs as arrays: the background vehicles'.
        self._bulk = np.zeros(w.capacity, dtype=np.bool_)
        self._bulk[len(self.actor_ids) :] = True
        self.fleet_inputs: dict[str, bytes] = {}  # this tick's FleetInput of each fleet
        self._scratch = Scratch()  # the FleetInputs' temporaries (serialised before the next tick's)
        self._wrecked: set[str] = set()  # equipped vehicles whose FleetVehicle says ``wrecked``
        # The receivers of the fleets' vehicles whose flows name a positioning profile (drawn by the world from
        # a generator of their own: the other draws stay as they were; none without such a flow).
        self.bg_positioning: BackgroundPositioning | None = None
        if self.fleet_ids and isinstance(self.background, Background) and any(f.positioning for f in scenario.flows):
            self.bg_positioning = BackgroundPositioning(
                scenario, w, first_slot=len(self.actor_ids), rng=np.random.default_rng([seed, variant_no, 5])
            )
        self.events: list[Event] = []  # in the order recorded; report() sorts them
        # Told to each actor in its next TickInput: the collisions it was in and the ticks that closed
        # without its Ack (docs/PROTOCOL.md, TickInput).
        self._collisions: dict[str, list[testbed_pb2.TickInput.Collision]] = {}
        self._late: dict[str, list[int]] = {}
        # Signal plan changes roadside units reported (signal priority), told to every actor in the next
        # TickInput (docs/PROTOCOL.md "Signal priority").
        self._signal_warps: list[testbed_pb2.SignalWarp] = []
        self._kind = {a.id: a.kind for a in scenario.actors}
        self._warned: set[tuple[str, int, str, str, float]] = set()  # warnings recorded (echoes count once)
        self._warnings_of: Counter[str] = Counter()  # warnings recorded per reporting actor
        # Per app, the app latency (ms) of each warning recorded with the time its trigger was sent.
        self._app_latency: dict[str, list[float]] = {}
        self._judged: set[tuple[str, str, str]] = set()  # misbehaviour reports recorded
        # 'truth in motion' (v2x.sim.motion): each actor's last applied truth and its tick, and per actor the ticks
        # whose truth moved as no vehicle can (an implausible_motion event for the first MAX_MOTION_EVENTS of them)
        # Only the outside stacks' (``external: true``): the built-in agents move as vehicles by construction (every
        # shipped scenario's outcome stayed the same with them judged too), and tests hand them bare truths.
        self._external = {a.id for a in scenario.actors if a.external}
        self._last_truth: dict[str, tuple[int, testbed_pb2.TruthState]] = {}
        self._implausible: Counter[str] = Counter()
        # RSM / SSM against the truth (v2x.sim.perception): a V2X run in which a roadside unit with sensors or an
        # outside stack may send them (the truth is kept for them each tick: not in the other runs)
        self.perception: PerceptionCheck | None = None
        if variant == "v2x" and any((a.kind == "rsu" and a.sensors) or a.external for a in scenario.actors):
            o = scenario.origin
            geo = LocalFrame(o.lat_deg, o.lon_deg, o.alt_m)
            self.perception = PerceptionCheck(geo, scenario.epoch, self.tick_s, w.id_of)
            self.channel.watched, self.channel.on_fanned_out = PERCEPTION_MESSAGES, self.perception.fanned_out
        self._place_at_start()

    def _place_at_start(self) -> None:
        """Put each road user where it starts (an external one: its ``ActorStart``), moving at its start
        speed: the world keeps an actor's last reported state while its reports are late, and before its
        first one that was the frame origin. An outside stack slow at tick 0 jumped there and back (an
        outside review), and built-in agents whose tick-0 reports were late in a loaded real-time run piled
        up at the origin, collided there at t = 0 and stayed, wrecked (an attack review). Every agent reports
        its start at tick 0: a run whose reports are in time is unchanged."""
        for start in self._starts(external_only=False):
            yaw = compass_deg_to_enu_yaw_rad(start.heading_deg)
            speed = start.speed_mps
            self.world.set_state(
                np.array([self.world.slot_of(start.actor_id)], dtype=np.intp),
                np.array([start.x_m]),
                np.array([start.y_m]),
                np.array([speed * np.cos(yaw)]),
                np.array([speed * np.sin(yaw)]),
                np.zeros(1),
                np.zeros(1),
                np.array([yaw]),
                z=np.array([start.z_m]),
            )

    # -- time ---------------------------------------------------------------------------------------
    def time_of(self, tick: int) -> float:
        """The simulated time of ``tick`` in s (rounded to 1 ns, as the clocks do)."""
        return tick_time_s(tick, self.tick_s)

    @property
    def current_tick(self) -> int:
        """The tick in progress (-1 before the first)."""
        return self.inbound.current_tick

    # -- bytes out ----------------------------------------------------------------------------------
    def control(
        self,
        command: testbed_pb2.Control.Command.ValueType,
        reason: str = "",
        clock: testbed_pb2.Control.Clock.ValueType = testbed_pb2.Control.CLOCK_UNSPECIFIED,
    ) -> bytes:
        """The serialized ``Control`` announcing this run's start or stop (origin, tick, epoch, actors, the
        run's token; ``reason``: why it stops; ``clock``: the world's clock, which START says)."""
        sc = self.scenario
        platform = next((a.id for a in sc.actors if a.kind == "platform"), "")
        msg = testbed_pb2.Control(
            command=command,
            run_id=self.run_id,
            scenario_id=sc.id,
            origin_lat_deg=sc.origin.lat_deg,
            origin_lon_deg=sc.origin.lon_deg,
            origin_alt_m=sc.origin.alt_m,
            tick_us=self.tick_us,
            platform_id=platform,
            epoch_utc=sc.epoch.isoformat(),
            actor_ids=self.actor_ids,
            reason=reason,
            token=self.token,
        )
        if command == testbed_pb2.Control.COMMAND_START:
            msg.external_actors.extend(self.external_starts())
            msg.n_ticks = self.n_ticks
            msg.protocol_version = PROTOCOL_VERSION
            msg.signed = self.inbound.security is not None
            msg.clock = clock
        return msg.SerializeToString()

    def external_starts(self) -> list[testbed_pb2.Control.ActorStart]:
        """Where each actor driven from outside (``external: true``) starts: the pose and speed the
        built-in agent would start with (the centre of its box ``start_m`` along its lane or path), its box
        and its route, in actor-id order."""
        return self._starts(external_only=True)

    def _starts(self, *, external_only: bool) -> list[testbed_pb2.Control.ActorStart]:
        out = []
        for actor_id in self.actor_ids:
            spec = self.scenario.actor(actor_id)
            if not spec.external if external_only else spec.kind not in ROAD_USER_KINDS:
                continue  # (START names every external actor; everyone placed at the start is a road user)
            length, width, height = spec.box_m
            start = testbed_pb2.Control.ActorStart(
                actor_id=actor_id,
                kind=spec.kind,
                length_m=length,
                width_m=width,
                height_m=height,
                equipped=spec.equipped,
            )
            route = route_for(self.scenario, spec) if spec.kind in ROAD_USER_KINDS else None
            if route is not None:
                pose = route.pose(spec.start_m)
                points = list(spec.path) if spec.path is not None else self._lane_points(spec.lane)
                start.x_m, start.y_m = pose.x, pose.y
                start.heading_deg = enu_yaw_rad_to_compass_deg(pose.heading_rad)
                start.speed_mps = spec.speed_mps
                start.lane = spec.lane or ""
                start.start_m = spec.start_m
                start.path_x_m.extend(float(p[0]) for p in points)
                start.path_y_m.extend(float(p[1]) for p in points)
                start.z_m = pose.z
                start.path_z_m.extend(self._lane_heights(spec.lane) if spec.path is None else ())
            elif spec.position is not None:
                start.x_m, start.y_m = spec.position
            out.append(start)
        return out

    def _lane_points(self, lane_id: str | None) -> list[tuple[float, float]]:
        for lane in self.scenario.road.lanes:
            if lane.id == lane_id:
                return [(float(x), float(y)) for x, y in lane.centerline]
        return []

    def _lane_heights(self, lane_id: str | None) -> list[float]:
        """The lane's elevation profile, one height per centre-line point; empty for a flat lane."""
        for lane in self.scenario.road.lanes:
            if lane.id == lane_id and lane.elevated and lane.elevation_m is not None:
                return [float(z) for z in lane.elevation_m]
        return []

    def begin(self, tick: int) -> dict[str, bytes]:
        """Open ``tick`` and return every actor's serialized ``TickInput`` (in actor-id order): what it
        hears (deliveries due by the tick's time), its GNSS reading, its roadside detections."""
        self.inbound.open(tick)
        t = self.time_of(tick)
        due, bulk = self.channel.due_split(t, self._bulk)
        self.inbound.heard(due)  # (what each RSU may relay: the BSMs delivered to it)
        inputs = {}
        time_us = us_of(t)
        # (what every input of the tick shares, its time and the signal warps, looked at once, not once an actor:
        # diff review 25)
        shared = shared_input_problem(tick, time_us, self.tick_us, self._signal_warps)
        for actor_id in self.actor_ids:
            got = due.get(self.world.slot_of(actor_id))
            msg = testbed_pb2.TickInput(
                run_id=self.run_id,
                tick=tick,
                time_us=time_us,
                tick_us=self.tick_us,
                envelopes=got.envelopes if got is not None else [],
                rx_time_us=got.rx_time_us if got is not None else [],
                final=tick == self.n_ticks,
            )
            gnss = self.sensors.gnss.get(actor_id)
            if gnss is not None:
                msg.gnss.CopyFrom(gnss)
            msg.detections.extend(self.sensors.detections.get(actor_id, ()))
            msg.collisions.extend(self._collisions.pop(actor_id, ()))
            msg.late_ticks.extend(self._late.pop(actor_id, ()))
            msg.signal_warps.extend(self._signal_warps)
            payload = msg.SerializeToString()
            if (
                len(payload) > MAX_INPUT_BYTES
                or shared is not None
                or tick_input_problem(
                    msg,
                    shared_checked=True,
                    detections_checked=self.sensors.detections_checked(actor_id),
                    rx_time_us=got.rx_time_us if got is not None else (),
                )
                is not None
            ):
                payload = self._sendable(actor_id, msg, got)
            inputs[actor_id] = payload
        self._signal_warps = []
        self.fleet_inputs = self._fleet_inputs(tick, t, bulk) if self.fleet_ids else {}
        return inputs

    def _sendable(self, actor_id: str, msg: testbed_pb2.TickInput, got: Received | None) -> bytes:
        """``msg`` (with ``got``, its deliveries as the channel handed them over) serialised without what its host
        would refuse it for (``v2x.wire.tick_input``, the hosts' own check, and ``MAX_INPUT_BYTES``).

        Beyond the size limit, deliveries are cut from the senders that sent ``actor_id`` the most bytes, each
        of them losing its latest ones (``v2x.sim.overflow.fair_cut``): counted against each such sender
        (``input_overflow``, which flags one cut in ``CONFLICTS_FLAGGED`` ticks). The rest the world never should
        have let in: deliveries outside 0..``time_us``, collisions, detections and signal warps with a number that
        is not finite; each part dropped is counted (``unsendable_input``, not against the actor) and logged (attack
        review 10: a delivery before 0, a NaN signal warp each stalled a lockstep run, every host refusing the
        re-sent input), so this is the net under the inbox's checks, not instead of them. A delivery dropped is
        taken back from the channel's counts (``Channel.withdraw``): it was not delivered."""
        where = f"TickInput({msg.tick}) to {actor_id}"
        dropped: Counter[str] = Counter()
        envelopes, rx_time_us = list(msg.envelopes), list(msg.rx_time_us)
        sent, delivery_s = (got.sent, got.delivery_s) if got is not None else ([], [])
        kept = [k for k, r in enumerate(rx_time_us) if 0 <= r <= msg.time_us]
        lost = sorted(set(range(len(envelopes))) - set(kept))
        dropped["deliveries"] += len(lost)
        for name, numbers in FINITE_PARTS:
            items = getattr(msg, name)
            good = [item for item in items if all(math.isfinite(n) for n in numbers(item))]
            if len(good) < len(items):
                dropped[name] += len(items) - len(good)
                del items[:]
                items.extend(good)
        del msg.envelopes[:]
        del msg.rx_time_us[:]
        budget = MAX_INPUT_BYTES - msg.ByteSize() - PACKED_HEAD_BYTES
        costs = [delivery_bytes(envelopes[k], rx_time_us[k]) for k in kept]
        cut = fair_cut(costs, [sent[k].sender_slot for k in kept], budget)
        msg.envelopes.extend(envelopes[k] for k, keep in zip(kept, cut.keep, strict=True) if keep)
        msg.rx_time_us.extend(rx_time_us[k] for k, keep in zip(kept, cut.keep, strict=True) if keep)
        if msg.gnss.available and tick_input_problem(msg) is not None:
            msg.ClearField("gnss")  # (the world's own draws: no reading rather than one no host takes)
            dropped["gnss"] += 1
        for part, n in sorted((p, n) for p, n in dropped.items() if n):
            self.inbound.reject("unsendable_input", where, f"({n} {part} no host takes)")
        overflow = [k for k, keep in zip(kept, cut.keep, strict=True) if not keep]
        one_of = {sent[k].sender_slot: sent[k] for k in overflow}
        for slot, n in sorted(Counter(sent[k].sender_slot for k in overflow).items()):
            self.inbound.overflowed(
                self._sender_of(one_of[slot]),
                n,
                f"({n} deliveries cut from {where}, over {MAX_INPUT_BYTES:,} bytes: it sent {cut.sent[slot]:,} "
                f"bytes there, a fair share being {cut.share:,})",
            )
        for k in lost + overflow:
            self.channel.withdraw(sent[k], delivery_s[k])
        return msg.SerializeToString()

    def _sender_of(self, sent: Transmission) -> str:
        """Who answers for ``sent``: its sender, an actor, as its envelope names it, or the fleet hosting the
        vehicle (with one fleet, which remembers no assignment: that one). Not the slot's occupant now: a
        background vehicle's deliveries outlive its leaving the road, and its slot is freed, then taken by
        another vehicle (diff review 26)."""
        who = testbed_pb2.Envelope.FromString(sent.raw).sender_id
        if sent.sender_slot < len(self.actor_ids) or not self.fleet_ids:
            return who
        fleet = 0 if len(self.fleet_ids) == 1 else self._fleet_assigned.get(who)
        return who if fleet is None else self.fleet_ids[fleet]

    def _fleet_inputs(self, tick: int, t: float, bulk: Bulk) -> dict[str, bytes]:
        """Every fleet's FleetInput of ``tick``: its equipped background vehicles on the road (their truth when
        the last tick closed), every envelope the channel delivers to any fleet's vehicle by ``t`` (each once,
        in transmission order; the same list for every fleet, so that each knows every sender's freshest
        BSM whichever fleet hosts the vehicle that heard it), and the deliveries to its own vehicles (vehicle
        index, envelope index, delivery time; in the channel's order)."""
        bg = self.background
        assert bg is not None
        w = self.world
        _, slots, speed, accel = bg.equipped()
        truth_us = us_of(self.time_of(tick - 1)) if tick > 0 else 0
        slot_list = slots.tolist()
        ids = [w.id_of(s) for s in slot_list]
        if len(self.fleet_ids) == 1:  # one fleet hosts every vehicle (no assignment to remember)
            fleet_no = np.zeros(len(ids), dtype=np.intp)
        else:
            fleet_no = np.array([self._fleet_of(vid) for vid in ids], dtype=np.intp)
        index_of_slot = np.full(w.capacity, -1, dtype=np.int64)
        fleet_of_slot = np.full(w.capacity, -1, dtype=np.intp)
        out: dict[str, bytes] = {}
        heads = self._vehicle_heads
        if len(heads) > 2 * len(ids) + 1024:  # forget the vehicles long gone
            heads = self._vehicle_heads = {vid: heads[vid] for vid in ids if vid in heads}
        pos = self.bg_positioning
        positioned = pos is not None
        for vid, s in zip(ids, slot_list, strict=True):
            if vid not in heads:
                heads[vid] = vehicle_head(vid, bg.kind_name(s), positioning=positioned)
        for s in self.referee.wrecks:  # a wreck's FleetVehicle says so from the tick it crashed on
            vid = w.id_of(s)
            if s >= len(self.actor_ids) and vid in heads and vid not in self._wrecked:
                self._wrecked.add(vid)
                heads[vid] = vehicle_head(vid, bg.kind_name(s), positioning=positioned, wrecked=True)
        vehicle_heads = [heads[vid] for vid in ids]
        columns = [w.x[slots], w.y[slots], w.vx[slots], w.vy[slots], w.ax[slots], w.ay[slots], w.heading_rad[slots],
                   speed, accel, w.length_m[slots], w.width_m[slots]]  # fmt: skip
        if pos is not None:
            columns += pos.reading(slots)
        bodies = vehicle_bodies(columns)
        self._members_before, self._members = self._members, {}
        hosted: list[list[int]] = []  # per fleet, its vehicles (indices into slots)
        for f, fleet_id in enumerate(self.fleet_ids):
            mine = np.flatnonzero(fleet_no == f)
            index_of_slot[slots[mine]] = np.arange(len(mine))
            fleet_of_slot[slots[mine]] = f
            hosted.append(mine.tolist())
            self._members[fleet_id] = {ids[k]: slot_list[k] for k in hosted[f]}
        # The deliveries come by receiver: one run of deliveries per vehicle that heard anything. Which fleet
        # and which of its vehicles each run goes to is looked up per run, not per delivery.
        _, start, stop = bulk.deliveries.receiver_bounds()
        run_slot = bulk.receiver[start]
        run_fleet, run_vehicle, run_length = fleet_of_slot[run_slot], index_of_slot[run_slot], stop - start
        time_us = us_of(t)
        n = len(bulk.deliveries)  # (the two temporaries in arrays kept from tick to tick: ``Scratch``)
        offsets_us = np.multiply(bulk.deliveries.delivery_time_s, 1e6, out=self._scratch.room("us", n, np.float64))
        np.rint(offsets_us, out=offsets_us)  # whole us, exact as float64
        offsets_us -= time_us
        offsets = self._scratch.room("offsets", n, I32)  # the wire's type, once for every fleet
        np.copyto(offsets, offsets_us, casting="unsafe")  # (``astype``'s conversion)
        # The fleets may report a tick's warnings with the next tick's BSMs (they run their apps while the world
        # closes the tick): no driver of the traffic model reacts to them, and each warning carries its time, so
        # the outcome is the same. Not on the final tick, nor with SUMO, whose warned drivers brake (``warned``).
        defer = self.fleet_warnings_next_tick and tick < self.n_ticks and isinstance(self.background, Background)
        for f, fleet_id in enumerate(self.fleet_ids):
            msg = testbed_pb2.FleetInput(
                run_id=self.run_id,
                tick=tick,
                time_us=time_us,
                tick_us=self.tick_us,
                truth_time_us=truth_us,
                final=tick == self.n_ticks,
                warnings_next_tick=defer,
            )
            add_vehicles(msg, vehicle_heads, bodies, hosted[f], positioning=positioned)
            msg.envelopes.extend(bulk.payloads)
            my_runs = run_fleet == f
            counts = np.zeros(len(msg.vehicles), dtype=np.uint32)
            counts[run_vehicle[my_runs]] = run_length[my_runs]
            if my_runs.all():  # one fleet, or the others heard nothing: every delivery, no copies
                out[fleet_id] = serialize_with_deliveries(msg, counts, bulk.payload, offsets)
            else:
                to_me = np.repeat(my_runs, run_length)
                out[fleet_id] = serialize_with_deliveries(msg, counts, bulk.payload[to_me], offsets[to_me])
        return out

    def _fleet_of(self, vehicle_id: str) -> int:
        """The fleet hosting ``vehicle_id``: the fleets take the equipped vehicles in turn as they appear, and
        keep them."""
        f = self._fleet_assigned.get(vehicle_id)
        if f is None:
            f = self._fleet_assigned[vehicle_id] = len(self._fleet_assigned) % len(self.fleet_ids)
        return f

    # -- bytes in -----------------------------------------------------------------------------------
    def receive(self, kind: str, actor_id: str, payload: bytes, *, where: str = "") -> None:
        """A ``join`` (Hello), ``tx`` (Envelope) or ``ack`` (Ack) message from ``actor_id``: validated and
        counted (see ``v2x.sim.inbound``); ``where`` names it in the log (its topic)."""
        self.inbound.receive(kind, actor_id, payload, where=where)

    def receive_fleet(self, fleet_id: str, payload: bytes, *, where: str = "") -> None:
        """A ``FleetAck`` from ``fleet_id``: validated and counted (``v2x.sim.inbound``)."""
        self.inbound.fleet(
            fleet_id, payload, self._members.get(fleet_id, {}), where=where, before=self._members_before.get(fleet_id)
        )

    def reject(self, reason: str, where: str, detail: str = "") -> None:
        """Count a message the shell could not even attribute (``bad_topic``)."""
        self.inbound.reject(reason, where, detail)

    @property
    def joined(self) -> bool:
        """Every actor has said hello: the run can start."""
        return self.inbound.joined

    def not_joined(self) -> list[str]:
        """The actors that have not said hello yet."""
        return self.inbound.not_joined()

    def why_not_joined(self) -> str:
        """Why the Hellos of those of them whose Hellos were refused were refused (``Inbound.why_not_joined``)."""
        return self.inbound.why_not_joined()

    @property
    def reported(self) -> bool:
        """Every actor has reported the current tick: it can be closed."""
        return self.inbound.reported

    def missing(self) -> list[str]:
        """The actors that have not (completely) reported the current tick."""
        return self.inbound.missing()

    def missing_why(self) -> list[str]:
        """``missing``, each with what the world refused on its topics this tick (``Inbound.missing_why``)."""
        return self.inbound.missing_why()

    # -- closing a tick -----------------------------------------------------------------------------
    def step(self) -> list[Event]:
        """Close the current tick: apply the reported truths, record warnings, referee, channel, sensors.
        Reports still missing are counted as late (the real-time clock closes ticks at their deadline).
        Returns the events recorded, in order."""
        tick = self.inbound.current_tick
        if tick < 0:
            raise RuntimeError("step() before begin(): no tick is open")
        t = self.time_of(tick)
        w = self.world
        start = len(self.events)
        missing = self.missing()
        self.inbound.stats.late_reports += len(missing)
        for who in missing:
            self.inbound.closed_late[who].add(tick)
        applied: set[str] = set()  # the actors whose reported truth the world took this tick
        # Acks that came after their tick closed (real time): too late for their truth, not for their warnings.
        for actor_id, late_ack in self.inbound.late_acks:
            for adv in late_ack.events:
                self._record_warning(actor_id, adv)
        self.inbound.late_acks.clear()
        judged: list[tuple[str, testbed_pb2.TruthState]] = []  # the outside stacks' truths applied, judged below
        for actor_id in self.actor_ids:
            ack = self.inbound.acks.get(actor_id)
            if ack is None:
                self._late.setdefault(actor_id, []).append(tick)
                self.inbound.closed_without[actor_id].add(tick)
                self.inbound.stats.late_by_actor[actor_id] += 1
                continue
            self.inbound.note_rejected_by(actor_id, ack.rejected)
            if ack.HasField("truth"):
                applied.add(actor_id)
                s = w.slot_of(actor_id)
                tr = ack.truth
                if actor_id in self._external:
                    judged.append((actor_id, tr))
                w.set_state(
                    np.array([s], dtype=np.intp),
                    np.array([tr.x_m]),
                    np.array([tr.y_m]),
                    np.array([tr.vx_mps]),
                    np.array([tr.vy_mps]),
                    np.array([tr.ax_mps2]),
                    np.array([tr.ay_mps2]),
                    np.array([compass_deg_to_enu_yaw_rad(tr.heading_deg)]),
                    z=np.array([tr.z_m]),
                )
                if tr.signal_warps:
                    self._change_signals(actor_id, tr.signal_warps, t)
            for adv in ack.events:
                self._record_warning(actor_id, adv)
            for mb in ack.misbehaviour:
                self._record_misbehaviour(actor_id, mb)
            for note in ack.notes:
                log.info("%s t=%.2f s: %s", actor_id, t, note)
        for fleet_id in self.fleet_ids:  # a fleet's missing report counts against it as an actor's (never in lockstep)
            if fleet_id not in self.inbound.fleet_acks:  # (one silent for good passed the run: attack review 7)
                self.inbound.stats.late_by_actor[fleet_id] += 1
        for vehicle_id, adv in self.inbound.fleet_events:  # the warnings of the fleets' vehicles
            self._record_warning(vehicle_id, adv)
            if self.background is not None:  # SUMO's drivers react to them (v2x.sim.sumo)
                self.background.warned(vehicle_id, t)
        self.inbound.fleet_events.clear()
        # Road users in a collision stay where they came to rest, whatever their agents report.
        self.referee.hold(t)
        left = self._move_background(tick, t)
        # One spatial index per tick, shared by the channel's fan-out and the referee.
        grid = SpatialGrid.build(w, self.channel.cell_m)
        refereed = self.referee.step(t, grid)
        self.events.extend(refereed)
        for event in refereed:
            if event["type"] == "collision":
                a, b = event["actors"]
                for me, other in ((a, b), (b, a)):
                    self._collisions.setdefault(me, []).append(
                        testbed_pb2.TickInput.Collision(
                            other_id=other, t_s=event["t_s"], relative_speed_mps=event["relative_speed_mps"]
                        )
                    )
        if self.safety:
            self.safety.step(t, applied, self.referee.wrecks)
        self._judge_motion(tick, t, judged)  # after the referee: this tick's wrecks are known
        batch = self.inbound.take(tick)  # in (sender slot, seq) order, the fleets' vehicles' among them
        if left:  # a background vehicle that left the network this tick sends nothing more
            batch = [r for r in batch if r.sender_slot not in left]
        if self.background is not None:
            self.background.stats.bsm_sent += sum(r.sender_slot >= len(self.actor_ids) for r in batch)
        if self.perception is not None:
            slots, kinds = self.sensors.seen()
            self.perception.note_truth(t, kinds, w.x[slots], w.y[slots], w.vx[slots], w.vy[slots])
        self.channel.transmit(batch, grid)
        self.events.extend(self.sensors.step(t))
        if self.bg_positioning is not None:
            self.bg_positioning.step(t)
        return self.events[start:]

    def _move_background(self, tick: int, t: float) -> set[int]:
        """Move the background traffic to ``t`` (none without flows). The referee and the name resolver learn
        of the vehicles that left and entered; with a fleet, its vehicles on the road are the PC5 receivers
        among the background vehicles. Returns the slots of the vehicles that left."""
        bg = self.background
        if bg is None:
            return set()
        bg.step(tick, t, self.referee.wrecks)
        left = bg.take_left()
        for slot in left:  # before the new ones: a slot freed this tick may be taken again
            self.referee.forget(slot)
        new = bg.take_new()
        for vid in new:
            self.referee.road_users.add(self.world.slot_of(vid))
            self.names.add(vid)
        if self.bg_positioning is not None and new:
            assert isinstance(bg, Background)
            slots = np.array([self.world.slot_of(vid) for vid in new], dtype=np.intp)
            self.bg_positioning.enter(slots, bg.flow_of_slot[slots])
        if self.fleet_ids:
            rx = self.channel.pc5_receivers
            rx[len(self.actor_ids) :] = False
            rx[bg.equipped()[1]] = True
        return set(left)

    def _judge_motion(self, tick: int, t: float, judged: list[tuple[str, testbed_pb2.TruthState]]) -> None:
        """'truth in motion' (``v2x.sim.motion``): each outside stack's truth applied this tick against itself and
        against the actor's truth applied before (the tick before; after ticks that closed without its report, the
        speed change over them and the distance and height within what its speeds allow: ``motion_problems``). A
        wreck is left out from the tick of its collision on: the world holds it where it touched, whatever its
        stack reports. A tick with problems is counted (``implausible_motion_by_actor``,
        which fails the run's "truth in motion") and, for the first ``MAX_MOTION_EVENTS`` of them per actor,
        recorded as an ``implausible_motion`` event naming the figures."""
        wrecks = self.referee.wrecks
        for actor_id, tr in judged:
            before = self._last_truth.get(actor_id)
            self._last_truth[actor_id] = (tick, tr)
            if self.world.slot_of(actor_id) in wrecks:
                continue
            rules = IN_RUNS_VRU if self._kind.get(actor_id) in VRU_KINDS else IN_RUNS
            problems = [f"tick {tick}: {p}"] if (p := truth_problem(tr, rules)) else []
            if before is not None:
                n, prev = before
                problems += [
                    f"tick {n} -> {tick}: {p}" for p in motion_problems(prev, tr, self.tick_s, tick - n, rules)
                ]
            if not problems:
                continue
            self._implausible[actor_id] += 1
            if self._implausible[actor_id] > MAX_MOTION_EVENTS:
                continue
            problem = "; ".join(problems)
            event = {"t_s": round(t, 3), "type": "implausible_motion", "variant": self.variant, "actor": actor_id}
            self.events.append({**event, "tick": tick, "problem": problem})
            log.warning("%s t=%.2f s: its truth moves as no vehicle can: %s", actor_id, t, problem)

    def _change_signals(self, actor_id: str, warps: Sequence[testbed_pb2.SignalWarp], t: float) -> None:
        """A roadside unit's signal controller changed its plan: the signal heads (the referee's) show it from
        now on, and every actor hears of it in its next TickInput (drivers see the heads). Only roadside units
        run signal controllers; a warp from anyone else, or one the plan cannot take, is ignored and logged."""
        if self._kind.get(actor_id) != "rsu":
            log.warning("%s t=%.2f s: signal plan changes from a %s ignored", actor_id, t, self._kind.get(actor_id))
            return
        for msg in warps:
            warp = warp_from_wire(msg)
            try:
                self.referee.change_signals([warp])
            except ValueError as exc:  # (the Ack's numbers passed ``inbound.warps_problem``; the plan refused it)
                self.inbound.reject("out_of_range", actor_id, f"(signal plan change ignored: {exc})")
                continue
            change = (
                f"skip {msg.at_s:.2f} -> {msg.skip_to_s:.2f}"
                if msg.skip
                else f"hold {msg.hold_s:.2f} s at {msg.at_s:.2f}"
            )
            log.info("%s t=%.2f s: signal plan of %s changed: %s (plan time)", actor_id, t, msg.intersection, change)
            self._signal_warps.append(warp_to_wire(warp))  # (as applied: the fields that do not apply zeroed)

    def _record_warning(self, actor_id: str, adv: testbed_pb2.Advisory) -> None:
        # The same advisory reported again (an echo sent twice, or re-reported after a late tick) counts once.
        key = (actor_id, adv.app, adv.other_id, adv.source_id, round(adv.raised_at_s, 6))
        if key in self._warned:
            return
        if self._warnings_of[actor_id] >= MAX_WARNINGS_PER_ACTOR:  # a flood: refused (and the result stays small)
            self.inbound.reject("too_many_warnings", actor_id, f"(more than {MAX_WARNINGS_PER_ACTOR} in the run)")
            return
        self._warnings_of[actor_id] += 1
        self._warned.add(key)
        other = self.names.resolve(adv.other_id)
        event = warning_event(self.variant, actor_id, other, adv)
        self.events.append(event)
        if adv.HasField("trigger_sent_at_s"):
            latency = (adv.raised_at_s - adv.trigger_sent_at_s) * 1e3
            self._app_latency.setdefault(event["app"], []).append(latency)
        time = f"{time_label(event['app'])} {adv.ttc_s:.2f} s"  # TTC, or TTI: a time to reach (AppSpec.time_label)
        figure = f"{adv.figure_name} {adv.figure:.2f}" if adv.figure_name else time
        log.info(
            "%s t=%.2f s: %s %s about %s (%s, from %s)",
            actor_id,
            adv.raised_at_s,
            event["app"].upper(),
            "warning" if adv.severity >= testbed_pb2.SEVERITY_WARNING else "advisory",
            other,
            figure,
            adv.source_id,
        )

    def _record_misbehaviour(self, actor_id: str, mb: testbed_pb2.Misbehaviour) -> None:
        # Once per (detector, suspect, check): a report sent again (a re-sent Ack) counts once.
        key = (actor_id, mb.suspect_id, mb.check)
        if key in self._judged:
            return
        self._judged.add(key)
        suspect = self.names.resolve(mb.suspect_id)
        self.events.append(
            {
                "t_s": round(mb.t_s, 3),
                "type": "misbehaviour",
                "variant": self.variant,
                "actor": actor_id,
                "suspect": suspect,
                "suspect_id": mb.suspect_id,
                "check": mb.check,
            }
        )
        log.info("%s t=%.2f s: misbehaviour of %s (%s)", actor_id, mb.t_s, suspect, mb.check)

    # -- the end ------------------------------------------------------------------------------------
    def metrics(self, wall_s: float) -> dict[str, Any]:
        """The run's metrics so far (``wall_s``: its wall-clock duration)."""
        roadside = self.sensors.roadside
        metrics = run_metrics(
            self.variant,
            n_ticks=self.n_ticks,
            tick_s=self.tick_s,
            wall_s=wall_s,
            channel=self.channel.stats,
            in_flight=self.channel.in_flight,
            inbound=self.inbound.stats,
            sensing=roadside.counts if roadside is not None else {},
            app_latency_ms=self._app_latency,
        )
        if self.background is not None:
            metrics["background"] = self.background.stats.as_dict()
        if self.perception is not None:  # (only when an RSM or SSM was sent: other runs' metrics stay as they were)
            metrics.update(self.perception.metrics())
        # Only when a string-stability expectation asks, so that the metrics of other runs stay as they were.
        strings = self.referee.string_stability()
        if strings:
            metrics["string_stability"] = strings
        # The same for the surrogate safety measures (min_gap, max_decel, stays_on_route expectations).
        metrics.update(self.safety.metrics())
        gaps = self.referee.gap_report()  # likewise only when a gap expectation asks
        if gaps:
            metrics["gaps"] = gaps
        # Only when something conflicted, so that the metrics of a clean run stay as they were.
        conflicts = {a: dict(sorted(c.items())) for a, c in sorted(self.inbound.stats.conflicts.items()) if c}
        if conflicts:
            metrics["conflicts"] = conflicts
            metrics["flagged"] = self.inbound.flagged()
        # Only when a truth moved as no vehicle can, so that the metrics of a plausible run stay as they were.
        if self._implausible:
            metrics["implausible_motion_by_actor"] = dict(sorted(self._implausible.items()))
        return metrics

    def report(self, wall_s: float) -> WorldReport:
        """The run's outcome: every event recorded, in ``event_order``, and the metrics."""
        self.inbound.log_summary()
        if self.background is not None:
            self.background.close()
        outside = {a: self.inbound.software_of(a) for a in self.actor_ids if self.scenario.actor(a).external}
        return WorldReport(
            events=sorted(self.events, key=event_order),
            metrics=self.metrics(wall_s),
            outside_stacks={a: sw for a, sw in outside.items() if sw is not None},
        )


def fleet_ids_for(scenario: Scenario, variant: str, fleets: int) -> list[str]:
    """The fleets of a run of ``scenario``'s ``variant`` with ``fleets`` of them: ``fleet-0`` ... (prefixed
    with ``_`` until no actor has such an id) in the V2X variant of a scenario with equipped background
    traffic (with SUMO always: its demand can give vehicles an OBU whatever the penetration), else none.
    ``v2x worker`` finds its fleet's id with it."""
    equipped = any(f.penetration > 0 for f in scenario.flows) or scenario.sumo is not None
    if variant != "v2x" or not equipped:
        return []
    actor_ids = {a.id for a in scenario.actors}
    prefix = "fleet-"
    while any(f"{prefix}{k}" in actor_ids for k in range(max(1, fleets))):
        prefix = "_" + prefix
    return [f"{prefix}{k}" for k in range(max(1, fleets))]
