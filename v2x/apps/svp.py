"""Special vehicle priority (T/CSAE 157-2020 Day-2: VIR signalPriority request -> the signal plan changes,
RSC answers), on board: the vehicle's side. Sans-I/O.

It asks: approaching a signalised approach (from MAP) within ``svp_request_distance_m`` of its stop line, the
app has its vehicle send a VIR (``Intends``, over PC5 only: the roadside unit that runs the signal hears it
there; no platform serves signal priority) every ``svp_request_period_s`` with one signal priority request (the
intersection's node id and the approach's phase id from MAP, the RSU that sent MAP as the target, its class's
priority) and its planned path, whose point at the stop line carries the arrival time (ETA at the current
speed, or at the cruise speed if it is slower than that: a vehicle waiting at a red still asks for its green).

The granting side is the roadside unit (v2x.agents.roadside) running the controller
(v2x.scenario.signals.FixedTimeController.request); it reads the limits below from the scenario's thresholds.

It shows the answer: an RSC addressed to the host (its temporary id), heard from the RSU, with a time window =
the green granted at the stop line, is shown to the driver as an ``svp`` advisory (severity info: the driver
does nothing; he sees the green) naming the RSU, its figure the seconds from now until the granted green
ends. Once per RSC request id.
"""

from __future__ import annotations

import math

from v2x.apps.registry import AppSpec, Bounds, Figure, Intends, OnBoardView, Raised, RunsOn
from v2x.apps.rlvw import match
from v2x.wire import testbed_pb2
from v2x.wire.day2 import REQ_ID_MAX, PlannedPoint, VehicleRequest

# Who may be granted priority, by the vehicle class its BSM declares (T/CSAE 53 BasicVehicleClass: 60-69
# emergency vehicles, 50-58 transit; v2x.agents.roadside.PRIORITY_CLASSES), and the request priority (0..7) each
# sends in its VIR.
PRIORITY_OF_KIND = {"emergency": 7, "bus": 4}


class SignalPriority:
    """``svp`` on board: asks the signal ahead for priority (a VIR every ``svp_request_period_s`` while it is in
    range) and shows the driver each grant once (``other``: the RSU's temporary id)."""

    def __init__(self) -> None:
        self._shown: set[tuple[bytes, int]] = set()
        self._next_request_s = -math.inf

    def evaluate(self, view: OnBoardView, t_s: float) -> list[Raised | Intends]:
        out: list[Raised | Intends] = []
        if t_s + 1e-9 >= self._next_request_s:
            request = priority_request(view)
            if request is not None:
                self._next_request_s = t_s + view.thresholds["svp_request_period_s"]
                out.append(request)
        for grant in view.grants:
            key = (grant.rsu_id, grant.req_id)
            if key in self._shown:
                continue
            self._shown.add(key)
            out.append(Raised("svp", grant.rsu_id.hex(), figure=round(max(grant.window_s[1] - t_s, 0.0), 2)))
        return out


def priority_request(view: OnBoardView) -> Intends | None:
    """A VIR asking for signal priority at the signalised approach the host is on (from MAP), within
    ``svp_request_distance_m`` of its stop line: the node id and phase id, and a planned path whose point at the
    stop line carries the arrival time (at the current speed, or the cruise speed if faster); over PC5 only. None
    elsewhere."""
    th = view.thresholds
    m = match(view.host, view.all_approaches, th["rlvw_match_margin_m"])
    if m is None or m.approach.phase_id == 0 or m.distance_m > th["svp_request_distance_m"]:
        return None
    speed = max(view.host.speed_mps, view.cruise_mps, 0.5)
    eta = m.distance_m / speed
    sx, sy = m.approach.stop_point
    request = VehicleRequest(
        req_id=m.approach.node_id % (REQ_ID_MAX + 1),
        type="signal_priority",
        priority=PRIORITY_OF_KIND.get(view.kind, 0),
        intersection_id=m.approach.node_id,
        phase_id=m.approach.phase_id,
        life_time_s=eta + th["svp_clear_s"],
    )
    path = (PlannedPoint(sx, sy, eta, speed),)
    return Intends(frozenset({"intersection_straight"}), path, (request,), to_platform=False)


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
        onboard=lambda names: SignalPriority(),
    ),
)

__all__ = ["APPS", "PRIORITY_OF_KIND", "SignalPriority", "priority_request"]
