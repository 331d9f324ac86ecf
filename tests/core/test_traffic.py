"""The traffic model (v2x/core/traffic.py): hand-computed IDM and MOBIL cases, junctions, stop lines,
speed limits, and the compiled step against the plain-numpy step (bit for bit)."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest

from v2x.core import ActorKind
from v2x.core.traffic import (
    CLASS_PARAMS,
    LaneNetwork,
    StepResult,
    Traffic,
    idm_acceleration,
    traffic_step,
    traffic_step_numpy,
)

CAR = CLASS_PARAMS[ActorKind.CAR]


# -- IDM, hand-computed -----------------------------------------------------------------------------


def test_idm_free_road() -> None:
    # a [1 - (v/v0)^4] = 1 - 0.5^4
    acc = idm_acceleration(10.0, 20.0, 1.0, 2.0, 1.0, 1.5)
    assert float(acc) == pytest.approx(0.9375, abs=1e-15)


def test_idm_approaching_a_standing_leader() -> None:
    # s* = 2 + 10·1 + 10·10 / (2 sqrt(1·1.5)) = 52.82482905; a [1 - 0.0625 - (52.82482905/50)²]
    acc = idm_acceleration(10.0, 20.0, 1.0, 2.0, 1.0, 1.5, gap=50.0, dv=10.0)
    assert float(acc) == pytest.approx(-0.17868502551197518, abs=1e-12)
    # far closer: the IDM asks for more than any car can do; clamped to the physical limit
    assert float(idm_acceleration(10.0, 20.0, 1.0, 2.0, 1.0, 1.5, gap=3.0, dv=10.0)) == -9.0


def test_idm_equilibrium_gap_gives_zero_acceleration() -> None:
    # s_e(v) = (s0 + v T) / sqrt(1 - (v/v0)^4) (Treiber & Kesting 2013, eq. 11.9)
    v, v0, t_gap, s0 = 10.0, 20.0, 1.0, 2.0
    s_e = (s0 + v * t_gap) / math.sqrt(1.0 - (v / v0) ** 4)
    assert float(idm_acceleration(v, v0, t_gap, s0, 1.0, 1.5, gap=s_e, dv=0.0)) == pytest.approx(0.0, abs=1e-12)


def test_platoon_at_equilibrium_on_a_ring_stays_there() -> None:
    n, v = 10, 15.0
    s_e = (CAR.s0_m + v * CAR.t_gap_s) / math.sqrt(1.0 - (v / CAR.v0_mps) ** 4)
    ring = n * (s_e + CAR.length_m)
    net = LaneNetwork.build([ring], 100.0, [[0]])
    tr = Traffic.create(np.zeros(n), np.arange(n) * (s_e + CAR.length_m), np.full(n, v))
    for tick in range(100):
        r = traffic_step(net, tr, None, 0.1, tick)
    assert np.max(np.abs(r.acc_mps2)) < 1e-9
    assert np.allclose(tr.v_mps, v, atol=1e-9)
    assert np.allclose(r.gap_m, s_e, atol=1e-6)


# -- lane graph: leaders across a junction -----------------------------------------------------------


def test_leader_across_a_junction() -> None:
    net = LaneNetwork.build([100.0, 50.0], 30.0, [[1], []])
    tr = Traffic.create([0, 1], [90.0, 20.0], [10.0, 10.0])
    r = traffic_step(net, tr)
    assert r.leader.tolist() == [1, -1]
    assert r.gap_m[0] == pytest.approx((100.0 - 90.0) + 20.0 - CAR.length_m)  # 25 m
    assert math.isinf(r.gap_m[1])  # the lane ends the network: no leader


def test_the_leader_is_the_nearest_rear_bumper_when_boxes_overlap() -> None:
    """A wreck (a car at rest, front at 275.6 m) with a pedestrian standing inside its box (a 0.5 m
    obstacle, front at 275.25 m): the next front bumper ahead of a follower is the pedestrian's, but the
    nearest thing ahead is the car's rear at 270.6 m. The follower stops behind the car; it used to aim
    at the pedestrian and roll into the car's rear (newcomer review 17, seed 3 of its crossroads)."""
    net = LaneNetwork.build([600.0], 30.0, [[]])
    for step in (traffic_step, traffic_step_numpy):
        tr = Traffic.create([0, 0, 0], [275.58, 275.25, 230.0], [0.0, 0.0, 10.0], length_m=[5.0, 0.5, 5.0])
        r = step(net, tr)
        assert r.leader.tolist()[2] == 0
        assert r.gap_m[2] == pytest.approx(275.58 - 5.0 - 230.0)
        for tick in range(1, 300):
            tr.s_m[:2], tr.v_mps[:2] = (275.58, 275.25), 0.0  # held, as the world holds wrecks
            step(net, tr, None, 0.1, tick)
            assert tr.s_m[2] < 275.58 - 5.0, (step, tick)
        assert tr.v_mps[2] < 0.05 and tr.s_m[2] > 275.58 - 5.0 - CAR.s0_m - 0.5


