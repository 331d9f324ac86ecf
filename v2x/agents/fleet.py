"""The fleet agent, sans-I/O: many equipped background vehicles in one agent (issue #10).

The world's traffic model moves the background vehicles of the scenario's ``flows`` (``v2x.sim.background``);
the equipped ones are hosted here, all of them in one ``FleetAgent`` per run. Each tick the world sends one
``FleetInput`` (the hosted vehicles' truth when the previous tick closed, and every delivery any of them
heard) and the fleet answers with one ``FleetAck`` (every vehicle's envelopes, the warnings its apps
raised). The fleet never moves a vehicle: the world keeps the truth.

Per tick, ``step`` (``transmit``, step 1, then ``listen``, steps 2 and 3: the shell sends the BSMs before
``listen`` when the world lets the warnings follow with the next tick's ack, ``FleetInput.warnings_next_tick``):

1. sends each hosted vehicle's BSM of its truth (the world's, when the previous tick closed: the BSM's time stamp
   says so, and receivers carry it on from there as they do every BSM), as a BSM refreshed from a template per
   vehicle would be (``v2x.wire.bsm.refresh_bsms``; the template is made, or changed, only for a new vehicle, a
   wreck or an accuracy that changed; the new ones of a tick are encoded once per kind, size, accuracy and wreck
   flag, each vehicle getting a copy with its own id: ``_new_template``), in its envelope: the envelopes are written
   from the arrays of every vehicle's numbers (read out of the input's bytes in one compiled pass when the shell
   hands them over, ``v2x.core.fleet_vehicle_numbers``) in another compiled pass, around the bytes that stay the
   same in a template's BSMs (``v2x.core.refreshed_envelopes``, ``v2x.wire.bsm_bytes``: protobuf's bytes, no message
   built per vehicle; a signed run, a tick with a value that is not finite, or a fleet of up to ``SMALL_WORLD``
   vehicles refreshes the templates in place and serialises them, ``envelope_bytes``, the same bytes). Without its
   flow's ``positioning`` a vehicle's BSM has no positioning error and the accuracy unknown, as the world's BSMs had
   before fleets; with it, the world sends the vehicle's receiver reading with the truth (``FleetVehicle`` fields
   14-17: the error and the 1-sigma axes) and the BSM carries the truth plus that error and states that accuracy
   (the template's accuracy is set again only when it changes). A wreck (``FleetVehicle.wrecked``) sets the wreck
   flags (``WRECK_FLAGS``: hazard lights, disabled vehicle) in its BSMs from then on;
2. hears each distinct envelope once for the whole fleet, in columns, without a message object per BSM: the
   envelopes are read in one compiled pass over their bytes (``v2x.core.scan_messages`` with the layout of a
   BSM's envelope, ``v2x.wire.scan.bsm_envelope``), and what a decode reads of them is checked and converted
   for all at once as ``decode_bsms`` does (``_scan``); an envelope the scan leaves (not of that layout) or with
   a value out of range, and every envelope of a small batch (``SCAN_AT_LEAST``), is parsed by protobuf one by
   one as before (``_parse_one``): the same values either way. A BSM that FCW's accuracy gate would refuse,
   such as the background's own without positioning, is only checked as a decode would and its time and
   accuracy kept (a ``Stamp``). Per sender the freshest BSM is kept in columns indexed by the sender's number
   (``_keep``: its time, accuracy, position, speed, heading, acceleration and size, what FCW reads; ``remotes``
   shows them as objects), and per (hosted vehicle, sender FCW can act on) when it last heard it (``heard``, a
   matrix whose rows and columns are given back when the vehicle leaves or the sender is forgotten;
   ``max_age_s`` forgets them; the core's ``stamp_deliveries`` writes the tick's deliveries into it in one
   compiled pass). Its own envelopes, which its other vehicles hear, are read as anyone's: the fleet keeps no
   memory of what it sent (reading them costs no more than looking them up did, benchmarks/world_tick.py);
3. runs FCW for every hosted vehicle at once: one ``WorldState`` of the hosted vehicles (where their
   receivers place them, carried on to the tick's time at constant acceleration) and the usable senders
   (carried on as ``RemoteState.extrapolated`` does, the same floats, for all at once: ``_extrapolated``), and
   one call of the core's ``detect_conflicts`` on the (hosted vehicle, sender it heard) pairs whose boxes could
   touch within FCW's TTC (read out of ``heard`` by the core's ``touching_pairs_heard``, one compiled pass that
   writes out only those: no vehicles x senders matrix gathered, no list of every pair heard), with FCW's
   thresholds and accuracy gate (``v2x.apps.collision``; a hosted vehicle whose stated accuracy fails it
   raises nothing); a warning is raised once per validity period per (vehicle, other). No driver reacts:
   the traffic model's IDM keeps its gaps anyway.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import repeat
from operator import attrgetter

import numpy as np
from numpy.typing import NDArray

from v2x import units
from v2x.agents.base import first_while_valid
from v2x.agents.vehicle import WRECK_FLAGS
from v2x.apps.collision import CONFLICT_NAME, fcw_gate, fcw_rows
from v2x.core import (
    SCAN_AT_LEAST,
    VEHICLE_NUMBERS,
    ActorKind,
    ConflictType,
    WorldState,
    detect_conflicts,
    fleet_vehicle_numbers,
    refreshed_envelopes,
    scan_messages,
    stamp_deliveries,
    touching_pairs_heard,
    writes_from_arrays,
)
from v2x.geodesy import LocalFrame
from v2x.units import R95_PER_SIGMA, accurate_enough
from v2x.wire import day1_pb2, frame_pb2, testbed_pb2
from v2x.wire.advisory import advisory
from v2x.wire.bsm import (
    HARD_BRAKING_MPS2,
    UNKNOWN_LENGTH_M,
    UNKNOWN_WIDTH_M,
    VEHICLE_EVENT_BIT,
    OwnState,
    RemoteState,
    decode_bsm,
    encode_bsm,
    in_check_ranges,
    motion_columns,
    passes_check,
    refresh_bsm,
    refresh_bsms,
)
from v2x.wire.bsm_bytes import BsmStatics, bsm_statics, static_rest, with_sender
from v2x.wire.envelope import envelope_bytes, parse_envelope, temporary_id
from v2x.wire.fleet import FleetDeliveries, unpack_deliveries
from v2x.wire.protocol import MAX_VEHICLE_SIZE_M
from v2x.wire.scan import BSM_FIELDS, bsm_envelope
from v2x.wire.security import Signer
from v2x.wire.tables import APP_BY_NAME

HEIGHT_M = {"car": 1.5, "truck": 3.5, "bus": 3.2}
NEVER = np.iinfo(np.int32).min  # ``FleetAgent.heard``: not heard (since last forgotten)
# The per-sender motion columns (``FleetAgent._fresh_motion``): position, speed, ENU yaw, acceleration, size.
_X, _Y, _SPEED, _YAW, _ACCEL, _LENGTH, _WIDTH = range(7)
_MOTION = 7
_FIELD = {path.removeprefix("frame.bsm."): k for k, path in enumerate(BSM_FIELDS)}  # a BSM field -> its column


@dataclass(frozen=True)
class Stamp:
    """A BSM too inaccurate for FCW (``_accurate_wire``): its time and accuracy, all the fleet keeps of it."""

    t_s: float
    sigma_major_m: float | None


def _accurate_wire(semi_major: int, need_m: float) -> bool:
    """Would FCW's accuracy gate pass the sender of a BSM whose accuracy's semi-major axis is ``semi_major`` (as on
    the wire)? (A semi-major axis out of range: decode it, and let the decode refuse it.)"""
    try:
        return accurate_enough(units.semi_major_from_wire(semi_major), need_m)
    except ValueError:
        return True


WRECK_EVENTS = sum(1 << VEHICLE_EVENT_BIT[flag] for flag in WRECK_FLAGS)
# What ``transmit`` reads of each FleetVehicle besides its id, in this order (``wrecked`` as 0.0 or 1.0): the
# columns ``_COLUMNS`` of its numbers (``vehicle_numbers``).
_NUMBERS = (
    "x_m", "y_m", "vx_mps", "vy_mps", "ax_mps2", "ay_mps2", "heading_rad", "speed_mps", "accel_mps2", "east_error_m",
    "north_error_m", "sigma_major_m", "sigma_minor_m", "wrecked",
)  # fmt: skip
_COLUMNS = [VEHICLE_NUMBERS.index(name) for name in _NUMBERS]
_ALL_FIELDS = attrgetter(*VEHICLE_NUMBERS)
_SIZE = [VEHICLE_NUMBERS.index(name) for name in ("length_m", "width_m")]
_SIGMAS = [VEHICLE_NUMBERS.index(name) for name in ("sigma_major_m", "sigma_minor_m")]


def vehicle_numbers(inp: testbed_pb2.FleetInput, raw: bytes | None = None) -> NDArray[np.float64]:
    """The numbers of ``inp``'s vehicles, a row per vehicle and a column per ``VEHICLE_NUMBERS`` field: from
    ``raw``, the bytes ``inp`` was parsed from, in one compiled pass, else the fields of one vehicle after another
    (``attrgetter``: read in C, a tuple per vehicle)."""
    n = len(inp.vehicles)
    numbers = fleet_vehicle_numbers(raw, n) if raw is not None else None
    if numbers is None:
        numbers = np.array(list(map(_ALL_FIELDS, inp.vehicles)), dtype=np.float64).reshape(n, len(VEHICLE_NUMBERS))
    return numbers


def bad_vehicle_numbers(inp: testbed_pb2.FleetInput, raw: bytes | None = None) -> str | None:
    """``numbers_problem`` of ``inp``'s ``vehicle_numbers``."""
    return numbers_problem(inp, vehicle_numbers(inp, raw))


