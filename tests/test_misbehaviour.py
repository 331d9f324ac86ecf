"""Misbehaviour detection (v2x.apps.misbehaviour, the edge's check against roadside perception) and the
insider of scenario ``ghost`` (docs/SECURITY.md, "Misbehaviour detection")."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from pathlib import Path
from typing import Any, get_args

import pytest

from tests._agents import tick_ctx
from v2x.agents.base import Heard
from v2x.agents.platform import EdgePlatform
from v2x.apps.host import Participant
from v2x.apps.misbehaviour import CHECKS, Detector, consistency, consistency_many, distance_bounds
from v2x.apps.thresholds import DEFAULTS
from v2x.run.results import evaluate
from v2x.run.runner import build_agents, environment, run_scenario
from v2x.scenario import load_scenario
from v2x.scenario.loader import ScenarioError
from v2x.scenario.model import MisbehaviourCheck, MisbehaviourExpectation
from v2x.wire import testbed_pb2
from v2x.wire.bsm import VEHICLE_EVENT_BIT, RemoteState
from v2x.wire.envelope import temporary_id

GHOST = "scenarios/ghost.yaml"


def bsm(
    t: float,
    x: float,
    *,
    v: float = 14.0,
    a: float = 0.0,
    y: float = 0.0,
    sigma: float | None = 0.05,
    tid: bytes = b"\x01" * 8,
) -> RemoteState:
    return RemoteState(tid, t, x, y, v, 0.0, a, 4.8, 1.8, sigma, 0, 0)


def test_the_schema_names_the_checks_the_detector_has() -> None:
    assert set(get_args(MisbehaviourCheck)) == set(CHECKS)


def test_distance_bounds_bracket_constant_speed_and_respect_the_limits() -> None:
    lo, hi = distance_bounds(10.0, 10.0, 1.0, 3.0, 9.0, 55.55)
    assert lo < 10.0 < hi
    # From standstill to standstill in 2 s: up at 3 m/s^2 for 1.5 s to 4.5 m/s, down at 9 m/s^2 in 0.5 s.
    lo, hi = distance_bounds(0.0, 0.0, 2.0, 3.0, 9.0, 55.55)
    assert lo == 0.0 and math.isclose(hi, 4.5)


@pytest.mark.parametrize(
    ("new", "check"),
    [
        (bsm(0.1, 1.4), None),  # 14 m/s for 0.1 s
        (bsm(0.1, 40.0), "position_jump"),
        (bsm(0.1, 1.4, v=70.0), "speed"),
        (bsm(0.1, 1.4, a=-20.0), "acceleration"),
        (bsm(0.1, 1.4, v=20.0), "acceleration"),  # +6 m/s in 0.1 s
        (bsm(1.0, 4.0), "position_speed"),  # 4 m in 1 s at a claimed 14 m/s
        (bsm(0.1, 40.0, sigma=3.0), None),  # a fix too poor to judge by position
        (bsm(0.1, 40.0, sigma=None), None),
    ],
)
def test_per_message_checks(new: RemoteState, check: str | None) -> None:
    assert consistency(bsm(0.0, 0.0), new, DEFAULTS) == check


WRECK = (1 << VEHICLE_EVENT_BIT["disabled"]) | (1 << VEHICLE_EVENT_BIT["hazard_lights"])


@pytest.mark.parametrize(
    ("old", "new", "check"),
    [
        # a crash: from 14 (25) m/s to rest in a tick, disabledVehicle newly set: no lie (newcomer review 17)
        (bsm(0.0, 0.0), replace(bsm(0.1, 1.0, v=0.0), events=WRECK), None),
        (bsm(0.0, 0.0, v=25.0), replace(bsm(0.1, 2.5, v=0.0), events=WRECK), None),
        # ... but only that: without the flag, still moving, the flag set before, or lying about the rest
        (bsm(0.0, 0.0), bsm(0.1, 1.0, v=0.0), "acceleration"),
        (bsm(0.0, 0.0), replace(bsm(0.1, 1.0, v=3.0), events=WRECK), "acceleration"),
        (replace(bsm(0.0, 0.0), events=WRECK), replace(bsm(0.1, 1.0, v=0.0), events=WRECK), "acceleration"),
        (bsm(0.0, 0.0), replace(bsm(0.1, 40.0, v=0.0), events=WRECK), "position_jump"),
        (bsm(0.0, 0.0), replace(bsm(0.1, 1.0, v=0.0, a=-20.0), events=WRECK), "acceleration"),
        (bsm(0.0, 0.0, v=0.0), replace(bsm(0.1, 0.0, v=0.0), events=WRECK), None),  # a car that breaks down
    ],
)
def test_a_crash_is_not_a_lie(old: RemoteState, new: RemoteState, check: str | None) -> None:
    assert consistency(old, new, DEFAULTS) == check
    assert consistency_many([(old, new)] * 10, DEFAULTS) == [check] * 10


def test_a_judged_sender_is_reported_once_and_stays_excluded() -> None:
    d = Detector(DEFAULTS)
    assert d.observe(bsm(0.0, 0.0), 0.0) is None
    verdict = d.observe(bsm(0.1, 50.0), 0.1)
    assert verdict is not None and verdict.check == "position_jump"
    assert d.observe(bsm(0.2, 100.0), 0.2) is None  # reported once
    assert d.excluded(b"\x01" * 8)
    assert d.observe(bsm(0.1, 1.4, tid=b"\x02" * 8), 0.1) is None  # others are not


def test_overlap_with_the_host_or_an_earlier_sender() -> None:
    # judged at the sender's first BSM mbd_overlap_wait_s (0.3 s) later (it could say it crashed), not before
    d = Detector(DEFAULTS)
    own = Participant("own", 0.0, 0.0, 14.0, 0.0, 0.0, 0.0, 4.8, 1.8, 0.0)

    def pair(t: float) -> list[RemoteState]:  # (the car on the next lane keeps beside it)
        return [bsm(t, 1.0 + 14.0 * (t - 1.0), tid=b"\x03" * 8), bsm(t, 14.0 * (t - 1.0), y=3.5, tid=b"\x04" * 8)]

    for t in (1.0, 1.1, 1.2, 1.25):
        assert d.overlaps(pair(t), t, own) == [], t
    [v] = d.overlaps(pair(1.3), 1.3, own)
    assert (v.suspect, v.check, v.t_s) == (b"\x03" * 8, "overlap", 1.3)
    # another sender: the newcomer, heard from 1.0 on top of one heard since 0.0 (by the host's clock)
    d2 = Detector(DEFAULTS)
    for t in (0.0, 0.5, 0.95):
        d2.observe(bsm(t, 14.0 * t - 3.3, tid=b"\x05" * 8), t)
    first = bsm(0.95, 50.0, tid=b"\x05" * 8)
    second = bsm(1.0, 51.0, tid=b"\x06" * 8)
    d2.observe(second, 1.0)
    assert d2.overlaps([second, first], 1.0) == []
    later = [bsm(1.25, 53.5, tid=b"\x05" * 8), bsm(1.3, 55.2, tid=b"\x06" * 8)]
    assert [v.suspect for v in d2.overlaps(later, 1.3)] == [b"\x06" * 8]  # the newcomer


def _framing(d: Detector, victim_from: float, liar_from: float, early_s: float) -> list[bytes]:
    """A victim heard from ``victim_from`` (one BSM a tick, at the tick), and a liar heard from ``liar_from`` that
    claims the victim's box in BSMs stamped ``early_s`` before the tick they are heard in: who is judged by 2 s."""
    victim, liar = b"\x06" * 8, b"\x05" * 8  # (the liar's id the smaller: the old tie-break spared it)
    judged = []
    for k in range(21):
        t = round(0.1 * k, 3)
        heard = []
        if t >= victim_from:
            heard.append(bsm(t, 14.0 * t, tid=victim))
        if t >= liar_from:
            heard.append(bsm(t - early_s, 14.0 * (t - early_s), tid=liar))
        for r in heard:
            assert d.observe(r, t) is None
        judged += [v.suspect for v in d.overlaps(heard, t)]
    return judged


