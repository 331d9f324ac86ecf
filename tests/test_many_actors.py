"""A scenario of many actors: loading it is near-linear in their number (the check of boxes that overlap at
t = 0 compared every pair: 6,000 actors took 85 s before their exit 2, 12,000 over 120 s: a fuzz review),
and the number is bounded where a run's built-in agents still fit the embedded broker's subscriptions per
connection (one per actor, plus one), refused at load with exit 2."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from v2x.argtypes import SCENARIO_MAX_ACTORS
from v2x.cli import main
from v2x.net.amqtt_fanout import MAX_FILTERS_PER_CLIENT
from v2x.scenario import ScenarioError, load_scenario

LANES = 10


def _many(n: int, *, spacing_m: float = 8.0) -> dict[str, Any]:
    """``n`` cars on ten parallel lanes, ``spacing_m`` apart along each."""
    per_lane = -(-n // LANES)
    return {
        "id": "many",
        "name": "many cars",
        "origin": {"lat_deg": 29.7215, "lon_deg": 106.6310},
        "duration_s": 1.0,
        "road": {
            "lanes": [
                {"id": f"l{k}", "centerline": [[0, 3.5 * k], [per_lane * spacing_m + 10, 3.5 * k]], "width_m": 3.5}
                for k in range(LANES)
            ]
        },
        "actors": [
            {"id": f"c{i}", "kind": "car", "lane": f"l{i % LANES}", "start_m": 5 + (i // LANES) * spacing_m}
            for i in range(n)
        ],
        "expectations": [{"name": "no crash", "type": "no_collision"}],
    }


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "many.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_the_bound_is_what_the_embedded_broker_takes_per_connection() -> None:
    assert SCENARIO_MAX_ACTORS == 4_999 and MAX_FILTERS_PER_CLIENT == SCENARIO_MAX_ACTORS + 1


def test_a_scenario_at_the_bound_loads_in_a_few_seconds(tmp_path: Path) -> None:
    path = _write(tmp_path, _many(SCENARIO_MAX_ACTORS))
    started = time.process_time()  # (CPU seconds: the box may be loaded)
    scenario = load_scenario(path)
    took = time.process_time() - started
    assert len(scenario.actors) == SCENARIO_MAX_ACTORS
    assert took < 4.0, f"{took:.1f} s of CPU to load {SCENARIO_MAX_ACTORS} actors (every pair: about 8 s)"


def test_actors_stacked_on_one_spot_are_each_named_once_in_linear_time(tmp_path: Path) -> None:
    """Every actor at one place: each pair overlaps, yet the check compares (and says) neighbours only, each
    actor once, naming the one before it in the file."""
    doc = _many(2_000, spacing_m=0.0)
    path = _write(tmp_path, doc)
    started = time.process_time()
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert time.process_time() - started < 4.0
    problems = caught.value.problems
    assert len(problems) == 2_000 - LANES  # (each lane's first car overlaps none before it)
    assert problems[0] == (
        "actors[10].start_m",
        "a place clear of 'c0' (actors[0]) on lane 'l0': centres at least 5 m apart (half the sum of their "
        "lengths); 'c10' and 'c0' are 0 m apart and would collide at t = 0",
    )
    assert [loc for loc, _ in problems] == [f"actors[{i}].start_m" for i in range(LANES, 2_000)]


def test_an_overlap_beyond_a_neighbour_is_found_through_the_neighbours(tmp_path: Path) -> None:
    """A truck overlaps the car two places on, which is clear of the car between: the car between overlaps
    the truck too, so the file is refused all the same (and then again, once that car is moved)."""
    doc = _many(100)
    doc["actors"] = [
        {"id": "truck", "kind": "truck", "lane": "l0", "start_m": 20, "length_m": 18},
        {"id": "near", "kind": "car", "lane": "l0", "start_m": 25},
        {"id": "far", "kind": "car", "lane": "l0", "start_m": 30},
    ]
    with pytest.raises(ScenarioError) as caught:
        load_scenario(_write(tmp_path, doc))
    assert [loc for loc, _ in caught.value.problems] == ["actors[1].start_m"]
    doc["actors"][1]["lane"] = "l1"
    with pytest.raises(ScenarioError) as caught:
        load_scenario(_write(tmp_path, doc))
    assert [loc for loc, _ in caught.value.problems] == ["actors[2].start_m"]


def test_one_actor_more_is_refused_at_load_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, _many(SCENARIO_MAX_ACTORS + 1))
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{path}: actors: at most 4,999 actors (a run's built-in agents share one broker connection" in err
    assert "got 5,000: give large traffic as 'flows'" in err and "nothing was run" in err
    assert not (tmp_path / "out").exists()
