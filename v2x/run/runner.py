"""Run a scenario: the broker, the world and the agents of every variant, then the result."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from v2x.agents.base import Agent, Environment
from v2x.agents.fleet import FleetAgent
from v2x.agents.platform import EdgePlatform
from v2x.agents.roadside import RoadsideUnit
from v2x.agents.vehicle import VehicleAgent
from v2x.apps.thresholds import resolve
from v2x.argtypes import JOIN_TIMEOUT_S, RUN_ID_RULE, random_run_id, valid_run_id_prefix
from v2x.files import replace_whole
from v2x.geodesy import LocalFrame
from v2x.net import transport
from v2x.net.broker import BrokerAddress, EmbeddedSecurity, broker_for, parse_broker_url, redacted_url
from v2x.net.clock import make_clock
from v2x.net.fleet import FleetHost
from v2x.net.host import AgentHost
from v2x.net.seal import RunSeal
from v2x.net.secure import RunKeys, SecureDirError, Security, load_secure_dir, make_tls, new_run_keys
from v2x.net.transport import (
    LastWill,
    LoopbackBroker,
    LoopbackTransport,
    MqttTransport,
    Transport,
    broker_lost,
    cannot_reach,
)
from v2x.net.world import Observer, RunIdInUse, World, WorldReport, last_will
from v2x.run.results import build_result
from v2x.run.tap import Observers
from v2x.run.tracks import Tracks, scenario_map
from v2x.run.workers import (
    Dismissal,
    FleetWorkers,
    RemoteFleets,
    WorkerFailed,
    fleet_job,
    steady_loop,
    worker_command,
)
from v2x.scenario.geometry import lane_routes, route_for
from v2x.scenario.model import ROAD_USER_KINDS, Scenario
from v2x.scenario.sensors import roadside_coverage
from v2x.scenario.signals import signal_heads
from v2x.sim.simulation import fleet_ids_for
from v2x.sim.sumo import SumoError
from v2x.wire.security import (
    PSEUDONYM_CHANGE_S,
    EnvelopeSecurity,
    Signer,
    authority_for,
    permissions_for,
)

log = logging.getLogger("v2x.run")

Progress = Callable[[str, int, int], None]


class RunError(RuntimeError):
    """The run could not complete (broker unreachable, an agent stopped answering)."""


@dataclass(frozen=True)
class Signing:
    """A secure run's signing options (``v2x run --secure``; docs/SECURITY.md): every variant gets its own CA,
    every equipped actor a pool of pseudonym certificates (the next one every ``change_every_s`` of
    simulation time), every envelope is signed, and the world and every built-in receiver verify.
    ``credentials_dir``: where the credentials of the actors driven from outside are written, as
    ``{credentials_dir}/{run_id}/{actor}.cred`` (docs/PROTOCOL.md "Signed envelopes"), before the run waits
    for them to join."""

    credentials_dir: Path | None = None
    change_every_s: float = PSEUDONYM_CHANGE_S


@dataclass
class SigningKeys:
    """What a signed run of one variant hands the world and the agents: the receivers' checks and each
    built-in agent's signer."""

    checks: EnvelopeSecurity
    signers: dict[str, Signer]
    files: list[Path]
    fleets: dict[str, bytes] = field(default_factory=dict)  # fleet -> its Credentials (serialised)


def issue_keys(scenario: Scenario, run_id: str, security: Signing, fleets: Sequence[str] = ()) -> SigningKeys:
    """A fresh CA for the run ``run_id`` of ``scenario``, pseudonyms for each equipped actor, and the
    credentials files of the external ones (written, owner-only, under ``security.credentials_dir``).
    Each of ``fleets`` gets a pool of road users' pseudonyms too, with which its vehicles sign their BSMs."""
    run_s = (scenario.n_ticks + 1) * scenario.tick_s
    ca = authority_for(run_id, scenario.epoch, run_s)
    signers: dict[str, Signer] = {}
    files: list[Path] = []
    fleet_creds = {
        fleet_id: ca.credentials(
            fleet_id,
            run_id=run_id,
            epoch=scenario.epoch,
            run_s=run_s,
            permissions=permissions_for("car"),  # (a fleet's vehicles are road users)
            change_every_s=security.change_every_s,
        ).SerializeToString()
        for fleet_id in fleets
    }
    for spec in scenario.actors:
        if not spec.equipped:
            continue
        creds = ca.credentials(
            spec.id,
            run_id=run_id,
            epoch=scenario.epoch,
            run_s=run_s,
            permissions=permissions_for(spec.kind),
            change_every_s=security.change_every_s,
        )
        if not spec.external:
            signers[spec.id] = Signer(creds, scenario.epoch)
        elif security.credentials_dir is not None:
            folder = security.credentials_dir / run_id
            folder.mkdir(parents=True, exist_ok=True)
            # (a new file renamed over the name: ACTOR.tmp, opened with O_CREAT | O_TRUNC, was written through a
            # symlink or into a file someone else had made there: attack review 3)
            files.append(replace_whole(folder / f"{spec.id}.cred", creds.SerializeToString(), 0o600))
    return SigningKeys(EnvelopeSecurity.of(ca.root, scenario.epoch), signers, files, fleet_creds)


