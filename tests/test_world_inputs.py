"""What the world accepts must never make it build a TickInput its own hosts refuse (``v2x.wire.tick_input``): every
host then refuses the same re-sent input, and a lockstep run stalls 60 s and ends with no result (attack review 10:
a transmission time just before 0 at tick 0; a NaN signal warp for an intersection the scenario does not have).
Sans-I/O: the world's ``Simulation`` fed by hand, its inputs read with the hosts' own check."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf.descriptor import FieldDescriptor

from tests._agents import offline_sim
from tests._mosquitto import Mosquitto
from tests.test_sdk import fcw_with_external
from v2x.net import topics
from v2x.run.runner import run_scenario
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.sdk import Stack, VehicleState
from v2x.sim.channel import Received, Transmission
from v2x.sim.inbound import ack_problem
from v2x.sim.sensing import Detection
from v2x.sim.simulation import Simulation
from v2x.wire import day1_pb2, frame_pb2, testbed_pb2
from v2x.wire.envelope import temporary_id
from v2x.wire.protocol import MAX_INPUT_BYTES, MAX_TX_BYTES, MAX_TX_PER_TICK
from v2x.wire.tick_input import FINITE_PARTS, NOT_FINITE, read_tick_input, tick_input_problem

TICK_US = 100_000  # fcw's and rlvw's tick


def _env(sender: str, seq: int, tick: int, tx_time_us: int) -> bytes:
    frame = frame_pb2.MessageFrame(bsm=day1_pb2.BSM(id=temporary_id(sender))).SerializeToString()
    return testbed_pb2.Envelope(
        sender_id=sender, seq=seq, tick=tick, tx_time_us=tx_time_us, link=testbed_pb2.LINK_PC5, frame=frame
    ).SerializeToString()


def _ack(actor: str, tick: int, *, tx: int = 0, warps: tuple[testbed_pb2.SignalWarp, ...] = ()) -> bytes:
    truth = testbed_pb2.TruthState(x_m=0.0, y_m=0.0, signal_warps=warps)
    return testbed_pb2.Ack(actor_id=actor, tick=tick, tx_count=tx, truth=truth).SerializeToString()


def _refused_inputs(sim: Simulation, tick: int) -> dict[str, str]:
    """Every actor's input of ``tick`` that its host would refuse, with why."""
    out = {}
    for actor, payload in sim.begin(tick).items():
        got = read_tick_input(payload, "t", tick_us=TICK_US)
        if isinstance(got, str):
            out[actor] = got
    return out


@pytest.mark.parametrize("tx_time_us", [-5_000, -100_000, -1])
def test_a_transmission_time_before_0_is_refused_and_tick_1_is_an_input_every_host_takes(tx_time_us: int) -> None:
    """An outside stack that stamps its BSM with its GNSS fix's time, a few ms before tick 0: the window of a tick
    either side of the tick's time reached -100 ms at tick 0, the channel delivered it before 0, and every host
    refused TickInput(1) (``rx_time_us`` below 0). Refused now (``bad_time``); one at 0 exactly is taken."""
    sim = offline_sim(load_scenario(SCENARIO_DIR / "fcw.yaml"))
    assert not _refused_inputs(sim, 0)
    sim.receive("tx", "lead", _env("lead", 1, 0, tx_time_us), where="v2x/t/tx/lead")
    sim.receive("tx", "follower", _env("follower", 1, 0, 0), where="v2x/t/tx/follower")
    for actor in sim.actor_ids:
        sim.receive("ack", actor, _ack(actor, 0, tx=int(actor in ("lead", "follower"))))
    assert sim.inbound.stats.rejected == {"bad_time": 1}
    assert [t.seq for t in sim.inbound.received.values()] == [1]  # the follower's
    sim.step()
    assert _refused_inputs(sim, 1) == {}


