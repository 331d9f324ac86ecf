"""The fleet agent of the equipped background vehicles (issue #10): its bundles as the world checks them,
and its FCW for every hosted vehicle at once (sans-I/O, no broker)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import math
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.sim.test_background import _scenario, _tick
from tests.test_world_inputs import _padded_bsm
from v2x.agents.fleet import FleetAgent
from v2x.core import ActorKind, always_compiled
from v2x.geodesy import LocalFrame
from v2x.net import topics
from v2x.net.fleet import FleetHost
from v2x.run.runner import environment
from v2x.scenario.loader import SCENARIO_DIR, load_scenario
from v2x.sim.background import Background
from v2x.sim.inbound import Inbound
from v2x.sim.simulation import Simulation
from v2x.wire import day1_pb2, frame_pb2, testbed_pb2
from v2x.wire.bsm import OwnState, encode_bsm
from v2x.wire.envelope import temporary_id, varint
from v2x.wire.fleet import (
    VEHICLE_DOUBLES,
    add_vehicles,
    pack_deliveries,
    put_deliveries,
    serialize_with_deliveries,
    unpack_deliveries,
    vehicle_bodies,
    vehicle_head,
)
from v2x.wire.protocol import MAX_FLEET_ACK_BYTES, MAX_INPUT_BYTES, MAX_TX_BYTES, MAX_TX_PER_TICK

FRAME = LocalFrame(29.5, 106.5, 0.0)


def _fleet_agent(sim: Simulation) -> FleetAgent:
    env = environment(sim.scenario)
    return FleetAgent(sim.fleet_ids[0], frame=env.frame, epoch=env.epoch, thresholds=env.thresholds)


def _open_tick_with_members(tmp_path: Path) -> tuple[Simulation, FleetAgent, testbed_pb2.FleetAck]:
    """A V2X run at tick 1 (the fleet hosts vehicles now) and the fleet's honest answer, not yet sent."""
    sim = Simulation(_scenario(tmp_path, prefill=True), variant="v2x", seed=0)
    assert len(sim.fleet_ids) == 1
    agent = _fleet_agent(sim)
    _tick(sim, 0, {sim.fleet_ids[0]: agent})
    sim.begin(1)
    for actor_id in sim.actor_ids:
        sim.receive("ack", actor_id, testbed_pb2.Ack(actor_id=actor_id, tick=1).SerializeToString())
    ack = agent.step(testbed_pb2.FleetInput.FromString(sim.fleet_inputs[sim.fleet_ids[0]]))
    assert len(ack.envelopes) > 3
    return sim, agent, ack


def test_a_baseline_run_and_a_run_without_flows_have_no_fleet(tmp_path: Path) -> None:
    assert Simulation(_scenario(tmp_path), variant="baseline", seed=0).fleet_ids == []
    assert Simulation(load_scenario(SCENARIO_DIR / "fcw.yaml"), variant="v2x", seed=0).fleet_ids == []


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (lambda ack: b"\x08" * (MAX_FLEET_ACK_BYTES + 1), "oversized"),
        (lambda ack: b"\xff\xff\xff", "malformed"),
        (lambda ack: testbed_pb2.Ack(actor_id="fleet-0", tick=1, tx_count=7).SerializeToString(), "malformed"),
        (lambda ack: testbed_pb2.FleetAck(fleet_id="fleet-9", tick=1).SerializeToString(), "sender_mismatch"),
        (lambda ack: testbed_pb2.FleetAck(fleet_id="fleet-0", tick=5).SerializeToString(), "bad_tick"),
        (
            lambda ack: testbed_pb2.FleetAck(
                fleet_id="fleet-0", tick=1, events=[testbed_pb2.Advisory(raised_at_s=math.nan)]
            ).SerializeToString(),
            "out_of_range",
        ),
        (  # as an Ack's: at most 32 reasons of at most 256 characters (3000 went into a result)
            lambda ack: testbed_pb2.FleetAck(
                fleet_id="fleet-0", tick=1, rejected={f"\x1b[31mK{k:06d}": 1 for k in range(3000)}
            ).SerializeToString(),
            "out_of_range",
        ),
        (
            lambda ack: testbed_pb2.FleetAck(fleet_id="fleet-0", tick=1, rejected={"x" * 300: 1}).SerializeToString(),
            "out_of_range",
        ),
    ],
)
def test_a_forged_or_malformed_bundle_is_rejected_and_counted(tmp_path: Path, forge: object, reason: str) -> None:
    sim, _, ack = _open_tick_with_members(tmp_path)
    sim.receive_fleet("fleet-0", forge(ack))  # type: ignore[operator]
    assert sim.inbound.stats.rejected == {reason: 1}
    assert not sim.reported  # the fleet has not reported yet
    sim.receive_fleet("fleet-0", ack.SerializeToString())  # the real one still counts
    assert sim.reported
    sim.step()


def test_a_bundle_from_an_unknown_fleet_is_rejected(tmp_path: Path) -> None:
    sim, _, ack = _open_tick_with_members(tmp_path)
    sim.receive_fleet("fleet-7", ack.SerializeToString())
    assert sim.inbound.stats.rejected == {"unknown_sender": 1}


def test_an_envelope_or_warning_of_a_vehicle_outside_the_fleet_is_rejected_the_rest_stands(tmp_path: Path) -> None:
    sim, _, ack = _open_tick_with_members(tmp_path)
    honest = len(ack.envelopes)
    for sender in ("lead", "bg-0-99999"):  # a story vehicle, a vehicle that is not on the road
        env = testbed_pb2.Envelope.FromString(ack.envelopes[0])
        env.sender_id = sender
        env.seq = 1000
        ack.envelopes.append(env.SerializeToString())
    ack.events.append(testbed_pb2.Advisory(app=testbed_pb2.APP_FCW, target_id="lead", other_id="x", raised_at_s=0.1))
    dup = testbed_pb2.Envelope.FromString(ack.envelopes[0])
    dup.link = testbed_pb2.LINK_UU
    dup.seq += 500
    ack.envelopes.append(dup.SerializeToString())
    sim.receive_fleet("fleet-0", ack.SerializeToString())
    assert sim.inbound.stats.rejected == {"not_in_fleet": 3, "bad_link": 1}
    assert sim.reported
    batch = [r for r in sim.inbound.received.values() if r.tick == 1 and r.sender_slot >= len(sim.actor_ids)]
    assert len(batch) == honest
    assert not [e for e in sim.step() if e["type"] == "warning"]


