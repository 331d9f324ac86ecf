"""``v2x bench stack``: the whole stack (world, fleet agent, broker) with N equipped vehicles running FCW, in
wall seconds per simulated second, against individual vehicle agents measured in the same run.

Workload (``stack_scenario``): ``lanes`` parallel straight lanes (alternately eastbound and westbound, 3.5 m
apart) of background traffic (``flows``), every vehicle equipped (penetration 1), each lane prefilled at
2000 veh/h and 50 km/h (one vehicle every 25 m), the lanes as long as it takes for N vehicles at once; they
send BSMs at 10 Hz on PC5 (line of sight), so each hears the few hundred within the sidelink's range; the
fleet agent (``v2x.agents.fleet``) hosts them all and runs FCW for every one of them. Two story cars (a lead
and a follower with FCW) in lane 0 keep the run a scenario. The flows have a positioning profile
(``POSITIONING``, the pilot zone's Beidou RTK, as the story cars and the baseline; docs/SCENARIOS.md
"Background traffic"), so every BSM states an accuracy FCW's gate accepts: each hosted vehicle's FCW checks
every vehicle it heard within ``max_age_s`` (the fleet's one call of the core's conflict detection over
some 250,000 (vehicle, sender) pairs a tick at 1,000 vehicles), and so do the story cars'. Run lockstep, V2X
variant only, through the runner (``run_scenario``) on the given broker.

Baseline (same run, same broker): ``benchmarks/agents_scale.py``'s workload, ``--baseline-n`` cars on four
lanes, each an individual ``VehicleAgent`` with FCW (the way every equipped vehicle was hosted before
fleets), over ``--baseline-seconds``; ``per_vehicle_speedup`` is its wall time per vehicle per simulated
second over the fleet's (the two runs hold different numbers of vehicles). The two do equal FCW work per
vehicle: in both every vehicle states its accuracy and checks every vehicle it hears (before the flows had a
positioning profile, the fleet's FCW checked only the story cars: figures from then compare unequal work).

``wall_per_sim_s``: the tick loop's wall time (from the end of tick 0 to the end of the last tick, timed by
an observer of the world, so broker start, connections and the world's set-up are not in it) over the
simulated time it covered. ``deliveries_per_tick``: PC5 deliveries (transmission, receiver) per tick.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import yaml

from v2x.argtypes import EXIT_BAD_INPUT, EXIT_OK
from v2x.net.world import Observer
from v2x.run.runner import public_broker, run_scenario, warm_up_core
from v2x.scenario import load_scenario
from v2x.scenario.model import Scenario
from v2x.sim.simulation import Simulation

TICK_S = 0.1
SPACING_M = 25.0  # 2000 veh/h at 50 km/h: the prefill's spacing (v2x.sim.background)
LANE_WIDTH_M = 3.5
# The pilot zone's Beidou RTK (corrections over 5G; ``v2x impair list``): the story cars', the baseline's and the
# background's receivers alike.
POSITIONING = "rtk-fixed"


def _setting(seconds: float) -> dict[str, Any]:
    """What both workloads share: the place, the run's length and tick, the network and positioning."""
    return {
        "origin": {"lat_deg": 29.5630, "lon_deg": 106.5516, "alt_m": 250.0},
        "duration_s": seconds,
        "tick_s": TICK_S,
        "network": {"pc5": "pc5-sidelink-los", "uu": "5g-uu-edge-sa", "wired": "wired-backhaul"},
        "positioning": POSITIONING,
    }


