"""Background traffic (scenario ``flows``, v2x/sim/background.py): the format's checks, deterministic
arrivals (the same in both variants), a flow's measured rate against the declared one, queueing behind a
stopped story vehicle, what the referee and the roadside sensors see, and the shipped scenario."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from v2x.agents.fleet import FleetAgent
from v2x.cli import main
from v2x.core.traffic import CLASS_PARAMS
from v2x.geodesy import LocalFrame
from v2x.run.runner import environment
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR, ScenarioError
from v2x.scenario.model import Scenario
from v2x.sim.actors import world_state
from v2x.sim.background import KIND, Background, background_capacity
from v2x.sim.simulation import Simulation
from v2x.wire import testbed_pb2

ARTERIAL = SCENARIO_DIR / "arterial.yaml"

BASE = """\
id: flows
name: flows
origin: {lat_deg: 29.5, lon_deg: 106.5}
duration_s: DURATION
tick_s: TICK
road:
  lanes:
    - {id: a, centerline: [[0, 0], [1000, 0]], speed_limit_kph: 60}
    - {id: b, centerline: [[1000, 0], [1500, 0]], speed_limit_kph: 60}
flows:
  - {lane: a, vehicles_per_hour: RATE, speed_kph: {mean: 50, sd: 5}, mix: {car: 0.8, truck: 0.2},
     penetration: 0.25, prefill: PREFILL}
actors:
ACTORS
"""
RSU = "  - {id: rsu1, kind: rsu, position: [500, -10], sensors: [{kind: radar, heading_deg: 270}]}"
BLOCKER = "  - {id: blocker, kind: car, lane: a, start_m: 600, speed_mps: 0}\n" + RSU


def _text(
    *, duration: float = 60, tick: float = 0.1, rate: float = 1800, prefill: bool = False, actors: str = RSU
) -> str:
    return (
        BASE.replace("DURATION", str(duration))
        .replace("TICK", str(tick))
        .replace("RATE", str(rate))
        .replace("PREFILL", "true" if prefill else "false")
        .replace("ACTORS", actors)
    )


def _idm(sim: Simulation) -> Background:
    """The simulation's mover of background traffic: the flows' (not SUMO's)."""
    assert isinstance(sim.background, Background)
    return sim.background


def _scenario(tmp_path: Path, **kw: object) -> Scenario:
    path = tmp_path / "flows.yaml"
    path.write_text(_text(**kw))  # type: ignore[arg-type]
    return load_scenario(path)


def _problems(tmp_path: Path, old: str, new: str) -> dict[str, str]:
    path = tmp_path / "bad.yaml"
    text = _text()
    assert old in text
    path.write_text(text.replace(old, new))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(path) in str(info.value)
    return dict(info.value.problems)


# -- the format ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["nan", ".inf", "1e308", "-5", "0", "true", "'many'"])
def test_a_bad_rate_names_the_field(tmp_path: Path, bad: str) -> None:
    problems = _problems(tmp_path, "vehicles_per_hour: 1800", f"vehicles_per_hour: {bad}")
    assert list(problems) == ["flows[0].vehicles_per_hour"]


@pytest.mark.parametrize(
    ("old", "new", "where", "words"),
    [
        ("lane: a, vehicles", "lane: z, vehicles", "flows[0].lane", "one of the road's lanes"),
        ("truck: 0.2", "truck: 0.3", "flows[0].mix", "sum to 1"),
        ("truck: 0.2", "boat: 0.2", "flows[0].mix.boat", "(the key) Input should be 'car', 'truck' or 'bus'"),
        ("penetration: 0.25", "penetration: 1.5", "flows[0].penetration", "1"),
        ("penetration: 0.25", "penetration: nan", "flows[0].penetration", ""),
        ("{mean: 50, sd: 5}", "{mean: 50, sd: 5, min: 40, max: 60}", "flows[0].speed_kph", "not both"),
        ("{mean: 50, sd: 5}", "{mean: 50}", "flows[0].speed_kph", "both 'mean' and 'sd'"),
        ("{mean: 50, sd: 5}", "{min: 60, max: 40}", "flows[0].speed_kph", "'min' <= 'max'"),
        ("{mean: 50, sd: 5}", "{mean: 1e308, sd: 5}", "flows[0].speed_kph.mean", ""),
    ],
)
def test_bad_flows_are_named(tmp_path: Path, old: str, new: str, where: str, words: str) -> None:
    problems = _problems(tmp_path, old, new)
    assert where in problems, problems
    assert words in problems[where]


def test_two_flows_on_one_lane_are_refused(tmp_path: Path) -> None:
    line = (
        "  - {lane: a, vehicles_per_hour: 1800, speed_kph: {mean: 50, sd: 5}, mix: {car: 0.8, truck: 0.2},\n"
        "     penetration: 0.25, prefill: false}\n"
    )
    problems = _problems(tmp_path, line, line + line)
    assert "has two" in problems["flows[1].lane"]


def test_the_cli_exits_2_on_a_bad_flow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(_text().replace("penetration: 0.25", "penetration: -1"))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "-q"]) == 2
    assert f"{path}: flows[0].penetration" in capsys.readouterr().err


