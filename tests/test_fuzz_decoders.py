"""Every decoder of v2x.wire, fuzzed (hypothesis): random bytes and structured messages with random field
values. A decoder returns a value or raises ValueError (receivers count it as out_of_range), never
anything else; parse_envelope returns the parts or None. The signed envelope's certificates, security
headers and credentials files: parsed or refused by reason, never raised."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from v2x.geodesy import LocalFrame
from v2x.wire import day1_pb2, day2_pb2, security_pb2, testbed_pb2
from v2x.wire.bsm import decode_bsm, decode_emergency_use, decode_event_flags
from v2x.wire.day2 import decode_clpmm, decode_psm, decode_rsc, decode_ssm, decode_vir
from v2x.wire.envelope import parse_envelope, parse_participant_key
from v2x.wire.map_spat import decode_map, decode_spat
from v2x.wire.rsi import decode_rsi
from v2x.wire.rsm import decode_rsm
from v2x.wire.security import REASONS, Verifier, authority_for, parse_certificate, read_credentials

FRAME = LocalFrame(31.0, 121.0, 4.0)
EPOCH = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
NOW = 12.3
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DECODERS: dict[str, tuple[type[Message], Callable[[Any], object]]] = {
    "bsm": (day1_pb2.BSM, lambda m: decode_bsm(m, now_s=NOW, frame=FRAME, epoch=EPOCH)),
    "bsm-flags": (day1_pb2.BSM, lambda m: (decode_event_flags(m), decode_emergency_use(m))),
    "rsm": (day1_pb2.RSM, lambda m: decode_rsm(m, now_s=NOW, frame=FRAME, epoch=EPOCH)),
    "map": (day1_pb2.MapData, lambda m: decode_map(m, frame=FRAME)),
    "spat": (day1_pb2.SPAT, lambda m: decode_spat(m, now_s=NOW, epoch=EPOCH)),
    "rsi": (day1_pb2.RSI, lambda m: decode_rsi(m, now_s=NOW, frame=FRAME, epoch=EPOCH)),
    # Day-2 (T/CSAE 157)
    "ssm": (day2_pb2.SSM, lambda m: decode_ssm(m, now_s=NOW, frame=FRAME, epoch=EPOCH)),
    "psm": (day2_pb2.PSM, lambda m: decode_psm(m, now_s=NOW, frame=FRAME, epoch=EPOCH)),
    "vir": (day2_pb2.VIR, lambda m: decode_vir(m, now_s=NOW, frame=FRAME, epoch=EPOCH)),
    "rsc": (day2_pb2.RSC, lambda m: decode_rsc(m, frame=FRAME)),
    "clpmm": (day2_pb2.CLPMM, decode_clpmm),
}

_INT_RANGE = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _scalar(f: FieldDescriptor) -> st.SearchStrategy[Any]:
    if f.type in _INT_RANGE:
        lo, hi = _INT_RANGE[f.type]
        # mostly near the interesting edges: 0, small, the element's limits, the type's limits
        edges = [v for v in (lo, hi, 0, 1, 255, 8191, 65535) if lo <= v <= hi]
        return st.one_of(st.integers(max(lo, -3), 300), st.integers(lo, hi), st.sampled_from(edges))
    if f.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=64 if f.type == FieldDescriptor.TYPE_DOUBLE else 32)
    if f.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if f.type == FieldDescriptor.TYPE_STRING:
        return st.text(max_size=12)
    if f.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=12)
    if f.type == FieldDescriptor.TYPE_ENUM:
        return st.integers(-2, 40)
    raise AssertionError(f.type)


@st.composite
def _message(draw: st.DrawFn, desc: Any, depth: int = 0) -> dict[str, Any]:
    """Field values for a message of ``desc`` (a dict for ``ParseDict``-free filling, see ``_fill``)."""
    out: dict[str, Any] = {}
    for f in desc.fields:
        if not draw(st.booleans()):
            continue
        n = draw(st.integers(0, 3)) if f.is_repeated else 1
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= 4:
                continue
            out[f.name] = [draw(_message(f.message_type, depth + 1)) for _ in range(n)]
        else:
            out[f.name] = [draw(_scalar(f)) for _ in range(n)]
    return out


def _fill(msg: Message, values: dict[str, Any]) -> None:
    for name, items in values.items():
        f = msg.DESCRIPTOR.fields_by_name[name]
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            target = getattr(msg, name)
            for item in items:
                key = item.get("key", [0])[0] if "key" in item else _default(f.message_type.fields_by_name["key"])
                value_f = f.message_type.fields_by_name["value"]
                if value_f.message_type is not None:
                    _fill(target[key], item.get("value", [{}])[0])
                else:
                    target[key] = item.get("value", [_default(value_f)])[0]
            continue
        if f.is_repeated:
            target = getattr(msg, name)
            for item in items:
                if f.type == FieldDescriptor.TYPE_MESSAGE:
                    _fill(target.add(), item)
                else:
                    target.append(item)
        elif f.type == FieldDescriptor.TYPE_MESSAGE:
            _fill(getattr(msg, name), items[0])
            getattr(msg, name).SetInParent()
        else:
            setattr(msg, name, items[0])


def _default(f: Any) -> Any:
    return "" if f.type == FieldDescriptor.TYPE_STRING else b"" if f.type == FieldDescriptor.TYPE_BYTES else 0


def _decodes_or_value_error(name: str, msg: Message) -> None:
    decode = DECODERS[name][1]
    with contextlib.suppress(ValueError):
        decode(msg)


@pytest.mark.parametrize("name", list(DECODERS))
@FUZZ
@given(data=st.data())
def test_structured_messages_decode_or_raise_value_error(name: str, data: st.DataObject) -> None:
    cls = DECODERS[name][0]
    values = data.draw(_message(cls.DESCRIPTOR))
    msg = cls()
    _fill(msg, values)
    _decodes_or_value_error(name, msg)


@pytest.mark.parametrize("name", list(DECODERS))
@FUZZ
@given(raw=st.binary(max_size=300))
def test_random_bytes_decode_or_raise_value_error(name: str, raw: bytes) -> None:
    cls = DECODERS[name][0]
    msg = cls()
    try:
        msg.ParseFromString(raw)
    except DecodeError:
        return  # not this message: the receiver counts it as malformed before any decoder
    _decodes_or_value_error(name, msg)


@FUZZ
@given(raw=st.binary(max_size=400))
def test_parse_envelope_returns_the_parts_or_none(raw: bytes) -> None:
    parsed = parse_envelope(raw)
    assert parsed is None or len(parsed) == 2


@FUZZ
@given(key=st.text(max_size=40))
def test_participant_keys_parse_or_none(key: str) -> None:
    parsed = parse_participant_key(key)
    assert parsed is None or isinstance(parsed[0], bytes)


# -- the signed envelope's decoders (v2x.wire.security) -------------------------------------------------
_CA = authority_for("fuzz", EPOCH, 30.0)
_VERIFIER = Verifier(_CA.root)
_LEAD = _CA.credentials("lead", run_id="fuzz", epoch=EPOCH, run_s=30.0, permissions=("bsm",))


@FUZZ
@given(data=st.data(), real_cert=st.booleans())
def test_structured_signed_envelopes_are_refused_by_reason(data: st.DataObject, real_cert: bool) -> None:
    """Random Envelopes with random security headers (optionally the lead's real certificate with a random
    signature, time and fields): the verifier names a reason, never raises, never accepts."""
    env = testbed_pb2.Envelope()
    _fill(env, data.draw(_message(testbed_pb2.Envelope.DESCRIPTOR)))
    if real_cert:
        env.security.certificate.CopyFrom(_LEAD.pseudonyms[0].certificate)
    got = _VERIFIER.check(env, data.draw(st.sampled_from(["bsm", "spat", "advisory", ""])))
    assert got in REASONS and got != "replayed"


@FUZZ
@given(raw=st.binary(max_size=400))
def test_random_bytes_as_certificates_and_credentials_parse_or_raise_value_error(raw: bytes) -> None:
    cert = security_pb2.Certificate()
    with contextlib.suppress(DecodeError, ValueError):
        cert.ParseFromString(raw)
        parse_certificate(cert)
    with contextlib.suppress(ValueError):
        read_credentials(raw)
    with contextlib.suppress(DecodeError):
        sec = security_pb2.SignedData.FromString(raw)
        assert _VERIFIER.certificate(sec) is None or sec.WhichOneof("signer") == "digest"
