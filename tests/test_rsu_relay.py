"""An RSU relays the BSMs it hears over PC5 to the platform, within the envelopes an actor may send in a tick."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import yaml

from v2x.agents.base import Environment, Heard
from v2x.agents.roadside import RoadsideUnit
from v2x.bench.stack import individual_scenario
from v2x.run.runner import environment, run_scenario
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.wire import testbed_pb2
from v2x.wire.bsm import OwnState, encode_bsm
from v2x.wire.protocol import MAX_TX_PER_TICK


def test_an_rsu_with_more_bsms_in_range_than_it_may_send_relays_the_nearest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A claims review (session 24): `benchmarks/agents_scale.py --n 100` stalled at tick 1 and ended with exit 3,
    the world refusing the built-in RSU's report (`tx_count 78 > 64`): it relayed every one of the 78 BSMs it
    heard. It now relays the nearest it may send, says so once, and the run goes on."""
    doc = individual_scenario(80, 0.5)
    doc["id"] = "relay80"
    doc["actors"].append({"id": "rsu1", "kind": "rsu", "position": [400, -12], "range_m": 300})
    doc["actors"].append({"id": "cloud", "kind": "platform"})
    path = tmp_path / "relay80.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    sc = load_scenario(path)
    with caplog.at_level(logging.WARNING, logger="v2x.agents.roadside"):
        result = asyncio.run(run_scenario(sc, seed=0, broker="loopback", variants=["v2x"]))
    metrics = result["metrics"]["v2x"]
    assert not metrics.get("rejected"), metrics.get("rejected")
    said = [r.getMessage() for r in caplog.records if r.name == "v2x.agents.roadside"]
    assert len(said) == 1 and said[0].startswith("rsu1 t=0.1 s: heard "), said
    assert f"at most {MAX_TX_PER_TICK} envelopes a tick" in said[0]


def _svp_rsu() -> tuple[RoadsideUnit, Environment]:
    """svp's roadside unit, sans I/O, and its environment."""
    sc = load_scenario(SCENARIO_DIR / "svp.yaml")
    env = environment(sc)
    return RoadsideUnit(sc.actor("rsu_x1"), sc, env), env


def _heard_bsm(rsu: RoadsideUnit, env: Environment, name: str, distance_m: float, t: float, count: int = 0) -> Heard:
    """A BSM of car ``name`` standing ``distance_m`` east of ``rsu``, sent at ``t`` and heard 2 ms later over PC5."""
    own = OwnState(
        x=rsu.x + distance_m,
        y=rsu.y,
        speed_mps=10.0,
        heading_rad=0.0,
        accel_mps2=0.0,
        length_m=4.5,
        width_m=1.8,
        height_m=1.5,
        kind="car",
        sigma_major_m=0.02,
        sigma_minor_m=0.02,
        braking=False,
    )
    frame = encode_bsm(own, actor_id=name, t_s=t, msg_count=count % 128, frame=env.frame, epoch=env.epoch)
    return Heard(name, testbed_pb2.LINK_PC5, t + 0.002, t, frame)


def test_the_bsms_relayed_over_the_budget_are_the_nearest_in_the_order_heard() -> None:
    """A diff review: the test above would pass with the choice reversed. By hand: six BSMs heard at known
    distances from the RSU; within a budget of 4 the 4 nearest are relayed, within 3 the 3 nearest (of two
    at the same distance the one heard first), each time in the order heard; what fits is relayed whole."""
    rsu, env = _svp_rsu()
    t = 5.0

    def heard(name: str, distance_m: float) -> Heard:
        return _heard_bsm(rsu, env, name, distance_m, t)

    relays = [heard(n, d) for n, d in (("a", 50.0), ("b", 10.0), ("c", 30.0), ("d", 5.0), ("e", 80.0), ("f", 30.0))]
    assert rsu._within_budget(relays, 6, t) == relays and not rsu.rejected
    assert [h.sender_id for h in rsu._within_budget(relays, 4, t)] == ["b", "c", "d", "f"]
    assert [h.sender_id for h in rsu._within_budget(relays, 3, t)] == ["b", "c", "d"]  # c heard before f
    assert rsu._within_budget(relays, 0, t) == [] and rsu.rejected == {"relay_over_budget": 2 + 3 + 6}


def test_one_sender_flooding_bsms_takes_one_relay_and_the_honest_ones_are_relayed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Attack review 11: two outside cars each sent 64 BSMs a tick claiming the RSU's own position; ranked by
    message, theirs were the nearest, the RSU relayed only theirs, and the edge never heard the car ICW was
    about. Now each sender's newest BSM of the tick is relayed (one a sender), before the budget's ranking."""
    rsu, env = _svp_rsu()
    t = 5.0

    def heard(name: str, distance_m: float, count: int) -> Heard:
        return _heard_bsm(rsu, env, name, distance_m, t, count)

    honest = [heard("a", 120.0, 0), heard("b", 90.0, 0)]
    flood_x = [heard("x", 0.0, k) for k in range(64)]
    flood_y = [heard("y", 0.0, k) for k in range(64)]
    relays = [honest[0], *flood_x[:30], honest[1], *flood_x[30:], *flood_y]
    with caplog.at_level(logging.WARNING, logger="v2x.agents.roadside"):
        kept = rsu._within_budget(relays, MAX_TX_PER_TICK - 3, t)
    assert kept == [honest[0], honest[1], flood_x[-1], flood_y[-1]]  # the newest of each, in the order heard
    assert rsu.rejected == {"relay_repeated": 2 * 63}  # in its Ack, so in metrics.rejected_by_agents
    said = [r.getMessage() for r in caplog.records if r.name == "v2x.agents.roadside"]
    assert said == [
        f"rsu_x1 t=5.0 s: heard 64 BSMs from {s} in one tick, relays the newest (one a sender a tick); "
        "more are counted, not logged"
        for s in ("x", "y")
    ], said
    # the ranking, when one a sender is still over the budget, is of senders: the honest far one is left out
    assert rsu._within_budget(relays, 3, t) == [honest[1], flood_x[-1], flood_y[-1]]
    assert rsu.rejected == {"relay_repeated": 2 * 2 * 63, "relay_over_budget": 1}
