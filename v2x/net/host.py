"""The asyncio/MQTT shell for agents: many agents share one connection in a process.

Per agent: TickInput(n) arrives on ``in/{actor}`` -> validated and decoded -> ``agent.step`` -> its
transmissions are published on ``tx/{actor}``, then ``Ack(n)`` on ``ack/{actor}``. A TickInput for a tick
already done (the world retransmits after a broker restart) is answered from a cache with the same bytes,
so a resumed lockstep run has the same outcome. Bad inputs are rejected and counted, never raised:
a TickInput for another run, that is not one or whose numbers no world sends (``malformed``), for a tick other
than the next one (``bad_tick``: in real time up to ``max_skip`` further; never past ``n_ticks``, and ``final``
only there; a forged tick 10^6 must not make an agent deaf to the real ticks): the checks of every host, SDK
included (``v2x.wire.tick_input``; since session 20, before which the numbers and ``final`` went unchecked), a second,
different TickInput for the tick already answered (``conflicting_input``: counted, the first answer stands),
and, in a baseline run (no V2X), any envelope in a TickInput (``unexpected_envelope``: an agent without
V2X hears nothing). A ``Control`` STOP ends the agents early only when it carries the run's token.

In a secure run (``security``) each agent signs its envelopes with its pseudonyms (``signers``) and
verifies every envelope it hears before its apps see it, as every V2X receiver does: the signature and
certificate checks once per distinct envelope for all the agents of the host (``v2x.wire.security``
caches the certificates it verified), the clock and replay checks per agent, against the delivery time.
A refused envelope is counted in the agent's ``Ack.rejected`` under its reason (``unsigned``,
``unknown_cert``, ``expired``, ``no_permission``, ``bad_signature``, ``replayed``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError

from v2x.agents.base import Agent, Heard, TickContext, TickResult, Transmission
from v2x.logs import log_refusal
from v2x.net import topics
from v2x.net.answers import FINAL_LINGER_S, Answers, next_or_end
from v2x.net.seal import RunSeal
from v2x.net.transport import Handler, MqttTransport, Transport
from v2x.wire import frame_pb2, testbed_pb2
from v2x.wire.envelope import parse_envelope
from v2x.wire.protocol import MAX_INPUT_BYTES, PROTOCOL_VERSION, WORLD_LOST
from v2x.wire.security import EnvelopeSecurity, Freshness, Signer, Verified, Verifier
from v2x.wire.tick_input import next_tick_problem, read_tick_input

log = logging.getLogger("v2x.agent")


class AgentFailed(RuntimeError):
    def __init__(self, actor_id: str, exc: BaseException) -> None:
        super().__init__(f"agent {actor_id} failed: {exc!r}")
        self.actor_id = actor_id


@dataclass
class _Slot:
    agent: Agent
    queue: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    last_tick: int = -1
    seq: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    fresh: Freshness = field(default_factory=Freshness)  # secure runs: this receiver's replay memory
    answers: Answers[list[tuple[str, bytes]]] = field(default_factory=Answers)  # (topic, payload)s per tick


def tick_context(tick_input: testbed_pb2.TickInput, heard: tuple[Heard, ...]) -> TickContext:
    """What an agent's ``step`` gets of ``tick_input``, with what it heard (parsed and checked by the host)."""
    return TickContext(
        tick=tick_input.tick,
        t_s=tick_input.time_us / 1e6,
        dt_s=tick_input.tick_us / 1e6,
        gnss=tick_input.gnss,
        heard=heard,
        detections=tuple(tick_input.detections),
        collisions=tuple(tick_input.collisions),
        signal_warps=tuple(tick_input.signal_warps),
    )


def envelope_of(actor_id: str, seq: int, tick_input: testbed_pb2.TickInput, tx: Transmission) -> testbed_pb2.Envelope:
    """The envelope of ``actor_id``'s transmission ``tx`` (its ``seq``-th) in the tick of ``tick_input``."""
    return testbed_pb2.Envelope(
        sender_id=actor_id,
        seq=seq,
        tick=tick_input.tick,
        tx_time_us=tick_input.time_us,
        link=tx.link,  # type: ignore[arg-type]
        dest_ids=list(tx.dest_ids),
        frame=tx.frame.SerializeToString(),
    )


