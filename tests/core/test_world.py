from __future__ import annotations

import numpy as np
import pytest

from v2x.core import ActorKind, WorldState


def test_add_remove_reuses_lowest_free_slot() -> None:
    w = WorldState(capacity=2)
    assert [w.add(f"v{k}", ActorKind.CAR, 5.0, 2.0) for k in range(5)] == [0, 1, 2, 3, 4]
    assert w.capacity == 8  # doubled twice
    w.remove("v3")
    w.remove("v1")
    assert w.n_active == 3
    assert w.add("x", ActorKind.TRUCK, 13.0, 2.6) == 1
    assert w.add("y", ActorKind.BUS, 12.0, 2.5) == 3
    assert w.add("z", ActorKind.CAR, 5.0, 2.0) == 5
    assert w.slot_of("x") == 1 and w.id_of(3) == "y"
    assert w.kind[1] == ActorKind.TRUCK and w.length_m[1] == 13.0
    assert list(w.active_slots()) == [0, 1, 2, 3, 4, 5]


def test_growth_keeps_data() -> None:
    w = WorldState(capacity=1)
    s0 = w.add("a", ActorKind.CAR, 5.0, 2.0)
    w.set_state(np.array([s0]), 1.0, 2.0, 3.0, 4.0, 0.5, 0.25, 0.1, pos_sigma_m=1.5, lane=2)
    w.add("b", ActorKind.CAR, 5.0, 2.0)
    w.add("c", ActorKind.CAR, 5.0, 2.0)
    assert w.capacity == 4
    assert (w.x[0], w.y[0], w.vx[0], w.vy[0], w.ax[0], w.ay[0]) == (1.0, 2.0, 3.0, 4.0, 0.5, 0.25)
    assert w.heading_rad[0] == 0.1 and w.pos_sigma_m[0] == 1.5 and w.lane[0] == 2
    assert w.lane[1] == -1 and not w.active[3]


def test_errors() -> None:
    w = WorldState()
    w.add("a", ActorKind.CAR, 5.0, 2.0)
    with pytest.raises(ValueError, match="already present"):
        w.add("a", ActorKind.CAR, 5.0, 2.0)
    with pytest.raises(KeyError):
        w.slot_of("nope")
    with pytest.raises(KeyError):
        w.remove("nope")
    with pytest.raises(KeyError):
        w.id_of(5)
    with pytest.raises(ValueError, match="inactive"):
        w.set_state(np.array([1]), 0, 0, 0, 0, 0, 0, 0)


def test_readd_resets_state() -> None:
    w = WorldState()
    s = w.add("a", ActorKind.CAR, 5.0, 2.0)
    w.set_state(np.array([s]), 9.0, 9.0, 1.0, 1.0, 1.0, 1.0, 1.0, lane=3)
    w.remove("a")
    s2 = w.add("b", ActorKind.PEDESTRIAN, 0.5, 0.5)
    assert s2 == s
    assert w.x[s] == 0.0 and w.vx[s] == 0.0 and w.lane[s] == -1 and w.kind[s] == ActorKind.PEDESTRIAN


def test_add_many_gives_the_slots_of_adding_one_by_one() -> None:
    one, many = WorldState(capacity=2), WorldState(capacity=2)
    ids = ["a", "b", "c", "d", "e"]
    slots_one = [one.add(a, ActorKind.CAR, 4.0 + k, 1.8) for k, a in enumerate(ids)]
    slots_many = many.add_many(ids, ActorKind.CAR, [4.0, 5.0, 6.0, 7.0, 8.0], 1.8)
    assert slots_many.tolist() == slots_one
    for name in ("length_m", "width_m", "kind", "lane", "active", "x"):
        assert np.array_equal(getattr(one, name)[:5], getattr(many, name)[:5]), name
    assert many.slot_of("d") == 3 and many.n_active == 5
    # with freed slots below the high-water mark it falls back to add(): the lowest free slot first
    many.remove("b")
    many.remove("a")
    assert many.add_many(["x", "y", "z"], ActorKind.TRUCK, 13.0, 2.6).tolist() == [0, 1, 5]
    with pytest.raises(ValueError, match="already present"):
        many.add_many(["q", "c"], ActorKind.CAR, 4.0, 1.8)
    with pytest.raises(ValueError, match="already present"):
        many.add_many(["q", "q"], ActorKind.CAR, 4.0, 1.8)
    with pytest.raises(ValueError, match="positive"):
        many.add_many(["q"], ActorKind.CAR, 0.0, 1.8)
    assert many.n_active == 6
