"""Issue #12, signed V2X messages (docs/SECURITY.md "Signed envelopes"): the certificate chain and envelope
checks of v2x.wire.security, the agents' verification, a live secure run attacked from outside, the
outcome of signed runs, the credentials an outside stack gets, and ``v2x bench sign``."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from v2x.net import topics
from v2x.net.broker import BrokerAddress
from v2x.net.host import AgentHost
from v2x.run.results import outcome
from v2x.run.runner import Signing, build_agents, environment, issue_keys, make_transport, run_scenario, run_variant
from v2x.scenario import Scenario, load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.sim.inbound import Inbound
from v2x.wire import day1_pb2, frame_pb2, security_pb2, testbed_pb2
from v2x.wire.envelope import temporary_id
from v2x.wire.security import (
    _N,
    MAX_AGE_S,
    Authority,
    EnvelopeSecurity,
    Freshness,
    Signer,
    Verified,
    Verifier,
    authority_for,
    make_certificate,
    parse_certificate,
    read_credentials,
    sign_bytes,
    to_be_signed,
    unix_us,
)

EPOCH = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
T0 = unix_us(EPOCH)
FCW = load_scenario(SCENARIO_DIR / "fcw.yaml")


def _bsm_env(sender: str = "lead", *, seq: int = 1, t_s: float = 1.0) -> testbed_pb2.Envelope:
    frame = frame_pb2.MessageFrame(bsm=day1_pb2.BSM(msg_cnt=1, id=temporary_id(sender)))
    tick = round(t_s * 10)
    return testbed_pb2.Envelope(
        sender_id=sender,
        seq=seq,
        tick=tick,
        tx_time_us=round(t_s * 1e6),
        link=testbed_pb2.LINK_PC5,
        frame=frame.SerializeToString(),
    )


@pytest.fixture(scope="module")
def ca() -> Authority:
    return authority_for("t", EPOCH, 30.0)


@pytest.fixture(scope="module")
def lead(ca: Authority) -> Signer:
    creds = ca.credentials("lead", run_id="t", epoch=EPOCH, run_s=30.0, permissions=("bsm",), change_every_s=10.0)
    return Signer(creds, EPOCH)


def _signed(signer: Signer, **kw: float) -> testbed_pb2.Envelope:
    env = _bsm_env(**kw)  # type: ignore[arg-type]
    signer.sign(env)
    return env


# -- the certificate chain --------------------------------------------------------------------------------
def test_a_pseudonym_of_the_runs_ca_verifies_and_is_cached(ca: Authority, lead: Signer) -> None:
    verifier = Verifier(ca.root)
    env = _signed(lead)
    got = verifier.check(env, "bsm")
    assert isinstance(got, Verified) and got.generation_time_us == T0 + 1_000_000
    assert got.signer in verifier.certs  # verified once, then known by its HashedId8
    # a digest instead of the certificate: accepted by a receiver that verified the certificate before
    by_digest = testbed_pb2.Envelope()
    by_digest.CopyFrom(env)
    by_digest.security.digest = got.signer
    assert isinstance(verifier.check(by_digest, "bsm"), Verified)
    assert Verifier(ca.root).check(by_digest, "bsm") == "unknown_cert"


def test_certificates_not_issued_by_the_runs_ca_are_unknown(ca: Authority, lead: Signer) -> None:
    verifier = Verifier(ca.root)
    other_ca = authority_for("other run", EPOCH, 30.0)
    stranger = Signer(other_ca.credentials("lead", run_id="x", epoch=EPOCH, run_s=30.0, permissions=("bsm",)), EPOCH)
    assert verifier.check(_signed(stranger), "bsm") == "unknown_cert"
    # self-signed, claiming the real CA as issuer
    key = ec.generate_private_key(ec.SECP256R1())
    env = _bsm_env()
    cert = make_certificate(key, key, issuer=ca.digest, start_s=T0 // 10**6, duration_s=60, permissions=("bsm",))
    env.security.certificate.CopyFrom(cert)
    env.security.generation_time_us = T0 + 1_000_000
    digest = parse_certificate(cert).digest
    env.security.signature = sign_bytes(key, to_be_signed(env, T0 + 1_000_000, digest))
    assert verifier.check(env, "bsm") == "unknown_cert"
    # a real pseudonym whose body was altered (a longer validity, more permissions)
    env = _signed(lead)
    body = security_pb2.CertificateBody.FromString(env.security.certificate.body)
    body.permissions.append("spat")
    env.security.certificate.body = body.SerializeToString()
    assert verifier.check(env, "bsm") == "unknown_cert"
    # a certificate that is not one, and a CA certificate used to sign a message
    env = _signed(lead)
    env.security.certificate.body = b"\x3a\x01\xff"
    assert verifier.check(env, "bsm") == "unknown_cert"
    env = _signed(lead)
    env.security.certificate.CopyFrom(ca.root)
    assert verifier.check(env, "bsm") == "unknown_cert"


def test_the_trust_anchor_must_be_a_self_signed_ca(ca: Authority, lead: Signer) -> None:
    with pytest.raises(ValueError, match="self-signed CA"):
        Verifier(_signed(lead).security.certificate)
    forged_root = security_pb2.Certificate()
    forged_root.CopyFrom(ca.root)
    forged_root.signature = bytes(64)
    with pytest.raises(ValueError, match="self-signature"):
        Verifier(forged_root)
    bad_key = security_pb2.CertificateBody.FromString(ca.root.body)
    bad_key.verification_key = b"\x04" + bytes(64)
    with pytest.raises(ValueError, match="not a point"):
        parse_certificate(security_pb2.Certificate(body=bad_key.SerializeToString(), signature=bytes(64)))


def test_signature_time_and_permission_checks(ca: Authority, lead: Signer) -> None:
    verifier = Verifier(ca.root)
    assert verifier.check(_bsm_env(), "bsm") == "unsigned"
    assert verifier.check(_signed(lead), "spat") == "no_permission"
    for field, value in (("seq", 2), ("tick", 11), ("tx_time_us", 1_100_000), ("sender_id", "follower")):
        env = _signed(lead)
        setattr(env, field, value)
        assert verifier.check(env, "bsm") == "bad_signature", field
    env = _signed(lead)
    env.dest_ids.append("platform")
    assert verifier.check(env, "bsm") == "bad_signature"
    env = _signed(lead)
    env.frame = env.frame + b"\x00"
    assert verifier.check(env, "bsm") == "bad_signature"
    # a wrong key: the lead's certificate, someone else's signature
    env = _signed(lead)
    env.security.signature = sign_bytes(ec.generate_private_key(ec.SECP256R1()), b"anything")
    assert verifier.check(env, "bsm") == "bad_signature"
    for sig in (b"", bytes(64), b"\xff" * 64):
        env.security.signature = sig
        assert verifier.check(env, "bsm") == "bad_signature"
    # generated outside the certificate's validity (the pool's last pseudonym, 40 s into a 30 s run)
    assert verifier.check(_signed(lead, t_s=45.0), "bsm") == "expired"


def test_pseudonyms_change_on_the_documented_rule(ca: Authority, lead: Signer) -> None:
    verifier = Verifier(ca.root)
    signers = []
    for t in (0.0, 9.9, 10.0, 19.95, 20.0, 29.9):
        got = verifier.check(_signed(lead, t_s=t), "bsm")
        assert isinstance(got, Verified), t
        signers.append(got.signer)
    assert signers[0] == signers[1] != signers[2] == signers[3] != signers[4] == signers[5]
    assert len(set(signers)) == 3 and lead.pseudonym(10.0) == 1


def test_freshness_rejects_stale_future_and_replayed_messages(ca: Authority, lead: Signer) -> None:
    verifier = Verifier(ca.root)
    got = verifier.check(_signed(lead, t_s=5.0), "bsm")
    assert isinstance(got, Verified)
    now = T0 + 5_050_000
    fresh = Freshness()
    assert fresh.check(got, now) == ""
    assert fresh.check(got, now + 100_000) == "replayed"
    assert Freshness().check(got, T0 + round((5.0 + MAX_AGE_S + 0.01) * 1e6)) == "expired"
    assert Freshness().check(got, T0 + 4_000_000) == "expired"  # generated 1 s in the receiver's future
    # a message seen long ago is forgotten, and then too old anyway
    assert fresh.check(got, T0 + 60_000_000) == "expired" and not fresh.seen


def test_a_copy_with_the_signatures_other_s_is_a_replay(ca: Authority, lead: Signer) -> None:
    """Attack review 3's #9: (r, n - s) verifies wherever (r, s) does, and the replay memory was keyed by the
    signature's bytes, so such a copy was a new message (in the world's inbox: a conflicting_tx against the
    honest sender). Now both are one signature to the memory, at the world and at every receiver."""
    env = _signed(lead, t_s=5.0)
    twin = testbed_pb2.Envelope()
    twin.CopyFrom(env)
    sig = env.security.signature
    twin.security.signature = sig[:32] + (_N - int.from_bytes(sig[32:], "big")).to_bytes(32, "big")
    assert twin.SerializeToString() != env.SerializeToString()
    verifier = Verifier(ca.root)
    first, copy = verifier.check(env, "bsm"), verifier.check(twin, "bsm")
    assert isinstance(first, Verified) and isinstance(copy, Verified)  # both verify
    fresh = Freshness()
    assert fresh.check(first, T0 + 5_050_000) == ""
    assert fresh.check(copy, T0 + 5_060_000) == "replayed"
    inbound = _secure_inbound(ca)
    inbound.open(50)
    for e in (env, twin):
        inbound.receive("tx", "lead", e.SerializeToString())
    assert inbound.stats.rejected == {"replayed": 1} and not inbound.stats.conflicts


def _secure_inbound(ca: Authority) -> Inbound:
    """The world's inbox of a signed run of lead and follower, trusting ``ca``."""
    return Inbound(
        ["lead", "follower"],
        slot_of={"lead": 0, "follower": 1},
        unequipped=set(),
        tick_s=0.1,
        security=EnvelopeSecurity.of(ca.root, EPOCH),
    )


