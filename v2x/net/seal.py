"""Seals on the messages between a run's world and the parties the run itself started.

On an open broker (a run without ``--secure``) anyone may publish on any of a run's topics. The parties the
run starts itself, its built-in agents and its fleets (in its process or in worker processes it spawned),
need not take that: the run makes a random key, which only they hold (in memory; a worker process gets it
with its job, never on a command line or on the broker), and each message between them and the world carries
a seal under it. A message to or from one of them without a valid seal is refused as ``forged`` and counted:
a forged TickInput had made an agent act on it (or, a chain of them, deaf to the world's, and the run
stalled), a forged FleetInput steered a fleet, a forged Ack or envelope spoke for a built-in actor (the
attack reviews; docs/SECURITY.md "Sealed messages").

The seal is RFC 8439's ChaCha20-Poly1305 used as a MAC: an empty plaintext and the message's bytes as the
associated data, under a key per topic (HMAC-SHA256 of the run's key and the topic, so that a message sealed
for one topic is refused on another) and a random 96-bit nonce per message. Poly1305 reads a 4 MB fleet
input in well under a millisecond, where HMAC-SHA256 took some 3 ms. The nonce and the tag are appended to
the message as protobuf field 100 (``seal``, declared in each of those messages), so the bytes still parse
as the message; the receiver checks and strips them and handles the sender's bytes exactly as before (the
outcome of a run does not depend on the seals). Outside stacks do not hold the key: their messages are as open
as before, and a run that needs them authenticated uses ``--secure``.

Fleet workers started on other machines (``v2x worker``) get the run's key from the world when both hold a
**worker key** (``--seal-key FILE``: 32 random octets in hex, made by the run, copied to the workers' machines
by whoever starts them, owner-only). The worker seals its ``FleetHello`` under the worker key and puts a fresh
random nonce in it; the world answers each sealed hello with a ``FleetInput`` whose ``admit`` is the run's
key encrypted under the worker key, bound to that nonce (and to the run and fleet by the topic). Only a
holder of the worker key can read it, and an admission from an earlier run (or for another worker's nonce)
does not open, so a recorded one cannot hand a worker an old run's key, whose sealed inputs it could then
replay. From then on the worker is sealed as a fleet the run started itself. See docs/SECURITY.md "Sealed
messages".
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from v2x.files import not_secret, replace_whole

SEAL_FIELD = 100
_NONCE = 12
_TAG = 16
# field 100, wire type 2 (length-delimited), 28 octets: the nonce and the tag
_TRAILER = bytes([(SEAL_FIELD << 3 | 2) & 0x7F | 0x80, (SEAL_FIELD << 3 | 2) >> 7, _NONCE + _TAG])
SEAL_BYTES = len(_TRAILER) + _NONCE + _TAG
KEY_BYTES = 32
NONCE_BYTES = 16  # a worker's nonce in its FleetHello
_ADMIT = b"#admit"  # the admission's key is another than the topic's seal key (one key, one use)


class RunSeal:
    """The seals of one run under ``key`` (a new random one by default)."""

    __slots__ = ("_aead", "_key")

    def __init__(self, key: bytes | None = None) -> None:
        if key is not None and len(key) != KEY_BYTES:
            raise ValueError(f"a run's seal key has {KEY_BYTES} octets, not {len(key)}")
        self._key = key if key is not None else os.urandom(KEY_BYTES)
        self._aead: dict[str, ChaCha20Poly1305] = {}  # per topic (a run has a few per party)

    @property
    def key(self) -> bytes:
        """The key, for a worker process's job (``v2x.run.workers``): never to a log or the broker."""
        return self._key

    def __repr__(self) -> str:
        return "RunSeal(<key>)"

    def _for(self, topic: str) -> ChaCha20Poly1305:
        aead = self._aead.get(topic)
        if aead is None:
            aead = self._aead[topic] = ChaCha20Poly1305(hmac.digest(self._key, topic.encode(), "sha256"))
        return aead

    def seal(self, topic: str, payload: bytes) -> bytes:
        """``payload`` with its seal for ``topic`` appended (a new nonce each time)."""
        nonce = os.urandom(_NONCE)
        return payload + _TRAILER + nonce + self._for(topic).encrypt(nonce, b"", payload)

    def open(self, topic: str, payload: bytes) -> bytes | None:
        """The sender's bytes of a ``payload`` sealed for ``topic`` under this run's key, else None (no seal,
        a seal for another topic or run, or bytes changed after sealing)."""
        if len(payload) < SEAL_BYTES or payload[-SEAL_BYTES : -_NONCE - _TAG] != _TRAILER:
            return None
        body = payload[:-SEAL_BYTES]
        nonce = payload[-_NONCE - _TAG : -_TAG]
        try:
            self._for(topic).decrypt(nonce, payload[-_TAG:], body)
        except InvalidTag:
            return None
        return body

    def wrap(self, topic: str, secret: bytes, context: bytes) -> bytes:
        """``secret`` encrypted for ``topic`` under this key and bound to ``context`` (a worker's nonce, and
        whatever else must not change): the nonce and the ciphertext with its tag."""
        nonce = os.urandom(_NONCE)
        return nonce + ChaCha20Poly1305(self._subkey(topic)).encrypt(nonce, secret, context)

    def unwrap(self, topic: str, blob: bytes, context: bytes) -> bytes | None:
        """The secret ``wrap`` gave for ``topic`` and ``context``, else None (another key, topic or context,
        or bytes changed)."""
        if len(blob) < _NONCE + _TAG:
            return None
        try:
            return ChaCha20Poly1305(self._subkey(topic)).decrypt(blob[:_NONCE], blob[_NONCE:], context)
        except InvalidTag:
            return None

    def _subkey(self, topic: str) -> bytes:
        return hmac.digest(self._key, topic.encode() + _ADMIT, "sha256")


class KeyFileError(ValueError):
    """A worker key file that cannot be used (the message names the file and why)."""


def read_key_file(path: Path) -> bytes:
    """The worker key in ``path`` (64 hex digits; a newline after them is allowed): ``KeyFileError`` when it
    is missing, not a regular file, readable or writable by others than its owner (as ssh refuses a private
    key), owned by another user, or not a key."""
    try:
        why = not_secret(path)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the worker key: {exc.strerror}") from None
    if why is not None:
        raise KeyFileError(why)
    try:
        with path.open("rb") as f:
            data = f.read(4 * KEY_BYTES)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the worker key: {exc.strerror}") from None
    text = data.removesuffix(b"\n")
    if len(text) != 2 * KEY_BYTES or not all(c in b"0123456789abcdefABCDEF" for c in text):
        raise KeyFileError(f"{path}: not a worker key (expected {2 * KEY_BYTES} hex digits)")
    return bytes.fromhex(text.decode())


def key_file(path: Path) -> tuple[bytes, bool]:
    """The worker key in ``path``, made (owner-only) if there is no file there: the key, and whether it was
    made. ``KeyFileError`` as ``read_key_file``, or when it cannot be written."""
    if not path.exists() and not path.is_symlink():
        key = os.urandom(KEY_BYTES)
        try:
            replace_whole(path, key.hex().encode() + b"\n", 0o600)
        except OSError as exc:
            raise KeyFileError(f"{path}: cannot write a new worker key: {exc.strerror}") from None
        return key, True
    return read_key_file(path), False
