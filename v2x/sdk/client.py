"""The SDK's client: one actor of one run over one aiomqtt connection (docs/PROTOCOL.md, protocol v1).

What it does for the stack, so that the stack only moves its vehicle and runs its applications:

* joining: subscribes to ``in/{actor}`` and ``control``, sends ``Hello`` every second until the first
  tick is handed out; waits for this run's ``Control START`` (a STOP before the first tick is an earlier run's,
  but the world's join timeout naming this actor: below);
* the tick loop: one :class:`~v2x.sdk.types.Tick` per ``TickInput``, with the envelopes heard decoded to
  SI (``v2x.wire``); a repeated ``TickInput`` for the tick just answered is answered again with the same
  bytes (lockstep retransmission); in ``realtime`` mode (START's ``clock`` says real time, or ``Stack(realtime=
  True)``), when the stack has fallen behind, only the newest
  waiting tick is handed out (the older ones are closed anyway), with what the skipped ones carried
  (envelopes, collisions, late ticks) and ``dt_s`` the time since the tick before;
* what it refuses (anyone may publish on an open broker), each counted in ``Stack.rejected`` and so in every
  Ack's ``rejected``, as the built-in agents do (``v2x.net.host``): a TickInput that does not parse or is for
  another run (``malformed``), bigger than 4 MiB (``oversized``), retained (``retained``: the world never
  retains one), whose numbers no world sends (``malformed``: ``time_us`` not ``tick`` x ``tick_us``, a
  ``tick_us`` not START's, a GNSS reading's error or sigma not finite, a negative sigma, ... see
  ``v2x.wire.tick_input``, the built-in agents' check too), for a tick other than the next one (``bad_tick``: tick
  0 first, then n + 1 after n; in ``realtime`` a later one only once the world's clock can be there,
  ``REALTIME_EARLY_TICKS``; never past START's ``n_ticks``, and ``final`` only there: ``next_tick_problem``, the
  rule of every host, with this skip), a second, different TickInput for a tick it answered
  (``conflicting_input``: answered with the answer given), a waiting input pushed out by newer ones
  (``overflow``: at most ``MAX_WAITING_INPUTS`` inputs or ``MAX_WAITING_BYTES`` wait), and a Control START it
  cannot use (``malformed``), an advisory not from the platform over Uu (``not_permitted``: only the platform
  sends one, docs/PROTOCOL.md "Who may send what") or with numbers the world would refuse in the Ack that echoes
  it (``out_of_range``: ``v2x.wire.advisory.advisory_problem``, the world's check of an Ack's warnings);
* before the first tick a STOP is an earlier run's (ignored), but the world's join timeout naming this actor
  (``run error: these actors never joined ...``: a wrong actor id, a refused Hello): ``RunAborted`` at once;
* a STOP counts only with the run's token; a STOP "world lost" (the world's Last Will) is not the end:
  the world may come back after a broker restart (``tick_timeout_s`` ends the wait); a STOP with a reason
  (``run error: ...``, ``interrupted``) is never a normal end: ``RunAborted``, also after the final tick;
* sending: BSMs encoded from SI (``v2x.wire.bsm.encode_bsm``: the actor's BSM id, msg_cnt from 0 +1 per
  BSM, secMark from the epoch), the same bytes over PC5 and over Uu to the platform; envelopes numbered
  ``seq`` 1, 2, ... across the run;
* the advisories addressed to this actor (``Tick.advisories``) are handed out ready to echo: copies with
  ``raised_at_s`` set to their delivery time (``rx_time_us``), as docs/PROTOCOL.md "Warnings" asks (the
  ``Heard`` entry keeps the advisory as it came);
* the Ack: ``tx_count``, the truth, the warnings, the inputs it rejected; and the warnings of a tick the
  world reports in ``late_ticks`` (closed without this Ack: it came too late) again in the next Ack, with
  their own ``raised_at_s`` (the world counts each warning once).

* a secure run (``signing_key``: the file ``v2x run --secure`` writes for the actor, docs/PROTOCOL.md
  "Signed envelopes"): every envelope it sends is signed with the pseudonym of its time, and every
  envelope it hears is verified first (refusals are counted in ``rejected`` under their reason, as the
  built-in receivers do).

* a broker restart: when the connection drops it connects again as the testbed's own clients do
  (``v2x.net.transport``: after 0.1 s, then doubling to every second), subscribes again, says ``Hello`` again
  if no tick was handed out yet, and publishes what the stack sends meanwhile once it is back; the world's
  re-sends of the stalled tick are answered as any re-send, so a lockstep run ends as without the restart
  (since session 19: the reader ended with the connection, unseen, and ``ticks()`` waited its whole
  ``tick_timeout_s`` while the run failed for want of this actor's reports). A broker away for longer than
  ``reconnect_within_s`` (60 s, the world's own wait for a silent actor in lockstep) is given up:
  :meth:`Stack.ticks`, :meth:`Stack.start` and the sending methods raise :class:`BrokerLost` (an
  ``aiomqtt.MqttError``) at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import aiomqtt
from google.protobuf.message import DecodeError

from v2x.geodesy import LocalFrame
from v2x.logs import log_refusal
from v2x.net import limits, topics, transport
from v2x.net.answers import FINAL_LINGER_S, Answers, next_or_end
from v2x.net.broker import BrokerAddress, parse_broker_url
from v2x.net.secure import SecureDirError, load_actor_credentials
from v2x.net.transport import RECONNECT_INITIAL_S, RECONNECT_MAX_S
from v2x.sdk.types import ActorStart, Collision, Gnss, Heard, RunInfo, Tick, VehicleState
from v2x.text import did_you_mean, printable
from v2x.wire import frame_pb2, security_pb2, testbed_pb2
from v2x.wire.advisory import advisory, advisory_problem
from v2x.wire.bsm import OwnState, decode_bsm, encode_bsm
from v2x.wire.envelope import parse_envelope
from v2x.wire.protocol import (
    FIGURE_NAMES,
    HELLO_EVERY_S,
    MAX_INPUT_BYTES,
    MAX_TX_PER_TICK,
    MAY_SEND,
    PROTOCOL_VERSION,
    WORLD_LOST,
    taken_over,
)
from v2x.wire.security import EnvelopeSecurity, Freshness, Signer, Verified, read_credentials
from v2x.wire.tick_input import next_tick_problem, read_tick_input

log = logging.getLogger("v2x.sdk")

KEEP_EVENTS_TICKS = 100  # how many ticks' warnings are kept for re-reporting after a late tick
# Inputs waiting to be handed out (before START, or while the stack works on a tick): beyond these the oldest
# is dropped (``overflow``). The world sends one at a time in lockstep and ten a second in real time; only a
# flood of someone else's fills this (300 MB of junk grew a stack waiting for START by 311 MB).
MAX_WAITING_INPUTS = 256
MAX_WAITING_BYTES = 16 * 1024 * 1024
# Real time: how early (in ticks) a TickInput that skips ticks may come before the world's clock could send it:
# the earliest t0 the stack saw may be late by the broker's latency (tick 0, START); a forged input right after
# the stack's Ack of tick n cannot be further ahead than tick n + 1, as the world's own next one.
REALTIME_EARLY_TICKS = 1.0
# How long a lost broker is tried again before the stack gives up (``BrokerLost``): the world's own wait for a
# silent actor in lockstep (``LockstepClock.give_up_after_s``), after which the run has failed anyway.
RECONNECT_WITHIN_S = 60.0

# The STOP of a world whose actors did not all join in time (``v2x.net.world``: the missing actors, then why their
# Hellos were refused, then the unknown actor ids that said Hello, quoted; ``v2x.sim.inbound.why_not_joined``)
_NEVER_JOINED = re.compile(
    r"run error: these actors never joined run (?P<run>\S+) within \S+ s: "
    r"(?P<missing>[^ ,(;]+(?:, [^ ,(;]+)*)(?P<rest>.*)",
    re.DOTALL,
)
_UNKNOWN_HELLOS = "; a Hello came from actor id(s) the scenario does not have: "
_Input = tuple[float, bytes, testbed_pb2.TickInput]  # when it came (monotonic), its bytes, parsed


class BrokerLost(aiomqtt.MqttError):
    """The broker went away and could not be reached again within ``Stack.reconnect_within_s``."""


class StartConflict(RuntimeError):
    """Two different STARTs of the run were published while the stack waited for its first tick (the world's are
    the same bytes each time it says it): one is not the world's (on an open broker anyone may publish a START,
    and one with the stack's start moved, or the map's origin, steered it: attack review 5). Which is the world's
    cannot be told; the stack refuses to run (use ``--secure``, where only the world may publish Controls)."""


class RunAborted(RuntimeError):
    """The run did not end normally: a ``Control STOP`` (with the run's token) before the final tick, or one
    with a reason (``run error: ...``, ``interrupted``) after it."""


async def _first(*events: asyncio.Event, timeout_s: float | None) -> None:
    """Wait until one of ``events`` is set, or ``timeout_s`` (None: no limit) has passed."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


def _epoch(text: str) -> datetime:
    """``Control.epoch_utc`` (ISO 8601; ``Z`` or ``+00:00``; fractional seconds allowed) as a UTC datetime."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Stack:
    """One outside stack driving ``actor_id`` in run ``run_id`` through the broker at ``broker``
    (``mqtt://host:port``, ``mqtts://...`` or a ``BrokerAddress``, which may carry a user, password and
    CA; a secure run's stack: ``Stack.from_credentials``). Use as an async context manager.

    ``realtime``: hand out only the newest waiting tick when the stack falls behind, and take a later tick
    when one was lost (on by itself when START says the world's clock runs in real time, ``RunInfo.realtime``;
    this flag is for a world older than START's ``clock``). ``uplink``: also send
    each BSM over Uu to the run's platform (as built-in vehicles do). ``software`` goes into ``Hello``.
    ``signing_key``: a secure run's signing credentials file of this actor (``OUT/credentials/RUN/ACTOR.cred``,
    written by ``v2x run --secure``; a path; ``ValueError`` if it is not one, or is another actor's or run's):
    sign what is sent, verify what is heard. ``resume``: the process restarted in the middle of the run; its
    first tick is whichever the world sends (a fresh stack takes tick 0 first, and refuses a later one as
    ``bad_tick``: a forged one must not be where it starts). ``reconnect_within_s``: how long a lost broker is
    tried again (0.1 s after losing it, doubling to every second) before the stack gives up with
    :class:`BrokerLost`. ``reconnections``: how often it connected again. ``figure_names``: the figure names of
    plugin apps (entry points in ``v2x.apps``) the world's installation has, which :meth:`warning` takes besides
    the built-in apps' (``v2x.wire.protocol.FIGURE_NAMES``).
    """

    def __init__(
        self,
        broker: str | BrokerAddress,
        *,
        run_id: str,
        actor_id: str,
        kind: str = "car",
        software: str = "v2x.sdk 1",
        realtime: bool = False,
        uplink: bool = True,
        signing_key: str | Path | None = None,
        resume: bool = False,
        reconnect_within_s: float = RECONNECT_WITHIN_S,
        figure_names: Iterable[str] = (),
    ) -> None:
        self.broker = parse_broker_url(broker) if isinstance(broker, str) else broker
        for value, what in ((run_id, "run id"), (actor_id, "actor id")):
            if not topics.valid_id(value):
                raise ValueError(f"invalid {what} {value!r}: use 1-64 of A-Z a-z 0-9 _ . -")
        self.run_id = run_id
        self.actor_id = actor_id
        self.kind = kind
        self.software = software
        self.realtime = realtime
        self.uplink = uplink
        # a stack restarted in the middle of a run (docs/PROTOCOL.md "Duplicates"): its first tick may be the
        # one the run is at, not 0; from then on n + 1 after n. A fresh stack takes tick 0 first (a forged later
        # tick must not be where it starts)
        self.resume = resume
        # A secure run's file is written by the run (a new CA per run) before its START: read when START comes
        # (a file of an earlier run with this run id may still be there now), and now only if it is there, so
        # that a file of another actor or run is refused at once.
        self._signing_key = Path(signing_key) if signing_key is not None else None
        self.signing: security_pb2.Credentials | None = None
        if self._signing_key is not None and self._signing_key.exists():
            self.signing = self._read_signing_key(self._signing_key)
        self._signer: Signer | None = None
        self._checks: EnvelopeSecurity | None = None
        self._fresh = Freshness()
        self.run: RunInfo | None = None
        self.rejected: Counter[str] = Counter()  # inputs this stack rejected, by reason (sent in every Ack)
        self.skipped_ticks = 0  # realtime: ticks never handed out because the stack was behind
        self.rereported = 0  # warnings reported again because their tick closed without this stack's Ack
        self._last_time_us = 0
        self.seq = 0
        self.msg_count = 0
        self.reconnect_within_s = reconnect_within_s
        self.figure_names = frozenset(FIGURE_NAMES) | frozenset(figure_names)  # what ``warning`` takes
        self.reconnections = 0
        self._client_id = f"sdk-{actor_id}-{uuid.uuid4().hex[:8]}"
        self._spoke_mqtt5 = False  # a connection with MQTT 5 succeeded (then no falling back to 3.1.1)
        self._client: aiomqtt.Client | None = None  # the live connection, None while the broker is away
        self._entered = False
        self._connected = asyncio.Event()
        self._lost: BrokerLost | None = None  # set when the broker could not be reached again in time
        self._gone = asyncio.Event()  # ... and then set
        self._tasks: list[asyncio.Task[None]] = []
        self._inputs: asyncio.Queue[_Input] = asyncio.Queue()
        self._waiting_bytes = 0  # the bytes of the inputs in ``_inputs``
        self._started = asyncio.Event()
        self._live_starts: set[bytes] = set()  # the STARTs published while this stack waited for tick 0
        self._said_unequipped = False  # (send: nothing goes out for an unequipped actor, said once)
        self._stopped: testbed_pb2.Control | None = None
        self._never_joined: RunAborted | None = None  # this run's STOP before START said this actor never joined
        self._stop_event = asyncio.Event()
        self._first_input = asyncio.Event()
        self._last: tuple[int, list[tuple[str, bytes]]] | None = None  # (tick, what was published for it)
        self._answers: Answers[list[tuple[str, bytes]]] = Answers()  # the inputs and answers of the last ticks
        self._open_input = b""  # the bytes of the open tick's TickInput (kept with its answer)
        # real time: the earliest the world's tick 0 can have been sent (monotonic), from when START came (the
        # world starts its clock right after publishing START) and each tick handed out (n ticks after t0 at the
        # earliest); a TickInput further ahead than this clock allows is no input of the world's
        self._t0 = 0.0
        self._open: Tick | None = None
        self._out: list[tuple[str, bytes]] = []
        self._events: deque[tuple[int, list[testbed_pb2.Advisory]]] = deque(maxlen=KEEP_EVENTS_TICKS)
        self._carry: list[testbed_pb2.Advisory] = []
        self._token: object = None
        self._live_token: object = None  # the token of the last START that came live (not retained), if any

    @classmethod
    def from_credentials(
        cls, path: str | Path, *, variant: str = "v2x", broker: str | None = None, **kwargs: Any
    ) -> Stack:
        """The stack of a secure run (``v2x secure init``): the actor, its run id for ``variant``, the broker
        URL, the user, password and CA come from the actor's credentials file ``path``; ``broker``
        replaces the file's URL (same CA). Other keyword arguments as for ``Stack``."""
        creds = load_actor_credentials(Path(path), broker)
        if creds.fleet:  # (its login may use only a fleet's topics: the broker would drop the stack's in silence)
            raise SecureDirError(f"{path}: a fleet worker's file (v2x worker --credentials), not an actor's")
        return cls(creds.broker, run_id=creds.run_id(variant), actor_id=creds.actor_id, **kwargs)

    # -- connection ---------------------------------------------------------------------------------
    async def __aenter__(self) -> Stack:
        """Connect and subscribe (``aiomqtt.MqttError`` if the broker cannot be reached now: no retries for a
        first connection, whose failure is more often a wrong address or password than a restart)."""
        client = await self._connect()
        self._client, self._entered = client, True
        self._connected.set()
        self._tasks = [
            asyncio.create_task(self._connection(client), name=f"sdk-read-{self.actor_id}"),
            asyncio.create_task(self._hello(), name=f"sdk-hello-{self.actor_id}"),
        ]
        return self

    async def _connect(self) -> aiomqtt.Client:
        """A new connection (with this stack's client id) subscribed to the input and control topics: MQTT 5 with
        a Maximum Packet Size of what those topics carry (a TickInput of at most ``MAX_INPUT_BYTES``), so that the
        broker drops a bigger message instead of sending it to be read whole here; MQTT 3.1.1, without that
        limit, with a broker that does not speak MQTT 5 (``v2x.net.transport.not_mqtt5``); Nagle off (TCP_NODELAY,
        ``v2x.net.transport.no_delay``), as on the testbed's own connections, on every (re)connection."""
        most = limits.packet_limit((topics.tick_input(self.run_id, self.actor_id), topics.control(self.run_id)))
        closes = 0  # MQTT 5 CONNECTs in a row the broker closed without a CONNACK
        while True:
            v5 = transport.speaks_mqtt5(self.broker)
            client = transport.mqtt_client(self.broker, self._client_id, mqtt5=v5, max_packet_bytes=most)
            try:
                await transport.enter(client)  # (a connect cancelled meanwhile is closed: aiomqtt#377)
                self._spoke_mqtt5 = self._spoke_mqtt5 or v5
                break
            except aiomqtt.MqttError as exc:
                # (a broker that took MQTT 5 before and is restarting is not one that does not speak it)
                if not v5 or self._spoke_mqtt5:
                    raise
                closes = closes + 1 if isinstance(exc, transport.ClosedBeforeConnack) else 0
                if transport.not_mqtt5(exc, closes):
                    transport.fall_back_to_mqtt311(self.broker, self._client_id, exc)
                elif closes != 1:  # (closed once: once more, a broker that does not speak MQTT 5 closes it again)
                    raise
        transport.no_delay(client)  # (since session 24: Nagle held Acks back, lockstep runs were slower)
        try:
            await client.subscribe(topics.tick_input(self.run_id, self.actor_id), qos=0)
            await client.subscribe(topics.control(self.run_id), qos=1)
        except BaseException:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
            raise
        return client

    async def _connection(self, client: aiomqtt.Client) -> None:
        """Read ``client``'s messages; when the connection drops, connect again (``_reconnect``) and read on."""
        while True:
            try:
                await self._read(client)
                why = "the connection ended"
            except aiomqtt.MqttError as exc:
                why = str(exc) or type(exc).__name__
            self._client = None
            self._connected.clear()
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
            again = await self._reconnect(why)
            if again is None:
                return
            client = again

    async def _reconnect(self, why: str) -> aiomqtt.Client | None:
        """Connect again as the testbed's clients do (``v2x.net.transport``: after ``RECONNECT_INITIAL_S``,
        doubling up to ``RECONNECT_MAX_S``), subscribed again; None, with ``_lost`` set and the waits woken,
        once the broker has been away for ``reconnect_within_s``."""
        loop = asyncio.get_running_loop()
        lost_at = loop.time()
        at = f" after tick {self._last[0]}" if self._last is not None else " before its first tick"
        log.warning("%s: lost the broker %s%s (%s); reconnecting", self.actor_id, self.broker.url, at, why)
        delay = RECONNECT_INITIAL_S
        while True:
            await asyncio.sleep(delay)
            try:
                client = await self._connect()
            except aiomqtt.MqttError as exc:
                why = str(exc) or type(exc).__name__
                if loop.time() - lost_at >= self.reconnect_within_s:
                    self._lost = BrokerLost(
                        f"{self.actor_id}: lost the MQTT broker at {self.broker.url}{at} and could not reach it "
                        f"again within {self.reconnect_within_s:g} s ({why})"
                    )
                    log.error("%s", self._lost)
                    self._gone.set()
                    self._stop_event.set()  # wakes ``ticks()``, which raises ``_lost``
                    return None
                delay = min(delay * 2, RECONNECT_MAX_S)
                continue
            self.reconnections += 1
            self._client = client
            self._connected.set()
            log.warning("%s: reconnected to %s after %.1f s", self.actor_id, self.broker.url, loop.time() - lost_at)
            return client

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for task in self._tasks:
            task.cancel()
        # (their cancellation is expected; a task that had failed is said, not swallowed, and a cancellation of
        # this exit itself goes through: a code review)
        try:
            ended = await asyncio.gather(*self._tasks, return_exceptions=True)
            for task, outcome in zip(self._tasks, ended, strict=True):
                if isinstance(outcome, Exception):
                    log.warning("%s: its task %s had failed: %r", self.actor_id, task.get_name(), outcome)
        finally:  # (the connection is closed even when this exit is cancelled)
            if self._client is not None:
                with contextlib.suppress(Exception):
                    await self._client.__aexit__(None, None, None)
                self._client = None

    async def _publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 0; while the broker is away, wait until the stack is connected again (``BrokerLost``
        if it is given up). What a dropped connection lost the world asks for again (lockstep re-sends)."""
        assert self._entered, "use the Stack as an async context manager"
        loop = asyncio.get_running_loop()
        while True:
            client = await self._live()
            try:
                await client.publish(topic, payload, qos=0)
                return
            except aiomqtt.MqttError as exc:  # this connection is gone: wait for the next one, then again
                log.debug("%s: publish to %s failed (%s)", self.actor_id, topic, exc)
                until = loop.time() + 2.0
                while self._client is client and self._lost is None and loop.time() < until:
                    await asyncio.sleep(0.02)

    async def _live(self) -> aiomqtt.Client:
        """The live connection, waiting through a reconnection; ``BrokerLost`` if the broker was given up."""
        while True:
            if self._lost is not None:
                raise self._lost
            if self._client is not None:
                return self._client
            await _first(self._connected, self._gone, timeout_s=None)

    async def _hello(self) -> None:
        hello = testbed_pb2.Hello(
            actor_id=self.actor_id, kind=self.kind, software=self.software, protocol_version=PROTOCOL_VERSION
        ).SerializeToString()
        # (after a reconnection too, until the first tick: the publish waits for the connection)
        with contextlib.suppress(BrokerLost):  # (``start`` and ``ticks`` say so)
            while not self._first_input.is_set():
                await self._publish(topics.join(self.run_id, self.actor_id), hello)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._first_input.wait(), HELLO_EVERY_S)

    def _reject(self, reason: str, detail: str) -> None:
        self.rejected[reason] += 1
        who = self.actor_id
        log_refusal(
            log, self.rejected[reason], who, f"{reason} rejections", "%s: rejected %s (%s)", who, detail, reason
        )

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
            topic = str(message.topic)
            try:
                if topic.endswith("/control"):
                    self._on_control(bytes(payload), retained=bool(message.retain))
                elif message.retain:
                    # The world never retains a TickInput: someone else left it on the broker (a retained junk
                    # byte kept this stack from joining: it counted as the first input and stopped the Hellos).
                    self._reject("retained", f"a retained message on {topic}")
                else:
                    self._on_input(bytes(payload))
            except Exception:  # one message must not end the reader: the stack would wait for nothing
                log.exception("%s: a message on %s could not be handled", self.actor_id, topic)
                self.rejected["malformed"] += 1

    def _on_input(self, payload: bytes) -> None:
        """Queue a TickInput of this run (refusing what is none); beyond the bounds the oldest waiting goes."""
        if len(payload) > MAX_INPUT_BYTES:
            self._reject("oversized", f"a TickInput of {len(payload)} bytes")
            return
        ti = self._parse_input(payload)
        if ti is None:
            return
        while self._inputs.qsize() >= MAX_WAITING_INPUTS or (
            not self._inputs.empty() and self._waiting_bytes + len(payload) > MAX_WAITING_BYTES
        ):
            self._take()
            self._reject("overflow", "a waiting TickInput pushed out by newer ones")
        self._waiting_bytes += len(payload)
        self._inputs.put_nowait((time.monotonic(), payload, ti))

    def _take(self) -> _Input:
        got = self._inputs.get_nowait()
        self._waiting_bytes -= len(got[1])
        return got

    def _on_control(self, payload: bytes, *, retained: bool = False) -> None:
        """``retained``: the broker kept it from before this stack subscribed (a START of a run already under
        way, or an earlier run's); else it was published while this stack listened."""
        if not payload:  # a retained Control cleared by the next run with this id: an earlier START was stale
            if self._last is None and self._open is None:
                self.run = None
                self._started.clear()
            return
        try:
            ctrl = testbed_pb2.Control.FromString(payload)
        except DecodeError:
            self.rejected["malformed"] += 1
            return
        if ctrl.run_id != self.run_id:
            return
        # A later START replaces an earlier one (a stale retained one) until the first tick is handed out.
        if ctrl.command == testbed_pb2.Control.COMMAND_START and self._last is None and self._open is None:
            try:
                self.run = self._run_info(ctrl)
            except (ValueError, OverflowError) as exc:  # no usable epoch, frame or tick: not a START of a world
                # (an epoch of 0001-01-01T00:00:00+01:00 overflows in UTC: it ended the reader, unseen)
                self._reject("malformed", f"a Control START it cannot use ({exc})")
                return
            self._token = getattr(ctrl, "token", None)
            # a live START's token: from then on every STOP must carry it (a retained START may be a stale one of
            # an earlier run, whose token the world's join-timeout STOP does not carry)
            self._live_token = self._token if not retained else self._live_token
            self._t0 = time.monotonic()
            self._started.set()
            if not retained:  # (a stale retained START, then the world's live one, is how a stack meets a run)
                self._live_starts.add(payload)  # (the world's are the same bytes each time; a copy with its token
                # but other numbers was taken: attack review 6)
        elif ctrl.command == testbed_pb2.Control.COMMAND_STOP:
            # (until session 24's attack review 11 every STOP before the first Ack went there, after START too:
            # a forged token-less "never joined" STOP ended an honest stack in its first tick)
            if self._last is None and not self._live_token:
                self._stop_before_first_tick(ctrl, retained=retained)
                return
            token = getattr(ctrl, "token", None)
            if self._token and token != self._token:
                log.warning("%s: ignoring a STOP without this run's token", self.actor_id)
                return
            if ctrl.reason == WORLD_LOST:  # the world's Last Will: it died, or the broker restarted
                log.warning("%s: STOP %r: waiting for the world to come back", self.actor_id, WORLD_LOST)
                return
            self._stopped = ctrl
            self._stop_event.set()

    def _stop_before_first_tick(self, ctrl: testbed_pb2.Control, *, retained: bool) -> None:
        """A STOP of this run id before the first tick and before any START came live: a retained one is an earlier
        run's (ignored); one published while this stack listened is ignored too (an earlier run with this id may end
        after this stack started), unless it is the world's join timeout naming this actor (``run error: these actors
        never joined ...``, the actor among those missing or among the unknown ids that said Hello: a wrong actor id, a
        Hello refused): then ``start()`` and ``ticks()`` raise :class:`RunAborted` saying so at once, instead of waiting
        out their timeout (since session 24: the stack logged this run's STOP as an earlier run's and waited). There is
        no token before START: on an open broker a forged STOP of that form can end a stack waiting to join, as two
        different STARTs can (``StartConflict``); ``--secure`` runs let only the world publish Controls. Once a START
        has come live, every STOP must carry its token (the world's join timeout never follows its START): a forged
        token-less one ended a stack in its first tick, until its first Ack (attack review 11)."""
        reason = printable(ctrl.reason[:1000])
        if retained:
            log.info("%s: ignoring the STOP of an earlier run (%s)", self.actor_id, reason)
            return
        if self._said_never_joined(ctrl.reason):
            self._never_joined = RunAborted(
                f"run {self.run_id} ended before it started: its world says actor {self.actor_id!r} never joined "
                f"({reason}); is the actor id one of the scenario's, and the run id the run's?"
            )
            log.error("%s: %s", self.actor_id, self._never_joined)
            self._stopped = ctrl
            self._stop_event.set()
            return
        log.info("%s: ignoring a STOP before START (%s): an earlier run's with this run id?", self.actor_id, reason)

    def _said_never_joined(self, reason: str) -> bool:
        """Whether ``reason`` is the world's join timeout of this run naming this actor: among the actors that
        never joined, or (quoted) among the unknown actor ids that said Hello (``v2x.net.world``,
        ``Inbound.why_not_joined``)."""
        said = _NEVER_JOINED.match(reason)
        if said is None or said["run"] != self.run_id:
            return False
        unknown = said["rest"].partition(_UNKNOWN_HELLOS)[2]
        return (
            self.actor_id in said["missing"].split(", ")
            or unknown.startswith(repr(self.actor_id))
            or (f", {self.actor_id!r}" in unknown)
        )

    def _run_info(self, ctrl: testbed_pb2.Control) -> RunInfo:
        if ctrl.tick_us <= 0:
            raise ValueError(f"tick_us {ctrl.tick_us}")
        external = tuple(ActorStart.from_wire(a) for a in ctrl.external_actors)
        me = next((a for a in external if a.actor_id == self.actor_id), None)
        if me is None:  # a world older than protocol v1's START additions: a start at the origin
            me = ActorStart(self.actor_id, self.kind, 0.0, 0.0, 0.0, 0.0, 5.0, 2.0, 1.6, "", (), 0.0, True)
        return RunInfo(
            run_id=ctrl.run_id,
            scenario_id=ctrl.scenario_id,
            frame=LocalFrame(ctrl.origin_lat_deg, ctrl.origin_lon_deg, ctrl.origin_alt_m),
            epoch=_epoch(ctrl.epoch_utc),
            tick_s=ctrl.tick_us / 1e6,
            n_ticks=ctrl.n_ticks,
            platform_id=ctrl.platform_id,
            actor_ids=tuple(ctrl.actor_ids),
            me=me,
            external=external,
            protocol_version=ctrl.protocol_version,
            control=ctrl,
        )

    def _read_signing_key(self, path: Path) -> security_pb2.Credentials:
        try:
            creds = read_credentials(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ValueError(f"signing key {str(path)!r}: {exc}") from None
        if (creds.actor_id, creds.run_id) != (self.actor_id, self.run_id):
            got = (creds.actor_id, creds.run_id)
            raise ValueError(f"signing key {str(path)!r} is for actor, run {got}, not {(self.actor_id, self.run_id)}")
        return creds

    def _security(self, run: RunInfo) -> tuple[Signer, EnvelopeSecurity] | None:
        """This stack's signer and checks in a secure run (made once the epoch is known), else None."""
        if self._signing_key is None:
            return None
        if self._signer is None or self._checks is None:
            self.signing = self._read_signing_key(self._signing_key)  # this run's, written before its START
            self._signer = Signer(self.signing, run.epoch)
            self._checks = EnvelopeSecurity.of(self.signing.root, run.epoch)
        return self._signer, self._checks

    # -- the run ------------------------------------------------------------------------------------
    async def start(self, timeout_s: float | None = None) -> RunInfo:
        """Wait for this run's ``Control START`` (``TimeoutError`` after ``timeout_s``, ``BrokerLost`` if the
        broker is given up, ``RunAborted`` at once if the run's STOP says this actor never joined) and return it."""
        if not self._started.is_set():
            await _first(self._started, self._gone, self._stop_event, timeout_s=timeout_s)
            if not self._started.is_set():
                if self._lost is not None:
                    raise self._lost
                if self._never_joined is not None:
                    raise self._never_joined
                raise TimeoutError(f"no START for run {self.run_id} within {timeout_s} s")
        assert self.run is not None
        if self.run.control.signed and self._signing_key is None:
            raise ValueError(
                f"run {self.run_id} is signed (v2x run --secure): every envelope must be signed, and unsigned ones "
                f"reach nobody; give signing_key= the file the run wrote for {self.actor_id} "
                f'(OUT/credentials/{self.run_id}/{self.actor_id}.cred; docs/PROTOCOL.md "Signed envelopes")'
            )
        self._security(self.run)  # reads this run's signing key now: a missing or wrong file fails here
        return self.run

    async def ticks(self, *, tick_timeout_s: float | None = None) -> AsyncIterator[Tick]:
        """Every tick of the run, in order, until the final one (answer each with :meth:`ack` before asking
        for the next). Raises ``RunAborted`` on a STOP before the final tick, ``TimeoutError`` when no input
        comes for ``tick_timeout_s`` and ``BrokerLost`` at once when the broker has been away for
        ``reconnect_within_s`` (a shorter outage is waited out: the SDK reconnects). After the final tick's
        answer it returns once the world says STOP: until then it answers the world's re-sends of that tick
        (the answer may have been lost in a broker restart), for at most ``FINAL_LINGER_S``; a STOP with a
        reason (``run error: ...``) raises ``RunAborted`` there too. Inputs that are not the world's next tick
        are refused and counted (see the module's docstring)."""
        await self.start()
        while True:
            received_at, payload, ti = await self._next_input(tick_timeout_s)
            run = await self.start()  # a TickInput that overtook START waits for it
            if await self._answered_again(ti, payload) or not self._next_tick(run, ti, received_at):
                continue
            if self._realtime(run):
                received_at, payload, ti = await self._newest(run, received_at, payload, ti)
            if self._last is None and len(self._live_starts) > 1:
                raise StartConflict(
                    f"{len(self._live_starts)} different STARTs of run {self.run_id} came while waiting "
                    "for the first tick: someone publishes Controls on this broker, and which START is the world's "
                    "cannot be told (docs/SECURITY.md; run with --secure)"
                )
            tick = self._tick(run, ti, received_at)
            self._open, self._open_input = tick, payload
            # (a restarted stack's START is the retained one, which came long after t0: its first tick tells)
            first_resumed = self.resume and self._last is None
            t0 = received_at - tick.n * run.tick_s
            self._t0 = t0 if first_resumed else min(self._t0, t0)
            self._out = []
            self._first_input.set()  # the world has this actor: no more Hellos
            yield tick
            if self._open is tick:
                raise RuntimeError(f"tick {tick.n} was not acknowledged: call Stack.ack(tick, ...) in the loop")
            if tick.final:
                await self._linger()
                return

    async def _answered_again(self, ti: testbed_pb2.TickInput, payload: bytes) -> bool:
        """Whether ``ti`` asks again for a tick answered (``v2x.net.answers``), and then answer it with the
        answer given: the world's re-send, or one of two different inputs for that tick (``conflicting_input``:
        forged inputs that pushed the stack ahead must not make it refuse the world's)."""
        if self._last is None:
            return False
        again = self._answers.again(ti.tick, self._last[0], payload)
        if again is None:
            return False
        answer, differs = again
        if differs:
            self._reject("conflicting_input", f"a different TickInput for tick {ti.tick}")
        for topic, data in answer:
            await self._publish(topic, data)
        return True

    def _realtime(self, run: RunInfo) -> bool:
        """Whether this run's ticks come in real time: START says so, or (a world older than START's ``clock``)
        the stack was made with ``realtime``."""
        return self.realtime or run.realtime is True

    def _next_tick(self, run: RunInfo, ti: testbed_pb2.TickInput, received_at: float) -> bool:
        """Whether ``ti`` may be the run's next tick, else counted as ``bad_tick``: tick 0 first, then n + 1
        after n; in real time a later tick m (inputs can be lost there) only once the world's clock can be
        there: the world sends TickInput(m) no earlier than t0 + m x tick, so it cannot come before
        ``_t0`` (the earliest t0 seen) + (m - ``REALTIME_EARLY_TICKS``) x tick (since session 18: up to 10 ticks
        beyond that were taken, and a single forged TickInput(n + 10) right after tick n moved the stack a
        second ahead, and it refused the world's n + 1 .. n + 9); never past START's ``n_ticks``, and ``final``
        only there (a forged TickInput(10^6, final) ended the stack, and the run stalled blaming it); and
        ``tick_us`` as START's (else ``malformed``)."""
        last = self._last[0] if self._last is not None else -1
        skip = 0
        if self.resume and self._last is None:  # a restarted stack joins where the run is: its first tick, any
            skip = ti.tick - last - 1
        elif self._realtime(run):  # a skip: no earlier than the world's clock can have got there
            skip = math.floor((received_at - self._t0) / run.tick_s + REALTIME_EARLY_TICKS) - last - 1
        n_ticks = run.n_ticks if run.protocol_version >= 1 else None  # an older world sends none: trust ``final``
        wrong = next_tick_problem(ti.tick, ti.final, last=last, n_ticks=n_ticks, max_skip=skip)
        if wrong is not None:
            self._reject("bad_tick", f"TickInput: {wrong}")
            return False
        if ti.tick_us != run.control.tick_us:
            self._reject(
                "malformed", f"TickInput({ti.tick}) of {ti.tick_us} us ticks, START says {run.control.tick_us}"
            )
            return False
        return True

    async def _linger(self) -> None:
        """After the final tick: answer the world's re-sends of it until its STOP (or ``FINAL_LINGER_S``); a
        STOP with a reason is no normal end (``RunAborted``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FINAL_LINGER_S
        while self._stopped is None and loop.time() < deadline:
            got = await next_or_end(self._inputs, self._stop_event, deadline - loop.time())
            if got is None:
                break
            self._waiting_bytes -= len(got[1])
            _, payload, ti = got
            if not await self._answered_again(ti, payload):
                self._reject("bad_tick", f"TickInput({ti.tick}) after the final tick")
        if self._stopped is None and self._lost is not None:
            raise self._lost
        if self._stopped is not None and self._stopped.reason:
            raise RunAborted(f"run {self.run_id} ended with STOP {self._stopped.reason!r} after its final tick")

    async def _next_input(self, timeout_s: float | None) -> _Input:
        got = await next_or_end(self._inputs, self._stop_event, timeout_s)
        if got is not None:
            self._waiting_bytes -= len(got[1])
            return got
        if self._never_joined is not None:
            raise self._never_joined
        if self._stopped is not None:
            raise RunAborted(f"run {self.run_id} stopped before its final tick: {self._stopped.reason}")
        if self._lost is not None:
            raise self._lost
        raise TimeoutError(f"no TickInput for {timeout_s} s")

    async def _newest(
        self, run: RunInfo, received_at: float, payload: bytes, ti: testbed_pb2.TickInput
    ) -> tuple[float, bytes, testbed_pb2.TickInput]:
        """The newest waiting TickInput, carrying what the skipped ones told: their envelopes (an advisory
        in them counts only if echoed), collisions and ``late_ticks`` come first, in order. A waiting input
        that is no later tick the world can have sent is answered again or refused, as in :meth:`ticks`."""
        while not self._inputs.empty():
            at, raw, newer = self._take()
            if await self._answered_again(newer, raw):
                continue
            if newer.tick <= ti.tick or not self._next_tick(run, newer, at):
                if newer.tick <= ti.tick:
                    self._reject("bad_tick", f"TickInput({newer.tick}) waiting behind {ti.tick}")
                continue
            self.skipped_ticks += 1
            merged = testbed_pb2.TickInput()
            merged.CopyFrom(newer)
            for name in ("envelopes", "rx_time_us", "collisions", "late_ticks"):
                field_ = getattr(merged, name)
                del field_[:]
                field_.extend(getattr(ti, name))
                field_.extend(getattr(newer, name))
            received_at, payload, ti = at, raw, merged
        return received_at, payload, ti

    def _parse_input(self, payload: bytes) -> testbed_pb2.TickInput | None:
        ti = read_tick_input(payload, self.run_id)  # (the built-in agents' check too: one rule for every host)
        if isinstance(ti, str):
            self._reject("malformed", ti)
            return None
        return ti

    def _tick(self, run: RunInfo, ti: testbed_pb2.TickInput, received_at: float) -> Tick:
        t_s = ti.time_us / 1e6
        heard, advisories = [], []
        for raw, rx_us in zip(ti.envelopes, ti.rx_time_us, strict=True):
            h = self._decode(run, raw, rx_us / 1e6, t_s)
            if h is None:
                continue
            heard.append(h)
            if h.advisory is not None and h.advisory.target_id == self.actor_id:
                # ready to echo: when the driver got it, not when the platform raised it (docs/PROTOCOL.md
                # "Warnings"; the built-in vehicle does the same; until session 24 the platform's time was kept,
                # and the warning was recorded before the driver could have had it)
                echo = testbed_pb2.Advisory()
                echo.CopyFrom(h.advisory)
                echo.raised_at_s = h.rx_time_s
                advisories.append(echo)
        for late in ti.late_ticks:  # those Acks were dropped: report their warnings again
            for n, events in self._events:
                if n == late:
                    self._carry.extend(events)
                    self.rereported += len(events)
        g = ti.gnss
        gnss = Gnss(g.east_error_m, g.north_error_m, g.sigma_major_m, g.sigma_minor_m, g.state) if g.available else None
        tick_s = ti.tick_us / 1e6
        # The time since the tick handed out before (one tick, unless realtime skipped some): move by this.
        dt_s = tick_s if self._last is None else (ti.time_us - self._last_time_us) / 1e6
        self._last_time_us = ti.time_us
        return Tick(
            n=ti.tick,
            t_s=t_s,
            dt_s=dt_s,
            final=ti.final,
            gnss=gnss,
            heard=heard,
            advisories=advisories,
            collisions=[Collision(c.other_id, c.t_s, c.relative_speed_mps) for c in ti.collisions],
            late_ticks=list(ti.late_ticks),
            received_at=received_at,
            deadline=received_at + tick_s,
            raw=ti,
        )

    def _decode(self, run: RunInfo, raw: bytes, rx_s: float, now_s: float) -> Heard | None:
        parsed = parse_envelope(raw)
        if parsed is None:
            self.rejected["malformed"] += 1
            return None
        env, frame = parsed
        kind = frame.WhichOneof("msg")
        if kind is None:
            self.rejected["unknown_type"] += 1
            return None
        security = self._security(run)
        if security is not None:
            checks = security[1]
            verified = checks.verifier.check(env, kind)
            why = verified if isinstance(verified, str) else ""
            if isinstance(verified, Verified):
                why = self._fresh.check(verified, checks.epoch_us + round(rx_s * 1e6))
            if why:
                self.rejected[why] += 1
                return None
        heard = Heard(env.sender_id, env.link, env.tx_time_us / 1e6, rx_s, kind, frame)
        if kind == "bsm":
            try:
                remote = decode_bsm(frame.bsm, now_s=now_s, frame=run.frame, epoch=run.epoch)
            except ValueError:
                self.rejected["out_of_range"] += 1
                return None
            heard = Heard(env.sender_id, env.link, env.tx_time_us / 1e6, rx_s, kind, frame, bsm=remote)
        elif kind == "advisory":
            # Only the platform sends advisories, over Uu (docs/PROTOCOL.md "Who may send what"); and one the world
            # would refuse in this stack's Ack, which echoes it, is dropped here: an echoed NaN got an outside
            # stack's own Ack refused on every re-send and stalled the run (attack review 10)
            if (
                not run.platform_id
                or env.sender_id != run.platform_id
                or not taken_over(kind, env.link == testbed_pb2.LINK_UU)
            ):
                self._reject("not_permitted", f"an advisory from {env.sender_id[:64]!r} over link {env.link}")
                return None
            echo = testbed_pb2.Advisory()
            echo.CopyFrom(frame.advisory)
            echo.raised_at_s = rx_s
            problem = advisory_problem(echo, end_s=now_s + 1e-6, figure_names=self.figure_names)
            if problem:
                self._reject("out_of_range", f"an advisory: {problem.lstrip('.:').strip()}")
                return None
            heard = Heard(env.sender_id, env.link, env.tx_time_us / 1e6, rx_s, kind, frame, advisory=frame.advisory)
        return heard

    # -- sending ------------------------------------------------------------------------------------
    def _check_open(self, tick: Tick) -> RunInfo:
        if self._open is not tick or self.run is None:
            raise RuntimeError(f"tick {tick.n} is not the open tick (already acknowledged?)")
        return self.run

    async def send(
        self,
        tick: Tick,
        frame: frame_pb2.MessageFrame,
        *,
        link: testbed_pb2.LinkKind.ValueType = testbed_pb2.LINK_PC5,
        dest_ids: Sequence[str] = (),
    ) -> None:
        """Transmit ``frame`` in ``tick`` over ``link`` (PC5: broadcast; Uu / wired: to ``dest_ids``). For an actor
        that START says is unequipped (``equipped: false``: no OBU) nothing is sent (it MUST NOT send envelopes:
        the world refuses them, ``unequipped_sender``), said once in the log: the same stack loop serves both.
        Raises ``ValueError`` for an envelope beyond ``MAX_TX_PER_TICK`` (64) in a tick, :meth:`send_bsm`'s Uu copy
        counted (the world refuses an Ack of more, again and again, and the run stalls: attack review 11)."""
        run = self._check_open(tick)
        if not run.me.equipped:
            if not self._said_unequipped:
                self._said_unequipped = True
                # (a warning: a forged retained START saying so muted a resumed stack, unseen: attack review 8)
                log.warning("%s: START says it is unequipped (equipped: false): the SDK sends nothing", self.actor_id)
            return
        self._check_room(tick, 1)
        self.seq += 1
        env = testbed_pb2.Envelope(
            sender_id=self.actor_id,
            seq=self.seq,
            tick=tick.n,
            tx_time_us=tick.raw.time_us,
            link=link,
            dest_ids=list(dest_ids),
            frame=frame.SerializeToString(),
        )
        security = self._security(run)
        if security is not None:
            security[0].sign(env)
        item = (topics.tx(self.run_id, self.actor_id), env.SerializeToString())
        self._out.append(item)
        await self._publish(*item)

    def _check_room(self, tick: Tick, envelopes: int) -> None:
        if len(self._out) + envelopes > MAX_TX_PER_TICK:
            what = "an envelope" if envelopes == 1 else f"{envelopes} envelopes (the BSM over PC5 and its Uu copy)"
            raise ValueError(
                f"tick {tick.n}: {len(self._out)} envelopes sent already; {what} more would be over the "
                f"{MAX_TX_PER_TICK} an actor may send in a tick (the world would refuse the Ack, tx_count > "
                f"{MAX_TX_PER_TICK}, and the run would stall; docs/PROTOCOL.md)"
            )

    def bsm(self, tick: Tick, state: VehicleState, *, flags: Iterable[str] = ()) -> frame_pb2.MessageFrame:
        """The BSM of a vehicle truly in ``state`` at ``tick``: position = the GNSS fix (truth + the tick's
        error), accuracy from the reading (unavailable without a fix), the box from START, ``flags`` names of
        ``v2x.wire.bsm.VEHICLE_EVENT_BIT`` (hard braking is set from the deceleration). Counts msg_cnt."""
        run = self._check_open(tick)
        x, y = tick.fix(state.x_m, state.y_m)
        me = run.me
        own = OwnState(
            x=x,
            y=y,
            speed_mps=state.speed_mps,
            heading_rad=state.yaw_rad,
            accel_mps2=state.accel_mps2,
            length_m=me.length_m,
            width_m=me.width_m,
            height_m=me.height_m,
            kind=me.kind or self.kind,
            sigma_major_m=tick.gnss.sigma_major_m if tick.gnss else None,
            sigma_minor_m=tick.gnss.sigma_minor_m if tick.gnss else None,
            braking=state.accel_mps2 < 0,
            flags=frozenset(flags),
            z=state.z_m,
        )
        frame = encode_bsm(
            own, actor_id=self.actor_id, t_s=tick.t_s, msg_count=self.msg_count, frame=run.frame, epoch=run.epoch
        )
        self.msg_count += 1
        return frame

    async def send_bsm(self, tick: Tick, state: VehicleState, *, flags: Iterable[str] = ()) -> None:
        """Send this tick's BSM (:meth:`bsm`) over PC5 and, with ``uplink`` and a platform, the same bytes
        over Uu to it: two envelopes of the 64 a tick (``ValueError`` if they do not both fit, :meth:`send`)."""
        run = self._check_open(tick)
        copies = 2 if self.uplink and run.platform_id else 1
        if run.me.equipped:
            self._check_room(tick, copies)  # (both or neither)
        frame = self.bsm(tick, state, flags=flags)
        await self.send(tick, frame)
        if self.uplink and run.platform_id:
            await self.send(tick, frame, link=testbed_pb2.LINK_UU, dest_ids=[run.platform_id])

    def warning(
        self,
        tick: Tick,
        app: testbed_pb2.Application.ValueType,
        other_id: str,
        *,
        ttc_s: float = 0.0,
        severity: testbed_pb2.Severity.ValueType = testbed_pb2.SEVERITY_WARNING,
        figure: float = 0.0,
        figure_name: str = "",
        conflict_type: str = "",
        valid_s: float = 3.0,
        at_s: float | None = None,
        trigger: Heard | None = None,
    ) -> testbed_pb2.Advisory:
        """A warning raised on board at ``tick`` about ``other_id`` (a BSM id in hex for FCW/ICW/EBW...,
        ``{rsm id hex}/{ptcId}`` for an RSM participant, ``{rsi id hex}/rte{n}`` or ``/rts{n}`` for RSI).
        ``at_s``: when the driver is warned, inside the tick (default the tick's time; docs/PROTOCOL.md,
        "Warnings"); ``trigger``: the message whose delivery made the app raise it (its send time goes into
        ``trigger_sent_at_s``, the start of the app latency). ``figure_name``: "" or one of the apps' figure names
        (``v2x.wire.protocol.FIGURE_NAMES`` and the ``figure_names`` given to the Stack): another raises
        ``ValueError`` here (since session 24: the world refuses the whole Ack as ``out_of_range``, sends the tick
        again and again, and the run fails for want of this actor's reports)."""
        if figure_name and figure_name not in self.figure_names:
            raise ValueError(
                f"figure_name {figure_name!r} is not a figure an app reports"
                f"{did_you_mean(figure_name, self.figure_names)}"
                f" (one of {sorted(self.figure_names)}, or '' for none; docs/PROTOCOL.md \"Warnings\")"
            )
        at = tick.t_s if at_s is None else at_s
        return advisory(
            app,
            target_id=self.actor_id,
            other_id=other_id,
            source_id=self.actor_id,
            t_s=at,
            valid_s=valid_s,
            severity=severity,
            ttc_s=ttc_s,
            figure=figure,
            figure_name=figure_name,
            conflict_type=conflict_type,
            trigger_sent_at_s=None if trigger is None else trigger.tx_time_s,
        )

    async def ack(
        self,
        tick: Tick,
        state: VehicleState | testbed_pb2.TruthState | None,
        *,
        warnings: Iterable[testbed_pb2.Advisory] = (),
        notes: Iterable[str] = (),
    ) -> None:
        """Close ``tick``: the Ack with the number of envelopes sent in it, the true state, the warnings
        (raised on board, or received advisories echoed) and notes. Warnings of ticks the world reported
        late are added again. A road user's Ack carries its truth every tick (``state`` None raises
        ``ValueError``: the world would refuse the Ack, docs/PROTOCOL.md "Truth")."""
        if state is None and self.kind not in MAY_SEND:
            raise ValueError(f"{self.actor_id}: a road user's Ack must carry its truth, every tick (state None)")
        self._check_open(tick)
        # What this Ack reports, re-reports included: if it is late as well, all of it is reported again.
        events = self._carry + list(warnings)
        self._events.append((tick.n, events))
        ack = testbed_pb2.Ack(
            actor_id=self.actor_id,
            tick=tick.n,
            tx_count=len(self._out),
            events=events,
            notes=list(notes),
            rejected=dict(self.rejected),
        )
        self._carry = []
        if state is not None:
            ack.truth.CopyFrom(state.truth() if isinstance(state, VehicleState) else state)
        item = (topics.ack(self.run_id, self.actor_id), ack.SerializeToString())
        self._out.append(item)
        await self._publish(*item)
        self._last = (tick.n, self._out)
        self._answers.keep(tick.n, self._open_input, self._out)
        self._open = None
