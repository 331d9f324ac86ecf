"""The fleet's transmit on arrays (``v2x.core._fleet_wire``). Its BSM envelopes written from arrays
(``refreshed_envelopes`` with ``v2x.wire.bsm_bytes``'s static pieces) are the bytes of ``refresh_bsm`` +
``SerializeToString`` + ``envelope_bytes``, for random templates and values at the edges of their ranges, compiled
and interpreted; its vehicles' numbers read from a FleetInput's bytes (``fleet_vehicle_numbers``) are protobuf's
reading of them, whatever the fields' order; and a fleet that does both sends what a fleet that reads the fields
and refreshes its templates in place sends, tick after tick (new vehicles, accuracy changes, wrecks)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeAlias

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from v2x import units
from v2x.agents import fleet as fleet_module
from v2x.agents.fleet import FleetAgent
from v2x.core import VEHICLE_NUMBERS, always_compiled, fleet_vehicle_numbers, refreshed_envelopes
from v2x.core._jit import compiled, interpreted
from v2x.core._kernels import fleet_vehicle_fields
from v2x.geodesy import LocalFrame
from v2x.wire import common_pb2, day1_pb2, frame_pb2, testbed_pb2
from v2x.wire.bsm import EMERGENCY_USE, VEHICLE_EVENT_BIT, OwnState, encode_bsm, refresh_bsm
from v2x.wire.bsm_bytes import bsm_statics
from v2x.wire.envelope import envelope_bytes, varint
from v2x.wire.fleet import (
    POSITIONING_DOUBLES,
    VEHICLE_DOUBLES,
    add_vehicles,
    serialize_with_deliveries,
    vehicle_bodies,
    vehicle_head,
)

FRAME = LocalFrame(29.5, 106.5, 250.0)
EPOCH = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FLAGS = sorted(set(VEHICLE_EVENT_BIT) | set(EMERGENCY_USE))
Link: TypeAlias = testbed_pb2.LinkKind.ValueType
THRESHOLDS = {"fcw_required_accuracy_m": 1.5, "max_age_s": 1.0, "horizon_s": 6.0, "icw_max_pet_s": 1.5,
              "fcw_ttc_s": 3.0, "warning_validity_s": 2.0}  # fmt: skip

sigmas = st.one_of(st.none(), st.floats(0.0, 20.0))
templates = st.builds(
    OwnState,
    x=st.just(0.0),
    y=st.just(0.0),
    speed_mps=st.just(0.0),
    heading_rad=st.just(0.0),
    accel_mps2=st.just(0.0),
    length_m=st.floats(0.0, 60.0),
    width_m=st.floats(0.0, 15.0),
    height_m=st.floats(0.0, 8.0),
    kind=st.sampled_from(["car", "truck", "bus", "emergency", "pedestrian", "cyclist", "tram"]),
    sigma_major_m=sigmas,
    sigma_minor_m=sigmas,
    braking=st.booleans(),
    flags=st.frozensets(st.sampled_from(FLAGS)),
    turn_signal=st.sampled_from(["", "left", "right"]),
    z=st.sampled_from([-250.0, 0.0, 3.0, 6000.0]),  # (the origin is at 250 m: elevation 0 is left out)
)
int32_edges = [0, 1, -1, 63, -64, 64, -65, 8191, -8192, 8192, 2**20, -(2**20)]
lat = st.one_of(st.sampled_from([*int32_edges, units.LAT_MIN, units.LAT_MAX]), st.integers(-(2**31), 2**31 - 1))
lon = st.one_of(st.sampled_from([*int32_edges, units.LON_MIN, units.LON_MAX]), st.integers(-(2**31), 2**31 - 1))
speed = st.one_of(st.sampled_from([0, 1, 127, 128, units.SPEED_MAX, units.SPEED_MAX + 1]), st.integers(0, 8191))
heading = st.one_of(st.sampled_from([0, 1, 127, 128, 28_799, 28_800]), st.integers(0, 28_800))
long = st.one_of(st.sampled_from([0, 1, -1, 63, -64, 64, units.ACCEL_MIN, units.ACCEL_MAX]), st.integers(-2000, 2001))
accel = st.one_of(
    st.sampled_from([0.0, -0.0, -1e-9, 1e-9, -units.G0 * 0.4, -units.G0 * 0.4 + 1e-12, -20.0, 20.0, -1e6, 1e6]),
    st.floats(-50.0, 50.0),
)
vehicles = st.tuples(
    st.text(max_size=40),  # sender id
    templates,
    st.tuples(lat, lon, speed, heading, long),
    accel,
    st.one_of(st.sampled_from([0, 127, 128, 129, 255, 256]), st.integers(0, 2**40)),  # msg count (wraps at 128)
    st.one_of(st.sampled_from([0, 1, 2**63 - 1]), st.integers(0, 2**63 - 1)),  # seq
    st.integers(0, (1 << units.VEHICLE_EVENT_FLAGS_BITS) - 1),  # event flags set after the refresh
)


def _expected(rows: list[Any], mark: int, tick: int, tx_us: int, link: Link) -> list[bytes]:
    """refresh_bsm, the events set, SerializeToString and envelope_bytes: the bytes written per message today."""
    frames = []
    for sender, own, wire, a, count, _, events in rows:
        msg = encode_bsm(own, actor_id=sender, t_s=12.3, msg_count=5, frame=FRAME, epoch=EPOCH)
        refresh_bsm(msg, lat_deg=0.0, lon_deg=0.0, speed_mps=0.0, heading_rad=0.0, accel_mps2=a, msg_count=count,
                    sec_mark=mark, wire=wire)  # fmt: skip
        msg.bsm.safety_ext.events = events
        frames.append(msg.SerializeToString())
    senders, seqs = [r[0] for r in rows], [r[5] for r in rows]
    return envelope_bytes(senders, seqs, frames, tick=tick, tx_time_us=tx_us, link=link)


def _written(rows: list[Any], mark: int, tick: int, tx_us: int, link: Link) -> list[bytes]:
    statics = []
    for sender, own, *_ in rows:
        template = encode_bsm(own, actor_id=sender, t_s=45.6, msg_count=99, frame=FRAME, epoch=EPOCH)
        s = bsm_statics(sender, template)
        assert s is not None
        statics.append(s)
    return refreshed_envelopes(
        statics,
        np.array([r[5] for r in rows], dtype=np.int64),
        np.array([r[4] for r in rows], dtype=np.int64),
        mark,
        np.array([r[2] for r in rows], dtype=np.int64).reshape(-1, 5).T,
        np.array([r[3] for r in rows], dtype=np.float64),
        np.array([r[6] for r in rows], dtype=np.int64),
        tick=tick,
        tx_time_us=tx_us,
        link=link,
    )


@FUZZ
@given(
    rows=st.lists(vehicles, min_size=1, max_size=40),
    mark=st.one_of(st.sampled_from([0, 1, 59_999, 60_000, 65_535]), st.integers(0, 65_535)),
    tick=st.one_of(st.just(0), st.integers(0, 2**63)),
    tx_us=st.integers(-(2**62), 2**62),
    link=st.sampled_from([testbed_pb2.LINK_PC5, testbed_pb2.LINK_UU, testbed_pb2.LINK_UNSPECIFIED]),
)
def test_written_envelopes_are_protobufs_bytes(rows: list[Any], mark: int, tick: int, tx_us: int, link: Link) -> None:
    want = _expected(rows, mark, tick, tx_us, link)
    assert _written(rows, mark, tick, tx_us, link) == want  # interpreted (up to SMALL_WORLD vehicles)
    with always_compiled():
        assert _written(rows, mark, tick, tx_us, link) == want


def test_a_large_batch_compiled_and_one_by_one_agree() -> None:
    rng = np.random.default_rng(7)
    kinds = ["car", "truck", "bus", "emergency"]
    rows = []
    for k in range(300):
        own = OwnState(0.0, 0.0, 0.0, 0.0, 0.0, 2.0 + k % 17, 1.8, 1.5, kinds[k % 4], 0.3 if k % 3 else None,
                       0.2 if k % 3 else None, False, flags=frozenset(FLAGS[: k % 5]))  # fmt: skip
        wire = (int(rng.integers(units.LAT_MIN, units.LAT_MAX)), int(rng.integers(units.LON_MIN, units.LON_MAX)),
                int(rng.integers(0, 8191)), int(rng.integers(0, 28_800)), int(rng.integers(-2000, 2001)))  # fmt: skip
        rows.append((f"bg-{k}", own, wire, float(rng.normal(0.0, 5.0)), k * 7, k + 1, int(rng.integers(0, 1 << 13))))
    want = _expected(rows, 59_999, 17, 1_700_000, testbed_pb2.LINK_PC5)
    assert _written(rows, 59_999, 17, 1_700_000, testbed_pb2.LINK_PC5) == want  # (compiled: above SMALL_WORLD)
    one = [_written([r], 59_999, 17, 1_700_000, testbed_pb2.LINK_PC5)[0] for r in rows[:20]]
    assert one == want[:20]


def test_the_writers_keys_are_the_fields_numbers() -> None:
    assert [f.number for f in day1_pb2.BSM.DESCRIPTOR.fields] == list(range(1, 17))
    assert [f.number for f in common_pb2.Position3D.DESCRIPTOR.fields] == [1, 2, 3]
    assert [f.number for f in common_pb2.AccelerationSet4Way.DESCRIPTOR.fields] == [1, 2, 3, 4]
    assert day1_pb2.BrakeSystemStatus.DESCRIPTOR.fields_by_name["brake_pedal"].number == 1
    assert day1_pb2.VehicleSafetyExtensions.DESCRIPTOR.fields_by_name["events"].number == 1
    assert frame_pb2.MessageFrame.DESCRIPTOR.fields_by_name["bsm"].number == 1
    envelope = testbed_pb2.Envelope.DESCRIPTOR.fields_by_name
    assert [envelope[n].number for n in ("sender_id", "seq", "frame")] == [1, 2, 7]


# -- the vehicles' numbers read from the bytes ------------------------------------------------------------

doubles = st.one_of(
    st.sampled_from([0.0, -0.0, float("nan"), float("inf"), -float("inf"), 5e-324, 1e300]), st.floats(-1e6, 1e6)
)


def _read(raw: bytes, n: int) -> np.ndarray | None:
    """``fleet_vehicle_numbers`` (its kernel compiled), after checking that the kernel interpreted finds the same."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    found = []
    for run in (interpreted(fleet_vehicle_fields), compiled(fleet_vehicle_fields)):
        bits = np.full((n, len(VEHICLE_NUMBERS)), 7, dtype=np.uint64)
        found.append((run(buf, bits), bits.tobytes()))
    assert found[0] == found[1]
    with always_compiled():
        return fleet_vehicle_numbers(raw, n)


