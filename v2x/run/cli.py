"""``v2x run`` and ``v2x list``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import multiprocessing
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from v2x import argtypes
from v2x.argtypes import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_RUN_ERROR
from v2x.logs import LOG_FORMAT, flag_text
from v2x.net.broker import BrokerAddress, BrokerURLError, parse_broker_url
from v2x.net.clock import MODES
from v2x.run import REALTIME_MAX_WORKERS, default_workers
from v2x.run.secure import security_from_args
from v2x.scenario import Scenario, ScenarioError, catalogue, find_scenario, load_scenario, same_ids, scenario_names
from v2x.scenario.model import ALL_VARIANTS
from v2x.scenario.profiles import add_profile_options, profile_args, with_profiles
from v2x.text import printable

if TYPE_CHECKING:
    from v2x.net.secure import ActorCredentials

# What drawing a result document that passed the report's checks may still raise on an input nobody thought
# of: 'v2x report' and 'v2x replay --report' turn it into bad input (exit 2), never a traceback.
RENDER_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError, RecursionError)
T = TypeVar("T")
DEFAULT_VIEW_PORT = 8642


# The signals that stop a command cleanly (its run announces STOP, a recording is closed): SIGINT (Ctrl-C),
# SIGTERM (docker stop, CI runners) and SIGHUP (a closed terminal or ssh session, which lost the recording:
# attack review 4); exit 128 + the signal's number (130, 143, 129).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(Exception):
    """A stop signal arrived: the run in progress announced STOP; exit 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def _outside_the_loop() -> None:
    """SIGINT and SIGTERM outside the event loop (loading, compiling, writing): Interrupted."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_interrupted)


@contextlib.contextmanager
def _interruptible_command() -> Iterator[None]:
    """Around a command that runs the event loop: SIGINT and SIGTERM raise Interrupted (``_outside_the_loop``,
    ``_interruptible`` inside the loop); the handlers found are back afterwards."""
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    _outside_the_loop()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_job(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)`` for one run of ``v2x check`` / ``v2x sweep``: in the command's own process (``--jobs 1``,
    or one scenario) SIGINT / SIGTERM stop the run and raise :class:`Interrupted` (without the loop's handlers the
    signal raised inside whatever ran: a failed agent's "run error", an exception swallowed, once a hang: newcomer
    reviews 5 and 6); a pool's worker keeps its default handlers and goes with the command (``v2x.run.pool``)."""
    if multiprocessing.parent_process() is None:
        return asyncio.run(_interruptible(coro))
    return asyncio.run(coro)


