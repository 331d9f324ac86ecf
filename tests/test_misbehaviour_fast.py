"""The misbehaviour detector's faster paths (v2x.apps.misbehaviour) against the code they replaced: the same
values bit for bit and the same verdicts, on random inputs (NaN, infinities and boxes that touch among them)."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from itertools import pairwise

import numpy as np

from v2x.apps import misbehaviour as mb
from v2x.apps.host import Participant
from v2x.apps.thresholds import resolve
from v2x.wire.bsm import VEHICLE_EVENT_BIT, RemoteState


def _distance_bounds_before(
    v0: float, v1: float, dt: float, accel: float, decel: float, vmax: float
) -> tuple[float, float]:
    """``distance_bounds`` as it was (a closure per bound, called at both ends of every interval)."""
    if dt <= 0:
        return 0.0, 0.0
    accel, decel = max(accel, 1e-9), max(decel, 1e-9)
    ts = {0.0, dt}
    for t in (
        (v1 - v0 + decel * dt) / (accel + decel),
        (vmax - v0) / accel,
        dt - (vmax - v1) / decel,
        (v0 - v1 + accel * dt) / (accel + decel),
        v0 / decel,
        dt - v1 / accel,
    ):
        if 0.0 < t < dt:
            ts.add(t)
    grid = sorted(ts)

    def hi(t: float) -> float:
        return max(0.0, min(v0 + accel * t, v1 + decel * (dt - t), vmax))

    def lo(t: float) -> float:
        return min(vmax, max(v0 - decel * t, v1 - accel * (dt - t), 0.0))

    most = sum((b - a) * (hi(a) + hi(b)) / 2 for a, b in pairwise(grid))
    least = sum((b - a) * (lo(a) + lo(b)) / 2 for a, b in pairwise(grid))
    return least, most


def _overlaps_before(
    det: mb.Detector, remotes: list[RemoteState], t_s: float, own: Participant | None
) -> list[mb.Verdict]:
    """``Detector.overlaps`` as it was: each sender's box by ``_corners`` of ``Participant.from_remote``, the
    pairs by the full matrix."""
    k, max_age = det.th["mbd_sigmas"], det.th["mbd_max_age_s"]
    boxes = []
    for r in remotes:
        sigma = mb._sigma(r, det.th)
        if r.temp_id in det.judged or sigma is None or t_s - r.t_s > max_age:
            continue
        corners = mb._corners(Participant.from_remote("", r, t_s), k * sigma)
        if corners is not None:
            boxes.append((r, corners))
    out = []
    mine = mb._corners(own, k * own.sigma_m if math.isfinite(own.sigma_m) else 0.0) if own is not None else None
    if mine is not None and own is not None:
        near_me = mb._near([c for _, c in boxes], mine)
        for (r, corners), near in zip(boxes, near_me, strict=True):
            if near and not mb._levels_apart(r.z_m, own.z_m) and mb.boxes_overlap(corners, mine):
                v = det.judge(r.temp_id, "overlap", t_s)
                if v is not None:
                    out.append(v)
    boxes = [(r, c) for r, c in boxes if r.temp_id not in det.judged]
    start = {r.temp_id: det.since.get(r.temp_id, r.t_s) for r, _ in boxes}  # (the newcomer rule: session 26)
    boxes.sort(key=lambda b: (start[b[0].temp_id], b[0].temp_id))
    newcomer = det.th["mbd_newcomer_s"]
    candidates = mb._near_pairs_dense(*mb._circles([c for _, c in boxes])) if len(boxes) >= 2 else [[] for _ in boxes]
    for n, (r, corners) in enumerate(boxes):
        if not t_s - start[r.temp_id] <= newcomer:
            continue
        for other, theirs in (boxes[m] for m in candidates[n]):
            if (
                start[r.temp_id] - start[other.temp_id] >= newcomer
                and other.temp_id not in det.judged
                and not mb._levels_apart(r.z_m, other.z_m)
                and mb.boxes_overlap(corners, theirs)
            ):
                v = det.judge(r.temp_id, "overlap", t_s)
                if v is not None:
                    out.append(v)
                break
    return out


def test_distance_bounds_gives_the_same_floats_as_before() -> None:
    rng = random.Random(1)
    odd = [0.0, 1e-9, 0.1, 3.0, 9.0, 55.55, -1.0, math.nan, math.inf, -math.inf]
    for _ in range(20_000):
        v0, v1 = (rng.choice(odd) if rng.random() < 0.2 else rng.uniform(-5, 60) for _ in range(2))
        dt = rng.choice([0.0, -0.1, 0.1, 3.1, math.nan, rng.uniform(0, 4)])
        accel, decel = rng.choice([0.0, math.nan, rng.uniform(0, 10)]), rng.uniform(0, 12)
        vmax = rng.choice([55.55, 40.0, math.inf, rng.uniform(0, 60)])
        args = (v0, v1, dt, accel, decel, vmax)
        assert repr(mb.distance_bounds(*args)) == repr(_distance_bounds_before(*args)), args


def _remote(rng: random.Random, x: float, y: float) -> RemoteState:
    return RemoteState(
        temp_id=rng.randbytes(8),
        t_s=10.0 - rng.choice([0.0, 0.05, 0.1, 0.3, 0.31, -0.1]),
        x=x,
        y=y,
        speed_mps=rng.choice([0.0, rng.uniform(0, 20)]),
        heading_rad=rng.uniform(-3.2, 3.2),
        accel_mps2=rng.choice([0.0, -9.0, rng.uniform(-9, 3)]),
        length_m=rng.choice([4.5, 0.2, 12.0]),
        width_m=rng.choice([1.8, 0.1, 2.5]),
        sigma_major_m=rng.choice([None, 0.02, 0.3, 5.0, math.inf]),
        kind_class=0,
        events=0,
        z_m=rng.choice([None, 0.0, 6.0]),
    )


def test_the_boxes_are_the_corners_of_the_extrapolated_participant_bit_for_bit() -> None:
    rng = random.Random(2)
    chosen = [
        (_remote(rng, rng.uniform(-1e4, 1e4), rng.uniform(-50, 50)), rng.choice([0.0, 0.06, 1.0, 3.0]))
        for _ in range(500)
    ]
    corners, kept = mb._remote_corners(chosen, 10.0)
    for n, (r, shrink) in enumerate(chosen):
        before = mb._corners(Participant.from_remote("", r, 10.0), shrink)
        assert (before is not None) == (n in kept)
        if before is not None:
            assert corners[n].tolist() == [list(c) for c in before]


def test_overlaps_judges_as_before() -> None:
    rng = random.Random(3)
    th = dict(resolve({}))
    judged = 0
    for trial in range(600):
        dense = rng.random() < 0.5  # a crowd on three lanes, or traffic 25 m apart on eight
        remotes = [
            _remote(rng, rng.uniform(0, 60), rng.choice([0.0, 3.5, 7.0]) + rng.uniform(-1, 1))
            if dense
            else _remote(rng, 25.0 * k + rng.uniform(-4, 4), -3.5 * (k % 8 + 0.5))
            for k in range(rng.randint(0, 60))
        ]
        if len(remotes) > 3 and rng.random() < 0.3:
            remotes[1] = _remote(rng, remotes[0].x, remotes[0].y)  # the same place
        new, old = mb.Detector(th), mb.Detector(th)
        for r in remotes:  # when each sender's track began (by the host's clock; some never observed)
            if rng.random() < 0.8:
                new.since[r.temp_id] = old.since[r.temp_id] = rng.choice([0.0, 9.0, 9.5, 9.6, 10.0])
        for r in remotes[:3]:
            if rng.random() < 0.3:
                new.judge(r.temp_id, "speed", 1.0)
                old.judge(r.temp_id, "speed", 1.0)
        own = None
        if rng.random() < 0.8:
            own = Participant("own", 30.0, 3.5, 0.0, 0.0, 0.0, 0.3, 4.5, 1.8, rng.choice([0.0, 0.5, math.inf]), 0.0)
        before = _overlaps_before(old, remotes, 10.0, own)
        assert new.overlaps(remotes, 10.0, own) == [], trial  # judged at their next BSM (a crash may explain it)
        assert list(new.overlapping) == [v.suspect for v in before], trial
        later = [replace(r, t_s=r.t_s + 0.3) for r in remotes]
        assert [v.suspect for v in new.overlaps(later, 10.3, own)][: len(before)] == [v.suspect for v in before]
        assert set(old.judged) <= set(new.judged), trial
        judged += len(old.judged)
    assert judged > 100  # the cases judge


def test_near_pairs_finds_the_pairs_of_the_full_matrix() -> None:
    rng = random.Random(4)
    for _ in range(1000):
        spread = rng.choice([5.0, 50.0, 1e4, 1e7])
        boxes = []
        for _ in range(rng.randint(2, 60)):
            cx, cy = rng.uniform(-spread, spread), rng.uniform(-spread / 10, spread / 10)
            h, half_l, half_w = rng.uniform(-4, 4), rng.uniform(0.05, 6), rng.uniform(0.05, 1.5)
            c, s = math.cos(h), math.sin(h)
            corners = ((half_l, half_w), (-half_l, half_w), (-half_l, -half_w), (half_l, -half_w))
            boxes.append([(cx + c * a - s * b, cy + s * a + c * b) for a, b in corners])
        if len(boxes) > 2 and rng.random() < 0.3:
            boxes[1] = list(boxes[0])
        if len(boxes) > 3 and rng.random() < 0.1:
            boxes[2] = [(math.nan, 0.0)] * 4
        assert mb._near_pairs(boxes) == mb._near_pairs_dense(*mb._circles(boxes))
        assert mb._near_pairs(np.array(boxes)) == mb._near_pairs(boxes)


def _pair(rng: random.Random) -> tuple[RemoteState, RemoteState]:
    """Two BSMs of one sender: mostly plausible (a car at 0-40 m/s, 0.1 s on), some odd."""
    odd = [0.0, -0.0, 1e-9, math.nan, math.inf, -math.inf, 1e308]
    v0 = rng.choice(odd) if rng.random() < 0.02 else rng.choice([0.0, 13.88, rng.uniform(0, 70)])
    v1 = v0 + rng.choice([0.0, rng.gauss(0, 0.3), rng.uniform(-3, 3)]) if rng.random() < 0.9 else rng.uniform(0, 70)
    dt = rng.choice([0.1, 0.09999999999999998, 0.2, 0.0, -0.1, 3.1, 3.2, rng.uniform(0, 4)])
    move = rng.choice([(v0 + v1) / 2 * dt, rng.uniform(0, 10), rng.uniform(0, 300)])
    if rng.random() < 0.01:
        move = rng.choice(odd)
    t0 = 10.0 + rng.random()
    sigmas = [0.05, 0.3, 0.7, 5.0, None, math.inf, math.nan]
    old = RemoteState(
        temp_id=b"s",
        t_s=t0,
        x=rng.uniform(-1e3, 1e3),
        y=rng.uniform(-50, 50),
        speed_mps=v0,
        heading_rad=0.0,
        accel_mps2=0.0,
        length_m=4.5,
        width_m=1.8,
        sigma_major_m=rng.choice(sigmas),
        kind_class=0,
        events=0,
    )
    heading = rng.uniform(-3.2, 3.2)
    new = RemoteState(
        temp_id=b"s",
        t_s=t0 + dt,
        x=old.x + move * math.cos(heading),
        y=old.y + move * math.sin(heading),
        speed_mps=v1,
        heading_rad=heading,
        accel_mps2=rng.choice([0.0, rng.uniform(-9, 3), rng.uniform(-20, 10), math.nan]),
        length_m=4.5,
        width_m=1.8,
        sigma_major_m=rng.choice(sigmas) if rng.random() < 0.3 else old.sigma_major_m,
        kind_class=0,
        events=0,
    )
    return old, new


def test_consistency_many_answers_as_consistency() -> None:
    rng = random.Random(5)
    base = dict(resolve({}))
    for k in range(300):
        th = dict(base)
        if k % 10 == 9:  # other thresholds, some that are not finite (checked one by one)
            th["mbd_max_speed_mps"] = rng.choice([40.0, 70.0, math.inf])
            th["mbd_max_decel_mps2"] = rng.choice([0.0, 4.5, 12.0])
            th["mbd_mgt_rng_down_m"] = rng.choice([0.0, -3.0, 6.2])
        pairs = [_pair(rng) for _ in range(rng.choice([1, 8, 50, 200]))]
        expected = [mb.consistency(old, new, th) for old, new in pairs]
        assert mb.consistency_many(pairs, th) == expected


def test_consistency_many_answers_as_consistency_with_crashes_among_the_pairs() -> None:
    rng = random.Random(6)
    th = dict(resolve({}))
    wreck = (1 << VEHICLE_EVENT_BIT["disabled"]) | (1 << VEHICLE_EVENT_BIT["hazard_lights"])
    for _ in range(100):
        pairs = []
        for _ in range(rng.choice([8, 50])):
            old, new = _pair(rng)
            if rng.random() < 0.3:  # stops dead and says it is disabled (sometimes it said so before)
                new = replace(new, speed_mps=rng.choice([0.0, 0.05, 2.0]), events=wreck)
                old = replace(old, events=rng.choice([0, 0, wreck]))
            pairs.append((old, new))
        assert mb.consistency_many(pairs, th) == [mb.consistency(old, new, th) for old, new in pairs]


def test_distance_bounds_many_gives_the_same_floats() -> None:
    rng = random.Random(6)
    for _ in range(50):
        n = 400
        v0 = np.array([rng.choice([0.0, 13.88, 55.55, rng.uniform(0, 70), 1e-9]) for _ in range(n)])
        v1 = np.array([v + rng.choice([0.0, rng.uniform(-5, 5), rng.uniform(0, 70)]) for v in v0.tolist()])
        v1 = np.abs(v1)
        dt = np.array([rng.choice([0.1, 1e-9, 3.1, rng.uniform(0, 4) + 1e-12]) for _ in range(n)])
        accel, decel = rng.choice([0.0, 3.0, rng.uniform(0, 10)]), rng.choice([0.0, 9.0, rng.uniform(0, 12)])
        vmax = rng.choice([55.55, 40.0, rng.uniform(1, 60)])
        least, most, exact = mb._distance_bounds_many(v0, v1, dt, accel, decel, vmax)
        assert exact.all()
        for k in range(n):
            want = mb.distance_bounds(float(v0[k]), float(v1[k]), float(dt[k]), accel, decel, vmax)
            assert repr((float(least[k]), float(most[k]))) == repr(want)


def test_prepared_checks_give_the_verdicts_of_checking_each() -> None:
    """``Detector.prepare`` then ``observe`` one by one judges as ``observe`` alone: senders heard twice in a tick
    (the same BSM and a newer one), out of order, liars that jump, and BSMs observed that were not prepared."""
    rng = random.Random(7)
    th = dict(resolve({}))
    ids = [rng.randbytes(8) for _ in range(40)]
    pos = {i: rng.uniform(0, 2000) for i in ids}
    plain, prepared = mb.Detector(th), mb.Detector(th)
    for tick in range(1, 40):
        t = tick * 0.1
        batch = []
        for i in ids:
            if rng.random() < 0.1:
                continue
            pos[i] += 1.4 + (rng.choice([0.0, 0.0, 0.0, 30.0]) if rng.random() < 0.05 else 0.0)
            r = RemoteState(
                temp_id=i, t_s=t - rng.choice([0.0, 0.0, 0.02]), x=pos[i], y=0.0,
                speed_mps=rng.choice([14.0, 14.0, 14.0, 80.0]) if rng.random() < 0.02 else 14.0,
                heading_rad=0.0, accel_mps2=0.0, length_m=4.5, width_m=1.8,
                sigma_major_m=rng.choice([0.05, 0.05, None]), kind_class=0, events=0,
            )  # fmt: skip
            batch.append(r)
            if rng.random() < 0.05:
                batch.append(r)  # heard twice (PC5 and a relay)
        rng.shuffle(batch)
        prepared.prepare(batch[: int(len(batch) * 0.9)])  # the last few are observed unprepared
        a = [plain.observe(r, t) for r in batch]
        b = [prepared.observe(r, t) for r in batch]
        assert a == b
    assert plain.judged == prepared.judged and plain.judged