def run_facts(started: float) -> dict[str, Any]:
    """The machine and the moment a bench ran on (its figures depend on them); ``started``: perf_counter."""
    return {
        "cores": os.cpu_count(),
        "load_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }


def stack_scenario(n: int, seconds: float, lanes: int = 8) -> dict[str, Any]:
    """The fleet workload: about ``n`` equipped background vehicles at once on ``lanes`` lanes."""
    lanes = max(1, min(lanes, math.ceil(n / 4)))
    length = max(50.0, math.ceil(n / lanes) * SPACING_M)
    road = []
    for k in range(lanes):
        y = -LANE_WIDTH_M * (k + 0.5)
        line = [[0, y], [length, y]] if k % 2 == 0 else [[length, y], [0, y]]
        road.append({"id": f"l{k}", "centerline": line, "width_m": LANE_WIDTH_M, "speed_limit_kph": 60})
    flow = {
        "vehicles_per_hour": 2000,
        "speed_kph": {"mean": 50, "sd": 5},
        "mix": {"car": 1.0},
        "penetration": 1.0,
        "positioning": POSITIONING,  # BSMs that state their accuracy: every vehicle's FCW acts on every one
    }
    return {
        "id": f"stack{n}",
        "name": f"{n} equipped vehicles with FCW",
        "description": "v2x bench stack workload (v2x/bench/stack.py)",
        **_setting(seconds),
        "road": {"lanes": road},
        "flows": [{"lane": f"l{k}", **flow} for k in range(lanes)],
        "actors": [
            {"id": "lead", "kind": "car", "lane": "l0", "start_m": 60, "speed_mps": 13.89},
            {
                "id": "follower",
                "kind": "car",
                "lane": "l0",
                "start_m": 35,
                "speed_mps": 13.89,
                "apps": ["fcw"],
                "driver": {"reaction_s": 1.0, "brake_mps2": 7.0},
            },
        ],
        "expectations": [{"name": "no collision", "type": "no_collision", "actors": ["follower", "lead"]}],
    }


def individual_scenario(n: int, seconds: float) -> dict[str, Any]:
    """The baseline: ``n`` individual vehicle agents with FCW at 60 km/h, 30 m apart per lane on 4 lanes (as
    ``benchmarks/agents_scale.py``)."""
    lanes = [{"id": f"l{k}", "centerline": [[0, 3.5 * k], [6000, 3.5 * k]], "width_m": 3.5} for k in range(4)]
    actors: list[dict[str, Any]] = [
        {
            "id": f"v{i}",
            "kind": "car",
            "lane": f"l{i % 4}",
            "start_m": 50 + (i // 4) * 30,
            "speed_mps": 16.67,
            "apps": ["fcw"],
            "driver": {"reaction_s": 1.0, "brake_mps2": 7.0},
        }
        for i in range(n)
    ]
    return {
        "id": f"agents{n}",
        "name": f"{n} vehicle agents",
        "description": "v2x bench stack baseline (individual agents)",
        **_setting(seconds),
        "road": {"lanes": lanes},
        "actors": actors,
        "expectations": [{"name": "no collision", "type": "no_collision", "actors": ["v0", "v4" if n > 4 else "v1"]}],
    }


class TickTimer(Observer):
    """Times the world's tick loop and counts the fleet's vehicles each tick."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last = 0.0
        self.ticks = 0
        self.hosted: list[int] = []

    async def on_tick(self, sim: Simulation, tick: int, events: list[dict[str, Any]]) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        else:
            self.ticks += 1
        self.last = now
        if sim.background is not None:
            self.hosted.append(len(sim.background.equipped()[0]))

    def wall_per_sim_s(self) -> float:
        return (self.last - (self.first or self.last)) / max(1, self.ticks) / TICK_S


def measure(doc: dict[str, Any], broker: str, *, workers: int = 1, mode: str = "lockstep") -> dict[str, Any]:
    """Run ``doc`` (V2X only) on ``broker`` and time it."""
    with tempfile.TemporaryDirectory(prefix="v2x-bench-stack-") as tmp:
        path = Path(tmp) / f"{doc['id']}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        sc: Scenario = load_scenario(path)
    warm_up_core([sc])
    timer = TickTimer()
    t0 = time.perf_counter()
    result = asyncio.run(
        run_scenario(
            sc, seed=0, broker=broker, variants=["v2x"], mode=mode, observe=lambda v, r: timer, workers=workers
        )
    )
    total = time.perf_counter() - t0
    metrics = result["metrics"]["v2x"]
    delivered = metrics["messages"]["delivered"].get("pc5", 0)
    row: dict[str, Any] = {
        "wall_per_sim_s": round(timer.wall_per_sim_s(), 3),
        "deliveries_per_tick": round(delivered / metrics["ticks"]),
        "wall_s": round(total, 2),
        "sim_s": sc.duration_s,
        "late_reports": metrics["late_reports"],
    }
    if timer.hosted:
        row["hosted_mean"] = round(float(np.mean(timer.hosted)), 1)
        row["hosted_max"] = max(timer.hosted)
    row["warnings"] = sum(1 for e in result["events"] if e["type"] == "warning")
    return row


def main(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    n = 20 if args.quick else args.n
    seconds = args.seconds if args.seconds is not None else (1.0 if args.quick else 10.0)
    base_n = args.baseline_n if args.baseline_n is not None else (4 if args.quick else 50)
    base_seconds = args.baseline_seconds if args.baseline_seconds is not None else (1.0 if args.quick else 3.0)
    if n < 2 or seconds <= 0 or base_n < 0 or base_seconds <= 0:
        print("--n must be >= 2, --seconds and --baseline-seconds > 0, --baseline-n >= 0", file=err)
        return EXIT_BAD_INPUT
    started = time.perf_counter()
    shown = public_broker(args.broker)  # (without its password)
    print(
        f"bench stack: {n} equipped vehicles, {seconds:g} s lockstep on {shown}",
        file=err,
        flush=True,
    )
    fleet = measure(stack_scenario(n, seconds), args.broker, workers=args.workers)
    hosted = fleet.get("hosted_mean", float(n))
    print(
        f"  fleet: {fleet['wall_per_sim_s']} wall s per simulated s, {fleet['deliveries_per_tick']} deliveries "
        f"per tick, {hosted} vehicles hosted on average",
        file=err,
        flush=True,
    )
    doc: dict[str, Any] = {
        "bench": "stack",
        "n": round(hosted),
        "n_requested": n,
        "wall_per_sim_s": fleet["wall_per_sim_s"],
        "deliveries_per_tick": fleet["deliveries_per_tick"],
        "workers": args.workers,
        "broker": shown,
        "fleet": fleet,
    }
    if base_n >= 2:
        print(f"  baseline: {base_n} individual vehicle agents, {base_seconds:g} s", file=err, flush=True)
        base = measure(individual_scenario(base_n, base_seconds), args.broker)
        print(f"  baseline: {base['wall_per_sim_s']} wall s per simulated s", file=err, flush=True)
        doc["baseline"] = {"what": "individual vehicle agents with FCW", "n": base_n, **base}
        per_vehicle = fleet["wall_per_sim_s"] / max(hosted, 1.0)
        doc["per_vehicle_speedup"] = round(base["wall_per_sim_s"] / base_n / per_vehicle, 1) if per_vehicle else None
    doc.update(run_facts(started))
    if args.json:
        print(json.dumps(doc), file=out)
        return EXIT_OK
    print("| vehicles | hosted by | wall s per simulated s | deliveries per tick | per-vehicle speed-up |", file=out)
    print("|---|---|---|---|---|", file=out)
    print(
        f"| {doc['n']} | fleet ({args.workers} worker{'s' if args.workers > 1 else ''}) | {doc['wall_per_sim_s']} | "
        f"{doc['deliveries_per_tick']} | {doc.get('per_vehicle_speedup', '-')} |",
        file=out,
    )
    if "baseline" in doc:
        b = doc["baseline"]
        print(f"| {b['n']} | individual agents | {b['wall_per_sim_s']} | {b['deliveries_per_tick']} | 1 |", file=out)
    print(
        f"\nlockstep on {shown}; wall s per simulated s = the tick loop's wall time over the simulated time "
        f"({seconds:g} s fleet, {base_seconds:g} s baseline); per-vehicle speed-up = the baseline's wall time per "
        f"vehicle over the fleet's; {os.cpu_count()} cores, load {doc['load_1min']}",
        file=out,
    )
    return EXIT_OK
