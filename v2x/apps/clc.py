"""Cooperative lane change (T/CSAE 157 Day-2: VIR request -> RSC drive suggestion). Sans-I/O.

Two apps, one on each side of the coordination:

- **clc** (on board). While its driver plans a lane change (a scripted ``lane_change``: OnBoardView.manoeuvre)
  that starts within ``clc_announce_s``, the vehicle announces it in a VIR every ``VIR_PERIOD_S``: a
  lane-change request (its number, the target lane, standing until the move ends) and its planned path,
  two points: where and when the sideways move starts, and where and when it ends on the target lane, at
  its present speed. A drive suggestion addressed to the vehicle in an RSC (OnBoardView.suggestions) is
  followed for its life time: the app raises it every tick (``other``: the coordinator's id; figure: the
  recommended speed; ``conflict_type``: the suggested behaviours), and the driver keeps to that speed
  (Reaction.SPEED_ADVICE).
- **clc_coord** (on the edge platform, the coordinator). It takes each new lane-change request whose
  merge (the last point of the VIR's path) is at most ``clc_coord_horizon_s`` ahead, and looks at the road users
  it knows from their BSMs: one that moves the merging vehicle's way and, at its present velocity, will be
  in the target lane (within ``clc_coord_lane_half_width_m`` of the merge point, square to the lane) at the merge
  time is checked against the critical gap ``clc_coord_critical_gap_s``, bumper to bumper. One behind the merge
  point that would be closer than the gap is asked to slow down to the speed that drops it back to the gap
  by ``clc_coord_response_s`` before the merge (its driver needs that long to get to the speed); one ahead that
  would be closer makes the merging vehicle's own recommended speed lower the same way. The merging vehicle
  gets its answer (its lane change, its time window, the speed to keep) whatever the traffic. The plan is
  made once per request and sent in an RSC every ``RSC_PERIOD_S`` until ``clc_coord_hold_s`` after the merge;
  every suggestion stands until then. A road user far enough behind or ahead gets nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from v2x.apps.host import Participant
from v2x.apps.registry import (
    AppSpec,
    EdgeView,
    Figure,
    Intends,
    Manoeuvre,
    OnBoardView,
    Raised,
    Reaction,
    RunsOn,
    Suggested,
)
from v2x.units import compass_deg_to_enu_yaw_rad, enu_yaw_rad_to_compass_deg
from v2x.wire import testbed_pb2
from v2x.wire.day2 import REQ_ID_MAX, Coordination, Intention, PlannedPoint, VehicleRequest

VIR_PERIOD_S = 1.0  # ours: a standing request is repeated every second, so that one lost VIR costs 1 s
RSC_PERIOD_S = 1.0  # ours: the coordinator repeats its answer every second while it stands
SAME_WAY_DEG = 45.0  # a road user moving within this of the merge direction is traffic of the target lane
MOVING_MPS = 0.5
MIN_PLAN_S = 1.0  # the least time a suggestion is given to take effect (ours)
LANE_CHANGE_BEHAVIORS = frozenset({"lane_change_left", "lane_change_right", "ramp_in"})


# ------------------------------------------------------------------------------------------------------
# On board: announce the lane change, follow the coordinator's suggestion
# ------------------------------------------------------------------------------------------------------


class CooperativeLaneChange:
    """The vehicle side: VIR while a lane change is planned; the driver follows RSC suggestions."""

    def __init__(self) -> None:
        self._announced: tuple[str, float] | None = None  # (lane, move start) of the request being sent
        self._req_id = 0
        self._next_vir_s = -math.inf

    def evaluate(self, view: OnBoardView, t_s: float) -> list[Raised | Intends]:
        out: list[Raised | Intends] = []
        m = view.manoeuvre
        if (
            m is not None
            and view.route_ahead is not None
            and m.start_s - t_s <= view.thresholds["clc_announce_s"] + 1e-9
            and t_s < m.end_s
        ):
            if self._announced != (m.lane, m.start_s):
                self._announced = (m.lane, m.start_s)
                self._req_id = self._req_id % REQ_ID_MAX + 1
                self._next_vir_s = t_s
            if t_s + 1e-9 >= self._next_vir_s:
                self._next_vir_s = t_s + VIR_PERIOD_S
                out.append(self._intends(view, m, t_s))
        for sug in view.suggestions:
            c = sug.coordination
            if c.speed_mps is None or c.life_time_s is None or t_s > sug.t_s + c.life_time_s + 1e-9:
                continue
            out.append(Raised("clc", sug.sender, figure=c.speed_mps, conflict_type=",".join(sorted(c.behaviors))))
        return out

    def _intends(self, view: OnBoardView, m: Manoeuvre, t_s: float) -> Intends:
        assert view.route_ahead is not None
        v = view.host.speed_mps
        to_start, to_end = max(m.start_s - t_s, 0.0), max(m.end_s - t_s, 0.0)
        x0, y0, h0 = view.route_ahead(v * to_start)
        x1, y1, h1 = view.route_ahead(v * to_end)
        x1, y1 = x1 - m.offset_m * math.sin(h1), y1 + m.offset_m * math.cos(h1)
        path = (
            PlannedPoint(x0, y0, max(to_start, 0.01), v, enu_yaw_rad_to_compass_deg(h0)),
            PlannedPoint(x1, y1, max(to_end, 0.01), v, enu_yaw_rad_to_compass_deg(h1)),
        )
        side = "lane_change_left" if m.offset_m > 0 else "lane_change_right"
        request = VehicleRequest(
            req_id=self._req_id,
            type="lane_change",
            target_lane=m.lane_number,
            life_time_s=max(to_end, 0.01),
        )
        return Intends(frozenset({side}), path, (request,))


# ------------------------------------------------------------------------------------------------------
# On the edge: the coordinator
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Advice:
    """One vehicle's part of a plan, in absolute times."""

    target: str  # its key (temporary id, hex)
    behaviors: frozenset[str]
    speed_mps: float
    window_s: tuple[float, float] | None = None
    target_lane: int = 0


