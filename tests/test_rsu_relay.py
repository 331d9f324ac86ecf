"""An RSU relays the BSMs it hears over PC5 to the platform, within the envelopes an actor may send in a tick."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import yaml

from v2x.bench.stack import individual_scenario
from v2x.run.runner import run_scenario
from v2x.scenario import load_scenario
from v2x.wire.protocol import MAX_TX_PER_TICK


def test_an_rsu_with_more_bsms_in_range_than_it_may_send_relays_the_nearest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A claims review (session 24): `benchmarks/agents_scale.py --n 100` stalled at tick 1 and ended with exit 3,
    the world refusing the built-in RSU's report (`tx_count 78 > 64`): it relayed every one of the 78 BSMs it
    heard. It now relays the nearest it may send, says so once, and the run goes on."""
    doc = individual_scenario(80, 0.5)
    doc["id"] = "relay80"
    doc["actors"].append({"id": "rsu1", "kind": "rsu", "position": [400, -12], "range_m": 300})
    doc["actors"].append({"id": "cloud", "kind": "platform"})
    path = tmp_path / "relay80.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    sc = load_scenario(path)
    with caplog.at_level(logging.WARNING, logger="v2x.agents.roadside"):
        result = asyncio.run(run_scenario(sc, seed=0, broker="loopback", variants=["v2x"]))
    metrics = result["metrics"]["v2x"]
    assert not metrics.get("rejected"), metrics.get("rejected")
    said = [r.getMessage() for r in caplog.records if r.name == "v2x.agents.roadside"]
    assert len(said) == 1 and said[0].startswith("rsu1 t=0.1 s: heard "), said
    assert f"at most {MAX_TX_PER_TICK} envelopes a tick" in said[0]
