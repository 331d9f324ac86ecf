"""Who may send what (docs/PROTOCOL.md "Who may send what"): one table, ``v2x.wire.protocol.may_send``, which the
world checks for every envelope (``not_permitted``), the built-in receivers and the SDK check again, and a signed
run's certificates carry as their permissions.

Attack review 10: without ``--secure`` nothing checked it, so an outside car on an open broker sent one
``Advisory`` with a NaN that a built-in car echoed in its Ack (the world refused that Ack on every re-send: a
lockstep run stalled 60 s, exit 3, the victim blamed), one with plausible numbers that warned a built-in car and
braked it (a speed cap kept for the rest of the run), and the RSU's SPAT with a phase turned red, which made a
built-in car warn and stop on its green."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._agents import offline_sim, tick_ctx
from tests._mosquitto import Mosquitto
from tests.test_sdk import fcw_with_external
from v2x.agents.base import Heard
from v2x.agents.vehicle import VehicleAgent
from v2x.run.results import outcome
from v2x.run.runner import build_agents, environment, run_scenario
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.sdk import Stack, VehicleState
from v2x.sdk.types import RunInfo
from v2x.wire import frame_pb2, testbed_pb2
from v2x.wire.advisory import advisory
from v2x.wire.day2 import encode_ssm
from v2x.wire.map_spat import RED, Interval, SignalState, decode_spat, encode_spat
from v2x.wire.protocol import MAY_SEND, ROAD_USER_SENDS, may_send, relay_problem
from v2x.wire.rsm import PerceivedObject
from v2x.wire.security import permissions_for

FRAME_KINDS = tuple(f.name for f in frame_pb2.MessageFrame.DESCRIPTOR.oneofs_by_name["msg"].fields)


def test_one_table_for_every_kind_and_the_certificates() -> None:
    """Every message kind someone may send; an advisory only from the platform, what a traffic light or the road
    says only from an RSU; a signed run's certificate permissions are that table (one place, not a copy)."""
    assert {k for kinds in (*MAY_SEND.values(), ROAD_USER_SENDS) for k in kinds} == set(FRAME_KINDS)
    for kind in ("car", "truck", "bus", "emergency", "pedestrian", "cyclist", "rsu", "platform"):
        assert permissions_for(kind) == may_send(kind)
    assert [k for k in ("car", "pedestrian", "rsu", "platform") if "advisory" in may_send(k)] == ["platform"]
    for msg in ("map", "spat", "rsi", "rsm"):
        assert [k for k in ("car", "pedestrian", "rsu", "platform") if msg in may_send(k)] == ["rsu"], msg
    # an SSM: an RSU's, and an OBU's or a VRU device's (docs/PROTOCOL.md "Day-2 messages", T/CSAE 157 sensor
    # sharing; a road user's SSM was refused, against that table: attack review 11)
    assert [k for k in ("car", "pedestrian", "rsu", "platform") if "ssm" in may_send(k)] == ["car", "pedestrian", "rsu"]


def _env(
    sender: str,
    frame: frame_pb2.MessageFrame,
    link: testbed_pb2.LinkKind.ValueType = testbed_pb2.LINK_PC5,
    dest: tuple[str, ...] = (),
) -> bytes:
    return testbed_pb2.Envelope(
        sender_id=sender, seq=1, tick=0, tx_time_us=0, link=link, dest_ids=dest, frame=frame.SerializeToString()
    ).SerializeToString()


