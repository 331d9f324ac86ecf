"""``v2x replay`` of crafted or damaged files: each is refused with exit 2, naming the file and what is wrong,
never a traceback or unbounded memory (an attack review, session 17, and a newcomer review). The files are
built here with the MCAP writer, not recorded by a run (tests/test_record.py records real runs; slow)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard
from mcap.records import Chunk
from mcap.writer import CompressionType, Writer

from v2x.cli import main
from v2x.run import record
from v2x.run.record import RecordingError, read_recording, rebuild_result, summary_text

META = {"scenario": "fcw", "variant": "v2x", "seed": "0", "run_id": "r1", "epoch_utc": "2026-01-01T00:00:00+00:00"}
EVENT = {"t_s": 6.0, "type": "warning", "variant": "v2x", "app": "fcw", "target": "follower", "other": "lead"}
VERDICT = {"index": 0, "name": "warned", "variant": "v2x", "passed": True, "detail": "first FCW at t=6.00 s"}
METRICS = {"sim_seconds": 10.0, "delivery_ratio": 1.0}


def _write(
    path: Path,
    *,
    events: list[bytes] | None = None,
    verdicts: list[bytes] | None = None,
    metrics: bytes | None = None,
    result_meta: dict[str, str] | None = None,
    meta: dict[str, str] | None = None,
) -> Path:
    """A recording as VariantRecorder writes one (the v2x metadata, the result channels as JSON, zstd
    chunks, a summary), with any part replaced by raw bytes."""
    with path.open("wb") as f:
        w = Writer(f, compression=CompressionType.ZSTD)
        w.start("", "v2x-testbed")
        sid = w.register_schema("v2x.Event", "jsonschema", b"{}")
        channels = {topic: w.register_channel(topic, "json", sid) for topic in ("/events", "/verdicts", "/metrics")}
        parts = {
            "/events": events if events is not None else [json.dumps(EVENT).encode()],
            "/verdicts": verdicts if verdicts is not None else [json.dumps(VERDICT).encode()],
            "/metrics": [metrics if metrics is not None else json.dumps(METRICS).encode()],
        }
        for topic, datas in parts.items():
            for k, data in enumerate(datas):
                w.add_message(channels[topic], log_time=k, data=data, publish_time=k)
        w.add_metadata("v2x", meta if meta is not None else META)
        w.add_metadata("v2x.result", result_meta if result_meta is not None else {"seed": "0", "run": "{}"})
        w.finish()  # type: ignore[no-untyped-call]
    return path


def test_an_honest_file_reads_and_rebuilds(tmp_path: Path) -> None:
    rec = read_recording(_write(tmp_path / "ok.mcap"))
    result = rebuild_result([rec])
    assert result["passed"] is True and result["events"] == [EVENT] and result["metrics"] == {"v2x": METRICS}
    assert "warning fcw to follower about lead" in summary_text(rec)


_CASES: list[tuple[str, Callable[[], dict[str, Any]], str]] = [
    ("event-empty", lambda: {"events": [b"{}"]}, "message 1: not an event of a result: events[0]: expected t_s"),
    ("event-list", lambda: {"events": [b"[1,2]"]}, "/events message 1: expected a JSON object, got list"),
    ("event-notjson", lambda: {"events": [b"\xff\xfe not json"]}, "/events message 1: not UTF-8 JSON text"),
    ("event-tstr", lambda: {"events": [json.dumps({**EVENT, "t_s": "x"}).encode()]}, "expected t_s and type"),
    ("event-nan", lambda: {"events": [b'{"t_s": NaN, "type": "warning", "variant": "v2x"}']}, "NaN is not a number"),
    ("event-actor", lambda: {"events": [json.dumps({**EVENT, "target": 5}).encode()]}, "events[0].target"),
    ("verdict-noindex", lambda: {"verdicts": [b'{"name": "w"}']}, "/verdicts message 1: verdicts[0].index"),
    ("verdict-passed", lambda: {"verdicts": [json.dumps({**VERDICT, "passed": "yes"}).encode()]}, ".passed"),
    ("metrics-str", lambda: {"metrics": b'"hello"'}, "/metrics: expected a JSON object, got str"),
    ("seed-str", lambda: {"result_meta": {"seed": "abc"}}, "metadata 'seed': expected an integer >= 0"),
    ("run-notjson", lambda: {"result_meta": {"seed": "0", "run": "not json"}}, "'run': not valid JSON"),
    ("no-variant", lambda: {"meta": {"scenario": "fcw"}}, "its 'v2x' metadata has no 'variant'"),
]


@pytest.mark.parametrize(("change", "message"), [c[1:] for c in _CASES], ids=[c[0] for c in _CASES])
def test_a_crafted_recording_is_refused_naming_the_file_and_what_is_wrong(
    tmp_path: Path, change: Callable[[], dict[str, Any]], message: str
) -> None:
    path = _write(tmp_path / "crafted.mcap", **change())
    with pytest.raises(RecordingError) as caught:
        read_recording(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)


def test_the_rebuilt_result_gets_the_report_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "map.mcap", result_meta={"seed": "0", "run": "{}", "map": '{"lanes": 5}'})
    out = tmp_path / "r.html"
    assert main(["replay", str(path), "--report", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: the result rebuilt from the recording is not a v2x result document: map.lanes" in err
    assert "Traceback" not in err and not out.exists()


def test_a_chunk_declaring_more_than_the_limit_is_not_decompressed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The attack's bomb was 23 kB declaring 600 MB (1.3 GB read): here the limit is lowered instead.
    monkeypatch.setattr(record, "MAX_CHUNK_BYTES", 64 * 1024)
    path = _write(tmp_path / "bomb.mcap", events=[b" " * 200_000 + json.dumps(EVENT).encode()])
    assert path.stat().st_size < 10_000
    assert main(["replay", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: a chunk of 20" in err and "bytes uncompressed (at most 65536 bytes" in err


def test_chunks_declaring_far_more_than_the_file_holds_are_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Many chunks, each under the limit, would still cost minutes of decompression: their total is bounded by
    # the file's size (here a ratio of 2 instead of 100, and chunks of at most 1.3 MB instead of 64 MiB).
    monkeypatch.setattr(record, "MAX_CHUNK_BYTES", 1_300_000)
    monkeypatch.setattr(record, "MAX_INFLATE_RATIO", 2)
    path = _write(tmp_path / "many.mcap", events=[b" " * 400_000 + json.dumps(EVENT).encode()] * 5)
    with pytest.raises(RecordingError, match=r"its chunks declare \d+ bytes uncompressed, \d+ times the file's"):
        read_recording(path)
    monkeypatch.undo()
    monkeypatch.setattr(record, "MAX_KEPT_BYTES", 1_000_000)
    with pytest.raises(RecordingError, match="its result channels hold more than 1000000 bytes"):
        read_recording(path)


def test_a_chunk_whose_data_is_more_than_it_declares_is_read_only_that_far() -> None:
    data = zstandard.ZstdCompressor().compress(b" " * 50_000_000)  # the frame says 50 MB; the chunk 1000 bytes
    chunk = Chunk(
        compression="zstd",
        data=data,
        message_start_time=0,
        message_end_time=0,
        uncompressed_crc=0,
        uncompressed_size=1000,
    )
    with pytest.raises(RecordingError, match="a chunk's data is not the 1000 bytes it declares"):
        record._inflate(Path("x.mcap"), chunk)
    with pytest.raises(RecordingError, match="compressed with 'lz4'"):
        record._inflate(Path("x.mcap"), Chunk("lz4", b"", 0, 0, 0, uncompressed_size=10))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "an empty file, not an MCAP recording"),
        (b"abc", "not an MCAP file (it does not start with the MCAP magic bytes)"),  # was a struct.error
        (b"\x89MCAP", "5 bytes, the start of an MCAP file; not a finished recording: the file was cut short"),
        (None, "not a finished recording: the file was cut short"),  # was "unknown (opcode 16) record has length"
    ],
    ids=["empty", "3-bytes", "5-bytes", "cut-short"],
)
def test_a_damaged_or_unfinished_file_is_said_to_be_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, message: str
) -> None:
    path = tmp_path / "f.mcap"
    if content is None:
        whole = _write(tmp_path / "whole.mcap").read_bytes()
        content = whole[: len(whole) - 100]
    path.write_bytes(content)
    assert main(["replay", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"v2x replay: {path}: {message}" in err and "Traceback" not in err


def test_control_characters_in_a_recording_reach_the_terminal_escaped(tmp_path: Path) -> None:
    crafted = {**EVENT, "other": "lead\x1b[2J\x1b[H PASS everything"}
    text = summary_text(read_recording(_write(tmp_path / "ansi.mcap", events=[json.dumps(crafted).encode()])))
    assert "\x1b" not in text and "about lead\\x1b[2J\\x1b[H PASS everything" in text


def test_a_report_that_cannot_be_written_is_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "ok.mcap")
    (tmp_path / "a-file").write_text("")
    assert main(["replay", str(path), "--report", str(tmp_path / "a-file" / "r.html")]) == 3  # was a traceback
    assert "v2x replay: cannot write" in capsys.readouterr().err


def test_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    # (v2x report and the golden records had the same: a FIFO blocked the command for good)
    import os

    os.mkfifo(tmp_path / "run.mcap")
    with pytest.raises(RecordingError, match="not a regular file: not a recording"):
        read_recording(tmp_path / "run.mcap")


def test_a_recording_of_many_channels_with_a_huge_topic_prints_a_bounded_summary(tmp_path: Path) -> None:
    """A 270 kB crafted recording (one topic of 200,000 characters, 2000 more channels) printed 400 MB:
    every channel line was padded to the longest topic (attack review 2)."""
    path = tmp_path / "wide.mcap"
    with path.open("wb") as f:
        w = Writer(f)
        w.start("", "x")
        w.add_metadata("v2x", META)
        sid = w.register_schema("s", "jsonschema", b"{}")
        w.register_channel("/" + "A" * 200_000, "json", sid)
        for k in range(2000):
            w.register_channel(f"/c{k}", "json", sid)
        w.finish()  # type: ignore[no-untyped-call]
    text = summary_text(read_recording(path))
    assert len(text) < 50_000
    assert "... (200001 characters)" in text and "... and 1801 more channels" in text
