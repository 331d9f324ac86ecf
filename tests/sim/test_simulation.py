"""A Simulation driven by hand, bytes in and out (no transport, no agents): joining, a tick's inputs,
validation and counting of what the agents send, closing a tick, the report."""

from __future__ import annotations

import numpy as np
import pytest

from tests._agents import offline_sim
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.sim.simulation import Simulation
from v2x.wire import day1_pb2, frame_pb2, testbed_pb2
from v2x.wire.envelope import temporary_id

FCW = SCENARIO_DIR / "fcw.yaml"
ACTORS = ["cloud", "follower", "lead", "neighbour", "rsu1"]


def _sim(variant: str = "v2x") -> Simulation:
    return offline_sim(load_scenario(FCW), variant)


KIND = {"cloud": "platform", "follower": "car", "lead": "car", "neighbour": "car", "rsu1": "rsu"}


def _hello(actor: str, kind: str | None = None) -> bytes:
    return testbed_pb2.Hello(
        actor_id=actor, kind=kind or KIND.get(actor, "car"), protocol_version=1
    ).SerializeToString()


def _ack(
    actor: str,
    tick: int,
    tx_count: int = 0,
    truth: testbed_pb2.TruthState | None = None,
    events: tuple[testbed_pb2.Advisory, ...] = (),
) -> bytes:
    ack = testbed_pb2.Ack(actor_id=actor, tick=tick, tx_count=tx_count, events=events)
    if truth is not None:
        ack.truth.CopyFrom(truth)
    return ack.SerializeToString()


PLACES = {"lead": (130.0, 0.0), "follower": (100.0, 0.0), "neighbour": (110.0, 3.5)}


def _truth(actor: str) -> testbed_pb2.TruthState | None:
    """Where the fcw cars start (all at 16.67 m/s east): apart, so that the referee has nothing to record."""
    if actor not in PLACES:
        return None
    x, y = PLACES[actor]
    return testbed_pb2.TruthState(x_m=x, y_m=y, vx_mps=16.67, heading_deg=90.0)


def _report(sim: Simulation, tick: int, tx: dict[str, int] | None = None) -> None:
    """Every actor acks ``tick`` with its starting truth (``tx``: transmissions per actor)."""
    for actor in ACTORS:
        sim.receive("ack", actor, _ack(actor, tick, tx_count=(tx or {}).get(actor, 0), truth=_truth(actor)))


def _bsm(
    sender: str,
    seq: int,
    tick: int,
    link: testbed_pb2.LinkKind.ValueType = testbed_pb2.LINK_PC5,
    dests: tuple[str, ...] = (),
) -> bytes:
    frame = frame_pb2.MessageFrame(bsm=day1_pb2.BSM(id=temporary_id(sender)))  # (a car's: no advisory, not_permitted)
    env = testbed_pb2.Envelope(
        sender_id=sender,
        seq=seq,
        tick=tick,
        tx_time_us=tick * 100_000,  # the tick's time (0.1 s ticks)
        link=link,
        dest_ids=dests,
        frame=frame.SerializeToString(),
    )
    return env.SerializeToString()


def test_the_run_starts_once_every_actor_has_said_hello() -> None:
    sim = _sim()
    assert sim.actor_ids == ACTORS and not sim.joined
    for actor in ACTORS[:-1]:
        sim.receive("join", actor, _hello(actor))
    assert not sim.joined and sim.not_joined() == ["rsu1"]
    sim.receive("join", "rsu1", _hello("lead", "rsu"))  # not its name
    assert not sim.joined and sim.inbound.stats.rejected == {"sender_mismatch": 1}
    sim.receive("join", "rsu1", _hello("rsu1"))
    assert sim.joined
    control = testbed_pb2.Control.FromString(sim.control(testbed_pb2.Control.COMMAND_START))
    assert control.run_id == "t" and control.tick_us == 100_000 and list(control.actor_ids) == ACTORS
    assert control.platform_id == "cloud" and control.scenario_id == "fcw"


def test_a_tick_opens_with_every_actors_input_and_closes_when_all_reported() -> None:
    sim = _sim()
    with pytest.raises(RuntimeError, match="before begin"):
        sim.step()
    inputs = sim.begin(0)
    assert list(inputs) == ACTORS
    first = testbed_pb2.TickInput.FromString(inputs["follower"])
    assert (first.run_id, first.tick, first.time_us, first.tick_us, first.final) == ("t", 0, 0, 100_000, False)
    assert not first.HasField("gnss") and list(first.envelopes) == []  # nothing sensed or sent yet
    assert sim.missing() == ACTORS
    sim.receive("tx", "lead", _bsm("lead", 1, 0))
    _report(sim, 0, {"lead": 2})
    assert not sim.reported and sim.missing() == ["lead"]  # its ack counts 2 transmissions; 1 arrived
    sim.receive("tx", "lead", _bsm("lead", 2, 0))
    assert sim.reported and sim.missing() == []
    assert {e["type"] for e in sim.step()} == {"positioning"}
    # the lead's BSM went out on PC5; the receivers get it at tick 1 at the latest, with their GNSS reading
    nxt = {a: testbed_pb2.TickInput.FromString(p) for a, p in sim.begin(1).items()}
    assert sim.channel.stats.sent == {"pc5": 2}
    assert nxt["follower"].gnss.state == "rtk-fixed" and nxt["follower"].time_us == 100_000
    heard = {a for a, m in nxt.items() if list(m.envelopes)}
    assert heard <= {"follower", "neighbour", "rsu1"} and "lead" not in heard and "cloud" not in heard
    assert sum(len(m.envelopes) for m in nxt.values()) == sim.channel.stats.delivered["pc5"]


