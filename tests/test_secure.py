"""``--secure``: per-actor users, ACLs and TLS, on a real Mosquitto (the files of ``v2x secure init``) and on
the embedded broker. Each check attacks the broker as a client would and asserts on what really arrives."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests._mosquitto import Mosquitto, mosquitto_binary
from tests.test_sdk import ENV, REPO, fcw_with_external
from v2x.cli import main
from v2x.net import topics
from v2x.net.broker import BrokerAddress, embedded_broker, parse_broker_url, tls_context
from v2x.net.secure import (
    RunKeys,
    Security,
    load_actor_credentials,
    load_secure_dir,
    make_tls,
    mosquitto_password,
    new_run_keys,
    write_secure_dir,
)
from v2x.run.results import outcome
from v2x.run.runner import public_broker, run_scenario
from v2x.scenario import find_scenario, load_scenario

RUN = "sec"
V2X_RUN = f"{RUN}-v2x"


def test_grants_and_covers() -> None:
    world, lead = topics.world_grants("r"), topics.actor_grants("r", "lead")
    assert lead.write == ("v2x/r/join/lead", "v2x/r/tx/lead", "v2x/r/ack/lead")
    assert lead.read == ("v2x/r/in/lead", "v2x/r/control")
    assert "v2x/r/in/+" in world.write and "v2x/r/tx/+" in world.read
    assert topics.covers("v2x/r/in/+", "v2x/r/in/lead")
    assert topics.covers("v2x/r/in/+", "v2x/r/in/+")
    assert not topics.covers("v2x/r/in/+", "v2x/r/in/#")
    assert not topics.covers("v2x/r/in/lead", "#")
    assert not topics.covers("v2x/r/in/lead", "v2x/r/+/lead")
    assert not topics.covers("v2x/r/control", "v2x/r/control/x")


def test_secure_init_writes_through_no_planted_link_nor_into_anyones_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A symlink planted in DIR had the world's password written through it into another user's file, the
    chmod following the link too (attack review 3): each file is now a new one renamed over its name. A DIR
    anyone may write to, or another user's, is refused before anything is written (exit 2)."""
    sec = tmp_path / "sec"
    sec.mkdir()
    loot = tmp_path / "loot.json"
    loot.write_text("theirs")
    for name in ("world.json", "passwd", "server.key", "mosquitto.conf"):
        (sec / name).symlink_to(loot)
    assert main(["secure", "init", str(sec), "--scenario", "fcw", "--run-id", "planted"]) == 0
    capsys.readouterr()
    assert loot.read_text() == "theirs"
    for name, mode in (("world.json", 0o600), ("passwd", 0o600), ("server.key", 0o600), ("mosquitto.conf", 0o644)):
        assert not (sec / name).is_symlink() and (sec / name).stat().st_mode & 0o777 == mode, name
    assert (sec / "actors" / "follower.json").stat().st_mode & 0o777 == 0o600
    assert not [p for p in sec.rglob("*") if p.name.endswith(".tmp")]

    anyones = tmp_path / "anyones"
    anyones.mkdir()
    anyones.chmod(0o1777)
    assert main(["secure", "init", str(anyones), "--scenario", "fcw"]) == 2
    err = capsys.readouterr().err
    assert f"v2x secure init: {anyones} may be written by any user (mode drwxrwxrwt)" in err and "Traceback" not in err
    assert not any(anyones.iterdir())
    if os.geteuid() == 0:  # (root can give a folder to another user: nobody's)
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        os.chown(theirs, 65534, 65534)
        assert main(["secure", "init", str(theirs), "--scenario", "fcw"]) == 2
        assert f"v2x secure init: {theirs} belongs to another user (uid 65534)" in capsys.readouterr().err
        assert not any(theirs.iterdir())


def test_mosquitto_password_format() -> None:
    line = mosquitto_password("secret", salt=bytes(12))
    assert line.startswith("$7$101$AAAAAAAAAAAAAAAA$") and len(line.split("$")[-1]) == 88


