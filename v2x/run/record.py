"""Recording runs as MCAP files (``v2x run --record DIR``) and reading them back (``v2x replay``).

One file per run and variant, ``DIR/<scenario>-<variant>.mcap``, zstd-chunked with the full summary and
indexes. Log times are the scenario's epoch plus the simulation time (deterministic, and Foxglove shows the
run at its scenario's date). Channels (docs/RECORDING.md):

* ``/v2x/tx/<actor>``: every Envelope the world accepted from the actor (protobuf ``v2x.wire.Envelope``,
  the bytes as sent), log time = send time;
* ``/v2x/rx/<actor>``: every delivery to the actor (JSON ``v2x.Delivery``: sender, seq, message, link,
  send and delivery times, latency), log time = delivery time;
* ``/truth/<actor>`` and ``/gnss/<actor>``: the true position and the positioning reading (truth + the
  receiver's error, with its covariance) as ``foxglove.LocationFix`` in WGS84 (the scenario's origin and
  ``v2x.geodesy.LocalFrame``): the Map panel;
* ``/tf`` (``foxglove.FrameTransforms``: ``world`` -> each actor) and ``/scene`` (``foxglove.SceneUpdate``:
  the lanes, RSU ranges and the actors' boxes): the 3D panel;
* ``/log`` (``foxglove.Log``): warnings, collisions, violations, stops, positioning changes and verdicts;
* ``/events``, ``/verdicts``, ``/metrics`` (JSON): the result document's events, this variant's
  expectations and metrics exactly as in result.json, from which ``v2x replay --report`` rebuilds it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import os
import stat
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from foxglove_schemas_protobuf.Color_pb2 import Color
from foxglove_schemas_protobuf.CubePrimitive_pb2 import CubePrimitive
from foxglove_schemas_protobuf.FrameTransform_pb2 import FrameTransform
from foxglove_schemas_protobuf.FrameTransforms_pb2 import FrameTransforms
from foxglove_schemas_protobuf.LinePrimitive_pb2 import LinePrimitive
from foxglove_schemas_protobuf.LocationFix_pb2 import LocationFix
from foxglove_schemas_protobuf.Log_pb2 import Log
from foxglove_schemas_protobuf.Point3_pb2 import Point3
from foxglove_schemas_protobuf.Pose_pb2 import Pose as FoxPose
from foxglove_schemas_protobuf.Quaternion_pb2 import Quaternion
from foxglove_schemas_protobuf.SceneEntity_pb2 import SceneEntity
from foxglove_schemas_protobuf.SceneUpdate_pb2 import SceneUpdate
from foxglove_schemas_protobuf.Vector3_pb2 import Vector3
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from mcap.writer import CompressionType
from mcap.writer import Writer as McapWriter
from mcap_protobuf.schema import register_schema

from v2x.apps.registry import time_label
from v2x.files import temp_beside
from v2x.geodesy import LocalFrame
from v2x.run.report import MAX_RESULT_BYTES
from v2x.run.results import flagged, regular_size
from v2x.run.tap import Event, Pose, Tap, background_boxes, poses
from v2x.scenario.model import Scenario
from v2x.sim.events import event_order
from v2x.sim.simulation import Simulation
from v2x.text import printable
from v2x.wire import testbed_pb2

PROFILE = ""  # protobuf + JSON channels: no ROS profile
FRAME_WORLD = "world"
JSON_SCHEMAS: dict[str, dict[str, Any]] = {
    "v2x.Delivery": {
        "type": "object",
        "properties": {
            "sender": {"type": "string"},
            "seq": {"type": "integer"},
            "msg": {"type": "string"},
            "link": {"type": "string"},
            "receiver": {"type": "string"},
            "tx_time_s": {"type": "number"},
            "rx_time_s": {"type": "number"},
            "latency_ms": {"type": "number"},
        },
    },
    "v2x.Event": {"type": "object", "properties": {"t_s": {"type": "number"}, "type": {"type": "string"}}},
    "v2x.Expectation": {
        "type": "object",
        "properties": {
            "index": {"type": "integer"},
            "name": {"type": "string"},
            "variant": {"type": "string"},
            "passed": {"type": "boolean"},
            "detail": {"type": "string"},
        },
    },
    "v2x.Metrics": {"type": "object"},
}
KIND_COLOUR = {
    "car": (0.2, 0.45, 0.85),
    "truck": (0.35, 0.35, 0.6),
    "bus": (0.35, 0.35, 0.6),
    "emergency": (0.85, 0.2, 0.2),
    "pedestrian": (0.9, 0.6, 0.1),
    "cyclist": (0.2, 0.7, 0.3),
    "rsu": (0.5, 0.2, 0.7),
}
LOG_INFO, LOG_WARNING, LOG_ERROR = 2, 3, 4  # foxglove.Log.Level


def recording_path(out_dir: Path, scenario_id: str, variant: str) -> Path:
    return out_dir / f"{scenario_id}-{variant}.mcap"


def unreplaceable(out_dir: Path, scenario: Scenario) -> str | None:
    """Why ``--record out_dir`` cannot hold a recording of ``scenario``'s variants (a FIFO, a device, a socket
    or a folder where one goes), or None: said before anything runs."""
    for variant in scenario.variants:
        try:
            _refuse_unreplaceable(recording_path(out_dir, scenario.id, variant))
        except OSError as exc:
            return f"{exc.filename}: {exc.strerror}"
    return None


def _refuse_unreplaceable(path: Path) -> None:
    """FileExistsError if ``path`` is there and is neither a regular file nor a symlink (which a recording
    replaces, never follows): a FIFO, a device, a socket or a folder is left alone, and the run is not made."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        what = "a folder" if stat.S_ISDIR(mode) else "a FIFO, a device or a socket"
        raise FileExistsError(
            errno.EEXIST, f"there is {what} of that name, which a recording does not replace", str(path)
        )


