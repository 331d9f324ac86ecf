"""The HTML report: from a real run, from result files, and from bad input."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from v2x.cli import main
from v2x.run.report import ReportInputError, load_results, render_html

SVG = "{http://www.w3.org/2000/svg}"


def _parse(page: str) -> ET.Element:
    """The page is well-formed XML (XHTML-style), so a parser can check every tag is closed."""
    assert page.startswith("<!DOCTYPE html>\n")
    return ET.fromstring(page.split("\n", 1)[1])


def _titles(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}title")]


def _result(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "scenario": "demo",
        "seed": 3,
        "passed": False,
        "expectations": [
            {"name": "warned", "variant": "v2x", "passed": True, "detail": "first FCW at t=1.00 s"},
            {"name": "odd <script>alert(1)</script>", "variant": "v2x", "passed": False, "detail": "a & b < c"},
        ],
        "events": [
            {"t_s": 0.1, "type": "positioning", "variant": "v2x", "actor": "a", "state": "rtk-fixed", "sigma_m": 0.01},
            {"t_s": 0.2, "type": "positioning", "variant": "v2x", "actor": "a", "state": "rtk-fixed", "sigma_m": 0.01},
            {"t_s": 1.0, "type": "warning", "variant": "v2x", "app": "fcw", "target": "a", "other": "b",
             "source": "a", "conflict": "rear-end", "ttc_s": 2.5},
            {"t_s": 3.0, "type": "collision", "variant": "baseline", "actors": ["a", "b"], "relative_speed_mps": 5.0},
            {"t_s": 4.0, "type": "violation", "variant": "baseline", "kind": "red_light", "actor": "a",
             "intersection": "x1", "lane": "eb", "speed_mps": 10.0},
            {"t_s": 5.0, "type": "stop", "variant": "v2x", "actor": "b", "x_m": 1.0, "y_m": 2.0},
            {"t_s": 5.2, "type": "passage", "variant": "v2x", "actor": "a", "at": [10.0, 0.0], "speed_mps": 8.34},
            {"t_s": 5.5, "type": "something-new", "variant": "v2x"},
        ],
        "metrics": {
            "v2x": {"sim_seconds": 6.0, "delivery_ratio": 0.9, "latency_ms": {"p50": 1.0, "p99": 9.5},
                    "messages": {"sent": {"pc5": 10}, "delivered": {"pc5": 20}, "dropped": {"pc5": 1}},
                    "rejected": {"malformed": 2}, "rejected_by_agents": {"a": {"out_of_range": 1}}},
            "baseline": {"sim_seconds": 6.0, "delivery_ratio": None},
        },
        "run": {},
    }  # fmt: skip
    doc.update(over)
    return doc


def test_page_shows_verdicts_expectations_and_one_mark_per_event_escaped() -> None:
    root = _parse(render_html([_result()], errors=[("broken", "agent x failed: ZeroDivisionError")]))
    text = "".join(root.itertext())
    assert "v2x-testbed report: FAIL" in text  # the title: one scenario failed, one could not run
    assert "2 scenario(s): 0 passed, 1 failed, 1 could not run" in text  # (the failed count was left out)
    assert "odd <script>alert(1)</script>" in text and "a & b < c" in text  # escaped, shown as text
    assert root.find(".//script") is None
    assert "RUN ERROR" in text and "agent x failed: ZeroDivisionError" in text
    titles = _titles(root)
    # positioning: only the state change is drawn; the unknown event type is not drawn
    assert titles == [
        "t=0.10 s a positioning rtk-fixed, sigma 0.01 m",
        "t=1.00 s FCW to a about b (rear-end), TTC 2.50 s; sent by a",
        "t=5.00 s b stopped",
        "t=5.20 s a passed (10.0, 0.0) at 8.34 m/s",
        "t=3.00 s collision a - b at a relative speed of 5.00 m/s",
        "t=3.00 s collision a - b at a relative speed of 5.00 m/s",
        "t=4.00 s red_light by a at x1",
    ]
    assert len(root.findall(f".//{SVG}svg")) == 2  # one timeline per variant
    # the summary counts the world's and the agents' rejections; a missing ratio shows as "-"
    summary = root.find(".//table")
    assert summary is not None
    cells = ["".join(td.itertext()) for td in summary.iter("td")]
    assert cells[:9] == ["demo", "3", "FAIL", "1 / 2", "v2x", "0.9000", "9.50", "3", "-"]
    assert cells[9:14] == ["baseline", "-", "-", "0", "-"]


def test_a_time_to_reach_is_labelled_tti_in_its_mark() -> None:
    """EVW's time is the ambulance's time to reach the car, not a time to collision (AppSpec.time_label)."""
    evw = {"t_s": 3.0, "type": "warning", "variant": "v2x", "app": "evw", "target": "car_a", "other": "amb",
           "source": "car_a", "conflict": "emergency vehicle", "ttc_s": 8.0, "gap_m": 222.187}  # fmt: skip
    titles = _titles(_parse(render_html([_result(events=[evw])])))
    assert titles == ["t=3.00 s EVW to car_a about amb (emergency vehicle), TTI 8.00 s, gap 222.19 m; sent by car_a"]


def test_control_and_bidi_characters_from_a_stack_are_shown_escaped_in_the_timeline() -> None:
    """An outside stack's warning text is its own: raw ESC, BEL and U+202E (which reorders what follows) in
    other_id and conflict_type reached the timeline's marks as they were (attack review 12)."""
    fcw = {"t_s": 3.0, "type": "warning", "variant": "v2x", "app": "fcw", "target": "car_a",
           "other": "le\u202ead\x07", "source": "car_a", "conflict": "rear\x1b[2J", "ttc_s": 2.5}  # fmt: skip
    page = render_html([_result(events=[fcw])])
    assert "\u202e" not in page and "\x07" not in page and "\x1b" not in page
    assert _titles(_parse(page)) == [
        "t=3.00 s FCW to car_a about le\\u202ead\\x07 (rear\\x1b[2J), TTC 2.50 s; sent by car_a"
    ]


