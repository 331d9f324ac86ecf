"""Issue #12: a run nobody on the broker can crash, stall or steer. Each finding, attacked from outside
during a live run on a real broker (embedded amqtt; unique run ids), and what the world and the agents do
about it (docs/SECURITY.md)."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiomqtt
import pytest

from tests._mosquitto import Mosquitto
from v2x.net import topics
from v2x.net.broker import BrokerAddress
from v2x.net.host import AgentHost
from v2x.net.world import last_will
from v2x.run.runner import RunError, build_agents, environment, run_variant
from v2x.scenario import load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.sim.simulation import WorldReport
from v2x.wire import day1_pb2, frame_pb2, testbed_pb2
from v2x.wire.envelope import temporary_id

pytestmark = pytest.mark.broker

# The attacks below aim at fcw's built-in actors. Runs marked ``sealed=False`` leave those agents' messages
# unsealed, as open as an outside stack's topics are: what the world's and the agents' own checks withstand.
# With the run's seals (the default, v2x.net.seal) each of those messages is refused as ``forged`` instead
# (tests/test_seal.py).

FCW = load_scenario(SCENARIO_DIR / "fcw.yaml")
_CLEAN: dict[str, WorldReport] = {}


async def _clean(broker: BrokerAddress, variant: str = "v2x") -> WorldReport:
    if variant not in _CLEAN:
        _CLEAN[variant] = await run_variant(FCW, variant, seed=3, broker=broker, run_id=f"hard-clean-{variant}")
    return _CLEAN[variant]


@contextlib.asynccontextmanager
async def _intruder(broker: BrokerAddress, run_id: str, *filters: str) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(broker.host, broker.port, identifier=f"intruder-{run_id}") as client:
        for f in (topics.control(run_id), *filters):
            await client.subscribe(f)
        yield client


async def _until(client: aiomqtt.Client, pred: Callable[[str, bytes], bool]) -> None:
    async for message in client.messages:
        if pred(str(message.topic), bytes(message.payload)):
            return


def _is_start(topic: str, payload: bytes) -> bool:
    return topic.endswith("/control") and bool(payload) and testbed_pb2.Control.FromString(payload).command == 1


async def _world_start(client: aiomqtt.Client) -> bytes:
    """The bytes of the first START the intruder's ``client`` hears (within 30 s)."""
    async with asyncio.timeout(30):
        async for message in client.messages:
            if _is_start(str(message.topic), bytes(message.payload)):
                return bytes(message.payload)
    raise AssertionError("no START")


def _bsm_envelope(sender: str, bsm_id: bytes, seq: int, tick: int) -> bytes:
    frame = frame_pb2.MessageFrame(bsm=day1_pb2.BSM(msg_cnt=1, id=bsm_id))
    env = testbed_pb2.Envelope(
        sender_id=sender, seq=seq, tick=tick, link=testbed_pb2.LINK_PC5, frame=frame.SerializeToString()
    )
    return env.SerializeToString()


def _ack(actor: str, tick: int, **truth: float) -> testbed_pb2.Ack:
    ack = testbed_pb2.Ack(actor_id=actor, tick=tick, tx_count=1)
    fields = {"x_m": 100.0, "vx_mps": 16.67, "heading_deg": 90.0} | truth
    ack.truth.CopyFrom(testbed_pb2.TruthState(**fields))  # type: ignore[arg-type]
    return ack


