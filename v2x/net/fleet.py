"""The asyncio/MQTT shell of a fleet agent (``v2x.agents.fleet``): one connection, one bundle each way per
tick.

``FleetInput(n)`` arrives on ``fleet-in/{fleet}`` -> parsed and checked (size, the run, ``time_us`` as ``tick`` x
``tick_us``, the tick: the next one, or in real time up to ``max_skip`` further, as the built-in agents' (an input
lost: a broker drops QoS 0 messages for a client whose queue is full), never past ``n_ticks``, ``final`` only there,
as every host's, ``v2x.wire.tick_input``; or the one just answered, which is answered again with the same bytes, as
``v2x.net.host`` does; a worker with a worker key takes nothing before the world's admission, which gives it the
run's seal key, ``v2x.net.seal``, and in a signed run its vehicles' signing keys) -> ``FleetAgent.transmit`` and
``listen`` -> one ``FleetAck(n)`` on ``fleet-ack/{fleet}``; with ``warnings_next_tick`` the ack goes out after
``transmit`` (the vehicles' BSMs) and carries the warnings of tick n - 1, and ``listen`` (hearing, FCW) runs after
it, while the world closes the tick. Bad inputs are counted (``rejected``), never raised. The runner starts it,
subscribed, before the world's first tick. A ``FleetInput`` with ``dismissed`` before the first tick (no world will
serve this fleet) ends ``run``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import numpy as np
from google.protobuf.message import DecodeError
from numpy.typing import NDArray

from v2x.agents.fleet import FleetAgent, numbers_problem, vehicle_numbers
from v2x.logs import log_refusal
from v2x.net import topics
from v2x.net.answers import FINAL_LINGER_S, Answers, next_or_end
from v2x.net.seal import KEY_BYTES, RunSeal
from v2x.net.transport import Transport
from v2x.wire import testbed_pb2
from v2x.wire.fleet import unpack_deliveries
from v2x.wire.protocol import MAX_FLEET_ACK_BYTES, MAX_FLEET_INPUT_BYTES
from v2x.wire.security import Signer
from v2x.wire.tick_input import mistyped_fields, next_tick_problem, tick_time_problem

log = logging.getLogger("v2x.fleet")

# The largest admission a worker reads: the run's key and, in a signed run, the fleet's pseudonyms (one per 10 s
# of the run, 200 octets each: 72,427 octets for the longest scenario, an hour, with the default change period)
MAX_ADMISSION_BYTES = 1 << 20


class FleetHost:
    """``agent`` served on ``transport`` under the topics of ``run_id`` until its final tick, then (``linger``)
    answering the world's re-sends of that tick until ``end()`` or ``FINAL_LINGER_S`` with nothing to answer:
    a final answer lost in a broker restart is asked for again, and must not stall the run."""

    def __init__(
        self,
        transport: Transport,
        run_id: str,
        agent: FleetAgent,
        *,
        n_ticks: int,
        linger: bool = False,
        dismissable: bool = False,
        seal: RunSeal | None = None,
        admission: tuple[RunSeal, bytes] | None = None,
        max_skip: int = 0,
    ) -> None:
        """``max_skip``: how many ticks a FleetInput may skip (the clock's ``max_skip``, as the built-in agents'
        ``AgentHost``: 0 in lockstep, where the world sends every tick until it is answered; in real time the world
        never sends a lost input again, and a fleet that took only the next tick refused every later one, silent for
        the rest of the run: attack review 7). ``admission``: a worker started on its own with a worker key (``v2x
        worker --seal-key``): that key's seals and the nonce of its FleetHello; it takes the run's seal key from the
        world's admission (a FleetInput with ``admit``; in a signed run also the fleet's Credentials, with which its
        vehicles sign from then on) and is sealed from then on, taking nothing before it."""
        self.transport = transport
        # the run's seals (``v2x.net.seal``), when the run started this fleet itself: every input must carry one
        # (else it is ``forged``), and every answer does; a worker started on its own has none
        self.seal = seal
        self.admission = admission
        self.run_id = run_id
        self.agent = agent
        self.n_ticks = n_ticks
        self.max_skip = max_skip
        self.linger = linger
        # only a worker started on its own (``v2x worker``) can be told that no world will serve it: one the run
        # started is never, and a forged dismissal had ended the run's workers before its first tick
        self.dismissable = dismissable
        self._ended = asyncio.Event()
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.rejected: Counter[str] = Counter()
        self.last_tick = -1
        self.answers: Answers[bytes] = Answers()
        self.dismissed = ""  # why no world will serve this fleet, when the world said so before a first tick
        self.held: list[testbed_pb2.Advisory] = []  # the last tick's warnings, for the next FleetAck
        self.credentials = b""  # the signing keys of the world's admission (a signed run's)
        # the key of the last admission (or dismissal) taken, and an event set when one is: the worker says its
        # hello once more sealed under it, which shows that world that it holds the worker key now (``v2x.run.workers``
        # ``serve_remote``; a hello recorded in an earlier run and replayed cannot)
        self.admission_key = b""
        self.admitted = asyncio.Event()
        transport.route(
            topics.fleet_input(run_id, agent.fleet_id), lambda topic, payload: self.queue.put_nowait(payload)
        )

    @property
    def finished(self) -> bool:
        """Whether the final tick has been answered."""
        return self.last_tick >= self.n_ticks

    def end(self) -> None:
        """The run ended (its world said STOP): stop lingering after the final tick."""
        self._ended.set()

    async def _next(self) -> bytes | None:
        """The next input; after the final tick None once ``end()`` is called or ``FINAL_LINGER_S`` pass first."""
        if not self.finished:
            return await self.queue.get()
        return await next_or_end(self.queue, self._ended, FINAL_LINGER_S)

    async def run(self) -> None:
        topic = topics.fleet_ack(self.run_id, self.agent.fleet_id)
        input_topic = topics.fleet_input(self.run_id, self.agent.fleet_id)
        while True:
            payload = await self._next()
            if payload is None:
                return
            if self.seal is None and self.admission is not None:
                admitted = self._admitted(input_topic, payload)
                if admitted is None:
                    self._reject("forged", f"{len(payload)} bytes before the world's admission (none for this key)")
                elif self._take(*admitted):
                    return  # dismissed
                continue
            if self.seal is not None:
                body = self.seal.open(input_topic, payload)
                if body is None and (admitted := self._admitted(input_topic, payload)) is not None:
                    # the world answered a hello again: admitted already; before the first tick an admission with
                    # another key (or a dismissal) is a later world of the run id, whose word counts now
                    same = admitted == (self.seal.key, self.credentials, "")
                    if self.last_tick < 0 and not same and self._take(*admitted):
                        return  # dismissed
                    continue
                if body is None:  # anyone may publish on an open broker: not the world's
                    self._reject("forged", f"{len(payload)} bytes without this run's seal")
                    continue
                payload = body
            decoded = self._decode(payload)
            if decoded is None:
                continue
            inp, numbers = decoded
            if inp.dismissed:
                if not self.dismissable:
                    self._reject("malformed", "dismissed: not a worker started on its own")
                    continue
                if self.last_tick < 0:
                    self.dismissed = inp.dismissed[:200]
                    return
                self._reject("malformed", f"dismissed after tick {self.last_tick}")
                continue
            again = self.answers.again(inp.tick, self.last_tick, payload)
            if again is not None:  # the world asks again (``v2x.net.answers``): the answer given
                answer, differs = again
                if differs:
                    self._reject("conflicting_input", f"a different FleetInput for tick {inp.tick}")
                await self.transport.publish(topic, answer)
                continue
            wrong = next_tick_problem(
                inp.tick, inp.final, last=self.last_tick, n_ticks=self.n_ticks, max_skip=self.max_skip
            )
            if wrong is not None:  # (the rule of every host)
                self._reject("bad_tick", wrong)
                continue
            try:
                ack = self.agent.transmit(inp, numbers=numbers)  # (its vehicles' numbers, read once by _decode)
                ack.rejected.update(self.rejected)  # (so far: the world reports them, as an agent's)
                ack.events.extend(self.held)  # the warnings of the tick before, when they were held back
                self.held = []
                if not inp.warnings_next_tick:
                    ack.events.extend(self.agent.listen(inp))
            except Exception:
                log.exception("%s: tick %d: step failed", self.agent.fleet_id, inp.tick)
                raise
            self.last_tick = inp.tick
            answer = ack.SerializeToString()
            if len(answer) > MAX_FLEET_ACK_BYTES:  # the world would refuse it tick after tick and give up after 60 s
                raise RuntimeError(
                    f"{self.agent.fleet_id}'s answer for tick {inp.tick} is {len(answer):,} bytes, over the "
                    f"{MAX_FLEET_ACK_BYTES:,} the world takes: spread the equipped vehicles over more fleets "
                    "(--workers N)"
                )
            if self.seal is not None:
                answer = self.seal.seal(topic, answer)
            self.answers.keep(inp.tick, payload, answer)
            await self.transport.publish(topic, answer)
            if inp.warnings_next_tick:  # the apps run while the world closes the tick; their warnings go next
                try:
                    self.held = self.agent.listen(inp)
                except Exception:
                    log.exception("%s: tick %d: step failed", self.agent.fleet_id, inp.tick)
                    raise
            if self.finished and not self.linger:
                return

    def _admitted(self, topic: str, payload: bytes) -> tuple[bytes, bytes, str] | None:
        """The run's seal key, the fleet's Credentials (serialised; empty in a run without signatures) and the
        dismissal (or "") in ``payload`` if it is the world's admission for this worker's nonce, else None."""
        if self.admission is None or len(payload) > MAX_ADMISSION_BYTES:
            return None
        key, nonce = self.admission
        inp = testbed_pb2.FleetInput()
        try:
            inp.ParseFromString(payload)
        except DecodeError:
            return None
        if not inp.admit:
            return None
        secret = key.unwrap(topic, inp.admit, nonce + inp.dismissed.encode())
        if secret is None or len(secret) < KEY_BYTES:
            return None
        return secret[:KEY_BYTES], secret[KEY_BYTES:], inp.dismissed

    def _take(self, run_key: bytes, credentials: bytes, dismissed: str) -> bool:
        """Take the world's admission (``_admitted``): its run seal key from now on, and its signing keys for the
        fleet's vehicles if it gives any, or (True) its dismissal."""
        self.admission_key = run_key
        self.admitted.set()
        if dismissed:
            self.dismissed = dismissed[:200]
            return True
        if credentials:  # (only the world makes them: sealed under the worker key, bound to this worker's nonce)
            self.agent.signer = Signer.from_bytes(credentials, self.agent.epoch)
        self.seal = RunSeal(run_key)
        self.credentials = credentials
        signed = " and signing its vehicles' messages" if credentials else ""
        log.info("%s of run %s: admitted by the world (sealed%s from now on)", self.agent.fleet_id, self.run_id, signed)
        return False

    def _reject(self, reason: str, detail: str) -> None:
        self.rejected[reason] += 1
        who = self.agent.fleet_id
        message = "%s: rejected a FleetInput (%s): %s"
        log_refusal(log, self.rejected[reason], who, f"{reason} rejections", message, who, reason, detail)

    def _decode(self, payload: bytes) -> tuple[testbed_pb2.FleetInput, NDArray[np.float64]] | None:
        """The input and its vehicles' numbers (``vehicle_numbers``), or None once rejected and counted."""
        if len(payload) > MAX_FLEET_INPUT_BYTES:
            self._reject("oversized", f"{len(payload)} bytes")
            return None
        msg = testbed_pb2.FleetInput()
        try:
            msg.ParseFromString(payload)
        except DecodeError:
            self._reject("malformed", "does not parse")
            return None
        if mistyped_fields(msg) or unpack_deliveries(msg) is None:
            self._reject("malformed", "not a FleetInput")
            return None
        if msg.run_id != self.run_id:
            self._reject("malformed", f"run id {msg.run_id[:64]!r}")
            return None
        wrong_time = None if msg.dismissed else tick_time_problem(msg.tick, msg.time_us, msg.tick_us)
        if wrong_time is not None:  # (as a TickInput's: at a forged time the fleet sent envelopes the world refuses)
            self._reject("malformed", wrong_time)
            return None
        numbers = vehicle_numbers(msg, payload)  # (read from the bytes in one pass: checked here, used by the agent)
        problem = numbers_problem(msg, numbers)
        if problem is not None:
            self._reject("malformed", problem)
            return None
        return msg, numbers