def _fields(inp: testbed_pb2.FleetInput) -> np.ndarray:
    rows = [[getattr(v, f) for f in VEHICLE_NUMBERS] for v in inp.vehicles]
    return np.array(rows, dtype=np.float64).reshape(-1, len(VEHICLE_NUMBERS))


def _same(a: np.ndarray | None, b: np.ndarray) -> bool:
    return a is not None and a.shape == b.shape and a.tobytes() == b.tobytes()  # (bit for bit: -0.0, nan)


@FUZZ
@given(
    rows=st.lists(
        st.tuples(st.lists(doubles, min_size=15, max_size=15), st.booleans(), st.text(max_size=20)), max_size=12
    ),
    shuffle=st.randoms(use_true_random=False),
    extra=st.sampled_from(["", "twice", "unknown", "wrong_type"]),
)
def test_numbers_read_from_the_bytes_are_protobufs_reading(
    rows: list[tuple[list[float], bool, str]], shuffle: Any, extra: str
) -> None:
    """Vehicles written field by field in any order (protobuf's own order, shuffled), a field given twice, an
    unknown field, a field with another wire type: the numbers protobuf's parser gives, bit for bit."""
    names = VEHICLE_NUMBERS[:-1]
    parts = []
    for values, wrecked, vid in rows:
        fields = [testbed_pb2.FleetVehicle(vehicle_id=vid, kind="car").SerializeToString()]
        for name, value in zip(names, values, strict=True):
            one = testbed_pb2.FleetVehicle()
            setattr(one, name, value)
            fields.append(one.SerializeToString())
        fields.append(testbed_pb2.FleetVehicle(wrecked=wrecked).SerializeToString())
        shuffle.shuffle(fields)
        if extra == "twice":
            fields.append(testbed_pb2.FleetVehicle(y_m=values[0] + 1.0, wrecked=not wrecked).SerializeToString())
        elif extra == "unknown":
            fields.append(varint(99 << 3 | 1) + bytes(8))  # field 99, 64 bits
            fields.append(b"\xf8\x06\x05" + b"\xfa\x06\x02ab")  # fields 111: a varint, and bytes
        elif extra == "wrong_type":
            fields.append(b"\x18\x05")  # x_m (3) as a varint: unknown to protobuf, x_m unchanged
        body = b"".join(fields)
        parts.append(b"\x32" + varint(len(body)) + body)
    raw = b"".join([testbed_pb2.FleetInput(run_id="r", tick=9).SerializeToString(), *parts, b"\x3a\x02xy"])
    inp = testbed_pb2.FleetInput.FromString(raw)
    want = _fields(inp)
    assert _same(_read(raw, len(rows)), want)
    assert _read(raw, len(rows) + 1) is None  # (not the vehicles there are)


