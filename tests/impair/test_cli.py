"""``impair list`` and ``impair sample`` through argparse, without v2x.cli."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import pytest

from v2x.impair import NETWORK_PROFILES, POSITIONING_PROFILES, network_link
from v2x.impair.cli import register


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="v2x")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_list_prints_every_profile_with_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["impair", "list"]) == 0
    out = capsys.readouterr().out
    for name in [*POSITIONING_PROFILES, *NETWORK_PROFILES]:
        assert f"\n{name}" in out or out.startswith(name)
    assert out.count("source:") == len(POSITIONING_PROFILES) + len(NETWORK_PROFILES)
    assert "(assumption)" in out and "assumption:" in out
    assert _run(["impair", "list", "--kind", "network"]) == 0
    assert "rtk-fixed" not in capsys.readouterr().out


def test_sample_positioning_csv_and_png(tmp_path: Path) -> None:
    out, png = tmp_path / "rtk.csv", tmp_path / "rtk.png"
    argv = ["impair", "sample", "bdsbas-df", "--hz", "10", "--seconds", "30", "--seed", "3", "--csv", str(out)]
    assert _run([*argv, "--png", str(png)]) == 0
    rows = _read(out)
    assert list(rows[0]) == ["t", "east_m", "north_m", "state", "reported_sigma_m"]
    assert len(rows) == 300
    assert float(rows[0]["t"]) == pytest.approx(0.1) and float(rows[-1]["t"]) == pytest.approx(30.0)
    assert {r["state"] for r in rows} == {"sbas"}
    assert float(rows[0]["reported_sigma_m"]) == pytest.approx(0.82)
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    # Same seed, same trace.
    again = tmp_path / "again.csv"
    assert _run([*argv[:-1], str(again)]) == 0
    assert again.read_text() == out.read_text()


def test_sample_tunnel_outage_moving(tmp_path: Path) -> None:
    out = tmp_path / "dr.csv"
    argv = ["impair", "sample", "tunnel-outage", "--hz", "1", "--seconds", "100", "--speed", "10", "--csv", str(out)]
    assert _run(argv) == 0
    sigma = [float(r["reported_sigma_m"]) for r in _read(out)]
    assert sigma[-1] == pytest.approx(np.hypot(0.01275, 0.025 / np.sqrt(2) * 1000.0), rel=1e-4)
    assert np.all(np.diff(sigma) >= 0.0)


def test_sample_network_curve(tmp_path: Path) -> None:
    out, png = tmp_path / "pc5.csv", tmp_path / "pc5.png"
    argv = ["impair", "sample", "pc5-sidelink-los", "--hz", "10", "--seconds", "100", "--seed", "1"]
    assert _run([*argv, "--csv", str(out), "--png", str(png)]) == 0
    rows = _read(out)
    assert list(rows[0]) == [
        "distance_m",
        "delivery_probability",
        "delivered_fraction",
        "delay_p50_ms",
        "delay_p95_ms",
        "delay_p99_ms",
    ]
    link = network_link("pc5-sidelink-los")
    for r in rows:
        d = float(r["distance_m"])
        p = float(r["delivery_probability"])
        assert p == pytest.approx(float(link.delivery_probability(np.array([d]))[0]), abs=1e-6)
        assert abs(float(r["delivered_fraction"]) - p) <= 4.0 * np.sqrt(max(p * (1 - p), 1e-4) / 1000)
    assert float(rows[-1]["distance_m"]) >= link.max_range_m
    assert float(rows[0]["delay_p50_ms"]) == pytest.approx(1.4)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_sample_cellular_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["impair", "sample", "5g-uu-edge-sa", "--hz", "100", "--seconds", "10", "--csv", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("distance_m,")
    assert len(lines) == 1 + 101  # 0..1000 m in 10 m steps
    p50 = float(lines[1].split(",")[3])
    assert 5.5 < p50 < 7.5


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["no-such-profile"], "unknown profile"),
        (["rtk-fixed", "--hz", "0"], "--hz"),
        (["rtk-fixed", "--seconds", "-1"], "--seconds"),
        (["rtk-fixed", "--speed", "-3"], "--speed"),
        # positioning options with a network profile were taken and ignored (newcomer 5)
        (["cell-degraded", "--speed", "10"], "are for positioning profiles; cell-degraded is a network profile"),
        (["pc5-sidelink-los", "--cold-start"], "are for positioning profiles"),
    ],
)
def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str) -> None:
    assert _run(["impair", "sample", *extra, "--csv", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert message in err
    if message == "unknown profile":
        assert "rtk-fixed" in err and "pc5-sidelink-los" in err


def test_unwritable_output_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "missing-dir" / "x.csv"
    assert _run(["impair", "sample", "rtk-fixed", "--seconds", "1", "--csv", str(target)]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_a_png_alone_and_a_csv_reader_that_stops_early(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A newcomer review: `--csv` was required to draw a PNG, and `--csv - --png X | head` exited 2 on the
    broken pipe without the picture. A PNG alone works; the picture is drawn first; a closed stdout is exit 141,
    quietly; neither output is exit 2, saying what to give."""
    import subprocess
    import sys

    pytest.importorskip("matplotlib")
    png = tmp_path / "alone.png"
    assert _run(["impair", "sample", "rtk-fixed", "--seconds", "2", "--png", str(png)]) == 0
    assert png.read_bytes().startswith(b"\x89PNG")
    assert _run(["impair", "sample", "rtk-fixed"]) == 2
    assert "give --csv FILE ('-': stdout), --png FILE, or both" in capsys.readouterr().err
    piped = tmp_path / "piped.png"
    cmd = [sys.executable, "-m", "v2x.cli", "impair", "sample", "rtk-fixed", "--seconds", "600", "--csv", "-"]
    proc = subprocess.Popen([*cmd, "--png", str(piped)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()  # as `| head -1` does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141 and b"Traceback" not in err, err
    assert piped.read_bytes().startswith(b"\x89PNG")
