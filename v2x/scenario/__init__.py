"""Scenario files: schema, loading with clear errors, road geometry."""

from v2x.scenario.geometry import Pose, Route, route_for
from v2x.scenario.loader import (
    ScenarioError,
    catalogue,
    find_scenario,
    is_shipped_id,
    load_scenario,
    same_ids,
    scenario_names,
    scenario_notes,
)
from v2x.scenario.model import ActorSpec, Scenario

__all__ = [
    "ActorSpec",
    "Pose",
    "Route",
    "Scenario",
    "ScenarioError",
    "catalogue",
    "find_scenario",
    "is_shipped_id",
    "load_scenario",
    "route_for",
    "same_ids",
    "scenario_names",
    "scenario_notes",
]
