"""Platooning, sans-I/O: the longitudinal controller of a platoon member (CACC, falling back to ACC) and the
platoon management over the Day-2 CLPMM (T/CSAE 157-2020): join, keep the gap, leave.

**Controller.** The one-vehicle look-ahead CACC of Ploeg et al. [1] with a constant time-gap spacing policy:
the desired bumper-to-bumper gap is ``r + h v`` (``platoon_standstill_m``, ``platoon_time_gap_s``); with
the gap error ``e = d - (r + h v)`` and its rate ``de = dv - h a`` (``d``, ``dv``: the gap and the speed
difference to the vehicle ahead, from the forward radar), the desired acceleration ``u`` follows

    h du/dt = -u + kp e + kd de + a_pred

(``kp``, ``kd``: ``platoon_kp_per_s2``, ``platoon_kd_per_s``), integrated once per tick. ``a_pred`` is the
feed-forward of the predecessor's acceleration, which [1] takes from the predecessor over the radio: here
the ``accelSet.long`` of the predecessor's BSM (the CLPMM of the leader says who the predecessor is). The
engine follows ``u`` with a first-order lag ``platoon_actuator_lag_s`` [1]. Without a fresh BSM of the
predecessor (no V2X, or not accepted into a platoon) the feed-forward is 0: that is the ACC of [1, 2], the
fallback [2] shows needs a much larger time gap to stay string stable. Like any ACC it also has a speed
mode: the commanded acceleration is the smaller of ``u`` and tracking its set speed (the driver's 2 s
time constant), so a vehicle far behind approaches at its set speed instead of charging. Limits:
``platoon_max_accel_mps2`` / ``platoon_max_decel_mps2``.

**Management (CLPMM at 10 Hz).** The leader sends role ``leader`` with its platoon id (its own temporary
id), the time gap, its cruise speed and the members in order (``members``: leader, followers, tail). A
member asks to join from ``join_at_s`` with role ``free`` and status ``joining`` and the platoon id of the
nearest leader ahead it hears; the leader accepts a request from a vehicle behind it whose gap to the
platoon's last vehicle is within ``platoon_join_max_distance_m`` and lists it, ordered by distance behind
the leader (its BSMs), which assigns its position. Accepted, the member closes the gap at up to
``platoon_join_closing_mps`` over the platoon speed, with the CACC on its predecessor, status ``joining``
until its gap error is within ``platoon_joined_error_m``: then ``keeping``, and it raises the ``platoon``
advisory ``joined`` (figure: its position, the leader 1). At ``leave_at_s`` it sends status ``leaving``;
once the leader's list no longer holds it, it raises ``left``, stops sending CLPMM and drops back under ACC
with the time gap ``platoon_leave_time_gap_s``.

**Cut-in.** A member in the platoon watches the BSMs it hears for an intruder: a vehicle the leader does
not list whose centre is ahead of the member's and behind its predecessor's (along the member's heading)
and either within half a lane (``LANE_HALF_WIDTH_M``) of the member's centre line, or within
``platoon_cutin_reach_m`` of it with its turn signal on towards it (the BSM's exterior lights: it is about
to change into the gap). While there is one it raises the ``platoon`` advisory ``cut_in`` (once per
intruder; figure: its position), follows whatever its radar sees ahead without feed-forward (an ACC: the
intruder is no platoon member, the predecessor's acceleration is not the acceleration of the vehicle it
follows) and widens its time gap towards ``platoon_cutin_time_gap_s`` at ``platoon_gap_change_s_per_s`` (s
of time gap per s), so that the controller opens the gap gradually instead of braking at once for the
whole difference. ENSEMBLE (the EU's multi-brand truck platooning project, 2018-2022) names the cut-in
and cut-out of other vehicles among the situations its V2V protocol handles; the fallback to ACC when the
vehicle followed gives no usable acceleration is that of [2] (graceful degradation). Once no
intruder is left it raises ``cut_out``, takes the feed-forward of its predecessor again and narrows the
time gap back to the platoon's at the same rate: the platoon closes up. While its predecessor's BSM is not
heard (aged out) the intruder is kept, since whether it is still between cannot be told; a member that
leaves the platoon with an intruder raises ``cut_out`` before ``left``. Without V2X nothing is heard, so
there is no cut-in handling: the ACC follows whatever its radar sees at the time gap it has.

[1] J. Ploeg, B. Scheepers, E. van Nunen, N. van de Wouw, H. Nijmeijer, "Design and experimental evaluation
of cooperative adaptive cruise control", IEEE ITSC 2011, pp. 260-265.
[2] J. Ploeg, E. Semsar-Kazerooni, G. Lijster, N. van de Wouw, H. Nijmeijer, "Graceful degradation of
cooperative adaptive cruise control", IEEE Trans. ITS 16(1), 2015, pp. 488-497.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from v2x.apps.driver import TRACK_TIME_CONSTANT_S
from v2x.apps.host import Host
from v2x.apps.registry import AppSpec, Bounds, Figure, OnBoardView, Raised, RunsOn
from v2x.units import LANE_HALF_WIDTH_M  # what counts as in the member's lane (the radar's too)
from v2x.wire import testbed_pb2
from v2x.wire.bsm import RemoteState
from v2x.wire.day2 import PlatoonInfo

CLPMM_PERIOD_S = 0.1  # 10 Hz, the BSM's rate (TS 22.186 asks platooning for up to 30 msg/s)
JOINED = "joined"
LEFT = "left"
CUT_IN = "cut_in"
CUT_OUT = "cut_out"

#: Heard CLPMMs by sender id, with the time each was heard.
HeardPlatoons = Mapping[bytes, tuple[PlatoonInfo, float]]


@dataclass(frozen=True)
class Ahead:
    """The vehicle ahead as the forward radar measures it: the bumper-to-bumper gap, and its speed less the
    host's (positive: it pulls away)."""

    gap_m: float
    rel_speed_mps: float