def test_a_host_name_longer_than_a_common_name_goes_in_the_san_only() -> None:
    """Fuzz review 25: `v2x secure init --host` with a DNS name of 93 characters was a traceback (x509 holds at
    most 64 in a CommonName); clients match the SAN's names, where it now is."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    long_name = "a" * 40 + "." + "b" * 40 + ".example.com"
    cert = x509.load_pem_x509_certificate(make_tls([long_name]).cert_pem.encode())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "localhost"
    assert long_name in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    cert = x509.load_pem_x509_certificate(make_tls(["broker.example.com"]).cert_pem.encode())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "broker.example.com"


def _secure_dir(scenario_id: str, prefix: str, port: int) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="v2x-secure-test-"))
    scenario = load_scenario(find_scenario(scenario_id))
    tls = make_tls()
    run_ids: dict[str, str] = {v: f"{prefix}-{v}" for v in scenario.variants}
    keys = new_run_keys(scenario.id, prefix, run_ids, [a.id for a in scenario.actors], tls.ca_pem)
    write_secure_dir(directory, keys, tls, run_prefix=prefix, host="127.0.0.1", port=port)
    return directory


@contextlib.contextmanager
def _secure_mosquitto(scenario_id: str, prefix: str) -> Iterator[tuple[Mosquitto, Path]]:
    holder: list[Path] = []

    def conf(port: int) -> str:
        holder.append(_secure_dir(scenario_id, prefix, port))
        return (holder[0] / "mosquitto.conf").read_text()

    broker = Mosquitto(mosquitto_binary(), conf)
    broker.start()
    try:
        yield broker, holder[0]
    finally:
        broker.stop()
        shutil.rmtree(holder[0], ignore_errors=True)  # (its keys were left in /tmp)


@pytest.fixture(scope="module")
def secure_mosquitto() -> Iterator[tuple[BrokerAddress, RunKeys]]:
    with _secure_mosquitto("fcw", RUN) as (broker, directory):
        keys = load_secure_dir(directory).keys
        yield BrokerAddress("127.0.0.1", broker.port, tls=True, ca_pem=keys.ca_pem), keys


@contextlib.asynccontextmanager
async def _secure_embedded() -> AsyncIterator[tuple[BrokerAddress, RunKeys]]:
    scenario = load_scenario(find_scenario("fcw"))
    tls = make_tls()
    keys = new_run_keys("fcw", RUN, {"v2x": V2X_RUN}, [a.id for a in scenario.actors], tls.ca_pem)
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp) / "c.pem", Path(tmp) / "k.pem"
        cert.write_text(tls.cert_pem)
        key.write_text(tls.key_pem)
        async with embedded_broker(security=keys.embedded((str(cert), str(key)))) as address:
            yield address, keys


def _client(address: BrokerAddress, name: str) -> aiomqtt.Client:
    return aiomqtt.Client(
        address.host,
        address.port,
        username=address.username,
        password=address.password,
        tls_context=tls_context(address),
        identifier=f"test-{name}",
        timeout=5.0,
    )


async def _attacks(address: BrokerAddress, keys: RunKeys) -> None:
    """What an actor's credentials, wrong ones and none get on a secure broker."""
    world = keys.world_address(address)
    lead, follower = keys.actor_address(address, "lead"), keys.actor_address(address, "follower")
    got: dict[str, list[str]] = {"world": [], "lead#": []}

    async def listen(client: aiomqtt.Client, into: list[str]) -> None:
        async for message in client.messages:
            into.append(str(message.topic))

    # (c) a wrong password and no password cannot connect
    for bad in (lead.login(lead.username or "", "wrong"), address.login("", ""), address):
        with pytest.raises(aiomqtt.MqttError):
            async with _client(bad, "bad"):
                pass
    async with _client(world, "world") as w, _client(lead, "lead") as spy, _client(follower, "follower") as f:
        for filt in (topics.all_of(V2X_RUN, "tx"), topics.all_of(V2X_RUN, "ack"), topics.all_of(V2X_RUN, "join")):
            await w.subscribe(filt, qos=1)
        await spy.subscribe("#", qos=1)  # (b) an actor reading everything (amqtt refuses it, Mosquitto filters)
        await spy.subscribe(topics.tick_input(V2X_RUN, "lead"), qos=1)  # and its own input, which it may read
        tasks = [asyncio.create_task(listen(w, got["world"])), asyncio.create_task(listen(spy, got["lead#"]))]
        await asyncio.sleep(0.2)
        # (a) the lead publishes as the follower, and as the world
        await spy.publish(topics.tx(V2X_RUN, "follower"), b"forged", qos=1)
        await spy.publish(topics.ack(V2X_RUN, "follower"), b"forged", qos=1)
        await spy.publish(topics.tick_input(V2X_RUN, "follower"), b"forged", qos=1)
        await spy.publish(topics.control(V2X_RUN), b"forged", qos=1)
        # what the lead may see, and what it may not
        await f.publish(topics.tx(V2X_RUN, "follower"), b"real", qos=1)
        await f.publish(topics.ack(V2X_RUN, "follower"), b"real", qos=1)
        await w.publish(topics.tick_input(V2X_RUN, "follower"), b"real", qos=1)
        await w.publish(topics.tick_input(V2X_RUN, "lead"), b"real", qos=1)
        await spy.publish(topics.tx(V2X_RUN, "lead"), b"own", qos=1)
        await asyncio.sleep(0.5)
        for task in tasks:
            task.cancel()
    assert sorted(got["world"]) == sorted(
        [topics.tx(V2X_RUN, "follower"), topics.ack(V2X_RUN, "follower"), topics.tx(V2X_RUN, "lead")]
    ), "the world got a forged message, or lost a real one"
    assert set(got["lead#"]) == {topics.tick_input(V2X_RUN, "lead")}, "the lead read another party's topic"