@pytest.mark.parametrize("early_s", [0.0, 0.09, 0.25])
def test_a_liar_on_top_of_a_car_stamped_early_does_not_get_the_car_judged(early_s: float) -> None:
    # attack review 13: an outside car claims a built-in car's box, its BSMs stamped 90-250 ms before their
    # envelopes' send time; the detector judged the party with the newer BSM by its own stated time, the real
    # car, and left it out of ICW / FCW for the rest of the run (collisions at 16.7 and 19.6 m/s)
    victim, liar = b"\x06" * 8, b"\x05" * 8
    assert victim not in _framing(Detector(DEFAULTS), 0.0, 0.0, early_s)  # both from the start: nobody
    assert _framing(Detector(DEFAULTS), 0.0, 0.0, early_s) == []
    assert _framing(Detector(DEFAULTS), 0.0, 1.0, early_s) == [liar]  # the newcomer on top of the car
    # the car is the newcomer only by the host's clock: here the liar was heard first
    assert _framing(Detector(DEFAULTS), 0.6, 0.0, early_s) == [victim]


def test_a_phantom_that_overlaps_once_and_moves_away_is_still_judged() -> None:
    d = Detector(DEFAULTS)
    own = Participant("own", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 4.8, 1.8, 0.0)
    assert d.overlaps([bsm(1.0, 1.0, tid=b"\x03" * 8)], 1.0, own) == []
    assert d.overlaps([bsm(1.1, 30.0, tid=b"\x03" * 8)], 1.1, own) == []
    [v] = d.overlaps([bsm(1.3, 33.0, tid=b"\x03" * 8)], 1.3, own)
    assert v.suspect == b"\x03" * 8


