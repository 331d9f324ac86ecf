"""Run a scenario: the broker, the world and the agents of every variant, then the result."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from v2x.agents.base import Agent, Environment
from v2x.agents.host import AgentHost
from v2x.agents.platform import EdgePlatform
from v2x.agents.roadside import RoadsideUnit
from v2x.agents.vehicle import VehicleAgent
from v2x.apps.thresholds import resolve
from v2x.broker import BrokerAddress, broker_for
from v2x.clock import make_clock
from v2x.results import build_result
from v2x.scenario.geometry import route_for
from v2x.scenario.model import ROAD_USER_KINDS, Scenario
from v2x.transport import Transport
from v2x.units import LocalFrame
from v2x.world import World, WorldReport

log = logging.getLogger("v2x.run")

Progress = Callable[[str, int, int], None]


class RunError(RuntimeError):
    """The run could not complete (broker unreachable, an agent stopped answering)."""


def environment(scenario: Scenario) -> Environment:
    platform = next((a.id for a in scenario.actors if a.kind == "platform"), None)
    return Environment(
        frame=LocalFrame(scenario.origin.lat_deg, scenario.origin.lon_deg, scenario.origin.alt_m),
        epoch=scenario.epoch,
        tick_s=scenario.tick_s,
        platform_id=platform,
        thresholds=resolve(scenario.thresholds),
    )


def build_agents(scenario: Scenario, env: Environment) -> list[Agent]:
    """The built-in agents of a scenario (actors marked ``external`` are left to outside stacks)."""
    agents: list[Agent] = []
    for spec in scenario.actors:
        if spec.external:
            continue
        if spec.kind in ROAD_USER_KINDS:
            route = route_for(scenario, spec)
            assert route is not None  # the schema requires a lane or a path
            agents.append(VehicleAgent(spec, route, env))
        elif spec.kind == "rsu":
            agents.append(RoadsideUnit(spec, scenario, env))
        else:
            agents.append(EdgePlatform(spec, env))
    return agents


async def run_variant(
    scenario: Scenario,
    variant: str,
    *,
    seed: int,
    broker: BrokerAddress,
    mode: str = "lockstep",
    progress: Progress | None = None,
    run_id: str | None = None,
    connect_timeout_s: float = 10.0,
) -> WorldReport:
    run_id = run_id or f"{scenario.id}-{variant}-s{seed}-{secrets.token_hex(3)}"
    env = environment(scenario)
    agents = build_agents(scenario, env)
    world_tp = Transport(broker, f"world-{run_id}")
    agents_tp = Transport(broker, f"agents-{run_id}")
    clock = make_clock(mode, scenario.tick_s)
    world = World(
        scenario,
        variant=variant,
        seed=seed,
        run_id=run_id,
        transport=world_tp,
        clock=clock,
        progress=(lambda k, n: progress(variant, k, n)) if progress else None,
    )
    host = AgentHost(agents_tp, run_id, agents)
    log.info("run %s: %s [%s] on %s, %d agents, %s clock", run_id, scenario.id, variant, broker.url, len(agents), mode)
    tasks: list[asyncio.Task[Any]] = []
    try:
        ready = asyncio.Event()
        tasks.append(asyncio.create_task(world_tp.run(ready), name="world-transport"))
        try:
            await asyncio.wait_for(ready.wait(), connect_timeout_s)
        except TimeoutError:
            raise RunError(f"cannot reach the MQTT broker at {broker.url} within {connect_timeout_s:.0f} s") from None
        tasks.append(asyncio.create_task(agents_tp.run(), name="agents-transport"))
        host_task = asyncio.create_task(host.run(), name="agents")
        tasks.append(host_task)
        world_task = asyncio.create_task(world.run(), name="world")
        done, _ = await asyncio.wait({world_task, host_task}, return_when=asyncio.FIRST_COMPLETED)
        if world_task not in done and host_task.exception() is not None:
            world_task.cancel()
            exc = host_task.exception()
            raise RunError(f"the agents stopped: {exc!r}") from exc
        await asyncio.wait({world_task})
        try:
            return world_task.result()
        except (RuntimeError, TimeoutError) as exc:
            raise RunError(str(exc)) from exc
    finally:
        world_tp.stop()
        agents_tp.stop()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def run_scenario(
    scenario: Scenario,
    *,
    seed: int = 0,
    broker: str = "embedded",
    mode: str = "lockstep",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run every variant of a scenario and return the result document (see v2x.results)."""
    started = time.monotonic()
    events: list[dict[str, Any]] = []
    metrics: dict[str, dict[str, Any]] = {}
    run_ids = {}
    async with broker_for(broker) as address:
        for variant in scenario.variants:
            run_id = f"{scenario.id}-{variant}-s{seed}-{secrets.token_hex(3)}"
            report = await run_variant(
                scenario, variant, seed=seed, broker=address, mode=mode, progress=progress, run_id=run_id
            )
            events.extend(report.events)
            metrics[variant] = report.metrics
            run_ids[variant] = run_id
    run_info = {
        "broker": broker if broker != "embedded" else "embedded",
        "mode": mode,
        "run_ids": run_ids,
        "wall_seconds": round(time.monotonic() - started, 3),
    }
    return build_result(scenario, seed, events, metrics, run_info)
