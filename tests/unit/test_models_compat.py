"""Requests are strict; answers tolerate fields a newer broker added (a rolling upgrade runs two versions)."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, ValidationError

from goqueue.cluster.topics import TopicRegistry
from goqueue.models import (
    ANSWER,
    BrokerVersion,
    CaughtUp,
    ClusterStatus,
    DrainProgress,
    HeldReplicas,
    LeadershipTransfer,
    Liveness,
    Readiness,
    RebalanceAccepted,
    RestartCheck,
    TopicConfig,
    TopicCreate,
    TopicInfo,
)

pytestmark = pytest.mark.unit

TOPIC = {"name": "orders", "partitions": 1, "replicationFactor": 1, "config": {"retentionMaxAge": 3600},
         "partitionDetails": [{"partition": 0, "leader": 0, "replicas": [0], "isr": [0], "highWatermark": 5,
                               "startOffset": 0, "endOffset": 5, "segments": 1, "sizeBytes": 10, "addedInV2": True}],
         "addedInV2": {"nested": 1}}


def test_a_request_with_an_unknown_field_is_refused() -> None:
    with pytest.raises(ValidationError, match="partitons"):
        TopicCreate.model_validate({"name": "orders", "partitons": 3})


def test_an_answer_with_unknown_fields_at_any_depth_is_read() -> None:
    with pytest.raises(ValidationError, match="addedInV2"):
        TopicInfo.model_validate_json(json.dumps(TOPIC))
    info = TopicInfo.model_validate_json(json.dumps(TOPIC), context=ANSWER)
    assert info.partition_details[0].high_watermark == 5
    assert "addedInV2" not in info.model_dump_json()


def test_an_answer_still_fails_on_a_wrong_type() -> None:
    with pytest.raises(ValidationError, match="brokers"):
        ClusterStatus.model_validate({"brokers": "three"}, context=ANSWER)


def test_the_topic_registry_reads_metadata_a_newer_broker_wrote() -> None:
    config = TopicConfig(retention_max_age_s=3600).model_dump(by_alias=True, mode="json")
    state = {"applied": 1, "topics": {"orders": {
        "partitions": 2, "replication_factor": 3, "created_at_s": 1.0,
        "config": {**config, "tieredStorage": "s3://bucket"}}}}
    registry = TopicRegistry(lambda: state)
    assert registry.topics["orders"].config.retention_max_age_s == 3600
    assert registry.topics["orders"].partitions == 2


@pytest.mark.parametrize(("answer", "wire"), [
    (RestartCheck(broker_id=1, safe=False, reasons=["r"]), {"brokerId": 1, "safe": False, "reasons": ["r"]}),
    (CaughtUp(broker_id=1, caught_up=True), {"brokerId": 1, "caughtUp": True, "reasons": []}),
    (LeadershipTransfer(broker_id=1, done=True), {"brokerId": 1, "done": True, "reasons": []}),
    (HeldReplicas(broker_id=1, replicas=2, leaders=1), {"brokerId": 1, "replicas": 2, "leaders": 1}),
    (DrainProgress(broker_id=1, done=False, replicas=2, reasons=["r"]),
     {"brokerId": 1, "done": False, "replicas": 2, "reasons": ["r"]}),
    (RebalanceAccepted(accepted=True, moved=3), {"accepted": True, "moved": 3, "reasons": []}),
    (BrokerVersion(version="0.1.0", broker_id=2), {"version": "0.1.0", "brokerId": 2}),
    (Readiness(status="not ready", offline_partitions=1), {"status": "not ready", "offlinePartitions": 1}),
    (Liveness(), {"status": "ok"}),
], ids=lambda value: type(value).__name__ if isinstance(value, BaseModel) else "")
def test_the_admin_and_probe_answers_keep_their_json_names(answer: BaseModel, wire: dict[str, object]) -> None:
    """The operator, the CLIs and scripts read these names: the models changed nothing on the wire."""
    assert answer.model_dump(mode="json") == wire
    assert type(answer).model_validate(wire, context=ANSWER) == answer
