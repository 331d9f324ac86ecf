"""What ``import v2x.sdk`` loads: the protocol, the topics and the transport, as an outside stack would use them,
never the simulator (docs/ARCHITECTURE.md "Layers"; the import-linter contract "The SDK does not load the
simulator" checks the imports as written, this test what a fresh interpreter actually loads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_LOADED = ("v2x.sim", "v2x.core", "v2x.apps", "v2x.scenario", "v2x.impair", "v2x.agents")
NOT_LOADED_LIBRARIES = ("numba", "pydantic", "shapely")


def test_importing_the_sdk_loads_no_simulator_and_none_of_its_libraries() -> None:
    """Until session 20 it loaded 94 v2x modules (every app, the core's kernels, the simulation, the scenario
    loader with pydantic and shapely): ``v2x.sdk.client`` took ``WORLD_LOST`` from ``v2x.net.world`` and the
    size limits from ``v2x.net.limits``, which took them from ``v2x.sim.inbound``."""
    probe = "import json, sys\nimport v2x.sdk\nprint(json.dumps(sorted(sys.modules)))\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", probe], check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert "v2x.sdk.client" in loaded and "v2x.wire.protocol" in loaded  # the probe saw the SDK's imports
    unwanted = [
        m for m in loaded if any(m == top or m.startswith(top + ".") for top in NOT_LOADED + NOT_LOADED_LIBRARIES)
    ]
    assert unwanted == []
