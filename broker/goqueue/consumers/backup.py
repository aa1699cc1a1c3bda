"""Metadata backup and restore (`goqueue-admin backup metadata` / `restore metadata FILE`).

A backup is JSON of what cannot be rebuilt from the partition logs alone: topics with their partition counts and
settings, groups with their mode, settings and paused flag, and every committed offset. Records are not in it
(PVC snapshots cover data). Internal topics are left out: the broker recreates them.

Restore is additive and idempotent: missing topics are created, topics with fewer partitions grow, settings are
set; groups are declared and their committed offsets set (clamped to what the log still holds) — except for a
group with live members, whose offsets would be pulled from under them: it is skipped and reported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from goqueue.consumers.state_store import is_internal
from goqueue.errors import GoQueueError, TopicNotFound
from goqueue.models import (
    GroupBackup,
    GroupSpec,
    MetadataBackup,
    OffsetCommit,
    OffsetResetRequest,
    ResetTarget,
    RestoreReport,
    TopicCreate,
)

if TYPE_CHECKING:
    from goqueue.consumers.coordinator import GroupCoordinator


def backup_metadata(coordinator: GroupCoordinator) -> MetadataBackup:
    coordinator.check_ready()
    broker = coordinator.broker
    topics = [TopicCreate(name=meta.name, partitions=meta.partitions, replication_factor=meta.replication_factor,
                          config=meta.config)
              for name, meta in sorted(broker.registry.topics.items()) if not is_internal(name)]
    groups = []
    for name in sorted(coordinator.groups):
        group = coordinator.groups[name]
        groups.append(GroupBackup(
            name=name, spec=GroupSpec(mode=group.mode, topics=sorted(group.topics), config=group.config,
                                      paused=group.paused),
            offsets=[OffsetCommit(topic=t, partition=p, offset=cursor.committed)
                     for (t, p), cursor in sorted(group.cursors.items())]))
    return MetadataBackup(created_at_ms=int(coordinator.clock() * 1000), broker_id=broker.broker_id,
                          topics=topics, groups=groups, all_paused=coordinator.all_paused)


async def restore_metadata(coordinator: GroupCoordinator, backup: MetadataBackup) -> RestoreReport:
    coordinator.check_ready()
    broker = coordinator.broker
    report = RestoreReport()
    for spec in backup.topics:
        if is_internal(spec.name):
            report.skipped.append(f"topic {spec.name}: internal")
            continue
        try:
            meta = broker.registry.get(spec.name)
        except TopicNotFound:
            await broker.create_topic(spec)
            report.topics_created.append(spec.name)
            continue
        changed = spec.partitions > meta.partitions or spec.config != meta.config
        if changed:
            await broker.update_topic(spec.name, max(spec.partitions, meta.partitions),
                                spec.config.model_dump(by_alias=True, exclude_none=True))
            report.topics_updated.append(spec.name)
        else:
            report.topics_unchanged.append(spec.name)
    for saved in backup.groups:
        try:
            await _restore_group(coordinator, saved, report)
        except GoQueueError as exc:
            report.skipped.append(f"group {saved.name}: {exc.message}")
    if backup.all_paused and not coordinator.all_paused:
        await coordinator.pause(None)
    return report


async def _restore_group(coordinator: GroupCoordinator, saved: GroupBackup, report: RestoreReport) -> None:
    existing = coordinator.groups.get(saved.name)
    if existing is not None and coordinator.live_members(existing):
        report.skipped.append(f"group {saved.name}: has live members; offsets left as they are")
        return
    present = [t for t in saved.spec.topics if t in coordinator.broker.registry.topics]
    await coordinator.declare(saved.name, saved.spec.model_copy(update={"topics": present}))
    for offset in saved.offsets:
        if offset.topic not in coordinator.broker.registry.topics:
            report.skipped.append(f"group {saved.name}: topic {offset.topic} does not exist")
            continue
        await coordinator.reset_offsets(saved.name, OffsetResetRequest(
            topic=offset.topic, partition=offset.partition, to=ResetTarget.OFFSET, offset=offset.offset))
        report.offsets_restored += 1
    report.groups_restored.append(saved.name)
