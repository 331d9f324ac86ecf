"""Issue #12, the world's inbox by hand (ids bound to senders, sequence numbers, conflicts, Hellos,
rate-limited logs) and the faults: atomic result files on a full disk, `v2x report` on malformed results
(fuzzed), SIGINT / SIGTERM / SIGKILL during `v2x run`, credentials kept out of result.json."""

from __future__ import annotations

import asyncio
import copy
import errno
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests._agents import offline_sim
from tests._mosquitto import Mosquitto
from v2x.cli import main
from v2x.logs import LOG_FIRST
from v2x.net import topics
from v2x.net.world import STOP_EXPIRY_S
from v2x.run.results import write_atomic, write_result
from v2x.run.runner import public_broker
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.wire import day1_pb2, frame_pb2, testbed_pb2
from v2x.wire.envelope import temporary_id

ROOT = Path(__file__).resolve().parents[1]
FCW = load_scenario(SCENARIO_DIR / "fcw.yaml")


def _env(
    sender: str,
    seq: int,
    tick: int,
    bsm_id: bytes | None = None,
    link: testbed_pb2.LinkKind.ValueType = testbed_pb2.LINK_PC5,
) -> bytes:
    frame = frame_pb2.MessageFrame(bsm=day1_pb2.BSM(msg_cnt=seq % 128, id=bsm_id or temporary_id(sender)))
    dests = ["cloud"] if link != testbed_pb2.LINK_PC5 else []
    return testbed_pb2.Envelope(
        sender_id=sender,
        seq=seq,
        tick=tick,
        link=link,
        dest_ids=dests,
        frame=frame.SerializeToString(),
    ).SerializeToString()


def test_a_bsm_is_bound_to_its_sender_and_seq_only_increases() -> None:
    sim = offline_sim(FCW)
    sim.begin(0)
    sim.receive("tx", "follower", _env("follower", 1, 0, temporary_id("lead")))  # the lead's id
    sim.receive("tx", "follower", _env("follower", 2, 0, temporary_id("lead"), testbed_pb2.LINK_UU))
    sim.receive("tx", "follower", _env("follower", 3, 0, link=testbed_pb2.LINK_WIRED))  # a car has no backhaul
    # a relay of a BSM the world never delivered to rsu1 (attack review 13: tests/test_rsu_claims.py)
    sim.receive("tx", "rsu1", _env("rsu1", 1, 0, temporary_id("lead"), testbed_pb2.LINK_WIRED))
    sim.receive("tx", "lead", _env("lead", 5, 0))
    other = testbed_pb2.Envelope.FromString(_env("lead", 5, 0))
    other.tx_time_us = 7
    sim.receive("tx", "lead", other.SerializeToString())  # same seq, other bytes
    sim.receive("tx", "lead", _env("lead", 4, 0))  # below the last accepted, in the same tick: new, accepted
    sim.receive("tx", "lead", _env("lead", 10**9, 0))  # a jump no sender makes
    assert sim.inbound.stats.rejected == {
        "id_mismatch": 2,
        "bad_link": 1,
        "not_relayed": 1,
        "conflicting_tx": 1,
        "bad_seq": 1,
    }
    assert sim.inbound.stats.duplicates == 0
    assert sorted(k[1] for k in sim.inbound.received) == [4, 5]  # (the lead's)
    sim.inbound.take(0)  # tick 0 went on the air
    sim.begin(1)
    sim.receive("tx", "lead", _env("lead", 5, 1))  # at the last seq, in a later tick: a duplicate still
    sim.receive("tx", "lead", _env("lead", 3, 1))  # below it, never used: a duplicate too (an earlier tick's)
    sim.receive("tx", "lead", _env("lead", 6, 1))
    assert sim.inbound.stats.duplicates == 2 and (sim.world.slot_of("lead"), 6) in sim.inbound.received
    assert (sim.world.slot_of("lead"), 3) not in sim.inbound.received


