"""Collisions with consequences (docs/PROTOCOL.md, "Collisions"): the world holds a road user at rest where it
touched, whatever its stack reports afterwards; a built-in agent stops when it is told; and the shipped
queue-crash pile-up, end to end: collisions in order, the cars at rest where they hit, and the last car's
EBW keeping it out of the second collision."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._agents import offline_sim, tick_ctx
from v2x.agents.vehicle import VehicleAgent
from v2x.run.runner import build_agents, environment, run_scenario
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.sim.simulation import Simulation
from v2x.wire import testbed_pb2
from v2x.wire.bsm import decode_bsm

QUEUE = SCENARIO_DIR / "queue-crash.yaml"
CAR_LENGTH_M = 5.0


def _ack(actor: str, tick: int, x: float, speed: float) -> bytes:
    ack = testbed_pb2.Ack(actor_id=actor, tick=tick)
    ack.truth.CopyFrom(testbed_pb2.TruthState(x_m=x, vx_mps=speed, heading_deg=90.0, speed_mps=speed))
    return ack.SerializeToString()


def _where(sim: Simulation, actor: str) -> tuple[float, float, float]:
    s = sim.world.slot_of(actor)
    w = sim.world
    return round(float(w.x[s]), 6), round(float(w.vx[s]), 6), round(float(w.vy[s]), 6)


def test_a_stack_that_keeps_reporting_motion_after_its_collision_stays_at_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The middle car's stack (any stack: the world sees only its Acks) drives on at 15 m/s through the lead
    and on towards the last car after the collision, tick after tick; the world keeps it where it touched."""
    sim = offline_sim(load_scenario(QUEUE), "baseline")
    caplog.set_level(logging.INFO, logger="v2x.sim.referee")
    told: dict[str, list[tuple[str, float]]] = {}
    events = []
    for tick in range(8):
        inputs = sim.begin(tick)
        for actor, raw in inputs.items():
            got = testbed_pb2.TickInput.FromString(raw).collisions
            told.setdefault(actor, []).extend((c.other_id, c.t_s) for c in got)
        middle_x = 91.0 + 1.5 * tick  # 15 m/s; its box first overlaps the lead's (at 100 m) at tick 3
        sim.receive("ack", "lead", _ack("lead", tick, 100.0, 0.0))
        sim.receive("ack", "middle", _ack("middle", tick, middle_x, 15.0))
        sim.receive("ack", "last", _ack("last", tick, 60.0, 0.0))
        events += [e for e in sim.step() if e["type"] != "positioning"]
    assert [(e["t_s"], e["type"], e.get("actors", e.get("actor"))) for e in events] == [
        (0.3, "collision", ["lead", "middle"]),
        (0.3, "stop", "middle"),  # brought to rest at the collision (the lead was not moving)
    ]
    assert _where(sim, "middle") == (95.5, 0.0, 0.0)  # where it touched, though it reports x = 101.5 at 15 m/s
    assert _where(sim, "lead") == (100.0, 0.0, 0.0)
    # each party was told once, in the tick after the collision
    assert told == {"lead": [("middle", 0.3)], "middle": [("lead", 0.3)], "last": []}
    assert "middle t=0.40 s: reports motion after its collision; the world keeps it at rest" in caplog.messages
    assert sum("reports motion" in m for m in caplog.messages) == 1  # once per actor


def _last_car() -> VehicleAgent:
    sc = load_scenario(QUEUE)
    agent = next(a for a in build_agents(sc, environment(sc)) if a.actor_id == "last")
    assert isinstance(agent, VehicleAgent)
    return agent


def test_a_built_in_vehicle_told_of_its_collision_rests_where_it_touched_and_says_so_in_its_bsm() -> None:
    car = _last_car()
    for k in range(31):
        before = car.step(tick_ctx(k))
    assert before.truth is not None and before.truth.speed_mps == pytest.approx(16.67)
    hit = testbed_pb2.TickInput.Collision(other_id="middle", t_s=3.0, relative_speed_mps=16.67)
    after = car.step(replace(tick_ctx(31), collisions=(hit,)))  # the TickInput after the collision's tick
    later = car.step(tick_ctx(32))
    for out in (after, later):
        tr = out.truth
        assert tr is not None
        # at rest at the pose it reported in the collision's tick (where the world holds it)
        assert (tr.x_m, tr.y_m, tr.heading_deg) == (before.truth.x_m, before.truth.y_m, before.truth.heading_deg)
        assert (tr.speed_mps, tr.vx_mps, tr.accel_mps2) == (0.0, 0.0, 0.0)
        bsm = decode_bsm(out.transmissions[0].frame.bsm, now_s=3.2, frame=car.env.frame, epoch=car.env.epoch)
        assert bsm is not None and bsm.speed_mps == 0.0 and bsm.accel_mps2 == 0.0  # a stationary obstacle
        assert bsm.has("hazard_lights") and bsm.has("disabled")  # a wreck, and says so
    first = decode_bsm(before.transmissions[0].frame.bsm, now_s=3.0, frame=car.env.frame, epoch=car.env.epoch)
    assert first is not None and not first.has("hazard_lights") and not first.has("disabled")
    assert after.notes == ["collided with middle at t=3.00 s: at rest"]


