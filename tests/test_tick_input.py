"""One check of a TickInput and one next-tick rule for every host (``v2x.wire.tick_input``): the same bytes get
the same verdict from the built-in agents' host (``v2x.net.host``), the SDK (``v2x.sdk.client``) and, for the
tick, a fleet's host (``v2x.net.fleet``). Until session 20 each wrote its own: the built-in host took a negative
GNSS sigma, a NaN GNSS error, ``time_us`` 2^62, a delivery after the tick and ``late_ticks`` [99] on tick 3, which
the SDK refused, and neither it nor the fleet's host minded ``final`` or a tick past the run's last."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter

import pytest

from v2x.agents.fleet import FleetAgent
from v2x.agents.vehicle import VehicleAgent
from v2x.geodesy import LocalFrame
from v2x.net.fleet import FleetHost
from v2x.net.host import AgentHost
from v2x.run.runner import build_agents, environment
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.sdk import Stack
from v2x.wire import testbed_pb2
from v2x.wire.protocol import MAX_INPUT_BYTES
from v2x.wire.tick_input import next_tick_problem

RUN = "r1"
TICK_US = 100_000
N_TICKS = 3


class Wire:
    """The host's side of its connection: what it publishes, in order (no broker: the hosts' checks are asked)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    def route(self, *_: object) -> None: ...

    def on_connect(self, *_: object) -> None: ...

    async def publish(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
        self.published.append((topic, payload))


def _lead() -> VehicleAgent:
    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    return next(a for a in build_agents(sc, environment(sc)) if isinstance(a, VehicleAgent) and a.actor_id == "lead")


def _bytes(**fields: object) -> bytes:
    """A TickInput of tick 3 (``tick`` another) of the run, with ``time_us`` and ``tick_us`` as the world's, and
    ``fields``, serialized."""
    tick = fields.get("tick", 3)
    assert isinstance(tick, int)
    base: dict[str, object] = dict(run_id=RUN, tick=tick, tick_us=TICK_US, time_us=tick * TICK_US)
    base.update(fields)
    return testbed_pb2.TickInput(**base).SerializeToString()  # type: ignore[arg-type]


GOOD_GNSS = testbed_pb2.GnssReading(available=True, sigma_major_m=0.02, sigma_minor_m=0.02, state="rtk-fixed")
# name -> (the bytes on an agent's input topic, the verdict every host must give)
CONTENT: dict[str, tuple[bytes, str]] = {
    "the world's": (_bytes(gnss=GOOD_GNSS, envelopes=[b"x"], rx_time_us=[250_000], late_ticks=[1]), "taken"),
    "time_us 1 us off on tick 3": (_bytes(time_us=300_001), "taken"),  # (within 1/2 us a tick: a tick of 1/3 ms)
    "time_us 3 us off on tick 3": (_bytes(time_us=300_003), "malformed"),
    "tick_us not the run's": (_bytes(tick_us=50_000, time_us=150_000), "malformed"),
    "not protobuf": (b"\xff\xff\xff", "malformed"),
    "another run's": (_bytes(run_id="r2"), "malformed"),
    "time_us as bytes (a mistyped field)": (_bytes() + b"\x1a\x01x", "malformed"),
    "an rx_time_us short": (_bytes(envelopes=[b"x", b"y"], rx_time_us=[1]), "malformed"),
    "a negative GNSS sigma": (_bytes(gnss=testbed_pb2.GnssReading(available=True, sigma_major_m=-1.0)), "malformed"),
    "a NaN GNSS error": (_bytes(gnss=testbed_pb2.GnssReading(available=True, east_error_m=math.nan)), "malformed"),
    "a GNSS error of 1000 km": (_bytes(gnss=testbed_pb2.GnssReading(available=True, north_error_m=1e6)), "malformed"),
    "time_us 2^62": (_bytes(time_us=2**62), "malformed"),
    "tick_us 0": (_bytes(tick_us=0, time_us=0), "malformed"),
    "an rx_time_us after the tick": (_bytes(envelopes=[b"x"], rx_time_us=[10**9]), "malformed"),
    "a negative rx_time_us": (_bytes(envelopes=[b"x"], rx_time_us=[-1]), "malformed"),
    "late_ticks [99] on tick 3": (_bytes(late_ticks=[99]), "malformed"),
    "late_ticks [1] 3000 times": (_bytes(late_ticks=[1] * 3000), "malformed"),  # (attack review 4)
    "late_ticks not rising": (_bytes(late_ticks=[2, 1]), "malformed"),
    "an infinite collision speed": (
        _bytes(collisions=[testbed_pb2.TickInput.Collision(other_id="x", relative_speed_mps=math.inf)]),
        "malformed",
    ),
    "a NaN detection": (_bytes(detections=[testbed_pb2.Detection(x_m=math.nan)]), "malformed"),
    "a NaN signal warp": (_bytes(signal_warps=[testbed_pb2.SignalWarp(hold_s=math.nan)]), "malformed"),
    "over 4 MiB": (_bytes(envelopes=[b"x" * MAX_INPUT_BYTES], rx_time_us=[0]), "oversized"),
}


def _verdict(before: Counter[str], after: Counter[str], taken: bool) -> str:
    new = after - before
    assert sum(new.values()) == (0 if taken else 1), new
    return "taken" if taken else next(iter(new))


def _host_verdict(payload: bytes) -> str:
    host = AgentHost(Wire(), RUN, [_lead()], n_ticks=10, tick_us=TICK_US)  # type: ignore[arg-type]
    slot = host.slots["lead"]
    before = Counter(slot.rejected)
    return _verdict(before, slot.rejected, host._decode(slot, payload) is not None)


def _start(n_ticks: int) -> testbed_pb2.Control:
    return testbed_pb2.Control(
        command=testbed_pb2.Control.COMMAND_START, run_id=RUN, tick_us=TICK_US, n_ticks=n_ticks, protocol_version=1,
        epoch_utc="2024-01-01T00:00:00Z",
    )  # fmt: skip


def _sdk_verdict(payload: bytes) -> str:
    """The SDK's input handler, then (its ``tick_us`` is compared with START's there) the tick rule ``Stack.ticks``
    asks, of a stack that resumes (its first tick any: the tick is not what is asked here)."""
    stack = Stack("mqtt://127.0.0.1:1", run_id=RUN, actor_id="lead", resume=True)  # (never connected)
    before = Counter(stack.rejected)
    stack._on_input(payload)
    taken = not stack._inputs.empty() and stack._next_tick(stack._run_info(_start(10)), stack._take()[2], 0.0)
    return _verdict(before, stack.rejected, taken)


@pytest.mark.parametrize("name", list(CONTENT))
def test_the_built_in_agents_and_the_sdk_give_the_same_verdict_on_the_same_tick_input(name: str) -> None:
    payload, expected = CONTENT[name]
    assert (_host_verdict(payload), _sdk_verdict(payload)) == (expected, expected)


def _fleet_host(wire: Wire) -> FleetHost:
    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    frame, thresholds = LocalFrame(29.5, 106.5, 0.0), environment(sc).thresholds
    agent = FleetAgent("fleet-0", frame=frame, epoch=sc.epoch, thresholds=thresholds)
    return FleetHost(wire, RUN, agent, n_ticks=N_TICKS, linger=True)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("time_us", "tick_us", "expected"),
    [
        (300_000, TICK_US, "taken"),
        (300_001, TICK_US, "taken"),
        (300_003, TICK_US, "malformed"),
        (2**62, TICK_US, "malformed"),
        (-300_000, TICK_US, "malformed"),
        (0, 0, "malformed"),
    ],
)
def test_a_fleet_checks_the_time_of_its_input_as_the_built_in_agents_do(
    time_us: int, tick_us: int, expected: str
) -> None:
    """A FleetInput is another message, but its ``time_us`` is the tick's as a TickInput's is (``tick_time_problem``;
    since session 20: a fleet took any)."""
    host = _fleet_host(Wire())
    inp = testbed_pb2.FleetInput(run_id=RUN, tick=3, time_us=time_us, tick_us=tick_us)
    before = Counter(host.rejected)
    fleet = _verdict(before, host.rejected, host._decode(inp.SerializeToString()) is not None)
    assert (_host_verdict(_bytes(time_us=time_us, tick_us=tick_us)), fleet) == (expected, expected)


