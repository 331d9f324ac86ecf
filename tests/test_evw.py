"""EVW, emergency vehicle warning, without a broker: the BSM emergency extension on the wire (lights / siren
in use, round trip, out-of-range values rejected), the ambulance's scripted lights and siren in its BSM, the
app's hand-computed relevance cases (behind / ahead, same / opposite direction, lights off, beyond range and
time to reach, lanes), the loader's checks of the new flag actions and exit 2; the shipped scenario end to
end at the end (also in tests/test_e2e.py)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests._agents import tick_ctx
from v2x.agents.vehicle import VehicleAgent
from v2x.apps.host import Host
from v2x.apps.thresholds import DEFAULTS
from v2x.apps.vehicle_events import vehicle_event_warnings
from v2x.cli import main
from v2x.geodesy import LocalFrame
from v2x.run.runner import build_agents, environment
from v2x.scenario import ScenarioError, load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.wire import frame_pb2, testbed_pb2
from v2x.wire.bsm import OwnState, RemoteState, decode_bsm, encode_bsm
from v2x.wire.envelope import temporary_id

EVW = SCENARIO_DIR / "evw.yaml"
FRAME = LocalFrame(29.5630, 106.5516, 240.0)
EPOCH = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


# -- the emergency extension on the wire ----------------------------------------------------------------
def _own(kind: str = "emergency", flags: frozenset[str] = frozenset()) -> OwnState:
    return OwnState(10.0, 0.0, 25.0, 0.0, 0.0, 5.5, 2.1, 2.4, kind, 0.02, 0.02, False, flags)


def _bsm(own: OwnState) -> frame_pb2.MessageFrame:
    return encode_bsm(own, actor_id="amb", t_s=1.0, msg_count=0, frame=FRAME, epoch=EPOCH)


def _decode(msg: frame_pb2.MessageFrame) -> RemoteState:
    remote = decode_bsm(msg.bsm, now_s=1.0, frame=FRAME, epoch=EPOCH)
    assert remote is not None
    return remote


def test_emergency_extension_round_trip() -> None:
    both = _bsm(_own(flags=frozenset({"emergency_lights", "siren"})))
    ext = both.bsm.emergency_ext
    # ResponseType 1 emergency, SirenInUse 2 inUse, LightbarInUse 2 inUse; class 60 (emergency)
    assert (ext.response_type, ext.siren_use, ext.lights_use, both.bsm.vehicle_class) == (1, 2, 2, 60)
    assert both.bsm.safety_ext.events == 0  # not VehicleEventFlags
    assert _decode(both).emergency_use == {"emergency_lights", "siren"}
    lights = _bsm(_own(flags=frozenset({"emergency_lights"})))
    assert (lights.bsm.emergency_ext.siren_use, lights.bsm.emergency_ext.lights_use) == (1, 2)
    assert _decode(lights).has("emergency_lights") and not _decode(lights).has("siren")
    off = _bsm(_own())
    assert (off.bsm.emergency_ext.response_type, off.bsm.emergency_ext.siren_use) == (2, 1)  # nonEmergency
    assert _decode(off).emergency_use == frozenset()
    car = _bsm(_own("car", frozenset({"emergency_lights"})))
    assert not car.bsm.HasField("emergency_ext")  # only an emergency vehicle sends the extension
    assert _decode(car).emergency_use == frozenset()
    other = _bsm(_own())
    other.bsm.emergency_ext.lights_use = 3  # yellowCautionLights: not the blue lights
    assert _decode(other).emergency_use == frozenset()


def test_out_of_range_emergency_values_reject_the_bsm() -> None:
    for field, value in (("response_type", 7), ("siren_use", 4), ("lights_use", 8)):
        bad = _bsm(_own())
        setattr(bad.bsm.emergency_ext, field, value)
        with pytest.raises(ValueError):
            decode_bsm(bad.bsm, now_s=1.0, frame=FRAME, epoch=EPOCH)


# -- the app: hand-computed cases -------------------------------------------------------------------
# The host: a 5 m car at the origin heading east at 15 m/s; its rear bumper at x = -2.5.
def _host(v: float = 15.0, sigma: float = 0.02) -> Host:
    return Host(0.0, 0.0, 0.0, v, 0.0, 5.0, sigma)


def _ev(
    x: float, y: float = 0.0, *use: str, heading_deg: float = 0.0, v: float = 25.0, sigma: float | None = 0.02
) -> RemoteState:
    """A 5 m emergency vehicle at (x, y) with ``use`` (emergency_lights, siren) in use."""
    return RemoteState(
        temporary_id("amb"), 0.0, x, y, v, math.radians(heading_deg), 0.0, 5.0, 2.1, sigma, 60, 0,
        emergency_use=frozenset(use),
    )  # fmt: skip


def _warn(remote: RemoteState, host: Host | None = None) -> list[tuple[str, float, float, str]]:
    found = vehicle_event_warnings(host or _host(), [remote], 0.0, DEFAULTS, ("evw",))
    return [(w.app, round(w.gap_m, 6), round(w.time_to_reach_s, 6), w.description) for w in found]


def test_warns_about_an_emergency_vehicle_behind_in_the_same_direction() -> None:
    # centre 100 m behind: gap front bumper (-97.5) to the host's rear bumper (-2.5) = 95 m; 95 / 25 = 3.8 s
    assert _warn(_ev(-100.0, 0.0, "emergency_lights", "siren")) == [("evw", 95.0, 3.8, "emergency lights, siren")]
    assert _warn(_ev(-100.0, 0.0, "siren")) == [("evw", 95.0, 3.8, "siren")]  # the siren alone
    # in the next lane (an acceleration lane, the overtaking lane) too: 5.25 m
    assert _warn(_ev(-100.0, -3.5, "emergency_lights")) != []
    assert _warn(_ev(-100.0, 5.3, "emergency_lights")) == []  # two lanes over


def test_silent_for_lights_off_ahead_beside_or_oncoming() -> None:
    assert _warn(_ev(-100.0)) == []  # lights and siren off
    assert _warn(_ev(100.0, 0.0, "emergency_lights")) == []  # ahead: it drives away / the host follows it
    assert _warn(_ev(4.0, 3.5, "emergency_lights")) == []  # beside, bumpers overlap: gap -1 m
    assert _warn(_ev(-100.0, 3.5, "emergency_lights", heading_deg=180.0)) == []  # oncoming, already passed
    assert _warn(_ev(100.0, 3.5, "emergency_lights", heading_deg=180.0)) == []  # oncoming, coming towards
    assert _warn(_ev(-100.0, 0.0, "emergency_lights", heading_deg=44.0)) != []
    assert _warn(_ev(-100.0, 0.0, "emergency_lights", heading_deg=46.0)) == []


def test_range_time_to_reach_and_a_standing_emergency_vehicle() -> None:
    # time to reach: 8 s at its speed. 25 m/s: 200 m gap -> 8.0 s warns, 200.1 m does not
    assert _warn(_ev(-205.0, 0.0, "emergency_lights")) == [("evw", 200.0, 8.0, "emergency lights")]
    assert _warn(_ev(-205.1, 0.0, "emergency_lights")) == []
    # 300 m range: at 40 m/s, 300 m is 7.5 s (warns), 300.1 m is beyond range
    assert _warn(_ev(-305.0, 0.0, "emergency_lights", v=40.0)) == [("evw", 300.0, 7.5, "emergency lights")]
    assert _warn(_ev(-305.1, 0.0, "emergency_lights", v=40.0)) == []
    assert _warn(_ev(-50.0, 0.0, "emergency_lights", v=0.0)) == []  # standing: not coming
    # the host's own speed does not count: a host standing (yielding) is still warned
    assert _warn(_ev(-100.0, 0.0, "siren"), _host(v=0.0)) == [("evw", 95.0, 3.8, "siren")]


def test_accuracy_5_m_and_only_for_evw() -> None:
    # 5 m (95 %): sigma 2.04 m -> 4.998 m passes, 2.05 m -> 5.02 m does not
    assert _warn(_ev(-100.0, 0.0, "siren", sigma=2.04)) != []
    assert _warn(_ev(-100.0, 0.0, "siren", sigma=2.05)) == []
    assert _warn(_ev(-100.0, 0.0, "siren"), _host(sigma=2.05)) == []
    found = vehicle_event_warnings(_host(), [_ev(-100.0, 0.0, "siren")], 0.0, DEFAULTS, ("ebw", "avw", "clw"))
    assert found == []  # lights and siren are not the other apps' flags


# -- the vehicle and the scenario file --------------------------------------------------------------
def test_the_ambulance_sends_its_lights_and_siren_in_the_bsm(tmp_path: Path) -> None:
    path = _scenario(tmp_path, "- {at_s: 0.0, action: siren}", "- {at_s: 0.0, action: siren, for_s: 1.0}")
    sc = load_scenario(path)
    [amb] = [a for a in build_agents(sc, environment(sc)) if isinstance(a, VehicleAgent) and a.actor_id == "ambulance"]
    sent = []
    for tick in range(15):
        [pc5] = [tx for tx in amb.step(tick_ctx(tick)).transmissions if tx.link == testbed_pb2.LINK_PC5]
        ext = pc5.frame.bsm.emergency_ext
        sent.append((ext.lights_use, ext.siren_use))
    assert set(sent[:10]) == {(2, 2)} and set(sent[10:]) == {(2, 1)}  # the siren off after 1 s


def _scenario(tmp_path: Path, old: str, new: str) -> Path:
    text = EVW.read_text()
    assert old in text, old
    path = tmp_path / "evw-variant.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def _problems(tmp_path: Path, old: str, new: str) -> dict[str, str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(_scenario(tmp_path, old, new))
    return dict(info.value.problems)


def test_flag_action_checks_with_field_paths(tmp_path: Path) -> None:
    lights = "- {at_s: 0.0, action: emergency_lights}"
    where = "actors[0].events[0]"
    rate = _problems(tmp_path, lights, "- {at_s: 0.0, action: emergency_lights, rate_mps2: 2}")[where]
    assert "BSM event flag" in rate
    typo = _problems(tmp_path, lights, "- {at_s: 0.0, action: emergency_light}")[f"{where}.action"]
    assert "'emergency_lights'" in typo
    car = _problems(tmp_path, "- id: ambulance\n    kind: emergency", "- id: ambulance\n    kind: car")
    assert "kind: emergency" in car[f"{where}.action"] and "actors[0].events[1].action" in car


def test_a_malformed_flag_action_exits_2_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _scenario(tmp_path, "- {at_s: 0.0, action: siren}", "- {at_s: 0.0, action: siren, active: loud}")
    out = tmp_path / "out"
    assert main(["run", "evw", str(bad), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: actors[0] (ambulance).events[1].active:" in err and "'loud'" in err
    assert not out.exists(), "nothing may run when any scenario file is invalid"


# -- end to end -------------------------------------------------------------------------------------
@pytest.mark.broker
async def test_evw_runs() -> None:
    """(Passing on the embedded broker with seed 0 as the other scenarios: tests/test_e2e.py.)"""
    from v2x.run.runner import run_scenario

    result = await run_scenario(load_scenario(EVW), seed=3, broker="embedded")
    assert result["passed"], [e for e in result["expectations"] if not e["passed"]]
    warnings = [e for e in result["events"] if e["type"] == "warning"]
    assert {(e["target"], e["other"], e["app"]) for e in warnings} == {("car_a", "ambulance", "evw")}
    assert warnings[0]["conflict"] == "emergency lights, siren" and "gap_m" in warnings[0]
    stops = [(e["variant"], e["actor"], e["x_m"]) for e in result["events"] if e["type"] == "stop"]
    # car A yields before the merge; without V2X the collision brings both to rest where they touched
    assert [(v, a) for v, a, _ in stops] == [("v2x", "car_a"), ("baseline", "ambulance"), ("baseline", "car_a")]
    assert stops[0][2] < 500 and stops[2][2] > 560  # before the merge; hit after it
    collisions = [(e["variant"], e["actors"]) for e in result["events"] if e["type"] == "collision"]
    assert collisions == [("baseline", ["ambulance", "car_a"])]
