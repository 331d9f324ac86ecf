"""CFW, the close-following warning (v2x/apps/collision.py ``close_following``): the vehicle ahead in the host's
lane within a time headway of ``cfw_thw_s`` (1 s), when FCW does not warn of it (the Wanji OBU stack's
``V2V_FCW_Section``: TTC under 3 s is FCW, else a headway under 1 s is its close-following warning)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from v2x.apps.collision import CloseFollowingWarning, ForwardCollisionWarning, close_following
from v2x.apps.host import Host, Participant
from v2x.apps.registry import OnBoardView, Raised, app_spec
from v2x.apps.thresholds import DEFAULTS
from v2x.scenario import load_scenario
from v2x.wire import testbed_pb2
from v2x.wire.bsm import RemoteState

LENGTH = 4.6  # both cars' length (m); the gap is between the host's front and the lead's rear
WIDTH = 1.8
V = 16.67  # 60 km/h


def _host(speed: float, accel: float = 0.0, sigma: float = 0.2) -> Participant:
    return Participant("host", 0.0, 0.0, speed, 0.0, accel, 0.0, LENGTH, WIDTH, sigma)


def _lead(gap_m: float, speed: float, *, y: float = 0.0, sigma: float | None = 0.2, key: int = 1) -> RemoteState:
    return RemoteState(key.to_bytes(4, "big"), 10.0, LENGTH + gap_m, y, speed, 0.0, 0.0, LENGTH, WIDTH, sigma, 0, 0)


def _view(host: Participant, remotes: list[RemoteState], **th: float) -> OnBoardView:
    speed = math.hypot(host.vx, host.vy)
    own = Host(host.x, host.y, host.heading_rad, speed, host.accel_mps2, host.length_m, host.sigma_m, host.width_m)
    return OnBoardView(own, host, {r.temp_id: r for r in remotes}, {}, {}, {}, {}, {}, {**DEFAULTS, **th})


def _both(host: Participant, remotes: list[RemoteState], **th: float) -> tuple[list[Raised], list[Raised]]:
    view = _view(host, remotes, **th)
    return CloseFollowingWarning().evaluate(view, 10.0), list(ForwardCollisionWarning().evaluate(view, 10.0))


def test_a_7_m_gap_at_60_kph_is_close_following_not_fcw() -> None:
    """The domain review's case: two cars at 16.67 m/s, 7 m apart (0.42 s): no closing speed, so no FCW; CFW warns
    with the headway."""
    cfw, fcw = _both(_host(V), [_lead(7.0, V)])
    assert fcw == []
    assert [(r.app, r.other, r.conflict_type) for r in cfw] == [("cfw", "00000001", "rear-end")]
    assert math.isclose(cfw[0].figure, 7.0 / V, abs_tol=1e-3)
    assert cfw[0].ttc_s == 0.0


def test_a_2_s_headway_or_one_just_over_the_threshold_does_not_warn() -> None:
    assert _both(_host(V), [_lead(2.0 * V, V)]) == ([], [])
    assert _both(_host(V), [_lead(1.05 * V, V)]) == ([], [])
    [just_under] = _both(_host(V), [_lead(0.95 * V, V)])[0]
    assert math.isclose(just_under.figure, 0.95, abs_tol=1e-3)


def test_the_threshold_is_the_scenarios() -> None:
    assert DEFAULTS["cfw_thw_s"] == 1.0 and DEFAULTS["cfw_min_speed_mps"] == 3.0
    assert _both(_host(V), [_lead(1.5 * V, V)], cfw_thw_s=2.0)[0] != []
    assert _both(_host(V), [_lead(7.0, V)], cfw_thw_s=0.3) == ([], [])
    assert _both(_host(V), [_lead(7.0, V)], cfw_thw_s=0.0) == ([], [])


def test_closing_under_fcws_ttc_is_fcw_and_not_close_following() -> None:
    # 10 m gap, closing at 6 m/s: TTC 1.67 s (FCW), headway 0.6 s; FCW's verdict takes it.
    cfw, fcw = _both(_host(V), [_lead(10.0, V - 6.0)])
    assert [r.app for r in fcw] == ["fcw"] and fcw[0].ttc_s < 3.0
    assert cfw == []
    # Closing more slowly (TTC 10 / 2 = 5 s, beyond FCW's 3 s): close following again.
    cfw, fcw = _both(_host(V), [_lead(10.0, V - 2.0)])
    assert fcw == [] and [r.app for r in cfw] == ["cfw"]
    assert math.isclose(cfw[0].figure, 10.0 / V, abs_tol=1e-3)


def test_the_headway_is_over_the_host_speed_and_its_acceleration_is_not_counted() -> None:
    # A lead pulling away still counts (headway is gap / own speed, the reference's FG_GetTHW), and the host's
    # braking does not lengthen it.
    cfw, _ = _both(_host(V, accel=-3.0), [_lead(12.0, V + 3.0)])
    assert [r.app for r in cfw] == ["cfw"] and math.isclose(cfw[0].figure, 12.0 / V, abs_tol=1e-3)


def test_a_host_at_or_below_the_minimum_speed_is_not_warned() -> None:
    # 1 m at 2.9 m/s is a headway of 0.34 s, but a host this slow is in a queue: nothing.
    assert _both(_host(2.9), [_lead(1.0, 2.9)]) == ([], [])
    assert _both(_host(3.0), [_lead(1.0, 3.0)]) == ([], [])
    assert [r.app for r in _both(_host(3.2), [_lead(1.0, 3.2)])[0]] == ["cfw"]
    # ... unless the scenario lowers the minimum
    assert [r.app for r in _both(_host(2.9), [_lead(1.0, 2.9)], cfw_min_speed_mps=2.0)[0]] == ["cfw"]


def test_only_the_vehicle_ahead_on_the_hosts_path() -> None:
    behind = RemoteState(b"\x00\x00\x00\x02", 10.0, -LENGTH - 3.0, 0.0, V, 0.0, 0.0, LENGTH, WIDTH, 0.2, 0, 0)
    next_lane = _lead(3.0, V, y=3.5, key=3)
    oncoming = RemoteState(b"\x00\x00\x00\x04", 10.0, LENGTH + 8.0, 0.0, V, math.pi, 0.0, LENGTH, WIDTH, 0.2, 0, 0)
    ahead = _lead(6.0, V, key=5)
    cfw, _ = _both(_host(V), [behind, next_lane, oncoming, ahead])
    assert [r.other for r in cfw] == ["00000005"]


def test_fcws_accuracy_gate_applies() -> None:
    assert _both(_host(V), [_lead(7.0, V, sigma=None)]) == ([], [])  # the lead's accuracy unknown
    assert _both(_host(V), [_lead(7.0, V, sigma=5.0)]) == ([], [])  # worse than fcw_required_accuracy_m
    assert _both(_host(V, sigma=math.inf), [_lead(7.0, V)]) == ([], [])  # the host without a fix


def test_close_following_over_participants() -> None:
    lead = Participant("lead", LENGTH + 7.0, 0.0, V, 0.0, 0.0, 0.0, LENGTH, WIDTH, 0.2)
    [(finding, thw)] = close_following(_host(V), [lead], DEFAULTS)
    assert finding.other == "lead" and finding.kind == "rear-end" and math.isclose(thw, 7.0 / V, abs_tol=1e-3)
    assert close_following(_host(V), [], DEFAULTS) == []


def test_the_app_is_an_advisory_below_fcw_on_its_own_code() -> None:
    spec = app_spec("cfw")
    assert spec.code == testbed_pb2.APP_CFW == 23
    assert spec.severity == testbed_pb2.SEVERITY_ADVISORY < app_spec("fcw").severity
    assert spec.figure is not None and spec.figure.name == "headway_s"


# -- end to end: a scenario run on the embedded broker ------------------------------------------------------

SCENARIO = """
id: cfw-test
name: Close following at 60 km/h
origin: {lat_deg: 29.7215, lon_deg: 106.6310, alt_m: 250.0}
duration_s: 4.0
tick_s: 0.1
variants: [v2x]
network: {pc5: pc5-sidelink-los, uu: 5g-uu-edge-sa, wired: wired-backhaul}
positioning: rtk-fixed
road:
  lanes:
    - {id: eb1, centerline: [[0, 0], [1500, 0]], width_m: 3.5, speed_limit_kph: 80}
    - {id: eb2, centerline: [[0, 3.5], [1500, 3.5]], width_m: 3.5, speed_limit_kph: 80}
