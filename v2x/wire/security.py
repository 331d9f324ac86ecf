"""Signed envelopes after IEEE 1609.2 / YD/T 3957, compact (``proto/v2x/wire/security.proto``).

A run's certificate authority (:class:`Authority`, its root self-signed) issues each equipped actor a pool
of short-lived pseudonym certificates; the actor's :class:`Signer` signs every Envelope with the pseudonym
of its transmission time. A receiver checks an envelope in two steps:

* :meth:`Verifier.check` - what is the same for every receiver of the same bytes: signed at all
  (``unsigned``), a certificate issued by the run's CA (``unknown_cert``), valid at the generation time
  and allowed to sign this message kind (``expired``, ``no_permission``), the signature (``bad_signature``).
  Certificates that chain to the root are verified once and cached by HashedId8.
* :meth:`Freshness.check` - per receiver, against its own clock: generated no earlier than ``MAX_AGE_S``
  and no later than ``MAX_AHEAD_S`` of now (``expired``), not seen before (``replayed``).

The signature covers the to-be-signed octets of :func:`to_be_signed`: every Envelope field (sender, seq,
tick, transmission time, link, destinations, frame bytes), the generation time and the signer's HashedId8.
Only ECDSA P-256 with SHA-256 is implemented; SM2/SM3 is reserved (docs/SECURITY.md says why).
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from google.protobuf.message import DecodeError

from v2x.units import s_of, us_of
from v2x.wire import security_pb2, testbed_pb2
from v2x.wire.protocol import MAY_SEND, ROAD_USER_SENDS, may_send

MAX_AGE_S = 2.0  # a message generated longer ago than this (receiver's clock) is stale: ``expired``
MAX_AHEAD_S = 0.5  # ... and one generated further in the future than this (clock skew): ``expired``
PSEUDONYM_CHANGE_S = 10.0  # an actor signs with pseudonym k from simulation time k x this on
REASONS = ("unsigned", "unknown_cert", "expired", "no_permission", "bad_signature", "replayed")
TBS_TAG = b"v2x-testbed signed envelope 1\x00"
_CURVE = ec.SECP256R1()
_ECDSA = ec.ECDSA(hashes.SHA256())
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # the order of P-256
_UNIX = datetime(1970, 1, 1, tzinfo=UTC)


def permissions_for(kind: str) -> tuple[str, ...]:
    """The message kinds an actor of ``kind`` may sign (its certificates' app permissions): what it may send at
    all, ``v2x.wire.protocol.may_send`` (the one table the world and every receiver check, signed run or not)."""
    return may_send(kind)


def unix_us(epoch: datetime) -> int:
    """``epoch`` (timezone-aware) in Unix microseconds, exactly."""
    return (epoch - _UNIX) // timedelta(microseconds=1)


def hashed_id8(certificate: bytes) -> bytes:
    """The HashedId8 of a serialised certificate: the last 8 octets of its SHA-256 (1609.2 6.4.3)."""
    return hashlib.sha256(certificate).digest()[-8:]


def _raw_signature(der: bytes) -> bytes:
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _verify(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    if len(signature) != 64:
        return False
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if not (0 < r < _N and 0 < s < _N):
        return False
    try:
        key.verify(encode_dss_signature(r, s), data, _ECDSA)
    except InvalidSignature:
        return False
    return True


def replay_key(signature: bytes) -> bytes:
    """What a receiver remembers a verified signature (r || s) by: r || min(s, n - s). ECDSA signatures are
    malleable: (r, n - s) verifies wherever (r, s) does, so a copy with s negated was a new message to a memory
    keyed by the signature's bytes (attack review 3). Other signatures of the same octets need the key."""
    s = int.from_bytes(signature[32:], "big")
    return signature[:32] + min(s, _N - s).to_bytes(32, "big")


def private_scalar(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_numbers().private_value.to_bytes(32, "big")


def private_key(scalar: bytes) -> ec.EllipticCurvePrivateKey:
    """The P-256 private key of a 32-octet scalar (``ValueError`` if it is not one)."""
    value = int.from_bytes(scalar, "big")
    if len(scalar) != 32 or not 0 < value < _N:
        raise ValueError("a P-256 private key is a scalar of 32 octets in 1..n-1")
    return ec.derive_private_key(value, _CURVE)


def sign_bytes(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA P-256 / SHA-256 over ``data``, as r || s (64 octets)."""
    return _raw_signature(key.sign(data, _ECDSA))


def to_be_signed(env: testbed_pb2.Envelope, generation_time_us: int, signer: bytes) -> bytes:
    """The octets an envelope's signature covers (docs/PROTOCOL.md "Signed envelopes"): a tag, the
    signer's HashedId8, the generation time, seq, tick, transmission time, link, and the sender, each
    destination and the frame, each as a 4-octet big-endian length and its octets (UTF-8 for text)."""

    def chunk(data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + data

    parts = [
        TBS_TAG,
        signer,
        struct.pack(">qQQqI", generation_time_us, env.seq, env.tick, env.tx_time_us, env.link),
        chunk(env.sender_id.encode()),
        struct.pack(">I", len(env.dest_ids)),
        *(chunk(d.encode()) for d in env.dest_ids),
        chunk(env.frame),
    ]
    return b"".join(parts)


# -- certificates -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cert:
    """A parsed certificate: its octets, HashedId8, body and verification key."""

    raw: bytes
    digest: bytes
    body: security_pb2.CertificateBody
    signature: bytes
    key: ec.EllipticCurvePublicKey

    @property
    def start_us(self) -> int:
        return self.body.start_s * 1_000_000

    @property
    def end_us(self) -> int:
        return (self.body.start_s + self.body.duration_s) * 1_000_000

    def valid_at(self, t_us: int) -> bool:
        return self.start_us <= t_us < self.end_us


def parse_certificate(cert: security_pb2.Certificate) -> Cert:
    """A :class:`Cert` of a certificate message (``ValueError`` naming what is wrong: its body does not
    parse, another algorithm, a key that is not a P-256 point). Its signature is not checked here."""
    body = security_pb2.CertificateBody()
    try:
        body.ParseFromString(cert.body)
    except DecodeError:
        raise ValueError("certificate body does not parse") from None
    if body.algorithm != security_pb2.SIG_ECDSA_P256_SHA256:
        raise ValueError(f"certificate algorithm {body.algorithm} is not ECDSA P-256")
    if len(body.verification_key) != 65:
        raise ValueError("verification_key is not an uncompressed P-256 point")
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, body.verification_key)
    except ValueError:
        raise ValueError("verification_key is not a point on P-256") from None
    raw = cert.SerializeToString()
    return Cert(raw, hashed_id8(raw), body, cert.signature, key)


def make_certificate(
    issuer_key: ec.EllipticCurvePrivateKey,
    subject: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey,
    *,
    issuer: bytes,
    start_s: int,
    duration_s: int,
    permissions: Iterable[str],
    name: str = "",
    ca: bool = False,
) -> security_pb2.Certificate:
    """A certificate for ``subject``'s public key, signed by ``issuer_key`` (``issuer``: the HashedId8 of
    the issuer's certificate, empty for a self-signed root)."""
    public = subject.public_key() if isinstance(subject, ec.EllipticCurvePrivateKey) else subject
    body = security_pb2.CertificateBody(
        name=name,
        issuer=issuer,
        start_s=start_s,
        duration_s=duration_s,
        permissions=sorted(permissions),
        algorithm=security_pb2.SIG_ECDSA_P256_SHA256,
        verification_key=public.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint),
        ca=ca,
    )
    raw_body = body.SerializeToString(deterministic=True)
    return security_pb2.Certificate(body=raw_body, signature=sign_bytes(issuer_key, raw_body))


class Authority:
    """A run's certificate authority: a self-signed root valid over ``[start_s, start_s + duration_s)``
    (Unix seconds), which issues pseudonym certificates."""

    def __init__(self, name: str, *, start_s: int, duration_s: int) -> None:
        self.key = ec.generate_private_key(_CURVE)
        self.root = make_certificate(
            self.key,
            self.key,
            issuer=b"",
            start_s=start_s,
            duration_s=duration_s,
            permissions=sorted({p for ps in (*MAY_SEND.values(), ROAD_USER_SENDS) for p in ps}),
            name=name,
            ca=True,
        )
        self.digest = hashed_id8(self.root.SerializeToString())

    def issue(
        self, subject: ec.EllipticCurvePrivateKey, *, start_s: int, duration_s: int, permissions: Iterable[str]
    ) -> security_pb2.Certificate:
        return make_certificate(
            self.key, subject, issuer=self.digest, start_s=start_s, duration_s=duration_s, permissions=permissions
        )

    def credentials(
        self,
        actor_id: str,
        *,
        run_id: str,
        epoch: datetime,
        run_s: float,
        permissions: Sequence[str],
        change_every_s: float = PSEUDONYM_CHANGE_S,
    ) -> security_pb2.Credentials:
        """An actor's pool of pseudonyms for a run of ``run_s`` seconds from ``epoch``: pseudonym k is used
        from simulation time k x ``change_every_s`` on, and is valid from the whole second at or before
        then until the whole second after the next change (a second of overlap either side)."""
        if not change_every_s > 0:
            raise ValueError("change_every_s must be > 0")
        t0_us = unix_us(epoch)
        creds = security_pb2.Credentials(
            actor_id=actor_id, run_id=run_id, root=self.root, change_every_s=change_every_s
        )
        for k in range(int(run_s // change_every_s) + 1):
            start_s = (t0_us + us_of(k * change_every_s)) // 1_000_000
            end_s = -(-(t0_us + us_of((k + 1) * change_every_s)) // 1_000_000) + 1
            key = ec.generate_private_key(_CURVE)
            cert = self.issue(key, start_s=start_s, duration_s=end_s - start_s, permissions=permissions)
            creds.pseudonyms.add(certificate=cert, private_key=private_scalar(key))
        return creds


def authority_for(run_id: str, epoch: datetime, run_s: float) -> Authority:
    """A run's CA, valid from a minute before ``epoch`` to a minute after the run's end."""
    start_s = unix_us(epoch) // 1_000_000 - 60
    return Authority(f"v2x-testbed CA {run_id}", start_s=start_s, duration_s=math.ceil(run_s) + 121)


# -- signing --------------------------------------------------------------------------------------------
class Signer:
    """One actor's signing side, from its :class:`Credentials` and the run's epoch."""

    def __init__(self, creds: security_pb2.Credentials, epoch: datetime) -> None:
        if not creds.pseudonyms:
            raise ValueError(f"credentials of {creds.actor_id!r} hold no pseudonym")
        if not creds.change_every_s > 0:
            raise ValueError(f"credentials of {creds.actor_id!r}: change_every_s must be > 0")
        self.actor_id = creds.actor_id
        self.change_every_s = creds.change_every_s
        self.t0_us = unix_us(epoch)
        self._pool = [
            (p.certificate, hashed_id8(p.certificate.SerializeToString()), private_key(p.private_key))
            for p in creds.pseudonyms
        ]

    @classmethod
    def from_bytes(cls, credentials: bytes, epoch: datetime) -> Signer:
        """The signer of serialised :class:`Credentials` (a fleet's: in its worker's job, or in the world's
        admission of a worker started on its own); ``ValueError`` (or a ``DecodeError``) if they are none."""
        return cls(security_pb2.Credentials.FromString(credentials), epoch)

    def pseudonym(self, t_s: float) -> int:
        """The index of the pseudonym used at simulation time ``t_s`` (the last one after the pool ends)."""
        k = math.floor(t_s / self.change_every_s + 1e-9)
        return min(max(k, 0), len(self._pool) - 1)

    def sign(self, env: testbed_pb2.Envelope) -> None:
        """Put ``env``'s security header in place: the full certificate of the pseudonym of its
        transmission time, the generation time (epoch + ``tx_time_us``) and the signature."""
        cert, digest, key = self._pool[self.pseudonym(s_of(env.tx_time_us))]
        gen_us = self.t0_us + env.tx_time_us
        sec = env.security
        sec.Clear()
        sec.certificate.CopyFrom(cert)
        sec.generation_time_us = gen_us
        sec.signature = sign_bytes(key, to_be_signed(env, gen_us, digest))


# -- verifying ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verified:
    """An envelope whose signature, certificate and permission are good: who signed it, when, and the key a
    receiver's replay check remembers it by."""

    signer: bytes  # HashedId8 of the certificate
    generation_time_us: int
    replay_key: bytes


class Verifier:
    """The checks every receiver of the same bytes makes alike, against the run's root certificate. Keeps
    the certificates that chained to the root (by HashedId8), so that each is verified once."""

    MAX_CERTS = 100_000  # certificates remembered (a run issues a few per actor)

    def __init__(self, root: security_pb2.Certificate) -> None:
        self.root = parse_certificate(root)
        if self.root.body.issuer or not self.root.body.ca:
            raise ValueError("the trust anchor is not a self-signed CA certificate")
        if not _verify(self.root.key, self.root.signature, root.body):
            raise ValueError("the trust anchor's self-signature does not verify")
        self.certs: dict[bytes, Cert] = {}

    def certificate(self, sec: security_pb2.SignedData) -> Cert | None:
        """The signer's certificate, issued by the root (checked once, then cached), or None."""
        which = sec.WhichOneof("signer")
        if which == "digest":
            return self.certs.get(sec.digest)
        if which != "certificate":
            return None
        raw = sec.certificate.SerializeToString()
        known = self.certs.get(hashed_id8(raw))
        if known is not None and known.raw == raw:
            return known
        try:
            cert = parse_certificate(sec.certificate)
        except ValueError:
            return None
        if cert.body.issuer != self.root.digest or cert.body.ca:
            return None
        if not _verify(self.root.key, cert.signature, sec.certificate.body):
            return None
        if len(self.certs) < self.MAX_CERTS:
            self.certs[cert.digest] = cert
        return cert

    def check(self, env: testbed_pb2.Envelope, kind: str) -> Verified | str:
        """``env`` (holding a frame of ``kind``) verified, or the reason it is rejected: ``unsigned``,
        ``unknown_cert`` (not issued by the run's CA, or a digest this receiver has not verified),
        ``expired`` (generated outside its certificate's validity), ``no_permission`` (the certificate
        may not sign ``kind``), ``bad_signature``."""
        if not env.HasField("security"):
            return "unsigned"
        sec = env.security
        cert = self.certificate(sec)
        if cert is None:
            return "unknown_cert"
        gen = sec.generation_time_us
        if not cert.valid_at(gen):
            return "expired"
        if kind not in cert.body.permissions:
            return "no_permission"
        if not _verify(cert.key, sec.signature, to_be_signed(env, gen, cert.digest)):
            return "bad_signature"
        return Verified(cert.digest, gen, replay_key(sec.signature))


@dataclass
class Freshness:
    """One receiver's clock check and replay memory: a message is accepted once, and only within
    ``MAX_AGE_S`` before and ``MAX_AHEAD_S`` after the receiver's now. A replay older than the window is
    ``expired``; one inside it is in the memory: ``replayed``."""

    max_age_us: int = us_of(MAX_AGE_S)
    max_ahead_us: int = us_of(MAX_AHEAD_S)
    seen: dict[bytes, int] = field(default_factory=dict)  # replay key -> generation time
    _pruned_at: int = -(2**63)

    def check(self, verified: Verified, now_us: int) -> str:
        """``expired``, ``replayed``, or "" (accepted, and remembered)."""
        gen = verified.generation_time_us
        if now_us - self._pruned_at > self.max_age_us:  # forget what is too old to be accepted anyway
            horizon = now_us - self.max_age_us
            self.seen = {k: g for k, g in self.seen.items() if g >= horizon}
            self._pruned_at = now_us
        if gen < now_us - self.max_age_us or gen > now_us + self.max_ahead_us:
            return "expired"
        if verified.replay_key in self.seen:
            return "replayed"
        self.seen[verified.replay_key] = gen
        return ""


@dataclass
class EnvelopeSecurity:
    """What a secure run hands a receiver (the world's inbox, an agent host): the verifier and the epoch
    (simulation time 0), from which the receiver's clock is read."""

    verifier: Verifier
    epoch_us: int

    @classmethod
    def of(cls, root: security_pb2.Certificate, epoch: datetime) -> EnvelopeSecurity:
        return cls(Verifier(root), unix_us(epoch))


def read_credentials(data: bytes) -> security_pb2.Credentials:
    """A credentials file's content (``ValueError`` if it is not one)."""
    creds = security_pb2.Credentials()
    try:
        creds.ParseFromString(data)
    except DecodeError:
        raise ValueError("not a credentials file (does not parse)") from None
    if not creds.actor_id or not creds.pseudonyms or not creds.HasField("root"):
        raise ValueError("not a credentials file (no actor, root or pseudonyms)")
    return creds
