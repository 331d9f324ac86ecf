"""``v2x conformance``: check an outside stack against protocol v1 (docs/PROTOCOL.md) in a real run.

The command runs one variant (``v2x``) of a scenario with the chosen actor marked ``external: true``, waits
for an outside stack to join it over the broker, and meanwhile listens to everything on that actor's
topics. After the run it checks what the stack sent, tick by tick, and prints a checklist:

* joined: a Hello that decodes, names the actor, protocol version 1, the scenario's kind;
* decode: every envelope and Ack parses; every frame holds a known message type;
* ids: envelope ``sender_id`` and Ack ``actor_id`` are the actor; the BSM id is SHA-256(actor id)[:8];
* units in range: every BSM decodes with ``v2x.wire.bsm.decode_bsm`` (no value outside its element's
  range) and has a position, speed and heading;
* BSM rate: exactly one BSM over PC5 per tick (10 Hz at 0.1 s ticks); for an actor with ``equipped: false``
  (no OBU) 'no envelopes' instead, which fails on any envelope, and the other checks of envelopes say SKIP;
* msg_cnt: +1 per BSM (or per tick, after ticks skipped), wrapping at 127; a Uu copy carries the same msg_cnt as
  the PC5 BSM of its tick;
* seq: from 1, one per envelope, every seq of a tick above those of the ticks before (within a tick in any order:
  the world takes them so);
* uu copy: with a platform in the scenario (and the actor's ``uplink``), each tick's BSM also goes over Uu to it
  (the platform warns only vehicles it heard over Uu; SKIP otherwise);
* tick and timestamps: envelope ``tick`` = the tick answered, ``tx_time_us`` = its ``time_us``, BSM
  ``sec_mark`` = the tick's time in ms within the UTC minute (``epoch_utc`` + ``time_us``); the run's epoch is
  the scenario's moved on by 17.25 s when that is on a whole second (as every shipped one is), so that a
  secMark from ``time_us`` alone fails;
* consistency: the BSM position is the Ack's truth plus the tick's GNSS error (within 0.1 m); speed and
  heading agree with the truth; ``accuracy.semi_major`` is the reading's sigma (255 without a fix); the actor's
  receiver is ``rtk-float`` (0.2 m per axis) when the scenario gives it a finer one, so that a BSM at the true
  position fails;
* Acks: one per tick 0..N with the truth, ``tx_count`` = the envelopes sent in that tick;
* at rest after a collision: from the TickInput that tells the stack of its collision on, its truth and BSMs
  stand (docs/PROTOCOL.md "Collisions"; SKIP in a run without one);
* a tick asked again (lockstep): once the stack has answered ``TickInput(PROBE_TICK)`` (the middle tick of a
  shorter run) the world's input is sent again and the world held until the answer comes: the same bytes
  (docs/PROTOCOL.md checklist item 16; an Ack built again can put ``rejected`` in another order);
* a lost input (``--mode realtime``): the world withholds ``TickInput(PROBE_TICK)`` from the stack, as a broker
  restart may lose one; the stack must answer one of the ticks after it (checklist item 9), which ``acks`` and
  ``BSM rate`` leave out;
* the world's view: nothing rejected, no duplicates, nothing reported late, of what came on the actor's own
  topics (``OwnCounts``: not the built-in agents' Hellos again after a broker restart, nor a Hello again at all,
  which the protocol asks for after a reconnect or a restart of the stack);
* deadline (``--mode realtime``): every Ack reached the broker within one tick of its TickInput;
* response time (lockstep, never a fail): the p95 from a TickInput to its Ack, as the listeners heard them
  (in a thread of their own, ``ListenerThread``: the world's loop in this process does not delay them); a p95
  of 35-60 ms (``NAGLE_LIKE_MS``, here and in real time) adds a hint: Nagle's algorithm (TCP_NODELAY) on the
  stack's connection or the broker's.

With ``--secure-dir`` (the files of ``v2x secure init``) the run is a secure one, as ``v2x run --secure-dir``
makes it: every party logs in as itself over TLS, the broker's grants hold, every envelope must be signed
(the actor's key for the run goes to ``OUT/credentials/PREFIX-v2x/ACTOR.cred``), and the world's view says
what the signature checks refused. The command runs the scenario through ``v2x.run.runner.run_variant``,
as ``v2x run`` does; it only listens besides.

Exit codes: 0 every check passed, 1 a check failed, 2 bad input (scenario, actor, broker URL, secure
directory), 3 no stack joined (or the run could not complete before the stack said anything, or the broker
did not answer).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from v2x import argtypes
from v2x.argtypes import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_RUN_ERROR
from v2x.logs import LOG_FORMAT
from v2x.net.clock import MODES
from v2x.sim.motion import (
    MAX_SPEED_CHANGE_MPS2,
    MOTION_HEADING_DEG,
    MOTION_TOLERANCE_M,
    SPEED_TOLERANCE_MPS,
    motion_problems,
    truth_problem,
    wrap_deg,
)
from v2x.text import printable
from v2x.wire.protocol import PROTOCOL_VERSIONS

DEFAULT_SCENARIO = "fcw"
# A scenario's epoch on a whole second (every shipped one is on a whole minute) moves on by this much, so that a
# BSM secMark from time_us alone (epoch_utc ignored) is off by 17.25 s and fails 'tick and timestamps'.
EPOCH_SHIFT = timedelta(seconds=17.25)
POS_TOLERANCE_M = 0.1
# The actor's receiver in the run: a profile whose error is well above POS_TOLERANCE_M (0.2 m per axis), when the
# scenario gives it a finer one (rtk-fixed: 0.013 m), so that a BSM at the true position, the fix ignored, fails
# 'consistent with truth' (in most ticks: the error is under 0.1 m in about 12 % of them)
NOISY_POSITIONING = "rtk-float"
HEADING_TOLERANCE_DEG = 1.0
SIZE_TOLERANCE_M = 0.01  # the BSM's size is in cm
# 'truth in motion' (v2x.sim.motion, which every run's world judges by too): from one tick's truth to the next,
# the distance moved against what the two speeds say (the mean speed times the tick: exact for a constant
# acceleration) within MOTION_TOLERANCE_M plus 10 %, the speed change against MAX_SPEED_CHANGE_MPS2, the course moved
# against the mean heading within MOTION_HEADING_DEG (moving faster than 1 m/s), and (vx, vy) against speed and
# heading. An outside stack's review passed conformance with km/h, or radians, in both its BSM and its truth.
# rejection reasons the world gives only for messages on topics other than the stack's own
NOT_THE_STACKS = frozenset({"forged", "unknown_sender", "bad_topic", "forged_control"})
# a stack's own refusals of what came on its input topic (v2x.sdk, the examples): not of the world's envelopes
INPUT_REFUSALS = frozenset({"malformed", "bad_tick", "retained", "overflow", "oversized", "conflicting_input"})


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "conformance",
        help="check an outside stack against the protocol in a real run",
        description="Run a scenario with ACTOR driven from outside, wait for an outside stack to join it, and "
        "check what it sends: decoding, units, rate, ids, msg_cnt, seq, timestamps, consistency with its "
        "truth, the answer to a tick asked again (lockstep), a lost input and the deadline (--mode realtime). "
        "Prints a checklist.",
        epilog="Exit codes: 0 pass, 1 a check failed, 2 bad input, 3 no stack joined (or no broker answered).",
    )
    p.add_argument(
        "--actor",
        required=True,
        metavar="ID",
        help="the actor the stack drives: a road user, or a roadside unit (judged by its Acks and its RSM / SSM "
        "against the world's truth)",
    )
    p.add_argument(
        "--scenario", default=DEFAULT_SCENARIO, metavar="S", help=f"scenario id or file (default {DEFAULT_SCENARIO})"
    )
    p.add_argument(
        "--broker",
        default="mqtt://127.0.0.1:1883",
        metavar="URL",
        help="mqtt://host:port (or mqtts://) of a broker your stack can reach too (default mqtt://127.0.0.1:1883)",
    )
    p.add_argument(
        "--run-id",
        metavar="PREFIX",
        help="the run is PREFIX-v2x (default conformance, or with --secure-dir the run id it was made for)",
    )
    p.add_argument(
        "--mode",
        choices=MODES,
        default="lockstep",
        help="lockstep (default): the world waits for the stack; realtime: 100 ms ticks, and the deadline is checked",
    )
    p.add_argument("--seed", type=argtypes.seed, default=0, help="random seed (default 0)")
    argtypes.add_join_timeout(p.add_argument, f"wait this long for the stack (default {argtypes.JOIN_TIMEOUT_S:g})")
    p.add_argument(
        "--secure-dir",
        type=Path,
        metavar="DIR",
        help="a secure run (docs/SECURITY.md): the files of 'v2x secure init DIR --scenario S' (its users, CA and "
        "run id); start your Mosquitto with DIR/mosquitto.conf, give --broker mqtts://..., and your stack "
        "DIR/actors/ACTOR.json and the signing key the run writes to OUT/credentials/PREFIX-v2x/ACTOR.cred",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        metavar="OUT",
        help="--secure-dir: where the run writes your stack's signing key (default results)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log the run (joins, refusals, rejections)")
    p.set_defaults(handler=cmd_conformance)


# ----------------------------------------------------------------------------------------------------------
# What was heard on the actor's topics
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Capture:
    """Every message on the actor's topics, with the time it reached the listener."""

    hellos: list[bytes] = field(default_factory=list)
    inputs: dict[int, tuple[float, Any]] = field(default_factory=dict)  # tick -> (first seen, TickInput)
    resent: set[int] = field(default_factory=set)  # the ticks whose TickInput the world sent again
    # Every TickInput heard on the actor's input topic, by tick (when, bytes), and the world's own (its
    # observer's ``on_input_bytes``): ``keep_the_worlds_inputs`` fills ``inputs`` and ``resent`` from those.
    heard_inputs: dict[int, list[tuple[float, bytes]]] = field(default_factory=dict)
    world_inputs: dict[int, bytes] = field(default_factory=dict)
    tx: list[tuple[float, bytes]] = field(default_factory=list)
    acks: list[tuple[float, bytes]] = field(default_factory=list)
    # The probes (``WorldInputs``): real time, the tick whose TickInput the world withheld from the stack (as a
    # lost message would be); lockstep, the tick whose TickInput was sent again after its answer, and when (as
    # heard here, monotonic)
    withheld: int | None = None
    resent_tick: int | None = None
    resent_at: float | None = None


