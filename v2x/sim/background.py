"""Background traffic, sans-I/O: the scenario's ``flows`` as vehicles the world itself moves.

A flow enters at the start of a lane: random arrivals at its rate (shifted exponential headways, at least
``MIN_HEADWAY_S`` apart), each with a class (car, truck, bus by
the flow's mix), a desired speed (the flow's distribution) and an OBU or not (its penetration). All of it
is drawn when the run is built, from a generator of its own seeded with the run's seed only (not the
variant), so the baseline and the V2X run see the same traffic. With ``prefill`` (the default) the flow's
lane also starts filled at the flow's density (vehicles per hour over mean speed, never closer than the
IDM's equilibrium gap), leaving room around the scenario's own vehicles and none nearer a stop line red
at t = 0 than it can stop from comfortably (``_prefill``).

Each tick (``step``), after the story actors' truths are applied:

1. the scenario's own road users (story vehicles, cyclists, pedestrians) are projected onto the lanes: one
   on a lane (centre within half its width, heading within 60° of the lane's, or any heading when it
   stands: under 0.5 m/s) is a vehicle of the traffic model there, with its reported position and speed
   and its box's extent along the lane, put back each tick (its agent moves it, not the model):
   background vehicles behind it follow it (IDM), a stopped one (a wreck across the lane) stops them. One
   crossing the lane is not seen;
2. the traffic model (``v2x.core.traffic``: IDM, lanes joined where one ends and the next starts, stop
   lines of signalised approaches shown red by the same signal heads the referee watches; MOBIL lane
   changes between the lanes a scenario declares neighbours, ``road.lanes[i].left``/``right``) moves
   every background vehicle by one tick; a lane change is immediate in the model and takes
   ``LANE_CHANGE_DURATION_S`` sideways in the world (``_sideways``); a background vehicle at rest after a
   collision (a wreck, held by the referee) does not move and is an obstacle for the vehicles behind it;
3. vehicles that left the network are removed from the world; arrivals that are due enter at their lane's
   start when there is room: the first vehicle on the lane is at least s0 + 1 m ahead and the room lets
   the new one enter at the speed of that vehicle or its own desired speed, whichever is lower, with its
   IDM desired gap (``entry_speed``); it enters at the fastest such speed up to its desired one. The
   others wait, in order, at the entry (a point queue);
4. the background vehicles' poses are written to the world (the centre of the box on the lane's centre
   line), so that the referee, the channel and the roadside sensors see them;
5. the equipped ones are not the world's to speak for: in the V2X variant the fleet agent
   (``v2x.agents.fleet``) hosts them, gets their truth (``equipped``) and what they heard in one
   ``FleetInput`` per tick, and sends their BSMs and the warnings of their FCW back in one ``FleetAck``
   (``v2x.sim.simulation``); they are PC5 receivers. The fleet never moves them: this model does.

Background vehicles take the world slots after the scenario's actors (the lowest free one, so the same
run gives the same slots); their ids are ``bg-<flow>-<n>`` (flow index, arrival number within the flow).
The world is sized once (``capacity``: room for every lane the flows can reach, packed at standstill), so
no slot array ever grows during a run; an arrival that finds the world full waits at the entry.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from v2x.core import ActorKind, WorldState
from v2x.core.traffic import CLASS_PARAMS, LaneNetwork, Traffic, traffic_step
from v2x.scenario.geometry import route_for, smoothstep5
from v2x.scenario.model import (
    BACKGROUND_ID_PREFIX,
    BACKGROUND_PACKED_M,
    DEFAULT_SIZE,
    LANE_CHANGE_DURATION_S,
    ROAD_USER_KINDS,
    FlowClass,
    FlowSpec,
    Scenario,
)
from v2x.scenario.signals import FixedTimeController
from v2x.units import kph_to_mps
from v2x.wire.map_spat import STOPPING_LIGHTS, Approach

F64 = NDArray[np.float64]

CLASSES: tuple[FlowClass, ...] = ("car", "truck", "bus")  # the order in which a flow's mix is drawn
KIND = {"car": ActorKind.CAR, "truck": ActorKind.TRUCK, "bus": ActorKind.BUS, "emergency": ActorKind.EMERGENCY}
JOIN_M = 1.0  # a lane whose start is within this of another lane's end continues it (a junction)
ENTRY_ROOM_M = 1.0  # an arrival enters when the first vehicle on its lane is at least s0 + this ahead
ON_LANE_COS = 0.5  # a moving story road user is on a lane if its heading is within 60° of the lane's
STANDING_MPS = 0.5  # ... and a slower one in any direction
MIN_SPEED_KPH = 5.0  # the slowest desired speed a normal distribution is allowed to draw
PACKED_M = BACKGROUND_PACKED_M  # (v2x.scenario.model: the loader bounds the room it asks for)
# Headways at an entry: shifted exponential (Cowan's M3 without bunching): at least MIN_HEADWAY_S, the rest
# exponential, so that the mean is the flow's 3600 / rate (a flow's rate is at most 3600 veh/h).
MIN_HEADWAY_S = 1.0  # the world has room for one vehicle every PACKED_M m of every lane the flows reach


@dataclass
class Arrivals:
    """One flow's vehicles, in arrival order (prefilled ones first, at time 0 with a position)."""

    time_s: F64
    kind: list[str]
    v0_mps: F64
    equipped: NDArray[np.bool_]
    start_s: F64  # front bumper at entry (nan: the lane's start, when there is room)
    next: int = 0  # the next to enter


