"""Seals between a run's world and the agents and fleets it starts (v2x.net.seal): what they refuse, and that
on an open broker forged inputs, Acks and envelopes for those parties are refused as ``forged`` and change
nothing (before: a chain of forged TickInputs stalled the run, a forged Ack moved a built-in actor)."""

from __future__ import annotations

import asyncio

import pytest

from tests.test_hardening import FCW, _ack, _clean, _intruder, _is_start, _until
from v2x.net import topics
from v2x.net.broker import BrokerAddress
from v2x.net.seal import SEAL_BYTES, RunSeal
from v2x.run.runner import run_variant
from v2x.wire import testbed_pb2


def test_a_seal_opens_only_for_its_topic_key_and_bytes() -> None:
    seal = RunSeal()
    body = testbed_pb2.TickInput(run_id="r-v2x", tick=7, time_us=700_000).SerializeToString()
    sealed = seal.seal("v2x/r-v2x/in/lead", body)
    assert len(sealed) == len(body) + SEAL_BYTES
    assert testbed_pb2.TickInput.FromString(sealed).tick == 7  # still the message: the seal is field 100
    assert len(testbed_pb2.TickInput.FromString(sealed).seal) == 28
    assert seal.open("v2x/r-v2x/in/lead", sealed) == body
    assert RunSeal(seal.key).open("v2x/r-v2x/in/lead", sealed) == body  # a worker with the run's key
    assert seal.open("v2x/r-v2x/in/follower", sealed) is None  # another actor's topic
    assert RunSeal().open("v2x/r-v2x/in/lead", sealed) is None  # another run's key
    assert seal.open("v2x/r-v2x/in/lead", body) is None  # no seal
    for k in (0, len(body) // 2, len(sealed) - 1):  # any octet changed
        tampered = bytearray(sealed)
        tampered[k] ^= 0x01
        assert seal.open("v2x/r-v2x/in/lead", bytes(tampered)) is None
    assert seal.open("v2x/r-v2x/in/lead", b"") is None
    assert seal.seal("t", body) != seal.seal("t", body)  # a new nonce each time
    assert "key" not in repr(seal) or "<key>" in repr(seal)
    with pytest.raises(ValueError, match="32 octets"):
        RunSeal(b"short")


@pytest.mark.broker
async def test_forged_inputs_acks_and_envelopes_for_the_runs_own_agents_change_nothing(
    embedded: BrokerAddress,
) -> None:
    """An intruder on the open broker, at tick 5 of fcw: a chain of 6 TickInputs for the follower's next ticks
    (its own input with the tick and time moved on), the follower's real sealed input with one octet changed,
    the same real input on the lead's topic, a teleporting Ack and a well-formed BSM envelope with the next seq
    for the lead, and a Hello for the neighbour. Each is refused as ``forged`` by whoever it was meant for, the
    run completes (a chain of more than 3 forged inputs stalled it before the seals) with the events,
    messages and latencies of the undisturbed run, and nobody is flagged."""
    clean = await _clean(embedded)
    run_id = "seal-forged"
    task = asyncio.create_task(run_variant(FCW, "v2x", seed=3, broker=embedded, run_id=run_id))
    async with _intruder(embedded, run_id, topics.tick_input(run_id, "follower"), topics.tx(run_id, "lead")) as client:
        await _until(client, _is_start)
        seen: dict[str, bytes] = {}

        def at_tick_5(topic: str, payload: bytes) -> bool:
            if topic.endswith("/tx/lead"):
                seen["lead_tx"] = payload
            if topic.endswith("/in/follower"):
                seen["input"] = payload
                return testbed_pb2.TickInput.FromString(payload).tick >= 5
            return False

        await _until(client, at_tick_5)
        real = testbed_pb2.TickInput.FromString(seen["input"])
        real.ClearField("seal")
        attack: list[tuple[str, bytes]] = []
        for k in range(1, 7):
            nxt = testbed_pb2.TickInput()
            nxt.CopyFrom(real)
            nxt.tick, nxt.time_us = real.tick + k, real.time_us + k * real.tick_us
            attack.append((topics.tick_input(run_id, "follower"), nxt.SerializeToString()))
        tampered = bytearray(seen["input"])
        tampered[len(tampered) // 2] ^= 0x40
        attack.append((topics.tick_input(run_id, "follower"), bytes(tampered)))
        attack.append((topics.tick_input(run_id, "lead"), seen["input"]))
        attack.append((topics.ack(run_id, "lead"), _ack("lead", real.tick + 1, x_m=400.0).SerializeToString()))
        env = testbed_pb2.Envelope.FromString(seen["lead_tx"])
        env.ClearField("seal")
        env.seq, env.tick = env.seq + 1, env.tick + 1
        attack.append((topics.tx(run_id, "lead"), env.SerializeToString()))
        hello = testbed_pb2.Hello(actor_id="neighbour", kind="car", software="x", protocol_version=1)
        attack.append((topics.join(run_id, "neighbour"), hello.SerializeToString()))
        for topic, payload in attack:
            await client.publish(topic, payload, qos=1)
    attacked = await asyncio.wait_for(task, 120)
    assert attacked.events == clean.events
    assert attacked.metrics["rejected"] == {"forged": 3}  # the Ack, the envelope and the Hello
    assert attacked.metrics["rejected_by_agents"] == {"follower": {"forged": 7}, "lead": {"forged": 1}}
    assert "conflicts" not in attacked.metrics and not attacked.metrics.get("flagged")
    for key in ("messages", "latency_ms", "delivery_ratio", "duplicates"):
        assert attacked.metrics[key] == clean.metrics[key]


def test_a_warning_may_name_only_a_figure_an_app_reports() -> None:
    """An attack review: Advisory.figure_name became a key of the warning's event, so a stack (or a forger,
    on an outside stack's topic) naming it "type" or "t_s" overwrote the event's own: two such warnings
    crashed the result's sort (no result at all), "type" hid a warning from the expectations, "t_s" 1e9 put
    it after the run. The world refuses such an Ack as out_of_range; a known figure passes."""
    from v2x.sim.inbound import ack_problem
    from v2x.sim.simulation import warning_event

    def ack(figure_name: str) -> testbed_pb2.Ack:
        a = testbed_pb2.Ack(actor_id="neighbour", tick=10)
        a.events.add(app=testbed_pb2.APP_FCW, raised_at_s=1.0, other_id="lead", figure_name=figure_name, figure=0.0)
        return a

    for bad in ("type", "t_s", "variant", "target", "x" * 40):
        assert "is not a figure an app reports" in ack_problem(ack(bad), run_end_s=14.0), bad
    assert ack_problem(ack("gap_m"), run_end_s=14.0) == ""
    assert ack_problem(ack(""), run_end_s=14.0) == ""
    adv = ack("type").events[0]
    assert warning_event("v2x", "neighbour", "lead", adv)["type"] == "warning"  # never overwritten, whoever sent it


def test_an_actor_cannot_flood_the_result_with_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """An attack review: a stack reporting 220 new warnings a tick made a 92 MB result.json (739 MB in the
    world). Past MAX_WARNINGS_PER_ACTOR (shrunk here) an actor's warnings are refused, counted."""
    from v2x.sim import simulation
    from v2x.sim.simulation import Simulation

    monkeypatch.setattr(simulation, "MAX_WARNINGS_PER_ACTOR", 5)
    sim = Simulation(FCW, variant="v2x", seed=0)
    for k in range(8):
        adv = testbed_pb2.Advisory(app=testbed_pb2.APP_FCW, other_id="lead", raised_at_s=0.1 * k)
        sim._record_warning("neighbour", adv)
        sim._record_warning("neighbour", adv)  # the same again: an echo, not counted twice
    sim._record_warning("follower", testbed_pb2.Advisory(app=testbed_pb2.APP_FCW, other_id="lead", raised_at_s=1.0))
    assert [e["target"] for e in sim.events if e["type"] == "warning"] == ["neighbour"] * 5 + ["follower"]
    assert sim.inbound.stats.rejected["too_many_warnings"] == 3 + 3  # (the echoes of refused ones are refused too)