@dataclass
class Plan:
    """The coordinator's answer to one lane-change request."""

    merge_s: float  # when the merging vehicle is on the target lane
    until_s: float  # the suggestions stand until then
    req_id: int
    advice: tuple[Advice, ...]
    next_send_s: float = field(default=-math.inf)


def plan_merge(
    requester: str,
    intention: Intention,
    request: VehicleRequest,
    others: Sequence[Participant],
    t_s: float,
    thresholds: Mapping[str, float],
) -> Plan | None:
    """The plan for ``requester``'s lane-change ``request`` (see the module docstring), or None when its
    merge is not within the horizon (or its path says nothing about it)."""
    path = intention.path
    if not path:
        return None
    end = path[-1]
    if end.after_s is None:
        return None
    merge_s = intention.t_s + end.after_s
    lead = merge_s - t_s
    if lead <= 0 or lead > thresholds["clc_coord_horizon_s"] + 1e-9:
        return None
    me = next((p for p in others if p.key == requester), None)
    v_a = end.speed_mps if end.speed_mps is not None else (math.hypot(me.vx, me.vy) if me else 0.0)
    if end.heading_deg is not None:
        yaw = compass_deg_to_enu_yaw_rad(end.heading_deg)
    elif me is not None:
        yaw = me.heading_rad
    else:
        return None
    ux, uy = math.cos(yaw), math.sin(yaw)
    length_a = me.length_m if me is not None else 5.0
    gap_s = thresholds["clc_coord_critical_gap_s"]
    settle = max(lead - thresholds["clc_coord_response_s"], MIN_PLAN_S)
    speed_a = v_a
    advice: list[Advice] = []
    for p in sorted(others, key=lambda q: q.key):
        speed = math.hypot(p.vx, p.vy)
        if p.key == requester or speed < MOVING_MPS:
            continue
        if (p.vx * ux + p.vy * uy) < speed * math.cos(math.radians(SAME_WAY_DEG)):
            continue
        px, py = p.x + p.vx * lead - end.x, p.y + p.vy * lead - end.y
        if abs(-px * uy + py * ux) > thresholds["clc_coord_lane_half_width_m"]:
            continue
        along = px * ux + py * uy  # > 0: ahead of the merging vehicle at the merge
        half = (p.length_m + length_a) / 2
        if along <= 0:
            short = gap_s * speed + half + along  # how far it must drop back
            if short > 0:
                advice.append(Advice(p.key, frozenset({"slow_down"}), max(0.0, speed - short / settle)))
        else:
            short = gap_s * v_a + half - along
            if short > 0:
                speed_a = min(speed_a, max(0.0, v_a - short / settle))
    start = path[0].after_s if len(path) > 1 and path[0].after_s is not None else 0.0
    behaviors = (intention.behaviors & LANE_CHANGE_BEHAVIORS) or frozenset({"lane_change_left"})
    if speed_a < v_a - 1e-6:
        behaviors = behaviors | {"slow_down"}
    own = Advice(requester, behaviors, speed_a, (intention.t_s + start, merge_s), request.target_lane)
    until = merge_s + thresholds["clc_coord_hold_s"]
    return Plan(merge_s, until, request.req_id, (own, *advice))


