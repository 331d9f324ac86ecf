"""Platooning: the CACC / ACC controller, the CLPMM handshake (join, keep, leave) through the wire codec, the
cut-in handling, the forward radar, the string-stability and gap expectations and the loader's checks, and
the shipped scenarios."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest

from v2x.apps.host import Host
from v2x.apps.platoon import (
    CUT_IN,
    CUT_OUT,
    Ahead,
    FollowingController,
    Gains,
    PlatoonLeader,
    PlatoonMember,
    gap_error,
    intruder,
)
from v2x.apps.thresholds import DEFAULTS
from v2x.core import ActorKind, WorldState
from v2x.run.results import check
from v2x.scenario import load_scenario
from v2x.scenario.loader import ScenarioError
from v2x.scenario.model import GapExpectation, GapMeasure, StringStableExpectation
from v2x.sim.radar import forward_radar
from v2x.wire import frame_pb2
from v2x.wire.bsm import RemoteState
from v2x.wire.day2 import PlatoonInfo, decode_clpmm, encode_clpmm
from v2x.wire.envelope import temporary_id

PLATOON = Path(__file__).resolve().parent.parent / "scenarios" / "platoon.yaml"
CUTIN = PLATOON.with_name("platoon-cutin.yaml")
EPOCH = datetime(2026, 5, 1, 8, tzinfo=UTC)
TH = dict(DEFAULTS)
TRUCK_M = 13.0


def _string(feed_forward: bool, n: int = 5, dt: float = 0.1) -> list[float]:
    """A leader and n-1 followers on the controller (exact kinematics, the radar and BSM one tick old): the
    leader brakes from 25 to 15 m/s at 1 m/s^2 and comes back at 0.5 m/s^2. Each follower's max |gap error|."""
    g = Gains.of(TH)
    h, r = g.time_gap_s, g.standstill_m
    x = np.array([-k * (TRUCK_M + r + h * 25.0) for k in range(n)])
    v = np.full(n, 25.0)
    a = np.zeros(n)
    ctl = [FollowingController(g) for _ in range(n)]
    worst = [0.0] * (n - 1)
    for step in range(int(60 / dt)):
        t = step * dt
        lead = -1.0 if t >= 5 and v[0] > 15 + 1e-9 and t < 20 else (0.5 if t >= 20 and v[0] < 25 - 1e-9 else 0.0)
        new = a.copy()
        new[0] = lead
        for k in range(1, n):
            gap = x[k - 1] - x[k] - TRUCK_M
            worst[k - 1] = max(worst[k - 1], abs(gap_error(gap, v[k], h, r)))
            new[k] = ctl[k].accel(
                dt=dt,
                speed=v[k],
                accel=a[k],
                ahead=Ahead(gap, v[k - 1] - v[k]),
                feed_forward=a[k - 1] if feed_forward else None,
                set_speed=28.0,
                time_gap_s=h,
            )
        a = new
        x = x + v * dt + 0.5 * a * dt * dt
        v = np.maximum(0.0, v + a * dt)
    return worst


def test_cacc_with_the_predecessors_acceleration_is_string_stable_and_acc_at_the_same_gap_is_not() -> None:
    cacc = _string(feed_forward=True)
    acc = _string(feed_forward=False)
    assert all(b <= a for a, b in itertools.pairwise(cacc)), cacc
    assert all(b > a * 1.05 for a, b in itertools.pairwise(acc)), acc
    assert max(cacc) < 0.5 < min(acc)


def test_the_controller_holds_the_set_speed_with_nothing_ahead_and_respects_its_limits() -> None:
    ctl = FollowingController(Gains.of(TH))
    assert ctl.accel(dt=0.1, speed=25, accel=0, ahead=None, feed_forward=None, set_speed=25, time_gap_s=0.6) == 0
    hard = ctl.accel(dt=0.1, speed=25, accel=0, ahead=Ahead(-50, -20), feed_forward=-10, set_speed=25, time_gap_s=0.6)
    assert hard >= -TH["platoon_max_decel_mps2"]
    far = ctl.accel(dt=0.1, speed=20, accel=0, ahead=Ahead(500, 0), feed_forward=None, set_speed=25, time_gap_s=0.6)
    assert 0 < far <= TH["platoon_max_accel_mps2"]


