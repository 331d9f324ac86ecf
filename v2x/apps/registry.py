"""The application registry: one open set of V2X applications (on board and on the edge), each declared once,
next to its code, in the module that implements it.

An application module declares its applications in a module attribute ``APPS`` (a sequence of
:class:`AppSpec`): the name scenario files use ("fcw"), the wire code (``APP_FCW`` in testbed_pb2, the proto
enum value ``APP_`` + the name in capitals), where it runs, the messages it consumes, its thresholds with
their defaults (their sources in comments beside them), the figure its warnings carry, its report colour,
how the driver reacts to it, and a factory for the object that evaluates it. Everything else - the scenario
schema's app names, the loader's threshold names, the report's colours and legend, the result's figure
keys - is read from here.

Where the registry finds applications, in this order (the order on-board apps are evaluated in):

1. the built-in modules, :data:`BUILTIN_MODULES`;
2. installed packages that declare an entry point in the group ``v2x.apps`` (sorted by entry point name),
   whose object is a module with ``APPS`` or a sequence of :class:`AppSpec`, e.g. in a user package's
   pyproject.toml: ``[project.entry-points."v2x.apps"] tjw = "my_package.tjw"``.

Apps are evaluated together with their ``family``: several apps that one mechanism serves (EBW, AVW, CLW and
EVW on the BSM event flags) are one on-board object, created with the names of the family's apps a vehicle
runs.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from importlib import metadata
from types import MappingProxyType, ModuleType
from typing import Literal, Protocol, TypeAlias

from v2x.apps.host import Host, Participant
from v2x.wire import testbed_pb2
from v2x.wire.bsm import RemoteState
from v2x.wire.day2 import Coordination, Intention, PlannedPoint, VehicleRequest
from v2x.wire.map_spat import Approach, Interval
from v2x.wire.rsi import RoadEvent, RoadSign

#: The modules of the built-in applications, in evaluation order (apps within a module: declaration order).
BUILTIN_MODULES = (
    "v2x.apps.collision",  # fcw, icw
    "v2x.apps.vrucw",
    "v2x.apps.hlw",
    "v2x.apps.road_signs",  # ivs, slw
    "v2x.apps.vehicle_events",  # ebw, avw, clw, evw
    "v2x.apps.rlvw",
    "v2x.apps.glosa",
    "v2x.apps.lta",
    "v2x.apps.blind_spot",  # bsw, lcw
    "v2x.apps.dnpw",
    "v2x.apps.sds",
    "v2x.apps.tjw",
    "v2x.apps.svp",
    "v2x.apps.clc",  # clc, clc_coord
    "v2x.apps.platoon",
)
ENTRY_POINT_GROUP = "v2x.apps"
DECLARATION = "APPS"  # the module attribute that holds a module's AppSpecs

Message = Literal["bsm", "rsm", "rsi", "map", "spat", "ssm", "psm", "vir", "rsc", "clpmm"]
MESSAGES: tuple[Message, ...] = ("bsm", "rsm", "rsi", "map", "spat", "ssm", "psm", "vir", "rsc", "clpmm")
AppCode: TypeAlias = testbed_pb2.Application.ValueType
Severity: TypeAlias = testbed_pb2.Severity.ValueType
TimeLabel: TypeAlias = Literal["TTC", "TTI"]
RouteAhead: TypeAlias = Callable[[float], tuple[float, float, float]]  # metres ahead -> (x, y, heading_rad)
#: How finely the on-board apps sample the host's route ahead (``route_points``): LTA its path through the box,
#: VRUCW and SDS the path they predict the host along.
ROUTE_STEP_M = 1.0


def route_points(route_ahead: RouteAhead, start_m: float, length_m: float) -> list[tuple[float, float]]:
    """The host's route (``OnBoardView.route_ahead``) from ``start_m`` to ``start_m + length_m`` ahead of its
    centre, as evenly spaced points at most ``ROUTE_STEP_M`` apart (both ends included, at least two)."""
    n = max(2, math.ceil(length_m / ROUTE_STEP_M) + 1)
    return [route_ahead(start_m + k * length_m / (n - 1))[:2] for k in range(n)]


class RunsOn(Enum):
    VEHICLE = "vehicle"  # on board a road user (OBU)
    EDGE = "edge"  # on the edge/cloud platform, which sends its warnings over Uu


class Reaction(Enum):
    """How the driver model (v2x/apps/driver.py) reacts to an app's advisory."""

    WARNING = "warning"  # brake to a stop (Driver.on_warning), if the severity is warning or higher; once per
    # validity period per (app, other)
    SPEED_CAP = "speed_cap"  # keep to the advisory's figure, a speed (Driver.on_speed_cap); once per validity
    SPEED_ADVICE = "speed_advice"  # follow the advisory's figure, a speed (Driver.on_advice); every time advised
    SHOWN_SIGN = "shown_sign"  # keep to the sign's speed (Raised.keep_to_mps), else the driver's caution
    # speed (Driver.on_speed_cap); every time a sign is shown
    ABORT_MANOEUVRE = "abort_manoeuvre"  # abandon the lane change / overtake the turn signal announced
    # (Driver.on_abort), if the severity is warning or higher; once per validity period per (app, other)


