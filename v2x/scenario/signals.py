"""Signalised intersections of a scenario, sans-I/O: fixed-time signal controllers and the approach geometry
(ingress lane, stop line) that MAP describes.

Used by the roadside unit (MAP + SPAT), by the referee (who crossed a stop line on red) and by drivers' eyes.
On-board applications never read this module: they rebuild the same geometry and timing from MAP and SPAT
received over the air (``v2x.wire.map_spat.decode_map`` / ``decode_spat``).

A fixed-time plan serves its phases in order, each for green, then yellow, then an all-red clearance; a
phase is red whenever another phase is served. The cycle starts (phase 1 green) at ``-offset_s``.

Signal priority (T/CSAE 157 VIR signalPriority; docs/SCENARIOS.md "Signal priority"): a controller accepts a
request for a phase with an arrival time and may change its plan, deterministically, by
:class:`SignalWarp` (on the plan's own clock, plan time): *hold* the clock for some seconds inside the
requested phase's green (the green lasts longer: a green extension) or *skip* it ahead inside a conflicting
green (that green ends early; its yellow and all-red are kept: a red truncation, which gives the requested
phase an early green). Each change is paired with its compensation, so that the cycle and the coordination
are kept: an extension takes its seconds from the next conflicting green, an early green gives them back
to the requested phase's green (which ends when the plan says). Without warps the controller is the
fixed-time plan, exactly."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from v2x.scenario.model import ActorSpec, IntersectionSpec, LaneSpec, Scenario, SignalSpec
from v2x.units import kph_to_mps, wrap_angle_rad
from v2x.wire import testbed_pb2
from v2x.wire.map_spat import (
    GREEN,
    GREEN_LIGHTS,
    MANEUVER_BITS,
    PERMISSIVE_GREEN,
    RED,
    YELLOW,
    Approach,
    Connection,
    Interval,
    light_at,
)

MAX_HOLD_S = 120.0  # the longest hold a warp may carry (a sanity bound on what the world accepts)


@dataclass(frozen=True)
class SignalWarp:
    """One change to an intersection's plan, on the plan clock (plan time, s: the fixed-time plan's own
    time, which equals simulation time until the first warp): when the plan clock reaches ``at_s`` it stops
    for ``hold_s`` seconds (a hold), or jumps ahead to ``skip_to_s`` (a skip). A hold lies inside a green of
    the requested phase, a skip inside a conflicting green after its minimum green."""

    intersection: str
    at_s: float
    hold_s: float = 0.0
    skip_to_s: float | None = None


@dataclass(frozen=True)
class PriorityLimits:
    """The safety limits of signal priority (the svp thresholds, v2x.apps.svp)."""

    max_extension_s: float  # longest green extension
    max_early_green_s: float  # most a conflicting green is cut short by
    min_green_s: float  # a truncated conflicting green shows at least this much green
    clear_s: float  # the requested green must last this long after the arrival time
    green_lead_s: float  # an early green starts this long before the arrival time


@dataclass(frozen=True)
class PriorityDecision:
    """What a controller did with a request: ``action`` "extension", "early_green", "none" (the arrival is
    on green already) or "refused" (beyond the limits, or the plan cannot change in time); the warps it
    applied; and the requested phase's green around the arrival time after the change (None if refused)."""

    action: str
    warps: tuple[SignalWarp, ...]
    green: Interval | None
    seconds: float = 0.0  # how much the plan was changed by


