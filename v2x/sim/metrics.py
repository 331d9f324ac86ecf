"""The metrics of one run (one variant): what the channel carried, how late, what was rejected, what the
roadside sensors saw. The dict goes into result.json under ``metrics.<variant>`` as it is.

``app_latency_ms`` is the application's latency per app: from the time the message that prompted a
warning was sent to the time the warning was raised for the driver (on board: that message's delivery time;
from the edge: the advisory's delivery time), over the warnings recorded with such a message.

Latency summaries are percentiles (numpy's linear interpolation) in ms rounded to 1 us; ``None`` where
there was nothing to measure. ``delivery_ratio`` is delivered / candidates over all links, where a
candidate is a (transmission, receiver) pair the link model was asked about. A delivery the world cut from a
receiver's input (``input_overflow``, ``unsendable_input``) is not delivered: it is counted under ``messages.cut``
and its latency is left out (``ChannelStats``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from v2x.sim.channel import ChannelStats, LatencyColumn, LatencyHistogram
from v2x.sim.inbound import InboundStats
from v2x.sim.sensing import SensorCounts

_LATENCY_Q = (50.0, 95.0, 99.0, 100.0)


def percentile(
    values: Sequence[float] | NDArray[np.float64], q: float, *, digits: int = 3, from_below: bool = False
) -> float | None:
    """The ``q``-th percentile (0-100) of ``values``, linearly interpolated between the two closest order
    statistics, rounded to ``digits`` decimals; None for no values. The one percentile of the result files and
    the benchmarks.

    As ``np.percentile`` computes it, unless ``from_below``: then as ``lo + (hi - lo) * f`` at the position
    ``(n - 1) * q / 100`` (``v2x sweep``'s lead times, as its summaries always had them). The two are the same
    real number; numpy computes it from the upper neighbour when ``f >= 0.5``, so the last bit may differ, and
    after rounding a value that lies on a half (two values of 3 decimals) may come out 0.001 apart."""
    if not len(values):
        return None
    if not from_below:
        return round(float(np.percentile(values, q)), digits)
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return round(float(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)), digits)


def latency_summary(
    values: Sequence[float] | NDArray[np.float64], *, overwrite: bool = False
) -> dict[str, float | None]:
    """p50, p95, p99 and max of latencies in ms: one ``np.percentile`` call for the four (numpy selects
    every order statistic it needs in one partition; each is interpolated as a call of its own would).
    ``overwrite``: ``values`` is an array the call may reorder (no copy is made)."""
    if not len(values):
        return {"p50": None, "p95": None, "p99": None, "max": None}
    return _summary(np.percentile(values, _LATENCY_Q, overwrite_input=overwrite))


def _summary(quantiles: Iterable[float]) -> dict[str, float | None]:
    """The summary of the four ``_LATENCY_Q`` quantiles, each rounded to 3 decimals."""
    p50, p95, p99, top = (round(float(v), 3) for v in quantiles)
    return {"p50": p50, "p95": p95, "p99": p99, "max": top}


def quantile_summary(hist: LatencyHistogram) -> dict[str, float | None]:
    """``latency_summary`` of the latencies a histogram counted (within half a bin: ``LatencyHistogram``)."""
    return _summary(hist.percentiles(_LATENCY_Q))


def channel_latency_summaries(
    channel: ChannelStats,
) -> tuple[dict[str, float | None], dict[str, dict[str, float | None]], dict[str, dict[str, float | None]]]:
    """``latency_summary`` of the channel's three views (all, by channel, by message type), each distinct
    set of groups summarised once (in a run of BSMs only, all three views are the one group)."""
    done: dict[tuple[tuple[str, str], ...], dict[str, float | None]] = {}

    def summary(keys: list[tuple[str, str]]) -> dict[str, float | None]:
        key = tuple(sorted(keys))
        if key not in done:
            hist = channel.counted(keys)
            if hist is None:
                values, fresh = channel.joined(keys)
                done[key] = latency_summary(values, overwrite=fresh)
            else:  # a run with too many to keep each one: within half a histogram bin (docs/RESULTS.md)
                done[key] = quantile_summary(hist)
        return dict(done[key])

    every, by_channel, by_message = channel.views()
    return (
        summary(every),
        {c: summary(keys) for c, keys in by_channel.items()},
        {m: summary(keys) for m, keys in by_message.items()},
    )


def _binned(channel: ChannelStats) -> dict[str, Any]:
    """``latency_ms_binned`` when a run had too many latencies to keep each one (``LatencyColumn.EXACT_MAX``):
    its latency percentiles are then a histogram's, within ``relative_error`` of the exact ones; else nothing."""
    if not channel.binned:
        return {}
    return {
        "latency_ms_binned": {"kept_up_to": LatencyColumn.EXACT_MAX, "relative_error": LatencyHistogram.RELATIVE_ERROR}
    }


def app_latency_summary(values: list[float]) -> dict[str, float | int | None]:
    """p50, p95 and max of an app's latencies in ms, and how many warnings they are of."""
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": percentile(values, 100),
        "warnings": len(values),
    }


