"""A GoQueueTopic's replicationFactor change, through the same reassignment machinery as a GoQueueRebalance. Pure.

Nothing is recorded by the operator: the brokers' metadata says everything. While any partition of the topic
moves, the change waits (and reports what copies); when none moves and the brokers' factor still differs from the
spec, a proposal for the topic's factor is asked for and executed at once (the spec change is the approval; each
move is compare-and-set on its partition version, so one executed twice is refused). The topic's
replication factor follows on the brokers when its last partition completes. A factor above the broker count is
refused by the brokers' planner with the reason (Ready=False RejectedByBroker).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from goqueue.models import PartitionReassignment
from goqueue_operator.status.conditions import Condition

REASON = "ReplicationFactorChanging"  # Ready=False while the replicas move: progress, not a failure


@dataclass(frozen=True)
class FactorChange:
    action: Literal["start", "wait"]
    ready: Condition
    status: dict[str, Any] = field(default_factory=dict)  # status.reassignment


def factor_change(topic: str, live: int, wanted: int, partitions: int,
                  moving: Sequence[PartitionReassignment]) -> FactorChange:
    ours = [p for p in moving if p.topic == topic]
    status: dict[str, Any] = {"fromReplicationFactor": live, "toReplicationFactor": wanted,
                              "partitionsMoving": len(ours), "partitionsTotal": partitions}
    if not ours:
        message = f"replication factor {live} → {wanted}: asking the brokers to move the replicas"
        return FactorChange("start", Condition("Ready", False, REASON, message), {**status, "message": message})
    to_copy = [p.bytes_to_copy for p in ours]
    copied = [p.bytes_copied for p in ours]
    if all(b is not None for b in to_copy) and all(b is not None for b in copied):
        status |= {"bytesToCopy": sum(b or 0 for b in to_copy), "bytesCopied": sum(b or 0 for b in copied)}
    copying = sorted({b for p in ours for b in p.copying})
    message = (f"replication factor {live} → {wanted}: {len(ours)} of {partitions} partitions moving"
               + (f", new replicas on brokers {copying} still copying" if copying else ", completing"))
    return FactorChange("wait", Condition("Ready", False, REASON, message), {**status, "message": message})
