"""Misbehaviour detection: plausibility checks on what BSM senders claim, after the checks of F2MD (the
VeReMi extension's framework: J. Kamel, M. R. Ansari, J. Petit, A. Kaiser, I. Ben Jemaa, P. Urien,
"Simulation Framework for Misbehavior Detection in Vehicular Networks", IEEE Transactions on Vehicular
Technology 69(6), 2020; its "legacy" checks). Sans-I/O: remote states in, verdicts out.

A vehicle's OBU and the edge platform each keep one :class:`Detector`. Every new BSM of a sender is checked
against the sender's previous one (:meth:`Detector.observe`; a vehicle checks its tick's BSMs in one numpy batch
first, :meth:`Detector.prepare`, the same answers); the claimed boxes are checked against each
other and against the host's own (:meth:`Detector.overlaps`). The edge adds the check against what the
roadside units perceive (``v2x.agents.platform``). A sender judged misbehaving stays judged for the rest of
the run on that host: its BSMs are left out of the host's apps, and the verdict is reported once
(``Ack.misbehaviour``, a ``misbehaviour`` event in result.json).

The checks and their names (the ``check`` of a verdict):

- ``speed``: a claimed speed above ``mbd_max_speed_mps`` (F2MD SpeedPlausibilityCheck).
- ``acceleration``: a claimed acceleration, or the change of the claimed speed between two BSMs, beyond
  ``mbd_max_accel_mps2`` / ``mbd_max_decel_mps2`` plus ``mbd_mgt_rng_mps2`` (F2MD SpeedConsistancyCheck).
- ``position_jump``: a displacement between two BSMs longer than the fastest plausible speed allows
  (F2MD PositionConsistancyCheck), plus the reported position errors.
- ``position_speed``: a displacement outside the distances the two claimed speeds allow under the
  acceleration bounds, with F2MD's tolerances (PositionSpeedConsistancyCheck), plus the reported errors.
- ``overlap``: the claimed box overlaps the host's own or, for a newcomer (``mbd_newcomer_s``), the box of a
  sender the host has heard longer (F2MD IntersectionCheck flags the newer message; we order by when the
  receiver heard each sender's track begin, not by the BSMs' own times), judged ``mbd_overlap_wait_s`` later
  unless both parties then say they crashed (vehicles that hit each other).
- ``rsu_unseen`` (edge): the sender claims to be well inside a roadside sensor's view, and that RSU's
  perception does not see it (v2x.agents.platform).

Every position check widens its bound by ``mbd_sigmas`` times the reported position errors; the kinematic
ones (position_jump, position_speed, overlap) are skipped for a position reported less accurate than
``mbd_required_accuracy_m`` (``v2x.units.accurate_enough``; FCW leaves such a party out too): noise alone,
honestly reported, must not make a liar of anyone.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from v2x.apps.host import Participant
from v2x.apps.registry import Bounds
from v2x.core import VERTICAL_SEPARATION_M
from v2x.units import accurate_enough
from v2x.wire.bsm import VEHICLE_EVENT_BIT, RemoteState

#: The checks' thresholds, overridable per scenario like the apps' (``thresholds:``). F2MD's defaults are
#: those of its parameter file (F2MD_CAMParameters); where F2MD takes a figure from the SUMO vehicle type,
#: the type's default is given.
THRESHOLDS: Mapping[str, float] = MappingProxyType(
    {
        # Fastest plausible road user: SUMO's default vehicle maxSpeed (55.55 m/s, 200 km/h), which F2MD
        # reads from the vehicle type (and takes at least MIN_MAX_SPEED 40 m/s).
        "mbd_max_speed_mps": 55.55,
        # Strongest plausible acceleration: F2MD MIN_MAX_ACCEL 3.0 m/s^2 (SUMO passenger accel 2.6).
        "mbd_max_accel_mps2": 3.0,
        # Hardest plausible braking: SUMO passenger emergencyDecel 9 m/s^2 (F2MD's MIN_MAX_DECEL 4.5 is a
        # normal deceleration, which drivers braking on a warning exceed).
        "mbd_max_decel_mps2": 9.0,
        # F2MD MAX_MGT_RNG: the acceleration margin of the speed consistency check, m/s^2.
        "mbd_mgt_rng_mps2": 4.0,
        # F2MD MAX_MGT_RNG_UP / MAX_MGT_RNG_DOWN: the distance margins of the position-speed check, m.
        "mbd_mgt_rng_up_m": 2.1,
        "mbd_mgt_rng_down_m": 6.2,
        # F2MD MAX_TIME_DELTA: two BSMs further apart than this are not compared, s.
        "mbd_max_time_delta_s": 3.1,
        # Our choice: how many reported 1-sigma position errors widen every position bound (as the edge's
        # association gate, v2x.agents.platform).
        "mbd_sigmas": 3.0,
        # The kinematic position checks (position_jump, position_speed, overlap) judge only positions
        # reported at least this accurate (95 % radius, m: T/CSAE 53's lane-level 1.5 m, FCW's figure). A
        # receiver in a street canyon jumps by 10-100 m (NLOS) while reporting metres; judging it would make
        # a liar of an honest car with a bad fix.
        "mbd_required_accuracy_m": 1.5,
        # Our choice: claims are compared with others (boxes, roadside perception) at the host's time only
        # for BSMs at most this old, s (F2MD compares messages up to MAX_DELTA_INTER 2 s apart without
        # extrapolation; we extrapolate, so keep it short).
        "mbd_max_age_s": 0.3,
        # Our choice: a sender well inside a roadside sensor's view and unseen by its RSU for this long and
        # at least mbd_rsu_min_frames RSM frames is judged misbehaving (edge), s. F2MD's sudden-appearance
        # window MAX_SA_TIME is 2.1 s.
        "mbd_rsu_unseen_s": 1.0,
        "mbd_rsu_min_frames": 5.0,
        # Our choice: "well inside" - this far inside the sensor's range and field of view at least (and
        # mbd_sigmas reported errors), m.
        "mbd_rsu_margin_m": 5.0,
        # Our choice: a sender seen overlapping is judged at its first BSM at least this much later, s, unless
        # by then it and the other party both say disabledVehicle: vehicles that hit each other overlap in
        # the BSMs of the collision, before they know of it, and say it from the next tick or the one after.
        "mbd_overlap_wait_s": 0.3,
        # Our choice: of two senders whose claimed boxes overlap, one is judged only if it is a newcomer: the
        # receiver heard the first BSM of its track (BSMs at most mbd_max_time_delta_s apart, by the receiver's
        # clock) at least this much later than the other's first, and at most this long before the overlap was
        # seen (it appeared on top of the other). By the receiver's times, not the BSMs' own (secMark, which
        # the sender chooses): more than the world's bound on an envelope's stated send time (a tick, 0.1 s,
        # either side of the tick) plus its delivery, so a sender cannot make itself the older party.
        # Otherwise neither is judged for it (which one lies the receiver cannot tell: attack review 13).
        "mbd_newcomer_s": 0.5,
    }
)
# The values these may take where the rule by unit (v2x.apps.thresholds.UNIT_BOUNDS) does not fit: the
# acceleration bounds divide (the speed consistency check's phases), sigmas and frames have no unit.
THRESHOLD_BOUNDS: Mapping[str, Bounds] = MappingProxyType(
    {
        "mbd_max_accel_mps2": Bounds(0.0, 30.0, above_low=True),
        "mbd_max_decel_mps2": Bounds(0.0, 30.0, above_low=True),
        "mbd_sigmas": Bounds(0.0, 10.0),
        "mbd_rsu_min_frames": Bounds(1.0, 1000.0),
    }
)

CHECKS = ("speed", "acceleration", "position_jump", "position_speed", "overlap", "rsu_unseen")


@dataclass(frozen=True)
class Verdict:
    """A sender judged misbehaving: by its BSM temporary id, the check that fired, when."""

    suspect: bytes
    check: str
    t_s: float


def _sigma(remote: RemoteState, th: Mapping[str, float]) -> float | None:
    """The sender's reported 1-sigma error, if it is accurate enough to be judged by position."""
    s = remote.sigma_major_m
    return s if s is not None and accurate_enough(s, th["mbd_required_accuracy_m"]) else None


