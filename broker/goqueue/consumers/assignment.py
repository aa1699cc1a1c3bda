"""Partition assignors for ordered groups: pure functions from members and partitions to an assignment.

Both give every partition of a subscribed topic to exactly one member subscribed to that topic, and are
deterministic (members and partitions sorted), so the same inputs always give the same assignment.

- `assign_range` (Kafka's RangeAssignor): per topic, contiguous ranges of partitions in member order. Predictable,
  but with many topics the first members get more.
- `assign_sticky` (after Kafka's StickyAssignor): balanced across all topics, and a partition stays with its
  previous owner when the balance allows it, so a rebalance moves as few partitions as possible (fewer
  re-reads of uncommitted records).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from goqueue.config import Assignor

TP = tuple[str, int]
Assignment = dict[str, list[TP]]


def assign(
    assignor: Assignor,
    subscriptions: Mapping[str, Sequence[str]],
    partitions: Mapping[str, int],
    previous: Mapping[str, Sequence[TP]] | None = None,
) -> Assignment:
    """subscriptions: member → topics; partitions: topic → partition count (absent topics have none)."""
    if assignor is Assignor.RANGE:
        return assign_range(subscriptions, partitions)
    return assign_sticky(subscriptions, partitions, previous or {})


def assign_range(subscriptions: Mapping[str, Sequence[str]], partitions: Mapping[str, int]) -> Assignment:
    result: Assignment = {member: [] for member in sorted(subscriptions)}
    topics = sorted({t for topics in subscriptions.values() for t in topics})
    for topic in topics:
        members = sorted(m for m, subscribed in subscriptions.items() if topic in subscribed)
        count = partitions.get(topic, 0)
        per_member, extra = divmod(count, len(members))
        start = 0
        for i, member in enumerate(members):
            size = per_member + (1 if i < extra else 0)
            result[member].extend((topic, p) for p in range(start, start + size))
            start += size
    for tps in result.values():
        tps.sort()
    return result


def assign_sticky(
    subscriptions: Mapping[str, Sequence[str]],
    partitions: Mapping[str, int],
    previous: Mapping[str, Sequence[TP]],
) -> Assignment:
    members = sorted(subscriptions)
    result: Assignment = {member: [] for member in members}
    if not members:
        return result
    all_tps = sorted((t, p) for t in {t for ts in subscriptions.values() for t in ts}
                     for p in range(partitions.get(t, 0)))
    quota_low, extra = divmod(len(all_tps), len(members))
    # Members that may take one more than quota_low: at most `extra` of them (balanced = max - min <= 1).
    owner: dict[TP, str] = {}
    for member in members:
        for tp in sorted(previous.get(member, ())):
            if tp in owner or tp[0] not in subscriptions[member] or tp[1] >= partitions.get(tp[0], 0):
                continue
            owner[tp] = member
    kept: dict[str, list[TP]] = {m: sorted(tp for tp, o in owner.items() if o == m) for m in members}
    big_slots = extra
    # Keep previous partitions up to the quota; the few largest previous owners may keep one more.
    for member in sorted(members, key=lambda m: (-len(kept[m]), m)):
        limit = quota_low
        if big_slots and len(kept[member]) > quota_low:
            limit += 1
            big_slots -= 1
        result[member] = kept[member][:limit]
    taken = {tp for tps in result.values() for tp in tps}
    for tp in all_tps:
        if tp in taken:
            continue
        eligible = [m for m in members if tp[0] in subscriptions[m]]
        target = min(eligible, key=lambda m: (len(result[m]), m))
        result[target].append(tp)
    for tps in result.values():
        tps.sort()
    return result
