"""The roadside unit: broadcasts MAP at 1 Hz over PC5 and relays the BSMs it hears to the edge/cloud
platform over the wired backhaul."""

from __future__ import annotations

import math

from v2x.agents.base import Agent, Environment, TickContext, TickResult, Transmission
from v2x.messages import encode_map
from v2x.scenario.model import ActorSpec, Scenario
from v2x.units import enu_yaw_rad_to_compass_deg
from v2x.wire import testbed_pb2

MAP_PERIOD_S = 1.0  # T/CSAE 53: MAP at 1 Hz


class RoadsideUnit(Agent):
    def __init__(self, spec: ActorSpec, scenario: Scenario, env: Environment) -> None:
        super().__init__(spec.id, spec.kind, env)
        assert spec.position is not None
        self.x, self.y = spec.position
        self.range_m = spec.range_m or math.inf
        self._lanes = [
            (
                lane.id,
                list(lane.centerline),
                lane.width_m,
                None if lane.speed_limit_kph is None else lane.speed_limit_kph / 3.6,
            )
            for lane in scenario.road.lanes
        ]
        self._node_id = 1 + sum(ord(c) for c in spec.id) % 65000
        self._msg_count = 0
        self._next_map_s = 0.0
        self.relayed = 0

    def step(self, ctx: TickContext) -> TickResult:
        result = TickResult()
        platform = self.env.platform_id
        if platform:
            for heard in ctx.heard:
                if heard.link == testbed_pb2.LINK_PC5 and heard.frame.WhichOneof("msg") == "bsm":
                    result.transmissions.append(Transmission(testbed_pb2.LINK_WIRED, heard.frame, (platform,)))
                    self.relayed += 1
        if self._lanes and ctx.t_s + 1e-9 >= self._next_map_s:
            self._next_map_s += MAP_PERIOD_S
            frame = encode_map(
                self._lanes,
                node_id=self._node_id,
                name=self.actor_id,
                frame=self.env.frame,
                t_s=ctx.t_s,
                epoch=self.env.epoch,
                msg_count=self._msg_count,
            )
            self._msg_count += 1
            result.transmissions.append(Transmission(testbed_pb2.LINK_PC5, frame))
        result.truth = testbed_pb2.TruthState(x_m=self.x, y_m=self.y, heading_deg=enu_yaw_rad_to_compass_deg(0.0))
        return result
