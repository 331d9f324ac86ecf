"""The scenario file schema (YAML), as pydantic models. docs/SCENARIOS.md describes every field."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from v2x.apps.registry import app_names
from v2x.argtypes import SCENARIO_MAX_ACTORS, SCENARIO_MAX_S
from v2x.text import did_you_mean
from v2x.units import LANE_HALF_WIDTH_M

ActorId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
# Numbers in a scenario file are finite (the models set allow_inf_nan=False: NaN, inf and 1e400 are refused)
# and real numbers, not booleans or strings (strict: `false` or "3" is not 0.0 or 3.0; an int is a float).
# A plain `1e3`, a string to YAML 1.1, is read as the number YAML 1.2 makes of it by the scenario loader's
# YAML resolver (v2x.scenario.loader), not here: a quoted "14" stays a string, and an error.
Real = Annotated[float, Field(strict=True)]
Int = Annotated[int, Field(strict=True)]  # an integer: not true (1), "3" or 3.0
Bool = Annotated[bool, Field(strict=True)]  # true or false: not 1 or "yes"
MAX_EXTENT_M = 100_000.0  # local coordinates: within 100 km of the origin (the local ENU plane's reach)
Coord = Annotated[float, Field(strict=True, ge=-MAX_EXTENT_M, le=MAX_EXTENT_M)]
Point = tuple[Coord, Coord]
# Elevation (local "up", metres above the origin's height): a lane's profile stays within this of the origin,
# and rises or falls at most MAX_GRADE between two centre-line points (30 %: steeper than any road, ramps of
# multi-storey car parks included; Chongqing's steepest streets are about 20 %).
MAX_ELEVATION_M = 1000.0
MAX_GRADE = 0.3
Elevation = Annotated[float, Field(strict=True, ge=-MAX_ELEVATION_M, le=MAX_ELEVATION_M)]
SPEED_GATE_M = 10.0  # a `speed` expectation's point counts as passed within this distance of it, sideways

VEHICLE_KINDS = ("car", "truck", "bus", "emergency")
VRU_KINDS = ("pedestrian", "cyclist")
ROAD_USER_KINDS = (*VEHICLE_KINDS, *VRU_KINDS)
# The ids of the background flows' vehicles (``bg-<flow>-<n>``): no actor id starts so (an actor named like the
# n-th vehicle of a flow crashed the run when that vehicle entered: attack review 3)
BACKGROUND_ID_PREFIX = "bg-"
# The world makes room for one background vehicle every BACKGROUND_PACKED_M m of every lane the traffic can
# reach (v2x.sim.background.background_capacity); a scenario whose lanes would need room for more than
# MAX_BACKGROUND_VEHICLES is refused at load (attack review 9: 100 lanes of 198 km in a 24 KB file asked for
# 3.3 million rows, 1.1 GB and more before the first tick). 100,000: what the core is measured at
# (`v2x bench core --n`'s bound).
BACKGROUND_PACKED_M = 6.0
MAX_BACKGROUND_VEHICLES = 100_000
ActorKindName = Literal["car", "truck", "bus", "emergency", "pedestrian", "cyclist", "rsu", "platform"]
Variant = Literal["v2x", "baseline"]
ALL_VARIANTS: tuple[Variant, ...] = ("v2x", "baseline")


def _registered_app(name: str) -> str:
    known = app_names()
    if name not in known:
        # (what was got, and the likeliest app, as for a misspelt field: newcomer review 9)
        hint = did_you_mean(name, known)
        raise ValueError(f"one of the apps {', '.join(known)} (v2x/apps/registry.py); got {name[:40]!r}{hint}")
    return name


AppName = Annotated[str, AfterValidator(_registered_app)]  # a registered application's name ("fcw")
# Scripted actions that set or clear a BSM event flag (v2x.messages.VEHICLE_EVENT_BIT has the same names).
FLAG_ACTIONS = (
    "hazard_lights",
    "disabled",
    "abs",
    "traction_control",
    "stability_control",
    "emergency_lights",
    "siren",
)
# Of those, the ones only an emergency vehicle has (sent in the BSM's emergency extension).
EMERGENCY_FLAG_ACTIONS = ("emergency_lights", "siren")
# Scripted manoeuvres across lanes (fields ``lane``, ``duration_s``, ``signal_s``).
LANE_ACTIONS = ("lane_change",)
LANE_CHANGE_DURATION_S = 3.0  # default lateral motion time: a lane change takes about 3 s (open-v2x cerebrum)
LANE_CHANGE_SIGNAL_S = 1.0  # default turn-signal lead before the wheel turns (ours; see docs/SCENARIOS.md)
EventAction = Literal[
    "brake",
    "accelerate",
    "hold",
    "lane_change",
    "hazard_lights",
    "disabled",
    "abs",
    "traction_control",
    "stability_control",
    "emergency_lights",
    "siren",
]
SensorKindName = Literal["camera", "radar", "lidar"]
# The checks of v2x.apps.misbehaviour (CHECKS there; a test keeps the two the same).
MisbehaviourCheck = Literal["speed", "acceleration", "position_jump", "position_speed", "overlap", "rsu_unseen"]
MessageName = Literal["bsm", "map", "spat", "rsi", "rsm", "ssm", "psm", "vir", "rsc", "clpmm", "advisory"]

# Footprints (length, width, height) in metres: TR 37.885 car and truck; others are common values.
DEFAULT_SIZE: dict[str, tuple[float, float, float]] = {
    "car": (5.0, 2.0, 1.6),
    "truck": (13.0, 2.6, 3.0),
    "bus": (12.0, 2.55, 3.2),
    "emergency": (5.5, 2.1, 2.4),
    "pedestrian": (0.5, 0.5, 1.7),
    "cyclist": (1.8, 0.6, 1.7),
    "rsu": (0.5, 0.5, 6.0),
    "platform": (1.0, 1.0, 1.0),  # a placeholder box: the platform is never on the road
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Origin(Strict):
    lat_deg: Real = Field(ge=-90, le=90)
    lon_deg: Real = Field(ge=-180, le=180)
    alt_m: Real = Field(default=0.0, ge=-500, le=9000)


Turn = Literal["straight", "left", "right", "u_turn"]  # a movement through an intersection (MAP AllowedManeuvers)


class LaneSpec(Strict):
    id: ActorId
    centerline: list[Point] = Field(min_length=2, description="local ENU metres, in the direction of travel")
    width_m: Real = Field(default=3.5, gt=0, le=10)
    speed_limit_kph: Real | None = Field(default=None, gt=0, le=250)
    elevation_m: list[Elevation] | None = Field(
        default=None,
        description="height above the origin of each centre-line point (linear between them); none: flat, 0",
    )
    left: ActorId | None = Field(
        default=None,
        description="the parallel lane to the left (in the direction of travel) background vehicles may change to",
    )
    right: ActorId | None = Field(
        default=None,
        description="the parallel lane to the right (in the direction of travel) background vehicles may change to",
    )
    turn: Turn | Annotated[list[Turn], Field(min_length=1)] | None = Field(
        default=None,
        description="the movements allowed from this lane where it enters an intersection box (MAP maneuvers and "
        "connections, permissive or protected green); none: its centre line's own turn through the box",
    )

    @model_validator(mode="after")
    def _profile(self) -> LaneSpec:
        z = self.elevation_m
        if z is None:
            return self
        if len(z) != len(self.centerline):
            raise ValueError(
                f"'elevation_m' gives one height per centre-line point: {len(self.centerline)} values, got {len(z)}"
            )
        for k in range(1, len(z)):
            (x0, y0), (x1, y1) = self.centerline[k - 1], self.centerline[k]
            run = math.hypot(x1 - x0, y1 - y0)
            rise = abs(z[k] - z[k - 1])
            if rise > MAX_GRADE * run:
                raise ValueError(
                    f"'elevation_m' rises or falls at most {MAX_GRADE:.0%} between centre-line points; "
                    f"points {k - 1} and {k} are {run:.1f} m apart and {rise:.1f} m apart in height"
                )
        return self

    @property
    def turns(self) -> tuple[Turn, ...]:
        """The movements ``turn`` gives, in the order given without repeats (empty: not given)."""
        given = [] if self.turn is None else [self.turn] if isinstance(self.turn, str) else self.turn
        return tuple(dict.fromkeys(given))

    @property
    def elevated(self) -> bool:
        """Has a profile that is not flat at the origin's height."""
        return self.elevation_m is not None and any(z != 0.0 for z in self.elevation_m)