# -- arrivals ------------------------------------------------------------------------------------------
def _arrivals(sim: Simulation) -> list[tuple[list[float], list[str], list[float], list[bool], list[float | None]]]:
    assert sim.background is not None
    return [
        (
            a.time_s.tolist(),
            a.kind,
            a.v0_mps.tolist(),
            a.equipped.tolist(),
            [None if math.isnan(s) else s for s in a.start_s.tolist()],
        )
        for a in _idm(sim).arrivals
    ]


def test_arrivals_depend_on_the_seed_only_not_on_the_variant(tmp_path: Path) -> None:
    sc = _scenario(tmp_path, prefill=True)
    v2x = _arrivals(Simulation(sc, variant="v2x", seed=3))
    assert v2x == _arrivals(Simulation(sc, variant="baseline", seed=3))
    assert v2x == _arrivals(Simulation(sc, variant="v2x", seed=3))
    assert v2x != _arrivals(Simulation(sc, variant="v2x", seed=4))
    times, _, v0, _, start = v2x[0]
    n_pre = sum(s is not None for s in start)
    assert n_pre > 20 and all(t == 0.0 for t in times[:n_pre]) and np.all(np.diff(times) >= 0)
    assert all(35 / 3.6 - 1e-9 <= v <= 65 / 3.6 + 1e-9 for v in v0)  # mean 50 km/h, sd 5, within 3 sd


def _run_background(sc: Scenario, seconds: float, story: dict[str, tuple[float, float]] | None = None) -> Background:
    """Background traffic of ``sc`` alone (no agents): the story vehicles held at (x, y), at rest."""
    world = world_state(sc, extra=background_capacity(sc))
    for actor_id, (x, y) in (story or {}).items():
        s = world.slot_of(actor_id)
        world.x[s], world.y[s] = x, y
    bg = Background(
        sc,
        world,
        rng=np.random.default_rng([0, 2, 4]),
        heads=(),
    )
    for tick in range(round(seconds / sc.tick_s) + 1):
        bg.step(tick, tick * sc.tick_s, {})
    return bg


def test_a_flow_delivers_its_declared_rate_over_a_long_run(tmp_path: Path) -> None:
    # 1500 veh/h for 20 min: 500 expected, Poisson sd 22; the entry never blocks at this rate.
    sc = _scenario(tmp_path, duration=1200, tick=0.2, rate=1500, actors="  - {id: rsu1, kind: rsu, position: [0, -10]}")
    bg = _run_background(sc, 1200)
    n = bg.stats.spawned + bg.stats.waiting_at_end
    assert abs(n - 500) <= 66, n  # 3 sd
    assert bg.stats.waiting_at_end <= 3
    assert bg.stats.left > 0.8 * bg.stats.spawned  # they drive through a and b and leave
    kinds = bg.arrivals[0].kind
    assert abs(kinds.count("truck") / len(kinds) - 0.2) < 0.06
    assert abs(bg.stats.equipped / bg.stats.spawned - 0.25) < 0.06


