"""Topic and group drift, offset resets as operations, operator settings, broker answer handling (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from goqueue.config import Settings
from goqueue.errors import BrokerNotFound, GoQueueError, NotFound, Unavailable
from goqueue.models import (
    GroupConfig,
    GroupInfo,
    GroupMode,
    GroupOffset,
    GroupState,
    OffsetResetEntry,
    OffsetResetPlan,
    ResetTarget,
    TopicConfig,
    TopicInfo,
)
from goqueue.topic_settings import effective_settings
from goqueue_operator.brokers import CheckResult, CheckStatus, describe_error
from goqueue_operator.drift import (
    dead_letter_topics,
    desired_group_spec,
    group_drift,
    group_figures,
    topic_create,
    topic_drift,
    topic_status_fields,
)
from goqueue_operator.offset_resets import (
    APPLIED,
    APPLYING,
    FAILED,
    apply_requests,
    entry,
    pending_resets,
    plan_request,
    planned_offsets,
    render,
    with_entry,
)
from goqueue_operator.settings import OperatorSettings, SettingsError, load_settings
from goqueue_operator.views import GroupView, SpecError, TopicView

pytestmark = pytest.mark.unit
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def topic(**spec: Any) -> TopicView:
    return TopicView.from_body({"metadata": {"name": "orders", "namespace": "n", "uid": "u"},
                                "spec": {"clusterRef": {"name": "goqueue"}, **spec}})


def live_topic(partitions: int = 4, rf: int = 3, **config: Any) -> TopicInfo:
    return TopicInfo(name="orders", partitions=partitions, replication_factor=rf,
                     config=TopicConfig.model_validate(config))


# -- topics ------------------------------------------------------------------------------------------------------

def test_topic_create_carries_the_spec_with_units_parsed_by_the_broker_model() -> None:
    config = {"retentionMaxAge": "7d", "retentionMaxSize": "10Gi", "cleanupPolicy": "compact"}
    create = topic_create(topic(partitions=8, replicationFactor=3, config=config))
    assert (create.name, create.partitions, create.replication_factor) == ("orders", 8, 3)
    assert create.config.retention_max_age_s == 7 * 86400
    assert create.config.retention_max_bytes == 10 * 2**30
    assert create.config.cleanup_policy.value == "compact"


def test_no_drift_when_the_broker_matches() -> None:
    assert topic_drift(topic(partitions=4), live_topic(4)).update is None


def test_partitions_grow_and_settings_change() -> None:
    drift = topic_drift(topic(partitions=8, config={"retentionMaxAge": "1h"}), live_topic(4))
    assert drift.update is not None
    assert drift.update.partitions == 8
    assert drift.update.config == {"retentionMaxAge": 3600.0}
    assert "partitions 4 → 8" in drift.changes


def test_an_out_of_band_setting_is_reset_to_the_broker_default() -> None:
    drift = topic_drift(topic(partitions=4), live_topic(4, retentionMaxAge=60))
    assert drift.update is not None
    assert drift.update.config == {"retentionMaxAge": None}


def test_what_cannot_be_repaired_is_reported_not_forced() -> None:
    drift = topic_drift(topic(partitions=4, replicationFactor=3), live_topic(8, rf=1))
    assert drift.update is None
    assert [line for line in drift.unfixable if "partitions cannot shrink" in line]
    assert drift.replication_factor == 3  # a replication factor is reassigned, not reported as unfixable
    assert not [line for line in drift.unfixable if "replication factor" in line]


def test_a_matching_replication_factor_asks_for_no_reassignment() -> None:
    assert topic_drift(topic(partitions=4, replicationFactor=3), live_topic(4, rf=3)).replication_factor is None


def test_status_shows_every_setting_in_the_spec_units() -> None:
    """Issue 12: the status said 604800 where the spec says 168h; now the spec's own text where it sets a key, the
    brokers' effective value where it does not (from `TopicInfo.settings`, e.g. the 10GB broker default)."""
    settings = Settings.model_validate({"retention": {"maxSize": "5GB"}})
    view = topic(replicationFactor=3, config={"retentionMaxAge": "7d", "minInsyncReplicas": 3})
    config = TopicConfig.model_validate({"retentionMaxAge": "7d", "minInsyncReplicas": 3})
    live = live_topic(4, 3, retentionMaxAge="7d", minInsyncReplicas=3).model_copy(
        update={"settings": effective_settings(config, 3, settings)})
    status = topic_status_fields(view, live)["config"]
    assert status == {"cleanupPolicy": "delete", "retentionMaxAge": "7d", "retentionMaxSize": "5GB",
                      "maxMessageBytes": "1MiB", "minInsyncReplicas": 3, "tombstoneRetention": "24h",
                      "segmentBytes": "128MiB", "uncleanLeaderElection": False}
    drifted = live_topic(4, 3, retentionMaxAge=60).model_copy(update={"settings": effective_settings(
        TopicConfig.model_validate({"retentionMaxAge": 60}), 3, settings)})
    assert topic_status_fields(view, drifted)["config"]["retentionMaxAge"] == "1m"  # what is, not what is wanted