@dataclass(frozen=True)
class Gains:
    """The controller's parameters, from the thresholds (``platoon_*``)."""

    time_gap_s: float
    standstill_m: float
    kp: float
    kd: float
    lag_s: float
    max_accel: float
    max_decel: float

    @staticmethod
    def of(thresholds: Mapping[str, float]) -> Gains:
        return Gains(
            time_gap_s=thresholds["platoon_time_gap_s"],
            standstill_m=thresholds["platoon_standstill_m"],
            kp=thresholds["platoon_kp_per_s2"],
            kd=thresholds["platoon_kd_per_s"],
            lag_s=thresholds["platoon_actuator_lag_s"],
            max_accel=thresholds["platoon_max_accel_mps2"],
            max_decel=thresholds["platoon_max_decel_mps2"],
        )


def gap_error(gap_m: float, speed_mps: float, time_gap_s: float, standstill_m: float) -> float:
    """The spacing policy's error: the gap less the desired ``standstill_m + time_gap_s * speed``."""
    return gap_m - (standstill_m + time_gap_s * speed_mps)


@dataclass
class FollowingController:
    """The CACC of Ploeg et al. (with ``feed_forward``), the ACC without it; ``u`` is its state."""

    gains: Gains
    u: float = 0.0

    def accel(
        self,
        *,
        dt: float,
        speed: float,
        accel: float,
        ahead: Ahead | None,
        feed_forward: float | None,
        set_speed: float,
        time_gap_s: float,
    ) -> float:
        """The acceleration for the next tick, given the one applied now (``accel``)."""
        g = self.gains
        cruise = (set_speed - speed) / TRACK_TIME_CONSTANT_S
        if ahead is None:
            command = cruise
            self.u = command  # nothing to follow: the gap loop starts again from what is commanded
        else:
            e = gap_error(ahead.gap_m, speed, time_gap_s, g.standstill_m)
            de = ahead.rel_speed_mps - time_gap_s * accel
            ff = feed_forward if feed_forward is not None else 0.0
            self.u += dt / time_gap_s * (-self.u + g.kp * e + g.kd * de + ff)
            command = min(self.u, cruise)
        command = max(-g.max_decel, min(g.max_accel, command))
        return accel + min(1.0, dt / g.lag_s) * (command - accel)


