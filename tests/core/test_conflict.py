"""Hand-computed conflict cases. Cars are 5 m x 2 m (half length 2.5, half width 1) unless stated."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest

from v2x.core import ActorKind, Conflicts, ConflictType, WorldState, detect_conflicts, overlapping_pairs


def world_of(*actors: dict[str, float]) -> WorldState:
    """Each actor: x, y, vx, vy, ax, ay, h (heading, rad), L, W (defaults: 0 / car)."""
    w = WorldState(capacity=2)
    for k, a in enumerate(actors):
        s = w.add(f"a{k}", ActorKind.CAR, a.get("L", 5.0), a.get("W", 2.0))
        w.set_state(
            np.array([s]),
            a.get("x", 0.0),
            a.get("y", 0.0),
            a.get("vx", 0.0),
            a.get("vy", 0.0),
            a.get("ax", 0.0),
            a.get("ay", 0.0),
            a.get("h", 0.0),
        )
    return w


def only(c: Conflicts) -> dict[str, float]:
    assert len(c) == 1, c
    return {f: getattr(c, f)[0] for f in c.__dataclass_fields__}


def test_rear_end_cv_exact() -> None:
    # gap 30 - 5 = 25 m, closing 10 m/s -> TTC 2.5 s; DRAC = 10^2 / (2 * 25) = 2 m/s^2.
    w = world_of(dict(x=0, vx=20), dict(x=30, vx=10))
    for model in ("cv", "ca"):
        c = only(detect_conflicts(w, model=model))
        assert (c["i"], c["j"], c["kind"]) == (0, 1, ConflictType.REAR_END)
        assert c["ttc_s"] == pytest.approx(2.5, abs=1e-12)
        assert c["drac_mps2"] == pytest.approx(2.0, abs=1e-12)
        assert math.isnan(c["pet_s"]) and math.isnan(c["t_conflict_i_s"]) and not c["overlapping"]
        assert c["distance_m"] == 30.0


def test_rear_end_follower_is_i_whatever_the_slot_order() -> None:
    w = world_of(dict(x=30, vx=10), dict(x=0, vx=20))
    c = only(detect_conflicts(w))
    assert (c["i"], c["j"]) == (1, 0)
    directed = only(detect_conflicts(w, pairs=(np.array([0]), np.array([1]))))
    assert (directed["i"], directed["j"]) == (1, 0) and directed["ttc_s"] == pytest.approx(2.5)


def test_rear_end_ca_leader_braking() -> None:
    # Leader brakes at 2 m/s^2: gap 25 - 10 t - t^2 = 0 -> t = -5 + sqrt(50).
    w = world_of(dict(x=0, vx=20), dict(x=30, vx=10, ax=-2))
    assert only(detect_conflicts(w, model="ca"))["ttc_s"] == pytest.approx(-5 + math.sqrt(50), abs=1e-9)
    assert only(detect_conflicts(w, model="cv"))["ttc_s"] == pytest.approx(2.5)


def test_ca_stopped_leader_stays_stopped() -> None:
    # Leader 10 m/s braking 5 m/s^2 stops at t=2 after 10 m; follower 10 m/s, gap 25:
    # at t=2 gap is 15, closed at 10 m/s -> TTC 3.5 s. Under CV equal speeds never meet.
    w = world_of(dict(x=0, vx=10), dict(x=30, vx=10, ax=-5))
    assert only(detect_conflicts(w, model="ca"))["ttc_s"] == pytest.approx(3.5, abs=1e-9)
    assert len(detect_conflicts(w, model="cv")) == 0


def test_ca_braking_follower_does_not_reverse() -> None:
    # Follower 10 m/s braking 5 m/s^2 stops after 10 m. Stationary car 9 m ahead (bumper gap):
    # 10 t - 2.5 t^2 = 9 -> t = 2 - sqrt(0.4). With the car 11 m ahead it stops 1 m short: no conflict
    # (a quadratic without the stop clamp would "reverse" and never report, or wrongly report later).
    w = world_of(dict(x=0, vx=10, ax=-5), dict(x=14))
    assert only(detect_conflicts(w, model="ca"))["ttc_s"] == pytest.approx(2 - math.sqrt(0.4), abs=1e-9)
    w2 = world_of(dict(x=0, vx=10, ax=-5), dict(x=16))
    assert len(detect_conflicts(w2, model="ca")) == 0
    # Accelerating from standstill: 0.5 * 2 * t^2 = 20 (gap) -> t = sqrt(20).
    w3 = world_of(dict(x=0, vx=0, ax=2), dict(x=25))
    assert only(detect_conflicts(w3, model="ca"))["ttc_s"] == pytest.approx(math.sqrt(20), abs=1e-9)


def test_zero_speed_target_and_all_stopped() -> None:
    # Approaching a stopped car at 15 m/s, bumper gap 30 m: TTC 2, DRAC 15^2 / 60 = 3.75.
    c = only(detect_conflicts(world_of(dict(x=0, vx=15), dict(x=35))))
    assert c["ttc_s"] == pytest.approx(2.0) and c["drac_mps2"] == pytest.approx(3.75)
    assert c["kind"] == ConflictType.REAR_END
    assert len(detect_conflicts(world_of(dict(x=0), dict(x=5.5), dict(x=0, y=6, h=1.0)))) == 0
    c = only(detect_conflicts(world_of(dict(x=0), dict(x=0, y=2.5, h=1.0))))  # standing, overlapping
    assert c["overlapping"] and c["drac_mps2"] == 0.0


def test_parallel_and_diverging_are_not_conflicts() -> None:
    # Adjacent lanes (3.5 m apart), same speed; overtaking at different speeds; leader pulling away.
    assert len(detect_conflicts(world_of(dict(x=0, vx=20), dict(x=0, y=3.5, vx=20)))) == 0
    assert len(detect_conflicts(world_of(dict(x=-30, vx=30), dict(x=0, y=3.5, vx=20)))) == 0
    assert len(detect_conflicts(world_of(dict(x=0, vx=10), dict(x=10, vx=20)))) == 0
    # Same lane, same speed, 1 m bumper gap: close but parallel -> no TTC.
    assert len(detect_conflicts(world_of(dict(x=0, vx=20), dict(x=6, vx=20)))) == 0


def test_already_overlapping() -> None:
    # Centres 4 m apart in the same lane: boxes overlap by 1 m. Leader faster (diverging): DRAC 0.
    c = only(detect_conflicts(world_of(dict(x=0, vx=10), dict(x=4, vx=12))))
    assert c["overlapping"] and c["ttc_s"] == 0.0 and c["drac_mps2"] == 0.0
    c = only(detect_conflicts(world_of(dict(x=0, vx=12), dict(x=4, vx=10))))
    assert c["overlapping"] and c["ttc_s"] == 0.0 and c["drac_mps2"] == math.inf


def test_horizon_cutoff() -> None:
    w = world_of(dict(x=0, vx=15), dict(x=60, vx=5))  # gap 55 at 10 m/s -> 5.5 s
    assert len(detect_conflicts(w, horizon_s=5.0)) == 0
    assert only(detect_conflicts(w, horizon_s=6.0))["ttc_s"] == pytest.approx(5.5)


def test_head_on() -> None:
    # Same lane, opposite directions: bumper gap 100 m, closing 25 m/s -> TTC 4; DRAC 625/200.
    w = world_of(dict(x=0, vx=10), dict(x=105, vx=-15, h=math.pi))
    c = only(detect_conflicts(w))
    assert c["kind"] == ConflictType.HEAD_ON
    assert c["ttc_s"] == pytest.approx(4.0) and c["drac_mps2"] == pytest.approx(3.125)


def test_crossing_collision() -> None:
    # a eastbound from x=-50, b northbound from y=-50, both 10 m/s. Boxes touch when
    # x_a = -(2.5 + 1) and y_b = -(1 + 2.5): t = 4.65 s. Both centres reach the point at 5.0 s.
    # Conflict area along each path: +-1 m (other's half width) +-2.5 m (own half length):
    # a in [4.65, 5.35], b in [4.65, 5.35] -> PET 0.
    # DRAC (b, the second by tie-break): arrive at its entry (46.5 m) no earlier than 5.35 s:
    # 2 (10 * 5.35 - 46.5) / 5.35^2.
    w = world_of(dict(x=-50, vx=10), dict(y=-50, vy=10, h=math.pi / 2))
    c = only(detect_conflicts(w, model="cv"))
    assert c["kind"] == ConflictType.CROSSING
    assert c["ttc_s"] == pytest.approx(4.65, abs=1e-9)
    assert c["pet_s"] == 0.0
    assert c["t_conflict_i_s"] == pytest.approx(5.0) and c["t_conflict_j_s"] == pytest.approx(5.0)
    assert c["drac_mps2"] == pytest.approx(2 * (53.5 - 46.5) / 5.35**2, abs=1e-9)


def test_crossing_near_miss_pet() -> None:
    # b from y=-40: in the area 3.65..4.35 s; a from x=-50: 4.65..5.35 s -> PET 0.3 s, no collision.
    w = world_of(dict(x=-50, vx=10), dict(y=-40, vy=10, h=math.pi / 2))
    c = only(detect_conflicts(w, model="cv"))
    assert c["kind"] == ConflictType.CROSSING and c["ttc_s"] == math.inf
    assert c["pet_s"] == pytest.approx(0.3, abs=1e-9)
    assert (c["t_conflict_i_s"], c["t_conflict_j_s"]) == pytest.approx((5.0, 4.0))
    assert c["drac_mps2"] == 0.0  # the second already arrives after the first leaves
    assert len(detect_conflicts(w, model="cv", max_pet_s=0.29)) == 0
    # b reaches the crossing point after the horizon: not reported.
    assert len(detect_conflicts(w, model="cv", horizon_s=4.5)) == 0


def test_crossing_at_60_degrees_pet() -> None:
    # Paths at 60 deg: area half extent along each path h = (1 + 1 * cos60) / sin60.
    h = 1.5 / math.sin(math.radians(60))
    ang = math.radians(60)
    # j goes through the origin at 60 deg, 12 m/s, centre 36 m before the point (3 s); i eastbound
    # 10 m/s, 45 m before the point (4.5 s).
    w = world_of(
        dict(x=-45, vx=10),
        dict(x=-36 * math.cos(ang), y=-36 * math.sin(ang), vx=12 * math.cos(ang), vy=12 * math.sin(ang), h=ang),
    )
    c = only(detect_conflicts(w, model="cv"))
    exit_j = (36 + h + 2.5) / 12
    enter_i = (45 - h - 2.5) / 10
    assert c["pet_s"] == pytest.approx(enter_i - exit_j, abs=1e-9)
    assert (c["t_conflict_i_s"], c["t_conflict_j_s"]) == pytest.approx((4.5, 3.0))


def test_lateral_merge() -> None:
    # i drifts left at 1 m/s toward j in the next lane (centres 3.5 m apart, boxes axis-aligned):
    # lateral gap 1.5 m -> TTC 1.5 s, DRAC 1 / (2 * 1.5).
    w = world_of(dict(x=0, vx=20, vy=1), dict(y=3.5, vx=20))
    c = only(detect_conflicts(w, model="cv"))
    assert c["kind"] == ConflictType.LATERAL
    assert c["ttc_s"] == pytest.approx(1.5) and c["drac_mps2"] == pytest.approx(1 / 3)


def test_oriented_boxes_not_circles() -> None:
    # 2 x 2 square rotated 45 deg near the corner of a 4 x 2 box: bounding boxes overlap, SAT says
    # the (1,1) axis separates them: offset 4.8/sqrt2 = 3.394 > (3 + sqrt2)/sqrt2 = 3.121.
    w = world_of(dict(L=4, W=2), dict(x=2.9, y=1.9, L=2, W=2, h=math.pi / 4))
    assert overlapping_pairs(w)[0].tolist() == []
    w2 = world_of(dict(L=4, W=2), dict(x=2.6, y=1.5, L=2, W=2, h=math.pi / 4))  # 2.9 < 3.121
    i, j = overlapping_pairs(w2)
    assert (i.tolist(), j.tolist()) == ([0], [1])
    # A 13 m truck sweeping past at an angle: rotated-box TTC differs from circle TTC.
    w3 = world_of(dict(x=0, vx=10), dict(x=20, L=13, W=2.6, h=math.pi / 2))
    # The truck stands across the lane: front of car (x+2.5) meets truck side at 20 - 1.3.
    assert only(detect_conflicts(w3))["ttc_s"] == pytest.approx((20 - 1.3 - 2.5) / 10)


def test_pairs_argument_and_inactive_slots() -> None:
    w = world_of(dict(x=0, vx=20), dict(x=30, vx=10), dict(x=200, vx=30))
    c = detect_conflicts(w, pairs=(np.array([2, 0]), np.array([0, 2])))
    assert len(c) == 0  # 2 is 170 m behind? no: 200 m ahead, faster -> diverging
    w.remove("a1")
    assert len(detect_conflicts(w, pairs=(np.array([0]), np.array([1])))) == 0
    with pytest.raises(ValueError):
        detect_conflicts(w, model="ctrv")  # type: ignore[arg-type]


@pytest.mark.parametrize("compiled", [False, True], ids=["interpreted", "compiled"])
def test_road_users_on_different_levels_are_never_in_conflict_or_in_contact(compiled: bool) -> None:
    # A crossing (both centres reach (0, 0) at t = 2 s, PET 0) and a rear-end (TTC 2.5 s) with the followers
    # overlapping their leader now as well: all in conflict on one level. A car 7.5 m up (a flyover) is kept
    # apart (> VERTICAL_SEPARATION_M = 4 m); 3.9 m apart (a ramp) or an unknown height (nan) is not.
    from v2x.core import VERTICAL_SEPARATION_M, always_compiled

    assert VERTICAL_SEPARATION_M == 4.0

    def pairs_at(dz: float) -> tuple[list[tuple[int, int, int]], list[tuple[int, int]], list[tuple[int, int]]]:
        w = world_of(
            dict(x=-20, vx=10),  # 0: eastbound, reaches (0, 0) at 2 s
            dict(y=-20, vy=10, h=math.pi / 2),  # 1: northbound, reaches (0, 0) at 2 s
            dict(x=40, vx=20),  # 2: follower of 3
            dict(x=70, vx=10),  # 3: leader, 30 m ahead
            dict(x=100, y=50),  # 4: standing, overlapping 5
            dict(x=101, y=50),  # 5
        )
        w.z[1] = w.z[3] = w.z[5] = dz
        with always_compiled() if compiled else contextlib.nullcontext():
            c = detect_conflicts(w, horizon_s=5.0)
            pi, pj = overlapping_pairs(w)
            host = np.array([0, 2, 4], dtype=np.intp)
            d = detect_conflicts(w, horizon_s=5.0, pairs=(host, host + 1))
        return (
            [(int(i), int(j), int(k)) for i, j, k in zip(c.i, c.j, c.kind, strict=True)],
            [(int(i), int(j)) for i, j in zip(d.i, d.j, strict=True)],
            [(int(i), int(j)) for i, j in zip(pi, pj, strict=True)],
        )

    same = (
        [(0, 1, ConflictType.CROSSING), (2, 3, ConflictType.REAR_END), (4, 5, ConflictType.REAR_END)],
        [(0, 1), (2, 3), (4, 5)],
        [(4, 5)],
    )
    for dz in (0.0, 3.9, -4.0, math.nan):
        found, directed, touching = pairs_at(dz)
        assert found == same[0] and directed == same[1] and touching == same[2], dz
    for dz in (7.5, -4.01):
        assert pairs_at(dz) == ([], [], []), dz


@pytest.mark.parametrize("compiled", [False, True], ids=["interpreted", "compiled"])
def test_levels_are_compared_where_the_pair_would_meet(compiled: bool) -> None:
    # Rear-end on one 15 % descent: the follower (20 m/s, TTC 2.5 s) is 4.5 m above its leader now and comes
    # down at 3 m/s, the leader at 1.5 m/s: 4.5 - 1.5 x 2.5 = 0.75 m apart when they touch: in conflict.
    # Crossing: car 1 climbs a ramp at 1.2 m/s, 2 m above car 0 now; both reach (0, 0) at 2 s, where car 1
    # is 4.4 m up: kept apart. Overlaps compare heights now.
    from v2x.core import always_compiled

    w = world_of(
        dict(x=-20, vx=10),
        dict(y=-20, vy=10, h=math.pi / 2),
        dict(x=40, y=50, vx=20),
        dict(x=70, y=50, vx=10),
    )
    w.z[1], w.vz[1] = 2.0, 1.2
    w.z[2], w.vz[2] = 4.5, -3.0
    w.z[3], w.vz[3] = 0.0, -1.5
    with always_compiled() if compiled else contextlib.nullcontext():
        c = detect_conflicts(w, horizon_s=5.0)
    assert [(int(i), int(j)) for i, j in zip(c.i, c.j, strict=True)] == [(2, 3)]
    w.vz[1] = 0.9  # 3.8 m up at the crossing: same level
    with always_compiled() if compiled else contextlib.nullcontext():
        c = detect_conflicts(w, horizon_s=5.0)
    assert [(int(i), int(j)) for i, j in zip(c.i, c.j, strict=True)] == [(0, 1), (2, 3)]