class LaneChangeCoordinator:
    """The edge side: one plan per lane-change request, sent as RSC suggestions while it stands."""

    def __init__(self) -> None:
        self._plans: dict[tuple[str, int], Plan] = {}

    def evaluate(self, view: EdgeView, t_s: float) -> list[Suggested]:
        for key, intention in sorted(view.intentions.items()):
            for req in intention.requests:
                if req.type != "lane_change" or req.status != "request" or (key, req.req_id) in self._plans:
                    continue
                plan = plan_merge(key, intention, req, view.participants, t_s, view.thresholds)
                if plan is not None:
                    self._plans[(key, req.req_id)] = plan
        self._plans = {k: p for k, p in self._plans.items() if t_s <= p.until_s + 1e-9}
        out: list[Suggested] = []
        for _, plan in sorted(self._plans.items()):
            if t_s + 1e-9 < plan.next_send_s:
                continue
            plan.next_send_s = t_s + RSC_PERIOD_S
            life = max(plan.until_s - t_s, 0.01)
            for a in plan.advice:
                window = (None, None) if a.window_s is None else (max(a.window_s[0] - t_s, 0.01), a.window_s[1] - t_s)
                out.append(
                    Suggested(
                        a.target,
                        Coordination(
                            vehicle_id=bytes.fromhex(a.target),
                            behaviors=a.behaviors,
                            life_time_s=life,
                            window_s=window,
                            speed_mps=a.speed_mps,
                            target_lane=a.target_lane,
                            req_id=plan.req_id,
                        ),
                    )
                )
        return out


APPS = (
    AppSpec(
        name="clc",
        code=testbed_pb2.APP_CLC,
        title="cooperative lane change (vehicle: VIR request, RSC suggestion)",
        runs_on=RunsOn.VEHICLE,
        consumes=("rsc",),
        colour="#5d3a9b",
        reaction=Reaction.SPEED_ADVICE,
        severity=testbed_pb2.SEVERITY_ADVISORY,
        figure=Figure("suggested_speed_mps", "suggested", "m/s"),
        # Announce: ours, about the coordination horizon (clc_coord_horizon_s): the request is there when the
        # coordinator starts to look.
        thresholds={"clc_announce_s": 10.0},
        onboard=lambda names: CooperativeLaneChange(),
    ),
    AppSpec(
        name="clc_coord",
        code=testbed_pb2.APP_CLC_COORD,
        title="cooperative lane change coordinator (edge: RSC from VIR and BSM)",
        runs_on=RunsOn.EDGE,
        consumes=("vir", "bsm"),
        colour="#4a6fa5",
        severity=testbed_pb2.SEVERITY_ADVISORY,
        # Critical gap: a safe gap of 2 s time headway for a lane change (open-v2x cerebrum, as in
        # ../shared/brief/SCENARIOS.md; the "two-second rule"); horizon: ours, about three lane changes of 3 s
        # (cerebrum) ahead; response: ours, the driver model's 2 s speed-tracking time constant
        # (v2x/apps/driver.py); lane half width: half a 3.5 m lane (JTG B01 expressway lane); hold: ours.
        thresholds={
            "clc_coord_critical_gap_s": 2.0,
            "clc_coord_horizon_s": 10.0,
            "clc_coord_response_s": 2.0,
            "clc_coord_lane_half_width_m": 1.75,
            "clc_coord_hold_s": 1.0,
        },
        edge=LaneChangeCoordinator,
    ),
)

__all__ = ["APPS", "Advice", "CooperativeLaneChange", "LaneChangeCoordinator", "Plan", "plan_merge"]
