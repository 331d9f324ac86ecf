#!/usr/bin/env python3
"""An outside vehicle stack that drives one actor of a v2x-testbed run from its own process.

Written from docs/PROTOCOL.md and proto/v2x/wire/*.proto only: it uses paho-mqtt and the protobuf modules
generated from proto/ (here ``v2x.wire.*_pb2``; your own stack would run ``protoc`` on proto/ itself) and
nothing else from the testbed.

The car follows a straight line from ``--start`` along ``--heading`` at ``--speed`` (by default: where, how
and how fast Control START says it starts), optionally brakes at ``--brake-rate`` from simulation time
``--brake-at`` down to ``--brake-until``. Per tick it moves to the tick's time, reads the BSMs it heard,
publishes a BSM over PC5 (and, with ``--uplink``, over Uu to the edge platform) and acknowledges the tick with
its true state, echoing the advisories addressed to it (that is what makes them count). With ``--react-brake
A`` its driver brakes at A m/s^2 to a stop ``--reaction`` s after the first warning it receives. It logs the
collisions the world tells it about; told of one (``TickInput.collisions``), it comes to rest where it
touched, the pose of the collision's tick, and stays there, hazard lights on: its BSMs set hazardLights and
disabledVehicle (docs/PROTOCOL.md, "Collisions"). After the final
tick it answers the world's re-sends of that tick (its answer may have been lost in a broker restart) until
the world's STOP, and exits.

Anyone may publish on an open broker, so it takes from its input topic only the world's next tick: TickInput(0)
first, then n + 1 after n (in real time, START's ``clock``, a later one once the world's clock can be there: an
input can be lost), ``final`` only at START's ``n_ticks``; TickInput(n) again is answered with the same
bytes. It refuses and counts (``Ack.rejected``) the rest: ``malformed`` (does not parse, another run),
``retained`` (the world never retains one), ``bad_tick``, ``conflicting_input`` (a different TickInput for the
tick it answered: answered as before). A Control it cannot parse or use is ignored. Two different STARTs
published while it waits for its first tick (one is forged, and which cannot be told) make it refuse: exit 1.

Example: the ``lead`` car of scenarios/fcw.yaml, marked ``external: true`` in a copy ``my-fcw.yaml`` (its
scripted brake becomes ``--brake-at 6 --brake-rate 6`` here). Each variant is a run of its own, so one
client joins ``demo-v2x`` and another ``demo-baseline``::

    for v in v2x baseline; do
      python examples/outside_vehicle.py --broker mqtt://127.0.0.1:1883 --run demo-$v --actor lead \\
          --start 130,0 --heading 90 --speed 16.67 --lane eb1 --brake-at 6 --brake-rate 6 &
    done
    v2x run my-fcw.yaml --broker mqtt://127.0.0.1:1883 --run-id demo

Local frame <-> WGS84: the testbed's frame is east/north metres on the plane tangent to the WGS84
ellipsoid at the origin given in Control START (docs/PROTOCOL.md "Local frame"). This client converts
exactly (geodetic -> ECEF -> ENU and back, :class:`LocalFrame`), so its positions agree with the
testbed's to well under a millimetre; a flat-earth (equirectangular) one is off by up to 0.4 m 2 km away.

Exit codes: 0 the run ended, 1 error (the run was aborted: a STOP before the final tick, or one with a reason
such as ``run error: ...`` after it, or no TickInput for ``--tick-timeout``), 2 bad arguments, 3 the run did not
start within ``--join-timeout``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import math
import queue
import socket
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from google.protobuf.message import DecodeError
from paho.mqtt.client import ConnectFlags, DisconnectFlags
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from v2x.wire import common_pb2, day1_pb2, frame_pb2, testbed_pb2

PROTOCOL_VERSION = 1
SOFTWARE = "examples/outside_vehicle.py 1.0"
HELLO_PERIOD_S = 1.0
# After the final tick: answer the world's re-sends of it (a broker restart may have lost the answer) until
# its STOP, or this long (the world gives up after 60 s).
FINAL_LINGER_S = 70.0
WORLD_LOST = "world lost"  # the reason of the STOP the world's connection leaves as its Last Will
MAX_WAITING = 16  # TickInputs kept while START has not come (only the newest: a flood must not grow the stack)
ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NO_START = 0, 1, 2, 3

log = logging.getLogger("outside_vehicle")


# --------------------------------------------------------------------------------------------------------------
# Local east/north frame <-> WGS84
# --------------------------------------------------------------------------------------------------------------

WGS84_A = 6378137.0
WGS84_F = 1 / 298.257223563
WGS84_E2 = WGS84_F * (2 - WGS84_F)


class LocalFrame:
    """East/north/up metres on the tangent plane at a WGS84 origin, exact on the WGS84 ellipsoid.

    ``to_wgs84`` goes local ENU -> ECEF -> geodetic (Bowring's closed form, sub-millimetre at road
    heights); ``to_local`` goes geodetic -> ECEF -> ENU. A point of the road (up = 0) 2 km from the
    origin is about 0.3 m above the ellipsoid; its latitude and longitude are those of that point.
    """

    def __init__(self, lat0_deg: float, lon0_deg: float, alt0_m: float) -> None:
        self.lat0 = math.radians(lat0_deg)
        self.lon0 = math.radians(lon0_deg)
        self.alt0 = alt0_m
        self.origin_ecef = self._ecef(self.lat0, self.lon0, alt0_m)
        sl, cl = math.sin(self.lat0), math.cos(self.lat0)
        so, co = math.sin(self.lon0), math.cos(self.lon0)
        # rows: east, north, up unit vectors in ECEF
        self.rot = ((-so, co, 0.0), (-sl * co, -sl * so, cl), (cl * co, cl * so, sl))

    @staticmethod
    def _ecef(lat: float, lon: float, h: float) -> tuple[float, float, float]:
        n = WGS84_A / math.sqrt(1 - WGS84_E2 * math.sin(lat) ** 2)
        return (
            (n + h) * math.cos(lat) * math.cos(lon),
            (n + h) * math.cos(lat) * math.sin(lon),
            (n * (1 - WGS84_E2) + h) * math.sin(lat),
        )

    @staticmethod
    def _geodetic(x: float, y: float, z: float) -> tuple[float, float, float]:
        b = WGS84_A * (1 - WGS84_F)
        ep2 = (WGS84_A**2 - b**2) / b**2
        p = math.hypot(x, y)
        theta = math.atan2(z * WGS84_A, p * b)
        lat = math.atan2(z + ep2 * b * math.sin(theta) ** 3, p - WGS84_E2 * WGS84_A * math.cos(theta) ** 3)
        lon = math.atan2(y, x)
        n = WGS84_A / math.sqrt(1 - WGS84_E2 * math.sin(lat) ** 2)
        h = p / math.cos(lat) - n
        return lat, lon, h

    def to_wgs84(self, east_m: float, north_m: float, up_m: float = 0.0) -> tuple[float, float, float]:
        """(lat_deg, lon_deg, alt_m) of a local point."""
        ox, oy, oz = self.origin_ecef
        (e0, e1, e2), (n0, n1, n2), (u0, u1, u2) = self.rot
        x = ox + e0 * east_m + n0 * north_m + u0 * up_m
        y = oy + e1 * east_m + n1 * north_m + u1 * up_m
        z = oz + e2 * east_m + n2 * north_m + u2 * up_m
        lat, lon, h = self._geodetic(x, y, z)
        return math.degrees(lat), math.degrees(lon), h

    def to_local(self, lat_deg: float, lon_deg: float, alt_m: float | None = None) -> tuple[float, float, float]:
        """(east_m, north_m, up_m) of a WGS84 point (``alt_m`` defaults to the origin's altitude)."""
        h = self.alt0 if alt_m is None else alt_m
        x, y, z = self._ecef(math.radians(lat_deg), math.radians(lon_deg), h)
        ox, oy, oz = self.origin_ecef
        dx, dy, dz = x - ox, y - oy, z - oz
        east, north, up = (r[0] * dx + r[1] * dy + r[2] * dz for r in self.rot)
        return east, north, up


# --------------------------------------------------------------------------------------------------------------
# CSAE 53 integer units (docs/PROTOCOL.md "Units on the wire", proto comments)
# --------------------------------------------------------------------------------------------------------------

LAT_UNAVAILABLE, LON_UNAVAILABLE, ELEVATION_UNAVAILABLE = 900000001, 1800000001, -4096
# PositionConfidence ladder: enumeration value -> 95 % bound in metres (1 a500m ... 15 a1cm)
POS_CONFIDENCE_M = (500, 200, 100, 50, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01)
HARD_BRAKING_MPS2 = 0.4 * 9.80665  # 0.4 g or more sets the hardBraking event flag (SAE J2945/1), as built-in cars do
HAZARD_SIGNAL_LIGHT_BIT = 4  # ExteriorLights bit 4, the hazard signal (PROTOCOL.md, "The BSM")


def clamp(value: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, value))


