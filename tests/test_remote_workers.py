"""Fleet workers on other machines (``v2x worker`` + ``v2x run --workers N --remote-workers``), against a
stand-in for a clustered broker: two real Mosquitto brokers on localhost, the second bridged to the first
(``topic # both 0``). The world talks to the first, the workers (separate processes, started as a person
would on another machine) to the second; the outcome is the single-process run's, byte for byte."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._mosquitto import Mosquitto, mosquitto_binary, mosquitto_conf
from v2x.bench.stack import stack_scenario
from v2x.cli import main as cli_main
from v2x.net.secure import SecureDirError
from v2x.run.results import outcome
from v2x.run.runner import RunError, Signing, run_scenario, warm_up_core
from v2x.run.workers import remote_jobs, serve_remote
from v2x.scenario import load_scenario
from v2x.sdk import Stack

ROOT = Path(__file__).resolve().parents[1]


def _scenario_file(tmp_path: Path, duration_s: float = 1.0) -> Path:
    """Fully equipped background traffic on 4 lanes with cars standing in them (as tests/test_workers.py):
    the fleets raise FCW, so the comparison means something."""
    doc = stack_scenario(200, duration_s, lanes=4)
    for k in range(4):
        for j, start in enumerate((300, 900)):
            doc["actors"].append(
                {"id": f"stalled{k}{j}", "kind": "car", "lane": f"l{k}", "start_m": start + 37 * k, "speed_mps": 0.0}
            )
    path = tmp_path / f"fleets-{duration_s:g}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def bridged() -> Iterator[tuple[Mosquitto, Mosquitto]]:
    """Mosquitto A, and Mosquitto B bridged to A for every topic both ways (a two-node 'cluster')."""
    a = Mosquitto(mosquitto_binary())
    a.start()
    bridge = f"\nconnection to-a\naddress 127.0.0.1:{a.port}\ntopic # both 0\ncleansession true\n"
    b = Mosquitto(mosquitto_binary(), conf=lambda port: mosquitto_conf(port) + bridge)
    try:
        b.start()
        yield a, b
    finally:
        b.stop()
        a.stop()


def _worker(path: Path, broker: Mosquitto, run_id: str, k: int, n: int, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "v2x.cli", "worker", str(path), "--broker", f"mqtt://127.0.0.1:{broker.port}"]
    cmd += ["--run-id", run_id, "--fleet", str(k), "--of", str(n), *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str], timeout_s: float = 30.0) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


def _same(result: dict[str, Any]) -> str:
    """The outcome section, and the metrics but for wall time, as bytes to compare."""
    metrics = {
        v: {k: x for k, x in m.items() if k not in ("wall_seconds", "duplicates")} for v, m in result["metrics"].items()
    }
    return json.dumps({"outcome": outcome(result), "metrics": metrics}, sort_keys=True)


def test_remote_workers_on_a_bridged_broker_give_the_single_process_outcome(
    tmp_path: Path, bridged: tuple[Mosquitto, Mosquitto], caplog: pytest.LogCaptureFixture
) -> None:
    """``v2x run --workers 2 --remote-workers`` with its world on broker A, and two ``v2x worker`` processes
    on broker B: the result's outcome section is the single-process run's, byte for byte, and so are the
    metrics but for wall time."""
    a, b = bridged
    path = _scenario_file(tmp_path)
    sc = load_scenario(path)
    warm_up_core([sc])
    single = asyncio.run(run_scenario(sc, seed=0, broker="loopback", variants=["v2x"]))
    assert [e for e in single["events"] if e["type"] == "warning" and e["target"].startswith("bg-")]
    workers = [_worker(path, b, "remote1", k, 2) for k in range(2)]
    args = ["run", str(path), "--broker", f"mqtt://127.0.0.1:{a.port}", "--variant", "v2x", "--workers", "2"]
    args += ["--remote-workers", "--run-id", "remote1", "--worker-timeout", "60", "--out", str(tmp_path / "r")]
    try:
        with caplog.at_level(logging.INFO, logger="v2x.run.workers"):
            code = cli_main(args)
    finally:
        finished = [_finish(w) for w in workers]
    assert (code, [c for c, _ in finished]) == (0, [0, 0]), [err[-2000:] for _, err in finished]
    remote = json.loads((tmp_path / "r" / sc.id / "result.json").read_text())
    assert _same(remote) == _same(single)
    said = caplog.text
    assert "waiting for 2 fleet worker(s)" in said
    assert "fleet worker fleet-0 joined" in said and "fleet worker fleet-1 joined" in said
    assert "fleet-1 of run remote1-v2x: serving" in finished[1][1]


def test_workers_that_never_come_stop_the_run_with_exit_3_naming_them(
    tmp_path: Path, bridged: tuple[Mosquitto, Mosquitto], capsys: pytest.CaptureFixture[str]
) -> None:
    a, _ = bridged
    path = _scenario_file(tmp_path)
    args = ["run", str(path), "--broker", f"mqtt://127.0.0.1:{a.port}", "--variant", "v2x", "--workers", "2"]
    args += ["--remote-workers", "--run-id", "never1", "--worker-timeout", "1", "--out", str(tmp_path)]
    assert cli_main(args) == 3
    err = capsys.readouterr().err
    assert "fleet workers never joined run never1-v2x within 1 s: fleet-0, fleet-1" in err
    assert f"v2x worker {load_scenario(path).id} --broker mqtt://127.0.0.1:{a.port} --run-id never1 --fleet 1" in err


def test_a_worker_with_another_job_is_refused(tmp_path: Path, bridged: tuple[Mosquitto, Mosquitto]) -> None:
    """A worker given a scenario of another length (other ticks) would serve another run: refused."""
    a, b = bridged
    sc = load_scenario(_scenario_file(tmp_path))
    other = load_scenario(_scenario_file(tmp_path, duration_s=2.0))
    (job,) = remote_jobs(other, b.address, "other1", 0, 1)

    async def both() -> None:
        worker = asyncio.create_task(serve_remote(job, wait_s=20.0))
        try:
            await run_scenario(
                sc,
                broker=f"mqtt://127.0.0.1:{a.port}",
                variants=["v2x"],
                remote_workers=True,
                worker_timeout_s=20.0,
                run_id="other1",
            )
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    with pytest.raises(RunError, match=r"fleet worker fleet-0 \(.*\) serves another job"):
        asyncio.run(both())


def test_worker_and_run_refuse_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _scenario_file(tmp_path)
    url = "mqtt://127.0.0.1:1"
    assert cli_main(["worker", str(path), "--broker", url, "--run-id", "x", "--fleet", "2", "--of", "2"]) == 2
    assert "--fleet wants K in 0 ... 1 (--of 2), got 2" in capsys.readouterr().err
    assert cli_main(["worker", str(path), "--broker", "http://x", "--run-id", "x", "--fleet", "0", "--of", "1"]) == 2
    assert "broker URL" in capsys.readouterr().err
    assert cli_main(["worker", "fcw", "--broker", url, "--run-id", "x", "--fleet", "0", "--of", "1"]) == 2
    assert "no equipped background vehicles" in capsys.readouterr().err
    assert cli_main(["run", str(path), "--workers", "2", "--remote-workers", "--out", str(tmp_path)]) == 2
    assert "--remote-workers needs --run-id" in capsys.readouterr().err
    with pytest.raises(ValueError, match="run id"):
        asyncio.run(run_scenario(load_scenario(path), remote_workers=True))
    assert cli_main(["run", str(path), "--remote-workers", "--run-id", "s1", "--secure", "--out", str(tmp_path)]) == 2
    assert "--remote-workers with --secure needs a broker of your own and --secure-dir DIR" in capsys.readouterr().err
    with pytest.raises(RunError, match=r"in a signed run \(--secure\) needs a worker key \(--seal-key\)"):
        asyncio.run(run_scenario(load_scenario(path), remote_workers=True, run_id="s1", signing=Signing()))


def test_a_worker_without_a_world_gives_up_with_exit_3(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["worker", str(_scenario_file(tmp_path)), "--broker", f"mqtt://127.0.0.1:{mosquitto.port}"]
    assert cli_main([*args, "--run-id", "alone1", "--fleet", "0", "--of", "1", "--wait", "1", "-q"]) == 3
    assert "no world of run alone1-v2x sent fleet-0 its input within 1 s" in capsys.readouterr().err


def test_a_run_without_the_workers_variant_tells_them_there_is_nothing_to_do(
    tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """``v2x run --variant baseline --remote-workers``: no world will serve the V2X variant's fleets, so the
    run tells the workers waiting for it (in answer to their FleetHello) that there is nothing to do, and
    they end at once (exit 0) instead of waiting out their ``--wait``."""
    path = _scenario_file(tmp_path)
    workers = [_worker(path, mosquitto, "base1", k, 2) for k in range(2)]
    args = ["run", str(path), "--broker", f"mqtt://127.0.0.1:{mosquitto.port}", "--variant", "baseline"]
    args += ["--workers", "2", "--remote-workers", "--run-id", "base1", "--worker-timeout", "60"]
    try:
        with caplog.at_level(logging.INFO, logger="v2x.run.workers"):
            code = cli_main([*args, "--out", str(tmp_path / "r")])
    finally:
        finished = [_finish(w) for w in workers]  # --wait is 600 s: only the run's word ends them in time
    assert (code, [c for c, _ in finished]) == (0, [0, 0]), [err[-2000:] for _, err in finished]
    why = "this run (--run-id base1) runs only baseline (--variant), not v2x"
    for k, (_, err) in enumerate(finished):
        assert f"fleet-{k} of run base1-v2x: nothing to do: {why}" in err
        assert "serving" not in err
    said = caplog.text
    assert f"run base1-v2x: {why}; waiting up to 60 s for its fleet worker(s) fleet-0, fleet-1" in said
    assert "told fleet worker fleet-0" in said and "told fleet worker fleet-1" in said
    result = json.loads((tmp_path / "r" / load_scenario(path).id / "result.json").read_text())
    assert list(result["metrics"]) == ["baseline"]


def test_a_run_without_the_workers_variant_goes_on_when_none_say_hello(
    tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    path = _scenario_file(tmp_path)
    args = ["run", str(path), "--broker", f"mqtt://127.0.0.1:{mosquitto.port}", "--variant", "baseline"]
    args += ["--workers", "2", "--remote-workers", "--run-id", "base2", "--worker-timeout", "0.5"]
    with caplog.at_level(logging.INFO, logger="v2x.run.workers"):
        assert cli_main([*args, "--out", str(tmp_path / "r"), "-q"]) == 0
    assert "run base2-v2x: fleet worker(s) fleet-0, fleet-1 did not say hello within 0.5 s" in caplog.text


def test_a_forged_stop_mid_run_does_not_end_remote_workers(
    tmp_path: Path, bridged: tuple[Mosquitto, Mosquitto]
) -> None:
    """Anyone on the broker can read the run's token from the retained START and publish a STOP with it. A
    remote worker left on such a STOP, and the world waited 60 s for its report and exited 3 (found by an
    attack review). Now the worker believes a STOP before its final tick only when the world does not go on:
    the run completes with the single-process outcome, and the worker's log names the forgery."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from v2x.net import topics
    from v2x.wire import testbed_pb2

    a, b = bridged
    path = _scenario_file(tmp_path, duration_s=2.0)
    sc = load_scenario(path)
    warm_up_core([sc])
    single = asyncio.run(run_scenario(sc, seed=0, broker="loopback", variants=["v2x"]))
    run_id = "forged-v2x"
    token: list[str] = []
    forged: list[int] = []
    spy = paho.Client(CallbackAPIVersion.VERSION2, client_id="forger")

    def on_message(client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        if msg.topic == topics.control(run_id):
            ctrl = testbed_pb2.Control.FromString(bytes(msg.payload))
            if ctrl.command == testbed_pb2.Control.COMMAND_START:
                token.append(ctrl.token)
            return
        fin = testbed_pb2.FleetInput.FromString(bytes(msg.payload))
        if token and not forged and fin.tick >= 5:  # mid-run, to the fleets' broker
            forged.append(fin.tick)
            stop = testbed_pb2.Control(
                command=testbed_pb2.Control.COMMAND_STOP, run_id=run_id, token=token[-1], reason="forged"
            )
            client.publish(topics.control(run_id), stop.SerializeToString(), qos=1, retain=True)

    spy.on_message = on_message
    watched = [(topics.control(run_id), 1), (topics.fleet_input(run_id, "fleet-0"), 0)]
    spy.on_connect = lambda c, *_: c.subscribe(watched)
    spy.connect("127.0.0.1", b.port)
    spy.loop_start()
    workers = [_worker(path, b, "forged", k, 2) for k in range(2)]
    args = ["run", str(path), "--broker", f"mqtt://127.0.0.1:{a.port}", "--variant", "v2x", "--workers", "2"]
    args += ["--remote-workers", "--run-id", "forged", "--worker-timeout", "60", "--out", str(tmp_path / "r")]
    try:
        code = cli_main(args)
    finally:
        finished = [_finish(w) for w in workers]
        spy.loop_stop()
        spy.disconnect()
    assert forged, "the forger never saw the run"
    assert (code, [c for c, _ in finished]) == (0, [0, 0]), [err[-2000:] for _, err in finished]
    assert all("not the world's; ignored" in err for _, err in finished), [err[-3000:] for _, err in finished]
    remote = json.loads((tmp_path / "r" / sc.id / "result.json").read_text())
    assert outcome(remote) == outcome(single)
    assert remote["metrics"]["v2x"]["rejected"].get("forged_control", 0) >= 1  # the world counted it


def test_forged_fleet_hellos_are_logged_five_times_then_counted(caplog: pytest.LogCaptureFixture) -> None:
    """5000 FleetHellos of no fleet of the run logged 5000 WARNING lines (attack review 2)."""
    import logging

    from v2x.logs import LOG_FIRST
    from v2x.net.transport import LoopbackBroker, LoopbackTransport
    from v2x.run.workers import RemoteFleets
    from v2x.wire import testbed_pb2

    fleets = RemoteFleets(LoopbackTransport(LoopbackBroker(), "world"), "run1", [])
    with caplog.at_level(logging.WARNING, logger="v2x.run.workers"):
        for k in range(1000):
            fleets._on_hello(
                f"v2x/run1/fleet-join/nope{k}", testbed_pb2.FleetHello(fleet_id="%s%s%d").SerializeToString()
            )
    assert fleets.ignored_hellos == 1000
    assert len(caplog.records) == LOG_FIRST + 1 and "only counted" in caplog.records[-1].getMessage()


def _key(tmp_path: Path) -> Path:
    from v2x.net.seal import key_file

    path = tmp_path / "worker.key"
    key_file(path)
    return path


def test_sealed_remote_workers_take_only_the_worlds_messages(
    tmp_path: Path, bridged: tuple[Mosquitto, Mosquitto]
) -> None:
    """With a worker key (``--seal-key`` on both sides) the world admits each worker with the run's seal key
    and the fleets' topics are sealed as a fleet the run started itself. Attack review 2 found, without it: a
    FleetInput with ``dismissed`` ended a waiting worker (exit 0; the run waited out ``--worker-timeout``),
    forged FleetAcks won their ticks, and a FleetHello with another job digest stopped the run at once. A
    forger on the workers' broker sends all three here: the run completes with the single-process outcome,
    the workers serve to the end, and the world counts the forged acks."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from v2x.net import topics
    from v2x.wire import testbed_pb2

    a, b = bridged
    path = _scenario_file(tmp_path, duration_s=2.0)
    key = _key(tmp_path)
    sc = load_scenario(path)
    warm_up_core([sc])
    single = asyncio.run(run_scenario(sc, seed=0, broker="loopback", variants=["v2x"]))
    run_id = "sealed-v2x"
    sent = {"dismissed": 0, "hello": 0, "ack": 0}

    def on_message(client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        parsed = topics.parse(msg.topic)
        assert parsed is not None
        fleet = parsed.actor_id
        if "fleet-join" in msg.topic:
            if not msg.payload or b"forger" in bytes(msg.payload):
                return
            forged = testbed_pb2.FleetInput(run_id=run_id, dismissed="forged: go home")
            client.publish(topics.fleet_input(run_id, fleet), forged.SerializeToString())
            hello = testbed_pb2.FleetHello(fleet_id=fleet, job="0" * 16, host="forger", protocol_version=1)
            client.publish(msg.topic, hello.SerializeToString())
            sent["dismissed"] += 1
            sent["hello"] += 1
            return
        fin = testbed_pb2.FleetInput.FromString(bytes(msg.payload))
        if fin.tick >= 3 and not fin.admit and sent["ack"] < 5:
            ack = testbed_pb2.FleetAck(fleet_id=fleet, tick=fin.tick)
            client.publish(topics.fleet_ack(run_id, fleet), ack.SerializeToString())
            sent["ack"] += 1

    spy = paho.Client(CallbackAPIVersion.VERSION2, client_id="forger")
    spy.on_message = on_message
    watched = [(topics.fleet_join(run_id, f"fleet-{k}"), 0) for k in range(2)]
    watched += [(topics.fleet_input(run_id, f"fleet-{k}"), 0) for k in range(2)]
    spy.on_connect = lambda c, *_: c.subscribe(watched)
    spy.connect("127.0.0.1", b.port)
    spy.loop_start()
    workers = [_worker(path, b, "sealed", k, 2, "--seal-key", str(key)) for k in range(2)]
    args = ["run", str(path), "--broker", f"mqtt://127.0.0.1:{a.port}", "--variant", "v2x", "--workers", "2"]
    args += ["--remote-workers", "--run-id", "sealed", "--worker-timeout", "60", "--seal-key", str(key)]
    try:
        code = cli_main([*args, "--out", str(tmp_path / "r")])
    finally:
        finished = [_finish(w) for w in workers]
        spy.loop_stop()
        spy.disconnect()
    assert min(sent.values()) >= 1, sent
    assert (code, [c for c, _ in finished]) == (0, [0, 0]), [err[-2000:] for _, err in finished]
    for k, (_, err) in enumerate(finished):
        assert f"fleet-{k} of run sealed-v2x: admitted by the world" in err
        assert "nothing to do" not in err and f"fleet-{k} of run sealed-v2x: done after tick" in err
        assert f"fleet-{k}: rejected a FleetInput (forged): " in err  # the forged dismissal
    remote = json.loads((tmp_path / "r" / sc.id / "result.json").read_text())
    assert outcome(remote) == outcome(single)
    assert remote["metrics"]["v2x"]["rejected"].get("forged", 0) >= 1, remote["metrics"]["v2x"]["rejected"]


def test_a_worker_key_on_one_side_only_is_said(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker without the run's key is not admitted (the run stops naming it and the option); a worker
    with a key and a run without one is refused at once."""
    path = _scenario_file(tmp_path)
    key = _key(tmp_path)
    url = f"mqtt://127.0.0.1:{mosquitto.port}"
    args = ["run", str(path), "--broker", url, "--variant", "v2x", "--remote-workers", "--out", str(tmp_path / "r")]
    worker = _worker(path, mosquitto, "half1", 0, 1)
    try:
        code = cli_main([*args, "--run-id", "half1", "--worker-timeout", "3", "--seal-key", str(key), "-q"])
    finally:
        worker.kill()
        worker.communicate()
    err = capsys.readouterr().err
    assert code == 3 and "fleet-0 said hello without this run's worker key" in err, err
    assert "--seal-key FILE (a copy of this run's)" in err
    worker = _worker(path, mosquitto, "half2", 0, 1, "--seal-key", str(key))
    try:
        code = cli_main([*args, "--run-id", "half2", "--worker-timeout", "30", "-q"])
    finally:
        worker.kill()
        worker.communicate()
    err = capsys.readouterr().err
    assert code == 3 and "was started with --seal-key, this run without" in err, err


def test_worker_key_files_and_admissions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from v2x.net.seal import KEY_BYTES, RunSeal, key_file

    path = tmp_path / "k"
    key, made = key_file(path)
    assert made and len(key) == KEY_BYTES and oct(path.stat().st_mode & 0o777) == "0o600"
    assert key_file(path) == (key, False)
    seal = RunSeal(key)
    blob = seal.wrap("v2x/r/fleet-in/fleet-0", b"secret", b"nonce")
    assert seal.unwrap("v2x/r/fleet-in/fleet-0", blob, b"nonce") == b"secret"
    assert seal.unwrap("v2x/r/fleet-in/fleet-0", blob, b"other nonce") is None  # another worker's, or old
    assert seal.unwrap("v2x/r2/fleet-in/fleet-0", blob, b"nonce") is None  # another run's
    assert RunSeal().unwrap("v2x/r/fleet-in/fleet-0", blob, b"nonce") is None  # another key
    assert seal.open("v2x/r/fleet-in/fleet-0", blob) is None  # not a seal
    scenario = str(_scenario_file(tmp_path))
    worker = ["worker", scenario, "--broker", "mqtt://127.0.0.1:1", "--run-id", "x", "--fleet", "0", "--of", "1"]
    path.chmod(0o644)
    assert cli_main([*worker, "--seal-key", str(path)]) == 2
    assert f"chmod 600 {path}" in capsys.readouterr().err
    path.chmod(0o600)
    path.write_text("not a key\n")
    assert cli_main([*worker, "--seal-key", str(path)]) == 2
    assert "not a worker key (expected 64 hex digits)" in capsys.readouterr().err
    assert cli_main([*worker, "--seal-key", str(tmp_path / "none")]) == 2
    assert "cannot read the worker key" in capsys.readouterr().err
    run = ["run", scenario, "--variant", "v2x", "--out", str(tmp_path / "r")]
    assert cli_main([*run, "--seal-key", str(path)]) == 2
    assert "--seal-key is the key of remote workers: it needs --remote-workers" in capsys.readouterr().err
    remote = [*run, "--remote-workers", "--run-id", "k1", "--broker", "mqtt://127.0.0.1:1"]
    assert cli_main([*remote, "--seal-key", str(path)]) == 2
    assert "not a worker key" in capsys.readouterr().err


def test_a_keyed_worker_whose_world_fails_after_admitting_it_gives_up_after_its_wait(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    """A diff review: once admitted, a worker with a key stopped saying hello and stopped counting --wait, so a
    world that failed before tick 0 (here: its other fleet never came) left it waiting for good. It now says hello
    and keeps --wait until its first tick, and exits 3 saying so."""
    path = _scenario_file(tmp_path)
    key = _key(tmp_path)
    worker = _worker(path, mosquitto, "gone1", 0, 2, "--seal-key", str(key), "--wait", "10")
    args = ["run", str(path), "--broker", f"mqtt://127.0.0.1:{mosquitto.port}", "--variant", "v2x", "--workers", "2"]
    args += ["--remote-workers", "--run-id", "gone1", "--worker-timeout", "4", "--seal-key", str(key), "-q"]
    try:
        assert cli_main([*args, "--out", str(tmp_path / "r")]) == 3
    finally:
        code, err = _finish(worker, timeout_s=40)
    assert "fleet workers never joined run gone1-v2x within 4 s: fleet-1" in capsys.readouterr().err
    assert code == 3 and "admitted by the world" in err, err[-2000:]
    assert "a world admitted it, then sent nothing" in err, err[-2000:]


# -- a secure run (--secure-dir) with remote workers --------------------------------------------------------


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[tuple[Mosquitto, Path, Path]]:
    """The documented steps: ``v2x secure init --workers 1`` for a scenario with fleets, Mosquitto started with its
    configuration (TLS, users, ACLs); the broker, the scenario file and the secure directory."""
    path = _scenario_file(tmp_path)
    sec = tmp_path / "sec"

    def conf(port: int) -> str:
        args = ["secure", "init", str(sec), "--scenario", str(path), "--run-id", "sw", "--port", str(port)]
        assert cli_main([*args, "--workers", "1"]) == 0
        return (sec / "mosquitto.conf").read_text()

    broker = Mosquitto(mosquitto_binary(), conf)
    broker.start()
    try:
        yield broker, path, sec
    finally:
        broker.stop()


def _secure_worker(path: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "v2x.cli", "worker", str(path), "--run-id", "sw", "--fleet", "0", "--of", "1", *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_secure_run_with_a_remote_worker_gives_the_in_process_outcome(
    tmp_path: Path, secure_broker: tuple[Mosquitto, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """``v2x run --secure-dir DIR --remote-workers --seal-key KEY`` on a TLS + ACL Mosquitto, with one ``v2x
    worker --credentials DIR/fleets/fleet-0.json --seal-key KEY`` process: the worker logs in as its fleet, gets
    its vehicles' signing keys in its admission, and the run's outcome and metrics (every envelope verified,
    nothing refused) are those of the same secure run with its fleet in the world's process."""
    broker, path, sec = secure_broker
    sc = load_scenario(path)
    warm_up_core([sc])
    key = _key(tmp_path)
    run = ["run", str(path), "--secure-dir", str(sec), "--broker", f"mqtts://127.0.0.1:{broker.port}"]
    run += ["--run-id", "sw", "--variant", "v2x", "-q"]
    assert cli_main([*run, "--out", str(tmp_path / "own")]) == 0
    worker = _secure_worker(path, "--credentials", str(sec / "fleets" / "fleet-0.json"), "--seal-key", str(key))
    try:
        code = cli_main(
            [
                *run,
                "--remote-workers",
                "--seal-key",
                str(key),
                "--worker-timeout",
                "60",
                "--out",
                str(tmp_path / "remote"),
            ]
        )
    finally:
        wcode, err = _finish(worker, timeout_s=60)
    assert (code, wcode) == (0, 0), (capsys.readouterr().err, err[-2000:])
    assert "fleet-0 of run sw-v2x: admitted by the world (sealed and signing its vehicles' messages from now on)" in err
    own = json.loads((tmp_path / "own" / sc.id / "result.json").read_text())
    remote = json.loads((tmp_path / "remote" / sc.id / "result.json").read_text())
    assert remote["run"]["signed"] == "ecdsa-p256" and remote["run"]["fleet_workers"] == {
        "processes": 1,
        "remote": True,
    }
    assert _same(remote) == _same(own)
    assert remote["metrics"]["v2x"]["rejected"] == {}  # the fleet's BSMs signed with the run's keys, all verified
    assert [e for e in remote["events"] if e["type"] == "warning" and e["target"].startswith("bg-")]


def test_a_secure_runs_worker_without_what_it_needs_is_told_at_once(
    tmp_path: Path, secure_broker: tuple[Mosquitto, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the CA (no --credentials), with a wrong password, with another fleet's file, or without a worker
    key: a clear line and a non-zero exit within seconds (a refused login was retried until the 30 s connect
    timeout, saying only "cannot reach")."""
    broker, path, sec = secure_broker
    key = _key(tmp_path)
    fleet0 = sec / "fleets" / "fleet-0.json"
    doc = json.loads(fleet0.read_text())
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**doc, "password": "not-it"}))
    worker = ["worker", str(path), "--run-id", "sw", "--fleet", "0", "--of", "1", "--seal-key", str(key), "-q"]
    wrong.chmod(0o644)  # (a password: refused where others may read it, as the worker key is)
    assert cli_main([*worker, "--credentials", str(wrong)]) == 2
    assert f"others may read or write it (mode -rw-r--r--); chmod 600 {wrong}" in capsys.readouterr().err
    wrong.chmod(0o600)
    url = f"mqtts://{doc['username']}:{doc['password']}@127.0.0.1:{broker.port}"
    started = time.monotonic()
    assert cli_main([*worker, "--broker", url]) == 3
    err = capsys.readouterr().err
    assert "the broker's TLS certificate is not signed by a CA this client trusts" in err, err
    assert "a secure run's worker needs --credentials DIR/fleets/FLEET.json" in err
    assert cli_main([*worker, "--credentials", str(wrong)]) == 3
    assert "cannot connect to the MQTT broker at" in (err := capsys.readouterr().err) and "refused the login" in err
    assert time.monotonic() - started < 20
    assert cli_main([*worker[:-3], "--credentials", str(fleet0)]) == 2
    assert "--credentials (a secure run) needs --seal-key FILE" in capsys.readouterr().err
    other = [*worker, "--credentials", str(fleet0)]
    other[other.index("--of") + 1] = "2"
    assert cli_main(other) == 2
    assert "it was made by 'v2x secure init --workers 1', not for --of 2: give --of 1" in capsys.readouterr().err
    other = [*worker, "--credentials", str(fleet0)]
    other[other.index("--fleet") + 1] = "1"
    assert cli_main(other) == 2  # (--fleet 1 of --of 1 is refused as such before the file is read)
    capsys.readouterr()
    actor = sec / "actors" / "follower.json"
    assert cli_main([*worker, "--credentials", str(actor)]) == 2
    assert "an outside stack's file, not a fleet's" in capsys.readouterr().err
    with pytest.raises(SecureDirError, match="a fleet worker's file"):
        Stack.from_credentials(fleet0)
    run = ["run", str(path), "--secure-dir", str(sec), "--broker", f"mqtts://127.0.0.1:{broker.port}", "--run-id", "sw"]
    run += ["--variant", "v2x", "--remote-workers", "--out", str(tmp_path / "r")]
    assert cli_main(run) == 2
    assert "--remote-workers with --secure-dir needs --seal-key FILE" in capsys.readouterr().err
    assert cli_main([*run, "--workers", "2", "--seal-key", str(key)]) == 2
    assert (
        "no credentials for the remote workers' fleet(s) fleet-1: write it with 'v2x secure init ... --workers 2'"
        in (capsys.readouterr().err)
    )
    # a secure dir made for more fleets than --workers: refused by the world too (each worker, given --of as the
    # world's --workers, refused its file, and the world waited out --worker-timeout: a diff review)
    sec2 = tmp_path / "sec2"
    assert cli_main(["secure", "init", str(sec2), "--scenario", str(path), "--run-id", "sw", "--workers", "2"]) == 0
    capsys.readouterr()
    run2 = [*run, "--workers", "1", "--seal-key", str(key)]
    run2[run2.index(str(sec))] = str(sec2)
    assert cli_main(run2) == 2
    assert "it was made for --workers 2, not --workers 1" in capsys.readouterr().err


def test_a_secure_runs_worker_with_another_worker_key_is_not_admitted(
    tmp_path: Path, secure_broker: tuple[Mosquitto, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker whose key is not the run's logs in, but the world does not admit it (it never gets the run's seal
    or signing keys): both end with exit 3 and say why."""
    broker, path, sec = secure_broker
    from v2x.net.seal import key_file

    key, theirs = _key(tmp_path), tmp_path / "theirs.key"
    key_file(theirs)
    worker = _secure_worker(
        path, "--credentials", str(sec / "fleets" / "fleet-0.json"), "--seal-key", str(theirs), "--wait", "8"
    )
    run = ["run", str(path), "--secure-dir", str(sec), "--broker", f"mqtts://127.0.0.1:{broker.port}", "--run-id", "sw"]
    run += ["--variant", "v2x", "--remote-workers", "--seal-key", str(key), "--worker-timeout", "4", "-q"]
    try:
        assert cli_main([*run, "--out", str(tmp_path / "r")]) == 3
    finally:
        wcode, err = _finish(worker, timeout_s=40)
    said = capsys.readouterr().err
    assert "fleet-0 said hello without this run's worker key (start with the same --seal-key file)" in said, said
    assert "--credentials DIR/fleets/fleet-0.json" in said
    assert wcode == 3 and "nor admitted it (does the world hold the same --seal-key file?)" in err, err[-2000:]


def test_a_secure_run_without_the_workers_variant_tells_them_there_is_nothing_to_do(
    tmp_path: Path, secure_broker: tuple[Mosquitto, Path, Path]
) -> None:
    """``--variant baseline`` in a secure run: the dismissal is published as the world (the broker lets only the
    world's login write a fleet's input topic), sealed for the worker's nonce; the worker exits 0 at once."""
    broker, path, sec = secure_broker
    key = _key(tmp_path)
    worker = _secure_worker(path, "--credentials", str(sec / "fleets" / "fleet-0.json"), "--seal-key", str(key))
    run = ["run", str(path), "--secure-dir", str(sec), "--broker", f"mqtts://127.0.0.1:{broker.port}", "--run-id", "sw"]
    run += ["--variant", "baseline", "--remote-workers", "--seal-key", str(key), "--worker-timeout", "60", "-q"]
    try:
        assert cli_main([*run, "--out", str(tmp_path / "r")]) == 0
    finally:
        wcode, err = _finish(worker)  # --wait is 600 s: only the run's word ends it in time
    assert wcode == 0, err[-2000:]
    assert "fleet-0 of run sw-v2x: nothing to do: this run (--run-id sw) runs only baseline (--variant), not v2x" in err


class _Replayer:
    """Publishes, every half second until stopped, a FleetHello sealed under the worker key with the job digest
    of fleet-0 of run ``{prefix}-v2x``: what a recording of such a hello in an earlier run with the same
    --run-id and worker key holds (the digest is the same in every run of the run id; the nonce is that
    worker's, whose admission nobody else can open)."""

    def __init__(self, broker: Mosquitto, sc: Any, prefix: str, key: bytes) -> None:
        import threading

        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        from v2x.net import topics
        from v2x.net.seal import NONCE_BYTES, RunSeal
        from v2x.wire import testbed_pb2

        (job,) = remote_jobs(sc, broker.address, prefix, 0, 1, worker_key=key)
        self.topic = topics.fleet_join(job.run_id, job.fleet_id)
        hello = testbed_pb2.FleetHello(
            fleet_id=job.fleet_id, job=job.digest(), software="v2x-testbed 0.1.0", protocol_version=1,
            host="recorded", nonce=os.urandom(NONCE_BYTES),
        )  # fmt: skip
        self.sealed = RunSeal(key).seal(self.topic, hello.SerializeToString())
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"replayer-{prefix}")
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopped.wait(0.5):
            self.client.publish(self.topic, self.sealed, qos=1)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.client.loop_stop()
        self.client.disconnect()


def test_a_replayed_sealed_hello_does_not_make_a_fleet_join(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Attack review 7: a FleetHello recorded in an earlier run of the same --run-id and worker key, replayed,
    made the world count the fleet as joined with no worker there (its job digest is the same every run): a
    lockstep run then failed after 60 s blaming the fleet, a real-time one passed without it. A worker now
    joins only once it shows the key of its admission, which a replayer cannot open: the run waits out
    --worker-timeout and names the fleet, saying it never showed that key."""
    from v2x.net.seal import key_file

    path = _scenario_file(tmp_path)
    sc = load_scenario(path)
    key, _ = key_file(_key(tmp_path))
    replayer = _Replayer(mosquitto, sc, "replay1", key)
    run = run_scenario(
        sc, broker=f"mqtt://127.0.0.1:{mosquitto.port}", variants=["v2x"], remote_workers=True, run_id="replay1",
        worker_timeout_s=4.0, worker_key=key,
    )  # fmt: skip
    try:
        with pytest.raises(RunError) as raised:
            asyncio.run(asyncio.wait_for(run, 30.0))
    finally:
        replayer.stop()
    said = str(raised.value)
    assert "fleet workers never joined run replay1-v2x within 4 s: fleet-0" in said, said
    assert "fleet-0 said a sealed hello but never showed the key of its admission" in said, said


def test_a_replayed_sealed_hello_does_not_keep_the_dismissal_from_the_real_worker(
    tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """``--variant baseline --remote-workers --seal-key``: a replayed hello of an earlier run made the run count
    fleet-0's worker as told and stop waiting, and the real worker, started a few seconds later, waited out its
    --wait (exit 3; attack review 7). The run now counts a worker told once it shows the dismissal's key: the
    real worker gets the dismissal and exits 0."""
    import threading

    from v2x.net.seal import key_file

    path = _scenario_file(tmp_path)
    sc = load_scenario(path)
    key_path = _key(tmp_path)
    key, _ = key_file(key_path)
    replayer = _Replayer(mosquitto, sc, "dis1", key)
    workers: list[subprocess.Popen[str]] = []
    later = threading.Timer(
        3.0,
        lambda: workers.append(_worker(path, mosquitto, "dis1", 0, 1, "--seal-key", str(key_path), "--wait", "20")),
    )
    args = ["run", str(path), "--broker", f"mqtt://127.0.0.1:{mosquitto.port}", "--variant", "baseline"]
    args += ["--remote-workers", "--run-id", "dis1", "--seal-key", str(key_path), "--worker-timeout", "40"]
    later.start()
    try:
        with caplog.at_level(logging.INFO, logger="v2x.run.workers"):
            code = cli_main([*args, "--out", str(tmp_path / "r"), "-q"])
    finally:
        later.join()
        replayer.stop()
        finished = [_finish(w, timeout_s=40) for w in workers]
    assert code == 0 and [c for c, _ in finished] == [0], [err[-2000:] for _, err in finished]
    assert "fleet-0 of run dis1-v2x: nothing to do: this run (--run-id dis1) runs only baseline" in finished[0][1]
    told = [r.getMessage() for r in caplog.records if "told fleet worker fleet-0" in r.getMessage()]
    assert told and "recorded" not in told[0], told  # the real worker's host, not the replayed hello's


def test_only_a_keyed_worker_takes_a_skip(tmp_path: Path) -> None:
    """Attack review 8: every `v2x worker` took a skip of up to 10 ticks (it is not told the world's clock), so one
    forged FleetInput 5 ticks ahead stalled a lockstep run with an unkeyed worker (the world's next input was then
    refused for good). A worker with a key takes the skip (its inputs are sealed); one without takes none."""
    from v2x.net.answers import REALTIME_MAX_SKIP
    from v2x.net.broker import parse_broker_url

    sc = load_scenario(_scenario_file(tmp_path))
    broker = parse_broker_url("mqtt://127.0.0.1:1883")
    (open_job,) = remote_jobs(sc, broker, "skip1", 0, 1)
    (keyed_job,) = remote_jobs(sc, broker, "skip1", 0, 1, worker_key=b"k" * 32)
    assert open_job.max_skip == 0 and keyed_job.max_skip == REALTIME_MAX_SKIP == 10