@dataclass
class PlatoonStep:
    """What the platoon logic decides at a tick: the acceleration (None: the vehicle's own script drives),
    the CLPMM to send (None: none this tick) and the advisories it raises."""

    accel: float | None = None
    clpmm: PlatoonInfo | None = None
    raised: list[Raised] = field(default_factory=list)


def _behind(host: Host, remote: RemoteState) -> float:
    """How far ``remote``'s centre is behind the host's, along the host's heading (negative: ahead)."""
    return -((remote.x - host.x) * math.cos(host.heading_rad) + (remote.y - host.y) * math.sin(host.heading_rad))


def _left_of(host: Host, remote: RemoteState) -> float:
    """How far ``remote``'s centre is left of the host's centre line (negative: right of it)."""
    return -(remote.x - host.x) * math.sin(host.heading_rad) + (remote.y - host.y) * math.cos(host.heading_rad)


def intruder(
    host: Host,
    remotes: Mapping[bytes, RemoteState],
    members: Sequence[bytes],
    predecessor: RemoteState,
    reach_m: float,
) -> bytes | None:
    """The nearest vehicle heard (BSM) that is cutting in between the host and its ``predecessor``: not one of
    the platoon's ``members``, its centre ahead of the host's and behind the predecessor's along the host's
    heading, and either within ``LANE_HALF_WIDTH_M`` of the host's centre line or within ``reach_m`` of it
    with its turn signal on towards it; None when there is none."""
    limit = -_behind(host, predecessor)
    best: tuple[float, bytes] | None = None
    for sender, r in remotes.items():
        if sender in members or sender == predecessor.temp_id:
            continue
        ahead = -_behind(host, r)
        if not 0 < ahead < limit:
            continue
        left = _left_of(host, r)
        towards = "right" if left > 0 else "left"
        entering = abs(left) <= LANE_HALF_WIDTH_M or (abs(left) <= reach_m and r.turn_signal == towards)
        if entering and (best is None or ahead < best[0]):
            best = (ahead, sender)
    return best[1] if best is not None else None


class _Sender:
    def __init__(self) -> None:
        self._next_s = 0.0

    def due(self, t: float) -> bool:
        if t + 1e-9 < self._next_s:
            return False
        self._next_s = max(self._next_s + CLPMM_PERIOD_S, t + CLPMM_PERIOD_S - 1e-9)
        return True


class PlatoonLeader:
    """The leader: drives its own (scripted) profile, accepts members and sends the platoon's CLPMM."""

    def __init__(self, own_id: bytes, thresholds: Mapping[str, float]) -> None:
        self.own_id = own_id
        self.platoon_id = own_id  # the leader's choice: its own temporary id
        self.thresholds = thresholds
        self.members: list[bytes] = []  # the followers, in order
        self._behind: dict[bytes, float] = {}
        self._sender = _Sender()

    def step(
        self, t: float, host: Host, cruise_mps: float, remotes: Mapping[bytes, RemoteState], heard: HeardPlatoons
    ) -> PlatoonStep:
        th = self.thresholds
        requests: list[tuple[float, bytes, RemoteState]] = []
        for sender, (info, _) in heard.items():
            remote = remotes.get(sender)
            if remote is not None:
                self._behind[sender] = _behind(host, remote)
            if info.platoon_id != self.platoon_id:
                continue
            if info.status == "leaving" and sender in self.members:
                self.members.remove(sender)
            elif info.status == "joining" and sender not in self.members and remote is not None:
                requests.append((self._behind[sender], sender, remote))
        # Nearest first; each is accepted when its gap to the platoon vehicle just ahead of it is within reach.
        for behind, sender, remote in sorted(requests, key=lambda r: r[0]):
            lengths = {m: r.length_m for m in self.members if (r := remotes.get(m)) is not None}
            ahead = [(self._behind.get(m, math.inf), lengths[m]) for m in self.members if m in lengths]
            ahead = [(b, n) for b, n in ahead if b < behind] + [(0.0, host.length_m)]
            b_ahead, l_ahead = max(ahead)
            gap = behind - b_ahead - (l_ahead + remote.length_m) / 2
            if 0 <= gap <= th["platoon_join_max_distance_m"]:
                self.members.append(sender)
        self.members.sort(key=lambda m: self._behind.get(m, math.inf))
        out = PlatoonStep()
        if self._sender.due(t):
            roles = [(m, "tail" if k == len(self.members) - 1 else "follower") for k, m in enumerate(self.members)]
            out.clpmm = PlatoonInfo(
                sender_id=self.own_id,
                platoon_id=self.platoon_id,
                role="leader",
                status="keeping" if self.members else "navigating",
                gap_s=th["platoon_time_gap_s"],
                target_speed_mps=cruise_mps,
                members=((self.own_id, "leader"), *roles),
            )
        return out


