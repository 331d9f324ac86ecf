"""A/B of the compiled traffic step: another revision's kernel against this tree's, in one process.

`v2x bench traffic` cannot tell a 5 % change apart on a shared machine (numpy's time, the ratio's
denominator, moves by more than that within minutes). This runs both kernels on copies of the bench's
10,000-vehicle state after 205 ticks, alternating tick by tick in blocks of 20 (which one goes first
alternates by block), and times each call's thread CPU time. It prints each one's p50 and the median of the
per-block ratios B/A, and the largest difference in positions at the end (0 when the two compute the same;
a formula change shows as rounding, ~1e-12 m).

    git show REV:v2x/core/_traffic_kernels.py > /tmp/kernel_a.py
    .venv/bin/python benchmarks/traffic_ab.py /tmp/kernel_a.py [BLOCKS]

The A file is loaded as a module of its own and compiled by numba (the first run of a new file takes a
minute). Kernels of before session 22 take ``v0``, ``b`` and the speed limits where later ones take their
reciprocals; both signatures are handled. An A/A run (this tree's kernel as A) shows the method's noise:
about +-1.5 %.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from typing import Any

import numpy as np

from v2x.bench.core import TICK_S
from v2x.bench.traffic import grid
from v2x.core import _traffic_kernels
from v2x.core._jit import compiled, twins
from v2x.core.traffic import LaneNetwork, Traffic, _Workspace, traffic_step


def _load(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("v2x.core._traffic_kernels_a", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    module_a = _load(sys.argv[1])
    blocks = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    kernels = {"a": twins(module_a.__name__)["traffic_step"], "b": compiled(_traffic_kernels.traffic_step)}
    old_signature = {"a": not hasattr(module_a, "WF_INV0"), "b": False}
    n_wf = {"a": module_a.N_WF, "b": _traffic_kernels.N_WF}
    wl = grid(10_000, np.random.default_rng(1))
    net: LaneNetwork = wl.net
    for tick in range(205):
        traffic_step(net, wl.traffic, wl.red(tick), TICK_S, tick)
    states = {"a": wl.traffic.copy(), "b": wl.traffic.copy()}
    n = len(wl.traffic)
    work = {}
    for k in "ab":
        ws = _Workspace.for_net(n, net)
        work[k] = (np.empty((n_wf[k], n)), ws.wi, ws.wl)

    def call(k: str, tick: int) -> int:
        t: Traffic = states[k]
        out = (np.empty(n), np.empty(n, dtype=np.int64), np.empty(n), np.empty(n, dtype=np.int8))
        if old_signature[k]:
            head = (net.length_m, net.speed_limit_mps)
            params = (t.v0_mps, t.t_gap_s, t.s0_m, t.a_mps2, t.b_mps2)
        else:
            head = (net.length_m, net.inv_speed_limit)
            params = (t.inv_v0, t.t_gap_s, t.s0_m, t.a_mps2, t.inv_den)
        args = (*head, net.succ_begin, net.succ_lane, net.left, net.right, net.stop_line_m, wl.red(tick),
                t.lane, t.s_m, t.v_mps, t.length_m, *params, t.politeness, t.a_threshold_mps2, t.b_safe_mps2,
                t.order, TICK_S, tick, *out, *work[k])  # fmt: skip
        t0 = time.thread_time_ns()
        kernels[k](*args)
        return time.thread_time_ns() - t0

    times: dict[str, list[int]] = {"a": [], "b": []}
    ratios = []
    tick = 205
    for block in range(blocks):
        got: dict[str, list[int]] = {"a": [], "b": []}
        for _ in range(20):
            for k in ("a", "b") if block % 2 else ("b", "a"):
                got[k].append(call(k, tick))
            tick += 1
        for k in "ab":
            times[k] += got[k]
        ratios.append(float(np.median(got["b"]) / np.median(got["a"])))
    diff = float(np.max(np.abs(states["a"].s_m - states["b"].s_m)))
    print(
        f"A p50 {np.median(times['a']) / 1e3:.1f} us, B p50 {np.median(times['b']) / 1e3:.1f} us, "
        f"median block ratio B/A {np.median(ratios):.3f} over {blocks} blocks of 20 ticks; "
        f"largest position difference at the end {diff:.3g} m"
    )


if __name__ == "__main__":
    main()
