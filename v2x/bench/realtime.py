"""``v2x bench realtime``: the ``v2x bench stack`` workload (N equipped vehicles with FCW hosted by the fleet
agent) under the real-time clock (``--mode realtime``): how many ticks are late, and how much latency the
emulator adds to the modelled channel's.

An observer of the world measures on the wall clock, with time 0 when tick 0's inputs went out (the clock's
start; tick n is due to begin n ticks later and to close by the next tick's time):

* a tick is **late** when some report was missing at its deadline (the world counts them: ``late_reports``)
  or it closed more than ``LATE_MS`` after its deadline (``lateness``);
* **added latency** of a PC5 delivery: from its modelled delivery time to when the world handed it to its
  receiver, i.e. published the input that carries it (``Observer.on_inputs``). The deliveries to a fleet's
  vehicles and to the built-in individual agents (the story cars) are handed over as soon as the tick before
  closes, but not before that tick's wall-clock time (their inputs of the next tick go out then, each
  delivery with its time; an outside stack's would go out at the next tick's time).
  Sampled, at each tick's close, from the deliveries the channel holds for the next tick. The broker's
  transfer and the receiver's own work are not in it (``v2x bench stack`` times the whole loop). The fleet
  still runs its FCW once a tick at the tick's time (its model, as in lockstep): getting the deliveries
  early on the wall clock does not move its warnings' simulated time.

By default the fleets run in worker processes, one per core (``default_workers``): the world's part of a tick
and the fleets' FCW then run side by side, as they would on separate machines, instead of one after the other
in the world's process (``--workers 1``).
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

from v2x.argtypes import EXIT_BAD_INPUT, EXIT_OK
from v2x.bench.stack import TICK_S, run_facts, stack_scenario
from v2x.net.world import Observer
from v2x.run import default_workers
from v2x.run.runner import public_broker, run_scenario, warm_up_core
from v2x.scenario import load_scenario
from v2x.sim.metrics import percentile
from v2x.sim.simulation import Simulation

LATE_MS = 10.0  # a tick closed more than this after its deadline (the next tick's time) is late


class RealtimeProbe(Observer):
    def __init__(self) -> None:
        self.t0: float | None = None  # when tick 0 began: the world had its inputs, before publishing them
        self.lateness_ms: list[float] = []
        self.missing: list[bool] = []
        self.added_ms: dict[str, list[np.ndarray]] = {"fleet": [], "agents": []}
        self.hosted: list[int] = []
        self._late_reports = 0
        self._due: dict[str, np.ndarray] = {}  # receiver group -> delivery times (s) to hand over next

    def on_input_bytes(self, tick: int, inputs: dict[str, bytes]) -> None:
        # The clock's start, as near as an observer sees it: before tick 0's inputs are published (taken after
        # them, the time their publishing took was left out of every later tick's lateness: a code review).
        if self.t0 is None:
            self.t0 = time.perf_counter()

    def on_inputs(self, sim: Simulation, names: list[str]) -> None:
        now = time.perf_counter()
        if self.t0 is None:
            self.t0 = now
        fleets = set(sim.fleet_ids)
        for group in ("fleet", "agents"):
            if any((name in fleets) == (group == "fleet") for name in names) and group in self._due:
                due = self._due.pop(group)
                # Handed over before it was due (a tick that closed within the channel's latency): none added.
                self.added_ms[group].append(np.maximum(0.0, (now - self.t0) - due) * 1e3)

    async def on_tick(self, sim: Simulation, tick: int, events: list[dict[str, Any]]) -> None:
        now = time.perf_counter()
        t0 = self.t0 if self.t0 is not None else now - tick * TICK_S
        self.lateness_ms.append(max(0.0, (now - t0 - (tick + 1) * TICK_S) * 1e3))
        reports = sim.inbound.stats.late_reports
        self.missing.append(reports > self._late_reports)
        self._late_reports = reports
        pending = sim.channel.pending
        t_next = sim.time_of(tick + 1)
        soon = pending.delivery_time_s <= t_next + 1e-9
        to_fleet = pending.receiver >= len(sim.actor_ids)  # the background vehicles' slots follow the actors'
        if tick < sim.n_ticks:
            self._due = {
                "fleet": pending.delivery_time_s[soon & to_fleet],
                "agents": pending.delivery_time_s[soon & ~to_fleet],
            }
        if sim.background is not None:
            self.hosted.append(len(sim.background.equipped()[0]))


def _percentile(parts: list[np.ndarray], q: float) -> float | None:
    return percentile(np.concatenate(parts) if parts else np.zeros(0), q, digits=2)


def main(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    n = 20 if args.quick else args.n
    seconds = args.seconds if args.seconds is not None else (1.0 if args.quick else 60.0)
    if n < 2 or seconds <= 0:
        print("--n must be >= 2 and --seconds > 0", file=err)
        return EXIT_BAD_INPUT
    workers = args.workers if args.workers is not None else default_workers("realtime", args.broker)
    started = time.perf_counter()
    shown = public_broker(args.broker)  # (without its password)
    fleets = "the fleet in the world's process" if workers == 1 else f"{workers} fleet processes"
    print(
        f"bench realtime: {n} equipped vehicles, {seconds:g} s real time on {shown}, {fleets}",
        file=err,
        flush=True,
    )
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
            workers=workers,
        )
    )  # fmt: skip
    metrics = result["metrics"]["v2x"]
    ticks = len(probe.lateness_ms)
    late = sum(1 for m, ms in zip(probe.missing, probe.lateness_ms, strict=True) if m or ms > LATE_MS)
    both = probe.added_ms["fleet"] + probe.added_ms["agents"]
    doc_out: dict[str, Any] = {
        "bench": "realtime",
        "n": round(float(np.mean(probe.hosted))) if probe.hosted else n,
        "n_requested": n,
        "late_tick_ratio": round(late / max(1, ticks), 4),
        "added_latency_ms_p99": _percentile(both, 99),
        "added_latency_ms_p50": _percentile(both, 50),
        "added_latency_ms_p99_fleet": _percentile(probe.added_ms["fleet"], 99),
        "added_latency_ms_p99_agents": _percentile(probe.added_ms["agents"], 99),
        "lateness_ms_max": round(max(probe.lateness_ms), 1) if probe.lateness_ms else None,
        "channel_latency_ms_p99": metrics["latency_ms"]["p99"],
        "late_reports": metrics["late_reports"],
        "deliveries_per_tick": round(metrics["messages"]["delivered"].get("pc5", 0) / metrics["ticks"]),
        "ticks": ticks,
        "workers": workers,
        "broker": shown,
        **run_facts(started),
    }
    print(
        f"  {doc_out['late_tick_ratio'] * 100:.1f} % late ticks, "
        f"added latency p99 {doc_out['added_latency_ms_p99']} ms",
        file=err,
    )
    if args.json:
        print(json.dumps(doc_out), file=out)
        return EXIT_OK
    print("| vehicles | late ticks | added latency p50 / p99 ms | closed after its deadline at most ms |", file=out)
    print("|---|---|---|---|", file=out)
    print(
        f"| {doc_out['n']} | {doc_out['late_tick_ratio'] * 100:.1f} % | {doc_out['added_latency_ms_p50']} / "
        f"{doc_out['added_latency_ms_p99']} | {doc_out['lateness_ms_max']} |",
        file=out,
    )
    print(
        f"\nreal-time clock on {shown}, {seconds:g} s; a tick is late when a report missed its deadline or "
        f"it closed more than {LATE_MS:g} ms after its deadline; added latency = from a delivery's modelled time to "
        f"when the world handed it over (to the fleets and built-in agents when the tick before closed); "
        f"p99 fleet {doc_out['added_latency_ms_p99_fleet']} ms, individual agents "
        f"{doc_out['added_latency_ms_p99_agents']} ms; {os.cpu_count()} cores, load {doc_out['load_1min']}",
        file=out,
    )
    return EXIT_OK
