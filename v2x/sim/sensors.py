"""What the actors' sensors report about the ground truth, sans-I/O: each road user's GNSS reading (the
positioning model, ``v2x.impair.PositioningModel``) and each RSU's roadside detections
(``v2x.sim.sensing.RoadsideSensing``), as the protobuf messages a ``TickInput`` carries.

``Sensors.step(t)`` takes the truth at ``t`` (just reported) and makes the readings the agents get with
the next tick's input. Its draws: the roadside sensors first (from ``rng_sense``), then the positioning
model for every road user in slot order (from ``rng_pos``), unequipped ones included (so that equipping a
road user does not shift anyone else's noise). It also returns a ``positioning`` event whenever an equipped
road user's receiver changes state (e.g. rtk-fixed to rtk-float, dead-reckoning in a tunnel, no-fix).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from v2x.core import WorldState
from v2x.impair import PositioningModel, Zone
from v2x.scenario.geometry import polygon
from v2x.scenario.model import Scenario
from v2x.sim.radar import forward_radar
from v2x.sim.sensing import RoadsideSensing, Targets
from v2x.units import us_of
from v2x.wire import testbed_pb2

SENSOR_KIND = {
    "camera": testbed_pb2.SENSOR_CAMERA,
    "radar": testbed_pb2.SENSOR_RADAR,
    "lidar": testbed_pb2.SENSOR_LIDAR,
}

Event = dict[str, Any]


class Sensors:
    """The positioning receivers of the road users and the roadside sensors of the RSUs, over ``world``."""

    def __init__(
        self,
        world: WorldState,
        scenario: Scenario,
        variant: str,
        *,
        road_users: NDArray[np.intp],
        unequipped: set[str],
        rng_pos: np.random.Generator,
        rng_sense: np.random.Generator,
    ) -> None:
        """``road_users``: their slots, ascending (the order of the draws); ``unequipped``: road users with
        no receiver to report on (they still take their draws)."""
        self.world = world
        self.variant = variant
        self.tick_s = scenario.tick_s
        self.road_users = road_users
        self.unequipped = unequipped
        ru_ids = [world.id_of(int(s)) for s in road_users]
        profiles = [scenario.actor(a).positioning or scenario.positioning for a in ru_ids]
        zones = [Zone(z.name, z.kind, polygon(list(z.polygon))) for z in scenario.zones]
        self.positioning = PositioningModel(profiles, zones, rng_pos)
        # Roadside sensors: the RSUs' sensors look at the road users; object id = slot + 1 (stable per run).
        rsus = [
            (a.id, a.position, a.sensors)
            for a in scenario.actors
            if a.kind == "rsu" and a.sensors and a.position is not None
        ]
        obstacles = [polygon(list(o.polygon)) for o in scenario.obstacles]
        self.roadside = RoadsideSensing(rsus, obstacles, rng_sense) if rsus else None
        self.road_user_kinds = [scenario.actor(a).kind for a in ru_ids]
        self.gnss: dict[str, testbed_pb2.GnssReading] = {}  # actor -> its latest reading
        # Forward views (v2x.sim.radar), by slot, in slot order: platoon vehicles' radars and attentive
        # drivers' eyes (v2x/apps/driver.py, rule 4).
        self.radars = sorted(
            world.slot_of(a.id)
            for a in scenario.actors
            if a.platoon is not None or (a.driver is not None and a.driver.attentive)
        )
        # Background traffic (v2x.sim.background): its vehicles' slots (ascending) and kinds, now; the roadside
        # sensors see them after the actors.
        self.background: Callable[[], tuple[NDArray[np.intp], list[str]]] | None = None
        # RSU -> its latest frames' detections; a platoon vehicle or attentive driver -> its forward view's.
        self.detections: dict[str, list[testbed_pb2.Detection]] = {}
        # The RSUs' lists of ``detections`` whose numbers are known finite, from what they were built of (looked
        # at there, cheaper than in the TickInput: ``detections_checked``).
        self._checked: dict[str, list[testbed_pb2.Detection]] = {}

    def step(self, t: float) -> list[Event]:
        """Read the sensors on the truth at ``t``: updates ``detections`` and ``gnss`` (used from the next
        tick on) and returns the positioning-state changes."""
        if self.roadside is not None:
            self.detections = self.roadside_detections(t)
        if self.radars:
            radar = forward_radar(self.world, self.radars, *self.seen(), t)
            self.detections = {**self.detections, **radar} if self.roadside is not None else radar
        return self.read_positioning(t)

    def read_positioning(self, t: float) -> list[Event]:
        """Every road user's GNSS reading at ``t``; a ``positioning`` event (timed at the next tick, when the
        reading is first used) for each equipped one whose receiver state changed."""
        out: list[Event] = []
        w = self.world
        slots = self.road_users
        xy = np.stack([w.x[slots], w.y[slots]], axis=1)
        speed = np.hypot(w.vx[slots], w.vy[slots])
        fixes = self.positioning.step(t, self.tick_s, xy, speed)
        for k, s in enumerate(slots.tolist()):
            actor_id = w.id_of(s)
            previous = self.gnss.get(actor_id)
            # An unequipped road user has no receiver to report on (its slot in the model keeps the draws).
            if (previous is None or previous.state != fixes.state[k]) and actor_id not in self.unequipped:
                sigma = float(fixes.sigma_major_m[k])
                out.append(
                    {
                        "t_s": round(t + self.tick_s, 3),  # the reading is used from the next tick on
                        "type": "positioning",
                        "variant": self.variant,
                        "actor": actor_id,
                        "state": fixes.state[k],
                        "sigma_m": round(sigma, 3) if np.isfinite(sigma) else None,
                    }
                )
            self.gnss[actor_id] = testbed_pb2.GnssReading(
                east_error_m=float(fixes.error_en[k, 0]),
                north_error_m=float(fixes.error_en[k, 1]),
                sigma_major_m=float(fixes.sigma_major_m[k]),
                sigma_minor_m=float(fixes.sigma_minor_m[k]),
                state=fixes.state[k],
                available=bool(fixes.available[k]),
            )
        return out

    def seen(self) -> tuple[NDArray[np.intp], list[str]]:
        """What sensors can see: the road users' slots and kinds, then the background vehicles' on the road."""
        slots = self.road_users
        kinds: list[str] = list(self.road_user_kinds)
        if self.background is not None:
            extra, extra_kinds = self.background()
            slots = np.concatenate([slots, extra]).astype(np.intp)
            kinds = [*kinds, *extra_kinds]
        return slots, kinds

    def detections_checked(self, actor_id: str) -> bool:
        """Whether ``actor_id``'s ``detections`` are a list :meth:`roadside_detections` built and found finite (a
        TickInput's net, ``tick_input_problem``, need not look at them again: diff review 25)."""
        found = self.detections.get(actor_id)
        return found is not None and self._checked.get(actor_id) is found

    def roadside_detections(self, t: float) -> dict[str, list[testbed_pb2.Detection]]:
        """The roadside sensors' frames at ``t``, per RSU (none without roadside sensors). Each RSU's list whose
        numbers are all finite (their sum is: a NaN or an infinity stays in it) is noted for
        :meth:`detections_checked`."""
        self._checked = {}
        if self.roadside is None:
            return {}
        w = self.world
        slots, kinds = self.seen()
        targets = Targets(
            object_id=slots.astype(np.int64) + 1,
            kind=kinds,
            x=w.x[slots],
            y=w.y[slots],
            vx=w.vx[slots],
            vy=w.vy[slots],
            heading_rad=w.heading_rad[slots],
            length_m=w.length_m[slots],
            width_m=w.width_m[slots],
        )
        found = self.roadside.step(t, targets)
        out = {
            rsu: [
                testbed_pb2.Detection(
                    object_id=d.object_id,
                    sensor=d.sensor,
                    sensor_kind=SENSOR_KIND[d.sensor_kind],
                    object_kind=d.object_kind,
                    time_us=us_of(d.t_s),
                    x_m=d.x,
                    y_m=d.y,
                    vx_mps=d.vx,
                    vy_mps=d.vy,
                    heading_deg=d.heading_deg,
                    length_m=d.length_m,
                    width_m=d.width_m,
                    sigma_m=d.sigma_m,
                    speed_sigma_mps=d.speed_sigma_mps,
                )
                for d in ds
            ]
            for rsu, ds in found.items()
        }
        for rsu, ds in found.items():
            numbers = (d.x + d.y + d.vx + d.vy + d.heading_deg + d.length_m + d.width_m + d.sigma_m for d in ds)
            if math.isfinite(sum(numbers) + sum(d.speed_sigma_mps for d in ds)):
                self._checked[rsu] = out[rsu]
        return out


