"""The world process's CPU per tick, part by part, in one process: `v2x bench stack`'s workload (N equipped
background vehicles on fleets, the two story cars with FCW) driven without a broker, the fleets answering
in the same process (their own time left out), the story cars stepped as the world's AgentHost steps them
(each envelope parsed once per tick for both).

    .venv/bin/python benchmarks/world_tick.py [--n 2000] [--seconds 3] [--fleets 2]

Prints one JSON object: CPU ms per tick (``time.process_time``, so the figures hold on a loaded machine
better than wall time) of the world's parts (``begin``, ``cars``, ``fleet_ack``, ``step``) and of some of
their pieces, the fleets' own CPU (``fleets.transmit``, ``fleets.listen``: all fleets together, outside the
world's parts), the minor page faults per tick of those pieces, and ``digest``: SHA-256 of every TickInput,
FleetInput, Ack, FleetAck, tick's events and the final events and metrics, in order. Two versions of the code
that give the same digest made the same run byte for byte; comparing the figures of two checkouts
(interleaved runs) is how the world's speed-ups were measured (the script uses ``v2x.net.host``'s
``tick_context``, ``envelope_of`` and ``ack_of`` and ``FleetAgent.transmit``/``listen``: it runs against
checkouts from ec25c7e on; a fleet whose ``step`` takes the input's bytes gets them, as ``FleetHost`` gives
them). The cyclic collector and numpy's huge pages are set as the world's tick loop sets them
(``steady_loop``; ``steady_gc``, the collector only, in checkouts before it).
"""

from __future__ import annotations

import argparse
import collections
import functools
import hashlib
import inspect
import json
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from v2x.agents.base import Environment, Heard
from v2x.agents.fleet import FleetAgent
from v2x.apps.collision import ForwardCollisionWarning
from v2x.apps.misbehaviour import Detector
from v2x.bench.stack import stack_scenario
from v2x.net.host import _envelope_parts, ack_of, envelope_of, tick_context
from v2x.run.runner import build_agents, environment, warm_up_core
from v2x.scenario import load_scenario
from v2x.sim.channel import Channel
from v2x.sim.inbound import Inbound
from v2x.sim.sensors import BackgroundPositioning
from v2x.sim.simulation import Simulation
from v2x.wire import testbed_pb2

try:
    from v2x.run.workers import steady_loop
except ImportError:  # checkouts before steady_loop
    from v2x.run.workers import steady_gc as steady_loop  # type: ignore[attr-defined,no-redef]

CPU: collections.defaultdict[str, float] = collections.defaultdict(float)  # seconds
FAULTS: collections.Counter[str] = collections.Counter()

PIECES = (
    (Channel, "transmit", "transmit"),
    (Channel, "due_split", "due_split"),
    (Simulation, "_fleet_inputs", "fleet_inputs"),
    (Simulation, "_move_background", "move_background"),
    (BackgroundPositioning, "step", "background_positioning"),
    (Inbound, "fleet", "fleet_ack"),
    (Environment, "decode_bsms", "cars.decode_bsms"),
    (Detector, "observe", "cars.observe"),
    (Detector, "overlaps", "cars.overlaps"),
    (ForwardCollisionWarning, "evaluate", "cars.fcw"),
    # The fleets' work (in their worker processes in a real run; here in this one, and not in the world's parts):
    (FleetAgent, "transmit", "fleets.transmit"),
    (FleetAgent, "listen", "fleets.listen"),
)


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _timed(cls: type, name: str, label: str) -> None:
    """Count the CPU time and page faults of ``cls.name`` under ``label``."""
    fn: Callable[..., Any] = getattr(cls, name)

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        t0, f0 = time.process_time(), _faults()
        try:
            return fn(*args, **kwargs)
        finally:
            CPU[label] += time.process_time() - t0
            FAULTS[label] += _faults() - f0

    setattr(cls, name, timed)