_Speeds = TypeVar("_Speeds", float, NDArray[np.float64])


def _breakpoints(
    v0: _Speeds, v1: _Speeds, dt: _Speeds, accel: float, decel: float, vmax: float
) -> tuple[_Speeds, _Speeds, _Speeds, _Speeds, _Speeds, _Speeds]:
    """The breakpoints of ``distance_bounds``' piecewise-linear bounds (those in (0, dt) count), of floats or, the
    same operations element by element, of arrays (``_distance_bounds_many``)."""
    return (
        (v1 - v0 + decel * dt) / (accel + decel),
        (vmax - v0) / accel,
        dt - (vmax - v1) / decel,
        (v0 - v1 + accel * dt) / (accel + decel),
        v0 / decel,
        dt - v1 / accel,
    )


def distance_bounds(v0: float, v1: float, dt: float, accel: float, decel: float, vmax: float) -> tuple[float, float]:
    """(least, most) distance a road user can cover in ``dt`` going from speed ``v0`` to ``v1`` with
    acceleration at most ``accel``, deceleration at most ``decel`` and speeds in 0..``vmax``: the speed
    profile is bounded above by min(v0 + a t, v1 + d (dt - t), vmax) and below by max(v0 - d t, v1 - a (dt - t),
    0); both are integrated exactly on a fine grid of their breakpoints."""
    if dt <= 0:
        return 0.0, 0.0
    accel, decel = max(accel, 1e-9), max(decel, 1e-9)
    ts = {0.0, dt}
    for t in _breakpoints(v0, v1, dt, accel, decel, vmax):
        if 0.0 < t < dt:
            ts.add(t)
    grid = sorted(ts)
    # The trapezoids in order, the upper bound ``h`` and the lower ``lo`` evaluated once per breakpoint, the
    # sums added up from 0 in order as ``sum`` does: the same values as evaluating them at both ends of every
    # interval, at half the work and without a call per evaluation (this runs for every BSM a vehicle with
    # apps hears).
    most = least = 0.0
    prev = h0 = l0 = 0.0
    for n, t in enumerate(grid):
        h = max(0.0, min(v0 + accel * t, v1 + decel * (dt - t), vmax))
        lo = min(vmax, max(v0 - decel * t, v1 - accel * (dt - t), 0.0))
        if n:
            w = t - prev
            most += w * (h0 + h) / 2
            least += w * (l0 + lo) / 2
        prev, h0, l0 = t, h, lo
    return least, most