@dataclass(frozen=True)
class Figure:
    """The figure an app's advisories carry (Advisory.figure_name), as results and reports show it."""

    name: str  # e.g. "gap_m"
    label: str  # e.g. "gap"
    unit: str  # e.g. "m"


@dataclass(frozen=True)
class Raised:
    """An advisory an app raises; the wire code, severity and figure name come from its AppSpec."""

    app: str  # the app's name (a family's object raises for each of its apps)
    other: str  # what it is about, as the app names it (a BSM id in hex, an RSI item key, an intersection)
    ttc_s: float = 0.0
    figure: float = 0.0
    conflict_type: str = ""
    keep_to_mps: float | None = None  # Reaction.SHOWN_SIGN: the sign's speed, if it has one


@dataclass(frozen=True)
class Addressed:
    """An edge app's advisory for one vehicle (``target``: the road user's key as the platform knows it)."""

    target: str
    raised: Raised


@dataclass(frozen=True)
class Grant:
    """A roadside unit's answer to the host's signal priority request (an RSC drive suggestion addressed to
    it): the green granted at the stop line, as absolute simulation times."""

    rsu_id: bytes  # the RSC sender's temporary id
    req_id: int
    heard_at_s: float
    window_s: tuple[float, float]


@dataclass(frozen=True)
class Manoeuvre:
    """The lane change the host plans or has under way (its driver's plan: a scripted ``lane_change``), as
    on-board apps that announce it (CLC's VIR) see it."""

    lane: str  # the lane it moves onto
    lane_number: int  # that lane's number (1.., its place in the road's lanes; 0 unknown), as VIR sends it
    start_s: float  # when the sideways move starts (the turn signal goes on earlier)
    end_s: float  # when it is on the lane
    offset_m: float  # where it ends: left (negative: right) of the host's own line (route_ahead), metres


@dataclass(frozen=True)
class Suggestion:
    """A drive suggestion for the host in a roadside coordination message (Day-2 RSC), as heard."""

    sender: str  # the RSC's sender (temporary id, hex)
    t_s: float  # the RSC's time (its windows and life time count from it)
    coordination: Coordination


@dataclass(frozen=True)
class Intends:
    """What an on-board app asks its vehicle to announce in a VIR (Day-2): the vehicle adds its id, position
    and the time, and sends it over PC5 and, ``to_platform``, over Uu to the platform (whose apps serve it:
    CLC's coordinator) too; SVP's request is for the roadside unit in range, over PC5 only."""

    behaviors: frozenset[str]
    path: tuple[PlannedPoint, ...]
    requests: tuple[VehicleRequest, ...]
    to_platform: bool = True


@dataclass(frozen=True)
class Suggested:
    """An edge app's drive suggestion for one vehicle (``target``: its key as the platform knows it, the
    temporary id in hex), sent in the platform's RSC (Day-2) over Uu."""

    target: str
    coordination: Coordination


