"""Cross-check the traffic model's IDM against SUMO's own (carFollowModel="IDM").

A platoon of five cars follows a leader that cruises at 30 m/s, brakes to 10 m/s at 3 m/s² and holds
10 m/s. SUMO (eclipse-sumo wheel, TraCI) runs the platoon with its IDM and the same parameters
(tau = T, minGap = s0, accel = a, decel = b, delta = 4, 0.1 s steps, ballistic position update). The
leader's SUMO trajectory is replayed into our model, whose followers run ``traffic_step``; the gaps of
the followers are compared step by step (tolerance GAP_TOL_M).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from tests.core._sumo import sumo_or_skip
from v2x.core.traffic import LaneNetwork, Traffic, traffic_step

pytestmark = pytest.mark.slow

# SUMO 1.28's IDM with the ballistic update is the same scheme as ours: observed max difference
# 2.3e-13 m over 249 steps (floating-point noise). The tolerance leaves room for other SUMO builds.
GAP_TOL_M = 1e-6
V0, T, S0, A, B, LEN = 120 / 3.6, 1.0, 2.0, 1.0, 1.5, 5.0
N_FOLLOW = 5
DT = 0.1


def _leader_speed(t: float) -> float:
    return max(10.0, 30.0 - 3.0 * max(0.0, t - 5.0))


def _run_sumo(tmp: Path) -> tuple[np.ndarray, np.ndarray]:
    """SUMO positions (front bumper) and speeds per step: arrays (steps, 1 + N_FOLLOW)."""
    home, traci = sumo_or_skip()
    (tmp / "net.net.xml").write_text(
        """<net version="1.20" junctionCornerDetail="5" limitTurnSpeed="5.50">
  <location netOffset="0.00,0.00" convBoundary="0.00,0.00,3000.00,0.00" origBoundary="0.00,0.00,3000.00,0.00"
    projParameter="!"/>
  <edge id="E" from="A" to="Z" priority="1">
    <lane id="E_0" index="0" speed="40.00" length="3000.00" shape="0.00,-1.60 3000.00,-1.60"/>
  </edge>
  <junction id="A" type="dead_end" x="0.00" y="0.00" incLanes="" intLanes="" shape="0.00,0.00 0.00,-3.20"/>
  <junction id="Z" type="dead_end" x="3000.00" y="0.00" incLanes="E_0" intLanes="" shape="3000.00,-3.20 3000.00,0.00"/>
</net>"""
    )
    s_e = (S0 + 30.0 * T) / math.sqrt(1.0 - (30.0 / V0) ** 4)
    veh = "\n".join(
        f'<vehicle id="v{k}" type="idm" route="r" depart="0" departPos="{1000.0 - k * (s_e + LEN):.6f}" '
        f'departSpeed="30"/>'
        for k in range(N_FOLLOW + 1)
    )
    (tmp / "r.rou.xml").write_text(
        f"""<routes><vType id="idm" carFollowModel="IDM" accel="{A}" decel="{B}" tau="{T}" minGap="{S0}"
        delta="4" length="{LEN}" maxSpeed="{V0}" speedFactor="1" speedDev="0" sigma="0" emergencyDecel="9"/>
        <route id="r" edges="E"/>{veh}</routes>"""
    )
    traci.start(
        [
            os.path.join(home, "bin", "sumo"),
            "-n",
            str(tmp / "net.net.xml"),
            "-r",
            str(tmp / "r.rou.xml"),
            "--step-length",
            str(DT),
            "--step-method.ballistic",
            "true",
            "--no-step-log",
            "true",
            "--collision.action",
            "none",
        ],
        label="traffic-idm",
    )
    conn = traci.getConnection("traffic-idm")
    ids = [f"v{k}" for k in range(N_FOLLOW + 1)]
    pos, spd = [], []
    try:
        conn.simulationStep()
        conn.vehicle.setSpeedMode("v0", 0)
        for step in range(250):
            pos.append([conn.vehicle.getLanePosition(v) for v in ids])
            spd.append([conn.vehicle.getSpeed(v) for v in ids])
            conn.vehicle.setSpeed("v0", _leader_speed((step + 1) * DT))
            conn.simulationStep()
    finally:
        conn.close()
    return np.array(pos), np.array(spd)


def test_platoon_behind_a_braking_leader_matches_sumo_idm(tmp_path: Path) -> None:
    pos, spd = _run_sumo(tmp_path)
    assert spd[:, 0].min() == pytest.approx(10.0, abs=1e-6)  # the leader did brake to 10 m/s
    net = LaneNetwork.build([3000.0], 40.0, [[]])
    n = N_FOLLOW + 1
    tr = Traffic.create(
        np.zeros(n), pos[0], spd[0], v0_mps=V0, t_gap_s=T, s0_m=S0, a_mps2=A, b_mps2=B, length_m=LEN, politeness=0.0
    )
    worst = 0.0
    for step in range(1, len(pos)):
        traffic_step(net, tr, None, DT, step)
        tr.s_m[0], tr.v_mps[0] = pos[step, 0], spd[step, 0]  # replay SUMO's leader
        ours = tr.s_m[:-1] - LEN - tr.s_m[1:]
        theirs = pos[step, :-1] - LEN - pos[step, 1:]
        err = np.abs(ours - theirs)
        assert np.all(err <= GAP_TOL_M), (step, ours, theirs)
        worst = max(worst, float(err.max()))
    # the followers really closed up: the first gap fell well below the 30 m/s equilibrium
    assert theirs[0] < 40.0
    print(f"max |gap ours - gap SUMO| = {worst:.3g} m over {len(pos) - 1} steps")