async def test_mosquitto_enforces_the_acl(secure_mosquitto: tuple[BrokerAddress, RunKeys]) -> None:
    await _attacks(*secure_mosquitto)


async def test_embedded_broker_enforces_the_acl() -> None:
    async with _secure_embedded() as (address, keys):
        assert address.tls
        await _attacks(address, keys)


def test_mosquitto_refuses_a_publish_as_another_actor(secure_mosquitto: tuple[BrokerAddress, RunKeys]) -> None:
    """MQTT 5, QoS 1: Mosquitto answers a publish on another actor's topic with PUBACK 'Not authorized'."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.reasoncodes import ReasonCode

    address, keys = secure_mosquitto
    lead = keys.actor_address(address, "lead")
    codes: dict[int, int] = {}
    connected, done = threading.Event(), threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="test-v5", protocol=paho.MQTTv5)
    client.username_pw_set(lead.username, lead.password)
    client.tls_set_context(tls_context(lead))
    client.on_connect = lambda c, u, f, rc, p: connected.set()

    def on_publish(c: object, u: object, mid: int, rc: ReasonCode, p: object) -> None:
        codes[mid] = rc.value
        if len(codes) == 2:
            done.set()

    client.on_publish = on_publish
    client.connect("127.0.0.1", address.port)
    client.loop_start()
    try:
        assert connected.wait(5)
        own = client.publish(topics.tx(V2X_RUN, "lead"), b"own", qos=1).mid
        forged = client.publish(topics.tx(V2X_RUN, "follower"), b"forged", qos=1).mid
        assert done.wait(5)
    finally:
        client.loop_stop()
        client.disconnect()
    assert codes[forged] == 0x87  # Not authorized
    assert codes[own] in (0x00, 0x10)  # Success, or "no matching subscribers"


def _credentials_never_in(result: dict[str, object], keys: RunKeys) -> None:
    text = json.dumps(result)
    assert all(pw not in text for pw in keys.passwords().values())


@pytest.mark.parametrize("scenario_id", ["fcw", "icw"])
async def test_secure_run_keeps_the_outcome(scenario_id: str) -> None:
    """fcw and icw over TLS + ACL Mosquitto, each agent logged in as itself: the same outcome as an open run."""
    scenario = load_scenario(find_scenario(scenario_id))
    open_run = await run_scenario(scenario, seed=3, broker="loopback")
    with _secure_mosquitto(scenario_id, f"{scenario_id}-sec") as (broker, directory):
        url = f"mqtts://127.0.0.1:{broker.port}"
        secure = await run_scenario(scenario, seed=3, broker=url, security=Security(directory=directory))
        _credentials_never_in(secure, load_secure_dir(directory).keys)
        # an outside stack's file names its broker, user and CA
        creds = load_actor_credentials(directory / "actors" / f"{scenario.actors[0].id}.json")
        assert creds.broker.tls and creds.broker.username and creds.run_id("v2x") == f"{scenario_id}-sec-v2x"
    assert outcome(secure) == outcome(open_run)
    assert secure["run"]["broker"] == url


async def test_secure_embedded_run_keeps_the_outcome() -> None:
    scenario = load_scenario(find_scenario("fcw"))
    open_run = await run_scenario(scenario, seed=1, broker="loopback", variants=["v2x"])
    secure = await run_scenario(scenario, seed=1, broker="embedded", variants=["v2x"], security=Security())
    assert outcome(secure) == outcome(open_run)


def test_broker_urls() -> None:
    a = parse_broker_url("mqtts://u:s3cr3t@example.org")
    assert (a.tls, a.port, a.url, a.username, a.password) == (True, 8883, "mqtts://example.org:8883", "u", "s3cr3t")
    assert "s3cr3t" not in repr(a)
    assert public_broker("mqtts://u:p@example.org:8884") == "mqtts://example.org:8884"


def _drop_with_will(lead: BrokerAddress, topic: str, will: bytes) -> bool | None:
    """Connect as ``lead`` with a retained Last Will ``will`` on ``topic``, then drop the connection without
    DISCONNECT (so a broker would publish the will). Whether the broker accepted the connection (False: it
    refused it; None: no answer at all, which proves nothing: a code review pointed this test at a closed
    port, and it passed)."""
    import socket

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    accepted: list[bool] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"test-will-{secrets.token_hex(3)}")
    client.on_connect = lambda c, u, f, reason, p: accepted.append(not reason.is_failure)
    client.username_pw_set(lead.username, lead.password)
    client.tls_set_context(tls_context(lead))
    client.will_set(topic, will, qos=1, retain=True)
    with contextlib.suppress(OSError):
        client.connect(lead.host, lead.port)
        for _ in range(20):
            client.loop(0.05)
            if accepted:
                break
        sock = client.socket()
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()
    return accepted[0] if accepted else None


async def _foreign_will(address: BrokerAddress, keys: RunKeys) -> bool:
    """A will on the run's control topic from an actor's credentials is never published nor retained;
    whether the broker let that connection in."""
    got: list[bytes] = []
    lead = keys.actor_address(address, "lead")
    async with _client(keys.world_address(address), "will-watch") as world:
        await world.subscribe(topics.control(V2X_RUN), qos=1)
        await world.subscribe(topics.join(V2X_RUN, "lead"), qos=1)

        async def listen() -> None:
            async for message in world.messages:
                got.append(bytes(message.payload) if isinstance(message.payload, bytes | bytearray) else b"")

        task = asyncio.create_task(listen())
        # the broker answers the attacker (Mosquitto lets it in, the embedded broker refuses a connection with
        # a will its user may not write), and its will on the run's control topic is never published
        answered = await asyncio.to_thread(_drop_with_will, lead, topics.control(V2X_RUN), b"forged will")
        assert answered is not None
        # (the control: a will on a topic of its own is, so the watch above would have seen the forged one)
        assert await asyncio.to_thread(_drop_with_will, lead, topics.join(V2X_RUN, "lead"), b"own will")
        async with asyncio.timeout(5):
            while b"own will" not in got:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        task.cancel()
    async with _client(keys.world_address(address), "will-retained") as world:  # nor is it left retained
        await world.subscribe(topics.control(V2X_RUN), qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.3):
                async for message in world.messages:
                    got.append(bytes(message.payload) if isinstance(message.payload, bytes | bytearray) else b"")
    assert b"forged will" not in got
    return answered


async def test_mosquitto_never_publishes_a_foreign_will(secure_mosquitto: tuple[BrokerAddress, RunKeys]) -> None:
    assert await _foreign_will(*secure_mosquitto)  # (it accepts the connection, and drops the will)


async def test_embedded_broker_never_publishes_a_foreign_will() -> None:
    async with _secure_embedded() as (address, keys):
        assert not await _foreign_will(address, keys)  # (it refuses the connection)


@pytest.mark.broker
def test_the_documented_steps_with_an_outside_sdk_stack(tmp_path: Path) -> None:
    """docs/SECURITY.md's steps: 'v2x secure init', Mosquitto with its conf, the SDK example with its actor's
    credentials file and the signing key the run writes, 'v2x run --secure-dir' over mqtts://; the outside
    follower signs, warns, and the run passes."""
    scenario = fcw_with_external(tmp_path, "follower")
    sec = tmp_path / "sec"

    def conf(port: int) -> str:
        args = ["secure", "init", str(sec), "--scenario", str(scenario), "--run-id", "doc", "--port", str(port)]
        assert main(args) == 0
        return (sec / "mosquitto.conf").read_text()

    broker = Mosquitto(mosquitto_binary(), conf)
    broker.start()
    log = tmp_path / "stack.log"
    try:
        with log.open("wb") as out:
            stack = subprocess.Popen(
                [sys.executable, "examples/sdk_vehicle.py", "--credentials", str(sec / "actors" / "follower.json"),
                 "--signing-key", str(tmp_path / "out" / "credentials" / "doc-v2x" / "follower.cred"),
                 "--join-timeout", "120"],
                stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=ENV,
            )  # fmt: skip
        try:
            cmd = [sys.executable, "-m", "v2x.cli", "run", str(scenario), "--variant", "v2x", "--secure-dir", str(sec),
                   "--broker", f"mqtts://127.0.0.1:{broker.port}", "--out", str(tmp_path / "out"), "-q"]  # fmt: skip
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO, env=ENV, check=False)
            assert run.returncode == 0, run.stdout + run.stderr
            assert stack.wait(timeout=60) == 0, log.read_text()
        finally:
            if stack.poll() is None:
                stack.kill()
    finally:
        broker.stop()
    result = json.loads((tmp_path / "out" / "fcw" / "result.json").read_text())
    assert result["run"]["run_ids"] == {"v2x": "doc-v2x"} and result["passed"]
    assert any(e["type"] == "warning" and e["target"] == "follower" for e in result["events"])
    # the stack signed with the file the run wrote once it started (it did not exist when the stack did):
    # nothing refused (before, its unsigned envelopes were all refused and the run passed all the same)
    assert result["metrics"]["v2x"]["rejected"] == {} and result["metrics"]["v2x"]["unverified_ticks_by_actor"] == {}
    assert oct(os.stat(sec / "actors" / "follower.json").st_mode & 0o777) == "0o600"
    _credentials_never_in(result, load_secure_dir(sec).keys)


@pytest.mark.broker
def test_conformance_of_a_secure_run_passes_a_signing_stack_and_names_a_stale_key(tmp_path: Path) -> None:
    """'v2x conformance --secure-dir' on Mosquitto with 'v2x secure init''s files: the SDK example with its
    actor's file and the signing key the run writes passes; the same stack given the key an earlier run wrote
    (another CA) fails the world's view, every envelope refused as unknown_cert."""
    sec, out = tmp_path / "sec", tmp_path / "out"

    def conf(port: int) -> str:
        args = ["secure", "init", str(sec), "--scenario", "fcw", "--run-id", "conf", "--port", str(port)]
        assert main(args) == 0
        return (sec / "mosquitto.conf").read_text()

    broker = Mosquitto(mosquitto_binary(), conf)
    broker.start()
    key = out / "credentials" / "conf-v2x" / "follower.cred"

    def conformance(signing_key: Path, log: Path) -> subprocess.CompletedProcess[str]:
        with log.open("wb") as fh:
            stack = subprocess.Popen(
                [sys.executable, "examples/sdk_vehicle.py", "--credentials", str(sec / "actors" / "follower.json"),
                 "--signing-key", str(signing_key), "--join-timeout", "120"],
                stdout=fh, stderr=subprocess.STDOUT, cwd=REPO, env=ENV,
            )  # fmt: skip
        try:
            cmd = [sys.executable, "-m", "v2x.cli", "conformance", "--actor", "follower", "--secure-dir", str(sec),
                   "--broker", f"mqtts://127.0.0.1:{broker.port}", "--out", str(out)]  # fmt: skip
            return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO, env=ENV, check=False)
        finally:
            with contextlib.suppress(subprocess.TimeoutExpired):
                stack.wait(timeout=60)
            if stack.poll() is None:
                stack.kill()

    try:
        good = conformance(key, tmp_path / "good.log")
        assert good.returncode == 0, good.stdout + good.stderr + (tmp_path / "good.log").read_text()
        assert "run conf-v2x of fcw (lockstep, secure, epoch " in good.stdout and "PASS follower in fcw" in good.stdout
        assert "FAIL" not in good.stdout and "PASS world's view: nothing rejected" in good.stdout
        stale = tmp_path / "stale.cred"
        stale.write_bytes(key.read_bytes())  # the first run's key: the next run has a new CA
        bad = conformance(stale, tmp_path / "bad.log")
    finally:
        broker.stop()
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAIL world's view: " in bad.stdout and "'unknown_cert'" in bad.stdout, bad.stdout