def _quat_yaw(yaw: float) -> Quaternion:
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2))


class VariantRecorder:
    """The recording of one variant's run: an observer for ``v2x.net.world.World`` (``on_tick``), closed
    by ``finish`` (with the verdicts and metrics once the result is known)."""

    def __init__(self, path: Path, scenario: Scenario, *, variant: str, seed: int, run_id: str) -> None:
        self.path = path
        self.scenario = scenario
        self.variant = variant
        self.frame = LocalFrame(scenario.origin.lat_deg, scenario.origin.lon_deg, scenario.origin.alt_m)
        self.epoch_ns = round(scenario.epoch.timestamp()) * 1_000_000_000
        path.parent.mkdir(parents=True, exist_ok=True)
        _refuse_unreplaceable(path)
        # Written into a new file of its own (never through a symlink or into a FIFO planted at ``path``: one
        # overwrote the link's target, the other blocked the run for good: attack review 3), renamed over
        # ``path`` by ``finish``, which the command calls on an interruption too
        fd, self._tmp = temp_beside(path)
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        try:
            self.w = McapWriter(self._file, compression=CompressionType.ZSTD)
            self.w.start(profile=PROFILE, library="v2x-testbed")
        except BaseException:
            self._discard()
            raise
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self._seq: Counter[int] = Counter()
        self.tap = Tap()
        self.closed = False
        self._had_background = False  # a /scene entity of the background traffic was written (and must be emptied)
        self.w.add_metadata(
            "v2x",
            {
                "scenario": scenario.id,
                "variant": variant,
                "seed": str(seed),
                "run_id": run_id,
                "origin_lat_deg": repr(scenario.origin.lat_deg),
                "origin_lon_deg": repr(scenario.origin.lon_deg),
                "origin_alt_m": repr(scenario.origin.alt_m),
                "epoch_utc": scenario.epoch.isoformat(),
                "tick_s": repr(scenario.tick_s),
                "duration_s": repr(scenario.duration_s),
            },
        )
        self._scene_static()

    # -- low level ----------------------------------------------------------------------------------
    def ns(self, t_s: float) -> int:
        return self.epoch_ns + round(t_s * 1e9)

    def _stamp(self, t_s: float) -> Timestamp:
        ns = self.ns(t_s)
        return Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)

    def _channel(self, topic: str, schema: str, encoding: str, message_class: Any = None) -> int:
        cid = self._channels.get(topic)
        if cid is not None:
            return cid
        sid = self._schemas.get(schema)
        if sid is None:
            if message_class is not None:
                sid = register_schema(self.w, message_class)
            else:
                data = json.dumps({"title": schema, **JSON_SCHEMAS[schema]}).encode()
                sid = self.w.register_schema(name=schema, encoding="jsonschema", data=data)
            self._schemas[schema] = sid
        cid = self.w.register_channel(topic=topic, message_encoding=encoding, schema_id=sid)
        self._channels[topic] = cid
        return cid

    def _write(self, cid: int, t_s: float, data: bytes) -> None:
        ns = self.ns(t_s)
        self.w.add_message(channel_id=cid, log_time=ns, data=data, publish_time=ns, sequence=self._seq[cid])
        self._seq[cid] += 1

    def proto(self, topic: str, t_s: float, msg: Message) -> None:
        cid = self._channel(topic, msg.DESCRIPTOR.full_name, "protobuf", type(msg))
        self._write(cid, t_s, msg.SerializeToString())

    def json(self, topic: str, schema: str, t_s: float, doc: dict[str, Any]) -> None:
        cid = self._channel(topic, schema, "json")
        self._write(cid, t_s, json.dumps(doc, sort_keys=False).encode())

    def log(self, t_s: float, level: int, text: str, name: str) -> None:
        self.proto("/log", t_s, Log(timestamp=self._stamp(t_s), level=level, message=text, name=name))  # type: ignore[arg-type]

    # -- what is recorded ---------------------------------------------------------------------------
    def _scene_static(self) -> None:
        """The lanes (centre lines with their widths) and the RSUs' ranges, once at t = 0."""
        sc = self.scenario
        entities = []
        for lane in sc.road.lanes:
            entities.append(
                SceneEntity(
                    timestamp=self._stamp(0.0),
                    frame_id=FRAME_WORLD,
                    id=f"lane/{lane.id}",
                    frame_locked=True,
                    lines=[
                        LinePrimitive(
                            type=LinePrimitive.LINE_STRIP,
                            pose=FoxPose(position=Vector3(), orientation=_quat_yaw(0.0)),
                            thickness=lane.width_m,
                            scale_invariant=False,
                            points=[Point3(x=float(p[0]), y=float(p[1]), z=-0.05) for p in lane.centerline],
                            color=Color(r=0.3, g=0.3, b=0.3, a=0.6),
                        )
                    ],
                )
            )
        for a in sc.actors:
            if a.kind == "rsu" and a.position is not None and a.range_m:
                x, y = float(a.position[0]), float(a.position[1])
                ring = [
                    Point3(x=x + a.range_m * math.cos(k * math.pi / 32), y=y + a.range_m * math.sin(k * math.pi / 32))
                    for k in range(65)
                ]
                entities.append(
                    SceneEntity(
                        timestamp=self._stamp(0.0),
                        frame_id=FRAME_WORLD,
                        id=f"range/{a.id}",
                        frame_locked=True,
                        lines=[
                            LinePrimitive(
                                type=LinePrimitive.LINE_STRIP,
                                pose=FoxPose(position=Vector3(), orientation=_quat_yaw(0.0)),
                                thickness=2.0,
                                scale_invariant=True,
                                points=ring,
                                color=Color(r=0.5, g=0.2, b=0.7, a=0.5),
                            )
                        ],
                    )
                )
        self.proto("/scene", 0.0, SceneUpdate(entities=entities))

    def _fix(self, t_s: float, actor: str, x: float, y: float, sigma: tuple[float, float] | None) -> LocationFix:
        lat, lon, alt = self.frame.to_geodetic(x, y, 0.0)
        fix = LocationFix(
            timestamp=self._stamp(t_s), frame_id=actor, latitude=float(lat), longitude=float(lon), altitude=float(alt)
        )
        if sigma is not None:
            fix.position_covariance.extend([sigma[0] ** 2, 0.0, 0.0, 0.0, sigma[1] ** 2, 0.0, 0.0, 0.0, 0.0])
            fix.position_covariance_type = LocationFix.DIAGONAL_KNOWN
        return fix

    async def on_tick(self, sim: Simulation, tick: int, events: list[Event]) -> None:
        if self.closed:
            return
        t = sim.time_of(tick)
        for s in self.tap.sent(sim):
            self._write(
                self._channel(f"/v2x/tx/{s.sender}", "v2x.wire.Envelope", "protobuf", testbed_pb2.Envelope),
                s.tx_time_s,
                s.raw,
            )
            for d in s.deliveries:
                doc = {
                    "sender": s.sender,
                    "seq": s.seq,
                    "msg": s.msg,
                    "link": s.link,
                    "receiver": d.receiver,
                    "tx_time_s": round(s.tx_time_s, 6),
                    "rx_time_s": round(d.rx_time_s, 6),
                    "latency_ms": round((d.rx_time_s - s.tx_time_s) * 1e3, 3),
                }
                self.json(f"/v2x/rx/{d.receiver}", "v2x.Delivery", round(d.rx_time_s, 6), doc)  # as agents see it: 1 us
        road = [p for p in poses(sim) if p.kind != "platform"]
        self._poses(t, road)
        self._background(t, background_boxes(sim))
        for actor, reading in sim.sensors.gnss.items():
            p = next((q for q in road if q.actor == actor), None)
            if p is None or not reading.available:
                continue
            sigma = (reading.sigma_major_m, reading.sigma_minor_m)
            fix = self._fix(
                t,
                actor,
                p.x_m + reading.east_error_m,
                p.y_m + reading.north_error_m,
                sigma if all(math.isfinite(v) for v in sigma) else None,
            )
            self.proto(f"/gnss/{actor}", t, fix)
        for ev in events:
            self.event(ev)

    def _poses(self, t: float, road: Sequence[Pose]) -> None:
        transforms = []
        entities = []
        for p in road:
            self.proto(f"/truth/{p.actor}", t, self._fix(t, p.actor, p.x_m, p.y_m, None))
            transforms.append(
                FrameTransform(
                    timestamp=self._stamp(t),
                    parent_frame_id=FRAME_WORLD,
                    child_frame_id=p.actor,
                    translation=Vector3(x=p.x_m, y=p.y_m, z=0.0),
                    rotation=_quat_yaw(p.yaw_rad),
                )
            )
            r, g, b = KIND_COLOUR.get(p.kind, (0.5, 0.5, 0.5))
            size = (p.length_m or 0.6, p.width_m or 0.6, 1.5 if p.kind != "rsu" else 5.0)
            entities.append(
                SceneEntity(
                    timestamp=self._stamp(t),
                    frame_id=p.actor,
                    id=f"actor/{p.actor}",
                    lifetime=Duration(nanos=0),
                    frame_locked=True,
                    cubes=[
                        CubePrimitive(
                            pose=FoxPose(position=Vector3(z=size[2] / 2), orientation=_quat_yaw(0.0)),
                            size=Vector3(x=size[0], y=size[1], z=size[2]),
                            color=Color(r=r, g=g, b=b, a=0.9),
                        )
                    ],
                )
            )
        self.proto("/tf", t, FrameTransforms(transforms=transforms))
        self.proto("/scene", t, SceneUpdate(entities=entities))

    def _background(self, t: float, boxes: list[list[float]]) -> None:
        """The background traffic (flows or SUMO) as one ``/scene`` entity of grey boxes in the world frame,
        replaced each tick (a newcomer review found recordings without the cars the run had)."""
        if not boxes and not self._had_background:
            return
        self._had_background = bool(boxes)
        grey = Color(r=0.6, g=0.64, b=0.68, a=0.9)
        cubes = [
            CubePrimitive(
                pose=FoxPose(position=Vector3(x=x, y=y, z=0.75), orientation=_quat_yaw(yaw)),
                size=Vector3(x=length, y=width, z=1.5),
                color=grey,
            )
            for x, y, yaw, length, width in boxes
        ]
        entity = SceneEntity(
            timestamp=self._stamp(t), frame_id=FRAME_WORLD, id="background", lifetime=Duration(nanos=0), cubes=cubes
        )
        self.proto("/scene", t, SceneUpdate(entities=[entity]))

    def event(self, ev: Event) -> None:
        t = float(ev["t_s"])
        self.json("/events", "v2x.Event", t, ev)
        kind = ev["type"]
        if kind == "warning":
            ttc = f", {time_label(str(ev['app']))} {ev['ttc_s']:.2f} s" if ev.get("ttc_s") else ""
            text = f"{str(ev['app']).upper()} to {ev['target']} about {ev['other']} ({ev['conflict']}{ttc})"
            self.log(t, LOG_WARNING, text, f"warning/{ev['target']}")
        elif kind == "collision":
            a, b = ev["actors"]
            self.log(t, LOG_ERROR, f"collision {a} / {b} at {ev['relative_speed_mps']:.1f} m/s", "collision")
        elif kind == "violation":
            self.log(t, LOG_ERROR, f"{ev['actor']} ran the red light at {ev['intersection']}", "violation")
        elif kind == "stop":
            self.log(t, LOG_INFO, f"{ev['actor']} stopped", "stop")
        elif kind == "positioning":
            self.log(t, LOG_INFO, f"{ev['actor']} positioning {ev['state']}", "positioning")
        elif kind == "misbehaviour":
            text = f"{ev['actor']} judged {ev['suspect']} misbehaving ({ev['check']})"
            self.log(t, LOG_WARNING, text, f"misbehaviour/{ev['actor']}")
        else:
            self.log(t, LOG_INFO, f"{kind}: {json.dumps(ev)}", kind)

    def finish(self, result: dict[str, Any] | None = None) -> None:
        """Write the verdicts (this variant's expectations) and metrics of ``result`` and close the file;
        without a result (the run failed) only close it."""
        if self.closed:
            return
        try:
            self._close(result)
        except BaseException:
            self._discard()  # (a full disk: the file would be cut short; an existing recording stays as it was)
            raise
        self.closed = True

    def _close(self, result: dict[str, Any] | None) -> None:
        """``finish``'s writing: the verdicts, metrics and metadata of ``result``, the summary, then the file
        renamed into place (any error leaves the temporary file for ``finish`` to remove)."""
        if result is not None:
            t_end = float(self.scenario.n_ticks * self.scenario.tick_s)
            for k, exp in enumerate(result["expectations"]):
                if exp["variant"] != self.variant:
                    continue
                self.json("/verdicts", "v2x.Expectation", t_end, {"index": k, **exp})
                mark = "held" if exp["passed"] else "FAILED"
                self.log(
                    t_end,
                    LOG_INFO if exp["passed"] else LOG_ERROR,
                    f"{mark}: {exp['name']}: {exp['detail']}",
                    "verdict",
                )
            metrics = result["metrics"].get(self.variant)
            if metrics is not None:
                self.json("/metrics", "v2x.Metrics", t_end, metrics)
            meta = {"seed": str(result["seed"]), "run": json.dumps(result["run"])}
            if "map" in result:  # what the report's map draws (v2x/run/tracks.py)
                meta["map"] = json.dumps(result["map"])
            if self.variant in result.get("tracks", {}):
                meta["tracks"] = json.dumps(result["tracks"][self.variant])
            self.w.add_metadata("v2x.result", meta)
        self.w.finish()  # type: ignore[no-untyped-call]
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self.path)

    def _discard(self) -> None:
        """Close and remove the temporary file (after an error writing it)."""
        self.closed = True
        with contextlib.suppress(OSError):
            self._file.close()
        self._tmp.unlink(missing_ok=True)