async def test_no_single_message_crashes_stalls_or_changes_a_run(embedded: BrokerAddress) -> None:
    """The findings "one message stops any run" and "one forged Ack crashes the world": a TickInput for tick
    10^6, an Ack with tx_count 10^6, an Envelope on an ack topic, a retained STOP from a third party, truths
    of 1e308 and NaN, a warning raised at t = inf, Hellos of protocol 999 and of a tank, a BSM naming another
    sender, a TickInput of another run. The run completes with the clean run's events, every one counted."""
    clean = await _clean(embedded)
    run_id = "hard-one-message"
    task = asyncio.create_task(run_variant(FCW, "v2x", seed=3, broker=embedded, run_id=run_id, sealed=False))
    async with _intruder(embedded, run_id, topics.tick_input(run_id, "follower")) as client:
        await _until(client, _is_start)
        seen: dict[str, int] = {}

        def at_tick_5(topic: str, payload: bytes) -> bool:
            if topic.endswith("/in/follower"):
                seen["tick"] = testbed_pb2.TickInput.FromString(payload).tick
            return seen.get("tick", -1) >= 5

        await _until(client, at_tick_5)
        n = seen["tick"]
        far = testbed_pb2.TickInput(run_id=run_id, tick=10**6, time_us=10**11, tick_us=100_000)
        other_run = testbed_pb2.TickInput(run_id="someone-else", tick=n + 1, tick_us=100_000)
        huge = _ack("follower", n)
        huge.tx_count = 10**6
        envelope_as_ack = _bsm_envelope("follower", temporary_id("follower"), n, n)
        inf_warning = _ack("follower", n)
        inf_warning.events.add(app=testbed_pb2.APP_FCW, raised_at_s=math.inf, other_id="x")
        stop = testbed_pb2.Control(command=testbed_pb2.Control.COMMAND_STOP, run_id=run_id, reason="pwned")
        attack: list[tuple[str, bytes, bool]] = [
            (topics.tick_input(run_id, "lead"), far.SerializeToString(), False),
            (topics.tick_input(run_id, "neighbour"), other_run.SerializeToString(), False),
            (topics.ack(run_id, "follower"), huge.SerializeToString(), False),
            (topics.ack(run_id, "follower"), envelope_as_ack, False),
            (topics.ack(run_id, "follower"), _ack("follower", n, x_m=1e308).SerializeToString(), False),
            (topics.ack(run_id, "follower"), _ack("follower", n, y_m=math.nan).SerializeToString(), False),
            (topics.ack(run_id, "follower"), _ack("follower", n, vx_mps=200.0).SerializeToString(), False),
            (topics.ack(run_id, "follower"), inf_warning.SerializeToString(), False),
            (topics.ack(run_id, "follower"), _ack("follower", n + 10**6).SerializeToString(), False),
            (
                topics.join(run_id, "lead"),
                testbed_pb2.Hello(actor_id="lead", kind="car", protocol_version=999).SerializeToString(),
                False,
            ),
            (
                topics.join(run_id, "lead"),
                testbed_pb2.Hello(actor_id="lead", kind="tank", protocol_version=1).SerializeToString(),
                False,
            ),
            (topics.tx(run_id, "follower"), _bsm_envelope("follower", temporary_id("lead"), 10**6, n), False),
            (topics.control(run_id), stop.SerializeToString(), True),
        ]
        for topic, payload, retain in attack:
            await client.publish(topic, payload, qos=1, retain=retain)
    attacked = await asyncio.wait_for(task, 60)
    assert attacked.events == clean.events
    assert attacked.metrics["rejected"] == {
        "bad_tick": 1,
        "malformed": 1,
        "out_of_range": 5,
        "bad_hello": 2,
        "id_mismatch": 1,
        "forged_control": 1,
    }
    assert attacked.metrics["rejected_by_agents"] == {"lead": {"bad_tick": 1}, "neighbour": {"malformed": 1}}
    for key in ("messages", "latency_ms", "delivery_ratio"):
        assert attacked.metrics[key] == clean.metrics[key]
    # the world said its START again over the forged STOP, then STOP with its token at the end
    async with _intruder(embedded, run_id) as client:
        async for message in client.messages:
            ctrl = testbed_pb2.Control.FromString(bytes(message.payload))
            assert ctrl.command == testbed_pb2.Control.COMMAND_STOP and ctrl.reason == "" and len(ctrl.token) == 32
            break


