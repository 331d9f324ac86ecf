"""Small worlds run the core's kernels interpreted, large ones compiled (v2x/core/_jit.py): both ways give
the same results bit for bit, and a run of a small world never imports numba."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from v2x.core import (
    SMALL_WORLD,
    ActorKind,
    WorldState,
    always_compiled,
    detect_conflicts,
    fan_out_addressed,
    fan_out_broadcast,
    overlapping_pairs,
)
from v2x.core._jit import compiled, jit, kernel
from v2x.core._kernels import motion_kernel
from v2x.impair import network_link

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def _world(rng: np.random.Generator, n: int) -> WorldState:
    """A crowded random world: standing and moving actors, boxes along or across their velocity, some
    overlapping now, some on the same spot."""
    w = WorldState(capacity=n + 3)
    kinds = [ActorKind.CAR, ActorKind.TRUCK, ActorKind.PEDESTRIAN]
    slots = np.array(
        [w.add(f"a{k}", kinds[k % 3], float(rng.uniform(0.5, 12)), float(rng.uniform(0.5, 2.6))) for k in range(n)],
        dtype=np.intp,
    )
    pos = rng.uniform(-60, 60, (n, 2))
    pos[1] = pos[0]  # two actors on the same spot
    heading = rng.uniform(-np.pi, np.pi, n)
    speed = rng.uniform(0, 25, n) * (rng.random(n) > 0.2)
    acc = rng.uniform(-7, 3, n) * (rng.random(n) > 0.3)
    drift = heading + rng.normal(0, 0.2, n)
    w.set_state(
        slots, pos[:, 0], pos[:, 1], speed * np.cos(drift), speed * np.sin(drift), acc * np.cos(drift),
        acc * np.sin(drift), heading, pos_sigma_m=rng.uniform(0, 3, n),
    )  # fmt: skip
    return w


def _same(a: object, b: object) -> None:
    fields = [f for f in vars(a) if not f.startswith("_")]
    assert fields
    for f in fields:
        x, y = getattr(a, f), getattr(b, f)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=f)
            assert x.dtype == y.dtype, f
        else:
            assert x == y and type(x) is type(y), f


@pytest.mark.parametrize("seed", range(12))
def test_interpreted_and_compiled_kernels_agree_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, SMALL_WORLD + 1))
    w = _world(rng, n)
    slots = w.active_slots()
    host = np.full(n - 1, slots[0], dtype=np.intp)
    found = 0
    for model in ("cv", "ca"):
        for pairs in (None, (host, slots[1:])):
            small = detect_conflicts(w, horizon_s=6.0, model=model, pairs=pairs, max_pet_s=2.0)
            with always_compiled():
                big = detect_conflicts(w, horizon_s=6.0, model=model, pairs=pairs, max_pet_s=2.0)
            np.testing.assert_array_equal(small.i, big.i)
            for f in ("j", "kind", "ttc_s", "pet_s"):
                np.testing.assert_array_equal(getattr(small, f), getattr(big, f), err_msg=f)
            found += len(small)
    assert found > 0  # the worlds are crowded enough to have conflicts
    np.testing.assert_array_equal(overlapping_pairs(w)[0], _compiled_call(overlapping_pairs, w)[0])
    np.testing.assert_array_equal(overlapping_pairs(w)[1], _compiled_call(overlapping_pairs, w)[1])
    times = rng.uniform(0, 1, n)
    coverage = np.full(w.capacity, np.inf)
    coverage[slots[:3]] = rng.uniform(20.0, 80.0, 3)  # three "RSUs" with a range of their own
    for name in ("pc5-sidelink-los", "pc5-sidelink-urban"):
        link = network_link(name)
        for range_m in (None, coverage):
            a = fan_out_broadcast(w, slots, times, link, np.random.default_rng(seed), range_m=range_m)
            with always_compiled():
                b = fan_out_broadcast(w, slots, times, link, np.random.default_rng(seed), range_m=range_m)
            _same(a, b)
    dest = slots[::-1].copy()
    uu = network_link("5g-uu-edge-sa")
    idx = np.arange(n, dtype=np.intp)
    a = fan_out_addressed(w, slots, times, idx, dest, uu, np.random.default_rng(seed))
    with always_compiled():
        b = fan_out_addressed(w, slots, times, idx, dest, uu, np.random.default_rng(seed))
    _same(a, b)


def _compiled_call(fn: Callable[..., T], *args: Any) -> T:
    with always_compiled():
        return fn(*args)


def test_the_size_of_the_world_chooses_the_way() -> None:
    assert kernel(motion_kernel, SMALL_WORLD) is not compiled(motion_kernel)
    assert kernel(motion_kernel, SMALL_WORLD + 1) is compiled(motion_kernel)
    with always_compiled():
        assert kernel(motion_kernel, 2) is compiled(motion_kernel)

    def unmarked() -> None:
        pass

    with pytest.raises(TypeError, match="not marked"):
        kernel(unmarked, 2)
    assert jit(unmarked) is unmarked  # marking keeps the function as written


def test_a_run_of_a_small_world_compiles_nothing_and_never_imports_numba() -> None:
    probe = (
        "import asyncio, sys\n"
        "from v2x.scenario import load_scenario\n"
        "from v2x.run.runner import run_scenario, warm_up_core\n"
        "sc = load_scenario('scenarios/fcw.yaml')\n"
        "warm_up_core([sc])\n"
        "r = asyncio.run(run_scenario(sc, seed=0, broker='loopback'))\n"
        "assert r['passed'], r['expectations']\n"
        "print('numba' in sys.modules)\n"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-c", probe], check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.strip().splitlines()[-1] == "False"
        assert not list(Path(cache).rglob("*.nbi"))
