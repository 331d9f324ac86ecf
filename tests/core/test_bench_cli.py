"""`v2x bench core` wiring and JSON shape on a tiny run (no timing assertions)."""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from v2x.bench import cli as bench_cli
from v2x.bench import core as bench_core


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="v2x")
    sub = p.add_subparsers(dest="command", required=True)
    bench_cli.register(sub)
    return p


def test_bench_core_json_shape() -> None:
    args = _parser().parse_args(["bench", "core", "--n", "300,600", "--ticks", "2", "--json", "--seed", "3"])
    out, err = io.StringIO(), io.StringIO()
    assert bench_core.main(args, out=out, err=err) == 0
    doc = json.loads(out.getvalue())  # exactly one JSON object
    assert doc["bench"] == "core"
    rows = doc["results"]
    assert [(r["scenario"], r["n"]) for r in rows] == [
        ("urban", 300),
        ("urban", 600),
        ("freeway", 300),
        ("freeway", 600),
    ]
    for r in rows:
        for key in (
            "fanout_ms_p50",
            "fanout_ms_p99",
            "conflict_ms_p50",
            "conflict_ms_p99",
            "naive_speedup",
            "strtree_speedup",
            "peak_mib",
        ):
            assert isinstance(r[key], float) and r[key] > 0, (key, r)
        assert r["fanout_ms_p99"] >= r["fanout_ms_p50"]
        assert r["deliveries_per_tick"] > 0
    assert "urban n=300" in err.getvalue()  # progress goes to stderr


def test_bench_rejects_bad_n() -> None:
    p = _parser()
    try:
        p.parse_args(["bench", "core", "--n", "abc"])
    except SystemExit as exc:
        assert exc.code == 2
    else:  # pragma: no cover
        raise AssertionError("expected argparse error")


def test_workloads_respect_tr_geometry() -> None:
    import numpy as np

    wl = bench_core.freeway(600, np.random.default_rng(0))
    ys = np.unique(np.round(wl.world.y[wl.slots], 6))
    assert sorted(ys.tolist()) == [-10.0, -6.0, -2.0, 2.0, 6.0, 10.0]  # 3 lanes each way, 4 m lanes
    u = bench_core.urban(2000, np.random.default_rng(0))
    speeds = np.hypot(u.world.vx[u.slots], u.world.vy[u.slots])
    assert abs(float(np.median(speeds)) - 60 / 3.6) < 1.0


def test_result_digest_sees_any_difference() -> None:
    """The baselines are checked against ours by digest: one changed time, index, counter or conflict
    field must change it; equal results (nan included) must not."""
    wl = bench_core.urban(300, np.random.default_rng(3))
    wl.step(0.1)
    tx = np.random.default_rng(4).uniform(0.0, 0.1, len(wl.slots))
    d, c = bench_core.ours(wl.world, wl.slots, tx, np.random.default_rng(5))
    assert len(d) > 0 and len(c) > 0
    ref = bench_core._digest((d, c))
    assert bench_core._digest(bench_core.ours(wl.world, wl.slots, tx, np.random.default_rng(5))) == ref
    t = d.delivery_time_s.copy()
    t[len(t) // 2] = np.nextafter(t[len(t) // 2], np.inf)
    assert bench_core._digest((replace(d, delivery_time_s=t), c)) != ref
    assert bench_core._digest((replace(d, dropped=d.dropped + 1), c)) != ref
    rx = d.receiver.copy()
    rx[0] += 1
    assert bench_core._digest((replace(d, receiver=rx), c)) != ref
    pet = c.pet_s.copy()
    pet[0] = 1.0 if np.isnan(pet[0]) else np.nan
    assert bench_core._digest((d, replace(c, pet_s=pet))) != ref


def test_shared_grid_script_finds_the_same_conflicts_both_ways(capsys: pytest.CaptureFixture[str]) -> None:
    """benchmarks/shared_grid.py (quoted in docs/CORE.md) still runs and both broad phases agree."""
    import runpy

    module = runpy.run_path(str(Path(__file__).resolve().parents[2] / "benchmarks" / "shared_grid.py"))
    module["main"](600)
    out = capsys.readouterr().out
    assert "same conflicts: True" in out and "pairs within 2 x max reach" in out


def test_agents_scale_script_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """benchmarks/agents_scale.py (quoted in the README) still runs: a tiny lockstep run, one table row."""
    import runpy
    import sys

    monkeypatch.setattr(sys, "argv", ["agents_scale.py", "--n", "4", "--seconds", "1"])
    runpy.run_path(str(Path(__file__).resolve().parents[2] / "benchmarks" / "agents_scale.py"), run_name="__main__")
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 4 |")]
    assert len(rows) == 1 and float(rows[0].split("|")[3]) > 0