def run(n: int, seconds: float, fleets: int) -> dict[str, Any]:
    doc = stack_scenario(n, seconds)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stack.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        sc = load_scenario(path)
    warm_up_core([sc])
    for cls, name, label in PIECES:
        _timed(cls, name, label)
    sim = Simulation(sc, variant="v2x", seed=0, fleets=fleets)
    env = environment(sc)
    agents = {a.actor_id: a for a in build_agents(sc, env)}
    hosts = {f: FleetAgent(f, frame=env.frame, epoch=env.epoch, thresholds=env.thresholds) for f in sim.fleet_ids}
    seq: collections.Counter[str] = collections.Counter()
    takes_bytes = "raw" in inspect.signature(FleetAgent.step).parameters  # (from fd0b702 on)
    digest = hashlib.sha256()
    clock = time.process_time
    with steady_loop():
        for tick in range(sim.n_ticks + 1):
            t0 = clock()
            inputs = sim.begin(tick)
            CPU["begin"] += clock() - t0
            for actor_id in sorted(inputs):
                digest.update(inputs[actor_id])
            for fleet_id in sorted(sim.fleet_inputs):
                digest.update(sim.fleet_inputs[fleet_id])
            t0 = clock()
            parsed: dict[bytes, Any] = {}
            for actor_id in sim.actor_ids:
                digest.update(_car(sim, agents[actor_id], inputs[actor_id], parsed, seq))
            CPU["cars"] += clock() - t0
            for fleet_id, payload in sim.fleet_inputs.items():
                inp = testbed_pb2.FleetInput.FromString(payload)
                # With the bytes, as FleetHost hands them over, where the checkout's FleetAgent takes them.
                ack = (
                    hosts[fleet_id].step(inp, payload) if takes_bytes else hosts[fleet_id].step(inp)
                ).SerializeToString()
                digest.update(ack)
                sim.receive_fleet(fleet_id, ack)
            if not sim.reported:
                raise RuntimeError(f"tick {tick}: not reported by {sim.missing()}")
            t0 = clock()
            events = sim.step()
            CPU["step"] += clock() - t0
            digest.update(json.dumps(events, sort_keys=True).encode())
    report = sim.report(1.0)
    digest.update(json.dumps(report.events, sort_keys=True).encode())
    digest.update(json.dumps(report.metrics, sort_keys=True, default=str).encode())
    ticks = sim.n_ticks + 1
    return {
        "n": n,
        "seconds": seconds,
        "fleets": fleets,
        "cpu_ms_per_tick": {k: round(v / ticks * 1e3, 2) for k, v in sorted(CPU.items())},
        "page_faults_per_tick": {k: round(v / ticks) for k, v in sorted(FAULTS.items())},
        "warnings": sum(e["type"] == "warning" for e in report.events),
        "pc5_delivered": report.metrics["messages"]["delivered"].get("pc5", 0),
        "digest": digest.hexdigest(),
    }


def _car(sim: Simulation, agent: Any, payload: bytes, parsed: dict[bytes, Any], seq: collections.Counter[str]) -> bytes:
    """Step a built-in agent on its TickInput as AgentHost does; its transmissions and Ack go to the world.
    Returns the Ack's bytes."""
    ti = testbed_pb2.TickInput.FromString(payload)
    heard = []
    for raw, rx_us in zip(ti.envelopes, ti.rx_time_us, strict=True):
        parts = parsed.get(raw)
        if parts is None:
            parts = parsed[raw] = _envelope_parts(raw, None)
        if isinstance(parts, str):
            continue
        sender_id, link, tx_time_s, frame, memo, _ = parts
        heard.append(Heard(sender_id, link, rx_us / 1e6, tx_time_s, frame, memo))
    result = agent.step(tick_context(ti, tuple(heard)))
    for tx in result.transmissions:
        seq[agent.actor_id] += 1
        sim.receive("tx", agent.actor_id, envelope_of(agent.actor_id, seq[agent.actor_id], ti, tx).SerializeToString())
    ack = ack_of(agent.actor_id, ti, result, agent.rejected)
    data = ack.SerializeToString()
    sim.receive("ack", agent.actor_id, data)
    return data


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000, help="equipped background vehicles (default 2000)")
    p.add_argument("--seconds", type=float, default=3.0, help="simulated seconds (default 3)")
    p.add_argument("--fleets", type=int, default=2, help="fleet agents, as --workers (default 2)")
    args = p.parse_args()
    print(json.dumps(run(args.n, args.seconds, args.fleets)))


if __name__ == "__main__":
    main()
