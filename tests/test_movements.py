"""Movements through a box (newcomer 9): MAP maneuvers and connections from a lane's ``turn`` or its centre line,
permissive green (5) for a movement that gives way to another with green in its phase and protected green (6)
only where nothing conflicts, in SPAT, in the signal heads, and as LTA and the other apps read them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests._agents import rtk_gnss
from v2x.agents.base import TickContext
from v2x.agents.roadside import RoadsideUnit
from v2x.apps.host import Host
from v2x.apps.lta import protected_left
from v2x.apps.rlvw import red_light_warning
from v2x.apps.thresholds import DEFAULTS
from v2x.run.runner import environment
from v2x.scenario import load_scenario, scenario_notes
from v2x.scenario.loader import SCENARIO_DIR
from v2x.scenario.model import Scenario
from v2x.scenario.signals import approaches, movements, signal_groups, signal_heads
from v2x.wire import day1_pb2
from v2x.wire.map_spat import (
    GREEN,
    GREEN_LIGHTS,
    PERMISSIVE_GREEN,
    RED,
    STOPPING_LIGHTS,
    Connection,
    MapNode,
    decode_map,
    decode_spat,
    encode_map,
)

# A four-way crossing in a 16 m box (newcomer 9's, /tmp/review-newcomer9-yz-lta.yaml): phase 1 gives green to the
# northbound left-turn lane nb_l and both through lanes nb_t and sb_t; phase 2 to eb_t and wb_t.
CROSSING = """
id: permissive
name: permissive left turn
origin: {lat_deg: 39.7921, lon_deg: 116.5062, alt_m: 30.0}
duration_s: 5.0
road:
  lanes:
    - {id: nb_l, centerline: [[1.75, -200], [1.75, -10]], width_m: 3.5, speed_limit_kph: 50TURN}
    - {id: nb_t, centerline: [[5.25, -200], [5.25, 200]], width_m: 3.5, speed_limit_kph: 50}
    - {id: sb_t, centerline: [[-1.75, 200], [-1.75, -200]], width_m: 3.5, speed_limit_kph: 50}
    - {id: eb_t, centerline: [[-200, -1.75], [200, -1.75]], width_m: 3.5, speed_limit_kph: 50}
    - {id: wb_t, centerline: [[200, 1.75], [-200, 1.75]], width_m: 3.5, speed_limit_kph: 50}
  intersections:
    - id: x1
      center: [0, 0]
      radius_m: 16
      signal:
        phases:
          - {id: 1, lanes: [PHASE1], green_s: 30, yellow_s: 3, all_red_s: 2}
          - {id: 2, lanes: [PHASE2], green_s: 25, yellow_s: 3, all_red_s: 2}
actors:
  - {id: rsu1, kind: rsu, position: [20, 20], range_m: 300}