def _mixed_bundle(ack: testbed_pb2.FleetAck, members: dict[str, int]) -> list[bytes]:
    """The honest envelopes of ``ack`` interleaved with one of each kind of bad one (and a copy)."""
    honest = list(ack.envelopes)
    first = testbed_pb2.Envelope.FromString(honest[0])
    sender = first.sender_id
    stranger = next(v for v in members if v != sender)

    def forged(**change: object) -> bytes:
        env = testbed_pb2.Envelope.FromString(honest[0])
        env.seq += 100
        for name, value in change.items():
            if name == "dest_ids":
                env.dest_ids.append(str(value))
            else:
                setattr(env, name, value)
        return env.SerializeToString()

    frame = frame_pb2.MessageFrame.FromString(first.frame)
    frame.bsm.id = temporary_id(stranger)  # another vehicle's id in this vehicle's BSM
    spat = frame_pb2.MessageFrame(spat=day1_pb2.SPAT(name="x1")).SerializeToString()
    bad = [
        b"\xff\xff\xff",  # malformed
        b"\x08" * 20_000,  # oversized
        testbed_pb2.Ack(actor_id="x", tick=1, tx_count=7).SerializeToString(),  # mistyped: not an Envelope
        forged(sender_id="bg-0-99999"),  # not_in_fleet
        forged(frame=b""),  # unknown_type
        forged(link=testbed_pb2.LINK_UU),  # bad_link
        forged(dest_ids="lead"),  # bad_link (a PC5 envelope with receivers)
        forged(tick=7),  # bad_tick
        forged(tx_time_us=10**15),  # bad_time (a forged FleetInput's time: kept in flight to the end of the run)
        forged(seq=0),  # bad_seq (at or below the last)
        forged(frame=frame.SerializeToString()),  # id_mismatch
        forged(frame=spat),  # not_permitted (a road user's SPAT: attack review 10)
        honest[0],  # the same envelope again: bad_seq
    ]
    mixed: list[bytes] = []
    for k, raw in enumerate(honest):
        mixed.append(raw)
        if k < len(bad):
            mixed.append(bad[k])
    return mixed + bad[len(honest) :]


def _one_by_one(inbound: Inbound, raws: list[bytes], members: dict[str, int], where: str) -> None:
    for raw in raws:
        inbound._fleet_tx(raw, members, where)


def _odd_envelopes(honest: bytes) -> list[bytes]:
    """Envelopes of ``honest``'s sender in the layout the world's scan reads, or just outside it: a link written
    as a varint protobuf reads as PC5 (2**32 + 1: an enum is an int32), a seq of 2**63 and more (a varint of 10
    bytes), a transmission time before 0 (zigzag), a security header, fields out of order, a sender past ASCII."""
    env = testbed_pb2.Envelope.FromString(honest)

    def parts(**change: object) -> bytes:
        head = testbed_pb2.Envelope(sender_id=env.sender_id, seq=env.seq, tick=env.tick, tx_time_us=env.tx_time_us)
        for name, value in change.items():
            setattr(head, name, value)
        return head.SerializeToString()

    frame = testbed_pb2.Envelope(frame=env.frame).SerializeToString()
    pc5 = testbed_pb2.Envelope(link=testbed_pb2.LINK_PC5).SerializeToString()
    secured = testbed_pb2.Envelope.FromString(honest)
    secured.seq += 400
    secured.security.signature = b"x"
    return [
        parts(seq=env.seq + 200) + b"\x28" + varint(2**32 + 1) + frame,  # link: protobuf reads 1
        parts(seq=env.seq + 300, tx_time_us=-123_456) + pc5 + frame,
        secured.SerializeToString(),
        frame + parts(seq=env.seq + 500) + pc5,  # out of field order: protobuf takes it
        parts(seq=env.seq + 600, sender_id="bg-0-\u00e9") + pc5 + frame,
        parts(seq=2**63 + 7) + pc5 + frame,
    ]


@pytest.mark.parametrize("scan", ["never", "interpreted", "compiled"])
def test_the_batch_path_decides_every_envelope_as_the_per_envelope_path_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scan: str
) -> None:
    """The batch path (with the bundle's envelopes scanned into columns, by the interpreted or the compiled
    kernel, or parsed one by one) accepts and rejects each envelope as ``_fleet_tx`` does, with the same counts."""
    import v2x.sim.inbound as inbound_module

    outcomes = []
    taken = [0]
    scanned = Inbound._scanned

    def counted(raws: list[bytes]) -> list[Any]:
        out = scanned(raws)
        taken[0] += sum(f is not None for f in out)
        return out

    monkeypatch.setattr(Inbound, "_scanned", staticmethod(counted))
    for batch in (True, False):
        sim, _, ack = _open_tick_with_members(tmp_path)
        members = sim._members["fleet-0"]
        inbound = sim.inbound
        if not batch:  # every envelope through the reference path
            monkeypatch.setattr(inbound, "_fleet_batch", partial(_one_by_one, inbound))
        monkeypatch.setattr(inbound_module, "SCAN_AT_LEAST", 10**9 if scan == "never" else 0)
        mixed = _mixed_bundle(ack, members) + _odd_envelopes(ack.envelopes[1])
        del ack.envelopes[:]
        ack.envelopes.extend(mixed)
        with always_compiled() if scan == "compiled" else contextlib.nullcontext():
            sim.receive_fleet("fleet-0", ack.SerializeToString())
        stats = inbound.stats
        outcomes.append((dict(stats.rejected), stats.duplicates, dict(inbound.last_seq), inbound.received))
    assert outcomes[0] == outcomes[1]
    rejected = outcomes[0][0]
    assert set(rejected) >= {"malformed", "oversized", "not_in_fleet", "unknown_type", "bad_link", "bad_tick"}
    assert set(rejected) >= {"bad_seq", "id_mismatch", "bad_time", "not_permitted"}
    # (the 13 bad ones, the sender past ASCII and the time before 0, outside the tick's: the other odd ones are taken)
    assert sum(rejected.values()) == 15
    assert taken[0] > 0 if scan != "never" else not taken[0]  # (the scan took the honest envelopes, at least)


def _bsm_envelope(sender: str, x: float, speed: float, accel: float, t: float, seq: int) -> bytes:
    own = OwnState(
        x=x,
        y=0.0,
        speed_mps=speed,
        heading_rad=0.0,
        accel_mps2=accel,
        length_m=4.5,
        width_m=1.8,
        height_m=1.5,
        kind="car",
        sigma_major_m=0.5,
        sigma_minor_m=0.5,
        braking=accel < 0,
    )
    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    frame = encode_bsm(own, actor_id=sender, t_s=t, msg_count=seq, frame=FRAME, epoch=sc.epoch)
    env = testbed_pb2.Envelope(
        sender_id=sender, seq=seq, tick=round(t * 10), tx_time_us=round(t * 1e6), link=testbed_pb2.LINK_PC5
    )
    env.frame = frame.SerializeToString()
    return env.SerializeToString()


def _vehicle(vid: str, x: float, speed: float) -> testbed_pb2.FleetVehicle:
    return testbed_pb2.FleetVehicle(
        vehicle_id=vid, kind="car", x_m=x, vx_mps=speed, speed_mps=speed, length_m=4.5, width_m=1.8
    )


