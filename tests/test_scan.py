"""The columnar scan of BSM envelopes (``v2x.core.scan_messages`` with ``v2x.wire.scan.bsm_envelope``, the fleet
agent's hearing): for every input it takes, the values protobuf (upb) parses; everything else it leaves to
protobuf. Checked on structured random envelopes (hypothesis), on mutated ones (bytes flipped, inserted, cut),
on random bytes and on hand-made edge cases (overlong varints, values past 32 bits, wire types), interpreted
and compiled."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from v2x.core import _kernels, always_compiled, scan_messages
from v2x.geodesy import LocalFrame
from v2x.wire import day1_pb2, frame_pb2, scan, security_pb2, testbed_pb2
from v2x.wire.bsm import OwnState, _bsm_fields, encode_bsm
from v2x.wire.envelope import envelope_bytes, parse_envelope
from v2x.wire.scan import BSM_FIELDS, bsm_envelope

FRAME = LocalFrame(31.0, 121.0, 4.0)
EPOCH = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextlib.contextmanager
def _interpreted() -> Iterator[None]:
    yield


WAYS = {"interpreted": _interpreted, "compiled": always_compiled}


def _scan(raws: list[bytes], way: str = "interpreted") -> tuple[bytes, np.ndarray, np.ndarray]:
    layout = bsm_envelope()
    with WAYS[way]():
        joined, _, got, ok = scan_messages(raws, layout.kinds, layout.subs, layout.cols, layout.width)
    return joined, got, ok


def _agrees(raw: bytes, joined: bytes, row: np.ndarray, ok: bool) -> None:
    """What the scan says of ``raw`` is what protobuf parses (when the scan took it)."""
    parsed = parse_envelope(raw)
    if not ok:
        return
    assert parsed is not None, raw  # the scan never takes what protobuf refuses
    env, frame = parsed
    c = bsm_envelope().columns
    a, n = int(row[c["sender_id"]]), int(row[c["sender_id"] + 1])
    assert joined[a : a + n].decode() == env.sender_id
    is_bsm = frame.WhichOneof("msg") == "bsm"
    assert bool(row[c["frame.bsm"]]) == is_bsm
    bsm = frame.bsm
    assert tuple(int(row[c[p]]) for p in BSM_FIELDS) == _bsm_fields(bsm)
    assert int(row[c["frame.bsm.sec_mark"]]) == bsm.sec_mark
    assert int(row[c["frame.bsm.vehicle_class"]]) == bsm.vehicle_class
    a, n = int(row[c["frame.bsm.id"]]), int(row[c["frame.bsm.id"] + 1])
    assert joined[a : a + n] == bsm.id


def _check(raws: list[bytes]) -> np.ndarray:
    """Scan ``raws`` both ways, check both against protobuf and each other; the interpreted ``ok``."""
    oks = []
    for way in WAYS:
        _, got, ok = _scan(raws, way)
        starts = np.cumsum([0, *map(len, raws)])[:-1]
        for k, raw in enumerate(raws):
            row = got[k].copy()
            for col in _byte_columns():  # (offsets into the joined buffer: made relative to the envelope)
                row[col] -= starts[k] if ok[k] else 0
            _agrees(raw, raw, row, bool(ok[k]))
        oks.append(ok)
    assert (oks[0] == oks[1]).all()
    return oks[0]


def _byte_columns() -> list[int]:
    c = bsm_envelope().columns
    return [c["sender_id"], c["frame.bsm.id"]]


def _bsm(rng: np.random.Generator, k: int) -> bytes:
    own = OwnState(
        x=float(rng.normal(0, 300)),
        y=float(rng.normal(0, 300)),
        speed_mps=float(abs(rng.normal(10, 5))),
        heading_rad=float(rng.uniform(-4, 4)),
        accel_mps2=float(rng.normal(0, 3)),
        length_m=4.5,
        width_m=1.8,
        height_m=1.5,
        kind=["car", "truck", "bus", "emergency"][k % 4],
        sigma_major_m=[None, 0.3, 2.0][k % 3],
        sigma_minor_m=[None, 0.2, 1.0][k % 3],
        braking=bool(k % 2),
        flags=frozenset(["hazard_lights"] if k % 5 == 0 else []),
        turn_signal=["", "left", "right"][k % 3],
    )
    return encode_bsm(own, actor_id=f"bg-{k}", t_s=k * 0.1, msg_count=k, frame=FRAME, epoch=EPOCH).SerializeToString()


def _fleet_envelopes(n: int = 40) -> list[bytes]:
    rng = np.random.default_rng(11)
    frames = [_bsm(rng, k) for k in range(n)]
    return envelope_bytes(
        [f"bg-0-{k}" for k in range(n)], list(range(1, n + 1)), frames, tick=7, tx_time_us=700_000,
        link=testbed_pb2.LINK_PC5,
    )  # fmt: skip


def test_the_kernel_and_the_layout_use_the_same_codes() -> None:
    names = ("SCAN_UINT32", "SCAN_SINT32", "SCAN_VARINT", "SCAN_BYTES", "SCAN_ASCII", "SCAN_MESSAGE")
    assert [getattr(scan, n) for n in names] == [getattr(_kernels, n) for n in names]


@pytest.mark.parametrize("way", list(WAYS))
def test_the_fleets_and_the_story_cars_envelopes_are_all_taken_with_protobufs_values(way: str) -> None:
    raws = _fleet_envelopes()
    env = testbed_pb2.Envelope(sender_id="lead", seq=3, tick=7, tx_time_us=-5, link=testbed_pb2.LINK_PC5)
    env.frame = _bsm(np.random.default_rng(1), 3)
    env.security.certificate.body = b"\x01\x02"
    env.security.generation_time_us = 123
    env.security.signature = bytes(64)
    raws.append(env.SerializeToString())  # (signed: the header is stepped over)
    joined, got, ok = _scan(raws, way)
    assert ok.all()
    starts = np.cumsum([0, *map(len, raws)])[:-1]
    for k, raw in enumerate(raws):
        row = got[k].copy()
        for col in _byte_columns():
            row[col] -= starts[k]
        _agrees(raw, raw, row, True)
    assert joined == b"".join(raws)


def _set(msg: Message, draw: st.DrawFn, depth: int = 0) -> None:
    """Set a random choice of ``msg``'s fields to random values (repeated ones too, at times)."""
    for f in msg.DESCRIPTOR.fields:
        if not draw(st.booleans()):
            continue
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            if depth > 3:
                continue
            if f.is_repeated:
                for _ in range(draw(st.integers(0, 2))):
                    _set(getattr(msg, f.name).add(), draw, depth + 1)
            else:
                sub = getattr(msg, f.name)
                sub.SetInParent()
                _set(sub, draw, depth + 1)
            continue
        value = draw(_value(f))
        if f.is_repeated:
            getattr(msg, f.name).append(value)
        else:
            setattr(msg, f.name, value)


