"""What an RSU may say on another's behalf (attack review 13): a BSM it relays to the platform must be one the world
delivered to it (``not_relayed``), and a MAP or SPAT of its may name only the intersections it serves
(``not_permitted``). docs/PROTOCOL.md "Who may send what".

Before: an outside RSU's made-up "relay" of icw's car_a parked 150 m away made the edge judge car_a a liar (its
real BSMs then looked like a jump), the edge dropped it and car_a and car_b collided at 19.6 m/s, nothing refused;
an outside RSU's SPAT for rlvw's x1, which another RSU runs, gave car_b on its green an RLVW, and it stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._agents import offline_sim
from v2x.run.runner import environment, run_scenario
from v2x.scenario import Scenario, load_scenario
from v2x.scenario.loader import SCENARIO_DIR, ScenarioError
from v2x.scenario.signals import announced_nodes, signal_controllers
from v2x.sim.simulation import Simulation
from v2x.wire import day1_pb2, frame_pb2, testbed_pb2
from v2x.wire.envelope import temporary_id
from v2x.wire.map_spat import Interval, MapNode, SignalState, encode_map, encode_spat

TICK_US = 100_000
RLVW = load_scenario(SCENARIO_DIR / "rlvw.yaml")


def _changed(tmp_path: Path, name: str, change: Any) -> Scenario:
    """The shipped ``name`` with ``change(doc)`` applied to its YAML document, loaded (checked) from ``tmp_path``."""
    doc = yaml.safe_load((SCENARIO_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    change(doc)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return load_scenario(path)


def _env(
    sender: str, seq: int, tick: int, frame: bytes, link: Any = testbed_pb2.LINK_PC5, dest: tuple[str, ...] = ()
) -> bytes:
    return testbed_pb2.Envelope(
        sender_id=sender, seq=seq, tick=tick, tx_time_us=tick * TICK_US, link=link, dest_ids=dest, frame=frame
    ).SerializeToString()


def _relay(rsu: str, seq: int, tick: int, frame: bytes) -> bytes:
    return _env(rsu, seq, tick, frame, testbed_pb2.LINK_WIRED, ("cloud",))


def _bsm(actor: str, **fields: Any) -> bytes:
    return frame_pb2.MessageFrame(bsm=day1_pb2.BSM(id=temporary_id(actor), **fields)).SerializeToString()


def _ack_all(sim: Simulation, tick: int, tx: dict[str, int]) -> None:
    for actor in sim.actor_ids:
        ack = testbed_pb2.Ack(actor_id=actor, tick=tick, tx_count=tx.get(actor, 0))
        sim.receive("ack", actor, ack.SerializeToString())


def _heard_frames(inputs: dict[str, bytes], actor: str) -> list[bytes]:
    """The frames of the envelopes ``actor``'s TickInput delivers."""
    got = testbed_pb2.TickInput.FromString(inputs[actor])
    return [testbed_pb2.Envelope.FromString(raw).frame for raw in got.envelopes]


# -- relays ---------------------------------------------------------------------------------------------------------
def test_a_relay_must_be_a_bsm_the_world_delivered_to_the_rsu_this_tick_or_the_one_before() -> None:
    """fcw: the lead's BSM of tick 0 reaches rsu1 at tick 1; rsu1 relays it to the platform at tick 1 and (late) at
    tick 2: accepted; the same at tick 3, a made-up BSM under the lead's id (a position of its own), and one under
    rsu1's own id (an RSU never hears itself): ``not_relayed``, counted against rsu1."""
    sim = offline_sim(load_scenario(SCENARIO_DIR / "fcw.yaml"))
    sim.begin(0)
    lead_bsm = _bsm("lead", msg_cnt=1, sec_mark=0)
    sim.receive("tx", "lead", _env("lead", 1, 0, lead_bsm))
    _ack_all(sim, 0, {"lead": 1})
    sim.step()
    inputs = sim.begin(1)
    assert lead_bsm in _heard_frames(inputs, "rsu1")
    sim.receive("tx", "rsu1", _relay("rsu1", 1, 1, lead_bsm))  # a genuine relay
    made_up = _bsm("lead", msg_cnt=1, sec_mark=0, speed=5)
    sim.receive("tx", "rsu1", _relay("rsu1", 2, 1, made_up))
    sim.receive("tx", "rsu1", _relay("rsu1", 3, 1, _bsm("rsu1")))
    assert dict(sim.inbound.stats.rejected) == {"not_relayed": 2}
    assert sim.inbound.stats.rejected_by_actor["rsu1"] == {"not_relayed": 2}
    relayed = [t for t in sim.inbound.received.values() if t.link == testbed_pb2.LINK_WIRED]
    assert [testbed_pb2.Envelope.FromString(t.raw).frame for t in relayed] == [lead_bsm]
    _ack_all(sim, 1, {"rsu1": 3})
    sim.step()
    sim.begin(2)
    sim.receive("tx", "rsu1", _relay("rsu1", 4, 2, lead_bsm))  # heard the tick before: still a relay
    assert dict(sim.inbound.stats.rejected) == {"not_relayed": 2}
    _ack_all(sim, 2, {"rsu1": 1})
    sim.step()
    sim.begin(3)
    sim.receive("tx", "rsu1", _relay("rsu1", 5, 3, lead_bsm))  # two ticks on: no longer
    assert dict(sim.inbound.stats.rejected) == {"not_relayed": 3}
    duplicates = sim.inbound.stats.duplicates
    sim.receive("tx", "rsu1", _relay("rsu1", 6, 1, made_up))  # one of tick 1 come late (real time): dropped as old
    assert dict(sim.inbound.stats.rejected) == {"not_relayed": 3} and sim.inbound.stats.duplicates == duplicates + 1