# A sender at rest: below this speed (the referee's standstill; a wreck is held at exactly 0).
REST_MPS = 0.1
_DISABLED = 1 << VEHICLE_EVENT_BIT["disabled"]


def crashed(old: RemoteState, new: RemoteState) -> bool:
    """Does ``new`` announce a crash since ``old``: disabledVehicle newly set (a crashed vehicle's OBU sets it,
    with the hazard lights, from its first BSM after the collision: ``v2x.agents.vehicle.WRECK_FLAGS``) and at
    rest? A collision stops a car within a tick, far beyond any braking: the speed it lost, and the short
    distance it covered, are then no evidence of a lie."""
    return bool(new.events & _DISABLED) and not old.events & _DISABLED and new.speed_mps < REST_MPS


def consistency(old: RemoteState, new: RemoteState, th: Mapping[str, float]) -> str | None:
    """The check that ``new`` fails on its own or against the same sender's ``old`` BSM, or None. Between the
    last BSM before a crash and the first after it (:func:`crashed`) the speed change and the position-speed
    bounds are not applied (a claimed acceleration out of bounds, a speed too high and a position jump still
    are)."""
    vmax, acc, dec, rng = (
        th["mbd_max_speed_mps"],
        th["mbd_max_accel_mps2"],
        th["mbd_max_decel_mps2"],
        th["mbd_mgt_rng_mps2"],
    )
    if new.speed_mps > vmax:
        return "speed"
    if new.accel_mps2 > acc + rng or new.accel_mps2 < -(dec + rng):
        return "acceleration"
    dt = new.t_s - old.t_s
    if not 0.0 < dt <= th["mbd_max_time_delta_s"]:
        return None
    dv = new.speed_mps - old.speed_mps
    crash = crashed(old, new)
    if not crash and (dv > (acc + rng) * dt or -dv > (dec + rng) * dt):
        return "acceleration"
    s0, s1 = _sigma(old, th), _sigma(new, th)
    if s0 is None or s1 is None:
        return None
    noise = th["mbd_sigmas"] * math.hypot(s0, s1)
    d = math.hypot(new.x - old.x, new.y - old.y)
    if d > vmax * dt + th["mbd_mgt_rng_up_m"] + noise:
        return "position_jump"
    if crash:
        return None
    least, most = distance_bounds(old.speed_mps, new.speed_mps, dt, acc, dec, vmax)
    vmin = min(old.speed_mps, new.speed_mps)
    down = max(0.0, th["mbd_mgt_rng_down_m"] + 0.3571 * vmin - 0.01694 * vmin * vmin)  # F2MD's margin
    if d < least - down - noise or d > most + th["mbd_mgt_rng_up_m"] + noise:
        return "position_speed"
    return None


# Fewer pairs than this are checked one by one (``consistency_many``): numpy's cost per call outweighs a handful.
_MANY = 8


