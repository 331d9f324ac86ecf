"""Acting at delivery time (docs/ARCHITECTURE.md, "One tick"): a vehicle handles each message at its delivery
time inside the tick, its warning is timed there, the driver's reaction begins exactly ``reaction_s`` later
(the motion is split inside the tick), and the result's ``app_latency_ms`` measures from the triggering
message's sending to the warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._agents import offline_sim, tick_ctx
from v2x.agents.base import Heard
from v2x.agents.vehicle import VehicleAgent
from v2x.run.results import check
from v2x.run.runner import build_agents, environment
from v2x.scenario import ScenarioError, load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.wire import frame_pb2, testbed_pb2
from v2x.wire.envelope import temporary_id

DT = 0.1
DELAY = 0.003  # every message is delivered 3 ms after it was sent


def _fcw_vehicles() -> dict[str, VehicleAgent]:
    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    return {a.actor_id: a for a in build_agents(sc, environment(sc)) if isinstance(a, VehicleAgent)}


def test_a_warning_is_timed_at_its_message_s_delivery_and_braking_starts_reaction_s_later() -> None:
    """The lead brakes at t = 6.0 s and its BSMs reach the follower 3 ms after each tick. The FCW warning is
    raised at a BSM's delivery time (tx + 3 ms, not the next tick), names that BSM's sending as its trigger,
    and the driver (reaction 1.0 s, 7 m/s^2) starts braking exactly 1.0 s later, inside a tick: the speed and
    the distance of that tick are those of braking from that instant."""
    cars = _fcw_vehicles()
    lead, follower = cars["lead"], cars["follower"]
    assert follower.driver is not None
    v0, brake = 16.67, follower.driver.brake_mps2
    inbox: list[Heard] = []
    warning: testbed_pb2.Advisory | None = None
    speeds: dict[int, tuple[float, float]] = {}  # tick -> (speed, distance along the route) after it
    for tick in range(0, 90):
        t = round(tick * DT, 9)
        follower_out = follower.step(tick_ctx(tick, tuple(inbox)))
        lead_out = lead.step(tick_ctx(tick))
        if warning is None and follower_out.events:
            warning = follower_out.events[0]
        speeds[tick] = (follower.v, follower.s)
        inbox = [Heard("lead", tx.link, t + DELAY, t, tx.frame) for tx in lead_out.transmissions]
    assert warning is not None and warning.app == testbed_pb2.APP_FCW
    sent = warning.trigger_sent_at_s
    assert warning.HasField("trigger_sent_at_s") and sent == pytest.approx(round(sent / DT) * DT, abs=1e-9)
    assert 6.0 <= sent <= 6.3
    assert warning.raised_at_s == pytest.approx(sent + DELAY, abs=1e-12)  # when the driver is warned
    brake_at = warning.raised_at_s + 1.0
    assert follower.driver.brake_at_s == pytest.approx(brake_at, abs=1e-12)
    k = int(brake_at / DT)  # the tick before braking starts: t_k < brake_at < t_k+1
    before, after = speeds[k], speeds[k + 1]
    into = round((k + 1) * DT, 9) - brake_at  # braking time inside tick k+1: 97 ms
    assert into == pytest.approx(DT - DELAY, abs=1e-9)
    assert before[0] == pytest.approx(v0, abs=1e-9)
    assert after[0] == pytest.approx(v0 - brake * into, abs=1e-9)  # not v0 (next tick) nor v0 - brake * DT
    assert after[1] - before[1] == pytest.approx(v0 * DT - 0.5 * brake * into * into, abs=1e-9)


def test_a_received_advisory_is_echoed_at_its_delivery_time_with_its_trigger() -> None:
    """An ICW advisory the platform raised at t = 0.1 s (prompted by a BSM sent at 0.0 s) reaches the vehicle
    at 0.104 s: its Ack reports it raised at 0.104 s, when the driver is warned, keeping the trigger."""
    follower = _fcw_vehicles()["follower"]
    follower.step(tick_ctx(0))
    adv = testbed_pb2.Advisory(
        app=testbed_pb2.APP_ICW,
        severity=testbed_pb2.SEVERITY_WARNING,
        target_id="follower",
        other_id=temporary_id("lead").hex(),
        source_id="cloud",
        raised_at_s=0.1,
        valid_until_s=3.1,
        trigger_sent_at_s=0.0,
    )
    heard = Heard("cloud", testbed_pb2.LINK_UU, 0.104, 0.1, frame_pb2.MessageFrame(advisory=adv))  # (fcw's platform)
    follower.step(tick_ctx(1))
    out = follower.step(tick_ctx(2, (heard,)))
    assert [(e.raised_at_s, e.trigger_sent_at_s, e.source_id) for e in out.events] == [(0.104, 0.0, "cloud")]
    assert follower.driver is not None and follower.driver.brake_at_s == pytest.approx(1.104, abs=1e-12)


def _advisory(app: int, other: str, raised: float, sent: float | None) -> testbed_pb2.Advisory:
    adv = testbed_pb2.Advisory(
        app=app,  # type: ignore[arg-type]
        severity=testbed_pb2.SEVERITY_WARNING,
        target_id="follower",
        other_id=other,
        source_id="follower",
        raised_at_s=raised,
        valid_until_s=raised + 3.0,
    )
    if sent is not None:
        adv.trigger_sent_at_s = sent
    return adv


def test_app_latency_is_from_the_trigger_s_sending_to_the_warning_per_app() -> None:
    """Two FCW warnings 3 ms and 90 ms after their triggers, an EBW one 12 ms after, and one without a trigger
    (not counted): ``app_latency_ms`` per app, p50/p95/max and the count; none in the baseline."""
    sim = offline_sim(load_scenario(SCENARIO_DIR / "fcw.yaml"))
    lead, neighbour = temporary_id("lead").hex(), temporary_id("neighbour").hex()
    reported = {
        2: [
            _advisory(testbed_pb2.APP_FCW, lead, 0.103, 0.1),
            _advisory(testbed_pb2.APP_FCW, neighbour, 0.19, 0.1),
            _advisory(testbed_pb2.APP_EBW, lead, 0.2, 0.188),
        ],
        3: [_advisory(testbed_pb2.APP_VRUCW, lead, 0.3, None)],
    }
    for tick in range(5):
        sim.begin(tick)
        for actor in sim.actor_ids:
            events = reported.get(tick, []) if actor == "follower" else []
            ack = testbed_pb2.Ack(actor_id=actor, tick=tick, events=events)
            sim.receive("ack", actor, ack.SerializeToString())
        sim.step()
    m = sim.metrics(0.0)
    assert m["rejected"] == {}
    assert m["app_latency_ms"] == {
        "ebw": {"p50": 12.0, "p95": 12.0, "max": 12.0, "warnings": 1},
        "fcw": {"p50": 46.5, "p95": 85.65, "max": 90.0, "warnings": 2},
    }
    assert [e["t_s"] for e in sim.report(0.0).events if e["type"] == "warning"] == [0.103, 0.19, 0.2, 0.3]
    assert offline_sim(load_scenario(SCENARIO_DIR / "fcw.yaml"), "baseline").metrics(0.0)["app_latency_ms"] == {}


def test_a_warning_raised_after_the_tick_its_ack_answers_is_rejected() -> None:
    """``raised_at_s`` later than the Ack's tick, or a trigger sent after the warning: the Ack is rejected
    (``out_of_range``), and nothing is recorded."""
    sim = offline_sim(load_scenario(SCENARIO_DIR / "fcw.yaml"))
    lead = temporary_id("lead").hex()
    sim.begin(0)
    for adv in (_advisory(testbed_pb2.APP_FCW, lead, 0.05, None), _advisory(testbed_pb2.APP_FCW, lead, 0.0, 0.01)):
        ack = testbed_pb2.Ack(actor_id="follower", tick=0, events=[adv])
        sim.receive("ack", "follower", ack.SerializeToString())
    assert sim.metrics(0.0)["rejected"] == {"out_of_range": 2}


def test_a_metric_expectation_checks_an_app_s_application_latency(tmp_path: Path) -> None:
    """``metric: app_latency_ms_p95`` with ``app``: the result's ``app_latency_ms`` of that app, within bounds (a
    Day-1 budget is end to end, not one hop: a domain review); a bound it breaks fails, an app with no warning
    is not measured (fails), and the loader refuses the metric without ``app`` and ``app`` on another metric."""
    text = (SCENARIO_DIR / "fcw.yaml").read_text()
    exps = {
        "ok": "{name: ok, type: metric, metric: app_latency_ms_p95, app: fcw, max: 100}",
        "over": "{name: over, type: metric, metric: app_latency_ms_max, app: fcw, max: 50}",
        "none": "{name: none, type: metric, metric: app_latency_ms_p50, app: ebw, max: 100}",
    }
    sc = load_scenario(_write(tmp_path, text + "".join(f"  - {e}\n" for e in exps.values())))
    metrics = {"v2x": {"app_latency_ms": {"fcw": {"p50": 46.5, "p95": 85.65, "max": 90.0, "warnings": 2}}}}
    got = {e.name: check(e, [], metrics) for e in sc.expectations if e.name in exps}
    assert got == {
        "ok": (True, "app_latency_ms_p95 of FCW = 85.65 (expected <= 100)"),
        "over": (False, "app_latency_ms_max of FCW = 90.0 (expected <= 50)"),
        "none": (False, "app_latency_ms_p50 of EBW not measured in variant v2x"),
    }
    for bad, said in (
        ("{name: b, type: metric, metric: app_latency_ms_p95, max: 100}", "needs 'app'"),
        ("{name: b, type: metric, metric: latency_ms_p95, app: fcw, max: 100}", "'app' applies to"),
    ):
        with pytest.raises(ScenarioError) as info:
            load_scenario(_write(tmp_path, text + f"  - {bad}\n"))
        assert any(said in msg for _, msg in info.value.problems), info.value.problems


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sc.yaml"
    path.write_text(text)
    return path