async def _forged_lead_acks(
    embedded: BrokerAddress, run_id: str, ticks: range, tx_count: int | None = None
) -> WorldReport:
    """fcw's V2X run on ``embedded`` with, for each tick of ``ticks``, a forged Ack of the lead's (teleported to
    x 400 m; claiming ``tx_count`` transmissions, else ``_ack``'s one) published as soon as the world's input for
    it appears; the run's report."""
    task = asyncio.create_task(run_variant(FCW, "v2x", seed=3, broker=embedded, run_id=run_id, sealed=False))
    async with _intruder(embedded, run_id, topics.tick_input(run_id, "lead")) as client:
        await _until(client, _is_start)
        async for message in client.messages:
            if not str(message.topic).endswith("/in/lead"):
                continue
            tick = testbed_pb2.TickInput.FromString(bytes(message.payload)).tick
            if tick in ticks:
                forged = _ack("lead", tick, x_m=400.0)
                if tx_count is not None:
                    forged.tx_count = tx_count
                await client.publish(topics.ack(run_id, "lead"), forged.SerializeToString())
            if tick >= ticks[-1]:
                break
    return await asyncio.wait_for(task, 60)


async def test_conflicting_acks_are_counted_flagged_and_cannot_stall_the_run(embedded: BrokerAddress) -> None:
    """Two stacks driving one actor (or a forger racing it): every tick from 10 to 20 a second, different Ack
    for the lead (teleported, counting 60 transmissions). Whichever comes first is kept, the other counted
    as conflicting_ack; the tick completes once either is satisfied (no stall), and the lead is flagged."""
    report = await _forged_lead_acks(embedded, "hard-conflicts", range(10, 21), tx_count=60)
    assert report.metrics["rejected"].get("conflicting_ack", 0) >= 3
    assert report.metrics["conflicts"]["lead"]["ack"] >= 3
    assert "lead" in report.metrics["flagged"]


async def test_one_forged_ack_gets_the_actor_flagged(embedded: BrokerAddress) -> None:
    """Attack review 9: one forged Ack that came before the real one changed the verdict, counted as one
    conflicting_ack and nothing flagged (the flag took conflicts in 3 ticks). A second, different Ack for a
    tick flags the actor at once; one conflicting tick of envelopes would not."""
    report = await _forged_lead_acks(embedded, "hard-one-ack", range(10, 11))
    assert report.metrics["conflicts"]["lead"]["ack"] == 1  # (and its envelopes, when the forgery came first)
    assert list(report.metrics["flagged"]) == ["lead"] and report.metrics["flagged"]["lead"]["ack"] == 1


async def test_a_second_world_cannot_take_a_live_run_id(embedded: BrokerAddress) -> None:
    """A retained START of a run whose world is connected: a second run with that id refuses to start
    (v2x run exits 3), and leaves the first alone."""
    run_id = "hard-twice"
    first = asyncio.create_task(run_variant(FCW, "v2x", seed=3, broker=embedded, run_id=run_id))
    async with _intruder(embedded, run_id) as client:
        await _until(client, _is_start)
    with pytest.raises(RunError, match="run id hard-twice is in use"):
        await run_variant(FCW, "v2x", seed=3, broker=embedded, run_id=run_id)
    assert (await asyncio.wait_for(first, 60)).events == (await _clean(embedded)).events


async def test_a_second_world_cannot_take_a_run_id_whose_world_waits_for_its_actors(
    embedded: BrokerAddress, tmp_path: Path
) -> None:
    """Attack review 5: a world clears the retained Control when it claims its run id and says START only once
    its actors have joined, so while it waited for an outside stack a second run of the same --run-id started
    too, and one of the two failed. The waiting world now says its claim (topics.claim) until its START: the
    second refuses to start; once the first has ended (here: its stack never came), the id is free again."""
    from tests.test_sdk import fcw_with_external
    from v2x.net.world import RunIdInUse

    outside = load_scenario(fcw_with_external(tmp_path, "follower"))
    run_id = "hard-join-wait"
    first = asyncio.create_task(
        run_variant(outside, "v2x", seed=0, broker=embedded, run_id=run_id, join_timeout_s=6.0, fixed_run_id=True)
    )
    await asyncio.sleep(3.0)  # (well into its join wait)
    with pytest.raises(
        RunError, match=f"run id {run_id} is in use: another world claimed it within the last 10 s"
    ) as info:
        await run_variant(outside, "v2x", seed=0, broker=embedded, run_id=run_id, join_timeout_s=1.0, fixed_run_id=True)
    assert isinstance(info.value.__cause__, RunIdInUse) or "in use" in str(info.value)
    with pytest.raises(RunError, match="never joined"):
        await asyncio.wait_for(first, 30)
    with pytest.raises(RunError, match="never joined"):  # (not "in use": the first world's STOP freed it)
        await run_variant(outside, "v2x", seed=0, broker=embedded, run_id=run_id, join_timeout_s=1.0, fixed_run_id=True)


