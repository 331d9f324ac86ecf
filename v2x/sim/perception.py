"""Perception messages (RSM, SSM) against the world's truth, sans-I/O: how old their data is when it arrives, and
which of their participants are grossly wrong. Only the world can tell: it knows where every road user was.

**Data age** (``data_age_ms_by_message``): for each delivery of an RSM or SSM and each participant in it, the
delivery time minus the measurement time the participant states (its ``secMark``, taken as the latest such time
not after the message's send time, or as a time after it when that is less than 30 s ahead). Unlike
``latency_ms_by_message`` (the channel's part: send to delivery) it includes the sender's own delay, from the
measurement to the send: what a pilot zone accepts roadside perception on (measurement to the receiving
application). A participant stamped in the future counts as age 0 (and as a ``future`` error below). A delivery
the world later cuts from an overflowing input (``messages.cut``) is counted.

**Perception errors** (``perception_errors``, per sender): each distinct RSM / SSM an actor sends (the wired copy
of a PC5 message counts once) is checked participant by participant against the truth at the time the
participant states (the world's state at the nearest tick): the nearest road user of a kind its ``ptcType``
admits (motor: a vehicle; pedestrian; non-motor: a cyclist; else any) is its object. Gross errors, each counted:

* ``future``: stated more than ``FUTURE_S`` after the send time (nothing is measured after it is sent);
* ``stale``: stated more than ``STALE_S`` before the send time (every built-in receiver drops such data,
  ``max_age_s`` in v2x/apps/thresholds.py; its position and speed are not checked);
* ``position``: no road user of its kind within ``POSITION_GROSS_M`` of the stated position;
* ``speed``: its speed more than ``SPEED_GROSS_MPS`` off the object's (checked when the position is not gross).

The thresholds are ten times the largest per-axis error of the built-in roadside sensors (``SENSOR_DEFAULTS``:
0.5 m, 0.3 m/s; docs/IMPAIRMENTS.md): a built-in RSU's fused participant is that far off with a probability of
about e^-50, while a unit slip (centimetres for metres, km/h for m/s) or a timestamp seconds off is far beyond.
The nearest-tick truth adds at most half a tick of motion (0.7 m at 50 km/h and 10 Hz).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from v2x import units
from v2x.geodesy import LocalFrame
from v2x.scenario.model import VEHICLE_KINDS
from v2x.sim.channel import LatencyColumn, Transmission
from v2x.sim.metrics import latency_summary, quantile_summary
from v2x.wire import day1_pb2, frame_pb2
from v2x.wire.envelope import parse_envelope

PERCEPTION_MESSAGES = frozenset({"rsm", "ssm"})
POSITION_GROSS_M = 5.0
SPEED_GROSS_MPS = 3.0
STALE_S = 1.0
FUTURE_S = 0.001  # secMark's resolution
TRUTH_KEPT_S = STALE_S + 0.5  # how far back the truth is kept (older participants are stale, not checked)
ERROR_KINDS = ("position", "speed", "future", "stale")
# The kinds of road user a participant of a ptcType may be (any for another type)
KINDS_OF_TYPE: dict[int, frozenset[str]] = {
    day1_pb2.PARTICIPANT_MOTOR: frozenset(VEHICLE_KINDS),
    day1_pb2.PARTICIPANT_PEDESTRIAN: frozenset({"pedestrian"}),
    day1_pb2.PARTICIPANT_NON_MOTOR: frozenset({"cyclist"}),
}

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class StatedParticipant:
    """What one RSM / SSM participant states, in the world's frame: when (``t_s``), where, how fast (None:
    unavailable) and what type (``ptcType``)."""

    t_s: float
    x: float
    y: float
    speed_mps: float | None
    ptc_type: int


@dataclass(frozen=True)
class _Truth:
    """The road users at ``t_s``; ``of_type``: per ptcType of ``KINDS_OF_TYPE``, which of them it admits."""

    t_s: float
    of_type: dict[int, NDArray[np.bool_]]
    x: F64
    y: F64
    speed: F64


def stated_participants(
    frame: frame_pb2.MessageFrame, tx_time_s: float, geo: LocalFrame, epoch: datetime
) -> list[StatedParticipant]:
    """The participants of an RSM or SSM sent at ``tx_time_s`` (none for another message; a participant whose
    secMark is out of range is left out). A secMark up to 30 s after the send time's is read as in the future."""
    kind = frame.WhichOneof("msg")
    if kind == "rsm":
        ref, parts = frame.rsm.ref_pos, list(frame.rsm.participants)
    elif kind == "ssm":
        ref, parts = frame.ssm.sensor_pos, [d.ptc for d in frame.ssm.participants]
    else:
        return []
    out = []
    for p in parts:
        try:  # (a time up to 30 s after the send time: it reads better than one a minute old)
            t_s = units.time_from_sec_mark(p.sec_mark, tx_time_s, epoch, ahead_s=30.0)
        except ValueError:
            continue
        x, y = geo.offset_from_wire(ref.lat, ref.lon, p.pos.offset_lat, p.pos.offset_lon)
        out.append(
            StatedParticipant(
                t_s=t_s,
                x=float(x),
                y=float(y),
                speed_mps=units.speed_from_wire(p.speed),
                ptc_type=int(p.ptc_type),
            )
        )
    return out