def _remote(actor: str, x: float, accel: float = 0.0) -> RemoteState:
    return RemoteState(
        temp_id=temporary_id(actor),
        t_s=0.0,
        x=x,
        y=0.0,
        speed_mps=25.0,
        heading_rad=0.0,
        accel_mps2=accel,
        length_m=TRUCK_M,
        width_m=2.6,
        sigma_major_m=0.02,
        kind_class=0,
        events=0,
    )


def _wire(info: PlatoonInfo | None) -> PlatoonInfo:
    """The CLPMM as a receiver decodes it from the bytes on the air."""
    assert info is not None
    frame = encode_clpmm(info, t_s=1.0, msg_count=0, epoch=EPOCH)
    heard = frame_pb2.MessageFrame.FromString(frame.SerializeToString())
    return decode_clpmm(heard.clpmm)


def _host(x: float) -> Host:
    return Host(x, 0.0, 0.0, 25.0, 0.0, TRUCK_M, 0.02)


def test_join_keep_and_leave_over_clpmm() -> None:
    lead_id, me = temporary_id("leader"), temporary_id("joiner")
    leader = PlatoonLeader(lead_id, TH)
    member = PlatoonMember(me, join_at_s=1.0, leave_at_s=5.0, cruise_mps=25.0, thresholds=TH)
    remotes_of_leader = {me: _remote("joiner", -60.0)}  # 47 m behind the leader's rear bumper
    remotes_of_member = {lead_id: _remote("leader", 0.0, accel=-0.5)}
    on_air = _wire(leader.step(0.0, _host(0.0), 25.0, {}, {}).clpmm)
    assert on_air.role == "leader" and on_air.members == ((lead_id, "leader"),)

    early = member.step(0.5, 0.1, _host(-60.0), Ahead(47.0, 0.0), remotes_of_member, {lead_id: (on_air, 0.5)})
    assert member.state == "free" and early.clpmm is None and early.accel is not None  # ACC before asking

    ask = _wire(
        member.step(1.0, 0.1, _host(-60.0), Ahead(47.0, 0.0), remotes_of_member, {lead_id: (on_air, 1.0)}).clpmm
    )
    assert (ask.role, ask.status, ask.platoon_id) == ("free", "joining", lead_id)

    listed = _wire(leader.step(1.1, _host(0.0), 25.0, remotes_of_leader, {me: (ask, 1.1)}).clpmm)
    assert listed.members == ((lead_id, "leader"), (me, "tail"))

    joining = member.step(1.2, 0.1, _host(-60.0), Ahead(47.0, 0.0), remotes_of_member, {lead_id: (listed, 1.2)})
    assert member.state == "joining" and member.position == 2 and not joining.raised
    assert _wire(joining.clpmm).status == "joining" and _wire(joining.clpmm).role == "tail"

    gap = TH["platoon_standstill_m"] + TH["platoon_time_gap_s"] * 25.0
    kept = member.step(3.0, 0.1, _host(-30.0), Ahead(gap + 0.2, 0.0), remotes_of_member, {lead_id: (listed, 3.0)})
    assert member.state == "keeping"
    assert [(r.app, r.conflict_type, r.other, r.figure) for r in kept.raised] == [
        ("platoon", "joined", lead_id.hex(), 2)
    ]

    bye = _wire(member.step(5.0, 0.1, _host(-30.0), Ahead(gap, 0.0), remotes_of_member, {lead_id: (listed, 5.0)}).clpmm)
    assert bye.status == "leaving"
    after = _wire(leader.step(5.1, _host(0.0), 25.0, remotes_of_leader, {me: (bye, 5.1)}).clpmm)
    assert after.members == ((lead_id, "leader"),)
    left = member.step(5.2, 0.1, _host(-30.0), Ahead(gap, 0.0), remotes_of_member, {lead_id: (after, 5.2)})
    assert member.state == "left" and [r.conflict_type for r in left.raised] == ["left"]
    assert left.clpmm is None