async def test_embedded_broker_lets_a_refused_client_break_off_without_a_traceback() -> None:
    """An anonymous TLS client that the secure embedded broker refuses and that then resets its connection
    made amqtt raise ConnectionResetError out of its connection callback, which asyncio logged as an
    unhandled exception with a traceback in the middle of a run (found by an outside attack test)."""
    import socket
    import ssl
    import struct

    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    connect = b"\x10" + bytes([12]) + b"\x00\x04MQTT\x04\x02\x00\x05" + b"\x00\x00"  # MQTT 3.1.1, clean, no id

    def refused_then_reset(port: int) -> bytes:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        with ctx.wrap_socket(raw) as sock:
            sock.sendall(connect)
            answer = sock.recv(4)  # CONNACK, refused
            sock.sendall(connect)  # data the broker will not read, then the reset
        return answer

    try:
        async with _secure_embedded() as (address, _keys):
            for _ in range(3):
                answer = await asyncio.to_thread(refused_then_reset, address.port)
                assert answer[:1] == b"\x20" and answer[3] != 0  # a CONNACK that refuses
            await asyncio.sleep(0.5)
    finally:
        loop.set_exception_handler(None)
    assert not unhandled, unhandled


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda d: d.update(run_id="a/b#"), "'run_id' and 'run_ids' must be run ids"),
        (lambda d: d.update(run_id="x\n"), "'run_id' and 'run_ids' must be run ids"),
        (lambda d: d["run_ids"].update(v2x="+/#"), "'run_id' and 'run_ids' must be run ids"),
        (lambda d: d.update(ca_pem="junk"), "field 'ca_pem' is not a PEM certificate"),
    ],
)
def test_a_secure_dir_edited_by_hand_is_refused_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Any, words: str
) -> None:
    """Attack review 5: world.json with run_id 'a/b#' gave a ValueError traceback (exit 1) in v2x run, and an
    actor file with ca_pem 'junk' an ssl.SSLError traceback in the SDK example: both exit 2 now, naming it."""
    from v2x.net.secure import SecureDirError

    sec = tmp_path / "sec"
    assert main(["secure", "init", str(sec), "--scenario", "fcw", "--run-id", "edited"]) == 0
    capsys.readouterr()
    for path in (sec / "world.json", sec / "actors" / "follower.json"):
        doc = json.loads(path.read_text())
        edit(doc)
        path.write_text(json.dumps(doc))
    with pytest.raises(SecureDirError, match=words):
        load_secure_dir(sec)
    with pytest.raises(SecureDirError, match=words):
        load_actor_credentials(sec / "actors" / "follower.json")
    assert main(["run", "fcw", "--secure-dir", str(sec), "--out", str(tmp_path / "out")]) == 2
    assert words in capsys.readouterr().err


