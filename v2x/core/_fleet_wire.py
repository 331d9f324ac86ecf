"""The fleet agent's transmit on arrays (``v2x.agents.fleet``, issue #10): its vehicles' numbers read out of the
``FleetInput``'s bytes in one compiled pass (``_kernels.fleet_vehicle_fields``) instead of a field at a time
from each ``FleetVehicle``, and their BSMs' envelopes written in another (``_kernels.bsm_envelopes``) instead of
a protobuf message refreshed and serialised per vehicle. The pieces of a BSM that stay the same tick after tick
come from the templates (``v2x.wire.bsm_bytes``); the bytes are protobuf's (tests/wire/test_bsm_bytes.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from v2x.core._jit import compiled, compiles, kernel
from v2x.core._kernels import bsm_envelopes, fleet_vehicle_fields
from v2x.units import MSG_CNT_MODULO
from v2x.wire import testbed_pb2
from v2x.wire.bsm import BRAKE_OFF, BRAKE_ON
from v2x.wire.bsm_bytes import META, BsmStatics, zigzag

__all__ = ["VEHICLE_NUMBERS", "fleet_vehicle_numbers", "refreshed_envelopes", "writes_from_arrays"]

#: ``fleet_vehicle_numbers``' columns: FleetVehicle's double fields (3 to 17, in field order), then ``wrecked``.
VEHICLE_NUMBERS = (*(f.name for f in testbed_pb2.FleetVehicle.DESCRIPTOR.fields if 3 <= f.number <= 17), "wrecked")
_MOST_DYNAMIC_BYTES = 16 * 11  # per envelope, beyond its static pieces: 16 keys and varints of at most 10 bytes


def writes_from_arrays(n: int) -> bool:
    """Whether :func:`refreshed_envelopes` is the way to write ``n`` vehicles' envelopes: when it runs compiled
    (more than ``SMALL_WORLD`` vehicles, or ``always_compiled``). Interpreted, it writes a few dozen envelopes
    slower than protobuf refreshes and serialises their BSMs (about 2.3 against 1.5 ms a tick for 27 vehicles),
    so a small fleet does that instead (the same bytes)."""
    return compiles(n)


def refreshed_envelopes(
    statics: Sequence[BsmStatics], seqs: NDArray[np.int64], msg_counts: NDArray[np.int64], sec_mark: int,
    motion: NDArray[np.int64], accel_mps2: NDArray[np.float64], events: NDArray[np.int64], *, tick: int,
    tx_time_us: int, link: testbed_pb2.LinkKind.ValueType,
) -> list[bytes]:  # fmt: skip
    """Per vehicle ``k``: the envelope ``envelope_bytes`` writes around the frame of its BSM template (the one
    ``statics[k]`` was cut from, ``bsm_statics``) after ``refresh_bsm`` with ``motion[:, k]`` (its ``wire``: the
    integers of ``motion_columns``), ``accel_mps2[k]``, ``msg_counts[k]`` and ``sec_mark``, its event flags then set
    to ``events[k]`` (``refresh_bsm``'s hard-braking flag and any others), sent with ``seqs[k]`` (0 <= seq < 2**63)
    in ``tick`` at ``tx_time_us`` on ``link``: the same bytes."""
    n = len(statics)
    if n == 0:
        return []
    blobs, metas = zip(*statics, strict=True)
    blob = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    meta = np.frombuffer(b"".join(metas), dtype=np.int32).reshape(n, META)
    middle = np.frombuffer(
        testbed_pb2.Envelope(tick=tick, tx_time_us=tx_time_us, link=link).SerializeToString(), dtype=np.uint8
    )
    values = np.empty((n, 10), dtype=np.int64)
    values[:, 0] = seqs
    values[:, 1] = msg_counts % MSG_CNT_MODULO  # (units.msg_cnt)
    values[:, 2] = sec_mark
    values[:, 3] = zigzag(motion[0])
    values[:, 4] = zigzag(motion[1])
    values[:, 5] = motion[2]
    values[:, 6] = motion[3]
    values[:, 7] = zigzag(motion[4])
    values[:, 8] = np.where(accel_mps2 < 0, BRAKE_ON, BRAKE_OFF)
    values[:, 9] = events
    if int(values.min()) < 0:
        raise ValueError("a value to write as a varint is negative")
    out = np.empty(len(blob) + n * (len(middle) + _MOST_DYNAMIC_BYTES), dtype=np.uint8)
    ends = np.empty(n, dtype=np.int64)
    kernel(bsm_envelopes, n)(blob, meta, values, middle, out, ends)
    data = out[: int(ends[-1])].tobytes()
    bounds = [0, *ends.tolist()]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def fleet_vehicle_numbers(raw: bytes, n: int) -> NDArray[np.float64] | None:
    """The numbers of the ``n`` vehicles of the FleetInput whose bytes are ``raw`` (as received: any field order,
    a field given twice read as protobuf reads it), a row per vehicle and a column per :data:`VEHICLE_NUMBERS`
    field (``wrecked`` as 0.0 or 1.0, an absent field 0.0), in one compiled pass over the bytes. None for a fleet
    of up to ``SMALL_WORLD`` vehicles (the interpreter would walk every envelope's bytes: reading the fields costs
    less) or when the bytes are not as expected (not ``n`` vehicles, a group): the caller reads the fields."""
    if not compiles(n):
        return None
    out = np.empty((n, len(VEHICLE_NUMBERS)), dtype=np.float64)
    if compiled(fleet_vehicle_fields)(np.frombuffer(raw, dtype=np.uint8), out.view(np.uint64)) != n:
        return None
    return out
