"""The compiled conflict detection against the previous vectorised numpy implementation (the oracle,
tests/core/_numpy_conflict.py): same pairs, same values, on traffic and on random scenes."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest

from tests.core._numpy_conflict import detect_conflicts_numpy
from v2x.bench import core as bench
from v2x.core import ActorKind, Conflicts, SpatialGrid, WorldState, detect_conflicts


def _assert_same(got: Conflicts, ref: Conflicts) -> None:
    assert len(got) == len(ref)
    for f in Conflicts.__dataclass_fields__:
        a, b = getattr(got, f), getattr(ref, f)
        assert a.dtype == b.dtype, f
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, equal_nan=True, err_msg=f)
        else:
            assert np.array_equal(a, b), f


def _random_scene(n: int, seed: int) -> WorldState:
    """Dense random scene: any heading, drift between velocity and box, braking to a stop, standing
    actors, trucks and pedestrians, some removed slots."""
    rng = np.random.default_rng(seed)
    w = WorldState(capacity=4)
    for k in range(n):
        w.add(f"a{k}", ActorKind.CAR, float(rng.uniform(0.5, 14)), float(rng.uniform(0.5, 2.6)))
    for k in rng.choice(n, n // 8, replace=False):
        w.remove(f"a{k}")
    s = w.active_slots()
    m = len(s)
    heading = rng.uniform(-np.pi, np.pi, m)
    drift = heading + rng.normal(0, 0.2, m)
    speed = rng.uniform(0, 25, m) * (rng.random(m) > 0.1)
    acc = rng.uniform(-7, 3, m)
    w.set_state(
        s, rng.uniform(0, 400, m), rng.uniform(0, 300, m), speed * np.cos(drift), speed * np.sin(drift),
        acc * np.cos(drift), acc * np.sin(drift), heading,
    )  # fmt: skip
    return w


@pytest.mark.parametrize("model", ["ca", "cv"])
@pytest.mark.parametrize("seed", [1, 2])
def test_random_scenes_match_the_oracle(model: Literal["cv", "ca"], seed: int) -> None:
    w = _random_scene(700, seed)
    got = detect_conflicts(w, horizon_s=5.0, model=model)
    ref = detect_conflicts_numpy(w, horizon_s=5.0, model=model, grid=SpatialGrid.build(w, 50.0))
    assert len(got) > 100
    _assert_same(got, ref)
    kinds = set(got.kind.tolist())
    assert kinds == {1, 2, 3, 4}  # every conflict type is exercised


@pytest.mark.parametrize("scenario", ["urban", "freeway"])
def test_traffic_matches_the_oracle(scenario: str) -> None:
    wl = (bench.urban if scenario == "urban" else bench.freeway)(1500, np.random.default_rng(3))
    for _ in range(3):
        wl.step(0.1)
    got = detect_conflicts(wl.world, horizon_s=5.0, model="ca")
    ref = detect_conflicts_numpy(wl.world, horizon_s=5.0, model="ca", grid=SpatialGrid.build(wl.world, 75.0))
    _assert_same(got, ref)


def test_given_pairs_match_the_oracle_and_the_swept_boxes_miss_nothing() -> None:
    w = _random_scene(300, seed=9)
    s = w.active_slots()
    rng = np.random.default_rng(0)
    pi = rng.choice(s, 3000)
    pj = rng.choice(s, 3000)
    _assert_same(
        detect_conflicts(w, model="ca", pairs=(pi, pj), max_pet_s=3.0),
        detect_conflicts_numpy(w, model="ca", pairs=(pi, pj), max_pet_s=3.0),
    )
    # all pairs (i < j) through the given-pairs path = the swept-box broad phase
    i, j = np.triu_indices(len(s), 1)
    _assert_same(detect_conflicts(w, model="ca", pairs=(s[i], s[j])), detect_conflicts(w, model="ca"))
