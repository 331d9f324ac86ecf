"""The pieces of a refreshed BSM's envelope that stay the same tick after tick, cut from its template, for writing
a fleet's envelopes from arrays (``v2x.core.refreshed_envelopes``, issue #10) with the bytes ``refresh_bsm`` +
``SerializeToString`` + ``envelope_bytes`` give, without a protobuf message per vehicle.

A BSM refreshed from a template (``v2x.wire.bsm.refresh_bsm``) differs from tick to tick only in the fields the
refresh sets: the counter, the secMark, the position's latitude and longitude, the speed, the heading, the
longitudinal acceleration, the brake pedal and the event flags (and the lengths of the nested messages that hold
them). Protobuf (upb) writes a message's fields in field-number order, each as its key and value, a scalar at its
default (0) left out, a nested message that is set as its key, its length and its own fields (even when they
are all left out); so the envelope of a refreshed BSM is a fixed sequence of pieces: (s) bytes that only the
template and the sender decide, (d) a key and a varint written from the arrays, (m) the envelope's fields that
the tick decides::

    s0  Envelope.sender_id (1)                  d  Envelope.seq (2)
    m   Envelope.tick, tx_time_us, link (3-5)   d  Envelope.frame (7): its length
    d   MessageFrame.bsm (1): its length        d  BSM.msg_cnt (1)
    s1  BSM.id (2)                              d  BSM.sec_mark (3)
    d   BSM.pos (4): its length                 d  Position3D.lat, lon (1, 2), zigzag
    s2  Position3D.elevation (3); BSM.accuracy, pos_confidence, trans_state (5-7)
    d   BSM.speed, heading (8, 9)               s3 BSM.angle (10)
    d   BSM.accel_set (11): its length          d  AccelerationSet4Way.long (1), zigzag
    s4  AccelerationSet4Way.lat, vert, yaw (2-4)
    d   BSM.brakes (12): its length             d  BrakeSystemStatus.brake_pedal (1)
    s5  BrakeSystemStatus's other fields (2-7); BSM.size, vehicle_class (13, 14)
    d   BSM.safety_ext (15): its length         d  VehicleSafetyExtensions.events (1)
    s6  VehicleSafetyExtensions's other fields (2-5); BSM.emergency_ext (16)

:func:`bsm_statics` cuts the static pieces s0-s6 out of a template, once per template; the compiled writer
(``v2x.core._kernels.bsm_envelopes``) writes the rest. tests/wire/test_bsm_bytes.py compares the bytes with
protobuf's on random vehicles.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from v2x.wire import day1_pb2, frame_pb2
from v2x.wire.envelope import sender_field

__all__ = ["META", "BsmStatics", "bsm_statics", "static_rest", "with_sender", "zigzag"]

META = 10  # int32 values in BsmStatics.meta


class BsmStatics(NamedTuple):
    """What a vehicle's refreshed BSM envelopes repeat tick after tick (:func:`bsm_statics`): ``blob``, the static
    pieces s0-s6 one after the other, and ``meta``, :data:`META` int32 values (native byte order): each static
    piece's length, then how many bytes of s2, s5 and s6 belong to the nested message before them (the position's
    elevation, the brake status's fields after the pedal, the safety extension's fields after the events)."""

    blob: bytes
    meta: bytes


def zigzag(v: NDArray[np.int64]) -> NDArray[np.int64]:
    """Protobuf's zigzag encoding of sint32 values (given as int64: the same integers as sint64's)."""
    out: NDArray[np.int64] = (v << 1) ^ (v >> 63)
    return out


def _only(msg: Any, numbers: set[int]) -> bytes:
    """The bytes protobuf writes for the fields ``numbers`` of ``msg`` (the others cleared in a copy)."""
    part = type(msg)()
    part.CopyFrom(msg)
    for field in part.DESCRIPTOR.fields:
        if field.number not in numbers:
            part.ClearField(field.name)
    out: bytes = part.SerializeToString()
    return out


def bsm_statics(sender_id: str, msg: frame_pb2.MessageFrame) -> BsmStatics | None:
    """The static pieces of the envelopes ``sender_id`` sends with ``msg`` refreshed (``refresh_bsm``); None when
    ``msg`` is not a BSM with the nested messages a refresh sets fields in (position, acceleration, brakes, safety
    extension: ``encode_bsm`` always sets them). The pieces after the BSM's id are cut once per distinct template
    (a fleet's vehicles share a few: the same kind, size, accuracy and flags)."""
    rest = static_rest(msg)
    return None if rest is None else with_sender(sender_id, msg.bsm.id, rest)


def static_rest(msg: frame_pb2.MessageFrame) -> tuple[bytes, bytes] | None:
    """The pieces of :func:`bsm_statics` after the BSM's id (s2-s6) and their part of ``meta``: the same for
    every vehicle whose template differs from ``msg`` only in its id. None as for :func:`bsm_statics`."""
    if msg.WhichOneof("msg") != "bsm":
        return None
    bsm = msg.bsm
    if not all(bsm.HasField(f) for f in ("pos", "accel_set", "brakes", "safety_ext")):
        return None
    rest = day1_pb2.BSM()
    rest.CopyFrom(bsm)
    for name in ("msg_cnt", "id", "sec_mark", "speed", "heading"):  # (what a refresh sets, and the id)
        rest.ClearField(name)
    rest.pos.ClearField("lat")  # (a nested message stays set when its fields are cleared)
    rest.pos.ClearField("lon")
    rest.accel_set.ClearField("long")
    rest.brakes.ClearField("brake_pedal")
    rest.safety_ext.ClearField("events")
    return _pieces(rest.SerializeToString())


def with_sender(sender_id: str, temp_id: bytes, rest: tuple[bytes, bytes]) -> BsmStatics:
    """:func:`bsm_statics` of the sender ``sender_id`` whose BSMs have the id ``temp_id`` and whose template's
    pieces after the id are ``rest`` (:func:`static_rest`)."""
    blob, meta = rest
    head = (sender_field(sender_id), day1_pb2.BSM(id=temp_id).SerializeToString())
    lengths = np.array([len(p) for p in head], dtype=np.int32).tobytes()
    return BsmStatics(head[0] + head[1] + blob, lengths + meta)


@functools.lru_cache(maxsize=1024)
def _pieces(rest: bytes) -> tuple[bytes, bytes]:
    """The static pieces s2-s6 of a BSM whose bytes without the id and the fields a refresh sets are ``rest``, one
    after the other, and the rest of BsmStatics.meta (their lengths, then the parts of nested messages)."""
    bsm = day1_pb2.BSM.FromString(rest)
    elevation = _only(bsm.pos, {3})
    brakes_rest = _only(bsm.brakes, {2, 3, 4, 5, 6, 7})
    ext_rest = _only(bsm.safety_ext, {2, 3, 4, 5})
    pieces = (
        elevation + _only(bsm, {5, 6, 7}),
        _only(bsm, {10}),
        _only(bsm.accel_set, {2, 3, 4}),
        brakes_rest + _only(bsm, {13, 14}),
        ext_rest + _only(bsm, {16}),
    )
    meta = [len(p) for p in pieces] + [len(elevation), len(brakes_rest), len(ext_rest)]
    return b"".join(pieces), np.array(meta, dtype=np.int32).tobytes()