def numbers_problem(inp: testbed_pb2.FleetInput, numbers: NDArray[np.float64]) -> str | None:
    """What is wrong with the ``numbers`` (``vehicle_numbers``) of ``inp``'s vehicles, None if nothing: every
    number finite, length and width above 0 and at most ``MAX_VEHICLE_SIZE_M``, the accuracy's sigmas not
    negative. A fleet input from the world always passes (a scenario's actors are at most 50 m long, its SUMO
    demand's vTypes at most ``MAX_VEHICLE_SIZE_M``: ``v2x.scenario.sumo.check_routes``); one that did not made the
    fleet's FCW raise (a vehicle of length 0 or NaN) and ended the run."""
    if not len(numbers):
        return None
    size, sigmas = numbers[:, _SIZE], numbers[:, _SIGMAS]
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(numbers).all(axis=1) & ((size > 0) & (size <= MAX_VEHICLE_SIZE_M)).all(axis=1)
        ok &= (sigmas >= 0).all(axis=1)
    if ok.all():
        return None
    k = int(np.flatnonzero(~ok)[0])
    return (
        f"vehicle {inp.vehicles[k].vehicle_id[:40]!r} (and {int(np.count_nonzero(~ok)) - 1} more): its numbers must be "
        f"finite, its length and width in (0, {MAX_VEHICLE_SIZE_M:g}] m and its sigmas >= 0"
    )


