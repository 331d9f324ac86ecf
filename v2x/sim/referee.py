"""The referee, sans-I/O: it watches the ground truth tick by tick and records what happened on the road.

Each tick, after the truths the agents reported are applied, ``Referee.step`` records, in this order:

* ``collision``: two road users' footprints begin to overlap (a pair that did not overlap at the previous
  tick overlaps now), with their relative speed;
* ``violation`` (``red_light``): a vehicle's front bumper crosses a signalised stop line while its signal
  head shows a stopping light (the heads run the scenario's plans, in the baseline too: they are physical);
* ``stop``: a vehicle comes to a standstill (below 0.1 m/s after moving at 1 m/s or more);
* ``passage``: an actor's centre passes a speed gate (a ``speed`` expectation's point), with its speed.

It also measures what ``string_stable`` / ``string_unstable`` expectations ask about, for the metrics
(``string_stability``): over each one's window, every follower's largest gap error, from the truth; and
what ``gap`` expectations ask about (``gaps``): over each one's window, the smallest and largest gap and
time gap from an actor to the other ahead of it.

Events are plain dicts (the form result.json keeps them in), times rounded to 1 ms.

A collision has one consequence the referee enforces on the world: **both road users come to rest where
they touched** (the pose of the tick their boxes first overlapped, speed and acceleration zero) and stay
there as obstacles for the rest of the run, whatever their agents report afterwards (``hold``, called by the
simulation after it applies the reported truths, before anything reads the world). The impact model is the
simplest one: no momentum is exchanged, nothing is pushed, the overlap of that tick (at most one tick of
their relative motion) stays. A third road user that runs into a wreck is a new collision (and comes to rest
in turn). Since both parties of a collision rest, a pair cannot separate and touch again; if a pair ever did
(a later impact model), each new contact would count again.
"""

from __future__ import annotations

import itertools
import logging
import math
from typing import Any

import numpy as np

from v2x.apps.platoon import gap_error
from v2x.apps.thresholds import resolve
from v2x.core import SpatialGrid, WorldState, overlapping_pairs
from v2x.scenario.model import (
    SPEED_GATE_M,
    GapExpectation,
    Scenario,
    SpeedExpectation,
    StringStableExpectation,
    TravelTimeExpectation,
)
from v2x.scenario.signals import SignalWarp, apply_warps, crossed, signal_heads
from v2x.sim.actors import road_user_slots, vehicle_slots
from v2x.wire.map_spat import LIGHT_NAME, STOPPING_LIGHTS

log = logging.getLogger("v2x.sim.referee")

STOP_SPEED_MPS = 0.1  # a vehicle slower than this has stopped ...
STOP_RESUME_MPS = 1.0  # ... and is moving again once faster than this
GAP_MIN_SPEED_MPS = 0.1  # a time gap is measured only at ticks where the follower moves at least this fast

Event = dict[str, Any]