def consistency_many(pairs: Sequence[tuple[RemoteState, RemoteState]], th: Mapping[str, float]) -> list[str | None]:
    """:func:`consistency` of each ``(old, new)`` pair, in one numpy pass: the same answers. The arithmetic is the
    scalar one, operation for operation in the same order on the same IEEE doubles (``math.hypot`` as there), its
    ``min``/``max`` as ``np.where`` on the same comparisons (Python's choice between equal values and with NaN), and
    ``distance_bounds`` as ``_distance_bounds_many``; a pair with a value that is not finite, where a value computed
    on the way is not (or thresholds that are not) goes through :func:`consistency` itself."""
    names = (
        "mbd_max_speed_mps", "mbd_max_accel_mps2", "mbd_max_decel_mps2", "mbd_mgt_rng_mps2", "mbd_max_time_delta_s",
        "mbd_sigmas", "mbd_mgt_rng_up_m", "mbd_mgt_rng_down_m", "mbd_required_accuracy_m",
    )  # fmt: skip
    if len(pairs) < _MANY or not all(math.isfinite(th[k]) for k in names):
        return [consistency(old, new, th) for old, new in pairs]
    vmax, acc, dec, rng = (
        th["mbd_max_speed_mps"],
        th["mbd_max_accel_mps2"],
        th["mbd_max_decel_mps2"],
        th["mbd_mgt_rng_mps2"],
    )
    up, down_m, k_sig = th["mbd_mgt_rng_up_m"], th["mbd_mgt_rng_down_m"], th["mbd_sigmas"]
    values = [(o.t_s, o.x, o.y, o.speed_mps, n.t_s, n.x, n.y, n.speed_mps, n.accel_mps2) for o, n in pairs]
    cols = np.fromiter(itertools.chain.from_iterable(values), dtype=np.float64, count=9 * len(pairs)).reshape(-1, 9)
    with np.errstate(all="ignore"):  # (the values that are not finite are checked one by one)
        t0, x0, y0, v0, t1, x1, y1, v1, a1 = cols.T
        finite = np.isfinite(cols).all(axis=1)
        speed = v1 > vmax
        accel = (a1 > acc + rng) | (a1 < -(dec + rng))
        dt = t1 - t0
        window = (dt > 0.0) & (dt <= th["mbd_max_time_delta_s"])
        dv = v1 - v0
        change = (dv > (acc + rng) * dt) | (-dv > (dec + rng) * dt)
        # The reported errors (``_sigma``: one answer per value) and the distances, as the scalar code takes them.
        sigma: dict[float | None, float | None] = {}
        for o, n in pairs:
            for r in (o, n):
                if r.sigma_major_m not in sigma:
                    sigma[r.sigma_major_m] = _sigma(r, th)
        # (NaN for None: a sigma ``_sigma`` returns is finite.)
        s0 = [math.nan if (s := sigma[o.sigma_major_m]) is None else s for o, _ in pairs]
        s1 = [math.nan if (s := sigma[n.sigma_major_m]) is None else s for _, n in pairs]
        judged = ~np.isnan(np.array(s0, dtype=np.float64)) & ~np.isnan(np.array(s1, dtype=np.float64))
        position = finite & ~speed & ~accel & window & ~change & judged
        rows = np.flatnonzero(position)
        noise = np.array([k_sig * math.hypot(s0[k], s1[k]) for k in rows.tolist()], dtype=np.float64)
        dx, dy = (x1 - x0)[rows].tolist(), (y1 - y0)[rows].tolist()
        d = np.array([math.hypot(a, b) for a, b in zip(dx, dy, strict=True)], dtype=np.float64)
        pv0, pv1, pdt = v0[rows], v1[rows], dt[rows]
        jump = d > vmax * pdt + up + noise
        least, most, exact = _distance_bounds_many(pv0, pv1, pdt, acc, dec, vmax)
        vmin = np.where(pv1 < pv0, pv1, pv0)  # min(old, new)
        margin = down_m + 0.3571 * vmin - 0.01694 * vmin * vmin
        down = np.where(margin > 0.0, margin, 0.0)  # max(0.0, margin)
        off = (d < least - down - noise) | (d > most + up + noise)
    out: list[str | None] = [None] * len(pairs)
    fallback: NDArray[np.bool_] = np.logical_not(finite)
    fallback[rows] |= ~(exact & np.isfinite(noise) & np.isfinite(d))
    speed_l, accel_l, window_l, change_l = speed.tolist(), accel.tolist(), window.tolist(), change.tolist()
    for k in range(len(pairs)):
        if speed_l[k]:
            out[k] = "speed"
        elif accel_l[k] or (window_l[k] and change_l[k]):
            out[k] = "acceleration"
    for k, j, o in zip(rows.tolist(), jump.tolist(), off.tolist(), strict=True):
        out[k] = "position_jump" if j else "position_speed" if o else None
    for k, (o, n) in enumerate(pairs):  # a crash (rare): as the scalar check takes it
        if n.events & _DISABLED and crashed(o, n):
            fallback[k] = True
    for k in np.flatnonzero(fallback).tolist():
        out[k] = consistency(pairs[k][0], pairs[k][1], th)
    return out