def _times(t: float, now_mark: int, marks: np.ndarray) -> np.ndarray:
    """The generation times of BSMs stamped ``marks`` heard at ``t`` (``now_mark``: the secMark of ``t``), as
    ``units.time_from_sec_mark`` gives them (the same operations)."""
    times: np.ndarray = t - ((now_mark - marks) % 60000) / 1000.0
    return times


@dataclass
class _Heard:
    """BSMs heard at one tick, in columns: the envelope each came in (``k``), its time, whether it was decoded
    (``full``; else only its time and accuracy are kept: a Stamp, refused by FCW's accuracy gate), its accuracy
    (NaN: unknown) and, where decoded, what ``decode_bsm`` gives of its position, speed, ENU yaw, acceleration
    and size (else zeros)."""

    k: np.ndarray
    t_s: np.ndarray
    full: np.ndarray
    sigma: np.ndarray
    x: np.ndarray
    y: np.ndarray
    speed: np.ndarray
    yaw: np.ndarray
    accel: np.ndarray
    length: np.ndarray
    width: np.ndarray

    def motion(self) -> np.ndarray:
        """A row per BSM: the columns of ``_MOTION``."""
        return np.stack([self.x, self.y, self.speed, self.yaw, self.accel, self.length, self.width], axis=1)

    @staticmethod
    def stamps(k: np.ndarray, t_s: np.ndarray, sigma: np.ndarray) -> _Heard:
        zero = np.zeros(len(k), dtype=np.float64)
        return _Heard(k, t_s, np.zeros(len(k), dtype=np.bool_), sigma, zero, zero, zero, zero, zero, zero, zero)

    @staticmethod
    def of_remote(k: np.ndarray, r: RemoteState) -> _Heard:
        def one(v: float | None) -> np.ndarray:
            return np.array([np.nan if v is None else v], dtype=np.float64)

        values = (r.sigma_major_m, r.x, r.y, r.speed_mps, r.heading_rad, r.accel_mps2, r.length_m, r.width_m)
        return _Heard(k, one(r.t_s), np.ones(1, dtype=np.bool_), *(one(v) for v in values))

    @staticmethod
    def join(parts: Sequence[_Heard]) -> _Heard:
        if len(parts) == 1:
            return parts[0]
        return _Heard(*(np.concatenate([getattr(p, name) for p in parts]) for name in _HEARD_FIELDS))


_HEARD_FIELDS = ("k", "t_s", "full", "sigma", "x", "y", "speed", "yaw", "accel", "length", "width")


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


def _state_accuracy(msg: frame_pb2.MessageFrame, acc: list[int]) -> int:
    """Make the template ``msg`` state the accuracy ``acc`` (wire values: semi-major and semi-minor axes, position
    confidence; set only where it states another); the code of what it states (``_accuracy_code``)."""
    b = msg.bsm.accuracy
    if acc != [b.semi_major, b.semi_minor, msg.bsm.pos_confidence.pos]:
        b.semi_major, b.semi_minor = acc[0], acc[1]
        msg.bsm.pos_confidence.pos = acc[2]
    return _accuracy_code(b.semi_major, b.semi_minor, msg.bsm.pos_confidence.pos)