def test_an_rsus_bsm_goes_only_over_the_backhaul_to_the_platform() -> None:
    """Attack review 11: an outside RSU sent BSMs over PC5 (its own id) and over LINK_WIRED to a car (with any id:
    a relay carries the heard sender's), and a built-in car's FCW warned about a phantom. An RSU's "bsm" is a
    relay (``RELAYED``): over LINK_WIRED, to the platform only; anything else is ``not_permitted``. (That way, a BSM
    the world did not deliver to the RSU is ``not_relayed``: attack review 13, tests/test_rsu_claims.py.)"""
    assert relay_problem("rsu", "bsm", True, ["platform"]) == ""
    assert relay_problem("rsu", "spat", False, []) == "" and relay_problem("car", "bsm", False, []) == ""
    expected = "a rsu sends 'bsm' only as a relay over LINK_WIRED to the platform"
    assert relay_problem("rsu", "bsm", False, []) == expected
    assert relay_problem("rsu", "bsm", True, ["platform", "car"]) == expected
    frame = frame_pb2.MessageFrame()
    frame.bsm.SetInParent()
    for link, dest, relay in (  # (relay: the way a relay goes)
        (testbed_pb2.LINK_PC5, (), False),
        (testbed_pb2.LINK_WIRED, ("neighbour",), False),
        (testbed_pb2.LINK_WIRED, ("cloud", "neighbour"), False),
        (testbed_pb2.LINK_WIRED, ("cloud",), True),
    ):
        sim = offline_sim(load_scenario(SCENARIO_DIR / "fcw.yaml"))
        sim.begin(0)
        sim.receive("tx", "rsu1", _env("rsu1", frame, link, dest))
        assert dict(sim.inbound.stats.rejected) == ({"not_relayed": 1} if relay else {"not_permitted": 1}), (
            link,
            dest,
        )
        assert not sim.inbound.received


def _forged_advisory(target: str, *, ttc_s: float = 1.2) -> frame_pb2.MessageFrame:
    adv = advisory(
        testbed_pb2.APP_FCW, target_id=target, other_id="lead", source_id="cloud", t_s=0.0, valid_s=3.0, ttc_s=ttc_s
    )
    return frame_pb2.MessageFrame(advisory=adv)


@pytest.mark.parametrize("msg", [m for m in FRAME_KINDS if m not in ROAD_USER_SENDS])
def test_the_world_refuses_a_cars_message_only_an_rsu_or_the_platform_sends(msg: str) -> None:
    sim = offline_sim(load_scenario(SCENARIO_DIR / "fcw.yaml"))
    sim.begin(0)
    frame = frame_pb2.MessageFrame()
    getattr(frame, msg).SetInParent()
    sim.receive("tx", "lead", _env("lead", frame))
    assert dict(sim.inbound.stats.rejected) == {"not_permitted": 1} and not sim.inbound.received
    assert sim.inbound.stats.rejected_by_actor["lead"] == {"not_permitted": 1}


def test_the_world_refuses_an_rsus_advisory_and_takes_the_platforms() -> None:
    sim = offline_sim(load_scenario(SCENARIO_DIR / "fcw.yaml"))
    sim.begin(0)
    sim.receive("tx", "rsu1", _env("rsu1", _forged_advisory("neighbour")))
    uu = testbed_pb2.LINK_UU
    sim.receive("tx", "cloud", _env("cloud", _forged_advisory("neighbour"), uu, ("neighbour",)))
    assert dict(sim.inbound.stats.rejected) == {"not_permitted": 1} and len(sim.inbound.received) == 1


# -- the built-in vehicle -----------------------------------------------------------------------------------------
def _neighbour() -> VehicleAgent:
    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    return next(
        a for a in build_agents(sc, environment(sc)) if a.actor_id == "neighbour" and isinstance(a, VehicleAgent)
    )