@dataclass
class Recording:
    """``v2x run --record DIR`` for one scenario run: a recorder per variant (``observer``), finished
    together once the result is known."""

    out_dir: Path
    scenario: Scenario
    seed: int
    recorders: dict[str, VariantRecorder] = field(default_factory=dict)

    def observer(self, variant: str, run_id: str) -> VariantRecorder:
        path = recording_path(self.out_dir, self.scenario.id, variant)
        rec = VariantRecorder(path, self.scenario, variant=variant, seed=self.seed, run_id=run_id)
        self.recorders[variant] = rec
        return rec

    def finish(self, result: dict[str, Any] | None) -> list[Path]:
        """Finish every variant's recording, then raise the first error if one could not be written (the
        others are still renamed into place, and no temporary file is left behind; an interruption while
        finishing one still finishes the others)."""
        failed: BaseException | None = None
        for rec in self.recorders.values():
            try:
                rec.finish(result)
            except BaseException as exc:
                failed = failed or exc
        if failed is not None:
            raise failed
        return [rec.path for rec in self.recorders.values()]

    def abandon(self) -> None:
        """Close what was recorded so far (the run failed or was interrupted): readable by ``v2x replay``,
        under its final name; never raises (a file that cannot be written is removed)."""
        with contextlib.suppress(BaseException):
            self.finish(None)