def keep_the_worlds_inputs(capture: Capture) -> None:
    """``capture.inputs`` and ``resent`` from the TickInputs the world published itself: the stack is judged
    against the world's input for each tick, timed from when the listener heard those very bytes. On an open
    broker anyone may publish on the input topic, and the checker kept the first input it heard per tick,
    from anyone (an attack review failed an honest stack with forged inputs for ticks it had not reached,
    which the stack itself refused). A tick whose bytes the world's observer did not give (none: a run
    without it) is judged by the first input heard, as before."""
    from v2x.wire import testbed_pb2

    for tick, heard in capture.heard_inputs.items():
        own = capture.world_inputs.get(tick)
        mine = [(t, p) for t, p in heard if own is None or p == own]
        if not mine:
            continue
        capture.inputs[tick] = (mine[0][0], testbed_pb2.TickInput.FromString(mine[0][1]))
        if len(mine) > 1:
            capture.resent.add(tick)


@dataclass
class OwnCounts:
    """What the world counted against the actor's own topics alone (``v2x.sim.inbound.InboundStats``'s
    ``rejected_by_actor``, ``duplicates_by_actor`` and ``late_answers_by_actor``): the run's ``metrics`` count every
    actor's, and a broker restart's Hellos again from the built-in agents failed a stack's 'world's view' (an
    outside stack's review). ``late_answers``: which of ``duplicates`` came for ticks the world had closed
    without its report (real time: answers to inputs the world sent late, after a broker restart)."""

    rejected: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    late_answers: int = 0
    refused_acks: list[tuple[int, str]] = field(default_factory=list)  # (tick, why): the first few


# The tick of the probes (``probe_tick``): real time withholds its TickInput, lockstep sends it again once answered
PROBE_TICK = 20
RESEND_WAIT_S = 3.0  # lockstep: how long the world is held for the answer to the TickInput sent again


