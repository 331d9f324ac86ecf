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