class FixedTimeController:
    """A pre-timed signal plan (one ring, phases in sequence) that accepts signal priority warps."""

    def __init__(
        self, plan: SignalSpec, intersection: str = "", groups: Mapping[int, tuple[int, bool]] | None = None
    ) -> None:
        self.plan = plan
        self.intersection = intersection
        # Signal groups (the phase ids of MAP and SPAT): id -> (the plan's phase, permissive); by default one
        # per phase, protected (``signal_groups`` splits off the permissive movements of a phase).
        self.groups: dict[int, tuple[int, bool]] = {p.id: (p.id, False) for p in plan.phases}
        self.groups.update(groups or {})
        self.cycle_s = plan.cycle_s
        self._green_start: dict[int, float] = {}
        start = 0.0
        for phase in plan.phases:
            self._green_start[phase.id] = start
            start += phase.green_s + phase.yellow_s + phase.all_red_s
        self._phase = {p.id: p for p in plan.phases}
        self.warps: list[SignalWarp] = []
        # Real-time pieces of the plan clock: (t_from, t_to, held plan time or None if running, shift); while
        # running, plan time = t - shift.
        self._pieces: list[tuple[float, float, float | None, float]] = []

    @property
    def phase_ids(self) -> list[int]:
        return [p.id for p in self.plan.phases]

    @property
    def signal_groups(self) -> list[int]:
        """The ids SPAT carries: the phases' and their permissive groups', in order."""
        return sorted(self.groups)

    # -- warps --------------------------------------------------------------------------------------
    def apply(self, warp: SignalWarp) -> bool:
        """Add a warp to the plan (False if it is there already: applying is idempotent). ValueError for a warp
        that is not finite, holds too long, skips backwards or more than a cycle, or falls where an earlier
        warp skipped."""
        if warp in self.warps:
            return False
        if not math.isfinite(warp.at_s) or not 0 <= warp.hold_s <= MAX_HOLD_S:
            raise ValueError(f"signal warp at {warp.at_s} holding {warp.hold_s} s: not a valid hold")
        if warp.skip_to_s is not None and not (
            math.isfinite(warp.skip_to_s) and warp.at_s < warp.skip_to_s <= warp.at_s + self.cycle_s
        ):
            raise ValueError(f"signal warp skipping from {warp.at_s} to {warp.skip_to_s}: not a valid skip")
        warps = sorted([*self.warps, warp], key=lambda w: (w.at_s, w.skip_to_s is not None))
        for a, b in itertools.pairwise(warps):
            if a.skip_to_s is not None and b.at_s < a.skip_to_s:
                raise ValueError(f"signal warp at {b.at_s} falls in the skip from {a.at_s} to {a.skip_to_s}")
        self.warps = warps
        pieces: list[tuple[float, float, float | None, float]] = []
        shift, t0 = 0.0, -math.inf
        for w in warps:
            t_w = w.at_s + shift
            pieces.append((t0, t_w, None, shift))
            if w.skip_to_s is None:
                pieces.append((t_w, t_w + w.hold_s, w.at_s, shift))
                shift += w.hold_s
                t0 = t_w + w.hold_s
            else:
                shift -= w.skip_to_s - w.at_s
                t0 = t_w
        pieces.append((t0, math.inf, None, shift))
        self._pieces = [p for p in pieces if p[1] > p[0]]
        return True

    def plan_time(self, t_s: float) -> float:
        """The plan clock at simulation time ``t_s``."""
        for t0, t1, held, shift in self._pieces:
            if t0 <= t_s < t1:
                return held if held is not None else t_s - shift
        return t_s

    # -- lights -------------------------------------------------------------------------------------
    def timeline(self, phase_id: int, t_s: float, horizon_s: float | None = None) -> list[Interval]:
        """The lights of a phase or signal group (``groups``) from the interval that contains ``t_s`` onwards,
        covering at least ``horizon_s`` (default: one cycle). Red intervals are merged across cycle
        boundaries. A permissive group shows its phase's green as permissive green."""
        base, permissive = self.groups.get(phase_id, (phase_id, False))
        out = self._timeline(base, t_s, horizon_s)
        if not permissive:
            return out
        return [Interval(PERMISSIVE_GREEN, iv.start_s, iv.end_s) if iv.light == GREEN else iv for iv in out]

    def _timeline(self, phase_id: int, t_s: float, horizon_s: float | None = None) -> list[Interval]:
        if not self.warps:
            return self._fixed(phase_id, t_s, horizon_s)
        horizon = self.cycle_s if horizon_s is None else horizon_s
        lo, hi = t_s - 2 * self.cycle_s - MAX_HOLD_S, t_s + horizon + 2 * self.cycle_s
        out: list[Interval] = []
        for t0, t1, held, shift in self._pieces:
            a, b = max(t0, lo), min(t1, hi)
            if b <= a:
                continue
            if held is not None:
                pieces = [Interval(self._fixed_light(phase_id, held), a, b)]
            else:
                pieces = [
                    Interval(iv.light, max(iv.start_s + shift, a), min(iv.end_s + shift, b))
                    for iv in self._fixed(phase_id, a - shift, b - a)
                    if iv.start_s + shift < b
                ]
            for iv in pieces:
                if iv.end_s - iv.start_s <= 1e-9:
                    continue
                if out and out[-1].light == iv.light and abs(out[-1].end_s - iv.start_s) < 1e-9:
                    out[-1] = Interval(iv.light, out[-1].start_s, iv.end_s)
                else:
                    out.append(iv)
        first = next(k for k, iv in enumerate(out) if iv.end_s > t_s + 1e-9)
        last = next(k for k, iv in enumerate(out) if k >= first + 2 and iv.end_s >= t_s + horizon)
        return out[first : last + 1]

    def _fixed_light(self, phase_id: int, tau: float) -> int:
        found = light_at(self._fixed(phase_id, tau), tau)
        assert found is not None
        return found

    def _fixed(self, phase_id: int, t_s: float, horizon_s: float | None = None) -> list[Interval]:
        """The fixed-time plan's timeline (``timeline`` without warps; on the plan clock)."""
        horizon = self.cycle_s if horizon_s is None else horizon_s
        phase = self._phase[phase_id]
        c = self.cycle_s
        g0 = self._green_start[phase_id]
        # Cycle k starts at k*c - offset; this phase is green from there + g0.
        k = math.floor((t_s + self.plan.offset_s - g0) / c) - 1
        out: list[Interval] = []
        while True:
            g = k * c - self.plan.offset_s + g0
            pieces = [
                Interval(GREEN, g, g + phase.green_s),
                Interval(YELLOW, g + phase.green_s, g + phase.green_s + phase.yellow_s),
                Interval(RED, g + phase.green_s + phase.yellow_s, g + c),
            ]
            for iv in pieces:
                if iv.end_s - iv.start_s <= 0 or iv.end_s <= t_s + 1e-9:
                    continue
                if out and out[-1].light == iv.light and abs(out[-1].end_s - iv.start_s) < 1e-9:
                    out[-1] = Interval(iv.light, out[-1].start_s, iv.end_s)
                else:
                    out.append(iv)
            if out and out[-1].end_s >= t_s + horizon and len(out) >= 3:
                return out
            k += 1

    def light(self, phase_id: int, t_s: float) -> int:
        found = light_at(self.timeline(phase_id, t_s), t_s)
        assert found is not None
        return found

    # -- priority -----------------------------------------------------------------------------------
    def _preceding(self, phase_id: int) -> int:
        ids = self.phase_ids
        return ids[(ids.index(phase_id) - 1) % len(ids)]

    def _following(self, phase_id: int) -> int:
        ids = self.phase_ids
        return ids[(ids.index(phase_id) + 1) % len(ids)]

    def _plan_green(self, phase_id: int, tau: float, *, after: bool) -> Interval:
        """The phase's green on the plan clock that contains ``tau`` (``after``: the first starting at or
        after ``tau``)."""
        for iv in self._fixed(phase_id, tau, 2 * self.cycle_s):
            if iv.light == GREEN and (iv.start_s >= tau - 1e-9 if after else iv.end_s > tau):
                return iv
        raise AssertionError("a fixed-time plan shows every phase green once a cycle")

    def request(
        self, phase_id: int, arrival_s: float, now_s: float, not_before_s: float, limits: PriorityLimits
    ) -> PriorityDecision:
        """Serve a priority request for ``phase_id`` by a vehicle expected at its stop line at ``arrival_s``
        (decided at ``now_s``; no change may take effect before ``not_before_s``). Deterministic:

        1. If the phase is green from ``arrival_s`` to ``arrival_s + clear_s``: nothing to do ("none").
        2. **Green extension**, if a green of the phase ends after ``not_before_s`` but before
           ``arrival_s + clear_s``, by at most ``max_extension_s``: hold the plan clock inside that green for
           the missing seconds E; compensation: skip up to E at the end of the next phase's green, keeping its
           ``min_green_s``.
        3. **Early green**, if the phase is red at the arrival: skip the end of the preceding phase's green
           (from no earlier than its start + ``min_green_s`` and ``not_before_s``), by up to
           ``max_early_green_s``, so that the phase turns green ``green_lead_s`` before the arrival (or as
           early as the limits allow); its yellow and all-red are kept. Compensation: hold the plan clock at
           the start of the phase's green for the same time, so that it ends when the plan says.
        4. Otherwise "refused": the plan is unchanged.
        """
        phase_id = self.groups.get(phase_id, (phase_id, False))[0]
        need_end = arrival_s + limits.clear_s
        tl = self.timeline(phase_id, now_s, max(need_end - now_s, 0.0) + self.cycle_s)
        here = next((iv for iv in tl if iv.start_s - 1e-9 <= arrival_s < iv.end_s - 1e-9), None)
        if here is not None and here.light in GREEN_LIGHTS and here.end_s >= need_end - 1e-9:
            return PriorityDecision("none", (), here)
        tau_min = self.plan_time(not_before_s)
        # 2. the green that ends too early: the one holding the arrival, or the last one before it
        before = [iv for iv in tl if iv.light in GREEN_LIGHTS and iv.start_s <= arrival_s + 1e-9]
        ending = before[-1] if before else None
        if ending is not None and ending.end_s > not_before_s + 1e-9:
            extension = need_end - ending.end_s
            if 0 < extension <= limits.max_extension_s + 1e-9:
                hold_at = max(tau_min, self.plan_time(ending.start_s))
                green = self._plan_green(phase_id, hold_at, after=False)
                warps = [SignalWarp(self.intersection, hold_at, hold_s=extension)]
                nxt = self._plan_green(self._following(phase_id), green.end_s, after=True)
                cut = min(extension, nxt.end_s - nxt.start_s - limits.min_green_s)
                if cut > 1e-9 and self._following(phase_id) != phase_id:
                    warps.append(SignalWarp(self.intersection, nxt.end_s - cut, skip_to_s=nxt.end_s))
                return self._decided("extension", warps, phase_id, arrival_s, now_s, extension)
        # 3. early green: the next green of the phase starts after the arrival
        later = next((iv for iv in tl if iv.light in GREEN_LIGHTS and iv.start_s > arrival_s - 1e-9), None)
        if later is not None and (here is None or here.light not in GREEN_LIGHTS):
            advance = float(min(later.start_s - (arrival_s - limits.green_lead_s), limits.max_early_green_s))
            tau_green = self.plan_time(later.start_s)
            prev = self._preceding(phase_id)
            if prev != phase_id and advance > 1e-9:
                q = self._plan_green(prev, tau_green - self.cycle_s, after=True)
                phase = self._phase[prev]
                if abs(q.end_s + phase.yellow_s + phase.all_red_s - tau_green) < 1e-6:
                    start = max(tau_min, q.start_s + limits.min_green_s)
                    skip = float(min(advance, q.end_s - start))
                    if skip > 1e-9:
                        warps = [
                            SignalWarp(self.intersection, start, skip_to_s=start + skip),
                            SignalWarp(self.intersection, tau_green, hold_s=skip),
                        ]
                        return self._decided("early_green", warps, phase_id, arrival_s, now_s, skip)
        return PriorityDecision("refused", (), None)

    def _decided(
        self, action: str, warps: list[SignalWarp], phase_id: int, arrival_s: float, now_s: float, seconds: float
    ) -> PriorityDecision:
        for w in warps:
            self.apply(w)
        tl = self.timeline(phase_id, now_s, max(arrival_s - now_s, 0.0) + self.cycle_s)
        green = next(
            (iv for iv in tl if iv.light in GREEN_LIGHTS and iv.end_s > arrival_s and iv.start_s <= arrival_s + 60),
            None,
        )
        return PriorityDecision(action, tuple(warps), green, round(seconds, 6))


