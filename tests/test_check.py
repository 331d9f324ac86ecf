"""``v2x check`` (golden regression of outcomes) and the pytest plugin that collects scenario files."""

from __future__ import annotations

import copy
import json
import re
import shutil
import signal
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._signals import interrupted
from v2x.cli import main
from v2x.run.check import GOLDEN_VERSION, TOLERANCES, compare_variant, golden_path, load_golden, scenario_files
from v2x.scenario import catalogue, load_scenario
from v2x.scenario.loader import SCENARIO_DIR

pytest_plugins = ("pytester",)

FCW = SCENARIO_DIR / "fcw.yaml"
# The inner pytest run: our plugin loads through its pytest11 entry point, as in a user's CI; pytest-asyncio
# is told its loop scope (no ini file there).
INNER = ("-o", "asyncio_default_fixture_loop_scope=function")


def _summary(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "expectations": {"warned": True},
        "warnings": {"follower|fcw|lead": 6.1},
        "collisions": [{"actors": "a-b", "t_s": 8.9, "relative_speed_mps": 16.67}],
        "stops": {"follower": [{"t_s": 9.5, "x_m": 238.21, "y_m": 0.0}]},
        "speeds": {"car_a@120,0": 8.33},
        "violations": [{"actor": "car_a", "kind": "red_light", "t_s": 12.0}],
    }
    base.update(overrides)
    return base


def test_the_same_outcome_within_tolerance_is_no_difference() -> None:
    now = _summary(
        warnings={"follower|fcw|lead": 6.3},  # 0.2 s later: at the tolerance
        stops={"follower": [{"t_s": 9.6, "x_m": 238.9, "y_m": 0.5}]},
        speeds={"car_a@120,0": 8.8},
    )
    assert compare_variant(_summary(), now, TOLERANCES) == []


@pytest.mark.parametrize(
    ("change", "line"),
    [
        (
            {"warnings": {"follower|fcw|lead": 7.3}},
            "follower: first FCW about lead 6.10 s -> 7.30 s (tolerance 0.20 s)",
        ),
        ({"warnings": {}}, "follower: FCW about lead no longer raised (was first at 6.10 s)"),
        (
            {"warnings": {"follower|fcw|lead": 6.1, "neighbour|fcw|lead": 6.4}},
            "neighbour: FCW about lead now raised, first at 6.40 s (not in the golden record)",
        ),
        ({"collisions": []}, "collision a-b at 8.90 s no longer happens"),
        (
            {"collisions": [{"actors": "a-b", "t_s": 8.9, "relative_speed_mps": 10.0}]},
            "collision a-b: 16.67 -> 10.00 m/s (tolerance 0.50 m/s)",
        ),
        ({"stops": {}}, "follower: stops 1 -> 0"),
        (
            {"stops": {"follower": [{"t_s": 9.5, "x_m": 250.0, "y_m": 0.0}]}},
            "follower: stop 1 at (238.2, 0.0) -> (250.0, 0.0) m (11.8 m apart, tolerance 1.0 m)",
        ),
        ({"speeds": {"car_a@120,0": 13.9}}, "car_a: speed at (120,0) 8.33 -> 13.90 m/s (tolerance 0.50 m/s)"),
        ({"violations": []}, "car_a: red_light violation at 12.00 s no longer happens"),
        ({"expectations": {"warned": False}}, "expectation 'warned': passed -> failed"),
    ],
)
def test_a_changed_outcome_reads_as_one_line(change: dict[str, Any], line: str) -> None:
    assert compare_variant(_summary(), _summary(**change), TOLERANCES) == [line]


def _copy_fcw(tmp_path: Path) -> Path:
    folder = tmp_path / "mine"
    (folder / "golden").mkdir(parents=True)
    shutil.copy(FCW, folder / "fcw.yaml")
    shutil.copy(golden_path(FCW, "fcw"), folder / "golden" / "fcw.json")
    return folder


