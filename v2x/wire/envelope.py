"""The testbed envelope around every V2X message, and the identifiers derived from actor ids."""

from __future__ import annotations

import functools
import hashlib

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