def test_a_fleet_vehicle_gets_fcw_against_a_braking_story_vehicle_it_heard() -> None:
    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    agent = FleetAgent("fleet-0", frame=FRAME, epoch=sc.epoch, thresholds=environment(sc).thresholds)
    warnings: list[testbed_pb2.Advisory] = []
    for tick in range(1, 4):
        t = tick * 0.1
        inp = testbed_pb2.FleetInput(
            run_id="r", tick=tick, time_us=round(t * 1e6), tick_us=100_000, truth_time_us=round((t - 0.1) * 1e6)
        )
        # bg-0-1 closes in on the braking lead (25 m ahead, 15 vs 8 m/s); bg-0-2, as close, heard nothing.
        inp.vehicles.extend([_vehicle("bg-0-1", 0.0, 15.0), _vehicle("bg-0-2", 0.0, 15.0)])
        inp.vehicles[1].y_m = 3.5
        inp.envelopes.append(_bsm_envelope("lead", 25.0, 8.0, -6.0, t, tick))
        pack_deliveries(inp, np.array([0]), np.array([0]), np.array([round(t * 1e6) + 2000]))
        ack = agent.step(inp)
        assert {testbed_pb2.Envelope.FromString(e).sender_id for e in ack.envelopes} == {"bg-0-1", "bg-0-2"}
        warnings.extend(ack.events)
    assert len(warnings) == 1  # once per validity period
    (w,) = warnings
    assert w.target_id == "bg-0-1" and w.app == testbed_pb2.APP_FCW and w.conflict_type == "rear-end"
    assert w.other_id == temporary_id("lead").hex()
    assert 0 < w.ttc_s <= 3.0 and w.raised_at_s == pytest.approx(0.1)


def test_fcw_stays_quiet_when_the_vehicle_ahead_pulls_away() -> None:
    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    agent = FleetAgent("fleet-0", frame=FRAME, epoch=sc.epoch, thresholds=environment(sc).thresholds)
    inp = testbed_pb2.FleetInput(run_id="r", tick=1, time_us=100_000, tick_us=100_000, truth_time_us=0)
    inp.vehicles.append(_vehicle("bg-0-1", 0.0, 10.0))
    inp.envelopes.append(_bsm_envelope("lead", 25.0, 15.0, 0.0, 0.1, 1))
    pack_deliveries(inp, np.array([0]), np.array([0]), np.array([102_000]))
    assert not agent.step(inp).events


def test_delivery_arrays_round_trip_and_arrays_that_do_not_fit_are_refused() -> None:
    inp = testbed_pb2.FleetInput(time_us=1_000_000)
    inp.vehicles.extend([_vehicle("bg-0-1", 0.0, 10.0), _vehicle("bg-0-2", 5.0, 10.0), _vehicle("bg-0-3", 9.0, 1.0)])
    inp.envelopes.extend([b"a", b"b"])
    pack_deliveries(inp, np.array([0, 0, 2]), np.array([1, 0, 1]), np.array([999_000, 998_500, 1_000_000]))
    got = unpack_deliveries(testbed_pb2.FleetInput.FromString(inp.SerializeToString()))
    assert got is not None
    assert got.vehicle_of(np.array([2, 0, 1])).tolist() == [2, 0, 0]  # from the counts alone
    assert got.vehicle.tolist() == [0, 0, 2] and got.envelope.tolist() == [1, 0, 1]
    assert got.vehicle_of(np.array([2])).tolist() == [2]
    assert got.rx_time_us.tolist() == [999_000, 998_500, 1_000_000]
    for field, value in (
        ("delivery_counts", np.array([1, 0, 1], "<u4").tobytes()),  # counts do not add up to the deliveries
        ("delivery_counts", np.array([3, 0], "<u4").tobytes()),  # not one per vehicle
        ("delivery_envelopes", np.array([1, 0, 2], "<u2").tobytes()),  # no envelope 2
        ("delivery_envelopes", np.array([1, 0, 1], "<u4").tobytes()),  # uint32 for 2 envelopes
        ("delivery_offsets_us", b"\x00" * 8),  # fewer offsets than deliveries
    ):
        bad = testbed_pb2.FleetInput()
        bad.CopyFrom(inp)
        setattr(bad, field, value)
        assert unpack_deliveries(bad) is None, field


def test_delivery_indices_widen_to_uint32_beyond_65536_envelopes() -> None:
    inp = testbed_pb2.FleetInput(time_us=0)
    inp.vehicles.append(_vehicle("bg-0-1", 0.0, 10.0))
    inp.envelopes.extend([b"e"] * 70_000)
    pack_deliveries(inp, np.array([0, 0]), np.array([3, 69_999]), np.array([0, -5]))
    assert len(inp.delivery_envelopes) == 8
    got = unpack_deliveries(inp)
    assert got is not None and got.envelope.tolist() == [3, 69_999] and got.rx_time_us.tolist() == [0, -5]


@pytest.mark.parametrize(
    ("vehicles", "envelopes", "deliveries"), [(0, 0, 0), (3, 0, 0), (3, 2, 5), (40, 300, 4000), (2, 70_000, 9)]
)
def test_serialize_with_deliveries_gives_the_bytes_of_put_deliveries_and_serialize(
    vehicles: int, envelopes: int, deliveries: int
) -> None:
    rng = np.random.default_rng(vehicles + envelopes + deliveries)
    msg = testbed_pb2.FleetInput(run_id="r", tick=7, time_us=700_000, tick_us=100_000, truth_time_us=600_000)
    heads = [vehicle_head(f"bg-0-{k}", "car") for k in range(vehicles)]
    bodies = vehicle_bodies([rng.random(vehicles) for _ in VEHICLE_DOUBLES])
    add_vehicles(msg, heads, bodies, range(vehicles))
    msg.envelopes.extend(bytes(rng.integers(0, 256, 30, dtype=np.uint8)) for _ in range(envelopes))
    msg.final = deliveries == 4000
    counts = np.zeros(vehicles, dtype=np.uint32)
    if vehicles:
        counts[: deliveries % vehicles] = deliveries // vehicles + 1
        counts[deliveries % vehicles :] = deliveries // vehicles
    drawn = rng.integers(0, max(1, envelopes), deliveries)
    index = drawn.astype(np.uint16) if envelopes <= 1 << 16 else drawn.astype(np.uint32)
    offsets = rng.integers(-5, 3_000, deliveries).astype(np.int32)
    expected = testbed_pb2.FleetInput()
    expected.CopyFrom(msg)
    put_deliveries(expected, counts, index, offsets)
    assert serialize_with_deliveries(msg, counts, index, offsets) == expected.SerializeToString()
    assert not msg.delivery_counts  # the message itself is left as it was
    if vehicles:
        with pytest.raises(ValueError, match="without deliveries"):
            serialize_with_deliveries(expected, counts, index, offsets)


def _with_bsm(raw: bytes, change: Callable[[day1_pb2.BSM], None]) -> bytes:
    env = testbed_pb2.Envelope.FromString(raw)
    frame = frame_pb2.MessageFrame.FromString(env.frame)
    change(frame.bsm)
    env.frame = frame.SerializeToString()
    return env.SerializeToString()