def _car(x: float, y: float, signal: str = "") -> RemoteState:
    return replace(_remote("car", x), y=y, length_m=5.0, width_m=2.0, turn_signal=signal)


@pytest.mark.parametrize(
    ("car", "cutting_in"),
    [
        (_car(-15.0, 0.5), True),  # in the lane, between the host (x = -30) and its predecessor (x = 0)
        (_car(-15.0, 3.5, "right"), True),  # in the next lane on the left, signalling towards the host's lane
        (_car(-15.0, -3.5, "left"), True),  # the same on the right
        (_car(-15.0, 3.5, "left"), False),  # signalling away from it
        (_car(-15.0, 3.5), False),  # beside the gap, no signal: just driving by
        (_car(-15.0, 7.0, "right"), False),  # two lanes over
        (_car(5.0, 0.0), False),  # ahead of the predecessor
        (_car(-40.0, 0.0), False),  # behind the host
    ],
)
def test_a_vehicle_cuts_in_when_it_is_in_the_gap_or_signals_into_it(car: RemoteState, cutting_in: bool) -> None:
    pred = _remote("truck2", 0.0)
    remotes = {pred.temp_id: pred, car.temp_id: car}
    got = intruder(_host(-30.0), remotes, [pred.temp_id], pred, TH["platoon_cutin_reach_m"])
    assert got == (car.temp_id if cutting_in else None)
    # a platoon member is no intruder, wherever it is
    assert intruder(_host(-30.0), remotes, [pred.temp_id, car.temp_id], pred, TH["platoon_cutin_reach_m"]) is None


def test_a_member_opens_its_gap_behind_a_vehicle_cutting_in_and_closes_up_when_it_is_gone() -> None:
    """truck3 (at x = -30, listed third) hears a car signal into its gap: cut_in, no feed-forward of truck2's
    acceleration, the time gap widened at the set rate up to platoon_cutin_time_gap_s; the car gone: cut_out,
    the feed-forward again and the time gap narrowed back to the platoon's."""
    lead_id, t2, me = temporary_id("leader"), temporary_id("truck2"), temporary_id("truck3")
    listed = PlatoonInfo(
        lead_id, lead_id, "leader", "keeping", 0.6, members=((lead_id, "leader"), (t2, "follower"), (me, "tail"))
    )
    member = PlatoonMember(me, join_at_s=0.0, leave_at_s=None, cruise_mps=25.0, thresholds=TH)
    heard = {lead_id: (listed, 0.0)}
    pred = _remote("truck2", 0.0, accel=-1.0)
    base = {lead_id: _remote("leader", 30.0), t2: pred}
    gap = TH["platoon_standstill_m"] + TH["platoon_time_gap_s"] * 25.0
    first = member.step(0.0, 0.1, _host(-30.0), Ahead(gap, 0.0), base, heard)
    assert member.state == "keeping" and [r.conflict_type for r in first.raised] == ["joined"]
    assert member.time_gap_s == TH["platoon_time_gap_s"]

    car = _car(-15.0, 3.5, "right")
    rate = TH["platoon_gap_change_s_per_s"]
    gaps = []
    for k in range(1, 101):
        out = member.step(0.1 * k, 0.1, _host(-30.0), Ahead(gap, 0.0), base | {car.temp_id: car}, heard)
        gaps.append(member.time_gap_s)
        if k == 1:
            assert [(r.conflict_type, r.other) for r in out.raised] == [(CUT_IN, car.temp_id.hex())]
            assert _wire(out.clpmm).gap_s == pytest.approx(TH["platoon_time_gap_s"] + rate * 0.1, abs=0.01)
        else:
            assert not [r for r in out.raised if r.conflict_type == CUT_IN]  # once per intruder
    assert gaps[0] == pytest.approx(TH["platoon_time_gap_s"] + rate * 0.1)
    assert gaps[-1] == TH["platoon_cutin_time_gap_s"] and max(gaps) == TH["platoon_cutin_time_gap_s"]
    # no feed-forward of truck2's -1 m/s^2 behind the car: a fresh controller on the same inputs, without it,
    # commands the same
    ctl = FollowingController(Gains.of(TH), u=member.controller.u)
    same = ctl.accel(
        dt=0.1, speed=25.0, accel=0.0, ahead=Ahead(gap, 0.0), feed_forward=None, set_speed=28.0, time_gap_s=1.5
    )
    out = member.step(10.1, 0.1, _host(-30.0), Ahead(gap, 0.0), base | {car.temp_id: car}, heard)
    assert out.accel == pytest.approx(same)

    gone = member.step(10.2, 0.1, _host(-30.0), Ahead(gap, 0.0), base, heard)
    assert [(r.conflict_type, r.other) for r in gone.raised] == [(CUT_OUT, car.temp_id.hex())]
    assert member.time_gap_s == pytest.approx(TH["platoon_cutin_time_gap_s"] - rate * 0.1)
    for k in range(1, 100):
        member.step(10.2 + 0.1 * k, 0.1, _host(-30.0), Ahead(gap, 0.0), base, heard)
    assert member.time_gap_s == TH["platoon_time_gap_s"]


