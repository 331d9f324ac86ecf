"""What memory order buys the traffic step (docs/CORE.md, "Traffic model", the structural change left for
`v2x bench traffic`'s >= 20x target).

The bench's state after 205 ticks (10,000 vehicles) is renumbered three ways, every array permuted and
``order`` mapped along: as the bench has it, rows in (lane, s) order (so the sorted passes read rows in
memory order), and rows in random order. The compiled step then runs on the three, alternating tick by tick
for 400 ticks in this one process; it prints each one's p50 per half and the share of consecutive sorted
positions that are consecutive rows at the end.

    .venv/bin/python benchmarks/traffic_memory_order.py [N] [TICKS]
"""

from __future__ import annotations

import sys
import time
from dataclasses import fields

import numpy as np
from numpy.typing import NDArray

from v2x.bench.core import TICK_S
from v2x.bench.traffic import grid
from v2x.core.traffic import Traffic, traffic_step


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    ticks = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    wl = grid(n, np.random.default_rng(1))
    tr = wl.traffic
    for tick in range(205):
        traffic_step(wl.net, tr, wl.red(tick), TICK_S, tick)
    order = tr.order.copy()

    def renumbered(perm: NDArray[np.int64]) -> Traffic:  # new row r holds the vehicle of old row perm[r]
        inverse = np.empty(n, dtype=np.int64)
        inverse[perm] = np.arange(n)
        cols = {f.name: getattr(tr, f.name)[perm].copy() for f in fields(tr) if f.init and f.name != "order"}
        return Traffic(**cols, order=inverse[order])

    states = {
        "as the bench has it": tr.copy(),
        "rows in (lane, s) order": renumbered(order),
        "rows in random order": renumbered(np.random.default_rng(5).permutation(n)),
    }
    names = list(states)
    times: dict[str, list[float]] = {name: [] for name in names}
    for tick in range(205, 205 + ticks):
        for name in names if tick % 2 else names[::-1]:
            t0 = time.perf_counter()
            traffic_step(wl.net, states[name], wl.red(tick), TICK_S, tick)
            times[name].append(time.perf_counter() - t0)
    half = ticks // 2
    for name in names:
        first, second = (np.median(times[name][:half]) * 1e6, np.median(times[name][half:]) * 1e6)
        adjacent = float(np.mean(np.abs(np.diff(states[name].order)) == 1))
        print(f"{name:24s} p50 {first:6.1f} / {second:6.1f} us   consecutive rows at the end {adjacent:.0%}")


if __name__ == "__main__":
    main()