@pytest.mark.parametrize(
    ("sender", "link", "ttc_s", "reason"),
    [
        ("lead", testbed_pb2.LINK_PC5, 1.2, "not_permitted"),  # a car's (attack review 10 #2)
        ("lead", testbed_pb2.LINK_UU, 1.2, "not_permitted"),
        ("rsu1", testbed_pb2.LINK_PC5, 1.2, "not_permitted"),
        ("cloud", testbed_pb2.LINK_PC5, 1.2, "not_permitted"),  # the platform's, but not over Uu (was out_of_range)
        ("cloud", testbed_pb2.LINK_WIRED, 1.2, "not_permitted"),
        ("cloud", testbed_pb2.LINK_UU, math.nan, "out_of_range"),  # one the world would refuse in the Ack (#1)
        ("cloud", testbed_pb2.LINK_UU, 2e9, "out_of_range"),
        ("cloud", testbed_pb2.LINK_UU, 1.2, ""),  # the platform's, over Uu: taken and echoed
    ],
)
def test_a_vehicle_takes_an_advisory_only_from_the_platform_over_uu_and_only_one_the_world_takes(
    sender: str, link: int, ttc_s: float, reason: str
) -> None:
    car = _neighbour()
    heard = (Heard(sender, link, 0.05, 0.0, _forged_advisory("neighbour", ttc_s=ttc_s)),)
    events = car.step(tick_ctx(0)).events + car.step(tick_ctx(1, heard)).events
    if reason:
        assert events == [] and dict(car.rejected) == {reason: 1}
        assert car.driver is None or car.driver.brake_at_s is None
    else:
        assert [(e.app, e.raised_at_s, e.ttc_s) for e in events] == [(testbed_pb2.APP_FCW, 0.05, 1.2)]
        assert not car.rejected


def test_a_vehicle_takes_a_spat_or_map_only_from_an_rsu() -> None:
    sc = load_scenario(SCENARIO_DIR / "rlvw.yaml")
    env = environment(sc)
    agents = build_agents(sc, env)
    rsu = next(a for a in agents if a.actor_id == "rsu_x1")
    car = next(a for a in agents if a.actor_id == "car_b" and isinstance(a, VehicleAgent))
    out = [tx.frame for tx in rsu.step(tick_ctx(0)).transmissions if tx.frame.WhichOneof("msg") in ("map", "spat")]
    assert {f.WhichOneof("msg") for f in out} == {"map", "spat"}
    car.step(tick_ctx(0, tuple(Heard("car_a", testbed_pb2.LINK_PC5, 0.0, 0.0, f) for f in out)))
    assert dict(car.rejected) == {"not_permitted": 2} and not car.signals and not car.approaches
    car.step(tick_ctx(1, tuple(Heard("rsu_x1", testbed_pb2.LINK_PC5, 0.1, 0.1, f) for f in out)))
    assert dict(car.rejected) == {"not_permitted": 2} and car.signals and car.approaches


def test_a_road_users_ssm_is_taken_by_the_world_and_a_built_in_vehicle() -> None:
    """docs/PROTOCOL.md's Day-2 table: an OBU or a VRU device may send an SSM (T/CSAE 157 sensor sharing). The
    world refused a car's as ``not_permitted`` (attack review 11). Now the world takes it, and a built-in vehicle
    keeps its participant as it keeps an RSU's."""
    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    env = environment(sc)
    seen = PerceivedObject(7, "pedestrian", "camera", 0.0, 150.0, 6.0, 1.0, 0.0, 0.5, 0.5, 0.3)
    ssm = encode_ssm(
        [seen],
        actor_id="lead",
        equipment="obu",
        sensor_x=140.0,
        sensor_y=0.0,
        t_s=0.0,
        frame=env.frame,
        epoch=env.epoch,
        msg_count=0,
    )
    sim = offline_sim(sc)
    sim.begin(0)
    sim.receive("tx", "lead", _env("lead", ssm))
    assert not sim.inbound.stats.rejected and len(sim.inbound.received) == 1
    car = _neighbour()
    car.step(tick_ctx(0, (Heard("lead", testbed_pb2.LINK_PC5, 0.0, 0.0, ssm),)))
    assert not car.rejected and [p.key.split("/")[1] for p in car.shared.values()] == ["7"]


