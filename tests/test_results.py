"""Expectation details in result.json read as a person would write them."""

from __future__ import annotations

from pathlib import Path
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


def test_a_time_to_reach_is_labelled_tti_not_ttc() -> None:
    """EVW printed "TTC 8.00 s" for the ambulance's time to reach car A's present position, while the two
    closed at 11.1 m/s (contact about 20 s later: a pilot-zone review); CLW, AVW and HLW likewise print a
    time to reach the hazard. Each app labels its own time (AppSpec.time_label): TTI for those."""
    for app in ("evw", "clw", "avw", "ebw", "hlw", "rlvw", "tjw", "lta", "ivs", "slw"):
        exp = WarningExpectation(name="w", type="warning", app=app, target="car_a", min_ttc_s=9.0)
        passed, detail = check(exp, [_warning(app, 8.0)], {})
        assert not passed and ", TTI 8.00 s" in detail and detail.endswith("; expected TTI >= 9.00 s"), detail
        assert "TTC" not in detail
    for app in ("fcw", "sds", "vrucw", "dnpw"):
        exp = WarningExpectation(name="w", type="warning", app=app, target="car_a")
        assert ", TTC 8.00 s" in check(exp, [_warning(app, 8.0)], {})[1]


def test_each_junit_testcase_takes_its_variants_own_time(tmp_path: Path) -> None:
    """`v2x run --junit` gave every testcase the scenario's wall time split evenly (6 x 0.899 s: a newcomer
    review). Each now has its variant's wall seconds, split among that variant's expectations; the suite's time
    is the scenario's."""
    import xml.etree.ElementTree as ET

    from v2x.run.results import write_junit

    variants = ["v2x"] * 2 + ["baseline"] * 4
    exps = [{"name": f"e{k}", "variant": v, "passed": True, "detail": ""} for k, v in enumerate(variants)]
    result = {
        "scenario": "fcw",
        "seed": 0,
        "expectations": exps,
        "metrics": {"v2x": {"wall_seconds": 3.0}, "baseline": {"wall_seconds": 2.0}},
        "run": {"wall_seconds": 5.4},
    }
    root = ET.parse(write_junit([result], tmp_path / "junit.xml")).getroot()
    times = [(c.get("classname"), c.get("time")) for c in root.iter("testcase")]
    assert times == [("fcw.v2x", "1.500")] * 2 + [("fcw.baseline", "0.500")] * 4
    suite = root.find("testsuite")
    assert suite is not None and suite.get("time") == "5.400"
    # without the variants' own figures (an older result): the scenario's, shared between its variants
    del result["metrics"]
    root = ET.parse(write_junit([result], tmp_path / "old.xml")).getroot()
    assert [c.get("time") for c in root.iter("testcase")] == ["1.350"] * 2 + ["0.675"] * 4