def test_fcw_ignores_a_sender_whose_freshest_bsm_is_too_inaccurate_and_refuses_bad_bsms() -> None:
    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    agent = FleetAgent("fleet-0", frame=FRAME, epoch=sc.epoch, thresholds=environment(sc).thresholds)
    inp = testbed_pb2.FleetInput(run_id="r", tick=1, time_us=100_000, tick_us=100_000, truth_time_us=0)
    inp.vehicles.append(_vehicle("bg-0-1", 0.0, 15.0))
    accurate = _bsm_envelope("lead", 25.0, 8.0, -6.0, 0.1, 1)  # would warn bg-0-1 (the test above)
    unknown = _with_bsm(
        _bsm_envelope("lead", 25.0, 8.0, -6.0, 0.1, 2), lambda b: setattr(b.accuracy, "semi_major", 255)
    )
    bad = _with_bsm(_bsm_envelope("other", 40.0, 8.0, 0.0, 0.1, 1), lambda b: setattr(b.safety_ext, "lights", 1 << 12))
    inp.envelopes.extend([accurate, unknown, bad])  # the same BSM time: the later one is the freshest
    pack_deliveries(inp, np.array([0, 0, 0]), np.array([0, 1, 2]), np.array([102_000, 102_000, 102_000]))
    assert not agent.step(inp).events
    assert agent.remotes["lead"].sigma_major_m is None and "other" not in agent.remotes
    assert agent.rejected == 1  # the lights out of range: refused as a decode would, the rest stands


def _check_or_false(bsm: day1_pb2.BSM) -> bool:
    from v2x.wire.bsm import check_bsm

    try:
        return check_bsm(bsm)
    except ValueError:
        return False


def _good_bsm() -> day1_pb2.BSM:
    return frame_pb2.MessageFrame.FromString(_bsm_envelope_frame()).bsm


def _edge_bsms() -> list[day1_pb2.BSM]:
    """A good BSM, and each checked field just inside and just outside its range, and the "unavailable" values."""
    good = _good_bsm

    def changed(path: str, value: int) -> day1_pb2.BSM:
        b = good()
        *parents, leaf = path.split(".")
        obj = b
        for p in parents:
            obj = getattr(obj, p)
        setattr(obj, leaf, value)
        return b

    cases = [good()]
    for path, inside, outside in [
        ("pos.lat", 900_000_000, 900_000_001),
        ("pos.lat", -900_000_000, -900_000_001),
        ("pos.lon", 1_800_000_000, 1_800_000_001),
        ("pos.lon", -1_799_999_999, -1_800_000_000),
        ("speed", 8190, 8191),
        ("heading", 28799, 28800),
        ("heading", 0, 28801),
        ("accel_set.long", 2001, 2002),
        ("accel_set.long", -2000, -2001),
        ("pos.elevation", -4096, -4097),
        ("pos.elevation", 61439, 61440),
        ("size.length", 4095, 4096),
        ("size.width", 0, 4096),
        ("accuracy.semi_major", 255, 256),
        ("safety_ext.events", (1 << 13) - 1, 1 << 13),
        ("safety_ext.lights", (1 << 9) - 1, 1 << 9),
        ("brakes.brake_pedal", 3, 4),
        ("brakes.abs", 3, 4),
        ("brakes.traction", 3, 4),
        ("brakes.scs", 3, 4),
        ("emergency_ext.response_type", 6, 7),
        ("emergency_ext.siren_use", 3, 4),
        ("emergency_ext.lights_use", 7, 8),
        ("sec_mark", 59999, 60000),  # (60000..65534 reserved, 65535 unavailable: a time the receiver cannot place)
        ("sec_mark", 0, 65535),
    ]:
        cases += [changed(path, inside), changed(path, outside)]
    return cases


def test_in_check_ranges_and_check_bsm_answer_as_check_bsm_does_one_by_one() -> None:
    """The fleet's check of a batch of BSMs (``_scan``): every raw value range-checked at once
    (``in_check_ranges``), only those it leaves asked of ``check_bsm``, gives ``check_bsm``'s answer."""
    from v2x import units
    from v2x.wire.bsm import _bsm_fields, in_check_ranges, passes_check

    def batch(bsms: list[day1_pb2.BSM]) -> list[bool]:
        plain = in_check_ranges(np.array([_bsm_fields(b) for b in bsms], dtype=np.int64).reshape(-1, 18)).tolist()
        # (``_scan`` checks the secMark column beside them)
        return [(ok and b.sec_mark <= units.SECMARK_MAX) or passes_check(b) for ok, b in zip(plain, bsms, strict=True)]

    good = _good_bsm
    cases = _edge_bsms()
    want = [_check_or_false(b) for b in cases]
    assert want.count(False) >= 23  # every "outside" case is refused (lat/lon/speed/heading unavailable too)
    assert batch(cases) == want
    assert batch([good()] * 3) == [True] * 3
    assert batch([]) == []


@functools.cache
def _fcw_epoch() -> datetime:
    return load_scenario(SCENARIO_DIR / "fcw.yaml").epoch


def _decoded(bsms: list[day1_pb2.BSM], memo: dict[Any, dict[str, object]] | None) -> list[object]:
    """``decode_bsms`` of ``bsms``, each RemoteState as its fields in the order of its ``__dict__`` (a frozen
    dataclass made without __init__ must hold the same, in the same order), or "ValueError"."""
    from v2x.wire.bsm import decode_bsms

    try:
        out = decode_bsms(bsms, now_s=1.05, frame=FRAME, epoch=_fcw_epoch(), memo=memo)
    except ValueError:
        return ["ValueError"]
    return [None if r is None else [(k, type(v), repr(v)) for k, v in r.__dict__.items()] + [hash(r)] for r in out]


def _decoded_one_by_one(bsms: list[day1_pb2.BSM]) -> list[object]:
    """``_decoded`` by ``decode_bsm``, one BSM at a time (a batch raises if any of its BSMs does)."""
    from v2x.wire.bsm import decode_bsm

    out: list[object] = []
    for b in bsms:
        try:
            r = decode_bsm(b, now_s=1.05, frame=FRAME, epoch=_fcw_epoch())
        except ValueError:
            return ["ValueError"]
        out.append(None if r is None else [(k, type(v), repr(v)) for k, v in r.__dict__.items()] + [hash(r)])
    return out


def test_decode_bsms_with_a_memo_gives_what_it_gives_without() -> None:
    """A sender's fields besides its motion kept from BSM to BSM (``decode_bsms``' memo): the same RemoteStates
    (fields, types, order), the same refusals, whatever the memo held before; and the same as ``decode_bsm`` one
    BSM at a time (the batch's positions, speeds and headings converted at once when all are in range)."""
    rng = np.random.default_rng(4)
    memo: dict[Any, dict[str, object]] = {}
    edge = _edge_bsms()
    for _ in range(3):  # (edge cases decoded into a memo that already holds them, or their neighbours)
        for b in edge:
            assert _decoded([b], memo) == _decoded([b], None) == _decoded_one_by_one([b])
    assert _decoded(edge, memo) == _decoded(edge, None) == ["ValueError"]
    for _ in range(30):  # a few senders, each BSM's motion and flags changing from tick to tick
        batch = []
        for sender in range(6):
            b = _good_bsm()
            b.id = bytes([sender]) * 4
            b.pos.lat += int(rng.integers(-5000, 5000))
            b.pos.lon += int(rng.integers(-5000, 5000))
            b.speed, b.heading = int(rng.integers(0, 8191)), int(rng.integers(0, 28800))
            b.accel_set.long = int(rng.integers(-2000, 2002))
            b.safety_ext.events = int(rng.choice([0, 1 << 3]))
            b.safety_ext.lights = int(rng.choice([0, 1 << 3, 1 << 4, (1 << 3) | (1 << 4)]))
            b.brakes.brake_pedal = int(rng.integers(0, 3))
            b.pos.elevation = int(rng.choice([-4096, 0, 10]))
            if sender == 5:
                b.emergency_ext.siren_use = int(rng.integers(0, 3))
            batch.append(b)
        if rng.random() < 0.3:  # (a BSM without a position among them: the batch is decoded one by one)
            batch[int(rng.integers(0, len(batch)))].pos.lat = 900_000_001
        assert _decoded(batch, memo) == _decoded(batch, None) == _decoded_one_by_one(batch)
    assert 6 < len(memo) < 30 * 5  # (senders' BSMs with the same values share an entry; none with the extension)