# -- reading back -------------------------------------------------------------------------------------
@dataclass
class Replayed:
    """What ``v2x replay`` reads from one recording."""

    path: Path
    meta: dict[str, str]
    channels: dict[str, tuple[str, str, int]]  # topic -> (schema name, encoding, message count)
    start_ns: int
    end_ns: int
    events: list[Event]
    verdicts: list[dict[str, Any]]
    metrics: dict[str, Any] | None
    run: dict[str, Any]
    seed: int
    scene: dict[str, Any] | None = None  # the result's map (v2x/run/tracks.py)
    tracks: dict[str, list[list[float]]] | None = None  # this variant's tracks
    # The recorder writes the 'v2x.result' metadata (with the verdicts and metrics) only when the run ended
    # with a result; a run interrupted or stopped by an error leaves a readable file without it.
    finished: bool = True

    def stopped_at_s(self) -> float:
        """The simulation time of the last message recorded (log time = epoch + t; the time span from the
        first message if the metadata's epoch does not parse)."""
        try:
            epoch_ns = round(datetime.fromisoformat(self.meta["epoch_utc"]).timestamp()) * 1_000_000_000
        except (KeyError, ValueError, TypeError, OverflowError):
            epoch_ns = self.start_ns
        return max(0.0, (self.end_ns - epoch_ns) / 1e9)

    def duration_s(self) -> float | None:
        """The scenario's duration as the metadata says (None if it does not say it as a finite number)."""
        try:
            value = float(self.meta["duration_s"])
        except (KeyError, ValueError, TypeError):
            return None
        return value if math.isfinite(value) and value >= 0 else None

    def incomplete(self) -> str:
        """Why this recording is not of a finished run ("" if it is): where it stopped, of how long."""
        if self.finished:
            return ""
        duration = self.duration_s()
        of = f" of {duration:g} s" if duration is not None else ""
        return (
            f"the run did not finish: recorded up to t = {self.stopped_at_s():.2f} s{of}, with no verdicts "
            "(interrupted or stopped by an error)"
        )