def test_a_transmission_time_within_a_tick_before_a_later_tick_is_still_taken() -> None:
    """Only times before 0 are new refusals: at tick 5, one 50 ms early is taken (and delivered in time)."""
    sim = offline_sim(load_scenario(SCENARIO_DIR / "fcw.yaml"))
    for tick in range(6):
        sim.begin(tick)
        if tick == 5:
            sim.receive("tx", "lead", _env("lead", 1, 5, 450_000), where="v2x/t/tx/lead")
        for actor in sim.actor_ids:
            sim.receive("ack", actor, _ack(actor, tick, tx=int(tick == 5 and actor == "lead")))
        sim.step()
    assert not sim.inbound.stats.rejected
    assert _refused_inputs(sim, 6) == {}


RLVW = SCENARIO_DIR / "rlvw.yaml"  # rsu_x1 runs the controller of x1, the only (signalised) intersection


def _warp(intersection: str = "x1", at_s: float = 5.0, **kw: float | bool) -> testbed_pb2.SignalWarp:
    return testbed_pb2.SignalWarp(intersection=intersection, at_s=at_s, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("actor", "warp", "why"),
    [
        ("rsu_x1", _warp("nope", math.nan, hold_s=1.0), "intersection 'nope' is not one it runs (its: x1)"),
        ("rsu_x1", _warp("x2", math.inf, hold_s=1.0), "intersection 'x2' is not one it runs"),
        ("rsu_x1", _warp(at_s=math.nan, hold_s=1.0), "truth.signal_warps[0].at_s = nan"),
        ("rsu_x1", _warp(hold_s=math.inf), "truth.signal_warps[0].hold_s = inf"),
        ("rsu_x1", _warp(hold_s=-1.0), "truth.signal_warps[0].hold_s = -1.0"),
        # (a hold: skip_to_s does not apply, but it goes to every actor as it came)
        ("rsu_x1", _warp(hold_s=2.0, skip_to_s=math.nan), "truth.signal_warps[0].skip_to_s = nan"),
        ("car_a", _warp(hold_s=2.0), "intersection 'x1' is not one it runs (its: none)"),
    ],
)
def test_a_signal_warp_that_is_not_the_actors_or_not_finite_is_refused(
    actor: str, warp: testbed_pb2.SignalWarp, why: str
) -> None:
    """An Ack with one was taken, the warp skipped by the referee's controllers (unknown intersection) so its
    numbers were never checked, and passed on to every actor, whose hosts all refused the input (NaN): lockstep
    stalled. Now the Ack is refused, ``out_of_range``, and the next inputs are ones every host takes."""
    sim = offline_sim(load_scenario(RLVW))
    sim.begin(0)
    for a in sim.actor_ids:
        sim.receive("ack", a, _ack(a, 0, warps=(warp,) if a == actor else ()), where=f"v2x/t/ack/{a}")
    assert sim.inbound.stats.rejected == {"out_of_range": 1}
    assert why in sim.missing_why()[0]
    sim.step()
    assert _refused_inputs(sim, 1) == {}
    assert not testbed_pb2.TickInput.FromString(sim.begin(2)["car_a"]).signal_warps


def test_an_rsus_valid_warp_for_its_intersection_reaches_every_actor_as_applied() -> None:
    sim = offline_sim(load_scenario(RLVW))
    sim.begin(0)
    warp = _warp(hold_s=2.0, skip_to_s=7.0)  # a hold with a stray skip_to_s: passed on as applied (0)
    for a in sim.actor_ids:
        sim.receive("ack", a, _ack(a, 0, warps=(warp,) if a == "rsu_x1" else ()))
    assert not sim.inbound.stats.rejected
    sim.step()
    inputs = sim.begin(1)
    for payload in inputs.values():
        ti = read_tick_input(payload, "t", tick_us=TICK_US)
        assert not isinstance(ti, str)
        assert list(ti.signal_warps) == [_warp(hold_s=2.0)]


