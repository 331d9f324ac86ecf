"""Elevation (issue #11): a lane's height profile reaches the vehicle's truth and its BSM, gravity along the
grade changes what braking achieves, and road users on different levels are kept apart by the apps and the
referee (the flyover scenario)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests._agents import tick_ctx
from v2x.agents.vehicle import VehicleAgent
from v2x.apps.collision import intersection_collision
from v2x.apps.driver import grade_accel
from v2x.apps.host import Participant
from v2x.apps.thresholds import DEFAULTS
from v2x.run.runner import build_agents, environment
from v2x.scenario import load_scenario
from v2x.scenario.geometry import Route
from v2x.scenario.loader import SCENARIO_DIR
from v2x.units import G0
from v2x.wire import testbed_pb2
from v2x.wire.bsm import decode_bsm

FCW = (SCENARIO_DIR / "fcw.yaml").read_text()


def _vehicles(tmp_path: Path, elevation: str) -> dict[str, VehicleAgent]:
    """fcw.yaml with lane eb1 (the lead's and the follower's: 1500 m long) given ``elevation``."""
    text = FCW.replace("[[0, 0], [1500, 0]],", f"[[0, 0], [1500, 0]], elevation_m: {elevation},", 1)
    path = tmp_path / "graded.yaml"
    path.write_text(text)
    sc = load_scenario(path)
    return {a.actor_id: a for a in build_agents(sc, environment(sc)) if isinstance(a, VehicleAgent)}


def test_a_route_follows_its_profile_and_holds_its_end_heights() -> None:
    route = Route([(0.0, 0.0), (100.0, 0.0), (100.0, 50.0)], [0.0, 8.0, 3.0])
    assert route.pose(25.0).z == pytest.approx(2.0) and route.pose(25.0).grade == pytest.approx(0.08)
    assert route.pose(125.0).z == pytest.approx(5.5) and route.pose(125.0).grade == pytest.approx(-0.1)
    assert (route.pose(-5.0).z, route.pose(-5.0).grade) == (0.0, 0.0)
    assert (route.pose(400.0).z, route.pose(400.0).grade) == (3.0, 0.0)
    flat = Route([(0.0, 0.0), (100.0, 0.0)], [0.0, 0.0])
    assert (flat.pose(50.0).z, flat.pose(50.0).grade) == (0.0, 0.0)


def test_gravity_along_the_grade() -> None:
    assert grade_accel(0.0) == 0.0
    assert grade_accel(0.06) == pytest.approx(-G0 * math.sin(math.atan(0.06)))
    assert grade_accel(-0.06) == pytest.approx(0.5873, abs=1e-4)  # downhill: braking achieves 0.59 m/s^2 less


@pytest.mark.parametrize(("elevation", "grade"), [("[0, -90]", -0.06), ("[0, 90]", 0.06), ("[0, 0]", 0.0)])
def test_a_scripted_stop_on_a_grade_takes_the_distance_gravity_gives_it(
    tmp_path: Path, elevation: str, grade: float
) -> None:
    # The lead brakes at 6 m/s^2 from 16.67 m/s at t = 6 s, 130 m along a straight 6 % grade. By hand: the
    # deceleration achieved is 6 + g sin(atan G) (G negative downhill): 5.4127 m/s^2 downhill, stopping in
    # 16.67^2 / (2 x 5.4127) = 25.67 m instead of 23.16 m on the flat, 6.5873 m/s^2 and 21.09 m uphill.
    lead = _vehicles(tmp_path, elevation)["lead"]
    for tick in range(0, 141):
        res = lead.step(tick_ctx(tick))
    v0, t_brake = 16.67, 6.0
    decel = 6.0 + G0 * grade / math.sqrt(1 + grade * grade)
    assert decel == pytest.approx({-0.06: 5.4127, 0.06: 6.5873, 0.0: 6.0}[grade], abs=1e-4)
    assert lead.v == 0.0
    assert lead.s == pytest.approx(130 + v0 * t_brake + v0 * v0 / (2 * decel), abs=0.02)
    # ... and its truth carries its height: the lane rises (falls) 90 m over its 1500 m.
    assert res.truth is not None and res.truth.z_m == pytest.approx(grade * lead.s)


def test_the_bsm_elevation_carries_the_height_and_decodes_back(tmp_path: Path) -> None:
    lead = _vehicles(tmp_path, "[0, -90]")["lead"]
    res = lead.step(tick_ctx(0))
    bsm = next(t.frame.bsm for t in res.transmissions if t.link == testbed_pb2.LINK_PC5)
    frame = lead.env.frame
    z = -90 * 130 / 1500  # 130 m down the lane: -7.8 m
    assert bsm.pos.elevation == round((frame.h0_m + z) * 10)
    remote = decode_bsm(bsm, now_s=0.0, frame=frame, epoch=lead.env.epoch)
    assert remote is not None and remote.z_m == pytest.approx(z, abs=0.05)
    bsm.pos.elevation = -4096  # unavailable: the sender's height is unknown
    remote = decode_bsm(bsm, now_s=0.0, frame=frame, epoch=lead.env.epoch)
    assert remote is not None and remote.z_m is None


def test_icw_keeps_a_crossing_car_above_apart_but_not_one_of_unknown_height() -> None:
    # Two cars reach (0, 0) together in 3 s: a crossing conflict on one level; b's height is compared there.
    def at(z: float | None, vz: float = 0.0) -> list[tuple[str, str]]:
        a = Participant("a", -30.0, 0.0, 10.0, 0.0, 0.0, 0.0, 5.0, 2.0, 0.02, 0.0)
        b = Participant("b", 0.0, -30.0, 0.0, 10.0, 0.0, math.pi / 2, 5.0, 2.0, 0.02, z, vz)
        return [(f.subject, f.other) for f in intersection_collision([a, b], DEFAULTS)]

    assert at(0.0) == [("a", "b")] and at(None) == [("a", "b")] and at(2.0) == [("a", "b")]
    assert at(7.5) == [] and at(-6.0) == []
    assert at(2.0, 1.0) == [] and at(7.5, -1.5) == [("a", "b")]  # 5 m up / 3 m up where the paths cross


def test_an_outside_stack_is_told_its_heights_and_reports_them() -> None:
    from tests._agents import offline_sim
    from v2x.sdk.types import ActorStart, VehicleState

    sc = load_scenario(SCENARIO_DIR / "flyover.yaml")
    sc = sc.model_copy(
        update={
            "actors": [
                a.model_copy(
                    update={"external": a.id in ("car_f", "car_a"), "start_m": 150.0 if a.id == "car_f" else a.start_m}
                )
                for a in sc.actors
            ]
        }
    )
    starts = {s.actor_id: s for s in offline_sim(sc).external_starts()}
    # car_f 150 m along its lane: y = 50, 50 m up the 60 m ramp that rises 7.5 m: 6.25 m.
    assert starts["car_f"].z_m == pytest.approx(6.25) and list(starts["car_f"].path_z_m) == [0, 0, 7.5, 7.5, 0, 0]
    assert starts["car_a"].z_m == 0.0 and list(starts["car_a"].path_z_m) == []  # flat: as before
    start = ActorStart.from_wire(starts["car_f"])
    assert start.route_z == (0.0, 0.0, 7.5, 7.5, 0.0, 0.0)
    state = VehicleState.at_start(start).advanced(0.1)
    assert state.z_m == pytest.approx(6.25) and state.truth().z_m == pytest.approx(6.25)


def test_a_receiver_estimates_a_senders_vertical_rate_from_its_bsms() -> None:
    from dataclasses import replace

    from v2x.apps.host import VERTICAL_RATE_GAIN, with_vertical_rate
    from v2x.wire.bsm import RemoteState

    base = RemoteState(b"12345678", 0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 5.0, 2.0, 0.02, 10, 0, z_m=0.0)
    assert with_vertical_rate(base, None).z_rate_mps == 0.0
    # Climbing 1 m/s in 0.1 m steps every 0.1 s: the estimate moves 20 % of the way each BSM.
    known = base
    for k in range(1, 21):
        known = with_vertical_rate(replace(base, t_s=k / 10, z_m=k / 10), known)
    assert known.z_rate_mps == pytest.approx(1 - (1 - VERTICAL_RATE_GAIN) ** 20)
    again = with_vertical_rate(replace(known, z_rate_mps=0.0), known)  # the same BSM relayed again
    assert again.z_rate_mps == known.z_rate_mps
    assert with_vertical_rate(replace(base, t_s=0.1, z_m=None), known).z_rate_mps == 0.0  # height unknown
    level = with_vertical_rate(replace(base, t_s=0.1), base)
    assert level is not base and level.z_rate_mps == 0.0


def test_the_overlap_check_leaves_a_car_on_the_level_above_alone() -> None:
    from dataclasses import replace

    from v2x.apps.misbehaviour import THRESHOLDS, Detector
    from v2x.wire.bsm import RemoteState

    below = RemoteState(b"aaaaaaaa", 1.0, 0.0, 0.0, 10.0, 0.0, 0.0, 5.0, 2.0, 0.02, 10, 0, z_m=0.0)
    above = replace(below, temp_id=b"bbbbbbbb", t_s=1.05, z_m=7.5)
    own = Participant("own", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 5.0, 2.0, 0.0, 7.5)

    def judged(remotes: list[RemoteState], own: Participant | None = None) -> list[str]:
        d = Detector(dict(THRESHOLDS))
        d.since[below.temp_id] = 0.0  # (heard since 0: the one above is a newcomer on top of it)
        assert d.overlaps(remotes, 1.1, own) == []  # (judged at the next BSM)
        return [v.check for v in d.overlaps([replace(r, t_s=r.t_s + 0.3) for r in remotes], 1.4, own)]

    assert judged([below, above]) == []
    assert judged([above], own) == ["overlap"]
    assert judged([below], own) == []
    assert judged([below, replace(above, z_m=2.0)]) == ["overlap"]
