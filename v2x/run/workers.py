"""Fleet agents in worker processes (``v2x run --workers N``; docs/PROTOCOL.md "Fleet bundles").

With N workers the world splits the equipped background vehicles over N fleets (``Simulation(fleets=N)``)
and each fleet runs in a process of its own, with its own MQTT connection to the run's broker: they still
exchange one bundle each way per tick with the world through the broker, so the fleets' work per tick runs
in parallel on as many cores. ``worker_main`` is what such a process runs; ``FleetWorkers`` starts them
(``spawn``: a fresh interpreter, nothing of the parent's event loop or broker threads), waits until each has
subscribed (before tick 0), watches them during the run and stops them at its end.

A worker on another machine does the same against a broker both reach (docs/ARCHITECTURE.md "Fleets on
other machines"): ``v2x worker SCENARIO --broker URL --run-id PREFIX --fleet K --of N`` (``v2x.run.cli``)
serves fleet K of N of the run ``PREFIX-v2x`` (``serve_remote``) and ``v2x run SCENARIO --workers N
--remote-workers --run-id PREFIX`` waits for those workers (``RemoteFleets``) instead of starting its own. A
remote worker says ``FleetHello`` on ``fleet-join/{fleet}`` (with a digest of its job, which must be the
world's) every second until its first ``FleetInput``, and once after each reconnection; its connection's
Last Will (an empty ``fleet-join``) tells the world when it is gone. A run that leaves out the variant of
such workers (``--variant baseline``) tells them there is nothing to do (``Dismissal``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import hashlib
import json
import logging
import multiprocessing
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as EventType
from typing import TYPE_CHECKING

from google.protobuf.message import DecodeError

from v2x import __version__
from v2x.apps.thresholds import resolve
from v2x.logs import LOG_FORMAT, log_refusal
from v2x.net import topics
from v2x.net.answers import FINAL_LINGER_S, REALTIME_MAX_SKIP
from v2x.net.broker import BrokerAddress
from v2x.net.seal import KEY_BYTES, NONCE_BYTES, RunSeal
from v2x.net.transport import LastWill, MqttTransport, Transport, cannot_reach
from v2x.scenario.model import Scenario
from v2x.sim.simulation import fleet_ids_for
from v2x.wire import testbed_pb2
from v2x.wire.protocol import HELLO_EVERY_S, PROTOCOL_VERSION, WORLD_LOST
from v2x.wire.security import Signer

if TYPE_CHECKING:
    from v2x.net.fleet import FleetHost

log = logging.getLogger("v2x.run.workers")


@dataclass(frozen=True)
class FleetJob:
    """What one worker needs: where the broker is (and the world's login on it), the run, its fleet, the
    scenario's frame, epoch and app thresholds, and how many ticks the run has."""

    broker: BrokerAddress
    client_id: str
    run_id: str
    fleet_id: str
    origin: tuple[float, float, float]
    epoch: datetime
    thresholds: Mapping[str, float]
    n_ticks: int
    credentials: bytes = b""  # a signed run's: the fleet's Credentials (its vehicles sign their BSMs)
    # the run's seal key (``v2x.net.seal``) for a worker the run starts itself; a remote worker has none
    seal_key: bytes = field(default=b"", repr=False)
    # a remote worker's worker key (``--seal-key FILE``), with which it gets the run's seal key from the world
    worker_key: bytes = field(default=b"", repr=False)
    # how many ticks a FleetInput may skip (``FleetHost``): the run's clock's for a worker the run starts itself;
    # a remote worker, which is not told the mode, ``REALTIME_MAX_SKIP`` with a worker key, else 0 (``remote_jobs``).
    # Not in the digest.
    max_skip: int = 0

    def digest(self) -> str:
        """What the fleet serves (the run, the fleet, the frame, epoch, thresholds and ticks; not where the
        broker is), as 16 hex digits: a remote worker's ``FleetHello.job``, which must match the world's."""
        thresholds = sorted(self.thresholds.items())
        doc: list[object] = [self.run_id, self.fleet_id, list(self.origin), self.epoch.isoformat(), thresholds]
        doc.append(self.n_ticks)
        return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:16]


def fleet_job(
    scenario: Scenario,
    broker: BrokerAddress,
    client_id: str,
    run_id: str,
    fleet_id: str,
    *,
    credentials: bytes = b"",
    seal_key: bytes = b"",
    max_skip: int = 0,
) -> FleetJob:
    """The job of fleet ``fleet_id`` of run ``run_id`` of ``scenario`` (``credentials``: a signed run's;
    ``seal_key``: the run's seal key, for a worker the run starts itself; ``max_skip``: the run's clock's)."""
    return FleetJob(
        broker=broker,
        client_id=client_id,
        run_id=run_id,
        fleet_id=fleet_id,
        origin=(scenario.origin.lat_deg, scenario.origin.lon_deg, scenario.origin.alt_m),
        epoch=scenario.epoch,
        thresholds=dict(resolve(scenario.thresholds)),
        n_ticks=scenario.n_ticks,
        credentials=credentials,
        seal_key=seal_key,
        max_skip=max_skip,
    )