def ack_of(
    actor_id: str, tick_input: testbed_pb2.TickInput, result: TickResult, rejected: Mapping[str, int]
) -> testbed_pb2.Ack:
    """``actor_id``'s Ack of the tick of ``tick_input``: its step's ``result`` and what it rejected."""
    ack = testbed_pb2.Ack(
        actor_id=actor_id,
        tick=tick_input.tick,
        tx_count=len(result.transmissions),
        events=result.events,
        notes=result.notes,
        rejected=dict(rejected),
        misbehaviour=result.misbehaviour,
    )
    if result.truth is not None:
        ack.truth.CopyFrom(result.truth)
    return ack


class AgentHost:
    """The agents of one run on one connection.

    ``v2x``: false in a baseline run (the agents hear nothing, whatever a TickInput carries); ``token``: the
    run's Control token (a STOP without it is ignored; None: no Control is listened to); ``n_ticks``: the
    run's last tick (a TickInput past it, or ``final`` on another tick, is ``bad_tick``; None: trust ``final``);
    ``tick_us``: the run's tick length (a TickInput of another is ``malformed``, as the SDK's against START's;
    None: not checked); ``max_skip``: how many ticks a TickInput may skip (0 in lockstep, where the world sends
    every tick until it is answered; a few in real time, where an input can be lost: the SDK bounds a skip by the
    wall clock instead, which for the built-in agents would sit at its edge, since the world hands them a tick's
    input a tick early);
    ``security``: a secure run's verifier and epoch, ``signers``: each agent's signing keys (both None in a run
    without signatures); ``seal``: the run's seals (``v2x.net.seal``) when the run started these agents itself:
    every input must carry one (else it is ``forged``), and every message they send does."""

    def __init__(
        self,
        transport: Transport,
        run_id: str,
        agents: list[Agent],
        software: str = "v2x-testbed",
        *,
        v2x: bool = True,
        token: str | None = None,
        n_ticks: int | None = None,
        tick_us: int | None = None,
        max_skip: int = 0,
        security: EnvelopeSecurity | None = None,
        signers: dict[str, Signer] | None = None,
        seal: RunSeal | None = None,
    ) -> None:
        self.transport = transport
        self.seal = seal
        self.run_id = run_id
        self.software = software
        self.v2x = v2x
        self.token = token
        self.n_ticks = n_ticks
        self.tick_us = tick_us
        self.max_skip = max_skip
        self.security = security
        self.signers = signers or {}
        self.slots = {a.actor_id: _Slot(a) for a in agents}
        self._parsed: dict[bytes, _Parsed | str] = {}  # this tick's envelopes, parsed once for all agents
        self._parsed_tick = -1
        self.ignored_controls = 0  # Control messages without the run's token
        self.stopped = asyncio.Event()  # the run's world said STOP
        # agents in the world's process: the Control their world last published (``World.announced``)
        self.world_said: Callable[[], bytes | None] | None = None
        self.stop_reason = ""
        for actor_id, slot in self.slots.items():
            transport.route(topics.tick_input(run_id, actor_id), self._enqueue(slot))
        if token is not None:
            transport.route(topics.control(run_id), self._on_control)
        transport.on_connect(self._hello)
        if isinstance(transport, MqttTransport):
            transport.on_retained = self._on_retained

    def _on_retained(self, topic: str) -> None:
        """A retained message on an agent's input topic, which the world never retains: left by someone else,
        not acted on (``MqttTransport``), counted as the agent's ``retained`` rejection."""
        parsed = topics.parse(topic)
        if parsed is None or parsed.run_id != self.run_id or parsed.kind != "in":
            return
        slot = self.slots.get(parsed.actor_id)
        if slot is not None:
            self._reject(slot, "retained", f"a retained message on {topic}")

    def _on_control(self, topic: str, payload: bytes) -> None:
        if not payload:
            return  # a retained Control cleared
        ctrl = testbed_pb2.Control()
        try:
            ctrl.ParseFromString(payload)
        except DecodeError:
            self.ignored_controls += 1
            return
        if not self.token or ctrl.token != self.token or ctrl.run_id != self.run_id:
            self._ignore_control("ignored a Control without this run's token")
            return
        # "world lost" is the world connection's Last Will: a restarting broker publishes it too, and the world
        # says START again once reconnected. These agents live in the world's process: its runner ends them.
        if ctrl.command == testbed_pb2.Control.COMMAND_STOP and ctrl.reason != WORLD_LOST:
            if self.world_said is not None and payload != self.world_said():
                # The token is in the retained START for every subscriber to read; agents in the world's own
                # process know what their world said, and obey only that (a forged STOP with the token had
                # ended them, and the world then waited 60 s for their reports and gave up: no result).
                self._ignore_control("ignored a STOP with the run's token their world did not send")
                return
            self.stop_reason = ctrl.reason
            self.stopped.set()

    def _ignore_control(self, what: str) -> None:
        self.ignored_controls += 1
        who = f"agents of {self.run_id}"
        log_refusal(log, self.ignored_controls, who, "ignored Controls", "%s: %s", who, what)

    def _reject(self, slot: _Slot, reason: str, detail: str) -> None:
        slot.rejected[reason] += 1
        who = slot.agent.actor_id
        message = "%s: rejected a TickInput (%s): %s"
        log_refusal(log, slot.rejected[reason], who, f"{reason} rejections", message, who, reason, detail)

    def _enqueue(self, slot: _Slot) -> Handler:
        def handler(topic: str, payload: bytes) -> None:
            slot.queue.put_nowait(payload)

        return handler

    async def _hello(self) -> None:
        for actor_id, slot in self.slots.items():
            hello = testbed_pb2.Hello(
                actor_id=actor_id, kind=slot.agent.kind, software=self.software, protocol_version=PROTOCOL_VERSION
            )
            await self.transport.publish(*self._sealed(topics.join(self.run_id, actor_id), hello.SerializeToString()))

    def _sealed(self, topic: str, payload: bytes) -> tuple[str, bytes]:
        """``(topic, payload)`` as it goes on the wire (sealed when the host has the run's seals)."""
        return topic, self.seal.seal(topic, payload) if self.seal is not None else payload

    async def run(self) -> None:
        """Serve every agent until its final tick, and then, when the host listens to the run's Control (a
        ``token``), answer the world's re-sends of that tick until its STOP (or ``FINAL_LINGER_S`` with nothing
        to answer): a final answer lost in a broker restart is asked for again, and must not stall the run. If
        one agent fails, the others are cancelled and the failure is raised at once (not after the world's
        silence timeout)."""
        tasks = [asyncio.create_task(self._serve(slot), name=f"agent-{a}") for a, slot in self.slots.items()]
        stop = asyncio.create_task(self.stopped.wait(), name="stop")
        pending: set[asyncio.Task[Any]] = {*tasks, stop}
        try:
            while pending - {stop}:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is stop:
                        log.info(
                            "agents of %s: the world said STOP%s",
                            self.run_id,
                            f" ({self.stop_reason})" if self.stop_reason else "",
                        )
                        return
                    exc = task.exception()
                    if exc is not None:
                        raise AgentFailed(task.get_name().removeprefix("agent-"), exc) from exc
        finally:
            stop.cancel()
            for task in tasks:
                task.cancel()

    async def _serve(self, slot: _Slot) -> None:
        agent = slot.agent
        while True:
            if slot.done.is_set():  # after the final tick (lingering: see ``run``, which ends it on STOP)
                lingered = await next_or_end(slot.queue, None, FINAL_LINGER_S)
                if lingered is None:
                    return
                payload = lingered
            else:
                payload = await slot.queue.get()
            if self.seal is not None:
                body = self.seal.open(topics.tick_input(self.run_id, agent.actor_id), payload)
                if body is None:  # anyone may publish on an open broker: not the world's
                    self._reject(slot, "forged", f"{len(payload)} bytes without this run's seal")
                    continue
                payload = body
            tick_input = self._decode(slot, payload)
            if tick_input is None:
                continue
            again = slot.answers.again(tick_input.tick, slot.last_tick, payload)
            if again is not None:
                # The world asks again (``v2x.net.answers``): the answer given. A different input for a tick
                # answered: one of the two was not the world's, counted. Forged inputs that pushed the agent
                # ahead of the world had made it refuse the world's as bad_tick, and the run stalled until the
                # world gave up (found by an attack test). A copy of an earlier tick's input is bad_tick below.
                answer, differs = again
                if differs:
                    self._reject(slot, "conflicting_input", f"a different TickInput for tick {tick_input.tick}")
                for topic, data in answer:
                    await self.transport.publish(topic, data)
                continue
            wrong = next_tick_problem(
                tick_input.tick, tick_input.final, last=slot.last_tick, n_ticks=self.n_ticks, max_skip=self.max_skip
            )
            if wrong is not None:
                self._reject(slot, "bad_tick", wrong)
                continue
            if tick_input.tick != slot.last_tick + 1:
                log.warning("%s: tick %d follows %d", agent.actor_id, tick_input.tick, slot.last_tick)
            if not self.v2x and tick_input.envelopes:  # no V2X: nothing to hear, whoever says otherwise
                self._reject(slot, "unexpected_envelope", f"{len(tick_input.envelopes)} envelopes in a baseline run")
                del tick_input.envelopes[:]
                del tick_input.rx_time_us[:]
            ctx = tick_context(tick_input, self._heard(slot, tick_input))
            try:
                result = agent.step(ctx)
            except Exception:
                log.exception("%s: t=%.2f s: step failed", agent.actor_id, ctx.t_s)
                raise
            output: list[tuple[str, bytes]] = []
            tx_topic = topics.tx(self.run_id, agent.actor_id)
            for tx in result.transmissions:
                slot.seq += 1
                env = envelope_of(agent.actor_id, slot.seq, tick_input, tx)
                signer = self.signers.get(agent.actor_id)
                if signer is not None:
                    signer.sign(env)
                output.append(self._sealed(tx_topic, env.SerializeToString()))
            ack = ack_of(agent.actor_id, tick_input, result, slot.rejected + agent.rejected)
            output.append(self._sealed(topics.ack(self.run_id, agent.actor_id), ack.SerializeToString()))
            slot.last_tick = tick_input.tick
            slot.answers.keep(tick_input.tick, payload, output)
            for topic, data in output:
                await self.transport.publish(topic, data)
            if tick_input.tick == self.n_ticks or (tick_input.final and self.n_ticks is None):
                slot.done.set()
                if self.token is None:  # no STOP to wait for
                    return

    def _decode(self, slot: _Slot, payload: bytes) -> testbed_pb2.TickInput | None:
        if len(payload) > MAX_INPUT_BYTES:
            self._reject(slot, "oversized", f"{len(payload)} bytes")
            return None
        msg = read_tick_input(payload, self.run_id, tick_us=self.tick_us)  # (the SDK's check too: one rule)
        if isinstance(msg, str):
            self._reject(slot, "malformed", msg)
            return None
        return msg

    def _heard(self, slot: _Slot, tick_input: testbed_pb2.TickInput) -> tuple[Heard, ...]:
        """The tick's envelopes as Heard. Each distinct envelope is parsed once per tick for all the agents
        of this host (a BSM reaches most of them); they share its frame and decode memo."""
        if tick_input.tick != self._parsed_tick:
            self._parsed.clear()
            self._parsed_tick = tick_input.tick
        out = []
        security = self.security
        verifier = security.verifier if security is not None else None
        for raw, rx_us in zip(tick_input.envelopes, tick_input.rx_time_us, strict=True):
            parsed = self._parsed.get(raw)
            if parsed is None:
                parsed = self._parsed[raw] = _envelope_parts(raw, verifier)
            if isinstance(parsed, str):
                slot.rejected[parsed] += 1
                continue
            sender_id, link, tx_time_s, frame, memo, verified = parsed
            if security is not None:
                why = verified if isinstance(verified, str) else slot.fresh.check(verified, security.epoch_us + rx_us)
                if why:
                    slot.rejected[why] += 1
                    continue
            out.append(Heard(sender_id, link, rx_us / 1e6, tx_time_s, frame, memo))
        return tuple(out)


_Parsed = tuple[str, int, float, frame_pb2.MessageFrame, dict[Hashable, object], Verified | str]


def _envelope_parts(raw: bytes, verifier: Verifier | None) -> _Parsed | str:
    """(sender, link, tx time, frame, a fresh memo, what ``verifier`` says of it: verified or why not), or
    the rejection reason."""
    parsed = parse_envelope(raw)
    if parsed is None:
        return "malformed"
    env, frame = parsed
    kind = frame.WhichOneof("msg")
    if kind is None:
        return "unknown_type"
    verified = verifier.check(env, kind) if verifier is not None else ""
    return env.sender_id, env.link, env.tx_time_us / 1e6, frame, {}, verified