def _value(f: Any) -> st.SearchStrategy[object]:  # (a FieldDescriptor, of upb or not)
    bits = {
        FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
        FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
        FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
        FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
        FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
        FieldDescriptor.TYPE_ENUM: (-(2**31), 2**31 - 1),
    }
    if f.type in bits:
        lo, hi = bits[f.type]
        return st.one_of(st.integers(max(lo, -3), 300), st.integers(lo, hi), st.sampled_from([lo, hi, 0, 8191]))
    if f.type == FieldDescriptor.TYPE_STRING:
        return st.text(max_size=10)
    if f.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=10)
    if f.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if f.type == FieldDescriptor.TYPE_DOUBLE:
        return st.floats()
    raise AssertionError(f.type)


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    """An Envelope with random fields, mostly around a MessageFrame with a random BSM (at times another message,
    a security header, destinations, a path history)."""
    env = testbed_pb2.Envelope()
    _set(env, draw)
    env.ClearField("frame")
    frame = frame_pb2.MessageFrame()
    if draw(st.integers(0, 5)):
        frame.bsm.SetInParent()
        _set(frame.bsm, draw)
        if not draw(st.integers(0, 3)):
            frame.bsm.safety_ext.path_history.add().speed = 5
    elif draw(st.booleans()):
        frame.advisory.target_id = "x"
    env.frame = frame.SerializeToString()
    if not draw(st.integers(0, 3)):
        env.security.CopyFrom(security_pb2.SignedData(digest=b"12345678", signature=b"s"))
    return env.SerializeToString()


@FUZZ
@given(st.lists(envelopes(), min_size=1, max_size=6))
def test_random_envelopes_scan_to_what_protobuf_parses(raws: list[bytes]) -> None:
    ok = _check(raws)
    for raw, took in zip(raws, ok.tolist(), strict=True):
        env = testbed_pb2.Envelope.FromString(raw)
        frame = frame_pb2.MessageFrame.FromString(env.frame)
        plain = (
            not env.dest_ids
            and frame.WhichOneof("msg") == "bsm"
            and not frame.bsm.safety_ext.path_history
            and env.link >= 0
            and env.sender_id.isascii()
            and not (env.seq >> 63 or env.tick >> 63)
            and -(2**62) <= env.tx_time_us < 2**62
            and -(2**62) <= env.security.generation_time_us < 2**62
            and not env.seal  # (field 100: stripped by the world before anything scans an envelope; v2x.net.seal)
        )
        if plain:  # (what protobuf writes, in field order: all taken)
            assert took, raw


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A well-formed envelope (the fleet's) with a few bytes flipped, inserted, deleted or cut off."""
    raws = _fleet_envelopes(8)
    raw = bytearray(draw(st.sampled_from(raws)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(raw)))
        what = draw(st.sampled_from(["flip", "insert", "delete", "cut", "byte"]))
        if what == "flip" and at < len(raw):
            raw[at] ^= 1 << draw(st.integers(0, 7))
        elif what == "byte" and at < len(raw):
            raw[at] = draw(st.integers(0, 255))
        elif what == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=3))
        elif what == "delete" and at < len(raw):
            del raw[at]
        elif what == "cut":
            del raw[at:]
    return bytes(raw)


