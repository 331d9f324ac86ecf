"""Attentive story drivers (``driver.attentive``, v2x/apps/driver.py rule 4): the IDM interaction term by hand,
the schema, and in lockstep runs on the loopback bus: an attentive driver follows the vehicle ahead in his
lane, story or background, and stops behind it; a distracted one (the default) keeps his script and runs
into it. Also the forward view (v2x/sim/radar.py) sees background vehicles."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from v2x.apps.driver import Driver
from v2x.core import ActorKind
from v2x.core.traffic import CLASS_PARAMS, idm_acceleration
from v2x.run.runner import run_scenario
from v2x.scenario import load_scenario
from v2x.scenario.loader import ScenarioError
from v2x.scenario.model import Scenario
from v2x.sim.radar import forward_radar
from v2x.sim.simulation import Simulation

CAR = CLASS_PARAMS[ActorKind.CAR]


def test_follow_is_the_idm_interaction_term_by_hand() -> None:
    d = Driver(reaction_s=1.0, brake_mps2=6.0, attentive=True)
    # v 10 m/s, gap 20 m, closing 2 m/s: s* = 2 + 10 x 1.0 + 10 x 2 / (2 sqrt(1.0 x 1.5)) = 20.1650 m;
    # a (1 - (s*/s)^2) = 1.0 x (1 - (20.1650 / 20)^2) = -0.016565 m/s^2.
    s_star = 2.0 + 10.0 + 20.0 / (2.0 * math.sqrt(1.5))
    assert s_star == pytest.approx(20.16497, abs=1e-5)
    assert d.follow(10.0, 20.0, 2.0, CAR) == pytest.approx(-0.016565, abs=1e-6)
    # The same as the core's IDM with no desired speed of its own (v0 = inf: its free-road term is a).
    for v, gap, closing in [(10.0, 20.0, 2.0), (5.0, 60.0, -1.0), (15.0, 30.0, 8.0), (0.0, 3.0, 0.0)]:
        core = float(idm_acceleration(v, math.inf, CAR.t_gap_s, CAR.s0_m, CAR.a_mps2, CAR.b_mps2, gap, closing))
        assert d.follow(v, gap, closing, CAR) == pytest.approx(max(core, -6.0), rel=1e-12, abs=1e-12)
    # Pulling away at a standstill gap: s* = s0 (the dynamic part is never negative); far: almost a.
    assert d.follow(10.0, 2.0, -30.0, CAR) == pytest.approx(0.0, abs=1e-12)
    assert d.follow(10.0, 1000.0, 0.0, CAR) == pytest.approx(1.0 - (12.0 / 1000.0) ** 2)
    # Never more braking than brake_mps2, also when the gap is gone.
    assert d.follow(20.0, 5.0, 20.0, CAR) == -6.0
    assert d.follow(20.0, 0.0, 0.0, CAR) == -6.0


def _load(tmp_path: Path, text: str, name: str = "follow") -> Scenario:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return load_scenario(path)


STORY = """\
id: story
name: story
origin: {lat_deg: 29.5, lon_deg: 106.5}
duration_s: 12
tick_s: 0.1
road:
  lanes:
    - {id: a, centerline: [[0, 0], [1000, 0]], speed_limit_kph: 60}
actors:
  - id: lead
    kind: car
    lane: a
    start_m: 100
    speed_mps: 14
    equipped: false
    events: [{at_s: 3.0, action: brake, rate_mps2: 6.0, until_speed_mps: 0}]
  - {id: me, kind: car, lane: a, start_m: 75, speed_mps: 14, equipped: false, DRIVER}