@dataclass(frozen=True)
class _Shape:
    """What a new template holds whatever vehicle it is for (``FleetAgent._new_template``): the template (with
    another vehicle's id), the static pieces after its id (``static_rest``) and the accuracy it states
    (``_accuracy_code``)."""

    msg: frame_pb2.MessageFrame
    rest: tuple[bytes, bytes]
    stated: int


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
        # vehicle -> its BSM: refreshed in place and serialised when the envelopes are not written from the arrays,
        # else only the source of its static pieces (what a refresh sets in it stays as it last was)
        self.templates: dict[str, frame_pb2.MessageFrame] = {}
        # vehicle -> the static pieces of its envelopes (``bsm_statics`` of its template) and the accuracy its
        # template states (``_accuracy_code``): kept with the template (``_template``)
        self._statics: dict[str, BsmStatics] = {}
        self._stated: dict[str, int] = {}
        self.seq: dict[str, int] = {}  # vehicle -> the seq of its last envelope (and its BSM counter + 1)
        # Per sender number (``_number``), its freshest BSM (``_keep``; ``remotes`` shows them as objects): its time
        # (NaN: none kept), whether it was decoded (else a Stamp: one FCW does not act on, only its time and
        # accuracy kept), its accuracy (NaN: unknown), the ``_MOTION`` columns, when it was heard and, decoded, its
        # envelope (for its BSM id, wanted only in a warning).
        self._fresh_t = np.zeros(0, dtype=np.float64)
        self._fresh_full = np.zeros(0, dtype=np.bool_)
        self._fresh_sigma = np.zeros(0, dtype=np.float64)
        self._fresh_motion = np.zeros((0, _MOTION), dtype=np.float64)
        self._fresh_heard = np.zeros(0, dtype=np.float64)
        self._fresh_raw = np.zeros(0, dtype=object)
        self._numbers_by_bytes: dict[bytes, int] = {}  # a sender's id as scanned (UTF-8) -> its number
        self._world_names: list[str] = []  # the WorldState's actor names of ``_fcw`` (made once)
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
        # The new templates' shapes of one tick (``_new_template``), by (time, kind, length, width, wreck, accuracy)
        self._shapes: dict[tuple[object, ...], _Shape] = {}
        self._pairs_made = 0  # the (vehicle, sender) pairs FCW had last tick: room for as many, and some, now
        self._listening: _Begun | None = None  # the tick ``transmit`` began, for ``listen``

    def step(self, inp: testbed_pb2.FleetInput, raw: bytes | None = None) -> testbed_pb2.FleetAck:
        """One tick: every hosted vehicle's BSM and the FCW warnings of all of them (``raw``: see ``transmit``)."""
        ack = self.transmit(inp, raw)
        ack.events.extend(self.listen(inp))
        return ack

    def transmit(
        self, inp: testbed_pb2.FleetInput, raw: bytes | None = None, *, numbers: NDArray[np.float64] | None = None
    ) -> testbed_pb2.FleetAck:
        """The first half of a tick: a ``FleetAck`` with every hosted vehicle's BSM (no warnings yet). Then
        ``listen(inp)`` gives the tick's warnings; ``step`` is the two. ``raw``: the bytes ``inp`` was parsed from,
        if at hand (the vehicles' numbers are then read from them in one pass); ``numbers``: those numbers, if
        already read (``vehicle_numbers``: the fleet's shell reads them to check them)."""
        t = units.s_of(inp.time_us)
        ack = testbed_pb2.FleetAck(fleet_id=self.fleet_id, tick=inp.tick)
        vehicles = list(inp.vehicles)
        ids = [v.vehicle_id for v in vehicles]
        for gone in set(self.templates).difference(ids):  # left the network
            del self.templates[gone], self._statics[gone], self._stated[gone]
        n = len(vehicles)
        dt = max(0.0, t - units.s_of(inp.truth_time_us))
        if numbers is None:
            numbers = vehicle_numbers(inp, raw)
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
        # states none knows its truth: the background without positioning, as before); nor does a wreck (as a
        # built-in vehicle's apps raise nothing once it has crashed).
        able = (~known | fcw_gate(major, self.thresholds)) & (wrecked == 0)
        self._listening = _Begun(inp.tick, vehicles, ids, x, y, vx, vy, heading, accel, able)
        return ack

    def listen(self, inp: testbed_pb2.FleetInput) -> list[testbed_pb2.Advisory]:
        """The second half of the tick ``transmit(inp)`` began: hear its deliveries, run FCW; the warnings."""
        b = self._listening
        if b is None or b.tick != inp.tick:
            raise RuntimeError(f"listen() for tick {inp.tick} without transmit() first")
        self._listening = None
        t = units.s_of(inp.time_us)
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
        """Each vehicle's BSM envelope. ``accuracy``: per vehicle (a row) its BSM's semi-major and semi-minor axes
        and position confidence (wire values); ``wrecked``: per vehicle whether its BSMs set the wreck flags.

        The envelopes are written from the arrays (``v2x.core.refreshed_envelopes``: the template's static pieces,
        ``_statics``, and the motion as varints, in one compiled pass): the bytes ``refresh_bsms``, the frame's
        ``SerializeToString`` and ``envelope_bytes`` give, which is what a signed run, a tick with a value that is
        not finite, or a fleet of up to ``SMALL_WORLD`` vehicles (``writes_from_arrays``) still does (the templates
        then refreshed in place, as they were before)."""
        t = units.s_of(inp.time_us)
        lat_a, lon_a, _ = self.frame.to_geodetic(x, y)
        compass_a = units.enu_yaw_rad_to_compass_deg(heading)
        speed_a = np.where(speed_in > 0.0, speed_in, 0.0)  # max(0.0, speed), NaN included
        motion = motion_columns(lat_a, lon_a, speed_a, compass_a, accel)
        mark = units.sec_mark(units.s_of(inp.truth_time_us), self.epoch)  # the truth's time: when it was so
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
        if self.signer is None and motion is not None and writes_from_arrays(len(ids)):
            return refreshed_envelopes(
                list(map(self._statics.__getitem__, ids)), seqs, counts, mark, motion, accel, events, tick=inp.tick,
                tx_time_us=inp.time_us, link=testbed_pb2.LINK_PC5,
            )  # fmt: skip
        msgs = [self.templates[vid] for vid in ids]
        return self._refresh_and_serialise(
            inp, msgs, ids, (lat_a, lon_a, compass_a, speed_a), motion, accel, counts.tolist(), mark, wrecks
        )

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
        if msg is None:
            self._new_template(v, vid, wreck, acc, t)
            return
        self._stated[vid] = _state_accuracy(msg, acc)
        statics = bsm_statics(vid, msg)
        assert statics is not None  # (encode_bsm sets every nested message a refresh writes in)
        self._statics[vid] = statics

    def _new_template(self, v: testbed_pb2.FleetVehicle, vid: str, wreck: bool, acc: list[int], t: float) -> None:
        """``vid``'s first template (or its first as a wreck), stating the accuracy ``acc``. Vehicles of one kind,
        size and accuracy that get their first template on the same tick (a thousand on a fleet's first) differ
        only in the BSM id: the template is encoded and cut once for them (``_shapes``), and each gets a copy with
        its own id, which is what encoding and cutting its own would give."""
        key = (t, v.kind, v.length_m, v.width_m, wreck, *acc)
        shape = self._shapes.get(key)
        if shape is None:
            if self._shapes and next(iter(self._shapes))[0] != t:  # (only this tick's: a tick's time is in them)
                self._shapes.clear()
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
            code = _state_accuracy(msg, acc)
            rest = static_rest(msg)
            assert rest is not None  # (encode_bsm sets every nested message a refresh writes in)
            shape = _Shape(msg, rest, code)
            self._shapes[key] = shape
        msg = frame_pb2.MessageFrame()
        msg.CopyFrom(shape.msg)
        temp_id = temporary_id(vid)
        msg.bsm.id = temp_id
        self.templates[vid] = msg
        self._statics[vid] = with_sender(vid, temp_id, shape.rest)
        self._stated[vid] = shape.stated

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
        self._room(size)
        self._seat(vehicle_no)
        self._track(self._newly_accurate(sender_no))
        # This tick's deliveries from the tracked senders (each vehicle's own BSM aside), in one compiled pass.
        env_col = np.where(sender_no >= 0, self._column[np.maximum(sender_no, 0)], -1)
        self._stamp(got, vehicle_no, sender_no, env_col, self._clock)
        age = t - self._fresh_t
        stale = ~np.isnan(self._fresh_t) & ~(age <= max_age)
        dropped = np.flatnonzero(stale & (age > max_age)).tolist()
        self._fresh_t[stale] = np.nan
        self._fresh_raw[stale] = None
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
        heard = np.unique(sender_no[sender_no >= 0])
        new = heard[self._column[heard] < 0]  # no column yet
        out: list[int] = new[self._usable(new)].tolist()
        return out

    def _usable(self, nos: np.ndarray) -> np.ndarray:
        """Per sender of ``nos``: is its freshest BSM one FCW acts on (decoded, and passing FCW's accuracy gate,
        ``fcw_gate``)?"""
        gate = fcw_gate(self._fresh_sigma[nos], self.thresholds)
        ok: np.ndarray = ~np.isnan(self._fresh_t[nos]) & self._fresh_full[nos] & gate
        return ok

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
        """The number of each envelope's sender (-1: not a BSM with a position, or not an envelope); each sender's
        freshest BSM kept in the columns (``_keep``; in envelope order, a later one of the same time winning).
        The envelopes (this fleet's own as anyone's) are read in one compiled pass (``scan_messages``) where they
        have the layout the fleet's and the story cars' BSM envelopes have (``v2x.wire.scan.bsm_envelope``), and
        the few others (or all, in a small batch) parsed by protobuf one by one (``_parse_one``): the same values
        either way."""
        raws = list(envelopes)
        n = len(raws)
        now_mark = units.sec_mark(t, self.epoch)
        need = self.thresholds["fcw_required_accuracy_m"]
        senders: list[str | bytes | None] = [None] * n  # per envelope its sender (bytes: as scanned), None: none
        parts: list[_Heard] = []
        slow: Sequence[int] = range(n)
        if n >= SCAN_AT_LEAST:
            scanned, slow = self._scan(raws, senders, t, now_mark, need)
            parts.append(scanned)
        for k in slow:
            one = self._parse_one(k, raws[k], t, need)
            if one is None:
                continue
            sender, heard = one
            if heard is None:
                self.rejected += 1
                continue
            senders[k] = sender
            parts.append(heard)
        out = self._numbered(senders)
        if parts:
            self._keep(_Heard.join(parts), out, raws, t)
        return out

    def _scan(
        self, raws: list[bytes], senders: list[str | bytes | None], t: float, now_mark: int, need: float
    ) -> tuple[_Heard, list[int]]:
        """What hearing the envelopes ``raws`` gives, read into columns in one compiled pass: those with a BSM whose
        values all pass the checks of a decode (``in_check_ranges``) are decoded here (as ``decode_bsms`` does) or,
        when FCW's accuracy gate refuses them, stamped; their senders (as bytes) written into ``senders``. The
        envelopes left (not of that layout, or a value out of range), by their place in ``raws``."""
        layout = bsm_envelope()
        joined, _, got, ok = scan_messages(raws, layout.kinds, layout.subs, layout.cols, layout.width)
        raw = got[:, [layout.columns[p] for p in BSM_FIELDS]]
        ok &= got[:, layout.columns["frame.bsm"]] == 1
        ok &= in_check_ranges(raw)
        ok &= got[:, layout.columns["frame.bsm.sec_mark"]] <= units.SECMARK_MAX  # (``check_bsm`` refuses the rest)
        at = np.flatnonzero(ok)
        sender_at = layout.columns["sender_id"]
        for e, a, b in zip(at.tolist(), got[at, sender_at].tolist(), got[at, sender_at + 1].tolist(), strict=True):
            senders[e] = joined[a : a + b]
        raw = raw[at]
        marks = got[at, layout.columns["frame.bsm.sec_mark"]]
        semi = raw[:, _FIELD["accuracy.semi_major"]]
        distinct, inverse = np.unique(semi, return_inverse=True)
        refused = np.array([not _accurate_wire(s, need) for s in distinct.tolist()], dtype=np.bool_)
        gated = refused[inverse.reshape(-1)]
        times = _times(t, now_mark, marks)
        sigma = units.semi_major_from_wire_array(semi)
        stamps = _Heard.stamps(at[gated], times[gated], sigma[gated])
        full = ~gated
        values = raw[full].astype(np.float64)  # (exact: |raw| < 2**53, as Python's int * float converts it)
        lat, lon = values[:, _FIELD["pos.lat"]], values[:, _FIELD["pos.lon"]]
        xs, ys, _ = self.frame.to_local(lat * units.LATLON_UNIT_DEG, lon * units.LATLON_UNIT_DEG, self.frame.h0_m)
        accel, length, width = (raw[full, _FIELD[f]] for f in ("accel_set.long", "size.length", "size.width"))
        decoded = _Heard(
            k=at[full],
            t_s=times[full],
            full=np.ones(int(full.sum()), dtype=np.bool_),
            sigma=sigma[full],
            x=np.asarray(xs, dtype=np.float64),
            y=np.asarray(ys, dtype=np.float64),
            speed=values[:, _FIELD["speed"]] * units.SPEED_UNIT_MPS,
            yaw=units.compass_deg_to_enu_yaw_rad(values[:, _FIELD["heading"]] * units.HEADING_UNIT_DEG),
            # (``accel_from_wire(raw) or 0.0``, ``size_cm_from_wire(raw) or UNKNOWN_LENGTH_M`` / ``_WIDTH_M``: what
            # ``_remote`` takes)
            accel=units.accel_from_wire_array(accel, 0.0),
            length=units.size_cm_from_wire_array(length, UNKNOWN_LENGTH_M),
            width=units.size_cm_from_wire_array(width, UNKNOWN_WIDTH_M),
        )
        left: list[int] = np.flatnonzero(~ok).tolist()
        return _Heard.join([stamps, decoded]), left

    def _parse_one(self, k: int, raw: bytes, t: float, need: float) -> tuple[str, _Heard | None] | None:
        """Hearing envelope ``k`` through protobuf: None when it is not a BSM (not counted), else its sender and
        what it gives (None: rejected), as ``decode_bsms`` and ``check_bsm`` would. An envelope that does not
        parse is counted here."""
        parsed = parse_envelope(raw)
        if parsed is None:
            self.rejected += 1
            return None
        env, frame = parsed
        if frame.WhichOneof("msg") != "bsm":  # only BSMs feed FCW
            return None
        bsm = frame.bsm
        semi = bsm.accuracy.semi_major
        at = np.array([k], dtype=np.int64)
        if not _accurate_wire(semi, need):  # refused by FCW's accuracy gate: only its time and accuracy kept
            if not passes_check(bsm):
                return env.sender_id, None
            sigma = units.semi_major_from_wire(semi)
            t_s = _times(t, units.sec_mark(t, self.epoch), np.array([bsm.sec_mark], dtype=np.int64))
            return env.sender_id, _Heard.stamps(at, t_s, np.array([np.nan if sigma is None else sigma]))
        r = self._decode_one(bsm, t)
        if r is None:
            return env.sender_id, None
        return env.sender_id, _Heard.of_remote(at, r)

    def _numbered(self, senders: list[str | bytes | None]) -> np.ndarray:
        """The number of each envelope's sender (None: -1), new ones numbered in envelope order (``_number``)."""
        by_bytes, numbers = self._numbers_by_bytes, self._numbers
        out = [
            -1 if s is None else (by_bytes.get(s, -2) if isinstance(s, bytes) else numbers.get(s, -2)) for s in senders
        ]
        if -2 in out:
            for k, s in enumerate(senders):
                if out[k] == -2 and s is not None:
                    name = s.decode() if isinstance(s, bytes) else s
                    out[k] = no = self._number(name)
                    if isinstance(s, bytes):
                        by_bytes[s] = no
        return np.array(out, dtype=np.int64)

    def _keep(self, heard: _Heard, number: np.ndarray, raws: list[bytes], t: float) -> None:
        """Keep, per sender, the freshest of the BSMs ``heard`` (envelope ``heard.k``, sender ``number[k]``) and the
        one kept before: as taking them in envelope order, each replacing the kept one unless older. So the
        latest in time wins, and of those the last in envelope order; one kept before only if none is as new."""
        self._room(len(self._names))
        nos = number[heard.k]
        order = np.lexsort((heard.k, heard.t_s, nos))  # by sender, then time, then envelope order
        last = np.ones(len(order), dtype=np.bool_)
        last[:-1] = nos[order][1:] != nos[order][:-1]
        win = order[last]
        no = nos[win]
        win = win[~(heard.t_s[win] < self._fresh_t[no])]  # (none kept: NaN, replaced)
        no = nos[win]
        self._fresh_t[no] = heard.t_s[win]
        self._fresh_full[no] = heard.full[win]
        self._fresh_sigma[no] = heard.sigma[win]
        self._fresh_motion[no] = heard.motion()[win]
        self._fresh_heard[no] = t
        raw = np.empty(len(win), dtype=object)
        raw[:] = [raws[k] if full else None for k, full in zip(heard.k[win].tolist(), heard.full[win].tolist(),
                                                              strict=True)]  # fmt: skip
        self._fresh_raw[no] = raw

    def _room(self, size: int) -> None:
        """Room for ``size`` numbers in the per-number columns (doubling)."""
        have = len(self._fresh_t)
        if size <= have:
            return
        more = max(size, 2 * have) - have
        self._fresh_t = np.concatenate([self._fresh_t, np.full(more, np.nan)])
        self._fresh_full = np.concatenate([self._fresh_full, np.zeros(more, dtype=np.bool_)])
        self._fresh_sigma = np.concatenate([self._fresh_sigma, np.full(more, np.nan)])
        self._fresh_motion = np.concatenate([self._fresh_motion, np.zeros((more, _MOTION), dtype=np.float64)])
        self._fresh_heard = np.concatenate([self._fresh_heard, np.full(more, np.nan)])
        self._fresh_raw = np.concatenate([self._fresh_raw, np.full(more, None, dtype=object)])

    def _decode_one(self, bsm: day1_pb2.BSM, t: float) -> RemoteState | None:
        try:
            return decode_bsm(bsm, now_s=t, frame=self.frame, epoch=self.epoch)
        except ValueError:
            return None

    @property
    def remotes(self) -> dict[str, RemoteState | Stamp]:
        """Per sender its freshest BSM as the fleet keeps it: a Stamp (one FCW does not act on: its time and
        accuracy), or what decoding it gives (decoded again here from the envelope kept, at the time it was heard:
        for tests and inspection, the columns are what the fleet reads)."""
        out: dict[str, RemoteState | Stamp] = {}
        for no in np.flatnonzero(~np.isnan(self._fresh_t)).tolist():
            sigma = float(self._fresh_sigma[no])
            if not self._fresh_full[no]:
                out[self._names[no]] = Stamp(float(self._fresh_t[no]), None if math.isnan(sigma) else sigma)
                continue
            parsed = parse_envelope(self._fresh_raw[no])
            assert parsed is not None
            r = decode_bsm(parsed[1].bsm, now_s=float(self._fresh_heard[no]), frame=self.frame, epoch=self.epoch)
            assert r is not None
            out[self._names[no]] = r
        return out

    def _temp_id(self, no: int) -> bytes:
        """The BSM id of sender ``no``'s freshest BSM (one FCW acts on)."""
        parsed = parse_envelope(self._fresh_raw[no])
        assert parsed is not None
        return bytes(parsed[1].bsm.id)

    # -- FCW for the whole fleet --------------------------------------------------------------------
    def _actor_names(self, n: int, m: int) -> list[str]:
        """The WorldState's actor names of ``_fcw``: ``h0..h{n-1}``, then ``r0..r{m-1}`` (made once, kept)."""
        have = len(self._world_names) // 2
        if max(n, m) > have:
            size = max(n, m, 2 * have)
            self._world_names = [f"h{k}" for k in range(size)] + [f"r{k}" for k in range(size)]
        half = len(self._world_names) // 2
        return self._world_names[:n] + self._world_names[half : half + m]

    def _extrapolated(self, nos: np.ndarray, t: float) -> tuple[np.ndarray, ...]:
        """Of senders ``nos`` (decoded BSMs kept): ``RemoteState.extrapolated(t)`` (x, y, vx, vy), heading,
        acceleration, length and width, as columns. The same floats: the same operations in the same order
        (numpy's + - * / are IEEE's, as Python's), the cosine and sine from ``math`` as there (numpy's may differ
        in the last place)."""
        got = self._fresh_motion[nos]
        x0, y0, v0, yaw, a = got[:, _X], got[:, _Y], got[:, _SPEED], got[:, _YAW], got[:, _ACCEL]
        d = t - self._fresh_t[nos]
        dt = np.where(d > 0.0, d, 0.0)  # max(0.0, d)
        stops = (a < 0) & (v0 + a * dt < 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            dt_stop = v0 / -a
        dist = np.where(stops, v0 * dt_stop / 2, v0 * dt + 0.5 * a * dt * dt)
        v = np.where(stops, 0.0, v0 + a * dt)
        yaws = yaw.tolist()
        c = np.array([math.cos(h) for h in yaws], dtype=np.float64)
        s = np.array([math.sin(h) for h in yaws], dtype=np.float64)
        return x0 + dist * c, y0 + dist * s, v * c, v * s, yaw, a, got[:, _LENGTH], got[:, _WIDTH]

    def _fcw(
        self, vehicles: list[testbed_pb2.FleetVehicle], x: np.ndarray, y: np.ndarray, vx: np.ndarray, vy: np.ndarray,
        heading_v: np.ndarray, accel_v: np.ndarray, t: float, able: np.ndarray,
    ) -> list[testbed_pb2.Advisory]:  # fmt: skip
        """FCW of every hosted vehicle ``able`` to run it (its accuracy good enough, or its truth known) on the
        senders it heard within ``max_age_s`` whose BSMs pass FCW's accuracy gate, in one call of the core's
        ``detect_conflicts``."""
        th = self.thresholds
        # Only senders whose BSMs are accurate enough count (the background's own say "unknown"): their columns.
        known = np.flatnonzero(~np.isnan(self._fresh_t))
        live = known[self._usable(known)]
        # Per hosted vehicle able to run FCW (in the order of ``vehicles``) and usable sender: heard within
        # max_age_s, i.e. at a tick still in the window (``_hear`` keeps those within max_age_s of t).
        hosts = np.flatnonzero(able)
        since = self._window[0][1]
        if not len(live) or not len(hosts):
            return []
        # Rows of the WorldState: the hosted vehicles 0..n-1, then the usable senders, by id, n..n+m-1.
        names = [self._names[no] for no in live.tolist()]
        by_name = np.array(sorted(range(len(names)), key=names.__getitem__), dtype=np.intp)
        senders = live[by_name]
        n, m = len(vehicles), len(senders)
        col_slot = np.empty(m, dtype=np.int64)  # live[j]'s slot
        col_slot[by_name] = n + np.arange(m)
        rx, ry, rvx, rvy, r_heading, r_accel, r_length, r_width = self._extrapolated(senders, t)
        world = WorldState(capacity=n + m)
        length = np.concatenate([np.array([v.length_m for v in vehicles], dtype=np.float64), r_length])
        width = np.concatenate([np.array([v.width_m for v in vehicles], dtype=np.float64), r_width])
        slots = world.add_many(self._actor_names(n, m), ActorKind.CAR, length, width)
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
        # The (hosted vehicle, sender) pairs heard at a tick in the window (``_hear`` keeps those within max_age_s
        # of t) whose boxes could touch within FCW's TTC, in one compiled pass over ``heard`` (a vehicle hears
        # hundreds, could touch a few: the others raise nothing, provably, and the core evaluates each pair on
        # its own).
        within = min(th["fcw_ttc_s"], th["horizon_s"])
        pi, pj = touching_pairs_heard(
            world, self.heard, self._row[self._present[hosts]], self._column[live], since, hosts, col_slot, within,
            size_hint=self._pairs_made * 9 // 8,
        )  # fmt: skip
        self._pairs_made = len(pi)
        found = detect_conflicts(
            world,
            horizon_s=th["horizon_s"],
            pairs=(pi, pj),
            max_pet_s=th["icw_max_pet_s"],
            touch_within_s=within,
        )
        out = []
        # FCW's verdict (rear-end, the hosted vehicle the follower, within FCW's TTC): the one a vehicle's FCW gives.
        for k in np.flatnonzero(fcw_rows(found, n, th)).tolist():
            i, j = int(found.i[k]), int(found.j[k])
            ttc = float(found.ttc_s[k])
            vid = vehicles[i].vehicle_id
            other = self._temp_id(int(senders[j - n])).hex()
            valid = th["warning_validity_s"]
            if not first_while_valid(self.warned_until, (vid, other), t, t + valid):
                continue
            out.append(
                advisory(
                    APP_BY_NAME["fcw"],
                    target_id=vid,
                    other_id=other,
                    source_id=vid,
                    t_s=t,
                    valid_s=valid,
                    ttc_s=ttc,
                    conflict_type=CONFLICT_NAME[ConflictType.REAR_END],
                )
            )
        return out