# Inputs for the tick rule: (tick, final) in the order they come; the verdict every host gives each (a run of
# ticks 0..N_TICKS, lockstep: no skip). None of them asks again for a tick answered (answered again, not checked).
SEQUENCES: dict[str, list[tuple[tuple[int, bool], str]]] = {
    "the world's": [((0, False), "taken"), ((1, False), "taken"), ((2, False), "taken"), ((3, True), "taken")],
    "tick 1 first": [((1, False), "bad_tick"), ((0, False), "taken")],
    "a skip": [((0, False), "taken"), ((2, False), "bad_tick"), ((1, False), "taken")],
    "final early": [((0, False), "taken"), ((1, True), "bad_tick"), ((1, False), "taken")],
    "the last tick not final": [
        ((0, False), "taken"),
        ((1, False), "taken"),
        ((2, False), "taken"),
        ((3, False), "bad_tick"),
        ((3, True), "taken"),
    ],
    "past the last tick": [
        ((0, False), "taken"),
        ((1, False), "taken"),
        ((2, False), "taken"),
        ((3, True), "taken"),
        ((4, True), "bad_tick"),
        ((4, False), "bad_tick"),
    ],
    "tick 10^6, final": [((0, False), "taken"), ((10**6, True), "bad_tick"), ((1, False), "taken")],
}


