"""Special vehicle priority (T/CSAE 157-2020 Day-2: VIR signalPriority request -> the signal plan changes,
RSC answers), on board: the vehicle's side. Sans-I/O.

The requesting side (v2x.agents.vehicle, for a vehicle that runs ``svp``): approaching a signalised approach
(from MAP) within ``svp_request_distance_m`` of its stop line, the vehicle sends a VIR every
``svp_request_period_s`` with one signal priority request (the intersection's node id and the approach's
phase id from MAP, the RSU that sent MAP as the target, its class's priority) and its planned path, whose
point at the stop line carries the arrival time (ETA at the current speed, or at the cruise speed if it is
slower than that: a vehicle waiting at a red still asks for its green).

The granting side is the roadside unit (v2x.agents.roadside) running the controller
(v2x.scenario.signals.FixedTimeController.request); it reads the limits below from the scenario's thresholds.

This app: an RSC addressed to the host (its temporary id), heard from the RSU, with a time window = the
green granted at the stop line, is shown to the driver as an ``svp`` advisory (severity info: the driver
does nothing; he sees the green) naming the RSU, its figure the seconds from now until the granted green
ends. Once per RSC request id.
"""

from __future__ import annotations

from v2x.apps.registry import AppSpec, Bounds, Figure, OnBoardView, Raised, RunsOn
from v2x.wire import testbed_pb2

# Who may be granted priority, by the vehicle class its BSM declares (T/CSAE 53 BasicVehicleClass: 60-69
# emergency vehicles, 50-58 transit; v2x.agents.roadside.PRIORITY_CLASSES), and the request priority (0..7) each
# sends in its VIR.
PRIORITY_OF_KIND = {"emergency": 7, "bus": 4}


class SignalPriorityGrant:
    """``svp`` on board: shows the driver each grant once (``other``: the RSU's temporary id)."""

    def __init__(self) -> None:
        self._shown: set[tuple[bytes, int]] = set()

    def evaluate(self, view: OnBoardView, t_s: float) -> list[Raised]:
        out = []
        for grant in view.grants:
            key = (grant.rsu_id, grant.req_id)
            if key in self._shown:
                continue
            self._shown.add(key)
            out.append(Raised("svp", grant.rsu_id.hex(), figure=round(max(grant.window_s[1] - t_s, 0.0), 2)))
        return out


APPS = (
    AppSpec(
        name="svp",
        code=testbed_pb2.APP_SVP,
        title="special vehicle priority",
        runs_on=RunsOn.VEHICLE,
        consumes=("map", "rsc"),
        colour="#c2185b",
        severity=testbed_pb2.SEVERITY_INFO,
        figure=Figure("green_left_s", "granted green ends in", "s"),
        thresholds={
            # The RSU's limits (v2x.scenario.signals.PriorityLimits). Green extension at most 10 s and an
            # early green (red truncation) of at most 10 s: ours, the low end of the 10-15 s that transit
            # signal priority practice bounds a green extension by (docs/SCENARIOS.md "svp" gives the sources).
            "svp_max_extension_s": 10.0,
            "svp_max_early_green_s": 10.0,
            # A truncated conflicting green still shows at least this much green: ours, 5 s, the shortest
            # minimum green of signal timing practice for a through movement without pedestrians.
            "svp_min_green_s": 5.0,
            # The granted green lasts this long after the arrival at the stop line (the vehicle clears a 24 m
            # box at 14 m/s in about 2 s): ours.
            "svp_clear_s": 2.0,
            # An early green starts this long before the arrival, so that the driver sees green before he
            # would brake for the red: ours.
            "svp_green_lead_s": 3.0,
            # Request range: within 150 m of the stop line (T/CSAE 53 Day-1 V2I range for RLVW / GLOSA).
            "svp_request_distance_m": 150.0,
            # VIR period while a request stands: ours, 1 Hz (a standing request, not a safety message).
            "svp_request_period_s": 1.0,
        },
        # Bounds where the rule by unit (v2x.apps.thresholds.UNIT_BOUNDS) does not fit: a period > 0, at most
        # a minute.
        threshold_bounds={"svp_request_period_s": Bounds(0.0, 60.0, above_low=True)},
        onboard=lambda names: SignalPriorityGrant(),
    ),
)

__all__ = ["APPS", "PRIORITY_OF_KIND", "SignalPriorityGrant"]
