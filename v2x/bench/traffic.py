"""``v2x bench traffic``: the compiled traffic step against the plain-numpy step, in the same run.

Workload: a TR 36.885 urban grid (433 x 250 m blocks, 2 lanes per direction, 60 km/h) wrapped into a
torus so that no vehicle leaves, each block side one lane pair; at every junction the right lane goes
straight or turns right, the left lane straight or left, and a fixed-time signal gives east-west and
north-south 27 s of green each with 3 s of all-red between (streams that merge into one lane at a
junction then never have green together). The grid grows with N at the TR's density (one vehicle per
2.5 s x v of lane), 10 % trucks. After a warm-up (compilation, the first sort) the compiled step is
timed over the ticks; then both steps start from copies of the same state and are timed over the same
ticks in alternating blocks, and their results are checked to be identical bit for bit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import time
from dataclasses import dataclass, field, fields
from typing import Any, TextIO

import numpy as np
from numpy.typing import NDArray

from v2x.argtypes import EXIT_BAD_INPUT, EXIT_OK
from v2x.bench.core import HEADWAY_S, TICK_S, TRUCK_SHARE, URBAN_BLOCK_M, URBAN_LANES_PER_DIR, URBAN_SPEED_MPS
from v2x.core import ActorKind
from v2x.core.traffic import LaneNetwork, StepResult, Traffic, traffic_step, traffic_step_numpy
from v2x.sim.metrics import percentile

CYCLE_S = 60.0  # east-west green 27 s, all red 3 s, north-south green 27 s, all red 3 s
CLEARANCE_S = 3.0
ROUNDS = 3  # alternating blocks of compiled and numpy ticks from the same state
DIRS = ((1, 0), (0, 1), (-1, 0), (0, -1))  # E, N, W, S: left turn d + 1, right turn d + 3


@dataclass
class Workload:
    net: LaneNetwork
    traffic: Traffic
    east_west: NDArray[np.bool_]  # per lane
    info: dict[str, Any] = field(default_factory=dict)

    def red(self, tick: int) -> NDArray[np.bool_]:
        t = (tick * TICK_S) % CYCLE_S
        half = CYCLE_S / 2
        if t % half >= half - CLEARANCE_S:  # all red: whoever passed the line clears the junction
            return np.ones(len(self.east_west), dtype=np.bool_)
        out: NDArray[np.bool_] = self.east_west != (t < half)
        return out


def grid(n: int, rng: np.random.Generator) -> Workload:
    """N vehicles on a torus grid of signalised junctions at the TR 36.885 urban density."""
    bx, by = URBAN_BLOCK_M
    spacing = HEADWAY_S * URBAN_SPEED_MPS
    lane_m_per_junction = 2 * URBAN_LANES_PER_DIR * (bx + by)
    junctions = max(4.0, n * spacing / lane_m_per_junction)
    nx = max(2, round(math.sqrt(junctions * by / bx)))
    ny = max(2, math.ceil(junctions / nx))

    def lane_id(i: int, j: int, d: int, k: int) -> int:  # k 0: right lane, 1: left lane
        return (((j % ny) * nx + (i % nx)) * 4 + d) * URBAN_LANES_PER_DIR + k

    n_lanes = nx * ny * 4 * URBAN_LANES_PER_DIR
    length = np.empty(n_lanes)
    succ: list[list[int]] = [[] for _ in range(n_lanes)]
    left = np.full(n_lanes, -1, dtype=np.int64)
    right = np.full(n_lanes, -1, dtype=np.int64)
    ew = np.zeros(n_lanes, dtype=bool)
    for j in range(ny):
        for i in range(nx):
            for d, (dx, dy) in enumerate(DIRS):
                ti, tj = i + dx, j + dy  # the junction this lane ends at
                for k in range(URBAN_LANES_PER_DIR):
                    lid = lane_id(i, j, d, k)
                    length[lid] = bx if dx else by
                    ew[lid] = dx != 0
                    turn = (d + 1) % 4 if k == 1 else (d + 3) % 4
                    succ[lid] = [lane_id(ti, tj, d, k), lane_id(ti, tj, turn, k)]
                    if k == 0:
                        left[lid] = lane_id(i, j, d, 1)
                    else:
                        right[lid] = lane_id(i, j, d, 0)
    net = LaneNetwork.build(length, URBAN_SPEED_MPS, succ, left, right, stop_line_m=length)
    # vehicles spread over the lanes in proportion to length (largest remainder), evenly spaced with jitter
    share = n * length / length.sum()
    counts = np.floor(share).astype(np.int64)
    counts[np.argsort(share - counts)[::-1][: n - counts.sum()]] += 1
    lane = np.repeat(np.arange(n_lanes), counts)
    # north-south approaches start red: keep their vehicles beyond stopping distance of the line (a
    # driver too close to stop would run the red into the east-west stream)
    usable = length - np.where(ew, 0.0, 40.0)
    step = usable[lane] / counts[lane]
    rank = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    s = (rank + 0.5 + rng.uniform(-0.2, 0.2, n)) * step
    kind = np.where(rng.random(n) < TRUCK_SHARE, ActorKind.TRUCK, ActorKind.CAR)
    v = np.clip(rng.normal(URBAN_SPEED_MPS, 0.1 * URBAN_SPEED_MPS, n), 0.0, URBAN_SPEED_MPS)
    traffic = Traffic.create(lane, s, v, kind)
    info = {
        "network": f"{nx}x{ny} junctions (torus)",
        "lanes": n_lanes,
        "lane_km": round(float(length.sum()) / 1000, 1),
        "speed_kmh": 60,
        "mean_spacing_m": round(float(length.sum()) / n, 1),
        "trucks": int(np.sum(kind == ActorKind.TRUCK)),
    }
    return Workload(net, traffic, ew, info)


def _digest_update(h: Any, arrays: list[NDArray[Any]]) -> None:
    for c in arrays:
        h.update(np.ascontiguousarray(c).tobytes())


def _result_arrays(r: StepResult) -> list[NDArray[Any]]:
    return [getattr(r, f.name) for f in fields(r)]


def bench_one(n: int, ticks: int, numpy_ticks: int, seed: int, err: TextIO) -> dict[str, Any]:
    wl = grid(n, np.random.default_rng(seed))
    tr = wl.traffic
    warmup = 5
    times: list[float] = []
    changes = 0
    for tick in range(warmup + ticks):
        red = wl.red(tick)
        t0 = time.perf_counter()
        res = traffic_step(wl.net, tr, red, TICK_S, tick)
        t1 = time.perf_counter()
        if tick >= warmup:
            times.append((t1 - t0) * 1e3)
            changes += int(np.count_nonzero(res.lane_change))
    row: dict[str, Any] = {
        "n": n,
        "step_ms_p50": percentile(times, 50),
        "step_ms_p99": percentile(times, 99),
        "ticks": ticks,
    }
    print(f"  traffic n={n}: compiled step p50 {row['step_ms_p50']} ms, p99 {row['step_ms_p99']} ms", file=err)
    # Both implementations from copies of the same state over the same ticks, in alternating blocks
    # (compiled, numpy, compiled, ...: a busy machine slows both alike, and neither runs with the
    # other's data in its caches); the results must agree bit for bit.
    t_start = warmup + ticks
    impls = (("compiled", traffic_step), ("numpy", traffic_step_numpy))
    per_impl: dict[str, list[float]] = {name: [] for name, _ in impls}
    for _round in range(ROUNDS):
        digests = []
        for name, fn in impls:
            state = tr.copy()
            h = hashlib.sha256()
            for tick in range(t_start, t_start + numpy_ticks):
                red = wl.red(tick)
                t0 = time.perf_counter()
                res = fn(wl.net, state, red, TICK_S, tick)
                per_impl[name].append((time.perf_counter() - t0) * 1e3)
                _digest_update(h, _result_arrays(res))  # untimed; each tick's results, then the end state
                del res
            _digest_update(h, [getattr(state, f.name) for f in fields(state)])
            digests.append(h.hexdigest())
        if digests[0] != digests[1]:
            raise RuntimeError(f"numpy traffic step disagrees with the compiled one at n={n}")
    ours = float(np.median(per_impl["compiled"]))
    base = float(np.median(per_impl["numpy"]))
    row["numpy_ms_p50"] = round(base, 3)
    row["compiled_ms_p50_same_state"] = round(ours, 3)
    row["numpy_speedup"] = round(base / ours, 1)
    row["numpy_ticks"] = numpy_ticks
    row["lane_changes_per_tick"] = round(changes / ticks, 1)
    row["mean_speed_mps"] = round(float(np.mean(tr.v_mps)), 2)
    row["workload"] = wl.info
    print(f"  traffic n={n}: numpy {base:.2f} ms/tick -> speed-up {row['numpy_speedup']}x", file=err)
    return row


def _table(rows: list[dict[str, Any]]) -> str:
    head = ("n", "step p50 ms", "step p99 ms", "numpy p50 ms", "numpy x", "lane changes/tick", "mean v m/s")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vals = (
            r["n"],
            r["step_ms_p50"],
            r["step_ms_p99"],
            r["numpy_ms_p50"],
            r["numpy_speedup"],
            r["lane_changes_per_tick"],
            r["mean_speed_mps"],
        )
        lines.append("| " + " | ".join(str(v) for v in vals) + " |")
    return "\n".join(lines)


def main(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    ns: list[int] = list(args.n)
    if args.quick:
        ns = [min(ns)]
    ticks = args.ticks if args.ticks is not None else (10 if args.quick else 200)
    if ticks < 1:
        print("--ticks must be >= 1", file=err)
        return EXIT_BAD_INPUT
    numpy_ticks = min(ticks, 20)
    t_start = time.perf_counter()
    rows = []
    for n in ns:
        print(f"bench traffic: n={n} ({ticks} ticks, numpy {numpy_ticks})", file=err, flush=True)
        rows.append(bench_one(n, ticks, numpy_ticks, args.seed, err))
    meta = {
        "bench": "traffic",
        "tick_s": TICK_S,
        "seed": args.seed,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "elapsed_s": round(time.perf_counter() - t_start, 1),
    }
    if args.json:
        doc = {**meta, **rows[0]} if len(rows) == 1 else {**meta, "runs": rows}
        print(json.dumps(doc), file=out)
    else:
        print(_table(rows), file=out)
        print(
            f"\nstep = compiled traffic_step median / p99 over {ticks} ticks after 5 warm-up ticks; numpy x = "
            f"numpy step median / compiled median over the same {numpy_ticks} ticks from the same state, "
            f"{ROUNDS} alternating blocks each (results identical bit for bit); ms per {TICK_S * 1000:.0f} ms tick",
            file=out,
        )
    return EXIT_OK