def _bsm_envelope_frame() -> bytes:
    own = OwnState(5.0, 1.0, 10.0, 0.2, -0.5, 4.5, 1.8, 1.5, "car", None, None, False)
    return encode_bsm(own, actor_id="v", t_s=1.0, msg_count=1, frame=FRAME, epoch=_fcw_epoch()).SerializeToString()


def test_motion_to_wire_gives_the_integers_of_the_scalar_conversions() -> None:
    from v2x import units
    from v2x.wire.bsm import motion_columns, motion_to_wire

    rng = np.random.default_rng(7)
    n = 20_000
    lat = np.concatenate([rng.uniform(-95, 95, n), [90.0, -90.0, 29.5 + 0.5e-7, 29.5 + 1.5e-7, 0.0]])
    lon = np.concatenate([rng.uniform(-400, 400, n), [180.0, -180.0, 179.99999995, -179.99999995, 540.0]])
    speed = np.concatenate([rng.uniform(0, 200, n), [0.01, 0.03, 163.8, 163.81, 0.0]])
    compass = np.concatenate([rng.uniform(0, 360, n), [359.99999, 0.00625, 0.01875, 359.99375, 0.0]])
    accel = np.concatenate([rng.uniform(-25, 25, n), [0.005, -0.015, 20.0, -20.005, 0.0]])
    want = [
        (
            units.lat_to_wire(a),
            units.lon_to_wire(b),
            units.speed_to_wire(c),
            units.heading_to_wire(d),
            units.accel_to_wire(e),
        )
        for a, b, c, d, e in zip(
            lat.tolist(), lon.tolist(), speed.tolist(), compass.tolist(), accel.tolist(), strict=True
        )
    ]
    assert motion_to_wire(lat, lon, speed, compass, accel) == want
    columns = motion_columns(lat, lon, speed, compass, accel)
    assert columns is not None and list(zip(*columns.tolist(), strict=True)) == want
    lat[3] = np.nan
    assert motion_to_wire(lat, lon, speed, compass, accel) is None  # then one by one
    assert motion_columns(lat, lon, speed, compass, accel) is None


def test_envelope_bytes_are_what_protobuf_serialises() -> None:
    from v2x.wire.envelope import envelope_bytes

    senders = ["", "bg-0-1", "é" * 70, "x" * 200]
    seqs = [0, 1, 127, 128, 16_383, 16_384, 2**32, 2**64 - 1]
    frames = [b"", b"\x00", bytes(range(128)), bytes(300), bytes(16_384)]
    for tick, tx, link in (
        (0, 0, testbed_pb2.LINK_PC5),
        (7, -5, testbed_pb2.LINK_UU),
        (2**40, 10**12, testbed_pb2.LINK_UNSPECIFIED),
        (1, 1, testbed_pb2.LINK_WIRED),
    ):
        rows = [(s, q, f) for s in senders for q in seqs for f in frames]
        got = envelope_bytes(*zip(*rows, strict=True), tick=tick, tx_time_us=tx, link=link)
        want = [
            testbed_pb2.Envelope(sender_id=s, seq=q, tick=tick, tx_time_us=tx, link=link, frame=f).SerializeToString()
            for s, q, f in rows
        ]
        assert got == want


def test_refresh_bsms_agrees_with_refresh_bsm_and_the_range_test_with_check_bsm() -> None:
    """``refresh_bsms`` sets what ``refresh_bsm`` sets, and the range test the fleet's scan does on what a refresh
    gives (``in_check_ranges``, the fleet's own BSMs at the edges of the ranges among them) answers as
    ``check_bsm``."""
    from v2x.wire.bsm import _bsm_fields, in_check_ranges, passes_check, refresh_bsm, refresh_bsms

    epoch = load_scenario(SCENARIO_DIR / "fcw.yaml").epoch

    def template(kind: str, length_m: float) -> frame_pb2.MessageFrame:
        own = OwnState(0.0, 0.0, 0.0, 0.0, 0.0, length_m, 1.8, 1.5, kind, None, None, False)
        return encode_bsm(own, actor_id=kind, t_s=0.0, msg_count=0, frame=FRAME, epoch=epoch)

    in_range = (295_000_000, 1_065_000_000, 500, 100, -30)
    wires = [
        in_range,
        (900_000_000, -1_799_999_999, 8190, 28799, 2001),  # every one at the edge of its range
        (900_000_001, 1_800_000_001, 8191, 28800, 2001),  # unavailable: check_bsm says False
        (295_000_000, 1_800_000_002, 500, 100, 0),  # beyond the range: check_bsm raises
        (295_000_000, 1_065_000_000, 500, 100, -2001),
    ]
    accels = [-0.3, 0.0, 2.0, -4.0, -9.0]
    bad_static = template("car", 4.5)
    bad_static.bsm.safety_ext.lights = 1 << 12  # a template out of range: every BSM of it refused
    templates = [template("car", 4.5), template("truck", 12.0), template("bus", 40.95), bad_static]
    cases = [(t, w, a) for t in templates for w in wires for a in accels]
    one, batch = [], []
    for t, w, a in cases:
        m1, m2 = frame_pb2.MessageFrame(), frame_pb2.MessageFrame()
        m1.CopyFrom(t)
        m2.CopyFrom(t)
        refresh_bsm(m1, lat_deg=0.0, lon_deg=0.0, speed_mps=0.0, heading_rad=0.0, accel_mps2=a, msg_count=200,
                    sec_mark=59_999, wire=w)  # fmt: skip
        one.append(m1)
        batch.append(m2)
    refresh_bsms(batch, [w for _, w, _ in cases], [a for _, _, a in cases], [200] * len(cases), 59_999)
    assert [m.SerializeToString() for m in batch] == [m.SerializeToString() for m in one]
    plain = in_check_ranges(np.array([_bsm_fields(m.bsm) for m in one], dtype=np.int64)).tolist()
    want = [passes_check(m.bsm) for m in one]
    assert plain == want  # here the range test alone decides; a False would be asked of check_bsm
    assert want.count(True) == 3 * 2 * len(accels)  # the good templates with the first two motions


