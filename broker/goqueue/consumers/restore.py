"""Metadata restore (`goqueue-admin restore metadata FILE`): a backup (`backup.py`) applied through the router.

Restore is additive and idempotent: missing topics are created, topics with fewer partitions grow, settings are
set; groups are declared and their committed offsets set (clamped to what the log still holds) — except for a
group with live members, whose offsets would be pulled from under them: it is skipped and reported. Each group's
operations go to its coordinator through `GroupRouter`, wherever that is.
"""

from __future__ import annotations

from goqueue.consumers.router import GroupRouter
from goqueue.consumers.state_store import is_internal
from goqueue.errors import GoQueueError, GroupNotFound, TopicNotFound
from goqueue.models import GroupBackup, MetadataBackup, OffsetResetRequest, ResetTarget, RestoreReport


async def restore_metadata(router: GroupRouter, backup: MetadataBackup, *, forwarded: bool) -> RestoreReport:
    """`forwarded`: the restore request was sent on by another broker (its group operations are then served here
    or refused, never forwarded again)."""
    router.coordinator.check_ready()
    host = router.host
    report = RestoreReport()
    for spec in backup.topics:
        if is_internal(spec.name):
            report.skipped.append(f"topic {spec.name}: internal")
            continue
        try:
            meta = host.topic(spec.name)
        except TopicNotFound:
            await host.create_topic(spec)
            report.topics_created.append(spec.name)
            continue
        changed = spec.partitions > meta.partitions or spec.config != meta.config
        if changed:
            await host.update_topic(spec.name, max(spec.partitions, meta.partitions),
                                    spec.config.model_dump(by_alias=True, exclude_none=True))
            report.topics_updated.append(spec.name)
        else:
            report.topics_unchanged.append(spec.name)
    for saved in backup.groups:
        try:
            await _restore_group(router, saved, report, forwarded)
        except GoQueueError as exc:
            report.skipped.append(f"group {saved.name}: {exc.message}")
    if backup.all_paused and not host.paused_all:
        await router.set_all_paused(True, forwarded=forwarded)
    return report


async def _restore_group(router: GroupRouter, saved: GroupBackup, report: RestoreReport, forwarded: bool) -> None:
    try:
        live = len((await router.describe(saved.name, forwarded=forwarded)).members)
    except GroupNotFound:
        live = 0
    if live:
        report.skipped.append(f"group {saved.name}: has live members; offsets left as they are")
        return
    topics = router.host.topics()
    present = [t for t in saved.spec.topics if t in topics]
    await router.declare(saved.name, saved.spec.model_copy(update={"topics": present}), forwarded=forwarded)
    for offset in saved.offsets:
        if offset.topic not in topics:
            report.skipped.append(f"group {saved.name}: topic {offset.topic} does not exist")
            continue
        await router.reset_offsets(saved.name, OffsetResetRequest(
            topic=offset.topic, partition=offset.partition, to=ResetTarget.OFFSET, offset=offset.offset),
            forwarded=forwarded)
        report.offsets_restored += 1
    report.groups_restored.append(saved.name)