"""


def _crossing(
    tmp_path: Path, turn: str = ", turn: left", phase1: str = "nb_l, nb_t, sb_t", phase2: str = "eb_t, wb_t"
) -> Scenario:
    path = tmp_path / "permissive.yaml"
    path.write_text(CROSSING.replace("TURN", turn).replace("PHASE1", phase1).replace("PHASE2", phase2))
    return load_scenario(path)


def _groups(sc: Scenario) -> dict[tuple[str, str], tuple[int, int, bool]]:
    return signal_groups(sc, sc.road.intersections[0])


def test_a_left_turn_facing_oncoming_green_is_permissive_and_the_through_lanes_protected(tmp_path: Path) -> None:
    sc = _crossing(tmp_path)
    # nb_l turns left across sb_t, which has green too: it gives way (a group of its own, id 3, permissive).
    assert _groups(sc) == {
        ("nb_l", "left"): (3, 1, True),
        ("nb_t", "straight"): (1, 1, False),
        ("sb_t", "straight"): (1, 1, False),
        ("eb_t", "straight"): (2, 2, False),
        ("wb_t", "straight"): (2, 2, False),
    }
    [left] = [m for m in movements(sc, sc.road.intersections[0]) if m.lane == "nb_l"]
    assert left.egress == "wb_t" and left.path[0] == pytest.approx((1.75, -math.sqrt(16**2 - 1.75**2)))
    # The signal heads (drivers, referee, live view) show it too.
    lights = {ap.lane: ctl.light(ap.phase_id, 1.0) for ap, ctl in signal_heads(sc)}
    assert lights == {"nb_l": PERMISSIVE_GREEN, "nb_t": GREEN, "sb_t": GREEN, "eb_t": RED, "wb_t": RED}


def test_spat_and_map_on_the_wire(tmp_path: Path) -> None:
    sc = _crossing(tmp_path)
    env = environment(sc)
    rsu = RoadsideUnit(next(a for a in sc.actors if a.id == "rsu1"), sc, env)
    frames = {
        tx.frame.WhichOneof("msg"): tx.frame for tx in rsu.step(TickContext(0, 0.0, 0.1, rtk_gnss(), ())).transmissions
    }
    [ix] = frames["spat"].spat.intersections
    first = {p.id: p.phase_states[0].light for p in ix.phases}
    assert first == {1: day1_pb2.LIGHT_PROTECTED_GREEN, 2: day1_pb2.LIGHT_RED, 3: day1_pb2.LIGHT_PERMISSIVE_GREEN}
    lanes = {link.name: link.lanes[0] for link in frames["map"].map.nodes[0].in_links}
    assert lanes["nb_l"].maneuvers == 2 and [c.phase_id for c in lanes["nb_l"].connects_to] == [3]  # left
    assert all(lanes[k].maneuvers == 1 for k in ("nb_t", "sb_t", "eb_t", "wb_t"))  # straight
    # Decoded, as an OBU reads it: the left-turn connection and its lights.
    back = {a.lane: a for a in decode_map(frames["map"].map, frame=env.frame)}
    assert back["nb_l"].connections == (Connection(2, 3),) and back["nb_l"].phase_id == 3
    [state] = decode_spat(frames["spat"].spat, now_s=0.0, epoch=env.epoch)
    assert state.phases[3][0].light == PERMISSIVE_GREEN and state.phases[1][0].light == GREEN


def test_a_protected_left_phase_stays_protected(tmp_path: Path) -> None:
    sc = _crossing(tmp_path, phase1="nb_l", phase2="nb_t, sb_t, eb_t, wb_t")
    groups = _groups(sc)
    assert groups[("nb_l", "left")] == (1, 1, False)
    # nb_t and sb_t (straight, parallel) against eb_t and wb_t (straight, crossing them): all of one rank,
    # all give way: the whole phase is permissive and keeps its id.
    assert {groups[(k, "straight")] for k in ("nb_t", "sb_t", "eb_t", "wb_t")} == {(2, 2, True)}


def test_a_right_turn_gives_way_to_the_opposite_left_turn_into_the_same_exit(tmp_path: Path) -> None:
    # sb_t turns right (west) while nb_l turns left (west): both end in wb_t. The right turn gives way
    # (art. 51 (7)); the left turn has nothing it must give way to.
    sc = _crossing(tmp_path, phase1="nb_l, sb_t", phase2="nb_t, eb_t, wb_t")
    path = tmp_path / "permissive.yaml"
    sb_t = "[[-1.75, 200], [-1.75, -200]], width_m: 3.5, speed_limit_kph: 50"
    path.write_text(path.read_text().replace(sb_t, sb_t + ", turn: right"))
    sc = load_scenario(path)
    groups = _groups(sc)
    assert groups[("nb_l", "left")] == (1, 1, False)
    assert groups[("sb_t", "right")] == (3, 1, True)


def test_a_lane_ending_in_the_box_without_a_turn_is_permissive_if_any_turn_would_give_way(tmp_path: Path) -> None:
    sc = _crossing(tmp_path, turn="")
    assert _groups(sc)[("nb_l", "straight")] == (3, 1, True)
    [ap] = [a for a in approaches(sc) if a.lane == "nb_l"]
    assert ap.maneuvers == 0 and ap.connections == (Connection(0, 3),)  # MAP does not know its movement
    [note] = scenario_notes(sc)
    assert "nb_l ends in intersection x1's box and gives no 'turn'" in note
    assert scenario_notes(_crossing(tmp_path)) == []
    alone = _crossing(tmp_path, turn="", phase1="nb_l", phase2="nb_t, sb_t")
    assert _groups(alone)[("nb_l", "straight")] == (1, 1, False)  # nothing else has green with it


def test_the_lta_scenario_map_says_which_lanes_turn_left() -> None:
    sc = load_scenario(SCENARIO_DIR / "lta.yaml")
    assert {a.lane: a.maneuvers for a in approaches(sc)} == {
        "nb_left": 2,
        "nb": 1,
        "sb_left": 2,
        "sb": 1,
        "eb": 1,
        "wb": 1,
    }


def test_a_connection_names_the_egress_lane_where_it_enters_the_next_intersection() -> None:
    sc = load_scenario(SCENARIO_DIR / "urban-grid.yaml")
    aps = approaches(sc)
    [eb_s] = [a for a in aps if a.intersection == "x_sw" and a.lane == "eb_s"]
    [(node, lane_no)] = [(c.node_id, c.lane_id) for c in eb_s.connections]
    [target] = [a for a in aps if a.node_id == node and a.lane == "eb_s"]
    assert target.intersection == "x_s"
    assert [a.lane for a in aps if a.node_id == node].index("eb_s") + 1 == lane_no
    env = environment(sc)
    frame = encode_map(
        [MapNode(1, "x_sw", -100.0, -100.0, [eb_s])], frame=env.frame, t_s=0.0, epoch=env.epoch, msg_count=0
    )
    conn = frame.map.nodes[0].in_links[0].lanes[0].connects_to[0]
    assert (conn.remote_intersection_id, conn.connecting_lane_id, conn.phase_id) == (node, lane_no, 1)


def test_lta_is_silent_under_protected_green_and_warns_under_permissive(tmp_path: Path) -> None:
    sc = _crossing(tmp_path)
    [ap] = [a for a in approaches(sc) if a.lane == "nb_l"]
    heads = dict((a.lane, ctl) for a, ctl in signal_heads(sc))
    ctl = heads["nb_l"]
    signals = {(ap.node_id, g): ctl.timeline(g, 0.0) for g in ctl.signal_groups}
    assert not protected_left(ap, signals, 5.0)  # permissive: LTA's gap test decides
    assert not protected_left(ap, {}, 5.0)  # no SPAT (unsignalised): likewise
    prot = _crossing(tmp_path, phase1="nb_l", phase2="nb_t, sb_t, eb_t, wb_t")
    [ap2] = [a for a in approaches(prot) if a.lane == "nb_l"]
    ctl2 = dict((a.lane, c) for a, c in signal_heads(prot))["nb_l"]
    signals2 = {(ap2.node_id, g): ctl2.timeline(g, 0.0) for g in ctl2.signal_groups}
    assert protected_left(ap2, signals2, 5.0)
    assert not protected_left(ap2, signals2, 31.0)  # yellow by then


def test_permissive_green_is_green_to_rlvw_glosa_and_the_driver(tmp_path: Path) -> None:
    assert PERMISSIVE_GREEN in GREEN_LIGHTS and PERMISSIVE_GREEN not in STOPPING_LIGHTS
    sc = _crossing(tmp_path)
    [ap] = [a for a in approaches(sc) if a.lane == "nb_l"]
    ctl = dict((a.lane, c) for a, c in signal_heads(sc))["nb_l"]
    signals = {(ap.node_id, g): ctl.timeline(g, 0.0) for g in ctl.signal_groups}
    host = Host(1.75, -40.0, math.pi / 2, 10.0, 0.0, 5.0, 0.02)
    assert red_light_warning(host, [ap], signals, 0.0, DEFAULTS) is None
    # A priority request for the permissive group is served by its phase.
    assert ctl.groups[3] == (1, True) and 3 in ctl.signal_groups


# Separate ingress and egress lanes (diff review 26, /tmp/dr26/split.yaml): the egress lanes start on the 12 m box's
# edge lines (12 m along the axis, 1.75 m off it: 12.13 m from the centre, just outside the circle). nb_out runs
# on into a second crossroads x2.
SPLIT = """
id: split
name: separate ingress and egress lanes
origin: {lat_deg: 30.5728, lon_deg: 104.0668, alt_m: 500.0}
duration_s: 5.0
road:
  lanes:
    - {id: nb_in, centerline: [[1.75, -200], [1.75, -11]], width_m: 3.5, turn: [straight, left]}
    - {id: nb_out, centerline: [[1.75, START], [1.75, 300]], width_m: 3.5}
    - {id: sb_in, centerline: [[-1.75, 100], [-1.75, 11]], width_m: 3.5, turn: [straight, left]}
    - {id: sb_out, centerline: [[-1.75, -START], [-1.75, -200]], width_m: 3.5}
    - {id: eb_out, centerline: [[START, -1.75], [200, -1.75]], width_m: 3.5}
    - {id: wb_out, centerline: [[-START, 1.75], [-200, 1.75]], width_m: 3.5}
  intersections:
    - id: x1
      center: [0, 0]
      radius_m: 12
      signal:
        phases:
          - {id: 1, lanes: [nb_in, sb_in], green_s: 20, yellow_s: 3, all_red_s: 2}
    - {id: x2, center: [0, 200], radius_m: 12}
