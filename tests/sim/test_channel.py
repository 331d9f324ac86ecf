"""The channel stage alone (no scenario, no broker): which link model each transmission gets, who can hear
it, when it is handed out, and what is counted."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from v2x.core import ActorKind, SpatialGrid, WorldState
from v2x.scenario.model import NetworkSpec
from v2x.sim.channel import Channel, Received, Transmission
from v2x.wire import testbed_pb2

# id -> (kind, x, has a PC5 radio)
ACTORS = {
    "car_a": (ActorKind.CAR, 0.0, True),
    "car_b": (ActorKind.CAR, 50.0, True),
    "car_far": (ActorKind.CAR, 5000.0, True),  # far beyond PC5 range
    "ped": (ActorKind.PEDESTRIAN, 10.0, False),  # unequipped
    "rsu": (ActorKind.RSU, 20.0, True),
    "edge": (ActorKind.RSU, 0.0, False),  # the platform: no radio
}


def _channel(
    network: NetworkSpec | None = None, *, enabled: bool = True, seed: int = 1, rsu_range_m: float | None = None
) -> Channel:
    w = WorldState(capacity=8)
    radios = np.zeros(w.capacity, dtype=np.bool_)
    for actor_id, (kind, x, radio) in ACTORS.items():
        s = w.add(actor_id, kind, 4.5, 1.8)
        w.x[s] = x
        radios[s] = radio
    coverage = None
    if rsu_range_m is not None:
        coverage = np.full(w.capacity, np.inf)
        coverage[w.slot_of("rsu")] = rsu_range_m
    return Channel(
        w,
        network or NetworkSpec(),
        rng=np.random.default_rng(seed),
        pc5_receivers=radios,
        platform_slots={w.slot_of("edge")},
        enabled=enabled,
        pc5_range_m=coverage,
    )


def _tx(
    ch: Channel, sender: str, seq: int, link: int, dests: tuple[str, ...] = (), t: float = 0.0, msg: str = "bsm"
) -> Transmission:
    return Transmission(0, ch.world.slot_of(sender), seq, t, link, dests, f"{sender}/{seq}".encode(), msg)


def _grid(ch: Channel) -> SpatialGrid:
    return SpatialGrid.build(ch.world, ch.cell_m)


def test_pc5_reaches_only_equipped_receivers_in_range() -> None:
    ch = _channel()
    n = 200
    ch.transmit([_tx(ch, "car_a", k, testbed_pb2.LINK_PC5) for k in range(n)], _grid(ch))
    st = ch.stats
    # in range and with a radio: car_b (50 m) and rsu (20 m); not ped (no OBU), edge (no radio), car_far
    assert st.sent == {"pc5": n} and st.candidates == {"pc5": 2 * n}
    assert st.delivered["pc5"] + st.dropped["pc5"] == 2 * n and 0 < st.dropped["pc5"] < n // 5  # PDR ~0.976
    assert len(st.latencies_ms) == st.delivered["pc5"] == len(st.latencies_by_channel["pc5"])
    assert set(st.latencies_by_message) == {"bsm"}
    got = ch.due(1.0)
    slot = ch.world.slot_of
    assert set(got) == {slot("car_b"), slot("rsu")}
    assert sum(len(r.envelopes) for r in got.values()) == st.delivered["pc5"]
    assert ch.in_flight == 0 and ch.payloads == {}


def test_an_rsus_range_bounds_whom_it_reaches_and_hears_over_pc5() -> None:
    """The RSU (x = 20 m) with a range of 25 m: it reaches car_a (20 m away), not car_b (30 m), and hears car_a,
    not car_b; car_a and car_b still hear each other (50 m, within the PC5 profile's range). The pairs beyond
    the RSU's range are not candidates: they are neither delivered nor counted as dropped."""
    ch = _channel(rsu_range_m=25.0, seed=3)
    slot = ch.world.slot_of
    n = 100
    ch.transmit(
        [_tx(ch, sender, k, testbed_pb2.LINK_PC5) for sender in ("rsu", "car_a", "car_b") for k in range(n)],
        _grid(ch),
    )
    st = ch.stats
    assert st.candidates == {"pc5": 4 * n}  # rsu -> car_a, car_a -> rsu and car_b, car_b -> car_a
    assert st.delivered["pc5"] + st.dropped["pc5"] == 4 * n
    got = ch.due(1.0)
    heard = {(r, env.split(b"/")[0].decode()) for r, received in got.items() for env in received.envelopes}
    assert heard == {
        (slot("car_a"), "rsu"),
        (slot("car_a"), "car_b"),
        (slot("rsu"), "car_a"),
        (slot("car_b"), "car_a"),
    }
    wide = _channel(rsu_range_m=30.0, seed=3)  # car_b at exactly 30 m: within
    wide.transmit([_tx(wide, "car_b", 0, testbed_pb2.LINK_PC5)], _grid(wide))
    assert wide.stats.candidates == {"pc5": 2}


def test_wired_is_addressed_lossless_1_to_2_ms_and_handed_out_when_due() -> None:
    ch = _channel()
    first = _tx(ch, "rsu", 1, testbed_pb2.LINK_WIRED, ("edge",), t=0.05, msg="rsm")
    second = _tx(ch, "rsu", 2, testbed_pb2.LINK_WIRED, ("edge",), t=0.06, msg="rsm")
    ch.transmit([first, second], _grid(ch))
    st = ch.stats
    assert (st.sent, st.candidates, st.delivered, st.dropped) == (
        {"wired": 2},
        {"wired": 2},
        {"wired": 2},
        {"wired": 0},
    )
    assert all(1.0 <= ms <= 2.0 for ms in st.latencies_ms) and len(st.latencies_by_message["rsm"]) == 2
    assert ch.due(0.05) == {} and ch.in_flight == 2  # sent at 50 ms, arrives at 51-52 ms
    got = ch.due(0.1)
    [(receiver, received)] = got.items()
    assert receiver == ch.world.slot_of("edge") and received.envelopes == [first.raw, second.raw]
    assert 51_000 <= received.rx_time_us[0] <= 52_000 and 61_000 <= received.rx_time_us[1] <= 62_000
    assert received.rx_time_us[0] == round(0.05e6 + st.latencies_ms[0] * 1e3)
    assert ch.in_flight == 0 and ch.payloads == {} and ch.due(0.2) == {}


def test_uu_goes_up_from_road_users_and_down_from_the_platform() -> None:
    ch = _channel()
    up = _tx(ch, "car_a", 1, testbed_pb2.LINK_UU, ("edge",), msg="bsm")
    down = _tx(ch, "edge", 1, testbed_pb2.LINK_UU, ("car_a", "car_b"), msg="advisory")
    ch.transmit([up, down], _grid(ch))
    st = ch.stats
    assert st.sent == {"uu": 2} and st.candidates == {"uu": 3}  # one per destination
    assert {c: len(v) for c, v in st.latencies_by_channel.items()} == {"uu-up": 1, "uu-down": 2}
    assert {m: len(v) for m, v in st.latencies_by_message.items()} == {"bsm": 1, "advisory": 2}
    got = ch.due(1.0)
    slot = ch.world.slot_of
    assert got[slot("edge")].envelopes == [up.raw]
    assert got[slot("car_a")].envelopes == got[slot("car_b")].envelopes == [down.raw]


def test_uu_uplink_and_downlink_draw_from_their_own_delay_models() -> None:
    ch = _channel(NetworkSpec(uu="5g-uu-nsa-public"))  # uplink 8 ms + gamma (mean 13); downlink 5 ms + gamma (mean 8)
    n = 400
    batch = [_tx(ch, "car_a", k, testbed_pb2.LINK_UU, ("edge",)) for k in range(n)]
    batch += [_tx(ch, "edge", k, testbed_pb2.LINK_UU, ("car_a",)) for k in range(n)]
    ch.transmit(batch, _grid(ch))
    up = np.array(ch.stats.latencies_by_channel["uu-up"])
    down = np.array(ch.stats.latencies_by_channel["uu-down"])
    assert len(up) == len(down) == n
    assert up.min() >= 8.0 and down.min() >= 5.0 and down.min() < 8.0
    assert up.mean() == pytest.approx(13.0, rel=0.1) and down.mean() == pytest.approx(8.0, rel=0.1)
    assert ch.stats.sent["uu"] == 2 * n


def test_the_baseline_channel_hears_nothing_and_draws_nothing() -> None:
    ch = _channel(enabled=False)
    before = ch.rng.bit_generator.state
    ch.transmit(
        [_tx(ch, "car_a", 1, testbed_pb2.LINK_PC5), _tx(ch, "rsu", 1, testbed_pb2.LINK_WIRED, ("edge",))], _grid(ch)
    )
    assert ch.rng.bit_generator.state == before
    assert ch.stats.sent == {} and ch.in_flight == 0 and ch.due(1.0) == {}


def test_same_seed_same_deliveries_and_the_draws_follow_the_batch_order() -> None:
    def run(seed: int) -> dict[int, Received]:
        ch = _channel(seed=seed)
        batch = [_tx(ch, "car_a", k, testbed_pb2.LINK_PC5) for k in range(50)]
        batch += [_tx(ch, "rsu", k, testbed_pb2.LINK_WIRED, ("edge",)) for k in range(5)]
        ch.transmit(batch, _grid(ch))
        return ch.due(1.0)

    assert run(3) == run(3)
    assert run(3) != run(4)


@pytest.mark.parametrize("start", [0, 70_000, (1 << 31) - 50])
@pytest.mark.parametrize("tail", [True, False])
def test_due_split_hands_the_marked_receivers_over_as_arrays_and_the_rest_as_due_does(tail: bool, start: int) -> None:
    """A mask that marks every slot from one on (the fleets' vehicles after the actors: the deliveries' tail,
    taken as views) and one that marks slots here and there: the same split as ``due``'s deliveries. The
    run's transmissions numbered from 0, from beyond 2^16 (the payload offsets wrap in uint16) and across
    2^31 (int64 indices)."""

    def fill(ch: Channel) -> None:
        batch = [_tx(ch, "car_a", k, testbed_pb2.LINK_PC5, t=0.001 * k) for k in range(60)]
        batch += [_tx(ch, "rsu", k, testbed_pb2.LINK_PC5, t=0.001 * k) for k in range(40)]
        batch += [_tx(ch, "edge", 1, testbed_pb2.LINK_UU, ("car_a", "car_b"), msg="advisory")]
        ch.transmit(batch, _grid(ch))

    reference, ch = _channel(), _channel()
    fill(reference)
    ch._next_tx_index = start
    fill(ch)
    everything = reference.due(0.05)
    slot = ch.world.slot_of
    bulk = np.zeros(ch.world.capacity, dtype=np.bool_)
    if tail:
        bulk[slot("car_b") :] = True
    else:
        bulk[[slot("car_b"), slot("rsu")]] = True
    single, arrays = ch.due_split(0.05, bulk)
    assert single == {s: r for s, r in everything.items() if not bulk[s]} and single
    assert ch.in_flight == reference.in_flight > 0  # what is not due yet stays with both
    assert {k - start for k in ch.payloads} == reference.payloads.keys()
    # the arrays: by receiver, each delivery's payload and time as ``due`` hands them out
    assert arrays.payload.dtype == np.uint16 and len(set(arrays.payloads)) == len(arrays.payloads)
    receivers = arrays.receiver.tolist()
    assert receivers == sorted(receivers) and set(receivers) == {s for s in everything if bulk[s]}
    for s in set(receivers):
        mine = arrays.receiver == s
        assert [arrays.payloads[k] for k in arrays.payload[mine]] == everything[s].envelopes
        times = np.rint(arrays.deliveries.delivery_time_s[mine] * 1e6).astype(np.int64).tolist()
        assert times == everything[s].rx_time_us


def test_global_tx_indices_go_to_int64_only_beyond_int32() -> None:
    """The channel numbers transmissions over the whole run: in the fan-out's int32 column while they fit it,
    in int64 after some 10^6 ticks of 2,000 transmissions; either way the same envelopes are handed out."""
    got = {}
    for start in (0, (1 << 31) - 3):
        ch = _channel()
        ch._next_tx_index = start
        batch = [_tx(ch, "car_a", k, testbed_pb2.LINK_PC5, msg=("bsm", "rsm")[k % 2]) for k in range(8)]
        ch.transmit(batch, _grid(ch))
        assert ch.pending.tx_index.dtype == (np.int32 if start == 0 else np.int64)
        assert int(ch.pending.tx_index.min()) >= start and int(ch.pending.tx_index.max()) < start + 8
        got[start] = ch.due(1.0)
        assert set(ch.stats.latencies_by_message) == {"bsm", "rsm"}
    assert {r: v.envelopes for r, v in got[0].items()} == {r: v.envelopes for r, v in got[(1 << 31) - 3].items()}


@pytest.mark.parametrize("start", [0, 70_000, (1 << 31) - 3])
def test_due_split_when_the_marked_receivers_heard_every_transmission(start: int) -> None:
    """Every transmission heard by some marked receiver (the fleets' usual tick): each payload's index is its
    offset from the first, handed over as it was computed; the same envelopes as ``due``."""
    reference, ch = _channel(), _channel()
    ch._next_tx_index = start
    for c in (reference, ch):
        c.transmit([_tx(c, "car_a", k, testbed_pb2.LINK_PC5, t=0.001 * k) for k in range(5)], _grid(c))
    everything = reference.due(0.05)
    bulk = np.zeros(ch.world.capacity, dtype=np.bool_)
    bulk[ch.world.slot_of("car_b") :] = True  # car_b and the rsu, 50 m and 20 m away
    single, arrays = ch.due_split(0.05, bulk)
    assert single == {} and len(arrays.payloads) == 5  # each heard by car_b or the rsu
    assert arrays.payload.dtype == np.uint16 and set(arrays.payload.tolist()) == set(range(5))
    for s in set(arrays.receiver.tolist()):
        mine = arrays.receiver == s
        assert [arrays.payloads[k] for k in arrays.payload[mine]] == everything[s].envelopes


def test_scratch_hands_out_views_of_one_array_per_name_grown_when_too_small() -> None:
    from v2x.sim.channel import Scratch

    s = Scratch()
    a = s.room("a", 100, np.intp)
    assert len(a) == 100 and a.dtype == np.intp
    b = s.room("a", 80, np.intp)
    assert np.shares_memory(a, b)  # the same array, written in place
    assert not np.shares_memory(b, s.room("b", 80, np.intp))  # another name, another array
    c = s.room("a", 1000, np.intp)  # too small: a new one
    assert len(c) == 1000 and not np.shares_memory(a, c)
    assert s.room("a", 10, np.float64).dtype == np.float64  # another type: a new one


def test_a_withdrawn_delivery_leaves_the_channel_it_was_counted_in() -> None:
    """Diff review 26: ``withdraw`` decided a transmission's channel a second time, apart from ``transmit``; were the
    two to differ, a cut delivery's latency would be taken out of another group (silently: the value where it would
    sort goes in its place). One function (``Channel.channel_of``) decides it for both: every delivery of every
    channel withdrawn, no latency is left and each went out of the group it was counted in."""
    ch = _channel(seed=5)
    sent = [
        _tx(ch, "car_a", 1, testbed_pb2.LINK_PC5, msg="bsm"),
        _tx(ch, "car_a", 2, testbed_pb2.LINK_UU, ("edge",), msg="vir"),
        _tx(ch, "edge", 1, testbed_pb2.LINK_UU, ("car_a", "car_b"), msg="rsc"),
        _tx(ch, "rsu", 1, testbed_pb2.LINK_WIRED, ("edge",), msg="rsm"),
    ]
    assert [ch.channel_of(t) for t in sent] == ["pc5", "uu-up", "uu-down", "wired"]
    for k in range(20):  # (enough for every channel to deliver some)
        ch.transmit([dataclasses.replace(t, seq=t.seq + 10 * k) for t in sent], _grid(ch))
    counted = {key: len(ch.stats.joined([key])[0]) for key in ch.stats.latency_groups}
    assert {key[0] for key, n in counted.items() if n} == {"pc5", "uu-up", "uu-down", "wired"}
    for got in ch.due(1.0).values():
        for t, at in zip(got.sent, got.delivery_s, strict=True):
            ch.withdraw(t, at)
    assert {key: len(ms) for key, ms in ch.stats.withdrawn.items()} == counted
    assert len(ch.stats.latencies_ms) == 0 and sum(ch.stats.delivered.values()) == 0
