"""Shared fixtures: real brokers (embedded amqtt, and a real Mosquitto on a free loopback port)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests._mosquitto import Mosquitto, mosquitto_binary
from v2x.net.broker import BrokerAddress, embedded_broker

# Scenario files the tests load themselves (tests/scenarios/): not items of the scenario plugin, which would run
# each against a golden record it has none of.
collect_ignore_glob = ["scenarios/*.yaml"]


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