def test_a_warp_the_plan_refuses_is_counted_and_not_passed_on() -> None:
    """Finite numbers, but no plan takes them (a skip of more than a cycle): counted, the Ack otherwise stands."""
    sim = offline_sim(load_scenario(RLVW))
    sim.begin(0)
    warp = _warp(skip=True, skip_to_s=500.0)
    for a in sim.actor_ids:
        sim.receive("ack", a, _ack(a, 0, warps=(warp,) if a == "rsu_x1" else ()))
    assert sim.missing() == []
    sim.step()
    assert sim.inbound.stats.rejected == {"out_of_range": 1}
    assert _refused_inputs(sim, 1) == {}
    assert not testbed_pb2.TickInput.FromString(sim.begin(2)["car_a"]).signal_warps


@pytest.mark.parametrize(("z", "refused"), [(math.nan, True), (1e308, True), (-math.inf, True), (1001.0, True),
                                             (12.5, False), (-1000.0, False)])  # fmt: skip
def test_a_truths_height_is_range_checked_as_its_position(z: float, refused: bool) -> None:
    """``Ack.truth.z_m`` had no check: NaN was taken, and 1e308 put a car above every other (no collision)."""
    ack = testbed_pb2.Ack(actor_id="lead", tick=0, truth=testbed_pb2.TruthState(x_m=1.0, z_m=z))
    problem = ack_problem(ack, run_end_s=14.0)
    assert (problem != "") == refused, problem
    if refused:
        assert problem.startswith("truth.z_m = ")


def _padded_bsm(sender: str, seq: int, size: int) -> bytes:
    """A BSM envelope of ``size`` bytes or so: the frame padded with an unknown field (a newer peer's, taken)."""
    frame = frame_pb2.MessageFrame(bsm=day1_pb2.BSM(id=temporary_id(sender))).SerializeToString()
    pad = size - len(frame) - 64
    frame += b"\xc2\x3e" + bytes([pad & 0x7F | 0x80, pad >> 7]) + b"x" * pad  # field 1000, length-delimited
    return testbed_pb2.Envelope(
        sender_id=sender, seq=seq, tick=0, tx_time_us=0, link=testbed_pb2.LINK_PC5, frame=frame
    ).SerializeToString()


def test_an_input_bigger_than_a_host_takes_is_cut_to_size_and_counted() -> None:
    """tjw's 12 equipped road users each send the 64 envelopes of 16 KiB an actor may: each receiver hears some
    12 MiB in one tick, where a host takes a TickInput of 4 MiB at most (the broker does not even deliver a bigger
    one to it): the world sends what fits, an equal share of each sender's earliest deliveries, and counts the rest
    against the senders (``input_overflow``). (Its RSU may not send a BSM over PC5: only as a relay over the
    backhaul, ``v2x.wire.protocol.RELAYED``.)"""
    sim = offline_sim(load_scenario(SCENARIO_DIR / "tjw.yaml"))
    sim.begin(0)
    senders = [a.id for a in sim.scenario.actors if a.equipped and a.kind not in ("platform", "rsu")]
    for a in senders:
        for seq in range(1, MAX_TX_PER_TICK + 1):
            sim.receive("tx", a, _padded_bsm(a, seq, MAX_TX_BYTES - 100), where=f"v2x/t/tx/{a}")
    for a in sim.actor_ids:
        sim.receive("ack", a, _ack(a, 0, tx=MAX_TX_PER_TICK if a in senders else 0))
    assert not sim.inbound.stats.rejected
    sim.step()
    inputs = sim.begin(1)
    assert max(len(p) for p in inputs.values()) <= MAX_INPUT_BYTES
    stats = sim.inbound.stats
    assert set(stats.rejected) == {"input_overflow"}  # (nothing the world let in that it should not have)
    assert set(stats.rejected_by_actor) <= set(senders)  # the senders' doing, not the receivers'
    assert sum(c["input_overflow"] for c in stats.rejected_by_actor.values()) == stats.rejected["input_overflow"]
    for payload in inputs.values():
        assert not isinstance(read_tick_input(payload, "t", tick_us=TICK_US), str)
    assert any(len(testbed_pb2.TickInput.FromString(p).envelopes) > 200 for p in inputs.values())
    # While the world waits for tick 1's reports, it says nothing was refused on the senders' topics (it said "the
    # world refused 477 input_overflow on its topics": the cut is the world's own, from others' inputs).
    assert sim.missing_why() == sim.actor_ids


