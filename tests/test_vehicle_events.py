"""V2V event warnings (EBW, AVW, CLW) without a broker: the BSM event flags on the wire (round trip, the
brake system status and exterior lights, hardBraking at 0.4 g, out-of-range bit strings), the scripted flag
events of a vehicle, the one on-board app's hand-computed relevance cases, the vehicles of the shipped ebw
scenario over an ideal channel, and the scenario file's new fields; the shipped scenarios end to end at the
end (also in tests/test_e2e.py)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests._agents import tick_ctx
from v2x.agents.base import Heard
from v2x.agents.vehicle import VehicleAgent
from v2x.apps.host import Host
from v2x.apps.thresholds import DEFAULTS
from v2x.apps.vehicle_events import vehicle_event_warnings
from v2x.cli import main
from v2x.geodesy import LocalFrame
from v2x.run.runner import build_agents, environment
from v2x.scenario import ScenarioError, load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.wire import day1_pb2, frame_pb2, testbed_pb2
from v2x.wire.bsm import HARD_BRAKING_MPS2, VEHICLE_EVENT_BIT, OwnState, RemoteState, decode_bsm, encode_bsm
from v2x.wire.envelope import temporary_id

EBW = SCENARIO_DIR / "ebw.yaml"
AVW = SCENARIO_DIR / "avw.yaml"
CLW = SCENARIO_DIR / "clw.yaml"
FRAME = LocalFrame(29.5630, 106.5516, 240.0)
EPOCH = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


# -- the flags on the wire --------------------------------------------------------------------------
def _own(accel: float = 0.0, flags: frozenset[str] = frozenset()) -> OwnState:
    return OwnState(10.0, 0.0, 20.0, 0.0, accel, 5.0, 2.0, 1.6, "car", 0.02, 0.02, accel < 0, flags)


def _bsm(own: OwnState) -> frame_pb2.MessageFrame:
    return encode_bsm(own, actor_id="car", t_s=1.0, msg_count=0, frame=FRAME, epoch=EPOCH)


def _decode(msg: frame_pb2.MessageFrame) -> RemoteState:
    remote = decode_bsm(msg.bsm, now_s=1.0, frame=FRAME, epoch=EPOCH)
    assert remote is not None
    return remote


def test_bsm_carries_the_event_flags_brake_status_and_hazard_signal_and_decodes_them_back() -> None:
    msg = _bsm(_own(-5.0, frozenset({"hazard_lights", "abs", "disabled"})))
    bsm = msg.bsm
    # VehicleEventFlags: hazardLights 0, ABSactivated 2, hardBraking 7 (5 m/s^2 >= 0.4 g), disabledVehicle 11
    assert bsm.safety_ext.events == (1 << 0) | (1 << 2) | (1 << 7) | (1 << 11) == 0b1000_1000_0101
    assert bsm.safety_ext.lights == 1 << 4  # ExteriorLights hazardSignalOn
    # brake pedal on; ABS engaged (3), traction and stability control on but not engaged (2)
    b = bsm.brakes
    assert (b.brake_pedal, b.abs, b.traction, b.scs) == (2, 3, 2, 2)
    remote = _decode(msg)
    assert {f for f in VEHICLE_EVENT_BIT if remote.has(f)} == {"hazard_lights", "abs", "disabled", "hard_braking"}
    assert remote.hard_braking
    # nothing set: no flags, no lights, the systems on and idle
    quiet = _bsm(_own())
    assert (quiet.bsm.safety_ext.events, quiet.bsm.safety_ext.lights) == (0, 0)
    assert (quiet.bsm.brakes.brake_pedal, quiet.bsm.brakes.abs, quiet.bsm.brakes.scs) == (1, 2, 2)
    assert _decode(quiet).events == 0
    every = frozenset({"traction_control", "stability_control"})
    assert _decode(_bsm(_own(0.0, every))).events == (1 << 3) | (1 << 4)


def test_hard_braking_is_set_at_0_4_g() -> None:
    assert round(HARD_BRAKING_MPS2, 5) == 3.92266
    assert _decode(_bsm(_own(-3.93))).hard_braking
    assert not _decode(_bsm(_own(-3.9))).hard_braking
    # a vehicle does not claim hard braking it is not doing, whatever its scripted flags say
    assert not _decode(_bsm(_own(-1.0, frozenset({"hard_braking"})))).hard_braking


def test_brake_status_engaged_and_hazard_signal_alone_read_as_the_flags() -> None:
    """An outside stack may say it only in the brake system status or the exterior lights."""
    msg = _bsm(_own())
    msg.bsm.brakes.traction = 3
    msg.bsm.safety_ext.lights = (1 << 4) | 1  # hazard signal and low beam
    remote = _decode(msg)
    assert remote.has("traction_control") and remote.has("hazard_lights") and not remote.has("abs")


def test_out_of_range_flags_and_statuses_reject_the_bsm_and_are_counted() -> None:
    for path, value in (
        ("safety_ext.events", 1 << 13),
        ("safety_ext.lights", 1 << 9),
        ("brakes.abs", 4),
        ("brakes.brake_pedal", 7),
    ):
        bad = _bsm(_own())
        part, field = path.split(".")
        setattr(getattr(bad.bsm, part), field, value)
        with pytest.raises(ValueError):
            decode_bsm(bad.bsm, now_s=1.0, frame=FRAME, epoch=EPOCH)
    follower = _vehicles(EBW)["follower"]
    follower.step(tick_ctx(0, (Heard("lead", testbed_pb2.LINK_PC5, 0.0, 0.0, bad),)))
    assert follower.rejected == {"out_of_range": 1} and follower.remotes == {}


# -- the app: hand-computed cases -------------------------------------------------------------------
# The host: a 5 m car at the origin heading east at 20 m/s, RTK-grade position; its front bumper at x = 2.5.
def _host(v: float = 20.0, a: float = 0.0, sigma: float = 0.02) -> Host:
    return Host(0.0, 0.0, 0.0, v, a, 5.0, sigma)


def _remote(
    x: float,
    y: float = 0.0,
    *flags: str,
    heading_deg: float = 0.0,
    v: float = 10.0,
    sigma: float | None = 0.02,
    t_s: float = 0.0,
) -> RemoteState:
    """A 5 m car at (x, y) at time ``t_s`` (ENU heading ``heading_deg``: 0 east, 180 west) with ``flags``."""
    events = sum(1 << VEHICLE_EVENT_BIT[f] for f in flags)
    return RemoteState(temporary_id("rv"), t_s, x, y, v, math.radians(heading_deg), 0.0, 5.0, 2.0, sigma, 10, events)


def _warn(
    remote: RemoteState, host: Host | None = None, apps: tuple[str, ...] = ("ebw", "avw", "clw")
) -> list[tuple[str, float, float]]:
    found = vehicle_event_warnings(host or _host(), [remote], 0.0, DEFAULTS, apps)
    return [(w.app, w.gap_m, w.time_to_reach_s) for w in found]


def test_ebw_warns_about_a_hard_braking_car_ahead_in_the_lane() -> None:
    # centre 50 m ahead: gap 50 - 2.5 - 2.5 = 45 m, at 20 m/s 2.25 s
    assert _warn(_remote(50.0, 0.0, "hard_braking")) == [("ebw", 45.0, 2.25)]
    [w] = vehicle_event_warnings(_host(), [_remote(50.0, 1.0, "hard_braking")], 0.0, DEFAULTS)
    assert (w.key, w.flags, w.lateral_m, w.description) == (
        temporary_id("rv").hex(),
        ("hard_braking",),
        1.0,
        "hard braking",
    )
    # sent 1 s ago at x = 40 and 10 m/s: extrapolated to x = 50 now
    assert _warn(_remote(40.0, 0.0, "hard_braking", t_s=-1.0)) == [("ebw", 45.0, 2.25)]


def test_silent_for_a_car_behind_beside_or_already_passed() -> None:
    assert _warn(_remote(-50.0, 0.0, "hard_braking")) == []  # behind
    assert _warn(_remote(4.0, 0.0, "hard_braking")) == []  # bumpers overlap: gap -1 m (already alongside)
    assert _warn(_remote(4.0, 3.5, "disabled", v=0.0)) == []  # beside, in the next lane, gap -1 m
    [(app, gap, t)] = _warn(_remote(5.1, 3.5, "disabled", v=0.0))  # just ahead, in the next lane
    assert app == "avw" and (gap, t) == pytest.approx((0.1, 0.005))


def test_silent_for_the_opposite_direction_within_a_45_degree_window() -> None:
    assert _warn(_remote(50.0, 0.0, "hard_braking", heading_deg=180.0)) == []  # coming towards the host
    assert _warn(_remote(50.0, 3.5, "disabled", heading_deg=180.0, v=0.0)) == []  # oncoming lane, stopped
    assert _warn(_remote(50.0, 0.0, "hard_braking", heading_deg=44.0)) != []
    assert _warn(_remote(50.0, 0.0, "hard_braking", heading_deg=46.0)) == []


def test_ebw_is_for_the_host_lane_avw_and_clw_also_for_the_next_one() -> None:
    assert _warn(_remote(50.0, 1.75, "hard_braking")) != []
    assert _warn(_remote(50.0, 1.8, "hard_braking")) == []  # 1.8 m off the heading line: not the same lane
    assert _warn(_remote(50.0, -3.5, "hard_braking")) == []  # the next lane
    assert [w[0] for w in _warn(_remote(50.0, -3.5, "disabled", "abs", v=0.0))] == ["avw", "clw"]
    assert _warn(_remote(50.0, 5.3, "disabled", "abs", v=0.0)) == []  # two lanes over (5.3 > 5.25 m)


def test_range_and_time_to_reach_per_app() -> None:
    # time to reach at 20 m/s: gap 120 m = 6.0 s (warned), 125 m = 6.25 s (not yet)
    assert _warn(_remote(125.0, 0.0, "hard_braking")) == [("ebw", 120.0, 6.0)]
    assert _warn(_remote(130.0, 0.0, "hard_braking")) == []
    # fast host (40 m/s): EBW and AVW stop at 150 m of gap though they would be reached within 6 s
    fast = _host(v=40.0)
    assert _warn(_remote(155.0, 0.0, "hard_braking"), fast) == [("ebw", 150.0, 3.75)]
    assert _warn(_remote(156.0, 0.0, "hard_braking"), fast) == []
    assert _warn(_remote(156.0, 0.0, "disabled", v=0.0), fast) == []
    # CLW reaches 300 m and 7 s: at 45 m/s, gap 295 m = 6.56 s warned; gap 305 m beyond range
    faster = _host(v=45.0)
    [(app, gap, t)] = _warn(_remote(300.0, 0.0, "abs"), faster)
    assert app == "clw" and (gap, t) == pytest.approx((295.0, 295 / 45))
    assert _warn(_remote(310.0, 0.0, "stability_control"), faster) == []
    # CLW at 20 m/s: 7 s = 140 m of gap
    assert _warn(_remote(145.0, 0.0, "traction_control")) == [("clw", 140.0, 7.0)]
    assert _warn(_remote(146.0, 0.0, "traction_control")) == []


def test_a_standing_host_or_one_stopping_short_is_not_warned() -> None:
    assert _warn(_remote(50.0, 0.0, "hard_braking"), _host(v=0.0)) == []
    # braking at 5 m/s^2 from 20 m/s stops in 40 m < 45 m
    assert _warn(_remote(50.0, 0.0, "hard_braking"), _host(a=-5.0)) == []
    assert _warn(_remote(40.0, 0.0, "hard_braking"), _host(a=-5.0)) != []  # 35 m: reaches it


def test_no_warning_once_the_flag_is_cleared_or_without_one() -> None:
    assert _warn(_remote(50.0)) == []
    assert _warn(_remote(50.0, 0.0, "hazard_lights", v=0.0)) == [("avw", 45.0, 2.25)]
    lights_changed = replace(_remote(50.0), events=1 << day1_pb2.EVENT_LIGHTS_CHANGED)
    assert _warn(lights_changed) == []  # a flag none of the apps is about


def test_avw_hazard_lights_count_only_when_stopped_or_crawling() -> None:
    assert _warn(_remote(50.0, 0.0, "hazard_lights", v=4.17)) != []
    assert _warn(_remote(50.0, 0.0, "hazard_lights", v=4.2)) == []  # driving with its hazards on
    assert _warn(_remote(50.0, 0.0, "disabled", v=10.0)) == [("avw", 45.0, 2.25)]  # disabled: any speed


def test_each_app_only_for_its_flags_and_only_if_the_host_runs_it() -> None:
    both = _remote(50.0, 0.0, "hard_braking", "abs")
    assert [w[0] for w in _warn(both)] == ["ebw", "clw"]
    assert [w[0] for w in _warn(both, apps=("clw",))] == ["clw"]
    assert _warn(_remote(50.0, 0.0, "hard_braking"), apps=("avw", "clw")) == []


def test_position_accuracy_per_app() -> None:
    # EBW needs 1.5 m (95 %): sigma 0.61 m -> 1.49 m passes, 0.62 m -> 1.52 m does not; AVW / CLW 5 m
    assert _warn(_remote(50.0, 0.0, "hard_braking"), _host(sigma=0.61)) != []
    assert _warn(_remote(50.0, 0.0, "hard_braking"), _host(sigma=0.62)) == []
    assert _warn(_remote(50.0, 0.0, "hard_braking", sigma=0.62)) == []
    assert _warn(_remote(50.0, 0.0, "abs", sigma=2.0)) != []
    assert _warn(_remote(50.0, 0.0, "abs", sigma=None)) == []  # accuracy unavailable: never warned about
    assert _warn(_remote(50.0, 0.0, "abs"), _host(sigma=math.inf)) == []


# -- vehicles ---------------------------------------------------------------------------------------
def _vehicles(path: Path) -> dict[str, VehicleAgent]:
    sc = load_scenario(path)
    return {a.actor_id: a for a in build_agents(sc, environment(sc)) if isinstance(a, VehicleAgent)}


def _events_sent(car: VehicleAgent, ticks: int) -> list[int]:
    out = []
    for tick in range(ticks):
        [pc5] = [tx for tx in car.step(tick_ctx(tick)).transmissions if tx.link == testbed_pb2.LINK_PC5]
        out.append(pc5.frame.bsm.safety_ext.events)
    return out


def test_scripted_flags_are_set_cleared_and_expire_in_the_bsm() -> None:
    skidder = _vehicles(CLW)["skidder"]
    sent = _events_sent(skidder, 110)
    abs_scs = (1 << day1_pb2.EVENT_ABS_ACTIVATED) | (1 << day1_pb2.EVENT_STABILITY_CONTROL_ACTIVATED)
    assert set(sent[:30]) == {0}
    assert set(sent[30:60]) == {abs_scs}  # t = 3.0 .. 5.9 s: for_s 3
    assert set(sent[60:105]) == {0}  # braking at 3 m/s^2: no hardBraking
    assert set(sent[105:]) == {1 << day1_pb2.EVENT_HAZARD_LIGHTS}  # t = 10.5 s
    stalled = _vehicles(AVW)["stalled"]
    sent = _events_sent(stalled, 45)
    assert sent[0] == 1 << day1_pb2.EVENT_HAZARD_LIGHTS
    assert sent[44] == (1 << day1_pb2.EVENT_HAZARD_LIGHTS) | (1 << day1_pb2.EVENT_DISABLED_VEHICLE)


def test_a_flag_cleared_with_active_false(tmp_path: Path) -> None:
    path = _scenario(
        tmp_path, AVW, "- {at_s: 4.0, action: disabled}", "- {at_s: 2.0, action: hazard_lights, active: false}"
    )
    sent = _events_sent(_vehicles(path)["stalled"], 30)
    assert set(sent[:20]) == {1 << day1_pb2.EVENT_HAZARD_LIGHTS} and set(sent[20:]) == {0}


def test_ebw_vehicles_over_an_ideal_channel_warn_about_the_car_two_ahead() -> None:
    cars = _vehicles(EBW)
    warnings: dict[str, list[testbed_pb2.Advisory]] = {k: [] for k in cars}
    inbox: dict[str, list[Heard]] = {k: [] for k in cars}
    for tick in range(100):
        t = round(tick * 0.1, 9)
        outputs = {name: car.step(tick_ctx(tick, tuple(inbox[name]))) for name, car in cars.items()}
        inbox = {k: [] for k in cars}
        for sender, res in outputs.items():
            warnings[sender] += res.events
            for tx in res.transmissions:
                for receiver in cars:
                    if receiver != sender and tx.link == testbed_pb2.LINK_PC5:
                        inbox[receiver].append(Heard(sender, tx.link, t + 0.002, t, tx.frame))
    # the lead brakes at t = 5.0 s; its BSM of that tick is heard and acted on when it arrives, at t = 5.002 s
    first, second = warnings["follower"]
    assert (first.app, first.other_id, first.raised_at_s) == (testbed_pb2.APP_EBW, temporary_id("lead").hex(), 5.002)
    assert first.figure_name == "gap_m" and first.figure == pytest.approx(78.0, abs=0.1)
    assert first.conflict_type == "hard braking" and first.ttc_s == pytest.approx(78.0 / 22.22, abs=0.01)
    assert (second.other_id, second.raised_at_s) == (temporary_id("truck").hex(), 6.202)  # the truck brakes too
    driver = cars["follower"].driver
    assert driver is not None and driver.brake_at_s == pytest.approx(6.002) and driver.cause == "ebw"
    assert warnings["neighbour"] == warnings["ahead"] == []
    truck, follower = cars["truck"], cars["follower"]
    assert follower.v == 0.0 and truck.s - follower.s - (truck.length_m + follower.length_m) / 2 > 30


# -- scenario files ---------------------------------------------------------------------------------
def _scenario(tmp_path: Path, base: Path, old: str, new: str) -> Path:
    text = base.read_text()
    assert old in text, old
    path = tmp_path / f"{base.stem}-variant.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def _problems(tmp_path: Path, base: Path, old: str, new: str) -> dict[str, str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(_scenario(tmp_path, base, old, new))
    assert str(tmp_path) in str(info.value)
    return dict(info.value.problems)


def test_flag_event_fields_are_checked_with_their_paths(tmp_path: Path) -> None:
    hazards = "- {at_s: 0.0, action: hazard_lights}"
    where = "actors[0].events[0]"
    rate = _problems(tmp_path, AVW, hazards, "- {at_s: 0.0, action: hazard_lights, rate_mps2: 2}")[where]
    assert "BSM event flag" in rate and "'active'" in rate
    brake = "- {at_s: 0.0, action: brake, rate_mps2: 2.0, until_speed_mps: 0}"
    assert "flag actions" in _problems(tmp_path, AVW, brake, brake[:-1] + ", active: true}")["actors[0].events[1]"]
    typo = _problems(tmp_path, AVW, hazards, "- {at_s: 0.0, action: hazard_light}")[f"{where}.action"]
    assert "'hazard_lights'" in typo and "'hazard_light'" in typo
    assert "active: true" in _problems(tmp_path, AVW, hazards, hazards[:-1] + ", active: false, for_s: 2}")[where]
    assert "greater than 0" in _problems(tmp_path, AVW, hazards, hazards[:-1] + ", for_s: 0}")[f"{where}.for_s"]
    assert "true or false" in _problems(tmp_path, AVW, hazards, hazards[:-1] + ", active: maybe}")[f"{where}.active"]
    no_obu = _problems(tmp_path, AVW, "    speed_mps: 8.0\n", "    speed_mps: 8.0\n    equipped: false\n")
    assert "unequipped" in no_obu[f"{where}.action"] and "actors[0].events[2].action" in no_obu
    walker = _problems(tmp_path, AVW, "- id: stalled\n    kind: car", "- id: stalled\n    kind: pedestrian")
    assert "not a pedestrian" in walker[f"{where}.action"]
    rsu = "  - id: rsu1\n    kind: rsu\n    position: [0, 0]\n    apps: [avw]\nexpectations:"
    apps = _problems(tmp_path, AVW, "expectations:", rsu)["actors[4].apps"]
    assert "road user" in apps


def test_a_malformed_event_file_exits_2_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _scenario(tmp_path, CLW, "action: abs, for_s: 3.0", "action: abs, for_s: long")
    out = tmp_path / "out"
    assert main(["run", "clw", str(bad), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: actors[0] (skidder).events[1].for_s:" in err and "'long'" in err
    assert not out.exists(), "nothing may run when any scenario file is invalid"


# -- end to end -------------------------------------------------------------------------------------
@pytest.mark.broker
@pytest.mark.parametrize(
    ("path", "target", "other", "app", "conflict", "crash"),
    [
        (EBW, "follower", "lead", "ebw", "hard braking", ["follower", "truck"]),
        (AVW, "car_a", "stalled", "avw", "disabled vehicle, hazard lights", ["car_a", "stalled"]),
        (CLW, "car_b", "skidder", "clw", "ABS activated, stability control activated", ["car_b", "skidder"]),
    ],
)
async def test_event_warning_runs(
    path: Path, target: str, other: str, app: str, conflict: str, crash: list[str]
) -> None:
    """(Passing on the embedded broker with the same seed as the other scenarios: tests/test_e2e.py.)"""
    from v2x.run.runner import run_scenario

    result = await run_scenario(load_scenario(path), seed=3, broker="embedded")
    assert result["passed"], [e for e in result["expectations"] if not e["passed"]]
    warnings = [e for e in result["events"] if e["type"] == "warning"]
    first = warnings[0]
    assert (first["target"], first["other"], first["app"], first["conflict"]) == (target, other, app, conflict)
    assert "gap_m" in first and all(e["app"] != "fcw" for e in warnings)
    assert set(result["metrics"]["v2x"]["latency_ms_by_message"]) == {"bsm"}
    collisions = [(e["variant"], e["actors"]) for e in result["events"] if e["type"] == "collision"]
    assert collisions and collisions[0] == ("baseline", crash) and all(v == "baseline" for v, _ in collisions)
