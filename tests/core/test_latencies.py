"""``latencies_ms`` (the channel's latency store): the compiled kernel of a large world gives numpy's values bit
for bit, and a small world, or deliveries the kernel does not take, go the numpy way."""

from __future__ import annotations

import numpy as np
import pytest

from v2x.core import SMALL_WORLD, Deliveries, always_compiled, latencies_ms


def _deliveries(n: int, n_tx: int, index: type[np.signedinteger], seed: int) -> tuple[Deliveries, np.ndarray]:
    rng = np.random.default_rng(seed)
    tx_time = np.round(rng.uniform(0, 1e4, n_tx), 1)  # tick times, as the channel's
    tx_index = np.sort(rng.integers(0, n_tx, n)).astype(index)
    delivery = tx_time[tx_index] + rng.exponential(0.02, n)
    delivery[::97] = tx_time[tx_index[::97]]  # no delay at all
    d = Deliveries(tx_index=tx_index, receiver=np.zeros(n, dtype=np.int32), delivery_time_s=delivery)
    return d, tx_time


def _numpy(d: Deliveries, tx_time: np.ndarray) -> np.ndarray:
    lat: np.ndarray = d.delivery_time_s - tx_time[d.tx_index]
    lat *= 1e3
    return lat


@pytest.mark.parametrize("index", [np.int32, np.int64])
@pytest.mark.parametrize("n_actors", [2, SMALL_WORLD + 1, 2000])
def test_latencies_are_numpys_bit_for_bit(index: type[np.signedinteger], n_actors: int) -> None:
    d, tx_time = _deliveries(50_000, 2000, index, seed=n_actors)
    expected = _numpy(d, tx_time)
    out = np.full(len(d), np.nan)
    assert latencies_ms(d, tx_time, out, n_actors) is out
    assert out.tobytes() == expected.tobytes()
    with always_compiled():  # a small world too
        out2 = np.full(len(d), np.nan)
        latencies_ms(d, tx_time, out2, n_actors)
    assert out2.tobytes() == expected.tobytes()


def test_a_view_into_a_larger_block_is_filled_and_nothing_else() -> None:
    d, tx_time = _deliveries(1000, 50, np.int32, seed=1)
    block = np.full(3000, -1.0)
    latencies_ms(d, tx_time, block[1000:2000], 2000)
    assert block[1000:2000].tobytes() == _numpy(d, tx_time).tobytes()
    assert (block[:1000] == -1.0).all() and (block[2000:] == -1.0).all()
    empty = Deliveries.empty()
    assert len(latencies_ms(empty, tx_time, np.zeros(0), 2000)) == 0