def warp_to_wire(warp: SignalWarp) -> testbed_pb2.SignalWarp:
    return testbed_pb2.SignalWarp(
        intersection=warp.intersection,
        at_s=warp.at_s,
        hold_s=warp.hold_s,
        skip=warp.skip_to_s is not None,
        skip_to_s=warp.skip_to_s or 0.0,
    )


def warp_from_wire(msg: testbed_pb2.SignalWarp) -> SignalWarp:
    return SignalWarp(msg.intersection, msg.at_s, 0.0 if msg.skip else msg.hold_s, msg.skip_to_s if msg.skip else None)


def apply_warps(heads: Sequence[tuple[Approach, FixedTimeController]], warps: Iterable[SignalWarp]) -> int:
    """Apply signal warps to the controllers of these signal heads (each controller once; a warp for an
    intersection they do not show, or already applied, changes nothing; ValueError for an invalid one).
    Returns how many controllers changed."""
    controllers = {ctl.intersection: ctl for _, ctl in heads}
    changed = 0
    for warp in warps:
        ctl = controllers.get(warp.intersection)
        if ctl is not None and ctl.apply(warp):
            changed += 1
    return changed


def served(scenario: Scenario, rsu: ActorSpec) -> list[IntersectionSpec]:
    """The intersections a roadside unit serves, in file order: its ``intersections``, default all. It sends their
    MAP, runs the signal controllers of the signalised ones and sends their SPAT; one rule for the RSU agent, the
    signal warps it may report (``signal_controllers``) and the MAP and SPAT the world takes from it
    (``announced_nodes``)."""
    return [ix for ix in scenario.road.intersections if rsu.intersections is None or ix.id in rsu.intersections]


