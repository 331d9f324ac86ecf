"""Agents without a broker: sans-I/O steps, fed by hand."""

from __future__ import annotations

import asyncio
import math

import pytest

from tests._agents import tick_ctx
from v2x.agents.base import Heard
from v2x.agents.vehicle import VehicleAgent
from v2x.run.runner import build_agents, environment
from v2x.scenario import load_scenario, route_for
from v2x.scenario.loader import SCENARIO_DIR
from v2x.wire import testbed_pb2
from v2x.wire.bsm import decode_bsm
from v2x.wire.envelope import temporary_id


def _fcw_vehicles() -> dict[str, VehicleAgent]:
    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    env = environment(sc)
    return {a.actor_id: a for a in build_agents(sc, env) if isinstance(a, VehicleAgent)}


def test_scripted_brake_stops_at_the_kinematic_distance() -> None:
    lead = _fcw_vehicles()["lead"]
    dt = 0.1
    for tick in range(0, 141):
        lead.step(tick_ctx(tick, dt=dt))
    v0, a, t_brake = 16.67, 6.0, 6.0
    expected = 130 + v0 * t_brake + v0 * v0 / (2 * a)
    assert lead.v == 0.0
    assert lead.s == pytest.approx(expected, abs=0.02)


def test_bsm_carries_position_speed_heading_in_wire_units_and_decodes_back() -> None:
    lead = _fcw_vehicles()["lead"]
    res = lead.step(tick_ctx(0))
    pc5 = [t for t in res.transmissions if t.link == testbed_pb2.LINK_PC5]
    assert len(pc5) == 1
    bsm = pc5[0].frame.bsm
    assert bsm.speed == round(16.67 / 0.02)
    assert bsm.heading == 7200  # due east = 90 degrees = 7200 x 0.0125
    assert bytes(bsm.id) == temporary_id("lead")
    remote = decode_bsm(bsm, now_s=0.0, frame=lead.env.frame, epoch=lead.env.epoch)
    assert remote is not None
    assert remote.x == pytest.approx(130.0, abs=0.02) and remote.y == pytest.approx(0.0, abs=0.02)
    assert remote.heading_rad == pytest.approx(0.0, abs=1e-4)


def test_fcw_app_warns_on_a_braking_lead_and_the_driver_brakes_after_the_reaction_time() -> None:
    cars = _fcw_vehicles()
    lead, follower, neighbour = cars["lead"], cars["follower"], cars["neighbour"]
    dt = 0.1
    first_warning: dict[str, float] = {}
    inbox: dict[str, list[Heard]] = {k: [] for k in cars}
    for tick in range(0, 100):
        t = round(tick * dt, 9)
        outputs = {}
        for name, car in cars.items():
            res = car.step(tick_ctx(tick, tuple(inbox[name]), dt=dt))
            outputs[name] = res
            if res.events:
                first_warning.setdefault(name, res.events[0].raised_at_s)  # the BSM's delivery time
        inbox = {k: [] for k in cars}
        for sender, res in outputs.items():  # ideal channel: every BSM heard next tick
            for tx in res.transmissions:
                if tx.link == testbed_pb2.LINK_PC5:
                    for receiver in cars:
                        if receiver != sender:
                            inbox[receiver].append(Heard(sender, tx.link, t + 0.002, t, tx.frame))
    assert "neighbour" not in first_warning
    assert 6.0 < first_warning["follower"] <= 6.3
    assert follower.driver is not None and follower.driver.brake_at_s == pytest.approx(first_warning["follower"] + 1.0)
    assert follower.v == 0.0 and lead.v == 0.0
    gap = lead.s - follower.s - (lead.length_m + follower.length_m) / 2
    assert gap > 0, "the warned driver stops short of the lead"
    assert neighbour.v == pytest.approx(16.67)


def test_route_follows_a_polyline_and_continues_past_its_end() -> None:
    sc = load_scenario(SCENARIO_DIR / "icw.yaml")
    route = route_for(sc, sc.actor("car_b"))
    assert route is not None
    pose = route.pose(200.0)
    assert (pose.x, pose.y) == pytest.approx((1.75, 0.0))
    assert pose.heading_rad == pytest.approx(math.pi / 2)
    beyond = route.pose(route.length + 10)
    assert beyond.y == pytest.approx(210.0)


def test_an_out_of_range_message_is_rejected_and_counted_not_raised() -> None:
    """A well-formed BSM whose speed is outside the standard's range (8191 = unavailable is the top) must
    not stop the receiver: it is counted as out_of_range and the next message is still read."""
    vehicles = _fcw_vehicles()
    follower, lead = vehicles["follower"], vehicles["lead"]
    good = lead.step(tick_ctx(0)).transmissions[0].frame
    broken = type(good)()
    broken.CopyFrom(good)
    broken.bsm.speed = 9000
    heard = (
        Heard("lead", testbed_pb2.LINK_PC5, 0.1, 0.0, broken),
        Heard("lead", testbed_pb2.LINK_PC5, 0.1, 0.0, good),
    )
    follower.step(tick_ctx(0))
    follower.step(tick_ctx(1, heard))
    assert follower.rejected == {"out_of_range": 1}
    assert temporary_id("lead") in follower.remotes  # the good one was taken