def test_numbers_of_a_fleet_input_the_world_writes_are_its_fields() -> None:
    """As the world writes a FleetInput (``add_vehicles``, the deliveries after it): with and without
    positioning, wrecks, envelopes and deliveries around the vehicles."""
    rng = np.random.default_rng(11)
    for positioning in (False, True):
        n = 120
        names = VEHICLE_DOUBLES + (POSITIONING_DOUBLES if positioning else ())
        cols = [rng.normal(0.0, 100.0, n) for _ in names]
        cols[3][:20] = 0.0
        heads = [vehicle_head(f"bg-{k}", "car", positioning=positioning, wrecked=k % 7 == 0) for k in range(n)]
        msg = testbed_pb2.FleetInput(run_id="r", tick=4, time_us=400_000, envelopes=[b"e" * 300, b""])
        add_vehicles(msg, heads, vehicle_bodies(cols), range(n), positioning=positioning)
        counts = np.full(n, 2)
        raw = serialize_with_deliveries(msg, counts, np.zeros(2 * n, dtype=np.int64), np.zeros(2 * n))
        inp = testbed_pb2.FleetInput.FromString(raw)
        assert _same(_read(raw, n), _fields(inp))
    few = testbed_pb2.FleetInput(vehicles=[testbed_pb2.FleetVehicle(x_m=1.0)] * 3).SerializeToString()
    assert fleet_vehicle_numbers(few, 3) is None  # (a small fleet reads the fields: no interpreted pass)


