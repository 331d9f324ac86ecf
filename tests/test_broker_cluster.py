"""Fleet workers against a real clustered broker: a two-node RabbitMQ cluster (its MQTT plugin) on localhost.
The world talks to node 0, the two ``v2x worker`` processes to node 1, as on two machines each near its own
cluster node; the outcome is the single-process run's, byte for byte (tests/test_remote_workers.py does the
same over two bridged Mosquittos)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from tests._mosquitto import Mosquitto
from tests._rabbitmq import RABBITMQ, RabbitCluster
from tests.test_remote_workers import _finish, _same, _scenario_file, _worker
from v2x.cli import main as cli_main
from v2x.run.runner import run_scenario, warm_up_core
from v2x.scenario import load_scenario


@pytest.fixture(scope="module")
def cluster() -> Iterator[RabbitCluster]:
    if RABBITMQ is None:
        if os.environ.get("CI"):
            pytest.fail("rabbitmq-server is not installed; .ci/run installs it (apt-get install rabbitmq-server)")
        pytest.skip("rabbitmq-server is not installed (apt-get install rabbitmq-server); cluster tests skipped")
    for attempt in range(3):  # a node that cannot start (its port taken meanwhile) gets fresh ports and a new try
        c = RabbitCluster(2)
        try:
            c.start()
            break
        except RuntimeError as exc:
            c.stop()
            if attempt == 2:
                raise
            print(f"RabbitMQ cluster did not start (attempt {attempt + 1}), trying again: {str(exc)[:300]}")
    try:
        yield c
    finally:
        c.stop()


def test_remote_workers_on_a_rabbitmq_cluster_give_the_single_process_outcome(
    tmp_path: Path, cluster: RabbitCluster
) -> None:
    path = _scenario_file(tmp_path)
    sc = load_scenario(path)
    warm_up_core([sc])
    single = asyncio.run(run_scenario(sc, seed=0, broker="loopback", variants=["v2x"]))
    assert [e for e in single["events"] if e["type"] == "warning" and e["target"].startswith("bg-")]
    node1 = cast(Mosquitto, SimpleNamespace(port=cluster.ports[1]))  # _worker reads only the port
    workers = [_worker(path, node1, "rabbit1", k, 2) for k in range(2)]
    args = ["run", str(path), "--broker", f"mqtt://127.0.0.1:{cluster.ports[0]}", "--variant", "v2x"]
    args += ["--workers", "2", "--remote-workers", "--run-id", "rabbit1", "--worker-timeout", "60"]
    args += ["--out", str(tmp_path / "r")]
    try:
        code = cli_main(args)
    finally:
        finished = [_finish(w, 60.0) for w in workers]
    assert (code, [c for c, _ in finished]) == (0, [0, 0]), [err[-2000:] for _, err in finished]
    remote = json.loads((tmp_path / "r" / sc.id / "result.json").read_text())
    assert _same(remote) == _same(single)
    assert all("of run rabbit1-v2x: serving" in err for _, err in finished)
