"""An outside vehicle stack joins a run from its own process: examples/outside_vehicle.py drives the lead car of
the fcw scenario over a real broker, and the built-in follower's FCW must warn about it as it does about the
built-in lead. Also: an outside client that misbehaves is rejected and counted, and the run completes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from tests._mosquitto import Mosquitto
from v2x.cli import main as v2x_main
from v2x.net.broker import BrokerAddress
from v2x.run.runner import run_scenario
from v2x.scenario import Scenario, load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.wire import common_pb2, day1_pb2, frame_pb2, testbed_pb2

REPO = Path(__file__).resolve().parents[1]
CLIENT = REPO / "examples" / "outside_vehicle.py"
# The lead of scenarios/fcw.yaml: lane eb1 ([0, 0] -> [1500, 0], east), start_m 130, 16.67 m/s, and its
# scripted event (brake at 6 s at 6 m/s^2 to a stop) done by the outside stack instead.
LEAD_ARGS = ["--actor", "lead", "--start", "130,0", "--heading", "90", "--speed", "16.67", "--lane", "eb1"]
LEAD_BRAKE = ["--brake-at", "6", "--brake-rate", "6"]


def external_fcw(tmp_path: Path) -> Path:
    """scenarios/fcw.yaml with its lead driven from outside (a copy; the shipped file is unchanged)."""
    doc = yaml.safe_load((SCENARIO_DIR / "fcw.yaml").read_text(encoding="utf-8"))
    lead = next(a for a in doc["actors"] if a["id"] == "lead")
    lead["external"] = True
    del lead["events"]  # the outside stack brakes (LEAD_BRAKE); the world would ignore them anyway
    path = tmp_path / "fcw-outside.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def unique_prefix(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


class Clients:
    """Outside vehicle processes started by a test; whatever is still running at the end is killed."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, broker: BrokerAddress, run_id: str, *extra: str) -> None:
        log = (self.tmp_path / f"{run_id}.log").open("wb")
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        self.procs[run_id] = subprocess.Popen(
            [sys.executable, str(CLIENT), "--broker", broker.url, "--run", run_id, "--join-timeout", "60", *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.tmp_path,
            env=env,
        )
        log.close()

    def wait(self, run_id: str, timeout: float = 30.0) -> tuple[int, str]:
        code = self.procs[run_id].wait(timeout=timeout)
        return code, self.log(run_id)

    def log(self, run_id: str) -> str:
        return (self.tmp_path / f"{run_id}.log").read_text(encoding="utf-8", errors="replace")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def clients(tmp_path: Path) -> Iterator[Clients]:
    c = Clients(tmp_path)
    yield c
    c.stop_all()


def check_fcw_outcome(result: dict[str, Any], variants: tuple[str, ...] = ("v2x", "baseline")) -> None:
    """The fcw story with the outside lead, checked from the events themselves."""
    events = result["events"]
    if "v2x" in variants:
        fcw = [e for e in events if e["type"] == "warning" and e["variant"] == "v2x" and e["app"] == "fcw"]
        to_follower = [e for e in fcw if e["target"] == "follower"]
        assert to_follower, f"no FCW reached the follower: {events}"
        first = to_follower[0]
        assert first["other"] == "lead"  # the outside stack's BSM id maps back to its actor id
        assert 6.0 <= first["t_s"] <= 7.0, first
        assert first["ttc_s"] >= 1.5, first
        assert not [e for e in fcw if e["target"] == "neighbour"], "the adjacent-lane car was warned"
        v2x_hits = [e for e in events if e["type"] == "collision" and e["variant"] == "v2x"]
        assert not v2x_hits, v2x_hits
        assert result["metrics"]["v2x"]["messages"]["delivered"]["pc5"] > 0
    if "baseline" in variants:
        hits = [e for e in events if e["type"] == "collision" and e["variant"] == "baseline"]
        assert [sorted(e["actors"]) for e in hits] == [["follower", "lead"]], hits
    for variant in variants:
        m = result["metrics"][variant]
        assert m["rejected"] == {}, (variant, m["rejected"])
        assert m["rejected_by_agents"] == {}, (variant, m["rejected_by_agents"])
    assert result["passed"], [f"[{e['variant']}] {e['name']}: {e['detail']}" for e in result["expectations"]]


def check_client(code: int, log: str) -> None:
    assert code == 0, log
    assert "START: scenario fcw" in log, log
    assert "final tick 140: done" in log, log
    assert "[lead t=6.0s]" in log  # logs name the actor and the simulation time


@pytest.mark.broker
def test_outside_lead_with_v2x_run_on_mosquitto(mosquitto: Mosquitto, clients: Clients, tmp_path: Path) -> None:
    """The real thing: `v2x run --run-id` in one process, the outside lead in two others (one per variant)."""
    scenario = external_fcw(tmp_path)
    prefix = unique_prefix("outside")
    for variant in ("v2x", "baseline"):
        clients.start(mosquitto.address, f"{prefix}-{variant}", *LEAD_ARGS, *LEAD_BRAKE)
    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "v2x.cli", "run", str(scenario), "--broker", mosquitto.address.url]
    cmd += ["--run-id", prefix, "--out", str(out), "-q"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads((out / "fcw" / "result.json").read_text(encoding="utf-8"))
    assert result["run"]["run_ids"] == {"v2x": f"{prefix}-v2x", "baseline": f"{prefix}-baseline"}
    check_fcw_outcome(result)
    for variant in ("v2x", "baseline"):
        check_client(*clients.wait(f"{prefix}-{variant}"))


@pytest.mark.broker
async def test_outside_lead_one_variant_in_process_on_the_embedded_broker(
    embedded: BrokerAddress, clients: Clients, tmp_path: Path
) -> None:
    """run_scenario(run_id=..., variants=["v2x"]) in process: one run, one outside client, on amqtt."""
    scenario = load_scenario(external_fcw(tmp_path))
    prefix = unique_prefix("embedded")
    clients.start(embedded, f"{prefix}-v2x", *LEAD_ARGS, *LEAD_BRAKE, "--no-uplink")
    result = await run_scenario(scenario, broker=embedded.url, run_id=prefix, variants=["v2x"])
    assert list(result["metrics"]) == ["v2x"]
    assert {e["variant"] for e in result["expectations"]} == {"v2x"}
    assert result["run"]["run_ids"] == {"v2x": f"{prefix}-v2x"}
    check_fcw_outcome(result, variants=("v2x",))
    assert result["metrics"]["v2x"]["messages"]["sent"].get("uu", 0) < 430  # the lead sent no Uu uplink
    check_client(*await asyncio.to_thread(clients.wait, f"{prefix}-v2x"))


@pytest.mark.broker
async def test_fixed_run_id_can_be_reused(embedded: BrokerAddress, clients: Clients, tmp_path: Path) -> None:
    """A second run with the same id: the first run's retained STOP must not stop the new client."""
    scenario = load_scenario(external_fcw(tmp_path))
    prefix = unique_prefix("again")
    for attempt in range(2):
        clients.start(embedded, f"{prefix}-v2x", *LEAD_ARGS, *LEAD_BRAKE)
        if attempt == 1:
            await asyncio.sleep(1.5)  # the client has seen the retained STOP of the first run by now
        result = await run_scenario(scenario, broker=embedded.url, run_id=prefix, variants=["v2x"])
        check_fcw_outcome(result, variants=("v2x",))
        code, log = await asyncio.to_thread(clients.wait, f"{prefix}-v2x")
        check_client(code, log)
    assert "ignoring the STOP of an earlier run" in log


def external_icw(tmp_path: Path, actor: str = "car_b") -> Path:
    """scenarios/icw.yaml with ``actor`` driven from outside (a copy)."""
    doc = yaml.safe_load((SCENARIO_DIR / "icw.yaml").read_text(encoding="utf-8"))
    spec = next(a for a in doc["actors"] if a["id"] == actor)
    spec["external"] = True
    path = tmp_path / "icw-outside.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def check_icw_story(result: dict[str, Any], logs: dict[str, str], actor: str = "car_b", other: str = "car_a") -> None:
    """An outside car in icw (docs/PROTOCOL.md end to end): it hears its neighbours' BSMs, receives the edge
    platform's ICW warning over Uu, echoes it (so it counts) and brakes; it appears in the result (warned in
    time, no crash); without V2X it crashes into ``other`` and the world tells it so."""
    v2x, baseline = logs["v2x"], logs["baseline"]
    heard = re.findall(r"heard: (.*)", v2x)
    assert any(other in line for line in heard) and any("car_c" in line for line in heard), v2x
    assert re.search(r"advisory from edge at [\d.]+ s: APP_ICW SEVERITY_WARNING about \S+", v2x), v2x
    assert "warned: braking at 6.0 m/s^2 from t=" in v2x, v2x
    assert "collided" not in v2x
    assert f"collided with {other} at t=" in baseline, baseline
    assert "advisory from" not in baseline and "warned:" not in baseline
    events = result["events"]
    to_me = [e for e in events if e["type"] == "warning" and e["target"] == actor]
    assert to_me and {(e["app"], e["other"], e["source"], e["variant"]) for e in to_me} == {
        ("icw", other, "edge", "v2x")
    }
    crashes = [sorted(e["actors"]) for e in events if e["type"] == "collision"]
    assert crashes == [sorted([actor, other])], crashes  # in baseline only
    assert [e["variant"] for e in events if e["type"] == "collision"] == ["baseline"]
    assert result["passed"], [f"[{e['variant']}] {e['name']}: {e['detail']}" for e in result["expectations"]]


@pytest.mark.broker
def test_outside_car_hears_is_warned_brakes_and_learns_of_its_collision(
    mosquitto: Mosquitto, clients: Clients, tmp_path: Path
) -> None:
    """examples/outside_vehicle.py as car_b of icw, starting where START says (no --start): the whole story."""
    scenario = external_icw(tmp_path)
    prefix = unique_prefix("icw")
    for variant in ("v2x", "baseline"):
        clients.start(mosquitto.address, f"{prefix}-{variant}", "--actor", "car_b", "--react-brake", "6")
    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "v2x.cli", "run", str(scenario), "--broker", mosquitto.address.url]
    run = subprocess.run([*cmd, "--run-id", prefix, "--out", str(out), "-q"], capture_output=True, text=True,
                         timeout=120, cwd=REPO, check=False)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    logs = {}
    for variant in ("v2x", "baseline"):
        code, logs[variant] = clients.wait(f"{prefix}-{variant}")
        assert code == 0, logs[variant]
    check_icw_story(json.loads((out / "icw" / "result.json").read_text(encoding="utf-8")), logs)