@pytest.mark.parametrize(
    ("plant", "words"),
    [
        (lambda p: p.write_text("[" * 200_000 + "]" * 200_000), "nested too deeply"),
        (os.mkfifo, "not a regular file"),
        (lambda p: p.write_bytes(b'{"format": "' + b"x" * (2 << 20) + b'"}'), "larger than 1 MiB"),
        (lambda p: p.write_bytes(b'{"format": "\xff"}'), "cannot read it"),
    ],
)
def test_a_planted_secure_dir_file_is_refused_not_waited_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], plant: Any, words: str
) -> None:
    """Attack review 7: a world.json nested 200,000 levels deep was a RecursionError traceback (exit 1), and a
    FIFO in its place hung v2x run for good; the golden records' reader already refused both."""
    sec = tmp_path / "sec"
    assert main(["secure", "init", str(sec), "--scenario", "fcw", "--run-id", "planted"]) == 0
    capsys.readouterr()
    (sec / "world.json").unlink()
    plant(sec / "world.json")
    assert main(["run", "fcw", "--secure-dir", str(sec), "--out", str(tmp_path / "out")]) == 2
    assert words in capsys.readouterr().err


def test_a_secure_dir_without_a_variants_run_id_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attack review 9: world.json whose run_ids lacked 'baseline' passed the checks before the run, and the
    run ended in a SecureDirError traceback (exit 1) that listed the variants as if actors were missing."""
    import argparse

    from v2x.net.secure import SecureDirError
    from v2x.run.runner import secure_run
    from v2x.run.secure import security_from_args

    sec = tmp_path / "sec"
    assert main(["secure", "init", str(sec), "--scenario", "fcw", "--run-id", "partial"]) == 0
    doc = json.loads((sec / "world.json").read_text())
    doc["run_ids"] = {"v2x": "partial-v2x"}
    (sec / "world.json").write_text(json.dumps(doc))
    capsys.readouterr()
    out = tmp_path / "out"
    assert main(["run", "fcw", "--secure-dir", str(sec), "--broker", "mqtts://127.0.0.1:1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"v2x run: --secure-dir {sec}: it has no run id for variant 'baseline' (it has 'v2x')" in err, err
    assert "Traceback" not in err and not out.exists()
    # the variant it has is taken (the run would go on to the broker)
    fcw = load_scenario(find_scenario("fcw"))
    args = argparse.Namespace(secure_dir=sec, run_id=None, broker="mqtts://127.0.0.1:1")
    assert isinstance(security_from_args(args, [fcw], "v2x run", variants=["v2x"]), Security)
    assert security_from_args(args, [fcw], "v2x run") == 2
    # the run's own check (if one still got past the CLI) names the variant, not the actors
    with (
        pytest.raises(SecureDirError, match=r"has no run id for variant 'baseline'$"),
        secure_run(
            fcw, Security(directory=sec), "mqtts://127.0.0.1:1", "partial", {v: f"partial-{v}" for v in fcw.variants}
        ),
    ):
        pass