def test_credentials_files_are_written_for_external_actors_only(tmp_path: Path) -> None:
    scenario = FCW.model_copy(
        update={"actors": [a.model_copy(update={"external": a.id == "lead"}) for a in FCW.actors]}
    )
    # links planted where the file and the temporary file it was written through (ACTOR.tmp) go: each is
    # replaced or left alone, never followed (ACTOR.tmp was opened with O_CREAT | O_TRUNC: attack review 3)
    folder = tmp_path / "creds-v2x"
    folder.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("someone else's")
    (folder / "lead.tmp").symlink_to(victim)
    (folder / "lead.cred").symlink_to(victim)
    keys = issue_keys(scenario, "creds-v2x", Signing(credentials_dir=tmp_path))
    assert keys.files == [tmp_path / "creds-v2x" / "lead.cred"]
    assert keys.files[0].stat().st_mode & 0o777 == 0o600 and not keys.files[0].is_symlink()
    assert victim.read_text() == "someone else's"
    assert sorted(p.name for p in folder.iterdir()) == ["lead.cred", "lead.tmp"]  # (no temporary file left)
    creds = read_credentials(keys.files[0].read_bytes())
    assert (creds.actor_id, creds.run_id) == ("lead", "creds-v2x")
    assert "lead" not in keys.signers and set(keys.signers) == {a.id for a in FCW.actors if a.id != "lead"}
    env = _bsm_env()
    Signer(creds, scenario.epoch).sign(env)
    assert isinstance(keys.checks.verifier.check(env, "bsm"), Verified)
    with pytest.raises(ValueError, match="credentials file"):
        read_credentials(b"\x0a\x01")