actors:
  - {id: rsu1, kind: rsu, position: [15, 15]}
"""


@pytest.mark.parametrize("start", ["12", "13.6", "11"])  # (11: inside the box, found before too)
def test_an_egress_lane_drawn_from_the_box_edge_line_is_the_egress(tmp_path: Path, start: str) -> None:
    """Started on the edge line, 12.13 m from the centre (or further out by less than half the lane's width), the
    egress lanes never left the box: no movement had an egress, and MAP's connections named none."""
    path = tmp_path / "split.yaml"
    path.write_text(SPLIT.replace("START", start))
    sc = load_scenario(path)
    x1 = sc.road.intersections[0]
    assert [(m.lane, m.turn, m.egress) for m in movements(sc, x1)] == [
        ("nb_in", "straight", "nb_out"),
        ("nb_in", "left", "wb_out"),
        ("sb_in", "straight", "sb_out"),
        ("sb_in", "left", "eb_out"),
    ]
    [straight] = [m for m in movements(sc, x1) if m.lane == "nb_in" and m.turn == "straight"]
    assert straight.path[-1] == pytest.approx((1.75, max(float(start), math.sqrt(12**2 - 1.75**2))))  # nb_out's exit
    # MAP: nb_in's straight on is nb_out at x2 (node 2), its first ingress lane.
    [nb_in] = [a for a in approaches(sc) if a.lane == "nb_in" and a.intersection == "x1"]
    assert [(c.maneuver, c.node_id, c.lane_id) for c in nb_in.connections] == [(1, 2, 1), (2, 0, 0)]


def test_a_lane_starting_beyond_the_box_edge_or_towards_the_box_is_no_egress(tmp_path: Path) -> None:
    path = tmp_path / "split.yaml"
    path.write_text(SPLIT.replace("START", "14").replace("[[1.75, 14], [1.75, 300]]", "[[1.75, 300], [1.75, 13]]"))
    sc = load_scenario(path)
    # nb_out now ends 13.1 m from x1's centre, heading for it; eb_out and the others start 14.1 m out (> 12 + 1.75).
    assert [(m.lane, m.turn, m.egress) for m in movements(sc, sc.road.intersections[0])] == [
        ("nb_in", "straight", None),
        ("nb_in", "left", None),
        ("sb_in", "straight", None),
        ("sb_in", "left", None),
    ]
