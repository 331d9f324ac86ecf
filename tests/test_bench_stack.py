"""`v2x bench stack` and `v2x bench realtime`: wiring and JSON shape on tiny runs (no timing assertions)."""

from __future__ import annotations

import argparse
import io
import json

import pytest

from v2x.bench import cli as bench_cli
from v2x.bench import realtime as bench_realtime
from v2x.bench import stack as bench_stack
from v2x.net import transport
from v2x.net.broker import free_port


def _args(*argv: str, bench: str = "stack") -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="v2x")
    sub = p.add_subparsers(dest="command", required=True)
    bench_cli.register(sub)
    return p.parse_args(["bench", bench, *argv])


def test_bench_stack_quick_json_has_the_issue_keys_and_a_same_run_baseline() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert bench_stack.main(_args("--quick", "--json", "--broker", "loopback"), out=out, err=err) == 0
    doc = json.loads(out.getvalue())  # exactly one JSON object
    assert doc["bench"] == "stack"
    assert 10 <= doc["n"] <= 30  # --quick asks for 20; the prefill gives about that many
    assert doc["wall_per_sim_s"] > 0
    # Every hosted vehicle hears the others on its few hundred metres of road: about n * (n - 1) + the story cars.
    assert doc["n"] * (doc["n"] - 1) <= doc["deliveries_per_tick"] <= (doc["n"] + 2) ** 2
    base = doc["baseline"]
    assert base["n"] == 4 and base["wall_per_sim_s"] > 0 and base["deliveries_per_tick"] > 0
    assert doc["per_vehicle_speedup"] > 0
    assert "baseline: 4 individual vehicle agents" in err.getvalue()  # progress goes to stderr


def test_bench_stack_table_and_bad_input() -> None:
    out, err = io.StringIO(), io.StringIO()
    args = _args("--n", "12", "--seconds", "0.5", "--baseline-n", "0", "--broker", "loopback")
    assert bench_stack.main(args, out=out, err=err) == 0
    assert "| vehicles | hosted by |" in out.getvalue() and "individual agents" not in out.getvalue()
    with pytest.raises(SystemExit):  # argparse refuses it (tests/test_cli_args.py); the bench itself too
        _args("--n", "1")
    args.n = 1
    assert bench_stack.main(args, out=io.StringIO(), err=err) == 2
    assert "--n must be >= 2" in err.getvalue()


def test_bench_realtime_quick_json_has_the_issue_keys() -> None:
    out, err = io.StringIO(), io.StringIO()
    args = _args("--quick", "--json", "--broker", "loopback", bench="realtime")
    assert bench_realtime.main(args, out=out, err=err) == 0
    doc = json.loads(out.getvalue())
    assert doc["bench"] == "realtime" and 10 <= doc["n"] <= 30
    assert 0.0 <= doc["late_tick_ratio"] <= 1.0 and doc["ticks"] == 11
    assert doc["added_latency_ms_p99"] >= doc["added_latency_ms_p50"] >= 0.0
    # The fleet's and the built-in agents' deliveries are handed over together (when the tick before closes,
    # not before its time), so which of the two p99s is higher depends on the machine's timing; both are
    # measured, and the p99 of all of them lies between the two (each group has at most 1 % above its p99).
    fleet, agents = doc["added_latency_ms_p99_fleet"], doc["added_latency_ms_p99_agents"]
    assert fleet is not None and agents is not None and fleet >= 0.0 and agents >= 0.0
    assert min(fleet, agents) - 0.01 <= doc["added_latency_ms_p99"] <= max(fleet, agents) + 0.01
    assert "late ticks" in err.getvalue()


def test_bench_stack_and_realtime_bad_options_and_no_broker_exit_cleanly(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bad options exit 2 and an unreachable broker exits 3, with a last line on stderr naming the bench and no
    traceback (through the CLI handler, as `v2x bench ...` runs it)."""
    monkeypatch.setattr(transport, "BROKER_WAIT_S", 1.0)  # (10 s of retries per unreachable case otherwise)
    cases: list[tuple[str, list[str], int, str]] = [
        (bench, argv, code, said)
        for bench in ("stack", "realtime")
        for argv, code, said in (
            (["--broker", "foo"], 2, "--broker: broker URL 'foo'"),
            (["--broker", "mqtt://127.0.0.1:99999"], 2, "the port is not a number from 1 to 65535"),
        )
    ]
    cases.append(("stack", ["--broker", f"mqtt://127.0.0.1:{free_port()}"], 3, "cannot reach the MQTT broker"))
    # a password in the URL is never shown (a diff review found it on stderr and in --json)
    cases.append(("stack", ["--broker", f"mqtt://ci:s3cret@127.0.0.1:{free_port()}"], 3, "cannot reach"))
    for bench, argv, code, said in cases:
        args = _args("--n", "4", "--seconds", "0.2", *argv, bench=bench)
        assert args.handler(args) == code, (bench, argv)
        err = capsys.readouterr().err
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"v2x bench {bench}: ") and said in last and "Traceback" not in err
        assert "s3cret" not in err
