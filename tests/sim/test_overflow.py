"""Cutting an input over 4 MiB fairly among its senders (``v2x.sim.overflow``), and a cut delivery taken back from
the channel's counts (``Channel.withdraw``): attack review 12, where five flooders pushed an honest lead's BSMs out
of the follower's input, unflagged, with the lead's deliveries still counted as delivered."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from v2x.logs import flag_text
from v2x.sim.channel import ChannelStats, LatencyColumn
from v2x.sim.inbound import InboundStats
from v2x.sim.metrics import run_metrics
from v2x.sim.overflow import delivery_bytes, fair_cut, max_min_share
from v2x.wire import testbed_pb2
from v2x.wire.protocol import MAX_INPUT_BYTES, MAX_TX_BYTES, MAX_TX_PER_TICK


def test_an_honest_sender_among_flooders_keeps_its_delivery_and_each_flooder_loses_its_latest() -> None:
    """Five flooders' 64 envelopes of 16 KiB each, delivered before the honest BSM (stamped a tick early), fill
    5 MiB of a 4 MiB input: the honest one's BSM stays, each flooder keeps its first deliveries up to an equal
    share and loses the rest."""
    costs, senders = [], []
    for _ in range(MAX_TX_PER_TICK):  # interleaved, as the channel orders them: by delivery time
        for f in range(5):
            costs.append(MAX_TX_BYTES)
            senders.append(f"atk{f}")
    costs.append(300)
    senders.append("lead")
    cut = fair_cut(costs, senders, MAX_INPUT_BYTES)
    assert cut.keep[-1]  # the lead's BSM
    assert sum(c for c, k in zip(costs, cut.keep, strict=True) if k) <= MAX_INPUT_BYTES
    assert cut.share == (MAX_INPUT_BYTES - 300) // 5
    kept = Counter(s for s, k in zip(senders, cut.keep, strict=True) if k)
    assert kept == {"lead": 1, **{f"atk{f}": cut.share // MAX_TX_BYTES for f in range(5)}}
    for f in range(5):  # each flooder's first deliveries, its latest gone
        mine = [k for s, k in zip(senders, cut.keep, strict=True) if s == f"atk{f}"]
        assert mine == sorted(mine, reverse=True)
    assert cut.sent["atk0"] == MAX_TX_PER_TICK * MAX_TX_BYTES and cut.sent["lead"] == 300


def test_a_sender_within_the_fair_share_keeps_everything_even_a_large_one() -> None:
    """Max-min fairness: the budget left by the senders under the share goes to the others. One that sends 1,000
    bytes, one 3,000, one 10,000 within 8,000: the share is (8,000 - 1,000 - 3,000) / 1 = 4,000 for the largest."""
    costs = [2000] * 5 + [500] * 6 + [1000]
    senders = ["big"] * 5 + ["mid"] * 6 + ["small"]
    cut = fair_cut(costs, senders, 8000)
    assert cut.share == 4000
    assert cut.keep == [True, True, False, False, False] + [True] * 7
    assert fair_cut(costs, senders, sum(costs)).keep == [True] * len(costs)  # it fits: nothing goes
    assert fair_cut(costs, senders, sum(costs)).share is None


@pytest.mark.parametrize(
    ("totals", "budget", "share"),
    [([10, 10, 10], 30, 10), ([10, 10, 10], 29, 9), ([1, 100, 100], 51, 25), ([1, 2, 3], 0, 0), ([5], 100, 5)],
)
def test_the_max_min_share(totals: list[int], budget: int, share: int) -> None:
    assert max_min_share(totals, budget) == share


def test_a_deliverys_bytes_are_what_it_adds_to_a_tick_input() -> None:
    for size in (0, 1, 127, 128, 300, 16383, 16384, MAX_TX_BYTES):
        for rx_us in (0, 63, 64, 100_000, 10**12):
            empty = testbed_pb2.TickInput(run_id="t", tick=1, time_us=100_000, envelopes=[b"x"], rx_time_us=[5])
            more = testbed_pb2.TickInput()
            more.CopyFrom(empty)
            more.envelopes.append(b"e" * size)
            more.rx_time_us.append(rx_us)
            assert more.ByteSize() - empty.ByteSize() == delivery_bytes(b"e" * size, rx_us)


def _stats() -> ChannelStats:
    stats = ChannelStats(delivered=Counter({"pc5": 4}), dropped=Counter({"pc5": 1}), candidates=Counter({"pc5": 5}))
    stats.add_latencies("pc5", "bsm", np.array([4.0, 1.0, 3.0, 1.0]))
    return stats


def test_a_withdrawn_delivery_is_neither_delivered_nor_a_latency() -> None:
    stats = _stats()
    stats.delivered["pc5"] -= 2  # (what ``Channel.withdraw`` does, twice)
    stats.cut["pc5"] += 2
    stats.withdrawn[("pc5", "bsm")] += [1.0, 4.0]
    values, _ = stats.joined([("pc5", "bsm")])
    assert sorted(values.tolist()) == [1.0, 3.0]
    m = run_metrics("v2x", n_ticks=1, tick_s=0.1, wall_s=0.0, channel=stats, in_flight=0, inbound=InboundStats(),
                    sensing={})  # fmt: skip
    assert m["messages"]["delivered"] == {"pc5": 2} and m["messages"]["cut"] == {"pc5": 2}
    assert m["delivery_ratio"] == 0.4
    assert m["latency_ms"]["max"] == 3.0 and m["latency_ms_by_message"]["bsm"]["p50"] == 2.0
    clean = run_metrics("v2x", n_ticks=1, tick_s=0.1, wall_s=0.0, channel=_stats(), in_flight=0,
                        inbound=InboundStats(), sensing={})  # fmt: skip
    assert "cut" not in clean["messages"]  # (a clean run's metrics stay as they were)


def test_a_withdrawn_latency_leaves_the_histogram_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LatencyColumn, "EXACT_MAX", 2)  # (binned from the third value on)
    stats = _stats()
    stats.withdrawn[("pc5", "bsm")] += [1.0, 1.0, 4.0]
    hist = stats.counted([("pc5", "bsm")])
    assert hist is not None and len(hist) == 1
    assert abs(hist.percentiles([50.0])[0] - 3.0) < 3.0 * 1e-3


def test_a_flooders_flag_says_so_and_a_conflicts_flag_says_what_it_said() -> None:
    assert flag_text({"input_overflow": 7}).startswith("its deliveries were cut from 7 inputs")
    both = flag_text({"ack": 1, "input_overflow": 3})
    assert both.startswith("its reports conflicted {'ack': 1} (two stacks drive it") and "cut from 3 inputs" in both
