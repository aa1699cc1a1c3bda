"""A full disk never crashes a broker (issue 13, item 4), on real tmpfs volumes filled by scripts/chaos/fill_disk.sh.

The data directory and the metadata (walDir inside it, as the chart lays them out) share one small tmpfs. Once it
is full, metadata changes and produce answer DISK_FULL (507), the broker stays up and serves every read; a restart
on the full volume becomes ready, read-only; freeing space makes it writable again with no restart. Before the
Raft journal was preallocated, the 7th metadata change on a full volume killed the broker with SIGBUS (exit 135).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from broker_process import BrokerProcess
from cluster_process import LocalCluster
from test_http_api import create, error_code, fetch_all, wait_until

pytestmark = pytest.mark.integration

FILL_DISK = Path(__file__).resolve().parents[2] / "scripts" / "chaos" / "fill_disk.sh"
VOLUME_SIZE = "16m"
METADATA_CHANGES = 30  # the old journal died after 7 to 19 of them


def stop_cleanly(*brokers: BrokerProcess) -> None:
    """Stop each broker still running: it must exit 0 and have logged no traceback, full disk or not."""
    problems = []
    for broker in brokers:
        was_running = broker.running
        code = broker.stop()
        if (was_running and code != 0) or "Traceback" in broker.log_text():
            problems.append(f"{broker.root.name} exited {code}:\n{broker.log_text()[-4000:]}")
    assert not problems, "\n\n".join(problems)


def fill_disk(action: str, directory: Path, *args: str) -> None:
    subprocess.run([str(FILL_DISK), action, str(directory), *args], check=True, capture_output=True)


@pytest.fixture
def volumes() -> Iterator[ExitStack]:
    """Mount tmpfs volumes with `volumes.mount(dir)`: each is unmounted at teardown, after the brokers stopped."""
    with ExitStack() as stack:
        yield stack


def mount_volume(stack: ExitStack, directory: Path) -> Path:
    fill_disk("mount", directory, VOLUME_SIZE)
    stack.callback(fill_disk, "umount", directory)
    return directory


def on_volume(broker: BrokerProcess) -> BrokerProcess:
    """walDir inside dataDir, both on the broker's volume (the chart's layout)."""
    broker.extra_env.update({"GOQUEUE_STORAGE_DATADIR": str(broker.data_dir),
                             "GOQUEUE_STORAGE_WALDIR": str(broker.data_dir / "wal")})
    return broker


def assert_metadata_changes_refused(http: httpx.Client) -> None:
    for i in range(METADATA_CHANGES):
        refused = http.post("/v1/topics", json={"name": f"refused-{i}", "partitions": 1})
        assert (refused.status_code, error_code(refused)) == (507, "DISK_FULL"), refused.text
    grow = http.patch("/v1/topics/kept", json={"partitions": 2})
    assert grow.status_code == 507, grow.text
    assert "refused-0" not in {t["name"] for t in http.get("/v1/topics").json()}


def test_a_full_volume_refuses_changes_serves_reads_and_survives_a_restart(
        tmp_path: Path, volumes: ExitStack) -> None:
    broker = on_volume(BrokerProcess(tmp_path / "broker"))
    mount_volume(volumes, broker.data_dir)
    try:
        broker.start()
        with httpx.Client(base_url=broker.url, timeout=30) as http:
            create(http, "kept")
            acknowledged = [f"before-{i}" for i in range(20)]
            assert http.post("/v1/topics/kept/records",
                             json={"records": [{"value": v} for v in acknowledged]}).status_code == 200
            fill_disk("fill", broker.data_dir)

            assert_metadata_changes_refused(http)
            produce = http.post("/v1/topics/kept/records", json={"records": [{"value": "x" * 10_000}]})
            assert (produce.status_code, error_code(produce)) == (507, "DISK_FULL")
            assert broker.running, f"the broker died on the full volume (exit {broker.returncode})"
            assert [r["value"] for r in fetch_all(http, "kept")] == acknowledged
            assert http.get("/healthz").status_code == 200

        assert broker.stop() == 0
        broker.start()  # on the full volume: ready, read-only
        with httpx.Client(base_url=broker.url, timeout=30) as http:
            assert [r["value"] for r in fetch_all(http, "kept")] == acknowledged
            assert_metadata_changes_refused(http)

            fill_disk("free", broker.data_dir)  # space returns: writable again, no restart
            create(http, "after")
            wait_until(lambda: http.post("/v1/topics/kept/records",
                                         json={"records": [{"value": "after"}]}).status_code == 200, 30)
            assert [r["value"] for r in fetch_all(http, "kept")] == [*acknowledged, "after"]
    finally:
        stop_cleanly(broker)


def test_a_cluster_on_full_volumes_stays_up_and_recovers(tmp_path: Path, volumes: ExitStack) -> None:
    cluster = LocalCluster(tmp_path)
    for broker in cluster.brokers:
        mount_volume(volumes, on_volume(broker).data_dir)
    try:
        cluster.start()
        with cluster.client(0) as http:
            http.post("/v1/topics", json={"name": "kept", "partitions": 1, "replicationFactor": 3})
            acknowledged = [f"before-{i}" for i in range(20)]
            wait_until(lambda: http.post("/v1/topics/kept/records", json={
                "records": [{"value": v} for v in acknowledged]}).status_code == 200, 30)
        for broker in cluster.brokers:
            fill_disk("fill", broker.data_dir)

        for broker_id in range(3):
            with cluster.client(broker_id) as http:
                refused = http.post("/v1/topics", json={"name": f"refused-{broker_id}", "partitions": 1})
                assert (refused.status_code, error_code(refused)) == (507, "DISK_FULL"), refused.text
                assert [r["value"] for r in fetch_all(http, "kept")] == acknowledged
        with cluster.client(0) as http:
            assert_metadata_changes_refused(http)
        leader = cluster.leader_of("kept", 0)
        assert leader is not None
        with cluster.client(leader) as http:
            produce = http.post("/v1/topics/kept/records", json={"records": [{"value": "x" * 10_000}]})
            assert (produce.status_code, error_code(produce)) == (507, "DISK_FULL")

        # A restart on a full volume: ready, read-only. The broker restarted leads nothing and is no partition's
        # preferred leader, so no leadership moves while the volumes are full (a leader elected on a full volume
        # cannot checkpoint its leader epoch: broker.reconcile_failed, see docs/RUNBOOK.md → Disk full).
        preferred = {cluster.partition(topic, 0)["replicas"][0] for topic in ("kept", "__consumer_state")}
        follower = next(i for i in range(3) if i not in preferred and i != leader)
        assert cluster.brokers[follower].stop() == 0
        cluster.restart(follower)
        with cluster.client(follower) as http:
            assert [r["value"] for r in fetch_all(http, "kept")] == acknowledged
        assert all(broker.running for broker in cluster.brokers)

        for broker in cluster.brokers:
            fill_disk("free", broker.data_dir)
        with cluster.client(0) as http:
            wait_until(lambda: http.post("/v1/topics", json={
                "name": "after", "partitions": 1, "replicationFactor": 3}).status_code == 201, 30)
            wait_until(lambda: http.post("/v1/topics/kept/records", json={
                "records": [{"value": "after"}]}).status_code == 200, 30)
            assert [r["value"] for r in fetch_all(http, "kept")] == [*acknowledged, "after"]
    finally:
        stop_cleanly(*cluster.brokers)