def test_check_passes_then_fails_with_a_readable_diff_when_a_threshold_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _copy_fcw(tmp_path)
    out = tmp_path / "out"
    assert main(["check", str(folder), "--out", str(out)]) == 0
    cases = ET.parse(out / "junit.xml").getroot().findall(".//testcase")
    assert sorted((c.get("classname"), c.get("name")) for c in cases) == [
        ("v2x.check.fcw", "baseline"),
        ("v2x.check.fcw", "v2x"),
    ]
    assert json.loads((out / "summary.json").read_text())["passed"] is True
    capsys.readouterr()

    path = folder / "fcw.yaml"
    path.write_text(path.read_text().replace("expectations:", "thresholds: {fcw_ttc_s: 2.0}\nexpectations:", 1))
    assert main(["check", str(path), "--out", str(out), "-v"]) == 1
    printed = capsys.readouterr().out
    assert "follower: first FCW about lead 6.00 s -> 6.90 s (tolerance 0.20 s)" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] is False and summary["counts"]["fail"] == 1
    failures = ET.parse(out / "junit.xml").getroot().findall(".//failure")
    assert len(failures) == 1 and "6.00 s -> 6.90 s" in (failures[0].text or "")

    # --update-golden takes the new outcome and says what changed; then the outcome matches its record, but
    # the scenario still fails: with the later warning the follower no longer stops in time. Updating says so
    # too, exit 1 (it said "2 passed", exit 0: found by a newcomer review).
    assert main(["check", str(path), "--out", str(out), "--update-golden"]) == 1
    printed = capsys.readouterr().out
    assert "[v2x] follower: first FCW about lead 6.00 s -> 6.90 s\n" in printed
    assert "1 passed (1 unchanged), 1 failed, 0 could not run (1 scenario, " in printed
    assert "(tolerance 0.00 s)" not in printed  # every change is named, without a tolerance the record does not have
    by_variant = {c["variant"]: c for c in json.loads((out / "summary.json").read_text())["cases"]}
    case = by_variant["v2x"]
    assert case["status"] == "fail" and "expectation 'warned driver avoids the crash' failed" in case["lines"][0]
    # the baseline, which did not change, carries none of the v2x variant's changes (a newcomer review: it did)
    # and is said to be unchanged, not UPDATED (a newcomer review)
    base = by_variant["baseline"]
    assert base["status"] == "unchanged" and base["lines"] == []
    assert re.search(r"^fcw +baseline +UNCHANGED$", printed, re.M), printed
    assert main(["check", str(path), "--out", str(out)]) == 1
    [case] = [c for c in json.loads((out / "summary.json").read_text())["cases"] if c["variant"] == "v2x"]
    line, gap = case["lines"]  # when, and how hard (the impact speed); and the gap expectation's failure
    assert gap.startswith("expectation 'warned driver keeps 2 m to the lead' failed: smallest gap follower - lead")
    assert line.startswith(
        "expectation 'warned driver avoids the crash' failed: follower - lead collided at t=9.40 s, "
    )
    assert line.endswith(" m/s")


def test_a_scenario_without_a_record_fails_until_one_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _copy_fcw(tmp_path)
    (folder / "golden" / "fcw.json").unlink()
    out = tmp_path / "out"
    assert main(["check", str(folder), "--out", str(out)]) == 1  # (docs/RESULTS.md: 1, no record yet)
    printed = capsys.readouterr().out
    # the tally names the cases as the table and summary.json do: new, not failed (a newcomer review: the table
    # said NEW, the tally '0 passed, 2 failed', summary.json '"fail": 0, "new": 2')
    assert re.search(r"^fcw +v2x +NEW +no golden record", printed, re.M), printed
    assert "\n0 passed, 0 failed, 2 new (no golden record), 0 could not run (1 scenario, " in printed, printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] is False and summary["counts"]["new"] == 2 and summary["counts"]["fail"] == 0
    assert main(["check", str(folder), "--out", str(out), "--update-golden"]) == 0
    record = load_golden(folder / "golden" / "fcw.json")
    assert record is not None and record["version"] == GOLDEN_VERSION and set(record["variants"]) == {"v2x", "baseline"}
    printed = capsys.readouterr().out
    assert re.search(r"^fcw +v2x +UPDATED +new golden record$", printed, re.M), printed
    assert "\n2 passed (2 updated), 0 failed, 0 could not run (1 scenario, " in printed, printed


def test_the_tally_names_each_kind_of_case() -> None:
    from v2x.run.check import STATUSES, tally

    counts = dict.fromkeys(STATUSES, 0)
    assert tally({**counts, "pass": 3, "fail": 1}, 2, 1.5) == "3 passed, 1 failed, 0 could not run (2 scenarios, 1.5 s)"
    assert (
        tally({**counts, "new": 2, "error": 1}, 1, 3.0)
        == "0 passed, 0 failed, 2 new (no golden record), 1 could not run (1 scenario, 3.0 s)"
    )
    assert (
        tally({**counts, "updated": 1, "unchanged": 3, "fail": 1}, 3, 0.0)
        == "4 passed (1 updated, 3 unchanged), 1 failed, 0 could not run (3 scenarios, 0.0 s)"
    )


def test_bad_input_exits_2_before_running(tmp_path: Path) -> None:
    folder = _copy_fcw(tmp_path)
    (folder / "golden" / "fcw.json").write_text("{not json")
    assert main(["check", str(folder), "--out", str(tmp_path / "out")]) == 2
    # nothing ran (no case per scenario), and the JUnit file says why for a CI job's report
    report = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert report["passed"] is False and [c["scenario"] for c in report["cases"]] == ["scenarios"]
    assert "fcw.json" in ET.tostring(ET.parse(tmp_path / "out" / "junit.xml").getroot(), encoding="unicode")
    assert main(["check", "nosuch", "--out", str(tmp_path / "out2")]) == 2
    assert ET.parse(tmp_path / "out2" / "junit.xml").getroot().get("errors") == "1"
    # v2x run with --out a file: before the run, not after it (exit 3 after the whole run: newcomer 5)
    (tmp_path / "a-file").write_text("x")
    t0 = time.monotonic()
    assert main(["run", "fcw", "--out", str(tmp_path / "a-file"), "-q"]) == 2
    assert time.monotonic() - t0 < 10


