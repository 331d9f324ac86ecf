"""The vehicle / OBU agent (also a pedestrian or cyclist): follows its route with a speed profile and
scripted events, publishes BSM at 10 Hz over PC5 (and to the edge/cloud over Uu; a pedestrian's or
cyclist's phone, ``device: phone``, publishes the Day-2 PSM instead), runs its on-board apps on what it
hears (BSM, MAP, SPAT, RSM, RSI events and signs; Day-2 SSM, PSM, the RSCs addressed to it and, in a
platoon, CLPMM; VIR and other CLPMM are only range-checked), sends the VIRs its apps ask for (CLC: a lane
change it plans; SVP: signal priority at the signal it approaches), and reacts to warnings and suggestions
through its driver model. A platoon member
(``platoon:``) is driven by its longitudinal controller instead (v2x.apps.platoon: CACC on its forward
radar and its predecessor's BSM, ACC without V2X) and, like the leader, takes part in the platoon's
management over CLPMM.
An unequipped road user (``equipped: false``, no OBU) only moves: it transmits nothing and ignores anything
it is given.

Told of a collision (``TickContext.collisions``, in the tick after it), the road user comes to rest where it
touched, the pose it reported in the collision's tick, as the world holds it (docs/PROTOCOL.md, "Collisions"):
speed and acceleration zero, its scripted events, lane change and driver done with; it goes on sending BSMs
(a stationary vehicle) and running its apps. A vehicle's BSMs then set hazardLights and disabledVehicle for
good (``WRECK_FLAGS``), so that the AVW of those coming up behind warns of the wreck."""

from __future__ import annotations

import contextlib
import functools
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from v2x.agents.base import Agent, Environment, Heard, TickContext, TickResult, Transmission, first_while_valid
from v2x.apps.driver import Driver, SignalView, grade_accel
from v2x.apps.host import Host, Participant, with_vertical_rate
from v2x.apps.misbehaviour import Detector
from v2x.apps.platoon import Ahead, PlatoonLeader, PlatoonMember
from v2x.apps.registry import (
    Grant,
    Intends,
    Manoeuvre,
    OnBoardView,
    Raised,
    Reaction,
    RouteAhead,
    Suggestion,
    app_by_code,
    app_spec,
    figure_names,
    onboard_apps,
    onboard_inputs,
)
from v2x.apps.rlvw import match
from v2x.core import ActorKind
from v2x.core.traffic import CLASS_PARAMS
from v2x.scenario.geometry import Pose, Route, shifted, smoothstep5
from v2x.scenario.model import (
    FLAG_ACTIONS,
    LANE_ACTIONS,
    VEHICLE_KINDS,
    ActorSpec,
    DriverSpec,
    ScriptedEvent,
)
from v2x.scenario.signals import FixedTimeController, apply_warps, warp_from_wire
from v2x.units import enu_yaw_rad_to_compass_deg, s_of
from v2x.wire import testbed_pb2
from v2x.wire.advisory import advisory, advisory_problem
from v2x.wire.bsm import OwnState, RemoteState, encode_bsm
from v2x.wire.day2 import Intention, PersonalState, PlatoonInfo, encode_clpmm, encode_psm, encode_vir
from v2x.wire.envelope import temporary_id
from v2x.wire.map_spat import Approach, Interval
from v2x.wire.rsi import RoadEvent, RoadSign
from v2x.wire.tables import APP_NAME

BSM_PERIOD_S = 0.1  # 10 Hz (T/CSAE 53 Day-1 table)
SIGNAL_VISIBLE_M = 150.0  # how far ahead a driver reads a signal head and its countdown (assumption)
MIN_RETURN_S = 1.0  # an abandoned lane change steers back over at least this long (ours)
WRECK_FLAGS = frozenset({"hazard_lights", "disabled"})  # the BSM event flags a road user sets once it has crashed


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
        spec.attentive,
    )


