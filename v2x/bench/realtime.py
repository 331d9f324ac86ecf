"""``v2x bench realtime``: the ``v2x bench stack`` workload (N equipped vehicles with FCW hosted by the fleet
agent) under the real-time clock (``--mode realtime``): how many ticks are late, and how much latency the
emulator adds to the modelled channel's.

An observer of the world (called right after each tick closes) measures, with tick 0 taken as on time:

* ``lateness(n)``: how far behind its schedule the world closed tick n (wall time since tick 0 closed, less
  n ticks); tick n + 1's inputs go out right after, that late;
* a tick is **late** when some report was missing at its deadline (the world counts them: ``late_reports``)
  or it closed more than ``LATE_MS`` behind schedule;
* **added latency** of a PC5 delivery handed out at tick n + 1: the wait from its modelled delivery time to
  that tick's time (deliveries are handed out once per tick) plus ``lateness(n)``. Sampled from the
  deliveries the channel holds for the next tick when each tick closes. Not included: the world's
  ``begin`` and the broker's transfer (a few ms; see ``v2x bench stack``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import yaml

from v2x.bench.stack import TICK_S, run_facts, stack_scenario
from v2x.net.world import Observer
from v2x.run.runner import run_scenario, warm_up_core
from v2x.scenario import load_scenario
from v2x.sim.simulation import Simulation

LATE_MS = 10.0  # a tick closed more than this behind schedule is late


class RealtimeProbe(Observer):
    def __init__(self) -> None:
        self.t0: float | None = None
        self.lateness_ms: list[float] = []
        self.missing: list[bool] = []
        self.added_ms: list[np.ndarray] = []
        self.hosted: list[int] = []
        self._late_reports = 0

    async def on_tick(self, sim: Simulation, tick: int, events: list[dict[str, Any]]) -> None:
        now = time.perf_counter()
        if self.t0 is None:
            self.t0 = now - tick * TICK_S
        late = max(0.0, (now - self.t0 - tick * TICK_S) * 1e3)
        self.lateness_ms.append(late)
        reports = sim.inbound.stats.late_reports
        self.missing.append(reports > self._late_reports)
        self._late_reports = reports
        pending = sim.channel.pending
        t_next = sim.time_of(tick + 1)
        due = pending.delivery_time_s[pending.delivery_time_s <= t_next + 1e-9]
        if len(due):
            self.added_ms.append((t_next - due) * 1e3 + late)
        if sim.background is not None:
            self.hosted.append(len(sim.background.equipped()[0]))


def main(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    n = 20 if args.quick else args.n
    seconds = args.seconds if args.seconds is not None else (1.0 if args.quick else 60.0)
    if n < 2 or seconds <= 0:
        print("--n must be >= 2 and --seconds > 0", file=err)
        return 2
    started = time.perf_counter()
    print(f"bench realtime: {n} equipped vehicles, {seconds:g} s real time on {args.broker}", file=err, flush=True)
    doc = stack_scenario(n, seconds)
    with tempfile.TemporaryDirectory(prefix="v2x-bench-realtime-") as tmp:
        path = Path(tmp) / f"{doc['id']}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        sc = load_scenario(path)
    warm_up_core([sc])
    probe = RealtimeProbe()
    result = asyncio.run(
        run_scenario(
            sc, seed=0, broker=args.broker, variants=["v2x"], mode="realtime", observe=lambda v, r: probe,
            workers=args.workers,
        )
    )  # fmt: skip
    metrics = result["metrics"]["v2x"]
    ticks = len(probe.lateness_ms)
    late = sum(1 for m, ms in zip(probe.missing, probe.lateness_ms, strict=True) if m or ms > LATE_MS)
    added = np.concatenate(probe.added_ms) if probe.added_ms else np.zeros(0)
    doc_out: dict[str, Any] = {
        "bench": "realtime",
        "n": round(float(np.mean(probe.hosted))) if probe.hosted else n,
        "n_requested": n,
        "late_tick_ratio": round(late / max(1, ticks), 4),
        "added_latency_ms_p99": round(float(np.percentile(added, 99)), 2) if len(added) else None,
        "added_latency_ms_p50": round(float(np.percentile(added, 50)), 2) if len(added) else None,
        "lateness_ms_max": round(max(probe.lateness_ms), 1) if probe.lateness_ms else None,
        "channel_latency_ms_p99": metrics["latency_ms"]["p99"],
        "late_reports": metrics["late_reports"],
        "deliveries_per_tick": round(metrics["messages"]["delivered"].get("pc5", 0) / metrics["ticks"]),
        "ticks": ticks,
        "workers": args.workers,
        "broker": args.broker,
        **run_facts(started),
    }
    print(
        f"  {doc_out['late_tick_ratio'] * 100:.1f} % late ticks, "
        f"added latency p99 {doc_out['added_latency_ms_p99']} ms",
        file=err,
    )
    if args.json:
        print(json.dumps(doc_out), file=out)
        return 0
    print("| vehicles | late ticks | added latency p50 / p99 ms | behind schedule at most ms |", file=out)
    print("|---|---|---|---|", file=out)
    print(
        f"| {doc_out['n']} | {doc_out['late_tick_ratio'] * 100:.1f} % | {doc_out['added_latency_ms_p50']} / "
        f"{doc_out['added_latency_ms_p99']} | {doc_out['lateness_ms_max']} |",
        file=out,
    )
    print(
        f"\nreal-time clock on {args.broker}, {seconds:g} s; a tick is late when a report missed its deadline or "
        f"it closed more than {LATE_MS:g} ms behind schedule; added latency = the wait for the next tick plus how "
        f"far behind schedule it went out; {os.cpu_count()} cores, load {doc_out['load_1min']}",
        file=out,
    )
    return 0
