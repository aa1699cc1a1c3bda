"""A stored batch that no longer matches its CRC (a byte flipped on disk under a running broker) is reported to the
reader as CORRUPT_RECORD (HTTP 500, gRPC DATA_LOSS) naming the topic, partition and offsets lost; every other record
stays readable, and the binary fetch still hands out the bytes as stored (its client checks the CRC)."""

from __future__ import annotations

import os

import grpc
import httpx
import pytest
from broker_process import BrokerProcess

from goqueue.api.grpc.generated import goqueue_pb2 as pb
from goqueue.client.grpc_client import GrpcClient
from goqueue.client.http import GoQueueClient
from goqueue.config import OffsetReset
from goqueue.errors import CorruptRecord
from goqueue.models import (
    ConsumeRequest,
    GroupConfig,
    GroupSpec,
    OffsetResetRequest,
    ProduceRecord,
    ResetTarget,
    TopicCreate,
)
from goqueue.storage import batch as batches

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

TOPIC = "ledger"


def _flip_a_byte_of_the_second_batch(broker: BrokerProcess) -> None:
    segment = next((broker.data_dir / f"{TOPIC}-0").glob("*.log"))
    positions = [pos for pos, _ in batches.iter_headers(segment.read_bytes())]
    assert len(positions) == 3, "each produce is one batch"
    fd = os.open(segment, os.O_RDWR)
    try:
        last = positions[2] - 1  # the last byte of the second batch's records, inside its CRC
        os.pwrite(fd, bytes([os.pread(fd, 1, last)[0] ^ 0xFF]), last)
    finally:
        os.close(fd)


@pytest.fixture
def corrupted(broker: BrokerProcess) -> BrokerProcess:
    """Partition 0 holds offsets 0-1, 2-3 and 4-5 in three batches, the middle one corrupt; partition 1 holds one."""
    with GoQueueClient(broker.url) as client:
        client.create_topic(TopicCreate(name=TOPIC, partitions=2))
        for first in (0, 2, 4):
            client.produce(TOPIC, [ProduceRecord(value=f"r{first}"), ProduceRecord(value=f"r{first + 1}")],
                           partition=0)
        client.produce(TOPIC, [ProduceRecord(value="other")], partition=1)
    _flip_a_byte_of_the_second_batch(broker)
    return broker


def test_a_json_fetch_names_the_lost_batch_and_reads_around_it(corrupted: BrokerProcess) -> None:
    with httpx.Client(base_url=corrupted.url, timeout=30) as http:
        lost = http.get(f"/v1/topics/{TOPIC}/partitions/0/records", params={"offset": 2})
        assert lost.status_code == 500
        error = lost.json()["error"]
        assert (error["code"], error["retriable"]) == ("CORRUPT_RECORD", False)
        assert error["details"] == {"topic": TOPIC, "partition": 0, "offset": 2, "lastOffset": 3}
        assert f"{TOPIC}/0: the stored batch of offsets 2-3 failed its CRC32C check" in error["message"]

        before = http.get(f"/v1/topics/{TOPIC}/partitions/0/records", params={"offset": 0}).json()
        assert ([r["value"] for r in before["records"]], before["nextOffset"]) == (["r0", "r1"], 2)

        raw = http.get(f"/v1/topics/{TOPIC}/partitions/0/batches", params={"offset": 2})
        assert raw.status_code == 200
        with pytest.raises(batches.InvalidBatch, match="CRC"):
            batches.validate_batch(raw.content)

    with GoQueueClient(corrupted.url) as client:
        with pytest.raises(CorruptRecord, match="fetch from offset 4"):
            client.fetch(TOPIC, 0, 3)
        assert [r.value for r in client.fetch(TOPIC, 0, 4).records] == ["r4", "r5"]
        assert [r.value for r in client.fetch(TOPIC, 1, 0).records] == ["other"]


async def test_a_grpc_fetch_answers_data_loss(corrupted: BrokerProcess) -> None:
    async with GrpcClient(corrupted.grpc_target) as client:
        with pytest.raises(grpc.aio.AioRpcError) as status:
            await client.stub.Fetch(pb.FetchRequest(topic=TOPIC, partition=0, offset=2))
        assert status.value.code() == grpc.StatusCode.DATA_LOSS
        assert "offsets 2-3" in (status.value.details() or "")
        with pytest.raises(CorruptRecord):
            await client.fetch(TOPIC, 0, 2)
        assert [r.value for r in (await client.fetch(TOPIC, 0, 0)).records] == [b"r0", b"r1"]
        assert [r.value for r in (await client.fetch(TOPIC, 0, 4)).records] == [b"r4", b"r5"]


def test_a_group_consume_stops_at_the_lost_batch_visibly_and_goes_on_after_a_reset(corrupted: BrokerProcess) -> None:
    """A shared group reading partition 0 from the start gets r0, r1, then CORRUPT_RECORD naming offsets 2-3 (not an
    internal error, not a silent skip); an operator's offset reset past them lets it read r4, r5."""
    spec = GroupSpec(topics=[TOPIC], config=GroupConfig(autoOffsetReset=OffsetReset.EARLIEST))
    ask = ConsumeRequest(consumerId="c1", topic=TOPIC, maxRecords=10)
    with GoQueueClient(corrupted.url) as client:
        client.declare_group("readers", spec)
        values: list[str | None] = []
        lost: CorruptRecord | None = None
        for _ in range(20):  # the two partitions are read in turns; partition 0's first batch comes first
            try:
                answer = client.consume("readers", ask)
            except CorruptRecord as exc:
                lost = exc
                break
            values += [r.value for r in answer.records]
            if answer.records:
                client.ack("readers", [r.lease_id for r in answer.records if r.lease_id])
        assert lost is not None, f"no CORRUPT_RECORD after reading {values}"
        assert lost.details == {"topic": TOPIC, "partition": 0, "offset": 2, "lastOffset": 3}
        assert "reset the group's offset to 4" in lost.message
        assert {"r0", "r1"} <= set(values)
        client.reset_offsets("readers", OffsetResetRequest(topic=TOPIC, partition=0, to=ResetTarget.OFFSET, offset=4,
                                                           force=True))
        after: list[str | None] = []
        for _ in range(10):
            answer = client.consume("readers", ask)
            after += [r.value for r in answer.records]
            if answer.records:
                client.ack("readers", [r.lease_id for r in answer.records if r.lease_id])
            if {"r4", "r5"} <= set(after):
                break
        assert {"r4", "r5"} <= set(after)
        assert not {"r2", "r3"} & set(after)
