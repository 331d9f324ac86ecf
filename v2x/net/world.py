"""The world: the testbed's view of physical reality, one per run.

It is the only party that sees ground truth. Every tick it
  1. sends each agent its ``TickInput``: the GNSS reading of its positioning sensor and what it heard (and
     to each roadside unit what its roadside sensors detected),
  2. waits (through the clock) for every agent's transmissions and ``Ack``,
  3. validates and counts everything it received (bad payloads are rejected and counted, never raised),
  4. updates the core's ``WorldState`` with the reported truth, records warnings, collisions and
     red-light violations (referee),
  5. runs the channel (``v2x.core`` fan-out with the scenario's network profiles) over the tick's
     transmissions, and advances the positioning model and the roadside sensors.
Steps 3-5 are sans-I/O calls into ``v2x.core``, ``v2x.impair`` and ``v2x.sensors``; this module is the thin
shell. An unequipped road user (no OBU) hears nothing, and anything it transmits is rejected.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from v2x.core import (
    ActorKind,
    Deliveries,
    SpatialGrid,
    WorldState,
    default_cell_m,
    fan_out_addressed,
    fan_out_broadcast,
    overlapping_pairs,
)
from v2x.impair import PositioningModel, Zone, network_link
from v2x.net import topics
from v2x.net.clock import Clock
from v2x.net.transport import Transport
from v2x.scenario.geometry import polygon
from v2x.scenario.model import DEFAULT_SIZE, ROAD_USER_KINDS, SPEED_GATE_M, VEHICLE_KINDS, Scenario, SpeedExpectation
from v2x.scenario.signals import crossed, signal_heads
from v2x.sim.events import event_order
from v2x.sim.sensing import RoadsideSensing, Targets
from v2x.units import compass_deg_to_enu_yaw_rad
from v2x.wire import testbed_pb2
from v2x.wire.envelope import parse_envelope, parse_participant_key, temporary_id
from v2x.wire.map_spat import LIGHT_NAME, STOPPING_LIGHTS
from v2x.wire.rsi import road_event_key, road_sign_key
from v2x.wire.tables import APP_NAME

log = logging.getLogger("v2x.net.world")

STOP_SPEED_MPS = 0.1  # a vehicle slower than this has stopped ...
STOP_RESUME_MPS = 1.0  # ... and is moving again once faster than this
MAX_TX_BYTES = 16 * 1024  # TS 22.185: event messages up to 1200 B; MAP and envelopes need more headroom
KIND = {
    "car": ActorKind.CAR,
    "truck": ActorKind.TRUCK,
    "bus": ActorKind.BUS,
    "emergency": ActorKind.EMERGENCY,
    "pedestrian": ActorKind.PEDESTRIAN,
    "cyclist": ActorKind.CYCLIST,
    "rsu": ActorKind.RSU,
    "platform": ActorKind.RSU,  # has a slot for addressing; never a PC5 receiver nor on the road
}
LINK_NAME = {testbed_pb2.LINK_PC5: "pc5", testbed_pb2.LINK_UU: "uu", testbed_pb2.LINK_WIRED: "wired"}
SENSOR_KIND = {
    "camera": testbed_pb2.SENSOR_CAMERA,
    "radar": testbed_pb2.SENSOR_RADAR,
    "lidar": testbed_pb2.SENSOR_LIDAR,
}


@dataclass
class _Received:
    tick: int
    sender_slot: int
    seq: int
    tx_time_s: float
    link: int
    dest_ids: tuple[str, ...]
    raw: bytes
    msg: str = ""  # the MessageFrame's message type (bsm, rsm, spat, ...)


@dataclass
class WorldReport:
    """What a finished run leaves behind: the outcome (events) and the metrics."""

    events: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


class World:
    def __init__(
        self,
        scenario: Scenario,
        *,
        variant: str,
        seed: int,
        run_id: str,
        transport: Transport,
        clock: Clock,
        progress: Callable[[int, int], None] | None = None,
        join_timeout_s: float = 30.0,
    ) -> None:
        self.sc = scenario
        self.variant = variant
        self.v2x = variant == "v2x"
        self.run_id = run_id
        self.transport = transport
        self.clock = clock
        self.progress = progress
        self.join_timeout_s = join_timeout_s
        self.n_ticks = scenario.n_ticks
        self.tick_us = round(scenario.tick_s * 1e6)
        variant_no = 0 if variant == "v2x" else 1
        self.rng_net = np.random.default_rng([seed, variant_no, 1])
        rng_pos = np.random.default_rng([seed, variant_no, 2])
        rng_sense = np.random.default_rng([seed, variant_no, 3])

        # Slots in id order so that the layout, and every draw that depends on it, is deterministic.
        self.actor_ids = sorted(a.id for a in scenario.actors)
        self.world = WorldState(capacity=max(8, len(self.actor_ids)))
        for actor_id in self.actor_ids:
            spec = scenario.actor(actor_id)
            length, width, _ = DEFAULT_SIZE[spec.kind]
            self.world.add(actor_id, KIND[spec.kind], spec.length_m or length, spec.width_m or width)
            if spec.position is not None:
                s = self.world.slot_of(actor_id)
                self.world.x[s], self.world.y[s] = spec.position
        self.road_users = np.array(
            [self.world.slot_of(a.id) for a in scenario.actors if a.kind in ROAD_USER_KINDS], dtype=np.intp
        )
        self.road_users.sort()
        self.pc5_receivers = np.zeros(self.world.capacity, dtype=np.bool_)
        self.unequipped = {a.id for a in scenario.actors if not a.equipped}
        for a in scenario.actors:
            if a.kind != "platform" and a.equipped:
                self.pc5_receivers[self.world.slot_of(a.id)] = True
        self.links = {
            testbed_pb2.LINK_PC5: network_link(scenario.network.pc5),
            testbed_pb2.LINK_UU: network_link(scenario.network.uu),
            testbed_pb2.LINK_WIRED: network_link(scenario.network.wired),
        }
        # Uu runs both ways with different delays in some profiles: the platform sends on the downlink.
        self.uu_downlink = network_link(scenario.network.uu, "downlink")
        self.platform_slots = {self.world.slot_of(a.id) for a in scenario.actors if a.kind == "platform"}
        ru_ids = [self.world.id_of(int(s)) for s in self.road_users]
        profiles = [scenario.actor(a).positioning or scenario.positioning for a in ru_ids]
        zones = [Zone(z.name, z.kind, polygon(list(z.polygon))) for z in scenario.zones]
        self.positioning = PositioningModel(profiles, zones, rng_pos)
        self.gnss: dict[str, testbed_pb2.GnssReading] = {}
        pc5_range = self.links[testbed_pb2.LINK_PC5].max_range_m
        self.cell_m = default_cell_m(pc5_range if np.isfinite(pc5_range) else 1000.0)
        self.temp_ids = {temporary_id(a).hex(): a for a in self.actor_ids}
        # RSI road events as apps name them ({rsi id hex}/rte{rteId}, rteId from 1 in file order) -> event id.
        self.road_event_ids = {
            road_event_key(temporary_id(a.id), k): ev.id
            for a in scenario.actors
            for k, ev in enumerate(a.road_events, start=1)
        }
        # ... and RSI road signs ({rsi id hex}/rts{rtsId}, rtsId from 1 in file order) -> sign id.
        self.road_event_ids.update(
            {
                road_sign_key(temporary_id(a.id), k): sign.id
                for a in scenario.actors
                for k, sign in enumerate(a.road_signs, start=1)
            }
        )
        # Speed gates (`speed` expectations): (actor slot, point) -> the along-heading offset last tick.
        self._gates: dict[tuple[int, tuple[float, float]], float | None] = {
            (self.world.slot_of(e.actor), e.at): None for e in scenario.expectations if isinstance(e, SpeedExpectation)
        }
        # Roadside sensors: the RSUs' sensors look at the road users; object id = slot + 1 (stable per run).
        rsus = []
        for a in scenario.actors:
            if a.kind == "rsu" and a.sensors and a.position is not None:
                rsus.append((a.id, a.position, a.sensors))
        obstacles = [polygon(list(o.polygon)) for o in scenario.obstacles]
        self.sensing = RoadsideSensing(rsus, obstacles, rng_sense) if rsus else None
        self.road_user_kinds = [scenario.actor(self.world.id_of(int(s))).kind for s in self.road_users]
        self.detections: dict[str, list[testbed_pb2.Detection]] = {}

        self.hellos: set[str] = set()
        self.all_joined = asyncio.Event()
        self.current_tick = -1
        self.acks: dict[str, testbed_pb2.Ack] = {}
        self.received: dict[tuple[int, int], _Received] = {}  # (sender slot, seq) -> transmission
        self.tick_tx: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.reported = asyncio.Event()
        self.pending = Deliveries.empty()
        self.payloads: dict[int, _Received] = {}  # global tx index -> transmission
        self._next_tx_index = 0
        self._last_input: dict[str, bytes] = {}
        self.report = WorldReport()
        self._collided: set[tuple[str, str]] = set()
        # Signalised stop lines for the referee; the controllers run the same plans as the RSUs' (the
        # signal heads are physical: they run in the baseline too).
        self.stop_lines = signal_heads(scenario)
        self.vehicles = [self.world.slot_of(a.id) for a in scenario.actors if a.kind in VEHICLE_KINDS]
        self.vehicles.sort()
        self._front: dict[int, tuple[float, float]] = {}
        self._moving: set[int] = set()

        self.rejected: Counter[str] = Counter()
        self.rejected_by_agents: dict[str, dict[str, int]] = {}
        self.duplicates = 0
        self.sent: Counter[str] = Counter()
        self.delivered: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.candidates: Counter[str] = Counter()
        self.latencies_ms: list[float] = []
        self.latencies_by_channel: dict[str, list[float]] = defaultdict(list)
        self.latencies_by_message: dict[str, list[float]] = defaultdict(list)
        self.late_reports = 0

        transport.route(topics.all_of(run_id, "join"), self._on_join)
        transport.route(topics.all_of(run_id, "tx"), self._on_tx)
        transport.route(topics.all_of(run_id, "ack"), self._on_ack)

    # -- inbound ------------------------------------------------------------------------------------
    def _reject(self, reason: str, topic: str, detail: str = "") -> None:
        self.rejected[reason] += 1
        t = max(self.current_tick, 0) * self.sc.tick_s
        log.warning("world t=%.2f s: rejected %s on %s %s", t, reason, topic, detail)

    def _sender(self, topic: str, kind: str) -> str | None:
        parsed = topics.parse(topic)
        if parsed is None or parsed.run_id != self.run_id or parsed.kind != kind:
            self._reject("bad_topic", topic)
            return None
        if parsed.actor_id not in self.world:
            self._reject("unknown_sender", topic)
            return None
        return parsed.actor_id

    def _on_join(self, topic: str, payload: bytes) -> None:
        actor_id = self._sender(topic, "join")
        if actor_id is None:
            return
        hello = testbed_pb2.Hello()
        try:
            hello.ParseFromString(payload)
        except DecodeError:
            self._reject("malformed", topic)
            return
        if hello.actor_id != actor_id:
            self._reject("sender_mismatch", topic, f"(hello from {hello.actor_id!r})")
            return
        if actor_id in self.hellos:
            log.info("world: %s joined again (reconnect)", actor_id)
        self.hellos.add(actor_id)
        if self.hellos >= set(self.actor_ids):
            self.all_joined.set()

    def _on_tx(self, topic: str, payload: bytes) -> None:
        actor_id = self._sender(topic, "tx")
        if actor_id is None:
            return
        if len(payload) > MAX_TX_BYTES:
            self._reject("oversized", topic, f"({len(payload)} bytes > {MAX_TX_BYTES})")
            return
        parsed = parse_envelope(payload)
        if parsed is None:
            self._reject("malformed", topic)
            return
        env, frame = parsed
        if env.sender_id != actor_id:
            self._reject("sender_mismatch", topic, f"(envelope says {env.sender_id!r})")
            return
        msg_type = frame.WhichOneof("msg")
        if msg_type is None:
            self._reject("unknown_type", topic)
            return
        if actor_id in self.unequipped:
            self._reject("unequipped_sender", topic, "(equipped: false: it has no OBU)")
            return
        if env.link not in self.links:
            self._reject("bad_link", topic)
            return
        if env.link != testbed_pb2.LINK_PC5 and (not env.dest_ids or any(d not in self.world for d in env.dest_ids)):
            self._reject("bad_destination", topic, f"({list(env.dest_ids)})")
            return
        slot = self.world.slot_of(actor_id)
        key = (slot, env.seq)
        if key in self.received or env.tick < self.current_tick:
            self.duplicates += 1
            return
        if env.tick > self.current_tick:
            self._reject("bad_tick", topic, f"(tick {env.tick}, current {self.current_tick})")
            return
        self.received[key] = _Received(
            env.tick, slot, env.seq, env.tx_time_us / 1e6, env.link, tuple(env.dest_ids), payload, msg_type
        )
        self.tick_tx[env.tick][actor_id] += 1
        self._check_reported()

    def _on_ack(self, topic: str, payload: bytes) -> None:
        actor_id = self._sender(topic, "ack")
        if actor_id is None:
            return
        ack = testbed_pb2.Ack()
        try:
            ack.ParseFromString(payload)
        except DecodeError:
            self._reject("malformed", topic)
            return
        if ack.actor_id != actor_id:
            self._reject("sender_mismatch", topic, f"(ack from {ack.actor_id!r})")
            return
        if ack.tick != self.current_tick:
            if ack.tick < self.current_tick:
                self.duplicates += 1
            else:
                self._reject("bad_tick", topic, f"(tick {ack.tick}, current {self.current_tick})")
            return
        if actor_id in self.acks:
            self.duplicates += 1
            return
        self.acks[actor_id] = ack
        self._check_reported()

    def _missing(self) -> list[str]:
        out = []
        counts = self.tick_tx.get(self.current_tick, {})
        for actor_id in self.actor_ids:
            ack = self.acks.get(actor_id)
            if ack is None or counts.get(actor_id, 0) < ack.tx_count:
                out.append(actor_id)
        return out

    def _check_reported(self) -> None:
        if len(self.acks) == len(self.actor_ids) and not self._missing():
            self.reported.set()

    # -- the run ------------------------------------------------------------------------------------
    async def run(self) -> WorldReport:
        started = time.monotonic()
        try:
            await asyncio.wait_for(self.all_joined.wait(), self.join_timeout_s)
        except TimeoutError:
            missing = sorted(set(self.actor_ids) - self.hellos)
            raise RuntimeError(f"these actors never joined within {self.join_timeout_s:.0f} s: {missing}") from None
        await self._publish_control(testbed_pb2.Control.COMMAND_START)
        self.clock.start()
        for tick in range(self.n_ticks + 1):
            self.current_tick = tick
            self.acks = {}
            self.reported.clear()
            await self._send_inputs(tick, final=tick == self.n_ticks)
            complete = await self.clock.end_of_tick(tick, self.reported, self._missing, self._retransmit)
            if not complete:
                self.late_reports += len(self._missing())
            self._process(tick)
            if self.progress is not None:
                self.progress(tick, self.n_ticks)
        await self._publish_control(testbed_pb2.Control.COMMAND_STOP)
        self.report.metrics = self._metrics(time.monotonic() - started)
        self.report.events.sort(key=event_order)
        return self.report

    async def _publish_control(self, command: testbed_pb2.Control.Command.ValueType) -> None:
        platform = next((a.id for a in self.sc.actors if a.kind == "platform"), "")
        msg = testbed_pb2.Control(
            command=command,
            run_id=self.run_id,
            scenario_id=self.sc.id,
            origin_lat_deg=self.sc.origin.lat_deg,
            origin_lon_deg=self.sc.origin.lon_deg,
            origin_alt_m=self.sc.origin.alt_m,
            tick_us=self.tick_us,
            platform_id=platform,
            epoch_utc=self.sc.epoch.isoformat(),
            actor_ids=self.actor_ids,
        )
        await self.transport.publish(topics.control(self.run_id), msg.SerializeToString(), qos=1, retain=True)

    async def _send_inputs(self, tick: int, *, final: bool) -> None:
        t_end = self.clock.time_of(tick) + 1e-9
        due, self.pending = self.pending.split_due(t_end)
        by_receiver: dict[int, tuple[list[bytes], list[int]]] = defaultdict(lambda: ([], []))
        for k in range(len(due)):
            rec = self.payloads[int(due.tx_index[k])]
            envs, times = by_receiver[int(due.receiver[k])]
            envs.append(rec.raw)
            times.append(round(float(due.delivery_time_s[k]) * 1e6))
        live = set(self.pending.tx_index.tolist())
        self.payloads = {i: r for i, r in self.payloads.items() if i in live}
        self._last_input = {}
        for actor_id in self.actor_ids:
            envs, times = by_receiver.get(self.world.slot_of(actor_id), ([], []))
            msg = testbed_pb2.TickInput(
                run_id=self.run_id,
                tick=tick,
                time_us=round(self.clock.time_of(tick) * 1e6),
                tick_us=self.tick_us,
                envelopes=envs,
                rx_time_us=times,
                final=final,
            )
            gnss = self.gnss.get(actor_id)
            if gnss is not None:
                msg.gnss.CopyFrom(gnss)
            msg.detections.extend(self.detections.get(actor_id, ()))
            self._last_input[actor_id] = msg.SerializeToString()
        await asyncio.gather(
            *(self.transport.publish(topics.tick_input(self.run_id, a), p) for a, p in self._last_input.items())
        )

    async def _retransmit(self) -> None:
        missing = self._missing()
        log.warning("world tick %d: waiting for %s; sending their input again", self.current_tick, missing)
        await asyncio.gather(
            *(self.transport.publish(topics.tick_input(self.run_id, a), self._last_input[a]) for a in missing)
        )

    # -- one tick, sans-I/O from here on --------------------------------------------------------------
    def _process(self, tick: int) -> None:
        t = self.clock.time_of(tick)
        w = self.world
        for actor_id in self.actor_ids:
            ack = self.acks.get(actor_id)
            if ack is None:
                continue
            self.rejected_by_agents[actor_id] = dict(ack.rejected)
            if ack.HasField("truth"):
                s = w.slot_of(actor_id)
                tr = ack.truth
                w.set_state(
                    np.array([s], dtype=np.intp),
                    np.array([tr.x_m]),
                    np.array([tr.y_m]),
                    np.array([tr.vx_mps]),
                    np.array([tr.vy_mps]),
                    np.array([tr.ax_mps2]),
                    np.array([tr.ay_mps2]),
                    np.array([compass_deg_to_enu_yaw_rad(tr.heading_deg)]),
                )
            for adv in ack.events:
                self._record_warning(actor_id, adv)
            for note in ack.notes:
                log.info("%s t=%.2f s: %s", actor_id, t, note)
        # One spatial index per tick, shared by the channel's fan-out and the referee.
        grid = SpatialGrid.build(w, self.cell_m)
        self._referee(t, grid)
        self._stop_lines(t)
        self._stops(t)
        self._passages(t)
        self._channel(tick, grid)
        self._sense(t)

    def _resolve(self, other_id: str) -> str:
        """The actor an app's ``other_id`` names: a BSM id (hex), or an RSM participant ({rsm id}/{ptcId},
        ptcId = the world's object id = slot + 1); an RSI road event ({rsi id}/rte{rteId}) becomes the
        scenario's road event id; anything else is kept as it is."""
        if other_id in self.temp_ids:
            return self.temp_ids[other_id]
        if other_id in self.road_event_ids:
            return self.road_event_ids[other_id]
        parsed = parse_participant_key(other_id)
        if parsed is not None and 1 <= parsed[1] <= len(self.actor_ids):
            return self.world.id_of(parsed[1] - 1)
        return other_id

    def _record_warning(self, actor_id: str, adv: testbed_pb2.Advisory) -> None:
        other = self._resolve(adv.other_id)
        event: dict[str, Any] = {
            "t_s": round(adv.raised_at_s, 3),
            "type": "warning",
            "variant": self.variant,
            "app": APP_NAME.get(adv.app, str(adv.app)),
            "target": actor_id,
            "other": other,
            "source": adv.source_id,
            "conflict": adv.conflict_type,
            "ttc_s": round(adv.ttc_s, 3),
        }
        if adv.figure_name:
            event[adv.figure_name] = round(adv.figure, 3)
        self.report.events.append(event)
        figure = f"{adv.figure_name} {adv.figure:.2f}" if adv.figure_name else f"ttc {adv.ttc_s:.2f} s"
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

    def _referee(self, t: float, grid: SpatialGrid) -> None:
        i, j = overlapping_pairs(self.world, grid)
        for a, b in zip(i.tolist(), j.tolist(), strict=True):
            if a not in self.road_users or b not in self.road_users:
                continue
            first, second = sorted((self.world.id_of(a), self.world.id_of(b)))
            pair = (first, second)
            if pair in self._collided:
                continue
            self._collided.add(pair)
            w = self.world
            rel = float(np.hypot(w.vx[a] - w.vx[b], w.vy[a] - w.vy[b]))
            self.report.events.append(
                {
                    "t_s": round(t, 3),
                    "type": "collision",
                    "variant": self.variant,
                    "actors": list(pair),
                    "relative_speed_mps": round(rel, 2),
                }
            )
            log.warning("world t=%.2f s: COLLISION %s - %s at %.1f m/s", t, pair[0], pair[1], rel)

    def _stops(self, t: float) -> None:
        """Record every vehicle that comes to a standstill (below 0.1 m/s after moving at 1 m/s or more)."""
        w = self.world
        for s in self.vehicles:
            speed = float(np.hypot(w.vx[s], w.vy[s]))
            if speed >= STOP_RESUME_MPS:
                self._moving.add(s)
            elif speed < STOP_SPEED_MPS and s in self._moving:
                self._moving.discard(s)
                self.report.events.append(
                    {
                        "t_s": round(t, 3),
                        "type": "stop",
                        "variant": self.variant,
                        "actor": w.id_of(s),
                        "x_m": round(float(w.x[s]), 2),
                        "y_m": round(float(w.y[s]), 2),
                    }
                )
                log.info("%s t=%.2f s: stopped at (%.1f, %.1f)", w.id_of(s), t, w.x[s], w.y[s])

    def _passages(self, t: float) -> None:
        """Record the speed of an actor as its centre passes a speed gate: the line through the gate's point
        square to the actor's heading, crossed within SPEED_GATE_M of the point (once per gate)."""
        w = self.world
        for (s, (px, py)), before in list(self._gates.items()):
            if before is not None and math.isnan(before):
                continue  # recorded
            c, sn = math.cos(float(w.heading_rad[s])), math.sin(float(w.heading_rad[s]))
            dx, dy = px - float(w.x[s]), py - float(w.y[s])
            ahead = dx * c + dy * sn
            if before is not None and before > 0 >= ahead and abs(-dx * sn + dy * c) <= SPEED_GATE_M:
                self._gates[(s, (px, py))] = math.nan
                self.report.events.append(
                    {
                        "t_s": round(t, 3),
                        "type": "passage",
                        "variant": self.variant,
                        "actor": w.id_of(s),
                        "at": [px, py],
                        "speed_mps": round(float(np.hypot(w.vx[s], w.vy[s])), 2),
                    }
                )
            else:
                self._gates[(s, (px, py))] = ahead

    def _stop_lines(self, t: float) -> None:
        """Record every vehicle whose front bumper crosses a signalised stop line while its phase is red."""
        if not self.stop_lines:
            return
        w = self.world
        for s in self.vehicles:
            half = w.length_m[s] / 2
            front = (float(w.x[s] + half * np.cos(w.heading_rad[s])), float(w.y[s] + half * np.sin(w.heading_rad[s])))
            before = self._front.get(s)
            self._front[s] = front
            if before is None:
                continue
            for ap, ctl in self.stop_lines:
                if not crossed(ap, before, front):
                    continue
                light = ctl.light(ap.phase_id, t)
                actor = w.id_of(s)
                if light in STOPPING_LIGHTS:
                    speed = float(np.hypot(w.vx[s], w.vy[s]))
                    self.report.events.append(
                        {
                            "t_s": round(t, 3),
                            "type": "violation",
                            "variant": self.variant,
                            "kind": "red_light",
                            "actor": actor,
                            "intersection": ap.intersection,
                            "lane": ap.lane,
                            "speed_mps": round(speed, 2),
                        }
                    )
                    log.warning(
                        "world t=%.2f s: RED LIGHT %s crossed the %s stop line at %s",
                        t,
                        actor,
                        ap.lane,
                        ap.intersection,
                    )
                else:
                    log.info(
                        "%s t=%.2f s: crossed the %s stop line on %s", actor, t, ap.lane, LIGHT_NAME.get(light, light)
                    )

    def _channel(self, tick: int, grid: SpatialGrid) -> None:
        batch = sorted((r for r in self.received.values() if r.tick == tick), key=lambda r: (r.sender_slot, r.seq))
        self.received = {k: r for k, r in self.received.items() if r.tick > tick}
        if not batch or not self.v2x:
            return  # baseline: no V2X equipment, nothing is heard
        parts = []
        channels = [
            (testbed_pb2.LINK_PC5, self.links[testbed_pb2.LINK_PC5], None, "pc5"),
            (testbed_pb2.LINK_UU, self.links[testbed_pb2.LINK_UU], False, "uu-up"),
            (testbed_pb2.LINK_UU, self.uu_downlink, True, "uu-down"),
            (testbed_pb2.LINK_WIRED, self.links[testbed_pb2.LINK_WIRED], None, "wired"),
        ]
        for link, model, downlink, channel in channels:
            recs = [
                r
                for r in batch
                if r.link == link and (downlink is None or (r.sender_slot in self.platform_slots) == downlink)
            ]
            if not recs:
                continue
            name = LINK_NAME[link]
            base = self._next_tx_index
            self._next_tx_index += len(recs)
            for k, rec in enumerate(recs):
                self.payloads[base + k] = rec
            senders = np.array([r.sender_slot for r in recs], dtype=np.intp)
            tx_time = np.array([r.tx_time_s for r in recs], dtype=np.float64)
            self.sent[name] += len(recs)
            if link == testbed_pb2.LINK_PC5:
                d = fan_out_broadcast(
                    self.world, senders, tx_time, model, self.rng_net, grid=grid, can_receive=self.pc5_receivers
                )
            else:
                tx_of_dest = np.array([k for k, r in enumerate(recs) for _ in r.dest_ids], dtype=np.intp)
                dests = np.array([self.world.slot_of(d) for r in recs for d in r.dest_ids], dtype=np.intp)
                d = fan_out_addressed(self.world, senders, tx_time, tx_of_dest, dests, model, self.rng_net)
            d = dataclasses.replace(d, tx_index=d.tx_index.astype(np.int64) + base)  # int32 from the fan-out
            self.candidates[name] += d.candidates
            self.dropped[name] += d.dropped
            self.delivered[name] += len(d)
            lat = ((d.delivery_time_s - tx_time[d.tx_index - base]) * 1e3).tolist()
            self.latencies_ms.extend(lat)
            self.latencies_by_channel[channel].extend(lat)
            for k, ms in zip((d.tx_index - base).tolist(), lat, strict=True):
                self.latencies_by_message[recs[k].msg or "unknown"].append(ms)
            parts.append(d)
        self.pending = Deliveries.concat(self.pending, *parts)

    def _sense(self, t: float) -> None:
        w = self.world
        slots = self.road_users
        if self.sensing is not None:
            self._sense_roadside(t)
        xy = np.stack([w.x[slots], w.y[slots]], axis=1)
        speed = np.hypot(w.vx[slots], w.vy[slots])
        fixes = self.positioning.step(t, self.sc.tick_s, xy, speed)
        for k, s in enumerate(slots.tolist()):
            actor_id = w.id_of(s)
            previous = self.gnss.get(actor_id)
            # An unequipped road user has no receiver to report on (its slot in the model keeps the draws).
            if (previous is None or previous.state != fixes.state[k]) and actor_id not in self.unequipped:
                sigma = float(fixes.sigma_major_m[k])
                self.report.events.append(
                    {
                        "t_s": round(t + self.sc.tick_s, 3),  # the reading is used from the next tick on
                        "type": "positioning",
                        "variant": self.variant,
                        "actor": actor_id,
                        "state": fixes.state[k],
                        "sigma_m": round(sigma, 3) if np.isfinite(sigma) else None,
                    }
                )
            self.gnss[actor_id] = testbed_pb2.GnssReading(
                east_error_m=float(fixes.error_en[k, 0]),
                north_error_m=float(fixes.error_en[k, 1]),
                sigma_major_m=float(fixes.sigma_major_m[k]),
                sigma_minor_m=float(fixes.sigma_minor_m[k]),
                state=fixes.state[k],
                available=bool(fixes.available[k]),
            )

    def _sense_roadside(self, t: float) -> None:
        """The roadside sensors' frames at ``t`` (the truth just reported), for the RSUs' next TickInput."""
        assert self.sensing is not None
        w = self.world
        slots = self.road_users
        targets = Targets(
            object_id=slots.astype(np.int64) + 1,
            kind=self.road_user_kinds,
            x=w.x[slots],
            y=w.y[slots],
            vx=w.vx[slots],
            vy=w.vy[slots],
            heading_rad=w.heading_rad[slots],
            length_m=w.length_m[slots],
            width_m=w.width_m[slots],
        )
        found = self.sensing.step(t, targets)
        self.detections = {
            rsu: [
                testbed_pb2.Detection(
                    object_id=d.object_id,
                    sensor=d.sensor,
                    sensor_kind=SENSOR_KIND[d.sensor_kind],
                    object_kind=d.object_kind,
                    time_us=round(d.t_s * 1e6),
                    x_m=d.x,
                    y_m=d.y,
                    vx_mps=d.vx,
                    vy_mps=d.vy,
                    heading_deg=d.heading_deg,
                    length_m=d.length_m,
                    width_m=d.width_m,
                    sigma_m=d.sigma_m,
                    speed_sigma_mps=d.speed_sigma_mps,
                )
                for d in ds
            ]
            for rsu, ds in found.items()
        }

    def _metrics(self, wall_s: float) -> dict[str, Any]:
        def pct(values: list[float], q: float) -> float | None:
            return round(float(np.percentile(values, q)), 3) if values else None

        def summary(values: list[float]) -> dict[str, float | None]:
            return {"p50": pct(values, 50), "p95": pct(values, 95), "p99": pct(values, 99), "max": pct(values, 100)}

        total_candidates = sum(self.candidates.values())
        return {
            "variant": self.variant,
            "v2x_enabled": self.v2x,
            "ticks": self.n_ticks + 1,
            "sim_seconds": round(self.n_ticks * self.sc.tick_s, 3),
            "wall_seconds": round(wall_s, 3),
            "messages": {
                "sent": dict(sorted(self.sent.items())),
                "delivered": dict(sorted(self.delivered.items())),
                "dropped": dict(sorted(self.dropped.items())),
                "in_flight_at_end": len(self.pending),
            },
            "delivery_ratio": round(sum(self.delivered.values()) / total_candidates, 4) if total_candidates else None,
            "latency_ms": summary(self.latencies_ms),
            "latency_ms_by_channel": {c: summary(v) for c, v in sorted(self.latencies_by_channel.items())},
            "latency_ms_by_message": {m: summary(v) for m, v in sorted(self.latencies_by_message.items())},
            "rejected": dict(sorted(self.rejected.items())),
            "rejected_by_agents": {a: dict(sorted(c.items())) for a, c in sorted(self.rejected_by_agents.items()) if c},
            "duplicates": self.duplicates,
            "late_reports": self.late_reports,
            "sensing": {
                name: {"frames": c.frames, "in_view": c.in_view, "occluded": c.occluded, "detected": c.detected}
                for name, c in (self.sensing.counts.items() if self.sensing is not None else ())
            },
        }
