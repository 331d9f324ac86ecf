"""Fleets in worker processes (``v2x run --workers N``): the outcome does not depend on N, and bad uses are
refused. Workers connect to a real broker (the embedded one here)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._mosquitto import Mosquitto
from v2x.bench.stack import stack_scenario
from v2x.cli import main as cli_main
from v2x.run import runner
from v2x.run.runner import RunError, Signing, run_scenario, warm_up_core
from v2x.scenario import load_scenario
from v2x.scenario.model import Scenario
from v2x.sim.simulation import Simulation


def _scenario(tmp_path: Path, seconds: float = 1.0) -> Scenario:
    """Fully equipped background traffic on 4 lanes with cars standing in them: the vehicles prefilled just
    behind a standing car get FCW from the fleet."""
    doc = stack_scenario(200, seconds, lanes=4)
    for k in range(4):
        for j, start in enumerate((300, 900)):
            doc["actors"].append(
                {"id": f"stalled{k}{j}", "kind": "car", "lane": f"l{k}", "start_m": start + 37 * k, "speed_mps": 0.0}
            )
    path = tmp_path / "fleets.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_scenario(path)


def _outcome(result: dict[str, Any]) -> str:
    metrics = {
        v: {k: x for k, x in m.items() if k not in ("wall_seconds", "duplicates")} for v, m in result["metrics"].items()
    }
    return json.dumps({"events": result["events"], "metrics": metrics, "passed": result["passed"]}, sort_keys=True)


def test_the_outcome_is_the_same_with_one_fleet_and_with_two_worker_processes(tmp_path: Path) -> None:
    sc = _scenario(tmp_path)
    warm_up_core([sc])
    one = asyncio.run(run_scenario(sc, seed=0, broker="embedded", variants=["v2x"]))
    two = asyncio.run(run_scenario(sc, seed=0, broker="embedded", variants=["v2x"], workers=2))
    fleet_warnings = [e for e in one["events"] if e["type"] == "warning" and e["target"].startswith("bg-")]
    assert fleet_warnings  # the fleets did raise FCW, so the comparison means something
    assert _outcome(one) == _outcome(two)
    assert "fleet_workers" not in one["run"]  # the result says where the fleets ran (not part of the outcome)
    assert two["run"]["fleet_workers"] == {"processes": 2, "remote": False}


def test_the_outcome_is_the_same_whether_the_fleets_send_their_warnings_a_tick_later_or_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``FleetInput.warnings_next_tick`` (on by default: the fleets run their apps while the world closes the
    tick and send the warnings with the next tick's bundle) leaves the outcome as it is without it."""
    sc = _scenario(tmp_path)
    warm_up_core([sc])
    later = asyncio.run(run_scenario(sc, seed=0, broker="embedded", variants=["v2x"], workers=2))
    monkeypatch.setattr(Simulation, "fleet_warnings_next_tick", False)
    at_once = asyncio.run(run_scenario(sc, seed=0, broker="embedded", variants=["v2x"], workers=2))
    assert [e for e in later["events"] if e["type"] == "warning" and e["target"].startswith("bg-")]
    assert _outcome(later) == _outcome(at_once)


def test_workers_need_a_broker(tmp_path: Path) -> None:
    sc = _scenario(tmp_path)
    with pytest.raises(RunError, match="needs an MQTT broker"):
        asyncio.run(run_scenario(sc, seed=0, broker="loopback", variants=["v2x"], workers=2))
    with pytest.raises(ValueError, match="workers"):
        asyncio.run(run_scenario(sc, seed=0, broker="embedded", workers=0))


