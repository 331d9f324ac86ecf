"""The world's shell: a ``v2x.sim.Simulation`` on a transport, one per run.

The simulation is the only party that sees ground truth; this module only moves its bytes and waits.
Each tick it
  1. publishes every agent's ``TickInput`` (``Simulation.begin``) on ``in/{actor}``,
  2. hands the simulation whatever arrives on ``join/+``, ``tx/+`` and ``ack/+`` (``Simulation.receive``)
     and on ``fleet-ack/+`` (``Simulation.receive_fleet``; each fleet gets its ``FleetInput`` on ``fleet-in``)
     and waits through the clock (``v2x.net.clock``) until every agent has reported the tick, sending the
     silent agents their input again when the clock says so,
  3. closes the tick (``Simulation.step``: truth, warnings, referee, channel, sensors).
Before tick 0 (once every actor has joined) it announces the run with a retained ``Control`` START, and
after the last tick STOP; both carry the run's random token, and so does the STOP "world lost" that the
runner leaves with the broker as the world connection's Last Will (``last_will``). Before anything else
``claim`` checks that no live world of the same run id holds the control topic. A Control on the topic that
is not this world's (another token) is counted as ``forged_control`` and this world's announcement is
published again (docs/SECURITY.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections.abc import Callable, Collection
from typing import Any, Protocol

from google.protobuf.message import DecodeError

from v2x.argtypes import JOIN_TIMEOUT_S
from v2x.net import limits, topics
from v2x.net.clock import Clock
from v2x.net.seal import RunSeal
from v2x.net.transport import Handler, LastWill, MqttTransport, Transport
from v2x.scenario.model import Scenario
from v2x.sim.simulation import Simulation, WorldReport
from v2x.wire import testbed_pb2
from v2x.wire.protocol import MAX_FLEET_INPUT_BYTES, WORLD_LOST
from v2x.wire.security import EnvelopeSecurity

__all__ = ["Observer", "World", "WorldReport"]

log = logging.getLogger("v2x.net.world")

# The world publishes its Control again over a forged one (or a copy of its Last Will) at most this often, for
# the whole run: one that comes sooner is answered when that second is over (one publication pending at most),
# so that the last forged Control is never left standing, and a forger cannot make the world publish faster.
REASSERT_EVERY_S = 1.0
# What START says of the world's clock (``Clock.mode``; docs/PROTOCOL.md "Control": which ticks a stack may take)
CONTROL_CLOCKS = {"lockstep": testbed_pb2.Control.CLOCK_LOCKSTEP, "realtime": testbed_pb2.Control.CLOCK_REALTIME}
# A second world that finds a STOP "world lost" waits this long for the START of that token (its world still
# alive, saying its START again over a copy of its will) before it takes the run id as free.
CLAIM_SETTLE_S = REASSERT_EVERY_S + 1.0
# A world's claim of its run id (``World.claim``: retained on ``topics.claim``, said again every REASSERT_EVERY_S
# until its START) is taken as live for this long after it was said (wall clock: a world that died leaves it;
# on an MQTT 5 broker it also expires then)
CLAIM_FRESH_S = 10
FINAL_STOP_WAIT_S = 10.0  # the final STOP is published (and tried again) this long at most before the result
# A STOP (the final one, an early one, the Last Will) stays retained this long on an MQTT 5 broker (its Message
# Expiry Interval), not for good: a shared CI broker kept one per run ever made. Late joiners of a run that
# ended get it within that time; a new run with the same id clears it anyway.
STOP_EXPIRY_S = 3600


class RunIdInUse(RuntimeError):
    """A live world of the same run id holds the control topic (its retained START is there)."""


def last_will(scenario: Scenario, run_id: str, token: str) -> LastWill:
    """The world connection's Last Will: a retained STOP "world lost" with the run's token, so that a run
    whose world dies (killed, its host gone) does not leave its START behind as if it were live; it expires
    after ``STOP_EXPIRY_S``."""
    stop = testbed_pb2.Control(
        command=testbed_pb2.Control.COMMAND_STOP, run_id=run_id, scenario_id=scenario.id, reason=WORLD_LOST, token=token
    )
    return LastWill(topics.control(run_id), stop.SerializeToString(), STOP_EXPIRY_S)


class Observer(Protocol):
    """Watches a run (a recorder, a live view): ``on_tick`` is awaited after each tick is closed
    (``Simulation.step``) with that tick's events, before the next tick begins, so it may hold the world
    there (a paused view). It only reads ``sim``. It may also have ``on_inputs(sim, names)``, called right
    after the world published the inputs of those actors or fleets (``World._publish_inputs``), and
    ``on_input_bytes(tick, inputs)``, called before that with what it publishes for that tick (actor or fleet
    -> payload; an entry it removes is not published: ``v2x conformance`` withholds an input so), and
    ``held_s``, the wall seconds it has held the world so far (left out of the run's wall time: a paused
    view's time is the user's)."""

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
        join_timeout_s: float = JOIN_TIMEOUT_S,
        observer: Observer | None = None,
        token: str | None = None,
        security: EnvelopeSecurity | None = None,
        fleets: int = 1,
        seal: RunSeal | None = None,
        sealed: Collection[str] = (),
    ) -> None:
        self.token = token or secrets.token_hex(16)
        # The parties the run started itself (its built-in agents and fleets, by id: ``sealed``) and this world
        # seal every message between them under ``seal`` (``v2x.net.seal``); one of theirs without it is forged.
        self.seal = seal
        self.sealed = frozenset(sealed) if seal is not None else frozenset()
        self.sim = Simulation(
            scenario, variant=variant, seed=seed, run_id=run_id, token=self.token, security=security, fleets=fleets
        )
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
        self._announced: bytes | None = None  # the Control this world last published (retained)
        self._announced_expiry_s: int | None = None  # and its expiry (a STOP's)
        self._found: testbed_pb2.Control | None = None  # a retained Control of another world, before claim()
        self._probe_topic = topics.probe(run_id, self.token[:12])
        self._probed = asyncio.Event()
        self._reasserted_at: float | None = None  # when the world last published its Control again
        self._reassert: asyncio.Task[None] | None = None  # that publication, while pending
        self._found_changed = asyncio.Event()
        self._closed = False  # (close(): no re-assertion is scheduled any more)
        self._claimed = False
        self._found_claim: float | None = None  # when another world last said it claims this run id (wall clock)
        self._holding: asyncio.Task[None] | None = None  # this world's claim said again until its START
        transport.route(topics.claim(run_id), self._on_claim)
        transport.route(topics.all_of(run_id, "fleet-ack"), self._on_fleet_ack)
        transport.route(topics.control(run_id), self._on_control)
        transport.route(self._probe_topic, lambda topic, payload: self._probed.set())
        if isinstance(transport, MqttTransport):  # a retained message on an actor's topic: never acted on
            transport.on_retained = lambda topic: self.sim.reject("retained", topic)
            if not self.sim.fleet_ids and transport.max_packet_bytes is None:
                # no FleetAck comes (up to 64 MiB): the broker may send this connection only what actors send
                transport.max_packet_bytes = limits.packet_limit(
                    f for f in transport.routes.filters if topics.kind_of(f) not in ("fleet-ack", "fleet-join")
                )
        # A broker that restarts publishes the Last Will ("world lost") of the connection it dropped: once
        # reconnected, say again where the run is.
        transport.on_connect(self._republish)

    async def claim(self, probe_timeout_s: float = 5.0, *, fixed_id: bool = False) -> None:
        """Make sure no live world runs under this run id, then clear the control topic's retained message.

        Every world's connection leaves a Last Will that replaces its retained START with a STOP when the
        connection drops, and a world that ends publishes STOP: a retained START on the topic means its
        world is still connected. The retained message comes with the subscription; a probe published to
        this world alone after subscribing comes back after it (brokers keep a client's order).

        ``fixed_id``: the run id was given (``--run-id``), so another world may hold it: when the topic holds
        nothing, the world still listens ``CLAIM_SETTLE_S`` for a live world's START (anyone may clear the
        retained START over and over; the live world says it again within ``REASSERT_EVERY_S``: attack review
        4). A random run id cannot be another world's: no wait."""
        await self.transport.publish(self._probe_topic, b"probe")
        try:
            await asyncio.wait_for(self._probed.wait(), probe_timeout_s)
        except TimeoutError:
            log.warning(
                "world %s: no echo of the probe within %.0f s; not sure the run id is free",
                self.run_id,
                probe_timeout_s,
            )
        found = self._found
        lost = found is not None and found.command == testbed_pb2.Control.COMMAND_STOP and found.reason == WORLD_LOST
        if lost or (found is None and fixed_id):
            # A world that died, or a copy of a live world's will that its world is about to answer with its
            # START (within REASSERT_EVERY_S; an attack review), or a START cleared by someone: wait for a START
            # a little.
            found = await self._settled(found)
        if found is not None and found.command == testbed_pb2.Control.COMMAND_START:
            raise RunIdInUse(
                f"run id {self.run_id} is in use: the broker holds a START of that run (scenario "
                f"{found.scenario_id or '?'}) and its world is still connected (a world that is gone leaves a "
                "STOP 'world lost'); choose another --run-id, or wait until that run ends"
            )
        if fixed_id and self._claim_is_fresh():
            # Another world has claimed the id and waits for its actors (no START yet: it comes once they have
            # all joined); a second world took the id then, and one of the two failed (attack review 5).
            raise RunIdInUse(
                f"run id {self.run_id} is in use: another world claimed it within the last {CLAIM_FRESH_S} s (one "
                "waiting for its actors to join, or one that just ended without a START); choose another --run-id, "
                "or try again when that run has ended"
            )
        # A retained Control left by an earlier run with this id (a fixed --run-id) must not reach outside
        # stacks that subscribe from now on: clear it before this run's START.
        await self.transport.publish(topics.control(self.run_id), b"", qos=1, retain=True)
        self._claimed = True
        if fixed_id:  # (a random id cannot be another world's)
            await self._say_claim()
            self._holding = asyncio.get_running_loop().create_task(self._hold_claim())

    async def _say_claim(self) -> None:
        said = f"{self.token[:12]} {time.time():.3f}".encode()
        await self.transport.publish(topics.claim(self.run_id), said, qos=0, retain=True, expiry_s=CLAIM_FRESH_S)

    async def _hold_claim(self) -> None:
        """Say this world's claim again every REASSERT_EVERY_S until its START (``release_claim``)."""
        while True:
            await asyncio.sleep(REASSERT_EVERY_S)
            await self._say_claim()

    async def release_claim(self) -> None:
        """The claim goes (cleared, best effort): the START (or STOP) now marks the run id, or the run is over
        before its START (``run_variant``'s end), so that the id is free at once (a run whose workers never came
        left it for 10 s: a diff review)."""
        if self._holding is None:
            return
        self._holding.cancel()
        self._holding = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.transport.publish(topics.claim(self.run_id), b"", retain=True), 2.0)

    def _on_claim(self, topic: str, payload: bytes) -> None:
        """Another world's claim of this run id (not this world's own): when it was said."""
        owner, _, said = payload.decode("ascii", "replace").partition(" ")
        if not payload or owner == self.token[:12]:
            return
        try:
            at = float(said)
        except ValueError:
            return
        if math.isfinite(at):  # the newest: an old time said after a live world's must not hide it (attack review 6)
            self._found_claim = at if self._found_claim is None else max(self._found_claim, at)
            self._found_changed.set()

    def _claim_is_fresh(self) -> bool:
        return self._found_claim is not None and abs(time.time() - self._found_claim) <= CLAIM_FRESH_S

    async def _settled(self, found: testbed_pb2.Control | None) -> testbed_pb2.Control | None:
        """Another world's Control once what was found (a STOP "world lost", or nothing) has had
        ``CLAIM_SETTLE_S`` to be answered by a START; returns at once on that START."""
        deadline = time.monotonic() + CLAIM_SETTLE_S
        while (left := deadline - time.monotonic()) > 0:
            self._found_changed.clear()
            current = self._found if self._found is not None else found
            if current is not None and current.command == testbed_pb2.Control.COMMAND_START:
                return current
            try:
                await asyncio.wait_for(self._found_changed.wait(), left)
            except TimeoutError:
                break
        return self._found if self._found is not None else found

    def _on_control(self, topic: str, payload: bytes) -> None:
        if self._announced is None:  # before START: what an earlier world left (claim() reads it)
            ctrl = testbed_pb2.Control()
            try:
                ctrl.ParseFromString(payload)
            except DecodeError:
                return
            if payload and ctrl.token != self.token:
                self._found = ctrl
                self._found_changed.set()
            return
        if payload == self._announced:
            return
        ctrl = testbed_pb2.Control()
        try:
            ctrl.ParseFromString(payload)
            will = ctrl.token == self.token and ctrl.reason == WORLD_LOST
        except DecodeError:
            will = False
        if not will:
            # Someone else's Control (or a cleared topic, or one with this run's token that this world did
            # not publish) over this run's: count it and say ours again.
            self.sim.reject("forged_control", topic)
        # What reads as this world's Last Will is not counted: a broker that dropped the connection publishes
        # it, and the reconnected world says its START again anyway. But anyone who read the token in the
        # START can publish a copy, which left standing made the run id look free to a second world (an
        # attack review): say ours again over it too.
        # At most once every REASSERT_EVERY_S: one that comes sooner is answered at the end of that second
        # (a copy dropped unanswered in the second after a re-assertion stayed retained: an attack review).
        if self._reassert is not None or self._closed:  # pending: it publishes after this one came
            return
        last = self._reasserted_at
        delay = 0.0 if last is None else max(0.0, last + REASSERT_EVERY_S - time.monotonic())
        self._reassert = asyncio.get_running_loop().create_task(self._reassert_after(delay))
        self._reassert.add_done_callback(self._republished)

    async def _reassert_after(self, delay_s: float) -> None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        self._reassert = None  # a forged Control that comes from here on is answered after this publication
        self._reasserted_at = time.monotonic()
        await self._republish()

    def _republished(self, task: asyncio.Task[None]) -> None:
        if self._reassert is task:  # (cancelled while waiting)
            self._reassert = None
        if not task.cancelled() and task.exception() is not None:  # (the broker gone: the next connection says it)
            log.warning("world %s: could not publish its Control again: %s", self.run_id, task.exception())

    def close(self) -> None:
        """Drop a pending re-assertion of the Control (the run is over and its transport about to stop)."""
        self._closed = True
        if self._reassert is not None:
            self._reassert.cancel()
        if self._holding is not None:  # (ended before its START: the claim expires, CLAIM_FRESH_S)
            self._holding.cancel()

    async def _republish(self) -> None:
        if self._announced is not None:
            await self._publish_announced()

    async def _publish_announced(self) -> None:
        assert self._announced is not None
        await self.transport.publish(
            topics.control(self.run_id), self._announced, qos=1, retain=True, expiry_s=self._announced_expiry_s
        )

    def _handler(self, kind: topics.Kind) -> Handler:
        def handler(topic: str, payload: bytes) -> None:
            parsed = topics.parse(topic)
            if parsed is None or parsed.run_id != self.run_id or parsed.kind != kind:
                self.sim.reject("bad_topic", topic)
                return
            body = self._opened(topic, parsed.actor_id, payload)
            if body is None:
                return
            self.sim.receive(kind, parsed.actor_id, body, where=topic)
            if kind == "join":
                if self.sim.joined:
                    self.all_joined.set()
            elif self.sim.reported:
                self.reported.set()

        return handler

    def _on_fleet_ack(self, topic: str, payload: bytes) -> None:
        parsed = topics.parse(topic)
        if parsed is None or parsed.run_id != self.run_id or parsed.kind != "fleet-ack":
            self.sim.reject("bad_topic", topic)
            return
        body = self._opened(topic, parsed.actor_id, payload)
        if body is None:
            return
        self.sim.receive_fleet(parsed.actor_id, body, where=topic)
        if self.sim.reported:
            self.reported.set()

    def _opened(self, topic: str, who: str, payload: bytes) -> bytes | None:
        """The sender's bytes of ``payload``: as they came from an outside stack, checked and without the seal
        from one of the run's own parties (None, counted as ``forged``, when its seal is missing or wrong)."""
        if who not in self.sealed:
            return payload
        assert self.seal is not None
        body = self.seal.open(topic, payload)
        if body is None:
            self.sim.reject("forged", topic, "(no valid seal: not from the run's own agent or fleet)")
        return body

    def _wire(self, inputs: dict[str, bytes]) -> dict[str, bytes]:
        """``inputs`` (actor or fleet -> input) as they go on the wire: sealed for the run's own parties."""
        if not self.sealed:
            return inputs
        assert self.seal is not None
        return {
            who: self.seal.seal(self._input_topic(who), p) if who in self.sealed else p for who, p in inputs.items()
        }

    def _input_topic(self, who: str) -> str:
        """Where ``who`` (an actor or a fleet) gets its input."""
        if who in self.sim.fleet_inputs:
            return topics.fleet_input(self.run_id, who)
        return topics.tick_input(self.run_id, who)

    async def run(self) -> WorldReport:
        """Run every tick; the events (in order) and metrics of the run."""
        started = time.monotonic()
        try:
            await asyncio.wait_for(self.all_joined.wait(), self.join_timeout_s)
        except TimeoutError:
            missing, why = self.sim.not_joined(), self.sim.why_not_joined()
            raise RuntimeError(
                # (a list's repr, "['car_a']", was printed, and not the run they did not join: an adopter review)
                f"these actors never joined run {self.run_id} within {self.join_timeout_s:.0f} s: "
                f"{', '.join(missing)}{why}"
            ) from None
        await self._publish_control(testbed_pb2.Control.COMMAND_START)
        self.clock.start()
        n_ticks = self.sim.n_ticks
        # Real time: tick n + 1 is opened as soon as tick n closes, and the fleets and the built-in agents get
        # their input then (everything in it is known: the truth at tick n, the deliveries due by tick n + 1,
        # each with its delivery time), so that they hear what was delivered within the tick, not up to a tick
        # later; actors driven by outside stacks (``external``) get their TickInput at the tick's wall-clock time
        # (docs/PROTOCOL.md). A tick is closed (``Simulation.step``, then ``begin`` of the next) as soon as
        # everyone has reported it, which the fleets and built-in agents do before its wall-clock time (they got
        # its input when the tick before closed): the world's work of closing it runs while it waits for that
        # time, not after it. What it hands over is still held until the tick's wall-clock time: no input of
        # tick n + 1 goes out before t(n) (nor the STOP before the last tick's time), so the deliveries of tick
        # n's transmissions reach their receivers then. A tick with an outside stack in it closes after that
        # stack's report, so after its time.
        early = self.clock.opens_early
        external = {a for a in self.sim.actor_ids if self.sim.scenario.actor(a).external}
        opened: dict[str, bytes] | None = None  # the inputs of a tick opened early
        for tick in range(n_ticks + 1):
            if opened is None:
                await self.clock.start_of_tick(tick)
                self.reported.clear()
                inputs = self._wire({**self.sim.begin(tick), **self.sim.fleet_inputs})
                await self._publish_inputs(inputs)
            else:
                inputs, opened = opened, None
                outside = {a: p for a, p in inputs.items() if a in external}
                if outside:
                    await self.clock.start_of_tick(tick)
                    await self._publish_inputs(outside)
            self._last_input = inputs
            await self.clock.end_of_tick(tick, self.reported, self.sim.missing_why, self._retransmit)
            events = self.sim.step()  # counts the reports still missing as late
            if self.observer is not None:
                await self.observer.on_tick(self.sim, tick, events)
            if self.progress is not None:
                self.progress(tick, n_ticks)
            if early and tick < n_ticks:
                self.reported.clear()
                opened = self._wire({**self.sim.begin(tick + 1), **self.sim.fleet_inputs})  # sealed before the wait
                await self.clock.start_of_tick(tick)  # handed over no earlier than the tick's wall-clock time
                await self._publish_inputs({a: p for a, p in opened.items() if a not in external})
            elif early:  # the last tick: the run ends no earlier than its time either
                await self.clock.start_of_tick(tick)
        try:  # the run is done: its result must not wait on a broker that does not confirm the STOP
            await asyncio.wait_for(self._publish_control(testbed_pb2.Control.COMMAND_STOP), FINAL_STOP_WAIT_S)
        except TimeoutError:
            log.warning("world %s: the broker did not confirm the final STOP in %g s", self.run_id, FINAL_STOP_WAIT_S)
        return self.sim.report(time.monotonic() - started - self.held_s())

    def held_s(self) -> float:
        """Wall seconds the observer held this run (``Observer.held_s``; 0 without one)."""
        return float(getattr(self.observer, "held_s", 0.0)) if self.observer is not None else 0.0

    async def _publish_inputs(self, inputs: dict[str, bytes]) -> None:
        """Each actor's or fleet's input on its topic; an observer with ``on_inputs(sim, names)`` is told right
        after (``v2x bench realtime`` times when deliveries are handed over)."""
        for who, payload in inputs.items():
            if len(payload) > MAX_FLEET_INPUT_BYTES and who in self.sim.fleet_inputs:
                raise RuntimeError(
                    f"{who}'s input for tick {self.sim.inbound.current_tick} is {len(payload):,} bytes, over the "
                    f"{MAX_FLEET_INPUT_BYTES:,} a fleet takes: spread the equipped vehicles over more fleets "
                    "(--workers N)"
                )
        on_input_bytes = getattr(self.observer, "on_input_bytes", None)
        if on_input_bytes is not None:
            on_input_bytes(self.sim.inbound.current_tick, inputs)
        await asyncio.gather(*(self.transport.publish(self._input_topic(a), p) for a, p in inputs.items()))
        on_inputs = getattr(self.observer, "on_inputs", None)
        if on_inputs is not None:
            on_inputs(self.sim, list(inputs))

    def announced(self) -> bytes | None:
        """The Control this world last published (None before its START): what agents in its own process obey."""
        return self._announced

    async def _publish_control(self, command: testbed_pb2.Control.Command.ValueType, reason: str = "") -> None:
        clock = CONTROL_CLOCKS.get(self.clock.mode, testbed_pb2.Control.CLOCK_UNSPECIFIED)
        self._announced = self.sim.control(command, reason, clock)
        self._announced_expiry_s = STOP_EXPIRY_S if command == testbed_pb2.Control.COMMAND_STOP else None
        await self._publish_announced()
        await self.release_claim()

    async def announce_stop(self, reason: str, timeout_s: float = 2.0) -> None:
        """Tell the agents and outside stacks that the run ended early (``reason``), with the run's token;
        never raises (the broker may be what failed). Nothing before ``claim``: the topic may be another
        live world's."""
        if not self._claimed:
            return
        try:
            await asyncio.wait_for(self._publish_control(testbed_pb2.Control.COMMAND_STOP, reason), timeout_s)
        except Exception as exc:  # best effort: the run is ending anyway
            log.warning("world %s: could not announce STOP (%s): %r", self.run_id, reason, exc)

    async def _retransmit(self) -> None:
        missing = self.sim.missing()
        why = "; ".join(self.sim.missing_why())
        log.warning("world tick %d: waiting for %s; sending their input again", self.sim.current_tick, why)
        await asyncio.gather(*(self.transport.publish(self._input_topic(a), self._last_input[a]) for a in missing))
