"""What the report's map draws: the scenario's road and roadside units (:func:`scenario_map`) and where each
road user went in each variant (:class:`Tracks`, an observer of the run). Both go into result.json
(``map``, ``tracks``; docs/RESULTS.md), so that ``v2x report`` can draw a run from its result file alone.

Tracks are the ground truth (the world's state after each tick), sampled every :data:`EVERY_TICKS` ticks,
on every tick where something happens to the actor (a warning, a collision, a stop, ...) and on the last
tick: enough to draw the paths and to put each event where it happened. Read-only: nothing here changes
an outcome.
"""

from __future__ import annotations

from typing import Any

from v2x.run.tap import poses
from v2x.scenario.model import ROAD_USER_KINDS, Scenario
from v2x.sim.simulation import Simulation

__all__ = ["EVERY_TICKS", "Tracks", "scenario_map"]

EVERY_TICKS = 5  # 0.5 s at the usual 100 ms tick
_ACTOR_KEYS = ("target", "actor", "other")


def _pt(p: tuple[float, float]) -> list[float]:
    return [round(float(p[0]), 2), round(float(p[1]), 2)]


def scenario_map(scenario: Scenario) -> dict[str, Any]:
    """The static picture of ``scenario`` in local metres: lanes (centre lines and widths), intersections,
    obstacles, positioning zones, explicit actor paths, the RSUs (position, declared range, sensors) and
    their road events (with their type and hazard radius) and signs."""
    rsus = []
    items = []
    for a in scenario.actors:
        if a.kind != "rsu" or a.position is None:
            continue
        rsus.append(
            {
                "id": a.id,
                "position": _pt(a.position),
                "range_m": a.range_m,
                "sensors": [
                    {"kind": s.kind, "heading_deg": s.heading_deg, "range_m": s.range_m, "fov_deg": s.fov_deg}
                    for s in a.sensors
                ],
            }
        )
        items += [
            {
                "id": e.id,
                "kind": "event",
                "position": _pt(e.position),
                "rsu": a.id,
                "type": e.type,
                "radius_m": e.radius_m,
            }
            for e in a.road_events
        ]
        items += [{"id": s.id, "kind": "sign", "position": _pt(s.position), "rsu": a.id} for s in a.road_signs]
    return {
        "lanes": [
            {"id": lane.id, "centerline": [_pt(p) for p in lane.centerline], "width_m": lane.width_m}
            for lane in scenario.road.lanes
        ],
        "intersections": [
            {"id": i.id, "center": _pt(i.center), "radius_m": i.radius_m} for i in scenario.road.intersections
        ],
        "obstacles": [{"id": o.name, "polygon": [_pt(p) for p in o.polygon]} for o in scenario.obstacles],
        "zones": [{"id": z.name, "kind": z.kind, "polygon": [_pt(p) for p in z.polygon]} for z in scenario.zones],
        "paths": [{"actor": a.id, "path": [_pt(p) for p in a.path]} for a in scenario.actors if a.path],
        "rsus": rsus,
        "rsi": items,
    }


class Tracks:
    """An observer (``v2x.net.world.Observer``) that keeps each road user's path over one variant:
    ``points[actor]`` = ``[[t_s, x_m, y_m], ...]``."""

    def __init__(self) -> None:
        self.points: dict[str, list[list[float]]] = {}

    async def on_tick(self, sim: Simulation, tick: int, events: list[dict[str, Any]]) -> None:
        named: set[str] = set()
        for ev in events:
            named.update(str(ev[k]) for k in _ACTOR_KEYS if k in ev)
            named.update(str(a) for a in ev.get("actors", ()))
        every = tick % EVERY_TICKS == 0 or tick >= sim.n_ticks - 1
        t = round(sim.time_of(tick), 3)
        for p in poses(sim):
            if p.kind in ROAD_USER_KINDS and (every or p.actor in named):
                self.points.setdefault(p.actor, []).append([t, round(p.x_m, 2), round(p.y_m, 2)])
