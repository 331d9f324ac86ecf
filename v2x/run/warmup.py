"""Compile (or load from numba's on-disk cache) the core's kernels before a run's first tick.

Only runs with a large world need this: a world of up to ``v2x.core.SMALL_WORLD`` actors (every shipped
scenario) runs the kernels interpreted and never waits for numba (see v2x/core/_jit.py). A run must not
compile inside a tick: compiling stalls the world past the lockstep retransmission timer,
which changes what the run counts. So every kernel a run's world uses is compiled first, on a two-car world,
one step per kernel family (:data:`STEPS`). When the cache is cold (the first run after installing or
upgrading: numba keys its cache by the source file's timestamp), the steps are split between this process
and one helper process (two cores compile at once; the helper writes numba's cache, this process then loads
from it), and each finished step is reported, so that the wait is neither silent nor longer than needed.

``python -m v2x.run.warmup STEP...`` runs the named steps and prints ``done STEP SECONDS`` after each (the
helper process).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["COVERAGE_STEP", "STEPS", "Step", "run_step", "warm_up"]


@dataclass(frozen=True)
class Step:
    name: str
    what: str  # what it compiles, for the progress notice
    kernels: tuple[str, ...]  # the kernels (of v2x.core._kernels) it compiles, with what they call


#: Every step a run's world needs, in the order they run in one process. ``grid`` comes first: it is the
#: cheapest, and whether it had to compile tells whether the cache is cold.
STEPS: tuple[Step, ...] = (
    Step("grid", "spatial grid", ("counting_order",)),
    Step("referee", "overlap referee", ("pairs_kernel",)),
    Step("motion", "motion model", ("motion_kernel",)),
    Step("broadcast", "broadcast fan-out", ("broadcast_kernel", "latency_ms_kernel")),
    Step("pairs", "conflict detection, given pairs", ("conflicts_of_pairs", "conflict_arrays", "pairs_kept")),
    Step("swept", "conflict detection, all pairs", ("conflicts_swept",)),
    Step("heard", "the fleet's table of who heard whom", ("heard_touching", "stamp_heard")),
    Step("scan", "the fleet's reading of BSM envelopes", ("scan_fields",)),
    Step("fleet", "the fleet's transmit", ("fleet_vehicle_fields", "bsm_envelopes")),
)
#: The fan-out where actors have ranges of their own (RSUs with ``range_m``): only a world with such an RSU
#: runs it, so it is warmed up only for one (``warm_up(extra=...)``).
COVERAGE_STEP = Step("coverage", "broadcast fan-out within RSUs' range_m", ("broadcast_kernel_ranged",))
#: The steps the helper process takes when the cache is cold (the rest stay in this process): about half of
#: the compile time each.
HELPER_STEPS = ("pairs", "swept")


def _two_cars() -> tuple[Any, Any, Any, Any]:
    import numpy as np

    from v2x.core import ActorKind, SpatialGrid, WorldState

    w = WorldState(capacity=8)
    a = w.add("a", ActorKind.CAR, 5.0, 2.0)
    b = w.add("b", ActorKind.CAR, 5.0, 2.0)
    z = np.zeros(2)
    slots = np.array([a, b], dtype=np.intp)
    w.set_state(slots, np.array([0.0, 20.0]), z, np.array([10.0, 0.0]), z, z, z, z)
    grid = SpatialGrid.build(w, 75.0)
    return w, grid, np.array([a], dtype=np.intp), np.array([b], dtype=np.intp)


def run_step(name: str) -> None:
    """Run the core's compiled path of one step (see :data:`STEPS`) on a two-car world."""
    from v2x.core import always_compiled

    with always_compiled():
        _run_step(name)