def signal_controllers(scenario: Scenario) -> dict[str, frozenset[str]]:
    """Per roadside unit, the signalised intersections whose controller it runs (those it serves: its
    ``intersections``, default all): the only signal plans it may change (``TruthState.signal_warps``)."""
    return {
        a.id: frozenset(ix.id for ix in served(scenario, a) if ix.signal is not None)
        for a in scenario.actors
        if a.kind == "rsu"
    }


def announced_nodes(scenario: Scenario) -> dict[str, dict[str, frozenset[int]]]:
    """Per roadside unit, by message kind, the intersections (MAP node ids, ``node_id_of``) a MAP or SPAT of its may
    name: "map" every one it serves, "spat" the signalised ones, whose controllers it runs (``signal_controllers``,
    the table its signal warps are checked against). The world refuses a MAP or SPAT naming any other
    (``not_permitted``): an outside RSU's SPAT for a light another RSU runs got a built-in car on its green warned
    and stopped (attack review 13); an RSU serving none may send neither."""
    node = {ix.id: k for k, ix in enumerate(scenario.road.intersections, start=1)}
    warp = signal_controllers(scenario)
    return {
        a.id: {
            "map": frozenset(node[ix.id] for ix in served(scenario, a)),
            "spat": frozenset(node[ix] for ix in warp[a.id]),
        }
        for a in scenario.actors
        if a.kind == "rsu"
    }


