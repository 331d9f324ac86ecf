"""docs/PROTOCOL.md, statement by statement, in the order of its sections: each test's docstring quotes what
it proves. Statements proved elsewhere are listed in the comment of their section (file::test). Everything
here is sans-I/O or on the loopback bus: no broker, a few seconds in all."""

from __future__ import annotations

import asyncio
import importlib.util
import math
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests._agents import offline_sim, tick_ctx
from v2x import units
from v2x.agents.vehicle import VehicleAgent
from v2x.geodesy import LocalFrame
from v2x.net import topics
from v2x.net.clock import LockstepClock
from v2x.net.host import AgentHost
from v2x.net.transport import LoopbackBroker, LoopbackTransport
from v2x.net.world import World
from v2x.run.runner import build_agents, environment
from v2x.scenario import Scenario, load_scenario
from v2x.scenario.loader import SCENARIO_DIR
from v2x.scenario.model import DEFAULT_SIZE
from v2x.sim.simulation import Simulation
from v2x.wire import day1_pb2, frame_pb2, testbed_pb2
from v2x.wire.envelope import temporary_id

REPO = Path(__file__).resolve().parents[1]
FCW = SCENARIO_DIR / "fcw.yaml"
PLACES = {"lead": (130.0, 0.0), "follower": (100.0, 0.0), "neighbour": (110.0, 3.5)}


def _fcw(**changes: Any) -> Scenario:
    """scenarios/fcw.yaml; ``neighbour_equipped=False`` takes its OBU away, other keys replace fields."""
    sc = load_scenario(FCW)
    if changes.pop("neighbour_unequipped", False):
        actors = [a.model_copy(update={"equipped": False}) if a.id == "neighbour" else a for a in sc.actors]
        changes["actors"] = actors
    return sc.model_copy(update=changes) if changes else sc


def _truth(actor: str, x: float | None = None) -> testbed_pb2.TruthState | None:
    if actor not in PLACES:
        return None
    x0, y0 = PLACES[actor]
    return testbed_pb2.TruthState(x_m=x0 if x is None else x, y_m=y0, vx_mps=16.67, heading_deg=90.0)


def _ack(actor: str, tick: int, *, tx: int = 0, x: float | None = None, events: tuple[Any, ...] = ()) -> bytes:
    ack = testbed_pb2.Ack(actor_id=actor, tick=tick, tx_count=tx, events=events)
    truth = _truth(actor, x)
    if truth is not None:
        ack.truth.CopyFrom(truth)
    return ack.SerializeToString()


def _all_ack(sim: Simulation, tick: int, skip: tuple[str, ...] = (), tx: dict[str, int] | None = None) -> None:
    """Every actor's Ack of ``tick`` (``tx``: the envelopes each one sent in it, 0 when not named)."""
    for actor in sim.actor_ids:
        if actor not in skip:
            sim.receive("ack", actor, _ack(actor, tick, tx=(tx or {}).get(actor, 0)))


def _env(sender: str, seq: int, tick: int, frame: bytes | None = None, **kw: Any) -> bytes:
    if frame is None:
        frame = frame_pb2.MessageFrame(bsm=day1_pb2.BSM(id=temporary_id(sender))).SerializeToString()
    kw.setdefault("link", testbed_pb2.LINK_PC5)
    kw.setdefault("tx_time_us", tick * 100_000)  # the tick's time (fcw's tick is 0.1 s)
    return testbed_pb2.Envelope(sender_id=sender, seq=seq, tick=tick, frame=frame, **kw).SerializeToString()