class SignalPhaseSpec(Strict):
    """One phase of a fixed-time plan: the ingress lanes it gives green, and its interval lengths."""

    id: Int = Field(ge=1, le=255, description="phase id as sent in MAP connectsTo and SPAT")
    lanes: list[ActorId] = Field(min_length=1, description="ingress lanes this phase controls")
    green_s: Real = Field(gt=0, le=300)
    yellow_s: Real = Field(default=3.0, ge=0, le=10)
    all_red_s: Real = Field(default=2.0, ge=0, le=30, description="clearance red after yellow")


class SignalSpec(Strict):
    """A fixed-time signal plan: the phases run in the order given, one after another, every cycle."""

    offset_s: Real = Field(
        default=0.0, ge=0, le=3600, description="the cycle time at t = 0 (0: phase 1 turns green at t = 0)"
    )
    phases: list[SignalPhaseSpec] = Field(min_length=1)

    @property
    def cycle_s(self) -> float:
        return sum(p.green_s + p.yellow_s + p.all_red_s for p in self.phases)


class IntersectionSpec(Strict):
    id: ActorId
    center: Point
    radius_m: Real = Field(
        default=15.0, gt=0, le=500, description="the box: lanes have their stop line where they enter it"
    )
    signal: SignalSpec | None = None


class RoadSpec(Strict):
    lanes: list[LaneSpec] = Field(default_factory=list)
    intersections: list[IntersectionSpec] = Field(default_factory=list)

    def neighbour_pairs(self) -> list[tuple[str, str]]:
        """Every (lane, its left neighbour) pair the lanes' ``left``/``right`` declare (a ``right`` is the
        other lane's ``left``), deduplicated, in file order."""
        out: list[tuple[str, str]] = []
        for lane in self.lanes:
            for pair in ((lane.id, lane.left), (lane.right, lane.id)):
                if pair[0] is not None and pair[1] is not None and (pair[0], pair[1]) not in out:
                    out.append((pair[0], pair[1]))
        return out


class ZoneSpec(Strict):
    name: ActorId
    kind: Literal["tunnel", "urban-canyon", "correction-loss"]
    polygon: list[Point] = Field(min_length=3)


class ObstacleSpec(Strict):
    """A static obstacle (a parked bus, a building corner) that blocks roadside sensors' line of sight. It
    is not a road user: nothing collides with it, and it does not block radio."""

    name: ActorId
    polygon: list[Point] = Field(min_length=3, description="local ENU metres")


