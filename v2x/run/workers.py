"""Fleet agents in worker processes (``v2x run --workers N``; docs/PROTOCOL.md "Fleet bundles").

With N workers the world splits the equipped background vehicles over N fleets (``Simulation(fleets=N)``)
and each fleet runs in a process of its own, with its own MQTT connection to the run's broker: they still
exchange one bundle each way per tick with the world through the broker, so the fleets' work per tick runs
in parallel on as many cores. ``worker_main`` is what such a process runs; ``FleetWorkers`` starts them
(``spawn``: a fresh interpreter, nothing of the parent's event loop or broker threads), waits until each has
subscribed (before tick 0), watches them during the run and stops them at its end.

A worker on another machine does the same against a broker both reach (docs/ARCHITECTURE.md "Fleets on
other machines").
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as EventType

from v2x.net.broker import BrokerAddress

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


@contextlib.contextmanager
def steady_gc() -> Iterator[None]:
    """Around a run's tick loop (the world's process and each worker's): what was built before it (the
    world, the modules, numba's kernels) frozen out of the cyclic collector's sight (``gc.freeze``), and its
    youngest generation collected every 10,000 allocations instead of 700. A tick with a thousand fleet
    vehicles makes short-lived objects by the hundred thousand; each older collection walked all the
    long-lived ones again (about a tenth of a tick). Memory is still freed by reference counting; both are
    undone afterwards. No outcome depends on it."""
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(10_000, old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def worker_main(job: FleetJob, ready: EventType) -> None:
    """A worker process: serve ``job``'s fleet until the run's final tick (``ready`` is set once subscribed)."""
    asyncio.run(_serve(job, ready))


async def _serve(job: FleetJob, ready: EventType) -> None:
    from v2x.agents.fleet import FleetAgent
    from v2x.geodesy import LocalFrame
    from v2x.net.fleet import FleetHost
    from v2x.net.transport import MqttTransport
    from v2x.run.warmup import warm_up

    agent = FleetAgent(job.fleet_id, frame=LocalFrame(*job.origin), epoch=job.epoch, thresholds=job.thresholds)
    transport = MqttTransport(job.broker, job.client_id)
    host = FleetHost(transport, job.run_id, agent, n_ticks=job.n_ticks)
    subscribed = asyncio.Event()
    connection = asyncio.create_task(transport.run(subscribed))
    try:
        await subscribed.wait()
        # Compile (or load from numba's cache) the conflict kernels now, not inside the first ticks: the world
        # retransmits to a fleet that takes seconds to answer.
        await asyncio.to_thread(warm_up)
        ready.set()
        with steady_gc():
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
        self.procs: list[BaseProcess] = [
            self.ctx.Process(target=worker_main, args=(job, ev), name=f"v2x-{job.fleet_id}", daemon=True)
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
        """Wait for the workers to end (they do after the final tick or the world's STOP), then end the ones
        still running."""
        for proc in self.procs:
            if proc.pid is None:
                continue
            proc.join(timeout_s)
            if proc.is_alive():
                log.warning("fleet worker %s (pid %s) still running: terminating it", proc.name, proc.pid)
                proc.terminate()
                proc.join(timeout_s)
