"""An ordered consume whose answer is lost on the wire must not make the member skip those records (issue 12,
item 5).

The broker reads the records and moves the member's read position, then the answer never arrives (the transport
drops it after the broker sent it). A consumer that asks again — as any client does after a transport error — must
get the same records, not the ones after them.
"""

from __future__ import annotations

import httpx
import pytest
from broker_process import BrokerFactory
from cluster_process import History

from goqueue.client.http import GoQueueClient
from goqueue.errors import Unavailable
from goqueue.models import ConsumeRequest, ProduceRecord, TopicCreate

pytestmark = pytest.mark.integration

VALUES = [f"e-{n}" for n in range(10)]


class DropOneConsumeAnswer(httpx.BaseTransport):
    """Passes every request through; the answer to the first group consume is read and then lost."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.dropped = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/consume") and not self.dropped:
            response.read()  # the broker answered: whatever it decided is done
            response.close()
            self.dropped += 1
            raise httpx.ReadError("answer lost on the wire", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def test_an_ordered_consume_whose_answer_is_lost_is_answered_again(broker_factory: BrokerFactory) -> None:
    broker = broker_factory()
    history = History()
    with GoQueueClient(broker.url) as admin:
        admin.create_topic(TopicCreate(name="ledger-events", partitions=1))
        produced = admin.produce("ledger-events", [ProduceRecord(value=v) for v in VALUES])
        history.record([{"partition": o.partition, "offset": o.offset} for o in produced.offsets], VALUES)
    transport = DropOneConsumeAnswer()
    with GoQueueClient(broker.url, transport=transport) as client:
        joined = client.join_group("ledger", ["ledger-events"], client_id="a")
        request = ConsumeRequest.model_validate({"member_id": joined.member_id, "generation": joined.generation,
                                                 "max_records": 5, "start_from": "earliest"})
        seen: list[tuple[int, str]] = []
        errors = 0
        while len(seen) < len(VALUES) and errors < 5:
            try:
                response = client.consume("ledger", request)
            except Unavailable:
                errors += 1  # the consumer asks again, as after any transport error
                continue
            if not response.records:
                break
            seen.extend((r.offset, r.value or "") for r in response.records)
    assert transport.dropped == 1
    history.check({0: seen}, exactly_once=True)  # every acknowledged record delivered, once, in order
    assert [v for _, v in seen] == VALUES
