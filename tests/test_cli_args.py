"""Out-of-range option values exit 2 (bad input) with a message naming the option, before anything runs;
they used to reach numpy (a negative seed: a traceback and exit 1, which CI reads as a failed expectation)
or the socket (a view port over 65535). Found by a newcomer review."""

from __future__ import annotations

from pathlib import Path

import pytest

from v2x import __version__
from v2x.cli import main

CASES = [
    (["run", "fcw", "--seed", "-1"], "argument --seed: a seed from 0 to 2**63-1, got -1"),
    (["run", "fcw", "--seed", "x"], "argument --seed: an integer, got 'x'"),
    (
        ["run", "fcw", "--view", "--port", "70000"],
        "argument --port: a TCP port 1-65535 (or 0: any free one), got 70000",
    ),
    (["check", "fcw", "--seed", "-3"], "argument --seed: a seed from 0 to 2**63-1, got -3"),
    (["check", "fcw", "--jobs", "0"], "argument --jobs: N from 1 to 1024, got 0"),
    (["sweep", "fcw", "--jobs", "0"], "argument --jobs: N from 1 to 1024, got 0"),
    (["run", "fcw", "--workers", "0"], "argument --workers: N from 1 to 1024, got 0"),
    (["check", "fcw", "--workers", "0"], "argument --workers: N from 1 to 1024, got 0"),
    (["bench", "stack", "--workers", "0"], "argument --workers: N from 1 to 1024, got 0"),
    (["bench", "realtime", "--workers", "-1"], "argument --workers: N from 1 to 1024, got -1"),
    (
        ["worker", "fcw", "--broker", "mqtt://127.0.0.1:1883", "--run-id", "x", "--fleet", "0", "--of", "0"],
        "argument --of: N from 1 to 1024, got 0",
    ),
    (["impair", "sample", "rtk-fixed", "--seed", "-1"], "argument --seed: a seed from 0 to 2**63-1, got -1"),
    (["conformance", "--actor", "lead", "--seed", "-1"], "argument --seed: a seed from 0 to 2**63-1, got -1"),
    (["secure", "init", "fcw", "--port", "0"], "argument --port: a TCP port 1-65535, got 0"),
    (["bench", "traffic", "--seed", "-1"], "argument --seed: a seed from 0 to 2**63-1, got -1"),
    # Fuzz review 25: a seed of 2**200 made a run id over the topics' 64 characters (a traceback after the
    # broker started); the rates took 1_0% and non-ASCII digits that the scenario loader refuses; --seeds 1e9
    # had argparse's wording; --fleet took 1_0.
    (["run", "fcw", "--seed", str(2**63)], f"argument --seed: a seed from 0 to 2**63-1, got {2**63}"),
    (["run", "fcw", "--seed", "1_0"], "argument --seed: an integer, got '1_0'"),
    (["run", "fcw", "--seed", "\u0665"], "argument --seed: an integer, got '\u0665'"),
    (["sweep", "fcw", "--seeds", "1e9"], "argument --seeds: an integer, got '1e9'"),
    (["sweep", "fcw", "--seeds", "100001"], "argument --seeds: N from 1 to 100,000, got 100001"),
    (["sweep", "fcw", "--seeds", "0"], "argument --seeds: N from 1 to 100,000, got 0"),
    (["sweep", "fcw", "--max-collision-rate", "1_0%"], "argument --max-collision-rate: a share 0-1 or a percentage"),
    (["sweep", "fcw", "--min-pass-rate", "\u0665\u0660%"], "argument --min-pass-rate: a share 0-1 or a percentage"),
    (["impair", "sample", "rtk-fixed", "--hz", "1_0", "--csv", "-"], "argument --hz: a number, got '1_0'"),
    (["impair", "sample", "rtk-fixed", "--speed", "x", "--csv", "-"], "argument --speed: a number, got 'x'"),
    (
        ["worker", "arterial", "--broker", "mqtt://127.0.0.1:1", "--run-id", "x", "--fleet", "1_0", "--of", "2"],
        "argument --fleet: an integer, got '1_0'",
    ),
    # Counts without an upper bound took the machine (attack review 9): bench core --n 99999999999999999999
    # grew ~1 GB/s, worker --of 99999999999999 spun for good in fleet_ids_for before saying anything.
    (["bench", "core", "--n", "99999999999999999999"], "argument --n: --n wants integers from 2 to 100,000"),
    (["bench", "core", "--n", "1000,100001"], "argument --n: --n wants integers from 2 to 100,000"),
    (["bench", "traffic", "--n", "100001"], "argument --n: --n wants integers from 2 to 100,000"),
    (["bench", "core", "--ticks", "1000001"], "argument --ticks: N from 1 to 1,000,000, got 1000001"),
    (["bench", "stack", "--n", "99999999999999"], "argument --n: N from 2 to 24,000, got 99999999999999"),
    (["bench", "stack", "--n", "1"], "argument --n: N from 2 to 24,000, got 1"),
    (["bench", "stack", "--baseline-n", "797"], "argument --baseline-n: N from 0 to 796, got 797"),
    (["bench", "realtime", "--n", "24001"], "argument --n: N from 2 to 24,000, got 24001"),
    (["bench", "realtime", "--workers", "1025"], "argument --workers: N from 1 to 1024, got 1025"),
    (["run", "fcw", "--workers", "99999999999999"], "argument --workers: N from 1 to 1024, got 99999999999999"),
    (["check", "fcw", "--jobs", "1025"], "argument --jobs: N from 1 to 1024, got 1025"),
    (["sweep", "fcw", "--jobs", "1025"], "argument --jobs: N from 1 to 1024, got 1025"),
    (["secure", "init", "sec", "--scenario", "fcw", "--workers", "1025"], "argument --workers: N from 1 to 1024"),
    (
        [
            "worker",
            "arterial",
            "--broker",
            "mqtt://127.0.0.1:1",
            "--run-id",
            "x",
            "--fleet",
            "0",
            "--of",
            "99999999999999",
        ],
        "argument --of: N from 1 to 1024, got 99999999999999",
    ),
]