def test_the_nearest_rear_bumper_ahead_may_be_across_the_junction() -> None:
    """A short obstacle at the very end of a lane inside a truck whose front is on the next lane: the
    follower's leader is the truck (the rearmost rear bumper ahead), with the gap to its rear."""
    net = LaneNetwork.build([100.0, 100.0], 30.0, [[1], []])
    for step in (traffic_step, traffic_step_numpy):
        tr = Traffic.create([1, 0, 0], [5.0, 99.5, 60.0], [0.0, 0.0, 10.0], length_m=[13.0, 0.5, 5.0])
        r = step(net, tr)
        assert r.leader.tolist() == [-1, 0, 0]
        assert r.gap_m[2] == pytest.approx(100.0 + 5.0 - 13.0 - 60.0)


def test_route_choice_is_the_lane_the_vehicle_then_takes() -> None:
    """With two successors a vehicle sees the leader on the lane it will take, and then takes that lane;
    the choice is per vehicle (both successors get chosen)."""
    net = LaneNetwork.build([100.0, 200.0, 200.0], 30.0, [[1, 2], [], []])
    taken = set()
    for vid in range(8):
        # vehicle `vid` 5 m before the junction; one vehicle 30 m into each successor; the rest off the net
        lane = np.full(10, -1)
        s = np.zeros(10)
        lane[vid], s[vid] = 0, 95.0
        lane[8], s[8] = 1, 30.0
        lane[9], s[9] = 2, 30.0
        tr = Traffic.create(lane, s, np.full(10, 10.0))
        ahead = int(traffic_step(net, tr).leader[vid])
        assert ahead in (8, 9)
        for _ in range(20):
            traffic_step(net, tr)
        assert tr.lane[vid] == tr.lane[ahead]
        taken.add(int(tr.lane[vid]))
    assert taken == {1, 2}


# -- stop lines and speed limits --------------------------------------------------------------------


def _signal_road() -> LaneNetwork:
    return LaneNetwork.build([200.0, 300.0], 30.0, [[1], []], stop_line_m=[150.0, np.nan])


def test_red_line_holds_and_green_releases() -> None:
    net = _signal_road()
    tr = Traffic.create([0], [0.0], [10.0])
    red = np.array([True, False])
    for tick in range(600):  # 60 s of red
        traffic_step(net, tr, red, 0.1, tick)
        assert tr.lane[0] == 0 and tr.s_m[0] <= 150.0
    assert tr.v_mps[0] < 0.05
    assert 150.0 - CAR.s0_m - 0.5 <= tr.s_m[0] <= 150.0  # stopped about s0 before the line
    for tick in range(600, 800):  # green
        traffic_step(net, tr, ~red & np.array([True, False]), 0.1, tick)
    assert tr.lane[0] == 1


