"""The batching producer's HTTP transport over `httpx.MockTransport` (no socket): where a batch goes, what its
answer means, and how an unreachable server is left for the next one."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from goqueue.client.http_batch_transport import BATCH_MEDIA_TYPE, HttpBatchTransport
from goqueue.errors import NotLeader, Unavailable
from goqueue.models import Acks

pytestmark = pytest.mark.unit


def answer(request: httpx.Request) -> httpx.Response:
    if request.url.host.startswith("down"):
        raise httpx.ConnectError("refused", request=request)
    if request.url.host == "silent":
        raise httpx.ReadTimeout("no answer", request=request)
    if request.url.path == "/v1/topics/t":
        assert request.url.params["details"] == "false"
        return httpx.Response(200, json={"name": "t", "partitions": 3, "replicationFactor": 1, "config": {}})
    if request.url.path == "/v1/topics/moving/partitions/0/batches":
        return httpx.Response(503, json={"error": {"code": "NOT_LEADER", "message": "moved"}})
    assert request.url.path == "/v1/topics/t/partitions/2/batches"
    assert request.headers["content-type"] == BATCH_MEDIA_TYPE
    assert request.url.params["acks"] == "1"
    assert request.content == b"batch"
    return httpx.Response(200, json={"topic": "t", "offsets": [{"partition": 2, "offset": 40},
                                                               {"partition": 2, "offset": 41}]})


def transport(*servers: str) -> HttpBatchTransport:
    return HttpBatchTransport([f"http://{s}" for s in servers], transport=httpx.MockTransport(answer))


def test_a_batch_answer_is_its_base_offset_and_an_unreachable_server_is_skipped() -> None:
    async def scenario() -> None:
        http = transport("down", "up")
        assert await http.partition_count("t") == 3
        assert http.servers.current == "http://up"  # the next request starts where this one succeeded
        assert await http.send_batch("t", 2, b"batch", Acks.ONE, 5.0) == 40
        await http.close()

    asyncio.run(scenario())


def test_a_broker_error_is_raised_as_its_class_and_a_silent_server_as_unavailable() -> None:
    async def scenario() -> None:
        http = transport("up", "silent")
        with pytest.raises(NotLeader):
            await http.send_batch("moving", 0, b"batch", Acks.ALL, 5.0)
        http.servers.failed("http://up")
        with pytest.raises(Unavailable):
            await http.send_batch("t", 2, b"batch", Acks.ONE, 5.0)
        assert http.servers.current == "http://up"  # the silent one is left for the next request
        with pytest.raises(Unavailable):
            await transport("down", "down2").partition_count("t")
        await http.close()

    asyncio.run(scenario())


def test_an_httpx_transport_with_the_lean_wire_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="the lean wire makes its own connections"):
        HttpBatchTransport("http://b:8080", transport=httpx.MockTransport(lambda r: httpx.Response(200)), wire="lean")