def test_same_results_same_bytes_and_all_pass_verdict() -> None:
    ok = _result(passed=True, expectations=[_result()["expectations"][0]])
    assert render_html([ok]) == render_html([ok])
    assert "<title>v2x-testbed report: PASS</title>" in render_html([ok])
    assert "<title>v2x-testbed report: FAIL</title>" in render_html([])  # nothing ran: not a pass


def test_bad_result_files_are_named_with_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ReportInputError, match=r"no result\.json below this directory"):
        load_results([empty])
    bad_json = tmp_path / "a" / "result.json"
    bad_json.parent.mkdir()
    bad_json.write_text("{not json")
    with pytest.raises(ReportInputError, match=r"a/result\.json: not valid JSON"):
        load_results([tmp_path / "a"])
    wrong = tmp_path / "wrong.json"
    broken = _result()
    broken["events"][2] = {"type": "warning"}
    wrong.write_text(json.dumps(broken))
    with pytest.raises(ReportInputError, match=r"wrong\.json: not a v2x result document: events\[2\]: expected t_s"):
        load_results([wrong])
    out = tmp_path / "r.html"
    assert main(["report", str(wrong), "-o", str(out)]) == 2
    assert "wrong.json" in capsys.readouterr().err and not out.exists()


def test_run_writes_the_report_and_report_rebuilds_it_from_the_results(tmp_path: Path) -> None:
    """A real fcw run: the page shows the FCW warning to the follower in the v2x timeline and the collision
    in the baseline one; `v2x report` on the result directory gives the same bytes; a failed scenario
    makes `v2x report` exit 1."""
    out = tmp_path / "out"
    page = tmp_path / "run.html"
    assert main(["run", "fcw", "--out", str(out), "--html", str(page), "-q"]) == 0
    root = _parse(page.read_text())
    figures = root.findall(".//figure")
    assert [(f.findtext("figcaption") or "").split(":")[0] for f in figures] == ["map", "v2x", "baseline"]
    v2x_titles = _titles(figures[1])
    # raised when the lead's BSM of t = 6.0 s reached the follower (2.4 ms later)
    assert any(t.startswith("t=6.00 s FCW to follower about lead (rear-end)") for t in v2x_titles), v2x_titles
    assert not any("collision" in t for t in v2x_titles)
    assert "t=8.90 s collision follower - lead at a relative speed of 16.67 m/s" in _titles(figures[2])
    # The map: the lanes, every road user's track in both variants, and the events where they happened.
    map_titles = _titles(figures[0])
    for actor in ("follower", "lead", "neighbour"):
        assert f"{actor} (v2x)" in map_titles and f"{actor} (baseline)" in map_titles
    assert any(t.startswith("lane ") for t in map_titles)
    assert any(t.startswith("v2x: t=6.00 s FCW to follower about lead") for t in map_titles), map_titles
    assert "baseline: t=8.90 s collision follower - lead at a relative speed of 16.67 m/s" in map_titles
    doc = json.loads((out / "fcw" / "result.json").read_text())
    follower = doc["tracks"]["v2x"]["follower"]
    assert [6.1, *follower[[p[0] for p in follower].index(6.1)][1:]] in follower  # sampled at its warning's tick
    # the application latency beside the channel's, in the service metrics
    latency = doc["metrics"]["v2x"]["app_latency_ms"]["fcw"]
    assert latency["warnings"] == 1 and 0 < latency["max"] < 100
    assert "<td>app FCW (sent to warned)</td>" in page.read_text()
    assert follower[0][0] == 0.0 and follower[-1][0] == doc["metrics"]["v2x"]["sim_seconds"] and len(follower) > 14
    assert doc["map"]["lanes"] and {"centerline", "width_m"} <= doc["map"]["lanes"][0].keys()
    rebuilt = tmp_path / "rebuilt.html"
    assert main(["report", str(out), "-o", str(rebuilt)]) == 0
    assert rebuilt.read_bytes() == page.read_bytes()
    doc = json.loads((out / "fcw" / "result.json").read_text())
    doc["passed"] = False
    doc["expectations"][0]["passed"] = False
    (out / "fcw" / "result.json").write_text(json.dumps(doc))
    assert main(["report", str(out / "fcw" / "result.json"), "-o", str(rebuilt)]) == 1
    assert "<title>v2x-testbed report: FAIL</title>" in rebuilt.read_text()