def test_red_too_late_to_stop_is_passed() -> None:
    """15 m/s, 5 m before the line: stopping needs 22.5 m/s² > b_safe, so the driver goes on."""
    net = _signal_road()
    tr = Traffic.create([0], [145.0], [15.0])
    r = traffic_step(net, tr, np.array([True, False]))
    assert r.acc_mps2[0] > 0.0
    stopper = Traffic.create([0], [50.0], [15.0])  # 100 m before: brakes
    assert traffic_step(net, stopper, np.array([True, False])).acc_mps2[0] < 0.0


def test_red_line_on_the_next_lane_is_seen_across_the_junction() -> None:
    net = LaneNetwork.build([100.0, 100.0], 30.0, [[1], []], stop_line_m=[np.nan, 20.0])
    tr = Traffic.create([0], [60.0], [15.0])
    for tick in range(400):
        traffic_step(net, tr, np.array([False, True]), 0.1, tick)
    assert tr.lane[0] == 1 and 20.0 - CAR.s0_m - 0.5 <= tr.s_m[0] <= 20.0 and tr.v_mps[0] < 0.05


def test_speed_limit_respected() -> None:
    net = LaneNetwork.build([5000.0], 10.0, [[]])
    tr = Traffic.create([0, 0], [0.0, 100.0], [0.0, 14.0], kind=[ActorKind.CAR, ActorKind.EMERGENCY])
    top = 0.0
    for tick in range(600):
        traffic_step(net, tr, None, 0.1, tick)
        if tick > 0:
            top = max(top, float(tr.v_mps[0]))
    assert top <= 10.0 + 1e-12 and top > 9.5
    assert tr.v_mps[1] < 10.0 + 1e-6  # started above the limit: brought down to it


def test_set_params_keeps_the_derived_reciprocals_true() -> None:
    # the step reads 1/v0 and 1/(2 sqrt(a b)) kept per vehicle: a parameter changed through set_params
    # drives exactly as a vehicle created with it; an in-place write, which would leave them stale, raises
    net = LaneNetwork.build([5000.0], 30.0, [[]])
    changed = Traffic.create([0, 0], [0.0, 200.0], [10.0, 10.0])
    derived = (changed.inv_v0, changed.inv_den, float(changed.inv_v0[0]))
    changed.set_params([1], v0_mps=12.0, a_mps2=1.7, b_mps2=2.5, politeness=0.3)
    # the rows given only, in place (the background's every spawn rebuilt the whole table's: a diff review)
    assert changed.inv_v0 is derived[0] and changed.inv_den is derived[1] and changed.inv_v0[0] == derived[2]
    fresh = Traffic.create([0, 0], [0.0, 200.0], [10.0, 10.0], v0_mps=[CAR.v0_mps, 12.0], a_mps2=[1.0, 1.7])
    fresh.set_params(1, b_mps2=2.5, politeness=0.3)
    assert float(changed.inv_v0[1]) == 1.0 / 12.0 and float(changed.inv_den[1]) == 1.0 / (2.0 * math.sqrt(1.7 * 2.5))
    for tick in range(50):
        a = traffic_step(net, changed, None, 0.1, tick)
        b = traffic_step_numpy(net, fresh, None, 0.1, tick)
        assert np.array_equal(a.acc_mps2, b.acc_mps2)
    assert np.array_equal(changed.s_m, fresh.s_m) and changed.v_mps[1] < 12.0
    for name in ("v0_mps", "a_mps2", "b_mps2", "inv_v0", "inv_den"):
        with pytest.raises(ValueError, match="read-only"):
            getattr(changed, name)[0] = 1.0
    with pytest.raises(TypeError, match="unknown vehicle parameter"):
        changed.set_params(0, inv_v0=1.0)
    copy = changed.copy()
    copy.set_params(0, v0_mps=5.0)
    assert changed.v0_mps[0] == CAR.v0_mps and float(copy.inv_v0[0]) == 0.2