def _distance_bounds_many(
    v0: NDArray[np.float64], v1: NDArray[np.float64], dt: NDArray[np.float64], accel: float, decel: float, vmax: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """:func:`distance_bounds` of each ``(v0, v1, dt)`` (every ``dt`` > 0), the same floats: (least, most, where
    they are exact). Each row's grid is its breakpoints sorted, with the candidates outside (0, dt) made copies of
    ``dt`` rather than left out (an interval of width 0 adds exactly 0 to a sum, which never holds -0.0); the
    trapezoids are added up in grid order, as there. A row with a breakpoint that is not finite is not exact (the
    scalar code's set and sort of a NaN are not copied)."""
    accel, decel = max(accel, 1e-9), max(decel, 1e-9)
    with np.errstate(all="ignore"):
        cands = _breakpoints(v0, v1, dt, accel, decel, vmax)
        exact: NDArray[np.bool_] = np.asarray(np.isfinite(np.array(cands)).all(axis=0))
        grid = np.column_stack([np.zeros_like(dt), dt, *(np.where((c > 0.0) & (c < dt), c, dt) for c in cands)])
        grid.sort(axis=1)
        # At every point of every grid at once: h = max(0.0, min(v0 + accel t, v1 + decel (dt - t), vmax)) and
        # lo = min(vmax, max(v0 - decel t, v1 - accel (dt - t), 0.0)), each min and max as Python's (the first of
        # equal values); then the trapezoids, each added to the sums in grid order from 0.0, as there.
        v0c, v1c, rest = v0[:, None], v1[:, None], dt[:, None] - grid
        a, b = v0c + accel * grid, v1c + decel * rest
        h = np.where(b < a, b, a)
        h = np.where(vmax < h, vmax, h)
        h = np.where(h > 0.0, h, 0.0)
        a, b = v0c - decel * grid, v1c - accel * rest
        lo = np.where(b > a, b, a)
        lo = np.where(lo < 0.0, 0.0, lo)
        lo = np.where(lo < vmax, lo, vmax)
        w = grid[:, 1:] - grid[:, :-1]
        up = w * (h[:, :-1] + h[:, 1:]) / 2
        down = w * (lo[:, :-1] + lo[:, 1:]) / 2
        most, least = np.zeros_like(dt), np.zeros_like(dt)
        for n in range(w.shape[1]):
            most = most + up[:, n]
            least = least + down[:, n]
    exact &= np.isfinite(least) & np.isfinite(most)
    return least, most, exact


def _corners(p: Participant, shrink: float) -> list[tuple[float, float]] | None:
    """The corners of ``p``'s box, each side moved in by ``shrink``; None when nothing is left."""
    hl, hw = p.length_m / 2 - shrink, p.width_m / 2 - shrink
    if hl <= 0 or hw <= 0:
        return None
    c, s = math.cos(p.heading_rad), math.sin(p.heading_rad)
    return [(p.x + c * a - s * b, p.y + s * a + c * b) for a, b in ((hl, hw), (-hl, hw), (-hl, -hw), (hl, -hw))]


def _remote_corners(chosen: Sequence[tuple[RemoteState, float]], t_s: float) -> tuple[NDArray[np.float64], list[int]]:
    """The corners of each sender's box at ``t_s`` (n, 4, 2), each side moved in by its shrink, and the indices
    of those with something left: for every one, bit for bit what ``_corners(Participant.from_remote("", r,
    t_s), shrink)`` gives, in one numpy pass instead of a Python call per sender (the same IEEE operations in
    the same order, ``RemoteState.extrapolated``'s and ``_corners``'s; cosine and sine from ``math``, as there).
    The rows of the boxes with nothing left are not to be used."""
    if not chosen:
        return np.zeros((0, 4, 2)), []
    rows = [(r.t_s, r.x, r.y, r.speed_mps, r.accel_mps2, r.length_m, r.width_m, shrink) for r, shrink in chosen]
    # (np.fromiter of the values in a row: the same array as np.array of the rows, made in half the time)
    cols = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.float64, count=8 * len(rows)).reshape(-1, 8)
    t_r, x, y, v0, a, length, width, shrink = cols.T
    c = np.array([math.cos(r.heading_rad) for r, _ in chosen], dtype=np.float64)
    s = np.array([math.sin(r.heading_rad) for r, _ in chosen], dtype=np.float64)
    age = t_s - t_r
    dt = np.where(age > 0.0, age, 0.0)  # max(0.0, age)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        stops = (a < 0) & (v0 + a * dt < 0)
        dist = np.where(stops, v0 * (v0 / -a) / 2, v0 * dt + 0.5 * a * dt * dt)
        cx, cy = x + dist * c, y + dist * s
        hl, hw = length / 2 - shrink, width / 2 - shrink
        corners = np.empty((len(chosen), 4, 2), dtype=np.float64)
        for n, (sa, sb) in enumerate(((1, 1), (-1, 1), (-1, -1), (1, -1))):
            da, db = (hl if sa > 0 else -hl), (hw if sb > 0 else -hw)
            corners[:, n, 0] = cx + c * da - s * db
            corners[:, n, 1] = cy + s * da + c * db
    kept: list[int] = np.flatnonzero(~((hl <= 0) | (hw <= 0))).tolist()
    return corners, kept