# -- the fleet: written from the arrays, or refreshed in place -------------------------------------------


def _inputs(n_ticks: int, seed: int) -> list[testbed_pb2.FleetInput]:
    """A fleet's inputs: vehicles that come and go, change their accuracy (a fix lost and found, another
    profile), become wrecks, brake hard, have a NaN for one tick; positions far and near the origin."""
    rng = np.random.default_rng(seed)
    out = []
    for tick in range(1, n_ticks + 1):
        inp = testbed_pb2.FleetInput(
            run_id="r", tick=tick, time_us=tick * 100_000, tick_us=100_000, truth_time_us=(tick - 1) * 100_000
        )
        for k in range(30):  # (a fleet up to SMALL_WORLD: interpreted, unless always_compiled)
            if (k + tick) % 9 == 0 and k % 2:  # (away for this tick: its template is dropped)
                continue
            sigma = [0.0, 0.4, 0.4, 1.5, 30.0][(k + tick // 4) % 5] if k % 3 else 0.0
            inp.vehicles.add(
                vehicle_id=f"bg-{k}",
                kind=["car", "truck", "bus", "emergency"][k % 4],
                x_m=float(rng.normal(0.0, 3000.0)),
                y_m=float(rng.normal(0.0, 3000.0)),
                vx_mps=float(rng.normal(0.0, 10.0)),
                vy_mps=float(rng.normal(0.0, 10.0)),
                ax_mps2=float(rng.normal(0.0, 2.0)),
                heading_rad=float(rng.uniform(-10.0, 10.0)),
                speed_mps=float(rng.choice([0.0, -0.5, 13.9, 200.0])),
                accel_mps2=float(rng.choice([0.0, -3.0, -3.93, -4.0, -9.0, 2.5, -30.0])),
                length_m=4.5 + k % 3,
                width_m=1.8,
                east_error_m=float(rng.normal(0.0, sigma)) if sigma else 0.0,
                north_error_m=float(rng.normal(0.0, sigma)) if sigma else 0.0,
                sigma_major_m=sigma,
                sigma_minor_m=sigma / 2,
                wrecked=k in (5, 6) and tick >= 4 + k and tick != 12,
            )
        if tick == 7:
            inp.vehicles[3].accel_mps2 = float("nan")  # (a tick refreshed in place, one by one)
        out.append(inp)
    return out


@contextmanager
def _in_place(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fleet in this block refreshes its templates in place (its BSMs' values as if one were not finite)."""
    with monkeypatch.context() as m:
        m.setattr(fleet_module, "motion_columns", lambda *args: None)
        yield


@pytest.mark.parametrize("compiled", [False, True])
def test_a_fleet_sends_the_same_envelopes_either_way(monkeypatch: pytest.MonkeyPatch, compiled: bool) -> None:
    written = FleetAgent("f", frame=FRAME, epoch=EPOCH, thresholds=THRESHOLDS)
    in_place = FleetAgent("f", frame=FRAME, epoch=EPOCH, thresholds=THRESHOLDS)
    for inp in _inputs(20, seed=3):
        raw = inp.SerializeToString()  # (as received: its vehicles' numbers read from the bytes, when compiled)
        if compiled:
            with always_compiled():
                got = written.transmit(inp, raw).SerializeToString()
        else:
            got = written.transmit(inp, raw).SerializeToString()
        with _in_place(monkeypatch):
            want = in_place.transmit(inp).SerializeToString()
        assert got == want, inp.tick
        # The static pieces are the same, though what a refresh sets in the templates stays as it last was in one
        # that writes from the arrays (after accuracy changes too).
        assert written._statics == in_place._statics
        assert written._stated == in_place._stated
    assert written._wrecks == in_place._wrecks == {"bg-5", "bg-6"}


class _NoShapes(dict[tuple[object, ...], object]):
    """A fleet's ``_shapes`` that keeps nothing: every new template encoded and cut for its vehicle."""

    def get(self, key: object, default: object = None) -> object:
        return None

    def __setitem__(self, key: tuple[object, ...], value: object) -> None:
        pass


def test_new_templates_made_once_per_shape_are_those_made_one_by_one() -> None:
    """Vehicles that get their first template on the same tick share one encoding per kind, size, accuracy and
    wreck flag, each with its own id: their templates, static pieces and envelopes are what each
    vehicle's own encoding gives, over vehicles that come and go, change their accuracy and become wrecks."""
    shared = FleetAgent("f", frame=FRAME, epoch=EPOCH, thresholds=THRESHOLDS)
    own = FleetAgent("f", frame=FRAME, epoch=EPOCH, thresholds=THRESHOLDS)
    setattr(own, "_shapes", _NoShapes())  # noqa: B010 (a stand-in of another type)
    for inp in _inputs(20, seed=7):
        assert shared.transmit(inp).SerializeToString() == own.transmit(inp).SerializeToString(), inp.tick
        assert shared.templates.keys() == own.templates.keys()
        for vid, msg in own.templates.items():
            assert shared.templates[vid].SerializeToString() == msg.SerializeToString(), (inp.tick, vid)
        assert shared._statics == own._statics
        assert shared._stated == own._stated
        if inp.tick == 1:  # every vehicle new: several shapes, each shared by several vehicles
            assert 1 < len(shared._shapes) < len(inp.vehicles)


def test_a_signed_fleet_signs_the_same_frames() -> None:
    """A fleet that signs its vehicles' BSMs refreshes its templates in place (the envelope is built to be
    signed): the frames it signs are those an unsigned fleet writes from the arrays, tick after tick."""
    from v2x.wire.security import Signer, authority_for

    ca = authority_for("t", EPOCH, 30.0)
    creds = ca.credentials("f", run_id="t", epoch=EPOCH, run_s=30.0, permissions=("bsm",), change_every_s=10.0)
    signed = FleetAgent("f", frame=FRAME, epoch=EPOCH, thresholds=THRESHOLDS, signer=Signer(creds, EPOCH))
    plain = FleetAgent("f", frame=FRAME, epoch=EPOCH, thresholds=THRESHOLDS)
    for inp in _inputs(12, seed=5):
        raw = inp.SerializeToString()
        with always_compiled():
            got = [testbed_pb2.Envelope.FromString(e) for e in signed.transmit(inp, raw).envelopes]
            want = [testbed_pb2.Envelope.FromString(e) for e in plain.transmit(inp, raw).envelopes]
        assert all(e.HasField("security") for e in got)
        for e in got:
            e.ClearField("security")
        assert got == want
