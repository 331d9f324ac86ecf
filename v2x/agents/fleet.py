"""The fleet agent, sans-I/O: many equipped background vehicles in one agent (issue #10).

The world's traffic model moves the background vehicles of the scenario's ``flows`` (``v2x.sim.background``);
the equipped ones are hosted here, all of them in one ``FleetAgent`` per run. Each tick the world sends one
``FleetInput`` (the hosted vehicles' truth when the previous tick closed, and every delivery any of them
heard) and the fleet answers with one ``FleetAck`` (every vehicle's envelopes, the warnings its apps
raised). The fleet never moves a vehicle: the world keeps the truth.

Per tick, ``step`` (``transmit``, step 1, then ``listen``, steps 2 and 3: the shell sends the BSMs before
``listen`` when the world lets the warnings follow with the next tick's ack, ``FleetInput.warnings_next_tick``):

1. sends each hosted vehicle's BSM of its truth (the world's, when the previous tick closed: the BSM's
   time stamp says so, and receivers carry it on from there as they do every BSM), as a BSM refreshed from
   a template per vehicle would be (``v2x.wire.bsm.refresh_bsms``; the template is made, or changed, only for
   a new vehicle, a wreck or an accuracy that changed), in its envelope: the envelopes are written from the
   arrays of every vehicle's numbers (read out of the input's bytes in one compiled pass when the shell hands
   them over, ``v2x.core.fleet_vehicle_numbers``) in another compiled pass, around the bytes that stay the same
   in a template's BSMs (``v2x.core.refreshed_envelopes``, ``v2x.wire.bsm_bytes``: protobuf's bytes, no message
   built per vehicle; a signed run, or a tick with a value that is not finite, refreshes the templates in place
   and serialises them, ``envelope_bytes``, the same bytes). Without its flow's ``positioning`` a
   vehicle's BSM has no positioning error and the accuracy unknown, as the world's BSMs had before fleets; with
   it, the world sends the vehicle's receiver reading with the truth (``FleetVehicle`` fields 14-17: the error
   and the 1-sigma axes) and the BSM carries the truth plus that error and states that accuracy (the template's
   accuracy is set again only when it changes). A wreck (``FleetVehicle.wrecked``) sets the wreck flags
   (``WRECK_FLAGS``: hazard lights, disabled vehicle) in its BSMs from then on;
2. decodes each distinct envelope heard once for the whole fleet, in one batch (``decode_bsms``, with a memo of
   what each sender's BSMs decode to besides their motion and time, ``_decoded``; a BSM that
   FCW's accuracy gate would refuse, such as the background's own without positioning, is only checked as a
   decode would and its time and accuracy kept: a ``Stamp``) and keeps, per sender, the freshest BSM, and
   per (hosted vehicle, sender FCW can act on) when it last heard it (``heard``, a matrix whose rows and
   columns are given back when the vehicle leaves or the sender is forgotten; ``max_age_s`` forgets them; the
   core's ``stamp_deliveries`` writes the tick's deliveries into it in one compiled pass).
   Its own envelopes of the last ``SENT_TICKS_KEPT`` ticks are not parsed again: the same bytes parse to the
   BSMs it sent, so what hearing them needs was kept when they were sent (``_remember``: sender, secMark,
   accuracy, and whether the BSM passes the checks of a decode, found from the arrays it was made from,
   ``check_refreshed``; for a BSM FCW acts on, also its values on the wire, from which ``_decode_own`` gives
   what decoding it gives, the same conversions on all of them at once);
3. runs FCW for every hosted vehicle at once: one ``WorldState`` of the hosted vehicles (where their
   receivers place them, carried on to the tick's time at constant acceleration) and the senders heard, and
   one call of the core's ``detect_conflicts`` on the (hosted vehicle, sender it heard) pairs (read out of
   ``heard`` by the core's ``pairs_at_least``, one compiled pass, no vehicles x senders matrix gathered), with FCW's
   thresholds and accuracy gate (``v2x.apps.collision``; a hosted vehicle whose stated accuracy fails it
   raises nothing); a warning is raised once per validity period per (vehicle, other). No driver reacts:
   the traffic model's IDM keeps its gaps anyway.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import repeat
from operator import attrgetter

import numpy as np

from v2x import units
from v2x.agents.vehicle import WRECK_FLAGS
from v2x.apps.collision import CONFLICT_NAME
from v2x.core import (
    VEHICLE_NUMBERS,
    ActorKind,
    ConflictType,
    WorldState,
    detect_conflicts,
    fleet_vehicle_numbers,
    pairs_at_least,
    refreshed_envelopes,
    stamp_deliveries,
)
from v2x.geodesy import LocalFrame
from v2x.units import R95_PER_SIGMA, accurate_enough
from v2x.wire import day1_pb2, frame_pb2, testbed_pb2
from v2x.wire.bsm import (
    HARD_BRAKING_MPS2,
    VEHICLE_EVENT_BIT,
    OwnState,
    RemoteState,
    SenderKey,
    check_bsms,
    check_refreshed,
    decode_bsm,
    decode_bsms,
    encode_bsm,
    motion_columns,
    passes_check,
    refresh_bsm,
    refresh_bsms,
    template_in_range,
)
from v2x.wire.bsm_bytes import BsmStatics, bsm_statics
from v2x.wire.envelope import envelope_bytes, parse_envelope
from v2x.wire.fleet import FleetDeliveries, unpack_deliveries
from v2x.wire.security import Signer
from v2x.wire.tables import APP_BY_NAME

HEIGHT_M = {"car": 1.5, "truck": 3.5, "bus": 3.2}
NEVER = np.iinfo(np.int32).min  # ``FleetAgent.heard``: not heard (since last forgotten)
SENT_TICKS_KEPT = 3  # the ticks whose envelopes the fleet remembers (``_sent``): this one and the two before


@dataclass(frozen=True)
class Stamp:
    """A BSM too inaccurate for FCW (``_accurate``): its time and accuracy, all the fleet keeps of it."""

    t_s: float
    sigma_major_m: float | None


def _accurate(bsm: day1_pb2.BSM, need_m: float) -> bool:
    """Would FCW's accuracy gate pass the BSM's sender? (A semi-major axis out of range: decode it, and
    let the decode refuse it.)"""
    return _accurate_wire(bsm.accuracy.semi_major, need_m)


def _accurate_wire(semi_major: int, need_m: float) -> bool:
    """``_accurate`` of a BSM whose accuracy's semi-major axis is ``semi_major`` (as on the wire)."""
    try:
        return accurate_enough(units.semi_major_from_wire(semi_major), need_m)
    except ValueError:
        return True