Heard = tuple[bytes, list[tuple[str, str]], int]  # a tick's ack, the fleet's remotes (repr), its refusals so far


def _hearing(ticks: int, others: Callable[[float, int], list[bytes]]) -> tuple[FleetAgent, list[Heard]]:
    """A fleet of four vehicles in the fcw scenario hearing, each tick, its own envelopes of the tick before and
    ``others(t, tick)`` (some BSMs without a position, one converted one by one): per tick what it heard."""
    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    agent = FleetAgent("fleet-0", frame=FRAME, epoch=sc.epoch, thresholds=environment(sc).thresholds)
    sent: list[bytes] = []
    seen: list[Heard] = []
    for tick in range(1, ticks + 1):
        t = tick * 0.1
        inp = testbed_pb2.FleetInput(
            run_id="r", tick=tick, time_us=round(t * 1e6), tick_us=100_000, truth_time_us=round((t - 0.1) * 1e6)
        )
        inp.vehicles.extend([_vehicle(f"bg-0-{k}", 10.0 * k, 15.0) for k in range(4)])
        inp.vehicles[3].x_m = math.nan if tick % 3 == 0 else 30.0  # no position in some BSMs: refused
        inp.vehicles[2].speed_mps = math.nan if tick == 5 else 15.0  # converted one by one
        inp.envelopes.extend([*sent, *others(t, tick)])
        m = len(inp.envelopes)
        pack_deliveries(inp, np.repeat(np.arange(4), m), np.tile(np.arange(m), 4), np.full(4 * m, inp.time_us))
        ack = agent.step(inp)
        sent = list(ack.envelopes)
        seen.append((ack.SerializeToString(), sorted((k, repr(v)) for k, v in agent.remotes.items()), agent.rejected))
    return agent, seen


