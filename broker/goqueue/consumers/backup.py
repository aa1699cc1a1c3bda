"""Metadata backup (`goqueue-admin backup metadata`): one coordinator's part.

A backup is JSON of what cannot be rebuilt from the partition logs alone: topics with their partition counts and
settings, groups with their mode, settings and paused flag, and every committed offset. Records are not in it
(PVC snapshots cover data). Internal topics are left out: the broker recreates them.

In a cluster a backup gathers the groups of every coordinator (`router.py`); `backup_metadata` is one
coordinator's part. Restoring one is `restore.py`.
"""

from __future__ import annotations

from typing import Protocol

from goqueue.consumers.coordinated import CoordinatedGroups
from goqueue.consumers.port import ClusterView, TopicLookup
from goqueue.consumers.state_store import is_internal
from goqueue.models import GroupBackup, GroupSpec, MetadataBackup, OffsetCommit, TopicCreate


class BackupHost(TopicLookup, ClusterView, Protocol):
    """The topics, this broker's id and the pause-all flag."""


def backup_metadata(host: BackupHost, table: CoordinatedGroups, now_s: float) -> MetadataBackup:
    """Topics, and the groups this coordinator coordinates."""
    table.check_ready()
    topics = [TopicCreate(name=meta.name, partitions=meta.partitions, replication_factor=meta.replication_factor,
                          config=meta.config)
              for name, meta in sorted(host.topics().items()) if not is_internal(name)]
    groups = []
    for name in table.coordinated_names():
        group = table.groups[name]
        groups.append(GroupBackup(
            name=name, spec=GroupSpec(mode=group.mode, topics=sorted(group.topics), config=group.config,
                                      paused=group.paused),
            offsets=[OffsetCommit(topic=t, partition=p, offset=cursor.committed)
                     for (t, p), cursor in sorted(group.cursors.items())]))
    return MetadataBackup(created_at_ms=int(now_s * 1000), broker_id=host.broker_id,
                          topics=topics, groups=groups, all_paused=host.paused_all)