def run_metrics(
    variant: str,
    *,
    n_ticks: int,
    tick_s: float,
    wall_s: float,
    channel: ChannelStats,
    in_flight: int,
    inbound: InboundStats,
    sensing: Mapping[str, SensorCounts],
    app_latency_ms: Mapping[str, list[float]] | None = None,
) -> dict[str, Any]:
    """The metrics of a run of ``variant`` over ticks 0..``n_ticks`` of ``tick_s``, ``wall_s`` long;
    ``in_flight``: deliveries still pending at the end; ``sensing``: the roadside sensors' counts by name;
    ``app_latency_ms``: per app, each recorded warning's time from its trigger's sending, in ms."""
    total_candidates = sum(channel.candidates.values())
    latency_all, latency_by_channel, latency_by_message = channel_latency_summaries(channel)
    delivered = sum(channel.delivered.values())
    return {
        "variant": variant,
        "v2x_enabled": variant == "v2x",
        "ticks": n_ticks + 1,
        "sim_seconds": round(n_ticks * tick_s, 3),
        "wall_seconds": round(wall_s, 3),
        "messages": {
            "sent": dict(sorted(channel.sent.items())),
            "delivered": dict(sorted(channel.delivered.items())),
            "dropped": dict(sorted(channel.dropped.items())),
            "in_flight_at_end": in_flight,
            # (only when the world cut deliveries from an input it could not send whole: a clean run's stays)
            **({"cut": dict(sorted(channel.cut.items()))} if channel.cut else {}),
        },
        "delivery_ratio": round(delivered / total_candidates, 4) if total_candidates else None,
        "delivery_ratio_by_link": {
            link: round(channel.delivered[link] / n, 4) for link, n in sorted(channel.candidates.items()) if n
        },
        "latency_ms": latency_all,
        "latency_ms_by_channel": latency_by_channel,
        "latency_ms_by_message": latency_by_message,
        **_binned(channel),
        "app_latency_ms": {a: app_latency_summary(v) for a, v in sorted((app_latency_ms or {}).items())},
        "rejected": dict(sorted(inbound.rejected.items())),
        "rejected_by_agents": {a: dict(sorted(c.items())) for a, c in sorted(inbound.rejected_by_agents.items()) if c},
        "duplicates": inbound.duplicates,
        "late_reports": inbound.late_reports,
        "late_reports_by_actor": dict(sorted(inbound.late_by_actor.items())),
        **(
            {}  # a signed run only: the result of a run without signatures stays as it was
            if inbound.unverified_ticks is None
            else {"unverified_ticks_by_actor": {a: len(t) for a, t in sorted(inbound.unverified_ticks.items())}}
        ),
        **(
            {}  # a run with outside stacks only: the results of the built-in agents' runs stay as they were
            if inbound.refused_tx_ticks is None
            else {
                "rejected_by_outside_actor": {
                    a: dict(sorted(c.items()))
                    for a in inbound.refused_tx_ticks
                    if (c := inbound.rejected_by_actor.get(a))
                },
                "refused_tx_ticks_by_actor": {a: len(t) for a, t in inbound.refused_tx_ticks.items() if t},
            }
        ),
        "sensing": {
            name: {"frames": c.frames, "in_view": c.in_view, "occluded": c.occluded, "detected": c.detected}
            for name, c in sensing.items()
        },
    }
