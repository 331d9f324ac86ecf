"""The world's shell: a ``v2x.sim.Simulation`` on a transport, one per run.

The simulation is the only party that sees ground truth; this module only moves its bytes and waits.
Each tick it
  1. publishes every agent's ``TickInput`` (``Simulation.begin``) on ``in/{actor}``,
  2. hands the simulation whatever arrives on ``join/+``, ``tx/+`` and ``ack/+`` (``Simulation.receive``)
     and waits through the clock (``v2x.net.clock``) until every agent has reported the tick, sending the
     silent agents their input again when the clock says so,
  3. closes the tick (``Simulation.step``: truth, warnings, referee, channel, sensors).
Before tick 0 (once every actor has joined) it announces the run with a retained ``Control`` START, and
after the last tick STOP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from v2x.net import topics
from v2x.net.clock import Clock
from v2x.net.transport import Handler, Transport
from v2x.scenario.model import Scenario
from v2x.sim.simulation import Simulation, WorldReport
from v2x.wire import testbed_pb2

__all__ = ["Observer", "World", "WorldReport"]

log = logging.getLogger("v2x.net.world")


class Observer(Protocol):
    """Watches a run (a recorder, a live view): ``on_tick`` is awaited after each tick is closed
    (``Simulation.step``) with that tick's events, before the next tick begins, so it may hold the world
    there (a paused view). It only reads ``sim``."""

    async def on_tick(self, sim: Simulation, tick: int, events: list[dict[str, Any]]) -> None: ...


class World:
    """The world of one run of ``scenario``'s ``variant``: its ``Simulation`` served over ``transport``
    under the topics of ``run_id``, ticking on ``clock``."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        variant: str,
        seed: int,
        run_id: str,
        transport: Transport,
        clock: Clock,
        progress: Callable[[int, int], None] | None = None,
        join_timeout_s: float = 30.0,
        observer: Observer | None = None,
    ) -> None:
        self.sim = Simulation(scenario, variant=variant, seed=seed, run_id=run_id)
        self.run_id = run_id
        self.transport = transport
        self.clock = clock
        self.progress = progress
        self.join_timeout_s = join_timeout_s
        self.observer = observer
        self.all_joined = asyncio.Event()
        self.reported = asyncio.Event()
        self._last_input: dict[str, bytes] = {}
        kinds: tuple[topics.Kind, ...] = ("join", "tx", "ack")
        for kind in kinds:
            transport.route(topics.all_of(run_id, kind), self._handler(kind))

    def _handler(self, kind: topics.Kind) -> Handler:
        def handler(topic: str, payload: bytes) -> None:
            parsed = topics.parse(topic)
            if parsed is None or parsed.run_id != self.run_id or parsed.kind != kind:
                self.sim.reject("bad_topic", topic)
                return
            self.sim.receive(kind, parsed.actor_id, payload, where=topic)
            if kind == "join":
                if self.sim.joined:
                    self.all_joined.set()
            elif self.sim.reported:
                self.reported.set()

        return handler

    async def run(self) -> WorldReport:
        """Run every tick; the events (in order) and metrics of the run."""
        started = time.monotonic()
        try:
            await asyncio.wait_for(self.all_joined.wait(), self.join_timeout_s)
        except TimeoutError:
            missing = self.sim.not_joined()
            raise RuntimeError(f"these actors never joined within {self.join_timeout_s:.0f} s: {missing}") from None
        await self._publish_control(testbed_pb2.Control.COMMAND_START)
        self.clock.start()
        n_ticks = self.sim.n_ticks
        for tick in range(n_ticks + 1):
            self.reported.clear()
            self._last_input = self.sim.begin(tick)
            await asyncio.gather(
                *(self.transport.publish(topics.tick_input(self.run_id, a), p) for a, p in self._last_input.items())
            )
            await self.clock.end_of_tick(tick, self.reported, self.sim.missing, self._retransmit)
            events = self.sim.step()  # counts the reports still missing as late
            if self.observer is not None:
                await self.observer.on_tick(self.sim, tick, events)
            if self.progress is not None:
                self.progress(tick, n_ticks)
        await self._publish_control(testbed_pb2.Control.COMMAND_STOP)
        return self.sim.report(time.monotonic() - started)

    async def _publish_control(self, command: testbed_pb2.Control.Command.ValueType) -> None:
        payload = self.sim.control(command)
        await self.transport.publish(topics.control(self.run_id), payload, qos=1, retain=True)

    async def _retransmit(self) -> None:
        missing = self.sim.missing()
        log.warning("world tick %d: waiting for %s; sending their input again", self.sim.current_tick, missing)
        await asyncio.gather(
            *(self.transport.publish(topics.tick_input(self.run_id, a), self._last_input[a]) for a in missing)
        )
