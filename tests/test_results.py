"""Expectation details in result.json read as a person would write them."""

from __future__ import annotations

from typing import Any

from v2x.run.results import check
from v2x.scenario.model import WarningExpectation


def _warning(app: str, ttc_s: float, **figure: float) -> dict[str, Any]:
    return {"t_s": 0.1, "type": "warning", "variant": "v2x", "app": app, "target": "car_a", "other": "x1",
            "ttc_s": ttc_s, **figure}  # fmt: skip


def test_a_warning_detail_names_its_ttc_and_an_advice_without_one_does_not() -> None:
    fcw = WarningExpectation(name="w", type="warning", app="fcw", target="car_a")
    assert check(fcw, [_warning("fcw", 2.79)], {}) == (True, "first FCW to car_a at t=0.10 s about x1, TTC 2.79 s")
    glosa = WarningExpectation(name="g", type="warning", app="glosa", target="car_a")
    passed, detail = check(glosa, [_warning("glosa", 0.0, advised_speed_mps=7.624)], {})
    assert passed and detail == "first GLOSA to car_a at t=0.10 s about x1 (advised_speed_mps 7.624)"
