"""The SDK's ``Route`` and ``VehicleState.advanced_along``: an outside stack keeps to its lane through a bend."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_outside_client import unique_prefix
from tests.test_safety import ON_ROUTE, _hlw_on_route
from v2x.net.broker import BrokerAddress
from v2x.run.runner import run_scenario
from v2x.sdk import Route, VehicleState

REPO = Path(__file__).resolve().parents[1]
BEND = Route(((0.0, 0.0), (100.0, 0.0), (100.0, 100.0)))  # east 100 m, then north 100 m


def test_a_route_maps_arc_length_to_pose() -> None:
    assert BEND.length_m == 200.0
    assert BEND.pose(50.0) == (50.0, 0.0, 90.0, 0.0)  # compass: east is 90
    x, y, heading, _ = BEND.pose(150.0)
    assert (x, y, heading) == (100.0, 50.0, 0.0)  # north
    assert BEND.pose(-10.0)[:3] == (-10.0, 0.0, 90.0)  # before its start: straight on, backwards
    assert BEND.pose(230.0)[:3] == (100.0, 130.0, 0.0)  # beyond its end: straight on
    hilly = Route(((0.0, 0.0), (100.0, 0.0)), (0.0, 5.0))
    assert hilly.pose(50.0)[3] == 2.5 and hilly.pose(150.0)[3] == 5.0  # level beyond the ends
    for bad in (((0.0, 0.0),), ((1.0, 1.0), (1.0, 1.0))):
        with pytest.raises(ValueError):
            Route(bad)


def test_a_state_advanced_along_a_route_stays_on_it_through_the_bend() -> None:
    state, s = VehicleState(0.0, 0.0, 15.0, 90.0), 0.0
    for _ in range(120):  # 12 s at 15 m/s: 180 m, round the corner
        state, s = state.advanced_along(BEND, s, 0.1)
        on_first = abs(state.y_m) < 1e-9 and state.x_m <= 100.0 + 1e-9
        on_second = abs(state.x_m - 100.0) < 1e-9 and state.y_m >= -1e-9
        assert on_first or on_second, (state, s)
    assert math.isclose(s, 180.0) and (state.x_m, state.heading_deg) == (100.0, 0.0) and math.isclose(state.y_m, 80.0)
    straight = VehicleState(0.0, 0.0, 15.0, 90.0)
    for _ in range(120):
        straight = straight.advanced(0.1)
    assert math.isclose(straight.x_m, 180.0)  # advanced alone drives straight on: off the route


@pytest.mark.broker
async def test_the_sdk_example_keeps_to_hlws_bend(embedded: BrokerAddress, tmp_path: Path) -> None:
    """An AD team's review: the SDK's own example drove straight on through hlw's bend, off its lane and across
    the road, and every verdict passed; it now follows START's route (stays_on_route, which fails for
    examples/outside_vehicle.py: tests/test_safety.py)."""
    prefix = unique_prefix("hlw-sdk-route")
    log = (tmp_path / "stack.log").open("wb")
    args = ["--broker", embedded.url, "--run", f"{prefix}-v2x", "--actor", "car_a", "--join-timeout", "60"]
    stack = subprocess.Popen(
        [sys.executable, "examples/sdk_vehicle.py", *args],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        result = await run_scenario(_hlw_on_route(external=True), broker=embedded.url, run_id=prefix, variants=["v2x"])
        assert await asyncio.to_thread(stack.wait, 30) == 0, (tmp_path / "stack.log").read_text()
    finally:
        if stack.poll() is None:
            stack.kill()
        log.close()
    [found] = [e for e in result["expectations"] if e["name"] == ON_ROUTE["name"]]
    assert found["passed"], found
    assert result["metrics"]["v2x"]["route_offset"][0]["offset_m"] < 0.05
    assert not [e for e in result["events"] if e["type"] == "implausible_motion"]