def test_one_transmission_is_decoded_once_for_all_its_receivers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host parses each envelope once per tick and its receivers share the decode: a BSM heard by the
    follower and the neighbour is converted once; each still keeps its own copy of the remote; a bad one
    is rejected and counted by each receiver."""
    from v2x.agents import base

    calls: list[int] = []
    real = decode_bsm

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(base, "decode_bsm", counting)
    vehicles = _fcw_vehicles()
    lead, follower, neighbour = vehicles["lead"], vehicles["follower"], vehicles["neighbour"]
    good = lead.step(tick_ctx(0)).transmissions[0].frame
    broken = type(good)()
    broken.CopyFrom(good)
    broken.bsm.speed = 9000
    shared_good = Heard("lead", testbed_pb2.LINK_PC5, 0.1, 0.0, good)
    shared_bad = Heard("lead", testbed_pb2.LINK_PC5, 0.1, 0.0, broken)
    for v in (follower, neighbour):
        v.step(tick_ctx(0))
        # each receiver gets its own Heard (its own receive time) around the shared frame and memo
        mine_good = Heard("lead", testbed_pb2.LINK_PC5, 0.105, 0.0, good, shared_good.memo)
        mine_bad = Heard("lead", testbed_pb2.LINK_PC5, 0.105, 0.0, broken, shared_bad.memo)
        v.step(tick_ctx(1, (mine_bad, mine_good)))
    assert len(calls) == 2  # one good and one bad decode, not four
    for v in (follower, neighbour):
        assert v.rejected == {"out_of_range": 1}
        assert temporary_id("lead") in v.remotes
    assert follower.remotes[temporary_id("lead")] == neighbour.remotes[temporary_id("lead")]


def test_host_parses_each_envelope_once_per_tick() -> None:
    """AgentHost._heard: the same envelope bytes in two agents' inputs give Heard objects that share the
    frame and memo; a malformed envelope is counted by every agent that got it."""
    from v2x.net.host import AgentHost
    from v2x.wire import frame_pb2

    vehicles = _fcw_vehicles()
    frame = vehicles["lead"].step(tick_ctx(0)).transmissions[0].frame
    env = testbed_pb2.Envelope(sender_id="lead", seq=1, tick=0, tx_time_us=0, frame=frame.SerializeToString())
    raw = env.SerializeToString()

    class _NoTransport:
        def route(self, *_: object) -> None: ...
        def on_connect(self, *_: object) -> None: ...

    host = AgentHost(_NoTransport(), "r1", [vehicles["follower"], vehicles["neighbour"]])  # type: ignore[arg-type]
    tick = testbed_pb2.TickInput(run_id="r1", tick=1, envelopes=[raw, b"\xff\x00junk"], rx_time_us=[100_000, 100_000])
    a = host._heard(host.slots["follower"], tick)
    b = host._heard(host.slots["neighbour"], tick)
    assert len(a) == len(b) == 1
    assert a[0].frame is b[0].frame and a[0].memo is b[0].memo
    assert isinstance(a[0].frame, frame_pb2.MessageFrame) and a[0].sender_id == "lead"
    assert host.slots["follower"].rejected == host.slots["neighbour"].rejected == {"malformed": 1}
    nxt = testbed_pb2.TickInput(run_id="r1", tick=2, envelopes=[raw], rx_time_us=[200_000])
    assert host._heard(host.slots["follower"], nxt)[0].memo is not a[0].memo  # a new tick, a fresh memo


def test_batch_decoded_bsms_are_what_decoding_each_gives() -> None:
    """``Environment.decode_bsms`` (a vehicle's whole tick of BSMs in one batch) leaves for ``Environment.bsm``
    what it decodes one at a time, whatever the receiver's time; a batch with a value out of range keeps
    nothing, so each BSM is decoded (and the bad one refused) on its own."""
    import random

    from v2x.wire.bsm import OwnState, encode_bsm

    env = _fcw_vehicles()["lead"].env
    rng = random.Random(3)
    frames = []
    for k in range(40):
        own = OwnState(
            x=rng.uniform(-2000, 2000), y=rng.uniform(-2000, 2000), speed_mps=rng.uniform(0, 40),
            heading_rad=rng.uniform(-math.pi, math.pi), accel_mps2=rng.uniform(-8, 3), length_m=rng.uniform(3, 12),
            width_m=2.0, height_m=1.5, kind="car", sigma_major_m=rng.choice([None, 0.3]), sigma_minor_m=None,
            braking=False, z=rng.uniform(-5, 5),
        )  # fmt: skip
        frames.append(encode_bsm(own, actor_id=f"v{k}", t_s=rng.uniform(0, 120), msg_count=k, frame=env.frame,
                                 epoch=env.epoch))  # fmt: skip
    for t in (0.5, 59.95, 60.05, 119.0):
        one = [Heard("x", testbed_pb2.LINK_PC5, t, t, f) for f in frames]
        batch = [Heard("x", testbed_pb2.LINK_PC5, t, t, f) for f in frames]
        env.decode_bsms(batch, t)
        assert all(("bsm", env.frame, env.epoch) in h.memo for h in batch)
        assert [env.bsm(h, t) for h in batch] == [env.bsm(h, t) for h in one]
    broken = frames[0].__class__()
    broken.CopyFrom(frames[0])
    broken.bsm.speed = 9000  # beyond the wire's range: decode_bsm raises ValueError
    heard = [Heard("x", testbed_pb2.LINK_PC5, 1.0, 1.0, f) for f in [*frames[:3], broken]]
    env.decode_bsms(heard, 1.0)
    assert not any(h.memo for h in heard)
    assert env.bsm(heard[0], 1.0) == decode_bsm(frames[0].bsm, now_s=1.0, frame=env.frame, epoch=env.epoch)
    with pytest.raises(ValueError):
        env.bsm(heard[3], 1.0)


def test_pruning_skips_the_pass_only_when_no_remote_is_too_old() -> None:
    """``_prune`` leaves the remotes as they are while the bound on their oldest time says none is too old, and
    otherwise drops what the full pass drops: the same remotes, in the same order, as filtering every time,
    whichever senders stop being heard, and with a time that is not a number among them."""
    import dataclasses
    import random

    from v2x.agents.base import TickResult
    from v2x.wire.bsm import OwnState, encode_bsm

    follower = _fcw_vehicles()["follower"]
    env, max_age = follower.env, follower.env.thresholds["max_age_s"]
    rng = random.Random(4)
    senders = [f"v{k}" for k in range(30)]
    last_heard = {s: -1.0 for s in senders}
    for tick in range(1, 120):
        t = round(tick * 0.1, 9)
        for s in senders:
            if rng.random() < 0.3 or last_heard[s] > t - 0.1 * rng.randint(0, 12):
                continue  # not heard this tick (some for longer than max_age)
            last_heard[s] = t
            own = OwnState(x=rng.uniform(-500, 500), y=0.0, speed_mps=10.0, heading_rad=0.0, accel_mps2=0.0,
                           length_m=4.5, width_m=1.8, height_m=1.5, kind="car", sigma_major_m=None,
                           sigma_minor_m=None, braking=False)  # fmt: skip
            frame = encode_bsm(own, actor_id=s, t_s=t, msg_count=tick, frame=env.frame, epoch=env.epoch)
            follower._on_heard(Heard(s, testbed_pb2.LINK_PC5, t, t, frame), t, TickResult(), t)
        if tick == 60:  # a remote whose time is not a number: every test drops it
            key = next(iter(follower.remotes))
            follower.remotes[key] = dataclasses.replace(follower.remotes[key], t_s=math.nan)
            follower._oldest = math.nan
        expected = {k: r for k, r in follower.remotes.items() if t - r.t_s <= max_age}
        follower._prune(t)
        assert list(follower.remotes.items()) == list(expected.items())


async def test_an_agent_pushed_ahead_by_forged_inputs_answers_the_worlds_ticks_again_and_counts_them() -> None:
    """Two forged TickInputs in a row (n+1, then n+2, before the world's n+1) pushed an agent past the world's
    tick: it refused the world's n+1 as bad_tick and the run stalled until the world gave up (found by an attack
    test). It now answers the world's inputs for the ticks it answered with the answers it gave (the forgery
    steers: docs/SECURITY.md), counts each as ``conflicting_input``, and goes on with the world's next tick."""
    from v2x.net import topics
    from v2x.net.host import AgentHost

    published: list[tuple[str, bytes]] = []

    class Wire:
        def route(self, *_: object) -> None: ...
        def on_connect(self, *_: object) -> None: ...

        async def publish(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
            published.append((topic, payload))

    host = AgentHost(Wire(), "r1", [_fcw_vehicles()["lead"]], n_ticks=3)  # type: ignore[arg-type]
    slot = host.slots["lead"]

    def tick_input(n: int, forged: bool = False) -> bytes:
        gnss = testbed_pb2.GnssReading(available=True, sigma_major_m=0.02, sigma_minor_m=0.02, state="rtk-fixed")
        if forged:
            gnss.east_error_m = 40.0  # (the forger moves the lead's fix)
        return testbed_pb2.TickInput(
            run_id="r1", tick=n, time_us=n * 100_000, tick_us=100_000, gnss=gnss, final=n == 3
        ).SerializeToString()

    for payload in (tick_input(0), tick_input(1, True), tick_input(2, True), tick_input(1), tick_input(2)):
        slot.queue.put_nowait(payload)
    slot.queue.put_nowait(tick_input(3))
    await asyncio.wait_for(host._serve(slot), 10)
    acks = [testbed_pb2.Ack.FromString(p) for t, p in published if t == topics.ack("r1", "lead")]
    assert [a.tick for a in acks] == [0, 1, 2, 1, 2, 3]
    assert acks[3] == acks[1] and acks[4] == acks[2]  # the answers given, again
    assert slot.rejected == {"conflicting_input": 2}