async def _interruptible(coro: Awaitable[T]) -> T:
    """Run ``coro``; SIGINT or SIGTERM cancels it (the runner publishes STOP on its way out), then raises
    Interrupted."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    got: list[int] = []

    def on_signal(signum: int) -> None:
        if not got and task is not None:
            got.append(signum)
            task.cancel()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        return await coro
    except asyncio.CancelledError:
        if got:
            raise Interrupted(got[0]) from None
        raise
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        _outside_the_loop()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser(
        "run",
        help="run scenarios and check their expectations",
        description="Run scenarios (each with and without V2X), check their expectations, write DIR/<id>/result.json.",
        epilog="Exit codes: 0 every expectation held, 1 an expectation failed, 2 bad input "
        "(nothing was run), 3 the run could not complete (or its result could not be written), "
        "130 / 143 / 129 interrupted by SIGINT / SIGTERM / SIGHUP (the run in progress was stopped).",
    )
    run.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO", help="scenario id (see 'v2x list'), YAML file, or a folder of them"
    )
    run.add_argument("--all", action="store_true", help="run every shipped scenario (the 'v2x list' catalogue)")
    run.add_argument(
        "--junit",
        type=Path,
        metavar="FILE",
        help="also write a JUnit XML report (one test case per expectation and variant) for CI systems",
    )
    run.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="also write a self-contained HTML report (verdicts, expectations, event timelines, metrics)",
    )
    run.add_argument(
        "--broker",
        default="embedded",
        metavar="URL",
        help="'embedded' (default: an in-process broker) or mqtt://host:port of any MQTT broker",
    )
    run.add_argument("--seed", type=argtypes.seed, default=0, help="random seed (same seed, same outcome); default 0")
    add_profile_options(run)  # (as v2x sweep's: a seed a sweep with profiles swapped found failing runs alike)
    run.add_argument("--out", type=Path, default=Path("results"), metavar="DIR", help="output directory (results/)")
    run.add_argument(
        "--mode",
        choices=MODES,
        default="lockstep",
        help="lockstep: virtual time, deterministic, fast (default); realtime: wall-clock ticks",
    )
    run.add_argument(
        "--workers",
        type=argtypes.count,
        default=None,
        metavar="N",
        help=f"host the equipped background vehicles (flows) in N fleet agent processes (at most "
        f"{argtypes.MAX_PROCESSES}), each with its own connection to the broker (1: one fleet in this process). "
        f"Default: 1 in lockstep; in real time one per core, at most {REALTIME_MAX_WORKERS}, so that the fleets do "
        "not share the world's core (with --remote-workers: 1). A scenario without equipped flows starts none; "
        'the outcome is the same for any N (docs/ARCHITECTURE.md "Fleets in worker processes")',
    )
    run.add_argument(
        "--remote-workers",
        action="store_true",
        help="start no fleet worker processes: wait for the N of --workers started with 'v2x worker SCENARIO "
        "--broker URL --run-id PREFIX --fleet K --of N' (K = 0 ... N-1), on this or other machines, against "
        "this broker or a node of the same cluster; needs --run-id and a broker; the outcome is the same. With "
        "--variant leaving out a variant with fleets (V2X), it tells that variant's workers, waiting up to "
        '--worker-timeout for them, that there is nothing to do (docs/ARCHITECTURE.md "Fleets on other '
        "machines\"). A secure run needs --secure-dir DIR of 'v2x secure init --workers N' (each worker logs in "
        "with DIR/fleets/FLEET.json) and --seal-key (the world hands each worker its fleet's signing keys sealed "
        'under it; docs/SECURITY.md "Remote fleet workers in a secure run")',
    )
    run.add_argument(
        "--seal-key",
        type=Path,
        metavar="FILE",
        help="--remote-workers: the worker key (made here, owner-only, if FILE does not exist; copy it to each "
        "worker's machine and start the workers with --seal-key too). The world then hands each worker that "
        "holds it the run's own seal key, and a message on a fleet's topics that is not the world's or its "
        "worker's is refused as forged (docs/SECURITY.md \"Sealed messages\"). Without it the fleets' topics "
        "are open: anyone on the broker can steer or stop remote workers",
    )
    argtypes.add_join_timeout(
        run.add_argument,
        "a scenario with outside stacks (external: true): how long each variant waits for them to join "
        f"before the run stops (exit 3, naming them; default {argtypes.JOIN_TIMEOUT_S:g})",
    )
    run.add_argument(
        "--worker-timeout",
        type=argtypes.seconds(argtypes.DAY_S),
        default=120.0,
        metavar="S",
        help="--remote-workers: the run stops (exit 3, naming the missing fleets) when they have not all "
        "joined within S seconds (default 120); for a variant left out (--variant), it goes on without "
        "telling the ones that did not say hello within S seconds",
    )
    run.add_argument(
        "--run-id",
        metavar="PREFIX",
        help="fixed run ids PREFIX-v2x and PREFIX-baseline instead of random ones, so that an outside stack "
        "(docs/PROTOCOL.md) knows which run to join; 1-55 of A-Z a-z 0-9 _ . -; one scenario only",
    )
    run.add_argument(
        "--variant",
        choices=ALL_VARIANTS,
        action="append",
        metavar="{v2x,baseline}",
        help="run only this variant (repeatable; default: every variant of the scenario); "
        "expectations of the other variants are not checked",
    )
    run.add_argument(
        "--record",
        type=Path,
        metavar="DIR",
        help="record each run as DIR/<id>-<variant>.mcap: every message on the wire, poses and positioning in "
        "Foxglove's schemas, warnings, collisions, verdicts (docs/RECORDING.md; read back with 'v2x replay')",
    )
    run.add_argument(
        "--secure",
        action="store_true",
        help="a secure run (docs/SECURITY.md): the world and every actor log in as themselves over TLS and "
        "may use only their own topics (with the embedded broker the run makes its users and CA itself; with "
        "a broker of your own give --secure-dir), and every V2X envelope is signed (ECDSA P-256, pseudonym "
        "certificates from a CA per run) and verified by the world and every receiver. With outside stacks "
        "(external: true) use --secure-dir and --broker mqtts://... instead: the embedded broker is out of "
        "their reach; the signing credentials of external actors are then written to "
        "OUT/credentials/RUN_ID/ACTOR.cred (--remote-workers: give --secure-dir and --seal-key)",
    )
    run.add_argument(
        "--secure-dir",
        type=Path,
        metavar="DIR",
        help="the files of 'v2x secure init' (implies --secure): the run's users and CA, the run id it was "
        "made for; start your broker with DIR/mosquitto.conf and pass --broker mqtts://...",
    )
    run.add_argument("--view", action="store_true", help="serve a live view of the run (map, warnings, messages/s)")
    run.add_argument(
        "--port",
        type=argtypes.listen_port,
        default=None,
        help="--view: the page's port (default 8642; 0: any free one, the URL goes to stderr)",
    )
    run.add_argument(
        "--host",
        default="127.0.0.1",
        metavar="ADDR",
        help="--view: the address to serve the page on (default 127.0.0.1: this machine only; 0.0.0.0 or ::: "
        "every interface, to watch a run on a lab or CI machine from another; whoever reaches the page can "
        "also pause the run)",
    )
    run.add_argument(
        "--paused", action="store_true", help="--view: hold the world after tick 0 (of each variant) until Run or Step"
    )
    run.add_argument("-v", "--verbose", action="store_true", help="log every warning, collision and message problem")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress, only the summary")
    run.set_defaults(handler=cmd_run)

    lst = sub.add_parser("list", help="list the shipped scenarios", description="List the shipped scenarios.")
    lst.set_defaults(handler=cmd_list)

    rep = sub.add_parser(
        "report",
        help="write an HTML report from result files",
        description="Write one self-contained HTML page (no scripts, nothing fetched) from result.json files "
        "or directories holding them (searched recursively): verdicts, expectations with details, a map (the "
        "road, the RSUs and their ranges, both variants' tracks and where each event happened; at a crossing "
        "framed on its boxes and the events), a timeline of warnings, collisions, violations and stops per "
        "variant, and the service metrics.",
        epilog="Exit codes: 0 report written and every scenario passed, 1 a scenario failed, 2 bad input "
        "(a file that is not a result document; nothing written), 3 the report could not be written.",
    )
    rep.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="result.json file or directory")
    rep.add_argument(
        "-o", "--out", type=Path, default=Path("report.html"), metavar="FILE", help="output file (default: report.html)"
    )
    rep.set_defaults(handler=cmd_report)

    rp = sub.add_parser(
        "replay",
        help="summarize a recording (v2x run --record), or rebuild its HTML report",
        description="Print what an MCAP recording of 'v2x run --record' holds: channels with schemas and "
        "message counts, the time span, warnings, collisions and verdicts. With --report, rebuild the run's "
        "result document from the recordings given (one per variant) and write its HTML report.",
        epilog="Exit codes: 0 read (and every recorded expectation held, with --report), 1 one failed, "
        "2 bad input (not a finished v2x recording; nothing written), 3 the report could not be written. "
        "The recording of an interrupted run (no verdicts) is summarized as INCOMPLETE; --report refuses it "
        "(exit 2), and takes one recording per variant of one run.",
    )
    rp.add_argument(
        "files", nargs="+", type=Path, metavar="FILE.mcap", help="recording(s) of one run, or a folder of them"
    )
    rp.add_argument("--report", type=Path, metavar="OUT.html", help="write the run's HTML report, as 'v2x report'")
    rp.set_defaults(handler=cmd_replay)

    _register_worker(sub)

    from v2x.run import conformance

    conformance.register(sub)


def _register_worker(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``v2x worker`` (v2x.run.workers)."""
    wk = sub.add_parser(
        "worker",
        help="serve a run's fleet of equipped background vehicles from this machine (v2x run --remote-workers)",
        description="Serve fleet K of N of a run whose world waits for its workers ('v2x run SCENARIO "
        "--workers N --remote-workers --run-id PREFIX', on this or another machine) over a broker both "
        "reach (one broker, or nodes of a clustered one such as EMQX): the equipped background vehicles the "
        "world gives that fleet, one bundle each way per tick. Start one per fleet, before or after the world; "
        "each ends after the run's final tick. Give the same scenario (file), --run-id and --of as the world: "
        'it refuses a worker whose job differs (docs/ARCHITECTURE.md "Fleets on other machines"). A secure run '
        "(v2x run --secure-dir DIR): give --credentials DIR/fleets/FLEET.json (the fleet's broker login and the "
        "broker's CA) and --seal-key; the world then hands the worker its fleet's signing keys, sealed "
        '(docs/SECURITY.md "Remote fleet workers in a secure run").',
        epilog="Exit codes: 0 served the run to its final tick, or the world said it does not run this variant "
        "(nothing to do), 2 bad input (nothing was served), 3 the run could not be served (broker unreachable, "
        "its TLS certificate not signed by the CA given, the login refused, no world within --wait, the world "
        "stopped the run early, or lost its connection and did not come back within --wait), 130 / 143 "
        "interrupted. A broker restart is waited out.",
    )
    wk.add_argument("scenario", metavar="SCENARIO", help="the world's scenario: id (see 'v2x list') or YAML file")
    wk.add_argument(
        "--broker",
        metavar="URL",
        help="mqtt://[user:pass@]host:port (mqtts:// for TLS) of the broker; needed unless --credentials names it",
    )
    wk.add_argument("--run-id", required=True, metavar="PREFIX", help="the world's --run-id")
    wk.add_argument("--fleet", type=int, required=True, metavar="K", help="which fleet to serve: 0 ... N-1")
    wk.add_argument(
        "--of",
        type=argtypes.count,
        required=True,
        metavar="N",
        help=f"the world's --workers N (at most {argtypes.MAX_PROCESSES})",
    )
    wk.add_argument(
        "--wait",
        type=argtypes.seconds(argtypes.DAY_S),
        default=600.0,
        metavar="S",
        help="give up (exit 3) when no world sends the fleet its first input within S seconds, or when the "
        "world's connection is lost (its Last Will) and it does not come back within S seconds (default 600)",
    )
    wk.add_argument(
        "--seal-key",
        type=Path,
        metavar="FILE",
        help="the worker key file the world's 'v2x run --seal-key' made (a copy; owner-only, mode 600): the "
        "worker is admitted only by a world holding the same key, and takes nothing but that world's sealed "
        'messages (in a secure run, also its fleet\'s signing keys; docs/SECURITY.md "Sealed messages")',
    )
    wk.add_argument(
        "--credentials",
        type=Path,
        metavar="FILE",
        help="a secure run's (v2x run --secure-dir DIR): DIR/fleets/FLEET.json of 'v2x secure init --workers N' "
        "for this fleet (a copy; owner-only): the fleet's broker user and password, the CA that signed the "
        "broker's TLS certificate and the broker's URL (--broker overrides the URL); needs --seal-key",
    )
    wk.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")
    wk.set_defaults(handler=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    """``v2x worker``."""
    from v2x.net.seal import KeyFileError, read_key_file
    from v2x.run.workers import BrokerRefused, WorkerError, remote_jobs, serve_remote

    _setup_logging(verbose=not args.quiet, quiet=args.quiet)  # a worker says what it does, unless -q
    logging.getLogger("v2x.net.transport").setLevel(max(logging.getLogger().level, logging.WARNING))
    problem = None
    broker: BrokerAddress | None = None
    creds: ActorCredentials | None = None
    if args.credentials is not None:
        if args.seal_key is None:
            problem = (
                "--credentials (a secure run) needs --seal-key FILE, a copy of the run's: the world hands the "
                "worker its fleet's signing keys sealed under it"
            )
        else:
            creds, problem = _fleet_login(args)
            broker = creds.broker if creds is not None else None
    elif args.broker is None:
        problem = "give --broker URL (or, for a secure run, --credentials FILE, which names it)"
    else:
        try:
            broker = parse_broker_url(args.broker)
        except BrokerURLError as exc:
            problem = str(exc)
    if problem is None and not 0 <= args.fleet < args.of:
        problem = f"--fleet wants K in 0 ... {args.of - 1} (--of {args.of}), got {args.fleet}"
    elif problem is None and not argtypes.valid_run_id_prefix(args.run_id):
        problem = f"--run-id {args.run_id!r}: {argtypes.RUN_ID_RULE}"
    if problem is not None or broker is None:
        print(f"v2x worker: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        scenario = load_scenario(find_scenario(args.scenario))
    except ScenarioError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    worker_key = b""
    if args.seal_key is not None:
        try:
            worker_key = read_key_file(args.seal_key)
        except KeyFileError as exc:
            print(f"v2x worker: --seal-key {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    jobs = remote_jobs(scenario, broker, args.run_id, args.fleet, args.of, worker_key=worker_key)
    if jobs and creds is not None and (other := _other_fleet(args, creds, jobs[0].fleet_id)) is not None:
        print(f"v2x worker: --credentials {args.credentials}: {other}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not jobs:
        print(
            f"v2x worker: scenario {scenario.id} has no equipped background vehicles (flows with penetration "
            "> 0 in its V2X variant): no fleet to serve",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    with _interruptible_command():
        try:
            for job in jobs:
                asyncio.run(_interruptible(serve_remote(job, wait_s=args.wait)))
        except BrokerRefused as exc:
            login = "" if creds is not None else " (a secure run's worker needs --credentials DIR/fleets/FLEET.json)"
            print(f"v2x worker: {exc}{login}", file=sys.stderr)
            return EXIT_RUN_ERROR
        except WorkerError as exc:
            print(f"v2x worker: {exc}", file=sys.stderr)
            return EXIT_RUN_ERROR
        except Interrupted as exc:
            print(f"v2x worker: interrupted ({exc})", file=sys.stderr)
            return 128 + exc.signum
    return EXIT_OK


def _fleet_login(args: argparse.Namespace) -> tuple[ActorCredentials | None, str | None]:
    """``v2x worker --credentials FILE``: the fleet's file (its broker address with the fleet's login and the
    CA), or why it cannot be used."""
    from v2x.files import not_secret
    from v2x.net.secure import SecureDirError, load_actor_credentials

    try:
        why = not_secret(args.credentials)  # (a password: refused where others may read it, as the worker key)
    except OSError as exc:
        return None, f"--credentials {args.credentials}: cannot read it: {exc.strerror}"
    if why is not None:
        return None, f"--credentials {why}"
    try:
        creds = load_actor_credentials(args.credentials, args.broker)
    except SecureDirError as exc:
        return None, f"--credentials {exc}"
    if not creds.fleet:
        return None, f"--credentials {args.credentials}: an outside stack's file, not a fleet's (DIR/fleets/FLEET.json)"
    if not creds.broker.tls:
        return None, f"--credentials {args.credentials}: the broker {creds.broker.url} is not TLS (mqtts://)"
    return creds, None


def _other_fleet(args: argparse.Namespace, creds: ActorCredentials, fleet_id: str) -> str | None:
    """Why the fleet file ``creds`` is not fleet ``fleet_id`` of ``--run-id`` / ``--of``, or None (the broker
    would drop every message of another fleet's login in silence: it is said here, before anything)."""
    if creds.run_prefix != args.run_id:
        return f"it was made for --run-id {creds.run_prefix!r}, not {args.run_id!r}"
    if creds.fleets != args.of:
        return (
            f"it was made by 'v2x secure init --workers {creds.fleets}', not for --of {args.of}: give --of "
            f"{creds.fleets} (the world's --workers)"
        )
    if creds.actor_id != fleet_id:
        return f"it is the login of {creds.actor_id}, not of {fleet_id} (--fleet {args.fleet}): use {fleet_id}.json"
    return None


def _setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.INFO if verbose else logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)
    for noisy in ("amqtt", "transitions", "asyncio"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    if not quiet:  # which fleet workers joined, and who is still missing (--remote-workers)
        logging.getLogger("v2x.run.workers").setLevel(logging.INFO)


class _Progress:
    """A live line on stderr when it is a terminal; else one line per 10 % of a variant that has run for
    ``QUIET_FIRST_S`` (a log of `--all` had some 1,100 progress lines for runs of a second each: a newcomer
    review; a long run still shows it is alive)."""

    QUIET_FIRST_S = 5.0

    def __init__(self, scenario: Scenario, enabled: bool) -> None:
        self.scenario = scenario
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.last_decile: dict[str, int] = {}
        self.variant_started: dict[str, float] = {}

    def __call__(self, variant: str, tick: int, n_ticks: int) -> None:
        if not self.enabled:
            return
        frac = tick / max(n_ticks, 1)
        decile = int(frac * 10)
        t = tick * self.scenario.tick_s
        now = time.monotonic()
        began = self.variant_started.setdefault(variant, now)
        line = (  # (the variant's wall time: the scenario's made a baseline look slow: newcomer 5)
            f"{self.scenario.id} [{variant}] t={t:6.1f}/{self.scenario.duration_s:.1f} s "
            f"{frac * 100:5.1f}%  wall {now - began:5.1f} s"
        )
        if self.tty:
            print("\r" + line, end="\n" if tick == n_ticks else "", file=sys.stderr, flush=True)
        elif now - began < self.QUIET_FIRST_S:
            return
        elif self.last_decile.get(variant) != decile:
            self.last_decile[variant] = decile
            print(line, file=sys.stderr, flush=True)


def run_interruptibly(
    body: Callable[[argparse.Namespace], int], args: argparse.Namespace, command: str, stopped: str
) -> int:
    """``body(args)``, a command that runs scenarios; SIGINT / SIGTERM raise :class:`Interrupted` in it (its
    runs stop on their way out), and the command says so and exits 130 / 143, without a traceback."""
    with _interruptible_command():
        try:
            return body(args)
        except Interrupted as exc:
            print(f"{command}: interrupted ({exc}); {stopped}", file=sys.stderr)
            return 128 + exc.signum


def cmd_run(args: argparse.Namespace) -> int:
    """``v2x run``; SIGINT / SIGTERM stop the run (STOP published) and exit 130 / 143, without a traceback."""
    return run_interruptibly(_cmd_run, args, "v2x run", "the run in progress was stopped")


def _cmd_run(args: argparse.Namespace) -> int:
    _setup_logging(args.verbose, args.quiet)
    if args.broker != "embedded":
        try:
            parse_broker_url(args.broker)
        except BrokerURLError as exc:
            print(f"v2x run: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    # remote workers are told N (--of N) by whoever starts them: their default is the old one, 1
    workers = (
        args.workers
        if args.workers is not None
        else 1
        if args.remote_workers
        else default_workers(args.mode, args.broker)
    )
    if args.remote_workers and args.run_id is None:
        print("v2x run: --remote-workers needs --run-id PREFIX (the workers find the run by it)", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.seal_key is not None and not args.remote_workers:
        print("v2x run: --seal-key is the key of remote workers: it needs --remote-workers", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.remote_workers and args.secure and args.secure_dir is None:
        print(
            "v2x run: --remote-workers with --secure needs a broker of your own and --secure-dir DIR (written by "
            "'v2x secure init DIR --scenario ID --run-id PREFIX --workers N'): the workers log in with "
            "DIR/fleets/FLEET.json; the embedded broker's users are known to this process only",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    if args.remote_workers and args.secure_dir is not None and args.seal_key is None:
        print(
            "v2x run: --remote-workers with --secure-dir needs --seal-key FILE: the world hands each worker its "
            "fleet's signing keys sealed under that key",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    names = [str(p) for p in catalogue()] if args.all else []
    for name in args.scenarios:  # a folder: its scenario files, as `v2x check DIR` takes them (a newcomer review)
        names += scenario_names(name)
    if args.scenarios and not names:
        print(f"v2x run: no scenario files (*.yaml, *.yml) in {', '.join(args.scenarios)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    names = _unique_scenarios(names)
    if not names:
        print("v2x run: give one or more SCENARIO ids or files, or --all", file=sys.stderr)
        return EXIT_BAD_INPUT
    loaded: list[tuple[Path, Scenario]] = []
    bad = False
    networks: list[str] = args.network or []
    for name in names:
        try:
            path = find_scenario(name)
            loaded.append((path, with_profiles(load_scenario(path), args.positioning, networks)))
        except ScenarioError as exc:
            print(str(exc), file=sys.stderr)
            bad = True
        except ValueError as exc:  # an unknown profile, two of one link (the same for every scenario: said once)
            print(f"v2x run: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    for clash in same_ids(loaded):  # two files with one id would write the same DIR/<id>/result.json
        print(str(clash), file=sys.stderr)
        bad = True
    scenarios = [sc for _, sc in loaded]
    if bad:
        print("v2x run: invalid scenario file(s); nothing was run", file=sys.stderr)
        return EXIT_BAD_INPUT
    from v2x.scenario import scenario_notes
    from v2x.scenario.sumo import cannot_run

    # Scenarios this machine cannot run (SUMO's without SUMO) are left out, each said and counted as not run
    # (exit 3); the others still run (an install without the sumo extra ran nothing at all: a newcomer review).
    why_not = [cannot_run(sc) for sc in scenarios]
    not_here = [(sc.id, why) for sc, why in zip(scenarios, why_not, strict=True) if why is not None]
    for sid, why in not_here:
        print(f"v2x run: {sid}: cannot run here: {why}", file=sys.stderr)
    if not_here and len(not_here) == len(scenarios):
        _write_reports(args, [], [(sid, f"cannot run here: {why}") for sid, why in not_here])
        return EXIT_RUN_ERROR
    scenarios = [sc for sc, why in zip(scenarios, why_not, strict=True) if why is None]
    for note in (n for sc in scenarios for n in scenario_notes(sc)):  # (-q too: a CI log is where it is read)
        print(printable(f"v2x run: note: {note}"), file=sys.stderr)
    swapped = profile_args(args.positioning, networks)
    if swapped:  # (the result does not say it: the log does)
        print(f"v2x run: note: the scenario's profiles swapped: {swapped}", file=sys.stderr)
    from v2x.run.runner import unjoinable

    for why in filter(None, (unjoinable(sc, args.broker) for sc in scenarios)):
        print(f"v2x run: {why}", file=sys.stderr)
        return EXIT_BAD_INPUT

    from v2x.net.secure import SecureDirError
    from v2x.run.results import write_result
    from v2x.run.runner import RunError, Signing, only_variants, run_scenario

    if args.run_id is not None:
        if not argtypes.valid_run_id_prefix(args.run_id):
            print(f"v2x run: --run-id {args.run_id!r}: {argtypes.RUN_ID_RULE}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if len(scenarios) > 1:
            print("v2x run: --run-id takes a single scenario (run ids must differ between runs)", file=sys.stderr)
            return EXIT_BAD_INPUT
    security = security_from_args(
        args, scenarios, "v2x run", workers if args.remote_workers else 0, variants=args.variant or None
    )
    if isinstance(security, int):
        return security
    worker_key = b""
    if args.seal_key is not None:
        from v2x.net.seal import KeyFileError, key_file

        try:
            worker_key, made = key_file(args.seal_key)
        except KeyFileError as exc:
            print(f"v2x run: --seal-key {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if made:
            print(
                f"v2x run: made a new worker key in {args.seal_key}: copy it to each worker's machine (keep it "
                "owner-only) and start the workers with --seal-key",
                file=sys.stderr,
            )
    # run_scenario gets each whole scenario and the variants, so that --remote-workers can tell the workers
    # of a variant left out that there is nothing to do; the rest reads the restricted scenario.
    wholes = list(scenarios)
    if args.variant:
        try:
            scenarios = [only_variants(sc, args.variant) for sc in scenarios]
        except ValueError as exc:
            print(f"v2x run: --variant: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT

    if args.out.exists() and not args.out.is_dir():  # (found after the run, exit 3, as v2x check did: newcomer 5)
        print(f"v2x run: --out {args.out}: not a folder (results go into one)", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.record is not None and args.record.exists() and not args.record.is_dir():
        print(f"v2x run: --record {args.record}: not a folder (recordings go into one)", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.record is not None:
        from v2x.run.record import unreplaceable

        taken = next(filter(None, (unreplaceable(args.record, sc) for sc in scenarios)), None)
        if taken is not None:
            print(f"v2x run: --record {args.record}: {taken}", file=sys.stderr)
            return EXIT_BAD_INPUT
    if not args.view and (args.port is not None or args.paused or args.host != "127.0.0.1"):
        print("v2x run: --port, --host and --paused go with --view", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.paused and args.mode != "lockstep":
        from v2x.run.view import HOLD_REFUSED

        print(f"v2x run: --paused: {HOLD_REFUSED}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if len(scenarios) > 1 and args.broker.startswith(("mqtt://", "mqtts://")):
        # once, not once per scenario (each would wait for it in turn: --all took minutes to say so)
        from v2x.run.runner import broker_away

        away = broker_away(args.broker)
        if away is not None:
            print(f"v2x run: {away}", file=sys.stderr)
            # (the reports still name every scenario: CI reads them; one scenario's run said it: newcomer 5)
            unrun = [(sid, f"cannot run here: {why}") for sid, why in not_here]
            _write_reports(args, [], unrun + [(sc.id, away) for sc in scenarios])
            return EXIT_RUN_ERROR
    _warm_up(scenarios, quiet=args.quiet)
    view = None
    if args.view:
        from v2x.run.view import ViewServer

        try:
            port = args.port if args.port is not None else DEFAULT_VIEW_PORT
            view = ViewServer(host=args.host, port=port, paused=args.paused, holdable=args.mode == "lockstep").start()
        except OSError as exc:  # (a port in use, an address not of this machine or that does not resolve)
            hint = "; --port 0 takes any free port" if exc.errno == errno.EADDRINUSE else ""
            print(f"v2x run: --view: cannot serve on {args.host} port {port}: {exc}{hint}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"v2x run: live view at {view.url}", file=sys.stderr, flush=True)
        if not view.loopback:
            print(
                f"v2x run: note: the live view is open to whoever reaches {args.host}:{view.port}, and they can "
                "pause the run",
                file=sys.stderr,
            )
    failed = False
    bad_input = 0  # errors that are bad input (exit 2 when every error is)
    results: list[dict[str, Any]] = []
    errors: list[tuple[str, str]] = [(sid, f"cannot run here: {why}") for sid, why in not_here]
    for scenario, whole in zip(scenarios, wholes, strict=True):
        progress = _Progress(scenario, enabled=not args.quiet)
        recording = None
        if args.record is not None:
            from v2x.run.record import Recording

            recording = Recording(args.record, scenario, args.seed)
        observe = _observe(scenario, recording, view) if recording or view else None
        try:
            wall0, cpu0 = time.monotonic(), time.process_time()
            try:
                result = asyncio.run(
                    _interruptible(
                        run_scenario(
                            whole,
                            seed=args.seed,
                            variants=args.variant or None,
                            broker=args.broker,
                            mode=args.mode,
                            progress=progress,
                            run_id=args.run_id,
                            observe=observe,
                            security=security,
                            signing=Signing(credentials_dir=args.out / "credentials") if security else None,
                            workers=workers,
                            remote_workers=args.remote_workers,
                            worker_timeout_s=args.worker_timeout,
                            join_timeout_s=args.join_timeout,
                            worker_key=worker_key,
                        )
                    )
                )
            except RunError as exc:
                # Go on with the other scenarios: one broken run should not hide the outcome of the rest.
                print(printable(f"v2x run: {scenario.id}: run error: {exc}"), file=sys.stderr)
                errors.append((scenario.id, str(exc)))
                continue
            except SecureDirError as exc:  # (what the checks before the run did not catch: bad input, nothing ran)
                print(printable(f"v2x run: {scenario.id}: --secure-dir: {exc}"), file=sys.stderr)
                errors.append((scenario.id, str(exc)))
                bad_input += 1
                continue
            except OSError as exc:
                if recording is None:
                    raise
                # the recording's file (the run writes no other): a full disk, a folder it cannot make
                why = f"cannot write the recording under {args.record}: {_why(exc)}"
                print(f"v2x run: {scenario.id}: {why}", file=sys.stderr)
                errors.append((scenario.id, why))
                continue
            try:
                path = write_result(result, args.out)
            except (OSError, ValueError) as exc:
                print(f"v2x run: {scenario.id}: cannot write its result under {args.out}: {_why(exc)}", file=sys.stderr)
                errors.append((scenario.id, f"cannot write the result: {_why(exc)}"))
                continue
            if recording is not None:
                try:
                    rec_paths = recording.finish(result)
                except OSError as exc:  # (the writer keeps a chunk in memory: a full disk shows when it is written)
                    why = f"cannot write the recording under {args.record}: {_why(exc)}"
                    print(f"v2x run: {scenario.id}: {why} (its result: {path})", file=sys.stderr)
                    errors.append((scenario.id, why))
                    continue
                for rec_path in rec_paths:
                    print(f"recording -> {rec_path}")
            _print_summary(result, path)
            from v2x.run.runner import idle_note

            cpu = time.process_time() - cpu0
            idle = time.monotonic() - wall0 - cpu
            slow = idle_note(
                whole,
                result,
                args.broker,
                idle,
                cpu,
                mode=args.mode,
                workers=workers,
                remote_workers=args.remote_workers,
            )
            if slow is not None:
                print(f"v2x run: {scenario.id}: note: {slow}", file=sys.stderr)
            results.append(result)
            failed |= not result["passed"]
        finally:
            if recording is not None:  # (finished above, or what was recorded stays readable: v2x replay)
                recording.abandon()
    try:
        if not _write_reports(args, results, errors):
            return EXIT_RUN_ERROR
    finally:
        if view is not None:
            view.stop()
    n_failed = sum(not r["passed"] for r in results)
    print(f"{len(results) - n_failed} passed, {n_failed} failed, {len(errors)} could not run")
    if errors:
        print(f"v2x run: {len(errors)} of {len(scenarios) + len(not_here)} scenario(s) could not run: "
              + ", ".join(sid for sid, _ in errors), file=sys.stderr)  # fmt: skip
        return EXIT_BAD_INPUT if bad_input == len(errors) else EXIT_RUN_ERROR
    return EXIT_FAILED if failed else EXIT_OK


def _write_reports(args: argparse.Namespace, results: list[dict[str, Any]], errors: list[tuple[str, str]]) -> bool:
    """``v2x run --junit`` / ``--html``: write them; False (said) when one cannot be written."""
    from v2x.run.results import write_junit

    try:
        if args.junit:
            write_junit(results, args.junit, errors=errors)
        if args.html:
            from v2x.run.report import write_html

            print(f"HTML report -> {write_html(results, args.html, errors=errors)}")
    except OSError as exc:
        print(f"v2x run: cannot write a report: {_why(exc)} (an existing one was left as it was)", file=sys.stderr)
        return False
    return True


def _observe(scenario: Scenario, recording: Any, view: Any) -> Any:
    """The ``observe(variant, run_id)`` of ``run_scenario``: the recorder and/or the live view of a run."""
    from v2x.run.tap import Observers

    def observe(variant: str, run_id: str) -> Observers:
        observers: list[Any] = []
        if recording is not None:
            observers.append(recording.observer(variant, run_id))
        if view is not None:
            observers.append(view.observer(scenario, variant))
        return Observers(observers)

    return observe


def cmd_replay(args: argparse.Namespace) -> int:
    from v2x.run.record import RecordingError, read_recording, rebuild_result, summary_text

    files: list[Path] = []
    for path in args.files:  # a folder: its recordings (v2x run --record DIR writes them there: newcomer 5)
        found = sorted(path.glob("*.mcap")) if path.is_dir() else [path]
        if not found:
            print(f"v2x replay: {path}: a folder without recordings (*.mcap)", file=sys.stderr)
            return EXIT_BAD_INPUT
        files += found
    args.files = files
    try:
        recordings = [read_recording(path) for path in args.files]
        for rec in recordings:
            print(summary_text(rec))
        if args.report is None:
            return EXIT_OK
        result = rebuild_result(recordings)
    except RecordingError as exc:
        print(f"v2x replay: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from v2x.run.report import render_html

    try:
        page = render_html([result])
    except RENDER_ERRORS as exc:
        # rebuild_result applied the report's checks; this is the net under them, as in 'v2x report'.
        names = ", ".join(map(str, args.files))
        why = f"{type(exc).__name__}: {str(exc)[:200]}"
        print(f"v2x replay: {names}: the rebuilt result is not a v2x result document ({why})", file=sys.stderr)
        return EXIT_BAD_INPUT
    path = _write_page("v2x replay", args.report, page)
    if path is None:
        return EXIT_RUN_ERROR
    print(f"HTML report -> {path}")
    return EXIT_OK if result["passed"] else EXIT_FAILED


def _write_page(prog: str, path: Path, page: str) -> Path | None:
    """Write an HTML page whole (``write_atomic``); None, said on stderr, when it cannot be written."""
    from v2x.run.results import write_atomic

    try:
        return write_atomic(path, page)
    except OSError as exc:
        print(f"{prog}: cannot write {path}: {_why(exc)} (an existing file was left as it was)", file=sys.stderr)
        return None


def _why(exc: BaseException) -> str:
    """An OSError as its file and reason (``No space left on device``), anything else as its message."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename or ''}: {exc.strerror}".lstrip(": ")
    return str(exc) or type(exc).__name__


def _unique_scenarios(names: list[str]) -> list[str]:
    """``names`` without repeats of the same scenario (``--all fcw`` runs fcw once), in first-seen order."""
    seen: set[Path] = set()
    out = []
    for name in names:
        try:
            key = find_scenario(name).resolve()
        except ScenarioError:
            key = Path(name)
        if key not in seen:
            seen.add(key)
            out.append(name)
    return out


def _warm_up(scenarios: list[Scenario], *, quiet: bool) -> None:
    """Compile (or load from numba's cache) the core's kernels before the first tick. When they compile
    (the first run after installing or upgrading), say so and report each step as it finishes, so that a
    silent first tick is not taken for a hang."""
    from v2x.run.runner import warm_up_core

    def report(line: str) -> None:
        print(f"v2x run: {line}", file=sys.stderr, flush=True)

    warm_up_core(scenarios, None if quiet else report)


def _print_summary(result: dict[str, Any], path: Path) -> None:
    verdict = "PASS" if result["passed"] else "FAIL"
    print(f"{verdict} {result['scenario']} (seed {result['seed']}) -> {path}")
    for exp in result["expectations"]:  # (names and details quote scenario files and what stacks reported)
        mark = "ok  " if exp["passed"] else "FAIL"
        print(f"  {mark} [{exp['variant']}] {printable(exp['name'])}: {printable(exp['detail'])}")
    for flag in result.get("flagged", []):
        print(f"  FLAGGED [{flag['variant']}] {flag['actor']}: {flag_text(flag['conflicts'])}")
    stacks = result.get("run", {}).get("outside_stacks", {})  # what was under test (software: escaped, bounded)
    for variant, m in result["metrics"].items():
        lat = m["latency_ms"]
        rejected = sum(m["rejected"].values())
        # (a baseline delivers nothing: no latency to state, where "None/None ms" was printed: newcomer 5)
        latency = f"latency p50/p95 {lat['p50']}/{lat['p95']} ms, " if lat.get("p50") is not None else ""
        print(
            f"  [{variant}] sent {sum(m['messages']['sent'].values())}, delivered "
            f"{sum(m['messages']['delivered'].values())}, dropped {sum(m['messages']['dropped'].values())}, "
            f"{latency}rejected {rejected}, "
            + (f"late reports {m['late_reports']}, " if m.get("late_reports") else "")
            + f"{m['sim_seconds']} s simulated in {m['wall_seconds']} s"
            + "".join(
                f"; {actor} driven by {printable(repr(by[variant]))}" for actor, by in stacks.items() if variant in by
            )
        )
        # Every collision, whether an expectation is about it or not: a newcomer review's run passed while a
        # background car killed its pedestrian, which only the HTML report showed.
        crashes = [e for e in result["events"] if e["type"] == "collision" and e["variant"] == variant]
        _print_events(
            variant,
            "collisions",
            [
                f"{' / '.join(e['actors'])} at {e['t_s']:.2f} s "
                f"(relative speed {e.get('relative_speed_mps', 0.0):.1f} m/s)"
                for e in crashes
            ],
        )
        bg = m.get("background") or {}
        if bg.get("waiting_at_end"):  # (a flow above what its lane takes queues at the entry: newcomer 5)
            print(
                f"  [{variant}] background: {bg['vehicles']} vehicles took the road, {bg['waiting_at_end']} still "
                "waiting at the entries at the end (their lane's entry was full: a queue back to it, or a flow "
                "above what the lane takes)"
            )
        # Misbehaviour reports too: a detector that judges a sender implausible drops its messages, which is why
        # a warning did not come (km/h written as m/s made every car flag the others: newcomer 5)
        judged = [e for e in result["events"] if e["type"] == "misbehaviour" and e["variant"] == variant]
        _print_events(
            variant,
            "misbehaviour reported",
            [f"{e['actor']} of {e['suspect']} ({e['check']}) at {e['t_s']:.2f} s" for e in judged],
        )


def _print_events(variant: str, what: str, texts: list[str], most: int = 5) -> None:
    """One summary line of a variant's events, the first ``most`` of them and how many more (none: no line)."""
    if texts:
        more = f", and {len(texts) - most} more" if len(texts) > most else ""
        print(f"  [{variant}] {what}: {printable(', '.join(texts[:most]))}{more}")


def cmd_report(args: argparse.Namespace) -> int:
    from v2x.run.report import ReportInputError, load_results, render_html

    try:
        results = load_results(args.paths)
        page = render_html(results)
    except ReportInputError as exc:
        print(f"v2x report: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RENDER_ERRORS as exc:
        # load_results checks what the page shows; this is the net under it: still bad input, never a trace.
        print(f"v2x report: not a v2x result document ({type(exc).__name__}: {str(exc)[:200]})", file=sys.stderr)
        return EXIT_BAD_INPUT
    path = _write_page("v2x report", args.out, page)
    if path is None:
        return EXIT_RUN_ERROR
    failed = [r["scenario"] for r in results if not r["passed"]]
    print(f"{len(results)} result(s), {len(failed)} failed -> {path}")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    rows = []
    for path in catalogue():
        try:
            sc = load_scenario(path)
        except ScenarioError as exc:
            rows.append((path.stem, f"INVALID: {exc.problems[0][1]}", "", "", ""))
            continue
        rows.append((sc.id, sc.name, f"{sc.duration_s:g} s", str(len(sc.actors)), str(len(sc.expectations))))
    header = ("id", "name", "duration", "actors", "expectations")
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(5)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK
