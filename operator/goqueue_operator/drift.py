"""Desired broker state of a GoQueueTopic or GoQueueConsumerGroup, and how the live state differs. Pure.

A difference is either fixable through the broker API (grow partitions, change settings, declare the group with
its settings and paused flag; a replication factor, by a replica reassignment: rebalance/topic_factor.py) or not
(partitions above the spec, since they cannot shrink; a group's mode): those are reported in status, never
"repaired" destructively.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from goqueue.models import (
    GroupConfig,
    GroupInfo,
    GroupMode,
    GroupSpec,
    TopicConfig,
    TopicCreate,
    TopicInfo,
    TopicUpdate,
)
from goqueue_operator.views import GroupView, SpecError, TopicView


def desired_topic_config(view: TopicView) -> TopicConfig:
    """The CRD's config keys are the broker's (camelCase), so the broker's own model parses them (units too)."""
    try:
        return TopicConfig.model_validate(view.spec.config.model_dump(by_alias=True, exclude_none=True))
    except ValidationError as exc:
        error = exc.errors()[0]
        raise SpecError(f"spec.config.{'.'.join(str(p) for p in error['loc'])}: {error['msg']}") from exc


def topic_create(view: TopicView) -> TopicCreate:
    return TopicCreate(name=view.broker_name, partitions=view.spec.partitions,
                       replication_factor=view.spec.replication_factor, config=desired_topic_config(view))


@dataclass(frozen=True)
class TopicDrift:
    update: TopicUpdate | None = None      # what to send to repair it (None: nothing fixable differs)
    changes: tuple[str, ...] = ()          # human lines: what differs and gets repaired
    unfixable: tuple[str, ...] = ()        # what differs and cannot be repaired
    replication_factor: int | None = None  # the spec's, when the brokers' differs: a reassignment makes it so


def topic_drift(view: TopicView, live: TopicInfo) -> TopicDrift:
    desired = desired_topic_config(view)
    changes: list[str] = []
    unfixable: list[str] = []
    partitions: int | None = None
    if view.spec.partitions > live.partitions:
        partitions = view.spec.partitions
        changes.append(f"partitions {live.partitions} → {view.spec.partitions}")
    elif view.spec.partitions < live.partitions:
        unfixable.append(f"the topic has {live.partitions} partitions, the spec {view.spec.partitions}; "
                         "partitions cannot shrink: raise spec.partitions to match")
    factor = view.spec.replication_factor if view.spec.replication_factor != live.replication_factor else None
    wanted = desired.model_dump(by_alias=True, mode="json")
    current = live.config.model_dump(by_alias=True, mode="json")
    config = {key: value for key, value in wanted.items() if current.get(key) != value}
    changes.extend(f"{key} {current.get(key)!r} → {value!r}" for key, value in sorted(config.items()))
    update = TopicUpdate(partitions=partitions, config=config or None) if partitions or config else None
    return TopicDrift(update, tuple(changes), tuple(unfixable), factor)


def topic_status_fields(view: TopicView, live: TopicInfo) -> dict[str, Any]:
    return {"topicName": view.broker_name, "partitions": live.partitions,
            "replicationFactor": live.replication_factor, "messages": live.messages, "sizeBytes": live.size_bytes,
            "config": status_config(view, live)}


def status_config(view: TopicView, live: TopicInfo) -> dict[str, Any]:
    """Every setting as it applies, in the spec's units: the spec's own text where it sets the key and the broker
    agrees (`72h` stays `72h`, not 259200), else the broker's effective value (`168h`, `10GB`: `live.settings`).
    A broker too old to send its effective settings gives its raw config (seconds and bytes, null = its default)."""
    if not live.settings:
        return live.config.model_dump(by_alias=True, mode="json")
    written = view.spec.config.model_dump(by_alias=True, exclude_none=True)
    desired = desired_topic_config(view).model_dump(by_alias=True, mode="json")
    current = live.config.model_dump(by_alias=True, mode="json")
    out: dict[str, Any] = {}
    for setting in live.settings:
        if setting.key in written and desired.get(setting.key) == current.get(setting.key):
            out[setting.key] = written[setting.key]
        elif isinstance(current.get(setting.key), bool):
            out[setting.key] = setting.value == "true"
        elif setting.key == "minInsyncReplicas":
            out[setting.key] = int(setting.value)
        else:
            out[setting.key] = setting.value
    return out


# -- consumer groups -----------------------------------------------------------------------------------------------

def desired_group_spec(view: GroupView) -> GroupSpec:
    spec = view.spec
    try:
        config = GroupConfig.model_validate({k: v for k, v in {
            "visibilityTimeout": spec.visibility_timeout, "maxDeliveries": spec.max_deliveries,
            "inflightCapacity": spec.inflight_capacity, "sessionTimeout": spec.session_timeout,
            "deadLetterTopic": spec.dead_letter_topic, "autoOffsetReset": spec.auto_offset_reset,
            "assignor": spec.assignor}.items() if v is not None})
    except ValidationError as exc:
        error = exc.errors()[0]
        raise SpecError(f"spec.{'.'.join(str(p) for p in error['loc'])}: {error['msg']}") from exc
    return GroupSpec(mode=GroupMode(spec.mode), topics=list(spec.topics), config=config, paused=spec.paused)


@dataclass(frozen=True)
class GroupDrift:
    declare: bool = False
    changes: tuple[str, ...] = ()
    unfixable: tuple[str, ...] = ()
    pause_change: bool | None = None  # True: pausing, False: resuming, None: unchanged


def group_drift(view: GroupView, live: GroupInfo) -> GroupDrift:
    desired = desired_group_spec(view)
    changes: list[str] = []
    unfixable: list[str] = []
    if desired.mode != live.mode:
        unfixable.append(f"the group is {live.mode.value}, the spec says {desired.mode.value}; a group's mode "
                         "cannot change")
    missing = sorted(set(desired.topics) - set(live.topics))
    if missing:
        changes.append(f"topics +{', '.join(missing)}")
    wanted = desired.config.model_dump(by_alias=True, mode="json", exclude_none=True)
    current = live.config.model_dump(by_alias=True, mode="json")
    changes.extend(f"{key} {current.get(key)!r} → {value!r}" for key, value in sorted(wanted.items())
                   if current.get(key) != value)
    pause_change = None
    if bool(desired.paused) != live.paused:
        pause_change = bool(desired.paused)
        changes.append("paused" if pause_change else "resumed")
    return GroupDrift(bool(changes), tuple(changes), tuple(unfixable), pause_change)


@dataclass(frozen=True)
class GroupFigures:
    lag: int
    topic_lag: list[dict[str, Any]] = field(default_factory=list)


def group_figures(live: GroupInfo) -> GroupFigures:
    per_topic: dict[str, int] = {}
    for offset in live.offsets:
        per_topic[offset.topic] = per_topic.get(offset.topic, 0) + (offset.lag or 0)
    return GroupFigures(sum(per_topic.values()), [{"topic": t, "lag": lag} for t, lag in sorted(per_topic.items())])


def dead_letter_topics(view: GroupView, live: GroupInfo | None) -> list[str]:
    """Where the group's dead letters go: its own dead-letter topic, else <topic>.dlq per source topic."""
    named = view.spec.dead_letter_topic or (live.config.dead_letter_topic if live else None)
    if named:
        return [named]
    return [f"{topic}.dlq" for topic in sorted(set(view.spec.topics) | set(live.topics if live else []))]
