"""What every agent is: a sans-I/O ``step`` from one tick's inputs to that tick's outputs.

The asyncio/MQTT shell around agents is ``v2x.agents.host``; agents themselves never touch the network,
so they are tested without a broker and behave the same under the lockstep and the real-time clock.
"""

from __future__ import annotations

import abc
import logging
import math
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar, cast

from v2x.apps.misbehaviour import Verdict
from v2x.geodesy import LocalFrame
from v2x.units import time_from_sec_mark
from v2x.wire import frame_pb2, testbed_pb2
from v2x.wire.bsm import RemoteState, SenderKey, decode_bsm, decode_bsms
from v2x.wire.day2 import (
    Coordination,
    Intention,
    PlatoonInfo,
    SensorShare,
    decode_clpmm,
    decode_psm,
    decode_rsc,
    decode_ssm,
    decode_vir,
)
from v2x.wire.map_spat import Approach, SignalState, decode_map, decode_spat
from v2x.wire.protocol import may_send, taken_over
from v2x.wire.rsi import RoadSideInfo, decode_rsi
from v2x.wire.rsm import decode_rsm

log = logging.getLogger("v2x.agent")

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


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
    # Signal plan changes roadside units made (signal priority), which the signal heads now show.
    signal_warps: tuple[testbed_pb2.SignalWarp, ...] = ()


def first_while_valid(until: dict[K, float], key: K, t_s: float, valid_until_s: float) -> bool:
    """The rule that records a warning once per validity period: is one keyed ``key`` (e.g. its app and the other
    party) at ``t_s`` the first since the last one of that key lapsed (``until``: per key, when the last one
    recorded lapses)? If it is, ``until`` keeps ``valid_until_s`` for its key. A vehicle's on-board apps and the
    advisories it receives, a fleet's FCW and the platform's apps keep to it."""
    if until.get(key, -math.inf) > t_s:
        return False
    until[key] = valid_until_s
    return True


@dataclass(frozen=True)
class Transmission:
    link: int
    frame: frame_pb2.MessageFrame
    dest_ids: tuple[str, ...] = ()


@dataclass
class TickResult:
    transmissions: list[Transmission] = field(default_factory=list)
    truth: testbed_pb2.TruthState | None = None  # a roadside unit's carries its signal plan changes
    events: list[testbed_pb2.Advisory] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    misbehaviour: list[testbed_pb2.Misbehaviour] = field(default_factory=list)  # senders judged this tick

    def judged(self, verdicts: Iterable[Verdict]) -> None:
        """Report misbehaviour verdicts (v2x.apps.misbehaviour) in this tick's Ack."""
        self.misbehaviour += [
            testbed_pb2.Misbehaviour(suspect_id=v.suspect.hex(), check=v.check, t_s=v.t_s) for v in verdicts
        ]