def deg_to_1e7(deg: float) -> int:
    return round(deg * 1e7)


def speed_units(mps: float) -> int:
    return clamp(round(mps / 0.02), 0, 8190)


def heading_units(compass_deg: float) -> int:
    return round((compass_deg % 360.0) / 0.0125) % 28800


def accel_units(mps2: float) -> int:
    return clamp(round(mps2 / 0.01), -2000, 2000)


def accuracy_units(sigma_m: float) -> int:
    # rounded up: an accuracy never claims better than the truth (docs/PROTOCOL.md "The BSM")
    return clamp(math.ceil(sigma_m / 0.05 - 1e-9), 0, 254)


def pos_confidence(radius95_m: float) -> int:
    """The tightest PositionConfidence bound that still contains the 95 % radius (0 = unavailable)."""
    best = 0
    for value, bound in enumerate(POS_CONFIDENCE_M, start=1):
        if bound >= radius95_m:
            best = value
    return best


def bsm_id(actor_id: str) -> bytes:
    """A BSM's 8-octet id: the first 8 bytes of SHA-256 of the actor id, as the testbed maps them back."""
    return hashlib.sha256(actor_id.encode()).digest()[:8]


# --------------------------------------------------------------------------------------------------------------
# The vehicle: a straight line with an optional scripted brake
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kinematics:
    x_m: float
    y_m: float
    speed_mps: float
    accel_mps2: float  # along the path
    heading_deg: float  # compass, clockwise from north

    @property
    def vx(self) -> float:
        return self.speed_mps * math.sin(math.radians(self.heading_deg))

    @property
    def vy(self) -> float:
        return self.speed_mps * math.cos(math.radians(self.heading_deg))


@dataclass(frozen=True)
class StraightCar:
    """Closed-form motion: cruise at ``speed``, then from ``brake_at`` decelerate at ``brake_rate`` to ``brake_until``.

    Evaluated exactly at each tick's time, so the state does not depend on how many ticks were seen.
    """

    start_x: float
    start_y: float
    heading_deg: float
    speed: float
    brake_at: float | None = None
    brake_rate: float = 0.0
    brake_until: float = 0.0

    def at(self, t: float) -> Kinematics:
        s, v, a = self._along(t)
        h = math.radians(self.heading_deg)
        return Kinematics(self.start_x + s * math.sin(h), self.start_y + s * math.cos(h), v, a, self.heading_deg)

    def _along(self, t: float) -> tuple[float, float, float]:
        v0 = self.speed
        if self.brake_at is None or self.brake_rate <= 0 or t < self.brake_at or v0 <= self.brake_until:
            return v0 * t, v0, 0.0
        s_b = v0 * self.brake_at
        dt = t - self.brake_at
        t_stop = (v0 - self.brake_until) / self.brake_rate
        if dt < t_stop:
            return s_b + v0 * dt - 0.5 * self.brake_rate * dt * dt, v0 - self.brake_rate * dt, -self.brake_rate
        s_stop = s_b + v0 * t_stop - 0.5 * self.brake_rate * t_stop * t_stop
        return s_stop + self.brake_until * (dt - t_stop), self.brake_until, 0.0


