"""Driver model, sans-I/O. The rules, in order of precedence:

1. **Warnings** (those of apps whose declared reaction is to brake: FCW, ICW, RLVW and the others
   docs/PROTOCOL.md "Warnings" lists): the first one is noticed after ``reaction_s``; from then on the driver
   brakes at ``brake_mps2`` to a stop.
2. **Signals** (``sees_signals``): the driver sees the signal head of the approach he is on, with its
   countdown (common on Chinese signals). A stop is called for when, by the countdown, the light will be
   red when he reaches the stop line at his current speed (standing: when it is red now). He then brakes
   at the rate that stops him ``STOP_GAP_M`` before the line, ``v^2 / 2(d - gap)``, once that rate
   reaches ``comfort_decel_mps2`` (at most ``brake_mps2``); on yellow he goes on if stopping would need
   more than ``YELLOW_MAX_STOP_MPS2`` (the dilemma zone). Stopped at red, he waits; on green he drives off.
3. **Speed**: otherwise he tracks a target speed, the advised speed while a speed advisory (GLOSA, a CLC
   drive suggestion) is fresh and ``follows_advice``, else his cruise speed, with a 2 s time constant, limited to
   ``comfort_accel_mps2`` / ``comfort_decel_mps2``. A speed he has been told to keep to (``on_speed_cap``:
   an SLW warning's limit, a speed-limit sign shown by IVS, or his ``caution_speed_mps`` for a warning sign
   shown by IVS) caps the target from ``reaction_s`` after he was told, for the rest of the run (the lowest
   cap wins; signs that end a restriction are not modelled).

Beside them, a warning against a manoeuvre he has announced with his turn signal (LCW: a car in or coming
into his blind spot; DNPW: an oncoming car in the passing zone) makes him **abandon the manoeuvre**
(``on_abort``): ``reaction_s`` later he steers back into the lane he was leaving, turns the signal off, drops
the acceleration of the overtake and goes back to the speed he had when he signalled (rule 3's tracking).
He does not brake for it, and does not try the manoeuvre again (the vehicle's side: v2x/agents/vehicle.py).

4. **The vehicle ahead** (``attentive``): an attentive driver follows the nearest vehicle ahead in his lane,
   story or background alike (the world's forward view, v2x/sim/radar.py, as his eyes: the truth at the last
   tick, predicted to now with the speeds seen). His acceleration is then the lower of what rules 2 and 3
   (or his script) ask and the IDM's interaction term for that vehicle with his class's parameters
   (``follow``; the min of the two is IDM+, Schakel, van Arem & Netten 2010), braking at most ``brake_mps2``.
   A distracted driver (``attentive`` false, the default) does not look: he keeps his scripted profile until
   a warning reaches him, which is what makes the stories.

A driver without warnings, red lights, advice or (attentive) a vehicle ahead therefore keeps his speed, as the
scripted profile says.

**When** (docs/ARCHITECTURE.md, "One tick"): the vehicle tells the driver at the instant its app raised the
warning (the delivery time of the message that made it, inside the tick), and each reaction begins exactly
``reaction_s`` after that instant: ``next_change`` gives the vehicle the instants inside a tick at which what
the driver does changes (braking begins, a cap starts, he abandons the manoeuvre, new advice), and the
vehicle splits its motion there instead of waiting for the next tick.

**Grades** (a lane with ``elevation_m``, docs/SCENARIOS.md): gravity pulls a vehicle along a road of grade
G (rise over run, positive uphill) at ``-g sin(theta)``, theta = atan(G) (``grade_accel``). An *effort* at a
set rate - the driver's braking at ``brake_mps2`` on a warning, a scripted ``brake`` or ``accelerate`` at
``rate_mps2`` - is what brakes or engine give, so the vehicle achieves that rate plus gravity's pull: on a
6 % downhill a 6 m/s^2 stop decelerates at 6 - 9.80665 x sin(atan 0.06) = 5.41 m/s^2 and takes 11 % longer.
A closed loop on speed (tracking the cruise or advised speed, holding a speed, braking to stop at a signal's
line, a platoon controller) makes up for the grade itself and is unchanged. Speeds and distances are those of
the horizontal projection (at a 10 % grade the slope is 0.5 % longer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from v2x.core.traffic import DriverParams
from v2x.units import G0
from v2x.wire.map_spat import STOPPING_LIGHTS, YELLOW

STOP_GAP_M = 1.0  # where a driver aims to stop, before the stop line
YELLOW_MAX_STOP_MPS2 = 3.0  # on yellow, stop only if it needs no more than this (else go through)
ADVICE_FRESH_S = 0.5  # a speed advisory is followed for this long after it was last given
TRACK_TIME_CONSTANT_S = 2.0


def grade_accel(grade: float) -> float:
    """Gravity's pull along a road of ``grade`` (rise over run; positive uphill), m/s^2: ``-g sin(atan G)``
    (negative uphill, positive downhill)."""
    return -G0 * grade / math.sqrt(1.0 + grade * grade)


@dataclass(frozen=True)
class SignalView:
    """What the driver sees of the signal ahead: distance from the front bumper to the stop line, the light
    now and the light (by the countdown) when he would reach the line at his current speed."""

    distance_m: float
    light_now: int
    light_at_arrival: int


@dataclass
class Driver:
    reaction_s: float
    brake_mps2: float
    sees_signals: bool = True
    follows_advice: bool = True
    comfort_decel_mps2: float = 2.0
    comfort_accel_mps2: float = 1.5
    caution_speed_mps: float | None = None
    attentive: bool = False
    brake_at_s: float | None = None
    cause: str = ""
    abort_at_s: float | None = None  # when he abandons the manoeuvre he was warned against
    _advice: tuple[float, float] | None = field(default=None, repr=False)  # (speed, last given at)
    _caps: list[tuple[float, float]] = field(default_factory=list, repr=False)  # (speed, from)
    _changes: list[float] = field(default_factory=list, repr=False)  # instants his reactions begin, pending

    # -- when a reaction begins --------------------------------------------------------------------------
    def _change_at(self, t_s: float) -> None:
        self._changes.append(t_s)

    def next_change(self, now_s: float, until_s: float) -> float | None:
        """The first instant in [``now_s``, ``until_s``) at which a reaction begins (braking, a speed cap,
        abandoning a manoeuvre, new advice), taken off the list; None when there is none before
        ``until_s`` (one at ``until_s`` stays for the vehicle's choice there). Instants before ``now_s``
        are gone."""
        pending = [c for c in self._changes if c >= now_s - 1e-9]
        first = min(pending, default=None)
        if first is None or first >= until_s - 1e-9:
            self._changes = pending
            return None
        self._changes = [c for c in pending if c > first + 1e-9]
        return max(first, now_s)

    def settle(self, t_s: float) -> None:
        """The vehicle chose its acceleration at ``t_s``: reactions beginning by then are taken into account."""
        if self._changes:
            self._changes = [c for c in self._changes if c > t_s + 1e-9]

    # -- rule 1 -----------------------------------------------------------------------------------------
    def on_warning(self, t_s: float, cause: str) -> None:
        """Take note of a warning raised at ``t_s``; the first one decides when braking starts."""
        if self.brake_at_s is None:
            self.brake_at_s = t_s + self.reaction_s
            self.cause = cause
            self._change_at(self.brake_at_s)

    def command(self, t_s: float) -> float | None:
        """The driver's emergency deceleration (negative m/s^2) once braking has started, else None."""
        if self.brake_at_s is not None and t_s >= self.brake_at_s - 1e-9:
            return -self.brake_mps2
        return None

    # -- abandoning a manoeuvre ----------------------------------------------------------------------------
    def on_abort(self, t_s: float) -> None:
        """Warned at ``t_s`` against the lane change or overtake he has signalled: he abandons it after
        ``reaction_s`` (a second warning before then changes nothing)."""
        if self.abort_at_s is None:
            self.abort_at_s = t_s + self.reaction_s
            self._change_at(self.abort_at_s)

    def abort_due(self, t_s: float) -> bool:
        """Is it time to abandon the manoeuvre (true once per ``on_abort``)?"""
        if self.abort_at_s is not None and t_s >= self.abort_at_s - 1e-9:
            self.abort_at_s = None
            return True
        return False

    # -- rule 2 -----------------------------------------------------------------------------------------
    def signal_accel(self, speed_mps: float, view: SignalView | None) -> float | None:
        """The deceleration the signal ahead calls for, or None if it calls for nothing."""
        if not self.sees_signals or view is None:
            return None
        if view.light_at_arrival not in STOPPING_LIGHTS:
            return None  # green or yellow when he gets there (by the countdown): go
        if speed_mps < 0.5:
            return -self.brake_mps2  # waiting at the line
        a_req = speed_mps * speed_mps / (2 * max(view.distance_m - STOP_GAP_M, 0.05))
        if view.light_now == YELLOW and a_req > YELLOW_MAX_STOP_MPS2:
            return None
        if a_req >= self.comfort_decel_mps2:
            return -min(a_req, self.brake_mps2)
        return None

    # -- rule 3 -----------------------------------------------------------------------------------------
    def on_advice(self, t_s: float, speed_mps: float) -> None:
        if self.follows_advice:
            if self._advice is None or self._advice[0] != speed_mps or t_s - self._advice[1] > ADVICE_FRESH_S:
                self._change_at(t_s)  # new advice: he follows it from now
            self._advice = (speed_mps, t_s)

    def on_speed_cap(self, t_s: float, speed_mps: float) -> None:
        """Told at ``t_s`` to keep to ``speed_mps`` (a speed limit, a warning sign's caution speed)."""
        self._caps.append((speed_mps, t_s + self.reaction_s))
        self._change_at(t_s + self.reaction_s)

    def target_speed(self, t_s: float, cruise_mps: float) -> float:
        target = cruise_mps
        if self._advice is not None and t_s - self._advice[1] <= ADVICE_FRESH_S + 1e-9:
            target = self._advice[0]
        return min([target, *(speed for speed, start in self._caps if t_s >= start - 1e-9)])

    # -- rule 4 -----------------------------------------------------------------------------------------
    def follow(self, speed_mps: float, gap_m: float, closing_mps: float, params: DriverParams) -> float:
        """An attentive driver's acceleration for the vehicle ahead, ``gap_m`` bumper to bumper, closing at
        ``closing_mps`` (his speed less its speed along his heading): the IDM's interaction term
        ``a (1 - (s*/s)^2)``, ``s* = s0 + max(0, v T + v dv / (2 sqrt(a b)))``, with his class's a, b, s0 and
        T, at most ``brake_mps2`` of braking. The vehicle takes the lower of it and what rules 2 and 3 ask."""
        if gap_m <= 1e-3:
            return -self.brake_mps2
        a, b = params.a_mps2, params.b_mps2
        dynamic = speed_mps * params.t_gap_s + speed_mps * closing_mps / (2.0 * math.sqrt(a * b))
        desired = params.s0_m + max(0.0, dynamic)
        return max(-self.brake_mps2, a * (1.0 - (desired / gap_m) ** 2))

    def track(self, speed_mps: float, target_mps: float) -> float:
        a = (target_mps - speed_mps) / TRACK_TIME_CONSTANT_S
        return max(-self.comfort_decel_mps2, min(self.comfort_accel_mps2, a))


__all__ = ["Driver", "SignalView", "grade_accel"]
