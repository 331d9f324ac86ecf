"""The numbers and words of the protocol (docs/PROTOCOL.md) that the world's side (the simulation's inbox,
``v2x.sim.inbound``; the shell, ``v2x.net``; the worker, ``v2x.run.workers``) shares with the SDK for outside
stacks (``v2x.sdk``): one definition of each, in a module that imports nothing, so that the SDK has them without
loading the simulator.

The largest payload of each of a run's topics: a bigger one is refused where it is handled (``oversized``), and
every connection of ours tells the broker not to send it more (``v2x.net.limits``, which maps topics to these).
"""

from __future__ import annotations

from collections.abc import Sequence

PROTOCOL_VERSION = 1  # Hello.protocol_version and Control.protocol_version (docs/PROTOCOL.md "Version: v1")
PROTOCOL_VERSIONS: tuple[int, ...] = (PROTOCOL_VERSION,)  # the Hello.protocol_version values a world takes

MAX_TX_PER_TICK = 64  # envelopes one actor may send in a tick (Ack.tx_count; built-in agents stay within it too)
MAX_HELLO_BYTES = 16 * 1024  # a Hello or FleetHello: ids, a software name, a nonce and a seal
MAX_INPUT_BYTES = 4 * 1024 * 1024  # a TickInput (world -> agent)
MAX_TX_BYTES = 16 * 1024  # TS 22.185: event messages up to 1200 B; MAP and envelopes need more headroom
MAX_ACK_BYTES = 64 * 1024  # an Ack: truth, a few warnings and notes
# A FleetInput carries every delivery to the fleet's vehicles: about 1.9 kB per hosted vehicle where each
# hears some 180 others (``v2x bench stack``'s traffic), 3.7 MB for 2,000. The limit (against a payload that
# would only cost memory) leaves room for tens of thousands of vehicles per fleet; the world refuses to send
# a bigger one (``World``: exit 3, naming the fleet) rather than have it rejected here tick after tick.
MAX_FLEET_INPUT_BYTES = 64 * 1024 * 1024
MAX_FLEET_ACK_BYTES = 64 * 1024 * 1024  # a FleetAck: the envelopes of every hosted vehicle (as big as its input may be)
MAX_CONTROL_BYTES = 4 * 1024 * 1024  # a START lists every actor (a scenario file is at most 4 MiB)
# The longest and widest vehicle a FleetInput may describe, in metres: a fleet refuses an input with a bigger one
# (``malformed``), and a scenario's SUMO demand may not give its vehicles a bigger vType (``v2x.scenario.sumo``).
MAX_VEHICLE_SIZE_M = 100.0

# Which message kinds (``MessageFrame``'s ``msg`` oneof names) each kind of actor may send, one table for the
# world's check of every envelope (``v2x.sim.inbound``: ``not_permitted`` otherwise), the receivers' own
# (``v2x.agents``, ``v2x.sdk``) and, in a signed run, the app permissions of each actor's certificates
# (``v2x.wire.security``: ``no_permission``); docs/PROTOCOL.md "Who may send what". A road user (car, truck, bus,
# emergency, pedestrian, cyclist; a fleet's vehicles) sends its BSM, a VRU's PSM, a VIR (intention and requests),
# a platoon's CLPMM and an SSM of what its sensors see (T/CSAE 157: an OBU or a VRU device may, ``equipment_type``
# 2 / 3; refused until attack review 11, against docs/PROTOCOL.md's Day-2 table). A roadside unit sends what the
# road infrastructure says (MAP, SPAT, RSI, RSM, SSM, RSC) and relays the BSMs it hears to the platform over the
# wired backhaul in envelopes of its own, hence "bsm" (only so: ``RELAYED``); the platform sends its apps'
# advisories and its coordination (RSC). No one else may send an advisory or speak for a traffic light.
ROAD_USER_SENDS: tuple[str, ...] = ("bsm", "clpmm", "psm", "ssm", "vir")
MAY_SEND: dict[str, tuple[str, ...]] = {
    "rsu": ("bsm", "map", "rsc", "rsi", "rsm", "spat", "ssm"),
    "platform": ("advisory", "rsc"),
}


# What a kind of actor may send only as a relay, and to whom: over the wired backhaul (``LINK_WIRED``), each
# destination one of these kinds. An RSU's "bsm" is the BSMs it heard, passed on to the platform; on PC5 or to a
# car, the same envelope is a BSM the RSU made up (with any id, since a relay carries the heard sender's): a
# built-in car warned about a phantom (attack review 11). The world refuses the others (``not_permitted``), and a
# relay whose frame it did not deliver to the relaying actor (``not_relayed``, ``v2x.sim.inbound.Inbound.heard``: a
# made-up one framed a car at the edge's misbehaviour detection, attack review 13).
RELAYED: dict[str, dict[str, tuple[str, ...]]] = {"rsu": {"bsm": ("platform",)}}


# What a receiver takes over Uu only: the platform's advisory (docs/PROTOCOL.md "Who may send what"). The world lets
# one through over PC5 or LINK_WIRED (to a car too); the built-in receivers (``Environment.sent_by_its_kind``) and
# the SDK refuse it, counted as ``not_permitted`` (the built-in vehicle counted it as ``out_of_range``: diff
# review 25).
UU_ONLY: frozenset[str] = frozenset({"advisory"})


def taken_over(msg_type: str, uu: bool) -> bool:
    """Whether a receiver takes ``msg_type`` over the link it came by (``uu``: Uu): an advisory over Uu only."""
    return uu or msg_type not in UU_ONLY


def may_send(kind: str) -> tuple[str, ...]:
    """The message kinds an actor of ``kind`` may send (a road user's for any kind but ``rsu`` and ``platform``)."""
    return MAY_SEND.get(kind, ROAD_USER_SENDS)


def relay_problem(kind: str, msg_type: str, wired: bool, dest_kinds: Sequence[str]) -> str:
    """Why an actor of ``kind`` may not send ``msg_type`` this way (``RELAYED``; "" if it may): over the wired link
    (``wired``) or not, to destinations of ``dest_kinds``."""
    to = RELAYED.get(kind, {}).get(msg_type)
    if to is None or (wired and dest_kinds and all(k in to for k in dest_kinds)):
        return ""
    return f"a {kind} sends {msg_type!r} only as a relay over LINK_WIRED to the {' or '.join(to)}"


# The reason of the STOP the world's connection leaves as its Last Will: the world died, or the broker restarted;
# not the end of the run for an agent (the world may come back).
WORLD_LOST = "world lost"
HELLO_EVERY_S = 1.0  # a Hello (FleetHello) is said this often until the first TickInput (FleetInput)

# Advisory.figure_name: the figures the built-in apps' warnings carry (each app's ``AppSpec.figure``, in registry
# order; docs/PROTOCOL.md "Warnings" lists them). Here for the SDK, which checks a warning's figure name before it
# goes out (``Stack.warning``) without loading the apps; the world takes the registry's names
# (``v2x.apps.registry.figures``: these and a plugin app's own), and tests/test_app_registry.py checks that these
# are the built-in apps' figures, no more and no fewer.
FIGURE_NAMES: tuple[str, ...] = (
    "pet_s",
    "headway_s",
    "hazard_m",
    "sign_m",
    "speed_limit_mps",
    "gap_m",
    "stop_line_m",
    "advised_speed_mps",
    "gap_s",
    "queue_m",
    "green_left_s",
    "suggested_speed_mps",
    "platoon_position",
)