def _run_step(name: str) -> None:
    import numpy as np

    from v2x.core import (
        detect_conflicts,
        fan_out_addressed,
        fan_out_broadcast,
        fleet_vehicle_numbers,
        latencies_ms,
        overlapping_pairs,
        refreshed_envelopes,
        scan_messages,
        stamp_deliveries,
        touching_pairs_heard,
    )
    from v2x.impair import network_link
    from v2x.wire import testbed_pb2
    from v2x.wire.bsm_bytes import BsmStatics

    w, grid, tx, rx = _two_cars()  # builds the grid: the ``grid`` step
    if name == "referee":
        overlapping_pairs(w, grid)
    elif name == "motion":  # no pairs to evaluate: only the per-actor motion
        none = np.zeros(0, dtype=np.intp)
        detect_conflicts(w, horizon_s=6.0, pairs=(none, none))
    elif name == "broadcast":
        rng = np.random.default_rng(0)
        t0 = np.array([0.0])
        can_receive = np.ones(w.capacity, dtype=bool)
        d = fan_out_broadcast(w, tx, t0, network_link("pc5-sidelink-los"), rng, grid=grid, can_receive=can_receive)
        latencies_ms(d, t0, np.empty(len(d)), w.n_active)  # (the channel's latency store)
        fan_out_addressed(w, tx, t0, np.array([0], dtype=np.intp), rx, network_link("5g-uu-edge-sa"), rng)
    elif name == "coverage":  # (an RSU's range_m, v2x.sim.actors.pc5_coverage)
        can_receive = np.ones(w.capacity, dtype=bool)
        coverage = np.full(w.capacity, np.inf)
        coverage[rx] = 300.0
        t0 = np.array([0.0])
        link = network_link("pc5-sidelink-los")
        fan_out_broadcast(
            w, tx, t0, link, np.random.default_rng(0), grid=grid, can_receive=can_receive, range_m=coverage
        )
    elif name == "pairs":
        detect_conflicts(w, horizon_s=6.0, pairs=(tx, rx))
        detect_conflicts(w, horizon_s=6.0, pairs=(tx, rx), touch_within_s=3.0)  # (the fleet's FCW)
    elif name == "swept":
        detect_conflicts(w, horizon_s=6.0)
    elif name == "heard":  # (the fleet agent's, v2x.agents.fleet)
        table = np.zeros((2, 2), dtype=np.int32)
        touching_pairs_heard(w, table, np.arange(1), np.arange(1), 0, tx, rx, 3.0)
        one, zero = np.ones(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
        stamp_deliveries(table, one, zero, zero, zero, zero, one, 1)
    elif name == "scan":  # (the fleet agent's: a layout of one message with one varint field)
        kinds = np.array([[0, 1]], dtype=np.int8)
        scan_messages([b"\x08\x01"], kinds, np.zeros((1, 2), dtype=np.int64), np.array([[-1, 0]]), 1)
    elif name == "fleet":  # (the fleet agent's transmit: a vehicle read, an envelope of a two-byte static piece)
        fleet_vehicle_numbers(
            testbed_pb2.FleetInput(vehicles=[testbed_pb2.FleetVehicle(x_m=1.0)]).SerializeToString(), 1
        )
        statics = BsmStatics(b"\x0a\x00", np.array([2, 0, 0, 0, 0, 0, 0, 0, 0, 0], dtype=np.int32).tobytes())
        zero, motion, pc5 = np.zeros(1, dtype=np.int64), np.zeros((5, 1), dtype=np.int64), testbed_pb2.LINK_PC5
        refreshed_envelopes([statics], zero, zero, 0, motion, np.zeros(1), zero, tick=0, tx_time_us=0, link=pc5)
    elif name != "grid":
        raise ValueError(f"no warm-up step {name!r}")


def _compiled(step: Step) -> bool:
    """Whether numba compiled (rather than loaded from its cache) any kernel of ``step`` in this process."""
    from v2x.core._jit import twins

    compiled = twins("v2x.core._kernels")
    return any(compiled[k].stats.cache_misses for k in step.kernels)


def warm_up(
    report: Callable[[str], None] | None = None, *, processes: int | None = None, extra: Sequence[Step] = ()
) -> None:
    """Run every step of :data:`STEPS`, then those of ``extra`` (such as :data:`COVERAGE_STEP`). ``report`` (if
    given) is told, when the cache turns out to be cold, what is being compiled, each step as it finishes
    ("[3/9] broadcast fan-out: 4.2 s") and the total; with a warm cache it hears nothing. ``processes``: how
    many processes compile at once on a cold cache (default: 2 if the machine has two cores or more, else 1)."""
    started = time.monotonic()
    all_steps = (*STEPS, *extra)
    steps = {s.name: s for s in all_steps}
    n = len(all_steps)
    lock = threading.Lock()
    done: list[str] = []
    held: list[tuple[str, float]] = []  # finished before the notice that compiling has begun
    announced = False

    def finished(name: str, seconds: float) -> None:
        with lock:
            if not announced:
                held.append((name, seconds))
                return
            done.append(name)
            if report is not None:
                report(f"[{len(done)}/{n}] {steps[name].what}: {seconds:.1f} s")

    if processes is None:
        processes = 2 if (os.cpu_count() or 1) >= 2 else 1
    helper_steps = list(HELPER_STEPS) if processes > 1 else []
    # The helper starts at once (numba's start-up overlaps this process's first step); with a warm cache
    # it is stopped before it has done anything.
    helper = _Helper(helper_steps, finished) if helper_steps else None
    t0 = time.monotonic()
    run_step(STEPS[0].name)
    if not _compiled(STEPS[0]):
        if helper is not None:
            helper.stop()
        for step in all_steps[1:]:  # a warm cache: every step loads in milliseconds
            run_step(step.name)
        return
    if report is not None:
        how = f"{n} steps in 2 processes" if helper_steps else f"{n} steps"
        report(f"compiling the core's numba kernels, {how} (first run after installing; cached afterwards)")
    with lock:
        announced = True
    finished(STEPS[0].name, time.monotonic() - t0)
    for name, seconds in held:
        finished(name, seconds)
    for step in all_steps[1:]:
        if step.name in helper_steps:
            continue
        t0 = time.monotonic()
        run_step(step.name)
        finished(step.name, time.monotonic() - t0)
    if helper is not None:
        helper.join()
    for name in helper_steps:  # load what the helper compiled (or compile it here if it could not)
        t0 = time.monotonic()
        run_step(name)
        if name not in done:
            finished(name, time.monotonic() - t0)
    if report is not None:
        report(f"kernels compiled in {time.monotonic() - started:.1f} s")


class _Helper:
    """``python -m v2x.run.warmup STEP...`` in a child process, reporting each step it finishes."""

    def __init__(self, names: Sequence[str], finished: Callable[[str, float], None]) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "v2x.run.warmup", *names],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._names = set(names)
        self._finished = finished
        self._stopped = False
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "done" and parts[1] in self._names and not self._stopped:
                self._finished(parts[1], float(parts[2]))
        self._proc.wait()

    def join(self) -> None:
        self._thread.join()

    def stop(self) -> None:
        self._stopped = True
        self._proc.kill()
        self._thread.join()


def main(argv: Sequence[str]) -> int:
    for name in argv:
        t0 = time.monotonic()
        run_step(name)
        print(f"done {name} {time.monotonic() - t0:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
