"""The metrics dict from hand-filled counters: every key, and the figures computed by hand."""

from __future__ import annotations

from collections import Counter

import numpy as np

from v2x.sim.channel import ChannelStats
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
