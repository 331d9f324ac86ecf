"""Lane changes and the apps about them (BSW, LCW, DNPW) without a broker: the turn signal on the wire, the
scripted ``lane_change`` (smooth sideways move, signal, the driver abandoning it), the apps' hand-computed
cases (silent ones included), the vehicles of the shipped bsw-lcw and dnpw scenarios over an ideal channel,
the scenario file's new fields; the two scenarios end to end (seeds 0..3) at the end (also in
tests/test_e2e.py)."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests._agents import tick_ctx
from v2x.agents.base import Heard, TickResult
from v2x.agents.vehicle import VehicleAgent
from v2x.apps.blind_spot import lane_change_warnings, side_vehicles
from v2x.apps.dnpw import do_not_pass_warnings
from v2x.apps.driver import Driver
from v2x.apps.host import Host
from v2x.apps.thresholds import DEFAULTS
from v2x.geodesy import LocalFrame
from v2x.run.runner import build_agents, environment, run_scenario
from v2x.scenario import ScenarioError, load_scenario
from v2x.scenario.geometry import smoothstep5
from v2x.scenario.loader import SCENARIO_DIR
from v2x.wire import testbed_pb2
from v2x.wire.bsm import OwnState, RemoteState, decode_bsm, encode_bsm
from v2x.wire.envelope import temporary_id

BSW_LCW = SCENARIO_DIR / "bsw-lcw.yaml"
DNPW = SCENARIO_DIR / "dnpw.yaml"
FRAME = LocalFrame(29.5630, 106.5516, 240.0)
EPOCH = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


# -- the turn signal on the wire --------------------------------------------------------------------
def _own(signal: str = "", flags: frozenset[str] = frozenset()) -> OwnState:
    return OwnState(10.0, 0.0, 20.0, 0.0, 0.0, 5.0, 2.0, 1.6, "car", 0.02, 0.02, False, flags, signal)


def _decode(own: OwnState) -> tuple[int, RemoteState]:
    msg = encode_bsm(own, actor_id="car", t_s=1.0, msg_count=0, frame=FRAME, epoch=EPOCH)
    remote = decode_bsm(msg.bsm, now_s=1.0, frame=FRAME, epoch=EPOCH)
    assert remote is not None
    return msg.bsm.safety_ext.lights, remote


def test_the_turn_signal_is_sent_in_the_exterior_lights_and_decoded_back() -> None:
    # ExteriorLights: bit 2 leftTurnSignalOn, bit 3 rightTurnSignalOn, bit 4 hazardSignalOn
    assert [_decode(_own(s))[0] for s in ("", "left", "right")] == [0, 1 << 2, 1 << 3]
    assert [_decode(_own(s))[1].turn_signal for s in ("", "left", "right")] == ["", "left", "right"]
    lights, remote = _decode(_own("left", frozenset({"hazard_lights"})))
    assert lights == (1 << 2) | (1 << 4) and remote.turn_signal == "left" and remote.has("hazard_lights")
    msg = encode_bsm(_own(), actor_id="car", t_s=1.0, msg_count=0, frame=FRAME, epoch=EPOCH)
    msg.bsm.safety_ext.lights = (1 << 2) | (1 << 3)  # both blinking: that is hazard lights, not a signal
    both = decode_bsm(msg.bsm, now_s=1.0, frame=FRAME, epoch=EPOCH)
    assert both is not None and both.turn_signal == ""


# -- BSW / LCW: hand-computed cases -----------------------------------------------------------------
# The host: a 5 x 2 m car at the origin heading east at 22 m/s; its rear bumper at x = -2.5, its left side at
# y = 1. The blind zone: y from 1.5 to 4.0 (0.5 and 3.0 m outside its side), x from -5.5 (3 m behind the rear)
# to 0.5 (the driver's eyes, 2 m behind the front bumper).
def _host(signal: str = "", v: float = 22.0, sigma: float = 0.02) -> Host:
    return Host(0.0, 0.0, 0.0, v, 0.0, 5.0, sigma, 2.0, signal)


def _car(x: float, y: float, v: float = 22.0, heading_deg: float = 0.0, sigma: float | None = 0.02) -> RemoteState:
    return RemoteState(temporary_id("rv"), 0.0, x, y, v, math.radians(heading_deg), 0.0, 5.0, 2.0, sigma, 10, 0)


def _beside(remote: RemoteState, host: Host | None = None) -> list[tuple[str, bool, float]]:
    found = side_vehicles(host or _host(), [remote], 0.0, DEFAULTS, 1.5)
    return [(sv.side, sv.in_zone, round(sv.gap_m, 3)) for sv in found]


def _lcw(remote: RemoteState, host: Host) -> list[tuple[str, object]]:
    return [(sv.side, round(sv.time_to_close_s, 3)) for sv in lane_change_warnings(host, [remote], 0.0, DEFAULTS)]


def test_a_car_behind_beside_in_the_next_lane_is_in_the_blind_spot() -> None:
    # centre 4 m behind, next lane left: front at -1.5 (1 m past the host's rear bumper), near side 1.5 m out
    assert _beside(_car(-4.0, 3.5)) == [("left", True, -1.0)]
    assert _beside(_car(-4.0, -3.5)) == [("right", True, -1.0)]
    # the zone's rear edge: its front bumper just inside 3 m behind the host's rear bumper, or just outside
    assert _beside(_car(-7.9, 3.5)) == [("left", True, 2.9)]
    assert _beside(_car(-8.1, 3.5)) == [("left", False, 3.1)]
    # its front edge, the driver's eyes at x = 0.5: its rear bumper just behind them, or just ahead
    assert _beside(_car(2.9, 3.5))[0][1] and not _beside(_car(3.1, 3.5))[0][1]


def test_two_lanes_over_the_same_lane_or_the_other_way_is_not_beside() -> None:
    assert _beside(_car(-4.0, 7.0)) == []  # near side 5 m from the host's: beyond the 3 m zone
    assert _beside(_car(-4.0, 4.9)) != [] and _beside(_car(-4.0, 5.1)) == []  # the zone ends 3.0 m out
    assert _beside(_car(-8.0, 0.0)) == []  # behind in the host's own lane (FCW's business)
    assert _beside(_car(-4.0, 3.5, heading_deg=180.0)) == []  # oncoming
    assert _beside(_car(-4.0, 3.5, sigma=0.62)) == []  # 95 % error 1.52 m > 1.5 m
    assert side_vehicles(_host(sigma=0.62), [_car(-4.0, 3.5)], 0.0, DEFAULTS, 1.5) == []


def test_lcw_needs_the_signal_on_that_side_and_a_car_in_the_zone_or_closing() -> None:
    in_spot = _car(-4.0, 3.5)
    assert _lcw(in_spot, _host()) == []  # no signal: BSW's mark only
    assert _lcw(in_spot, _host("right")) == []  # signalling away from it
    assert _lcw(in_spot, _host("left")) == [("left", 0.0)]
    # closing from behind: gap 20 m at 28 - 22 = 6 m/s is 3.33 s (not yet); 17 m is 2.83 s (warned)
    assert _lcw(_car(-25.0, 3.5, v=28.0), _host("left")) == []
    assert _lcw(_car(-22.0, 3.5, v=28.0), _host("left")) == [("left", pytest.approx(17 / 6, abs=1e-3))]
    # far behind, or not closing (same speed, slower), is left alone
    assert _lcw(_car(-100.0, 3.5, v=25.0), _host("left")) == []
    assert _lcw(_car(-10.0, 3.5, v=22.0), _host("left")) == []
    assert _lcw(_car(-10.0, 3.5, v=15.0), _host("left")) == []
    # beside the front half of the host the driver sees it: not the blind spot, not LCW's
    assert _lcw(_car(4.0, 3.5), _host("left")) == []


# -- DNPW: hand-computed cases ----------------------------------------------------------------------
# The host: a 5 m car at the origin heading east at 11 m/s, signalling left to overtake; oncoming cars in the
# lane to its left (y = 3.5) heading west at 17 m/s: the two close at 28 m/s, so 9 s is 252 m of gap.
def _oncoming(x: float, y: float = 3.5, v: float = 17.0, heading_deg: float = 180.0) -> RemoteState:
    return replace(_car(x, y, v, heading_deg), temp_id=temporary_id(f"on{x}"))


def _dnpw(*remotes: RemoteState, host: Host | None = None) -> list[tuple[float, object]]:
    found = do_not_pass_warnings(host or _host("left", v=11.0), remotes, 0.0, DEFAULTS)
    return [(round(ov.gap_m, 3), round(ov.time_to_meet_s, 3)) for ov in found]


def test_dnpw_warns_about_an_oncoming_car_within_the_time_a_pass_needs() -> None:
    assert _dnpw(_oncoming(205.0)) == [(200.0, pytest.approx(200 / 28, abs=1e-3))]
    assert _dnpw(_oncoming(256.0)) == [(251.0, pytest.approx(251 / 28, abs=1e-3))]  # 8.96 s
    assert _dnpw(_oncoming(258.0)) == []  # 253 m: 9.04 s, time enough to pass
    # and only while the driver signals left (an overtake): no signal, or right, is no overtake
    assert _dnpw(_oncoming(205.0), host=_host("", v=11.0)) == []
    assert _dnpw(_oncoming(205.0), host=_host("right", v=11.0)) == []


def test_dnpw_is_silent_for_cars_not_in_the_passing_zone() -> None:
    assert _dnpw(_oncoming(-30.0)) == []  # already past the host
    assert _dnpw(_oncoming(3.0)) == []  # alongside: the bumpers overlap
    assert _dnpw(_oncoming(100.0, y=5.3)) == []  # beyond the oncoming lane (5.3 m > 5.25 m from the path)
    assert _dnpw(_oncoming(100.0, heading_deg=0.0)) == []  # ahead in the same direction (the car to pass)
    assert _dnpw(_oncoming(100.0, heading_deg=130.0)) == []  # crossing, not oncoming (over 45 degrees off)
    assert _dnpw(_oncoming(310.0, v=30.0)) == []  # beyond the 300 m range though within 9 s
    assert _dnpw(replace(_oncoming(100.0), sigma_major_m=0.62)) == []  # position too uncertain


def test_dnpw_follows_the_host_route_round_a_bend() -> None:
    """On a left-hand bend of 100 m radius the oncoming car 157 m along the road (a quarter circle) is
    111 m away in a straight line; its gap is measured along the road, and off the straight heading line it
    would be out of the passing zone."""
    r = 100.0

    def ahead(d: float) -> tuple[float, float, float]:  # the host's route: a circle from (0, 0), centre (0, r)
        a = d / r
        return r * math.sin(a), r - r * math.cos(a), a

    quarter = math.pi * r / 2  # 157.08 m: at (100, 100), heading north; oncoming: heading south
    car = _oncoming(r + 3.5, r, heading_deg=-90.0)
    found = do_not_pass_warnings(_host("left", v=11.0), [car], 0.0, DEFAULTS, ahead)
    [ov] = found
    assert ov.gap_m == pytest.approx(quarter - 5.0, abs=0.2) and ov.lateral_m == pytest.approx(-3.5, abs=0.05)
    assert do_not_pass_warnings(_host("left", v=11.0), [car], 0.0, DEFAULTS) == []  # no route: heading line


# -- the lane change and the driver -----------------------------------------------------------------
def test_the_lateral_profile_is_smooth_and_ends_level() -> None:
    assert smoothstep5(0.0) == (0.0, 0.0) and smoothstep5(1.0) == (1.0, 0.0)
    assert smoothstep5(0.5) == (0.5, 1.875) and smoothstep5(-1.0) == (0.0, 0.0) and smoothstep5(2.0) == (1.0, 0.0)


def test_the_driver_abandons_a_manoeuvre_once_after_his_reaction_time() -> None:
    d = Driver(reaction_s=1.0, brake_mps2=6.0)
    d.on_abort(6.1)
    d.on_abort(6.5)  # a second warning before he reacts changes nothing
    assert not d.abort_due(7.0) and d.abort_due(7.1) and not d.abort_due(7.2)
    assert d.brake_at_s is None  # he does not brake for it


def _vehicles(path: Path) -> dict[str, VehicleAgent]:
    sc = load_scenario(path)
    return {a.actor_id: a for a in build_agents(sc, environment(sc)) if isinstance(a, VehicleAgent)}


def _run(cars: dict[str, VehicleAgent], ticks: int, heard: bool = True) -> dict[str, list[TickResult]]:
    """Step the cars over an ideal PC5 channel (every BSM heard 2 ms later; none when ``heard`` is false)."""
    out: dict[str, list[TickResult]] = {k: [] for k in cars}
    inbox: dict[str, list[Heard]] = {k: [] for k in cars}
    for tick in range(ticks):
        t = round(tick * 0.1, 9)
        results = {name: car.step(tick_ctx(tick, tuple(inbox[name]))) for name, car in cars.items()}
        inbox = {k: [] for k in cars}
        for sender, res in results.items():
            out[sender].append(res)
            for tx in res.transmissions:
                for receiver in cars:
                    if heard and receiver != sender and tx.link == testbed_pb2.LINK_PC5:
                        inbox[receiver].append(Heard(sender, tx.link, t + 0.002, t, tx.frame))
    return out


def _truths(results: list[TickResult]) -> list[testbed_pb2.TruthState]:
    return [r.truth for r in results if r.truth is not None]


def test_a_scripted_lane_change_moves_over_smoothly_with_the_signal_on() -> None:
    """Car A of bsw-lcw with nobody heard (the baseline's driver): signal on at t = 6.0 s, the move from 6.5 s
    to 9.5 s onto the middle lane (3.5 m left), the signal off once there; heading turned by the move."""
    cars = _vehicles(BSW_LCW)
    results = _run(cars, 110, heard=False)["car_a"]
    truths = _truths(results)
    lights = [
        next(tx for tx in r.transmissions if tx.link == testbed_pb2.LINK_PC5).frame.bsm.safety_ext.lights
        for r in results
    ]
    assert set(lights[:60]) == {0} and set(lights[60:95]) == {1 << 2} and set(lights[95:]) == {0}
    y = [t.y_m for t in truths]
    assert y[65] == 0.0 and y[80] == pytest.approx(1.75, abs=1e-6) and y[95] == pytest.approx(3.5, abs=1e-9)
    steps = [b - a for a, b in itertools.pairwise(y)]
    assert min(steps) >= 0.0  # monotone
    assert max(steps) == pytest.approx(0.1 * 1.875 * 3.5 / 3.0, abs=0.01)  # peak sideways 2.19 m/s
    peak_yaw = math.degrees(math.atan2(1.875 * 3.5 / 3.0, 22.22))
    assert min(t.heading_deg for t in truths) == pytest.approx(90.0 - peak_yaw, abs=0.1)  # compass: east 90
    assert truths[70].lane == "eb1" and truths[100].lane == "eb2" and truths[100].heading_deg == 90.0


def test_bsw_lcw_vehicles_over_an_ideal_channel_warn_and_the_driver_stays_in_lane() -> None:
    cars = _vehicles(BSW_LCW)
    results = _run(cars, 120)
    adv = {k: [a for r in res for a in r.events] for k, res in results.items()}
    b = temporary_id("car_b").hex()
    first_bsw = next(a for a in adv["car_a"] if a.app == testbed_pb2.APP_BSW)
    assert (first_bsw.other_id, first_bsw.severity, first_bsw.conflict_type) == (
        b,
        testbed_pb2.SEVERITY_INFO,
        "left blind spot",
    )
    [lcw] = [a for a in adv["car_a"] if a.app == testbed_pb2.APP_LCW]
    # at the delivery of the first BSM after the signal went on (sent at 6.0 s, heard 2 ms later)
    assert (lcw.other_id, lcw.raised_at_s, lcw.conflict_type) == (b, 6.002, "left, in the blind spot")
    assert {a.other_id for a in adv["car_a"]} == {b}  # not car E (two lanes over), not car F (far behind)
    assert {a.app for a in adv["car_c"]} == {testbed_pb2.APP_BSW}  # no signal: no LCW
    truths = _truths(results["car_a"])
    y = [t.y_m for t in truths]
    # he started to move at 6.5 s, reacted at 7.002 s (0.12 m over) and was back by 8.1 s; never braked
    assert max(y) == pytest.approx(3.5 * smoothstep5(0.502 / 3.0)[0], abs=0.005) and y[-1] == 0.0
    assert y[81] == 0.0 and min(t.speed_mps for t in truths) == pytest.approx(22.22)
    assert cars["car_a"].driver is not None and cars["car_a"].driver.brake_at_s is None


def test_dnpw_vehicles_over_an_ideal_channel_warn_and_the_driver_drops_back() -> None:
    cars = _vehicles(DNPW)
    results = _run(cars, 130)
    adv = [a for r in results["car_a"] for a in r.events]
    [first] = adv
    assert (first.app, first.other_id, first.raised_at_s) == (testbed_pb2.APP_DNPW, temporary_id("car_b").hex(), 4.002)
    assert first.ttc_s == pytest.approx(7.05, abs=0.05) and first.figure_name == "gap_m"
    a, lorry = _truths(results["car_a"]), _truths(results["lorry"])
    # back behind the lorry, at its speed, with a gap of more than 15 m all along
    gaps = [math.hypot(p.x_m - q.x_m, p.y_m - q.y_m) - 9.0 for p, q in zip(a, lorry, strict=True)]
    assert min(gaps) > 15.0 and a[-1].speed_mps == pytest.approx(11.11, abs=0.05)
    assert cars["car_a"].offset_m == 0.0 and max(p.speed_mps for p in a) < 12.1


def test_dnpw_silent_for_the_far_and_the_passed_oncoming_vehicles_while_signalling() -> None:
    """At every tick car A signals in the scripted run (no abort: nobody heard by its driver), lorry_down is
    over 9 s away and car_passed behind it; car B is within 9 s from the first."""
    cars = _vehicles(DNPW)
    results = _run(cars, 60, heard=False)
    car_a = cars["car_a"]
    assert car_a.turn_signal == "left"
    t = _truths(results["car_a"])[-1]
    host = Host(t.x_m, t.y_m, math.radians(90.0 - t.heading_deg), t.speed_mps, 0.0, 5.0, 0.02, 2.0, "left")
    remotes = []
    for name in ("car_b", "lorry_down", "car_passed"):
        r = _truths(results[name])[-1]
        length = 13.0 if name.startswith("lorry") else 5.0
        remotes.append(
            RemoteState(
                temporary_id(name),
                5.9,
                r.x_m,
                r.y_m,
                r.speed_mps,
                math.radians(90.0 - r.heading_deg),
                0.0,
                length,
                2.0,
                0.02,
                10,
                0,
            )
        )
    found = do_not_pass_warnings(host, remotes, 5.9, DEFAULTS, car_a._route_ahead(0.0, 0.0))
    assert [ov.key for ov in found] == [temporary_id("car_b").hex()]
    # and lorry_down's time to meet is still over 9 s (it only grows shorter: 5.9 s is the latest checked)
    far = do_not_pass_warnings(host, remotes[1:2], 5.9, {**DEFAULTS, "dnpw_ttc_s": 1e6}, car_a._route_ahead(0.0, 0.0))
    assert far[0].time_to_meet_s > 10.5


# -- scenario files ---------------------------------------------------------------------------------
def _problems(tmp_path: Path, old: str, new: str) -> dict[str, str]:
    text = BSW_LCW.read_text()
    assert old in text, old
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(path) in str(info.value)
    return dict(info.value.problems)


def test_lane_change_fields_are_checked_with_their_paths(tmp_path: Path) -> None:
    ev = "- {at_s: 6.0, action: lane_change, lane: eb2, signal_s: 0.5, duration_s: 3.0}"
    where = "actors[0].events[0]"
    assert "eb9" in _problems(tmp_path, ev, ev.replace("eb2", "eb9"))[f"{where}.lane"]
    assert "needs 'lane'" in _problems(tmp_path, ev, ev.replace("lane: eb2, ", ""))[where]
    rate = _problems(tmp_path, ev, ev[:-1] + ", rate_mps2: 2}")[where]
    assert "'rate_mps2'" in rate and "'duration_s'" in rate
    assert (
        "greater than 0"
        in _problems(tmp_path, ev, ev.replace("duration_s: 3.0", "duration_s: 0"))[f"{where}.duration_s"]
    )
    assert (
        "greater than or equal to 0"
        in _problems(tmp_path, ev, ev.replace("signal_s: 0.5", "signal_s: -1"))[f"{where}.signal_s"]
    )
    brake = "- {at_s: 6.0, action: brake, rate_mps2: 2.0, lane: eb2}"
    assert "lane actions" in _problems(tmp_path, ev, brake)[where]
    walker = _problems(tmp_path, "- id: car_a\n    kind: car", "- id: car_a\n    kind: pedestrian")
    assert "vehicle's manoeuvre" in walker[f"{where}.action"]


# -- end to end -------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])  # seed 0: its golden record, in test_e2e.py
@pytest.mark.parametrize(
    ("path", "app", "crashes"),
    [
        # car A side-swipes car B; both rest where they touched, in car F's lane, and car F runs into car B
        (BSW_LCW, "lcw", [["car_a", "car_b"], ["car_b", "car_f"]]),
        (DNPW, "dnpw", [["car_a", "car_b"]]),
    ],
)
async def test_lane_scenarios_pass_for_seeds_1_to_3(path: Path, app: str, crashes: list[list[str]], seed: int) -> None:
    """The warning comes, the driver abandons the manoeuvre, nobody collides; the baseline collides."""
    result = await run_scenario(load_scenario(path), seed=seed, broker="loopback")
    assert result["passed"], [e for e in result["expectations"] if not e["passed"]]
    warned = [e for e in result["events"] if e["type"] == "warning" and e["app"] == app]
    assert warned and {(e["target"], e["other"]) for e in warned} == {("car_a", "car_b")}
    collisions = [(e["variant"], e["actors"]) for e in result["events"] if e["type"] == "collision"]
    assert collisions == [("baseline", crash) for crash in crashes]
    assert set(result["metrics"]["v2x"]["latency_ms_by_message"]) == {"bsm"}
