"""What a host (an agent host, a fleet's shell, an outside stack's SDK) keeps of the ticks it answered.

The world asks again for the tick it waits for (its input re-sent after a lost answer): that is the last tick
answered, unless forged inputs pushed the host ahead of the world (n+1, then n+2 before the world's n+1),
when it is one of the few before it. Either way the host answers with the very answer it gave.
"""

from __future__ import annotations

import asyncio
from typing import Any, Generic, TypeVar

# After its final tick a host answers the world's re-sends of that tick (its answer may have been lost, e.g. in
# a broker restart) until it learns that the run ended or this long with nothing to answer: beyond the world's
# 60 s wait for a silent actor, after which the world gives up anyway.
FINAL_LINGER_S = 70.0
# How many of its last ticks a host answers again, with the same bytes, when asked: a chain of forged inputs up
# to this many (a mutated copy of an older input stays a plain bad_tick).
ANSWERED_KEPT = 3
# How many ticks a TickInput may skip in real time (an input lost; never in lockstep, where the world sends every
# tick until it is answered): the runner's built-in agents and fleets (a ``v2x worker``'s always: it is not told
# the clock) refuse one further ahead (``max_skip``; the SDK's
# real-time mode bounds a skip by the wall clock instead, since session 18: ``v2x.sdk.client._next_tick``).
REALTIME_MAX_SKIP = 10

A = TypeVar("A")
T = TypeVar("T")


async def next_or_end(queue: asyncio.Queue[T], ended: asyncio.Event | None, timeout_s: float | None) -> T | None:
    """The next item of ``queue`` (an input), or None when ``ended`` is set first or ``timeout_s`` pass (None:
    no limit) with nothing: how a host waits for its next input after its final tick, or for a tick with a
    limit. An input that came with the end is still handed over."""
    getting = asyncio.ensure_future(queue.get())
    ending = asyncio.ensure_future(ended.wait()) if ended is not None else None
    try:
        waits: set[asyncio.Future[Any]] = {getting, *([ending] if ending is not None else [])}
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if ending is not None:
            ending.cancel()
        if not getting.done():
            getting.cancel()
    return getting.result() if getting.done() and not getting.cancelled() else None


class Answers(Generic[A]):
    """The input and the answer of each of the last ``ANSWERED_KEPT`` ticks a host answered."""

    def __init__(self) -> None:
        self._by_tick: dict[int, tuple[bytes, A]] = {}

    def keep(self, tick: int, payload: bytes, answer: A) -> None:
        self._by_tick[tick] = (payload, answer)
        self._by_tick.pop(tick - ANSWERED_KEPT, None)

    def again(self, tick: int, last_tick: int, payload: bytes) -> tuple[A, bool] | None:
        """The answer to give ``payload``, an input for ``tick``, again, and whether it differs from the input
        answered then (one of the two was not the world's: counted as ``conflicting_input``); None when it is no
        input to answer again: a tick not kept, or a copy of an earlier tick's input than the last."""
        kept = self._by_tick.get(tick)
        if kept is None:
            return None
        differs = payload != kept[0]
        if tick != last_tick and not differs:
            return None
        return kept[1], differs