@pytest.mark.parametrize(("argv", "said"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_an_out_of_range_option_exits_2_naming_it(
    argv: list[str], said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may be written, but if it were, not into the checkout
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing ran


def test_the_bounds_admit_their_largest_value(tmp_path: Path) -> None:
    """The bounds are the largest the design takes, not less: the stack benchmark's road at its largest N
    fits the loader's room for 100,000 background vehicles (8 more vehicles would not), its baseline's lanes
    hold its largest --baseline-n (one
    more would start past a lane's end: it was refused only after the fleet's run), and the largest fleet count
    parses."""
    import json

    from v2x import argtypes
    from v2x.bench.stack import individual_scenario, stack_scenario
    from v2x.cli import build_parser
    from v2x.scenario import ScenarioError, load_scenario
    from v2x.scenario.model import MAX_EXTENT_M

    def loads(doc: dict[str, object]) -> bool:
        path = tmp_path / "bench.yaml"
        path.write_text(json.dumps(doc))  # (JSON is YAML)
        try:
            load_scenario(path)
        except ScenarioError:
            return False
        return True

    most = argtypes.BENCH_MAX_STACK_VEHICLES
    lanes = stack_scenario(most, 1.0)["road"]["lanes"]
    assert max(x for lane in lanes for x, _ in lane["centerline"]) <= MAX_EXTENT_M
    assert loads(stack_scenario(most, 1.0)) and not loads(stack_scenario(most + 8, 1.0))
    agents = argtypes.BENCH_MAX_AGENTS
    assert loads(individual_scenario(agents, 1.0)) and not loads(individual_scenario(agents + 1, 1.0))
    argv = ["worker", "arterial", "--run-id", "x", "--fleet", "0", "--of", str(argtypes.MAX_PROCESSES)]
    assert build_parser().parse_args(argv).of == argtypes.MAX_PROCESSES
    assert build_parser().parse_args(["bench", "core", "--n", "2,100000"]).n == [2, 100_000]


@pytest.mark.parametrize(("hz", "seconds"), [("1e308", "1e308"), ("1e200", "1e200"), ("1e300", "10"), ("1e-9", "1")])
def test_impair_sample_refuses_a_sample_count_out_of_range(
    hz: str, seconds: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attack review 9: --hz 1e308 --seconds 1e308 (each finite, their product inf) was an OverflowError
    traceback from round(), exit 1."""
    csv = tmp_path / "s.csv"
    argv = ["impair", "sample", "rtk-fixed", "--hz", hz, "--seconds", seconds, "--csv", str(csv)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--hz x --seconds must give between 1 and 10 000 000 samples" in err and "Traceback" not in err
    assert not csv.exists()


def test_impair_sample_refuses_a_speed_faster_than_a_scenario_takes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fuzz review 25: --speed 1e308 wrote rows of inf (a numpy overflow warning) and exit 0."""
    csv = tmp_path / "s.csv"
    assert main(["impair", "sample", "tunnel-outage", "--speed", "1e308", "--csv", str(csv)]) == 2
    assert "--speed must be 0 to 140 m/s, got 1e+308" in capsys.readouterr().err
    assert not csv.exists()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"v2x-testbed {__version__}"


def test_conformance_says_why_the_embedded_broker_will_not_do(capsys: pytest.CaptureFixture[str]) -> None:
    """It said "expected 'embedded', mqtt://host:port ..." to --broker embedded."""
    assert main(["conformance", "--actor", "lead", "--broker", "embedded"]) == 2
    err = capsys.readouterr().err
    assert "your stack could not reach a broker inside this process" in err and "expected 'embedded'" not in err


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    """``v2x list | head -1`` printed a BrokenPipeError traceback (an outside review, 1 run in 5). The reader is
    gone before the command writes: exit 141 (128 + SIGPIPE, as a Unix tool), nothing on stderr."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "v2x", "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).parents[1],
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # long before the interpreter has started and written anything
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert err == ""


def test_the_view_port_may_be_0_for_any_free_one() -> None:
    """docs/RECORDING.md says --port 0 takes any free port; the option refused it (a newcomer review)."""
    from v2x.cli import build_parser

    assert build_parser().parse_args(["run", "fcw", "--view", "--port", "0"]).port == 0
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "fcw", "--view", "--port", "65536"])


def test_progress_lines_only_for_runs_that_take_a_while(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not on a terminal, a variant says nothing for its first 5 s, then one line per 10 % (a log of `v2x run
    --all` had some 1,100 progress lines for runs of a second each: a newcomer review)."""
    import v2x.run.cli as run_cli
    from v2x.scenario import find_scenario, load_scenario

    now = [100.0]
    monkeypatch.setattr("v2x.run.cli.time.monotonic", lambda: now[0])
    progress = run_cli._Progress(load_scenario(find_scenario("fcw")), enabled=True)
    progress.tty = False
    for tick in range(0, 141):  # a quick run: 0.01 s a tick
        progress("v2x", tick, 140)
        now[0] += 0.01
    assert capsys.readouterr().err == ""
    for tick in range(0, 141):  # a slow one: 0.1 s a tick, 14 s in all
        progress("baseline", tick, 140)
        now[0] += 0.1
    lines = capsys.readouterr().err.splitlines()
    assert 5 <= len(lines) <= 8 and all(line.startswith("fcw [baseline] t=") for line in lines), lines
    assert "100.0%" in lines[-1]
    # the variant's own wall time (from the scenario's start it read 15.5 s: newcomer 5)
    assert lines[-1].endswith("wall  14.0 s"), lines[-1]


BAD_URLS = [
    ("mqtt://[::1", "broker URL 'mqtt://[::1' is not a valid URL"),
    ("mqtt://ci:S3cretPassw0rd@127.0.0.1:1883x", "URL 'mqtt://ci:***@127.0.0.1:1883x': the port is not a number"),
    ("mqtt://ci:S3cret/Passw0rd@127.0.0.1:1883", "broker URL 'mqtt://ci:***@127.0.0.1:1883': a '/', '?', '#', '@'"),
    # attack review 4: a mistyped scheme separator printed the password whole; port 0 went to 1883
    ("mqtt:/ci:S3cret@127.0.0.1", "broker URL 'mqtt:/ci:***@127.0.0.1'"),
    ("mqtt//ci:S3cret@127.0.0.1", "broker URL 'mqtt//ci:***@127.0.0.1'"),
    ("mqtt://ci:S3cret@127.0.0.1:0", "the port is not a number from 1 to 65535"),
]
COMMANDS = [
    ["run", "fcw"],
    ["check", "fcw"],
    ["conformance", "--actor", "follower"],
    ["worker", "arterial", "--run-id", "x", "--fleet", "0", "--of", "1"],
]


@pytest.mark.parametrize(
    ("url", "said"),
    BAD_URLS,
    ids=["ipv6-bracket", "port", "slash-in-password", "scheme-slash", "scheme-colon", "port-0"],
)
@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_a_bad_broker_url_exits_2_without_its_password(
    command: list[str],
    url: str,
    said: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Attack review 3's #8: an unclosed IPv6 bracket gave a traceback (exit 1), and a mistyped port (or a '/' in
    the password, which ends the host part early) printed the whole URL, password included, on stderr."""
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--broker", url]) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err
    assert "S3cret" not in err and "Passw0rd" not in err


def test_a_percent_encoded_password_is_decoded() -> None:
    from v2x.net.broker import parse_broker_url, redacted_url

    address = parse_broker_url("mqtt://ci:S3cret%2FPassw0rd@127.0.0.1:1883")
    assert (address.username, address.password, address.port) == ("ci", "S3cret/Passw0rd", 1883)
    assert redacted_url("mqtt://ci:a@b/c@host:1") == "mqtt://ci:***@host:1"
    assert redacted_url("mqtt://host:1883x") == "mqtt://host:1883x"


def test_v2x_run_takes_a_folder_of_scenarios_as_v2x_check_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A newcomer review: `v2x run DIR` said "Is a directory" where `v2x check DIR` took the folder's files."""
    import shutil

    from v2x.scenario.loader import SCENARIO_DIR

    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(SCENARIO_DIR / "fcw.yaml", folder / "fcw.yaml")
    assert main(["run", str(folder), "--variant", "v2x", "--out", str(tmp_path / "out"), "-q"]) == 0
    assert (tmp_path / "out" / "fcw" / "result.json").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["run", str(empty)]) == 2
    assert f"no scenario files (*.yaml, *.yml) in {empty}" in capsys.readouterr().err


def test_a_results_folder_named_as_a_shipped_id_does_not_hide_the_scenario(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claims review: `v2x run fcw --out .` makes ./fcw (the result), and the same command again read that
    folder ("no scenario files in fcw", exit 2). A folder without scenario files named as a shipped id is the id."""
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert main(["run", "fcw", "--variant", "v2x", "--out", ".", "-q"]) == 0
    assert (tmp_path / "fcw" / "result.json").exists()


def test_a_view_port_in_use_says_port_0(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["run", "fcw", "--view", "--port", str(port)]) == 2
    assert "; --port 0 takes any free port" in capsys.readouterr().err


def test_every_join_timeout_and_run_id_prefix_is_the_one_in_argtypes() -> None:
    """A diff review: the --join-timeout option was written out in four commands, its default 30 in eight
    places, and a --run-id prefix checked three ways. One option helper, one default, one rule now."""
    import argparse
    import inspect

    from v2x import argtypes
    from v2x.cli import build_parser
    from v2x.net.world import World
    from v2x.run.check import _Job
    from v2x.run.runner import run_scenario

    parser = build_parser()
    for argv in (["run", "fcw"], ["check"], ["conformance", "--actor", "follower"]):
        assert parser.parse_args(argv).join_timeout == argtypes.JOIN_TIMEOUT_S, argv
        assert parser.parse_args([*argv, "--join-timeout", "7.5"]).join_timeout == 7.5
    for default in (
        inspect.signature(run_scenario).parameters["join_timeout_s"].default,
        inspect.signature(World.__init__).parameters["join_timeout_s"].default,
        _Job("x", 0, "embedded", 1).join_timeout_s,
    ):
        assert default == argtypes.JOIN_TIMEOUT_S
    longest = "p" * (64 - len("-baseline"))
    assert argtypes.run_id_prefix(longest) == longest
    for bad in (longest + "p", "bad/id", "x\n", ""):
        assert not argtypes.valid_run_id_prefix(bad)
        with pytest.raises(argparse.ArgumentTypeError, match="use 1-55 characters"):
            argtypes.run_id_prefix(bad)
