"""The roadside unit: broadcasts MAP at 1 Hz and, for signalised intersections, SPAT at 10 Hz from its
fixed-time signal controllers over PC5, and relays the BSMs it hears to the edge/cloud platform over the
wired backhaul."""

from __future__ import annotations

import math

from v2x.agents.base import Agent, Environment, TickContext, TickResult, Transmission
from v2x.messages import MapNode, SignalState, encode_map, encode_spat
from v2x.scenario.model import ActorSpec, Scenario
from v2x.signals import FixedTimeController, approaches, node_id_of
from v2x.units import enu_yaw_rad_to_compass_deg
from v2x.wire import testbed_pb2

MAP_PERIOD_S = 1.0  # T/CSAE 53: MAP at 1 Hz
SPAT_PERIOD_S = 0.1  # T/CSAE 53 Day-1 table: RLVW / GLOSA need SPAT at up to 10 Hz


class RoadsideUnit(Agent):
    def __init__(self, spec: ActorSpec, scenario: Scenario, env: Environment) -> None:
        super().__init__(spec.id, spec.kind, env)
        assert spec.position is not None
        self.x, self.y = spec.position
        self.range_m = spec.range_m or math.inf
        served = [ix for ix in scenario.road.intersections if spec.intersections is None or ix.id in spec.intersections]
        aps = approaches(scenario, [ix.id for ix in served])
        self._nodes = [
            MapNode(
                node_id_of(scenario, ix.id),
                ix.id,
                ix.center[0],
                ix.center[1],
                [a for a in aps if a.intersection == ix.id],
            )
            for ix in served
        ]
        self._nodes = [n for n in self._nodes if n.approaches]
        self.controllers = {
            node_id_of(scenario, ix.id): (ix.id, FixedTimeController(ix.signal))
            for ix in served
            if ix.signal is not None
        }
        self._map_count = 0
        self._spat_count = 0
        self._next_map_s = 0.0
        self._next_spat_s = 0.0
        self.relayed = 0

    def signal_states(self, t_s: float) -> list[SignalState]:
        return [
            SignalState(node_id, name, {p: ctl.timeline(p, t_s) for p in ctl.phase_ids})
            for node_id, (name, ctl) in sorted(self.controllers.items())
        ]

    def step(self, ctx: TickContext) -> TickResult:
        result = TickResult()
        platform = self.env.platform_id
        if platform:
            for heard in ctx.heard:
                if heard.link == testbed_pb2.LINK_PC5 and heard.frame.WhichOneof("msg") == "bsm":
                    result.transmissions.append(Transmission(testbed_pb2.LINK_WIRED, heard.frame, (platform,)))
                    self.relayed += 1
        if self._nodes and ctx.t_s + 1e-9 >= self._next_map_s:
            self._next_map_s += MAP_PERIOD_S
            frame = encode_map(
                self._nodes, frame=self.env.frame, t_s=ctx.t_s, epoch=self.env.epoch, msg_count=self._map_count
            )
            self._map_count += 1
            result.transmissions.append(Transmission(testbed_pb2.LINK_PC5, frame))
        if self.controllers and ctx.t_s + 1e-9 >= self._next_spat_s:
            self._next_spat_s += SPAT_PERIOD_S
            frame = encode_spat(
                self.signal_states(ctx.t_s),
                t_s=ctx.t_s,
                epoch=self.env.epoch,
                msg_count=self._spat_count,
                name=self.actor_id,
            )
            self._spat_count += 1
            result.transmissions.append(Transmission(testbed_pb2.LINK_PC5, frame))
        result.truth = testbed_pb2.TruthState(x_m=self.x, y_m=self.y, heading_deg=enu_yaw_rad_to_compass_deg(0.0))
        return result
