"""Every topic setting as it applies, and where its value comes from — what `topic describe` shows, as Kafka's
describe shows each config with its source.

A topic's own config holds only what was set on it (None: "use the broker's"). The effective value is then the
broker's setting of the same meaning (`retention.maxAge` for `retentionMaxAge` …), either set in its config file or
environment (source `broker`) or left at its built-in default (`default`); settings with no broker counterpart
(cleanup policy, unclean leader election) are the topic's or the built-in default. Values are written in the units
the config accepts (168h, 10GB, 1MiB), so what describe shows can be pasted into `topic alter --config` or a
GoQueueTopic spec. Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from goqueue.config import Settings, format_duration_s, format_size_bytes
from goqueue.models import SettingSource, TopicConfig, TopicSetting

# TopicConfig field → (broker section, section field, broker key, formatter); in TopicConfig's order.
_FORMAT: dict[str, Callable[[Any], str]] = {
    "duration": format_duration_s, "size": format_size_bytes,
    "text": lambda value: str(getattr(value, "value", value)), "bool": lambda value: str(value).lower(),
    "count": str}
_SETTINGS: list[tuple[str, str | None, str | None, str | None, str]] = [
    ("cleanup_policy", None, None, None, "text"),
    ("retention_max_age_s", "retention", "max_age_s", "retention.maxAge", "duration"),
    ("retention_max_bytes", "retention", "max_size_bytes", "retention.maxSize", "size"),
    ("max_message_bytes", "limits", "max_message_bytes", "limits.maxMessageBytes", "size"),
    ("min_insync_replicas", "replication", "min_insync_replicas", "replication.minInsyncReplicas", "count"),
    ("tombstone_retention_s", "retention", "tombstone_retention_s", "retention.tombstoneRetention", "duration"),
    ("segment_bytes", "storage", "segment_bytes", "storage.segmentBytes", "size"),
    ("unclean_leader_election", None, None, None, "bool"),
]


def effective_settings(config: TopicConfig, replication_factor: int, settings: Settings) -> list[TopicSetting]:
    out = []
    for field, section_name, section_field, broker_key, kind in _SETTINGS:
        own = getattr(config, field)
        alias = TopicConfig.model_fields[field].alias or field
        note = None
        if section_name is None:
            default = TopicConfig.model_fields[field].default
            value, source = own, SettingSource.DEFAULT if own == default else SettingSource.TOPIC
        elif own:  # as the broker applies them (`topic value or broker setting`): a 0 falls back too
            value, source = own, SettingSource.TOPIC
        else:
            section = getattr(settings, section_name)
            assert section_field is not None
            value = getattr(section, section_field)
            source = SettingSource.BROKER if section_field in section.model_fields_set else SettingSource.DEFAULT
        if field == "min_insync_replicas" and value > replication_factor:  # as Broker._min_insync applies it
            note = f"{value} capped at the replication factor"
            value = replication_factor
        out.append(TopicSetting(key=alias, value=_FORMAT[kind](value), source=source.value,
                                broker_key=broker_key, note=note))
    return out