# -- MOBIL ------------------------------------------------------------------------------------------


def _two_lanes() -> LaneNetwork:
    # lane 0 right, lane 1 left; 1 km, no successors
    return LaneNetwork.build([1000.0, 1000.0], 40.0, [[], []], left=[1, -1], right=[-1, 0])


def _car_acc(v: float, gap: float = math.inf, dv: float = 0.0) -> float:
    return float(idm_acceleration(v, CAR.v0_mps, CAR.t_gap_s, CAR.s0_m, CAR.a_mps2, CAR.b_mps2, gap, dv))


def test_mobil_incentive_decides() -> None:
    """A car stuck behind a slow one (25 m gap, 10 m/s slower), empty left lane, no followers, p = 0:
    incentive = a_free - a_c; it changes iff that exceeds the threshold."""
    net = _two_lanes()
    incentive = _car_acc(20.0) - _car_acc(20.0, 25.0, 10.0)
    assert incentive > 1.0
    for a_th, expected in ((incentive - 0.01, 1), (incentive + 0.01, 0)):
        tr = Traffic.create([0, 0], [100.0, 130.0], [20.0, 10.0], politeness=0.0, a_threshold_mps2=a_th)
        r = traffic_step(net, tr, None, 0.1, 0)  # even tick: to the left
        assert r.lane_change.tolist() == [expected, 0]
        assert tr.lane[0] == (1 if expected else 0)
        assert r.acc_mps2[0] == pytest.approx(_car_acc(20.0) if expected else _car_acc(20.0, 25.0, 10.0), abs=1e-12)
    # odd tick: only changes to the right are considered, and lane 0 has none
    tr = Traffic.create([0, 0], [100.0, 130.0], [20.0, 10.0], politeness=0.0)
    assert traffic_step(net, tr, None, 0.1, 1).lane_change.tolist() == [0, 0]


def test_mobil_safety_decides() -> None:
    """Same, with a faster car 35 m behind on the left lane: it would have to brake at a_n~; the change
    happens iff a_n~ >= -b_safe."""
    net = _two_lanes()
    a_n = _car_acc(22.0, 100.0 - CAR.length_m - 60.0, 22.0 - 20.0)  # gap 35 m, closing at 2 m/s
    assert -2.0 < a_n < -0.3
    for b_safe, expected in ((-a_n - 0.01, 0), (-a_n + 0.01, 1)):
        tr = Traffic.create(
            [0, 0, 1],
            [100.0, 130.0, 60.0],
            [20.0, 10.0, 22.0],
            politeness=0.0,
            a_threshold_mps2=0.1,
            b_safe_mps2=b_safe,
        )
        r = traffic_step(net, tr, None, 0.1, 0)
        assert r.lane_change.tolist() == [expected, 0, 0]


def test_mobil_politeness_counts_the_others() -> None:
    """With p = 1 the new follower's loss counts in full and outweighs the changer's gain."""
    net = _two_lanes()
    args = ([0, 0, 1], [100.0, 130.0, 75.0], [20.0, 10.0, 25.0])
    selfish = traffic_step(net, Traffic.create(*args, politeness=0.0, b_safe_mps2=9.0), None, 0.1, 0)
    polite = traffic_step(net, Traffic.create(*args, politeness=1.0, b_safe_mps2=9.0), None, 0.1, 0)
    assert selfish.lane_change[0] == 1 and polite.lane_change[0] == 0


# -- the compiled step equals the numpy step --------------------------------------------------------