# -- the SDK ------------------------------------------------------------------------------------------------------
def test_the_sdk_hands_over_an_advisory_only_from_the_platform_over_uu_and_only_one_the_world_takes(
    tmp_path: Path,
) -> None:
    sc = load_scenario(fcw_with_external(tmp_path, "neighbour"))
    start = offline_sim(sc).control(testbed_pb2.Control.COMMAND_START)
    stack = Stack("mqtt://127.0.0.1:1", run_id="t", actor_id="neighbour")
    run: RunInfo = stack._run_info(testbed_pb2.Control.FromString(start))
    uu = testbed_pb2.LINK_UU

    def heard(sender: str, link: testbed_pb2.LinkKind.ValueType, ttc_s: float = 1.2) -> bool:
        raw = _env(sender, _forged_advisory("neighbour", ttc_s=ttc_s), link, ("neighbour",) if link == uu else ())
        return stack._decode(run, raw, 0.05, 0.1) is not None

    assert (
        not heard("lead", testbed_pb2.LINK_PC5) and not heard("lead", uu) and not heard("cloud", testbed_pb2.LINK_PC5)
    )
    assert dict(stack.rejected) == {"not_permitted": 3}
    assert not heard("cloud", uu, math.nan) and dict(stack.rejected) == {"not_permitted": 3, "out_of_range": 1}
    assert heard("cloud", uu)


# -- an outside stack on a real broker ----------------------------------------------------------------------------
async def _evil_lead(broker: str, run_id: str, *, attack: bool) -> None:
    """fcw's lead driven from outside, honestly (it brakes at 6 s at 6 m/s^2), that at 3 s also sends what only the
    platform may: an advisory with a NaN to the neighbour over PC5 (#1), a plausible one over Uu (#2) and a speed
    cap to the follower (#2, SLW)."""
    async with Stack(broker, run_id=run_id, actor_id="lead", kind="car", software="forger") as stack:
        run = await stack.start(timeout_s=60)
        state = VehicleState.at_start(run.me)
        async for tick in stack.ticks(tick_timeout_s=60):
            if tick.n > 0:
                state = state.advanced(tick.dt_s, -6.0 if tick.t_s - tick.dt_s >= 6.0 - 1e-9 else 0.0)
            await stack.send_bsm(tick, state)
            if attack and abs(tick.t_s - 3.0) < 1e-6:
                nan = advisory(testbed_pb2.APP_FCW, target_id="neighbour", other_id="lead", source_id="cloud",
                               t_s=tick.t_s, valid_s=3.0, ttc_s=math.nan)  # fmt: skip
                await stack.send(tick, frame_pb2.MessageFrame(advisory=nan))
                fcw = advisory(testbed_pb2.APP_FCW, target_id="neighbour", other_id="lead", source_id="cloud",
                               t_s=tick.t_s, valid_s=3.0, ttc_s=1.2, trigger_sent_at_s=0.0)  # fmt: skip
                uu = testbed_pb2.LINK_UU
                await stack.send(tick, frame_pb2.MessageFrame(advisory=fcw), link=uu, dest_ids=["neighbour"])
                cap = advisory(testbed_pb2.APP_SLW, target_id="follower", other_id="lead", source_id="cloud",
                               t_s=tick.t_s, valid_s=3.0, figure=-1e9)  # fmt: skip
                await stack.send(tick, frame_pb2.MessageFrame(advisory=cap))
            await stack.ack(tick, state)


async def _run_with(scenario: Path, mosquitto: Mosquitto, run_id: str, stack: Any) -> dict[str, Any]:
    """The v2x variant of ``scenario`` on the real broker, with ``stack(url, run_id)`` driving its outside actor."""
    sc = load_scenario(scenario)
    url = mosquitto.address.url
    run = run_scenario(sc, seed=0, broker=url, variants=["v2x"], run_id=run_id, join_timeout_s=60.0)
    result: dict[str, Any]
    result, _ = await asyncio.wait_for(asyncio.gather(run, stack(url, f"{run_id}-v2x")), 120.0)
    return result