async def _drive_host(
    broker: BrokerAddress, run_id: str, host: AgentHost, inputs: list[bytes], actor: str
) -> list[testbed_pb2.Ack]:
    """Play the world for ``host``: publish ``inputs`` to ``actor`` one by one, collecting its Acks."""
    from v2x.net.transport import MqttTransport

    acks: list[testbed_pb2.Ack] = []
    got = asyncio.Event()
    world = MqttTransport(broker, f"fake-world-{run_id}")

    def on_ack(topic: str, payload: bytes) -> None:
        acks.append(testbed_pb2.Ack.FromString(payload))
        got.set()

    world.route(topics.all_of(run_id, "ack"), on_ack)
    ready = asyncio.Event()
    tasks = [asyncio.create_task(world.run(ready)), asyncio.create_task(host.transport.run())]
    serving = asyncio.create_task(host.run())
    await ready.wait()
    await host.transport.connected.wait()
    await asyncio.sleep(0.2)
    for payload in inputs:
        got.clear()
        await world.publish(topics.tick_input(run_id, actor), payload)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(got.wait(), 1.0)
    serving.cancel()
    world.stop()
    host.transport.stop()
    for t in tasks:
        t.cancel()
    await asyncio.gather(serving, *tasks, return_exceptions=True)
    return [a for a in acks if a.actor_id == actor]


async def test_an_agent_in_a_baseline_run_hears_nothing_and_takes_only_the_expected_tick(
    embedded: BrokerAddress,
) -> None:
    """The ghost BSM: a TickInput carrying the lead's BSM to the follower of a baseline (no V2X) run. The
    follower hears nothing and counts it; a TickInput for tick 10^6 or a copy of an old tick's is rejected as
    bad_tick and the next real tick is still served; a different TickInput for the tick already answered is
    conflicting_input, answered with the first answer."""
    from v2x.run.runner import make_transport

    run_id = "hard-ghost-baseline"
    agents = [a for a in build_agents(FCW, environment(FCW)) if a.actor_id == "follower"]
    host = AgentHost(make_transport(embedded, f"agents-{run_id}"), run_id, agents, v2x=False, n_ticks=FCW.n_ticks)
    ghost = testbed_pb2.Envelope(sender_id="lead", seq=1, tick=0, link=testbed_pb2.LINK_PC5).SerializeToString()

    def tick(n: int, *envelopes: bytes) -> bytes:
        ti = testbed_pb2.TickInput(run_id=run_id, tick=n, time_us=n * 100_000, tick_us=100_000)
        ti.envelopes.extend(envelopes)
        ti.rx_time_us.extend([n * 100_000] * len(envelopes))
        return ti.SerializeToString()

    inputs = [tick(0), tick(1, ghost), tick(10**6), tick(1, ghost, ghost), tick(0), tick(2)]
    acks = await _drive_host(embedded, run_id, host, inputs, "follower")
    assert [a.tick for a in acks] == [0, 1, 1, 2]  # tick 1 asked again (differently): the same answer
    assert acks[1].SerializeToString() == acks[2].SerializeToString()
    assert dict(acks[-1].rejected) == {"unexpected_envelope": 1, "bad_tick": 2, "conflicting_input": 1}


