"""The edge/cloud platform: keeps the latest state of every road user it hears of (over Uu from the
vehicles, or relayed by RSUs over the backhaul), runs conflict detection over all of them every tick,
and sends warnings to the vehicles concerned over Uu."""

from __future__ import annotations

import math

from v2x.agents.base import Agent, Environment, Heard, TickContext, TickResult, Transmission
from v2x.apps.collision import Participant, intersection_collision
from v2x.messages import RemoteState
from v2x.scenario.model import ActorSpec
from v2x.wire import frame_pb2, testbed_pb2


class EdgePlatform(Agent):
    def __init__(self, spec: ActorSpec, env: Environment) -> None:
        super().__init__(spec.id, spec.kind, env)
        self.apps = set(spec.apps)
        self.known: dict[bytes, RemoteState] = {}
        self.address: dict[bytes, str] = {}  # temporary id -> actor id reachable over Uu
        self._sent_until: dict[tuple[str, str], float] = {}

    def step(self, ctx: TickContext) -> TickResult:
        t = ctx.t_s
        self.receive(ctx.heard, lambda heard: self._on_heard(heard, t))
        max_age = self.env.thresholds["max_age_s"]
        self.known = {k: r for k, r in self.known.items() if t - r.t_s <= max_age}
        result = TickResult()
        if "icw" in self.apps and len(self.known) >= 2:
            participants = [Participant.from_remote(k.hex(), r, t) for k, r in sorted(self.known.items())]
            for f in intersection_collision(participants, self.env.thresholds):
                a, b = bytes.fromhex(f.subject), bytes.fromhex(f.other)
                for target, other, t_own in ((a, b, f.t_conflict_subject_s), (b, a, f.t_conflict_other_s)):
                    self._advise(result, t, target, other, f.kind, t_own, f.pet_s)
        return result

    def _on_heard(self, heard: Heard, t: float) -> None:
        if heard.frame.WhichOneof("msg") != "bsm":
            return
        remote = self.env.bsm(heard, t)
        if remote is None:
            return
        if heard.link == testbed_pb2.LINK_UU:
            self.address[remote.temp_id] = heard.sender_id
        known = self.known.get(remote.temp_id)
        if known is None or remote.t_s > known.t_s:
            self.known[remote.temp_id] = remote

    def _advise(
        self, result: TickResult, t: float, target: bytes, other: bytes, kind: str, ttc: float, pet: float
    ) -> None:
        dest = self.address.get(target)
        if dest is None:
            return  # not reachable over Uu
        other_name = self.address.get(other, other.hex())
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