def test_vehicles_that_hit_each_other_are_not_judged_for_overlapping() -> None:
    # two vehicles collide: their boxes overlap in the BSMs of the collision, sent before either knows, and
    # in every one after, which say disabledVehicle from the next tick or the one after (a review saw
    # parties of the crash judged in every downhill seed)
    own = Participant("own", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 4.8, 1.8, 0.0)
    moving = bsm(1.0, 1.0, v=10.0, tid=b"\x03" * 8)
    still = bsm(1.1, 1.0, v=0.0, tid=b"\x03" * 8)  # (its next BSM: at rest, not yet saying it crashed)
    wreck = replace(bsm(1.3, 1.0, v=0.0, tid=b"\x03" * 8), events=WRECK)
    d = Detector(DEFAULTS)
    assert d.overlaps([moving], 1.0, own) == [] and d.overlaps([still], 1.1, own) == []
    assert d.overlaps([wreck], 1.3, own, own_disabled=True) == []
    assert d.overlaps([replace(wreck, t_s=1.7)], 1.7, own, own_disabled=True) == []
    assert not d.judged
    # ... but only both: the host did not crash, or the sender does not say it did
    for sender, host in ((wreck, False), (replace(wreck, events=0), True)):
        d = Detector(DEFAULTS)
        d.overlaps([moving], 1.0, own)
        [v] = d.overlaps([sender], 1.3, own, own_disabled=host)
        assert v.suspect == b"\x03" * 8
    # two senders
    crash = [bsm(1.0, 51.0, tid=b"\x06" * 8), bsm(0.95, 50.0, tid=b"\x05" * 8)]
    wrecks = [replace(bsm(1.3, 51.0, v=0.0, tid=t), events=WRECK) for t in (b"\x05" * 8, b"\x06" * 8)]
    d = Detector(DEFAULTS)
    assert d.overlaps(crash, 1.0) == []
    assert d.overlaps(wrecks, 1.3) == [] and d.overlaps([replace(w, t_s=1.7) for w in wrecks], 1.7) == []
    d = Detector(DEFAULTS)
    # (x05 heard since 0.1: x06 is the newcomer)
    assert d.observe(replace(crash[1], t_s=0.1, x=50.0 - 14.0 * 0.85), 0.1) is None
    assert d.observe(crash[1], 0.95) is None and d.observe(crash[0], 1.0) is None
    d.overlaps(crash, 1.0)
    [v] = d.overlaps([replace(wrecks[1], events=0), wrecks[0]], 1.3)
    assert v.suspect == b"\x06" * 8


def _run(overrides: dict[str, Any], tmp_path: Any, variants: tuple[str, ...] = ("v2x",)) -> dict[str, Any]:
    sc = load_scenario(GHOST)
    sc = sc.model_copy(update={"thresholds": {**sc.thresholds, **overrides}})
    return asyncio.run(run_scenario(sc, seed=0, broker="loopback", variants=list(variants)))


def test_ghost_phantom_is_reported_and_warns_nobody() -> None:
    result = _run({}, None)
    assert result["passed"], [e for e in result["expectations"] if not e["passed"]]
    reports = [e for e in result["events"] if e["type"] == "misbehaviour"]
    assert [(e["actor"], e["suspect"], e["check"]) for e in reports] == [("edge", "mallory", "rsu_unseen")]


def test_ghost_without_the_rsu_check_warns_car_c_about_the_phantom() -> None:
    result = _run({"mbd_rsu_unseen_s": 1000.0}, None)
    warned = {(e["target"], e["other"]) for e in result["events"] if e["type"] == "warning"}
    assert ("car_c", "mallory") in warned
    assert not [e for e in result["events"] if e["type"] == "misbehaviour"]