@dataclass(frozen=True)
class Environment:
    """What an agent knows about the run it is in (from the scenario or the Control START message)."""

    frame: LocalFrame
    epoch: datetime
    tick_s: float
    platform_id: str | None
    thresholds: dict[str, float]
    # Every actor's kind by id (the scenario's): what a sender may send (``sent_by_its_kind``). A sender not in it
    # is a road user (a fleet's background vehicle).
    kinds: Mapping[str, str] = field(default_factory=dict)
    # ``decode_bsms``' memo (``v2x.wire.bsm.decode_bsms``): what a sender's BSMs decode to besides their motion and
    # time, by the wire values it is decoded from, kept from tick to tick for every agent of this environment (a
    # sender's BSMs repeat them tick after tick). The same RemoteStates as without it.
    _decoded: dict[SenderKey, dict[str, object]] = field(default_factory=dict, init=False, compare=False, repr=False)

    def sent_by_its_kind(self, heard: Heard) -> bool:
        """May ``heard``'s sender send this kind of message at all (``v2x.wire.protocol.may_send``: an advisory only
        from the platform; a MAP, SPAT, RSI or RSM only from a roadside unit), and this way (``taken_over``: an
        advisory over Uu only)? The world refuses the first (``not_permitted``); a receiver takes neither."""
        which = heard.frame.WhichOneof("msg")
        return which in may_send(self.kinds.get(heard.sender_id, "car")) and taken_over(
            which, heard.link == testbed_pb2.LINK_UU
        )

    # Decoding what was heard, in local SI units. Each is computed once per receiver time for every
    # receiver of the same transmission in this process (Heard.decoded); results are immutable.
    def bsm(self, heard: Heard, t: float) -> RemoteState | None:
        f, e = self.frame, self.epoch

        def at_t() -> RemoteState | None:
            # Only the BSM's time depends on the receiver's time (which minute its secMark is in): the rest is
            # decoded once per transmission for every receiver, whatever its delivery time.
            body = heard.decoded(("bsm", f, e), lambda: decode_bsm(heard.frame.bsm, now_s=t, frame=f, epoch=e))
            if body is None:
                return None
            t_s = time_from_sec_mark(heard.frame.bsm.sec_mark, t, e)
            return body if t_s == body.t_s else replace(body, t_s=t_s)

        return heard.decoded(("bsm", t, f, e), at_t)

    def decode_bsms(self, heard: Sequence[Heard], t: float) -> None:
        """Decode the BSMs among ``heard`` not decoded yet in one batch (``v2x.wire.bsm.decode_bsms``: the
        positions through the frame in one vectorised call, what a sender's BSMs repeat taken from the memo), for
        :meth:`bsm` to find: the same bodies it would decode one at a time, cheaper for a receiver that hears
        hundreds a tick. If a value is out of range
        somewhere, nothing is kept: :meth:`bsm` decodes each, and remembers which fails."""
        key = ("bsm", self.frame, self.epoch)
        todo = [h for h in heard if key not in h.memo and h.frame.WhichOneof("msg") == "bsm"]
        if len(todo) < 2:
            return
        memo = self._decoded
        if len(memo) > 4 * len(todo) + 1024:  # (senders gone, flags that changed: start again)
            memo.clear()
        try:
            bodies = decode_bsms([h.frame.bsm for h in todo], now_s=t, frame=self.frame, epoch=self.epoch, memo=memo)
        except ValueError:
            return
        # Decoded against ``t``, each body has the time :meth:`bsm` gives it at ``t`` (the same secMark arithmetic):
        # kept under that key too, for the receivers at ``t`` to find as they are.
        at_t = ("bsm", t, self.frame, self.epoch)
        for h, body in zip(todo, bodies, strict=True):
            h.memo.setdefault(key, body)
            h.memo.setdefault(at_t, body)

    def rsm(self, heard: Heard, t: float) -> tuple[RemoteState, ...]:
        f, e = self.frame, self.epoch
        return heard.decoded(("rsm", t, f, e), lambda: tuple(decode_rsm(heard.frame.rsm, now_s=t, frame=f, epoch=e)))

    def rsi(self, heard: Heard, t: float) -> RoadSideInfo:
        f, e = self.frame, self.epoch
        return heard.decoded(("rsi", t, f, e), lambda: decode_rsi(heard.frame.rsi, now_s=t, frame=f, epoch=e))

    def ssm(self, heard: Heard, t: float) -> SensorShare:
        f, e = self.frame, self.epoch
        return heard.decoded(("ssm", t, f, e), lambda: decode_ssm(heard.frame.ssm, now_s=t, frame=f, epoch=e))

    def psm(self, heard: Heard, t: float) -> RemoteState | None:
        f, e = self.frame, self.epoch
        return heard.decoded(("psm", t, f, e), lambda: decode_psm(heard.frame.psm, now_s=t, frame=f, epoch=e))

    def clpmm(self, heard: Heard) -> PlatoonInfo:
        return heard.decoded(("clpmm",), lambda: decode_clpmm(heard.frame.clpmm))

    def vir(self, heard: Heard, t: float) -> Intention:
        f, e = self.frame, self.epoch
        return heard.decoded(("vir", t, f, e), lambda: decode_vir(heard.frame.vir, now_s=t, frame=f, epoch=e))

    def rsc(self, heard: Heard, t: float) -> tuple[bytes, float, tuple[Coordination, ...]]:
        """An RSC: (its sender's id, its time, the vehicles' suggestions)."""
        f, e = self.frame, self.epoch

        def decode() -> tuple[bytes, float, tuple[Coordination, ...]]:
            sender, items = decode_rsc(heard.frame.rsc, frame=f)
            return sender, time_from_sec_mark(heard.frame.rsc.sec_mark, t, e), items

        return heard.decoded(("rsc", t, f, e), decode)

    def check_day2(self, heard: Heard, t: float) -> None:
        """Decode a VIR, RSC or CLPMM only to check its ranges (ValueError: rejected as out_of_range), where
        the receiver has no use for it (a vehicle in no platoon reads no CLPMM)."""
        which = heard.frame.WhichOneof("msg")
        if which == "vir":
            self.vir(heard, t)
        elif which == "rsc":
            self.rsc(heard, t)
        elif which == "clpmm":
            self.clpmm(heard)

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
        one bad sender must not stop a receiver. One its sender's kind may not send (a car's SPAT or advisory:
        ``Environment.sent_by_its_kind``) is rejected and counted as ``not_permitted``, as the world does, and so is
        one over a link it may not come by (the platform's advisory over PC5)."""
        for h in heard:
            if not self.env.sent_by_its_kind(h):
                self._reject("not_permitted", h, f"its kind of actor may not send one (over link {h.link})")
                continue
            try:
                handle(h)
            except ValueError as exc:
                self._reject("out_of_range", h, str(exc))

    def _reject(self, reason: str, h: Heard, why: str) -> None:
        self.rejected[reason] += 1
        log.warning(
            "%s: rejected a %s from %s (t=%.2f s): %s", self.actor_id, h.frame.WhichOneof("msg"), h.sender_id,
            h.tx_time_s, why,
        )  # fmt: skip

    @abc.abstractmethod
    def step(self, ctx: TickContext) -> TickResult:
        """Act on one tick: consume what was heard, move, and say what to transmit."""
