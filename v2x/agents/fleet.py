"""The fleet agent, sans-I/O: many equipped background vehicles in one agent (issue #10).

The world's traffic model moves the background vehicles of the scenario's ``flows`` (``v2x.sim.background``);
the equipped ones are hosted here, all of them in one ``FleetAgent`` per run. Each tick the world sends one
``FleetInput`` (the hosted vehicles' truth when the previous tick closed, and every delivery any of them
heard) and the fleet answers with one ``FleetAck`` (every vehicle's envelopes, the warnings its apps
raised). The fleet never moves a vehicle: the world keeps the truth.

Per tick, ``step``:

1. sends each hosted vehicle's BSM of its truth (the world's, when the previous tick closed: the BSM's
   time stamp says so, and receivers carry it on from there as they do every BSM), refreshed from a
   template per vehicle (``v2x.wire.bsm.refresh_bsm``; the static parts are encoded once), without
   positioning error and with the accuracy unknown, as the world did before fleets;
2. decodes each distinct envelope heard once for the whole fleet and keeps, per sender, the freshest BSM, and
   per (vehicle, sender) when it last heard it (``max_age_s`` forgets them);
3. runs FCW for every hosted vehicle at once: one ``WorldState`` of the hosted vehicles (their truth carried
   on to the tick's time at constant acceleration) and the senders heard, and one call of the core's
   ``detect_conflicts`` on the (hosted vehicle, sender it heard) pairs, with FCW's thresholds and accuracy
   gate (``v2x.apps.collision``); a warning is raised once per validity
   period per (vehicle, other). No driver reacts: the traffic model's IDM keeps its gaps anyway.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

import numpy as np

from v2x import units
from v2x.apps.collision import CONFLICT_NAME
from v2x.core import ActorKind, ConflictType, WorldState, detect_conflicts
from v2x.geodesy import LocalFrame
from v2x.units import accurate_enough
from v2x.wire import frame_pb2, testbed_pb2
from v2x.wire.bsm import OwnState, RemoteState, decode_bsm, encode_bsm, refresh_bsm
from v2x.wire.envelope import parse_envelope
from v2x.wire.tables import APP_BY_NAME

HEIGHT_M = {"car": 1.5, "truck": 3.5, "bus": 3.2}


class FleetAgent:
    """The equipped background vehicles of one run (``fleet_id``), their BSMs and their FCW."""

    def __init__(self, fleet_id: str, *, frame: LocalFrame, epoch: datetime, thresholds: Mapping[str, float]) -> None:
        self.fleet_id = fleet_id
        self.frame = frame
        self.epoch = epoch
        self.thresholds = dict(thresholds)
        self.templates: dict[str, frame_pb2.MessageFrame] = {}  # vehicle -> its BSM, refreshed each tick
        self.msg_count: dict[str, int] = {}
        self.seq: dict[str, int] = {}
        self.remotes: dict[str, RemoteState] = {}  # sender -> its freshest BSM
        self.heard: dict[tuple[str, str], float] = {}  # (hosted vehicle, sender) -> when it last heard it
        self.warned_until: dict[tuple[str, str], float] = {}  # (vehicle, other temp id) -> validity end
        self.rejected = 0  # envelopes heard that did not parse as a BSM with a position

    def step(self, inp: testbed_pb2.FleetInput) -> testbed_pb2.FleetAck:
        """One tick: every hosted vehicle's BSM and the FCW warnings of all of them."""
        t = inp.time_us / 1e6
        ack = testbed_pb2.FleetAck(fleet_id=self.fleet_id, tick=inp.tick)
        vehicles = list(inp.vehicles)
        present = {v.vehicle_id for v in vehicles}
        for gone in set(self.templates) - present:  # left the network
            del self.templates[gone]
        n = len(vehicles)
        dt = max(0.0, t - inp.truth_time_us / 1e6)
        vx = np.array([v.vx_mps for v in vehicles]) + np.array([v.ax_mps2 for v in vehicles]) * dt
        vy = np.array([v.vy_mps for v in vehicles]) + np.array([v.ay_mps2 for v in vehicles]) * dt
        x = np.array([v.x_m + (v.vx_mps + 0.5 * v.ax_mps2 * dt) * dt for v in vehicles])
        y = np.array([v.y_m + (v.vy_mps + 0.5 * v.ay_mps2 * dt) * dt for v in vehicles])
        if n:
            ack.envelopes.extend(self._bsms(inp, vehicles))
        self._hear(inp, vehicles, t)
        if n:
            ack.events.extend(self._fcw(vehicles, x, y, vx, vy, t))
        return ack

    # -- transmitting -------------------------------------------------------------------------------
    def _bsms(self, inp: testbed_pb2.FleetInput, vehicles: list[testbed_pb2.FleetVehicle]) -> list[bytes]:
        t = inp.time_us / 1e6
        x = np.array([v.x_m for v in vehicles])
        y = np.array([v.y_m for v in vehicles])
        lat, lon, _ = self.frame.to_geodetic(x, y)
        mark = units.sec_mark(inp.truth_time_us / 1e6, self.epoch)  # the truth's time: when it was so
        out = []
        for k, v in enumerate(vehicles):
            vid = v.vehicle_id
            msg = self.templates.get(vid)
            if msg is None:  # its first BSM: the static parts (id, size, class, accuracy unknown)
                own = OwnState(
                    x=0.0,
                    y=0.0,
                    speed_mps=0.0,
                    heading_rad=0.0,
                    accel_mps2=0.0,
                    length_m=v.length_m,
                    width_m=v.width_m,
                    height_m=HEIGHT_M.get(v.kind, 1.5),
                    kind=v.kind,
                    sigma_major_m=None,
                    sigma_minor_m=None,
                    braking=False,
                )
                msg = encode_bsm(own, actor_id=vid, t_s=t, msg_count=0, frame=self.frame, epoch=self.epoch)
                self.templates[vid] = msg
            count = self.msg_count.get(vid, 0)
            refresh_bsm(
                msg,
                lat_deg=float(lat[k]),
                lon_deg=float(lon[k]),
                speed_mps=max(0.0, v.speed_mps),
                heading_rad=v.heading_rad,
                accel_mps2=v.accel_mps2,
                msg_count=count,
                sec_mark=mark,
            )
            self.msg_count[vid] = count + 1
            seq = self.seq[vid] = self.seq.get(vid, 0) + 1
            env = testbed_pb2.Envelope(
                sender_id=vid,
                seq=seq,
                tick=inp.tick,
                tx_time_us=inp.time_us,
                link=testbed_pb2.LINK_PC5,
                frame=msg.SerializeToString(),
            )
            out.append(env.SerializeToString())
        return out

    # -- hearing ------------------------------------------------------------------------------------
    def _hear(self, inp: testbed_pb2.FleetInput, vehicles: list[testbed_pb2.FleetVehicle], t: float) -> None:
        senders: list[str | None] = []
        for raw in inp.envelopes:  # each distinct envelope decoded once for the whole fleet
            senders.append(self._decode(raw, t))
        n = len(vehicles)
        for vk, ek in zip(inp.delivery_vehicle, inp.delivery_envelope, strict=False):
            if vk >= n or ek >= len(senders):
                continue
            sender = senders[ek]
            if sender is not None and sender != vehicles[vk].vehicle_id:
                self.heard[(vehicles[vk].vehicle_id, sender)] = t
        max_age = self.thresholds["max_age_s"]
        self.remotes = {s: r for s, r in self.remotes.items() if t - r.t_s <= max_age}
        present = {v.vehicle_id for v in vehicles}
        self.heard = {
            k: when
            for k, when in self.heard.items()
            if t - when <= max_age and k[0] in present and k[1] in self.remotes
        }

    def _decode(self, raw: bytes, t: float) -> str | None:
        parsed = parse_envelope(raw)
        if parsed is None:
            self.rejected += 1
            return None
        env, frame = parsed
        if frame.WhichOneof("msg") != "bsm":
            return None  # only BSMs feed FCW
        remote = decode_bsm(frame.bsm, now_s=t, frame=self.frame, epoch=self.epoch)
        if remote is None:
            self.rejected += 1
            return None
        old = self.remotes.get(env.sender_id)
        if old is None or remote.t_s >= old.t_s:
            self.remotes[env.sender_id] = remote
        return env.sender_id

    # -- FCW for the whole fleet --------------------------------------------------------------------
    def _fcw(
        self, vehicles: list[testbed_pb2.FleetVehicle], x: np.ndarray, y: np.ndarray, vx: np.ndarray, vy: np.ndarray,
        t: float,
    ) -> list[testbed_pb2.Advisory]:  # fmt: skip
        th = self.thresholds
        need = th["fcw_required_accuracy_m"]
        senders = sorted({s for _, s in self.heard if accurate_enough(self.remotes[s].sigma_major_m, need)})
        if not senders:
            return []
        n, m = len(vehicles), len(senders)
        row_of_vehicle = {v.vehicle_id: k for k, v in enumerate(vehicles)}
        row_of_sender = {s: n + k for k, s in enumerate(senders)}
        pairs = sorted((row_of_vehicle[v], row_of_sender[s]) for v, s in self.heard if s in row_of_sender)
        if not pairs:
            return []
        world = WorldState(capacity=n + m)
        length = [v.length_m for v in vehicles] + [self.remotes[s].length_m for s in senders]
        width = [v.width_m for v in vehicles] + [self.remotes[s].width_m for s in senders]
        slots = world.add_many([f"h{k}" for k in range(n)] + [f"r{k}" for k in range(m)], ActorKind.CAR, length, width)
        rx, ry, rvx, rvy = np.array([self.remotes[s].extrapolated(t) for s in senders]).reshape(-1, 4).T
        heading = np.array([v.heading_rad for v in vehicles] + [self.remotes[s].heading_rad for s in senders])
        accel = np.array([v.accel_mps2 for v in vehicles] + [self.remotes[s].accel_mps2 for s in senders])
        world.set_state(
            slots,
            np.concatenate([x, rx]),
            np.concatenate([y, ry]),
            np.concatenate([vx, rvx]),
            np.concatenate([vy, rvy]),
            accel * np.cos(heading),
            accel * np.sin(heading),
            heading,
        )
        pi = np.array([p[0] for p in pairs], dtype=np.intp)
        pj = np.array([p[1] for p in pairs], dtype=np.intp)
        found = detect_conflicts(world, horizon_s=th["horizon_s"], pairs=(pi, pj), max_pet_s=th["icw_max_pet_s"])
        out = []
        for k in range(len(found)):
            i, j = int(found.i[k]), int(found.j[k])
            ttc = float(found.ttc_s[k])
            # A rear-end conflict with the hosted vehicle as the follower (the core puts the follower first).
            if ConflictType(int(found.kind[k])) != ConflictType.REAR_END or i >= n or j < n or ttc > th["fcw_ttc_s"]:
                continue
            vid = vehicles[i].vehicle_id
            other = self.remotes[senders[j - n]].temp_id.hex()
            key = (vid, other)
            if self.warned_until.get(key, -math.inf) > t:
                continue
            valid = t + th["warning_validity_s"]
            self.warned_until[key] = valid
            out.append(
                testbed_pb2.Advisory(
                    app=APP_BY_NAME["fcw"],
                    severity=testbed_pb2.SEVERITY_WARNING,
                    target_id=vid,
                    other_id=other,
                    source_id=vid,
                    ttc_s=ttc,
                    raised_at_s=t,
                    valid_until_s=valid,
                    conflict_type=CONFLICT_NAME[ConflictType.REAR_END],
                )
            )
        return out