def test_hellos_must_speak_protocol_1_as_the_scenarios_kind_and_a_second_stack_is_noticed() -> None:
    sim = offline_sim(FCW)
    hello = testbed_pb2.Hello(actor_id="lead", kind="car", protocol_version=999)
    sim.receive("join", "lead", hello.SerializeToString())
    hello.protocol_version, hello.kind = 1, "tank"
    sim.receive("join", "lead", hello.SerializeToString())
    assert "lead" in sim.not_joined() and sim.inbound.stats.rejected == {"bad_hello": 2}
    hello.kind, hello.software = "car", "stack A"
    sim.receive("join", "lead", hello.SerializeToString())
    sim.receive("join", "lead", hello.SerializeToString())  # a reconnect: fine
    hello.software = "stack B"
    sim.receive("join", "lead", hello.SerializeToString())
    assert "lead" not in sim.not_joined() and sim.inbound.stats.conflicts == {"lead": {"hello": 1}}


def _external(actor_id: str) -> Any:
    """fcw with ``actor_id`` driven by an outside stack."""
    actors = [a.model_copy(update={"external": True}) if a.id == actor_id else a for a in FCW.actors]
    return FCW.model_copy(update={"actors": actors})


def test_an_actor_whose_hellos_name_different_software_is_flagged_and_the_result_names_them_all() -> None:
    """Attack review 13 #5: a forged Hello said before the real stack's named what was under test in result.json's
    run.outside_stacks, the console's "driven by" and the HTML report ('Vendor-X certified AD stack 9.9'); the
    real stack's Hellos were counted as conflicts in one tick, under the flag's three, and the run passed
    unflagged. Two Hellos that differ now flag the actor at once, and the result names every software said."""
    sim = offline_sim(_external("follower"))
    hello = testbed_pb2.Hello(actor_id="follower", kind="car", protocol_version=1)
    for software in ("Vendor-X certified AD stack 9.9", "examples/sdk_vehicle.py 1.0"):
        hello.software = software
        for _ in range(3):  # each says it every second until its first tick (the same again: no conflict)
            sim.receive("join", "follower", hello.SerializeToString())
    assert sim.inbound.stats.conflicts == {"follower": {"hello": 3}}
    assert sim.inbound.flagged() == {"follower": {"hello": 3}}
    named = "conflicting Hellos: 'Vendor-X certified AD stack 9.9', 'examples/sdk_vehicle.py 1.0'"
    assert sim.report(0.0).outside_stacks == {"follower": named}
    assert sim.metrics(0.0)["flagged"] == {"follower": {"hello": 3}}


def test_a_stack_that_says_its_hello_again_is_not_flagged_and_many_hellos_are_named_bounded() -> None:
    """A restarted stack, or one reconnecting after a broker restart, says the same Hello again: not a conflict,
    its software as it said it. Anyone may say Hellos: the result names the first few and the text stays
    within MAX_SOFTWARE_CHARS."""
    from v2x.sim.inbound import MAX_HELLOS_NAMED, MAX_SOFTWARE_CHARS

    sim = offline_sim(_external("follower"))
    hello = testbed_pb2.Hello(actor_id="follower", kind="car", software="stack 1", protocol_version=1)
    sim.receive("join", "follower", hello.SerializeToString())
    sim.begin(0)
    sim.receive("join", "follower", hello.SerializeToString())  # its stack restarted, or the broker did
    assert sim.inbound.flagged() == {} and sim.report(0.0).outside_stacks == {"follower": "stack 1"}
    for k in range(10):
        hello.software = f"forged \x1b[2J {k}"
        sim.receive("join", "follower", hello.SerializeToString())
    text = sim.inbound.software_of("follower")
    assert text is not None and len(text) <= MAX_SOFTWARE_CHARS and "\x1b" not in text
    assert text.startswith("conflicting Hellos: 'stack 1', 'forged \\x1b[2J 0'")
    assert len(sim.inbound.softwares["follower"]) == MAX_HELLOS_NAMED and "follower" in sim.inbound.flagged()


