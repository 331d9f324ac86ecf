"""What a stack built on ``v2x.sdk`` sees, in SI units: the run, its own start, each tick."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import datetime

from v2x.geodesy import LocalFrame
from v2x.units import compass_deg_to_enu_yaw_rad
from v2x.wire import frame_pb2, testbed_pb2
from v2x.wire.bsm import RemoteState


@dataclass(frozen=True)
class ActorStart:
    """Where an external actor starts (``Control.external_actors``): the centre of its box at t = 0 in the
    local frame, its compass heading, its speed, its box, and its route (lane centre line or path)."""

    actor_id: str
    kind: str
    x_m: float
    y_m: float
    heading_deg: float
    speed_mps: float
    length_m: float
    width_m: float
    height_m: float
    lane: str
    route: tuple[tuple[float, float], ...]
    start_m: float
    equipped: bool
    # The start's height above the origin and the route's heights, one per route point (empty: flat at 0;
    # docs/PROTOCOL.md, "Local frame").
    z_m: float = 0.0
    route_z: tuple[float, ...] = ()

    @classmethod
    def from_wire(cls, msg: testbed_pb2.Control.ActorStart) -> ActorStart:
        return cls(
            actor_id=msg.actor_id,
            kind=msg.kind,
            x_m=msg.x_m,
            y_m=msg.y_m,
            heading_deg=msg.heading_deg,
            speed_mps=msg.speed_mps,
            length_m=msg.length_m,
            width_m=msg.width_m,
            height_m=msg.height_m,
            lane=msg.lane,
            route=tuple(zip(msg.path_x_m, msg.path_y_m, strict=True)),
            start_m=msg.start_m,
            equipped=msg.equipped,
            z_m=msg.z_m,
            route_z=tuple(msg.path_z_m),
        )


@dataclass(frozen=True)
class Route:
    """A route in the local frame (``ActorStart.route``, with ``route_z``), by arc length from its first point:
    where a vehicle ``s_m`` along it stands, which way it faces and the road's height there. Beyond its ends it
    goes on straight, as the built-in agents drive. Pure Python (the SDK loads no geometry library)."""

    points: tuple[tuple[float, float], ...]
    heights: tuple[float, ...] = ()
    _at: tuple[float, ...] = field(default=(), init=False, repr=False, compare=False)  # arc length of each point

    def __post_init__(self) -> None:
        if len(self.points) < 2:
            raise ValueError("a route needs at least two points")
        if self.heights and len(self.heights) != len(self.points):
            raise ValueError("one height per route point")
        at = [0.0]
        for (x0, y0), (x1, y1) in zip(self.points, self.points[1:], strict=False):
            at.append(at[-1] + math.hypot(x1 - x0, y1 - y0))
        if at[-1] <= 0.0:
            raise ValueError("a route of no length")
        object.__setattr__(self, "_at", tuple(at))

    @classmethod
    def of(cls, start: ActorStart) -> Route | None:
        """The route START gives an actor (its lane's centre line or its path), or None if it has none."""
        if len(start.route) < 2:
            return None
        try:
            return cls(start.route, start.route_z)
        except ValueError:
            return None

    @property
    def length_m(self) -> float:
        return self._at[-1]

    def pose(self, s_m: float) -> tuple[float, float, float, float]:
        """``(x_m, y_m, heading_deg, z_m)`` at arc length ``s_m`` (compass heading of the segment there; z 0
        without heights)."""
        at = self._at
        k = max(1, min(bisect.bisect_right(at, s_m), len(at) - 1))  # the segment points[k-1] -> points[k]
        # A repeated point (a segment of no length) is skipped as the built-in route (v2x.scenario.geometry)
        # skips it: back to the segment before (beyond a repeated last point: straight on along the last
        # segment that has a direction), forward only where there is none before (tests/test_sdk_route.py).
        while at[k] - at[k - 1] <= 0.0 and k > 1:
            k -= 1
        while at[k] - at[k - 1] <= 0.0:
            k += 1
        (x0, y0), (x1, y1) = self.points[k - 1], self.points[k]
        f = (s_m - at[k - 1]) / (at[k] - at[k - 1])
        heading = math.degrees(math.atan2(x1 - x0, y1 - y0)) % 360.0
        z = 0.0
        if self.heights:  # (level beyond the ends, at the first and the last point's height)
            z0, z1 = self.heights[k - 1], self.heights[k]
            z = self.heights[0] if s_m < 0.0 else self.heights[-1] if s_m >= at[-1] else z0 + f * (z1 - z0)
        return x0 + f * (x1 - x0), y0 + f * (y1 - y0), heading, z


@dataclass(frozen=True)
class RunInfo:
    """The run as ``Control START`` announces it."""

    run_id: str
    scenario_id: str
    frame: LocalFrame  # the local frame: origin_lat_deg, origin_lon_deg, origin_alt_m
    epoch: datetime  # simulation time 0 (UTC)
    tick_s: float
    n_ticks: int  # ticks 0..n_ticks
    platform_id: str  # "" when the run has none
    actor_ids: tuple[str, ...]
    me: ActorStart  # this stack's actor
    external: tuple[ActorStart, ...]  # every external actor of the run
    protocol_version: int
    control: testbed_pb2.Control = field(repr=False)

    @property
    def realtime(self) -> bool | None:
        """Whether the world's clock runs in real time (START's ``clock``; docs/PROTOCOL.md "Control"): then an
        input can be lost and a later tick must be taken. None: a world older than that field did not say."""
        clock = self.control.clock
        return None if clock == testbed_pb2.Control.CLOCK_UNSPECIFIED else clock == testbed_pb2.Control.CLOCK_REALTIME


@dataclass(frozen=True)
class Gnss:
    """The tick's simulated GNSS reading (``TickInput.gnss`` when ``available``)."""

    east_error_m: float
    north_error_m: float
    sigma_major_m: float
    sigma_minor_m: float
    state: str


@dataclass(frozen=True)
class Collision:
    """A collision the referee recorded with this actor (reported in the next tick's input)."""

    other_id: str
    t_s: float
    relative_speed_mps: float


@dataclass(frozen=True)
class Heard:
    """One envelope heard this tick, with its frame decoded: ``bsm`` for a BSM (SI, local frame; None when
    it has no position, speed or heading), ``advisory`` for an Advisory."""

    sender_id: str
    link: int  # testbed_pb2.LINK_PC5, LINK_UU, LINK_WIRED
    tx_time_s: float
    rx_time_s: float
    kind: str  # the MessageFrame case: bsm, map, spat, rsi, rsm, advisory
    frame: frame_pb2.MessageFrame = field(repr=False)
    bsm: RemoteState | None = None
    advisory: testbed_pb2.Advisory | None = None


@dataclass
class Tick:
    """One tick: ``n`` (0..n_ticks), simulation time ``t_s``, the GNSS reading (None: no fix, as at tick 0),
    what was heard, the advisories addressed to this actor (echo them in the Ack to make them count: each is a
    copy with ``raised_at_s`` set to its delivery time, the time its driver got it, as docs/PROTOCOL.md
    "Warnings" asks; ``heard`` has it as it came), the collisions recorded with it, and the ticks that closed
    without its Ack (``late_ticks``).

    ``dt_s``: the simulation time since the tick handed out before (one tick; more when a real-time stack
    that fell behind skipped ticks), what to move the vehicle by. ``received_at`` (time.monotonic) and
    ``deadline`` (received_at + one tick): in real time the world closes the tick one tick after it sent
    the input, and an Ack after that is dropped."""

    n: int
    t_s: float
    dt_s: float
    final: bool
    gnss: Gnss | None
    heard: list[Heard]
    advisories: list[testbed_pb2.Advisory]
    collisions: list[Collision]
    late_ticks: list[int]
    received_at: float
    deadline: float
    raw: testbed_pb2.TickInput = field(repr=False)

    @property
    def bsms(self) -> list[RemoteState]:
        """The BSMs heard this tick, decoded (each sender's latest first is not guaranteed: delivery order)."""
        return [h.bsm for h in self.heard if h.bsm is not None]

    def fix(self, x_m: float, y_m: float) -> tuple[float, float]:
        """The GNSS fix of a vehicle truly at (x_m, y_m): the true position plus this tick's error (the
        true position itself when there is no fix)."""
        if self.gnss is None:
            return x_m, y_m
        return x_m + self.gnss.east_error_m, y_m + self.gnss.north_error_m


@dataclass(frozen=True)
class VehicleState:
    """A vehicle's kinematic state in the local frame: the centre of its box, speed along its heading
    (compass degrees), acceleration along it (negative = braking), and the height of the road under it
    (``z_m``, above the origin: 0 on a flat road; ``advanced`` keeps it, a stack on a ramp sets it)."""

    x_m: float
    y_m: float
    speed_mps: float
    heading_deg: float
    accel_mps2: float = 0.0
    lane: str = ""
    z_m: float = 0.0

    @classmethod
    def at_start(cls, start: ActorStart) -> VehicleState:
        return cls(start.x_m, start.y_m, start.speed_mps, start.heading_deg, 0.0, start.lane, start.z_m)

    def at_rest(self) -> VehicleState:
        """The same pose at a standstill: what a stack reports after a collision (docs/PROTOCOL.md,
        "Collisions"; at zero speed and acceleration ``advanced`` keeps it there)."""
        return VehicleState(self.x_m, self.y_m, 0.0, self.heading_deg, 0.0, self.lane, self.z_m)

    @property
    def yaw_rad(self) -> float:
        """ENU yaw (counter-clockwise from east)."""
        return compass_deg_to_enu_yaw_rad(self.heading_deg)

    def advanced(self, dt_s: float, accel_mps2: float | None = None) -> VehicleState:
        """The state ``dt_s`` later at a constant acceleration (``accel_mps2``, default the current one) along
        a straight heading, never reversing: exact for piecewise-constant acceleration. A car that comes to a
        stop within ``dt_s`` stands there with acceleration 0 (it kept the braking, and its BSMs said hard
        braking while it stood: docs/PROTOCOL.md says 0 from the tick after it stops, as built-in cars do)."""
        a = self.accel_mps2 if accel_mps2 is None else accel_mps2
        v0 = self.speed_mps
        if a < 0 and v0 + a * dt_s < 0:
            dist, v, a = v0 * v0 / (-2 * a), 0.0, 0.0
        else:
            dist, v = v0 * dt_s + 0.5 * a * dt_s * dt_s, v0 + a * dt_s
        c, s = math.cos(self.yaw_rad), math.sin(self.yaw_rad)
        return VehicleState(self.x_m + dist * c, self.y_m + dist * s, v, self.heading_deg, a, self.lane, self.z_m)

    def advanced_along(
        self, route: Route, s_m: float, dt_s: float, accel_mps2: float | None = None
    ) -> tuple[VehicleState, float]:
        """The state ``dt_s`` later on ``route`` and the arc length it has reached, from ``s_m`` (at START:
        ``ActorStart.start_m``): the speed, acceleration and distance of :meth:`advanced`, but along the route,
        facing its direction there (the road's height too, where the route has heights). A stack that drives
        ``advanced`` alone goes straight on through a bend, off its lane (an AD team's review, session 24).

        The heading turns at a route's point at once, and a tick that passes a point moves along the chord: where
        the route turns by more than about 50 degrees within one tick's travel (at one point, or at points closer
        together than that), that tick's course or distance breaks the run's "truth in motion" (docs/PROTOCOL.md
        "Truth") and the run fails the stack. Every shipped route turns by less than 30 degrees a point; round a
        corner of your own with more points (tests/test_sdk_route.py)."""
        nxt = self.advanced(dt_s, accel_mps2)
        s = s_m + math.hypot(nxt.x_m - self.x_m, nxt.y_m - self.y_m)
        x, y, heading, z = route.pose(s)
        return VehicleState(
            x, y, nxt.speed_mps, heading, nxt.accel_mps2, self.lane, z if route.heights else self.z_m
        ), s

    def truth(self) -> testbed_pb2.TruthState:
        """``Ack.truth`` for this state."""
        c, s = math.cos(self.yaw_rad), math.sin(self.yaw_rad)
        return testbed_pb2.TruthState(
            x_m=self.x_m,
            y_m=self.y_m,
            vx_mps=self.speed_mps * c,
            vy_mps=self.speed_mps * s,
            ax_mps2=self.accel_mps2 * c,
            ay_mps2=self.accel_mps2 * s,
            heading_deg=self.heading_deg,
            speed_mps=self.speed_mps,
            accel_mps2=self.accel_mps2,
            lane=self.lane,
            z_m=self.z_m,
        )