class VehicleAgent(Agent):
    def __init__(
        self,
        spec: ActorSpec,
        route: Route,
        env: Environment,
        signal_heads: Sequence[tuple[Approach, FixedTimeController]] = (),
        lanes: Mapping[str, Route] | None = None,
        phantom_route: Route | None = None,
        lane_numbers: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(spec.id, spec.kind, env)
        self.spec = spec
        self.route = route
        self.length_m, self.width_m, self.height_m = spec.box_m
        self.s = spec.start_m
        self.v = spec.speed_mps
        self.a = 0.0
        self._command: tuple[float, float | None] | None = None  # (accel, stop at this speed)
        self._events: list[ScriptedEvent] = sorted(spec.events, key=lambda e: e.at_s)
        self.driver = driver_of(spec.driver) if spec.driver else None
        # An attentive driver's class parameters for following (v2x.core.traffic, the IDM's a, b, s0, T).
        self.follow_params = (
            CLASS_PARAMS[ActorKind[spec.kind.upper()]] if self.driver is not None and self.driver.attentive else None
        )
        self._seen: testbed_pb2.Detection | None = None  # the forward view's reading this tick (radar, eyes)
        self.cruise_mps = spec.speed_mps  # what the driver goes back to; scripted events change it
        # BSM event flags set by scripted events (hazard_lights, disabled, abs, ...), and when those set
        # with ``for_s`` clear again. hardBraking is not here: the BSM takes it from the deceleration.
        self.flags: set[str] = set()
        self._flag_clears_at: dict[str, float] = {}
        # Lane changes (scripted ``lane_change``): the lanes it may move onto, its sideways offset from its
        # line, the move under way, the turn signal ("left", "right", "") and the lane it is in.
        self.lanes = dict(lanes or {})
        self.lane_numbers = dict(lane_numbers or {})  # lane id -> its number in VIR (1.., the road's order)
        self.offset_m = 0.0
        self._move: LaneMove | None = None
        self.turn_signal = ""
        self.lane_id = spec.lane or ""
        # The signal heads the driver can see (physical lights, not V2X): what `sees_signals` looks at.
        self.signal_heads = list(signal_heads)
        self.equipped = spec.equipped
        self.remotes: dict[bytes, RemoteState] = {}
        # At most the least ``t_s`` among ``remotes`` (NaN: not known): ``_prune`` needs no pass over them until
        # it is ``max_age_s`` old. Lowered as remotes are taken in, made exact again when they are pruned.
        self._oldest = math.inf
        # Road users heard of in RSMs (roadside perception), by participant key ({rsm id}/{ptcId}).
        self.perceived: dict[str, RemoteState] = {}
        # Road users heard of in SSMs (other stations' sensors), by participant key ({ssm id}/{ptcId}), and
        # personal devices heard (PSM), by temporary id.
        self.shared: dict[str, RemoteState] = {}
        # Where it believed itself over the last max_age_s, (t, x, y) oldest first: SDS tells itself among the
        # shared participants by it (OnBoardView.host_track)
        self._track: deque[tuple[float, float, float]] = deque()
        self.personal: dict[bytes, RemoteState] = {}
        self.phone = spec.device == "phone"  # sends PSM (T/CSAE 157) instead of BSM
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
        # From RSC: the drive suggestion addressed to this vehicle, per sender (the latest), while it stands.
        self.suggestions: dict[bytes, Suggestion] = {}
        self._vir_count = 0
        # The scenario's on-board apps (v2x.apps.registry), in evaluation order; each keeps its own state.
        self.apps = onboard_apps(spec.apps)
        self.inputs = onboard_inputs(spec.apps)  # per app (family), the messages it reads
        self._pose: Pose | None = None  # the pose it reported last tick
        self.rest: Pose | None = None  # where it came to rest after a collision
        # An insider's lie (ActorSpec.phantom): the route of the vehicle its BSMs fabricate.
        self.phantom_route = phantom_route if spec.phantom is not None else None
        # Misbehaviour detection (v2x.apps.misbehaviour) where apps act on what is heard: a sender judged
        # misbehaving is left out of this vehicle's apps and reported in the Ack.
        self.detector = Detector(env.thresholds) if self.apps else None
        # Signal priority (svp): the grants (RSC) received, by RSU id.
        self.grants: dict[bytes, Grant] = {}
        # Platooning (v2x.apps.platoon): the leader's or member's logic, the CLPMMs heard by sender (with the
        # time heard), and this vehicle's CLPMM counter.
        self.platoon: PlatoonLeader | PlatoonMember | None = None
        if spec.platoon is not None and spec.platoon.role == "leader":
            self.platoon = PlatoonLeader(self.own_id, env.thresholds)
        elif spec.platoon is not None:
            self.platoon = PlatoonMember(
                self.own_id,
                join_at_s=spec.platoon.join_at_s,
                leave_at_s=spec.platoon.leave_at_s,
                cruise_mps=spec.speed_mps,
                thresholds=env.thresholds,
            )
        self.platoons: dict[bytes, tuple[PlatoonInfo, float]] = {}
        self.clpmm_count = 0
        # When the message that prompted the apps' current evaluation was sent (None: the periodic one).
        self._trigger: float | None = None
        self._judge = False  # the detector's overlap check is still to run in this tick

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

    def _choose_accel(self, t: float, view: SignalView | None, grade: float = 0.0, ahead: Ahead | None = None) -> float:
        """The acceleration along the road this tick. An effort at a set rate (the driver's braking on a
        warning, a scripted ``brake`` or ``accelerate``) achieves that rate less gravity's pull along the
        grade (``grade_accel``: downhill, braking achieves less); speed tracking, holding a speed,
        stopping at a signal and an attentive driver's following of the vehicle ``ahead`` are closed loops
        that make up for the grade (v2x/apps/driver.py, "Grades")."""
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
        effort = False  # the rate is an effort (brakes, throttle at a set rate), not a closed loop on speed
        if self._command is not None:
            accel, target = self._command
            if target is not None and ((accel < 0 and self.v <= target) or (accel > 0 and self.v >= target)):
                self._command = None
                self.cruise_mps = target
                accel = 0.0
            effort = accel != 0.0
        if self.driver is not None:
            brake = self.driver.command(t)
            if brake is not None:
                accel = min(accel, brake)
                effort = True
            else:
                if self._command is None:
                    accel = self.driver.track(self.v, self.driver.target_speed(t, self.cruise_mps))
                stop = self.driver.signal_accel(self.v, view)
                if stop is not None and stop < accel:
                    accel, effort = stop, False
                if ahead is not None and self.follow_params is not None:
                    follow = self.driver.follow(self.v, ahead.gap_m, -ahead.rel_speed_mps, self.follow_params)
                    if follow < accel:
                        accel, effort = follow, False
        if effort and grade != 0.0:
            accel += grade_accel(grade)
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

    def _manoeuvre(self, t: float) -> Manoeuvre | None:
        """The lane change under way (not one being abandoned) or else the next scripted one, if any."""
        move = self._move
        if move is not None and move.abortable:
            end = move.start_s + move.duration_s
            return Manoeuvre(move.lane, self.lane_numbers.get(move.lane, 0), move.start_s, end, move.to_m)
        ev = next((e for e in self._events if e.action in LANE_ACTIONS), None)
        if ev is None or ev.lane not in self.lanes:
            return None
        start = ev.at_s + ev.lead_s
        to_m = self.route.offset_to(self.s + self.v * max(ev.at_s - t, 0.0), self.lanes[ev.lane])
        return Manoeuvre(ev.lane, self.lane_numbers.get(ev.lane, 0), start, start + ev.move_s, to_m)

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

    def _bsms_of(self, heard: Sequence[Heard], t: float) -> list[RemoteState]:
        """What ``_on_heard`` hands the detector of ``heard``, in order: the others' BSMs that decode (at the tick's
        time ``t``; one that does not is left to ``_on_heard`` to reject)."""
        out = []
        for h in heard:
            if h.frame.WhichOneof("msg") != "bsm":
                continue
            try:
                remote = self.env.bsm(h, t)
            except ValueError:
                continue
            if remote is not None and remote.temp_id != self.own_id:
                out.append(remote)
        return out

    def _on_heard(self, heard: Heard, t: float, result: TickResult, at: float) -> None:
        """Take in a message delivered at ``at`` (decoded against the tick's time ``t``, once for all its
        receivers)."""
        which = heard.frame.WhichOneof("msg")
        if which == "bsm":
            remote = self.env.bsm(heard, t)
            if remote is not None and remote.temp_id != self.own_id:
                if self.detector is not None:
                    verdict = self.detector.observe(remote, at)
                    if verdict is not None:
                        result.judged([verdict])
                    if self.detector.excluded(remote.temp_id):
                        self.remotes.pop(remote.temp_id, None)
                        return
                known = self.remotes.get(remote.temp_id)
                if known is None or remote.t_s >= known.t_s:
                    self.remotes[remote.temp_id] = with_vertical_rate(remote, known)
                    if not (remote.t_s >= self._oldest or math.isnan(self._oldest)):  # (a NaN t_s makes it NaN)
                        self._oldest = remote.t_s
        elif which == "rsm":
            for remote in self.env.rsm(heard, t):
                known_p = self.perceived.get(remote.key)
                if known_p is None or remote.t_s >= known_p.t_s:
                    self.perceived[remote.key] = remote
        elif which == "ssm":
            for remote in self.env.ssm(heard, t).participants:
                known_s = self.shared.get(remote.key)
                if known_s is None or remote.t_s >= known_s.t_s:
                    self.shared[remote.key] = remote
        elif which == "psm":
            person = self.env.psm(heard, t)
            if person is not None and person.temp_id != self.own_id:
                known_d = self.personal.get(person.temp_id)
                if known_d is None or person.t_s >= known_d.t_s:
                    self.personal[person.temp_id] = person
        elif which == "rsc":
            rsu_id, t_rsc, items = self.env.rsc(heard, t)
            mine = [c for c in items if c.vehicle_id == self.own_id]
            for item in mine:
                start, end = item.window_s
                if end is None:
                    continue
                self.grants[rsu_id] = Grant(rsu_id, item.req_id, t_rsc, (t_rsc + (start or 0.0), t_rsc + end))
            if mine:
                known_r = self.suggestions.get(rsu_id)
                if known_r is None or t_rsc >= known_r.t_s:
                    self.suggestions[rsu_id] = Suggestion(rsu_id.hex(), t_rsc, mine[0])
        elif which == "clpmm" and self.platoon is not None:
            clpmm = self.env.clpmm(heard)
            if clpmm.sender_id != self.own_id:
                self.platoons[clpmm.sender_id] = (clpmm, at)
        elif which in ("vir", "clpmm"):
            self.env.check_day2(heard, t)
        elif which == "rsi":
            info = self.env.rsi(heard, t)
            for event in info.events:
                self.road_events[info.key(event)] = (event, at)
            for sign in info.signs:
                self.road_signs[info.sign_key(sign)] = (sign, at)
        elif which == "map":
            self.approaches.update(self._by_node(list(self.env.map(heard))))
        elif which == "spat":
            for st in self.env.spat(heard, t):
                for phase_id, timeline in st.phases.items():
                    self.signals[(st.node_id, phase_id)] = timeline
        elif which == "advisory" and heard.frame.advisory.target_id == self.actor_id:
            # The driver is warned when it arrives: that is the warning's time here (the platform's advisory
            # keeps when the message that prompted it was sent, the start of its app latency).
            adv = testbed_pb2.Advisory()
            adv.CopyFrom(heard.frame.advisory)
            adv.raised_at_s = at
            # Only the platform's, over Uu (``receive`` let through no other: ``not_permitted``), and only one the
            # world would take in this Ack: echoing a bad one got the vehicle's own Ack refused on every re-send, a
            # lockstep run stalled and the warning was charged to the vehicle (attack review 10)
            problem = advisory_problem(adv, end_s=t + 1e-6, figure_names=figure_names())
            if problem:
                raise ValueError(f"advisory{problem}")
            self._warn(result, adv, at)

    # -- the tick -----------------------------------------------------------------------------------
    def _come_to_rest(self, t: float, ctx: TickContext, result: TickResult) -> None:
        """Told of a collision: at rest from now on, where it was when it touched (the pose of the last tick)."""
        self.rest = self._pose or shifted(self.route.pose(self.s), *self._lateral(t), self.v)
        self.v = self.a = 0.0
        self._command = None
        self._events = []
        self._move = None
        self.turn_signal = ""
        if self.kind in VEHICLE_KINDS:
            # A wreck: its hazard lights come on (as a car's do when its airbags fire) and it is disabled, for
            # good; its BSMs say so, so that AVW warns those coming up behind it.
            self.flags |= WRECK_FLAGS
            for flag in WRECK_FLAGS:
                self._flag_clears_at.pop(flag, None)
        others = ", ".join(f"{c.other_id} at t={c.t_s:.2f} s" for c in ctx.collisions)
        result.notes.append(f"collided with {others}: at rest")

    def _pose_now(self, t: float) -> Pose:
        """Where the vehicle is at ``t`` (its motion integrated to ``t``), or where it rests."""
        if self.rest is not None:
            return self.rest
        return shifted(self.route.pose(self.s), *self._lateral(t), self.v)

    def _advance(self, now: float, until: float) -> float:
        """Move from ``now`` to ``until``, splitting the motion at each instant a driver's reaction begins in
        between (braking ``reaction_s`` after the warning, not at the next tick): there the acceleration is
        chosen again. Returns ``until``."""
        if self.rest is not None:
            return until
        driver = self.driver
        while driver is not None and self.platoon is None:
            at = driver.next_change(now, until)
            if at is None:
                break
            self._integrate(at - now)
            now = at
            pose = self._pose_now(now)
            self.a = self._choose_accel(now, self._signal_view(now, pose), pose.grade, self._looks_ahead(now, pose))
        if until > now:
            self._integrate(until - now)
        return until

    def _prune(self, t: float) -> None:
        """Forget what is no longer fresh at ``t``."""
        max_age = self.env.thresholds["max_age_s"]
        if not t - self._oldest <= max_age:  # (else none is older: t - t_s is largest at the least t_s)
            self.remotes = {k: r for k, r in self.remotes.items() if t - r.t_s <= max_age}
            self._oldest = min((r.t_s for r in self.remotes.values()), default=math.inf)
        self.perceived = {k: r for k, r in self.perceived.items() if t - r.t_s <= max_age}
        if self.shared:
            self.shared = {k: r for k, r in self.shared.items() if t - r.t_s <= max_age}
        if self.personal:
            self.personal = {k: r for k, r in self.personal.items() if t - r.t_s <= max_age}
        self.road_events = {k: e for k, e in self.road_events.items() if t - e[1] <= max_age}
        if self.suggestions:
            self.suggestions = {k: g for k, g in self.suggestions.items() if not _expired(g, t)}
        if self.platoons:
            self.platoons = {k: p for k, p in self.platoons.items() if t - p[1] <= max_age}
        sign_age = self.env.thresholds["rsi_sign_max_age_s"]
        self.road_signs = {k: e for k, e in self.road_signs.items() if t - e[1] <= sign_age}
        if self.grants:
            self.grants = {k: g for k, g in self.grants.items() if g.window_s[1] >= t}

    def _view(self, t: float, pose: Pose, gnss: testbed_pb2.GnssReading, result: TickResult) -> OnBoardView:
        """The apps' view at ``t``: the host where it is at ``t`` as its positioning reading of the tick
        places it, and everything heard by then that is still fresh."""
        self._prune(t)
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
            pose.z,
            self.v * pose.grade,
        )
        if not self._track or t > self._track[-1][0]:
            self._track.append((t, host.x, host.y))
            horizon = t - self.env.thresholds["max_age_s"] - 0.5  # (and a little more: a track spanning its age)
            while self._track[0][0] < horizon:
                self._track.popleft()
        if self.detector is not None and self.remotes and self._judge:
            self._judge = False  # once a tick, the first time the apps run in it
            own = Participant(
                "own", pose.x, pose.y, 0.0, 0.0, 0.0, pose.heading_rad, self.length_m, self.width_m, 0.0, pose.z
            )
            result.judged(self.detector.overlaps(self.remotes.values(), t, own, own_disabled="disabled" in self.flags))
        judged = self.detector.judged if self.detector is not None else None
        if judged and not judged.keys().isdisjoint(self.remotes):  # (none to leave out: as it is)
            self.remotes = {k: r for k, r in self.remotes.items() if k not in judged}
        return OnBoardView(
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
            shared=self.shared,
            personal=self.personal,
            grants=tuple(self.grants.values()),
            manoeuvre=self._manoeuvre(t),
            suggestions=tuple(self.suggestions.values()),
            kind=self.kind,
            cruise_mps=self.cruise_mps,
            host_track=self._track,
            own_id=self.own_id,
        )

    def _evaluate(
        self, t: float, pose: Pose, gnss: testbed_pb2.GnssReading, result: TickResult, which: Sequence[int]
    ) -> OnBoardView:
        """Run the on-board apps ``which`` (indices into ``self.apps``) at ``t`` and act on what they raise
        (``self._trigger``: when the message that prompted this evaluation was sent, None for the tick's
        periodic one). A wreck's apps raise nothing (its driver has nothing left to avoid: FCW warned a car at
        rest against the car it had hit)."""
        view = self._view(t, pose, gnss, result)
        for k in which if self.rest is None else ():
            for raised in self.apps[k].evaluate(view, t):
                if isinstance(raised, Intends):
                    if self.equipped:
                        result.transmissions.extend(self._vir(t, view.host.x, view.host.y, raised))
                else:
                    self._on_raised(result, t, raised)
        return view

    def step(self, ctx: TickContext) -> TickResult:
        """One tick, from the last tick's time to ``ctx.t_s``. Each message heard is handled at its delivery
        time: the vehicle moves to that instant, takes the message in and, if it is one its apps read, runs
        them there (deliveries at one instant together), so that a warning's time is the delivery time of
        the message that made it (each app runs where a message it reads arrived). Every app runs at the
        tick's time as well (its periodic evaluation: what the passing of time alone changes, the host moving
        and the others extrapolated). Then the acceleration for the next tick, the BSM and the Ack."""
        t = ctx.t_s
        if ctx.signal_warps and self.signal_heads:
            # The signal heads show what the controllers changed (heads shared by vehicles: applied once); the
            # world passes on only changes its own heads took.
            with contextlib.suppress(ValueError):
                apply_warps(self.signal_heads, [warp_from_wire(w) for w in ctx.signal_warps])
        result = TickResult()
        sensor = f"{self.actor_id}/radar"
        self._seen = next((d for d in ctx.detections if d.sensor == sensor), None)
        if ctx.collisions and self.rest is None:
            self._come_to_rest(t, ctx, result)
        now = t - ctx.dt_s if ctx.tick > 0 else t
        gnss = ctx.gnss
        self._judge = True
        self._trigger = None
        if self.equipped and ctx.heard:
            self.env.decode_bsms(ctx.heard, t)  # all of the tick's BSMs in one batch (what ``env.bsm`` decodes)
            instants = _instants(ctx.heard, now, t)
            if self.detector is not None:  # their misbehaviour checks in one batch too, for ``observe`` to find
                self.detector.prepare(self._bsms_of([h for _, group in instants for h in group], t))
            for at, group in instants:
                now = self._advance(now, at)
                self.receive(group, functools.partial(self._on_heard, t=t, result=result, at=at))
                kinds = {h.frame.WhichOneof("msg") for h in group}
                which = [k for k, reads in enumerate(self.inputs) if not reads.isdisjoint(kinds)]
                if which:
                    self._trigger = max(h.tx_time_s for h in group if h.frame.WhichOneof("msg") != "advisory")
                    if at < t:  # at the tick's time: the periodic evaluation below, prompted by them
                        self._evaluate(at, self._pose_now(at), gnss, result, which)
                        self._trigger = None
                now = self._advance(now, at)  # a reaction that begins at once (advice)
        now = self._advance(now, t)
        pose = self._pose_now(t)
        self._pose = pose
        view: OnBoardView | None = None
        if self.apps:
            # The periodic evaluation at the tick's time, of every app: what time alone changes (the host
            # moving, the others extrapolated) is seen here, as before deliveries were handled on arrival.
            view = self._evaluate(t, pose, gnss, result, range(len(self.apps)))
        else:
            self._prune(t)
        ex = gnss.east_error_m if gnss.available else 0.0
        ny = gnss.north_error_m if gnss.available else 0.0
        if view is None and self.platoon is not None:
            view = self._view(t, pose, gnss, result)

        controlled = self._platoon(ctx, view.host, pose, result) if self.rest is None and view is not None else None
        if controlled is not None:
            self.a = controlled if controlled >= 0 or self.v > 0 else 0.0
        elif self.rest is None:
            self.a = self._choose_accel(t, self._signal_view(t, pose), pose.grade, self._looks_ahead(t, pose))
            if self.driver is not None:
                self.driver.settle(t)
        if self.equipped and t + 1e-9 >= self._next_bsm_s:
            self._next_bsm_s += BSM_PERIOD_S
            claim, speed, accel = pose, self.v, self.a
            ph = self.spec.phantom
            if ph is not None and self.phantom_route is not None and t + 1e-9 >= ph.from_s:
                claim, speed, accel = self.phantom_route.pose(ph.start_m + ph.speed_mps * t), ph.speed_mps, 0.0
            if self.phone:
                result.transmissions.extend(self._psm(t, pose.x + ex, pose.y + ny, pose.heading_rad, gnss))
            else:
                result.transmissions.extend(
                    self._bsm(
                        t,
                        claim.x + ex,
                        claim.y + ny,
                        claim.heading_rad,
                        gnss,
                        speed_mps=speed,
                        accel_mps2=accel,
                        z=claim.z,
                    )
                )
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
            z_m=pose.z,
        )
        return result

    def _ahead(self, t: float, pose: Pose) -> Ahead | None:
        """The vehicle ahead as the forward radar saw it (the world's detection at the last tick, predicted
        to ``t`` with the measured speeds), or None when it sees nothing."""
        d = self._seen
        if d is None:
            return None
        c, s = math.cos(pose.heading_rad), math.sin(pose.heading_rad)
        age = max(0.0, t - s_of(d.time_us))
        along = (d.x_m + d.vx_mps * age - pose.x) * c + (d.y_m + d.vy_mps * age - pose.y) * s
        rel = d.vx_mps * c + d.vy_mps * s - self.v
        return Ahead(along - (d.length_m + self.length_m) / 2, rel)

    def _looks_ahead(self, t: float, pose: Pose) -> Ahead | None:
        """What an attentive driver sees ahead at ``t`` (``_ahead``); None for a distracted one."""
        return self._ahead(t, pose) if self.follow_params is not None else None

    def _platoon(self, ctx: TickContext, host: Host, pose: Pose, result: TickResult) -> float | None:
        """Run the platoon logic: send its CLPMM, record its advisories; the member's acceleration (None: not
        a member, the vehicle's own script and driver drive it)."""
        if self.platoon is None:
            return None
        t = ctx.t_s
        if isinstance(self.platoon, PlatoonLeader):
            out = self.platoon.step(t, host, self.cruise_mps, self.remotes, self.platoons)
        else:
            out = self.platoon.step(t, ctx.dt_s, host, self._ahead(t, pose), self.remotes, self.platoons)
        for raised in out.raised:
            self._on_raised(result, t, raised)
        if out.clpmm is not None:
            frame = encode_clpmm(out.clpmm, t_s=t, msg_count=self.clpmm_count, epoch=self.env.epoch)
            self.clpmm_count += 1
            result.transmissions.append(Transmission(testbed_pb2.LINK_PC5, frame))
        return out.accel

    def _on_raised(self, result: TickResult, t: float, raised: Raised) -> None:
        """Record an on-board app's advisory for this vehicle, valid for ``warning_validity_s`` (``_warn``), and let
        the driver react as the app declares (v2x.apps.registry.Reaction; the reactions to recorded advisories are
        in ``_warn``)."""
        spec = app_spec(raised.app)
        if spec.reaction is Reaction.SPEED_ADVICE and self.driver is not None:
            self.driver.on_advice(t, raised.figure)
        adv = advisory(
            spec.code,
            target_id=self.actor_id,
            other_id=raised.other,
            source_id=self.actor_id,
            t_s=t,
            valid_s=self.env.thresholds["warning_validity_s"],
            severity=spec.severity,
            ttc_s=raised.ttc_s,
            figure=raised.figure,
            figure_name=spec.figure_name,
            conflict_type=raised.conflict_type,
            trigger_sent_at_s=self._trigger,
        )
        self._warn(result, adv, t)
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

    def _warn(self, result: TickResult, adv: testbed_pb2.Advisory, t: float) -> None:
        """Record a warning (raised on board or received) once per validity period, and tell the driver."""
        until = adv.valid_until_s if adv.valid_until_s > t else t + 3.0  # (a received one that says nothing)
        if not first_while_valid(self._warned_until, (adv.app, adv.other_id), t, until):
            return
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

    def _vir(self, t: float, x: float, y: float, intends: Intends) -> list[Transmission]:
        """A VIR (T/CSAE 157) an app asked for, from where the vehicle believes it is: over PC5 and, if the app
        asks (``Intends.to_platform``), to the platform over Uu."""
        intention = Intention(self.own_id, t, x, y, intends.behaviors, intends.path, intends.requests)
        frame = encode_vir(intention, t_s=t, msg_count=self._vir_count, frame=self.env.frame, epoch=self.env.epoch)
        self._vir_count += 1
        out = [Transmission(testbed_pb2.LINK_PC5, frame)]
        if intends.to_platform and self.spec.uplink and self.env.platform_id:
            out.append(Transmission(testbed_pb2.LINK_UU, frame, (self.env.platform_id,)))
        return out

    def _psm(self, t: float, x: float, y: float, yaw: float, gnss: testbed_pb2.GnssReading) -> list[Transmission]:
        """A phone's PSM (T/CSAE 157) at the BSM's rate, over PC5 (and to the platform over Uu, as a BSM)."""
        own = PersonalState(
            kind=self.kind,
            x=x,
            y=y,
            speed_mps=self.v,
            heading_rad=yaw,
            accel_mps2=self.a,
            radius_m=max(self.length_m, self.width_m) / 2,
            sigma_major_m=gnss.sigma_major_m if gnss.available else None,
            sigma_minor_m=gnss.sigma_minor_m if gnss.available else None,
        )
        frame = encode_psm(
            own, actor_id=self.actor_id, t_s=t, msg_count=self.msg_count, frame=self.env.frame, epoch=self.env.epoch
        )
        self.msg_count += 1
        out = [Transmission(testbed_pb2.LINK_PC5, frame)]
        if self.spec.uplink and self.env.platform_id:
            out.append(Transmission(testbed_pb2.LINK_UU, frame, (self.env.platform_id,)))
        return out

    def _bsm(
        self,
        t: float,
        x: float,
        y: float,
        yaw: float,
        gnss: testbed_pb2.GnssReading,
        *,
        speed_mps: float,
        accel_mps2: float,
        z: float = 0.0,
    ) -> list[Transmission]:
        own = OwnState(
            x=x,
            y=y,
            speed_mps=speed_mps,
            heading_rad=yaw,
            accel_mps2=accel_mps2,
            length_m=self.length_m,
            width_m=self.width_m,
            height_m=self.height_m,
            kind=self.kind,
            sigma_major_m=gnss.sigma_major_m if gnss.available else None,
            sigma_minor_m=gnss.sigma_minor_m if gnss.available else None,
            braking=accel_mps2 < 0,
            flags=frozenset(self.flags),
            turn_signal=self.turn_signal,
            z=z,
        )
        frame = encode_bsm(
            own, actor_id=self.actor_id, t_s=t, msg_count=self.msg_count, frame=self.env.frame, epoch=self.env.epoch
        )
        self.msg_count += 1
        out = [Transmission(testbed_pb2.LINK_PC5, frame)]
        if self.spec.uplink and self.env.platform_id:
            out.append(Transmission(testbed_pb2.LINK_UU, frame, (self.env.platform_id,)))
        return out


def _instants(heard: Sequence[Heard], start: float, end: float) -> list[tuple[float, list[Heard]]]:
    """The tick's deliveries grouped by delivery time, in time order (equal times in the order given),
    each time held within [``start``, ``end``], the tick."""
    by_time: dict[float, list[Heard]] = {}
    for h in heard:
        by_time.setdefault(min(max(h.rx_time_s, start), end), []).append(h)
    return sorted(by_time.items(), key=lambda item: item[0])


def _expired(suggestion: Suggestion, t: float) -> bool:
    life = suggestion.coordination.life_time_s
    return life is None or t > suggestion.t_s + life + 1e-9


__all__ = ["VehicleAgent"]
