"""The fleet's table of who heard whom when (``FleetAgent.heard``), written and read by the core's compiled
``stamp_deliveries`` and ``pairs_at_least``: over a run where vehicles come and go, senders are forgotten and
heard again and columns and rows are given back and used again, every call gives what the numpy expressions the
fleet used before gave on the same table."""

from __future__ import annotations

import numpy as np
import pytest

import v2x.agents.fleet as fleet_module
from tests.core.test_heard import _old_pairs, _old_stamp
from tests.sim.test_fleet import FRAME, _bsm_envelope, _vehicle
from v2x import core
from v2x.agents.fleet import FleetAgent
from v2x.run.runner import environment
from v2x.scenario.loader import SCENARIO_DIR, load_scenario
from v2x.wire import testbed_pb2
from v2x.wire.fleet import pack_deliveries


def test_the_fleets_pairs_and_stamps_are_the_numpy_expressions(monkeypatch: pytest.MonkeyPatch) -> None:
    checked = {"pairs": 0, "stamps": 0, "found": 0}
    real_pairs, real_stamp = core.pairs_at_least, core.stamp_deliveries

    def pairs(table: np.ndarray, rows: np.ndarray, cols: np.ndarray, least: int, **kw: int) -> tuple[np.ndarray, ...]:
        want = _old_pairs(table, rows, cols, least)
        got = real_pairs(table, rows, cols, least, **kw)
        for a, b in zip(want, got, strict=True):
            assert np.array_equal(a, b)
        checked["pairs"] += 1
        checked["found"] += len(got[0])
        return got

    def stamp(table: np.ndarray, *args: np.ndarray | int) -> None:
        want = table.copy()
        _old_stamp(want, *args)  # type: ignore[arg-type]
        real_stamp(table, *args)  # type: ignore[arg-type]
        assert np.array_equal(table, want)
        checked["stamps"] += 1

    monkeypatch.setattr(fleet_module, "pairs_at_least", pairs)
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
    assert forgotten and freed_columns and freed_rows  # the run did forget senders and give back columns and rows