def test_an_unreachable_broker_is_tried_once_and_nothing_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    from v2x.net import transport
    from v2x.net.broker import free_port

    monkeypatch.setattr(transport, "BROKER_WAIT_S", 1.0)
    url = f"mqtt://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    # three scenarios, one wait: before, each run waited 10 s for the broker in turn
    files = [str(SCENARIO_DIR / f"{name}.yaml") for name in ("fcw", "icw", "glosa")]
    code = main(["check", *files, "--broker", url, "--out", str(tmp_path / "out")])
    assert code == 3 and time.monotonic() - t0 < 5.0
    err = capsys.readouterr().err
    assert f"cannot reach the MQTT broker at {url} within 1 s" in err and "nothing was run" in err
    assert "refused" in err.lower()  # the reason, not only the fact
    junit = ET.parse(tmp_path / "out" / "junit.xml").getroot()  # why nothing ran, for a CI job's report
    assert junit.get("errors") == "1" and "cannot reach the MQTT broker" in ET.tostring(junit, encoding="unicode")
    # v2x run of several scenarios too
    t0 = time.monotonic()
    ran = ["--out", str(tmp_path / "ran"), "--junit", str(tmp_path / "run.xml"), "--html", str(tmp_path / "run.html")]
    assert main(["run", *files, "--broker", url, *ran, "-q"]) == 3
    assert time.monotonic() - t0 < 5.0 and "nothing was run" in capsys.readouterr().err
    # with its reports, each scenario named (they were not written at all: newcomer 5)
    junit = ET.parse(tmp_path / "run.xml").getroot()
    assert [s.get("name") for s in junit] == ["fcw", "icw", "glosa"]
    assert all(s.get("errors") == "1" for s in junit), ET.tostring(junit, encoding="unicode")
    assert "cannot reach the MQTT broker" in (tmp_path / "run.html").read_text(encoding="utf-8")


def test_every_shipped_scenario_has_a_golden_record_that_matches_its_expectations() -> None:
    for path in catalogue():
        sc = load_scenario(path)
        record = load_golden(golden_path(path, sc.id))
        assert record is not None, f"{path.name}: no golden record (v2x check {sc.id} --update-golden)"
        assert set(record["variants"]) == set(sc.variants)
        for variant, summary in record["variants"].items():
            names = {e.name for e in sc.expectations if e.variant == variant}
            assert set(summary["expectations"]) == names and all(summary["expectations"].values())