class SensorSpec(Strict):
    """A roadside sensor mounted at its RSU's position. Figures left unset take the defaults of the kind
    (v2x/sensors.py, docs/IMPAIRMENTS.md)."""

    kind: SensorKindName
    heading_deg: Real = Field(default=0.0, ge=0, lt=360, description="where it looks: compass degrees")
    range_m: Real | None = Field(default=None, gt=0, le=1000)
    fov_deg: Real | None = Field(default=None, gt=0, le=360, description="full horizontal field of view")
    sigma_m: Real | None = Field(default=None, ge=0, le=50, description="1-sigma position error per axis")
    speed_sigma_mps: Real | None = Field(default=None, ge=0, le=20, description="1-sigma velocity error per axis")
    detection_probability: Real | None = Field(default=None, ge=0, le=1, description="per object in view, per frame")
    period_s: Real | None = Field(default=None, gt=0, le=10, description="time between frames")


# An RSI item's latest end (active_s): RSI sends it as a MinuteOfTheYear, which receivers read as the nearest such
# minute within half a year of now; an end ~31 years on wrapped to one already past (the event was taken as over),
# and ~1e12 s overflowed the RSU's date arithmetic mid-run (fuzz review 25).
ACTIVE_MAX_S = 180 * 86400.0


class RsiItemSpec(Strict):
    """What road events and road signs (RSI) share: an id, a position, the stretch of road it applies to
    (``lanes``: their centre lines, half a lane wide, or ``path`` with ``path_radius_m``; neither: every
    direction), the time window ``active_s`` it is announced in, and a priority."""

    id: ActorId = Field(description="names the item in results (the 'other' of an HLW, IVS or SLW warning)")
    position: Point = Field(description="local metres")
    lanes: list[ActorId] | None = Field(default=None, min_length=1, description="reference paths: these lanes")
    path: list[Point] | None = Field(
        default=None, min_length=2, max_length=32, description="reference path, in the direction of travel"
    )
    path_radius_m: Real = Field(default=1.75, gt=0, le=102.4, description="half-width of 'path'")
    active_s: tuple[Real, Real] | None = Field(default=None, description="[start, end) in simulation seconds")
    priority: Int = Field(default=0, ge=0, le=7, description="0..7, higher is more urgent")

    @field_validator("active_s")
    @classmethod
    def _window(cls, window: tuple[float, float] | None) -> tuple[float, float] | None:
        if window is not None and not 0 <= window[0] < window[1] <= ACTIVE_MAX_S:
            raise ValueError(
                f"[start, end) with 0 <= start < end <= {ACTIVE_MAX_S:.0f} s (180 days: the RSI's MinuteOfTheYear "
                f"carries half a year); got {list(window)}"
            )
        return window

    @model_validator(mode="after")
    def _where(self) -> RsiItemSpec:
        if self.lanes is not None and self.path is not None:
            raise ValueError("give 'lanes' or 'path', not both")
        return self


class RoadEventSpec(RsiItemSpec):
    """A road traffic event an RSU announces in RSI (CSAE 53 RTEData): a hazard at ``position`` (its
    centre) with ``radius_m``."""

    type: Int = Field(ge=0, le=65535, description="GB/T 29100-2012 event code (e.g. 408 slippery road)")
    radius_m: Real = Field(gt=0, le=102.4, description="the hazard zone around position (wire: 0.1 m, <= 102.4 m)")
    source: Literal["unknown", "police", "government", "meteorological", "internet", "detection"] = "detection"


class RoadSignSpec(RsiItemSpec):
    """A road traffic sign an RSU announces in RSI (CSAE 53 RTSData): a GB 5768.2 sign standing at
    ``position`` (beside its reference path) for the traffic on that path."""

    type: Int = Field(
        ge=0, le=65535, description="GB 5768.2 sign code (101 sharp curve, 102 children, 201 speed limit)"
    )
    speed_limit_kph: Real | None = Field(
        default=None, gt=0, le=250, description="the figure on a speed-limit sign (required for type 201)"
    )

    @model_validator(mode="after")
    def _limit(self) -> RoadSignSpec:
        from v2x.wire.rsi import SIGN_SPEED_LIMIT

        if self.type == SIGN_SPEED_LIMIT and self.speed_limit_kph is None:
            raise ValueError(f"a speed-limit sign (type {SIGN_SPEED_LIMIT}) needs 'speed_limit_kph'")
        return self


class CongestionWatchSpec(Strict):
    """A lane an RSU watches for queues (TJW, v2x/apps/tjw.py): while it finds one, it announces a traffic
    congestion event (GB/T 29100 707) at the queue's tail in RSI."""

    id: ActorId = Field(description="names the announced event in results (the 'other' of a TJW warning)")
    lane: ActorId = Field(description="the lane watched (its direction of travel is the queue's)")
    priority: Int = Field(default=5, ge=0, le=7, description="the event's RSI priority, 0..7")


class NetworkSpec(Strict):
    pc5: str = "pc5-sidelink-los"
    uu: str = "5g-uu-edge-sa"
    wired: str = "wired-backhaul"


class DriverSpec(Strict):
    """The human (or automation) behind the wheel. See v2x/apps/driver.py for the rules."""

    reaction_s: Real = Field(default=1.0, ge=0, le=5, description="warning -> braking delay")
    brake_mps2: Real = Field(default=6.0, gt=0, le=12, description="braking on a warning (and the most it uses)")
    sees_signals: Bool = Field(default=True, description="sees the signal heads and stops for red (false: glare)")
    follows_advice: Bool = Field(default=True, description="follows speed advisories (GLOSA)")
    comfort_decel_mps2: Real = Field(default=2.0, gt=0, le=6)
    comfort_accel_mps2: Real = Field(default=1.5, gt=0, le=6)
    caution_speed_mps: Real | None = Field(
        default=None,
        gt=0,
        le=70,
        description="shown a warning sign in the car (IVS: sharp curve, children), slow to this; none: no change",
    )
    attentive: Bool = Field(
        default=False,
        description="follows the nearest vehicle ahead in his lane (IDM), story or background; false: distracted,"
        " keeps his scripted profile until warned",
    )