async def test_a_stop_without_the_runs_token_is_ignored_and_with_it_ends_the_agents(embedded: BrokerAddress) -> None:
    from v2x.run.runner import make_transport

    run_id = "hard-token"
    agents = [a for a in build_agents(FCW, environment(FCW)) if a.actor_id == "follower"]
    tp = make_transport(embedded, f"agents-{run_id}")
    host = AgentHost(tp, run_id, agents, token="s3cret", n_ticks=FCW.n_ticks)
    tasks = [asyncio.create_task(tp.run()), asyncio.create_task(host.run())]
    await tp.connected.wait()
    async with _intruder(embedded, run_id) as client:
        stop = testbed_pb2.Control(command=testbed_pb2.Control.COMMAND_STOP, run_id=run_id)
        await client.publish(topics.control(run_id), stop.SerializeToString(), qos=1)
        stop.reason = "world lost"  # a restarting broker sends the world's will: not the end
        stop.token = "s3cret"
        await client.publish(topics.control(run_id), stop.SerializeToString(), qos=1)
        await asyncio.sleep(0.3)
        assert not tasks[1].done() and host.ignored_controls == 1
        stop.reason = "run error: the world gave up"
        await client.publish(topics.control(run_id), stop.SerializeToString(), qos=1)
        await asyncio.wait_for(tasks[1], 5)
    assert host.stop_reason == "run error: the world gave up"
    tp.stop()
    tasks[0].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_envelopes_no_ack_claims_neither_silence_nor_steer_a_run(embedded: BrokerAddress) -> None:
    """Three one-message attacks from an outside attack test (session 14), each of which changed or stalled a
    run before: a copy of the lead's own envelope with its seq 64 ahead (every later real envelope of the lead
    then looked like an old copy: no FCW in time, a crash), an FCW advisory to the neighbour on the tx topic of
    the platform, which sends nothing in fcw, and a Uu envelope naming the follower 900 times (a 13 MB
    TickInput the follower refused, the world resending it until the run gave up). The run keeps the clean
    run's events; the first two are counted as unclaimed_tx (more than the actor's Ack counts) and flag
    nothing else, the third as bad_destination."""
    clean = await _clean(embedded)
    run_id = "hard-unclaimed"
    task = asyncio.create_task(run_variant(FCW, "v2x", seed=3, broker=embedded, run_id=run_id, sealed=False))
    async with _intruder(embedded, run_id, topics.tx(run_id, "lead")) as client:
        await _until(client, _is_start)
        caught: dict[str, testbed_pb2.Envelope] = {}

        def lead_at_tick_20(topic: str, payload: bytes) -> bool:
            if topic.endswith("/tx/lead"):
                env = testbed_pb2.Envelope.FromString(payload)
                caught["env"] = env
                return env.tick >= 20
            return False

        await _until(client, lead_at_tick_20)
        real = caught["env"]
        ahead = testbed_pb2.Envelope()
        ahead.CopyFrom(real)
        ahead.seq = real.seq + 64
        advice = testbed_pb2.Advisory(
            app=testbed_pb2.APP_FCW, target_id="neighbour", other_id="lead", source_id="cloud", raised_at_s=2.0
        )
        forged = testbed_pb2.Envelope(
            sender_id="cloud", seq=7, tick=real.tick, tx_time_us=real.tx_time_us, link=testbed_pb2.LINK_UU,
            frame=frame_pb2.MessageFrame(advisory=advice).SerializeToString(),
        )  # fmt: skip
        flood = testbed_pb2.Envelope()
        flood.CopyFrom(forged)
        flood.seq = 8
        flood.dest_ids.extend(["follower"] * 900)
        forged.dest_ids.append("neighbour")
        for topic, env in ((topics.tx(run_id, "lead"), ahead), (topics.tx(run_id, "cloud"), forged)):
            await client.publish(topic, env.SerializeToString(), qos=1)
        await client.publish(topics.tx(run_id, "cloud"), flood.SerializeToString(), qos=1)
    attacked = await asyncio.wait_for(task, 60)
    assert attacked.events == clean.events
    assert attacked.metrics["rejected"] == {"unclaimed_tx": 2, "bad_destination": 1}
    assert attacked.metrics["duplicates"] == 0  # none of the lead's real envelopes was taken for an old copy
    for key in ("messages", "latency_ms", "delivery_ratio"):
        assert attacked.metrics[key] == clean.metrics[key]