WRECK_EVENTS = sum(1 << VEHICLE_EVENT_BIT[flag] for flag in WRECK_FLAGS)
# What ``transmit`` reads of each FleetVehicle besides its id, in this order (``wrecked`` as 0.0 or 1.0): from the
# FleetInput's bytes (``fleet_vehicle_numbers``' columns ``_COLUMNS``), or the fields of each (``_FIELDS``).
_NUMBERS = (
    "x_m", "y_m", "vx_mps", "vy_mps", "ax_mps2", "ay_mps2", "heading_rad", "speed_mps", "accel_mps2", "east_error_m",
    "north_error_m", "sigma_major_m", "sigma_minor_m", "wrecked",
)  # fmt: skip
_COLUMNS = [VEHICLE_NUMBERS.index(name) for name in _NUMBERS]
_FIELDS = attrgetter(*_NUMBERS)


def _accuracy_wire(major: np.ndarray, minor: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Per vehicle the accuracy its BSM states (a row: semi-major, semi-minor, position confidence, wire values, as
    ``encode_bsm`` sets them), from its reading's 1-sigma axes; unknown where ``known`` is False. Converted once
    per distinct reading (a fleet's vehicles share a few)."""
    major = np.where(known, major, -1.0)
    minor = np.where(known, minor, -1.0)
    if np.isfinite(minor).all():  # (the usual case: the distinct pairs found as complex numbers, one sort)
        pairs = np.empty(len(major), dtype=np.complex128)
        pairs.real, pairs.imag = major, minor
        distinct, inverse = np.unique(pairs, return_inverse=True)
        readings = [(z.real, z.imag) for z in distinct.tolist()]
    else:
        rows, inverse = np.unique(np.stack([major, minor], axis=1), axis=0, return_inverse=True)
        readings = rows.tolist()
    wire = []
    for a, b in readings:
        sigma, sigma_minor = (a, b) if a > 0.0 else (None, None)
        wire.append(
            (
                units.semi_major_to_wire(sigma),
                units.semi_major_to_wire(sigma_minor),
                units.position_confidence(None if sigma is None else R95_PER_SIGMA * sigma),
            )
        )
    return np.array(wire, dtype=np.int64).reshape(-1, 3)[inverse.reshape(-1)]


def _accuracy_code(semi_major: int, semi_minor: int, confidence: int) -> int:
    """One integer for a BSM's stated accuracy (``_accuracy_wire``'s row: each value below 2**20)."""
    return semi_major | semi_minor << 20 | confidence << 40


@dataclass
class _Begun:
    """What ``FleetAgent.listen`` needs of the tick ``transmit`` began: the hosted vehicles, where their receivers
    put them carried on to the tick's time, their heading and acceleration, and FCW's accuracy gate on each."""

    tick: int
    vehicles: list[testbed_pb2.FleetVehicle]
    ids: list[str]
    x: np.ndarray
    y: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    heading: np.ndarray
    accel: np.ndarray
    able: np.ndarray


class FleetAgent:
    """The equipped background vehicles of one run (``fleet_id``), their BSMs and their FCW."""

    def __init__(
        self,
        fleet_id: str,
        *,
        frame: LocalFrame,
        epoch: datetime,
        thresholds: Mapping[str, float],
        signer: Signer | None = None,
    ) -> None:
        """``signer``: in a secure run, the fleet's pseudonyms, with which every hosted vehicle signs its
        BSMs (one certificate at a time for the whole fleet)."""
        self.fleet_id = fleet_id
        self.signer = signer
        self.frame = frame
        self.epoch = epoch
        self.thresholds = dict(thresholds)
        self.templates: dict[str, frame_pb2.MessageFrame] = {}  # vehicle -> its BSM, refreshed each tick
        # vehicle -> what stays true of its template (``_facts``)
        self._template_facts: dict[str, tuple[bool, bool, float | None]] = {}
        # The envelopes sent in the last SENT_TICKS_KEPT ticks whose BSMs FCW's accuracy gate refuses (all of
        # them: the accuracy is unknown) -> (sender, secMark, passes the checks of a decode, accuracy), and
        # which were sent when, to forget them (``_remember``).
        self._sent: dict[bytes, tuple[str, int, bool, float | None]] = {}
        self._sent_ticks: deque[list[bytes]] = deque()
        # The envelopes sent in the last SENT_TICKS_KEPT ticks whose BSMs FCW acts on (their vehicles state an
        # accuracy good enough) and pass the checks of a decode -> (sender, secMark, position, speed, heading and
        # acceleration as on the wire, the raw event flags, ``_protos``' entry): decoding them needs no parsing.
        self._sent_full: dict[bytes, tuple[str, int, list[int], int, RemoteState]] = {}
        self._protos: dict[str, RemoteState] = {}  # vehicle -> what decoding its template gives (``_set_template``)
        # vehicle -> the static pieces of its envelopes (``bsm_statics`` of its template) and the accuracy its
        # template states (``_accuracy_code``): kept with the template (``_template``)
        self._statics: dict[str, BsmStatics] = {}
        self._stated: dict[str, int] = {}
        # The last BSMs written from the arrays (not put into the templates): vehicles, motion on the wire,
        # acceleration, counters, secMark and event flags (``_as_sent``); None after templates refreshed in place.
        self._refreshed: tuple[list[str], np.ndarray, np.ndarray, np.ndarray, int, np.ndarray] | None = None
        self._refreshed_rows: tuple[list[str], dict[str, int]] | None = None  # (its vehicles, each one's row)
        self.seq: dict[str, int] = {}  # vehicle -> the seq of its last envelope (and its BSM counter + 1)
        # sender -> its freshest BSM (a Stamp: one FCW does not act on, only its time and accuracy kept)
        self.remotes: dict[str, RemoteState | Stamp] = {}
        # When each hosted vehicle last heard each sender FCW can act on, as the number of the ``_hear`` call
        # (``_clock``; NEVER: not since it was last forgotten): a row per hosted vehicle (``_row``), a column per
        # such sender (``_column``), both given back when the vehicle leaves or the sender is forgotten and used
        # again, so the matrix stays as big as the vehicles and senders of a moment, not of the run. A sender gets
        # a column when its first BSM accurate enough for FCW arrives (the background's own without positioning
        # never do), filled in from what was heard in the last max_age_s (``_window``): the same times as a
        # column for every sender would hold, without writing a time per delivery for senders FCW ignores.
        self.heard = np.full((0, 0), NEVER, dtype=np.int32)
        self._clock = 0
        self._row = np.zeros(0, dtype=np.int64)  # number -> its row in heard (a hosted vehicle), -1: none
        self._free_rows: list[int] = []
        self._column = np.zeros(0, dtype=np.int64)  # number -> its column in heard, -1: none
        self._free_columns: list[int] = []
        self._forgotten: dict[int, float] = {}  # sender number -> when its freshest BSM got too old
        # Each tick within max_age_s: (t, its clock, vehicle numbers, sender numbers by envelope, the deliveries).
        self._window: deque[tuple[float, int, np.ndarray, np.ndarray, FleetDeliveries]] = deque()
        self._present = np.zeros(0, dtype=np.int64)  # the numbers of the vehicles hosted at this tick
        self._numbers: dict[str, int] = {}
        self._names: list[str] = []
        self.warned_until: dict[tuple[str, str], float] = {}  # (vehicle, other temp id) -> validity end
        self.rejected = 0  # envelopes heard that did not parse as a BSM with a position
        self._wrecks: set[str] = set()  # hosted vehicles whose template carries the wreck flags
        # What the BSMs heard decode to, besides their motion and time, by the wire values they decode it from
        # (``decode_bsms``' memo: a sender's BSMs repeat them tick after tick).
        self._decoded: dict[SenderKey, dict[str, object]] = {}
        self._pairs_made = 0  # the (vehicle, sender) pairs FCW had last tick: room for as many, and some, now
        self._listening: _Begun | None = None  # the tick ``transmit`` began, for ``listen``

    def step(self, inp: testbed_pb2.FleetInput, raw: bytes | None = None) -> testbed_pb2.FleetAck:
        """One tick: every hosted vehicle's BSM and the FCW warnings of all of them (``raw``: see ``transmit``)."""
        ack = self.transmit(inp, raw)
        ack.events.extend(self.listen(inp))
        return ack

    def transmit(self, inp: testbed_pb2.FleetInput, raw: bytes | None = None) -> testbed_pb2.FleetAck:
        """The first half of a tick: a ``FleetAck`` with every hosted vehicle's BSM (no warnings yet). Then
        ``listen(inp)`` gives the tick's warnings; ``step`` is the two. ``raw``: the bytes ``inp`` was parsed from,
        if at hand (the vehicles' numbers are then read from them in one pass)."""
        t = inp.time_us / 1e6
        ack = testbed_pb2.FleetAck(fleet_id=self.fleet_id, tick=inp.tick)
        vehicles = list(inp.vehicles)
        ids = [v.vehicle_id for v in vehicles]
        for gone in set(self.templates).difference(ids):  # left the network
            del self.templates[gone], self._template_facts[gone], self._protos[gone]
            del self._statics[gone], self._stated[gone]
        n = len(vehicles)
        dt = max(0.0, t - inp.truth_time_us / 1e6)
        # Every vehicle's numbers: from the bytes ``inp`` was parsed from, in one compiled pass, else the fields of
        # one vehicle after another (``attrgetter``: read in C, a tuple per vehicle).
        numbers = None if raw is None else fleet_vehicle_numbers(raw, n)
        if numbers is None:
            columns = np.array(list(map(_FIELDS, vehicles)), dtype=np.float64).reshape(-1, len(_NUMBERS)).T
        else:
            columns = numbers.T[_COLUMNS]
        x0, y0, vx0, vy0, ax, ay, heading, speed, accel, ex, ny, major, minor, wrecked = columns
        # Where its receiver puts it (the truth where it states no accuracy: no positioning modelled, or no fix).
        known = major > 0.0
        x0 = np.where(known, x0 + ex, x0)
        y0 = np.where(known, y0 + ny, y0)
        # Carried on to the tick's time at constant acceleration.
        vx = vx0 + ax * dt
        vy = vy0 + ay * dt
        x = x0 + (vx0 + 0.5 * ax * dt) * dt
        y = y0 + (vy0 + 0.5 * ay * dt) * dt
        if n:
            accuracy = _accuracy_wire(major, minor, known)
            ack.envelopes.extend(self._bsms(inp, vehicles, ids, x0, y0, heading, speed, accel, accuracy, wrecked > 0))
        # FCW's accuracy gate on the host: one that states an accuracy FCW cannot use does not warn (one that
        # states none knows its truth: the background without positioning, as before).
        need = self.thresholds["fcw_required_accuracy_m"]
        able = ~known | (R95_PER_SIGMA * major <= need)
        self._listening = _Begun(inp.tick, vehicles, ids, x, y, vx, vy, heading, accel, able)
        return ack

    def listen(self, inp: testbed_pb2.FleetInput) -> list[testbed_pb2.Advisory]:
        """The second half of the tick ``transmit(inp)`` began: hear its deliveries, run FCW; the warnings."""
        b = self._listening
        if b is None or b.tick != inp.tick:
            raise RuntimeError(f"listen() for tick {inp.tick} without transmit() first")
        self._listening = None
        t = inp.time_us / 1e6
        self._hear(inp, b.ids, t)
        if not b.vehicles:
            return []
        return self._fcw(b.vehicles, b.x, b.y, b.vx, b.vy, b.heading, b.accel, t, b.able)

    # -- transmitting -------------------------------------------------------------------------------
    def _bsms(
        self, inp: testbed_pb2.FleetInput, vehicles: list[testbed_pb2.FleetVehicle], ids: list[str], x: np.ndarray,
        y: np.ndarray, heading: np.ndarray, speed_in: np.ndarray, accel: np.ndarray, accuracy: np.ndarray,
        wrecked: np.ndarray,
    ) -> list[bytes]:  # fmt: skip
        """Each vehicle's BSM envelope; each is also remembered with what hearing it needs (``_sent``).
        ``accuracy``: per vehicle (a row) its BSM's semi-major and semi-minor axes and position confidence (wire
        values); ``wrecked``: per vehicle whether its BSMs set the wreck flags.

        The envelopes are written from the arrays (``v2x.core.refreshed_envelopes``: the template's static pieces,
        ``_statics``, and the motion as varints, in one compiled pass): the bytes ``refresh_bsms``, the frame's
        ``SerializeToString`` and ``envelope_bytes`` give, which is what a signed run, or a tick with a value that
        is not finite, still does (the templates then refreshed in place, as they were before)."""
        t = inp.time_us / 1e6
        lat_a, lon_a, _ = self.frame.to_geodetic(x, y)
        compass_a = units.enu_yaw_rad_to_compass_deg(heading)
        speed_a = np.where(speed_in > 0.0, speed_in, 0.0)  # max(0.0, speed), NaN included
        motion = motion_columns(lat_a, lon_a, speed_a, compass_a, accel)
        mark = units.sec_mark(inp.truth_time_us / 1e6, self.epoch)  # the truth's time: when it was so
        codes = accuracy[:, 0] | accuracy[:, 1] << 20 | accuracy[:, 2] << 40  # (``_accuracy_code``)
        stated = np.fromiter(map(self._stated.get, ids, repeat(-1)), dtype=np.int64, count=len(ids))
        # The vehicles whose template is new or changes (one per vehicle kept from tick to tick, ``templates``):
        # no template yet (-1), a wreck from now on, the accuracy it states changed. Only those are seen one by one.
        change = np.flatnonzero(stated != codes).tolist()
        wrecks = np.flatnonzero(wrecked).tolist()
        change += [k for k in wrecks if ids[k] not in self._wrecks]
        for k in sorted(set(change)):
            self._template(vehicles[k], ids[k], bool(wrecked[k]), accuracy[k].tolist(), t)
        hard = np.where(accel <= -HARD_BRAKING_MPS2, 1 << VEHICLE_EVENT_BIT["hard_braking"], 0)
        events = np.where(wrecked, hard | WRECK_EVENTS, hard)
        # A vehicle's BSM counter is the seq of its envelope less one (both start at 0 and count its BSMs).
        counts = np.fromiter(map(self.seq.get, ids, repeat(0)), dtype=np.int64, count=len(ids))
        seqs = counts + 1
        self.seq.update(zip(ids, seqs.tolist(), strict=True))
        msgs: list[frame_pb2.MessageFrame] | None = None
        if self.signer is None and motion is not None:
            out = refreshed_envelopes(
                list(map(self._statics.__getitem__, ids)), seqs, counts, mark, motion, accel, events, tick=inp.tick,
                tx_time_us=inp.time_us, link=testbed_pb2.LINK_PC5,
            )  # fmt: skip
            self._refreshed = (ids, motion, accel, counts, mark, events)
        else:
            msgs = [self.templates[vid] for vid in ids]
            out = self._refresh_and_serialise(
                inp, msgs, ids, (lat_a, lon_a, compass_a, speed_a), motion, accel, counts.tolist(), mark, wrecks
            )
            self._refreshed = None
        self._remember(out, ids, msgs, motion, accel, events, mark)
        return out

    def _refresh_and_serialise(
        self, inp: testbed_pb2.FleetInput, msgs: list[frame_pb2.MessageFrame], ids: list[str],
        geo: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], motion: np.ndarray | None, accel: np.ndarray,
        counts: list[int], mark: int, wrecks: list[int],
    ) -> list[bytes]:  # fmt: skip
        """The envelopes of ``_bsms`` by refreshing each template (``msgs``) in place, serialising its frame and
        writing (or, in a signed run, signing) the envelope around it. ``geo``: each vehicle's latitude, longitude,
        compass heading and speed (``motion``: as on the wire, None when one is not finite); ``counts``: each one's
        BSM counter; ``wrecks``: the vehicles whose BSMs set the wreck flags."""
        lat_a, lon_a, compass_a, speed_a = geo
        accel_l = accel.tolist()
        if motion is not None:
            refresh_bsms(msgs, list(zip(*motion.tolist(), strict=True)), accel_l, counts, mark)
        else:  # a value not finite: one by one
            lat, lon, compass, speed = lat_a.tolist(), lon_a.tolist(), compass_a.tolist(), speed_a.tolist()
            for k, msg in enumerate(msgs):
                refresh_bsm(
                    msg,
                    lat_deg=lat[k],
                    lon_deg=lon[k],
                    speed_mps=speed[k],
                    heading_rad=0.0,  # (its compass_deg is given)
                    accel_mps2=accel_l[k],
                    msg_count=counts[k],
                    sec_mark=mark,
                    compass_deg=compass[k],
                )
        for k in wrecks:  # (refreshing sets the events to hard braking or none)
            msgs[k].bsm.safety_ext.events |= WRECK_EVENTS
        seqs = [c + 1 for c in counts]
        frames = [msg.SerializeToString() for msg in msgs]
        if self.signer is None:
            return envelope_bytes(ids, seqs, frames, tick=inp.tick, tx_time_us=inp.time_us, link=testbed_pb2.LINK_PC5)
        out = []
        for vid, seq, frame in zip(ids, seqs, frames, strict=True):
            env = testbed_pb2.Envelope(sender_id=vid, seq=seq, tick=inp.tick, tx_time_us=inp.time_us)
            env.link, env.frame = testbed_pb2.LINK_PC5, frame
            self.signer.sign(env)
            out.append(env.SerializeToString())
        return out

    def _template(self, v: testbed_pb2.FleetVehicle, vid: str, wreck: bool, acc: list[int], t: float) -> None:
        """Bring ``vid``'s template up to date: a new one for its first BSM (or its first as a wreck), the accuracy
        it states set again when it changed; then its static pieces (``_statics``) cut again."""
        msg = self.templates.get(vid)
        if wreck and vid not in self._wrecks:  # a wreck from now on: hazard lights and disabled (as a story car's)
            self._wrecks.add(vid)
            msg = None
        new = msg is None
        if msg is None:  # the static parts (id, size, class, flags)
            own = OwnState(
                x=0.0,
                y=0.0,
                speed_mps=0.0,
                heading_rad=0.0,
                accel_mps2=0.0,
                length_m=v.length_m,
                width_m=v.width_m,
                height_m=HEIGHT_M.get(v.kind, 1.5),
                kind=v.kind,
                sigma_major_m=None,
                sigma_minor_m=None,
                braking=False,
                flags=WRECK_FLAGS if wreck else frozenset(),
            )
            msg = encode_bsm(own, actor_id=vid, t_s=t, msg_count=0, frame=self.frame, epoch=self.epoch)
            self.templates[vid] = msg
        b = msg.bsm.accuracy
        changed = acc != [b.semi_major, b.semi_minor, msg.bsm.pos_confidence.pos]  # the accuracy it states
        if changed:
            if not new:
                self._as_sent(vid, msg)
            b.semi_major, b.semi_minor = acc[0], acc[1]
            msg.bsm.pos_confidence.pos = acc[2]
        if new or changed:  # (for a new template whose accuracy is set at once: what the accuracy makes of it)
            self._set_template(vid, msg)
        statics = bsm_statics(vid, msg)
        assert statics is not None  # (encode_bsm sets every nested message a refresh writes in)
        self._statics[vid] = statics
        self._stated[vid] = _accuracy_code(b.semi_major, b.semi_minor, msg.bsm.pos_confidence.pos)

    def _as_sent(self, vid: str, msg: frame_pb2.MessageFrame) -> None:
        """Put into ``vid``'s template ``msg`` what its last BSM had (the values a refresh sets), when that BSM was
        written from the arrays (a template refreshed in place has them already): ``_set_template`` decodes the
        template as it is, and its answer takes the events from it, as it always did."""
        if self._refreshed is None:
            return
        ids, motion, accel, counts, mark, events = self._refreshed
        if self._refreshed_rows is None or self._refreshed_rows[0] is not ids:
            self._refreshed_rows = (ids, {v: k for k, v in enumerate(ids)})
        k = self._refreshed_rows[1][vid]
        lat, lon, speed, heading, long = motion[:, k].tolist()
        wire = (lat, lon, speed, heading, long)
        refresh_bsm(msg, lat_deg=0.0, lon_deg=0.0, speed_mps=0.0, heading_rad=0.0, accel_mps2=float(accel[k]),
                    msg_count=int(counts[k]), sec_mark=mark, wire=wire)  # fmt: skip
        msg.bsm.safety_ext.events = int(events[k])

    def _remember(
        self, out: list[bytes], ids: list[str], msgs: list[frame_pb2.MessageFrame] | None,
        motion: np.ndarray | None, accel: np.ndarray, events: np.ndarray, mark: int,
    ) -> None:  # fmt: skip
        """Keep, for the envelopes just sent, what hearing them needs (``_decode_all``): the sender, the secMark,
        whether the BSM passes the checks of a decode (``check_refreshed``, else ``check_bsm``) and its
        accuracy, for the BSMs FCW's accuracy gate refuses (the others are decoded as any envelope is). The
        bytes heard back are these bytes, so they parse to these BSMs (``msgs``: the refreshed templates, when
        the envelopes were not written from the arrays; else a BSM asked of ``check_bsm`` is parsed again).
        ``events``: the raw event flags each BSM carries."""
        facts = list(map(self._template_facts.__getitem__, ids))
        ok, gated_l, sigmas = zip(*facts, strict=True) if facts else ((), (), ())
        if motion is not None:
            plain = check_refreshed(np.array(ok, dtype=np.bool_), motion, accel)
        else:
            plain = np.zeros(len(ids), dtype=np.bool_)
        gated = np.array(gated_l, dtype=np.bool_)
        sent: dict[bytes, tuple[str, int, bool, float | None]] = {}
        plain_l = plain.tolist()
        for k in np.flatnonzero(gated).tolist():  # (else FCW acts on it: decoded when heard, as any BSM, or from
            raw = out[k]  # what is kept here)
            in_range = plain_l[k] or passes_check(self._sent_bsm(raw, None if msgs is None else msgs[k]))
            sent[raw] = (ids[k], mark, in_range, sigmas[k])
        kept = np.flatnonzero(~gated & plain)  # what decoding it gives, less what the template fixes
        full: list[bytes] = []
        if len(kept):
            assert motion is not None  # (plain only where it is)
            rows = kept.tolist()
            full, senders = (out, ids) if len(rows) == len(ids) else ([out[k] for k in rows], [ids[k] for k in rows])
            # (vehicle, secMark, its motion on the wire, its raw event flags, its template's decoding) per envelope,
            # the tuples made and put in by C loops (a thousand a tick)
            kept_values = zip(
                senders,
                repeat(mark),
                motion[:, kept].T.tolist(),
                events[kept].tolist(),
                map(self._protos.__getitem__, senders),
                strict=False,
            )  # fmt: skip (repeat: endless)
            self._sent_full.update(zip(full, kept_values, strict=True))
        self._sent.update(sent)
        self._sent_ticks.append([*sent, *full])
        while len(self._sent_ticks) > SENT_TICKS_KEPT:
            old = self._sent_ticks.popleft()
            deque(map(self._sent.pop, old, repeat(None)), maxlen=0)  # (dict.pop of each, in a C loop)
            deque(map(self._sent_full.pop, old, repeat(None)), maxlen=0)

    @staticmethod
    def _sent_bsm(raw: bytes, msg: frame_pb2.MessageFrame | None) -> day1_pb2.BSM:
        """The BSM of the envelope ``raw`` this fleet sent: ``msg``'s, or parsed from the bytes."""
        if msg is not None:
            return msg.bsm
        parsed = parse_envelope(raw)
        assert parsed is not None  # (written by refreshed_envelopes: an envelope with a BSM)
        return parsed[1].bsm

    def _set_template(self, vid: str, msg: frame_pb2.MessageFrame) -> None:
        """``vid``'s template ``msg`` is new or changed (its accuracy, its flags): what stays true of it (``_facts``)
        and what decoding any BSM refreshed from it gives, less what a refresh sets (``_protos``: its events
        without the raw event flags, which a refresh sets)."""
        self._template_facts[vid] = self._facts(msg.bsm)
        proto = decode_bsm(msg.bsm, now_s=0.0, frame=self.frame, epoch=self.epoch)
        assert proto is not None  # (encoded from a position, speed and heading)
        self._protos[vid] = replace(proto, events=proto.events & ~msg.bsm.safety_ext.events)

    def _facts(self, bsm: day1_pb2.BSM) -> tuple[bool, bool, float | None]:
        """What stays true of a template's BSMs: whether the values ``check_bsm`` checks that a refresh leaves
        are in range (``template_in_range``), whether FCW's accuracy gate refuses them (``_accurate``) and, if
        so, their accuracy (a Stamp's)."""
        gated = not _accurate(bsm, self.thresholds["fcw_required_accuracy_m"])
        sigma = units.semi_major_from_wire(bsm.accuracy.semi_major) if gated else None
        return template_in_range(bsm), gated, sigma

    # -- hearing ------------------------------------------------------------------------------------
    def _number(self, name: str) -> int:
        """``name``'s number (vehicles and senders share one table, kept for the run)."""
        no = self._numbers.get(name)
        if no is None:
            no = self._numbers[name] = len(self._names)
            self._names.append(name)
        return no

    def _hear(self, inp: testbed_pb2.FleetInput, ids: list[str], t: float) -> None:
        """Decode each distinct envelope once for the whole fleet, then note, per delivery (as arrays), that the
        vehicle heard the sender at this tick; forget what is older than ``max_age_s``."""
        sender_no = self._decode_all(inp.envelopes, t)
        vehicle_no = np.array([self._number(vid) for vid in ids], dtype=np.int64)
        got = unpack_deliveries(inp)
        if got is None:  # arrays that do not fit together (the shell rejects such an input before)
            got = FleetDeliveries.empty()
            self.rejected += 1
        max_age = self.thresholds["max_age_s"]
        self._clock += 1
        self._window.append((t, self._clock, vehicle_no, sender_no, got))
        while t - self._window[0][0] > max_age:
            self._window.popleft()
        size = len(self._names)
        if size > len(self._row):  # room in the number -> row / column maps (doubling)
            more = max(size, 2 * len(self._row)) - len(self._row)
            self._row = np.concatenate([self._row, np.full(more, -1, dtype=np.int64)])
            self._column = np.concatenate([self._column, np.full(more, -1, dtype=np.int64)])
        self._seat(vehicle_no)
        self._track(self._newly_accurate(sender_no))
        # This tick's deliveries from the tracked senders (each vehicle's own BSM aside), in one compiled pass.
        env_col = np.where(sender_no >= 0, self._column[np.maximum(sender_no, 0)], -1)
        self._stamp(got, vehicle_no, sender_no, env_col, self._clock)
        stale = [(s, t - r.t_s > max_age) for s, r in self.remotes.items() if not t - r.t_s <= max_age]
        dropped = [self._numbers[s] for s, old in stale if old]
        for s, _ in stale:
            del self.remotes[s]
        # A sender whose freshest BSM is too old is forgotten by every vehicle (its column given back); what a
        # vehicle heard longer than max_age_s ago is left out where the pairs are made (``_fcw``).
        for no in dropped:
            self._forgotten[no] = t
            col = int(self._column[no])
            if col >= 0:
                self.heard[:, col] = NEVER
                self._column[no] = -1
                self._free_columns.append(col)
        self._present = vehicle_no

    def _seat(self, vehicle_no: np.ndarray) -> None:
        """Rows of ``heard`` for the vehicles hosted now (``vehicle_no``): the rows of the vehicles gone are given
        back (cleared), the new ones take free rows (the lowest first) or new ones (doubling)."""
        hosted = np.zeros(len(self._row), dtype=np.bool_)
        hosted[vehicle_no] = True
        gone = np.flatnonzero((self._row >= 0) & ~hosted)
        if len(gone):
            rows = self._row[gone]
            self.heard[rows] = NEVER
            self._row[gone] = -1
            self._free_rows.extend(rows.tolist())
            self._free_rows.sort(reverse=True)
        new = vehicle_no[self._row[vehicle_no] < 0]
        if not len(new):
            return
        while len(self._free_rows) < len(new):
            old = len(self.heard)
            grown = np.full((max(old + len(new), 2 * old), self.heard.shape[1]), NEVER, dtype=np.int32)
            grown[:old] = self.heard
            self.heard = grown
            self._free_rows = sorted([*self._free_rows, *range(old, len(grown))], reverse=True)
        self._row[new] = [self._free_rows.pop() for _ in range(len(new))]

    def _newly_accurate(self, sender_no: np.ndarray) -> list[int]:
        """The numbers of the senders heard this tick whose freshest BSM FCW can act on, without a column yet."""
        need = self.thresholds["fcw_required_accuracy_m"]
        out = []
        heard = np.unique(sender_no[sender_no >= 0])
        for no in heard[self._column[heard] < 0].tolist():  # no column yet
            r = self.remotes.get(self._names[no])
            if isinstance(r, RemoteState) and accurate_enough(r.sigma_major_m, need):
                out.append(no)
        return out

    def _track(self, nos: list[int]) -> None:
        """Give senders ``nos`` a column each (a free one, or new ones: doubling), with when each hosted vehicle
        last heard it in the window (after it was last forgotten), as if every delivery had been written down."""
        if not nos:
            return
        while len(self._free_columns) < len(nos):
            old = self.heard.shape[1]
            grown = np.full((len(self.heard), max(old + len(nos), 2 * old)), NEVER, dtype=np.int32)
            grown[:, :old] = self.heard
            self.heard = grown
            self._free_columns = sorted([*self._free_columns, *range(old, grown.shape[1])], reverse=True)
        self._free_columns.sort(reverse=True)
        cols = np.array([self._free_columns.pop() for _ in nos], dtype=np.int64)
        new = np.array(nos, dtype=np.int64)
        self._column[new] = cols
        since = np.array([self._forgotten.get(no, -math.inf) for no in nos])
        which = np.full(len(self._column), -1, dtype=np.int64)  # number -> its place in nos
        which[new] = np.arange(len(nos))
        for t_h, clock, vehicle_no, sender_no, got in self._window:  # oldest first: the latest time stays
            place = np.where(sender_no >= 0, which[np.maximum(sender_no, 0)], -1)
            place[place >= 0] = np.where(t_h > since[place[place >= 0]], place[place >= 0], -1)
            env_col = np.where(place >= 0, cols[np.maximum(place, 0)], -1)
            self._stamp(got, vehicle_no, sender_no, env_col, clock)  # (a vehicle gone since has no row: left out)

    def _stamp(
        self, got: FleetDeliveries, vehicle_no: np.ndarray, sender_no: np.ndarray, env_col: np.ndarray, clock: int
    ) -> None:
        """Write ``clock`` into ``heard`` for each of a tick's deliveries ``got`` (to the vehicles numbered
        ``vehicle_no``, of envelopes sent by ``sender_no``) whose vehicle has a row and whose envelope a column
        (``env_col``, -1: none), a vehicle's own envelopes aside. A rejected input's ``got`` is empty, without a
        count per vehicle: nothing to write."""
        if len(got):
            row_of = self._row[vehicle_no]
            stamp_deliveries(self.heard, got.counts, got.envelope, row_of, env_col, sender_no, vehicle_no, clock)

    def _decode_all(self, envelopes: Sequence[bytes], t: float) -> np.ndarray:
        """The number of each envelope's sender (-1: not a BSM with a position, or not an envelope); the BSMs
        decoded in one batch (``decode_bsms``), and each sender's freshest kept in ``remotes`` (in envelope
        order). An envelope this fleet sent (``_sent``) is not parsed again: what hearing it needs was kept."""
        remotes: list[tuple[str, RemoteState | Stamp | None] | None] = [None] * len(envelopes)
        bsms: list[tuple[int, str, day1_pb2.BSM]] = []
        now_mark = units.sec_mark(t, self.epoch)
        stamps: dict[tuple[int, float | None], Stamp] = {}  # one per secMark and accuracy: they are many alike
        sent, sent_full = self._sent, self._sent_full
        own_full: list[tuple[int, tuple[str, int, list[int], int, RemoteState]]] = []
        for k, raw in enumerate(envelopes):
            mine = sent_full.get(raw)
            if mine is not None:
                own_full.append((k, mine))
                continue
            own = sent.get(raw)
            if own is not None:
                sender, mark, ok, sigma = own
                stamp = None
                if ok:
                    stamp = stamps.get((mark, sigma))
                    if stamp is None:
                        stamp = stamps[mark, sigma] = self._stamp_of(mark, sigma, t, now_mark)
                remotes[k] = (sender, stamp)
                continue
            parsed = parse_envelope(raw)
            if parsed is None:
                self.rejected += 1
                continue
            env, frame = parsed
            if frame.WhichOneof("msg") == "bsm":  # only BSMs feed FCW
                bsms.append((k, env.sender_id, frame.bsm))
        # FCW acts only on senders accurate enough: the others' BSMs (the background's own: accuracy unknown)
        # are checked like a decode would, and only their time and accuracy kept.
        need = self.thresholds["fcw_required_accuracy_m"]
        semis = [b.accuracy.semi_major for _, _, b in bsms]
        refused: dict[int, bool] = {}  # semi-major (wire) -> FCW's accuracy gate refuses it: one answer per value
        gated = []
        for semi in semis:
            g = refused.get(semi)
            if g is None:
                g = refused[semi] = not _accurate_wire(semi, need)
            gated.append(g)
        full = [b for (_, _, b), g in zip(bsms, gated, strict=True) if not g]
        if len(self._decoded) > 4 * len(full) + 1024:  # (senders gone, flags that changed: start again)
            self._decoded.clear()
        try:
            decoded = iter(decode_bsms(full, now_s=t, frame=self.frame, epoch=self.epoch, memo=self._decoded))
        except ValueError:  # a value out of range somewhere: one at a time, to drop only the bad ones
            decoded = iter([self._decode_one(b, t) for b in full])
        # The others pass the checks of a decode (``check_bsms``, one batch) or are rejected.
        checked = iter(check_bsms([b for (_, _, b), g in zip(bsms, gated, strict=True) if g]))
        for (k, sender, b), semi, g in zip(bsms, semis, gated, strict=True):
            remote: RemoteState | Stamp | None
            if not g:
                remote = next(decoded)
            elif next(checked):
                mark, sigma = b.sec_mark, units.semi_major_from_wire(semi)
                remote = stamps.get((mark, sigma))
                if remote is None:
                    remote = stamps[mark, sigma] = self._stamp_of(mark, sigma, t, now_mark)
            else:
                remote = None
            remotes[k] = (sender, remote)
        if own_full:
            for (k, (sender, *_)), remote in zip(own_full, self._decode_own([m for _, m in own_full], t), strict=True):
                remotes[k] = (sender, remote)
        out = [-1] * len(envelopes)
        numbers, freshest = self._numbers, self.remotes
        for k, heard in enumerate(remotes):
            if heard is None:
                continue
            sender, remote = heard
            if remote is None:
                self.rejected += 1
                continue
            old = freshest.get(sender)
            if old is None or remote.t_s >= old.t_s:
                freshest[sender] = remote
            no = numbers.get(sender)
            out[k] = self._number(sender) if no is None else no
        return np.array(out, dtype=np.int64)

    def _decode_own(self, kept: list[tuple[str, int, list[int], int, RemoteState]], t: float) -> list[RemoteState]:
        """What ``decode_bsms`` gives for this fleet's own BSMs heard at ``t`` (``_remember``: their values on the
        wire, their template's decoding), without parsing them: the same conversions, on all of them at once."""
        wire = np.array([w for _, _, w, _, _ in kept], dtype=np.float64).reshape(-1, 5)  # (exact: |raw| < 2**53)
        lat, lon = wire[:, 0] * units.LATLON_UNIT_DEG, wire[:, 1] * units.LATLON_UNIT_DEG
        xs, ys, _ = self.frame.to_local(lat, lon, self.frame.h0_m)
        speeds = (wire[:, 2] * 0.02).tolist()
        yaws = units.compass_deg_to_enu_yaw_rad(wire[:, 3] * units.HEADING_UNIT_DEG).tolist()
        accels = (wire[:, 4] * 0.01).tolist()
        now_mark = units.sec_mark(t, self.epoch)
        ages_ms = (now_mark - np.array([m for _, m, _, _, _ in kept], dtype=np.int64)) % 60000
        times = (t - ages_ms / 1000.0).tolist()
        out = []
        new = object.__new__
        for (_, _, _, events, p), x, y, speed, yaw, accel, t_s in zip(
            kept, xs.tolist(), ys.tolist(), speeds, yaws, accels, times, strict=True
        ):
            # The template's decoding with what a refresh changes: the fields RemoteState's __init__ would set,
            # without a frozen dataclass's __setattr__ per field (a thousand of them a tick).
            r = new(RemoteState)
            fields = r.__dict__
            fields.update(p.__dict__)
            fields.update(
                t_s=t_s, x=x, y=y, speed_mps=speed, heading_rad=yaw, accel_mps2=accel, events=events | p.events
            )
            out.append(r)
        return out

    @staticmethod
    def _stamp_of(mark: int, sigma: float | None, t: float, now_mark: int) -> Stamp:
        """The Stamp of a BSM stamped ``mark`` heard at ``t`` (its time as ``units.time_from_sec_mark`` gives it,
        ``now_mark`` the secMark of ``t``) with accuracy ``sigma``; the BSM passed the checks of a decode."""
        return Stamp(t - ((now_mark - mark) % 60000) / 1000.0, sigma)

    def _decode_one(self, bsm: day1_pb2.BSM, t: float) -> RemoteState | None:
        try:
            return decode_bsm(bsm, now_s=t, frame=self.frame, epoch=self.epoch)
        except ValueError:
            return None

    # -- FCW for the whole fleet --------------------------------------------------------------------
    def _fcw(
        self, vehicles: list[testbed_pb2.FleetVehicle], x: np.ndarray, y: np.ndarray, vx: np.ndarray, vy: np.ndarray,
        heading_v: np.ndarray, accel_v: np.ndarray, t: float, able: np.ndarray,
    ) -> list[testbed_pb2.Advisory]:  # fmt: skip
        """FCW of every hosted vehicle ``able`` to run it (its accuracy good enough, or its truth known) on the
        senders it heard within ``max_age_s`` whose BSMs pass FCW's accuracy gate, in one call of the core's
        ``detect_conflicts``."""
        th = self.thresholds
        need = th["fcw_required_accuracy_m"]
        # Only senders whose BSMs are accurate enough count (the background's own say "unknown"): their columns.
        gate: dict[float, bool] = {}  # the gate's answer per accuracy (the senders state a few)
        usable = []
        numbers = self._numbers
        for s, r in self.remotes.items():
            sigma = r.sigma_major_m
            if sigma is None:  # (never accurate enough)
                continue
            ok = gate.get(sigma)
            if ok is None:
                ok = gate[sigma] = accurate_enough(sigma, need)
            if ok:
                usable.append(numbers[s])
        usable.sort()
        live = np.array(usable, dtype=np.int64)
        # Per hosted vehicle able to run FCW (in the order of ``vehicles``) and usable sender: heard within
        # max_age_s, i.e. at a tick still in the window (``_hear`` keeps those within max_age_s of t).
        hosts = np.flatnonzero(able)
        since = self._window[0][1]
        # (i, j): host hosts[i] heard sender live[j] at a tick in the window, in row-major order (compiled: no
        # hosts x senders matrix is gathered).
        rows, cols, seen = pairs_at_least(
            self.heard, self._row[self._present[hosts]], self._column[live], since, size_hint=self._pairs_made * 9 // 8
        )
        self._pairs_made = len(rows)
        heard_cols = np.flatnonzero(seen)
        if not len(heard_cols):
            return []
        # Rows of the WorldState: the hosted vehicles 0..n-1, then the senders heard, by id, n..n+m-1.
        names = self._names
        by_name = sorted((names[no], c) for no, c in zip(live[heard_cols].tolist(), heard_cols.tolist(), strict=True))
        senders = [name for name, _ in by_name]
        n, m = len(vehicles), len(senders)
        col_row = np.full(len(live), -1, dtype=np.intp)
        col_row[[c for _, c in by_name]] = n + np.arange(m)
        pi, pj = hosts[rows].astype(np.intp), col_row[cols]  # (in any order: the core's answer is sorted by (i, j))
        remotes: list[RemoteState] = []
        motion = []  # per sender: (x, y, vx, vy) at t, heading, acceleration
        for s in senders:  # accurate enough: decoded in full (``_decode_all``)
            r = self.remotes[s]
            assert isinstance(r, RemoteState)
            remotes.append(r)
            motion.append((*r.extrapolated(t), r.heading_rad, r.accel_mps2))
        world = WorldState(capacity=n + m)
        length = [v.length_m for v in vehicles] + [r.length_m for r in remotes]
        width = [v.width_m for v in vehicles] + [r.width_m for r in remotes]
        slots = world.add_many([f"h{k}" for k in range(n)] + [f"r{k}" for k in range(m)], ActorKind.CAR, length, width)
        rx, ry, rvx, rvy, r_heading, r_accel = np.array(motion, dtype=np.float64).reshape(-1, 6).T
        heading = np.concatenate([heading_v, r_heading])
        accel = np.concatenate([accel_v, r_accel])
        world.set_state(
            slots,
            np.concatenate([x, rx]),
            np.concatenate([y, ry]),
            np.concatenate([vx, rvx]),
            np.concatenate([vy, rvy]),
            accel * np.cos(heading),
            accel * np.sin(heading),
            heading,
        )
        # Only the pairs that could touch within FCW's TTC (``touch_within_s``: provably, the others raise nothing,
        # and the core evaluates each pair on its own): a vehicle hears hundreds.
        found = detect_conflicts(
            world,
            horizon_s=th["horizon_s"],
            pairs=(pi, pj),
            max_pet_s=th["icw_max_pet_s"],
            touch_within_s=min(th["fcw_ttc_s"], th["horizon_s"]),
        )
        out = []
        # Rear-end conflicts with the hosted vehicle as the follower (the core puts the follower first).
        fcw = (
            (found.kind == int(ConflictType.REAR_END))
            & (found.i < n)
            & (found.j >= n)
            & ~(found.ttc_s > th["fcw_ttc_s"])
        )
        for k in np.flatnonzero(fcw).tolist():
            i, j = int(found.i[k]), int(found.j[k])
            ttc = float(found.ttc_s[k])
            vid = vehicles[i].vehicle_id
            other = remotes[j - n].temp_id.hex()
            key = (vid, other)
            if self.warned_until.get(key, -math.inf) > t:
                continue
            valid = t + th["warning_validity_s"]
            self.warned_until[key] = valid
            out.append(
                testbed_pb2.Advisory(
                    app=APP_BY_NAME["fcw"],
                    severity=testbed_pb2.SEVERITY_WARNING,
                    target_id=vid,
                    other_id=other,
                    source_id=vid,
                    ttc_s=ttc,
                    raised_at_s=t,
                    valid_until_s=valid,
                    conflict_type=CONFLICT_NAME[ConflictType.REAR_END],
                )
            )
        return out