@dataclass(frozen=True)
class OnBoardView:
    """What a vehicle's on-board apps see at a tick: the host and everything it has heard, still fresh."""

    host: Host
    host_party: Participant  # the host for conflict detection (key "host", velocity along its heading)
    remotes: Mapping[bytes, RemoteState]  # BSM senders, by temporary id
    perceived: Mapping[str, RemoteState]  # road users in RSMs, by {rsm id hex}/{ptcId}
    heard_events: Mapping[str, tuple[RoadEvent, float]]  # RSI road traffic events, with the time last heard
    heard_signs: Mapping[str, tuple[RoadSign, float]]  # RSI road traffic signs, with the time last heard
    approaches: Mapping[int, Sequence[Approach]]  # MAP: ingress lanes per node id
    signals: Mapping[tuple[int, int], list[Interval]]  # SPAT: (node id, phase id) -> lights ahead
    thresholds: Mapping[str, float]
    # The host's own route (its navigation's plan, what its turn signal announces): metres ahead of its
    # centre along the path it will drive -> (x, y, heading_rad) there, in the frame of ``host`` (its believed
    # position). None when the vehicle does not know it. LTA reads its turn from it, DNPW its passing zone, and
    # VRUCW and SDS predict the host along it where it bends (v2x.apps.collision.host_conflicts).
    route_ahead: RouteAhead | None = None
    # Day-2: road users other stations' sensors detected (SSM participants, by {ssm id hex}/{ptcId}) and
    # personal devices heard (PSM senders, by temporary id).
    shared: Mapping[str, RemoteState] = field(default_factory=dict)
    personal: Mapping[bytes, RemoteState] = field(default_factory=dict)
    # Day-2: RSC answers to the host's own VIR requests (signal priority grants), still standing.
    grants: Sequence[Grant] = ()
    # Day-2: the lane change the host plans or has under way, and the RSC drive suggestions addressed to it.
    manoeuvre: Manoeuvre | None = None
    suggestions: Sequence[Suggestion] = ()
    # The host's kind ("car", "bus", "emergency", ...: what its BSM declares) and the speed its driver means to
    # keep (his cruise speed; 0 unknown): SVP's request reads them (its priority, its arrival at the stop line).
    kind: str = ""
    cruise_mps: float = 0.0
    # The host's own recent track, (t, x, y) of the centre it believed itself at, oldest first (over the last
    # ``max_age_s``), and its temporary id (its BSMs' ``id``): SDS tells the host among the shared participants
    # by them (v2x.apps.sds, rule 1).
    host_track: Sequence[tuple[float, float, float]] = ()
    own_id: bytes = b""

    @property
    def road_events(self) -> dict[str, RoadEvent]:
        return {k: e for k, (e, _) in self.heard_events.items()}

    @property
    def road_signs(self) -> dict[str, RoadSign]:
        return {k: sign for k, (sign, _) in self.heard_signs.items()}

    @property
    def all_approaches(self) -> list[Approach]:
        return [ap for node in self.approaches.values() for ap in node]


class OnBoardApp(Protocol):
    """One vehicle's instance of an on-board app (or app family); keeps the app's state between ticks."""

    def evaluate(self, view: OnBoardView, t_s: float) -> Sequence[Raised | Intends]: ...


@dataclass(frozen=True)
class EdgeView:
    """What the platform's apps see at a tick: every road user it knows of, each once."""

    participants: Sequence[Participant]
    thresholds: Mapping[str, float]
    intentions: Mapping[str, Intention] = field(default_factory=dict)  # Day-2 VIR senders' latest, by key


class EdgeApp(Protocol):
    def evaluate(self, view: EdgeView, t_s: float) -> Sequence[Addressed | Suggested]: ...


@dataclass(frozen=True)
class Bounds:
    """The values a threshold may take: ``low <= value <= high`` (``low < value`` when ``above_low``: a
    divisor or a period, for which 0 is no value). A scenario file's ``thresholds`` are checked against them
    before anything runs (v2x.scenario.loader); ``v2x.apps.thresholds.BOUNDS`` gives every threshold's."""

    low: float
    high: float
    above_low: bool = False

    def admits(self, value: float) -> bool:
        if not math.isfinite(value) or value > self.high:
            return False
        return value > self.low if self.above_low else value >= self.low

    def __str__(self) -> str:
        return f"{'>' if self.above_low else '>='} {self.low:g} and <= {self.high:g}"