def test_every_shipped_scenario_has_a_map_the_report_draws() -> None:
    from v2x.run.tracks import scenario_map
    from v2x.scenario import catalogue, load_scenario

    for path in catalogue():
        scene = scenario_map(load_scenario(path))
        assert scene["lanes"] or scene["paths"], path
        root = _parse(render_html([_result(map=scene, tracks={})]))
        map_svg = root.find(f".//{SVG}svg[@class='map']")
        assert map_svg is not None, path
        assert any(t.startswith(("lane ", "obstacle ")) for t in _titles(map_svg)) or scene["paths"], path


def test_an_rsu_range_larger_than_the_map_is_said_in_words() -> None:
    """fcw's RSU covers 300 m, more than the whole map: its dashed circle (r 834 px on a 760 px map) lay outside
    the picture and nobody could see it (a newcomer review). The map now says so next to the RSU."""
    import asyncio

    from v2x.run.runner import run_scenario
    from v2x.scenario import load_scenario
    from v2x.scenario.loader import SCENARIO_DIR

    fcw = asyncio.run(run_scenario(load_scenario(SCENARIO_DIR / "fcw.yaml"), broker="loopback", variants=["v2x"]))
    assert "range 300 m: beyond this map" in render_html([fcw])
    fcw["map"]["rsus"][0]["range_m"] = 20.0  # a circle that fits: drawn, nothing said
    assert "beyond this map" not in render_html([fcw])


def test_a_crossing_map_frames_the_box_and_the_events_not_the_whole_tracks() -> None:
    """Newcomer 9: 25 s of tracks (a car 300 m along its lane) made a 32 m crossing a few pixels across. A map
    with an intersection frames its box and where things happened; the tracks run off its edges."""
    import re

    scene = {"lanes": [{"id": "sb", "centerline": [[-1.75, 200], [-1.75, -200]], "width_m": 3.5}]}
    scene["intersections"] = [{"id": "x1", "center": [0.0, 0.0], "radius_m": 16.0}]
    track = [[t / 10, -1.75, 200.0 - 1.5 * t] for t in range(251)]  # 200 m to -175 m
    event = {"t_s": 13.0, "type": "stop", "variant": "v2x", "actor": "car", "x_m": -1.75, "y_m": 5.0}
    doc = _result(map=scene, tracks={"v2x": {"car": track}}, events=[event])
    root = _parse(render_html([doc]))
    box = next(c for c in root.iter(f"{SVG}circle") if "intersection x1" in _titles(c)[:1])
    assert float(box.get("r", 0)) > 60  # 16 m: was about 20 px over the whole track
    assert re.search(r"collision \(hover: the relative speed\)", "".join(root.itertext()))