def remote_jobs(
    scenario: Scenario, broker: BrokerAddress, run_prefix: str, k: int, n: int, *, worker_key: bytes = b""
) -> list[FleetJob]:
    """What ``v2x worker`` serves: fleet ``k`` of ``n`` of every variant of ``scenario`` that has fleets
    (run ids ``{run_prefix}-{variant}``, as ``v2x run --run-id``), in the world's order of variants
    (``worker_key``: ``--seal-key``'s). A worker is not told the world's clock. One with a worker key takes a
    skip of up to ``REALTIME_MAX_SKIP`` ticks, as the built-in agents in real time (an input lost there is never
    sent again); a lockstep world sends every tick in order, and its inputs are sealed, so no skip comes to it
    there. One without a key takes none: anyone can publish its inputs, and one forged input ten ticks ahead
    stalled a lockstep run for good (attack review 8); in real time a lost input then mutes it, which the run's
    "reports in time" check fails by the fleet's name."""
    jobs = []
    for variant in scenario.variants:
        fleets = fleet_ids_for(scenario, variant, n)
        if fleets:
            run_id = f"{run_prefix}-{variant}"
            job = fleet_job(scenario, broker, f"{fleets[k]}-{run_id}-{secrets.token_hex(4)}", run_id, fleets[k])
            skip = REALTIME_MAX_SKIP if worker_key else 0
            jobs.append(dataclasses.replace(job, worker_key=worker_key, max_skip=skip))
    return jobs


@contextlib.contextmanager
def steady_loop() -> Iterator[None]:
    """Around a run's tick loop (the world's process and each worker's), two settings for steady ticks; both
    are undone afterwards and no outcome depends on them.

    - The cyclic collector: what was built before the loop (the world, the modules, numba's kernels) frozen
      out of its sight (``gc.freeze``), and its youngest generation collected every 10,000 allocations
      instead of 700. A tick with a thousand fleet vehicles makes short-lived objects by the hundred
      thousand; each older collection walked all the long-lived ones again (about a tenth of a tick).
      Memory is still freed by reference counting.
    - No transparent huge pages for numpy's arrays (numpy asks for them, ``madvise(MADV_HUGEPAGE)``, for
      every large array by default). The kernel then zeroes a 2 MiB page at the first write to it, inside
      whichever tick makes the array: at 2,000 vehicles about 14 such faults a tick, in bursts that showed
      as real-time ticks tens of ms late. Lockstep throughput is the same without them (README, "Measured
      figures"). A user's own ``NUMPY_MADVISE_HUGEPAGE`` is left as set.

    Runs that overlap in one process share the settings: the first to enter makes them, and they are undone
    when the last one leaves (not when the first does, while the others still run)."""
    if not _steady.depth:
        _steady.gc_threshold = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(10_000, *_steady.gc_threshold[1:])
        _steady.hugepages = None if "NUMPY_MADVISE_HUGEPAGE" in os.environ else _set_madvise_hugepage(False)
    _steady.depth += 1
    try:
        yield
    finally:
        _steady.depth -= 1
        if not _steady.depth:
            if _steady.hugepages is not None:
                _set_madvise_hugepage(_steady.hugepages)
            gc.set_threshold(*_steady.gc_threshold)
            gc.unfreeze()


@dataclass
class _Steady:
    """What ``steady_loop`` set for this process's tick loops, and how many are in it."""

    depth: int = 0
    gc_threshold: tuple[int, ...] = ()
    hugepages: bool | None = None


_steady = _Steady()


def _set_madvise_hugepage(enabled: bool) -> bool | None:
    """numpy's switch for ``madvise(MADV_HUGEPAGE)`` on new arrays (what ``NUMPY_MADVISE_HUGEPAGE`` sets at
    import); returns the previous setting, None where this numpy has no such switch."""
    import numpy as np

    core = getattr(np, "_core", None) or getattr(np, "core", None)
    switch = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    return None if switch is None else bool(switch(enabled))


def worker_main(job: FleetJob, ready: EventType, log_level: int = logging.WARNING) -> None:
    """A worker process: serve ``job``'s fleet until the run's final tick (``ready`` is set once subscribed).
    It logs at the command's ``log_level`` (``-q``: errors only; 860 "retrying" lines went through ``-q``: a
    newcomer review), and goes with the command (``v2x.run.pool.go_with_parent``: a SIGKILLed ``v2x run`` had
    left its workers retrying a lost broker for good)."""
    from v2x.run.pool import go_with_parent
    from v2x.text import escape_log_messages

    go_with_parent()
    logging.basicConfig(level=log_level, format=LOG_FORMAT)
    escape_log_messages()  # (a spawned process: the command line's setting is not inherited)
    asyncio.run(_serve(job, ready))


