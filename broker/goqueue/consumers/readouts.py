"""What a coordinator reports about the groups it coordinates: list, describe, the inflight list and the gauges.

Read-only views over the coordinator's table (`coordinated.py`). End offsets (for lag) come from each partition's
leader wherever it is (`GroupCursors.bounds`), except at metrics scrape time, which must not wait on the network
and uses this broker's own replicas (`StatePartitions.local_replica`). Cluster-wide read-outs are gathered from
every coordinator by `router.py`; each method here answers for this broker's groups only.

Runs on the event loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Protocol

from prometheus_client.core import Metric

from goqueue.config import ConsumersSection, OffsetReset
from goqueue.consumers.assignment import TP
from goqueue.consumers.coordinated import CoordinatedGroups
from goqueue.consumers.cursors import GroupCursors
from goqueue.consumers.groups import Group
from goqueue.consumers.ownership import LoadState
from goqueue.consumers.port import ClusterView, StatePartitions
from goqueue.errors import GoQueueError
from goqueue.metrics import gauge
from goqueue.models import (
    GroupConfig,
    GroupInfo,
    GroupOffset,
    GroupSummary,
    InflightList,
    InflightMessage,
    MemberInfo,
    TopicPartition,
)


class ReadoutHost(ClusterView, StatePartitions, Protocol):
    """This broker's id, the pause-all flag, and its own replicas (end offsets at scrape time)."""