def boxes_overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
    """Do two convex polygons (corners in order) overlap (separating axis test; touching is not overlap)?"""
    for poly in (a, b):
        for k in range(len(poly)):
            (x0, y0), (x1, y1) = poly[k], poly[(k + 1) % len(poly)]
            nx, ny = y0 - y1, x1 - x0
            pa = [nx * x + ny * y for x, y in a]
            pb = [nx * x + ny * y for x, y in b]
            if max(pa) <= min(pb) or max(pb) <= min(pa):
                return False
    return True


class Detector:
    """One host's misbehaviour detection over the BSM senders it hears (see the module's docstring)."""

    def __init__(self, thresholds: Mapping[str, float]) -> None:
        self.th = thresholds
        self.last: dict[bytes, RemoteState] = {}  # each sender's latest BSM checked
        self.judged: dict[bytes, Verdict] = {}  # senders judged misbehaving, with the first verdict
        # Senders seen overlapping, judged once they send their next BSM unless it explains the overlap (a
        # crash): the time of the BSM that overlapped, and the other party (None: the host).
        self.overlapping: dict[bytes, tuple[float, bytes | None]] = {}
        # Per sender, by the receiver's clock (``observe``'s time, never a BSM's own): when the first BSM of its
        # current track was heard, and its latest (a gap over mbd_max_time_delta_s starts a new track).
        self.since: dict[bytes, float] = {}
        self.heard_at: dict[bytes, float] = {}
        # ``prepare``'s answers: per BSM (by identity) about to be observed, (the one before it, it, its check).
        self._ahead: dict[int, tuple[RemoteState, RemoteState, str | None]] = {}

    def excluded(self, temp_id: bytes) -> bool:
        return temp_id in self.judged

    def judge(self, suspect: bytes, check: str, t_s: float) -> Verdict | None:
        """Record a verdict; the new one, or None if the sender was judged already."""
        if suspect in self.judged:
            return None
        verdict = Verdict(suspect, check, t_s)
        self.judged[suspect] = verdict
        return verdict

    def prepare(self, remotes: Iterable[RemoteState]) -> None:
        """Check the BSMs about to be observed (in this order: a tick's, before they are handed one by one to
        :meth:`observe`) in one batch (``consistency_many``), each against the sender's BSM before it as
        :meth:`observe` will find it. :meth:`observe` takes an answer from here only for the very BSM against the
        very one before it, and checks anything else itself: the same verdicts either way."""
        last: dict[bytes, RemoteState] = {}
        pairs: list[tuple[RemoteState, RemoteState]] = []
        for r in remotes:
            old = last.get(r.temp_id)
            if old is None:
                old = self.last.get(r.temp_id)
            if old is not None and r.t_s <= old.t_s:
                continue
            last[r.temp_id] = r
            if r.temp_id not in self.judged:
                pairs.append((old if old is not None else r, r))
        checks = consistency_many(pairs, self.th)
        self._ahead = {id(new): (old, new, check) for (old, new), check in zip(pairs, checks, strict=True)}

    def forget(self, temp_id: bytes) -> None:
        """Start the sender's track again (its BSMs so far are not its own word: relays); a verdict stands."""
        for track in (self.last, self.since, self.heard_at):
            track.pop(temp_id, None)

    def contradicts(self, remote: RemoteState) -> bool:
        """Would ``remote``, newer than the sender's latest BSM, fail a check against it (nothing recorded)?"""
        old = self.last.get(remote.temp_id)
        return old is not None and remote.t_s > old.t_s and consistency(old, remote, self.th) is not None

    def observe(self, remote: RemoteState, t_s: float) -> Verdict | None:
        """Check a BSM newer than the sender's last one, heard at ``t_s`` (the receiver's time); a verdict if it
        fails a check."""
        old = self.last.get(remote.temp_id)
        if old is not None and remote.t_s <= old.t_s:
            return None  # the same BSM heard again (PC5 and a relay), or an older one
        self.last[remote.temp_id] = remote
        heard = self.heard_at.get(remote.temp_id)
        if heard is None or not t_s - heard <= self.th["mbd_max_time_delta_s"]:
            self.since[remote.temp_id] = t_s  # a new track
        self.heard_at[remote.temp_id] = t_s
        if remote.temp_id in self.judged:
            return None
        before = old if old is not None else remote
        ahead = self._ahead.pop(id(remote), None)
        if ahead is not None and ahead[1] is remote and ahead[0] is before:
            check = ahead[2]  # (``prepare``'s answer for this very pair)
        else:
            check = consistency(before, remote, self.th)
        return self.judge(remote.temp_id, check, t_s) if check is not None else None

    def overlaps(
        self, remotes: Iterable[RemoteState], t_s: float, own: Participant | None = None, own_disabled: bool = False
    ) -> list[Verdict]:
        """Verdicts for senders whose claimed box (at ``t_s``) overlaps the host's own box ``own``, or that are
        newcomers on top of another sender: of two overlapping senders, the one whose track the host began to
        hear (``since``; a sender never observed: its BSM's time) at least ``mbd_newcomer_s`` after the other's,
        and at most ``mbd_newcomer_s`` before ``t_s``. Any other pair is judged by neither (which one lies
        the host cannot tell; two senders appearing together, or established ones that come to overlap): not
        by the BSMs' own times either, which the sender chooses (attack review 13: a liar stamping its BSMs
        early on top of a real car had the real car judged, and excluded, as "the newer message").
        Vehicles that hit each other rest where they touched, and their boxes overlap in the BSMs of the
        collision, before either can say it crashed: so a sender seen overlapping is judged at its first BSM
        ``mbd_overlap_wait_s`` later (``overlapping``), unless by then it and the other party are both
        disabled (disabledVehicle set in their BSMs, or ``own_disabled`` for the host); two such wrecks are not
        judged for overlapping each other.
        Boxes shrink by ``mbd_sigmas`` reported errors; a sender without a reported accuracy is skipped, and
        so is a pair on different levels (heights known and more than ``VERTICAL_SEPARATION_M`` apart: a car on
        a flyover over another). Only boxes whose circumscribed circles meet (``_near``, ``_near_pairs``: numpy,
        a sweep in x) get the exact test: the same verdicts, without a Python test per pair of hundreds of senders.
        Every sender's box is made at once (``_remote_corners``, the corners ``_corners`` gives)."""
        k = self.th["mbd_sigmas"]
        max_age = self.th["mbd_max_age_s"]
        judged = self.judged
        remotes = list(remotes)
        out = self._overlapping_judged(remotes, t_s, own_disabled)
        waiting = self.overlapping
        chosen: list[tuple[RemoteState, float]] = []  # (sender, its box's shrink)
        sigmas: dict[float | None, float | None] = {}  # ``_sigma`` by reported error: one answer per value
        for r in remotes:
            s = r.sigma_major_m
            sigma = sigmas[s] if s in sigmas else sigmas.setdefault(s, _sigma(r, self.th))
            if r.temp_id in judged or sigma is None or t_s - r.t_s > max_age:
                continue
            chosen.append((r, k * sigma))
        every, kept = _remote_corners(chosen, t_s)  # every box at once (the corners ``_corners`` gives)
        # (Each box by its row of ``every``: the boxes of the senders compared with each other taken in one
        # indexing, not a numpy view per sender put back together.)
        boxes = [(chosen[i][0], i) for i in kept]
        mine = _corners(own, k * own.sigma_m if math.isfinite(own.sigma_m) else 0.0) if own is not None else None
        if mine is not None and own is not None:
            near_me = _near(every[kept], mine)
            for (r, i), near in zip(boxes, near_me, strict=True):
                wrecks = own_disabled and bool(r.events & _DISABLED)
                if near and not wrecks and not _levels_apart(r.z_m, own.z_m) and boxes_overlap(every[i].tolist(), mine):
                    waiting.setdefault(r.temp_id, (r.t_s, None))
        boxes = [(r, i) for r, i in boxes if r.temp_id not in waiting]
        since = self.since
        start = [since.get(r.temp_id, r.t_s) for r, _ in boxes]
        order = sorted(range(len(boxes)), key=lambda n: (start[n], boxes[n][0].temp_id))
        boxes, start = [boxes[n] for n in order], [start[n] for n in order]
        newcomer = self.th["mbd_newcomer_s"]
        corners = every[[i for _, i in boxes]].reshape(-1, 4, 2)
        candidates = _near_pairs(corners)
        for n, (r, _) in enumerate(boxes):
            if not t_s - start[n] <= newcomer:
                continue  # no newcomer: judged for overlapping nobody
            for m in candidates[n]:
                other = boxes[m][0]
                if (
                    start[n] - start[m] >= newcomer
                    and other.temp_id not in waiting
                    and not (r.events & other.events & _DISABLED)
                    and not _levels_apart(r.z_m, other.z_m)
                    and boxes_overlap(corners[n].tolist(), corners[m].tolist())
                ):
                    waiting[r.temp_id] = (r.t_s, other.temp_id)
                    break
        return out

    def _overlapping_judged(self, remotes: list[RemoteState], t_s: float, own_disabled: bool) -> list[Verdict]:
        """Verdicts on the senders seen overlapping (``overlapping``) that have sent a BSM ``mbd_overlap_wait_s``
        later: judged, unless they and the other party are now both disabled (a crash)."""
        if not self.overlapping:
            return []
        latest = {r.temp_id: r for r in remotes}
        out = []
        for suspect, (seen_t, other) in list(self.overlapping.items()):
            r = latest.get(suspect)
            if r is None or r.t_s < seen_t + self.th["mbd_overlap_wait_s"] - 1e-9:
                continue  # no BSM late enough since (or not heard this tick)
            del self.overlapping[suspect]
            if other is None:
                other_disabled = own_disabled
            else:
                o = latest.get(other)
                other_disabled = o is not None and bool(o.events & _DISABLED)
            if r.events & _DISABLED and other_disabled:
                continue  # they hit each other
            v = self.judge(suspect, "overlap", t_s)
            if v is not None:
                out.append(v)
        return out


