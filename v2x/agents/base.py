"""What every agent is: a sans-I/O ``step`` from one tick's inputs to that tick's outputs.

The asyncio/MQTT shell around agents is ``v2x.agents.host``; agents themselves never touch the network,
so they are tested without a broker and behave the same under the lockstep and the real-time clock.
"""

from __future__ import annotations

import abc
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from v2x.units import LocalFrame
from v2x.wire import frame_pb2, testbed_pb2

log = logging.getLogger("v2x.agent")


@dataclass(frozen=True)
class Heard:
    """One received transmission."""

    sender_id: str
    link: int
    rx_time_s: float
    tx_time_s: float
    frame: frame_pb2.MessageFrame


@dataclass(frozen=True)
class TickContext:
    tick: int
    t_s: float
    dt_s: float
    gnss: testbed_pb2.GnssReading
    heard: tuple[Heard, ...]
    detections: tuple[testbed_pb2.Detection, ...] = ()  # roadside units: what their sensors saw


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