class Readouts:
    def __init__(self, host: ReadoutHost, table: CoordinatedGroups, cursors: GroupCursors,
                 settings: ConsumersSection) -> None:
        self.host = host
        self.table = table
        self.cursors = cursors
        self.settings = settings

    async def list_groups(self) -> list[GroupSummary]:
        summaries = []
        for name in self.table.coordinated_names():
            group = self.table.groups.get(name)
            if group is None:
                continue  # deleted, or its partition moved away, while this listed the others
            offsets = await self._offsets(group)
            summaries.append(GroupSummary(
                name=name, mode=group.mode, state=group.state(self.host.paused_all), members=len(group.members),
                topics=sorted(group.topics), lag=sum(o.lag or 0 for o in offsets), inflight=group.leased()))
        return summaries

    async def describe(self, name: str) -> GroupInfo:
        group = self.table.group(name)
        offsets = await self._offsets(group)
        eff = group.effective(self.settings)
        members = [MemberInfo(member_id=m.member_id, client_id=m.client_id, host=m.host,
                              assignments=[TopicPartition(topic=t, partition=p) for t, p in m.assignment],
                              last_heartbeat_ms=int(m.last_seen_s * 1000), generation=m.generation,
                              expires_at_ms=int((m.last_seen_s + eff.session_timeout_s) * 1000))
                   for m in sorted(group.members.values(), key=lambda m: m.member_id)]
        config = GroupConfig(
            visibility_timeout_s=eff.visibility_timeout_s, max_deliveries=eff.max_deliveries,
            inflight_capacity=eff.inflight_capacity, session_timeout_s=eff.session_timeout_s,
            dead_letter_topic=eff.dead_letter_topic, auto_offset_reset=OffsetReset(eff.auto_offset_reset),
            assignor=eff.assignor)
        all_paused = self.host.paused_all
        return GroupInfo(
            name=name, mode=group.mode, state=group.state(all_paused), paused=group.paused or all_paused,
            generation=group.generation, config=config, topics=sorted(group.topics), members=members,
            offsets=offsets, inflight=group.leased(), inflight_capacity=eff.inflight_capacity,
            coordinator=self.host.broker_id)

    def inflight(self, name: str | None, limit: int) -> InflightList:
        table = self.table
        groups = [table.group(name)] if name is not None else [
            table.groups[n] for n in table.coordinated_names() if n in table.groups]
        messages: list[InflightMessage] = []
        total = 0
        for group in groups:
            for tp, cursor in sorted(group.cursors.items()):
                for offset in sorted(cursor.slots):
                    total += 1
                    if len(messages) >= limit:
                        continue
                    slot = cursor.slots[offset]
                    leased = slot.state.value == "l"
                    messages.append(InflightMessage(
                        group=group.name, topic=tp[0], partition=tp[1], offset=offset,
                        state="leased" if leased else "waiting", consumer_id=slot.consumer,
                        lease_id=str(cursor.lease_id(tp[0], tp[1], slot)) if leased else None,
                        delivery_count=slot.deliveries, deadline_ms=slot.deadline_ms))
        return InflightList(messages=messages, total=total, truncated=total > len(messages))

    def collect_gauges(self) -> Iterable[Metric]:
        """The per-group gauges of the groups coordinated here (summed over brokers, they are the cluster's)."""
        lag = gauge("goqueue_consumer_lag", "Records of a partition the group has not settled: high watermark "
                    "minus committed offset.", ["group", "topic", "partition"])
        committed = gauge("goqueue_consumer_committed_offset", "Committed offset (ack floor in shared mode).",
                          ["group", "topic", "partition"])
        inflight_gauge = gauge("goqueue_inflight_messages", "Messages leased to consumers and not yet acked.",
                               ["group"])
        pending = gauge("goqueue_consumer_unacked_messages", "Leased plus waiting for redelivery: what counts "
                        "against the inflight capacity.", ["group"])
        capacity = gauge("goqueue_inflight_capacity", "Most unacked messages the group may hold.", ["group"])
        members = gauge("goqueue_group_members", "Live members (ordered) or recently seen consumers (shared).",
                        ["group"])
        paused = gauge("goqueue_group_paused", "1 while the group gets no deliveries.", ["group"])
        all_paused = self.host.paused_all if self.table.ready else False
        for name, group in list(self.table.groups.items()):
            for offset in self._local_offsets(group):
                if offset.committed is None:
                    continue
                labels = [name, offset.topic, str(offset.partition)]
                lag.add_metric(labels, offset.lag or 0)
                committed.add_metric(labels, offset.committed or 0)
            inflight_gauge.add_metric([name], group.leased())
            pending.add_metric([name], group.pending())
            capacity.add_metric([name], group.effective(self.settings).inflight_capacity)
            members.add_metric([name], len(group.members))
            paused.add_metric([name], 1.0 if group.paused or all_paused else 0.0)
        yield from (lag, committed, inflight_gauge, pending, capacity, members, paused)
        led = gauge("goqueue_coordinator_state_partitions", "__consumer_state partitions this broker leads, by load "
                    "state: their groups are coordinated here (active) or answer NOT_READY (loading).", ["state"])
        for state in LoadState:
            led.add_metric([state.value], sum(1 for p in list(self.table.owned.values()) if p.state is state))
        yield led

    def _partitions_of(self, group: Group) -> list[TP]:
        return sorted(set(group.cursors) | {(t, p) for t, n in self.cursors.partition_counts(group.topics).items()
                                            for p in range(n)})

    async def _offsets(self, group: Group) -> list[GroupOffset]:
        """Every partition of the group's topics, with its end offset from the partition's leader (wherever it is); a
        partition whose leader cannot be asked right now (it is moving) reports this broker's replica's, if any."""
        partitions = self._partitions_of(group)
        ends = self._local_ends(partitions)
        for tp in partitions:
            with contextlib.suppress(GoQueueError):
                ends[tp] = (await self.cursors.bounds(tp)).high_watermark
        return offsets_of(group, partitions, ends)

    def _local_ends(self, partitions: list[TP]) -> dict[TP, int]:
        return {tp: held.high_watermark for tp in partitions if (held := self.host.local_replica(*tp)) is not None}

    def _local_offsets(self, group: Group) -> list[GroupOffset]:
        """`_offsets` from this broker's own replicas, without waiting (metrics at scrape time)."""
        partitions = self._partitions_of(group)
        return offsets_of(group, partitions, self._local_ends(partitions))


def offsets_of(group: Group, partitions: list[TP], ends: Mapping[TP, int]) -> list[GroupOffset]:
    """Committed offset, end offset and lag per partition; committed is None where the group has not started, and
    a partition without a known end reports its committed offset as its end (lag 0, not a guess)."""
    offsets = []
    for tp in partitions:
        cursor = group.cursors.get(tp)
        committed = cursor.committed if cursor is not None else None
        end = ends.get(tp, committed or 0)
        offsets.append(GroupOffset(topic=tp[0], partition=tp[1], committed=committed, end_offset=end,
                                   lag=None if committed is None else max(0, end - committed),
                                   inflight=cursor.leased() if cursor is not None else 0))
    return offsets
