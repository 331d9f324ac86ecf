"""What every agent is: a sans-I/O ``step`` from one tick's inputs to that tick's outputs.

The asyncio/MQTT shell around agents is ``v2x.agents.host``; agents themselves never touch the network,
so they are tested without a broker and behave the same under the lockstep and the real-time clock.
"""

from __future__ import annotations

import abc
import logging
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar, cast

from v2x.geodesy import LocalFrame
from v2x.wire import frame_pb2, testbed_pb2
from v2x.wire.bsm import RemoteState, decode_bsm
from v2x.wire.map_spat import Approach, SignalState, decode_map, decode_spat
from v2x.wire.rsi import RoadSideInfo, decode_rsi
from v2x.wire.rsm import decode_rsm

log = logging.getLogger("v2x.agent")

T = TypeVar("T")


@dataclass(frozen=True)
class Heard:
    """One received transmission.

    ``frame`` and ``memo`` may be shared by every receiver of the same transmission in this process (the
    host parses each envelope once per tick): treat the frame as read-only, and put only immutable
    results in the memo, through :meth:`decoded`.
    """

    sender_id: str
    link: int
    rx_time_s: float
    tx_time_s: float
    frame: frame_pb2.MessageFrame
    memo: dict[Hashable, object] = field(default_factory=dict, compare=False, repr=False)

    def decoded(self, key: Hashable, decode: Callable[[], T]) -> T:
        """``decode()`` once per ``key`` for all receivers of this transmission (a BSM heard by 80
        vehicles is converted to local units once, not 80 times). ``key`` must hold everything the result
        depends on besides the frame (e.g. the receiver's time); a ``ValueError`` is remembered and raised
        again for every receiver, so each one rejects and counts it."""
        try:
            hit = self.memo[key]
        except KeyError:
            try:
                hit = decode()
            except ValueError as exc:
                hit = _Failed(exc)
            self.memo[key] = hit
        if isinstance(hit, _Failed):
            raise ValueError(*hit.exc.args)
        return cast(T, hit)


@dataclass(frozen=True)
class _Failed:
    exc: ValueError


@dataclass(frozen=True)
class TickContext:
    tick: int
    t_s: float
    dt_s: float
    gnss: testbed_pb2.GnssReading
    heard: tuple[Heard, ...]
    detections: tuple[testbed_pb2.Detection, ...] = ()  # roadside units: what their sensors saw
    # The collisions the world recorded with this actor when the previous tick closed (TickInput.collisions):
    # a road user comes to rest where it touched (docs/PROTOCOL.md, "Collisions").
    collisions: tuple[testbed_pb2.TickInput.Collision, ...] = ()


@dataclass(frozen=True)
class Transmission:
    link: int
    frame: frame_pb2.MessageFrame
    dest_ids: tuple[str, ...] = ()


@dataclass
class TickResult:
    transmissions: list[Transmission] = field(default_factory=list)
    truth: testbed_pb2.TruthState | None = None
    events: list[testbed_pb2.Advisory] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Environment:
    """What an agent knows about the run it is in (from the scenario or the Control START message)."""

    frame: LocalFrame
    epoch: datetime
    tick_s: float
    platform_id: str | None
    thresholds: dict[str, float]

    # Decoding what was heard, in local SI units. Each is computed once per receiver time for every
    # receiver of the same transmission in this process (Heard.decoded); results are immutable.
    def bsm(self, heard: Heard, t: float) -> RemoteState | None:
        f, e = self.frame, self.epoch
        return heard.decoded(("bsm", t, f, e), lambda: decode_bsm(heard.frame.bsm, now_s=t, frame=f, epoch=e))

    def rsm(self, heard: Heard, t: float) -> tuple[RemoteState, ...]:
        f, e = self.frame, self.epoch
        return heard.decoded(("rsm", t, f, e), lambda: tuple(decode_rsm(heard.frame.rsm, now_s=t, frame=f, epoch=e)))

    def rsi(self, heard: Heard, t: float) -> RoadSideInfo:
        f, e = self.frame, self.epoch
        return heard.decoded(("rsi", t, f, e), lambda: decode_rsi(heard.frame.rsi, now_s=t, frame=f, epoch=e))

    def map(self, heard: Heard) -> tuple[Approach, ...]:
        f = self.frame
        return heard.decoded(("map", f), lambda: tuple(decode_map(heard.frame.map, frame=f)))

    def spat(self, heard: Heard, t: float) -> tuple[SignalState, ...]:
        e = self.epoch
        return heard.decoded(("spat", t, e), lambda: tuple(decode_spat(heard.frame.spat, now_s=t, epoch=e)))


class Agent(abc.ABC):
    def __init__(self, actor_id: str, kind: str, env: Environment) -> None:
        self.actor_id = actor_id
        self.kind = kind
        self.env = env
        self.rejected: Counter[str] = Counter()  # messages refused by the agent's own decoding, by reason

    def receive(self, heard: Iterable[Heard], handle: Callable[[Heard], None]) -> None:
        """Hand each message heard to ``handle``. A message whose content is outside the standard's ranges
        (``ValueError`` from the unit conversions) is rejected and counted as ``out_of_range``, never raised:
        one bad sender must not stop a receiver."""
        for h in heard:
            try:
                handle(h)
            except ValueError as exc:
                self.rejected["out_of_range"] += 1
                log.warning(
                    "%s: rejected a %s from %s (t=%.2f s): %s",
                    self.actor_id,
                    h.frame.WhichOneof("msg"),
                    h.sender_id,
                    h.tx_time_s,
                    exc,
                )

    @abc.abstractmethod
    def step(self, ctx: TickContext) -> TickResult:
        """Act on one tick: consume what was heard, move, and say what to transmit."""
