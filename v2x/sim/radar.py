"""The forward view of platoon vehicles (their radar) and of attentive drivers (their eyes, v2x/apps/driver.py
rule 4), sans-I/O: an ideal long-range radar that reports the nearest road user ahead in the vehicle's lane,
story or background, from the ground truth.

It sees a road user whose centre is ahead of the vehicle's centre along its heading, within
``RADAR_RANGE_M`` and within ``LANE_HALF_WIDTH_M`` of its centre line (half a 3.5 m lane), and reports the
nearest as a ``Detection`` (sensor ``{actor}/radar``, object id = slot + 1) with its true position,
velocity and footprint: no noise and no misses (an assumption: automotive long-range radars measure range to
about 0.1 m and range rate to about 0.1 m/s, small beside the gaps a platoon keeps). It draws no random
numbers, so it changes no other draw. The reading at ``t`` reaches the vehicle with the next tick's input;
the vehicle predicts it to its own time with the measured speeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from v2x.core import WorldState
from v2x.units import LANE_HALF_WIDTH_M, enu_yaw_rad_to_compass_deg, us_of
from v2x.wire import testbed_pb2

RADAR_RANGE_M = 200.0  # long-range automotive radar (assumption: typical 77 GHz LRR reach, 200-250 m)


def forward_radar(
    world: WorldState, owners: list[int], road_users: NDArray[np.intp], kinds: Sequence[str], t: float
) -> dict[str, list[testbed_pb2.Detection]]:
    """Each owner's (slot) radar reading at ``t``: the nearest of ``road_users`` (slots, with their ``kinds``:
    the story's and the background's) ahead in its lane, or none."""
    out: dict[str, list[testbed_pb2.Detection]] = {}
    w = world
    for s in owners:
        c, sn = math.cos(float(w.heading_rad[s])), math.sin(float(w.heading_rad[s]))
        dx = w.x[road_users] - w.x[s]
        dy = w.y[road_users] - w.y[s]
        along = dx * c + dy * sn
        lateral = -dx * sn + dy * c
        seen = (road_users != s) & (along > 0) & (along <= RADAR_RANGE_M) & (np.abs(lateral) <= LANE_HALF_WIDTH_M)
        if not seen.any():
            continue
        k = int(np.flatnonzero(seen)[np.argmin(along[seen])])
        j = int(road_users[k])
        out[w.id_of(s)] = [
            testbed_pb2.Detection(
                object_id=j + 1,
                sensor=f"{w.id_of(s)}/radar",
                sensor_kind=testbed_pb2.SENSOR_RADAR,
                object_kind=kinds[k],
                time_us=us_of(t),
                x_m=float(w.x[j]),
                y_m=float(w.y[j]),
                vx_mps=float(w.vx[j]),
                vy_mps=float(w.vy[j]),
                heading_deg=enu_yaw_rad_to_compass_deg(float(w.heading_rad[j])),
                length_m=float(w.length_m[j]),
                width_m=float(w.width_m[j]),
            )
        ]
    return out


__all__ = ["RADAR_RANGE_M", "forward_radar"]