def _fleet_host(
    job: FleetJob, will: LastWill | None = None, *, remote: bool = False, nonce: bytes = b""
) -> tuple[MqttTransport, FleetHost]:
    """``job``'s fleet agent (its vehicles signing with the job's credentials, if any) on its own broker
    connection (``will``: its Last Will), and the host that serves it tick by tick (``nonce``: a remote
    worker's with a worker key, said in its FleetHello, to which the world binds its admission)."""
    from v2x.agents.fleet import FleetAgent
    from v2x.geodesy import LocalFrame
    from v2x.net.fleet import FleetHost

    signer = Signer.from_bytes(job.credentials, job.epoch) if job.credentials else None
    agent = FleetAgent(
        job.fleet_id, frame=LocalFrame(*job.origin), epoch=job.epoch, thresholds=job.thresholds, signer=signer
    )
    transport = MqttTransport(job.broker, job.client_id, will=will)
    seal = RunSeal(job.seal_key) if job.seal_key else None
    admission = (RunSeal(job.worker_key), nonce) if job.worker_key else None
    host = FleetHost(
        transport, job.run_id, agent, n_ticks=job.n_ticks, linger=True, dismissable=remote, seal=seal,
        admission=admission, max_skip=job.max_skip,
    )  # fmt: skip
    return transport, host


def _end_on_stop(transport: MqttTransport, host: FleetHost, run_id: str) -> None:
    """After the final tick, the world's STOP ends ``host``'s wait for re-sends of that tick (``FleetHost``); before
    it, a STOP is not heeded here (anyone can read the run's token from the retained START, and a worker that left
    early would stall the run; the world ends a run that stops early for its own reasons)."""

    def on_control(topic: str, payload: bytes) -> None:
        if not host.finished:
            return
        ctrl = testbed_pb2.Control()
        try:
            ctrl.ParseFromString(payload)
        except DecodeError:
            return
        if ctrl.command == testbed_pb2.Control.COMMAND_STOP and ctrl.reason != WORLD_LOST:
            host.end()

    transport.route(topics.control(run_id), on_control)


async def _serve(job: FleetJob, ready: EventType) -> None:
    from v2x.run.warmup import warm_up

    transport, host = _fleet_host(job)
    _end_on_stop(transport, host, job.run_id)
    subscribed = asyncio.Event()
    connection = asyncio.create_task(transport.run(subscribed))
    try:
        await subscribed.wait()
        # Compile (or load from numba's cache) the conflict kernels now, not inside the first ticks: the world
        # retransmits to a fleet that takes seconds to answer.
        await asyncio.to_thread(warm_up)
        ready.set()
        with steady_loop():
            await host.run()
    finally:
        transport.stop()
        connection.cancel()
        await asyncio.gather(connection, return_exceptions=True)


class WorkerFailed(RuntimeError):
    """A fleet worker process ended before the run did, or with an error."""


class FleetWorkers:
    """The worker processes of one run's fleets."""

    def __init__(self, jobs: list[FleetJob]) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.jobs = jobs
        self.ready = [self.ctx.Event() for _ in jobs]
        level = logging.getLogger().getEffectiveLevel()
        self.procs: list[BaseProcess] = [
            self.ctx.Process(target=worker_main, args=(job, ev, level), name=f"v2x-{job.fleet_id}", daemon=True)
            for job, ev in zip(jobs, self.ready, strict=True)
        ]

    def start(self) -> None:
        for proc in self.procs:
            proc.start()

    async def wait_ready(self, timeout_s: float) -> None:
        """Until every worker has subscribed; ``WorkerFailed`` when one dies first or ``timeout_s`` passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not all(ev.is_set() for ev in self.ready):
            self._check()
            if loop.time() > deadline:
                late = [j.fleet_id for j, ev in zip(self.jobs, self.ready, strict=True) if not ev.is_set()]
                raise WorkerFailed(f"fleet workers not connected to the broker within {timeout_s:.0f} s: {late}")
            await asyncio.sleep(0.05)

    def _check(self) -> None:
        for job, proc in zip(self.jobs, self.procs, strict=True):
            if proc.exitcode is not None and proc.exitcode != 0:
                raise WorkerFailed(f"fleet worker {job.fleet_id} (pid {proc.pid}) exited with code {proc.exitcode}")

    async def watch(self) -> None:
        """Return when every worker has finished its run; ``WorkerFailed`` as soon as one fails."""
        while True:
            self._check()
            if all(proc.exitcode == 0 for proc in self.procs):
                return
            await asyncio.sleep(0.1)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Wait up to ``timeout_s`` in all for the workers to end (they do after the final tick or the world's
        STOP), then terminate the ones still running (a run whose broker is gone: they never hear the STOP), and
        kill any that does not end within 2 s of that."""
        started = [proc for proc in self.procs if proc.pid is not None]
        deadline = time.monotonic() + timeout_s
        for proc in started:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in started:
            if proc.is_alive():
                log.warning("fleet worker %s (pid %s) still running: terminating it", proc.name, proc.pid)
                proc.terminate()
        for proc in started:
            proc.join(2.0)
            if proc.is_alive():
                proc.kill()
                proc.join(2.0)