def fixed_run_ids(prefix: str, variants: Sequence[str]) -> dict[str, str]:
    """The run id of each variant of a run given ``--run-id PREFIX``: ``PREFIX-{variant}`` (what an outside
    stack joins: docs/PROTOCOL.md)."""
    return {v: f"{prefix}-{v}" for v in variants}


def outside_stacks(scenario: Scenario) -> list[str]:
    """The actors of ``scenario`` driven by outside stacks (``external: true``)."""
    return [a.id for a in scenario.actors if a.external]


def only_variants(scenario: Scenario, variants: Sequence[str]) -> Scenario:
    """The scenario restricted to ``variants`` (in the scenario's order). Its expectations stay, so that what
    the world measures for them in every variant (the passage points of ``speed`` and ``travel_time``) is
    measured as in a run of every variant: a ``saves_s`` of the v2x variant needs the baseline's passages, and
    a baseline run alone had none (`pytest scenarios/urban-grid.yaml`'s baseline item failed: "car_g: no
    longer passes"). Only those of the variants run are judged (:func:`v2x.run.results.evaluate`)."""
    unknown = [v for v in variants if v not in scenario.variants]
    if unknown:
        raise ValueError(
            f"scenario {scenario.id} has no variant {', '.join(unknown)} (it has {', '.join(scenario.variants)})"
        )
    return scenario.model_copy(update={"variants": [v for v in scenario.variants if v in variants]})


def environment(scenario: Scenario) -> Environment:
    platform = next((a.id for a in scenario.actors if a.kind == "platform"), None)
    return Environment(
        frame=LocalFrame(scenario.origin.lat_deg, scenario.origin.lon_deg, scenario.origin.alt_m),
        epoch=scenario.epoch,
        tick_s=scenario.tick_s,
        platform_id=platform,
        thresholds=resolve(scenario.thresholds),
        kinds={a.id: a.kind for a in scenario.actors},
    )


def build_agents(scenario: Scenario, env: Environment) -> list[Agent]:
    """The built-in agents of a scenario (actors marked ``external`` are left to outside stacks)."""
    agents: list[Agent] = []
    heads = signal_heads(scenario)  # the physical signal heads, which drivers see
    numbers = {lane.id: k for k, lane in enumerate(scenario.road.lanes, start=1) if k <= 255}  # VIR targetLane
    for spec in scenario.actors:
        if spec.external:
            continue
        if spec.kind in ROAD_USER_KINDS:
            route = route_for(scenario, spec)
            assert route is not None  # the schema requires a lane or a path
            targets = {ev.lane for ev in spec.events if ev.lane is not None}
            phantom = route_for(scenario, spec.phantom) if spec.phantom is not None else None
            agents.append(
                VehicleAgent(
                    spec,
                    route,
                    env,
                    heads,
                    lanes=lane_routes(scenario, targets),
                    phantom_route=phantom,
                    lane_numbers=numbers,
                )
            )
        elif spec.kind == "rsu":
            agents.append(RoadsideUnit(spec, scenario, env))
        else:
            agents.append(EdgePlatform(spec, env, roadside_coverage(scenario)))
    return agents


Bus = BrokerAddress | LoopbackBroker  # an MQTT broker's address, or the in-process loopback bus


def make_transport(bus: Bus, client_id: str, will: LastWill | None = None) -> Transport:
    """A connection to ``bus``: an MQTT client of the broker (``will``: its Last Will, published retained),
    or a client of the loopback bus (which has no wills: nothing there outlives the process)."""
    if isinstance(bus, LoopbackBroker):
        return LoopbackTransport(bus, client_id)
    return MqttTransport(bus, client_id, will=will)


def public_broker(spec: str) -> str:
    """``spec`` as result.json and logs may show it: an MQTT URL without its user name and password."""
    if "@" not in spec:
        return spec
    try:
        parts = urlsplit(spec)
    except ValueError:
        return redacted_url(spec)
    if "@" not in parts.netloc:  # (a '/' in the password: not a URL parse_broker_url takes)
        return redacted_url(spec)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