class ScriptedEvent(Strict):
    """At ``at_s``: a change of motion (``brake``, ``accelerate``, ``hold``), a lane change (``lane_change``:
    the turn signal on at once, then after ``signal_s`` a smooth sideways move over ``duration_s`` onto
    ``lane``), or a change of a BSM event flag (``hazard_lights``, ``disabled``, ``abs``, ``traction_control``,
    ``stability_control``; for an emergency vehicle also ``emergency_lights`` and ``siren``, in its emergency
    extension: set with ``active: true``, the default, cleared with ``active: false``; ``for_s`` clears it
    again after that long). Flags change nothing in the motion: script a ``brake`` as well for a car that
    stops."""

    at_s: Real = Field(ge=0, le=86400)
    action: EventAction
    rate_mps2: Real = Field(default=0.0, ge=0, le=12, description="magnitude of the deceleration/acceleration")
    until_speed_mps: Real | None = Field(default=None, ge=0, le=140)
    active: Bool | None = Field(default=None, description="flag actions: set (true, default) or clear (false)")
    for_s: Real | None = Field(
        default=None, gt=0, le=86400, description="flag actions: clear the flag again after this long"
    )
    lane: ActorId | None = Field(default=None, description="lane_change: the lane to move onto")
    duration_s: Real | None = Field(
        default=None, gt=0, le=30, description=f"lane_change: the sideways move (default {LANE_CHANGE_DURATION_S} s)"
    )
    signal_s: Real | None = Field(
        default=None,
        ge=0,
        le=30,
        description=f"lane_change: turn signal on this long before the move starts (default {LANE_CHANGE_SIGNAL_S} s)",
    )

    @model_validator(mode="after")
    def _fields_of_the_action(self) -> ScriptedEvent:
        lane_fields = [f for f in ("lane", "duration_s", "signal_s") if getattr(self, f) is not None]
        if self.action in LANE_ACTIONS:
            if self.lane is None:
                raise ValueError(f"'{self.action}' needs 'lane': the lane to move onto")
            extra = [f for f in ("until_speed_mps", "active", "for_s") if getattr(self, f) is not None]
            if self.rate_mps2 or extra:
                raise ValueError(
                    f"'{self.action}' takes 'lane', 'duration_s' and 'signal_s', not "
                    f"{', '.join(repr(f) for f in (['rate_mps2'] if self.rate_mps2 else []) + extra)}"
                )
            return self
        if lane_fields:
            raise ValueError(
                f"{', '.join(repr(f) for f in lane_fields)} apply to the lane actions {list(LANE_ACTIONS)}, "
                f"not '{self.action}'"
            )
        if self.action in FLAG_ACTIONS:
            if self.rate_mps2 or self.until_speed_mps is not None:
                raise ValueError(
                    f"'{self.action}' sets a BSM event flag: it takes 'active' and 'for_s', not 'rate_mps2' or "
                    "'until_speed_mps'"
                )
            if self.for_s is not None and self.active is False:
                raise ValueError("'for_s' applies when the flag is set ('active: true')")
        elif self.active is not None or self.for_s is not None:
            raise ValueError(
                f"'active' and 'for_s' apply to the flag actions {list(FLAG_ACTIONS)}, not '{self.action}'"
            )
        return self

    @property
    def sets_flag(self) -> bool:
        return self.action in FLAG_ACTIONS and self.active is not False

    @property
    def move_s(self) -> float:
        """lane_change: how long the sideways move takes."""
        return self.duration_s if self.duration_s is not None else LANE_CHANGE_DURATION_S

    @property
    def lead_s(self) -> float:
        """lane_change: how long the turn signal is on before the move starts."""
        return self.signal_s if self.signal_s is not None else LANE_CHANGE_SIGNAL_S


class PhantomSpec(Strict):
    """An insider's lie (docs/SECURITY.md, "Misbehaviour detection"): from ``from_s`` on, the actor's OBU
    broadcasts, under its own identity, the BSMs of a vehicle that is not there, driving ``lane`` / ``path``
    from ``start_m`` (its place at t = 0) at a constant ``speed_mps``; before ``from_s``, its true state."""

    lane: ActorId | None = Field(default=None, description="lane the phantom follows")
    path: list[Point] | None = Field(default=None, description="explicit path instead of a lane")
    start_m: Real = Field(default=0.0, ge=0, le=MAX_EXTENT_M, description="distance along the lane/path at t = 0")
    speed_mps: Real = Field(default=0.0, ge=0, le=140)
    from_s: Real = Field(default=0.0, ge=0, le=86400, description="when the lie begins")

    @model_validator(mode="after")
    def _placement(self) -> PhantomSpec:
        if (self.lane is None) == (self.path is None):
            raise ValueError("give 'lane' or 'path' (one of them)")
        return self


class PlatoonSpec(Strict):
    """A platoon-capable vehicle (docs/SCENARIOS.md, "Platoons"). The ``leader`` drives its scripted profile
    and manages the platoon over CLPMM; a ``member`` runs the automated longitudinal controller from t = 0
    (CACC with the predecessor's BSM acceleration once the leader has accepted it, else ACC on its forward
    radar), asks the leader ahead to join at ``join_at_s`` and leaves at ``leave_at_s``."""

    role: Literal["leader", "member"] = "member"
    join_at_s: Real = Field(default=0.0, ge=0, le=86400, description="member: when it asks to join (CLPMM)")
    leave_at_s: Real | None = Field(default=None, gt=0, le=86400, description="member: when it leaves (CLPMM)")

    @model_validator(mode="after")
    def _times(self) -> PlatoonSpec:
        if self.role == "leader" and (self.join_at_s or self.leave_at_s is not None):
            raise ValueError("'join_at_s' and 'leave_at_s' are a member's; the leader manages the platoon")
        if self.leave_at_s is not None and self.leave_at_s <= self.join_at_s:
            raise ValueError(f"'leave_at_s' ({self.leave_at_s}) must come after 'join_at_s' ({self.join_at_s})")
        return self


