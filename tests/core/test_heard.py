"""The table of when each receiver last heard each sender (v2x/core/_heard.py): its compiled pair builders and
delivery stamping give exactly what the numpy expressions they replace gave (the fleet agent's FCW used them),
interpreted and compiled, whatever room the pair builders start with; the pairs that could touch are those
``detect_conflicts(touch_within_s=...)`` keeps."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest

from v2x.core import (
    ActorKind,
    WorldState,
    always_compiled,
    detect_conflicts,
    stamp_deliveries,
    touching_pairs_heard,
)
from v2x.core._conflict import TOUCH_SLACK_M

NEVER = np.iinfo(np.int32).min


def _old_pairs(
    table: np.ndarray, rows: np.ndarray, cols: np.ndarray, least: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fleet's expression for the pairs heard before ``touching_pairs_heard``."""
    recent = np.take(table[rows], cols, axis=1) >= least
    i, j = np.nonzero(recent)
    return i, j, np.asarray(recent.any(axis=0))


def _random_table(rng: np.random.Generator, n_rows: int, n_cols: int) -> np.ndarray:
    """Times 0..40 with NEVER mostly (never heard, or a row or column given back)."""
    table = rng.integers(0, 40, size=(n_rows, n_cols), dtype=np.int32)
    table[rng.random((n_rows, n_cols)) < 0.6] = NEVER
    if n_rows:
        table[rng.choice(n_rows, size=max(1, n_rows // 5))] = NEVER  # rows of vehicles gone
    if n_cols:
        table[:, rng.choice(n_cols, size=max(1, n_cols // 5))] = NEVER  # columns of senders forgotten
    return table


@contextlib.contextmanager
def _way(compiled: bool) -> Iterator[None]:
    with always_compiled() if compiled else contextlib.nullcontext():
        yield


def _touch_world(rng: np.random.Generator, n: int) -> WorldState:
    """``n`` cars at random on a 300 m square, some fast and some braking hard, a few with a value not a number."""
    world = WorldState(capacity=n + 3)
    slots = world.add_many([f"a{k}" for k in range(n)], ActorKind.CAR, 4.5, 1.8)
    heading = rng.uniform(-np.pi, np.pi, n)
    speed = rng.uniform(0.0, 30.0, n)
    accel = rng.uniform(-8.0, 2.0, n)
    x, y = rng.uniform(0.0, 300.0, n), rng.uniform(0.0, 300.0, n)
    x[rng.random(n) < 0.03] = np.nan
    world.set_state(
        slots, x, y, speed * np.cos(heading), speed * np.sin(heading), accel * np.cos(heading),
        accel * np.sin(heading), heading,
    )  # fmt: skip
    return world


@pytest.mark.parametrize("compiled", [False, True])
def test_touching_pairs_heard_are_the_heard_pairs_detect_conflicts_keeps(compiled: bool) -> None:
    """The pairs heard (as slots) that ``detect_conflicts(touch_within_s=...)`` keeps: the same
    pairs in the same order as its test in numpy, and the same conflicts found from them as from all heard."""
    rng = np.random.default_rng(13)
    kept_any = dropped_any = 0
    with _way(compiled):
        for case in range(40):
            n = int(rng.integers(2, 60))
            world = _touch_world(rng, n)
            hosts = int(rng.integers(1, n))
            table = _random_table(rng, hosts + 3, n + 2)
            rows = rng.permutation(hosts + 3)[:hosts]
            cols = rng.permutation(n + 2)[: n - hosts]
            row_slots, col_slots = np.arange(hosts), hosts + rng.permutation(n - hosts)
            least, within = int(rng.integers(-1, 41)), float(rng.uniform(0.5, 5.0))
            i, j, _ = _old_pairs(table, rows, cols, least)
            p, q = row_slots[i], col_slots[j]
            circ = np.hypot(0.5 * world.length_m[:n], 0.5 * world.width_m[:n])
            acc = np.hypot(world.ax[:n], world.ay[:n])
            cx, cy = world.x[q] - world.x[p], world.y[q] - world.y[p]
            ux, uy = world.vx[q] - world.vx[p], world.vy[q] - world.vy[p]
            reach = circ[p] + circ[q] + np.sqrt(ux * ux + uy * uy) * within + 0.5 * (acc[p] + acc[q]) * within * within
            keep = ~(cx * cx + cy * cy > (reach + TOUCH_SLACK_M) ** 2)
            for hint in (0, 3, 10_000):  # (a small room: the kernel stops and goes on)
                got = touching_pairs_heard(
                    world, table, rows, cols, least, row_slots, col_slots, within, size_hint=hint
                )
                assert got[0].dtype == np.intp and got[1].dtype == np.intp, case
                assert np.array_equal(got[0], p[keep]) and np.array_equal(got[1], q[keep]), case
            kept_any += int(keep.sum())
            dropped_any += int((~keep).sum())
            if len(p):
                every = detect_conflicts(world, horizon_s=6.0, pairs=(p, q), touch_within_s=within)
                touching = detect_conflicts(world, horizon_s=6.0, pairs=got, touch_within_s=within)
                for name in ("i", "j", "kind", "ttc_s"):
                    assert np.array_equal(getattr(every, name), getattr(touching, name), equal_nan=True), case
    assert kept_any and dropped_any


def test_touching_pairs_heard_refuses_a_slot_that_is_not_active() -> None:
    rng = np.random.default_rng(14)
    world = _touch_world(rng, 4)
    table = np.zeros((2, 2), dtype=np.int32)
    rows, cols = np.arange(2), np.arange(2)
    for row_slots, col_slots in (([0, 1], [2, 5]), ([-1, 1], [2, 3]), ([0], [2, 3])):
        with pytest.raises(ValueError):
            touching_pairs_heard(world, table, rows, cols, 0, np.array(row_slots), np.array(col_slots), 3.0)


def _old_stamp(
    table: np.ndarray, counts: np.ndarray, envelope: np.ndarray, row_of: np.ndarray, col_of: np.ndarray,
    sender_of: np.ndarray, receiver_of: np.ndarray, value: int,
) -> None:  # fmt: skip
    """The fleet's scatter before ``stamp_deliveries``."""
    vehicle = np.repeat(np.arange(len(counts)), counts)
    k = np.flatnonzero((col_of >= 0)[envelope])
    who, env = vehicle[k], envelope[k]
    ok = (sender_of[env] != receiver_of[who]) & (row_of[who] >= 0)
    table[row_of[who[ok]], col_of[env[ok]]] = value


@pytest.mark.parametrize("compiled", [False, True])
def test_stamp_deliveries_writes_what_the_numpy_scatter_wrote(compiled: bool) -> None:
    rng = np.random.default_rng(12)
    with _way(compiled):
        for case in range(60):
            n_rows, n_cols = int(rng.integers(1, 20)), int(rng.integers(1, 20))
            n_vehicles, n_env = int(rng.integers(0, n_rows + 1)), int(rng.integers(1, 25))
            table = _random_table(rng, n_rows, n_cols)
            counts = rng.integers(0, 8, size=n_vehicles)
            envelope = rng.integers(0, n_env, size=int(counts.sum())).astype(np.uint16)
            row_of = rng.permutation(n_rows)[:n_vehicles].astype(np.int64)
            row_of[rng.random(n_vehicles) < 0.2] = -1  # vehicles gone since (no row)
            col_of = rng.integers(-1, n_cols, size=n_env)  # -1: a sender without a column
            receiver_of = rng.permutation(40)[:n_vehicles]
            sender_of = rng.integers(-1, 40, size=n_env)
            if n_vehicles:  # some deliveries of a vehicle's own envelope
                sender_of[envelope[: int(counts.sum()) // 3]] = receiver_of[0]
            want = table.copy()
            _old_stamp(want, counts, envelope, row_of, col_of, sender_of, receiver_of, 77)
            stamp_deliveries(table, counts, envelope, row_of, col_of, sender_of, receiver_of, 77)
            assert np.array_equal(table, want), case


def test_stamp_deliveries_refuses_what_does_not_fit() -> None:
    table = np.full((2, 2), NEVER, dtype=np.int32)
    one = np.array([0])
    with pytest.raises(ValueError):  # an envelope index beyond the envelopes
        stamp_deliveries(table, np.array([1]), np.array([1]), one, one, one, np.array([5]), 1)
    with pytest.raises(ValueError):  # counts that do not add up to the deliveries
        stamp_deliveries(table, np.array([2]), np.array([0]), one, one, one, np.array([5]), 1)
    with pytest.raises(ValueError):  # a column beyond the table
        stamp_deliveries(table, np.array([1]), np.array([0]), one, np.array([2]), one, np.array([5]), 1)
    with pytest.raises(ValueError):  # a row beyond the table
        stamp_deliveries(table, np.array([1]), np.array([0]), np.array([2]), one, one, np.array([5]), 1)
    assert (table == NEVER).all()
