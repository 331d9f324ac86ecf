"""How the whole stack (world, agents, broker) keeps up as vehicles are added: wall seconds per simulated
second of a lockstep run, one process, for N cars with FCW on a 4-lane road (every car hears the others
within 300 m, as in dense traffic).

    .venv/bin/python benchmarks/agents_scale.py [--n 25,50,100] [--seconds 10] [--broker embedded|mqtt://...]

Below 1.0 the run is faster than real time (real-time mode can keep up); the core's own figures are in
`v2x bench core`.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import yaml

from v2x.bench.stack import individual_scenario
from v2x.run.runner import run_scenario
from v2x.run.warmup import warm_up
from v2x.scenario import load_scenario


def scenario_text(n: int, seconds: float) -> str:
    """N cars at 60 km/h, 30 m apart per lane on 4 lanes, each with FCW (the baseline workload of
    `v2x bench stack`); an RSU and the platform."""
    doc = individual_scenario(n, seconds)
    doc["id"] = f"scale{n}"
    doc["description"] = "stack scaling benchmark (benchmarks/agents_scale.py)"
    doc["actors"].append({"id": "rsu1", "kind": "rsu", "position": [400, -12], "range_m": 300})
    doc["actors"].append({"id": "cloud", "kind": "platform"})
    return yaml.safe_dump(doc, sort_keys=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="25,50,100")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--broker", default="embedded")
    args = ap.parse_args()
    warm_up()  # compile or load the numba kernels before timing (the worlds here are large)
    print(f"lockstep, {args.seconds:g} s simulated, broker {args.broker}, one process")
    print("| cars | wall s | wall s per simulated s | deliveries per tick |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.n.split(",")):
            path = Path(tmp) / f"scale{n}.yaml"
            path.write_text(scenario_text(n, args.seconds))
            sc = load_scenario(path)
            t0 = time.perf_counter()
            result = asyncio.run(run_scenario(sc, seed=0, broker=args.broker, variants=["v2x"]))
            wall = time.perf_counter() - t0
            metrics = result["metrics"]["v2x"]
            per_tick = sum(metrics["messages"]["delivered"].values()) / (args.seconds / 0.1)
            print(f"| {n} | {wall:.1f} | {wall / args.seconds:.2f} | {per_tick:.0f} |", flush=True)


if __name__ == "__main__":
    main()