@FUZZ
@given(st.lists(mutated(), min_size=1, max_size=6))
def test_mutated_envelopes_scan_to_what_protobuf_parses_or_are_left_to_it(raws: list[bytes]) -> None:
    _check(raws)


@FUZZ
@given(st.lists(st.binary(max_size=60), min_size=1, max_size=6))
def test_random_bytes_are_left_to_protobuf_or_scan_as_it_parses(raws: list[bytes]) -> None:
    _check(raws)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    tag = number << 3 | wire
    return (bytes([tag]) if tag < 0x80 else bytes([tag & 0x7F | 0x80, tag >> 7])) + payload


def _len(payload: bytes) -> bytes:
    return bytes([len(payload)]) + payload


def _env(bsm: bytes, head: bytes = b"") -> bytes:
    return head + _field(7, 2, _len(_field(1, 2, _len(bsm))))


@pytest.mark.parametrize("way", list(WAYS))
def test_edge_cases(way: str) -> None:
    cases = {
        # An overlong varint (5 bytes for 3) is what protobuf reads too: taken.
        "overlong speed": (_env(_field(8, 0, b"\x83\x80\x80\x80\x00")), True),
        # A uint32 past 32 bits: protobuf keeps the low bits; left to it.
        "speed past 32 bits": (_env(_field(8, 0, b"\x80\x80\x80\x80\x10")), False),
        # The largest uint32 and a sint32 of -1 (zigzag 1), -2**31 (zigzag 2**32 - 1).
        "uint32 max": (_env(_field(8, 0, b"\xff\xff\xff\xff\x0f")), True),
        "sint32 -1": (_env(_field(4, 2, _len(_field(1, 0, b"\x01")))), True),
        "sint32 min": (_env(_field(4, 2, _len(_field(1, 0, b"\xff\xff\xff\xff\x0f")))), True),
        # A wire type other than the field's: protobuf keeps it as an unknown field; left to it.
        "wire type": (_env(_field(8, 2, _len(b"\x01"))), False),
        "fixed32": (_env(_field(8, 5, b"\x01\x00\x00\x00")), False),
        # The same field twice (the last wins in protobuf), fields out of order: left to it.
        "twice": (_env(_field(8, 0, b"\x01") + _field(8, 0, b"\x02")), False),
        "out of order": (_env(_field(9, 0, b"\x01") + _field(8, 0, b"\x02")), False),
        # A field number the layout has not (an unknown field, the path history), a zero tag: left to it.
        "unknown": (_env(_field(1, 0, b"\x01") + _field(17, 0, b"\x01")), False),
        "path history": (_env(_field(15, 2, _len(_field(2, 2, _len(b""))))), False),
        "zero tag": (_env(b"\x00\x01"), False),
        # A tag written longer than it needs: left to protobuf.
        "overlong tag": (_env(b"\xc0\x00\x01"), False),
        # Truncated: a varint, a length past the end; a 10-byte varint.
        "cut varint": (_env(_field(8, 0, b"\x80")), False),
        "length past end": (_field(7, 2, b"\x05\x0a\x01"), False),
        "ten bytes": (_field(2, 0, b"\xff" * 9 + b"\x01") + _env(b""), False),
        # A sender not ASCII (protobuf checks UTF-8), a non-BSM frame, an empty envelope, destinations.
        "utf-8 sender": (_field(1, 2, _len("é".encode())) + _env(b""), False),
        "ascii sender": (_field(1, 2, _len(b"bg-0-1")) + _env(b""), True),
        "advisory": (_field(7, 2, _len(_field(100, 2, b"\x00"))), False),
        "empty": (b"", True),
        "dest": (_field(6, 2, _len(b"x")) + _env(b""), False),
        # An emergency extension: its values are read like the others'.
        "emergency": (_env(_field(16, 2, _len(_field(1, 0, b"\x01") + _field(3, 0, b"\x02")))), True),
    }
    for name, (raw, want) in cases.items():
        joined, got, ok = _scan([raw], way)
        assert bool(ok[0]) == want, name
        _agrees(raw, joined, got[0], bool(ok[0]))


def test_a_layout_out_of_range_is_refused() -> None:
    kinds = np.array([[0, 1]], dtype=np.int8)
    with pytest.raises(ValueError, match="out of range"):
        scan_messages([b""], kinds, np.zeros((1, 2), dtype=np.int64), np.array([[-1, 1]]), 1)
    with pytest.raises(ValueError, match="out of range"):
        scan_messages([b""], np.array([[0, 6]], dtype=np.int8), np.array([[0, 3]]), np.array([[-1, -1]]), 1)


def test_the_bsm_fields_are_those_a_decode_checks() -> None:
    """``BSM_FIELDS`` names the values of ``_bsm_fields`` in its order."""
    bsm = day1_pb2.BSM()
    for k, path in enumerate(BSM_FIELDS):
        *outer, leaf = path.removeprefix("frame.bsm.").split(".")
        msg = bsm
        for name in outer:
            msg = getattr(msg, name)
        setattr(msg, leaf, k + 1)
    assert _bsm_fields(bsm) == tuple(range(1, len(BSM_FIELDS) + 1))