class ActorSpec(Strict):
    id: ActorId
    kind: ActorKindName
    lane: ActorId | None = Field(default=None, description="lane to follow (road users)")
    path: list[Point] | None = Field(default=None, description="explicit path instead of a lane")
    start_m: Real = Field(default=0.0, ge=0, le=MAX_EXTENT_M, description="distance along the lane/path at t = 0")
    speed_mps: Real = Field(default=0.0, ge=0, le=140)
    position: Point | None = Field(default=None, description="fixed position (rsu)")
    length_m: Real | None = Field(default=None, gt=0, le=50)
    width_m: Real | None = Field(default=None, gt=0, le=10)
    positioning: str | None = None
    equipped: Bool = Field(
        default=True, description="has an OBU; false: transmits and hears nothing (sensors and the referee see it)"
    )
    uplink: Bool = Field(default=True, description="also send BSM to the edge/cloud platform over Uu")
    apps: list[AppName] = Field(default_factory=list)
    driver: DriverSpec | None = None
    events: list[ScriptedEvent] = Field(default_factory=list)
    external: Bool = Field(default=False, description="driven by an outside stack that joins over MQTT")
    range_m: Real | None = Field(
        default=None,
        gt=0,
        le=10_000,
        description=(
            "rsu: its PC5 coverage: it reaches no receiver and hears no sender farther than this (nor farther than "
            "the PC5 profile's range)"
        ),
    )
    intersections: list[ActorId] | None = Field(
        default=None, description="rsu: intersections whose MAP (and SPAT, if signalised) it sends; default all"
    )
    sensors: list[SensorSpec] = Field(default_factory=list, description="rsu: roadside sensors (RSM)")
    shares_as: Literal["rsm", "ssm"] = Field(
        default="rsm", description="rsu: broadcast what its sensors detect as RSM (Day-1) or SSM (Day-2)"
    )
    device: Literal["obu", "phone"] = Field(
        default="obu", description="pedestrian / cyclist: an OBU (BSM) or a phone (PSM, Day-2)"
    )
    road_events: list[RoadEventSpec] = Field(default_factory=list, description="rsu: road traffic events (RSI)")
    road_signs: list[RoadSignSpec] = Field(default_factory=list, description="rsu: road traffic signs (RSI)")
    phantom: PhantomSpec | None = Field(
        default=None, description="road user with an OBU: broadcast a fabricated vehicle's BSMs (an insider)"
    )
    congestion: list[CongestionWatchSpec] = Field(
        default_factory=list, description="rsu: lanes watched for queues, announced in RSI (TJW)"
    )
    platoon: PlatoonSpec | None = Field(default=None, description="vehicle: platoon leader or member (CLPMM)")

    @property
    def box_m(self) -> tuple[float, float, float]:
        """The road user's length, width and height: the scenario's, else its kind's (``DEFAULT_SIZE``)."""
        length, width, height = DEFAULT_SIZE[self.kind]
        return (self.length_m or length, self.width_m or width, height)

    @model_validator(mode="after")
    def _placement(self) -> ActorSpec:
        if self.phantom is not None and (self.kind not in ROAD_USER_KINDS or not self.equipped or self.external):
            raise ValueError("'phantom' needs a built-in road user with an OBU (equipped, not external)")
        if self.kind in ROAD_USER_KINDS and not self.external and self.lane is None and self.path is None:
            raise ValueError(f"a {self.kind} needs 'lane' or 'path'")
        if self.lane is not None and self.path is not None:
            raise ValueError("give 'lane' or 'path', not both")
        if self.kind == "rsu" and self.position is None:
            raise ValueError("an rsu needs 'position'")
        if self.device == "phone" and self.kind not in ("pedestrian", "cyclist"):
            raise ValueError(f"'device: phone' is for a pedestrian or cyclist, not a {self.kind}")
        if self.driver is not None and self.driver.attentive and self.kind not in VEHICLE_KINDS:
            raise ValueError(f"'driver.attentive' is for a vehicle (car, truck, bus, emergency), not a {self.kind}")
        return self


class SpeedDistributionSpec(Strict):
    """A background flow's desired speeds in km/h: normal (``mean``, ``sd``; draws are kept within
    mean ± 3 sd and above 5 km/h) or uniform (``min``, ``max``). Give one pair."""

    mean: Real | None = Field(default=None, gt=0, le=250)
    sd: Real | None = Field(default=None, ge=0, le=100)
    min: Real | None = Field(default=None, gt=0, le=250)
    max: Real | None = Field(default=None, gt=0, le=250)

    @model_validator(mode="after")
    def _one_pair(self) -> SpeedDistributionSpec:
        normal = self.mean is not None or self.sd is not None
        uniform = self.min is not None or self.max is not None
        if normal == uniform:
            raise ValueError("give 'mean' and 'sd' (normal) or 'min' and 'max' (uniform), not both or neither")
        if normal and (self.mean is None or self.sd is None):
            raise ValueError("a normal distribution needs both 'mean' and 'sd'")
        if uniform and (self.min is None or self.max is None or self.min > self.max):
            raise ValueError("a uniform distribution needs 'min' <= 'max'")
        return self