def test_mobil_does_not_change_into_a_wreck_that_overlaps_a_short_box() -> None:
    """On the left lane a wreck (rear 270.58 m) with a short box standing inside its front (rear 274.75 m).
    A car standing at 272 m on the right lane, 1.8 m behind a standing car, would gain by moving left if
    the short box were its new leader (2.75 m ahead); the nearest rear bumper there is the wreck's, behind
    its front: no room. It used to move into the wreck."""
    net = _two_lanes()
    for step in (traffic_step, traffic_step_numpy):
        tr = Traffic.create(
            [1, 1, 0, 0], [275.58, 275.25, 272.0, 278.8], [0.0, 0.0, 0.0, 0.0], length_m=[5.0, 0.5, 5.0, 5.0]
        )
        r = step(net, tr, None, 0.1, 0)  # tick 0: changes to the left
        assert r.lane_change.tolist() == [0, 0, 0, 0], step
        tr = Traffic.create([1, 0, 0], [275.25, 272.0, 278.8], [0.0, 0.0, 0.0], length_m=[0.5, 5.0, 5.0])
        assert step(net, tr, None, 0.1, 0).lane_change.tolist() == [0, 1, 0]  # (without the wreck it would)


def _assert_same(a: Traffic, b: Traffic, ra: StepResult, rb: StepResult, tick: int) -> None:
    for f in fields(a):
        assert np.array_equal(getattr(a, f.name), getattr(b, f.name)), (tick, f.name)
    for f in fields(ra):
        assert np.array_equal(getattr(ra, f.name), getattr(rb, f.name)), (tick, f.name)


def test_compiled_step_equals_numpy_step_on_random_states() -> None:
    rng = np.random.default_rng(7)
    # three parallel lanes on a ring, a side loop through a junction with a signal, some dead ends
    length = [800.0, 800.0, 800.0, 300.0, 120.0]
    succ = [[0, 3], [1], [2, 4], [0], []]
    net = LaneNetwork.build(
        length,
        [30.0, 25.0, 30.0, 15.0, 20.0],
        succ,
        left=[1, 2, -1, -1, -1],
        right=[-1, 0, 1, -1, -1],
        stop_line_m=[800.0, np.nan, 400.0, 290.0, np.nan],
    )
    n = 150
    lane = rng.integers(0, 5, n)
    s = rng.uniform(0.0, 1.0, n) * np.asarray(length)[lane]
    kinds = rng.choice([1, 2, 3, 4], n)
    tr = Traffic.create(lane, s, rng.uniform(0.0, 30.0, n), kinds, politeness=rng.uniform(0.0, 0.5, n))
    tr.order = rng.permutation(n).astype(np.int64)  # any starting order is valid
    a, b = tr.copy(), tr.copy()
    for tick in range(300):
        red = rng.random(5) < 0.5
        ra = traffic_step(net, a, red, 0.1, tick)
        rb = traffic_step_numpy(net, b, red, 0.1, tick)
        _assert_same(a, b, ra, rb, tick)
    assert np.any(a.lane == -1) and np.any(a.lane >= 0)  # some left through the dead end


def test_compiled_step_equals_numpy_step_with_overlapping_boxes() -> None:
    """Wreck-like clusters: vehicles at rest whose boxes overlap (short ones inside long ones, across
    junctions too) among moving traffic; the nearest-rear leader rule agrees bit for bit."""
    rng = np.random.default_rng(11)
    length = [300.0, 300.0, 150.0, 100.0]
    net = LaneNetwork.build(
        length,
        20.0,
        [[2], [2], [0, 1, 3], []],
        left=[1, -1, -1, -1],
        right=[-1, 0, -1, -1],
        stop_line_m=[280.0, np.nan, 100.0, np.nan],
    )
    n = 160
    lane = rng.integers(0, 4, n)
    s = rng.uniform(0.0, 1.0, n) * np.asarray(length)[lane]
    lengths = rng.choice([0.5, 1.8, 5.0, 13.0], n)
    held = rng.random(n) < 0.3
    v = np.where(held, 0.0, rng.uniform(0.0, 20.0, n))
    tr = Traffic.create(lane, s, v, 1, length_m=lengths, politeness=rng.uniform(-0.2, 0.5, n))
    a, b = tr.copy(), tr.copy()
    keep_lane, keep_s = tr.lane[held].copy(), tr.s_m[held].copy()
    changes = 0
    for tick in range(200):
        red = rng.random(4) < 0.5
        for x in (a, b):
            x.lane[held], x.s_m[held], x.v_mps[held] = keep_lane, keep_s, 0.0
        ra = traffic_step(net, a, red, 0.1, tick)
        rb = traffic_step_numpy(net, b, red, 0.1, tick)
        _assert_same(a, b, ra, rb, tick)
        changes += int(np.count_nonzero(ra.lane_change))
    assert changes > 20