def probe_tick(n_ticks: int) -> int | None:
    """The tick whose TickInput conformance withholds (real time) or sends again (lockstep): ``PROBE_TICK``, or
    the middle of a shorter run; None in a run too short for it (a later tick must follow)."""
    tick = min(PROBE_TICK, n_ticks // 2)
    return tick if 0 < tick < n_ticks else None


@dataclass
class WorldInputs:
    """The world's observer in a conformance run: keeps the bytes of each TickInput it publishes to ``actor``,
    and the world's counts (``own``). With ``probe`` set: in real time it withholds that tick's TickInput from
    the stack (as a lost message would be: docs/PROTOCOL.md checklist item 9, the stack must take the next
    tick); in lockstep, once the stack has answered that tick, ``resend`` publishes the world's TickInput again
    and the world is held until the answer comes (checklist item 16: the same bytes) or ``RESEND_WAIT_S``."""

    capture: Capture
    actor: str
    stats: Any = None  # the world's InboundStats, once a tick has closed
    probe: int | None = None
    realtime: bool = False
    resend: Callable[[bytes], Any] | None = None  # publishes a TickInput on the actor's input topic (awaitable)

    async def on_tick(self, sim: Any, tick: int, events: list[dict[str, Any]]) -> None:
        self.stats = sim.inbound.stats
        if self.realtime or tick != self.probe or self.resend is None:
            return
        payload = self.capture.world_inputs.get(tick)
        if payload is None:
            return
        answered = _acks_of(self.capture, tick)
        if not answered:  # (not answered: the run is failing anyway, and asking again proves nothing)
            return
        self.capture.resent_tick, self.capture.resent_at = tick, time.monotonic()
        await self.resend(payload)
        deadline = time.monotonic() + RESEND_WAIT_S
        while len(_acks_of(self.capture, tick)) <= len(answered) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # (its envelopes went out before its Ack)

    def own(self) -> OwnCounts | None:
        """What the world counted of the actor's own (None before the first tick closed)."""
        if self.stats is None:
            return None
        return OwnCounts(
            dict(self.stats.rejected_by_actor.get(self.actor, {})),
            self.stats.duplicates_by_actor.get(self.actor, 0),
            self.stats.late_answers_by_actor.get(self.actor, 0),
            list(self.stats.refused_acks.get(self.actor, [])),
        )

    def on_input_bytes(self, tick: int, inputs: dict[str, bytes]) -> None:
        if self.realtime and tick == self.probe and self.actor in inputs:
            del inputs[self.actor]  # withheld: the world publishes what is left (``World._publish_inputs``)
            self.capture.withheld = tick
            return
        payload = inputs.get(self.actor)
        if payload is not None:
            self.capture.world_inputs[tick] = payload


def _acks_of(capture: Capture, tick: int) -> list[tuple[float, bytes]]:
    """The Acks heard for ``tick`` (those that parse), in order."""
    from v2x.wire import testbed_pb2

    out = []
    for at, raw in list(capture.acks):
        try:
            if testbed_pb2.Ack.FromString(raw).tick == tick:
                out.append((at, raw))
        except DecodeError:
            continue
    return out


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    problems: list[str] = field(default_factory=list)
    skipped: bool = False  # nothing to judge (e.g. no envelope came): neither a pass nor a fail

    @property
    def status(self) -> str:
        return "FAIL" if not self.passed else "SKIP" if self.skipped else "PASS"


def _motion_problems(acks: dict[int, Any], capture: Capture, tick_s: float) -> list[str]:
    """'truth in motion' (``v2x.sim.motion``, the rules every run's world judges by too): what the stack's
    truths of consecutive ticks say about themselves. Ticks whose inputs report a collision are left out (the
    world then holds the road user where it touched, whatever it had moved)."""
    truths = {n: a.truth for n, a in acks.items() if a.HasField("truth")}
    crashed = {n for n, (_, ti) in capture.inputs.items() if len(ti.collisions)}
    problems = []
    for n, tr in sorted(truths.items()):
        if problem := truth_problem(tr):
            problems.append(f"tick {n}: {problem}")
        nxt = truths.get(n + 1)
        if nxt is None or crashed & {n + 1, n + 2}:
            continue
        problems += [f"tick {n} -> {n + 1}: {p}" for p in motion_problems(tr, nxt, tick_s)]
    return problems


def _rest_problems(
    acks: dict[int, Any], capture: Capture, pc5_bsms: dict[int, list[Any]]
) -> tuple[list[str], int | None]:
    """'at rest after a collision' (docs/PROTOCOL.md "Collisions"): from the first TickInput that tells the
    stack of a collision on, its truth and its BSMs say it stands (speed within ``SPEED_TOLERANCE_MPS``): a
    stack that drove on through the wreck passed every check (an outside review), and its moving BSMs mislead
    the apps of those behind it. The problems, and that first tick (None: no collision in the run)."""
    told = min((n for n, (_, ti) in capture.inputs.items() if len(ti.collisions)), default=None)
    if told is None:
        return [], None
    problems = []
    for n, ack in sorted(acks.items()):
        if n >= told and ack.HasField("truth") and ack.truth.speed_mps > SPEED_TOLERANCE_MPS:
            problems.append(f"tick {n}: truth speed {ack.truth.speed_mps:.2f} m/s after its collision")
    for n in sorted(k for k in pc5_bsms if k >= told):
        for _, remote in pc5_bsms[n][:1]:
            if remote.speed_mps > SPEED_TOLERANCE_MPS:
                problems.append(f"tick {n}: BSM speed {remote.speed_mps:.2f} m/s after its collision")
    if len(problems) > 6:
        problems = [*problems[:5], f"... and {len(problems) - 5} more"]
    return problems, told


class Checklist:
    def __init__(self) -> None:
        self.checks: list[Check] = []

    def add(self, name: str, problems: list[str], ok_detail: str, *, nothing: str = "") -> None:
        """A check: failed with ``problems``, else passed with ``ok_detail``; ``nothing`` (what did not come,
        e.g. "no envelope") makes a check without problems a SKIP, not a PASS: it had nothing to judge."""
        detail = ok_detail if not problems else f"{len(problems)} problem(s): " + "; ".join(problems[:3])
        if len(problems) > 3:
            detail += f"; ... ({len(problems) - 3} more)"
        skipped = bool(nothing) and not problems
        if skipped:
            detail = f"nothing to check: {nothing}"
        self.checks.append(Check(name, not problems, detail, problems, skipped))

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def print(self) -> None:
        for c in self.checks:
            print(f"  {c.status} {c.name}: {c.detail}")


def _repeated_for_resent_inputs(capture: Capture) -> int:
    """How many of the stack's messages repeat, byte for byte, one it sent before for a tick whose TickInput
    the world sent again: what docs/PROTOCOL.md ("Lockstep") asks of a stack that gets an input again (the
    same envelopes and the same Ack), which the world then counts as duplicates. Those are not a fault."""
    from v2x.wire import testbed_pb2

    seen: set[bytes] = set()
    repeated = 0
    for kind, payloads in (("tx", capture.tx), ("ack", capture.acks)):
        for _, payload in payloads:
            if payload not in seen:
                seen.add(payload)
                continue
            try:
                msg = testbed_pb2.Envelope.FromString(payload) if kind == "tx" else testbed_pb2.Ack.FromString(payload)
            except DecodeError:
                continue
            repeated += msg.tick in capture.resent
    return repeated


# After the withheld input (real time), the stack must answer one of this many ticks that follow it
LOST_INPUT_WITHIN_TICKS = 5


def _lost_input_problems(capture: Capture, acks: dict[int, Any], n_ticks: int) -> tuple[list[str], str]:
    """'a lost input' (real time; docs/PROTOCOL.md checklist item 9): the world withheld TickInput(w) from the
    stack, as a message lost in a broker restart would be; the stack must take a later tick and answer it (a
    Rust stack that took only n + 1 after n passed conformance and then refused every tick of a run after a
    broker restart lost one input: an outside stack's review)."""
    w = capture.withheld
    if w is None:
        return [], ""
    after = range(w + 1, min(w + LOST_INPUT_WITHIN_TICKS, n_ticks) + 1)
    answered = [n for n in after if n in acks]
    if answered:
        return [], f"TickInput({w}) withheld (as a lost message would be): the stack took TickInput({answered[0]}) next"
    later = sorted(n for n in acks if n > w)
    return [
        f"TickInput({w}) was withheld (as a message lost in a broker restart would be), and the stack answered none "
        f"of ticks {after.start}..{after.stop - 1}"
        + (f" (the next it answered: {later[0]})" if later else " nor any later one")
        + ": in real time (START's clock is CLOCK_REALTIME) a stack MUST take a later tick than n + 1 when the "
        "world's clock can be there, no earlier than t0 + (m - 1) x tick (docs/PROTOCOL.md checklist item 9); "
        "refusing it as bad_tick stalls the stack for the rest of the run"
    ], ""


def _envelopes_of(
    capture: Capture, tick: int | None, *, before: float | None = None, after: float | None = None
) -> list[bytes]:
    """The envelopes heard for ``tick`` (those that parse), heard before ``before`` or from ``after`` on."""
    from v2x.wire import testbed_pb2

    out: list[bytes] = []
    if tick is None or (before is None and after is None):
        return out
    for t, raw in list(capture.tx):
        if (before is not None and t >= before) or (after is not None and t < after):
            continue
        with contextlib.suppress(DecodeError):
            if testbed_pb2.Envelope.FromString(raw).tick == tick:
                out.append(raw)
    return out


def _resent_problems(capture: Capture) -> tuple[list[str], str]:
    """'a tick asked again' (lockstep; docs/PROTOCOL.md checklist item 16): the world's TickInput(r) was sent again
    after the stack had answered it (as the world does when an answer is lost); the stack must answer it with the
    very bytes it sent (the world refuses another Ack for a tick as ``conflicting_ack``). Conformance never asked
    a tick again before, so a stack that rebuilt its Ack (prost's HashMap for ``rejected`` encodes in another
    order each time) passed (an outside Rust stack's review)."""
    from v2x.wire import testbed_pb2

    r, at = capture.resent_tick, capture.resent_at
    if r is None or at is None:
        return [], ""
    acks = _acks_of(capture, r)
    first = [raw for t, raw in acks if t < at]
    again = [raw for t, raw in acks if t >= at]

    said = f"TickInput({r}) sent again after its answer"
    if not first:
        return [], ""
    if not again:
        return [
            f"{said}: no answer came within {RESEND_WAIT_S:g} s; a stack answers a tick asked again with what it "
            'sent for it (the world asks again when an answer was lost: docs/PROTOCOL.md "Lockstep", checklist '
            "item 16)"
        ], ""
    problems = []
    for raw in again:
        if raw == first[0]:
            continue
        if testbed_pb2.Ack.FromString(raw) == testbed_pb2.Ack.FromString(first[0]):
            problems.append(
                f"{said}: the same Ack in other bytes, which the world refuses (conflicting_ack): a map "
                "(Ack.rejected) encoded in another order? (Rust prost's default HashMap iterates in a new order per "
                'map: prost_build::Config::btree_map(["."]); or keep the bytes published and send them again: '
                'docs/PROTOCOL.md "Lockstep", "Keep the bytes")'
            )
        else:
            problems.append(
                f"{said}: a different Ack, which the world refuses (conflicting_ack): send again the bytes published "
                "for that tick (docs/PROTOCOL.md checklist item 16)"
            )
        break
    sent, resent = set(_envelopes_of(capture, r, before=at)), set(_envelopes_of(capture, r, after=at))
    if resent - sent:
        problems.append(
            f"{said}: {len(resent - sent)} envelope(s) not byte for byte those sent for it the first time (the "
            "world counts them as new: send the kept bytes again)"
        )
    return problems, f"{said}: answered with the same bytes ({len(again)} Ack, {len(resent)} envelope(s))"


def analyse(
    capture: Capture,
    *,
    actor_id: str,
    kind: str,
    epoch: datetime,
    frame: Any,
    tick_s: float,
    n_ticks: int,
    platform_id: str,
    metrics: dict[str, Any] | None,
    realtime: bool,
    box_m: tuple[float, float] | None = None,
    uplink: bool = False,
    equipped: bool = True,
    own: OwnCounts | None = None,
    roadside: bool = False,
) -> Checklist:
    """The checklist for what ``actor_id`` sent in one run (``metrics``: the world's, None if it failed;
    ``box_m``: the actor's length and width in the scenario, which its BSMs' ``size`` must state; ``uplink``:
    the scenario has it send its BSMs to ``platform_id`` over Uu too; ``equipped`` false: it has no OBU and
    must send no envelope, so the checks of envelopes say SKIP and 'no envelopes' fails on any; ``own``: what
    the world counted on the actor's own topics, which the world's view judges instead of the whole run's
    ``metrics``, when given; ``roadside``: the actor is a roadside unit, which sends no BSM and reports no truth:
    the checks of BSMs and truths are left out and 'perception' judges its RSM / SSM against the world's truth)."""
    from v2x import units
    from v2x.wire import testbed_pb2
    from v2x.wire.bsm import decode_bsm
    from v2x.wire.envelope import parse_envelope, temporary_id

    out = Checklist()

    # -- joining ------------------------------------------------------------------------------------
    problems = []
    versions, kinds = set(), set()
    for raw in capture.hellos:
        try:
            hello = testbed_pb2.Hello.FromString(raw)
        except DecodeError:
            problems.append("a Hello does not parse")
            continue
        if hello.actor_id != actor_id:
            problems.append(f"Hello.actor_id {hello.actor_id!r} is not {actor_id!r}")
        versions.add(hello.protocol_version)
        kinds.add(hello.kind)
    spoken = "/".join(map(str, PROTOCOL_VERSIONS))
    if versions - set(PROTOCOL_VERSIONS):
        problems.append(f"Hello.protocol_version {sorted(versions - set(PROTOCOL_VERSIONS))}, expected {spoken}")
    if kinds - {kind}:
        problems.append(f"Hello.kind {sorted(kinds - {kind})}, the scenario says {kind!r}")
    out.add("joined", problems, f"{len(capture.hellos)} Hello(s), protocol {spoken}, kind {kind}")

    # -- Acks, parsed first (a problem of decoding or ids counts in those checks) ---------------------------
    decode_problems: list[str] = []
    id_problems: list[str] = []
    acks: dict[int, Any] = {}
    ack_at: dict[int, float] = {}
    for at, raw in capture.acks:
        try:
            ack = testbed_pb2.Ack.FromString(raw)
        except DecodeError:
            decode_problems.append("an Ack does not parse")
            continue
        if ack.actor_id != actor_id:
            id_problems.append(f"tick {ack.tick}: Ack.actor_id {ack.actor_id!r}")
        if ack.tick not in acks:
            acks[ack.tick] = ack
            ack_at[ack.tick] = at

    # -- envelopes ------------------------------------------------------------------------------------
    range_problems, tick_problems, seq_problems = [], [], []
    cnt_problems, time_problems, truth_problems = [], [], []
    bsm_id = temporary_id(actor_id)
    seen: dict[bytes, int] = {}
    seqs: dict[int, list[int]] = defaultdict(list)  # tick -> the seq of each distinct envelope, as they came
    pc5_bsms: dict[int, list[Any]] = defaultdict(list)  # tick -> BSMs over PC5
    uu_bsms: dict[int, list[Any]] = defaultdict(list)
    tx_per_tick: Counter[int] = Counter()
    for _at, raw in capture.tx:
        if raw in seen:
            continue  # a retransmission of the same bytes (the world asked again)
        seen[raw] = 1
        parsed = parse_envelope(raw)
        if parsed is None:
            decode_problems.append("an envelope (or its frame) does not parse")
            continue
        env, fr = parsed
        which = fr.WhichOneof("msg")
        if which is None:
            decode_problems.append(f"tick {env.tick}: a frame with no known message type")
            continue
        if env.sender_id != actor_id:
            id_problems.append(f"tick {env.tick}: Envelope.sender_id {env.sender_id!r}")
        seqs[env.tick].append(env.seq)
        tx_per_tick[env.tick] += 1
        ti = capture.inputs.get(env.tick)
        if ti is None:
            tick_problems.append(f"an envelope for tick {env.tick}, which was never sent to the stack")
            continue
        if env.tx_time_us != ti[1].time_us:
            tick_problems.append(f"tick {env.tick}: tx_time_us {env.tx_time_us}, the tick's time_us is {ti[1].time_us}")
        if env.link == testbed_pb2.LINK_UNSPECIFIED:
            tick_problems.append(f"tick {env.tick}: link unspecified")
        if which != "bsm":
            continue
        bsm = fr.bsm
        if bytes(bsm.id) != bsm_id:
            id_problems.append(f"tick {env.tick}: BSM id {bytes(bsm.id).hex()}, expected {bsm_id.hex()}")
        t_s = units.s_of(ti[1].time_us)
        try:
            remote = decode_bsm(bsm, now_s=t_s, frame=frame, epoch=epoch)
        except ValueError as exc:
            range_problems.append(f"tick {env.tick}: {exc}")
            continue
        if remote is None:
            range_problems.append(f"tick {env.tick}: BSM without position, speed or heading")
            continue
        if env.link == testbed_pb2.LINK_PC5:
            pc5_bsms[env.tick].append((bsm, remote))
        else:
            uu_bsms[env.tick].append((bsm, remote))
            if env.link == testbed_pb2.LINK_UU and platform_id and list(env.dest_ids) != [platform_id]:
                tick_problems.append(f"tick {env.tick}: Uu BSM to {list(env.dest_ids)}, the platform is {platform_id}")
        want_mark = units.sec_mark(t_s, epoch)
        diff = (bsm.sec_mark - want_mark + 30000) % 60000 - 30000
        if abs(diff) > 1:
            time_problems.append(
                f"tick {env.tick}: secMark {bsm.sec_mark}, the tick's time is {want_mark} ({diff:+d} ms)"
            )
    no_tx = "" if seen else "no envelope came"
    n_bsms = sum(len(v) for v in pc5_bsms.values()) + sum(len(v) for v in uu_bsms.values())
    no_bsm = "" if n_bsms else no_tx or "no BSM came"
    # An unequipped actor (no OBU) sends no envelope (docs/PROTOCOL.md "A tick"): the checks of envelopes have
    # nothing to judge, and 'no envelopes' fails on any it sent (they demanded a BSM every tick: no stack could
    # pass for such an actor, an outside stack's review)
    unequipped = "" if equipped else "the actor is unequipped (equipped: false) and sends no envelope"

    def envelopes(name: str, problems: list[str], ok_detail: str, nothing: str) -> None:
        out.add(name, [] if unequipped else problems, ok_detail, nothing=unequipped or nothing)

    if equipped:
        out.add("decode", decode_problems, f"{len(seen)} envelope(s) parse, known message types", nothing=no_tx)
        ids = f"sender_id {actor_id}" + ("" if roadside else f", BSM id {bsm_id.hex()}")
        out.add("ids", id_problems, ids, nothing=no_tx)
    else:  # (its Acks, and whatever envelopes it sent all the same)
        nothing = "" if acks or seen else "no Ack came"
        out.add("decode", decode_problems, f"{len(acks)} Ack(s) parse", nothing=nothing)
        out.add("ids", id_problems, f"Ack actor_id {actor_id}", nothing=nothing)
    if not roadside:
        envelopes("units in range", range_problems, "every BSM decodes within its elements' ranges", no_bsm)

    # The ticks the stack was asked for: all of them in a run that completed, else those whose TickInput came
    # (a stack refused at Hello got none; one that went silent is judged up to the tick it did not answer).
    ran = list(range(n_ticks + 1)) if metrics is not None else sorted(n for n in capture.inputs if 0 <= n <= n_ticks)
    ran = [n for n in ran if n != capture.withheld]  # (real time: the input the stack never got)
    not_run = "" if ran else "no TickInput came (the run did not start)"
    missing = [n for n in ran if len(pc5_bsms.get(n, [])) != 1]
    rate_problems = []
    if missing:
        none = [n for n in missing if not pc5_bsms.get(n)]
        many = [n for n in missing if len(pc5_bsms.get(n, [])) > 1]
        n_bsm = sum(len(pc5_bsms.get(n, [])) for n in ran)
        rate = n_bsm / (len(ran) * tick_s)
        if none:
            rate_problems.append(f"no PC5 BSM in {len(none)} of {len(ran)} ticks (first: {none[:5]}); {rate:.1f} Hz")
        if many:
            rate_problems.append(f"several PC5 BSMs in ticks {many[:5]}")
    if roadside:
        pass  # (an RSU sends what its jobs ask, no BSM)
    elif equipped:
        out.add("BSM rate", rate_problems, f"one PC5 BSM per tick ({1 / tick_s:.0f} Hz)", nothing=not_run)
    else:
        sent = (
            [f"{len(seen)} envelope(s) (first ticks: {sorted(tx_per_tick)[:5]}): an actor with equipped: false "
             "has no OBU and MUST NOT send any (the world refuses them, unequipped_sender)"] if seen else []
        )  # fmt: skip
        out.add("no envelopes", sent, "none sent, as an unequipped actor must (equipped: false)", nothing=not_run)

    prev, prev_n = None, 0
    for n in sorted(pc5_bsms):
        for bsm, _remote in pc5_bsms[n]:
            # +1 per BSM, or per tick (`tick mod 128`, which PROTOCOL.md suggests, after ticks a late real-time
            # stack skipped: an outside review had both FAIL)
            if prev is not None:  # (the per-tick step only across ticks: two BSMs in one tick still step by one)
                allowed = {(prev + 1) % 128, (prev + max(1, n - prev_n)) % 128}
                if bsm.msg_cnt not in allowed:
                    cnt_problems.append(f"tick {n}: msg_cnt {bsm.msg_cnt} after {prev}")
            prev, prev_n = bsm.msg_cnt, n
        for bsm, _ in uu_bsms.get(n, []):
            if pc5_bsms[n] and bsm.msg_cnt != pc5_bsms[n][0][0].msg_cnt:
                cnt_problems.append(
                    f"tick {n}: the Uu copy has msg_cnt {bsm.msg_cnt}, the PC5 BSM {pc5_bsms[n][0][0].msg_cnt}"
                )
    if not roadside:
        envelopes(
            "msg_cnt", cnt_problems, "+1 per BSM (or per tick), wrapping at 127; Uu copies carry the same", no_bsm
        )
    # seq (docs/PROTOCOL.md "Duplicates"): from 1, above every seq of the ticks before, one per envelope; within a
    # tick the order is free (the world accepts a new seq after a higher one: a stack with a thread per link
    # failed here for publishing its Uu copy before its PC5 BSM, an outside stack's review)
    before = 0  # the highest seq of the ticks before
    for n in sorted(seqs):
        low = sorted(q for q in seqs[n] if q <= before)
        if low:
            seq_problems.append(
                f"tick {n}: seq {low[0]}, " + (f"not above {before} of an earlier tick" if before else "from 1 on")
            )
        twice = sorted(q for q, k in Counter(seqs[n]).items() if k > 1)
        if twice:
            seq_problems.append(f"tick {n}: seq {twice[0]} on two different envelopes")
        before = max(before, *seqs[n])
    envelopes(
        "seq",
        seq_problems,
        f"from 1, one per envelope, above every seq of the ticks before; any order within a tick (last {before})",
        no_tx,
    )
    no_copy = [n for n in sorted(pc5_bsms) if not uu_bsms.get(n)]
    if roadside:
        problems, detail, nothing = perception_check(metrics, actor_id)
        out.add("perception", problems, detail, nothing=nothing if metrics is not None else not_run or nothing)
    else:
        envelopes(
            "uu copy",
            [f"no Uu copy of the BSM to {platform_id} in {len(no_copy)} tick(s) (first: {no_copy[:5]}): the "
             "platform warns only vehicles it heard over Uu"] if no_copy and uplink and platform_id else [],
            f"each tick's BSM also over Uu to {platform_id}",
            no_bsm if uplink and platform_id else "no platform in this scenario, or the actor's uplink is off",
        )  # fmt: skip

    # -- acks -----------------------------------------------------------------------------------------
    ack_problems = []
    no_ack = [n for n in ran if n not in acks]
    if no_ack:
        ack_problems.append(f"no Ack for {len(no_ack)} tick(s) (first: {no_ack[:5]})")
    first_bsm = min(pc5_bsms, default=None)  # (the BSM size is judged once, on the first)
    for n, ack in sorted(acks.items()):
        if not ack.HasField("truth") and not roadside:
            ack_problems.append(f"tick {n}: Ack without truth")
        if ack.tx_count != tx_per_tick.get(n, 0):
            ack_problems.append(f"tick {n}: tx_count {ack.tx_count}, {tx_per_tick.get(n, 0)} envelope(s) sent")
        for bsm, remote in pc5_bsms.get(n, [])[:1]:
            if not ack.HasField("truth"):
                continue
            tr = ack.truth
            g = capture.inputs[n][1].gnss
            ex, ny = (g.east_error_m, g.north_error_m) if g.available else (0.0, 0.0)
            off = math.hypot(remote.x - (tr.x_m + ex), remote.y - (tr.y_m + ny))
            if off > POS_TOLERANCE_M:
                truth_problems.append(f"tick {n}: BSM position {off:.2f} m from truth + GNSS error")
            if abs(remote.speed_mps - tr.speed_mps) > SPEED_TOLERANCE_MPS:
                truth_problems.append(f"tick {n}: BSM speed {remote.speed_mps:.2f}, truth {tr.speed_mps:.2f} m/s")
            if tr.speed_mps > 0.5:
                dh = wrap_deg(units.enu_yaw_rad_to_compass_deg(remote.heading_rad) - tr.heading_deg)
                if abs(dh) > HEADING_TOLERANCE_DEG:
                    truth_problems.append(f"tick {n}: BSM heading {dh:+.1f} deg off the truth")
            if (
                box_m is not None
                and n == first_bsm
                and not (
                    abs(remote.length_m - box_m[0]) <= SIZE_TOLERANCE_M
                    and abs(remote.width_m - box_m[1]) <= SIZE_TOLERANCE_M
                )
            ):  # (once: a stack sends the same size every tick; a truck that sent none read as a 5 x 2 m car)
                truth_problems.append(
                    f"BSM size {remote.length_m:.2f} x {remote.width_m:.2f} m, the scenario's box "
                    f"{box_m[0]:.2f} x {box_m[1]:.2f} m (size.length and .width in cm; 0 reads as 5 x 2 m)"
                )
            want = units.semi_major_to_wire(g.sigma_major_m if g.available else None)
            if bsm.accuracy.semi_major != want:
                truth_problems.append(
                    f"tick {n}: accuracy.semi_major {bsm.accuracy.semi_major}, the reading says {want} "
                    + (
                        f"(its sigma_major_m {g.sigma_major_m:.5f} in 0.05 m, rounded up: never better than the truth)"
                        if g.available
                        else "(255: no fix)"
                    )
                )
    envelopes(
        "tick and timestamps",
        tick_problems + time_problems,
        "tick, tx_time_us and secMark match the tick answered",
        no_tx,
    )
    judged = any(n in acks and acks[n].HasField("truth") for n in pc5_bsms)
    if not roadside:  # (an RSU sends no BSM and reports no truth: it is judged by its RSM / SSM, 'perception')
        envelopes(
            "consistent with truth",
            truth_problems,
            "BSM = truth + GNSS error; speed, heading and accuracy agree",
            "" if judged else no_bsm or "no PC5 BSM with an Ack carrying truth for its tick",
        )
        out.add(
            "truth in motion",
            _motion_problems(acks, capture, tick_s),
            f"each tick's truth moves to the next as its speed ({MOTION_TOLERANCE_M:g} m + 10 %, a change of at most "
            f"{MAX_SPEED_CHANGE_MPS2:g} m/s^2) and heading ({MOTION_HEADING_DEG:g} deg) say, and (vx, vy) agrees with "
            "them",
            nothing="" if sum(a.HasField("truth") for a in acks.values()) >= 2 else not_run or "no two Acks with truth",
        )
        rest, told = _rest_problems(acks, capture, pc5_bsms)
        out.add(
            "at rest after a collision",
            rest,
            f"from TickInput({told}), which told of its collision, "
            + ("its truth and BSMs stand" if pc5_bsms else "its truth stands"),
            nothing="" if told is not None else not_run or "no collision in this run",
        )
    # what the world refused on its ack topic (the listener cannot tell a refused Ack from one the world took)
    if own is not None:
        ack_problems += [f"tick {n}: the world refused an Ack: {printable(why)}" for n, why in own.refused_acks]
    out.add(
        "acks",
        ack_problems,
        f"one per tick {'0..' + str(n_ticks) if metrics is not None else f'run ({len(ran)})'}, with "
        + ("tx_count" if roadside else "truth and tx_count")
        + (f" (but {capture.withheld}, withheld)" if capture.withheld is not None else ""),
        nothing=not_run,
    )
    if realtime:
        lost, detail = _lost_input_problems(capture, acks, n_ticks)
        out.add(
            "a lost input", lost, detail, nothing="" if capture.withheld is not None else not_run or "none withheld"
        )
    else:
        again, detail = _resent_problems(capture)
        out.add(
            "a tick asked again",
            again,
            detail,
            nothing=""
            if capture.resent_at is not None
            else not_run
            or ("no tick was sent again (the run ended, or the stack did not answer, before the probe's tick)"),
        )

    # Real time: the Acks that came more than a tick after their input as heard here (the stack's lateness)
    slow = [n for n in ack_at if n in capture.inputs and ack_at[n] - capture.inputs[n][0] > tick_s]

    # -- the world's view -------------------------------------------------------------------------------
    world_problems = []
    recovered = answered_late = 0
    refused_hello = not ran and not out.checks[0].passed  # the world refused the Hello: 'joined' says why
    # what the world refused on topics the stack cannot publish on (the run's own sealed parties', unknown
    # actors', the control topic) is someone else's doing on the broker, not the stack's
    # (``own``: what came on the stack's own topics; the whole run's counts hold the built-in agents' too,
    # such as their Hellos again after a broker restart)
    rejected = own.rejected if own is not None else (metrics or {}).get("rejected", {})
    refused = {k: n for k, n in rejected.items() if k not in NOT_THE_STACKS}
    probe_copies = len(_envelopes_of(capture, capture.resent_tick, after=capture.resent_at))
    if probe_copies and refused.get("replayed"):
        # (a signed run: the world had closed the tick conformance asked again, and takes its signed envelopes
        # sent again as replays; the world's own re-send comes while the tick is open)
        refused["replayed"] -= min(refused["replayed"], probe_copies)
        refused = {k: n for k, n in refused.items() if n}
    if metrics is None and not refused_hello:
        world_problems.append("the run did not complete")
    if refused:  # (also when the run did not complete: a refused Ack stalls it, an outside C stack's review)
        world_problems.append(f"rejected by the world: {refused}")
    if metrics is not None:
        duplicates = own.duplicates if own is not None else metrics.get("duplicates", 0)
        late = (
            metrics.get("late_reports_by_actor", {}).get(actor_id, 0)
            if own is not None
            else metrics.get("late_reports", 0)
        )
        recovered = min(duplicates, _repeated_for_resent_inputs(capture))
        if realtime and not slow and own is not None:
            # Its answers for ticks the world closed without them, to inputs that went out late (after a broker
            # restart the world sends the inputs it held one after the other): the deadline check's late reports
            # that are not the stack's doing, so neither are the duplicates they make (an outside C stack's
            # review: every stack, the SDK's example too, failed here after a broker restart)
            answered_late = min(duplicates - recovered, own.late_answers)
        if duplicates > recovered + answered_late:  # beyond what the recovery rules ask for
            world_problems.append(
                f"{duplicates} duplicate(s)"
                + (" or message(s) after their tick closed" if late else "")
                + (f", {recovered} of them answering an input sent again" if recovered else "")
                + (
                    f", {answered_late} answering an input the world sent after its tick closed"
                    if answered_late
                    else ""
                )
            )
        if not realtime and late:  # (real time: the deadline check below)
            world_problems.append(f"{late} report(s) late")
        theirs = metrics.get("rejected_by_agents", {}).get(actor_id) or {}
        # what it refused of the envelopes the world handed it (the world checked them first: a refusal there
        # is a decoder's or verifier's disagreement); what it refused on its input topic (junk, a far tick, a
        # retained message) anyone on an open broker can publish, and a stack that refused the world's own
        # inputs fails 'acks' anyway (an attack review: a third party's junk failed an honest stack here)
        heard = {k: n for k, n in theirs.items() if k not in INPUT_REFUSALS}
        if heard:
            world_problems.append(f"the stack reports rejecting {heard}")
    resent = f" (but the {recovered} copies of messages the world asked for again)" if recovered else ""
    if answered_late:
        resent += f" (but {answered_late} message(s) answering inputs the world sent after their tick closed)"
    late_note = "" if realtime else ", nothing late"
    noise = {
        k: n
        for k, n in ((metrics or {}).get("rejected_by_agents", {}).get(actor_id) or {}).items()
        if k in INPUT_REFUSALS
    }
    said = f"; the stack refused on its input topic {noise} (anyone's to publish on an open broker)" if noise else ""
    out.add(
        "world's view",
        world_problems,
        f"nothing rejected, no duplicates{resent}{late_note}{said}",
        nothing="the run did not start (see 'joined')" if refused_hello and metrics is None else "",
    )

    # -- deadline ---------------------------------------------------------------------------------------
    delays = sorted(ack_at[n] - capture.inputs[n][0] for n in ack_at if n in capture.inputs)
    p95 = delays[int(0.95 * (len(delays) - 1))] * 1000 if delays else float("nan")
    no_delay = "" if delays else "no Ack answered a TickInput"
    if realtime:
        # Two clocks: this listener times each Ack from when it heard the TickInput; the world closes tick n at
        # t0 + (n + 1) x tick whenever the input went out. A stack is late when it took longer than a tick after
        # its input; a late report the world counted when every Ack came within a tick of its input here is
        # the world's or the broker's lateness (a loaded machine), said in the detail, not the stack's.
        counted = int((metrics or {}).get("late_reports_by_actor", {}).get(actor_id, 0))
        if capture.withheld is not None and capture.withheld not in acks:
            counted -= 1  # (the tick whose input was withheld closed without its report)
        problems = (
            [f"{len(slow)} Ack(s) later than {tick_s * 1000:.0f} ms after their input (first: {sorted(slow)[:5]})"]
            + ([f"the world closed {counted} tick(s) without its report"] if counted else [])
            if slow
            else []
        )
        detail = f"every Ack within {tick_s * 1000:.0f} ms of its input (p95 {p95:.1f} ms)" + nagle_hint(p95)
        if counted and not slow and not no_ack:  # (ticks never answered: 'acks' fails, and this is the stack's doing)
            detail += (
                f"; the world closed {counted} tick(s) without its report all the same: its inputs went out late "
                "(after a broker restart) or the broker passed the Acks on late (a loaded machine), not the stack's "
                "doing, nor the duplicates its answers for those ticks made (world's view)"
            )
        out.add("real-time deadline", problems, detail, nothing=no_delay)
    else:
        out.add(
            "response time",
            [],
            f"p95 {p95:.1f} ms from TickInput to Ack as heard here, the broker's hops included (lockstep: no deadline)"
            + nagle_hint(p95),
            nothing=no_delay,
        )
    return out


def perception_check(metrics: dict[str, Any] | None, actor_id: str) -> tuple[list[str], str, str]:
    """'perception' of a roadside unit: the gross errors the world found in its RSM / SSM (``v2x.sim.perception``:
    each participant against the truth at the time it states) and the data age at delivery, as (problems, the
    detail of a pass, why there is nothing to judge: it sent none, or the run did not complete)."""
    from v2x.sim.perception import ERROR_KINDS, FUTURE_S, POSITION_GROSS_M, SPEED_GROSS_MPS, STALE_S

    counts = (metrics or {}).get("perception_errors", {}).get(actor_id)
    if counts is None:
        return [], "", "no RSM or SSM came" if metrics is not None else "the run did not complete"
    ages = ", ".join(
        f"{m.upper()} data age p99 {a['p99']} ms" for m, a in (metrics or {}).get("data_age_ms_by_message", {}).items()
    )
    what = {
        "position": f"no road user of its type within {POSITION_GROSS_M:g} m at the time it states",
        "speed": f"speed more than {SPEED_GROSS_MPS:g} m/s off the road user's (km/h for m/s?)",
        "future": f"stated more than {FUTURE_S * 1000:g} ms after the send time",
        "stale": f"stated more than {STALE_S:g} s before the send time (every receiver drops it)",
    }
    n = counts["participants"]
    problems = [f"{counts[e]} of {n} participant(s): {what[e]}" for e in ERROR_KINDS if counts[e]]
    return problems, f"{n} participant(s) agree with the truth at their secMark ({ages or 'none delivered'})", ""


# A p95 response time in this range (ms) looks like Nagle's algorithm meeting delayed ACKs (Linux: 40 ms), on the
# stack's connection or the broker's: an AD team's SDK stack showed "p95 48.0 ms" and nothing said why (session 24).
NAGLE_LIKE_MS = (35.0, 60.0)


def nagle_hint(p95_ms: float) -> str:
    """What to add to a response time whose p95 (ms) looks like Nagle's algorithm (``NAGLE_LIKE_MS``), else ""."""
    low, high = NAGLE_LIKE_MS
    if not low <= p95_ms <= high:
        return ""
    return (
        "; about the 40 ms that Nagle's algorithm adds with delayed ACKs: unless the stack itself takes that long, "
        "does it switch Nagle off on its socket (TCP_NODELAY, docs/PROTOCOL.md checklist item 3), and the broker "
        "(Mosquitto: set_tcp_nodelay true)?"
    )


# ----------------------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------------------


def cmd_conformance(args: argparse.Namespace) -> int:
    from v2x.net import topics
    from v2x.net.broker import BrokerURLError, parse_broker_url
    from v2x.run.runner import warm_up_core
    from v2x.run.secure import security_from_args
    from v2x.scenario import ScenarioError, find_scenario, load_scenario
    from v2x.scenario.model import ROAD_USER_KINDS

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format=LOG_FORMAT,
    )
    if args.broker == "embedded":
        print(
            "v2x conformance: --broker embedded: your stack could not reach a broker inside this process; give "
            "mqtt://host:port of a broker you both reach (e.g. a local Mosquitto)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    try:
        broker = parse_broker_url(args.broker)
    except BrokerURLError as exc:
        print(f"v2x conformance: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.run_id is not None and not argtypes.valid_run_id_prefix(args.run_id):
        print(f"v2x conformance: --run-id {args.run_id!r}: {argtypes.RUN_ID_RULE}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        scenario = load_scenario(find_scenario(args.scenario))
    except ScenarioError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    spec = next((a for a in scenario.actors if a.id == args.actor), None)
    judged = (*ROAD_USER_KINDS, "rsu")  # (a roadside unit: judged by its Acks and its RSM / SSM)
    if spec is None or spec.kind not in judged or not topics.valid_id(args.actor):
        road_users = [a.id for a in scenario.actors if a.kind in judged]
        print(
            f"v2x conformance: {scenario.id} has no road user or RSU {args.actor!r} (it has {road_users})",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if "v2x" not in scenario.variants:
        print(f"v2x conformance: {scenario.id} has no v2x variant", file=sys.stderr)
        return EXIT_BAD_INPUT
    security = security_from_args(args, [scenario], "v2x conformance", variants=["v2x"])
    if isinstance(security, int):
        return security
    prefix = args.run_id or "conformance"
    if security is not None and security.directory is not None and args.run_id is None:
        from v2x.net.secure import load_secure_dir

        prefix = load_secure_dir(security.directory).run_prefix
    positioning = conformance_positioning(spec.positioning or scenario.positioning)
    actors = [
        a.model_copy(update={"external": True, "positioning": positioning}) if a.id == args.actor else a
        for a in scenario.actors
    ]
    scenario = scenario.model_copy(
        update={"actors": actors, "variants": ["v2x"], "expectations": [], "epoch": conformance_epoch(scenario.epoch)}
    )
    warm_up_core([scenario])
    return asyncio.run(_conformance(scenario, broker, prefix, args, spec.kind, security))


def conformance_epoch(epoch: datetime) -> datetime:
    """The epoch of the conformance run: the scenario's, moved on by ``EPOCH_SHIFT`` when it is on a whole second
    (then a stack's secMark can be right without reading ``epoch_utc``, or its fraction of a second)."""
    return epoch + EPOCH_SHIFT if epoch.microsecond == 0 else epoch


def conformance_positioning(profile: str) -> str:
    """The actor's positioning profile in the conformance run: ``profile``, or ``NOISY_POSITIONING`` when that
    is finer (then truth and fix could differ by less than ``POS_TOLERANCE_M`` in every tick); a dead-reckoning
    profile (``tunnel-outage``) stays: its error grows with the distance travelled."""
    from v2x.impair import positioning_profile

    noisy, given = positioning_profile(NOISY_POSITIONING), positioning_profile(profile)
    return profile if given.family == "dr-only" or given.nominal_sigma_m >= noisy.nominal_sigma_m else noisy.name


class ListenerThread:
    """The listeners' connections on an event loop in a thread of their own. The world runs in this process's
    loop, which in lockstep is busy closing the tick when the stack's Ack comes: a message read there was timed
    when the world got round to it (a p95 of 15-20 ms for a stack that answered in under 1 ms, in an outside
    review). In this thread a message is timed when it is read off the socket, give or take the interpreter's
    switch interval (5 ms) when the world holds the GIL."""

    def __init__(self, make: Callable[[], list[Any]]) -> None:
        self._make = make
        self.ready = threading.Event()  # every listener connected and subscribed
        self.transports: list[Any] = []
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._listen()), name="conformance", daemon=True)

    def start(self) -> None:
        self._thread.start()

    async def _listen(self) -> None:
        self._loop, self._done = asyncio.get_running_loop(), asyncio.Event()
        self.transports = self._make()
        self._started.set()
        ready = [asyncio.Event() for _ in self.transports]
        tasks = [asyncio.create_task(tp.run(r)) for tp, r in zip(self.transports, ready, strict=True)]

        async def all_ready() -> None:
            await asyncio.gather(*(r.wait() for r in ready))
            self.ready.set()

        waiter = asyncio.create_task(all_ready())
        await self._done.wait()
        waiter.cancel()
        for tp in self.transports:
            tp.stop()
        for task in tasks:
            task.cancel()
        await asyncio.wait([waiter, *tasks], timeout=5.0)

    async def publish(self, topic: str, payload: bytes) -> None:
        """Publish on the first listener's connection (the world's user in a secure run), from another loop."""
        assert self._loop is not None
        await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(self.transports[0].publish(topic, payload), self._loop)
        )

    def stop(self) -> None:
        """Close the connections and wait for the thread (blocking: call it from a thread of its own)."""
        if not self._thread.is_alive() or not self._started.wait(10.0):
            return
        loop, done = self._loop, self._done
        if loop is not None and done is not None:
            loop.call_soon_threadsafe(done.set)
        self._thread.join(timeout=10.0)


async def _conformance(
    scenario: Any, broker: Any, prefix: str, args: argparse.Namespace, kind: str, security: Any
) -> int:
    """Listen on the actor's topics while ``run_variant`` runs the scenario's V2X variant (``security``: a
    secure run's ``v2x.net.secure.Security``, else None), then judge what the stack sent."""
    from v2x.net import topics, transport
    from v2x.net.secure import SecureDirError
    from v2x.net.transport import MqttTransport
    from v2x.run.runner import RunError, Signing, environment, run_variant, secure_run
    from v2x.wire import testbed_pb2

    actor = args.actor
    run_id = f"{prefix}-v2x"
    capture = Capture()

    def on(kind_: str) -> Any:
        def handler(topic: str, payload: bytes) -> None:
            now = time.monotonic()
            if kind_ == "join":
                capture.hellos.append(payload)
            elif kind_ == "in":
                try:
                    with_tick = testbed_pb2.TickInput.FromString(payload)
                except DecodeError:  # not the world's (a forger on an open broker): the world's view counts it
                    return
                capture.heard_inputs.setdefault(with_tick.tick, []).append((now, payload))
            elif kind_ == "tx":
                capture.tx.append((now, payload))
            else:
                capture.acks.append((now, payload))

        return handler

    with contextlib.ExitStack() as stack:
        try:
            secure = (
                stack.enter_context(secure_run(scenario, security, broker.url, prefix, {"v2x": run_id}))
                if security is not None
                else None
            )
        except SecureDirError as exc:
            print(f"v2x conformance: --secure-dir: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        # The listeners: in a secure run the world's user reads the actor's join, tx and ack topics and the
        # actor's own user its TickInputs (the broker's grants let nobody read all four).
        tag = uuid.uuid4().hex[:6]
        readers: list[tuple[Any, tuple[topics.Kind, ...]]] = (
            [
                (secure.keys.world_address(broker), ("join", "tx", "ack")),
                (secure.keys.actor_address(broker, actor), ("in",)),
            ]
            if secure is not None
            else [(broker, ("join", "in", "tx", "ack"))]
        )

        def make_listeners() -> list[MqttTransport]:
            made = []
            for k, (address, kinds) in enumerate(readers):
                listener = MqttTransport(address, f"conformance-{tag}-{k}")
                for kind_ in kinds:
                    listener.route(topics.actor_topic(run_id, kind_, actor), on(kind_))
                made.append(listener)
            return made

        listening = ListenerThread(make_listeners)
        world_inputs = WorldInputs(
            capture,
            actor,
            probe=probe_tick(scenario.n_ticks),
            realtime=args.mode == "realtime",
            resend=lambda payload: listening.publish(topics.actor_topic(run_id, "in", actor), payload),
        )
        metrics = None
        error = ""
        try:
            listening.start()
            if not await asyncio.to_thread(listening.ready.wait, transport.BROKER_WAIT_S):
                why = next((tp.last_error for tp in listening.transports if tp.last_error), "")
                print(
                    f"v2x conformance: {transport.cannot_reach(broker.url, transport.BROKER_WAIT_S, why)}",
                    file=sys.stderr,
                )
                return EXIT_RUN_ERROR
            print(  # once the broker answers (it said "waiting" and then that the broker did not answer)
                f"v2x conformance: run {run_id} of {scenario.id} ({args.mode}"
                f"{', secure' if secure is not None else ''}, epoch {scenario.epoch.isoformat()}, {actor}'s GNSS "
                f"{scenario.actor(actor).positioning}) on {broker.url}: "
                f"waiting up to {args.join_timeout:.0f} s for a stack to join as {actor!r}",
                flush=True,
            )
            if secure is not None:
                print(f"v2x conformance: its signing key: {args.out / 'credentials' / run_id / f'{actor}.cred'}")
            try:
                report = await run_variant(
                    scenario,
                    "v2x",
                    seed=args.seed,
                    broker=broker,
                    mode=args.mode,
                    run_id=run_id,
                    keys=secure.keys if secure is not None else None,
                    signing=Signing(credentials_dir=args.out / "credentials") if secure is not None else None,
                    join_timeout_s=args.join_timeout,
                    observer=world_inputs,
                    fixed_run_id=True,
                )
                metrics = report.metrics
            except RunError as exc:  # a stack that never joined or went silent: still report what it sent
                error = str(exc)
            await asyncio.sleep(0.2)  # the last messages reach the listeners
        finally:
            await asyncio.to_thread(listening.stop)
    if not capture.hellos:
        print(f"v2x conformance: no stack joined run {run_id} as {actor!r}: {error}", file=sys.stderr)
        return EXIT_RUN_ERROR
    env = environment(scenario)
    keep_the_worlds_inputs(capture)
    checks = analyse(
        capture,
        actor_id=actor,
        kind=kind,
        epoch=scenario.epoch,
        frame=env.frame,
        tick_s=scenario.tick_s,
        n_ticks=scenario.n_ticks,
        platform_id=next((a.id for a in scenario.actors if a.kind == "platform"), ""),
        metrics=metrics,
        realtime=args.mode == "realtime",
        box_m=scenario.actor(actor).box_m[:2],
        uplink=scenario.actor(actor).uplink,
        equipped=scenario.actor(actor).equipped,
        own=world_inputs.own(),
        roadside=kind == "rsu",
    )
    if error:
        print(f"v2x conformance: the run stopped: {error}")
    print(f"{'PASS' if checks.passed else 'FAIL'} {actor} in {scenario.id} ({args.mode}), run {run_id}")
    checks.print()
    return EXIT_OK if checks.passed else EXIT_FAILED
