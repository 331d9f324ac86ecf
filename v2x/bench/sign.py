"""``v2x bench sign``: what signed envelopes cost a receiver, on one core, against baselines measured in the
same run.

Workload: one BSM envelope as a built-in vehicle sends it in a secure run (``v2x run --secure``): the BSM
encoded from SI, in an Envelope signed with a pseudonym certificate of a per-run CA
(``v2x.wire.security``), the full certificate attached. Timed, each on one core in one thread, in
alternating rounds (the best round of each counts, so that a busy machine slows a figure down, never up):

* ``decode``: what every receiver pays anyway, parsing the envelope and decoding the BSM to SI (the
  baseline);
* ``verify``: parsing the envelope and ``Verifier.check`` with the signer's certificate already verified
  and cached (one ECDSA P-256 verification), as a receiver does for every message after a sender's first;
* ``verify_cold``: the same with a fresh verifier each time (the certificate's CA signature too: two ECDSA
  verifications), as for a sender's first message;
* ``sign``: ``Signer.sign`` of the envelope (one ECDSA P-256 signature).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

import cryptography

from v2x.argtypes import EXIT_BAD_INPUT, EXIT_OK
from v2x.geodesy import LocalFrame
from v2x.wire import testbed_pb2
from v2x.wire.bsm import OwnState, decode_bsm, encode_bsm
from v2x.wire.envelope import parse_envelope
from v2x.wire.security import Signer, Verified, Verifier, authority_for, permissions_for

EPOCH = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
FRAME = LocalFrame(31.2, 121.5, 4.0)
ROUNDS = 3


def workload() -> tuple[bytes, Signer, testbed_pb2.Envelope, Verifier, Callable[[], Verifier]]:
    """A signed BSM envelope (its bytes), its signer and unsigned envelope, a warm verifier and a maker of
    cold ones."""
    ca = authority_for("bench", EPOCH, 30.0)
    creds = ca.credentials("car1", run_id="bench", epoch=EPOCH, run_s=30.0, permissions=permissions_for("car"))
    signer = Signer(creds, EPOCH)
    own = OwnState(
        x=120.0,
        y=-3.5,
        speed_mps=16.7,
        heading_rad=0.0,
        accel_mps2=-1.0,
        length_m=5.0,
        width_m=2.0,
        height_m=1.6,
        kind="car",
        sigma_major_m=0.3,
        sigma_minor_m=0.3,
        braking=True,
    )
    frame = encode_bsm(own, actor_id="car1", t_s=5.0, msg_count=50, frame=FRAME, epoch=EPOCH)
    env = testbed_pb2.Envelope(
        sender_id="car1",
        seq=51,
        tick=50,
        tx_time_us=5_000_000,
        link=testbed_pb2.LINK_PC5,
        frame=frame.SerializeToString(),
    )
    signed = testbed_pb2.Envelope()
    signed.CopyFrom(env)
    signer.sign(signed)
    warm = Verifier(ca.root)
    return signed.SerializeToString(), signer, env, warm, lambda: Verifier(ca.root)


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls of ``fn`` per second over at least ``seconds`` (batches grow until they last 10 ms)."""
    batch, done, elapsed = 1, 0, 0.0
    while elapsed < seconds:
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        dt = time.perf_counter() - t0
        done += batch
        elapsed += dt
        if dt < 0.01:
            batch *= 2
    return done / elapsed


def measure(seconds: float) -> dict[str, Any]:
    raw, signer, env, warm, cold = workload()

    def decode() -> object:
        parsed = parse_envelope(raw)
        assert parsed is not None
        return decode_bsm(parsed[1].bsm, now_s=5.02, frame=FRAME, epoch=EPOCH)

    def verify_with(verifier_of: Callable[[], Verifier]) -> Callable[[], object]:
        def run() -> object:
            parsed = parse_envelope(raw)
            assert parsed is not None
            verified = verifier_of().check(parsed[0], "bsm")
            assert isinstance(verified, Verified), verified
            return verified

        return run

    def sign() -> object:
        signer.sign(env)
        return env

    jobs: dict[str, Callable[[], object]] = {
        "decode": decode,
        "verify": verify_with(lambda: warm),
        "verify_cold": verify_with(cold),
        "sign": sign,
    }
    best = dict.fromkeys(jobs, 0.0)
    for _ in range(ROUNDS):
        for name, fn in jobs.items():
            best[name] = max(best[name], rate(fn, seconds / ROUNDS))
    per_s = {k: round(v) for k, v in best.items()}
    return {
        "envelope_bytes": len(raw),
        "per_s": per_s,
        "verify_vs_decode": round(best["decode"] / best["verify"], 2),
        "verify_cold_vs_verify": round(best["verify"] / best["verify_cold"], 2),
        "sign_vs_verify": round(best["verify"] / best["sign"], 2),
    }


def _table(res: dict[str, Any]) -> str:
    rows = [
        ("decode (baseline: parse + BSM to SI)", "decode"),
        ("verify ECDSA P-256, certificate cached", "verify"),
        ("verify ECDSA P-256, certificate too", "verify_cold"),
        ("sign ECDSA P-256", "sign"),
    ]
    lines = [f"{'operation (one core)':<42} {'per second':>12} {'us each':>9}"]
    for label, key in rows:
        n = res["per_s"][key]
        lines.append(f"{label:<42} {n:>12,} {1e6 / n if n else math.inf:>9.1f}")
    lines.append("")
    lines.append(f"verify costs {res['verify_vs_decode']} x decode; a first message (certificate too) "
                 f"{res['verify_cold_vs_verify']} x verify; sign costs {res['sign_vs_verify']} x verify")  # fmt: skip
    lines.append(f"signed BSM envelope: {res['envelope_bytes']} bytes (certificate attached)")
    return "\n".join(lines)


def main(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    seconds = args.seconds if args.seconds is not None else (0.3 if args.quick else 3.0)
    if not (math.isfinite(seconds) and seconds > 0):
        print("--seconds must be > 0", file=err)
        return EXIT_BAD_INPUT
    print(f"bench sign: {seconds:g} s per operation, {ROUNDS} rounds", file=err, flush=True)
    t_start = time.perf_counter()
    res = measure(seconds)
    meta = {
        "bench": "sign",
        "algorithm": "ecdsa-p256",
        "cores": 1,
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "elapsed_s": round(time.perf_counter() - t_start, 1),
    }
    if args.json:
        print(json.dumps({**meta, **res}), file=out)
    else:
        print(_table(res), file=out)
        print(
            f"\none thread, best of {ROUNDS} alternating rounds; python {meta['python']}, "
            f"cryptography {meta['cryptography']}; SM2 is not implemented (docs/SECURITY.md)",
            file=out,
        )
    return EXIT_OK