async def test_a_car_coming_up_behind_a_wreck_is_warned_by_avw(tmp_path: Path) -> None:
    """queue-crash with a fourth car 140 m behind the lead, running AVW, whose driver never reacts: once the
    lead (equipped) has crashed, its BSMs set hazardLights and disabledVehicle, and the fourth car's AVW warns
    about it, not before; the unequipped middle car sends nothing to warn about."""
    doc = yaml.safe_load(QUEUE.read_text(encoding="utf-8"))
    doc["actors"].append({"id": "far", "kind": "car", "lane": "eb1", "start_m": 0, "speed_mps": 16.67, "apps": ["avw"]})
    del doc["expectations"]  # nothing to check: the test looks at the events itself
    path = tmp_path / "queue-crash-far.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    result = await run_scenario(load_scenario(path), seed=0, broker="loopback", variants=["v2x"])
    crash = next(e["t_s"] for e in result["events"] if e["type"] == "collision" and e["actors"] == ["lead", "middle"])
    avw = [e for e in result["events"] if e["type"] == "warning" and e["app"] == "avw"]
    assert avw, "no AVW about the wreck"
    assert {(e["target"], e["other"]) for e in avw} == {("far", "lead")}
    assert min(e["t_s"] for e in avw) > crash


async def test_the_queue_crash_pile_up_end_to_end() -> None:
    result = await run_scenario(load_scenario(QUEUE), seed=0, broker="loopback")
    assert result["passed"], [e for e in result["expectations"] if not e["passed"]]
    events = result["events"]

    def of(variant: str, kind: str) -> list[dict[str, Any]]:
        return [e for e in events if e["variant"] == variant and e["type"] == kind]

    # without V2X: the middle car runs into the lead, then the last car into the middle car, in that order
    crashes = of("baseline", "collision")
    assert [e["actors"] for e in crashes] == [["lead", "middle"], ["last", "middle"]]
    assert crashes[0]["t_s"] < crashes[1]["t_s"]
    rest = {e["actor"]: (e["t_s"], e["x_m"], e["y_m"]) for e in of("baseline", "stop")}
    assert rest["lead"][0] == rest["middle"][0] == crashes[0]["t_s"]  # at rest from the collision's tick
    assert rest["last"][0] == crashes[1]["t_s"]
    # where they hit: the boxes touch (centres less than a car length apart), in queue order
    assert 0 < rest["lead"][1] - rest["middle"][1] <= CAR_LENGTH_M
    assert 0 < rest["middle"][1] - rest["last"][1] <= CAR_LENGTH_M
    # ... and there they stay to the end of the run
    for actor, (_, x, y) in rest.items():
        assert result["tracks"]["baseline"][actor][-1][1:] == [x, y], actor
    # with V2X: the same first collision; the last car, warned by EBW about the lead, stops short of the wreck
    assert [e["actors"] for e in of("v2x", "collision")] == [["lead", "middle"]]
    [ebw] = [e for e in of("v2x", "warning") if e["app"] == "ebw"]
    assert (ebw["target"], ebw["other"]) == ("last", "lead")
    v2x_rest = {e["actor"]: e["x_m"] for e in of("v2x", "stop")}
    assert v2x_rest["middle"] - v2x_rest["last"] > CAR_LENGTH_M + 5.0  # more than 5 m bumper to bumper


async def test_the_parties_of_a_crash_are_neither_warned_after_it_nor_judged_for_overlapping() -> None:
    """downhill: car_descent runs into stalled_descent. Their boxes overlap from the collision on: the overlap
    check judged them (car_flat and car_descent, in every seed), and once it no longer did, car_descent's FCW
    warned it, at rest, about the car it had hit (11.7 s)."""
    result = await run_scenario(load_scenario("scenarios/downhill.yaml"), seed=0, broker="loopback", variants=["v2x"])
    crashed = {a: e["t_s"] for e in result["events"] if e["type"] == "collision" for a in e["actors"]}
    assert set(crashed) == {"car_descent", "stalled_descent"}
    late = [e for e in result["events"] if e["type"] == "warning" and e["t_s"] > crashed.get(e["target"], math.inf)]
    assert late == []
    assert [e for e in result["events"] if e["type"] == "misbehaviour"] == []
    assert result["passed"]