class RecordingError(ValueError):
    """Not a v2x recording (or not a readable MCAP file)."""


# What ``v2x replay`` reads of a file, bounded before it is read (a crafted file of 23 kB declared a chunk
# of 600 MB of zstd-compressed spaces, and reading it took 1.3 GB): a chunk is decompressed only if it says
# it holds at most MAX_CHUNK_BYTES (ours hold about 1 MiB: the MCAP writer's default chunk size; a chunk is
# larger only if one message is), into at most what it says; the chunks read declare together at most
# MAX_INFLATE_RATIO times the file's size; and what is kept of the messages (the result document's events,
# verdicts and metrics, and the result metadata) is at most what a result file may be
# (v2x.run.report.MAX_RESULT_BYTES, MAX_EVENTS).
MAX_CHUNK_BYTES = 64 * 1024 * 1024
MAX_INFLATE_RATIO = 100  # uncompressed / compressed bytes of the chunks read (v2x's recordings: about 7)
MAX_KEPT_BYTES = MAX_RESULT_BYTES  # the result channels' messages and metadata: at most a result file's size
MCAP_MAGIC = b"\x89MCAP0\r\n"
_FOOTER_BYTES = 1 + 8 + 8 + 8 + 4  # opcode, length, summary start, summary offset start, CRC
_FOOTER_HEAD = bytes([0x02]) + (_FOOTER_BYTES - 9).to_bytes(8, "little")  # the footer's opcode and length
RESULT_TOPICS = ("/events", "/verdicts", "/metrics")
_NOT_FINISHED = (
    "not a finished recording: the file was cut short (a copy that stopped early, or the temporary file of "
    "a run killed before it ended or still being written); a recording is complete once its run has ended"
)


def _check_container(path: Path, f: IO[bytes]) -> None:
    """Refuse what is not a whole MCAP file before the MCAP reader sees it: empty, a few bytes, another
    kind of file, or one cut short (it must end with the footer and magic the writer puts last)."""
    size = os.fstat(f.fileno()).st_size
    if size == 0:
        raise RecordingError(f"{path}: an empty file, not an MCAP recording")
    head = f.read(len(MCAP_MAGIC))
    if head != MCAP_MAGIC[: len(head)] or len(head) < len(MCAP_MAGIC):
        if head == MCAP_MAGIC[: len(head)]:
            raise RecordingError(f"{path}: {size} bytes, the start of an MCAP file; {_NOT_FINISHED}")
        raise RecordingError(f"{path}: not an MCAP file (it does not start with the MCAP magic bytes)")
    if size < 2 * len(MCAP_MAGIC) + _FOOTER_BYTES:
        raise RecordingError(f"{path}: {size} bytes, the start of an MCAP file; {_NOT_FINISHED}")
    f.seek(-(_FOOTER_BYTES + len(MCAP_MAGIC)), os.SEEK_END)
    tail = f.read(_FOOTER_BYTES + len(MCAP_MAGIC))
    if tail[-len(MCAP_MAGIC) :] != MCAP_MAGIC:
        raise RecordingError(f"{path}: {_NOT_FINISHED}")
    if tail[:9] != _FOOTER_HEAD:
        raise RecordingError(f"{path}: damaged or cut short: no MCAP footer before its closing magic bytes")
    f.seek(0)


def _chunk_size(path: Path, declared: int) -> int:
    if declared > MAX_CHUNK_BYTES:
        raise RecordingError(
            f"{path}: a chunk of {declared} bytes uncompressed (at most {MAX_CHUNK_BYTES} bytes: a v2x "
            "recording's chunks hold about 1 MiB); not read"
        )
    return declared


def _inflate(path: Path, chunk: Any) -> bytes:
    """A chunk's records, decompressed into at most the size the chunk declares (itself at most
    MAX_CHUNK_BYTES); RecordingError if it declares more, is compressed otherwise than v2x writes (zstd),
    or its data does not decompress to the size it declares."""
    import zstandard

    declared = _chunk_size(path, chunk.uncompressed_size)
    if chunk.compression == "":
        data = bytes(chunk.data)
    elif chunk.compression == "zstd":
        parts: list[bytes] = []
        got = 0
        with zstandard.ZstdDecompressor().stream_reader(chunk.data, read_across_frames=True) as reader:
            while got <= declared:
                part = reader.read(min(declared + 1 - got, 1 << 20))
                if not part:
                    break
                parts.append(part)
                got += len(part)
        data = b"".join(parts)
    else:
        raise RecordingError(f"{path}: a chunk compressed with {chunk.compression[:20]!r} (v2x writes zstd)")
    if len(data) != declared:
        raise RecordingError(f"{path}: a chunk's data is not the {declared} bytes it declares (a damaged file)")
    return data


