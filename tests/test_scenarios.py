"""Scenario files: the shipped ones are valid; bad ones name the file, the field path and what was expected."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from v2x.cli import main
from v2x.scenario import ScenarioError, catalogue, load_scenario

FCW = Path(__file__).resolve().parents[1] / "scenarios" / "fcw.yaml"


def test_catalogue_scenarios_are_valid_named_by_their_files_and_listed_in_the_readme() -> None:
    paths = catalogue()
    assert len(paths) >= 14
    ids = [load_scenario(p).id for p in paths]
    assert ids == [p.stem for p in paths]  # `v2x run ID` finds scenarios/ID.yaml
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Scenarios shipped", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `([a-z0-9-]+)` \|", section, re.MULTILINE)
    assert sorted(listed) == sorted(ids), "README's 'Scenarios shipped' table and scenarios/ disagree"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


def _problems(path: Path) -> list[tuple[str, str]]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(path) in str(info.value)
    return info.value.problems


def test_wrong_type_names_the_field_path(tmp_path: Path) -> None:
    text = FCW.read_text().replace("speed_mps: 16.67\n    apps: [fcw]", "speed_mps: fast\n    apps: [fcw]", 1)
    problems = _problems(_write(tmp_path, text))
    expected = "Input should be a valid number; got 'fast'"
    assert ("actors[1].speed_mps", expected) in problems


def test_unknown_lane_and_actor_references(tmp_path: Path) -> None:
    text = FCW.read_text().replace("lane: eb2", "lane: eb9").replace("target: neighbour", "target: nobody")
    problems = dict(_problems(_write(tmp_path, text)))
    assert "eb9" in problems["actors[2].lane"] and "eb1" in problems["actors[2].lane"]
    assert "nobody" in problems["expectations[1].target"]


def test_missing_field_and_unknown_field(tmp_path: Path) -> None:
    text = FCW.read_text().replace("duration_s: 14.0\n", "").replace("tick_s: 0.1", "tick_s: 0.1\nspeedup: 3")
    problems = dict(_problems(_write(tmp_path, text)))
    assert problems["duration_s"] == "required field is missing"
    assert "unknown field" in problems["speedup"] and "did you mean" not in problems["speedup"]
    # a typo gets the closest field name, and an actor id the closest id (newcomer 5)
    text = FCW.read_text().replace("speed_mps: 16.67", "sped_mps: 16.67", 1)
    problems = dict(_problems(_write(tmp_path, text)))
    assert problems["actors[0].sped_mps"].endswith(": did you mean 'speed_mps'?"), problems
    # from the fields of the model at that place, not the whole schema's (a diff review: an actor's `window` got
    # "did you mean 'window_s'?", an expectation's field); a field named like a union's tag keeps its name
    problems = dict(_problems(_write(tmp_path, FCW.read_text().replace("speed_mps: 16.67", "window: 16.67", 1))))
    assert "did you mean" not in problems["actors[0].window"], problems
    typo = FCW.read_text().replace("type: metric, metric: delivery_ratio", "type: metric, metrc: delivery_ratio")
    problems = dict(_problems(_write(tmp_path, typo)))
    assert problems["expectations[4].metrc"].endswith(": did you mean 'metric'?"), problems
    assert problems["expectations[4].metric"] == "required field is missing", problems
    text = FCW.read_text().replace("target: neighbour}", "target: neighbor}")
    problems = dict(_problems(_write(tmp_path, text)))
    assert problems["expectations[1].target"].endswith("got 'neighbor': did you mean 'neighbour'?"), problems


def test_a_warning_expectation_about_an_app_the_target_does_not_run_is_refused(tmp_path: Path) -> None:
    """Newcomer review 6: a no_warning about RLVW on a car without RLVW passed whatever happened (and a sweep
    counted it a silent case), a warning about FCW on a car without FCW failed with no hint why."""
    text = FCW.read_text().replace("app: fcw, target: neighbour}", "app: rlvw, target: neighbour}")
    problems = dict(_problems(_write(tmp_path, text)))
    assert problems["expectations[1].app"] == (
        "an app that reaches the target; 'neighbour' does not run 'rlvw' (its apps: ['fcw']): the expectation holds "
        "whatever happens"
    ), problems
    text = FCW.read_text().replace("app: fcw, target: follower", "app: icw, target: follower")
    problems = dict(_problems(_write(tmp_path, text)))
    assert problems["expectations[0].app"].endswith("the expectation can never hold"), problems


def test_bad_expectation_kind_and_profile(tmp_path: Path) -> None:
    text = (
        FCW.read_text()
        .replace("type: no_warning", "type: nowarning")
        .replace("positioning: rtk-fixed", "positioning: gps-magic")
    )
    problems = dict(_problems(_write(tmp_path, text)))
    # the path names the field (a newcomer review: it stopped at expectations[1]), and the closest type
    assert problems["expectations[1].type"].endswith("got 'nowarning': did you mean 'no_warning'?")
    # semantic checks run only when the schema is satisfied: fix the first problem and the second shows
    text = text.replace("type: nowarning", "type: no_warning")
    problems = dict(_problems(_write(tmp_path, text)))
    assert "gps-magic" in problems["positioning"]


@pytest.mark.parametrize(
    ("elevation", "words"),
    [
        ("[0, 5, 10]", "one height per centre-line point: 2 values, got 3"),
        ("[0]", "one height per centre-line point: 2 values, got 1"),
        ("[0, 500]", "at most 30% between centre-line points; points 0 and 1 are 1500.0 m apart and 500.0 m"),
    ],
)
def test_an_elevation_profile_that_does_not_fit_its_lane(tmp_path: Path, elevation: str, words: str) -> None:
    text = FCW.read_text().replace("[[0, 0], [1500, 0]],", f"[[0, 0], [1500, 0]], elevation_m: {elevation},", 1)
    problems = dict(_problems(_write(tmp_path, text)))
    assert words in problems["road.lanes[0]"], problems


def test_an_elevation_profile_is_read_and_a_lane_without_one_is_flat(tmp_path: Path) -> None:
    text = FCW.read_text().replace("[[0, 0], [1500, 0]],", "[[0, 0], [1500, 0]], elevation_m: [0, -90],", 1)
    sc = load_scenario(_write(tmp_path, text))
    lanes = {lane.id: lane for lane in sc.road.lanes}
    assert lanes["eb1"].elevation_m == [0.0, -90.0] and lanes["eb1"].elevated
    assert lanes["eb2"].elevation_m is None and not lanes["eb2"].elevated


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    problems = _problems(_write(tmp_path, "id: x\nactors: [\n  - a: b\n"))
    assert problems[0][0].startswith("line ")


def test_cli_exits_2_before_running_anything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _write(tmp_path, FCW.read_text().replace("kind: car", "kind: boat", 1))
    out = tmp_path / "out"
    code = main(["run", str(FCW), str(bad), "--out", str(out), "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{bad}: actors[0].kind:" in err and "'boat'" in err
    assert not out.exists(), "nothing may run when any scenario file is invalid"


def test_cli_rejects_a_bad_broker_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "fcw", "--broker", "http://x", "-q"]) == 2
    assert "mqtt://host:port" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("nosuchscenario", "not a shipped scenario id nor a file ('v2x list' shows the ids)"),
        ("fcv", "did you mean fcw?"),
        ("elsewhere/fcw.yaml", "no such file"),
    ],
)
def test_an_unknown_scenario_says_so_and_suggests(name: str, words: str, capsys: pytest.CaptureFixture[str]) -> None:
    from v2x.cli import main

    assert main(["run", name, "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{name}: " in err and words in err and "site-packages" not in err


def test_ids_are_forgiven_case_and_suffix() -> None:
    from v2x.scenario import find_scenario

    assert find_scenario("FCW") == find_scenario("fcw") == find_scenario("fcw.yaml") == FCW


def test_all_plus_a_named_scenario_runs_it_once_and_prints_the_tally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from v2x.cli import main
    from v2x.run import cli

    monkeypatch.setattr(cli, "catalogue", lambda: [FCW])  # --all over a one-scenario catalogue
    assert main(["run", "--all", "fcw", "FCW", "--out", str(tmp_path), "-q"]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS fcw") == 1
    assert out.rstrip().endswith("1 passed, 0 failed, 0 could not run")
    assert "[baseline] sent" in out and "None" not in out  # (no latency to state without V2X: not "None/None")


def test_the_thresholds_table_in_the_docs_lists_every_threshold_with_its_default_and_values() -> None:
    from v2x.apps.thresholds import BOUNDS, DEFAULTS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "SCENARIOS.md").read_text()
    table = doc.split("## Thresholds", 1)[1]
    rows = {
        name: (value, values)
        for name, value, values in re.findall(r"^\| `([a-z0-9_]+)` \| ([0-9.]+) \| ([^|]+) \|", table, re.MULTILINE)
    }
    assert rows == {name: (f"{value:g}", str(BOUNDS[name])) for name, value in DEFAULTS.items()}


def test_a_network_profile_on_the_wrong_link_is_refused(tmp_path: Path) -> None:
    # a newcomer review: network: {pc5: cell-degraded} ran, a cellular profile on the sidelink
    text = FCW.read_text().replace("network: {pc5: pc5-sidelink-los, uu: 5g-uu-edge-sa, wired: wired-backhaul}", "")
    problems = dict(_problems(_write(tmp_path, text + "network: {pc5: cell-degraded, wired: 5g-uu-edge-sa}\n")))
    assert problems["network.pc5"].startswith("a sidelink profile ['pc5-")
    assert problems["network.pc5"].endswith("got 'cell-degraded', a cellular one")
    assert problems["network.wired"] == "a wired profile ['wired-backhaul']; got '5g-uu-edge-sa', a cellular one"


def test_a_road_user_far_above_its_lanes_limit_gets_a_note_and_runs(tmp_path: Path) -> None:
    # a newcomer review: speed_mps: 60 meant as km/h on an 80 km/h lane ran without a word
    from v2x.scenario import scenario_notes

    assert scenario_notes(load_scenario(FCW)) == []
    text = FCW.read_text().replace("speed_mps: 16.67", "speed_mps: 60", 1)
    [note] = scenario_notes(load_scenario(_write(tmp_path, text)))
    assert note.startswith("fcw: lead starts at speed_mps 60 (216 km/h) on lane eb1, whose limit is 80 km/h")
    # 1.5 times the limit and 10 km/h over it, both
    assert scenario_notes(
        load_scenario(_write(tmp_path, FCW.read_text().replace("speed_mps: 16.67", "speed_mps: 34", 1)))
    )
    assert not scenario_notes(
        load_scenario(
            _write(
                tmp_path,
                FCW.read_text()
                .replace("speed_mps: 16.67", "speed_mps: 33", 1)
                .replace("speed_limit_kph: 80", "speed_limit_kph: 100"),
            )
        )
    )
    # times far after the run's end, which never come (ms written as s: newcomer 5): notes, the run is allowed
    late = FCW.read_text().replace("at_s: 6.0,", "at_s: 6000,", 1)
    late = late.replace("window_s: [6.0, 7.0]", "window_s: [600, 700]")
    notes = scenario_notes(load_scenario(_write(tmp_path, late)))
    assert notes == [
        "fcw: events after the run's end (14 s) never happen: lead at 6000 s (at_s is in seconds)",
        "fcw: expectations[0] (follower warned in time): its window [600, 700] s starts after the run's end (14 s): "
        "it cannot hold (window_s is in seconds)",
    ], notes
    # a run shortened to its first seconds keeps its script and says nothing of it
    short = FCW.read_text().replace("duration_s: 14.0", "duration_s: 3.0")
    assert scenario_notes(load_scenario(_write(tmp_path, short))) == []


def test_a_path_actor_far_above_the_limit_of_the_lane_it_starts_on_gets_the_note_too(tmp_path: Path) -> None:
    # a pilot-zone review: speed_mps: 40 (km/h) on a path through a 50 km/h crossing ran without a word, and the
    # platform then reported the honest car as misbehaving
    from v2x.scenario import scenario_notes

    lta = FCW.parent / "lta.yaml"
    assert scenario_notes(load_scenario(lta)) == []
    text = lta.read_text().replace("speed_mps: 7.0", "speed_mps: 40", 1)  # car_a, on nb_left up to its turn
    [note] = scenario_notes(load_scenario(_write(tmp_path, text)))
    assert note == (
        "lta: car_a starts at speed_mps 40 (144 km/h) on a path that starts on lane nb_left, whose limit is 50 km/h "
        "(speed_mps is in metres per second)"
    )
    # a path whose start (the centre at start_m) is on no lane, here 5 m east of nb, has no limit to compare with
    off = text.replace("path: [[1.75, -150.0], [1.75, -12.0],", "path: [[25.25, -150.0], [1.75, -12.0],", 1)
    assert scenario_notes(load_scenario(_write(tmp_path, off))) == []


def test_a_lane_of_zero_length_is_refused_even_as_a_neighbour(tmp_path: Path) -> None:
    # an attack review: a zero-length lane named as another's neighbour gave a traceback (exit 1)
    text = FCW.read_text().replace("[[0, 0], [1500, 0]]", "[[0, 0], [0, 0]]", 1)
    text = text.replace("speed_limit_kph: 80}", "speed_limit_kph: 80, right: eb1}", 2).replace(
        "{id: eb1, centerline: [[0, 0], [0, 0]], width_m: 3.5, speed_limit_kph: 80, right: eb1}",
        "{id: eb1, centerline: [[0, 0], [0, 0]], width_m: 3.5, speed_limit_kph: 80}",
    )
    assert "right: eb1" in text
    problems = dict(_problems(_write(tmp_path, text)))
    assert problems["road.lanes[0].centerline"] == (
        "a line of positive length (two or more points, not all one); got 2 points, all at (0, 0)"
    )


def test_a_run_shorter_than_a_tick_is_refused(tmp_path: Path) -> None:
    # an attack review: duration_s: 1e-320 was accepted and ran 0 s
    text = FCW.read_text().replace("duration_s: 14.0", "duration_s: 1e-320")
    assert dict(_problems(_write(tmp_path, text)))["duration_s"].startswith("at least one tick (0.1 s); got ")


async def test_the_minimal_scenario_in_the_docs_loads_and_runs_as_it_says(tmp_path: Path) -> None:
    """docs/SCENARIOS.md "A minimal scenario" (an adopter review asked for one complete file): it loads, the
    follower is warned with V2X and collides without it."""
    from v2x.run.runner import run_scenario

    doc = (Path(__file__).resolve().parents[1] / "docs" / "SCENARIOS.md").read_text()
    block = re.search(r"### A minimal scenario\n.*?```yaml\n(.*?)```", doc, re.S)
    assert block is not None
    path = tmp_path / "minimal.yaml"
    path.write_text(block.group(1))
    result = await run_scenario(load_scenario(path), seed=0, broker="loopback")
    assert result["passed"], [e for e in result["expectations"] if not e["passed"]]
    assert len(result["expectations"]) == 3
