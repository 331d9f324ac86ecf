"""Background vehicles with positioning (a flow's ``positioning``): the fleet's BSMs state the receiver's
accuracy at its noisy position, FCW acts on them, the outcome does not depend on how the vehicles are spread
over fleets, and a wrecked background vehicle's BSMs set the wreck flags (sans-I/O, no broker)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.sim.test_background import _problems, _tick
from v2x import units
from v2x.agents.fleet import FleetAgent
from v2x.geodesy import LocalFrame
from v2x.run.runner import environment
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.scenario.model import Scenario
from v2x.sim.simulation import Simulation
from v2x.wire import frame_pb2, testbed_pb2
from v2x.wire.bsm import decode_bsm
from v2x.wire.envelope import parse_envelope, temporary_id
from v2x.wire.fleet import pack_deliveries

FRAME = LocalFrame(29.5, 106.5, 0.0)

TEXT = """\
id: flows
name: flows
origin: {lat_deg: 29.5, lon_deg: 106.5}
duration_s: 30
road:
  lanes:
    - {id: a, centerline: [[0, 0], [1000, 0]], speed_limit_kph: 60}
flows:
  - {lane: a, vehicles_per_hour: 1800, speed_kph: {mean: 50, sd: 5}, penetration: 1.0, POSITIONING}
actors:
  - {id: blocker, kind: car, lane: a, start_m: 400, speed_mps: 0}
  - {id: rammer, kind: car, lane: a, start_m: 0, speed_mps: 0}
