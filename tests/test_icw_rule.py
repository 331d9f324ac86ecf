"""ICW's rule (the brief: TTC 5 s, PET 2 s): each party of a crossing conflict is warned once its own time to the
conflict point is within the ICW TTC, with that time; a domain review found the later party warned at once, with
a time to the point beyond the threshold (5.8 s against 5 s)."""

from __future__ import annotations

import math
from dataclasses import replace

from v2x.apps.collision import IntersectionCollisionWarning
from v2x.apps.host import Participant
from v2x.apps.registry import EdgeView
from v2x.apps.thresholds import DEFAULTS
from v2x.wire import day1_pb2
from v2x.wire.bsm import VEHICLE_CLASS, RemoteState, participant_type_of_class


def _warned(a_m: float, b_m: float) -> dict[str, float]:
    """Car a heading east and car b heading north, ``a_m`` and ``b_m`` from the crossing at 10 m/s: who is
    warned, with the time to the point each is told."""
    a = Participant("a", -a_m, 0.0, 10.0, 0.0, 0.0, 0.0, 5.0, 2.0, 0.02, 0.0)
    b = Participant("b", 0.0, -b_m, 0.0, 10.0, 0.0, math.pi / 2, 5.0, 2.0, 0.02, 0.0)
    out = IntersectionCollisionWarning().evaluate(EdgeView([a, b], DEFAULTS), 0.0)
    return {x.target: x.raised.ttc_s for x in out}


def test_each_party_is_warned_once_its_own_time_is_within_the_ttc() -> None:
    assert DEFAULTS["icw_ttc_s"] == 5.0 and DEFAULTS["icw_max_pet_s"] == 2.0
    only_a = _warned(40.0, 58.0)  # a 4.0 s from the point (less the boxes' reach), b 5.8 s: PET under 2 s
    assert list(only_a) == ["a"] and only_a["a"] <= 5.0
    both = _warned(40.0, 45.0)  # b 4.5 s away: both within
    assert set(both) == {"a", "b"} and all(t <= 5.0 for t in both.values())
    assert _warned(60.0, 62.0) == {}  # neither within 5 s yet


def test_icw_is_between_motor_vehicles_only() -> None:
    """A domain review: the platform's ICW warned a car about a pedestrian (an RSU camera's object) crossing its
    path, and the car's own VRUCW never fired. ICW is vehicle to vehicle (T/CSAE 53): a pedestrian or a cyclist
    is neither party of it, whichever way it is known (a BSM's vehicle class, an RSM's participant type)."""
    car = Participant("car", -40.0, 0.0, 10.0, 0.0, 0.0, 0.0, 5.0, 2.0, 0.02, 0.0)
    crossing = Participant("x", 0.0, -45.0, 0.0, 10.0, 0.0, math.pi / 2, 5.0, 2.0, 0.02, 0.0)
    assert set(_targets([car, crossing])) == {"car", "x"}  # two cars: both warned
    for vru in (day1_pb2.PARTICIPANT_PEDESTRIAN, day1_pb2.PARTICIPANT_NON_MOTOR, day1_pb2.PARTICIPANT_UNKNOWN):
        assert _targets([car, replace(crossing, ptc_type=vru)]) == [], vru
    # and a pedestrian does not stop the two cars' conflict from being found
    walker = replace(crossing, key="p", x=-2.0, y=-30.0, vx=0.0, vy=1.4, ptc_type=day1_pb2.PARTICIPANT_PEDESTRIAN)
    assert set(_targets([car, crossing, walker])) == {"car", "x"}


def _targets(parties: list[Participant]) -> list[str]:
    return [x.target for x in IntersectionCollisionWarning().evaluate(EdgeView(parties, DEFAULTS), 0.0)]


def test_a_participant_keeps_its_remote_s_kind() -> None:
    """What ICW filters on comes from the message: an RSM object's participant type (a BSM sender's from its
    vehicle class, ``v2x.wire.bsm.participant_type_of_class``)."""
    walker = RemoteState(b"\x00\x00\x00\x01", 0.0, 0.0, -30.0, 1.4, math.pi / 2, 0.0, 0.5, 0.5, 0.3, 82, 0, 3)
    assert Participant.from_remote("p", walker, 0.0).ptc_type == day1_pb2.PARTICIPANT_PEDESTRIAN
    assert participant_type_of_class(VEHICLE_CLASS["cyclist"]) == day1_pb2.PARTICIPANT_NON_MOTOR
