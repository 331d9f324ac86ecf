"""``v2x bench core``: per-tick fan-out and conflict detection against two baselines.

Workloads follow 3GPP TR 36.885 (urban grid and freeway) with TR 37.885 vehicle sizes. The area grows
with N at the TR's density, so the number of neighbours per vehicle stays fixed and the cost of a
good spatial index grows linearly. Every tick each vehicle sends one BSM (10 Hz at a 100 ms tick) over
a PC5-like link; then every pair in conflict within 5 s is found (CA model).

Baselines get the *same* data and the same narrow phase (the compiled loss/delay draws and bundling,
the compiled TTC/PET/DRAC), only the broad phase differs: naive all-pairs distances in numpy
(row-chunked), or a shapely STRtree query; they hand their candidate pairs to the narrow phase as
arrays. Their outputs are checked to be identical to ours, field by field.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np
from numpy.typing import NDArray

from v2x.argtypes import EXIT_BAD_INPUT, EXIT_OK
from v2x.core import ActorKind, ChannelTables, Conflicts, Deliveries, WorldState, detect_conflicts
from v2x.core._conflict import max_reach_m
from v2x.core._fanout import deliver_pairs
from v2x.impair import TABLE_KNOTS, TABLE_TOP_QUANTILE
from v2x.sim.metrics import percentile
from v2x.units import kph_to_mps

TICK_S = 0.1
HORIZON_S = 5.0
PC5_RANGE_M = 300.0
NAIVE_MAX_N = 20_000  # all-pairs baseline is measured up to here (fewer ticks)
STRTREE_MAX_N = 20_000

# TR 36.885 / 37.885 anchors (../shared/brief/SCENARIOS.md)
URBAN_BLOCK_M = (433.0, 250.0)
URBAN_LANES_PER_DIR = 2
URBAN_SPEED_MPS = kph_to_mps(60)
FREEWAY_LANES_PER_DIR = 3
FREEWAY_LANE_M = 4.0
FREEWAY_SPEED_MPS = kph_to_mps(140)
LANE_M = 3.5
HEADWAY_S = 2.5
CAR = (5.0, 2.0)
TRUCK = (13.0, 2.6)
TRUCK_SHARE = 0.1


def _bench_tables(max_range_m: float) -> ChannelTables:
    """BenchPC5 as data, tabulated as ``NetworkLink.channel_tables`` does: PRR at ``TABLE_KNOTS`` (4097)
    distances over the range, delay inverse CDF at as many quantiles (the exponential's last knot at
    ``TABLE_TOP_QUANTILE``, 1 - 1e-9)."""
    step = max_range_m / (TABLE_KNOTS - 1)
    d = np.arange(TABLE_KNOTS) * step
    q = np.linspace(0.0, 1.0, TABLE_KNOTS)
    q[-1] = TABLE_TOP_QUANTILE
    return ChannelTables(step, 0.98 / (1.0 + np.exp((d - 250.0) / 20.0)), 0.002 - 0.003 * np.log1p(-q))


_TABLES: dict[float, ChannelTables] = {}


class BenchPC5:
    """PC5-like stand-in link for the benchmark (the real profiles live in v2x.impair).

    Packet reception ratio falls off logistically around 250 m; delay 2 ms + exponential(3 ms). Given as
    callables and as tables (``channel_tables``, what the compiled fan-out uses).
    """

    name = "bench-pc5"

    def __init__(self, max_range_m: float = PC5_RANGE_M) -> None:
        self.max_range_m = max_range_m

    def channel_tables(self) -> ChannelTables:
        if self.max_range_m not in _TABLES:
            _TABLES[self.max_range_m] = _bench_tables(self.max_range_m)
        return _TABLES[self.max_range_m]

    def delivery_probability(self, distance_m: NDArray[np.float64]) -> NDArray[np.float64]:
        p: NDArray[np.float64] = 0.98 / (1.0 + np.exp((distance_m - 250.0) / 20.0))
        return p

    def sample_delay_s(self, rng: np.random.Generator, distance_m: NDArray[np.float64]) -> NDArray[np.float64]:
        return 0.002 + rng.exponential(0.003, size=distance_m.shape)


@dataclass
class Workload:
    """Vehicles on lanes: position along the lane, lane geometry, speed. Moved each tick."""

    name: str
    world: WorldState
    slots: NDArray[np.intp]
    ox: NDArray[np.float64]  # lane origin
    oy: NDArray[np.float64]
    ux: NDArray[np.float64]  # lane direction
    uy: NDArray[np.float64]
    lane_len: NDArray[np.float64]
    s: NDArray[np.float64]  # position along the lane
    v: NDArray[np.float64]
    a: NDArray[np.float64]
    rng: np.random.Generator
    info: dict[str, Any] = field(default_factory=dict)

    def step(self, dt: float) -> None:
        """Advance along lanes (wrap at the lane end), jitter accelerations, write to the world."""
        self.a = np.clip(self.a + self.rng.normal(0.0, 0.3, len(self.a)), -3.0, 2.0)
        self.v = np.clip(self.v + self.a * dt, 0.0, None)
        self.s = np.mod(self.s + self.v * dt, self.lane_len)
        self._write()

    def _write(self) -> None:
        x = self.ox + self.ux * self.s
        y = self.oy + self.uy * self.s
        self.world.set_state(
            self.slots,
            x,
            y,
            self.ux * self.v,
            self.uy * self.v,
            self.ux * self.a,
            self.uy * self.a,
            np.arctan2(self.uy, self.ux),
        )


def _make_world(n: int, rng: np.random.Generator) -> tuple[WorldState, NDArray[np.intp]]:
    w = WorldState(capacity=n)
    truck = rng.random(n) < TRUCK_SHARE
    for k in range(n):
        if truck[k]:
            w.add(f"v{k}", ActorKind.TRUCK, *TRUCK)
        else:
            w.add(f"v{k}", ActorKind.CAR, *CAR)
    return w, w.active_slots()


def _place(
    lanes: list[tuple[float, float, float, float, float]],
    n: int,
    speed: float,
    rng: np.random.Generator,
    name: str,
    info: dict[str, Any],
) -> Workload:
    """lanes: (ox, oy, ux, uy, length). Vehicles drop uniformly over total lane length."""
    arr = np.array(lanes, dtype=np.float64)
    lengths = arr[:, 4]
    lane = np.sort(rng.choice(len(arr), size=n, p=lengths / lengths.sum()))
    world, slots = _make_world(n, rng)
    # TR 37.885 gaps: max(2 m, exponential with mean 2 s x speed) bumper to bumper, scaled to fit the lane.
    pos = np.empty(n)
    for k in np.unique(lane):
        idx = np.flatnonzero(lane == k)
        gaps = np.maximum(2.0, rng.exponential(2.0 * speed, len(idx))) + world.length_m[slots[idx]]
        total = gaps.sum()
        scale = min(1.0, lengths[k] / total)
        pos[idx] = (np.cumsum(gaps) * scale + rng.uniform(0.0, lengths[k])) % lengths[k]
    wl = Workload(
        name,
        world,
        slots,
        arr[lane, 0],
        arr[lane, 1],
        arr[lane, 2],
        arr[lane, 3],
        lengths[lane],
        pos,
        np.clip(rng.normal(speed, 0.1 * speed, n), 0.0, None),
        rng.normal(0.0, 0.5, n),
        rng,
        info,
    )
    wl._write()
    return wl


def urban(n: int, rng: np.random.Generator) -> Workload:
    """TR 36.885 urban grid: 433 x 250 m blocks, 2 lanes per direction, 60 km/h, spacing 2.5 s x v."""
    bx, by = URBAN_BLOCK_M
    spacing = HEADWAY_S * URBAN_SPEED_MPS
    lane_m_per_block = 2 * URBAN_LANES_PER_DIR * (bx + by)
    blocks = max(1.0, n * spacing / lane_m_per_block)
    nx = max(1, round(math.sqrt(blocks * by / bx)))
    ny = max(1, math.ceil(blocks / nx))
    width_m, height_m = nx * bx, ny * by
    lanes: list[tuple[float, float, float, float, float]] = []
    offs = [LANE_M * (k + 0.5) for k in range(URBAN_LANES_PER_DIR)]
    for j in range(ny + 1):  # east-west streets
        y = j * by
        for o in offs:
            lanes.append((0.0, y - o, 1.0, 0.0, width_m))
            lanes.append((width_m, y + o, -1.0, 0.0, width_m))
    for i in range(nx + 1):  # north-south streets
        x = i * bx
        for o in offs:
            lanes.append((x + o, 0.0, 0.0, 1.0, height_m))
            lanes.append((x - o, height_m, 0.0, -1.0, height_m))
    info = {
        "blocks": f"{nx}x{ny}",
        "area_km2": round(width_m * height_m / 1e6, 2),
        "speed_kmh": 60,
        "mean_spacing_m": round(spacing, 1),
    }
    return _place(lanes, n, URBAN_SPEED_MPS, rng, "urban", info)


def freeway(n: int, rng: np.random.Generator) -> Workload:
    """TR 36.885 freeway: 3 lanes per direction, 4 m lanes, 140 km/h, spacing 2.5 s x v, wrap-around."""
    spacing = HEADWAY_S * FREEWAY_SPEED_MPS
    length = max(2000.0, n * spacing / (2 * FREEWAY_LANES_PER_DIR))
    lanes: list[tuple[float, float, float, float, float]] = []
    for k in range(FREEWAY_LANES_PER_DIR):
        o = FREEWAY_LANE_M * (k + 0.5)
        lanes.append((0.0, -o, 1.0, 0.0, length))
        lanes.append((length, o, -1.0, 0.0, length))
    info = {"length_km": round(length / 1000, 1), "speed_kmh": 140, "mean_spacing_m": round(spacing, 1)}
    return _place(lanes, n, FREEWAY_SPEED_MPS, rng, "freeway", info)


# -- the three implementations (same narrow phase, different broad phase) ---------------------------


def _fanout_from_pairs(
    world: WorldState,
    tx: NDArray[np.intp],
    rx: NDArray[np.intp],
    senders: NDArray[np.intp],
    tx_time: NDArray[np.float64],
    link: BenchPC5,
    rng: np.random.Generator,
) -> Deliveries:
    """The shared narrow phase: the compiled draws and bundling for candidate (tx, receiver) pairs."""
    return deliver_pairs(world, senders, tx_time, tx, rx, link, rng)


def naive_fanout(
    world: WorldState, senders: NDArray[np.intp], tx_time: NDArray[np.float64], link: BenchPC5, rng: np.random.Generator
) -> Deliveries:
    slots = world.active_slots()
    x, y = world.x[slots], world.y[slots]
    r2 = link.max_range_m**2
    tx_parts, rx_parts = [], []
    chunk = max(1, 4_000_000 // max(len(slots), 1))
    for start in range(0, len(senders), chunk):
        s = senders[start : start + chunk]
        d2 = (world.x[s][:, None] - x[None, :]) ** 2 + (world.y[s][:, None] - y[None, :]) ** 2
        q, m = np.nonzero(d2 <= r2)
        keep = slots[m] != s[q]
        tx_parts.append(q[keep] + start)
        rx_parts.append(slots[m[keep]])
    return _fanout_from_pairs(
        world,
        np.concatenate(tx_parts).astype(np.intp),
        np.concatenate(rx_parts).astype(np.intp),
        senders,
        tx_time,
        link,
        rng,
    )


def naive_pairs(world: WorldState, radius: float) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    slots = world.active_slots()
    x, y = world.x[slots], world.y[slots]
    n = len(slots)
    pi_parts, pj_parts = [], []
    chunk = max(1, 4_000_000 // max(n, 1))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        d2 = (x[start:stop, None] - x[None, :]) ** 2 + (y[start:stop, None] - y[None, :]) ** 2
        a, b = np.nonzero(d2 <= radius * radius)
        a = a + start
        keep = a < b
        pi_parts.append(slots[a[keep]])
        pj_parts.append(slots[b[keep]])
    return np.concatenate(pi_parts).astype(np.intp), np.concatenate(pj_parts).astype(np.intp)


def strtree_fanout(
    world: WorldState, senders: NDArray[np.intp], tx_time: NDArray[np.float64], link: BenchPC5, rng: np.random.Generator
) -> Deliveries:
    import shapely

    slots = world.active_slots()
    pts = shapely.points(world.x[slots], world.y[slots])
    tree = shapely.STRtree(pts)
    q, m = tree.query(
        shapely.points(world.x[senders], world.y[senders]), predicate="dwithin", distance=link.max_range_m
    )
    rx = slots[m]
    keep = rx != senders[q]
    return _fanout_from_pairs(world, q[keep].astype(np.intp), rx[keep].astype(np.intp), senders, tx_time, link, rng)


def strtree_pairs(world: WorldState, radius: float) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    import shapely

    slots = world.active_slots()
    pts = shapely.points(world.x[slots], world.y[slots])
    tree = shapely.STRtree(pts)
    a, b = tree.query(pts, predicate="dwithin", distance=radius)
    keep = a < b
    return slots[a[keep]].astype(np.intp), slots[b[keep]].astype(np.intp)


# -- timing ---------------------------------------------------------------------------------------


@dataclass
class TickTimes:
    fanout_ms: list[float] = field(default_factory=list)
    conflict_ms: list[float] = field(default_factory=list)
    deliveries: list[int] = field(default_factory=list)
    candidates: list[int] = field(default_factory=list)
    conflicts: list[int] = field(default_factory=list)

    def total_p50(self) -> float:
        return float(np.median(np.add(self.fanout_ms, self.conflict_ms)))


def ours(
    world: WorldState,
    senders: NDArray[np.intp],
    tx_time: NDArray[np.float64],
    rng: np.random.Generator,
    times: TickTimes | None = None,
) -> tuple[Deliveries, Conflicts]:
    from v2x.core import fan_out_broadcast

    link = BenchPC5()
    return _timed(
        lambda: fan_out_broadcast(world, senders, tx_time, link, rng),
        lambda: detect_conflicts(world, horizon_s=HORIZON_S, model="ca"),
        times,
    )


def _timed(
    fan_out: Callable[[], Deliveries], conflicts: Callable[[], Conflicts], times: TickTimes | None
) -> tuple[Deliveries, Conflicts]:
    """One tick: the fan-out, then conflict detection, each timed into ``times`` (if given)."""
    t0 = time.perf_counter()
    d = fan_out()
    t1 = time.perf_counter()
    c = conflicts()
    t2 = time.perf_counter()
    if times is not None:
        times.fanout_ms.append((t1 - t0) * 1e3)
        times.conflict_ms.append((t2 - t1) * 1e3)
    return d, c


def _baseline(kind: str) -> Callable[..., tuple[Deliveries, Conflicts]]:
    fan = naive_fanout if kind == "naive" else strtree_fanout
    pairs_fn = naive_pairs if kind == "naive" else strtree_pairs

    def run(
        world: WorldState,
        senders: NDArray[np.intp],
        tx_time: NDArray[np.float64],
        rng: np.random.Generator,
        times: TickTimes | None = None,
    ) -> tuple[Deliveries, Conflicts]:
        link = BenchPC5()

        def conflicts() -> Conflicts:
            pairs = pairs_fn(world, 2.0 * max_reach_m(world, HORIZON_S, "ca"))
            return detect_conflicts(world, horizon_s=HORIZON_S, model="ca", pairs=pairs)

        return _timed(lambda: fan(world, senders, tx_time, link, rng), conflicts, times)

    return run


def ours_repeats(baseline_ticks: int) -> int:
    """Calls of ours timed on the baselines' state."""
    return max(10, baseline_ticks)


