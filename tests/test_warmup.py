"""The warm-up before a run (v2x/run/warmup.py): it compiles exactly the kernels a run's world uses, each
step the kernels it names, and its notice counts the steps as they finish."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from v2x.core import ActorKind, WorldState, detect_conflicts
from v2x.core import _conflict as conflict_module
from v2x.run import warmup

ROOT = Path(__file__).resolve().parents[1]

# Run each step in a fresh interpreter and list the kernels the core's API calls (numba twins) that each
# one compiled or loaded from the cache.
_PROBE = """
import json
from v2x.core import _conflict, _fanout, _grid, _heard, _fleet_wire, _scan
from v2x.core._jit import twins
from v2x.run.warmup import COVERAGE_STEP, STEPS, run_step

# the kernels the core's Python API calls (their callees are compiled with them), as compiled twins
compiled = twins("v2x.core._kernels")
entry = {
    n: compiled[n]
    for m in (_grid, _fanout, _conflict, _heard, _fleet_wire, _scan)
    for n, f in vars(m).items()
    if hasattr(f, "__v2x_kernel__") and f.__module__ == "v2x.core._kernels"
}

def loaded():
    return {n for n, d in entry.items() if d.signatures}

seen = loaded()
out = {}
for step in (*STEPS, COVERAGE_STEP):
    run_step(step.name)
    now = loaded()
    out[step.name] = sorted(now - seen)
    seen = now
print(json.dumps(out))
"""

# Kernels only large worlds (or paths a run does not take) use: a run's warm-up must not compile them.
NOT_FOR_A_RUN = {"query_kernel", "sort_runs", "pairs_delivery_kernel", "canonical_kernel", "conflict_order"}


def test_each_step_compiles_the_kernels_it_names_and_no_others() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, env=env, timeout=600
    )
    by_step = json.loads(done.stdout.strip().splitlines()[-1])
    every = (*warmup.STEPS, warmup.COVERAGE_STEP)
    assert list(by_step) == [s.name for s in every]
    for step in every:
        assert set(by_step[step.name]) == set(step.kernels), step.name
    assert not NOT_FOR_A_RUN & {k for ks in by_step.values() for k in ks}


def test_the_notice_counts_every_step_once_in_order_of_finishing(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []
    monkeypatch.setattr(warmup, "run_step", ran.append)
    monkeypatch.setattr(warmup, "_compiled", lambda step: True)  # as on a cold cache
    lines: list[str] = []
    warmup.warm_up(lines.append, processes=1)
    n = len(warmup.STEPS)
    assert lines[0].startswith(f"compiling the core's numba kernels, {n} steps")
    assert lines[1:-1] == [f"[{k}/{n}] {s.what}: 0.0 s" for k, s in enumerate(warmup.STEPS, 1)]
    assert lines[-1].startswith("kernels compiled in ")
    assert ran == [s.name for s in warmup.STEPS]


def test_a_warm_cache_says_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []
    monkeypatch.setattr(warmup, "run_step", ran.append)
    monkeypatch.setattr(warmup, "_compiled", lambda step: False)
    lines: list[str] = []
    warmup.warm_up(lines.append, processes=1)
    assert lines == []
    assert ran == [s.name for s in warmup.STEPS]


def test_conflict_rows_sort_the_same_by_counting_sorts_and_by_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small worlds order the result rows with numpy's stable argsort, large ones with the compiled
    counting sorts: the same order (the outputs are bit for bit equal)."""
    rng = np.random.default_rng(3)
    n = 300
    w = WorldState(capacity=n)
    slots = w.add_many([f"v{k}" for k in range(n)], ActorKind.CAR, np.full(n, 4.5), np.full(n, 1.8))
    heading = rng.uniform(-np.pi, np.pi, n)
    speed = rng.uniform(0.0, 20.0, n)
    z = np.zeros(n)
    w.set_state(
        slots, rng.uniform(0, 150, n), rng.uniform(0, 150, n), speed * np.cos(heading), speed * np.sin(heading),
        z, z, heading,
    )  # fmt: skip
    by_numpy = detect_conflicts(w, horizon_s=5.0)
    assert len(by_numpy) > 50
    monkeypatch.setattr(conflict_module, "_COUNTING_SORT_ROWS", 0)
    by_counting = detect_conflicts(w, horizon_s=5.0)
    for name in (
        "i",
        "j",
        "kind",
        "ttc_s",
        "pet_s",
        "drac_mps2",
        "t_conflict_i_s",
        "t_conflict_j_s",
        "overlapping",
        "distance_m",
    ):
        a = np.asarray(getattr(by_numpy, name))
        b = np.asarray(getattr(by_counting, name))
        assert a.dtype == b.dtype, name
        assert a.tobytes() == b.tobytes(), name


def test_the_coverage_kernel_is_warmed_up_only_for_a_large_world_with_an_rsu_range(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A large world with an RSU that declares ``range_m`` (arterial's flows, an RSU added) runs the fan-out
    kernel that applies it, so its warm-up compiles that one too; a large world without (arterial) does not, a
    small world with one (tjw: 25 actors) compiles nothing."""
    from v2x.run.runner import warm_up_core
    from v2x.scenario import load_scenario
    from v2x.scenario.loader import SCENARIO_DIR

    text = (SCENARIO_DIR / "arterial.yaml").read_text()
    assert text.count("\nactors:\n") == 1
    covered = tmp_path / "arterial-rsu.yaml"
    covered.write_text(
        text.replace("\nactors:\n", "\nactors:\n  - {id: rsu1, kind: rsu, position: [0, -12], range_m: 300}\n")
    )
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(warmup, "warm_up", lambda report=None, *, extra=(): calls.append(tuple(s.name for s in extra)))
    for path in (covered, SCENARIO_DIR / "arterial.yaml", SCENARIO_DIR / "tjw.yaml"):
        warm_up_core([load_scenario(path)])
    assert calls == [("coverage",), ()]
