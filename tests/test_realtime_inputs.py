"""When the world hands out inputs under the real-time clock: the built-in agents (and fleets) get tick n+1's
input as soon as tick n closes, so that what was delivered within the tick reaches them without waiting for
the next tick's wall time; an actor driven by an outside stack (``external``) gets its TickInput at the
tick's wall-clock time (docs/PROTOCOL.md "Timing and late stacks"), so a tick with it closes after its time.
A tick of built-in agents and fleets only is closed (step, next begin) as soon as everyone has reported it,
before its wall-clock time, and what it hands over is held until that time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.test_sdk import fcw_with_external
from v2x.net.broker import BrokerAddress
from v2x.run.results import outcome
from v2x.run.runner import run_scenario
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.sdk import Stack, VehicleState
from v2x.sim.simulation import Simulation

TICK_S = 0.1


class _Handouts:
    """Each input's hand-over (wall time from the clock's start) by receiver, and when each tick closed."""

    def __init__(self) -> None:
        self.t0: float | None = None
        self.sent: dict[str, list[tuple[int, float]]] = {}
        self.closed: list[tuple[int, float]] = []

    def _now(self) -> float:
        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now
        return now - self.t0

    def on_inputs(self, sim: Simulation, names: list[str]) -> None:
        now = self._now()
        for name in names:
            self.sent.setdefault(name, []).append((sim.inbound.current_tick, now))

    async def on_tick(self, sim: Simulation, tick: int, events: list[dict[str, Any]]) -> None:
        self.closed.append((tick, self._now()))


async def _outside_follower(broker: str, run_id: str) -> None:
    """The follower driven from outside: holds its lane at its speed and answers every tick at once."""
    async with Stack(broker, run_id=run_id, actor_id="follower") as stack:
        run = await stack.start(timeout_s=60)
        state = VehicleState.at_start(run.me)
        async for tick in stack.ticks(tick_timeout_s=30):
            if tick.n > 0:
                state = state.advanced(tick.dt_s)
            await stack.ack(tick, state)


@pytest.mark.serial
async def test_built_in_agents_get_their_input_when_the_tick_before_closes_outside_stacks_at_its_time(
    tmp_path: Path, embedded: BrokerAddress
) -> None:
    sc = load_scenario(fcw_with_external(tmp_path, "follower", duration_s=2.0))
    probe = _Handouts()
    run = asyncio.create_task(
        run_scenario(
            sc, seed=0, broker=embedded.url, variants=["v2x"], mode="realtime", run_id="early1",
            observe=lambda v, r: probe,
        )
    )  # fmt: skip
    await asyncio.gather(run, _outside_follower(embedded.url, "early1-v2x"))
    ticks = round(sc.duration_s / TICK_S)
    assert [n for n, _ in probe.sent["follower"]] == list(range(ticks + 1))
    assert [n for n, _ in probe.sent["lead"]] == list(range(ticks + 1))
    closed = dict(probe.closed)
    for n, at in probe.sent["follower"][1:]:  # the outside stack: at the tick's wall time, not before
        assert at >= n * TICK_S - 0.005, (n, at)
    for (n, at), (_, external_at) in zip(probe.sent["lead"][1:], probe.sent["follower"][1:], strict=True):
        assert at <= external_at  # the built-in agent: when the tick before closed, not after the outside one
        assert at >= closed[n - 1]  # and not before that tick closed
    early = [n * TICK_S - at for n, at in probe.sent["lead"][1:]]
    assert sorted(early)[len(early) // 2] > 0.02, early  # typically most of a tick ahead of the wall clock
    for n, at in probe.closed:  # no tick closes before its time
        assert at >= n * TICK_S - 0.005, (n, at)


@pytest.mark.serial
async def test_a_tick_of_built_in_agents_is_closed_before_its_time_and_handed_over_at_it() -> None:
    """No outside stack: tick n is closed (``Simulation.step``, ``begin(n + 1)``) once the built-in agents have
    reported it, which they do before its wall-clock time (they got its input at t(n - 1)); tick n + 1's inputs
    go out at t(n), not before; the run still lasts its duration; the outcome is lockstep's."""
    sc = load_scenario(SCENARIO_DIR / "fcw.yaml").model_copy(update={"duration_s": 1.5})
    probe = _Handouts()
    result = await run_scenario(
        sc, seed=0, broker="loopback", variants=["v2x"], mode="realtime", observe=lambda v, r: probe
    )
    ticks = round(sc.duration_s / TICK_S)
    assert [n for n, _ in probe.sent["lead"]] == list(range(ticks + 1))
    for n, at in probe.sent["lead"][1:]:  # tick n's inputs: not before tick n - 1's time
        assert at >= (n - 1) * TICK_S - 0.005, (n, at)
    ahead = sorted(n * TICK_S - at for n, at in probe.closed[1:])
    assert ahead[len(ahead) // 2] > 0.02, ahead  # typically closed most of a tick before its time
    assert result["metrics"]["v2x"]["wall_seconds"] >= sc.duration_s
    lockstep = await run_scenario(sc, seed=0, broker="loopback", variants=["v2x"])
    assert outcome(result) == outcome(lockstep)