def test_an_outside_senders_frame_is_taken_as_the_rsu_re_encodes_it(tmp_path: Path) -> None:
    """A relay carries the frame as the relaying stack re-encodes it (the built-in RSU parses what it hears and
    serialises it again): an outside car's BSM whose fields come in another order than protobuf writes them is
    still its relay."""
    sim = offline_sim(
        _changed(tmp_path, "fcw", lambda doc: next(a for a in doc["actors"] if a["id"] == "lead").update(external=True))
    )
    sim.begin(0)
    bsm = frame_pb2.MessageFrame(bsm=day1_pb2.BSM(id=temporary_id("lead"), msg_cnt=1, speed=250))
    inner = bsm.bsm.SerializeToString()
    reordered = inner[-3:] + inner[:-3]  # the speed field first
    assert day1_pb2.BSM.FromString(reordered) == bsm.bsm and reordered != inner
    odd = b"\x0a" + bytes([len(reordered)]) + reordered  # MessageFrame.bsm (field 1) with those bytes
    assert frame_pb2.MessageFrame.FromString(odd) == bsm and odd != bsm.SerializeToString()
    sim.receive("tx", "lead", _env("lead", 1, 0, odd))
    _ack_all(sim, 0, {"lead": 1})
    sim.step()
    inputs = sim.begin(1)
    assert odd in _heard_frames(inputs, "rsu1")
    sim.receive("tx", "rsu1", _relay("rsu1", 1, 1, bsm.SerializeToString()))
    sim.receive("tx", "rsu1", _relay("rsu1", 2, 1, odd))
    assert "rsu1" not in sim.inbound.stats.rejected_by_actor and len(sim.inbound.received) == 2


def test_an_rsus_own_messages_over_the_backhaul_carry_its_own_id() -> None:
    """Only what an RSU relays (its BSMs) may carry another station's id over the backhaul; an RSM or SSM it sends
    the platform there is its own (the built-in RSU's are): under another id it is ``id_mismatch`` (before, any
    kind over LINK_WIRED was exempt)."""
    sim = offline_sim(load_scenario(SCENARIO_DIR / "fcw.yaml"))
    sim.begin(0)
    for seq, who in enumerate(("lead", "rsu1"), start=1):
        rsm = frame_pb2.MessageFrame(rsm=day1_pb2.RSM(id=temporary_id(who))).SerializeToString()
        sim.receive("tx", "rsu1", _relay("rsu1", seq, 0, rsm))
    assert dict(sim.inbound.stats.rejected) == {"id_mismatch": 1} and len(sim.inbound.received) == 1


def test_the_built_in_rsus_relays_maps_and_spats_are_all_accepted_in_a_run() -> None:
    """The built-in RSUs relay what they heard and speak for their own intersections: in icw (an RSU and a
    platform: relays every tick, MAP) and rlvw (SPAT, MAP) the world refuses none of their messages."""
    for name, link in (("icw", "wired"), ("rlvw", "pc5")):
        result = asyncio.run(
            run_scenario(load_scenario(SCENARIO_DIR / f"{name}.yaml"), seed=0, broker="loopback", variants=["v2x"])
        )
        metrics = result["metrics"]["v2x"]
        assert metrics["rejected"] == {}, name
        assert metrics["messages"]["sent"][link] > 0, name