def test_compiled_step_equals_numpy_step_with_crowded_lanes_and_any_politeness() -> None:
    # MOBIL's early exits (gaps to the new leader or follower not positive, the incentive bounds, which
    # hold only for p >= 0) must change no decision: dense parallel lanes, negative and large
    # politeness, thresholds down to below zero (many changes), every class
    rng = np.random.default_rng(23)
    net = LaneNetwork.build(
        [400.0, 400.0, 400.0],
        [30.0, 20.0, 30.0],
        [[0], [1], [2]],
        left=[1, 2, -1],
        right=[-1, 0, 1],
        stop_line_m=[380.0, 380.0, np.nan],
    )
    n = 120
    tr = Traffic.create(
        rng.integers(0, 3, n),
        rng.uniform(0.0, 400.0, n),
        rng.uniform(0.0, 25.0, n),
        rng.choice([1, 2, 3, 4], n),
        politeness=rng.uniform(-0.5, 1.0, n),
        a_threshold_mps2=rng.uniform(-0.2, 0.6, n),
        b_safe_mps2=rng.uniform(1.0, 9.0, n),
    )
    tr.order = rng.permutation(n).astype(np.int64)
    a, b = tr.copy(), tr.copy()
    changes = 0
    for tick in range(200):
        red = np.array([tick % 100 < 50] * 2 + [False])
        ra = traffic_step(net, a, red, 0.1, tick)
        rb = traffic_step_numpy(net, b, red, 0.1, tick)
        _assert_same(a, b, ra, rb, tick)
        changes += int(np.count_nonzero(ra.lane_change))
    assert changes > 10


def test_kept_lane_counts_stay_exact_through_lane_changes_and_junctions() -> None:
    # the compiled step keeps each lane's vehicle count from tick to tick (its sort then skips counting)
    # and updates it itself as MOBIL changes lanes and vehicles cross junctions or leave; a wrong count
    # would only make the next sort count again, so the results cannot show it: look at the counts
    from v2x.core._traffic_kernels import WL_COUNT
    from v2x.core.traffic import _WORK

    rng = np.random.default_rng(31)
    length = [300.0, 300.0, 300.0, 150.0]
    net = LaneNetwork.build(
        length,
        [30.0, 20.0, 30.0, 15.0],
        [[0, 3], [1], [2], []],
        left=[1, 2, -1, -1],
        right=[-1, 0, 1, -1],
        stop_line_m=[290.0, 290.0, np.nan, np.nan],
    )
    n = 90
    tr = Traffic.create(
        rng.integers(0, 4, n),
        rng.uniform(0.0, 150.0, n),
        rng.uniform(0.0, 25.0, n),
        rng.choice([1, 2, 3, 4], n),
        politeness=rng.uniform(0.0, 0.5, n),
        a_threshold_mps2=rng.uniform(-3.0, 0.3, n),  # many change whenever it is safe
    )
    a, b = tr.copy(), tr.copy()
    change_and_cross = 0
    for tick in range(300):
        red = np.array([tick % 80 < 40] * 2 + [False, False])
        s0 = a.s_m.copy()
        ra = traffic_step(net, a, red, 0.1, tick)
        _assert_same(a, b, ra, traffic_step_numpy(net, b, red, 0.1, tick), tick)
        change_and_cross += int(np.count_nonzero((ra.lane_change != 0) & (a.s_m < s0)))
        count = _WORK[a].wl[WL_COUNT]
        expected = np.bincount(np.where(a.lane >= 0, a.lane, net.n_lanes), minlength=net.n_lanes + 1)
        assert np.array_equal(count[: net.n_lanes + 1], expected), tick
        assert count[net.n_lanes + 1] == n, tick
    assert change_and_cross > 0, change_and_cross  # some changed lanes and crossed a junction in one tick
    assert np.any(a.lane == -1)  # and some left the network