def node_id_of(scenario: Scenario, intersection_id: str) -> int:
    """IntersectionReferenceID.id: the intersection's position in the file, from 1."""
    for k, ix in enumerate(scenario.road.intersections, start=1):
        if ix.id == intersection_id:
            return k
    raise KeyError(intersection_id)


def ingress(lane: LaneSpec, ix: IntersectionSpec) -> list[tuple[float, float]] | None:
    """The lane's centre line up to where it first enters the intersection box (its stop line), or None if
    it never enters the box or starts inside it."""
    cx, cy = ix.center
    r = ix.radius_m
    pts = [tuple(p) for p in lane.centerline]
    if math.hypot(pts[0][0] - cx, pts[0][1] - cy) < r:
        return None  # starts inside the box
    # Walk the polyline to its first entry into the circle (exact; None if it never enters).
    out: list[tuple[float, float]] = [(float(pts[0][0]), float(pts[0][1]))]
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        dx, dy = x1 - x0, y1 - y0
        fx, fy = x0 - cx, y0 - cy
        a = dx * dx + dy * dy
        b = 2 * (fx * dx + fy * dy)
        c = fx * fx + fy * fy - r * r
        disc = b * b - 4 * a * c
        if a > 0 and disc >= 0:
            u = (-b - math.sqrt(disc)) / (2 * a)
            if 0 <= u <= 1:
                out.append((x0 + u * dx, y0 + u * dy))
                return out
        out.append((float(x1), float(y1)))
    return None


def _last_exit(points: list[tuple[float, float]], boxes: Sequence[IntersectionSpec]) -> tuple[int, float] | None:
    """Where a polyline last leaves one of the intersection boxes ``boxes`` (circles) before its end, as (segment
    index, fraction along it), or None if it never leaves one."""
    best: tuple[int, float] | None = None
    for k, ((x0, y0), (x1, y1)) in enumerate(itertools.pairwise(points)):
        dx, dy = x1 - x0, y1 - y0
        a = dx * dx + dy * dy
        if a == 0:
            continue
        for box in boxes:
            fx, fy = x0 - box.center[0], y0 - box.center[1]
            b = 2 * (fx * dx + fy * dy)
            c = fx * fx + fy * fy - box.radius_m * box.radius_m
            disc = b * b - 4 * a * c
            if disc <= 0:
                continue
            u = (-b + math.sqrt(disc)) / (2 * a)  # the exit (the larger root)
            if 0 <= u < 1 and (best is None or (k, u) > best):
                best = (k, u)
    return best


def approach_points(
    lane: LaneSpec, ix: IntersectionSpec, others: Sequence[IntersectionSpec] = ()
) -> list[tuple[float, float]] | None:
    """The ingress lane of ``ix`` as MAP describes it: the lane's centre line up to its stop line (``ingress``),
    from where it last leaves the box of an intersection of ``others`` before (a lane through a street grid:
    the stretch between the upstream intersection and this one), else from its start. None as ``ingress``."""
    pts = ingress(lane, ix)
    if pts is None:
        return None
    cut = _last_exit(pts, [o for o in others if o.id != ix.id])
    if cut is None:
        return pts
    k, u = cut
    (x0, y0), (x1, y1) = pts[k], pts[k + 1]
    return [(x0 + u * (x1 - x0), y0 + u * (y1 - y0)), *pts[k + 1 :]]


# -- movements through a box: MAP maneuvers and connections, permissive or protected green -----------------
TURN_ANGLE_RAD = {"straight": 0.0, "left": math.pi / 2, "right": -math.pi / 2, "u_turn": math.pi}
TURN_RANK = {"straight": 3, "left": 2, "right": 1, "u_turn": 0}  # who yields to whom (below)
BEZIER_POINTS = 17  # how finely a turning movement's path through the box is drawn


@dataclass(frozen=True)
class Movement:
    """One movement through an intersection box: from the stop line of ``lane`` (an ingress lane), turning
    ``turn``, out along ``egress`` (a scenario lane leaving the box, where it leaves it; None: no lane leaves
    the box that way, and the path ends on the box's edge), along ``path`` (a smooth curve through the box).
    ``given``: the turn is the lane's ``turn`` or its centre line's own turn through the box (False: the lane
    ends in the box and says no ``turn``: taken as straight, and permissive if any turn it might make
    would give way)."""

    lane: str
    turn: str
    egress: str | None
    path: tuple[tuple[float, float], ...]
    given: bool
    options: tuple[Movement, ...] = ()  # not ``given``: the other turns it might make (each may give way)


def _turn_of(angle_rad: float) -> str:
    a = math.degrees(wrap_angle_rad(angle_rad))
    return "straight" if abs(a) <= 45 else "left" if 45 < a <= 135 else "right" if -135 <= a < -45 else "u_turn"


