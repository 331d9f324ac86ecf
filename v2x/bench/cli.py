"""``v2x bench`` subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from v2x import argtypes
from v2x.argtypes import EXIT_BAD_INPUT, EXIT_RUN_ERROR
from v2x.run import REALTIME_MAX_WORKERS


def _parse_ns(text: str) -> list[int]:
    try:
        ns = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--n wants comma-separated integers, got {text!r}") from exc
    if not ns or min(ns) < 2 or max(ns) > argtypes.BENCH_MAX_VEHICLES:
        raise argparse.ArgumentTypeError(f"--n wants integers from 2 to {argtypes.BENCH_MAX_VEHICLES:,}")
    return ns


STACK_VEHICLES = argtypes.count_to(argtypes.BENCH_MAX_STACK_VEHICLES, least=2)
TICKS = argtypes.count_to(argtypes.BENCH_MAX_TICKS)


BENCH_EXIT_CODES = (
    "Exit codes: 0 measured, 2 bad input (nothing measured), 3 a run could not complete (stack, realtime: the "
    "broker could not be reached, a worker failed)."
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser("bench", help="run the built-in benchmarks", epilog=BENCH_EXIT_CODES)
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    core = bench_sub.add_parser(
        "core",
        epilog=BENCH_EXIT_CODES,
        help="fan-out and conflict detection per tick vs naive all-pairs and shapely STRtree",
        description="Per-tick fan-out and conflict detection on TR 36.885-style urban grid and freeway "
        "workloads, with speed-ups against naive all-pairs numpy and a shapely STRtree broad phase "
        "measured in the same run. Progress goes to stderr.",
    )
    core.add_argument(
        "--n",
        type=_parse_ns,
        default=[1000, 5000, 10000, 20000],
        help=f"comma-separated vehicle counts, each 2 to {argtypes.BENCH_MAX_VEHICLES:,} (default "
        "1000,5000,10000,20000)",
    )
    core.add_argument(
        "--ticks",
        type=TICKS,
        default=None,
        help=f"timed ticks per N, at most {argtypes.BENCH_MAX_TICKS:,} (default 20, quick 5)",
    )
    core.add_argument("--seed", type=argtypes.seed, default=1, help="workload and channel seed (default 1)")
    core.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    core.add_argument("--quick", action="store_true", help="small run (< 60 s): fewer N, ticks, baselines")
    core.add_argument(
        "--scenario", choices=("urban", "freeway", "both"), default="both", help="workload (default both)"
    )
    core.set_defaults(handler=_run_core)
    traffic = bench_sub.add_parser(
        "traffic",
        epilog=BENCH_EXIT_CODES,
        help="the compiled traffic step (IDM + MOBIL) vs the same step in plain numpy",
        description="Per-tick traffic step (IDM car-following, MOBIL lane changes, signals) on a TR 36.885 "
        "urban grid, compiled and in plain numpy, measured in the same run from the same state (results "
        "checked identical). Progress goes to stderr.",
    )
    traffic.add_argument(
        "--n",
        type=_parse_ns,
        default=[1000, 10000],
        help=f"comma-separated vehicle counts, each 2 to {argtypes.BENCH_MAX_VEHICLES:,} (default 1000,10000)",
    )
    traffic.add_argument(
        "--ticks",
        type=TICKS,
        default=None,
        help=f"timed ticks per N, at most {argtypes.BENCH_MAX_TICKS:,} (default 200, quick 10)",
    )
    traffic.add_argument("--seed", type=argtypes.seed, default=1, help="workload seed (default 1)")
    traffic.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    traffic.add_argument("--quick", action="store_true", help="small run: the smallest N, 10 ticks")
    traffic.set_defaults(handler=_run_traffic)
    sign = bench_sub.add_parser(
        "sign",
        epilog=BENCH_EXIT_CODES,
        help="signed envelopes: ECDSA P-256 verifications per second per core vs decoding the same envelope",
        description="What a receiver pays for a signed BSM envelope (v2x run --secure) on one core: verify "
        "with the certificate cached and not, and sign, against decoding the same envelope, measured in the "
        "same run. Progress goes to stderr.",
    )
    sign.add_argument(
        "--seconds", type=argtypes.seconds(600), default=None, help="timed seconds per operation (default 3, quick 0.3)"
    )
    sign.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    sign.add_argument("--quick", action="store_true", help="short run (about 1.5 s)")
    sign.set_defaults(handler=_run_sign)
    stack = bench_sub.add_parser(
        "stack",
        epilog=BENCH_EXIT_CODES,
        help="the whole stack with N equipped vehicles running FCW (fleet agent, broker, lockstep) vs "
        "individual vehicle agents",
        description="Wall seconds per simulated second of a lockstep V2X run with N equipped background vehicles "
        "hosted by the fleet agent, all running FCW, on the given broker, against individual vehicle agents "
        "measured in the same run (per-vehicle speed-up). Every vehicle has rtk-fixed positioning, so its BSMs "
        "state an accuracy and every vehicle's FCW checks every vehicle it hears, in both runs (equal work). "
        "Progress goes to stderr.",
    )
    stack.add_argument(
        "--n",
        type=STACK_VEHICLES,
        default=1000,
        help=f"equipped vehicles at once, 2 to {argtypes.BENCH_MAX_STACK_VEHICLES:,} (default 1000, quick 20)",
    )
    stack.add_argument(
        "--seconds",
        type=argtypes.seconds(argtypes.SCENARIO_MAX_S),
        default=None,
        help="simulated seconds (default 10, quick 1)",
    )
    stack.add_argument("--broker", default="embedded", help="embedded, loopback or mqtt://host:port (default embedded)")
    stack.add_argument(
        "--workers",
        type=argtypes.count,
        default=1,
        help=f"fleet agent processes, at most {argtypes.MAX_PROCESSES} (default 1)",
    )
    stack.add_argument(
        "--baseline-n",
        type=argtypes.count_to(argtypes.BENCH_MAX_AGENTS, least=0),
        default=None,
        help=f"individual agents in the baseline, at most {argtypes.BENCH_MAX_AGENTS:,} (default 50, quick 4; 0: none)",
    )
    stack.add_argument(
        "--baseline-seconds",
        type=argtypes.seconds(argtypes.SCENARIO_MAX_S),
        default=None,
        help="the baseline's simulated seconds (default 3, quick 1)",
    )
    stack.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    stack.add_argument("--quick", action="store_true", help="tiny run: 20 vehicles, 1 s, a 4-agent baseline")
    stack.set_defaults(handler=_run_stack)
    realtime = bench_sub.add_parser(
        "realtime",
        epilog=BENCH_EXIT_CODES,
        help="the bench stack workload under the real-time clock: late ticks and the latency the emulator adds",
        description="N equipped vehicles with FCW hosted by the fleet agent, real-time clock (10 Hz), on the given "
        "broker: the share of late ticks (a report missed its deadline, or the tick closed more than 10 ms "
        "behind schedule) and the latency the emulator adds beyond the modelled channel (the wait for the next "
        "tick plus how far behind schedule it went out). Progress goes to stderr.",
    )
    realtime.add_argument(
        "--n",
        type=STACK_VEHICLES,
        default=2000,
        help=f"equipped vehicles at once, 2 to {argtypes.BENCH_MAX_STACK_VEHICLES:,} (default 2000, quick 20)",
    )
    realtime.add_argument(
        "--seconds", type=argtypes.seconds(argtypes.SCENARIO_MAX_S), default=None, help="seconds (default 60, quick 1)"
    )
    realtime.add_argument(
        "--broker", default="embedded", help="embedded, loopback or mqtt://host:port (default embedded)"
    )
    realtime.add_argument(
        "--workers",
        type=argtypes.count,
        default=None,
        help=f"fleet agent processes (at most {argtypes.MAX_PROCESSES}), 1: the fleet in the world's process "
        f"(default: one per core, at most {REALTIME_MAX_WORKERS}; 1 on the loopback bus)",
    )
    realtime.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    realtime.add_argument("--quick", action="store_true", help="tiny run: 20 vehicles, 1 s")
    realtime.set_defaults(handler=_run_realtime)


def _run_core(args: argparse.Namespace) -> int:
    from v2x.bench import core as bench_core

    return bench_core.main(args, out=sys.stdout, err=sys.stderr)


def _run_traffic(args: argparse.Namespace) -> int:
    from v2x.bench import traffic as bench_traffic

    return bench_traffic.main(args, out=sys.stdout, err=sys.stderr)


def _run_sign(args: argparse.Namespace) -> int:
    from v2x.bench import sign as bench_sign

    return bench_sign.main(args, out=sys.stdout, err=sys.stderr)


def _whole_stack(args: argparse.Namespace, name: str, run: Callable[[], int]) -> int:
    """A bench of the whole stack (``stack``, ``realtime``): bad options exit 2 and a run that cannot be made
    (broker unreachable, a worker lost) exits 3, each with one line on stderr naming the bench, never a
    traceback."""
    from v2x.net.broker import BrokerURLError, parse_broker_url
    from v2x.run.runner import RunError

    if args.broker not in ("embedded", "loopback"):
        try:
            parse_broker_url(args.broker)
        except BrokerURLError as exc:
            print(f"v2x bench {name}: --broker: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    try:
        return run()
    except RunError as exc:
        print(f"v2x bench {name}: {exc}", file=sys.stderr)
        return EXIT_RUN_ERROR


def _run_stack(args: argparse.Namespace) -> int:
    from v2x.bench import stack as bench_stack

    return _whole_stack(args, "stack", lambda: bench_stack.main(args, out=sys.stdout, err=sys.stderr))


def _run_realtime(args: argparse.Namespace) -> int:
    from v2x.bench import realtime as bench_realtime

    return _whole_stack(args, "realtime", lambda: bench_realtime.main(args, out=sys.stdout, err=sys.stderr))
