"""The largest message each of a run's topics carries, and so the largest MQTT packet each connection takes.

The size checks where a message is handled (an agent's TickInput, the world's transmissions and acks, a fleet's
FleetInput) come only after the whole message was read into the process; a payload of hundreds of MB on a topic
a run subscribes to stalled the run's event loop for seconds before it was refused (an attack review). So every
connection of ours tells an MQTT 5 broker, in its CONNECT's Maximum Packet Size, the largest packet it takes: a
bigger message is dropped by the broker for that connection instead of sent (``MqttTransport``). The embedded
broker checks the same limits per topic before it reads a PUBLISH's payload (``v2x.net.amqtt_fanout``).

The limits themselves are the protocol's (``v2x.wire.protocol``, shared with the SDK); this module maps a run's
topics to them and adds what an MQTT packet adds to its payload.
"""

from __future__ import annotations

from collections.abc import Iterable

from v2x.net import topics
from v2x.wire.protocol import (
    MAX_ACK_BYTES,
    MAX_CONTROL_BYTES,
    MAX_FLEET_ACK_BYTES,
    MAX_FLEET_INPUT_BYTES,
    MAX_HELLO_BYTES,
    MAX_INPUT_BYTES,
    MAX_TX_BYTES,
)

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
    "claim": MAX_HELLO_BYTES,  # a world's claim of its run id (World.claim): a few bytes
    "probe": MAX_HELLO_BYTES,  # the world's message to itself before it starts (empty)
}
LARGEST_PAYLOAD = max(PAYLOAD_LIMITS.values())


def payload_limit(topic: str) -> int:
    """The largest payload a run's topic ``topic`` carries (any other topic: the largest of them all)."""
    kind = topics.kind_of(topic)
    return LARGEST_PAYLOAD if kind is None else PAYLOAD_LIMITS[kind]


def packet_limit(filters: Iterable[str]) -> int:
    """The MQTT Maximum Packet Size for a connection subscribed to ``filters``: the largest payload any of them
    carries, plus :data:`PACKET_HEADROOM` (a filter that is not one of a run's topics counts as the largest)."""
    return max((payload_limit(f) for f in filters), default=MAX_HELLO_BYTES) + PACKET_HEADROOM
