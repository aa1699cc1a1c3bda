"""The test process runs many event loops one after the other (each `@pytest.mark.anyio` test, each
`asyncio.run`), which grpc.aio does not expect: its process-wide poller hands each completion to the loop its call
was made on, with `call_soon_threadsafe`, from whichever loop reads the poller. A completion of a call made on a
loop that has since closed (a call a test left behind, ending later) then raised "Event loop is closed" inside the
*next* test's loop, and anyio failed that test for it. Seen in CI, twice, in tests that did nothing wrong.

The integration tier's loops drop exactly that error (`grpc_loops.py`); this test leaves such a call behind and
requires the next loop's gRPC calls, and the test, to go on."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import grpc
import pytest
from broker_process import BrokerProcess
from grpc_loops import GrpcTolerantLoop

from goqueue.api.grpc.generated import goqueue_pb2 as pb
from goqueue.client.grpc_client import GrpcClient
from goqueue.models import TopicCreate

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

LEFT_BEHIND: list[Any] = []  # kept alive past their loop, as a leaked client would be


def leave_a_call_behind_on_a_closed_loop(target: str) -> None:
    async def start() -> None:
        channel = grpc.aio.insecure_channel(target)
        stub_call = channel.unary_unary("/goqueue.v1.GoQueue/Fetch", request_serializer=pb.FetchRequest
                                        .SerializeToString, response_deserializer=pb.FetchResponse.FromString)
        # A long poll on an empty topic that ends at its 1 s deadline, after this loop is gone.
        call = stub_call(pb.FetchRequest(topic="loops", partition=0, offset=0, wait_ms=5_000), timeout=1.0)
        LEFT_BEHIND.extend([channel, call])
        await asyncio.sleep(0.2)  # the call is on the wire

    def run_then_close() -> None:  # not asyncio.run, which would cancel the call's task before closing the loop
        loop = asyncio.new_event_loop()
        loop.run_until_complete(start())
        loop.close()

    # On a thread of its own, as the failover tests run their producers: a loop that runs, then closes.
    thread = threading.Thread(target=run_then_close)
    thread.start()
    thread.join()


async def test_a_call_left_on_a_closed_loop_does_not_fail_the_next_loops_work(module_broker: BrokerProcess) -> None:
    async with GrpcClient(module_broker.grpc_target) as client:
        await client.create_topic(TopicCreate(name="loops", partitions=1))
    dropped_before = GrpcTolerantLoop.dropped
    leave_a_call_behind_on_a_closed_loop(module_broker.grpc_target)
    async with GrpcClient(module_broker.grpc_target) as client:
        for _ in range(30):  # 3 s of calls on this loop: the left-behind call's deadline completes meanwhile
            assert (await client.list_topics()) is not None
            await asyncio.sleep(0.1)
    assert GrpcTolerantLoop.dropped > dropped_before  # the stale completion did arrive here, and was dropped