FLOODERS = [f"atk{k}" for k in range(5)]


def _fcw_with_flooders(tmp_path: Path) -> Path:
    """Attack review 12's fcw-starve: fcw with five more cars in a third lane (external, as outside stacks)."""
    doc = yaml.safe_load((SCENARIO_DIR / "fcw.yaml").read_text(encoding="utf-8"))
    doc["road"]["lanes"].append({**doc["road"]["lanes"][1], "id": "eb3", "centerline": [[0, 7.0], [1500, 7.0]]})
    doc["actors"] += [
        {"id": a, "kind": "car", "lane": "eb3", "start_m": 40 + 12 * k, "speed_mps": 16.67, "external": True}
        for k, a in enumerate(FLOODERS)
    ]
    path = tmp_path / "fcw-starve.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _bsm(sender: str, seq: int, tick: int, tx_time_us: int, size: int = 0) -> bytes:
    """A BSM envelope of ``sender``'s, padded to about ``size`` bytes (an unknown field, taken) if ``size``."""
    frame = frame_pb2.MessageFrame(bsm=day1_pb2.BSM(id=temporary_id(sender))).SerializeToString()
    if size:
        pad = size - len(frame) - 64
        frame += b"\xc2\x3e" + bytes([pad & 0x7F | 0x80, pad >> 7]) + b"\0" * pad
    return testbed_pb2.Envelope(
        sender_id=sender, seq=seq, tick=tick, tx_time_us=tx_time_us, link=testbed_pb2.LINK_PC5, frame=frame
    ).SerializeToString()


def test_flooders_stamped_a_tick_early_do_not_push_the_leads_bsm_out_of_the_followers_input(tmp_path: Path) -> None:
    """Attack review 12 at the world's level: five outside cars each send 64 envelopes of 16 KiB a tick, stamped
    99 ms early so that they are delivered before anything else, 5 MiB to every receiver. The world used to cut the
    latest deliveries: the lead's BSM, stamped at the tick's time, never reached the follower (no warning, a
    collision), counted as ``unsendable_input`` against no one, flagged no one, and still counted as delivered
    (``delivery_ratio`` 0.974). Now every one of the lead's BSMs is in the follower's input, the flooders lose their
    latest deliveries, are counted (``input_overflow``) and flagged, and what they lost is not delivered."""
    sim = offline_sim(load_scenario(_fcw_with_flooders(tmp_path)))
    starts = {s.actor_id: s for s in sim._starts(external_only=False)}
    seqs = dict.fromkeys(sim.actor_ids, 0)
    lead_bsms = []
    for tick in range(6):
        inputs = sim.begin(tick)
        if tick:
            follower = testbed_pb2.TickInput.FromString(inputs["follower"])
            heard = [testbed_pb2.Envelope.FromString(e) for e in follower.envelopes]
            assert [e.seq for e in heard if e.sender_id == "lead"] == [tick], tick  # the lead's BSM of tick - 1
            assert {e.sender_id for e in heard} >= {"lead", *FLOODERS}  # every flooder keeps its share
            assert max(len(p) for p in inputs.values()) <= MAX_INPUT_BYTES
        t_us = tick * TICK_US
        for a in ["lead", *FLOODERS]:
            n, size, stamp = (1, 0, t_us) if a == "lead" else (MAX_TX_PER_TICK, 16_000, max(0, t_us - 99_000))
            for _ in range(n):
                seqs[a] += 1
                env = _bsm(a, seqs[a], tick, stamp, size)
                lead_bsms += [env] if a == "lead" else []
                sim.receive("tx", a, env, where=f"v2x/t/tx/{a}")
        for a in sim.actor_ids:
            s = starts.get(a)
            truth = testbed_pb2.TruthState(
                x_m=s.x_m + s.speed_mps * tick * 0.1, y_m=s.y_m, speed_mps=s.speed_mps, heading_deg=s.heading_deg
            ) if s is not None else testbed_pb2.TruthState()  # fmt: skip
            n = {"lead": 1, **dict.fromkeys(FLOODERS, MAX_TX_PER_TICK)}.get(a, 0)
            sim.receive("ack", a, testbed_pb2.Ack(actor_id=a, tick=tick, tx_count=n, truth=truth).SerializeToString())
        assert sim.missing() == []
        sim.step()
    stats = sim.inbound.stats
    assert set(stats.rejected) == {"input_overflow"}, stats.rejected  # no unsendable_input: nothing of the world's
    assert set(stats.rejected_by_actor) == set(FLOODERS)
    assert set(sim.inbound.flagged()) == set(FLOODERS)  # cut in 5 ticks (from 3 on, flagged)
    assert all(sim.inbound.flagged()[a] == {"input_overflow": c["input_overflow"]}
               for a, c in stats.conflicts.items())  # fmt: skip
    m = sim.metrics(0.0)
    cut = stats.rejected["input_overflow"]
    assert m["messages"]["cut"] == {"pc5": cut}
    assert (
        m["messages"]["delivered"]["pc5"] + m["messages"]["dropped"]["pc5"] + cut == sim.channel.stats.candidates["pc5"]
    )
    assert sum(len(v) for v in sim.channel.stats.withdrawn.values()) == cut
    assert len(sim.channel.stats.latencies_ms) == m["messages"]["delivered"]["pc5"]  # (no latency of a cut one)
    assert m["flagged"] == sim.inbound.flagged()