def test_closing_a_tick_applies_the_truth_and_records_the_warning_under_the_scenarios_names() -> None:
    sim = _sim()
    sim.begin(0)
    truth = testbed_pb2.TruthState(x_m=12.0, y_m=-1.0, vx_mps=0.0, vy_mps=5.0, heading_deg=0.0)  # north
    adv = testbed_pb2.Advisory(
        app=testbed_pb2.APP_FCW, other_id=temporary_id("lead").hex(), raised_at_s=0.0, ttc_s=2.3456, source_id="obu"
    )
    for actor in ACTORS:
        if actor == "follower":
            sim.receive("ack", actor, _ack(actor, 0, truth=truth, events=(adv,)))
        else:
            sim.receive("ack", actor, _ack(actor, 0, truth=_truth(actor)))
    events = sim.step()
    warning = events[0]
    assert warning == {
        "t_s": 0.0,
        "type": "warning",
        "variant": "v2x",
        "app": "fcw",
        "target": "follower",
        "other": "lead",
        "source": "obu",
        "conflict": "",
        "ttc_s": 2.346,
    }
    s = sim.world.slot_of("follower")
    assert (sim.world.x[s], sim.world.y[s], sim.world.vy[s]) == (12.0, -1.0, 5.0)
    assert sim.world.heading_rad[s] == pytest.approx(1.5707963, abs=1e-6)  # compass north = ENU pi/2
    # every road user's first reading is a positioning state change (timed when it is first used)
    assert [(e["type"], e["actor"], e["t_s"]) for e in events[1:]] == [
        ("positioning", a, 0.1) for a in ("follower", "lead", "neighbour")
    ]


def test_bad_messages_are_rejected_and_counted_by_reason_and_copies_are_duplicates() -> None:
    sim = _sim()
    sim.begin(3)
    sim.receive("ack", "nobody", _ack("nobody", 3))
    sim.receive("ack", "lead", b"\xff\xff")
    sim.receive("ack", "lead", _ack("follower", 3))
    sim.receive("ack", "lead", _ack("lead", 4))
    sim.receive("ack", "lead", _ack("lead", 2))  # an old tick's ack again
    sim.receive("ack", "lead", _ack("lead", 3))
    sim.receive("ack", "lead", _ack("lead", 3))  # twice
    sim.receive("tx", "lead", b"x" * (16 * 1024 + 1))
    sim.receive("tx", "lead", _bsm("follower", 1, 3))
    sim.receive("tx", "lead", _bsm("lead", 1, 3, testbed_pb2.LINK_UU))  # addressed to no one
    sim.receive("tx", "lead", _bsm("lead", 1, 3, testbed_pb2.LINK_UU, ("ghost",)))
    sim.receive("tx", "lead", _bsm("lead", 1, 3, testbed_pb2.LinkKind.ValueType(99)))
    sim.receive("tx", "lead", _bsm("lead", 1, 4))
    sim.receive("tx", "lead", _bsm("lead", 1, 3))
    sim.receive("tx", "lead", _bsm("lead", 1, 3))  # same seq
    sim.receive("tx", "lead", _bsm("lead", 2, 2))  # an old tick
    sim.reject("bad_topic", "v2x/t/tx")
    st = sim.inbound.stats
    assert st.rejected == {
        "unknown_sender": 1,
        "malformed": 1,
        "sender_mismatch": 2,
        "bad_tick": 2,
        "oversized": 1,
        "bad_destination": 2,
        "bad_link": 1,
        "bad_topic": 1,
    }
    assert st.duplicates == 4
    assert list(sim.inbound.received) == [(sim.world.slot_of("lead"), 1)]
    assert sim.missing() == ["cloud", "follower", "neighbour", "rsu1"]


def test_reports_still_missing_when_a_tick_closes_are_late_and_the_report_sorts_events() -> None:
    sim = _sim("baseline")
    for tick in range(3):
        sim.begin(tick)
        for actor in ACTORS[1:]:  # the platform never reports
            sim.receive("ack", actor, _ack(actor, tick, truth=_truth(actor)))
        sim.step()
    report = sim.report(1.5)
    assert report.metrics["late_reports"] == 3 and report.metrics["ticks"] == 141
    assert report.metrics["v2x_enabled"] is False and report.metrics["wall_seconds"] == 1.5
    assert len(report.events) == 3 and report.events == sorted(
        sim.events, key=lambda e: (e["t_s"], e["variant"], e["type"], e.get("actor", ""))
    )


def test_the_channel_gets_the_rsus_declared_range_and_none_without_one() -> None:
    """fcw's RSU declares range_m: 300, the PC5 coverage of its slot in the channel (inf for everyone else); a
    scenario whose RSUs declare none gives the channel no coverage at all (the fan-out as before)."""
    sim = _sim()
    coverage = sim.channel.pc5_range_m
    assert coverage is not None
    rsu = sim.world.slot_of("rsu1")
    assert coverage[rsu] == 300.0
    assert np.isinf(np.delete(coverage, rsu)).all()
    assert offline_sim(load_scenario(SCENARIO_DIR / "rlvw.yaml"), "v2x").channel.pc5_range_m is None
