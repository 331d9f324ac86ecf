"""The largest message each of a run's topics carries, and so the largest MQTT packet each connection takes.

The size checks where a message is handled (an agent's TickInput, the world's transmissions and acks, a fleet's
FleetInput) come only after the whole message was read into the process; a payload of hundreds of MB on a topic
a run subscribes to stalled the run's event loop for seconds before it was refused (an attack review). So every
connection of ours tells an MQTT 5 broker, in its CONNECT's Maximum Packet Size, the largest packet it takes: a
bigger message is dropped by the broker for that connection instead of sent (``MqttTransport``). The embedded
broker checks the same limits per topic before it reads a PUBLISH's payload (``v2x.net.amqtt_fanout``).
"""

from __future__ import annotations

from collections.abc import Iterable

from v2x.net import topics
from v2x.sim.inbound import MAX_ACK_BYTES, MAX_FLEET_ACK_BYTES, MAX_TX_BYTES

MAX_INPUT_BYTES = 4 * 1024 * 1024  # a TickInput (world -> agent); a bigger one is refused (``oversized``)
# A FleetInput carries every delivery to the fleet's vehicles: about 1.9 kB per hosted vehicle where each
# hears some 180 others (``v2x bench stack``'s traffic), 3.7 MB for 2,000. The limit (against a payload that
# would only cost memory) leaves room for tens of thousands of vehicles per fleet; the world refuses to send
# a bigger one (``World``: exit 3, naming the fleet) rather than have it rejected here tick after tick.
MAX_FLEET_INPUT_BYTES = 64 * 1024 * 1024
MAX_HELLO_BYTES = 64 * 1024  # a Hello or FleetHello: ids, a software name and a seal
MAX_CONTROL_BYTES = 4 * 1024 * 1024  # a START lists every actor (a scenario file is at most 4 MiB)
# What a packet adds to its payload: the fixed header (5 bytes), the topic (2 + at most ~150 bytes), a packet
# id and MQTT 5 properties; generous, so that no legitimate message is ever dropped for its envelope.
PACKET_HEADROOM = 64 * 1024

PAYLOAD_LIMITS: dict[str, int] = {
    "join": MAX_HELLO_BYTES,
    "in": MAX_INPUT_BYTES,
    "tx": MAX_TX_BYTES,
    "ack": MAX_ACK_BYTES,
    "fleet-in": MAX_FLEET_INPUT_BYTES,
    "fleet-ack": MAX_FLEET_ACK_BYTES,
    "fleet-join": MAX_HELLO_BYTES,
    "control": MAX_CONTROL_BYTES,
    "probe": MAX_HELLO_BYTES,  # the world's message to itself before it starts (empty)
}
LARGEST_PAYLOAD = max(PAYLOAD_LIMITS.values())


def kind_of(topic_or_filter: str) -> str | None:
    """Which of a run's topics ``topic_or_filter`` is (a key of :data:`PAYLOAD_LIMITS`), or None if it is not
    one of ours or a wildcard stands for the kind."""
    parts = topic_or_filter.split("/")
    if parts[0] == topics.PROBE_PREFIX:
        return "probe"
    if parts[0] != topics.PREFIX or len(parts) < 3:
        return None
    if len(parts) == 3:
        return "control" if parts[2] == "control" else None
    return parts[2] if len(parts) == 4 and parts[2] in topics.KINDS else None


def payload_limit(topic: str) -> int:
    """The largest payload a run's topic ``topic`` carries (any other topic: the largest of them all)."""
    kind = kind_of(topic)
    return LARGEST_PAYLOAD if kind is None else PAYLOAD_LIMITS[kind]


def packet_limit(filters: Iterable[str]) -> int:
    """The MQTT Maximum Packet Size for a connection subscribed to ``filters``: the largest payload any of them
    carries, plus :data:`PACKET_HEADROOM` (a filter that is not one of a run's topics counts as the largest)."""
    return max((payload_limit(f) for f in filters), default=MAX_HELLO_BYTES) + PACKET_HEADROOM