actors:
  - {id: lead, kind: car, lane: eb1, start_m: 200, speed_mps: 16.67}
  # 7 m behind the lead (bumper to bumper; a car is 5 m long): a headway of 0.42 s, no closing speed
  - {id: close, kind: car, lane: eb1, start_m: 188, speed_mps: 16.67, apps: [fcw, cfw]}
  # 2 s behind that one
  - {id: far, kind: car, lane: eb1, start_m: 149.66, speed_mps: 16.67, apps: [fcw, cfw]}
  # beside the close follower, in the next lane
  - {id: beside, kind: car, lane: eb2, start_m: 188, speed_mps: 16.67, apps: [cfw]}
  - {id: cloud, kind: platform}
expectations:
  - {name: close follower warned, type: warning, app: cfw, target: close, other: lead, window_s: [0.0, 0.5]}
  - {name: not by FCW, type: no_warning, app: fcw, target: close}
  - {name: 2 s behind is not close, type: no_warning, app: cfw, target: far}
  - {name: the next lane is not followed, type: no_warning, app: cfw, target: beside}
"""


@pytest.mark.broker
async def test_a_close_follower_is_warned_by_cfw_in_a_run(tmp_path: Path) -> None:
    from v2x.run.runner import run_scenario

    path = tmp_path / "cfw-test.yaml"
    path.write_text(SCENARIO)
    result = await run_scenario(load_scenario(path), seed=0, broker="embedded")
    assert result["passed"], [e for e in result["expectations"] if not e["passed"]]
    warnings = [e for e in result["events"] if e["type"] == "warning"]
    assert {(e["target"], e["other"], e["app"]) for e in warnings} == {("close", "lead", "cfw")}
    first = warnings[0]
    assert first["conflict"] == "rear-end" and math.isclose(first["headway_s"], 7.0 / V, abs_tol=0.02)
    assert first["t_s"] < 0.5  # as soon as the follower has heard the lead (the headway holds from the start)


def test_cfw_is_opt_in_and_no_shipped_scenario_runs_it() -> None:
    """docs/SCENARIOS.md: CFW runs only where an actor lists it, and no shipped scenario's does (their outcomes are
    those without it: their platoons at 0.6 s and their queues would be warned all the time)."""
    from v2x.scenario import catalogue

    scenarios = [load_scenario(path) for path in catalogue()]
    assert len(scenarios) > 20 and any("fcw" in a.apps for sc in scenarios for a in sc.actors)
    assert not [(sc.id, a.id) for sc in scenarios for a in sc.actors if "cfw" in a.apps]
