"""Shared fixtures: real brokers (embedded amqtt, and a real Mosquitto on a free loopback port)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from tests._mosquitto import MOSQUITTO, Mosquitto
from v2x.net.broker import BrokerAddress, embedded_broker


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[Mosquitto]:
    if MOSQUITTO is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed; .ci/run installs it (apt-get install mosquitto)")
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); Mosquitto tests skipped")
    broker = Mosquitto(MOSQUITTO)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
async def embedded() -> AsyncIterator[BrokerAddress]:
    async with embedded_broker() as address:
        yield address
