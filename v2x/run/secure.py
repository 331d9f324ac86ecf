"""``v2x secure init``: the files of a secure run on a broker of one's own (docs/SECURITY.md)."""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from v2x import argtypes
from v2x.argtypes import EXIT_BAD_INPUT, EXIT_OK, EXIT_RUN_ERROR
from v2x.net import topics
from v2x.scenario import Scenario, ScenarioError, find_scenario, load_scenario

if TYPE_CHECKING:
    from v2x.net.secure import Security


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sec = sub.add_parser(
        "secure",
        help="make the users, ACLs and TLS files of a secure run on your own Mosquitto",
        description="Secure runs (v2x run --secure) on a broker of your own.",
        epilog="Exit codes: as 'v2x secure init --help' says (0 written, 2 bad input, 3 a file could not be written).",
    )
    cmds = sec.add_subparsers(dest="secure_command", metavar="COMMAND", required=True)
    init = cmds.add_parser(
        "init",
        help="write a run's users, passwords, ACLs, a CA and a Mosquitto configuration into DIR",
        description="Write into DIR, for one scenario and run id: a CA and a server certificate for --host (ca.crt, "
        "server.crt, server.key), a Mosquitto 2 password file and ACL file (passwd, acl) and a configuration "
        "with a TLS listener on --port (mosquitto.conf), the world's credentials (world.json) and one "
        "credentials file per actor for outside stacks (actors/ID.json) and, with --workers N, per fleet for the "
        "fleet workers of 'v2x run --remote-workers' (fleets/FLEET.json). Then: mosquitto -c DIR/mosquitto.conf, "
        "and v2x run ID --secure-dir DIR --broker mqtts://HOST:PORT (docs/SECURITY.md).",
        epilog="Exit codes: 0 written, 2 bad input (nothing written; also a DIR of another user's or one any "
        "user may write to), 3 the files could not be written. "
        "world.json, passwd, server.key, actors/*.json and fleets/*.json hold secrets (mode 0600): keep DIR "
        "private.",
    )
    init.add_argument(
        "dir",
        type=Path,
        metavar="DIR",
        help="directory to write (created, 0700; files in it are replaced, a symlink never followed)",
    )
    init.add_argument("--scenario", required=True, metavar="SCENARIO", help="scenario id or YAML file")
    init.add_argument(
        "--run-id",
        metavar="PREFIX",
        help="the run ids PREFIX-v2x and PREFIX-baseline the files are for (default: a random one, printed); "
        "v2x run --secure-dir DIR uses it",
    )
    init.add_argument(
        "--host",
        action="append",
        metavar="NAME",
        help="the broker's host name or IP address as clients will dial it (repeatable; the server "
        "certificate names each; the first goes into the credentials files' broker URL; default 127.0.0.1)",
    )
    init.add_argument("--port", type=argtypes.port, default=8883, help="the TLS listener's port (default 8883)")
    init.add_argument(
        "--workers",
        type=argtypes.count,
        metavar="N",
        help=f"also a broker user per fleet for 'v2x run --workers N --remote-workers' (N at most "
        f"{argtypes.MAX_PROCESSES}; the scenario's equipped background vehicles served by 'v2x worker' processes): "
        "fleets/FLEET.json, the login, CA and broker URL of one worker, to copy to that worker's machine and give "
        "it as 'v2x worker --credentials FILE' "
        '(docs/SECURITY.md "Remote fleet workers in a secure run")',
    )
    init.set_defaults(handler=cmd_secure_init)


