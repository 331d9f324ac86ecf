"""Fleet workers through broker restarts: a lockstep run whose fleets run in worker processes, spawned by the
run (``v2x run --workers 2``) or started on their own (``v2x worker`` + ``--remote-workers``), on a real
Mosquitto that is stopped and started again twice in the middle of the run, resumes with the outcome of the
run with one fleet in the world's process, without a restart (which tests/test_workers.py shows is the
outcome of two workers without a restart). The restarts come at fixed ticks (an observer holds the world
while the broker is away; the second one right after the world sent a tick's inputs, so that inputs or
answers in flight are lost); what is lost depends on timing, the outcome must not."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._mosquitto import Mosquitto, mosquitto_binary
from tests.test_remote_workers import _finish, _worker
from tests.test_workers import _scenario
from v2x.net.clock import LockstepClock
from v2x.run import runner
from v2x.run.runner import run_scenario, warm_up_core
from v2x.sim.simulation import Simulation

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.broker

RETRANSMIT_AFTER_S = 0.5  # the world's lockstep retransmission, shorter than the default 2 s to keep it fast


def _outcome(result: dict[str, Any]) -> str:
    """Events, verdicts and metrics (messages among them) but for wall time and duplicates (a message sent
    again after the restart may arrive twice: counted as a duplicate and dropped)."""
    metrics = {
        v: {k: x for k, x in m.items() if k not in ("wall_seconds", "duplicates")} for v, m in result["metrics"].items()
    }
    return json.dumps({"events": result["events"], "metrics": metrics, "passed": result["passed"]}, sort_keys=True)


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    """A Mosquitto of this test's own (it is restarted)."""
    mq = Mosquitto(mosquitto_binary())
    mq.start()
    try:
        yield mq
    finally:
        mq.stop()


@pytest.fixture
def quick_retransmission(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        runner,
        "make_clock",
        lambda mode, tick_s: LockstepClock(tick_s, retransmit_after_s=RETRANSMIT_AFTER_S, give_up_after_s=20.0),
    )


class RestartBroker:
    """An observer that restarts the broker twice: between two ticks (when tick ``between`` closes, holding
    the world until the broker is back), and in the middle of tick ``within`` (right after the world sent
    its inputs: the fleets' inputs or their answers may be lost). The broker is away ``away_s`` each time."""

    def __init__(self, broker: Mosquitto, between: int, within: int, away_s: float = 0.5) -> None:
        self.broker, self.between, self.within, self.away_s = broker, between, within, away_s
        self.restarts = 0
        self._later: asyncio.Task[None] | None = None

    async def on_tick(self, sim: Simulation, tick: int, events: list[dict[str, Any]]) -> None:
        if tick == self.between:
            await asyncio.to_thread(self.broker.stop)
            await self._start_again()

    def on_inputs(self, sim: Simulation, names: list[str]) -> None:
        if sim.current_tick == self.within and self._later is None:
            self.broker.stop()  # at once: before the fleets' answers come back
            self._later = asyncio.get_running_loop().create_task(self._start_again())

    async def _start_again(self) -> None:
        await asyncio.sleep(self.away_s)
        await asyncio.to_thread(self.broker.start)
        self.restarts += 1


def test_fleet_workers_resume_after_a_broker_restart_with_the_same_outcome(
    tmp_path: Path, broker: Mosquitto, quick_retransmission: None
) -> None:
    sc = _scenario(tmp_path)
    assert sc.n_ticks > 8
    warm_up_core([sc])
    url = f"mqtt://127.0.0.1:{broker.port}"
    one = asyncio.run(run_scenario(sc, seed=0, broker="loopback", variants=["v2x"]))
    assert [e for e in one["events"] if e["type"] == "warning" and e["target"].startswith("bg-")]
    restart = RestartBroker(broker, between=3, within=6)
    restarted = asyncio.run(
        run_scenario(sc, seed=0, broker=url, variants=["v2x"], workers=2, observe=lambda variant, run_id: restart)
    )
    assert restart.restarts == 2
    assert _outcome(restarted) == _outcome(one)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_broker_restart_in_the_final_tick_loses_no_answer_for_good(
    tmp_path: Path, broker: Mosquitto, quick_retransmission: None, workers: int
) -> None:
    """The broker goes away right after the world sent the final tick's inputs: the agents and fleets, which
    answered that tick already or answer it into the void, still answer the world's re-sends of it once the
    broker is back (they ended at their final tick, and the run stalled until the world gave up, exit 3 with
    no result: found by an attack test)."""
    sc = _scenario(tmp_path)
    warm_up_core([sc])
    url = f"mqtt://127.0.0.1:{broker.port}"
    one = asyncio.run(run_scenario(sc, seed=0, broker="loopback", variants=["v2x"]))
    restart = RestartBroker(broker, between=3, within=sc.n_ticks)
    restarted = asyncio.run(
        run_scenario(sc, seed=0, broker=url, variants=["v2x"], workers=workers, observe=lambda variant, run_id: restart)
    )
    assert restart.restarts == 2
    assert _outcome(restarted) == _outcome(one)


def test_remote_workers_resume_after_a_restart_of_the_one_broker(
    tmp_path: Path, broker: Mosquitto, quick_retransmission: None, caplog: pytest.LogCaptureFixture
) -> None:
    """``v2x run --workers 2 --remote-workers`` and two ``v2x worker`` processes on one Mosquitto, restarted
    twice during the run: the broker publishes the world's Last Will (STOP "world lost") to the workers, who
    wait for the world to come back instead of giving up; the outcome is the single-process run's. The
    world's log says when each worker lost its connection and when it was back."""
    sc = _scenario(tmp_path)
    warm_up_core([sc])
    one = asyncio.run(run_scenario(sc, seed=0, broker="loopback", variants=["v2x"]))
    workers = [_worker(tmp_path / "fleets.yaml", broker, "restart2", k, 2, "--wait", "60") for k in range(2)]
    restart = RestartBroker(broker, between=3, within=6)
    try:
        with caplog.at_level(logging.INFO, logger="v2x.run.workers"):
            restarted = asyncio.run(
                run_scenario(
                    sc,
                    seed=0,
                    broker=f"mqtt://127.0.0.1:{broker.port}",
                    variants=["v2x"],
                    workers=2,
                    remote_workers=True,
                    worker_timeout_s=60.0,
                    run_id="restart2",
                    observe=lambda variant, run_id: restart,
                )
            )
    finally:
        finished = [_finish(w) for w in workers]
    assert [c for c, _ in finished] == [0, 0], [err[-3000:] for _, err in finished]
    assert restart.restarts == 2
    assert _outcome(restarted) == _outcome(one)
    for k, (_, err) in enumerate(finished):  # the world's Last Will, which the broker published, waited out
        assert f"fleet-{k} of run restart2-v2x: the world lost its connection after tick 3" in err
        assert f"fleet-{k} of run restart2-v2x: the world is back" in err
        assert f"fleet-{k} of run restart2-v2x: done after tick {sc.n_ticks}" in err
    said = caplog.text
    assert "fleet worker fleet-0 (" in said and ") lost its connection" in said
    assert said.count(") is back") == said.count(") lost its connection")