FlowClass = Literal["car", "truck", "bus"]


def _all_cars() -> dict[FlowClass, float]:
    return {"car": 1.0}


class FlowSpec(Strict):
    """Background traffic entering the road at the start of ``lane`` (docs/SCENARIOS.md "Background traffic")."""

    lane: ActorId = Field(description="the lane whose start is the entry")
    vehicles_per_hour: Real = Field(gt=0, le=3600, description="mean arrival rate (Poisson arrivals)")
    speed_kph: SpeedDistributionSpec = Field(description="desired speeds")
    mix: dict[FlowClass, Annotated[float, Field(strict=True, ge=0, le=1)]] = Field(
        default_factory=_all_cars, description="vehicle class shares, summing to 1"
    )
    penetration: Real = Field(default=0.0, ge=0, le=1, description="share of vehicles with an OBU (they send BSMs)")
    prefill: Bool = Field(default=True, description="the lane starts filled at the flow's density at t = 0")
    positioning: str | None = Field(
        default=None,
        description="the equipped vehicles' positioning profile (v2x impair list); none: their BSMs carry the "
        "truth with the accuracy unknown (the scenario's 'positioning' is the actors' default, not the flows')",
    )

    @field_validator("mix")
    @classmethod
    def _shares(cls, mix: dict[str, float]) -> dict[str, float]:
        if not mix or abs(sum(mix.values()) - 1.0) > 1e-6:
            raise ValueError(f"shares that sum to 1; these sum to {sum(mix.values()):g}")
        return mix


class SumoDriverSpec(Strict):
    """How a SUMO driver reacts to an FCW warning (v2x.sim.sumo): brakes after ``reaction_s`` at ``brake_mps2``
    until he stands (the same figures as ``DriverSpec``'s)."""

    reaction_s: Real = Field(default=1.0, ge=0, le=5, description="warning -> braking delay")
    brake_mps2: Real = Field(default=6.0, gt=0, le=12, description="braking on a warning")


class SumoSpec(Strict):
    """Background traffic from SUMO (docs/SCENARIOS.md "SUMO co-simulation"): its network and routes, files
    relative to the scenario file (the loader makes them absolute). The network's coordinates are the
    scenario's local frame (x east, y north, metres)."""

    net: str = Field(min_length=1, description="the SUMO network (.net.xml), relative to the scenario file")
    routes: str = Field(min_length=1, description="the SUMO demand (.rou.xml), relative to the scenario file")
    seed: Int | None = Field(default=None, ge=0, le=2**31 - 1, description="SUMO's --seed (default: the run's)")
    penetration: Real = Field(default=0.0, ge=0, le=1, description="share of SUMO vehicles with an OBU")
    driver: SumoDriverSpec = Field(default_factory=SumoDriverSpec, description="a warned SUMO driver")


class _ExpectationBase(Strict):
    name: str
    variant: Variant = "v2x"


class WarningExpectation(_ExpectationBase):
    """``target`` receives a warning from ``app`` about ``other`` (and with ``conflict``, if given) inside the
    window."""

    type: Literal["warning"]
    app: AppName
    target: ActorId
    other: ActorId | None = None
    window_s: tuple[Real, Real] | None = None
    min_ttc_s: Real | None = Field(default=None, ge=0)
    conflict: str | None = Field(default=None, description="only warnings whose 'conflict' is this (e.g. joined)")


class NoWarningExpectation(_ExpectationBase):
    """``target`` never receives a warning (from ``app``, about ``other``, when given)."""

    type: Literal["no_warning"]
    app: AppName | None = None
    target: ActorId
    other: ActorId | None = None


class CollisionExpectation(_ExpectationBase):
    type: Literal["collision"]
    actors: tuple[ActorId, ActorId]


class NoCollisionExpectation(_ExpectationBase):
    type: Literal["no_collision"]
    actors: tuple[ActorId, ActorId] | None = None


class MetricExpectation(_ExpectationBase):
    type: Literal["metric"]
    metric: Literal[
        "delivery_ratio",
        "latency_ms_p50",
        "latency_ms_p95",
        "latency_ms_p99",
        "rejected",
        "background_vehicles",
        "background_slowed",
        "background_lane_changes",
        "app_latency_ms_p50",
        "app_latency_ms_p95",
        "app_latency_ms_max",
        "data_age_ms_p50",
        "data_age_ms_p95",
        "data_age_ms_p99",
        "perception_errors",
    ]
    message: MessageName | None = Field(
        default=None, description="latency (data_age_ms_*: the data age, rsm or ssm) of this message type only"
    )
    link: Literal["pc5", "uu", "wired"] | None = Field(default=None, description="delivery ratio of this link only")
    app: AppName | None = Field(default=None, description="the application latency of this app (app_latency_ms_*)")
    min: Real | None = None
    max: Real | None = None

    @model_validator(mode="after")
    def _bound(self) -> MetricExpectation:
        if self.min is None and self.max is None:
            raise ValueError("give 'min' and/or 'max'")
        if self.metric.startswith("app_latency_ms_") and self.app is None:
            raise ValueError(f"'{self.metric}' needs 'app' (whose application latency)")
        if self.app is not None and not self.metric.startswith("app_latency_ms_"):
            raise ValueError("'app' applies to the app_latency_ms_* metrics only")
        if self.message is not None and not self.metric.startswith(("latency_ms_", "data_age_ms_")):
            raise ValueError("'message' applies to the latency and data age metrics only")
        if self.metric.startswith("data_age_ms_") and self.message not in ("rsm", "ssm"):
            raise ValueError(f"'{self.metric}' needs 'message': rsm or ssm (whose data age)")
        if self.link is not None and self.metric != "delivery_ratio":
            raise ValueError("'link' applies to delivery_ratio only")
        return self


