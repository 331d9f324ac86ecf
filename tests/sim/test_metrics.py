"""The metrics dict from hand-filled counters: every key, and the figures computed by hand."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest

from v2x.sim.channel import ChannelStats, LatencyColumn, LatencyHistogram
from v2x.sim.inbound import InboundStats
from v2x.sim.metrics import latency_summary, run_metrics
from v2x.sim.sensing import SensorCounts


def test_latency_summary_is_linear_percentiles_rounded_to_1_us() -> None:
    # numpy linear: p50 of 1..4 = 2.5; p95 = 1 + 0.95 * 3 = 3.85; p99 = 3.97
    assert latency_summary([4.0, 1.0, 3.0, 2.0]) == {"p50": 2.5, "p95": 3.85, "p99": 3.97, "max": 4.0}
    assert latency_summary([1.23456]) == {"p50": 1.235, "p95": 1.235, "p99": 1.235, "max": 1.235}
    assert latency_summary([]) == {"p50": None, "p95": None, "p99": None, "max": None}


def test_run_metrics_from_hand_filled_counters() -> None:
    channel = ChannelStats(
        sent=Counter({"uu": 1, "pc5": 2}),
        delivered=Counter({"pc5": 3, "uu": 1}),
        dropped=Counter({"pc5": 2, "uu": 0}),
        candidates=Counter({"pc5": 5, "uu": 1}),
    )
    channel.add_latencies("uu-up", "bsm", np.array([2.0]))
    channel.add_latencies("pc5", "bsm", np.array([4.0, 1.0, 3.0]))
    inbound = InboundStats(
        rejected=Counter({"malformed": 2, "bad_topic": 1}),
        rejected_by_agents={"car_b": {"out_of_range": 1}, "car_a": {}},
        duplicates=3,
        late_reports=1,
        late_by_actor=Counter({"car_b": 1}),
    )
    m = run_metrics(
        "v2x",
        n_ticks=140,
        tick_s=0.1,
        wall_s=2.34567,
        channel=channel,
        in_flight=2,
        inbound=inbound,
        sensing={"rsu1/0": SensorCounts(frames=10, in_view=7, occluded=2, detected=6)},
    )
    quartiles = {"p50": 2.5, "p95": 3.85, "p99": 3.97, "max": 4.0}
    assert m == {
        "variant": "v2x",
        "v2x_enabled": True,
        "ticks": 141,
        "sim_seconds": 14.0,
        "wall_seconds": 2.346,
        "messages": {
            "sent": {"pc5": 2, "uu": 1},
            "delivered": {"pc5": 3, "uu": 1},
            "dropped": {"pc5": 2, "uu": 0},
            "in_flight_at_end": 2,
        },
        "delivery_ratio": 0.6667,  # 4 / 6
        "delivery_ratio_by_link": {"pc5": 0.6, "uu": 1.0},  # 3 / 5, 1 / 1
        "latency_ms": quartiles,
        "latency_ms_by_channel": {
            "pc5": {"p50": 3.0, "p95": 3.9, "p99": 3.98, "max": 4.0},
            "uu-up": {"p50": 2.0, "p95": 2.0, "p99": 2.0, "max": 2.0},
        },
        "latency_ms_by_message": {"bsm": quartiles},
        "app_latency_ms": {},
        "rejected": {"bad_topic": 1, "malformed": 2},
        "rejected_by_agents": {"car_b": {"out_of_range": 1}},  # agents that rejected nothing are left out
        "duplicates": 3,
        "late_reports": 1,
        "late_reports_by_actor": {"car_b": 1},
        "sensing": {"rsu1/0": {"frames": 10, "in_view": 7, "occluded": 2, "detected": 6}},
    }
    # key order is part of result.json's bytes
    assert list(m["messages"]["sent"]) == ["pc5", "uu"] and list(m["latency_ms_by_channel"]) == ["pc5", "uu-up"]
    assert list(m["rejected"]) == ["bad_topic", "malformed"]


def test_a_baseline_run_with_nothing_sent_has_no_ratio_and_no_latencies() -> None:
    m = run_metrics(
        "baseline",
        n_ticks=10,
        tick_s=0.1,
        wall_s=0.0,
        channel=ChannelStats(),
        in_flight=0,
        inbound=InboundStats(),
        sensing={},
    )
    assert m["v2x_enabled"] is False and m["delivery_ratio"] is None
    assert m["latency_ms"] == {"p50": None, "p95": None, "p99": None, "max": None}
    assert m["messages"] == {"sent": {}, "delivered": {}, "dropped": {}, "in_flight_at_end": 0}
    assert m["latency_ms_by_channel"] == m["latency_ms_by_message"] == m["sensing"] == {}


def _one_by_one(values: np.ndarray) -> dict[str, float | None]:
    """The summary as it was computed before: one np.percentile call per figure."""
    return {
        k: round(float(np.percentile(values, q)), 3) for k, q in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))
    }


def test_latency_summaries_over_blocks_and_groups_equal_percentiles_of_the_concatenation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(LatencyColumn, "BLOCK", 5000)  # many blocks per group
    rng = np.random.default_rng(3)
    channel = ChannelStats()
    added: dict[tuple[str, str], list[np.ndarray]] = {}
    groups = [("pc5", "bsm"), ("pc5", "rsm"), ("uu-up", "bsm"), ("uu-down", "advisory")]
    for _ in range(60):
        key = groups[int(rng.integers(len(groups)))]
        ms = rng.gamma(2.0, 3.0, int(rng.integers(0, 3000)))
        if rng.random() < 0.5:
            channel.add_latencies(*key, ms)
        else:
            channel.latency_room(*key, len(ms))[:] = ms
        added.setdefault(key, []).append(ms)
    assert sum(len(c.parts()) for c in channel.latency_groups.values()) > len(groups)
    m = run_metrics(
        "v2x", n_ticks=1, tick_s=0.1, wall_s=1.0, channel=channel, in_flight=0, inbound=InboundStats(), sensing={}
    )

    def cat(keep: Callable[[tuple[str, str]], bool]) -> np.ndarray:
        return np.concatenate([a for key, chunks in added.items() if keep(key) for a in chunks])

    assert m["latency_ms"] == _one_by_one(cat(lambda key: True))
    assert np.array_equal(channel.latencies_ms, cat(lambda key: True))  # the groups in order, each in order
    for c in ("pc5", "uu-up", "uu-down"):
        assert m["latency_ms_by_channel"][c] == _one_by_one(cat(lambda key, c=c: key[0] == c))  # type: ignore[misc]
        assert np.array_equal(channel.latencies_by_channel[c], cat(lambda key, c=c: key[0] == c))  # type: ignore[misc]
    for msg in ("bsm", "rsm", "advisory"):
        assert m["latency_ms_by_message"][msg] == _one_by_one(cat(lambda key, msg=msg: key[1] == msg))  # type: ignore[misc]
    assert list(m["latency_ms_by_channel"]) == ["pc5", "uu-down", "uu-up"]
    # the summaries left the stored latencies as they were
    assert np.array_equal(channel.latencies_ms, cat(lambda key: True))


@pytest.mark.parametrize("n", [1, 2, 3, 100, 1001, 99_999])
def test_one_percentile_call_gives_the_figures_of_four(n: int) -> None:
    rng = np.random.default_rng(n)
    for values in (rng.gamma(2.0, 1.5, n), np.round(rng.normal(5.0, 2.0, n), 3), rng.integers(0, 9, n) / 7.0):
        assert latency_summary(values) == _one_by_one(values)
        assert latency_summary(values.copy(), overwrite=True) == _one_by_one(values)


def test_a_run_with_too_many_latencies_to_keep_counts_them_in_fixed_memory_within_the_stated_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past EXACT_MAX values a group's latencies go into a histogram: the summaries are then within half a bin
    (relative) of the exact percentiles, the maximum exact, and the kept arrays stop growing."""
    monkeypatch.setattr(LatencyColumn, "BLOCK", 5000)
    monkeypatch.setattr(LatencyColumn, "EXACT_MAX", 40_000)
    rng = np.random.default_rng(5)
    channel = ChannelStats()
    added: dict[tuple[str, str], list[np.ndarray]] = {}
    groups = [("pc5", "bsm"), ("pc5", "rsm"), ("uu-up", "bsm")]
    held = []
    for k in range(150):
        key = groups[0] if k % 3 else groups[int(rng.integers(len(groups)))]
        ms = np.concatenate([rng.gamma(2.0, 3.0, int(rng.integers(0, 2000))), [0.0] if k == 7 else []])
        if rng.random() < 0.5:
            channel.add_latencies(*key, ms)
        else:
            channel.latency_room(*key, len(ms))[:] = ms
        added.setdefault(key, []).append(ms)
        held.append(sum(b.nbytes for c in channel.latency_groups.values() for b in c._blocks))
    assert not channel.latency_groups[groups[0]].kept and channel.binned
    assert max(held[-50:]) <= max(held[:50]) * 2  # (no more growth once binned)
    m = run_metrics(
        "v2x", n_ticks=1, tick_s=0.1, wall_s=1.0, channel=channel, in_flight=0, inbound=InboundStats(), sensing={}
    )
    assert m["latency_ms_binned"]["kept_up_to"] == 40_000

    def near(got: dict[str, float], values: np.ndarray) -> None:
        want = _one_by_one(values)
        assert got["max"] == want["max"]
        for q in ("p50", "p95", "p99"):
            exact = want[q]
            assert exact is not None and abs(got[q] - exact) <= LatencyHistogram.RELATIVE_ERROR * exact + 1e-3, q

    everything = np.concatenate([a for chunks in added.values() for a in chunks])
    near(m["latency_ms"], everything)
    near(m["latency_ms_by_channel"]["pc5"], np.concatenate(added[groups[0]] + added[groups[1]]))
    near(m["latency_ms_by_message"]["rsm"], np.concatenate(added[groups[1]]))  # (kept: converted to merge)
    with pytest.raises(ValueError, match="histogram"):
        _ = channel.latencies_ms
    # Below EXACT_MAX nothing is binned, and the result says nothing of it.
    small = ChannelStats()
    small.add_latencies("pc5", "bsm", everything[:1000])
    assert not small.binned and "latency_ms_binned" not in run_metrics(
        "v2x", n_ticks=1, tick_s=0.1, wall_s=1.0, channel=small, in_flight=0, inbound=InboundStats(), sensing={}
    )
