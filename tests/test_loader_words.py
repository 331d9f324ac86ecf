"""The scenario loader's messages in a file author's words (newcomer review 9, finding 8): the actor a path
is in named by its id, "did you mean" for an app as for a field, a field written one level too high pointed
to its place, no pydantic or regular-expression wording, a default the file never wrote said to be one, and
an expectation window past the run's end noted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from v2x.cli import main
from v2x.scenario import ScenarioError, load_scenario
from v2x.scenario.loader import SCENARIO_DIR, pattern_words, scenario_notes

FCW = (SCENARIO_DIR / "fcw.yaml").read_text()
VRUCW = (SCENARIO_DIR / "vrucw.yaml").read_text()


def _refused(tmp_path: Path, text: str, old: str, new: str) -> tuple[list[str], dict[str, str]]:
    """The message's lines (after the file's name) and the problems by bare field path."""
    assert old in text, old
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    lines = [line.removeprefix(f"{path}: ") for line in str(caught.value).splitlines()]
    return lines, dict(caught.value.problems)


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        # a schema problem, a check of the loader's, a key given twice (found before the document is built)
        ("speed_mps: 16.67\n    apps", "speed_mps: -3\n    apps", "actors[1] (follower).speed_mps: Input should be"),
        ("apps: [fcw]", "apps: [fcw, fcw]", "actors[1] (follower).apps[1]: each app once; got 'fcw' twice"),
        ("start_m: 130\n", "start_m: 130\n    start_m: 140\n", "actors[0] (lead).start_m: a key given once"),
    ],
)
def test_a_path_in_an_actor_names_the_actor(tmp_path: Path, old: str, new: str, line: str) -> None:
    lines, problems = _refused(tmp_path, FCW, old, new)
    assert any(text.startswith(line) for text in lines), lines
    bare = re.sub(r" \([a-z]+\)", "", line.split(":", 1)[0])  # (problems keep the bare path)
    assert bare in problems, problems


def test_an_actor_without_a_valid_id_keeps_the_bare_path(tmp_path: Path) -> None:
    lines, _ = _refused(tmp_path, FCW, "id: follower\n", "id: 'no way'\n")
    assert any(text.startswith("actors[1].id: 1-64 characters, each one of letters") for text in lines), lines


def test_a_misspelt_app_gets_a_did_you_mean(tmp_path: Path) -> None:
    _, problems = _refused(tmp_path, FCW, "apps: [fcw]", "apps: [fwc]")
    assert problems["actors[1].apps[0]"].endswith("; got 'fwc': did you mean 'fcw'?"), problems


@pytest.mark.parametrize(
    ("text", "old", "new", "where", "hint"),
    [
        (
            FCW,
            "    driver: {reaction_s: 1.0, brake_mps2: 7.0}\n  - id: neighbour",
            "    driver: {brake_mps2: 7.0}\n    reaction_s: 1.0\n  - id: neighbour",
            "actors[1].reaction_s",
            ": did you mean 'driver.reaction_s'?",
        ),
        (
            (SCENARIO_DIR / "glosa.yaml").read_text(),
            "        offset_s: 36\n        phases:\n",
            "        offset_s: 36\n      phases:\n",
            "road.intersections[0].phases",
            ": did you mean 'signal.phases'?",
        ),
        # a typo at this level comes first (`actor` is also a field of some expectations, one level down)
        (FCW, "speed_mps: 16.67\n    apps", "sped_mps: 16.67\n    apps", "actors[1].sped_mps", "'speed_mps'?"),
        (FCW, "\nactors:\n", "\nactor:\n", "actor", ": did you mean 'actors'?"),
    ],
)
def test_a_field_one_level_too_high_is_pointed_to_its_place(
    tmp_path: Path, text: str, old: str, new: str, where: str, hint: str
) -> None:
    _, problems = _refused(tmp_path, text, old, new)
    assert problems[where].startswith("unknown field") and problems[where].endswith(hint), problems


def test_pydantic_and_pattern_wording_is_said_in_words(tmp_path: Path) -> None:
    _, problems = _refused(tmp_path, FCW, "[[0, 0], [1500, 0]]", "[[0, 0]]")
    assert problems["road.lanes[0].centerline"] == "at least 2 points; got 1: [[0, 0]]"
    _, problems = _refused(tmp_path, FCW, "id: fcw", "id: FCW")
    assert problems["id"] == (
        "1-64 characters of lower-case letters, digits or '-', the first one of lower-case letters or digits; got 'FCW'"
    )
    assert pattern_words("^(a|b)$") == "text matching ^(a|b)$"  # (a form it does not know: as it is)


def test_a_default_the_file_never_wrote_is_named_as_the_default(tmp_path: Path) -> None:
    text = VRUCW.replace("tick_s: 0.1", "tick_s: 1.0", 1)
    _, problems = _refused(tmp_path, text, "kind: camera, heading_deg: 225}", "kind: camera, heading_deg: 225}")
    assert problems["actors[5].sensors[0].period_s"] == (
        "at least the tick (1 s): one frame per tick at most; got 0.1, the camera's default (give period_s, or a "
        "shorter tick_s)"
    )
    _, problems = _refused(tmp_path, text, "heading_deg: 225}", "heading_deg: 225, period_s: 0.5}")
    assert problems["actors[5].sensors[0].period_s"].endswith("; got 0.5")  # (written: no more said)


def test_a_window_past_the_runs_end_is_noted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "late.yaml"
    path.write_text(FCW.replace("window_s: [6.0, 7.0]", "window_s: [0, 8000]", 1))
    notes = scenario_notes(load_scenario(path))
    assert notes == [
        "fcw: expectations[0] (follower warned in time): its window [0, 8000] s ends long after the run's end "
        "(14 s): it is judged up to 14 s only (window_s is in seconds)"
    ]
    assert scenario_notes(load_scenario(SCENARIO_DIR / "fcw.yaml")) == []
    # a window that ends a little after the end says nothing (a run shortened to its first seconds, as events)
    path.write_text(FCW.replace("window_s: [6.0, 7.0]", "window_s: [6.0, 70]", 1))
    assert scenario_notes(load_scenario(path)) == []
    path.write_text(FCW.replace("window_s: [6.0, 7.0]", "window_s: [0, 8000]", 1))  # (said by v2x run)
    main(["run", str(path), "--out", str(tmp_path / "out"), "-q", "--variant", "v2x"])
    assert (
        "note: fcw: expectations[0] (follower warned in time): its window [0, 8000] s ends" in capsys.readouterr().err
    )
