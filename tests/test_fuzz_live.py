"""Issue #12: a live lockstep fcw run on the embedded broker, fuzzed. An attacker client records the run's
first ticks, then publishes thousands of random and mutated payloads (real messages truncated, with bits
flipped, with fields changed, replayed, sent to the wrong topic) on every topic the run uses: join, in, tx
and ack of each actor, and control. The run's events and channel figures must equal those of an unattacked
run with the same seed, and every payload must be counted: by the world (rejections, duplicates, Hello
conflicts) or by the agent it reached (its rejections).

What is not published: well-formed forgeries that no check can stop without signatures (docs/SECURITY.md,
"What this does not stop"): a message of the topic's own type for a tick the run has not closed yet, and a
Control with the run's token that says STOP (or is the world's own)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiomqtt
import pytest
from google.protobuf.message import DecodeError, Message

from v2x.net import topics
from v2x.net.broker import BrokerAddress
from v2x.run.runner import run_variant
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.sim.simulation import Simulation, WorldReport
from v2x.wire import testbed_pb2
from v2x.wire.tick_input import mistyped_fields

pytestmark = pytest.mark.broker

FCW = load_scenario(SCENARIO_DIR / "fcw.yaml")
ACTORS = sorted(a.id for a in FCW.actors)
SEED = 5
N_PAYLOADS = 3000
ATTACK_AT_TICK = 12  # record the ticks before, attack after
KINDS: tuple[topics.Kind, ...] = ("join", "in", "tx", "ack")
MESSAGE: dict[str, Callable[[], Message]] = {
    "join": testbed_pb2.Hello,
    "in": testbed_pb2.TickInput,
    "tx": testbed_pb2.Envelope,
    "ack": testbed_pb2.Ack,
    "control": testbed_pb2.Control,
}


def _parsed(kind: str, payload: bytes) -> Any:
    """The payload as the message its topic carries, if it parses cleanly (else None: rejected as such)."""
    msg = MESSAGE[kind]()
    try:
        msg.ParseFromString(payload)
    except DecodeError:
        return None
    return None if mistyped_fields(msg) else msg


def _forgery(kind: str, payload: bytes, *, run_id: str, token: str, start: bytes, first_tick: int) -> bool:
    """Would the run take ``payload`` on a ``kind`` topic as genuine (a well-formed forgery; not published)?"""
    msg = _parsed(kind, payload)
    if msg is None:
        return False
    if kind == "control":
        return payload == start or (msg.token == token and msg.command == testbed_pb2.Control.COMMAND_STOP)
    if kind == "in" and msg.run_id != run_id:
        return False
    if kind == "join":
        return False  # counted whatever it says (a bad Hello, a duplicate, a conflict)
    # A tick the run has not closed (or is closing) when it may arrive: taken for the real one.
    return bool(first_tick - 2 <= msg.tick <= FCW.n_ticks + 2)


def _mutate(rng: random.Random, recorded: list[tuple[str, bytes]]) -> bytes:
    """A random payload, or a recorded one truncated, bit-flipped, with a field changed, or replayed."""
    how = rng.randrange(6)
    if how == 0:
        return rng.randbytes(rng.choice((0, 1, 7, 40, 300, 20_000)))
    kind, base = rng.choice(recorded)
    if how == 1:
        return base[: rng.randrange(len(base) + 1)]
    if how == 2:
        out = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            if out:
                out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        return bytes(out)
    if how == 3:
        return base  # replayed as it was (on a random topic)
    msg = MESSAGE[kind]()
    msg.ParseFromString(base)
    fields = [f for f, value in msg.ListFields() if isinstance(value, str | bytes | int | float)]  # scalars
    if fields:
        f = rng.choice(fields)
        if f.type == f.TYPE_STRING:
            setattr(msg, f.name, rng.choice(("", "lead", "x" * 300, "follower", getattr(msg, f.name) + "!")))
        elif f.type == f.TYPE_BYTES:
            setattr(msg, f.name, rng.randbytes(rng.choice((0, 8, 64))))
        elif f.type in (f.TYPE_DOUBLE, f.TYPE_FLOAT):
            setattr(msg, f.name, rng.choice((float("nan"), float("inf"), -1e308, 1e9, 0.0)))
        elif f.type == f.TYPE_BOOL:
            setattr(msg, f.name, not getattr(msg, f.name))
        elif f.type == f.TYPE_ENUM:
            setattr(msg, f.name, rng.choice([v.number for v in f.enum_type.values] if f.enum_type else [0]))
        elif f.type in (f.TYPE_SINT64, f.TYPE_INT64, f.TYPE_SINT32, f.TYPE_INT32):
            setattr(msg, f.name, rng.choice((-1, 0, 2**31 - 1, getattr(msg, f.name) - 3)))
        else:  # unsigned
            setattr(msg, f.name, rng.choice((0, 1, 10**6, 2**32 - 1, max(0, getattr(msg, f.name) - 3))))
    return bytes(msg.SerializeToString())


class _HoldUntil:
    """An observer that holds the world after ``tick`` until ``event`` is set (the fuzzer has published
    everything) and what the world has counted has settled: every payload reaches the run while it is still
    going, however fast the run and however slow the broker on a loaded machine. Lockstep: holding the
    world changes nothing in the outcome."""

    def __init__(self, tick: int, event: asyncio.Event) -> None:
        self.tick, self.event, self.held = tick, event, False

    async def on_tick(self, sim: Simulation, tick: int, events: list[dict[str, Any]]) -> None:
        if tick != self.tick:
            return
        await asyncio.wait_for(self.event.wait(), 120)
        self.held = True
        seen, quiet = -1, 0
        while quiet < 3:  # three looks 0.2 s apart with nothing new
            await asyncio.sleep(0.2)
            st = sim.inbound.stats
            now = sum(st.rejected.values()) + st.duplicates
            quiet, seen = (quiet + 1, seen) if now == seen else (0, now)


def _counted(report: WorldReport) -> int:
    """Every input the run counted: the world's rejections, duplicates and Hello conflicts, the agents'
    rejections (the last Ack of each says them all)."""
    m = report.metrics
    world = sum(m["rejected"].values()) + m["duplicates"]
    world += sum(c.get("hello", 0) for c in m.get("conflicts", {}).values())
    agents = sum(sum(c.values()) for c in m["rejected_by_agents"].values())
    return int(world + agents)


async def test_thousands_of_fuzzed_payloads_change_nothing_and_are_all_counted(
    embedded: BrokerAddress, caplog: pytest.LogCaptureFixture
) -> None:
    clean = await run_variant(FCW, "v2x", seed=SEED, broker=embedded, run_id="fuzz-clean")
    run_id = "fuzz-live"
    fuzzed = asyncio.Event()
    hold = _HoldUntil(ATTACK_AT_TICK + 3, fuzzed)
    task = asyncio.create_task(run_variant(FCW, "v2x", seed=SEED, broker=embedded, run_id=run_id, observer=hold))
    rng = random.Random(20260512)
    published: Counter[str] = Counter()
    async with aiomqtt.Client(embedded.host, embedded.port, identifier=f"fuzzer-{run_id}") as client:
        await client.subscribe(topics.control(run_id))
        for kind in KINDS:
            await client.subscribe(topics.all_of(run_id, kind))
        recorded: list[tuple[str, bytes]] = []
        token, start, tick = "", b"", -1
        async for message in client.messages:
            topic, payload = str(message.topic), bytes(message.payload)
            if topic == topics.control(run_id):
                ctrl = testbed_pb2.Control.FromString(payload)
                if ctrl.command == testbed_pb2.Control.COMMAND_START:
                    token, start = ctrl.token, payload
                recorded.append(("control", payload))
                continue
            parsed = topics.parse(topic)
            if parsed is None:
                continue
            recorded.append((parsed.kind, payload))
            if parsed.kind == "in":
                tick = max(tick, testbed_pb2.TickInput.FromString(payload).tick)
                if tick >= ATTACK_AT_TICK:
                    break
        assert token and start
        targets: list[tuple[str, str]] = [("control", topics.control(run_id))]
        targets += [(kind, topics.actor_topic(run_id, kind, a)) for kind in KINDS for a in ACTORS]
        while sum(published.values()) < N_PAYLOADS:
            target_kind, topic = rng.choice(targets)
            payload = _mutate(rng, recorded)
            if _forgery(target_kind, payload, run_id=run_id, token=token, start=start, first_tick=tick):
                continue
            await client.publish(topic, payload, qos=0)  # QoS 1 (a PUBACK each) outlasts the run
            published[target_kind] += 1
        # The broker handles a client's packets in order: once this PUBACK is back, it has taken every
        # payload above (and its socket holds none that a close could throw away).
        await client.publish(f"fuzzer/{run_id}/done", b"", qos=1)
        fuzzed.set()
    attacked = await asyncio.wait_for(task, 120)
    assert hold.held, "the run ended before the fuzzer was done: nothing to count"
    assert attacked.events == clean.events
    for key in ("messages", "latency_ms", "delivery_ratio", "sensing"):
        assert attacked.metrics[key] == clean.metrics[key], key
    assert "flagged" not in attacked.metrics  # no Ack of an actor conflicted: nothing forged got through
    counted = _counted(attacked) - _counted(clean)
    # A tick that stalled for 2 s (a loaded machine) made the world send its inputs again, and the agents'
    # answers again are duplicates too (docs/RESULTS.md): then the count can only be higher.
    stalled = any("sending their input again" in r.getMessage() for r in caplog.records)
    assert counted == N_PAYLOADS or (stalled and counted > N_PAYLOADS), (counted, published, attacked.metrics)
    assert set(published) == {"control", *KINDS}