@dataclass(frozen=True)
class AppSpec:
    """One application's declaration."""

    name: str  # as scenario files and results name it: the proto enum value without APP_, in lower case
    code: AppCode  # testbed_pb2.APP_...
    title: str  # "forward collision warning"
    runs_on: RunsOn
    consumes: tuple[Message, ...]
    colour: str  # the report's timeline mark
    reaction: Reaction = Reaction.WARNING
    severity: Severity = testbed_pb2.SEVERITY_WARNING
    figure: Figure | None = None
    # What its advisories' ``ttc_s`` is, as results, reports and logs label it: "TTC", a time to collision with
    # the other party (both moving as they are now); "TTI", a time to reach a place: the host's to the hazard,
    # the stop line, the sign, the conflict point or the other's present position (EVW: the emergency
    # vehicle's to the host's), at the speed now. A TTI is no collision time: the other may move on at the
    # same speed or away (the app's threshold is ``*_tti_s``).
    time_label: TimeLabel = "TTC"
    thresholds: Mapping[str, float] = field(default_factory=dict)  # its own, with their defaults
    # The values its thresholds may take, where the rule by unit (v2x.apps.thresholds.UNIT_BOUNDS: a time
    # 0..3600 s, a distance 0..1000 m, ...) does not fit: a divisor or a period (> 0), a figure that sizes
    # per-tick work, a count. A name here must be one of ``thresholds``.
    threshold_bounds: Mapping[str, Bounds] = field(default_factory=dict)
    # RunsOn.VEHICLE: the family's apps the vehicle runs (registry order) -> the object that evaluates them
    onboard: Callable[[tuple[str, ...]], OnBoardApp] | None = None
    family: str = ""  # apps one on-board object evaluates together; default: the app alone
    edge: Callable[[], EdgeApp] | None = None  # RunsOn.EDGE

    @property
    def family_name(self) -> str:
        return self.family or self.name

    @property
    def figure_name(self) -> str:
        return self.figure.name if self.figure is not None else ""


class RegistryError(Exception):
    """Two apps with one name, code or colour; or an app that does not match the proto enum."""


def _declared(obj: object, where: str) -> list[AppSpec]:
    specs = getattr(obj, DECLARATION, None) if isinstance(obj, ModuleType) else obj
    if not isinstance(specs, Sequence) or not all(isinstance(s, AppSpec) for s in specs):
        raise RegistryError(f"{where}: expected a module with {DECLARATION} or a sequence of AppSpec")
    return list(specs)


def _check(specs: Sequence[AppSpec]) -> None:
    for attr in ("name", "code", "colour"):
        values = [getattr(s, attr) for s in specs]
        dup = sorted({str(v) for v in values if values.count(v) > 1})
        if dup:
            raise RegistryError(f"apps with the same {attr}: {', '.join(dup)}")
    for s in specs:
        if testbed_pb2.Application.Name(s.code) != "APP_" + s.name.upper():
            raise RegistryError(f"{s.name}: code {s.code} is {testbed_pb2.Application.Name(s.code)} in the proto enum")
        if not set(s.consumes) <= set(MESSAGES):
            raise RegistryError(f"{s.name}: consumes one of {MESSAGES}; got {s.consumes}")
        stray = sorted(set(s.threshold_bounds) - set(s.thresholds))
        if stray:
            raise RegistryError(f"{s.name}: bounds for thresholds it does not declare: {', '.join(stray)}")
        if (s.runs_on is RunsOn.VEHICLE) != (s.onboard is not None) or (s.runs_on is RunsOn.EDGE) != (
            s.edge is not None
        ):
            raise RegistryError(f"{s.name}: runs on the {s.runs_on.value}; give exactly its factory")


class EntryPoint(Protocol):
    """What the registry uses of an ``importlib.metadata.EntryPoint``."""

    @property
    def name(self) -> str: ...
    @property
    def value(self) -> str: ...
    def load(self) -> object: ...


def plugin_entry_points() -> list[EntryPoint]:
    """The installed packages' entry points in the group ``v2x.apps``, sorted by name."""
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)


@cache
def registered() -> Mapping[str, AppSpec]:
    """Every application, by name, in evaluation order: the built-in ones, then those of entry points."""
    specs = [s for module in BUILTIN_MODULES for s in _declared(importlib.import_module(module), module)]
    for ep in plugin_entry_points():
        specs += _declared(ep.load(), f"entry point {ep.name} ({ep.value})")
    _check(specs)
    return MappingProxyType({s.name: s for s in specs})


def refresh() -> None:
    """Forget the apps found, so that the next call looks again (a package installed at run time, tests).
    Tables computed from the registry at import time (thresholds.DEFAULTS, the report's colours) stay."""
    registered.cache_clear()
    _by_code.cache_clear()


@cache
def _by_code() -> Mapping[int, AppSpec]:
    return MappingProxyType({s.code: s for s in registered().values()})


def app_spec(name: str) -> AppSpec:
    """The app called ``name``; KeyError if there is none."""
    return registered()[name]


