"""Feeding agents by hand in tests: a tick's context with an RTK fix, the world's simulation on its own, and
a host's route ahead for the on-board apps."""

from __future__ import annotations

from shapely.geometry import Point

from v2x.agents.base import Heard, TickContext
from v2x.apps.registry import RouteAhead
from v2x.scenario.geometry import Route
from v2x.scenario.model import Scenario
from v2x.sim.simulation import Simulation
from v2x.wire import testbed_pb2


def rtk_gnss() -> testbed_pb2.GnssReading:
    """A receiver with an RTK fix: 2 cm per axis."""
    return testbed_pb2.GnssReading(available=True, sigma_major_m=0.02, sigma_minor_m=0.02, state="rtk-fixed")


def tick_ctx(
    tick: int,
    heard: tuple[Heard, ...] = (),
    *,
    dt: float = 0.1,
    detections: tuple[testbed_pb2.Detection, ...] = (),
) -> TickContext:
    """Tick ``tick`` of ``dt`` seconds (time rounded to 1e-9 s, as the clocks do) with an RTK fix."""
    return TickContext(tick=tick, t_s=round(tick * dt, 9), dt_s=dt, gnss=rtk_gnss(), heard=heard, detections=detections)


def offline_sim(scenario: Scenario, variant: str = "v2x") -> Simulation:
    """The world of ``scenario`` with no transport: its ``Simulation``, seed 0, run id ``t``."""
    return Simulation(scenario, variant=variant, seed=0, run_id="t")


def route_ahead(path: list[tuple[float, float]], x: float, y: float) -> RouteAhead:
    """``OnBoardView.route_ahead`` of a host at (``x``, ``y``) on ``path`` (its point nearest the host)."""
    route = Route(path)
    s0 = float(route.line.project(Point(x, y)))

    def ahead(d_m: float) -> tuple[float, float, float]:
        p = route.pose(s0 + d_m)
        return p.x, p.y, p.heading_rad

    return ahead