def _json_doc(path: Path, where: str, raw: bytes | str, want: type) -> Any:
    """A JSON document of the recording (a message or a metadata value), parsed as strictly as a result
    file (v2x.run.report.strict_json: no NaN, numbers in range) and of the type ``want``."""
    from v2x.run.report import strict_json

    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        doc = strict_json(text)
    except UnicodeDecodeError as exc:
        raise RecordingError(f"{path}: {where}: not UTF-8 JSON text") from exc
    except ValueError as exc:  # strict_json's words are for a whole result file
        raise RecordingError(f"{path}: {where}: {str(exc).removeprefix('not a v2x result document: ')}") from exc
    if not isinstance(doc, want):
        kind = "a JSON object" if want is dict else "a JSON list" if want is list else want.__name__
        raise RecordingError(f"{path}: {where}: expected {kind}, got {type(doc).__name__}")
    return doc


def _event_problem(k: int, e: dict[str, Any]) -> str:
    """The report's checks of an event, and the fields the replay's order and summary read are text."""
    from v2x.run.report import event_problem

    problem = event_problem(k, e)
    if problem:
        return problem
    for key in ("type", "variant"):
        if not isinstance(e.get(key), str):
            return f"events[{k}].{key}: expected text"
    for key in ("target", "actor", "other", "suspect", "check", "app"):
        if key in e and not isinstance(e[key], str):
            return f"events[{k}].{key}: expected text"
    actors = e.get("actors", [])
    if not (isinstance(actors, list) and all(isinstance(a, str) for a in actors)):
        return f"events[{k}].actors: expected a list of actor ids"
    return ""


def _verdict_problem(k: int, v: dict[str, Any]) -> str:
    index = v.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 1_000_000:
        return f"verdicts[{k}].index: expected an integer >= 0"
    for key, kind in (("name", str), ("variant", str), ("passed", bool), ("detail", str)):
        if not isinstance(v.get(key), kind):
            return f"verdicts[{k}].{key}: expected {'true or false' if kind is bool else 'text'}"
    return ""


def _seed(path: Path, where: str, text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 40):
        raise RecordingError(f"{path}: {where}: expected an integer >= 0 (a seed), got {text[:40]!r}")
    return int(text)


def read_recording(path: Path) -> Replayed:
    """What ``v2x replay`` shows of a recording. Raises RecordingError naming the file and what is wrong for
    anything that is not a finished v2x recording as ``v2x run --record`` writes it: not MCAP, cut short,
    chunks beyond MAX_CHUNK_BYTES, messages of the result channels that are not the JSON documents the
    recorder wrote (an event as a result file's, a verdict with its index), metadata that does not parse."""
    from v2x.run.report import MAX_EVENTS, metrics_problem

    try:
        if regular_size(path) is None:
            raise RecordingError(f"{path}: not a regular file: not a recording")
        f = path.open("rb")
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    with f:
        _check_container(path, f)
        try:
            summary, meta, result_meta, raw = _read_mcap(path, f)
        except RecordingError:
            raise
        except Exception as exc:
            # The MCAP reader's errors on a damaged or crafted file are of any kind (McapError, struct.error,
            # KeyError, UnicodeDecodeError, ...): each is this file's problem, said with its name.
            why = str(exc)[:200] or type(exc).__name__
            raise RecordingError(f"{path}: not a readable MCAP recording ({type(exc).__name__}: {why})") from exc
    kept = sum(len(data) for _, data in raw) + sum(len(v) for v in result_meta.values())
    if kept > MAX_KEPT_BYTES:
        raise RecordingError(f"{path}: its result channels and metadata hold {kept} bytes (at most {MAX_KEPT_BYTES})")
    for key in ("scenario", "variant"):
        if not meta.get(key):
            raise RecordingError(f"{path}: not a v2x recording (its 'v2x' metadata has no {key!r})")
    events: list[Event] = []
    verdicts: list[dict[str, Any]] = []
    metrics = None
    for topic, data in raw:
        if topic == "/events":
            k = len(events)
            if k >= MAX_EVENTS:
                raise RecordingError(f"{path}: more than {MAX_EVENTS} events")
            event = _json_doc(path, f"/events message {k + 1}", data, dict)
            problem = _event_problem(k, event)
            if problem:
                raise RecordingError(f"{path}: /events message {k + 1}: not an event of a result: {problem}")
            events.append(event)
        elif topic == "/verdicts":
            k = len(verdicts)
            verdict = _json_doc(path, f"/verdicts message {k + 1}", data, dict)
            problem = _verdict_problem(k, verdict)
            if problem:
                raise RecordingError(f"{path}: /verdicts message {k + 1}: {problem}")
            verdicts.append(verdict)
        else:
            metrics = _json_doc(path, "/metrics", data, dict)
            problem = metrics_problem(meta["variant"], metrics)
            if problem:
                raise RecordingError(f"{path}: /metrics: {problem}")
    stats = summary.statistics
    return Replayed(
        path=path,
        meta=meta,
        channels={
            ch.topic: (
                summary.schemas[ch.schema_id].name if ch.schema_id in summary.schemas else "",
                ch.message_encoding,
                stats.channel_message_counts.get(cid, 0),
            )
            for cid, ch in summary.channels.items()
        },
        start_ns=stats.message_start_time,
        end_ns=stats.message_end_time,
        events=sorted(events, key=event_order),
        verdicts=sorted(verdicts, key=lambda v: int(v["index"])),
        metrics=metrics,
        run=_json_doc(path, "metadata v2x.result 'run'", result_meta["run"], dict) if "run" in result_meta else {},
        seed=_seed(path, "metadata 'seed'", result_meta.get("seed", meta.get("seed", "0"))),
        scene=_json_doc(path, "metadata v2x.result 'map'", result_meta["map"], dict) if "map" in result_meta else None,
        tracks=(
            _json_doc(path, "metadata v2x.result 'tracks'", result_meta["tracks"], dict)
            if "tracks" in result_meta
            else None
        ),
        finished=bool(result_meta),
    )


