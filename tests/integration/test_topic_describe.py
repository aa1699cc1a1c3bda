"""`goqueue-cli topic describe` shows every setting's effective value and where it comes from (issue 12), against a
real broker with one setting of its own, over HTTP and gRPC."""

from __future__ import annotations

import asyncio
import os
import subprocess

import pytest
from broker_process import BrokerFactory, BrokerProcess

from goqueue.client.grpc_client import GrpcClient
from goqueue.client.http import GoQueueClient
from goqueue.models import TopicInfo

pytestmark = pytest.mark.integration


def cli(broker: BrokerProcess, *args: str) -> str:
    result = subprocess.run(["goqueue-cli", *args], env={**os.environ, "GOQUEUE_SERVER": broker.url},
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def fields(table: str) -> dict[str, str]:
    return {key.strip(): value.strip() for key, sep, value in (line.partition(":") for line in table.splitlines())
            if sep and not key.startswith(" ")}


def test_describe_shows_effective_values_and_their_source(broker_factory: BrokerFactory) -> None:
    broker = broker_factory(env={"GOQUEUE_RETENTION_MAXSIZE": "5GB"})
    cli(broker, "topic", "create", "--name", "described", "--retention", "3d")
    shown = fields(cli(broker, "topic", "describe", "described"))
    assert shown["Retention (age)"] == "72h (set on the topic)"
    assert shown["Retention (size)"] == "5GB (broker setting retention.maxSize)"
    assert shown["Max message bytes"] == "1MiB (broker default)"
    assert shown["Tombstone retention"] == "24h (broker default)"
    assert shown["Min in-sync replicas"] == "1 (broker default; 2 capped at the replication factor)"
    assert shown["Cleanup policy"] == "delete (default)"
    # what describe shows is what the config accepts: pasted back, it becomes the topic's own
    cli(broker, "topic", "alter", "described", "--config", "retentionMaxSize=5GB")
    assert fields(cli(broker, "topic", "describe", "described"))["Retention (size)"] == "5GB (set on the topic)"

    with GoQueueClient(broker.url) as client:
        over_http = client.describe_topic("described")

    async def over_grpc() -> TopicInfo:
        async with GrpcClient(broker.grpc_target) as grpc_client:
            return await grpc_client.describe_topic("described")

    assert asyncio.run(over_grpc()).settings == over_http.settings
    assert [(s.key, s.source) for s in over_http.settings][:3] == [
        ("cleanupPolicy", "default"), ("retentionMaxAge", "topic"), ("retentionMaxSize", "topic")]