@pytest.mark.parametrize("on", ["mosquitto", "embedded"])
async def test_retained_messages_on_actors_topics_are_counted_and_never_acted_on(
    on: str, embedded: BrokerAddress, mosquitto: Mosquitto
) -> None:
    """Found by an outside attack test (session 14): a retained TickInput(0) on the follower's input topic, saying
    it collided with the lead, made every later run of that run id stand the follower still (fcw baseline:
    no crash). Only a run's control topic is ever retained: on a broker that keeps such a message (Mosquitto)
    it is counted (the follower's ``retained`` rejection; the world's, for one on an Ack topic) and not acted
    on; the embedded broker does not keep it at all (since session 21: attack review 5)."""
    clean = await _clean(embedded, "baseline")
    broker = mosquitto.address if on == "mosquitto" else embedded
    run_id = f"hard-retained-baseline-{on}"
    poison = testbed_pb2.TickInput(run_id=run_id, tick=0, tick_us=100_000)
    poison.collisions.add(other_id="lead", t_s=0.0, relative_speed_mps=0.0)
    stale_ack = _ack("lead", 0, x_m=0.0)
    async with _intruder(broker, run_id) as client:
        await client.publish(topics.tick_input(run_id, "follower"), poison.SerializeToString(), qos=1, retain=True)
        await client.publish(topics.ack(run_id, "lead"), stale_ack.SerializeToString(), qos=1, retain=True)
    try:
        attacked = await asyncio.wait_for(run_variant(FCW, "baseline", seed=3, broker=broker, run_id=run_id), 60)
    finally:
        async with _intruder(broker, run_id) as client:
            for topic in (topics.tick_input(run_id, "follower"), topics.ack(run_id, "lead")):
                await client.publish(topic, b"", qos=1, retain=True)
    assert attacked.events == clean.events
    if on == "mosquitto":
        assert attacked.metrics["rejected"] == {"retained": 1}
        assert attacked.metrics["rejected_by_agents"] == {"follower": {"retained": 1}}
    else:
        assert attacked.metrics["rejected"] == {} and attacked.metrics["rejected_by_agents"] == {}


async def test_a_stop_with_the_runs_token_that_the_world_did_not_send_ends_nothing(embedded: BrokerAddress) -> None:
    """Found by an outside attack test (session 14): the token is in the retained START for every subscriber, and a
    STOP carrying it ended the built-in agents; the world then waited 60 s for their reports and gave up, with
    no result. Agents in the world's process obey only the STOP their world sent: the run completes with the
    clean run's events and the forgery is counted."""
    clean = await _clean(embedded)
    run_id = "hard-token-stop"
    task = asyncio.create_task(run_variant(FCW, "v2x", seed=3, broker=embedded, run_id=run_id))
    async with _intruder(embedded, run_id, topics.tick_input(run_id, "follower")) as client:
        start = testbed_pb2.Control()

        def started(topic: str, payload: bytes) -> bool:
            if _is_start(topic, payload):
                start.ParseFromString(payload)
            return topic.endswith("/in/follower") and testbed_pb2.TickInput.FromString(payload).tick >= 20

        await _until(client, started)
        stop = testbed_pb2.Control(
            command=testbed_pb2.Control.COMMAND_STOP, run_id=run_id, token=start.token, reason="run error: pwned"
        )
        await client.publish(topics.control(run_id), stop.SerializeToString(), qos=1)
    attacked = await asyncio.wait_for(task, 60)
    assert attacked.events == clean.events
    assert attacked.metrics["rejected"] == {"forged_control": 1}