def test_background_vehicles_queue_behind_a_stopped_story_vehicle(tmp_path: Path) -> None:
    sc = _scenario(tmp_path, duration=120, rate=1800, actors=BLOCKER)
    # The blocker's box: centre 600 m along lane a (its front at 602.5 m), at rest.
    bg = _run_background(sc, 120, story={"blocker": (600.0, 0.0)})
    tr = bg.traffic
    rows = np.flatnonzero((bg.slot_of_row >= 0) & (tr.lane == 0))
    assert len(rows) > 30
    assert np.all(tr.s_m[rows] <= 597.5 - 1.0)  # none passed or touched the blocker (rear at 597.5 m)
    order = rows[np.argsort(-tr.s_m[rows])]
    assert np.all(tr.v_mps[order[:10]] < 0.1)  # the queue's head stands (its tail is still arriving)
    gaps = (np.concatenate([[597.5], tr.s_m[order][:-1] - tr.length_m[order][:-1]]) - tr.s_m[order])[:10]
    assert np.all(gaps > 1.5) and np.all(gaps < 3.0), gaps  # about s0 = 2 m bumper to bumper
    assert bg.stats.left == 0  # nobody got through


# -- in the world ----------------------------------------------------------------------------------------
def _tick(sim: Simulation, tick: int, fleets: dict[str, FleetAgent] | None = None) -> list[dict[str, object]]:
    """One tick with silent story agents and the fleet agents (sans-I/O) answering their bundles."""
    sim.begin(tick)
    for actor_id in sim.actor_ids:
        sim.receive("ack", actor_id, testbed_pb2.Ack(actor_id=actor_id, tick=tick).SerializeToString())
    fleets = {} if fleets is None else fleets
    for fleet_id, payload in sim.fleet_inputs.items():
        if fleet_id not in fleets:
            env = environment(sim.scenario)
            fleets[fleet_id] = FleetAgent(fleet_id, frame=env.frame, epoch=env.epoch, thresholds=env.thresholds)
        ack = fleets[fleet_id].step(testbed_pb2.FleetInput.FromString(payload))
        sim.receive_fleet(fleet_id, ack.SerializeToString())
    assert sim.reported
    return sim.step()


def test_the_world_moves_them_the_sensors_see_them_and_they_send_bsms(tmp_path: Path) -> None:
    sc = _scenario(tmp_path, prefill=True)
    sim = Simulation(sc, variant="v2x", seed=0)
    assert sim.world.capacity >= len(sc.actors) + background_capacity(sc)
    fleets: dict[str, FleetAgent] = {}
    for tick in range(30):
        events = _tick(sim, tick, fleets)
        assert not [e for e in events if e["type"] == "collision"]
    bg = sim.background
    assert bg is not None
    present = bg.present
    assert len(present) > 20 and present.min() >= len(sc.actors)
    w = sim.world
    assert np.all(w.vx[present] > 1.0)  # eastbound, moving
    heard = {d.object_id for d in sim.sensors.detections.get("rsu1", [])}
    assert heard and heard <= {int(s) + 1 for s in present}  # the camera sees background vehicles
    assert sim.channel.stats.sent["pc5"] == bg.stats.bsm_sent > 0
    assert math.isclose(bg.stats.bsm_sent / 29, int(np.sum(_idm(sim).equipped_row)), rel_tol=0.2)  # from tick 1
    assert not sim.inbound.stats.rejected  # the fleet's bundles are all accepted
    # The equipped background vehicles are PC5 receivers, and the fleet got what they heard.
    assert np.all(sim.channel.pc5_receivers[bg.equipped()[1]])
    assert sim.channel.stats.delivered["pc5"] > 0
    assert sim.metrics(1.0)["background"]["vehicles"] == bg.stats.spawned
    baseline = Simulation(sc, variant="baseline", seed=0)
    for tick in range(30):
        _tick(baseline, tick)
    assert baseline.background is not None and baseline.background.stats.bsm_sent == 0
    assert np.array_equal(baseline.background.present, present)  # the same traffic without V2X
    np.testing.assert_array_equal(baseline.world.x[present], w.x[present])


@pytest.mark.slow
async def test_the_shipped_arterial_scenario_passes() -> None:
    from v2x.run.runner import run_scenario

    result = await run_scenario(load_scenario(ARTERIAL), seed=0, broker="loopback")
    assert result["passed"], [e for e in result["expectations"] if not e["passed"]]
    for variant in ("v2x", "baseline"):
        assert result["metrics"][variant]["background"]["vehicles"] >= 500
    assert set(result["tracks"]) <= {"v2x", "baseline"}


