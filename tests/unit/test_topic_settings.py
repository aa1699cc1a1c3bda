"""A topic's effective settings and their sources (what `topic describe` shows), and the unit formatting they use."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goqueue.config import format_duration_s, format_size_bytes, load_settings, parse_duration_s, parse_size_bytes
from goqueue.models import TopicConfig
from goqueue.topic_settings import effective_settings

pytestmark = pytest.mark.unit


def shown(config: TopicConfig, rf: int = 3, **environ: str) -> dict[str, tuple[str, str, str | None]]:
    settings = load_settings(None, environ)
    return {s.key: (s.value, s.source, s.note) for s in effective_settings(config, rf, settings)}


def test_every_topic_setting_is_shown_in_config_order() -> None:
    keys = list(shown(TopicConfig()))
    assert keys == [info.alias for info in TopicConfig.model_fields.values()]


def test_values_come_from_the_topic_then_the_broker_setting_then_the_default() -> None:
    config = TopicConfig.model_validate({"retentionMaxAge": "3d", "cleanupPolicy": "compact"})
    settings = shown(config, GOQUEUE_RETENTION_MAXSIZE="5GB", GOQUEUE_LIMITS_MAXMESSAGEBYTES="2MiB")
    assert settings["retentionMaxAge"] == ("72h", "topic", None)
    assert settings["cleanupPolicy"] == ("compact", "topic", None)
    assert settings["retentionMaxSize"] == ("5GB", "broker", None)
    assert settings["maxMessageBytes"] == ("2MiB", "broker", None)
    assert settings["tombstoneRetention"] == ("24h", "default", None)
    assert settings["segmentBytes"] == ("128MiB", "default", None)
    assert settings["uncleanLeaderElection"] == ("false", "default", None)
    assert shown(TopicConfig())["retentionMaxAge"] == ("168h", "default", None)  # the example


def test_min_insync_replicas_is_shown_as_applied_capped_at_the_replication_factor() -> None:
    assert shown(TopicConfig(), rf=1)["minInsyncReplicas"] == ("1", "default", "2 capped at the replication factor")
    assert shown(TopicConfig(), rf=3)["minInsyncReplicas"] == ("2", "default", None)
    assert shown(TopicConfig(min_insync_replicas=3), rf=3)["minInsyncReplicas"] == ("3", "topic", None)


def test_a_zero_on_the_topic_falls_back_as_the_broker_applies_it() -> None:
    assert shown(TopicConfig(retention_max_age_s=0))["retentionMaxAge"] == ("168h", "default", None)


@given(st.integers(min_value=0, max_value=10**9).map(lambda ms: ms / 1000))
def test_durations_format_back_to_what_they_parse_from(seconds: float) -> None:
    assert parse_duration_s(format_duration_s(seconds)) == pytest.approx(seconds)


@given(st.integers(min_value=0, max_value=2**50))
def test_sizes_format_back_to_what_they_parse_from(size: int) -> None:
    assert parse_size_bytes(format_size_bytes(size)) == size


@pytest.mark.parametrize(("seconds", "text"), [(604800, "168h"), (259200, "72h"), (90, "90s"), (60, "1m"),
                                               (0.25, "250ms"), (0, "0s")])
def test_durations_use_the_runbook_units(seconds: float, text: str) -> None:
    assert format_duration_s(seconds) == text


@pytest.mark.parametrize(("size", "text"), [(10 * 10**9, "10GB"), (2**27, "128MiB"), (2**20, "1MiB"), (4096, "4KiB"),
                                            (1000, "1KB"), (5, "5")])
def test_sizes_use_the_largest_exact_unit(size: int, text: str) -> None:
    assert format_size_bytes(size) == text
