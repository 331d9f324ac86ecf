"""The deliveries of a ``FleetInput`` (docs/PROTOCOL.md "Fleet bundles") as little-endian arrays: a fleet's
vehicles hear hundreds of envelopes each per tick, and arrays in ``bytes`` fields cost nothing to build
and to read with numpy, where repeated varints cost a Python object per number on either side."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from v2x.wire import testbed_pb2

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
    msg.delivery_counts = np.asarray(counts).astype(U32, copy=False).tobytes()
    index = U16 if len(msg.envelopes) <= 1 << 16 else U32  # the narrowest that holds every index
    msg.delivery_envelopes = np.asarray(envelope).astype(index, copy=False).tobytes()
    msg.delivery_offsets_us = np.asarray(offsets_us).astype(I32, copy=False).tobytes()


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