def cmd_secure_init(args: argparse.Namespace) -> int:
    from v2x.net.secure import SecureDirError, make_tls, new_run_keys, write_secure_dir
    from v2x.sim.simulation import fleet_ids_for

    try:
        scenario = load_scenario(find_scenario(args.scenario))
    except ScenarioError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    prefix = args.run_id or f"{scenario.id[:40]}-{secrets.token_hex(4)}"
    if not argtypes.valid_run_id_prefix(prefix):
        print(f"v2x secure init: --run-id {prefix!r}: {argtypes.RUN_ID_RULE}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not 0 < args.port < 65536:
        print(f"v2x secure init: --port {args.port}: not a TCP port", file=sys.stderr)
        return EXIT_BAD_INPUT
    hosts: list[str] = args.host or ["127.0.0.1"]
    bad = [h for h in hosts if not h or (any(c in h for c in "/@:# ") and not _is_ipv6(h))]
    if bad:
        print(f"v2x secure init: --host {bad[0]!r}: not a host name or IP address", file=sys.stderr)
        return EXIT_BAD_INPUT
    run_ids: dict[str, str] = {v: f"{prefix}-{v}" for v in scenario.variants}
    assert all(topics.valid_id(r) for r in run_ids.values())
    fleets = [f for v in scenario.variants for f in fleet_ids_for(scenario, v, args.workers)] if args.workers else []
    if args.workers and not fleets:
        print(
            f"v2x secure init: --workers: scenario {scenario.id} has no equipped background vehicles (flows with "
            "penetration > 0 in its V2X variant): no fleet to serve",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    tls = make_tls(hosts)
    keys = new_run_keys(scenario.id, prefix, run_ids, [a.id for a in scenario.actors], tls.ca_pem, fleets)
    host = f"[{hosts[0]}]" if _is_ipv6(hosts[0]) else hosts[0]
    try:
        written = write_secure_dir(args.dir, keys, tls, run_prefix=prefix, host=host, port=args.port)
    except SecureDirError as exc:  # (another user's folder, or anyone's: said before anything is written)
        print(f"v2x secure init: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"v2x secure init: cannot write {args.dir}: {exc}", file=sys.stderr)
        return EXIT_RUN_ERROR
    print(f"wrote {len(written)} files to {args.dir} for scenario {scenario.id}, run ids {', '.join(run_ids.values())}")
    print(f"  broker:        mosquitto -c {args.dir / 'mosquitto.conf'}")
    print(f"  run:           v2x run {args.scenario} --secure-dir {args.dir} --broker mqtts://{host}:{args.port}")
    print(f"  outside stack: {args.dir / 'actors'}/<actor>.json (its user, password, CA and topics)")
    if fleets:
        print(
            f"  fleet worker:  v2x worker {args.scenario} --run-id {prefix} --fleet K --of {args.workers} "
            f"--credentials {args.dir / 'fleets'}/{fleets[0].removesuffix('0')}K.json --seal-key FILE (a copy of "
            f"the run's --seal-key); the run: add --workers {args.workers} --remote-workers --run-id {prefix} "
            "--seal-key FILE"
        )
    return EXIT_OK


def security_from_args(
    args: argparse.Namespace,
    scenarios: list[Scenario],
    prog: str,
    remote_fleets: int = 0,
    variants: Sequence[str] | None = None,
) -> Security | int | None:
    """``--secure`` / ``--secure-dir`` (of ``v2x run`` or ``v2x conformance``: ``prog``) as a
    ``v2x.net.secure.Security`` (None: an open run), or the exit code of bad input (said on stderr).
    ``remote_fleets``: the N of ``v2x run --workers N --remote-workers`` (0: none), whose fleets need users;
    ``variants``: the variants that will run (None: every variant of the scenario), each needing a run id."""
    from v2x.net.broker import redacted_url
    from v2x.net.secure import SecureDirError, Security, load_secure_dir
    from v2x.sim.simulation import fleet_ids_for

    if args.secure_dir is None:
        if not getattr(args, "secure", False):
            return None
        if args.broker != "embedded":
            print(
                f"{prog}: --secure with a broker of your own needs --secure-dir DIR: write DIR with "
                "'v2x secure init DIR --scenario ID', start the broker with DIR/mosquitto.conf",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        return Security()
    try:
        sd = load_secure_dir(args.secure_dir)
    except SecureDirError as exc:
        print(f"{prog}: --secure-dir: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    problem = None
    if len(scenarios) != 1 or scenarios[0].id != sd.keys.scenario_id:
        problem = f"it was made for scenario {sd.keys.scenario_id!r} alone"
    elif args.run_id is not None and args.run_id != sd.run_prefix:
        problem = f"it was made for --run-id {sd.run_prefix!r}"
    elif missing := [a.id for a in scenarios[0].actors if a.id not in sd.keys.actors]:
        problem = f"it has no credentials for actor(s) {', '.join(missing)}"
    elif missing := [
        v for v in scenarios[0].variants if (variants is None or v in variants) and v not in sd.keys.run_ids
    ]:
        # (its world.json's run_ids: without one the run ended in a traceback: attack review 9)
        problem = (
            f"it has no run id for variant {', '.join(map(repr, missing))} (it has "
            f"{', '.join(map(repr, sd.keys.run_ids)) or 'none'}): write it again with 'v2x secure init', or run "
            "the variants it has with --variant"
        )
    elif remote_fleets and (
        missing := [
            f
            for v in scenarios[0].variants
            for f in fleet_ids_for(scenarios[0], v, remote_fleets)
            if f not in sd.keys.fleets
        ]
    ):
        problem = (
            f"it has no credentials for the remote workers' fleet(s) {', '.join(missing)}: write it with 'v2x secure "
            f"init ... --workers {remote_fleets}' (and restart the broker with it)"
        )
    elif remote_fleets and sd.keys.fleets and len(sd.keys.fleets) != remote_fleets:
        # (its fleet files say N: each worker, given --of as the world's --workers, refuses another N; the world
        # then waited out --worker-timeout for workers that had all exited 2: a diff review)
        problem = (
            f"it was made for --workers {len(sd.keys.fleets)}, not --workers {remote_fleets} (its fleet files say "
            f"so, and each worker checks its --of against them): write it again with 'v2x secure init ... --workers "
            f"{remote_fleets}', or run with --workers {len(sd.keys.fleets)}"
        )
    elif args.broker != "embedded" and not args.broker.startswith(("mqtts://", "ssl://")):
        problem = (
            f"--broker {redacted_url(args.broker)} is not TLS: use mqtts://host:port (as in "
            f"{sd.broker or 'DIR/world.json'})"
        )
    if problem:
        print(f"{prog}: --secure-dir {args.secure_dir}: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return Security(directory=args.secure_dir)


def _is_ipv6(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False