def test_check_passes_workers_through_to_its_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``v2x check --workers 2`` runs the fleets in 2 worker processes; the outcome matches the golden
    record made with one fleet."""
    sc = _scenario(tmp_path)
    path = tmp_path / "fleets.yaml"
    out = str(tmp_path / "out")
    assert cli_main(["check", str(path), "--update-golden", "--jobs", "1", "--out", out]) == 0
    assert (tmp_path / "golden" / f"{sc.id}.json").exists()
    asked: list[int] = []

    async def counted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        asked.append(kwargs["workers"])
        return await run_scenario(*args, **kwargs)

    monkeypatch.setattr(runner, "run_scenario", counted)  # --jobs 1: the runs are in this process
    assert cli_main(["check", str(path), "--workers", "2", "--jobs", "1", "--out", out]) == 0
    assert asked == [2]


@pytest.mark.serial
def test_a_real_time_run_spreads_its_fleets_over_the_cores_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``v2x run`` without ``--workers``: 1 in lockstep; in real time one fleet process per core (at most
    ``REALTIME_MAX_WORKERS``), as ``v2x bench realtime`` measures it; 1 with ``--remote-workers`` (whoever
    starts those tells them N) and on the loopback bus; ``--workers N`` as given."""
    import os

    from v2x.run import REALTIME_MAX_WORKERS, default_workers

    for cores, want in ((1, 1), (2, 2), (64, REALTIME_MAX_WORKERS)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, c=cores: set(range(c)), raising=False)
        assert default_workers("realtime", "mqtt://127.0.0.1:1883") == want
        assert default_workers("realtime", "embedded") == want
        assert default_workers("realtime", "loopback") == 1  # the in-process bus reaches no other process
        assert default_workers("lockstep", "embedded") == 1
    _scenario(tmp_path)
    path = str(tmp_path / "fleets.yaml")
    asked: list[int] = []

    async def refused(*args: Any, **kwargs: Any) -> dict[str, Any]:
        asked.append(kwargs["workers"])
        raise RunError("not run here")

    monkeypatch.setattr(runner, "run_scenario", refused)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    out = ["--out", str(tmp_path / "out"), "-q"]
    for extra, want in (
        ([], 1),
        (["--mode", "realtime"], 2),
        (["--mode", "realtime", "--workers", "1"], 1),
        (["--mode", "realtime", "--remote-workers", "--run-id", "rw"], 1),
        (["--workers", "3"], 3),
    ):
        asked.clear()
        assert cli_main(["run", path, *extra, *out]) == 3, extra
        assert asked == [want], extra
    capsys.readouterr()


def test_the_fleets_vehicles_sign_their_bsms_in_a_signed_run(tmp_path: Path) -> None:
    """With signatures (``--secure``) the fleet's BSMs are signed and accepted (none ``unsigned``), in the
    runner's process and in worker processes: the outcome and the message counts are the unsigned run's."""
    sc = _scenario(tmp_path)
    warm_up_core([sc])
    plain = asyncio.run(run_scenario(sc, seed=0, broker="loopback", variants=["v2x"]))
    signed = asyncio.run(run_scenario(sc, seed=0, broker="loopback", variants=["v2x"], signing=Signing()))
    two = asyncio.run(run_scenario(sc, seed=0, broker="embedded", variants=["v2x"], signing=Signing(), workers=2))
    assert plain["metrics"]["v2x"]["messages"]["sent"]["pc5"] > 1000  # the fleet's BSMs, mostly
    for result in (signed, two):
        assert result["run"]["signed"] == "ecdsa-p256"
        assert result["metrics"]["v2x"]["rejected"] == {}
        assert result["metrics"]["v2x"].pop("unverified_ticks_by_actor") == {}  # (a signed run's metric only)
        assert _outcome(result) == _outcome(plain)