async def test_a_cars_advisory_is_refused_and_changes_nothing(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """Attack review 10 #1-#3 on a real Mosquitto: the forged advisories are refused (``not_permitted``, charged
    to the forger), the run neither stalls nor changes its verdict, and no one is warned by them."""
    scenario = fcw_with_external(tmp_path, "lead")
    tag = tmp_path.name[-12:].replace("_", "-")
    clean = await _run_with(scenario, mosquitto, f"advc-{tag}", lambda u, r: _evil_lead(u, r, attack=False))
    forged = await _run_with(scenario, mosquitto, f"adva-{tag}", lambda u, r: _evil_lead(u, r, attack=True))
    assert clean["passed"] and clean["metrics"]["v2x"]["rejected"] == {}
    assert forged["metrics"]["v2x"]["rejected"] == {"not_permitted": 3}
    assert outcome(forged) == outcome(clean)
    assert not [e for e in forged["events"] if e.get("target") == "neighbour" or e.get("app") == "slw"]


async def _spat_forger(broker: str, run_id: str, *, attack: bool) -> None:
    """A parked outside car that from 5 s to 11 s re-broadcasts the RSU's latest SPAT with phase 2 (car_b's)
    red for 30 s (attack review 10 #2b)."""
    async with Stack(broker, run_id=run_id, actor_id="car_x", kind="car", software="forger") as stack:
        run = await stack.start(timeout_s=60)
        state = VehicleState.at_start(run.me)
        last = None
        async for tick in stack.ticks(tick_timeout_s=60):
            await stack.send_bsm(tick, state)
            last = next((h.frame.spat for h in tick.heard if h.kind == "spat"), last)
            if attack and last is not None and 5.0 - 1e-9 <= tick.t_s <= 11.0 + 1e-9:
                states = decode_spat(last, now_s=tick.t_s, epoch=run.epoch)
                red = [Interval(RED, tick.t_s - 1.0, tick.t_s + 30.0)]
                forged = [SignalState(s.node_id, s.name, {**s.phases, 2: red}) for s in states]
                await stack.send(tick, encode_spat(forged, t_s=tick.t_s, epoch=run.epoch, msg_count=0, name=last.name))
            await stack.ack(tick, state)


async def test_a_cars_spat_is_refused_and_changes_nothing(mosquitto: Mosquitto, tmp_path: Path) -> None:
    doc = yaml.safe_load((SCENARIO_DIR / "rlvw.yaml").read_text(encoding="utf-8"))
    doc["actors"].append(
        {"id": "car_x", "external": True, "kind": "car", "lane": "wb", "start_m": 200, "speed_mps": 0.0}
    )
    scenario = tmp_path / "rlvw-x.yaml"
    scenario.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    tag = tmp_path.name[-12:].replace("_", "-")
    clean = await _run_with(scenario, mosquitto, f"spc-{tag}", lambda u, r: _spat_forger(u, r, attack=False))
    forged = await _run_with(scenario, mosquitto, f"spa-{tag}", lambda u, r: _spat_forger(u, r, attack=True))
    assert clean["passed"] and clean["metrics"]["v2x"]["rejected"] == {}
    assert forged["metrics"]["v2x"]["rejected"] == {"not_permitted": 61}  # 5.0 .. 11.0 s, one a tick
    # The forger's own stack fails "envelopes accepted" (its envelopes refused in 61 ticks: since session 25);
    # everything else is as in the clean run.
    [own] = [e for e in forged["expectations"] if e["name"] == "envelopes accepted"]
    assert (
        not own["passed"]
        and own["detail"].startswith("car_x: 61 of ")
        and "(refused: 61 not_permitted)" in own["detail"]
    )
    others = [e for e in forged["expectations"] if e is not own]
    assert {**outcome(forged), "passed": True, "expectations": others} == outcome(clean)
