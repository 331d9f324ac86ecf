"""Shared fixtures: real brokers (embedded amqtt, and a real Mosquitto on a free loopback port)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests._mosquitto import Mosquitto, mosquitto_binary
from v2x.net.broker import BrokerAddress, embedded_broker


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[Mosquitto]:
    broker = Mosquitto(mosquitto_binary())
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
async def embedded() -> AsyncIterator[BrokerAddress]:
    async with embedded_broker() as address:
        yield address