# -- workers started on their own (on other machines): ``v2x worker`` and the world's side -----------------

WAITING_LOG_EVERY_S = 10.0
GONE = b""  # an empty FleetHello: the Last Will of a remote worker's connection


def worker_command(scenario: str, broker: str, run_prefix: str, k: int, n: int) -> str:
    """The command that starts fleet ``k`` of ``n`` of a run on another machine."""
    return f"v2x worker {scenario} --broker {broker} --run-id {run_prefix} --fleet {k} --of {n}"


class RemoteFleets:
    """The world's side of fleets served by workers it did not start (``v2x worker``): it hears their
    ``FleetHello`` on ``transport`` (routed here, before the transport runs) and waits for every one of
    ``jobs``; ``hint(k)`` is the command that starts fleet ``k`` (said when they are late). The same
    methods as ``FleetWorkers``."""

    def __init__(
        self,
        transport: Transport,
        run_id: str,
        jobs: list[FleetJob],
        hint: Callable[[int], str] | None = None,
        on_hello: Callable[[str, str, bytes, bool], None] | None = None,
        *,
        worker_key: RunSeal | None = None,
        run_key: bytes = b"",
        credentials: Mapping[str, bytes] | None = None,
        proof_key: bytes = b"",
    ) -> None:
        """``on_hello(fleet, who, nonce, proven)``: called for every ``FleetHello`` of a fleet of ``jobs``,
        whatever its job (``proven``: sealed under ``proof_key``, see below). ``worker_key``: ``--seal-key``'s; then
        only hellos sealed under it count, and each worker that says one with the world's job is admitted: told
        ``run_key`` (the run's seal key; ``v2x.net.seal``) and, in a signed run, its fleet's ``credentials`` (fleet
        -> serialised Credentials: its vehicles' keys). Such a worker has joined only once it shows that it holds
        the worker key now: its hello again, sealed under the key of its admission (``proof_key``, by default
        ``run_key``: new in each run, and read only by opening the admission, which is bound to the nonce of the
        worker's hello). A sealed hello recorded in an earlier run of the same run id and worker key, replayed,
        has the same job digest: it made the world count a fleet joined that no worker served, which then failed
        a lockstep run after 60 s and left a real-time run without the fleet (attack review 7)."""
        self.transport = transport
        self.worker_key = worker_key
        self.run_key = run_key
        proof_key = proof_key or run_key
        self.proof = RunSeal(proof_key) if worker_key is not None and proof_key else None
        self.unproven: set[str] = set()  # fleets whose worker was admitted, before it showed the admission's key
        self.credentials = dict(credentials or {})
        # (fleet, nonce) -> when that worker was last admitted (at most twice a second each; only holders of the
        # worker key make nonces, so a replaying forger has no more of them than it recorded)
        self._admitted_at: dict[tuple[str, bytes], float] = {}
        self.sends: set[asyncio.Task[None]] = set()  # admissions and dismissals on their way (``send``)
        self.unkeyed: set[str] = set()  # fleets whose hello came without the worker key's seal
        self.other_job: dict[str, str] = {}  # fleets whose sealed hello named another job (with a key): why
        self.run_id = run_id
        self.jobs = {job.fleet_id: job for job in jobs}
        self.order = [job.fleet_id for job in jobs]
        self.hint = hint
        self.on_hello = on_hello
        self.joined: dict[str, str] = {}  # fleet -> the worker's host and software, for the logs
        self.refused: dict[str, str] = {}  # fleet -> why its worker was refused
        self.lost: set[str] = set()  # joined fleets whose worker's connection dropped (its Last Will)
        self.changed = asyncio.Event()
        self.ignored_hellos = 0  # FleetHellos of no fleet of this run, or that do not parse: the first logged
        transport.route(topics.all_of(run_id, "fleet-join"), self._on_hello)
        transport.route(topics.all_of(run_id, "fleet-ack"), self._on_ack)

    def _on_ack(self, topic: str, payload: bytes) -> None:
        """A fleet whose worker lost its connection answers again: it is back (its FleetHello on reconnecting
        may have come while the world's own connection was away too)."""
        if self.lost:
            parsed = topics.parse(topic)
            if parsed is not None and parsed.actor_id in self.lost:
                self._back(parsed.actor_id)

    def _back(self, fleet: str) -> None:
        self.lost.discard(fleet)
        log.info("run %s: fleet worker %s (%s) is back", self.run_id, fleet, self.joined[fleet])

    def _ignored(self, message: str, topic: str, *more: object) -> None:
        """Log the first LOG_FIRST FleetHellos this run ignores, then count them (5000 forged ones logged 5000
        lines: attack review 2)."""
        self.ignored_hellos += 1
        who = f"run {self.run_id}"
        log_refusal(log, self.ignored_hellos, who, "ignored FleetHellos", message, self.run_id, topic[:200], *more)

    def _on_hello(self, topic: str, payload: bytes) -> None:
        parsed = topics.parse(topic)
        if parsed is None or parsed.run_id != self.run_id or parsed.actor_id not in self.jobs:
            self._ignored("run %s: a FleetHello on %s, which is no fleet of this run: ignored", topic)
            return
        fleet = parsed.actor_id
        if payload == GONE:
            if fleet in self.joined and fleet not in self.lost:
                self.lost.add(fleet)
                log.warning("run %s: fleet worker %s (%s) lost its connection", self.run_id, fleet, self.joined[fleet])
            return
        proven = False
        if self.worker_key is not None:
            body = self.worker_key.open(topic, payload)
            if body is None and self.proof is not None:  # the hello again, sealed under its admission's key
                body = self.proof.open(topic, payload)
                proven = body is not None
            if body is None:
                self.unkeyed.add(fleet)
                self._ignored(
                    "run %s: a FleetHello on %s without the seal of this run's worker key (a worker started without "
                    "the same --seal-key file, or not one of this run's): ignored", topic,
                )  # fmt: skip
                return
            payload = body
        hello = testbed_pb2.FleetHello()
        try:
            hello.ParseFromString(payload)
        except DecodeError:
            self._ignored("run %s: a FleetHello on %s that does not parse: ignored", topic)
            return
        who = f"{hello.host[:64] or '?'}, {hello.software[:64] or '?'}"
        if hello.fleet_id != fleet:
            self._ignored("run %s: a FleetHello on %s for %r: ignored", topic, hello.fleet_id[:64])
            return
        if self.worker_key is not None and len(hello.nonce) != NONCE_BYTES:
            self._ignored("run %s: a sealed FleetHello on %s without a nonce of %d octets: ignored", topic, NONCE_BYTES)
            return
        if self.worker_key is None and hello.nonce:
            self.refused[fleet] = (
                f"fleet worker {fleet} ({who}) was started with --seal-key, this run without: give both the same "
                "key file, or neither"
            )
            self.changed.set()
            return
        if self.on_hello is not None:
            self.on_hello(fleet, who, hello.nonce, proven)
        if fleet in self.lost and hello.job == self.jobs[fleet].digest():  # it said hello again on reconnecting
            self._back(fleet)
        if hello.job != self.jobs[fleet].digest():
            why = (
                f"fleet worker {fleet} ({who}) serves another job (digest {hello.job[:16]!r}, the world's "
                f"{self.jobs[fleet].digest()!r}): start it with the same scenario file, --run-id and --of"
            )
            if self.worker_key is not None:
                # a sealed hello may be one recorded in an earlier run of the id and replayed: one stopped the run at
                # once (attack review 6). Said, counted, and named if the fleet never joins.
                self.other_job[fleet] = why
                self._ignored("run %s: a FleetHello on %s for another job: ignored", topic)
                return
            self.refused[fleet] = why
            self.changed.set()
            return
        if self.proof is not None and not proven:  # (admitted; joined once it shows the admission's key)
            if self.run_key:  # (a dismissal's are made by ``on_hello``)
                self.admit(fleet, hello.nonce, self.run_key + self.credentials.get(fleet, b""))
                if fleet not in self.joined and fleet not in self.unproven:
                    self.unproven.add(fleet)
                    log.info("run %s: fleet worker %s (%s) said hello: admitted", self.run_id, fleet, who)
            return
        if fleet not in self.joined:
            self.joined[fleet] = who
            waiting = [f for f in self.order if f not in self.joined]
            log.info(
                "run %s: fleet worker %s joined (%s); %d of %d, %s",
                self.run_id, fleet, who, len(self.joined), len(self.jobs),
                f"waiting for {', '.join(waiting)}" if waiting else "all here",
            )  # fmt: skip
            self.changed.set()

    def admit(self, fleet: str, nonce: bytes, secret: bytes, dismissed: str = "") -> None:
        """Send ``fleet``'s worker (the one that said ``nonce``) the admission: ``secret`` (the run's seal key,
        then the fleet's signing Credentials if any) under the worker key, bound to the nonce and ``dismissed``
        (at most twice a second per worker: a hello replayed a thousand times is not answered a thousand
        times). QoS 0 as the world's inputs, so that it comes before them."""
        assert self.worker_key is not None
        now = asyncio.get_running_loop().time()
        if now - self._admitted_at.get((fleet, nonce), -1.0) < 0.5:
            return
        self._admitted_at[fleet, nonce] = now
        topic = topics.fleet_input(self.run_id, fleet)
        admit = self.worker_key.wrap(topic, secret, nonce + dismissed.encode())
        self.send(fleet, testbed_pb2.FleetInput(run_id=self.run_id, dismissed=dismissed, admit=admit))

    def send(self, fleet: str, message: testbed_pb2.FleetInput, qos: int = 0) -> None:
        """Publish ``message`` to ``fleet``'s worker on its input topic, in the background (``sends``)."""
        topic = topics.fleet_input(self.run_id, fleet)
        task = asyncio.get_running_loop().create_task(
            self.transport.publish(topic, message.SerializeToString(), qos=qos)
        )
        self.sends.add(task)
        task.add_done_callback(self.sends.discard)

    def start(self) -> None:
        log.info(
            "run %s: waiting for %d fleet worker(s) started with 'v2x worker': %s",
            self.run_id, len(self.jobs), ", ".join(self.order),
        )  # fmt: skip

    async def wait_ready(self, timeout_s: float) -> None:
        """Until every fleet's worker has said hello with the world's job; ``WorkerFailed`` when one serves
        another job or ``timeout_s`` passes (every ``WAITING_LOG_EVERY_S`` a line says who is missing)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        next_log = loop.time() + WAITING_LOG_EVERY_S
        while True:
            if self.refused:
                raise WorkerFailed("; ".join(self.refused.values()))
            missing = [f for f in self.order if f not in self.joined]
            if not missing:
                return
            now = loop.time()
            if now >= deadline:
                how = [self.hint(self.order.index(f)) for f in missing] if self.hint is not None else []
                unkeyed = [f for f in missing if f in self.unkeyed]
                raise WorkerFailed(
                    f"fleet workers never joined run {self.run_id} within {timeout_s:g} s: {', '.join(missing)}"
                    + (f"; start each on a machine that reaches the broker: {'; '.join(how)}" if how else "")
                    + (
                        f"; {', '.join(unkeyed)} said hello without this run's worker key (start with the same "
                        "--seal-key file)"
                        if unkeyed
                        else ""
                    )
                    + "".join(f"; {self.other_job[f]}" for f in missing if f in self.other_job)
                    + (
                        f"; {', '.join(f for f in missing if f in self.unproven)} said a sealed hello but never showed "
                        "the key of its admission (a hello of an earlier run of this --run-id, replayed; or a worker "
                        "of an older version)"
                        if any(f in self.unproven for f in missing)
                        else ""
                    )
                )
            if now >= next_log:
                next_log = now + WAITING_LOG_EVERY_S
                log.info(
                    "run %s: still waiting for fleet worker(s) %s (%.0f s left)",
                    self.run_id, ", ".join(missing), deadline - now,
                )  # fmt: skip
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(deadline, next_log) - now)

    async def watch(self) -> None:
        """Nothing to watch here: a worker that stops answering is the world's silent fleet (it retransmits,
        then stops the run naming it), and one whose connection drops is said in the log."""

    def stop(self, timeout_s: float = 5.0) -> None:
        """The workers end by themselves after the final tick or at the world's STOP."""


