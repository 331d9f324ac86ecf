"""The deliveries of a ``FleetInput`` (docs/PROTOCOL.md "Fleet bundles") as little-endian arrays: a fleet's
vehicles hear hundreds of envelopes each per tick, and arrays in ``bytes`` fields cost nothing to build
and to read with numpy, where repeated varints cost a Python object per number on either side."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from v2x.wire import testbed_pb2
from v2x.wire.envelope import varint

U16 = np.dtype("<u2")
U32 = np.dtype("<u4")
I32 = np.dtype("<i4")


class FleetDeliveries:
    """Per delivery: the vehicle's index (into ``FleetInput.vehicles``), the envelope's index (into
    ``FleetInput.envelopes``) and the delivery time in us. ``envelope`` is the array as it came (uint16 or
    uint32); ``vehicle`` and ``rx_time_us`` are made when first asked for (a fleet that needs the vehicles
    of a few deliveries only asks ``vehicle_of``)."""

    def __init__(
        self,
        counts: NDArray[np.integer[Any]],
        envelope: NDArray[np.integer[Any]],
        offsets_us: NDArray[np.integer[Any]],
        time_us: int = 0,
    ) -> None:
        self.counts = counts
        self.envelope = envelope
        self.offsets_us = offsets_us
        self.time_us = time_us
        self._ends: NDArray[np.int64] | None = None
        self._vehicle: NDArray[np.int64] | None = None

    def __len__(self) -> int:
        return len(self.envelope)

    @property
    def vehicle(self) -> NDArray[np.int64]:
        if self._vehicle is None:
            self._vehicle = np.repeat(np.arange(len(self.counts), dtype=np.int64), self.counts)
        return self._vehicle

    @property
    def rx_time_us(self) -> NDArray[np.int64]:
        out: NDArray[np.int64] = self.offsets_us.astype(np.int64) + self.time_us
        return out

    def vehicle_of(self, k: NDArray[np.integer[Any]]) -> NDArray[np.int64]:
        """The vehicle index of the deliveries ``k``."""
        if self._vehicle is not None:
            picked: NDArray[np.int64] = self._vehicle[k]
            return picked
        if self._ends is None:
            self._ends = np.cumsum(self.counts, dtype=np.int64)
        return np.searchsorted(self._ends, k, side="right").astype(np.int64)

    @classmethod
    def empty(cls) -> FleetDeliveries:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))


def pack_deliveries(
    msg: testbed_pb2.FleetInput,
    vehicle: NDArray[np.integer[Any]],
    envelope: NDArray[np.integer[Any]],
    rx_time_us: NDArray[np.integer[Any]],
) -> None:
    """Put the deliveries into ``msg`` (whose ``vehicles`` and ``time_us`` are set); ``vehicle`` ascending."""
    n = len(msg.vehicles)
    counts = np.bincount(np.asarray(vehicle, dtype=np.int64), minlength=n) if len(vehicle) else np.zeros(n, np.int64)
    put_deliveries(msg, counts, envelope, np.asarray(rx_time_us, dtype=np.int64) - msg.time_us)


def put_deliveries(
    msg: testbed_pb2.FleetInput,
    counts: NDArray[np.integer[Any]],
    envelope: NDArray[np.integer[Any]],
    offsets_us: NDArray[np.integer[Any] | np.floating[Any]],
) -> None:
    """``pack_deliveries`` from the deliveries per vehicle (``counts``, one per ``msg.vehicles``; the
    deliveries by vehicle) and the delivery times less ``msg.time_us`` (whole numbers of us); arrays already
    of the wire's types are not copied before ``tobytes``."""
    wire_counts, wire_envelopes, wire_offsets = _delivery_arrays(msg, counts, envelope, offsets_us)
    msg.delivery_counts = wire_counts.tobytes()
    msg.delivery_envelopes = wire_envelopes.tobytes()
    msg.delivery_offsets_us = wire_offsets.tobytes()


