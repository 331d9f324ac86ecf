"""A/B of compiled traffic kernels the way `v2x bench traffic` times them, in one process.

``benchmarks/traffic_ab.py`` alternates two kernels tick by tick on warm caches. The bench's
``compiled_ms_p50_same_state`` is timed differently: 20 consecutive ticks from a copy of one state, fresh
result arrays each tick and the results hashed between the calls (untimed), the numpy step's block in
between. This runs any number of kernel files that way: per round, each kernel runs 20 ticks from a copy of
the same state (the bench's 10,000 vehicles after 205 ticks, then 20 ticks later each round), in an order
that rotates by round, hashing every tick's results; the digests must agree (bit for bit) unless
``--no-check`` (for deletion experiments: a kernel with a pass taken out, to see what the pass costs).
It prints per kernel the p50 of the ticks' thread CPU time and the median of the per-round ratios of
medians against the first kernel (and their quartiles, which show the noise on a shared box).

    git show main:v2x/core/_traffic_kernels.py > /tmp/kernel_main.py
    .venv/bin/python benchmarks/traffic_abn.py /tmp/kernel_main.py v2x/core/_traffic_kernels.py --rounds 40

Each file is loaded as a module of its own (the first named as traffic_ab.py names its A file, the others
after their file names, so give different kernels different file names) and compiled by numba (a minute
per new file). A file loaded under another module name before (by another script) may fail to load from
numba's cache (``ModuleNotFoundError``): delete its entries in ``__pycache__`` next to it. The kernels
must share this tree's signature (session 22's reciprocals and later); the workspace rows are sized by
each file's ``N_WF``/``N_WI``/``N_WL``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from v2x.bench.core import TICK_S
from v2x.bench.traffic import grid
from v2x.core._jit import twins
from v2x.core.traffic import Traffic, traffic_step

TICKS = 20


def _load(path: str, first: bool) -> Any:
    # numba's on-disk cache keeps the module name a file was compiled under and fails to load it under
    # another: the first file gets traffic_ab.py's name for its A file, so both scripts can share an A file
    stem = "".join(c if c.isalnum() else "_" for c in Path(path).stem)
    name = "v2x.core._traffic_kernels_a" if first else "v2x.core._traffic_kernels_abn_" + stem
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("kernels", nargs="+", help="kernel files; ratios are against the first")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--no-check", action="store_true", help="do not require identical results")
    args = ap.parse_args()
    modules = [_load(p, k == 0) for k, p in enumerate(args.kernels)]
    kernels = [twins(m.__name__)["traffic_step"] for m in modules]
    wl = grid(10_000, np.random.default_rng(1))
    net = wl.net
    for tick in range(205):
        traffic_step(net, wl.traffic, wl.red(tick), TICK_S, tick)
    n = len(wl.traffic)
    works = []
    for m in modules:
        wi = np.full((m.N_WI, n), -1, dtype=np.int64)  # kept rows start at -1, as _Workspace makes them
        wl_rows = np.full((m.N_WL, net.n_lanes + 2), -1, dtype=np.int64)
        works.append((np.empty((m.N_WF, n)), wi, wl_rows))

    def call(k: int, t: Traffic, tick: int, h: Any) -> int:
        out = (np.empty(n), np.empty(n, dtype=np.int64), np.empty(n), np.empty(n, dtype=np.int8))
        call_args = (net.length_m, net.inv_speed_limit, net.succ_begin, net.succ_lane, net.left, net.right,
                     net.stop_line_m, wl.red(tick), t.lane, t.s_m, t.v_mps, t.length_m, t.inv_v0, t.t_gap_s,
                     t.s0_m, t.a_mps2, t.inv_den, t.politeness, t.a_threshold_mps2, t.b_safe_mps2, t.order,
                     TICK_S, tick, *out, *works[k])  # fmt: skip
        t0 = time.thread_time_ns()
        kernels[k](*call_args)
        dt = time.thread_time_ns() - t0
        for c in out:
            h.update(np.ascontiguousarray(c).tobytes())
        return dt

    for k in range(len(kernels)):  # compile, and start each workspace's kept rows
        call(k, wl.traffic.copy(), 205, hashlib.sha256())
    base, tick0 = wl.traffic, 205
    count = len(kernels)
    times: list[list[int]] = [[] for _ in kernels]
    ratios: list[list[float]] = [[] for _ in kernels]
    for r in range(args.rounds):
        got: list[list[int]] = [[] for _ in kernels]
        digests = [""] * count
        for k in [(r + j) % count for j in range(count)]:
            state = base.copy()
            h = hashlib.sha256()
            got[k] = [call(k, state, tick0 + j, h) for j in range(TICKS)]
            digests[k] = h.hexdigest() + hashlib.sha256(state.s_m.tobytes()).hexdigest()
        if not args.no_check and len(set(digests)) != 1:
            raise SystemExit(f"round {r}: the kernels' results differ")
        for k in range(count):
            times[k] += got[k]
            ratios[k].append(float(np.median(got[k]) / np.median(got[0])))
        for j in range(TICKS):  # the next round starts 20 ticks later
            traffic_step(net, base, wl.red(tick0 + j), TICK_S, tick0 + j)
        tick0 += TICKS
    for k, path in enumerate(args.kernels):
        q = np.quantile(ratios[k], [0.25, 0.5, 0.75])
        print(
            f"{path}: p50 {np.median(times[k]) / 1e3:.1f} us, median round ratio {q[1]:.3f} "
            f"(quartiles {q[0]:.3f} / {q[2]:.3f}) over {args.rounds} rounds of {TICKS} ticks"
        )


if __name__ == "__main__":
    main()