def _circles(
    boxes: Sequence[list[tuple[float, float]]] | NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Each box's centre (n, 2) and the radius of the circle about it through its farthest corner, a little
    enlarged (1 um) so that rounding never leaves out a pair that overlaps."""
    corners = np.array(boxes, dtype=np.float64).reshape(-1, 4, 2)
    centre = corners.mean(axis=1)
    radius = np.sqrt(((corners - centre[:, None, :]) ** 2).sum(axis=2)).max(axis=1) + 1e-6
    return centre, radius


def _near(
    boxes: Sequence[list[tuple[float, float]]] | NDArray[np.float64], box: list[tuple[float, float]]
) -> list[bool]:
    """Per box of ``boxes``: could it overlap ``box`` (their circles ``_circles`` meet)? Boxes whose circles do
    not meet cannot overlap, so the exact test (``boxes_overlap``) is left to the others."""
    if not len(boxes):
        return []
    centre, radius = _circles(boxes)
    (c0,), (r0,) = _circles([box])
    gap = np.hypot(centre[:, 0] - c0[0], centre[:, 1] - c0[1])
    near: list[bool] = (gap <= radius + r0).tolist()
    return near


def _near_pairs(boxes: Sequence[list[tuple[float, float]]] | NDArray[np.float64]) -> list[list[int]]:
    """Per box, the earlier boxes (ascending) whose circles meet its own (``_near``): the only ones it could
    overlap. In numpy, so that hundreds of senders do not cost a Python test per pair: the pairs whose centres
    are close enough in x (a sweep over the boxes sorted by x) get the test of ``_near_pairs_dense``, the same
    arithmetic on the same values, so the same pairs meet (two circles meet only if the centres' gap in x, at
    most their distance, is within the sum of the radii; the window is widened by far more than rounding)."""
    if len(boxes) < 2:
        return [[] for _ in boxes]
    centre, radius = _circles(boxes)
    if not (np.isfinite(centre).all() and np.isfinite(radius).all()):
        return _near_pairs_dense(centre, radius)
    n = len(radius)
    order = np.argsort(centre[:, 0], kind="stable")
    xs = centre[order, 0]
    slack = 1e-6 * (1.0 + float(np.abs(xs).max()))
    # Each box (in x order) against the later ones within its reach in x.
    stop = np.searchsorted(xs, xs + radius[order] + float(radius.max()) + slack, side="right")
    count = np.maximum(stop - np.arange(1, n + 1), 0)
    first = np.repeat(np.arange(n), count)
    second = first + 1 + np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    i, j = order[first], order[second]
    a, b = np.maximum(i, j), np.minimum(i, j)  # the later box and the earlier one
    meet = np.hypot(centre[a, 0] - centre[b, 0], centre[a, 1] - centre[b, 1]) <= radius[a] + radius[b]
    a, b = a[meet], b[meet]
    by_pair = np.lexsort((b, a))
    out: list[list[int]] = [[] for _ in range(n)]
    for later, earlier in zip(a[by_pair].tolist(), b[by_pair].tolist(), strict=True):
        out[later].append(earlier)
    return out


def _near_pairs_dense(centre: NDArray[np.float64], radius: NDArray[np.float64]) -> list[list[int]]:
    """``_near_pairs`` of the circles (``_circles``) by the full matrix of pairs (boxes with a value that is
    not finite, whose circles meet no other)."""
    gap = np.hypot(centre[:, None, 0] - centre[None, :, 0], centre[:, None, 1] - centre[None, :, 1])
    near = np.tril(gap <= radius[:, None] + radius[None, :], k=-1)
    rows, cols = np.nonzero(near)  # row-major: each box's earlier ones ascending
    out: list[list[int]] = [[] for _ in radius]
    for a, b in zip(rows.tolist(), cols.tolist(), strict=True):
        out[a].append(b)
    return out


def _levels_apart(a: float | None, b: float | None) -> bool:
    """Heights known and more than ``VERTICAL_SEPARATION_M`` apart: boxes that overlap in plan do not touch."""
    return a is not None and b is not None and abs(a - b) > VERTICAL_SEPARATION_M


__all__ = [
    "CHECKS",
    "THRESHOLDS",
    "THRESHOLD_BOUNDS",
    "Detector",
    "Verdict",
    "boxes_overlap",
    "consistency",
    "distance_bounds",
]