def test_a_cut_in_is_kept_while_the_predecessor_is_not_heard_and_ends_when_the_member_leaves() -> None:
    """A diff review: with truck2's BSM aged out (not in the remotes) while the car was still in the gap,
    truck3 raised cut_out, then cut_in again once truck2 was heard; and a member that left the platoon with an
    intruder kept it, without cut_out. Now the intruder is kept while the predecessor is unheard, and leaving
    ends it (cut_out, then left)."""
    lead_id, t2, me = temporary_id("leader"), temporary_id("truck2"), temporary_id("truck3")
    members = ((lead_id, "leader"), (t2, "follower"), (me, "tail"))
    listed = PlatoonInfo(lead_id, lead_id, "leader", "keeping", 0.6, members=members)
    member = PlatoonMember(me, join_at_s=0.0, leave_at_s=3.0, cruise_mps=25.0, thresholds=TH)
    heard = {lead_id: (listed, 0.0)}
    base = {lead_id: _remote("leader", 30.0), t2: _remote("truck2", 0.0)}
    car = _car(-15.0, 0.5)
    gap = TH["platoon_standstill_m"] + TH["platoon_time_gap_s"] * 25.0

    def step(t: float, remotes: dict[bytes, RemoteState], info: PlatoonInfo = listed) -> list[tuple[str, str]]:
        out = member.step(t, 0.1, _host(-30.0), Ahead(gap, 0.0), remotes, {lead_id: (info, t)})
        return [(r.conflict_type, r.other) for r in out.raised]

    assert step(0.0, base) == [("joined", lead_id.hex())]
    assert step(0.1, base | {car.temp_id: car}) == [(CUT_IN, car.temp_id.hex())]
    unheard = {lead_id: base[lead_id], car.temp_id: car}  # truck2's BSM aged out
    assert step(0.2, unheard) == [] and step(0.3, unheard) == []
    assert member.intruder == car.temp_id
    assert step(0.4, base | {car.temp_id: car}) == []  # heard again, the car still there: no second cut_in
    assert member.intruder == car.temp_id and member.time_gap_s > TH["platoon_time_gap_s"]
    assert _wire(
        member.step(3.0, 0.1, _host(-30.0), Ahead(gap, 0.0), base | {car.temp_id: car}, heard).clpmm
    ).status == ("leaving")
    after = PlatoonInfo(lead_id, lead_id, "leader", "keeping", 0.6, members=members[:2])
    assert step(3.1, base | {car.temp_id: car}, after) == [(CUT_OUT, car.temp_id.hex()), ("left", lead_id.hex())]
    assert member.intruder is None and member.state == "left"


