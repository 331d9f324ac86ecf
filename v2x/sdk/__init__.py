"""``v2x.sdk``: a small asyncio SDK for outside vehicle stacks (docs/PROTOCOL.md, protocol v1).

A stack joins a run as one actor, learns the run from ``Control START``, and answers every tick::

    from v2x.sdk import Stack, VehicleState

    async with Stack("mqtt://127.0.0.1:1883", run_id="demo-v2x", actor_id="follower", kind="car") as stack:
        run = await stack.start()                 # origin, epoch, tick, this actor's start pose and box
        state = VehicleState.at_start(run.me)
        async for tick in stack.ticks():          # GNSS reading, what it heard (SI), advisories, collisions
            state = my_motion(state, tick)
            await stack.send_bsm(tick, state)     # encoded from SI; PC5, and Uu to the platform if any
            await stack.ack(tick, state, warnings=[...])

It speaks exactly the protocol of docs/PROTOCOL.md over aiomqtt; nothing else of the testbed runs in the
stack's process.
"""

from __future__ import annotations

from v2x.sdk.client import BrokerLost, RunAborted, Stack, StartConflict
from v2x.sdk.types import ActorStart, Collision, Gnss, Heard, Route, RunInfo, Tick, VehicleState

__all__ = [
    "ActorStart",
    "BrokerLost",
    "Collision",
    "Gnss",
    "Heard",
    "Route",
    "RunAborted",
    "RunInfo",
    "Stack",
    "StartConflict",
    "Tick",
    "VehicleState",
]