"""


def _scenario(tmp_path: Path, positioning: str | None) -> Scenario:
    path = tmp_path / "positioned.yaml"
    path.write_text(TEXT.replace("POSITIONING", f"positioning: {positioning}" if positioning else "prefill: true"))
    return load_scenario(path)


def _bsm(raw: bytes) -> tuple[str, frame_pb2.MessageFrame]:
    parsed = parse_envelope(raw)
    assert parsed is not None
    env, frame = parsed
    return env.sender_id, frame


def test_a_flow_names_its_positioning_profile_and_a_bad_name_is_named(tmp_path: Path) -> None:
    assert _scenario(tmp_path, "rtk-fixed").flows[0].positioning == "rtk-fixed"
    assert _scenario(tmp_path, None).flows[0].positioning is None  # the default: accuracy unknown, as before
    problems = _problems(tmp_path, "penetration: 0.25", "penetration: 0.25, positioning: gps-magic")
    assert list(problems) == ["flows[0].positioning"]
    assert (
        "a positioning profile" in problems["flows[0].positioning"] and "gps-magic" in problems["flows[0].positioning"]
    )


def _run(
    sc: Scenario, ticks: int, fleets: int = 1
) -> tuple[Simulation, dict[str, FleetAgent], list[dict[str, object]]]:
    sim = Simulation(sc, variant="v2x", seed=3, fleets=fleets)
    agents: dict[str, FleetAgent] = {}
    events: list[dict[str, object]] = []
    for tick in range(ticks):
        events += _tick(sim, tick, agents)
    return sim, agents, events


@pytest.mark.parametrize("profile", ["bdsbas-df", None])
def test_fleet_bsms_state_the_accuracy_at_a_position_within_the_error_of_the_truth(
    tmp_path: Path, profile: str | None
) -> None:
    sim, agents, _ = _run(_scenario(tmp_path, profile), 5)
    sim.begin(5)
    inp = testbed_pb2.FleetInput.FromString(sim.fleet_inputs[sim.fleet_ids[0]])
    truth = {v.vehicle_id: v for v in inp.vehicles}
    assert len(truth) > 10
    ack = agents[sim.fleet_ids[0]].step(inp)
    errors = []
    for raw in ack.envelopes:
        sender, frame = _bsm(raw)
        v = truth[sender]
        got = decode_bsm(frame.bsm, now_s=0.5, frame=_frame(sim), epoch=sim.scenario.epoch)
        assert got is not None
        if profile is None:  # as before: the truth, accuracy unknown
            assert v.sigma_major_m == 0.0 and got.sigma_major_m is None
            assert math.hypot(got.x - v.x_m, got.y - v.y_m) < 0.02
            continue
        assert v.sigma_major_m > 0.5  # bdsbas-df: 0.82 m
        assert got.sigma_major_m == pytest.approx(v.sigma_major_m, abs=0.05)  # 0.05 m on the wire
        assert frame.bsm.accuracy.semi_minor == units.semi_major_to_wire(v.sigma_minor_m)
        # At the receiver's reading: the truth plus its error (to the wire's 1e-7 degree).
        assert math.hypot(got.x - (v.x_m + v.east_error_m), got.y - (v.y_m + v.north_error_m)) < 0.02
        errors.append(math.hypot(v.east_error_m, v.north_error_m))
    if profile is not None:
        assert max(errors) < 6 * 0.82 * math.sqrt(2) and np.mean(errors) > 0.2  # noisy, within the profile's error


def _frame(sim: Simulation) -> LocalFrame:
    return environment(sim.scenario).frame


def _vehicle(vid: str, x: float, speed: float, accel: float = 0.0, sigma: float = 0.02) -> testbed_pb2.FleetVehicle:
    return testbed_pb2.FleetVehicle(
        vehicle_id=vid, kind="car", x_m=x, vx_mps=speed, ax_mps2=accel, speed_mps=speed, accel_mps2=accel,
        length_m=4.5, width_m=1.8, sigma_major_m=sigma, sigma_minor_m=sigma,
    )  # fmt: skip


@pytest.mark.parametrize("sigma", [0.02, 0.0])
def test_a_fleet_vehicle_warns_on_a_background_vehicle_braking_ahead_when_both_state_their_accuracy(
    sigma: float,
) -> None:
    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    agent = FleetAgent("fleet-0", frame=FRAME, epoch=sc.epoch, thresholds=environment(sc).thresholds)
    heard: list[bytes] = []
    warnings: list[testbed_pb2.Advisory] = []
    for tick in range(1, 5):
        t = tick * 0.1
        inp = testbed_pb2.FleetInput(
            run_id="r", tick=tick, time_us=round(t * 1e6), tick_us=100_000, truth_time_us=round((t - 0.1) * 1e6)
        )
        # bg-0-1 closes in on bg-0-2 braking 25 m ahead (15 vs 8 m/s): it hears bg-0-2's BSMs of the last tick.
        inp.vehicles.extend([_vehicle("bg-0-1", 0.0, 15.0, sigma=sigma), _vehicle("bg-0-2", 25.0, 8.0, -6.0, sigma)])
        inp.envelopes.extend(heard)
        if heard:
            pack_deliveries(inp, np.array([0]), np.array([1]), np.array([round(t * 1e6) - 98_000]))
        fed = list(inp.envelopes)
        ack = agent.step(inp)
        heard = list(ack.envelopes)
        assert [_bsm(raw)[0] for raw in heard] == ["bg-0-1", "bg-0-2"]
        warnings.extend(ack.events)
    if sigma == 0.0:  # accuracy unknown (no positioning): FCW does not act on it, as before
        assert not warnings
        return
    assert len(warnings) == 1  # once per validity period
    (w,) = warnings
    assert w.target_id == "bg-0-1" and w.app == testbed_pb2.APP_FCW and w.conflict_type == "rear-end"
    assert w.other_id == temporary_id("bg-0-2").hex() and 0 < w.ttc_s <= 3.0
    # What the fleet kept of its own BSM without parsing it is what decoding it gives.
    _, frame = _bsm(fed[1])
    want = decode_bsm(frame.bsm, now_s=0.4, frame=FRAME, epoch=sc.epoch)
    assert agent.remotes["bg-0-2"] == want


def test_two_fleets_give_the_outcome_of_one_with_positioning(tmp_path: Path) -> None:
    sc = _scenario(tmp_path, "rtk-fixed")
    one = _run(sc, 80)
    two = _run(sc, 80, fleets=2)
    assert len(two[0].fleet_ids) == 2
    assert one[2] == two[2]
    warned = [e for e in one[2] if e["type"] == "warning"]
    # FCW acts on the background: its vehicles queueing behind the blocker are warned about one another.
    assert any(str(e["other"]).startswith("bg-") for e in warned), warned
    assert one[0].metrics(0.0)["messages"] == two[0].metrics(0.0)["messages"]


def test_a_wrecked_background_vehicle_sends_the_wreck_flags_from_the_tick_it_crashed_on(tmp_path: Path) -> None:
    sc = _scenario(tmp_path, None)
    sim = Simulation(sc, variant="v2x", seed=0)
    agents: dict[str, FleetAgent] = {}
    fleet = sim.fleet_ids[0]
    flags: dict[int, dict[str, int]] = {}  # tick -> sender -> its BSM's event flags
    victim = ""
    for tick in range(12):
        sim.begin(tick)
        for actor_id in sim.actor_ids:
            ack = testbed_pb2.Ack(actor_id=actor_id, tick=tick)
            if actor_id == "rammer":  # off the road, then onto a background vehicle at tick 6
                ack.truth.x_m, ack.truth.y_m, ack.truth.heading_deg = -200.0, -200.0, 90.0
                if tick == 6:
                    w = sim.world
                    victim = sim.world.id_of(int(sim.background.equipped()[1][3]))  # type: ignore[union-attr]
                    s = w.slot_of(victim)
                    ack.truth.x_m, ack.truth.y_m, ack.truth.vx_mps = float(w.x[s]) - 2.0, float(w.y[s]), 20.0
            sim.receive("ack", actor_id, ack.SerializeToString())
        if fleet not in agents:
            env = environment(sc)
            agents[fleet] = FleetAgent(fleet, frame=env.frame, epoch=env.epoch, thresholds=env.thresholds)
        out = agents[fleet].step(testbed_pb2.FleetInput.FromString(sim.fleet_inputs[fleet]))
        flags[tick] = {}
        for raw in out.envelopes:
            sender, frame = _bsm(raw)
            got = decode_bsm(frame.bsm, now_s=tick * 0.1, frame=_frame(sim), epoch=sc.epoch)
            assert got is not None
            flags[tick][sender] = int(got.has("hazard_lights")) + 2 * int(got.has("disabled"))
        sim.receive_fleet(fleet, out.SerializeToString())
        events = sim.step()
        if tick == 6:
            crash = [e for e in events if e["type"] == "collision"]
            assert crash and victim in crash[0]["actors"]
    assert all(flags[k][victim] == 0 for k in range(1, 7))  # before: no flags
    assert all(flags[k][victim] == 3 for k in range(7, 12))  # from the next bundle on: hazard lights, disabled
    assert not any(v for k in flags for s, v in flags[k].items() if s != victim)


def test_the_fleet_s_fcw_range_filter_changes_no_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fleet gives the core only the pairs that could touch within FCW's TTC (``touching_pairs_heard`` and
    ``touch_within_s``); with every heard pair evaluated (the filter off: an infinite time keeps every pair) the
    run's events are the same, warnings among them."""
    import v2x.agents.fleet as fleet_module
    from v2x.core import detect_conflicts, touching_pairs_heard

    sc = _scenario(tmp_path, "rtk-fixed")
    filtered = _run(sc, 80)[2]
    dropped: list[int] = []

    def every_pair(world: Any, **kw: Any) -> Any:
        within = kw.pop("touch_within_s")
        found = detect_conflicts(world, **kw)
        dropped.append(len(found) - len(detect_conflicts(world, **kw, touch_within_s=within)))
        return found

    def every_heard(*args: Any, **kw: Any) -> Any:
        return touching_pairs_heard(*args[:-1], math.inf, **kw)

    monkeypatch.setattr(fleet_module, "detect_conflicts", every_pair)
    monkeypatch.setattr(fleet_module, "touching_pairs_heard", every_heard)
    every = _run(sc, 80)[2]
    assert every == filtered
    assert any(e["type"] == "warning" for e in every)
    assert sum(dropped) > 0  # conflicts the filter leaves out (none of them a warning)