class PositioningExpectation(_ExpectationBase):
    """``actor``'s receiver enters ``state`` inside the window (e.g. dead reckoning in a tunnel, then back
    to rtk-fixed after it)."""

    type: Literal["positioning"]
    actor: ActorId
    state: str
    window_s: tuple[Real, Real]


class ViolationExpectation(_ExpectationBase):
    """``actor`` (or any road user) crosses a stop line on red."""

    type: Literal["violation"]
    kind: Literal["red_light"] = "red_light"
    actor: ActorId | None = None


class NoViolationExpectation(_ExpectationBase):
    type: Literal["no_violation"]
    kind: Literal["red_light"] = "red_light"
    actor: ActorId | None = None


class StopsExpectation(_ExpectationBase):
    """How many times ``actor`` comes to a standstill (``stop`` events) in the variant."""

    type: Literal["stops"]
    actor: ActorId
    min: Int | None = Field(default=None, ge=0)
    max: Int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _bound(self) -> StopsExpectation:
        if self.min is None and self.max is None:
            raise ValueError("give 'min' and/or 'max'")
        return self


class SpeedExpectation(_ExpectationBase):
    """``actor``'s speed as its centre passes the point ``at`` (the line through it square to the actor's
    heading, within ``SPEED_GATE_M`` of the point) is within the bounds; it must pass it."""

    type: Literal["speed"]
    actor: ActorId
    at: Point
    min_mps: Real | None = Field(default=None, ge=0, le=140)
    max_mps: Real | None = Field(default=None, ge=0, le=140)

    @model_validator(mode="after")
    def _bound(self) -> SpeedExpectation:
        if self.min_mps is None and self.max_mps is None:
            raise ValueError("give 'min_mps' and/or 'max_mps'")
        return self


class MisbehaviourExpectation(_ExpectationBase):
    """``suspect`` is reported misbehaving (by ``actor``, by the check ``check``, inside the window: each when
    given); see docs/SECURITY.md, "Misbehaviour detection"."""

    type: Literal["misbehaviour"]
    suspect: ActorId
    actor: ActorId | None = None
    check: MisbehaviourCheck | None = None
    window_s: tuple[Real, Real] | None = None


class NoMisbehaviourExpectation(_ExpectationBase):
    """Nobody reports ``suspect`` (anybody, when not given) misbehaving."""

    type: Literal["no_misbehaviour"]
    suspect: ActorId | None = None


class TravelTimeExpectation(_ExpectationBase):
    """``actor``'s travel time between two speed gates (``start_at`` and ``end_at``: passed as a ``speed``
    expectation's point) is within the bounds; with ``saves_s``, it is at least that many seconds shorter than
    the same actor's travel time between the same gates in the baseline (the delay V2X saves)."""

    type: Literal["travel_time"]
    actor: ActorId
    start_at: Point
    end_at: Point
    min_s: Real | None = Field(default=None, ge=0)
    max_s: Real | None = Field(default=None, ge=0)
    saves_s: Real | None = Field(default=None, gt=0, description="at least this much faster than in the baseline")

    @model_validator(mode="after")
    def _bound(self) -> TravelTimeExpectation:
        if self.min_s is None and self.max_s is None and self.saves_s is None:
            raise ValueError("give 'min_s', 'max_s' and/or 'saves_s'")
        if self.saves_s is not None and self.variant == "baseline":
            raise ValueError("'saves_s' compares a v2x run with the baseline; give it in the v2x variant")
        return self


class StringStableExpectation(_ExpectationBase):
    """The platoon ``actors`` (the leader first, then its followers in order) is string stable over
    ``window_s``: each follower's largest gap error (ground truth: bumper-to-bumper gap less the spacing
    policy's ``platoon_standstill_m`` + ``platoon_time_gap_s`` x its speed) is at most its predecessor's x
    (1 + ``tolerance``), from the second follower on. ``string_unstable``: some follower's exceeds it."""

    type: Literal["string_stable", "string_unstable"]
    actors: list[ActorId] = Field(min_length=3, max_length=32, description="the leader, then the followers")
    window_s: tuple[Real, Real]
    tolerance: Real = Field(default=0.05, ge=0, le=10)

    @model_validator(mode="after")
    def _window(self) -> StringStableExpectation:
        if not 0 <= self.window_s[0] < self.window_s[1]:
            raise ValueError(f"'window_s' is [start, end] with 0 <= start < end; got {list(self.window_s)}")
        if len(set(self.actors)) != len(self.actors):
            raise ValueError("'actors' names each actor once")
        return self


class MinGapExpectation(_ExpectationBase):
    """The smallest bumper-to-bumper distance between the two ``actors``' boxes (the exact distance between
    their oriented footprints, on the same level, from the truth at every tick of the variant) is at least
    ``min_m``; boxes that touch (a gap of 0) fail any bound, so ``min_m: 0`` reads "never touched"."""

    type: Literal["min_gap"]
    actors: tuple[ActorId, ActorId]
    min_m: Real = Field(ge=0, le=1000)

    @model_validator(mode="after")
    def _two(self) -> MinGapExpectation:
        if self.actors[0] == self.actors[1]:
            raise ValueError(f"'actors' names two different actors; got {self.actors[0]!r} twice")
        return self


class MaxDecelExpectation(_ExpectationBase):
    """``actor``'s strongest deceleration over the variant (its loss of speed from one tick to the next,
    from the truth, per second) is at most ``max_mps2``: no harsher braking."""

    type: Literal["max_decel"]
    actor: ActorId
    max_mps2: Real = Field(gt=0, le=100)