def app_by_code(code: int) -> AppSpec | None:
    """The app with wire code ``code``, or None (an enum value nobody implements)."""
    return _by_code().get(code)


def app_names(runs_on: RunsOn | None = None) -> tuple[str, ...]:
    return tuple(s.name for s in registered().values() if runs_on is None or s.runs_on is runs_on)


def app_thresholds() -> dict[str, float]:
    """Every app's thresholds with their defaults; a name two apps declare raises RegistryError."""
    out: dict[str, float] = {}
    for s in registered().values():
        twice = sorted(set(out) & set(s.thresholds))
        if twice:
            raise RegistryError(f"{s.name}: thresholds declared by another app too: {', '.join(twice)}")
        out.update(s.thresholds)
    return out


def app_threshold_bounds() -> dict[str, Bounds]:
    """The bounds apps declare for their thresholds (``AppSpec.threshold_bounds``), by threshold name."""
    return {k: b for s in registered().values() for k, b in s.threshold_bounds.items()}


def figures() -> tuple[Figure, ...]:
    """The figures apps report, each once, in registry order."""
    out: dict[str, Figure] = {}
    for s in registered().values():
        if s.figure is not None:
            seen = out.setdefault(s.figure.name, s.figure)
            if seen != s.figure:
                raise RegistryError(f"{s.name}: figure {s.figure.name} declared differently ({seen})")
    return tuple(out.values())


def figure_names() -> frozenset[str]:
    """The names of the figures apps report: the only ``Advisory.figure_name`` values the world takes
    (docs/PROTOCOL.md "Warnings"), nor a vehicle from the platform."""
    return frozenset(f.name for f in figures())


def time_label(app: str) -> TimeLabel:
    """How the warnings of ``app`` label their ``ttc_s`` (AppSpec.time_label; "TTC" for an app not registered)."""
    spec = registered().get(app)
    return spec.time_label if spec is not None else "TTC"


def onboard_apps(names: Iterable[str]) -> list[OnBoardApp]:
    """A vehicle's on-board app objects for the apps ``names`` (edge apps among them are skipped), in
    evaluation order: one per family."""
    wanted = set(names)
    chosen = [s for s in registered().values() if s.runs_on is RunsOn.VEHICLE and s.name in wanted]
    out: list[OnBoardApp] = []
    made: set[str] = set()
    for s in chosen:
        if s.family_name in made or s.onboard is None:
            continue
        made.add(s.family_name)
        out.append(s.onboard(tuple(m.name for m in chosen if m.family_name == s.family_name)))
    return out


def onboard_inputs(names: Iterable[str]) -> list[frozenset[str]]:
    """For each of ``onboard_apps(names)``, in the same order: the messages its apps consume."""
    wanted = set(names)
    chosen = [s for s in registered().values() if s.runs_on is RunsOn.VEHICLE and s.name in wanted]
    order = list(dict.fromkeys(s.family_name for s in chosen if s.onboard is not None))
    return [frozenset(m for s in chosen if s.family_name == family for m in s.consumes) for family in order]


def edge_apps(names: Iterable[str]) -> list[tuple[AppSpec, EdgeApp]]:
    """The platform's app objects for the apps ``names`` (on-board apps among them are skipped)."""
    wanted = set(names)
    return [
        (s, s.edge())
        for s in registered().values()
        if s.runs_on is RunsOn.EDGE and s.name in wanted and s.edge is not None
    ]


__all__ = [
    "BUILTIN_MODULES",
    "DECLARATION",
    "ENTRY_POINT_GROUP",
    "MESSAGES",
    "ROUTE_STEP_M",
    "Addressed",
    "AppCode",
    "AppSpec",
    "Bounds",
    "EdgeApp",
    "EdgeView",
    "EntryPoint",
    "Figure",
    "Grant",
    "Intends",
    "Manoeuvre",
    "Message",
    "OnBoardApp",
    "OnBoardView",
    "Raised",
    "Reaction",
    "RegistryError",
    "RouteAhead",
    "RunsOn",
    "Suggested",
    "Suggestion",
    "TimeLabel",
    "app_by_code",
    "app_names",
    "app_spec",
    "app_threshold_bounds",
    "app_thresholds",
    "edge_apps",
    "figure_names",
    "figures",
    "onboard_apps",
    "onboard_inputs",
    "plugin_entry_points",
    "refresh",
    "registered",
    "route_points",
    "time_label",
]
