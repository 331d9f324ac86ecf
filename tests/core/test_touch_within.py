"""``detect_conflicts(touch_within_s=H)`` (the FCW broad phase) drops only pairs that cannot touch within H: every
conflict with a TTC at most H is reported as without it, the same row, compiled and interpreted."""

from __future__ import annotations

import numpy as np
import pytest

from v2x.core import ActorKind, Conflicts, WorldState, always_compiled, detect_conflicts


def _world(rng: np.random.Generator, n: int) -> tuple[WorldState, np.ndarray, np.ndarray]:
    w = WorldState(capacity=2 * n)
    for k in range(2 * n):
        w.add(f"v{k}", ActorKind.CAR, float(rng.uniform(2, 14)), float(rng.uniform(0.6, 2.6)))
    s = w.active_slots()
    pos = rng.uniform(-300, 300, (2 * n, 2))
    pos[1::2] = pos[0::2] + rng.uniform(-50, 50, (n, 2))
    heading = rng.uniform(-np.pi, np.pi, 2 * n)
    heading[1::2] = np.where(rng.random(n) < 0.6, heading[0::2], heading[1::2])  # many follow one another
    speed = rng.uniform(0, 35, 2 * n) * (rng.random(2 * n) > 0.15)
    acc = rng.uniform(-9, 3, 2 * n)
    drift = heading + rng.normal(0, 0.05, 2 * n)
    w.set_state(
        s, pos[:, 0], pos[:, 1], speed * np.cos(drift), speed * np.sin(drift), acc * np.cos(drift),
        acc * np.sin(drift), heading,
    )  # fmt: skip
    return w, s[0::2], s[1::2]


def _rows(c: Conflicts, within: float) -> list[str]:
    return [
        repr(row)
        for row in zip(c.i.tolist(), c.j.tolist(), c.kind.tolist(), c.ttc_s.tolist(), c.pet_s.tolist(), strict=True)
        if row[3] <= within
    ]


@pytest.mark.parametrize("compiled", [False, True])
def test_touch_within_reports_every_conflict_with_a_ttc_within_it(compiled: bool) -> None:
    rng = np.random.default_rng(11)
    w, pi, pj = _world(rng, 16 if not compiled else 2000)
    within = 3.0
    with always_compiled() if compiled else np.errstate():
        every = detect_conflicts(w, horizon_s=6.0, pairs=(pi, pj))
        some = detect_conflicts(w, horizon_s=6.0, pairs=(pi, pj), touch_within_s=within)
    assert _rows(some, within) == _rows(every, within)
    assert set(_rows(some, np.inf)) <= set(_rows(every, np.inf))
    if compiled:
        assert len(_rows(every, within)) > 20  # conflicts within it to keep
        assert len(some) < len(every)  # and pairs it drops


def test_touch_within_needs_pairs() -> None:
    with pytest.raises(ValueError, match="touch_within_s"):
        detect_conflicts(WorldState(capacity=4), touch_within_s=3.0)


@pytest.mark.parametrize("compiled", [False, True])
def test_pairs_of_one_actor_or_of_slots_out_of_range_or_inactive_are_left_out(compiled: bool) -> None:
    """The pairs given that are not two distinct active actors are left out (one compiled pass, ``pairs_kept``):
    the same conflicts as when only the others are given, with and without ``touch_within_s``."""
    rng = np.random.default_rng(12)
    n = 16 if not compiled else 800
    w, lead, follow = _world(rng, n)
    for k in rng.choice(2 * n, size=n // 4, replace=False).tolist():
        w.remove(f"v{k}")
    m = 20 * n
    pi = np.concatenate([rng.integers(-3, 2 * n + 8, m), lead, follow])  # (the pairs _world makes close: conflicts)
    pj = np.concatenate([rng.integers(-3, 2 * n + 8, m), follow, lead])
    pj[: m // 10] = pi[: m // 10]
    hi = w.high_water
    ok = (pi != pj) & (pi >= 0) & (pj >= 0) & (pi < hi) & (pj < hi)
    ok[ok] = w.active[pi[ok]] & w.active[pj[ok]]
    assert 0 < ok.sum() < len(pi)
    for within in (None, 3.0):
        with always_compiled() if compiled else np.errstate():
            given = detect_conflicts(w, horizon_s=6.0, pairs=(pi, pj), touch_within_s=within)
            valid = detect_conflicts(w, horizon_s=6.0, pairs=(pi[ok], pj[ok]), touch_within_s=within)
        assert _rows(given, np.inf) == _rows(valid, np.inf) and len(valid) > 0