def _load_example(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"example_{name}", REPO / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# ==== Checklist for an outside stack; every field of proto/ ==================================================
# Each item of the checklist links to the section that details it; its statements are proved there (each
# section's tests below, or the test its comment names).


def _doc() -> str:
    return (REPO / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")


def _slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation but '-' and '_' dropped, spaces -> '-'."""
    text = heading.replace("`", "").strip().lower()
    return "".join(c for c in text if c.isalnum() or c in " -_").replace(" ", "-")


def test_every_link_within_the_doc_leads_to_one_of_its_sections() -> None:
    """The checklist's links (and any other `](#...)` in docs/PROTOCOL.md) name headings that exist, and the
    checklist's items are numbered 1, 2, ... with a link each."""
    import re

    doc = _doc()
    anchors = {_slug(h) for h in re.findall(r"^#{2,4} (.+)$", doc, re.M)}
    links = re.findall(r"\]\(#([^)]+)\)", doc)
    assert len(links) > 20 and not set(links) - anchors, sorted(set(links) - anchors)
    checklist = doc[doc.index("## Checklist for an outside stack") : doc.index("## Generated code")]
    items = re.split(r"^(\d+)\. ", checklist, flags=re.M)[1:]
    numbers, texts = items[0::2], items[1::2]
    assert [int(n) for n in numbers] == list(range(1, len(numbers) + 1))
    for n, text in zip(numbers, texts, strict=True):
        assert "](#" in text, f"item {n} links to no section"
        assert re.search(r"\b(MUST|SHOULD|MAY)\b", text), f"item {n} says no MUST, SHOULD or MAY"


def test_every_field_of_the_proto_files_is_named_in_the_doc() -> None:
    """Every field of every message in proto/v2x/wire/*.proto appears in docs/PROTOCOL.md in code quotes (alone
    or as part of a path such as `accel_set.long` or `rtes[].rte_id`): an outside stack written from the
    document learns of each one (map entries' `key`/`value` aside)."""
    import re

    from v2x.wire import common_pb2, day1_pb2, day2_pb2, security_pb2

    quoted = {w for q in re.findall(r"`([^`\n]+)`", _doc()) for w in re.split(r"[^A-Za-z0-9_]+", q)}

    def fields(desc: Any, prefix: str = "") -> list[str]:
        if desc.GetOptions().map_entry:
            return []
        out = [f"{prefix}{desc.name}.{f.name}" for f in desc.fields]
        for nested in desc.nested_types:
            out += fields(nested, f"{prefix}{desc.name}.")
        return out

    every = [
        name
        for module in (common_pb2, day1_pb2, day2_pb2, frame_pb2, testbed_pb2, security_pb2)
        for desc in module.DESCRIPTOR.message_types_by_name.values()
        for name in fields(desc)
    ]
    assert len(every) > 400
    assert [name for name in every if name.rsplit(".", 1)[1] not in quoted] == []


def test_an_empty_payload_on_an_actors_topics_and_a_hello_over_16_kib_are_refused() -> None:
    """Checklist items 5 and 6: "an empty payload is refused as `sender_mismatch`" (on `join`, `tx` and `ack`:
    why a stack should leave no Last Will there), and a `Hello` of "at most 16 KiB" (a bigger one is
    `oversized`)."""
    sim = offline_sim(_fcw())
    for kind in ("join", "tx", "ack"):
        sim.receive(kind, "lead", b"")
    big = testbed_pb2.Hello(actor_id="lead", kind="car", software="x" * (16 * 1024), protocol_version=1)
    sim.receive("join", "lead", big.SerializeToString())
    assert dict(sim.inbound.stats.rejected) == {"sender_mismatch": 3, "oversized": 1}
    assert "lead" not in sim.inbound.hellos


# ==== Running a scenario with an outside stack ================================================================
# "The world waits up to 30 s for every actor's Hello, then stops ... naming the actors that never joined":
#   the naming in tests/test_world.py::test_the_world_routes_joins_to_its_simulation_and_names_who_never_joined;
# "--run-id PREFIX: 1-55 characters": tests/test_outside_client.py::test_bad_run_id_exits_2_before_anything_runs;
# "Each variant is a separate run ... demo-v2x and demo-baseline":
#   tests/test_outside_client.py::test_outside_lead_with_v2x_run_on_mosquitto.


def test_the_world_waits_30_s_for_the_hellos_by_default() -> None:
    """ "The world waits up to **30 s** for every actor's `Hello`"."""
    world = World(
        _fcw(), variant="v2x", seed=0, run_id="t", transport=LoopbackTransport(LoopbackBroker(), "w"),
        clock=LockstepClock(0.1),
    )  # fmt: skip
    assert world.join_timeout_s == 30.0


# ==== Transport and topics ====================================================================================
# Topic names and ids: tests/test_topics.py. "The outcome of the run is unaffected by anything rejected":
#   tests/test_hardening.py::test_no_single_message_crashes_stalls_or_changes_a_run.
# forged_control (a Control without the run's token): tests/test_hardening.py (same test).


def _hello(kind: str, version: int) -> bytes:
    return testbed_pb2.Hello(actor_id="lead", kind=kind, protocol_version=version).SerializeToString()


def _reason_cases() -> dict[str, list[tuple[str, str, bytes]]]:
    """For each rejection reason of "Errors and rejection reasons", messages in tick 0 of which exactly one
    is rejected for that reason (the others are accepted)."""
    bsm = frame_pb2.MessageFrame(bsm=day1_pb2.BSM(id=temporary_id("lead"))).SerializeToString()
    other_id = frame_pb2.MessageFrame(bsm=day1_pb2.BSM(id=temporary_id("follower"))).SerializeToString()
    bad_truth = testbed_pb2.Ack(actor_id="lead", tick=0, truth=testbed_pb2.TruthState(x_m=100_001.0))
    late_warning = testbed_pb2.Ack(actor_id="lead", tick=0, events=[testbed_pb2.Advisory(raised_at_s=99.0)])
    future_warning = testbed_pb2.Ack(actor_id="lead", tick=0, events=[testbed_pb2.Advisory(raised_at_s=0.05)])
    advisory = frame_pb2.MessageFrame(advisory=testbed_pb2.Advisory(target_id="follower")).SerializeToString()
    trigger_after = testbed_pb2.Ack(
        actor_id="lead", tick=0, events=[testbed_pb2.Advisory(raised_at_s=0.0, trigger_sent_at_s=0.01)]
    )
    return {
        "malformed": [("tx", "lead", b"\xff\x00 not protobuf")],
        "sender_mismatch": [("tx", "lead", _env("follower", 1, 0))],
        "unknown_type": [("tx", "lead", _env("lead", 1, 0, frame=b""))],
        "oversized": [("tx", "lead", _env("lead", 1, 0, frame=b"\x00" * (16 * 1024)))],
        "unknown_sender": [("tx", "ghost", _env("ghost", 1, 0))],
        "bad_topic": [("status", "lead", b"")],
        "bad_link": [("tx", "lead", _env("lead", 1, 0, link=testbed_pb2.LINK_UNSPECIFIED))],
        "bad_destination": [("tx", "lead", _env("lead", 1, 0, link=testbed_pb2.LINK_UU))],
        "bad_tick": [("tx", "lead", _env("lead", 1, 3))],
        "unequipped_sender": [("tx", "neighbour", _env("neighbour", 1, 0))],
        "not_permitted": [("tx", "lead", _env("lead", 1, 0, frame=advisory))],  # only the platform's
        "id_mismatch": [("tx", "lead", _env("lead", 1, 0, frame=other_id))],
        # a "relay" of a BSM the world never delivered to rsu1
        "not_relayed": [("tx", "rsu1", _env("rsu1", 1, 0, frame=bsm, link=testbed_pb2.LINK_WIRED, dest_ids=["cloud"]))],
        "bad_seq": [("tx", "lead", _env("lead", 1, 0, frame=bsm)), ("tx", "lead", _env("lead", 66, 0, frame=bsm))],
        "out_of_range": [("ack", "lead", bad_truth.SerializeToString())],
        "out_of_range ": [("ack", "lead", late_warning.SerializeToString())],  # a warning timed after the run
        "out_of_range  ": [("ack", "lead", future_warning.SerializeToString())],  # raised after the Ack's tick
        "out_of_range   ": [("ack", "lead", trigger_after.SerializeToString())],  # sent after it was raised
        "bad_hello": [("join", "lead", _hello("car", 2))],
        "bad_hello ": [("join", "lead", _hello("truck", 1))],
        "conflicting_ack": [("ack", "lead", _ack("lead", 0)), ("ack", "lead", _ack("lead", 0, x=131.0))],
        "conflicting_tx": [("tx", "lead", _env("lead", 1, 0)), ("tx", "lead", _env("lead", 1, 0, tx_time_us=5))],
    }  # fmt: skip


@pytest.mark.parametrize("reason", sorted(_reason_cases()))
def test_each_rejection_reason_of_the_doc_is_counted_by_its_name(reason: str) -> None:
    """ "Rejected by the world (counted in `metrics.rejected` by reason, never raised)": `malformed`,
    `sender_mismatch`, `unknown_type`, `oversized` (> 16 KiB on `tx`), `unknown_sender`, `bad_topic`, `bad_link`,
    `bad_destination`, `bad_tick`, `unequipped_sender`, `id_mismatch`, `bad_seq` (a `seq` jump of more than 64
    per tick), `out_of_range` (truth beyond 100 km, warnings timed outside the run), `bad_hello` (another
    protocol version, or a kind other than the scenario's), `conflicting_ack`, `conflicting_tx`."""
    sim = offline_sim(_fcw(neighbour_unequipped=True))
    sim.begin(0)
    for kind, actor, payload in _reason_cases()[reason]:
        sim.receive(kind, actor, payload)
    assert dict(sim.inbound.stats.rejected) == {reason.strip(): 1}
    assert sim.report(0.0).metrics["rejected"] == {reason.strip(): 1}


def test_an_ack_over_64_kib_is_oversized() -> None:
    """ "`out_of_range` (an Ack ... with more than 64 envelopes, 256 events, 64 notes)"; an Ack over 64 KiB is
    `oversized`."""
    sim = offline_sim(_fcw())
    sim.begin(0)
    too_many = testbed_pb2.Ack(actor_id="lead", tick=0, tx_count=65)
    sim.receive("ack", "lead", too_many.SerializeToString())
    notes = testbed_pb2.Ack(actor_id="lead", tick=0, notes=["x"] * 65)
    sim.receive("ack", "lead", notes.SerializeToString())
    big = testbed_pb2.Ack(actor_id="lead", tick=0, notes=["x" * 200] * 60 * 6)
    assert len(big.SerializeToString()) > 64 * 1024
    sim.receive("ack", "lead", big.SerializeToString())
    assert dict(sim.inbound.stats.rejected) == {"out_of_range": 2, "oversized": 1}


def test_copies_old_ticks_and_old_seqs_are_duplicates_dropped_and_counted() -> None:
    """ "Envelopes and Acks of a tick already done, and repeated `(sender, seq)`, are counted in
    `metrics.duplicates` and dropped"; "A `seq` at or below the last one accepted from you in an earlier tick
    is a duplicate"."""
    sim = offline_sim(_fcw())
    sim.begin(0)
    first = _env("lead", 1, 0)
    sim.receive("tx", "lead", first)
    sim.receive("tx", "lead", first)  # the same bytes again
    _all_ack(sim, 0, tx={"lead": 1})
    sim.receive("ack", "lead", _ack("lead", 0, tx=1))  # the same Ack again
    assert sim.inbound.stats.duplicates == 2
    sim.step()
    sim.begin(1)
    sim.receive("tx", "lead", _env("lead", 2, 0))  # an envelope of tick 0, which is closed
    sim.receive("tx", "lead", _env("lead", 1, 1, tx_time_us=100_000))  # seq 1 again, in another tick
    sim.receive("ack", "lead", _ack("lead", 0))  # an Ack of tick 0
    assert sim.inbound.stats.duplicates == 5 and not sim.inbound.stats.rejected
    assert sim.report(0.0).metrics["duplicates"] == 5


def test_within_a_tick_envelopes_may_arrive_in_any_order() -> None:
    """ "Within the current tick, order does not matter: an envelope whose `seq` is new is accepted after a
    higher one" (a reconnect lost seq 2 and 3, seq 4 got through, the retransmission brings 2, 3 and 4)."""
    sim = offline_sim(_fcw())
    sim.begin(0)
    sim.receive("tx", "lead", _env("lead", 1, 0))
    _all_ack(sim, 0, tx={"lead": 1})
    sim.step()
    sim.begin(1)
    later = [_env("lead", seq, 1, tx_time_us=100_000) for seq in (2, 3, 4)]
    sim.receive("tx", "lead", later[2])
    for env in later:  # the retransmission
        sim.receive("tx", "lead", env)
    sim.receive("tx", "lead", _env("lead", 1, 1, tx_time_us=100_000))  # seq 1 was tick 0's: a copy
    assert sim.inbound.stats.duplicates == 2 and not sim.inbound.stats.rejected
    assert [t.seq for t in sim.inbound.take(1)] == [2, 3, 4]


# ==== Joining and Control START ==============================================================================
# "START once every actor has joined": tests/sim/test_simulation.py
#     ::test_the_run_starts_once_every_actor_has_said_hello;
# ActorStart of a lane actor (centre of the box, heading, speed, box, route):
#   tests/test_sdk.py::test_start_gives_each_external_actor_its_start_pose_box_and_route;
# stale retained STOP of an earlier run ignored: tests/test_outside_client.py::test_fixed_run_id_can_be_reused;
# the world's token on START/STOP, built-in agents ignore a STOP without it:
#   tests/test_hardening.py::test_a_stop_without_the_runs_token_is_ignored_and_with_it_ends_the_agents;
# "world lost" Last Will: tests/test_hardening_faults.py::test_a_killed_world_leaves_a_stop_world_lost_not_its_start.


def test_start_carries_what_the_doc_lists() -> None:
    """ "`Control START` ... carries ...: the local frame origin, `tick_us`, `epoch_utc`, `platform_id` (the
    edge/cloud actor to address over Uu, `""` when none) and the `actor_ids` of the run (sorted)", `n_ticks`
    (ticks are 0..`n_ticks`), `protocol_version` (1), `external_actors` in actor-id order, and a per-run
    `token` (field 12, random hex) that STOP carries too."""
    sc = load_scenario(SCENARIO_DIR / "icw.yaml")
    actors = [a.model_copy(update={"external": a.id in ("car_b", "car_a")}) for a in sc.actors]
    sim = Simulation(sc.model_copy(update={"actors": actors}), variant="v2x", seed=0, run_id="r", token="ab12")
    start = testbed_pb2.Control.FromString(sim.control(testbed_pb2.Control.COMMAND_START))
    assert start.command == testbed_pb2.Control.COMMAND_START and start.run_id == "r" and start.scenario_id == "icw"
    assert (start.origin_lat_deg, start.origin_lon_deg, start.origin_alt_m) == (29.6120, 106.5045, 300.0)
    assert start.tick_us == 100_000 and start.n_ticks == 140 and start.protocol_version == 1
    assert start.platform_id == "edge"
    assert list(start.actor_ids) == sorted(a.id for a in sc.actors)
    assert [a.actor_id for a in start.external_actors] == ["car_a", "car_b"]
    assert start.token == "ab12"
    stop = testbed_pb2.Control.FromString(sim.control(testbed_pb2.Control.COMMAND_STOP))
    assert stop.token == "ab12" and stop.reason == ""
    no_platform = testbed_pb2.Control.FromString(
        offline_sim(_fcw(actors=[a for a in _fcw().actors if a.kind != "platform"])).control(
            testbed_pb2.Control.COMMAND_START
        )
    )
    assert no_platform.platform_id == ""


def test_an_external_road_user_without_a_route_starts_at_its_position_or_the_origin() -> None:
    """ "An external road user with neither `lane` nor `path` gets its `position` if the scenario gives one,
    else `x_m` = `y_m` = 0, and no route"."""
    sc = _fcw()
    actors = []
    off_route = {"external": True, "lane": None, "path": None}
    for a in sc.actors:
        if a.id == "lead":
            actors.append(a.model_copy(update={**off_route, "position": (12.0, 3.0)}))
        elif a.id == "neighbour":
            actors.append(a.model_copy(update=off_route))
        else:
            actors.append(a)
    start = testbed_pb2.Control.FromString(
        offline_sim(sc.model_copy(update={"actors": actors})).control(testbed_pb2.Control.COMMAND_START)
    )
    got = {a.actor_id: (a.x_m, a.y_m, list(a.path_x_m), a.lane) for a in start.external_actors}
    assert got == {"lead": (12.0, 3.0, [], ""), "neighbour": (0.0, 0.0, [], "")}


def test_epoch_utc_is_isoformat_with_an_offset_and_fractions_only_when_there() -> None:
    """ "`epoch_utc` is Python's `datetime.isoformat()` of the scenario's `epoch` in UTC:
    `2026-05-01T08:00:00+00:00` (an offset `+00:00`, not `Z`; fractional seconds appear only when the epoch has
    them, as `2026-05-01T08:00:00.250000+00:00`). Parse it as ISO 8601 and accept both `Z` and `+00:00`"
    (the SDK and examples/outside_vehicle.py do)."""
    from v2x.sdk.client import _epoch

    plain = testbed_pb2.Control.FromString(offline_sim(_fcw()).control(testbed_pb2.Control.COMMAND_START)).epoch_utc
    quarter = datetime(2026, 5, 1, 8, 0, 0, 250000, tzinfo=UTC)
    fraction = testbed_pb2.Control.FromString(
        offline_sim(_fcw(epoch=quarter)).control(testbed_pb2.Control.COMMAND_START)
    ).epoch_utc
    assert (plain, fraction) == ("2026-05-01T08:00:00+00:00", "2026-05-01T08:00:00.250000+00:00")
    assert _epoch("2026-05-01T08:00:00.250000Z") == _epoch(fraction) == quarter
    example = _load_example("outside_vehicle")
    for text in (fraction, "2026-05-01T08:00:00.250000Z"):
        info = example.RunInfo.from_start(testbed_pb2.Control(epoch_utc=text, actor_ids=["a"]))
        assert info.epoch_us == round(quarter.timestamp() * 1e6)


# ==== A tick ==================================================================================================
# Deliveries in (t_{n-1}, t_n]: tests/sim/test_channel.py
#     ::test_wired_is_addressed_lossless_1_to_2_ms_and_handed_out_when_due;
# "In the baseline variant nothing is ever heard": tests/sim/test_channel.py
#     ::test_the_baseline_channel_hears_nothing_and_draws_nothing
#   and (the agents' side) tests/test_hardening.py
#     ::test_an_agent_in_a_baseline_run_hears_nothing_and_takes_only_the_expected_tick;
# step 5, "once it has every agent's Ack(n) and each agent's tx_count envelopes":
#   tests/sim/test_simulation.py::test_a_tick_opens_with_every_actors_input_and_closes_when_all_reported;
# rejected envelopes count toward tx_count: tests/test_hardening_faults.py
#     ::test_a_rejected_envelope_still_counts_toward_the_ticks_arrivals.


def test_ticks_are_0_to_n_at_n_times_tick_and_only_the_last_is_final() -> None:
    """ "Ticks are numbered 0 to N = `duration_s / tick_s`; tick `n` is simulation time `t_n = n x tick`
    (microseconds: `TickInput.time_us`) ... There are N + 1 ticks; the last one has `final: true`";
    "**`TickInput(0)` has no reading** (`available: false`)"."""
    sim = offline_sim(_fcw(duration_s=0.3))
    seen = []
    for n in range(4):
        ti = testbed_pb2.TickInput.FromString(sim.begin(n)["follower"])
        seen.append((ti.tick, ti.time_us, ti.tick_us, ti.final, ti.run_id))
        if n == 0:
            assert not ti.gnss.available
        _all_ack(sim, n)
        sim.step()
    assert seen == [(n, n * 100_000, 100_000, n == 3, "t") for n in range(4)]


def test_time_us_is_within_tick_over_2_plus_1_microseconds_of_tick_x_tick_us() -> None:
    """ "Lockstep", "`time_us` and `tick_us`": "The world's `time_us` is the tick's time rounded to the microsecond
    ..., and `tick_us` is `tick_s` rounded the same way ... accept |`time_us` - `tick` x `tick_us`| <= `tick` / 2
    + 1 (integer division), as the built-in agents and the SDK do ...: with `tick_s` 1/30 s, `tick_us` is 33333
    and `TickInput(30)` has `time_us` 1000000, 10 more than 30 x 33333, where up to 16 is accepted." The world's
    own inputs, and the bound against the world's rounding for ticks of the lengths a scenario may have."""
    import random

    from v2x.wire.tick_input import tick_time_problem

    sim = offline_sim(_fcw(tick_s=1 / 30, duration_s=1.0))
    for n in range(31):
        ti = testbed_pb2.TickInput.FromString(sim.begin(n)["follower"])
        _all_ack(sim, n)
        sim.step()
    assert (ti.tick, ti.tick_us, ti.time_us, ti.final) == (30, 33_333, 1_000_000, True)
    assert tick_time_problem(30, 30 * 33_333 + 16, 33_333) is None
    assert tick_time_problem(30, 30 * 33_333 + 17, 33_333) is not None
    rng = random.Random(21)
    for tick_s in [1 / 30, 1 / 3, 0.0123456789, *(rng.uniform(0.01, 1.0) for _ in range(300))]:
        tick_us = units.us_of(tick_s)
        for n in (1, 2, 3, 30, 999, 36_000, 1_000_000):
            time_us = units.us_of(units.tick_time_s(n, tick_s))  # the world's (Simulation.begin)
            assert tick_time_problem(n, time_us, tick_us) is None, (tick_s, n, time_us - n * tick_us)


def test_in_baseline_the_world_accepts_transmissions_and_discards_them_uncounted() -> None:
    """ "In `baseline` the world accepts transmissions and discards them (they are not counted as sent)"."""
    sim = offline_sim(_fcw(), "baseline")
    sim.begin(0)
    sim.receive("tx", "lead", _env("lead", 1, 0))
    _all_ack(sim, 0, skip=("lead",))
    sim.receive("ack", "lead", _ack("lead", 0, tx=1))
    assert sim.reported and not sim.inbound.stats.rejected
    sim.step()
    sim.begin(1)
    metrics = sim.report(0.0).metrics
    assert metrics["messages"]["sent"] == {} and metrics["messages"]["delivered"] == {}


async def _serve_lead(inputs: list[bytes]) -> list[tuple[str, bytes]]:
    """The built-in lead of fcw behind an AgentHost on the loopback bus: what it publishes for ``inputs``."""
    sc = _fcw()
    lead = next(a for a in build_agents(sc, environment(sc)) if a.actor_id == "lead")
    bus = LoopbackBroker()
    host_tp, world_tp = LoopbackTransport(bus, "agents"), LoopbackTransport(bus, "world")
    out: list[tuple[str, bytes]] = []
    world_tp.route("v2x/t/tx/lead", lambda topic, payload: out.append((topic, payload)))
    world_tp.route("v2x/t/ack/lead", lambda topic, payload: out.append((topic, payload)))
    host = AgentHost(host_tp, "t", [lead], n_ticks=sc.n_ticks)
    ready = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(host_tp.run(ready[0])), asyncio.create_task(world_tp.run(ready[1]))]
    await asyncio.gather(*(r.wait() for r in ready))
    serving = asyncio.create_task(host.run())
    for payload in inputs:
        acks = sum(1 for t, _ in out if "/ack/" in t)
        await world_tp.publish(topics.tick_input("t", "lead"), payload)
        for _ in range(200):
            await asyncio.sleep(0.005)
            if sum(1 for t, _ in out if "/ack/" in t) > acks:
                break
    serving.cancel()
    for tp in (host_tp, world_tp):
        tp.stop()
    await asyncio.gather(*tasks, serving, return_exceptions=True)
    return out


def _tick_input(n: int, *, fix: bool) -> bytes:
    ti = testbed_pb2.TickInput(run_id="t", tick=n, time_us=n * 100_000, tick_us=100_000)
    if fix:
        ti.gnss.CopyFrom(
            testbed_pb2.GnssReading(available=True, east_error_m=0.5, sigma_major_m=0.02, sigma_minor_m=0.02)
        )
    return ti.SerializeToString()


async def test_what_a_built_in_vehicle_sends_in_a_tick() -> None:
    """A tick, steps 3-4, and "Sending: details that matter", as the built-in vehicles do it: envelopes on
    `tx/{actor}` before the `Ack`, `seq` from 1 increasing, `tick` = n, `tx_time_us` = `time_us`, `tx_count` = k;
    "**Uu copy**: the very same `MessageFrame` bytes over PC5 and over Uu (same `msg_cnt`, `sec_mark`,
    everything); only the envelopes differ"; "**No fix** (always at tick 0): the true position in `pos`,
    `accuracy.semi_major` = `semi_minor` = 255, `orientation` = 65535, `pos_confidence.pos` = 0"; "**Start
    values**: `msg_cnt` of the first BSM is 0 (+1 per BSM); `seq` starts at 1;
    `safety_ext.path_prediction_confidence` 0, `path_prediction_radius` 32767"; "An agent that receives a
    `TickInput` for the tick it has just done must publish the same envelopes (same `seq`) and the same `Ack`
    again"; "An older `TickInput` is ignored"."""
    out = await _serve_lead([_tick_input(0, fix=False), _tick_input(1, fix=True), _tick_input(1, fix=True)])
    topics_seen = [t.rsplit("/", 2)[1] for t, _ in out]
    assert topics_seen == ["tx", "tx", "ack"] * 3
    envs = [testbed_pb2.Envelope.FromString(p) for t, p in out if "/tx/" in t]
    acks = [testbed_pb2.Ack.FromString(p) for t, p in out if "/ack/" in t]
    assert [(e.seq, e.tick, e.tx_time_us, e.link) for e in envs[:4]] == [
        (1, 0, 0, testbed_pb2.LINK_PC5), (2, 0, 0, testbed_pb2.LINK_UU),
        (3, 1, 100_000, testbed_pb2.LINK_PC5), (4, 1, 100_000, testbed_pb2.LINK_UU),
    ]  # fmt: skip
    assert list(envs[1].dest_ids) == ["cloud"] and not envs[0].dest_ids
    assert [a.tx_count for a in acks[:2]] == [2, 2] and [a.tick for a in acks[:2]] == [0, 1]
    assert out[6:] == out[3:6]  # tick 1 asked again: the very same bytes
    for pc5, uu in ((envs[0], envs[1]), (envs[2], envs[3])):
        assert pc5.frame == uu.frame  # the Uu copy: the same MessageFrame bytes
    first = frame_pb2.MessageFrame.FromString(envs[0].frame).bsm
    second = frame_pb2.MessageFrame.FromString(envs[2].frame).bsm
    assert (first.msg_cnt, second.msg_cnt) == (0, 1)
    assert (first.accuracy.semi_major, first.accuracy.semi_minor, first.accuracy.orientation) == (255, 255, 65535)
    assert first.pos_confidence.pos == 0
    assert (first.safety_ext.path_prediction_confidence, first.safety_ext.path_prediction_radius) == (0, 32767)
    sc = _fcw()
    frame = LocalFrame(sc.origin.lat_deg, sc.origin.lon_deg, sc.origin.alt_m)
    (x0, y0, _), (x1, _, _) = (frame.to_local(b.pos.lat / 1e7, b.pos.lon / 1e7) for b in (first, second))
    assert math.hypot(x0 - 130.0, y0) < 0.02  # no fix: the true centre
    assert x1 - (130.0 + 1.667) == pytest.approx(0.5, abs=0.02)  # a fix: truth + the reading's error
    assert second.accuracy.semi_major == 1  # 0.02 m in 0.05 m units, rounded up (never better than the truth)
    older = await _serve_lead([_tick_input(0, fix=False), _tick_input(1, fix=True), _tick_input(0, fix=False)])
    assert len(older) == 6  # the older TickInput got no answer


def test_script_timing_an_event_at_t_n_acts_in_tick_n_exactly_integrated() -> None:
    """ "**Script timing**: a scripted event `at_s` = t_n takes effect in tick n: the acceleration it sets is
    reported in `Ack(n)` (truth and BSM) and moves the vehicle from t_n to t_(n+1). Motion is integrated per
    tick with the acceleration held constant over the tick, exactly (no Euler error; a braking vehicle stops
    exactly at zero speed)." (fcw's lead brakes at 6.0 s at 6 m/s^2.)"""
    sc = _fcw()
    lead = next(a for a in build_agents(sc, environment(sc)) if a.actor_id == "lead")
    assert isinstance(lead, VehicleAgent)
    truths: dict[int, testbed_pb2.TruthState] = {}
    bsms = {}
    for n in range(141):
        res = lead.step(tick_ctx(n))
        assert res.truth is not None
        truths[n] = res.truth
        bsms[n] = next(t.frame.bsm for t in res.transmissions if t.link == testbed_pb2.LINK_PC5)
    assert truths[59].accel_mps2 == 0.0 and truths[60].accel_mps2 == -6.0  # in Ack(60), not Ack(61)
    assert (bsms[59].accel_set.long, bsms[60].accel_set.long) == (0, -600)
    assert truths[60].x_m == pytest.approx(130 + 16.67 * 6.0, abs=1e-9)  # not moved by it yet
    assert truths[61].x_m - truths[60].x_m == pytest.approx(16.67 * 0.1 - 0.5 * 6 * 0.01, abs=1e-9)
    stop = 130 + 16.67 * 6.0 + 16.67**2 / 12
    assert truths[140].x_m == pytest.approx(stop, abs=1e-9) and truths[140].speed_mps == 0.0


def test_the_acceleration_of_a_tick_is_the_braking_until_the_vehicle_stands_then_zero() -> None:
    """ "Truth", "**The acceleration of tick n** ... is the one the vehicle has from `t_n` on ... A vehicle that will
    stop inside the next tick still reports its braking in tick n ...; from the first tick at which it stands,
    speed and acceleration are 0, not the braking rate, so its BSM says `accel_set.long` 0, `brakes.brake_pedal` 1
    and no `hardBraking` ...: fcw's lead, braking at 6 m/s^2 from 16.67 m/s at 6.0 s, reports -6 m/s^2 up to tick
    87 (0.47 m/s) and 0 from tick 88 (it stopped at 8.78 s)." """
    sc = _fcw()
    lead = next(a for a in build_agents(sc, environment(sc)) if a.actor_id == "lead")
    assert isinstance(lead, VehicleAgent)
    said = {}
    for n in range(100):
        res = lead.step(tick_ctx(n))
        assert res.truth is not None
        bsm = next(t.frame.bsm for t in res.transmissions if t.link == testbed_pb2.LINK_PC5)
        hard = bool(bsm.safety_ext.events >> day1_pb2.EVENT_HARD_BRAKING & 1)
        truth = res.truth
        said[n] = (round(truth.speed_mps, 2), truth.accel_mps2, bsm.accel_set.long, bsm.brakes.brake_pedal, hard)
    assert said[87] == (0.47, -6.0, -600, 2, True)
    assert all(said[n] == (0.0, 0.0, 0, 1, False) for n in range(88, 100))


# ==== Control STOP and the examples' side of it ==============================================================


def _example_session() -> tuple[Any, Any, list[tuple[str, bytes]]]:
    """examples/outside_vehicle.py's Session for actor lead of run r, publishing into a list (no broker)."""
    example = _load_example("outside_vehicle")
    args = example.build_parser().parse_args(["--broker", "mqtt://127.0.0.1:1", "--run", "r", "--actor", "lead"])
    session = example.Session(example.options(args), example._SimTime("lead"))
    published: list[tuple[str, bytes]] = []

    class _Sent:
        def is_published(self) -> bool:
            return True

    def publish(topic: str, payload: bytes, qos: int = 0) -> _Sent:
        published.append((topic, payload))
        return _Sent()

    session.client.publish = publish
    return example, session, published


def _start(token: str, x_m: float = 130.0) -> testbed_pb2.Control:
    ctrl = testbed_pb2.Control
    start = ctrl(command=ctrl.COMMAND_START, run_id="r", actor_ids=["lead"], token=token, tick_us=100_000,
                 epoch_utc="2026-05-01T08:00:00+00:00", origin_lat_deg=29.7, origin_lon_deg=106.6)  # fmt: skip
    start.external_actors.add(actor_id="lead", kind="car", x_m=x_m, heading_deg=90.0, speed_mps=16.67)
    return start


def test_the_example_keeps_a_tick_that_overtakes_start_and_takes_the_latest_start() -> None:
    """ "`TickInput(0)` follows at once; if it overtakes `START`, keep it until `START` is there"; "let a later
    START replace an earlier one until the first `TickInput`" (examples/outside_vehicle.py)."""
    _, session, published = _example_session()
    session._on_control(_start("stale", x_m=5.0).SerializeToString(), retained=True)  # an earlier run's
    session._on_control(_start("stale2", x_m=6.0).SerializeToString(), retained=True)
    assert session.info.token == "stale2"  # the later one replaces it
    session._on_control(b"")  # v2x run clears the retained Control before its START: what came before is stale
    assert session.info is None  # so a TickInput now waits (Session._loop)
    session.waiting.append(testbed_pb2.TickInput(run_id="r", tick=0, tick_us=100_000))
    assert not published
    session._on_control(_start("tok").SerializeToString())
    assert session.vehicle.info.token == "tok" and session.vehicle.car.start_x == 130.0
    assert [t for t, _ in published] == ["v2x/r/tx/lead", "v2x/r/ack/lead"]  # tick 0 answered once START came

    from v2x.sdk import Stack

    stack = Stack("mqtt://127.0.0.1:1", run_id="r", actor_id="lead")
    stack._on_control(_start("stale", x_m=5.0).SerializeToString())
    stack._on_control(_start("tok").SerializeToString())
    assert stack.run is not None and stack.run.me.x_m == 130.0  # the SDK takes the later START too
    stack._on_control(b"")
    assert stack.run is None and not stack._started.is_set()


def test_the_examples_ignore_a_stop_without_the_runs_token_and_wait_out_world_lost() -> None:
    """ "a STOP counts only with the same token"; "A STOP seen before your first `TickInput` belongs to an earlier
    run with the same id: ignore it"; "A STOP with `reason` "world lost" is the world connection's Last Will ...
    (then the world publishes its START again when it reconnects: keep waiting)"; "a STOP before the final tick
    therefore means the run was aborted". examples/outside_vehicle.py (written from the doc) and the SDK."""
    example, session, published = _example_session()
    ctrl = testbed_pb2.Control
    start = _start("tok")

    def stop(token: str, reason: str = "run error: x") -> bytes:
        return ctrl(command=ctrl.COMMAND_STOP, run_id="r", token=token, reason=reason).SerializeToString()

    assert session._on_control(stop("old", "")) is None  # before the first tick: an earlier run's
    assert session._on_control(start.SerializeToString()) is None
    session._on_tick(testbed_pb2.TickInput(run_id="r", tick=0, tick_us=100_000))
    assert session.vehicle is not None and session.vehicle.car.start_x == 130.0  # started where START says
    assert [t for t, _ in published] == ["v2x/r/tx/lead", "v2x/r/ack/lead"]
    assert session._on_control(stop("")) is None  # no token: not this run's world
    assert session._on_control(stop("forged")) is None
    assert session._on_control(stop("tok", "world lost")) is None  # the Last Will: keep waiting
    assert session._on_control(stop("tok")) == example.EXIT_ERROR  # the run's own STOP: aborted

    from v2x.sdk import Stack

    stack = Stack("mqtt://127.0.0.1:1", run_id="r", actor_id="lead")
    stack._on_control(ctrl(command=ctrl.COMMAND_START, run_id="r", epoch_utc="yesterday").SerializeToString())
    assert stack.run is None and stack.rejected["malformed"] == 1  # not a START of a world: counted, not raised
    stack._on_control(stop("old", ""))
    assert stack._stopped is None
    stack._on_control(start.SerializeToString())
    stack._last = (0, [])  # tick 0 answered
    for payload in (stop(""), stop("forged"), stop("tok", "world lost")):
        stack._on_control(payload)
        assert stack._stopped is None
    stack._on_control(stop("tok"))
    assert stack._stopped is not None and stack._stopped.reason == "run error: x"


# ==== What a TickInput adds in v1; timing and late stacks ====================================================
# collisions in TickInput(n+1), late_ticks: tests/test_sdk.py
#     ::test_tick_input_tells_an_actor_its_collisions_and_the_ticks_closed_without_its_ack;
# "Each pair is recorded once per run": tests/sim/test_referee.py
#     ::test_a_collision_is_recorded_once_per_pair_with_the_relative_speed;
# real time end to end (90 ms stack, late_ticks, re-report, counted once, verdict; conformance names the deadline):
#   tests/test_sdk.py::test_a_stack_needing_90_ms_per_tick_in_real_time_loses_no_warning and
#   tests/test_sdk.py::test_conformance_in_real_time_fails_a_stack_that_misses_the_deadline;
# lockstep resumes after a broker restart: tests/test_e2e.py
#     ::test_lockstep_run_survives_a_broker_restart_with_the_same_outcome.


def test_a_late_ack_is_dropped_with_its_truth_its_warnings_still_count_and_the_tick_counted_late() -> None:
    """ "the Ack is dropped when it comes (tick already closed: counted in `metrics.duplicates`), its truth is
    not applied (the world keeps your previous state for that tick), its warnings are still recorded, at their
    `raised_at_s`, when the world closes its current tick; `metrics.late_reports` counts the tick"; "your late
    envelopes are dropped too"; "`TickInput(n+1)` lists n in `late_ticks`"; a warning re-reported as well
    counts once."""
    sim = offline_sim(_fcw())
    adv = testbed_pb2.Advisory(app=testbed_pb2.APP_FCW, target_id="follower", source_id="follower",
                               other_id=temporary_id("lead").hex(), raised_at_s=0.0)  # fmt: skip
    sim.begin(0)
    for actor in sim.actor_ids:
        if actor != "follower":
            sim.receive("ack", actor, _ack(actor, 0))
    sim.step()  # the deadline: the follower has not answered
    slot = sim.world.slot_of("follower")
    before = float(sim.world.x[slot])
    ti = testbed_pb2.TickInput.FromString(sim.begin(1)["follower"])
    assert list(ti.late_ticks) == [0]
    sim.receive("tx", "follower", _env("follower", 1, 0))
    late = _ack("follower", 0, tx=1, x=105.0, events=(adv,))
    sim.receive("ack", "follower", late)
    sim.receive("ack", "follower", late)  # a copy of it
    assert sim.inbound.stats.duplicates == 3 and float(sim.world.x[slot]) == before
    _all_ack(sim, 1)  # no re-report
    sim.step()
    assert [(e["t_s"], e["other"]) for e in sim.events if e["type"] == "warning"] == [(0.0, "lead")]
    sim.begin(2)
    for actor in sim.actor_ids:  # a re-report of it, as the doc asks
        sim.receive("ack", actor, _ack(actor, 2, events=(adv,) if actor == "follower" else ()))
    sim.step()
    report = sim.report(0.0)
    warnings = [e for e in report.events if e["type"] == "warning"]
    assert [(w["t_s"], w["target"], w["other"]) for w in warnings] == [(0.0, "follower", "lead")]
    assert report.metrics["late_reports"] == 1


def test_lockstep_resends_after_2_s_and_gives_up_after_60_s_naming_the_silent() -> None:
    """ "If a tick stalls for 2 s ... the world sends `TickInput(n)` again to the agents it misses"; "After 60 s
    without a report the run stops ... naming the silent actors"."""
    from v2x.net.clock import AgentTimeout

    clock = LockstepClock(0.1)
    assert (clock.retransmit_after_s, clock.give_up_after_s) == (2.0, 60.0)
    fast = LockstepClock(0.1, retransmit_after_s=0.01, give_up_after_s=0.3)  # (0.05 s saw < 3 re-sends on a loaded box)
    resent: list[int] = []

    async def retransmit() -> None:
        resent.append(1)

    with pytest.raises(AgentTimeout, match=r"tick 3 \(t=0.30 s\): no report from follower"):
        asyncio.run(fast.end_of_tick(3, asyncio.Event(), lambda: ["follower"], retransmit))
    assert len(resent) >= 3


def test_a_tick_that_never_completes_names_what_the_world_refused_on_the_actors_topics() -> None:
    """An outside stack's review sent `raised_at_s` in ms: the world refused the Ack (out_of_range), the stack
    re-sent the same bytes, and after 60 s the run said only "no report from follower". The silent actor is now
    named with what the world refused on its topics during that tick."""
    sim = offline_sim(_fcw())
    bad = testbed_pb2.Advisory(app=testbed_pb2.APP_FCW, target_id="follower", source_id="follower",
                               other_id=temporary_id("lead").hex(), raised_at_s=6002.4)  # fmt: skip
    sim.begin(0)
    for actor in sim.actor_ids:
        ack = _ack(actor, 0, events=(bad,) if actor == "follower" else ())
        sim.receive("ack", actor, ack, where=topics.ack("r", actor))
        sim.receive("ack", actor, ack, where=topics.ack("r", actor))  # (the same bytes again)
    assert sim.missing() == ["follower"]
    [why] = sim.missing_why()
    assert why.startswith("follower (the world refused 2 out_of_range on its topics this tick; the last: ")
    assert "raised_at_s" in why
    sim.step()
    sim.begin(1)  # a new tick forgets the last one's refusals
    assert sim.missing_why() == sorted(sim.actor_ids)


def test_a_tick_whose_ack_claims_more_envelopes_than_came_says_so_not_no_report() -> None:
    """An outside C stack's review: its Ack of tick 10 said `tx_count` 3 and 2 envelopes came; after 60 s the
    run said "no report from follower", although its report had come. The stall now says what the Ack claims."""
    from v2x.net.clock import AgentTimeout

    sim = offline_sim(_fcw())
    sim.begin(0)
    for seq in (1, 2):
        sim.receive("tx", "follower", _env("follower", seq, 0), where=topics.tx("r", "follower"))
    _all_ack(sim, 0, skip=("lead",), tx={"follower": 3})
    assert sim.missing() == ["follower", "lead"]
    assert sim.missing_why() == ["follower (its Ack(0) claims 3 envelopes, 2 came)", "lead"]
    fast = LockstepClock(0.1, retransmit_after_s=0.01, give_up_after_s=0.05)

    async def retransmit() -> None:
        pass

    expected = r"tick 0 \(t=0.00 s\): no report from lead; an incomplete report from follower \(its Ack\(0\) claims 3 "
    with pytest.raises(AgentTimeout, match=expected + r"envelopes, 2 came\) after 0 s"):
        asyncio.run(fast.end_of_tick(0, asyncio.Event(), sim.missing_why, retransmit))


def test_an_envelope_stating_a_time_more_than_a_tick_off_is_refused() -> None:
    """An outside stack's review sent `tx_time_us` in ms (100 for 0.1 s): the world took it silently (a fleet's
    was refused, `bad_time`). Every envelope's stated time must now be within a tick of the tick's time."""
    sim = offline_sim(_fcw())
    for tick in range(5):
        sim.begin(tick)
        _all_ack(sim, tick)
        sim.step()
    sim.begin(5)  # 0.5 s
    for seq, tx_time_us in ((1, 500), (2, 800_000), (3, 500_000), (4, 550_000)):
        sim.receive("tx", "follower", _env("follower", seq, 5, tx_time_us=tx_time_us), where="v2x/r/tx/follower")
    assert sim.inbound.stats.rejected["bad_time"] == 2
    assert sorted(t.seq for t in sim.inbound.received.values()) == [3, 4]


@pytest.mark.parametrize("refused", [14, 15])
def test_an_outside_stack_whose_envelopes_the_world_refuses_fails_envelopes_accepted(refused: int) -> None:
    """An outside C stack's review stated `tx_time_us` in ms: the world refused all 278 of its BSMs (bad_time),
    nobody heard it, and the unsigned run passed with `rejected {'bad_time': 278}`, the actor named nowhere. An
    outside actor whose envelopes the world refused in more than 10 % of a variant's ticks now fails the run
    ("envelopes accepted"), and the result breaks `rejected` down per outside actor."""
    from v2x.run.results import actor_share_checks

    actors = [a.model_copy(update={"external": True}) if a.id == "follower" else a for a in _fcw().actors]
    sim = offline_sim(_fcw(actors=actors))
    for tick in range(20):
        sim.begin(tick)
        ms = 2 <= tick <= refused + 1  # (in ms from tick 2 on: 0.1 ms is within a tick of tick 1)
        for seq, link in ((2 * tick + 1, testbed_pb2.LINK_PC5), (2 * tick + 2, testbed_pb2.LINK_UU)):
            dest = ["lead"] if link == testbed_pb2.LINK_UU else []
            env = _env("follower", seq, tick, link=link, dest_ids=dest, tx_time_us=tick * 100 if ms else tick * 100_000)
            sim.receive("tx", "follower", env, where=topics.tx("r", "follower"))
        _all_ack(sim, tick, tx={"follower": 2})
        sim.step()
    metrics = sim.metrics(1.0)
    assert metrics["ticks"] == 141
    assert metrics["rejected"] == {"bad_time": 2 * refused}
    assert metrics["rejected_by_outside_actor"] == {"follower": {"bad_time": 2 * refused}}
    assert metrics["refused_tx_ticks_by_actor"] == {"follower": refused}
    checks = actor_share_checks({"v2x": metrics})
    assert [c["name"] for c in checks] == (["envelopes accepted"] if refused == 15 else [])
    if checks:
        assert checks[0]["detail"].startswith("follower: 15 of 141 ticks had envelopes of its refused by the world")
        assert checks[0]["detail"].endswith("more than 10% fails the run (refused: 30 bad_time)")
    # A run of built-in agents only (every shipped scenario's) has neither key: its result stays as it was.
    assert "refused_tx_ticks_by_actor" not in offline_sim(_fcw()).metrics(1.0)


def test_refusals_beyond_what_an_outside_stacks_ack_claims_do_not_fail_envelopes_accepted() -> None:
    """Attack review 13 #4: 36 junk payloads on an honest outside stack's tx topic failed "envelopes accepted"
    (29 of 141 ticks), saying what it sent reached nobody, when the world had accepted every envelope of its.
    A tick counts only when the world kept fewer of the actor's envelopes than its Ack claims; junk and a
    well-formed envelope its Ack does not claim (a forger's, refused as bad_time) stay in `rejected`."""
    from v2x.run.results import actor_share_checks

    actors = [a.model_copy(update={"external": True}) if a.id == "follower" else a for a in _fcw().actors]
    sim = offline_sim(_fcw(actors=actors))
    where = topics.tx("r", "follower")
    for tick in range(20):
        sim.begin(tick)
        sim.receive("tx", "follower", b"\xff\xff junk", where=where)  # someone else's, every tick
        sim.receive("tx", "follower", _env("follower", 2 * tick + 1, tick), where=where)
        sim.receive("tx", "follower", _env("follower", 2 * tick + 2, tick, link=testbed_pb2.LINK_UU,
                                           dest_ids=["lead"]), where=where)  # fmt: skip
        if tick % 2:  # a forger's envelope stamped a second late (bad_time), beyond what the Ack claims
            late = (tick + 10) * 100_000
            sim.receive("tx", "follower", _env("follower", 2 * tick + 3, tick, tx_time_us=late), where=where)
        _all_ack(sim, tick, tx={"follower": 2})
        sim.step()
    metrics = sim.metrics(1.0)
    assert metrics["rejected"] == {"bad_time": 10, "malformed": 20}
    assert metrics["rejected_by_outside_actor"] == {"follower": {"bad_time": 10, "malformed": 20}}
    assert metrics["refused_tx_ticks_by_actor"] == {}
    assert actor_share_checks({"v2x": metrics}) == []
    assert sum(metrics["messages"]["sent"].values()) == 40  # every envelope of its went on the air


# ==== Warnings (Ack.events) ==================================================================================
# "each becomes a `warning` event at `raised_at_s` ..., `target` = the reporting actor", "the same advisory
# reported twice counts once", BSM id in hex -> actor id:
#   tests/test_sdk.py::test_a_warning_counts_at_raised_at_s_once_however_often_it_is_reported.
# "`raised_at_s` is when the driver is warned, and it may lie inside the tick", the built-in vehicle's
# reaction `reaction_s` after it, a received advisory echoed at its delivery time keeping
# `trigger_sent_at_s`, `app_latency_ms`, and "a later one ... makes the Ack `out_of_range`":
#   tests/test_delivery_time.py (every test); the reasons:
#   test_each_rejection_reason_of_the_doc_is_counted_by_its_name above.


async def test_a_received_advisory_counts_only_when_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    """ "An `Advisory` your stack **receives** (from the platform, over Uu, `target_id` = you) counts only if you
    **echo it** in `Ack.events` (the platform does not report the advisories it sends)." icw: the edge warns
    both cars; with vehicles that do not echo what they receive, no ICW warning is recorded."""
    from v2x.run.runner import run_scenario

    original = VehicleAgent._warn

    def no_echo(self: VehicleAgent, result: Any, adv: testbed_pb2.Advisory, t: float) -> None:
        if adv.source_id != self.actor_id:  # received: act on it, do not report it
            result = type(result)()
        original(self, result, adv, t)

    icw = load_scenario(SCENARIO_DIR / "icw.yaml")
    monkeypatch.setattr(VehicleAgent, "_warn", no_echo)
    result = await run_scenario(icw, broker="loopback", variants=["v2x"])
    assert not [e for e in result["events"] if e["type"] == "warning"]
    assert not [e for e in result["events"] if e["type"] == "collision"]  # the drivers still braked


def test_the_world_takes_an_advisorys_fields_as_the_doc_says() -> None:
    """ "The fields of an `Advisory`": the warned actor is the one whose Ack carries it, whatever `target_id`
    says; `source_id` and `conflict_type` become the event's `source` and `conflict`, and `source_id` is part of
    the key a warning reported twice counts once by; `valid_until_s` is only range-checked and not recorded; an
    `app` the world does not know is written as its number; a `valid_until_s` not finite, or a `conflict_type`
    over 256 characters, makes the Ack `out_of_range`."""
    sim = offline_sim(_fcw())

    def adv(**fields: Any) -> testbed_pb2.Advisory:
        out = testbed_pb2.Advisory(app=testbed_pb2.APP_FCW, other_id=temporary_id("lead").hex(), raised_at_s=0.0,
                                   ttc_s=2.5, valid_until_s=3.0, conflict_type="rear-end")  # fmt: skip
        for name, value in fields.items():
            setattr(out, name, value)
        return out

    fcw = adv(target_id="somebody", source_id="follower")
    again = adv(target_id="follower", source_id="follower")
    other_source = adv(source_id="edge")
    unknown_app = adv(app=99, source_id="follower")
    sim.begin(0)
    for actor in sim.actor_ids:
        events = (fcw, again, other_source, unknown_app) if actor == "follower" else ()
        sim.receive("ack", actor, _ack(actor, 0, events=events))
    sim.step()
    sim.begin(1)
    for bad in (adv(source_id="lead", valid_until_s=math.inf), adv(source_id="lead", conflict_type="x" * 257)):
        sim.receive("ack", "lead", _ack("lead", 1, events=(bad,)))
    assert dict(sim.inbound.stats.rejected) == {"out_of_range": 2}
    warnings = [e for e in sim.report(0.0).events if e["type"] == "warning"]
    said = [(w["app"], w["target"], w["other"], w["source"], w["conflict"], w["ttc_s"]) for w in warnings]
    assert said == [
        ("fcw", "follower", "lead", "follower", "rear-end", 2.5),
        ("fcw", "follower", "lead", "edge", "rear-end", 2.5),
        ("99", "follower", "lead", "follower", "rear-end", 2.5),
    ]
    assert not any("valid_until_s" in w or "target_id" in w for w in warnings)


async def test_a_built_in_vehicles_fcw_advisory_is_filled_as_the_doc_says(monkeypatch: pytest.MonkeyPatch) -> None:
    """ "The fields of an `Advisory`", a warning raised on board: `target_id` and `source_id` the vehicle's
    actor id, `valid_until_s` = `raised_at_s` + 3 s, `conflict_type` `rear-end` for FCW (fcw on the loopback
    bus: the follower's warning about the lead)."""
    from v2x.run.runner import run_scenario

    raised: list[testbed_pb2.Advisory] = []
    original = VehicleAgent._warn

    def keep(self: VehicleAgent, result: Any, adv: testbed_pb2.Advisory, t: float) -> None:
        raised.append(adv)
        original(self, result, adv, t)

    monkeypatch.setattr(VehicleAgent, "_warn", keep)
    result = await run_scenario(_fcw(), broker="loopback", variants=["v2x"])
    fcw = [a for a in raised if a.app == testbed_pb2.APP_FCW and a.target_id == "follower"]
    assert fcw
    for adv in fcw:
        assert (adv.source_id, adv.conflict_type) == ("follower", "rear-end")
        assert adv.other_id == temporary_id("lead").hex()
        assert adv.valid_until_s == pytest.approx(adv.raised_at_s + 3.0)
    events = [e for e in result["events"] if e["type"] == "warning" and e["app"] == "fcw"]
    assert events
    assert {(e["target"], e["source"], e["conflict"]) for e in events} == {("follower", "follower", "rear-end")}


def test_the_built_in_fcw_sees_the_host_at_its_fix_and_raises_nothing_without_one() -> None:
    """ "Warnings", built-in FCW: "**The host is where its own GNSS fix places it**, as every built-in on-board app
    sees it ...: its truth plus the tick's GNSS error ... Without a fix (`gnss.available` false ...) its accuracy is
    unknown and FCW raises nothing." fcw: the follower (driving east) hears the lead's BSMs 3 ms after each tick
    (the lead's fix is its truth); its own reading puts it at its truth, 3 m ahead of it or 3 m behind, or has no
    fix. 3 m ahead, it is warned when it is at its truth, with a TTC shorter by about the 3 m over its speed;
    3 m behind, later; without a fix, never."""
    from v2x.agents.base import Heard, TickContext

    def first_fcw(gnss: testbed_pb2.GnssReading) -> testbed_pb2.Advisory | None:
        sc = _fcw()
        cars = {a.actor_id: a for a in build_agents(sc, environment(sc)) if isinstance(a, VehicleAgent)}
        inbox: tuple[Heard, ...] = ()
        for n in range(89):  # (the collision without a warning would be at 8.9 s)
            t = round(n * 0.1, 9)
            out = cars["follower"].step(TickContext(tick=n, t_s=t, dt_s=0.1, gnss=gnss, heard=inbox))
            fcw = [e for e in out.events if e.app == testbed_pb2.APP_FCW]
            if fcw:
                return fcw[0]
            lead_out = cars["lead"].step(tick_ctx(n))
            inbox = tuple(Heard("lead", tx.link, t + 0.003, t, tx.frame) for tx in lead_out.transmissions)
        return None

    def fix(east_m: float) -> testbed_pb2.GnssReading:
        return testbed_pb2.GnssReading(available=True, east_error_m=east_m, sigma_major_m=0.02, sigma_minor_m=0.02)

    at_truth, ahead, behind = first_fcw(fix(0.0)), first_fcw(fix(3.0)), first_fcw(fix(-3.0))
    assert at_truth is not None and ahead is not None and behind is not None
    assert at_truth.raised_at_s == pytest.approx(6.003) and ahead.raised_at_s == pytest.approx(6.003)
    assert at_truth.ttc_s - ahead.ttc_s == pytest.approx(3.0 / 16.67, abs=0.05)
    assert behind.raised_at_s > at_truth.raised_at_s
    assert first_fcw(testbed_pb2.GnssReading(available=False)) is None


def test_the_docs_conflict_type_table_names_every_app_that_raises_advisories() -> None:
    """The `conflict_type` table of "The fields of an `Advisory`" has a row for every registered app but
    `clc_coord` (which raises none), and its fcw, icw, lta, dnpw and platoon values are the apps' own."""
    import re

    from v2x.apps import lta, platoon
    from v2x.apps.collision import CONFLICT_NAME
    from v2x.apps.registry import registered
    from v2x.core import ConflictType

    doc = (REPO / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    table = doc[doc.index("`conflict_type` as the built-in apps set it") :]
    table = table[: table.index("\n\n", table.index("| app |"))]
    rows = {}
    for line in table.splitlines()[table.splitlines().index("|---|---|") + 1 :]:
        apps, value = line.strip("|").split("|", 1)
        for app in apps.split(","):
            rows[app.strip()] = value.strip()
    assert set(rows) == set(registered()) - {"clc_coord"}
    assert rows["fcw"].startswith(f"`{CONFLICT_NAME[ConflictType.REAR_END]}`")
    assert rows["icw"].startswith(f"`{CONFLICT_NAME[ConflictType.CROSSING]}`")
    assert set(re.findall(r"`([^`]+)`", rows["vrucw"])) >= set(CONFLICT_NAME.values())
    assert rows["lta"] == f"`{lta.CONFLICT}`"
    assert rows["dnpw"] == "`oncoming`"
    assert rows["platoon"] == f"`{platoon.JOINED}`, `{platoon.LEFT}`, `{platoon.CUT_IN}` or `{platoon.CUT_OUT}`"


# ==== Sending: rounding, secMark =============================================================================
# Units and their ranges, clamping: tests/test_units.py.


def test_rounding_is_to_nearest_with_ties_to_even_then_clamped() -> None:
    """ "**Rounding**: to the nearest unit with ties to even (Python `round`: 2.5 -> 2, 3.5 -> 4), then
    clamped to the element's range"."""
    assert (units.speed_to_wire(0.05), units.speed_to_wire(0.07)) == (2, 4)  # 2.5 -> 2, 3.5 -> 4
    assert units.speed_to_wire(1e6) == 8190  # clamped, never the unavailable 8191


def test_sec_mark_is_truncated_to_the_ms_within_the_utc_minute() -> None:
    """ "**secMark** = `(epoch_utc + time_us)` in ms within the UTC minute, truncated to the ms (0..59999)"."""
    epoch = datetime(2026, 5, 1, 8, 0, 59, 999_600, tzinfo=UTC)
    assert units.sec_mark(0.0, epoch) == 59_999  # 59.9996 s: truncated, not rounded up to the next minute
    assert units.sec_mark(0.0003, epoch) == 59_999 and units.sec_mark(0.0004, epoch) == 0
    example = _load_example("outside_vehicle")
    info = example.RunInfo.from_start(testbed_pb2.Control(epoch_utc=epoch.isoformat()))
    assert [info.sec_mark(us) for us in (0, 300, 400)] == [59_999, 59_999, 0]


# ==== Local frame, vehicle size ==============================================================================


def _doc_to_wgs84(lat0: float, lon0: float, h0: float, x: float, y: float) -> tuple[float, float]:
    """The doc's recipe, as written: (x, y, 0) on the tangent plane -> ECEF -> geodetic by iteration."""
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    p0, l0 = math.radians(lat0), math.radians(lon0)

    def ecef(phi: float, lam: float, h: float) -> tuple[float, float, float]:
        n = a / math.sqrt(1 - e2 * math.sin(phi) ** 2)
        return ((n + h) * math.cos(phi) * math.cos(lam), (n + h) * math.cos(phi) * math.sin(lam),
                (n * (1 - e2) + h) * math.sin(phi))  # fmt: skip

    o = ecef(p0, l0, h0)
    e = (-math.sin(l0), math.cos(l0), 0.0)
    nn = (-math.sin(p0) * math.cos(l0), -math.sin(p0) * math.sin(l0), math.cos(p0))
    px, py, pz = (o[k] + x * e[k] + y * nn[k] for k in range(3))
    lam = math.atan2(py, px)
    p = math.hypot(px, py)
    phi, h = math.atan2(pz, p * (1 - e2)), 0.0
    for _ in range(5):
        n = a / math.sqrt(1 - e2 * math.sin(phi) ** 2)
        h = p / math.cos(phi) - n
        phi = math.atan2(pz, p * (1 - e2 * n / (n + h)))
    return math.degrees(phi), math.degrees(lam)


def test_the_docs_local_frame_recipe_agrees_with_the_testbed_and_flat_earth_does_not() -> None:
    """ "The constants and formulas (WGS84): a = 6378137.0 m, f = 1 / 298.257223563 ... (five iterations reach
    well under a millimetre; the testbed uses the closed form of Heikkinen, which agrees)"; "A flat-earth
    shortcut ... is off by up to 0.4 m 2 km from the origin"."""
    lat0, lon0, h0 = 29.7, 106.6, 250.0
    frame = LocalFrame(lat0, lon0, h0)
    example = _load_example("outside_vehicle").LocalFrame(lat0, lon0, h0)
    worst_flat = 0.0
    for x, y in ((2000.0, 0.0), (0.0, 2000.0), (-1414.2, 1414.2), (350.0, -20.0)):
        lat, lon = _doc_to_wgs84(lat0, lon0, h0, x, y)
        lx, ly, _ = frame.to_local(lat, lon)
        assert math.hypot(lx - x, ly - y) < 1e-3  # the doc's recipe there, the testbed's back
        elat, elon, _ = example.to_wgs84(x, y)
        ex, ey, _ = frame.to_local(elat, elon)
        assert math.hypot(ex - x, ey - y) < 1e-3
        a, f = 6378137.0, 1 / 298.257223563
        e2 = f * (2 - f)
        s2 = math.sin(math.radians(lat0)) ** 2
        m = a * (1 - e2) / (1 - e2 * s2) ** 1.5
        n = a / math.sqrt(1 - e2 * s2)
        flat = (lat0 + math.degrees(y / m), lon0 + math.degrees(x / (n * math.cos(math.radians(lat0)))))
        fx, fy, _ = frame.to_local(*flat)
        worst_flat = max(worst_flat, math.hypot(fx - x, fy - y))
    assert 0.1 < worst_flat <= 0.4


def test_vehicle_sizes_per_kind_are_the_docs() -> None:
    """ "car 5.0 x 2.0 m (height 1.6), truck 13.0 x 2.6 (3.0), bus 12.0 x 2.55 (3.2), emergency 5.5 x 2.1 (2.4),
    pedestrian 0.5 x 0.5 (1.7), cyclist 1.8 x 0.6 (1.7)"."""
    doc = {"car": (5.0, 2.0, 1.6), "truck": (13.0, 2.6, 3.0), "bus": (12.0, 2.55, 3.2), "emergency": (5.5, 2.1, 2.4),
           "pedestrian": (0.5, 0.5, 1.7), "cyclist": (1.8, 0.6, 1.7)}  # fmt: skip
    assert {k: DEFAULT_SIZE[k] for k in doc} == doc


def test_the_example_wreck_sends_hazard_lights_and_disabled_vehicle() -> None:
    """ "A built-in vehicle ... also sets the BSM event flags `hazardLights` and `disabledVehicle` from then on ...;
    a stack may do the same" (docs/PROTOCOL.md, "Collisions"): examples/outside_vehicle.py does, from the tick
    that tells it of its collision, and not before; the testbed's decoder reads both flags."""
    from v2x.wire import frame_pb2
    from v2x.wire.bsm import VEHICLE_EVENT_BIT, decode_event_flags

    _, session, published = _example_session()
    session._on_control(_start("tok").SerializeToString())
    flags: list[int] = []
    for tick in range(5):
        ti = testbed_pb2.TickInput(run_id="r", tick=tick, time_us=tick * 100_000, tick_us=100_000)
        if tick == 2:
            ti.collisions.add(other_id="follower", t_s=0.15, relative_speed_mps=5.0)
        published.clear()
        session._on_tick(ti)
        env = testbed_pb2.Envelope.FromString(next(p for t, p in published if t == "v2x/r/tx/lead"))
        flags.append(decode_event_flags(frame_pb2.MessageFrame.FromString(env.frame).bsm))
    wreck = (1 << VEHICLE_EVENT_BIT["hazard_lights"]) | (1 << VEHICLE_EVENT_BIT["disabled"])
    assert [f & wreck for f in flags] == [0, 0, wreck, wreck, wreck]


def test_the_examples_answer_only_the_worlds_next_tick_and_a_run_error_stop_is_no_normal_end() -> None:
    """ "Accept a `TickInput` only for the next tick" (docs/PROTOCOL.md "Lockstep", session 17): a forged
    TickInput(10^6, final) made examples/outside_vehicle.py answer it as its final tick, and the world's run-error
    STOP then ended it with exit 0. Now it is refused (``bad_tick``), a different TickInput for the tick answered is
    answered as before (``conflicting_input``), ``final`` counts only at START's ``n_ticks``, a STOP with a reason
    after the final tick exits 1, and a START it cannot use is ignored (epoch 'x' raised a traceback). The SDK
    counts a START whose epoch overflows (it ended its reader task, unseen)."""
    example, session, published = _example_session()
    start = _start("tok")
    start.n_ticks, start.protocol_version = 2, 1
    bad = testbed_pb2.Control()
    bad.CopyFrom(start)
    bad.epoch_utc = "x"
    assert session._on_control(bad.SerializeToString()) is None and session.info is None
    assert session._on_control(start.SerializeToString()) is None
    tick = testbed_pb2.TickInput

    def acks() -> list[int]:
        return [testbed_pb2.Ack.FromString(p).tick for t, p in published if t.endswith("/ack/lead")]

    session._on_tick(tick(run_id="r", tick=0, tick_us=100_000))
    session._on_tick(tick(run_id="r", tick=1_000_000, tick_us=100_000, final=True))  # a forger's
    session._on_tick(tick(run_id="r", tick=1, tick_us=100_000, final=True))  # final, but not the last tick
    assert acks() == [0] and session.finished is None
    session._on_tick(tick(run_id="r", tick=1, tick_us=100_000))
    session._on_tick(tick(run_id="r", tick=1, tick_us=100_000, time_us=5))  # a different one for tick 1
    session._on_tick(tick(run_id="r", tick=2, tick_us=100_000, final=True))
    assert acks() == [0, 1, 1, 2] and session.finished is not None
    assert published[-4:-2] == published[-6:-4]  # tick 1 answered again with the same envelope and Ack
    last = testbed_pb2.Ack.FromString(published[-1][1])
    assert dict(last.rejected) == {"bad_tick": 2, "conflicting_input": 1}
    stop = testbed_pb2.Control(command=testbed_pb2.Control.COMMAND_STOP, run_id="r", token="tok", reason="run error: x")
    assert session._on_control(stop.SerializeToString()) == example.EXIT_ERROR
    stop.reason = ""
    assert session._on_control(stop.SerializeToString()) == example.EXIT_OK

    from v2x.sdk import Stack

    stack = Stack("mqtt://127.0.0.1:1", run_id="r", actor_id="lead")
    bad.epoch_utc = "0001-01-01T00:00:00+01:00"  # a year 0 in UTC: OverflowError, not ValueError
    stack._on_control(bad.SerializeToString())
    assert stack.run is None and stack.rejected["malformed"] == 1
    stack._on_control(start.SerializeToString())
    assert stack.run is not None and stack.run.n_ticks == 2


def test_the_severity_the_doc_lists_for_each_app_is_the_apps_own() -> None:
    """docs/PROTOCOL.md says which `severity` an outside stack should send with each built-in app's
    warnings (a C++ stack written from the doc alone could not tell)."""
    import re

    from v2x.apps.registry import registered
    from v2x.wire import testbed_pb2

    doc = " ".join((Path(__file__).resolve().parents[1] / "docs" / "PROTOCOL.md").read_text().split())
    said = re.search(r"Send the built-in app's own: (.*?) \(`v2x/apps/`", doc)
    assert said is not None
    listed: dict[str, str] = {}
    for part in said.group(1).split("; "):
        level, apps = re.fullmatch(r"`(SEVERITY_\w+)` for (.*)", part).groups()  # type: ignore[union-attr]
        for app in re.split(r", | and ", apps):
            listed[app] = level
    assert listed == {name: testbed_pb2.Severity.Name(spec.severity) for name, spec in registered().items()}


def test_what_the_built_in_driver_does_with_each_apps_warning_is_as_the_doc_lists() -> None:
    """ "Warnings", "**What the built-in driver does with a warning**": each app listed under what the driver does
    with its warnings, as its `AppSpec` declares (`reaction`; a warning or an abort only from `SEVERITY_WARNING`
    up, `v2x/agents/vehicle.py` `_warn`); `clc_coord` raises no Advisory. docs/SCENARIOS.md "The driver" lists the
    apps he brakes for the same (it left out SDS until session 21)."""
    import re

    from v2x.apps.registry import Reaction, registered

    doc = " ".join(_doc().split())
    part = doc[doc.index("**What the built-in driver does with a warning**") :]
    part = part[: part.index("### The fields of an `Advisory`")]
    said: dict[str, set[str]] = {}
    for label, text in re.findall(r"- \*\*([a-z ]+)\*\* (.*?)(?= - \*\*|$)", part):
        apps = " ".join(re.sub(r"\([^()]*\)", "", text).split()).rsplit(":", 1)[1].strip(" ;.")
        said[label] = set(re.split(r", | and ", apps))
    warning = testbed_pb2.SEVERITY_WARNING
    does = {
        Reaction.WARNING: "brakes to a stop",
        Reaction.SPEED_CAP: "keeps to a speed",
        Reaction.SHOWN_SIGN: "keeps to a speed",
        Reaction.SPEED_ADVICE: "follows an advised speed",
        Reaction.ABORT_MANOEUVRE: "abandons the lane change or overtake",
    }
    expected: dict[str, set[str]] = {}
    for name, spec in registered().items():
        if name == "clc_coord":
            continue
        quiet = spec.reaction in (Reaction.WARNING, Reaction.ABORT_MANOEUVRE) and spec.severity < warning
        expected.setdefault("does nothing" if quiet else does[spec.reaction], set()).add(name)
    assert said == expected
    scenarios = " ".join((REPO / "docs" / "SCENARIOS.md").read_text(encoding="utf-8").split())
    braking = re.search(r"\(any app whose reaction is a warning: ([A-Z, ]+)\)", scenarios)
    assert braking is not None
    assert {app.lower() for app in braking.group(1).split(", ")} == expected["brakes to a stop"]


def test_an_ack_that_contradicts_its_ticks_first_flags_the_actor_at_once() -> None:
    """Attack review 9: one forged Ack that came first changed the verdict, counted as one conflicting_ack and
    unflagged (flags took conflicts in 3 ticks). An Ack that says something else than its tick's first flags
    the actor at once; one rebuilt with a grown `rejected` map (a stack answering a re-sent input anew) is
    still counted as conflicting, and flagged only from the third such tick, as before."""
    sim = offline_sim(_fcw())
    sim.begin(0)
    sim.receive("ack", "lead", _ack("lead", 0))
    rebuilt = testbed_pb2.Ack.FromString(_ack("lead", 0))
    rebuilt.rejected["malformed"] = 1
    sim.receive("ack", "lead", rebuilt.SerializeToString())
    assert sim.inbound.stats.rejected == {"conflicting_ack": 1} and sim.inbound.flagged() == {}
    sim.receive("ack", "lead", _ack("lead", 0, x=131.0))
    assert sim.inbound.flagged() == {"lead": {"ack": 2}}


def test_the_example_takes_a_later_tick_in_real_time_only_once_the_worlds_clock_can_be_there() -> None:
    """Checklist item 9 (session 26): in real time (START's ``clock``) an input can be lost, and a stack MUST take
    the later tick that follows (the examples took only n + 1 after n, as an outside Rust stack did, which then
    refused every tick of a real-time run after a broker restart lost one input); a tick further ahead than the
    world's clock can be (t0 + (m - 1) x tick) is refused as ``bad_tick``. In lockstep only n + 1 follows n."""
    for clock, want in ((testbed_pb2.Control.CLOCK_REALTIME, [0, 2]), (testbed_pb2.Control.CLOCK_LOCKSTEP, [0])):
        _, session, published = _example_session()
        start = _start("tok")
        start.n_ticks, start.protocol_version, start.clock = 100, 1, clock
        session._on_control(start.SerializeToString())
        t0 = session.info.started_at
        tick = testbed_pb2.TickInput
        session._on_tick(tick(run_id="r", tick=0, tick_us=100_000), t0 + 0.01)
        session._on_tick(tick(run_id="r", tick=50, tick_us=100_000, time_us=5_000_000), t0 + 0.25)  # too early
        session._on_tick(tick(run_id="r", tick=2, tick_us=100_000, time_us=200_000), t0 + 0.25)  # 1 was lost
        acks = [testbed_pb2.Ack.FromString(p).tick for t, p in published if t.endswith("/ack/lead")]
        assert acks == want and session.rejected["bad_tick"] == 3 - len(want), (clock, acks, session.rejected)
