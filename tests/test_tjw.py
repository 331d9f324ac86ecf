"""TJW without a broker: the RSU's queue detection (hand-computed cases), the congestion event it announces
in RSI, following the tail and withdrawing the event, the on-board app's cases (the tunnel's positioning
gate among them), the scenario file's ``congestion`` field and the world naming the event; the shipped
scenario end to end on the loopback bus (seeds 1..3; seed 0 against its golden record in test_e2e.py) at the
end."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests._agents import offline_sim, tick_ctx
from v2x.agents.base import Heard
from v2x.agents.roadside import RoadsideUnit
from v2x.agents.vehicle import VehicleAgent
from v2x.apps.hlw import hazardous_location_warnings
from v2x.apps.host import Host, Participant
from v2x.apps.thresholds import DEFAULTS
from v2x.apps.tjw import Queue, detect_queue, queue_event, traffic_jam_warnings
from v2x.run.runner import build_agents, environment, run_scenario
from v2x.scenario import ScenarioError, load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.units import R95_PER_SIGMA, enu_yaw_rad_to_compass_deg
from v2x.wire import testbed_pb2
from v2x.wire.bsm import OwnState, encode_bsm
from v2x.wire.envelope import temporary_id
from v2x.wire.rsi import RTE_TRAFFIC_CONGESTION, ReferencePath, RoadEvent, road_event_key

TJW = SCENARIO_DIR / "tjw.yaml"
# A straight eastbound lane along y = 0, half-width 1.75 m, from x = -600.
EAST = ReferencePath(((-600.0, 0.0), (2000.0, 0.0)), 1.75)


def _car(
    key: str, x: float, y: float = 0.0, v: float = 0.0, heading_deg: float = 0.0, sigma: float = 0.02
) -> Participant:
    h = math.radians(heading_deg)
    return Participant(key, x, y, v * math.cos(h), v * math.sin(h), 0.0, h, 5.0, 2.0, sigma)


def _queue(n: int, x0: float = 200.0, pitch: float = 7.5, v: float = 1.0) -> list[Participant]:
    return [_car(f"c{k:02d}", x0 + pitch * k, v=v) for k in range(n)]


# -- the RSU's detection: hand-computed cases -----------------------------------------------------------
def test_ten_slow_vehicles_in_the_lane_make_a_queue_with_its_tail_and_head() -> None:
    q = detect_queue(_queue(10), EAST, DEFAULTS)
    assert q is not None
    # arc lengths from x = -600: the last car's centre at 800, its rear bumper 2.5 m behind; head 800 + 67.5 + 2.5
    assert (q.tail_s, q.head_s, q.length_m) == pytest.approx((797.5, 870.0, 72.5))
    assert q.members == tuple(f"c{k:02d}" for k in range(10)) and q.mean_speed_mps == pytest.approx(1.0)
    assert detect_queue(_queue(9), EAST, DEFAULTS) is None  # cerebrum: at least 10 vehicles


def test_only_slow_vehicles_on_the_lane_heading_its_way_and_well_placed_count() -> None:
    nine = _queue(9)
    assert detect_queue([*nine, _car("fast", 267.5, v=8.34)], EAST, DEFAULTS) is None  # 30.02 km/h: not slow
    assert detect_queue([*nine, _car("slow", 267.5, v=8.33)], EAST, DEFAULTS) is not None  # 29.99 km/h
    assert detect_queue([*nine, _car("wrong", 267.5, heading_deg=180.0)], EAST, DEFAULTS) is None
    assert detect_queue([*nine, _car("next", 267.5, y=-3.5)], EAST, DEFAULTS) is None  # the next lane
    assert detect_queue([*nine, _car("edge", 267.5, y=-2.25)], EAST, DEFAULTS) is not None  # 1.75 + 0.5 m
    # a BSM whose 95 % error exceeds 5 m cannot be placed in a lane
    assert detect_queue([*nine, _car("poor", 267.5, sigma=2.1)], EAST, DEFAULTS) is None
    assert detect_queue([*nine, _car("ok", 267.5, sigma=2.0)], EAST, DEFAULTS) is not None


def test_a_gap_wider_than_30_m_splits_queues_and_the_one_farthest_upstream_counts() -> None:
    head = _queue(10, x0=400.0)
    assert detect_queue([*_queue(9), *head], EAST, DEFAULTS).tail_s == pytest.approx(997.5)  # type: ignore[union-attr]
    # 30 m between centres joins the short run (x = 310..370) to the queue: its tail moves to 907.5
    joined = _queue(9, x0=400.0 - 30.0 - 8 * 7.5)
    assert detect_queue([*joined, *head], EAST, DEFAULTS).tail_s == pytest.approx(907.5)  # type: ignore[union-attr]
    wide = _queue(9, x0=400.0 - 30.1 - 8 * 7.5)
    assert detect_queue([*wide, *head], EAST, DEFAULTS).members == tuple(p.key for p in head)  # type: ignore[union-attr]
    up = _queue(10, x0=0.0)
    assert detect_queue([*head, *up], EAST, DEFAULTS).tail_s == pytest.approx(597.5)  # type: ignore[union-attr]


def _flat(points: tuple[tuple[float, float], ...]) -> list[float]:
    return [c for p in points for c in p]


def test_the_event_sits_at_the_tail_with_the_lane_from_300_m_before_it_to_the_head() -> None:
    q = detect_queue(_queue(10), EAST, DEFAULTS)
    assert q is not None
    ev = queue_event(q, EAST, rte_id=3, since_s=4.0, priority=5, thresholds=DEFAULTS)
    assert (ev.rte_id, ev.event_type, ev.x, ev.y, ev.radius_m) == (3, RTE_TRAFFIC_CONGESTION, 197.5, 0.0, 0.0)
    assert (ev.start_s, ev.end_s, ev.priority, ev.type_name) == (4.0, None, 5, "traffic congestion (707)")
    [path] = ev.paths
    assert _flat(path.points) == pytest.approx([-102.5, 0.0, 270.0, 0.0]) and path.radius_m == 1.75
    # near the lane's start the path starts with the lane; a bent lane keeps its corners in between
    bent = ReferencePath(((0.0, 0.0), (100.0, 0.0), (100.0, 500.0)), 1.75)
    near = queue_event(Queue(297.5, 470.0, ("a",), 0.0), bent, rte_id=1, since_s=0.0, priority=0, thresholds=DEFAULTS)
    assert _flat(near.paths[0].points) == pytest.approx([0.0, 0.0, 100.0, 0.0, 100.0, 370.0])
    assert (near.x, near.y) == pytest.approx((100.0, 197.5))


# -- the on-board app ---------------------------------------------------------------------------------
# The tail at x = 100 on the eastbound lane; the path runs from x = -200 to the head at x = 175.
JAM = RoadEvent(1, RTE_TRAFFIC_CONGESTION, 100.0, 0.0, 0.0, (ReferencePath(((-200.0, 0.0), (175.0, 0.0)), 1.75),))


def _host(
    x: float, y: float = 0.0, heading_deg: float = 0.0, v: float = 22.0, a: float = 0.0, sigma: float = 0.02
) -> Host:
    return Host(x, y, math.radians(heading_deg), v, a, 5.0, sigma)


def _warn(host: Host, event: RoadEvent = JAM) -> list[tuple[float, float]]:
    return [(w.distance_m, w.time_to_tail_s) for w in traffic_jam_warnings(host, {"k": event}, 5.0, DEFAULTS)]


def test_warns_within_the_warning_time_and_range() -> None:
    assert _warn(_host(0.0)) == [pytest.approx((97.5, 97.5 / 22.0))]
    assert _warn(_host(-30.0)) == [pytest.approx((127.5, 127.5 / 22.0))]  # 5.8 s
    assert _warn(_host(-40.0)) == []  # 137.5 m: 6.25 s > 6 s
    assert _warn(_host(-60.0, v=40.0)) == []  # 157.5 m > 150 m, although 3.9 s
    assert _warn(_host(0.0, a=-4.0)) == []  # stops in 60.5 m, short of the tail
    assert _warn(_host(0.0, v=0.0)) == []  # standing


def test_silent_in_or_past_the_queue_in_the_other_direction_or_off_the_path() -> None:
    assert _warn(_host(97.0)) == [pytest.approx((0.5, 0.5 / 22.0))]
    assert _warn(_host(110.0, v=1.0)) == []  # in the queue: past its tail
    assert _warn(_host(300.0)) == []  # beyond the head, off the path
    assert _warn(_host(150.0, heading_deg=180.0)) == []  # the other way
    assert _warn(_host(0.0, y=30.0, heading_deg=180.0)) == []  # the other tube
    assert _warn(_host(0.0, y=-3.5)) == []  # the next lane: its own event
    hazard = RoadEvent(1, 408, 100.0, 0.0, 0.0, JAM.paths)
    assert _warn(_host(0.0), hazard) == []  # not a congestion event: HLW's
    assert hazardous_location_warnings(_host(0.0), {"k": JAM}, 5.0, DEFAULTS) == []  # and HLW leaves 707 to TJW


def test_the_tunnel_gate_dead_reckoning_keeps_5_m_for_about_115_m() -> None:
    # docs/IMPAIRMENTS.md: reported sigma = sqrt(s0^2 + (0.025 d / sqrt 2)^2) after d metres in a tunnel
    def sigma_after(d: float) -> float:
        return math.hypot(0.01275, 0.025 * d / math.sqrt(2))

    assert R95_PER_SIGMA * sigma_after(115.0) <= 5.0 < R95_PER_SIGMA * sigma_after(116.0)
    assert _warn(_host(0.0, sigma=sigma_after(115.0))) != []
    assert _warn(_host(0.0, sigma=sigma_after(116.0))) == []
    assert _warn(_host(0.0, sigma=math.inf)) == []


# -- the roadside unit --------------------------------------------------------------------------------
def _rsu() -> RoadsideUnit:
    sc = load_scenario(TJW)
    return next(a for a in build_agents(sc, environment(sc)) if isinstance(a, RoadsideUnit))


def _bsm(rsu: RoadsideUnit, name: str, x: float, y: float, v: float, t: float) -> Heard:
    own = OwnState(x, y, v, 0.0, 0.0, 5.0, 2.0, 1.6, "car", 0.02, 0.02, False)
    env = rsu.env
    frame = encode_bsm(own, actor_id=name, t_s=t, msg_count=0, frame=env.frame, epoch=env.epoch)
    return Heard(name, testbed_pb2.LINK_PC5, t + 0.002, t, frame)


def _radar(object_id: int, x: float, y: float, v: float, t: float) -> testbed_pb2.Detection:
    return testbed_pb2.Detection(
        object_id=object_id,
        sensor="rsu_tunnel/0",
        sensor_kind=testbed_pb2.SENSOR_RADAR,
        object_kind="car",
        time_us=round(t * 1e6),
        x_m=x,
        y_m=y,
        vx_mps=v,
        heading_deg=enu_yaw_rad_to_compass_deg(0.0),
        length_m=5.0,
        width_m=2.0,
        sigma_m=0.5,
        speed_sigma_mps=0.1,
    )


def _jam_events(rsu: RoadsideUnit, tick: int, v: float, x0: float = 150.0) -> list[RoadEvent]:
    """One tick of the RSU with 11 cars in lane eb1 (y = -1.75) from ``x0``: odd ones heard by BSM, even
    ones seen by the radar only (ids 1..11); the events of the RSI it sends, decoded."""
    t = round(tick * 0.1, 9)
    xs = [x0 + 7.5 * k for k in range(11)]
    heard = tuple(_bsm(rsu, f"eb1_q{k:02d}", x, -1.75, v, t) for k, x in enumerate(xs) if k % 2)
    seen = tuple(_radar(k + 1, x, -1.75, v, t) for k, x in enumerate(xs) if not k % 2)
    res = rsu.step(tick_ctx(tick, heard, detections=seen))
    out = []
    for tx in res.transmissions:
        if tx.frame.WhichOneof("msg") == "rsi":
            out += list(rsu.env.rsi(Heard("rsu_tunnel", tx.link, t, t, tx.frame), t).events)
    return out


def test_the_rsu_announces_the_queue_follows_its_tail_once_a_second_and_withdraws_it() -> None:
    rsu = _rsu()
    assert [(w.id, rte) for w, _, rte in rsu.watches] == [("jam_eb1", 1), ("jam_eb2", 2)]
    [ev] = _jam_events(rsu, 0, 1.0)  # BSMs alone are 5 cars; with the radar's 6 there are 11
    assert (ev.rte_id, ev.event_type) == (1, RTE_TRAFFIC_CONGESTION)
    assert (ev.x, ev.y) == pytest.approx((147.5, -1.75), abs=0.05)  # the radar-only tail car's rear bumper
    assert ev.paths[0].points[-1] == pytest.approx((227.5, -1.75), abs=0.05)  # the head
    assert ev.start_s == pytest.approx(0.0)  # whole minutes on the wire
    for tick in range(1, 10):  # the tail moves 5 m; the RSU does not look again before t = 1.0 s
        [ev] = _jam_events(rsu, tick, 1.0, x0=155.0)
        assert ev.x == pytest.approx(147.5, abs=0.05)
    [ev] = _jam_events(rsu, 10, 1.0, x0=155.0)
    assert ev.x == pytest.approx(152.5, abs=0.05) and ev.start_s == pytest.approx(0.0)
    for tick in range(11, 20):
        assert len(_jam_events(rsu, tick, 9.0, x0=160.0)) == 1  # the jam clears: 32 km/h
    assert _jam_events(rsu, 20, 9.0, x0=160.0) == []  # withdrawn at the next look


def test_without_its_radar_the_rsu_knows_too_few_cars() -> None:
    rsu = _rsu()
    for tick in range(12):
        t = round(tick * 0.1, 9)
        heard = tuple(_bsm(rsu, f"eb1_q{k:02d}", 150.0 + 7.5 * k, -1.75, 1.0, t) for k in range(1, 11, 2))
        res = rsu.step(tick_ctx(tick, heard))
        assert not [tx for tx in res.transmissions if tx.frame.WhichOneof("msg") == "rsi"]
    assert len(rsu.bsm_senders) == 5 and rsu.queue_events == {}


def test_the_world_names_the_warning_after_the_congestion_watch() -> None:
    sim = offline_sim(load_scenario(TJW))
    rsu = temporary_id("rsu_tunnel")
    assert sim.names.resolve(road_event_key(rsu, 1)) == "jam_eb1"
    assert sim.names.resolve(road_event_key(rsu, 2)) == "jam_eb2"


def test_the_vehicle_raises_tjw_and_the_driver_brakes() -> None:
    sc = load_scenario(TJW)
    car = next(a for a in build_agents(sc, environment(sc)) if isinstance(a, VehicleAgent) and a.actor_id == "car_a")
    rsu = _rsu()
    jam = RoadEvent(
        1, RTE_TRAFFIC_CONGESTION, 147.5, -1.75, 0.0, (ReferencePath(((-152.5, -1.75), (227.5, -1.75)), 1.75),)
    )
    rsu.road_events = [jam]  # announce it from the start
    raised = []
    for tick in range(130):
        rsi = [tx.frame for tx in rsu.step(tick_ctx(tick)).transmissions if tx.frame.WhichOneof("msg") == "rsi"]
        heard = tuple(Heard("rsu_tunnel", testbed_pb2.LINK_PC5, tick * 0.1, tick * 0.1, f) for f in rsi)
        raised += car.step(tick_ctx(tick, heard)).events
    # front bumper at -247.5 + 22.22 t; 133.3 m (6 s) before x = 147.5 at t = 11.8 s
    [adv] = raised
    assert adv.app == testbed_pb2.APP_TJW and adv.figure_name == "queue_m" and adv.raised_at_s == pytest.approx(11.8)
    assert adv.conflict_type == "traffic congestion (707)" and adv.ttc_s <= 6.0
    assert car.driver is not None and car.driver.cause == "tjw" and car.driver.brake_at_s == pytest.approx(12.8)


# -- scenario files -------------------------------------------------------------------------------------
def _problems(tmp_path: Path, old: str, new: str) -> dict[str, str]:
    text = TJW.read_text()
    assert old in text
    path = tmp_path / "tjw-variant.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return dict(info.value.problems)


def test_congestion_watches_are_checked(tmp_path: Path) -> None:
    where = "actors[2].congestion"
    assert "'eb3'" in _problems(tmp_path, "{id: jam_eb1, lane: eb1}", "{id: jam_eb1, lane: eb3}")[f"{where}[0].lane"]
    assert "twice" in _problems(tmp_path, "{id: jam_eb2, lane: eb2}", "{id: jam_eb1, lane: eb2}")[f"{where}[1].id"]
    assert "actor" in _problems(tmp_path, "{id: jam_eb1, lane: eb1}", "{id: car_a, lane: eb1}")[f"{where}[0].id"]
    moved = "    congestion:\n      - {id: jam, lane: eb1}\n"
    assert (
        "only an rsu" in _problems(tmp_path, "    apps: [tjw]\n", f"    apps: [tjw]\n{moved}")["actors[0].congestion"]
    )
    events = "".join(f"      - {{id: e{k}, type: 408, position: [100, -1.75], radius_m: 5}}\n" for k in range(7))
    assert (
        "at most 8" in _problems(tmp_path, "    congestion:\n", f"    road_events:\n{events}    congestion:\n")[where]
    )
    other = _problems(tmp_path, "other: jam_eb1", "other: jam")["expectations[0].other"]
    assert "'jam_eb1'" in other


# -- end to end -------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])  # seed 0: its golden record, in test_e2e.py
async def test_the_shipped_scenario_on_the_loopback_bus(seed: int) -> None:
    result = await run_scenario(load_scenario(TJW), seed=seed, broker="loopback")
    assert result["passed"], [e for e in result["expectations"] if not e["passed"]]
    warnings = [(e["variant"], e["target"], e["other"], e["app"]) for e in result["events"] if e["type"] == "warning"]
    assert warnings == [("v2x", "car_a", "jam_eb1", "tjw")]
    collisions = [(e["variant"], e["actors"]) for e in result["events"] if e["type"] == "collision"]
    assert collisions and collisions[0] == ("baseline", ["car_a", "eb1_q00"])
    assert all(variant == "baseline" for variant, _ in collisions)
