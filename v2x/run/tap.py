"""What an observer of a run (``v2x.net.world.Observer``: the recorder, the live view) reads from the
``Simulation`` after each tick: the transmissions the channel accepted in that tick, with every delivery
the channel scheduled for them, and the actors' poses. Read-only; nothing here changes an outcome."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from v2x.sim.channel import LINK_NAME
from v2x.sim.simulation import Simulation
from v2x.wire.map_spat import LIGHT_NAME

Event = dict[str, Any]


@dataclass
class Delivery:
    receiver: str
    rx_time_s: float


@dataclass
class Sent:
    """One transmission the world accepted (``raw``: the Envelope bytes as sent) and its deliveries."""

    sender: str
    seq: int
    msg: str
    link: str
    tx_time_s: float
    raw: bytes
    dest_ids: tuple[str, ...] = ()
    deliveries: list[Delivery] = field(default_factory=list)


@dataclass
class Pose:
    actor: str
    kind: str
    x_m: float
    y_m: float
    speed_mps: float
    yaw_rad: float  # ENU: counter-clockwise from east
    length_m: float
    width_m: float


class Tap:
    """Per run: call ``sent(sim)`` once after every tick for that tick's transmissions."""

    def __init__(self) -> None:
        self._next = 0  # the channel's transmission index of the next new transmission

    def sent(self, sim: Simulation) -> list[Sent]:
        ch = sim.channel
        new = sorted(i for i in ch.payloads if i >= self._next)
        if not new:
            return []
        out: dict[int, Sent] = {}
        w = sim.world
        for i in new:
            rec = ch.payloads[i]
            out[i] = Sent(
                sender=w.id_of(rec.sender_slot),
                seq=rec.seq,
                msg=rec.msg or "unknown",
                link=LINK_NAME.get(rec.link, str(rec.link)),  # type: ignore[call-overload]
                tx_time_s=rec.tx_time_s,
                raw=rec.raw,
                dest_ids=rec.dest_ids,
            )
        self._next = new[-1] + 1
        p = ch.pending
        for tx, rx, t in zip(p.tx_index.tolist(), p.receiver.tolist(), p.delivery_time_s.tolist(), strict=True):
            s = out.get(int(tx))
            if s is not None:
                s.deliveries.append(Delivery(w.id_of(int(rx)), float(t)))
        for s in out.values():
            s.deliveries.sort(key=lambda d: (d.rx_time_s, d.receiver))
        return list(out.values())


def poses(sim: Simulation) -> list[Pose]:
    """Every actor's true pose now (actor-id order)."""
    w = sim.world
    out = []
    for actor_id in sim.actor_ids:
        s = w.slot_of(actor_id)
        out.append(
            Pose(
                actor=actor_id,
                kind=sim.scenario.actor(actor_id).kind,
                x_m=float(w.x[s]),
                y_m=float(w.y[s]),
                speed_mps=math.hypot(float(w.vx[s]), float(w.vy[s])),
                yaw_rad=float(w.heading_rad[s]),
                length_m=float(w.length_m[s]),
                width_m=float(w.width_m[s]),
            )
        )
    return out


def background_boxes(sim: Simulation) -> list[list[float]]:
    """The background vehicles on the road now (the ``flows`` or SUMO's), each as [x, y, yaw, length, width]
    (m, rad; rounded for a page): what the live view draws under the scenario's own road users."""
    if sim.background is None:
        return []
    w = sim.world
    slots = sim.background.present
    if not len(slots):
        return []
    cols = (w.x[slots], w.y[slots], w.heading_rad[slots], w.length_m[slots], w.width_m[slots])
    return [
        [round(float(x), 2), round(float(y), 2), round(float(yaw), 3), round(float(ln), 2), round(float(wd), 2)]
        for x, y, yaw, ln, wd in zip(*cols, strict=True)
    ]


def signal_lights(sim: Simulation, t_s: float) -> list[list[Any]]:
    """Each signalised approach's light at ``t_s`` as the referee sees it (signal priority's changes
    included): [x, y, light] at its stop line, light a ``LIGHT_NAME`` ("red", "protected-green", ...)."""
    return [
        [round(ap.stop_point[0], 2), round(ap.stop_point[1], 2), LIGHT_NAME[ctl.light(ap.phase_id, t_s)]]
        for ap, ctl in sim.referee.stop_lines
    ]


class Observers:
    """Several observers as one (recording and viewing the same run), called in order."""

    def __init__(self, observers: Sequence[Any]) -> None:
        self.observers = list(observers)

    @property
    def held_s(self) -> float:
        """Wall seconds the observers held the world (a paused live view): ``v2x.net.world.Observer``."""
        return sum(float(getattr(o, "held_s", 0.0)) for o in self.observers)

    async def on_tick(self, sim: Simulation, tick: int, events: list[Event]) -> None:
        for o in self.observers:
            await o.on_tick(sim, tick, events)

    def on_inputs(self, sim: Simulation, names: list[str]) -> None:
        for o in self.observers:
            on_inputs = getattr(o, "on_inputs", None)
            if on_inputs is not None:
                on_inputs(sim, names)

    def on_input_bytes(self, tick: int, inputs: dict[str, bytes]) -> None:
        for o in self.observers:
            on_input_bytes = getattr(o, "on_input_bytes", None)
            if on_input_bytes is not None:
                on_input_bytes(tick, inputs)
