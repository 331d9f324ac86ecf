"""Traffic model: IDM car-following and MOBIL lane changes on a lane graph, vectorised over all vehicles.

Sans-I/O: a :class:`LaneNetwork` (lanes, their successors at junctions, parallel neighbours, speed
limits, stop lines), a :class:`Traffic` state (struct of arrays, one row per vehicle) and
:func:`traffic_step`, which advances every vehicle by one tick in a compiled kernel. The same step in
plain numpy, :func:`traffic_step_numpy`, is the benchmark's baseline and the test oracle; the two agree
bit for bit. The model, its parameters and sources are in docs/CORE.md, "Traffic model".
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from v2x.core import _traffic_kernels, _traffic_numpy
from v2x.core._jit import compiled
from v2x.core._traffic_kernels import B_MAX
from v2x.core._world import ActorKind
from v2x.units import kph_to_mps

__all__ = [
    "B_MAX",
    "CLASS_PARAMS",
    "DriverParams",
    "LaneNetwork",
    "StepResult",
    "Traffic",
    "idm_acceleration",
    "traffic_step",
    "traffic_step_numpy",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@dataclass(frozen=True)
class DriverParams:
    """IDM and MOBIL parameters of one vehicle class (SI units). δ = 4 for every class."""

    length_m: float
    v0_mps: float  # desired speed (capped by the lane's speed limit)
    t_gap_s: float  # safe time headway T
    s0_m: float  # minimum gap at standstill
    a_mps2: float  # maximum acceleration
    b_mps2: float  # comfortable deceleration
    politeness: float  # MOBIL p
    a_threshold_mps2: float  # MOBIL changing threshold Δa_th
    b_safe_mps2: float  # MOBIL safe deceleration (also: the most a driver brakes for a red line)


# Sources (docs/CORE.md, "Traffic model"): car IDM row after Treiber & Kesting, "Traffic Flow Dynamics"
# (Springer 2013), Table 11.2 (v0 120 km/h, T 1.0 s, s0 2 m, a 1.0 m/s², b 1.5 m/s²). Trucks: the car row
# scaled as Treiber's own simulator does (traffic-simulation.de, js/control_gui.js: v0 × 0.7 capped at
# 80 km/h, T × 1.2, a × 0.8). MOBIL: p 0.1, Δa_th 0.4 m/s², b_safe 4 m/s² (traffic-simulation.de, the
# same file). Bus and emergency rows and all lengths are ours (lengths as TR 37.885 / v2x bench core).
CLASS_PARAMS: Mapping[ActorKind, DriverParams] = {
    ActorKind.CAR: DriverParams(5.0, kph_to_mps(120), 1.0, 2.0, 1.0, 1.5, 0.1, 0.4, 4.0),
    ActorKind.TRUCK: DriverParams(13.0, kph_to_mps(80), 1.2, 2.0, 0.8, 1.5, 0.1, 0.4, 4.0),
    ActorKind.BUS: DriverParams(12.0, kph_to_mps(80), 1.2, 2.0, 0.8, 1.5, 0.1, 0.4, 4.0),
    ActorKind.EMERGENCY: DriverParams(5.0, kph_to_mps(150), 1.0, 2.0, 1.5, 1.5, 0.1, 0.4, 4.0),
}


def _i64(x: ArrayLike) -> I64:
    return np.ascontiguousarray(x, dtype=np.int64)


def _f64(x: ArrayLike) -> F64:
    return np.ascontiguousarray(x, dtype=np.float64)


def _reciprocal(x: F64) -> F64:
    """1 / x per element (inf -> 0, 0 -> inf), read-only: the step multiplies by these rather than divide."""
    with np.errstate(divide="ignore"):
        out: F64 = 1.0 / x
    out.flags.writeable = False
    return out


@contextlib.contextmanager
def _writable(arr: F64) -> Iterator[F64]:
    """``arr`` (read-only, its own data) writable within the block."""
    arr.flags.writeable = True
    try:
        yield arr
    finally:
        arr.flags.writeable = False


def _inv_den(a: F64, b: F64) -> F64:
    """1 / (2 sqrt(a b)) per element, read-only: the IDM's braking-term factor (in s*)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out: F64 = 1.0 / (2.0 * np.sqrt(a * b))
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class LaneNetwork:
    """Lanes as a graph. Lane ``l`` runs from s = 0 to ``length_m[l]``; at its end (a junction) a
    vehicle continues on one of ``successors(l)`` (``succ_lane[succ_begin[l]:succ_begin[l + 1]]``; none:
    it leaves the network). ``left``/``right`` are the parallel neighbour lanes (-1 none), which share s
    (same length). ``stop_line_m`` is the position of the lane's stop line (nan: none), red or green per
    tick as the step's ``red`` argument says. Build with :meth:`build`. ``inv_speed_limit`` (1 / the limit, 0
    for none) is derived, for the step's free-road term."""

    length_m: F64
    speed_limit_mps: F64
    succ_begin: I64
    succ_lane: I64
    left: I64
    right: I64
    stop_line_m: F64
    inv_speed_limit: F64 = field(init=False, repr=False)

    def __post_init__(self) -> None:
        limit = np.array(self.speed_limit_mps, dtype=np.float64)  # own and read-only: the reciprocal follows it
        limit.flags.writeable = False
        object.__setattr__(self, "speed_limit_mps", limit)
        object.__setattr__(self, "inv_speed_limit", _reciprocal(limit))

    @property
    def n_lanes(self) -> int:
        return len(self.length_m)

    def successors(self, lane: int) -> list[int]:
        return [int(x) for x in self.succ_lane[self.succ_begin[lane] : self.succ_begin[lane + 1]]]

    @staticmethod
    def build(
        length_m: ArrayLike,
        speed_limit_mps: ArrayLike,
        successors: Sequence[Sequence[int]],
        left: ArrayLike | None = None,
        right: ArrayLike | None = None,
        stop_line_m: ArrayLike | None = None,
    ) -> LaneNetwork:
        length = _f64(length_m)
        n = len(length)
        limit = _f64(np.broadcast_to(np.asarray(speed_limit_mps, dtype=np.float64), (n,)))
        if len(successors) != n:
            raise ValueError(f"successors has {len(successors)} entries for {n} lanes")
        counts = np.array([len(x) for x in successors], dtype=np.int64)
        begin = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=begin[1:])
        succ = _i64([lane for x in successors for lane in x]) if begin[-1] else np.zeros(0, dtype=np.int64)
        lf = _i64(np.full(n, -1) if left is None else left)
        rt = _i64(np.full(n, -1) if right is None else right)
        stop = _f64(np.full(n, np.nan) if stop_line_m is None else stop_line_m)
        net = LaneNetwork(length, limit, begin, succ, lf, rt, stop)
        net.validate()
        return net

    def validate(self) -> None:
        n = self.n_lanes
        if not (np.all(self.length_m > 0) and np.all(np.isfinite(self.length_m))):
            raise ValueError("lane lengths must be finite and > 0")
        if not np.all(self.speed_limit_mps > 0):
            raise ValueError("speed limits must be > 0 (inf: none)")
        for name in ("left", "right", "stop_line_m"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} must have one entry per lane")
        if len(self.succ_lane) and (self.succ_lane.min() < 0 or self.succ_lane.max() >= n):
            raise ValueError("successor lane out of range")
        for name in ("left", "right"):
            nb = getattr(self, name)
            has = nb >= 0
            if np.any(nb >= n) or np.any(nb[has] == np.flatnonzero(has)):
                raise ValueError(f"{name} neighbour out of range or the lane itself")
            if not np.array_equal(self.length_m[nb[has]], self.length_m[has]):
                raise ValueError(f"{name} neighbours must have the same length (parallel lanes share s)")
        ok = np.isnan(self.stop_line_m) | ((self.stop_line_m >= 0) & (self.stop_line_m <= self.length_m))
        if not np.all(ok):
            raise ValueError("stop lines must lie on their lane")