def test_an_input_with_a_number_no_host_takes_goes_without_that_part() -> None:
    """The net under the inbox's checks: a signal warp that is not finite, however it got past them, is not sent."""
    sim = offline_sim(load_scenario(RLVW))
    sim.begin(0)
    for a in sim.actor_ids:
        sim.receive("ack", a, _ack(a, 0))
    sim.step()
    sim._signal_warps = [_warp(at_s=math.nan), _warp(hold_s=1.0)]  # (past the inbox: as if it had missed them)
    for payload in sim.begin(1).values():
        ti = read_tick_input(payload, "t", tick_us=TICK_US)
        assert not isinstance(ti, str)
        assert list(ti.signal_warps) == [_warp(hold_s=1.0)]
    assert sim.inbound.stats.rejected["unsendable_input"] == len(sim.actor_ids)


@pytest.mark.broker
async def test_an_outside_bsm_stamped_before_tick_0_does_not_stall_a_lockstep_run_on_mosquitto(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Attack review 10, as it was found: an outside stack driving fcw's lead stamps its tick-0 BSM with the time of
    its GNSS fix, 5 ms before tick 0 (no malice needed). The world took it and delivered it before 0; the built-in
    follower, neighbour and rsu1 refused TickInput(1) for that, the run stalled 60 s and ended with no result. Now
    that envelope is refused (``bad_time``) and the run ends as the clean one does."""
    path = fcw_with_external(tmp_path, "lead")  # (its scripted brake is the stack's below: at 6 s)
    prefix = f"early-{uuid.uuid4().hex[:6]}"

    async def lead_stack() -> None:
        async with Stack(mosquitto.address.url, run_id=f"{prefix}-v2x", actor_id="lead", kind="car") as st:
            run = await st.start(timeout_s=60)
            state = VehicleState.at_start(run.me)
            async for tick in st.ticks(tick_timeout_s=60):
                if tick.n > 0:
                    state = state.advanced(tick.dt_s, -6.0 if tick.t_s - tick.dt_s >= 6.0 - 1e-9 else 0.0)
                if tick.n == 0:  # its own BSM envelope, stamped at the fix: 5 ms before the tick
                    st.seq += 1
                    env = testbed_pb2.Envelope(
                        sender_id="lead", seq=st.seq, tick=0, tx_time_us=tick.raw.time_us - 5_000,
                        link=testbed_pb2.LINK_PC5, frame=st.bsm(tick, state).SerializeToString(),
                    )  # fmt: skip
                    item = (topics.tx(st.run_id, "lead"), env.SerializeToString())
                    st._out.append(item)  # (what ``Stack.send`` does, with another time)
                    await st._publish(*item)
                else:
                    await st.send_bsm(tick, state)
                await st.ack(tick, state)

    stack = asyncio.create_task(lead_stack())
    try:
        started = time.monotonic()
        result = await run_scenario(load_scenario(path), broker=mosquitto.address.url, run_id=prefix, variants=["v2x"])
        await asyncio.wait_for(stack, 30)
    finally:
        stack.cancel()
    assert time.monotonic() - started < 50
    assert result["metrics"]["v2x"]["rejected"] == {"bad_time": 1}
    assert not result["metrics"]["v2x"]["rejected_by_agents"].get("follower"), result["metrics"]["v2x"]
    assert result["passed"], result["expectations"]


def _detection(x_m: float) -> Detection:
    return Detection(1, "rsu1/0", "camera", "pedestrian", 0.1, x_m, 1.0, 0.5, 0.0, 90.0, 0.5, 0.5, 0.2, 0.3)


@pytest.mark.parametrize("where", ["sensors", "replaced"])
def test_a_detection_that_is_not_finite_is_not_sent_whoever_built_it(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The net looks at an RSU's detections in its TickInput unless the sensors found the numbers they built them
    of finite (diff review 25: once a frame, cheaper than in each input): a NaN from the sensors, or a list the
    sensors did not build (put in its place after them), is still not sent, and counted."""
    sim = offline_sim(load_scenario(SCENARIO_DIR / "vrucw.yaml"))
    assert sim.sensors.roadside is not None
    built = [_detection(1.0), _detection(math.nan if where == "sensors" else 2.0)]
    monkeypatch.setattr(sim.sensors.roadside, "step", lambda t, targets: {"rsu1": built})
    sim.begin(0)
    for a in sim.actor_ids:
        sim.receive("ack", a, _ack(a, 0))
    sim.step()
    assert sim.sensors.detections_checked("rsu1") is (where == "replaced")
    if where == "replaced":
        bad = testbed_pb2.Detection(object_id=2, x_m=3.0, vy_mps=math.inf)
        sim.sensors.detections = {**sim.sensors.detections, "rsu1": [*sim.sensors.detections["rsu1"], bad]}
        assert not sim.sensors.detections_checked("rsu1")
    ti = read_tick_input(sim.begin(1)["rsu1"], "t", tick_us=TICK_US)
    assert not isinstance(ti, str)
    assert [d.x_m for d in ti.detections] == ([1.0] if where == "sensors" else [1.0, 2.0])
    assert sim.inbound.stats.rejected["unsendable_input"] == 1


def test_every_number_of_a_tick_inputs_repeated_parts_is_in_the_finite_table_and_the_fast_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The finite numbers are listed three times (diff review 26): ``FINITE_PARTS``, ``_finite``'s inline sum and
    the sensors' sum over what they build detections of. A field added to a part, or to the table, but not to a
    fast sum would let a NaN reach every host unseen: every number of every repeated part is in the table, and
    a NaN or an infinity in it is refused by ``tick_input_problem`` and keeps the sensors' list unchecked."""
    table = dict(FINITE_PARTS)
    numeric = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)
    for part in testbed_pb2.TickInput.DESCRIPTOR.fields:
        if not part.is_repeated or part.message_type is None:
            continue
        fields = [f.name for f in part.message_type.fields if f.type in numeric]
        if not fields:
            continue
        assert part.name in table, part.name
        for name in fields:
            for bad in (math.nan, math.inf):
                ti = testbed_pb2.TickInput(tick=1, time_us=TICK_US, tick_us=TICK_US)
                setattr(getattr(ti, part.name).add(), name, bad)
                item = getattr(ti, part.name)[0]
                assert any(not math.isfinite(n) for n in table[part.name](item)), f"{part.name}.{name}"
                assert tick_input_problem(ti) == NOT_FINITE, f"{part.name}.{name}"
    # The sensors: a NaN in any number a detection is built of (but its time, the world's own clock).
    sim = offline_sim(load_scenario(SCENARIO_DIR / "vrucw.yaml"))
    assert sim.sensors.roadside is not None
    good = _detection(1.0)
    numbers = [f.name for f in dataclasses.fields(Detection) if isinstance(getattr(good, f.name), float)]
    assert len(numbers) == 10
    for name in numbers:
        if name == "t_s":
            continue
        nan: dict[str, Any] = {name: math.nan}
        built = [good, dataclasses.replace(good, **nan)]
        monkeypatch.setattr(sim.sensors.roadside, "step", lambda t, targets, built=built: {"rsu1": built})
        detections = sim.sensors.roadside_detections(0.1)["rsu1"]
        sim.sensors.detections = {"rsu1": detections}
        assert not sim.sensors.detections_checked("rsu1"), name
        ti = testbed_pb2.TickInput(tick=1, time_us=TICK_US, tick_us=TICK_US, detections=detections)
        assert tick_input_problem(ti) == NOT_FINITE, name  # (and what it was built into is not finite)
    monkeypatch.setattr(sim.sensors.roadside, "step", lambda t, targets: {"rsu1": [good]})
    sim.sensors.detections = {"rsu1": sim.sensors.roadside_detections(0.1)["rsu1"]}
    assert sim.sensors.detections_checked("rsu1")  # (and a good one is)