# -- receivers ---------------------------------------------------------------------------------------------
def test_the_worlds_inbox_verifies_before_the_sequence_checks(ca: Authority, lead: Signer) -> None:
    """A forgery with the lead's next seq is refused and does not take it: the real one still goes on air."""
    inbound = _secure_inbound(ca)
    inbound.open(10)
    forged = _signed(lead)
    forged.security.signature = sign_bytes(ec.generate_private_key(ec.SECP256R1()), b"x")
    real = _signed(lead)
    for payload in (forged, _bsm_env(), real, real):
        inbound.receive("tx", "lead", payload.SerializeToString())
    assert inbound.stats.rejected == {"bad_signature": 1, "unsigned": 1}
    assert inbound.stats.duplicates == 1 and [t.seq for t in inbound.take(10)] == [1]
    inbound.open(13)
    inbound.receive("tx", "lead", real.SerializeToString())  # the same signed bytes again, later
    assert inbound.stats.rejected["replayed"] == 1


async def test_agents_verify_what_they_hear_and_count_refusals(
    embedded: BrokerAddress, ca: Authority, lead: Signer
) -> None:
    """The follower's host in a secure run, fed TickInputs by hand: a good BSM is heard; an unsigned, a
    forged, a stale and a replayed one, and a BSM signed with a certificate of another CA, are counted."""
    from tests.test_hardening import _drive_host

    run_id = "sign-agents"
    agents = [a for a in build_agents(FCW, environment(FCW)) if a.actor_id == "follower"]
    host = AgentHost(
        make_transport(embedded, f"agents-{run_id}"),
        run_id,
        agents,
        n_ticks=FCW.n_ticks,
        security=EnvelopeSecurity.of(ca.root, FCW.epoch),
    )
    assert FCW.epoch == EPOCH
    good = _signed(lead, t_s=0.1)
    forged = _signed(lead, seq=2, t_s=0.1)
    forged.security.signature = sign_bytes(ec.generate_private_key(ec.SECP256R1()), b"x")
    stranger = Signer(
        authority_for("x", EPOCH, 30).credentials("lead", run_id="x", epoch=EPOCH, run_s=30, permissions=("bsm",)),
        EPOCH,
    )

    def tick(n: int, *envelopes: testbed_pb2.Envelope) -> bytes:
        ti = testbed_pb2.TickInput(run_id=run_id, tick=n, time_us=n * 100_000, tick_us=100_000)
        ti.envelopes.extend(e.SerializeToString() for e in envelopes)
        ti.rx_time_us.extend([n * 100_000] * len(envelopes))
        return ti.SerializeToString()

    inputs = [
        tick(0),
        tick(1, good, _bsm_env(seq=3, t_s=0.1), forged, _signed(stranger, seq=4, t_s=0.1)),
        tick(2, good),  # heard again: replayed
        tick(30, _signed(lead, seq=5, t_s=0.3)),  # 2.7 s old: stale
    ]
    host.max_skip = 30
    acks = await _drive_host(embedded, run_id, host, inputs, "follower")
    assert [a.tick for a in acks] == [0, 1, 2, 30]
    assert dict(acks[-1].rejected) == {
        "unsigned": 1,
        "bad_signature": 1,
        "unknown_cert": 1,
        "replayed": 1,
        "expired": 1,
    }


