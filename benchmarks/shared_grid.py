"""Why conflict detection does not reuse a shared point grid (docs/CORE.md, "Spatial grid").

Times, on the benchmark's urban workload at one tick, the conflict question answered two ways: from a
point grid of the actors (every pair within twice the largest reach, then the same narrow phase) and by
``detect_conflicts``' own swept-box broad phase; checks both find the same conflicts.

    .venv/bin/python benchmarks/shared_grid.py [N]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from v2x.bench.core import HORIZON_S, PC5_RANGE_M, TICK_S, urban
from v2x.core import SpatialGrid, detect_conflicts
from v2x.core._conflict import max_reach_m
from v2x.core._fanout import _fan_cell_m
from v2x.core._grid import bucket_points

T = TypeVar("T")


def _median_ms(f: Callable[[], T], repeats: int = 20) -> tuple[float, T]:
    out = f()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3, out


def main(n: int) -> None:
    wl = urban(n, np.random.default_rng(1))
    wl.step(TICK_S)
    w = wl.world
    radius = 2 * max_reach_m(w, HORIZON_S, "ca")
    t_build, grid = _median_ms(lambda: SpatialGrid.build(w, radius / 2))
    t_pairs, (pi, pj) = _median_ms(lambda: grid.pairs_within(radius))
    t_narrow, shared = _median_ms(lambda: detect_conflicts(w, horizon_s=HORIZON_S, model="ca", pairs=(pi, pj)))
    t_swept, own = _median_ms(lambda: detect_conflicts(w, horizon_s=HORIZON_S, model="ca"))
    cell_h, cell_w = _fan_cell_m(PC5_RANGE_M)
    sx, sy = w.x[wl.slots], w.y[wl.slots]
    t_tx, _ = _median_ms(lambda: bucket_points(sx, sy, cell_h, cell_w))
    same = len(shared) == len(own) and all(
        np.array_equal(getattr(shared, f), getattr(own, f), equal_nan=True)
        for f in ("i", "j", "kind", "ttc_s", "pet_s", "drac_mps2")
    )
    print(f"urban n={n}, one tick, medians of 20 calls")
    print(f"  fan-out transmission hash:        {t_tx:7.2f} ms")
    print(f"  shared point grid (cell {radius / 2:.0f} m): {t_build:7.2f} ms build")
    print(f"    pairs within 2 x max reach {radius:.0f} m: {t_pairs:7.2f} ms, {len(pi)} pairs")
    print(f"    narrow phase on those pairs:    {t_narrow:7.2f} ms -> {len(shared)} conflicts")
    print(f"  detect_conflicts (swept boxes):   {t_swept:7.2f} ms -> {len(own)} conflicts")
    print(f"  same conflicts: {same}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