def test_pytest_collects_a_folder_of_scenarios_with_readable_names(pytester: pytest.Pytester, tmp_path: Path) -> None:
    folder = _copy_fcw(tmp_path)
    bad = folder / "broken.yaml"
    bad.write_text(FCW.read_text().replace("speed_mps: 16.67", "speed_mps: fast", 1).replace("id: fcw", "id: broken"))
    (folder / "notes.yaml").write_text("just: a yaml file that is not a scenario\nid: 3\nname: x\n")
    # its `actors:` misspelt: collected all the same, and failing naming it (it was not collected, and pytest
    # passed without it: newcomer review 6)
    (folder / "typo.yaml").write_text(FCW.read_text().replace("actors:", "actor:").replace("id: fcw", "id: typo"))
    result = pytester.runpytest_inprocess(*INNER, str(folder), "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    for line in ("*fcw.yaml::v2x PASSED*", "*fcw.yaml::baseline PASSED*", "*broken.yaml::load FAILED*"):
        result.stdout.fnmatch_lines([line])
    result.stdout.fnmatch_lines(["*actors[[]0[]] (lead).speed_mps: Input should be a valid number*"])
    result.stdout.fnmatch_lines(["*typo.yaml::load FAILED*"])
    result.stdout.fnmatch_lines(["*actor: unknown field*did you mean 'actors'?*"])


def test_each_plugin_item_runs_its_variant_and_takes_its_own_time(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """Session 19's note: pytest's JUnit put the scenario's whole time (both variants' runs) on its first item
    and about 0 s on the second. Each item now runs its variant alone (with the outcome that variant has in a
    run of both, which the golden record checks)."""
    folder = _copy_fcw(tmp_path)
    junit = tmp_path / "junit.xml"
    result = pytester.runpytest_inprocess(*INNER, str(folder), f"--junitxml={junit}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    times = {c.get("name"): float(c.get("time") or 0) for c in ET.parse(junit).getroot().iter("testcase")}
    assert set(times) == {"v2x", "baseline"} and min(times.values()) > 0.1 * max(times.values()), times


def test_the_plugin_fails_a_scenario_without_a_golden_record_as_v2x_check_does(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    folder = _copy_fcw(tmp_path)
    (folder / "golden" / "fcw.json").unlink()
    result = pytester.runpytest_inprocess(*INNER, str(folder), "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [f"*no golden record: create it with `v2x check {folder / 'fcw.yaml'} --update-golden`*"]
    )


def test_the_plugin_reports_a_changed_outcome(pytester: pytest.Pytester, tmp_path: Path) -> None:
    folder = _copy_fcw(tmp_path)
    record = json.loads((folder / "golden" / "fcw.json").read_text())
    changed = copy.deepcopy(record)
    changed["variants"]["baseline"]["collisions"][0]["t_s"] = 7.0
    (folder / "golden" / "fcw.json").write_text(json.dumps(changed))
    result = pytester.runpytest_inprocess(*INNER, str(folder), "-p", "no:cacheprovider", "-rf", "-vv")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*collision follower-lead: 7.00 s -> 8.90 s (tolerance 0.20 s)*"])
    # the short summary's line says why, not only which (newcomer review 6)
    result.stdout.fnmatch_lines(["FAILED *fcw.yaml::baseline - fcw.yaml [[]baseline[]]: *collision follower-lead*"])
    assert "--v2x-seed" not in result.stdout.str()
    # another seed than the record's: compared with that seed's own record, as `v2x check --seed` does
    result = pytester.runpytest_inprocess(
        *INNER, str(folder), "--v2x-seed", "3", "-p", "no:cacheprovider", "-k", "baseline"
    )
    result.assert_outcomes(failed=1)
    make = f"v2x check {folder / 'fcw.yaml'} --update-golden --seed 3"
    result.stdout.fnmatch_lines([f"*no golden record of seed 3: create it with `{make}`*"])


def test_the_plugin_says_in_one_line_why_a_run_could_not_complete(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """A broker nobody listens on: each variant fails with the connection's one-line reason (a newcomer
    review: 2,733 lines of traceback), and the scenario is tried once (10 s), not once per variant."""
    from v2x.net.broker import free_port

    folder = _copy_fcw(tmp_path)
    url = f"mqtt://127.0.0.1:{free_port()}"
    result = pytester.runpytest_inprocess(*INNER, str(folder), "--v2x-broker", url, "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    text = result.stdout.str()
    for variant in ("v2x", "baseline"):  # each says why, in its failure (and, by the run's -r flags, its summary)
        assert f"fcw.yaml [{variant}]: run error: cannot reach the MQTT broker at {url} within" in text
    assert "Traceback" not in text and len(text.splitlines()) < 60


def test_v2x_check_passes_scenarios_of_each_kind_and_lists_every_case(tmp_path: Path) -> None:
    """`v2x check` (two jobs, the embedded broker) on a story of actors only, one with a fleet of background
    traffic and one with signals: each variant's outcome matches its golden record, and junit.xml lists
    every scenario and variant. (Every shipped scenario's outcome is compared with its record over a real
    Mosquitto in test_e2e.py; without targets the command takes the whole catalogue.)"""
    out = tmp_path / "check"
    targets = ["fcw", "arterial", "glosa"]
    assert main(["check", *targets, "--jobs", "2", "--out", str(out)]) == 0
    cases = ET.parse(out / "junit.xml").getroot().iter("testcase")
    names = {(c.get("classname"), c.get("name")) for c in cases}
    expected = {(f"v2x.check.{sc.id}", v) for sc in map(load_scenario, scenario_files(targets)) for v in sc.variants}
    assert len(expected) == 6 and names == expected
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] is True and summary["counts"]["pass"] == len(expected)
    assert scenario_files([]) == catalogue()


def test_each_case_takes_its_own_variants_time() -> None:
    """JUnit adds the cases' times up: each variant carried the whole scenario's, so the total doubled (a
    newcomer review). Each case now has its variant's own wall seconds."""
    from v2x.run.results import variant_wall_s

    result = {"metrics": {"v2x": {"wall_seconds": 1.25}, "baseline": {"wall_seconds": 0.75}}}
    assert variant_wall_s(result, "v2x", 2.1) == 1.25 and variant_wall_s(result, "baseline", 2.1) == 0.75
    assert variant_wall_s({"metrics": {"v2x": {}, "baseline": {}}}, "v2x", 2.0) == 1.0  # (a share, without them)


def _copy_scenario(tmp_path: Path, scenario_id: str) -> Path:
    folder = tmp_path / "mine"
    (folder / "golden").mkdir(parents=True)
    shutil.copy(SCENARIO_DIR / f"{scenario_id}.yaml", folder)
    shutil.copy(golden_path(SCENARIO_DIR / f"{scenario_id}.yaml", scenario_id), folder / "golden")
    return folder


def test_each_seed_is_checked_against_its_own_golden_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Newcomer review 9: a golden record held one seed, and `v2x check --seed 1` against a seed-0 record
    failed on differences of the seed alone. Now golden/<id>.json is the main record (of the seed it names)
    and each other seed N has golden/<id>.seed<N>.json; `--seeds 0-1` checks each seed against its own."""
    folder = _copy_scenario(tmp_path, "queue-crash")
    golden = folder / "golden"
    main_record = (golden / "queue-crash.json").read_bytes()
    out = tmp_path / "out"
    # a seed without a record: a case of its own saying how to make it and where it goes
    assert main(["check", str(folder), "--seeds", "0-1", "--out", str(out), "--jobs", "1"]) == 1
    printed = capsys.readouterr().out
    assert re.search(r"^scenario +variant +seed +status +detail$", printed, re.M), printed
    assert re.search(r"^queue-crash +v2x +0 +PASS$", printed, re.M), printed
    new = "no golden record of seed 1 (create it with --update-golden: golden/queue-crash.seed1.json)"
    assert re.search(rf"^queue-crash +baseline +1 +NEW +{re.escape(new)}$", printed, re.M), printed
    assert "(1 scenario, seeds 0-1, " in printed
    cases = json.loads((out / "summary.json").read_text())["cases"]
    assert sorted((c["seed"], c["variant"], c["status"]) for c in cases) == [
        (0, "baseline", "pass"),
        (0, "v2x", "pass"),
        (1, "baseline", "new"),
        (1, "v2x", "new"),
    ]
    # --update-golden --seeds writes the missing seed's record beside the main one, which stays as it was
    assert main(["check", str(folder), "--seeds", "0-1", "--out", str(out), "--update-golden", "--jobs", "1"]) == 0
    assert "  queue-crash (seed 1): new golden record" in capsys.readouterr().out
    assert (golden / "queue-crash.json").read_bytes() == main_record
    record = load_golden(golden / "queue-crash.seed1.json", "queue-crash", seed=1)
    assert record is not None and record["seed"] == 1 and set(record["variants"]) == {"v2x", "baseline"}
    # a change in seed 1's outcome fails seed 1's case only; JUnit has a case per variant and seed
    changed = copy.deepcopy(record)
    changed["variants"]["v2x"]["warnings"]["last|ebw|lead"] = 3.0
    (golden / "queue-crash.seed1.json").write_text(json.dumps(changed))
    argv = ["check", str(folder), "--seeds", "0,1", "--variant", "v2x", "--out", str(out), "--jobs", "1"]
    assert main(argv) == 1
    capsys.readouterr()
    cases = ET.parse(out / "junit.xml").getroot().findall(".//testcase")
    names = {c.get("name"): c.find("failure") for c in cases}
    assert set(names) == {"v2x (seed 0)", "v2x (seed 1)"} and names["v2x (seed 0)"] is None
    failure = names["v2x (seed 1)"]
    assert failure is not None and "last: first EBW about lead 3.00 s -> " in (failure.text or "")
    # --seed N alone takes seed N's record too (it compared with the main record's seed 0 before)
    assert main(["check", str(folder), "--seed", "1", "--variant", "v2x", "--out", str(out)]) == 1
    assert "last: first EBW about lead 3.00 s -> " in capsys.readouterr().out


def test_golden_records_keep_the_main_record_and_a_file_per_other_seed(tmp_path: Path) -> None:
    from v2x.run.check import golden_records

    scenario = tmp_path / "fcw.yaml"
    # no record yet: the lowest seed asked for takes the main record's place (as one seed's always did)
    recs = golden_records(scenario, "fcw", [3, 5])
    assert [(r.seed, r.path.name, r.record) for r in recs] == [(3, "fcw.json", None), (5, "fcw.seed5.json", None)]
    assert [r.seed for r in golden_records(scenario, "fcw", None)] == [0]
    (tmp_path / "golden").mkdir()
    (tmp_path / "golden" / "fcw.json").write_text(json.dumps(_crafted(lambda g: g.update(seed=2))))
    recs = golden_records(scenario, "fcw", [0, 2])
    assert [(r.seed, r.path.name, r.record is not None) for r in recs] == [
        (0, "fcw.seed0.json", False),
        (2, "fcw.json", True),
    ]
    [main_rec] = golden_records(scenario, "fcw", None)  # (no seeds: the main record's)
    assert main_rec.seed == 2 and main_rec.path.name == "fcw.json"
    # a record renamed by hand to another seed's file is refused, naming the file
    renamed = tmp_path / "golden" / "fcw.seed4.json"
    renamed.write_text(json.dumps(_crafted(lambda g: g.update(seed=1))))
    with pytest.raises(ValueError, match=re.escape(f"{renamed}: seed: the record of seed 4 expected")):
        golden_records(scenario, "fcw", [2, 4])


@pytest.mark.parametrize(
    ("spec", "seeds"),
    [("0-4", [0, 1, 2, 3, 4]), ("0,3,7", [0, 3, 7]), ("9, 0-2,1", [0, 1, 2, 9]), ("5", [5])],
)
def test_a_seed_list_reads_ranges_and_lists(spec: str, seeds: list[int]) -> None:
    from v2x.argtypes import seed_list, seed_spec

    assert seed_list(spec) == seeds
    assert seed_list(seed_spec(seeds)) == seeds


def test_a_seed_list_counts_each_seed_once_and_refuses_a_doubled_sign() -> None:
    """Diff review 26: overlapping parts counted twice towards the 1000 seeds (``0-999,500`` was refused), and
    ``-+5`` passed the integer check, then raised a bare ValueError in ``int()`` (not ArgumentTypeError)."""
    import argparse

    from v2x.argtypes import MAX_SEEDS, integer, seed, seed_list

    assert seed_list("0-999,500") == seed_list("0-999,0-999") == list(range(MAX_SEEDS))
    with pytest.raises(argparse.ArgumentTypeError, match="at most 1000 seeds"):
        seed_list("0-999,1000")
    with pytest.raises(argparse.ArgumentTypeError, match="at most 1000 seeds"):
        seed_list("0-99999999999999999")
    for bad in ("-+5", "+-5", "--5", "++5", "+", "-", "5-"):
        for read in (seed, integer):
            with pytest.raises(argparse.ArgumentTypeError):
                read(bad)
    assert seed("+5") == 5 and integer("-5") == -5 and integer(" 7 ") == 7


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("4-2", "a range from low to high (e.g. 0-4), got '4-2'"),
        ("0-x", "an integer, got 'x'"),
        ("0-5000", "at most 1000 seeds"),
        # v2x sweep --seeds 5 runs seeds 0-4: here a lone number is refused, with both readings
        ("5", "for seed 5 alone, --seed 5; for seeds 0 to 4 (v2x sweep --seeds 5 counts them), --seeds 0-4"),
    ],
)
def test_check_refuses_a_seed_list_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, said: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["check", "fcw", "--seeds", spec, "--out", str(tmp_path / "out")])
    assert exited.value.code == 2 and said in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one or the other
        main(["check", "fcw", "--seeds", "0-1", "--seed", "1", "--out", str(tmp_path / "out")])
    assert "not allowed with argument" in capsys.readouterr().err


def _crafted(change: Any) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(golden_path(FCW, "fcw").read_text())
    change(record)
    return record


# Crafted golden records of an attack review (session 17): each gave a traceback (KeyError, TypeError,
# ValueError, AttributeError) during or after the runs, or was taken as seed 1 (true); now each is refused
# when loaded, naming the file and the field path, before anything runs.
@pytest.mark.parametrize(
    ("change", "where", "expected"),
    [
        (lambda g: g["variants"].update(v2x={}), "variants.v2x.expectations", "required field is missing"),
        (lambda g: g.update(tolerance={}), "tolerance.time_s", "required field is missing"),
        (
            lambda g: g["variants"]["v2x"].update(warnings={"nobar": 1.0}),
            "variants.v2x.warnings.nobar",
            "(the key) a warning key 'target|app|other'",
        ),
        (
            lambda g: g["variants"]["v2x"].update(warnings={"follower|fcw|lead": "x"}),
            "variants.v2x.warnings.follower|fcw|lead",
            "a valid number; got 'x'",
        ),
        (
            lambda g: g.update(tolerance={"time_s": "x", "speed_mps": 0.5, "position_m": 1}),
            "tolerance.time_s",
            "a valid number",
        ),
        (lambda g: g["variants"]["v2x"].update(collisions=[{"actors": "a"}]), "variants.v2x.collisions[0].t_s", ""),
        (lambda g: g["variants"]["v2x"].update(expectations=[1, 2]), "variants.v2x.expectations", "dictionary"),
        (lambda g: g["variants"]["v2x"].update(speeds={"car_a": 3.0}), "variants.v2x.speeds.car_a", "actor@x,y"),
        (lambda g: g.update(seed="abc"), "seed", "a valid integer; got 'abc'"),
        (lambda g: g.update(seed=-5), "seed", "greater than or equal to 0"),
        (lambda g: g.update(seed=2**63), "seed", "less than 9223372036854775808"),  # (fuzz 25: a run id > 64)
        (lambda g: g.update(seed=True), "seed", "a valid integer; got True"),
        (lambda g: g["variants"]["v2x"]["stops"]["lead"][0].update(t_s=float("nan")), "stops.lead[0].t_s", "finite"),
        (lambda g: g.update(version=2), "version", "version 1 expected, got 2"),
        (lambda g: g.update(extra=1), "extra", "unknown field"),
    ],
)
def test_a_crafted_golden_record_is_refused_with_its_field_path(
    tmp_path: Path, change: Any, where: str, expected: str
) -> None:
    path = tmp_path / "fcw.json"
    path.write_text(json.dumps(_crafted(change)))
    with pytest.raises(ValueError, match="^" + re.escape(f"{path}: ")) as caught:
        load_golden(path)
    lines = str(caught.value).splitlines()
    assert any(where in line and expected in line for line in lines), lines


def test_a_golden_record_with_a_duplicate_key_is_refused(tmp_path: Path) -> None:
    """Fuzz review 25: `"seed": 0, "seed": 1` was taken as seed 1 (JSON's last wins); the scenario loader
    refuses duplicate keys, as a record now does, naming the key."""
    path = tmp_path / "fcw.json"
    text = json.dumps(_crafted(lambda g: None))
    path.write_text(text.replace('"seed": 0', '"seed": 0, "seed": 1', 1))
    with pytest.raises(ValueError, match="^" + re.escape(f"{path}: not a golden record: duplicate key 'seed'")):
        load_golden(path)


def test_v2x_check_refuses_a_crafted_golden_record_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from v2x.run import check

    def never(job: Any) -> Any:
        raise AssertionError("a scenario ran")

    monkeypatch.setattr(check, "_run_one", never)
    folder = _copy_fcw(tmp_path)
    record = folder / "golden" / "fcw.json"
    record.write_text(json.dumps(_crafted(lambda g: g.update(tolerance={}))))
    assert main(["check", str(folder), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{record}: tolerance.time_s: required field is missing" in err and "Traceback" not in err
    assert "invalid golden record" in err and "nothing was run" in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["counts"]["error"] == 1 and f"{record}: tolerance.time_s" in summary["cases"][0]["lines"][0]
    junit = ET.tostring(ET.parse(tmp_path / "out" / "junit.xml").getroot(), encoding="unicode")
    assert "tolerance.time_s" in junit


def test_a_golden_record_of_another_scenario_is_refused_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A newcomer's scenario started as a copy of fcw, with fcw's golden record copied under its own id:
    v2x check compared the new scenario with fcw's outcome and called the differences regressions."""
    from v2x.run import check

    def never(job: Any) -> Any:
        raise AssertionError("a scenario ran")

    path = tmp_path / "mine.json"
    path.write_text(json.dumps(_crafted(lambda g: None)))
    with pytest.raises(ValueError, match=re.escape(f"{path}: scenario: the record of scenario 'mine' expected")):
        load_golden(path, "mine")
    assert load_golden(path) is not None  # (without an id to check: as before)
    monkeypatch.setattr(check, "_run_one", never)
    folder = _copy_fcw(tmp_path / "copy")
    record = folder / "golden" / "fcw.json"
    record.write_text(json.dumps(_crafted(lambda g: g.update(scenario="icw"))))
    assert main(["check", str(folder), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{record}: scenario: the record of scenario 'fcw' expected, got \"icw\"" in err, err
    assert "nothing was run" in err and "Traceback" not in err


def test_a_golden_record_without_tolerances_takes_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "fcw.json"
    path.write_text(json.dumps(_crafted(lambda g: g.pop("tolerance"))))
    record = load_golden(path)
    assert record is not None and "tolerance" not in record


def test_a_folder_without_scenario_files_says_where_it_looked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An adopter kept scenarios in a subfolder: "no scenario files found" did not say where it had looked."""
    (tmp_path / "sub").mkdir()
    shutil.copy(FCW, tmp_path / "sub" / "fcw.yaml")
    assert main(["check", str(tmp_path), "-q", "--out", str(tmp_path / "out")]) == 2
    assert f"no scenario files (*.yaml, *.yml) in {tmp_path} (a folder's own files: not its subfolders)" in (
        capsys.readouterr().err
    )


def test_a_folder_with_several_bad_files_gets_every_files_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Newcomer review 5: `v2x check DIR` said the first bad file's problems only (`v2x run DIR` all 17)."""
    good = FCW.read_text(encoding="utf-8")
    (tmp_path / "a.yaml").write_text(good.replace("duration_s:", "duraton_s:", 1), encoding="utf-8")
    (tmp_path / "b.yaml").write_text(good, encoding="utf-8")
    (tmp_path / "c.yaml").write_text(good.replace("id: fcw", "id: fcw-c", 1).replace("speed_mps:", "sped_mps:", 1))
    assert main(["check", str(tmp_path), "-q", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "a.yaml" in err and "c.yaml" in err and "duraton_s" in err and "sped_mps" in err, err
    assert err.rstrip().endswith("v2x check: invalid scenario; nothing was run"), err


def test_a_file_with_several_problems_gets_a_line_each_and_a_flow_mix_is_named_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A newcomer review: `v2x check` printed a file's problems on one line joined by a literal "\\n", and a
    flow whose mix did not sum to 1 was named `flows[0]` with two "got"s and a dump of the whole flow."""
    path = tmp_path / "mix.yaml"
    path.write_text(
        "id: m\nname: m\norigin: {lat_deg: 29.5, lon_deg: 106.5}\nduration_s: 5\nroad:\n  lanes:\n"
        "    - {id: a, centerline: [[0, 0], [500, 0]]}\nactors: []\n"
        "flows:\n  - {lane: a, vehicles_per_hour: 600, speed_kph: 50, mix: {car: 0.5, truck: 0.45}}\n"
    )
    assert main(["check", str(path), "--out", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert f"{path}: flows[0].mix: shares that sum to 1; these sum to 0.95" in lines, lines
    assert not any("\\n" in line for line in lines), lines
    assert lines[-1] == "v2x check: invalid scenario; nothing was run"


@pytest.mark.parametrize(
    ("targets", "sig", "code"), [(["arterial"], "SIGINT", 130), (["fcw", "arterial", "--jobs", "1"], "SIGTERM", 143)]
)
def test_an_interrupted_check_of_one_scenario_or_with_jobs_1_exits_128_plus_the_signal(
    tmp_path: Path, targets: list[str], sig: str, code: int
) -> None:
    """Newcomer review 6: Ctrl-C or SIGTERM during `v2x check` of one scenario (run in the command's process)
    was ignored (exit 0 with a full report), a run error (exit 3), tracebacks, once a hang: its runs had no loop
    handlers, so the signal raised inside whatever code ran. It stops the run and exits 128 + the signal."""
    started = time.monotonic()  # (loading, compiling or running at 3 s: each must end the same way)
    got, text = interrupted(
        ["check", *targets, "--out", str(tmp_path / "out")],
        tmp_path / "check.log",
        getattr(signal, sig),
        lambda _: time.monotonic() - started > 3.0,
    )
    assert got == code, text
    assert f"v2x check: interrupted ({sig})" in text and "Traceback" not in text, text
    assert not (tmp_path / "out" / "summary.json").exists()  # no report


def test_check_variant_runs_and_rewrites_only_that_variant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`v2x check --variant v2x` (for an outside stack that cannot meet the baseline's expectations, which
    assume the built-in driver's eyes): only that variant runs and is compared, and --update-golden keeps the
    record's other variants as they were."""
    folder = _copy_fcw(tmp_path)
    path = folder / "golden" / "fcw.json"
    record = json.loads(path.read_text())
    record["variants"]["baseline"]["collisions"][0]["t_s"] = 7.0  # (what a baseline run would call a change)
    record["variants"]["v2x"]["warnings"]["follower|fcw|lead"] = 5.0
    path.write_text(json.dumps(record))
    out = tmp_path / "out"
    assert main(["check", str(folder), "--variant", "v2x", "--out", str(out)]) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert [(c["variant"], c["status"]) for c in summary["cases"]] == [("v2x", "fail")]
    assert main(["check", str(folder), "--variant", "v2x", "--update-golden", "--out", str(out)]) == 0
    assert "[v2x] follower: first FCW about lead 5.00 s -> " in capsys.readouterr().out
    rewritten = json.loads(path.read_text())
    assert rewritten["variants"]["baseline"] == record["variants"]["baseline"]  # kept, 7.0 s and all
    assert rewritten["variants"]["v2x"]["warnings"]["follower|fcw|lead"] != 5.0
    assert main(["check", str(folder), "--variant", "baseline", "--out", str(out)]) == 1  # (its 7.0 s, kept)
    assert main(["check", "fcw", "--variant", "v2x", "--variant", "baseline", "--out", str(out)]) == 0
    # a scenario without the variant: refused, nothing run
    sc = yaml.safe_load(FCW.read_text())
    sc["variants"] = ["v2x"]
    sc["expectations"] = [x for x in sc["expectations"] if x.get("variant") != "baseline"]
    (folder / "fcw.yaml").write_text(yaml.safe_dump(sc))
    assert main(["check", str(folder), "--variant", "baseline", "--out", str(out)]) == 2
    assert "v2x check: --variant: scenario fcw has no variant baseline (it has v2x)" in capsys.readouterr().err


def test_a_results_folder_named_as_a_shipped_id_is_the_id_for_check_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A diff review: `v2x run fcw --out .` makes ./fcw, and `v2x check fcw` then said "no scenario files in
    fcw" (exit 2): check lacked the rule `v2x run` had. Both expand their arguments with one helper now."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fcw").mkdir()
    (tmp_path / "fcw" / "result.json").write_text("{}")
    assert scenario_files(["fcw"]) == [FCW]
    assert main(["check", "fcw", "--variant", "v2x", "-q", "--out", str(tmp_path / "out")]) == 0, capsys.readouterr()
    (tmp_path / "mine").mkdir()  # a folder not named as a shipped id is still a folder
    assert main(["check", "mine", "-q", "--out", str(tmp_path / "out")]) == 2
    assert "no scenario files (*.yaml, *.yml) in mine" in capsys.readouterr().err


@pytest.mark.parametrize("variant", ["v2x", "baseline"])
def test_a_variant_run_alone_matches_its_golden_record_with_a_saving_expectation(variant: str) -> None:
    """A diff review: `v2x check --variant v2x` and the pytest plugin's items (one variant each) failed
    urban-grid's `saves_s` (no baseline to compare with), and its baseline item lost car_g's passages (they
    are measured for the v2x variant's expectation, which a baseline run alone dropped). Alone, each variant
    now records what it records in a run of both, and the saving is not judged without a baseline."""
    import asyncio

    from v2x.run.check import check_result
    from v2x.run.runner import run_scenario

    path = SCENARIO_DIR / "urban-grid.yaml"
    sc = load_scenario(path)
    golden = load_golden(golden_path(path, sc.id))
    assert golden is not None
    result = asyncio.run(run_scenario(sc, seed=int(golden["seed"]), broker="loopback", variants=[variant]))
    [case] = check_result(result, golden, 0.0)
    assert case.variant == variant and case.lines == [], case.lines
    assert {e["variant"] for e in result["expectations"]} == {variant}
    assert [e["t_s"] for e in result["events"] if e["type"] == "passage" and e["actor"] == "car_g"]
    if variant == "v2x":
        [saving] = [e for e in result["expectations"] if e["name"] == "GLOSA saves car G time through x_w"]
        assert saving["passed"] and saving["detail"].endswith("not judged: the baseline variant did not run")