class Dismissal:
    """The workers of a run id that this run does not run (``v2x run --variant baseline --remote-workers``:
    the V2X variant's fleets): each that says ``FleetHello`` gets, in answer, a ``FleetInput`` with
    ``dismissed`` (``why``), and ends at once saying so (``serve_remote``). ``wait`` returns when every one
    of ``jobs`` has been told, or after ``timeout_s`` (saying which were not: they wait out their ``--wait``);
    the run goes on either way, since it needs none of them."""

    def __init__(
        self, transport: Transport, run_id: str, jobs: list[FleetJob], why: str, worker_key: RunSeal | None = None
    ) -> None:
        self.transport = transport
        self.run_id = run_id
        self.order = [job.fleet_id for job in jobs]
        self.why = why
        self.told: set[str] = set()
        self.changed = asyncio.Event()
        # with a worker key, the key of its dismissals (of no other use): a worker shows that it read one by saying
        # its hello once more sealed under it, and only then counts as told (a replayed hello of an earlier run had
        # made the run stop waiting, and the real worker waited out its --wait: attack review 7)
        self.key = os.urandom(KEY_BYTES) if worker_key is not None else b""
        self._hellos = RemoteFleets(
            transport, run_id, jobs, on_hello=self._answer, worker_key=worker_key, proof_key=self.key
        )

    def _answer(self, fleet: str, who: str, nonce: bytes, proven: bool) -> None:
        keyed = self._hellos.worker_key is not None
        if keyed and not proven:  # the dismissal bound to the worker's nonce; told once it shows it read it
            self._hellos.admit(fleet, nonce, self.key, self.why)
            return
        if fleet not in self.told:
            log.info("run %s: told fleet worker %s (%s) there is nothing to do", self.run_id, fleet, who)
        self.told.add(fleet)
        self.changed.set()
        if not keyed:
            self._hellos.send(fleet, testbed_pb2.FleetInput(run_id=self.run_id, dismissed=self.why), qos=1)

    async def wait(self, timeout_s: float) -> None:
        log.info(
            "run %s: %s; waiting up to %g s for its fleet worker(s) %s to tell them there is nothing to do",
            self.run_id, self.why, timeout_s, ", ".join(self.order),
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self.told >= set(self.order) and loop.time() < deadline:
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), deadline - loop.time())
        if self._hellos.sends:
            await asyncio.wait(set(self._hellos.sends), timeout=5.0)
        missing = [f for f in self.order if f not in self.told]
        if missing:
            log.warning(
                "run %s: fleet worker(s) %s did not say hello within %g s: if started, each waits out its --wait",
                self.run_id, ", ".join(missing), timeout_s,
            )  # fmt: skip