def _digest(result: tuple[Deliveries, Conflicts]) -> str:
    """SHA-256 over every output field and counter (nan canonicalised), to compare results exactly."""
    d, c = result
    h = hashlib.sha256(f"{d.candidates},{d.dropped}".encode())
    columns = [getattr(d, f) for f in ("tx_index", "receiver", "delivery_time_s")]
    columns += [getattr(c, f) for f in Conflicts.__dataclass_fields__]
    for col in columns:
        x = np.ascontiguousarray(col)
        if x.dtype.kind == "f":
            x = np.where(np.isnan(x), np.nan, x)
        h.update(f"{x.dtype.str}{x.shape}".encode())
        h.update(x.tobytes())
    return h.hexdigest()


def bench_one(scenario: str, n: int, ticks: int, seed: int, baseline_ticks: int, err: TextIO) -> dict[str, Any]:
    make = urban if scenario == "urban" else freeway
    wl = make(n, np.random.default_rng(seed))
    world = wl.world
    senders = wl.slots
    rng_tx = np.random.default_rng(seed + 1)
    times = TickTimes()
    tx_time = np.zeros(len(senders))
    # Warm-up tick (allocations, imports), then timed ticks.
    for tick in range(ticks + 1):
        wl.step(TICK_S)
        tx_time = tick * TICK_S + rng_tx.uniform(0.0, TICK_S, len(senders))
        rec = TickTimes()
        d, c = ours(world, senders, tx_time, np.random.default_rng(seed + tick), rec)
        if tick > 0:
            times.fanout_ms += rec.fanout_ms
            times.conflict_ms += rec.conflict_ms
            times.deliveries.append(len(d))
            times.candidates.append(d.candidates)
            times.conflicts.append(len(c))
    # Peak memory of one tick of ours (tracemalloc sees numpy allocations), untimed.
    tracemalloc.start()
    ours(world, senders, tx_time, np.random.default_rng(seed))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    row: dict[str, Any] = {
        "scenario": scenario,
        "n": n,
        "fanout_ms_p50": percentile(times.fanout_ms, 50, digits=2),
        "fanout_ms_p99": percentile(times.fanout_ms, 99, digits=2),
        "conflict_ms_p50": percentile(times.conflict_ms, 50, digits=2),
        "conflict_ms_p99": percentile(times.conflict_ms, 99, digits=2),
        "total_ms_p50": round(times.total_p50(), 2),
        "naive_speedup": None,
        "strtree_speedup": None,
        "peak_mib": round(peak / 2**20, 1),
        "receivers_per_tx": round(float(np.mean(times.candidates)) / n, 1),
        "deliveries_per_tick": int(np.mean(times.deliveries)),
        "conflicts_per_tick": int(np.mean(times.conflicts)),
        "ticks": ticks,
        "workload": wl.info,
    }
    print(
        f"  {scenario} n={n}: ours fan-out p50 {row['fanout_ms_p50']} ms, conflict p50 {row['conflict_ms_p50']} ms",
        file=err,
        flush=True,
    )
    # Baselines on the same final state, same rng seeds; outputs must match ours exactly. Ours is timed
    # again on that state (more repeats than the baselines: it is cheap, and a median over a handful of
    # 10 ms calls moves with every hiccup of a shared machine). Results are compared by digest so that
    # no tick's output is kept alive while another is timed (live outputs make the next call's fresh
    # pages cost several ms, in ours and the baselines alike).
    ref = _digest(ours(world, senders, tx_time, np.random.default_rng(seed)))
    ours_t = TickTimes()
    for _ in range(ours_repeats(baseline_ticks)):
        ours(world, senders, tx_time, np.random.default_rng(seed), ours_t)
    for kind, max_n in (("naive", NAIVE_MAX_N), ("strtree", STRTREE_MAX_N)):
        if n > max_n:
            continue
        fn = _baseline(kind)
        fn(world, senders, tx_time, np.random.default_rng(seed))  # warm-up (loads compiled kernels), untimed
        bt = TickTimes()
        for _ in range(baseline_ticks):
            same = _digest(fn(world, senders, tx_time, np.random.default_rng(seed), bt)) == ref
            if not same:
                raise RuntimeError(f"{kind} baseline disagrees with the core at n={n}")
        speedup = bt.total_p50() / ours_t.total_p50()
        row[f"{kind}_speedup"] = round(speedup, 1)
        row[f"{kind}_ms_p50"] = round(bt.total_p50(), 1)
        print(
            f"  {scenario} n={n}: {kind} {bt.total_p50():.1f} ms/tick -> speed-up {speedup:.1f}x", file=err, flush=True
        )
    row["ours_ms_p50_same_state"] = round(ours_t.total_p50(), 2)
    return row


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        "scenario",
        "n",
        "fan-out p50",
        "fan-out p99",
        "conflict p50",
        "conflict p99",
        "total p50",
        "naive x",
        "STRtree x",
        "peak MiB",
        "rx/tx",
        "deliv/tick",
        "conflicts",
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vals = (
            r["scenario"],
            r["n"],
            r["fanout_ms_p50"],
            r["fanout_ms_p99"],
            r["conflict_ms_p50"],
            r["conflict_ms_p99"],
            r["total_ms_p50"],
            "-" if r["naive_speedup"] is None else r["naive_speedup"],
            "-" if r["strtree_speedup"] is None else r["strtree_speedup"],
            r["peak_mib"],
            r["receivers_per_tx"],
            r["deliveries_per_tick"],
            r["conflicts_per_tick"],
        )
        lines.append("| " + " | ".join(str(v) for v in vals) + " |")
    return "\n".join(lines)