def test_a_bad_setting_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="segmentBytes"):
        topic_create(topic(config={"segmentBytes": "1"}))


# -- consumer groups ---------------------------------------------------------------------------------------------

def group(**spec: Any) -> GroupView:
    return GroupView.from_body({"metadata": {"name": "workers", "namespace": "n", "uid": "u"},
                                "spec": {"clusterRef": {"name": "goqueue"}, "topics": ["orders"], **spec},
                                "status": spec.pop("_status", {})})


def live_group(paused: bool = False, topics: tuple[str, ...] = ("orders",), **config: Any) -> GroupInfo:
    return GroupInfo(name="workers", mode=GroupMode.SHARED, state=GroupState.EMPTY, paused=paused, generation=0,
                     config=GroupConfig.model_validate({"visibilityTimeout": 30, "maxDeliveries": 5, **config}),
                     topics=list(topics), members=[], offsets=[
                         GroupOffset(topic="orders", partition=0, committed=5, end_offset=12, lag=7),
                         GroupOffset(topic="orders", partition=1, committed=None, end_offset=3, lag=None)])


def test_group_spec_carries_settings_and_pause() -> None:
    spec = desired_group_spec(group(paused=True, visibilityTimeout="45s", maxDeliveries=9))
    assert spec.paused is True
    assert spec.config.visibility_timeout_s == 45
    assert spec.config.max_deliveries == 9
    assert spec.topics == ["orders"]


def test_group_in_sync_has_no_drift() -> None:
    assert not group_drift(group(), live_group()).declare


def test_pause_and_resume_are_changes() -> None:
    drift = group_drift(group(paused=True), live_group(paused=False))
    assert drift.declare
    assert drift.pause_change is True
    assert group_drift(group(paused=False), live_group(paused=True)).pause_change is False


def test_only_settings_the_spec_sets_are_compared() -> None:
    assert not group_drift(group(), live_group(maxDeliveries=5)).declare  # broker default, spec silent
    drift = group_drift(group(maxDeliveries=3), live_group(maxDeliveries=5))
    assert drift.changes == ("maxDeliveries 5 → 3",)


def test_new_topics_are_declared() -> None:
    assert group_drift(group(topics=["orders", "payments"]), live_group()).changes == ("topics +payments",)


def test_lag_per_topic_and_dead_letter_topics() -> None:
    figures = group_figures(live_group())
    assert figures.lag == 7
    assert figures.topic_lag == [{"topic": "orders", "lag": 7}]
    assert dead_letter_topics(group(), live_group()) == ["orders.dlq"]
    assert dead_letter_topics(group(deadLetterTopic="poison"), live_group()) == ["poison"]


# -- offset resets -----------------------------------------------------------------------------------------------

def test_pending_resets_skip_applied_and_failed_ids() -> None:
    view = group(offsetResets=[{"id": "a", "topic": "orders", "to": "earliest"},
                               {"id": "b", "topic": "orders", "to": "latest"},
                               {"id": "c", "topic": "orders", "to": "offset", "offset": 4}])
    done = [entry("a", APPLIED, NOW, "ok"), entry("b", FAILED, NOW, "no"), entry("c", APPLYING, NOW, "…")]
    assert [r.id for r in pending_resets(view, done)] == ["c"]


def test_plan_then_explicit_offsets() -> None:
    reset = group(offsetResets=[{"id": "t", "topic": "orders", "to": "timestamp",
                                 "timestamp": "2026-01-01T00:00:10Z"}]).spec.offset_resets[0]
    request = plan_request(reset)
    assert (request.to, request.timestamp_ms, request.dry_run) == (ResetTarget.DATETIME, 1767225610000, True)
    plan = OffsetResetPlan(group="workers", dry_run=True, applied=False, partitions=[
        OffsetResetEntry(topic="orders", partition=0, current=9, target=3),
        OffsetResetEntry(topic="orders", partition=1, current=2, target=2)])
    offsets = planned_offsets(plan)
    applied = apply_requests(offsets, force=False)
    assert [(r.partition, r.to, r.offset, r.dry_run) for r in applied] == [
        (0, ResetTarget.OFFSET, 3, False), (1, ResetTarget.OFFSET, 2, False)]


def test_entries_follow_spec_order_and_render_for_status() -> None:
    view = group(offsetResets=[{"id": "a", "topic": "orders", "to": "earliest"},
                               {"id": "b", "topic": "orders", "to": "latest"}])
    entries = with_entry(view, [entry("b", APPLIED, NOW, "ok")], entry("a", APPLYING, NOW, "moving"))
    assert [e.id for e in entries] == ["a", "b"]
    rendered = render(entries)
    assert rendered[0] == {"id": "a", "phase": "Applying", "time": "2026-01-01T00:00:00Z", "message": "moving",
                           "partitions": []}