@dataclass
class BackgroundStats:
    """What background traffic did over a run (result.json ``metrics.background``)."""

    spawned: int = 0
    prefilled: int = 0
    left: int = 0
    max_present: int = 0
    equipped: int = 0
    bsm_sent: int = 0
    waiting_at_end: int = 0
    per_flow: list[int] = field(default_factory=list)
    slowed: int | None = None  # SUMO (v2x.sim.sumo): its vehicles a warning braked; None: no driver reacts
    lane_changes: int | None = None  # MOBIL lane changes begun (flows on lanes with neighbours); None: none possible

    def as_dict(self) -> dict[str, Any]:
        out = {
            "vehicles": self.spawned,
            "prefilled": self.prefilled,
            "left": self.left,
            "max_present": self.max_present,
            "equipped": self.equipped,
            "bsm_sent": self.bsm_sent,
            "waiting_at_end": self.waiting_at_end,
            "per_flow": list(self.per_flow),
        }
        if self.slowed is not None:
            out["slowed"] = self.slowed
        if self.lane_changes is not None:
            out["lane_changes"] = self.lane_changes
        return out


class BackgroundTraffic(Protocol):
    """What the simulation asks of a mover of background traffic: ``Background`` (the ``flows``, our IDM)
    or ``v2x.sim.sumo.SumoBackground`` (the ``sumo`` block). Their vehicles take the world's slots after
    the actors'."""

    stats: BackgroundStats

    @property
    def present(self) -> NDArray[np.intp]:
        """The world slots of the background vehicles on the road, ascending."""

    def step(self, tick: int, t: float, wrecks: set[int] | dict[int, Any]) -> None:
        """Move the background vehicles to ``t`` and write them to the world (wrecks: held by the referee)."""

    def take_new(self) -> list[str]:
        """The ids of the vehicles that entered since the last call."""

    def take_left(self) -> list[int]:
        """The slots of the vehicles that left since the last call."""

    def equipped(self) -> tuple[NDArray[np.int64], NDArray[np.intp], F64, F64]:
        """The equipped vehicles on the road, in slot order: (rows, slots, speeds, accelerations)."""

    def present_with_kinds(self) -> tuple[NDArray[np.intp], list[str]]:
        """The vehicles on the road (slots ascending) and their kinds."""

    def kind_name(self, slot: int) -> str: ...

    def warned(self, vehicle_id: str, t: float) -> None:
        """The fleet's FCW warned ``vehicle_id`` at ``t``."""

    def close(self) -> None:
        """The run is over."""


