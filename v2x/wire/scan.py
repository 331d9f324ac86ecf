"""Layouts of protobuf messages for the core's columnar scan (``v2x.core.scan_messages``), built from the
generated descriptors, and the layouts of a BSM's envelope as the fleet agent hears thousands a tick and as the
world takes thousands a tick from the fleets.

A layout lists, per message on a path from the outermost (``""``), the fields it may have; a message with any
other field, a repeated or out-of-order field, a value out of its field's range or bytes that do not parse is
left to protobuf (the scan marks it, see ``v2x.core._kernels.scan_fields``). Repeated fields are never in a
layout (the scan takes a field at most once), nor any kind but the integers, bytes, strings and messages below.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from numpy.typing import NDArray

from v2x.wire import day1_pb2, frame_pb2, testbed_pb2

# What a field is to the scan: the codes of ``v2x.core._kernels`` (SCAN_*; tested equal in tests/test_scan.py;
# a copy on purpose: wire is below core, and a kernel's constants stay in its file for numba's cache). A 64-bit
# integer or an enum is a SCAN_VARINT: a column keeps its varint as it is (below 2**63: a longer one leaves the
# layout), for the caller to read (a sint64's is zigzag-encoded; an enum's may differ from protobuf's int32 for a
# value of 2**31 and more: compare it only with a value below).
SCAN_UINT32, SCAN_SINT32, SCAN_VARINT, SCAN_BYTES, SCAN_ASCII, SCAN_MESSAGE = 1, 2, 3, 4, 5, 6
_KIND_OF_TYPE = {
    FieldDescriptor.TYPE_UINT32: SCAN_UINT32,
    FieldDescriptor.TYPE_SINT32: SCAN_SINT32,
    FieldDescriptor.TYPE_UINT64: SCAN_VARINT,
    FieldDescriptor.TYPE_SINT64: SCAN_VARINT,
    FieldDescriptor.TYPE_ENUM: SCAN_VARINT,
    FieldDescriptor.TYPE_BYTES: SCAN_BYTES,
    FieldDescriptor.TYPE_STRING: SCAN_ASCII,
    FieldDescriptor.TYPE_MESSAGE: SCAN_MESSAGE,
}


@dataclass(frozen=True)
class Layout:
    """The tables ``scan_messages`` takes (a row per message of the layout, a column per field number) and the
    column of each field kept, by its path (``"frame.bsm.pos.lat"``; a bytes field's start there, its length in
    the next column; a message's column is 1 when present)."""

    kinds: NDArray[np.int8]
    subs: NDArray[np.int64]
    cols: NDArray[np.int64]
    columns: Mapping[str, int]
    width: int


def layout(
    root: Descriptor, fields: Mapping[str, Sequence[str]], keep: Sequence[str], *,
    nested: Mapping[str, Descriptor] | None = None,
) -> Layout:  # fmt: skip
    """The layout of ``root`` with, for each message path in ``fields`` (``""``: ``root``), those fields (by name;
    a message field's own fields are listed under its path, and it must be), keeping the values of the paths in
    ``keep``. ``nested``: bytes fields that hold a serialised message (the Envelope's frame), scanned as that
    message."""
    nested = dict(nested or {})
    rows: list[tuple[str, Descriptor]] = [("", root)]
    entries: list[tuple[int, int, int, int, int]] = []  # (row, field number, kind, row of its message, column)
    columns: dict[str, int] = {}
    width = 0
    k = 0
    while k < len(rows):
        path, desc = rows[k]
        for name in fields[path]:
            f = desc.fields_by_name[name]
            if f.is_repeated:
                raise ValueError(f"{path}.{name}: a repeated field cannot be scanned")
            sub = f"{path}.{name}" if path else name
            kind = SCAN_MESSAGE if sub in nested else _KIND_OF_TYPE[f.type]
            row = -1
            if kind == SCAN_MESSAGE:
                row = len(rows)
                inner = nested.get(sub) or f.message_type
                assert inner is not None  # (a message field)
                rows.append((sub, inner))
            col = -1
            if sub in keep:
                col = columns[sub] = width
                width += 2 if kind in (SCAN_BYTES, SCAN_ASCII) else 1
            entries.append((k, f.number, kind, row, col))
        k += 1
    if len(rows) != len(fields) or set(keep) - set(columns):
        raise ValueError("every message path listed must be reached, and every kept path")
    shape = (len(rows), max(number for _, number, _, _, _ in entries) + 1)
    kinds = np.zeros(shape, dtype=np.int8)
    subs = np.zeros(shape, dtype=np.int64)
    cols = np.full(shape, -1, dtype=np.int64)
    for row, number, kind, sub_row, col in entries:
        kinds[row, number], subs[row, number], cols[row, number] = kind, max(sub_row, 0), col
    return Layout(kinds, subs, cols, columns, width)


# The fields of a BSM a receiver decodes (``bsm._bsm_fields``' order), as paths in the envelope.
BSM_FIELDS = tuple(
    f"frame.bsm.{p}"
    for p in (
        "pos.lat", "pos.lon", "speed", "heading", "accel_set.long", "pos.elevation", "size.length", "size.width",
        "accuracy.semi_major", "safety_ext.events", "safety_ext.lights", "brakes.brake_pedal", "brakes.abs",
        "brakes.traction", "brakes.scs", "emergency_ext.response_type", "emergency_ext.siren_use",
        "emergency_ext.lights_use",
    )
)  # fmt: skip


def _bsm_envelope_fields(secured: bool) -> dict[str, Sequence[str]]:
    """The message paths and fields of a BSM's envelope (with the security header, or without it)."""
    bsm = day1_pb2.BSM.DESCRIPTOR
    fields: dict[str, Sequence[str]] = {
        "": ["sender_id", "seq", "tick", "tx_time_us", "link", "frame", *(["security"] if secured else [])],
        "frame": ["bsm"],
        "frame.bsm": [f.name for f in bsm.fields],
        "frame.bsm.safety_ext": ["events", "path_prediction_radius", "path_prediction_confidence", "lights"],
    }
    if secured:
        fields["security"] = ["certificate", "digest", "generation_time_us", "signature"]
        fields["security.certificate"] = ["body", "signature"]
    for name in ("pos", "accuracy", "pos_confidence", "accel_set", "brakes", "size", "emergency_ext"):
        inner = bsm.fields_by_name[name].message_type
        assert inner is not None
        fields[f"frame.bsm.{name}"] = [f.name for f in inner.fields]  # (every field of theirs: none repeated)
    return fields


@functools.cache
def bsm_envelope() -> Layout:
    """The layout of an Envelope (no destinations; a security header or none: the signature is not checked here)
    around a MessageFrame with a BSM (no path history), keeping the sender, whether there is a BSM, its id,
    secMark and vehicle class and ``BSM_FIELDS``."""
    keep = ["sender_id", "frame.bsm", "frame.bsm.id", "frame.bsm.sec_mark", "frame.bsm.vehicle_class", *BSM_FIELDS]
    return layout(
        testbed_pb2.Envelope.DESCRIPTOR, _bsm_envelope_fields(True), keep,
        nested={"frame": frame_pb2.MessageFrame.DESCRIPTOR},
    )  # fmt: skip


@functools.cache
def bsm_envelope_unsigned() -> Layout:
    """The layout of an Envelope without a security header or destinations around a MessageFrame with a BSM (no
    path history), keeping what the world checks of a fleet's envelope (``v2x.sim.inbound``): the sender, seq,
    tick, transmission time and link (the 64-bit ones and the enum as their varints: seq and tick as they are,
    the time zigzag-encoded; a varint over 9 bytes leaves the layout), whether there is a BSM, and its id."""
    keep = ["sender_id", "seq", "tick", "tx_time_us", "link", "frame.bsm", "frame.bsm.id"]
    return layout(
        testbed_pb2.Envelope.DESCRIPTOR, _bsm_envelope_fields(False), keep,
        nested={"frame": frame_pb2.MessageFrame.DESCRIPTOR},
    )  # fmt: skip
