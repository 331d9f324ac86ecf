"""LTA, left turn assist, without a broker: the app's hand-computed cases (a host turning left, an oncoming
vehicle within the critical gap; silent for an oncoming vehicle far away, already past or standing, one going
the same way, a host going straight or turning right, a host too far from the conflict point, a route or
positions it cannot trust), the vehicle's own route in the view, the loader, and the shipped scenario end to
end on the loopback bus (also on the embedded broker in tests/test_e2e.py)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests._agents import route_ahead, tick_ctx
from v2x.agents.vehicle import VehicleAgent
from v2x.apps.host import Host, Participant
from v2x.apps.lta import CONFLICT, LeftTurnAssist, left_turn_conflicts
from v2x.apps.registry import OnBoardView, RouteAhead, app_spec
from v2x.apps.thresholds import DEFAULTS
from v2x.run.runner import build_agents, environment, run_scenario
from v2x.scenario import ScenarioError, load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.wire.bsm import RemoteState
from v2x.wire.envelope import temporary_id
from v2x.wire.map_spat import Approach

LTA = SCENARIO_DIR / "lta.yaml"

# -- the app: hand-computed cases -------------------------------------------------------------------
# A crossroads at the origin. The host's ingress lane runs north on x = 1.75 up to its stop line at y = -12.
# Its route turns left with a sharp corner at (1.75, 0) and runs west on y = 0; the oncoming through lane
# runs south on x = -5.25, so the conflict point is (-5.25, 0), 12 + 7 = 19 m past the stop line.
# The host: a 5 m car at 7 m/s, front bumper 10 m before the stop line (centre y = -24.5): 31.5 m along its
# route to the conflict point, t_host = 4.5 s. An oncoming car at 14 m/s at (-5.25, y): t_remote = y / 14.
APPROACH = Approach("x1", 1, "nb_left", [(1.75, -100.0), (1.75, -12.0)], 3.5, 0)
LEFT = [(1.75, -100.0), (1.75, 0.0), (-100.0, 0.0)]
STRAIGHT = [(1.75, -100.0), (1.75, 100.0)]
RIGHT = [(1.75, -100.0), (1.75, 0.0), (100.0, 0.0)]
HOST_Y = -24.5


def _host(y: float = HOST_Y, v: float = 7.0, sigma: float = 0.02) -> Host:
    return Host(1.75, y, math.pi / 2, v, 0.0, 5.0, sigma)


def _route(path: list[tuple[float, float]], host: Host) -> RouteAhead:
    return route_ahead(path, host.x, host.y)


def _car(
    x: float, y: float, heading_deg: float = -90.0, v: float = 14.0, sigma: float | None = 0.02, name: str = "b"
) -> RemoteState:
    """A 5 m car at (x, y) heading ``heading_deg`` (ENU: -90 = south) at ``v``."""
    return RemoteState(temporary_id(name), 0.0, x, y, v, math.radians(heading_deg), 0.0, 5.0, 2.0, sigma, 10, 0)


def _find(
    *remotes: RemoteState,
    host: Host | None = None,
    path: list[tuple[float, float]] | None = LEFT,
    thresholds: Mapping[str, float] = DEFAULTS,
) -> list[tuple[str, float, float, tuple[float, float]]]:
    h = host or _host()
    route = None if path is None else _route(path, h)
    found = left_turn_conflicts(h, route, [APPROACH], remotes, 0.0, thresholds)
    return [
        (f.other, round(f.t_host_s, 6), round(f.gap_s, 6), (round(f.point[0], 6), round(f.point[1], 6))) for f in found
    ]


B = temporary_id("b").hex()


def test_warns_about_an_oncoming_car_that_would_reach_the_turn_with_the_host() -> None:
    # t_host = 31.5 / 7 = 4.5 s; the oncoming car 63 m up: 63 / 14 = 4.5 s, gap 0
    assert _find(_car(-5.25, 63.0)) == [(B, 4.5, 0.0, (-5.25, 0.0))]
    # the critical gap, 4.1 s, either way: 4.0 s after the host warns, 4.2 s after does not
    assert _find(_car(-5.25, 14 * 8.5)) == [(B, 4.5, 4.0, (-5.25, 0.0))]
    assert _find(_car(-5.25, 14 * 8.7)) == []
    assert _find(_car(-5.25, 14 * 0.5)) == [(B, 4.5, -4.0, (-5.25, 0.0))]  # 4.0 s before: still passing
    assert _find(_car(-5.25, 14 * 0.3)) == []  # 4.2 s before the host: gone
    # in the oncoming left-turn lane too (x = -1.75: 3.5 m along the host's route sooner, t_host = 4.0 s)
    assert _find(_car(-1.75, 56.0)) == [(B, 4.0, 0.0, (-1.75, 0.0))]


def test_the_warning_as_the_vehicle_raises_it() -> None:
    host = _host()
    party = Participant("host", host.x, host.y, 0.0, host.speed_mps, 0.0, host.heading_rad, 5.0, 2.0, host.sigma_m)
    b = _car(-5.25, 63.0)
    view = OnBoardView(
        host=host,
        host_party=party,
        remotes={b.temp_id: b},
        perceived={},
        heard_events={},
        heard_signs={},
        approaches={1: [APPROACH]},
        signals={},
        thresholds=DEFAULTS,
        route_ahead=_route(LEFT, host),
    )
    [raised] = LeftTurnAssist().evaluate(view, 0.0)
    assert (raised.app, raised.other, raised.conflict_type) == ("lta", B, CONFLICT)
    assert raised.ttc_s == pytest.approx(4.5) and raised.figure == pytest.approx(0.0, abs=1e-9)
    spec = app_spec("lta")
    assert spec.figure_name == "gap_s" and spec.consumes == ("bsm", "map", "spat")
    # without a route (a vehicle that does not know where it goes) or without MAP: silent
    assert LeftTurnAssist().evaluate(replace(view, route_ahead=None), 0.0) == []
    assert LeftTurnAssist().evaluate(replace(view, approaches={}), 0.0) == []


def test_silent_for_an_oncoming_car_far_away_already_past_or_standing() -> None:
    far = _car(-5.25, 63.0 + 14 * 4.2)  # 4.2 s later than the host
    assert _find(far) == []
    # the range, 150 m: the same conflict, 87.8 m away, with the range cut to 88 m and to 87 m
    assert _find(_car(-5.25, 63.0), thresholds={**DEFAULTS, "lta_max_distance_m": 88.0}) != []
    assert _find(_car(-5.25, 63.0), thresholds={**DEFAULTS, "lta_max_distance_m": 87.0}) == []
    assert _find(_car(-5.25, -3.0)) == []  # already through the box, going away
    assert _find(_car(-5.25, 20.0, v=0.0)) == []  # standing in its lane (a truck waiting to turn)


def test_silent_for_a_car_going_the_same_way_or_crossing() -> None:
    assert _find(_car(5.25, -10.0, heading_deg=90.0)) == []  # beside the host, the same way
    assert _find(_car(1.75, 10.0, heading_deg=90.0)) == []  # ahead, the same way
    # heading within 45 degrees of the opposite: 44 warns, 46 does not (a crossing car is 90 off)
    tilted = [_car(-5.25 + 63.0 * math.tan(math.radians(a)), 63.0, heading_deg=-90.0 - a) for a in (44.0, 46.0)]
    assert _find(tilted[0]) != [] and _find(tilted[1]) == []
    assert _find(_car(-40.0, -1.75, heading_deg=0.0)) == []  # crossing from the west


def test_silent_for_a_host_going_straight_turning_right_stopped_or_too_far() -> None:
    oncoming = _car(-5.25, 63.0)
    assert _find(oncoming, path=STRAIGHT) == []
    assert _find(oncoming, path=RIGHT) == []
    assert _find(oncoming, path=None) == []  # no route: the turn is unknown
    assert _find(oncoming, host=_host(v=0.0)) == []  # standing (yielding) at the line
    # 5 s to the conflict point: the host 35 m from it warns; 35.7 m (5.1 s) does not
    assert _find(_car(-5.25, 70.0), host=_host(y=HOST_Y - 3.5)) == [(B, 5.0, 0.0, (-5.25, 0.0))]
    assert _find(_car(-5.25, 71.4), host=_host(y=HOST_Y - 4.2)) == []
    # past its stop line the host is no longer on an approach (it was warned before, if at all)
    assert _find(oncoming, host=_host(y=-10.0)) == []


def test_accuracy_5_m_for_the_host_and_the_oncoming_car() -> None:
    # 5 m (95 %): sigma 2.04 m -> 4.998 m passes, 2.05 m -> 5.02 m does not
    assert _find(_car(-5.25, 63.0, sigma=2.04), host=_host(sigma=2.04)) != []
    assert _find(_car(-5.25, 63.0, sigma=2.05)) == []
    assert _find(_car(-5.25, 63.0, sigma=None)) == []  # accuracy unknown
    assert _find(_car(-5.25, 63.0), host=_host(sigma=2.05)) == []


# -- the vehicle's own route in the view, the loader -----------------------------------------------
def test_the_vehicle_gives_its_apps_its_route_ahead() -> None:
    sc = load_scenario(LTA)
    [car_a] = [a for a in build_agents(sc, environment(sc)) if isinstance(a, VehicleAgent) and a.actor_id == "car_a"]
    seen: list[OnBoardView] = []

    class Spy:
        def evaluate(self, view: OnBoardView, t_s: float) -> list[Any]:
            seen.append(view)
            return []

    car_a.apps = [Spy()]
    car_a.step(tick_ctx(0))
    [view] = seen
    assert view.route_ahead is not None
    x, y, heading = view.route_ahead(0.0)
    assert (x, y) == pytest.approx((view.host.x, view.host.y), abs=0.2) and heading == pytest.approx(math.pi / 2)
    # 89.53 m along at t = 0; the box at 138 m: 60 m ahead it is in the turn, 80 m ahead it runs west
    assert view.route_ahead(80.0)[2] == pytest.approx(math.pi)


def test_the_loader_accepts_lta_and_its_thresholds(tmp_path: Path) -> None:
    sc = load_scenario(LTA)
    assert {a.id for a in sc.actors if "lta" in a.apps} == {"car_a", "car_b", "car_c", "car_d", "truck"}
    text = (SCENARIO_DIR / "fcw.yaml").read_text().replace("apps: [fcw]", "apps: [fcw, lta]", 1)
    (tmp_path / "fcw-lta.yaml").write_text(text)
    assert any("lta" in a.apps for a in load_scenario(tmp_path / "fcw-lta.yaml").actors)
    good = LTA.read_text().replace("expectations:", "thresholds: {lta_gap_s: 3.0}\nexpectations:", 1)
    (tmp_path / "gap.yaml").write_text(good)
    assert load_scenario(tmp_path / "gap.yaml").thresholds == {"lta_gap_s": 3.0}
    (tmp_path / "typo.yaml").write_text(good.replace("lta_gap_s", "lta_gap"))
    with pytest.raises(ScenarioError) as err:
        load_scenario(tmp_path / "typo.yaml")
    assert "lta_gap" in str(err.value.problems)


# -- end to end -------------------------------------------------------------------------------------
async def test_the_shipped_scenario_on_the_loopback_bus() -> None:
    result = await run_scenario(load_scenario(LTA), seed=0, broker="loopback")
    assert result["passed"], [e for e in result["expectations"] if not e["passed"]]
    warnings = [e for e in result["events"] if e["type"] == "warning"]
    assert [(e["variant"], e["target"], e["other"], e["app"]) for e in warnings] == [("v2x", "car_a", "car_b", "lta")]
    [w] = warnings
    assert w["conflict"] == CONFLICT and 3.9 <= w["t_s"] <= 4.1 and w["ttc_s"] >= 4.5 and abs(w["gap_s"]) < 0.5
    collisions = [(e["variant"], e["actors"]) for e in result["events"] if e["type"] == "collision"]
    assert collisions == [("baseline", ["car_a", "car_b"])]  # none with V2X
    [stop] = [e for e in result["events"] if e["type"] == "stop" and e["variant"] == "v2x"]
    # car A stops in its lane before its stop line (y = -11.87): front bumper (centre + 2.5 m) short of it
    assert (stop["variant"], stop["actor"], stop["x_m"]) == ("v2x", "car_a", 1.75) and stop["y_m"] + 2.5 < -11.87