def test_a_fleet_host_heeds_a_dismissal_only_before_its_first_tick(tmp_path: Path) -> None:
    """A FleetInput with ``dismissed`` ends a fleet host started on its own that has served no tick (no world
    will serve it: ``v2x run --variant baseline --remote-workers``), and is refused as ``malformed`` once it
    serves one; a fleet the run started refuses it always (a forged one had ended a run's workers before its
    first tick: found by an attack test)."""
    from v2x.agents.fleet import FleetAgent
    from v2x.apps.thresholds import resolve
    from v2x.geodesy import LocalFrame
    from v2x.net import topics
    from v2x.net.fleet import FleetHost
    from v2x.net.transport import LoopbackBroker, LoopbackTransport
    from v2x.wire import testbed_pb2

    sc = _scenario(tmp_path)
    frame = LocalFrame(sc.origin.lat_deg, sc.origin.lon_deg, sc.origin.alt_m)

    tick0 = testbed_pb2.FleetInput(run_id="r1", tick=0, tick_us=100_000)
    tick1 = testbed_pb2.FleetInput(run_id="r1", tick=1, tick_us=100_000, time_us=100_000, final=True)  # (the last)

    async def serve(first: testbed_pb2.FleetInput, dismissable: bool = True) -> FleetHost:
        bus = LoopbackBroker()
        transport = LoopbackTransport(bus, "fleet")
        agent = FleetAgent("fleet-0", frame=frame, epoch=sc.epoch, thresholds=resolve(sc.thresholds))
        host = FleetHost(transport, "r1", agent, n_ticks=1, dismissable=dismissable)
        connection = asyncio.create_task(transport.run())
        await transport.connected.wait()
        world = LoopbackTransport(bus, "world")
        world_connection = asyncio.create_task(world.run())
        await world.connected.wait()
        dismissal = testbed_pb2.FleetInput(run_id="r1", dismissed="not run")
        for message in (first, dismissal, *(() if dismissable else (tick0,)), tick1):
            await world.publish(topics.fleet_input("r1", "fleet-0"), message.SerializeToString())
        try:
            await asyncio.wait_for(host.run(), 10.0)
        finally:
            for tp, task in ((transport, connection), (world, world_connection)):
                tp.stop()
                await asyncio.gather(task, return_exceptions=True)
        return host

    dismissed = asyncio.run(serve(testbed_pb2.FleetInput(run_id="r1", dismissed="not run")))
    assert (dismissed.dismissed, dismissed.last_tick) == ("not run", -1)
    served = asyncio.run(serve(tick0))
    assert (served.dismissed, served.last_tick, served.rejected["malformed"]) == ("", 1, 1)
    started = asyncio.run(serve(testbed_pb2.FleetInput(run_id="r1", dismissed="not run"), dismissable=False))
    assert (started.dismissed, started.last_tick, started.rejected["malformed"]) == ("", 1, 2)


def _hugepages_now() -> bool | None:
    from v2x.run.workers import _set_madvise_hugepage

    now = _set_madvise_hugepage(True)
    if now is not None:
        _set_madvise_hugepage(now)
    return now


def test_the_tick_loop_runs_without_numpys_huge_pages_and_a_lazy_young_collector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc

    from v2x.run.workers import steady_loop

    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    if _hugepages_now() is None:
        pytest.skip("this numpy has no switch for madvise(MADV_HUGEPAGE)")
    before = _hugepages_now(), gc.get_threshold()
    with steady_loop():
        assert _hugepages_now() is False
        assert gc.get_threshold()[0] == 10_000
    assert (_hugepages_now(), gc.get_threshold()) == before


@pytest.mark.parametrize("setting", [True, False])
def test_the_tick_loop_leaves_a_users_numpy_madvise_hugepage_as_set(
    monkeypatch: pytest.MonkeyPatch, setting: bool
) -> None:
    from v2x.run.workers import _set_madvise_hugepage, steady_loop

    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", str(int(setting)))
    old = _set_madvise_hugepage(setting)
    if old is None:
        pytest.skip("this numpy has no switch for madvise(MADV_HUGEPAGE)")
    try:
        with steady_loop():
            assert _hugepages_now() is setting
    finally:
        _set_madvise_hugepage(old)


def test_tick_loops_that_overlap_in_one_process_keep_the_settings_until_the_last_one_leaves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc

    from v2x.run.workers import steady_loop

    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    before = _hugepages_now(), gc.get_threshold()
    first, second = steady_loop(), steady_loop()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first run ends while the second still runs
    assert gc.get_threshold()[0] == 10_000
    assert _hugepages_now() in (False, None)
    second.__exit__(None, None, None)
    assert (_hugepages_now(), gc.get_threshold()) == before