# -- settings ----------------------------------------------------------------------------------------------------

def test_settings_from_the_environment() -> None:
    settings = load_settings({"GOQUEUE_OPERATOR_NAMESPACES": "a, b", "GOQUEUE_OPERATOR_METRICS_PORT": "9100",
                              "PATH": "/bin"})
    assert settings.namespaces == ["a", "b"]
    assert settings.metrics_port == 9100
    assert load_settings({}) == OperatorSettings()


def test_bad_settings_name_the_variable() -> None:
    with pytest.raises(SettingsError, match="GOQUEUE_OPERATOR_METRICS_PORT"):
        load_settings({"GOQUEUE_OPERATOR_METRICS_PORT": "http"})
    with pytest.raises(SettingsError, match="unknown setting GOQUEUE_OPERATOR_TYPO"):
        load_settings({"GOQUEUE_OPERATOR_TYPO": "1"})


# -- broker answers ----------------------------------------------------------------------------------------------

def test_a_missing_endpoint_is_described_as_such() -> None:
    assert "does not implement GET /x yet (HTTP 404)" in describe_error(NotFound("Not Found"), "GET", "/x")
    assert describe_error(BrokerNotFound("no broker 7"), "GET", "/x") == "GET /x: BROKER_NOT_FOUND: no broker 7"
    assert describe_error(Unavailable("cannot reach http://h"), "GET", "/x") == "GET /x: UNAVAILABLE: cannot reach http://h"
    assert "failed" in describe_error(GoQueueError("HTTP 405"), "POST", "/x")


def test_check_results() -> None:
    assert CheckResult.passed().ok
    assert not CheckResult.unavailable("x").ok
    assert CheckResult.failed().reasons == ("the broker refused without a reason",)
    assert CheckResult.failed("a", "b").summary == "a; b"
    assert CheckResult.unavailable("x").status is CheckStatus.UNAVAILABLE


# -- conflicts and status writes (handlers/reconciler.py, pure parts) ------------------------------------------------

def test_the_older_declaration_wins_and_deleting_ones_do_not_count() -> None:
    from goqueue_operator.handlers.reconciler import Declaration, find_conflict

    newer = TopicView.from_body({"metadata": {"name": "b", "namespace": "n", "uid": "u-b",
                                              "creationTimestamp": "2026-01-02T00:00:00Z"},
                                 "spec": {"clusterRef": {"name": "goqueue"}, "topicName": "shared"}})
    older = Declaration("2026-01-01T00:00:00Z", "a", "u-a", deleting=False)
    mine = Declaration("2026-01-02T00:00:00Z", "b", "u-b", deleting=False)
    assert find_conflict(newer, [mine, older]) == "a"
    assert find_conflict(newer, [mine]) is None
    assert find_conflict(newer, [mine, Declaration("2026-01-01T00:00:00Z", "a", "u-a", deleting=True)]) is None
    even_newer = Declaration("2026-01-03T00:00:00Z", "c", "u-c", deleting=False)
    assert find_conflict(newer, [mine, even_newer]) is None
    assert find_conflict(newer, [mine, even_newer], older_only=False) == "c"


def test_index_entry_keys_by_namespace_cluster_and_broker_name() -> None:
    from goqueue_operator.handlers.reconciler import index_entry
    from goqueue_operator.handlers.topic import KIND

    body = {"metadata": {"name": "orders", "namespace": "n", "uid": "u", "creationTimestamp": "t"},
            "spec": {"clusterRef": {"name": "goqueue"}, "topicName": "Orders"}}
    ((key, value),) = index_entry(KIND, body).items()
    assert key == ("n", "goqueue", "Orders")
    assert (value.name, value.uid, value.deleting) == ("orders", "u", False)
    assert index_entry(KIND, {"metadata": {"name": "x", "namespace": "n"}, "spec": {}}) == {}


def test_an_unchanged_status_is_not_rewritten_until_its_sync_time_ages() -> None:
    from goqueue_operator.handlers.reconciler import status_unchanged

    old = {"partitions": 3, "lastSyncTime": "2026-01-01T00:00:00Z"}
    assert status_unchanged(old, {"partitions": 3, "lastSyncTime": "x"}, datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC))
    assert not status_unchanged(old, {"partitions": 3, "lastSyncTime": "x"}, datetime(2026, 1, 1, 0, 2, tzinfo=UTC))
    assert not status_unchanged(old, {"partitions": 4, "lastSyncTime": "x"}, datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC))
    assert not status_unchanged({}, {"partitions": 3}, datetime(2026, 1, 1, tzinfo=UTC))