def test_kept_front_most_next_lanes_are_the_route_choice() -> None:
    # the leader pass keeps each lane's front-most vehicle and its next lane from tick to tick (hashed
    # again only when another vehicle is in front); every kept entry must be that vehicle's route choice
    from v2x.bench.traffic import grid
    from v2x.core._traffic_kernels import WL_FRONT, next_lane
    from v2x.core.traffic import _WORK

    wl = grid(600, np.random.default_rng(3))  # two successors per lane: the hash decides
    net, a = wl.net, wl.traffic
    b = a.copy()
    fronts = set()
    for tick in range(120):
        ra = traffic_step(net, a, wl.red(tick), 0.1, tick)
        _assert_same(a, b, ra, traffic_step_numpy(net, b, wl.red(tick), 0.1, tick), tick)
        front = _WORK[a].wl[WL_FRONT][: net.n_lanes]
        for li in np.flatnonzero(front >= 0):
            i, nl = int(front[li] >> 32), int(front[li] & 0xFFFFFFFF) - 1
            with np.errstate(over="ignore"):  # the hash's unsigned arithmetic wraps, interpreted
                assert nl == next_lane(i, int(li), net.succ_begin, net.succ_lane), (tick, li)
            fronts.add((i, int(li)))
    assert len(fronts) > 2 * net.n_lanes  # the front-most vehicles changed as they crossed junctions