def test_an_insider_that_starts_lying_mid_run_jumps(tmp_path: Any) -> None:
    sc = load_scenario(GHOST)
    actors = [
        # Mallory drives at the phantom's speed, so only the position gives the lie away.
        a.model_copy(update={"speed_mps": 13.89, "phantom": a.phantom.model_copy(update={"from_s": 1.0})})
        if a.phantom
        else a
        for a in sc.actors
    ]
    result = asyncio.run(
        run_scenario(sc.model_copy(update={"actors": actors}), seed=0, broker="loopback", variants=["v2x"])
    )
    reports = [(e["actor"], e["suspect"], e["check"]) for e in result["events"] if e["type"] == "misbehaviour"]
    assert ("edge", "mallory", "position_jump") in reports


def test_phantom_needs_an_equipped_road_user_and_a_known_lane(tmp_path: Any) -> None:
    text = Path(GHOST).read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("phantom: {lane: sb,", "phantom: {lane: nowhere,"), encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"phantom\.lane"):
        load_scenario(bad)
    bad.write_text(text.replace("    speed_mps: 0\n", "    speed_mps: 0\n    equipped: false\n"), encoding="utf-8")
    with pytest.raises(ScenarioError, match="phantom"):
        load_scenario(bad)


def test_an_outside_stack_s_own_report_counts_only_where_an_expectation_names_it() -> None:
    # attack review 13: one line in an outside car's Ack (misbehaviour {suspect: car_a}) failed ghost's "car A
    # is not taken for a liar"; a misbehaviour expectation without actor would have passed on it
    sc = load_scenario(GHOST)
    eve = next(a for a in sc.actors if a.id == "car_c").model_copy(update={"id": "eve", "external": True})
    sc = sc.model_copy(update={"actors": [*sc.actors, eve]})
    report = {"t_s": 2.0, "type": "misbehaviour", "variant": "v2x", "actor": "eve", "suspect": "car_a"}
    report |= {"suspect_id": "00", "check": "overlap"}
    base = next(e for e in sc.expectations if isinstance(e, MisbehaviourExpectation))
    anybody = base.model_copy(update={"name": "anybody", "suspect": "car_a", "actor": None, "check": None})
    by_eve = anybody.model_copy(update={"name": "by eve", "actor": "eve"})
    sc = sc.model_copy(update={"expectations": [*sc.expectations, anybody, by_eve]})
    got = {e["name"]: e for e in evaluate(sc, [report], {"v2x": {}})}
    assert got["car A is not taken for a liar"]["passed"], got["car A is not taken for a liar"]
    assert "1 report(s) by outside stacks not counted" in got["car A is not taken for a liar"]["detail"]
    assert not got["anybody"]["passed"] and got["by eve"]["passed"]
    # a built-in detector's report counts as before
    edge = report | {"actor": "edge"}
    got = {e["name"]: e for e in evaluate(sc, [edge], {"v2x": {}})}
    assert not got["car A is not taken for a liar"]["passed"] and got["anybody"]["passed"]


def test_a_made_up_relay_under_a_car_s_id_does_not_get_the_car_judged_at_the_edge() -> None:
    # attack review 13, finding 2 (the detector's half): an RSU "relayed" over the backhaul, every tick, a BSM under
    # car_a's id and time claiming it stood elsewhere, heard before car_a's own; the edge took it for car_a (the
    # car's own BSM of the same time a duplicate), then judged car_a's BSMs an implausible jump and excluded it
    # from ICW (a crash at 19.6 m/s). The edge goes by the BSMs it hears from car_a itself (Uu, the id bound to
    # the sender): relays under its id are not used, those that contradict it are counted
    sc = load_scenario("scenarios/icw.yaml")
    agents = {a.actor_id: a for a in build_agents(sc, environment(sc))}
    car, edge = agents["car_a"], agents["edge"]
    assert isinstance(edge, EdgePlatform) and edge.detector is not None
    own = [
        next(tx.frame for tx in car.step(tick_ctx(tick)).transmissions if tx.link == testbed_pb2.LINK_UU)
        for tick in range(30)
    ]
    for tick in range(20):
        t = round(0.1 * tick, 9)
        forged = type(own[-1])()
        forged.CopyFrom(own[-1])  # car_a 40 m further on, stamped as its BSM of the tick
        forged.bsm.sec_mark = own[tick].bsm.sec_mark
        heard = (
            Heard("rsu_x1", testbed_pb2.LINK_WIRED, t + 0.01, t, forged),
            Heard("car_a", testbed_pb2.LINK_UU, t + 0.02, t, own[tick]),
        )
        edge.step(tick_ctx(tick, heard))
        assert edge.known[temporary_id("car_a").hex()].x == pytest.approx(-109.4 + 13.89 * t, abs=0.2), tick
    assert not edge.detector.judged
    assert edge.rejected["relay_contradicts"] == 19  # (the first came before any of car_a's own)