_PARAM_FIELDS = ("length_m", "v0_mps", "t_gap_s", "s0_m", "a_mps2", "b_mps2")
_MOBIL_FIELDS = ("politeness", "a_threshold_mps2", "b_safe_mps2")
_DERIVED_FROM = ("v0_mps", "a_mps2", "b_mps2")  # read-only: change them with Traffic.set_params


@dataclass(eq=False)
class Traffic:
    """Every vehicle's state and parameters, one row each. ``lane`` -1: left the network (ignored).
    ``s_m`` is the front bumper's position along the lane; ``order`` the (lane, s) order of the last
    step (a hint that makes the next sort O(N); any permutation is valid). Build with :meth:`create`.

    ``inv_v0`` (1 / v0) and ``inv_den`` (1 / (2 sqrt(a b))) are derived per vehicle once, not per tick
    (a division and a square root per vehicle were a sixth of the compiled step). ``v0_mps``, ``a_mps2``
    and ``b_mps2`` are therefore read-only arrays: change them with :meth:`set_params`, which keeps the
    derived rows true."""

    lane: I64
    s_m: F64
    v_mps: F64
    length_m: F64
    v0_mps: F64
    t_gap_s: F64
    s0_m: F64
    a_mps2: F64
    b_mps2: F64
    politeness: F64
    a_threshold_mps2: F64
    b_safe_mps2: F64
    order: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    inv_v0: F64 = field(init=False, repr=False)
    inv_den: F64 = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.lane)
        if len(self.order) != n:
            self.order = np.arange(n, dtype=np.int64)
        for name in _DERIVED_FROM:  # own, read-only copies: the derived rows follow them
            arr = np.array(getattr(self, name), dtype=np.float64)
            arr.flags.writeable = False
            setattr(self, name, arr)
        self._derive()
        for f in fields(self):
            if len(getattr(self, f.name)) != n:
                raise ValueError(f"{f.name} has {len(getattr(self, f.name))} rows for {n} vehicles")

    def _derive(self) -> None:
        self.inv_v0 = _reciprocal(self.v0_mps)
        self.inv_den = _inv_den(self.a_mps2, self.b_mps2)

    def set_params(self, rows: ArrayLike, **values: ArrayLike) -> None:
        """Set parameter fields (``v0_mps=...``, ``a_mps2=...``, any of :class:`DriverParams`) of the
        vehicles in ``rows`` (an index, indices or a mask), keeping the derived rows true (those rows only:
        the background traffic sets a spawning vehicle's parameters, one call per vehicle)."""
        idx = np.atleast_1d(np.asarray(rows))
        derived = False
        for name, value in values.items():
            if name not in _PARAM_FIELDS and name not in _MOBIL_FIELDS:
                raise TypeError(f"unknown vehicle parameter {name!r}")
            if name in _DERIVED_FROM:
                with _writable(getattr(self, name)) as arr:  # its own array (__post_init__)
                    arr[idx] = value
                derived = True
            else:
                getattr(self, name)[idx] = value
        if derived:  # element by element the same as _derive's whole-table values
            with _writable(self.inv_v0) as inv_v0, _writable(self.inv_den) as inv_den:
                inv_v0[idx] = _reciprocal(self.v0_mps[idx])
                inv_den[idx] = _inv_den(self.a_mps2[idx], self.b_mps2[idx])

    def __len__(self) -> int:
        return len(self.lane)

    @staticmethod
    def create(
        lane: ArrayLike,
        s_m: ArrayLike,
        v_mps: ArrayLike,
        kind: ArrayLike | ActorKind = ActorKind.CAR,
        **overrides: ArrayLike,
    ) -> Traffic:
        """Vehicles of the given kinds (CAR, TRUCK, BUS or EMERGENCY) with the parameters of
        :data:`CLASS_PARAMS`; any field can be
        overridden (a scalar or one value per vehicle), e.g. ``v0_mps=30.0``."""
        ln = _i64(lane)
        n = len(ln)
        kinds = np.broadcast_to(np.asarray(kind, dtype=np.int64), (n,))
        unknown = sorted(set(kinds.tolist()) - {int(k) for k in CLASS_PARAMS})
        if unknown:
            raise ValueError(f"no traffic parameters for actor kind(s) {unknown} (vehicles only)")
        cols: dict[str, Any] = {}
        for name in (*_PARAM_FIELDS, *_MOBIL_FIELDS):
            table = np.array([getattr(CLASS_PARAMS[ActorKind(k)], name) for k in kinds])
            cols[name] = _f64(table) if n else np.zeros(0)
        for name, value in overrides.items():
            if name not in cols:
                raise TypeError(f"unknown vehicle field {name!r}")
            cols[name] = _f64(np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)))
        s = _f64(s_m) + 0.0  # -0.0 -> 0.0
        v = _f64(v_mps).copy()
        if np.any(s < 0) or np.any(v < 0) or not (np.all(np.isfinite(s)) and np.all(np.isfinite(v))):
            raise ValueError("s and v must be finite and >= 0")
        return Traffic(ln.copy(), s, v, **cols)

    def copy(self) -> Traffic:
        return Traffic(**{f.name: getattr(self, f.name).copy() for f in fields(self) if f.init})


