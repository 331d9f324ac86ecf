"""Golden-record CI with an outside stack (an adopter review): ``v2x check --run-id`` and the pytest plugin's
``--v2x-run-id`` tell a stack which runs to join, and say them before the runs; with random run ids each is
said when its run waits. ``v2x sweep`` refuses a scenario with an outside stack at once (it waited 30 s on a
bus no stack can join, then printed a RunError's repr)."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._mosquitto import Mosquitto
from tests.test_sdk import ENV, PY, REPO, fcw_with_external
from tests.test_sdk import _start as start_process
from v2x.argtypes import RUN_ID_RULE
from v2x.cli import main as v2x_main
from v2x.run.runner import unjoinable
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR

pytest_plugins = ("pytester",)
INNER = ("-o", "asyncio_default_fixture_loop_scope=function")  # (as test_check.py's inner pytest runs)


def _outside_fcw(folder: Path, *, scenario_id: str = "fcw", quick: bool = False) -> Path:
    """fcw with its follower driven by an outside stack, in ``folder``; ``quick``: its v2x variant only, 7.5 s
    (the warning comes at 6-7 s), with the expectations that hold then."""
    folder.mkdir(parents=True, exist_ok=True)
    path = fcw_with_external(folder, "follower", duration_s=7.5 if quick else None)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["id"] = scenario_id
    if quick:
        doc["variants"] = ["v2x"]
        doc["expectations"] = [x for x in doc["expectations"] if x.get("variant") != "baseline"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _sdk_stack(mosquitto: Mosquitto, run_id: str, log: Path) -> subprocess.Popen[bytes]:
    """examples/sdk_vehicle.py driving the follower in run ``run_id``."""
    url = mosquitto.address.url
    return start_process(
        [PY, "examples/sdk_vehicle.py", "--broker", url, "--run", run_id, "--join-timeout", "120"], log
    )


def _finished(stack: subprocess.Popen[bytes], log: Path) -> None:
    try:
        assert stack.wait(timeout=60) == 0, log.read_text()
    finally:
        if stack.poll() is None:
            stack.kill()


@pytest.mark.broker
def test_v2x_check_with_run_id_records_and_compares_an_sdk_stacks_outcome(
    mosquitto: Mosquitto, tmp_path: Path, capsys: pytest.CaptureFixture[str], pytester: pytest.Pytester
) -> None:
    """`v2x check --run-id` with a stack of the SDK joining: the golden record is written, then a second check
    (another run id, another start of the stack) passes against it; so does the pytest plugin's item with
    --v2x-run-id. Without --run-id the stack had no way to know the run (30 s, then "never joined")."""
    folder = tmp_path / "sc"
    _outside_fcw(folder, quick=True)
    url = mosquitto.address.url
    prefix = f"ci-{uuid.uuid4().hex[:6]}"
    argv = ["check", str(folder), "--broker", url, "--out", str(tmp_path / "out")]
    stack = _sdk_stack(mosquitto, f"{prefix}-a-v2x", tmp_path / "a.log")
    try:
        code = v2x_main([*argv, "--run-id", f"{prefix}-a", "--update-golden"])
    finally:
        _finished(stack, tmp_path / "a.log")
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"fcw: the outside stack(s) of follower join run {prefix}-a-v2x; each run waits up to 30 s" in err
    record = json.loads((folder / "golden" / "fcw.json").read_text(encoding="utf-8"))
    warned = record["variants"]["v2x"]["warnings"]["follower|fcw|lead"]
    assert set(record["variants"]) == {"v2x"} and 6.0 <= warned <= 7.0
    assert all(record["variants"]["v2x"]["expectations"].values())

    stack = _sdk_stack(mosquitto, f"{prefix}-b-v2x", tmp_path / "b.log")
    try:
        code = v2x_main([*argv, "--run-id", f"{prefix}-b"])
    finally:
        _finished(stack, tmp_path / "b.log")
    assert code == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert [(c["scenario"], c["variant"], c["status"]) for c in summary["cases"]] == [("fcw", "v2x", "pass")]

    stack = _sdk_stack(mosquitto, f"{prefix}-c-v2x", tmp_path / "c.log")
    try:
        inner = [str(folder), "--v2x-broker", url, "--v2x-run-id", f"{prefix}-c", "-p", "no:cacheprovider"]
        result = pytester.runpytest_inprocess(*INNER, *inner)
    finally:
        _finished(stack, tmp_path / "c.log")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"v2x: fcw: the outside stack(s) of follower join run {prefix}-c-v2x (one item each)"])


@pytest.mark.broker
def test_v2x_check_says_which_runs_the_outside_stacks_join_with_jobs_and_random_ids(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Two scenarios with outside stacks in parallel (--jobs 2), no stack coming: each run id is said when its
    run waits (random ones: only then), and the run error names the run; with --run-id, the scenario with
    the outside stacks gets it (PREFIX-v2x, then PREFIX-baseline, said before the runs) and the other's stay
    random."""
    folder = tmp_path / "sc"
    _outside_fcw(folder, scenario_id="fcw-a")
    _outside_fcw(folder / "b", scenario_id="fcw-b")
    (folder / "b" / "fcw-follower-outside.yaml").rename(folder / "b.yaml")
    argv = ["check", str(folder), "--broker", mosquitto.address.url, "--join-timeout", "1", "--jobs", "2"]

    def check(*more: str) -> tuple[int, str]:  # (a process of its own: its pool's workers log to its stderr)
        run = subprocess.run([PY, "-m", "v2x.cli", *argv, *more], capture_output=True, text=True, timeout=120,
                             cwd=REPO, env=ENV, check=False)  # fmt: skip
        return run.returncode, run.stderr

    started = time.monotonic()
    code, err = check("--out", str(tmp_path / "out"))
    assert code == 3, err
    assert time.monotonic() - started < 30
    for sid in ("fcw-a", "fcw-b"):
        assert f"{sid}: the outside stack(s) of follower join random run ids, each said when its run waits" in err
        waits = re.findall(
            rf"run ({sid}-v2x-s0-[0-9a-f]{{6}}): waiting up to 1 s for the outside stacks of follower", err
        )
        assert len(waits) == 1, err  # (the v2x variant's run failed: the baseline's did not start)
        summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
        lines = [c["lines"][0] for c in summary["cases"] if c["scenario"] == sid]
        assert lines == [f"run error: these actors never joined run {waits[0]} within 1 s: follower"] * 2

    # --run-id with two scenarios of outside stacks: refused, nothing run
    code, err = check("--run-id", "ci", "--out", str(tmp_path / "out2"))
    assert code == 2, err
    assert "--run-id 'ci': 2 scenarios have outside stacks (external: true): fcw-b, fcw-a" in err
    assert "check each in a 'v2x check' of its own" in err
    # one of them with outside stacks, beside a scenario without: the prefix is the former's
    (folder / "b.yaml").write_text((SCENARIO_DIR / "fcw.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    prefix = f"ci-{uuid.uuid4().hex[:6]}"
    code, err = check("--run-id", prefix, "--out", str(tmp_path / "out3"))
    assert code == 3, err
    assert f"fcw-a: the outside stack(s) of follower join run {prefix}-v2x, then run {prefix}-baseline;" in err
    assert f"run {prefix}-v2x: waiting up to 1 s for the outside stacks of follower" in err
    summary = json.loads((tmp_path / "out3" / "summary.json").read_text(encoding="utf-8"))
    statuses = {(c["scenario"], c["variant"]): (c["status"], c["lines"][0]) for c in summary["cases"]}
    assert statuses[("fcw-a", "v2x")] == (
        "error",
        f"run error: these actors never joined run {prefix}-v2x within 1 s: follower",
    )
    assert statuses[("fcw", "v2x")][0] == "new"  # (ran, on a random id: no golden record in this folder)


@pytest.mark.parametrize(
    ("targets", "run_id", "said"),
    [
        (["one"], "bad/id", f"--run-id 'bad/id': {RUN_ID_RULE}"),
        (["one"], "x" * 56, "use 1-55 characters"),
        (["plain"], "ci", "--run-id 'ci': it names the runs of the scenario with outside stacks (external: true)"),
    ],
)
def test_v2x_check_refuses_a_run_id_it_cannot_use_before_anything_runs(
    targets: list[str], run_id: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _outside_fcw(tmp_path / "one")
    plain = tmp_path / "plain"
    plain.mkdir()
    for sid in ("fcw", "icw"):
        (plain / f"{sid}.yaml").write_text((SCENARIO_DIR / f"{sid}.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    # (a broker nobody listens on: the options are refused before it is tried)
    argv = ["check", *(str(tmp_path / t) for t in targets), "--broker", "mqtt://127.0.0.1:1", "--run-id", run_id]
    assert v2x_main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert said in err and "cannot reach" not in err


def test_sweep_refuses_a_scenario_with_an_outside_stack_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _outside_fcw(tmp_path)
    started = time.monotonic()
    assert v2x_main(["sweep", str(path), "--seeds", "2", "--out", str(tmp_path / "out")]) == 2
    assert time.monotonic() - started < 10  # (it waited 30 s for the stack)
    err = capsys.readouterr().err
    assert err.startswith(
        "v2x sweep: fcw: follower is driven by an outside stack (external: true), which cannot join the in-process "
        "loopback bus (no broker at all). A sweep over many seeds with an outside stack is not supported"
    ), err
    assert "--run-id PREFIX --seed N" in err and "RunError(" not in err and not (tmp_path / "out").exists()
    scenario: Any = load_scenario(path)
    assert unjoinable(scenario, "loopback") is not None and unjoinable(scenario, "mqtt://127.0.0.1:1883") is None


def test_the_plugin_takes_one_scenario_with_outside_stacks_per_run_id(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """--v2x-run-id: a prefix that is none is a usage error; a second scenario with outside stacks is a failing
    item saying why (both would join the same runs). The broker is not reached: the items fail at collection."""
    folder = tmp_path / "sc"
    _outside_fcw(folder, scenario_id="fcw-a")
    _outside_fcw(folder / "b", scenario_id="fcw-b")
    (folder / "b" / "fcw-follower-outside.yaml").rename(folder / "b.yaml")
    result = pytester.runpytest_inprocess(*INNER, str(folder), "--v2x-run-id", "bad/id", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--v2x-run-id*{RUN_ID_RULE}*"])
    inner = [str(folder), "--v2x-broker", "mqtt://127.0.0.1:1", "--v2x-run-id", "ci", "-p", "no:cacheprovider"]
    result = pytester.runpytest_inprocess(*INNER, *inner, "--collect-only")
    result.stdout.fnmatch_lines(["v2x: fcw-b: the outside stack(s) of follower join run ci-v2x, then run ci-baseline*"])
    result = pytester.runpytest_inprocess(*INNER, *inner, "-k", "load")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*--v2x-run-id ci: fcw-b and fcw-a both have outside stacks (external: true)*"])