def test_the_sensors_finite_detections_are_sent_as_built() -> None:
    """What the net lets through unlooked at is what the sensors built and checked, unchanged."""
    sim = offline_sim(load_scenario(SCENARIO_DIR / "vrucw.yaml"))
    sim.begin(0)
    for a in sim.actor_ids:
        sim.receive("ack", a, _ack(a, 0))
    sim.step()
    assert sim.sensors.detections_checked("rsu1") and not sim.sensors.detections_checked("car_a")
    ti = read_tick_input(sim.begin(1)["rsu1"], "t", tick_us=TICK_US)
    assert not isinstance(ti, str) and list(ti.detections) == sim.sensors.detections["rsu1"]
    assert not sim.inbound.stats.rejected


@pytest.mark.parametrize("rx_time_us", [-1, 100_001])
def test_a_delivery_time_outside_the_tick_is_not_sent_however_it_got_past_the_inbox(
    rx_time_us: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The net looks at the deliveries' times in the lists the channel hands the world (diff review 25: cheaper
    than in the message): one before 0 or after the tick's time is still not sent, and counted."""
    sim = offline_sim(load_scenario(RLVW))
    sim.begin(0)
    for a in sim.actor_ids:
        sim.receive("ack", a, _ack(a, 0))
    sim.step()
    due_split = sim.channel.due_split

    def with_a_bad_delivery(t_s: float, bulk: Any) -> Any:
        due, rest = due_split(t_s, bulk)
        got = due.setdefault(sim.world.slot_of("car_b"), Received())
        raw = _env("car_a", 1, 0, 0)
        got.envelopes.append(raw)
        got.rx_time_us.append(rx_time_us)
        got.sent.append(Transmission(0, sim.world.slot_of("car_a"), 1, 0.0, testbed_pb2.LINK_PC5, (), raw, "bsm"))
        got.delivery_s.append(rx_time_us / 1e6)
        return due, rest

    monkeypatch.setattr(sim.channel, "due_split", with_a_bad_delivery)
    ti = read_tick_input(sim.begin(1)["car_b"], "t", tick_us=TICK_US)
    assert not isinstance(ti, str) and all(0 <= r <= ti.time_us for r in ti.rx_time_us)
    assert sim.inbound.stats.rejected["unsendable_input"] == 1