def test_the_map_draws_a_road_events_hazard_zone(tmp_path: Path) -> None:
    """A newcomer review: the map of an HLW/RSI scenario showed the lanes, the RSU and the tracks, but not where
    the road event was nor how far its zone reached. scenarios/hlw.yaml's spill (408, at (100, 155), radius
    15 m) is now a labelled circle of that radius, whole inside the map."""
    import re

    from v2x.run.tracks import scenario_map
    from v2x.scenario import load_scenario
    from v2x.scenario.loader import SCENARIO_DIR

    scene = scenario_map(load_scenario(SCENARIO_DIR / "hlw.yaml"))
    [event] = [i for i in scene["rsi"] if i["kind"] == "event"]
    assert event == {"id": "spill", "kind": "event", "position": [100.0, 155.0], "rsu": "rsu_bend", "type": 408,
                     "radius_m": 15.0}  # fmt: skip
    path = tmp_path / "result.json"
    path.write_text(json.dumps(_result(map=scene, tracks={})))
    [doc] = load_results([path])  # (the map as a result file carries it passes the loader's checks)
    page = render_html([doc])
    root = _parse(page)
    map_svg = root.find(f".//{SVG}svg[@class='map']")
    assert map_svg is not None
    [zone] = [g for g in map_svg.iter(f"{SVG}g") if g.get("class") == "road-event"]
    title, circle, label = zone.find(f"{SVG}title"), zone.find(f"{SVG}circle"), zone.find(f"{SVG}text")
    assert title is not None and title.text == "road event spill (type 408), radius 15 m, announced by rsu_bend in RSI"
    assert label is not None and label.text == "spill (15 m)"
    assert circle is not None
    # its radius in px is 15 m at the map's scale (the scale bar's: bar_px / bar_m), and it lies inside the map
    bar = re.search(r"<path d='M10,[0-9.]+ h([0-9.]+)'[^>]*/><text[^>]*>([0-9.]+) m</text>", page)
    assert bar is not None
    scale = float(bar[1]) / float(bar[2])
    cx, cy, r = (float(circle.get(k, "nan")) for k in ("cx", "cy", "r"))
    assert r == pytest.approx(15.0 * scale, abs=0.1) and r > 3
    width, height = float(map_svg.get("width", "0")), float(map_svg.get("height", "0"))
    assert r <= cx <= width - r and r <= cy <= height - r
    assert "road events (orange: the hazard zone an RSU announces)" in page


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"map": []}, "field 'map': expected an object"),
        (
            {"map": {"rsi": [{"position": [0, 0], "radius_m": "15"}]}},
            r"map\.rsi\[0\]\.radius_m: expected a length in m or null",
        ),
        ({"map": {"lanes": [{"centerline": [[0, 0]]}]}}, r"map\.lanes\[0\]\.centerline: expected a list of"),
        ({"map": {"rsus": [{"position": [0, "x"]}]}}, r"map\.rsus\[0\]\.position: expected \[x, y\]"),
        ({"map": {"rsus": [{"position": [0, 0], "range_m": -1}]}}, r"map\.rsus\[0\]\.range_m: expected a length"),
        ({"tracks": {"v2x": {"a": [[0, 1]]}}}, r"tracks\.v2x\.a: expected a list of \[t, x, y\]"),
        ({"tracks": {"v2x": {"a": [[0, 1, 1e300]]}}}, r"tracks\.v2x\.a: expected a list of \[t, x, y\]"),
        ({"tracks": {"v2x": {"a": [[0, 1, 2]] * 500_001}}}, "500001 map and track points"),
    ],
)
def test_a_bad_map_or_track_is_named(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    path = tmp_path / "result.json"
    path.write_text(json.dumps(_result(**change)))
    with pytest.raises(ReportInputError, match=message):
        load_results([path])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # An attack review (session 17): "passed": true over a failed expectation showed a PASS badge beside a
        # FAIL row, printed "0 failed" and exited 0.
        ({"passed": True}, "'passed' is true but an expectation failed"),
        (
            {"expectations": [{"name": "w", "variant": "v2x", "passed": True, "detail": ""}]},
            "'passed' is false but every expectation held",
        ),
        (
            {"expectations": [{"name": "w", "variant": "v2x", "passed": "false", "detail": ""}]},
            r"expectations\[0\]\.passed: expected true or false",
        ),
        ({"expectations": [{"name": 1, "variant": "v2x", "passed": True, "detail": ""}]}, r"expectations\[0\]\.name"),
    ],
)
def test_a_verdict_that_disagrees_with_the_expectations_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any], message: str
) -> None:
    path = tmp_path / "result.json"
    path.write_text(json.dumps(_result(**change)))
    with pytest.raises(ReportInputError, match=message):
        load_results([path])
    assert main(["report", str(path), "-o", str(tmp_path / "r.html")]) == 2
    assert "result.json: not a v2x result document" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_a_sweep_summary_is_said_to_be_one_with_what_to_do_instead(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`v2x report sweep.json` said "field 'seed' missing" (a pilot-zone review): a sweep summary is not a run's
    result; it is said to be one, with the commands that draw a sweep and one of its seeds."""
    from v2x.run.sweep import summarise

    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(summarise("fcw", [], None, []).document()))
    assert main(["report", str(path), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert f"v2x report: {path}: a v2x sweep summary (rates over seeds), not the result of a run" in err, err
    assert "'v2x sweep ... --svg FILE'" in err and "'v2x run SCENARIO --seed N" in err and "seed' missing" not in err
    assert not (tmp_path / "r.html").exists()


def test_a_null_sim_seconds_is_drawn_as_zero() -> None:
    # The loader allows null for it (as for delivery_ratio); the page raised a TypeError (a fuzz of session 17).
    doc = _result()
    doc["metrics"]["v2x"]["sim_seconds"] = None
    assert "<svg" in render_html([doc])


def test_the_same_result_named_twice_counts_once(tmp_path: Path) -> None:
    """A newcomer review: `v2x report out/ out/fcw/result.json` counted 3 results for 2."""
    from v2x.run.report import load_results

    for name in ("fcw", "icw"):
        folder = tmp_path / "out" / name
        folder.mkdir(parents=True)
        (folder / "result.json").write_text(json.dumps(_result(scenario=name)), encoding="utf-8")
    results = load_results([tmp_path / "out", tmp_path / "out" / "fcw" / "result.json"])
    assert sorted(r["scenario"] for r in results) == ["fcw", "icw"]


def test_a_fifo_named_result_json_is_refused_not_waited_on(tmp_path: Path) -> None:
    """An attack review: a FIFO named result.json (or as a golden record) blocked v2x report (and v2x check)
    for good."""
    import os

    from v2x.run.check import load_golden

    os.mkfifo(tmp_path / "result.json")
    with pytest.raises(ReportInputError, match="not a regular file"):
        load_results([tmp_path])
    with pytest.raises(ValueError, match="not a regular file: not a golden record"):
        load_golden(tmp_path / "result.json")


def test_the_outside_stacks_are_shown_escaped_and_what_is_not_of_their_shape_left_out() -> None:
    """run.outside_stacks (an AD team's review: nothing said what was under test) is a table under the heading;
    a result file is anyone's: its texts are escaped, and entries of another shape are left out."""
    assert "driven by outside stacks" not in render_html([_result()])
    stacks = {"car_b": {"v2x": "acme-stack 2.1 <b>\x1b[2J"}, "x": "junk", "y": {"v2x": 5}}
    page = render_html([_result(run={"broker": "embedded", "outside_stacks": stacks})])
    root = _parse(page)  # (well-formed: the markup in the software is text)
    assert "driven by outside stacks" in page
    assert "<td>car_b</td><td>v2x</td><td>acme-stack 2.1 &lt;b&gt;\\x1b[2J</td>" in page
    assert "<td>x</td>" not in page and "<td>y</td>" not in page and root is not None
    assert "driven by outside stacks" not in render_html([_result(run={"outside_stacks": ["car_b"]})])