# -- MAP and SPAT ----------------------------------------------------------------------------------------------------
def _rlvw_with_side_rsu(tmp_path: Path, intersections: list[str] | None, own: list[str] | None = None) -> Simulation:
    """rlvw with an outside RSU ``rsu_side`` (west of x1) serving ``intersections`` (None: the key left out);
    ``own``: the built-in rsu_x1's ``intersections`` instead of its [x1]."""
    side: dict[str, Any] = {"id": "rsu_side", "kind": "rsu", "position": [-60, 12], "external": True}
    if intersections is not None:
        side["intersections"] = intersections

    def change(doc: dict[str, Any]) -> None:
        doc["actors"].append(side)
        if own is not None:
            next(a for a in doc["actors"] if a["id"] == "rsu_x1")["intersections"] = own

    return offline_sim(_changed(tmp_path, "rlvw", change))


def _spat(node: int) -> bytes:
    """A SPAT for ``node``: phase 1 green, phase 2 red, for a minute (rsu_spat.py of attack review 13)."""
    green = SignalState(node, "x1", {1: [Interval(6, 0.0, 60.0)], 2: [Interval(3, 0.0, 60.0)]})
    env = environment(RLVW)
    return encode_spat([green], t_s=0.0, epoch=env.epoch, msg_count=0, name="x").SerializeToString()


def _map(node: int) -> bytes:
    env = environment(RLVW)
    nodes = [MapNode(node, "x1", 0.0, 0.0, [])]
    return encode_map(nodes, frame=env.frame, t_s=0.0, epoch=env.epoch, msg_count=0).SerializeToString()


@pytest.mark.parametrize("msg", ["spat", "map"])
def test_an_rsu_speaks_only_for_the_intersections_it_serves(tmp_path: Path, msg: str) -> None:
    """rlvw: rsu_x1 serves x1 (node 1); an outside rsu_side serving none (``intersections: []``) may say nothing of
    it: its SPAT (phase 1 green for 60 s, what got car_b an RLVW on its green) or MAP for node 1 is ``not_permitted``,
    counted against it, and nobody hears it; rsu_x1's is taken, but not one for node 2, which it does not serve."""
    encode = _spat if msg == "spat" else _map
    sim = _rlvw_with_side_rsu(tmp_path, [])
    sim.begin(0)
    sim.receive("tx", "rsu_side", _env("rsu_side", 1, 0, encode(1)))
    sim.receive("tx", "rsu_x1", _env("rsu_x1", 1, 0, encode(1)))
    sim.receive("tx", "rsu_x1", _env("rsu_x1", 2, 0, encode(2)))
    assert dict(sim.inbound.stats.rejected) == {"not_permitted": 2}
    assert sim.inbound.stats.rejected_by_actor["rsu_side"] == {"not_permitted": 1}
    assert [k[1] for k in sim.inbound.received] == [1]
    assert sim.inbound.received[(sim.world.slot_of("rsu_x1"), 1)].msg == msg


def test_what_an_rsu_may_announce_is_the_table_its_signal_warps_are_checked_against(tmp_path: Path) -> None:
    """One rule (``served``: an RSU's ``intersections``, default all): MAP for every intersection it serves, SPAT
    for the signalised ones, whose signal plans it may warp (``signal_controllers``); an RSU with no
    ``intersections`` serves them all (so rsu_side without it may speak for x1, as the scenario says it runs it);
    one light, one RSU: a second RSU serving x1 is refused by the loader."""
    sc = load_scenario(SCENARIO_DIR / "icw.yaml")  # x1 unsignalised
    rsu = next(a.id for a in sc.actors if a.kind == "rsu")
    assert announced_nodes(sc)[rsu] == {"map": frozenset({1}), "spat": frozenset()}
    with pytest.raises(ScenarioError, match=r"actors\[3\] \(rsu_side\)\.intersections: serves the signalised"):
        _rlvw_with_side_rsu(tmp_path, None)  # two RSUs for x1's light: the loader refuses it
    sim = _rlvw_with_side_rsu(tmp_path, None, own=[])  # rsu_side runs x1 instead
    nodes = sim.inbound.may_announce
    assert nodes is not None and nodes["rsu_side"] == {"map": frozenset({1}), "spat": frozenset({1})}
    assert signal_controllers(sim.scenario)["rsu_side"] == frozenset({"x1"})
    sim.begin(0)
    sim.receive("tx", "rsu_side", _env("rsu_side", 1, 0, _spat(1)))
    assert not sim.inbound.stats.rejected