#: A lockstep run over an outside broker whose process sat idle longer than this per tick gets a note.
IDLE_NOTE_MS = 20.0


def idle_note(
    scenario: Scenario,
    result: dict[str, Any],
    broker: str,
    idle_s: float,
    cpu_s: float,
    *,
    mode: str = "lockstep",
    workers: int = 1,
    remote_workers: bool = False,
) -> str | None:
    """A note when a lockstep run's process sat idle (``idle_s``: wall time less its CPU time ``cpu_s``) for
    more than :data:`IDLE_NOTE_MS` per tick and more than twice its CPU time, waiting on the broker: a
    broker with Nagle's algorithm on answers each lockstep round trip about 40 ms late (the delayed ACK it
    waits for), which makes a run 5-20 times slower. (A process that waited for a busy machine's CPU
    instead waits about as long as it computes.) None as well when the idle time need not be the broker's: a
    real-time run, an in-process bus, outside stacks or fleet worker processes to wait for, or a run that
    reconnected (``run.reconnects``: the wait was the broker's outage, not Nagle's; an attack review)."""
    alone = (
        mode == "lockstep"
        and not result.get("run", {}).get("reconnects")
        and broker not in ("embedded", "loopback")
        and not any(a.external for a in scenario.actors)
        and not remote_workers
        and workers == 1
    )
    if not alone:
        return None
    ticks = sum(float(m.get("sim_seconds", 0.0)) for m in result["metrics"].values()) / float(scenario.tick_s)
    if ticks < 10 or idle_s / ticks * 1e3 < IDLE_NOTE_MS or idle_s < 2.0 * cpu_s:
        return None
    return (
        f"this process waited {idle_s / ticks * 1e3:.0f} ms per tick for the broker at {public_broker(broker)}; "
        "a broker with Nagle's algorithm on adds about 40 ms to every lockstep round trip "
        "(Mosquitto: set_tcp_nodelay true, as docker/mosquitto.conf has)"
    )


@contextlib.asynccontextmanager
async def bus_for(spec: str, security: EmbeddedSecurity | None = None) -> AsyncIterator[Bus]:
    """``loopback`` -> an in-process bus (no broker, no sockets); otherwise ``broker_for(spec, security)``."""
    if spec == "loopback":
        yield LoopbackBroker()
    else:
        async with broker_for(spec, security) as address:
            yield address


@dataclass(frozen=True)
class SecureRun:
    """A secure run's users (``keys``) and, for the embedded broker, what it enforces (``embedded``)."""

    keys: RunKeys
    embedded: EmbeddedSecurity | None


@contextlib.contextmanager
def secure_run(
    scenario: Scenario, security: Security, broker: str, run_prefix: str | None, run_ids: dict[str, str]
) -> Iterator[SecureRun]:
    """The users, passwords, grants and TLS files of a ``--secure`` run of ``run_ids`` (variant -> run id):
    from ``security.directory`` (``v2x secure init``), or made now for the embedded broker (the CA and the
    server's key live in a private temporary directory for the run and are deleted after it)."""
    if broker == "loopback":
        raise SecureDirError("--secure needs a broker (embedded or mqtts://...): the loopback bus has no users")
    if security.directory is not None:
        sd = load_secure_dir(security.directory)
        if sd.keys.scenario_id != scenario.id:
            raise SecureDirError(
                f"{security.directory} was made for scenario {sd.keys.scenario_id!r}, not {scenario.id!r}"
            )
        if run_prefix is not None and run_prefix != sd.run_prefix:
            raise SecureDirError(f"{security.directory} was made for --run-id {sd.run_prefix!r}, not {run_prefix!r}")
        if missing := [a.id for a in scenario.actors if a.id not in sd.keys.actors]:
            raise SecureDirError(f"{security.directory} has no credentials for actor(s) {', '.join(missing)}")
        if missing := [v for v in run_ids if v not in sd.keys.run_ids]:
            raise SecureDirError(f"{security.directory} has no run id for variant {', '.join(map(repr, missing))}")
        embedded = None
        if broker == "embedded":
            files = (str(security.directory / "server.crt"), str(security.directory / "server.key"))
            embedded = sd.keys.embedded(files if security.tls else None)
        yield SecureRun(sd.keys, embedded)
        return
    if broker != "embedded":
        raise SecureDirError(
            "--secure with a broker of your own needs --secure-dir DIR (write it with 'v2x secure init', "
            "start the broker with DIR/mosquitto.conf)"
        )
    tls = make_tls() if security.tls else None
    keys = new_run_keys(
        scenario.id, run_prefix or next(iter(run_ids.values())), run_ids, [a.id for a in scenario.actors],
        tls.ca_pem if tls else None,
    )  # fmt: skip
    if tls is None:
        yield SecureRun(keys, keys.embedded())
        return
    with tempfile.TemporaryDirectory(prefix="v2x-secure-") as tmp:  # mode 0700
        cert, key = Path(tmp) / "server.crt", Path(tmp) / "server.key"
        cert.write_text(tls.cert_pem)
        key.touch(mode=0o600)
        key.write_text(tls.key_pem)
        yield SecureRun(keys, keys.embedded((str(cert), str(key))))