def test_the_leader_refuses_a_joiner_beyond_the_join_distance() -> None:
    lead_id, far = temporary_id("leader"), temporary_id("far")
    leader = PlatoonLeader(lead_id, TH)
    ask = PlatoonInfo(sender_id=far, platoon_id=lead_id, role="free", status="joining")
    behind = TRUCK_M + TH["platoon_join_max_distance_m"] + 5.0
    out = leader.step(0.0, _host(0.0), 25.0, {far: _remote("far", -behind)}, {far: (ask, 0.0)})
    assert out.clpmm is not None and out.clpmm.members == ((lead_id, "leader"),)


def test_the_forward_radar_reports_the_nearest_road_user_ahead_in_the_lane() -> None:
    w = WorldState(capacity=8)
    for name, x, y in (
        ("me", 0.0, 0.0),
        ("near", 30.0, 0.3),
        ("far", 60.0, 0.0),
        ("beside", 10.0, 3.5),
        ("back", -20.0, 0.0),
    ):
        w.add(name, ActorKind.TRUCK, TRUCK_M, 2.6)
        s = w.slot_of(name)
        w.x[s], w.y[s], w.vx[s], w.heading_rad[s] = x, y, 20.0, 0.0
    users = np.arange(5, dtype=np.intp)
    got = forward_radar(w, [w.slot_of("me")], users, ["truck"] * 5, 1.0)
    (d,) = got["me"]
    assert (d.object_id, d.sensor, d.x_m, d.time_us) == (w.slot_of("near") + 1, "me/radar", 30.0, 1_000_000)
    assert forward_radar(w, [w.slot_of("far")], users, ["truck"] * 5, 1.0) == {}


def _metrics(errors: dict[str, float]) -> dict[str, dict[str, Any]]:
    actors = ["lead", *errors]
    return {
        "v2x": {
            "string_stability": [
                {"actors": actors, "window_s": [1.0, 2.0], "max_gap_error_m": errors, "amplification": []}
            ]
        }
    }


@pytest.mark.parametrize(
    ("errors", "stable"),
    [({"a": 1.0, "b": 1.04, "c": 0.9}, True), ({"a": 1.0, "b": 1.2, "c": 1.1}, False)],
)
def test_string_stable_and_unstable_read_the_referees_measurement(errors: dict[str, float], stable: bool) -> None:
    actors = ["lead", *errors]
    kinds: tuple[tuple[Literal["string_stable", "string_unstable"], bool], ...] = (
        ("string_stable", stable),
        ("string_unstable", not stable),
    )
    for kind, holds in kinds:
        exp = StringStableExpectation(name="s", type=kind, actors=actors, window_s=(1.0, 2.0), tolerance=0.05)
        ok, detail = check(exp, [], _metrics(errors))
        assert ok is holds, detail
    missing = StringStableExpectation(name="s", type="string_stable", actors=actors, window_s=(0.0, 2.0))
    assert check(missing, [], _metrics(errors)) == (
        False,
        f"string stability of {', '.join(actors)} not measured in variant v2x",
    )