# --------------------------------------------------------------------------------------------------------------
# The run: what Control START told us
# --------------------------------------------------------------------------------------------------------------


@dataclass
class RunInfo:
    run_id: str
    scenario_id: str
    frame: LocalFrame
    tick_us: int
    epoch_us: int  # UTC microseconds since 1970 at simulation time 0
    platform_id: str
    actor_ids: list[str]
    token: str  # a STOP counts only with it (docs/PROTOCOL.md "Control")
    me: testbed_pb2.Control.ActorStart | None  # where this actor starts (external_actors), if START says
    n_ticks: int | None = None  # the last tick (final only there); None: a world older than v1, trust `final`
    realtime: bool = False  # START's clock is CLOCK_REALTIME: a lost input's tick is skipped (checklist item 9)
    started_at: float | None = None  # when START came (monotonic): the earliest the world's clock can have begun

    @classmethod
    def from_start(cls, ctrl: testbed_pb2.Control) -> RunInfo:
        """The run of a START; ``ValueError`` or ``OverflowError`` for one that is no world's (bad epoch)."""
        epoch = datetime.fromisoformat(ctrl.epoch_utc) if ctrl.epoch_utc else datetime(1970, 1, 1, tzinfo=UTC)
        if epoch.tzinfo is None:
            epoch = epoch.replace(tzinfo=UTC)
        epoch_us = (epoch - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        if epoch_us < 0:  # generation times are Unix microseconds (docs/PROTOCOL.md): no world's START
            raise ValueError(f"epoch {ctrl.epoch_utc!r} is before 1970")
        return cls(
            run_id=ctrl.run_id,
            scenario_id=ctrl.scenario_id,
            frame=LocalFrame(ctrl.origin_lat_deg, ctrl.origin_lon_deg, ctrl.origin_alt_m),
            tick_us=ctrl.tick_us,
            epoch_us=epoch_us,
            platform_id=ctrl.platform_id,
            actor_ids=list(ctrl.actor_ids),
            token=ctrl.token,
            me=None,
            n_ticks=ctrl.n_ticks if ctrl.protocol_version >= 1 else None,
            realtime=ctrl.clock == testbed_pb2.Control.CLOCK_REALTIME,
            started_at=time.monotonic(),
        )

    def sec_mark(self, time_us: int) -> int:
        """DSecond: milliseconds within the UTC minute of simulation time ``time_us``."""
        return ((self.epoch_us + time_us) // 1000) % 60000


# --------------------------------------------------------------------------------------------------------------
# The agent: sans-I/O tick handling
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Options:
    broker_host: str
    broker_port: int
    run_id: str
    actor_id: str
    kind: str
    start: tuple[float, float] | None  # None: from START (external_actors)
    heading_deg: float | None
    speed_mps: float | None
    brake_at: float | None
    brake_rate: float
    brake_until: float
    react_brake: float  # > 0: brake at this rate to a stop `reaction_s` after the first warning received
    reaction_s: float
    lane: str
    length_m: float | None  # None: START's box, else the kind's (docs/PROTOCOL.md "Vehicle size")
    width_m: float | None
    height_m: float | None
    vehicle_class: int
    uplink: bool
    join_timeout_s: float
    tick_timeout_s: float


@dataclass
class Vehicle:
    """Turns TickInputs into (envelopes, Ack) payloads; no I/O, so it is easy to test and to port."""

    opts: Options
    info: RunInfo
    seq: int = 0
    msg_cnt: int = 0
    last_tick: int | None = None
    last_input: testbed_pb2.TickInput | None = None
    last_output: list[tuple[str, bytes]] = field(default_factory=list)
    done: bool = False  # the final tick is answered
    rejected: Counter[str] = field(default_factory=Counter)
    heard: dict[str, tuple[float, float]] = field(default_factory=dict)  # sender -> last decoded local (x, y)
    names: dict[bytes, str] = field(default_factory=dict)
    car: StraightCar = field(init=False)  # from the options, or where START says the actor starts
    length_m: float = field(init=False)
    width_m: float = field(init=False)
    height_m: float = field(init=False)
    lane: str = field(init=False)
    warned_at: float | None = None  # simulation time of the first warning received
    rest_at: float | None = None  # after a collision: at rest where it touched, for good (PROTOCOL.md, "Collisions")
    t0: float | None = None  # real time: the earliest the world's tick 0 can have gone out (monotonic)

    def __post_init__(self) -> None:
        self.names = {bsm_id(a): a for a in self.info.actor_ids}
        o, me = self.opts, self.info.me
        start = o.start if o.start is not None else ((me.x_m, me.y_m) if me is not None else (0.0, 0.0))
        heading = o.heading_deg if o.heading_deg is not None else (me.heading_deg if me is not None else 0.0)
        speed = o.speed_mps if o.speed_mps is not None else (me.speed_mps if me is not None else 0.0)
        self.car = StraightCar(start[0], start[1], heading, speed, o.brake_at, o.brake_rate, o.brake_until)
        _, length, width, height = KINDS[o.kind]
        if me is not None and me.length_m > 0:
            length, width, height = me.length_m, me.width_m, me.height_m
        self.length_m = o.length_m or length
        self.width_m = o.width_m or width
        self.height_m = o.height_m or height
        self.lane = o.lane or (me.lane if me is not None else "")
        self.t0 = self.info.started_at

    def topic(self, kind: str) -> str:
        return f"v2x/{self.opts.run_id}/{kind}/{self.opts.actor_id}"

    def latest_tick(self, now: float | None) -> int:
        """The latest tick this stack may take now (``now``: when the input came, monotonic): the next one, or
        in real time (START's clock) a later one once the world's clock can be there, since an input can be lost
        (docs/PROTOCOL.md checklist item 9): the world sends TickInput(m) no earlier than t0 + m x tick, so a
        tick m is taken when it comes after t0 + (m - 1) x tick (t0: when START came, or earlier as the ticks
        taken say); a forged far tick comes too early. Never past START's ``n_ticks``."""
        expected = 0 if self.last_tick is None else self.last_tick + 1
        latest = expected
        if self.info.realtime and now is not None and self.t0 is not None:
            latest = max(expected, math.floor((now - self.t0) / (self.info.tick_us / 1e6)) + 1)
        return latest if self.info.n_ticks is None else min(latest, self.info.n_ticks)

    def step(self, ti: testbed_pb2.TickInput, now: float | None = None) -> list[tuple[str, bytes]] | None:
        """The (topic, payload) list to publish for this TickInput (``now``: when it came, monotonic; None: only
        the next tick is taken), envelopes first and the Ack last.

        A TickInput for the tick just done (the world resends a stalled tick) gets the very same payloads (a
        different one for that tick is counted as ``conflicting_input``: one of the two was not the world's).
        Only the next tick is answered (0 first, then n + 1, or in real time a later one, :meth:`latest_tick`;
        ``final`` only at START's ``n_ticks``); anything else gets nothing and is counted as ``bad_tick`` (a
        forged TickInput(10^6, final) made this stack end its run early, and the run stalled blaming it).
        """
        if self.last_tick is not None and ti.tick == self.last_tick:
            if ti != self.last_input:
                self.rejected["conflicting_input"] += 1
                log.warning("a different TickInput for tick %d: answering as before", ti.tick)
            log.info("tick %d again: resending the same %d message(s)", ti.tick, len(self.last_output))
            return self.last_output
        expected = 0 if self.last_tick is None else self.last_tick + 1
        n_ticks = self.info.n_ticks
        if not expected <= ti.tick <= self.latest_tick(now) or (
            n_ticks is not None and ti.final != (ti.tick == n_ticks)
        ):
            self.rejected["bad_tick"] += 1
            if self.rejected["bad_tick"] <= 5:
                log.warning("ignoring TickInput(%d, final=%s): expected tick %d", ti.tick, ti.final, expected)
            return None
        if ti.tick > expected:
            log.warning("tick %d after %d: the inputs between were lost (real time)", ti.tick, expected - 1)
        if now is not None and self.t0 is not None:
            self.t0 = min(self.t0, now - ti.tick * self.info.tick_us / 1e6)
        t = ti.time_us / 1e6
        echoes = self._read(ti)
        for c in ti.collisions:
            log.warning("collided with %s at t=%.1f s, %.1f m/s: at rest", c.other_id, c.t_s, c.relative_speed_mps)
        if self.rest_at is None and ti.collisions:
            self.rest_at = ti.collisions[0].t_s
        if echoes and self.warned_at is None and self.opts.react_brake > 0:
            self.warned_at = t
            brake_at = t + self.opts.reaction_s  # the driver reacts: from then on the car brakes to a stop
            if self.car.brake_at is None or brake_at < self.car.brake_at:
                log.warning("warned: braking at %.1f m/s^2 from t=%.1f s", self.opts.react_brake, brake_at)
                car = self.car
                self.car = StraightCar(
                    car.start_x, car.start_y, car.heading_deg, car.speed, brake_at, self.opts.react_brake
                )
        state = self.car.at(t if self.rest_at is None else self.rest_at)
        if self.rest_at is not None:
            state = replace(state, speed_mps=0.0, accel_mps2=0.0)
        out: list[tuple[str, bytes]] = []
        frame = frame_pb2.MessageFrame(bsm=self._bsm(state, ti)).SerializeToString()
        links: list[tuple[testbed_pb2.LinkKind.ValueType, list[str]]] = [(testbed_pb2.LINK_PC5, [])]
        if self.opts.uplink and self.info.platform_id:
            links.append((testbed_pb2.LINK_UU, [self.info.platform_id]))
        for link, dest in links:
            self.seq += 1
            env = testbed_pb2.Envelope(
                sender_id=self.opts.actor_id,
                seq=self.seq,
                tick=ti.tick,
                tx_time_us=ti.time_us,
                link=link,
                dest_ids=dest,
                frame=frame,
            )
            out.append((self.topic("tx"), env.SerializeToString()))
        ack = testbed_pb2.Ack(
            actor_id=self.opts.actor_id,
            tick=ti.tick,
            tx_count=len(out),
            truth=testbed_pb2.TruthState(
                x_m=state.x_m,
                y_m=state.y_m,
                vx_mps=state.vx,
                vy_mps=state.vy,
                ax_mps2=state.accel_mps2 * math.sin(math.radians(state.heading_deg)),
                ay_mps2=state.accel_mps2 * math.cos(math.radians(state.heading_deg)),
                heading_deg=state.heading_deg,
                speed_mps=state.speed_mps,
                accel_mps2=state.accel_mps2,
                lane=self.lane,
            ),
            rejected=dict(self.rejected),
            events=echoes,  # advisories addressed to us, echoed at their delivery time: only then do they count
        )
        if ti.tick % 10 == 0:
            ack.notes.append(f"{SOFTWARE}: x={state.x_m:.2f} m v={state.speed_mps:.2f} m/s a={state.accel_mps2:.1f}")
        out.append((self.topic("ack"), ack.SerializeToString()))
        self.last_tick, self.last_input, self.last_output = ti.tick, ti, out
        self.done = ti.final
        if ti.tick % 10 == 0 or (self.car.brake_at is not None and abs(t - self.car.brake_at) < 1e-9):
            near = ", ".join(
                f"{who} {math.hypot(x - state.x_m, y - state.y_m):.1f} m" for who, (x, y) in sorted(self.heard.items())
            )
            log.info(
                "x=%.2f y=%.2f m, %.2f m/s, accel %.1f m/s^2; heard: %s",
                state.x_m,
                state.y_m,
                state.speed_mps,
                state.accel_mps2,
                near or "nobody",
            )
        return out

    def _bsm(self, s: Kinematics, ti: testbed_pb2.TickInput) -> day1_pb2.BSM:
        gnss = ti.gnss
        events = (1 << day1_pb2.EVENT_HARD_BRAKING) if -s.accel_mps2 >= HARD_BRAKING_MPS2 else 0
        # After a collision the car is a wreck, hazard lights on for good: hazardLights and disabledVehicle (and
        # the lights' hazard signal bit), so that the AVW of those coming up behind warns of it (PROTOCOL.md,
        # "Collisions").
        wrecked = self.rest_at is not None
        if wrecked:
            events |= (1 << day1_pb2.EVENT_HAZARD_LIGHTS) | (1 << day1_pb2.EVENT_DISABLED_VEHICLE)
        bsm = day1_pb2.BSM(
            msg_cnt=self.msg_cnt,
            id=bsm_id(self.opts.actor_id),
            sec_mark=self.info.sec_mark(ti.time_us),
            trans_state=2,  # forwardGears
            speed=speed_units(s.speed_mps),
            heading=heading_units(s.heading_deg),
            angle=0,  # straight ahead
            accel_set=common_pb2.AccelerationSet4Way(long=accel_units(s.accel_mps2), lat=0, vert=-127, yaw=0),
            brakes=day1_pb2.BrakeSystemStatus(brake_pedal=2 if s.accel_mps2 < 0 else 1),
            size=common_pb2.VehicleSize(
                width=round(self.width_m * 100),
                length=round(self.length_m * 100),
                height=round(self.height_m * 20),
            ),
            vehicle_class=self.opts.vehicle_class,
            safety_ext=day1_pb2.VehicleSafetyExtensions(
                events=events,
                lights=(1 << HAZARD_SIGNAL_LIGHT_BIT) if wrecked else 0,
                path_prediction_radius=32767,  # straight
                path_prediction_confidence=0,  # as built-in vehicles send (docs/PROTOCOL.md "Start values")
            ),
        )
        self.msg_cnt = (self.msg_cnt + 1) % 128
        # The fix is the true position plus the tick's error; with no fix (always at tick 0) the true position,
        # stated as unavailable accuracy, as built-in vehicles send it (docs/PROTOCOL.md "No fix"): receivers
        # then never warn about it, and the BSM still counts.
        east, north = (gnss.east_error_m, gnss.north_error_m) if gnss.available else (0.0, 0.0)
        lat, lon, _ = self.info.frame.to_wgs84(s.x_m + east, s.y_m + north)
        # The testbed's world is flat: every road user is at the origin's altitude.
        elevation = clamp(round(self.info.frame.alt0 * 10), -4095, 61439)
        bsm.pos.CopyFrom(common_pb2.Position3D(lat=deg_to_1e7(lat), lon=deg_to_1e7(lon), elevation=elevation))
        if gnss.available:
            bsm.accuracy.CopyFrom(
                common_pb2.PositionalAccuracy(
                    semi_major=accuracy_units(gnss.sigma_major_m),
                    semi_minor=accuracy_units(gnss.sigma_minor_m),
                    orientation=65535,  # the reading gives no ellipse orientation
                )
            )
            bsm.pos_confidence.CopyFrom(
                common_pb2.PositionConfidenceSet(pos=pos_confidence(2.448 * gnss.sigma_major_m))
            )
        else:
            bsm.accuracy.CopyFrom(common_pb2.PositionalAccuracy(semi_major=255, semi_minor=255, orientation=65535))
            bsm.pos_confidence.CopyFrom(common_pb2.PositionConfidenceSet(pos=0))
        return bsm

    def _read(self, ti: testbed_pb2.TickInput) -> list[testbed_pb2.Advisory]:
        """Decode what was heard: BSMs become local positions (for the log); the advisories to us are logged
        and returned (to echo in the Ack)."""
        echoes: list[testbed_pb2.Advisory] = []
        for raw, rx_us in zip(ti.envelopes, ti.rx_time_us, strict=False):
            try:
                env = testbed_pb2.Envelope.FromString(raw)
                frame = frame_pb2.MessageFrame.FromString(env.frame)
            except Exception:  # protobuf's DecodeError and friends
                self.rejected["malformed"] += 1
                continue
            which = frame.WhichOneof("msg")
            if which is None:
                self.rejected["unknown_type"] += 1
            elif which == "bsm":
                bsm = frame.bsm
                if bsm.pos.lat == LAT_UNAVAILABLE:
                    continue
                x, y, _ = self.info.frame.to_local(bsm.pos.lat / 1e7, bsm.pos.lon / 1e7)
                sender = self.names.get(bsm.id, env.sender_id)
                self.heard[sender] = (x, y)
            elif which == "advisory" and frame.advisory.target_id == self.opts.actor_id:
                # echoed at its delivery time, when the driver got it, the rest as it came (docs/PROTOCOL.md
                # "Warnings": the platform's raised_at_s would record it before the driver could have had it)
                a = testbed_pb2.Advisory()
                a.CopyFrom(frame.advisory)
                a.raised_at_s = rx_us / 1e6
                echoes.append(a)
                log.warning(
                    "advisory from %s at %.2f s: %s %s about %s, TTC %.2f s",
                    env.sender_id,
                    rx_us / 1e6,
                    testbed_pb2.Application.Name(a.app),
                    testbed_pb2.Severity.Name(a.severity),
                    a.other_id or "-",
                    a.ttc_s,
                )
        return echoes


# --------------------------------------------------------------------------------------------------------------
# MQTT shell (paho-mqtt, network loop in a background thread; the main thread handles one message at a time)
# --------------------------------------------------------------------------------------------------------------


class _SimTime(logging.Filter):
    """Adds ``actor`` and ``sim`` (simulation time of the tick being handled) to every log record."""

    def __init__(self, actor: str) -> None:
        super().__init__()
        self.actor = actor
        self.sim = "t=-"

    def filter(self, record: logging.LogRecord) -> bool:
        record.actor = self.actor
        record.sim = self.sim
        return True


class Session:
    """One run from this actor's side: join, wait for START, answer every TickInput, stop.

    MQTT callbacks run in paho's network thread and only queue what arrives; :meth:`serve` handles it in
    the calling thread, one message at a time, so the vehicle needs no locks.
    """

    def __init__(self, opts: Options, sim_time: _SimTime) -> None:
        self.opts = opts
        self.sim_time = sim_time
        prefix = f"v2x/{opts.run_id}"
        self.control_topic = f"{prefix}/control"
        self.in_topic = f"{prefix}/in/{opts.actor_id}"
        self.join_topic = f"{prefix}/join/{opts.actor_id}"
        self.hello = testbed_pb2.Hello(
            actor_id=opts.actor_id, kind=opts.kind, software=SOFTWARE, protocol_version=PROTOCOL_VERSION
        ).SerializeToString()
        self.inbox: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()  # topic, payload, retained
        self.info: RunInfo | None = None  # from the latest START
        # The STARTs published (not retained) while waiting for the first tick: the world's are the same bytes
        # each time it says it, so two different ones mean someone else publishes Controls (one forged right
        # after the world's could move our start or the origin); which is the world's cannot be told.
        self.live_starts: set[bytes] = set()
        self.vehicle: Vehicle | None = None  # created by the first TickInput after START
        self.waiting: list[testbed_pb2.TickInput] = []  # TickInputs that overtook START
        self.rejected: Counter[str] = Counter()  # what it refused (shared with the vehicle: sent in every Ack)
        self.finished: float | None = None  # when the final tick was answered (monotonic)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"outside-{opts.actor_id}-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=5)
        self.client.on_socket_open = self._on_socket_open
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.pending: list[mqtt.MQTTMessageInfo] = []

    # -- paho callbacks (network thread) ----------------------------------------------------------------
    @staticmethod
    def _on_socket_open(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        raw = getattr(sock, "_socket", sock)  # paho's WebsocketWrapper keeps the socket here
        with contextlib.suppress(AttributeError, OSError):
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle: lockstep is round-trip bound

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: ConnectFlags, reason: ReasonCode, _props: Properties | None
    ) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        # Subscribe on every (re)connection: a restarted broker has forgotten our subscriptions.
        client.subscribe([(self.in_topic, 0), (self.control_topic, 1)])
        self.inbox.put((_CONNECTED, b"", False))

    @staticmethod
    def _on_disconnect(
        _client: mqtt.Client, _userdata: Any, _flags: DisconnectFlags, reason: ReasonCode, _props: Properties | None
    ) -> None:
        if reason.is_failure:
            log.warning("lost the broker (%s); reconnecting", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.retain and msg.topic == self.in_topic:  # the world never retains a TickInput: someone else's
            self.inbox.put((_RETAINED, b"", True))
            return
        self.inbox.put((msg.topic, bytes(msg.payload), bool(msg.retain)))

    # -- the session (calling thread) -----------------------------------------------------------------
    def serve(self) -> int:
        opts = self.opts
        log.info("connecting to mqtt://%s:%d, run %s", opts.broker_host, opts.broker_port, opts.run_id)
        self.client.connect_async(opts.broker_host, opts.broker_port, keepalive=30)
        self.client.loop_start()
        try:
            return self._loop()
        except StartConflict as exc:
            log.error("refused: %s", exc)
            return EXIT_ERROR
        except KeyboardInterrupt:
            log.warning("interrupted")
            return EXIT_ERROR
        finally:
            for info in self.pending:  # QoS 0 messages count as sent once written to the socket
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(timeout=2.0)
            self.client.disconnect()
            self.client.loop_stop()

    def _loop(self) -> int:
        opts = self.opts
        connected = False
        next_hello = 0.0
        join_deadline = time.monotonic() + opts.join_timeout_s
        last_input = time.monotonic()
        while True:
            now = time.monotonic()
            if self.vehicle is None:
                if now >= join_deadline:
                    log.error(
                        "no Control START and TickInput on %s within %.0f s: is run %r running, with %r external?",
                        self.control_topic,
                        opts.join_timeout_s,
                        opts.run_id,
                        opts.actor_id,
                    )
                    return EXIT_NO_START
                # Hello every second until the first TickInput (not only until START: a START can be a
                # stale retained one from an earlier run with the same id, and the world ignores extra Hellos).
                if connected and now >= next_hello:
                    self.client.publish(self.join_topic, self.hello, qos=0)
                    next_hello = now + HELLO_PERIOD_S
            elif self.finished is not None:
                if now - self.finished > FINAL_LINGER_S:
                    log.info("no STOP within %.0f s of the final tick: done", FINAL_LINGER_S)
                    return EXIT_OK
            elif now - last_input > opts.tick_timeout_s:
                log.error("no TickInput for %.0f s: the run is gone", opts.tick_timeout_s)
                return EXIT_ERROR
            try:
                topic, payload, retained = self.inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            if topic == _CONNECTED:
                connected, next_hello = True, 0.0
                log.info(
                    "connected; %s", f"joining as {opts.actor_id} ({opts.kind})" if self.vehicle is None else "resuming"
                )
            elif topic == self.control_topic:
                code = self._on_control(payload, retained)
                if code is not None:
                    return code
            elif topic == _RETAINED:
                self.rejected["retained"] += 1
                log.warning("ignoring a retained message on %s (the world never retains one)", self.in_topic)
            elif topic == self.in_topic:
                try:
                    ti = testbed_pb2.TickInput.FromString(payload)
                except DecodeError:
                    ti = None
                if ti is None or ti.run_id != opts.run_id:
                    self.rejected["malformed"] += 1
                    log.warning("dropping a malformed TickInput (%d bytes)", len(payload))
                    continue
                last_input = time.monotonic()
                if self.info is None:
                    self.waiting = [*self.waiting[-(MAX_WAITING - 1) :], ti]  # it overtook START: keep it
                    continue
                self._on_tick(ti, last_input)

    def _on_control(self, payload: bytes, retained: bool = False) -> int | None:
        if not payload:  # the runner cleared a retained Control before this run: what came before is stale
            if self.vehicle is None:
                self.info = None
            return None
        try:
            ctrl = testbed_pb2.Control.FromString(payload)
        except DecodeError:
            log.warning("dropping a malformed Control (%d bytes)", len(payload))
            return None
        if ctrl.run_id != self.opts.run_id:
            return None
        if ctrl.command == testbed_pb2.Control.COMMAND_START:
            if self.vehicle is not None:
                return None  # a repeat of the START we are running under
            try:
                info = RunInfo.from_start(ctrl)
            except (ValueError, OverflowError) as exc:  # not a world's START (anyone may publish one)
                log.warning("ignoring a START that cannot be used: %s", exc)
                return None
            if self.opts.actor_id not in info.actor_ids:
                log.error("run %s has no actor %r (actors: %s)", info.run_id, self.opts.actor_id, info.actor_ids)
                return EXIT_ERROR
            info.me = next((a for a in ctrl.external_actors if a.actor_id == self.opts.actor_id), None)
            if info.me is None and self.opts.start is None:
                log.error("START does not say where %r starts (not external?): give --start", self.opts.actor_id)
                return EXIT_ERROR
            self.info = info
            if not retained:  # (a stale retained START, then the world's live one, is how a stack meets a run)
                self.live_starts.add(payload)
            log.info(
                "START: scenario %s, origin %.7f %.7f %.1f m, tick %d us, epoch %s, platform %r, actors %s",
                info.scenario_id,
                ctrl.origin_lat_deg,
                ctrl.origin_lon_deg,
                ctrl.origin_alt_m,
                info.tick_us,
                ctrl.epoch_utc,
                info.platform_id,
                ", ".join(info.actor_ids),
            )
            waiting, self.waiting = self.waiting, []
            for ti in waiting:
                self._on_tick(ti, time.monotonic())
        elif ctrl.command == testbed_pb2.Control.COMMAND_STOP:
            if self.vehicle is None:
                # Retained from an earlier run with the same id: ours has not started yet.
                log.info("ignoring the STOP of an earlier run %s (%s)", ctrl.run_id, ctrl.reason or "ended")
                self.info = None
                return None
            if self.info is not None and ctrl.token != self.info.token:
                # Not from this run's world (docs/PROTOCOL.md "Control"): anyone can publish on the topic.
                log.warning("ignoring a STOP without this run's token (%s)", ctrl.reason or "no reason given")
                return None
            if ctrl.reason == WORLD_LOST:
                # The world connection's Last Will: the world died, or the broker restarted and the world
                # will say START again. Keep waiting; --tick-timeout ends the wait if it never comes back.
                log.warning("STOP %r: waiting for the world to come back", WORLD_LOST)
                return None
            if self.finished is not None and not ctrl.reason:
                log.info("STOP: the run is over")
                return EXIT_OK
            if self.finished is not None:  # "run error: ..." (another actor failed), "interrupted": no normal end
                log.error("the run was aborted after the final tick: %s", ctrl.reason)
                return EXIT_ERROR
            log.error("run stopped before its final tick: %s", ctrl.reason or "no reason given")
            return EXIT_ERROR
        return None

    def _on_tick(self, ti: testbed_pb2.TickInput, now: float | None = None) -> None:
        """Answer one TickInput (the final one: wait for the world's STOP from then on, answering its re-sends)."""
        assert self.info is not None
        if self.vehicle is None:
            if len(self.live_starts) > 1:
                raise StartConflict(
                    f"{len(self.live_starts)} different STARTs of run {self.opts.run_id} came while waiting for the "
                    "first tick: someone publishes Controls on this broker, and which START is the world's cannot be "
                    "told (docs/SECURITY.md; run with --secure)"
                )
            self.vehicle = Vehicle(self.opts, self.info, rejected=self.rejected)
        self.sim_time.sim = f"t={ti.time_us / 1e6:.1f}s"
        for out_topic, out_payload in self.vehicle.step(ti, now) or ():
            self.pending = [p for p in self.pending if not p.is_published()]
            self.pending.append(self.client.publish(out_topic, out_payload, qos=0))
        if self.vehicle.done and self.finished is None:
            log.info("final tick %d: done; answering it again until the world's STOP", ti.tick)
            self.finished = time.monotonic()


class StartConflict(Exception):
    """Two different STARTs of the run came while waiting for the first tick (see ``Session.live_starts``)."""


_CONNECTED = "\x00connected"  # inbox markers: never valid topics
_RETAINED = "\x00retained"  # a retained message on the input topic


# --------------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------------


def _id(value: str) -> str:
    if not 1 <= len(value) <= 64 or not set(value) <= ID_CHARS:
        raise argparse.ArgumentTypeError(f"{value!r}: ids are 1-64 characters of A-Z a-z 0-9 _ . -")
    return value


def _point(value: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected X,Y in metres, e.g. 130,0") from None
    return x, y


def _broker(value: str) -> tuple[str, int]:
    parts = urlsplit(value)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{value!r}: expected mqtt://host:port")
    try:
        port = parts.port or 1883
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: bad port") from None
    return parts.hostname, port


# Per kind: BasicVehicleClass, and the box (length, width, height in m) the testbed's referee uses when the
# scenario gives no length_m / width_m (docs/PROTOCOL.md "Vehicle size"). Report the same box in the BSM.
KINDS: dict[str, tuple[int, float, float, float]] = {
    "car": (10, 5.0, 2.0, 1.6),
    "truck": (20, 13.0, 2.6, 3.0),
    "bus": (23, 12.0, 2.55, 3.2),
    "emergency": (60, 5.5, 2.1, 2.4),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="outside_vehicle.py",
        description="Drive one vehicle actor of a v2x-testbed run from outside (docs/PROTOCOL.md): join with "
        "Hello, wait for Control START, then per tick move along a straight line, broadcast a BSM over PC5 "
        "(10 Hz) and acknowledge with the true state; exit on the world's STOP after the final tick. The actor must "
        "be marked 'external: true' in the scenario; run the scenario with 'v2x run SCENARIO --run-id PREFIX' and "
        "start one client per variant (--run PREFIX-v2x, --run PREFIX-baseline).",
        epilog="Positions are local east/north metres around the scenario origin, as in the scenario file: for "
        "a lane [[x0, y0], [x1, y1]] and start_m s, --start is the point s metres along it and --heading the "
        "lane's compass direction (east = 90). Exit codes: 0 the run ended, 1 error (run aborted, broker "
        "lost), 2 bad arguments, 3 no START within --join-timeout.",
    )
    p.add_argument("--broker", type=_broker, required=True, metavar="URL", help="mqtt://host:port of the run's broker")
    p.add_argument(
        "--run",
        type=_id,
        required=True,
        metavar="RUN_ID",
        help="run id to join ('v2x run --run-id PREFIX' makes PREFIX-v2x and PREFIX-baseline)",
    )
    p.add_argument("--actor", type=_id, required=True, metavar="ID", help="actor id in the scenario file")
    p.add_argument(
        "--kind", default="car", choices=sorted(KINDS), help="vehicle kind, as in the scenario (default car)"
    )
    p.add_argument(
        "--start",
        type=_point,
        default=None,
        metavar="X,Y",
        help="position at t = 0, east,north in m (default: START's)",
    )
    p.add_argument(
        "--heading",
        type=float,
        default=None,
        metavar="DEG",
        help="direction of travel, degrees clockwise from north (default: START's)",
    )
    p.add_argument("--speed", type=float, default=None, metavar="MPS", help="speed at t = 0, m/s (default: START's)")
    p.add_argument("--lane", default="", metavar="ID", help="lane id to report in the truth state (default none)")
    p.add_argument(
        "--brake-at", type=float, default=None, metavar="S", help="simulation time to start braking, s (default: never)"
    )
    p.add_argument(
        "--brake-rate", type=float, default=6.0, metavar="A", help="deceleration when braking, m/s^2 (default 6)"
    )
    p.add_argument(
        "--brake-until",
        type=float,
        default=0.0,
        metavar="MPS",
        help="speed at which braking ends, m/s (default 0: stop)",
    )
    p.add_argument(
        "--react-brake",
        type=float,
        default=0.0,
        metavar="A",
        help="on the first warning received, brake at A m/s^2 to a stop (default 0: do not react)",
    )
    p.add_argument(
        "--reaction",
        type=float,
        default=1.0,
        metavar="S",
        help="the driver's reaction time to a warning, s (default 1)",
    )
    p.add_argument(
        "--length",
        type=float,
        default=None,
        metavar="M",
        help="length in m (default: START's box, else the testbed's for --kind: car 5.0)",
    )
    p.add_argument(
        "--width", type=float, default=None, metavar="M", help="width in m (default: the testbed's, car 2.0)"
    )
    p.add_argument(
        "--height", type=float, default=None, metavar="M", help="height in m (default: the testbed's, car 1.6)"
    )
    p.add_argument(
        "--uplink",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also send each BSM over Uu to the edge platform named in START, as built-in vehicles do (default on)",
    )
    p.add_argument(
        "--join-timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="give up if the run has not started after S s (default 120)",
    )
    p.add_argument(
        "--tick-timeout",
        type=float,
        default=90.0,
        metavar="S",
        help="give up after S s without a TickInput once started (default 90)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if min(args.speed or 0.0, args.brake_rate, args.brake_until, args.react_brake, args.reaction) < 0:
        parser.error("--speed, --brake-rate, --brake-until, --react-brake and --reaction must be >= 0")
    if any(v is not None and v <= 0 for v in (args.length, args.width, args.height)):
        parser.error("--length, --width and --height must be > 0")
    sim_time = _SimTime(args.actor)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(sim_time)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s [%(actor)s %(sim)s] %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    logging.getLogger("paho").setLevel(logging.WARNING)
    return Session(options(args), sim_time).serve()


def options(args: argparse.Namespace) -> Options:
    """The session's options from the parsed command line."""
    vehicle_class = KINDS[args.kind][0]
    host, port = args.broker
    return Options(
        broker_host=host,
        broker_port=port,
        run_id=args.run,
        actor_id=args.actor,
        kind=args.kind,
        start=args.start,
        heading_deg=args.heading,
        speed_mps=args.speed,
        brake_at=args.brake_at,
        brake_rate=args.brake_rate,
        brake_until=args.brake_until,
        react_brake=args.react_brake,
        reaction_s=args.reaction,
        lane=args.lane,
        length_m=args.length,
        width_m=args.width,
        height_m=args.height,
        vehicle_class=vehicle_class,
        uplink=args.uplink,
        join_timeout_s=args.join_timeout,
        tick_timeout_s=args.tick_timeout,
    )


if __name__ == "__main__":
    sys.exit(main())