"""


def test_an_attentive_driver_is_refused_on_a_pedestrian(tmp_path: Path) -> None:
    text = STORY.replace("id: me, kind: car", "id: me, kind: pedestrian").replace("DRIVER", "driver: {attentive: true}")
    with pytest.raises(ScenarioError) as info:
        _load(tmp_path, text)
    problems = dict(info.value.problems)
    assert "actors[1]" in problems and "'driver.attentive' is for a vehicle" in problems["actors[1]"]


def _collisions(result: dict[str, Any], variant: str = "baseline") -> list[list[str]]:
    return [e["actors"] for e in result["events"] if e["type"] == "collision" and e["variant"] == variant]


async def test_an_attentive_driver_follows_a_story_vehicle_a_distracted_one_does_not(tmp_path: Path) -> None:
    attentive = await run_scenario(
        _load(tmp_path, STORY.replace("DRIVER", "driver: {attentive: true}"), "a"),
        broker="loopback",
        variants=["baseline"],
    )
    assert _collisions(attentive) == []
    me = [p for p in attentive["tracks"]["baseline"]["me"] if p[0] >= 11.0]
    lead = [p for p in attentive["tracks"]["baseline"]["lead"] if p[0] >= 11.0]
    gap = lead[-1][1] - me[-1][1] - 5.0  # bumper to bumper (cars 5 m long)
    assert me[-1][1] == pytest.approx(me[0][1])  # at rest
    assert CAR.s0_m - 0.5 <= gap <= CAR.s0_m + 3.0  # about s0 behind the lead, where the IDM stops
    distracted = await run_scenario(
        _load(tmp_path, STORY.replace("DRIVER", "driver: {}"), "d"), broker="loopback", variants=["baseline"]
    )
    assert sorted(_collisions(distracted)[0]) == ["lead", "me"]


FLOWS = """\
id: flows
name: flows
origin: {lat_deg: 29.5, lon_deg: 106.5}
duration_s: 30
tick_s: 0.1
road:
  lanes:
    - {id: a, centerline: [[0, 0], [1000, 0]], speed_limit_kph: 60}
flows:
  - {lane: a, vehicles_per_hour: 1800, speed_kph: {mean: 50, sd: 5}, penetration: 0, prefill: true}
actors:
  - {id: blocker, kind: car, lane: a, start_m: 500, speed_mps: 0, equipped: false}
  - {id: me, kind: car, lane: a, start_m: 100, speed_mps: 14, equipped: false, DRIVER}
"""


def test_the_forward_view_sees_background_vehicles(tmp_path: Path) -> None:
    sc = _load(tmp_path, FLOWS.replace("DRIVER", "driver: {attentive: true}"))
    sim = Simulation(sc, variant="baseline", seed=0)
    assert sim.sensors.radars == [sim.world.slot_of("me")]
    sim.begin(0)
    sim.step()  # the lane is prefilled
    slots, kinds = sim.sensors.seen()
    assert len(slots) > 2 and kinds[:2] == ["car", "car"]  # the story's, then the background's
    seen = forward_radar(sim.world, sim.sensors.radars, slots, kinds, 0.0)["me"][0]
    assert sim.sensors.detections["me"] == [seen]  # what the driver gets in his next TickInput
    w = sim.world
    me = w.slot_of("me")
    ahead = [int(s) for s in slots if w.x[int(s)] > w.x[me]]
    nearest = min(ahead, key=lambda s: float(w.x[s]))
    assert seen.object_id == nearest + 1 and w.id_of(nearest).startswith("bg-0-")
    assert np.isclose(seen.x_m, w.x[nearest])


async def test_an_attentive_driver_follows_background_vehicles_a_distracted_one_does_not(tmp_path: Path) -> None:
    # The background traffic ahead queues behind a standing story car; the attentive driver stops behind the
    # queue's tail (a background vehicle), the distracted one runs into it.
    attentive = await run_scenario(
        _load(tmp_path, FLOWS.replace("DRIVER", "driver: {attentive: true}"), "a"),
        broker="loopback",
        variants=["baseline"],
    )
    assert _collisions(attentive) == []
    assert attentive["tracks"]["baseline"]["me"][-1][1] < 480  # stopped in the queue
    distracted = await run_scenario(
        _load(tmp_path, FLOWS.replace("DRIVER", "driver: {}"), "d"), broker="loopback", variants=["baseline"]
    )
    crash = _collisions(distracted)[0]
    assert "me" in crash and next(a for a in crash if a != "me").startswith("bg-0-")
