"""Consumer groups against a real `goqueue-broker` process: crash safety with messages inflight, rebalancing over
HTTP, metrics, and bad input to every group endpoint.

Waiting is event-driven: long-poll consumes return when a lease expires or a record arrives, and `wait_until`
polls a predicate with a deadline; nothing sleeps and then asserts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from broker_process import BrokerFactory, BrokerProcess

from goqueue.client.http import GoQueueClient
from goqueue.errors import FencedGeneration, GroupNotFound
from goqueue.models import ConsumeRequest, OffsetCommit, ProduceRecord, TopicCreate

pytestmark = pytest.mark.integration


def wait_until(predicate: Callable[[], Any], timeout_s: float = 20.0, interval_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(interval_s)


def shared(consumer: str, topic: str = "jobs", **kw: Any) -> ConsumeRequest:
    return ConsumeRequest.model_validate({"consumer_id": consumer, "topic": topic, "start_from": "earliest", **kw})


def test_kill_9_with_messages_inflight_loses_nothing(broker_factory: BrokerFactory) -> None:
    broker = broker_factory(env={"GOQUEUE_CONSUMERS_VISIBILITYTIMEOUT": "2s"})
    client = GoQueueClient(broker.url)
    client.create_topic(TopicCreate(name="jobs", partitions=2))
    client.produce("jobs", [ProduceRecord(key=f"k{n}", value=f"job-{n}") for n in range(40)])
    first = client.consume("work", shared("c1", max_records=20))
    assert len(first.records) == 20
    acked = [r.lease_id or "" for r in first.records[:8]]
    client.ack("work", acked)
    before = client.inflight("work")
    committed_before = {(o.topic, o.partition): o.committed for o in client.describe_group("work").offsets}
    client.close()

    broker.kill()  # SIGKILL: no shutdown, no flush beyond what acks=all already made durable
    broker.start()
    client = GoQueueClient(broker.url)
    after = client.inflight("work")
    assert [(m.offset, m.partition, m.delivery_count) for m in after.messages] == \
        [(m.offset, m.partition, m.delivery_count) for m in before.messages]
    assert after.total == 12
    assert {(o.topic, o.partition): o.committed for o in client.describe_group("work").offsets} == committed_before
    assert client.ack("work", acked).already_done == 8  # acked before the crash stays acked

    seen: dict[str, int] = {r.value or "": 1 for r in first.records[:8]}
    deadline = time.monotonic() + 60
    while len(seen) < 40:  # leases of the dead consumer expire (2 s) and come back to the next one
        assert time.monotonic() < deadline, f"only {len(seen)} of 40 messages came back"
        got = client.consume("work", shared("c2", max_records=50, wait_ms=5000))
        for record in got.records:
            seen[record.value or ""] = record.delivery_count
        client.ack("work", [r.lease_id or "" for r in got.records])
    assert sorted(seen) == sorted(f"job-{n}" for n in range(40))
    redelivered = [v for v, count in seen.items() if count > 1]
    assert len(redelivered) == 12  # exactly the ones inflight at the crash, each once more
    wait_until(lambda: client.describe_group("work").offsets[0].lag == 0)
    assert sum(o.lag or 0 for o in client.describe_group("work").offsets) == 0
    client.close()


def test_ordered_group_rebalances_when_a_member_stops_heartbeating(broker_factory: BrokerFactory) -> None:
    broker = broker_factory(env={"GOQUEUE_CONSUMERS_SESSIONTIMEOUT": "2s"})
    with GoQueueClient(broker.url) as client:
        client.create_topic(TopicCreate(name="events", partitions=4))
        a = client.join_group("ledger", ["events"], client_id="a")
        b = client.join_group("ledger", ["events"], client_id="b")
        a = client.join_group("ledger", ["events"], member_id=a.member_id, client_id="a")
        assert {len(a.assignments), len(b.assignments)} == {2}
        with pytest.raises(FencedGeneration):  # b's join ended generation 1
            client.commit("ledger", [OffsetCommit(topic="events", partition=0, offset=0)],
                          member_id=a.member_id, generation=1)
        # b dies silently; a keeps heartbeating until the coordinator notices
        beat = wait_until(lambda: (h := client.heartbeat("ledger", a.member_id, a.generation)).rejoin and h)
        assert beat.generation == a.generation + 1
        a = client.join_group("ledger", ["events"], member_id=a.member_id, client_id="a")
        assert sorted(tp.partition for tp in a.assignments) == [0, 1, 2, 3]
        client.produce("events", [ProduceRecord(value=f"e{n}", partition=n % 4) for n in range(8)])
        got = client.consume("ledger", ConsumeRequest(member_id=a.member_id, generation=a.generation,
                                                      start_from="earliest", max_records=100, wait_ms=2000))
        assert len(got.records) == 8
        client.commit("ledger", [OffsetCommit(topic="events", partition=p, offset=2) for p in range(4)],
                      member_id=a.member_id, generation=a.generation)
        described = client.describe_group("ledger")
        assert described.state.value == "Stable"
        assert [(o.committed, o.lag) for o in described.offsets] == [(2, 0)] * 4
        client.leave_group("ledger", a.member_id)
        assert client.describe_group("ledger").state.value == "Empty"
        metrics = client.metrics_text()
        for name in ('goqueue_consumer_lag{group="ledger",partition="0",topic="events"} 0.0',
                     'goqueue_group_rebalances_total{group="ledger"}', 'goqueue_inflight_messages{group="ledger"}',
                     'goqueue_inflight_capacity{group="ledger"} 10000.0', 'goqueue_group_members{group="ledger"} 0.0'):
            assert name in metrics, name


def test_internal_state_topic_is_hidden_and_protected(module_broker: BrokerProcess) -> None:
    with GoQueueClient(module_broker.url) as client:
        assert "__consumer_state" not in {t.name for t in client.list_topics()}
        assert "__consumer_state" in {t.name for t in client.list_topics(internal=True)}
    http = httpx.Client(base_url=module_broker.url)
    assert http.post("/v1/topics/__consumer_state/records", json={"records": [{"value": "x"}]}).status_code == 400
    assert http.delete("/v1/topics/__consumer_state").status_code == 400
    assert http.post("/v1/topics", json={"name": "__mine"}).status_code == 400
    http.close()


BAD_REQUESTS: list[tuple[str, str, Any, int, str]] = [
    ("GET", "/v1/groups/missing", None, 404, "GROUP_NOT_FOUND"),
    ("PUT", "/v1/groups/bad%20name", {}, 400, "INVALID_REQUEST"),
    ("PUT", "/v1/groups/g-bad", {"mode": "fifo"}, 400, "INVALID_REQUEST"),
    ("PUT", "/v1/groups/g-bad", {"topics": ["no-such-topic"]}, 404, "TOPIC_NOT_FOUND"),
    ("PUT", "/v1/groups/g-bad", {"config": {"maxDeliveries": 0}}, 400, "INVALID_REQUEST"),
    ("PUT", "/v1/groups/g-bad", {"config": {"visibilityTimeout": "soon"}}, 400, "INVALID_REQUEST"),
    ("PUT", "/v1/groups/g-shared", {"mode": "ordered"}, 400, "INVALID_CONFIG"),
    ("DELETE", "/v1/groups/missing", None, 404, "GROUP_NOT_FOUND"),
    ("POST", "/v1/groups/g-o/members", {"topics": []}, 400, "INVALID_REQUEST"),
    ("POST", "/v1/groups/g-o/members", {"topics": ["no-such-topic"]}, 404, "TOPIC_NOT_FOUND"),
    ("POST", "/v1/groups/g-o/members", {"topics": ["bad"], "memberId": "ghost"}, 404, "UNKNOWN_MEMBER"),
    ("POST", "/v1/groups/g-shared/members", {"topics": ["bad"]}, 400, "INVALID_REQUEST"),
    ("POST", "/v1/groups/g-o/members/ghost/heartbeat", {"generation": 1}, 404, "UNKNOWN_MEMBER"),
    ("POST", "/v1/groups/g-o/members/ghost/heartbeat", {"generation": -1}, 400, "INVALID_REQUEST"),
    ("DELETE", "/v1/groups/g-o/members/ghost", None, 404, "UNKNOWN_MEMBER"),
    ("POST", "/v1/groups/g-shared/consume", {}, 400, "INVALID_REQUEST"),
    ("POST", "/v1/groups/g-shared/consume", {"consumerId": "c"}, 400, "INVALID_REQUEST"),
    ("POST", "/v1/groups/g-shared/consume", {"consumerId": "c", "topic": "nope"}, 404, "TOPIC_NOT_FOUND"),
    ("POST", "/v1/groups/g-shared/consume", {"consumerId": "c", "topic": "bad", "maxRecords": 0}, 400,
     "INVALID_REQUEST"),
    ("POST", "/v1/groups/g-shared/consume", {"consumerId": "c", "topic": "bad", "waitMs": -1}, 400,
     "INVALID_REQUEST"),
    ("POST", "/v1/groups/g-shared/consume", {"consumerId": "c", "memberId": "m", "topic": "bad"}, 400,
     "INVALID_REQUEST"),
    ("POST", "/v1/groups/g-o/consume", {"memberId": "ghost", "generation": 1}, 404, "UNKNOWN_MEMBER"),
    ("POST", "/v1/groups/g-o/consume", {"consumerId": "c", "topic": "bad"}, 400, "INVALID_REQUEST"),
    ("POST", "/v1/groups/missing-o/consume", {"memberId": "m", "generation": 0}, 404, "GROUP_NOT_FOUND"),
    ("POST", "/v1/groups/g-shared/ack", {"leaseIds": []}, 400, "INVALID_REQUEST"),
    ("POST", "/v1/groups/g-shared/ack", {"leaseIds": ["nonsense"]}, 400, "INVALID_REQUEST"),
    ("POST", "/v1/groups/g-shared/ack", {"leaseIds": ["bad/0/999/1/0"]}, 404, "LEASE_NOT_FOUND"),
    ("POST", "/v1/groups/g-o/ack", {"leaseIds": ["bad/0/0/1/0"]}, 400, "INVALID_REQUEST"),
    ("POST", "/v1/groups/missing/ack", {"leaseIds": ["bad/0/0/1/0"]}, 404, "GROUP_NOT_FOUND"),
    ("POST", "/v1/groups/g-shared/nack", {"leaseIds": ["bad/0/0/1/0"], "delay": "-1s"}, 400, "INVALID_REQUEST"),
    ("POST", "/v1/groups/g-shared/nack", {"leaseIds": ["bad/0/0/1/0"], "delay": "1000d"}, 400,
     "INVALID_REQUEST"),
    ("POST", "/v1/groups/g-shared/release", {"leaseIds": "x"}, 400, "INVALID_REQUEST"),
    ("POST", "/v1/groups/g-shared/offsets", {"offsets": [{"topic": "bad", "partition": 0, "offset": 0}]}, 400,
     "INVALID_REQUEST"),
    ("POST", "/v1/groups/g-o/offsets", {"offsets": []}, 400, "INVALID_REQUEST"),
    ("POST", "/v1/groups/g-o/offsets", {"offsets": [{"topic": "bad", "partition": 0, "offset": 0}]}, 400,
     "INVALID_REQUEST"),  # the group has a member: a commit must carry memberId and generation
    ("POST", "/v1/groups/g-free/offsets", {"offsets": [{"topic": "bad", "partition": 0, "offset": 99}]}, 400,
     "INVALID_REQUEST"),
    ("POST", "/v1/groups/g-free/offsets", {"offsets": [{"topic": "bad", "partition": 7, "offset": 0}]}, 404,
     "PARTITION_NOT_FOUND"),
    ("POST", "/v1/groups/g-free/offsets", {"offsets": [{"topic": "nope", "partition": 0, "offset": 0}]}, 404,
     "TOPIC_NOT_FOUND"),
    ("POST", "/v1/groups/g-o/offsets", {"memberId": "ghost", "generation": 1,
                                        "offsets": [{"topic": "bad", "partition": 0, "offset": 0}]}, 404,
     "UNKNOWN_MEMBER"),
    ("POST", "/v1/groups/g-shared/offsets/reset", {"topic": "bad", "to": "offset"}, 400, "INVALID_REQUEST"),
    ("POST", "/v1/groups/g-shared/offsets/reset", {"topic": "bad", "to": "sideways"}, 400, "INVALID_REQUEST"),
    ("POST", "/v1/groups/g-shared/offsets/reset", {"topic": "nope", "to": "earliest"}, 404, "TOPIC_NOT_FOUND"),
    ("POST", "/v1/groups/g-shared/offsets/reset", {"topic": "bad", "to": "earliest", "partition": 9}, 404,
     "PARTITION_NOT_FOUND"),
    ("POST", "/v1/groups/g-live/offsets/reset", {"topic": "bad", "to": "earliest"}, 409, "GROUP_HAS_MEMBERS"),
    ("DELETE", "/v1/groups/g-live", None, 409, "GROUP_HAS_MEMBERS"),
    ("POST", "/v1/groups/missing/pause", None, 404, "GROUP_NOT_FOUND"),
    ("POST", "/v1/groups/missing/resume", None, 404, "GROUP_NOT_FOUND"),
    ("GET", "/v1/admin/inflight?group=missing", None, 404, "GROUP_NOT_FOUND"),
    ("GET", "/v1/admin/inflight?limit=0", None, 400, "INVALID_REQUEST"),
    ("POST", "/v1/admin/metadata", {"topics": []}, 400, "INVALID_REQUEST"),
    ("POST", "/v1/admin/metadata", "not json", 400, "INVALID_REQUEST"),
]


@pytest.fixture(scope="module")
def members(module_broker: BrokerProcess) -> Iterator[GoQueueClient]:
    """Topic `bad`; groups g-shared and g-live with a consumer, g-o with a member — until this client closes."""
    with GoQueueClient(module_broker.url) as client:
        client.create_topic(TopicCreate(name="bad", partitions=1))
        client.consume("g-shared", shared("c", topic="bad"))
        client.join_group("g-o", ["bad"])
        yield client


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), BAD_REQUESTS,
                         ids=[f"{m} {p} {s}" for m, p, _, s, _ in BAD_REQUESTS])
def test_bad_input_to_every_endpoint(module_broker: BrokerProcess, members: GoQueueClient, method: str, path: str,
                                     body: Any, status: int, code: str) -> None:
    members.consume("g-live", shared("c", topic="bad"))  # keeps its consumer live for the session timeout
    kwargs: dict[str, Any] = {}
    if isinstance(body, str):
        kwargs = {"content": body, "headers": {"content-type": "application/json"}}
    elif body is not None:
        kwargs = {"json": body}
    response = httpx.request(method, module_broker.url + path, timeout=30, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]


def test_group_not_found_maps_back_to_the_same_exception(module_broker: BrokerProcess) -> None:
    with GoQueueClient(module_broker.url) as client, pytest.raises(GroupNotFound):
        client.describe_group("never-declared")
