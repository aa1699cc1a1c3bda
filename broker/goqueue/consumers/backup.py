"""Metadata backup and restore (`goqueue-admin backup metadata` / `restore metadata FILE`).

A backup is JSON of what cannot be rebuilt from the partition logs alone: topics with their partition counts and
settings, groups with their mode, settings and paused flag, and every committed offset. Records are not in it
(PVC snapshots cover data). Internal topics are left out: the broker recreates them.

Restore is additive and idempotent: missing topics are created, topics with fewer partitions grow, settings are
set; groups are declared and their committed offsets set (clamped to what the log still holds) — except for a
group with live members, whose offsets would be pulled from under them: it is skipped and reported.

In a cluster a backup gathers the groups of every coordinator (`router.py`; `backup_metadata` is one
coordinator's part), and a restore sends each group's operations to its coordinator through the router.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from goqueue.consumers.state_store import is_internal
from goqueue.errors import GoQueueError, GroupNotFound, TopicNotFound
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
    from goqueue.consumers.router import GroupRouter


def backup_metadata(coordinator: GroupCoordinator) -> MetadataBackup:
    """Topics, and the groups this coordinator coordinates."""
    coordinator.check_ready()
    broker = coordinator.broker
    topics = [TopicCreate(name=meta.name, partitions=meta.partitions, replication_factor=meta.replication_factor,
                          config=meta.config)
              for name, meta in sorted(broker.registry.topics.items()) if not is_internal(name)]
    groups = []
    for name in coordinator.coordinated_names():
        group = coordinator.groups[name]
        groups.append(GroupBackup(
            name=name, spec=GroupSpec(mode=group.mode, topics=sorted(group.topics), config=group.config,
                                      paused=group.paused),
            offsets=[OffsetCommit(topic=t, partition=p, offset=cursor.committed)
                     for (t, p), cursor in sorted(group.cursors.items())]))
    return MetadataBackup(created_at_ms=int(coordinator.clock() * 1000), broker_id=broker.broker_id,
                          topics=topics, groups=groups, all_paused=coordinator.all_paused)


async def restore_metadata(router: GroupRouter, backup: MetadataBackup) -> RestoreReport:
    router.coordinator.check_ready()
    broker = router.broker
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
            await _restore_group(router, saved, report)
        except GoQueueError as exc:
            report.skipped.append(f"group {saved.name}: {exc.message}")
    if backup.all_paused and not router.coordinator.all_paused:
        await router.set_all_paused(True)
    return report


async def _restore_group(router: GroupRouter, saved: GroupBackup, report: RestoreReport) -> None:
    try:
        live = len((await router.describe(saved.name)).members)
    except GroupNotFound:
        live = 0
    if live:
        report.skipped.append(f"group {saved.name}: has live members; offsets left as they are")
        return
    topics = router.broker.registry.topics
    present = [t for t in saved.spec.topics if t in topics]
    await router.declare(saved.name, saved.spec.model_copy(update={"topics": present}))
    for offset in saved.offsets:
        if offset.topic not in topics:
            report.skipped.append(f"group {saved.name}: topic {offset.topic} does not exist")
            continue
        await router.reset_offsets(saved.name, OffsetResetRequest(
            topic=offset.topic, partition=offset.partition, to=ResetTarget.OFFSET, offset=offset.offset))
        report.offsets_restored += 1
    report.groups_restored.append(saved.name)