def _read_mcap(path: Path, f: IO[bytes]) -> tuple[Any, dict[str, str], dict[str, str], list[tuple[str, bytes]]]:
    """The summary, the 'v2x' and 'v2x.result' metadata and the result channels' messages (topic, data)
    of an MCAP file, reading only the chunks that hold those channels, each bounded (:func:`_inflate`)."""
    from mcap.data_stream import ReadDataStream
    from mcap.opcode import Opcode
    from mcap.reader import make_reader
    from mcap.records import Chunk, Message, Metadata
    from mcap.stream_reader import StreamReader, breakup_chunk

    reader = make_reader(f)
    summary = reader.get_summary()
    if summary is None or summary.statistics is None:
        raise RecordingError(f"{path}: no MCAP summary ({_NOT_FINISHED})")
    # The two metadata records by their own indexes, each read once (mcap's iter_metadata reads the record of
    # every index: a 7 MB file of 100,000 indexes to one 200,000-entry record took hours: attack review 5)
    found: dict[str, dict[str, str]] = {}
    for index in summary.metadata_indexes:
        if index.name in ("v2x", "v2x.result") and index.name not in found:
            f.seek(index.offset)
            record = next(StreamReader(f, skip_magic=True, record_size_limit=MAX_CHUNK_BYTES).records, None)
            if not isinstance(record, Metadata) or record.name != index.name:
                raise RecordingError(f"{path}: the {index.name!r} metadata index points at no such record")
            found[index.name] = dict(record.metadata)
    meta, result_meta = found.get("v2x", {}), found.get("v2x.result", {})
    if not meta:
        raise RecordingError(f"{path}: not a v2x recording (no 'v2x' metadata)")
    wanted = {cid: ch.topic for cid, ch in summary.channels.items() if ch.topic in RESULT_TOPICS}
    if summary.statistics.message_count and not summary.chunk_indexes:
        raise RecordingError(f"{path}: not a v2x recording (its messages are not in indexed chunks)")
    # Every chunk's declared size, before any is read; and of the chunks to read, their total: at most
    # MAX_INFLATE_RATIO times the file's size (and MAX_CHUNK_BYTES more): a file of many small chunks that
    # each declare 64 MiB of nothing is refused instead of costing minutes of decompression.
    to_read = []
    for ci in sorted(summary.chunk_indexes, key=lambda c: c.chunk_start_offset):
        _chunk_size(path, ci.uncompressed_size)
        if not ci.message_index_offsets or wanted.keys() & ci.message_index_offsets.keys():
            to_read.append(ci)  # its index says it holds result channels (or has no index of them)
    total, size = sum(ci.uncompressed_size for ci in to_read), os.fstat(f.fileno()).st_size
    if total > MAX_INFLATE_RATIO * size + MAX_CHUNK_BYTES:
        raise RecordingError(
            f"{path}: its chunks declare {total} bytes uncompressed, {total / size:.0f} times the file's size "
            f"(at most {MAX_INFLATE_RATIO}: a v2x recording compresses about 7 times); not read"
        )
    raw: list[tuple[str, bytes]] = []
    kept = 0
    for ci in to_read:
        f.seek(ci.chunk_start_offset)
        stream = ReadDataStream(f)
        if stream.read1() != Opcode.CHUNK:
            raise RecordingError(f"{path}: a chunk index points at no chunk (a damaged file)")
        stream.read8()
        chunk = Chunk.read(stream)
        data = _inflate(path, chunk)
        plain = dataclasses.replace(chunk, compression="", data=data)
        for record in breakup_chunk(plain):
            if isinstance(record, Message) and record.channel_id in wanted:
                kept += len(record.data)
                if kept > MAX_KEPT_BYTES:
                    raise RecordingError(f"{path}: its result channels hold more than {MAX_KEPT_BYTES} bytes")
                raw.append((wanted[record.channel_id], bytes(record.data)))
    return summary, meta, result_meta, raw