# --------------------------------------------------------------------------------------------------------------
# Misbehaving outside clients
# --------------------------------------------------------------------------------------------------------------


class Intruder:
    """A paho client that publishes ``payloads(tick)`` when the lead's TickInput(tick) goes by (for each
    tick in ``ticks``): the messages arrive while the world is in that tick."""

    def __init__(
        self, broker: BrokerAddress, run_id: str, ticks: range, payloads: Callable[[int], list[tuple[str, bytes]]]
    ) -> None:
        self.ticks = ticks
        self.payloads = payloads
        self.done: set[int] = set()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"intruder-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, *_: c.subscribe(f"v2x/{run_id}/in/lead")
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        tick = testbed_pb2.TickInput.FromString(bytes(msg.payload)).tick
        if tick in self.ticks and tick not in self.done:
            self.done.add(tick)
            for topic, payload in self.payloads(tick):
                client.publish(topic, payload)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _envelope(sender: str, frame: bytes, *, tick: int, seq: int) -> bytes:
    env = testbed_pb2.Envelope(sender_id=sender, seq=seq, tick=tick, link=testbed_pb2.LINK_PC5, frame=frame)
    return env.SerializeToString()


@pytest.mark.broker
async def test_misbehaving_outside_client_is_rejected_and_counted(
    mosquitto: Mosquitto, clients: Clients, tmp_path: Path
) -> None:
    """Publishing on another actor's topic, as an actor not in the scenario, or garbage on its own topics:
    each is rejected and counted by reason, the run completes and the outcome is unchanged."""
    scenario: Scenario = load_scenario(external_fcw(tmp_path))
    prefix = unique_prefix("intruder")
    run_id = f"{prefix}-v2x"
    tick = 20
    bsm = frame_pb2.MessageFrame(bsm=day1_pb2.BSM(id=b"\x00" * 8, pos=common_pb2.Position3D())).SerializeToString()
    bad = [
        # the lead's stack publishing on the follower's topic (its own envelope, or one claiming to be the follower)
        (f"v2x/{run_id}/tx/follower", _envelope("lead", bsm, tick=tick, seq=10**6)),
        # garbage on its own topics
        (f"v2x/{run_id}/tx/lead", b"\xff\x00not protobuf\x13\x37"),
        (f"v2x/{run_id}/ack/lead", b"\xff\xff\xff"),
        # a frame with no message type this protocol knows
        (f"v2x/{run_id}/tx/lead", _envelope("lead", b"\x90\x03\x01", tick=tick, seq=10**6 + 1)),
        # an actor the scenario does not have
        (f"v2x/{run_id}/tx/ghost", _envelope("ghost", bsm, tick=tick, seq=1)),
        (f"v2x/{run_id}/join/ghost", testbed_pb2.Hello(actor_id="ghost", protocol_version=1).SerializeToString()),
    ]
    clients.start(mosquitto.address, run_id, *LEAD_ARGS, *LEAD_BRAKE)
    intruder = Intruder(mosquitto.address, run_id, range(tick, tick + 1), lambda _tick: bad)
    try:
        started = time.monotonic()
        result = await run_scenario(scenario, broker=mosquitto.address.url, run_id=prefix, variants=["v2x"])
    finally:
        intruder.close()
    assert intruder.done == {tick}
    assert time.monotonic() - started < 60
    rejected = result["metrics"]["v2x"]["rejected"]
    # the envelope on the follower's topic: forged (the follower is the run's own agent, whose messages carry the
    # run's seal; an outside stack's topic would give sender_mismatch), the rest as the world's checks say
    assert rejected == {"malformed": 2, "forged": 1, "unknown_type": 1, "unknown_sender": 2}, rejected
    assert result["passed"], result["expectations"]  # the outcome is unchanged
    check_client(*await asyncio.to_thread(clients.wait, run_id))


