"""Naming the other party of a warning: what an app calls it (``Advisory.other_id``) -> the scenario's name.

Apps only know what they heard on the air, so they name the other party by its over-the-air identity:

* a BSM sender by its temporary id (hex): ``v2x.wire.envelope.temporary_id(actor id)``;
* a participant of a roadside unit's RSM (or SSM) by ``{rsm id hex}/{ptcId}``; the ptcId is the world's
  object id of the road user (its slot + 1, see ``v2x.sim.actors``);
* an RSI road event by ``{rsi id hex}/rte{rteId}`` and an RSI road sign by ``{rsi id hex}/rts{rtsId}``
  (ids from 1 in the RSU's file order; an RSU's congestion watches, TJW, number their events after its
  road events).

The world records warnings under the scenario's names (actor ids, road event and sign ids), which the
expectations refer to. Anything it cannot resolve is kept as the app wrote it.
"""

from __future__ import annotations

from v2x.core import WorldState
from v2x.scenario.model import Scenario
from v2x.wire.envelope import parse_participant_key, temporary_id
from v2x.wire.rsi import road_event_key, road_sign_key


class Names:
    """The name resolver of one run: the scenario's actors, laid out in ``world`` (slot = object id - 1)."""

    def __init__(self, scenario: Scenario, world: WorldState) -> None:
        self.world = world
        self.n_actors = len(scenario.actors)
        self.temp_ids = {temporary_id(a.id).hex(): a.id for a in scenario.actors}
        # RSI road events and road signs as apps name them -> the scenario's event / sign id.
        self.road_event_ids = {
            road_event_key(temporary_id(a.id), k): ev.id
            for a in scenario.actors
            for k, ev in enumerate(a.road_events, start=1)
        }
        # An RSU's congestion watches (TJW) announce their events after its road events.
        self.road_event_ids.update(
            {
                road_event_key(temporary_id(a.id), len(a.road_events) + k): watch.id
                for a in scenario.actors
                for k, watch in enumerate(a.congestion, start=1)
            }
        )
        self.road_event_ids.update(
            {
                road_sign_key(temporary_id(a.id), k): sign.id
                for a in scenario.actors
                for k, sign in enumerate(a.road_signs, start=1)
            }
        )

    def add(self, road_user_id: str) -> None:
        """A road user that joined during the run (background traffic): its BSM id resolves to it."""
        self.temp_ids[temporary_id(road_user_id).hex()] = road_user_id

    def resolve(self, other_id: str) -> str:
        """The scenario's name for what an app calls ``other_id``: an actor id (for a BSM id or an RSM
        participant), a road event or road sign id (for an RSI key), or ``other_id`` itself."""
        if other_id in self.temp_ids:
            return self.temp_ids[other_id]
        if other_id in self.road_event_ids:
            return self.road_event_ids[other_id]
        parsed = parse_participant_key(other_id)
        if parsed is not None and 1 <= parsed[1] <= self.n_actors:
            return self.world.id_of(parsed[1] - 1)
        # A background vehicle (a slot after the actors'), if it is still on the road.
        if parsed is not None and self.n_actors < parsed[1] <= self.world.capacity and self.world.active[parsed[1] - 1]:
            return self.world.id_of(parsed[1] - 1)
        return other_id