def rebuild_result(recordings: Iterable[Replayed]) -> dict[str, Any]:
    """The result document of a run from the recordings of its variants (all of one scenario): events,
    expectations (verdicts), metrics as the run wrote them; ``passed`` from the verdicts."""
    from v2x.run.report import result_problem

    recs = list(recordings)
    unfinished = [r for r in recs if not r.finished]
    if unfinished:
        # A recording of an interrupted run holds no verdicts: all([]) made it a green PASS, 0 of 0 held
        # (newcomer review 5). It is not a result; 'v2x replay FILE' shows what it holds.
        r = unfinished[0]
        raise RecordingError(f"{r.path}: {r.incomplete()}: not a result, no report rebuilt")
    scenarios = {r.meta["scenario"] for r in recs}
    if len(scenarios) != 1:
        raise RecordingError(f"recordings of different scenarios: {sorted(scenarios)}")
    seeds = sorted({str(r.seed) for r in recs})
    if len(seeds) != 1:
        raise RecordingError(f"recordings of different runs (seeds {', '.join(seeds)}): one run's variants, please")
    first: dict[str, Replayed] = {}
    for r in recs:
        variant = str(r.meta["variant"])
        other = first.setdefault(variant, r)
        if other is r:
            continue
        # (the same file given twice was let through, and doubled every verdict: newcomer review 5)
        run_id = r.meta.get("run_id")
        same = f" (the same recording, run id {run_id!r}, given twice)" if other.meta.get("run_id") == run_id else ""
        raise RecordingError(
            f"two recordings of variant {variant!r}: {other.path} and {r.path}{same} (one per variant, please)"
        )
    # The variants of one run carry the same 'run' section, whose run_ids name each variant's run id: two
    # runs of the same scenario and seed (different files) were merged into one report.
    for r in recs:
        ids = r.run.get("run_ids")
        own = ids.get(r.meta["variant"]) if isinstance(ids, dict) else None
        if own is not None and own != r.meta.get("run_id"):
            raise RecordingError(f"{r.path}: its metadata names run id {r.meta.get('run_id')!r}, its result {own!r}")
    runs = {json.dumps(r.run, sort_keys=True) for r in recs}
    if len(runs) != 1:
        names = ", ".join(f"{r.path} (run id {r.meta.get('run_id')})" for r in recs)
        raise RecordingError(f"recordings of different runs: {names}: one run's variants, please")
    # Every variant the run had: one left out made a run that failed on a baseline expectation a PASS of the
    # rest (newcomer review 6).
    ids = recs[0].run.get("run_ids")
    missing = sorted(set(ids) - set(first)) if isinstance(ids, dict) else []
    if missing:
        where = ", ".join(str(r.path) for r in recs)
        raise RecordingError(
            f"the run had variant(s) {', '.join(map(repr, missing))} too, whose recording is not given ({where}): "
            "give every variant's file (or the folder --record wrote), or 'v2x replay' without --report to read these"
        )
    events: list[Event] = []
    verdicts: list[dict[str, Any]] = []
    metrics: dict[str, Any] = {}
    for r in recs:
        events.extend(r.events)
        verdicts.extend(r.verdicts)
        if r.metrics is not None:
            metrics[r.meta["variant"]] = r.metrics
    verdicts.sort(key=lambda v: int(v["index"]))
    expectations = [{k: v for k, v in x.items() if k != "index"} for x in verdicts]
    order = [v for v in ("v2x", "baseline") if v in metrics] + sorted(set(metrics) - {"v2x", "baseline"})
    doc = {
        "scenario": scenarios.pop(),
        "seed": recs[0].seed,
        "passed": all(e["passed"] for e in expectations),
        "expectations": expectations,
        "events": sorted(events, key=event_order),
        "metrics": {v: metrics[v] for v in order},
        "run": recs[0].run,
        "flagged": flagged({v: metrics[v] for v in order}),
    }
    if recs[0].scene is not None:
        doc["map"] = recs[0].scene
    tracks = {r.meta["variant"]: r.tracks for r in recs if r.tracks is not None}
    if tracks:
        doc["tracks"] = {v: tracks[v] for v in order if v in tracks}
    # The checks 'v2x report' applies to a result file (v2x.run.report.result_problem): the page is drawn
    # from this document as from one.
    problem = result_problem(doc)
    if problem:
        files = ", ".join(str(r.path) for r in recs)
        raise RecordingError(f"{files}: the result rebuilt from the recording is not a v2x result document: {problem}")
    return doc


MAX_CHANNELS_SHOWN = 200  # channel lines `v2x replay` prints (a recording of ours has a few dozen)
TOPIC_WIDTH = 60  # the channel column's width; longer names are cut to CLIP_CHARS


CLIP_CHARS = 120


def _clip(text: str) -> str:
    return text if len(text) <= CLIP_CHARS else f"{text[: CLIP_CHARS - 20]}... ({len(text)} characters)"


def summary_text(r: Replayed) -> str:
    span = (r.end_ns - r.start_ns) / 1e9 if r.end_ns >= r.start_ns else 0.0
    m = r.meta
    lines = [
        f"{r.path}: scenario {m.get('scenario')} [{m.get('variant')}] seed {m.get('seed')} run {m.get('run_id')}",
        f"  time span {span:.3f} s (from {m.get('epoch_utc')}), {sum(c for _, _, c in r.channels.values())} messages"
        f" on {len(r.channels)} channels",
    ]
    stacks = r.run.get("outside_stacks")  # what was under test (the result's run section; the file's text)
    if isinstance(stacks, dict):
        mine = [
            (a, by[m.get("variant")]) for a, by in stacks.items() if isinstance(by, dict) and m.get("variant") in by
        ]
        if mine:
            lines.append("  outside stacks: " + ", ".join(f"{_clip(str(a))} {_clip(repr(sw))}" for a, sw in mine[:8]))
    # Bounded whatever the file holds: a crafted recording with 2000 channels and one topic of 200,000
    # characters printed 400 MB, every line padded to the longest (attack review 2).
    shown = sorted(r.channels)[:MAX_CHANNELS_SHOWN]
    width = min(max((len(t) for t in shown), default=0), TOPIC_WIDTH)
    for topic in shown:
        schema, enc, count = r.channels[topic]
        lines.append(f"  {_clip(topic).ljust(width)}  {count:7d}  {_clip(schema)} ({_clip(enc)})")
    if len(r.channels) > len(shown):
        lines.append(f"  ... and {len(r.channels) - len(shown)} more channels")
    kinds = Counter(e["type"] for e in r.events)
    lines.append("  events: " + (", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "none"))
    for e in r.events:
        if e["type"] == "warning":
            lines.append(f"    t={e['t_s']:.2f} s warning {e.get('app')} to {e.get('target')} about {e.get('other')}")
        elif e["type"] == "collision":
            lines.append(f"    t={e['t_s']:.2f} s collision {' / '.join(e.get('actors', []))}")
    for v in r.verdicts:
        lines.append(f"  {'ok  ' if v['passed'] else 'FAIL'} {v['name']}: {v['detail']}")
    if not r.finished:
        lines.append(f"  INCOMPLETE: {r.incomplete()}")
    return "\n".join(printable(line) for line in lines)  # (a recording's texts are whatever the file holds)