async def run_variant(
    scenario: Scenario,
    variant: str,
    *,
    seed: int,
    broker: Bus,
    mode: str = "lockstep",
    progress: Progress | None = None,
    run_id: str | None = None,
    connect_timeout_s: float | None = None,
    observer: Observer | None = None,
    keys: RunKeys | None = None,
    signing: Signing | None = None,
    workers: int = 1,
    remote_workers: bool = False,
    worker_timeout_s: float = 120.0,
    join_timeout_s: float = JOIN_TIMEOUT_S,
    fixed_run_id: bool = False,
    sealed: bool = True,
    worker_key: bytes = b"",
) -> WorldReport:
    """One variant's run. ``keys``: a secure run's users; the world and each built-in agent then log in
    as themselves, each agent on a connection of its own (the broker lets it write only its own topics).
    ``signing``: every envelope signed, verified by the world and every built-in receiver. ``workers``:
    with more than one, the equipped background vehicles are spread over that many fleet agents, each in a
    process of its own with its own connection to the broker (``v2x.run.workers``). ``remote_workers``:
    start none of them but wait up to ``worker_timeout_s`` for ``workers`` fleet workers started with
    ``v2x worker`` (on this or other machines) to join. ``join_timeout_s``: how long the world waits for the
    actors driven from outside to say Hello. ``fixed_run_id``: ``run_id`` was given, not drawn (``World.claim``
    then also listens for a live world whose START someone cleared). ``sealed``: the messages between the
    world and the agents and fleets it starts carry the run's seals (``v2x.net.seal``; a message on their
    topics without one is ``forged``); False leaves them open as an outside stack's are, for tests of what the
    world's and the agents' own checks withstand. ``worker_key``: remote workers hold it too (``--seal-key``):
    the world admits them with the run's seal key (``RemoteFleets``), and their fleets are sealed as its own."""
    if connect_timeout_s is None:  # (read when called: tests shorten it)
        connect_timeout_s = transport.BROKER_WAIT_S
    if (workers > 1 or remote_workers) and isinstance(broker, LoopbackBroker):
        raise RunError("--workers needs an MQTT broker (embedded or mqtt://...): the loopback bus is in-process")
    from v2x.scenario.sumo import cannot_run

    if (why := cannot_run(scenario)) is not None:  # the commands say so before they start; this is the last word
        raise RunError(f"{scenario.id}: {why}")
    run_id = run_id or random_run_id(scenario.id, variant, seed, secrets.token_hex(3))
    token = secrets.token_hex(16)  # the run's Control token (docs/SECURITY.md)
    seal = RunSeal() if sealed else None  # between the world and the agents and fleets this run starts
    env = environment(scenario)
    agents = build_agents(scenario, env)
    fleet_ids = fleet_ids_for(scenario, variant, workers)
    if remote_workers and fleet_ids and signing is not None and not (worker_key and seal is not None):
        raise RunError(
            "--remote-workers in a signed run (--secure) needs a worker key (--seal-key): the fleets' signing keys "
            "are made by the world for each run and reach each worker only in its admission, sealed under that key"
        )
    if remote_workers and keys is not None and (missing := [f for f in fleet_ids if f not in keys.fleets]):
        raise RunError(
            f"--remote-workers in a secure run: the run's users have no broker login for fleet(s) "
            f"{', '.join(missing)} (write the --secure-dir with 'v2x secure init ... --workers {workers}')"
        )
    signed = issue_keys(scenario, run_id, signing, fleet_ids) if signing is not None else None
    for path in signed.files if signed is not None else ():
        log.info("run %s: credentials of an outside stack -> %s", run_id, path)
    # Client ids are unique on a broker, and a second connection with one takes over the first: a random
    # part keeps another run (or anyone) from knocking this run's connections off by naming them.
    nonce = secrets.token_hex(4)
    world_bus: Bus = keys.world_address(broker) if keys and isinstance(broker, BrokerAddress) else broker
    world_tp = make_transport(world_bus, f"world-{run_id}-{nonce}", will=last_will(scenario, run_id, token))
    if keys is not None and isinstance(broker, BrokerAddress):
        groups = [
            (make_transport(keys.actor_address(broker, a.actor_id), f"agent-{a.actor_id}-{run_id}-{nonce}"), [a])
            for a in agents
        ]
    else:
        groups = [(make_transport(broker, f"agents-{run_id}-{nonce}"), agents)]
    clock = make_clock(mode, scenario.tick_s)
    # a worker started on its own (v2x worker) has the run's key only when the world admits it with a worker key
    fleets_sealed = seal is not None and (not remote_workers or bool(worker_key))
    own = [a.actor_id for a in agents] + (list(fleet_ids) if fleets_sealed else [])
    try:
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
            security=signed.checks if signed is not None else None,
            fleets=workers,
            join_timeout_s=join_timeout_s,
            seal=seal,
            sealed=own,
        )
    except SumoError as exc:  # SUMO refused the scenario's files (it stops later: RuntimeError below)
        raise RunError(str(exc)) from None
    hosts = [
        AgentHost(
            agents_tp,
            run_id,
            group,
            v2x=variant == "v2x",
            token=token,
            n_ticks=scenario.n_ticks,
            tick_us=world.sim.tick_us,
            max_skip=clock.max_skip,
            security=signed.checks if signed is not None else None,
            signers=signed.signers if signed is not None else None,
            seal=seal,
        )
        for agents_tp, group in groups
    ]
    for host in hosts:  # in the world's process: they obey only the STOP their world sent
        host.world_said = world.announced
    in_process = (workers <= 1 and not remote_workers) or not isinstance(world_bus, BrokerAddress)
    fleets = [
        FleetHost(
            make_transport(world_bus, f"fleet-{run_id}-{nonce}"),
            run_id,
            FleetAgent(
                fleet_id,
                frame=env.frame,
                epoch=env.epoch,
                thresholds=env.thresholds,
                signer=Signer.from_bytes(signed.fleets[fleet_id], env.epoch) if signed is not None else None,
            ),
            n_ticks=scenario.n_ticks,
            linger=True,  # (until the run ends and the tasks are cancelled)
            seal=seal,
            max_skip=clock.max_skip,  # (as the built-in agents': an input lost in real time is not sent again)
        )
        for fleet_id in (world.sim.fleet_ids if in_process else ())
    ]
    pool: FleetWorkers | RemoteFleets | None = None
    if not in_process and world.sim.fleet_ids and isinstance(world_bus, BrokerAddress):
        jobs = [
            fleet_job(
                scenario,
                world_bus,
                f"{fleet_id}-{run_id}-{nonce}",
                run_id,
                fleet_id,
                credentials=signed.fleets[fleet_id] if signed is not None else b"",
                seal_key=seal.key if seal is not None and fleets_sealed else b"",
                max_skip=clock.max_skip,
            )
            for fleet_id in world.sim.fleet_ids
        ]
        if remote_workers:
            prefix = run_id.removesuffix(f"-{variant}")
            url, n = broker.url, len(jobs)

            def hint(k: int) -> str:
                keyed = " --seal-key FILE (a copy of this run's)" if worker_key else ""
                login = f" --credentials DIR/fleets/{jobs[k].fleet_id}.json (of --secure-dir DIR)" if keys else ""
                return worker_command(scenario.id, url, prefix, k, n) + keyed + login

            pool = RemoteFleets(
                world_tp, run_id, jobs, hint=hint,
                worker_key=RunSeal(worker_key) if worker_key else None,
                run_key=seal.key if seal is not None and fleets_sealed else b"",
                credentials=signed.fleets if signed is not None else None,
            )  # fmt: skip
        else:
            pool = FleetWorkers(jobs)
    log.info("run %s: %s [%s] on %s, %d agents, %s clock", run_id, scenario.id, variant, broker.url, len(agents), mode)
    tasks: list[asyncio.Task[Any]] = []
    announced = False
    quiet = contextlib.ExitStack()
    try:
        ready = asyncio.Event()
        tasks.append(asyncio.create_task(world_tp.run(ready), name="world-transport"))
        try:
            await asyncio.wait_for(ready.wait(), connect_timeout_s)
        except TimeoutError:
            raise RunError(cannot_reach(broker.url, connect_timeout_s, getattr(world_tp, "last_error", ""))) from None
        try:
            await world.claim(fixed_id=fixed_run_id)
        except RunIdInUse as exc:
            announced = True  # that run's Control stays as it is
            raise RunError(str(exc)) from None
        for agents_tp, _ in groups:
            tasks.append(asyncio.create_task(agents_tp.run(), name="agents-transport"))
        for fleet in fleets:  # subscribed before the first tick: a fleet says no hello
            fleet_ready = asyncio.Event()
            tasks.append(asyncio.create_task(fleet.transport.run(fleet_ready), name="fleet-transport"))
            try:
                await asyncio.wait_for(fleet_ready.wait(), connect_timeout_s)
            except TimeoutError:
                raise RunError(f"the fleet agent cannot reach the MQTT broker at {broker.url}") from None
        if pool is not None:  # subscribed before the first tick, like the in-process fleets
            pool.start()
            try:
                await pool.wait_ready(worker_timeout_s if remote_workers else connect_timeout_s + 20.0)
            except WorkerFailed as exc:
                raise RunError(str(exc)) from None
        waited_for = outside_stacks(scenario)
        if waited_for:  # (a run that waited 30 s in silence and then failed: a newcomer review)
            log.warning(
                "run %s: waiting up to %.0f s for the outside stacks of %s to join (docs/PROTOCOL.md)",
                run_id,
                join_timeout_s,
                ", ".join(waited_for),
            )
        quiet.enter_context(steady_loop())  # for the tick loop (undone when the run ends)
        host_task = asyncio.create_task(_serve_all(hosts, fleets, pool), name="agents")
        tasks.append(host_task)
        world_task = asyncio.create_task(world.run(), name="world")
        tasks.append(world_task)
        lost_task = asyncio.create_task(broker_lost(world_tp, broker.url), name="broker-watch")
        tasks.append(lost_task)
        # Until the world ends: the broker watch and the agents stay watched after the agents end (in real time
        # with fleet workers they ended first, and a broker gone after that left the world waiting for it for
        # good, not the 60 s the README says: a newcomer review).
        watched = {world_task, host_task, lost_task}
        while not world_task.done():
            done, watched = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            if lost_task in done and not world_task.done():
                world_task.cancel()
                announced = True  # (no broker to announce it on)
                raise RunError(lost_task.result())
            if host_task in done and not world_task.done() and host_task.exception() is not None:
                world_task.cancel()
                failure = host_task.exception()
                announced = True
                await world.announce_stop(f"run error: the agents stopped: {failure!r}")
                raise RunError(f"the agents stopped: {failure!r}") from failure
        try:
            report = world_task.result()
            announced = True
            transports = [world_tp, *(tp for tp, _ in groups), *(f.transport for f in fleets)]
            report.reconnects = sum(max(0, getattr(tp, "connections", 1) - 1) for tp in transports)
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
        quiet.close()
        await world.release_claim()
        world.close()
        world_tp.stop()
        for agents_tp, _ in groups:
            agents_tp.stop()
        for fleet in fleets:
            fleet.transport.stop()
        if pool is not None:
            await asyncio.to_thread(pool.stop)
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


