"""What the agents send the world, validated and counted, sans-I/O: ``Hello`` (join), transmitted
``Envelope`` (tx) and the end-of-tick ``Ack`` (ack), as bytes from a named actor.

A bad payload is rejected and counted by reason (``bad_topic``, ``unknown_sender``, ``malformed``,
``sender_mismatch``, ``oversized``, ``unknown_type``, ``unequipped_sender``, ``bad_link``,
``bad_destination``, ``bad_tick``, ``bad_hello``, ``id_mismatch``, ``bad_seq``, ``out_of_range``,
``conflicting_ack``, ``conflicting_tx``, ``not_in_fleet``, ``not_permitted`` (a message kind its sender's kind
may not send: ``v2x.wire.protocol.may_send``; a MAP or SPAT naming an intersection its RSU does not serve),
``not_relayed`` (an RSU's relayed BSM that the world did not deliver to it: ``Inbound.heard``); in a secure run
also ``unsigned``, ``unknown_cert``, ``expired``, ``no_permission``, ``bad_signature``, ``replayed``:
``v2x.wire.security``), never raised; a copy of
something already received (a retransmission after a reconnect, an old tick, a sequence number at or
below the sender's last of an earlier tick) is counted as a duplicate and otherwise ignored, except that the
first Ack of a tick that closed without it (real time: it came after the deadline) is kept in ``late_acks``
for its warnings. A tick is reported once every actor has acked it and as many distinct payloads of the tick
have arrived on its tx topic as its ack counts (rejected ones included: a sender whose envelope the world
refuses must not stall the run).
docs/SECURITY.md says what these checks stop and what they do not.

A fleet (``v2x.agents.fleet``: the equipped background vehicles) reports with one ``FleetAck`` per tick
(``fleet``): the bundle as a whole is checked like an Ack (size, parse, its fleet id, its tick, its
warnings' numbers; a second, different one for the tick is ``conflicting_ack``) and each envelope in it like
a transmission (size, parse, link, the BSM's id), except that its sender must be one of the vehicles the fleet
hosts at this tick (``not_in_fleet`` otherwise, as is a warning for a vehicle it does not host). A rejected
envelope or warning is counted and dropped; the rest of the bundle stands.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from v2x.apps.registry import figure_names
from v2x.core import SCAN_AT_LEAST, scan_messages
from v2x.logs import LOG_FIRST, flag_text, log_refusal
from v2x.scenario.model import MAX_ELEVATION_M, MAX_EXTENT_M
from v2x.scenario.signals import MAX_HOLD_S
from v2x.sim.channel import LINK_NAME, Received, Transmission
from v2x.sim.motion import MAX_ACCEL_MPS2
from v2x.text import did_you_mean, printable
from v2x.units import s_of, tick_time_s, us_of
from v2x.wire import frame_pb2, testbed_pb2
from v2x.wire.advisory import MAX_FIGURE, MAX_TEXT, advisory_problem
from v2x.wire.envelope import parse_envelope, temporary_id
from v2x.wire.protocol import (
    MAX_ACK_BYTES,
    MAX_FLEET_ACK_BYTES,
    MAX_HELLO_BYTES,
    MAX_TX_BYTES,
    MAX_TX_PER_TICK,
    PROTOCOL_VERSIONS,
    RELAYED,
    ROAD_USER_SENDS,
    may_send,
    relay_problem,
)
from v2x.wire.scan import bsm_envelope_unsigned
from v2x.wire.security import EnvelopeSecurity, Freshness, Verified
from v2x.wire.tick_input import mistyped_fields

log = logging.getLogger("v2x.sim.inbound")

M = TypeVar("M", bound=Message)

MAX_EVENTS_PER_ACK = 256
MAX_NOTES_PER_ACK = 64
MAX_REJECTED_KEYS = 32  # reasons in Ack.rejected
# How ``missing_why`` names an actor whose Ack came but whose envelopes did not all come (``AgentTimeout`` tells
# these from the silent ones by its start)
INCOMPLETE = "its Ack({tick}) claims {claimed} envelopes, {came} came"
MAX_REFUSED_ACKS_KEPT = 5  # per actor, in InboundStats.refused_acks
# The actor ids not in the scenario whose Hellos are kept, to name in the error of actors that never joined (a
# stack started with ``--actor carA`` for ``car_a``; anyone may publish on a join topic: a few, the rest counted)
MAX_UNKNOWN_JOINS = 3
# ... and the further such ids told apart, to count them (a set of at most this many ids of at most 64 characters;
# beyond it, "more than" this many): one stray stack says Hello every second, and counted once (a diff review)
MAX_COUNTED_UNKNOWN_JOINS = 1000
MAX_SOFTWARE_CHARS = 128  # of a Hello's ``software`` in the result (escaped first: it comes from the wire)
# The distinct ``software`` texts of an actor's Hellos kept, to name in the result when they differ (anyone may
# publish on a join topic: a few, then "and more")
MAX_HELLOS_NAMED = 4
# Physical range of what an Ack may report (beyond it, the value is a forgery or a bug, never a vehicle).
MAX_SPEED_MPS = 150.0
MAX_HEADING_DEG = 720.0
FIGURE_NAMES = figure_names()  # Advisory.figure_name: one the apps declare (docs/PROTOCOL.md)
CONFLICTS_FLAGGED = 3  # an actor whose envelopes or Hellos conflict in this many ticks is flagged in the result
# ... and at once for an Ack (or FleetAck) of a tick that says something else than the first (another truth,
# other transmissions or events: more than a `rejected` map grown since, which a stack that rebuilds its
# answer to a re-sent input gives), or an input its agent says was not the world's. One forged Ack that came
# first is all a forger needs to change a verdict (attack review 9: one moved an outside stack's car into
# the lead, counted but unflagged), and for two different Hellos (attack review 13: a forged one said first named
# what was under test, unflagged).
KINDS = ("join", "tx", "ack")
_VERSIONS = "/".join(map(str, PROTOCOL_VERSIONS))  # in a refusal's text: "1"
SIGNED_IDS = ("bsm", "rsm", "rsi", "ssm", "psm", "vir", "rsc", "clpmm")  # messages carrying their sender's id


AckLike = TypeVar("AckLike", testbed_pb2.Ack, testbed_pb2.FleetAck)


def _not_served(frame: frame_pb2.MessageFrame, msg_type: str, served: Collection[int]) -> list[int]:
    """The intersections (MAP node ids) a MAP's nodes or a SPAT's intersection states name that are not in
    ``served``, each once, at most 8."""
    if msg_type == "map":
        named = [node.id for node in frame.map.nodes]
    else:
        named = [state.intersection_id for state in frame.spat.intersections]
    return sorted({n for n in named if n not in served})[:8]


def _contradicts(ack: AckLike, kept: AckLike) -> bool:
    """Does ``ack`` (an Ack or a FleetAck) say something else than ``kept``, the first of its tick (another
    truth, other transmissions or events), beyond a ``rejected`` map that grew (what a stack that rebuilds its
    answer to a re-sent input gives: docs/PROTOCOL.md asks for the same bytes, but that is no forgery)?"""
    a, b = type(ack)(), type(kept)()
    a.CopyFrom(ack)
    b.CopyFrom(kept)
    a.ClearField("rejected")
    b.ClearField("rejected")
    return a != b


@dataclass
class InboundStats:
    """What the world rejected (by reason), what the agents reported rejecting (by agent and reason), how
    many duplicates it ignored, how many reports were missing when a tick ended (real-time clock), and the
    conflicts per actor (two different Acks for one tick, two different envelopes with one sequence number,
    two different Hellos: two stacks drive the actor, or someone forges its messages)."""

    rejected: Counter[str] = field(default_factory=Counter)
    rejected_by_agents: dict[str, dict[str, int]] = field(default_factory=dict)
    duplicates: int = 0
    # What of ``rejected`` came on each known actor's or fleet's own topics, and which of ``duplicates`` were its
    # envelopes and Acks (a Hello again is not counted here: the protocol asks for it after a reconnect, or a
    # restart of its stack): ``v2x conformance`` judges the stack under test by these, not by the whole run's
    # (after a broker restart every built-in agent's Hello again was blamed on it: an outside stack's review)
    rejected_by_actor: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    duplicates_by_actor: Counter[str] = field(default_factory=Counter)
    # Which of ``duplicates_by_actor`` were its messages for a tick the world had closed without its complete report
    # (real time: its answers to inputs that went out late, after a broker restart): ``v2x conformance`` does not
    # blame a stack for these when it answered every input within a tick
    late_answers_by_actor: Counter[str] = field(default_factory=Counter)
    # The Acks the world refused on each actor's ack topic, (the tick then, the reason and its detail), the first
    # MAX_REFUSED_ACKS_KEPT distinct ones: ``v2x conformance``'s 'acks' names them (it passed a stack whose Ack
    # was refused)
    refused_acks: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    late_reports: int = 0
    late_by_actor: Counter[str] = field(default_factory=Counter)  # ticks closed without the actor's report
    # A signed run only (else None): per actor, the ticks in which the signature checks refused an envelope on
    # its own tx topic (unsigned, or signed with keys that are not this run's)
    unverified_ticks: dict[str, set[int]] | None = None
    # A run with outside stacks only (else None): for each outside actor, the ticks in which the world refused an
    # envelope on its tx topic for any other reason (``bad_time``, ``bad_seq``, ...) and kept fewer of its envelopes
    # than its Ack's ``tx_count``: what it sent there reached nobody (an outside review: a stack whose every BSM was
    # refused as bad_time passed an unsigned run). Refusals beyond what its Ack claims (junk or forgeries from
    # someone else on the broker) do not count here: 36 junk payloads failed an honest stack (attack review 13)
    refused_tx_ticks: dict[str, set[int]] | None = None
    conflicts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))


_NO_SEQ = (0, -1)  # (highest accepted seq, its tick) of a sender not heard yet


def _finite(value: float, bound: float) -> bool:
    return math.isfinite(value) and abs(value) <= bound


def events_problem(events: Iterable[testbed_pb2.Advisory], *, run_end_s: float, tick_end_s: float = math.inf) -> str:
    """What is wrong with the numbers and texts of the warnings an Ack or a FleetAck carries, or ""
    (``tick_end_s``: the time of the tick it answers; nothing can have been raised after it, and a
    ``trigger_sent_at_s`` is no later than the warning's ``raised_at_s``): ``advisory_problem``, the check every
    receiver of an advisory makes before it acts on it (v2x.agents.vehicle, v2x.sdk)."""
    end_s = min(run_end_s, tick_end_s + 1e-6)
    for k, adv in enumerate(events):
        problem = advisory_problem(adv, end_s=end_s, figure_names=FIGURE_NAMES)
        if problem:
            return f"events[{k}]{problem}"
    return ""


def rejected_problem(rejected: Mapping[str, int]) -> str:
    """What is wrong with the reasons an Ack or a FleetAck says it rejected inputs for, or "": at most
    ``MAX_REJECTED_KEYS`` of them, each at most ``MAX_TEXT`` characters (they go into the result)."""
    if len(rejected) > MAX_REJECTED_KEYS or any(len(k) > MAX_TEXT for k in rejected):
        return "rejected: too many or too long reasons"
    return ""


def warps_problem(warps: Iterable[testbed_pb2.SignalWarp], may_warp: Collection[str]) -> str:
    """What is wrong with the signal plan changes a truth reports, or "": each for an intersection in ``may_warp``
    (the signalised ones the reporting actor's controllers run: an RSU's), its numbers finite (plan times within
    ``MAX_FIGURE``, a hold within 0..``MAX_HOLD_S``), at most ``MAX_EVENTS_PER_ACK`` of them. The world tells every
    actor of a warp in its next TickInput, and every host refuses an input with a number that is not finite: one
    NaN warp for an intersection the scenario does not have (so no controller ever checked it) stalled a lockstep
    run (attack review 10)."""
    for k, w in enumerate(warps):
        if k >= MAX_EVENTS_PER_ACK:
            return f"more than {MAX_EVENTS_PER_ACK} truth.signal_warps"
        if w.intersection not in may_warp:
            mine = ", ".join(sorted(may_warp)) or "none"
            return f"truth.signal_warps[{k}]: intersection {w.intersection[:64]!r} is not one it runs (its: {mine})"
        for name, lo, hi in (("at_s", -MAX_FIGURE, MAX_FIGURE), ("hold_s", 0.0, MAX_HOLD_S),
                             ("skip_to_s", -MAX_FIGURE, MAX_FIGURE)):  # fmt: skip
            value = getattr(w, name)
            if not (math.isfinite(value) and lo <= value <= hi):
                return f"truth.signal_warps[{k}].{name} = {value!r} (within {lo:g}..{hi:g})"
    return ""


def ack_problem(ack: testbed_pb2.Ack, *, run_end_s: float, tick_s: float = 0.0, may_warp: Collection[str] = ()) -> str:
    """What is wrong with the numbers (and sizes) an Ack carries, or "" (``run_end_s``: the last time a
    warning may be raised at; with ``tick_s``, none may be raised after the time of the tick it answers;
    ``may_warp``: the intersections whose signal plan the actor may change, ``warps_problem``)."""
    if ack.tx_count > MAX_TX_PER_TICK:
        return f"tx_count {ack.tx_count} > {MAX_TX_PER_TICK}"
    if (
        len(ack.events) > MAX_EVENTS_PER_ACK
        or len(ack.notes) > MAX_NOTES_PER_ACK
        or len(ack.misbehaviour) > MAX_EVENTS_PER_ACK
    ):
        return f"{len(ack.events)} events, {len(ack.notes)} notes, {len(ack.misbehaviour)} misbehaviour reports"
    if problem := rejected_problem(ack.rejected):
        return problem
    if ack.HasField("truth"):
        tr = ack.truth
        for name, bound in (
            ("x_m", MAX_EXTENT_M),
            ("y_m", MAX_EXTENT_M),
            ("z_m", MAX_ELEVATION_M),  # (the road's heights are within it; 1e308 put a car above every other)
            ("vx_mps", MAX_SPEED_MPS),
            ("vy_mps", MAX_SPEED_MPS),
            ("speed_mps", MAX_SPEED_MPS),
            ("ax_mps2", MAX_ACCEL_MPS2),
            ("ay_mps2", MAX_ACCEL_MPS2),
            ("accel_mps2", MAX_ACCEL_MPS2),
            ("heading_deg", MAX_HEADING_DEG),
        ):
            value = getattr(tr, name)
            if not _finite(value, bound):
                return f"truth.{name} = {value!r} (|value| <= {bound:g})"
        if len(tr.lane) > MAX_TEXT:
            return "truth.lane too long"
        if problem := warps_problem(tr.signal_warps, may_warp):
            return problem
    tick_end_s = ack.tick * tick_s if tick_s > 0 else math.inf
    problem = events_problem(ack.events, run_end_s=run_end_s, tick_end_s=tick_end_s)
    if problem:
        return problem
    for k, mb in enumerate(ack.misbehaviour):
        if not (math.isfinite(mb.t_s) and -1e-6 <= mb.t_s <= run_end_s):
            return f"misbehaviour[{k}].t_s = {mb.t_s!r} (within 0..{run_end_s:g} s)"
        if len(mb.suspect_id) > MAX_TEXT or len(mb.check) > MAX_TEXT:
            return f"misbehaviour[{k}]: text longer than {MAX_TEXT}"
    return ""


class Inbound:
    """The world's inbox for one run: who joined, this tick's acks, the transmissions not yet on the air."""

    def __init__(
        self,
        actor_ids: Iterable[str],
        *,
        slot_of: dict[str, int],
        unequipped: set[str],
        tick_s: float,
        kind_of: dict[str, str] | None = None,
        run_end_s: float = math.inf,
        security: EnvelopeSecurity | None = None,
        may_warp: Mapping[str, Collection[str]] | None = None,
        external: Collection[str] = (),
        may_announce: Mapping[str, Mapping[str, Collection[int]]] | None = None,
    ):
        """``slot_of``: every actor's slot in the world (its keys are the known senders and destinations);
        ``kind_of``: every actor's kind in the scenario (a Hello must say the same); ``run_end_s``: the end
        of the run (a warning raised later is out of range); ``security``: a secure run's verifier (every
        envelope must then be signed by a pseudonym of the run's CA, fresh and not seen before); ``may_warp``:
        per actor, the intersections whose signal plan it may change (an RSU's signalised ones; an actor not
        named may change none: an Ack with a signal warp for another is ``out_of_range``); ``external``: the actors
        outside stacks drive (a road user's Ack among them without a truth is ``out_of_range``: the world judges
        their truths' motion from one to the next, and one Ack without it let the next truth land 500 m on);
        ``may_announce``: per RSU, by message kind ("map", "spat"), the intersections (MAP node ids) a MAP or SPAT of
        its may name (``v2x.scenario.signals.announced_nodes``; None: not checked)."""
        self.actor_ids = sorted(actor_ids)
        self.external = frozenset(external)
        self.slot_of = slot_of
        self.unequipped = unequipped
        self.tick_s = tick_s
        self.kind_of = kind_of or {}
        self.run_end_s = run_end_s
        self.may_warp = may_warp or {}
        self.may_announce = may_announce
        self.hellos: set[str] = set()
        self.software: dict[str, bytes] = {}  # the first accepted Hello of each actor
        # The distinct ``software`` of each actor's accepted Hellos (at most MAX_HELLOS_NAMED; ``_more_hellos``: the
        # actors with more): two differ, two stacks said they drive it, and the result says so (attack review 13:
        # the first Hello, a forger's, named what was under test)
        self.softwares: dict[str, list[str]] = {}
        self._more_hellos: set[str] = set()
        self._two_hellos: set[str] = set()  # the actors two different Hellos named: flagged at once
        self.refused_hellos: dict[str, str] = {}  # why an actor's latest refused Hello was refused
        # the first few actor ids the scenario does not have that said Hello, and the others (to count them)
        self.unknown_joins: list[str] = []
        self._other_unknown_joins: set[str] = set()
        self._unknown_joins_beyond = False  # more than MAX_COUNTED_UNKNOWN_JOINS others
        self.current_tick = -1
        self.acks: dict[str, testbed_pb2.Ack] = {}
        self._ack_bytes: dict[str, bytes] = {}
        self._ack_counts: dict[str, list[int]] = {}  # tx_count of every distinct Ack of this tick
        self._conflict_ticks: dict[str, set[int]] = defaultdict(set)
        self._contradicted: set[str] = set()  # actors with an Ack that said another thing than its tick's first
        # The distinct payloads of this tick on each actor's tx topic (accepted, rejected or copies of
        # these): a retransmission's copies must not make a report look complete before what it resends.
        self.arrivals: defaultdict[str, set[int]] = defaultdict(set)
        self.received: dict[tuple[int, int], Transmission] = {}  # (sender slot, seq) -> transmission
        self.last_seq: dict[str, tuple[int, int]] = {}  # actor -> (highest accepted seq, its tick)
        # actor -> its last_seq when the tick opened: the highest seq accepted in an earlier tick. Below it, a
        # copy. Above it, within the current tick, a seq that is new may come after a higher one (a reconnect:
        # the envelopes published before it were lost, those after it arrived, then the retransmission brings
        # all of them again). ``_claimed`` puts it back for an actor none of whose envelopes of the tick it keeps.
        self._last_at_open: dict[str, tuple[int, int]] = {}
        # Ticks that closed without the actor's Ack (real time), and the Acks for them that came after all:
        # their truth is history, but their warnings still count (docs/PROTOCOL.md "Timing and late stacks").
        self.closed_without: dict[str, set[int]] = defaultdict(set)
        # Every tick closed without the actor's complete report, for good (``late_answers_by_actor``)
        self.closed_late: dict[str, set[int]] = defaultdict(set)
        self.late_acks: list[tuple[str, testbed_pb2.Ack]] = []
        self.stats = InboundStats()
        self.fleet_ids: set[str] = set()  # the run's fleets (each reports once per tick)
        self.fleet_acks: dict[str, bytes] = {}  # this tick's FleetAck of each fleet
        self.fleet_events: list[tuple[str, testbed_pb2.Advisory]] = []  # this tick's accepted fleet warnings
        self._logged: Counter[str] = Counter()
        # What the world refused on each known actor's or fleet's topics during the current tick: its reasons
        # and the last one's detail, so that a tick that never completes names why (a stack that re-sends a
        # refused Ack with the same bytes waited 60 s for "no report": an outside stack's review)
        self._refused: dict[str, tuple[int, Counter[str], str]] = {}
        self._refused_tx: set[str] = set()  # the outside actors something on whose tx topic was refused this tick
        self._ids = {a: temporary_id(a) for a in self.actor_ids}
        self._vehicle_ids: dict[str, bytes] = {}  # a fleet vehicle's temporary id, made once per vehicle
        self.security = security
        if security is not None:
            self.stats.unverified_ticks = defaultdict(set)
        if self.external:
            self.stats.refused_tx_ticks = {a: set() for a in sorted(self.external)}
        self._fresh = Freshness()
        # The relays (``RELAYED``: an RSU's BSMs to the platform over the backhaul): per actor that may relay, the
        # frame bytes of the messages of the kinds it relays that the world delivered to it this tick and the tick
        # before (``heard``); a relay of anything else is ``not_relayed``. Only in a run with a destination for them.
        kinds = set(self.kind_of.values())
        self._relayers = {
            self.slot_of[a]: a
            for a, k in self.kind_of.items()
            if a in self.slot_of and any(d in kinds for to in RELAYED.get(k, {}).values() for d in to)
        }
        self._heard: dict[str, set[bytes]] = {}
        self._heard_before: dict[str, set[bytes]] = {}

    # -- state --------------------------------------------------------------------------------------
    def open(self, tick: int) -> None:
        """Tick ``tick`` begins: acks and transmissions for it are accepted from now on."""
        self.current_tick = tick
        # The last sequence number before this tick of each sender ``_tx`` takes (``slot_of``; its duplicate
        # test): the fleets' vehicles, in ``last_seq`` too and thousands, are checked against ``last_seq``.
        last = self.last_seq
        self._last_at_open = {a: last[a] for a in self.slot_of if a in last}
        self.acks = {}
        self._ack_bytes = {}
        self._ack_counts = {}
        self.arrivals = defaultdict(set)
        self.fleet_acks = {}
        self._refused_tx = set()

    def heard(self, due: Mapping[int, Received]) -> None:
        """What the channel hands the receivers at the tick just opened (``Channel.due``, by receiver slot): of each
        actor that may relay (an RSU), the frame bytes of the messages it may relay (BSMs), which its relays of this
        tick and the next must be. A set per RSU and tick, each envelope parsed once; an outside stack's frame also
        as protobuf serialises it again (a relay re-encodes the frame it parsed: the built-in RSU does), where
        that differs (another encoder's order or lengths). (A delivery the world then cuts from an input over 4 MiB,
        ``Simulation._sendable``, stays in the set: a relay of it is of a BSM sent within the RSU's reach.)"""
        self._heard_before = self._heard
        self._heard = {}
        frames: dict[bytes, tuple[bytes, ...]] = {}
        external = {self.slot_of[a] for a in self.external if a in self.slot_of}
        for slot, actor in self._relayers.items():
            got = due.get(slot)
            relayed = RELAYED[self.kind_of[actor]]
            mine = self._heard[actor] = set()
            for tx in got.sent if got is not None else ():
                if tx.msg not in relayed:
                    continue
                these = frames.get(tx.raw)
                if these is None:
                    frame = testbed_pb2.Envelope.FromString(tx.raw).frame  # (the world accepted it: it parses)
                    these = (frame,)
                    if tx.sender_slot in external:
                        these += (frame_pb2.MessageFrame.FromString(frame).SerializeToString(),)
                    frames[tx.raw] = these
                mine.update(these)

    def _relayed(self, actor_id: str, frame: bytes) -> bool:
        """Was ``frame`` delivered to ``actor_id`` at this tick or the one before (``heard``)?"""
        return frame in self._heard.get(actor_id, ()) or frame in self._heard_before.get(actor_id, ())

    @property
    def joined(self) -> bool:
        """Every actor has said hello."""
        return self.hellos >= set(self.actor_ids)

    def not_joined(self) -> list[str]:
        """The actors that have not said hello yet."""
        return sorted(set(self.actor_ids) - self.hellos)

    def software_of(self, actor_id: str) -> str | None:
        """What the accepted Hellos of ``actor_id`` said its software is (``Hello.software``; anyone's text:
        escaped, at most ``MAX_SOFTWARE_CHARS`` with "..." for the rest), None before one came. When they named
        different software, "conflicting Hellos: 'A', 'B'" (the first ``MAX_HELLOS_NAMED``, "and more" for the
        rest): two stacks said they drive it, and which one did is not known."""
        named = self.softwares.get(actor_id)
        if not named:
            return None
        if len(named) == 1:
            text = printable(named[0])
        else:
            more = " and more" if actor_id in self._more_hellos else ""
            text = "conflicting Hellos: " + ", ".join(printable(repr(sw)) for sw in named) + more
        return text if len(text) <= MAX_SOFTWARE_CHARS else text[: MAX_SOFTWARE_CHARS - 3] + "..."

    def why_not_joined(self) -> str:
        """For the error that names the actors who never joined: why each one's Hello was refused, for those
        whose only Hellos were ("" when none was refused)."""
        refused = [f"{a}: {self.refused_hellos[a]}" for a in self.not_joined() if a in self.refused_hellos]
        why = f" (their Hello was refused: {'; '.join(refused)})" if refused else ""
        return why + self._unknown_joins()

    def _unknown_joins(self) -> str:
        """ "; a Hello came from ..." for the actor ids the scenario does not have that said Hello (a stack started
        with a wrong ``--actor``), each with the closest missing actor; "" for none. Anyone may publish on a join
        topic: at most ``MAX_UNKNOWN_JOINS`` are named, escaped."""
        if not self.unknown_joins:
            return ""
        missing = self.not_joined() or self.actor_ids
        named = []
        for who in self.unknown_joins:
            close = did_you_mean(who, missing)
            named.append(printable(repr(who)) + (f" ({printable(close.removeprefix(': '))})" if close else ""))
        more = f" and {len(self._other_unknown_joins)} more" if self._other_unknown_joins else ""
        if self._unknown_joins_beyond:
            more = f" and more than {MAX_COUNTED_UNKNOWN_JOINS} more"
        return f"; a Hello came from actor id(s) the scenario does not have: {', '.join(named)}{more}"

    def missing(self) -> list[str]:
        """The actors whose report of the current tick is incomplete (no ack, or fewer payloads arrived on
        its tx topic than its ack counts; with conflicting acks, than every one of them counts)."""
        return [
            a for a in self.actor_ids if a not in self.acks or min(self._ack_counts.get(a, [0])) > len(self.arrivals[a])
        ] + sorted(f for f in self.fleet_ids if f not in self.fleet_acks)

    def missing_why(self) -> list[str]:
        """``missing``, each with why, if the world knows: an Ack that came but claims more envelopes than came
        (``INCOMPLETE``; "no report" misled an outside stack that counted a copy it never sent), and what the
        world refused on its topics during this tick (the reasons and the last one's detail: from its stack, or
        from anyone who may publish there)."""
        out = []
        for who in self.missing():
            why = []
            if who in self.acks:
                claimed, came = min(self._ack_counts[who]), len(self.arrivals[who])
                why.append(INCOMPLETE.format(tick=self.current_tick, claimed=claimed, came=came))
            tick, counts, last = self._refused.get(who) or (-1, Counter(), "")
            if tick == self.current_tick and counts:
                reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
                # (the detail quotes what came on the topic, anyone's: shown escaped, as every such text)
                why.append(f"the world refused {reasons} on its topics this tick; the last: {printable(last)}")
            out.append(f"{who} ({'; '.join(why)})" if why else who)
        return out

    @property
    def reported(self) -> bool:
        """Every actor has reported the current tick completely."""
        return (
            len(self.acks) == len(self.actor_ids) and len(self.fleet_acks) == len(self.fleet_ids) and not self.missing()
        )

    def take(self, tick: int) -> list[Transmission]:
        """The transmissions of ``tick`` in (sender slot, seq) order; they (and anything older) are dropped
        from the inbox."""
        received = self.received
        keys = sorted(received)  # (sender slot, seq): each transmission's keys, its place in the batch
        batch = [r for k in keys if (r := received[k]).tick == tick]
        # (the usual case: every transmission in the inbox is of this tick)
        self.received = {} if len(batch) == len(keys) else {k: r for k, r in received.items() if r.tick > tick}
        kept = self._claimed(batch, tick)
        if self._refused_tx:
            self._note_refused_tx(kept, tick)
        return kept

    def _claimed(self, batch: list[Transmission], tick: int) -> list[Transmission]:
        """``batch`` less what no Ack claims: of each actor's transmissions of ``tick``, at most as many as its
        Ack's ``tx_count``, the lowest sequence numbers first. A stack numbers its envelopes one after the other,
        so the extra ones (someone else publishing on its tx topic, with a sequence number of their choosing) are
        counted as ``unclaimed_tx``, flag the actor, and leave its sequence numbers where its own envelopes put
        them: a forged envelope with a sequence number far ahead would otherwise make every later envelope of
        the actor look like an old copy, and silence it; one from an actor that sent nothing (a platform with
        nothing to say) would otherwise reach its receivers."""
        claims = {self.slot_of[a]: (a, ack.tx_count) for a, ack in self.acks.items() if a in self.slot_of}
        if not claims:
            return batch
        top = max(claims)
        kept: list[Transmission] = []
        seen: Counter[int] = Counter()
        cut: set[str] = set()  # the actors some of whose transmissions no Ack claims
        for k, r in enumerate(batch):
            if r.sender_slot > top:  # (the story actors' slots come first: the fleets' thousands are not looked at)
                kept.extend(batch[k:])
                break
            claim = claims.get(r.sender_slot)
            if claim is not None:
                actor, count = claim
                seen[r.sender_slot] += 1
                if seen[r.sender_slot] > count:
                    cut.add(actor)
                    self._conflict(actor, "tx")
                    self.reject(
                        "unclaimed_tx", actor, f"(seq {r.seq} beyond the {count} its Ack of tick {tick} counts)"
                    )
                    continue
            kept.append(r)
        for actor in cut:  # its sequence numbers as its own envelopes left them
            mine = [r.seq for r in kept if r.sender_slot == self.slot_of[actor]]
            if mine:
                self.last_seq[actor] = (max(mine), tick)
            elif actor in self._last_at_open:
                self.last_seq[actor] = self._last_at_open[actor]
            else:
                self.last_seq.pop(actor, None)
        return kept

    def flagged(self) -> dict[str, dict[str, int]]:
        """Actors with an Ack that contradicts an earlier one of its tick, a forged input, in any tick, or two
        different Hellos, or with conflicts of any kind in ``CONFLICTS_FLAGGED`` ticks or more, with their
        conflict counts."""
        return {
            a: dict(sorted(self.stats.conflicts[a].items()))
            for a, ticks in sorted(self._conflict_ticks.items())
            if len(ticks) >= CONFLICTS_FLAGGED
            or a in self._contradicted
            or a in self._two_hellos
            or "input" in self.stats.conflicts[a]
        }

    # -- messages -----------------------------------------------------------------------------------
    def reject(self, reason: str, where: str, detail: str = "", *, n: int = 1, on_topics: bool = True) -> None:
        """Count a rejection, or ``n`` of one cause (``where``: the topic or sender, for the log). The first
        ``LOG_FIRST`` calls of each reason are logged at WARNING, the rest at DEBUG (``log_summary`` sums them up
        at the end). ``on_topics``: refused on the sender's topics, which ``missing_why`` tells while the world
        waits for its report (not a cut from another's input)."""
        self.stats.rejected[reason] += n
        self._logged[reason] += 1
        who = where.rsplit("/", 1)[-1]  # (a topic's last level, or the sender)
        if who in self.slot_of or who in self.fleet_ids:
            self.stats.rejected_by_actor[who][reason] += n
        if on_topics and (who in self.slot_of or who in self.fleet_ids):
            tick, counts, _ = self._refused.get(who) or (self.current_tick, Counter(), "")
            if tick != self.current_tick:
                counts = Counter()
            counts[reason] += n
            self._refused[who] = (self.current_tick, counts, f"{reason} {detail[:200]}".rstrip())
        t = max(self.current_tick, 0) * self.tick_s
        message = "world t=%.2f s: rejected %s on %s %s"
        log_refusal(log, self._logged[reason], "world", f"{reason} rejections", message, t, reason, where, detail[:200])

    def overflowed(self, sender: str, n: int, detail: str) -> None:
        """``n`` deliveries of what ``sender`` (an actor, or the fleet hosting the vehicle) sent were cut from a
        receiver's input that could not be sent whole, it being one of those who sent that receiver the most
        (``Simulation._sendable``): counted against it (``input_overflow``) and, once per input, a conflict of
        its, so that a sender cut in ``CONFLICTS_FLAGGED`` ticks is flagged."""
        self.reject("input_overflow", sender, detail, n=n, on_topics=False)
        if sender in self.slot_of or sender in self.fleet_ids:
            self._conflict(sender, "input_overflow")

    def log_summary(self) -> None:
        """One WARNING line per reason that was rejected more often than it was logged."""
        for reason, n in sorted(self.stats.rejected.items()):
            if self._logged[reason] > LOG_FIRST:  # (more lines than were logged: one line may count several)
                log.warning("world: rejected %d %s in all (the first %d logged)", n, reason, LOG_FIRST)
        for actor, counts in self.flagged().items():
            log.warning("world: %s: %s", actor, flag_text(counts))

    def note_rejected_by(self, who: str, rejected: Mapping[str, int]) -> None:
        """What an agent or a fleet says it rejected so far (its Ack's or FleetAck's ``rejected``): kept for the
        result; a ``conflicting_input`` more than before (two different inputs for one tick: one was not the
        world's) is a conflict of ``who``'s, ``input``, so that forged inputs get it flagged as forged reports do."""
        before = self.stats.rejected_by_agents.get(who, {}).get("conflicting_input", 0)
        self.stats.rejected_by_agents[who] = dict(rejected)
        if rejected.get("conflicting_input", 0) > before:
            self._conflict(who, "input")

    def _duplicate(self, who: str, tick: int = -1) -> None:
        """Count a copy of something ``who`` (an actor or a fleet) sent before, or of an old tick (``tick``: the
        one it is for, if known)."""
        self.stats.duplicates += 1
        self.stats.duplicates_by_actor[who] += 1
        if tick >= 0 and tick in self.closed_late.get(who, ()):
            self.stats.late_answers_by_actor[who] += 1

    def _conflict(self, actor_id: str, what: str) -> None:
        self.stats.conflicts[actor_id][what] += 1
        self._conflict_ticks[actor_id].add(self.current_tick)

    def receive(self, kind: str, actor_id: str, payload: bytes, *, where: str = "") -> None:
        """One message of ``kind`` (join, tx or ack) that ``actor_id`` sent (``where``: its topic, for the
        log). Accepted or counted; never raises on bad input."""
        where = where or f"{kind}/{actor_id}"
        if kind not in KINDS:
            self.reject("bad_topic", where)
            return
        if actor_id not in self.slot_of:
            self.reject("unknown_sender", where)
            if kind == "join":
                self._unknown_join(actor_id[:64])
            return
        if kind == "join":
            self._join(actor_id, payload, where)
        elif kind == "tx":
            refused = self.stats.rejected.total()
            if self._tx(actor_id, payload, where):
                self.arrivals[actor_id].add(hash(payload))
            if self.stats.rejected.total() > refused and actor_id in self.external:
                self._refused_tx.add(actor_id)
        else:
            refused = self.stats.rejected.total()
            self._ack(actor_id, payload, where)
            if self.stats.rejected.total() > refused:
                kept = self.stats.refused_acks.setdefault(actor_id, [])
                refusal = (self.current_tick, self._refused[actor_id][2])
                if len(kept) < MAX_REFUSED_ACKS_KEPT and refusal not in kept:  # (not a re-sent Ack's again)
                    kept.append(refusal)

    def _note_refused_tx(self, kept: list[Transmission], tick: int) -> None:
        """Tick ``tick`` closes (``kept``: its transmissions that go on the air): it counts towards "envelopes
        accepted" for each outside actor with a refusal on its tx topic in it whose Ack claims more envelopes than
        the world kept of its (the world refused envelopes the stack says it sent), unless the signature checks
        refused one of its envelopes in it ("envelopes verified"). Refusals beyond what its Ack claims are someone
        else's (junk on the topic, forgeries): counted in ``rejected``, not against the stack (attack review 13:
        36 junk payloads on an honest stack's topic failed the run, saying what it sent reached nobody)."""
        if self.stats.refused_tx_ticks is None:
            return
        unverified = self.stats.unverified_ticks or {}
        ours = Counter(r.sender_slot for r in kept)
        for actor_id in self._refused_tx:
            ack = self.acks.get(actor_id)
            if ack is None or ours[self.slot_of[actor_id]] >= ack.tx_count:
                continue  # (no Ack: the tick closed without its report, "reports in time" counts it)
            if tick not in unverified.get(actor_id, ()):
                self.stats.refused_tx_ticks[actor_id].add(tick)
        self._refused_tx = set()

    def _unknown_join(self, who: str) -> None:
        """A Hello from ``who``, an actor id the scenario does not have: named if among the first
        ``MAX_UNKNOWN_JOINS``, else counted once however often it says Hello."""
        if who in self.unknown_joins or who in self._other_unknown_joins:
            return
        if len(self.unknown_joins) < MAX_UNKNOWN_JOINS:
            self.unknown_joins.append(who)
        elif len(self._other_unknown_joins) < MAX_COUNTED_UNKNOWN_JOINS:
            self._other_unknown_joins.add(who)
        else:
            self._unknown_joins_beyond = True

    def _decode(self, cls: type[M], payload: bytes, limit: int, where: str) -> M | None:
        """``payload`` as a ``cls``, or None once rejected: ``oversized`` above ``limit`` bytes, ``malformed``
        when it does not parse or its fields do not have the message's types."""
        if len(payload) > limit:
            self.reject("oversized", where, f"({len(payload)} bytes > {limit})")
            return None
        msg = cls()
        try:
            msg.ParseFromString(payload)
        except DecodeError:
            self.reject("malformed", where)
            return None
        if mistyped_fields(msg):
            self.reject("malformed", where, f"(not a {cls.DESCRIPTOR.name})")
            return None
        return msg

    def _decode_envelope(
        self, payload: bytes, where: str, what: str = ""
    ) -> tuple[testbed_pb2.Envelope, frame_pb2.MessageFrame] | None:
        """``payload`` as an ``Envelope`` and its frame, or None once rejected as ``_decode`` does (``what``
        starts the detail the log gives)."""
        if len(payload) > MAX_TX_BYTES:
            self.reject("oversized", where, f"({what}{len(payload)} bytes > {MAX_TX_BYTES})")
            return None
        parsed = parse_envelope(payload)
        if parsed is None:
            self.reject("malformed", where, f"({what}does not parse)")
            return None
        if mistyped_fields(parsed[0]):
            self.reject("malformed", where, f"({what}not an Envelope)")
            return None
        return parsed

    def _join(self, actor_id: str, payload: bytes, where: str) -> None:
        hello = self._decode(testbed_pb2.Hello, payload, MAX_HELLO_BYTES, where)
        if hello is None:
            return
        if hello.actor_id != actor_id:
            detail = f"(hello from {hello.actor_id[:64]!r})"
            self.refused_hellos[actor_id] = f"sender_mismatch {detail}"
            self.reject("sender_mismatch", where, detail)
            return
        expected_kind = self.kind_of.get(actor_id)
        if hello.protocol_version not in PROTOCOL_VERSIONS or (expected_kind and hello.kind != expected_kind):
            got = f"protocol {hello.protocol_version}, kind {hello.kind[:32]!r}"
            detail = f"({got}; expected {_VERSIONS}, {expected_kind!r})"
            self.refused_hellos[actor_id] = f"bad_hello {detail}"
            self.reject("bad_hello", where, detail)
            return
        who = hello.SerializeToString(deterministic=True)
        if actor_id in self.hellos:
            if who != self.software.get(actor_id):
                self._conflict(actor_id, "hello")
                self._two_hellos.add(actor_id)
                named = self.softwares[actor_id]
                if hello.software not in named:
                    if len(named) < MAX_HELLOS_NAMED:
                        named.append(hello.software)
                    else:
                        self._more_hellos.add(actor_id)
                log.warning("world: %s said hello again as %r (another stack?)", actor_id, hello.software[:64])
            elif self.current_tick >= 1:  # once the run is under way, the same Hello again is a duplicate
                self.stats.duplicates += 1  # (before: a stack's join retries, which depend on wall time)
                log.info("world: %s joined again (reconnect)", actor_id)
            else:  # the Hello a stack repeats every second until its first tick (it was logged as a reconnect)
                log.debug("world: %s said hello again (before its first tick)", actor_id)
            return
        self.software[actor_id] = who
        self.softwares[actor_id] = [hello.software]
        self.hellos.add(actor_id)

    def _tx(self, actor_id: str, payload: bytes, where: str) -> bool:
        """Accept, reject or drop one envelope; False for a copy of an earlier tick's (it does not count
        towards this tick's report)."""
        parsed = self._decode_envelope(payload, where)
        if parsed is None:
            return True
        env, frame = parsed
        if env.sender_id != actor_id:
            self.reject("sender_mismatch", where, f"(envelope says {env.sender_id[:64]!r})")
            return True
        msg_type = frame.WhichOneof("msg")
        if msg_type is None:
            self.reject("unknown_type", where)
            return True
        if actor_id in self.unequipped:
            self.reject("unequipped_sender", where, "(equipped: false: it has no OBU)")
            return True
        kind = self.kind_of.get(actor_id)
        if kind is not None and msg_type not in may_send(kind):  # (an advisory from a car steered or stalled runs)
            self.reject("not_permitted", where, f"(a {kind} may not send {msg_type!r} messages)")
            return True
        if env.link not in LINK_NAME:
            self.reject("bad_link", where)
            return True
        if env.link != testbed_pb2.LINK_PC5 and (
            not env.dest_ids
            or len(set(env.dest_ids)) != len(env.dest_ids)  # one copy per destination: no 900 to one receiver
            or any(d not in self.slot_of for d in env.dest_ids)
        ):
            self.reject("bad_destination", where, f"({list(env.dest_ids)[:8]})")
            return True
        if env.link == testbed_pb2.LINK_WIRED and self.kind_of.get(actor_id) not in (None, "rsu", "platform"):
            self.reject("bad_link", where, "(the wired backhaul is the roadside's and the platform's)")
            return True
        wired = env.link == testbed_pb2.LINK_WIRED
        if kind is not None and (
            problem := relay_problem(kind, msg_type, wired, [self.kind_of.get(d, "car") for d in env.dest_ids])
        ):
            self.reject("not_permitted", where, f"({problem})")
            return True
        if msg_type in ("map", "spat") and self.may_announce is not None:
            foreign = _not_served(frame, msg_type, self.may_announce.get(actor_id, {}).get(msg_type, ()))
            if foreign:
                self.reject("not_permitted", where, f"(a {msg_type} for node(s) {foreign}, not served by {actor_id})")
                return True
        # A message naming its sender by id names the envelope's sender; a relay (``RELAYED``: over the backhaul,
        # carrying the heard sender's id) must be what the world delivered to the relaying actor (attack review 13:
        # an outside RSU's made-up "relay" of a car parked 150 m away got the car judged a liar by the edge).
        if msg_type in SIGNED_IDS:
            if wired and msg_type in RELAYED.get(kind or "", {}):
                # (one of an earlier tick, a copy or one come late, is dropped below, one of a later tick refused)
                if env.tick == self.current_tick and not self._relayed(actor_id, env.frame):
                    self.reject("not_relayed", where, f"(a {msg_type} the world did not deliver to {actor_id})")
                    return True
            elif (inner := getattr(frame, msg_type)).id != self._ids[actor_id]:
                self.reject("id_mismatch", where, f"({msg_type} id {inner.id.hex()[:16]} is not {actor_id}'s)")
                return True
        slot = self.slot_of[actor_id]
        key = (slot, env.seq)
        seen = self.received.get(key)
        if seen is not None and seen.raw == payload:
            self._duplicate(actor_id)
            return True
        if self.security is not None:  # before the sequence checks: a forgery must not take a real seq
            reason = self._verify(env, msg_type)
            if reason:
                self.reject(reason, where, f"(seq {env.seq}, tick {env.tick})")
                if self.stats.unverified_ticks is not None:
                    self.stats.unverified_ticks[actor_id].add(self.current_tick)
                return True
        if seen is not None:
            if seen.raw != payload:
                self._conflict(actor_id, "tx")
                self.reject("conflicting_tx", where, f"(seq {env.seq} again, different bytes)")
            else:
                self._duplicate(actor_id)
            return True
        last_seq, last_tick = self.last_seq.get(actor_id, (0, -1))
        if env.tick < self.current_tick or env.seq <= self._last_at_open.get(actor_id, _NO_SEQ)[0]:
            self._duplicate(actor_id, env.tick)
            return env.tick >= self.current_tick
        if env.tick > self.current_tick:
            self.reject("bad_tick", where, f"(tick {env.tick}, current {self.current_tick})")
            return True
        lo_us, hi_us = self._tx_window()
        if not lo_us <= env.tx_time_us <= hi_us:  # (in ms, it was taken: an outside stack's review)
            self.reject("bad_time", where, f"(tx_time_us {env.tx_time_us}, not within {lo_us}..{hi_us})")
            return True
        if env.seq > last_seq:
            if env.seq - last_seq > MAX_TX_PER_TICK * (self.current_tick - last_tick + 1):
                self.reject("bad_seq", where, f"(seq {env.seq} after {last_seq}: a jump no sender makes)")
                return True
            self.last_seq[actor_id] = (env.seq, self.current_tick)
        self.received[key] = Transmission(
            env.tick, slot, env.seq, s_of(env.tx_time_us), env.link, tuple(env.dest_ids), payload, msg_type
        )
        return True

    def _verify(self, env: testbed_pb2.Envelope, msg_type: str) -> str:
        """Why a secure run refuses ``env`` ("" if it does not): the signature checks of
        ``v2x.wire.security``, against the world's clock (the current tick's time)."""
        assert self.security is not None
        verified = self.security.verifier.check(env, msg_type)
        if not isinstance(verified, Verified):
            return verified
        now_us = self.security.epoch_us + us_of(tick_time_s(max(self.current_tick, 0), self.tick_s))
        return self._fresh.check(verified, now_us)

    def _ack(self, actor_id: str, payload: bytes, where: str) -> None:
        ack = self._decode(testbed_pb2.Ack, payload, MAX_ACK_BYTES, where)
        if ack is None:
            return
        if ack.actor_id != actor_id:
            self.reject("sender_mismatch", where, f"(ack from {ack.actor_id[:64]!r})")
            return
        may_warp = self.may_warp.get(actor_id, ())
        problem = ack_problem(ack, run_end_s=self.run_end_s, tick_s=self.tick_s, may_warp=may_warp)
        if problem:
            self.reject("out_of_range", where, f"({problem})")
            return
        if (
            actor_id in self.external
            and self.kind_of.get(actor_id) not in ("rsu", "platform")
            and not ack.HasField("truth")
        ):
            self.reject("out_of_range", where, "(a road user's Ack must carry its truth, every tick)")
            return
        if ack.tick != self.current_tick:
            if ack.tick < self.current_tick:
                self._duplicate(actor_id, ack.tick)
                if ack.tick in self.closed_without[actor_id]:  # the first Ack of a tick closed without it
                    self.closed_without[actor_id].discard(ack.tick)
                    self.late_acks.append((actor_id, ack))
            else:
                self.reject("bad_tick", where, f"(tick {ack.tick}, current {self.current_tick})")
            return
        if actor_id in self.acks:
            if payload == self._ack_bytes[actor_id]:
                self._duplicate(actor_id)
            else:  # the first stays; the tick is complete once any of them is
                self._conflict(actor_id, "ack")
                if _contradicts(ack, self.acks[actor_id]):
                    self._contradicted.add(actor_id)
                self._ack_counts[actor_id].append(ack.tx_count)
                self.reject("conflicting_ack", where, f"(a second, different ack for tick {ack.tick})")
            return
        self.acks[actor_id] = ack
        self._ack_bytes[actor_id] = payload
        self._ack_counts[actor_id] = [ack.tx_count]

    # -- fleets -------------------------------------------------------------------------------------
    def fleet(
        self, fleet_id: str, payload: bytes, members: dict[str, int], *, where: str = "",
        before: Mapping[str, int] | None = None,
    ) -> None:  # fmt: skip
        """The ``FleetAck`` of ``fleet_id`` for the current tick (``members``: the vehicles it hosts at this
        tick, id -> world slot; ``before``: those it hosted at the tick before, whose warnings may come with this
        tick's ack): its envelopes become this tick's transmissions and its warnings go to ``fleet_events``;
        whatever is wrong is rejected and counted, never raised."""
        where = where or f"fleet-ack/{fleet_id}"
        if fleet_id not in self.fleet_ids:
            self.reject("unknown_sender", where)
            return
        ack = self._decode(testbed_pb2.FleetAck, payload, MAX_FLEET_ACK_BYTES, where)
        if ack is None:
            return
        if ack.fleet_id != fleet_id:
            self.reject("sender_mismatch", where, f"(fleet ack from {ack.fleet_id[:64]!r})")
            return
        if ack.tick != self.current_tick:
            if ack.tick < self.current_tick:
                self._duplicate(fleet_id)
            else:
                self.reject("bad_tick", where, f"(tick {ack.tick}, current {self.current_tick})")
            return
        if fleet_id in self.fleet_acks:
            if payload == self.fleet_acks[fleet_id]:
                self._duplicate(fleet_id)
            else:
                self._conflict(fleet_id, "ack")
                if _contradicts(ack, testbed_pb2.FleetAck.FromString(self.fleet_acks[fleet_id])):
                    self._contradicted.add(fleet_id)
                self.reject("conflicting_ack", where, f"(a second, different fleet ack for tick {ack.tick})")
            return
        limit = MAX_TX_PER_TICK * max(1, len(members))
        if len(ack.envelopes) > limit or len(ack.events) > MAX_EVENTS_PER_ACK * max(1, len(members)):
            self.reject("out_of_range", where, f"({len(ack.envelopes)} envelopes, {len(ack.events)} events)")
            return
        # as an Ack's (ack_problem): a forged FleetAck put 3000 chosen keys into the result (attack review 2)
        problem = rejected_problem(ack.rejected)
        if problem:
            self.reject("out_of_range", where, f"({problem})")
            return
        problem = events_problem(ack.events, run_end_s=self.run_end_s, tick_end_s=ack.tick * self.tick_s)
        if problem:
            self.reject("out_of_range", where, f"({problem})")
            return
        self.fleet_acks[fleet_id] = payload
        if ack.rejected:  # what the fleet refused (e.g. a forged FleetInput): reported as an agent's
            self.note_rejected_by(fleet_id, ack.rejected)
        if self.security is None:
            self._fleet_batch(ack.envelopes, members, where)
        else:  # (the verifier remembers what it saw: each envelope is checked once, by ``_fleet_tx``)
            for raw in ack.envelopes:
                self._fleet_tx(raw, members, where)
        earlier = ack.tick * self.tick_s - 1e-9  # a warning raised before this tick: of the tick before
        for adv in ack.events:
            if adv.target_id not in members and not (
                before is not None and adv.target_id in before and adv.raised_at_s < earlier
            ):
                self.reject("not_in_fleet", where, f"(a warning for {adv.target_id[:64]!r})")
                continue
            self.fleet_events.append((adv.target_id, adv))

    def _fleet_batch(self, envelopes: Iterable[bytes], members: dict[str, int], where: str) -> None:
        """The envelopes of a bundle in an insecure run, in order, with exactly ``_fleet_tx``'s decisions: an
        envelope that passes every check is taken here, with the checks inlined (a bundle holds thousands),
        and any other is handed to ``_fleet_tx`` (which checks it again from the start: nothing here changes
        the inbox before an envelope is accepted, so it rejects it for the same reason and with the same
        counts). A big bundle's envelopes are first read in one compiled pass (``scan_messages``, the layout of
        a fleet vehicle's BSM envelope: ``v2x.wire.scan.bsm_envelope_unsigned``); those the scan takes are
        checked from their columns, without a protobuf message, the others parsed here as before."""
        raws = list(envelopes)
        scanned: list[tuple[str, int, int, int, int, bytes] | None] = [None] * len(raws)
        if len(raws) >= SCAN_AT_LEAST:
            scanned = self._scanned(raws)
        current = self.current_tick
        lo_us, hi_us = self._tx_window()
        received = self.received
        last_seq = self.last_seq
        ids = self._vehicle_ids
        envelope_of, frame_of = testbed_pb2.Envelope.FromString, frame_pb2.MessageFrame.FromString
        pc5 = testbed_pb2.LINK_PC5
        road_user_sends = ROAD_USER_SENDS
        for raw, fields in zip(raws, scanned, strict=True):
            if len(raw) > MAX_TX_BYTES:
                self._fleet_tx(raw, members, where)
                continue
            if fields is not None:  # (the scan took it: no destinations, no unknown field, a BSM, no security)
                sender, seq, tick, tx_time_us, link, bsm_id = fields
                slot = members.get(sender)
                msg_type = "bsm"
                if slot is None or link != pc5 or tick != current or seq <= last_seq.get(sender, _NO_SEQ)[0]:
                    self._fleet_tx(raw, members, where)
                    continue
            else:
                try:  # (``FromString``: a new message parsed from the bytes, as ``ParseFromString`` into a new one)
                    env = envelope_of(raw)
                    frame = frame_of(env.frame)
                except DecodeError:
                    self._fleet_tx(raw, members, where)
                    continue
                sender = env.sender_id
                slot = members.get(sender)
                found = frame.WhichOneof("msg")
                link = env.link
                tick, seq = env.tick, env.seq
                if (
                    slot is None
                    or found is None
                    or found not in road_user_sends
                    or link != pc5
                    or tick != current
                    or env.dest_ids
                    or len(UnknownFieldSet(env))  # (unknown fields are fine, mistyped ones are not: ``_fleet_tx`` asks)
                    or seq <= last_seq.get(sender, _NO_SEQ)[0]
                ):
                    self._fleet_tx(raw, members, where)
                    continue
                msg_type = found
                bsm_id = getattr(frame, msg_type).id if msg_type in SIGNED_IDS else b""
                tx_time_us = env.tx_time_us
            if (slot, seq) in received or not lo_us <= tx_time_us <= hi_us:
                self._fleet_tx(raw, members, where)
                continue
            if msg_type in SIGNED_IDS:
                own = ids.get(sender)
                if own is None:
                    own = ids[sender] = temporary_id(sender)
                if bsm_id != own:
                    self._fleet_tx(raw, members, where)
                    continue
            last_seq[sender] = (seq, tick)
            received[(slot, seq)] = Transmission(tick, slot, seq, s_of(tx_time_us), link, (), raw, msg_type)

    @staticmethod
    def _scanned(raws: list[bytes]) -> list[tuple[str, int, int, int, int, bytes] | None]:
        """Per envelope what ``_fleet_batch`` checks of it (sender, seq, tick, transmission time in us, link, the BSM's
        id), read in one compiled pass, where it has the layout of a fleet vehicle's BSM envelope without a security
        header (``bsm_envelope_unsigned``: what the scan takes, it reads as protobuf does); None: parse it."""
        layout = bsm_envelope_unsigned()
        joined, _, got, ok = scan_messages(raws, layout.kinds, layout.subs, layout.cols, layout.width)
        c = layout.columns
        ok &= got[:, c["frame.bsm"]] == 1  # (a frame with no message: protobuf's WhichOneof is None)
        at = np.flatnonzero(ok)
        rows = got[at]
        zig = rows[:, c["tx_time_us"]]
        tx_us = (zig >> 1) ^ -(zig & 1)  # (sint64: zigzag, exact for a varint below 2**63)
        out: list[tuple[str, int, int, int, int, bytes] | None] = [None] * len(raws)
        s, i = c["sender_id"], c["frame.bsm.id"]
        for e, (a, b, seq, tick, link, p, q), us in zip(
            at.tolist(),
            rows[:, [s, s + 1, c["seq"], c["tick"], c["link"], i, i + 1]].tolist(),
            tx_us.tolist(),
            strict=True,
        ):
            out[e] = (joined[a : a + b].decode("ascii"), seq, tick, us, link, joined[p : p + q])
        return out

    def _tx_window(self) -> tuple[int, int]:
        """The transmission times (us) an envelope of the current tick may state: within a tick of the tick's
        time (the built-in agents and fleets state the tick's own; one far off, made by a forged FleetInput,
        had been taken and kept in flight to the end of the run, and an outside stack's time in ms went by
        unremarked), and never before 0: a time before the run's start (at tick 0 the window reached -tick) is
        delivered before it, at a time no host takes (``v2x.wire.tick_input``: an ``rx_time_us`` below 0 is
        ``malformed``), and every receiver refused its next input (attack review 10: an outside stack's BSM stamped
        5 ms before tick 0, at its GNSS fix, stalled a lockstep run 60 s)."""
        now_us = us_of(tick_time_s(max(self.current_tick, 0), self.tick_s))  # the TickInput's time_us
        tick_us = us_of(self.tick_s)
        return max(now_us - tick_us, 0), now_us + tick_us

    def _fleet_tx(self, raw: bytes, members: dict[str, int], where: str) -> None:
        """One envelope of a bundle: accepted or rejected (the reference of ``_fleet_batch``, and the path of a
        secure run)."""
        parsed = self._decode_envelope(raw, where, "an envelope of the bundle: ")
        if parsed is None:
            return
        env, frame = parsed
        sender = env.sender_id  # (each read of a protobuf field makes a new object: read once)
        slot = members.get(sender)
        if slot is None:
            self.reject("not_in_fleet", where, f"(an envelope from {sender[:64]!r})")
            return
        msg_type = frame.WhichOneof("msg")
        if msg_type is None:
            self.reject("unknown_type", where)
            return
        if msg_type not in ROAD_USER_SENDS:
            self.reject("not_permitted", where, f"(a fleet's vehicle may not send {msg_type!r} messages)")
            return
        link = env.link
        if link != testbed_pb2.LINK_PC5 or env.dest_ids:
            self.reject("bad_link", where, "(a fleet vehicle broadcasts over PC5 only)")
            return
        if msg_type in SIGNED_IDS and getattr(frame, msg_type).id != temporary_id(sender):
            self.reject("id_mismatch", where, f"({msg_type} id is not {sender[:64]}'s)")
            return
        tick, seq = env.tick, env.seq
        if tick != self.current_tick:
            self.reject("bad_tick", where, f"(envelope tick {tick}, current {self.current_tick})")
            return
        lo_us, hi_us = self._tx_window()
        if not lo_us <= env.tx_time_us <= hi_us:
            self.reject("bad_time", where, f"(tx_time_us {env.tx_time_us}, not within {lo_us}..{hi_us})")
            return
        last, _ = self.last_seq.get(sender, (0, -1))
        if seq <= last or (slot, seq) in self.received:
            self.reject("bad_seq", where, f"(seq {seq} after {last})")
            return
        if self.security is not None:
            reason = self._verify(env, msg_type)
            if reason:
                self.reject(reason, where, f"(seq {seq}, tick {tick})")
                return
        self.last_seq[sender] = (seq, tick)
        self.received[(slot, seq)] = Transmission(tick, slot, seq, s_of(env.tx_time_us), link, (), raw, msg_type)
