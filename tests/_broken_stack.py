"""A deliberately broken outside stack on v2x.sdk, for `v2x conformance` tests: it drives its actor like
examples/sdk_vehicle.py but sends a wrong BSM id (``--wrong-id``), a BSM only every other tick (5 Hz,
``--every 2``), a secMark one second old (``--stale-secmark``) or a secMark from the tick's time alone,
``epoch_utc`` ignored (``--ignore-epoch``), or the true position in its BSM instead of the GNSS fix
(``--no-gnss-error``), or a size other than the scenario's (``--wrong-size``); ``--kind truck`` makes its Hello
name the wrong kind; ``--strict-ticks`` takes only tick n + 1 after n even in real time (START's clock ignored: a
lost input stalls it, docs/PROTOCOL.md checklist item 9). ``--reverse-seq`` is no fault: it publishes each tick's
Uu copy (the higher seq) before its PC5 BSM, as a stack with a thread per link may (docs/PROTOCOL.md
"Duplicates": the order within a tick is free)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys

from v2x import units
from v2x.sdk import Stack, VehicleState
from v2x.wire import testbed_pb2
from v2x.wire.envelope import temporary_id


async def main(args: argparse.Namespace) -> int:
    async with Stack(args.broker, run_id=args.run, actor_id=args.actor, kind=args.kind) as stack:
        run = await stack.start(timeout_s=120)
        if args.strict_ticks:  # as if the run were in lockstep whatever START says
            stack._realtime = lambda _run: False  # type: ignore[method-assign,assignment]
        state = VehicleState.at_start(run.me)
        async for tick in stack.ticks(tick_timeout_s=90):
            if tick.collisions:  # (it never brakes: it runs into the lead, and then stands, as it must)
                state = state.at_rest()
            elif tick.n > 0:
                state = state.advanced(tick.dt_s)
            if tick.n % args.every == 0:
                at = state
                if args.no_gnss_error and tick.gnss is not None:  # so that the "fix" is the truth
                    at = dataclasses.replace(
                        state, x_m=state.x_m - tick.gnss.east_error_m, y_m=state.y_m - tick.gnss.north_error_m
                    )
                frame = stack.bsm(tick, at)
                if args.wrong_id:
                    frame.bsm.id = temporary_id("someone-else")
                if args.stale_secmark:
                    frame.bsm.sec_mark = units.sec_mark(tick.t_s - 1.0, run.epoch)
                if args.ignore_epoch:  # as if the epoch were on a whole minute
                    frame.bsm.sec_mark = round(tick.t_s * 1000) % 60_000
                if args.wrong_size:  # 4 m long, where the scenario's box is 5 m
                    frame.bsm.size.length = 400
                if args.reverse_seq and run.platform_id:  # seq n + 1 for the PC5 BSM, published after n + 2
                    first = stack.seq + 1
                    stack.seq = first
                    await stack.send(tick, frame, link=testbed_pb2.LINK_UU, dest_ids=[run.platform_id])
                    stack.seq = first - 1
                    await stack.send(tick, frame)
                    stack.seq = first + 1
                else:
                    await stack.send(tick, frame)
                    if run.platform_id:  # the same bytes over Uu, as PROTOCOL.md asks
                        await stack.send(tick, frame, link=testbed_pb2.LINK_UU, dest_ids=[run.platform_id])
            await stack.ack(tick, state)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--broker", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--actor", default="follower")
    p.add_argument("--every", type=int, default=1)
    p.add_argument("--kind", default="car")
    p.add_argument("--wrong-id", action="store_true")
    p.add_argument("--strict-ticks", action="store_true")
    p.add_argument("--stale-secmark", action="store_true")
    p.add_argument("--ignore-epoch", action="store_true")
    p.add_argument("--no-gnss-error", action="store_true")
    p.add_argument("--wrong-size", action="store_true")
    p.add_argument("--reverse-seq", action="store_true")
    sys.exit(asyncio.run(main(p.parse_args())))
