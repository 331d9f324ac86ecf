"""The scenario's actors laid out in the core's ``WorldState``: one slot per actor, in id order.

The layout is part of the run's determinism: slots are assigned in sorted actor-id order, so every draw
that is made per slot (the channel's fan-out, positioning, roadside sensing) is made in the same order for
the same scenario. An actor's object id in the roadside sensors' detections (and so an RSM ptcId) is its
slot + 1.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from v2x.core import ActorKind, WorldState
from v2x.scenario.model import ROAD_USER_KINDS, VEHICLE_KINDS, Scenario

KIND = {
    "car": ActorKind.CAR,
    "truck": ActorKind.TRUCK,
    "bus": ActorKind.BUS,
    "emergency": ActorKind.EMERGENCY,
    "pedestrian": ActorKind.PEDESTRIAN,
    "cyclist": ActorKind.CYCLIST,
    "rsu": ActorKind.RSU,
    "platform": ActorKind.RSU,  # has a slot for addressing; never a PC5 receiver nor on the road
}


def world_state(scenario: Scenario, *, extra: int = 0) -> WorldState:
    """The ground truth at the start of a run: every actor in a slot (sorted by id) with its footprint
    (the scenario's size or its kind's default) and, for fixed actors, its position. ``extra``: room for
    that many more road users (background traffic, ``v2x.sim.background``), so the world never grows."""
    actor_ids = sorted(a.id for a in scenario.actors)
    world = WorldState(capacity=max(8, len(actor_ids) + extra))
    for actor_id in actor_ids:
        spec = scenario.actor(actor_id)
        length, width, _ = spec.box_m
        world.add(actor_id, KIND[spec.kind], length, width)
        if spec.position is not None:
            s = world.slot_of(actor_id)
            world.x[s], world.y[s] = spec.position
    return world


def road_user_slots(scenario: Scenario, world: WorldState) -> NDArray[np.intp]:
    """The slots of the road users (vehicles, pedestrians, cyclists), ascending."""
    slots = np.array([world.slot_of(a.id) for a in scenario.actors if a.kind in ROAD_USER_KINDS], dtype=np.intp)
    slots.sort()
    return slots


def vehicle_slots(scenario: Scenario, world: WorldState) -> list[int]:
    """The slots of the vehicles (cars, trucks, buses, emergency vehicles), ascending."""
    return sorted(world.slot_of(a.id) for a in scenario.actors if a.kind in VEHICLE_KINDS)


def unequipped_ids(scenario: Scenario) -> set[str]:
    """The road users with no OBU (``equipped: false``): they hear nothing and may transmit nothing."""
    return {a.id for a in scenario.actors if not a.equipped}


def pc5_coverage(scenario: Scenario, world: WorldState) -> NDArray[np.float64] | None:
    """Per slot, the PC5 coverage of its own (m): an RSU's declared ``range_m``, inf for everyone else; None when
    no RSU declares one (the fan-out then takes the PC5 profile's range alone, as before)."""
    rsus = [(a.id, float(a.range_m)) for a in scenario.actors if a.kind == "rsu" and a.range_m is not None]
    if not rsus:
        return None
    coverage = np.full(world.capacity, np.inf)
    for actor_id, range_m in rsus:
        coverage[world.slot_of(actor_id)] = range_m
    return coverage