class LaneGeometry:
    """The scenario's lanes as the traffic model's network plus what it takes to go from (lane, s) to the
    plane and back."""

    def __init__(self, scenario: Scenario, heads: Sequence[tuple[Approach, FixedTimeController]]) -> None:
        lanes = scenario.road.lanes
        self.ids = [lane.id for lane in lanes]
        self.index = {lane_id: k for k, lane_id in enumerate(self.ids)}
        self.width = np.array([lane.width_m for lane in lanes])
        self.xy: list[F64] = []
        self.cum: list[F64] = []
        self.yaw: list[F64] = []
        for lane in lanes:
            xy = np.asarray(lane.centerline, dtype=np.float64)
            seg = np.diff(xy, axis=0)
            seg_len = np.hypot(seg[:, 0], seg[:, 1])
            keep = seg_len > 0
            starts = np.vstack([xy[:-1][keep], xy[-1:]])
            self.xy.append(starts)
            self.cum.append(np.concatenate([[0.0], np.cumsum(seg_len[keep])]))
            self.yaw.append(np.arctan2(seg[keep, 1], seg[keep, 0]))
        length = np.array([c[-1] for c in self.cum])
        limit = np.array([kph_to_mps(lane.speed_limit_kph) if lane.speed_limit_kph else math.inf for lane in lanes])
        successors = [
            [
                j
                for j in range(len(lanes))
                if j != i and math.dist(tuple(self.xy[i][-1]), tuple(self.xy[j][0])) <= JOIN_M
            ]
            for i in range(len(lanes))
        ]
        stop = np.full(len(lanes), np.nan)
        # Each lane's signal head (the first approach that has it): its stop line's distance along the lane.
        self.heads: list[tuple[int, int, FixedTimeController]] = []
        for ap, ctl in heads:
            k = self.index.get(ap.lane)
            if k is None or not np.isnan(stop[k]):
                continue
            stop[k] = min(max(self.locate(k, *ap.stop_point)[0], 0.0), float(length[k]))
            self.heads.append((k, ap.phase_id, ctl))
        # Parallel neighbours (road.lanes[i].left/right, checked by the loader): MOBIL lane changes between
        # them. The model's neighbours share s, so each group of side-by-side lanes takes its first lane's
        # length (the loader allows them to differ by up to 1 m).
        left = np.full(len(lanes), -1, dtype=np.int64)
        right = np.full(len(lanes), -1, dtype=np.int64)
        for lane_id, left_id in scenario.road.neighbour_pairs():
            k, j = self.index[lane_id], self.index[left_id]
            left[k], right[j] = j, k
        self.lane_changes = bool(np.any(left >= 0))
        group = list(range(len(lanes)))  # union-find of side-by-side lanes, rooted at the lowest index

        def root(k: int) -> int:
            while group[k] != k:
                k = group[k]
            return k

        for k in np.flatnonzero(left >= 0).tolist():
            a, b = sorted((root(k), root(int(left[k]))))
            group[b] = a
        for k in range(len(lanes)):
            length[k] = length[root(k)]
        stop = np.minimum(stop, length)  # nan stays nan
        self.network = LaneNetwork.build(length, limit, successors, left, right, stop_line_m=stop)

    def locate(self, lane: int, x: float, y: float) -> tuple[float, float, float]:
        """The point's (distance along, distance from the centre line, yaw of the segment) on ``lane``."""
        p, cum, yaw = self.xy[lane], self.cum[lane], self.yaw[lane]
        ux, uy = np.cos(yaw), np.sin(yaw)
        dx, dy = x - p[:-1, 0], y - p[:-1, 1]
        along = np.clip(dx * ux + dy * uy, 0.0, np.diff(cum))
        off = np.hypot(dx - along * ux, dy - along * uy)
        k = int(np.argmin(off))
        return float(cum[k] + along[k]), float(off[k]), float(yaw[k])

    def stopping(self, t: float, out: NDArray[np.bool_]) -> None:
        """Per lane, into ``out``: its stop line shows a stopping light at ``t`` (the model's red)."""
        for k, phase, ctl in self.heads:
            out[k] = ctl.light(phase, t) in STOPPING_LIGHTS

    def red_lines_ahead(self, lane: int, red: NDArray[np.bool_]) -> list[float]:
        """The red stop lines a vehicle on ``lane`` can face (``red``: per lane), as positions along
        ``lane``, farthest first: its own lane's and the nearest of its successors' (measured from the
        lane's start: the end of ``lane`` plus the line's distance along the successor). The model looks
        at the own line and that of the successor the vehicle takes, a choice made per vehicle row; the
        nearest successor line stands for it."""
        net = self.network
        out = []
        ahead = [float(net.length_m[lane] + net.stop_line_m[n]) for n in net.successors(lane) if red[n]]
        if ahead:
            out.append(min(ahead))
        if red[lane]:
            out.append(float(net.stop_line_m[lane]))
        return out

    def poses(self, lane: NDArray[np.int64], s: F64) -> tuple[F64, F64, F64]:
        """x, y and yaw of the points ``s`` along ``lane`` (beyond either end: straight on)."""
        x, y, h = np.empty(len(s)), np.empty(len(s)), np.empty(len(s))
        for k in np.unique(lane).tolist():
            m = lane == k
            cum = self.cum[k]
            seg = np.clip(np.searchsorted(cum, s[m], side="right") - 1, 0, len(cum) - 2)
            yaw = self.yaw[k][seg]
            frac = s[m] - cum[seg]
            x[m] = self.xy[k][seg, 0] + frac * np.cos(yaw)
            y[m] = self.xy[k][seg, 1] + frac * np.sin(yaw)
            h[m] = yaw
        return x, y, h

    def on_lane(
        self, x: float, y: float, heading: float, *, any_heading: bool = False
    ) -> tuple[int, float, float] | None:
        """The lane a road user centred at (x, y) heading ``heading`` is on (its centre within half the lane's
        width; its heading within 60° of the lane's unless ``any_heading``), its centre's distance along it
        and the lane's yaw there; None: off every lane, or across it."""
        best: tuple[float, int, float, float] | None = None
        for k in range(len(self.ids)):
            along, off, yaw = self.locate(k, x, y)
            aligned = any_heading or math.cos(heading - yaw) >= ON_LANE_COS
            if off <= self.width[k] / 2 and aligned and (best is None or off < best[0]):
                best = (off, k, along, yaw)
        return None if best is None else (best[1], best[2], best[3])

    def reach(self, entries: Sequence[int]) -> list[int]:
        """The lanes reachable from ``entries`` (them included), ascending."""
        seen = set(entries)
        todo = list(entries)
        while todo:
            for nxt in self.network.successors(todo.pop()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return sorted(seen)


def entry_speed(gap: float, v_leader: float, s0: float, t_gap: float, a: float, b: float) -> float:
    """The fastest entry speed v whose IDM desired gap ``s0 + v T + v (v - v_leader) / (2 sqrt(a b))`` fits
    in ``gap`` (bumper to bumper): the entering vehicle then needs no more than the IDM's own braking to
    follow (a vehicle entering behind a faster one can come in faster than ``(gap - s0) / T``)."""
    c = 1.0 / (2.0 * math.sqrt(a * b))
    lin = t_gap - c * v_leader
    return max(0.0, (-lin + math.sqrt(lin * lin + 4.0 * c * max(gap - s0, 0.0))) / (2.0 * c))


def background_capacity(scenario: Scenario) -> int:
    """How many background vehicles the world makes room for (0 without flows or ``sumo``): one every
    ``PACKED_M`` m of every lane the flows can reach, plus one per flow; with ``sumo``, one every ``PACKED_M``
    m of every lane of SUMO's network."""
    if scenario.sumo is not None:  # every lane of SUMO's network, packed
        from v2x.scenario.sumo import lane_lengths

        return int(sum(math.ceil(length / PACKED_M) for length in lane_lengths(scenario.sumo.net)))
    if not scenario.flows:
        return 0
    geo = LaneGeometry(scenario, ())
    lanes = geo.reach([geo.index[f.lane] for f in scenario.flows])
    return int(sum(math.ceil(float(geo.network.length_m[k]) / PACKED_M) for k in lanes)) + len(scenario.flows)


def _speeds_kph(flow: FlowSpec, rng: np.random.Generator, n: int) -> F64:
    d = flow.speed_kph
    if d.mean is not None and d.sd is not None:
        v = rng.normal(d.mean, d.sd, n) if n else np.zeros(0)
        return np.clip(v, max(MIN_SPEED_KPH, d.mean - 3 * d.sd), d.mean + 3 * d.sd)
    assert d.min is not None and d.max is not None
    return rng.uniform(d.min, d.max, n) if n else np.zeros(0)


def draw_arrivals(
    scenario: Scenario, rng: np.random.Generator, story: Sequence[tuple[int, float, float]], geo: LaneGeometry
) -> list[Arrivals]:
    """Every flow's vehicles for the whole run, drawn flow by flow (in file order): arrival times, then
    classes, desired speeds and OBUs; then the prefill's classes, speeds and OBUs. ``story``: the story
    vehicles' (lane, rear, front) at t = 0, which the prefill leaves room around."""
    out = []
    duration = float(scenario.duration_s)
    for flow in scenario.flows:
        lane = geo.index[flow.lane]
        mean_headway = 3600.0 / flow.vehicles_per_hour
        times: list[float] = []
        t = 0.0
        while True:
            hw = MIN_HEADWAY_S + rng.exponential(mean_headway - MIN_HEADWAY_S, 64)
            for h in hw.tolist():
                t += h
                if t > duration:
                    break
                times.append(t)
            if t > duration:
                break
        n = len(times)
        shares = np.array([flow.mix.get(c, 0.0) for c in CLASSES])
        kinds = [CLASSES[k] for k in rng.choice(len(CLASSES), size=n, p=shares / shares.sum()).tolist()] if n else []
        v0 = kph_to_mps(1.0) * _speeds_kph(flow, rng, n)
        equipped = rng.random(n) < flow.penetration
        start = np.full(n, np.nan)
        if flow.prefill:
            pre = _prefill(flow, lane, rng, story, geo)
            kinds = pre.kind + kinds
            v0 = np.concatenate([pre.v0_mps, v0])
            equipped = np.concatenate([pre.equipped, equipped])
            start = np.concatenate([pre.start_s, start])
            times = [0.0] * len(pre.kind) + times
        out.append(Arrivals(np.array(times, dtype=np.float64), kinds, v0, equipped, start))
    return out


def _prefill(
    flow: FlowSpec, lane: int, rng: np.random.Generator, story: Sequence[tuple[int, float, float]], geo: LaneGeometry
) -> Arrivals:
    """The flow's lane at t = 0: vehicles from its end back to its start at the flow's density (rate over
    mean desired speed, capped by the lane's limit), every one at least its IDM equilibrium gap behind the
    next, none within that gap of a story vehicle, and none closer to a stop line red at t = 0 than it can
    stop from at its comfortable deceleration (s0 + v² / 2b before the line; one placed nearer was moved
    back there). A prefilled vehicle enters at its desired speed with no past: placed a few metres before
    a red line at 10 m/s it could not stop and ran the red (the model's amber-dilemma rule: one too close
    to stop goes on) into the crossing stream (newcomer review 17)."""
    length = float(geo.network.length_m[lane])
    limit = float(geo.network.speed_limit_mps[lane])
    d = flow.speed_kph
    mean_kph = d.mean if d.mean is not None else (float(d.min or 0) + float(d.max or 0)) / 2
    v_mean = min(kph_to_mps(mean_kph), limit)
    n_max = math.ceil(length / 5.0) + 1
    shares = np.array([flow.mix.get(c, 0.0) for c in CLASSES])
    kinds = [CLASSES[k] for k in rng.choice(len(CLASSES), size=n_max, p=shares / shares.sum()).tolist()]
    v0 = kph_to_mps(1.0) * _speeds_kph(flow, rng, n_max)
    equipped = rng.random(n_max) < flow.penetration
    spacing = v_mean / (flow.vehicles_per_hour / 3600.0)
    keep: list[int] = []
    starts: list[float] = []
    around = sorted(((rear, fr) for k_, rear, fr in story if k_ == lane), reverse=True)
    red = np.zeros(geo.network.n_lanes, dtype=np.bool_)
    geo.stopping(0.0, red)
    lines = geo.red_lines_ahead(lane, red)
    prev_front, prev_rear = math.inf, length  # the vehicle ahead (none yet: the lane's end)
    for k in range(n_max):
        p = CLASS_PARAMS[KIND[kinds[k]]]
        v = min(float(v0[k]), limit)  # it enters at this speed (``Background._spawn``)
        gap = p.s0_m + v * p.t_gap_s
        stop = p.s0_m + v * v / (2.0 * p.b_mps2)  # to stop s0 before a line at the comfortable deceleration
        s = min(length - spacing / 2 if not keep else prev_front - spacing, prev_rear - gap)
        placed = math.nan
        while s != placed:  # each rule only moves it back, to one of finitely many places
            placed = s
            for line in lines:  # not where it could not stop for a red line it faces at t = 0
                if line - stop < s <= line:
                    s = line - stop
            for rear, fr in around:  # room around the story vehicles on this lane, the front-most first
                if s - p.length_m - gap < fr and rear - gap < s:
                    s = rear - gap
        if s - p.length_m < 0:
            break
        keep.append(k)
        starts.append(s)
        prev_front, prev_rear = s, s - p.length_m
    return Arrivals(
        np.zeros(len(keep)),
        [kinds[k] for k in keep],
        v0[keep] if keep else np.zeros(0),
        equipped[keep] if keep else np.zeros(0, dtype=np.bool_),
        np.array(starts, dtype=np.float64),
    )


class WorldVehicles:
    """What both movers of background traffic share: their vehicles in ``world``, the ones that entered
    (``new_ids``) and left (``left_slots``) since the simulation last asked; ``present`` is theirs."""

    world: WorldState
    new_ids: list[str]
    left_slots: list[int]

    @property
    def present(self) -> NDArray[np.intp]:
        raise NotImplementedError

    def present_with_kinds(self) -> tuple[NDArray[np.intp], list[str]]:
        """The background vehicles on the road (slots ascending) and their kind names."""
        slots = self.present
        return slots, [_kind_name(int(k)) for k in self.world.kind[slots].tolist()]

    def take_new(self) -> list[str]:
        out, self.new_ids = self.new_ids, []
        return out

    def take_left(self) -> list[int]:
        out, self.left_slots = self.left_slots, []
        return out

    def kind_name(self, slot: int) -> str:
        return _kind_name(int(self.world.kind[slot]))


class Background(WorldVehicles):
    """The background traffic of one run over ``world`` (whose capacity ``background_capacity`` sized).

    ``rng``: the flows' generator (seeded without the variant); ``heads``: the signal heads (the referee's,
    so that signal priority shows on them too)."""

    def __init__(
        self,
        scenario: Scenario,
        world: WorldState,
        *,
        rng: np.random.Generator,
        heads: Sequence[tuple[Approach, FixedTimeController]],
    ) -> None:
        self.world = world
        self.tick_s = float(scenario.tick_s)
        self.geo = LaneGeometry(scenario, heads)
        net = self.geo.network
        # Story road users: one traffic row each (rows 0..n_story-1), placed each tick from the world's truth.
        self.story_slots = sorted(world.slot_of(a.id) for a in scenario.actors if a.kind in ROAD_USER_KINDS)
        story0: list[tuple[int, float, float]] = []
        for a in scenario.actors:
            route = route_for(scenario, a) if a.kind in ROAD_USER_KINDS else None
            if route is None:
                continue
            pose = route.pose(a.start_m)
            on = self.geo.on_lane(pose.x, pose.y, pose.heading_rad, any_heading=a.speed_mps < STANDING_MPS)
            if on is not None:
                half = a.box_m[0] / 2
                story0.append((on[0], on[1] - half, on[1] + half))
        self.arrivals = draw_arrivals(scenario, rng, story0, self.geo)
        self.entry = [self.geo.index[f.lane] for f in scenario.flows]
        self.waiting: list[deque[int]] = [deque() for _ in scenario.flows]
        n_story = len(self.story_slots)
        rows = n_story + background_capacity(scenario)
        self.n_story = n_story
        self.traffic = Traffic.create(np.full(rows, -1), np.zeros(rows), np.zeros(rows), ActorKind.CAR)
        # (Their parameters do not matter: they are put back where their agents say each tick.)
        story_kinds = [KIND.get(scenario.actor(world.id_of(s)).kind, ActorKind.CAR) for s in self.story_slots]
        for r, kind in enumerate(story_kinds):
            self._set_params(r, kind)
        self.slot_of_row = np.full(rows, -1, dtype=np.int64)
        self.id_of_row: list[str] = [""] * rows
        self.equipped_row = np.zeros(rows, dtype=np.bool_)
        self.flow_of_slot = np.full(world.capacity, -1, dtype=np.int64)  # the flow of the vehicle in each slot
        self.acc = np.zeros(rows)  # each row's acceleration along its lane in the last step
        # Lane changes under way (lanes with neighbours only): when each began (nan: none) and the sideways
        # offset, left positive, of the lane it left from the centre of the lane it changes to.
        self.change_start = np.full(rows, np.nan)
        self.change_offset = np.zeros(rows)
        if self.geo.lane_changes:  # the story's road users change lanes by their own agents' rules only
            self.traffic.a_threshold_mps2[:n_story] = math.inf
        self.free_rows = list(range(rows - 1, n_story - 1, -1))  # a stack: the lowest free row on top
        self.stats = BackgroundStats(
            per_flow=[0] * len(scenario.flows), lane_changes=0 if self.geo.lane_changes else None
        )
        self.new_ids: list[str] = []  # spawned since the last ``take_new``
        self.left_slots: list[int] = []  # slots freed since the last ``take_left``
        self._started = False
        self._red = np.zeros(net.n_lanes, dtype=np.bool_)
        # Compile (or load from numba's cache) the traffic kernel now, not inside the first tick.
        traffic_step(net, Traffic.create(np.zeros(0), np.zeros(0), np.zeros(0)), None, self.tick_s, 0)

    def _set_params(self, row: int, kind: ActorKind, v0_mps: float | None = None) -> None:
        params = dataclasses.asdict(CLASS_PARAMS[kind])
        if v0_mps is not None:
            params["v0_mps"] = v0_mps
        self.traffic.set_params(row, **params)

    @property
    def present(self) -> NDArray[np.intp]:
        """The world slots of the background vehicles on the road, ascending."""
        slots = self.slot_of_row[self.n_story :]
        return np.sort(slots[slots >= 0]).astype(np.intp)

    # -- one tick -----------------------------------------------------------------------------------
    def step(self, tick: int, t: float, wrecks: set[int] | dict[int, Any]) -> None:
        """Move the background traffic to ``t`` (see the module's docstring)."""
        tr = self.traffic
        self._place_story()
        bg = np.flatnonzero(self.slot_of_row >= 0)
        held = np.array([r for r in bg.tolist() if int(self.slot_of_row[r]) in wrecks], dtype=np.int64)
        acc = np.zeros(len(tr))
        if self._started:
            tr.v_mps[held] = 0.0
            keep_lane, keep_s = tr.lane[held].copy(), tr.s_m[held].copy()
            self.geo.stopping(t, self._red)
            result = traffic_step(self.geo.network, tr, self._red, self.tick_s, tick)
            acc = result.acc_mps2
            tr.lane[held], tr.s_m[held], tr.v_mps[held] = keep_lane, keep_s, 0.0
            acc[held] = 0.0
            if self.geo.lane_changes:
                changed = result.lane_change != 0
                changed[held] = False
                changed[: self.n_story] = False
                self._begin_changes(np.flatnonzero(changed & (tr.lane >= 0) & (self.slot_of_row >= 0)), t)
            gone = bg[tr.lane[bg] < 0]
            for r in gone.tolist():
                self._remove(r)
        self._started = True
        self._spawn(t)
        self._write(acc, held, t)
        self.acc = acc

    def _begin_changes(self, rows: NDArray[np.int64], t: float) -> None:
        """MOBIL moved ``rows`` to a neighbour lane this tick: in the model at once (their followers there
        see them), in the world over ``LANE_CHANGE_DURATION_S`` from where they were (``_write``). Until it
        ends, a vehicle considers no further change."""
        tr, w = self.traffic, self.world
        if self.stats.lane_changes is not None:
            self.stats.lane_changes += len(rows)
        for r in rows.tolist():
            slot = int(self.slot_of_row[r])
            x, y = float(w.x[slot]), float(w.y[slot])  # where it was: the centre of the lane it left
            lane = np.array([tr.lane[r]], dtype=np.int64)
            along = self.geo.locate(int(tr.lane[r]), x, y)[0]
            px, py, yaw = (float(q[0]) for q in self.geo.poses(lane, np.array([along])))
            self.change_start[r] = t
            self.change_offset[r] = (x - px) * -math.sin(yaw) + (y - py) * math.cos(yaw)
            tr.a_threshold_mps2[r] = math.inf

    def _place_story(self) -> None:
        """Each story road user on a lane, as the traffic model's vehicle there: moving along the lane, or
        standing on it in any direction (a car at rest across the lane after a crash, a stopped cyclist),
        with its box's extent along the lane; elsewhere (crossing, off the road) it is not in the model."""
        w = self.world
        tr = self.traffic
        lane_length = self.geo.network.length_m
        for r, s in enumerate(self.story_slots):
            heading = float(w.heading_rad[s])
            speed = float(np.hypot(w.vx[s], w.vy[s]))
            on = self.geo.on_lane(float(w.x[s]), float(w.y[s]), heading, any_heading=speed < STANDING_MPS)
            if on is None:
                tr.lane[r] = -1
                continue
            lane, centre, yaw = on
            c, sn = abs(math.cos(heading - yaw)), abs(math.sin(heading - yaw))
            extent = float(w.length_m[s]) * c + float(w.width_m[s]) * sn
            tr.lane[r] = lane
            tr.length_m[r] = extent
            tr.s_m[r] = max(0.0, min(centre + extent / 2, float(lane_length[lane])))
            tr.v_mps[r] = max(0.0, speed * math.cos(heading - yaw))

    def _remove(self, row: int) -> None:
        slot = int(self.slot_of_row[row])
        self.world.remove(self.id_of_row[row])
        self.slot_of_row[row] = -1
        self.traffic.lane[row] = -1
        self.equipped_row[row] = False
        self.change_start[row] = math.nan
        self.free_rows.append(row)
        self.free_rows.sort(reverse=True)
        self.left_slots.append(slot)
        self.stats.left += 1

    def _first_on(self, lane: int) -> int:
        """The row of the rearmost vehicle on ``lane`` (-1: none)."""
        tr = self.traffic
        on = np.flatnonzero(tr.lane == lane)
        return -1 if len(on) == 0 else int(on[np.argmin(tr.s_m[on])])

    def _spawn(self, t: float) -> None:
        tr = self.traffic
        for f, arr in enumerate(self.arrivals):
            while arr.next < len(arr.time_s) and arr.time_s[arr.next] <= t + 1e-9:
                self.waiting[f].append(arr.next)
                arr.next += 1
            lane = self.entry[f]
            limit = float(self.geo.network.speed_limit_mps[lane])
            queue = self.waiting[f]
            while queue and self.free_rows:
                k = queue[0]
                kind = KIND[arr.kind[k]]
                p = CLASS_PARAMS[kind]
                v = min(float(arr.v0_mps[k]), limit)
                s = float(arr.start_s[k])
                if np.isnan(s):  # at the entry, if there is room
                    s = 0.0
                    first = self._first_on(lane)
                    if first >= 0:
                        room = float(tr.s_m[first] - tr.length_m[first])
                        v_first = float(tr.v_mps[first])
                        fits = entry_speed(room, v_first, p.s0_m, p.t_gap_s, p.a_mps2, p.b_mps2)
                        if room < p.s0_m + ENTRY_ROOM_M or fits < min(v, v_first):
                            break  # not yet: it could not enter at the traffic's speed
                        v = min(v, fits)
                queue.popleft()
                row = self.free_rows.pop()
                vid = f"{BACKGROUND_ID_PREFIX}{f}-{k}"  # (the loader keeps actor ids out of it)
                length, width, _ = DEFAULT_SIZE[arr.kind[k]]
                slot = self.world.add(vid, kind, length, width)
                self._set_params(row, kind, float(arr.v0_mps[k]))
                tr.lane[row], tr.s_m[row], tr.v_mps[row] = lane, s, v
                self.slot_of_row[row] = slot
                self.flow_of_slot[slot] = f
                self.id_of_row[row] = vid
                self.equipped_row[row] = bool(arr.equipped[k])
                self.new_ids.append(vid)
                st = self.stats
                st.spawned += 1
                st.prefilled += int(not np.isnan(arr.start_s[k]))
                st.equipped += int(arr.equipped[k])
                st.per_flow[f] += 1
        rows = np.flatnonzero(self.slot_of_row >= 0)
        self.stats.max_present = max(self.stats.max_present, len(rows))
        self.stats.waiting_at_end = sum(len(q) for q in self.waiting)

    def _write(self, acc: F64, held: NDArray[np.int64], t: float) -> None:
        tr = self.traffic
        rows = np.flatnonzero(self.slot_of_row >= 0)
        if len(held):
            rows = rows[~np.isin(rows, held)]  # wrecks: the referee holds them
        if len(rows) == 0:
            return
        centre = tr.s_m[rows] - tr.length_m[rows] / 2
        x, y, yaw = self.geo.poses(tr.lane[rows], centre)
        c, s = np.cos(yaw), np.sin(yaw)
        v, a = tr.v_mps[rows], acc[rows]
        vx, vy = v * c, v * s
        for k in np.flatnonzero(~np.isnan(self.change_start[rows])).tolist():
            self._sideways(int(rows[k]), k, t, x, y, vx, vy, yaw)
        self.world.set_state(self.slot_of_row[rows].astype(np.intp), x, y, vx, vy, a * c, a * s, yaw)

    def _sideways(self, row: int, k: int, t: float, x: F64, y: F64, vx: F64, vy: F64, yaw: F64) -> None:
        """Entry ``k`` of the poses moved sideways along a lane change under way (the quintic of
        ``geometry.smoothstep5`` from the lane it left to the centre of its own); the change ends after
        ``LANE_CHANGE_DURATION_S`` and the vehicle may consider the next one."""
        u = (t - float(self.change_start[row])) / LANE_CHANGE_DURATION_S
        f, df = smoothstep5(u)
        offset = float(self.change_offset[row]) * (1.0 - f)
        rate = -float(self.change_offset[row]) * df / LANE_CHANGE_DURATION_S
        h = float(yaw[k])
        nx, ny = -math.sin(h), math.cos(h)  # the lane's left normal
        x[k] += offset * nx
        y[k] += offset * ny
        vx[k] += rate * nx
        vy[k] += rate * ny
        v = float(self.traffic.v_mps[row])
        yaw[k] = h + (math.atan2(rate, v) if v > 0.1 else 0.0)
        if u >= 1.0:
            self.change_start[row] = math.nan
            kind = ActorKind(int(self.world.kind[int(self.slot_of_row[row])]))
            self.traffic.a_threshold_mps2[row] = CLASS_PARAMS[kind].a_threshold_mps2

    def equipped(self) -> tuple[NDArray[np.int64], NDArray[np.intp], F64, F64]:
        """The equipped background vehicles on the road, in slot order: their rows, slots, speeds along the
        lane and accelerations along it (as of the last ``step``)."""
        rows = np.flatnonzero(self.equipped_row & (self.slot_of_row >= 0))
        rows = rows[np.argsort(self.slot_of_row[rows], kind="stable")]
        return rows, self.slot_of_row[rows].astype(np.intp), self.traffic.v_mps[rows].copy(), self.acc[rows].copy()

    def warned(self, vehicle_id: str, t: float) -> None:
        """No driver of the traffic model reacts to a warning (the fleet only reports them)."""

    def close(self) -> None:
        """Nothing to release."""


_KIND_NAME = {int(v): k for k, v in KIND.items()}


def _kind_name(kind: int) -> str:
    return _KIND_NAME[kind]