@pytest.mark.parametrize("how", ["parsed", "scanned", "compiled"])
def test_a_fleet_hears_its_own_envelopes_as_protobuf_decodes_them(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """The envelopes a fleet sent, heard back by its other vehicles, are read as anyone's (parsed one by one, or
    read in columns, interpreted or compiled): per sender the fleet keeps what ``decode_bsm`` gives of the
    envelope it sent (time, accuracy, position, speed, heading, acceleration, size) for a BSM FCW acts on, and
    its time and accuracy for one FCW's accuracy gate refuses; one without a position is refused and counted.
    Its BSMs written from the arrays and refreshed in place (a tick with a value that is not finite) alike."""
    import v2x.agents.fleet as fleet_module
    from v2x.wire.bsm import decode_bsm
    from v2x.wire.envelope import parse_envelope

    monkeypatch.setattr(fleet_module, "SCAN_AT_LEAST", 10**9 if how == "parsed" else 0)
    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    agent = FleetAgent("fleet-0", frame=FRAME, epoch=sc.epoch, thresholds=environment(sc).thresholds)
    n = 40  # (more than SMALL_WORLD: written from the arrays, unless a value is not finite)
    sent: list[bytes] = []
    kinds: collections.Counter[str] = collections.Counter()
    with always_compiled() if how == "compiled" else contextlib.nullcontext():
        for tick in range(1, 8):
            t = tick * 0.1
            inp = testbed_pb2.FleetInput(
                run_id="r", tick=tick, time_us=round(t * 1e6), tick_us=100_000, truth_time_us=round((t - 0.1) * 1e6)
            )
            for k in range(n):
                v = _vehicle(f"bg-0-{k}", 9.0 * k + tick, 10.0 + k % 5)
                v.accel_mps2 = v.ax_mps2 = [0.0, -0.7, -4.5, 1.2][k % 4]
                if k % 3:  # a receiver that states an accuracy FCW acts on; the others state none (Stamps)
                    v.sigma_major_m, v.sigma_minor_m = 0.3, 0.2
                if k in (4, 6) and tick % 2:  # no position in its BSM: refused (and the tick refreshed in place)
                    v.x_m = math.nan
                inp.vehicles.append(v)
            inp.envelopes.extend(sent)  # the tick before's, heard by every vehicle
            m = len(sent)
            pack_deliveries(inp, np.repeat(np.arange(n), m), np.tile(np.arange(m), n), np.full(n * m, inp.time_us))
            rejected = agent.rejected
            ack = agent.step(inp)
            refused = 0
            for raw in sent:
                parsed = parse_envelope(raw)
                assert parsed is not None
                r = decode_bsm(parsed[1].bsm, now_s=inp.time_us / 1e6, frame=FRAME, epoch=sc.epoch)
                if r is None:
                    refused += 1
                    continue
                no = agent._numbers[parsed[0].sender_id]
                full = r.sigma_major_m is not None
                kinds["full" if full else "stamp"] += 1
                assert agent._fresh_full[no] == full
                assert agent._fresh_t[no] == r.t_s
                sigma = agent._fresh_sigma[no]
                assert (sigma == r.sigma_major_m) if full else math.isnan(sigma)
                if full:
                    values = (r.x, r.y, r.speed_mps, r.heading_rad, r.accel_mps2, r.length_m, r.width_m)
                    assert agent._fresh_motion[no].tolist() == list(values)
            assert agent.rejected - rejected == refused
            kinds["refused"] += refused
            sent = list(ack.envelopes)
    assert kinds["full"] and kinds["stamp"] and kinds["refused"]


def test_the_scan_and_protobuf_hear_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """The envelopes read in columns (``_scan``, interpreted and compiled) and parsed by protobuf one by one (as a
    small batch is) give the same remotes, refusals and warnings: well-formed BSMs, ones out of range or
    without a position, inaccurate ones, signed ones, a non-BSM, garbage, cut and flipped bytes, and the fleet's
    own envelopes (read as anyone's)."""
    import v2x.agents.fleet as fleet_module
    from v2x.core import always_compiled

    def others(t: float, tick: int) -> list[bytes]:
        lead = _bsm_envelope("lead", 55.0, 8.0, -6.0, t, tick)
        signed = testbed_pb2.Envelope.FromString(_bsm_envelope("signed", 70.0, 9.0, 0.0, t, tick))
        signed.security.digest, signed.security.signature = b"12345678", bytes(64)
        return [
            lead,
            _bsm_envelope("ahead", 35.0, 5.0, -2.0, t - 0.05 * (tick % 2), tick),  # (times out of order)
            _bsm_envelope("ahead", 35.5, 5.0, -2.0, t - 0.05, tick),
            _with_bsm(_bsm_envelope("far", 200.0, 8.0, 0.0, t, tick), lambda b: setattr(b.accuracy, "semi_major", 255)),
            _with_bsm(_bsm_envelope("bad", 40.0, 8.0, 0.0, t, tick), lambda b: setattr(b.safety_ext, "lights", 4096)),
            _with_bsm(_bsm_envelope("lost", 40.0, 8.0, 0.0, t, tick), lambda b: setattr(b.pos, "lat", 900000001)),
            _with_bsm(_bsm_envelope("wide", 40.0, 8.0, 0.0, t, tick), lambda b: setattr(b.accuracy, "semi_major", 300)),
            _with_bsm(_bsm_envelope("huge", 45.0, 8.0, 0.0, t, tick), lambda b: setattr(b.size, "length", 0)),
            signed.SerializeToString(),
            testbed_pb2.Envelope(sender_id="rsu", frame=frame_pb2.MessageFrame(
                advisory=testbed_pb2.Advisory(target_id="x")).SerializeToString()).SerializeToString(),
            b"\xff\x00garbage",
            lead[:-3],
            bytes([lead[0] ^ 0x40]) + lead[1:],
        ]  # fmt: skip

    def run(scan: bool) -> list[Heard]:
        monkeypatch.setattr(fleet_module, "SCAN_AT_LEAST", 0 if scan else 10**9)
        return _hearing(8, others)[1]

    parsed = run(scan=False)
    assert parsed[-1][2] > 0 and any(testbed_pb2.FleetAck.FromString(a).events for a, _, _ in parsed)
    assert run(scan=True) == parsed
    with always_compiled():
        assert run(scan=True) == parsed


def test_vehicles_put_as_wire_bytes_serialise_as_field_by_field_adds() -> None:
    """The world writes FleetInput.vehicles with numpy (v2x.wire.fleet.add_vehicles): the message it gets, and
    so its bytes, are those of one ``vehicles.add(...)`` per vehicle, zeros, -0.0, nan and inf included."""
    rng = np.random.default_rng(5)
    n = 300
    cols = [rng.normal(0.0, 10.0 ** rng.integers(-3, 6), n) for _ in VEHICLE_DOUBLES]
    special = [0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, 1e300]
    for c in cols:
        c[rng.choice(n, 40, replace=False)] = rng.choice(special, 40)
    cols[3][:] = 0.0  # a column of zeros (vy on an east-west road)
    ids = [f"bg-{k % 7}-{k}" if k % 50 else f"véhicule-{'x' * (k % 200)}" for k in range(n)]
    kinds = [("car", "truck", "bus", "")[k % 4] for k in range(n)]
    heads = [vehicle_head(vid, kind) for vid, kind in zip(ids, kinds, strict=True)]
    bodies = vehicle_bodies(cols)
    which = rng.permutation(n)[: n - 20].tolist()
    fast = testbed_pb2.FleetInput(run_id="r", tick=3, time_us=-7)
    add_vehicles(fast, heads, bodies, which)
    slow = testbed_pb2.FleetInput(run_id="r", tick=3, time_us=-7)
    for k in which:
        slow.vehicles.add(
            vehicle_id=ids[k], kind=kinds[k], **{f: float(c[k]) for f, c in zip(VEHICLE_DOUBLES, cols, strict=True)}
        )
    assert fast.SerializeToString() == slow.SerializeToString()
    assert [v.vehicle_id for v in fast.vehicles] == [ids[k] for k in which]
    empty = testbed_pb2.FleetInput()
    add_vehicles(empty, heads, bodies, [])
    assert empty.SerializeToString() == b""


def _fcw_inputs() -> list[testbed_pb2.FleetInput]:
    """Three ticks of a fleet vehicle (bg-0-1) closing in on a braking story car it hears (FCW at tick 1)."""
    inputs = []
    for tick in range(1, 4):
        t = tick * 0.1
        inp = testbed_pb2.FleetInput(
            run_id="r", tick=tick, time_us=round(t * 1e6), tick_us=100_000, truth_time_us=round((t - 0.1) * 1e6),
            final=tick == 3, warnings_next_tick=tick < 3,
        )  # fmt: skip
        inp.vehicles.append(_vehicle("bg-0-1", 0.0, 15.0))
        inp.envelopes.append(_bsm_envelope("lead", 25.0, 8.0, -6.0, t, tick))
        pack_deliveries(inp, np.array([0]), np.array([0]), np.array([round(t * 1e6) + 2000]))
        inputs.append(inp)
    return inputs


def _fleet_host_on_a_wire() -> tuple[FleetHost, list[bytes]]:
    """fcw's thresholds in a fleet host of 3 ticks, at tick 0 (ticks 1..3 of ``_fcw_inputs``), on a fake
    connection: what it publishes (its acks), in order."""
    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    raw: list[bytes] = []

    class Wire:  # the shell's side of its connection
        def route(self, topic_filter: str, handler: object) -> None:
            pass

        async def publish(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
            assert topic == topics.fleet_ack("r", "fleet-0")
            raw.append(payload)

    agent = FleetAgent("fleet-0", frame=FRAME, epoch=sc.epoch, thresholds=environment(sc).thresholds)
    host = FleetHost(Wire(), "r", agent, n_ticks=3)  # type: ignore[arg-type]
    host.last_tick = 0
    return host, raw


def _moved(inp: testbed_pb2.FleetInput) -> testbed_pb2.FleetInput:
    """A forged copy of ``inp``: its first vehicle 3 m further east."""
    forged = testbed_pb2.FleetInput()
    forged.CopyFrom(inp)
    forged.vehicles[0].x_m += 3.0
    return forged


async def test_a_fleet_told_warnings_next_tick_sends_them_with_the_next_ack_and_the_final_ack_its_own() -> None:
    """``FleetInput.warnings_next_tick``: the ack of tick n carries the vehicles' BSMs of tick n and the warnings
    raised at tick n - 1 (``listen`` runs after the ack went out); the final tick's ack carries its own. The
    warnings are those ``step`` gives, and an input sent again is answered with the same bytes."""
    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    thresholds = environment(sc).thresholds
    whole = FleetAgent("fleet-0", frame=FRAME, epoch=sc.epoch, thresholds=thresholds)
    expected = [list(whole.step(inp).events) for inp in _fcw_inputs()]
    assert [len(e) for e in expected] == [1, 0, 0]  # FCW at tick 1 only (once per validity period)

    host, raw = _fleet_host_on_a_wire()  # (ticks 1..3 here)
    inputs = _fcw_inputs()
    for inp in inputs[:2]:
        host.queue.put_nowait(inp.SerializeToString())
    host.queue.put_nowait(inputs[1].SerializeToString())  # tick 2 asked again
    host.queue.put_nowait(inputs[2].SerializeToString())
    await asyncio.wait_for(host.run(), 10)
    acks = [testbed_pb2.FleetAck.FromString(p) for p in raw]
    assert [a.tick for a in acks] == [1, 2, 2, 3]
    assert raw[1] == raw[2]
    assert [list(a.events) for a in acks] == [[], expected[0], expected[0], expected[1] + expected[2]]
    assert all(len(a.envelopes) == 1 for a in acks)


def test_a_warning_of_the_tick_before_may_name_a_vehicle_the_fleet_hosted_then(tmp_path: Path) -> None:
    """A deferred warning (raised before the ack's tick) for a vehicle the fleet hosted at the tick before
    stands; one raised at this tick for it, or for a vehicle never hosted, is ``not_in_fleet``."""
    sim, _, ack = _open_tick_with_members(tmp_path)
    members = sim._members["fleet-0"]
    earlier = testbed_pb2.Advisory(app=testbed_pb2.APP_FCW, target_id="bg-gone", other_id="x", raised_at_s=0.0)
    now = testbed_pb2.Advisory(app=testbed_pb2.APP_FCW, target_id="bg-gone", other_id="x", raised_at_s=0.1)
    never = testbed_pb2.Advisory(app=testbed_pb2.APP_FCW, target_id="bg-never", other_id="x", raised_at_s=0.0)
    ack.events.extend([earlier, now, never])
    sim.inbound.fleet("fleet-0", ack.SerializeToString(), members, before={"bg-gone": 1})
    assert sim.inbound.stats.rejected == {"not_in_fleet": 2}
    assert [(vid, adv.raised_at_s) for vid, adv in sim.inbound.fleet_events] == [("bg-gone", 0.0)]


async def test_a_fleet_counts_a_different_input_for_the_tick_it_answered_and_reports_what_it_rejected() -> None:
    """Two different FleetInputs for one tick: one of them was not the world's (a forged one that came first
    is answered, and then steers the fleet: docs/SECURITY.md). The fleet answers the second with its first
    answer, as before, but now counts it (``conflicting_input``), and every later ack carries what the fleet
    rejected so far, which the world reports as ``rejected_by_agents`` (found by an attack test: a forged
    input had steered a run with nothing counted anywhere)."""
    host, raw = _fleet_host_on_a_wire()
    inputs = _fcw_inputs()
    for inp in (_moved(inputs[0]), inputs[0], inputs[1], inputs[2]):
        host.queue.put_nowait(inp.SerializeToString())
    await asyncio.wait_for(host.run(), 10)
    acks = [testbed_pb2.FleetAck.FromString(p) for p in raw]
    assert [a.tick for a in acks] == [1, 1, 2, 3] and raw[0] == raw[1]
    assert host.rejected == {"conflicting_input": 1}
    assert [dict(a.rejected) for a in acks] == [{}, {}, {"conflicting_input": 1}, {"conflicting_input": 1}]


def test_the_world_reports_what_a_fleet_rejected(tmp_path: Path) -> None:
    sim, _, ack = _open_tick_with_members(tmp_path)
    ack.rejected["conflicting_input"] = 2
    sim.receive_fleet("fleet-0", ack.SerializeToString())
    assert sim.reported and not sim.inbound.stats.rejected
    assert sim.inbound.stats.rejected_by_agents["fleet-0"] == {"conflicting_input": 2}


def test_forged_inputs_reported_in_three_ticks_get_the_fleet_or_agent_flagged(tmp_path: Path) -> None:
    """A ``conflicting_input`` more than before is a conflict (``input``) of whoever reports it: in 3 ticks the
    fleet (or agent) is flagged, as one whose reports conflict is; the same count again is not a new one."""
    sim, _, _ = _open_tick_with_members(tmp_path)
    inbound = sim.inbound
    for tick, count in ((1, 1), (2, 1), (3, 2), (4, 2), (5, 3)):
        inbound.current_tick = tick
        inbound.note_rejected_by("fleet-0", {"conflicting_input": count, "bad_tick": tick})
        inbound.note_rejected_by("follower", {"bad_tick": tick})
    assert inbound.flagged() == {"fleet-0": {"input": 3}}
    assert inbound.stats.rejected_by_agents["fleet-0"] == {"conflicting_input": 3, "bad_tick": 5}


async def test_a_fleet_pushed_ahead_by_forged_inputs_answers_the_worlds_ticks_again() -> None:
    """Forged FleetInputs for ticks 1 and 2 before the world's tick 1: the fleet answers the world's 1 and 2
    with the answers it gave (counted), then goes on with the world's 3 (it refused the world's 1 as bad_tick and
    the run stalled: found by an attack test)."""
    host, raw = _fleet_host_on_a_wire()
    inputs = _fcw_inputs()
    for inp in (_moved(inputs[0]), _moved(inputs[1]), inputs[0], inputs[1], inputs[2]):
        host.queue.put_nowait(inp.SerializeToString())
    await asyncio.wait_for(host.run(), 10)
    acks = [testbed_pb2.FleetAck.FromString(p) for p in raw]
    assert [a.tick for a in acks] == [1, 2, 1, 2, 3] and raw[2] == raw[0] and raw[3] == raw[1]
    assert host.rejected == {"conflicting_input": 2}


def test_a_fleet_ack_that_contradicts_its_ticks_first_flags_the_fleet_at_once(tmp_path: Path) -> None:
    """As an actor's Ack (a diff review: the FleetAck path kept the 3-tick rule): an empty forged FleetAck that
    came first silences the fleet's vehicles for the tick; the real one then contradicts it, and the fleet is
    flagged at once."""
    sim, _agent, ack = _open_tick_with_members(tmp_path)
    members = sim._members["fleet-0"]
    forged = testbed_pb2.FleetAck(fleet_id="fleet-0", tick=1)
    sim.inbound.fleet("fleet-0", forged.SerializeToString(), members)
    assert sim.inbound.flagged() == {}
    sim.inbound.fleet("fleet-0", ack.SerializeToString(), members)
    assert sim.inbound.stats.rejected["conflicting_ack"] == 1
    assert sim.inbound.flagged() == {"fleet-0": {"ack": 1}}


def test_a_fleet_vehicle_cut_from_an_input_after_it_left_the_road_is_counted_against_its_fleet(tmp_path: Path) -> None:
    """Diff review 26: the overflow cut named the sender by its slot's occupant when the input was built. The
    fleet's vehicles flood the RSU (64 envelopes of 16 KiB each) and leave the road before their deliveries are
    sent: a freed slot raised KeyError in ``Simulation.begin`` (the run died), and a slot taken by a newcomer put
    the cut on the newcomer. Now the cut goes against the fleet that hosted them (with one fleet too: it went
    against no one, the vehicles being no actors)."""
    sim, _agent, ack = _open_tick_with_members(tmp_path)
    members = sorted({testbed_pb2.Envelope.FromString(e).sender_id for e in ack.envelopes})
    del ack.envelopes[:]
    for vid in members:
        for seq in range(1001, 1001 + MAX_TX_PER_TICK):
            env = testbed_pb2.Envelope.FromString(_padded_bsm(vid, seq, MAX_TX_BYTES - 100))
            env.tick, env.tx_time_us = 1, 100_000
            ack.envelopes.append(env.SerializeToString())
    assert len(members) * MAX_TX_PER_TICK * MAX_TX_BYTES > 2 * MAX_INPUT_BYTES
    sim.receive_fleet("fleet-0", ack.SerializeToString())
    sim.step()
    bg = sim.background
    assert isinstance(bg, Background)
    for vid in members:  # they leave the road (their deliveries are still to come), a newcomer takes a slot
        bg._remove(bg.id_of_row.index(vid))
    sim.world.add("newcomer", ActorKind.CAR, 4.5, 1.8)
    inputs = sim.begin(2)
    assert max(len(p) for p in inputs.values()) <= MAX_INPUT_BYTES
    stats = sim.inbound.stats
    assert stats.rejected["input_overflow"] > 0
    assert dict(stats.rejected_by_actor) == {"fleet-0": {"input_overflow": stats.rejected["input_overflow"]}}
