"""Randomised check of the closed-form TTC against dense time stepping of the same motion model."""

from __future__ import annotations

import numpy as np

from v2x.core import ActorKind, WorldState, detect_conflicts
from v2x.core._conflict import _axes, _motion, _path_length, _separation, _take


def test_ttc_matches_dense_time_stepping() -> None:
    rng = np.random.default_rng(7)
    n = 300
    w = WorldState(capacity=2 * n)
    for k in range(2 * n):
        w.add(f"v{k}", ActorKind.CAR, float(rng.uniform(2, 14)), float(rng.uniform(0.6, 2.6)))
    s = w.active_slots()
    pos = rng.uniform(-40, 40, (2 * n, 2))
    pos[1::2] = pos[0::2] + rng.uniform(-30, 30, (n, 2))
    heading = rng.uniform(-np.pi, np.pi, 2 * n)
    speed = rng.uniform(0, 20, 2 * n) * (rng.random(2 * n) > 0.15)
    acc = rng.uniform(-6, 3, 2 * n)
    drift = heading + rng.normal(0, 0.1, 2 * n)  # velocity not exactly along the box
    w.set_state(
        s,
        pos[:, 0],
        pos[:, 1],
        speed * np.cos(drift),
        speed * np.sin(drift),
        acc * np.cos(drift),
        acc * np.sin(drift),
        heading,
    )
    pi, pj = s[0::2], s[1::2]
    horizon = 5.0
    for model in ("cv", "ca"):
        c = detect_conflicts(w, horizon_s=horizon, model=model, pairs=(pi, pj), max_pet_s=0.0)
        ttc = {(min(a, b), max(a, b)): t for a, b, t in zip(c.i.tolist(), c.j.tolist(), c.ttc_s.tolist(), strict=True)}
        m = _motion(w, np.arange(2 * n), model, horizon)
        t = np.arange(0.0, horizon + 1e-9, 1e-3)
        checked = 0
        for a, b in zip(pi.tolist(), pj.tolist(), strict=True):
            mi = [getattr(m, f)[[a]] for f in ("s", "a", "ts")]
            mj = [getattr(m, f)[[b]] for f in ("s", "a", "ts")]
            li = _path_length(mi[0], mi[1], mi[2], t)
            lj = _path_length(mj[0], mj[1], mj[2], t)
            rx = w.x[b] - w.x[a] + m.dx[b] * lj - m.dx[a] * li
            ry = w.y[b] - w.y[a] + m.dy[b] * lj - m.dy[a] * li

            ax = _axes(_take(m, np.array([a])), _take(m, np.array([b])))
            sep = _separation(rx, ry, ax)
            hits = np.flatnonzero(sep <= 0.0)
            got = ttc.get((a, b), np.inf)
            if len(hits) == 0:
                # No sampled overlap: either no TTC, or a contact shorter than the sampling step.
                assert got == np.inf or got > t[-1] - 1e-3 or sep.min() < 0.05, (a, b, got)
            else:
                checked += 1
                assert abs(got - t[hits[0]]) <= 1e-3 + 1e-9, (model, a, b, got, t[hits[0]])
        assert checked > 20  # the set actually exercises collisions
