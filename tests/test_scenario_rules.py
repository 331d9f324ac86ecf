"""Scenario files with mistakes that used to be accepted and run (a newcomer's review found them): each is
refused before anything runs, ``FILE: field.path: what was expected; got X``, with exit 2 from ``v2x run``
and ``v2x check`` and a failing item in the pytest plugin."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from v2x.cli import main
from v2x.scenario import ScenarioError, load_scenario
from v2x.scenario.loader import SCENARIO_DIR, _actor_named, _node_actor_ids

pytest_plugins = ("pytester",)

FCW = (SCENARIO_DIR / "fcw.yaml").read_text()
BRAKE = "{at_s: 6.0, action: brake, rate_mps2: 6.0, until_speed_mps: 0}"


def _variant(old: str, new: str) -> str:
    assert old in FCW, old
    return FCW.replace(old, new, 1)


def _scenario(name: str, old: str, new: str) -> str:
    text = (SCENARIO_DIR / f"{name}.yaml").read_text()
    assert old in text, old
    return text.replace(old, new, 1)


# (case, scenario text, the field path named, words in what was expected)
CASES = [
    (
        "key twice",
        _variant("duration_s: 14.0\n", "duration_s: 14.0\nduration_s: 20.0\n"),
        "duration_s",
        "'duration_s' is given again, on lines 12 and 13",
    ),
    (
        "nested key twice",
        _variant("start_m: 130\n", "start_m: 130\n    start_m: 140\n"),
        "actors[0].start_m",
        "given again",
    ),
    (
        "key twice on a line",
        _variant("{at_s: 6.0,", "{at_s: 6.0, at_s: 7.0,"),
        "actors[0].events[0].at_s",
        "on line 27 (columns 10 and 21)",
    ),
    (
        "window reversed",
        _variant("window_s: [6.0, 7.0]", "window_s: [7.0, 6.0]"),
        "expectations[0].window_s",
        "start <= end",
    ),
    (
        "start beyond the lane",
        _variant("start_m: 130", "start_m: 5000"),
        "actors[0].start_m",
        "within its length (0..1500 m",
    ),
    (
        "events out of order",
        _variant(f"      - {BRAKE}\n", f"      - {BRAKE}\n      - {{at_s: 3.0, action: hold}}\n"),
        "actors[0].events[1].at_s",
        "time order",
    ),
    ("brake at rate 0", _variant("rate_mps2: 6.0", "rate_mps2: 0"), "actors[0].events[0].rate_mps2", "> 0"),
    ("brake without a rate", _variant("rate_mps2: 6.0, ", ""), "actors[0].events[0].rate_mps2", "got none"),
    ("app twice", _variant("apps: [fcw]", "apps: [fcw, fcw]"), "actors[1].apps[1]", "each app once"),
    (
        "overlap at t = 0",
        _variant("start_m: 100", "start_m: 127"),
        "actors[1].start_m",
        "'follower' and 'lead' are 3 m apart and would collide at t = 0",
    ),
    (
        "no expectations",
        FCW[: FCW.index("expectations:")] + "expectations: []\n",
        "expectations",
        "at least one expectation",
    ),
    ("duration as text", _variant("duration_s: 14.0", 'duration_s: "14"'), "duration_s", "without quotes"),
    (
        "coordinate as text",
        _variant("[[0, 0], [1500, 0]]", "[[0, 0], ['1500', 0]]"),
        "road.lanes[0].centerline[1][0]",
        "without quotes",
    ),
    (
        "threshold as text",
        _variant("expectations:", 'thresholds: {fcw_ttc_s: "2.5"}\nexpectations:'),
        "thresholds.fcw_ttc_s",
        "without quotes",
    ),
    (
        "integer as text",
        _variant(
            "  - id: cloud\n",
            "  - id: rsu2\n    kind: rsu\n    position: [400, -12]\n"
            "    road_events: [{id: wet, type: 408, position: [400, 0], radius_m: 20, priority: '3'}]\n"
            "  - id: cloud\n",
        ),
        "actors[4].road_events[0].priority",
        "without quotes",
    ),
    (
        "boolean as yes",
        _variant("apps: [fcw]", "apps: [fcw]\n    equipped: yes"),
        "actors[1].equipped",
        "true or false",
    ),
    (
        "boolean as 1",
        _variant("brake_mps2: 7.0}", "brake_mps2: 7.0, attentive: 1}"),
        "actors[1].driver.attentive",
        "got 1",
    ),
    (
        "boolean as text",
        _variant("apps: [fcw]", "apps: [fcw]\n    uplink: 'false'"),
        "actors[1].uplink",
        "true or false (without quotes); got 'false'",
    ),
    (
        "range on a car",
        _variant("apps: [fcw]", "apps: [fcw]\n    range_m: 300"),
        "actors[1].range_m",
        "only an rsu declares a PC5 coverage",
    ),
    ("variant twice", _variant("tick_s: 0.1", "tick_s: 0.1\nvariants: [v2x, v2x]"), "variants[1]", "each variant once"),
    # An attack review: thresholds that divide (ZeroDivisionError in the platoon's controller), that size each
    # tick's work (LTA's lookahead of 1e6 m never finished) or that are out of any sense are refused, naming
    # their bounds (v2x.apps.thresholds.BOUNDS).
    *[
        (
            f"threshold {key} {value}",
            _variant("expectations:", f"thresholds: {{{key}: {value}}}\nexpectations:"),
            f"thresholds.{key}",
            words,
        )
        for key, value, words in (
            ("platoon_time_gap_s", 0, "a value > 0 and <= 10 (default 0.6); got 0"),
            ("platoon_actuator_lag_s", 0, "a value > 0 and <= 10 (default 0.1); got 0"),
            ("platoon_leave_time_gap_s", 0, "> 0"),
            ("mbd_max_decel_mps2", 0, "> 0"),
            ("tjw_update_period_s", 0, "> 0"),
            ("lta_turn_lookahead_m", 1000000, "a value > 0 and <= 100 (default 30); got 1e+06"),
            ("fcw_ttc_s", -1, "a value >= 0 and <= 3600 (default 3); got -1"),
            ("hlw_max_distance_m", 1e6, "<= 1000"),
            ("tjw_queue_min_vehicles", 0, "a value >= 1 and <= 1000"),
        )
    ],
    # Values PyYAML cannot construct (ValueError, a traceback before): an impossible date anywhere, an integer
    # of more than 4300 digits (Python's limit), or one beyond any float in the 0x or 1:2:3 forms.
    (
        "impossible date",
        _variant("duration_s: 14.0\n", "duration_s: 14.0\nepoch: 2026-02-30\n"),
        "epoch (line 13, column 8)",
        "a real date (and time); '2026-02-30' is not (day is out of range for month)",
    ),
    (
        "impossible date in a text field",
        _variant("duration_s: 14.0\n", "duration_s: 14.0\nzones: [{id: 2026-13-01}]\n"),
        "zones[0].id (line 13, column 14)",
        "a real date (and time); '2026-13-01' is not",
    ),
    (
        "integer of 5000 digits",
        _variant("duration_s: 14.0", "duration_s: " + "9" * 5000),
        "duration_s (line 12, column 13)",
        "an integer a number field can hold (within +-1e308)",
    ),
    (
        "hex integer of 5000 digits",
        _variant("duration_s: 14.0", "duration_s: 0x" + "f" * 5000),
        "duration_s (line 12, column 13)",
        "an integer a number field can hold",
    ),
    (
        "sexagesimal integer",
        _variant("duration_s: 14.0", "duration_s: 1" + ":59" * 3000),
        "duration_s (line 12, column 13)",
        "an integer as YAML 1.2 writes it",  # (a YAML 1.1 form: refused as such since attack review 10)
    ),
    # Integers as YAML 1.2 writes them; YAML 1.1's other forms (PyYAML's) were read silently as another number
    # (attack review 10: `start_m: 0130` put the lead at 88 m).
    *(
        (
            f"YAML 1.1 integer {text}",
            _variant("start_m: 130", f"start_m: {text}"),
            "actors[0].start_m (line 24, column 14)",
            f"an integer as YAML 1.2 writes it (decimal without a leading zero, 0o17 octal or 0x1F hexadecimal); "
            f"{text!r} is not{old}",
        )
        for text, old in (
            ("0130", " (YAML 1.1 reads it as 88)"),
            ("2:10", " (YAML 1.1 reads it as 130)"),
            ("0b10000010", " (YAML 1.1 reads it as 130)"),
            ("1_30", " (YAML 1.1 reads it as 130)"),
            ("0139", ""),
        )
    ),
    # Reals: YAML 1.1's base 60 and underscore forms are text, as in YAML 1.2 (they were 130.5 and 100.5, without
    # a word: diff review 25); written with a tag, they are refused as the integers are. Infinite and NaN reals
    # are YAML numbers, which no field takes.
    *(
        (
            f"YAML 1.1 real {text}",
            _variant("start_m: 130", f"start_m: {text}"),
            field,
            expected,
        )
        for text, field, expected in (
            (
                "2:10.5",
                "actors[0].start_m",
                "a number as YAML 1.2 writes it (decimal digits with an optional dot and exponent: 130.5, 1.305e2); "
                "got text '2:10.5' (YAML 1.1 reads it as 130.5)",
            ),
            ("1_00.5", "actors[0].start_m", "got text '1_00.5' (YAML 1.1 reads it as 100.5)"),
            ("-1:00:00.", "actors[0].start_m", "got text '-1:00:00.' (YAML 1.1 reads it as -3600.0)"),
            (
                '!!float "2:10.5"',
                "actors[0].start_m (line 24, column 14)",
                "a number as YAML 1.2 writes it (decimal digits with an optional dot and exponent: 130.5, 1.305e2); "
                "'2:10.5' is not (YAML 1.1 reads it as 130.5)",
            ),
            (".inf", "actors[0].start_m", "Input should be a finite number; got inf"),
            ("-.Inf", "actors[0].start_m", "Input should be a finite number; got -inf"),
            (".NaN", "actors[0].start_m", "Input should be a finite number; got nan"),
        )
    ),
    # An explicit tag on a value PyYAML cannot read at all: a traceback (IndexError, KeyError, AttributeError),
    # exit 1, before; `!!int "12\n"` loaded as 12 and full-width digits as a float (attack review 11).
    *(
        (
            f"tagged {text}",
            _variant("start_m: 130", f"start_m: {text}"),
            "actors[0].start_m (line 24, column 14)",
            expected,
        )
        for text, expected in (
            (
                '!!int ""',
                "an integer as YAML 1.2 writes it (decimal without a leading zero, 0o17 octal or 0x1F "
                "hexadecimal); '' is not",
            ),
            (
                '!!int "+"',
                "an integer as YAML 1.2 writes it (decimal without a leading zero, 0o17 octal or 0x1F "
                "hexadecimal); '+' is not",
            ),
            (
                '!!int "12\\n"',
                "an integer as YAML 1.2 writes it (decimal without a leading zero, 0o17 octal or "
                "0x1F hexadecimal); '12\\n' is not (YAML 1.1 reads it as 12)",
            ),
            ('!!float "_"', "a number; '_' is not"),
            ('!!float ""', "a number; '' is not"),
            ('!!float "\uff11\uff13\uff10"', "a number; '\uff11\uff13\uff10' is not (only ASCII digits are)"),
            ('!!timestamp ""', "a real date (and time); '' is not"),
            ('!!bool ""', "true or false; '' is not"),
        )
    ),
    # An epoch a run cannot represent: --secure's certificates and --record's MCAP times count from 1970.
    (
        "epoch before 1970",
        _variant("duration_s: 14.0\n", "duration_s: 14.0\nepoch: 1969-12-31T23:59:00Z\n"),
        "epoch",
        "a time from 1970-01-02 to 2200-12-31 UTC (what certificates and recordings can hold: their times count "
        "from 1970); got 1969-12-31T23:59:00+00:00",
    ),
    (
        "epoch in 9999",
        _variant("duration_s: 14.0\n", "duration_s: 14.0\nepoch: 9999-12-31T23:59:00Z\n"),
        "epoch",
        "got 9999-12-31T23:59:00+00:00",
    ),
    # The id of a background flow's vehicle: arterial's follower named as its flow 0's 4th vehicle loaded, ran, and
    # crashed when that vehicle entered (ValueError: actor 'bg-0-3' already present: attack review 3)
    (
        "actor named as a background vehicle",
        (SCENARIO_DIR / "arterial.yaml").read_text().replace("follower", "bg-0-3"),
        "actors[1].id",
        "an id that does not start with 'bg-' (the background vehicles' ids, bg-<flow>-<n>); got 'bg-0-3'",
    ),
    # Geometry a run cannot follow (attack review 9: each passed the checks and was a traceback, exit 1, at load or
    # when the run built the zone or the route): an outline must enclose an area, a path must have a length.
    (
        "positioning zone shaped like a bow tie",
        _scenario(
            "gnss", "[[200, -10], [500, -10], [500, 15], [200, 15]]", "[[200, -10], [500, 15], [500, -10], [200, 15]]"
        ),
        "zones[0].polygon",
        "a simple polygon with a positive area; got an outline that crosses itself or encloses nothing",
    ),
    (
        "positioning zone of points on one line",
        _scenario("gnss", "[[600, -30], [900, -30], [900, 35], [600, 35]]", "[[600, 0], [700, 0], [900, 0]]"),
        "zones[1].polygon",
        "a simple polygon with a positive area",
    ),
    (
        "actor path of one point",
        _scenario("evw", "path: [[0, -5.25], [500, -5.25], [560, -1.75], [2000, -1.75]]", "path: [[0, -5.25]]"),
        "actors[1].path",
        "a line at least 0.1 m long (two or more points, not all one); got one point",
    ),
    (
        "actor path of no point",
        _scenario("evw", "path: [[0, -5.25], [500, -5.25], [560, -1.75], [2000, -1.75]]", "path: []"),
        "actors[1].path",
        "got no point",
    ),
    (
        "actor path with all its points one",
        _scenario("evw", "path: [[0, -5.25], [500, -5.25], [560, -1.75], [2000, -1.75]]", "path: [[9, 1], [9, 1]]"),
        "actors[1].path",
        "got 2 points, all at (9, 1)",
    ),
    (
        "phantom path of one point",
        _scenario("ghost", "phantom: {lane: sb, start_m: 31.57,", "phantom: {path: [[0, 50]], start_m: 0,"),
        "actors[3].phantom.path",
        "a line at least 0.1 m long (two or more points, not all one); got one point",
    ),
    (
        "phantom path with all its points one",
        _scenario("ghost", "phantom: {lane: sb, start_m: 31.57,", "phantom: {path: [[0, 50], [0, 50]], start_m: 0,"),
        "actors[3].phantom.path",
        "got 2 points, all at (0, 50)",
    ),
    (
        "road sign's reference path with all its points one",
        _scenario("slw", "path: [[300, -1.75], [900, -1.75]]", "path: [[300, -1.75], [300, -1.75]]"),
        "actors[3].road_signs[0].path",
        "a line at least 0.1 m long (two or more points, not all one)",
    ),
    # Fuzz review 25: lines of 1e-320 or 1e-200 m passed a check of "positive" length, and the route following
    # them, which measures as shapely does, found zero length: a traceback in the loader's neighbour check, or
    # at run time for a path; an RSI item's end of 1e9 s wrapped the MinuteOfTheYear (the event taken as over),
    # and 1e12 s overflowed the RSU's date arithmetic mid-run.
    (
        "lane centre line 1e-320 m long",
        _scenario("breakdown", "centerline: [[0, -5.25], [1500, -5.25]]", "centerline: [[1e-320, -5.25], [0, -5.25]]"),
        "road.lanes[1].centerline",
        "a line at least 0.1 m long (two or more points, not all one); got 2 points, ",
    ),
    (
        "actor path 1e-200 m long",
        _scenario(
            "evw", "path: [[0, -5.25], [500, -5.25], [560, -1.75], [2000, -1.75]]", "path: [[0, 0], [1e-200, 0]]"
        ),
        "actors[1].path",
        "got 2 points, 1e-200 m long",
    ),
    (
        "actor path 5 cm long",
        _scenario("evw", "path: [[0, -5.25], [500, -5.25], [560, -1.75], [2000, -1.75]]", "path: [[0, 0], [0.05, 0]]"),
        "actors[1].path",
        "got 2 points, 0.05 m long",
    ),
    (
        "road event ending beyond what MinuteOfTheYear carries",
        _scenario("hlw", "active_s: [0, 1800]", "active_s: [0, 1.0e+9]"),
        "actors[4].road_events[0].active_s",
        "[start, end) with 0 <= start < end <= 15552000 s (180 days",
    ),
    (
        "two rsus for one light",  # (an outside RSU serving every intersection by default sent SPAT for x1: attack 13)
        _scenario(
            "rlvw",
            "expectations:\n",
            "  - {id: rsu_side, kind: rsu, position: [-60, 12], external: true}\nexpectations:\n",
        ),
        "actors[3].intersections",
        "serves the signalised intersection 'x1', as actors[2] (rsu_x1) does",
    ),
    ("empty file", "", "", "got nothing (an empty file"),
    ("only comments", "# nothing yet\n", "", "got nothing"),
]


def _problems(text: str, tmp_path: Path) -> tuple[Path, list[tuple[str, str]]]:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(path) in str(info.value)
    return path, info.value.problems


@pytest.mark.parametrize(("case", "text", "field", "words"), CASES, ids=[c[0] for c in CASES])
def test_a_mistake_is_refused_naming_the_field(case: str, text: str, field: str, words: str, tmp_path: Path) -> None:
    _, problems = _problems(text, tmp_path)
    assert any(loc == field and words in msg for loc, msg in problems), problems


def test_every_mistake_exits_2_from_run_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for k, (_, text, field, _) in enumerate(CASES):
        path = tmp_path / f"bad{k}.yaml"
        path.write_text(text)
        try:  # (the message names the actor a path is in: actors[1] (follower).apps[1])
            ids = _node_actor_ids(yaml.compose(text))
        except yaml.YAMLError:
            ids = []
        shown = _actor_named(field, ids)
        for command in (["run", "-q"], ["check"]):
            assert main([*command, str(path), "--out", str(tmp_path / command[0])]) == 2
            err = capsys.readouterr().err
            assert (f"{path}: {shown}:" if field else f"{path}: ") in err and "Traceback" not in err, err[-500:]
    assert not (tmp_path / "run").exists()  # nothing ran: no results; check's reports say why (test_check.py)
    assert {p.name for p in (tmp_path / "check").iterdir()} == {"junit.xml", "summary.json"}


def test_numbers_written_as_yaml_1_2_and_merge_keys_still_load(tmp_path: Path) -> None:
    """`1e3`, `1.667E+1` and `1.e-1` (strings to YAML 1.1 but the second) are numbers; an int is a real, in
    YAML 1.2's 0o octal and 0x hexadecimal too; a merge key may override what it merges."""
    text = _variant("duration_s: 14.0", "duration_s: 1.4e1").replace("range_m: 300", "range_m: 3e2")
    text = text.replace("speed_mps: 16.67\n    events", "speed_mps: 1.667E+1\n    events")
    text = text.replace("tick_s: 0.1", "tick_s: 1.e-1")
    text = text.replace("start_m: 130", "start_m: 0o202").replace("speed_limit_kph: 80}", "speed_limit_kph: 0x50}")
    text = text.replace(
        "    driver: {reaction_s: 1.0, brake_mps2: 7.0}\n  - id: neighbour",
        "    driver: &d {reaction_s: 1.0, brake_mps2: 7.0}\n  - id: neighbour",
    )
    text = text.replace(
        "    driver: {reaction_s: 1.0, brake_mps2: 7.0}\n  - id: rsu1",
        "    driver: {<<: *d, brake_mps2: 6.0}\n  - id: rsu1",
    )
    path = tmp_path / "ok.yaml"
    path.write_text(text)
    sc = load_scenario(path)
    assert sc.duration_s == 14.0 and sc.actor("rsu1").range_m == 300.0
    assert sc.actors[0].start_m == 130.0 and sc.road.lanes[0].speed_limit_kph == 80.0
    assert sc.actors[0].speed_mps == 16.67 and sc.tick_s == 0.1
    driver = sc.actor("neighbour").driver
    assert driver is not None and (driver.reaction_s, driver.brake_mps2) == (1.0, 6.0)