def _delivery_arrays(
    msg: testbed_pb2.FleetInput,
    counts: NDArray[np.integer[Any]],
    envelope: NDArray[np.integer[Any]],
    offsets_us: NDArray[np.integer[Any] | np.floating[Any]],
) -> tuple[NDArray[np.integer[Any]], NDArray[np.integer[Any]], NDArray[np.integer[Any]]]:
    """The three delivery arrays in the wire's types (contiguous; not copied when already so): counts
    uint32, envelope indices uint16 when ``msg`` has at most 65,536 envelopes (the narrowest that holds
    every index) else uint32, offsets int32."""
    index = U16 if len(msg.envelopes) <= 1 << 16 else U32
    return (
        np.ascontiguousarray(counts, dtype=U32),
        np.ascontiguousarray(envelope, dtype=index),
        np.ascontiguousarray(offsets_us, dtype=I32),
    )


_DELIVERY_FIELDS = (12, 13, 14)  # FleetInput.delivery_counts, delivery_envelopes, delivery_offsets_us


def serialize_with_deliveries(
    msg: testbed_pb2.FleetInput,
    counts: NDArray[np.integer[Any]],
    envelope: NDArray[np.integer[Any]],
    offsets_us: NDArray[np.integer[Any] | np.floating[Any]],
) -> bytes:
    """The bytes of ``msg`` after ``put_deliveries(msg, counts, envelope, offsets_us)``, without putting the
    arrays into the message: ``msg`` (no deliveries in it, no ``dismissed``: the fields after them) is
    serialised and the three fields are written after it from the arrays' buffers, the bytes protobuf
    writes (known fields in field-number order; an empty bytes field is left out), with one copy of the
    arrays instead of three (``tobytes``, the field, the serialisation): some 2.6 MB a tick at 2,000
    vehicles."""
    if msg.delivery_counts or msg.delivery_envelopes or msg.delivery_offsets_us or msg.dismissed:
        raise ValueError("serialize_with_deliveries takes a FleetInput without deliveries or dismissed")
    arrays = _delivery_arrays(msg, counts, envelope, offsets_us)
    parts: list[bytes | memoryview] = [msg.SerializeToString()]
    for field, array in zip(_DELIVERY_FIELDS, arrays, strict=True):
        if array.nbytes:
            parts += [varint((field << 3) | 2) + varint(array.nbytes), array.data.cast("B")]
    return b"".join(parts)


# -- FleetInput.vehicles as wire bytes --------------------------------------------------------------------
# A FleetVehicle is two strings (vehicle_id = 1, kind = 2), eleven doubles (fields 3 to 13), in a run whose
# flows have a positioning profile four more (fields 14 to 17: the reading's error and accuracy), and
# ``wrecked`` (field 18) once the vehicle is a wreck. The world builds every vehicle's doubles at once with
# numpy (each a varint key and 8 little-endian bytes) and puts the entries into the message with one
# ``MergeFromString``: the message then holds exactly what field-by-field ``vehicles.add(...)`` gives (so it
# serialises to the same bytes), at a fraction of the Python calls.
VEHICLE_DOUBLES = (
    "x_m", "y_m", "vx_mps", "vy_mps", "ax_mps2", "ay_mps2", "heading_rad", "speed_mps", "accel_mps2", "length_m",
    "width_m",
)  # fmt: skip
POSITIONING_DOUBLES = ("east_error_m", "north_error_m", "sigma_major_m", "sigma_minor_m")
_VEHICLES_KEY = (6 << 3) | 2  # FleetInput.vehicles, length-delimited
_WRECKED_KEY = (18 << 3) | 0  # FleetVehicle.wrecked, varint


def _double_row(names: Sequence[str]) -> tuple[np.dtype[np.void], list[int]]:
    """The structured dtype of a vehicle's doubles ``names`` (FleetVehicle fields, in field order) on the wire,
    each a varint key (one or two bytes, as a little-endian integer) and 8 bytes; and the keys' values."""
    desc = testbed_pb2.FleetVehicle.DESCRIPTOR.fields_by_name
    fields: list[tuple[str, str]] = []
    keys: list[int] = []
    for k, name in enumerate(names):
        key = varint((desc[name].number << 3) | 1)  # wire type 1: 64-bit
        fields += [(f"key{k}", f"<u{len(key)}"), (f"v{k}", "<f8")]
        keys.append(int.from_bytes(key, "little"))
    return np.dtype(fields), keys