# -- whole runs --------------------------------------------------------------------------------------------
async def test_signed_runs_have_the_outcome_of_unsigned_ones() -> None:
    """icw (with a platform, an RSU's MAP/SPAT and relays over the backhaul) signed and not: the same outcome,
    nothing refused anywhere; the result says it was signed."""
    icw = load_scenario(SCENARIO_DIR / "icw.yaml")
    plain = await run_scenario(icw, seed=2, broker="loopback")
    signed = await run_scenario(icw, seed=2, broker="loopback", signing=Signing())
    assert outcome(signed) == outcome(plain)
    assert signed["run"]["signed"] == "ecdsa-p256" and "signed" not in plain["run"]
    for variant in icw.variants:
        assert signed["metrics"][variant]["rejected"] == {}
        assert signed["metrics"][variant]["rejected_by_agents"] == {}
        assert signed["metrics"][variant]["messages"] == plain["metrics"][variant]["messages"]


@pytest.mark.broker
async def test_a_secure_run_refuses_forged_unsigned_stale_and_replayed_envelopes(embedded: BrokerAddress) -> None:
    """A live lockstep fcw run with signatures. An intruder on the broker reads the lead's signed envelopes
    and publishes on the lead's tx topic: one re-signed with its own key (bad_signature) and one unsigned,
    both with the lead's next seq; one signed by a certificate of its own CA (unknown_cert); one of the
    first ticks again after 2 s (expired) and one of a few ticks back (replayed). Each is refused and
    counted under its reason, and the outcome is the unsigned run's."""
    from tests.test_hardening import _intruder, _until

    clean = await run_variant(FCW, "v2x", seed=3, broker=embedded, run_id="sign-clean")
    run_id = "sign-attacked"
    task = asyncio.create_task(
        run_variant(FCW, "v2x", seed=3, broker=embedded, run_id=run_id, signing=Signing(), sealed=False)
    )  # (unsealed: the lead's topic as open as an outside stack's, so that the signature checks judge)
    heard: list[testbed_pb2.Envelope] = []

    def lead_tx(topic: str, payload: bytes) -> bool:
        if topic.endswith("/tx/lead"):
            heard.append(testbed_pb2.Envelope.FromString(payload))
        return bool(heard) and heard[-1].tx_time_us >= 3_000_000

    async with _intruder(embedded, run_id, topics.tx(run_id, "lead")) as client:
        await _until(client, lead_tx)
        last = heard[-1]
        assert all(e.HasField("security") for e in heard)
        forged = testbed_pb2.Envelope()
        forged.CopyFrom(last)
        forged.seq, forged.tick, forged.tx_time_us = last.seq + 1, last.tick + 1, last.tx_time_us + 100_000
        forged.security.signature = sign_bytes(ec.generate_private_key(ec.SECP256R1()), b"forged")
        unsigned = testbed_pb2.Envelope()
        unsigned.CopyFrom(forged)
        unsigned.ClearField("security")
        stranger = Signer(
            authority_for("x", FCW.epoch, 30).credentials(
                "lead", run_id=run_id, epoch=FCW.epoch, run_s=30, permissions=("bsm",)
            ),
            FCW.epoch,
        )
        own_ca = testbed_pb2.Envelope()
        own_ca.CopyFrom(unsigned)
        stranger.sign(own_ca)
        attack = [forged, unsigned, own_ca, heard[0], heard[-2]]
        for env in attack:
            await client.publish(topics.tx(run_id, "lead"), env.SerializeToString(), qos=1)
    attacked = await asyncio.wait_for(task, 120)
    assert attacked.events == clean.events
    assert attacked.metrics["rejected"] == {
        "bad_signature": 1,
        "unsigned": 1,
        "unknown_cert": 1,
        "expired": 1,
        "replayed": 1,
    }
    assert attacked.metrics["rejected_by_agents"] == {}
    assert "conflicts" not in attacked.metrics  # forgeries no longer flag the actor they imitate
    # counted against the topic's actor, in the few ticks they came in: far from failing it (and in a secure
    # run, where the broker lets only the lead publish there, nobody else could make them)
    assert 1 <= attacked.metrics["unverified_ticks_by_actor"]["lead"] <= 5
    assert "unverified_ticks_by_actor" not in clean.metrics  # a run without signatures has no such metric
    assert attacked.metrics["messages"] == clean.metrics["messages"]