def _on_edge(point: tuple[float, float], lane: LaneSpec, ix: IntersectionSpec) -> bool:
    """Is ``point`` (on ``lane``'s centre line) on the box's edge: on the circle, or outside it by at most half the
    lane's width (a lane drawn from the box's edge line starts there: off the axis, just outside the circle)?"""
    d = math.hypot(point[0] - ix.center[0], point[1] - ix.center[1])
    return ix.radius_m - 1e-6 < d <= ix.radius_m + lane.width_m / 2 + 1e-6


def box_exit(lane: LaneSpec, ix: IntersectionSpec) -> tuple[float, float, float] | None:
    """Where the lane's centre line leaves the box (x, y, heading), or None if it ends inside it or never comes
    to it. A lane that starts on the box's edge (``_on_edge``) running away from the box leaves it where it starts
    (an egress lane drawn from the box's edge line, found by no MAP connection before: diff review 26)."""
    pts = [(float(x), float(y)) for x, y in lane.centerline]
    cut = _last_exit(pts, [ix])
    if cut is None:
        (x0, y0), (x1, y1) = pts[0], pts[1]
        away = (x1 - x0) * (x0 - ix.center[0]) + (y1 - y0) * (y0 - ix.center[1]) > 0
        return (x0, y0, math.atan2(y1 - y0, x1 - x0)) if away and _on_edge(pts[0], lane, ix) else None
    k, u = cut
    (x0, y0), (x1, y1) = pts[k], pts[k + 1]
    return x0 + u * (x1 - x0), y0 + u * (y1 - y0), math.atan2(y1 - y0, x1 - x0)


def _path(
    start: tuple[float, float], h_in: float, end: tuple[float, float], h_out: float
) -> tuple[tuple[float, float], ...]:
    """A quadratic Bezier from ``start`` (heading ``h_in``) to ``end`` (heading ``h_out``) whose control
    point is where the two headings' lines meet; a straight line or, for a U-turn, a three-leg path when
    they do not meet ahead of both."""
    (sx, sy), (ex, ey) = start, end
    ci, si, co, so = math.cos(h_in), math.sin(h_in), math.cos(h_out), math.sin(h_out)
    det = ci * so - si * co  # start + a * in + b * out = end
    if abs(det) > 1e-6:
        a = ((ex - sx) * so - (ey - sy) * co) / det
        b = (ci * (ey - sy) - si * (ex - sx)) / det
        if a > 0 and b > 0:
            cx, cy = sx + a * ci, sy + a * si
            n = BEZIER_POINTS - 1
            return tuple(
                (
                    (1 - u) ** 2 * sx + 2 * u * (1 - u) * cx + u * u * ex,
                    (1 - u) ** 2 * sy + 2 * u * (1 - u) * cy + u * u * ey,
                )
                for u in (k / n for k in range(BEZIER_POINTS))
            )
    if abs(wrap_angle_rad(h_out - h_in)) < math.pi / 4:
        return ((sx, sy), (ex, ey))
    w = math.hypot(ex - sx, ey - sy) / 2
    return ((sx, sy), (sx + w * ci, sy + w * si), (ex - w * co, ey - w * so), (ex, ey))


def movements(scenario: Scenario, ix: IntersectionSpec) -> list[Movement]:
    """The movements from every ingress lane of ``ix``, in file order, each lane's in the order of its
    ``turn`` (default: its centre line's own turn through the box). A turn's egress is the lane leaving the
    box nearest the stop line whose heading is within 45 degrees of the turned heading (the lane itself
    first, if its centre line makes that turn); without one, the path ends on the box's edge. A lane that
    ends in the box and gives no ``turn`` goes straight on to the box's edge, and ``options`` holds the
    other turns it might make."""
    exits = {lane.id: e for lane in scenario.road.lanes if (e := box_exit(lane, ix)) is not None}
    out: list[Movement] = []
    for lane in scenario.road.lanes:
        pts = ingress(lane, ix)
        if pts is None:
            continue
        (x0, y0), stop = pts[-2], pts[-1]
        h_in = math.atan2(stop[1] - y0, stop[0] - x0)
        own = exits.get(lane.id)
        own_turn = None if own is None else _turn_of(own[2] - h_in)
        if lane.turns or own_turn is not None:
            for turn in lane.turns or (own_turn or "straight",):
                egress = lane.id if own_turn == turn else _egress(exits, lane.id, stop, h_in + TURN_ANGLE_RAD[turn])
                out.append(Movement(lane.id, turn, egress, _through(ix, exits, egress, stop, h_in, turn), True))
            continue
        options = tuple(
            Movement(lane.id, t, e, _through(ix, exits, e, stop, h_in, t), False)
            for t in ("left", "right", "u_turn")
            for e in [_egress(exits, lane.id, stop, h_in + TURN_ANGLE_RAD[t])]
        )
        path = _through(ix, exits, None, stop, h_in, "straight")
        out.append(Movement(lane.id, "straight", None, path, False, options))
    return out


