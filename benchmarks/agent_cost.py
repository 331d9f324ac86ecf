"""Where a vehicle agent's CPU goes: runs scenarios on the loopback bus (no broker: the world's and the
agents' own work only), one process, and prints the process CPU, the CPU inside ``VehicleAgent.step`` and
inside its app evaluations, split into those at a delivery time (the apps that read a message, where it
arrived) and the periodic ones at each tick's time (every app).

    .venv/bin/python benchmarks/agent_cost.py fcw tjw gnss ...   (scenario ids, seed 0)

CPU time (``time.process_time``), so a loaded machine disturbs it less than wall time; compare two
checkouts by running each with its own tree first on PYTHONPATH, alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

from v2x.agents.vehicle import VehicleAgent
from v2x.run.runner import run_scenario
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR

spent: dict[str, list[float]] = {"step": [0.0, 0], "delivery": [0.0, 0], "tick": [0.0, 0]}


def _timed(fn: Callable[..., Any], kind: Callable[[tuple[Any, ...]], str]) -> Callable[..., Any]:
    def timed(self: VehicleAgent, *args: Any, **kwargs: Any) -> Any:
        t0 = time.process_time()
        try:
            return fn(self, *args, **kwargs)
        finally:
            entry = spent[kind(args)]
            entry[0] += time.process_time() - t0
            entry[1] += 1

    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="+", help="scenario ids")
    args = parser.parse_args()
    VehicleAgent.step = _timed(VehicleAgent.step, lambda a: "step")  # type: ignore[method-assign]
    if hasattr(VehicleAgent, "_evaluate"):  # the evaluation at each delivery and at each tick
        VehicleAgent._evaluate = _timed(  # type: ignore[method-assign]
            VehicleAgent._evaluate, lambda a: "tick" if isinstance(a[4], range) else "delivery"
        )
    t0 = time.process_time()
    for sid in args.scenarios:
        asyncio.run(run_scenario(load_scenario(SCENARIO_DIR / f"{sid}.yaml"), seed=0, broker="loopback"))
    total = time.process_time() - t0
    print(f"process CPU {total:.2f} s")
    for name, (cpu, calls) in spent.items():
        per = f" ({cpu / calls * 1e6:.0f} us each)" if calls else ""
        print(f"  {name:9s} {cpu:6.2f} s over {int(calls)} calls{per}")


if __name__ == "__main__":
    main()