@pytest.mark.broker
async def test_an_outside_stack_on_the_sdk_signs_and_verifies_with_its_credentials_file(
    embedded: BrokerAddress, tmp_path: Path
) -> None:
    """fcw with the follower driven by examples/sdk_vehicle.py in a secure run: the run writes the
    follower's credentials file, the stack signs with it (the world refuses nothing) and verifies the
    lead's BSMs (it refuses nothing either, and its FCW warns about the lead)."""
    import os
    import sys

    scenario = _external_follower(FCW)
    run_id = "sign-sdk-v2x"
    signing = Signing(credentials_dir=tmp_path)
    task = asyncio.create_task(run_variant(scenario, "v2x", seed=3, broker=embedded, run_id=run_id, signing=signing))
    path = tmp_path / run_id / "follower.cred"
    for _ in range(600):
        if path.exists() or task.done():
            break
        await asyncio.sleep(0.05)
    from v2x.sdk import Stack

    with pytest.raises(ValueError, match=r"is for actor, run .* not"):
        Stack(embedded.url, run_id=run_id, actor_id="lead", signing_key=path)
    repo = Path(__file__).resolve().parents[1]
    stack = await asyncio.create_subprocess_exec(
        sys.executable, "examples/sdk_vehicle.py", "--broker", embedded.url, "--run", run_id,
        "--signing-key", str(path), cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    report = await asyncio.wait_for(task, 120)
    out, _ = await asyncio.wait_for(stack.communicate(), 60)
    assert stack.returncode == 0, out.decode()
    fcw = [e for e in report.events if e["type"] == "warning" and e["target"] == "follower" and e["app"] == "fcw"]
    assert fcw and fcw[0]["other"] == "lead", report.events
    assert report.metrics["rejected"] == {} and report.metrics["rejected_by_agents"] == {}


async def _sdk_follower(stack: object) -> None:
    """The follower of fcw on the SDK: cruise, send a BSM and acknowledge every tick."""
    from v2x.sdk import Stack, VehicleState

    assert isinstance(stack, Stack)
    run = await stack.start(60)
    state = VehicleState.at_start(run.me)
    async for tick in stack.ticks(tick_timeout_s=60):
        if tick.n > 0:
            state = state.advanced(tick.dt_s)
        await stack.send_bsm(tick, state)
        await stack.ack(tick, state)


def _external_follower(scenario: Scenario) -> Scenario:
    return scenario.model_copy(
        update={"actors": [a.model_copy(update={"external": a.id == "follower"}) for a in scenario.actors]}
    )


@pytest.mark.broker
async def test_a_stack_signing_with_keys_not_of_this_run_fails_the_run(embedded: BrokerAddress, tmp_path: Path) -> None:
    """A stack that signs with credentials of another CA (an earlier run's file, say): the world refuses
    every envelope (unknown_cert), so nobody hears it, and the run fails "envelopes verified" for it (it
    passed before: the follower still heard the lead and warned). A stack without a signing key learns from
    START that the run is signed and fails at once, with what to give."""
    from v2x.run.results import actor_share_checks
    from v2x.sdk import Stack

    scenario = _external_follower(FCW)
    run_id = "sign-stale-v2x"
    task = asyncio.create_task(
        run_variant(scenario, "v2x", seed=3, broker=embedded, run_id=run_id, signing=Signing(credentials_dir=tmp_path))
    )
    try:
        async with Stack(embedded.url, run_id=run_id, actor_id="follower") as bare:
            with pytest.raises(ValueError, match=r"is signed .* give signing_key= .*follower\.cred"):
                await bare.start(60)
        stale = tmp_path / "stale.cred"
        other = authority_for("an-earlier-run", FCW.epoch, 30)
        creds = other.credentials("follower", run_id=run_id, epoch=FCW.epoch, run_s=30, permissions=("bsm",))
        stale.write_bytes(creds.SerializeToString())
        async with Stack(embedded.url, run_id=run_id, actor_id="follower", signing_key=stale) as stack:
            await asyncio.wait_for(_sdk_follower(stack), 120)
        report = await asyncio.wait_for(task, 60)
    finally:
        task.cancel()
    ticks = report.metrics["ticks"]
    assert report.metrics["rejected"] == {"unknown_cert": ticks * 2}  # its BSM over PC5 and the Uu copy
    assert report.metrics["unverified_ticks_by_actor"] == {"follower": ticks}
    [failed] = actor_share_checks({"v2x": report.metrics})
    assert failed["name"] == "envelopes verified" and not failed["passed"]
    assert failed["detail"].startswith(f"follower: {ticks} of {ticks} ticks had its envelopes refused")


def test_bench_sign_runs_and_prints_its_fields() -> None:
    """``v2x bench sign`` through its parser: the JSON fields and the table (no timing assertions)."""
    import argparse

    from v2x.bench import cli as bench_cli

    parser = argparse.ArgumentParser(prog="v2x")
    bench_cli.register(parser.add_subparsers(dest="command", required=True))
    from v2x.bench import sign as bench_sign

    out, err = io.StringIO(), io.StringIO()
    args = parser.parse_args(["bench", "sign", "--seconds", "0.05", "--json"])
    assert args.handler.__name__ == "_run_sign"
    assert bench_sign.main(args, out=out, err=err) == 0
    doc = json.loads(out.getvalue())
    assert doc["bench"] == "sign" and doc["algorithm"] == "ecdsa-p256" and doc["cores"] == 1
    assert set(doc["per_s"]) == {"decode", "verify", "verify_cold", "sign"}
    assert all(v > 0 for v in doc["per_s"].values())
    assert {"verify_vs_decode", "verify_cold_vs_verify", "sign_vs_verify", "envelope_bytes"} <= set(doc)
    out = io.StringIO()
    assert bench_sign.main(parser.parse_args(["bench", "sign", "--seconds", "0.05"]), out=out, err=err) == 0
    assert "verify ECDSA P-256" in out.getvalue() and "x decode" in out.getvalue()
    for bad in ("-1", "nan", "1e308"):  # (1e308 ran for good)
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(["bench", "sign", "--seconds", bad])
        assert exit_.value.code == 2