def main(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    ns: list[int] = list(args.n)
    if args.quick:
        ns = [n for n in ns if n <= 5000] or [min(ns)]
    ticks = args.ticks if args.ticks is not None else (5 if args.quick else 20)
    baseline_ticks = 1 if args.quick else 3
    scenarios = ["urban", "freeway"] if args.scenario == "both" else [args.scenario]
    if ticks < 1:
        print("--ticks must be >= 1", file=err)
        return EXIT_BAD_INPUT
    rows = []
    t_start = time.perf_counter()
    for scenario in scenarios:
        for n in ns:
            print(f"bench core: {scenario} n={n} ({ticks} ticks)", file=err, flush=True)
            rows.append(bench_one(scenario, n, ticks, args.seed, baseline_ticks, err))
    elapsed = time.perf_counter() - t_start
    meta = {
        "bench": "core",
        "tick_s": TICK_S,
        "horizon_s": HORIZON_S,
        "model": "ca",
        "pc5_range_m": PC5_RANGE_M,
        "baseline_ticks": baseline_ticks,
        "baselines_up_to_n": {"naive": NAIVE_MAX_N, "strtree": STRTREE_MAX_N},
        "seed": args.seed,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "elapsed_s": round(elapsed, 1),
    }
    if args.json:
        print(json.dumps({**meta, "results": rows}), file=out)
    else:
        print(_table(rows), file=out)
        print(
            f"\nspeed-up = baseline (fan-out + conflict) median over {baseline_ticks} tick(s) / ours median over "
            f"{ours_repeats(baseline_ticks)}, on the same state; times in ms per {TICK_S * 1000:.0f} ms tick; "
            f"range {PC5_RANGE_M:.0f} m, horizon {HORIZON_S:.0f} s; {elapsed:.0f} s total",
            file=out,
        )
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(1)