async def _settle(queue: asyncio.Queue[bytes]) -> None:
    """Until the host has taken what was queued and done with it (its transport answers at once)."""
    for _ in range(100):
        await asyncio.sleep(0)
    assert queue.empty()


async def _host_verdicts(seq: list[tuple[int, bool]]) -> list[str]:
    wire = Wire()
    host = AgentHost(wire, RUN, [_lead()], token="tok", n_ticks=N_TICKS, tick_us=TICK_US)  # type: ignore[arg-type]
    slot = host.slots["lead"]
    serving = asyncio.create_task(host._serve(slot))  # (with a token it lingers after the final tick)
    out = []
    try:
        for tick, final in seq:
            before, sent = Counter(slot.rejected), len(wire.published)
            slot.queue.put_nowait(_bytes(tick=tick, final=final, gnss=GOOD_GNSS))
            await _settle(slot.queue)
            out.append(_verdict(before, slot.rejected, len(wire.published) > sent))
    finally:
        serving.cancel()
    return out


async def _fleet_verdicts(seq: list[tuple[int, bool]]) -> list[str]:
    wire = Wire()
    host = _fleet_host(wire)
    serving = asyncio.create_task(host.run())
    out = []
    try:
        for tick, final in seq:
            before, sent = Counter(host.rejected), len(wire.published)
            inp = testbed_pb2.FleetInput(run_id=RUN, tick=tick, time_us=tick * TICK_US, tick_us=TICK_US, final=final)
            host.queue.put_nowait(inp.SerializeToString())
            await _settle(host.queue)
            out.append(_verdict(before, host.rejected, len(wire.published) > sent))
    finally:
        serving.cancel()
    return out


def _sdk_verdicts(seq: list[tuple[int, bool]]) -> list[str]:
    """The SDK's own steps for each input: its input handler, then the rule ``Stack.ticks`` asks (``_next_tick``),
    and a tick taken counts as answered (as ``Stack.ack`` records it)."""
    stack = Stack("mqtt://127.0.0.1:1", run_id=RUN, actor_id="lead")
    run = stack._run_info(_start(N_TICKS))
    out = []
    for tick, final in seq:
        before = Counter(stack.rejected)
        stack._on_input(_bytes(tick=tick, final=final, gnss=GOOD_GNSS))
        ti = stack._take()[2]
        taken = stack._next_tick(run, ti, time.monotonic())
        if taken:
            stack._last = (ti.tick, [])
        out.append(_verdict(before, stack.rejected, taken))
    return out


@pytest.mark.parametrize("name", list(SEQUENCES))
async def test_every_host_takes_the_same_ticks(name: str) -> None:
    seq = [inp for inp, _ in SEQUENCES[name]]
    expected = [verdict for _, verdict in SEQUENCES[name]]
    verdicts: dict[str, list[str]] = {
        "built-in agents": await _host_verdicts(seq),
        "fleet": await _fleet_verdicts(seq),
        "sdk": _sdk_verdicts(seq),
    }
    assert verdicts == {host: expected for host in verdicts}


@pytest.mark.parametrize(
    ("tick", "final", "last", "n_ticks", "max_skip", "ok"),
    [
        (5, False, 4, 10, 0, True),
        (6, False, 4, 10, 0, False),
        (14, False, 3, 20, 10, True),  # real time: up to max_skip ticks more
        (15, False, 3, 20, 10, False),
        (12, False, 3, 10, 10, False),  # never past the run's last tick
        (10, True, 3, 10, 10, True),
        (10, False, 3, 10, 10, False),  # the last tick is final
        (7, True, 6, None, 0, True),  # no n_ticks (a world older than protocol v1): ``final`` is trusted
        (4, False, 4, 10, 0, False),  # the tick answered: a host answers it again before it asks this
        (0, False, -1, 0, 0, False),  # a run of one tick: it is final
    ],
)
def test_the_next_tick_rule(tick: int, final: bool, last: int, n_ticks: int | None, max_skip: int, ok: bool) -> None:
    assert (next_tick_problem(tick, final, last=last, n_ticks=n_ticks, max_skip=max_skip) is None) is ok