class Referee:
    """The referee of one run of ``scenario`` (variant ``variant``) over ``world``."""

    def __init__(self, world: WorldState, scenario: Scenario, variant: str) -> None:
        self.world = world
        self.variant = variant
        self.road_users = set(road_user_slots(scenario, world).tolist())
        self.vehicles = vehicle_slots(scenario, world)
        # Signalised stop lines; the controllers run the same plans as the RSUs'.
        self.stop_lines = signal_heads(scenario)
        # Speed gates (`speed` and `travel_time` expectations): (actor slot, point) -> the along-heading offset
        # last tick.
        self.gates: dict[tuple[int, tuple[float, float]], float | None] = {}
        for e in scenario.expectations:
            if isinstance(e, SpeedExpectation):
                self.gates[(world.slot_of(e.actor), e.at)] = None
            elif isinstance(e, TravelTimeExpectation):
                self.gates[(world.slot_of(e.actor), e.start_at)] = None
                self.gates[(world.slot_of(e.actor), e.end_at)] = None
        # String stability (`string_stable` / `string_unstable` expectations of this variant): per (actors,
        # window), each follower's largest |gap error| in the window, under the platoon's spacing policy.
        thresholds = resolve(scenario.thresholds)
        self.time_gap_s = thresholds["platoon_time_gap_s"]
        self.standstill_m = thresholds["platoon_standstill_m"]
        self.strings: dict[tuple[tuple[str, ...], tuple[float, float]], list[float]] = {}
        for e in scenario.expectations:
            if isinstance(e, StringStableExpectation) and e.variant == variant:
                self.strings[(tuple(e.actors), (float(e.window_s[0]), float(e.window_s[1])))] = [0.0] * (
                    len(e.actors) - 1
                )
        # Gaps (`gap` expectations of this variant): per (actor, other, window), the smallest and largest gap (m)
        # and time gap (s) in the window.
        self.gaps: dict[tuple[str, str, tuple[float, float]], list[float]] = {}
        for e in scenario.expectations:
            if isinstance(e, GapExpectation) and e.variant == variant:
                window = (float(e.window_s[0]), float(e.window_s[1]))
                self.gaps[(e.actor, e.other, window)] = [math.inf, -math.inf, math.inf, -math.inf]
        # Road users at rest after a collision: slot -> (x, y, heading) where they touched.
        self.wrecks: dict[int, tuple[float, float, float]] = {}
        self._touching: set[tuple[int, int]] = set()  # road-user pairs whose boxes overlapped last tick
        self._moved_logged: set[int] = set()  # wrecks whose agent was logged reporting motion
        self._front: dict[int, tuple[float, float]] = {}
        self._moving: set[int] = set()

    def forget(self, slot: int) -> None:
        """A road user left the world (background traffic): its slot is no longer watched (and may be
        taken by a new one, which starts untouched)."""
        self.road_users.discard(slot)
        self._touching = {p for p in self._touching if slot not in p}

    def change_signals(self, warps: list[SignalWarp]) -> int:
        """A roadside unit's signal controller changed its plan (signal priority): the signal heads show it."""
        return apply_warps(self.stop_lines, warps)

    def step(self, t: float, grid: SpatialGrid) -> list[Event]:
        """Everything the referee records at time ``t``; ``grid`` indexes the world's current positions."""
        if self.strings:
            self.gap_errors(t)
        if self.gaps:
            self.gap_extremes(t)
        return self.collisions(t, grid) + self.red_lights(t) + self.stops(t) + self.passages(t)

    def hold(self, t: float) -> None:
        """Put every wreck back where it came to rest, at a standstill (its agent's reported truth is
        ignored; a report of motion is logged once per actor)."""
        w = self.world
        for s, (x, y, _) in self.wrecks.items():
            if s in self._moved_logged:
                continue
            if (
                math.hypot(float(w.x[s]) - x, float(w.y[s]) - y) > 0.01
                or math.hypot(float(w.vx[s]), float(w.vy[s])) >= STOP_SPEED_MPS
            ):
                self._moved_logged.add(s)
                log.info("%s t=%.2f s: reports motion after its collision; the world keeps it at rest", w.id_of(s), t)
        self._pin()

    def _pin(self) -> None:
        """Every wreck at its resting pose, speed and acceleration zero."""
        if not self.wrecks:
            return
        slots = np.fromiter(self.wrecks, dtype=np.intp, count=len(self.wrecks))
        rest = np.array(list(self.wrecks.values()))
        z = np.zeros(len(slots))
        self.world.set_state(slots, rest[:, 0], rest[:, 1], z, z, z, z, rest[:, 2])

    def bumper_gap(self, f: int, p: int) -> tuple[float, float]:
        """(gap, speed): the bumper-to-bumper gap from the follower in slot ``f`` to the one ahead in slot ``p``
        along the follower's heading (negative: ``p`` is not ahead of ``f``'s front), and the follower's speed."""
        w = self.world
        c, sn = math.cos(float(w.heading_rad[f])), math.sin(float(w.heading_rad[f]))
        along = float((w.x[p] - w.x[f]) * c + (w.y[p] - w.y[f]) * sn)
        return along - float(w.length_m[p] + w.length_m[f]) / 2, float(np.hypot(w.vx[f], w.vy[f]))

    def gap_errors(self, t: float) -> None:
        """Track each follower's largest |gap error| (bumper to bumper, along its heading, less the spacing
        policy's gap at its speed) inside the windows of the string-stability expectations."""
        w = self.world
        for (actors, (start, end)), worst in self.strings.items():
            if not start - 1e-9 <= t <= end + 1e-9:
                continue
            for k in range(1, len(actors)):
                gap, speed = self.bumper_gap(w.slot_of(actors[k]), w.slot_of(actors[k - 1]))
                worst[k - 1] = max(worst[k - 1], abs(gap_error(gap, speed, self.time_gap_s, self.standstill_m)))

    def gap_extremes(self, t: float) -> None:
        """Track the smallest and largest gap (bumper to bumper along the actor's heading) and time gap (that
        gap over the actor's speed, when it moves) inside the windows of the ``gap`` expectations."""
        w = self.world
        for (actor, other, (start, end)), ext in self.gaps.items():
            if not start - 1e-9 <= t <= end + 1e-9:
                continue
            gap, speed = self.bumper_gap(w.slot_of(actor), w.slot_of(other))
            ext[0], ext[1] = min(ext[0], gap), max(ext[1], gap)
            if speed >= GAP_MIN_SPEED_MPS:
                ext[2], ext[3] = min(ext[2], gap / speed), max(ext[3], gap / speed)

    def gap_report(self) -> list[dict[str, Any]]:
        """Per ``gap`` expectation (actor, other, window): the smallest and largest gap in m and time gap in s
        (None: not measured, e.g. the actor never moved)."""
        out = []
        for (actor, other, window), ext in self.gaps.items():
            values = [round(v, 3) if math.isfinite(v) else None for v in ext]
            out.append(
                {"actor": actor, "other": other, "window_s": list(window)}
                | dict(zip(("smallest_m", "largest_m", "smallest_s", "largest_s"), values, strict=True))
            )
        return out

    def string_stability(self) -> list[dict[str, Any]]:
        """Per string-stability expectation (actors, window): each follower's largest |gap error| in m and
        the amplification from each follower to the next (its largest error over its predecessor's)."""
        out = []
        for (actors, window), worst in self.strings.items():
            errors = [round(e, 3) for e in worst]
            out.append(
                {
                    "actors": list(actors),
                    "window_s": list(window),
                    "max_gap_error_m": dict(zip(actors[1:], errors, strict=True)),
                    "amplification": [round(b / a, 3) if a > 0 else None for a, b in itertools.pairwise(errors)],
                }
            )
        return out

    def collisions(self, t: float, grid: SpatialGrid) -> list[Event]:
        """Road users whose footprints begin to overlap, in actor-id order of the pairs; both come to rest
        (``hold``) from this tick on."""
        out: list[Event] = []
        w = self.world
        i, j = overlapping_pairs(w, grid)
        touching = {
            (a, b) for a, b in zip(i.tolist(), j.tolist(), strict=True) if a in self.road_users and b in self.road_users
        }
        new = sorted(touching - self._touching, key=lambda p: sorted((w.id_of(p[0]), w.id_of(p[1]))))
        self._touching = touching
        for a, b in new:  # every relative speed from the velocities before anyone is stopped
            pair = sorted((w.id_of(a), w.id_of(b)))
            rel = float(np.hypot(w.vx[a] - w.vx[b], w.vy[a] - w.vy[b]))
            out.append(
                {
                    "t_s": round(t, 3),
                    "type": "collision",
                    "variant": self.variant,
                    "actors": pair,
                    "relative_speed_mps": round(rel, 2),
                }
            )
            # An outcome, not a problem of the tool (a baseline is often meant to crash): -v shows it; the
            # run's summary reports it through the expectations.
            log.info("world t=%.2f s: collision %s - %s at %.1f m/s", t, pair[0], pair[1], rel)
        for a, b in new:
            for s in (a, b):
                if s not in self.wrecks:
                    self.wrecks[s] = (float(w.x[s]), float(w.y[s]), float(w.heading_rad[s]))
        if new:
            self._pin()
        return out

    def stops(self, t: float) -> list[Event]:
        """Vehicles that come to a standstill (below 0.1 m/s after moving at 1 m/s or more)."""
        out: list[Event] = []
        w = self.world
        for s in self.vehicles:
            speed = float(np.hypot(w.vx[s], w.vy[s]))
            if speed >= STOP_RESUME_MPS:
                self._moving.add(s)
            elif speed < STOP_SPEED_MPS and s in self._moving:
                self._moving.discard(s)
                out.append(
                    {
                        "t_s": round(t, 3),
                        "type": "stop",
                        "variant": self.variant,
                        "actor": w.id_of(s),
                        "x_m": round(float(w.x[s]), 2),
                        "y_m": round(float(w.y[s]), 2),
                    }
                )
                log.info("%s t=%.2f s: stopped at (%.1f, %.1f)", w.id_of(s), t, w.x[s], w.y[s])
        return out

    def passages(self, t: float) -> list[Event]:
        """The speed of an actor as its centre passes a speed gate: the line through the gate's point square
        to the actor's heading, crossed within SPEED_GATE_M of the point (once per gate)."""
        out: list[Event] = []
        w = self.world
        for (s, (px, py)), before in list(self.gates.items()):
            if before is not None and math.isnan(before):
                continue  # recorded
            c, sn = math.cos(float(w.heading_rad[s])), math.sin(float(w.heading_rad[s]))
            dx, dy = px - float(w.x[s]), py - float(w.y[s])
            ahead = dx * c + dy * sn
            if before is not None and before > 0 >= ahead and abs(-dx * sn + dy * c) <= SPEED_GATE_M:
                self.gates[(s, (px, py))] = math.nan
                out.append(
                    {
                        "t_s": round(t, 3),
                        "type": "passage",
                        "variant": self.variant,
                        "actor": w.id_of(s),
                        "at": [px, py],
                        "speed_mps": round(float(np.hypot(w.vx[s], w.vy[s])), 2),
                    }
                )
            else:
                self.gates[(s, (px, py))] = ahead
        return out

    def red_lights(self, t: float) -> list[Event]:
        """Vehicles whose front bumper crosses a signalised stop line while its phase shows a stopping
        light (red; red-amber and flashing red count too: ``STOPPING_LIGHTS``)."""
        out: list[Event] = []
        if not self.stop_lines:
            return out
        w = self.world
        for s in self.vehicles:
            half = w.length_m[s] / 2
            front = (float(w.x[s] + half * np.cos(w.heading_rad[s])), float(w.y[s] + half * np.sin(w.heading_rad[s])))
            before = self._front.get(s)
            self._front[s] = front
            if before is None:
                continue
            for ap, ctl in self.stop_lines:
                if not crossed(ap, before, front):
                    continue
                light = ctl.light(ap.phase_id, t)
                actor = w.id_of(s)
                if light in STOPPING_LIGHTS:
                    speed = float(np.hypot(w.vx[s], w.vy[s]))
                    out.append(
                        {
                            "t_s": round(t, 3),
                            "type": "violation",
                            "variant": self.variant,
                            "kind": "red_light",
                            "actor": actor,
                            "intersection": ap.intersection,
                            "lane": ap.lane,
                            "speed_mps": round(speed, 2),
                        }
                    )
                    log.info(
                        "world t=%.2f s: red light: %s crossed the %s stop line at %s",
                        t,
                        actor,
                        ap.lane,
                        ap.intersection,
                    )
                else:
                    log.info(
                        "%s t=%.2f s: crossed the %s stop line on %s", actor, t, ap.lane, LIGHT_NAME.get(light, light)
                    )
        return out
