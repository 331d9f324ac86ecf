"""The asyncio/MQTT shell for agents: many agents share one connection in a process.

Per agent: TickInput(n) arrives on ``in/{actor}`` -> validated and decoded -> ``agent.step`` -> its
transmissions are published on ``tx/{actor}``, then ``Ack(n)`` on ``ack/{actor}``. A TickInput for a tick
already done (the world retransmits after a broker restart) is answered from a cache with the same bytes,
so a resumed lockstep run has the same outcome. Bad inputs are rejected and counted, never raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from v2x.agents.base import Agent, Heard, TickContext
from v2x.net import topics
from v2x.net.transport import Handler, Transport
from v2x.wire import frame_pb2, testbed_pb2
from v2x.wire.envelope import parse_envelope

log = logging.getLogger("v2x.agent")

MAX_INPUT_BYTES = 4 * 1024 * 1024


class AgentFailed(RuntimeError):
    def __init__(self, actor_id: str, exc: BaseException) -> None:
        super().__init__(f"agent {actor_id} failed: {exc!r}")
        self.actor_id = actor_id


@dataclass
class _Slot:
    agent: Agent
    queue: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    last_tick: int = -1
    last_output: list[tuple[str, bytes]] = field(default_factory=list)
    seq: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class AgentHost:
    def __init__(self, transport: Transport, run_id: str, agents: list[Agent], software: str = "v2x-testbed") -> None:
        self.transport = transport
        self.run_id = run_id
        self.software = software
        self.slots = {a.actor_id: _Slot(a) for a in agents}
        self._parsed: dict[bytes, _Parsed | str] = {}  # this tick's envelopes, parsed once for all agents
        self._parsed_tick = -1
        for actor_id, slot in self.slots.items():
            transport.route(topics.tick_input(run_id, actor_id), self._enqueue(slot))
        transport.on_connect(self._hello)

    def _enqueue(self, slot: _Slot) -> Handler:
        def handler(topic: str, payload: bytes) -> None:
            slot.queue.put_nowait(payload)

        return handler

    async def _hello(self) -> None:
        for actor_id, slot in self.slots.items():
            hello = testbed_pb2.Hello(
                actor_id=actor_id, kind=slot.agent.kind, software=self.software, protocol_version=1
            )
            await self.transport.publish(topics.join(self.run_id, actor_id), hello.SerializeToString())

    async def run(self) -> None:
        """Serve every agent until its final tick. If one agent fails, the others are cancelled and the
        failure is raised at once (not after the world's silence timeout)."""
        tasks = [asyncio.create_task(self._serve(slot), name=f"agent-{a}") for a, slot in self.slots.items()]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                exc = task.exception()
                if exc is not None:
                    raise AgentFailed(task.get_name().removeprefix("agent-"), exc) from exc
        finally:
            for task in tasks:
                task.cancel()

    async def _serve(self, slot: _Slot) -> None:
        agent = slot.agent
        while True:
            payload = await slot.queue.get()
            tick_input = self._decode(slot, payload)
            if tick_input is None:
                continue
            if tick_input.tick <= slot.last_tick:
                if tick_input.tick == slot.last_tick:  # the world asks again: answer identically
                    for topic, data in slot.last_output:
                        await self.transport.publish(topic, data)
                continue
            if tick_input.tick != slot.last_tick + 1 and slot.last_tick >= 0:
                log.warning("%s: tick %d follows %d", agent.actor_id, tick_input.tick, slot.last_tick)
            ctx = TickContext(
                tick=tick_input.tick,
                t_s=tick_input.time_us / 1e6,
                dt_s=tick_input.tick_us / 1e6,
                gnss=tick_input.gnss,
                heard=self._heard(slot, tick_input),
                detections=tuple(tick_input.detections),
            )
            try:
                result = agent.step(ctx)
            except Exception:
                log.exception("%s: t=%.2f s: step failed", agent.actor_id, ctx.t_s)
                raise
            output: list[tuple[str, bytes]] = []
            tx_topic = topics.tx(self.run_id, agent.actor_id)
            for tx in result.transmissions:
                slot.seq += 1
                env = testbed_pb2.Envelope(
                    sender_id=agent.actor_id,
                    seq=slot.seq,
                    tick=tick_input.tick,
                    tx_time_us=tick_input.time_us,
                    link=tx.link,  # type: ignore[arg-type]
                    dest_ids=list(tx.dest_ids),
                    frame=tx.frame.SerializeToString(),
                )
                output.append((tx_topic, env.SerializeToString()))
            ack = testbed_pb2.Ack(
                actor_id=agent.actor_id,
                tick=tick_input.tick,
                tx_count=len(result.transmissions),
                events=result.events,
                notes=result.notes,
                rejected=dict(slot.rejected + agent.rejected),
            )
            if result.truth is not None:
                ack.truth.CopyFrom(result.truth)
            output.append((topics.ack(self.run_id, agent.actor_id), ack.SerializeToString()))
            slot.last_tick = tick_input.tick
            slot.last_output = output
            for topic, data in output:
                await self.transport.publish(topic, data)
            if tick_input.final:
                slot.done.set()
                return

    def _decode(self, slot: _Slot, payload: bytes) -> testbed_pb2.TickInput | None:
        if len(payload) > MAX_INPUT_BYTES:
            slot.rejected["oversized"] += 1
            return None
        msg = testbed_pb2.TickInput()
        try:
            msg.ParseFromString(payload)
        except DecodeError:
            slot.rejected["malformed"] += 1
            log.warning("%s: rejected a malformed TickInput (%d bytes)", slot.agent.actor_id, len(payload))
            return None
        if msg.run_id != self.run_id or len(msg.rx_time_us) != len(msg.envelopes):
            slot.rejected["malformed"] += 1
            return None
        return msg

    def _heard(self, slot: _Slot, tick_input: testbed_pb2.TickInput) -> tuple[Heard, ...]:
        """The tick's envelopes as Heard. Each distinct envelope is parsed once per tick for all the agents
        of this host (a BSM reaches most of them); they share its frame and decode memo."""
        if tick_input.tick != self._parsed_tick:
            self._parsed.clear()
            self._parsed_tick = tick_input.tick
        out = []
        for raw, rx_us in zip(tick_input.envelopes, tick_input.rx_time_us, strict=True):
            parsed = self._parsed.get(raw)
            if parsed is None:
                parsed = self._parsed[raw] = _envelope_parts(raw)
            if isinstance(parsed, str):
                slot.rejected[parsed] += 1
                continue
            sender_id, link, tx_time_s, frame, memo = parsed
            out.append(Heard(sender_id, link, rx_us / 1e6, tx_time_s, frame, memo))
        return tuple(out)


_Parsed = tuple[str, int, float, frame_pb2.MessageFrame, dict[Hashable, object]]


def _envelope_parts(raw: bytes) -> _Parsed | str:
    """(sender, link, tx time, frame, a fresh memo), or the rejection reason."""
    parsed = parse_envelope(raw)
    if parsed is None:
        return "malformed"
    env, frame = parsed
    if frame.WhichOneof("msg") is None:
        return "unknown_type"
    return env.sender_id, env.link, env.tx_time_us / 1e6, frame, {}
