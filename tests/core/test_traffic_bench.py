"""`v2x bench traffic` wiring and JSON shape on a tiny run (no timing assertions)."""

from __future__ import annotations

import argparse
import io
import json

from v2x.bench import cli as bench_cli
from v2x.bench import traffic as bench_traffic


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="v2x")
    sub = p.add_subparsers(dest="command", required=True)
    bench_cli.register(sub)
    return p


def test_bench_traffic_json_one_n_at_top_level() -> None:
    args = _parser().parse_args(["bench", "traffic", "--n", "200", "--ticks", "3", "--json"])
    out, err = io.StringIO(), io.StringIO()
    assert bench_traffic.main(args, out=out, err=err) == 0
    doc = json.loads(out.getvalue())
    assert doc["bench"] == "traffic" and doc["n"] == 200
    for key in ("step_ms_p50", "step_ms_p99", "numpy_ms_p50", "numpy_speedup"):
        assert isinstance(doc[key], float) and doc[key] > 0, key
    assert "traffic n=200" in err.getvalue()


def test_bench_traffic_json_several_n_and_table() -> None:
    args = _parser().parse_args(["bench", "traffic", "--n", "100,200", "--ticks", "2", "--json"])
    out = io.StringIO()
    assert bench_traffic.main(args, out=out, err=io.StringIO()) == 0
    runs = json.loads(out.getvalue())["runs"]
    assert [r["n"] for r in runs] == [100, 200] and all(r["numpy_speedup"] > 0 for r in runs)
    args = _parser().parse_args(["bench", "traffic", "--quick", "--n", "150"])
    out = io.StringIO()
    assert bench_traffic.main(args, out=out, err=io.StringIO()) == 0
    assert "| 150 |" in out.getvalue()