async def _serve_all(
    hosts: list[AgentHost], fleets: Sequence[FleetHost] = (), pool: FleetWorkers | RemoteFleets | None = None
) -> None:
    """Run every host and fleet until each is done (or the world said STOP), and watch the fleet workers;
    the first failure cancels the others."""
    if len(hosts) == 1 and not fleets and pool is None:
        await hosts[0].run()
        return
    tasks = [asyncio.create_task(h.run(), name=f"agents-{k}") for k, h in enumerate(hosts)]
    tasks += [asyncio.create_task(f.run(), name=f"fleet-{k}") for k, f in enumerate(fleets)]
    if pool is not None:
        tasks.append(asyncio.create_task(pool.watch(), name="fleet-workers"))
    try:
        for task in asyncio.as_completed(tasks):
            await task
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


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
    security: Security | None = None,
    signing: Signing | None = None,
    workers: int = 1,
    remote_workers: bool = False,
    worker_timeout_s: float = 120.0,
    join_timeout_s: float = JOIN_TIMEOUT_S,
    worker_key: bytes = b"",
) -> dict[str, Any]:
    """Run every variant of a scenario (or only ``variants``) and return the result document (v2x.results).

    ``broker``: ``embedded`` (an in-process amqtt broker), ``mqtt://host:port``, or ``loopback`` (no broker
    at all: the world and the agents talk over an in-process bus, ``v2x.net.transport.LoopbackBroker``).

    Run ids are ``{run_id}-{variant}`` when ``run_id`` is given (so that an outside stack can know them
    before the run), else ``{scenario}-{variant}-s{seed}-{random hex}`` (the scenario id cut short to keep it
    within 64 characters: ``v2x.argtypes.random_run_id``). Expectations of variants that are
    not run are not checked. ``observe(variant, run_id)`` gives each variant's World an observer (a
    recorder, a live view; ``v2x.net.world.Observer``) or None.

    ``security``: a ``--secure`` run's broker side (``v2x.net.secure.Security``): every party logs in as
    itself and the broker lets it use only its own topics (docs/SECURITY.md). With ``security.directory``
    the run ids are the ones it was made for. ``signing``: sign and verify every envelope (:class:`Signing`).
    The outcome is the same with either or both as without them. ``workers``: fleet agent processes for the
    equipped background vehicles (``run_variant``); the outcome is the same for any number.
    ``remote_workers``: those processes are not started here; the run waits up to ``worker_timeout_s``
    for them (``v2x worker``, on this or other machines; they need to know the run: give ``run_id``);
    ``worker_key``: the worker key they hold too (``--seal-key``), with which they get the run's seals.
    ``join_timeout_s``: how long each variant waits for every actor (outside stacks) to join.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if remote_workers and run_id is None:
        raise ValueError("remote workers need a run id (--run-id PREFIX) to find the run")
    if run_id is not None and not valid_run_id_prefix(run_id):
        raise ValueError(f"invalid run id {run_id!r}: {RUN_ID_RULE}")
    full = scenario
    skipped = [v for v in scenario.variants if variants is not None and v not in variants]
    if variants is not None:
        scenario = only_variants(scenario, variants)
    started = time.monotonic()
    events: list[dict[str, Any]] = []
    metrics: dict[str, dict[str, Any]] = {}
    if security is not None and security.directory is not None and run_id is None:
        run_id = load_secure_dir(security.directory).run_prefix
    run_ids: dict[str, str] = (
        fixed_run_ids(run_id, scenario.variants)
        if run_id is not None
        else {v: random_run_id(scenario.id, v, seed, secrets.token_hex(3)) for v in scenario.variants}
    )
    tracks: dict[str, Tracks] = {}
    reconnects = 0
    held_s = 0.0
    outside_stacks: dict[str, dict[str, str]] = {}  # actor -> variant -> the software its Hello named
    with contextlib.ExitStack() as stack:
        secure = stack.enter_context(secure_run(scenario, security, broker, run_id, run_ids)) if security else None
        async with bus_for(broker, secure.embedded if secure else None) as address:
            if remote_workers and run_id is not None and skipped and isinstance(address, BrokerAddress):
                world_address = secure.keys.world_address(address) if secure else address  # (it publishes as the world)
                await dismiss_remote_workers(
                    full, world_address, run_id, skipped, workers, worker_timeout_s, worker_key
                )  # fmt: skip
            for variant in scenario.variants:
                variant_run_id = run_ids[variant]
                tracks[variant] = Tracks()
                outside = observe(variant, variant_run_id) if observe is not None else None
                observer = tracks[variant] if outside is None else Observers([tracks[variant], outside])
                report = await run_variant(
                    scenario,
                    variant,
                    seed=seed,
                    broker=address,
                    mode=mode,
                    progress=progress,
                    run_id=variant_run_id,
                    observer=observer,
                    keys=secure.keys if secure else None,
                    signing=signing,
                    workers=workers,
                    remote_workers=remote_workers,
                    worker_timeout_s=worker_timeout_s,
                    join_timeout_s=join_timeout_s,
                    fixed_run_id=run_id is not None,
                    worker_key=worker_key,
                )
                events.extend(report.events)
                metrics[variant] = report.metrics
                reconnects += report.reconnects
                for actor, software in report.outside_stacks.items():
                    outside_stacks.setdefault(actor, {})[variant] = software
                held_s += float(getattr(observer, "held_s", 0.0))  # a paused live view's time is not the run's
    run_info = {
        "broker": public_broker(broker),
        "mode": mode,
        "run_ids": run_ids,
        "wall_seconds": round(time.monotonic() - started - held_s, 3),
    }
    if signing is not None:  # only then, so that the result of a run without signatures stays as it was
        run_info["signed"] = "ecdsa-p256"
    if reconnects:  # only then, likewise
        run_info["reconnects"] = reconnects
    if outside_stacks:  # what was under test: the actors outside stacks drove (only then, likewise)
        run_info["outside_stacks"] = outside_stacks
    if (workers > 1 or remote_workers) and any(fleet_ids_for(scenario, v, workers) for v in scenario.variants):
        run_info["fleet_workers"] = {"processes": workers, "remote": remote_workers}  # only then, likewise
    paths = {variant: t.points for variant, t in tracks.items()}
    return build_result(scenario, seed, events, metrics, run_info, scene=scenario_map(scenario), tracks=paths)


async def dismiss_remote_workers(
    scenario: Scenario,
    broker: BrokerAddress,
    prefix: str,
    skipped: Sequence[str],
    workers: int,
    timeout_s: float,
    worker_key: bytes = b"",
) -> None:
    """``--remote-workers`` with variants left out (``--variant``): the workers of those that have fleets
    (``v2x worker`` serves run ``{prefix}-{variant}``) would wait for a world that never comes. Tell each,
    in answer to its ``FleetHello``, that there is nothing to do (``Dismissal``), waiting up to
    ``timeout_s`` for them; the run needs none of them and goes on either way."""
    kept = [v for v in scenario.variants if v not in skipped]
    dismissals: list[Dismissal] = []
    transport = make_transport(broker, f"dismiss-{prefix}-{secrets.token_hex(4)}")
    for variant in skipped:
        fleets = fleet_ids_for(scenario, variant, workers)
        if fleets:
            run_id = f"{prefix}-{variant}"
            jobs = [fleet_job(scenario, broker, "", run_id, fleet) for fleet in fleets]
            why = f"this run (--run-id {prefix}) runs only {', '.join(kept)} (--variant), not {variant}"
            dismissals.append(Dismissal(transport, run_id, jobs, why, RunSeal(worker_key) if worker_key else None))
    if not dismissals:
        return
    ready = asyncio.Event()
    connection = asyncio.create_task(transport.run(ready), name="dismiss-transport")
    try:
        try:
            await asyncio.wait_for(ready.wait(), 10.0)
        except TimeoutError:
            raise RunError(f"cannot reach the MQTT broker at {broker.url}") from None
        await asyncio.gather(*(d.wait(timeout_s) for d in dismissals))
    finally:
        transport.stop()
        connection.cancel()
        await asyncio.gather(connection, return_exceptions=True)


def broker_away(url: str) -> str | None:
    """None when the broker at ``url`` (mqtt:// or mqtts://) answers within ``BROKER_WAIT_S``, else the line
    saying it does not, and why: tried once by a command that would run several scenarios (each waited for it
    in turn)."""
    why = asyncio.run(transport.unreachable(parse_broker_url(url), transport.BROKER_WAIT_S))
    return None if why is None else f"{cannot_reach(url, transport.BROKER_WAIT_S, why)}; nothing was run"


def unjoinable(scenario: Scenario, broker: str) -> str | None:
    """Why outside stacks could not join ``scenario`` on ``broker``, or None: the embedded broker listens on a
    random port inside this process, and the loopback bus is inside this process, so a scenario with an
    ``external: true`` actor waited 30 s there and failed with "never joined" (an outside review)."""
    outside = outside_stacks(scenario)
    if broker not in ("embedded", "loopback") or not outside:
        return None
    who = f"{scenario.id}: {', '.join(outside)} {'is' if len(outside) == 1 else 'are'} driven by an outside stack "
    if broker == "loopback":
        return f"{who}(external: true), which cannot join the in-process loopback bus (no broker at all)"
    return (
        f"{who}(external: true), which cannot reach the embedded broker (a random port inside this process): run a "
        "broker and give --broker mqtt://HOST:PORT (docs/PROTOCOL.md, Transport)"
    )


def warm_up_core(scenarios: Sequence[Scenario], report: Callable[[str], None] | None = None) -> None:
    """Before the first tick, compile (or load from numba's on-disk cache) every kernel the worlds of
    ``scenarios`` will run compiled (see v2x/run/warmup.py): none when every world is small (up to
    ``v2x.core.SMALL_WORLD`` actors, run by the interpreter; background traffic counts with the room the
    world makes for it); ``report`` hears the progress when they compile."""
    from v2x.core import SMALL_WORLD
    from v2x.run.warmup import COVERAGE_STEP, warm_up
    from v2x.sim.background import background_capacity

    large = [sc for sc in scenarios if len(sc.actors) + background_capacity(sc) > SMALL_WORLD]
    if large:
        # an RSU with a range_m of its own: its world's PC5 fan-out takes the kernel that applies it
        covered = any(a.kind == "rsu" and a.range_m is not None for sc in large for a in sc.actors)
        warm_up(report, extra=(COVERAGE_STEP,) if covered else ())