def participant_errors(p: StatedParticipant, tx_time_s: float, truth: _Truth | None) -> list[str]:
    """The gross errors (``ERROR_KINDS``) of ``p`` sent at ``tx_time_s``, against ``truth`` (the road users at the
    tick nearest ``p.t_s``; None: none kept for that time)."""
    if p.t_s > tx_time_s + FUTURE_S:
        return ["future"]
    if p.t_s < tx_time_s - STALE_S:
        return ["stale"]
    if truth is None:
        return []
    mask = truth.of_type.get(p.ptc_type)
    if mask is None:
        mask = np.ones(len(truth.x), dtype=np.bool_)
    if not mask.any():
        return ["position"]
    dist = np.hypot(truth.x[mask] - p.x, truth.y[mask] - p.y)
    k = int(np.argmin(dist))
    if dist[k] > POSITION_GROSS_M:
        return ["position"]
    if p.speed_mps is not None and abs(p.speed_mps - float(truth.speed[mask][k])) > SPEED_GROSS_MPS:
        return ["speed"]
    return []


class PerceptionCheck:
    """The data age of every RSM / SSM delivery and the gross errors of every actor's RSM / SSM over a run.
    ``note_truth`` once a tick (before the tick's transmissions), ``fanned_out`` for each group of transmissions
    the channel fanned out; ``metrics`` at the end."""

    def __init__(self, geo: LocalFrame, epoch: datetime, tick_s: float, id_of: Any) -> None:
        self.geo = geo
        self.epoch = epoch
        self.tick_s = tick_s
        self.id_of = id_of  # slot -> actor id
        self.truth: deque[_Truth] = deque()
        self.ages: dict[str, LatencyColumn] = {}
        self.errors: dict[str, Counter[str]] = {}
        self._judged: set[tuple[int, int, bytes]] = set()  # (tick, sender slot, frame) checked this tick

    def note_truth(self, t_s: float, kinds: Sequence[str], x: F64, y: F64, vx: F64, vy: F64) -> None:
        """The road users' true states at ``t_s``."""
        names = np.asarray(kinds, dtype=np.str_)
        of_type = {t: np.isin(names, list(admitted)) for t, admitted in KINDS_OF_TYPE.items()}
        self.truth.append(_Truth(t_s, of_type, x.copy(), y.copy(), np.hypot(vx, vy)))
        while self.truth and self.truth[0].t_s < t_s - TRUTH_KEPT_S:
            self.truth.popleft()

    def _truth_at(self, t_s: float) -> _Truth | None:
        best = min(self.truth, key=lambda tr: abs(tr.t_s - t_s), default=None)
        if best is None or abs(best.t_s - t_s) > self.tick_s / 2 + 1e-6:
            return None
        return best

    def fanned_out(self, recs: Sequence[Transmission], tx_index: NDArray[np.integer[Any]], delivery_s: F64) -> None:
        """``recs`` were fanned out as deliveries ``(tx_index[i] into recs, delivery_s[i])``: the perception
        messages among them are checked (once per sender and frame in a tick) and their data ages counted."""
        for k, r in enumerate(recs):
            if r.msg not in PERCEPTION_MESSAGES:
                continue
            parsed = parse_envelope(r.raw)
            if parsed is None:
                continue
            env, frame = parsed
            stated = stated_participants(frame, r.tx_time_s, self.geo, self.epoch)
            key = (r.tick, r.sender_slot, env.frame)
            if key not in self._judged:
                self._judged = {j for j in self._judged if j[0] == r.tick}
                self._judged.add(key)
                counts = self.errors.setdefault(self.id_of(r.sender_slot), Counter())
                counts["participants"] += len(stated)
                for p in stated:
                    counts.update(participant_errors(p, r.tx_time_s, self._truth_at(p.t_s)))
            if not stated:
                continue
            when = delivery_s[tx_index == k]
            if not len(when):
                continue
            measured = np.array([p.t_s for p in stated])
            ages = np.maximum(when[:, None] - measured[None, :], 0.0).ravel() * 1e3
            column = self.ages.setdefault(r.msg, LatencyColumn())
            column.extend(len(ages))[:] = ages

    def metrics(self) -> dict[str, Any]:
        """``data_age_ms_by_message`` (p50/p95/p99/max per message kind) and ``perception_errors`` (per sender:
        participants checked and each kind of gross error); empty when no perception message was sent."""
        if not self.errors:
            return {}
        ages = {}
        for msg, column in sorted(self.ages.items()):
            if column.kept:
                parts = column.parts()
                ages[msg] = latency_summary(np.concatenate(parts) if parts else np.zeros(0))
            else:
                ages[msg] = quantile_summary(column.histogram())
        return {
            "data_age_ms_by_message": ages,
            "perception_errors": {
                sender: {"participants": c["participants"], **{e: c[e] for e in ERROR_KINDS}}
                for sender, c in sorted(self.errors.items())
            },
        }


__all__ = [
    "ERROR_KINDS",
    "FUTURE_S",
    "PERCEPTION_MESSAGES",
    "POSITION_GROSS_M",
    "SPEED_GROSS_MPS",
    "STALE_S",
    "PerceptionCheck",
    "StatedParticipant",
    "participant_errors",
    "stated_participants",
]
