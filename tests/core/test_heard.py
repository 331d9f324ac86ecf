"""The table of when each receiver last heard each sender (v2x/core/_heard.py): its compiled pair builder and
delivery stamping give exactly what the numpy expressions they replace gave (the fleet agent's FCW used them),
interpreted and compiled, whatever room the pair builder starts with."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest

from v2x.core import always_compiled, pairs_at_least, stamp_deliveries

NEVER = np.iinfo(np.int32).min


def _old_pairs(
    table: np.ndarray, rows: np.ndarray, cols: np.ndarray, least: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fleet's expression before ``pairs_at_least``."""
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


@pytest.mark.parametrize("compiled", [False, True])
def test_pairs_at_least_gives_the_numpy_expressions_pairs_in_its_order(compiled: bool) -> None:
    rng = np.random.default_rng(10)
    with _way(compiled):
        for case in range(60):
            n_rows, n_cols = int(rng.integers(0, 30)), int(rng.integers(0, 30))
            table = _random_table(rng, n_rows, n_cols)
            # The hosts (distinct rows, in any order, some rows unused) and the usable senders' columns (any order,
            # some never used; -1 counts from the end as numpy's indexing does).
            rows = rng.permutation(n_rows)[: int(rng.integers(0, n_rows + 1))] if n_rows else np.zeros(0, np.int64)
            cols = rng.integers(-1, n_cols, size=int(rng.integers(0, n_cols + 1))) if n_cols else np.zeros(0, np.int64)
            least = int(rng.integers(-1, 41))
            want = _old_pairs(table, rows, cols, least)
            for hint in (0, 1, 5, 10_000):  # (a small room: the kernel stops and goes on)
                got = pairs_at_least(table, rows.astype(np.int64), cols.astype(np.int64), least, size_hint=hint)
                assert got[0].dtype == np.intp and got[1].dtype == np.intp, case
                for a, b in zip(want, got, strict=True):
                    assert np.array_equal(a, b), case


def test_pairs_at_least_resumes_when_its_room_runs_out() -> None:
    """More pairs than the first room (at least 1024 or one row's worth): the answer comes in several calls."""
    rng = np.random.default_rng(11)
    table = rng.integers(0, 10, size=(300, 200), dtype=np.int32)
    rows, cols = rng.permutation(300), rng.permutation(200)[:150]
    with always_compiled():
        got = pairs_at_least(table, rows, cols, 3)
    want = _old_pairs(table, rows, cols, 3)
    assert len(want[0]) > 4 * 1024
    for a, b in zip(want, got, strict=True):
        assert np.array_equal(a, b)


def test_pairs_at_least_refuses_indices_numpy_would() -> None:
    table = np.zeros((3, 4), dtype=np.int32)
    with pytest.raises(IndexError):
        pairs_at_least(table, np.array([3]), np.array([0]), 0)
    with pytest.raises(IndexError):
        pairs_at_least(table, np.array([0]), np.array([-5]), 0)


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
