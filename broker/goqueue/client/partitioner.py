"""Which partition each record of a produce call goes to, chosen by the client (an idempotent producer's
sequences are per partition, so every request it sends names one).

A record's own partition, else the call's, else its key's (`goqueue.partitioning`, the broker's own rule, so a key
keeps its partition whichever side chose it), else — keyless — one partition for every keyless record of the call,
the next partition for the next call (Kafka's sticky partitioner: one request instead of one per partition, and
the load still spreads over calls). The partition count is the topic's metadata, cached by `PartitionCounts` for
`METADATA_MAX_AGE_S` (partitions can be added; Kafka's `metadata.max.age.ms`). Pure: time comes in as `now_s`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from goqueue.errors import PartitionNotFound
from goqueue.partitioning import partition_for_key

METADATA_MAX_AGE_S = 60.0


class PartitionCounts:
    """Each topic's partition count as last looked up, and the keyless records' partition per topic."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._counts: dict[str, tuple[int, float]] = {}
        self._sticky: dict[str, int] = {}

    def cached(self, topic: str, now_s: float) -> int | None:
        found = self._counts.get(topic)
        return found[0] if found is not None and now_s - found[1] < METADATA_MAX_AGE_S else None

    def remember(self, topic: str, count: int, now_s: float) -> None:
        self._counts[topic] = (count, now_s)

    def next_sticky(self, topic: str) -> int:
        """The keyless partition of the next call (taken modulo the count; a random start per client)."""
        sticky = self._sticky.get(topic, self._rng.randrange(1 << 16))
        self._sticky[topic] = sticky + 1
        return sticky


def plan_partitions(topic: str, keys: Sequence[bytes | None], own: Sequence[int | None], partition: int | None,
                    partitions: int, sticky: int) -> dict[int, list[int]]:
    """partition → indexes of the records that go there, in call order (`sticky`: the keyless records' one)."""
    planned: dict[int, list[int]] = {}
    for i, (key, chosen) in enumerate(zip(keys, own, strict=True)):
        if partition is not None:
            target = partition
        elif chosen is not None:
            target = chosen
        elif key is not None:
            target = partition_for_key(key, partitions)
        else:
            target = sticky % partitions
        if not 0 <= target < partitions:
            raise PartitionNotFound(f"topic {topic!r} has partitions 0..{partitions - 1}, not {target}",
                                    topic=topic, partition=target)
        planned.setdefault(target, []).append(i)
    return planned