def test_two_files_with_one_id_are_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`v2x run fcw my-copy.yaml` where the copy still says `id: fcw`: both would write DIR/fcw/result.json."""
    copy = tmp_path / "my-copy.yaml"
    copy.write_text(_variant("duration_s: 14.0", "duration_s: 12.0"))
    fcw = SCENARIO_DIR / "fcw.yaml"
    assert main(["run", "fcw", str(copy), "--out", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{copy}: id: an id no other scenario of this run has" in err and f"'fcw' is also the id of {fcw}" in err
    assert not (tmp_path / "out").exists()
    assert main(["check", "fcw", str(copy), "--out", str(tmp_path / "checked")]) == 2
    assert f"{copy}: id:" in capsys.readouterr().err
    assert {p.name for p in (tmp_path / "checked").iterdir()} == {"junit.xml", "summary.json"}  # no run
    # the same file twice is one scenario, as before
    assert main(["run", "fcw", str(fcw), "--out", str(tmp_path / "out"), "-q", "--variant", "v2x"]) == 0


def test_the_pytest_plugin_fails_the_file(pytester: pytest.Pytester, tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "twice.yaml").write_text(_variant("duration_s: 14.0\n", "duration_s: 14.0\nduration_s: 20.0\n"))
    result = pytester.runpytest_inprocess(
        "-o", "asyncio_default_fixture_loop_scope=function", str(folder), "-v", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*twice.yaml::load FAILED*", "*duration_s: a key given once*"])


def test_the_pytest_plugin_fails_a_second_file_with_the_same_id(pytester: pytest.Pytester, tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "a.yaml").write_text(FCW)
    (folder / "b.yaml").write_text(FCW)  # a copy to edit, its id not changed yet: it would share fcw's record
    result = pytester.runpytest_inprocess(
        "-o", "asyncio_default_fixture_loop_scope=function", str(folder), "-v", "-p", "no:cacheprovider", "-k", "load"
    )
    result.assert_outcomes(failed=1, deselected=2)
    result.stdout.fnmatch_lines(["*b.yaml::load FAILED*", "*'fcw' is also the id of*a.yaml*"])


def test_utf8_and_empty_file_messages_read_naturally(tmp_path: Path) -> None:
    raw = FCW.encode().replace(b"Two cars", b"Two \xff cars", 1)
    path = tmp_path / "bad.yaml"
    path.write_bytes(raw)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    [(_, what)] = info.value.problems
    offset = raw.index(b"\xff")
    assert what == f"expected UTF-8 text; byte 0xff at offset {offset} is not valid UTF-8"
    path.write_text("- a list\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.problems == [("", "expected a mapping (the scenario) at the top level; got a list")]


def test_every_threshold_has_bounds_that_admit_its_default() -> None:
    """Every threshold's bounds come from its declaration or the rule by unit (none falls back to 0..1e6),
    and its default is inside them."""
    from v2x.apps.thresholds import BOUNDS, DEFAULTS, OTHER_BOUNDS

    assert set(BOUNDS) == set(DEFAULTS)
    assert [k for k, b in BOUNDS.items() if b is OTHER_BOUNDS] == []
    assert [k for k, v in DEFAULTS.items() if not BOUNDS[k].admits(v)] == []
    assert not BOUNDS["platoon_time_gap_s"].admits(0.0) and BOUNDS["platoon_time_gap_s"].admits(1e-3)
    assert not BOUNDS["fcw_ttc_s"].admits(float("nan")) and not BOUNDS["fcw_ttc_s"].admits(float("inf"))


def test_the_epoch_bounds_fit_certificates_and_recordings(tmp_path: Path) -> None:
    """--secure's certificates start a minute before the epoch, in unsigned seconds from 1970; --record's MCAP
    times are unsigned nanoseconds: the first and last epochs the loader takes, plus a run's longest
    duration, fit both."""
    from v2x.scenario.model import EPOCH_MAX, EPOCH_MIN

    assert EPOCH_MIN.timestamp() - 60 >= 0
    assert (EPOCH_MAX.timestamp() + 3600) * 1_000_000_000 < 2**64
    for epoch in ("1970-01-02T00:00:00Z", "2200-12-31T23:59:59Z"):
        text = _variant("duration_s: 14.0\n", f"duration_s: 14.0\nepoch: {epoch}\n")
        path = tmp_path / "ok.yaml"
        path.write_text(text)
        assert load_scenario(path).epoch.isoformat() == epoch.replace("Z", "+00:00")


def test_fields_an_actor_of_that_kind_would_ignore_are_refused(tmp_path: Path) -> None:
    """A newcomer review: an RSU with a lane, a speed, a driver and braking events, and a truck with a
    position, ran with exit 0 (all of it ignored), while range_m on a truck was refused."""
    import re

    text = (SCENARIO_DIR / "icw.yaml").read_text()
    rsu = re.search(r"^  - id: (\w+)\n    kind: rsu\n", text, flags=re.M)
    assert rsu is not None
    text = text.replace(rsu.group(0), rsu.group(0) + "    speed_mps: 10\n    driver: {reaction_s: 1.0}\n", 1)
    car = re.search(r"^  - id: (\w+)\n    kind: car\n", text, flags=re.M)
    assert car is not None
    text = text.replace(car.group(0), car.group(0) + "    position: [0, 0]\n", 1)
    path = tmp_path / "odd.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    problems = dict(info.value.problems)
    said = "\n".join(f"{k}: {v}" for k, v in problems.items())
    assert re.search(r"actors\[\d+\]\.speed_mps: applies to road users \[.*\], not an rsu", said), said
    assert re.search(r"actors\[\d+\]\.driver: applies to road users", said), said
    assert re.search(r"actors\[\d+\]\.position: only an rsu stands at a position; a car starts on its lane", said)


def test_a_number_where_text_is_expected_says_to_quote_it(tmp_path: Path) -> None:
    """A newcomer review: `lane: 1` got "Input should be a valid string; got 1"."""
    path = tmp_path / "lane1.yaml"
    path.write_text((SCENARIO_DIR / "fcw.yaml").read_text().replace("lane: eb1", "lane: 1", 1))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert dict(info.value.problems)["actors[0].lane"] == "text; YAML reads 1 as a number: write it in quotes ('1')"


def test_background_traffic_that_would_need_room_for_too_many_vehicles_is_refused(tmp_path: Path) -> None:
    """Attack review 9: 100 lanes of 198 km with a flow each, in a 24 KB file, validated and then took 1.1 GB
    and more before the first tick (room for 3.3 million background vehicles). arterial's six lanes
    stretched to 198 km need room for 198,000: refused at load, naming the bound; as shipped it loads."""
    text = (SCENARIO_DIR / "arterial.yaml").read_text()
    long = text
    for y in ("-1.75", "-5.25", "-8.75"):
        long = long.replace(f"[[0, {y}], [2400, {y}]]", f"[[-99000, {y}], [99000, {y}]]")
    for y in ("1.75", "5.25", "8.75"):
        long = long.replace(f"[[2400, {y}], [0, {y}]]", f"[[99000, {y}], [-99000, {y}]]")
    assert long.count("99000") == 12
    _, problems = _problems(long, tmp_path)
    assert problems == [
        (
            "flows",
            "lanes the background traffic can fill with at most 100000 vehicles (one every 6 m); these lanes "
            "total 1,188 km, room for 198000 (shorten the lanes, or split the scenario)",
        )
    ]
    load_scenario(SCENARIO_DIR / "arterial.yaml")


def test_sumo_background_room_is_bounded_by_its_networks_lanes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same bound for `sumo:`, over the lanes of SUMO's network as the loader read them (sumo-corridor's,
    under a bound lowered to 10 vehicles)."""
    from v2x.scenario import loader

    monkeypatch.setattr(loader, "MAX_BACKGROUND_VEHICLES", 10)
    with pytest.raises(ScenarioError) as info:
        load_scenario(SCENARIO_DIR / "sumo-corridor.yaml")
    [(field, why)] = info.value.problems
    assert field == "sumo.net" and why.startswith("lanes the background traffic can fill with at most 10 vehicles")
