"""A broker stopped while it is still starting — here, waiting for a metadata quorum that never forms (its peers
are not up) — exits promptly and cleanly on SIGTERM instead of ignoring it until the kubelet's SIGKILL: a pod of a
StatefulSet that cannot reach its peers must still be deletable and rollable."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from broker_process import BrokerProcess, free_port

pytestmark = pytest.mark.integration

SIGTERM_DEADLINE_S = 15.0  # far below the broker's shutdownGrace (30 s) and the test harness's stop timeout


def test_sigterm_while_waiting_for_the_quorum_stops_the_broker(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "b0")
    absent = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]  # nobody listens there
    broker.extra_env.update({
        "GOQUEUE_BROKER_ID": "0", "GOQUEUE_CLUSTER_PASSWORD": "stop-while-starting",
        "GOQUEUE_CLUSTER_PEERS": ",".join([f"127.0.0.1:{broker.raft_port}", *absent])})
    broker.start(wait_ready=False)
    try:
        deadline = time.monotonic() + 30
        while "raft.started" not in broker.log_text():  # it is in the quorum wait from here on
            assert broker.running, broker.log_text()[-3000:]
            assert time.monotonic() < deadline, "the broker never started Raft"
            time.sleep(0.1)
        time.sleep(1.0)
        code = broker.stop(timeout_s=SIGTERM_DEADLINE_S)  # raises when SIGTERM is ignored that long
        assert code == 0, broker.log_text()[-3000:]
        log = broker.log_text()
        assert "server.stop_while_starting" in log
        assert "server.stopped" in log
        assert "Traceback" not in log, log[-3000:]
    finally:
        broker.kill()