class StaysOnRouteExpectation(_ExpectationBase):
    """``actor``'s centre stays within ``max_offset_m`` of its route (its lane's centre line or its path,
    continued straight beyond its ends) at every tick of the variant."""

    type: Literal["stays_on_route"]
    actor: ActorId
    max_offset_m: Real = Field(default=LANE_HALF_WIDTH_M, gt=0, le=1000)  # the actor's centre stays in its lane


GapMeasure = Literal["smallest_m", "largest_m", "smallest_s", "largest_s"]
# The expectations measured at every tick of a run (``v2x.sim.safety``; a ``gap`` at every tick of its window): at
# most this many per scenario. Each ``min_gap`` pair costs about 25 us a tick (the exact distance of two boxes):
# every pair of 120 actors, 7,140 in a 471 kB file, made a run 3.1 times slower, and 4 MiB holds some 55,000
# (about 1.4 s a tick: attack review 11). The shipped scenarios ask for at most 7.
MAX_SAFETY_EXPECTATIONS = 100
SAFETY_EXPECTATIONS = ("min_gap", "max_decel", "stays_on_route", "gap")


class GapExpectation(_ExpectationBase):
    """``actor``'s gap to ``other`` ahead of it over ``window_s`` (ground truth: bumper to bumper along
    ``actor``'s heading, whatever lane either is in; the time gap: that gap over ``actor``'s speed, at ticks
    where it moves at 0.1 m/s or more): its ``measure`` (the smallest or largest gap in m, or time gap in s,
    in the window) is within ``min`` / ``max``."""

    type: Literal["gap"]
    actor: ActorId
    other: ActorId
    window_s: tuple[Real, Real]
    measure: GapMeasure
    min: Real | None = None
    max: Real | None = None

    @model_validator(mode="after")
    def _bounds(self) -> GapExpectation:
        if not 0 <= self.window_s[0] < self.window_s[1]:
            raise ValueError(f"'window_s' is [start, end] with 0 <= start < end; got {list(self.window_s)}")
        if self.min is None and self.max is None:
            raise ValueError("give 'min' and/or 'max'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"'min' <= 'max'; got min {self.min:g}, max {self.max:g}")
        if self.actor == self.other:
            raise ValueError("'actor' and 'other' are two actors")
        return self


Expectation = Annotated[
    WarningExpectation
    | NoWarningExpectation
    | CollisionExpectation
    | NoCollisionExpectation
    | MetricExpectation
    | PositioningExpectation
    | ViolationExpectation
    | NoViolationExpectation
    | StopsExpectation
    | SpeedExpectation
    | MisbehaviourExpectation
    | NoMisbehaviourExpectation
    | TravelTimeExpectation
    | StringStableExpectation
    | MinGapExpectation
    | MaxDecelExpectation
    | StaysOnRouteExpectation
    | GapExpectation,
    Field(discriminator="type"),
]


# The epochs a run can represent: --secure's certificates (valid from a minute before the epoch) and --record's
# MCAP log times are unsigned counts from 1970-01-01 (MCAP's nanoseconds overflow in 2554); a day after 1970
# and 2200 leave a run's minute and duration to spare.
EPOCH_MIN = datetime(1970, 1, 2, tzinfo=UTC)
EPOCH_MAX = datetime(2200, 12, 31, 23, 59, 59, tzinfo=UTC)


class Scenario(Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
    name: str
    description: str = ""
    origin: Origin
    epoch: datetime = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    duration_s: Real = Field(gt=0, le=SCENARIO_MAX_S)
    tick_s: Real = Field(default=0.1, ge=0.01, le=1.0)
    network: NetworkSpec = NetworkSpec()
    positioning: str = "rtk-fixed"
    zones: list[ZoneSpec] = Field(default_factory=list)
    obstacles: list[ObstacleSpec] = Field(default_factory=list)
    road: RoadSpec = RoadSpec()
    actors: list[ActorSpec] = Field(min_length=1, max_length=SCENARIO_MAX_ACTORS)
    flows: list[FlowSpec] = Field(default_factory=list, description="background traffic (docs/SCENARIOS.md)")
    sumo: SumoSpec | None = Field(default=None, description="background traffic from SUMO (docs/SCENARIOS.md)")
    variants: list[Variant] = Field(default_factory=lambda: list(ALL_VARIANTS), min_length=1)
    # (each threshold's bounds, v2x.apps.thresholds.BOUNDS, are checked by the loader, naming them)
    thresholds: dict[str, Real] = Field(default_factory=dict)
    expectations: list[Expectation] = Field(default_factory=list)

    @field_validator("expectations")
    @classmethod
    def _few_measured(cls, value: list[Expectation]) -> list[Expectation]:
        n = sum(e.type in SAFETY_EXPECTATIONS for e in value)
        if n > MAX_SAFETY_EXPECTATIONS:
            raise ValueError(
                f"at most {MAX_SAFETY_EXPECTATIONS} expectations of types {', '.join(SAFETY_EXPECTATIONS)} (each is "
                f"measured at every tick); got {n}"
            )
        return value

    @field_validator("epoch")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        if not EPOCH_MIN <= value <= EPOCH_MAX:
            raise ValueError(
                f"a time from {EPOCH_MIN:%Y-%m-%d} to {EPOCH_MAX:%Y-%m-%d} UTC (what certificates and recordings "
                "can hold: their times count from 1970)"
            )
        return value

    def actor(self, actor_id: str) -> ActorSpec:
        for actor in self.actors:
            if actor.id == actor_id:
                return actor
        raise KeyError(actor_id)

    @property
    def n_ticks(self) -> int:
        return round(self.duration_s / self.tick_s)
