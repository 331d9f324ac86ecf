"""A slow outside stack on v2x.sdk, for the real-time tests (docs/PROTOCOL.md "Timing and late stacks"): the
follower of examples/sdk_vehicle.py (its own FCW and driver) that needs ``--work-ms`` (90) per tick, and
``--stall-ms`` more in the tick where it first raises a warning, so that this tick's Ack surely misses its
deadline. It prints what the test checks: the tick of the warning, each ``late_ticks`` it is told, and at
the end the SDK's counts (warnings re-reported, ticks skipped)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

from v2x.sdk import Stack, VehicleState
from v2x.wire import testbed_pb2


def _example() -> Any:
    """examples/sdk_vehicle.py as a module (its FCW and driver)."""
    path = Path(__file__).resolve().parents[1] / "examples" / "sdk_vehicle.py"
    spec = importlib.util.spec_from_file_location("sdk_vehicle", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


async def main(args: argparse.Namespace) -> int:
    async with Stack(args.broker, run_id=args.run, actor_id=args.actor, realtime=True) as stack:
        run = await stack.start(timeout_s=120)
        state = VehicleState.at_start(run.me)
        example = _example()
        fcw, driver = example.Fcw(3.0), example.Driver(1.0, 7.0)
        stalled = False
        async for tick in stack.ticks(tick_timeout_s=90):
            if tick.n > 0:
                state = state.advanced(tick.dt_s)
            if tick.late_ticks:
                print(f"tick {tick.n}: late_ticks {tick.late_ticks}", flush=True)
            fcw.hear(tick.bsms, tick.t_s)
            x, y = tick.fix(state.x_m, state.y_m)
            warnings = []
            for other, ttc in fcw.evaluate(state, x, y, run.me.length_m, tick.t_s):
                warnings.append(stack.warning(tick, testbed_pb2.APP_FCW, other, ttc_s=ttc))
                driver.warn(tick.t_s)
            state = VehicleState(state.x_m, state.y_m, state.speed_mps, state.heading_deg,
                                 driver.accel(tick.t_s, state.speed_mps))  # fmt: skip
            work_s = args.work_ms / 1000
            if warnings and not stalled:
                stalled = True
                work_s += args.stall_ms / 1000
                print(f"tick {tick.n}: FCW raised at {tick.t_s:.1f} s", flush=True)
            time.sleep(work_s)  # the stack's work (blocking, as a CPU-bound stack would)
            await stack.send_bsm(tick, state)
            await stack.ack(tick, state, warnings=warnings)
        print(f"done: rereported {stack.rereported}, skipped {stack.skipped_ticks}", flush=True)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--broker", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--actor", default="follower")
    p.add_argument("--work-ms", type=float, default=90.0)
    p.add_argument("--stall-ms", type=float, default=150.0)
    sys.exit(asyncio.run(main(p.parse_args())))