async def test_a_copy_of_the_worlds_last_will_does_not_free_its_run_id(embedded: BrokerAddress) -> None:
    """An attack review: the Last Will ("world lost") carries the START's public token, so a retained copy
    published during the run read as the world's own will; it was left standing, and a second world took the
    live run's id. The world now says its START again over it."""
    run_id = "hard-will"
    first = asyncio.create_task(run_variant(FCW, "v2x", seed=3, broker=embedded, run_id=run_id))
    async with _intruder(embedded, run_id) as client:
        token = testbed_pb2.Control.FromString(await _world_start(client)).token
        topic, will, _ = last_will(FCW, run_id, token)  # (the bytes of the world's own)
        await client.publish(topic, will, qos=1, retain=True)
        await asyncio.wait_for(_until(client, _is_start), 10)  # the world says its START again
    with pytest.raises(RunError, match="run id hard-will is in use"):
        await run_variant(FCW, "v2x", seed=3, broker=embedded, run_id=run_id)
    assert (await asyncio.wait_for(first, 60)).events == (await _clean(embedded)).events


async def _retained(broker: BrokerAddress, run_id: str) -> bytes:
    async with aiomqtt.Client(broker.host, broker.port, identifier=f"reader-{run_id}") as client:
        await client.subscribe(topics.control(run_id))
        async with asyncio.timeout(5):
            async for message in client.messages:
                return bytes(message.payload)
    raise AssertionError("unreachable")


async def test_copies_of_the_will_in_a_row_do_not_free_the_run_id(mosquitto: Mosquitto) -> None:
    """Attack review 3's #1: two copies of the Last Will 0.2 s apart. The world said its START again over the
    first, and dropped the second (at most once a second): it stayed retained and a second `v2x run` took the
    live run's id. Now one that comes sooner is answered at the end of that second, and a second world that
    finds a "world lost" waits that long for its START. On Mosquitto, in real time (the run lasts 14 s)."""
    broker = mosquitto.address
    run_id = "hard-will-twice"
    first = asyncio.create_task(run_variant(FCW, "v2x", seed=3, broker=broker, run_id=run_id, mode="realtime"))
    async with _intruder(broker, run_id) as client:
        start = await _world_start(client)
        topic, will, _ = last_will(FCW, run_id, testbed_pb2.Control.FromString(start).token)
        await client.publish(topic, will, qos=1, retain=True)
        await asyncio.sleep(0.2)
        await client.publish(topic, will, qos=1, retain=True)
        # a second world at once, while the second copy is retained
        with pytest.raises(RunError, match=f"run id {run_id} is in use"):
            await run_variant(FCW, "v2x", seed=3, broker=broker, run_id=run_id)
        assert await _retained(broker, run_id) == start
        for _ in range(10):  # a burst
            await client.publish(topic, will, qos=1, retain=True)
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)
        assert await _retained(broker, run_id) == start
    with pytest.raises(RunError, match=f"run id {run_id} is in use"):
        await run_variant(FCW, "v2x", seed=3, broker=broker, run_id=run_id)
    report = await asyncio.wait_for(first, 60)
    assert any(e["type"] == "warning" for e in report.events)


@pytest.mark.broker
async def test_a_cleared_start_does_not_free_a_fixed_run_id(mosquitto: Mosquitto) -> None:
    """Attack review 4: someone clears the retained Control (an empty retained message) every 0.05 s; the live
    world says its START again once a second, so a second world with the same fixed run id found nothing there
    and took the id. A world with a fixed run id now listens a while for a live START when it finds none."""
    broker = mosquitto.address
    run_id = "hard-cleared"
    first = asyncio.create_task(run_variant(FCW, "v2x", seed=3, broker=broker, run_id=run_id, mode="realtime"))
    async with _intruder(broker, run_id) as client:
        await _world_start(client)

        async def clear() -> None:
            while True:
                await client.publish(topics.control(run_id), b"", qos=1, retain=True)
                await asyncio.sleep(0.05)

        clearing = asyncio.create_task(clear())
        try:
            await asyncio.sleep(0.5)
            with pytest.raises(RunError, match=f"run id {run_id} is in use"):
                await run_variant(FCW, "v2x", seed=3, broker=broker, run_id=run_id, fixed_run_id=True)
        finally:
            clearing.cancel()
    report = await asyncio.wait_for(first, 60)
    assert any(e["type"] == "warning" for e in report.events)
