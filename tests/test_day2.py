"""The Day-2 messages (T/CSAE 157-2020): SSM, PSM, VIR, RSC, CLPMM on the wire - SI in, the standard's
units out, back within the wire quanta; values outside the ranges rejected (ValueError, counted by the
receiver as out_of_range); the frame and the inbound id checks know them."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from tests._agents import tick_ctx
from v2x.agents.base import Heard
from v2x.agents.vehicle import VehicleAgent
from v2x.apps.registry import MESSAGES
from v2x.geodesy import LocalFrame
from v2x.run.runner import build_agents, environment
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.sim.inbound import SIGNED_IDS
from v2x.wire import day1_pb2, day2_pb2, frame_pb2, testbed_pb2
from v2x.wire.day2 import (
    DRIVE_BEHAVIOR,
    Coordination,
    Intention,
    PersonalState,
    PlannedPoint,
    PlatoonInfo,
    VehicleRequest,
    behaviors_from_wire,
    behaviors_to_wire,
    decode_clpmm,
    decode_psm,
    decode_rsc,
    decode_ssm,
    decode_vir,
    encode_clpmm,
    encode_psm,
    encode_rsc,
    encode_ssm,
    encode_vir,
)
from v2x.wire.envelope import participant_key, temporary_id
from v2x.wire.rsm import PerceivedObject

FRAME = LocalFrame(29.5630, 106.5500, 240.0)
EPOCH = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
Q = 0.02  # a 1e-7 degree offset is ~1 cm; two of them and the elevation-free plane: 2 cm


def _car(x: float = -30.0) -> PerceivedObject:
    return PerceivedObject(12, "car", "radar", 4.0, x, -1.75, 8.33, 0.0, 5.0, 2.0, 0.5, 0.1)


def test_frame_field_numbers_are_the_ext_message_ids() -> None:
    fields = frame_pb2.MessageFrame.DESCRIPTOR.fields_by_name
    assert {n: fields[n].number for n in ("rsc", "ssm", "vir", "psm", "clpmm")} == {
        "rsc": 11,
        "ssm": 12,
        "vir": 13,
        "psm": 15,
        "clpmm": 16,
    }
    assert set(SIGNED_IDS) >= {"ssm", "psm", "vir", "rsc", "clpmm"}
    assert set(MESSAGES) >= {"ssm", "psm", "vir", "rsc", "clpmm"}


def test_ssm_carries_participants_as_offsets_from_the_sensor_with_confidences() -> None:
    f = encode_ssm(
        [_car()],
        actor_id="rsu1",
        equipment="rsu",
        sensor_x=9.0,
        sensor_y=9.0,
        t_s=4.0,
        frame=FRAME,
        epoch=EPOCH,
        msg_count=130,
        regions=[[(0.0, 0.0), (-100.0, -20.0), (-100.0, 20.0)]],
    )
    ssm = f.ssm
    assert ssm.msg_cnt == 2 and ssm.id == temporary_id("rsu1") and ssm.equipment_type == day2_pb2.EQUIPMENT_RSU
    assert ssm.sec_mark == 4000
    d = ssm.participants[0]
    assert d.ptc.ptc_id == 12 and d.ptc.ptc_type == day1_pb2.PARTICIPANT_MOTOR
    assert d.ptc.source == day1_pb2.SOURCE_MICROWAVE_RADAR and d.ptc.speed == round(8.33 / 0.02)
    assert d.ptc.pos_confidence.pos == 8  # 2.448 x 0.5 m = 1.22 m -> the a2m bound (code 8)
    assert d.speed_confidence == 4  # 2.448 x 0.1 m/s = 0.24 m/s -> the 1 m/s bound
    assert d.heading_confidence == 0 and d.type_confidence == 200

    share = decode_ssm(ssm, now_s=4.1, frame=FRAME, epoch=EPOCH)
    assert share.equipment == "rsu" and share.t_s == pytest.approx(4.0)
    assert share.sensor_x == pytest.approx(9.0, abs=Q) and share.sensor_y == pytest.approx(9.0, abs=Q)
    (p,) = share.participants
    assert p.key == participant_key(temporary_id("rsu1"), 12)
    assert p.x == pytest.approx(-30.0, abs=Q) and p.y == pytest.approx(-1.75, abs=Q)
    assert p.speed_mps == pytest.approx(8.33, abs=0.01) and p.heading_rad == pytest.approx(0.0, abs=1e-3)
    assert p.sigma_major_m == pytest.approx(2.0 / 2.448)
    assert len(share.regions) == 1 and share.regions[0][1] == pytest.approx((-100.0, -20.0), abs=Q)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("equipment_type", 9),
        ("participants.ptc.ptc_type", 7),
        ("participants.ptc.source", 9),
        ("participants.speed_confidence", 8),
        ("participants.type_confidence", 201),
        ("participants.ptc.pos_confidence.pos", 16),
        ("id", b"short"),
    ],
)
def test_ssm_out_of_range_raises(field: str, value: object) -> None:
    ssm = encode_ssm(
        [_car()],
        actor_id="rsu1",
        equipment="rsu",
        sensor_x=0,
        sensor_y=0,
        t_s=1.0,
        frame=FRAME,
        epoch=EPOCH,
        msg_count=0,
    ).ssm
    *path, last = field.split(".")
    target: object = ssm
    for name in path:
        target = getattr(target, name)
        if name == "participants":
            target = target[0]  # type: ignore[index]
    setattr(target, last, value)
    with pytest.raises(ValueError):
        decode_ssm(ssm, now_s=1.0, frame=FRAME, epoch=EPOCH)


def test_ssm_refuses_an_unavailable_sensor_position_and_too_many_obstacles() -> None:
    ssm = encode_ssm(
        [_car()],
        actor_id="rsu1",
        equipment="rsu",
        sensor_x=0,
        sensor_y=0,
        t_s=1.0,
        frame=FRAME,
        epoch=EPOCH,
        msg_count=0,
    ).ssm
    bad = day2_pb2.SSM()
    bad.CopyFrom(ssm)
    bad.sensor_pos.lat = 900000001
    with pytest.raises(ValueError, match="unavailable"):
        decode_ssm(bad, now_s=1.0, frame=FRAME, epoch=EPOCH)
    bad.CopyFrom(ssm)
    for _ in range(65):
        bad.obstacles.add()
    with pytest.raises(ValueError, match="obstacles"):
        decode_ssm(bad, now_s=1.0, frame=FRAME, epoch=EPOCH)


def test_psm_round_trip_and_the_user_type() -> None:
    own = PersonalState("cyclist", 0.0, -20.0, 5.0, math.pi / 2, 0.0, 0.9, 2.0, 2.0)
    psm = encode_psm(own, actor_id="cyclist", t_s=2.0, msg_count=5, frame=FRAME, epoch=EPOCH).psm
    assert psm.user_type == day2_pb2.PERSONAL_PEDALCYCLIST and psm.overall_radius == 9
    assert psm.accuracy.semi_major == 40 and psm.heading == 0  # north
    remote = decode_psm(psm, now_s=2.05, frame=FRAME, epoch=EPOCH)
    assert remote is not None and remote.temp_id == temporary_id("cyclist") and remote.ptc_id is None
    assert remote.ptc_type == day1_pb2.PARTICIPANT_NON_MOTOR and remote.kind_class == 85
    assert remote.x == pytest.approx(0.0, abs=Q) and remote.y == pytest.approx(-20.0, abs=Q)
    assert remote.length_m == remote.width_m == pytest.approx(1.8) and remote.sigma_major_m == pytest.approx(2.0)
    psm.speed = 8191
    assert decode_psm(psm, now_s=2.05, frame=FRAME, epoch=EPOCH) is None  # no speed: not usable
    for field, value in (("user_type", 5), ("overall_radius", 201), ("speed", 8192)):
        bad = encode_psm(own, actor_id="cyclist", t_s=2.0, msg_count=5, frame=FRAME, epoch=EPOCH).psm
        setattr(bad, field, value)
        with pytest.raises(ValueError):
            decode_psm(bad, now_s=2.0, frame=FRAME, epoch=EPOCH)


def test_vir_round_trip_and_ranges() -> None:
    intention = Intention(
        temporary_id("car_a"),
        0.0,
        10.0,
        -1.75,
        frozenset({"lane_change_left"}),
        (PlannedPoint(40.0, 1.75, 3.0, 11.0, 90.0),),
        (
            VehicleRequest(
                7, "lane_change", priority=2, target_vehicle=temporary_id("car_b"), target_lane=2, life_time_s=5
            ),
        ),
    )
    vir = encode_vir(intention, t_s=3.0, msg_count=0, frame=FRAME, epoch=EPOCH).vir
    assert vir.current_behavior == 0b10 and vir.requests[0].life_time == 500
    back = decode_vir(vir, now_s=3.0, frame=FRAME, epoch=EPOCH)
    assert back.behaviors == {"lane_change_left"} and back.requests == intention.requests
    assert back.path[0].x == pytest.approx(40.0, abs=Q) and back.path[0].after_s == pytest.approx(3.0)
    for field, value in (("type", 9), ("req_priority", 8), ("target_vehicle", b"xyz")):
        bad = encode_vir(intention, t_s=3.0, msg_count=0, frame=FRAME, epoch=EPOCH).vir
        setattr(bad.requests[0], field, value)
        with pytest.raises(ValueError):
            decode_vir(bad, now_s=3.0, frame=FRAME, epoch=EPOCH)
    vir.current_behavior = 1 << len(DRIVE_BEHAVIOR)
    with pytest.raises(ValueError):
        decode_vir(vir, now_s=3.0, frame=FRAME, epoch=EPOCH)


def test_rsc_round_trip() -> None:
    c = Coordination(temporary_id("car_a"), frozenset({"slow_down"}), 4.0, (), (0.5, 3.0), 8.0, 1, 7)
    rsc = encode_rsc([c], actor_id="rsu1", ref_x=0, ref_y=0, t_s=1.0, msg_count=0, frame=FRAME, epoch=EPOCH).rsc
    sender, items = decode_rsc(rsc, frame=FRAME)
    assert sender == temporary_id("rsu1") and items == (c,)
    rsc.coordinates[0].recommended_speed = 9000
    with pytest.raises(ValueError):
        decode_rsc(rsc, frame=FRAME)


def test_clpmm_round_trip_and_member_order() -> None:
    info = PlatoonInfo(
        temporary_id("truck1"),
        b"platoon1",
        "leader",
        "keeping",
        None,
        None,
        22.0,
        ((temporary_id("truck1"), "leader"), (temporary_id("truck2"), "follower"), (temporary_id("truck3"), "tail")),
    )
    msg = encode_clpmm(info, t_s=1.0, msg_count=0, epoch=EPOCH).clpmm
    assert decode_clpmm(msg) == info
    follower = PlatoonInfo(temporary_id("truck2"), b"platoon1", "follower", "keeping", 0.8, 17.6)
    back = decode_clpmm(encode_clpmm(follower, t_s=1.0, msg_count=0, epoch=EPOCH).clpmm)
    assert back.gap_s == pytest.approx(0.8) and back.gap_m == pytest.approx(17.6)
    msg.members[1].position = 3
    with pytest.raises(ValueError, match="position"):
        decode_clpmm(msg)


def test_drive_behaviour_bits() -> None:
    assert behaviors_to_wire(["straight", "parking"]) == 1 | 1 << 13
    assert behaviors_from_wire(1 << 10) == {"stop"}


def test_a_vehicle_counts_an_out_of_range_day2_message_and_keeps_going() -> None:
    sc = load_scenario(SCENARIO_DIR / "sds.yaml")
    car = next(a for a in build_agents(sc, environment(sc)) if isinstance(a, VehicleAgent) and a.actor_id == "car_a")
    intention = Intention(temporary_id("car_b"), 0.0, 0.0, 0.0, frozenset(), (), (VehicleRequest(1, "parking"),))
    vir = encode_vir(intention, t_s=0.0, msg_count=0, frame=car.env.frame, epoch=car.env.epoch)
    vir.vir.requests[0].req_priority = 99
    psm = encode_psm(
        PersonalState("pedestrian", 0.0, 0.0, 1.0, 0.0, 0.0, 0.3, 1.0, 1.0),
        actor_id="p",
        t_s=0.0,
        msg_count=0,
        frame=car.env.frame,
        epoch=car.env.epoch,
    )
    heard = (Heard("car_b", testbed_pb2.LINK_PC5, 0.0, 0.0, vir), Heard("p", testbed_pb2.LINK_PC5, 0.0, 0.0, psm))
    result = car.step(tick_ctx(0, heard))
    assert car.rejected["out_of_range"] == 1 and result.truth is not None
    assert list(car.personal) == [temporary_id("p")]


def test_the_world_rejects_a_day2_message_whose_id_is_not_its_senders() -> None:
    from tests._agents import offline_sim

    sc = load_scenario(SCENARIO_DIR / "vru-psm.yaml")
    sim = offline_sim(sc)
    for actor in sc.actors:
        sim.receive(
            "join",
            actor.id,
            testbed_pb2.Hello(actor_id=actor.id, kind=actor.kind, protocol_version=1).SerializeToString(),
        )
    sim.begin(0)
    own = PersonalState("cyclist", 0.0, -20.0, 5.0, math.pi / 2, 0.0, 0.9, 2.0, 2.0)
    for seq, claimed in ((1, "cyclist"), (2, "walker")):
        frame = encode_psm(own, actor_id=claimed, t_s=0.0, msg_count=0, frame=FRAME, epoch=EPOCH)
        env = testbed_pb2.Envelope(
            sender_id="cyclist",
            seq=seq,
            tick=0,
            tx_time_us=0,
            link=testbed_pb2.LINK_PC5,
            frame=frame.SerializeToString(),
        )
        sim.receive("tx", "cyclist", env.SerializeToString())
    assert sim.inbound.stats.rejected == {"id_mismatch": 1}
    assert [r.msg for r in sim.inbound.received.values()] == ["psm"]