@dataclass(frozen=True)
class StepResult:
    """Per vehicle: the acceleration applied this tick, the leader (the vehicle ahead whose rear bumper is
    nearest: the next one unless boxes overlap) and bumper-to-bumper gap at the start of the tick (before
    lane changes; -1 / inf if none within the next junction) and the lane change made (+1 left, -1 right,
    0)."""

    acc_mps2: F64
    leader: I64
    gap_m: F64
    lane_change: NDArray[np.int8]


_Step = Callable[..., bool | None]
_OFF_NETWORK = "vehicle on a lane the network does not have"


@dataclass(frozen=True, eq=False)
class _Workspace:
    """The compiled step's scratch arrays for one :class:`Traffic` (rows: ``_traffic_kernels.WF_*`` ...)."""

    wf: F64
    wi: I64
    wl: I64

    net: LaneNetwork  # the network the kept next lanes (row WI_NEXT) belong to

    @staticmethod
    def for_net(n: int, net: LaneNetwork) -> _Workspace:
        k = _traffic_kernels
        wi = np.empty((k.N_WI, n), dtype=np.int64)
        wi[k.WI_NEXT] = -1  # no next lane kept yet
        wl = np.empty((k.N_WL, net.n_lanes + 2), dtype=np.int64)
        wl[k.WL_COUNT] = -1  # no lane counts kept yet
        wl[k.WL_FRONT] = -1  # no front-most vehicle's next lane kept yet
        return _Workspace(np.empty((k.N_WF, n)), wi, wl, net)