def test_kept_next_lanes_follow_the_network_and_moved_vehicles() -> None:
    # the compiled step keeps each vehicle's next lane from tick to tick: it must start again on another
    # network of the same size, and see vehicles put on another lane between ticks
    rng = np.random.default_rng(5)
    length = [300.0, 300.0, 200.0, 200.0]
    nets = [
        LaneNetwork.build(length, 20.0, succ, stop_line_m=[300.0, 290.0, 200.0, 190.0])
        for succ in ([[2, 3], [3, 2], [0, 1], [1, 0]], [[3], [2], [1, 0], [0]])
    ]
    n = 60
    tr = Traffic.create(rng.integers(0, 4, n), rng.uniform(0.0, 190.0, n), rng.uniform(0.0, 20.0, n))
    a, b = tr.copy(), tr.copy()
    for tick in range(120):
        net = nets[(tick // 7) % 2]
        if tick % 11 == 10:  # some vehicles put elsewhere, as a caller may
            moved = rng.choice(n, 5, replace=False)
            for x in (a, b):
                x.lane[moved] = (x.lane[moved] + 1) % 4
                x.s_m[moved] = np.minimum(x.s_m[moved], 150.0)
        red = rng.random(4) < 0.5
        _assert_same(a, b, traffic_step(net, a, red, 0.1, tick), traffic_step_numpy(net, b, red, 0.1, tick), tick)


def test_compiled_step_equals_numpy_step_on_the_bench_grid() -> None:
    from v2x.bench.traffic import grid

    wl = grid(400, np.random.default_rng(3))
    a, b = wl.traffic.copy(), wl.traffic.copy()
    changes = 0
    for tick in range(400):
        lane0 = a.lane.copy()
        ra = traffic_step(wl.net, a, wl.red(tick), 0.1, tick)
        rb = traffic_step_numpy(wl.net, b, wl.red(tick), 0.1, tick)
        _assert_same(a, b, ra, rb, tick)
        changes += int(np.count_nonzero(ra.lane_change))
        same_lane = (ra.leader >= 0) & (lane0[np.maximum(ra.leader, 0)] == lane0)
        assert np.all(ra.gap_m[same_lane] > 0.0), tick  # nobody overlaps the vehicle ahead on its lane
    assert changes > 0
    assert np.all(a.lane >= 0)  # a torus: nobody leaves


def test_compiled_step_equals_numpy_step_with_ties_in_s() -> None:
    # equal positions (sorted by index), lanes split over several runs of the starting order
    rng = np.random.default_rng(11)
    net = LaneNetwork.build([500.0, 500.0, 500.0], 30.0, [[0], [1], [2]], left=[1, 2, -1], right=[-1, 0, 1])
    n = 90
    lane = np.repeat([0, 1, 2], 30)
    s = np.tile(np.repeat(np.arange(10) * 45.0 + 40.0, 3), 3)  # three vehicles at each position
    tr = Traffic.create(lane, s, rng.uniform(5.0, 15.0, n), ActorKind.CAR)
    tr.order = rng.permutation(n).astype(np.int64)
    a, b = tr.copy(), tr.copy()
    for tick in range(20):
        _assert_same(a, b, traffic_step(net, a, None, 0.1, tick), traffic_step_numpy(net, b, None, 0.1, tick), tick)


def _assert_unchanged(tr: Traffic, before: Traffic) -> None:
    for f in fields(tr):
        assert np.array_equal(getattr(tr, f.name), getattr(before, f.name)), f.name


def test_vehicle_on_a_missing_lane_is_refused_and_nothing_changes() -> None:
    net = LaneNetwork.build([100.0, 100.0], 30.0, [[1], [0]])
    for step in (traffic_step, traffic_step_numpy):
        tr = Traffic.create([0, 1, 0], [10.0, 20.0, 30.0], [5.0, 5.0, 5.0])
        tr.lane[1] = 2
        before = tr.copy()
        with pytest.raises(ValueError, match="lane the network does not have"):
            step(net, tr)
        _assert_unchanged(tr, before)


def test_vehicle_put_on_a_missing_lane_after_some_ticks_is_refused_and_nothing_changes() -> None:
    # the compiled step keeps lane counts from tick to tick; a lane the network does not have must still
    # be refused with the state (order included) left as it was, and the next good tick must agree
    net = LaneNetwork.build([100.0, 100.0], 30.0, [[1], [0]])
    a = Traffic.create([0, 1, 0, 1], [10.0, 20.0, 30.0, 40.0], [5.0, 6.0, 7.0, 8.0])
    b = a.copy()
    for tick in range(30):
        _assert_same(a, b, traffic_step(net, a, None, 0.1, tick), traffic_step_numpy(net, b, None, 0.1, tick), tick)
    a.lane[2] = 2
    before = a.copy()
    with pytest.raises(ValueError, match="lane the network does not have"):
        traffic_step(net, a)
    _assert_unchanged(a, before)
    a.lane[2] = b.lane[2]
    for tick in range(30, 60):
        _assert_same(a, b, traffic_step(net, a, None, 0.1, tick), traffic_step_numpy(net, b, None, 0.1, tick), tick)


def test_network_validation() -> None:
    with pytest.raises(ValueError, match="same length"):
        LaneNetwork.build([100.0, 90.0], 30.0, [[], []], left=[1, -1], right=[-1, 0])
    with pytest.raises(ValueError, match="successor"):
        LaneNetwork.build([100.0], 30.0, [[3]])
    with pytest.raises(ValueError, match="stop lines"):
        LaneNetwork.build([100.0], 30.0, [[]], stop_line_m=[120.0])
    with pytest.raises(ValueError, match="vehicles only"):
        Traffic.create([0], [0.0], [0.0], ActorKind.PEDESTRIAN)
    with pytest.raises(ValueError, match="red wants"):
        traffic_step(LaneNetwork.build([100.0], 30.0, [[]]), Traffic.create([0], [0.0], [0.0]), [True, False])