class PlatoonMember:
    """A member: asks to join, follows its predecessor (CACC; ACC without V2X), leaves."""

    def __init__(
        self,
        own_id: bytes,
        *,
        join_at_s: float,
        leave_at_s: float | None,
        cruise_mps: float,
        thresholds: Mapping[str, float],
    ) -> None:
        self.own_id = own_id
        self.join_at_s = join_at_s
        self.leave_at_s = leave_at_s
        self.cruise_mps = cruise_mps
        self.thresholds = thresholds
        self.controller = FollowingController(Gains.of(thresholds))
        self.state = "free"  # free, asking, joining, keeping, leaving, left
        self.leader: bytes | None = None
        self.position = 0  # in the leader's list (the leader 1); 0: not in a platoon
        self.intruder: bytes | None = None  # a vehicle cutting in ahead of it (``intruder``)
        self.time_gap_s = thresholds["platoon_time_gap_s"]  # in the platoon: widened behind an intruder
        self._sender = _Sender()

    def _find_leader(
        self, host: Host, remotes: Mapping[bytes, RemoteState], heard: HeardPlatoons
    ) -> PlatoonInfo | None:
        if self.leader is not None:
            got = heard.get(self.leader)
            return got[0] if got is not None else None
        best: tuple[float, PlatoonInfo] | None = None
        for sender, (info, _) in heard.items():
            remote = remotes.get(sender)
            if info.role != "leader" or remote is None:
                continue
            ahead = -_behind(host, remote)
            if ahead > 0 and (best is None or ahead < best[0]):
                best = (ahead, info)
        return best[1] if best is not None else None

    def step(
        self,
        t: float,
        dt: float,
        host: Host,
        ahead: Ahead | None,
        remotes: Mapping[bytes, RemoteState],
        heard: HeardPlatoons,
    ) -> PlatoonStep:
        th = self.thresholds
        out = PlatoonStep()
        lead = self._find_leader(host, remotes, heard) if self.state != "left" else None
        listed = [m for m, _ in lead.members] if lead is not None else []
        in_list = self.own_id in listed
        leader_name = (self.leader or (lead.sender_id if lead is not None else b"")).hex()
        if self.state == "free" and lead is not None and t + 1e-9 >= self.join_at_s:
            self.state, self.leader = "asking", lead.sender_id
        if self.state == "asking" and in_list:
            self.state = "joining"
        if self.state in ("joining", "keeping") and self.leave_at_s is not None and t + 1e-9 >= self.leave_at_s:
            self.state = "leaving"
        if self.state == "leaving" and lead is not None and not in_list:
            self.state = "left"
            if self.intruder is not None:  # no gap of its own to keep behind it any more: the cut-in is over for it
                out.raised.append(
                    Raised(app="platoon", other=self.intruder.hex(), conflict_type=CUT_OUT, figure=self.position)
                )
                self.intruder = None
            out.raised.append(Raised(app="platoon", other=leader_name, conflict_type=LEFT, figure=self.position))
            self.position = 0
        if in_list and self.state in ("joining", "keeping", "leaving"):
            self.position = listed.index(self.own_id) + 1

        # The controller: CACC on the predecessor while in the platoon, ACC otherwise.
        in_platoon = self.state in ("joining", "keeping", "leaving") and lead is not None and in_list
        feed_forward = None
        time_gap = th["platoon_time_gap_s"]
        set_speed = self.cruise_mps
        if in_platoon and lead is not None:
            pred = remotes.get(listed[self.position - 2])
            # (the predecessor's BSM aged out: whether the intruder is still between cannot be told, so it is kept;
            # a diff review: it raised cut_out, then cut_in again once the predecessor was heard)
            cut = (
                intruder(host, remotes, listed, pred, th["platoon_cutin_reach_m"])
                if pred is not None
                else self.intruder
            )
            if cut is not None and cut != self.intruder:
                out.raised.append(Raised(app="platoon", other=cut.hex(), conflict_type=CUT_IN, figure=self.position))
            elif cut is None and self.intruder is not None:
                out.raised.append(
                    Raised(app="platoon", other=self.intruder.hex(), conflict_type=CUT_OUT, figure=self.position)
                )
            self.intruder = cut
            wanted = th["platoon_cutin_time_gap_s"] if cut is not None else th["platoon_time_gap_s"]
            step = th["platoon_gap_change_s_per_s"] * dt
            self.time_gap_s = (
                min(self.time_gap_s + step, wanted) if wanted > self.time_gap_s else max(self.time_gap_s - step, wanted)
            )
            time_gap = self.time_gap_s
            if pred is not None and cut is None:
                feed_forward = pred.accel_mps2
            platoon_speed = lead.target_speed_mps if lead.target_speed_mps is not None else self.cruise_mps
            set_speed = max(self.cruise_mps, platoon_speed) + th["platoon_join_closing_mps"]
        elif self.state == "left":
            time_gap = th["platoon_leave_time_gap_s"]
        out.accel = self.controller.accel(
            dt=dt,
            speed=host.speed_mps,
            accel=host.accel_mps2,
            ahead=ahead,
            feed_forward=feed_forward,
            set_speed=set_speed,
            time_gap_s=time_gap,
        )
        if self.state == "joining" and ahead is not None:
            e = gap_error(ahead.gap_m, host.speed_mps, time_gap, th["platoon_standstill_m"])
            if abs(e) <= th["platoon_joined_error_m"]:
                self.state = "keeping"
                out.raised.append(Raised(app="platoon", other=leader_name, conflict_type=JOINED, figure=self.position))

        if (
            self.state in ("asking", "joining", "keeping", "leaving")
            and self.leader is not None
            and self._sender.due(t)
        ):
            role = "free"
            if in_list:
                role = "tail" if self.position == len(listed) else "follower"
            out.clpmm = PlatoonInfo(
                sender_id=self.own_id,
                platoon_id=self.leader,
                role=role,
                status="joining" if self.state == "asking" else self.state,
                gap_s=time_gap,
                gap_m=ahead.gap_m if ahead is not None and 0 < ahead.gap_m < 655.35 else None,
            )
        return out


