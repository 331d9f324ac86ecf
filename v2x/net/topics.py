"""The MQTT topic scheme: the one place topic strings are made and parsed.

Every topic carries the run id, so concurrent runs on one broker never mix::

    v2x/{run}/join/{actor}   Hello        agent -> world   (on start and after every reconnect)
    v2x/{run}/in/{actor}     TickInput    world -> agent   (per tick: tick, GNSS reading, messages heard)
    v2x/{run}/tx/{actor}     Envelope     agent -> world   (a transmission over the air / network)
    v2x/{run}/ack/{actor}    Ack          agent -> world   (tick done: tx count, ground truth, events)
    v2x/{run}/control        Control      world -> all     (start / stop)
    v2x/{run}/fleet-in/{fleet}   FleetInput  world -> fleet  (per tick: its vehicles' truth, what they heard)
    v2x/{run}/fleet-ack/{fleet}  FleetAck    fleet -> world  (tick done: its vehicles' envelopes, warnings)
    v2x/{run}/fleet-join/{fleet} FleetHello  fleet -> world  (a worker started on its own: ``v2x worker``)

A fleet (the built-in agent of the equipped background vehicles, ``v2x.agents.fleet``) the runner starts
says no hello: it is subscribed before the world's first tick. One started on its own (``v2x worker``, on
another machine) says ``FleetHello`` on ``fleet-join`` until its first input, and after each reconnection.

See docs/PROTOCOL.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from v2x.argtypes import ID_PATTERN

PREFIX = "v2x"

Kind = Literal["join", "in", "tx", "ack", "fleet-in", "fleet-ack", "fleet-join"]
KINDS: tuple[Kind, ...] = ("join", "in", "tx", "ack", "fleet-in", "fleet-ack", "fleet-join")


def valid_id(value: str) -> bool:
    """Run and actor ids: 1-64 characters of letters, digits, ``_``, ``.``, ``-`` (no MQTT wildcards)."""
    return bool(ID_PATTERN.fullmatch(value))  # (match with "$" took a final newline: "x\n")


def _check(value: str, what: str) -> str:
    if not valid_id(value):
        raise ValueError(f"invalid {what} {value!r}: use 1-64 of A-Z a-z 0-9 _ . -")
    return value


def actor_topic(run_id: str, kind: Kind, actor_id: str) -> str:
    return f"{PREFIX}/{_check(run_id, 'run id')}/{kind}/{_check(actor_id, 'actor id')}"


def join(run_id: str, actor_id: str) -> str:
    return actor_topic(run_id, "join", actor_id)


def tick_input(run_id: str, actor_id: str) -> str:
    return actor_topic(run_id, "in", actor_id)


def tx(run_id: str, actor_id: str) -> str:
    return actor_topic(run_id, "tx", actor_id)


def ack(run_id: str, actor_id: str) -> str:
    return actor_topic(run_id, "ack", actor_id)


def fleet_input(run_id: str, fleet_id: str) -> str:
    return actor_topic(run_id, "fleet-in", fleet_id)


def fleet_ack(run_id: str, fleet_id: str) -> str:
    return actor_topic(run_id, "fleet-ack", fleet_id)


def fleet_join(run_id: str, fleet_id: str) -> str:
    return actor_topic(run_id, "fleet-join", fleet_id)


def control(run_id: str) -> str:
    return f"{PREFIX}/{_check(run_id, 'run id')}/control"


def claim(run_id: str) -> str:
    """Where a world that has claimed ``run_id`` says so (retained) until its START (``World.claim``); internal,
    outside stacks need not read it."""
    return f"{PREFIX}/{_check(run_id, 'run id')}/claim"


def all_of(run_id: str, kind: Kind) -> str:
    """Subscription filter for one kind from every actor of a run, e.g. ``v2x/r1/tx/+``."""
    return f"{PREFIX}/{_check(run_id, 'run id')}/{kind}/+"


def probe(run_id: str, nonce: str) -> str:
    """The topic a world publishes to itself before it starts (``World.claim``): ``v2x-probe/{run}/{nonce}``."""
    return f"{PROBE_PREFIX}/{_check(run_id, 'run id')}/{_check(nonce, 'probe nonce')}"


PROBE_PREFIX = "v2x-probe"


@dataclass(frozen=True)
class Grants:
    """What one broker user may do with a run's topics: MQTT topic filters it may publish on (``write``)
    and read (``read``: subscribe to, and receive). Everything else is refused (docs/SECURITY.md)."""

    write: tuple[str, ...]
    read: tuple[str, ...]


def world_grants(run_id: str) -> Grants:
    """The world of ``run_id``: it alone publishes TickInputs and Controls, and it reads every actor's
    join, tx and ack topics, the control topic (to see forged Controls), its claim topic and its own probe. The built-in
    fleet agent runs under the world's user in a secure run: the fleet topics both ways."""
    probes = f"{PROBE_PREFIX}/{_check(run_id, 'run id')}/+"
    fleets = (all_of(run_id, "fleet-in"), all_of(run_id, "fleet-ack"), all_of(run_id, "fleet-join"))
    return Grants(
        write=(all_of(run_id, "in"), control(run_id), claim(run_id), probes, *fleets),
        read=(
            all_of(run_id, "join"),
            all_of(run_id, "tx"),
            all_of(run_id, "ack"),
            control(run_id),
            claim(run_id),
            probes,
            *fleets,
        ),
    )