class BackgroundPositioning:
    """The receivers of the equipped background vehicles of the flows that name a ``positioning`` profile
    (docs/SCENARIOS.md "Background traffic"), for the fleets' BSMs.

    One ``PositioningModel`` per profile named, over every background slot of the world (``first_slot`` to the
    world's capacity), advanced together once a tick (``step``): a fixed number of draws per tick whatever
    the traffic, from the run's own generator ``rng``, so a vehicle's readings depend on the scenario, variant
    and seed only, never on how the vehicles are spread over fleets. A vehicle taking a slot (``enter``)
    restarts that slot's receiver in its flow's profile's model (converged, fresh noise). ``reading(slots)``
    gives the latest error to add to the truth and the 1-sigma accuracy; 0 accuracy where there is none to
    state (a flow without a profile, or no fix: the BSM then carries the truth with the accuracy unknown, as
    a story vehicle's does without a fix)."""

    def __init__(self, scenario: Scenario, world: WorldState, *, first_slot: int, rng: np.random.Generator) -> None:
        self.world = world
        self.tick_s = float(scenario.tick_s)
        self.first = first_slot
        names = sorted({f.positioning for f in scenario.flows if f.positioning is not None})
        self.profile_of_flow = np.array(
            [names.index(f.positioning) if f.positioning is not None else -1 for f in scenario.flows], dtype=np.int64
        )
        n = world.capacity - first_slot
        zones = [Zone(z.name, z.kind, polygon(list(z.polygon))) for z in scenario.zones]
        self.models = [PositioningModel([name] * n, zones, rng) for name in names]
        self.profile_of_row = np.full(n, -1, dtype=np.int64)  # per background slot: its vehicle's profile
        self.error_en = np.zeros((n, 2))
        self.sigma_major_m = np.zeros(n)
        self.sigma_minor_m = np.zeros(n)

    def enter(self, slots: NDArray[np.intp], flows: NDArray[np.int64]) -> None:
        """Vehicles of ``flows`` took ``slots`` (in that order): their receivers start afresh."""
        rows = np.asarray(slots, dtype=np.intp) - self.first
        profile = self.profile_of_flow[np.asarray(flows, dtype=np.int64)]
        self.profile_of_row[rows] = profile
        for p, model in enumerate(self.models):
            model.restart(rows[profile == p])

    def step(self, t: float) -> None:
        """Every background slot's receiver reads the truth at ``t`` (used in the next tick's FleetInput)."""
        w = self.world
        slots = np.arange(self.first, w.capacity)
        xy = np.stack([w.x[slots], w.y[slots]], axis=1)
        speed = np.hypot(w.vx[slots], w.vy[slots])
        err, major, minor = (
            np.zeros_like(self.error_en),
            np.zeros_like(self.sigma_major_m),
            np.zeros_like(self.sigma_minor_m),
        )
        for p, model in enumerate(self.models):
            fixes = model.step(t, self.tick_s, xy, speed)
            mine = (self.profile_of_row == p) & fixes.available
            err[mine] = fixes.error_en[mine]
            major[mine] = fixes.sigma_major_m[mine]
            minor[mine] = fixes.sigma_minor_m[mine]
        self.error_en, self.sigma_major_m, self.sigma_minor_m = err, major, minor

    def reading(self, slots: NDArray[np.intp]) -> list[NDArray[np.float64]]:
        """The latest readings of ``slots``: east error, north error, sigma major, sigma minor (FleetVehicle
        fields 14 to 17)."""
        rows = np.asarray(slots, dtype=np.intp) - self.first
        return [self.error_en[rows, 0], self.error_en[rows, 1], self.sigma_major_m[rows], self.sigma_minor_m[rows]]