class WorkerError(RuntimeError):
    """A ``v2x worker`` could not serve its run (no world came, or the world stopped the run early)."""


class BrokerRefused(WorkerError):
    """The broker refused a ``v2x worker``'s connection: its TLS certificate not trusted, or the login refused."""


async def _connected(transport: MqttTransport, subscribed: asyncio.Event, within_s: float) -> None:
    """Until ``transport`` has connected and subscribed; ``WorkerError`` after ``within_s`` seconds, or at once
    when the broker refused it in a way no retry mends (its TLS certificate not signed by the CA given, the
    login refused: ``v2x.net.transport.refusal``), which would otherwise have been retried until then."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    url = transport.broker.url
    while not subscribed.is_set():
        if transport.refused is not None:
            raise BrokerRefused(f"cannot connect to the MQTT broker at {url}: {transport.refused}")
        if loop.time() >= deadline:
            raise WorkerError(cannot_reach(url, within_s, transport.last_error))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(subscribed.wait(), 0.1)


async def serve_remote(job: FleetJob, *, wait_s: float) -> None:
    """``v2x worker``: serve ``job``'s fleet of a world that did not start this process: connect, say
    ``FleetHello`` every second until the first ``FleetInput`` (``WorkerError`` after ``wait_s`` without
    one), then serve until the final tick; ``WorkerError`` if the world says STOP before it. A broker
    restart is waited out: the connection comes back, says ``FleetHello`` once more (the world logs that the
    worker is back) and the world sends the tick's input again. A STOP "world lost" (the world connection's
    Last Will, which a broker also publishes when it restarts) is waited out too, up to ``wait_s``: the world
    says START again once it has reconnected, or sends the next input; ``WorkerError`` if it does neither.
    Returns at once, with a log line, when the world says that no world will serve the fleet (a
    ``FleetInput`` with ``dismissed``: a run with ``--remote-workers`` that does not run this variant)."""
    from v2x.run.warmup import warm_up

    join_topic = topics.fleet_join(job.run_id, job.fleet_id)
    nonce = os.urandom(NONCE_BYTES) if job.worker_key else b""
    transport, host = _fleet_host(job, will=LastWill(join_topic, GONE), remote=True, nonce=nonce)
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[None] = loop.create_future()
    reason: list[str] = []
    lost: list[tuple[float, int]] = []  # (when, the tick served then) while the world's connection is lost
    doubted: list[tuple[float, int, str]] = []  # a STOP before the final tick: (when, the tick served then, why)

    def on_control(topic: str, payload: bytes) -> None:
        ctrl = testbed_pb2.Control()
        try:
            ctrl.ParseFromString(payload)
        except DecodeError:
            return
        # Before the first input a Control is an earlier run's (retained): not this one's.
        if host.last_tick < 0 or stopped.done():
            return
        if ctrl.command == testbed_pb2.Control.COMMAND_START:
            if lost:
                log.info("%s of run %s: the world is back", job.fleet_id, job.run_id)
                lost.clear()
        elif ctrl.command == testbed_pb2.Control.COMMAND_STOP and ctrl.reason == WORLD_LOST:
            if not lost:
                log.warning(
                    "%s of run %s: the world lost its connection after tick %d; waiting up to %g s for it",
                    job.fleet_id, job.run_id, host.last_tick, wait_s,
                )  # fmt: skip
                lost.append((loop.time(), host.last_tick))
        elif ctrl.command == testbed_pb2.Control.COMMAND_STOP and host.finished:
            reason.append(ctrl.reason[:200] or "no reason given")
            host.end()  # after the final tick: the run is over
            stopped.set_result(None)
        elif ctrl.command == testbed_pb2.Control.COMMAND_STOP and not doubted:
            # Before the final tick: anyone on the broker can publish a STOP, and a worker that left on a forged
            # one stalled the run until the world gave up (60 s, exit 3). It is believed when no input follows
            # within the world's own give-up time; if the world goes on, it was not the world's.
            log.warning(
                "%s of run %s: STOP (%s) after tick %d; ending unless the world goes on within %g s",
                job.fleet_id, job.run_id, ctrl.reason[:200] or "no reason given", host.last_tick, FINAL_LINGER_S,
            )  # fmt: skip
            doubted.append((loop.time(), host.last_tick, ctrl.reason[:200] or "no reason given"))

    def went_on() -> None:
        log.warning(
            "%s of run %s: the world went on after a STOP (%s): not the world's; ignored",
            job.fleet_id, job.run_id, doubted[0][2],
        )  # fmt: skip
        doubted.clear()

    async def watchdog() -> None:
        """Ends the wait for a world whose connection was lost and that did not come back in time."""
        while not stopped.done():
            await asyncio.sleep(min(1.0, wait_s))
            if lost and host.last_tick > lost[0][1]:  # inputs flow again: it is back
                log.info("%s of run %s: the world is back", job.fleet_id, job.run_id)
                lost.clear()
            if lost and loop.time() - lost[0][0] >= wait_s and not stopped.done():
                reason.append(f"{WORLD_LOST}, and it did not come back within {wait_s:g} s")
                stopped.set_result(None)
            if doubted and host.last_tick > doubted[0][1]:
                went_on()
            if doubted and loop.time() - doubted[0][0] >= FINAL_LINGER_S and not stopped.done():
                reason.append(doubted[0][2])
                stopped.set_result(None)

    async def hello_again() -> None:  # after a reconnection: the world's log says the worker is back
        if host.last_tick >= 0:
            await transport.publish(join_topic, hello, qos=1)

    transport.route(topics.control(job.run_id), on_control)
    transport.on_connect(hello_again)
    plain = testbed_pb2.FleetHello(
        fleet_id=job.fleet_id,
        job=job.digest(),
        software=f"v2x-testbed {__version__}",
        protocol_version=PROTOCOL_VERSION,
        host=socket.gethostname()[:64],
        nonce=nonce,
    ).SerializeToString()
    hello = plain
    if job.worker_key:  # (the world admits only a worker that holds the key: docs/SECURITY.md "Sealed messages")
        hello = RunSeal(job.worker_key).seal(join_topic, plain)

    def shown() -> bytes:
        """The hello sealed under the key of the admission (or dismissal) the worker took: it shows that world
        that this worker holds the worker key now, and the world counts it joined (or told) only then (a hello
        recorded in an earlier run of the run id and replayed cannot: attack review 7)."""
        return RunSeal(host.admission_key).seal(join_topic, plain)

    def waiting() -> bool:
        """No input yet and still serving (with a worker key: admitted or not, it says hello and keeps to
        ``wait_s`` until its first tick, so that a world that fails after admitting it, or a later world of the
        run id, is not waited for in silence: a diff review)."""
        if serving.done() or host.last_tick >= 0 or host.dismissed:
            return False
        return bool(job.worker_key) or host.queue.empty()

    subscribed = asyncio.Event()
    connection = asyncio.create_task(transport.run(subscribed))
    serving = asyncio.create_task(host.run())
    watching = asyncio.create_task(watchdog())
    try:
        await _connected(transport, subscribed, min(wait_s, 30.0))
        await asyncio.to_thread(warm_up)  # the kernels before the first tick, as a spawned worker does
        log.info("%s of run %s: connected to %s; waiting for the world", job.fleet_id, job.run_id, job.broker.url)
        deadline = loop.time() + wait_s
        while waiting():
            if loop.time() >= deadline:
                raise WorkerError(
                    f"no world of run {job.run_id} sent {job.fleet_id} its input within {wait_s:g} s"
                    + (
                        (", nor admitted it (does the world hold the same --seal-key file?)" if host.seal is None
                         else " (a world admitted it, then sent nothing: it may have stopped)")
                        if job.worker_key
                        else ""
                    )
                )  # fmt: skip
            host.admitted.clear()
            await transport.publish(join_topic, hello, qos=1)
            if host.admission_key:  # admitted (by this world or one before it): the hello under its key too
                await transport.publish(join_topic, shown(), qos=1)
            admitted = asyncio.ensure_future(host.admitted.wait())  # (an admission: show its key at once)
            try:
                await asyncio.wait({serving, admitted}, timeout=HELLO_EVERY_S, return_when=asyncio.FIRST_COMPLETED)
            finally:
                admitted.cancel()
        if not host.dismissed:
            log.info("%s of run %s: serving", job.fleet_id, job.run_id)
        with steady_loop():
            await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if serving.done() or host.finished:
            if serving.done():
                serving.result()  # raises what the fleet raised
            if host.dismissed:
                if host.admission_key:  # a sealed dismissal: the world counts this worker told once it shows its key
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(transport.publish(join_topic, shown(), qos=1), 5.0)
                log.info("%s of run %s: nothing to do: %s", job.fleet_id, job.run_id, host.dismissed)
                return
            if doubted:  # the world went on to the final tick
                went_on()
            log.info("%s of run %s: done after tick %d", job.fleet_id, job.run_id, host.last_tick)
            return
        raise WorkerError(f"the world stopped run {job.run_id} at tick {host.last_tick + 1}: {reason[0]}")
    finally:
        serving.cancel()
        watching.cancel()
        transport.stop()
        connection.cancel()
        await asyncio.gather(serving, watching, connection, return_exceptions=True)
