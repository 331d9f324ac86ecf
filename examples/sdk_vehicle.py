#!/usr/bin/env python3
"""An outside vehicle stack built on ``v2x.sdk``: a car with its own forward collision warning and driver.

It drives one road user of a run (``external: true`` in the scenario), e.g. the ``follower`` of
scenarios/fcw.yaml. It starts where ``Control START`` says (the scenario's lane, start_m and speed), keeps
its speed, and runs its own FCW on the BSMs it hears: a vehicle ahead in its lane (within 45 degrees of
its heading, centre within 1.75 m of its heading line) whose time to collision at the present relative
speed and acceleration falls to ``--ttc`` (3 s) raises an FCW warning about that vehicle's BSM id. The
driver brakes at ``--brake`` (7 m/s^2) to a stop ``--reaction`` (1 s) after the warning. Advisories the
platform sends it are echoed in its Ack (that is what makes them count) and acted on the same way. Told
of a collision, it comes to rest where it touched and stays there, hazard lights on (its BSMs set the event
flags hazardLights and disabledVehicle; docs/PROTOCOL.md, "Collisions"). An actor with ``equipped: false`` (no
OBU: START says so) sends no BSM, only its Ack.

    python examples/sdk_vehicle.py --broker mqtt://127.0.0.1:1883 --run demo-v2x --actor follower
    v2x run my-fcw.yaml --broker mqtt://127.0.0.1:1883 --run-id demo --variant v2x

``--work-ms`` makes each tick take that long (a slow stack, for real-time tests). A broker restart is waited
out (the SDK reconnects). Exit codes: 0 the run ended, 1 the run was aborted (a STOP before the final tick, or
one with a reason such as ``run error: ...`` after it), no input for ``--tick-timeout``, or the broker was away
for more than 60 s (``BrokerLost``), or two different STARTs came before the first tick (one forged:
``StartConflict``), 2 bad arguments, 3 no START within ``--join-timeout``. What someone else publishes on the
broker (forged or junk inputs, an unusable START) the SDK refuses and counts in the Acks' ``rejected``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import math
import sys
import time
from collections.abc import Callable
from typing import Any

from v2x.sdk import BrokerLost, Route, RunAborted, Stack, StartConflict, Tick, VehicleState
from v2x.wire import testbed_pb2
from v2x.wire.bsm import RemoteState

log = logging.getLogger("sdk_vehicle")

MAX_AGE_S = 1.0  # forget a sender not heard for 1 s
LANE_HALF_WIDTH_M = 1.75
WRECK_FLAGS = ("hazard_lights", "disabled")  # BSM event flags of a car that has crashed (v2x.wire.bsm's names)


class Fcw:
    """A forward collision warning from BSMs: rear-end, same lane, TTC at constant relative acceleration."""

    def __init__(self, ttc_s: float, validity_s: float = 3.0) -> None:
        self.ttc_s = ttc_s
        self.validity_s = validity_s
        self.remotes: dict[bytes, RemoteState] = {}
        self.warned_until: dict[bytes, float] = {}

    def hear(self, remotes: list[RemoteState], t: float) -> None:
        for r in remotes:
            known = self.remotes.get(r.temp_id)
            if known is None or r.t_s >= known.t_s:
                self.remotes[r.temp_id] = r
        self.remotes = {k: r for k, r in self.remotes.items() if t - r.t_s <= MAX_AGE_S}

    def evaluate(self, me: VehicleState, x: float, y: float, length_m: float, t: float) -> list[tuple[str, float]]:
        """(other BSM id hex, TTC) for each vehicle to warn about now."""
        out = []
        c, s = math.cos(me.yaw_rad), math.sin(me.yaw_rad)
        for key, r in self.remotes.items():
            rx, ry, rvx, rvy = r.extrapolated(t)
            ahead = (rx - x) * c + (ry - y) * s
            lateral = -(rx - x) * s + (ry - y) * c
            dyaw = math.atan2(math.sin(r.heading_rad - me.yaw_rad), math.cos(r.heading_rad - me.yaw_rad))
            if ahead <= 0 or abs(lateral) > LANE_HALF_WIDTH_M or abs(dyaw) > math.pi / 4:
                continue
            gap = ahead - (length_m + r.length_m) / 2
            their_speed = rvx * c + rvy * s
            their_accel = r.accel_mps2 if math.hypot(rvx, rvy) > 0 else 0.0
            ttc = time_to_close(gap, me.speed_mps - their_speed, me.accel_mps2 - their_accel)
            if ttc <= self.ttc_s and self.warned_until.get(key, -math.inf) <= t:
                self.warned_until[key] = t + self.validity_s
                out.append((key.hex(), ttc))
        return out


def time_to_close(gap_m: float, closing_mps: float, closing_accel_mps2: float) -> float:
    """The first time the gap closes at constant relative acceleration (inf if never)."""
    if gap_m <= 0:
        return 0.0
    a, v = closing_accel_mps2, closing_mps
    if abs(a) < 1e-9:
        return gap_m / v if v > 0 else math.inf
    disc = v * v + 2 * a * gap_m
    if disc < 0:
        return math.inf
    roots = [(-v + sign * math.sqrt(disc)) / a for sign in (1, -1)]
    positive = [r for r in roots if r > 0]
    return min(positive) if positive else math.inf


class Driver:
    """Brakes at ``brake_mps2`` to a stop from ``reaction_s`` after the first warning. After a collision the
    car is a wreck (``crashed``): its hazard lights are on for good."""

    def __init__(self, reaction_s: float, brake_mps2: float) -> None:
        self.reaction_s = reaction_s
        self.brake_mps2 = brake_mps2
        self.brake_from: float | None = None
        self.crashed = False

    def warn(self, t: float) -> None:
        if self.brake_from is None:
            self.brake_from = t + self.reaction_s

    def accel(self, t: float, speed: float) -> float:
        if self.brake_from is not None and t + 1e-9 >= self.brake_from and speed > 0:
            return -self.brake_mps2
        return 0.0


async def drive(args: argparse.Namespace) -> int:
    options: dict[str, Any] = {
        "kind": args.kind,
        "software": "examples/sdk_vehicle.py 1.0",
        "realtime": args.realtime,
        "uplink": not args.no_uplink,
        "signing_key": args.signing_key,
    }
    if args.credentials:  # a secure run: actor, run id, broker, user, password and CA from the file
        secure = Stack.from_credentials(args.credentials, variant=args.variant, **options)
        args.actor, args.run = secure.actor_id, secure.run_id
        stack_cm = secure
    else:
        if not args.run:
            raise ValueError("give --run (or --credentials)")
        stack_cm = Stack(args.broker, run_id=args.run, actor_id=args.actor, **options)
    async with stack_cm as stack:
        try:
            run = await stack.start(timeout_s=args.join_timeout)
        except (BrokerLost, RunAborted) as exc:  # (RunAborted: the world says this actor never joined)
            log.error("%s", exc)
            return 1
        except TimeoutError:
            log.error("no START for run %s within %.0f s", args.run, args.join_timeout)
            return 3
        me = run.me
        log.info(
            "START: scenario %s, run %s, %d ticks of %.3f s; %s starts at (%.2f, %.2f) heading %.1f at %.2f m/s",
            run.scenario_id, run.run_id, run.n_ticks + 1, run.tick_s, me.actor_id, me.x_m, me.y_m,
            me.heading_deg, me.speed_mps,
        )  # fmt: skip
        state = VehicleState.at_start(me)
        route = Route.of(me)  # its lane's centre line or path: it drives along it (None: straight on)
        on_route = Along(route, me.start_m) if route is not None else None
        fcw = Fcw(args.ttc)
        driver = Driver(args.reaction, args.brake)
        try:
            async for tick in stack.ticks(tick_timeout_s=args.tick_timeout):
                state = await step(
                    stack, tick, state, fcw, driver, me.length_m, args.work_ms, equipped=me.equipped, along=on_route
                )
                if tick.final:
                    log.info("final tick %d: done", tick.n)
        except (RunAborted, StartConflict) as exc:
            log.error("%s", exc)
            return 1
        except (TimeoutError, BrokerLost) as exc:
            log.error("%s", exc)
            return 1
        if stack.skipped_ticks:
            log.warning("fell behind: %d ticks skipped", stack.skipped_ticks)
    return 0


class Along:
    """Where the car is on its route: the route and the arc length reached."""

    def __init__(self, route: Route, s_m: float) -> None:
        self.route = route
        self.s_m = s_m


async def step(
    stack: Stack,
    tick: Tick,
    state: VehicleState,
    fcw: Fcw,
    driver: Driver,
    length_m: float,
    work_ms: float,
    *,
    equipped: bool = True,
    along: Along | None = None,
) -> VehicleState:
    """One tick of the car (``equipped`` false, START's ``ActorStart.equipped``: it has no OBU, hears nothing
    and sends no BSM, only its Ack; ``along``: it follows its route, else it drives straight on)."""
    t = tick.t_s
    for c in tick.collisions:
        log.warning("t=%.1fs: collided with %s at %.1f m/s", c.t_s, c.other_id, c.relative_speed_mps)
    if tick.collisions:  # at rest where it touched (last tick's pose), for good: docs/PROTOCOL.md, "Collisions"
        state = state.at_rest()
        driver.crashed = True
    elif tick.n > 0 and along is not None:  # the acceleration chosen last tick, over the tick, along its route
        state, along.s_m = state.advanced_along(along.route, along.s_m, tick.dt_s)
    elif tick.n > 0:
        state = state.advanced(tick.dt_s)
    if tick.late_ticks:
        log.warning("t=%.1fs: the world closed ticks %s without my Ack", t, tick.late_ticks)
    fcw.hear(tick.bsms, t)
    x, y = tick.fix(state.x_m, state.y_m)
    warnings = []
    for other, ttc in fcw.evaluate(state, x, y, length_m, t):
        warnings.append(stack.warning(tick, testbed_pb2.APP_FCW, other, ttc_s=ttc, conflict_type="rear-end"))
        log.info("t=%.1fs: FCW about %s, TTC %.2f s", t, other, ttc)
        driver.warn(t)
    # received from the platform: echo it (that is what makes it count), at its delivery time (the SDK sets
    # raised_at_s to that: docs/PROTOCOL.md "Warnings")
    for adv in tick.advisories:
        warnings.append(adv)
        if adv.severity >= testbed_pb2.SEVERITY_WARNING:
            driver.warn(t)
    state = dataclasses.replace(state, accel_mps2=driver.accel(t, state.speed_mps))
    if work_ms > 0:
        time.sleep(work_ms / 1000)  # a stack that needs this long per tick
    # A wreck says so (BSM event flags hazardLights and disabledVehicle), so that the AVW of those coming up
    # behind warns of it: docs/PROTOCOL.md, "Collisions".
    if equipped:  # (an unequipped actor MUST NOT send any envelope: the world refuses it, unequipped_sender)
        await stack.send_bsm(tick, state, flags=WRECK_FLAGS if driver.crashed else ())
    await stack.ack(tick, state, warnings=warnings)
    return state


def _number(low: float, high: float, *, low_ok: bool = False) -> Callable[[str], float]:
    """An option's number: finite and in (low, high] ([low, high] with ``low_ok``); else argparse's exit 2
    (``--join-timeout nan`` ended at once, ``1e308`` waited for good: an attack review)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a number, got {text!r}") from None
        if not (math.isfinite(value) and (low <= value if low_ok else low < value) and value <= high):
            raise argparse.ArgumentTypeError(f"a number {'>=' if low_ok else '>'} {low:g} and <= {high:g}, got {text}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="mqtt://host:port")
    p.add_argument("--run", help="the run id (v2x run --run-id PREFIX: PREFIX-v2x)")
    p.add_argument(
        "--credentials",
        metavar="FILE",
        help="a secure run: the actor's file of 'v2x secure init' (DIR/actors/ID.json); gives the actor, run, "
        "broker, user, password and CA",
    )
    p.add_argument("--variant", default="v2x", help="--credentials: which variant's run to join (default v2x)")
    p.add_argument("--actor", default="follower", help="the actor to drive (external: true in the scenario)")
    p.add_argument("--kind", default="car")
    p.add_argument("--ttc", type=_number(0.0, 60.0), default=3.0, help="FCW time-to-collision threshold, s")
    p.add_argument("--reaction", type=_number(0.0, 60.0, low_ok=True), default=1.0, help="driver reaction time, s")
    p.add_argument("--brake", type=_number(0.0, 15.0), default=7.0, help="driver braking, m/s^2")
    p.add_argument(
        "--realtime",
        action="store_true",
        help="skip to the newest tick when behind (on by itself when START says the run is in real time)",
    )
    p.add_argument("--no-uplink", action="store_true", help="no Uu copy of the BSM to the platform")
    p.add_argument(
        "--work-ms", type=_number(0.0, 60_000.0, low_ok=True), default=0.0, help="time each tick takes (a slow stack)"
    )
    p.add_argument(
        "--signing-key",
        metavar="FILE",
        help="a secure run's signing credentials (v2x run --secure writes OUT/credentials/RUN/ACTOR.cred): "
        "sign what is sent, verify what is heard",
    )
    p.add_argument("--join-timeout", type=_number(0.0, 86400.0), default=60.0, help="s (default 60)")
    p.add_argument("--tick-timeout", type=_number(0.0, 86400.0), default=90.0, help="s (default 90)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s [{args.actor}] %(levelname)s %(message)s")
    logging.getLogger("v2x").setLevel(logging.WARNING)
    try:
        return asyncio.run(drive(args))
    except ValueError as exc:
        print(f"sdk_vehicle: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
