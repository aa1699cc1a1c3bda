"""Which partition a keyed record belongs to: CRC32C of its key modulo the partition count.

The broker (a produce without a partition) and the idempotent clients (which pick partitions themselves, as a
producer's sequence numbers are per partition) both use this, so one key lands in one partition whichever side
chose it, across brokers and versions. It changes only when the topic gains partitions, as in Kafka.
"""

from __future__ import annotations

import crc32c


def partition_for_key(key: bytes, partitions: int) -> int:
    assert partitions > 0, "a topic has at least one partition"
    return int(crc32c.crc32c(key)) % partitions
