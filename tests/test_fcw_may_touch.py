"""FCW's range prefilter (v2x.apps.collision.may_touch) drops only remotes that cannot warn: FCW with it finds
exactly what the conflict detection finds over every remote. FCW's verdict (``fcw_rows``)."""

from __future__ import annotations

import math
import random

import numpy as np

from v2x.apps.collision import ForwardCollisionWarning, fcw_rows, forward_collision, may_touch
from v2x.apps.host import Host, Participant
from v2x.apps.registry import OnBoardView, Raised
from v2x.apps.thresholds import DEFAULTS
from v2x.core import Conflicts, ConflictType
from v2x.wire.bsm import RemoteState


def _remote(rng: random.Random, k: int, host: Participant, t: float) -> RemoteState:
    # Around the host, mostly in its lane and the next ones, both directions, some fast closers, some braking.
    along = rng.uniform(-250.0, 250.0)
    side = rng.choice([0.0, 0.0, 3.5, -3.5, 7.0]) + rng.gauss(0.0, 0.3)
    c, s = math.cos(host.heading_rad), math.sin(host.heading_rad)
    heading = host.heading_rad + (math.pi if rng.random() < 0.2 else rng.gauss(0.0, 0.05))
    return RemoteState(
        temp_id=k.to_bytes(4, "big"),
        t_s=t - rng.uniform(0.0, 0.9),
        x=host.x + along * c - side * s,
        y=host.y + along * s + side * c,
        speed_mps=max(0.0, rng.choice([0.0, rng.uniform(0.0, 40.0)])),
        heading_rad=heading,
        accel_mps2=rng.choice([0.0, rng.uniform(-9.0, 3.0)]),
        length_m=rng.uniform(3.5, 12.0),
        width_m=rng.uniform(1.6, 2.6),
        sigma_major_m=0.2,
        kind_class=0,
        events=0,
    )


def _view(host: Participant, remotes: list[RemoteState], th: dict[str, float]) -> OnBoardView:
    speed = math.hypot(host.vx, host.vy)
    own = Host(host.x, host.y, host.heading_rad, speed, host.accel_mps2, host.length_m, host.sigma_m, host.width_m)
    return OnBoardView(own, host, {r.temp_id: r for r in remotes}, {}, {}, {}, {}, {}, th)


def test_may_touch_drops_only_remotes_fcw_cannot_warn_of() -> None:
    th = dict(DEFAULTS)
    horizon = min(th["fcw_ttc_s"], th["horizon_s"])
    rng = random.Random(7)
    dropped = warned = 0
    for case in range(60):
        t = 10.0 + case
        speed = rng.uniform(0.0, 35.0)
        yaw = rng.uniform(-math.pi, math.pi)
        host = Participant(
            "host", 100.0, -50.0, speed * math.cos(yaw), speed * math.sin(yaw), rng.uniform(-6.0, 2.0), yaw,
            4.6, 1.8, 0.2,
        )  # fmt: skip
        remotes = [_remote(rng, k, host, t) for k in range(120)]
        near = may_touch(host, remotes, t, horizon)
        every = [Participant.from_remote(r.temp_id.hex(), r, t) for r in remotes]
        kept = [p for p, ok in zip(every, near, strict=True) if ok]
        old = forward_collision(host, every, th)
        assert repr(forward_collision(host, kept, th)) == repr(old)  # (repr: the findings hold NaN)
        # No remote it dropped has any conflict with the host within FCW's TTC (of any kind).
        found = {f.other for f in forward_collision(host, every, {**th, "fcw_ttc_s": horizon})}
        assert not found.intersection(p.key for p, ok in zip(every, near, strict=True) if not ok)
        # The app (filter, then the kernels as they run on all of them) raises what FCW over every remote raised.
        app = ForwardCollisionWarning().evaluate(_view(host, remotes, th), t)
        assert repr(app) == repr([Raised("fcw", f.other, ttc_s=f.ttc_s, conflict_type=f.kind) for f in old])
        dropped += near.count(False)
        warned += len(old)
    assert warned > 20  # the cases exercise warnings
    assert dropped > 60 * 120 // 3  # and the filter drops many


def test_may_touch_keeps_what_it_cannot_judge() -> None:
    host = Participant("host", 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 4.6, 1.8, 0.2)
    bad = RemoteState(b"\x01", 0.0, math.nan, 0.0, 10.0, 0.0, 0.0, 4.6, 1.8, 0.2, 0, 0)
    far = RemoteState(b"\x02", 0.0, 5000.0, 0.0, 10.0, 0.0, 0.0, 4.6, 1.8, 0.2, 0, 0)
    ahead = RemoteState(b"\x03", 0.0, 30.0, 0.0, 0.0, 0.0, 0.0, 4.6, 1.8, 0.2, 0, 0)
    assert may_touch(host, [bad, far, ahead], 0.0, 3.0) == [True, False, True]
    assert may_touch(host, [], 0.0, 3.0) == []


def test_fcws_verdict_is_rear_end_with_a_host_following_within_the_ttc() -> None:
    """``fcw_rows``, the verdict of a vehicle's FCW and a fleet's: hosts are the slots below ``hosts`` (2 here)."""
    rear, cross = int(ConflictType.REAR_END), int(ConflictType.CROSSING)
    rows = [  # (i, j, kind, ttc_s, warns)
        (0, 2, rear, 2.0, True),
        (1, 3, rear, 3.0, True),  # at the threshold
        (0, 3, rear, 3.01, False),  # beyond it
        (1, 2, rear, math.nan, False),  # no TTC is none within it
        (0, 2, rear, math.inf, False),
        (2, 0, rear, 1.0, False),  # the remote follows: not the host's to avoid
        (0, 2, cross, 1.0, False),
    ]
    i, j, kind, ttc, warns = (np.array(c) for c in zip(*rows, strict=True))
    nan = np.full(len(rows), math.nan)
    found = Conflicts(i, j, kind, ttc, nan, nan, nan, nan, np.zeros(len(rows), dtype=np.bool_), nan)
    assert fcw_rows(found, 2, dict(DEFAULTS)).tolist() == warns.tolist()
