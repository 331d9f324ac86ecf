"""What the agents send the world, validated and counted, sans-I/O: ``Hello`` (join), transmitted
``Envelope`` (tx) and the end-of-tick ``Ack`` (ack), as bytes from a named actor.

A bad payload is rejected and counted by reason (``bad_topic``, ``unknown_sender``, ``malformed``,
``sender_mismatch``, ``oversized``, ``unknown_type``, ``unequipped_sender``, ``bad_link``,
``bad_destination``, ``bad_tick``), never raised; a copy of something already received (a retransmission
after a reconnect, an old tick) is counted as a duplicate and otherwise ignored. A tick is reported once
every actor has acked it and the world has received as many transmissions as its ack counts.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from v2x.sim.channel import LINK_NAME, Transmission
from v2x.wire import testbed_pb2
from v2x.wire.envelope import parse_envelope

log = logging.getLogger("v2x.sim.inbound")

MAX_TX_BYTES = 16 * 1024  # TS 22.185: event messages up to 1200 B; MAP and envelopes need more headroom
KINDS = ("join", "tx", "ack")


@dataclass
class InboundStats:
    """What the world rejected (by reason), what the agents reported rejecting (by agent and reason), how
    many duplicates it ignored and how many reports were missing when a tick ended (real-time clock)."""

    rejected: Counter[str] = field(default_factory=Counter)
    rejected_by_agents: dict[str, dict[str, int]] = field(default_factory=dict)
    duplicates: int = 0
    late_reports: int = 0


class Inbound:
    """The world's inbox for one run: who joined, this tick's acks, the transmissions not yet on the air."""

    def __init__(self, actor_ids: Iterable[str], *, slot_of: dict[str, int], unequipped: set[str], tick_s: float):
        """``slot_of``: every actor's slot in the world (its keys are the known senders and destinations)."""
        self.actor_ids = sorted(actor_ids)
        self.slot_of = slot_of
        self.unequipped = unequipped
        self.tick_s = tick_s
        self.hellos: set[str] = set()
        self.current_tick = -1
        self.acks: dict[str, testbed_pb2.Ack] = {}
        self.received: dict[tuple[int, int], Transmission] = {}  # (sender slot, seq) -> transmission
        self.tick_tx: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.stats = InboundStats()

    # -- state --------------------------------------------------------------------------------------
    def open(self, tick: int) -> None:
        """Tick ``tick`` begins: acks and transmissions for it are accepted from now on."""
        self.current_tick = tick
        self.acks = {}

    @property
    def joined(self) -> bool:
        """Every actor has said hello."""
        return self.hellos >= set(self.actor_ids)

    def not_joined(self) -> list[str]:
        """The actors that have not said hello yet."""
        return sorted(set(self.actor_ids) - self.hellos)

    def missing(self) -> list[str]:
        """The actors whose report of the current tick is incomplete (no ack, or fewer transmissions
        received than their ack counts)."""
        out = []
        counts = self.tick_tx.get(self.current_tick, {})
        for actor_id in self.actor_ids:
            ack = self.acks.get(actor_id)
            if ack is None or counts.get(actor_id, 0) < ack.tx_count:
                out.append(actor_id)
        return out

    @property
    def reported(self) -> bool:
        """Every actor has reported the current tick completely."""
        return len(self.acks) == len(self.actor_ids) and not self.missing()

    def take(self, tick: int) -> list[Transmission]:
        """The transmissions of ``tick`` in (sender slot, seq) order; they (and anything older) are dropped
        from the inbox."""
        batch = sorted((r for r in self.received.values() if r.tick == tick), key=lambda r: (r.sender_slot, r.seq))
        self.received = {k: r for k, r in self.received.items() if r.tick > tick}
        return batch

    # -- messages -----------------------------------------------------------------------------------
    def reject(self, reason: str, where: str, detail: str = "") -> None:
        """Count a rejection (``where``: the topic or sender, for the log)."""
        self.stats.rejected[reason] += 1
        t = max(self.current_tick, 0) * self.tick_s
        log.warning("world t=%.2f s: rejected %s on %s %s", t, reason, where, detail)

    def receive(self, kind: str, actor_id: str, payload: bytes, *, where: str = "") -> None:
        """One message of ``kind`` (join, tx or ack) that ``actor_id`` sent (``where``: its topic, for the
        log). Accepted or counted; never raises on bad input."""
        where = where or f"{kind}/{actor_id}"
        if kind not in KINDS:
            self.reject("bad_topic", where)
            return
        if actor_id not in self.slot_of:
            self.reject("unknown_sender", where)
            return
        if kind == "join":
            self._join(actor_id, payload, where)
        elif kind == "tx":
            self._tx(actor_id, payload, where)
        else:
            self._ack(actor_id, payload, where)

    def _join(self, actor_id: str, payload: bytes, where: str) -> None:
        hello = testbed_pb2.Hello()
        try:
            hello.ParseFromString(payload)
        except DecodeError:
            self.reject("malformed", where)
            return
        if hello.actor_id != actor_id:
            self.reject("sender_mismatch", where, f"(hello from {hello.actor_id!r})")
            return
        if actor_id in self.hellos:
            log.info("world: %s joined again (reconnect)", actor_id)
        self.hellos.add(actor_id)

    def _tx(self, actor_id: str, payload: bytes, where: str) -> None:
        if len(payload) > MAX_TX_BYTES:
            self.reject("oversized", where, f"({len(payload)} bytes > {MAX_TX_BYTES})")
            return
        parsed = parse_envelope(payload)
        if parsed is None:
            self.reject("malformed", where)
            return
        env, frame = parsed
        if env.sender_id != actor_id:
            self.reject("sender_mismatch", where, f"(envelope says {env.sender_id!r})")
            return
        msg_type = frame.WhichOneof("msg")
        if msg_type is None:
            self.reject("unknown_type", where)
            return
        if actor_id in self.unequipped:
            self.reject("unequipped_sender", where, "(equipped: false: it has no OBU)")
            return
        if env.link not in LINK_NAME:
            self.reject("bad_link", where)
            return
        if env.link != testbed_pb2.LINK_PC5 and (not env.dest_ids or any(d not in self.slot_of for d in env.dest_ids)):
            self.reject("bad_destination", where, f"({list(env.dest_ids)})")
            return
        slot = self.slot_of[actor_id]
        key = (slot, env.seq)
        if key in self.received or env.tick < self.current_tick:
            self.stats.duplicates += 1
            return
        if env.tick > self.current_tick:
            self.reject("bad_tick", where, f"(tick {env.tick}, current {self.current_tick})")
            return
        self.received[key] = Transmission(
            env.tick, slot, env.seq, env.tx_time_us / 1e6, env.link, tuple(env.dest_ids), payload, msg_type
        )
        self.tick_tx[env.tick][actor_id] += 1

    def _ack(self, actor_id: str, payload: bytes, where: str) -> None:
        ack = testbed_pb2.Ack()
        try:
            ack.ParseFromString(payload)
        except DecodeError:
            self.reject("malformed", where)
            return
        if ack.actor_id != actor_id:
            self.reject("sender_mismatch", where, f"(ack from {ack.actor_id!r})")
            return
        if ack.tick != self.current_tick:
            if ack.tick < self.current_tick:
                self.stats.duplicates += 1
            else:
                self.reject("bad_tick", where, f"(tick {ack.tick}, current {self.current_tick})")
            return
        if actor_id in self.acks:
            self.stats.duplicates += 1
            return
        self.acks[actor_id] = ack