def test_a_fleet_whose_answer_is_too_big_for_the_world_stops_the_run_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attack review's valid scenario (one flow lane of 792 km): the fleet's FleetAck grew past the world's
    limit, the world refused it tick after tick, and after 65 s the run said 'no report from fleet-0'. The
    fleet now stops the run at once, naming its answer's size and --workers (the limit shrunk here)."""
    import time

    import v2x.net.fleet

    monkeypatch.setattr(v2x.net.fleet, "MAX_FLEET_ACK_BYTES", 2_000)
    sc = _scenario(tmp_path)
    started = time.monotonic()
    with pytest.raises(RunError, match=r"fleet-0's answer for tick \d+ is [\d,]+ bytes, over the 2,000 .*--workers N"):
        asyncio.run(run_scenario(sc, seed=0, broker="loopback", variants=["v2x"]))
    assert time.monotonic() - started < 30


class _LoseFleetInputs:
    """An observer that makes the world publish no FleetInput for fleet-0 in the ticks of ``lost`` (a loss: a
    broker drops QoS 0 messages for a client whose queue is full, as a flood on the fleet's input topic made
    Mosquitto do) and notes which fleets reported each tick."""

    def __init__(self, lost: range) -> None:
        self.lost = lost
        self.reported: dict[int, set[str]] = {}

    def on_input_bytes(self, tick: int, inputs: dict[str, bytes]) -> None:
        if tick in self.lost:
            inputs.pop("fleet-0", None)

    async def on_tick(self, sim: Simulation, tick: int, events: list[dict[str, Any]]) -> None:
        self.reported[tick] = set(sim.inbound.fleet_acks)  # (this tick's, until the next one opens)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_fleet_that_lost_an_input_in_real_time_takes_the_next_one(
    tmp_path: Path, mosquitto: Mosquitto, workers: int
) -> None:
    """Attack review 7: in real time the world never sends a lost FleetInput again, and a fleet that took only
    the next tick refused every later one: its vehicles sent no BSM for the rest of the run, and the run passed.
    A fleet now takes a later tick, as the built-in agents do (in the world's process and in worker
    processes): fleet-0 reports the ticks after the lost one, and the lost tick counts against it by name."""
    sc = _scenario(tmp_path, seconds=3.0)
    warm_up_core([sc])
    lose = _LoseFleetInputs(range(5, 6))
    result = asyncio.run(
        run_scenario(
            sc, seed=0, broker=f"mqtt://127.0.0.1:{mosquitto.port}", mode="realtime", variants=["v2x"],
            workers=workers, observe=lambda variant, run_id: lose,
        )
    )  # fmt: skip
    after = [t for t in lose.reported if t > 5]
    assert after and "fleet-0" not in lose.reported[5]
    # (most, not all: on a loaded machine a tick may close before a fleet's report, the other fleet's too)
    assert sum("fleet-0" in lose.reported[t] for t in after) >= 0.5 * len(after), lose.reported
    assert result["metrics"]["v2x"]["late_reports_by_actor"].get("fleet-0", 0) >= 1


def test_a_fleet_silent_in_real_time_fails_reports_in_time(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A fleet whose reports are missing in more than 10 % of the ticks fails the run as an actor does ("reports
    in time", by its name): one muted for good passed the run with nothing flagged (attack review 7)."""
    sc = _scenario(tmp_path, seconds=2.0)
    warm_up_core([sc])
    lose = _LoseFleetInputs(range(3, sc.n_ticks + 1))
    result = asyncio.run(
        run_scenario(
            sc, seed=0, broker=f"mqtt://127.0.0.1:{mosquitto.port}", mode="realtime", variants=["v2x"],
            observe=lambda variant, run_id: lose,
        )
    )  # fmt: skip
    assert not any("fleet-0" in lose.reported[t] for t in range(3, sc.n_ticks + 1))
    ticks = result["metrics"]["v2x"]["ticks"]
    late = [e for e in result["expectations"] if e["name"] == "reports in time"]
    assert [e["detail"].split(";")[0] for e in late if e["detail"].startswith("fleet-0")] == [
        f"fleet-0: {ticks - 3} of {ticks} ticks closed without its report (its truth and warnings of those ticks "
        "were not applied in time"
    ]
    assert not result["passed"]
