"""The clients' produce rules, pure: producer stamps and epochs, partition choice, retry decisions, bootstrap lists."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goqueue.client.bootstrap import ServerList, parse_servers
from goqueue.client.delivery import JITTER, DeliveryPolicy, backoff_s
from goqueue.client.idempotence import MAX_EPOCH, MAX_SEQUENCE, ProducerSession
from goqueue.client.partitioner import plan_partitions
from goqueue.errors import (
    InternalError,
    InvalidRequest,
    NotEnoughReplicas,
    NotLeader,
    OutOfOrderSequence,
    PartitionNotFound,
    RecordTooLarge,
    Timeout,
    TopicNotFound,
    Unavailable,
)
from goqueue.partitioning import partition_for_key

pytestmark = pytest.mark.unit


# -- idempotence -----------------------------------------------------------------------------------------------------

def test_a_resend_carries_the_same_stamp_and_the_next_request_continues_the_sequence() -> None:
    session = ProducerSession(random.Random(1))
    first = session.claim("t", 0, 10)
    assert session.claim("t", 0, 10) == first  # a resend of an unanswered request
    assert (first.epoch, first.base_sequence) == (0, 0)
    session.written("t", 0, 10)
    assert session.claim("t", 0, 5).base_sequence == 10
    assert session.claim("t", 1, 5).base_sequence == 0  # sequences are per partition
    assert session.claim("other", 0, 5).producer_id == first.producer_id  # one producer per client


def test_an_abandoned_request_moves_the_partition_to_a_new_epoch() -> None:
    """A request given up may still land later: the next one must never share its sequences in the same epoch."""
    session = ProducerSession(random.Random(1))
    session.written("t", 0, session.claim("t", 0, 10).base_sequence + 10)
    session.claim("t", 0, 10)
    session.abandon("t", 0)
    after = session.claim("t", 0, 10)
    assert (after.epoch, after.base_sequence) == (1, 0)


def test_epochs_and_sequences_stay_in_the_batch_header_ranges() -> None:
    session = ProducerSession(random.Random(1))
    first_id = session.producer_id
    for _ in range(MAX_EPOCH):
        session.abandon("t", 0)
    assert session.claim("t", 0, 1).epoch == MAX_EPOCH
    session.abandon("t", 0)
    renewed = session.claim("t", 0, 1)
    assert (renewed.epoch, renewed.base_sequence) == (0, 0)
    assert renewed.producer_id != first_id  # past the last epoch: a new producer id
    session.written("t", 0, MAX_SEQUENCE - 5)
    wrapped = session.claim("t", 0, 10)  # would pass the last sequence: a new epoch from 0
    assert (wrapped.epoch, wrapped.base_sequence) == (1, 0)


def test_producer_ids_are_random_and_non_negative() -> None:
    ids = {ProducerSession().producer_id for _ in range(50)}
    assert len(ids) == 50
    assert all(0 <= i < 2**63 - 1 for i in ids)


# -- partitions ------------------------------------------------------------------------------------------------------

def test_a_key_goes_where_the_broker_would_put_it_and_keyless_records_stick_together() -> None:
    keys: list[bytes | None] = [b"order-1", None, None]
    planned = plan_partitions("t", keys, [None] * 3, None, 8, sticky=13)
    keyed = partition_for_key(b"order-1", 8)
    if keyed == 13 % 8:
        assert planned == {keyed: [0, 1, 2]}
    else:
        assert planned == {keyed: [0], 13 % 8: [1, 2]}  # both keyless records: one partition, one request


def test_an_explicit_partition_wins_and_an_unknown_one_is_refused() -> None:
    assert plan_partitions("t", [None, None], [None, 2], None, 4, sticky=1) == {1: [0], 2: [1]}
    assert plan_partitions("t", [b"k", None], [1, None], 3, 4, sticky=0) == {3: [0, 1]}  # the call's partition
    with pytest.raises(PartitionNotFound):
        plan_partitions("t", [None], [9], None, 4, sticky=0)


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=1024))
def test_the_key_rule_is_the_brokers(key: bytes, partitions: int) -> None:
    assert plan_partitions("t", [key], [None], None, partitions, 0) == {partition_for_key(key, partitions): [0]}


# -- retries ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("error", [NotLeader("x"), NotEnoughReplicas("x"), Unavailable("x"), Timeout("x"),
                                   OutOfOrderSequence("x")])
def test_retriable_errors_are_retried_until_the_delivery_timeout(error: Exception) -> None:
    policy = DeliveryPolicy(timeout_s=120)
    rng = random.Random(0)
    assert policy.retry_delay(error, 0, 119.0, rng) is not None  # type: ignore[arg-type]
    assert policy.retry_delay(error, 30, 0.5, rng) is None  # type: ignore[arg-type]  # the wait would pass it


@pytest.mark.parametrize("error", [InvalidRequest("x"), RecordTooLarge("x"), TopicNotFound("x"), InternalError("x")])
def test_final_errors_fail_at_once(error: Exception) -> None:
    assert DeliveryPolicy().retry_delay(error, 0, 120.0, random.Random(0)) is None  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=100), st.integers(min_value=0, max_value=2**32))
def test_the_back_off_doubles_to_its_cap_with_bounded_jitter(attempt: int, seed: int) -> None:
    waited = backoff_s(attempt, 0.1, 1.0, random.Random(seed))
    base = min(1.0, 0.1 * 2**attempt)
    assert base * (1 - JITTER) <= waited <= base * (1 + JITTER)


def test_jitter_spreads_clients_that_failed_together() -> None:
    assert len({round(backoff_s(3, 0.1, 1.0, random.Random(seed)), 6) for seed in range(20)}) > 10


def test_the_delivery_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        DeliveryPolicy(timeout_s=0)


# -- bootstrap -------------------------------------------------------------------------------------------------------

def test_server_lists_come_comma_separated_or_repeated() -> None:
    assert parse_servers("http://a:8080, http://b:8080/,") == ["http://a:8080", "http://b:8080"]
    assert parse_servers(["http://a:8080", "http://b:8080,http://c:8080"]) == [
        "http://a:8080", "http://b:8080", "http://c:8080"]
    with pytest.raises(ValueError, match="no broker address"):
        parse_servers(" , ")


def test_an_unreachable_server_moves_every_caller_on_by_one() -> None:
    servers = ServerList("a,b,c")
    servers.failed("a")
    servers.failed("a")  # a second thread that failed on the same server does not skip b
    assert servers.current == "b"
    servers.failed("b")
    servers.failed("c")
    assert servers.current == "a"
