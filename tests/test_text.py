"""Text from the wire or files in the terminal, the logs and the JUnit files (v2x.text): an attack review made
a failed run read PASS with ANSI escapes in a warning's other_id, forged summary and log lines with newlines,
and broke both JUnit files (no XML parser read them) with a control character."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from v2x.run.check import CaseResult
from v2x.run.check import write_junit as write_check_junit
from v2x.run.results import write_junit
from v2x.text import escape_log_messages, printable, xml_text

NASTY = "lead\x1b[2J\x1b[1;1HPASS fcw\n  ok   forged\x00\u202e\x85"


def test_printable_escapes_every_control_and_formatting_character() -> None:
    out = printable(NASTY)
    assert out == "lead\\x1b[2J\\x1b[1;1HPASS fcw\\n  ok   forged\\x00\\u202e\\x85"
    assert out.isprintable()
    assert (
        printable("follower: first FCW at t=6.00 s, 16.7 m/s, über")
        == "follower: first FCW at t=6.00 s, 16.7 m/s, über"
    )
    # every control, format and line-separating character, not a list of known ones (a second attack review: the
    # line and paragraph separators split a summary line for Python's splitlines; U+061C was left as it was)
    seps = "a\u2028b\u2029c\u061cd\u2060e\ufeff\U000e0041"
    assert printable(seps) == "a\\u2028b\\u2029c\\u061cd\\u2060e\\ufeff\\U000e0041"
    assert len(printable(seps).splitlines()) == 1


def test_xml_text_keeps_newlines_and_escapes_what_xml_cannot_hold() -> None:
    assert xml_text("a\nb\tc") == "a\nb\tc"
    assert xml_text("x\x1by\x00\ud800") == "x\\x1by\\x00\\ud800"


def _result(detail: str) -> dict[str, object]:
    exp = {"name": f"expectation {detail}", "variant": "v2x", "passed": False, "detail": detail}
    return {"scenario": "fcw", "seed": 0, "expectations": [exp], "run": {"wall_seconds": 1.0}}


def test_both_junit_files_parse_whatever_the_texts_hold(tmp_path: Path) -> None:
    path = write_junit([_result(NASTY)], tmp_path / "run.xml", errors=[("icw", NASTY)])
    root = ET.parse(path).getroot()
    failure = root.find(".//failure")
    assert failure is not None and failure.get("message", "").startswith("lead\\x1b[2J")
    check = tmp_path / "check.xml"
    write_check_junit([CaseResult("fcw", "v2x", "fail", [NASTY, "second\x0bline"], 1.0)], check)
    assert "\\x0b" in ET.tostring(ET.parse(check).getroot(), encoding="unicode")


def test_the_run_summary_and_log_lines_cannot_be_forged(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from v2x.run.cli import _print_summary

    result = {
        **_result(NASTY),
        "passed": False,
        "metrics": {},
        "flagged": [],
    }
    _print_summary(result, Path("results/fcw/result.json"))
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\n  ok   forged" not in out
    assert out.splitlines()[0].startswith("FAIL fcw") and len(out.splitlines()) == 2
    old = logging.getLogRecordFactory()
    escape_log_messages()
    try:
        with caplog.at_level(logging.INFO, logger="v2x.test"):
            logging.getLogger("v2x.test").info("%s t=%.2f s: %s", "lead", 1.0, NASTY)
    finally:
        logging.setLogRecordFactory(old)
    [record] = [r for r in caplog.records if r.name == "v2x.test"]
    assert record.getMessage().isprintable() and "\\n  ok   forged" in record.getMessage()


def test_the_run_summary_lists_every_collision(capsys: pytest.CaptureFixture[str]) -> None:
    """A newcomer review's run passed while a background car killed its pedestrian, and only the HTML
    report showed it: each variant's summary now lists its collisions, expectation or not."""
    from v2x.run.cli import _print_summary

    m = {
        "messages": {"sent": {}, "delivered": {}, "dropped": {}},
        "latency_ms": {"p50": None, "p95": None},
        "rejected": {},
        "sim_seconds": 15.0,
        "wall_seconds": 1.0,
    }
    crash = {"type": "collision", "variant": "v2x", "t_s": 7.7, "actors": ["bg-1-8", "ped"], "relative_speed_mps": 5.2}
    judged = {"type": "misbehaviour", "variant": "v2x", "t_s": 0.1, "actor": "a", "suspect": "b", "check": "speed"}
    queued = {**m, "background": {"vehicles": 40, "waiting_at_end": 13}}
    result = {
        "scenario": "xped",
        "seed": 0,
        "passed": True,
        "expectations": [],
        "events": [crash, judged],
        "metrics": {"v2x": m, "baseline": queued},
        "flagged": [],
    }
    _print_summary(result, Path("results/xped/result.json"))
    lines = capsys.readouterr().out.splitlines()
    assert "  [v2x] collisions: bg-1-8 / ped at 7.70 s (relative speed 5.2 m/s)" in lines
    assert not any(line.startswith("  [baseline] collisions") for line in lines)
    # misbehaviour reports too (why a warning did not come: newcomer 5), and no "None/None ms" latency
    assert "  [v2x] misbehaviour reported: a of b (speed) at 0.10 s" in lines
    assert (  # a flow above what its lane takes (it was in result.json only: newcomer 5)
        "  [baseline] background: 40 vehicles took the road, 13 still waiting at the entries at the end (their "
        "lane's entry was full: a queue back to it, or a flow above what the lane takes)" in lines
    )
    assert not any(line.startswith("  [v2x] background") for line in lines)
    assert not any("None" in line for line in lines), lines
