"""Messages of one known protobuf layout read into columns, in one compiled pass (``scan_fields``): for a
receiver that hears thousands of messages of one kind a tick (the fleet agent's BSM envelopes,
``v2x.agents.fleet``) and would otherwise build a message object per message and read its fields one by one.

The layout (which fields each message has, of which kind, in which column) is the caller's (``v2x.wire.scan``
builds one from the generated protobuf descriptors). A message the scan does not take exactly as laid out is
marked not ok, for the caller to parse as before: the scan only says what protobuf would say for the messages
it accepts (tested against protobuf on random and mutated bytes).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from v2x.core._jit import SMALL_WORLD, kernel
from v2x.core._kernels import (
    SCAN_ASCII,
    SCAN_BYTES,
    SCAN_MESSAGE,
    SCAN_SINT32,
    SCAN_UINT32,
    SCAN_VARINT,
    scan_fields,
)

__all__ = [
    "SCAN_ASCII",
    "SCAN_AT_LEAST",
    "SCAN_BYTES",
    "SCAN_MESSAGE",
    "SCAN_SINT32",
    "SCAN_UINT32",
    "SCAN_VARINT",
    "scan_messages",
]

# From this many messages on a receiver reads a batch with ``scan_messages``; fewer it parses one by one with
# protobuf (the kernels run interpreted for a small world: no faster than protobuf; the same values either way).
SCAN_AT_LEAST = SMALL_WORLD + 1


def scan_messages(
    messages: Sequence[bytes], kinds: NDArray[np.int8], subs: NDArray[np.int64], cols: NDArray[np.int64], width: int
) -> tuple[bytes, NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """The messages laid out as ``kinds``/``subs``/``cols`` say (see ``scan_fields``), in columns: the buffer
    they were joined into (the columns of bytes fields give their start in it), where each starts in it, a row of
    ``width`` columns per message (zeros: protobuf's defaults) and whether the scan took it (False: parse it as
    before; its row holds anything)."""
    if not (kinds.shape == subs.shape == cols.shape and kinds.ndim == 2 and kinds.shape[0] >= 1):
        raise ValueError("a layout's tables must have one shape, a row per message")
    # (The kernel does not check its indices: every one is checked here.)
    spans = np.where((kinds == SCAN_BYTES) | (kinds == SCAN_ASCII), 2, 1)
    used = (kinds > 0) & (cols >= 0)
    if bool((cols[used] + spans[used] > width).any()) or bool(
        ((kinds == SCAN_MESSAGE) & ((subs < 0) | (subs >= len(kinds)))).any()
    ):
        raise ValueError("a layout whose columns or messages are out of range")
    kinds = np.ascontiguousarray(kinds, dtype=np.int8)
    subs, cols = np.ascontiguousarray(subs, dtype=np.int64), np.ascontiguousarray(cols, dtype=np.int64)
    joined = b"".join(messages)
    sizes = np.fromiter(map(len, messages), dtype=np.int64, count=len(messages))
    ends = np.cumsum(sizes)
    starts = ends - sizes
    out = np.zeros((len(messages), width), dtype=np.int64)
    ok = np.zeros(len(messages), dtype=np.bool_)
    if len(messages):
        buf = np.frombuffer(joined, dtype=np.uint8)
        kernel(scan_fields, len(messages))(buf, starts, ends, kinds, subs, cols, out, ok)
    return joined, starts, out, ok