def test_a_gap_expectation_reads_the_referees_measurement() -> None:
    found: dict[str, Any] = {"actor": "b", "other": "a", "window_s": [1.0, 2.0]}
    found |= {"smallest_m": 5.5, "largest_m": 40.0, "smallest_s": 0.3, "largest_s": 1.8}
    metrics = {"baseline": {"gaps": [found]}}
    cases: tuple[tuple[GapMeasure, float | None, float | None, bool], ...] = (
        ("smallest_m", 5.0, None, True),
        ("smallest_m", 6.0, None, False),
        ("largest_s", 1.4, None, True),
        ("smallest_s", None, 0.2, False),
        ("largest_m", None, 40.0, True),
    )
    for measure, lo, hi, holds in cases:
        exp = GapExpectation(
            name="g",
            type="gap",
            variant="baseline",
            actor="b",
            other="a",
            window_s=(1.0, 2.0),
            measure=measure,
            min=lo,
            max=hi,
        )
        ok, detail = check(exp, [], metrics)
        assert ok is holds, detail
    ok, detail = check(
        GapExpectation(name="g", type="gap", actor="b", other="a", window_s=(1.0, 2.0), measure="smallest_m", min=1),
        [],
        metrics,
    )
    assert (ok, detail) == (False, "smallest_m of b behind a in 1-2 s not measured in variant v2x")
    with pytest.raises(ValueError, match="give 'min' and/or 'max'"):
        GapExpectation(name="g", type="gap", actor="b", other="a", window_s=(1.0, 2.0), measure="smallest_m")
    with pytest.raises(ValueError, match="two actors"):
        GapExpectation(name="g", type="gap", actor="a", other="a", window_s=(1.0, 2.0), measure="largest_s", max=1)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["actors"][1].update(kind="pedestrian"), "actors[1].platoon"),
        (lambda d: d["actors"][0].pop("platoon"), "actors[1].platoon"),
        (lambda d: d["actors"][1]["platoon"].update(join_at_s=9.0, leave_at_s=5.0), "actors[1].platoon"),
        (lambda d: d["actors"][0]["platoon"].update(leave_at_s=5.0), "actors[0].platoon"),
        (lambda d: d["expectations"][2].update(actors=["leader", "truck2"]), "expectations[2].actors"),
        (lambda d: d["expectations"][2].update(actors=["leader", "truck2", "nobody"]), "expectations[2].actors[2]"),
    ],
)
def test_the_loader_names_the_field_of_a_bad_platoon(tmp_path: Path, change: Any, field: str) -> None:
    import yaml

    data = yaml.safe_load(PLATOON.read_text())
    change(data)
    bad = tmp_path / "platoon.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ScenarioError) as err:
        load_scenario(bad)
    assert field in [where for where, _ in err.value.problems]  # (the message also names the actor: "(truck2)")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])  # seed 0: its golden record, in test_e2e.py
async def test_the_platoon_scenario_passes_on_seeds_1_to_3(seed: int) -> None:
    from v2x.run.runner import run_scenario

    result = await run_scenario(load_scenario(PLATOON), seed=seed, broker="loopback")
    assert result["passed"], [e for e in result["expectations"] if not e["passed"]]
    v2x, baseline = (
        next(s for s in result["metrics"][v]["string_stability"] if s["actors"][0] == "leader")
        for v in ("v2x", "baseline")
    )
    assert all(r <= 1.05 for r in v2x["amplification"])
    assert all(r > 1.05 for r in baseline["amplification"])
    # Join and leave went over the air: CLPMMs were delivered, and the events name them.
    assert result["metrics"]["v2x"]["latency_ms_by_message"]["clpmm"]["p50"] is not None
    events = [
        (e["conflict"], e["target"]) for e in result["events"] if e["type"] == "warning" and e["app"] == "platoon"
    ]
    assert [c for c, target in events if target == "joiner"] == ["joined", "left"]
    assert {target for c, target in events if c == "joined"} == {"truck2", "truck3", "truck4", "joiner"}
    assert not math.isnan(v2x["max_gap_error_m"]["joiner"])


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])  # seed 0: its golden record, in test_e2e.py
async def test_the_cutin_scenario_passes_and_the_truck_behind_the_car_keeps_more_room_with_v2x(seed: int) -> None:
    from v2x.run.runner import run_scenario

    result = await run_scenario(load_scenario(CUTIN), seed=seed, broker="loopback")
    assert result["passed"], [e for e in result["expectations"] if not e["passed"]]
    window = [16.0, 38.5]  # from the car's braking until it leaves
    gaps = {
        v: next(
            g
            for g in result["metrics"][v]["gaps"]
            if (g["actor"], g["other"], g["window_s"]) == ("truck3", "car", window)
        )
        for v in ("v2x", "baseline")
    }
    assert gaps["v2x"]["smallest_m"] > gaps["baseline"]["smallest_m"]
    assert gaps["v2x"]["smallest_s"] > gaps["baseline"]["smallest_s"]
    events = [(e["conflict"], e["target"], e["other"]) for e in result["events"] if e["type"] == "warning"]
    assert [(c, o) for c, target, o in events if target == "truck3" and c.startswith("cut")] == [
        ("cut_in", "car"),
        ("cut_out", "car"),
    ]
