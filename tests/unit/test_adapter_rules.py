"""The rules both API adapters apply (`goqueue.api.adapter_rules`): internal topics refused, produce timed."""

from __future__ import annotations

import pytest

from goqueue.api.adapter_rules import produce_request, refuse_internal_topic
from goqueue.errors import InvalidRequest, InvalidTopicName, NotLeader
from goqueue.metrics import BrokerMetrics

pytestmark = pytest.mark.unit


def _timed(metrics: BrokerMetrics, api: str) -> float:
    return metrics.registry.get_sample_value("goqueue_message_latency_seconds_count", {"api": api}) or 0.0


def test_a_produce_is_timed_under_its_api_once_it_succeeds() -> None:
    metrics = BrokerMetrics()
    with produce_request(metrics, "grpc", "orders"):
        pass
    assert (_timed(metrics, "grpc"), _timed(metrics, "http")) == (1.0, 0.0)
    assert metrics.latency_window.p99() >= 0.0


def test_a_failed_produce_is_not_timed() -> None:
    metrics = BrokerMetrics()
    with pytest.raises(NotLeader), produce_request(metrics, "http", "orders"):
        raise NotLeader("moved")
    assert _timed(metrics, "http") == 0.0


def test_no_client_writes_an_internal_topic() -> None:
    metrics = BrokerMetrics()
    with pytest.raises(InvalidRequest, match="internal topic"), produce_request(metrics, "http", "__consumer_state"):
        pytest.fail("the body of a refused produce runs")
    assert _timed(metrics, "http") == 0.0


def test_no_client_administers_an_internal_topic() -> None:
    with pytest.raises(InvalidTopicName, match="reserved"):
        refuse_internal_topic("__consumer_state")
    refuse_internal_topic("orders")