@pytest.mark.parametrize("accel", [0.0, 0.7, -1.0, -5.0])
def test_a_refreshed_bsm_is_what_encode_bsm_makes(accel: float) -> None:
    from v2x.wire.bsm import OwnState, encode_bsm, refresh_bsm

    frame = LocalFrame(29.5, 106.5, 250.0)
    sc = load_scenario(ARTERIAL)

    def own(x: float, y: float, v: float, yaw: float, a: float) -> OwnState:
        return OwnState(x, y, v, yaw, a, 13.0, 2.6, 3.0, "truck", None, None, a < 0)

    msg = encode_bsm(own(0, 0, 0, 0, 0), actor_id="bg-1-7", t_s=0.0, msg_count=0, frame=frame, epoch=sc.epoch)
    for k, (x, y, v, yaw, t) in enumerate([(120.5, -3.2, 13.9, 0.1, 1.2), (-850.0, 7.75, 0.0, math.pi, 61.3)]):
        lat, lon, _ = frame.to_geodetic(np.array([x]), np.array([y]))
        mark = (round(t * 1e6) // 1000) % 60_000
        refresh_bsm(
            msg,
            lat_deg=float(lat[0]),
            lon_deg=float(lon[0]),
            speed_mps=v,
            heading_rad=yaw,
            accel_mps2=accel,
            msg_count=k + 200,
            sec_mark=mark,
        )
        want = encode_bsm(
            own(x, y, v, yaw, accel), actor_id="bg-1-7", t_s=t, msg_count=k + 200, frame=frame, epoch=sc.epoch
        )
        assert msg.SerializeToString() == want.SerializeToString()


def _cross_lane_a(sim: Simulation, crosser: str, speed: float, ticks: int) -> list[dict[str, object]]:
    """Run ``ticks`` ticks with ``crosser`` going north across lane a at x = 500 from y = -20 at ``speed``
    (its truth as its agent reports it; the others report nothing); the events."""
    events: list[dict[str, object]] = []
    for tick in range(ticks):
        t = tick * sim.scenario.tick_s
        sim.begin(tick)
        for actor_id in sim.actor_ids:
            ack = testbed_pb2.Ack(actor_id=actor_id, tick=tick)
            if actor_id == crosser:
                ack.truth.CopyFrom(
                    testbed_pb2.TruthState(x_m=500.0, y_m=-20.0 + speed * t, vy_mps=speed, heading_deg=0.0)
                )
            sim.receive("ack", actor_id, ack.SerializeToString())
        events += sim.step()
    return events


def test_a_crash_with_a_background_vehicle_is_refereed_and_the_traffic_stops_behind_the_wrecks(
    tmp_path: Path,
) -> None:
    # A story car creeps across lane a at 2 m/s (the background drivers do not see crossing traffic): it
    # hits a background car. Both rest where they touched (the referee); the traffic behind stops short
    # of the wrecks (a background wreck, and the story car at rest across the lane, are obstacles).
    crosser = "  - {id: crosser, kind: car, path: [[500, -40], [500, 40]], speed_mps: 2}\n" + RSU
    sc = _scenario(tmp_path, prefill=True, duration=60, actors=crosser)
    sim = Simulation(sc, variant="baseline", seed=0)
    events = _cross_lane_a(sim, "crosser", 2.0, 400)
    crashes = [e for e in events if e["type"] == "collision"]
    assert crashes, "the crossing car must meet the flow"
    first = crashes[0]["actors"]
    assert isinstance(first, list) and "crosser" in first
    hit = next(a for a in first if a != "crosser")
    assert hit.startswith("bg-0-")
    assert not [e for e in crashes if all(str(a).startswith("bg-") for a in e["actors"])]  # type: ignore[attr-defined]
    w = sim.world
    s = w.slot_of(hit)
    assert s in sim.referee.wrecks and (w.x[s], w.y[s]) == sim.referee.wrecks[s][:2]
    assert w.vx[s] == 0.0 and w.vy[s] == 0.0
    bg = sim.background
    assert bg is not None
    behind = np.array([int(x) for x in bg.present if int(x) not in sim.referee.wrecks and w.x[int(x)] < 490])
    queue = behind[np.argsort(-w.x[behind])][:5]
    assert len(queue) == 5 and np.all(np.hypot(w.vx[queue], w.vy[queue]) < 0.1)  # standing behind the wrecks


def test_the_traffic_stops_behind_a_background_wreck_with_a_pedestrian_inside_its_box(tmp_path: Path) -> None:
    # A pedestrian walks across lane a and is hit by a background car. Both rest where they touched: the
    # pedestrian, at rest on the lane, is a short obstacle of the traffic model standing inside the front
    # of the car's box. The cars behind must stop behind the car's rear, not aim at the pedestrian's (the
    # next front bumper ahead) and roll into the wreck (newcomer review 17, seed 3 of its crossroads).
    walker = "  - {id: walker, kind: pedestrian, path: [[500, -20], [500, 40]], speed_mps: 1.4}\n" + RSU
    sc = _scenario(tmp_path, prefill=True, duration=60, actors=walker)
    sim = Simulation(sc, variant="baseline", seed=0)
    events = _cross_lane_a(sim, "walker", 1.4, 450)
    crashes = [e["actors"] for e in events if e["type"] == "collision"]
    assert crashes and "walker" in crashes[0], crashes  # type: ignore[operator]
    assert len(crashes) == 1, crashes  # nobody runs into the wreck
    bg = sim.background
    assert bg is not None
    w = sim.world
    behind = np.array([int(x) for x in bg.present if int(x) not in sim.referee.wrecks and w.x[int(x)] < 495])
    queue = behind[np.argsort(-w.x[behind])][:3]
    assert len(queue) == 3 and np.all(np.hypot(w.vx[queue], w.vy[queue]) < 0.1)  # standing behind the wreck


CROSSROADS = """\
id: red-prefill
name: red-prefill
origin: {lat_deg: 29.5, lon_deg: 106.5}
duration_s: 30
tick_s: 0.1
road:
  lanes:
    - {id: a, centerline: [[0, -1.75], [600, -1.75]], speed_limit_kph: 50}
    - {id: c, centerline: [[301.75, -300], [301.75, 300]], speed_limit_kph: 50}
  intersections:
    - id: x1
      center: [300, 0]
      radius_m: 12
      signal:
        offset_s: 0
        phases:
          - {id: 1, lanes: [c], green_s: 30, yellow_s: 3, all_red_s: 2}
          - {id: 2, lanes: [a], green_s: 20, yellow_s: 3, all_red_s: 2}
flows:
  - {lane: a, vehicles_per_hour: 1800, speed_kph: {mean: 50, sd: 3}, penetration: 0}
actors:
  - {id: rsu1, kind: rsu, position: [320, 20]}
"""


def test_prefill_keeps_its_vehicles_where_they_can_stop_for_a_red_line(tmp_path: Path) -> None:
    # Lane a is red from t = 0 (the cross street's phase runs first). Prefilled at the flow's density, one
    # vehicle used to stand 7.7 m before the line at 13 m/s: too close to stop, it went on through the red
    # (the model's amber-dilemma rule) into the junction (newcomer review 17, seed 2 of its crossroads).
    path = tmp_path / "red.yaml"
    path.write_text(CROSSROADS)
    sc = load_scenario(path)
    sim = Simulation(sc, variant="baseline", seed=0)
    bg = _idm(sim)
    lane = bg.geo.index["a"]
    line = float(bg.geo.network.stop_line_m[lane])
    (arr,) = bg.arrivals
    pre = ~np.isnan(arr.start_s)
    assert pre.sum() > 10 and np.any(arr.start_s[pre] > line)  # some beyond the line (it is green there)
    for s, kind, v0 in zip(arr.start_s[pre], np.array(arr.kind)[pre], arr.v0_mps[pre], strict=True):
        p = CLASS_PARAMS[KIND[str(kind)]]
        v = min(float(v0), float(bg.geo.network.speed_limit_mps[lane]))
        assert not line - p.s0_m - v * v / (2 * p.b_mps2) < s <= line + 1e-9, (s, v)
    # ... and in the run none crosses the red line (8 s of red)
    before: dict[str, float] = {}
    for tick in range(80):
        sim.begin(tick)
        for actor_id in sim.actor_ids:
            sim.receive("ack", actor_id, testbed_pb2.Ack(actor_id=actor_id, tick=tick).SerializeToString())
        sim.step()
        tr = bg.traffic
        for r in np.flatnonzero((bg.slot_of_row >= 0) & (tr.lane == lane)).tolist():
            vid = bg.id_of_row[r]
            s = float(tr.s_m[r])
            assert not (before.get(vid, s) <= line < s), f"{vid} ran the red at t={tick / 10:.1f} s"
            before[vid] = s
