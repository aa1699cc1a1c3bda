"""`GroupWriter`: every change of a group is made durable here before the request that made it is answered.

Persistence is by *touched keys*: an operation records in a `state_store.Changes` which group / cursor / lease it
changed, and at write time the current in-memory value of each key is written (a missing cursor or lease becomes
a tombstone). Writes are submitted in the order they are made, so the newest record of every key is the newest
state, whatever order concurrent requests interleave in. Each write is fenced by the leader epoch the group's state
partition was loaded at (`CoordinatedGroups.check_owner`, `StateStore.write`).
"""

from __future__ import annotations

from goqueue.consumers import state_store
from goqueue.consumers.coordinated import CoordinatedGroups
from goqueue.consumers.groups import Group
from goqueue.consumers.leases import Cursor
from goqueue.consumers.state_store import Changes, StateStore
from goqueue.errors import NotCoordinator
from goqueue.metrics import ConsumerMetrics


class GroupWriter:
    def __init__(self, table: CoordinatedGroups, store: StateStore, metrics: ConsumerMetrics) -> None:
        self.table = table
        self.store = store
        self.metrics = metrics

    async def persist(self, group: Group, changes: Changes) -> None:
        """Write the current value of every touched key; returns once durable.

        A group deleted meanwhile writes nothing (its tombstones are written: nothing of it may come back). A group
        whose state partition moved away (dropped, or reloaded at a new epoch) fails with NOT_COORDINATOR: the
        change is not durable, so the caller must not answer as if it were.

        A cursor record carries the leases it passes that no write has carried yet (`Cursor.unwritten`): those of
        a concurrent consume still reading another partition, or of one that failed before persisting. Without
        them a replay after a failover would take those offsets as acked and never deliver them.
        """
        if not self.table.owns(group):
            if group.dead:
                return
            raise NotCoordinator(f"group {group.name!r} moved to another coordinator during the request; retry",
                                 group=group.name)
        epoch = self.table.check_owner(group.name)
        records: list[state_store.StateRecord] = [state_store.group_record(group)] if changes.group else []
        slots = set(changes.slots)
        marks: list[tuple[Cursor, int]] = []
        for tp in sorted(changes.cursors):
            cursor = group.cursors.get(tp)
            if cursor is None:
                records.append((state_store.offset_key(group.name, tp), None))
                continue
            records.append(state_store.cursor_record(group.name, tp, cursor))
            slots.update((tp, offset) for offset in cursor.unwritten())
            marks.append((cursor, cursor.mark_written()))
        for tp, offset in sorted(slots):
            cursor = group.cursors.get(tp)
            slot = cursor.slots.get(offset) if cursor is not None else None
            records.append(state_store.slot_record(group.name, tp, slot) if slot is not None
                           else state_store.slot_tombstone(group.name, tp, offset))
        try:
            await self.store.write(self.store.partition_for(group.name), epoch, records)
        except BaseException:
            for cursor, previous in marks:
                cursor.unmark_written(previous)
            raise
        self.metrics.state_records.inc(len(records))

    async def delete(self, group: Group) -> None:
        """Forget the group here at once and write its tombstones (nothing of it comes back after a failover)."""
        epoch = self.table.check_owner(group.name)
        group.dead = True
        del self.table.groups[group.name]
        await self.store.write(self.store.partition_for(group.name), epoch, state_store.group_tombstones(group))