class PlatoonAdvisories:
    """The registry's on-board object for ``platoon``: the vehicle's platoon logic (``platoon:`` in the
    scenario) raises its advisories; evaluating the view adds nothing."""

    def evaluate(self, view: OnBoardView, t_s: float) -> Sequence[Raised]:
        return ()


APPS = (
    AppSpec(
        name="platoon",
        code=testbed_pb2.APP_PLATOON,
        title="platooning (CLPMM join and leave, cut-in)",
        runs_on=RunsOn.VEHICLE,
        consumes=("bsm", "clpmm"),
        colour="#16a085",
        severity=testbed_pb2.SEVERITY_INFO,  # a join or leave is news, not a warning: the driver does not brake
        figure=Figure("platoon_position", "position in the platoon", ""),
        thresholds={
            # Constant time-gap policy: the brief's 0.6 s, inside the range Ploeg et al. (ITSC 2011) show string
            # stable with their CACC (they drove 0.7 s); the ACC fallback needs far more (Ploeg et al., T-ITS 2015).
            "platoon_time_gap_s": 0.6,
            # Standstill distance r of the spacing policy (Ploeg et al., ITSC 2011: r = 2 m).
            "platoon_standstill_m": 2.0,
            # CACC / ACC feedback gains kp (1/s^2) and kd (1/s) (Ploeg et al., ITSC 2011: kp = 0.2, kd = 0.7).
            "platoon_kp_per_s2": 0.2,
            "platoon_kd_per_s": 0.7,
            # Engine (drive line) time constant tau (Ploeg et al., ITSC 2011: tau = 0.1 s).
            "platoon_actuator_lag_s": 0.1,
            # Acceleration limits of the automated controller (assumption: a loaded truck's traction and a
            # firm but not emergency brake).
            "platoon_max_accel_mps2": 2.0,
            "platoon_max_decel_mps2": 6.0,
            # The leader accepts a joiner whose gap to the platoon's last vehicle is within this (3GPP TS 22.186
            # gives platooning's requirements for an 80 m communication range).
            "platoon_join_max_distance_m": 80.0,
            # A joiner (and a member) may go this much faster than the platoon to close a gap (assumption).
            "platoon_join_closing_mps": 3.0,
            # Joined (status keeping) once the gap error is within this (assumption).
            "platoon_joined_error_m": 1.0,
            # The time gap a member that left drops back to, under ACC (assumption: ISO 15622 ACC offers time
            # gaps from 0.8 s; 1.5 s is a common middle setting).
            "platoon_leave_time_gap_s": 1.5,
            # The time gap a member opens to behind a vehicle cutting in, under ACC (the fallback of Ploeg et al.,
            # T-ITS 2015, which needs a much larger gap than the CACC's; ISO 15622's ACC time gaps start at 0.8 s,
            # 1.5 s is a common middle setting, as platoon_leave_time_gap_s).
            "platoon_cutin_time_gap_s": 1.5,
            # How fast a member widens (or narrows back) its time gap, in s of time gap per s (assumption: 0.6 s
            # to 1.5 s in 6 s; at 25 m/s the desired gap grows 3.75 m/s, a firm but not an emergency brake).
            "platoon_gap_change_s_per_s": 0.15,
            # A vehicle this far (centre) from a member's centre line, between it and its predecessor, with its
            # turn signal on towards it, is cutting in (assumption: 1.5 lanes of 3.5 m, the next lane's far half).
            "platoon_cutin_reach_m": 5.25,
        },
        # Bounds where the rule by unit (v2x.apps.thresholds.UNIT_BOUNDS) does not fit: the time gaps and the
        # lag divide (the controller's dt / time gap, dt / lag), so > 0; at most 10 s.
        threshold_bounds={
            "platoon_time_gap_s": Bounds(0.0, 10.0, above_low=True),
            "platoon_leave_time_gap_s": Bounds(0.0, 10.0, above_low=True),
            "platoon_cutin_time_gap_s": Bounds(0.0, 10.0, above_low=True),
            "platoon_actuator_lag_s": Bounds(0.0, 10.0, above_low=True),
        },
        onboard=lambda names: PlatoonAdvisories(),
    ),
)


__all__ = [
    "APPS",
    "CLPMM_PERIOD_S",
    "CUT_IN",
    "CUT_OUT",
    "JOINED",
    "LANE_HALF_WIDTH_M",
    "LEFT",
    "Ahead",
    "FollowingController",
    "Gains",
    "HeardPlatoons",
    "PlatoonLeader",
    "PlatoonMember",
    "PlatoonStep",
    "gap_error",
    "intruder",
]
