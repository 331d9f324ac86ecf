from __future__ import annotations

import numpy as np
import pytest

from v2x.core import ActorKind, SpatialGrid, WorldState


def _random_world(n: int, seed: int, extent: float = 500.0, remove: int = 0) -> WorldState:
    rng = np.random.default_rng(seed)
    w = WorldState(capacity=4)
    for k in range(n):
        w.add(f"v{k}", ActorKind.CAR, 5.0, 2.0)
    for k in rng.choice(n, size=remove, replace=False):
        w.remove(f"v{k}")
    s = w.active_slots()
    m = len(s)
    w.set_state(s, rng.uniform(-extent, extent, m), rng.uniform(-extent / 3, extent, m), 0, 0, 0, 0, 0)
    return w


def _brute_pairs(w: WorldState, r: float) -> set[tuple[int, int]]:
    s = w.active_slots()
    out = set()
    for a in range(len(s)):
        for b in range(a + 1, len(s)):
            i, j = int(s[a]), int(s[b])
            if np.hypot(w.x[i] - w.x[j], w.y[i] - w.y[j]) <= r:
                out.add((min(i, j), max(i, j)))
    return out


@pytest.mark.parametrize(("cell", "radius"), [(50.0, 50.0), (20.0, 75.0), (200.0, 60.0), (33.3, 150.0)])
def test_pairs_within_matches_brute_force(cell: float, radius: float) -> None:
    w = _random_world(300, seed=int(cell), remove=40)
    g = SpatialGrid.build(w, cell)
    i, j = g.pairs_within(radius)
    assert np.all(i < j)
    got = set(zip(i.tolist(), j.tolist(), strict=True))
    assert len(got) == len(i)  # no duplicates
    assert got == _brute_pairs(w, radius)
    assert not w.active[[k for k in range(w.high_water) if not w.active[k]]].any()
    assert set(i.tolist()) | set(j.tolist()) <= set(w.active_slots().tolist())


def test_neighbours_of_is_directed_and_sorted() -> None:
    w = _random_world(200, seed=3, remove=20)
    g = SpatialGrid.build(w, 40.0)
    q = w.active_slots()[[5, 0, 17]]
    src, dst = g.neighbours_of(q, 90.0)
    assert np.all(src != dst)
    expected = []
    for s in q:
        for d in w.active_slots():
            if d != s and np.hypot(w.x[s] - w.x[d], w.y[s] - w.y[d]) <= 90.0:
                expected.append((int(s), int(d)))
    assert list(zip(src.tolist(), dst.tolist(), strict=True)) == expected


def test_boundary_distance_is_inclusive_and_empty_world() -> None:
    w = WorldState()
    a = w.add("a", ActorKind.CAR, 5.0, 2.0)
    b = w.add("b", ActorKind.CAR, 5.0, 2.0)
    w.set_state(np.array([a, b]), [0.0, 30.0], [0.0, 40.0], 0, 0, 0, 0, 0)
    g = SpatialGrid.build(w, 7.0)
    assert g.pairs_within(50.0)[0].tolist() == [0]
    assert len(g.pairs_within(49.999)[0]) == 0
    empty = SpatialGrid.build(WorldState(), 10.0)
    assert len(empty.pairs_within(100.0)[0]) == 0
    with pytest.raises(ValueError):
        SpatialGrid.build(w, 0.0)


def test_sparse_grid_uses_binary_search_and_matches_brute_force() -> None:
    # Two clusters 1000 km apart with 1 m cells: far too many cells for a dense table.
    w = _random_world(200, seed=11, extent=100.0, remove=10)
    s = w.active_slots()
    w.x[s[::2]] += 1e6
    g = SpatialGrid.build(w, 1.0)
    assert not g.kernel_args()[5]  # sparse
    i, j = g.pairs_within(30.0)
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == _brute_pairs(w, 30.0)
    q = s[[0, 1, 5]]
    src, dst = g.neighbours_of(q, 30.0)
    expected = [(int(a), int(b)) for a in q for b in s if b != a and np.hypot(w.x[a] - w.x[b], w.y[a] - w.y[b]) <= 30.0]
    assert list(zip(src.tolist(), dst.tolist(), strict=True)) == expected