# --------------------------------------------------------------------------------------------------------------
# v2x run --run-id / --variant
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run-id", "bad/id"], "--run-id 'bad/id': use 1-55 characters of A-Z a-z 0-9 _ . -"),
        (["--run-id", "+"], "--run-id '+': use 1-55"),
        (["--run-id", "x" * 56], "use 1-55 characters"),
        (["--run-id", ""], "--run-id '': use 1-55"),
        (["icw", "--run-id", "ok"], "--run-id takes a single scenario"),
    ],
)
def test_bad_run_id_exits_2_before_anything_runs(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = v2x_main(["run", "fcw", *args, "--out", str(tmp_path)])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "fcw").exists()


def test_an_outside_actor_on_the_embedded_broker_is_refused_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The embedded broker listens on a random port inside the process: an outside stack cannot join, and
    the run waited 30 s before "never joined" (an outside review). Now exit 2 at once, saying what to do."""
    code = v2x_main(["run", str(external_fcw(tmp_path)), "--out", str(tmp_path / "out")])
    assert code == 2 and not (tmp_path / "out").exists()
    err = capsys.readouterr().err
    assert "lead is driven by an outside stack (external: true), which cannot reach the embedded broker" in err
    assert "--broker mqtt://HOST:PORT" in err
    # v2x check too (and the pytest plugin: one failing item)
    folder = tmp_path / "sc"
    folder.mkdir()
    external_fcw(folder)
    assert v2x_main(["check", str(folder), "--out", str(tmp_path / "checked")]) == 2
    assert "which cannot reach the embedded broker" in capsys.readouterr().err


@pytest.mark.broker
def test_a_run_says_it_waits_for_outside_stacks_and_for_how_long(
    mosquitto: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A run with an outside actor whose stack never came waited 30 s in silence, then exited 3 (a newcomer
    review): it now says whom it waits for and how long, and --join-timeout sets that."""
    argv = ["run", str(external_fcw(tmp_path)), "--variant", "v2x", "--broker", mosquitto.address.url]
    caplog.set_level(logging.WARNING, logger="v2x.run")  # (whatever an earlier test left the root logger at)
    started = time.monotonic()
    code = v2x_main([*argv, "--run-id", "nobody-comes", "--join-timeout", "1", "--out", str(tmp_path / "out")])
    assert code == 3 and time.monotonic() - started < 20
    assert "run nobody-comes-v2x: waiting up to 1 s for the outside stacks of lead to join" in caplog.text
    assert "never joined run nobody-comes-v2x within 1 s: lead\n" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        v2x_main([*argv, "--join-timeout", "nan"])
    assert exit_.value.code == 2


def test_run_id_and_variant_appear_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        v2x_main(["run", "--help"])
    out = capsys.readouterr().out
    assert "--run-id PREFIX" in out and "PREFIX-v2x" in out and "--variant" in out


@pytest.mark.broker
def test_variant_and_run_id_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`v2x run fcw --variant baseline --run-id cli`: one run, named cli-baseline, only its expectations."""
    code = v2x_main(["run", "fcw", "--variant", "baseline", "--run-id", "cli", "--out", str(tmp_path), "-q"])
    assert code == 0, capsys.readouterr()
    result = json.loads((tmp_path / "fcw" / "result.json").read_text(encoding="utf-8"))
    assert result["run"]["run_ids"] == {"baseline": "cli-baseline"}
    assert list(result["metrics"]) == ["baseline"]
    assert [e["variant"] for e in result["expectations"]] == ["baseline"]
    assert result["passed"]
