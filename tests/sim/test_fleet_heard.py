"""The fleet's table of who heard whom when (``FleetAgent.heard``), written and read by the core's compiled
``stamp_deliveries`` and ``touching_pairs_heard``: over a run where vehicles come and go, senders are forgotten and
heard again and columns and rows are given back and used again, every call gives what the numpy expressions the
fleet used before gave on the same table (the pairs heard, then ``detect_conflicts``' test of which could touch)."""

from __future__ import annotations

import numpy as np
import pytest

import v2x.agents.fleet as fleet_module
from tests.core.test_heard import _old_pairs, _old_stamp
from tests.sim.test_fleet import FRAME, _bsm_envelope, _vehicle
from v2x import core
from v2x.agents.fleet import FleetAgent
from v2x.core import WorldState
from v2x.core._conflict import TOUCH_SLACK_M
from v2x.run.runner import environment
from v2x.scenario.loader import SCENARIO_DIR, load_scenario
from v2x.wire import testbed_pb2
from v2x.wire.fleet import pack_deliveries


def test_the_fleets_pairs_and_stamps_are_the_numpy_expressions(monkeypatch: pytest.MonkeyPatch) -> None:
    checked = {"pairs": 0, "stamps": 0, "found": 0, "kept": 0}
    real_pairs, real_stamp = core.touching_pairs_heard, core.stamp_deliveries

    def pairs(
        world: WorldState, table: np.ndarray, rows: np.ndarray, cols: np.ndarray, least: int, row_slots: np.ndarray,
        col_slots: np.ndarray, within: float, **kw: int,
    ) -> tuple[np.ndarray, ...]:  # fmt: skip
        i, j, _ = _old_pairs(table, rows, cols, least)
        p, q = np.asarray(row_slots)[i], np.asarray(col_slots)[j]
        hi = world.high_water
        circ = np.hypot(0.5 * world.length_m[:hi], 0.5 * world.width_m[:hi])
        acc = np.hypot(world.ax[:hi], world.ay[:hi])
        cx, cy = world.x[q] - world.x[p], world.y[q] - world.y[p]
        ux, uy = world.vx[q] - world.vx[p], world.vy[q] - world.vy[p]
        reach = circ[p] + circ[q] + np.sqrt(ux * ux + uy * uy) * within + 0.5 * (acc[p] + acc[q]) * within * within
        reach += TOUCH_SLACK_M
        keep = ~(cx * cx + cy * cy > reach * reach)
        got = real_pairs(world, table, rows, cols, least, row_slots, col_slots, within, **kw)
        for a, b in zip((p[keep], q[keep]), got, strict=True):
            assert np.array_equal(a, b)
        checked["pairs"] += 1
        checked["found"] += len(i)
        checked["kept"] += len(got[0])
        return got

    def stamp(table: np.ndarray, *args: np.ndarray | int) -> None:
        want = table.copy()
        _old_stamp(want, *args)  # type: ignore[arg-type]
        real_stamp(table, *args)  # type: ignore[arg-type]
        assert np.array_equal(table, want)
        checked["stamps"] += 1

    monkeypatch.setattr(fleet_module, "touching_pairs_heard", pairs)
    monkeypatch.setattr(fleet_module, "stamp_deliveries", stamp)
    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    thresholds = environment(sc).thresholds
    agent = FleetAgent("fleet-0", frame=FRAME, epoch=sc.epoch, thresholds=thresholds)
    rng = np.random.default_rng(5)
    ticks = round(3 * thresholds["max_age_s"] / 0.1) + 10
    freed_columns = freed_rows = forgotten = 0
    sent: list[bytes] = []
    for tick in range(1, ticks):
        t = tick * 0.1
        inp = testbed_pb2.FleetInput(
            run_id="r", tick=tick, time_us=round(t * 1e6), tick_us=100_000, truth_time_us=round((t - 0.1) * 1e6)
        )
        # Hosted vehicles come and go; half state an accuracy FCW's gate accepts (their BSMs get columns).
        hosted = sorted(rng.choice(24, size=int(rng.integers(6, 20)), replace=False).tolist())
        for k in hosted:
            v = _vehicle(f"bg-{k}", 12.0 * k, 15.0)
            if k % 2:
                v.sigma_major_m = v.sigma_minor_m = 0.3
            inp.vehicles.append(v)
        # Outside senders, each silent for stretches longer than max_age_s (forgotten, then heard again).
        outside = [s for s in range(12) if (tick // (8 + s)) % 3 != 1]
        inp.envelopes.extend([*sent, *(_bsm_envelope(f"s{s}", 9.0 * s, 10.0, -4.0, t, tick) for s in outside)])
        m = len(inp.envelopes)
        heard = rng.random((len(hosted), m)) < 0.5
        vehicle, envelope = np.nonzero(heard)
        pack_deliveries(inp, vehicle, envelope, np.full(len(vehicle), inp.time_us))
        before = len(agent._forgotten)
        ack = agent.step(inp)
        sent = list(ack.envelopes)
        forgotten += len(agent._forgotten) > before
        freed_columns = max(freed_columns, len(agent._free_columns))
        freed_rows = max(freed_rows, len(agent._free_rows))
    assert checked["pairs"] == ticks - 1 and checked["stamps"] > ticks and checked["found"] > 1000
    assert 0 < checked["kept"] < checked["found"]  # some pairs heard could touch, some could not
    assert forgotten and freed_columns and freed_rows  # the run did forget senders and give back columns and rows


def test_the_freshest_bsm_kept_is_the_one_taking_them_in_envelope_order_gives() -> None:
    """``_keep`` (the columns, all of a tick's BSMs at once) keeps per sender what the fleet's loop over the
    envelopes kept before: each BSM replaces the one kept unless it is older (a tie: the later one)."""
    from v2x.agents.fleet import _Heard

    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    agent = FleetAgent("fleet-0", frame=FRAME, epoch=sc.epoch, thresholds=environment(sc).thresholds)
    rng = np.random.default_rng(4)
    senders = [f"s{k}" for k in range(6)]
    want: dict[str, tuple[float, float]] = {}  # sender -> (time, x: which BSM it was)
    for tick in range(60):
        n = int(rng.integers(0, 12))
        number = np.array([agent._number(s) for s in rng.choice(senders, n)], dtype=np.int64)
        t_s = rng.integers(0, 4, n) * 0.5 + tick * 0.1 * (tick % 3 == 0)  # (many ties, some older than kept)
        x = rng.normal(size=n)
        for no, t, v in zip(number.tolist(), t_s.tolist(), x.tolist(), strict=True):
            old = want.get(agent._names[no])
            if old is None or t >= old[0]:
                want[agent._names[no]] = (t, v)
        zero = np.zeros(n)
        full = rng.integers(0, 2, n).astype(np.bool_)
        heard = _Heard(np.arange(n), t_s, full, zero, x, zero, zero, zero, zero, zero, zero)
        agent._keep(heard, number, [b"%d" % k for k in range(n)], tick * 0.1)
        got = {agent._names[no]: (agent._fresh_t[no], agent._fresh_motion[no, 0]) for no in range(len(agent._names))}
        assert got == want


def test_the_senders_carried_on_in_columns_are_where_remote_state_puts_them() -> None:
    """``_extrapolated`` gives ``RemoteState.extrapolated``'s floats bit for bit (stopping ones, times ahead)."""
    from v2x.agents.fleet import _Heard
    from v2x.wire.bsm import RemoteState

    sc = load_scenario(SCENARIO_DIR / "fcw.yaml")
    agent = FleetAgent("fleet-0", frame=FRAME, epoch=sc.epoch, thresholds=environment(sc).thresholds)
    rng = np.random.default_rng(9)
    n = 2000
    number = np.array([agent._number(f"s{k}") for k in range(n)], dtype=np.int64)
    t = 10.0
    t_s = t - rng.uniform(-0.2, 1.5, n)
    x, y = rng.normal(0, 500, n), rng.normal(0, 500, n)
    speed, yaw, accel = rng.uniform(0, 30, n), rng.uniform(-np.pi, np.pi, n), rng.normal(0, 4, n)
    accel[::7] = 0.0
    length, width = rng.uniform(3, 12, n), rng.uniform(1.5, 2.6, n)
    full = np.ones(n, dtype=np.bool_)
    heard = _Heard(np.arange(n), t_s, full, np.full(n, 0.1), x, y, speed, yaw, accel, length, width)
    agent._keep(heard, number, [b""] * n, t)
    got = np.stack(agent._extrapolated(number, t), axis=1)
    for k in range(n):
        r = RemoteState(b"", t_s[k], x[k], y[k], speed[k], yaw[k], accel[k], length[k], width[k], 0.1, 10, 0)
        want = (*r.extrapolated(t), r.heading_rad, r.accel_mps2, r.length_m, r.width_m)
        assert got[k].tobytes() == np.array(want, dtype=np.float64).tobytes(), k  # (bit for bit)
