"""Byte-rate quotas on a real three-broker cluster (issue 15, item 6): a user over its producer or consumer rate is
slowed — its requests are served and their answers held back — a user without a quota is not, the quota set through
one broker holds on the others (replicated metadata), and `goqueue-admin user quota` / `user list` set and show it.

Durations are lower bounds only: a held-back answer cannot come early, however loaded the machine is."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cluster_process import LocalCluster, password_files, secured_env

from goqueue.client.auth import Credentials
from goqueue.client.http import GoQueueClient
from goqueue.models import AclSpec, ProduceRecord, TopicCreate

pytestmark = pytest.mark.integration

RATE = 100_000  # bytes/s
VALUE = "x" * RATE  # one second of the quota per record
PASSWORDS = {"admin": "admin-secret-pw", "slow": "slow-secret-pw", "fast": "fast-secret-pw"}


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return password_files(tmp_path_factory.mktemp("secrets"), PASSWORDS)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, secrets_dir: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("quotas"), env=secured_env(secrets_dir)).start()
    try:
        with GoQueueClient(cluster.url(0), credentials=Credentials("admin", PASSWORDS["admin"])) as admin:
            admin.create_topic(TopicCreate(name="metered", partitions=1, replication_factor=3))
            for user in ("slow", "fast"):
                admin.upsert_user(user, PASSWORDS[user])
                for operation in ("produce", "consume"):
                    admin.add_acl(AclSpec.model_validate({"principal": f"User:{user}", "resourceType": "topic",
                                                          "name": "metered", "operation": operation}))
        yield cluster
    finally:
        cluster.stop()


def admin_cli(cluster: LocalCluster, secrets_dir: Path, *args: str) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GOQUEUE_")}
    environment.update({"GOQUEUE_SERVER": cluster.url(1), "GOQUEUE_USER": "admin",
                        "GOQUEUE_PASSWORD_FILE": str(secrets_dir / "admin")})
    result = subprocess.run(["goqueue-admin", *args], env=environment, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result.stdout


def as_user(cluster: LocalCluster, broker: int, user: str) -> GoQueueClient:
    return GoQueueClient(cluster.url(broker), credentials=Credentials(user, PASSWORDS[user]), timeout_s=30)


def produce_seconds(client: GoQueueClient, records: int) -> float:
    started = time.monotonic()
    for _ in range(records):
        client.produce("metered", [ProduceRecord(value=VALUE)], partition=0)
    return time.monotonic() - started


def throttled_seconds(cluster: LocalCluster, broker: int, user: str | None, direction: str) -> float:
    """goqueue_quota_user_throttle_seconds of `user`, or (None) goqueue_quota_throttle_seconds of all users."""
    text = httpx.get(f"{cluster.url(broker)}/metrics").text
    series = (f'goqueue_quota_throttle_seconds_total{{direction="{direction}"}}' if user is None else
              f'goqueue_quota_user_throttle_seconds_total{{direction="{direction}",user="{user}"}}')
    found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_quotas_set_with_the_cli_are_listed(cluster: LocalCluster, secrets_dir: Path) -> None:
    out = admin_cli(cluster, secrets_dir, "user", "quota", "slow", "--producer-byte-rate", str(RATE),
                    "--consumer-byte-rate", str(RATE))
    assert f"produce {RATE} B/s, consume {RATE} B/s" in out
    listed = {line.split()[0]: line for line in admin_cli(cluster, secrets_dir, "user", "list").splitlines()[1:]}
    assert f"{RATE} B/s" in listed["slow"]
    assert listed["fast"].split()[-2:] == ["unlimited", "unlimited"]


def test_a_producer_over_its_quota_is_slowed_on_every_broker(cluster: LocalCluster, secrets_dir: Path) -> None:
    admin_cli(cluster, secrets_dir, "user", "quota", "slow", "--producer-byte-rate", str(RATE),
              "--consumer-byte-rate", str(RATE))
    with as_user(cluster, 2, "slow") as slow:  # set through broker 1, enforced on broker 2
        # One second of burst, then each 1-second record waits for the one before it: >= 3 s for 4 records.
        assert produce_seconds(slow, 4) >= 2.5
    assert throttled_seconds(cluster, 2, "slow", "produce") >= 2.5
    with as_user(cluster, 2, "fast") as fast:
        produce_seconds(fast, 4)
    assert throttled_seconds(cluster, 2, "fast", "produce") == 0.0


def test_a_consumer_over_its_quota_is_slowed(cluster: LocalCluster, secrets_dir: Path) -> None:
    admin_cli(cluster, secrets_dir, "user", "quota", "slow", "--consumer-byte-rate", str(RATE))
    with as_user(cluster, 0, "fast") as fast:
        produce_seconds(fast, 4)
    with as_user(cluster, 0, "slow") as slow:
        started, offset = time.monotonic(), 0
        for _ in range(4):
            answer = slow.fetch("metered", 0, offset, max_records=1, max_bytes=RATE)
            offset = answer.next_offset
        assert time.monotonic() - started >= 2.5
    assert throttled_seconds(cluster, 0, "slow", "consume") >= 2.5


def test_a_removed_quota_stops_the_throttle(cluster: LocalCluster, secrets_dir: Path) -> None:
    # A producer quota first, seen working on this broker (so the removal below has something to stop)...
    admin_cli(cluster, secrets_dir, "user", "quota", "slow", "--producer-byte-rate", str(RATE))
    with as_user(cluster, 1, "slow") as slow:
        assert produce_seconds(slow, 4) >= 2.5
    assert throttled_seconds(cluster, 1, "slow", "produce") >= 2.5
    total = throttled_seconds(cluster, 1, None, "produce")
    # ...then removed: the same sends go unthrottled, and the user's series goes with its quota.
    admin_cli(cluster, secrets_dir, "user", "quota", "slow")
    with as_user(cluster, 1, "slow") as slow:
        assert produce_seconds(slow, 4) < 2.5
    assert 'user="slow"' not in httpx.get(f"{cluster.url(1)}/metrics").text
    assert throttled_seconds(cluster, 1, None, "produce") == total
    assert "unlimited" in admin_cli(cluster, secrets_dir, "user", "list")
