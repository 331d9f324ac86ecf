"""The clock the world runs on: one interface, two implementations.

``LockstepClock`` (virtual time): a tick ends when every agent has reported it; deterministic and as fast
as the agents answer. When a tick stalls (a broker restart lost messages) it asks the caller to retransmit,
and gives up with ``AgentTimeout`` naming the silent agents.

``RealTimeClock``: tick n begins at its wall-clock time (n ticks after tick 0) and closes as soon as everyone
has reported it, or at its deadline (the next tick's time) whether or not everyone has: what the world
computes when it closes a tick (the channel's deliveries among it) is ready well before the next one.

Agents never see the clock: they act on every ``TickInput`` they receive, so they run unchanged on both.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Awaitable, Callable

from v2x.net.answers import REALTIME_MAX_SKIP
from v2x.sim.inbound import INCOMPLETE
from v2x.units import tick_time_s

MODES = ("lockstep", "realtime")  # the clocks' names (``--mode``)


class AgentTimeout(RuntimeError):
    def __init__(self, tick: int, t_s: float, missing: list[str], waited_s: float) -> None:
        """``missing``: the actors the tick waited for (``Simulation.missing_why``: an actor whose Ack came but
        not all the envelopes it claims is named with ``INCOMPLETE``, not as one with "no report")."""
        self.tick, self.t_s, self.missing = tick, t_s, missing
        mark = " (" + INCOMPLETE.split("{", 1)[0]
        silent = [m for m in missing if mark not in m]
        short = [m for m in missing if mark in m]
        why = [f"no report from {', '.join(silent)}"] if silent else []
        why += [f"an incomplete report from {', '.join(short)}"] if short else []
        super().__init__(f"tick {tick} (t={t_s:.2f} s): {'; '.join(why)} after {waited_s:.0f} s")


class Clock(abc.ABC):
    mode: str
    # Whether the world opens tick n + 1 (its inputs to the fleets and built-in agents) as soon as tick n
    # closes, handing them over at tick n's wall-clock time (real time), or only once tick n + 1 begins.
    opens_early: bool = False
    # How many ticks an input may skip for the agents (one lost in real time; lockstep sends every tick until
    # it is answered, so none).
    max_skip: int = 0

    def __init__(self, tick_s: float) -> None:
        self.tick_s = tick_s

    def time_of(self, tick: int) -> float:
        return tick_time_s(tick, self.tick_s)

    def start(self) -> None:  # noqa: B027 - optional hook; lockstep needs nothing
        """Called once, just before tick 0 is sent."""

    async def start_of_tick(self, tick: int) -> None:  # noqa: B027 - optional hook; lockstep needs nothing
        """Wait until tick ``tick`` may begin (real time: its wall-clock time)."""

    @abc.abstractmethod
    async def end_of_tick(
        self,
        tick: int,
        reported: asyncio.Event,
        missing: Callable[[], list[str]],
        retransmit: Callable[[], Awaitable[None]],
    ) -> bool:
        """Wait until tick ``tick`` is over. True if every agent reported it."""


class LockstepClock(Clock):
    mode = "lockstep"

    def __init__(self, tick_s: float, *, retransmit_after_s: float = 2.0, give_up_after_s: float = 60.0) -> None:
        super().__init__(tick_s)
        self.retransmit_after_s = retransmit_after_s
        self.give_up_after_s = give_up_after_s
        self.retransmissions = 0

    async def end_of_tick(
        self,
        tick: int,
        reported: asyncio.Event,
        missing: Callable[[], list[str]],
        retransmit: Callable[[], Awaitable[None]],
    ) -> bool:
        started = time.monotonic()
        while True:
            try:
                await asyncio.wait_for(reported.wait(), self.retransmit_after_s)
                return True
            except TimeoutError:
                waited = time.monotonic() - started
                if waited >= self.give_up_after_s:
                    raise AgentTimeout(tick, self.time_of(tick), missing(), waited) from None
                self.retransmissions += 1
                await retransmit()


class RealTimeClock(Clock):
    mode = "realtime"
    opens_early = True
    max_skip = REALTIME_MAX_SKIP

    def __init__(self, tick_s: float) -> None:
        super().__init__(tick_s)
        self._t0 = 0.0
        self.overruns = 0

    def start(self) -> None:
        self._t0 = time.monotonic()

    async def end_of_tick(
        self,
        tick: int,
        reported: asyncio.Event,
        missing: Callable[[], list[str]],
        retransmit: Callable[[], Awaitable[None]],
    ) -> bool:
        deadline = self._t0 + (tick + 1) * self.tick_s
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            self.overruns += 1
            return reported.is_set()
        try:
            await asyncio.wait_for(reported.wait(), remaining)
        except TimeoutError:
            return False
        return True

    async def start_of_tick(self, tick: int) -> None:
        await asyncio.sleep(max(0.0, self._t0 + tick * self.tick_s - time.monotonic()))


def make_clock(mode: str, tick_s: float) -> Clock:
    for cls in (LockstepClock, RealTimeClock):
        if cls.mode == mode:
            return cls(tick_s)
    raise ValueError(f"unknown clock mode {mode!r}: {' or '.join(MODES)}")
