"""CLC (cooperative lane change, Day-2 VIR -> RSC): the coordinator's plan by hand, and the scenario on the
loopback bus with its VIRs and RSCs decoded from what the world carried."""

from __future__ import annotations

import math
from typing import Any

import pytest

from v2x.apps.clc import plan_merge
from v2x.apps.host import Participant
from v2x.apps.thresholds import DEFAULTS
from v2x.geodesy import LocalFrame
from v2x.run.runner import run_scenario
from v2x.run.tap import Sent, Tap
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.sim.simulation import Simulation
from v2x.wire.day2 import Intention, PlannedPoint, VehicleRequest, decode_rsc, decode_vir
from v2x.wire.envelope import parse_envelope, temporary_id

CLC = SCENARIO_DIR / "clc.yaml"
A = temporary_id("car_a").hex()


def _intention(merge_after_s: float = 10.0, speed: float = 25.0) -> tuple[Intention, VehicleRequest]:
    """Car A at (300, -3.5) eastbound, moving over from 7 s to ``merge_after_s`` onto the lane at y = 0."""
    req = VehicleRequest(req_id=1, type="lane_change", target_lane=1, life_time_s=merge_after_s)
    path = (
        PlannedPoint(300 + speed * 7.0, -3.5, 7.0, speed, 90.0),
        PlannedPoint(300 + speed * merge_after_s, 0.0, merge_after_s, speed, 90.0),
    )
    return Intention(bytes.fromhex(A), 0.0, 300.0, -3.5, frozenset({"lane_change_left"}), path, (req,)), req


def _car(key: str, x: float, y: float = 0.0, speed: float = 25.0) -> Participant:
    return Participant(key, x, y, speed, 0.0, 0.0, 0.0, 5.0, 2.0, 0.02)


def test_a_car_beside_the_merge_is_asked_to_drop_back_to_the_critical_gap() -> None:
    intention, req = _intention()
    plan = plan_merge(A, intention, req, [_car(A, 300.0, -3.5), _car("b", 297.0)], 0.0, DEFAULTS)
    assert plan is not None
    own, b = plan.advice
    assert own.target == A and own.speed_mps == 25.0 and own.window_s == (7.0, 10.0) and own.target_lane == 1
    # 2 s x 25 m/s + 5 m (two half lengths) - 3 m = 52 m to lose over 10 - 2 s: 6.5 m/s slower.
    assert b.target == "b" and b.behaviors == {"slow_down"}
    assert b.speed_mps == pytest.approx(25.0 - 52.0 / 8.0)
    assert plan.until_s == pytest.approx(11.0)


def test_far_behind_other_lanes_and_the_other_way_get_nothing() -> None:
    intention, req = _intention()
    others = [
        _car(A, 300.0, -3.5),
        _car("far", 150.0),  # 150 m behind: 145 m > 55 m
        _car("beside", 297.0, 3.5),  # the lane beyond the target lane
        Participant("oncoming", 500.0, 0.0, -25.0, 0.0, 0.0, math.pi, 5.0, 2.0, 0.02),
    ]
    plan = plan_merge(A, intention, req, others, 0.0, DEFAULTS)
    assert plan is not None
    assert [a.target for a in plan.advice] == [A]


def test_a_car_just_ahead_slows_the_merging_car_and_the_horizon_bounds_the_plan() -> None:
    intention, req = _intention()
    plan = plan_merge(A, intention, req, [_car(A, 300.0, -3.5), _car("d", 330.0)], 0.0, DEFAULTS)
    assert plan is not None
    (own,) = plan.advice
    assert own.speed_mps == pytest.approx(25.0 - (50.0 + 5.0 - 30.0) / 8.0)
    assert "slow_down" in own.behaviors
    late, _ = _intention(merge_after_s=12.0)
    assert plan_merge(A, late, req, [_car(A, 300.0, -3.5)], 0.0, DEFAULTS) is None  # 12 s > 10 s horizon


class _Wire:
    """An observer that keeps every transmission the world accepted."""

    def __init__(self) -> None:
        self.tap = Tap()
        self.sent: list[Sent] = []

    async def on_tick(self, sim: Simulation, tick: int, events: list[dict[str, Any]]) -> None:
        self.sent += self.tap.sent(sim)


async def test_the_merge_is_coordinated_over_vir_and_rsc() -> None:
    sc = load_scenario(CLC)
    wires: dict[str, _Wire] = {}

    def observe(variant: str, run_id: str) -> _Wire:
        return wires.setdefault(variant, _Wire())

    result = await run_scenario(sc, seed=0, broker="loopback", observe=observe)
    assert result["passed"], [e for e in result["expectations"] if not e["passed"]]
    advised = {(e["target"], e["other"], e["app"]) for e in result["events"] if e["type"] == "warning"}
    assert advised == {("car_a", "edge", "clc"), ("car_b", "edge", "clc")}  # C and D: nothing
    hits = [e for e in result["events"] if e["type"] == "collision"]
    assert [(e["variant"], sorted(e["actors"])) for e in hits] == [("baseline", ["car_a", "car_b"])]
    # The merge completes: car A is on the main lane's centre line (y = 0) from the end of its move.
    track = {round(p[0], 1): p for p in result["tracks"]["v2x"]["car_a"]}
    assert all(abs(p[2]) < 0.01 for t, p in track.items() if t >= 12.0)

    frame = LocalFrame(sc.origin.lat_deg, sc.origin.lon_deg, sc.origin.alt_m)
    virs = [s for s in wires["v2x"].sent if s.msg == "vir"]
    rscs = [s for s in wires["v2x"].sent if s.msg == "rsc"]
    assert {s.sender for s in virs} == {"car_a"} and {s.link for s in virs} == {"pc5", "uu"}
    parsed = parse_envelope(virs[0].raw)
    assert parsed is not None
    vir = decode_vir(parsed[1].vir, now_s=virs[0].tx_time_s, frame=frame, epoch=sc.epoch)
    (req,) = vir.requests
    assert req.type == "lane_change" and req.target_lane == 1  # main: the road's first lane
    assert vir.path[-1].y == pytest.approx(0.0, abs=0.05) and vir.behaviors == {"lane_change_left"}
    assert virs[-1].tx_time_s < 12.0  # announced until the move ends
    assert {s.sender for s in rscs} == {"edge"} and rscs[0].tx_time_s == pytest.approx(2.0)
    parsed = parse_envelope(rscs[0].raw)
    assert parsed is not None
    sender, items = decode_rsc(parsed[1].rsc, frame=frame)
    assert sender == temporary_id("edge")
    by_car = {c.vehicle_id: c for c in items}
    assert set(by_car) == {temporary_id("car_a"), temporary_id("car_b")}
    assert by_car[temporary_id("car_b")].behaviors == {"slow_down"}
    assert by_car[temporary_id("car_b")].speed_mps == pytest.approx(18.5, abs=0.1)
    assert set(rscs[0].dest_ids) == {"car_a", "car_b"}
    assert not [s for s in wires["baseline"].sent if s.msg in ("vir", "rsc")]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_clc_passes_for_other_seeds(seed: int) -> None:
    result = await run_scenario(load_scenario(CLC), seed=seed, broker="loopback")
    assert result["passed"], [e for e in result["expectations"] if not e["passed"]]