# Each Traffic's workspace, reused from tick to tick (dropped with the Traffic).
_WORK: weakref.WeakKeyDictionary[Traffic, _Workspace] = weakref.WeakKeyDictionary()


def _workspace(traffic: Traffic, net: LaneNetwork) -> tuple[F64, I64, I64]:
    ws = _WORK.get(traffic)
    if ws is None or ws.wf.shape[1] != len(traffic) or ws.net is not net:
        ws = _Workspace.for_net(len(traffic), net)
        _WORK[traffic] = ws
    return ws.wf, ws.wi, ws.wl


def _run(
    step: _Step,
    net: LaneNetwork,
    traffic: Traffic,
    red: ArrayLike | None,
    dt: float,
    tick: int,
    work: tuple[Any, ...] = (),
    checks_lanes: bool = False,
) -> StepResult:
    """Check the arguments, allocate the results and call ``step``. ``checks_lanes``: the step itself
    returns False, having changed nothing, for a vehicle on a lane the network does not have (the
    compiled one finds it in its first pass over the lanes, which costs less than a separate max)."""
    n = len(traffic)
    if red is None:
        red_a = np.zeros(net.n_lanes, dtype=np.bool_)
    else:
        red_a = np.ascontiguousarray(red, dtype=np.bool_)
        if red_a.shape != (net.n_lanes,):
            raise ValueError(f"red wants one flag per lane ({net.n_lanes}), got shape {red_a.shape}")
    if not checks_lanes and n and (traffic.lane.max() >= net.n_lanes):
        raise ValueError(_OFF_NETWORK)
    acc = np.empty(n)
    leader = np.empty(n, dtype=np.int64)
    gap = np.empty(n)
    change = np.empty(n, dtype=np.int8)
    t = traffic
    ok = step(
        net.length_m,
        net.inv_speed_limit,
        net.succ_begin,
        net.succ_lane,
        net.left,
        net.right,
        net.stop_line_m,
        red_a,
        t.lane,
        t.s_m,
        t.v_mps,
        t.length_m,
        t.inv_v0,
        t.t_gap_s,
        t.s0_m,
        t.a_mps2,
        t.inv_den,
        t.politeness,
        t.a_threshold_mps2,
        t.b_safe_mps2,
        t.order,
        float(dt),
        int(tick),
        acc,
        leader,
        gap,
        change,
        *work,
    )
    if ok is not None and not ok:
        raise ValueError(_OFF_NETWORK)
    return StepResult(acc, leader, gap, change)


def traffic_step(
    net: LaneNetwork, traffic: Traffic, red: ArrayLike | None = None, dt: float = 0.1, tick: int = 0
) -> StepResult:
    """Advance every vehicle by ``dt`` (compiled). Updates ``traffic`` in place.

    ``red``: one flag per lane, its stop line is red this tick (None: all green). ``tick``: the tick
    number; MOBIL considers changes to the left on even ticks and to the right on odd ones."""
    work = _workspace(traffic, net)
    return _run(compiled(_traffic_kernels.traffic_step), net, traffic, red, dt, tick, work, checks_lanes=True)


def traffic_step_numpy(
    net: LaneNetwork, traffic: Traffic, red: ArrayLike | None = None, dt: float = 0.1, tick: int = 0
) -> StepResult:
    """:func:`traffic_step` in plain numpy (the baseline and test oracle; same results bit for bit)."""
    return _run(_traffic_numpy.traffic_step, net, traffic, red, dt, tick)


def idm_acceleration(
    v: ArrayLike,
    v0: ArrayLike,
    t_gap: ArrayLike,
    s0: ArrayLike,
    a: ArrayLike,
    b: ArrayLike,
    gap: ArrayLike = math.inf,
    dv: ArrayLike = 0.0,
) -> F64:
    """The IDM acceleration as the step computes it (δ = 4, clamped to -B_MAX); no leader: gap inf."""
    v_, v0_, t_, s0_, a_, b_, g_, dv_ = np.broadcast_arrays(
        *(np.asarray(x, dtype=np.float64) for x in (v, v0, t_gap, s0, a, b, gap, dv))
    )
    return _traffic_numpy.idm(v_, v0_, t_, s0_, a_, b_, g_, dv_)
