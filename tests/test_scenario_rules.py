"""Scenario files with mistakes that used to be accepted and run (a newcomer's review found them): each is
refused before anything runs, ``FILE: field.path: what was expected; got X``, with exit 2 from ``v2x run``
and ``v2x check`` and a failing item in the pytest plugin."""

from __future__ import annotations

from pathlib import Path

import pytest

from v2x.cli import main
from v2x.scenario import ScenarioError, load_scenario
from v2x.scenario.loader import SCENARIO_DIR

pytest_plugins = ("pytester",)

FCW = (SCENARIO_DIR / "fcw.yaml").read_text()
BRAKE = "{at_s: 6.0, action: brake, rate_mps2: 6.0, until_speed_mps: 0}"


def _variant(old: str, new: str) -> str:
    assert old in FCW, old
    return FCW.replace(old, new, 1)


# (case, scenario text, the field path named, words in what was expected)
CASES = [
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
        for command in (["run", "-q"], ["check"]):
            assert main([*command, str(path), "--out", str(tmp_path / "out")]) == 2
            err = capsys.readouterr().err
            assert (f"{path}: {field}:" if field else f"{path}: ") in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_numbers_written_as_yaml_1_2_and_merge_keys_still_load(tmp_path: Path) -> None:
    """`1e3` (a string to YAML 1.1) is a number; an int is a real; a merge key may override what it merges."""
    text = _variant("duration_s: 14.0", "duration_s: 1.4e1").replace("range_m: 300", "range_m: 3e2")
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
    driver = sc.actor("neighbour").driver
    assert driver is not None and (driver.reaction_s, driver.brake_mps2) == (1.0, 6.0)
