"""The vehicle / OBU agent (also a pedestrian or cyclist): follows its route with a speed profile and
scripted events, publishes BSM at 10 Hz over PC5 (and to the edge/cloud over Uu), runs its on-board apps on
what it hears (BSM, MAP, SPAT, RSM, RSI events and signs), and reacts to warnings through its driver model.
An unequipped road user (``equipped: false``, no OBU) only moves: it transmits nothing and ignores anything
it is given.

Told of a collision (``TickContext.collisions``, in the tick after it), the road user comes to rest where it
touched, the pose it reported in the collision's tick, as the world holds it (docs/PROTOCOL.md, "Collisions"):
speed and acceleration zero, its scripted events, lane change and driver done with; it goes on sending BSMs
(a stationary vehicle) and running its apps."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from v2x.agents.base import Agent, Environment, Heard, TickContext, TickResult, Transmission
from v2x.apps.driver import Driver, SignalView
from v2x.apps.host import Host, Participant
from v2x.apps.registry import OnBoardView, Raised, Reaction, RouteAhead, app_by_code, app_spec, onboard_apps
from v2x.apps.rlvw import match
from v2x.scenario.geometry import Pose, Route, shifted, smoothstep5
from v2x.scenario.model import DEFAULT_SIZE, FLAG_ACTIONS, LANE_ACTIONS, ActorSpec, DriverSpec, ScriptedEvent
from v2x.scenario.signals import FixedTimeController
from v2x.units import enu_yaw_rad_to_compass_deg
from v2x.wire import testbed_pb2
from v2x.wire.bsm import OwnState, RemoteState, encode_bsm
from v2x.wire.envelope import temporary_id
from v2x.wire.map_spat import Approach, Interval
from v2x.wire.rsi import RoadEvent, RoadSign
from v2x.wire.tables import APP_NAME

BSM_PERIOD_S = 0.1  # 10 Hz (T/CSAE 53 Day-1 table)
SIGNAL_VISIBLE_M = 150.0  # how far ahead a driver reads a signal head and its countdown (assumption)
MIN_RETURN_S = 1.0  # an abandoned lane change steers back over at least this long (ours)


@dataclass(frozen=True)
class LaneMove:
    """A sideways move across lanes: from ``from_m`` to ``to_m`` to the left of the vehicle's line (negative:
    right), starting at ``start_s`` and taking ``duration_s`` (the quintic of ``smoothstep5``)."""

    start_s: float
    duration_s: float
    from_m: float
    to_m: float
    lane: str  # the lane it ends in
    cruise_mps: float  # the driver's cruise speed when he signalled (an abandoned overtake goes back to it)
    abortable: bool = True  # false: the move back of an abandoned one

    def offset(self, t: float) -> tuple[float, float]:
        """The offset at ``t`` and its rate (m/s)."""
        f, df = smoothstep5((t - self.start_s) / self.duration_s)
        span = self.to_m - self.from_m
        return self.from_m + span * f, span * df / self.duration_s

    def done(self, t: float) -> bool:
        return t >= self.start_s + self.duration_s - 1e-9


def driver_of(spec: DriverSpec) -> Driver:
    """The driver model a scenario's ``driver:`` block describes."""
    return Driver(
        spec.reaction_s,
        spec.brake_mps2,
        spec.sees_signals,
        spec.follows_advice,
        spec.comfort_decel_mps2,
        spec.comfort_accel_mps2,
        spec.caution_speed_mps,
    )