def _egress(
    exits: Mapping[str, tuple[float, float, float]], lane_id: str, stop: tuple[float, float], heading_rad: float
) -> str | None:
    """The lane (other than ``lane_id``) leaving the box nearest ``stop`` within 45 degrees of the heading."""
    fits = [
        (math.hypot(e[0] - stop[0], e[1] - stop[1]), lid)
        for lid, e in exits.items()
        if lid != lane_id and abs(wrap_angle_rad(e[2] - heading_rad)) <= math.pi / 4
    ]
    return min(fits)[1] if fits else None


def _through(
    ix: IntersectionSpec,
    exits: Mapping[str, tuple[float, float, float]],
    egress: str | None,
    stop: tuple[float, float],
    h_in: float,
    turn: str,
) -> tuple[tuple[float, float], ...]:
    """A movement's path from its stop line to where its egress leaves the box (without one: to the box's
    edge, turned from the point abreast of its centre)."""
    if egress is not None:
        ex, ey, h_out = exits[egress]
    else:
        sx, sy = stop
        reach = (ix.center[0] - sx) * math.cos(h_in) + (ix.center[1] - sy) * math.sin(h_in)
        mx, my = sx + reach * math.cos(h_in), sy + reach * math.sin(h_in)
        h_out = h_in + TURN_ANGLE_RAD[turn]
        side = reach if turn == "straight" else ix.radius_m
        ex, ey = mx + side * math.cos(h_out), my + side * math.sin(h_out)
    return _path(stop, h_in, (ex, ey), h_out)


def yields(a: Movement, b: Movement) -> bool:
    """Must movement ``a`` give way to ``b`` when both have green? When their paths through the box cross
    or merge (from different ingress lanes) and ``b`` ranks as high: going straight ranks above turning
    left, turning left above turning right (a right turn gives way to the opposite left turn), a U-turn
    lowest; two of one rank give way to each other (China's Road Traffic Safety Law Implementing
    Regulations, art. 51 (7): turning vehicles give way to straight-going ones; right to the opposite left)."""
    from shapely.geometry import LineString

    if a.lane == b.lane:
        return False
    return any(
        TURN_RANK[b.turn] >= TURN_RANK[m.turn] and LineString(m.path).intersects(LineString(b.path))
        for m in (a, *a.options)
    )


def signal_groups(scenario: Scenario, ix: IntersectionSpec) -> dict[tuple[str, str], tuple[int, int, bool]]:
    """The signal group of every signalised movement (lane, turn) of ``ix``: (its id in MAP and SPAT, the
    plan's phase, permissive). A movement is permissive when it gives way (``yields``) to another with
    green in the same phase, else protected. A phase whose movements are all protected, or all permissive,
    keeps its id; one with both keeps its id for the protected ones and gives its permissive ones a new id:
    the next above the plan's highest (in phase order), or the lowest free one."""
    if ix.signal is None:
        return {}
    moves = movements(scenario, ix)
    used = {p.id for p in ix.signal.phases}
    out: dict[tuple[str, str], tuple[int, int, bool]] = {}
    for phase in ix.signal.phases:
        green = [m for m in moves if m.lane in phase.lanes]
        permissive = {(m.lane, m.turn) for m in green if any(yields(m, o) for o in green)}
        split = 0
        if permissive and len(permissive) < len(green):
            free = list(range(max(used) + 1, 256)) or [k for k in range(1, 256) if k not in used]
            split = free[0]
            used.add(split)
        for m in green:
            key = (m.lane, m.turn)
            if key in permissive:
                out[key] = (split or phase.id, phase.id, True)
            else:
                out[key] = (phase.id, phase.id, False)
    return out


def controller(scenario: Scenario, ix: IntersectionSpec) -> FixedTimeController:
    """The fixed-time controller of a signalised intersection, with its signal groups."""
    assert ix.signal is not None
    groups = {gid: (pid, permissive) for gid, pid, permissive in signal_groups(scenario, ix).values()}
    return FixedTimeController(ix.signal, ix.id, groups)


def approaches(scenario: Scenario, intersection_ids: list[str] | None = None) -> list[Approach]:
    """Every ingress lane of the given intersections (default all), in file order; a lane that crosses
    several intersections is an approach of each, from the one before it (``approach_points``). Its
    maneuvers and connections are its ``movements`` (the signal group of each: ``signal_groups``; the
    egress lane named where it is an ingress lane of the next intersection downstream); its ``phase_id``
    is its first movement's signal group."""
    out: list[Approach] = []
    table = _Ingresses(scenario)
    for ix in scenario.road.intersections:
        if intersection_ids is not None and ix.id not in intersection_ids:
            continue
        groups = signal_groups(scenario, ix)
        moves: dict[str, list[Movement]] = {}
        for m in movements(scenario, ix):
            moves.setdefault(m.lane, []).append(m)
        for lane in scenario.road.lanes:
            pts = table.points(lane, ix)
            if pts is None:
                continue
            limit = None if lane.speed_limit_kph is None else kph_to_mps(lane.speed_limit_kph)
            connections = []
            for m in sorted(moves.get(lane.id, []), key=lambda m: MANEUVER_BITS[m.turn]):
                node, lane_no = table.downstream(ix, m.egress) if m.egress else (0, 0)
                bit = MANEUVER_BITS[m.turn] if m.given else 0
                connections.append(Connection(bit, groups.get((m.lane, m.turn), (0, 0, False))[0], node, lane_no))
            out.append(
                Approach(
                    ix.id,
                    node_id_of(scenario, ix.id),
                    lane.id,
                    pts,
                    lane.width_m,
                    connections[0].phase_id if connections else 0,
                    limit,
                    sum({c.maneuver for c in connections}),
                    tuple(connections),
                )
            )
    return out


