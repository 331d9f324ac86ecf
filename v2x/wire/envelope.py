"""The testbed envelope around every V2X message, and the identifiers derived from actor ids."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

from google.protobuf.message import DecodeError

from v2x.wire import frame_pb2, testbed_pb2


def parse_envelope(raw: bytes) -> tuple[testbed_pb2.Envelope, frame_pb2.MessageFrame] | None:
    """An Envelope and the MessageFrame inside it, or None if either is not valid protobuf. (Whether the
    frame holds a known message type, ``frame.WhichOneof("msg")``, is the caller's next check.)"""
    env = testbed_pb2.Envelope()
    frame = frame_pb2.MessageFrame()
    try:
        env.ParseFromString(raw)
        frame.ParseFromString(env.frame)
    except DecodeError:
        return None
    return env, frame


def varint(n: int) -> bytes:
    """Protobuf's base-128 varint of ``n`` (0 <= n < 2**64): the one encoder of the Python wire code."""
    out = bytearray()
    while n > 0x7F:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out)


_VARINTS = tuple(varint(n) for n in range(1 << 14))  # the one- and two-byte varints, ready made


@functools.lru_cache(maxsize=1 << 14)
def sender_field(sender_id: str) -> bytes:
    """The bytes of an envelope's ``sender_id`` field (its key, length and text; none for "")."""
    return testbed_pb2.Envelope(sender_id=sender_id).SerializeToString()


def envelope_bytes(
    sender_ids: Sequence[str], seqs: Sequence[int], frames: Sequence[bytes], *, tick: int, tx_time_us: int,
    link: testbed_pb2.LinkKind.ValueType,
) -> list[bytes]:  # fmt: skip
    """``Envelope(sender_id=s, seq=q, tick=tick, tx_time_us=tx_time_us, link=link, frame=f).SerializeToString()``
    for each (s, q, f), byte for byte, without building the messages (a fleet sends a thousand a tick):
    protobuf writes the fields set in field-number order, each as its tag and value, and leaves out those at
    their default (tested against protobuf). No destinations, no security header; 0 <= q < 2**64."""
    middle = testbed_pb2.Envelope(tick=tick, tx_time_us=tx_time_us, link=link).SerializeToString()
    small = _VARINTS
    out = []
    for sender, seq, frame in zip(sender_ids, seqs, frames, strict=True):
        size = len(frame)
        out.append(
            b"".join(
                (
                    sender_field(sender),
                    (b"\x10" + (small[seq] if seq < 1 << 14 else varint(seq))) if seq else b"",
                    middle,
                    (b"\x3a" + (small[size] if size < 1 << 14 else varint(size)) + frame) if size else b"",
                )
            )
        )
    return out


@functools.lru_cache(maxsize=1 << 14)  # a pure function, asked for every BSM sent and heard (thousands of senders)
def temporary_id(actor_id: str) -> bytes:
    """The 8-octet BSM id of an actor: the first 8 bytes of SHA-256 of its actor id (stable per run)."""
    return hashlib.sha256(actor_id.encode()).digest()[:8]


def participant_key(rsm_id: bytes, ptc_id: int) -> str:
    """How a participant heard of in an RSM is named: the RSM's id (hex) and its ptcId."""
    return f"{rsm_id.hex()}/{ptc_id}"


def parse_participant_key(key: str) -> tuple[bytes, int] | None:
    """Inverse of :func:`participant_key`; None if ``key`` is not one."""
    head, sep, tail = key.partition("/")
    if not sep or not tail.isdigit():
        return None
    try:
        return bytes.fromhex(head), int(tail)
    except ValueError:
        return None