class VehicleAgent(Agent):
    def __init__(
        self,
        spec: ActorSpec,
        route: Route,
        env: Environment,
        signal_heads: Sequence[tuple[Approach, FixedTimeController]] = (),
        lanes: Mapping[str, Route] | None = None,
    ) -> None:
        super().__init__(spec.id, spec.kind, env)
        self.spec = spec
        self.route = route
        length, width, height = DEFAULT_SIZE[spec.kind]
        self.length_m = spec.length_m or length
        self.width_m = spec.width_m or width
        self.height_m = height
        self.s = spec.start_m
        self.v = spec.speed_mps
        self.a = 0.0
        self._command: tuple[float, float | None] | None = None  # (accel, stop at this speed)
        self._events: list[ScriptedEvent] = sorted(spec.events, key=lambda e: e.at_s)
        self.driver = driver_of(spec.driver) if spec.driver else None
        self.cruise_mps = spec.speed_mps  # what the driver goes back to; scripted events change it
        # BSM event flags set by scripted events (hazard_lights, disabled, abs, ...), and when those set
        # with ``for_s`` clear again. hardBraking is not here: the BSM takes it from the deceleration.
        self.flags: set[str] = set()
        self._flag_clears_at: dict[str, float] = {}
        # Lane changes (scripted ``lane_change``): the lanes it may move onto, its sideways offset from its
        # line, the move under way, the turn signal ("left", "right", "") and the lane it is in.
        self.lanes = dict(lanes or {})
        self.offset_m = 0.0
        self._move: LaneMove | None = None
        self.turn_signal = ""
        self.lane_id = spec.lane or ""
        # The signal heads the driver can see (physical lights, not V2X): what `sees_signals` looks at.
        self.signal_heads = list(signal_heads)
        self.equipped = spec.equipped
        self.remotes: dict[bytes, RemoteState] = {}
        # Road users heard of in RSMs (roadside perception), by participant key ({rsm id}/{ptcId}).
        self.perceived: dict[str, RemoteState] = {}
        self.own_id = temporary_id(spec.id)
        self.msg_count = 0
        self._next_bsm_s = 0.0
        self._warned_until: dict[tuple[int, str], float] = {}
        # From MAP (per node id: its ingress lanes) and SPAT ((node id, phase id) -> lights ahead).
        self.approaches: dict[int, list[Approach]] = {}
        self.signals: dict[tuple[int, int], list[Interval]] = {}
        # From RSI: road traffic events by key ({rsi id hex}/rte{rteId}), with the time last heard.
        self.road_events: dict[str, tuple[RoadEvent, float]] = {}
        # From RSI: road traffic signs by key ({rsi id hex}/rts{rtsId}), with the time last heard.
        self.road_signs: dict[str, tuple[RoadSign, float]] = {}
        # The scenario's on-board apps (v2x.apps.registry), in evaluation order; each keeps its own state.
        self.apps = onboard_apps(spec.apps)
        self._pose: Pose | None = None  # the pose it reported last tick
        self.rest: Pose | None = None  # where it came to rest after a collision

    # -- motion -------------------------------------------------------------------------------------
    def _integrate(self, dt: float) -> None:
        a, v = self.a, self.v
        if a < 0 and v + a * dt <= 0:
            self.s += v * v / (-2 * a) if v > 0 else 0.0
            self.v = 0.0
            return
        target = self._command[1] if self._command else None
        if target is not None and a != 0 and (v - target) * (v + a * dt - target) < 0:
            t1 = (target - v) / a  # reach the target speed inside the step, then hold it
            self.s += v * t1 + 0.5 * a * t1 * t1 + target * (dt - t1)
            self.v = target
            self._command = None
            return
        self.s += v * dt + 0.5 * a * dt * dt
        self.v = max(0.0, v + a * dt)

    def _set_flag(self, ev: ScriptedEvent) -> None:
        if ev.sets_flag:
            self.flags.add(ev.action)
            if ev.for_s is not None:
                self._flag_clears_at[ev.action] = ev.at_s + ev.for_s
            else:
                self._flag_clears_at.pop(ev.action, None)
        else:
            self.flags.discard(ev.action)
            self._flag_clears_at.pop(ev.action, None)

    def _choose_accel(self, t: float, view: SignalView | None) -> float:
        for name, at in list(self._flag_clears_at.items()):
            if at <= t + 1e-9:
                self.flags.discard(name)
                del self._flag_clears_at[name]
        while self._events and self._events[0].at_s <= t + 1e-9:
            ev = self._events.pop(0)
            if ev.action in FLAG_ACTIONS:
                self._set_flag(ev)
            elif ev.action in LANE_ACTIONS:
                self._start_lane_change(t, ev)
            elif ev.action == "hold":
                self._command = (0.0, None)
                self.cruise_mps = self.v
            elif ev.action == "brake":
                self._command = (-ev.rate_mps2, ev.until_speed_mps if ev.until_speed_mps is not None else 0.0)
            else:
                self._command = (ev.rate_mps2, ev.until_speed_mps)
        if self.driver is not None and self.driver.abort_due(t):
            self._abandon_lane_change(t)
        accel = 0.0
        if self._command is not None:
            accel, target = self._command
            if target is not None and ((accel < 0 and self.v <= target) or (accel > 0 and self.v >= target)):
                self._command = None
                self.cruise_mps = target
                accel = 0.0
        if self.driver is not None:
            brake = self.driver.command(t)
            if brake is not None:
                accel = min(accel, brake)
            else:
                if self._command is None:
                    accel = self.driver.track(self.v, self.driver.target_speed(t, self.cruise_mps))
                stop = self.driver.signal_accel(self.v, view)
                if stop is not None:
                    accel = min(accel, stop)
        if accel < 0 and self.v <= 0:
            accel = 0.0
        return accel

    # -- lane changes ---------------------------------------------------------------------------------
    def _lateral(self, t: float) -> tuple[float, float]:
        """The sideways offset from the line at ``t`` and its rate; a move that has ended is settled."""
        move = self._move
        if move is None:
            return self.offset_m, 0.0
        if move.done(t):
            self._move = None
            self.offset_m = move.to_m
            self.lane_id = move.lane
            self.turn_signal = ""
            return self.offset_m, 0.0
        return move.offset(t)

    def _start_lane_change(self, t: float, ev: ScriptedEvent) -> None:
        """Turn the signal on now; the sideways move onto ``ev.lane`` starts ``ev.lead_s`` later."""
        assert ev.lane is not None  # the schema requires it
        target = self.lanes.get(ev.lane)
        if target is None:
            raise ValueError(f"{self.actor_id}: lane_change onto {ev.lane!r}, a lane it was not given")
        now, _ = self._lateral(t)
        to_m = self.route.offset_to(self.s, target)
        self._move = LaneMove(t + ev.lead_s, ev.move_s, now, to_m, ev.lane, self.cruise_mps)
        self.turn_signal = "left" if to_m > now else "right" if to_m < now else ""

    def _abandon_lane_change(self, t: float) -> None:
        """The driver abandons the lane change (or overtake) under way: the signal goes off, he steers back
        to where he started from (if he had begun to move) and goes back to his speed when he signalled,
        dropping a scripted acceleration."""
        move = self._move
        if move is None or not move.abortable:
            return
        now, _ = move.offset(t)
        self.turn_signal = ""
        self._move = None
        self.offset_m = move.from_m
        back = abs(now - move.from_m)
        if back > 1e-6:
            span = abs(move.to_m - move.from_m)
            duration = max(MIN_RETURN_S, move.duration_s * back / span)
            self._move = LaneMove(t, duration, now, move.from_m, self.lane_id, move.cruise_mps, abortable=False)
        if self._command is not None and self._command[0] > 0:
            self._command = None
        self.cruise_mps = move.cruise_mps

    def _route_ahead(self, ex: float, ny: float) -> RouteAhead:
        """The vehicle's own route ahead of its centre (OnBoardView.route_ahead), in the frame of its believed
        position: shifted by its positioning error (east ``ex``, north ``ny``)."""
        s0 = self.s

        def ahead(d_m: float) -> tuple[float, float, float]:
            p = self.route.pose(s0 + d_m)
            return p.x + ex, p.y + ny, p.heading_rad

        return ahead

    def _signal_view(self, t: float, pose: Pose) -> SignalView | None:
        """The signal head of the approach the vehicle is truly on (the driver's eyes, not V2X)."""
        if not self.signal_heads or self.driver is None or not self.driver.sees_signals:
            return None
        host = Host(pose.x, pose.y, pose.heading_rad, self.v, self.a, self.length_m, 0.0)
        m = match(host, [ap for ap, _ in self.signal_heads], 0.5)
        if m is None or m.distance_m > SIGNAL_VISIBLE_M:
            return None
        ctl = next(c for ap, c in self.signal_heads if ap is m.approach)
        now = ctl.light(m.approach.phase_id, t)
        later = ctl.light(m.approach.phase_id, t + m.distance_m / self.v) if self.v > 0.5 else now
        return SignalView(m.distance_m, now, later)

    def _on_heard(self, heard: Heard, t: float, result: TickResult) -> None:
        which = heard.frame.WhichOneof("msg")
        if which == "bsm":
            remote = self.env.bsm(heard, t)
            if remote is not None and remote.temp_id != self.own_id:
                known = self.remotes.get(remote.temp_id)
                if known is None or remote.t_s >= known.t_s:
                    self.remotes[remote.temp_id] = remote
        elif which == "rsm":
            for remote in self.env.rsm(heard, t):
                known_p = self.perceived.get(remote.key)
                if known_p is None or remote.t_s >= known_p.t_s:
                    self.perceived[remote.key] = remote
        elif which == "rsi":
            info = self.env.rsi(heard, t)
            for event in info.events:
                self.road_events[info.key(event)] = (event, t)
            for sign in info.signs:
                self.road_signs[info.sign_key(sign)] = (sign, t)
        elif which == "map":
            self.approaches.update(self._by_node(list(self.env.map(heard))))
        elif which == "spat":
            for st in self.env.spat(heard, t):
                for phase_id, timeline in st.phases.items():
                    self.signals[(st.node_id, phase_id)] = timeline
        elif which == "advisory" and heard.frame.advisory.target_id == self.actor_id:
            adv = testbed_pb2.Advisory()
            adv.CopyFrom(heard.frame.advisory)
            self._warn(result, adv, t)

    # -- the tick -----------------------------------------------------------------------------------
    def _come_to_rest(self, t: float, ctx: TickContext, result: TickResult) -> None:
        """Told of a collision: at rest from now on, where it was when it touched (the pose of the last tick)."""
        self.rest = self._pose or shifted(self.route.pose(self.s), *self._lateral(t), self.v)
        self.v = self.a = 0.0
        self._command = None
        self._events = []
        self._move = None
        self.turn_signal = ""
        others = ", ".join(f"{c.other_id} at t={c.t_s:.2f} s" for c in ctx.collisions)
        result.notes.append(f"collided with {others}: at rest")

    def step(self, ctx: TickContext) -> TickResult:
        t = ctx.t_s
        result = TickResult()
        if ctx.collisions and self.rest is None:
            self._come_to_rest(t, ctx, result)
        if self.rest is not None:
            pose = self.rest
        else:
            if ctx.tick > 0:
                self._integrate(ctx.dt_s)
            pose = shifted(self.route.pose(self.s), *self._lateral(t), self.v)
        self._pose = pose

        if self.equipped:
            self.receive(ctx.heard, lambda heard: self._on_heard(heard, t, result))
        max_age = self.env.thresholds["max_age_s"]
        self.remotes = {k: r for k, r in self.remotes.items() if t - r.t_s <= max_age}
        self.perceived = {k: r for k, r in self.perceived.items() if t - r.t_s <= max_age}
        self.road_events = {k: e for k, e in self.road_events.items() if t - e[1] <= max_age}
        sign_age = self.env.thresholds["rsi_sign_max_age_s"]
        self.road_signs = {k: e for k, e in self.road_signs.items() if t - e[1] <= sign_age}

        gnss = ctx.gnss
        ex = gnss.east_error_m if gnss.available else 0.0
        ny = gnss.north_error_m if gnss.available else 0.0
        host = Participant(
            "host",
            pose.x + ex,
            pose.y + ny,
            self.v * math.cos(pose.heading_rad),
            self.v * math.sin(pose.heading_rad),
            self.a,
            pose.heading_rad,
            self.length_m,
            self.width_m,
            gnss.sigma_major_m if gnss.available else float("inf"),
        )
        view = OnBoardView(
            host=Host(
                host.x,
                host.y,
                pose.heading_rad,
                self.v,
                self.a,
                self.length_m,
                host.sigma_m,
                self.width_m,
                self.turn_signal,
            ),
            host_party=host,
            remotes=self.remotes,
            perceived=self.perceived,
            heard_events=self.road_events,
            heard_signs=self.road_signs,
            approaches=self.approaches,
            signals=self.signals,
            thresholds=self.env.thresholds,
            route_ahead=self._route_ahead(ex, ny),
        )
        for app in self.apps:
            for raised in app.evaluate(view, t):
                self._on_raised(result, t, raised)

        if self.rest is None:
            self.a = self._choose_accel(t, self._signal_view(t, pose))
        if self.equipped and t + 1e-9 >= self._next_bsm_s:
            self._next_bsm_s += BSM_PERIOD_S
            result.transmissions.extend(self._bsm(t, pose.x + ex, pose.y + ny, pose.heading_rad, gnss))
        c, s = math.cos(pose.heading_rad), math.sin(pose.heading_rad)
        result.truth = testbed_pb2.TruthState(
            x_m=pose.x,
            y_m=pose.y,
            vx_mps=self.v * c,
            vy_mps=self.v * s,
            ax_mps2=self.a * c,
            ay_mps2=self.a * s,
            heading_deg=enu_yaw_rad_to_compass_deg(pose.heading_rad),
            speed_mps=self.v,
            accel_mps2=self.a,
            lane=self.lane_id,
        )
        return result

    def _on_raised(self, result: TickResult, t: float, raised: Raised) -> None:
        """Record an on-board app's advisory (``_raise``) and let the driver react as the app declares
        (v2x.apps.registry.Reaction; the reactions to recorded advisories are in ``_warn``)."""
        spec = app_spec(raised.app)
        if spec.reaction is Reaction.SPEED_ADVICE and self.driver is not None:
            self.driver.on_advice(t, raised.figure)
        self._raise(
            result,
            t,
            spec.code,
            raised.other,
            severity=spec.severity,
            ttc_s=raised.ttc_s,
            figure=raised.figure,
            figure_name=spec.figure_name,
            conflict_type=raised.conflict_type,
        )
        if spec.reaction is Reaction.SHOWN_SIGN and self.driver is not None:
            keep_to = raised.keep_to_mps if raised.keep_to_mps is not None else self.driver.caution_speed_mps
            if keep_to is not None:
                self.driver.on_speed_cap(t, keep_to)

    @staticmethod
    def _by_node(aps: list[Approach]) -> dict[int, list[Approach]]:
        out: dict[int, list[Approach]] = {}
        for ap in aps:
            out.setdefault(ap.node_id, []).append(ap)
        return out

    def _raise(
        self,
        result: TickResult,
        t: float,
        app: testbed_pb2.Application.ValueType,
        other_id: str,
        *,
        severity: testbed_pb2.Severity.ValueType = testbed_pb2.SEVERITY_WARNING,
        ttc_s: float = 0.0,
        figure: float = 0.0,
        figure_name: str = "",
        conflict_type: str = "",
    ) -> None:
        """An advisory raised on board for this vehicle, valid for ``warning_validity_s``."""
        adv = testbed_pb2.Advisory(
            app=app,
            severity=severity,
            target_id=self.actor_id,
            other_id=other_id,
            source_id=self.actor_id,
            ttc_s=ttc_s,
            figure=figure,
            figure_name=figure_name,
            raised_at_s=t,
            valid_until_s=t + self.env.thresholds["warning_validity_s"],
            conflict_type=conflict_type,
        )
        self._warn(result, adv, t)

    def _warn(self, result: TickResult, adv: testbed_pb2.Advisory, t: float) -> None:
        """Record a warning (raised on board or received) once per validity period, and tell the driver."""
        key = (adv.app, adv.other_id)
        if self._warned_until.get(key, -math.inf) > t:
            return
        self._warned_until[key] = adv.valid_until_s if adv.valid_until_s > t else t + 3.0
        result.events.append(adv)
        if self.driver is None:
            return
        spec = app_by_code(adv.app)
        if spec is not None and spec.reaction is Reaction.SPEED_CAP:
            self.driver.on_speed_cap(t, adv.figure)  # slow down to the limit, not to a stop
        elif spec is not None and spec.reaction is Reaction.ABORT_MANOEUVRE:
            if adv.severity >= testbed_pb2.SEVERITY_WARNING:
                self.driver.on_abort(t)  # abandon the lane change / overtake, not brake
        elif adv.severity >= testbed_pb2.SEVERITY_WARNING:
            self.driver.on_warning(t, APP_NAME.get(adv.app, "warning"))

    def _bsm(self, t: float, x: float, y: float, yaw: float, gnss: testbed_pb2.GnssReading) -> list[Transmission]:
        own = OwnState(
            x=x,
            y=y,
            speed_mps=self.v,
            heading_rad=yaw,
            accel_mps2=self.a,
            length_m=self.length_m,
            width_m=self.width_m,
            height_m=self.height_m,
            kind=self.kind,
            sigma_major_m=gnss.sigma_major_m if gnss.available else None,
            sigma_minor_m=gnss.sigma_minor_m if gnss.available else None,
            braking=self.a < 0,
            flags=frozenset(self.flags),
            turn_signal=self.turn_signal,
        )
        frame = encode_bsm(
            own, actor_id=self.actor_id, t_s=t, msg_count=self.msg_count, frame=self.env.frame, epoch=self.env.epoch
        )
        self.msg_count += 1
        out = [Transmission(testbed_pb2.LINK_PC5, frame)]
        if self.spec.uplink and self.env.platform_id:
            out.append(Transmission(testbed_pb2.LINK_UU, frame, (self.env.platform_id,)))
        return out


__all__ = ["VehicleAgent"]
