"""Run a scenario: the broker, the world and the agents of every variant, then the result."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from v2x.agents.base import Agent, Environment
from v2x.agents.platform import EdgePlatform
from v2x.agents.roadside import RoadsideUnit
from v2x.agents.vehicle import VehicleAgent
from v2x.apps.thresholds import resolve
from v2x.geodesy import LocalFrame
from v2x.net import topics
from v2x.net.broker import BrokerAddress, broker_for
from v2x.net.clock import make_clock
from v2x.net.host import AgentHost
from v2x.net.transport import LoopbackBroker, LoopbackTransport, MqttTransport, Transport
from v2x.net.world import Observer, RunIdInUse, World, WorldReport, last_will
from v2x.run.results import build_result
from v2x.scenario.geometry import route_for
from v2x.scenario.model import ROAD_USER_KINDS, Scenario
from v2x.scenario.sensors import roadside_coverage
from v2x.scenario.signals import signal_heads

log = logging.getLogger("v2x.run")

Progress = Callable[[str, int, int], None]


REALTIME_MAX_SKIP = 10  # ticks a TickInput may skip in real time (a lost input), never in lockstep


class RunError(RuntimeError):
    """The run could not complete (broker unreachable, an agent stopped answering)."""


# The longest variant suffix ("-baseline") must still leave a valid topic id (1-64 characters).
_LONGEST_SUFFIX = len("-baseline")
RUN_ID_RULE = f"use 1-{64 - _LONGEST_SUFFIX} characters of A-Z a-z 0-9 _ . - (the variant is appended: PREFIX-v2x)"


def valid_run_id_prefix(prefix: str) -> bool:
    """A ``--run-id`` prefix: a topic id that stays one (<= 64 characters) with ``-{variant}`` appended."""
    return topics.valid_id(prefix) and len(prefix) <= 64 - _LONGEST_SUFFIX


def only_variants(scenario: Scenario, variants: Sequence[str]) -> Scenario:
    """The scenario restricted to ``variants`` (in the scenario's order), with only their expectations."""
    unknown = [v for v in variants if v not in scenario.variants]
    if unknown:
        raise ValueError(f"scenario {scenario.id} has no variant {', '.join(unknown)} (it has {scenario.variants})")
    keep = [v for v in scenario.variants if v in variants]
    return scenario.model_copy(
        update={"variants": keep, "expectations": [e for e in scenario.expectations if e.variant in keep]}
    )


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
    heads = signal_heads(scenario)  # the physical signal heads, which drivers see
    for spec in scenario.actors:
        if spec.external:
            continue
        if spec.kind in ROAD_USER_KINDS:
            route = route_for(scenario, spec)
            assert route is not None  # the schema requires a lane or a path
            phantom = route_for(scenario, spec.phantom) if spec.phantom is not None else None
            agents.append(VehicleAgent(spec, route, env, heads, phantom))
        elif spec.kind == "rsu":
            agents.append(RoadsideUnit(spec, scenario, env))
        else:
            agents.append(EdgePlatform(spec, env, roadside_coverage(scenario)))
    return agents


Bus = BrokerAddress | LoopbackBroker  # an MQTT broker's address, or the in-process loopback bus


def make_transport(bus: Bus, client_id: str, will: tuple[str, bytes] | None = None) -> Transport:
    """A connection to ``bus``: an MQTT client of the broker (``will``: its Last Will, published retained),
    or a client of the loopback bus (which has no wills: nothing there outlives the process)."""
    if isinstance(bus, LoopbackBroker):
        return LoopbackTransport(bus, client_id)
    return MqttTransport(bus, client_id, will=will)


def public_broker(spec: str) -> str:
    """``spec`` as result.json and logs may show it: an MQTT URL without its user name and password."""
    if "@" not in spec:
        return spec
    parts = urlsplit(spec)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


@contextlib.asynccontextmanager
async def bus_for(spec: str) -> AsyncIterator[Bus]:
    """``loopback`` -> an in-process bus (no broker, no sockets); otherwise ``broker_for(spec)``."""
    if spec == "loopback":
        yield LoopbackBroker()
    else:
        async with broker_for(spec) as address:
            yield address


async def run_variant(
    scenario: Scenario,
    variant: str,
    *,
    seed: int,
    broker: Bus,
    mode: str = "lockstep",
    progress: Progress | None = None,
    run_id: str | None = None,
    connect_timeout_s: float = 10.0,
    observer: Observer | None = None,
) -> WorldReport:
    run_id = run_id or f"{scenario.id}-{variant}-s{seed}-{secrets.token_hex(3)}"
    token = secrets.token_hex(16)  # the run's Control token (docs/SECURITY.md)
    env = environment(scenario)
    agents = build_agents(scenario, env)
    # Client ids are unique on a broker, and a second connection with one takes over the first: a random
    # part keeps another run (or anyone) from knocking this run's connections off by naming them.
    nonce = secrets.token_hex(4)
    world_tp = make_transport(broker, f"world-{run_id}-{nonce}", will=last_will(scenario, run_id, token))
    agents_tp = make_transport(broker, f"agents-{run_id}-{nonce}")
    clock = make_clock(mode, scenario.tick_s)
    world = World(
        scenario,
        variant=variant,
        seed=seed,
        run_id=run_id,
        transport=world_tp,
        clock=clock,
        progress=(lambda k, n: progress(variant, k, n)) if progress else None,
        observer=observer,
        token=token,
    )
    host = AgentHost(
        agents_tp,
        run_id,
        agents,
        v2x=variant == "v2x",
        token=token,
        n_ticks=scenario.n_ticks,
        max_skip=0 if mode == "lockstep" else REALTIME_MAX_SKIP,
    )
    log.info("run %s: %s [%s] on %s, %d agents, %s clock", run_id, scenario.id, variant, broker.url, len(agents), mode)
    tasks: list[asyncio.Task[Any]] = []
    announced = False
    try:
        ready = asyncio.Event()
        tasks.append(asyncio.create_task(world_tp.run(ready), name="world-transport"))
        try:
            await asyncio.wait_for(ready.wait(), connect_timeout_s)
        except TimeoutError:
            raise RunError(f"cannot reach the MQTT broker at {broker.url} within {connect_timeout_s:.0f} s") from None
        try:
            await world.claim()
        except RunIdInUse as exc:
            announced = True  # that run's Control stays as it is
            raise RunError(str(exc)) from None
        tasks.append(asyncio.create_task(agents_tp.run(), name="agents-transport"))
        host_task = asyncio.create_task(host.run(), name="agents")
        tasks.append(host_task)
        world_task = asyncio.create_task(world.run(), name="world")
        tasks.append(world_task)
        done, _ = await asyncio.wait({world_task, host_task}, return_when=asyncio.FIRST_COMPLETED)
        if world_task not in done and host_task.exception() is not None:
            world_task.cancel()
            failure = host_task.exception()
            announced = True
            await world.announce_stop(f"run error: the agents stopped: {failure!r}")
            raise RunError(f"the agents stopped: {failure!r}") from failure
        await asyncio.wait({world_task})
        try:
            report = world_task.result()
            announced = True
            return report
        except (RuntimeError, TimeoutError) as exc:
            announced = True
            await world.announce_stop(f"run error: {exc}")
            raise RunError(str(exc)) from exc
    except asyncio.CancelledError:
        # Interrupted (SIGINT/SIGTERM: v2x.run.cli): tell the agents and outside stacks before going.
        if not announced:
            announced = True
            await world.announce_stop("interrupted")
        raise
    finally:
        world_tp.stop()
        agents_tp.stop()
        for task in tasks:
            task.cancel()
        # Bounded: a task that swallows its cancellation must not turn a run error into a hang.
        _, stuck = await asyncio.wait(tasks, timeout=5.0) if tasks else (set(), set())
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved, so that asyncio does not log it again at exit
        if stuck:
            log.warning(
                "run %s: tasks still running after cancellation: %s", run_id, sorted(t.get_name() for t in stuck)
            )


async def run_scenario(
    scenario: Scenario,
    *,
    seed: int = 0,
    broker: str = "embedded",
    mode: str = "lockstep",
    progress: Progress | None = None,
    run_id: str | None = None,
    variants: Sequence[str] | None = None,
    observe: Callable[[str, str], Observer | None] | None = None,
) -> dict[str, Any]:
    """Run every variant of a scenario (or only ``variants``) and return the result document (v2x.results).

    ``broker``: ``embedded`` (an in-process amqtt broker), ``mqtt://host:port``, or ``loopback`` (no broker
    at all: the world and the agents talk over an in-process bus, ``v2x.net.transport.LoopbackBroker``).

    Run ids are ``{run_id}-{variant}`` when ``run_id`` is given (so that an outside stack can know them
    before the run), else ``{scenario}-{variant}-s{seed}-{random hex}``. Expectations of variants that are
    not run are not checked. ``observe(variant, run_id)`` gives each variant's World an observer (a
    recorder, a live view; ``v2x.net.world.Observer``) or None.
    """
    if run_id is not None and not valid_run_id_prefix(run_id):
        raise ValueError(f"invalid run id {run_id!r}: {RUN_ID_RULE}")
    if variants is not None:
        scenario = only_variants(scenario, variants)
    started = time.monotonic()
    events: list[dict[str, Any]] = []
    metrics: dict[str, dict[str, Any]] = {}
    run_ids = {}
    async with bus_for(broker) as address:
        for variant in scenario.variants:
            if run_id is not None:
                variant_run_id = f"{run_id}-{variant}"
            else:
                variant_run_id = f"{scenario.id}-{variant}-s{seed}-{secrets.token_hex(3)}"
            observer = observe(variant, variant_run_id) if observe is not None else None
            report = await run_variant(
                scenario,
                variant,
                seed=seed,
                broker=address,
                mode=mode,
                progress=progress,
                run_id=variant_run_id,
                observer=observer,
            )
            events.extend(report.events)
            metrics[variant] = report.metrics
            run_ids[variant] = variant_run_id
    run_info = {
        "broker": public_broker(broker),
        "mode": mode,
        "run_ids": run_ids,
        "wall_seconds": round(time.monotonic() - started, 3),
    }
    return build_result(scenario, seed, events, metrics, run_info)


def warm_up_core(report: Callable[[str], None] | None = None) -> None:
    """Compile (or load from numba's on-disk cache) every kernel a run's world uses before the run's first
    tick (see v2x/run/warmup.py); ``report`` hears the progress when they compile."""
    from v2x.run.warmup import warm_up

    warm_up(report)
