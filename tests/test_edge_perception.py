"""The edge platform fuses roadside perception (RSM over the backhaul) with BSMs: association, warnings
about unequipped road users, and the icw-perception scenario end to end."""

from __future__ import annotations

import math

import pytest

from tests._agents import tick_ctx
from tests._mosquitto import Mosquitto
from v2x.agents.base import Heard
from v2x.agents.platform import EdgePlatform, associate
from v2x.agents.roadside import RoadsideUnit
from v2x.agents.vehicle import VehicleAgent
from v2x.apps.host import Participant
from v2x.run.runner import build_agents, environment, run_scenario
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.wire import testbed_pb2
from v2x.wire.envelope import participant_key, temporary_id
from v2x.wire.rsm import PerceivedObject, encode_rsm

SCENARIO = SCENARIO_DIR / "icw-perception.yaml"


def _p(key: str, x: float, y: float, vx: float, vy: float, sigma: float = 0.1) -> Participant:
    return Participant(key, x, y, vx, vy, 0.0, math.atan2(vy, vx) if vx or vy else 0.0, 4.8, 1.8, sigma)


def test_association_drops_the_perceived_copy_of_a_bsm_sender_only() -> None:
    bsm = [_p("a", 0.0, 0.0, 10.0, 0.0)]
    perceived = [
        _p("r/1", 1.5, 1.0, 9.5, 0.5),  # the same car: 1.8 m away (within the 3 m floor), same heading
        _p("r/2", 0.5, 0.5, 0.0, 10.0),  # as close, but crossing (90 degrees): another road user
        _p("r/3", 20.0, 0.0, 10.0, 0.0),  # same heading, 20 m ahead
        _p("r/4", 0.0, 2.0, 0.0, 0.0),  # standing: no heading test, close: the same road user
        _p("r/5", 5.0, 0.0, 10.0, 0.0, sigma=0.5),  # 5 m off: beyond max(3 m, 3 x 0.51 m)
        _p("r/6", 5.0, 0.0, 10.0, 0.0, sigma=2.0),  # 5 m off with 2 m sigma: within 3 x 2.0 m
    ]
    assert [p.key for p in associate(bsm, perceived)] == ["r/2", "r/3", "r/5"]
    assert associate([], perceived) == perceived


def _agents() -> tuple[EdgePlatform, RoadsideUnit, VehicleAgent]:
    sc = load_scenario(SCENARIO)
    agents = {a.actor_id: a for a in build_agents(sc, environment(sc))}
    edge, rsu, car_a = agents["edge"], agents["rsu_x1"], agents["car_a"]
    assert isinstance(edge, EdgePlatform) and isinstance(rsu, RoadsideUnit) and isinstance(car_a, VehicleAgent)
    return edge, rsu, car_a


def test_edge_warns_the_equipped_car_about_a_road_user_only_the_rsu_sees() -> None:
    """Car A's BSM over Uu, and an RSM (over the backhaul) with car A itself and car B on a crossing course
    to the same point: the edge warns car A about car B, named by its RSM participant key, and nothing
    about car A's own perceived copy; car B cannot be warned."""
    edge, rsu, car_a = _agents()
    t = 3.5  # both 4.5 s from the crossing point: inside the ICW time (5 s)
    car_a.step(tick_ctx(0))
    # as the scenario is built, both centres reach the crossing point (1.75, -1.75) at t = 8 s
    copy_a = PerceivedObject(11, "car", "radar", t, 1.75 - 13.89 * (8.0 - t), -1.75, 13.89, 0.0, 4.8, 1.8, 0.3)
    car_b = PerceivedObject(12, "car", "radar", t, 1.75, -1.75 - 13.89 * (8.0 - t), 13.89, math.pi / 2, 4.8, 1.8, 0.3)
    rsm = encode_rsm([copy_a, car_b], actor_id="rsu_x1", ref_x=rsu.x, ref_y=rsu.y, frame=edge.env.frame,
                     epoch=edge.env.epoch, msg_count=0)  # fmt: skip
    # the BSM as if sent at t: move car A on by re-stepping it to time t
    for k in range(1, round(t / 0.1) + 1):
        out = car_a.step(tick_ctx(k))
    bsm = out.transmissions[0].frame
    heard = (
        Heard("car_a", testbed_pb2.LINK_UU, t, t, bsm),
        Heard("rsu_x1", testbed_pb2.LINK_WIRED, t, t, rsm),
    )
    result = edge.step(tick_ctx(round(t * 10), heard))
    advice = [tx.frame.advisory for tx in result.transmissions if tx.frame.WhichOneof("msg") == "advisory"]
    assert [(a.target_id, a.other_id, a.app) for a in advice] == [
        ("car_a", participant_key(temporary_id("rsu_x1"), 12), testbed_pb2.APP_ICW)
    ]
    assert advice[0].ttc_s == pytest.approx(8.0 - t, abs=0.1)  # car A's time to the conflict point
    # without the RSM the edge knows only car A: nothing to warn about
    edge2, _, _ = _agents()
    quiet = edge2.step(tick_ctx(round(t * 10), heard[:1]))
    assert not [tx for tx in quiet.transmissions if tx.frame.WhichOneof("msg") == "advisory"]


def test_rsu_sends_its_rsm_to_the_edge_over_the_backhaul() -> None:
    _, rsu, _ = _agents()
    det = testbed_pb2.Detection(
        object_id=5, sensor="rsu_x1/0", sensor_kind=testbed_pb2.SENSOR_RADAR, object_kind="car", time_us=1_000_000,
        x_m=1.75, y_m=-60.0, vx_mps=0.0, vy_mps=13.89, heading_deg=0.0, length_m=4.8, width_m=1.8, sigma_m=0.3,
        speed_sigma_mps=0.1,
    )  # fmt: skip
    ctx = tick_ctx(10, detections=(det,))
    txs = [tx for tx in rsu.step(ctx).transmissions if tx.frame.WhichOneof("msg") == "rsm"]
    assert sorted((tx.link, tx.dest_ids) for tx in txs) == [
        (testbed_pb2.LINK_PC5, ()),
        (testbed_pb2.LINK_WIRED, ("edge",)),
    ]
    assert txs[0].frame is txs[1].frame


async def test_scenario_on_mosquitto_and_without_the_radars_nobody_is_warned(
    mosquitto: Mosquitto, tmp_path: pytest.TempPathFactory
) -> None:
    """The shipped scenario passes on Mosquitto; with the RSU's sensors removed the same run warns nobody
    and car A hits car B even with V2X (the warning came from the roadside perception alone)."""
    sc = load_scenario(SCENARIO)
    result = await run_scenario(sc, seed=0, broker=mosquitto.address.url)
    assert result["passed"], [e for e in result["expectations"] if not e["passed"]]
    rsu = next(a for a in sc.actors if a.id == "rsu_x1")
    blind = sc.model_copy(
        update={"actors": [a.model_copy(update={"sensors": []}) if a is rsu else a for a in sc.actors]}
    )
    result = await run_scenario(blind, seed=0, broker=mosquitto.address.url, variants=["v2x"])
    events = result["events"]
    assert not [e for e in events if e["type"] == "warning"]
    assert [e["actors"] for e in events if e["type"] == "collision"] == [["car_a", "car_b"]]