class _Ingresses:
    """The ingress lanes of a scenario's intersections for one ``approaches`` call, each worked out once, on
    first use: which lanes enter which box (``ingress``), MAP's number of each in its intersection (1, 2, ...
    in file order) and its ``approach_points``. (Asking every intersection afresh for every movement made a
    street grid's approaches take time of the order of intersections squared times lanes squared.)"""

    def __init__(self, scenario: Scenario) -> None:
        self._boxes = scenario.road.intersections
        self._lanes = {lane.id: lane for lane in scenario.road.lanes}
        self._enters: dict[tuple[str, str], bool] = {}
        self._entered: dict[str, list[tuple[int, IntersectionSpec]]] = {}
        self._numbers: dict[str, dict[str, int]] = {}
        self._points: dict[tuple[str, str], list[tuple[float, float]] | None] = {}

    def enters(self, lane: LaneSpec, ix: IntersectionSpec) -> bool:
        key = (lane.id, ix.id)
        if key not in self._enters:
            self._enters[key] = ingress(lane, ix) is not None
        return self._enters[key]

    def number(self, lane: LaneSpec, ix: IntersectionSpec) -> int | None:
        """The lane's number among the ingress lanes of ``ix``, or None if it is none of them."""
        if not self.enters(lane, ix):
            return None
        if ix.id not in self._numbers:
            ids = [other.id for other in self._lanes.values() if self.enters(other, ix)]
            self._numbers[ix.id] = {lane_id: k for k, lane_id in enumerate(ids, start=1)}
        return self._numbers[ix.id][lane.id]

    def points(self, lane: LaneSpec, ix: IntersectionSpec) -> list[tuple[float, float]] | None:
        """``approach_points(lane, ix, <every intersection>)``."""
        key = (lane.id, ix.id)
        if key not in self._points:
            self._points[key] = approach_points(lane, ix, self._boxes) if self.enters(lane, ix) else None
        return self._points[key]

    def downstream(self, ix: IntersectionSpec, lane_id: str) -> tuple[int, int]:
        """The egress lane ``lane_id`` of ``ix`` as MAP names it: (node id, lane number) of its approach to the
        next intersection it enters after leaving ``ix`` (the approach that starts on ``ix``'s box edge), or
        (0, 0)."""
        lane = self._lanes[lane_id]
        if lane_id not in self._entered:
            self._entered[lane_id] = [(n, o) for n, o in enumerate(self._boxes, start=1) if self.enters(lane, o)]
        for node, other in self._entered[lane_id]:
            if other.id == ix.id or (k := self.number(lane, other)) is None:
                continue
            pts = self.points(lane, other)
            assert pts is not None
            if _on_edge(pts[0], lane, ix):
                return node, k
        return 0, 0


def signal_heads(scenario: Scenario) -> list[tuple[Approach, FixedTimeController]]:
    """Every signalised approach with the controller of its intersection: the physical signal heads, which
    drivers see and the referee checks (one controller per intersection, shared by its approaches)."""
    controllers = {ix.id: controller(scenario, ix) for ix in scenario.road.intersections if ix.signal}
    return [
        (ap, controllers[ap.intersection])
        for ap in approaches(scenario)
        if ap.phase_id and ap.intersection in controllers
    ]


def crossed(approach: Approach, before: tuple[float, float], after: tuple[float, float]) -> bool:
    """Did a point moving from ``before`` to ``after`` cross the approach's stop line (the segment across
    the lane at the stop point) in the direction of travel?"""
    sx, sy = approach.stop_point
    h = approach.direction_rad
    ux, uy = math.cos(h), math.sin(h)
    along0 = (before[0] - sx) * ux + (before[1] - sy) * uy
    along1 = (after[0] - sx) * ux + (after[1] - sy) * uy
    if not (along0 < 0 <= along1):
        return False
    f = -along0 / (along1 - along0)
    px, py = before[0] + f * (after[0] - before[0]), before[1] + f * (after[1] - before[1])
    lateral = abs(-(px - sx) * uy + (py - sy) * ux)
    return lateral <= approach.width_m / 2
