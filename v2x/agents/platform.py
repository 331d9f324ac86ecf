"""The edge/cloud platform: keeps the latest state of every road user it hears of, runs conflict detection
over all of them every tick, and sends warnings to the vehicles concerned over Uu.

Road users come from two sources: BSMs (uploaded by the vehicles over Uu, or relayed by RSUs over the
backhaul) and the roadside units' perception (RSM relayed over the backhaul), which also covers road users
with no V2X device. A perceived object that is an equipped vehicle already known from its BSM is the same
road user seen twice; :func:`associate` drops it (the BSM is the vehicle's own, more accurate report), so
each road user takes part in conflict detection once. Only vehicles heard over Uu can be warned; a
perceived road user can be the *other* party of a warning (named ``{rsm id}/{ptcId}``, which the world
resolves)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from v2x.agents.base import Agent, Environment, Heard, TickContext, TickResult, Transmission
from v2x.apps.collision import Participant, intersection_collision
from v2x.scenario.model import ActorSpec
from v2x.wire import frame_pb2, testbed_pb2
from v2x.wire.bsm import RemoteState

# Association gate between a perceived object and a BSM sender (both taken to the same time): the same
# road user if their centres are within ASSOC_SIGMAS combined 1-sigma position errors (at least
# ASSOC_MIN_M, the size of a car) and, when both move, their headings within ASSOC_HEADING_DEG. Our
# assumption, in the spirit of a chi-square gate at ~99 % for two 2-D Gaussian errors.
ASSOC_SIGMAS = 3.0
ASSOC_MIN_M = 3.0
ASSOC_HEADING_DEG = 45.0
ASSOC_MOVING_MPS = 0.5


def associate(bsm: Sequence[Participant], perceived: Sequence[Participant]) -> list[Participant]:
    """The perceived objects that are none of the BSM senders (see the gate above), in their order."""
    out = []
    for p in perceived:
        same = False
        for b in bsm:
            sigma = math.hypot(_finite(p.sigma_m), _finite(b.sigma_m))
            if math.hypot(p.x - b.x, p.y - b.y) > max(ASSOC_MIN_M, ASSOC_SIGMAS * sigma):
                continue
            moving = math.hypot(p.vx, p.vy) > ASSOC_MOVING_MPS and math.hypot(b.vx, b.vy) > ASSOC_MOVING_MPS
            if moving:
                diff = abs((math.atan2(p.vy, p.vx) - math.atan2(b.vy, b.vx) + math.pi) % (2 * math.pi) - math.pi)
                if diff > math.radians(ASSOC_HEADING_DEG):
                    continue
            same = True
            break
        if not same:
            out.append(p)
    return out


def _finite(sigma: float) -> float:
    return sigma if math.isfinite(sigma) else 0.0


class EdgePlatform(Agent):
    def __init__(self, spec: ActorSpec, env: Environment) -> None:
        super().__init__(spec.id, spec.kind, env)
        self.apps = set(spec.apps)
        self.known: dict[str, RemoteState] = {}  # BSM senders, by key (temporary id, hex)
        self.perceived: dict[str, RemoteState] = {}  # RSM objects, by key ({rsm id}/{ptcId})
        self.address: dict[str, str] = {}  # key -> actor id reachable over Uu
        self._sent_until: dict[tuple[str, str], float] = {}

    def step(self, ctx: TickContext) -> TickResult:
        t = ctx.t_s
        self.receive(ctx.heard, lambda heard: self._on_heard(heard, t))
        max_age = self.env.thresholds["max_age_s"]
        self.known = {k: r for k, r in self.known.items() if t - r.t_s <= max_age}
        self.perceived = {k: r for k, r in self.perceived.items() if t - r.t_s <= max_age}
        result = TickResult()
        if "icw" in self.apps:
            senders = [Participant.from_remote(k, r, t) for k, r in sorted(self.known.items())]
            seen = [Participant.from_remote(k, r, t) for k, r in sorted(self.perceived.items())]
            participants = senders + associate(senders, seen)
            if len(participants) >= 2:
                for f in intersection_collision(participants, self.env.thresholds):
                    for target, other, t_own in (
                        (f.subject, f.other, f.t_conflict_subject_s),
                        (f.other, f.subject, f.t_conflict_other_s),
                    ):
                        self._advise(result, t, target, other, f.kind, t_own, f.pet_s)
        return result

    def _on_heard(self, heard: Heard, t: float) -> None:
        which = heard.frame.WhichOneof("msg")
        if which == "bsm":
            remote = self.env.bsm(heard, t)
            if remote is None:
                return
            key = remote.key
            if heard.link == testbed_pb2.LINK_UU:
                self.address[key] = heard.sender_id
            known = self.known.get(key)
            if known is None or remote.t_s > known.t_s:
                self.known[key] = remote
        elif which == "rsm":
            for obj in self.env.rsm(heard, t):
                seen = self.perceived.get(obj.key)
                if seen is None or obj.t_s > seen.t_s:
                    self.perceived[obj.key] = obj

    def _advise(self, result: TickResult, t: float, target: str, other: str, kind: str, ttc: float, pet: float) -> None:
        dest = self.address.get(target)
        if dest is None:
            return  # not reachable over Uu (an unequipped road user, or a vehicle heard only via an RSU)
        other_name = self.address.get(other, other)
        key = (dest, other_name)
        if self._sent_until.get(key, -math.inf) > t:
            return
        validity = self.env.thresholds["warning_validity_s"]
        self._sent_until[key] = t + validity
        adv = testbed_pb2.Advisory(
            app=testbed_pb2.APP_ICW,
            severity=testbed_pb2.SEVERITY_WARNING,
            target_id=dest,
            other_id=other_name,
            source_id=self.actor_id,
            ttc_s=ttc,
            figure=0.0 if math.isnan(pet) else pet,
            figure_name="pet_s",
            raised_at_s=t,
            valid_until_s=t + validity,
            conflict_type=kind,
        )
        result.transmissions.append(Transmission(testbed_pb2.LINK_UU, frame_pb2.MessageFrame(advisory=adv), (dest,)))