def actor_grants(run_id: str, actor_id: str) -> Grants:
    """Actor ``actor_id`` of ``run_id``: it publishes only on its own join, tx and ack topics and reads only
    its own TickInputs and the run's Control."""
    return Grants(
        write=(join(run_id, actor_id), tx(run_id, actor_id), ack(run_id, actor_id)),
        read=(tick_input(run_id, actor_id), control(run_id)),
    )


def fleet_grants(run_id: str, fleet_id: str) -> Grants:
    """Fleet ``fleet_id`` of ``run_id`` served by a worker started on its own (``v2x worker``, docs/SECURITY.md):
    it publishes only on its own fleet-join (its FleetHello and Last Will) and fleet-ack topics and reads only
    its own FleetInputs and the run's Control."""
    return Grants(
        write=(fleet_join(run_id, fleet_id), fleet_ack(run_id, fleet_id)),
        read=(fleet_input(run_id, fleet_id), control(run_id)),
    )


def covers(pattern: str, topic_filter: str) -> bool:
    """Whether every topic that ``topic_filter`` matches is matched by ``pattern`` (both MQTT filters; a
    plain topic is a filter matching itself). ``v2x/r/in/+`` covers ``v2x/r/in/a`` and itself; nothing
    but ``#`` covers ``#``."""
    wanted = topic_filter.split("/")
    allowed = pattern.split("/")
    for k, part in enumerate(allowed):
        if part == "#":
            return True
        if k >= len(wanted):
            return False
        if wanted[k] == "#" or (part != "+" and part != wanted[k]) or (part == "+" and wanted[k] == "#"):
            return False
    return len(wanted) == len(allowed)


@dataclass(frozen=True)
class ParsedTopic:
    run_id: str
    kind: Kind
    actor_id: str


def parse(topic: str) -> ParsedTopic | None:
    """Parse an actor topic; None if it is not one of ours (wrong prefix, kind, or id syntax)."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != PREFIX:
        return None
    _, run_id, kind, actor_id = parts
    if kind not in KINDS or not valid_id(run_id) or not valid_id(actor_id):
        return None
    return ParsedTopic(run_id, kind, actor_id)


def kind_of(topic_or_filter: str) -> Kind | Literal["control", "claim", "probe"] | None:
    """Which of a run's topics ``topic_or_filter`` (a topic, or a subscription filter) is: an actor topic's kind
    (as :func:`parse` gives it), ``"control"`` or ``"probe"``; None if it is not one of ours or a wildcard
    stands for the kind. The ids are not checked (a filter has ``+`` there: ``v2x/r1/tx/+`` is ``"tx"``)."""
    parts = topic_or_filter.split("/")
    if parts[0] == PROBE_PREFIX:
        return "probe"
    if parts[0] != PREFIX or len(parts) < 3:
        return None
    if len(parts) == 3:
        return "control" if parts[2] == "control" else "claim" if parts[2] == "claim" else None
    kind = parts[2]
    return kind if len(parts) == 4 and kind in KINDS else None