def test_a_rejected_envelope_still_counts_toward_the_ticks_arrivals() -> None:
    sim = offline_sim(FCW)
    sim.begin(0)
    for actor in sim.actor_ids:
        ack = testbed_pb2.Ack(actor_id=actor, tick=0, tx_count=1 if actor == "lead" else 0)
        sim.receive("ack", actor, ack.SerializeToString())
    assert sim.missing() == ["lead"]
    sim.receive("tx", "lead", b"\xff garbage")  # the lead's own envelope, refused: no stall
    assert sim.reported and sim.inbound.stats.rejected == {"malformed": 1}


def test_rejections_are_logged_a_few_times_per_reason_then_summed_up(caplog: pytest.LogCaptureFixture) -> None:
    sim = offline_sim(FCW)
    sim.begin(0)
    with caplog.at_level(logging.WARNING, logger="v2x.sim.inbound"):
        for _ in range(1000):
            sim.receive("tx", "lead", b"\xff")
        sim.report(0.0)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == LOG_FIRST + 2, lines
    assert lines[-1] == f"world: rejected 1000 malformed in all (the first {LOG_FIRST} logged)"


# -- files --------------------------------------------------------------------------------------------
def test_result_files_are_written_atomically_and_a_full_disk_leaves_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = {"scenario": "fcw", "seed": 0, "passed": True}
    path = write_result(result, tmp_path)
    old = path.read_bytes()

    import builtins

    class FullDisk:
        """A file on a full disk: opening works, writing fails with ENOSPC."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.f = builtins.open(*args, **kwargs)  # noqa: SIM115 - closed in __exit__

        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    import v2x.files  # (where write_atomic writes its files: replace_whole)

    full = ("open", FullDisk)
    monkeypatch.setattr(v2x.files, *full, raising=False)
    with pytest.raises(OSError, match="No space left"):
        write_result(result | {"passed": False}, tmp_path)
    with pytest.raises(OSError):
        write_atomic(tmp_path / "report.html", "<html/>")
    monkeypatch.undo()
    assert path.read_bytes() == old and sorted(p.name for p in tmp_path.rglob("*")) == ["fcw", "result.json"]
    with pytest.raises(ValueError):  # never Infinity in a result file
        write_result(result | {"x": float("inf")}, tmp_path)
    assert path.read_bytes() == old
    # and the command says so, exit 3, no traceback
    good = tmp_path / "fcw" / "result.json"
    good.write_text(json.dumps(_real_result()), encoding="utf-8")
    out = tmp_path / "report.html"
    out.write_text("old page", encoding="utf-8")
    monkeypatch.setattr(v2x.files, *full, raising=False)
    code = main(["report", str(good), "-o", str(out)])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 3 and "No space left on device" in err and "Traceback" not in err
    assert out.read_text(encoding="utf-8") == "old page"


def test_credentials_in_the_broker_url_never_reach_the_result() -> None:
    assert public_broker("mqtt://user:s3cret@broker.example:1884") == "mqtt://broker.example:1884"
    assert public_broker("mqtt://user@host") == "mqtt://host"
    assert public_broker("embedded") == "embedded" and public_broker("mqtt://h:1") == "mqtt://h:1"


_REAL: dict[str, Any] = {}


def _real_result() -> dict[str, Any]:
    """A real result.json of fcw (recorded outcomes plus the run section)."""
    if not _REAL:
        doc = json.loads((ROOT / "tests/records/outcomes/fcw-s0.json").read_text(encoding="utf-8"))
        doc |= {"scenario": "fcw", "seed": 0, "run": {"broker": "embedded"}}
        _REAL.update(doc)
    return copy.deepcopy(_REAL)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for k, v in enumerate(doc[:3]):
            out += _paths(v, (*prefix, k))
    return out


BAD_VALUES: list[Any] = [None, True, -1, 10**30, 1.5, "x", "", [], {}, [1, 2], {"a": 1}, "\u0000\ud7ff", -0.0]
RAW_BAD = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "9" * 5000]


def _mutants(rng: random.Random, n: int) -> list[str]:
    base = _real_result()
    paths = _paths(base)
    texts: list[str] = []
    while len(texts) < n:
        doc = copy.deepcopy(base)
        path = rng.choice(paths[1:])
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        kind = rng.randrange(6)
        if kind == 0:
            del parent[path[-1]]
            texts.append(json.dumps(doc))
        elif kind == 1:
            parent[path[-1]] = rng.choice(BAD_VALUES)
            texts.append(json.dumps(doc))
        elif kind == 2:  # NaN, Infinity, 1e400, a 5000-digit number where a value was
            parent[path[-1]] = "@@RAW@@"
            texts.append(json.dumps(doc).replace('"@@RAW@@"', rng.choice(RAW_BAD)))
        elif kind == 3:  # a huge list
            parent[path[-1]] = [parent[path[-1]]] * rng.choice((1000, 30_000))
            texts.append(json.dumps(doc))
        elif kind == 4:  # deep nesting where a value was
            depth = rng.choice((100, 5000, 200_000))
            parent[path[-1]] = "@@RAW@@"
            texts.append(json.dumps(doc).replace('"@@RAW@@"', "[" * depth + "]" * depth))
        else:  # truncated or with a byte changed
            text = json.dumps(doc)
            cut = rng.randrange(len(text))
            texts.append(text[:cut] if rng.random() < 0.5 else text[:cut] + rng.choice('{}[],:"0e-') + text[cut + 1 :])
    return texts


def test_v2x_report_exits_2_on_any_malformed_result_never_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(12)
    f = tmp_path / "result.json"
    out = tmp_path / "report.html"
    extra = [
        json.dumps(_real_result() | {"events": [{"t_s": 1e300, "type": "stop", "actor": "a"}]}),
        json.dumps(_real_result()).replace('"t_s": 8.9', '"t_s": 1e400', 1),
    ]
    codes: dict[int, int] = {}
    for text in [*extra, *_mutants(rng, 200)]:
        f.write_text(text, encoding="utf-8")
        started = time.process_time()  # CPU time: a bound on the work, whatever else loads the machine
        code = main(["report", str(f), "-o", str(out)])
        assert time.process_time() - started < 5.0
        err = capsys.readouterr().err
        assert code in (0, 1, 2) and "Traceback" not in err, (code, err, text[:300])
        codes[code] = codes.get(code, 0) + 1
    assert codes.get(2, 0) > 100 and codes.get(0, 0) + codes.get(1, 0) > 0


# -- signals and the Last Will -------------------------------------------------------------------------
def _external_lead(tmp_path: Path) -> Path:
    """fcw with its lead external: the run waits for it to join, long enough to be interrupted."""
    text = (SCENARIO_DIR / "fcw.yaml").read_text(encoding="utf-8")
    lines = text.splitlines()
    k = next(i for i, line in enumerate(lines) if line.strip() == "- id: lead")
    indent = lines[k].index("id")
    lines.insert(k + 1, " " * indent + "external: true")
    path = tmp_path / "fcw-external.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def _retained_control(mosquitto: Mosquitto, run_id: str) -> testbed_pb2.Control:
    """The run's retained Control, which must expire within the hour (MQTT 5's Message Expiry Interval: a
    shared broker does not keep one per run for good)."""
    address = mosquitto.address
    v5 = aiomqtt.ProtocolVersion.V5
    async with aiomqtt.Client(address.host, address.port, identifier=f"check-{run_id}", protocol=v5) as client:
        await client.subscribe(topics.control(run_id))
        async for message in client.messages:
            expiry = getattr(message.properties, "MessageExpiryInterval", None)
            assert expiry is not None and 3500 < expiry <= STOP_EXPIRY_S == 3600, expiry
            return testbed_pb2.Control.FromString(bytes(message.payload))
    raise AssertionError("no retained Control")


def _start_run(tmp_path: Path, mosquitto: Mosquitto, run_id: str, *extra: str) -> subprocess.Popen[str]:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "v2x.cli", "run", str(_external_lead(tmp_path)), "--variant", "v2x", "-q"]
    cmd += ["--broker", mosquitto.address.url, "--run-id", run_id, "--out", str(tmp_path / "out"), *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def _wait_for_world(mosquitto: Mosquitto, run_id: str, proc: subprocess.Popen[str]) -> None:
    """Until the world has claimed the run id: it clears the control topic's retained message then (an empty
    one: a world with a fixed run id listens a while before it claims it, ``World.claim``)."""
    address = mosquitto.address
    async with aiomqtt.Client(address.host, address.port, identifier=f"probe-{run_id}") as client:
        await client.subscribe(topics.control(f"{run_id}-v2x"))
        async with asyncio.timeout(60):
            async for message in client.messages:
                if not message.payload:
                    break
    assert proc.poll() is None, proc.communicate()
    await asyncio.sleep(0.5)


@pytest.mark.broker
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
async def test_a_signal_during_v2x_run_publishes_stop_and_exits_cleanly(
    sig: int, status: int, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    run_id = f"hard-sig{sig}"
    proc = _start_run(tmp_path, mosquitto, run_id, "--record", str(tmp_path / "rec"))
    await _wait_for_world(mosquitto, run_id, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == status, err
    assert "Traceback" not in err and "interrupted" in err
    # the recording is closed, not cut short (a newcomer review's Ctrl-C left 301 unreadable bytes)
    [recording] = (tmp_path / "rec").glob("*.mcap")
    assert recording.read_bytes().endswith(b"\x89MCAP0\r\n")
    ctrl = await _retained_control(mosquitto, f"{run_id}-v2x")
    assert ctrl.command == testbed_pb2.Control.COMMAND_STOP and ctrl.reason == "interrupted" and ctrl.token


@pytest.mark.broker
async def test_a_killed_world_leaves_a_stop_world_lost_not_its_start(tmp_path: Path, mosquitto: Mosquitto) -> None:
    run_id = "hard-kill"
    proc = _start_run(tmp_path, mosquitto, run_id)
    await _wait_for_world(mosquitto, run_id, proc)
    proc.kill()
    proc.communicate(timeout=30)
    time.sleep(0.5)
    ctrl = await _retained_control(mosquitto, f"{run_id}-v2x")
    assert ctrl.command == testbed_pb2.Control.COMMAND_STOP and ctrl.reason == "world lost" and ctrl.token


async def _slow_relay(broker_port: int, hold_after: int, hold_s: float) -> asyncio.Server:
    """A TCP relay in front of a broker that, on each client connection, holds the broker's answers for ``hold_s``
    right after the client's ``hold_after``-th QoS 1 PUBLISH: a broker or link slow to confirm once (a pause, a
    busy broker); nothing is lost or altered. (From an attack review's relay.)"""

    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        br, bw = await asyncio.open_connection("127.0.0.1", broker_port)
        hold_until = [0.0]
        qos1 = [0]

        async def up() -> None:
            buf = b""
            while data := await cr.read(65536):
                bw.write(data)
                await bw.drain()
                buf += data
                while len(buf) >= 2:  # whole packets: fixed header, remaining length (varint), body
                    mult, length, i = 1, 0, 1
                    while i < len(buf):
                        length += (buf[i] & 127) * mult
                        mult *= 128
                        i += 1
                        if not buf[i - 1] & 128:
                            break
                    else:
                        break
                    if len(buf) < i + length:
                        break
                    first, buf = buf[0], buf[i + length :]
                    if first >> 4 == 3 and (first >> 1) & 3 == 1:  # PUBLISH, QoS 1
                        qos1[0] += 1
                        if qos1[0] == hold_after:
                            hold_until[0] = time.monotonic() + hold_s
            bw.close()

        async def down() -> None:
            while data := await br.read(65536):
                wait = hold_until[0] - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                cw.write(data)
                await cw.drain()
            cw.close()

        await asyncio.gather(up(), down(), return_exceptions=True)

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.broker
@pytest.mark.parametrize("hold_after", [2, 3], ids=["start", "stop"])
async def test_a_broker_slow_to_confirm_start_or_stop_does_not_hang_the_run(
    mosquitto: Mosquitto, hold_after: int
) -> None:
    """The world publishes its Control at QoS 1 (1: clearing the topic as it claims the run id, 2: START, 3:
    STOP). A broker that confirmed START or STOP 2.5 s late (over the 2 s publish timeout) on a live connection
    hung ``v2x run`` for good, with no result: the transport waited for a reconnection that never came (an
    attack review: 50 connections subscribing to wildcards slowed the embedded broker that much). Now it
    publishes again, and the run ends with the undisturbed outcome."""
    from v2x.run.results import outcome
    from v2x.run.runner import run_scenario

    scenario = load_scenario(SCENARIO_DIR / "fcw.yaml")
    relay = await _slow_relay(mosquitto.port, hold_after, 2.5)
    port = relay.sockets[0].getsockname()[1]
    try:
        slow = await asyncio.wait_for(
            run_scenario(scenario, seed=0, broker=f"mqtt://127.0.0.1:{port}", variants=["v2x"]), 60
        )
    finally:
        relay.close()
    plain = await run_scenario(scenario, seed=0, broker="loopback", variants=["v2x"])
    assert outcome(slow) == outcome(plain)


def test_a_planted_symlink_is_never_written_through(tmp_path: Path) -> None:
    """An attack review planted symlinks named like the temporary file of the next 2,000 pids
    (``.result.json.<pid>.tmp``): the run wrote its result through one into the link's target, and
    result.json became a link to it. The temporary file now has a random name and is created, never opened."""
    out = tmp_path / "out"
    (out / "fcw").mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    for pid in range(os.getpid() - 5, os.getpid() + 5):
        (out / "fcw" / f".result.json.{pid}.tmp").symlink_to(victim)
    path = write_result({"scenario": "fcw", "seed": 0, "passed": True}, out)
    assert victim.read_text(encoding="utf-8") == "keep me"
    assert not path.is_symlink() and json.loads(path.read_text(encoding="utf-8"))["passed"] is True
    assert oct(path.stat().st_mode & 0o777) == oct(0o644 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_report_path_that_is_a_fifo_is_written_into_not_replaced(tmp_path: Path) -> None:
    """`--junit` / `-o` / `--out` files go through write_atomic, which renamed its file over the path: a
    device or a FIFO became a regular file (as root, `--junit /dev/null` replaced the system's /dev/null;
    attack review 2). A path that is no regular file is written into, as a shell's `>` does."""
    import stat
    import threading

    fifo = tmp_path / "junit.xml"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    write_atomic(fifo, "<testsuites/>")
    reader.join(timeout=10)
    assert got == [b"<testsuites/>"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    link = tmp_path / "link.html"  # a symlink is replaced, never followed (its target stays as it was)
    target = tmp_path / "target.html"
    target.write_text("old")
    link.symlink_to(target)
    write_atomic(link, "new")
    assert target.read_text() == "old" and link.read_text() == "new" and not link.is_symlink()


def test_a_recording_replaces_a_planted_symlink_and_refuses_a_fifo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--record DIR` opened DIR/<id>-<variant>.mcap to write: a symlink planted there had its target
    overwritten with the recording, and a FIFO blocked the run for good, SIGINT and SIGTERM ignored (attack
    review 3). The recording is written into a new file of its own and renamed over the name when done."""
    from v2x.run import record

    rec = tmp_path / "rec"
    rec.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious content")
    (rec / "fcw-v2x.mcap").symlink_to(victim)
    assert main(["run", "fcw", "--variant", "v2x", "-q", "--record", str(rec), "--out", str(tmp_path / "o")]) == 0
    assert victim.read_text() == "precious content"
    made = rec / "fcw-v2x.mcap"
    assert not made.is_symlink() and made.read_bytes().endswith(b"\x89MCAP0\r\n")
    assert oct(made.stat().st_mode & 0o777) == oct(0o644 & ~_umask())
    assert sorted(p.name for p in rec.iterdir()) == ["fcw-v2x.mcap"]  # (no temporary file left)

    os.mkfifo(rec / "fcw-baseline.mcap")  # refused before anything runs; in a process of its own: a hang shows
    done = subprocess.run(
        [sys.executable, "-m", "v2x.cli", "run", "fcw", "-q", "--record", str(rec), "--out", str(tmp_path / "o2")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert f"{rec / 'fcw-baseline.mcap'}: there is a FIFO, a device or a socket of that name" in done.stderr
    assert not (tmp_path / "o2").exists() and made.read_bytes().endswith(b"\x89MCAP0\r\n")
    # one planted after that check: the recorder refuses it too (the run then ends with exit 3, as a full disk)
    with pytest.raises(FileExistsError, match="a recording does not replace"):
        record.VariantRecorder(rec / "fcw-baseline.mcap", FCW, variant="baseline", seed=0, run_id="x")
    assert sorted(p.name for p in rec.iterdir()) == ["fcw-baseline.mcap", "fcw-v2x.mcap"]


@pytest.mark.parametrize("with_result", [False, True])
def test_a_recording_that_cannot_be_finished_leaves_no_temporary_file_and_the_others_finish(
    tmp_path: Path, with_result: bool
) -> None:
    """Each variant's recording is written into a temporary file until it is finished: one that cannot be
    written (a full disk: /dev/full) is removed, and the other variants' are still finished and renamed; with
    a result too, whose metadata is written before the summary (a diff review: it left the temporary file)."""
    from mcap.writer import CompressionType
    from mcap.writer import Writer as McapWriter

    from v2x.run import record

    recording = record.Recording(tmp_path, FCW, 0)
    full = recording.observer("v2x", "full-v2x")
    recording.observer("baseline", "full-baseline")
    full._file.close()
    full._file = open("/dev/full", "wb")  # noqa: SIM115 (closed by the recorder)
    full.w = McapWriter(full._file, compression=CompressionType.ZSTD)
    full.w.start(profile=record.PROFILE, library="v2x-testbed")
    result = {"expectations": [], "metrics": {}, "seed": 0, "run": {"x": "y" * 20000}} if with_result else None
    with pytest.raises(OSError, match="No space left"):
        recording.finish(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fcw-baseline.mcap"]
    assert (tmp_path / "fcw-baseline.mcap").read_bytes().endswith(b"\x89MCAP0\r\n")
    recording.abandon()  # (after an error: nothing more happens, nothing is raised)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fcw-baseline.mcap"]


def test_an_interruption_after_the_run_still_leaves_its_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SIGTERM while `v2x run --record` wrote its result (after the run) left only a hidden temporary file (a
    diff review): whatever ends a scenario's turn, its recording is finished and renamed into place."""
    from v2x.run import results

    def interrupted(*args: Any, **kw: Any) -> Path:
        from v2x.run.cli import Interrupted

        raise Interrupted(signal.SIGTERM)

    monkeypatch.setattr(results, "write_result", interrupted)
    code = main(["run", "fcw", "--variant", "v2x", "-q", "--record", str(tmp_path / "rec"), "--out", str(tmp_path)])
    assert code == 143
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == ["fcw-v2x.mcap"]
    assert (tmp_path / "rec" / "fcw-v2x.mcap").read_bytes().endswith(b"\x89MCAP0\r\n")


def test_a_recording_check_or_sweep_that_cannot_be_written_is_exit_2_or_3_never_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A full disk gave tracebacks (exit 1) in `v2x run --record`, `v2x check --out` and `v2x sweep --out`,
    and `--record` naming a file gave FileExistsError (attack review 2). The disk here is /dev/full, whose
    writes fail with ENOSPC."""
    from mcap.writer import CompressionType
    from mcap.writer import Writer as McapWriter

    from v2x.cli import main
    from v2x.run import record

    a_file = tmp_path / "a-file"
    a_file.write_text("")
    assert main(["run", "fcw", "--record", str(a_file), "--out", str(tmp_path / "o")]) == 2
    assert f"--record {a_file}: not a folder" in capsys.readouterr().err

    made = record.VariantRecorder.__init__

    def on_a_full_disk(self: record.VariantRecorder, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        self._file.close()
        self._file = open("/dev/full", "wb")  # noqa: SIM115 (closed by the recorder)
        self.w = McapWriter(self._file, compression=CompressionType.ZSTD)
        self.w.start(profile=record.PROFILE, library="v2x-testbed")

    monkeypatch.setattr(record.VariantRecorder, "__init__", on_a_full_disk)
    argv = ["run", "fcw", "--variant", "v2x", "--record", str(tmp_path / "rec"), "--out", str(tmp_path / "o")]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert f"v2x run: fcw: cannot write the recording under {tmp_path / 'rec'}" in err and "No space left" in err
    assert "Traceback" not in err
    monkeypatch.undo()

    # a full disk when the reports are written: an OSError, said, exit 3
    from v2x.run import check, results

    def full_disk(path: Path, data: str | bytes) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(results, "write_atomic", full_disk)
    monkeypatch.setattr(check, "write_atomic", full_disk)
    assert main(["sweep", "fcw", "--seeds", "1", "--out", str(tmp_path / "sweep.json")]) == 3
    assert "v2x sweep: cannot write" in (err := capsys.readouterr().err) and "Traceback" not in err
    assert main(["check", "fcw", "--jobs", "1", "--out", str(tmp_path / "c")]) == 3
    assert "v2x check: cannot write the reports under" in (err := capsys.readouterr().err) and "Traceback" not in err
    monkeypatch.undo()
    # a file where a folder should be, or one that cannot be written: said before any run (fuzz review 25)
    assert main(["sweep", "fcw", "--seeds", "1", "--out", str(a_file / "sweep.json")]) == 2
    assert f"v2x sweep: --out {a_file / 'sweep.json'}: no folder {a_file}" in capsys.readouterr().err
    assert main(["check", "fcw", "--out", str(a_file)]) == 2
    assert f"v2x check: --out {a_file}: not a folder" in capsys.readouterr().err
    assert main(["check", "fcw", "--out", str(a_file / "c")]) == 2
    assert f"v2x check: --out {a_file / 'c'}: {a_file} is not a folder" in capsys.readouterr().err
    assert main(["run", "fcw", "--out", "/proc/v2x-results"]) == 2
    assert "v2x run: --out /proc/v2x-results: cannot make or write a folder there" in capsys.readouterr().err


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] not in "ZX"
    except OSError:
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGKILL, -9)])
def test_a_signal_to_v2x_check_takes_its_worker_processes_with_it(sig: int, status: int, tmp_path: Path) -> None:
    """SIGTERM to `v2x check --jobs 2` (docker stop, a CI runner's cancel) killed it and left its two workers
    running for minutes, adopted by init; SIGINT waited for the runs in progress, with a traceback (adopter
    review). Now the command stops its workers and exits 128 + the signal, and a SIGKILLed command's workers
    end too (they get SIGTERM when it dies)."""
    cmd = [sys.executable, "-m", "v2x", "check", "fcw", "icw", "rlvw", "glosa", "--jobs", "2"]
    proc = subprocess.Popen(
        [*cmd, "--out", str(tmp_path / "c")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while len(_children(proc.pid)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    workers = _children(proc.pid)
    assert len(workers) >= 2, proc.communicate()
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == status, err
    if sig != signal.SIGKILL:
        assert f"v2x check: interrupted ({signal.Signals(sig).name})" in err and "Traceback" not in err
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers)