_ROWS = {False: _double_row(VEHICLE_DOUBLES), True: _double_row(VEHICLE_DOUBLES + POSITIONING_DOUBLES)}


def body_size(*, positioning: bool) -> int:
    """The bytes of one vehicle's doubles (:func:`vehicle_bodies`)."""
    return _ROWS[positioning][0].itemsize


def _string_field(field: int, text: str) -> bytes:
    raw = text.encode()
    return varint((field << 3) | 2) + varint(len(raw)) + raw


def vehicle_head(vehicle_id: str, kind: str, *, positioning: bool = False, wrecked: bool = False) -> bytes:
    """The start of a ``FleetInput.vehicles`` entry for this vehicle: the entry's key and length, the vehicle's
    two strings and ``wrecked`` when set; :func:`vehicle_bodies` (with the same ``positioning``) gives the rest."""
    fixed = _string_field(1, vehicle_id) + _string_field(2, kind)
    if wrecked:
        fixed += varint(_WRECKED_KEY) + b"\x01"
    return varint(_VEHICLES_KEY) + varint(len(fixed) + body_size(positioning=positioning)) + fixed


def vehicle_bodies(columns: Sequence[NDArray[np.floating[Any]]]) -> bytes:
    """The doubles of every vehicle (``columns``: one array per ``VEHICLE_DOUBLES`` field, in that order, then
    one per ``POSITIONING_DOUBLES`` field in a run with positioning), as ``body_size`` wire bytes per vehicle."""
    row, keys = _ROWS[len(columns) > len(VEHICLE_DOUBLES)]
    if len(columns) != len(keys):
        raise ValueError(f"{len(columns)} columns: {len(VEHICLE_DOUBLES)} or {len(keys)} expected")
    rows = np.empty(len(columns[0]), dtype=row)
    for k, (key, col) in enumerate(zip(keys, columns, strict=True)):
        rows[f"key{k}"] = key
        rows[f"v{k}"] = col
    return rows.tobytes()


def add_vehicles(
    msg: testbed_pb2.FleetInput,
    heads: Sequence[bytes],
    bodies: bytes,
    which: Iterable[int],
    *,
    positioning: bool = False,
) -> None:
    """Append to ``msg.vehicles`` the vehicles ``which`` (indices into ``heads``, from :func:`vehicle_head`,
    and into ``bodies``, from :func:`vehicle_bodies`), in that order."""
    size = body_size(positioning=positioning)
    parts: list[bytes] = []
    for k in which:
        parts.append(heads[k])
        parts.append(bodies[k * size : (k + 1) * size])
    msg.MergeFromString(b"".join(parts))


def unpack_deliveries(msg: testbed_pb2.FleetInput) -> FleetDeliveries | None:
    """The deliveries of ``msg``; None when its arrays do not fit together (a count per vehicle, as many
    envelope indices and offsets as the counts add up to, every envelope index within ``envelopes``). The
    indices are uint16 when there are at most 65,536 envelopes, else uint32."""
    raw_counts, raw_env, raw_off = msg.delivery_counts, msg.delivery_envelopes, msg.delivery_offsets_us
    if len(raw_counts) != 4 * len(msg.vehicles) or len(raw_off) % 4:
        return None
    counts = np.frombuffer(raw_counts, dtype=U32).astype(np.int64)
    total = len(raw_off) // 4
    index = U16 if len(msg.envelopes) <= 1 << 16 else U32
    if int(counts.sum()) != total or len(raw_env) != index.itemsize * total:
        return None
    envelope: NDArray[np.unsignedinteger[Any]] = np.frombuffer(raw_env, dtype=index)
    if len(envelope) and int(envelope.max()) >= len(msg.envelopes):
        return None
    return FleetDeliveries(counts, envelope, np.frombuffer(raw_off, dtype=I32), msg.time_us)
